/* Rollback-protection ledger engine with group commit (see include/vtpmca/ledger.h).
 *
 * Every request (advance, query, admin change) is a `struct ledger_op` on its caller's stack.
 * Callers append it to one FIFO queue and wait on their own condition variable. One writer
 * thread takes everything queued (up to max_batch), decides each request in arrival order
 * against an in-memory cache of the instances' states, writes the resulting rows in one store
 * transaction (one fsync), and only then answers the callers. Requests that arrive while a
 * transaction is being committed wait for the next one: batches grow with the load, without
 * any timer.
 *
 * The cache belongs to the writer thread alone, so it needs no lock. Each entry holds the
 * durable state (`committed`) and, during a batch, the state including the batch's decisions
 * (`work`), so two requests for one instance in one batch see each other in arrival order.
 * `committed` changes only after the transaction succeeded; after a failure the touched
 * entries are dropped and reloaded from the store on next use. */
#include "vtpmca/ledger.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtpmca/encoding.h"
#include "vtpmca/log.h"

enum {
    DEFAULT_MAX_BATCH = 4096,
    DEFAULT_MAX_QUEUE = 65536,
    DEFAULT_MAX_CACHED = 1 << 20,
    INITIAL_BUCKETS = 1024,
};

_Static_assert(LEDGER_COUNTER_LEN == STORE_LEDGER_COUNTER_LEN, "counter sizes agree");
_Static_assert(LEDGER_ROOT_MAX == STORE_LEDGER_ROOT_MAX, "root sizes agree");

/* ---- Counter arithmetic ---- */

static void counter_sub(const uint8_t a[LEDGER_COUNTER_LEN], const uint8_t b[LEDGER_COUNTER_LEN],
                        uint8_t out[LEDGER_COUNTER_LEN])
{
    unsigned borrow = 0;
    for (int i = LEDGER_COUNTER_LEN - 1; i >= 0; i--) {
        unsigned diff = (unsigned)a[i] - b[i] - borrow;
        out[i] = (uint8_t)diff;
        borrow = (diff >> 8) & 1;
    }
}

/* Big-endian byte strings of equal length compare like the numbers they hold. */
static int counter_cmp_from(const uint8_t origin[LEDGER_COUNTER_LEN],
                            const uint8_t a[LEDGER_COUNTER_LEN],
                            const uint8_t b[LEDGER_COUNTER_LEN])
{
    uint8_t da[LEDGER_COUNTER_LEN], db[LEDGER_COUNTER_LEN];
    counter_sub(a, origin, da);
    counter_sub(b, origin, db);
    int c = memcmp(da, db, LEDGER_COUNTER_LEN);
    return (c > 0) - (c < 0);
}

static bool counter_is_after(const uint8_t origin[LEDGER_COUNTER_LEN],
                             const uint8_t current[LEDGER_COUNTER_LEN],
                             const uint8_t candidate[LEDGER_COUNTER_LEN])
{
    if (counter_cmp_from(origin, candidate, current) <= 0)
        return false;
    /* The step is below 2^127 exactly when its top bit is clear. */
    uint8_t step[LEDGER_COUNTER_LEN];
    counter_sub(candidate, current, step);
    return (step[0] & 0x80) == 0;
}

vtpmca_err ledger_counter_distance(const uint8_t from[LEDGER_COUNTER_LEN],
                                   const uint8_t to[LEDGER_COUNTER_LEN],
                                   uint8_t out[LEDGER_COUNTER_LEN])
{
    if (from == NULL || to == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    counter_sub(to, from, out);
    return VTPMCA_OK;
}

vtpmca_err ledger_counter_compare(const uint8_t origin[LEDGER_COUNTER_LEN],
                                  const uint8_t a[LEDGER_COUNTER_LEN],
                                  const uint8_t b[LEDGER_COUNTER_LEN], int *out)
{
    if (origin == NULL || a == NULL || b == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *out = counter_cmp_from(origin, a, b);
    return VTPMCA_OK;
}

vtpmca_err ledger_counter_is_after(const uint8_t origin[LEDGER_COUNTER_LEN],
                                   const uint8_t current[LEDGER_COUNTER_LEN],
                                   const uint8_t candidate[LEDGER_COUNTER_LEN], bool *out)
{
    if (origin == NULL || current == NULL || candidate == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *out = counter_is_after(origin, current, candidate);
    return VTPMCA_OK;
}

vtpmca_err ledger_counter_increment(uint8_t counter[LEDGER_COUNTER_LEN])
{
    if (counter == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    for (int i = LEDGER_COUNTER_LEN - 1; i >= 0; i--) {
        if (++counter[i] != 0)
            break;
    }
    return VTPMCA_OK;
}

vtpmca_err ledger_counter_parse_hex(const char *text, uint8_t out[LEDGER_COUNTER_LEN],
                                    vtpmca_diag *diag)
{
    if (text == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: counter: missing argument");
    /* Checked here rather than left to the decoder, which tolerates surrounding whitespace. */
    size_t len = strnlen(text, LEDGER_COUNTER_HEX_LEN + 1);
    if (len != LEDGER_COUNTER_HEX_LEN)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ledger: a counter is %d hex digits, got %s%zu",
                           LEDGER_COUNTER_HEX_LEN, len > LEDGER_COUNTER_HEX_LEN ? "more than " : "",
                           len > LEDGER_COUNTER_HEX_LEN ? (size_t)LEDGER_COUNTER_HEX_LEN : len);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "ledger: counter has a non-hex byte 0x%02x at offset %zu",
                               (unsigned)(unsigned char)c, i);
    }
    vtpmca_err err = vt_hex_decode_fixed(text, out, LEDGER_COUNTER_LEN);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "ledger: cannot decode the counter");
    return VTPMCA_OK;
}

vtpmca_err ledger_counter_format_hex(const uint8_t counter[LEDGER_COUNTER_LEN], char *out,
                                     size_t out_size)
{
    if (counter == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    return vt_hex_encode(counter, LEDGER_COUNTER_LEN, out, out_size);
}

const char *ledger_outcome_name(ledger_outcome outcome)
{
    switch (outcome) {
    case LEDGER_ACCEPTED:
        return "accepted";
    case LEDGER_DUPLICATE:
        return "duplicate";
    case LEDGER_REFUSED_FORK:
        return "fork";
    case LEDGER_REFUSED_ROLLBACK:
        return "rollback";
    case LEDGER_REFUSED_LOCKED:
        return "locked";
    }
    return "unknown";
}

/* ---- Engine state ---- */

enum op_kind {
    OP_ADVANCE,
    OP_READ, /* ledger_query and ledger_inspect */
    OP_CLEAR,
    OP_SET_REQUIRE,
};

/* One request, on its caller's stack from submit() until it is answered. */
struct ledger_op {
    enum op_kind kind;
    const char *instance;
    const uint8_t *counter; /* OP_ADVANCE */
    const uint8_t *root;
    size_t root_len;
    bool flag; /* OP_CLEAR: reset; OP_SET_REQUIRE: the new setting */

    /* Set by the writer. */
    vtpmca_err err;
    vtpmca_diag diag;
    ledger_outcome outcome;
    store_ledger_state state; /* the instance's state after this request */
    bool done;

    pthread_cond_t answered;
    struct ledger_op *next;
};

struct cache_entry {
    struct cache_entry *next;         /* hash chain */
    struct cache_entry *next_touched; /* touched in the current batch */
    bool touched;
    bool dirty;                   /* `work` must be written */
    store_ledger_state committed; /* durable; version 0: no row in the store */
    store_ledger_state work;
    char instance[STORE_INSTANCE_ID_MAX + 1];
};

struct ledger {
    store_ledger_writer *writer;
    size_t max_batch, max_queue, max_cached;
    ledger_refusal_hook on_refusal;
    void *hook_ctx;

    pthread_mutex_t lock; /* queue, active, closing, stats */
    pthread_cond_t work_ready;
    pthread_cond_t all_left;
    struct ledger_op *queue_head, *queue_tail;
    size_t queue_len;
    size_t active; /* callers inside submit() */
    bool closing;
    ledger_stats stats;
    pthread_t thread;

    /* Writer thread only. */
    struct cache_entry **buckets;
    size_t bucket_count; /* a power of two */
    size_t cached;
    store_ledger_write *writes; /* scratch for one batch */
    size_t writes_cap;
};

/* ---- Cache (writer thread only) ---- */

static uint64_t hash_instance(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void cache_free_all(ledger *l)
{
    for (size_t i = 0; i < l->bucket_count; i++) {
        struct cache_entry *e = l->buckets[i];
        while (e != NULL) {
            struct cache_entry *next = e->next;
            free(e);
            e = next;
        }
        l->buckets[i] = NULL;
    }
    l->cached = 0;
}

static void cache_remove(ledger *l, struct cache_entry *victim)
{
    struct cache_entry **link =
        &l->buckets[hash_instance(victim->instance) & (l->bucket_count - 1)];
    while (*link != victim)
        link = &(*link)->next;
    *link = victim->next;
    free(victim);
    l->cached--;
}

/* Doubles the table when it gets crowded; on allocation failure keeps the longer chains. */
static void cache_maybe_grow(ledger *l)
{
    if (l->cached < l->bucket_count)
        return;
    size_t count = l->bucket_count * 2;
    struct cache_entry **buckets = calloc(count, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < l->bucket_count; i++) {
        struct cache_entry *e = l->buckets[i];
        while (e != NULL) {
            struct cache_entry *next = e->next;
            size_t b = hash_instance(e->instance) & (count - 1);
            e->next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(l->buckets);
    l->buckets = buckets;
    l->bucket_count = count;
}

/* The entry of an instance, loaded from the store on first use (version 0 when the store
 * has no row). */
static vtpmca_err cache_get(ledger *l, const char *instance, struct cache_entry **out,
                            vtpmca_diag *diag)
{
    size_t b = hash_instance(instance) & (l->bucket_count - 1);
    for (struct cache_entry *e = l->buckets[b]; e != NULL; e = e->next) {
        if (strcmp(e->instance, instance) == 0) {
            *out = e;
            return VTPMCA_OK;
        }
    }
    struct cache_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: out of memory");
    vtpmca_err err = store_ledger_load(l->writer, instance, &e->committed, diag);
    if (err == VTPMCA_ERR_NOT_FOUND) {
        memset(&e->committed, 0, sizeof(e->committed));
        err = VTPMCA_OK;
    }
    if (err != VTPMCA_OK) {
        free(e);
        return err;
    }
    snprintf(e->instance, sizeof(e->instance), "%s", instance);
    e->next = l->buckets[b];
    l->buckets[b] = e;
    l->cached++;
    cache_maybe_grow(l);
    *out = e;
    return VTPMCA_OK;
}

/* ---- Decisions (writer thread) ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Marks the working state as changed by this batch: written once, whatever the number of
 * requests for the instance in the batch. */
static void mark_dirty(struct cache_entry *e)
{
    if (!e->dirty) {
        e->dirty = true;
        e->work.version = e->committed.version + 1;
    }
}

static uint64_t saturating_inc(uint64_t count)
{
    return count < INT64_MAX ? count + 1 : count;
}

static void decide_advance(struct cache_entry *e, struct ledger_op *op, int64_t now)
{
    store_ledger_state *s = &e->work;
    if (s->locked) {
        op->outcome = LEDGER_REFUSED_LOCKED;
        return;
    }
    bool accept;
    if (!s->has_entry) {
        accept = true;
        memcpy(s->origin, op->counter, LEDGER_COUNTER_LEN);
    } else if (memcmp(s->counter, op->counter, LEDGER_COUNTER_LEN) == 0) {
        if (s->root_len == op->root_len && memcmp(s->root, op->root, op->root_len) == 0) {
            op->outcome = LEDGER_DUPLICATE;
            return;
        }
        op->outcome = LEDGER_REFUSED_FORK;
        accept = false;
    } else {
        accept = counter_is_after(s->origin, s->counter, op->counter);
        if (!accept)
            op->outcome = LEDGER_REFUSED_ROLLBACK;
    }
    if (accept) {
        op->outcome = LEDGER_ACCEPTED;
        s->has_entry = true;
        memcpy(s->counter, op->counter, LEDGER_COUNTER_LEN);
        memcpy(s->root, op->root, op->root_len);
        s->root_len = op->root_len;
        s->updated_ms = now;
    } else if (op->outcome == LEDGER_REFUSED_FORK) {
        s->fork_refusals = saturating_inc(s->fork_refusals);
    } else {
        s->rollback_refusals = saturating_inc(s->rollback_refusals);
    }
    if (!accept && s->require_admin_clear)
        s->locked = true;
    mark_dirty(e);
}

static void decide(struct cache_entry *e, struct ledger_op *op, int64_t now)
{
    store_ledger_state *s = &e->work;
    bool known = s->version != 0; /* stored, or created earlier in this batch */
    switch (op->kind) {
    case OP_ADVANCE:
        decide_advance(e, op, now);
        break;
    case OP_READ:
        if (!known)
            op->err = vtpmca_fail(&op->diag, VTPMCA_ERR_NOT_FOUND,
                                  "ledger: no record of instance %s", op->instance);
        break;
    case OP_CLEAR:
        if (!known) {
            op->err = vtpmca_fail(&op->diag, VTPMCA_ERR_NOT_FOUND,
                                  "ledger: no record of instance %s", op->instance);
            break;
        }
        if (s->locked || (op->flag && s->has_entry)) {
            s->locked = false;
            if (op->flag) {
                s->has_entry = false;
                memset(s->counter, 0, sizeof(s->counter));
                memset(s->origin, 0, sizeof(s->origin));
                memset(s->root, 0, sizeof(s->root));
                s->root_len = 0;
            }
            mark_dirty(e);
        }
        break;
    case OP_SET_REQUIRE:
        /* A first setting creates a row without an entry. */
        if (!known || s->require_admin_clear != op->flag) {
            s->require_admin_clear = op->flag;
            mark_dirty(e);
        }
        break;
    }
    op->state = *s;
}

/* Applies one batch: decide everything, write once, then settle the cache. Every op's err,
 * outcome and state are set when it returns. */
static void process_batch(ledger *l, struct ledger_op *batch, uint64_t *commits, uint64_t *writes,
                          bool *commit_failed)
{
    int64_t now = now_ms();
    struct cache_entry *touched = NULL;
    size_t dirty = 0;

    for (struct ledger_op *op = batch; op != NULL; op = op->next) {
        struct cache_entry *e = NULL;
        op->err = cache_get(l, op->instance, &e, &op->diag);
        if (op->err != VTPMCA_OK)
            continue;
        if (!e->touched) {
            e->touched = true;
            e->work = e->committed;
            e->next_touched = touched;
            touched = e;
        }
        bool was_dirty = e->dirty;
        decide(e, op, now);
        if (e->dirty && !was_dirty)
            dirty++;
    }

    vtpmca_err err = VTPMCA_OK;
    vtpmca_diag diag = {{0}};
    if (dirty > 0 && dirty > l->writes_cap) {
        store_ledger_write *bigger = realloc(l->writes, dirty * sizeof(*bigger));
        if (bigger == NULL) {
            err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "ledger: out of memory");
        } else {
            l->writes = bigger;
            l->writes_cap = dirty;
        }
    }
    if (dirty > 0 && err == VTPMCA_OK) {
        size_t n = 0;
        for (struct cache_entry *e = touched; e != NULL; e = e->next_touched) {
            if (e->dirty) {
                l->writes[n].instance = e->instance;
                l->writes[n].state = e->work;
                n++;
            }
        }
        err = store_ledger_apply_batch(l->writer, l->writes, n, &diag);
        /* To callers CONFLICT means a refused advance; a row changed behind the cache is a
         * store failure (retry once the cache has been reloaded). */
        if (err == VTPMCA_ERR_CONFLICT)
            err = VTPMCA_ERR_STORE;
        *commits = 1;
        *writes = n;
    }

    struct cache_entry *e = touched;
    while (e != NULL) {
        struct cache_entry *next = e->next_touched;
        if (err == VTPMCA_OK) {
            e->committed = e->work;
            e->touched = false;
            e->dirty = false;
            e->next_touched = NULL;
        } else {
            /* The store may hold either state now: forget it and reload on next use. */
            cache_remove(l, e);
        }
        e = next;
    }
    if (err != VTPMCA_OK) {
        *commit_failed = true;
        vtpmca_log(VTPMCA_LOG_ERROR, "ledger.commit_failed", "detail", diag.msg, NULL);
        for (struct ledger_op *op = batch; op != NULL; op = op->next) {
            if (op->err == VTPMCA_OK) {
                op->err = err;
                op->diag = diag;
            }
        }
    }
    if (l->cached > l->max_cached)
        cache_free_all(l); /* nothing is touched between batches: simply start over */
}

static void count_answer(ledger_stats *stats, const struct ledger_op *op)
{
    if (op->err != VTPMCA_OK) {
        stats->errors++;
        return;
    }
    if (op->kind != OP_ADVANCE)
        return;
    switch (op->outcome) {
    case LEDGER_ACCEPTED:
        stats->accepted++;
        break;
    case LEDGER_DUPLICATE:
        stats->duplicates++;
        break;
    case LEDGER_REFUSED_FORK:
        stats->refused_fork++;
        break;
    case LEDGER_REFUSED_ROLLBACK:
        stats->refused_rollback++;
        break;
    case LEDGER_REFUSED_LOCKED:
        stats->refused_locked++;
        break;
    }
}

static void *writer_main(void *arg)
{
    ledger *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->queue_head == NULL && !l->closing)
            pthread_cond_wait(&l->work_ready, &l->lock);
        if (l->queue_head == NULL)
            break; /* closing, and everything has been answered */

        struct ledger_op *batch = l->queue_head, *last = batch;
        size_t n = 1;
        while (n < l->max_batch && last->next != NULL) {
            last = last->next;
            n++;
        }
        l->queue_head = last->next;
        if (l->queue_head == NULL)
            l->queue_tail = NULL;
        last->next = NULL;
        l->queue_len -= n;
        pthread_mutex_unlock(&l->lock);

        uint64_t commits = 0, writes = 0;
        bool commit_failed = false;
        process_batch(l, batch, &commits, &writes, &commit_failed);

        pthread_mutex_lock(&l->lock);
        l->stats.batches++;
        l->stats.batched_requests += n;
        if (n > l->stats.max_batch)
            l->stats.max_batch = n;
        if (commit_failed) {
            l->stats.commit_failures++;
        } else {
            l->stats.commits += commits;
            l->stats.committed_writes += writes;
        }
        l->stats.cached_instances = l->cached;
        struct ledger_op *op = batch;
        while (op != NULL) {
            /* Once `done` is set the caller may return and its op vanish. */
            struct ledger_op *next = op->next;
            count_answer(&l->stats, op);
            op->done = true;
            pthread_cond_signal(&op->answered);
            op = next;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---- Callers ---- */

/* Queues an op and waits until the writer has answered it; returns op->err. */
static vtpmca_err submit(ledger *l, struct ledger_op *op, vtpmca_diag *diag)
{
    op->err = VTPMCA_OK;
    op->done = false;
    op->next = NULL;
    if (pthread_cond_init(&op->answered, NULL) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ledger: cannot make a condition variable");
    pthread_mutex_lock(&l->lock);
    vtpmca_err err = VTPMCA_OK;
    if (l->closing) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: it is being closed");
    } else if (l->queue_len >= l->max_queue) {
        l->stats.errors++;
        err =
            vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                        "ledger: %zu requests are waiting already; try again later", l->queue_len);
    } else {
        if (l->queue_tail != NULL)
            l->queue_tail->next = op;
        else
            l->queue_head = op;
        l->queue_tail = op;
        l->queue_len++;
        l->active++;
        pthread_cond_signal(&l->work_ready);
        while (!op->done)
            pthread_cond_wait(&op->answered, &l->lock);
        l->active--;
        if (l->closing && l->active == 0)
            pthread_cond_broadcast(&l->all_left);
        err = op->err;
    }
    pthread_mutex_unlock(&l->lock);
    pthread_cond_destroy(&op->answered);
    if (err != VTPMCA_OK && op->done && diag != NULL)
        *diag = op->diag;
    return err;
}

static vtpmca_err check_request(ledger *l, const char *instance, bool has_out, vtpmca_diag *diag)
{
    if (l == NULL || !has_out)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: missing argument");
    return store_check_instance_id(instance, diag);
}

static void entry_from_state(const store_ledger_state *s, ledger_entry *out)
{
    memset(out, 0, sizeof(*out));
    if (!s->has_entry)
        return;
    memcpy(out->counter, s->counter, LEDGER_COUNTER_LEN);
    memcpy(out->origin, s->origin, LEDGER_COUNTER_LEN);
    memcpy(out->root, s->root, s->root_len);
    out->root_len = s->root_len;
    out->time_ms = s->updated_ms;
}

/* Logs a refusal and hands it to the hook (on the caller's thread, after it is durable). */
static void report_refusal(ledger *l, const char *instance, const uint8_t *counter,
                           const uint8_t *root, size_t root_len, const ledger_result *result)
{
    char presented[LEDGER_COUNTER_HEX_LEN + 1], latest[LEDGER_COUNTER_HEX_LEN + 1];
    (void)ledger_counter_format_hex(counter, presented, sizeof(presented));
    (void)ledger_counter_format_hex(result->latest.counter, latest, sizeof(latest));
    vtpmca_log(VTPMCA_LOG_WARN, "ledger.refused", "instance", instance, "reason",
               ledger_outcome_name(result->outcome), "counter", presented, "ledger_counter", latest,
               "locked", result->locked ? "true" : "false", NULL);
    if (l->on_refusal != NULL) {
        ledger_refusal refusal = {instance, result->outcome, counter, root, root_len, result};
        l->on_refusal(l->hook_ctx, &refusal);
    }
}

vtpmca_err ledger_advance(ledger *l, const char *instance,
                          const uint8_t counter[LEDGER_COUNTER_LEN], const uint8_t *root,
                          size_t root_len, ledger_result *result, vtpmca_diag *diag)
{
    if (result != NULL)
        memset(result, 0, sizeof(*result));
    vtpmca_err err = check_request(l, instance, result != NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    if (counter == NULL || root == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ledger: advance: missing counter or root");
    if (root_len == 0 || root_len > LEDGER_ROOT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: a root is 1 to %d bytes, got %zu",
                           LEDGER_ROOT_MAX, root_len);

    struct ledger_op op = {.kind = OP_ADVANCE,
                           .instance = instance,
                           .counter = counter,
                           .root = root,
                           .root_len = root_len};
    err = submit(l, &op, diag);
    if (err != VTPMCA_OK)
        return err;
    result->outcome = op.outcome;
    entry_from_state(&op.state, &result->latest);
    result->locked = op.state.locked;
    if (op.outcome == LEDGER_ACCEPTED || op.outcome == LEDGER_DUPLICATE)
        return VTPMCA_OK;

    report_refusal(l, instance, counter, root, root_len, result);
    switch (op.outcome) {
    case LEDGER_REFUSED_FORK:
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "ledger: %s: fork refused: the ledger holds this counter with "
                           "another root%s",
                           instance, result->locked ? "; the instance is locked" : "");
    case LEDGER_REFUSED_ROLLBACK:
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "ledger: %s: rollback refused: the counter is not after the "
                           "ledger's%s",
                           instance, result->locked ? "; the instance is locked" : "");
    default:
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "ledger: %s is locked after a fork or rollback attempt; an admin "
                           "must clear it",
                           instance);
    }
}

vtpmca_err ledger_inspect(ledger *l, const char *instance, ledger_record *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    vtpmca_err err = check_request(l, instance, out != NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    struct ledger_op op = {.kind = OP_READ, .instance = instance};
    err = submit(l, &op, diag);
    if (err != VTPMCA_OK)
        return err;
    out->has_entry = op.state.has_entry;
    entry_from_state(&op.state, &out->entry);
    out->locked = op.state.locked;
    out->require_admin_clear = op.state.require_admin_clear;
    out->fork_refusals = op.state.fork_refusals;
    out->rollback_refusals = op.state.rollback_refusals;
    return VTPMCA_OK;
}

vtpmca_err ledger_query(ledger *l, const char *instance, ledger_entry *out, vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: missing argument");
    memset(out, 0, sizeof(*out));
    ledger_record record;
    vtpmca_err err = ledger_inspect(l, instance, &record, diag);
    if (err != VTPMCA_OK)
        return err;
    if (!record.has_entry)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                           "ledger: instance %s has no accepted advance", instance);
    *out = record.entry;
    return VTPMCA_OK;
}

vtpmca_err ledger_clear(ledger *l, const char *instance, bool reset, vtpmca_diag *diag)
{
    vtpmca_err err = check_request(l, instance, true, diag);
    if (err != VTPMCA_OK)
        return err;
    struct ledger_op op = {.kind = OP_CLEAR, .instance = instance, .flag = reset};
    err = submit(l, &op, diag);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "ledger.cleared", "instance", instance, "reset",
                   reset ? "true" : "false", NULL);
    return err;
}

vtpmca_err ledger_set_require_admin_clear(ledger *l, const char *instance, bool require,
                                          vtpmca_diag *diag)
{
    vtpmca_err err = check_request(l, instance, true, diag);
    if (err != VTPMCA_OK)
        return err;
    struct ledger_op op = {.kind = OP_SET_REQUIRE, .instance = instance, .flag = require};
    return submit(l, &op, diag);
}

vtpmca_err ledger_get_stats(ledger *l, ledger_stats *out)
{
    if (l == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    out->queue_depth = l->queue_len;
    pthread_mutex_unlock(&l->lock);
    return VTPMCA_OK;
}

/* ---- Lifecycle ---- */

static void ledger_free(ledger *l)
{
    cache_free_all(l);
    free(l->buckets);
    free(l->writes);
    store_ledger_writer_close(l->writer);
    pthread_cond_destroy(&l->all_left);
    pthread_cond_destroy(&l->work_ready);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

vtpmca_err ledger_open(const ledger_config *config, ledger **out, vtpmca_diag *diag)
{
    if (config == NULL || out == NULL || config->store == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: open: missing argument");
    *out = NULL;
    if (config->max_batch > STORE_LEDGER_BATCH_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: max_batch above %d",
                           STORE_LEDGER_BATCH_MAX);
    ledger *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: out of memory");
    l->max_batch = config->max_batch != 0 ? config->max_batch : DEFAULT_MAX_BATCH;
    l->max_queue = config->max_queue != 0 ? config->max_queue : DEFAULT_MAX_QUEUE;
    l->max_cached = config->max_cached != 0 ? config->max_cached : DEFAULT_MAX_CACHED;
    l->on_refusal = config->on_refusal;
    l->hook_ctx = config->hook_ctx;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->work_ready, NULL);
    pthread_cond_init(&l->all_left, NULL);
    l->bucket_count = INITIAL_BUCKETS;
    l->buckets = calloc(l->bucket_count, sizeof(*l->buckets));
    if (l->buckets == NULL) {
        ledger_free(l);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: out of memory");
    }
    vtpmca_err err = store_ledger_writer_open(config->store, &l->writer, diag);
    if (err != VTPMCA_OK) {
        ledger_free(l);
        return err;
    }
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        ledger_free(l);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ledger: cannot start the writer thread");
    }
    *out = l;
    return VTPMCA_OK;
}

void ledger_close(ledger *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->closing = true;
    pthread_cond_signal(&l->work_ready);
    /* The writer answers everything queued before it stops; callers must have left before
     * the lock they wait with is destroyed. */
    while (l->active > 0)
        pthread_cond_wait(&l->all_left, &l->lock);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    ledger_free(l);
}
