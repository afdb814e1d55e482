/* Tests for the TEST-ONLY SEV-SNP signer (tools/lib/snp_testsigner.c) and the snp-testroot
 * tool: certificate structure against AMD's genuine certificates, cross-checks with the
 * openssl CLI, report layout and signatures checked with OpenSSL, and the verifier's parser. */
#define _XOPEN_SOURCE 700 /* POSIX (mkdtemp, strdup, ...) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../support/ca_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_testsigner.h"

#define GENUINE_VCEK VTPMCA_SHARED_DIR "/testdata/snp/milan-v2-vcek.der"
#define AMD_DIR VTPMCA_SHARED_DIR "/amd"
#define KDS_OID "1.3.6.1.4.1.3704.1"

static const snp_product PRODUCTS[] = {SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN};
#define PRODUCT_COUNT 3

/* Made once per test file: RSA keygen is slow. */
static struct {
    snp_test_root *roots[PRODUCT_COUNT];
    char dir[256];
} fx;

static snp_test_root *root_for(snp_product product)
{
    for (size_t i = 0; i < PRODUCT_COUNT; i++)
        if (PRODUCTS[i] == product)
            return fx.roots[i];
    return NULL;
}

static const snp_tcb MILAN_TCB = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
static const snp_tcb TURIN_TCB = {.fmc = 1, .bootloader = 4, .tee = 2, .snp = 9, .microcode = 77};

static const snp_tcb *tcb_for(snp_product product)
{
    return product == SNP_PRODUCT_TURIN ? &TURIN_TCB : &MILAN_TCB;
}

static void fill_pattern(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + 7 * i);
}

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "test-snp-testsigner") != 0)
        return -1;
    for (size_t i = 0; i < PRODUCT_COUNT; i++) {
        vtpmca_diag diag = {""};
        if (snp_test_root_new(PRODUCTS[i], 2048, &fx.roots[i], &diag) != VTPMCA_OK) {
            fprintf(stderr, "test root: %s\n", diag.msg);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < PRODUCT_COUNT; i++)
        snp_test_root_free(fx.roots[i]);
    return ca_fixture_rmtree(fx.dir);
}

/* ---- helpers ---- */

static void path_in(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", fx.dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static void write_file(const char *path, const void *data, size_t len)
{
    assert_int_equal(vt_file_write_atomic(path, data, len, 0644, NULL), VTPMCA_OK);
}

static X509 *x509_from_der(const uint8_t *der, size_t len)
{
    const unsigned char *cursor = der;
    X509 *cert = d2i_X509(NULL, &cursor, (long)len);
    assert_non_null(cert);
    return cert;
}

static X509 *x509_from_file_der(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(path, 1 << 20, &data, &len, NULL), VTPMCA_OK);
    X509 *cert = x509_from_der(data, len);
    free(data);
    return cert;
}

/* Reads every PEM certificate of a file (up to max). */
static size_t x509_from_file_pem(const char *path, X509 **certs, size_t max)
{
    BIO *bio = BIO_new_file(path, "r");
    assert_non_null(bio);
    size_t count = 0;
    while (count < max && (certs[count] = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        count++;
    BIO_free(bio);
    ERR_clear_error();
    return count;
}

static void write_cert_pem(const char *path, X509 *cert)
{
    BIO *bio = BIO_new_file(path, "w");
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
    BIO_free(bio);
}

static X509 *root_cert(const snp_test_root *root, snp_test_ca which)
{
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(snp_test_root_get_cert_der(root, which, &der, &len, NULL), VTPMCA_OK);
    X509 *cert = x509_from_der(der, len);
    free(der);
    return cert;
}

static X509 *issue(snp_product product, snp_signer kind, const uint8_t chip_id[64], EVP_PKEY **key)
{
    snp_test_cert_params params = {.kind = kind, .tcb = *tcb_for(product)};
    if (chip_id != NULL)
        memcpy(params.chip_id, chip_id, 64);
    uint8_t *der = NULL;
    size_t len = 0;
    vtpmca_diag diag = {""};
    assert_int_equal(snp_test_issue_cert(root_for(product), &params, key, &der, &len, &diag),
                     VTPMCA_OK);
    X509 *cert = x509_from_der(der, len);
    free(der);
    return cert;
}

/* Runs a command, capturing stdout and stderr into out; returns the exit status. */
static int run_capture(const char *cmd, char *out, size_t out_size)
{
    char full[4096];
    int n = snprintf(full, sizeof(full), "%s 2>&1", cmd);
    assert_true(n > 0 && (size_t)n < sizeof(full)); /* a cut command would run something else */
    FILE *pipe = popen(full, "r");
    assert_non_null(pipe);
    size_t len = fread(out, 1, out_size - 1, pipe);
    out[len] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t count_occurrences(const char *haystack, const char *needle)
{
    size_t count = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        count++;
    return count;
}

static const X509_EXTENSION *kds_ext(const X509 *cert, const char *suffix)
{
    char oid_text[64];
    snprintf(oid_text, sizeof(oid_text), "%s.%s", KDS_OID, suffix);
    ASN1_OBJECT *oid = OBJ_txt2obj(oid_text, 1);
    int index = X509_get_ext_by_OBJ(cert, oid, -1);
    ASN1_OBJECT_free(oid);
    return index < 0 ? NULL : X509_get_ext(cert, index);
}

static long kds_integer(const X509 *cert, const char *suffix)
{
    const X509_EXTENSION *ext = kds_ext(cert, suffix);
    assert_non_null(ext);
    const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    const unsigned char *cursor = ASN1_STRING_get0_data(value);
    ASN1_INTEGER *integer = d2i_ASN1_INTEGER(NULL, &cursor, ASN1_STRING_length(value));
    assert_non_null(integer);
    /* The value is exactly one DER INTEGER, nothing after it. */
    assert_ptr_equal(cursor, ASN1_STRING_get0_data(value) + ASN1_STRING_length(value));
    long result = ASN1_INTEGER_get(integer);
    ASN1_INTEGER_free(integer);
    return result;
}

static void kds_ia5string(const X509 *cert, const char *suffix, char *out, size_t out_size)
{
    const X509_EXTENSION *ext = kds_ext(cert, suffix);
    assert_non_null(ext);
    const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    const unsigned char *cursor = ASN1_STRING_get0_data(value);
    ASN1_IA5STRING *text = d2i_ASN1_IA5STRING(NULL, &cursor, ASN1_STRING_length(value));
    assert_non_null(text);
    assert_true((size_t)ASN1_STRING_length(text) < out_size);
    memcpy(out, ASN1_STRING_get0_data(text), (size_t)ASN1_STRING_length(text));
    out[ASN1_STRING_length(text)] = '\0';
    ASN1_IA5STRING_free(text);
}

static const char *common_name(const X509_NAME *name, char *buf, size_t size)
{
    assert_true(X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)size) > 0);
    return buf;
}

/* Same attribute types, order and string types as AMD's names; values too, except the OU
 * that marks the test root. */
static void assert_name_shaped_like(const X509_NAME *ours, const X509_NAME *amd)
{
    assert_int_equal(X509_NAME_entry_count(ours), X509_NAME_entry_count(amd));
    for (int i = 0; i < X509_NAME_entry_count(amd); i++) {
        const X509_NAME_ENTRY *a = X509_NAME_get_entry(amd, i);
        const X509_NAME_ENTRY *o = X509_NAME_get_entry(ours, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(a));
        assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(o)), nid);
        const ASN1_STRING *av = X509_NAME_ENTRY_get_data(a), *ov = X509_NAME_ENTRY_get_data(o);
        assert_int_equal(ASN1_STRING_type(ov), ASN1_STRING_type(av));
        if (nid == NID_organizationalUnitName) {
            assert_string_equal((const char *)ASN1_STRING_get0_data(ov), "vtpmca-test");
        } else {
            assert_int_equal(ASN1_STRING_length(ov), ASN1_STRING_length(av));
            assert_memory_equal(ASN1_STRING_get0_data(ov), ASN1_STRING_get0_data(av),
                                (size_t)ASN1_STRING_length(av));
        }
    }
}

/* Same standard extensions, in the same order, with the same criticality. */
static void assert_ca_extensions_like(const X509 *ours, const X509 *amd)
{
    assert_int_equal(X509_get_ext_count(ours), X509_get_ext_count(amd));
    for (int i = 0; i < X509_get_ext_count(amd); i++) {
        X509_EXTENSION *a = X509_get_ext(amd, i), *o = X509_get_ext(ours, i);
        assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(o)),
                         OBJ_obj2nid(X509_EXTENSION_get_object(a)));
        assert_int_equal(X509_EXTENSION_get_critical(o), X509_EXTENSION_get_critical(a));
    }
    BASIC_CONSTRAINTS *bc_amd = X509_get_ext_d2i(amd, NID_basic_constraints, NULL, NULL);
    BASIC_CONSTRAINTS *bc_ours = X509_get_ext_d2i(ours, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc_ours);
    assert_true(bc_ours->ca);
    assert_int_equal(bc_ours->pathlen == NULL, bc_amd->pathlen == NULL);
    BASIC_CONSTRAINTS_free(bc_amd);
    BASIC_CONSTRAINTS_free(bc_ours);
    assert_int_equal(X509_get_key_usage((X509 *)ours), X509_get_key_usage((X509 *)amd));
}

/* ECDSA P-384/SHA-384 over bytes 0x000..0x29F with r, s rebuilt from the little-endian
 * report fields, independently of the signer: 1 valid, 0 invalid. */
static int openssl_verify_report(const uint8_t report[SNP_REPORT_SIZE], EVP_PKEY *public_key)
{
    BIGNUM *r = BN_lebin2bn(report + 0x2A0, 72, NULL);
    BIGNUM *s = BN_lebin2bn(report + 0x2E8, 72, NULL);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    assert_true(r != NULL && s != NULL && sig != NULL);
    assert_int_equal(ECDSA_SIG_set0(sig, r, s), 1);
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(sig, &der);
    assert_true(der_len > 0);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, public_key), 1);
    int rc = EVP_DigestVerify(ctx, der, (size_t)der_len, report, SNP_REPORT_SIGNED_SIZE);
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    ERR_clear_error();
    return rc == 1 ? 1 : 0;
}

/* ---- roots ---- */

static void test_root_new_rejects_bad_arguments(void **state)
{
    (void)state;
    snp_test_root *root = NULL;
    vtpmca_diag diag = {""};
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_UNKNOWN, 2048, &root, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "product"));
    assert_int_equal(snp_test_root_new((snp_product)42, 2048, &root, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 1024, &root, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "1024"));
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 8192, &root, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(root);
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 2048, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_root_product(NULL), SNP_PRODUCT_UNKNOWN);
    for (size_t i = 0; i < PRODUCT_COUNT; i++)
        assert_int_equal(snp_test_root_product(fx.roots[i]), PRODUCTS[i]);
}

static void assert_mode(const char *path, mode_t mode)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, mode);
}

static void test_root_save_load_roundtrip(void **state)
{
    (void)state;
    char dir[512], path[600];
    path_in(dir, sizeof(dir), "saved/nested");
    vtpmca_diag diag = {""};
    snp_test_root *original = root_for(SNP_PRODUCT_GENOA);
    char found[600] = "";
    assert_false(snp_test_root_files_exist(dir, SNP_PRODUCT_GENOA, found, sizeof(found)));
    assert_int_equal(snp_test_root_save(original, dir, &diag), VTPMCA_OK);
    assert_mode(dir, 0700);
    assert_true(snp_test_root_files_exist(dir, SNP_PRODUCT_GENOA, found, sizeof(found)));
    assert_non_null(strstr(found, "/saved/nested/genoa_"));
    assert_false(snp_test_root_files_exist(dir, SNP_PRODUCT_MILAN, NULL, 0));
    assert_false(snp_test_root_files_exist(dir, SNP_PRODUCT_UNKNOWN, NULL, 0));
    assert_false(snp_test_root_files_exist(NULL, SNP_PRODUCT_GENOA, NULL, 0));
    /* AMD's own published roots count too: tools must not overwrite them. */
    assert_true(snp_test_root_files_exist(AMD_DIR, SNP_PRODUCT_TURIN, NULL, 0));

    const char *keys[] = {"genoa_ark.key.pem", "genoa_ask.key.pem", "genoa_asvk.key.pem"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, keys[i]);
        assert_mode(path, 0600);
    }
    snprintf(path, sizeof(path), "%s/genoa_ark.pem", dir);
    assert_mode(path, 0644);

    snp_test_root *loaded = NULL;
    assert_int_equal(snp_test_root_load(dir, SNP_PRODUCT_GENOA, &loaded, &diag), VTPMCA_OK);
    assert_int_equal(snp_test_root_product(loaded), SNP_PRODUCT_GENOA);
    for (int which = SNP_TEST_CA_ARK; which <= SNP_TEST_CA_ASVK; which++) {
        X509 *a = root_cert(original, (snp_test_ca)which);
        X509 *b = root_cert(loaded, (snp_test_ca)which);
        assert_int_equal(X509_cmp(a, b), 0);
        X509_free(a);
        X509_free(b);
    }

    /* <product>_asvk_ark.pem holds the ASVK then the ARK, nothing else, like AMD's file. */
    X509 *pair[3] = {NULL, NULL, NULL};
    snprintf(path, sizeof(path), "%s/genoa_asvk_ark.pem", dir);
    assert_int_equal(x509_from_file_pem(path, pair, 3), 2);
    X509 *asvk = root_cert(original, SNP_TEST_CA_ASVK), *ark = root_cert(original, SNP_TEST_CA_ARK);
    assert_int_equal(X509_cmp(pair[0], asvk), 0);
    assert_int_equal(X509_cmp(pair[1], ark), 0);

    /* The loaded keys sign: a VCEK from the loaded root chains to the original ASK. */
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK, .tcb = MILAN_TCB};
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(snp_test_issue_cert(loaded, &params, &key, &der, &len, &diag), VTPMCA_OK);
    X509 *vcek = x509_from_der(der, len);
    X509 *ask = root_cert(original, SNP_TEST_CA_ASK);
    assert_int_equal(X509_verify(vcek, X509_get0_pubkey(ask)), 1);

    X509_free(vcek);
    X509_free(ask);
    X509_free(asvk);
    X509_free(ark);
    X509_free(pair[0]);
    X509_free(pair[1]);
    EVP_PKEY_free(key);
    free(der);
    snp_test_root_free(loaded);
}

/* Saves the Milan root to a fresh directory for a load test to damage. */
static void fresh_saved_root(const char *name, char *dir, size_t size)
{
    path_in(dir, size, name);
    assert_int_equal(snp_test_root_save(root_for(SNP_PRODUCT_MILAN), dir, NULL), VTPMCA_OK);
}

static void assert_load_fails(const char *dir, snp_product product, vtpmca_err expected,
                              const char *diag_part)
{
    snp_test_root *root = NULL;
    vtpmca_diag diag = {""};
    assert_int_equal(snp_test_root_load(dir, product, &root, &diag), expected);
    assert_null(root);
    if (strstr(diag.msg, diag_part) == NULL)
        fail_msg("diag \"%s\" does not mention \"%s\"", diag.msg, diag_part);
}

static void copy_file(const char *from, const char *to)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(from, 1 << 20, &data, &len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(to, data, len, 0600, NULL), VTPMCA_OK);
    free(data);
}

static void test_root_load_rejections(void **state)
{
    (void)state;
    char dir[512], path[600], other[600];
    snp_test_root *root = NULL;
    assert_int_equal(snp_test_root_load(NULL, SNP_PRODUCT_MILAN, &root, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    path_in(dir, sizeof(dir), "does-not-exist");
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_IO, "milan_ark.pem");

    fresh_saved_root("load-wrong-product", dir, sizeof(dir));
    assert_load_fails(dir, SNP_PRODUCT_GENOA, VTPMCA_ERR_IO, "genoa_ark.pem");
    assert_load_fails(dir, SNP_PRODUCT_UNKNOWN, VTPMCA_ERR_INVALID_ARG, "product");

    /* A key that belongs to another certificate. */
    fresh_saved_root("load-swapped-key", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/milan_ask.key.pem", dir);
    snprintf(other, sizeof(other), "%s/milan_asvk.key.pem", dir);
    copy_file(other, path);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_CRYPTO, "ASK private key");

    /* A certificate file that is not PEM. */
    fresh_saved_root("load-garbage-cert", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/milan_ask.pem", dir);
    write_file(path, "not a certificate\n", 18);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_PARSE, "milan_ask.pem");

    /* A key file that is not PEM. */
    fresh_saved_root("load-garbage-key", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/milan_ark.key.pem", dir);
    write_file(path, "nope", 4);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_PARSE, "milan_ark.key.pem");

    /* asvk_ark.pem with only the ASVK. */
    fresh_saved_root("load-short-pair", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/milan_asvk_ark.pem", dir);
    X509 *asvk = root_cert(root_for(SNP_PRODUCT_MILAN), SNP_TEST_CA_ASVK);
    write_cert_pem(path, asvk);
    X509_free(asvk);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_PARSE, "expected 2");

    /* The ASK of another root: right name, wrong signer. */
    fresh_saved_root("load-foreign-ask", dir, sizeof(dir));
    path_in(other, sizeof(other), "load-foreign-src");
    snp_test_root *foreign = NULL;
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &foreign, NULL), VTPMCA_OK);
    assert_int_equal(snp_test_root_save(foreign, other, NULL), VTPMCA_OK);
    snp_test_root_free(foreign);
    char from[700];
    snprintf(from, sizeof(from), "%s/milan_ask.pem", other);
    snprintf(path, sizeof(path), "%s/milan_ask.pem", dir);
    copy_file(from, path);
    snprintf(from, sizeof(from), "%s/milan_ask.key.pem", other);
    snprintf(path, sizeof(path), "%s/milan_ask.key.pem", dir);
    copy_file(from, path);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_CRYPTO, "ASK is not signed by the ARK");

    /* Another root's ARK in the pair file. */
    fresh_saved_root("load-foreign-pair", dir, sizeof(dir));
    snprintf(from, sizeof(from), "%s/milan_asvk_ark.pem", other);
    snprintf(path, sizeof(path), "%s/milan_asvk_ark.pem", dir);
    copy_file(from, path);
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_PARSE, "not the ARK");

    /* Genoa files renamed to Milan: the names inside do not match. */
    path_in(dir, sizeof(dir), "load-renamed");
    assert_int_equal(snp_test_root_save(root_for(SNP_PRODUCT_GENOA), dir, NULL), VTPMCA_OK);
    const char *suffixes[] = {"_ark.pem",     "_ask.pem",     "_asvk_ark.pem",
                              "_ark.key.pem", "_ask.key.pem", "_asvk.key.pem"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(from, sizeof(from), "%s/genoa%s", dir, suffixes[i]);
        snprintf(path, sizeof(path), "%s/milan%s", dir, suffixes[i]);
        assert_int_equal(rename(from, path), 0);
    }
    assert_load_fails(dir, SNP_PRODUCT_MILAN, VTPMCA_ERR_PARSE, "ARK-Milan");

    assert_int_equal(snp_test_root_save(NULL, dir, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_root_save(root_for(SNP_PRODUCT_MILAN), "", NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

static void test_root_accessors(void **state)
{
    (void)state;
    snp_test_root *root = root_for(SNP_PRODUCT_TURIN);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(snp_test_root_get_cert_der(NULL, SNP_TEST_CA_ARK, &der, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_root_get_cert_der(root, (snp_test_ca)9, &der, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(der);

    /* The KDS cert_chain shape: ASK (or ASVK) then ARK. */
    const snp_signer kinds[] = {SNP_SIGNER_VCEK, SNP_SIGNER_VLEK};
    const snp_test_ca signers[] = {SNP_TEST_CA_ASK, SNP_TEST_CA_ASVK};
    for (size_t k = 0; k < 2; k++) {
        char *pem = NULL;
        size_t pem_len = 0;
        assert_int_equal(snp_test_root_chain_pem(root, kinds[k], &pem, &pem_len, NULL), VTPMCA_OK);
        assert_int_equal(strlen(pem), pem_len);
        assert_int_equal(count_occurrences(pem, "-----BEGIN CERTIFICATE-----"), 2);
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
        X509 *signer = root_cert(root, signers[k]), *ark = root_cert(root, SNP_TEST_CA_ARK);
        assert_int_equal(X509_cmp(first, signer), 0);
        assert_int_equal(X509_cmp(second, ark), 0);
        X509_free(first);
        X509_free(second);
        X509_free(signer);
        X509_free(ark);
        free(pem);
    }
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(snp_test_root_chain_pem(root, SNP_SIGNER_NONE, &pem, &pem_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_root_chain_pem(NULL, SNP_SIGNER_VCEK, &pem, &pem_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(pem);
}

/* The CA certificates copy the structure of AMD's published ones. */
static void test_ca_certs_shaped_like_amd(void **state)
{
    (void)state;
    X509 *amd_ark = NULL, *amd_ask = NULL, *amd_pair[2] = {NULL, NULL};
    assert_int_equal(x509_from_file_pem(AMD_DIR "/milan_ark.pem", &amd_ark, 1), 1);
    assert_int_equal(x509_from_file_pem(AMD_DIR "/milan_ask.pem", &amd_ask, 1), 1);
    assert_int_equal(x509_from_file_pem(AMD_DIR "/milan_asvk_ark.pem", amd_pair, 2), 2);
    X509 *amd[] = {amd_ark, amd_ask, amd_pair[0]};
    snp_test_root *root = root_for(SNP_PRODUCT_MILAN);
    for (int which = SNP_TEST_CA_ARK; which <= SNP_TEST_CA_ASVK; which++) {
        X509 *ours = root_cert(root, (snp_test_ca)which);
        assert_int_equal(X509_get_version(ours), X509_get_version(amd[which]));
        /* AMD's serial numbers: 0x10000 ARK, 0x10001 ASK, 0x10101 ASVK for Milan. */
        assert_int_equal(
            ASN1_INTEGER_cmp(X509_get0_serialNumber(ours), X509_get0_serialNumber(amd[which])), 0);
        assert_name_shaped_like(X509_get_subject_name(ours), X509_get_subject_name(amd[which]));
        assert_name_shaped_like(X509_get_issuer_name(ours), X509_get_issuer_name(amd[which]));
        assert_ca_extensions_like(ours, amd[which]);
        assert_int_equal(X509_get_signature_nid(ours), NID_rsassaPss);
        assert_true(EVP_PKEY_is_a(X509_get0_pubkey(ours), "RSA"));
        X509_free(ours);
    }
    X509_free(amd_ark);
    X509_free(amd_ask);
    X509_free(amd_pair[0]);
    X509_free(amd_pair[1]);
}

/* ---- VCEK / VLEK ---- */

/* With the genuine VCEK's TCB and hwID, our VCEK's extensions are byte for byte AMD's. */
static void test_vcek_extensions_match_genuine(void **state)
{
    (void)state;
    X509 *genuine = x509_from_file_der(GENUINE_VCEK);
    snp_test_cert_params params = {
        .kind = SNP_SIGNER_VCEK,
        .tcb = {.bootloader = (uint8_t)kds_integer(genuine, "3.1"),
                .tee = (uint8_t)kds_integer(genuine, "3.2"),
                .snp = (uint8_t)kds_integer(genuine, "3.3"),
                .microcode = (uint8_t)kds_integer(genuine, "3.8")},
    };
    const ASN1_OCTET_STRING *hwid =
        X509_EXTENSION_get_data((X509_EXTENSION *)kds_ext(genuine, "4"));
    assert_int_equal(ASN1_STRING_length(hwid), 64);
    memcpy(params.chip_id, ASN1_STRING_get0_data(hwid), 64);

    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(
        snp_test_issue_cert(root_for(SNP_PRODUCT_MILAN), &params, &key, &der, &len, NULL),
        VTPMCA_OK);
    X509 *ours = x509_from_der(der, len);

    assert_int_equal(X509_get_ext_count(ours), X509_get_ext_count(genuine));
    for (int i = 0; i < X509_get_ext_count(genuine); i++) {
        unsigned char *a = NULL, *b = NULL;
        int a_len = i2d_X509_EXTENSION(X509_get_ext(genuine, i), &a);
        int b_len = i2d_X509_EXTENSION(X509_get_ext(ours, i), &b);
        assert_true(a_len > 0);
        assert_int_equal(b_len, a_len);
        assert_memory_equal(b, a, (size_t)a_len);
        OPENSSL_free(a);
        OPENSSL_free(b);
    }
    /* Serial 0, version 3, names shaped like AMD's, EC P-384 key. */
    assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(ours)), 0);
    assert_int_equal(X509_get_version(ours), X509_get_version(genuine));
    assert_name_shaped_like(X509_get_subject_name(ours), X509_get_subject_name(genuine));
    assert_name_shaped_like(X509_get_issuer_name(ours), X509_get_issuer_name(genuine));
    char group[32];
    assert_int_equal(EVP_PKEY_get_group_name(X509_get0_pubkey(ours), group, sizeof(group), NULL),
                     1);
    assert_string_equal(group, "secp384r1");
    /* The returned key is the certificate's. */
    assert_int_equal(X509_check_private_key(ours, key), 1);

    X509_free(ours);
    X509_free(genuine);
    EVP_PKEY_free(key);
    free(der);
}

static void test_turin_genoa_and_vlek_extensions(void **state)
{
    (void)state;
    uint8_t chip_id[64];
    fill_pattern(chip_id, sizeof(chip_id), 0x40);
    char text[64], cn[64];

    /* Turin: fmcSPL present, 8-byte hwID. */
    EVP_PKEY *key = NULL;
    X509 *turin = issue(SNP_PRODUCT_TURIN, SNP_SIGNER_VCEK, chip_id, &key);
    kds_ia5string(turin, "2", text, sizeof(text));
    assert_string_equal(text, "Turin");
    assert_int_equal(kds_integer(turin, "3.9"), TURIN_TCB.fmc);
    assert_int_equal(kds_integer(turin, "3.1"), TURIN_TCB.bootloader);
    assert_int_equal(kds_integer(turin, "3.2"), TURIN_TCB.tee);
    assert_int_equal(kds_integer(turin, "3.3"), TURIN_TCB.snp);
    assert_int_equal(kds_integer(turin, "3.8"), TURIN_TCB.microcode);
    const ASN1_OCTET_STRING *hwid = X509_EXTENSION_get_data((X509_EXTENSION *)kds_ext(turin, "4"));
    assert_int_equal(ASN1_STRING_length(hwid), 8);
    assert_memory_equal(ASN1_STRING_get0_data(hwid), chip_id, 8);
    assert_null(kds_ext(turin, "5"));
    assert_string_equal(common_name(X509_get_issuer_name(turin), cn, sizeof(cn)), "SEV-Turin");
    X509_free(turin);
    EVP_PKEY_free(key);

    /* Genoa: no fmcSPL, 64-byte hwID. */
    X509 *genoa = issue(SNP_PRODUCT_GENOA, SNP_SIGNER_VCEK, chip_id, &key);
    kds_ia5string(genoa, "2", text, sizeof(text));
    assert_string_equal(text, "Genoa");
    assert_null(kds_ext(genoa, "3.9"));
    hwid = X509_EXTENSION_get_data((X509_EXTENSION *)kds_ext(genoa, "4"));
    assert_int_equal(ASN1_STRING_length(hwid), 64);
    assert_memory_equal(ASN1_STRING_get0_data(hwid), chip_id, 64);
    X509_free(genoa);
    EVP_PKEY_free(key);

    /* VLEK: csp_id instead of hwID, CN SEV-VLEK, issued by the ASVK. */
    X509 *vlek = issue(SNP_PRODUCT_MILAN, SNP_SIGNER_VLEK, NULL, &key);
    assert_null(kds_ext(vlek, "4"));
    kds_ia5string(vlek, "5", text, sizeof(text));
    assert_string_equal(text, "vtpmca-test");
    assert_string_equal(common_name(X509_get_subject_name(vlek), cn, sizeof(cn)), "SEV-VLEK");
    assert_string_equal(common_name(X509_get_issuer_name(vlek), cn, sizeof(cn)), "SEV-VLEK-Milan");
    X509 *asvk = root_cert(root_for(SNP_PRODUCT_MILAN), SNP_TEST_CA_ASVK);
    assert_int_equal(X509_verify(vlek, X509_get0_pubkey(asvk)), 1);
    X509_free(asvk);
    X509_free(vlek);
    EVP_PKEY_free(key);

    snp_test_cert_params params = {.kind = SNP_SIGNER_VLEK, .tcb = MILAN_TCB, .csp_id = "cloud-7"};
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(
        snp_test_issue_cert(root_for(SNP_PRODUCT_MILAN), &params, &key, &der, &len, NULL),
        VTPMCA_OK);
    vlek = x509_from_der(der, len);
    kds_ia5string(vlek, "5", text, sizeof(text));
    assert_string_equal(text, "cloud-7");
    X509_free(vlek);
    EVP_PKEY_free(key);
    free(der);
}

static void test_issue_cert_validity_and_rejections(void **state)
{
    (void)state;
    snp_test_root *root = root_for(SNP_PRODUCT_MILAN);
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    vtpmca_diag diag = {""};

    /* Explicit validity is honoured (an expired VCEK for verifier tests). */
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK,
                                   .tcb = MILAN_TCB,
                                   .not_before = 1600000000,
                                   .not_after = 1700000000};
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, &len, &diag), VTPMCA_OK);
    X509 *cert = x509_from_der(der, len);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert), 1600000000), 0);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert), 1700000000), 0);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(der);
    key = NULL;
    der = NULL;

    /* Defaults: valid from yesterday for seven years. */
    params.not_before = params.not_after = 0;
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, &len, &diag), VTPMCA_OK);
    cert = x509_from_der(der, len);
    time_t now = time(NULL);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert), now), -1);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert), now + 6L * 365 * 86400), 1);
    assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert), now + 8L * 365 * 86400), -1);
    X509_free(cert);
    EVP_PKEY_free(key);
    free(der);
    key = NULL;
    der = NULL;

    const struct {
        snp_test_cert_params params;
        snp_product product;
        const char *diag_part;
    } bad[] = {
        {{.kind = SNP_SIGNER_NONE, .tcb = MILAN_TCB}, SNP_PRODUCT_MILAN, "VCEK or VLEK"},
        {{.kind = SNP_SIGNER_VCEK, .tcb = TURIN_TCB}, SNP_PRODUCT_MILAN, "Turin"},
        {{.kind = SNP_SIGNER_VCEK, .tcb = MILAN_TCB, .csp_id = "x"}, SNP_PRODUCT_MILAN, "VLEK"},
        {{.kind = SNP_SIGNER_VLEK, .tcb = MILAN_TCB, .csp_id = ""}, SNP_PRODUCT_MILAN, "csp_id"},
        {{.kind = SNP_SIGNER_VLEK, .tcb = MILAN_TCB, .csp_id = "a\tb"},
         SNP_PRODUCT_MILAN,
         "printable"},
        {{.kind = SNP_SIGNER_VCEK, .tcb = MILAN_TCB, .not_before = 200, .not_after = 100},
         SNP_PRODUCT_MILAN,
         "not_after"},
        {{.kind = SNP_SIGNER_VCEK, .tcb = MILAN_TCB, .not_after = 100},
         SNP_PRODUCT_MILAN,
         "not_after"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        diag.msg[0] = '\0';
        assert_int_equal(
            snp_test_issue_cert(root_for(bad[i].product), &bad[i].params, &key, &der, &len, &diag),
            VTPMCA_ERR_INVALID_ARG);
        if (strstr(diag.msg, bad[i].diag_part) == NULL)
            fail_msg("case %zu: diag \"%s\" lacks \"%s\"", i, diag.msg, bad[i].diag_part);
        assert_null(key);
        assert_null(der);
    }
    char long_id[200];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    params = (snp_test_cert_params){.kind = SNP_SIGNER_VLEK, .csp_id = long_id};
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    params = (snp_test_cert_params){.kind = SNP_SIGNER_VCEK};
    assert_int_equal(snp_test_issue_cert(NULL, &params, &key, &der, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_issue_cert(root, NULL, &key, &der, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_issue_cert(root, &params, NULL, &der, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_issue_cert(root, &params, &key, NULL, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(key);
    assert_null(der);
}

/* ---- cross-checks with the openssl command-line tool ---- */

static void test_openssl_cli_verifies_chains(void **state)
{
    (void)state;
    char cmd[4096], out[16384];
    for (size_t p = 0; p < PRODUCT_COUNT; p++) {
        snp_test_root *root = fx.roots[p];
        char ark[512], ask[512], asvk[512], vcek[512], vlek[512];
        char name[64];
        snprintf(name, sizeof(name), "cli-%zu-ark.pem", p);
        path_in(ark, sizeof(ark), name);
        snprintf(name, sizeof(name), "cli-%zu-ask.pem", p);
        path_in(ask, sizeof(ask), name);
        snprintf(name, sizeof(name), "cli-%zu-asvk.pem", p);
        path_in(asvk, sizeof(asvk), name);
        snprintf(name, sizeof(name), "cli-%zu-vcek.pem", p);
        path_in(vcek, sizeof(vcek), name);
        snprintf(name, sizeof(name), "cli-%zu-vlek.pem", p);
        path_in(vlek, sizeof(vlek), name);
        X509 *certs[5] = {root_cert(root, SNP_TEST_CA_ARK), root_cert(root, SNP_TEST_CA_ASK),
                          root_cert(root, SNP_TEST_CA_ASVK), NULL, NULL};
        EVP_PKEY *k1 = NULL, *k2 = NULL;
        uint8_t chip_id[64];
        fill_pattern(chip_id, sizeof(chip_id), (uint8_t)p);
        certs[3] = issue(PRODUCTS[p], SNP_SIGNER_VCEK, chip_id, &k1);
        certs[4] = issue(PRODUCTS[p], SNP_SIGNER_VLEK, NULL, &k2);
        const char *paths[5] = {ark, ask, asvk, vcek, vlek};
        for (size_t i = 0; i < 5; i++)
            write_cert_pem(paths[i], certs[i]);

        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s -untrusted %s %s", ark, ask, vcek);
        assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s -untrusted %s %s", ark, asvk, vlek);
        assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
        /* The check can fail: a VCEK does not chain through the ASVK. */
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s -untrusted %s %s", ark, asvk, vcek);
        assert_int_not_equal(run_capture(cmd, out, sizeof(out)), 0);

        /* Every signature is RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (0x30), both in
         * the TBS signature field and the outer one. */
        for (size_t i = 0; i < 5; i++) {
            snprintf(cmd, sizeof(cmd), "openssl x509 -noout -text -in %s", paths[i]);
            assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
            assert_int_equal(count_occurrences(out, "Signature Algorithm: rsassaPss"), 2);
            assert_int_equal(count_occurrences(out, "Hash Algorithm: sha384"), 2);
            assert_int_equal(count_occurrences(out, "Mask Algorithm: mgf1 with sha384"), 2);
            assert_int_equal(count_occurrences(out, "Salt Length: 0x30"), 2);
            assert_non_null(strstr(out, "OU = vtpmca-test"));
        }
        for (size_t i = 0; i < 5; i++)
            X509_free(certs[i]);
        EVP_PKEY_free(k1);
        EVP_PKEY_free(k2);
    }
    /* A VCEK of one root does not verify under another product's ARK. */
    char milan_ark[512], genoa_ask[512], milan_vcek[512];
    path_in(milan_ark, sizeof(milan_ark), "cli-0-ark.pem");
    path_in(genoa_ask, sizeof(genoa_ask), "cli-1-ask.pem");
    path_in(milan_vcek, sizeof(milan_vcek), "cli-1-vcek.pem");
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s -untrusted %s %s", milan_ark, genoa_ask,
             milan_vcek);
    assert_int_not_equal(run_capture(cmd, out, sizeof(out)), 0);
}

/* ---- reports ---- */

static void test_report_defaults(void **state)
{
    (void)state;
    uint8_t chip_id[64];
    fill_pattern(chip_id, sizeof(chip_id), 9);
    snp_report report;
    const uint32_t versions[] = {2, 3, 5};
    const uint8_t cpuid[PRODUCT_COUNT][2] = {{0x19, 0x01}, {0x19, 0x11}, {0x1A, 0x02}};
    for (size_t p = 0; p < PRODUCT_COUNT; p++) {
        for (size_t v = 0; v < 3; v++) {
            const snp_tcb *tcb = tcb_for(PRODUCTS[p]);
            assert_int_equal(
                snp_test_report_defaults(&report, PRODUCTS[p], versions[v], chip_id, tcb),
                VTPMCA_OK);
            assert_int_equal(report.version, versions[v]);
            assert_int_equal(report.policy, 0x30000);
            assert_int_equal(report.vmpl, 0);
            assert_int_equal(report.signature_algo, 1);
            assert_int_equal(report.key_info, 0); /* signer VCEK */
            assert_memory_equal(report.chip_id, chip_id, 64);
            uint64_t raw = 0;
            assert_int_equal(snp_tcb_encode(tcb, PRODUCTS[p], &raw), VTPMCA_OK);
            assert_int_equal(report.current_tcb, raw);
            assert_int_equal(report.reported_tcb, raw);
            assert_int_equal(report.committed_tcb, raw);
            assert_int_equal(report.launch_tcb, raw);
            if (versions[v] == 2) {
                assert_int_equal(report.cpuid_family, 0);
                assert_int_equal(report.cpuid_model, 0);
            } else {
                assert_int_equal(report.cpuid_family, cpuid[p][0]);
                assert_int_equal(report.cpuid_model, cpuid[p][1]);
            }
        }
    }
    /* Milan's TCB layout, written out by hand: bl byte 0, snp byte 6, ucode byte 7. */
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 2, chip_id, &MILAN_TCB),
                     VTPMCA_OK);
    assert_int_equal(report.reported_tcb, 0x7308000000000003ull);

    /* Rejections leave the report as it was. */
    memset(&report, 0xA5, sizeof(report));
    snp_report before = report;
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 4, chip_id, &MILAN_TCB),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 1, chip_id, &MILAN_TCB),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_UNKNOWN, 3, chip_id, &MILAN_TCB),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, chip_id, &TURIN_TCB),
                     VTPMCA_ERR_INVALID_ARG); /* fmc on Milan */
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, NULL, &MILAN_TCB),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, chip_id, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_defaults(NULL, SNP_PRODUCT_MILAN, 3, chip_id, &MILAN_TCB),
                     VTPMCA_ERR_INVALID_ARG);
    assert_memory_equal(&report, &before, sizeof(report));
}

/* Every field non-zero and distinct, so a field written to the wrong place shows up. */
static void fill_distinct_fields(snp_report *report, snp_product product, uint32_t version)
{
    uint8_t chip_id[64];
    fill_pattern(chip_id, sizeof(chip_id), 0xC1);
    assert_int_equal(snp_test_report_defaults(report, product, version, chip_id, tcb_for(product)),
                     VTPMCA_OK);
    report->guest_svn = 0x01020304;
    report->policy = 0x30000 | (1u << 8) | 0x37; /* ABI 1.55 */
    fill_pattern(report->family_id, sizeof(report->family_id), 0x10);
    fill_pattern(report->image_id, sizeof(report->image_id), 0x20);
    report->vmpl = 2;
    report->platform_info = SNP_PLATFORM_SMT_EN | SNP_PLATFORM_TSME_EN;
    fill_pattern(report->report_data, sizeof(report->report_data), 0x30);
    fill_pattern(report->measurement, sizeof(report->measurement), 0x40);
    fill_pattern(report->host_data, sizeof(report->host_data), 0x50);
    fill_pattern(report->id_key_digest, sizeof(report->id_key_digest), 0x60);
    fill_pattern(report->author_key_digest, sizeof(report->author_key_digest), 0x70);
    fill_pattern(report->report_id, sizeof(report->report_id), 0x80);
    fill_pattern(report->report_id_ma, sizeof(report->report_id_ma), 0x90);
    report->current_build = 21;
    report->committed_build = 20;
    report->committed_minor = 54;
    if (version >= 5) {
        report->launch_mit_vector = 0x0102030405060708ull;
        report->current_mit_vector = 0x1112131415161718ull;
    }
}

static void test_report_layout_offsets(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    X509 *vcek = issue(SNP_PRODUCT_MILAN, SNP_SIGNER_VCEK, NULL, &key);
    snp_report report;
    fill_distinct_fields(&report, SNP_PRODUCT_MILAN, 5);
    uint8_t wire[SNP_REPORT_SIZE];
    vtpmca_diag diag = {""};
    assert_int_equal(snp_test_report_sign(&report, key, wire, &diag), VTPMCA_OK);

    /* Little-endian integers, written out byte by byte. */
    const uint8_t version[] = {5, 0, 0, 0};
    const uint8_t guest_svn[] = {0x04, 0x03, 0x02, 0x01};
    const uint8_t policy[] = {0x37, 0x01, 0x03, 0, 0, 0, 0, 0};
    const uint8_t vmpl_algo[] = {2, 0, 0, 0, 1, 0, 0, 0};
    const uint8_t tcb[] = {3, 0, 0, 0, 0, 0, 8, 115};
    const uint8_t platform_info[] = {3, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t versions_fw[] = {21, 55, 1, 0, 20, 54, 1, 0};
    const uint8_t mit[] = {8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};
    assert_memory_equal(wire + 0x000, version, 4);
    assert_memory_equal(wire + 0x004, guest_svn, 4);
    assert_memory_equal(wire + 0x008, policy, 8);
    assert_memory_equal(wire + 0x010, report.family_id, 16);
    assert_memory_equal(wire + 0x020, report.image_id, 16);
    assert_memory_equal(wire + 0x030, vmpl_algo, 8);
    assert_memory_equal(wire + 0x038, tcb, 8);
    assert_memory_equal(wire + 0x040, platform_info, 8);
    assert_memory_equal(wire + 0x050, report.report_data, 64);
    assert_memory_equal(wire + 0x090, report.measurement, 48);
    assert_memory_equal(wire + 0x0C0, report.host_data, 32);
    assert_memory_equal(wire + 0x0E0, report.id_key_digest, 48);
    assert_memory_equal(wire + 0x110, report.author_key_digest, 48);
    assert_memory_equal(wire + 0x140, report.report_id, 32);
    assert_memory_equal(wire + 0x160, report.report_id_ma, 32);
    assert_memory_equal(wire + 0x180, tcb, 8);
    assert_int_equal(wire[0x188], 0x19);
    assert_int_equal(wire[0x189], 0x01);
    assert_memory_equal(wire + 0x1A0, report.chip_id, 64);
    assert_memory_equal(wire + 0x1E0, tcb, 8);
    assert_memory_equal(wire + 0x1E8, versions_fw, 8);
    assert_memory_equal(wire + 0x1F0, tcb, 8);
    assert_memory_equal(wire + 0x1F8, mit, 16);
    /* Reserved areas are zero: key_info tail, after CPUID, after the mitigation vectors,
     * after the signature. */
    for (size_t i = 0x04C; i < 0x050; i++)
        assert_int_equal(wire[i], 0);
    for (size_t i = 0x18B; i < 0x1A0; i++)
        assert_int_equal(wire[i], 0);
    for (size_t i = 0x208; i < 0x2A0; i++)
        assert_int_equal(wire[i], 0);
    for (size_t i = 0x330; i < SNP_REPORT_SIZE; i++)
        assert_int_equal(wire[i], 0);
    /* r and s at 0x2A0 / 0x2E8, P-384 sized: the top 24 bytes of each 72 are zero. */
    assert_memory_equal(wire + 0x2A0, report.sig_r, 72);
    assert_memory_equal(wire + 0x2E8, report.sig_s, 72);
    for (size_t i = 48; i < 72; i++) {
        assert_int_equal(report.sig_r[i], 0);
        assert_int_equal(report.sig_s[i], 0);
    }
    assert_memory_equal(report.raw, wire, SNP_REPORT_SIZE);

    /* Version 2: CPUID zero from the defaults. */
    fill_distinct_fields(&report, SNP_PRODUCT_TURIN, 2);
    assert_int_equal(snp_test_report_sign(&report, key, wire, &diag), VTPMCA_OK);
    const uint8_t turin_tcb[] = {1, 4, 2, 9, 0, 0, 0, 77};
    assert_memory_equal(wire + 0x180, turin_tcb, 8);
    assert_int_equal(wire[0x188], 0);
    assert_int_equal(wire[0x189], 0);
    assert_int_equal(wire[0x18A], 0);

    /* Signing into report->raw itself works (out may alias raw). */
    assert_int_equal(snp_test_report_sign(&report, key, report.raw, &diag), VTPMCA_OK);
    assert_int_equal(openssl_verify_report(report.raw, X509_get0_pubkey(vcek)), 1);

    X509_free(vcek);
    EVP_PKEY_free(key);
}

static void test_report_signature_verifies_with_openssl(void **state)
{
    (void)state;
    for (size_t p = 0; p < PRODUCT_COUNT; p++) {
        EVP_PKEY *key = NULL;
        X509 *vcek = issue(PRODUCTS[p], SNP_SIGNER_VCEK, NULL, &key);
        EVP_PKEY *public_key = X509_get0_pubkey(vcek);
        snp_report report;
        fill_distinct_fields(&report, PRODUCTS[p], 3);
        uint8_t wire[SNP_REPORT_SIZE];
        assert_int_equal(snp_test_report_sign(&report, key, wire, NULL), VTPMCA_OK);
        assert_int_equal(openssl_verify_report(wire, public_key), 1);

        /* A flipped byte anywhere in the signed area, in r or in s fails. */
        const size_t flips[] = {0x000, 0x008, 0x090, 0x1A0, 0x29F, 0x2A0, 0x2E8 + 10};
        for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
            uint8_t tampered[SNP_REPORT_SIZE];
            memcpy(tampered, wire, sizeof(tampered));
            tampered[flips[i]] ^= 0x01;
            if (openssl_verify_report(tampered, public_key) != 0)
                fail_msg("flip at 0x%zx still verifies", flips[i]);
        }
        /* Another VCEK's key does not verify it. */
        EVP_PKEY *other_key = NULL;
        X509 *other = issue(PRODUCTS[p], SNP_SIGNER_VCEK, NULL, &other_key);
        assert_int_equal(openssl_verify_report(wire, X509_get0_pubkey(other)), 0);
        X509_free(other);
        EVP_PKEY_free(other_key);

        /* Re-signing after a raw edit (a non-zero reserved byte) gives a valid signature
         * over the edited bytes. */
        wire[0x1F8] = 0xEE;
        assert_int_equal(openssl_verify_report(wire, public_key), 0);
        assert_int_equal(snp_test_report_resign(wire, key, NULL), VTPMCA_OK);
        assert_int_equal(openssl_verify_report(wire, public_key), 1);
        assert_int_equal(wire[0x1F8], 0xEE);

        X509_free(vcek);
        EVP_PKEY_free(key);
    }
}

static void test_report_sign_rejects_bad_keys(void **state)
{
    (void)state;
    snp_report report;
    fill_distinct_fields(&report, SNP_PRODUCT_MILAN, 3);
    uint8_t wire[SNP_REPORT_SIZE];
    memset(wire, 0x5A, sizeof(wire));
    uint8_t untouched[SNP_REPORT_SIZE];
    memcpy(untouched, wire, sizeof(wire));
    snp_report report_before = report;
    vtpmca_diag diag = {""};

    EVP_PKEY *p256 = EVP_EC_gen("P-256");
    assert_non_null(p256);
    assert_int_equal(snp_test_report_sign(&report, p256, wire, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "P-384"));
    assert_int_equal(snp_test_report_resign(wire, p256, &diag), VTPMCA_ERR_INVALID_ARG);
    EVP_PKEY_free(p256);

    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    assert_int_equal(snp_test_report_sign(&report, ed, wire, &diag), VTPMCA_ERR_INVALID_ARG);
    EVP_PKEY_free(ed);

    /* The public half only: the signature itself fails. */
    EVP_PKEY *key = NULL;
    X509 *vcek = issue(SNP_PRODUCT_MILAN, SNP_SIGNER_VCEK, NULL, &key);
    assert_int_equal(snp_test_report_sign(&report, X509_get0_pubkey(vcek), wire, &diag),
                     VTPMCA_ERR_CRYPTO);
    assert_int_equal(snp_test_report_sign(NULL, key, wire, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_sign(&report, NULL, wire, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_sign(&report, key, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_test_report_resign(NULL, key, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_memory_equal(wire, untouched, sizeof(wire));
    assert_memory_equal(&report, &report_before, sizeof(report));
    X509_free(vcek);
    EVP_PKEY_free(key);
}

/* The verifier's parser (attest/snp_report.c) reads back exactly what was signed. */
static void assert_same_fields(const snp_report *a, const snp_report *b)
{
#define SAME_INT(f) assert_int_equal(a->f, b->f)
#define SAME_MEM(f) assert_memory_equal(a->f, b->f, sizeof(a->f))
    SAME_INT(version);
    SAME_INT(guest_svn);
    SAME_INT(policy);
    SAME_MEM(family_id);
    SAME_MEM(image_id);
    SAME_INT(vmpl);
    SAME_INT(signature_algo);
    SAME_INT(current_tcb);
    SAME_INT(platform_info);
    SAME_INT(key_info);
    SAME_MEM(report_data);
    SAME_MEM(measurement);
    SAME_MEM(host_data);
    SAME_MEM(id_key_digest);
    SAME_MEM(author_key_digest);
    SAME_MEM(report_id);
    SAME_MEM(report_id_ma);
    SAME_INT(reported_tcb);
    SAME_INT(cpuid_family);
    SAME_INT(cpuid_model);
    SAME_INT(cpuid_stepping);
    SAME_MEM(chip_id);
    SAME_INT(committed_tcb);
    SAME_INT(current_build);
    SAME_INT(current_minor);
    SAME_INT(current_major);
    SAME_INT(committed_build);
    SAME_INT(committed_minor);
    SAME_INT(committed_major);
    SAME_INT(launch_tcb);
    SAME_INT(launch_mit_vector);
    SAME_INT(current_mit_vector);
    SAME_MEM(sig_r);
    SAME_MEM(sig_s);
    SAME_MEM(raw);
#undef SAME_INT
#undef SAME_MEM
}

static void test_parse_of_signed_report_roundtrips(void **state)
{
    (void)state;
    const uint32_t versions[] = {2, 3, 5};
    EVP_PKEY *key = EVP_EC_gen("P-384");
    assert_non_null(key);
    for (size_t p = 0; p < PRODUCT_COUNT; p++) {
        for (size_t v = 0; v < 3; v++) {
            for (int vlek = 0; vlek <= 1; vlek++) {
                snp_report signed_report, parsed;
                fill_distinct_fields(&signed_report, PRODUCTS[p], versions[v]);
                if (vlek)
                    signed_report.key_info = (uint32_t)SNP_SIGNER_VLEK << SNP_KEY_INFO_SIGNER_SHIFT;
                uint8_t wire[SNP_REPORT_SIZE];
                assert_int_equal(snp_test_report_sign(&signed_report, key, wire, NULL), VTPMCA_OK);
                vtpmca_diag diag = {""};
                memset(&parsed, 0, sizeof(parsed));
                if (snp_report_parse(wire, sizeof(wire), &parsed, &diag) != VTPMCA_OK)
                    fail_msg("%s v%u: %s", snp_product_name(PRODUCTS[p]), versions[v], diag.msg);
                assert_same_fields(&parsed, &signed_report);
                assert_int_equal(snp_report_signer(&parsed),
                                 vlek ? SNP_SIGNER_VLEK : SNP_SIGNER_VCEK);
                assert_int_equal(snp_report_product(&parsed),
                                 versions[v] == 2 ? SNP_PRODUCT_UNKNOWN : PRODUCTS[p]);
                snp_tcb tcb;
                assert_int_equal(snp_tcb_decode(parsed.reported_tcb, PRODUCTS[p], &tcb), VTPMCA_OK);
                assert_memory_equal(&tcb, tcb_for(PRODUCTS[p]), sizeof(tcb));
            }
        }
    }
    EVP_PKEY_free(key);
}

/* ---- the snp-testroot tool ---- */

static void tool_path(char *out, size_t size)
{
    const char *bin_dir = getenv("VTPMCA_BIN_DIR");
    snprintf(out, size, "%s/snp-testroot", bin_dir != NULL ? bin_dir : VTPMCA_BINARY_DIR);
    if (access(out, X_OK) != 0)
        fail_msg("%s is not built", out);
}

static void test_tool_end_to_end(void **state)
{
    (void)state;
    char tool[512], dir[512], cert[512], key[512], report_path[512], cmd[4096];
    char out[8192];
    tool_path(tool, sizeof(tool));
    path_in(dir, sizeof(dir), "tool-root");
    path_in(cert, sizeof(cert), "tool-vcek.der");
    path_in(key, sizeof(key), "tool-vcek.key.pem");
    path_in(report_path, sizeof(report_path), "tool-report.bin");
    const char *tcb = "bl=4,tee=2,snp=9,ucode=77,fmc=1";
    const char *chip = "0102030405060708"; /* Turin: 8-byte hwID */
    char measurement[97], report_data[129], host_data[65];
    uint8_t bytes[64];
    fill_pattern(bytes, 48, 0x11);
    assert_int_equal(vt_hex_encode(bytes, 48, measurement, sizeof(measurement)), VTPMCA_OK);
    fill_pattern(bytes, 64, 0x22);
    assert_int_equal(vt_hex_encode(bytes, 64, report_data, sizeof(report_data)), VTPMCA_OK);
    fill_pattern(bytes, 32, 0x33);
    assert_int_equal(vt_hex_encode(bytes, 32, host_data, sizeof(host_data)), VTPMCA_OK);

    snprintf(cmd, sizeof(cmd), "%s init --dir %s --product turin --bits 2048", tool, dir);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "TEST-ONLY"));
    /* A second init does not overwrite the root; --force replaces it. */
    char ark_path[600];
    snprintf(ark_path, sizeof(ark_path), "%s/turin_ark.pem", dir);
    X509 *first_ark = NULL;
    assert_int_equal(x509_from_file_pem(ark_path, &first_ark, 1), 1);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "--force"));
    strncat(cmd, " --force", sizeof(cmd) - strlen(cmd) - 1);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    X509 *second_ark = NULL;
    assert_int_equal(x509_from_file_pem(ark_path, &second_ark, 1), 1);
    assert_int_not_equal(X509_cmp(first_ark, second_ark), 0);
    X509_free(first_ark);
    X509_free(second_ark);

    snprintf(cmd, sizeof(cmd),
             "%s cert --dir %s --product turin --chip-id %s --tcb %s --out %s "
             "--key-out %s",
             tool, dir, chip, tcb, cert, key);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    assert_mode(key, 0600);
    snprintf(cmd, sizeof(cmd),
             "%s report --product turin --key %s --chip-id %s --tcb %s "
             "--version 5 --measurement %s --report-data %s --host-data %s --policy 0x30000 "
             "--vmpl 1 --out %s",
             tool, key, chip, tcb, measurement, report_data, host_data, report_path);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);

    /* The files are what the library makes: the VCEK chains to the saved root, the report
     * parses with the requested fields and verifies with the VCEK's key. */
    snp_test_root *root = NULL;
    assert_int_equal(snp_test_root_load(dir, SNP_PRODUCT_TURIN, &root, NULL), VTPMCA_OK);
    X509 *vcek = x509_from_file_der(cert);
    X509 *ask = root_cert(root, SNP_TEST_CA_ASK);
    assert_int_equal(X509_verify(vcek, X509_get0_pubkey(ask)), 1);
    assert_int_equal(kds_integer(vcek, "3.9"), 1);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(report_path, 4096, &wire, &len, NULL), VTPMCA_OK);
    assert_int_equal(len, SNP_REPORT_SIZE);
    assert_int_equal(openssl_verify_report(wire, X509_get0_pubkey(vcek)), 1);
    snp_report parsed;
    vtpmca_diag diag = {""};
    assert_int_equal(snp_report_parse(wire, len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.version, 5);
    assert_int_equal(parsed.vmpl, 1);
    assert_int_equal(parsed.policy, 0x30000);
    assert_int_equal(snp_report_product(&parsed), SNP_PRODUCT_TURIN);
    fill_pattern(bytes, 48, 0x11);
    assert_memory_equal(parsed.measurement, bytes, 48);
    fill_pattern(bytes, 64, 0x22);
    assert_memory_equal(parsed.report_data, bytes, 64);
    fill_pattern(bytes, 32, 0x33);
    assert_memory_equal(parsed.host_data, bytes, 32);
    const uint8_t chip_bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(parsed.chip_id, chip_bytes, 8);
    snp_tcb decoded;
    assert_int_equal(snp_tcb_decode(parsed.reported_tcb, SNP_PRODUCT_TURIN, &decoded), VTPMCA_OK);
    assert_memory_equal(&decoded, &TURIN_TCB, sizeof(decoded));
    free(wire);
    X509_free(ask);
    X509_free(vcek);
    snp_test_root_free(root);

    /* VLEK certificate and a VLEK-signed report. */
    snprintf(cmd, sizeof(cmd),
             "%s cert --dir %s --product turin --tcb %s --vlek --csp-id acme "
             "--out %s.vlek --key-out %s.vlek",
             tool, dir, tcb, cert, key);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd), "%s report --product turin --key %s.vlek --tcb %s --vlek --out %s",
             tool, key, tcb, report_path);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    assert_int_equal(vt_file_read(report_path, 4096, &wire, &len, NULL), VTPMCA_OK);
    assert_int_equal(snp_report_parse(wire, len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(snp_report_signer(&parsed), SNP_SIGNER_VLEK);
    free(wire);
}

/* Replaces {name} tokens of a command template by their values. */
static void expand(const char *template, const char *const tokens[][2], size_t token_count,
                   char *out, size_t out_size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *src = template; *src != '\0';) {
        const char *value = NULL;
        size_t token_len = 0;
        for (size_t t = 0; t < token_count && value == NULL; t++) {
            token_len = strlen(tokens[t][0]);
            if (strncmp(src, tokens[t][0], token_len) == 0)
                value = tokens[t][1];
        }
        if (value == NULL) {
            value = src;
            token_len = 1;
        }
        size_t value_len = value == src ? 1 : strlen(value);
        assert_true(used + value_len < out_size);
        memcpy(out + used, value, value_len);
        used += value_len;
        out[used] = '\0';
        src += token_len;
    }
}

static void test_tool_rejections(void **state)
{
    (void)state;
    char tool[512], empty_dir[512], out_path[512], key_path[512], rsa_key[600];
    char cmd[4096], args[3072], out[8192];
    tool_path(tool, sizeof(tool));
    path_in(empty_dir, sizeof(empty_dir), "tool-empty");
    assert_int_equal(vt_mkdir_p(empty_dir, 0700, NULL), VTPMCA_OK);
    path_in(out_path, sizeof(out_path), "tool-rejected.out");
    path_in(key_path, sizeof(key_path), "tool-rejected.key");
    /* An RSA key file: the saved ARK key of a test root. */
    char rsa_dir[512];
    path_in(rsa_dir, sizeof(rsa_dir), "tool-rsa");
    assert_int_equal(snp_test_root_save(root_for(SNP_PRODUCT_MILAN), rsa_dir, NULL), VTPMCA_OK);
    snprintf(rsa_key, sizeof(rsa_key), "%s/milan_ark.key.pem", rsa_dir);
    const char *const tokens[][2] = {
        {"{dir}", empty_dir},
        {"{out}", out_path},
        {"{key}", key_path},
        {"{rsakey}", rsa_key},
        {"{chip}", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
                   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
        {"{tcb}", "bl=1,tee=0,snp=1,ucode=1"},
    };
    const struct {
        const char *args;
        int status;
        const char *message;
    } cases[] = {
        {"", 2, "usage"},
        {"frobnicate", 2, "unknown command"},
        {"init --product milan", 2, "--dir is required"},
        {"init --dir {dir} --product sparc", 2, "--product"},
        {"init --dir {dir} --product milan --bits 1024", 2, "--bits"},
        {"init --dir {dir} --product milan --bogus", 2, "unknown option --bogus"},
        {"init --dir", 2, "needs a value"},
        {"init --dir {dir} --product milan extra", 2, "unexpected argument"},
        {"cert --dir {dir} --product milan --tcb {tcb} --out {out} --key-out {key}", 2,
         "--chip-id is required"},
        {"cert --dir {dir} --product milan --chip-id abcd --tcb {tcb} --out {out} --key-out {key}",
         2, "--chip-id: the chip id must be 128 hex digits"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb bl=1,tee=0,snp=1 --out {out} "
         "--key-out {key}",
         2, "ucode is missing"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb bl=1,bl=2,tee=0,snp=1,ucode=1 "
         "--out {out} --key-out {key}",
         2, "given twice"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb bl=256,tee=0,snp=1,ucode=1 "
         "--out {out} --key-out {key}",
         2, "0..255"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb {tcb},fmc=1 --out {out} "
         "--key-out {key}",
         2, "fmc exists on Turin only"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb {tcb},pi=3 --out {out} "
         "--key-out {key}",
         2, "TCB component \"pi\" is unknown"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb {tcb} --csp-id x --out {out} "
         "--key-out {key}",
         2, "--csp-id needs --vlek"},
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb {tcb} --vlek --out {out} "
         "--key-out {key}",
         2, "--chip-id does not apply"},
        /* A valid request against a directory without a Milan root: the operation fails. */
        {"cert --dir {dir} --product milan --chip-id {chip} --tcb {tcb} --out {out} --key-out "
         "{key}",
         1, "milan_ark.pem"},
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb} --version 4 "
         "--out {out}",
         2, "--version"},
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb} --vmpl 4 --out {out}",
         2, "--vmpl"},
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb} --measurement 00 "
         "--out {out}",
         2, "--measurement"},
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb} --policy 0xZZ "
         "--out {out}",
         2, "--policy"},
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb}", 2,
         "--out is required"},
        /* An RSA key cannot sign a report; a missing key file is named. */
        {"report --product milan --key {rsakey} --chip-id {chip} --tcb {tcb} --out {out}", 1,
         "P-384"},
        {"report --product milan --key {dir}/none.pem --chip-id {chip} --tcb {tcb} --out {out}", 1,
         "none.pem"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expand(cases[i].args, tokens, sizeof(tokens) / sizeof(tokens[0]), args, sizeof(args));
        snprintf(cmd, sizeof(cmd), "%s %s", tool, args);
        int status = run_capture(cmd, out, sizeof(out));
        if (status != cases[i].status || strstr(out, cases[i].message) == NULL)
            fail_msg("`snp-testroot %s` -> %d (expected %d with \"%s\"):\n%s", args, status,
                     cases[i].status, cases[i].message, out);
        /* A rejected command writes nothing. */
        assert_int_not_equal(access(out_path, F_OK), 0);
        assert_int_not_equal(access(key_path, F_OK), 0);
    }

    /* --help on every level succeeds and documents the options. */
    const char *helps[] = {"--help", "init --help", "cert --help", "report --help"};
    const char *mentions[] = {"report", "--bits", "--key-out", "--report-data"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(cmd, sizeof(cmd), "%s %s", tool, helps[i]);
        assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
        assert_non_null(strstr(out, mentions[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_new_rejects_bad_arguments),
        cmocka_unit_test(test_root_save_load_roundtrip),
        cmocka_unit_test(test_root_load_rejections),
        cmocka_unit_test(test_root_accessors),
        cmocka_unit_test(test_ca_certs_shaped_like_amd),
        cmocka_unit_test(test_vcek_extensions_match_genuine),
        cmocka_unit_test(test_turin_genoa_and_vlek_extensions),
        cmocka_unit_test(test_issue_cert_validity_and_rejections),
        cmocka_unit_test(test_openssl_cli_verifies_chains),
        cmocka_unit_test(test_report_defaults),
        cmocka_unit_test(test_report_layout_offsets),
        cmocka_unit_test(test_report_signature_verifies_with_openssl),
        cmocka_unit_test(test_report_sign_rejects_bad_keys),
        cmocka_unit_test(test_parse_of_signed_report_roundtrips),
        cmocka_unit_test(test_tool_end_to_end),
        cmocka_unit_test(test_tool_rejections),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
