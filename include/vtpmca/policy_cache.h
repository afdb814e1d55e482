/* Parsed fleet policies kept in memory so an appraisal does not re-read and re-parse the
 * policy document. The store stays the source of truth:
 *  - a specific (fleet, version) never changes once written, so it is cached until evicted
 *    (least recently used beyond `capacity` entries);
 *  - "latest" is resolved to a version number that is reused for `refresh_ms`; after that the
 *    store is asked again, so a newly added policy version is used within refresh_ms.
 * Entries are reference counted: eviction never frees a policy a request is still using. */
#ifndef VTPMCA_POLICY_CACHE_H
#define VTPMCA_POLICY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/store.h"

typedef struct policy_cache policy_cache;
typedef struct cached_policy cached_policy;

/* `st` is not owned and must outlive the cache. capacity >= 1. */
vtpmca_err policy_cache_new(store *st, unsigned capacity, unsigned refresh_ms, policy_cache **out);
void policy_cache_free(policy_cache *cache);

typedef enum {
    POLICY_FOUND = 0,
    POLICY_UNKNOWN_FLEET,
    POLICY_NO_POLICY,       /* the fleet exists but has no policy yet */
    POLICY_UNKNOWN_VERSION, /* the fleet has no such policy version */
} policy_lookup;

/* Looks up a fleet's policy; version 0 = latest. On success *out is a reference to release
 * with cached_policy_release. VTPMCA_ERR_NOT_FOUND sets *lookup to say what was missing; a
 * stored policy that no longer parses is VTPMCA_ERR_PARSE. */
vtpmca_err policy_cache_get(policy_cache *cache, const char *fleet, uint32_t version,
                            cached_policy **out, policy_lookup *lookup, vtpmca_diag *diag);

const snp_policy *cached_policy_get(const cached_policy *entry);
uint32_t cached_policy_version(const cached_policy *entry);
void cached_policy_release(cached_policy *entry);

/* Number of parsed policies held (for metrics). */
size_t policy_cache_size(policy_cache *cache);

#endif
