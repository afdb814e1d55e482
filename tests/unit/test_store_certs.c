/* Unit tests for the store's issued-certificate records (store/store_certs_sqlite.c through
 * store.c): put/get/latest/list/revoke/revocations and the CRL counter on a real sqlite file,
 * duplicates, not found, every argument check, persistence across reopen, and concurrent
 * CRL numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/ca_fixture.h"
#include "vtpmca/store.h"

static struct {
    char tmp[64];
    char db[128];
    store *st;
    unsigned counter;
} g;

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "store-certs") != 0)
        return -1;
    snprintf(g.db, sizeof(g.db), "%s/vtpmca.db", g.tmp);
    vtpmca_diag diag = {{0}};
    if (store_open(g.db, &g.st, &diag) != VTPMCA_OK) {
        fprintf(stderr, "store_open: %s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(g.st);
    return ca_fixture_rmtree(g.tmp);
}

static const uint8_t DER[] = {0x30, 0x03, 0x02, 0x01, 0x01};
static const uint8_t C509[] = {0x8b, 0x03, 0x41, 0x01};

/* A valid x509 record with a fresh serial (the counter keeps serials unique per run). */
static store_cert record(const char *instance, store_cert_kind kind)
{
    store_cert c;
    memset(&c, 0, sizeof(c));
    snprintf(c.serial, sizeof(c.serial), "4%031x", ++g.counter);
    snprintf(c.instance_id, sizeof(c.instance_id), "%s", instance);
    c.kind = kind;
    snprintf(c.key_name, sizeof(c.key_name), "000b%064x", g.counter);
    c.format = STORE_CERT_X509;
    c.not_before = 1767225600;
    c.not_after = 253402300799;
    c.der = (uint8_t *)DER;
    c.der_len = sizeof(DER);
    return c;
}

static void put_ok(const store_cert *c)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_cert_put(g.st, c, &diag);
    if (err != VTPMCA_OK)
        fail_msg("store_cert_put(%s): %s", c->serial, diag.msg);
}

static void assert_same_meta(const store_cert *a, const store_cert *b)
{
    assert_string_equal(a->serial, b->serial);
    assert_string_equal(a->instance_id, b->instance_id);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->key_name, b->key_name);
    assert_int_equal(a->format, b->format);
    assert_int_equal(a->not_before, b->not_before);
    assert_int_equal(a->not_after, b->not_after);
}

/* ---- tests ---- */

static void test_put_get(void **state)
{
    (void)state;
    store_cert c = record("vm-put", STORE_CERT_EK);
    time_t before = time(NULL);
    put_ok(&c);
    store_cert got;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_cert_get(g.st, c.serial, &got, &diag), VTPMCA_OK);
    assert_same_meta(&c, &got);
    assert_int_equal(got.status, STORE_CERT_ISSUED);
    assert_int_equal(got.revoked_at, 0);
    assert_string_equal(got.reason, "");
    assert_true(got.created_at >= before && got.created_at <= time(NULL));
    assert_int_equal(got.der_len, sizeof(DER));
    assert_memory_equal(got.der, DER, sizeof(DER));
    assert_null(got.c509);
    store_cert_free_fields(&got);
    assert_null(got.der);

    /* A C509 record: the C509 bytes, with and without the DER it re-encodes. */
    store_cert c2 = record("vm-put", STORE_CERT_IAK);
    c2.format = STORE_CERT_C509;
    c2.c509 = (uint8_t *)C509;
    c2.c509_len = sizeof(C509);
    put_ok(&c2);
    assert_int_equal(store_cert_get(g.st, c2.serial, &got, &diag), VTPMCA_OK);
    assert_same_meta(&c2, &got);
    assert_int_equal(got.c509_len, sizeof(C509));
    assert_memory_equal(got.c509, C509, sizeof(C509));
    assert_memory_equal(got.der, DER, sizeof(DER));
    store_cert_free_fields(&got);
    store_cert c3 = record("vm-put", STORE_CERT_IAK);
    c3.format = STORE_CERT_C509;
    c3.der = NULL;
    c3.der_len = 0;
    c3.c509 = (uint8_t *)C509;
    c3.c509_len = sizeof(C509);
    put_ok(&c3);
    assert_int_equal(store_cert_get(g.st, c3.serial, &got, &diag), VTPMCA_OK);
    assert_null(got.der);
    assert_int_equal(got.der_len, 0);
    assert_non_null(got.c509);
    store_cert_free_fields(&got);

    /* Largest allowed blob. */
    store_cert big = record("vm-put", STORE_CERT_EK);
    uint8_t *blob = calloc(1, STORE_CERT_BLOB_MAX);
    big.der = blob;
    big.der_len = STORE_CERT_BLOB_MAX;
    put_ok(&big);
    assert_int_equal(store_cert_get(g.st, big.serial, &got, &diag), VTPMCA_OK);
    assert_int_equal(got.der_len, STORE_CERT_BLOB_MAX);
    store_cert_free_fields(&got);
    free(blob);
}

static void test_duplicate_and_not_found(void **state)
{
    (void)state;
    store_cert c = record("vm-dup", STORE_CERT_EK);
    put_ok(&c);
    store_cert again = c;
    snprintf(again.instance_id, sizeof(again.instance_id), "someone-else");
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_cert_put(g.st, &again, &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, c.serial));
    store_cert got;
    assert_int_equal(store_cert_get(g.st, c.serial, &got, &diag), VTPMCA_OK);
    assert_string_equal(got.instance_id, "vm-dup"); /* the first record stays */
    store_cert_free_fields(&got);

    assert_int_equal(store_cert_get(g.st, "7fffffffffffffff", &got, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "7fffffffffffffff"));
    assert_null(got.der);
    assert_int_equal(store_cert_latest(g.st, "nobody", STORE_CERT_EK, &got, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(store_cert_revoke(g.st, "7fffffffffffffff", 0, "superseded", &diag),
                     VTPMCA_ERR_NOT_FOUND);
}

static void test_latest_and_list(void **state)
{
    (void)state;
    store_cert ek1 = record("vm-list", STORE_CERT_EK);
    store_cert iak = record("vm-list", STORE_CERT_IAK);
    store_cert ek2 = record("vm-list", STORE_CERT_EK);
    store_cert other = record("vm-other", STORE_CERT_EK);
    put_ok(&ek1);
    put_ok(&iak);
    put_ok(&ek2);
    put_ok(&other);

    store_cert got;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_cert_latest(g.st, "vm-list", STORE_CERT_EK, &got, &diag), VTPMCA_OK);
    assert_same_meta(&ek2, &got);
    assert_non_null(got.der);
    store_cert_free_fields(&got);
    assert_int_equal(store_cert_latest(g.st, "vm-list", STORE_CERT_IAK, &got, &diag), VTPMCA_OK);
    assert_same_meta(&iak, &got);
    store_cert_free_fields(&got);
    /* Revoked certificates still count as the latest (the caller looks at status). */
    assert_int_equal(store_cert_revoke(g.st, ek2.serial, 0, "superseded", &diag), VTPMCA_OK);
    assert_int_equal(store_cert_latest(g.st, "vm-list", STORE_CERT_EK, &got, &diag), VTPMCA_OK);
    assert_string_equal(got.serial, ek2.serial);
    assert_int_equal(got.status, STORE_CERT_REVOKED);
    store_cert_free_fields(&got);

    /* By instance: exactly its three, in serial order, metadata only. */
    store_cert *items = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(g.st, "vm-list", NULL, 100, &items, &n, &diag), VTPMCA_OK);
    assert_int_equal(n, 3);
    assert_string_equal(items[0].serial, ek1.serial);
    assert_string_equal(items[1].serial, iak.serial);
    assert_string_equal(items[2].serial, ek2.serial);
    assert_int_equal(items[1].kind, STORE_CERT_IAK);
    assert_int_equal(items[2].status, STORE_CERT_REVOKED);
    for (size_t i = 0; i < n; i++) {
        assert_null(items[i].der);
        assert_null(items[i].c509);
    }
    free(items);

    /* All instances, paged two at a time: every serial once, ascending. */
    char last[STORE_CERT_SERIAL_HEX_MAX + 1] = "";
    size_t total = 0, pages = 0;
    for (;;) {
        assert_int_equal(
            store_cert_list(g.st, NULL, last[0] != '\0' ? last : NULL, 2, &items, &n, &diag),
            VTPMCA_OK);
        if (n == 0) {
            assert_null(items);
            break;
        }
        assert_true(n <= 2);
        for (size_t i = 0; i < n; i++) {
            assert_true(strcmp(items[i].serial, last) > 0);
            snprintf(last, sizeof(last), "%s", items[i].serial);
        }
        total += n;
        pages++;
        free(items);
    }
    assert_true(total >= 4);
    assert_true(pages >= 2);

    /* An unknown instance lists nothing. */
    assert_int_equal(store_cert_list(g.st, "vm-none", NULL, 10, &items, &n, &diag), VTPMCA_OK);
    assert_int_equal(n, 0);
    assert_null(items);
}

static void test_revoke(void **state)
{
    (void)state;
    store_cert a = record("vm-revoke", STORE_CERT_EK);
    store_cert b = record("vm-revoke", STORE_CERT_IAK);
    put_ok(&a);
    put_ok(&b);
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_cert_revoke(g.st, a.serial, 1767229200, "keyCompromise", &diag),
                     VTPMCA_OK);
    store_cert got;
    assert_int_equal(store_cert_get(g.st, a.serial, &got, &diag), VTPMCA_OK);
    assert_int_equal(got.status, STORE_CERT_REVOKED);
    assert_int_equal(got.revoked_at, 1767229200);
    assert_string_equal(got.reason, "keyCompromise");
    store_cert_free_fields(&got);

    /* A second revocation is refused and changes nothing. */
    assert_int_equal(store_cert_revoke(g.st, a.serial, 1800000000, "superseded", &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "revoked already"));
    assert_int_equal(store_cert_get(g.st, a.serial, &got, &diag), VTPMCA_OK);
    assert_int_equal(got.revoked_at, 1767229200);
    assert_string_equal(got.reason, "keyCompromise");
    store_cert_free_fields(&got);

    /* revoked_at 0 means now. */
    time_t before = time(NULL);
    assert_int_equal(store_cert_revoke(g.st, b.serial, 0, "cessationOfOperation", &diag),
                     VTPMCA_OK);
    assert_int_equal(store_cert_get(g.st, b.serial, &got, &diag), VTPMCA_OK);
    assert_true(got.revoked_at >= before && got.revoked_at <= time(NULL));
    store_cert_free_fields(&got);

    /* The revocation list holds both, ordered by serial, with their dates and reasons. */
    store_cert_revocation *revs = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_revocations(g.st, &revs, &n, &diag), VTPMCA_OK);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(revs[i - 1].serial, revs[i].serial) < 0);
        if (strcmp(revs[i].serial, a.serial) == 0) {
            assert_int_equal(revs[i].revoked_at, 1767229200);
            assert_string_equal(revs[i].reason, "keyCompromise");
            found++;
        }
        found += strcmp(revs[i].serial, b.serial) == 0;
    }
    assert_int_equal(found, 2);
    free(revs);
}

static void test_crl_numbers(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_crl_number_next(g.st, &a, &diag), VTPMCA_OK);
    assert_int_equal(a, 1);
    assert_int_equal(store_crl_number_next(g.st, &b, &diag), VTPMCA_OK);
    assert_int_equal(b, 2);
    /* The counter and the records survive a reopen. */
    store_close(g.st);
    assert_int_equal(store_open(g.db, &g.st, &diag), VTPMCA_OK);
    assert_int_equal(store_crl_number_next(g.st, &a, &diag), VTPMCA_OK);
    assert_int_equal(a, 3);
    store_cert *items = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(g.st, "vm-list", NULL, 10, &items, &n, &diag), VTPMCA_OK);
    assert_int_equal(n, 3);
    free(items);
    assert_int_equal(store_crl_number_next(NULL, &a, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_crl_number_next(g.st, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
}

enum { THREADS = 4, PER_THREAD = 25 };

struct number_worker {
    store *st;
    uint64_t numbers[PER_THREAD];
    vtpmca_err err;
};

static void *take_numbers(void *arg)
{
    struct number_worker *w = arg;
    for (int i = 0; i < PER_THREAD && w->err == VTPMCA_OK; i++)
        w->err = store_crl_number_next(w->st, &w->numbers[i], NULL);
    return NULL;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_crl_numbers_concurrent(void **state)
{
    (void)state;
    uint64_t start = 0;
    assert_int_equal(store_crl_number_next(g.st, &start, NULL), VTPMCA_OK);
    /* Two handles on the same file, like two processes, plus threads on each. */
    store *second = NULL;
    assert_int_equal(store_open(g.db, &second, NULL), VTPMCA_OK);
    struct number_worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&workers[t], 0, sizeof(workers[t]));
        workers[t].st = t % 2 == 0 ? g.st : second;
        assert_int_equal(pthread_create(&threads[t], NULL, take_numbers, &workers[t]), 0);
    }
    uint64_t all[THREADS * PER_THREAD];
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].err, VTPMCA_OK);
        /* Each thread sees its own numbers strictly increase. */
        for (int i = 1; i < PER_THREAD; i++)
            assert_true(workers[t].numbers[i] > workers[t].numbers[i - 1]);
        memcpy(&all[t * PER_THREAD], workers[t].numbers, sizeof(workers[t].numbers));
    }
    store_close(second);
    qsort(all, THREADS * PER_THREAD, sizeof(all[0]), compare_u64);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        assert_int_equal(all[i], start + 1 + (uint64_t)i); /* no gaps, no repeats */
}

static void expect_put_refused(const store_cert *c, vtpmca_err expected, const char *part)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_cert_put(g.st, c, &diag);
    if (err != expected)
        fail_msg("put: got %d (%s), expected %d", err, diag.msg, expected);
    if (part != NULL && strstr(diag.msg, part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, part);
    /* Nothing was stored under that serial (when the serial itself was valid). */
    store_cert got;
    vtpmca_err get_err = store_cert_get(g.st, c->serial, &got, NULL);
    assert_true(get_err == VTPMCA_ERR_NOT_FOUND || get_err == VTPMCA_ERR_INVALID_ARG);
}

static void test_put_refusals(void **state)
{
    (void)state;
    assert_int_equal(store_cert_put(NULL, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    store_cert base = record("vm-bad", STORE_CERT_EK);
    assert_int_equal(store_cert_put(g.st, NULL, NULL), VTPMCA_ERR_INVALID_ARG);

    const char *bad_serials[] = {"", "4", "ABCD", "00ab", "4g12", "4a1"};
    for (size_t i = 0; i < sizeof(bad_serials) / sizeof(bad_serials[0]); i++) {
        store_cert c = base;
        snprintf(c.serial, sizeof(c.serial), "%s", bad_serials[i]);
        expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "serial");
    }
    store_cert c = base;
    memset(c.key_name, 'a', sizeof(c.key_name)); /* not NUL-terminated */
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "NUL-terminated");
    c = base;
    snprintf(c.instance_id, sizeof(c.instance_id), "bad id");
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "instance");
    c = base;
    c.instance_id[0] = '\0';
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "instance");
    const char *bad_names[] = {"", "00", "000B1234", "000b123", "xyz0"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        c = base;
        snprintf(c.key_name, sizeof(c.key_name), "%s", bad_names[i]);
        expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "key name");
    }
    c = base;
    c.kind = (store_cert_kind)5;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "kind");
    c = base;
    c.format = (store_cert_format)5;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "format");
    c = base;
    c.not_after = c.not_before - 1;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "notAfter");
    c = base;
    c.status = STORE_CERT_REVOKED;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "store_cert_revoke");
    c = base;
    c.revoked_at = 5;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "store_cert_revoke");
    c = base;
    snprintf(c.reason, sizeof(c.reason), "superseded");
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "store_cert_revoke");
    c = base;
    c.der = NULL;
    c.der_len = 0;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "DER missing");
    c = base;
    c.der_len = 0;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "DER missing");
    c = base;
    c.c509 = (uint8_t *)C509;
    c.c509_len = sizeof(C509);
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "no C509");
    c = base;
    c.format = STORE_CERT_C509;
    expect_put_refused(&c, VTPMCA_ERR_INVALID_ARG, "C509 missing");
    c = base;
    c.der_len = STORE_CERT_BLOB_MAX + 1;
    expect_put_refused(&c, VTPMCA_ERR_LIMIT, "limit");
}

static void test_other_refusals(void **state)
{
    (void)state;
    store_cert c = record("vm-args", STORE_CERT_EK);
    put_ok(&c);
    vtpmca_diag diag = {{0}};
    store_cert got;
    assert_int_equal(store_cert_get(NULL, c.serial, &got, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_get(g.st, c.serial, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_get(g.st, NULL, &got, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_get(g.st, "XYZ", &got, &diag), VTPMCA_ERR_INVALID_ARG);
    /* 21 bytes: longer than RFC 5280 allows. */
    assert_int_equal(
        store_cert_get(g.st, "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a", &got, &diag),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_latest(g.st, "vm args", STORE_CERT_EK, &got, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_latest(g.st, "vm-args", (store_cert_kind)7, &got, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    store_cert *items = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(g.st, NULL, NULL, 0, &items, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_list(g.st, NULL, NULL, STORE_LIST_MAX + 1, &items, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_list(g.st, "bad id", NULL, 5, &items, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_list(g.st, NULL, "0g", 5, &items, &n, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_list(g.st, NULL, NULL, 5, NULL, &n, &diag), VTPMCA_ERR_INVALID_ARG);

    /* Reasons: 1..31 letters; nothing changes on refusal. */
    const char *bad_reasons[] = {"", "key compromise", "reason1", "superseded;",
                                 "abcdefghijklmnopqrstuvwxyzabcdef"};
    for (size_t i = 0; i < sizeof(bad_reasons) / sizeof(bad_reasons[0]); i++)
        assert_int_equal(store_cert_revoke(g.st, c.serial, 0, bad_reasons[i], &diag),
                         VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_revoke(g.st, c.serial, 0, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_revoke(g.st, c.serial, -1, "superseded", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_revoke(g.st, "00aa", 0, "superseded", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_revoke(NULL, c.serial, 0, "superseded", &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_get(g.st, c.serial, &got, &diag), VTPMCA_OK);
    assert_int_equal(got.status, STORE_CERT_ISSUED);
    store_cert_free_fields(&got);

    store_cert_revocation *revs = NULL;
    assert_int_equal(store_cert_revocations(g.st, NULL, &n, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_revocations(NULL, &revs, &n, &diag), VTPMCA_ERR_INVALID_ARG);
}

static void test_names(void **state)
{
    (void)state;
    store_cert_kind kind;
    store_cert_format format;
    assert_string_equal(store_cert_kind_name(STORE_CERT_EK), "ek");
    assert_string_equal(store_cert_kind_name(STORE_CERT_IAK), "iak");
    assert_null(store_cert_kind_name((store_cert_kind)2));
    assert_string_equal(store_cert_format_name(STORE_CERT_X509), "x509");
    assert_string_equal(store_cert_format_name(STORE_CERT_C509), "c509");
    assert_null(store_cert_format_name((store_cert_format)-1));
    assert_string_equal(store_cert_status_name(STORE_CERT_ISSUED), "issued");
    assert_string_equal(store_cert_status_name(STORE_CERT_REVOKED), "revoked");
    assert_null(store_cert_status_name((store_cert_status)9));
    assert_int_equal(store_cert_kind_parse("iak", &kind), VTPMCA_OK);
    assert_int_equal(kind, STORE_CERT_IAK);
    assert_int_equal(store_cert_kind_parse("EK", &kind), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_kind_parse(NULL, &kind), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_cert_format_parse("c509", &format), VTPMCA_OK);
    assert_int_equal(format, STORE_CERT_C509);
    assert_int_equal(store_cert_format_parse("pem", &format), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),         cmocka_unit_test(test_duplicate_and_not_found),
        cmocka_unit_test(test_latest_and_list), cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_crl_numbers),     cmocka_unit_test(test_crl_numbers_concurrent),
        cmocka_unit_test(test_put_refusals),    cmocka_unit_test(test_other_refusals),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
