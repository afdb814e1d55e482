/* Unit tests of bulk enrollment (enrollment_bulk.h) and the store's instance deletion: the
 * CSV and JSON Lines parsers with every row-level and document-level refusal, the line
 * numbers they report, and bulk_enroll on a real sqlite store and master key (keys_fixture):
 * all or nothing, skip_bad, taken ids and paths found after the transaction refused them,
 * keys brought for wrapped mode; then deletion (tombstones, revoked certificates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/keys_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/enrollment_bulk.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/log.h"

#define HOST_HEX "3333333333333333333333333333333333333333333333333333333333333333"

static bulk_doc parse_ok(const char *text, bulk_format format, const char *default_fleet)
{
    bulk_doc doc;
    vtpmca_diag diag = {{0}};
    bulk_parse_options options = {default_fleet, 0};
    if (bulk_parse(text, strlen(text), format, &options, &doc, &diag) != VTPMCA_OK)
        fail_msg("parse: %s", diag.msg);
    return doc;
}

/* The problem of `line` (fails when there is none). */
static const bulk_error *error_at(const bulk_doc *doc, size_t line)
{
    for (size_t i = 0; i < doc->n_errors; i++) {
        if (doc->errors[i].line == line)
            return &doc->errors[i];
    }
    fail_msg("no problem reported on line %zu", line);
    return NULL;
}

static void expect_error_at(const bulk_doc *doc, size_t line, const char *needle)
{
    const bulk_error *e = error_at(doc, line);
    if (e == NULL) /* error_at failed the test already */
        return;
    if (strstr(e->message, needle) == NULL)
        fail_msg("line %zu: '%s' lacks '%s'", line, e->message, needle);
}

/* ---- Formats ---- */

static void test_formats(void **state)
{
    (void)state;
    bulk_format f;
    assert_int_equal(bulk_format_parse("csv", &f), VTPMCA_OK);
    assert_int_equal(f, BULK_CSV);
    assert_int_equal(bulk_format_parse("ndjson", &f), VTPMCA_OK);
    assert_int_equal(f, BULK_JSONL);
    assert_int_equal(bulk_format_parse("xml", &f), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(bulk_format_from_content_type("Text/CSV; charset=utf-8", &f), VTPMCA_OK);
    assert_int_equal(f, BULK_CSV);
    assert_int_equal(bulk_format_from_content_type("application/jsonl", &f), VTPMCA_OK);
    assert_int_equal(f, BULK_JSONL);
    assert_int_equal(bulk_format_from_content_type("application/json", &f), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(bulk_format_from_content_type("text/csvx", &f), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(bulk_format_from_content_type(NULL, &f), VTPMCA_ERR_UNSUPPORTED);
    assert_string_equal(bulk_format_content_type(BULK_JSONL), "application/x-ndjson");
}

/* ---- CSV ---- */

static void test_csv_accepts(void **state)
{
    (void)state;
    /* A BOM, CRLF, comments, blank lines, columns in any order, quoted fields. */
    const char *text = "\xEF\xBB\xBF"
                       "mode , instance,fleet,host_data,resource_tag,key\r\n"
                       "# a comment\r\n"
                       "\r\n"
                       ",vm-1,prod,,,\r\n"
                       "wrapped,\"vm-2\",prod," HOST_HEX ",tag-2,AAECAw==\r\n"
                       "generated, vm-3 ,\"pr\"\"od\",,,\n";
    bulk_doc doc = parse_ok(text, BULK_CSV, NULL);
    assert_int_equal(doc.n_rows, 3);
    assert_int_equal(doc.n_bad, 0);
    assert_int_equal(doc.rows[0].line, 4);
    assert_string_equal(doc.rows[0].instance_id, "vm-1");
    assert_int_equal(doc.rows[0].mode, STORE_KEY_GENERATED);
    assert_string_equal(doc.rows[0].resource_path, "");
    assert_false(doc.rows[0].has_host_data);
    assert_int_equal(doc.rows[1].line, 5);
    assert_int_equal(doc.rows[1].mode, STORE_KEY_WRAPPED);
    assert_string_equal(doc.rows[1].resource_path, ENROLLMENT_PATH_PREFIX "tag-2");
    assert_true(doc.rows[1].has_host_data);
    assert_int_equal(doc.rows[1].host_data[31], 0x33);
    assert_int_equal(doc.rows[1].key_len, 4);
    assert_memory_equal(doc.rows[1].key, "\x00\x01\x02\x03", 4);
    assert_string_equal(doc.rows[2].instance_id, "vm-3");
    assert_string_equal(doc.rows[2].fleet, "pr\"od"); /* checked against the store later */
    bulk_doc_free(&doc);

    /* A default fleet for rows without one. */
    doc = parse_ok("instance\nvm-1\n", BULK_CSV, "lab");
    assert_string_equal(doc.rows[0].fleet, "lab");
    bulk_doc_free(&doc);
    doc = parse_ok("instance,fleet,resource_path\nvm-1,,a/b/c\n", BULK_CSV, "lab");
    assert_string_equal(doc.rows[0].fleet, "lab");
    assert_string_equal(doc.rows[0].resource_path, "a/b/c");
    bulk_doc_free(&doc);
}

static void test_csv_bad_rows(void **state)
{
    (void)state;
    char long_line[BULK_LINE_MAX + 64];
    memset(long_line, 'a', sizeof(long_line) - 1);
    long_line[sizeof(long_line) - 1] = '\0';
    char text[16384];
    snprintf(text, sizeof(text),
             "instance,fleet,host_data,resource_path,resource_tag,mode,key\n" /* 1 */
             "ok-1,prod,,,,,\n"                                               /* 2 */
             "bad id,prod,,,,,\n"                                             /* 3 */
             ",prod,,,,,\n"                                                   /* 4 */
             "ok-5,prod,12,,,,\n"                                             /* 5 */
             "ok-6,prod,,a/b/c,t,,\n"                                         /* 6 */
             "ok-7,prod,,a/b,,,\n"                                            /* 7 */
             "ok-8,prod,,,bad/tag,,\n"                                        /* 8 */
             "ok-9,prod,,,,sideways,\n"                                       /* 9 */
             "ok-10,prod,,,,,AAAA\n"                                          /* 10 */
             "ok-11,prod,,,,wrapped,not-base64\n"                             /* 11 */
             "ok-12,prod,,,\n"                                                /* 12 */
             "ok-13,prod,,,,,,,\n"                                            /* 13 */
             "ok-14,\"prod,,,,,\n"                                            /* 14 */
             "ok-15,pr\"od,,,,,\n"                                            /* 15 */
             "ok-16,\"prod\"x,,,,,\n"                                         /* 16 */
             "%s\n"                                                           /* 17 */
             "ok-1,prod,,,,,\n"                                               /* 18 */
             "ok-19,prod,,a/b/c,,,\n"                                         /* 19 */
             "ok-20,prod,,a/b/c,,,\n"                                         /* 20 */
             "ok-21,prod,,,,wrapped,%s\n",                                    /* 21 */
             long_line,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
             "AAAAAAA");
    bulk_doc doc = parse_ok(text, BULK_CSV, NULL);
    expect_error_at(&doc, 3, "instance 'bad id'");
    expect_error_at(&doc, 4, "no instance id");
    expect_error_at(&doc, 5, "host_data must be 64 hex digits");
    expect_error_at(&doc, 6, "not both");
    expect_error_at(&doc, 7, "resource path");
    expect_error_at(&doc, 8, "resource_tag");
    expect_error_at(&doc, 9, "generated or wrapped, not 'sideways'");
    expect_error_at(&doc, 10, "mode wrapped only");
    expect_error_at(&doc, 11, "standard base64");
    expect_error_at(&doc, 12, "fewer fields");
    expect_error_at(&doc, 13, "more fields");
    expect_error_at(&doc, 14, "not closed");
    expect_error_at(&doc, 15, "quote inside");
    expect_error_at(&doc, 16, "after a quoted field");
    expect_error_at(&doc, 17, "longer than");
    expect_error_at(&doc, 18, "appears on line 2 already");
    expect_error_at(&doc, 20, "is on line 19 already");
    expect_error_at(&doc, 21, "1 to 64 bytes");
    assert_int_equal(doc.n_bad, 18);
    assert_int_equal(doc.n_errors, 18);
    /* The good rows, in order; a key never appears in a message. */
    assert_int_equal(doc.n_rows, 2);
    assert_string_equal(doc.rows[0].instance_id, "ok-1");
    assert_string_equal(doc.rows[1].instance_id, "ok-19");
    for (size_t i = 1; i < doc.n_errors; i++)
        assert_true(doc.errors[i - 1].line < doc.errors[i].line);
    assert_null(strstr(error_at(&doc, 11)->message, "not-base64"));
    bulk_doc_free(&doc);

    /* A NUL byte in a row. */
    const char nul[] = "instance,fleet\nok-1,pr\0d\nok-2,prod\n";
    vtpmca_diag diag = {{0}};
    assert_int_equal(bulk_parse(nul, sizeof(nul) - 1, BULK_CSV, NULL, &doc, &diag), VTPMCA_OK);
    expect_error_at(&doc, 2, "NUL");
    assert_int_equal(doc.n_rows, 1);
    bulk_doc_free(&doc);
}

static void test_csv_bad_documents(void **state)
{
    (void)state;
    const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"", "no instances"},
        {"# only a comment\n\n", "not even a header"},
        {"instance,fleet\n", "no instances"},
        {"instance,colour\nx,y\n", "unknown column 'colour'"},
        {"instance,fleet,instance\nx,y,z\n", "appears twice"},
        {"fleet\nprod\n", "no 'instance' column"},
        {"instance\nvm-1\n", "no 'fleet' column"},
        {"instance,\"fleet\nx,y\n", "not closed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bulk_doc doc;
        vtpmca_diag diag = {{0}};
        assert_int_equal(
            bulk_parse(cases[i].text, strlen(cases[i].text), BULK_CSV, NULL, &doc, &diag),
            VTPMCA_ERR_PARSE);
        if (strstr(diag.msg, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, diag.msg, cases[i].needle);
        assert_null(doc.rows);
        assert_null(doc.errors);
    }
    /* Too many rows (good or bad). */
    bulk_parse_options options = {NULL, 2};
    bulk_doc doc;
    vtpmca_diag diag = {{0}};
    const char *three = "instance,fleet\na,p\nb b,p\nc,p\n";
    assert_int_equal(bulk_parse(three, strlen(three), BULK_CSV, &options, &doc, &diag),
                     VTPMCA_ERR_LIMIT);
    assert_non_null(strstr(diag.msg, "line 4"));
    assert_int_equal(bulk_parse(NULL, 1, BULK_CSV, NULL, &doc, &diag), VTPMCA_ERR_INVALID_ARG);
}

/* ---- JSON Lines ---- */

static void test_jsonl(void **state)
{
    (void)state;
    const char *text = "{\"instance\":\"vm-1\",\"fleet\":\"prod\"}\n" /* 1 */
                       "\n"                                           /* 2 */
                       "{\"instance\":\"vm-2\",\"mode\":\"wrapped\",\"key\":\"AQID\","
                       "\"host_data\":null}\n"                           /* 3 */
                       "[1,2]\n"                                         /* 4 */
                       "{\"instance\":\"vm-5\"\n"                        /* 5 */
                       "{\"instance\":\"vm-6\",\"colour\":\"blue\"}\n"   /* 6 */
                       "{\"instance\":7}\n"                              /* 7 */
                       "{\"instance\":\"vm-8\",\"instance\":\"vm-9\"}\n" /* 8 */
                       "{\"instance\":\"vm-1\",\"fleet\":\"lab\"}\n"     /* 9 */
                       "# not a comment in JSON Lines\n";                /* 10 */
    bulk_doc doc = parse_ok(text, BULK_JSONL, "lab");
    assert_int_equal(doc.n_rows, 2);
    assert_string_equal(doc.rows[0].fleet, "prod");
    assert_string_equal(doc.rows[1].fleet, "lab"); /* the default */
    assert_int_equal(doc.rows[1].line, 3);
    assert_int_equal(doc.rows[1].key_len, 3);
    expect_error_at(&doc, 4, "not a JSON object");
    expect_error_at(&doc, 5, "not JSON");
    expect_error_at(&doc, 6, "unknown key 'colour'");
    expect_error_at(&doc, 7, "must be a string");
    expect_error_at(&doc, 8, "not JSON"); /* a duplicate key */
    expect_error_at(&doc, 9, "appears on line 1 already");
    expect_error_at(&doc, 10, "not JSON");
    assert_int_equal(doc.n_bad, 7);
    /* Rows go back out as the same JSON Lines (what the CLI sends the daemon). */
    json_t *row = bulk_row_to_json(&doc.rows[1]);
    assert_string_equal(json_string_value(json_object_get(row, "key")), "AQID");
    assert_string_equal(json_string_value(json_object_get(row, "mode")), "wrapped");
    assert_null(json_object_get(row, "host_data"));
    json_decref(row);
    json_t *errors = bulk_errors_to_json(&doc);
    assert_int_equal(json_array_size(errors), 7);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errors, 0), "line")), 4);
    json_decref(errors);
    bulk_doc_free(&doc);
}

/* ---- Enrollment ---- */

static size_t count(store *st)
{
    store_instance *items = NULL;
    size_t n = 0;
    assert_int_equal(store_instance_list(st, NULL, NULL, STORE_LIST_MAX, &items, &n, NULL),
                     VTPMCA_OK);
    store_instance_list_free(items, n);
    return n;
}

static void test_enroll_all_or_nothing(void **state)
{
    keys_env *env = *state;
    vtpmca_diag diag = {{0}};
    bulk_result *results = NULL;
    size_t n = 0;
    /* Good rows, one with a key brought for wrapped mode. */
    bulk_doc doc = parse_ok("instance,fleet,mode,key,resource_path\n"
                            "b-1," KEYS_FLEET ",,,\n"
                            "b-2," KEYS_FLEET ",wrapped,AAECAwQFBgcICQoLDA0ODw==,\n"
                            "b-3," KEYS_FLEET_NO_POLICY ",,,x/y/b-3\n",
                            BULK_CSV, NULL);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, doc.n_rows, "admin:test", false,
                                 &results, &n, &diag),
                     VTPMCA_OK);
    assert_int_equal(n, 3);
    assert_int_equal(results[0].line, 2);
    assert_null(results[0].wrapped_key);
    assert_string_equal(results[2].resource_path, "x/y/b-3");
    /* The brought key's blob unwraps for b-2, in its wrapped-mode context. */
    assert_non_null(results[1].wrapped_key);
    uint8_t *blob = NULL, key[KEYVAULT_KEY_MAX];
    size_t blob_len = 0, key_len = 0;
    char context[ENROLLMENT_CONTEXT_MAX];
    assert_int_equal(vt_b64_decode_alloc(results[1].wrapped_key, strlen(results[1].wrapped_key),
                                         VT_B64_URL_NOPAD, &blob, &blob_len),
                     VTPMCA_OK);
    assert_int_equal(enrollment_key_context(STORE_KEY_WRAPPED, "b-2", context, NULL), VTPMCA_OK);
    assert_int_equal(
        keyvault_unwrap(env->vault, blob, blob_len, context, key, sizeof(key), &key_len, NULL),
        VTPMCA_OK);
    assert_int_equal(key_len, 16);
    assert_int_equal(key[15], 15);
    free(blob);
    for (size_t i = 0; i < n; i++) {
        store_instance inst;
        assert_int_equal(store_instance_get(env->st, results[i].instance_id, &inst, NULL),
                         VTPMCA_OK);
        assert_string_equal(inst.resource_path, results[i].resource_path);
        store_instance_free_fields(&inst);
    }
    json_t *item = bulk_result_to_json(&results[1]);
    assert_string_equal(json_string_value(json_object_get(item, "wrapped_key")),
                        results[1].wrapped_key);
    json_decref(item);
    bulk_results_free(results, n);
    bulk_doc_free(&doc);

    /* A taken id, a taken path, an unknown fleet: nothing of the batch is enrolled, and the
     * lines say why. */
    size_t before = count(env->st);
    doc = parse_ok("instance,fleet,resource_path\n"
                   "c-1," KEYS_FLEET ",\n"
                   "b-1," KEYS_FLEET ",\n"
                   "c-3," KEYS_FLEET ",x/y/b-3\n"
                   "c-4," KEYS_FLEET ",\n",
                   BULK_CSV, NULL);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, doc.n_rows, "admin:test", false,
                                 &results, &n, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_null(results);
    assert_int_equal(n, 0);
    assert_non_null(strstr(diag.msg, "2 rows"));
    expect_error_at(&doc, 3, "instance b-1 is already enrolled");
    expect_error_at(&doc, 4, "belongs to instance b-3");
    assert_int_equal(count(env->st), before);
    bulk_doc_free(&doc);
    doc = parse_ok("instance,fleet\nc-1," KEYS_FLEET "\nc-2,nowhere\n", BULK_CSV, NULL);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, doc.n_rows, "admin:test", false,
                                 &results, &n, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    expect_error_at(&doc, 3, "no fleet 'nowhere'");
    assert_int_equal(count(env->st), before);

    /* With skip_bad the others go in. */
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, doc.n_rows, "admin:test", true,
                                 &results, &n, &diag),
                     VTPMCA_OK);
    assert_int_equal(n, 1);
    assert_string_equal(results[0].instance_id, "c-1");
    assert_true(doc.rows[1].skipped);
    bulk_results_free(results, n);
    bulk_doc_free(&doc);
    doc = parse_ok("instance,fleet\nb-1," KEYS_FLEET "\nd-2," KEYS_FLEET "\nb-2," KEYS_FLEET "\n",
                   BULK_CSV, NULL);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, doc.n_rows, "admin:test", true,
                                 &results, &n, &diag),
                     VTPMCA_OK);
    assert_int_equal(n, 1);
    assert_string_equal(results[0].instance_id, "d-2");
    assert_int_equal(doc.n_bad, 2);
    bulk_results_free(results, n);

    /* A range that is all skipped enrolls nothing; bad arguments. */
    assert_int_equal(
        bulk_enroll(env->st, env->vault, &doc, 0, 1, "admin:test", true, &results, &n, &diag),
        VTPMCA_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 2, 1, "x", false, &results, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, 9, "x", false, &results, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(bulk_enroll(env->st, NULL, &doc, 0, 1, "x", false, &results, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    bulk_doc_free(&doc);
    /* Each enrollment is audited by its actor. */
    store_audit_filter filter = {.instance_id = "d-2", .limit = 10};
    store_audit_event *events = NULL;
    size_t n_events = 0;
    assert_int_equal(store_audit_query(env->st, &filter, &events, &n_events, NULL), VTPMCA_OK);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].action, "enroll");
    assert_string_equal(events[0].actor, "admin:test");
    free(events);
}

static void test_delete_retires_for_good(void **state)
{
    keys_env *env = *state;
    vtpmca_diag diag = {{0}};
    enroll_request req = {.instance_id = "del-1",
                          .fleet = KEYS_FLEET,
                          .resource_path = "del/path/one",
                          .mode = STORE_KEY_WRAPPED,
                          .actor = "test"};
    enroll_result res;
    assert_int_equal(enrollment_enroll(env->st, env->vault, &req, &res, &diag), VTPMCA_OK);
    const uint8_t ledger_blob[] = {1, 2, 3};
    assert_int_equal(store_ledger_key_put(env->st, "del-1", ledger_blob, sizeof(ledger_blob), NULL),
                     VTPMCA_OK);
    assert_int_equal(store_instance_ek_reenroll_grant(env->st, "del-1", NULL), VTPMCA_OK);
    uint8_t der[4] = {0x30, 0x02, 0x05, 0x00};
    store_cert cert = {.serial = "77",
                       .instance_id = "del-1",
                       .kind = STORE_CERT_EK,
                       .key_name = "000b0011",
                       .format = STORE_CERT_X509,
                       .not_before = 1,
                       .not_after = 2,
                       .der = der,
                       .der_len = sizeof(der)};
    assert_int_equal(store_cert_put(env->st, &cert, NULL), VTPMCA_OK);
    snprintf(cert.serial, sizeof(cert.serial), "78"); /* revoked before: stays as it is */
    assert_int_equal(store_cert_put(env->st, &cert, NULL), VTPMCA_OK);
    assert_int_equal(store_cert_revoke(env->st, "78", 5, "keyCompromise", NULL), VTPMCA_OK);
    int64_t last_before = 0, last_after = 0;
    assert_int_equal(store_audit_last_seq(env->st, &last_before, NULL), VTPMCA_OK);
    assert_true(last_before > 0);

    store_instance_deletion del;
    assert_int_equal(store_instance_delete(env->st, "del-1", &del, &diag), VTPMCA_OK);
    assert_int_equal(del.certs_revoked, 1);
    assert_true(del.ledger_key_deleted);
    store_instance inst;
    assert_int_equal(store_instance_get(env->st, "del-1", &inst, NULL), VTPMCA_ERR_NOT_FOUND);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(store_ledger_key_get(env->st, "del-1", &blob, &blob_len, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    store_cert got;
    assert_int_equal(store_cert_get(env->st, "77", &got, NULL), VTPMCA_OK);
    assert_string_equal(got.reason, "cessationOfOperation");
    store_cert_free_fields(&got);
    assert_int_equal(store_cert_get(env->st, "78", &got, NULL), VTPMCA_OK);
    assert_string_equal(got.reason, "keyCompromise");
    store_cert_free_fields(&got);
    /* The audit log is untouched by the store call itself. */
    assert_int_equal(store_audit_last_seq(env->st, &last_after, NULL), VTPMCA_OK);
    assert_int_equal(last_after, last_before);

    /* Neither the id nor the path is enrolled again. */
    bool deleted = false;
    assert_int_equal(store_instance_was_deleted(env->st, "del-1", NULL, &deleted, NULL), VTPMCA_OK);
    assert_true(deleted);
    assert_int_equal(store_instance_was_deleted(env->st, NULL, "del/path/one", &deleted, NULL),
                     VTPMCA_OK);
    assert_true(deleted);
    assert_int_equal(store_instance_was_deleted(env->st, "del-2", "del/path/two", &deleted, NULL),
                     VTPMCA_OK);
    assert_false(deleted);
    assert_int_equal(enrollment_enroll(env->st, env->vault, &req, &res, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "deleted instance"));
    req.instance_id = "del-2";
    assert_int_equal(enrollment_enroll(env->st, env->vault, &req, &res, &diag),
                     VTPMCA_ERR_CONFLICT);
    req.resource_path = NULL;
    assert_int_equal(enrollment_enroll(env->st, env->vault, &req, &res, &diag), VTPMCA_OK);
    /* A bulk document finds them too. */
    bulk_doc doc = parse_ok("instance,fleet\ndel-1," KEYS_FLEET "\n", BULK_CSV, NULL);
    bulk_result *results = NULL;
    size_t n = 0;
    assert_int_equal(bulk_enroll(env->st, env->vault, &doc, 0, 1, "x", false, &results, &n, &diag),
                     VTPMCA_ERR_CONFLICT);
    expect_error_at(&doc, 2, "deleted instance");
    bulk_doc_free(&doc);

    /* Refusals. */
    assert_int_equal(store_instance_delete(env->st, "del-1", &del, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(store_instance_delete(env->st, "bad id", &del, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_delete(NULL, "x", &del, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_was_deleted(env->st, NULL, NULL, &deleted, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_instance_was_deleted(env->st, NULL, "a/b", &deleted, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_audit_last_seq(NULL, &last_after, &diag), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    vtpmca_log_setup(VTPMCA_LOG_ERROR, VTPMCA_LOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_csv_accepts),
        cmocka_unit_test(test_csv_bad_rows),
        cmocka_unit_test(test_csv_bad_documents),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test_setup_teardown(test_enroll_all_or_nothing, keys_env_setup,
                                        keys_env_teardown),
        cmocka_unit_test_setup_teardown(test_delete_retires_for_good, keys_env_setup,
                                        keys_env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
