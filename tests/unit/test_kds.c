/* Unit tests for attest/kds.c against the loopback stand-in KDS (tests/support). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "../support/kds_standin.h"
#include "../support/vtpmcad_runner.h"
#include "vtpmca/fileio.h"
#include "vtpmca/kds.h"

#define GENUINE_VCEK VTPMCA_SHARED_DIR "/testdata/snp/milan-v2-vcek.der"

typedef struct {
    kds_standin *standin;
    uint8_t *vcek;
    size_t vcek_len;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL || kds_standin_start(&fx->standin) != VTPMCA_OK)
        return -1;
    if (vt_file_read(GENUINE_VCEK, 65536, &fx->vcek, &fx->vcek_len, NULL) != VTPMCA_OK)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    kds_standin_stop(fx->standin);
    free(fx->vcek);
    free(fx);
    return 0;
}

static void fill_chip(uint8_t chip[64], uint8_t first)
{
    for (int i = 0; i < 64; i++)
        chip[i] = (uint8_t)(first + i);
}

static kds_client *new_client(const fixture *fx, long timeout_ms, double rate, unsigned burst,
                              long negative_ttl_s)
{
    kds_config config = {.base_url = kds_standin_base_url(fx->standin),
                         .timeout_ms = timeout_ms,
                         .rate_per_sec = rate,
                         .burst = burst,
                         .negative_ttl_s = negative_ttl_s};
    kds_client *kds = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_OK);
    assert_non_null(kds);
    return kds;
}

static void test_url_milan_genoa(void **state)
{
    (void)state;
    uint8_t chip[64];
    fill_chip(chip, 0);
    snp_tcb tcb = {.fmc = 9, .bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    char *url = NULL;
    assert_int_equal(kds_vcek_url(NULL, SNP_PRODUCT_MILAN, chip, &tcb, &url), VTPMCA_OK);
    assert_string_equal(url, "/vcek/v1/Milan/"
                             "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                             "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                             "?blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115");
    free(url);

    /* With a base URL (a trailing slash is not doubled). */
    kds_config config = {.base_url = "https://kdsintf.amd.com/"};
    tcb = (snp_tcb){.bootloader = 7, .tee = 0, .snp = 14, .microcode = 72};
    fill_chip(chip, 0xc0);
    assert_int_equal(kds_vcek_url(&config, SNP_PRODUCT_GENOA, chip, &tcb, &url), VTPMCA_OK);
    assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Genoa/"
                             "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                             "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
                             "?blSPL=07&teeSPL=00&snpSPL=14&ucodeSPL=72");
    free(url);
}

static void test_url_turin(void **state)
{
    (void)state;
    uint8_t chip[64];
    fill_chip(chip, 0xa0);
    snp_tcb tcb = {.fmc = 1, .bootloader = 2, .tee = 3, .snp = 4, .microcode = 210};
    kds_config config = {.base_url = "https://kdsintf.amd.com"};
    char *url = NULL;
    /* Turin: the 8-byte hwid and fmcSPL first, as AMD's KDS specification lists them. */
    assert_int_equal(kds_vcek_url(&config, SNP_PRODUCT_TURIN, chip, &tcb, &url), VTPMCA_OK);
    assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Turin/a0a1a2a3a4a5a6a7"
                             "?fmcSPL=01&blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=210");
    free(url);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t chip[64] = {0};
    snp_tcb tcb = {0};
    char *url = (char *)"untouched";
    assert_int_equal(kds_vcek_url(NULL, SNP_PRODUCT_UNKNOWN, chip, &tcb, &url),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(url);
    assert_int_equal(kds_vcek_url(NULL, SNP_PRODUCT_MILAN, chip, NULL, &url),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kds_vcek_url(NULL, SNP_PRODUCT_MILAN, NULL, &tcb, &url),
                     VTPMCA_ERR_INVALID_ARG);

    kds_client *kds = NULL;
    vtpmca_diag diag = {{0}};
    kds_config config = {.base_url = NULL};
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_ERR_INVALID_ARG);
    config.base_url = "file:///etc";
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "http"));
    config.base_url = "ftp://kds.example";
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_ERR_INVALID_ARG);
    config.base_url = "https://kds.example";
    config.timeout_ms = -1;
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(kds);
    assert_int_equal(kds_client_new(NULL, &kds, &diag), VTPMCA_ERR_INVALID_ARG);

    config.timeout_ms = 0;
    assert_int_equal(kds_client_new(&config, &kds, &diag), VTPMCA_OK);
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_UNKNOWN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, NULL, &der_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.requests, 0);
    kds_client_free(kds);
    kds_client_free(NULL);
}

static void test_fetch_ok_and_cached(void **state)
{
    fixture *fx = *state;
    uint8_t chip[64];
    fill_chip(chip, 1);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip, &tcb, fx->vcek, fx->vcek_len),
        VTPMCA_OK);
    kds_client *kds = new_client(fx, 2000, 10, 4, 0);
    unsigned before = kds_standin_request_count(fx->standin);

    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(der_len, fx->vcek_len);
    assert_memory_equal(der, fx->vcek, der_len);
    free(der);

    /* The stand-in saw exactly the URL we document. */
    char *path = NULL;
    char seen[1024];
    assert_int_equal(kds_vcek_url(NULL, SNP_PRODUCT_MILAN, chip, &tcb, &path), VTPMCA_OK);
    kds_standin_last_uri(fx->standin, seen, sizeof(seen));
    assert_string_equal(seen, path);
    free(path);

    /* Same request again: answered from memory, the server is not asked. */
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    assert_memory_equal(der, fx->vcek, der_len);
    free(der);
    assert_int_equal(kds_standin_request_count(fx->standin), before + 1);

    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.requests, 1);
    assert_int_equal(stats.cache_hits, 1);
    assert_int_equal(stats.failures, 0);
    kds_client_free(kds);
}

static void test_not_found_cached(void **state)
{
    fixture *fx = *state;
    uint8_t chip[64];
    fill_chip(chip, 2);
    snp_tcb tcb = {.bootloader = 1, .tee = 1, .snp = 1, .microcode = 1};
    kds_client *kds = new_client(fx, 2000, 10, 4, 1);
    unsigned before = kds_standin_request_count(fx->standin);
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_GENOA, chip, &tcb, &der, &der_len, &diag),
                         VTPMCA_ERR_NOT_FOUND);
        assert_null(der);
    }
    assert_int_equal(kds_standin_request_count(fx->standin), before + 1);

    /* After negative_ttl_s the question is asked again. */
    struct timespec pause = {.tv_sec = 1, .tv_nsec = 100000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_GENOA, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(kds_standin_request_count(fx->standin), before + 2);

    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.requests, 2);
    assert_int_equal(stats.cache_hits, 1);
    assert_int_equal(stats.failures, 0);
    kds_client_free(kds);
}

static void test_server_errors(void **state)
{
    fixture *fx = *state;
    uint8_t chip[64];
    fill_chip(chip, 1);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip, &tcb, fx->vcek, fx->vcek_len),
        VTPMCA_OK);
    kds_client *kds = new_client(fx, 2000, 10, 8, 0);
    unsigned before = kds_standin_request_count(fx->standin);
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};

    kds_standin_set_status(fx->standin, 500);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "500"));
    kds_standin_set_status(fx->standin, 429);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "429"));
    kds_standin_set_status(fx->standin, 0);
    assert_null(der);

    /* Failures are not remembered: the next call reaches the (recovered) server. */
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    free(der);
    assert_int_equal(kds_standin_request_count(fx->standin), before + 3);
    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.failures, 2);
    kds_client_free(kds);
}

static void test_timeout(void **state)
{
    fixture *fx = *state;
    uint8_t chip[64];
    fill_chip(chip, 1);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip, &tcb, fx->vcek, fx->vcek_len),
        VTPMCA_OK);
    kds_client *kds = new_client(fx, 300, 10, 4, 0);
    kds_standin_set_delay_ms(fx->standin, 2000);
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    double start = runner_now_s();
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NETWORK);
    double elapsed = runner_now_s() - start;
    kds_standin_set_delay_ms(fx->standin, 0);
    assert_true(elapsed >= 0.25);
    assert_true(elapsed < 1.5);
    assert_non_null(strstr(diag.msg, "timed out"));
    assert_null(der);
    kds_client_free(kds);
}

static void test_rate_limit(void **state)
{
    fixture *fx = *state;
    uint8_t chip_a[64], chip_b[64], chip_c[64];
    fill_chip(chip_a, 10);
    fill_chip(chip_b, 20);
    fill_chip(chip_c, 30);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip_a, &tcb, fx->vcek, fx->vcek_len),
        VTPMCA_OK);
    kds_client *kds = new_client(fx, 2000, 0.01, 2, 0);
    unsigned before = kds_standin_request_count(fx->standin);
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};

    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_a, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    free(der);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_b, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    /* Bucket empty: a third distinct request is refused at once, without waiting. */
    double start = runner_now_s();
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_c, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_LIMIT);
    assert_true(runner_now_s() - start < 0.1);
    assert_null(der);
    assert_int_equal(kds_standin_request_count(fx->standin), before + 2);

    /* Remembered answers need no token. */
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_a, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    free(der);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_b, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);

    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.requests, 2);
    assert_int_equal(stats.rate_limited, 1);
    assert_int_equal(stats.cache_hits, 2);
    kds_client_free(kds);
}

static void test_response_size_cap(void **state)
{
    fixture *fx = *state;
    uint8_t chip_big[64], chip_edge[64];
    fill_chip(chip_big, 40);
    fill_chip(chip_edge, 50);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    uint8_t *big = malloc(20000);
    assert_non_null(big);
    memset(big, 0x30, 20000);
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip_big, &tcb, big, 20000),
        VTPMCA_OK);
    /* Exactly at the cap is still accepted. */
    assert_int_equal(
        kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip_edge, &tcb, big, 16384),
        VTPMCA_OK);
    kds_client *kds = new_client(fx, 2000, 10, 4, 0);
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_big, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "larger than 16384"));
    assert_null(der);
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip_edge, &tcb, &der, &der_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(der_len, 16384);
    free(der);
    free(big);
    kds_client_free(kds);
}

static void test_connection_refused(void **state)
{
    (void)state;
    kds_standin *gone = NULL;
    assert_int_equal(kds_standin_start(&gone), VTPMCA_OK);
    char base[64];
    snprintf(base, sizeof(base), "%s", kds_standin_base_url(gone));
    kds_standin_stop(gone);

    kds_config config = {.base_url = base, .timeout_ms = 1000};
    kds_client *kds = NULL;
    assert_int_equal(kds_client_new(&config, &kds, NULL), VTPMCA_OK);
    uint8_t chip[64] = {0};
    snp_tcb tcb = {0};
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kds_fetch_vcek(kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_true(strlen(diag.msg) > 0);
    kds_client_free(kds);
}

typedef struct {
    kds_client *kds;
    uint8_t first;
    const uint8_t *expect;
    size_t expect_len;
    int failures;
} worker_args;

static void *fetch_worker(void *arg)
{
    worker_args *args = arg;
    uint8_t chip[64];
    fill_chip(chip, args->first);
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    for (int i = 0; i < 20; i++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        if (kds_fetch_vcek(args->kds, SNP_PRODUCT_MILAN, chip, &tcb, &der, &der_len, NULL) !=
                VTPMCA_OK ||
            der_len != args->expect_len || memcmp(der, args->expect, der_len) != 0)
            args->failures++;
        free(der);
    }
    return NULL;
}

static void test_concurrent_fetches(void **state)
{
    fixture *fx = *state;
    snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    kds_client *kds = new_client(fx, 2000, 100, 16, 0);
    pthread_t threads[4];
    worker_args args[4];
    for (int t = 0; t < 4; t++) {
        uint8_t chip[64];
        args[t] = (worker_args){kds, (uint8_t)(100 + t), fx->vcek, fx->vcek_len, 0};
        fill_chip(chip, args[t].first);
        assert_int_equal(kds_standin_put_vcek(fx->standin, SNP_PRODUCT_MILAN, chip, &tcb, fx->vcek,
                                              fx->vcek_len),
                         VTPMCA_OK);
    }
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, fetch_worker, &args[t]), 0);
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(args[t].failures, 0);
    }
    kds_stats stats;
    kds_client_stats(kds, &stats);
    assert_int_equal(stats.requests + stats.cache_hits, 80);
    assert_int_equal(stats.requests, 4);
    kds_client_free(kds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_milan_genoa),
        cmocka_unit_test(test_url_turin),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_fetch_ok_and_cached),
        cmocka_unit_test(test_not_found_cached),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_response_size_cap),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_concurrent_fetches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
