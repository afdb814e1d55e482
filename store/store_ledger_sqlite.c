/* sqlite storage of the rollback ledger: the `ledger` table (its migration is in
 * store_sqlite.c). The ledger engine's writer thread uses a dedicated connection with its own
 * prepared statements, so a group commit never waits for the pool, and the pool's readers
 * never wait for it (WAL). Durability comes from that connection's configuration (WAL,
 * synchronous=FULL, made by store_sqlite_connect): COMMIT returns once the WAL is fsync'd.
 * Every write is conditional on the row version the engine read, so a row that changed behind
 * its back fails the whole batch instead of being overwritten. */
#include "store_backend.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum ledger_stmt { LS_BEGIN, LS_COMMIT, LS_ROLLBACK, LS_LOAD, LS_INSERT, LS_UPDATE, LS_COUNT };

static const char *const LEDGER_SQL[LS_COUNT] = {
    [LS_BEGIN] = "BEGIN IMMEDIATE",
    [LS_COMMIT] = "COMMIT",
    [LS_ROLLBACK] = "ROLLBACK",
    [LS_LOAD] = "SELECT counter, origin, root, updated_ms, locked, require_admin_clear,"
                " fork_refusals, rollback_refusals, version FROM ledger WHERE instance = ?1",
    [LS_INSERT] = "INSERT INTO ledger (instance, counter, origin, root, updated_ms, locked,"
                  " require_admin_clear, fork_refusals, rollback_refusals, version)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                  " ON CONFLICT (instance) DO NOTHING",
    [LS_UPDATE] = "UPDATE ledger SET counter = ?2, origin = ?3, root = ?4, updated_ms = ?5,"
                  " locked = ?6, require_admin_clear = ?7, fork_refusals = ?8,"
                  " rollback_refusals = ?9, version = ?10"
                  " WHERE instance = ?1 AND version = ?10 - 1",
};

struct sqlite_ledger_writer {
    pthread_mutex_t lock; /* the connection is opened NOMUTEX: one user at a time */
    sqlite3 *db;
    sqlite3_stmt *stmts[LS_COUNT];
};

void store_sqlite_ledger_writer_close(void *writer)
{
    struct sqlite_ledger_writer *w = writer;
    if (w == NULL)
        return;
    for (int i = 0; i < LS_COUNT; i++)
        sqlite3_finalize(w->stmts[i]);
    sqlite3_close_v2(w->db);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

vtpmca_err store_sqlite_ledger_writer_open(void *impl, void **writer, vtpmca_diag *diag)
{
    struct sqlite_ledger_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
    pthread_mutex_init(&w->lock, NULL);
    vtpmca_err err = store_sqlite_connect(impl, &w->db, diag);
    /* Prepared once: the writer runs the same few statements for its whole life. */
    for (int i = 0; i < LS_COUNT && err == VTPMCA_OK; i++) {
        int rc = sqlite3_prepare_v3(w->db, LEDGER_SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &w->stmts[i], NULL);
        if (rc != SQLITE_OK)
            err = store_sqlite_fail(w->db, "ledger", rc, "preparing a ledger statement", diag);
    }
    if (err != VTPMCA_OK) {
        store_sqlite_ledger_writer_close(w);
        return err;
    }
    *writer = w;
    return VTPMCA_OK;
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* A column that must hold a blob of min_len..max_len bytes; copies it into dst. */
static bool read_blob(sqlite3_stmt *st, int col, uint8_t *dst, size_t min_len, size_t max_len,
                      size_t *len_out)
{
    if (sqlite3_column_type(st, col) != SQLITE_BLOB)
        return false;
    const void *blob = sqlite3_column_blob(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (blob == NULL || len < min_len || len > max_len)
        return false;
    memcpy(dst, blob, len);
    if (len_out != NULL)
        *len_out = len;
    return true;
}

/* Decodes a row of LS_LOAD, refusing anything the schema's CHECKs should have excluded. */
static bool decode_row(sqlite3_stmt *st, store_ledger_state *out)
{
    memset(out, 0, sizeof(*out));
    bool has_entry = sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (has_entry) {
        if (!read_blob(st, 0, out->counter, STORE_LEDGER_COUNTER_LEN, STORE_LEDGER_COUNTER_LEN,
                       NULL) ||
            !read_blob(st, 1, out->origin, STORE_LEDGER_COUNTER_LEN, STORE_LEDGER_COUNTER_LEN,
                       NULL) ||
            !read_blob(st, 2, out->root, 1, STORE_LEDGER_ROOT_MAX, &out->root_len))
            return false;
    } else if (sqlite3_column_type(st, 1) != SQLITE_NULL ||
               sqlite3_column_type(st, 2) != SQLITE_NULL) {
        return false;
    }
    out->has_entry = has_entry;
    sqlite3_int64 updated = sqlite3_column_int64(st, 3);
    sqlite3_int64 locked = sqlite3_column_int64(st, 4);
    sqlite3_int64 require = sqlite3_column_int64(st, 5);
    sqlite3_int64 forks = sqlite3_column_int64(st, 6);
    sqlite3_int64 rollbacks = sqlite3_column_int64(st, 7);
    sqlite3_int64 version = sqlite3_column_int64(st, 8);
    if (updated < 0 || (locked != 0 && locked != 1) || (require != 0 && require != 1) ||
        forks < 0 || rollbacks < 0 || version < 1)
        return false;
    out->updated_ms = updated;
    out->locked = locked == 1;
    out->require_admin_clear = require == 1;
    out->fork_refusals = (uint64_t)forks;
    out->rollback_refusals = (uint64_t)rollbacks;
    out->version = (uint64_t)version;
    return true;
}

vtpmca_err store_sqlite_ledger_load(void *writer, const char *instance, store_ledger_state *out,
                                    vtpmca_diag *diag)
{
    struct sqlite_ledger_writer *w = writer;
    pthread_mutex_lock(&w->lock);
    sqlite3_stmt *st = w->stmts[LS_LOAD];
    vtpmca_err err = VTPMCA_OK;
    int rc = sqlite3_bind_text(st, 1, instance, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: ledger has no record of %s", instance);
    else if (rc != SQLITE_ROW)
        err = store_sqlite_fail(w->db, "ledger", rc, "reading a ledger record", diag);
    else if (!decode_row(st, out))
        err = vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: the ledger record of %s is corrupt",
                          instance);
    stmt_done(st);
    pthread_mutex_unlock(&w->lock);
    return err;
}

static int bind_optional_blob(sqlite3_stmt *st, int index, bool present, const uint8_t *data,
                              size_t len)
{
    if (!present)
        return sqlite3_bind_null(st, index);
    return sqlite3_bind_blob(st, index, data, (int)len, SQLITE_STATIC);
}

/* Writes one row: an insert for version 1, else an update of the row at version - 1. */
static vtpmca_err write_row(struct sqlite_ledger_writer *w, const store_ledger_write *wr,
                            vtpmca_diag *diag)
{
    const store_ledger_state *s = &wr->state;
    sqlite3_stmt *st = w->stmts[s->version == 1 ? LS_INSERT : LS_UPDATE];
    int rc = sqlite3_bind_text(st, 1, wr->instance, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_optional_blob(st, 2, s->has_entry, s->counter, STORE_LEDGER_COUNTER_LEN);
    if (rc == SQLITE_OK)
        rc = bind_optional_blob(st, 3, s->has_entry, s->origin, STORE_LEDGER_COUNTER_LEN);
    if (rc == SQLITE_OK)
        rc = bind_optional_blob(st, 4, s->has_entry, s->root, s->root_len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, s->updated_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 6, s->locked ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 7, s->require_admin_clear ? 1 : 0);
    /* store.c guarantees these fit in sqlite's signed 64-bit integers. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)s->fork_refusals);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 9, (sqlite3_int64)s->rollback_refusals);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 10, (sqlite3_int64)s->version);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    vtpmca_err err = VTPMCA_OK;
    if (rc != SQLITE_DONE)
        err = store_sqlite_fail(w->db, "ledger", rc, "writing a ledger record", diag);
    else if (sqlite3_changes(w->db) != 1)
        err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                          "store: the ledger record of %s changed since it was read (version "
                          "%llu expected); is another process writing the ledger?",
                          wr->instance, (unsigned long long)(s->version - 1));
    stmt_done(st);
    return err;
}

static vtpmca_err run_stmt(struct sqlite_ledger_writer *w, enum ledger_stmt id, const char *what,
                           vtpmca_diag *diag)
{
    int rc = sqlite3_step(w->stmts[id]);
    stmt_done(w->stmts[id]);
    return rc == SQLITE_DONE ? VTPMCA_OK : store_sqlite_fail(w->db, "ledger", rc, what, diag);
}

vtpmca_err store_sqlite_ledger_apply_batch(void *writer, const store_ledger_write *writes, size_t n,
                                           vtpmca_diag *diag)
{
    struct sqlite_ledger_writer *w = writer;
    pthread_mutex_lock(&w->lock);
    /* BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout for
     * another process), so the transaction cannot fail later on a lock upgrade. */
    vtpmca_err err = run_stmt(w, LS_BEGIN, "starting a ledger transaction", diag);
    for (size_t i = 0; i < n && err == VTPMCA_OK; i++)
        err = write_row(w, &writes[i], diag);
    if (err == VTPMCA_OK)
        err = run_stmt(w, LS_COMMIT, "committing the ledger", diag);
    if (err != VTPMCA_OK && !sqlite3_get_autocommit(w->db))
        (void)run_stmt(w, LS_ROLLBACK, "rolling back the ledger", NULL);
    pthread_mutex_unlock(&w->lock);
    return err;
}
