/* KBS sessions: a fixed-size, sharded table. Each shard keeps its slots in two lists in
 * creation order (un-attested; attested), so that with one TTL per list the oldest entry is
 * also the one that expires first, and eviction and purging look only at list heads. */
#include "vtpmca/kbs_session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vtpmca/encoding.h"

#define MAX_SHARDS 16
/* Attempts in progress are skipped when evicting; looking further than this many of them
 * means the shard is busy enough to refuse instead. */
#define EVICT_SCAN_LIMIT 64
#define NIL (-1)

enum { SLOT_FREE = 0, SLOT_PENDING, SLOT_ATTESTING, SLOT_ATTESTED };

typedef struct {
    snp_evidence evidence;
    EVP_PKEY *tee_key;
    uint8_t tee_thumbprint[KBS_TEE_THUMBPRINT_LEN];
    report_data_flavour flavour;
    uint8_t tee_point[JWE_EC_POINT_MAX];
    size_t tee_point_len;
} attested_data;

typedef struct {
    uint8_t id[KBS_SESSION_ID_BYTES];
    uint8_t nonce[KBS_NONCE_BYTES];
    uint64_t expires_ms;
    attested_data *attested;
    int state;
    int32_t bucket_next; /* hash chain */
    int32_t prev, next;  /* list links; the free list uses next only */
} slot;

typedef struct {
    int32_t head, tail;
} slot_list;

typedef struct {
    pthread_mutex_t lock;
    slot *slots;
    uint32_t n_slots;
    int32_t *buckets;
    uint32_t bucket_mask;
    slot_list pending;  /* un-attested (also while attesting), oldest first */
    slot_list attested; /* oldest first */
    int32_t free_head;
} shard;

struct kbs_session_table {
    kbs_session_config config;
    shard shards[MAX_SHARDS];
    unsigned n_shards;
    atomic_uint_fast64_t live, attested, created, evicted_expired, evicted_unattested, refused_full;
};

const char *kbs_session_status_name(kbs_session_status status)
{
    switch (status) {
    case KBS_SESSION_OK:
        return "ok";
    case KBS_SESSION_UNKNOWN:
        return "unknown";
    case KBS_SESSION_EXPIRED:
        return "expired";
    case KBS_SESSION_NOT_ATTESTED:
        return "not_attested";
    case KBS_SESSION_SPENT:
        return "nonce_spent";
    case KBS_SESSION_BUSY:
        return "busy";
    }
    return "unknown";
}

static uint64_t monotonic_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t kbs_session_now_ms(const kbs_session_table *table)
{
    if (table == NULL)
        return monotonic_ms(NULL);
    return table->config.clock(table->config.clock_ctx);
}

/* ---- lists and the hash index (shard lock held) ---- */

static void list_push_tail(shard *sh, slot_list *list, int32_t i)
{
    sh->slots[i].prev = list->tail;
    sh->slots[i].next = NIL;
    if (list->tail != NIL)
        sh->slots[list->tail].next = i;
    else
        list->head = i;
    list->tail = i;
}

static void list_remove(shard *sh, slot_list *list, int32_t i)
{
    slot *s = &sh->slots[i];
    if (s->prev != NIL)
        sh->slots[s->prev].next = s->next;
    else
        list->head = s->next;
    if (s->next != NIL)
        sh->slots[s->next].prev = s->prev;
    else
        list->tail = s->prev;
    s->prev = s->next = NIL;
}

static uint32_t bucket_of(const shard *sh, const uint8_t id[KBS_SESSION_ID_BYTES])
{
    /* Ids are random: any four bytes other than the shard selector make a fine hash. */
    uint32_t h =
        (uint32_t)id[4] | (uint32_t)id[5] << 8 | (uint32_t)id[6] << 16 | (uint32_t)id[7] << 24;
    return h & sh->bucket_mask;
}

static int32_t find(const shard *sh, const uint8_t id[KBS_SESSION_ID_BYTES])
{
    for (int32_t i = sh->buckets[bucket_of(sh, id)]; i != NIL; i = sh->slots[i].bucket_next) {
        if (memcmp(sh->slots[i].id, id, KBS_SESSION_ID_BYTES) == 0)
            return i;
    }
    return NIL;
}

static void free_attested(attested_data *data)
{
    if (data == NULL)
        return;
    EVP_PKEY_free(data->tee_key);
    OPENSSL_cleanse(data, sizeof(*data));
    free(data);
}

/* Removes a slot from the index and its list and returns it to the free list. */
static void reclaim(kbs_session_table *table, shard *sh, int32_t i)
{
    slot *s = &sh->slots[i];
    int32_t *link = &sh->buckets[bucket_of(sh, s->id)];
    while (*link != i)
        link = &sh->slots[*link].bucket_next;
    *link = s->bucket_next;
    list_remove(sh, s->state == SLOT_ATTESTED ? &sh->attested : &sh->pending, i);
    if (s->state == SLOT_ATTESTED)
        atomic_fetch_sub(&table->attested, 1);
    free_attested(s->attested);
    OPENSSL_cleanse(s, sizeof(*s));
    s->state = SLOT_FREE;
    s->prev = NIL;
    s->bucket_next = NIL;
    s->next = sh->free_head;
    sh->free_head = i;
    atomic_fetch_sub(&table->live, 1);
}

static bool is_expired(const slot *s, uint64_t now)
{
    return now >= s->expires_ms;
}

/* Reclaims expired sessions at the heads of both lists (each list is in expiry order).
 * An attempt in progress is left to finish. */
static void purge_expired(kbs_session_table *table, shard *sh, uint64_t now)
{
    slot_list *lists[2] = {&sh->pending, &sh->attested};
    for (int l = 0; l < 2; l++) {
        while (lists[l]->head != NIL) {
            slot *s = &sh->slots[lists[l]->head];
            if (!is_expired(s, now) || s->state == SLOT_ATTESTING)
                break;
            reclaim(table, sh, lists[l]->head);
            atomic_fetch_add(&table->evicted_expired, 1);
        }
    }
}

/* Frees one slot in a full shard: the oldest un-attested session not being attested. */
static bool evict_one(kbs_session_table *table, shard *sh)
{
    int scanned = 0;
    for (int32_t i = sh->pending.head; i != NIL && scanned < EVICT_SCAN_LIMIT;
         i = sh->slots[i].next, scanned++) {
        if (sh->slots[i].state == SLOT_PENDING) {
            reclaim(table, sh, i);
            atomic_fetch_add(&table->evicted_unattested, 1);
            return true;
        }
    }
    return false;
}

/* ---- ids ---- */

/* Parses the 32 lower-case hex characters of an id; anything else names no session. */
static bool parse_id(const char *text, uint8_t id[KBS_SESSION_ID_BYTES])
{
    if (text == NULL || strlen(text) != KBS_SESSION_ID_HEX)
        return false;
    for (size_t i = 0; i < KBS_SESSION_ID_HEX; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return vt_hex_decode_fixed(text, id, KBS_SESSION_ID_BYTES) == VTPMCA_OK;
}

static shard *shard_of(kbs_session_table *table, const uint8_t id[KBS_SESSION_ID_BYTES])
{
    return &table->shards[id[0] % table->n_shards];
}

/* ---- table ---- */

static vtpmca_err shard_init(shard *sh, uint32_t n_slots)
{
    uint32_t buckets = 1;
    while (buckets < 2 * n_slots)
        buckets <<= 1;
    sh->slots = calloc(n_slots, sizeof(*sh->slots));
    sh->buckets = malloc(buckets * sizeof(*sh->buckets));
    if (sh->slots == NULL || sh->buckets == NULL)
        return VTPMCA_ERR_NOMEM;
    if (pthread_mutex_init(&sh->lock, NULL) != 0)
        return VTPMCA_ERR_INTERNAL;
    sh->n_slots = n_slots;
    sh->bucket_mask = buckets - 1;
    for (uint32_t b = 0; b < buckets; b++)
        sh->buckets[b] = NIL;
    sh->pending.head = sh->pending.tail = NIL;
    sh->attested.head = sh->attested.tail = NIL;
    for (uint32_t i = 0; i < n_slots; i++) {
        sh->slots[i].state = SLOT_FREE;
        sh->slots[i].bucket_next = NIL;
        sh->slots[i].prev = NIL;
        sh->slots[i].next = i + 1 < n_slots ? (int32_t)(i + 1) : NIL;
    }
    sh->free_head = 0;
    return VTPMCA_OK;
}

vtpmca_err kbs_session_table_new(const kbs_session_config *config, kbs_session_table **out,
                                 vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sessions: missing argument");
    kbs_session_config cfg = {0};
    if (config != NULL)
        cfg = *config;
    if (cfg.capacity == 0)
        cfg.capacity = KBS_SESSION_DEFAULT_CAPACITY;
    if (cfg.auth_ttl_s == 0)
        cfg.auth_ttl_s = KBS_SESSION_DEFAULT_AUTH_TTL_S;
    if (cfg.attested_ttl_s == 0)
        cfg.attested_ttl_s = KBS_SESSION_DEFAULT_ATTESTED_TTL_S;
    if (cfg.clock == NULL) {
        cfg.clock = monotonic_ms;
        cfg.clock_ctx = NULL;
    }
    if (cfg.capacity > KBS_SESSION_MAX_CAPACITY || cfg.auth_ttl_s > KBS_SESSION_MAX_TTL_S ||
        cfg.attested_ttl_s > KBS_SESSION_MAX_TTL_S)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "sessions: capacity must be at most %u and TTLs at most %u s",
                           KBS_SESSION_MAX_CAPACITY, KBS_SESSION_MAX_TTL_S);
    kbs_session_table *table = calloc(1, sizeof(*table));
    if (table == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    table->config = cfg;
    table->n_shards = cfg.capacity < MAX_SHARDS ? cfg.capacity : MAX_SHARDS;
    vtpmca_err err = VTPMCA_OK;
    unsigned initialised = 0;
    for (unsigned i = 0; i < table->n_shards && err == VTPMCA_OK; i++) {
        /* Spread the capacity exactly: the shards together hold `capacity` slots. */
        uint32_t n = cfg.capacity / table->n_shards + (i < cfg.capacity % table->n_shards);
        err = shard_init(&table->shards[i], n);
        if (err == VTPMCA_OK)
            initialised++;
        else {
            free(table->shards[i].slots);
            free(table->shards[i].buckets);
        }
    }
    if (err != VTPMCA_OK) {
        table->n_shards = initialised;
        kbs_session_table_free(table);
        return vtpmca_fail(diag, err, "sessions: cannot allocate %u slots", cfg.capacity);
    }
    *out = table;
    return VTPMCA_OK;
}

void kbs_session_table_free(kbs_session_table *table)
{
    if (table == NULL)
        return;
    for (unsigned i = 0; i < table->n_shards; i++) {
        shard *sh = &table->shards[i];
        for (uint32_t k = 0; k < sh->n_slots; k++)
            free_attested(sh->slots[k].attested);
        OPENSSL_cleanse(sh->slots, sh->n_slots * sizeof(*sh->slots));
        free(sh->slots);
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(table);
}

void kbs_session_table_config(const kbs_session_table *table, kbs_session_config *out)
{
    if (table != NULL && out != NULL)
        *out = table->config;
}

vtpmca_err kbs_session_create(kbs_session_table *table, kbs_session_info *out, vtpmca_diag *diag)
{
    if (table == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sessions: missing argument");
    uint8_t id[KBS_SESSION_ID_BYTES], nonce[KBS_NONCE_BYTES];
    if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(nonce, sizeof(nonce)) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the random generator failed");
    shard *sh = shard_of(table, id);
    pthread_mutex_lock(&sh->lock);
    uint64_t now = kbs_session_now_ms(table);
    purge_expired(table, sh, now);
    /* A repeated 128-bit random id would be a broken generator: refuse, never merge. */
    bool collision = find(sh, id) != NIL;
    bool room = !collision && (sh->free_head != NIL || evict_one(table, sh));
    if (!room) {
        pthread_mutex_unlock(&sh->lock);
        OPENSSL_cleanse(nonce, sizeof(nonce));
        if (collision)
            return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the random generator repeated an id");
        atomic_fetch_add(&table->refused_full, 1);
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "the session table is full of attested sessions; retry later");
    }
    int32_t i = sh->free_head;
    slot *s = &sh->slots[i];
    sh->free_head = s->next;
    memcpy(s->id, id, sizeof(id));
    memcpy(s->nonce, nonce, sizeof(nonce));
    s->expires_ms = now + (uint64_t)table->config.auth_ttl_s * 1000u;
    s->attested = NULL;
    s->state = SLOT_PENDING;
    uint32_t b = bucket_of(sh, id);
    s->bucket_next = sh->buckets[b];
    sh->buckets[b] = i;
    list_push_tail(sh, &sh->pending, i);
    atomic_fetch_add(&table->live, 1);
    atomic_fetch_add(&table->created, 1);
    out->expires_ms = s->expires_ms;
    pthread_mutex_unlock(&sh->lock);

    vt_hex_encode(id, sizeof(id), out->id, sizeof(out->id));
    memcpy(out->nonce, nonce, sizeof(nonce));
    OPENSSL_cleanse(nonce, sizeof(nonce));
    return VTPMCA_OK;
}

/* Looks a session up with the shard locked; reclaims it when it has expired (unless an
 * attempt is running on it). Returns the slot or NIL with *status set. */
static int32_t lookup_locked(kbs_session_table *table, shard *sh, const uint8_t *id,
                             kbs_session_status *status)
{
    int32_t i = find(sh, id);
    if (i == NIL) {
        *status = KBS_SESSION_UNKNOWN;
        return NIL;
    }
    if (sh->slots[i].state != SLOT_ATTESTING &&
        is_expired(&sh->slots[i], kbs_session_now_ms(table))) {
        reclaim(table, sh, i);
        atomic_fetch_add(&table->evicted_expired, 1);
        *status = KBS_SESSION_EXPIRED;
        return NIL;
    }
    *status = KBS_SESSION_OK;
    return i;
}

vtpmca_err kbs_session_begin_attest(kbs_session_table *table, const char *id_text,
                                    uint8_t nonce[KBS_NONCE_BYTES], kbs_session_status *status)
{
    kbs_session_status ignored;
    if (status == NULL)
        status = &ignored;
    *status = KBS_SESSION_UNKNOWN;
    if (table == NULL || nonce == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t id[KBS_SESSION_ID_BYTES];
    if (!parse_id(id_text, id))
        return VTPMCA_ERR_NOT_FOUND;
    shard *sh = shard_of(table, id);
    pthread_mutex_lock(&sh->lock);
    vtpmca_err err = VTPMCA_OK;
    int32_t i = lookup_locked(table, sh, id, status);
    if (i == NIL) {
        err = VTPMCA_ERR_NOT_FOUND;
    } else if (sh->slots[i].state == SLOT_ATTESTED) {
        *status = KBS_SESSION_SPENT;
        err = VTPMCA_ERR_CONFLICT;
    } else if (sh->slots[i].state == SLOT_ATTESTING) {
        *status = KBS_SESSION_BUSY;
        err = VTPMCA_ERR_CONFLICT;
    } else {
        sh->slots[i].state = SLOT_ATTESTING;
        memcpy(nonce, sh->slots[i].nonce, KBS_NONCE_BYTES);
    }
    pthread_mutex_unlock(&sh->lock);
    return err;
}

void kbs_session_abort_attest(kbs_session_table *table, const char *id_text)
{
    uint8_t id[KBS_SESSION_ID_BYTES];
    if (table == NULL || !parse_id(id_text, id))
        return;
    shard *sh = shard_of(table, id);
    pthread_mutex_lock(&sh->lock);
    int32_t i = find(sh, id);
    if (i != NIL && sh->slots[i].state == SLOT_ATTESTING)
        sh->slots[i].state = SLOT_PENDING;
    pthread_mutex_unlock(&sh->lock);
}

vtpmca_err kbs_session_finish_attest(kbs_session_table *table, const char *id_text,
                                     const kbs_attestation *attestation, uint64_t *expires_ms,
                                     vtpmca_diag *diag)
{
    uint8_t id[KBS_SESSION_ID_BYTES];
    if (table == NULL || attestation == NULL || attestation->evidence == NULL ||
        attestation->tee_key == NULL || attestation->tee_thumbprint == NULL ||
        (attestation->tee_point == NULL && attestation->tee_point_len > 0) ||
        attestation->tee_point_len > JWE_EC_POINT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sessions: missing argument");
    if (!parse_id(id_text, id))
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "no such session");
    /* Allocate before taking the lock: the critical section stays a few pointer moves. */
    attested_data *data = calloc(1, sizeof(*data));
    if (data == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    data->evidence = *attestation->evidence;
    data->tee_key = attestation->tee_key;
    EVP_PKEY_up_ref(data->tee_key);
    memcpy(data->tee_thumbprint, attestation->tee_thumbprint, KBS_TEE_THUMBPRINT_LEN);
    data->flavour = attestation->flavour;
    if (attestation->tee_point_len > 0) {
        memcpy(data->tee_point, attestation->tee_point, attestation->tee_point_len);
        data->tee_point_len = attestation->tee_point_len;
    } else if (jwe_ec_curve_name(attestation->tee_key) != NULL) {
        vtpmca_err err =
            jwe_ec_point_encode(attestation->tee_key, data->tee_point, &data->tee_point_len, diag);
        if (err != VTPMCA_OK) {
            free_attested(data);
            return err;
        }
    }

    shard *sh = shard_of(table, id);
    pthread_mutex_lock(&sh->lock);
    int32_t i = find(sh, id);
    if (i == NIL || sh->slots[i].state != SLOT_ATTESTING) {
        pthread_mutex_unlock(&sh->lock);
        free_attested(data);
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "the session has no attestation running");
    }
    slot *s = &sh->slots[i];
    list_remove(sh, &sh->pending, i);
    s->attested = data;
    s->state = SLOT_ATTESTED;
    s->expires_ms = kbs_session_now_ms(table) + (uint64_t)table->config.attested_ttl_s * 1000u;
    list_push_tail(sh, &sh->attested, i);
    atomic_fetch_add(&table->attested, 1);
    if (expires_ms != NULL)
        *expires_ms = s->expires_ms;
    pthread_mutex_unlock(&sh->lock);
    return VTPMCA_OK;
}

vtpmca_err kbs_session_get_attested(kbs_session_table *table, const char *id_text,
                                    kbs_session_view *out, kbs_session_status *status)
{
    kbs_session_status ignored;
    if (status == NULL)
        status = &ignored;
    *status = KBS_SESSION_UNKNOWN;
    if (table == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    uint8_t id[KBS_SESSION_ID_BYTES];
    if (!parse_id(id_text, id))
        return VTPMCA_ERR_NOT_FOUND;
    shard *sh = shard_of(table, id);
    pthread_mutex_lock(&sh->lock);
    int32_t i = lookup_locked(table, sh, id, status);
    if (i != NIL && sh->slots[i].state != SLOT_ATTESTED) {
        *status = KBS_SESSION_NOT_ATTESTED;
        i = NIL;
    }
    if (i != NIL) {
        const slot *s = &sh->slots[i];
        memcpy(out->nonce, s->nonce, KBS_NONCE_BYTES);
        out->evidence = s->attested->evidence;
        out->tee_key = s->attested->tee_key;
        EVP_PKEY_up_ref(out->tee_key);
        memcpy(out->tee_thumbprint, s->attested->tee_thumbprint, KBS_TEE_THUMBPRINT_LEN);
        out->flavour = s->attested->flavour;
        out->expires_ms = s->expires_ms;
        memcpy(out->tee_point, s->attested->tee_point, s->attested->tee_point_len);
        out->tee_point_len = s->attested->tee_point_len;
    }
    pthread_mutex_unlock(&sh->lock);
    if (i == NIL)
        return VTPMCA_ERR_NOT_FOUND;
    memcpy(out->id, id_text, KBS_SESSION_ID_HEX + 1);
    return VTPMCA_OK;
}

void kbs_session_view_clear(kbs_session_view *view)
{
    if (view == NULL)
        return;
    EVP_PKEY_free(view->tee_key);
    OPENSSL_cleanse(view, sizeof(*view));
}

void kbs_session_get_stats(const kbs_session_table *table, kbs_session_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (table == NULL)
        return;
    kbs_session_table *t = (kbs_session_table *)table; /* atomics load through non-const */
    out->live = atomic_load(&t->live);
    out->attested = atomic_load(&t->attested);
    out->created = atomic_load(&t->created);
    out->evicted_expired = atomic_load(&t->evicted_expired);
    out->evicted_unattested = atomic_load(&t->evicted_unattested);
    out->refused_full = atomic_load(&t->refused_full);
}
