/* sqlite backend of the store.
 * Durability: WAL journaling with synchronous=FULL, so an acknowledged write survives a crash
 * or power loss. Concurrency: a pool of connections, each used by one thread at a time and
 * holding its own prepared statements. WAL readers never wait for each other or for the
 * writer; this process's writers queue on a mutex, other processes' writers on sqlite's busy
 * timeout (plus a few whole-transaction retries). */
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/log.h"

/* The page cache of each pooled reader, in KiB (see conn_acquire). */
#define READER_CACHE_KIB "512"

enum {
    BUSY_TIMEOUT_MS = 5000, /* how long a statement waits for another process's lock */
    CONN_CACHED_MAX = 8,    /* statements of other backend files cached per connection */
    WRITE_ATTEMPTS = 4,     /* whole write transactions retried while still busy */
    /* Idle connections kept open; more are closed on release. Sized for the daemon's
     * waiting-request threads (commit_workers, 64 by default), which read concurrently:
     * opening a connection prepares every statement, far dearer than keeping it. */
    POOL_MAX_IDLE = 96,
};

/* Schema migrations. MIGRATIONS[i] brings the schema from version i to version i+1; at open
 * every missing one is applied in order, each in its own BEGIN IMMEDIATE transaction together
 * with its row in schema_migrations (so concurrent openers apply each exactly once).
 * To change the schema, APPEND an entry with a comment naming its version; never edit,
 * reorder or remove an entry, since deployed databases have already run it. A future
 * PostgreSQL backend keeps the same version numbers. */
static const char *const MIGRATIONS[] = {
    /* 1: VCEK/VLEK certificates. tcb holds the uint64 TCB_VERSION's bit pattern as a signed
     * 64-bit integer (see tcb_to_db): sqlite integers are signed. */
    "CREATE TABLE vcek ("
    "  product TEXT NOT NULL CHECK (product IN ('Milan', 'Genoa', 'Turin')),"
    "  signer TEXT NOT NULL CHECK (signer IN ('vcek', 'vlek')),"
    "  chip_id BLOB NOT NULL CHECK (length(chip_id) = 64),"
    "  tcb INTEGER NOT NULL,"
    "  der BLOB NOT NULL,"
    "  source TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (product, signer, chip_id, tcb)"
    ") STRICT;",

    /* 2: fleets and their versioned (append-only) policies. */
    "CREATE TABLE fleet ("
    "  name TEXT NOT NULL PRIMARY KEY,"
    "  description TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE policy ("
    "  fleet TEXT NOT NULL REFERENCES fleet (name),"
    "  version INTEGER NOT NULL CHECK (version >= 1),"
    "  json TEXT NOT NULL,"
    "  author TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (fleet, version)"
    ") STRICT;",

    /* 3: enrolled instances with their (wrapped) persistence keys, and the audit log, which
     * triggers keep append-only. A generated-mode instance always has its wrapped key; a
     * wrapped-mode one never has (the instance presents it). */
    "CREATE TABLE instance ("
    "  id TEXT NOT NULL PRIMARY KEY,"
    "  fleet TEXT NOT NULL REFERENCES fleet (name),"
    "  resource_path TEXT NOT NULL UNIQUE,"
    "  host_data BLOB CHECK (host_data IS NULL OR length(host_data) = 32),"
    "  key_mode TEXT NOT NULL CHECK (key_mode IN ('generated', 'wrapped')),"
    "  wrapped_key BLOB,"
    "  disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    "  created_at INTEGER NOT NULL,"
    "  CHECK ((key_mode = 'generated') = (wrapped_key IS NOT NULL))"
    ") STRICT;"
    "CREATE INDEX instance_by_fleet ON instance (fleet, id);"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT,"
    "  action TEXT NOT NULL,"
    "  instance_id TEXT,"
    "  outcome TEXT,"
    "  measurement TEXT,"
    "  chip_id TEXT,"
    "  detail TEXT"
    ") STRICT;"
    "CREATE INDEX audit_by_instance ON audit (instance_id, seq);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",

    /* 4: the rollback ledger (store_ledger_sqlite.c): per instance the latest accepted
     * (counter, root) of its filesystem, the first counter (origin), lock and refusal counts,
     * and a row version for conditional writes. counter/origin/root are NULL together: a row
     * may hold only settings, before the first advance or after an admin reset. */
    "CREATE TABLE ledger ("
    "  instance TEXT NOT NULL PRIMARY KEY,"
    "  counter BLOB CHECK (counter IS NULL OR length(counter) = 16),"
    "  origin BLOB CHECK (origin IS NULL OR length(origin) = 16),"
    "  root BLOB CHECK (root IS NULL OR length(root) BETWEEN 1 AND 64),"
    "  updated_ms INTEGER NOT NULL CHECK (updated_ms >= 0),"
    "  locked INTEGER NOT NULL CHECK (locked IN (0, 1)),"
    "  require_admin_clear INTEGER NOT NULL CHECK (require_admin_clear IN (0, 1)),"
    "  fork_refusals INTEGER NOT NULL CHECK (fork_refusals >= 0),"
    "  rollback_refusals INTEGER NOT NULL CHECK (rollback_refusals >= 0),"
    "  version INTEGER NOT NULL CHECK (version >= 1),"
    "  CHECK ((counter IS NULL) = (origin IS NULL) AND (counter IS NULL) = (root IS NULL))"
    ") STRICT, WITHOUT ROWID;",

    /* 5: certificates the CA issued (store_certs_sqlite.c), revoked in place, and the CRL
     * number counter. An x509 row holds its DER; a c509 row its C509 encoding (and the DER
     * it re-encodes, if any). */
    "CREATE TABLE issued_cert ("
    "  serial TEXT NOT NULL PRIMARY KEY CHECK (length(serial) BETWEEN 2 AND 40),"
    "  instance_id TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('ek', 'iak')),"
    "  key_name TEXT NOT NULL,"
    "  format TEXT NOT NULL CHECK (format IN ('x509', 'c509')),"
    "  not_before INTEGER NOT NULL,"
    "  not_after INTEGER NOT NULL CHECK (not_after >= not_before),"
    "  status TEXT NOT NULL CHECK (status IN ('issued', 'revoked')),"
    "  revoked_at INTEGER,"
    "  reason TEXT,"
    "  der BLOB,"
    "  c509 BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),"
    "  CHECK ((revoked_at IS NULL) = (reason IS NULL)),"
    "  CHECK ((format = 'x509' AND der IS NOT NULL AND c509 IS NULL)"
    "         OR (format = 'c509' AND c509 IS NOT NULL))"
    ") STRICT;"
    "CREATE INDEX issued_cert_by_instance ON issued_cert (instance_id, kind, created_at);"
    "CREATE INDEX issued_cert_revoked ON issued_cert (serial) WHERE status = 'revoked';"
    "CREATE TABLE crl_counter ("
    "  id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),"
    "  last_number INTEGER NOT NULL CHECK (last_number >= 0)"
    ") STRICT;"
    "INSERT INTO crl_counter (id, last_number) VALUES (1, 0);",

    /* 6: the rollback ledger's keys of wrapped-key mode instances (store_ledger_keys_sqlite.c):
     * the service sees such an instance's persistence key only when it releases it, so it
     * keeps the ledger key derived from it, wrapped under the master key. */
    "CREATE TABLE ledger_key ("
    "  instance_id TEXT NOT NULL PRIMARY KEY REFERENCES instance (id),"
    "  wrapped_key BLOB NOT NULL CHECK (length(wrapped_key) BETWEEN 1 AND 1024),"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;",

    /* 7: EK re-enrollment grants (store_ek_reenroll_sqlite.c): an admin allows an instance's
     * next certification to present another EK than the one certified before; the
     * certification that uses the grant deletes it. */
    "CREATE TABLE ek_reenroll ("
    "  instance_id TEXT NOT NULL PRIMARY KEY REFERENCES instance (id),"
    "  granted_at INTEGER NOT NULL"
    ") STRICT;",

    /* 8: deleted instances (store_admin_sqlite.c): an instance's id and resource path stay
     * reserved after an admin deletes it, so that its certificates, ledger row and audit
     * entries are never attributed to a new instance, and a copy of its disk never gets a
     * new instance's key by asking for its old path. */
    "CREATE TABLE instance_deleted ("
    "  id TEXT NOT NULL PRIMARY KEY,"
    "  fleet TEXT NOT NULL,"
    "  resource_path TEXT NOT NULL UNIQUE,"
    "  key_mode TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  deleted_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TRIGGER instance_not_deleted BEFORE INSERT ON instance"
    "  WHEN EXISTS (SELECT 1 FROM instance_deleted"
    "               WHERE id = NEW.id OR resource_path = NEW.resource_path)"
    "  BEGIN SELECT RAISE(ABORT, 'its id or resource path belonged to a deleted instance'); END;",
};
#define MIGRATION_COUNT ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

/* Every statement the backend runs; prepared lazily, once per connection. */
enum stmt_id {
    STMT_BEGIN_IMMEDIATE,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_SAVEPOINT,
    STMT_SAVEPOINT_ROLLBACK,
    STMT_SAVEPOINT_RELEASE,
    STMT_SCHEMA_VERSION,
    STMT_SCHEMA_RECORD,
    STMT_VCEK_PUT,
    STMT_VCEK_GET,
    STMT_VCEK_COUNT,
    STMT_FLEET_CREATE,
    STMT_FLEET_EXISTS,
    STMT_FLEET_LIST,
    STMT_POLICY_MAX_VERSION,
    STMT_POLICY_INSERT,
    STMT_POLICY_GET_LATEST,
    STMT_POLICY_GET_VERSION,
    STMT_POLICY_HISTORY,
    STMT_INSTANCE_INSERT,
    STMT_INSTANCE_GET_BY_ID,
    STMT_INSTANCE_GET_BY_PATH,
    STMT_INSTANCE_LIST,
    STMT_INSTANCE_LIST_FLEET,
    STMT_INSTANCE_SET_DISABLED,
    STMT_AUDIT_INSERT,
    STMT_AUDIT_QUERY,
    STMT_AUDIT_QUERY_INSTANCE,
    STMT_COUNT
};

static const char *const STMT_SQL[STMT_COUNT] = {
    [STMT_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT group_write",
    [STMT_SAVEPOINT_ROLLBACK] = "ROLLBACK TO group_write",
    [STMT_SAVEPOINT_RELEASE] = "RELEASE group_write",
    [STMT_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0), COUNT(*) FROM schema_migrations",
    [STMT_SCHEMA_RECORD] = "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
    [STMT_VCEK_PUT] = "INSERT INTO vcek (product, signer, chip_id, tcb, der, source, created_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                      " ON CONFLICT (product, signer, chip_id, tcb) DO UPDATE SET"
                      " der = excluded.der, source = excluded.source,"
                      " created_at = excluded.created_at",
    [STMT_VCEK_GET] = "SELECT der FROM vcek"
                      " WHERE product = ?1 AND signer = ?2 AND chip_id = ?3 AND tcb = ?4",
    [STMT_VCEK_COUNT] = "SELECT COUNT(*) FROM vcek",
    [STMT_FLEET_CREATE] = "INSERT INTO fleet (name, description, created_at) VALUES (?1, ?2, ?3)"
                          " ON CONFLICT (name) DO NOTHING",
    [STMT_FLEET_EXISTS] = "SELECT 1 FROM fleet WHERE name = ?1",
    [STMT_FLEET_LIST] = "SELECT f.name, f.description, f.created_at,"
                        " (SELECT COALESCE(MAX(p.version), 0) FROM policy p"
                        "  WHERE p.fleet = f.name)"
                        " FROM fleet f ORDER BY f.name",
    [STMT_POLICY_MAX_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM policy WHERE fleet = ?1",
    [STMT_POLICY_INSERT] = "INSERT INTO policy (fleet, version, json, author, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_POLICY_GET_LATEST] = "SELECT version, json FROM policy WHERE fleet = ?1"
                               " ORDER BY version DESC LIMIT 1",
    [STMT_POLICY_GET_VERSION] = "SELECT version, json FROM policy"
                                " WHERE fleet = ?1 AND version = ?2",
    [STMT_POLICY_HISTORY] = "SELECT version, created_at, author FROM policy WHERE fleet = ?1"
                            " ORDER BY version",
#define INSTANCE_COLUMNS                                                                           \
    "id, fleet, resource_path, host_data, key_mode, wrapped_key, disabled, created_at"
    [STMT_INSTANCE_INSERT] = "INSERT INTO instance (" INSTANCE_COLUMNS ")"
                             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
    [STMT_INSTANCE_GET_BY_ID] = "SELECT " INSTANCE_COLUMNS " FROM instance WHERE id = ?1",
    [STMT_INSTANCE_GET_BY_PATH] =
        "SELECT " INSTANCE_COLUMNS " FROM instance WHERE resource_path = ?1",
    /* Both lists number their parameters alike; only the second uses ?1 (the fleet), with
     * an index. */
    [STMT_INSTANCE_LIST] = "SELECT " INSTANCE_COLUMNS " FROM instance"
                           " WHERE id > ?2 ORDER BY id LIMIT ?3",
    [STMT_INSTANCE_LIST_FLEET] = "SELECT " INSTANCE_COLUMNS " FROM instance"
                                 " WHERE fleet = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [STMT_INSTANCE_SET_DISABLED] = "UPDATE instance SET disabled = ?2 WHERE id = ?1",
    [STMT_AUDIT_INSERT] = "INSERT INTO audit (at, actor, action, instance_id, outcome,"
                          " measurement, chip_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
/* Both queries number their parameters alike; only the second uses ?1 (the instance),
 * with an index. */
#define AUDIT_QUERY                                                                                \
    "SELECT seq, at, actor, action, instance_id, outcome, measurement, chip_id, detail"            \
    " FROM audit WHERE seq > ?2 AND at >= ?3 AND at < ?4"                                          \
    " AND (?5 IS NULL OR action = ?5) AND (?6 IS NULL OR outcome = ?6)"
    [STMT_AUDIT_QUERY] = AUDIT_QUERY " ORDER BY seq LIMIT ?7",
    [STMT_AUDIT_QUERY_INSTANCE] = AUDIT_QUERY " AND instance_id = ?1 ORDER BY seq LIMIT ?7",
};

struct sqlite_conn {
    sqlite3 *db;
    sqlite3_stmt *stmts[STMT_COUNT];
    /* store_sqlite_conn_stmt's cache: keyed by the address of the SQL text. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cached[CONN_CACHED_MAX];
    int last_rc; /* sqlite result of the latest failure, to recognise a retryable SQLITE_BUSY */
    struct sqlite_conn *next;
};

struct sqlite_store {
    char *path; /* as handed to sqlite3_open_v2 */
    pthread_mutex_t pool_lock;
    struct sqlite_conn *idle;
    size_t idle_count;
    /* Serialises this process's write transactions: sqlite admits one writer at a time, and
     * queueing on a mutex is cheaper and fairer than sqlite's sleep-and-retry busy handler. */
    pthread_mutex_t write_lock;
    /* The one connection every write transaction uses (under write_lock; NULL until the
     * first): a connection drops its page cache whenever another one has committed, so a
     * dedicated writer finds the b-tree pages of its last commit still cached. */
    struct sqlite_conn *writer;
    /* Group commit (see run_write_tx): writers queue here, and one of them at a time runs
     * everything queued in one transaction, so concurrent writes share one fsync. */
    pthread_mutex_t group_lock;
    struct write_waiter *group_queue;
    bool group_committing;
    /* The commit thread, started by the first asynchronous write: it leads the groups that an
     * asynchronous writer (who does not wait) would otherwise have to lead. */
    pthread_t committer;
    bool committer_started, committer_lead, committer_stop;
    pthread_cond_t committer_wake;
};

/* A write transaction's body; it runs between BEGIN IMMEDIATE and COMMIT and may run again
 * when the transaction is retried, so it must only report results through ctx. */
typedef vtpmca_err (*tx_body)(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag);

static int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

/* The uint64 TCB's exact bit pattern as sqlite's signed 64-bit integer (memcpy keeps values
 * >= 2^63 well defined; they become negative and stay distinct). */
static sqlite3_int64 tcb_to_db(uint64_t tcb)
{
    _Static_assert(sizeof(sqlite3_int64) == sizeof(uint64_t), "sqlite integer is 64 bits");
    sqlite3_int64 value;
    memcpy(&value, &tcb, sizeof(value));
    return value;
}

vtpmca_err store_sqlite_fail(sqlite3 *db, const char *scope, int rc, const char *what,
                             vtpmca_diag *diag)
{
    const char *sep = scope != NULL ? ": " : "";
    scope = scope != NULL ? scope : "";
    if ((rc & 0xff) == SQLITE_NOMEM)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: %s%sout of memory while %s", scope, sep,
                           what);
    /* sqlite's messages name tables, columns and constraints, never bound values. */
    const char *msg =
        (sqlite3_errcode(db) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: %s%ssqlite failed while %s: %s", scope, sep,
                       what, msg);
}

/* Runs one statement with text ?1 (may be NULL: not bound) and integer ?2 (bound when the
 * statement has it); the first row's first column goes to *value when wanted, and
 * *changes (may be NULL) tells how many rows it changed. */
vtpmca_err store_sqlite_exec(sqlite3 *db, const char *sql, const char *text, int64_t number,
                             const char *what, bool *has_row, int64_t *value, int *changes,
                             vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && text != NULL)
        rc = sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2)
        rc = sqlite3_bind_int64(st, 2, number);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (has_row != NULL)
            *has_row = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW && value != NULL)
            *value = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(db);
    vtpmca_err err = rc == SQLITE_OK ? VTPMCA_OK : store_sqlite_fail(db, NULL, rc, what, diag);
    sqlite3_finalize(st);
    return err;
}

static vtpmca_err db_fail(struct sqlite_conn *c, int rc, const char *what, vtpmca_diag *diag)
{
    c->last_rc = rc;
    return store_sqlite_fail(c->db, NULL, rc, what, diag);
}

static vtpmca_err nomem(vtpmca_diag *diag)
{
    return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
}

static vtpmca_err stmt_get(struct sqlite_conn *c, enum stmt_id id, sqlite3_stmt **out,
                           vtpmca_diag *diag)
{
    if (c->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(c->db, STMT_SQL[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return db_fail(c, rc, "preparing a statement", diag);
    }
    *out = c->stmts[id];
    return VTPMCA_OK;
}

/* Readies a cached statement for its next use and ends its implicit read transaction. */
static void stmt_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* One step; *has_row tells whether a result row is available. */
static vtpmca_err stmt_step(struct sqlite_conn *c, sqlite3_stmt *st, const char *what,
                            bool *has_row, vtpmca_diag *diag)
{
    int rc = sqlite3_step(st);
    *has_row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return VTPMCA_OK;
    return db_fail(c, rc, what, diag);
}

/* Runs a parameterless statement to completion (BEGIN, COMMIT, ROLLBACK). */
static vtpmca_err stmt_run(struct sqlite_conn *c, enum stmt_id id, const char *what,
                           vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    bool has_row;
    vtpmca_err err = stmt_get(c, id, &st, diag);
    if (err == VTPMCA_OK)
        err = stmt_step(c, st, what, &has_row, diag);
    stmt_done(st);
    return err;
}

static int bind_text(sqlite3_stmt *st, int index, const char *text)
{
    /* Static: every statement is reset before the bound argument goes out of scope. */
    return sqlite3_bind_text(st, index, text, -1, SQLITE_STATIC);
}

void store_sqlite_copy_text(struct sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", text != NULL ? (const char *)text : "");
}

static vtpmca_err column_version(struct sqlite_conn *c, sqlite3_stmt *st, int col, uint32_t *out,
                                 vtpmca_diag *diag)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    if (v < 1 || v > UINT32_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: policy version out of range in %s",
                           sqlite3_db_filename(c->db, "main"));
    *out = (uint32_t)v;
    return VTPMCA_OK;
}

/* ---- Connections and the pool ---- */

static void conn_close(struct sqlite_conn *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    for (int i = 0; i < CONN_CACHED_MAX; i++)
        sqlite3_finalize(c->cached[i].st);
    sqlite3_close_v2(c->db);
    free(c);
}

/* Sets WAL journaling and copies the mode in force into `mode`; returns an sqlite code. */
static int set_wal_mode(sqlite3 *db, char *mode, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store_sqlite_copy_text(st, 0, mode, size);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static vtpmca_err conn_configure(struct sqlite_conn *c, vtpmca_diag *diag)
{
    int rc = sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return db_fail(c, rc, "setting the busy timeout", diag);

    /* Switching a new database to WAL takes an exclusive lock without calling the busy
     * handler, so openers racing on a new database retry here for the busy timeout. */
    char mode[16] = "";
    for (int waited_ms = 0;; waited_ms += 10) {
        rc = set_wal_mode(c->db, mode, sizeof(mode));
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= BUSY_TIMEOUT_MS)
            break;
        struct timespec pause = {0, 10L * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (rc != SQLITE_OK)
        return db_fail(c, rc, "enabling WAL journaling", diag);
    /* The pragma answers with the mode in force: anything but "wal" means the database or
     * its file system cannot do WAL, and we would lose concurrent reads. */
    if (strcmp(mode, "wal") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE,
                           "store: %s cannot use WAL journaling (journal_mode is %s)",
                           sqlite3_db_filename(c->db, "main"), mode);

    rc = sqlite3_exec(c->db,
                      "PRAGMA synchronous = FULL;"
                      "PRAGMA foreign_keys = ON;"
                      "PRAGMA trusted_schema = OFF;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(c, rc, "configuring the connection", diag);
    return VTPMCA_OK;
}

static vtpmca_err conn_open(const char *path, struct sqlite_conn **out, vtpmca_diag *diag)
{
    struct sqlite_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return nomem(diag);
    /* No SQLITE_OPEN_CREATE: sqlite_open created the file with the right mode. NOMUTEX: the
     * pool hands a connection to one thread at a time. */
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    vtpmca_err err;
    if (rc != SQLITE_OK) {
        if (c->db == NULL)
            err = nomem(diag);
        else
            err = vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: cannot open sqlite database %s: %s",
                              path, sqlite3_errmsg(c->db));
    } else {
        err = conn_configure(c, diag);
    }
    if (err != VTPMCA_OK) {
        conn_close(c);
        return err;
    }
    *out = c;
    return VTPMCA_OK;
}

vtpmca_err store_sqlite_connect(void *impl, struct sqlite3 **out, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_open(s->path, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    /* The caller owns the bare connection; a fresh one has no prepared statements yet. */
    *out = c->db;
    free(c);
    return VTPMCA_OK;
}

static vtpmca_err conn_acquire(struct sqlite_store *s, struct sqlite_conn **out, vtpmca_diag *diag)
{
    pthread_mutex_lock(&s->pool_lock);
    struct sqlite_conn *c = s->idle;
    if (c != NULL) {
        s->idle = c->next;
        s->idle_count--;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (c == NULL) {
        vtpmca_err err = conn_open(s->path, &c, diag);
        if (err != VTPMCA_OK)
            return err;
        /* Up to POOL_MAX_IDLE readers stay open: with sqlite's default 2 MiB page cache each,
         * that could pin ~200 MB. A reader needs the few pages of one lookup (the OS page cache
         * holds the rest); the writer keeps the default. */
        int rc = sqlite3_exec(c->db, "PRAGMA cache_size = -" READER_CACHE_KIB, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            err = db_fail(c, rc, "configuring a reader", diag);
            conn_close(c);
            return err;
        }
        *out = c;
        return VTPMCA_OK;
    }
    c->next = NULL;
    c->last_rc = SQLITE_OK;
    *out = c;
    return VTPMCA_OK;
}

static void conn_release(struct sqlite_store *s, struct sqlite_conn *c)
{
    /* Never pool a connection inside a transaction: the next user would inherit it. */
    if (!sqlite3_get_autocommit(c->db) &&
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK) {
        conn_close(c);
        return;
    }
    pthread_mutex_lock(&s->pool_lock);
    bool keep = s->idle_count < POOL_MAX_IDLE;
    if (keep) {
        c->next = s->idle;
        s->idle = c;
        s->idle_count++;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (!keep)
        conn_close(c);
}

/* Runs body in a BEGIN IMMEDIATE transaction, retrying the whole transaction while another
 * process keeps the database busy past the busy timeout. */
static vtpmca_err run_one_tx(struct sqlite_store *s, tx_body body, void *ctx, vtpmca_diag *diag)
{
    pthread_mutex_lock(&s->write_lock);
    vtpmca_err err = s->writer == NULL ? conn_open(s->path, &s->writer, diag) : VTPMCA_OK;
    struct sqlite_conn *c = s->writer;
    if (err != VTPMCA_OK) {
        pthread_mutex_unlock(&s->write_lock);
        return err;
    }
    for (int attempt = 1;; attempt++) {
        c->last_rc = SQLITE_OK;
        err = stmt_run(c, STMT_BEGIN_IMMEDIATE, "starting a transaction", diag);
        if (err == VTPMCA_OK)
            err = body(c, ctx, diag);
        if (err == VTPMCA_OK)
            err = stmt_run(c, STMT_COMMIT, "committing", diag);
        if (err == VTPMCA_OK)
            break;
        int failed_rc = c->last_rc;
        if (!sqlite3_get_autocommit(c->db))
            (void)stmt_run(c, STMT_ROLLBACK, "rolling back", NULL);
        if ((failed_rc & 0xff) != SQLITE_BUSY || attempt == WRITE_ATTEMPTS)
            break;
        struct timespec pause = {0, 20L * 1000 * 1000 * attempt};
        nanosleep(&pause, NULL);
    }
    /* Never keep the writer inside a transaction (a failed ROLLBACK above): start afresh. */
    if (!sqlite3_get_autocommit(c->db) &&
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK) {
        conn_close(c);
        s->writer = NULL;
    }
    pthread_mutex_unlock(&s->write_lock);
    return err;
}

/* One writer waiting in the group-commit queue. */
struct write_waiter {
    tx_body body;
    void *ctx;
    pthread_cond_t wake; /* signalled when done, or when this waiter is to lead */
    bool done, lead;
    vtpmca_err err;
    vtpmca_diag diag;
    struct write_waiter *next;
    /* An asynchronous writer's report (NULL for a waiting one): nobody sleeps on `wake`; the
     * waiter is heap-allocated and freed after the report. */
    store_write_done report;
    void *report_arg;
};

/* Runs each queued body inside its own savepoint, so a body that fails (a conflict, a refused
 * row) rolls back only its own changes and the others still commit. */
static vtpmca_err run_group_bodies(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    for (struct write_waiter *w = ctx; w != NULL; w = w->next) {
        memset(&w->diag, 0, sizeof(w->diag));
        vtpmca_err err = stmt_run(c, STMT_SAVEPOINT, "opening a savepoint", diag);
        if (err != VTPMCA_OK)
            return err;
        w->err = w->body(c, w->ctx, &w->diag);
        if (w->err != VTPMCA_OK && (c->last_rc & 0xff) == SQLITE_BUSY)
            return vtpmca_fail(diag, w->err, "%s", w->diag.msg); /* retry the whole group */
        if (w->err != VTPMCA_OK)
            err = stmt_run(c, STMT_SAVEPOINT_ROLLBACK, "rolling back a savepoint", diag);
        if (err == VTPMCA_OK)
            err = stmt_run(c, STMT_SAVEPOINT_RELEASE, "closing a savepoint", diag);
        if (err == VTPMCA_OK && sqlite3_get_autocommit(c->db))
            err = db_fail(c, SQLITE_ABORT, "closing a savepoint", diag);
        if (err != VTPMCA_OK)
            return err;
    }
    return VTPMCA_OK;
}

/* Commits a group. If the group as a whole fails (e.g. the disk is full), each writer is
 * retried alone so that one writer's trouble does not fail the others. */
static void commit_group(struct sqlite_store *s, struct write_waiter *group)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = run_one_tx(s, run_group_bodies, group, &diag);
    if (err == VTPMCA_OK)
        return;
    for (struct write_waiter *w = group; w != NULL; w = w->next) {
        memset(&w->diag, 0, sizeof(w->diag));
        w->err = run_one_tx(s, w->body, w->ctx, &w->diag);
    }
}

/* Queues a writer (group_lock held). Returns whether it must lead: no commit is running. An
 * asynchronous writer never leads itself: the commit thread does. */
static bool enqueue_writer(struct sqlite_store *s, struct write_waiter *w)
{
    w->next = s->group_queue; /* newest first; reversed when taken to keep arrival order */
    s->group_queue = w;
    if (!s->group_committing) {
        s->group_committing = true;
        if (w->report == NULL)
            return true;
        s->committer_lead = true;
        pthread_cond_signal(&s->committer_wake);
    }
    return false;
}

/* Leads one group (group_lock held on entry and on return): commits it, wakes the
 * waiting writers, hands the lead to the oldest writer queued meanwhile (the commit thread
 * for an asynchronous one) and then reports to the asynchronous writers of the group.
 * `wake` is the leader's own condition. */
static void lead_group(struct sqlite_store *s, pthread_cond_t *wake)
{
    struct write_waiter *group = NULL;
    while (s->group_queue != NULL) {
        struct write_waiter *w = s->group_queue;
        s->group_queue = w->next;
        w->next = group;
        group = w;
    }
    pthread_mutex_unlock(&s->group_lock);
    commit_group(s, group);
    pthread_mutex_lock(&s->group_lock);
    struct write_waiter *reports = NULL;
    for (struct write_waiter *w = group; w != NULL;) {
        struct write_waiter *next = w->next; /* a woken waiter returns: read nothing after */
        w->done = true;
        if (w->report != NULL) {
            w->next = reports;
            reports = w;
        } else if (&w->wake != wake) {
            pthread_cond_signal(&w->wake);
        }
        w = next;
    }
    /* Whoever queued during this commit: the oldest leads the next group at once
     * (group_committing stays set, so no newcomer leads as well). */
    struct write_waiter *oldest = s->group_queue;
    while (oldest != NULL && oldest->next != NULL)
        oldest = oldest->next;
    if (oldest == NULL) {
        s->group_committing = false;
    } else if (oldest->report != NULL) {
        s->committer_lead = true;
        pthread_cond_signal(&s->committer_wake);
    } else {
        oldest->lead = true;
        pthread_cond_signal(&oldest->wake);
    }
    if (reports == NULL)
        return;
    /* Reports run outside the lock, while the next group commits. */
    pthread_mutex_unlock(&s->group_lock);
    while (reports != NULL) {
        struct write_waiter *w = reports;
        reports = w->next;
        w->report(w->report_arg, w->err, w->err != VTPMCA_OK ? w->diag.msg : "");
        free(w);
    }
    pthread_mutex_lock(&s->group_lock);
}

/* Every write transaction of the store. An acknowledged write must be durable, and each
 * commit costs an fsync, so concurrent writers share commits: each queues its body; when no
 * commit is running, one of them takes the whole queue, runs it in one
 * transaction (each body in its own savepoint, in arrival order) and wakes the others. A lone
 * writer commits at once. Bodies may run again on a retry, so they report results only
 * through ctx. */
static vtpmca_err run_write_tx(struct sqlite_store *s, tx_body body, void *ctx, vtpmca_diag *diag)
{
    struct write_waiter self = {.body = body, .ctx = ctx, .err = VTPMCA_OK};
    pthread_cond_init(&self.wake, NULL);
    pthread_mutex_lock(&s->group_lock);
    /* Each waiter sleeps on its own condition and is woken exactly once: when its group is
     * durable, or to lead the next group. (One shared condition would wake every waiter at
     * each commit, only for most of them to sleep again.) */
    self.lead = enqueue_writer(s, &self);
    while (!self.done && !self.lead)
        pthread_cond_wait(&self.wake, &s->group_lock);
    if (!self.done)
        lead_group(s, &self.wake);
    pthread_mutex_unlock(&s->group_lock);
    pthread_cond_destroy(&self.wake);
    /* A body may also have written the caller's diag through its ctx: keep that message. */
    if (self.err != VTPMCA_OK && self.diag.msg[0] != '\0')
        vtpmca_fail(diag, self.err, "%s", self.diag.msg);
    return self.err;
}

static void *committer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_mutex_lock(&s->group_lock);
    for (;;) {
        while (!s->committer_lead && !s->committer_stop)
            pthread_cond_wait(&s->committer_wake, &s->group_lock);
        if (!s->committer_lead)
            break; /* stopping, and nothing is left to lead */
        s->committer_lead = false;
        lead_group(s, &s->committer_wake);
    }
    pthread_mutex_unlock(&s->group_lock);
    return NULL;
}

/* Queues a heap-allocated asynchronous writer (its report set); the commit thread leads its
 * group. On failure nothing was queued and w is still the caller's. */
static vtpmca_err run_write_async(struct sqlite_store *s, struct write_waiter *w, vtpmca_diag *diag)
{
    pthread_mutex_lock(&s->group_lock);
    if (!s->committer_started) {
        if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
            pthread_mutex_unlock(&s->group_lock);
            return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "store: cannot start the commit thread");
        }
        s->committer_started = true;
    }
    (void)enqueue_writer(s, w);
    pthread_mutex_unlock(&s->group_lock);
    return VTPMCA_OK;
}

static void committer_stop(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->group_lock);
    bool started = s->committer_started;
    s->committer_stop = true;
    pthread_cond_signal(&s->committer_wake);
    pthread_mutex_unlock(&s->group_lock);
    if (started)
        pthread_join(s->committer, NULL);
}

/* ---- Pooled connections for the other backend files (store_certs_sqlite.c) ---- */

struct run_args {
    store_sqlite_fn fn;
    void *ctx;
};

static vtpmca_err run_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct run_args *a = ctx;
    vtpmca_err err = a->fn(c->db, a->ctx, diag);
    if (err != VTPMCA_OK)
        c->last_rc = sqlite3_errcode(c->db); /* lets run_write_tx retry a busy database */
    return err;
}

vtpmca_err store_sqlite_run(void *impl, bool write, store_sqlite_fn fn, void *ctx,
                            vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct run_args args = {fn, ctx};
    if (write)
        return run_write_tx(s, run_body, &args, diag);
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    err = fn(c->db, ctx, diag);
    conn_release(s, c);
    return err;
}

/* ---- Pooled connections with their statement cache (store_certs_sqlite.c) ---- */

sqlite3 *store_sqlite_conn_db(struct sqlite_conn *c)
{
    return c->db;
}

vtpmca_err store_sqlite_conn_stmt(struct sqlite_conn *c, const char *sql, sqlite3_stmt **out,
                                  const char *what, vtpmca_diag *diag)
{
    for (int i = 0; i < CONN_CACHED_MAX; i++) {
        if (c->cached[i].sql == sql) {
            *out = c->cached[i].st;
            return VTPMCA_OK;
        }
        if (c->cached[i].sql == NULL) {
            int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->cached[i].st,
                                        NULL);
            if (rc != SQLITE_OK)
                return db_fail(c, rc, what, diag);
            c->cached[i].sql = sql;
            *out = c->cached[i].st;
            return VTPMCA_OK;
        }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                       "store: more than %d cached statements per connection", CONN_CACHED_MAX);
}

void store_sqlite_stmt_done(sqlite3_stmt *st)
{
    stmt_done(st);
}

struct conn_run_args {
    store_sqlite_tx_fn fn;
    void *ctx;
};

static vtpmca_err run_conn_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct conn_run_args *a = ctx;
    vtpmca_err err = a->fn(c, a->ctx, diag);
    if (err != VTPMCA_OK && c->last_rc == SQLITE_OK)
        c->last_rc = sqlite3_errcode(c->db); /* lets run_write_tx retry a busy database */
    return err;
}

vtpmca_err store_sqlite_write(void *impl, store_sqlite_tx_fn body, void *ctx, vtpmca_diag *diag)
{
    struct conn_run_args args = {body, ctx};
    return run_write_tx(impl, run_conn_body, &args, diag);
}

/* ---- Schema migrations ---- */

struct migrate_step {
    int version;  /* schema version after this step */
    bool applied; /* this step ran a migration (false: nothing was pending) */
};

/* Applies the next missing migration, if any, in the caller's transaction. */
static vtpmca_err migrate_one(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    struct migrate_step *step = ctx;
    int rc = sqlite3_exec(c->db,
                          "CREATE TABLE IF NOT EXISTS schema_migrations ("
                          "  version INTEGER NOT NULL PRIMARY KEY,"
                          "  applied_at INTEGER NOT NULL) STRICT",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(c, rc, "creating schema_migrations", diag);

    sqlite3_stmt *st = NULL;
    bool has_row;
    vtpmca_err err = stmt_get(c, STMT_SCHEMA_VERSION, &st, diag);
    if (err == VTPMCA_OK)
        err = stmt_step(c, st, "reading the schema version", &has_row, diag);
    sqlite3_int64 current = err == VTPMCA_OK ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_int64 rows = err == VTPMCA_OK ? sqlite3_column_int64(st, 1) : 0;
    stmt_done(st);
    if (err != VTPMCA_OK)
        return err;
    if (current != rows)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE,
                           "store: schema_migrations is inconsistent (highest version %lld, "
                           "%lld rows)",
                           (long long)current, (long long)rows);
    if (current > MIGRATION_COUNT)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "store: database schema version %lld is newer than this build "
                           "supports (%d); upgrade vtpmca",
                           (long long)current, MIGRATION_COUNT);
    step->version = (int)current;
    step->applied = false;
    if (current == MIGRATION_COUNT)
        return VTPMCA_OK;

    rc = sqlite3_exec(c->db, MIGRATIONS[current], NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(c, rc, "applying a schema migration", diag);
    err = stmt_get(c, STMT_SCHEMA_RECORD, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    rc = sqlite3_bind_int64(st, 1, current + 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now_unix());
    err = rc == SQLITE_OK ? stmt_step(c, st, "recording a schema migration", &has_row, diag)
                          : db_fail(c, rc, "recording a schema migration", diag);
    stmt_done(st);
    if (err != VTPMCA_OK)
        return err;
    step->version = (int)current + 1;
    step->applied = true;
    return VTPMCA_OK;
}

static vtpmca_err migrate(struct sqlite_store *s, vtpmca_diag *diag)
{
    for (;;) {
        struct migrate_step step = {0, false};
        vtpmca_err err = run_write_tx(s, migrate_one, &step, diag);
        if (err != VTPMCA_OK)
            return err;
        if (!step.applied)
            return VTPMCA_OK;
        char version[16];
        snprintf(version, sizeof(version), "%d", step.version);
        vtpmca_log(VTPMCA_LOG_INFO, "store.migrated", "path", s->path, "version", version, NULL);
    }
}

/* ---- Open / close ---- */

/* Creates the database file 0600 before sqlite sees it (sqlite would use 0644); sqlite gives
 * the -wal and -shm files the database file's mode. */
static vtpmca_err create_db_file(const char *path, vtpmca_diag *diag)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return VTPMCA_OK;
    }
    if (errno != EEXIST)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "store: cannot create %s: %s", path,
                           strerror(errno));
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        vtpmca_log(VTPMCA_LOG_WARN, "store.permissions", "path", path, "detail",
                   "database file is accessible to group or others; it should be 0600", NULL);
    return VTPMCA_OK;
}

static void sqlite_close(void *impl)
{
    struct sqlite_store *s = impl;
    if (s == NULL)
        return;
    committer_stop(s); /* after the queue is empty: it leads whatever is still queued */
    while (s->idle != NULL) {
        struct sqlite_conn *c = s->idle;
        s->idle = c->next;
        conn_close(c);
    }
    conn_close(s->writer);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->group_lock);
    pthread_cond_destroy(&s->committer_wake);
    free(s->path);
    free(s);
}

static vtpmca_err sqlite_open(const char *location, void **impl, vtpmca_diag *diag)
{
    if (sqlite3_threadsafe() == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "store: the sqlite library was built without thread support");
    if (strcmp(location, ":memory:") == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "store: in-memory sqlite databases are not supported (each pooled "
                           "connection would see a different database)");
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return nomem(diag);
    /* "./" keeps sqlite from reading a relative name such as "file:x" as a URI. */
    const char *prefix = location[0] == '/' ? "" : "./";
    size_t len = strlen(prefix) + strlen(location) + 1;
    s->path = malloc(len);
    if (s->path == NULL) {
        free(s);
        return nomem(diag);
    }
    snprintf(s->path, len, "%s%s", prefix, location);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->group_lock, NULL);
    pthread_cond_init(&s->committer_wake, NULL);

    vtpmca_err err = create_db_file(s->path, diag);
    if (err == VTPMCA_OK)
        err = migrate(s, diag);
    if (err != VTPMCA_OK) {
        sqlite_close(s);
        return err;
    }
    *impl = s;
    return VTPMCA_OK;
}

/* Runs parameterless statement id on a pooled connection; *out gets its first row's first
 * column (untouched on error). */
static vtpmca_err read_one_integer(struct sqlite_store *s, enum stmt_id id, const char *what,
                                   sqlite3_int64 *out, vtpmca_diag *diag)
{
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    bool has_row;
    err = stmt_get(c, id, &st, diag);
    if (err == VTPMCA_OK)
        err = stmt_step(c, st, what, &has_row, diag);
    if (err == VTPMCA_OK)
        *out = sqlite3_column_int64(st, 0);
    stmt_done(st);
    conn_release(s, c);
    return err;
}

static vtpmca_err sqlite_schema_version(void *impl, int *out, vtpmca_diag *diag)
{
    sqlite3_int64 version;
    vtpmca_err err =
        read_one_integer(impl, STMT_SCHEMA_VERSION, "reading the schema version", &version, diag);
    if (err == VTPMCA_OK)
        *out = (int)version;
    return err;
}

/* ---- VCEK / VLEK certificates ---- */

struct vcek_put_args {
    const char *product, *signer, *source;
    const uint8_t *chip_id;
    uint64_t tcb;
    const uint8_t *der;
    size_t der_len;
};

static vtpmca_err vcek_put_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct vcek_put_args *a = ctx;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_VCEK_PUT, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, a->product);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, a->signer);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 3, a->chip_id, 64, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, tcb_to_db(a->tcb));
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 5, a->der, a->der_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 6, a->source);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, now_unix());
    bool has_row;
    err = rc == SQLITE_OK ? stmt_step(c, st, "storing a certificate", &has_row, diag)
                          : db_fail(c, rc, "storing a certificate", diag);
    stmt_done(st);
    return err;
}

static vtpmca_err sqlite_vcek_put(void *impl, const char *product, const char *signer,
                                  const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                                  size_t der_len, const char *source, vtpmca_diag *diag)
{
    struct vcek_put_args args = {product, signer, source, chip_id, tcb, der, der_len};
    return run_write_tx(impl, vcek_put_body, &args, diag);
}

static vtpmca_err sqlite_vcek_get(void *impl, const char *product, const char *signer,
                                  const uint8_t chip_id[64], uint64_t tcb, uint8_t **der,
                                  size_t *der_len, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    err = stmt_get(c, STMT_VCEK_GET, &st, diag);
    if (err != VTPMCA_OK)
        goto out;
    int rc = bind_text(st, 1, product);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, signer);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 3, chip_id, 64, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, tcb_to_db(tcb));
    bool has_row = false;
    err = rc == SQLITE_OK ? stmt_step(c, st, "looking up a certificate", &has_row, diag)
                          : db_fail(c, rc, "looking up a certificate", diag);
    if (err != VTPMCA_OK)
        goto out;
    if (!has_row) {
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                          "store: no %s %s certificate for this chip at TCB 0x%016" PRIx64, product,
                          signer, tcb);
        goto out;
    }
    const void *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        err = nomem(diag);
        goto out;
    }
    if (len > 0)
        memcpy(copy, blob, len);
    *der = copy;
    *der_len = len;
out:
    stmt_done(st);
    conn_release(s, c);
    return err;
}

static vtpmca_err sqlite_vcek_count(void *impl, uint64_t *out, vtpmca_diag *diag)
{
    sqlite3_int64 count;
    vtpmca_err err = read_one_integer(impl, STMT_VCEK_COUNT, "counting certificates", &count, diag);
    if (err == VTPMCA_OK)
        *out = (uint64_t)count;
    return err;
}

/* ---- Fleets ---- */

struct fleet_create_args {
    const char *name, *description;
};

static vtpmca_err fleet_create_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct fleet_create_args *a = ctx;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_FLEET_CREATE, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, a->name);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, a->description);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, now_unix());
    bool has_row;
    err = rc == SQLITE_OK ? stmt_step(c, st, "creating a fleet", &has_row, diag)
                          : db_fail(c, rc, "creating a fleet", diag);
    stmt_done(st);
    if (err == VTPMCA_OK && sqlite3_changes(c->db) == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "store: fleet %s already exists", a->name);
    return err;
}

static vtpmca_err sqlite_fleet_create(void *impl, const char *name, const char *description,
                                      vtpmca_diag *diag)
{
    struct fleet_create_args args = {name, description};
    return run_write_tx(impl, fleet_create_body, &args, diag);
}

/* VTPMCA_OK when the fleet exists, NOT_FOUND (with a diag naming it) when not. */
static vtpmca_err fleet_exists_on(struct sqlite_conn *c, const char *name, vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_FLEET_EXISTS, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, name);
    bool has_row = false;
    err = rc == SQLITE_OK ? stmt_step(c, st, "looking up a fleet", &has_row, diag)
                          : db_fail(c, rc, "looking up a fleet", diag);
    stmt_done(st);
    if (err == VTPMCA_OK && !has_row)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: unknown fleet %s", name);
    return err;
}

static vtpmca_err sqlite_fleet_exists(void *impl, const char *name, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    err = fleet_exists_on(c, name, diag);
    conn_release(s, c);
    return err;
}

/* Returns the array with room for element n, reallocated if needed, or NULL when out of
 * memory (the old array then still belongs to the caller). */
void *store_sqlite_reserve(void *items, size_t *cap, size_t n, size_t item_size)
{
    if (n < *cap)
        return items;
    size_t new_cap = *cap == 0 ? 16 : *cap * 2;
    void *bigger = realloc(items, new_cap * item_size);
    if (bigger != NULL)
        *cap = new_cap;
    return bigger;
}

/* Steps a listing statement. On a row, grows *items (*cap entries of item_size allocated) to
 * hold entry `count` and sets *row to that entry, zeroed; after the last row, *row = NULL. */
static vtpmca_err list_next_row(struct sqlite_conn *c, sqlite3_stmt *st, const char *what,
                                void **items, size_t *cap, size_t count, size_t item_size,
                                void **row, vtpmca_diag *diag)
{
    *row = NULL;
    bool has_row;
    vtpmca_err err = stmt_step(c, st, what, &has_row, diag);
    if (err != VTPMCA_OK || !has_row)
        return err;
    void *bigger = store_sqlite_reserve(*items, cap, count, item_size);
    if (bigger == NULL)
        return nomem(diag);
    *items = bigger;
    *row = (unsigned char *)bigger + count * item_size;
    memset(*row, 0, item_size);
    return VTPMCA_OK;
}

static vtpmca_err sqlite_fleet_list(void *impl, store_fleet **out, size_t *n, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    void *items = NULL;
    size_t count = 0, cap = 0;
    err = stmt_get(c, STMT_FLEET_LIST, &st, diag);
    while (err == VTPMCA_OK) {
        void *row;
        err = list_next_row(c, st, "listing fleets", &items, &cap, count, sizeof(store_fleet), &row,
                            diag);
        if (err != VTPMCA_OK || row == NULL)
            break;
        store_fleet *f = row;
        store_sqlite_copy_text(st, 0, f->name, sizeof(f->name));
        store_sqlite_copy_text(st, 1, f->description, sizeof(f->description));
        f->created_at = sqlite3_column_int64(st, 2);
        sqlite3_int64 latest = sqlite3_column_int64(st, 3);
        if (latest == 0)
            f->latest_policy = 0;
        else
            err = column_version(c, st, 3, &f->latest_policy, diag);
        if (err == VTPMCA_OK)
            count++;
    }
    stmt_done(st);
    conn_release(s, c);
    if (err != VTPMCA_OK) {
        free(items);
        return err;
    }
    *out = items;
    *n = count;
    return VTPMCA_OK;
}

/* ---- Policies ---- */

struct policy_put_args {
    const char *fleet, *json, *author;
    uint32_t version; /* out */
};

static vtpmca_err policy_put_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    struct policy_put_args *a = ctx;
    vtpmca_err err = fleet_exists_on(c, a->fleet, diag);
    if (err != VTPMCA_OK)
        return err;

    /* Inside BEGIN IMMEDIATE no other writer can take the same number. */
    sqlite3_stmt *st = NULL;
    bool has_row;
    err = stmt_get(c, STMT_POLICY_MAX_VERSION, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, a->fleet);
    err = rc == SQLITE_OK ? stmt_step(c, st, "reading the policy version", &has_row, diag)
                          : db_fail(c, rc, "reading the policy version", diag);
    sqlite3_int64 latest = err == VTPMCA_OK ? sqlite3_column_int64(st, 0) : 0;
    stmt_done(st);
    if (err != VTPMCA_OK)
        return err;
    if (latest < 0 || latest >= UINT32_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "store: fleet %s has no policy version left",
                           a->fleet);

    err = stmt_get(c, STMT_POLICY_INSERT, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    rc = bind_text(st, 1, a->fleet);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, latest + 1);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, a->json);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 4, a->author);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, now_unix());
    err = rc == SQLITE_OK ? stmt_step(c, st, "storing a policy", &has_row, diag)
                          : db_fail(c, rc, "storing a policy", diag);
    stmt_done(st);
    if (err == VTPMCA_OK)
        a->version = (uint32_t)(latest + 1);
    return err;
}

static vtpmca_err sqlite_policy_put(void *impl, const char *fleet, const char *policy_json,
                                    const char *author, uint32_t *version_out, vtpmca_diag *diag)
{
    struct policy_put_args args = {fleet, policy_json, author, 0};
    vtpmca_err err = run_write_tx(impl, policy_put_body, &args, diag);
    if (err == VTPMCA_OK && version_out != NULL)
        *version_out = args.version;
    return err;
}

static vtpmca_err sqlite_policy_get(void *impl, const char *fleet, uint32_t version,
                                    char **policy_json, uint32_t *version_out, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    bool has_row = false;
    err = stmt_get(c, version == 0 ? STMT_POLICY_GET_LATEST : STMT_POLICY_GET_VERSION, &st, diag);
    if (err != VTPMCA_OK)
        goto out;
    int rc = bind_text(st, 1, fleet);
    if (rc == SQLITE_OK && version != 0)
        rc = sqlite3_bind_int64(st, 2, version);
    err = rc == SQLITE_OK ? stmt_step(c, st, "reading a policy", &has_row, diag)
                          : db_fail(c, rc, "reading a policy", diag);
    if (err != VTPMCA_OK)
        goto out;
    if (!has_row) {
        stmt_done(st);
        st = NULL;
        /* Say whether the fleet or just the version is missing. */
        err = fleet_exists_on(c, fleet, diag);
        if (err == VTPMCA_OK && version == 0)
            err =
                vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: fleet %s has no policy yet", fleet);
        else if (err == VTPMCA_OK)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                              "store: fleet %s has no policy version %" PRIu32, fleet, version);
        goto out;
    }
    uint32_t found = 0;
    err = column_version(c, st, 0, &found, diag);
    if (err != VTPMCA_OK)
        goto out;
    const unsigned char *text = sqlite3_column_text(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    char *copy = text != NULL ? malloc(len + 1) : NULL;
    if (copy == NULL) {
        err = nomem(diag);
        goto out;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    *policy_json = copy;
    if (version_out != NULL)
        *version_out = found;
out:
    stmt_done(st);
    conn_release(s, c);
    return err;
}

static vtpmca_err sqlite_policy_history(void *impl, const char *fleet, store_policy_version **out,
                                        size_t *n, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    void *items = NULL;
    size_t count = 0, cap = 0;
    err = fleet_exists_on(c, fleet, diag);
    if (err == VTPMCA_OK)
        err = stmt_get(c, STMT_POLICY_HISTORY, &st, diag);
    if (err == VTPMCA_OK) {
        int rc = bind_text(st, 1, fleet);
        if (rc != SQLITE_OK)
            err = db_fail(c, rc, "reading policy history", diag);
    }
    while (err == VTPMCA_OK) {
        void *row;
        err = list_next_row(c, st, "reading policy history", &items, &cap, count,
                            sizeof(store_policy_version), &row, diag);
        if (err != VTPMCA_OK || row == NULL)
            break;
        store_policy_version *v = row;
        err = column_version(c, st, 0, &v->version, diag);
        v->created_at = sqlite3_column_int64(st, 1);
        store_sqlite_copy_text(st, 2, v->author, sizeof(v->author));
        if (err == VTPMCA_OK)
            count++;
    }
    stmt_done(st);
    conn_release(s, c);
    if (err != VTPMCA_OK) {
        free(items);
        return err;
    }
    *out = items;
    *n = count;
    return VTPMCA_OK;
}

/* ---- Instances ---- */

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Binds text, or NULL for an empty string (optional audit columns). */
static int bind_optional_text(sqlite3_stmt *st, int index, const char *text)
{
    return text == NULL || text[0] == '\0' ? sqlite3_bind_null(st, index)
                                           : bind_text(st, index, text);
}

static vtpmca_err instance_insert(struct sqlite_conn *c, const store_instance *inst,
                                  int64_t created_at, vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_INSTANCE_INSERT, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, inst->id);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, inst->fleet);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, inst->resource_path);
    if (rc == SQLITE_OK)
        rc = inst->has_host_data ? sqlite3_bind_blob(st, 4, inst->host_data, 32, SQLITE_STATIC)
                                 : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 5, store_key_mode_name(inst->key_mode));
    if (rc == SQLITE_OK)
        rc = inst->wrapped_key != NULL ? sqlite3_bind_blob64(st, 6, inst->wrapped_key,
                                                             inst->wrapped_key_len, SQLITE_STATIC)
                                       : sqlite3_bind_null(st, 6);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, created_at);
    if (rc != SQLITE_OK) {
        err = db_fail(c, rc, "enrolling an instance", diag);
    } else {
        rc = sqlite3_step(st);
        /* Name the duplicate: the caller can act on "id taken" or "path taken". */
        int extended = sqlite3_extended_errcode(c->db);
        if (rc == SQLITE_DONE)
            err = VTPMCA_OK;
        else if (rc == SQLITE_CONSTRAINT && extended == SQLITE_CONSTRAINT_PRIMARYKEY)
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "store: instance %s is already enrolled",
                              inst->id);
        else if (rc == SQLITE_CONSTRAINT && extended == SQLITE_CONSTRAINT_UNIQUE)
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                              "store: another instance is enrolled at the resource path of %s",
                              inst->id);
        else if (rc == SQLITE_CONSTRAINT && extended == SQLITE_CONSTRAINT_TRIGGER)
            /* instance_not_deleted (migration 8): the message says which rule. */
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "store: instance %s: %s", inst->id,
                              sqlite3_errmsg(c->db));
        else
            err = db_fail(c, rc, "enrolling an instance", diag);
    }
    stmt_done(st);
    return err;
}

static vtpmca_err audit_insert(struct sqlite_conn *c, const store_audit_event *ev, int64_t at_ms,
                               vtpmca_diag *diag)
{
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_AUDIT_INSERT, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = sqlite3_bind_int64(st, 1, ev->at_ms != 0 ? ev->at_ms : at_ms);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 2, ev->actor);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, ev->action);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 4, ev->instance_id);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 5, ev->outcome);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 6, ev->measurement);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 7, ev->chip_id);
    if (rc == SQLITE_OK)
        rc = bind_optional_text(st, 8, ev->detail);
    bool has_row;
    err = rc == SQLITE_OK ? stmt_step(c, st, "appending to the audit log", &has_row, diag)
                          : db_fail(c, rc, "appending to the audit log", diag);
    stmt_done(st);
    return err;
}

struct instance_put_args {
    const store_instance *items;
    size_t n;
    store_audit_describe_fn describe;
    void *ctx;
    int64_t now_ms;
    size_t failed_index; /* out */
};

static vtpmca_err instance_put_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    struct instance_put_args *a = ctx;
    const char *known_fleet = NULL; /* batches are mostly one fleet: check each name once */
    for (size_t i = 0; i < a->n; i++) {
        const store_instance *inst = &a->items[i];
        a->failed_index = i;
        vtpmca_err err = VTPMCA_OK;
        if (known_fleet == NULL || strcmp(known_fleet, inst->fleet) != 0) {
            err = fleet_exists_on(c, inst->fleet, diag);
            known_fleet = inst->fleet;
        }
        if (err == VTPMCA_OK)
            err = instance_insert(c, inst, a->now_ms / 1000, diag);
        if (err == VTPMCA_OK && a->describe != NULL) {
            store_audit_event event;
            memset(&event, 0, sizeof(event));
            err = a->describe(inst, i, &event, a->ctx);
            if (err == VTPMCA_OK)
                err = audit_insert(c, &event, a->now_ms, diag);
        }
        if (err != VTPMCA_OK)
            return err;
    }
    a->failed_index = a->n;
    return VTPMCA_OK;
}

static vtpmca_err sqlite_instance_put_batch(void *impl, const store_instance *items, size_t n,
                                            store_audit_describe_fn describe, void *ctx,
                                            size_t *failed_index, vtpmca_diag *diag)
{
    struct instance_put_args args = {items, n, describe, ctx, now_unix_ms(), n};
    vtpmca_err err = run_write_tx(impl, instance_put_body, &args, diag);
    if (failed_index != NULL)
        *failed_index = err == VTPMCA_OK ? n : args.failed_index;
    if (err != VTPMCA_OK && n > 1 && args.failed_index < n && diag != NULL) {
        /* Say which item, keeping the backend's message. */
        char msg[sizeof(diag->msg)];
        snprintf(msg, sizeof(msg), "%s", diag->msg);
        vtpmca_fail(diag, err, "%s (item %zu)", msg, args.failed_index);
    }
    return err;
}

/* Reads an instance row (columns as INSTANCE_COLUMNS); out->wrapped_key is malloc'd. */
static vtpmca_err read_instance(struct sqlite_conn *c, sqlite3_stmt *st, store_instance *out,
                                vtpmca_diag *diag)
{
    memset(out, 0, sizeof(*out));
    store_sqlite_copy_text(st, 0, out->id, sizeof(out->id));
    store_sqlite_copy_text(st, 1, out->fleet, sizeof(out->fleet));
    store_sqlite_copy_text(st, 2, out->resource_path, sizeof(out->resource_path));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
        if (sqlite3_column_bytes(st, 3) != 32)
            return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: instance %s: damaged host_data",
                               out->id);
        memcpy(out->host_data, sqlite3_column_blob(st, 3), 32);
        out->has_host_data = true;
    }
    const unsigned char *mode = sqlite3_column_text(st, 4);
    if (mode == NULL || store_key_mode_parse((const char *)mode, &out->key_mode) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE, "store: instance %s: unknown key mode", out->id);
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
        size_t len = (size_t)sqlite3_column_bytes(st, 5);
        const void *blob = sqlite3_column_blob(st, 5);
        out->wrapped_key = malloc(len > 0 ? len : 1);
        if (out->wrapped_key == NULL)
            return nomem(diag);
        if (len > 0)
            memcpy(out->wrapped_key, blob, len);
        out->wrapped_key_len = len;
    }
    out->disabled = sqlite3_column_int64(st, 6) != 0;
    out->created_at = sqlite3_column_int64(st, 7);
    (void)c;
    return VTPMCA_OK;
}

static vtpmca_err sqlite_instance_get(void *impl, const char *id, const char *resource_path,
                                      store_instance *out, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    err = stmt_get(c, id != NULL ? STMT_INSTANCE_GET_BY_ID : STMT_INSTANCE_GET_BY_PATH, &st, diag);
    bool has_row = false;
    if (err == VTPMCA_OK) {
        int rc = bind_text(st, 1, id != NULL ? id : resource_path);
        err = rc == SQLITE_OK ? stmt_step(c, st, "looking up an instance", &has_row, diag)
                              : db_fail(c, rc, "looking up an instance", diag);
    }
    if (err == VTPMCA_OK && !has_row)
        err = id != NULL ? vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: unknown instance %s", id)
                         : vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                                       "store: no instance is enrolled at this resource path");
    if (err == VTPMCA_OK)
        err = read_instance(c, st, out, diag);
    if (err != VTPMCA_OK)
        store_instance_free_fields(out);
    stmt_done(st);
    conn_release(s, c);
    return err;
}

static vtpmca_err sqlite_instance_list(void *impl, const char *fleet, const char *after_id,
                                       size_t limit, store_instance **out, size_t *n,
                                       vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    void *items = NULL;
    size_t count = 0, cap = 0;
    err = stmt_get(c, fleet != NULL ? STMT_INSTANCE_LIST_FLEET : STMT_INSTANCE_LIST, &st, diag);
    if (err == VTPMCA_OK) {
        int rc = fleet != NULL ? bind_text(st, 1, fleet) : SQLITE_OK;
        if (rc == SQLITE_OK)
            rc = bind_text(st, 2, after_id != NULL ? after_id : ""); /* every id sorts after "" */
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        if (rc != SQLITE_OK)
            err = db_fail(c, rc, "listing instances", diag);
    }
    while (err == VTPMCA_OK) {
        void *row;
        err = list_next_row(c, st, "listing instances", &items, &cap, count, sizeof(store_instance),
                            &row, diag);
        if (err != VTPMCA_OK || row == NULL)
            break;
        err = read_instance(c, st, row, diag);
        count++; /* a failed row may hold an allocation: freed with the rest */
    }
    stmt_done(st);
    conn_release(s, c);
    if (err != VTPMCA_OK) {
        store_instance_list_free(items, count);
        return err;
    }
    *out = items;
    *n = count;
    return VTPMCA_OK;
}

struct set_disabled_args {
    const char *id;
    bool disabled;
};

static vtpmca_err set_disabled_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct set_disabled_args *a = ctx;
    sqlite3_stmt *st = NULL;
    vtpmca_err err = stmt_get(c, STMT_INSTANCE_SET_DISABLED, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    int rc = bind_text(st, 1, a->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, a->disabled ? 1 : 0);
    bool has_row;
    err = rc == SQLITE_OK ? stmt_step(c, st, "updating an instance", &has_row, diag)
                          : db_fail(c, rc, "updating an instance", diag);
    stmt_done(st);
    if (err == VTPMCA_OK && sqlite3_changes(c->db) == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "store: unknown instance %s", a->id);
    return err;
}

static vtpmca_err sqlite_instance_set_disabled(void *impl, const char *id, bool disabled,
                                               vtpmca_diag *diag)
{
    struct set_disabled_args args = {id, disabled};
    return run_write_tx(impl, set_disabled_body, &args, diag);
}

/* ---- Audit log ---- */

struct audit_args {
    const store_audit_event *event;
    int64_t now_ms;
};

static vtpmca_err audit_append_body(struct sqlite_conn *c, void *ctx, vtpmca_diag *diag)
{
    const struct audit_args *a = ctx;
    return audit_insert(c, a->event, a->now_ms, diag);
}

vtpmca_err store_sqlite_audit_insert(struct sqlite_conn *c, const store_audit_event *event,
                                     vtpmca_diag *diag)
{
    return audit_insert(c, event, now_unix_ms(), diag);
}

/* Every release decision appends a row and must not go on before it is durable; group commit
 * (run_write_tx) lets concurrent appenders share one fsync. */
static vtpmca_err sqlite_audit_append(void *impl, const store_audit_event *event, vtpmca_diag *diag)
{
    struct audit_args args = {event, now_unix_ms()};
    return run_write_tx(impl, audit_append_body, &args, diag);
}

/* An asynchronous append: the waiter, the body's arguments and the event in one block. */
struct audit_async {
    struct write_waiter waiter;
    struct audit_args args;
    store_audit_event event;
};

static vtpmca_err sqlite_audit_append_async(void *impl, const store_audit_event *event,
                                            store_write_done report, void *arg, vtpmca_diag *diag)
{
    struct audit_async *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return nomem(diag);
    a->event = *event;
    a->args = (struct audit_args){&a->event, now_unix_ms()};
    a->waiter = (struct write_waiter){
        .body = audit_append_body, .ctx = &a->args, .report = report, .report_arg = arg};
    vtpmca_err err = run_write_async(impl, &a->waiter, diag);
    if (err != VTPMCA_OK)
        free(a);
    return err;
}

static vtpmca_err sqlite_audit_query(void *impl, const store_audit_filter *filter,
                                     store_audit_event **out, size_t *n, vtpmca_diag *diag)
{
    struct sqlite_store *s = impl;
    struct sqlite_conn *c = NULL;
    vtpmca_err err = conn_acquire(s, &c, diag);
    if (err != VTPMCA_OK)
        return err;
    sqlite3_stmt *st = NULL;
    void *items = NULL;
    size_t count = 0, cap = 0;
    err = stmt_get(c, filter->instance_id != NULL ? STMT_AUDIT_QUERY_INSTANCE : STMT_AUDIT_QUERY,
                   &st, diag);
    if (err == VTPMCA_OK) {
        int rc = filter->instance_id != NULL ? bind_text(st, 1, filter->instance_id) : SQLITE_OK;
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, filter->after_seq);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 3, filter->since_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 4, filter->until_ms != 0 ? filter->until_ms : INT64_MAX);
        if (rc == SQLITE_OK)
            rc = filter->action != NULL ? bind_text(st, 5, filter->action)
                                        : sqlite3_bind_null(st, 5);
        if (rc == SQLITE_OK)
            rc = filter->outcome != NULL ? bind_text(st, 6, filter->outcome)
                                         : sqlite3_bind_null(st, 6);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 7, (sqlite3_int64)filter->limit);
        if (rc != SQLITE_OK)
            err = db_fail(c, rc, "querying the audit log", diag);
    }
    while (err == VTPMCA_OK) {
        void *row;
        err = list_next_row(c, st, "querying the audit log", &items, &cap, count,
                            sizeof(store_audit_event), &row, diag);
        if (err != VTPMCA_OK || row == NULL)
            break;
        store_audit_event *ev = row;
        count++;
        ev->seq = sqlite3_column_int64(st, 0);
        ev->at_ms = sqlite3_column_int64(st, 1);
        store_sqlite_copy_text(st, 2, ev->actor, sizeof(ev->actor));
        store_sqlite_copy_text(st, 3, ev->action, sizeof(ev->action));
        store_sqlite_copy_text(st, 4, ev->instance_id, sizeof(ev->instance_id));
        store_sqlite_copy_text(st, 5, ev->outcome, sizeof(ev->outcome));
        store_sqlite_copy_text(st, 6, ev->measurement, sizeof(ev->measurement));
        store_sqlite_copy_text(st, 7, ev->chip_id, sizeof(ev->chip_id));
        store_sqlite_copy_text(st, 8, ev->detail, sizeof(ev->detail));
    }
    stmt_done(st);
    conn_release(s, c);
    if (err != VTPMCA_OK) {
        free(items);
        return err;
    }
    *out = items;
    *n = count;
    return VTPMCA_OK;
}

const struct store_backend_ops store_sqlite_backend = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .schema_version = sqlite_schema_version,
    .vcek_put = sqlite_vcek_put,
    .vcek_get = sqlite_vcek_get,
    .vcek_count = sqlite_vcek_count,
    .fleet_create = sqlite_fleet_create,
    .fleet_exists = sqlite_fleet_exists,
    .fleet_list = sqlite_fleet_list,
    .policy_put = sqlite_policy_put,
    .policy_get = sqlite_policy_get,
    .policy_history = sqlite_policy_history,
    .instance_put_batch = sqlite_instance_put_batch,
    .instance_get = sqlite_instance_get,
    .instance_list = sqlite_instance_list,
    .instance_set_disabled = sqlite_instance_set_disabled,
    .audit_append = sqlite_audit_append,
    .audit_append_async = sqlite_audit_append_async,
    .audit_query = sqlite_audit_query,
    .ledger_writer_open = store_sqlite_ledger_writer_open,
    .ledger_writer_close = store_sqlite_ledger_writer_close,
    .ledger_load = store_sqlite_ledger_load,
    .ledger_apply_batch = store_sqlite_ledger_apply_batch,
    .cert_put = store_sqlite_cert_put,
    .cert_get = store_sqlite_cert_get,
    .cert_list = store_sqlite_cert_list,
    .cert_revoke = store_sqlite_cert_revoke,
    .cert_revocations = store_sqlite_cert_revocations,
    .crl_number_next = store_sqlite_crl_number_next,
    .cert_record_certification = store_sqlite_cert_record_certification,
    .ledger_key_put = store_sqlite_ledger_key_put,
    .ledger_key_get = store_sqlite_ledger_key_get,
    .ek_reenroll_grant = store_sqlite_ek_reenroll_grant,
    .ek_reenroll_take = store_sqlite_ek_reenroll_take,
    .instance_delete = store_sqlite_instance_delete,
    .instance_was_deleted = store_sqlite_instance_was_deleted,
    .audit_last_seq = store_sqlite_audit_last_seq,
};
