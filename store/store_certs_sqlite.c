/* sqlite storage of issued certificates and the CRL number: the `issued_cert` and
 * `crl_counter` tables (their migration is in store_sqlite.c). Runs on the backend's
 * connection pool; arguments were validated by store.c. What every certification runs (the
 * EK continuity read, the inserts) uses statements cached per connection; the rarer
 * operations prepare theirs per call. */
#include "store_backend.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Columns every certificate query returns, in this order (see read_cert). */
#define CERT_COLUMNS                                                                               \
    "serial, instance_id, kind, key_name, format, not_before, not_after, status, revoked_at,"      \
    " reason, created_at"

static vtpmca_err prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *what,
                          vtpmca_diag *diag)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? VTPMCA_OK : store_sqlite_fail(db, NULL, rc, what, diag);
}

/* Steps once; *has_row tells whether a row is available. */
static vtpmca_err step(sqlite3 *db, sqlite3_stmt *st, const char *what, bool *has_row,
                       vtpmca_diag *diag)
{
    int rc = sqlite3_step(st);
    *has_row = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VTPMCA_OK
                                                 : store_sqlite_fail(db, NULL, rc, what, diag);
}

static int bind_text(sqlite3_stmt *st, int index, const char *text)
{
    /* Static: each statement is finalized before the caller's strings go away. */
    return sqlite3_bind_text(st, index, text, -1, SQLITE_STATIC);
}

static int bind_blob_or_null(sqlite3_stmt *st, int index, const uint8_t *data, size_t len)
{
    return data != NULL ? sqlite3_bind_blob64(st, index, data, len, SQLITE_STATIC)
                        : sqlite3_bind_null(st, index);
}

static vtpmca_err copy_blob(sqlite3_stmt *st, int col, uint8_t **out, size_t *out_len,
                            vtpmca_diag *diag)
{
    *out = NULL;
    *out_len = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return VTPMCA_OK;
    const void *blob = sqlite3_column_blob(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (blob == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: empty certificate blob");
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
    memcpy(copy, blob, len);
    *out = copy;
    *out_len = len;
    return VTPMCA_OK;
}

/* Fills the metadata of *out from the CERT_COLUMNS of the current row. */
static vtpmca_err read_cert(sqlite3_stmt *st, store_cert *out, vtpmca_diag *diag)
{
    memset(out, 0, sizeof(*out));
    char kind[8], format[8], status[8];
    store_sqlite_copy_text(st, 0, out->serial, sizeof(out->serial));
    store_sqlite_copy_text(st, 1, out->instance_id, sizeof(out->instance_id));
    store_sqlite_copy_text(st, 2, kind, sizeof(kind));
    store_sqlite_copy_text(st, 3, out->key_name, sizeof(out->key_name));
    store_sqlite_copy_text(st, 4, format, sizeof(format));
    out->not_before = sqlite3_column_int64(st, 5);
    out->not_after = sqlite3_column_int64(st, 6);
    store_sqlite_copy_text(st, 7, status, sizeof(status));
    out->revoked_at = sqlite3_column_int64(st, 8); /* NULL reads as 0 */
    store_sqlite_copy_text(st, 9, out->reason, sizeof(out->reason));
    out->created_at = sqlite3_column_int64(st, 10);
    out->status = strcmp(status, "revoked") == 0 ? STORE_CERT_REVOKED : STORE_CERT_ISSUED;
    /* The table's CHECK constraints admit only these spellings. */
    if (store_cert_kind_parse(kind, &out->kind) != VTPMCA_OK ||
        store_cert_format_parse(format, &out->format) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: certificate %s has a bad kind/format",
                           out->serial);
    return VTPMCA_OK;
}

/* ---- put, and the one transaction of a certification ---- */

/* Cached per connection (store_sqlite_conn_stmt): every certification runs these. */
static const char INSERT_SQL[] =
    "INSERT INTO issued_cert (serial, instance_id, kind, key_name, format,"
    " not_before, not_after, status, der, c509, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'issued', ?8, ?9, ?10)"
    " ON CONFLICT (serial) DO NOTHING";
/* The instance's latest EK certificate, through issued_cert_by_instance (instance_id, kind,
 * created_at): no sort, no blob read. */
static const char LATEST_EK_SQL[] = "SELECT key_name, serial FROM issued_cert"
                                    " WHERE instance_id = ?1 AND kind = 'ek'"
                                    " ORDER BY created_at DESC, rowid DESC LIMIT 1";

static vtpmca_err insert_cert(struct sqlite_conn *conn, const store_cert *c, vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    vtpmca_err err = store_sqlite_conn_stmt(conn, INSERT_SQL, &st, "storing a certificate", diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3 *db = store_sqlite_conn_db(conn);
    int rc = bind_text(st, 1, c->serial);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, c->instance_id);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, store_cert_kind_name(c->kind));
    if (rc == SQLITE_OK)
        rc = bind_text(st, 4, c->key_name);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 5, store_cert_format_name(c->format));
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 6, c->not_before);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, c->not_after);
    if (rc == SQLITE_OK)
        rc = bind_blob_or_null(st, 8, c->der, c->der_len);
    if (rc == SQLITE_OK)
        rc = bind_blob_or_null(st, 9, c->c509, c->c509_len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 10, (int64_t)time(NULL));
    bool has_row;
    err = rc == SQLITE_OK ? step(db, st, "storing a certificate", &has_row, diag)
                          : store_sqlite_fail(db, NULL, rc, "storing a certificate", diag);
    store_sqlite_stmt_done(st);
    if (err == VTPMCA_OK && sqlite3_changes(db) == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                          "store: a certificate with serial %s exists already", c->serial);
    return err;
}

static vtpmca_err put_body(struct sqlite_conn *conn, void *ctx, vtpmca_diag *diag)
{
    return insert_cert(conn, ctx, diag);
}

vtpmca_err store_sqlite_cert_put(void *impl, const store_cert *cert, vtpmca_diag *diag)
{
    return store_sqlite_write(impl, put_body, (void *)cert, diag);
}

struct certification_args {
    const store_cert *certs;
    size_t n;
    store_certification_describe_fn describe;
    void *ctx;
    store_certification *out;
};

/* How the EK of certs[0] continues the instance's latest EK certificate. */
static vtpmca_err ek_continuity(struct sqlite_conn *conn, const store_cert *ek,
                                store_certification *out, vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    const char *what = "reading the latest EK certificate";
    vtpmca_err err = store_sqlite_conn_stmt(conn, LATEST_EK_SQL, &st, what, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3 *db = store_sqlite_conn_db(conn);
    int rc = bind_text(st, 1, ek->instance_id);
    bool has_row = false, same = false;
    err = rc == SQLITE_OK ? step(db, st, what, &has_row, diag)
                          : store_sqlite_fail(db, NULL, rc, what, diag);
    if (err == VTPMCA_OK && has_row) {
        const unsigned char *key_name = sqlite3_column_text(st, 0);
        same = key_name != NULL && strcmp((const char *)key_name, ek->key_name) == 0;
        store_sqlite_copy_text(st, 1, out->previous_serial, sizeof(out->previous_serial));
    }
    store_sqlite_stmt_done(st);
    if (err != VTPMCA_OK)
        return err;
    if (!has_row || same) {
        out->continuity = has_row ? STORE_EK_SAME : STORE_EK_NEW;
        return VTPMCA_OK;
    }
    bool granted = false;
    err = store_sqlite_ek_reenroll_take_in(conn, ek->instance_id, &granted, diag);
    out->continuity = granted ? STORE_EK_CHANGE_GRANTED : STORE_EK_CHANGE_REFUSED;
    return err;
}

static vtpmca_err certification_body(struct sqlite_conn *conn, void *ctx, vtpmca_diag *diag)
{
    struct certification_args *a = ctx;
    memset(a->out, 0, sizeof(*a->out)); /* a retried transaction starts over */
    vtpmca_err err = ek_continuity(conn, &a->certs[0], a->out, diag);
    if (err != VTPMCA_OK || a->out->continuity == STORE_EK_CHANGE_REFUSED)
        return err;
    for (size_t i = 0; i < a->n && err == VTPMCA_OK; i++)
        err = insert_cert(conn, &a->certs[i], diag);
    store_audit_event event;
    memset(&event, 0, sizeof(event));
    if (err == VTPMCA_OK)
        err = a->describe(a->out->continuity, &event, a->ctx);
    if (err == VTPMCA_OK)
        err = store_sqlite_audit_insert(conn, &event, diag);
    return err;
}

vtpmca_err store_sqlite_cert_record_certification(void *impl, const store_cert *certs, size_t n,
                                                  store_certification_describe_fn describe,
                                                  void *ctx, store_certification *out,
                                                  vtpmca_diag *diag)
{
    struct certification_args args = {certs, n, describe, ctx, out};
    vtpmca_err err = store_sqlite_write(impl, certification_body, &args, diag);
    if (err != VTPMCA_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

/* ---- get (by serial, or the latest of a kind for an instance) ---- */

struct get_args {
    const char *serial;
    const char *instance_id;
    store_cert_kind kind;
    store_cert *out;
};

static vtpmca_err get_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct get_args *a = ctx;
    sqlite3_stmt *st = NULL;
    const char *sql = a->serial != NULL ? "SELECT " CERT_COLUMNS
                                          ", der, c509 FROM issued_cert WHERE serial = ?1"
                                        : "SELECT " CERT_COLUMNS ", der, c509 FROM issued_cert"
                                          " WHERE instance_id = ?1 AND kind = ?2"
                                          " ORDER BY created_at DESC, rowid DESC LIMIT 1";
    vtpmca_err err = prepare(db, sql, &st, "reading a certificate", diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = a->serial != NULL ? bind_text(st, 1, a->serial) : bind_text(st, 1, a->instance_id);
    if (rc == SQLITE_OK && a->serial == NULL)
        rc = bind_text(st, 2, store_cert_kind_name(a->kind));
    bool has_row = false;
    err = rc == SQLITE_OK ? step(db, st, "reading a certificate", &has_row, diag)
                          : store_sqlite_fail(db, NULL, rc, "reading a certificate", diag);
    if (err == VTPMCA_OK && !has_row) {
        err = a->serial != NULL ? vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                                              "store: no certificate with serial %s", a->serial)
                                : vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                                              "store: no %s certificate for instance %s",
                                              store_cert_kind_name(a->kind), a->instance_id);
    }
    if (err == VTPMCA_OK)
        err = read_cert(st, a->out, diag);
    if (err == VTPMCA_OK)
        err = copy_blob(st, 11, &a->out->der, &a->out->der_len, diag);
    if (err == VTPMCA_OK)
        err = copy_blob(st, 12, &a->out->c509, &a->out->c509_len, diag);
    sqlite3_finalize(st);
    if (err != VTPMCA_OK)
        store_cert_free_fields(a->out);
    return err;
}

vtpmca_err store_sqlite_cert_get(void *impl, const char *serial, const char *instance_id,
                                 store_cert_kind kind, store_cert *out, vtpmca_diag *diag)
{
    struct get_args args = {serial, instance_id, kind, out};
    return store_sqlite_run(impl, false, get_fn, &args, diag);
}

/* ---- list ---- */

struct list_args {
    const char *instance_id, *after_serial;
    size_t limit;
    store_cert *items;
    size_t n, cap;
};

static vtpmca_err list_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct list_args *a = ctx;
    sqlite3_stmt *st = NULL;
    /* NULL parameters match everything, so one statement serves all four filter choices. */
    vtpmca_err err = prepare(db,
                             "SELECT " CERT_COLUMNS " FROM issued_cert"
                             " WHERE (?1 IS NULL OR instance_id = ?1)"
                             " AND (?2 IS NULL OR serial > ?2)"
                             " ORDER BY serial LIMIT ?3",
                             &st, "listing certificates", diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = a->instance_id != NULL ? bind_text(st, 1, a->instance_id) : sqlite3_bind_null(st, 1);
    if (rc == SQLITE_OK)
        rc = a->after_serial != NULL ? bind_text(st, 2, a->after_serial) : sqlite3_bind_null(st, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (int64_t)a->limit);
    if (rc != SQLITE_OK)
        err = store_sqlite_fail(db, NULL, rc, "listing certificates", diag);
    a->n = 0; /* a retried read starts over */
    while (err == VTPMCA_OK && a->n < a->limit) {
        bool has_row;
        err = step(db, st, "listing certificates", &has_row, diag);
        if (err != VTPMCA_OK || !has_row)
            break;
        store_cert *bigger = store_sqlite_reserve(a->items, &a->cap, a->n, sizeof(*bigger));
        if (bigger == NULL) {
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
            break;
        }
        a->items = bigger;
        err = read_cert(st, &a->items[a->n], diag);
        if (err == VTPMCA_OK)
            a->n++;
    }
    sqlite3_finalize(st);
    return err;
}

vtpmca_err store_sqlite_cert_list(void *impl, const char *instance_id, const char *after_serial,
                                  size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag)
{
    struct list_args args = {instance_id, after_serial, limit, NULL, 0, 0};
    vtpmca_err err = store_sqlite_run(impl, false, list_fn, &args, diag);
    if (err != VTPMCA_OK || args.n == 0) {
        free(args.items);
        args.items = NULL;
        args.n = 0;
    }
    if (err == VTPMCA_OK) {
        *out = args.items;
        *n = args.n;
    }
    return err;
}

/* ---- revoke ---- */

struct revoke_args {
    const char *serial, *reason;
    int64_t revoked_at;
};

static vtpmca_err revoke_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    const struct revoke_args *a = ctx;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = prepare(db,
                             "UPDATE issued_cert SET status = 'revoked', revoked_at = ?2,"
                             " reason = ?3 WHERE serial = ?1 AND status = 'issued'",
                             &st, "revoking a certificate", diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, a->serial);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, a->revoked_at);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, a->reason);
    bool has_row;
    err = rc == SQLITE_OK ? step(db, st, "revoking a certificate", &has_row, diag)
                          : store_sqlite_fail(db, NULL, rc, "revoking a certificate", diag);
    sqlite3_finalize(st);
    if (err != VTPMCA_OK || sqlite3_changes(db) == 1)
        return err;
    /* Nothing changed: say whether the serial is unknown or revoked already. */
    err = prepare(db, "SELECT 1 FROM issued_cert WHERE serial = ?1", &st,
                  "looking up a certificate", diag);
    if (err != VTPMCA_OK)
        return err;
    rc = bind_text(st, 1, a->serial);
    bool exists = false;
    err = rc == SQLITE_OK ? step(db, st, "looking up a certificate", &exists, diag)
                          : store_sqlite_fail(db, NULL, rc, "looking up a certificate", diag);
    sqlite3_finalize(st);
    if (err != VTPMCA_OK)
        return err;
    return exists ? vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                                "store: certificate %s is revoked already", a->serial)
                  : vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: no certificate with serial %s",
                                a->serial);
}

vtpmca_err store_sqlite_cert_revoke(void *impl, const char *serial, int64_t revoked_at,
                                    const char *reason, vtpmca_diag *diag)
{
    struct revoke_args args = {serial, reason, revoked_at};
    return store_sqlite_run(impl, true, revoke_fn, &args, diag);
}

/* ---- revocations (for the CRL) ---- */

struct revocations_args {
    store_cert_revocation *items;
    size_t n, cap;
};

static vtpmca_err revocations_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    struct revocations_args *a = ctx;
    sqlite3_stmt *st = NULL;
    a->n = 0; /* a retried read starts over */
    vtpmca_err err = prepare(db,
                             "SELECT serial, revoked_at, reason FROM issued_cert"
                             " WHERE status = 'revoked' ORDER BY serial",
                             &st, "listing revocations", diag);
    while (err == VTPMCA_OK) {
        bool has_row;
        err = step(db, st, "listing revocations", &has_row, diag);
        if (err != VTPMCA_OK || !has_row)
            break;
        store_cert_revocation *bigger =
            store_sqlite_reserve(a->items, &a->cap, a->n, sizeof(*bigger));
        if (bigger == NULL) {
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
            break;
        }
        a->items = bigger;
        store_cert_revocation *r = &a->items[a->n++];
        memset(r, 0, sizeof(*r));
        store_sqlite_copy_text(st, 0, r->serial, sizeof(r->serial));
        r->revoked_at = sqlite3_column_int64(st, 1);
        store_sqlite_copy_text(st, 2, r->reason, sizeof(r->reason));
    }
    sqlite3_finalize(st);
    return err;
}

vtpmca_err store_sqlite_cert_revocations(void *impl, store_cert_revocation **out, size_t *n,
                                         vtpmca_diag *diag)
{
    struct revocations_args args = {NULL, 0, 0};
    vtpmca_err err = store_sqlite_run(impl, false, revocations_fn, &args, diag);
    if (err != VTPMCA_OK || args.n == 0) {
        free(args.items);
        args.items = NULL;
        args.n = 0;
    }
    if (err == VTPMCA_OK) {
        *out = args.items;
        *n = args.n;
    }
    return err;
}

/* ---- CRL number ---- */

static vtpmca_err crl_number_fn(sqlite3 *db, void *ctx, vtpmca_diag *diag)
{
    uint64_t *out = ctx;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = prepare(db,
                             "UPDATE crl_counter SET last_number = last_number + 1 WHERE id = 1"
                             " RETURNING last_number",
                             &st, "taking a CRL number", diag);
    bool has_row = false;
    if (err == VTPMCA_OK)
        err = step(db, st, "taking a CRL number", &has_row, diag);
    if (err == VTPMCA_OK && !has_row)
        err = vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: the CRL counter row is missing");
    if (err == VTPMCA_OK) {
        int64_t number = sqlite3_column_int64(st, 0);
        if (number < 1)
            err = vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: CRL counter out of range");
        else
            *out = (uint64_t)number;
    }
    /* Finish the statement so the UPDATE is complete before COMMIT. */
    if (err == VTPMCA_OK && sqlite3_step(st) != SQLITE_DONE)
        err = store_sqlite_fail(db, NULL, sqlite3_errcode(db), "taking a CRL number", diag);
    sqlite3_finalize(st);
    return err;
}

vtpmca_err store_sqlite_crl_number_next(void *impl, uint64_t *out, vtpmca_diag *diag)
{
    uint64_t number = 0;
    vtpmca_err err = store_sqlite_run(impl, true, crl_number_fn, &number, diag);
    if (err == VTPMCA_OK)
        *out = number;
    return err;
}
