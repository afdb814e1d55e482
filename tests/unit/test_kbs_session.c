/* Unit tests for attest/kbs_session.c: ids and nonces, the attest life cycle (single use,
 * retry after failure, one attempt at a time), expiry on an injected clock, the capacity
 * bound and eviction order under a flood of 100k creations, and concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtpmca/kbs_session.h"

static struct {
    EVP_PKEY *tee;
    snp_evidence evidence;
    uint8_t thumbprint[KBS_TEE_THUMBPRINT_LEN];
} g;

typedef struct {
    uint64_t now_ms;
} fake_clock;

static uint64_t read_fake_clock(void *ctx)
{
    return ((fake_clock *)ctx)->now_ms;
}

static int group_setup(void **state)
{
    (void)state;
    g.tee = EVP_EC_gen("P-256");
    memset(&g.evidence, 0, sizeof(g.evidence));
    memset(g.evidence.report.measurement, 0x5a, sizeof(g.evidence.report.measurement));
    g.evidence.product = SNP_PRODUCT_GENOA;
    memset(g.thumbprint, 0xcd, sizeof(g.thumbprint));
    return g.tee != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g.tee);
    return 0;
}

static kbs_session_table *new_table(unsigned capacity, fake_clock *clock)
{
    kbs_session_config config = {.capacity = capacity,
                                 .auth_ttl_s = 60,
                                 .attested_ttl_s = 300,
                                 .clock = clock != NULL ? read_fake_clock : NULL,
                                 .clock_ctx = clock};
    kbs_session_table *table = NULL;
    assert_int_equal(kbs_session_table_new(&config, &table, NULL), VTPMCA_OK);
    return table;
}

static kbs_attestation attestation(void)
{
    kbs_attestation a = {.evidence = &g.evidence,
                         .tee_key = g.tee,
                         .tee_thumbprint = g.thumbprint,
                         .flavour = REPORT_DATA_FLAVOUR_TRUSTEE};
    return a;
}

/* create + begin + finish. */
static void attest(kbs_session_table *table, const char *id)
{
    uint8_t nonce[KBS_NONCE_BYTES];
    assert_int_equal(kbs_session_begin_attest(table, id, nonce, NULL), VTPMCA_OK);
    kbs_attestation a = attestation();
    assert_int_equal(kbs_session_finish_attest(table, id, &a, NULL, NULL), VTPMCA_OK);
}

static kbs_session_status begin_status(kbs_session_table *table, const char *id)
{
    uint8_t nonce[KBS_NONCE_BYTES];
    kbs_session_status status = KBS_SESSION_OK;
    kbs_session_begin_attest(table, id, nonce, &status);
    return status;
}

static kbs_session_status get_status(kbs_session_table *table, const char *id)
{
    kbs_session_view view;
    kbs_session_status status = KBS_SESSION_OK;
    if (kbs_session_get_attested(table, id, &view, &status) == VTPMCA_OK)
        kbs_session_view_clear(&view);
    return status;
}

/* ---- tests ---- */

static void test_ids_and_nonces(void **state)
{
    (void)state;
    fake_clock clock = {1000};
    kbs_session_table *table = new_table(64, &clock);
    kbs_session_info a, b;
    assert_int_equal(kbs_session_create(table, &a, NULL), VTPMCA_OK);
    assert_int_equal(kbs_session_create(table, &b, NULL), VTPMCA_OK);
    assert_int_equal(strlen(a.id), KBS_SESSION_ID_HEX);
    assert_int_equal(strspn(a.id, "0123456789abcdef"), KBS_SESSION_ID_HEX);
    assert_string_not_equal(a.id, b.id);
    assert_memory_not_equal(a.nonce, b.nonce, KBS_NONCE_BYTES);
    assert_int_equal(a.expires_ms, 1000 + 60000);
    /* begin_attest hands out the same nonce create did. */
    uint8_t nonce[KBS_NONCE_BYTES];
    assert_int_equal(kbs_session_begin_attest(table, a.id, nonce, NULL), VTPMCA_OK);
    assert_memory_equal(nonce, a.nonce, KBS_NONCE_BYTES);
    kbs_session_abort_attest(table, a.id);

    /* Ids that were never issued, or are not 32 lower-case hex digits, name nothing. */
    char upper[KBS_SESSION_ID_HEX + 1];
    snprintf(upper, sizeof(upper), "%s", b.id);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    const char *bad[] = {"00000000000000000000000000000000", upper, "abc", "", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bad[i] == NULL || strcmp(bad[i], b.id) != 0) {
            assert_int_equal(begin_status(table, bad[i]), KBS_SESSION_UNKNOWN);
            assert_int_equal(get_status(table, bad[i]), KBS_SESSION_UNKNOWN);
        }
    }
    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_int_equal(stats.live, 2);
    assert_int_equal(stats.created, 2);
    assert_string_equal(kbs_session_status_name(KBS_SESSION_SPENT), "nonce_spent");
    kbs_session_table_free(table);
}

static void test_attest_life_cycle(void **state)
{
    (void)state;
    fake_clock clock = {5000};
    kbs_session_table *table = new_table(64, &clock);
    kbs_session_info info;
    assert_int_equal(kbs_session_create(table, &info, NULL), VTPMCA_OK);
    /* Not attested yet: no resource. */
    assert_int_equal(get_status(table, info.id), KBS_SESSION_NOT_ATTESTED);

    /* One attempt at a time; a failed one leaves the session usable. */
    uint8_t nonce[KBS_NONCE_BYTES];
    kbs_session_status status;
    assert_int_equal(kbs_session_begin_attest(table, info.id, nonce, &status), VTPMCA_OK);
    assert_int_equal(kbs_session_begin_attest(table, info.id, nonce, &status), VTPMCA_ERR_CONFLICT);
    assert_int_equal(status, KBS_SESSION_BUSY);
    assert_int_equal(get_status(table, info.id), KBS_SESSION_NOT_ATTESTED);
    kbs_session_abort_attest(table, info.id);
    assert_int_equal(kbs_session_begin_attest(table, info.id, nonce, &status), VTPMCA_OK);

    kbs_attestation a = attestation();
    uint64_t expires = 0;
    clock.now_ms += 1000;
    assert_int_equal(kbs_session_finish_attest(table, info.id, &a, &expires, NULL), VTPMCA_OK);
    assert_int_equal(expires, 6000 + 300000);
    /* Finishing twice is not possible: no attempt is running. */
    assert_int_equal(kbs_session_finish_attest(table, info.id, &a, NULL, NULL),
                     VTPMCA_ERR_NOT_FOUND);

    /* The nonce is spent: a second attest is refused. */
    assert_int_equal(kbs_session_begin_attest(table, info.id, nonce, &status), VTPMCA_ERR_CONFLICT);
    assert_int_equal(status, KBS_SESSION_SPENT);

    kbs_session_view view;
    assert_int_equal(kbs_session_get_attested(table, info.id, &view, &status), VTPMCA_OK);
    assert_string_equal(view.id, info.id);
    assert_memory_equal(view.nonce, info.nonce, KBS_NONCE_BYTES);
    assert_memory_equal(view.evidence.report.measurement, g.evidence.report.measurement, 48);
    assert_int_equal(view.evidence.product, SNP_PRODUCT_GENOA);
    assert_int_equal(EVP_PKEY_eq(view.tee_key, g.tee), 1);
    assert_memory_equal(view.tee_thumbprint, g.thumbprint, KBS_TEE_THUMBPRINT_LEN);
    assert_int_equal(view.flavour, REPORT_DATA_FLAVOUR_TRUSTEE);
    assert_int_equal(view.expires_ms, 306000);
    /* Given no point, the table encoded the EC key itself. */
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    assert_int_equal(jwe_ec_point_encode(g.tee, point, &point_len, NULL), VTPMCA_OK);
    assert_int_equal(view.tee_point_len, point_len);
    assert_memory_equal(view.tee_point, point, point_len);
    kbs_session_view_clear(&view);
    assert_null(view.tee_key);

    /* A point given with the attestation is what the view returns. */
    assert_int_equal(kbs_session_create(table, &info, NULL), VTPMCA_OK);
    assert_int_equal(kbs_session_begin_attest(table, info.id, nonce, &status), VTPMCA_OK);
    kbs_attestation with_point = attestation();
    with_point.tee_point = point;
    with_point.tee_point_len = point_len;
    with_point.tee_point_len = JWE_EC_POINT_MAX + 1;
    assert_int_equal(kbs_session_finish_attest(table, info.id, &with_point, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    with_point.tee_point_len = point_len;
    assert_int_equal(kbs_session_finish_attest(table, info.id, &with_point, NULL, NULL), VTPMCA_OK);
    assert_int_equal(kbs_session_get_attested(table, info.id, &view, &status), VTPMCA_OK);
    assert_int_equal(view.tee_point_len, point_len);
    assert_memory_equal(view.tee_point, point, point_len);
    kbs_session_view_clear(&view);

    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_int_equal(stats.attested, 2);
    /* Arguments. */
    assert_int_equal(kbs_session_finish_attest(table, info.id, NULL, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_session_create(NULL, &info, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_session_begin_attest(table, info.id, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    kbs_session_table_free(table);
}

static void test_expiry(void **state)
{
    (void)state;
    fake_clock clock = {0};
    kbs_session_table *table = new_table(64, &clock);
    kbs_session_info pending, attested;
    assert_int_equal(kbs_session_create(table, &pending, NULL), VTPMCA_OK);
    assert_int_equal(kbs_session_create(table, &attested, NULL), VTPMCA_OK);
    attest(table, attested.id);

    clock.now_ms = 59999; /* one millisecond before the auth TTL */
    assert_int_equal(begin_status(table, pending.id), KBS_SESSION_OK);
    kbs_session_abort_attest(table, pending.id);
    clock.now_ms = 60000;
    assert_int_equal(begin_status(table, pending.id), KBS_SESSION_EXPIRED);
    /* Expired sessions are removed: next time it is simply unknown. */
    assert_int_equal(begin_status(table, pending.id), KBS_SESSION_UNKNOWN);

    /* The attested session lives 300 s from its attestation. */
    clock.now_ms = 299999;
    assert_int_equal(get_status(table, attested.id), KBS_SESSION_OK);
    clock.now_ms = 300000;
    assert_int_equal(get_status(table, attested.id), KBS_SESSION_EXPIRED);
    assert_int_equal(get_status(table, attested.id), KBS_SESSION_UNKNOWN);

    /* An attempt that started in time may finish after the auth TTL. */
    kbs_session_info slow;
    assert_int_equal(kbs_session_create(table, &slow, NULL), VTPMCA_OK);
    uint8_t nonce[KBS_NONCE_BYTES];
    assert_int_equal(kbs_session_begin_attest(table, slow.id, nonce, NULL), VTPMCA_OK);
    clock.now_ms += 120000;
    kbs_session_info other;
    assert_int_equal(kbs_session_create(table, &other, NULL), VTPMCA_OK); /* purges heads */
    kbs_attestation a = attestation();
    assert_int_equal(kbs_session_finish_attest(table, slow.id, &a, NULL, NULL), VTPMCA_OK);

    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_int_equal(stats.evicted_expired, 2);
    assert_int_equal(stats.live, 2);
    kbs_session_table_free(table);
}

/* Resident set size in KiB. */
static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 100,000 auth calls against a 256-session table: the table never holds more, evicts the
 * oldest un-attested sessions, never an attested one, and memory does not grow. */
static void test_flood_is_bounded(void **state)
{
    (void)state;
    fake_clock clock = {0};
    kbs_session_table *table = new_table(256, &clock);
    kbs_session_info keep;
    assert_int_equal(kbs_session_create(table, &keep, NULL), VTPMCA_OK);
    attest(table, keep.id);
    kbs_session_info info;
    for (int i = 0; i < 1000; i++) /* warm up: fill the table once */
        assert_int_equal(kbs_session_create(table, &info, NULL), VTPMCA_OK);
    long before = rss_kib();
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(kbs_session_create(table, &info, NULL), VTPMCA_OK);
        if (i % 1000 == 0)
            clock.now_ms += 10; /* time moves, but no TTL passes */
    }
    long after = rss_kib();
    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_true(stats.live <= 256);
    assert_int_equal(stats.created, 101001);
    assert_int_equal(stats.evicted_unattested, 101001 - stats.live);
    assert_int_equal(stats.evicted_expired, 0);
    /* The attested session survived the flood; the newest one is there too. */
    assert_int_equal(get_status(table, keep.id), KBS_SESSION_OK);
    assert_int_equal(begin_status(table, info.id), KBS_SESSION_OK);
    if (after - before > 1024)
        fail_msg("resident memory grew by %ld KiB during the flood", after - before);
    kbs_session_table_free(table);
}

/* Eviction order inside one shard: the oldest un-attested first; attested and in-progress
 * sessions are kept, and a shard holding only those refuses new sessions. */
static void test_eviction_order(void **state)
{
    (void)state;
    fake_clock clock = {0};
    /* Capacity 1: one shard with one slot. */
    kbs_session_table *table = new_table(1, &clock);
    kbs_session_info a, b, c;
    assert_int_equal(kbs_session_create(table, &a, NULL), VTPMCA_OK);
    assert_int_equal(kbs_session_create(table, &b, NULL), VTPMCA_OK); /* evicts a */
    assert_int_equal(begin_status(table, a.id), KBS_SESSION_UNKNOWN);
    /* b is being attested: not evictable. */
    uint8_t nonce[KBS_NONCE_BYTES];
    assert_int_equal(kbs_session_begin_attest(table, b.id, nonce, NULL), VTPMCA_OK);
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_session_create(table, &c, &diag), VTPMCA_ERR_LIMIT);
    kbs_attestation att = attestation();
    assert_int_equal(kbs_session_finish_attest(table, b.id, &att, NULL, NULL), VTPMCA_OK);
    /* b is attested: still not evictable. */
    assert_int_equal(kbs_session_create(table, &c, &diag), VTPMCA_ERR_LIMIT);
    /* Once it expires, its slot is reused. */
    clock.now_ms = 300000;
    assert_int_equal(kbs_session_create(table, &c, NULL), VTPMCA_OK);
    assert_int_equal(get_status(table, b.id), KBS_SESSION_UNKNOWN);
    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_int_equal(stats.refused_full, 2);
    assert_int_equal(stats.evicted_expired, 1);
    assert_int_equal(stats.evicted_unattested, 1);
    kbs_session_table_free(table);

    /* Capacity 32: 16 shards of 2 slots. The third session of a shard evicts its first. */
    table = new_table(32, &clock);
    kbs_session_info by_shard[16][3];
    int count[16] = {0};
    int full = -1;
    while (full < 0) {
        kbs_session_info s;
        assert_int_equal(kbs_session_create(table, &s, NULL), VTPMCA_OK);
        unsigned shard = (unsigned)strtoul((char[]){s.id[0], s.id[1], 0}, NULL, 16) % 16;
        by_shard[shard][count[shard]++] = s;
        if (count[shard] == 3)
            full = (int)shard;
    }
    assert_int_equal(begin_status(table, by_shard[full][0].id), KBS_SESSION_UNKNOWN);
    assert_int_equal(begin_status(table, by_shard[full][1].id), KBS_SESSION_OK);
    assert_int_equal(begin_status(table, by_shard[full][2].id), KBS_SESSION_OK);
    kbs_session_table_free(table);
}

static void test_config(void **state)
{
    (void)state;
    kbs_session_table *table = NULL;
    assert_int_equal(kbs_session_table_new(NULL, &table, NULL), VTPMCA_OK);
    kbs_session_config config;
    kbs_session_table_config(table, &config);
    assert_int_equal(config.capacity, KBS_SESSION_DEFAULT_CAPACITY);
    assert_int_equal(config.auth_ttl_s, KBS_SESSION_DEFAULT_AUTH_TTL_S);
    assert_int_equal(config.attested_ttl_s, KBS_SESSION_DEFAULT_ATTESTED_TTL_S);
    /* The real monotonic clock moves forward. */
    uint64_t t0 = kbs_session_now_ms(table);
    usleep(20000);
    assert_true(kbs_session_now_ms(table) >= t0 + 10);
    kbs_session_table_free(table);
    kbs_session_config too_big = {.capacity = KBS_SESSION_MAX_CAPACITY + 1};
    assert_int_equal(kbs_session_table_new(&too_big, &table, NULL), VTPMCA_ERR_INVALID_ARG);
    kbs_session_config long_ttl = {.attested_ttl_s = KBS_SESSION_MAX_TTL_S + 1};
    assert_int_equal(kbs_session_table_new(&long_ttl, &table, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_session_table_new(NULL, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    kbs_session_table_free(NULL);
}

/* ---- concurrency ---- */

typedef struct {
    kbs_session_table *table;
    int iterations;
    int attested, aborted, spent_refused;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    /* The table is mostly full of attested sessions, so most creations are refused and a
     * thread the scheduler starves can lose every race for a freed slot: it goes on past
     * its iterations until it has seen the spent refusal once (each creation advances the
     * clock, so sessions expire and it gets a slot at the latest when it runs alone). */
    for (int i = 0; i < w->iterations || w->spent_refused == 0; i++) {
        kbs_session_info info;
        if (kbs_session_create(w->table, &info, NULL) != VTPMCA_OK)
            continue;
        uint8_t nonce[KBS_NONCE_BYTES];
        if (kbs_session_begin_attest(w->table, info.id, nonce, NULL) != VTPMCA_OK)
            continue; /* evicted by another thread's creation */
        if (memcmp(nonce, info.nonce, KBS_NONCE_BYTES) != 0)
            return "nonce mismatch";
        if (i % 3 == 0) {
            kbs_session_abort_attest(w->table, info.id);
            w->aborted++;
            continue;
        }
        kbs_attestation a = attestation();
        if (kbs_session_finish_attest(w->table, info.id, &a, NULL, NULL) != VTPMCA_OK)
            return "finish failed";
        w->attested++;
        kbs_session_view view;
        if (kbs_session_get_attested(w->table, info.id, &view, NULL) == VTPMCA_OK) {
            if (strcmp(view.id, info.id) != 0 || EVP_PKEY_eq(view.tee_key, g.tee) != 1)
                return "wrong view";
            kbs_session_view_clear(&view);
        }
        kbs_session_status status;
        if (kbs_session_begin_attest(w->table, info.id, nonce, &status) == VTPMCA_OK)
            return "second attest accepted";
        if (status == KBS_SESSION_SPENT)
            w->spent_refused++;
    }
    return NULL;
}

/* A clock that moves 100 ms on every reading, so sessions expire during the run. */
static atomic_uint_fast64_t ticking_now;

static uint64_t read_ticking_clock(void *ctx)
{
    (void)ctx;
    return atomic_fetch_add(&ticking_now, 100);
}

static void test_concurrent_use(void **state)
{
    (void)state;
    /* Small enough that threads evict each other's sessions all the time. */
    kbs_session_config config = {.capacity = 64, .clock = read_ticking_clock};
    kbs_session_table *table = NULL;
    assert_int_equal(kbs_session_table_new(&config, &table, NULL), VTPMCA_OK);
    enum { THREADS = 4 };
    worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker){.table = table, .iterations = 3000};
        assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    int attested = 0;
    for (int i = 0; i < THREADS; i++) {
        void *result = NULL;
        pthread_join(threads[i], &result);
        if (result != NULL)
            fail_msg("worker %d: %s", i, (const char *)result);
        attested += workers[i].attested;
        assert_true(workers[i].spent_refused > 0);
    }
    kbs_session_stats stats;
    kbs_session_get_stats(table, &stats);
    assert_true(stats.live <= 64);
    assert_true(stats.attested <= stats.live);
    assert_true(attested > 0);
    kbs_session_table_free(table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_nonces), cmocka_unit_test(test_attest_life_cycle),
        cmocka_unit_test(test_expiry),         cmocka_unit_test(test_flood_is_bounded),
        cmocka_unit_test(test_eviction_order), cmocka_unit_test(test_config),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
