/* In-memory cache of parsed fleet policies, keyed by (fleet, version). */
#include "vtpmca/policy_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLEET_NAME_MAX 64 /* store: 1..63 characters */

struct cached_policy {
    char fleet[FLEET_NAME_MAX];
    uint32_t version;
    snp_policy *policy;
    atomic_uint refs; /* one for the cache while listed, one per holder */
};

/* The answer to "which version is latest" for one fleet, and when the store gave it. */
typedef struct {
    char fleet[FLEET_NAME_MAX];
    uint32_t version;
    uint64_t fetched_ms;
} latest_entry;

/* Linear scans under one mutex: with a few hundred entries a scan costs far less than the
 * ECDSA verification that follows, and the lock is never held during store I/O or parsing. */
struct policy_cache {
    store *st;
    unsigned capacity;
    unsigned refresh_ms;
    pthread_mutex_t lock;
    cached_policy **entries; /* capacity slots */
    uint64_t *last_used;     /* access tick per slot, for LRU eviction */
    size_t n_entries;
    latest_entry *latest; /* capacity slots */
    size_t n_latest;
    uint64_t tick;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

vtpmca_err policy_cache_new(store *st, unsigned capacity, unsigned refresh_ms, policy_cache **out)
{
    if (st == NULL || capacity == 0 || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    policy_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL)
        return VTPMCA_ERR_NOMEM;
    cache->entries = calloc(capacity, sizeof(*cache->entries));
    cache->last_used = calloc(capacity, sizeof(*cache->last_used));
    cache->latest = calloc(capacity, sizeof(*cache->latest));
    if (cache->entries == NULL || cache->last_used == NULL || cache->latest == NULL ||
        pthread_mutex_init(&cache->lock, NULL) != 0) {
        free(cache->entries);
        free(cache->last_used);
        free(cache->latest);
        free(cache);
        return VTPMCA_ERR_NOMEM;
    }
    cache->st = st;
    cache->capacity = capacity;
    cache->refresh_ms = refresh_ms;
    *out = cache;
    return VTPMCA_OK;
}

void cached_policy_release(cached_policy *entry)
{
    if (entry == NULL)
        return;
    if (atomic_fetch_sub(&entry->refs, 1) == 1) {
        snp_policy_free(entry->policy);
        free(entry);
    }
}

void policy_cache_free(policy_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->n_entries; i++)
        cached_policy_release(cache->entries[i]);
    pthread_mutex_destroy(&cache->lock);
    free(cache->entries);
    free(cache->last_used);
    free(cache->latest);
    free(cache);
}

const snp_policy *cached_policy_get(const cached_policy *entry)
{
    return entry != NULL ? entry->policy : NULL;
}

uint32_t cached_policy_version(const cached_policy *entry)
{
    return entry != NULL ? entry->version : 0;
}

size_t policy_cache_size(policy_cache *cache)
{
    if (cache == NULL)
        return 0;
    pthread_mutex_lock(&cache->lock);
    size_t n = cache->n_entries;
    pthread_mutex_unlock(&cache->lock);
    return n;
}

/* Caller holds the lock. Returns a new reference or NULL. */
static cached_policy *find_locked(policy_cache *cache, const char *fleet, uint32_t version)
{
    for (size_t i = 0; i < cache->n_entries; i++) {
        cached_policy *e = cache->entries[i];
        if (e->version == version && strcmp(e->fleet, fleet) == 0) {
            cache->last_used[i] = ++cache->tick;
            atomic_fetch_add(&e->refs, 1);
            return e;
        }
    }
    return NULL;
}

/* Caller holds the lock. Version 0 when unknown or stale. */
static uint32_t latest_locked(policy_cache *cache, const char *fleet, uint64_t now)
{
    for (size_t i = 0; i < cache->n_latest; i++) {
        latest_entry *l = &cache->latest[i];
        if (strcmp(l->fleet, fleet) == 0)
            return now - l->fetched_ms < cache->refresh_ms ? l->version : 0;
    }
    return 0;
}

/* Caller holds the lock. Replaces the fleet's answer, or the oldest one when full. */
static void remember_latest_locked(policy_cache *cache, const char *fleet, uint32_t version,
                                   uint64_t now)
{
    size_t slot = cache->n_latest;
    for (size_t i = 0; i < cache->n_latest; i++) {
        if (strcmp(cache->latest[i].fleet, fleet) == 0) {
            slot = i;
            break;
        }
    }
    if (slot == cache->n_latest) {
        if (cache->n_latest < cache->capacity) {
            cache->n_latest++;
        } else {
            slot = 0;
            for (size_t i = 1; i < cache->n_latest; i++) {
                if (cache->latest[i].fetched_ms < cache->latest[slot].fetched_ms)
                    slot = i;
            }
        }
    }
    snprintf(cache->latest[slot].fleet, sizeof(cache->latest[slot].fleet), "%s", fleet);
    cache->latest[slot].version = version;
    cache->latest[slot].fetched_ms = now;
}

/* Caller holds the lock; `entry` arrives with the cache's reference. */
static void insert_locked(policy_cache *cache, cached_policy *entry)
{
    size_t slot = cache->n_entries;
    if (cache->n_entries == cache->capacity) {
        slot = 0;
        for (size_t i = 1; i < cache->n_entries; i++) {
            if (cache->last_used[i] < cache->last_used[slot])
                slot = i;
        }
        cached_policy_release(cache->entries[slot]);
    } else {
        cache->n_entries++;
    }
    cache->entries[slot] = entry;
    cache->last_used[slot] = ++cache->tick;
}

/* Says which part of (fleet, version) the store does not have. */
static vtpmca_err explain_missing(policy_cache *cache, const char *fleet, uint32_t version,
                                  policy_lookup *lookup, vtpmca_diag *diag)
{
    vtpmca_err err = store_fleet_exists(cache->st, fleet, NULL);
    if (err == VTPMCA_ERR_NOT_FOUND) {
        *lookup = POLICY_UNKNOWN_FLEET;
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "unknown fleet '%s'", fleet);
    }
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "store: cannot look up fleet '%s'", fleet);
    if (version == 0) {
        *lookup = POLICY_NO_POLICY;
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "fleet '%s' has no policy", fleet);
    }
    *lookup = POLICY_UNKNOWN_VERSION;
    return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "fleet '%s' has no policy version %u", fleet,
                       version);
}

vtpmca_err policy_cache_get(policy_cache *cache, const char *fleet, uint32_t version,
                            cached_policy **out, policy_lookup *lookup, vtpmca_diag *diag)
{
    if (cache == NULL || fleet == NULL || out == NULL || lookup == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "policy cache: missing argument");
    *out = NULL;
    *lookup = POLICY_FOUND;
    size_t fleet_len = strlen(fleet);
    if (fleet_len == 0 || fleet_len >= FLEET_NAME_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "fleet name must be 1..%d characters",
                           FLEET_NAME_MAX - 1);

    uint64_t now = now_ms();
    pthread_mutex_lock(&cache->lock);
    uint32_t wanted = version != 0 ? version : latest_locked(cache, fleet, now);
    cached_policy *hit = wanted != 0 ? find_locked(cache, fleet, wanted) : NULL;
    pthread_mutex_unlock(&cache->lock);
    if (hit != NULL) {
        *out = hit;
        return VTPMCA_OK;
    }

    char *json = NULL;
    uint32_t found_version = 0;
    vtpmca_diag store_diag;
    vtpmca_diag_clear(&store_diag);
    vtpmca_err err = store_policy_get(cache->st, fleet, wanted, &json, &found_version, &store_diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return explain_missing(cache, fleet, wanted, lookup, diag);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s", store_diag.msg);

    if (version == 0) {
        pthread_mutex_lock(&cache->lock);
        remember_latest_locked(cache, fleet, found_version, now);
        hit = find_locked(cache, fleet, found_version);
        pthread_mutex_unlock(&cache->lock);
        if (hit != NULL) { /* the latest version did not change: only the TTL was renewed */
            free(json);
            *out = hit;
            return VTPMCA_OK;
        }
    }

    cached_policy *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        free(json);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "policy cache: out of memory");
    }
    vtpmca_diag parse_diag;
    vtpmca_diag_clear(&parse_diag);
    err = snp_policy_from_json(json, strlen(json), &entry->policy, &parse_diag);
    free(json);
    if (err != VTPMCA_OK) {
        free(entry);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "stored policy %s v%u does not parse: %.160s",
                           fleet, found_version, parse_diag.msg);
    }
    memcpy(entry->fleet, fleet, fleet_len + 1);
    entry->version = found_version;
    atomic_init(&entry->refs, 2); /* the cache's and the caller's */

    pthread_mutex_lock(&cache->lock);
    /* Another thread may have loaded the same version meanwhile: keep one copy. */
    hit = find_locked(cache, fleet, found_version);
    if (hit == NULL)
        insert_locked(cache, entry);
    pthread_mutex_unlock(&cache->lock);
    if (hit != NULL) {
        snp_policy_free(entry->policy);
        free(entry);
        entry = hit;
    }
    *out = entry;
    return VTPMCA_OK;
}
