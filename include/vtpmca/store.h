/* Persistent store interface. Backends: sqlite (default, WAL) and, later, PostgreSQL.
 * Every SQL statement of the product lives behind this interface. All functions are safe to
 * call from several threads on one handle. Text arguments are NUL-terminated UTF-8. */
#ifndef VTPMCA_STORE_H
#define VTPMCA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

typedef struct store store;

/* Size limits enforced by the store (VTPMCA_ERR_LIMIT beyond them). */
#define STORE_VCEK_DER_MAX 65536
#define STORE_POLICY_JSON_MAX (1024 * 1024)

/* Opens (creating if needed) a store and applies pending schema migrations in order, each
 * in its own transaction. `uri` is "sqlite:PATH" or a plain path (sqlite). Other schemes
 * are VTPMCA_ERR_UNSUPPORTED for now. A database file the store creates is mode 0600.
 * A database whose schema is newer than this build is refused (VTPMCA_ERR_UNSUPPORTED). */
vtpmca_err store_open(const char *uri, store **out, vtpmca_diag *diag);
void store_close(store *st);

/* Current schema version (number of applied migrations). */
vtpmca_err store_schema_version(store *st, int *out);

/* ---- VCEK / VLEK certificates, keyed by (product, signer, chip_id, TCB). ----
 * product: "Milan"/"Genoa"/"Turin"; signer: "vcek" or "vlek"; chip_id 64 bytes (zeros for
 * VLEK); tcb: the TCB_VERSION value as in the report's reported_tcb. source: "import",
 * "kds". Putting an identical key again replaces the certificate. der: 1..STORE_VCEK_DER_MAX
 * bytes, stored as given (the caller verifies it). */
vtpmca_err store_vcek_put(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                          size_t der_len, const char *source, vtpmca_diag *diag);
/* *der is malloc'd; VTPMCA_ERR_NOT_FOUND when absent. */
vtpmca_err store_vcek_get(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, uint8_t **der, size_t *der_len,
                          vtpmca_diag *diag);
/* Number of stored certificates (for status output). */
vtpmca_err store_vcek_count(store *st, uint64_t *out, vtpmca_diag *diag);

/* ---- Fleets and their versioned policies. ---- */
/* Fleet names: 1..63 chars of [A-Za-z0-9._-]. VTPMCA_ERR_CONFLICT if it exists.
 * description: NULL or up to 255 bytes of UTF-8 without control characters. */
vtpmca_err store_fleet_create(store *st, const char *name, const char *description,
                              vtpmca_diag *diag);
/* VTPMCA_OK if it exists, VTPMCA_ERR_NOT_FOUND if not. */
vtpmca_err store_fleet_exists(store *st, const char *name, vtpmca_diag *diag);

typedef struct {
    char name[64];
    char description[256];
    int64_t created_at;     /* unix seconds */
    uint32_t latest_policy; /* 0 when no policy yet */
} store_fleet;
/* *out is a malloc'd array of *n entries, ordered by name. */
vtpmca_err store_fleet_list(store *st, store_fleet **out, size_t *n, vtpmca_diag *diag);

/* Appends a new policy version (previous versions are kept) and returns its number,
 * starting at 1, in *version_out (may be NULL). The fleet must exist (else NOT_FOUND).
 * policy_json must be a JSON object of at most STORE_POLICY_JSON_MAX bytes (else PARSE /
 * LIMIT); its content is the policy module's business. author: 1..63 bytes of UTF-8 without
 * control characters. Concurrent puts get distinct, gapless versions. */
vtpmca_err store_policy_put(store *st, const char *fleet, const char *policy_json,
                            const char *author, uint32_t *version_out, vtpmca_diag *diag);
/* version 0 = latest. *policy_json is malloc'd; version_out (may be NULL) gets the version
 * returned. VTPMCA_ERR_NOT_FOUND for an unknown fleet, no policy yet, or an unknown version. */
vtpmca_err store_policy_get(store *st, const char *fleet, uint32_t version, char **policy_json,
                            uint32_t *version_out, vtpmca_diag *diag);

typedef struct {
    uint32_t version;
    int64_t created_at;
    char author[64];
} store_policy_version;
/* All versions of a fleet's policy, oldest first; *out malloc'd (NULL when *n is 0, i.e. the
 * fleet has no policy yet). VTPMCA_ERR_NOT_FOUND for an unknown fleet. */
vtpmca_err store_policy_history(store *st, const char *fleet, store_policy_version **out, size_t *n,
                                vtpmca_diag *diag);

#endif
