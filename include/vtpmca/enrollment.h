/* Enrollment of instances (SVSMs) for persistence-key release: which instance, under which
 * fleet policy, at which KBS resource path, optionally bound to a host_data value, and how
 * its key is kept. Used by the admin CLI and the admin API. Every enrollment is audited
 * (action "enroll") in the same transaction as the enrollment itself. */
#ifndef VTPMCA_ENROLLMENT_H
#define VTPMCA_ENROLLMENT_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/store.h"

/* Persistence keys the service generates are 256-bit. */
#define ENROLLMENT_KEY_LEN 32
/* Repository and type of generated resource paths: "vtpmca/persistence-key/<tag>", with a
 * tag of 32 lower-case hex digits from 128 random bits, so paths cannot be guessed. */
#define ENROLLMENT_PATH_PREFIX "vtpmca/persistence-key/"

typedef struct {
    const char *instance_id;   /* 1..63 chars of [A-Za-z0-9._:-] */
    const char *fleet;         /* an existing fleet; its policy governs release */
    const uint8_t *host_data;  /* 32 bytes the attested HOST_DATA must equal, or NULL */
    const char *resource_path; /* "<repo>/<type>/<tag>", or NULL to generate one */
    store_key_mode mode;       /* generated: the service makes and keeps the key;
                                  wrapped: the instance presents enrollment_wrap_key's blob */
    const char *actor;         /* who enrolls, for the audit log: 1..63 bytes */
} enroll_request;

typedef struct {
    char resource_path[STORE_RESOURCE_PATH_MAX + 1]; /* given or generated */
} enroll_result;

/* Enrolls one instance. Generated mode: a fresh 256-bit key (RAND_priv_bytes) is stored
 * wrapped under the master key (context "instance:<id>"); wrapped mode stores no key.
 * Errors: INVALID_ARG (bad request), NOT_FOUND (unknown fleet), CONFLICT (id or resource
 * path enrolled already); nothing is stored on failure. */
vtpmca_err enrollment_enroll(store *st, const keyvault *vault, const enroll_request *req,
                             enroll_result *res, vtpmca_diag *diag);

/* Enrolls n (>= 1) instances all or nothing, in one transaction (no per-item sync, for bulk
 * imports). results holds n entries. On failure *failed_index (may be NULL) is the request
 * at fault (n when none is) and the diag names it. */
vtpmca_err enrollment_enroll_batch(store *st, const keyvault *vault, const enroll_request *reqs,
                                   size_t n, enroll_result *results, size_t *failed_index,
                                   vtpmca_diag *diag);

/* Wrapped-key mode: wraps a key the admin brings (1..KEYVAULT_KEY_MAX bytes) for an
 * instance, with context "instance-wrapped:<id>". The blob (malloc'd) is handed to the
 * instance, which presents it at release time; it unwraps for no other instance. */
vtpmca_err enrollment_wrap_key(const keyvault *vault, const char *instance_id, const uint8_t *key,
                               size_t key_len, uint8_t **blob, size_t *blob_len, vtpmca_diag *diag);

/* ---- Shared with key release ---- */

#define ENROLLMENT_CONTEXT_MAX (sizeof("instance-wrapped:") + STORE_INSTANCE_ID_MAX)

/* The key vault context of an instance's key: "instance:<id>" (generated mode) or
 * "instance-wrapped:<id>" (wrapped mode), so a blob made for one purpose and instance never
 * unwraps for another. */
vtpmca_err enrollment_key_context(store_key_mode mode, const char *instance_id,
                                  char out[ENROLLMENT_CONTEXT_MAX], vtpmca_diag *diag);

#endif
