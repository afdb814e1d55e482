/* sqlite storage of EK re-enrollment grants: the `ek_reenroll` table (its migration is in
 * store_sqlite.c). An admin grants an instance one certification with another EK than the
 * one certified before; the certification that uses the grant takes (deletes) it in one
 * write transaction, so a grant is used at most once. Runs on the backend's connection pool
 * through store_sqlite_run; arguments were validated by store.c. Rare calls: statements are
 * prepared per call. */
#include "store_backend.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <time.h>

static vtpmca_err grant_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    const char *instance_id = ctx;
    bool exists = false;
    /* Checked first so that an unknown instance is NOT_FOUND rather than a foreign key error. */
    vtpmca_err err = store_sqlite_exec(db, "SELECT 1 FROM instance WHERE id = ?1", instance_id, 0,
                                       "looking up an instance", &exists, NULL, NULL, diag);
    if (err == VTPMCA_OK && !exists)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no instance %s is enrolled",
                          instance_id);
    if (err == VTPMCA_OK)
        err = store_sqlite_exec(
            db,
            "INSERT INTO ek_reenroll (instance_id, granted_at) VALUES (?1, ?2)"
            " ON CONFLICT (instance_id) DO UPDATE SET granted_at = excluded.granted_at",
            instance_id, (int64_t)time(NULL), "granting an EK re-enrollment", NULL, NULL, NULL,
            diag);
    return err;
}

vtpmca_err store_sqlite_ek_reenroll_grant(void *impl, const char *instance_id, vtpmca_diag *diag)
{
    return store_sqlite_run(impl, true, grant_fn, (void *)instance_id, diag);
}

struct take_args {
    const char *instance_id;
    bool granted;
};

static vtpmca_err take_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct take_args *a = ctx;
    int changes = 0;
    vtpmca_err err =
        store_sqlite_exec(db, "DELETE FROM ek_reenroll WHERE instance_id = ?1", a->instance_id, 0,
                          "taking an EK re-enrollment", NULL, NULL, &changes, diag);
    a->granted = err == VTPMCA_OK && changes > 0;
    return err;
}

vtpmca_err store_sqlite_ek_reenroll_take(void *impl, const char *instance_id, bool *granted,
                                         vtpmca_diag *diag)
{
    struct take_args args = {instance_id, false};
    vtpmca_err err = store_sqlite_run(impl, true, take_fn, &args, diag);
    *granted = err == VTPMCA_OK && args.granted;
    return err;
}
