/* Unit tests for attest/snp_verifier.c: the genuine Milan reports against the pinned AMD
 * roots, synthetic reports for every product from test roots (tools/lib/snp_testsigner),
 * the cache, the store and the KDS path (loopback stand-in), policies end to end, and
 * concurrent use with evictions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "../support/kds_standin.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_vcek.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

#define GENUINE_DIR VTPMCA_SHARED_DIR "/testdata/snp/"
#define AT_2024_06_01 ((time_t)1717200000)
#define AT_2035_01_01 ((time_t)2051222400)
#define HOUR ((time_t)3600)

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

/* Made once for the whole file: RSA key generation is the slow part. */
static struct {
    char tmp[64];
    char roots_dir[128];
    snp_test_root *roots[4];    /* indexed by snp_product */
    snp_test_root *other_milan; /* never trusted */
    snp_roots *trusted;         /* the three test roots only */
    snp_roots *builtin;         /* AMD's pinned roots only */
    blob genuine_report[2], genuine_vcek[2];
    unsigned db_counter;
} g;

static void read_blob(const char *path, blob *out)
{
    assert_int_equal(vt_file_read(path, 1 << 20, &out->data, &out->len, NULL), VTPMCA_OK);
}

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "verifier") != 0)
        return -1;
    snprintf(g.roots_dir, sizeof(g.roots_dir), "%s/roots", g.tmp);
    if (vt_mkdir_p(g.roots_dir, 0700, &diag) != VTPMCA_OK)
        return -1;
    const snp_product products[] = {SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN};
    for (int i = 0; i < 3; i++) {
        if (snp_test_root_new(products[i], 2048, &g.roots[products[i]], &diag) != VTPMCA_OK ||
            snp_test_root_save(g.roots[products[i]], g.roots_dir, &diag) != VTPMCA_OK) {
            fprintf(stderr, "test root: %s\n", diag.msg);
            return -1;
        }
    }
    if (snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &g.other_milan, &diag) != VTPMCA_OK)
        return -1;
    if (snp_roots_new_empty(&g.trusted) != VTPMCA_OK ||
        snp_roots_add_dir(g.trusted, g.roots_dir, &diag) != VTPMCA_OK ||
        snp_roots_new_builtin(&g.builtin, &diag) != VTPMCA_OK) {
        fprintf(stderr, "roots: %s\n", diag.msg);
        return -1;
    }
    read_blob(GENUINE_DIR "milan-v2-report.bin", &g.genuine_report[0]);
    read_blob(GENUINE_DIR "milan-v2-report-b.bin", &g.genuine_report[1]);
    read_blob(GENUINE_DIR "milan-v2-vcek.der", &g.genuine_vcek[0]);
    read_blob(GENUINE_DIR "milan-v2-vcek-b.der", &g.genuine_vcek[1]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++)
        snp_test_root_free(g.roots[i]);
    snp_test_root_free(g.other_milan);
    snp_roots_free(g.trusted);
    snp_roots_free(g.builtin);
    for (int i = 0; i < 2; i++) {
        free(g.genuine_report[i].data);
        free(g.genuine_vcek[i].data);
    }
    return ca_fixture_rmtree(g.tmp);
}

/* ---- helpers ---- */

static store *new_store(void)
{
    char path[160];
    snprintf(path, sizeof(path), "sqlite:%s/store-%u.db", g.tmp, g.db_counter++);
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(path, &st, &diag), VTPMCA_OK);
    return st;
}

static snp_verifier *new_verifier(const snp_roots *roots, store *st, kds_client *kds,
                                  unsigned cache_entries, snp_product default_product)
{
    snp_verifier_config config = {.roots = roots,
                                  .store = st,
                                  .kds = kds,
                                  .cache_entries = cache_entries,
                                  .default_product = default_product};
    snp_verifier *verifier = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_verifier_new(&config, &verifier, &diag), VTPMCA_OK);
    return verifier;
}

typedef struct {
    snp_test_root *root;
    snp_product product;
    uint32_t version;
    snp_signer kind;
    uint8_t cert_chip[64], report_chip[64];
    snp_tcb cert_tcb, report_tcb;
    time_t not_before, not_after;
    uint8_t measurement_seed;
} case_spec;

typedef struct {
    uint8_t report[SNP_REPORT_SIZE];
    uint8_t *der;
    size_t der_len;
    uint64_t reported_tcb;
    uint8_t chip[64];
} signed_case;

static snp_tcb default_tcb(snp_product product)
{
    if (product == SNP_PRODUCT_TURIN)
        return (snp_tcb){.fmc = 1, .bootloader = 2, .tee = 3, .snp = 4, .microcode = 210};
    return (snp_tcb){.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
}

static void make_chip(snp_product product, uint8_t seed, uint8_t chip[64])
{
    memset(chip, 0, 64);
    /* Turin chips have an 8-byte identifier; the rest of CHIP_ID is zero. */
    size_t len = product == SNP_PRODUCT_TURIN ? 8 : 64;
    for (size_t i = 0; i < len; i++)
        chip[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static case_spec spec_for(snp_product product, uint32_t version, snp_signer kind, uint8_t seed)
{
    case_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.root = g.roots[product];
    spec.product = product;
    spec.version = version;
    spec.kind = kind;
    make_chip(product, seed, spec.cert_chip);
    memcpy(spec.report_chip, spec.cert_chip, 64);
    spec.cert_tcb = spec.report_tcb = default_tcb(product);
    spec.measurement_seed = 0x11;
    return spec;
}

static void make_case(const case_spec *spec, signed_case *out)
{
    vtpmca_diag diag = {{0}};
    snp_test_cert_params params = {.kind = spec->kind,
                                   .tcb = spec->cert_tcb,
                                   .not_before = spec->not_before,
                                   .not_after = spec->not_after};
    memcpy(params.chip_id, spec->cert_chip, 64);
    EVP_PKEY *key = NULL;
    assert_int_equal(
        snp_test_issue_cert(spec->root, &params, &key, &out->der, &out->der_len, &diag), VTPMCA_OK);
    snp_report report;
    assert_int_equal(snp_test_report_defaults(&report, spec->product, spec->version,
                                              spec->report_chip, &spec->report_tcb),
                     VTPMCA_OK);
    if (spec->kind == SNP_SIGNER_VLEK)
        report.key_info = (uint32_t)SNP_SIGNER_VLEK << 2;
    memset(report.measurement, spec->measurement_seed, sizeof(report.measurement));
    memset(report.report_data, 0x5a, sizeof(report.report_data));
    assert_int_equal(snp_test_report_sign(&report, key, out->report, &diag), VTPMCA_OK);
    out->reported_tcb = report.reported_tcb;
    memcpy(out->chip, spec->report_chip, 64);
    EVP_PKEY_free(key);
}

static void free_case(signed_case *c)
{
    free(c->der);
    c->der = NULL;
}

static vtpmca_err verify(snp_verifier *verifier, const uint8_t *report, const uint8_t *cert,
                         size_t cert_len, time_t at, snp_evidence *evidence, vtpmca_diag *diag)
{
    return snp_verifier_verify(verifier, report, SNP_REPORT_SIZE, cert, cert_len, at, evidence,
                               diag);
}

static void import_vcek(store *st, snp_product product, snp_signer kind, const uint8_t chip[64],
                        uint64_t tcb, const uint8_t *der, size_t der_len)
{
    uint8_t zeros[64] = {0};
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        store_vcek_put(st, snp_product_name(product), kind == SNP_SIGNER_VLEK ? "vlek" : "vcek",
                       kind == SNP_SIGNER_VLEK ? zeros : chip, tcb, der, der_len, "import", &diag),
        VTPMCA_OK);
}

static uint64_t store_count(store *st)
{
    uint64_t n = 0;
    assert_int_equal(store_vcek_count(st, &n, NULL), VTPMCA_OK);
    return n;
}

/* ---- genuine reports ---- */

static void der_to_pem(const blob *der, char **pem, size_t *pem_len)
{
    const unsigned char *p = der->data;
    X509 *cert = d2i_X509(NULL, &p, (long)der->len);
    assert_non_null(cert);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
    char *text = NULL;
    long len = BIO_get_mem_data(bio, &text);
    assert_true(len > 0);
    *pem = malloc((size_t)len);
    assert_non_null(*pem);
    memcpy(*pem, text, (size_t)len);
    *pem_len = (size_t)len;
    BIO_free(bio);
    X509_free(cert);
}

static void test_genuine_supplied_store_cache(void **state)
{
    (void)state;
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    store *st = new_store();

    /* 1. Supplied VCEK, checked against AMD's pinned roots. */
    snp_verifier *v1 = new_verifier(g.builtin, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(snp_verifier_verify(v1, g.genuine_report[i].data, g.genuine_report[i].len,
                                             g.genuine_vcek[i].data, g.genuine_vcek[i].len,
                                             AT_2024_06_01, &ev, &diag),
                         VTPMCA_OK);
        assert_int_equal(ev.vcek_source, SNP_VCEK_SUPPLIED);
        assert_int_equal(ev.product, SNP_PRODUCT_MILAN);
        assert_int_equal(ev.signer, SNP_SIGNER_VCEK);
        assert_int_equal(ev.report.version, 2);
        assert_int_equal(strncmp(ev.vcek_product_name, "Milan", 5), 0);
    }
    /* Report a: reported_tcb 0x4405000000000002 -> bl 2, tee 0, snp 5, ucode 0x44. */
    assert_int_equal(snp_verifier_verify(v1, g.genuine_report[0].data, g.genuine_report[0].len,
                                         g.genuine_vcek[0].data, g.genuine_vcek[0].len,
                                         AT_2024_06_01, &ev, &diag),
                     VTPMCA_OK);
    assert_int_equal(ev.reported_tcb.bootloader, 2);
    assert_int_equal(ev.reported_tcb.tee, 0);
    assert_int_equal(ev.reported_tcb.snp, 5);
    assert_int_equal(ev.reported_tcb.microcode, 0x44);
    assert_true((ev.report.policy & SNP_POLICY_DEBUG) != 0);
    /* The second call with the same certificate reused the cached verification. */
    snp_verifier_stats stats;
    snp_verifier_get_stats(v1, &stats);
    assert_int_equal(stats.cache_hits, 1);
    assert_int_equal(stats.cache_misses, 2);
    /* The same certificate as PEM. */
    char *pem = NULL;
    size_t pem_len = 0;
    der_to_pem(&g.genuine_vcek[0], &pem, &pem_len);
    assert_int_equal(snp_verifier_verify(v1, g.genuine_report[0].data, g.genuine_report[0].len,
                                         (const uint8_t *)pem, pem_len, AT_2024_06_01, &ev, &diag),
                     VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_SUPPLIED);
    free(pem);
    /* Cross-pairing: report b with the VCEK of chip a. */
    assert_int_equal(snp_verifier_verify(v1, g.genuine_report[1].data, g.genuine_report[1].len,
                                         g.genuine_vcek[0].data, g.genuine_vcek[0].len,
                                         AT_2024_06_01, &ev, &diag),
                     VTPMCA_ERR_CRYPTO);
    snp_verifier_free(v1);

    /* 2. Without the VCEK: found in the store where it was imported... */
    import_vcek(st, SNP_PRODUCT_MILAN, SNP_SIGNER_VCEK, g.genuine_report[0].data + 0x1A0,
                0x4405000000000002ull, g.genuine_vcek[0].data, g.genuine_vcek[0].len);
    snp_verifier *v2 = new_verifier(g.builtin, st, NULL, 0, SNP_PRODUCT_UNKNOWN);
    assert_int_equal(snp_verifier_verify(v2, g.genuine_report[0].data, g.genuine_report[0].len,
                                         NULL, 0, AT_2024_06_01, &ev, &diag),
                     VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    snp_verifier_get_stats(v2, &stats);
    assert_int_equal(stats.store_hits, 1);
    assert_int_equal(stats.cache_misses, 1);
    assert_int_equal(stats.cache_hits, 0);

    /* 3. ...then from the warm cache. */
    assert_int_equal(snp_verifier_verify(v2, g.genuine_report[0].data, g.genuine_report[0].len,
                                         NULL, 0, AT_2024_06_01, &ev, &diag),
                     VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);
    assert_int_equal(ev.product, SNP_PRODUCT_MILAN);
    snp_verifier_get_stats(v2, &stats);
    assert_int_equal(stats.cache_hits, 1);
    assert_int_equal(stats.store_hits, 1);
    assert_int_equal(stats.kds_fetches, 0);

    /* A cached VCEK is not used outside its chain's validity window. */
    assert_int_equal(snp_verifier_verify(v2, g.genuine_report[0].data, g.genuine_report[0].len,
                                         NULL, 0, AT_2035_01_01, &ev, &diag),
                     VTPMCA_ERR_CRYPTO);
    /* Report b was never imported. */
    assert_int_equal(snp_verifier_verify(v2, g.genuine_report[1].data, g.genuine_report[1].len,
                                         NULL, 0, AT_2024_06_01, &ev, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    snp_verifier_free(v2);

    /* A configured default product is used for v2 reports; a wrong one finds nothing. */
    snp_verifier *v3 = new_verifier(g.builtin, st, NULL, 0, SNP_PRODUCT_MILAN);
    assert_int_equal(snp_verifier_verify(v3, g.genuine_report[0].data, g.genuine_report[0].len,
                                         NULL, 0, AT_2024_06_01, &ev, &diag),
                     VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    snp_verifier_free(v3);
    snp_verifier *v4 = new_verifier(g.builtin, st, NULL, 0, SNP_PRODUCT_GENOA);
    assert_int_equal(snp_verifier_verify(v4, g.genuine_report[0].data, g.genuine_report[0].len,
                                         NULL, 0, AT_2024_06_01, &ev, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    snp_verifier_free(v4);
    store_close(st);
}

/* ---- every product, VCEK and VLEK ---- */

static void check_product_case(snp_verifier *verifier, snp_product product, uint32_t version,
                               snp_signer kind, uint8_t seed)
{
    case_spec spec = spec_for(product, version, kind, seed);
    signed_case c;
    make_case(&spec, &c);
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = verify(verifier, c.report, c.der, c.der_len, 0, &ev, &diag);
    if (err != VTPMCA_OK)
        fprintf(stderr, "%s v%u %s: %s\n", snp_product_name(product), version,
                kind == SNP_SIGNER_VLEK ? "VLEK" : "VCEK", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_SUPPLIED);
    assert_int_equal(ev.product, product);
    assert_int_equal(ev.signer, kind);
    assert_int_equal(ev.report.version, version);
    snp_tcb want = default_tcb(product);
    assert_int_equal(ev.reported_tcb.bootloader, want.bootloader);
    assert_int_equal(ev.reported_tcb.tee, want.tee);
    assert_int_equal(ev.reported_tcb.snp, want.snp);
    assert_int_equal(ev.reported_tcb.microcode, want.microcode);
    assert_int_equal(ev.committed_tcb.snp, want.snp);
    assert_int_equal(ev.launch_tcb.microcode, want.microcode);
    if (product == SNP_PRODUCT_TURIN) {
        assert_int_equal(ev.reported_tcb.fmc, want.fmc);
        assert_int_equal(ev.current_tcb.fmc, want.fmc);
    }
    assert_int_equal(strncmp(ev.vcek_product_name, snp_product_name(product), 5), 0);

    /* The verified certificate is now warm: the same report verifies without it. */
    err = verify(verifier, c.report, NULL, 0, 0, &ev, &diag);
    assert_int_equal(err, VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);
    assert_int_equal(ev.product, product);
    free_case(&c);
}

static void test_every_product(void **state)
{
    (void)state;
    snp_verifier *verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    const struct {
        snp_product product;
        uint32_t version;
    } cases[] = {
        {SNP_PRODUCT_MILAN, 2}, {SNP_PRODUCT_MILAN, 3}, {SNP_PRODUCT_MILAN, 5},
        {SNP_PRODUCT_GENOA, 3}, {SNP_PRODUCT_GENOA, 5}, {SNP_PRODUCT_TURIN, 3},
        {SNP_PRODUCT_TURIN, 5},
    };
    uint8_t seed = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_product_case(verifier, cases[i].product, cases[i].version, SNP_SIGNER_VCEK, seed++);
        check_product_case(verifier, cases[i].product, cases[i].version, SNP_SIGNER_VLEK, seed++);
    }
    snp_verifier_stats stats;
    snp_verifier_get_stats(verifier, &stats);
    assert_int_equal(stats.cache_misses, 14);
    assert_int_equal(stats.cache_hits, 14);
    snp_verifier_free(verifier);
}

static void test_v2_product_from_store_lookup(void **state)
{
    (void)state;
    /* A v2 report names no product: every product is tried (Genoa here). */
    store *st = new_store();
    case_spec spec = spec_for(SNP_PRODUCT_GENOA, 2, SNP_SIGNER_VCEK, 60);
    signed_case c;
    make_case(&spec, &c);
    import_vcek(st, SNP_PRODUCT_GENOA, SNP_SIGNER_VCEK, c.chip, c.reported_tcb, c.der, c.der_len);
    snp_verifier *verifier = new_verifier(g.trusted, st, NULL, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    assert_int_equal(verify(verifier, c.report, NULL, 0, 0, &ev, &diag), VTPMCA_OK);
    assert_int_equal(ev.product, SNP_PRODUCT_GENOA);
    assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    snp_verifier_free(verifier);
    free_case(&c);
    store_close(st);
}

static void test_vlek_store_and_no_kds(void **state)
{
    (void)state;
    store *st = new_store();
    kds_standin *standin = NULL;
    assert_int_equal(kds_standin_start(&standin), VTPMCA_OK);
    kds_config kconfig = {.base_url = kds_standin_base_url(standin), .burst = 8};
    kds_client *kds = NULL;
    assert_int_equal(kds_client_new(&kconfig, &kds, NULL), VTPMCA_OK);

    case_spec spec = spec_for(SNP_PRODUCT_GENOA, 5, SNP_SIGNER_VLEK, 70);
    signed_case c;
    make_case(&spec, &c);
    snp_verifier *verifier = new_verifier(g.trusted, st, kds, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    /* Not imported yet, and KDS is never asked for a VLEK. */
    assert_int_equal(verify(verifier, c.report, NULL, 0, 0, &ev, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "VLEK"));
    assert_int_equal(kds_standin_request_count(standin), 0);

    import_vcek(st, SNP_PRODUCT_GENOA, SNP_SIGNER_VLEK, NULL, c.reported_tcb, c.der, c.der_len);
    assert_int_equal(verify(verifier, c.report, NULL, 0, 0, &ev, &diag), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    assert_int_equal(ev.signer, SNP_SIGNER_VLEK);
    assert_int_equal(verify(verifier, c.report, NULL, 0, 0, &ev, &diag), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);

    snp_verifier_free(verifier);
    kds_client_free(kds);
    kds_standin_stop(standin);
    free_case(&c);
    store_close(st);
}

/* ---- rejections ---- */

/* Expects `want` and a diag that mentions `why` (the failing step or field). */
static void expect_reject(snp_verifier *verifier, const uint8_t *report, size_t report_len,
                          const uint8_t *cert, size_t cert_len, time_t at, vtpmca_err want,
                          const char *why)
{
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        snp_verifier_verify(verifier, report, report_len, cert, cert_len, at, &ev, &diag);
    assert_int_equal(err, want);
    if (strstr(diag.msg, why) == NULL)
        fail_msg("diag \"%s\" does not mention \"%s\"", diag.msg, why);
}

static void test_reject_tampering(void **state)
{
    (void)state;
    snp_verifier *verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    case_spec spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, 80);
    signed_case c;
    make_case(&spec, &c);
    uint8_t bad[SNP_REPORT_SIZE];

    /* Tampered r and s (before the certificate is cached, and after). */
    for (int pass = 0; pass < 2; pass++) {
        memcpy(bad, c.report, sizeof(bad));
        bad[0x2A0] ^= 0x01;
        expect_reject(verifier, bad, sizeof(bad), c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                      "signature");
        memcpy(bad, c.report, sizeof(bad));
        bad[0x2E8 + 5] ^= 0x80;
        expect_reject(verifier, bad, sizeof(bad), c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                      "signature");
        snp_evidence ev;
        assert_int_equal(verify(verifier, c.report, c.der, c.der_len, 0, &ev, NULL), VTPMCA_OK);
    }

    /* A signed field changed: the report is still decoded for audit. */
    memcpy(bad, c.report, sizeof(bad));
    bad[0x50] ^= 0x01;
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    assert_int_equal(verify(verifier, bad, NULL, 0, 0, &ev, &diag), VTPMCA_ERR_CRYPTO);
    assert_int_equal(ev.report.version, 3);
    assert_int_equal(ev.report.report_data[0], 0x5b);
    memcpy(bad, c.report, sizeof(bad));
    bad[0x90 + 47] ^= 0x10; /* last byte of the measurement */
    expect_reject(verifier, bad, sizeof(bad), c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO, "signature");

    /* Truncated and oversized input. */
    expect_reject(verifier, c.report, SNP_REPORT_SIZE - 1, c.der, c.der_len, 0, VTPMCA_ERR_PARSE,
                  "1183");
    uint8_t *big = calloc(1, SNP_REPORT_SIZE + 1);
    assert_non_null(big);
    memcpy(big, c.report, SNP_REPORT_SIZE);
    expect_reject(verifier, big, SNP_REPORT_SIZE + 1, c.der, c.der_len, 0, VTPMCA_ERR_PARSE,
                  "1185");
    free(big);

    /* A certificate that is not one. */
    uint8_t junk[64];
    memset(junk, 0x30, sizeof(junk));
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, junk, sizeof(junk), 0, VTPMCA_ERR_PARSE,
                  "certificate");
    free_case(&c);
    snp_verifier_free(verifier);
}

static void test_reject_chain_and_binding(void **state)
{
    (void)state;
    snp_verifier *verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;

    /* VCEK signed by another (untrusted) root's ASK. */
    case_spec spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, 90);
    spec.root = g.other_milan;
    signed_case c;
    make_case(&spec, &c);
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "ASK");
    /* Nothing was kept: without the certificate the report has no VCEK. */
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, NULL, 0, 0, VTPMCA_ERR_NOT_FOUND, "no VCEK");
    free_case(&c);

    /* The test root itself is not trusted by the builtin set. */
    spec = spec_for(SNP_PRODUCT_GENOA, 5, SNP_SIGNER_VCEK, 91);
    make_case(&spec, &c);
    snp_verifier *builtin_only = new_verifier(g.builtin, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    expect_reject(builtin_only, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "ASK");
    snp_verifier_free(builtin_only);
    assert_int_equal(verify(verifier, c.report, c.der, c.der_len, 0, &ev, NULL), VTPMCA_OK);
    free_case(&c);

    /* VCEK issued for a different SPL than the report's reported_tcb. */
    spec = spec_for(SNP_PRODUCT_MILAN, 5, SNP_SIGNER_VCEK, 92);
    spec.cert_tcb.snp = 9;
    make_case(&spec, &c);
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "snp");
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, NULL, 0, 0, VTPMCA_ERR_NOT_FOUND, "no VCEK");
    free_case(&c);

    /* Turin: only fmc differs. */
    spec = spec_for(SNP_PRODUCT_TURIN, 5, SNP_SIGNER_VCEK, 93);
    spec.cert_tcb.fmc = 2;
    make_case(&spec, &c);
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "fmc");
    free_case(&c);

    /* VCEK of another chip. */
    spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, 94);
    make_chip(SNP_PRODUCT_MILAN, 95, spec.cert_chip);
    make_case(&spec, &c);
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "chip");
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, NULL, 0, 0, VTPMCA_ERR_NOT_FOUND, "no VCEK");
    free_case(&c);

    /* A VLEK presented for a VCEK-signed report. */
    spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VLEK, 96);
    make_case(&spec, &c);
    uint8_t relabelled[SNP_REPORT_SIZE];
    snp_report fields;
    assert_int_equal(snp_report_parse(c.report, SNP_REPORT_SIZE, &fields, NULL), VTPMCA_OK);
    fields.key_info = 0; /* claims VCEK */
    EVP_PKEY *unused_key = NULL;
    uint8_t *unused_der = NULL;
    size_t unused_len = 0;
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK, .tcb = spec.cert_tcb};
    memcpy(params.chip_id, spec.cert_chip, 64);
    assert_int_equal(
        snp_test_issue_cert(spec.root, &params, &unused_key, &unused_der, &unused_len, NULL),
        VTPMCA_OK);
    assert_int_equal(snp_test_report_sign(&fields, unused_key, relabelled, NULL), VTPMCA_OK);
    expect_reject(verifier, relabelled, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "VLEK");
    /* ...and its own VCEK verifies it. */
    assert_int_equal(verify(verifier, relabelled, unused_der, unused_len, 0, &ev, NULL), VTPMCA_OK);
    EVP_PKEY_free(unused_key);
    free(unused_der);
    free_case(&c);
    snp_verifier_free(verifier);
}

static void test_reject_expired(void **state)
{
    (void)state;
    time_t now = time(NULL);
    snp_verifier *verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;

    /* Expired an hour ago (the test root's CAs are valid from a day ago). */
    case_spec spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, 100);
    spec.not_before = now - 12 * HOUR;
    spec.not_after = now - HOUR;
    signed_case c;
    make_case(&spec, &c);
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, 0, VTPMCA_ERR_CRYPTO,
                  "expired");
    /* ...but fine at a time inside its validity. */
    assert_int_equal(verify(verifier, c.report, c.der, c.der_len, now - 6 * HOUR, &ev, NULL),
                     VTPMCA_OK);
    /* The cached verification is not used once `at` leaves the window. */
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, NULL, 0, now, VTPMCA_ERR_CRYPTO, "expired");
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, c.der, c.der_len, now, VTPMCA_ERR_CRYPTO,
                  "expired");
    expect_reject(verifier, c.report, SNP_REPORT_SIZE, NULL, 0, now - 20 * HOUR, VTPMCA_ERR_CRYPTO,
                  "before");
    assert_int_equal(verify(verifier, c.report, NULL, 0, now - 6 * HOUR, &ev, NULL), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);
    free_case(&c);
    snp_verifier_free(verifier);
}

static void test_missing_everywhere(void **state)
{
    (void)state;
    store *st = new_store();
    kds_standin *standin = NULL;
    assert_int_equal(kds_standin_start(&standin), VTPMCA_OK);
    kds_config kconfig = {.base_url = kds_standin_base_url(standin), .burst = 8};
    kds_client *kds = NULL;
    assert_int_equal(kds_client_new(&kconfig, &kds, NULL), VTPMCA_OK);

    case_spec spec = spec_for(SNP_PRODUCT_TURIN, 3, SNP_SIGNER_VCEK, 110);
    signed_case c;
    make_case(&spec, &c);
    snp_verifier *plain = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    expect_reject(plain, c.report, SNP_REPORT_SIZE, NULL, 0, 0, VTPMCA_ERR_NOT_FOUND, "no VCEK");
    snp_verifier_free(plain);

    snp_verifier *full = new_verifier(g.trusted, st, kds, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    assert_int_equal(verify(full, c.report, NULL, 0, 0, &ev, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "KDS"));
    assert_int_equal(kds_standin_request_count(standin), 1);
    /* Filled for audit even though verification failed. */
    assert_int_equal(ev.report.version, 3);

    /* KDS failures surface as NETWORK. */
    kds_standin_set_status(standin, 500);
    case_spec other = spec_for(SNP_PRODUCT_TURIN, 3, SNP_SIGNER_VCEK, 111);
    signed_case c2;
    make_case(&other, &c2);
    assert_int_equal(verify(full, c2.report, NULL, 0, 0, &ev, &diag), VTPMCA_ERR_NETWORK);
    assert_int_equal(store_count(st), 0);

    snp_verifier_free(full);
    kds_client_free(kds);
    kds_standin_stop(standin);
    free_case(&c);
    free_case(&c2);
    store_close(st);
}

/* ---- KDS path ---- */

static void test_kds_path(void **state)
{
    (void)state;
    store *st = new_store();
    kds_standin *standin = NULL;
    assert_int_equal(kds_standin_start(&standin), VTPMCA_OK);
    kds_config kconfig = {.base_url = kds_standin_base_url(standin), .burst = 8};
    kds_client *kds = NULL;
    assert_int_equal(kds_client_new(&kconfig, &kds, NULL), VTPMCA_OK);

    const struct {
        snp_product product;
        uint32_t version;
    } cases[] = {{SNP_PRODUCT_MILAN, 3}, {SNP_PRODUCT_TURIN, 5}, {SNP_PRODUCT_GENOA, 2}};
    signed_case c[3];
    for (int i = 0; i < 3; i++) {
        case_spec spec =
            spec_for(cases[i].product, cases[i].version, SNP_SIGNER_VCEK, (uint8_t)(120 + i));
        make_case(&spec, &c[i]);
        assert_int_equal(kds_standin_put_vcek(standin, cases[i].product, spec.cert_chip,
                                              &spec.cert_tcb, c[i].der, c[i].der_len),
                         VTPMCA_OK);
    }

    snp_verifier *with_kds = new_verifier(g.trusted, st, kds, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    vtpmca_diag diag = {{0}};
    for (int i = 0; i < 3; i++) {
        vtpmca_err err = verify(with_kds, c[i].report, NULL, 0, 0, &ev, &diag);
        if (err != VTPMCA_OK)
            fprintf(stderr, "kds case %d: %s\n", i, diag.msg);
        assert_int_equal(err, VTPMCA_OK);
        assert_int_equal(ev.vcek_source, SNP_VCEK_KDS);
        assert_int_equal(ev.product, cases[i].product);
    }
    /* The v2 Genoa report names no product: Milan was asked first (404), then Genoa. */
    assert_int_equal(kds_standin_request_count(standin), 4);
    snp_verifier_stats stats;
    snp_verifier_get_stats(with_kds, &stats);
    assert_int_equal(stats.kds_fetches, 3);
    assert_int_equal(store_count(st), 3);
    assert_int_equal(verify(with_kds, c[1].report, NULL, 0, 0, &ev, &diag), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);
    snp_verifier_free(with_kds);

    /* A second verifier over the same store needs no KDS. */
    snp_verifier *store_only = new_verifier(g.trusted, st, NULL, 0, SNP_PRODUCT_UNKNOWN);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(verify(store_only, c[i].report, NULL, 0, 0, &ev, &diag), VTPMCA_OK);
        assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    }
    snp_verifier_free(store_only);

    /* A KDS answer that does not chain to a trusted root is refused and not stored. */
    case_spec rogue = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, 130);
    rogue.root = g.other_milan;
    signed_case r;
    make_case(&rogue, &r);
    assert_int_equal(kds_standin_put_vcek(standin, SNP_PRODUCT_MILAN, rogue.cert_chip,
                                          &rogue.cert_tcb, r.der, r.der_len),
                     VTPMCA_OK);
    snp_verifier *again = new_verifier(g.trusted, st, kds, 0, SNP_PRODUCT_UNKNOWN);
    assert_int_equal(verify(again, r.report, NULL, 0, 0, &ev, &diag), VTPMCA_ERR_CRYPTO);
    assert_int_equal(store_count(st), 3);
    snp_verifier_free(again);

    for (int i = 0; i < 3; i++)
        free_case(&c[i]);
    free_case(&r);
    kds_client_free(kds);
    kds_standin_stop(standin);
    store_close(st);
}

/* ---- policy end to end ---- */

static snp_policy *policy_from(const char *json)
{
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_policy_from_json(json, strlen(json), &policy, &diag);
    if (err != VTPMCA_OK)
        fprintf(stderr, "policy: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    return policy;
}

static bool verdict_names(const snp_verdict *verdict, const char *check)
{
    for (unsigned i = 0; i < verdict->n_failed; i++)
        if (strcmp(verdict->failed[i].check, check) == 0)
            return true;
    return false;
}

static void test_policy_end_to_end(void **state)
{
    (void)state;
    snp_verifier *verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    case_spec spec = spec_for(SNP_PRODUCT_GENOA, 5, SNP_SIGNER_VCEK, 140);
    signed_case c;
    make_case(&spec, &c);
    snp_evidence ev;
    assert_int_equal(verify(verifier, c.report, c.der, c.der_len, 0, &ev, NULL), VTPMCA_OK);

    char measurement[97];
    for (int i = 0; i < 48; i++)
        snprintf(measurement + 2 * i, 3, "%02x", spec.measurement_seed);
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"measurements\": [\"%s\"], \"allow_debug\": false, \"vmpl\": 0,"
             " \"min_tcb\": {\"bootloader\": 3, \"tee\": 0, \"snp\": 8, \"microcode\": 115},"
             " \"products\": [\"Genoa\", \"Turin\"]}",
             measurement);
    snp_policy *fleet = policy_from(json);
    snp_verdict verdict;
    assert_int_equal(snp_policy_evaluate(fleet, &ev, &verdict), VTPMCA_OK);
    assert_true(verdict.pass);
    assert_int_equal(verdict.n_failed, 0);
    assert_true(verdict.checks_run > 0);
    snp_policy_free(fleet);

    /* A newer SNP firmware floor than the chip reports fails on min_tcb.snp. */
    snprintf(json, sizeof(json), "{\"measurements\": [\"%s\"], \"min_tcb\": {\"snp\": 9}}",
             measurement);
    fleet = policy_from(json);
    assert_int_equal(snp_policy_evaluate(fleet, &ev, &verdict), VTPMCA_OK);
    assert_false(verdict.pass);
    assert_true(verdict_names(&verdict, "min_tcb.snp"));
    snp_policy_free(fleet);
    free_case(&c);
    snp_verifier_free(verifier);

    /* The genuine DEBUG report: rejected by a debug-forbidding policy, even with its
     * measurement listed... */
    snp_verifier *amd = new_verifier(g.builtin, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    assert_int_equal(snp_verifier_verify(amd, g.genuine_report[0].data, g.genuine_report[0].len,
                                         g.genuine_vcek[0].data, g.genuine_vcek[0].len,
                                         AT_2024_06_01, &ev, NULL),
                     VTPMCA_OK);
    const char *genuine_measurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea8"
                                      "2705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
    snprintf(json, sizeof(json), "{\"measurements\": [\"%s\"], \"allow_debug\": false}",
             genuine_measurement);
    fleet = policy_from(json);
    assert_int_equal(snp_policy_evaluate(fleet, &ev, &verdict), VTPMCA_OK);
    assert_false(verdict.pass);
    assert_int_equal(verdict.n_failed, 1);
    assert_string_equal(verdict.failed[0].check, "debug");
    snp_policy_free(fleet);
    /* ...and accepted when debug is allowed. */
    snprintf(json, sizeof(json), "{\"measurements\": [\"%s\"], \"allow_debug\": true}",
             genuine_measurement);
    fleet = policy_from(json);
    assert_int_equal(snp_policy_evaluate(fleet, &ev, &verdict), VTPMCA_OK);
    assert_true(verdict.pass);
    snp_policy_free(fleet);
    snp_verifier_free(amd);
}

/* ---- cache bound and concurrency ---- */

#define WORKING_SET 8

static struct {
    signed_case cases[WORKING_SET];
} ws;

static void make_working_set(store *st)
{
    for (int i = 0; i < WORKING_SET; i++) {
        case_spec spec = spec_for(SNP_PRODUCT_MILAN, 3, SNP_SIGNER_VCEK, (uint8_t)(150 + i));
        make_case(&spec, &ws.cases[i]);
        import_vcek(st, SNP_PRODUCT_MILAN, SNP_SIGNER_VCEK, ws.cases[i].chip,
                    ws.cases[i].reported_tcb, ws.cases[i].der, ws.cases[i].der_len);
    }
}

static void free_working_set(void)
{
    for (int i = 0; i < WORKING_SET; i++)
        free_case(&ws.cases[i]);
}

static void test_cache_is_bounded(void **state)
{
    (void)state;
    store *st = new_store();
    make_working_set(st);
    snp_verifier *verifier = new_verifier(g.trusted, st, NULL, 2, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    /* Three certificates through a two-entry cache: the first one was evicted. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(verify(verifier, ws.cases[i].report, NULL, 0, 0, &ev, NULL), VTPMCA_OK);
        assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    }
    assert_int_equal(verify(verifier, ws.cases[0].report, NULL, 0, 0, &ev, NULL), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_STORE);
    /* The most recent insertion is still there. */
    assert_int_equal(verify(verifier, ws.cases[0].report, NULL, 0, 0, &ev, NULL), VTPMCA_OK);
    assert_int_equal(ev.vcek_source, SNP_VCEK_CACHE);
    snp_verifier_stats stats;
    snp_verifier_get_stats(verifier, &stats);
    assert_int_equal(stats.store_hits, 4);
    assert_int_equal(stats.cache_misses, 4);
    assert_int_equal(stats.cache_hits, 1);
    snp_verifier_free(verifier);
    free_working_set();
    store_close(st);
}

typedef struct {
    snp_verifier *verifier;
    int thread;
    int wrong;
} worker;

#define ROUNDS 40

static void *verify_worker(void *arg)
{
    worker *w = arg;
    for (int round = 0; round < ROUNDS; round++) {
        int i = (round * 3 + w->thread) % WORKING_SET;
        snp_evidence ev;
        vtpmca_diag diag = {{0}};
        if (round % 10 == 9) {
            /* Evidence from one chip must never verify against another's cached VCEK. */
            uint8_t bad[SNP_REPORT_SIZE];
            memcpy(bad, ws.cases[i].report, sizeof(bad));
            bad[0x1A0] ^= 0x01;
            if (verify(w->verifier, bad, NULL, 0, 0, &ev, &diag) == VTPMCA_OK)
                w->wrong++;
            continue;
        }
        if (verify(w->verifier, ws.cases[i].report, NULL, 0, 0, &ev, &diag) != VTPMCA_OK ||
            memcmp(ev.report.chip_id, ws.cases[i].chip, 64) != 0 ||
            (ev.vcek_source != SNP_VCEK_CACHE && ev.vcek_source != SNP_VCEK_STORE))
            w->wrong++;
    }
    return NULL;
}

static void test_concurrent_with_evictions(void **state)
{
    (void)state;
    store *st = new_store();
    make_working_set(st);
    snp_verifier *verifier = new_verifier(g.trusted, st, NULL, 3, SNP_PRODUCT_UNKNOWN);
    pthread_t threads[4];
    worker workers[4];
    for (int t = 0; t < 4; t++) {
        workers[t] = (worker){verifier, t, 0};
        assert_int_equal(pthread_create(&threads[t], NULL, verify_worker, &workers[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].wrong, 0);
    }
    snp_verifier_stats stats;
    snp_verifier_get_stats(verifier, &stats);
    /* Good lookups all resolved; more misses than certificates means entries were evicted. */
    assert_int_equal(stats.cache_hits + stats.cache_misses, 4 * ROUNDS);
    assert_true(stats.cache_misses > WORKING_SET);
    assert_int_equal(stats.store_hits, stats.cache_misses - 4 * (ROUNDS / 10));
    snp_verifier_free(verifier);
    free_working_set();
    store_close(st);
}

/* ---- arguments ---- */

static void test_bad_arguments(void **state)
{
    (void)state;
    snp_verifier *verifier = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_verifier_new(NULL, &verifier, &diag), VTPMCA_ERR_INVALID_ARG);
    snp_verifier_config config = {.roots = NULL};
    assert_int_equal(snp_verifier_new(&config, &verifier, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "roots"));
    config.roots = g.trusted;
    config.default_product = (snp_product)42;
    assert_int_equal(snp_verifier_new(&config, &verifier, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(verifier);
    config.default_product = SNP_PRODUCT_UNKNOWN;
    assert_int_equal(snp_verifier_new(&config, NULL, &diag), VTPMCA_ERR_INVALID_ARG);

    verifier = new_verifier(g.trusted, NULL, NULL, 0, SNP_PRODUCT_UNKNOWN);
    snp_evidence ev;
    uint8_t report[SNP_REPORT_SIZE] = {0};
    assert_int_equal(snp_verifier_verify(verifier, NULL, 0, NULL, 0, 0, &ev, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_verifier_verify(verifier, report, sizeof(report), NULL, 0, 0, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(
        snp_verifier_verify(verifier, report, sizeof(report), report, 0, 0, &ev, &diag),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_verifier_verify(NULL, report, sizeof(report), NULL, 0, 0, &ev, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    uint8_t *huge = calloc(1, 64 * 1024 + 1);
    assert_non_null(huge);
    assert_int_equal(
        snp_verifier_verify(verifier, report, sizeof(report), huge, 64 * 1024 + 1, 0, &ev, &diag),
        VTPMCA_ERR_LIMIT);
    free(huge);
    /* An all-zero report is no report: the parser's error passes through. */
    snp_report fields;
    vtpmca_err parse_err = snp_report_parse(report, sizeof(report), &fields, NULL);
    assert_int_not_equal(parse_err, VTPMCA_OK);
    assert_int_equal(snp_verifier_verify(verifier, report, sizeof(report), NULL, 0, 0, &ev, NULL),
                     parse_err);
    snp_verifier_stats stats;
    snp_verifier_get_stats(verifier, &stats);
    assert_int_equal(stats.cache_hits + stats.cache_misses, 0);
    snp_verifier_free(verifier);
    snp_verifier_free(NULL);

    assert_string_equal(snp_vcek_source_name(SNP_VCEK_SUPPLIED), "supplied");
    assert_string_equal(snp_vcek_source_name(SNP_VCEK_CACHE), "cache");
    assert_string_equal(snp_vcek_source_name(SNP_VCEK_STORE), "store");
    assert_string_equal(snp_vcek_source_name(SNP_VCEK_KDS), "kds");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genuine_supplied_store_cache),
        cmocka_unit_test(test_every_product),
        cmocka_unit_test(test_v2_product_from_store_lookup),
        cmocka_unit_test(test_vlek_store_and_no_kds),
        cmocka_unit_test(test_reject_tampering),
        cmocka_unit_test(test_reject_chain_and_binding),
        cmocka_unit_test(test_reject_expired),
        cmocka_unit_test(test_missing_everywhere),
        cmocka_unit_test(test_kds_path),
        cmocka_unit_test(test_policy_end_to_end),
        cmocka_unit_test(test_cache_is_bounded),
        cmocka_unit_test(test_concurrent_with_evictions),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
