/* Unit tests for ca/ca_keys.c: `ca init` with ECDSA P-384 and RSA-3072 roots, reload from
 * files (key file modes), import of PEM pairs (mismatches, non-CA, PSS and EdDSA refused),
 * signature algorithms (ECDSA or PKCS#1 v1.5, never PSS), chain exports and the Keylime
 * export, cross-checked with the openssl CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../support/ca_fixture.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/fileio.h"

#define OID_ECDSA_SHA384 "1.2.840.10045.4.3.3"
#define OID_ECDSA_SHA256 "1.2.840.10045.4.3.2"
#define OID_RSA_SHA256 "1.2.840.113549.1.1.11"

static struct {
    char tmp[64];
    char ec_dir[128];  /* P-384 root, P-384 issuing */
    char rsa_dir[128]; /* RSA-3072 root, RSA-2048 issuing */
    char alt_dir[128]; /* a second P-256 hierarchy, for mismatches */
    unsigned counter;
} g;

/* ---- helpers ---- */

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "ca-keys") != 0)
        return -1;
    snprintf(g.ec_dir, sizeof(g.ec_dir), "%s/ec", g.tmp);
    snprintf(g.rsa_dir, sizeof(g.rsa_dir), "%s/rsa", g.tmp);
    snprintf(g.alt_dir, sizeof(g.alt_dir), "%s/alt", g.tmp);
    ca_init_options opts;
    vtpmca_diag diag = {{0}};
    ca_init_options_default(&opts);
    if (ca_init(g.ec_dir, &opts, &diag) != VTPMCA_OK)
        goto fail;
    opts.root_alg = CA_KEY_RSA_3072;
    opts.issuing_alg = CA_KEY_RSA_2048;
    if (ca_init(g.rsa_dir, &opts, &diag) != VTPMCA_OK)
        goto fail;
    opts.root_alg = CA_KEY_ECDSA_P256;
    opts.issuing_alg = CA_KEY_ECDSA_P256;
    opts.root_cn = "Other Root";
    opts.issuing_cn = "Other Issuing";
    if (ca_init(g.alt_dir, &opts, &diag) != VTPMCA_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "group setup: %s\n", diag.msg);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g.tmp);
}

static void path_in(char *out, size_t size, const char *dir, const char *file)
{
    int n = snprintf(out, size, "%s/%s", dir, file);
    assert_true(n > 0 && (size_t)n < size);
}

/* A fresh, not yet existing directory under the group's temp dir. */
static void fresh_dir(char *out, size_t size, const char *tag)
{
    int n = snprintf(out, size, "%s/%s-%u", g.tmp, tag, g.counter++);
    assert_true(n > 0 && (size_t)n < size);
}

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    return cert;
}

static void sig_oid(const X509 *cert, char *out, size_t size)
{
    const X509_ALGOR *alg = NULL;
    X509_get0_signature(NULL, &alg, cert);
    const ASN1_OBJECT *obj = NULL;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    assert_true(OBJ_obj2txt(out, (int)size, obj, 1) > 0);
}

static mode_t file_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(from, CA_PEM_FILE_MAX, &data, &len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(to, data, len, mode, NULL), VTPMCA_OK);
    free(data);
}

/* Copies a CA directory (all four files, keys 0600). */
static void copy_ca(const char *from, const char *to)
{
    assert_int_equal(vt_mkdir_p(to, 0700, NULL), VTPMCA_OK);
    const char *files[] = {CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, CA_ISSUING_CERT_FILE,
                           CA_ISSUING_KEY_FILE};
    for (size_t i = 0; i < 4; i++) {
        char a[256], b[256];
        path_in(a, sizeof(a), from, files[i]);
        path_in(b, sizeof(b), to, files[i]);
        copy_file(a, b, strstr(files[i], ".key") != NULL ? 0600 : 0644);
    }
}

static bool dir_is_empty_or_missing(const char *dir)
{
    const char *files[] = {CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, CA_ISSUING_CERT_FILE,
                           CA_ISSUING_KEY_FILE};
    for (size_t i = 0; i < 4; i++) {
        char p[256];
        path_in(p, sizeof(p), dir, files[i]);
        if (access(p, F_OK) == 0)
            return false;
    }
    return true;
}

static ca_ctx *open_ok(const char *dir)
{
    ca_ctx *ca = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ca_open(dir, &ca, &diag);
    if (err != VTPMCA_OK)
        fail_msg("ca_open(%s): %s", dir, diag.msg);
    return ca;
}

static vtpmca_err open_err(const char *dir, vtpmca_diag *diag)
{
    ca_ctx *ca = NULL;
    vtpmca_err err = ca_open(dir, &ca, diag);
    assert_null(ca);
    return err;
}

/* ---- init ---- */

static void check_ca_extensions(const X509 *cert, bool issuing)
{
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_true(bc->ca);
    if (issuing) {
        assert_non_null(bc->pathlen);
        assert_int_equal(ASN1_INTEGER_get(bc->pathlen), 0);
    } else {
        assert_null(bc->pathlen);
    }
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(cert, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 5)); /* keyCertSign */
    assert_true(ASN1_BIT_STRING_get_bit(ku, 6)); /* cRLSign */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 0));
    ASN1_BIT_STRING_free(ku);
    assert_non_null(X509_get0_subject_key_id((X509 *)cert));
    if (issuing)
        assert_non_null(X509_get0_authority_key_id((X509 *)cert));
}

static void check_hierarchy_files(const char *dir, const char *root_sig_oid,
                                  const char *issuing_sig_oid)
{
    char root_path[256], issuing_path[256], root_key[256], issuing_key[256];
    path_in(root_path, sizeof(root_path), dir, CA_ROOT_CERT_FILE);
    path_in(issuing_path, sizeof(issuing_path), dir, CA_ISSUING_CERT_FILE);
    path_in(root_key, sizeof(root_key), dir, CA_ROOT_KEY_FILE);
    path_in(issuing_key, sizeof(issuing_key), dir, CA_ISSUING_KEY_FILE);
    assert_int_equal(file_mode(root_key), 0600);
    assert_int_equal(file_mode(issuing_key), 0600);
    assert_int_equal(file_mode(root_path), 0644);
    assert_int_equal(file_mode(issuing_path), 0644);

    X509 *root = load_cert(root_path);
    X509 *issuing = load_cert(issuing_path);
    char oid[64];
    sig_oid(root, oid, sizeof(oid));
    assert_string_equal(oid, root_sig_oid);
    sig_oid(issuing, oid, sizeof(oid));
    assert_string_equal(oid, issuing_sig_oid);
    check_ca_extensions(root, false);
    check_ca_extensions(issuing, true);
    assert_int_equal(X509_self_signed(root, 1), 1);
    assert_int_equal(X509_verify(issuing, X509_get0_pubkey(root)), 1);
    X509_free(root);
    X509_free(issuing);

    /* Independent check: the openssl CLI builds the chain with strict X.509 checks. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "openssl verify -x509_strict -CAfile '%s' '%s'", root_path,
             issuing_path);
    char *out = NULL;
    int rc = ca_fixture_run(cmd, &out);
    if (rc != 0)
        fail_msg("%s: %s", cmd, out);
    free(out);
    /* And the signature algorithm as the CLI names it: never PSS. */
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -text", issuing_path);
    assert_int_equal(ca_fixture_run(cmd, &out), 0);
    assert_null(strstr(out, "rsassaPss"));
    free(out);
}

static void test_init_ecdsa_p384(void **state)
{
    (void)state;
    check_hierarchy_files(g.ec_dir, OID_ECDSA_SHA384, OID_ECDSA_SHA384);
    ca_ctx *ca = open_ok(g.ec_dir);
    assert_ptr_equal(ca_issuing_md(ca), EVP_sha384());
    size_t id_len = 0;
    const uint8_t *id = ca_issuing_key_id(ca, &id_len);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id((X509 *)ca_cert(ca, CA_CERT_ISSUING));
    assert_int_equal(id_len, (size_t)ASN1_STRING_length(ski));
    assert_memory_equal(id, ASN1_STRING_get0_data(ski), id_len);
    X509_NAME *expect = X509_NAME_new();
    X509_NAME_add_entry_by_txt(expect, "O", MBSTRING_UTF8, (const unsigned char *)"vtpmca", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(expect, "CN", MBSTRING_UTF8,
                               (const unsigned char *)"vtpmca EK Issuing CA", -1, -1, 0);
    assert_int_equal(X509_NAME_cmp(expect, X509_get_subject_name(ca_cert(ca, CA_CERT_ISSUING))), 0);
    X509_NAME_free(expect);
    ca_free(ca);
}

static void test_init_rsa_3072(void **state)
{
    (void)state;
    check_hierarchy_files(g.rsa_dir, OID_RSA_SHA256, OID_RSA_SHA256);
    ca_ctx *ca = open_ok(g.rsa_dir);
    assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(ca_cert(ca, CA_CERT_ROOT))), 3072);
    assert_int_equal(EVP_PKEY_get_bits(ca_issuing_key(ca)), 2048);
    assert_int_equal(EVP_PKEY_get_base_id(ca_issuing_key(ca)), EVP_PKEY_RSA);
    assert_ptr_equal(ca_issuing_md(ca), EVP_sha256());
    ca_free(ca);
}

static void read_all(const char *dir, uint8_t **bufs, size_t *lens)
{
    const char *files[] = {CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, CA_ISSUING_CERT_FILE,
                           CA_ISSUING_KEY_FILE};
    for (size_t i = 0; i < 4; i++) {
        char p[256];
        path_in(p, sizeof(p), dir, files[i]);
        assert_int_equal(vt_file_read(p, CA_PEM_FILE_MAX, &bufs[i], &lens[i], NULL), VTPMCA_OK);
    }
}

static void test_init_refuses_existing(void **state)
{
    (void)state;
    uint8_t *before[4], *after[4];
    size_t before_len[4], after_len[4];
    read_all(g.ec_dir, before, before_len);
    ca_init_options opts;
    ca_init_options_default(&opts);
    vtpmca_diag diag = {{0}};
    assert_int_equal(ca_init(g.ec_dir, &opts, &diag), VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "exists already"));
    read_all(g.ec_dir, after, after_len);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(before_len[i], after_len[i]);
        assert_memory_equal(before[i], after[i], before_len[i]);
        free(before[i]);
        free(after[i]);
    }

    /* One leftover file is enough to refuse. */
    char dir[256], p[256];
    fresh_dir(dir, sizeof(dir), "partial");
    assert_int_equal(vt_mkdir_p(dir, 0700, NULL), VTPMCA_OK);
    path_in(p, sizeof(p), dir, CA_ISSUING_KEY_FILE);
    assert_int_equal(ca_fixture_write(p, "x", 1), 0);
    assert_int_equal(ca_init(dir, &opts, NULL), VTPMCA_ERR_CONFLICT);
}

static void test_init_bad_options(void **state)
{
    (void)state;
    char dir[256];
    fresh_dir(dir, sizeof(dir), "bad");
    ca_init_options opts;
    vtpmca_diag diag = {{0}};

    ca_init_options_default(&opts);
    assert_int_equal(ca_init(NULL, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_init("", &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_init(dir, NULL, &diag), VTPMCA_ERR_INVALID_ARG);

    ca_init_options_default(&opts);
    opts.root_alg = (ca_key_alg)42;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_init_options_default(&opts);
    opts.root_alg = CA_KEY_RSA_2048;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "root key"));
    ca_init_options_default(&opts);
    opts.root_validity_days = 0;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_init_options_default(&opts);
    opts.issuing_validity_days = opts.root_validity_days + 1;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_init_options_default(&opts);
    opts.root_cn = "bad\nname";
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "control character"));
    ca_init_options_default(&opts);
    opts.issuing_cn = "";
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_init_options_default(&opts);
    opts.issuing_cn = opts.root_cn;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_init_options_default(&opts);
    char long_name[CA_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    opts.organization = long_name;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_ERR_INVALID_ARG);
    /* Nothing was created by any refused call. */
    assert_int_not_equal(access(dir, F_OK), 0);

    /* Without an organization the names hold only the CN. */
    ca_init_options_default(&opts);
    opts.organization = NULL;
    opts.root_alg = CA_KEY_ECDSA_P256;
    opts.issuing_alg = CA_KEY_ECDSA_P256;
    assert_int_equal(ca_init(dir, &opts, &diag), VTPMCA_OK);
    ca_ctx *ca = open_ok(dir);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(ca_cert(ca, CA_CERT_ROOT))), 1);
    char oid[64];
    sig_oid(ca_cert(ca, CA_CERT_ISSUING), oid, sizeof(oid));
    assert_string_equal(oid, OID_ECDSA_SHA256);
    ca_free(ca);
}

static void test_key_alg_names(void **state)
{
    (void)state;
    const ca_key_alg algs[] = {CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P256, CA_KEY_RSA_3072,
                               CA_KEY_RSA_2048};
    for (size_t i = 0; i < 4; i++) {
        ca_key_alg parsed;
        assert_int_equal(ca_key_alg_parse(ca_key_alg_name(algs[i]), &parsed, NULL), VTPMCA_OK);
        assert_int_equal(parsed, algs[i]);
    }
    ca_key_alg parsed;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ca_key_alg_parse("rsa-pss-3072", &parsed, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "ecdsa-p384"));
    assert_int_equal(ca_key_alg_parse(NULL, &parsed, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_string_equal(ca_key_alg_name((ca_key_alg)99), "unknown");
}

/* ---- open ---- */

static void test_open_key_modes(void **state)
{
    (void)state;
    char dir[256], key[256];
    fresh_dir(dir, sizeof(dir), "modes");
    copy_ca(g.ec_dir, dir);
    path_in(key, sizeof(key), dir, CA_ISSUING_KEY_FILE);
    vtpmca_diag diag = {{0}};
    const mode_t refused[] = {0644, 0640, 0604, 0660, 0602, 0620};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(chmod(key, refused[i]), 0);
        assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_IO);
        char mode_text[16];
        snprintf(mode_text, sizeof(mode_text), "%04o", (unsigned)refused[i]);
        assert_non_null(strstr(diag.msg, mode_text));
        assert_non_null(strstr(diag.msg, CA_ISSUING_KEY_FILE));
    }
    assert_int_equal(chmod(key, 0400), 0);
    ca_free(open_ok(dir));
    assert_int_equal(chmod(key, 0600), 0);
    ca_free(open_ok(dir));

    /* The root key is not needed online: removing it changes nothing. */
    char root_key[256];
    path_in(root_key, sizeof(root_key), dir, CA_ROOT_KEY_FILE);
    assert_int_equal(unlink(root_key), 0);
    ca_free(open_ok(dir));
}

static void test_open_broken_dirs(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    char dir[256], p[256], other[256];
    ca_ctx *ca = NULL;
    assert_int_equal(ca_open(NULL, &ca, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_open(g.ec_dir, NULL, &diag), VTPMCA_ERR_INVALID_ARG);

    fresh_dir(dir, sizeof(dir), "missing");
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_IO);

    /* Missing issuing key. */
    fresh_dir(dir, sizeof(dir), "nokey");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ISSUING_KEY_FILE);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_IO);

    /* Garbage certificate. */
    fresh_dir(dir, sizeof(dir), "garbage");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ISSUING_CERT_FILE);
    assert_int_equal(ca_fixture_write(p, "not a certificate\n", 18), 0);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_PARSE);

    /* Garbage key. */
    fresh_dir(dir, sizeof(dir), "garbage-key");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ISSUING_KEY_FILE);
    assert_int_equal(vt_file_write_atomic(p, "junk", 4, 0600, NULL), VTPMCA_OK);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_PARSE);

    /* Another hierarchy's issuing certificate: not signed by this root. */
    fresh_dir(dir, sizeof(dir), "foreign-issuing");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ISSUING_CERT_FILE);
    path_in(other, sizeof(other), g.alt_dir, CA_ISSUING_CERT_FILE);
    copy_file(other, p, 0644);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "not signed by the root"));

    /* Another hierarchy's key: does not match the issuing certificate. */
    fresh_dir(dir, sizeof(dir), "foreign-key");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ISSUING_KEY_FILE);
    path_in(other, sizeof(other), g.alt_dir, CA_ISSUING_KEY_FILE);
    copy_file(other, p, 0600);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "does not match"));

    /* Two certificates in one file. */
    fresh_dir(dir, sizeof(dir), "two-certs");
    copy_ca(g.ec_dir, dir);
    path_in(p, sizeof(p), dir, CA_ROOT_CERT_FILE);
    char *pem = NULL;
    size_t pem_len = 0;
    ca = open_ok(g.ec_dir);
    assert_int_equal(ca_chain_pem(ca, &pem, &pem_len, NULL), VTPMCA_OK);
    ca_free(ca);
    assert_int_equal(ca_fixture_write(p, pem, pem_len), 0);
    free(pem);
    assert_int_equal(open_err(dir, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "more than one certificate"));
}

/* ---- import ---- */

typedef struct {
    char root_cert[256], root_key[256], issuing_cert[256], issuing_key[256];
} ca_paths;

static void paths_of(const char *dir, ca_paths *p)
{
    path_in(p->root_cert, sizeof(p->root_cert), dir, CA_ROOT_CERT_FILE);
    path_in(p->root_key, sizeof(p->root_key), dir, CA_ROOT_KEY_FILE);
    path_in(p->issuing_cert, sizeof(p->issuing_cert), dir, CA_ISSUING_CERT_FILE);
    path_in(p->issuing_key, sizeof(p->issuing_key), dir, CA_ISSUING_KEY_FILE);
}

static void assert_same_file(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    assert_int_equal(vt_file_read(a, CA_PEM_FILE_MAX, &x, &xl, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_read(b, CA_PEM_FILE_MAX, &y, &yl, NULL), VTPMCA_OK);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
}

static void test_import_ok(void **state)
{
    (void)state;
    ca_paths src, dst;
    paths_of(g.rsa_dir, &src);
    char dir[256];
    fresh_dir(dir, sizeof(dir), "import");
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        ca_import(dir, src.root_cert, src.root_key, src.issuing_cert, src.issuing_key, &diag),
        VTPMCA_OK);
    paths_of(dir, &dst);
    assert_same_file(src.root_cert, dst.root_cert);
    assert_same_file(src.issuing_cert, dst.issuing_cert);
    assert_int_equal(file_mode(dst.issuing_key), 0600);
    assert_int_equal(file_mode(dst.root_key), 0600);
    ca_ctx *ca = open_ok(dir);
    assert_int_equal(EVP_PKEY_get_base_id(ca_issuing_key(ca)), EVP_PKEY_RSA);
    ca_free(ca);

    /* Offline root: no root key given, none written. */
    fresh_dir(dir, sizeof(dir), "import-offline");
    assert_int_equal(ca_import(dir, src.root_cert, NULL, src.issuing_cert, src.issuing_key, &diag),
                     VTPMCA_OK);
    paths_of(dir, &dst);
    assert_int_not_equal(access(dst.root_key, F_OK), 0);
    ca_free(open_ok(dir));

    /* Importing over an existing CA is refused. */
    assert_int_equal(ca_import(dir, src.root_cert, NULL, src.issuing_cert, src.issuing_key, &diag),
                     VTPMCA_ERR_CONFLICT);
}

static void expect_import_refused(const char *root_cert, const char *root_key,
                                  const char *issuing_cert, const char *issuing_key,
                                  vtpmca_err expected, const char *diag_part)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir), "refused");
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ca_import(dir, root_cert, root_key, issuing_cert, issuing_key, &diag);
    if (err != expected)
        fail_msg("import: got %d (%s), expected %d", err, diag.msg, expected);
    if (diag_part != NULL && strstr(diag.msg, diag_part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, diag_part);
    assert_true(dir_is_empty_or_missing(dir));
}

/* Runs a shell script that makes key/cert files with the openssl CLI in dir. */
static void openssl_script(const char *script)
{
    char *out = NULL;
    int rc = ca_fixture_run(script, &out);
    if (rc != 0)
        fail_msg("%s\n%s", script, out);
    free(out);
}

static void test_import_refusals(void **state)
{
    (void)state;
    ca_paths ec, alt;
    paths_of(g.ec_dir, &ec);
    paths_of(g.alt_dir, &alt);

    expect_import_refused(NULL, NULL, ec.issuing_cert, ec.issuing_key, VTPMCA_ERR_INVALID_ARG,
                          NULL);
    expect_import_refused(ec.root_cert, NULL, ec.issuing_cert, NULL, VTPMCA_ERR_INVALID_ARG, NULL);
    /* Mismatched pairs. */
    expect_import_refused(ec.root_cert, NULL, ec.issuing_cert, alt.issuing_key, VTPMCA_ERR_CRYPTO,
                          "issuing CA key does not match");
    expect_import_refused(ec.root_cert, alt.root_key, ec.issuing_cert, ec.issuing_key,
                          VTPMCA_ERR_CRYPTO, "root key does not match");
    expect_import_refused(alt.root_cert, NULL, ec.issuing_cert, ec.issuing_key, VTPMCA_ERR_CRYPTO,
                          "not signed by the root");
    /* The issuing CA given as root: not self-signed. */
    expect_import_refused(ec.issuing_cert, NULL, ec.issuing_cert, ec.issuing_key, VTPMCA_ERR_CRYPTO,
                          NULL);
    /* Files that are not PEM. */
    expect_import_refused(ec.root_key, NULL, ec.issuing_cert, ec.issuing_key, VTPMCA_ERR_PARSE,
                          "no PEM certificate");
    expect_import_refused(ec.root_cert, NULL, ec.issuing_cert, ec.issuing_cert, VTPMCA_ERR_PARSE,
                          "not an unencrypted PEM private key");

    char dir[256];
    fresh_dir(dir, sizeof(dir), "cli");
    assert_int_equal(vt_mkdir_p(dir, 0700, NULL), VTPMCA_OK);
    char script[2048];

    /* An encrypted issuing key. */
    snprintf(script, sizeof(script),
             "cd '%s' && openssl pkey -in '%s' -aes256 -passout pass:secret -out enc.key", dir,
             ec.issuing_key);
    openssl_script(script);
    char p1[256], p2[256], p3[256], p4[256];
    path_in(p1, sizeof(p1), dir, "enc.key");
    expect_import_refused(ec.root_cert, NULL, ec.issuing_cert, p1, VTPMCA_ERR_PARSE, NULL);

    /* A hierarchy signed with RSA-PSS: refused because verifiers reject PSS. */
    snprintf(script, sizeof(script),
             "cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -keyout pss-root.key "
             "-out pss-root.pem -subj /CN=pss-root -days 10 -sigopt rsa_padding_mode:pss "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null && "
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout pss-iss.key -out pss-iss.csr -subj /CN=pss-issuing >/dev/null && "
             "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,"
             "cRLSign\\n' > ext.cnf && "
             "openssl x509 -req -in pss-iss.csr -CA pss-root.pem -CAkey pss-root.key "
             "-CAcreateserial -days 5 -sigopt rsa_padding_mode:pss -extfile ext.cnf "
             "-out pss-iss.pem",
             dir);
    openssl_script(script);
    path_in(p1, sizeof(p1), dir, "pss-root.pem");
    path_in(p2, sizeof(p2), dir, "pss-root.key");
    path_in(p3, sizeof(p3), dir, "pss-iss.pem");
    path_in(p4, sizeof(p4), dir, "pss-iss.key");
    expect_import_refused(p1, p2, p3, p4, VTPMCA_ERR_UNSUPPORTED, "RSA PKCS#1 v1.5");

    /* An Ed25519 issuing CA under our P-384 root. */
    snprintf(script, sizeof(script),
             "cd '%s' && openssl req -new -newkey ed25519 -nodes -keyout ed.key -out ed.csr "
             "-subj /CN=ed-issuing >/dev/null && "
             "openssl x509 -req -in ed.csr -CA '%s' -CAkey '%s' -CAcreateserial -days 5 "
             "-extfile ext.cnf -out ed.pem",
             dir, ec.root_cert, ec.root_key);
    openssl_script(script);
    path_in(p1, sizeof(p1), dir, "ed.pem");
    path_in(p2, sizeof(p2), dir, "ed.key");
    expect_import_refused(ec.root_cert, NULL, p1, p2, VTPMCA_ERR_UNSUPPORTED, "EdDSA");

    /* A non-CA certificate as the issuing CA. */
    snprintf(script, sizeof(script),
             "cd '%s' && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout leaf.key -out leaf.csr -subj /CN=leaf >/dev/null && "
             "printf 'basicConstraints=critical,CA:FALSE\\n' > leaf.cnf && "
             "openssl x509 -req -in leaf.csr -CA '%s' -CAkey '%s' -CAcreateserial -days 5 "
             "-extfile leaf.cnf -out leaf.pem",
             dir, ec.root_cert, ec.root_key);
    openssl_script(script);
    path_in(p1, sizeof(p1), dir, "leaf.pem");
    path_in(p2, sizeof(p2), dir, "leaf.key");
    expect_import_refused(ec.root_cert, NULL, p1, p2, VTPMCA_ERR_CRYPTO, "not a CA");

    /* An issuing CA whose keyUsage lacks cRLSign cannot sign our CRL. */
    snprintf(script, sizeof(script),
             "cd '%s' && printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,"
             "keyCertSign\\n' > nocrl.cnf && "
             "openssl x509 -req -in leaf.csr -CA '%s' -CAkey '%s' -CAcreateserial -days 5 "
             "-extfile nocrl.cnf -out nocrl.pem",
             dir, ec.root_cert, ec.root_key);
    openssl_script(script);
    path_in(p1, sizeof(p1), dir, "nocrl.pem");
    expect_import_refused(ec.root_cert, NULL, p1, p2, VTPMCA_ERR_CRYPTO, "cRLSign");
}

/* ---- signing and exports ---- */

static void test_sign_cert_algorithms(void **state)
{
    (void)state;
    const struct {
        const char *dir;
        const char *oid;
    } cases[] = {{g.ec_dir, OID_ECDSA_SHA384}, {g.rsa_dir, OID_RSA_SHA256}};
    for (size_t i = 0; i < 2; i++) {
        ca_ctx *ca = open_ok(cases[i].dir);
        X509 *cert = X509_new();
        EVP_PKEY *key = EVP_EC_gen("P-256");
        X509_set_version(cert, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1234);
        X509_set_issuer_name(cert, X509_get_subject_name(ca_cert(ca, CA_CERT_ISSUING)));
        X509_gmtime_adj(X509_getm_notBefore(cert), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        uint8_t *der = NULL;
        size_t der_len = 0;
        vtpmca_diag diag = {{0}};
        assert_int_equal(ca_sign_cert(ca, cert, &der, &der_len, &diag), VTPMCA_OK);
        const unsigned char *p = der;
        X509 *parsed = d2i_X509(NULL, &p, (long)der_len);
        assert_non_null(parsed);
        char oid[64];
        sig_oid(parsed, oid, sizeof(oid));
        assert_string_equal(oid, cases[i].oid);
        assert_int_equal(X509_verify(parsed, X509_get0_pubkey(ca_cert(ca, CA_CERT_ISSUING))), 1);
        char why[256];
        assert_true(der_is_strict(der, der_len, NULL, why, sizeof(why)));
        assert_int_equal(ca_sign_cert(NULL, cert, &der, &der_len, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_int_equal(ca_sign_cert(ca, NULL, &der, &der_len, &diag), VTPMCA_ERR_INVALID_ARG);
        X509_free(parsed);
        free(der);
        X509_free(cert);
        EVP_PKEY_free(key);
        ca_free(ca);
    }
}

static void test_serials(void **state)
{
    (void)state;
    uint8_t a[CA_SERIAL_LEN], b[CA_SERIAL_LEN];
    for (int i = 0; i < 200; i++) {
        assert_int_equal(ca_new_serial(a, NULL), VTPMCA_OK);
        assert_int_equal(ca_new_serial(b, NULL), VTPMCA_OK);
        /* Positive, exactly 16 content bytes in DER: top bit clear, next bit set. */
        assert_int_equal(a[0] & 0xc0, 0x40);
        assert_memory_not_equal(a, b, sizeof(a));
    }
    assert_int_equal(ca_new_serial(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_chain_exports(void **state)
{
    (void)state;
    ca_ctx *ca = open_ok(g.ec_dir);
    vtpmca_diag diag = {{0}};

    /* PEM chain: issuing CA first, then the root. */
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(ca_chain_pem(ca, &pem, &pem_len, &diag), VTPMCA_OK);
    assert_int_equal(strlen(pem), pem_len);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_int_equal(X509_cmp(first, ca_cert(ca, CA_CERT_ISSUING)), 0);
    assert_int_equal(X509_cmp(second, ca_cert(ca, CA_CERT_ROOT)), 0);
    X509_free(first);
    X509_free(second);
    free(pem);

    /* Single certificates. */
    for (int which = CA_CERT_ROOT; which <= CA_CERT_ISSUING; which++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        assert_int_equal(ca_cert_der(ca, (ca_cert_which)which, &der, &der_len, &diag), VTPMCA_OK);
        const unsigned char *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long)der_len);
        assert_int_equal(X509_cmp(cert, ca_cert(ca, (ca_cert_which)which)), 0);
        char why[256];
        if (!der_is_strict(der, der_len, NULL, why, sizeof(why)))
            fail_msg("CA certificate %d is not strict DER: %s", which, why);
        X509_free(cert);
        free(der);
        assert_int_equal(ca_cert_pem(ca, (ca_cert_which)which, &pem, &pem_len, &diag), VTPMCA_OK);
        assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
        free(pem);
    }
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(ca_cert_der(ca, (ca_cert_which)7, &der, &der_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_cert_pem(NULL, CA_CERT_ROOT, &pem, &pem_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    /* DER chain: a certs-only PKCS#7 with both certificates; the openssl CLI reads it. */
    assert_int_equal(ca_chain_der(ca, &der, &der_len, &diag), VTPMCA_OK);
    const unsigned char *p = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)der_len);
    assert_non_null(p7);
    assert_true(PKCS7_type_is_signed(p7));
    STACK_OF(X509) *certs = p7->d.sign->cert;
    assert_int_equal(sk_X509_num(certs), 2);
    int found = 0;
    for (int i = 0; i < 2; i++) {
        X509 *c = sk_X509_value(certs, i);
        found += X509_cmp(c, ca_cert(ca, CA_CERT_ROOT)) == 0 ||
                 X509_cmp(c, ca_cert(ca, CA_CERT_ISSUING)) == 0;
    }
    assert_int_equal(found, 2);
    PKCS7_free(p7);
    char path[256], cmd[512];
    snprintf(path, sizeof(path), "%s/chain.p7c", g.tmp);
    assert_int_equal(ca_fixture_write(path, der, der_len), 0);
    free(der);
    snprintf(cmd, sizeof(cmd), "openssl pkcs7 -inform DER -in '%s' -print_certs -noout", path);
    char *out = NULL;
    assert_int_equal(ca_fixture_run(cmd, &out), 0);
    assert_non_null(strstr(out, "vtpmca EK Issuing CA"));
    assert_non_null(strstr(out, "vtpmca EK Root CA"));
    free(out);
    ca_free(ca);
}

static void test_export_keylime(void **state)
{
    (void)state;
    ca_ctx *ca = open_ok(g.ec_dir);
    char dir[256], issuing[256], root[256];
    fresh_dir(dir, sizeof(dir), "keylime/store");
    vtpmca_diag diag = {{0}};
    assert_int_equal(ca_export_keylime(ca, dir, &diag), VTPMCA_OK);
    path_in(issuing, sizeof(issuing), dir, CA_KEYLIME_ISSUING_FILE);
    path_in(root, sizeof(root), dir, CA_KEYLIME_ROOT_FILE);
    assert_int_equal(file_mode(issuing), 0644);
    /* One certificate per file, as Keylime reads only the first of each. */
    X509 *cert = load_cert(issuing);
    assert_int_equal(X509_cmp(cert, ca_cert(ca, CA_CERT_ISSUING)), 0);
    X509_free(cert);
    cert = load_cert(root);
    assert_int_equal(X509_cmp(cert, ca_cert(ca, CA_CERT_ROOT)), 0);
    X509_free(cert);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "test $(grep -c 'BEGIN CERTIFICATE' '%s') -eq 1 && "
             "test $(grep -c 'BEGIN CERTIFICATE' '%s') -eq 1",
             issuing, root);
    assert_int_equal(ca_fixture_run(cmd, NULL), 0);
    /* Exporting again replaces the files. */
    assert_int_equal(ca_export_keylime(ca, dir, &diag), VTPMCA_OK);
    assert_int_equal(ca_export_keylime(ca, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_export_keylime(NULL, dir, &diag), VTPMCA_ERR_INVALID_ARG);
    ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_ecdsa_p384),
        cmocka_unit_test(test_init_rsa_3072),
        cmocka_unit_test(test_init_refuses_existing),
        cmocka_unit_test(test_init_bad_options),
        cmocka_unit_test(test_key_alg_names),
        cmocka_unit_test(test_open_key_modes),
        cmocka_unit_test(test_open_broken_dirs),
        cmocka_unit_test(test_import_ok),
        cmocka_unit_test(test_import_refusals),
        cmocka_unit_test(test_sign_cert_algorithms),
        cmocka_unit_test(test_serials),
        cmocka_unit_test(test_chain_exports),
        cmocka_unit_test(test_export_keylime),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
