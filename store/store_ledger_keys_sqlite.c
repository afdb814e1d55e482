/* sqlite storage of the rollback ledger's keys of wrapped-key mode instances: the `ledger_key`
 * table (its migration is in store_sqlite.c). Runs on the backend's connection pool through
 * store_sqlite_run; arguments were validated by store.c. These calls are rare (one per key
 * release of such an instance, one per ledger key cache miss), so statements are prepared per
 * call. */
#include "store_backend.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prepares sql, binds the instance id as ?1 and steps once. */
static vtpmca_err run_for_instance(sqlite3 *db, const char *sql, const char *instance_id,
                                   const char *what, sqlite3_stmt **st, bool *has_row,
                                   vtpmca_diag *diag)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(*st, 1, instance_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(*st);
        *has_row = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    return rc == SQLITE_OK ? VTPMCA_OK : store_sqlite_fail(db, NULL, rc, what, diag);
}

struct put_args {
    const char *instance_id;
    const uint8_t *blob;
    size_t len;
};

static vtpmca_err put_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    const struct put_args *a = ctx;
    sqlite3_stmt *st = NULL;
    bool has_row = false;
    /* Checked first so that an unknown instance is NOT_FOUND rather than a foreign key error. */
    vtpmca_err err = run_for_instance(db, "SELECT 1 FROM instance WHERE id = ?1", a->instance_id,
                                      "looking up an instance", &st, &has_row, diag);
    sqlite3_finalize(st);
    st = NULL;
    if (err == VTPMCA_OK && !has_row)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no instance %s is enrolled",
                          a->instance_id);
    if (err != VTPMCA_OK)
        return err;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO ledger_key (instance_id, wrapped_key, updated_at)"
                                " VALUES (?1, ?2, ?3) ON CONFLICT (instance_id) DO UPDATE SET"
                                " wrapped_key = excluded.wrapped_key,"
                                " updated_at = excluded.updated_at",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, a->instance_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 2, a->blob, a->len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    err =
        rc == SQLITE_OK ? VTPMCA_OK : store_sqlite_fail(db, NULL, rc, "storing a ledger key", diag);
    sqlite3_finalize(st);
    return err;
}

vtpmca_err store_sqlite_ledger_key_put(void *impl, const char *instance_id, const uint8_t *blob,
                                       size_t len, vtpmca_diag *diag)
{
    struct put_args args = {instance_id, blob, len};
    return store_sqlite_run(impl, true, put_fn, &args, diag);
}

struct get_args {
    const char *instance_id;
    uint8_t *blob;
    size_t len;
};

static vtpmca_err get_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct get_args *a = ctx;
    sqlite3_stmt *st = NULL;
    bool has_row = false;
    vtpmca_err err =
        run_for_instance(db, "SELECT wrapped_key FROM ledger_key WHERE instance_id = ?1",
                         a->instance_id, "reading a ledger key", &st, &has_row, diag);
    if (err == VTPMCA_OK && !has_row)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no ledger key for instance %s",
                          a->instance_id);
    if (err == VTPMCA_OK) {
        const void *blob = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        free(a->blob); /* a retried read starts over */
        a->blob = len > 0 ? malloc(len) : NULL;
        if (blob == NULL || a->blob == NULL) {
            err = vtpmca_fail(diag, blob == NULL ? VTPMCA_ERR_STORE : VTPMCA_ERR_NOMEM,
                              "store: cannot read the ledger key of instance %s", a->instance_id);
        } else {
            memcpy(a->blob, blob, len);
            a->len = len;
        }
    }
    sqlite3_finalize(st);
    return err;
}

vtpmca_err store_sqlite_ledger_key_get(void *impl, const char *instance_id, uint8_t **blob,
                                       size_t *len, vtpmca_diag *diag)
{
    struct get_args args = {instance_id, NULL, 0};
    vtpmca_err err = store_sqlite_run(impl, false, get_fn, &args, diag);
    if (err != VTPMCA_OK) {
        free(args.blob);
        return err;
    }
    *blob = args.blob;
    *len = args.len;
    return VTPMCA_OK;
}
