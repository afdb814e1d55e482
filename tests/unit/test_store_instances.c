/* Unit tests for the store's instance and audit tables (migration 3): enrollment records,
 * lookups, paging, disabling, all-or-nothing batches, the append-only audit log and its
 * filters, and the migration of an existing database. Real sqlite files in a temp dir,
 * checked through the store API and through an independent sqlite connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/store.h"

static char g_dir[64];
static int g_db_counter;

static int group_setup(void **state)
{
    (void)state;
    return ca_fixture_tmpdir(g_dir, sizeof(g_dir), "test-instances");
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g_dir);
}

/* A fresh store with fleets "prod" and "test"; `path` receives the database file name. */
static store *open_fresh(char *path, size_t size)
{
    snprintf(path, size, "%s/db-%d.sqlite", g_dir, ++g_db_counter);
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_open(path, &st, &diag);
    if (err != VTPMCA_OK)
        fail_msg("store_open: %s", diag.msg);
    assert_int_equal(store_fleet_create(st, "prod", NULL, NULL), VTPMCA_OK);
    assert_int_equal(store_fleet_create(st, "test", NULL, NULL), VTPMCA_OK);
    return st;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    return db;
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

/* Runs SQL that must fail; returns sqlite's message (static buffer). */
static const char *raw_exec_fails(sqlite3 *db, const char *sql)
{
    static char message[256];
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    snprintf(message, sizeof(message), "%s", msg != NULL ? msg : "");
    sqlite3_free(msg);
    assert_int_not_equal(rc, SQLITE_OK);
    return message;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("sqlite: %s: %s", sql, msg != NULL ? msg : "?");
    sqlite3_free(msg);
}

static const uint8_t WRAPPED[45] = {0x01, 0xaa, 0xbb, 0xcc}; /* an opaque stored blob */

/* A generated-mode instance named id-<n> at repo/type/tag-<n>. */
static store_instance make_instance(const char *fleet, int n)
{
    store_instance inst;
    memset(&inst, 0, sizeof(inst));
    snprintf(inst.id, sizeof(inst.id), "id-%05d", n);
    snprintf(inst.fleet, sizeof(inst.fleet), "%s", fleet);
    snprintf(inst.resource_path, sizeof(inst.resource_path), "repo/type/tag-%05d", n);
    inst.key_mode = STORE_KEY_GENERATED;
    inst.wrapped_key = (uint8_t *)WRAPPED;
    inst.wrapped_key_len = sizeof(WRAPPED);
    return inst;
}

static size_t count_instances(store *st)
{
    store_instance *items = NULL;
    size_t n = 0;
    assert_int_equal(store_instance_list(st, NULL, NULL, STORE_LIST_MAX, &items, &n, NULL),
                     VTPMCA_OK);
    store_instance_list_free(items, n);
    return n;
}

static void test_put_get(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    time_t before = time(NULL);

    store_instance gen = make_instance("prod", 1);
    gen.has_host_data = true;
    memset(gen.host_data, 0x5a, 32);
    gen.disabled = true;    /* ignored by put */
    gen.created_at = 12345; /* ignored by put */
    assert_int_equal(store_instance_put(st, &gen, NULL), VTPMCA_OK);

    store_instance wrapped;
    memset(&wrapped, 0, sizeof(wrapped));
    snprintf(wrapped.id, sizeof(wrapped.id), "vm:eu-west.17_a");
    snprintf(wrapped.fleet, sizeof(wrapped.fleet), "test");
    snprintf(wrapped.resource_path, sizeof(wrapped.resource_path), "default/sample/test");
    wrapped.key_mode = STORE_KEY_WRAPPED;
    assert_int_equal(store_instance_put(st, &wrapped, NULL), VTPMCA_OK);

    store_instance got;
    assert_int_equal(store_instance_get(st, "id-00001", &got, NULL), VTPMCA_OK);
    assert_string_equal(got.id, "id-00001");
    assert_string_equal(got.fleet, "prod");
    assert_string_equal(got.resource_path, "repo/type/tag-00001");
    assert_true(got.has_host_data);
    assert_memory_equal(got.host_data, gen.host_data, 32);
    assert_int_equal(got.key_mode, STORE_KEY_GENERATED);
    assert_int_equal(got.wrapped_key_len, sizeof(WRAPPED));
    assert_memory_equal(got.wrapped_key, WRAPPED, sizeof(WRAPPED));
    assert_false(got.disabled);
    assert_true(got.created_at >= before && got.created_at <= time(NULL));
    store_instance_free_fields(&got);
    assert_null(got.wrapped_key);
    assert_int_equal(got.wrapped_key_len, 0);

    assert_int_equal(store_instance_get_by_path(st, "default/sample/test", &got, NULL), VTPMCA_OK);
    assert_string_equal(got.id, "vm:eu-west.17_a");
    assert_string_equal(got.fleet, "test");
    assert_false(got.has_host_data);
    assert_int_equal(got.key_mode, STORE_KEY_WRAPPED);
    assert_null(got.wrapped_key);
    store_instance_free_fields(&got);

    vtpmca_diag diag = {{0}};
    assert_int_equal(store_instance_get(st, "nobody", &got, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "unknown instance nobody"));
    assert_int_equal(store_instance_get_by_path(st, "repo/type/tag-00002", &got, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    /* Paths are exact: no prefix or case folding. */
    assert_int_equal(store_instance_get_by_path(st, "Default/sample/test", &got, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    store_close(st);

    /* The database holds exactly what was put (independent connection). */
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM instance"), 2);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM instance WHERE host_data IS NULL"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM instance WHERE key_mode = 'wrapped' AND "
                                 "wrapped_key IS NULL"),
                     1);
    sqlite3_close(db);
}

static void test_duplicates_conflict(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    store_instance a = make_instance("prod", 1);
    assert_int_equal(store_instance_put(st, &a, NULL), VTPMCA_OK);

    vtpmca_diag diag = {{0}};
    store_instance same_id = make_instance("test", 2);
    snprintf(same_id.id, sizeof(same_id.id), "%s", a.id);
    assert_int_equal(store_instance_put(st, &same_id, &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "id-00001 is already enrolled"));

    store_instance same_path = make_instance("prod", 3);
    snprintf(same_path.resource_path, sizeof(same_path.resource_path), "%s", a.resource_path);
    assert_int_equal(store_instance_put(st, &same_path, &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "resource path"));
    /* The diag does not echo the path (its tag is meant to stay unguessable). */
    assert_null(strstr(diag.msg, "tag-00001"));

    store_instance unknown_fleet = make_instance("staging", 4);
    assert_int_equal(store_instance_put(st, &unknown_fleet, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "unknown fleet staging"));

    assert_int_equal(count_instances(st), 1);
    store_close(st);
}

static void test_put_rejections(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    vtpmca_diag diag = {{0}};

    const char *bad_ids[] = {
        "",  "a b",  "a/b",
        "ü", "id\n", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        store_instance inst = make_instance("prod", 1);
        snprintf(inst.id, sizeof(inst.id), "%s", bad_ids[i]);
        if (strlen(bad_ids[i]) >= sizeof(inst.id)) /* 64 chars: fill the whole array */
            memcpy(inst.id, bad_ids[i], sizeof(inst.id));
        assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
    }
    assert_int_equal(store_check_instance_id("a-63-char-id-....................................."
                                             "............",
                                             NULL),
                     VTPMCA_OK);
    assert_int_equal(store_check_instance_id(NULL, NULL), VTPMCA_ERR_INVALID_ARG);

    const char *bad_paths[] = {
        "",
        "a/b",
        "a/b/c/d",
        "a//c",
        "/b/c",
        "a/b/",
        "a/b/c/",
        "a/b/c d",
        "a/b/c:d",
        "a/../c",
        "./b/c",
        "a/b/"
        "0123456789012345678901234567890123456789012345678901234567890123X",
    };
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        store_instance inst = make_instance("prod", 1);
        snprintf(inst.resource_path, sizeof(inst.resource_path), "%s", bad_paths[i]);
        assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_int_equal(store_check_resource_path(bad_paths[i], NULL), VTPMCA_ERR_INVALID_ARG);
    }
    /* The diag names the segment and the rule. */
    assert_int_equal(store_check_resource_path(bad_paths[11], &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "tag must be 1 to 64 characters, got 65"));
    assert_int_equal(store_check_resource_path("a/../c", &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "type may not be . or .."));
    assert_int_equal(store_check_resource_path("a/b/...", NULL), VTPMCA_OK);
    assert_int_equal(store_check_resource_path(
                         "0123456789012345678901234567890123456789012345678901234567890123/"
                         "b/0123456789012345678901234567890123456789012345678901234567890123",
                         NULL),
                     VTPMCA_OK);

    /* Key mode and stored key must agree. */
    store_instance inst = make_instance("prod", 1);
    inst.wrapped_key = NULL;
    inst.wrapped_key_len = 0;
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "needs its wrapped key"));
    inst = make_instance("prod", 1);
    inst.key_mode = STORE_KEY_WRAPPED;
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "stores no key"));
    inst = make_instance("prod", 1);
    inst.key_mode = (store_key_mode)7;
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
    static uint8_t big[STORE_WRAPPED_KEY_MAX + 1];
    inst = make_instance("prod", 1);
    inst.wrapped_key = big;
    inst.wrapped_key_len = sizeof(big);
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_LIMIT);
    /* Text fields that run off the end of their arrays. */
    inst = make_instance("prod", 1);
    memset(inst.resource_path, 'a', sizeof(inst.resource_path));
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);
    inst = make_instance("prod", 1);
    snprintf(inst.fleet, sizeof(inst.fleet), "bad fleet");
    assert_int_equal(store_instance_put(st, &inst, &diag), VTPMCA_ERR_INVALID_ARG);

    inst = make_instance("prod", 1);
    assert_int_equal(store_instance_put(NULL, &inst, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_put(st, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    store_instance got;
    assert_int_equal(store_instance_get(st, NULL, &got, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_get(st, "x", NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_get_by_path(st, "a/b", &got, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_set_disabled(st, "a b", true, NULL), VTPMCA_ERR_INVALID_ARG);

    /* Nothing was stored by any of these. */
    assert_int_equal(count_instances(st), 0);

    store_key_mode mode;
    assert_int_equal(store_key_mode_parse("wrapped", &mode), VTPMCA_OK);
    assert_int_equal(mode, STORE_KEY_WRAPPED);
    assert_int_equal(store_key_mode_parse("generated", &mode), VTPMCA_OK);
    assert_int_equal(mode, STORE_KEY_GENERATED);
    assert_int_equal(store_key_mode_parse("Wrapped", &mode), VTPMCA_ERR_INVALID_ARG);
    assert_string_equal(store_key_mode_name(STORE_KEY_WRAPPED), "wrapped");
    store_close(st);
}

static void test_list_paging(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    /* 25 instances, put in a scrambled order; odd numbers in "test". */
    for (int i = 0; i < 25; i++) {
        int n = (i * 7) % 25;
        store_instance inst = make_instance(n % 2 ? "test" : "prod", n);
        assert_int_equal(store_instance_put(st, &inst, NULL), VTPMCA_OK);
    }
    /* All, 10 per page, in id order. */
    char after[64] = "";
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        store_instance *items = NULL;
        size_t n = 99;
        assert_int_equal(
            store_instance_list(st, NULL, after[0] ? after : NULL, 10, &items, &n, NULL),
            VTPMCA_OK);
        assert_int_equal(n, page < 2 ? 10 : page == 2 ? 5 : 0);
        for (size_t i = 0; i < n; i++) {
            char expect[16];
            snprintf(expect, sizeof(expect), "id-%05d", seen++);
            assert_string_equal(items[i].id, expect);
            assert_int_equal(items[i].wrapped_key_len, sizeof(WRAPPED));
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", items[n - 1].id);
        else
            assert_null(items);
        store_instance_list_free(items, n);
    }
    assert_int_equal(seen, 25);

    /* One fleet. */
    store_instance *items = NULL;
    size_t n = 0;
    assert_int_equal(store_instance_list(st, "test", NULL, 100, &items, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(items[i].fleet, "test");
    store_instance_list_free(items, n);
    assert_int_equal(store_instance_list(st, "test", "id-00020", 100, &items, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 2); /* 21 and 23 */
    assert_string_equal(items[0].id, "id-00021");
    store_instance_list_free(items, n);
    /* A fleet without instances, and one that does not exist, list nothing. */
    assert_int_equal(store_fleet_create(st, "empty", NULL, NULL), VTPMCA_OK);
    assert_int_equal(store_instance_list(st, "empty", NULL, 100, &items, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 0);

    assert_int_equal(store_instance_list(st, NULL, NULL, 0, &items, &n, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_list(st, NULL, NULL, STORE_LIST_MAX + 1, &items, &n, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_list(st, "bad fleet", NULL, 10, &items, &n, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_list(st, NULL, "bad id", 10, &items, &n, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_list(st, NULL, NULL, 10, NULL, &n, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    store_close(st);
}

static void test_disable(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    store_instance inst = make_instance("prod", 1);
    assert_int_equal(store_instance_put(st, &inst, NULL), VTPMCA_OK);
    store_instance got;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(store_instance_set_disabled(st, inst.id, true, NULL), VTPMCA_OK);
        assert_int_equal(store_instance_get(st, inst.id, &got, NULL), VTPMCA_OK);
        assert_true(got.disabled);
        store_instance_free_fields(&got);
        assert_int_equal(store_instance_set_disabled(st, inst.id, false, NULL), VTPMCA_OK);
        assert_int_equal(store_instance_get_by_path(st, inst.resource_path, &got, NULL), VTPMCA_OK);
        assert_false(got.disabled);
        store_instance_free_fields(&got);
    }
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_instance_set_disabled(st, "ghost", true, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "unknown instance ghost"));
    store_close(st);
}

static void test_batch_all_or_nothing(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    store_instance existing = make_instance("prod", 1000);
    assert_int_equal(store_instance_put(st, &existing, NULL), VTPMCA_OK);

    enum { N = 8 };
    store_instance items[N];
    for (int i = 0; i < N; i++)
        items[i] = make_instance(i % 2 ? "test" : "prod", i);
    size_t failed = 0;
    vtpmca_diag diag = {{0}};

    /* Item 3 takes an id that exists already. */
    snprintf(items[3].id, sizeof(items[3].id), "%s", existing.id);
    assert_int_equal(store_instance_put_batch(st, items, N, &failed, &diag), VTPMCA_ERR_CONFLICT);
    assert_int_equal(failed, 3);
    assert_non_null(strstr(diag.msg, "(item 3)"));
    assert_int_equal(count_instances(st), 1);
    items[3] = make_instance("test", 3);

    /* Items 2 and 6 share a resource path: the second one fails. */
    snprintf(items[6].resource_path, sizeof(items[6].resource_path), "%s", items[2].resource_path);
    assert_int_equal(store_instance_put_batch(st, items, N, &failed, &diag), VTPMCA_ERR_CONFLICT);
    assert_int_equal(failed, 6);
    assert_int_equal(count_instances(st), 1);
    items[6] = make_instance("prod", 6);

    /* Item 5 names an unknown fleet. */
    snprintf(items[5].fleet, sizeof(items[5].fleet), "nowhere");
    assert_int_equal(store_instance_put_batch(st, items, N, &failed, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(failed, 5);
    assert_non_null(strstr(diag.msg, "nowhere"));
    assert_int_equal(count_instances(st), 1);
    items[5] = make_instance("test", 5);

    /* Item 7 is malformed: refused before the database is touched. */
    snprintf(items[7].id, sizeof(items[7].id), "bad id");
    assert_int_equal(store_instance_put_batch(st, items, N, &failed, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(failed, 7);
    assert_non_null(strstr(diag.msg, "(item 7)"));
    items[7] = make_instance("test", 7);

    assert_int_equal(store_instance_put_batch(st, items, N, &failed, &diag), VTPMCA_OK);
    assert_int_equal(failed, N);
    assert_int_equal(count_instances(st), N + 1);
    assert_int_equal(store_instance_put_batch(st, items, 0, &failed, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_put_batch(st, NULL, 1, &failed, NULL), VTPMCA_ERR_INVALID_ARG);

    /* A large batch goes in as one transaction. */
    enum { BIG = 5000 };
    store_instance *many = calloc(BIG, sizeof(*many));
    assert_non_null(many);
    for (int i = 0; i < BIG; i++)
        many[i] = make_instance("prod", 10000 + i);
    assert_int_equal(store_instance_put_batch(st, many, BIG, &failed, NULL), VTPMCA_OK);
    assert_int_equal(count_instances(st), N + 1 + BIG);
    free(many);
    store_close(st);
}

struct describe_ctx {
    int fail_at;      /* index whose describe fails, or -1 */
    int bad_event_at; /* index whose event is malformed, or -1 */
};

static vtpmca_err describe(const store_instance *item, size_t index, store_audit_event *event,
                           void *ctx)
{
    const struct describe_ctx *c = ctx;
    if ((int)index == c->fail_at)
        return VTPMCA_ERR_INTERNAL;
    snprintf(event->actor, sizeof(event->actor), "admin");
    snprintf(event->action, sizeof(event->action),
             (int)index == c->bad_event_at ? "Enroll" : "enroll");
    snprintf(event->instance_id, sizeof(event->instance_id), "%s", item->id);
    snprintf(event->outcome, sizeof(event->outcome), "enrolled");
    snprintf(event->detail, sizeof(event->detail), "item %zu", index);
    return VTPMCA_OK;
}

static void test_batch_audited(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    store_instance items[4];
    for (int i = 0; i < 4; i++)
        items[i] = make_instance("prod", i);
    size_t failed = 0;
    vtpmca_diag diag = {{0}};

    struct describe_ctx ctx = {2, -1};
    assert_int_equal(store_instance_put_batch_audited(st, items, 4, describe, &ctx, &failed, &diag),
                     VTPMCA_ERR_INTERNAL);
    assert_int_equal(failed, 2);
    ctx = (struct describe_ctx){-1, 1};
    assert_int_equal(store_instance_put_batch_audited(st, items, 4, describe, &ctx, &failed, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(failed, 1);
    assert_non_null(strstr(diag.msg, "action"));
    assert_int_equal(count_instances(st), 0);

    ctx = (struct describe_ctx){-1, -1};
    assert_int_equal(store_instance_put_batch_audited(st, items, 4, describe, &ctx, &failed, &diag),
                     VTPMCA_OK);
    store_audit_filter filter = {.action = "enroll", .limit = 100};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(events[i].instance_id, items[i].id);
        assert_string_equal(events[i].actor, "admin");
        char detail[32];
        snprintf(detail, sizeof(detail), "item %zu", i);
        assert_string_equal(events[i].detail, detail);
        assert_true(events[i].at_ms > 0);
    }
    free(events);
    store_close(st);
}

static store_audit_event make_event(const char *action, const char *instance, const char *outcome,
                                    int64_t at_ms)
{
    store_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.action, sizeof(ev.action), "%s", action);
    snprintf(ev.instance_id, sizeof(ev.instance_id), "%s", instance);
    snprintf(ev.outcome, sizeof(ev.outcome), "%s", outcome);
    ev.at_ms = at_ms;
    return ev;
}

static size_t query_count(store *st, const store_audit_filter *filter)
{
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, filter, &events, &n, NULL), VTPMCA_OK);
    for (size_t i = 1; i < n; i++)
        assert_true(events[i].seq > events[i - 1].seq);
    free(events);
    return n;
}

static void test_audit_append_query(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    store_audit_event full = make_event("key_release", "vm-1", "granted", 0);
    snprintf(full.actor, sizeof(full.actor), "session-0123");
    memset(full.measurement, 'a', 96);
    memset(full.chip_id, '0', 128);
    snprintf(full.detail, sizeof(full.detail), "granted under fleet prod policy v1 — ok");
    assert_int_equal(store_audit_append(st, &full, NULL), VTPMCA_OK);
    /* 20 more with explicit times 1000..1019 ms. */
    for (int i = 0; i < 20; i++) {
        store_audit_event ev =
            make_event(i % 2 ? "key_release" : "enroll", i % 4 == 0 ? "vm-1" : "vm-2",
                       i % 3 == 0 ? "policy_rejected" : "granted", 1000 + i);
        assert_int_equal(store_audit_append(st, &ev, NULL), VTPMCA_OK);
    }

    store_audit_event *events = NULL;
    size_t n = 0;
    store_audit_filter all = {.limit = 1000};
    assert_int_equal(store_audit_query(st, &all, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 21);
    assert_string_equal(events[0].actor, "session-0123");
    assert_string_equal(events[0].action, "key_release");
    assert_string_equal(events[0].instance_id, "vm-1");
    assert_string_equal(events[0].outcome, "granted");
    assert_string_equal(events[0].measurement, full.measurement);
    assert_string_equal(events[0].chip_id, full.chip_id);
    assert_string_equal(events[0].detail, full.detail);
    assert_true(events[0].at_ms >= before_ms && events[0].at_ms < before_ms + 60000);
    assert_int_equal(events[1].at_ms, 1000);
    assert_string_equal(events[1].actor, ""); /* NULL columns come back empty */
    assert_string_equal(events[1].measurement, "");
    int64_t first_seq = events[0].seq;
    free(events);

    store_audit_filter f = {.instance_id = "vm-1", .limit = 1000};
    assert_int_equal(query_count(st, &f), 1 + 5);
    f = (store_audit_filter){.action = "enroll", .limit = 1000};
    assert_int_equal(query_count(st, &f), 10);
    f = (store_audit_filter){.outcome = "policy_rejected", .limit = 1000};
    assert_int_equal(query_count(st, &f), 7); /* i = 0, 3, ..., 18 */
    f = (store_audit_filter){.action = "key_release", .outcome = "policy_rejected", .limit = 1000};
    assert_int_equal(query_count(st, &f), 3); /* i = 3, 9, 15 */
    f = (store_audit_filter){.instance_id = "vm-2", .action = "enroll", .limit = 1000};
    assert_int_equal(query_count(st, &f), 5); /* i = 2, 6, 10, 14, 18 */
    f = (store_audit_filter){.since_ms = 1005, .until_ms = 1010, .limit = 1000};
    assert_int_equal(query_count(st, &f), 5);
    f = (store_audit_filter){.since_ms = before_ms, .limit = 1000};
    assert_int_equal(query_count(st, &f), 1);
    f = (store_audit_filter){.instance_id = "nobody", .limit = 1000};
    assert_int_equal(query_count(st, &f), 0);

    /* Paging by seq. */
    int64_t after = 0;
    size_t total = 0;
    for (;;) {
        f = (store_audit_filter){.after_seq = after, .limit = 6};
        assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_OK);
        if (n == 0) {
            assert_null(events);
            break;
        }
        if (total == 0)
            assert_int_equal(events[0].seq, first_seq);
        assert_true(n <= 6);
        total += n;
        after = events[n - 1].seq;
        free(events);
    }
    assert_int_equal(total, 21);
    store_close(st);

    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM audit WHERE actor IS NULL"), 20);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM audit WHERE measurement IS NULL"), 20);
    sqlite3_close(db);
}

static void test_audit_rejections(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    vtpmca_diag diag = {{0}};
    store_audit_event ev = make_event("", "vm", "granted", 0);
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("Key_Release", "vm", "granted", 0);
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("key release", "vm", "granted", 0);
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("key_release", "vm", "granted", -1);
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("key_release", "vm", "granted", 0);
    snprintf(ev.measurement, sizeof(ev.measurement), "ABCD");
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "hex"));
    ev = make_event("key_release", "vm", "granted", 0);
    snprintf(ev.chip_id, sizeof(ev.chip_id), "zz");
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("key_release", "vm", "granted", 0);
    snprintf(ev.detail, sizeof(ev.detail), "line\nbreak");
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "detail"));
    ev = make_event("key_release", "vm", "granted", 0);
    ev.detail[0] = (char)0xff; /* not UTF-8 */
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    ev = make_event("key_release", "vm", "granted", 0);
    memset(ev.outcome, 'x', sizeof(ev.outcome));
    assert_int_equal(store_audit_append(st, &ev, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "NUL-terminated"));
    assert_int_equal(store_audit_append(st, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_audit_append(NULL, &ev, &diag), VTPMCA_ERR_INVALID_ARG);

    store_audit_event *events = NULL;
    size_t n = 0;
    store_audit_filter f = {.limit = 0};
    assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_ERR_INVALID_ARG);
    f = (store_audit_filter){.limit = STORE_LIST_MAX + 1};
    assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_ERR_INVALID_ARG);
    f = (store_audit_filter){.since_ms = -5, .limit = 10};
    assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_ERR_INVALID_ARG);
    f = (store_audit_filter){.action = "", .limit = 10};
    assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_ERR_INVALID_ARG);
    f = (store_audit_filter){.limit = 10};
    assert_int_equal(store_audit_query(st, NULL, &events, &n, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_audit_query(st, &f, NULL, &n, NULL), VTPMCA_ERR_INVALID_ARG);

    /* None of the refused events reached the log. */
    assert_int_equal(query_count(st, &f), 0);
    store_close(st);
}

/* ---- asynchronous appends ---- */

/* What the reports of asynchronous appends said, counted under a lock. */
typedef struct {
    pthread_mutex_t lock;
    unsigned ok, failed;
    char last_detail[256];
    char failure[256]; /* the detail of the last failure */
} async_reports;

static void count_report(void *arg, vtpmca_err err, const char *detail)
{
    async_reports *r = arg;
    pthread_mutex_lock(&r->lock);
    if (err == VTPMCA_OK) {
        r->ok++;
    } else {
        r->failed++;
        snprintf(r->failure, sizeof(r->failure), "%s", detail != NULL ? detail : "(null)");
    }
    snprintf(r->last_detail, sizeof(r->last_detail), "%s", detail != NULL ? detail : "(null)");
    pthread_mutex_unlock(&r->lock);
}

static unsigned reports_seen(async_reports *r)
{
    pthread_mutex_lock(&r->lock);
    unsigned n = r->ok + r->failed;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void wait_reports(async_reports *r, unsigned want)
{
    for (int i = 0; i < 10000 && reports_seen(r) < want; i++)
        usleep(1000);
    assert_int_equal(reports_seen(r), want);
}

static void test_audit_append_async(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    async_reports r = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_audit_event ev = make_event("key_release", "vm-async", "granted", 0);
    assert_int_equal(store_audit_append_async(st, &ev, count_report, &r, NULL), VTPMCA_OK);
    wait_reports(&r, 1);
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.last_detail, "");
    /* Reported means written: the row is there, with a time stamped at append. */
    store_audit_filter f = {.instance_id = "vm-async", .limit = 10};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, &f, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 1);
    assert_string_equal(events[0].outcome, "granted");
    assert_true(events[0].at_ms > 0);
    free(events);

    /* Refused events and missing arguments: an error, no report, no row. */
    vtpmca_diag diag = {{0}};
    store_audit_event bad = make_event("Bad Action", "vm-async", "granted", 0);
    assert_int_equal(store_audit_append_async(st, &bad, count_report, &r, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_true(strlen(diag.msg) > 0);
    assert_int_equal(store_audit_append_async(st, &ev, NULL, &r, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_audit_append_async(NULL, &ev, count_report, &r, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_audit_append_async(st, NULL, count_report, &r, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    usleep(20000);
    assert_int_equal(reports_seen(&r), 1);
    assert_int_equal(query_count(st, &f), 1);
    store_close(st);
}

typedef struct {
    store *st;
    async_reports *reports;
    int thread;
} mixed_writer;

enum { MIXED_THREADS = 6, MIXED_EACH = 40 };

/* Half the appends wait (store_audit_append), half do not: they share the same groups. */
static void *mixed_writer_main(void *arg)
{
    mixed_writer *w = arg;
    for (int i = 0; i < MIXED_EACH; i++) {
        char instance[32];
        snprintf(instance, sizeof(instance), "vm-%d-%d", w->thread, i);
        store_audit_event ev = make_event("key_release", instance, "granted", 0);
        vtpmca_err err = i % 2 == 0
                             ? store_audit_append_async(w->st, &ev, count_report, w->reports, NULL)
                             : store_audit_append(w->st, &ev, NULL);
        if (err != VTPMCA_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_audit_append_async_mixed(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    async_reports r = {.lock = PTHREAD_MUTEX_INITIALIZER};
    pthread_t threads[MIXED_THREADS];
    mixed_writer writers[MIXED_THREADS];
    for (int t = 0; t < MIXED_THREADS; t++) {
        writers[t] = (mixed_writer){st, &r, t};
        assert_int_equal(pthread_create(&threads[t], NULL, mixed_writer_main, &writers[t]), 0);
    }
    for (int t = 0; t < MIXED_THREADS; t++) {
        void *result = NULL;
        assert_int_equal(pthread_join(threads[t], &result), 0);
        assert_null(result);
    }
    wait_reports(&r, MIXED_THREADS * MIXED_EACH / 2);
    assert_int_equal(r.failed, 0);
    store_audit_filter all = {.action = "key_release", .limit = 1000};
    assert_int_equal(query_count(st, &all), MIXED_THREADS * MIXED_EACH);
    store_close(st);
}

/* Closing the store commits and reports what is still queued; the rows are on disk. */
static void test_audit_append_async_close(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    async_reports r = {.lock = PTHREAD_MUTEX_INITIALIZER};
    enum { QUEUED = 200 };
    for (int i = 0; i < QUEUED; i++) {
        store_audit_event ev = make_event("key_release", "vm-close", "granted", 0);
        assert_int_equal(store_audit_append_async(st, &ev, count_report, &r, NULL), VTPMCA_OK);
    }
    store_close(st);
    assert_int_equal(reports_seen(&r), QUEUED);
    assert_int_equal(r.ok, QUEUED);
    sqlite3 *db = raw_open(path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM audit WHERE instance_id = 'vm-close'"),
                     QUEUED);
    sqlite3_close(db);
}

/* A write the database refuses is reported as a failure with the reason, and does not take
 * down the writes it was grouped with. */
static void test_audit_append_async_failure(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    sqlite3 *db = raw_open(path);
    raw_exec(db, "CREATE TRIGGER test_refuse BEFORE INSERT ON audit WHEN NEW.instance_id = "
                 "'vm-refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    sqlite3_close(db);
    async_reports r = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_audit_event refused = make_event("key_release", "vm-refused", "granted", 0);
    store_audit_event fine = make_event("key_release", "vm-fine", "granted", 0);
    assert_int_equal(store_audit_append_async(st, &refused, count_report, &r, NULL), VTPMCA_OK);
    assert_int_equal(store_audit_append_async(st, &fine, count_report, &r, NULL), VTPMCA_OK);
    wait_reports(&r, 2);
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.ok, 1);
    assert_non_null(strstr(r.failure, "refused by the test"));
    store_audit_filter f = {.instance_id = "vm-refused", .limit = 10};
    assert_int_equal(query_count(st, &f), 0);
    f.instance_id = "vm-fine";
    assert_int_equal(query_count(st, &f), 1);
    store_close(st);
}

static void test_audit_append_only(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    store_audit_event ev = make_event("key_release", "vm-1", "granted", 0);
    assert_int_equal(store_audit_append(st, &ev, NULL), VTPMCA_OK);
    assert_int_equal(store_audit_append(st, &ev, NULL), VTPMCA_OK);

    sqlite3 *db = raw_open(path);
    const char *msg = raw_exec_fails(db, "UPDATE audit SET outcome = 'refused'");
    assert_non_null(strstr(msg, "append-only"));
    msg = raw_exec_fails(db, "UPDATE audit SET detail = 'x' WHERE seq = 1");
    assert_non_null(strstr(msg, "append-only"));
    msg = raw_exec_fails(db, "DELETE FROM audit WHERE seq = 1");
    assert_non_null(strstr(msg, "append-only"));
    msg = raw_exec_fails(db, "DELETE FROM audit");
    assert_non_null(strstr(msg, "append-only"));
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM audit WHERE outcome = 'granted'"), 2);
    /* Appending through another connection still works. */
    raw_exec(db, "INSERT INTO audit (at, action) VALUES (1, 'manual')");
    sqlite3_close(db);

    store_audit_filter f = {.limit = 10};
    assert_int_equal(query_count(st, &f), 3);
    store_close(st);
}

/* A database made before migration 3 (simulated: the tables of later migrations dropped and
 * their schema_migrations rows removed) is brought up to date on open, keeping its data, and
 * ends with the same schema as a fresh one. */
static void test_migration_of_existing_database(void **state)
{
    (void)state;
    char fresh_path[256], old_path[256];
    store *fresh = open_fresh(fresh_path, sizeof(fresh_path));
    int latest = -1;
    assert_int_equal(store_schema_version(fresh, &latest), VTPMCA_OK);
    assert_true(latest >= 3);
    store_close(fresh);

    store *st = open_fresh(old_path, sizeof(old_path));
    assert_int_equal(
        store_policy_put(st, "prod", "{\"allow_any_measurement\":true}", "admin", NULL, NULL),
        VTPMCA_OK);
    store_close(st);
    sqlite3 *db = raw_open(old_path);
    /* Everything that migrations 1 and 2 did not create goes. */
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND "
                                        "name NOT IN ('vcek', 'fleet', 'policy', "
                                        "'schema_migrations') AND name NOT LIKE 'sqlite_%'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    char drops[1024] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        size_t used = strlen(drops);
        snprintf(drops + used, sizeof(drops) - used, "DROP TABLE %s;",
                 (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    raw_exec(db, drops);
    raw_exec(db, "DELETE FROM schema_migrations WHERE version > 2");
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'instance'"), 0);
    sqlite3_close(db);

    assert_int_equal(store_open(old_path, &st, NULL), VTPMCA_OK);
    int version = -1;
    assert_int_equal(store_schema_version(st, &version), VTPMCA_OK);
    assert_int_equal(version, latest);
    /* The old data is intact and the new tables work. */
    char *json = NULL;
    assert_int_equal(store_policy_get(st, "prod", 0, &json, NULL, NULL), VTPMCA_OK);
    free(json);
    store_instance inst = make_instance("prod", 1);
    assert_int_equal(store_instance_put(st, &inst, NULL), VTPMCA_OK);
    store_audit_event ev = make_event("enroll", inst.id, "enrolled", 0);
    assert_int_equal(store_audit_append(st, &ev, NULL), VTPMCA_OK);
    store_close(st);

    /* Same tables, indexes and triggers as a database created fresh. */
    const char *schema_sql = "SELECT group_concat(type || ' ' || name || ' ' || sql, ';') FROM "
                             "(SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL "
                             "ORDER BY type, name)";
    sqlite3 *a = raw_open(fresh_path), *b = raw_open(old_path);
    sqlite3_stmt *sa = NULL, *sb = NULL;
    assert_int_equal(sqlite3_prepare_v2(a, schema_sql, -1, &sa, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(b, schema_sql, -1, &sb, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(sa), SQLITE_ROW);
    assert_int_equal(sqlite3_step(sb), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(sa, 0),
                        (const char *)sqlite3_column_text(sb, 0));
    assert_non_null(strstr((const char *)sqlite3_column_text(sa, 0), "audit_no_delete"));
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    sqlite3_close(a);
    sqlite3_close(b);
}

struct append_thread {
    store *st;
    int index;
    const char *actor;
    int ok, refused;
};

static void *append_many(void *p)
{
    struct append_thread *t = p;
    for (int i = 0; i < 50; i++) {
        char instance[32];
        snprintf(instance, sizeof(instance), "thread-%d", t->index);
        store_audit_event ev = make_event("key_release", instance, "granted", 0);
        snprintf(ev.actor, sizeof(ev.actor), "%s", t->actor);
        vtpmca_diag diag = {{0}};
        vtpmca_err err = store_audit_append(t->st, &ev, &diag);
        if (err == VTPMCA_OK)
            t->ok++;
        else if (err == VTPMCA_ERR_STORE && strstr(diag.msg, "refused by test") != NULL)
            t->refused++;
    }
    return NULL;
}

/* Concurrent appends share commits (group commit); a row the database refuses fails alone,
 * not the rows committed with it. */
static void test_concurrent_appends(void **state)
{
    (void)state;
    char path[256];
    store *st = open_fresh(path, sizeof(path));
    sqlite3 *db = raw_open(path);
    raw_exec(db, "CREATE TRIGGER refuse_mallory BEFORE INSERT ON audit WHEN NEW.actor = 'mallory' "
                 "BEGIN SELECT RAISE(ABORT, 'refused by test'); END");
    sqlite3_close(db);
    enum { THREADS = 6 };
    pthread_t threads[THREADS];
    struct append_thread args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct append_thread){st, i, i == 3 ? "mallory" : "session", 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, append_many, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].ok, i == 3 ? 0 : 50);
        assert_int_equal(args[i].refused, i == 3 ? 50 : 0);
    }
    store_audit_filter f = {.limit = 1000};
    assert_int_equal(query_count(st, &f), (THREADS - 1) * 50);
    f = (store_audit_filter){.instance_id = "thread-2", .limit = 1000};
    assert_int_equal(query_count(st, &f), 50);
    f = (store_audit_filter){.instance_id = "thread-3", .limit = 1000};
    assert_int_equal(query_count(st, &f), 0);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_duplicates_conflict),
        cmocka_unit_test(test_put_rejections),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_disable),
        cmocka_unit_test(test_batch_all_or_nothing),
        cmocka_unit_test(test_batch_audited),
        cmocka_unit_test(test_audit_append_query),
        cmocka_unit_test(test_audit_rejections),
        cmocka_unit_test(test_audit_append_only),
        cmocka_unit_test(test_audit_append_async),
        cmocka_unit_test(test_audit_append_async_mixed),
        cmocka_unit_test(test_audit_append_async_close),
        cmocka_unit_test(test_audit_append_async_failure),
        cmocka_unit_test(test_migration_of_existing_database),
        cmocka_unit_test(test_concurrent_appends),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
