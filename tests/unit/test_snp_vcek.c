/* Unit tests for attest/snp_roots.c and attest/snp_vcek.c: the pinned AMD roots, VCEK/VLEK
 * decoding, chain verification, binding to a report and the report signature. Genuine
 * Milan evidence from ../shared/testdata/snp, synthetic Genoa/Turin/VLEK evidence from the
 * test-only signer, and hand-made bad certificates (PKCS#1 v1.5, wrong PSS salt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "vtpmca/fileio.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_vcek.h"

#define TESTDATA VTPMCA_SHARED_DIR "/testdata/snp/"
#define AMD_DIR VTPMCA_SHARED_DIR "/amd"

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

typedef struct {
    char tmpdir[64];
    char testroots_dir[128]; /* Genoa + Turin test roots with their keys */
    snp_roots *builtin;
    snp_roots *test_roots; /* only the test roots */
    blob report_a, report_b, vcek_a, vcek_b;
    snp_test_root *genoa, *turin;
    EVP_PKEY *scratch_key; /* re-signs hand-altered certificates for parse tests */
} fixture;

static fixture *F;

/* 2024-06-01T00:00:00Z: inside the genuine VCEKs' validity (2022-09-24 .. 2029-09-24). */
static const time_t AT_2024 = 1717200000;
/* 2035-01-01T00:00:00Z: after the VCEKs expired, before the ARK/ASK do (2045). */
static const time_t AT_2035 = 2051222400;

static int read_blob(const char *path, blob *out)
{
    vtpmca_diag diag = {{0}};
    if (vt_file_read(path, 1 << 20, &out->data, &out->len, &diag) != VTPMCA_OK) {
        print_error("%s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return vt_file_write_atomic(path, data, len, 0644, NULL) == VTPMCA_OK ? 0 : -1;
}

static int copy_file(const char *from, const char *dir, const char *name)
{
    blob b = {0};
    if (read_blob(from, &b) != 0)
        return -1;
    int rc = write_file(dir, name, b.data, b.len);
    free(b.data);
    return rc;
}

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    if (F == NULL)
        return -1;
    vtpmca_diag diag = {{0}};
    snprintf(F->tmpdir, sizeof(F->tmpdir), "/tmp/test_snp_vcek.XXXXXX");
    if (mkdtemp(F->tmpdir) == NULL)
        return -1;
    snprintf(F->testroots_dir, sizeof(F->testroots_dir), "%s/testroots", F->tmpdir);
    if (read_blob(TESTDATA "milan-v2-report.bin", &F->report_a) ||
        read_blob(TESTDATA "milan-v2-report-b.bin", &F->report_b) ||
        read_blob(TESTDATA "milan-v2-vcek.der", &F->vcek_a) ||
        read_blob(TESTDATA "milan-v2-vcek-b.der", &F->vcek_b))
        return -1;
    if (snp_roots_new_builtin(&F->builtin, &diag) != VTPMCA_OK) {
        print_error("builtin roots: %s\n", diag.msg);
        return -1;
    }
    /* 2048-bit test roots keep the setup fast; made once for the whole file. */
    if (snp_test_root_new(SNP_PRODUCT_GENOA, 2048, &F->genoa, &diag) != VTPMCA_OK ||
        snp_test_root_new(SNP_PRODUCT_TURIN, 2048, &F->turin, &diag) != VTPMCA_OK ||
        snp_test_root_save(F->genoa, F->testroots_dir, &diag) != VTPMCA_OK ||
        snp_test_root_save(F->turin, F->testroots_dir, &diag) != VTPMCA_OK) {
        print_error("test roots: %s\n", diag.msg);
        return -1;
    }
    if (snp_roots_new_empty(&F->test_roots) != VTPMCA_OK ||
        snp_roots_add_dir(F->test_roots, F->testroots_dir, &diag) != VTPMCA_OK) {
        print_error("test roots dir: %s\n", diag.msg);
        return -1;
    }
    F->scratch_key = EVP_EC_gen("P-384");
    *state = F;
    return F->scratch_key != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F->tmpdir);
    if (system(cmd) != 0)
        print_error("cannot remove %s\n", F->tmpdir);
    free(F->report_a.data);
    free(F->report_b.data);
    free(F->vcek_a.data);
    free(F->vcek_b.data);
    snp_roots_free(F->builtin);
    snp_roots_free(F->test_roots);
    snp_test_root_free(F->genoa);
    snp_test_root_free(F->turin);
    EVP_PKEY_free(F->scratch_key);
    free(F);
    return 0;
}

/* ---- helpers ---- */

static snp_vcek *parse_vcek_ok(const blob *b)
{
    snp_vcek *vcek = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_vcek_parse(b->data, b->len, &vcek, &diag);
    if (err != VTPMCA_OK)
        fail_msg("snp_vcek_parse: %s: %s", vtpmca_err_name(err), diag.msg);
    return vcek;
}

static void parse_report_ok(const uint8_t *raw, snp_report *out)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_report_parse(raw, SNP_REPORT_SIZE, out, &diag);
    if (err != VTPMCA_OK)
        fail_msg("snp_report_parse: %s: %s", vtpmca_err_name(err), diag.msg);
}

static void expect_error(vtpmca_err got, const vtpmca_diag *diag, vtpmca_err want,
                         const char *diag_has, const char *what)
{
    if (got != want || strstr(diag->msg, diag_has) == NULL)
        fail_msg("%s: got %s \"%s\", expected %s mentioning \"%s\"", what, vtpmca_err_name(got),
                 diag->msg, vtpmca_err_name(want), diag_has);
}

static void expect_all_ok(const snp_vcek *vcek, const snp_report *report, const snp_roots *roots,
                          time_t at)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_vcek_verify_chain(vcek, roots, at, NULL, NULL, &diag);
    if (err == VTPMCA_OK)
        err = snp_vcek_check_report(vcek, report, &diag);
    if (err == VTPMCA_OK)
        err = snp_report_verify_signature(report, vcek, &diag);
    if (err != VTPMCA_OK)
        fail_msg("expected a valid chain, binding and signature: %s: %s", vtpmca_err_name(err),
                 diag.msg);
}

static X509 *der_to_x509(const blob *b)
{
    const unsigned char *p = b->data;
    X509 *cert = d2i_X509(NULL, &p, (long)b->len);
    assert_non_null(cert);
    return cert;
}

/* Re-encodes an altered certificate (re-signing it marks the TBS part modified). */
static blob x509_to_der_resigned(X509 *cert)
{
    assert_true(X509_sign(cert, F->scratch_key, EVP_sha384()) > 0);
    blob b = {0};
    unsigned char *der = NULL;
    int len = i2d_X509(cert, &der);
    assert_true(len > 0);
    b.data = malloc((size_t)len);
    assert_non_null(b.data);
    memcpy(b.data, der, (size_t)len);
    b.len = (size_t)len;
    OPENSSL_free(der);
    return b;
}

static int find_ext(X509 *cert, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    assert_non_null(obj);
    int index = X509_get_ext_by_OBJ(cert, obj, -1);
    ASN1_OBJECT_free(obj);
    return index;
}

static void set_ext_value(X509 *cert, const char *oid, const uint8_t *value, size_t len)
{
    int index = find_ext(cert, oid);
    assert_true(index >= 0);
    ASN1_OCTET_STRING *octets = ASN1_OCTET_STRING_new();
    assert_non_null(octets);
    assert_true(ASN1_OCTET_STRING_set(octets, value, (int)len));
    assert_true(X509_EXTENSION_set_data(X509_get_ext(cert, index), octets));
    ASN1_OCTET_STRING_free(octets);
}

static void delete_ext(X509 *cert, const char *oid)
{
    int index = find_ext(cert, oid);
    assert_true(index >= 0);
    X509_EXTENSION_free(X509_delete_ext(cert, index));
}

/* Issues a synthetic certificate and a report signed by it. */
typedef struct {
    snp_vcek *vcek;
    EVP_PKEY *key;
    blob der;
    snp_report report;
    uint8_t raw[SNP_REPORT_SIZE];
} synthetic;

static void make_synthetic(snp_test_root *root, snp_signer kind, uint32_t version,
                           const snp_tcb *tcb, synthetic *out)
{
    vtpmca_diag diag = {{0}};
    snp_test_cert_params params = {.kind = kind, .tcb = *tcb};
    for (int i = 0; i < 64; i++)
        params.chip_id[i] = (uint8_t)(0xC0 + i);
    if (snp_test_issue_cert(root, &params, &out->key, &out->der.data, &out->der.len, &diag) !=
        VTPMCA_OK)
        fail_msg("issue cert: %s", diag.msg);
    out->vcek = parse_vcek_ok(&out->der);
    snp_report report;
    assert_int_equal(snp_test_report_defaults(&report, snp_test_root_product(root), version,
                                              params.chip_id, tcb),
                     VTPMCA_OK);
    report.key_info = (uint32_t)kind << 2;
    if (snp_test_report_sign(&report, out->key, out->raw, &diag) != VTPMCA_OK)
        fail_msg("sign report: %s", diag.msg);
    parse_report_ok(out->raw, &out->report);
}

static void free_synthetic(synthetic *s)
{
    snp_vcek_free(s->vcek);
    EVP_PKEY_free(s->key);
    free(s->der.data);
}

static EVP_PKEY *read_test_key(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", F->testroots_dir, name);
    EVP_PKEY *key = NULL;
    vtpmca_diag diag = {{0}};
    if (snp_test_key_read_pem(path, &key, &diag) != VTPMCA_OK)
        fail_msg("read %s: %s", name, diag.msg);
    return key;
}

/* Signs a certificate with RSASSA-PSS SHA-384 and the given salt (AMD uses 48). */
static void sign_pss(X509 *cert, EVP_PKEY *key, int salt_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), NULL, key), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_len) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) > 0);
    assert_true(X509_sign_ctx(cert, ctx) > 0);
    EVP_MD_CTX_free(ctx);
}

/* ---- roots ---- */

static void test_builtin_roots(void **state)
{
    (void)state;
    /* Milan, Genoa and Turin, each with an ASK (VCEK) and an ASVK (VLEK) chain. */
    assert_int_equal(snp_roots_count(F->builtin), 6);
    int seen[4][2] = {{0}};
    for (size_t i = 0; i < snp_roots_count(F->builtin); i++) {
        const snp_root_chain *chain = snp_roots_get(F->builtin, i);
        assert_non_null(chain);
        assert_true(chain->product >= SNP_PRODUCT_MILAN && chain->product <= SNP_PRODUCT_TURIN);
        assert_true(chain->kind == SNP_SIGNER_VCEK || chain->kind == SNP_SIGNER_VLEK);
        seen[chain->product][chain->kind]++;
        /* Independent check with OpenSSL directly: the ARK signed the intermediate. */
        assert_int_equal(X509_verify(chain->intermediate, X509_get0_pubkey(chain->ark)), 1);
        assert_true(chain->ark_not_before < chain->ark_not_after);
    }
    for (int p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++)
        assert_true(seen[p][SNP_SIGNER_VCEK] == 1 && seen[p][SNP_SIGNER_VLEK] == 1);
    assert_null(snp_roots_get(F->builtin, 6));
    assert_int_equal(snp_roots_count(NULL), 0);
    assert_int_equal(snp_roots_new_builtin(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_roots_add_dir(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    snp_roots *roots = NULL;
    assert_int_equal(snp_roots_new_builtin(&roots, &diag), VTPMCA_OK);

    /* The same AMD roots from disk: a second chain per product and kind. */
    assert_int_equal(snp_roots_add_dir(roots, AMD_DIR, &diag), VTPMCA_OK);
    assert_int_equal(snp_roots_count(roots), 12);
    /* And the test roots on top: builtin + test root for Genoa. */
    assert_int_equal(snp_roots_add_dir(roots, F->testroots_dir, &diag), VTPMCA_OK);
    assert_int_equal(snp_roots_count(roots), 16);

    snp_vcek *vcek = parse_vcek_ok(&F->vcek_a);
    assert_int_equal(snp_vcek_verify_chain(vcek, roots, AT_2024, NULL, NULL, &diag), VTPMCA_OK);
    snp_vcek_free(vcek);

    /* Empty directory: nothing to add, and the set is unchanged. */
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/empty", F->tmpdir);
    assert_int_equal(vt_mkdir_p(dir, 0700, NULL), VTPMCA_OK);
    expect_error(snp_roots_add_dir(roots, dir, &diag), &diag, VTPMCA_ERR_NOT_FOUND, "no roots",
                 "empty dir");
    assert_int_equal(snp_roots_count(roots), 16);
    expect_error(snp_roots_add_dir(roots, "/nonexistent/vtpmca", &diag), &diag,
                 VTPMCA_ERR_NOT_FOUND, "no roots", "missing dir");
    assert_int_equal(snp_roots_add_dir(NULL, dir, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_roots_add_dir(roots, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    snp_roots_free(roots);

    /* An empty set trusts nothing. */
    assert_int_equal(snp_roots_new_empty(&roots), VTPMCA_OK);
    vcek = parse_vcek_ok(&F->vcek_a);
    expect_error(snp_vcek_verify_chain(vcek, roots, AT_2024, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "no trusted Milan ASK", "empty set");
    snp_vcek_free(vcek);
    snp_roots_free(roots);
    snp_roots_free(NULL);
}

/* A directory that must be refused, and the set left as it was. */
static void expect_dir_rejected(const char *dir, vtpmca_err want, const char *diag_has)
{
    snp_roots *roots = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_roots_new_empty(&roots), VTPMCA_OK);
    expect_error(snp_roots_add_dir(roots, dir, &diag), &diag, want, diag_has, dir);
    assert_int_equal(snp_roots_count(roots), 0);
    snp_roots_free(roots);
}

static void make_dir(char *out, size_t out_size, const char *name)
{
    snprintf(out, out_size, "%s/%s", F->tmpdir, name);
    assert_int_equal(vt_mkdir_p(out, 0700, NULL), VTPMCA_OK);
}

static void test_roots_dir_rejections(void **state)
{
    (void)state;
    char dir[256];

    make_dir(dir, sizeof(dir), "ark_only");
    assert_int_equal(copy_file(AMD_DIR "/milan_ark.pem", dir, "milan_ark.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_NOT_FOUND, "milan_ask.pem");

    /* A Genoa ASK next to the Milan ARK is not issued by it. */
    make_dir(dir, sizeof(dir), "wrong_ask");
    assert_int_equal(copy_file(AMD_DIR "/milan_ark.pem", dir, "milan_ark.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/genoa_ask.pem", dir, "milan_ask.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_CRYPTO, "milan_ask.pem is not issued by milan_ark.pem");

    /* The ASVK file must repeat the same ARK. */
    make_dir(dir, sizeof(dir), "wrong_asvk");
    assert_int_equal(copy_file(AMD_DIR "/milan_ark.pem", dir, "milan_ark.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/milan_ask.pem", dir, "milan_ask.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/genoa_asvk_ark.pem", dir, "milan_asvk_ark.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_CRYPTO, "second certificate is not the ARK");

    /* An ASK given where the ARK belongs is not self-signed. */
    make_dir(dir, sizeof(dir), "ask_as_ark");
    assert_int_equal(copy_file(AMD_DIR "/milan_ask.pem", dir, "milan_ark.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/milan_ask.pem", dir, "milan_ask.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_CRYPTO, "not self-signed");

    /* Truncated PEM. */
    make_dir(dir, sizeof(dir), "truncated");
    blob ark = {0};
    assert_int_equal(read_blob(AMD_DIR "/milan_ark.pem", &ark), 0);
    assert_int_equal(write_file(dir, "milan_ark.pem", ark.data, ark.len / 2), 0);
    assert_int_equal(copy_file(AMD_DIR "/milan_ask.pem", dir, "milan_ask.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_PARSE, "milan_ark.pem");
    /* Two ARKs in one file. */
    uint8_t *twice = malloc(2 * ark.len);
    assert_non_null(twice);
    memcpy(twice, ark.data, ark.len);
    memcpy(twice + ark.len, ark.data, ark.len);
    assert_int_equal(write_file(dir, "milan_ark.pem", twice, 2 * ark.len), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_PARSE, "more than 1");
    free(twice);
    free(ark.data);

    /* One good product and one bad one: nothing is added (all or nothing). */
    make_dir(dir, sizeof(dir), "half_good");
    assert_int_equal(copy_file(AMD_DIR "/genoa_ark.pem", dir, "genoa_ark.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/genoa_ask.pem", dir, "genoa_ask.pem"), 0);
    assert_int_equal(copy_file(AMD_DIR "/milan_ask.pem", dir, "turin_ask.pem"), 0);
    expect_dir_rejected(dir, VTPMCA_ERR_NOT_FOUND, "turin_ark.pem");
}

/* A root whose ARK or ASK is signed with anything but RSASSA-PSS SHA-384 salt 48 is refused
 * at load, even though its signatures are valid. */
static void test_roots_signature_algorithm(void **state)
{
    (void)state;
    EVP_PKEY *ark_key = read_test_key("genoa_ark.key.pem");
    uint8_t *der = NULL;
    size_t der_len = 0;
    char dir[256];
    const struct {
        const char *name;
        bool resign_ark; /* else the ASK */
        int salt;        /* 0: PKCS#1 v1.5 */
        const char *diag_has;
    } cases[] = {
        {"ark_pkcs1", true, 0, "not RSASSA-PSS"},
        {"ask_pkcs1", false, 0, "not RSASSA-PSS"},
        {"ask_salt32", false, 32, "salt length"},
        {"ark_salt32", true, 32, "salt length"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_dir(dir, sizeof(dir), cases[i].name);
        X509 *certs[2];
        snp_test_ca which[2] = {SNP_TEST_CA_ARK, SNP_TEST_CA_ASK};
        for (int c = 0; c < 2; c++) {
            assert_int_equal(snp_test_root_get_cert_der(F->genoa, which[c], &der, &der_len, NULL),
                             VTPMCA_OK);
            blob b = {der, der_len};
            certs[c] = der_to_x509(&b);
            free(der);
        }
        X509 *target = certs[cases[i].resign_ark ? 0 : 1];
        if (cases[i].salt == 0)
            assert_true(X509_sign(target, ark_key, EVP_sha384()) > 0);
        else
            sign_pss(target, ark_key, cases[i].salt);
        /* The signature itself is genuine: only its algorithm is wrong. */
        assert_int_equal(X509_verify(target, ark_key), 1);
        const char *names[2] = {"genoa_ark.pem", "genoa_ask.pem"};
        for (int c = 0; c < 2; c++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", dir, names[c]);
            FILE *out = fopen(path, "w");
            assert_non_null(out);
            assert_true(PEM_write_X509(out, certs[c]));
            fclose(out);
            X509_free(certs[c]);
        }
        expect_dir_rejected(dir, VTPMCA_ERR_CRYPTO, cases[i].diag_has);
    }
    EVP_PKEY_free(ark_key);
}

/* ---- genuine Milan evidence ---- */

static void test_genuine_vcek_info(void **state)
{
    (void)state;
    snp_vcek *vcek = parse_vcek_ok(&F->vcek_a);
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    assert_int_equal(info->kind, SNP_SIGNER_VCEK);
    assert_int_equal(info->product, SNP_PRODUCT_MILAN);
    assert_string_equal(info->product_name, "Milan-B0");
    assert_int_equal(info->struct_version, 0);
    assert_int_equal(info->tcb.bootloader, 2);
    assert_int_equal(info->tcb.tee, 0);
    assert_int_equal(info->tcb.snp, 5);
    assert_int_equal(info->tcb.microcode, 0x44);
    assert_int_equal(info->tcb.fmc, 0);
    assert_int_equal(info->tcb_raw, 0x4405000000000002ull);
    assert_int_equal(info->hwid_len, 64);
    assert_memory_equal(info->hwid, F->report_a.data + 0x1A0, 64);
    assert_string_equal(info->csp_id, "");
    assert_int_equal(info->not_before, 1663980928); /* 2022-09-24T00:55:28Z */
    assert_int_equal(info->not_after, 1884905728);  /* 2029-09-24T00:55:28Z */

    /* The genuine VCEK has serial number 0, which must not bother us. */
    X509 *cert = der_to_x509(&F->vcek_a);
    assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(cert)), 0);

    const uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(snp_vcek_get_der(vcek, &der, &der_len), VTPMCA_OK);
    assert_int_equal(der_len, F->vcek_a.len);
    assert_memory_equal(der, F->vcek_a.data, der_len);
    assert_int_equal(snp_vcek_get_der(NULL, &der, &der_len), VTPMCA_ERR_INVALID_ARG);

    /* The same certificate as PEM decodes to the same facts. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_true(PEM_write_bio_X509(bio, cert));
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    snp_vcek *from_pem = NULL;
    assert_int_equal(snp_vcek_parse((const uint8_t *)pem, (size_t)pem_len, &from_pem, NULL),
                     VTPMCA_OK);
    assert_memory_equal(snp_vcek_get_info(from_pem), info, sizeof(*info));
    snp_vcek_free(from_pem);
    BIO_free(bio);
    X509_free(cert);

    /* Report b's VCEK certifies report b's reported_tcb: bootloader 3, SNP 8, ucode 0x73. */
    snp_vcek *vcek_b = parse_vcek_ok(&F->vcek_b);
    snp_report report_b;
    parse_report_ok(F->report_b.data, &report_b);
    snp_tcb tcb;
    assert_int_equal(snp_tcb_decode(report_b.reported_tcb, SNP_PRODUCT_MILAN, &tcb), VTPMCA_OK);
    assert_memory_equal(&snp_vcek_get_info(vcek_b)->tcb, &tcb, sizeof(tcb));
    assert_int_equal(tcb.bootloader, 3);
    assert_int_equal(tcb.snp, 8);
    assert_int_equal(tcb.microcode, 0x73);
    snp_vcek_free(vcek_b);

    /* Reference counting: two extra owners, three releases. */
    snp_vcek_ref(vcek);
    snp_vcek_ref(vcek);
    snp_vcek_free(vcek);
    snp_vcek_free(vcek);
    assert_int_equal(snp_vcek_get_info(vcek)->product, SNP_PRODUCT_MILAN);
    snp_vcek_free(vcek);
    snp_vcek_ref(NULL);
    snp_vcek_free(NULL);
    assert_null(snp_vcek_get_info(NULL));
}

/* Runs `openssl verify` on a Milan VCEK with the AMD roots at a given time. */
static int openssl_verify_at(time_t at, const char *pem_path)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl verify -attime %lld -CAfile %s/milan_ark.pem -untrusted %s/milan_ask.pem "
             "%s >/dev/null 2>&1",
             (long long)at, AMD_DIR, AMD_DIR, pem_path);
    return system(cmd);
}

static void test_genuine_chain(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    snp_vcek *vcek = parse_vcek_ok(&F->vcek_a);
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    time_t from = 0, until = 0;
    assert_int_equal(snp_vcek_verify_chain(vcek, F->builtin, AT_2024, &from, &until, &diag),
                     VTPMCA_OK);
    /* The VCEK's window lies inside the ASK's and ARK's (2020..2045). */
    assert_int_equal(from, info->not_before);
    assert_int_equal(until, info->not_after);
    assert_int_equal(snp_vcek_verify_chain(vcek, F->builtin, info->not_after, NULL, NULL, &diag),
                     VTPMCA_OK);

    expect_error(snp_vcek_verify_chain(vcek, F->builtin, AT_2035, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "VCEK expired at 2029-09-24T00:55:28Z", "2035");
    expect_error(snp_vcek_verify_chain(vcek, F->builtin, info->not_before - 1, NULL, NULL, &diag),
                 &diag, VTPMCA_ERR_CRYPTO, "VCEK is not valid before 2022-09-24T00:55:28Z",
                 "before");
    /* 2046: the Milan ASK expired too; the VCEK is reported first. */
    expect_error(snp_vcek_verify_chain(vcek, F->builtin, 2400000000, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "expired", "2046");
    /* Test roots only: no Milan chain at all. */
    expect_error(snp_vcek_verify_chain(vcek, F->test_roots, AT_2024, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "no trusted Milan ASK", "test roots");
    assert_int_equal(snp_vcek_verify_chain(NULL, F->builtin, AT_2024, NULL, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_vcek_verify_chain(vcek, NULL, AT_2024, NULL, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    /* Cross-check with the openssl CLI: it agrees on both dates. */
    char pem_path[256];
    snprintf(pem_path, sizeof(pem_path), "%s/vcek_a.pem", F->tmpdir);
    FILE *out = fopen(pem_path, "w");
    assert_non_null(out);
    X509 *cert = der_to_x509(&F->vcek_a);
    assert_true(PEM_write_X509(out, cert));
    fclose(out);
    X509_free(cert);
    assert_int_equal(openssl_verify_at(AT_2024, pem_path), 0);
    assert_int_not_equal(openssl_verify_at(AT_2035, pem_path), 0);
    snp_vcek_free(vcek);
}

static void test_genuine_binding(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    snp_vcek *vcek_a = parse_vcek_ok(&F->vcek_a);
    snp_vcek *vcek_b = parse_vcek_ok(&F->vcek_b);
    snp_report report_a, report_b;
    parse_report_ok(F->report_a.data, &report_a);
    parse_report_ok(F->report_b.data, &report_b);

    expect_all_ok(vcek_a, &report_a, F->builtin, AT_2024);
    expect_all_ok(vcek_b, &report_b, F->builtin, AT_2024);

    /* Report a against chip b's VCEK: the TCBs differ first (bootloader 2 vs 3). */
    expect_error(snp_vcek_check_report(vcek_b, &report_a, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "blSPL (bootloader) is 2 but the VCEK certifies 3", "a vs b");
    /* Same TCB, other chip: the chip id is named. */
    snp_report altered = report_a;
    altered.reported_tcb = report_b.reported_tcb;
    expect_error(snp_vcek_check_report(vcek_b, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "chip_id does not match the VCEK hwID", "chip id");
    /* One component off: the diag names it. */
    altered = report_a;
    altered.reported_tcb += 1ull << 56; /* microcode */
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "ucodeSPL (microcode) is 69", "microcode");
    altered = report_a;
    altered.reported_tcb += 1ull << 48; /* SNP */
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO, "snpSPL",
                 "snp");
    altered = report_a;
    altered.reported_tcb |= 1ull << 24; /* a reserved byte on Milan */
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "not a valid Milan TCB", "reserved");
    /* current_tcb is not what the VCEK certifies; changing it does not matter here. */
    altered = report_a;
    altered.current_tcb = 0;
    assert_int_equal(snp_vcek_check_report(vcek_a, &altered, &diag), VTPMCA_OK);
    /* The signer kind must match. */
    altered = report_a;
    altered.key_info = SNP_SIGNER_VLEK << 2;
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "names the VLEK as signer but the certificate is a VCEK", "kind");
    /* A masked chip id cannot bind to a VCEK; the diag says why. */
    altered = report_a;
    altered.key_info |= SNP_KEY_INFO_MASK_CHIP_KEY;
    memset(altered.chip_id, 0, sizeof(altered.chip_id));
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "MASK_CHIP_KEY", "masked");
    /* v3+: the CPUID product must be the VCEK's. */
    altered = report_a;
    altered.version = 3;
    altered.cpuid_family = 0x19;
    altered.cpuid_model = 0x11;
    expect_error(snp_vcek_check_report(vcek_a, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "Genoa) does not match the VCEK product Milan-B0", "cpuid");
    altered.cpuid_model = 0x01;
    assert_int_equal(snp_vcek_check_report(vcek_a, &altered, &diag), VTPMCA_OK);
    assert_int_equal(snp_vcek_check_report(NULL, &report_a, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_vcek_check_report(vcek_a, NULL, NULL), VTPMCA_ERR_INVALID_ARG);

    snp_vcek_free(vcek_a);
    snp_vcek_free(vcek_b);
}

static void test_genuine_signature(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    snp_vcek *vcek_a = parse_vcek_ok(&F->vcek_a);
    snp_vcek *vcek_b = parse_vcek_ok(&F->vcek_b);
    snp_report report, altered;
    parse_report_ok(F->report_a.data, &report);

    assert_int_equal(snp_report_verify_signature(&report, vcek_a, &diag), VTPMCA_OK);
    expect_error(snp_report_verify_signature(&report, vcek_b, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "does not verify with the VCEK", "cross pairing");

    /* One flipped bit anywhere in the signed area (a different bit for each byte). */
    for (size_t off = 0; off < SNP_REPORT_SIGNED_SIZE; off++) {
        altered = report;
        altered.raw[off] ^= (uint8_t)(1u << (off % 8));
        if (snp_report_verify_signature(&altered, vcek_a, &diag) != VTPMCA_ERR_CRYPTO)
            fail_msg("a flipped bit at 0x%03zx still verifies", off);
    }
    /* And in r and s. */
    for (size_t i = 0; i < 48; i++) {
        altered = report;
        altered.sig_r[i] ^= (uint8_t)(0x80u >> (i % 8));
        assert_int_equal(snp_report_verify_signature(&altered, vcek_a, NULL), VTPMCA_ERR_CRYPTO);
        altered = report;
        altered.sig_s[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(snp_report_verify_signature(&altered, vcek_a, NULL), VTPMCA_ERR_CRYPTO);
    }
    /* Only the low 48 bytes of r and s may be non-zero for P-384. */
    altered = report;
    altered.sig_r[48] = 1;
    expect_error(snp_report_verify_signature(&altered, vcek_a, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "signature r has non-zero bytes", "r high");
    altered = report;
    altered.sig_s[71] = 0x80;
    expect_error(snp_report_verify_signature(&altered, vcek_a, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "signature s has non-zero bytes", "s high");
    altered = report;
    memset(altered.sig_r, 0, sizeof(altered.sig_r));
    assert_int_equal(snp_report_verify_signature(&altered, vcek_a, NULL), VTPMCA_ERR_CRYPTO);

    /* Report b verifies with its own VCEK only. */
    parse_report_ok(F->report_b.data, &report);
    assert_int_equal(snp_report_verify_signature(&report, vcek_b, &diag), VTPMCA_OK);
    expect_error(snp_report_verify_signature(&report, vcek_a, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "does not verify", "b with a");
    assert_int_equal(snp_report_verify_signature(NULL, vcek_a, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_report_verify_signature(&report, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    snp_vcek_free(vcek_a);
    snp_vcek_free(vcek_b);
}

/* ---- certificate decoding ---- */

static void expect_parse_error(const blob *b, vtpmca_err want, const char *diag_has,
                               const char *what)
{
    static char sentinel_storage; /* any address: *out must stay untouched on failure */
    snp_vcek *const sentinel = (snp_vcek *)&sentinel_storage;
    snp_vcek *vcek = sentinel;
    vtpmca_diag diag = {{0}};
    expect_error(snp_vcek_parse(b->data, b->len, &vcek, &diag), &diag, want, diag_has, what);
    assert_ptr_equal(vcek, sentinel);
}

/* Alters the genuine VCEK, re-encodes it and checks the parser's verdict. */
typedef void (*cert_mutation)(X509 *cert);

static void mutate_and_expect(cert_mutation mutate, vtpmca_err want, const char *diag_has,
                              const char *what)
{
    X509 *cert = der_to_x509(&F->vcek_a);
    mutate(cert);
    blob b = x509_to_der_resigned(cert);
    X509_free(cert);
    expect_parse_error(&b, want, diag_has, what);
    free(b.data);
}

static void drop_bl_spl(X509 *c)
{
    delete_ext(c, "1.3.6.1.4.1.3704.1.3.1");
}
static void drop_ucode_spl(X509 *c)
{
    delete_ext(c, "1.3.6.1.4.1.3704.1.3.8");
}
static void drop_hwid(X509 *c)
{
    delete_ext(c, "1.3.6.1.4.1.3704.1.4");
}
static void drop_product_name(X509 *c)
{
    delete_ext(c, "1.3.6.1.4.1.3704.1.2");
}
static void drop_struct_version(X509 *c)
{
    delete_ext(c, "1.3.6.1.4.1.3704.1.1");
}
static void spl_as_octet_string(X509 *c)
{
    const uint8_t value[] = {0x04, 0x01, 0x02};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.1", value, sizeof(value));
}
static void spl_256(X509 *c)
{
    const uint8_t value[] = {0x02, 0x02, 0x01, 0x00};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.3", value, sizeof(value));
}
static void spl_negative(X509 *c)
{
    const uint8_t value[] = {0x02, 0x01, 0xFF};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.2", value, sizeof(value));
}
static void spl_trailing_byte(X509 *c)
{
    const uint8_t value[] = {0x02, 0x01, 0x05, 0x00};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.3", value, sizeof(value));
}
static void spl_truncated(X509 *c)
{
    const uint8_t value[] = {0x02, 0x02, 0x05};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.8", value, sizeof(value));
}
static void hwid_63_bytes(X509 *c)
{
    uint8_t value[63] = {0};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.4", value, sizeof(value));
}
static void product_bergamo(X509 *c)
{
    const uint8_t value[] = {0x16, 0x07, 'B', 'e', 'r', 'g', 'a', 'm', 'o'};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.2", value, sizeof(value));
}
static void product_utf8(X509 *c)
{
    const uint8_t value[] = {0x0C, 0x08, 'M', 'i', 'l', 'a', 'n', '-', 'B', '0'};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.2", value, sizeof(value));
}
static void duplicate_snp_spl(X509 *c)
{
    int index = find_ext(c, "1.3.6.1.4.1.3704.1.3.3");
    assert_true(index >= 0);
    assert_true(X509_add_ext(c, X509_get_ext(c, index), -1));
}
static void subject_not_vcek(X509 *c)
{
    X509_NAME *name = X509_NAME_new();
    assert_non_null(name);
    assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                           (const unsigned char *)"SEV-Milan", -1, -1, 0));
    assert_true(X509_set_subject_name(c, name));
    X509_NAME_free(name);
}
static void p256_key(X509 *c)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    assert_true(X509_set_pubkey(c, key));
    EVP_PKEY_free(key);
}

static void test_vcek_parse_rejections(void **state)
{
    (void)state;
    mutate_and_expect(drop_bl_spl, VTPMCA_ERR_PARSE, "blSPL (1.3.6.1.4.1.3704.1.3.1) is missing",
                      "no blSPL");
    mutate_and_expect(drop_ucode_spl, VTPMCA_ERR_PARSE, "ucodeSPL", "no ucodeSPL");
    mutate_and_expect(drop_hwid, VTPMCA_ERR_PARSE, "hwID (1.3.6.1.4.1.3704.1.4) is missing",
                      "no hwID");
    mutate_and_expect(drop_product_name, VTPMCA_ERR_PARSE, "productName", "no productName");
    mutate_and_expect(drop_struct_version, VTPMCA_ERR_PARSE, "structVersion", "no structVersion");
    mutate_and_expect(spl_as_octet_string, VTPMCA_ERR_PARSE, "blSPL is not a DER INTEGER",
                      "SPL type");
    mutate_and_expect(spl_256, VTPMCA_ERR_PARSE, "snpSPL is out of range", "SPL 256");
    mutate_and_expect(spl_negative, VTPMCA_ERR_PARSE, "teeSPL is out of range", "SPL -1");
    mutate_and_expect(spl_trailing_byte, VTPMCA_ERR_PARSE, "snpSPL is not a DER", "SPL trailing");
    mutate_and_expect(spl_truncated, VTPMCA_ERR_PARSE, "ucodeSPL is not a DER", "SPL truncated");
    mutate_and_expect(hwid_63_bytes, VTPMCA_ERR_PARSE, "hwID is 63 bytes", "hwID size");
    mutate_and_expect(product_bergamo, VTPMCA_ERR_UNSUPPORTED, "Bergamo", "product");
    mutate_and_expect(product_utf8, VTPMCA_ERR_PARSE, "productName is not a DER IA5STRING",
                      "product type");
    mutate_and_expect(duplicate_snp_spl, VTPMCA_ERR_PARSE, "snpSPL", "duplicate");
    mutate_and_expect(subject_not_vcek, VTPMCA_ERR_PARSE, "neither SEV-VCEK nor SEV-VLEK", "CN");
    mutate_and_expect(p256_key, VTPMCA_ERR_UNSUPPORTED, "not an EC P-384 key", "P-256");

    /* Not a certificate at all, trailing bytes, empty, too large. */
    uint8_t junk[64];
    memset(junk, 0x30, sizeof(junk));
    blob b = {junk, sizeof(junk)};
    expect_parse_error(&b, VTPMCA_ERR_PARSE, "neither DER nor PEM", "junk");
    uint8_t *longer = malloc(F->vcek_a.len + 1);
    assert_non_null(longer);
    memcpy(longer, F->vcek_a.data, F->vcek_a.len);
    longer[F->vcek_a.len] = 0;
    b = (blob){longer, F->vcek_a.len + 1};
    expect_parse_error(&b, VTPMCA_ERR_PARSE, "1 trailing bytes", "trailing");
    b = (blob){longer, F->vcek_a.len - 1};
    expect_parse_error(&b, VTPMCA_ERR_PARSE, "neither DER nor PEM", "truncated");
    free(longer);
    const char *bad_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    b = (blob){(uint8_t *)bad_pem, strlen(bad_pem)};
    expect_parse_error(&b, VTPMCA_ERR_PARSE, "neither DER nor PEM", "bad PEM");
    b = (blob){junk, 0};
    expect_parse_error(&b, VTPMCA_ERR_INVALID_ARG, "missing", "empty");
    uint8_t *huge = calloc(1, 70000);
    assert_non_null(huge);
    b = (blob){huge, 70000};
    expect_parse_error(&b, VTPMCA_ERR_LIMIT, "70000", "huge");
    free(huge);
}

static void hwid_wrapped(X509 *c)
{
    uint8_t value[66] = {0x04, 0x40};
    memcpy(value + 2, F->report_a.data + 0x1A0, 64);
    set_ext_value(c, "1.3.6.1.4.1.3704.1.4", value, sizeof(value));
}

static void spl_two_byte(X509 *c)
{
    /* 0xD9 needs a leading zero byte in DER: 02 02 00 D9. */
    const uint8_t value[] = {0x02, 0x02, 0x00, 0xD9};
    set_ext_value(c, "1.3.6.1.4.1.3704.1.3.8", value, sizeof(value));
}

static void test_vcek_parse_variants(void **state)
{
    (void)state;
    const struct {
        cert_mutation mutate;
        const char *what;
    } cases[] = {{hwid_wrapped, "hwID in an OCTET STRING"}, {spl_two_byte, "SPL 0xD9"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509 *cert = der_to_x509(&F->vcek_a);
        cases[i].mutate(cert);
        blob b = x509_to_der_resigned(cert);
        X509_free(cert);
        snp_vcek *vcek = parse_vcek_ok(&b);
        const snp_vcek_info *info = snp_vcek_get_info(vcek);
        assert_int_equal(info->hwid_len, 64);
        assert_memory_equal(info->hwid, F->report_a.data + 0x1A0, 64);
        if (cases[i].mutate == spl_two_byte) {
            assert_int_equal(info->tcb.microcode, 0xD9);
            assert_int_equal(info->tcb_raw, 0xD905000000000002ull);
        }
        /* Re-signed by a stranger: the chain no longer holds. */
        vtpmca_diag diag = {{0}};
        expect_error(snp_vcek_verify_chain(vcek, F->builtin, AT_2024, NULL, NULL, &diag), &diag,
                     VTPMCA_ERR_CRYPTO, "not RSASSA-PSS", cases[i].what);
        snp_vcek_free(vcek);
        free(b.data);
    }
}

/* ---- synthetic evidence from the test-only signer ---- */

static void test_synthetic_genoa(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    const snp_tcb tcb = {.bootloader = 9, .tee = 0, .snp = 0x17, .microcode = 0x48};
    synthetic s = {0};
    make_synthetic(F->genoa, SNP_SIGNER_VCEK, 3, &tcb, &s);
    const snp_vcek_info *info = snp_vcek_get_info(s.vcek);
    assert_int_equal(info->product, SNP_PRODUCT_GENOA);
    assert_int_equal(snp_report_product(&s.report), SNP_PRODUCT_GENOA);
    assert_memory_equal(&info->tcb, &tcb, sizeof(tcb));
    time_t now = time(NULL);
    expect_all_ok(s.vcek, &s.report, F->test_roots, now);

    /* The builtin (AMD) roots do not trust the test root. */
    expect_error(snp_vcek_verify_chain(s.vcek, F->builtin, now, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "VCEK issuer is not a trusted Genoa ASK", "builtin");
    /* ... until its directory is added explicitly; then both kinds of root work. */
    snp_roots *both = NULL;
    assert_int_equal(snp_roots_new_builtin(&both, &diag), VTPMCA_OK);
    assert_int_equal(snp_roots_add_dir(both, F->testroots_dir, &diag), VTPMCA_OK);
    expect_all_ok(s.vcek, &s.report, both, now);
    snp_vcek *genuine = parse_vcek_ok(&F->vcek_a);
    assert_int_equal(snp_vcek_verify_chain(genuine, both, AT_2024, NULL, NULL, &diag), VTPMCA_OK);
    snp_vcek_free(genuine);
    snp_roots_free(both);

    /* The window is the intersection of the three certificates' windows. */
    time_t from = 0, until = 0;
    assert_int_equal(snp_vcek_verify_chain(s.vcek, F->test_roots, now, &from, &until, &diag),
                     VTPMCA_OK);
    assert_int_equal(from, info->not_before);
    assert_int_equal(until, info->not_after);

    /* A v3 report from a Turin CPU cannot use a Genoa VCEK. */
    snp_report altered = s.report;
    altered.cpuid_family = 0x1A;
    altered.cpuid_model = 0x02;
    expect_error(snp_vcek_check_report(s.vcek, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "Turin) does not match the VCEK product Genoa", "cpuid");
    free_synthetic(&s);
}

static void test_synthetic_turin(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    const snp_tcb tcb = {.fmc = 2, .bootloader = 3, .tee = 4, .snp = 5, .microcode = 0x66};
    synthetic s = {0};
    make_synthetic(F->turin, SNP_SIGNER_VCEK, 5, &tcb, &s);
    const snp_vcek_info *info = snp_vcek_get_info(s.vcek);
    assert_int_equal(info->product, SNP_PRODUCT_TURIN);
    assert_string_equal(info->product_name, "Turin");
    assert_memory_equal(&info->tcb, &tcb, sizeof(tcb));
    assert_int_equal(info->tcb_raw, 0x6600000005040302ull);
    assert_int_equal(info->tcb_raw, s.report.reported_tcb);
    /* Turin VCEKs carry an 8-byte hwID: the first 8 bytes of chip_id. */
    assert_int_equal(info->hwid_len, 8);
    assert_memory_equal(info->hwid, s.report.chip_id, 8);
    expect_all_ok(s.vcek, &s.report, F->test_roots, time(NULL));

    snp_report altered = s.report;
    altered.chip_id[20] ^= 1; /* beyond the 8 bytes that count */
    assert_int_equal(snp_vcek_check_report(s.vcek, &altered, &diag), VTPMCA_OK);
    altered.chip_id[7] ^= 1;
    expect_error(snp_vcek_check_report(s.vcek, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "chip_id does not match", "turin chip id");
    altered = s.report;
    altered.reported_tcb += 1; /* FMC is byte 0 on Turin */
    expect_error(snp_vcek_check_report(s.vcek, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "fmcSPL (fmc) is 3 but the VCEK certifies 2", "fmc");
    /* A Milan-layout TCB is not a Turin one. */
    altered.reported_tcb = 0x4405000000000002ull;
    expect_error(snp_vcek_check_report(s.vcek, &altered, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "not a valid Turin TCB", "layout");
    free_synthetic(&s);
}

static void test_synthetic_vlek(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    const snp_tcb tcb = {.bootloader = 1, .tee = 2, .snp = 3, .microcode = 4};
    synthetic vlek = {0}, vcek = {0};
    make_synthetic(F->genoa, SNP_SIGNER_VLEK, 3, &tcb, &vlek);
    const snp_vcek_info *info = snp_vcek_get_info(vlek.vcek);
    assert_int_equal(info->kind, SNP_SIGNER_VLEK);
    assert_string_equal(info->csp_id, "vtpmca-test");
    assert_int_equal(info->hwid_len, 0);
    assert_int_equal(snp_report_signer(&vlek.report), SNP_SIGNER_VLEK);
    expect_all_ok(vlek.vcek, &vlek.report, F->test_roots, time(NULL));
    /* No hwID binding for a VLEK: any chip id is fine. */
    snp_report altered = vlek.report;
    memset(altered.chip_id, 0, sizeof(altered.chip_id));
    assert_int_equal(snp_vcek_check_report(vlek.vcek, &altered, &diag), VTPMCA_OK);

    /* csp_id may be a UTF8String too; anything else, or none, is refused. */
    const struct {
        const uint8_t *value;
        size_t len;
        const char *expect_csp; /* NULL: rejected */
        const char *diag_has;
    } csp_cases[] = {
        {(const uint8_t *)"\x0C\x04"
                          "acme",
         6, "acme", NULL},
        {(const uint8_t *)"\x02\x01\x05", 3, NULL, "csp_id is not a DER IA5STRING"},
        {(const uint8_t *)"\x16\x00", 2, NULL, "csp_id has a bad length (0)"},
        {NULL, 0, NULL, "csp_id (1.3.6.1.4.1.3704.1.5) is missing"},
    };
    for (size_t i = 0; i < sizeof(csp_cases) / sizeof(csp_cases[0]); i++) {
        X509 *cert = der_to_x509(&vlek.der);
        if (csp_cases[i].value != NULL)
            set_ext_value(cert, "1.3.6.1.4.1.3704.1.5", csp_cases[i].value, csp_cases[i].len);
        else
            delete_ext(cert, "1.3.6.1.4.1.3704.1.5");
        blob b = x509_to_der_resigned(cert);
        X509_free(cert);
        if (csp_cases[i].expect_csp != NULL) {
            snp_vcek *parsed = parse_vcek_ok(&b);
            assert_string_equal(snp_vcek_get_info(parsed)->csp_id, csp_cases[i].expect_csp);
            snp_vcek_free(parsed);
        } else {
            expect_parse_error(&b, VTPMCA_ERR_PARSE, csp_cases[i].diag_has, "csp_id");
        }
        free(b.data);
    }

    /* VLEK and VCEK are not interchangeable. */
    make_synthetic(F->genoa, SNP_SIGNER_VCEK, 3, &tcb, &vcek);
    expect_error(snp_vcek_check_report(vlek.vcek, &vcek.report, &diag), &diag, VTPMCA_ERR_CRYPTO,
                 "names the VCEK as signer but the certificate is a VLEK", "vlek vs vcek");
    expect_error(snp_report_verify_signature(&vcek.report, vlek.vcek, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "does not verify with the VLEK", "vlek signature");
    free_synthetic(&vlek);
    free_synthetic(&vcek);
}

/* A VCEK whose signature is genuine but not RSASSA-PSS SHA-384 salt 48 is refused. */
static void test_synthetic_chain_signature_algorithm(void **state)
{
    (void)state;
    EVP_PKEY *ask_key = read_test_key("genoa_ask.key.pem");
    const snp_tcb tcb = {.bootloader = 1};
    synthetic s = {0};
    make_synthetic(F->genoa, SNP_SIGNER_VCEK, 2, &tcb, &s);
    const struct {
        int salt; /* 0: PKCS#1 v1.5 */
        const char *diag_has;
    } cases[] = {{0, "VCEK is signed with sha384WithRSAEncryption, not RSASSA-PSS"},
                 {32, "VCEK: RSASSA-PSS salt length is not 48 bytes"},
                 {48, NULL}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509 *cert = der_to_x509(&s.der);
        if (cases[i].salt == 0)
            assert_true(X509_sign(cert, ask_key, EVP_sha384()) > 0);
        else
            sign_pss(cert, ask_key, cases[i].salt);
        assert_int_equal(X509_verify(cert, ask_key), 1); /* a genuine signature */
        unsigned char *der = NULL;
        int len = i2d_X509(cert, &der);
        assert_true(len > 0);
        X509_free(cert);
        blob b = {der, (size_t)len};
        snp_vcek *vcek = parse_vcek_ok(&b);
        OPENSSL_free(der);
        vtpmca_diag diag = {{0}};
        vtpmca_err err = snp_vcek_verify_chain(vcek, F->test_roots, time(NULL), NULL, NULL, &diag);
        if (cases[i].diag_has == NULL)
            assert_int_equal(err, VTPMCA_OK); /* re-signed the AMD way: still fine */
        else
            expect_error(err, &diag, VTPMCA_ERR_CRYPTO, cases[i].diag_has, "algorithm");
        snp_vcek_free(vcek);
    }
    free_synthetic(&s);
    EVP_PKEY_free(ask_key);
}

static void test_synthetic_validity(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    time_t now = time(NULL);
    const snp_root_chain *turin_ask = NULL;
    for (size_t i = 0; i < snp_roots_count(F->test_roots); i++) {
        const snp_root_chain *chain = snp_roots_get(F->test_roots, i);
        if (chain->product == SNP_PRODUCT_TURIN && chain->kind == SNP_SIGNER_VCEK)
            turin_ask = chain;
    }
    assert_non_null(turin_ask);
    time_t ask_from = turin_ask->intermediate_not_before; /* a day before the root was made */

    /* A VCEK that expired an hour after the ASK became valid. */
    snp_test_cert_params params = {
        .kind = SNP_SIGNER_VCEK, .not_before = ask_from, .not_after = ask_from + 3600};
    EVP_PKEY *key = NULL;
    blob der = {0};
    assert_int_equal(snp_test_issue_cert(F->turin, &params, &key, &der.data, &der.len, &diag),
                     VTPMCA_OK);
    snp_vcek *vcek = parse_vcek_ok(&der);
    expect_error(snp_vcek_verify_chain(vcek, F->test_roots, now, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "VCEK expired at", "expired");
    assert_int_equal(snp_vcek_verify_chain(vcek, F->test_roots, ask_from + 60, NULL, NULL, &diag),
                     VTPMCA_OK);
    /* Before the ASK (and the VCEK) became valid. */
    expect_error(snp_vcek_verify_chain(vcek, F->test_roots, ask_from - 60, NULL, NULL, &diag),
                 &diag, VTPMCA_ERR_CRYPTO, "VCEK is not valid before", "not yet valid");
    snp_vcek_free(vcek);
    EVP_PKEY_free(key);
    free(der.data);

    /* A VCEK that outlives its ASK: the chain window ends with the ASK. */
    params.not_before = now - 3600;
    params.not_after = turin_ask->intermediate_not_after + 365 * 86400;
    assert_int_equal(snp_test_issue_cert(F->turin, &params, &key, &der.data, &der.len, &diag),
                     VTPMCA_OK);
    vcek = parse_vcek_ok(&der);
    time_t from = 0, until = 0;
    assert_int_equal(snp_vcek_verify_chain(vcek, F->test_roots, now, &from, &until, &diag),
                     VTPMCA_OK);
    assert_int_equal(from, params.not_before);
    assert_int_equal(until, turin_ask->intermediate_not_after);
    expect_error(snp_vcek_verify_chain(vcek, F->test_roots, until + 1, NULL, NULL, &diag), &diag,
                 VTPMCA_ERR_CRYPTO, "Turin ASK expired at", "ask expired");
    snp_vcek_free(vcek);
    EVP_PKEY_free(key);
    free(der.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_roots),
        cmocka_unit_test(test_roots_add_dir),
        cmocka_unit_test(test_roots_dir_rejections),
        cmocka_unit_test(test_roots_signature_algorithm),
        cmocka_unit_test(test_genuine_vcek_info),
        cmocka_unit_test(test_genuine_chain),
        cmocka_unit_test(test_genuine_binding),
        cmocka_unit_test(test_genuine_signature),
        cmocka_unit_test(test_vcek_parse_rejections),
        cmocka_unit_test(test_vcek_parse_variants),
        cmocka_unit_test(test_synthetic_genoa),
        cmocka_unit_test(test_synthetic_turin),
        cmocka_unit_test(test_synthetic_vlek),
        cmocka_unit_test(test_synthetic_chain_signature_algorithm),
        cmocka_unit_test(test_synthetic_validity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
