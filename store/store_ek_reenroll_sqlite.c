/* sqlite storage of EK re-enrollment grants: the `ek_reenroll` table (its migration is in
 * store_sqlite.c). An admin grants an instance one certification with another EK than the
 * one certified before; the certification that uses the grant takes (deletes) it in one
 * write transaction, so a grant is used at most once (a certification takes it in its own
 * transaction: store_sqlite_ek_reenroll_take_in). Runs on the backend's connection pool;
 * arguments were validated by store.c. Grants are rare: their statement is prepared per
 * call. */
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

/* The DELETE is cached per connection: every certification that presents another EK than
 * the certified one runs it (store_certs_sqlite.c). */
static const char TAKE_SQL[] = "DELETE FROM ek_reenroll WHERE instance_id = ?1";

vtpmca_err store_sqlite_ek_reenroll_take_in(struct sqlite_conn *c, const char *instance_id,
                                            bool *granted, vtpmca_diag *diag)
{
    *granted = false;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = store_sqlite_conn_stmt(c, TAKE_SQL, &st, "taking an EK re-enrollment", diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3 *db = store_sqlite_conn_db(c);
    int rc = sqlite3_bind_text(st, 1, instance_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        *granted = sqlite3_changes(db) > 0;
    else
        err = store_sqlite_fail(db, NULL, rc, "taking an EK re-enrollment", diag);
    store_sqlite_stmt_done(st);
    return err;
}

struct take_args {
    const char *instance_id;
    bool granted;
};

static vtpmca_err take_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    struct take_args *a = ctx;
    return store_sqlite_ek_reenroll_take_in(c, a->instance_id, &a->granted, diag);
}

vtpmca_err store_sqlite_ek_reenroll_take(void *impl, const char *instance_id, bool *granted,
                                         vtpmca_diag *diag)
{
    struct take_args args = {instance_id, false};
    vtpmca_err err = store_sqlite_write(impl, take_body, &args, diag);
    *granted = err == VTPMCA_OK && args.granted;
    return err;
}
