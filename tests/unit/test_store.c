/* Unit tests for store/: the sqlite backend on real database files in a temporary directory,
 * checked both through the store API and through an independent sqlite connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/fileio.h"
#include "vtpmca/store.h"

static char g_dir[64];
static int g_db_counter;

/* ---- helpers ---- */

static int group_setup(void **state)
{
    (void)state;
    return ca_fixture_tmpdir(g_dir, sizeof(g_dir), "test-store");
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g_dir);
}

/* A fresh database path for one test. */
static void new_db_path(char *out, size_t size)
{
    snprintf(out, size, "%s/db-%d.sqlite", g_dir, ++g_db_counter);
}

static store *open_fresh(char *path, size_t size)
{
    new_db_path(path, size);
    char uri[600];
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_open(uri, &st, &diag);
    if (err != VTPMCA_OK)
        print_error("store_open: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    assert_non_null(st);
    return st;
}

/* An independent connection, as another tool or process would have. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("sqlite: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static sqlite3_int64 raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static int schema_version(store *st)
{
    int version = -1;
    assert_int_equal(store_schema_version(st, &version), VTPMCA_OK);
    return version;
}

static mode_t file_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 0777;
}

static void fill_chip(uint8_t chip[64], uint8_t seed)
{
    for (int i = 0; i < 64; i++)
        chip[i] = (uint8_t)(seed + i * 7);
}

static uint64_t count_vceks(store *st)
{
    uint64_t n = UINT64_MAX;
    assert_int_equal(store_vcek_count(st, &n, NULL), VTPMCA_OK);
    return n;
}

static size_t history_len(store *st, const char *fleet)
{
    store_policy_version *hist = NULL;
    size_t n = 0;
    assert_int_equal(store_policy_history(st, fleet, &hist, &n, NULL), VTPMCA_OK);
    free(hist);
    return n;
}

/* ---- open, migrations, file properties ---- */

static void test_open_applies_migrations_once(void **state)
{
    (void)state;
    mode_t old_umask = umask(022); /* sqlite alone would create 0644 under this umask */
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    umask(old_umask);
    int version = schema_version(st);
    assert_true(version >= 2);

    /* A write leaves the -wal and -shm files in place while the store is open. */
    assert_int_equal(store_fleet_create(st, "prod", "production", NULL), VTPMCA_OK);
    char wal[600], shm[600];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    snprintf(shm, sizeof(shm), "%s-shm", path);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(file_mode(wal), 0600);
    assert_int_equal(file_mode(shm), 0600);

    sqlite3 *db = raw_open(path);
    char mode[16];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), version);
    assert_int_equal(raw_int(db, "SELECT MIN(version) FROM schema_migrations"), 1);
    assert_int_equal(raw_int(db, "SELECT MAX(version) FROM schema_migrations"), version);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND "
                                 "name IN ('vcek', 'fleet', 'policy')"),
                     3);
    sqlite3_int64 applied = raw_int(db, "SELECT SUM(applied_at) FROM schema_migrations");
    time_t now = time(NULL);
    assert_true(applied >= (sqlite3_int64)(now - 60) * version);
    assert_true(applied <= (sqlite3_int64)now * version);
    store_close(st);

    /* Reopening (plain path this time) applies nothing again and keeps the data. */
    sleep(1);
    assert_int_equal(store_open(path, &st, NULL), VTPMCA_OK);
    assert_int_equal(schema_version(st), version);
    assert_int_equal(store_fleet_exists(st, "prod", NULL), VTPMCA_OK);
    store_close(st);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), version);
    assert_int_equal(raw_int(db, "SELECT SUM(applied_at) FROM schema_migrations"), applied);
    sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    int version = schema_version(st);
    store_close(st);

    sqlite3 *db = raw_open(path);
    char sql[128];
    snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 0)", version + 1);
    raw_exec(db, sql);

    vtpmca_diag diag = {{0}};
    st = (store *)&version; /* a stale value the failed open must clear */
    assert_int_equal(store_open(path, &st, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_null(st);
    assert_non_null(strstr(diag.msg, "newer"));
    /* Refusing changed nothing. */
    assert_int_equal(raw_int(db, "SELECT MAX(version) FROM schema_migrations"), version + 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), version + 1);
    sqlite3_close(db);
}

static void test_inconsistent_schema_refused(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    store_close(st);
    sqlite3 *db = raw_open(path);
    raw_exec(db, "DELETE FROM schema_migrations WHERE version = 1");
    sqlite3_close(db);

    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(path, &st, &diag), VTPMCA_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(diag.msg, "inconsistent"));
}

static void test_not_a_database(void **state)
{
    (void)state;
    char path[512];
    new_db_path(path, sizeof(path));
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 31 + 7);
    assert_int_equal(vt_file_write_atomic(path, junk, sizeof(junk), 0600, NULL), VTPMCA_OK);
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(path, &st, &diag), VTPMCA_ERR_STORE);
    assert_null(st);
    assert_non_null(strstr(diag.msg, "sqlite"));
}

static void test_open_rejections(void **state)
{
    (void)state;
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(NULL, &st, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_open("x.db", NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_open("", &st, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_open("sqlite:", &st, &diag), VTPMCA_ERR_INVALID_ARG);

    assert_int_equal(store_open("postgres://vtpmca@db/vtpmca", &st, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "PostgreSQL"));
    assert_null(st);
    vtpmca_diag_clear(&diag);
    assert_int_equal(store_open("postgresql://localhost/vtpmca", &st, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "PostgreSQL"));
    assert_int_equal(store_open("mysql://localhost/vtpmca", &st, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "mysql"));
    assert_int_equal(store_open(":memory:", &st, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(store_open("sqlite::memory:", &st, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_null(st);

    /* A missing directory is an I/O error and creates nothing. */
    char path[600];
    snprintf(path, sizeof(path), "%s/missing-dir/x.db", g_dir);
    assert_int_equal(store_open(path, &st, &diag), VTPMCA_ERR_IO);
    assert_null(st);
    snprintf(path, sizeof(path), "%s/missing-dir", g_dir);
    assert_int_equal(access(path, F_OK), -1);

    assert_int_equal(store_schema_version(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    store_close(NULL); /* a no-op */
}

struct open_race {
    const char *path;
    vtpmca_err err;
    int version;
    char diag[256];
};

static void *open_race_thread(void *arg)
{
    struct open_race *race = arg;
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    race->err = store_open(race->path, &st, &diag);
    memcpy(race->diag, diag.msg, sizeof(race->diag));
    if (race->err == VTPMCA_OK) {
        store_schema_version(st, &race->version);
        store_close(st);
    }
    return NULL;
}

/* Several openers of one new database: each migration is applied exactly once. */
static void test_concurrent_open(void **state)
{
    (void)state;
    char path[512];
    new_db_path(path, sizeof(path));
    struct open_race races[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        races[i] = (struct open_race){path, VTPMCA_ERR_INTERNAL, -1, ""};
        assert_int_equal(pthread_create(&threads[i], NULL, open_race_thread, &races[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        if (races[i].err != VTPMCA_OK)
            print_error("opener %d: %s\n", i, races[i].diag);
        assert_int_equal(races[i].err, VTPMCA_OK);
        assert_int_equal(races[i].version, races[0].version);
    }
    assert_true(races[0].version >= 2);
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), races[0].version);
    sqlite3_close(db);
}

/* ---- VCEK / VLEK certificates ---- */

static void load_vcek(const char *name, uint8_t **der, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/testdata/snp/%s", VTPMCA_SHARED_DIR, name);
    assert_int_equal(vt_file_read(path, 1 << 16, der, len, NULL), VTPMCA_OK);
}

static void expect_vcek(store *st, const char *product, const char *signer, const uint8_t chip[64],
                        uint64_t tcb, const uint8_t *want, size_t want_len)
{
    uint8_t *der = NULL;
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_vcek_get(st, product, signer, chip, tcb, &der, &len, &diag);
    if (err != VTPMCA_OK)
        print_error("store_vcek_get: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(der, want, want_len);
    free(der);
}

static void expect_no_vcek(store *st, const char *product, const char *signer,
                           const uint8_t chip[64], uint64_t tcb)
{
    uint8_t *der = (uint8_t *)"sentinel";
    size_t len = 99;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_vcek_get(st, product, signer, chip, tcb, &der, &len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_null(der);
    assert_int_equal(len, 0);
    assert_non_null(strstr(diag.msg, "no "));
}

static void test_vcek_put_get(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    uint8_t *der_a = NULL, *der_b = NULL;
    size_t len_a = 0, len_b = 0;
    load_vcek("milan-v2-vcek.der", &der_a, &len_a);
    load_vcek("milan-v2-vcek-b.der", &der_b, &len_b);

    uint8_t chip1[64], chip2[64], zero[64] = {0};
    fill_chip(chip1, 1);
    fill_chip(chip2, 2);
    const uint64_t tcb_high = 0xdb18000000000004ULL; /* top bit set: >= 2^63 */
    const uint64_t tcb_low = tcb_high & ~(1ULL << 63);
    assert_true(tcb_high >= (1ULL << 63));

    assert_int_equal(count_vceks(st), 0);
    expect_no_vcek(st, "Milan", "vcek", chip1, tcb_high);

    vtpmca_diag diag = {{0}};
    assert_int_equal(
        store_vcek_put(st, "Milan", "vcek", chip1, tcb_high, der_a, len_a, "import", &diag),
        VTPMCA_OK);
    expect_vcek(st, "Milan", "vcek", chip1, tcb_high, der_a, len_a);
    /* The top bit is part of the key: the same value without it is another entry. */
    expect_no_vcek(st, "Milan", "vcek", chip1, tcb_low);
    assert_int_equal(
        store_vcek_put(st, "Milan", "vcek", chip1, tcb_low, der_b, len_b, "kds", &diag), VTPMCA_OK);
    assert_int_equal(
        store_vcek_put(st, "Milan", "vcek", chip1, UINT64_MAX, der_b, len_b, "kds", &diag),
        VTPMCA_OK);
    expect_vcek(st, "Milan", "vcek", chip1, tcb_high, der_a, len_a);
    expect_vcek(st, "Milan", "vcek", chip1, tcb_low, der_b, len_b);
    expect_vcek(st, "Milan", "vcek", chip1, UINT64_MAX, der_b, len_b);
    assert_int_equal(count_vceks(st), 3);

    /* Every key component matters. */
    expect_no_vcek(st, "Milan", "vcek", chip2, tcb_high);
    expect_no_vcek(st, "Genoa", "vcek", chip1, tcb_high);
    expect_no_vcek(st, "Milan", "vlek", zero, tcb_high);

    /* Putting the same key again replaces the certificate. */
    assert_int_equal(
        store_vcek_put(st, "Milan", "vcek", chip1, tcb_high, der_b, len_b, "kds", &diag),
        VTPMCA_OK);
    expect_vcek(st, "Milan", "vcek", chip1, tcb_high, der_b, len_b);
    assert_int_equal(count_vceks(st), 3);

    /* VLEKs use the all-zero chip id. */
    assert_int_equal(
        store_vcek_put(st, "Turin", "vlek", zero, tcb_low, der_a, len_a, "import", &diag),
        VTPMCA_OK);
    expect_vcek(st, "Turin", "vlek", zero, tcb_low, der_a, len_a);
    assert_int_equal(count_vceks(st), 4);
    store_close(st);

    /* Durable across reopen; the raw column holds the bit pattern as a signed integer. */
    assert_int_equal(store_open(path, &st, NULL), VTPMCA_OK);
    expect_vcek(st, "Milan", "vcek", chip1, tcb_high, der_b, len_b);
    assert_int_equal(count_vceks(st), 4);
    store_close(st);
    sqlite3 *db = raw_open(path);
    sqlite3_int64 raw =
        raw_int(db, "SELECT tcb FROM vcek WHERE product = 'Milan' AND tcb < 0 AND tcb <> -1");
    assert_true((uint64_t)raw == tcb_high);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM vcek WHERE tcb = -1"), 1); /* 2^64-1 */
    sqlite3_close(db);
    free(der_a);
    free(der_b);
}

static void test_vcek_rejections(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    uint8_t chip[64], zero[64] = {0};
    fill_chip(chip, 9);
    const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    vtpmca_diag diag = {{0}};

    assert_int_equal(store_vcek_put(NULL, "Milan", "vcek", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, NULL, "vcek", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "milan", "vcek", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "product"));
    assert_int_equal(store_vcek_put(st, "Rome", "vcek", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", NULL, chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", "ask", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "signer"));
    assert_int_equal(store_vcek_put(st, "Milan", "vlek", chip, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "VLEK"));
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", NULL, 1, der, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", chip, 1, NULL, 5, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", chip, 1, der, 0, "kds", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", chip, 1, der, 5, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", chip, 1, der, 5, "web", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "source"));
    uint8_t *big = calloc(1, STORE_VCEK_DER_MAX + 1);
    assert_non_null(big);
    assert_int_equal(
        store_vcek_put(st, "Milan", "vcek", chip, 1, big, STORE_VCEK_DER_MAX + 1, "kds", &diag),
        VTPMCA_ERR_LIMIT);
    free(big);
    /* Nothing was written by any of the above. */
    assert_int_equal(count_vceks(st), 0);

    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(store_vcek_get(st, "Milan", "vcek", chip, 1, NULL, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_get(st, "Milan", "vcek", chip, 1, &out, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_get(NULL, "Milan", "vcek", chip, 1, &out, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_get(st, "Turin", "vcek", NULL, 1, &out, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_get(st, "TURIN", "vcek", chip, 1, &out, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_get(st, "Turin", "VCEK", zero, 1, &out, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(out);
    uint64_t n = 0;
    assert_int_equal(store_vcek_count(st, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_vcek_count(NULL, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    store_close(st);
}

/* ---- fleets ---- */

static void test_fleets(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    store_fleet *list = (store_fleet *)&list;
    size_t n = 99;
    assert_int_equal(store_fleet_list(st, &list, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 0);
    assert_null(list);

    time_t before = time(NULL);
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_fleet_exists(st, "prod", &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "prod"));
    assert_int_equal(store_fleet_create(st, "prod", "Production, Zürich", &diag), VTPMCA_OK);
    assert_int_equal(store_fleet_exists(st, "prod", &diag), VTPMCA_OK);
    vtpmca_diag_clear(&diag);
    assert_int_equal(store_fleet_create(st, "prod", "again", &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "already exists"));
    assert_int_equal(store_fleet_exists(st, "Prod", &diag), VTPMCA_ERR_NOT_FOUND);

    const char *more[] = {"b", "A", "a-1", "Z.z", "_x"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(store_fleet_create(st, more[i], NULL, &diag), VTPMCA_OK);
    uint32_t v = 0;
    assert_int_equal(store_policy_put(st, "b", "{}", "alice", &v, &diag), VTPMCA_OK);
    assert_int_equal(store_policy_put(st, "b", "{}", "alice", &v, &diag), VTPMCA_OK);
    time_t after = time(NULL);

    assert_int_equal(store_fleet_list(st, &list, &n, &diag), VTPMCA_OK);
    const char *order[] = {"A", "Z.z", "_x", "a-1", "b", "prod"}; /* byte order */
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(list[i].name, order[i]);
        assert_true(list[i].created_at >= before && list[i].created_at <= after);
        assert_int_equal(list[i].latest_policy, strcmp(order[i], "b") == 0 ? 2 : 0);
    }
    assert_string_equal(list[5].description, "Production, Zürich");
    assert_string_equal(list[0].description, "");
    free(list);
    store_close(st);
}

static void test_fleet_rejections(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    vtpmca_diag diag = {{0}};
    char name63[64], name64[65], desc255[256], desc256[257];
    memset(name63, 'n', 63);
    name63[63] = '\0';
    memset(name64, 'n', 64);
    name64[64] = '\0';
    memset(desc255, 'd', 255);
    desc255[255] = '\0';
    memset(desc256, 'd', 256);
    desc256[256] = '\0';

    const char *bad_names[] = {"", name64, "a b", "a/b", "fleet\xc3\xa4", "a\n", "a:b", "*"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        vtpmca_diag_clear(&diag);
        assert_int_equal(store_fleet_create(st, bad_names[i], NULL, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_non_null(strstr(diag.msg, "fleet name"));
        assert_int_equal(store_fleet_exists(st, bad_names[i], NULL), VTPMCA_ERR_INVALID_ARG);
    }
    assert_int_equal(store_fleet_create(st, NULL, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_fleet_create(NULL, "ok", NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_fleet_exists(st, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_fleet_exists(NULL, "ok", &diag), VTPMCA_ERR_INVALID_ARG);

    const char *bad_descriptions[] = {desc256,
                                      "line\nbreak",
                                      "bell\a",
                                      "bad \xff utf8",
                                      "overlong \xc0\xaf",
                                      "surrogate \xed\xa0\x80",
                                      "truncated \xe2\x82"};
    for (size_t i = 0; i < sizeof(bad_descriptions) / sizeof(bad_descriptions[0]); i++) {
        vtpmca_diag_clear(&diag);
        assert_int_equal(store_fleet_create(st, "ok", bad_descriptions[i], &diag),
                         VTPMCA_ERR_INVALID_ARG);
        assert_non_null(strstr(diag.msg, "description"));
    }
    size_t n = 99;
    store_fleet *list = NULL;
    assert_int_equal(store_fleet_list(st, &list, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 0); /* nothing was created */
    assert_int_equal(store_fleet_list(st, NULL, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_fleet_list(st, &list, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_fleet_list(NULL, &list, &n, &diag), VTPMCA_ERR_INVALID_ARG);

    /* The limits themselves are accepted. */
    assert_int_equal(store_fleet_create(st, name63, desc255, &diag), VTPMCA_OK);
    assert_int_equal(store_fleet_create(st, "euro", "\xe2\x82\xac \xf0\x9f\x94\x92", &diag),
                     VTPMCA_OK);
    assert_int_equal(store_fleet_list(st, &list, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "euro");
    assert_string_equal(list[1].name, name63);
    assert_string_equal(list[1].description, desc255);
    free(list);
    store_close(st);
}

/* ---- policies ---- */

static void expect_policy(store *st, const char *fleet, uint32_t ask, const char *want_json,
                          uint32_t want_version)
{
    char *json = NULL;
    uint32_t version = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_policy_get(st, fleet, ask, &json, &version, &diag);
    if (err != VTPMCA_OK)
        print_error("store_policy_get: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    assert_string_equal(json, want_json);
    assert_int_equal(version, want_version);
    free(json);
}

static void test_policy_versions(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_fleet_create(st, "prod", "", &diag), VTPMCA_OK);
    assert_int_equal(store_fleet_create(st, "dev", "", &diag), VTPMCA_OK);

    char *json = (char *)"sentinel";
    assert_int_equal(store_policy_get(st, "prod", 0, &json, NULL, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_null(json);
    assert_non_null(strstr(diag.msg, "no policy yet"));
    assert_int_equal(history_len(st, "prod"), 0);

    const char *docs[] = {"{\"debug\":false}", "{\"debug\":false,\"min_tcb\":{\"snp\":22}}",
                          "{\"measurements\":[\"ab\"]}"};
    const char *authors[] = {"alice", "bob", "carol@example.org"};
    time_t before = time(NULL);
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t version = 0;
        assert_int_equal(store_policy_put(st, "prod", docs[i], authors[i], &version, &diag),
                         VTPMCA_OK);
        assert_int_equal(version, i + 1);
    }
    time_t after = time(NULL);
    /* Versions count per fleet; version_out is optional. */
    assert_int_equal(store_policy_put(st, "dev", "{}", "dave", NULL, &diag), VTPMCA_OK);
    expect_policy(st, "dev", 0, "{}", 1);

    expect_policy(st, "prod", 0, docs[2], 3);
    expect_policy(st, "prod", 1, docs[0], 1);
    expect_policy(st, "prod", 2, docs[1], 2);
    expect_policy(st, "prod", 3, docs[2], 3);
    assert_int_equal(store_policy_get(st, "prod", 4, &json, NULL, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "version 4"));

    store_policy_version *hist = NULL;
    size_t n = 0;
    assert_int_equal(store_policy_history(st, "prod", &hist, &n, &diag), VTPMCA_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hist[i].version, i + 1);
        assert_string_equal(hist[i].author, authors[i]);
        assert_true(hist[i].created_at >= before && hist[i].created_at <= after);
    }
    free(hist);

    /* Unknown fleet. */
    uint32_t version = 77;
    vtpmca_diag_clear(&diag);
    assert_int_equal(store_policy_put(st, "nope", "{}", "alice", &version, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(version, 77);
    assert_non_null(strstr(diag.msg, "unknown fleet nope"));
    vtpmca_diag_clear(&diag);
    assert_int_equal(store_policy_get(st, "nope", 0, &json, NULL, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "unknown fleet nope"));
    assert_int_equal(store_policy_get(st, "nope", 1, &json, NULL, &diag), VTPMCA_ERR_NOT_FOUND);
    hist = (store_policy_version *)&hist;
    assert_int_equal(store_policy_history(st, "nope", &hist, &n, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_null(hist);
    assert_int_equal(n, 0);
    store_close(st);

    /* Policies survive a reopen. */
    assert_int_equal(store_open(path, &st, NULL), VTPMCA_OK);
    expect_policy(st, "prod", 0, docs[2], 3);
    store_close(st);
}

static void test_policy_rejections(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_fleet_create(st, "prod", NULL, &diag), VTPMCA_OK);
    uint32_t version = 5;
    char author64[65];
    memset(author64, 'a', 64);
    author64[64] = '\0';

    assert_int_equal(store_policy_put(NULL, "prod", "{}", "a", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, NULL, "{}", "a", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, "bad name", "{}", "a", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, "prod", NULL, "a", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, "prod", "{}", NULL, &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, "prod", "{}", "", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_put(st, "prod", "{}", author64, &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "author"));
    assert_int_equal(store_policy_put(st, "prod", "{}", "ali\tce", &version, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    const char *not_objects[] = {"", "{", "[1]", "\"text\"", "{\"a\":1,\"a\":2}", "{} {}"};
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        vtpmca_diag_clear(&diag);
        assert_int_equal(store_policy_put(st, "prod", not_objects[i], "a", &version, &diag),
                         VTPMCA_ERR_PARSE);
        assert_non_null(strstr(diag.msg, "policy"));
    }
    char *big = malloc(STORE_POLICY_JSON_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', STORE_POLICY_JSON_MAX + 1);
    big[0] = '{';
    big[STORE_POLICY_JSON_MAX] = '}';
    big[STORE_POLICY_JSON_MAX + 1] = '\0';
    assert_int_equal(store_policy_put(st, "prod", big, "a", &version, &diag), VTPMCA_ERR_LIMIT);
    big[STORE_POLICY_JSON_MAX - 1] = '}'; /* exactly the limit is fine */
    big[STORE_POLICY_JSON_MAX] = '\0';
    assert_int_equal(store_policy_put(st, "prod", big, "a", &version, &diag), VTPMCA_OK);
    assert_int_equal(version, 1);
    expect_policy(st, "prod", 1, big, 1);
    free(big);
    assert_int_equal(history_len(st, "prod"), 1); /* only the valid put counted */

    char *json = NULL;
    store_policy_version *hist = NULL;
    size_t n = 0;
    assert_int_equal(store_policy_get(st, "prod", 0, NULL, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_get(NULL, "prod", 0, &json, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_get(st, "", 0, &json, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_history(st, "prod", NULL, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_history(st, "prod", &hist, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_history(st, "a b", &hist, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_policy_history(NULL, "prod", &hist, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    store_close(st);
}

/* ---- concurrency ---- */

enum { PUT_THREADS = 4, PUTS_PER_THREAD = 50 };

struct putter {
    store *st;
    int id;
    uint32_t versions[PUTS_PER_THREAD];
    vtpmca_err err;
    char diag[256];
};

static void *put_thread(void *arg)
{
    struct putter *p = arg;
    for (int i = 0; i < PUTS_PER_THREAD; i++) {
        char json[64], author[32];
        snprintf(json, sizeof(json), "{\"writer\":%d,\"seq\":%d}", p->id, i);
        snprintf(author, sizeof(author), "writer-%d", p->id);
        vtpmca_diag diag = {{0}};
        p->err = store_policy_put(p->st, "shared", json, author, &p->versions[i], &diag);
        if (p->err != VTPMCA_OK) {
            snprintf(p->diag, sizeof(p->diag), "%s", diag.msg);
            break;
        }
    }
    return NULL;
}

static void test_concurrent_policy_puts(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    assert_int_equal(store_fleet_create(st, "shared", NULL, NULL), VTPMCA_OK);
    struct putter putters[PUT_THREADS];
    pthread_t threads[PUT_THREADS];
    for (int t = 0; t < PUT_THREADS; t++) {
        memset(&putters[t], 0, sizeof(putters[t]));
        putters[t].st = st;
        putters[t].id = t;
        assert_int_equal(pthread_create(&threads[t], NULL, put_thread, &putters[t]), 0);
    }
    for (int t = 0; t < PUT_THREADS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);

    const int total = PUT_THREADS * PUTS_PER_THREAD;
    bool seen[PUT_THREADS * PUTS_PER_THREAD + 1] = {false};
    for (int t = 0; t < PUT_THREADS; t++) {
        if (putters[t].err != VTPMCA_OK)
            print_error("writer %d: %s\n", t, putters[t].diag);
        assert_int_equal(putters[t].err, VTPMCA_OK);
        for (int i = 0; i < PUTS_PER_THREAD; i++) {
            uint32_t v = putters[t].versions[i];
            assert_true(v >= 1 && v <= (uint32_t)total);
            assert_false(seen[v]); /* no duplicates */
            seen[v] = true;
            /* A thread's own puts get increasing versions. */
            if (i > 0)
                assert_true(v > putters[t].versions[i - 1]);
        }
    }
    for (int v = 1; v <= total; v++)
        assert_true(seen[v]); /* no gaps */

    store_policy_version *hist = NULL;
    size_t n = 0;
    assert_int_equal(store_policy_history(st, "shared", &hist, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, total);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hist[i].version, i + 1);
    free(hist);
    char *json = NULL;
    uint32_t latest = 0;
    assert_int_equal(store_policy_get(st, "shared", 0, &json, &latest, NULL), VTPMCA_OK);
    assert_int_equal(latest, total);
    free(json);
    store_close(st);
}

enum { READ_THREADS = 3, WRITES = 60 };

struct reader {
    store *st;
    atomic_bool *stop;
    const uint8_t *chip;
    unsigned reads;
    bool ok;
    char diag[320]; /* a prefix plus a full vtpmca_diag */
};

static void *read_thread(void *arg)
{
    struct reader *r = arg;
    uint32_t last_seen = 0;
    r->ok = true;
    while (r->ok && !atomic_load(r->stop)) {
        char *json = NULL;
        uint32_t version = 0;
        vtpmca_diag diag = {{0}};
        vtpmca_err err = store_policy_get(r->st, "live", 0, &json, &version, &diag);
        if (err == VTPMCA_OK) {
            /* The document matches its version, and versions never go backwards. */
            char want[64];
            snprintf(want, sizeof(want), "{\"rev\":%u}", version);
            if (strcmp(json, want) != 0 || version < last_seen) {
                snprintf(r->diag, sizeof(r->diag), "inconsistent read: v%u %s", version, json);
                r->ok = false;
            }
            last_seen = version;
        } else if (!(err == VTPMCA_ERR_NOT_FOUND && last_seen == 0)) {
            snprintf(r->diag, sizeof(r->diag), "policy get: %s", diag.msg);
            r->ok = false;
        }
        free(json);
        uint8_t *der = NULL;
        size_t len = 0;
        err = store_vcek_get(r->st, "Genoa", "vcek", r->chip, 42, &der, &len, &diag);
        if (err != VTPMCA_OK || len != 3) {
            snprintf(r->diag, sizeof(r->diag), "vcek get: %s", diag.msg);
            r->ok = false;
        }
        free(der);
        r->reads++;
    }
    return NULL;
}

static void test_reads_while_writing(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    uint8_t chip[64];
    fill_chip(chip, 5);
    const uint8_t der[] = {1, 2, 3};
    assert_int_equal(store_vcek_put(st, "Genoa", "vcek", chip, 42, der, 3, "kds", NULL), VTPMCA_OK);
    assert_int_equal(store_fleet_create(st, "live", NULL, NULL), VTPMCA_OK);

    atomic_bool stop = false;
    struct reader readers[READ_THREADS];
    pthread_t threads[READ_THREADS];
    for (int t = 0; t < READ_THREADS; t++) {
        readers[t] = (struct reader){st, &stop, chip, 0, false, ""};
        assert_int_equal(pthread_create(&threads[t], NULL, read_thread, &readers[t]), 0);
    }
    for (uint32_t i = 1; i <= WRITES; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"rev\":%u}", i);
        uint32_t version = 0;
        assert_int_equal(store_policy_put(st, "live", json, "writer", &version, NULL), VTPMCA_OK);
        assert_int_equal(version, i);
        uint8_t other[64];
        fill_chip(other, (uint8_t)(100 + i));
        assert_int_equal(store_vcek_put(st, "Milan", "vcek", other, i, der, 3, "kds", NULL),
                         VTPMCA_OK);
    }
    atomic_store(&stop, true);
    for (int t = 0; t < READ_THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        if (!readers[t].ok)
            print_error("reader %d: %s\n", t, readers[t].diag);
        assert_true(readers[t].ok);
        assert_true(readers[t].reads > 0);
    }
    assert_int_equal(count_vceks(st), WRITES + 1);
    store_close(st);
}

/* Another process holding the write lock does not stall readers (WAL), and a write waits
 * for it instead of failing. */
struct lock_holder {
    const char *path;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool locked;
    int rc;
};

/* Runs in its own thread, so it reports through h->rc instead of cmocka asserts. */
static void *hold_write_lock(void *arg)
{
    struct lock_holder *h = arg;
    sqlite3 *db = NULL;
    h->rc = sqlite3_open_v2(h->path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (h->rc == SQLITE_OK)
        h->rc = sqlite3_exec(db,
                             "BEGIN IMMEDIATE;"
                             "INSERT INTO fleet VALUES ('uncommitted', '', 0);",
                             NULL, NULL, NULL);
    pthread_mutex_lock(&h->lock);
    h->locked = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    struct timespec hold = {0, 400L * 1000 * 1000};
    nanosleep(&hold, NULL);
    if (h->rc == SQLITE_OK)
        h->rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void test_foreign_writer_lock(void **state)
{
    (void)state;
    char path[512];
    store *st = open_fresh(path, sizeof(path));
    assert_int_equal(store_fleet_create(st, "prod", NULL, NULL), VTPMCA_OK);

    struct lock_holder holder = {path, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false,
                                 SQLITE_OK};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, hold_write_lock, &holder), 0);
    pthread_mutex_lock(&holder.lock);
    while (!holder.locked)
        pthread_cond_wait(&holder.cond, &holder.lock);
    pthread_mutex_unlock(&holder.lock);
    assert_int_equal(holder.rc, SQLITE_OK);

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Reads answer at once and do not see the uncommitted row. */
    assert_int_equal(store_fleet_exists(st, "prod", NULL), VTPMCA_OK);
    assert_int_equal(store_fleet_exists(st, "uncommitted", NULL), VTPMCA_ERR_NOT_FOUND);
    assert_true(seconds_since(&start) < 0.3);
    /* A write waits until the other writer commits, then succeeds. */
    uint32_t version = 0;
    assert_int_equal(store_policy_put(st, "uncommitted", "{}", "alice", &version, NULL), VTPMCA_OK);
    assert_true(seconds_since(&start) >= 0.3);
    assert_int_equal(version, 1);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(holder.rc, SQLITE_OK);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_applies_migrations_once),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_inconsistent_schema_refused),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_open_rejections),
        cmocka_unit_test(test_concurrent_open),
        cmocka_unit_test(test_vcek_put_get),
        cmocka_unit_test(test_vcek_rejections),
        cmocka_unit_test(test_fleets),
        cmocka_unit_test(test_fleet_rejections),
        cmocka_unit_test(test_policy_versions),
        cmocka_unit_test(test_policy_rejections),
        cmocka_unit_test(test_concurrent_policy_puts),
        cmocka_unit_test(test_reads_while_writing),
        cmocka_unit_test(test_foreign_writer_lock),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
