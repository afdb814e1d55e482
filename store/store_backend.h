/* Private interface between store.c (argument validation, URI dispatch) and a storage backend.
 * Every argument reaching a backend has been validated by store.c, so backends only deal
 * with the database. A backend handle must be safe to use from several threads at once.
 * To add a backend (e.g. PostgreSQL): implement these operations in store/store_<name>.c,
 * keep the schema version numbering of store_sqlite.c, and route its URI in store_open. */
#ifndef VTPMCA_STORE_BACKEND_H
#define VTPMCA_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/store.h"

struct store_backend_ops {
    const char *name;
    /* `location` is the URI without the backend's scheme prefix. */
    vtpmca_err (*open)(const char *location, void **impl, vtpmca_diag *diag);
    void (*close)(void *impl);
    vtpmca_err (*schema_version)(void *impl, int *out, vtpmca_diag *diag);

    vtpmca_err (*vcek_put)(void *impl, const char *product, const char *signer,
                           const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                           size_t der_len, const char *source, vtpmca_diag *diag);
    vtpmca_err (*vcek_get)(void *impl, const char *product, const char *signer,
                           const uint8_t chip_id[64], uint64_t tcb, uint8_t **der, size_t *der_len,
                           vtpmca_diag *diag);
    vtpmca_err (*vcek_count)(void *impl, uint64_t *out, vtpmca_diag *diag);

    vtpmca_err (*fleet_create)(void *impl, const char *name, const char *description,
                               vtpmca_diag *diag);
    vtpmca_err (*fleet_exists)(void *impl, const char *name, vtpmca_diag *diag);
    vtpmca_err (*fleet_list)(void *impl, store_fleet **out, size_t *n, vtpmca_diag *diag);

    vtpmca_err (*policy_put)(void *impl, const char *fleet, const char *policy_json,
                             const char *author, uint32_t *version_out, vtpmca_diag *diag);
    vtpmca_err (*policy_get)(void *impl, const char *fleet, uint32_t version, char **policy_json,
                             uint32_t *version_out, vtpmca_diag *diag);
    vtpmca_err (*policy_history)(void *impl, const char *fleet, store_policy_version **out,
                                 size_t *n, vtpmca_diag *diag);
};

extern const struct store_backend_ops store_sqlite_backend;

#endif
