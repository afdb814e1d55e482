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

static vtpmca_err reenroll_fail(sqlite3 *db, int rc, const char *what, vtpmca_diag *diag)
{
    if ((rc & 0xff) == SQLITE_NOMEM)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory while %s", what);
    /* sqlite's messages name tables, columns and constraints, never bound values. */
    const char *msg =
        (sqlite3_errcode(db) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: sqlite failed while %s: %s", what, msg);
}

/* Runs one statement with the instance id as ?1 (and `at` as ?2 when the SQL has it);
 * *has_row tells whether it produced a row, *changes how many rows it changed. */
static vtpmca_err run(sqlite3 *db, const char *sql, const char *instance_id, int64_t at,
                      const char *what, bool *has_row, int *changes, vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, instance_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2)
        rc = sqlite3_bind_int64(st, 2, at);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (has_row != NULL)
            *has_row = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(db);
    vtpmca_err err = rc == SQLITE_OK ? VTPMCA_OK : reenroll_fail(db, rc, what, diag);
    sqlite3_finalize(st);
    return err;
}

static vtpmca_err grant_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    const char *instance_id = ctx;
    bool exists = false;
    /* Checked first so that an unknown instance is NOT_FOUND rather than a foreign key error. */
    vtpmca_err err = run(db, "SELECT 1 FROM instance WHERE id = ?1", instance_id, 0,
                         "looking up an instance", &exists, NULL, diag);
    if (err == VTPMCA_OK && !exists)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no instance %s is enrolled",
                          instance_id);
    if (err == VTPMCA_OK)
        err =
            run(db,
                "INSERT INTO ek_reenroll (instance_id, granted_at) VALUES (?1, ?2)"
                " ON CONFLICT (instance_id) DO UPDATE SET granted_at = excluded.granted_at",
                instance_id, (int64_t)time(NULL), "granting an EK re-enrollment", NULL, NULL, diag);
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
    vtpmca_err err = run(db, "DELETE FROM ek_reenroll WHERE instance_id = ?1", a->instance_id, 0,
                         "taking an EK re-enrollment", NULL, &changes, diag);
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
