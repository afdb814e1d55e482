/* Unit tests of the rollback ledger engine (attest/ledger.c) and its sqlite storage
 * (store/store_ledger_sqlite.c), on real database files in a temporary directory. Results are
 * also checked through an independent sqlite connection, as another process would see them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/ledger.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"

typedef uint8_t ctr[LEDGER_COUNTER_LEN];

static char g_dir[64];
static int g_db_counter;

/* ---- Fixture: a store and a ledger on a fresh database ---- */

struct hook_log {
    pthread_mutex_t lock;
    int calls;
    ledger_outcome last_outcome;
    char last_instance[64];
    ctr last_counter;
    ctr last_ledger_counter;
    bool last_locked;
};

struct fixture {
    char path[512];
    store *st;
    ledger *l;
    struct hook_log hook;
};

static void record_refusal(void *ctx, const ledger_refusal *r)
{
    struct hook_log *log = ctx;
    pthread_mutex_lock(&log->lock);
    log->calls++;
    log->last_outcome = r->outcome;
    snprintf(log->last_instance, sizeof(log->last_instance), "%s", r->instance);
    memcpy(log->last_counter, r->counter, sizeof(ctr));
    memcpy(log->last_ledger_counter, r->result->latest.counter, sizeof(ctr));
    log->last_locked = r->result->locked;
    pthread_mutex_unlock(&log->lock);
}

static int group_setup(void **state)
{
    (void)state;
    return ca_fixture_tmpdir(g_dir, sizeof(g_dir), "test-ledger");
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g_dir);
}

static void open_ledger(struct fixture *f, const ledger_config *overrides)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_open(f->path, &f->st, &diag);
    if (err != VTPMCA_OK)
        print_error("store_open: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    ledger_config cfg = {0};
    if (overrides != NULL)
        cfg = *overrides;
    cfg.store = f->st;
    cfg.on_refusal = record_refusal;
    cfg.hook_ctx = &f->hook;
    err = ledger_open(&cfg, &f->l, &diag);
    if (err != VTPMCA_OK)
        print_error("ledger_open: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
}

static void close_ledger(struct fixture *f)
{
    ledger_close(f->l);
    store_close(f->st);
    f->l = NULL;
    f->st = NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    pthread_mutex_init(&f->hook.lock, NULL);
    snprintf(f->path, sizeof(f->path), "%s/db-%d.sqlite", g_dir, ++g_db_counter);
    open_ledger(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_ledger(f);
    pthread_mutex_destroy(&f->hook.lock);
    free(f);
    return 0;
}

/* ---- Helpers ---- */

static void make(ctr out, uint64_t hi, uint64_t lo)
{
    for (int i = 0; i < 8; i++) {
        out[7 - i] = (uint8_t)(hi >> (8 * i));
        out[15 - i] = (uint8_t)(lo >> (8 * i));
    }
}

/* out = base + k (mod 2^128). */
static void add(const ctr base, uint64_t k, ctr out)
{
    unsigned carry = 0;
    for (int i = LEDGER_COUNTER_LEN - 1; i >= 0; i--) {
        unsigned sum = base[i] + (unsigned)(k & 0xff) + carry;
        out[i] = (uint8_t)sum;
        carry = sum >> 8;
        k >>= 8;
    }
}

/* The low 64 bits of (c - base): k for counters made by add(). */
static uint64_t offset_of(const ctr base, const ctr c)
{
    ctr d;
    assert_int_equal(ledger_counter_distance(base, c, d), VTPMCA_OK);
    uint64_t k = 0;
    for (int i = 8; i < 16; i++)
        k = (k << 8) | d[i];
    return k;
}

/* A 32-byte root that differs per (tag, k), like a Merkle root would. */
static void make_root(uint8_t root[32], unsigned tag, uint64_t k)
{
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(tag * 31 + k * 7 + (uint64_t)i * 13 + (k >> 8));
}

static vtpmca_err advance(struct fixture *f, const char *instance, const ctr counter,
                          const uint8_t *root, size_t root_len, ledger_result *res)
{
    vtpmca_diag diag = {{0}};
    return ledger_advance(f->l, instance, counter, root, root_len, res, &diag);
}

static ledger_stats stats_of(ledger *l)
{
    ledger_stats s;
    assert_int_equal(ledger_get_stats(l, &s), VTPMCA_OK);
    return s;
}

/* Reads a column of the instance's row through an independent connection (-1: no row). */
static sqlite3_int64 raw_int(const char *path, const char *instance, const char *column)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT %s FROM ledger WHERE instance = ?1", column);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_STATIC);
    sqlite3_int64 value = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return value;
}

static void raw_counter(const char *path, const char *instance, ctr out)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT counter FROM ledger WHERE instance = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), LEDGER_COUNTER_LEN);
    memcpy(out, sqlite3_column_blob(st, 0), LEDGER_COUNTER_LEN);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, err != NULL ? err : "?");
    sqlite3_free(err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

/* ---- Semantics ---- */

static void test_first_advance_and_query(void **state)
{
    struct fixture *f = *state;
    ctr c;
    make(c, 0x1122334455667788ULL, 0x99aabbccddeeff00ULL);
    uint8_t root[48];
    make_root(root, 1, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    ledger_entry entry;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_query(f->l, "vm-1", &entry, &diag), VTPMCA_ERR_NOT_FOUND);

    ledger_result res;
    assert_int_equal(advance(f, "vm-1", c, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_ACCEPTED);
    assert_memory_equal(res.latest.counter, c, sizeof(ctr));
    assert_memory_equal(res.latest.origin, c, sizeof(ctr)); /* the first counter is the origin */
    assert_int_equal(res.latest.root_len, sizeof(root));
    assert_memory_equal(res.latest.root, root, sizeof(root));
    assert_false(res.locked);
    assert_true(res.latest.time_ms >= before_ms && res.latest.time_ms < before_ms + 60000);

    /* Durable: visible to another connection as soon as the call returned. */
    ctr stored;
    raw_counter(f->path, "vm-1", stored);
    assert_memory_equal(stored, c, sizeof(ctr));
    assert_int_equal(raw_int(f->path, "vm-1", "version"), 1);

    assert_int_equal(ledger_query(f->l, "vm-1", &entry, &diag), VTPMCA_OK);
    assert_memory_equal(entry.counter, c, sizeof(ctr));
    assert_memory_equal(entry.origin, c, sizeof(ctr));
    assert_memory_equal(entry.root, root, sizeof(root));
    assert_int_equal(entry.time_ms, res.latest.time_ms);

    ledger_record rec;
    assert_int_equal(ledger_inspect(f->l, "vm-1", &rec, &diag), VTPMCA_OK);
    assert_true(rec.has_entry);
    assert_false(rec.locked);
    assert_false(rec.require_admin_clear);
    assert_int_equal(rec.fork_refusals, 0);
    assert_int_equal(rec.rollback_refusals, 0);
    /* Another instance is independent. */
    assert_int_equal(ledger_query(f->l, "vm-2", &entry, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(ledger_inspect(f->l, "vm-2", &rec, &diag), VTPMCA_ERR_NOT_FOUND);

    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.commits, 1);
    assert_int_equal(s.committed_writes, 1);
}

static void test_strictly_after_and_duplicate(void **state)
{
    struct fixture *f = *state;
    ctr origin, c;
    make(origin, UINT64_MAX, UINT64_MAX - 1); /* wraps after two advances */
    uint8_t root[32];
    ledger_result res;
    const uint64_t steps[] = {0, 1, 2, 3, 1000, 1u << 30};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        add(origin, steps[i], c);
        make_root(root, 2, steps[i]);
        assert_int_equal(advance(f, "vm:a.b_c-d", c, root, sizeof(root), &res), VTPMCA_OK);
        assert_int_equal(res.outcome, LEDGER_ACCEPTED);
        assert_memory_equal(res.latest.origin, origin, sizeof(ctr));
    }
    sqlite3_int64 version = raw_int(f->path, "vm:a.b_c-d", "version");
    ledger_stats before = stats_of(f->l);

    /* The same (counter, root) again: success, nothing written. */
    assert_int_equal(advance(f, "vm:a.b_c-d", c, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_DUPLICATE);
    assert_memory_equal(res.latest.counter, c, sizeof(ctr));
    ledger_stats after = stats_of(f->l);
    assert_int_equal(after.duplicates, before.duplicates + 1);
    assert_int_equal(after.commits, before.commits);
    assert_int_equal(raw_int(f->path, "vm:a.b_c-d", "version"), version);
    assert_int_equal(f->hook.calls, 0);

    /* A root of another length at the same counter is a fork, not a duplicate. */
    assert_int_equal(advance(f, "vm:a.b_c-d", c, root, sizeof(root) - 1, &res),
                     VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_FORK);
}

static void test_fork_refused(void **state)
{
    struct fixture *f = *state;
    ctr c;
    make(c, 5, 5);
    uint8_t root[32], other[32];
    make_root(root, 3, 1);
    make_root(other, 3, 2);
    ledger_result res;
    assert_int_equal(advance(f, "vm-f", c, root, sizeof(root), &res), VTPMCA_OK);

    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_advance(f->l, "vm-f", c, other, sizeof(other), &res, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "fork"));
    assert_int_equal(res.outcome, LEDGER_REFUSED_FORK);
    assert_memory_equal(res.latest.root, root, sizeof(root)); /* the ledger keeps its root */
    assert_false(res.locked);

    assert_int_equal(f->hook.calls, 1);
    assert_int_equal(f->hook.last_outcome, LEDGER_REFUSED_FORK);
    assert_string_equal(f->hook.last_instance, "vm-f");
    assert_memory_equal(f->hook.last_counter, c, sizeof(ctr));

    ledger_record rec;
    assert_int_equal(ledger_inspect(f->l, "vm-f", &rec, &diag), VTPMCA_OK);
    assert_int_equal(rec.fork_refusals, 1);
    assert_int_equal(rec.rollback_refusals, 0);
    assert_memory_equal(rec.entry.root, root, sizeof(root));
    assert_int_equal(raw_int(f->path, "vm-f", "fork_refusals"), 1); /* counted durably */
    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.refused_fork, 1);
    assert_int_equal(s.accepted, 1);

    /* The original writer continues normally. */
    ctr next;
    add(c, 1, next);
    assert_int_equal(advance(f, "vm-f", next, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_ACCEPTED);
}

static void test_rollback_refused(void **state)
{
    struct fixture *f = *state;
    ctr origin, c;
    make(origin, 0, 1000);
    uint8_t root[32];
    make_root(root, 4, 0);
    ledger_result res;
    add(origin, 10, c);
    assert_int_equal(advance(f, "vm-r", origin, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(advance(f, "vm-r", c, root, sizeof(root), &res), VTPMCA_OK);

    struct {
        uint64_t hi, lo;
    } olds[] = {
        {0, 1009},                     /* one before the latest */
        {0, 1000},                     /* the origin itself */
        {0, 999},                      /* behind the origin: refused by the 2^127 rule */
        {0x8000000000000000ULL, 1010}, /* exactly 2^127 ahead: ambiguous, refused */
        {UINT64_MAX, UINT64_MAX},      /* far "ahead", really behind the origin */
    };
    for (size_t i = 0; i < sizeof(olds) / sizeof(olds[0]); i++) {
        ctr old;
        make(old, olds[i].hi, olds[i].lo);
        vtpmca_diag diag = {{0}};
        assert_int_equal(ledger_advance(f->l, "vm-r", old, root, sizeof(root), &res, &diag),
                         VTPMCA_ERR_CONFLICT);
        assert_non_null(strstr(diag.msg, "rollback"));
        assert_int_equal(res.outcome, LEDGER_REFUSED_ROLLBACK);
        assert_memory_equal(res.latest.counter, c, sizeof(ctr));
        assert_int_equal(f->hook.calls, (int)i + 1);
        assert_int_equal(f->hook.last_outcome, LEDGER_REFUSED_ROLLBACK);
        assert_memory_equal(f->hook.last_counter, old, sizeof(ctr));
        assert_memory_equal(f->hook.last_ledger_counter, c, sizeof(ctr));
    }
    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.refused_rollback, 5);
    assert_int_equal(raw_int(f->path, "vm-r", "rollback_refusals"), 5);
    ctr stored;
    raw_counter(f->path, "vm-r", stored);
    assert_memory_equal(stored, c, sizeof(ctr));

    /* Just under 2^127 ahead is still an advance. */
    ctr far;
    make(far, 0x7FFFFFFFFFFFFFFFULL, UINT64_MAX);
    add(far, 1010, far);
    assert_int_equal(advance(f, "vm-r", far, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_ACCEPTED);
}

static void test_locked_until_admin_clear(void **state)
{
    struct fixture *f = *state;
    vtpmca_diag diag = {{0}};
    /* Set before the first advance: the row holds only the setting. */
    assert_int_equal(ledger_set_require_admin_clear(f->l, "vm-l", true, &diag), VTPMCA_OK);
    ledger_record rec;
    assert_int_equal(ledger_inspect(f->l, "vm-l", &rec, &diag), VTPMCA_OK);
    assert_false(rec.has_entry);
    assert_true(rec.require_admin_clear);
    ledger_entry entry;
    assert_int_equal(ledger_query(f->l, "vm-l", &entry, &diag), VTPMCA_ERR_NOT_FOUND);

    ctr c, next, old;
    make(c, 9, 100);
    add(c, 1, next);
    make(old, 9, 99);
    uint8_t root[32];
    make_root(root, 5, 0);
    ledger_result res;
    assert_int_equal(advance(f, "vm-l", c, root, sizeof(root), &res), VTPMCA_OK);

    /* A rollback attempt locks it. */
    assert_int_equal(advance(f, "vm-l", old, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_ROLLBACK);
    assert_true(res.locked);
    assert_true(f->hook.last_locked);
    assert_int_equal(raw_int(f->path, "vm-l", "locked"), 1);

    /* Now even a valid advance and a duplicate are refused. */
    assert_int_equal(ledger_advance(f->l, "vm-l", next, root, sizeof(root), &res, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_LOCKED);
    assert_non_null(strstr(diag.msg, "locked"));
    assert_int_equal(f->hook.last_outcome, LEDGER_REFUSED_LOCKED);
    assert_int_equal(advance(f, "vm-l", c, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_LOCKED);
    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.refused_locked, 2);
    assert_int_equal(f->hook.calls, 3);

    /* The lock is durable: a restart does not clear it. */
    close_ledger(f);
    open_ledger(f, NULL);
    assert_int_equal(advance(f, "vm-l", next, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_LOCKED);
    /* Turning the setting off does not unlock either. */
    assert_int_equal(ledger_set_require_admin_clear(f->l, "vm-l", false, &diag), VTPMCA_OK);
    assert_int_equal(advance(f, "vm-l", next, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(ledger_set_require_admin_clear(f->l, "vm-l", true, &diag), VTPMCA_OK);

    /* An admin clear unlocks; the entry and the order stay. */
    assert_int_equal(ledger_clear(f->l, "vm-l", false, &diag), VTPMCA_OK);
    assert_int_equal(advance(f, "vm-l", old, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_ROLLBACK); /* locks again */
    assert_int_equal(ledger_clear(f->l, "vm-l", false, &diag), VTPMCA_OK);
    assert_int_equal(ledger_clear(f->l, "vm-l", false, &diag), VTPMCA_OK); /* idempotent */
    assert_int_equal(advance(f, "vm-l", next, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_ACCEPTED);
    assert_memory_equal(res.latest.origin, c, sizeof(ctr));

    /* A fork locks too; clear with reset forgets the entry: any counter starts over. */
    uint8_t other[32];
    make_root(other, 5, 1);
    assert_int_equal(advance(f, "vm-l", next, other, sizeof(other), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_FORK);
    assert_true(res.locked);
    assert_int_equal(ledger_clear(f->l, "vm-l", true, &diag), VTPMCA_OK);
    assert_int_equal(ledger_query(f->l, "vm-l", &entry, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(raw_int(f->path, "vm-l", "counter IS NULL"), 1);
    ctr fresh;
    make(fresh, 1, 1);
    assert_int_equal(advance(f, "vm-l", fresh, root, sizeof(root), &res), VTPMCA_OK);
    assert_memory_equal(res.latest.origin, fresh, sizeof(ctr));
    assert_int_equal(ledger_inspect(f->l, "vm-l", &rec, &diag), VTPMCA_OK);
    assert_true(rec.require_admin_clear); /* the setting and counts survive a reset */
    assert_int_equal(rec.rollback_refusals, 2);
    assert_int_equal(rec.fork_refusals, 1);
    assert_false(rec.locked);

    assert_int_equal(ledger_clear(f->l, "vm-unknown", false, &diag), VTPMCA_ERR_NOT_FOUND);
}

static void test_persistence_across_reopen(void **state)
{
    struct fixture *f = *state;
    ctr origin, c;
    make(origin, UINT64_MAX, UINT64_MAX - 2);
    uint8_t root[64];
    ledger_result res;
    for (uint64_t k = 0; k < 5; k++) { /* ends after the wrap */
        add(origin, k, c);
        make_root(root, 6, k);
        assert_int_equal(advance(f, "vm-p", c, root, sizeof(root), &res), VTPMCA_OK);
    }
    int64_t time_ms = res.latest.time_ms;
    close_ledger(f);
    open_ledger(f, NULL);

    ledger_entry entry;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_query(f->l, "vm-p", &entry, &diag), VTPMCA_OK);
    assert_memory_equal(entry.counter, c, sizeof(ctr));
    assert_memory_equal(entry.origin, origin, sizeof(ctr));
    assert_memory_equal(entry.root, root, sizeof(root));
    assert_int_equal(entry.root_len, sizeof(root));
    assert_int_equal(entry.time_ms, time_ms);

    /* The order still comes from the stored origin: a pre-wrap counter is a rollback. */
    ctr old;
    add(origin, 3, old);
    assert_int_equal(advance(f, "vm-p", old, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_ROLLBACK);
    assert_int_equal(advance(f, "vm-p", c, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_DUPLICATE);
    add(origin, 5, c);
    assert_int_equal(advance(f, "vm-p", c, root, sizeof(root), &res), VTPMCA_OK);
    assert_int_equal(res.outcome, LEDGER_ACCEPTED);
}

static void test_bad_arguments_change_nothing(void **state)
{
    struct fixture *f = *state;
    ctr c;
    make(c, 1, 2);
    uint8_t root[65] = {1};
    ledger_result res;
    vtpmca_diag diag = {{0}};
    char long_id[65];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    const char *bad_ids[] = {NULL, "", long_id, "a/b", "a b", "vm\n", "v\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(ledger_advance(f->l, bad_ids[i], c, root, 32, &res, &diag),
                         VTPMCA_ERR_INVALID_ARG);
        ledger_entry entry;
        assert_int_equal(ledger_query(f->l, bad_ids[i], &entry, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_int_equal(ledger_clear(f->l, bad_ids[i], false, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_int_equal(ledger_set_require_admin_clear(f->l, bad_ids[i], true, &diag),
                         VTPMCA_ERR_INVALID_ARG);
    }
    assert_int_equal(ledger_advance(f->l, long_id + 1, c, root, 32, &res, &diag), VTPMCA_OK);

    assert_int_equal(ledger_advance(f->l, "vm-x", c, root, 0, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "got 0"));
    assert_int_equal(ledger_advance(f->l, "vm-x", c, root, 65, &res, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "got 65"));
    assert_int_equal(ledger_advance(f->l, "vm-x", c, NULL, 32, &res, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_advance(f->l, "vm-x", NULL, root, 32, &res, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_advance(f->l, "vm-x", c, root, 32, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_advance(NULL, "vm-x", c, root, 32, &res, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_query(f->l, "vm-x", NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_inspect(f->l, "vm-x", NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_get_stats(f->l, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_get_stats(NULL, &(ledger_stats){0}), VTPMCA_ERR_INVALID_ARG);
    /* A 64-byte root is the largest. */
    assert_int_equal(ledger_advance(f->l, "vm-x", c, root, 64, &res, &diag), VTPMCA_OK);

    /* Only the two valid advances reached the database. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM ledger", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);

    ledger *l = NULL;
    assert_int_equal(ledger_open(NULL, &l, &diag), VTPMCA_ERR_INVALID_ARG);
    ledger_config cfg = {0};
    assert_int_equal(ledger_open(&cfg, &l, &diag), VTPMCA_ERR_INVALID_ARG); /* no store */
    cfg.store = f->st;
    cfg.max_batch = STORE_LEDGER_BATCH_MAX + 1;
    assert_int_equal(ledger_open(&cfg, &l, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(l);
    ledger_close(NULL);
}

/* Another process changes a row behind the ledger's cache: the batch fails as a store error
 * (not as a refusal), nothing is overwritten, and the next request sees the new row. */
static void test_row_changed_behind_cache(void **state)
{
    struct fixture *f = *state;
    ctr c, next;
    make(c, 3, 3);
    add(c, 1, next);
    uint8_t root[32];
    make_root(root, 7, 0);
    ledger_result res;
    assert_int_equal(advance(f, "vm-c", c, root, sizeof(root), &res), VTPMCA_OK);
    raw_exec(f->path,
             "UPDATE ledger SET version = version + 1, locked = 1 WHERE instance = 'vm-c'");

    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_advance(f->l, "vm-c", next, root, sizeof(root), &res, &diag),
                     VTPMCA_ERR_STORE);
    assert_non_null(strstr(diag.msg, "changed since it was read"));
    assert_int_equal(res.outcome, 0); /* no decision reported */
    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.commit_failures, 1);
    assert_int_equal(s.errors, 1);
    assert_int_equal(raw_int(f->path, "vm-c", "locked"), 1);

    /* Reloaded: the other writer's lock now applies. */
    assert_int_equal(advance(f, "vm-c", next, root, sizeof(root), &res), VTPMCA_ERR_CONFLICT);
    assert_int_equal(res.outcome, LEDGER_REFUSED_LOCKED);
}

/* ---- Group commit ---- */

struct blocked_call {
    struct fixture *f;
    char instance[16];
    ctr counter;
    uint8_t root[32];
    vtpmca_err err;
    ledger_result res;
    pthread_t thread;
};

static void *blocked_advance(void *arg)
{
    struct blocked_call *b = arg;
    b->err = advance(b->f, b->instance, b->counter, b->root, sizeof(b->root), &b->res);
    return NULL;
}

static void wait_for_queue_depth(ledger *l, uint64_t depth)
{
    for (int i = 0; i < 5000; i++) {
        if (stats_of(l).queue_depth >= depth)
            return;
        usleep(1000);
    }
    fail_msg("the ledger queue never reached %llu", (unsigned long long)depth);
}

/* While a commit is stuck on another connection's write lock, requests pile up in the queue:
 * beyond max_queue they are refused with LIMIT, and the queued ones go in ONE next batch. */
static void test_batching_while_commit_in_flight(void **state)
{
    struct fixture *f = *state;
    close_ledger(f);
    ledger_config cfg = {.max_queue = 6};
    open_ledger(f, &cfg);

    sqlite3 *blocker = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &blocker, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    enum { CALLS = 7 };
    struct blocked_call calls[CALLS];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < CALLS; i++) {
        calls[i].f = f;
        /* Calls 1 and 2 share an instance: decided in arrival order within one batch. */
        snprintf(calls[i].instance, sizeof(calls[i].instance), "vm-b%d", i == 2 ? 1 : i);
        make(calls[i].counter, 0, i == 2 ? 2 : 1);
        make_root(calls[i].root, 8, (uint64_t)i);
        assert_int_equal(pthread_create(&calls[i].thread, NULL, blocked_advance, &calls[i]), 0);
        /* The first is taken by the writer (and blocks on the lock); the others queue. */
        wait_for_queue_depth(f->l, (uint64_t)i);
        if (i == 0)
            usleep(50000);
    }
    /* The queue is full: one more is refused at once. */
    ctr c;
    make(c, 0, 1);
    uint8_t root[32] = {0};
    ledger_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_advance(f->l, "vm-b9", c, root, sizeof(root), &res, &diag),
                     VTPMCA_ERR_LIMIT);
    assert_int_equal(stats_of(f->l).queue_depth, CALLS - 1);

    assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    for (int i = 0; i < CALLS; i++) {
        pthread_join(calls[i].thread, NULL);
        assert_int_equal(calls[i].err, VTPMCA_OK);
        assert_int_equal(calls[i].res.outcome, LEDGER_ACCEPTED);
    }
    assert_memory_equal(calls[2].res.latest.origin, calls[1].counter, sizeof(ctr));
    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.batches, 2);
    assert_int_equal(s.max_batch, CALLS - 1);
    assert_int_equal(s.commits, 2);
    assert_int_equal(s.committed_writes, CALLS - 1); /* two advances of vm-b1: one row write */
    assert_int_equal(raw_int(f->path, "vm-b1", "version"), 1);
    ctr stored, expect;
    raw_counter(f->path, "vm-b1", stored);
    make(expect, 0, 2);
    assert_memory_equal(stored, expect, sizeof(ctr));
}

struct closer {
    ledger *l;
    atomic_bool closed;
};

static void *close_in_background(void *arg)
{
    struct closer *c = arg;
    ledger_close(c->l);
    atomic_store(&c->closed, true);
    return NULL;
}

/* ledger_close answers every queued request before it returns. */
static void test_close_drains_queue(void **state)
{
    struct fixture *f = *state;
    sqlite3 *blocker = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &blocker, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    enum { CALLS = 4 };
    struct blocked_call calls[CALLS];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < CALLS; i++) {
        calls[i].f = f;
        snprintf(calls[i].instance, sizeof(calls[i].instance), "vm-d%d", i);
        make(calls[i].counter, 1, 1);
        make_root(calls[i].root, 9, (uint64_t)i);
        assert_int_equal(pthread_create(&calls[i].thread, NULL, blocked_advance, &calls[i]), 0);
        wait_for_queue_depth(f->l, (uint64_t)i);
        if (i == 0)
            usleep(50000);
    }
    struct closer closer = {f->l, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, close_in_background, &closer), 0);
    usleep(100000);
    assert_false(atomic_load(&closer.closed)); /* still answering the queue */
    assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    pthread_join(t, NULL);
    f->l = NULL;
    for (int i = 0; i < CALLS; i++) {
        pthread_join(calls[i].thread, NULL);
        assert_int_equal(calls[i].err, VTPMCA_OK);
        assert_int_equal(raw_int(f->path, calls[i].instance, "version"), 1);
    }
    /* Reopen for the teardown. */
    ledger_config cfg = {.store = f->st};
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_open(&cfg, &f->l, &diag), VTPMCA_OK);
}

enum { THREADS = 8, PER_THREAD = 1000, INSTANCES = 100 };

struct shared_run {
    struct fixture *f;
    ctr base[INSTANCES];
    _Atomic uint64_t next_k[INSTANCES];
    _Atomic uint64_t max_accepted[INSTANCES];
    _Atomic uint64_t refused[INSTANCES];
    _Atomic uint64_t accepted_total;
    _Atomic int failures;
};

struct worker {
    struct shared_run *run;
    unsigned seed;
    pthread_t thread;
};

static void note_failure(struct shared_run *run, const char *what, unsigned inst, uint64_t k)
{
    if (atomic_fetch_add(&run->failures, 1) < 5)
        print_error("instance %u k %llu: %s\n", inst, (unsigned long long)k, what);
}

static void *concurrent_worker(void *arg)
{
    struct worker *w = arg;
    struct shared_run *run = w->run;
    uint64_t seen[INSTANCES] = {0}; /* latest k this thread saw, per instance */
    for (int n = 0; n < PER_THREAD; n++) {
        unsigned inst = (unsigned)rand_r(&w->seed) % INSTANCES;
        uint64_t k = atomic_fetch_add(&run->next_k[inst], 1) + 1;
        ctr c;
        add(run->base[inst], k, c);
        uint8_t root[32];
        make_root(root, inst, k);
        char id[16];
        snprintf(id, sizeof(id), "inst-%03u", inst);
        ledger_result res;
        vtpmca_err err = advance(run->f, id, c, root, sizeof(root), &res);
        uint64_t latest_k = offset_of(run->base[inst], res.latest.counter);
        if (err == VTPMCA_OK && res.outcome == LEDGER_ACCEPTED) {
            if (latest_k != k)
                note_failure(run, "accepted but the ledger holds another counter", inst, k);
            uint64_t prev = atomic_load(&run->max_accepted[inst]);
            while (prev < k && !atomic_compare_exchange_weak(&run->max_accepted[inst], &prev, k))
                ;
            atomic_fetch_add(&run->accepted_total, 1);
        } else if (err == VTPMCA_ERR_CONFLICT && res.outcome == LEDGER_REFUSED_ROLLBACK) {
            /* Only a counter behind one already accepted may be refused. */
            if (latest_k <= k)
                note_failure(run, "refused although the ledger was behind", inst, k);
            atomic_fetch_add(&run->refused[inst], 1);
        } else {
            note_failure(run, "unexpected answer", inst, k);
            continue;
        }
        /* What one caller observes of an instance never goes backwards. */
        if (latest_k < seen[inst])
            note_failure(run, "the ledger went backwards", inst, k);
        seen[inst] = latest_k;
    }
    return NULL;
}

static void test_concurrent_advances(void **state)
{
    struct fixture *f = *state;
    struct shared_run *run = calloc(1, sizeof(*run));
    assert_non_null(run);
    run->f = f;
    for (unsigned i = 0; i < INSTANCES; i++) {
        /* Half of the instances start just before 2^128 and wrap during the run. */
        if (i % 2 == 0)
            make(run->base[i], UINT64_MAX, UINT64_MAX - 40);
        else
            make(run->base[i], 0x0123456789abcdefULL * i, 0xfedcba9876543210ULL ^ i);
    }
    struct worker workers[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        workers[t].run = run;
        workers[t].seed = 1234 + t;
        assert_int_equal(pthread_create(&workers[t].thread, NULL, concurrent_worker, &workers[t]),
                         0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(workers[t].thread, NULL);
    assert_int_equal(atomic_load(&run->failures), 0);

    uint64_t refused_total = 0;
    for (unsigned i = 0; i < INSTANCES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "inst-%03u", i);
        uint64_t k = atomic_load(&run->max_accepted[i]);
        if (k == 0)
            continue; /* never picked */
        ledger_record rec;
        vtpmca_diag diag = {{0}};
        assert_int_equal(ledger_inspect(f->l, id, &rec, &diag), VTPMCA_OK);
        ctr expect;
        add(run->base[i], k, expect);
        assert_memory_equal(rec.entry.counter, expect, sizeof(ctr));
        uint8_t root[32];
        make_root(root, i, k);
        assert_memory_equal(rec.entry.root, root, sizeof(root));
        assert_int_equal(rec.rollback_refusals, atomic_load(&run->refused[i]));
        refused_total += atomic_load(&run->refused[i]);
    }
    uint64_t accepted_total = atomic_load(&run->accepted_total);
    assert_int_equal(accepted_total + refused_total, THREADS * PER_THREAD);

    ledger_stats s = stats_of(f->l);
    assert_int_equal(s.accepted, accepted_total);
    assert_int_equal(s.refused_rollback, refused_total);
    assert_int_equal(s.errors, 0);
    /* Group commit: on average more than one advance per transaction (one fsync each). */
    print_message("    %llu advances in %llu commits (%.1f per commit, largest batch %llu)\n",
                  (unsigned long long)(accepted_total + refused_total),
                  (unsigned long long)s.commits,
                  (double)(accepted_total + refused_total) / (double)s.commits,
                  (unsigned long long)s.max_batch);
    assert_true(s.commits * 3 < (accepted_total + refused_total) * 2); /* > 1.5 on average */

    /* Every accepted advance is durable: an independent reader after close sees the maxima. */
    close_ledger(f);
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(f->path, &f->st, &diag), VTPMCA_OK);
    store_ledger_writer *w = NULL;
    assert_int_equal(store_ledger_writer_open(f->st, &w, &diag), VTPMCA_OK);
    for (unsigned i = 0; i < INSTANCES; i++) {
        uint64_t k = atomic_load(&run->max_accepted[i]);
        char id[16];
        snprintf(id, sizeof(id), "inst-%03u", i);
        store_ledger_state st;
        vtpmca_err err = store_ledger_load(w, id, &st, &diag);
        if (k == 0) {
            assert_int_equal(err, VTPMCA_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(err, VTPMCA_OK);
        assert_int_equal(offset_of(run->base[i], st.counter), k);
    }
    store_ledger_writer_close(w);
    store_close(f->st);
    f->st = NULL;
    open_ledger(f, NULL);
    free(run);
}

/* ---- The store layer directly ---- */

static store_ledger_write row(const char *instance, uint64_t version, uint8_t byte)
{
    store_ledger_write w;
    memset(&w, 0, sizeof(w));
    w.instance = instance;
    w.state.has_entry = true;
    memset(w.state.counter, byte, STORE_LEDGER_COUNTER_LEN);
    memset(w.state.origin, byte, STORE_LEDGER_COUNTER_LEN);
    memset(w.state.root, byte, 20);
    w.state.root_len = 20;
    w.state.updated_ms = 1700000000000;
    w.state.version = version;
    return w;
}

static void test_store_ledger_api(void **state)
{
    struct fixture *f = *state;
    vtpmca_diag diag = {{0}};
    store_ledger_writer *w = NULL;
    assert_int_equal(store_ledger_writer_open(NULL, &w, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_writer_open(f->st, &w, &diag), VTPMCA_OK);

    store_ledger_state s;
    assert_int_equal(store_ledger_load(w, "s-1", &s, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(store_ledger_load(w, "bad/id", &s, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_load(NULL, "s-1", &s, &diag), VTPMCA_ERR_INVALID_ARG);

    store_ledger_write batch[2] = {row("s-1", 1, 0x11), row("s-2", 1, 0x22)};
    assert_int_equal(store_ledger_apply_batch(w, batch, 2, &diag), VTPMCA_OK);
    assert_int_equal(store_ledger_load(w, "s-2", &s, &diag), VTPMCA_OK);
    assert_true(s.has_entry);
    assert_int_equal(s.version, 1);
    assert_int_equal(s.root_len, 20);
    assert_int_equal(s.root[19], 0x22);
    assert_int_equal(s.updated_ms, 1700000000000);

    /* All or nothing: the second write expects a version the row does not have. */
    batch[0] = row("s-1", 2, 0x33);
    batch[1] = row("s-2", 3, 0x44);
    assert_int_equal(store_ledger_apply_batch(w, batch, 2, &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "s-2"));
    assert_int_equal(store_ledger_load(w, "s-1", &s, &diag), VTPMCA_OK);
    assert_int_equal(s.version, 1);
    assert_int_equal(s.counter[0], 0x11);
    /* A second insert of an existing row conflicts too. */
    batch[0] = row("s-1", 1, 0x55);
    assert_int_equal(store_ledger_apply_batch(w, batch, 1, &diag), VTPMCA_ERR_CONFLICT);

    /* A settings-only row (no entry) round-trips with NULL columns. */
    store_ledger_write settings = row("s-3", 1, 0);
    memset(&settings.state, 0, sizeof(settings.state));
    settings.state.version = 1;
    settings.state.require_admin_clear = true;
    settings.state.locked = true;
    settings.state.fork_refusals = 7;
    settings.state.rollback_refusals = INT64_MAX;
    assert_int_equal(store_ledger_apply_batch(w, &settings, 1, &diag), VTPMCA_OK);
    assert_int_equal(store_ledger_load(w, "s-3", &s, &diag), VTPMCA_OK);
    assert_false(s.has_entry);
    assert_true(s.locked);
    assert_true(s.require_admin_clear);
    assert_int_equal(s.fork_refusals, 7);
    assert_int_equal(s.rollback_refusals, INT64_MAX);

    /* Argument checks, each naming the problem; nothing is written. */
    store_ledger_write bad = row("s-4", 1, 0x66);
    assert_int_equal(store_ledger_apply_batch(w, &bad, 0, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_apply_batch(w, NULL, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_apply_batch(NULL, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad.state.root_len = 0;
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "root"));
    bad.state.root_len = 65;
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad = row("s-4", 0, 0x66);
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad = row("s-4", 1, 0x66);
    bad.state.fork_refusals = (uint64_t)INT64_MAX + 1;
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad = row("s-4", 1, 0x66);
    bad.state.updated_ms = -1;
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad = row("s-4", 1, 0x66);
    bad.state.has_entry = false;
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    bad = row("s 4", 1, 0x66);
    assert_int_equal(store_ledger_apply_batch(w, &bad, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_load(w, "s-4", &s, &diag), VTPMCA_ERR_NOT_FOUND);

    /* The schema refuses malformed rows; a row forced in anyway reads as corrupt. */
    raw_exec(f->path, "PRAGMA ignore_check_constraints = ON;"
                      "INSERT INTO ledger VALUES ('s-5', x'00', x'00', x'00', 0, 0, 0, 0, 0, 1)");
    assert_int_equal(store_ledger_load(w, "s-5", &s, &diag), VTPMCA_ERR_STORE);
    assert_non_null(strstr(diag.msg, "corrupt"));
    store_ledger_writer_close(w);
    store_ledger_writer_close(NULL);
}

int main(void)
{
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_advance_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strictly_after_and_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_until_admin_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_changed_behind_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching_while_commit_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_advances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ledger_api, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
