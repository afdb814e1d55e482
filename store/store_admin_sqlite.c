/* sqlite storage behind the admin API's instance deletion and audit tail: the
 * `instance_deleted` table (its migration is in store_sqlite.c) records every deleted
 * instance's id and resource path, and triggers refuse to enroll either again. Runs on the
 * backend's connection pool through store_sqlite_run; arguments were validated by store.c.
 * Rare calls: statements are prepared per call. */
#include "store_backend.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The reason recorded for the certificates of a deleted instance (RFC 5280's name). */
#define DELETE_REVOCATION_REASON "cessationOfOperation"

struct delete_args {
    const char *id;
    store_instance_deletion *out;
};

/* One transaction: the tombstone first (it copies the row), then what refers to the instance
 * (its ledger key and EK re-enrollment grant), the instance with its wrapped key, and the
 * revocation of its certificates. The ledger row and the audit log stay. */
static vtpmca_err delete_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct delete_args *a = ctx;
    const int64_t now = (int64_t)time(NULL);
    memset(a->out, 0, sizeof(*a->out));
    int changes = 0;
    vtpmca_err err =
        store_sqlite_exec(db,
                          "INSERT INTO instance_deleted (id, fleet, resource_path, key_mode,"
                          " created_at, deleted_at)"
                          " SELECT id, fleet, resource_path, key_mode, created_at, ?2"
                          " FROM instance WHERE id = ?1",
                          a->id, now, "recording a deleted instance", NULL, NULL, &changes, diag);
    if (err == VTPMCA_OK && changes == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no instance %s is enrolled", a->id);
    if (err == VTPMCA_OK)
        err = store_sqlite_exec(db, "DELETE FROM ledger_key WHERE instance_id = ?1", a->id, 0,
                                "deleting a ledger key", NULL, NULL, &changes, diag);
    a->out->ledger_key_deleted = err == VTPMCA_OK && changes > 0;
    if (err == VTPMCA_OK)
        err = store_sqlite_exec(db, "DELETE FROM ek_reenroll WHERE instance_id = ?1", a->id, 0,
                                "deleting an EK re-enrollment grant", NULL, NULL, NULL, diag);
    if (err == VTPMCA_OK)
        err = store_sqlite_exec(db, "DELETE FROM instance WHERE id = ?1", a->id, 0,
                                "deleting an instance", NULL, NULL, NULL, diag);
    if (err == VTPMCA_OK)
        err = store_sqlite_exec(db,
                                "UPDATE issued_cert SET status = 'revoked', revoked_at = ?2,"
                                " reason = '" DELETE_REVOCATION_REASON "'"
                                " WHERE instance_id = ?1 AND status = 'issued'",
                                a->id, now, "revoking the certificates of a deleted instance", NULL,
                                NULL, &changes, diag);
    if (err == VTPMCA_OK)
        a->out->certs_revoked = (size_t)changes;
    return err;
}

vtpmca_err store_sqlite_instance_delete(void *impl, const char *id, store_instance_deletion *out,
                                        vtpmca_diag *diag)
{
    struct delete_args args = {id, out};
    return store_sqlite_run(impl, true, delete_fn, &args, diag);
}

struct deleted_args {
    const char *id;
    const char *resource_path;
    bool deleted;
};

static vtpmca_err deleted_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct deleted_args *a = ctx;
    a->deleted = false;
    vtpmca_err err = VTPMCA_OK;
    if (a->id != NULL)
        err = store_sqlite_exec(db, "SELECT 1 FROM instance_deleted WHERE id = ?1", a->id, 0,
                                "looking up deleted instances", &a->deleted, NULL, NULL, diag);
    if (err == VTPMCA_OK && !a->deleted && a->resource_path != NULL)
        err = store_sqlite_exec(db, "SELECT 1 FROM instance_deleted WHERE resource_path = ?1",
                                a->resource_path, 0, "looking up deleted instances", &a->deleted,
                                NULL, NULL, diag);
    return err;
}

vtpmca_err store_sqlite_instance_was_deleted(void *impl, const char *id, const char *resource_path,
                                             bool *deleted, vtpmca_diag *diag)
{
    struct deleted_args args = {id, resource_path, false};
    vtpmca_err err = store_sqlite_run(impl, false, deleted_fn, &args, diag);
    *deleted = err == VTPMCA_OK && args.deleted;
    return err;
}

static vtpmca_err last_seq_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    return store_sqlite_exec(db, "SELECT COALESCE(MAX(seq), 0) FROM audit", NULL, 0,
                             "reading the audit log", NULL, ctx, NULL, diag);
}

vtpmca_err store_sqlite_audit_last_seq(void *impl, int64_t *out, vtpmca_diag *diag)
{
    *out = 0;
    return store_sqlite_run(impl, false, last_seq_fn, out, diag);
}
