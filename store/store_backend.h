/* Private interface between store.c (argument validation, URI dispatch) and a storage backend.
 * Every argument reaching a backend has been validated by store.c, so backends only deal
 * with the database. A backend handle must be safe to use from several threads at once.
 * To add a backend (e.g. PostgreSQL): implement these operations in store/store_<name>.c,
 * keep the schema version numbering of store_sqlite.c, and route its URI in store_open. */
#ifndef VTPMCA_STORE_BACKEND_H
#define VTPMCA_STORE_BACKEND_H

#include <stdbool.h>
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

    /* Puts n >= 1 instances in one transaction; describe (may be NULL) makes each one's audit
     * row, appended in the same transaction. *failed_index: the item at fault, else n. */
    vtpmca_err (*instance_put_batch)(void *impl, const store_instance *items, size_t n,
                                     store_audit_describe_fn describe, void *ctx,
                                     size_t *failed_index, vtpmca_diag *diag);
    /* Exactly one of id and resource_path is non-NULL. */
    vtpmca_err (*instance_get)(void *impl, const char *id, const char *resource_path,
                               store_instance *out, vtpmca_diag *diag);
    vtpmca_err (*instance_list)(void *impl, const char *fleet, const char *after_id, size_t limit,
                                store_instance **out, size_t *n, vtpmca_diag *diag);
    vtpmca_err (*instance_set_disabled)(void *impl, const char *id, bool disabled,
                                        vtpmca_diag *diag);

    vtpmca_err (*audit_append)(void *impl, const store_audit_event *event, vtpmca_diag *diag);
    /* May be NULL: store_audit_append_async then appends synchronously and reports itself. */
    vtpmca_err (*audit_append_async)(void *impl, const store_audit_event *event,
                                     store_write_done report, void *arg, vtpmca_diag *diag);
    vtpmca_err (*audit_query)(void *impl, const store_audit_filter *filter, store_audit_event **out,
                              size_t *n, vtpmca_diag *diag);

    /* ---- Rollback ledger ---- `writer` is what ledger_writer_open made. */
    vtpmca_err (*ledger_writer_open)(void *impl, void **writer, vtpmca_diag *diag);
    void (*ledger_writer_close)(void *writer);
    vtpmca_err (*ledger_load)(void *writer, const char *instance, store_ledger_state *out,
                              vtpmca_diag *diag);
    vtpmca_err (*ledger_apply_batch)(void *writer, const store_ledger_write *writes, size_t n,
                                     vtpmca_diag *diag);

    /* ---- Issued certificates ---- */
    vtpmca_err (*cert_put)(void *impl, const store_cert *cert, vtpmca_diag *diag);
    /* serial non-NULL: that certificate; else the latest of `kind` for instance_id. */
    vtpmca_err (*cert_get)(void *impl, const char *serial, const char *instance_id,
                           store_cert_kind kind, store_cert *out, vtpmca_diag *diag);
    vtpmca_err (*cert_list)(void *impl, const char *instance_id, const char *after_serial,
                            size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag);
    vtpmca_err (*cert_revoke)(void *impl, const char *serial, int64_t revoked_at,
                              const char *reason, vtpmca_diag *diag);
    vtpmca_err (*cert_revocations)(void *impl, store_cert_revocation **out, size_t *n,
                                   vtpmca_diag *diag);
    vtpmca_err (*crl_number_next)(void *impl, uint64_t *out, vtpmca_diag *diag);
    /* describe validates the row it makes (store.c wraps the caller's). */
    vtpmca_err (*cert_record_certification)(void *impl, const store_cert *certs, size_t n,
                                            store_certification_describe_fn describe, void *ctx,
                                            store_certification *out, vtpmca_diag *diag);

    /* ---- Rollback ledger keys of wrapped-key mode instances ---- */
    vtpmca_err (*ledger_key_put)(void *impl, const char *instance_id, const uint8_t *blob,
                                 size_t len, vtpmca_diag *diag);
    vtpmca_err (*ledger_key_get)(void *impl, const char *instance_id, uint8_t **blob, size_t *len,
                                 vtpmca_diag *diag);

    /* ---- EK re-enrollment grants ---- */
    vtpmca_err (*ek_reenroll_grant)(void *impl, const char *instance_id, vtpmca_diag *diag);
    vtpmca_err (*ek_reenroll_take)(void *impl, const char *instance_id, bool *granted,
                                   vtpmca_diag *diag);

    /* ---- Admin: instance deletion, audit tail ---- */
    vtpmca_err (*instance_delete)(void *impl, const char *id, store_instance_deletion *out,
                                  vtpmca_diag *diag);
    /* id and resource_path: either may be NULL. */
    vtpmca_err (*instance_was_deleted)(void *impl, const char *id, const char *resource_path,
                                       bool *deleted, vtpmca_diag *diag);
    vtpmca_err (*audit_last_seq)(void *impl, int64_t *out, vtpmca_diag *diag);
};

extern const struct store_backend_ops store_sqlite_backend;

/* ---- sqlite backend, shared by its files ---- */
/* store_sqlite.c: the diag for sqlite result rc from db while doing `what` ("store: [scope: ]
 * sqlite failed while <what>: <sqlite's message>"); VTPMCA_ERR_NOMEM for SQLITE_NOMEM, else
 * VTPMCA_ERR_STORE. scope may be NULL. */
struct sqlite3;
vtpmca_err store_sqlite_fail(struct sqlite3 *db, const char *scope, int rc, const char *what,
                             vtpmca_diag *diag);
/* store_sqlite.c: prepares and runs sql once on db, with text ?1 (not bound when NULL) and
 * integer ?2 (bound when the statement has it); *has_row tells whether it produced a row,
 * *value gets that row's first column and *changes how many rows it changed (each may be
 * NULL). For rare statements: nothing is cached. */
vtpmca_err store_sqlite_exec(struct sqlite3 *db, const char *sql, const char *text, int64_t number,
                             const char *what, bool *has_row, int64_t *value, int *changes,
                             vtpmca_diag *diag);
/* store_sqlite.c: text column col of the current row into dst ("" for NULL), cut to size. */
struct sqlite3_stmt;
void store_sqlite_copy_text(struct sqlite3_stmt *st, int col, char *dst, size_t size);
/* store_sqlite.c: grows a result array of *cap items of item_size so that it holds item n (16
 * at first, then doubling); NULL when out of memory (items is then still valid). */
void *store_sqlite_reserve(void *items, size_t *cap, size_t n, size_t item_size);

/* ---- Rollback ledger, sqlite backend ---- */
/* store_sqlite.c: a new connection configured like the pool's (busy timeout, WAL,
 * synchronous=FULL), for a user that keeps its own (the ledger writer). */
vtpmca_err store_sqlite_connect(void *impl, struct sqlite3 **out, vtpmca_diag *diag);
/* store_ledger_sqlite.c: the ledger operations of store_sqlite_backend. */
vtpmca_err store_sqlite_ledger_writer_open(void *impl, void **writer, vtpmca_diag *diag);
void store_sqlite_ledger_writer_close(void *writer);
vtpmca_err store_sqlite_ledger_load(void *writer, const char *instance, store_ledger_state *out,
                                    vtpmca_diag *diag);
vtpmca_err store_sqlite_ledger_apply_batch(void *writer, const store_ledger_write *writes, size_t n,
                                           vtpmca_diag *diag);

/* ---- Issued certificates, sqlite backend ---- */
/* store_sqlite.c: runs fn with a pooled connection; with `write`, between BEGIN IMMEDIATE and
 * COMMIT under the process's write lock, the whole transaction retried while the database is
 * busy (so fn may run more than once and must report only through ctx). */
typedef vtpmca_err (*store_sqlite_fn)(struct sqlite3 *db, void *ctx, vtpmca_diag *diag);
vtpmca_err store_sqlite_run(void *impl, bool write, store_sqlite_fn fn, void *ctx,
                            vtpmca_diag *diag);
/* store_sqlite.c: for backend files whose statements run often: the write path of
 * store_sqlite_run with the pooled connection itself, whose statement cache (one prepared
 * statement per SQL text, kept with the connection) they may use. */
struct sqlite_conn;
typedef vtpmca_err (*store_sqlite_tx_fn)(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag);
vtpmca_err store_sqlite_write(void *impl, store_sqlite_tx_fn body, void *ctx, vtpmca_diag *diag);
struct sqlite3 *store_sqlite_conn_db(struct sqlite_conn *c);
/* The cached statement of sql on c, prepared on first use; sql must be a string constant,
 * whose address is the cache key. Reset it with store_sqlite_stmt_done after use. */
vtpmca_err store_sqlite_conn_stmt(struct sqlite_conn *c, const char *sql, struct sqlite3_stmt **out,
                                  const char *what, vtpmca_diag *diag);
void store_sqlite_stmt_done(struct sqlite3_stmt *st);
/* Appends an audit row (at = now unless the event has a time) in c's transaction. */
vtpmca_err store_sqlite_audit_insert(struct sqlite_conn *c, const store_audit_event *event,
                                     vtpmca_diag *diag);
/* store_certs_sqlite.c: the certificate operations of store_sqlite_backend. */
vtpmca_err store_sqlite_cert_put(void *impl, const store_cert *cert, vtpmca_diag *diag);
vtpmca_err store_sqlite_cert_get(void *impl, const char *serial, const char *instance_id,
                                 store_cert_kind kind, store_cert *out, vtpmca_diag *diag);
vtpmca_err store_sqlite_cert_list(void *impl, const char *instance_id, const char *after_serial,
                                  size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag);
vtpmca_err store_sqlite_cert_revoke(void *impl, const char *serial, int64_t revoked_at,
                                    const char *reason, vtpmca_diag *diag);
vtpmca_err store_sqlite_cert_revocations(void *impl, store_cert_revocation **out, size_t *n,
                                         vtpmca_diag *diag);
vtpmca_err store_sqlite_crl_number_next(void *impl, uint64_t *out, vtpmca_diag *diag);
vtpmca_err store_sqlite_cert_record_certification(void *impl, const store_cert *certs, size_t n,
                                                  store_certification_describe_fn describe,
                                                  void *ctx, store_certification *out,
                                                  vtpmca_diag *diag);

/* ---- Rollback ledger keys, sqlite backend (store_ledger_keys_sqlite.c) ---- */
vtpmca_err store_sqlite_ledger_key_put(void *impl, const char *instance_id, const uint8_t *blob,
                                       size_t len, vtpmca_diag *diag);
vtpmca_err store_sqlite_ledger_key_get(void *impl, const char *instance_id, uint8_t **blob,
                                       size_t *len, vtpmca_diag *diag);

/* ---- EK re-enrollment grants, sqlite backend (store_ek_reenroll_sqlite.c) ---- */
vtpmca_err store_sqlite_ek_reenroll_grant(void *impl, const char *instance_id, vtpmca_diag *diag);
vtpmca_err store_sqlite_ek_reenroll_take(void *impl, const char *instance_id, bool *granted,
                                         vtpmca_diag *diag);
/* Takes an instance's grant inside the caller's write transaction (*granted: there was one). */
vtpmca_err store_sqlite_ek_reenroll_take_in(struct sqlite_conn *c, const char *instance_id,
                                            bool *granted, vtpmca_diag *diag);

/* ---- Admin: instance deletion, audit tail, sqlite backend (store_admin_sqlite.c) ---- */
vtpmca_err store_sqlite_instance_delete(void *impl, const char *id, store_instance_deletion *out,
                                        vtpmca_diag *diag);
vtpmca_err store_sqlite_instance_was_deleted(void *impl, const char *id, const char *resource_path,
                                             bool *deleted, vtpmca_diag *diag);
vtpmca_err store_sqlite_audit_last_seq(void *impl, int64_t *out, vtpmca_diag *diag);

#endif
