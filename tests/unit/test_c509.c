/* Unit tests for ca/c509*.c with certificates made here by OpenSSL: EK and IAK profiles as
 * the CA issues them (TPM SAN directoryName, EKU 2.23.133.8.1, subjectDirectoryAttributes,
 * AKI/SKI, CRLDP, AIA, a private-OID extension) with P-256, P-384 and RSA-2048 keys, plus the
 * rest of the extension registry. Checks: DER -> C509 -> DER is identical and `openssl
 * verify` accepts the rebuilt DER; the C509 items are the draft's encodings; natively signed
 * issuance and verification with every algorithm; tampering; refusal of non-strict DER; and
 * malformed CBOR (truncation, wrong array length, trailing bytes, wrong types, non-canonical
 * heads, a mutation fuzz loop) that must fail cleanly. Spec test vectors are in
 * test_c509_vectors.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cbor.h>
#include <cmocka.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/conf.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/c509.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

/* The CA keys and their self-signed certificates, made once for the whole file. */
typedef struct {
    EVP_PKEY *key;
    X509 *cert;
    const EVP_MD *md;
    const char *name;
} test_ca;

typedef struct {
    char tmpdir[64];
    uint64_t not_before, not_after; /* validity of every certificate made here */
    test_ca ca_p256, ca_p384, ca_rsa, ca_ed25519;
    EVP_PKEY *rsa2048, *p256, *p384, *secp256k1, *x25519;
} fixture;

static fixture *F;

/* tpmSpecification (2.23.133.2.16): {family "2.0", level 0, revision 164}, as the SDA value. */
static const char SDA_TPM_SPEC[] = "3019301706056781050210310e300c0c03322e30020100020200a4";
/* A private instance-identity-like extension value and its OID (UUID arc, RFC 4122). */
static const char PRIVATE_VALUE[] = "303a0c07666c6565742d610c0d696e7374616e63652d303030310420000102"
                                    "030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char PRIVATE_OID[] = "2.25.329800735698586629295641978511506172918";
static const char PRIVATE_OID_HEX[] = "6983f09da7ebcfdee0c7a1a7b2c0948cc8f9d776";
/* hardwareModuleName {hwType 2.23.133.1.2, hwSerialNum 0102030405060708} */
static const char HW_MODULE_NAME[] = "30110605678105010204080102030405060708";

static blob from_hex(const char *hex)
{
    blob b = {0};
    assert_int_equal(vt_hex_decode_alloc(hex, strlen(hex), &b.data, &b.len), VTPMCA_OK);
    return b;
}

static EVP_PKEY *gen_key(const char *alg, const char *param)
{
    EVP_PKEY *key = NULL;
    if (strcmp(alg, "RSA") == 0)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param));
    else if (strcmp(alg, "EC") == 0)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
    else
        key = EVP_PKEY_Q_keygen(NULL, NULL, alg);
    assert_non_null(key);
    return key;
}

static X509_EXTENSION *conf_ext(X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(ext);
    return ext;
}

static void add_ext(X509 *x, X509_EXTENSION *ext)
{
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void add_der_ext(X509 *x, const char *oid, int critical, const char *value_hex)
{
    blob v = from_hex(value_hex);
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_int_equal(ASN1_OCTET_STRING_set(os, v.data, (int)v.len), 1);
    X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
    assert_non_null(ext);
    add_ext(x, ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    free(v.data);
}

static blob cert_der(X509 *x)
{
    blob b = {0};
    int n = i2d_X509(x, &b.data);
    assert_true(n > 0);
    b.len = (size_t)n;
    return b;
}

static void sign_cert(X509 *x, EVP_PKEY *key, const EVP_MD *md)
{
    assert_true(X509_sign(x, key, md) > 0);
}

static X509 *new_cert(const test_ca *ca, const X509_NAME *subject, EVP_PKEY *key, long serial)
{
    X509 *x = X509_new();
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    assert_int_equal(
        X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca->cert) : subject), 1);
    assert_int_equal(X509_set_subject_name(x, subject), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)F->not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)F->not_after));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    return x;
}

static void make_ca(test_ca *ca, EVP_PKEY *key, const EVP_MD *md, const char *name)
{
    X509_NAME *dn = X509_NAME_new();
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "O", MBSTRING_UTF8,
                                                (const unsigned char *)"vtpmca", -1, -1, 0),
                     1);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(dn, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1, 0),
        1);
    X509 *x = new_cert(NULL, dn, key, 1);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    add_ext(x, conf_ext(&v3, NID_basic_constraints, "critical,CA:TRUE"));
    add_ext(x, conf_ext(&v3, NID_key_usage, "critical,keyCertSign,cRLSign"));
    add_ext(x, conf_ext(&v3, NID_subject_key_identifier, "hash"));
    sign_cert(x, key, md);
    X509_NAME_free(dn);
    ca->key = key;
    ca->cert = x;
    ca->md = md;
    ca->name = name;
}

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    snprintf(F->tmpdir, sizeof(F->tmpdir), "/tmp/test_c509.XXXXXX");
    assert_non_null(mkdtemp(F->tmpdir));
    F->not_before = (uint64_t)time(NULL) - 3600;
    F->not_after = F->not_before + 365 * 86400;
    make_ca(&F->ca_p256, gen_key("EC", "P-256"), EVP_sha256(), "Test CA P-256");
    make_ca(&F->ca_p384, gen_key("EC", "P-384"), EVP_sha384(), "Test CA P-384");
    make_ca(&F->ca_rsa, gen_key("RSA", "2048"), EVP_sha256(), "Test CA RSA");
    make_ca(&F->ca_ed25519, gen_key("ED25519", NULL), NULL, "Test CA Ed25519");
    F->rsa2048 = gen_key("RSA", "2048");
    F->p256 = gen_key("EC", "P-256");
    F->p384 = gen_key("EC", "P-384");
    F->secp256k1 = gen_key("EC", "secp256k1");
    F->x25519 = gen_key("X25519", NULL);
    *state = F;
    return 0;
}

static void free_ca(test_ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

static int teardown(void **state)
{
    free_ca(&F->ca_p256);
    free_ca(&F->ca_p384);
    free_ca(&F->ca_rsa);
    free_ca(&F->ca_ed25519);
    EVP_PKEY_free(F->rsa2048);
    EVP_PKEY_free(F->p256);
    EVP_PKEY_free(F->p384);
    EVP_PKEY_free(F->secp256k1);
    EVP_PKEY_free(F->x25519);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", F->tmpdir);
    assert_int_equal(system(cmd), 0);
    free(F);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Certificates of our profiles, made with OpenSSL (as ca/ek_profile.c does) */

static GENERAL_NAMES *tpm_dirname_san(void)
{
    X509_NAME *dn = X509_NAME_new();
    static const char *const attrs[][2] = {
        {"2.23.133.2.1", "id:414D4400"}, /* tpmManufacturer */
        {"2.23.133.2.2", "vTPM-SVSM"},   /* tpmModel */
        {"2.23.133.2.3", "id:00020008"}, /* tpmVersion */
    };
    for (size_t i = 0; i < 3; i++) {
        ASN1_OBJECT *obj = OBJ_txt2obj(attrs[i][0], 1);
        assert_int_equal(X509_NAME_add_entry_by_OBJ(dn, obj, V_ASN1_UTF8STRING,
                                                    (const unsigned char *)attrs[i][1], -1, -1, 0),
                         1);
        ASN1_OBJECT_free(obj);
    }
    GENERAL_NAME *gn = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    sk_GENERAL_NAME_push(gens, gn);
    return gens;
}

static void add_common_ca_exts(X509 *x, const test_ca *ca)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    add_ext(x, conf_ext(&v3, NID_authority_key_identifier, "keyid:always"));
    add_ext(x, conf_ext(&v3, NID_crl_distribution_points, "URI:http://ca.example/v1/ca/crl"));
    add_ext(x,
            conf_ext(&v3, NID_info_access,
                     "caIssuers;URI:http://ca.example/v1/ca/chain,OCSP;URI:http://ocsp.example/"));
}

/* EK certificate: empty subject, critical SAN directoryName with the TPM attributes,
 * critical basicConstraints CA:FALSE, critical keyUsage, EKU 2.23.133.8.1,
 * subjectDirectoryAttributes, SKI, AKI, CRLDP, AIA and a private extension. */
static blob make_ek(const test_ca *ca, EVP_PKEY *ek)
{
    X509_NAME *empty = X509_NAME_new();
    X509 *x = new_cert(ca, empty, ek, 0x4d3c2b1a);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    GENERAL_NAMES *san = tpm_dirname_san();
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, san, 1, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(san);
    add_ext(x, conf_ext(&v3, NID_basic_constraints, "critical,CA:FALSE"));
    bool rsa = EVP_PKEY_get_base_id(ek) == EVP_PKEY_RSA;
    add_ext(x, conf_ext(&v3, NID_key_usage,
                        rsa ? "critical,keyEncipherment" : "critical,keyAgreement"));
    add_ext(x, conf_ext(&v3, NID_ext_key_usage, "2.23.133.8.1"));
    add_der_ext(x, "2.5.29.9", 0, SDA_TPM_SPEC);
    add_ext(x, conf_ext(&v3, NID_subject_key_identifier, "hash"));
    add_common_ca_exts(x, ca);
    add_der_ext(x, PRIVATE_OID, 0, PRIVATE_VALUE);
    sign_cert(x, ca->key, ca->md);
    blob der = cert_der(x);
    X509_free(x);
    X509_NAME_free(empty);
    return der;
}

/* IAK certificate: SAN otherName hardwareModuleName, keyUsage digitalSignature, EKU
 * 2.23.133.8.3. */
static blob make_iak(const test_ca *ca, EVP_PKEY *iak)
{
    X509_NAME *dn = X509_NAME_new();
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "CN", MBSTRING_UTF8,
                                                (const unsigned char *)"instance-0001", -1, -1, 0),
                     1);
    X509 *x = new_cert(ca, dn, iak, 77);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    blob hw = from_hex(HW_MODULE_NAME);
    ASN1_STRING *seq = ASN1_STRING_new();
    assert_int_equal(ASN1_STRING_set(seq, hw.data, (int)hw.len), 1);
    ASN1_TYPE *value = ASN1_TYPE_new();
    ASN1_TYPE_set(value, V_ASN1_SEQUENCE, seq);
    GENERAL_NAME *gn = GENERAL_NAME_new();
    assert_int_equal(GENERAL_NAME_set0_othername(gn, OBJ_txt2obj("1.3.6.1.5.5.7.8.4", 1), value),
                     1);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    sk_GENERAL_NAME_push(gens, gn);
    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(gens);
    add_ext(x, conf_ext(&v3, NID_key_usage, "critical,digitalSignature"));
    add_ext(x, conf_ext(&v3, NID_ext_key_usage, "2.23.133.8.3"));
    add_common_ca_exts(x, ca);
    sign_cert(x, ca->key, ca->md);
    blob der = cert_der(x);
    X509_free(x);
    X509_NAME_free(dn);
    free(hw.data);
    return der;
}

/* Everything else in the extension registry that OpenSSL can make. */
static const char MANY_EXTS_CONF[] =
    "[pol]\n"
    "policyIdentifier = 1.3.6.1.4.1.99999.1\n"
    "CPS.1 = \"http://cps.example/\"\n"
    "userNotice.1 = @notice\n"
    "[notice]\n"
    "explicitText = \"UTF8:Test policy \xc3\xa9\"\n"
    "[nc]\n"
    "permitted;DNS.1 = example.com\n"
    "permitted;IP.1 = 192.168.0.0/255.255.0.0\n"
    "permitted;IP.2 = 2001:db8::/ffff:ffff::\n"
    "excluded;email.1 = .bad.example\n"
    "[san]\n"
    "DNS.1 = a.example\n"
    "DNS.2 = b.example\n"
    "IP.1 = 192.0.2.1\n"
    "IP.2 = 2001:db8::1\n"
    "email.1 = x@example.com\n"
    "URI.1 = https://example.com/\n"
    "RID.1 = 1.2.3.4\n"
    "otherName.1 = 1.3.6.1.5.5.7.8.9;UTF8:j\xc3\xb6rg@example.com\n"
    "otherName.2 = 1.3.6.1.5.5.7.8.12;FORMAT:HEX,OCTETSTRING:0123456789ab\n"
    "[crldp]\n"
    "fullname = URI:http://crl.example/a.crl\n"
    "reasons = keyCompromise, CACompromise\n"
    "CRLissuer = dirName:crl_issuer\n"
    "[crl_issuer]\n"
    "C = SE\n"
    "CN = CRL issuer\n";

static blob make_many_exts(const test_ca *ca, EVP_PKEY *key)
{
    X509_NAME *dn = X509_NAME_new();
    /* printableString (negative code), UTF8String with a hex-looking and an EUI-64 value,
     * IA5String emailAddress and domainComponent, and an attribute without a code */
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "C", V_ASN1_PRINTABLESTRING,
                                                (const unsigned char *)"SE", -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "DC", V_ASN1_IA5STRING,
                                                (const unsigned char *)"example", -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "serialNumber", V_ASN1_PRINTABLESTRING,
                                                (const unsigned char *)"0123abcd", -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "OU", V_ASN1_UTF8STRING,
                                                (const unsigned char *)"AC-DE-48-00-11-22-33-44",
                                                -1, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "emailAddress", V_ASN1_IA5STRING,
                                                (const unsigned char *)"ops@example.com", -1, -1,
                                                0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "1.2.3.4.5", V_ASN1_UTF8STRING,
                                                (const unsigned char *)"private attribute", -1, -1,
                                                0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(
                         dn, "CN", V_ASN1_UTF8STRING,
                         (const unsigned char *)"r\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s", -1, -1, 0),
                     1);
    X509 *x = new_cert(ca, dn, key, 1234567);
    X509V3_CTX v3;
    CONF *conf = NCONF_new(NULL);
    BIO *bio = BIO_new_mem_buf(MANY_EXTS_CONF, -1);
    assert_int_equal(NCONF_load_bio(conf, bio, NULL), 1);
    BIO_free(bio);
    X509V3_set_ctx(&v3, ca->cert, x, NULL, NULL, 0);
    X509V3_set_nconf(&v3, conf);
    static const struct {
        const char *name;
        const char *value;
    } exts[] = {
        {"basicConstraints", "critical,CA:TRUE,pathlen:2"},
        {"keyUsage", "digitalSignature,nonRepudiation,keyEncipherment,keyAgreement"},
        {"extendedKeyUsage", "serverAuth,clientAuth,codeSigning,1.3.6.1.4.1.99999.7"},
        {"certificatePolicies", "2.23.140.1.2.1,@pol"},
        {"subjectAltName", "@san"},
        {"crlDistributionPoints", "crldp"},
        {"issuerAltName", "URI:http://ca.example/"},
        {"nameConstraints", "critical,@nc"},
        {"policyConstraints", "critical,requireExplicitPolicy:1,inhibitPolicyMapping:2"},
        {"inhibitAnyPolicy", "critical,3"},
        {"policyMappings", "2.23.140.1.2.1:1.3.6.1.4.1.99999.2,1.3.6.1.4.1.99999.3:2.5.29.32.0"},
        {"freshestCRL", "URI:http://ca.example/delta.crl,URI:http://ca2.example/delta.crl"},
        {"subjectInfoAccess",
         "caRepository;URI:rsync://repo.example/a/,1.3.6.1.5.5.7.48.99;URI:http://x.example/"},
        {"tlsfeature", "status_request"},
        {"noCheck", "ignored"},
        {"sbgp-autonomousSysNum", "AS:64496-64511,AS:65000,AS:65536"},
        {"sbgp-ipAddrBlock", "IPv4:192.0.2.0/24,IPv4:198.51.100.0-198.51.100.77,IPv6:inherit"},
        {"subjectKeyIdentifier", "hash"},
        {"authorityKeyIdentifier", "keyid:always,issuer:always"},
    };
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        X509_EXTENSION *ext = X509V3_EXT_nconf(conf, &v3, exts[i].name, exts[i].value);
        if (ext == NULL)
            print_error("cannot make %s\n", exts[i].name);
        assert_non_null(ext);
        add_ext(x, ext);
    }
    /* subjectDirectoryAttributes {commonName "abc"}, precertificate signing (RFC 6962) */
    add_der_ext(x, "2.5.29.9", 0, "300e300c060355040331050c03616263");
    add_der_ext(x, "1.3.6.1.4.1.11129.2.4.3", 1, "0500");
    sign_cert(x, ca->key, ca->md);
    blob der = cert_der(x);
    X509_free(x);
    X509_NAME_free(dn);
    NCONF_free(conf);
    return der;
}

/* ------------------------------------------------------------------------------------ */
/* Helpers */

static blob to_c509(const blob *der)
{
    blob c = {0};
    vtpmca_diag diag = {{0}};
    vtpmca_err err = c509_from_x509_der(der->data, der->len, &c.data, &c.len, &diag);
    if (err != VTPMCA_OK)
        print_error("c509_from_x509_der: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    return c;
}

static blob to_der(const blob *c509)
{
    blob d = {0};
    vtpmca_diag diag = {{0}};
    vtpmca_err err = c509_to_x509_der(c509->data, c509->len, &d.data, &d.len, &diag);
    if (err != VTPMCA_OK)
        print_error("c509_to_x509_der: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    return d;
}

static void write_pem(const char *path, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    assert_non_null(x);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
}

/* `openssl verify` (the CLI, an independent verifier) of a DER certificate against a CA. */
static int openssl_verify(const test_ca *ca, const uint8_t *der, size_t len)
{
    char ca_path[128], cert_path[128], cmd[512];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", F->tmpdir);
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", F->tmpdir);
    blob ca_der = cert_der(ca->cert);
    write_pem(ca_path, ca_der.data, ca_der.len);
    write_pem(cert_path, der, len);
    free(ca_der.data);
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s %s >%s/verify.log 2>&1", ca_path,
             cert_path, F->tmpdir);
    int rc = system(cmd);
    rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat %s/verify.log >&2", F->tmpdir);
        (void)!system(cmd);
    }
    return rc;
}

/* DER -> C509 -> DER is the identity, the rebuilt DER passes `openssl verify` (or, for
 * certificates whose RFC 3779 resources no chain of ours grants, OpenSSL's signature check),
 * the C509 verifies with the CA key, and not with another key. Returns the C509. */
static blob check_round_trip_as(const test_ca *ca, const blob *der, bool path_validation)
{
    blob c = to_c509(der);
    assert_true(c.len < der->len); /* C509 is smaller */
    blob back = to_der(&c);
    assert_int_equal(back.len, der->len);
    assert_memory_equal(back.data, der->data, der->len);
    if (path_validation) {
        assert_int_equal(openssl_verify(ca, back.data, back.len), 0);
    } else {
        const unsigned char *p = back.data;
        X509 *x = d2i_X509(NULL, &p, (long)back.len);
        assert_int_equal(X509_verify(x, ca->key), 1);
        X509_free(x);
    }
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_verify(c.data, c.len, ca->key, &diag), VTPMCA_OK);
    const test_ca *other = ca == &F->ca_p256 ? &F->ca_p384 : &F->ca_p256;
    assert_int_equal(c509_verify(c.data, c.len, other->key, &diag), VTPMCA_ERR_CRYPTO);
    free(back.data);
    return c;
}

static blob check_round_trip(const test_ca *ca, const blob *der)
{
    return check_round_trip_as(ca, der, true);
}

/* The decoded C509 tree (for checking individual items). */
static cbor_item_t *load(const blob *c)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(c->data, c->len, &res);
    assert_non_null(root);
    assert_int_equal(res.read, c->len);
    assert_int_equal(cbor_array_size(root), 11);
    return root;
}

static int64_t item_int(const cbor_item_t *it)
{
    if (cbor_isa_uint(it))
        return (int64_t)cbor_get_int(it);
    assert_true(cbor_isa_negint(it));
    return -1 - (int64_t)cbor_get_int(it);
}

/* The value of the extension with this id in the extensions array (NULL when absent). */
static cbor_item_t *ext_by_code(cbor_item_t *root, int64_t id)
{
    cbor_item_t *exts = cbor_array_handle(root)[9];
    assert_true(cbor_isa_array(exts));
    cbor_item_t **items = cbor_array_handle(exts);
    for (size_t i = 0; i + 1 < cbor_array_size(exts); i += 2)
        if ((cbor_isa_uint(items[i]) || cbor_isa_negint(items[i])) && item_int(items[i]) == id)
            return items[i + 1];
    return NULL;
}

/* The value of the unregistered extension with this OID (content octets in hex). */
static cbor_item_t *ext_by_oid(cbor_item_t *root, const char *oid_hex)
{
    blob oid = from_hex(oid_hex);
    cbor_item_t *exts = cbor_array_handle(root)[9];
    cbor_item_t **items = cbor_array_handle(exts);
    cbor_item_t *found = NULL;
    for (size_t i = 0; i + 1 < cbor_array_size(exts); i += 2)
        if (cbor_isa_bytestring(items[i]) && cbor_bytestring_length(items[i]) == oid.len &&
            memcmp(cbor_bytestring_handle(items[i]), oid.data, oid.len) == 0)
            found = items[i + 1];
    free(oid.data);
    return found;
}

static size_t ext_pairs(cbor_item_t *root)
{
    cbor_item_t *exts = cbor_array_handle(root)[9];
    return cbor_isa_array(exts) ? cbor_array_size(exts) / 2 : 1;
}

static void assert_bytes_hex(const cbor_item_t *it, const char *hex)
{
    blob want = from_hex(hex);
    assert_true(cbor_isa_bytestring(it));
    assert_int_equal(cbor_bytestring_length(it), want.len);
    assert_memory_equal(cbor_bytestring_handle(it), want.data, want.len);
    free(want.data);
}

static void assert_text(const cbor_item_t *it, const char *text)
{
    assert_true(cbor_isa_string(it));
    assert_int_equal(cbor_string_length(it), strlen(text));
    assert_memory_equal(cbor_string_handle(it), text, strlen(text));
}

/* ------------------------------------------------------------------------------------ */
/* Type 3 round trips */

/* The EK profile's C509 items are the draft's encodings (docs/c509.md). */
static void check_ek_items(const blob *c, bool rsa)
{
    cbor_item_t *root = load(c);
    cbor_item_t **f = cbor_array_handle(root);
    assert_int_equal(item_int(f[0]), 3);
    assert_bytes_hex(f[1], "4d3c2b1a");
    assert_true(cbor_isa_array(f[6]) && cbor_array_size(f[6]) == 0); /* empty subject: [] */
    assert_int_equal(ext_pairs(root), 10);
    /* critical SAN: -3, [4, [~oid, DER TLV, ~oid, DER TLV, ~oid, DER TLV]] */
    cbor_item_t *san = ext_by_code(root, -3);
    assert_non_null(san);
    assert_int_equal(cbor_array_size(san), 2);
    assert_int_equal(item_int(cbor_array_handle(san)[0]), 4);
    cbor_item_t *dir = cbor_array_handle(san)[1];
    assert_int_equal(cbor_array_size(dir), 6);
    assert_bytes_hex(cbor_array_handle(dir)[0], "6781050201");
    assert_bytes_hex(cbor_array_handle(dir)[1], "0c0b69643a3431344434343030");
    assert_bytes_hex(cbor_array_handle(dir)[4], "6781050203");
    /* critical basicConstraints CA:FALSE = -4, -2; critical keyUsage -2, 4 or 16 */
    assert_int_equal(item_int(ext_by_code(root, -4)), -2);
    assert_int_equal(item_int(ext_by_code(root, -2)), rsa ? 4 : 16);
    /* EKU 2.23.133.8.1 is a ~oid (no array for one purpose) */
    assert_bytes_hex(ext_by_code(root, 8), "6781050801");
    /* subjectDirectoryAttributes: code 24, [~oid tpmSpecification, [DER value]] */
    cbor_item_t *sda = ext_by_code(root, 24);
    assert_non_null(sda);
    assert_bytes_hex(cbor_array_handle(sda)[0], "6781050210");
    assert_bytes_hex(cbor_array_handle(cbor_array_handle(sda)[1])[0],
                     "300c0c03322e30020100020200a4");
    /* AKI key id alone is bytes; SKI bytes; CRLDP one URI is text; AIA pairs */
    assert_true(cbor_isa_bytestring(ext_by_code(root, 7)));
    assert_true(cbor_isa_bytestring(ext_by_code(root, 1)));
    assert_text(ext_by_code(root, 5), "http://ca.example/v1/ca/crl");
    cbor_item_t *aia = ext_by_code(root, 9);
    assert_int_equal(item_int(cbor_array_handle(aia)[0]), 2);
    assert_text(cbor_array_handle(aia)[1], "http://ca.example/v1/ca/chain");
    assert_int_equal(item_int(cbor_array_handle(aia)[2]), 1);
    /* the private extension: ~oid, bytes (the extnValue) */
    assert_bytes_hex(ext_by_oid(root, PRIVATE_OID_HEX), PRIVATE_VALUE);
    cbor_decref(&root);
}

static void test_ek_round_trip(void **state)
{
    struct {
        const test_ca *ca;
        EVP_PKEY *ek;
    } cases[] = {
        {&F->ca_p256, F->rsa2048},
        {&F->ca_p384, F->p256},
        {&F->ca_rsa, F->p384},
        {&F->ca_ed25519, F->rsa2048},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blob der = make_ek(cases[i].ca, cases[i].ek);
        blob c = check_round_trip(cases[i].ca, &der);
        check_ek_items(&c, EVP_PKEY_get_base_id(cases[i].ek) == EVP_PKEY_RSA);
        free(c.data);
        free(der.data);
    }
}

static void test_iak_round_trip(void **state)
{
    blob der = make_iak(&F->ca_p384, F->p256);
    blob c = check_round_trip(&F->ca_p384, &der);
    cbor_item_t *root = load(&c);
    assert_text(cbor_array_handle(root)[6], "instance-0001"); /* lone CN */
    /* SAN hardwareModuleName: 3, [-1, [~oid hwType, serial]] */
    cbor_item_t *san = ext_by_code(root, 3);
    assert_int_equal(item_int(cbor_array_handle(san)[0]), -1);
    cbor_item_t *hw = cbor_array_handle(san)[1];
    assert_bytes_hex(cbor_array_handle(hw)[0], "6781050102");
    assert_bytes_hex(cbor_array_handle(hw)[1], "0102030405060708");
    assert_int_equal(item_int(ext_by_code(root, -2)), 1); /* critical digitalSignature */
    assert_bytes_hex(ext_by_code(root, 8), "6781050803");
    cbor_decref(&root);
    free(c.data);
    free(der.data);
}

static void test_many_extensions_round_trip(void **state)
{
    blob der = make_many_exts(&F->ca_rsa, F->p384);
    blob c = check_round_trip_as(&F->ca_rsa, &der, false);
    cbor_item_t *root = load(&c);
    /* every extension here has a specific encoding: no ~oid left */
    cbor_item_t *exts = cbor_array_handle(root)[9];
    for (size_t i = 0; i < cbor_array_size(exts); i += 2)
        assert_false(cbor_isa_bytestring(cbor_array_handle(exts)[i]));
    assert_int_equal(ext_pairs(root), 21);
    assert_int_equal(item_int(ext_by_code(root, -4)), 2); /* CA, pathlen 2 */
    assert_int_equal(item_int(ext_by_code(root, 2)), 23); /* the draft's example value */
    cbor_item_t *eku = ext_by_code(root, 8);
    assert_int_equal(item_int(cbor_array_handle(eku)[0]), 1);
    assert_int_equal(item_int(cbor_array_handle(eku)[2]), 3);
    assert_true(cbor_isa_bytestring(cbor_array_handle(eku)[3]));
    assert_non_null(ext_by_code(root, 6));
    assert_non_null(ext_by_code(root, 25));
    assert_non_null(ext_by_code(root, -26));
    assert_non_null(ext_by_code(root, -28));
    assert_int_equal(item_int(ext_by_code(root, -30)), 3);
    assert_non_null(ext_by_code(root, 27));
    assert_non_null(ext_by_code(root, 29));
    assert_non_null(ext_by_code(root, 31));
    assert_non_null(ext_by_code(root, 33));
    assert_non_null(ext_by_code(root, 32));
    assert_true(cbor_is_null(ext_by_code(root, 36)));
    assert_true(cbor_is_null(ext_by_code(root, -37)));
    /* SDA with a coded attribute: 24, [1, ["abc"]] */
    cbor_item_t *sda = ext_by_code(root, 24);
    assert_int_equal(item_int(cbor_array_handle(sda)[0]), 1);
    assert_text(cbor_array_handle(cbor_array_handle(sda)[1])[0], "abc");
    /* CRLDP with reasons and a cRLIssuer: [[uri, reasons, Name]]; keyCompromise (1) and
     * cACompromise (2) are 2^1 + 2^2 */
    cbor_item_t *dp = cbor_array_handle(ext_by_code(root, 5))[0];
    assert_text(cbor_array_handle(dp)[0], "http://crl.example/a.crl");
    assert_int_equal(item_int(cbor_array_handle(dp)[1]), 6);
    assert_int_equal(cbor_array_size(cbor_array_handle(dp)[2]), 4);
    /* SAN otherNames with their own codes: SmtpUTF8Mailbox -2, MACAddress -3 */
    cbor_item_t *san = ext_by_code(root, 3);
    assert_int_equal(cbor_array_size(san), 18);
    assert_int_equal(item_int(cbor_array_handle(san)[14]), -2);
    assert_int_equal(item_int(cbor_array_handle(san)[16]), -3);
    assert_bytes_hex(cbor_array_handle(san)[17], "0123456789ab");
    cbor_item_t *tls = ext_by_code(root, 38);
    assert_int_equal(item_int(cbor_array_handle(tls)[0]), 5);
    /* name constraints carry the IPv4 prefix as address || length: C0 A8 00 00 10 */
    cbor_item_t *nc = ext_by_code(root, -26);
    cbor_item_t *permitted = cbor_array_handle(nc)[0];
    assert_int_equal(item_int(cbor_array_handle(permitted)[2]), 7);
    assert_bytes_hex(cbor_array_handle(permitted)[3], "c0a8000010");
    /* names: printableString C = -4; IA5 DC = 22; hex-looking serialNumber -> bytes; EUI-64
     * OU -> tag 48 (8 bytes); emailAddress = 0; (~oid, DER) attribute; UTF-8 CN text */
    cbor_item_t *subject = cbor_array_handle(root)[6];
    cbor_item_t **s = cbor_array_handle(subject);
    assert_int_equal(cbor_array_size(subject), 14);
    assert_int_equal(item_int(s[0]), -4);
    assert_int_equal(item_int(s[2]), 22);
    assert_int_equal(item_int(s[4]), -3);
    assert_bytes_hex(s[5], "0123abcd");
    assert_int_equal(item_int(s[6]), 9);
    assert_true(cbor_isa_tag(s[7]) && cbor_tag_value(s[7]) == 48);
    assert_int_equal(item_int(s[8]), 0);
    assert_bytes_hex(s[10], "2a030405");
    assert_int_equal(item_int(s[12]), 1);
    cbor_decref(&root);

    c509_info info;
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_decode_info(c.data, c.len, &info, &diag), VTPMCA_OK);
    /* RFC 2253: attributes without a known name print as #DER */
    assert_string_equal(
        info.subject,
        "CN=r\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s,1.2.3.4.5=#0C117072697661746520617474726962757465,"
        "emailAddress=ops@example.com,OU=AC-DE-48-00-11-22-33-44,"
        "serialNumber=0123abcd,DC=example,C=SE");
    assert_int_equal(info.ext_count, 21);
    assert_non_null(strstr(info.extensions, "Test policy"));
    c509_info_free(&info);
    free(c.data);
    free(der.data);
}

/* Keys and signatures outside the common profiles. */
static void test_other_keys_round_trip(void **state)
{
    /* a curve without a C509 code (generic AlgorithmIdentifier), X25519, RSA e=3 */
    EVP_PKEY *keys[] = {F->secp256k1, F->x25519};
    for (size_t i = 0; i < 2; i++) {
        X509_NAME *dn = X509_NAME_new();
        X509 *x = new_cert(&F->ca_p256, dn, keys[i], 9);
        sign_cert(x, F->ca_p256.key, F->ca_p256.md);
        blob der = cert_der(x);
        blob c = check_round_trip(&F->ca_p256, &der);
        cbor_item_t *root = load(&c);
        if (i == 0) /* [~oid id-ecPublicKey, DER parameters] */
            assert_true(cbor_isa_array(cbor_array_handle(root)[7]));
        else
            assert_int_equal(item_int(cbor_array_handle(root)[7]), 8);
        cbor_decref(&root);
        free(c.data);
        free(der.data);
        X509_free(x);
        X509_NAME_free(dn);
    }
    /* RSA-PSS signature (code 26) by the RSA CA, and a notAfter of 99991231235959Z */
    X509_NAME *dn = X509_NAME_new();
    X509 *x = new_cert(&F->ca_rsa, dn, F->p256, 10);
    ASN1_TIME *forever = ASN1_TIME_new();
    assert_int_equal(ASN1_TIME_set_string_X509(forever, "99991231235959Z"), 1);
    assert_int_equal(X509_set1_notAfter(x, forever), 1);
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit(md_ctx, &pctx, EVP_sha256(), NULL, F->ca_rsa.key), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
    assert_true(X509_sign_ctx(x, md_ctx) > 0);
    blob der = cert_der(x);
    blob c = check_round_trip(&F->ca_rsa, &der);
    cbor_item_t *root = load(&c);
    assert_int_equal(item_int(cbor_array_handle(root)[2]), 26);
    assert_true(cbor_is_null(cbor_array_handle(root)[5]));
    cbor_decref(&root);
    free(c.data);
    free(der.data);
    EVP_MD_CTX_free(md_ctx);
    ASN1_TIME_free(forever);
    X509_free(x);
    X509_NAME_free(dn);
}

/* ------------------------------------------------------------------------------------ */
/* Natively signed certificates */

static const uint8_t SERIAL[] = {0x00, 0x4d, 0x3c, 0x2b, 0x1a}; /* the leading zero is dropped */

static c509_sig_alg ca_sig_alg(const test_ca *ca)
{
    switch (EVP_PKEY_get_base_id(ca->key)) {
    case EVP_PKEY_RSA:
        return C509_SIG_RSA_PKCS1_SHA256;
    case EVP_PKEY_ED25519:
        return C509_SIG_ED25519;
    default:
        return ca->md == EVP_sha384() ? C509_SIG_ECDSA_SHA384 : C509_SIG_ECDSA_SHA256;
    }
}

static void key_id(const X509 *x, uint8_t *out, size_t *len)
{
    const ASN1_OCTET_STRING *id = X509_get0_subject_key_id((X509 *)x);
    assert_non_null(id);
    *len = (size_t)ASN1_STRING_length(id);
    memcpy(out, ASN1_STRING_get0_data(id), *len);
}

/* make_ek's profile in C509 terms (same content, same extension order). */
typedef struct {
    c509_attr issuer_attrs[2];
    c509_attr tpm_attrs[3];
    c509_general_name san;
    c509_access_desc access[2];
    const char *crl_uri;
    const char *eku;
    blob sda, priv;
    uint8_t ski[64], aki[64];
    size_t ski_len, aki_len;
    c509_ext exts[10];
    c509_tbs tbs;
} native_ek;

static void native_ek_init(native_ek *n, const test_ca *ca, EVP_PKEY *ek, const blob *twin)
{
    memset(n, 0, sizeof(*n));
    n->issuer_attrs[0] = (c509_attr){.oid = "2.5.4.10", .text = "vtpmca"};
    n->issuer_attrs[1] = (c509_attr){.oid = "2.5.4.3", .text = ca->name};
    n->tpm_attrs[0] = (c509_attr){.oid = "2.23.133.2.1", .text = "id:414D4400"};
    n->tpm_attrs[1] = (c509_attr){.oid = "2.23.133.2.2", .text = "vTPM-SVSM"};
    n->tpm_attrs[2] = (c509_attr){.oid = "2.23.133.2.3", .text = "id:00020008"};
    n->san = (c509_general_name){.type = C509_GN_DIRECTORY_NAME, .dir_name = {n->tpm_attrs, 3}};
    n->access[0] = (c509_access_desc){C509_OID_AD_CA_ISSUERS, "http://ca.example/v1/ca/chain"};
    n->access[1] = (c509_access_desc){C509_OID_AD_OCSP, "http://ocsp.example/"};
    n->crl_uri = "http://ca.example/v1/ca/crl";
    n->eku = "2.23.133.8.1";
    n->sda = from_hex(SDA_TPM_SPEC);
    n->priv = from_hex(PRIVATE_VALUE);
    const unsigned char *p = twin->data;
    X509 *x = d2i_X509(NULL, &p, (long)twin->len);
    key_id(x, n->ski, &n->ski_len);
    key_id(ca->cert, n->aki, &n->aki_len);
    X509_free(x);
    bool rsa = EVP_PKEY_get_base_id(ek) == EVP_PKEY_RSA;
    c509_ext *e = n->exts;
    e[0] = (c509_ext){
        .kind = C509_EXT_SUBJECT_ALT_NAME, .critical = true, .names = &n->san, .name_count = 1};
    e[1] = (c509_ext){.kind = C509_EXT_BASIC_CONSTRAINTS, .critical = true, .path_len = -1};
    e[2] = (c509_ext){.kind = C509_EXT_KEY_USAGE,
                      .critical = true,
                      .key_usage = rsa ? C509_KU_KEY_ENCIPHERMENT : C509_KU_KEY_AGREEMENT};
    e[3] = (c509_ext){.kind = C509_EXT_EXT_KEY_USAGE, .oids = &n->eku, .oid_count = 1};
    e[4] = (c509_ext){.kind = C509_EXT_DER,
                      .oid = "2.5.29.9",
                      .der_value = n->sda.data,
                      .der_value_len = n->sda.len};
    e[5] = (c509_ext){.kind = C509_EXT_SUBJECT_KEY_ID, .key_id = n->ski, .key_id_len = n->ski_len};
    e[6] =
        (c509_ext){.kind = C509_EXT_AUTHORITY_KEY_ID, .key_id = n->aki, .key_id_len = n->aki_len};
    e[7] =
        (c509_ext){.kind = C509_EXT_CRL_DISTRIBUTION_POINTS, .uris = &n->crl_uri, .uri_count = 1};
    e[8] =
        (c509_ext){.kind = C509_EXT_AUTHORITY_INFO_ACCESS, .access = n->access, .access_count = 2};
    e[9] = (c509_ext){.kind = C509_EXT_DER,
                      .oid = PRIVATE_OID,
                      .der_value = n->priv.data,
                      .der_value_len = n->priv.len};
    n->tbs = (c509_tbs){
        .serial = SERIAL,
        .serial_len = sizeof(SERIAL),
        .sig_alg = ca_sig_alg(ca),
        .issuer = {n->issuer_attrs, 2},
        .not_before = F->not_before,
        .not_after = F->not_after,
        .subject = {NULL, 0},
        .subject_key = ek,
        .exts = n->exts,
        .ext_count = 10,
    };
}

static void native_ek_free(native_ek *n)
{
    free(n->sda.data);
    free(n->priv.data);
}

static blob sign_native(const c509_tbs *tbs, EVP_PKEY *key)
{
    blob c = {0};
    vtpmca_diag diag = {{0}};
    vtpmca_err err = c509_sign_native(tbs, key, &c.data, &c.len, &diag);
    if (err != VTPMCA_OK)
        print_error("c509_sign_native: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    return c;
}

/* Length of the 10 TBS items after the array head: the certificate minus its signature. */
static size_t tbs_end(const blob *c)
{
    cbor_item_t *root = load(c);
    size_t sig_len = cbor_bytestring_length(cbor_array_handle(root)[10]);
    cbor_decref(&root);
    unsigned char head[9];
    return c->len - cbor_encode_bytestring_start(sig_len, head, sizeof(head)) - sig_len;
}

static void test_native_ek(void **state)
{
    struct {
        const test_ca *ca;
        EVP_PKEY *ek;
        size_t sig_len;
    } cases[] = {
        {&F->ca_p256, F->rsa2048, 64},
        {&F->ca_p384, F->p256, 96},
        {&F->ca_rsa, F->p384, 256},
        {&F->ca_ed25519, F->rsa2048, 64},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const test_ca *ca = cases[i].ca;
        blob twin = make_ek(ca, cases[i].ek);
        native_ek n;
        native_ek_init(&n, ca, cases[i].ek, &twin);
        blob c = sign_native(&n.tbs, ca->key);
        vtpmca_diag diag = {{0}};
        assert_int_equal(c509_verify(c.data, c.len, ca->key, &diag), VTPMCA_OK);
        const test_ca *other = ca == &F->ca_p256 ? &F->ca_p384 : &F->ca_p256;
        assert_int_equal(c509_verify(c.data, c.len, other->key, &diag), VTPMCA_ERR_CRYPTO);
        cbor_item_t *root = load(&c);
        assert_int_equal(item_int(cbor_array_handle(root)[0]), 2);
        assert_int_equal(cbor_bytestring_length(cbor_array_handle(root)[10]), cases[i].sig_len);
        cbor_decref(&root);

        /* the same profile from the X.509 twin gives the same TBS */
        blob from_x509 = {0};
        assert_int_equal(c509_sign_native_from_x509(twin.data, twin.len, ca->key, &from_x509.data,
                                                    &from_x509.len, &diag),
                         VTPMCA_OK);
        size_t end = tbs_end(&c);
        assert_int_equal(tbs_end(&from_x509), end);
        assert_memory_equal(from_x509.data, c.data, end);
        /* and, for an RSA EK (no point compression), the type 3 encoding differs only in
         * the type */
        if (EVP_PKEY_get_base_id(cases[i].ek) == EVP_PKEY_RSA) {
            blob t3 = to_c509(&twin);
            assert_int_equal(tbs_end(&t3), end);
            assert_int_equal(t3.data[1], 3);
            t3.data[1] = 2;
            assert_memory_equal(t3.data, c.data, end);
            free(t3.data);
        }

        c509_info info;
        assert_int_equal(c509_decode_info(c.data, c.len, &info, &diag), VTPMCA_OK);
        assert_int_equal(info.type, C509_TYPE_NATIVE);
        assert_string_equal(info.serial_hex, "4d3c2b1a");
        assert_string_equal(info.subject, "");
        char issuer[64];
        snprintf(issuer, sizeof(issuer), "CN=%s,O=vtpmca", ca->name);
        assert_string_equal(info.issuer, issuer);
        assert_int_equal(info.not_before, F->not_before);
        assert_int_equal(info.not_after, F->not_after);
        assert_int_equal(EVP_PKEY_eq(info.public_key, cases[i].ek), 1);
        assert_int_equal(info.ext_count, 10);
        assert_non_null(strstr(info.extensions, "2.23.133.8.1"));
        assert_null(info.x509_der);
        c509_info_free(&info);
        free(from_x509.data);
        free(c.data);
        native_ek_free(&n);
        free(twin.data);
    }
}

static void test_native_iak(void **state)
{
    const test_ca *ca = &F->ca_p384;
    blob twin = make_iak(ca, F->p256);
    blob hw_serial = from_hex("0102030405060708");
    const c509_general_name hw = {.type = C509_GN_HW_MODULE_NAME,
                                  .oid = "2.23.133.1.2",
                                  .bytes = hw_serial.data,
                                  .bytes_len = hw_serial.len};
    const char *eku = "2.23.133.8.3";
    const char *crl = "http://ca.example/v1/ca/crl";
    const c509_access_desc access[] = {{C509_OID_AD_CA_ISSUERS, "http://ca.example/v1/ca/chain"},
                                       {C509_OID_AD_OCSP, "http://ocsp.example/"}};
    uint8_t aki[64];
    size_t aki_len;
    key_id(ca->cert, aki, &aki_len);
    const c509_ext exts[] = {
        {.kind = C509_EXT_SUBJECT_ALT_NAME, .names = &hw, .name_count = 1},
        {.kind = C509_EXT_KEY_USAGE, .critical = true, .key_usage = C509_KU_DIGITAL_SIGNATURE},
        {.kind = C509_EXT_EXT_KEY_USAGE, .oids = &eku, .oid_count = 1},
        {.kind = C509_EXT_AUTHORITY_KEY_ID, .key_id = aki, .key_id_len = aki_len},
        {.kind = C509_EXT_CRL_DISTRIBUTION_POINTS, .uris = &crl, .uri_count = 1},
        {.kind = C509_EXT_AUTHORITY_INFO_ACCESS, .access = access, .access_count = 2},
    };
    const c509_attr issuer[] = {{.oid = "2.5.4.10", .text = "vtpmca"},
                                {.oid = "2.5.4.3", .text = ca->name}};
    const c509_attr subject = {.oid = "2.5.4.3", .text = "instance-0001"};
    const uint8_t serial = 77;
    const c509_tbs tbs = {
        .serial = &serial,
        .serial_len = 1,
        .sig_alg = C509_SIG_ECDSA_SHA384,
        .issuer = {issuer, 2},
        .not_before = F->not_before,
        .not_after = F->not_after,
        .subject = {&subject, 1},
        .subject_key = F->p256,
        .exts = exts,
        .ext_count = 6,
    };
    blob c = sign_native(&tbs, ca->key);
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_verify(c.data, c.len, ca->key, &diag), VTPMCA_OK);
    blob from_x509 = {0};
    assert_int_equal(c509_sign_native_from_x509(twin.data, twin.len, ca->key, &from_x509.data,
                                                &from_x509.len, &diag),
                     VTPMCA_OK);
    size_t end = tbs_end(&c);
    assert_int_equal(tbs_end(&from_x509), end);
    assert_memory_equal(from_x509.data, c.data, end);
    /* native EC keys use 02/03 point compression */
    cbor_item_t *root = load(&c);
    const cbor_item_t *key = cbor_array_handle(root)[8];
    assert_int_equal(cbor_bytestring_length(key), 33);
    assert_true(cbor_bytestring_handle(key)[0] == 0x02 || cbor_bytestring_handle(key)[0] == 0x03);
    cbor_decref(&root);
    free(from_x509.data);
    free(c.data);
    free(hw_serial.data);
    free(twin.data);
}

static void test_native_algorithms(void **state)
{
    struct {
        c509_sig_alg alg;
        const test_ca *ca;
        size_t sig_len;
    } cases[] = {
        {C509_SIG_ECDSA_SHA256, &F->ca_p256, 64},     {C509_SIG_ECDSA_SHA384, &F->ca_p384, 96},
        {C509_SIG_ECDSA_SHA512, &F->ca_p256, 64},     {C509_SIG_ED25519, &F->ca_ed25519, 64},
        {C509_SIG_RSA_PKCS1_SHA256, &F->ca_rsa, 256}, {C509_SIG_RSA_PKCS1_SHA384, &F->ca_rsa, 256},
        {C509_SIG_RSA_PKCS1_SHA512, &F->ca_rsa, 256}, {C509_SIG_RSA_PSS_SHA256, &F->ca_rsa, 256},
        {C509_SIG_RSA_PSS_SHA384, &F->ca_rsa, 256},   {C509_SIG_RSA_PSS_SHA512, &F->ca_rsa, 256},
    };
    const c509_attr cn = {.oid = "2.5.4.3", .text = "native"};
    const uint8_t serial[] = {0x01, 0x02};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const c509_tbs tbs = {
            .serial = serial,
            .serial_len = sizeof(serial),
            .sig_alg = cases[i].alg,
            .issuer = {&cn, 1},
            .not_before = 0,
            .not_after = C509_NO_EXPIRY,
            .subject = {&cn, 1},
            .subject_key = F->x25519,
        };
        blob c = sign_native(&tbs, cases[i].ca->key);
        cbor_item_t *root = load(&c);
        cbor_item_t **f = cbor_array_handle(root);
        assert_int_equal(item_int(f[2]), cases[i].alg);
        assert_true(cbor_is_null(f[3])); /* issuer == subject */
        assert_true(cbor_is_null(f[5])); /* no expiry */
        assert_int_equal(cbor_bytestring_length(f[10]), cases[i].sig_len);
        cbor_decref(&root);
        vtpmca_diag diag = {{0}};
        assert_int_equal(c509_verify(c.data, c.len, cases[i].ca->key, &diag), VTPMCA_OK);
        c.data[c.len - 5] ^= 0x10;
        assert_int_equal(c509_verify(c.data, c.len, cases[i].ca->key, &diag), VTPMCA_ERR_CRYPTO);
        free(c.data);
    }
}

static void expect_sign_error(const c509_tbs *tbs, EVP_PKEY *key, vtpmca_err want)
{
    uint8_t *out = (uint8_t *)"x";
    size_t len = 7;
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_sign_native(tbs, key, &out, &len, &diag), want);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_true(diag.msg[0] != '\0');
}

static void test_native_rejects(void **state)
{
    const c509_attr cn = {.oid = "2.5.4.3", .text = "x"};
    const uint8_t serial[] = {0x05};
    const c509_tbs good = {
        .serial = serial,
        .serial_len = 1,
        .sig_alg = C509_SIG_ECDSA_SHA256,
        .issuer = {&cn, 1},
        .not_before = 10,
        .not_after = 20,
        .subject = {&cn, 1},
        .subject_key = F->p256,
    };
    EVP_PKEY *key = F->ca_p256.key;
    uint8_t *out;
    size_t len;
    assert_int_equal(c509_sign_native(NULL, key, &out, &len, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_sign_native(&good, NULL, &out, &len, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_sign_native(&good, key, NULL, &len, NULL), VTPMCA_ERR_INVALID_ARG);

    c509_tbs t = good;
    expect_sign_error(&t, F->ca_rsa.key, VTPMCA_ERR_CRYPTO); /* ECDSA with an RSA key */
    t.sig_alg = (c509_sig_alg)3;                             /* ECDSA with SHAKE128 */
    expect_sign_error(&t, key, VTPMCA_ERR_UNSUPPORTED);
    t = good;
    t.serial_len = 0;
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);
    uint8_t long_serial[65];
    memset(long_serial, 0x11, sizeof(long_serial));
    t = good;
    t.serial = long_serial;
    t.serial_len = sizeof(long_serial);
    expect_sign_error(&t, key, VTPMCA_ERR_LIMIT);
    t = good;
    t.not_before = 30;
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);
    t = good;
    t.not_after = C509_NO_EXPIRY + 1;
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);
    t = good;
    t.subject_key = NULL;
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);

    static const uint8_t not_tlv[] = {0x0c, 0x05, 'a'};
    const c509_attr bad_attrs[] = {
        {.oid = "2.5.4.3", .text = "x", .der_value = not_tlv, .der_value_len = 3},
        {.oid = "2.5.4.3"},
        {.oid = "not an oid", .text = "x"},
        {.oid = "2.5.4.3", .der_value = not_tlv, .der_value_len = sizeof(not_tlv)},
        {.oid = "2.5.4.3", .text = "\xc3\x28"},
        {.oid = "0.9.2342.19200300.100.1.25", .text = "\xc3\xa4"}, /* DC is IA5 */
    };
    for (size_t i = 0; i < sizeof(bad_attrs) / sizeof(bad_attrs[0]); i++) {
        t = good;
        t.subject = (c509_name){&bad_attrs[i], 1};
        expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);
    }
    t = good;
    t.subject = (c509_name){NULL, 2};
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);

    const c509_general_name bad_ip = {.type = C509_GN_IP, .bytes = serial, .bytes_len = 1};
    const c509_general_name bad_dns = {.type = C509_GN_DNS,
                                       .text = "b\xc3\xa4"
                                               "d.example"};
    const c509_general_name no_other = {.type = C509_GN_OTHER_NAME, .oid = "1.2.3"};
    const char *bad_oid = "x.y";
    const c509_ext bad_exts[] = {
        {.kind = C509_EXT_KEY_USAGE, .key_usage = 0},
        {.kind = C509_EXT_KEY_USAGE, .key_usage = 0x200},
        {.kind = C509_EXT_BASIC_CONSTRAINTS, .ca = false, .path_len = 0},
        {.kind = C509_EXT_SUBJECT_ALT_NAME, .names = &bad_ip, .name_count = 1},
        {.kind = C509_EXT_SUBJECT_ALT_NAME, .names = &bad_dns, .name_count = 1},
        {.kind = C509_EXT_SUBJECT_ALT_NAME, .names = &no_other, .name_count = 1},
        {.kind = C509_EXT_SUBJECT_ALT_NAME, .names = NULL, .name_count = 0},
        {.kind = C509_EXT_EXT_KEY_USAGE, .oids = &bad_oid, .oid_count = 1},
        {.kind = C509_EXT_SUBJECT_KEY_ID},
        {.kind = C509_EXT_DER, .oid = "1.2.3"},
        {.kind = C509_EXT_DER, .oid = "1.2.3", .der_value = not_tlv, .der_value_len = 3},
        {.kind = C509_EXT_DER, .oid = NULL, .der_value = serial, .der_value_len = 0},
        {.kind = (c509_ext_kind)99},
    };
    for (size_t i = 0; i < sizeof(bad_exts) / sizeof(bad_exts[0]); i++) {
        t = good;
        t.exts = &bad_exts[i];
        t.ext_count = 1;
        expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);
    }
    t = good;
    t.exts = NULL;
    t.ext_count = 3;
    expect_sign_error(&t, key, VTPMCA_ERR_INVALID_ARG);

    /* from X.509: the issuer key must suit the certificate's signature algorithm */
    blob der = make_iak(&F->ca_p256, F->p256);
    assert_int_equal(c509_sign_native_from_x509(der.data, der.len, F->ca_rsa.key, &out, &len, NULL),
                     VTPMCA_ERR_CRYPTO);
    assert_int_equal(c509_sign_native_from_x509(der.data, der.len, NULL, &out, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    free(der.data);
}

/* ------------------------------------------------------------------------------------ */
/* Tampering */

static void check_tamper(const blob *c, EVP_PKEY *issuer)
{
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_verify(c->data, c->len, issuer, &diag), VTPMCA_OK);
    size_t end = tbs_end(c);
    size_t crypto = 0;
    for (size_t i = 1; i < c->len; i++) {
        uint8_t saved = c->data[i];
        c->data[i] ^= (uint8_t)(1u << (i % 8));
        vtpmca_err err = c509_verify(c->data, c->len, issuer, &diag);
        c->data[i] = saved;
        assert_int_not_equal(err, VTPMCA_OK);
        if (err == VTPMCA_ERR_CRYPTO)
            crypto++;
        /* a changed signature byte is always a signature failure */
        if (i >= end + 3)
            assert_int_equal(err, VTPMCA_ERR_CRYPTO);
    }
    /* most TBS bytes are content: changing them breaks the signature, not the syntax */
    assert_true(crypto > c->len / 2);
}

static void test_tamper(void **state)
{
    blob der = make_ek(&F->ca_p256, F->p384);
    blob t3 = to_c509(&der);
    check_tamper(&t3, F->ca_p256.key);
    native_ek n;
    native_ek_init(&n, &F->ca_rsa, F->rsa2048, &der);
    blob t2 = sign_native(&n.tbs, F->ca_rsa.key);
    check_tamper(&t2, F->ca_rsa.key);
    native_ek_free(&n);
    free(t2.data);
    free(t3.data);
    free(der.data);
}

/* ------------------------------------------------------------------------------------ */
/* Non-strict or unsupported DER */

/* TLV header at der[off]: content offset and length. */
static void tlv_at(const uint8_t *der, size_t len, size_t off, size_t *content, size_t *clen,
                   bool *constructed)
{
    const unsigned char *p = der + off;
    long l = 0;
    int tag, cls;
    int ret = ASN1_get_object(&p, &l, &tag, &cls, (long)(len - off));
    assert_int_equal(ret & 0x80, 0);
    *content = (size_t)(p - der);
    *clen = (size_t)l;
    *constructed = (ret & V_ASN1_CONSTRUCTED) != 0;
}

static void put(blob *out, const uint8_t *p, size_t n)
{
    memcpy(out->data + out->len, p, n);
    out->len += n;
}

/* Replaces der[pos..pos+del) by ins inside the TLV nested `depth` levels down that holds
 * the change (the first one when pos sits between two), re-encoding every enclosing
 * length on the way. */
static void splice_range(const blob *der, size_t start, size_t end, size_t pos, size_t del,
                         const blob *ins, int depth, blob *out)
{
    if (depth == 0) {
        put(out, der->data + start, pos - start);
        put(out, ins->data, ins->len);
        put(out, der->data + pos + del, end - pos - del);
        return;
    }
    bool done = false;
    for (size_t off = start; off < end;) {
        size_t c, clen;
        bool cons;
        tlv_at(der->data, der->len, off, &c, &clen, &cons);
        size_t next = c + clen;
        if (!done && c <= pos && pos + del <= next) {
            blob inner = {malloc(der->len + ins->len + 16), 0};
            splice_range(der, c, next, pos, del, ins, depth - 1, &inner);
            unsigned char *h = out->data + out->len;
            ASN1_put_object(&h, cons ? 1 : 0, (int)inner.len, der->data[off] & 0x1f,
                            der->data[off] & 0xc0);
            out->len = (size_t)(h - out->data);
            put(out, inner.data, inner.len);
            free(inner.data);
            done = true;
        } else {
            put(out, der->data + off, next - off);
        }
        off = next;
    }
    assert_true(done);
}

static blob der_splice(const blob *der, size_t pos, size_t del, const char *ins_hex, int depth)
{
    blob ins = from_hex(ins_hex);
    blob out = {malloc(der->len + ins.len + 16), 0};
    splice_range(der, 0, der->len, pos, del, &ins, depth, &out);
    free(ins.data);
    return out;
}

/* Offset of the n-th TLV inside the TBSCertificate (0 = version); n = count: its end. */
static size_t tbs_field(const blob *der, int n)
{
    size_t c, clen, tbs, tbs_len;
    bool cons;
    tlv_at(der->data, der->len, 0, &c, &clen, &cons);
    tlv_at(der->data, der->len, c, &tbs, &tbs_len, &cons);
    size_t off = tbs;
    for (int i = 0; i < n; i++) {
        tlv_at(der->data, der->len, off, &c, &clen, &cons);
        off = c + clen;
    }
    return off;
}

/* Offset of the last occurrence of hex in b. */
static size_t find_last(const blob *b, const char *hex)
{
    blob needle = from_hex(hex);
    size_t at = SIZE_MAX;
    for (size_t i = 0; i + needle.len <= b->len; i++)
        if (memcmp(b->data + i, needle.data, needle.len) == 0)
            at = i;
    free(needle.data);
    assert_true(at != SIZE_MAX);
    return at;
}

static void expect_refused(const blob *der, vtpmca_err want, const char *why)
{
    uint8_t *out = (uint8_t *)"x";
    size_t len = 3;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = c509_from_x509_der(der->data, der->len, &out, &len, &diag);
    if (err != want)
        print_error("%s: got %s (%s)\n", why, vtpmca_err_name(err), diag.msg);
    assert_int_equal(err, want);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_true(diag.msg[0] != '\0');
}

/* A certificate made by OpenSSL after `tweak` changed it (signed by the P-256 CA). */
static blob make_tweaked(void (*tweak)(X509 *x))
{
    X509_NAME *dn = X509_NAME_new();
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "CN", MBSTRING_UTF8,
                                                (const unsigned char *)"tweaked", -1, -1, 0),
                     1);
    X509 *x = new_cert(&F->ca_p256, dn, F->p256, 99);
    tweak(x);
    sign_cert(x, F->ca_p256.key, F->ca_p256.md);
    blob der = cert_der(x);
    X509_free(x);
    X509_NAME_free(dn);
    return der;
}

static void tweak_v1(X509 *x)
{
    assert_int_equal(X509_set_version(x, X509_VERSION_1), 1);
}

static void tweak_negative_serial(X509 *x)
{
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), -5), 1);
}

static void tweak_generalized_2030(X509 *x)
{
    ASN1_GENERALIZEDTIME *t = ASN1_GENERALIZEDTIME_set(NULL, 1893456000); /* 2030-01-01 */
    assert_int_equal(X509_set1_notAfter(x, t), 1);
    ASN1_GENERALIZEDTIME_free(t);
}

static void tweak_before_1970(X509 *x)
{
    ASN1_TIME *t = ASN1_TIME_new();
    assert_int_equal(ASN1_UTCTIME_set_string(t, "691231235959Z"), 1);
    assert_int_equal(X509_set1_notBefore(x, t), 1);
    ASN1_TIME_free(t);
}

static void tweak_multi_valued_rdn(X509 *x)
{
    X509_NAME *dn = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "OU", MBSTRING_UTF8,
                                                (const unsigned char *)"same RDN", -1, -1, -1),
                     1);
}

static void tweak_bmp_and_teletex(X509 *x)
{
    X509_NAME *dn = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "O", V_ASN1_BMPSTRING,
                                                (const unsigned char *)"\0B\0M\0P", 6, -1, 0),
                     1);
    assert_int_equal(X509_NAME_add_entry_by_txt(dn, "OU", V_ASN1_T61STRING,
                                                (const unsigned char *)"teletex", -1, -1, 0),
                     1);
}

static void tweak_none(X509 *x)
{
}

static void test_non_strict_der(void **state)
{
    blob der = make_iak(&F->ca_p256, F->p256);
    assert_int_equal(der.data[1], 0x82); /* the tests below assume a 4-byte outer header */

    /* lengths: non-minimal, indefinite, trailing data, truncated */
    blob b = {malloc(der.len + 8), 0};
    memcpy(b.data, "\x30\x83\x00", 3);
    memcpy(b.data + 3, der.data + 2, der.len - 2);
    b.len = der.len + 1;
    expect_refused(&b, VTPMCA_ERR_PARSE, "non-minimal length");
    memcpy(b.data, "\x30\x80", 2);
    memcpy(b.data + 2, der.data + 4, der.len - 4);
    memcpy(b.data + der.len - 2, "\x00\x00", 2);
    b.len = der.len;
    expect_refused(&b, VTPMCA_ERR_PARSE, "indefinite length");
    memcpy(b.data, der.data, der.len);
    b.data[der.len] = 0;
    b.len = der.len + 1;
    expect_refused(&b, VTPMCA_ERR_PARSE, "trailing byte");
    b.len = der.len - 1;
    expect_refused(&b, VTPMCA_ERR_PARSE, "truncated");

    /* keyUsage critical flag 0x01 instead of DER TRUE 0xff */
    b.len = der.len;
    b.data[find_last(&der, "0603551d0f0101ff") + 7] = 0x01;
    expect_refused(&b, VTPMCA_ERR_PARSE, "BER TRUE");
    /* the outer signatureAlgorithm differs from the TBS one (SHA-256 -> SHA-384) */
    memcpy(b.data, der.data, der.len);
    size_t outer_alg = find_last(&der, "300a06082a8648ce3d040302");
    b.data[outer_alg + 11] = 0x03;
    expect_refused(&b, VTPMCA_ERR_PARSE, "signature algorithm mismatch");
    /* unused bits in the signature BIT STRING (03 len UNUSED ...) */
    memcpy(b.data, der.data, der.len);
    assert_int_equal(b.data[outer_alg + 12], 0x03);
    b.data[outer_alg + 14] = 0x01;
    expect_refused(&b, VTPMCA_ERR_UNSUPPORTED, "signature unused bits");
    free(b.data);

    /* an explicit critical FALSE (DER omits the default): Certificate > TBS > [3] >
     * Extensions > Extension */
    blob x = der_splice(&der, find_last(&der, "0603551d25") + 5, 0, "010100", 5);
    expect_refused(&x, VTPMCA_ERR_PARSE, "explicit FALSE");
    free(x.data);
    /* a serial with a redundant leading zero: 02 01 4d -> 02 02 00 4d */
    x = der_splice(&der, tbs_field(&der, 1) + 2, 0, "00", 3);
    assert_memory_equal(x.data + tbs_field(&x, 1), "\x02\x02\x00\x4d", 4);
    expect_refused(&x, VTPMCA_ERR_PARSE, "non-minimal INTEGER");
    free(x.data);
    /* issuerUniqueID before the extensions */
    x = der_splice(&der, tbs_field(&der, 7), 0, "810200ff", 2);
    expect_refused(&x, VTPMCA_ERR_UNSUPPORTED, "issuerUniqueID");
    free(x.data);

    /* what OpenSSL can make but C509 cannot carry */
    struct {
        void (*tweak)(X509 *);
        vtpmca_err want;
        const char *why;
    } cases[] = {
        {tweak_v1, VTPMCA_ERR_UNSUPPORTED, "v1"},
        {tweak_negative_serial, VTPMCA_ERR_UNSUPPORTED, "negative serial"},
        {tweak_generalized_2030, VTPMCA_ERR_UNSUPPORTED, "GeneralizedTime before 2050"},
        {tweak_before_1970, VTPMCA_ERR_UNSUPPORTED, "before 1970"},
        {tweak_multi_valued_rdn, VTPMCA_ERR_UNSUPPORTED, "multi-valued RDN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blob t = make_tweaked(cases[i].tweak);
        expect_refused(&t, cases[i].want, cases[i].why);
        free(t.data);
    }
    /* extensions present but empty (RFC 5280: one or more) */
    blob plain = make_tweaked(tweak_none);
    x = der_splice(&plain, tbs_field(&plain, 7), 0, "a3023000", 2);
    expect_refused(&x, VTPMCA_ERR_PARSE, "empty extensions");
    free(x.data);
    free(plain.data);

    /* BMPString and TeletexString have no C509 text form: carried as (~oid, DER value) */
    blob odd = make_tweaked(tweak_bmp_and_teletex);
    blob t = check_round_trip(&F->ca_p256, &odd);
    cbor_item_t *root = load(&t);
    cbor_item_t **subject = cbor_array_handle(cbor_array_handle(root)[6]);
    assert_bytes_hex(subject[2], "55040a");
    assert_bytes_hex(subject[3], "1e060042004d0050");
    assert_bytes_hex(subject[4], "55040b");
    assert_bytes_hex(subject[5], "140774656c65746578");
    cbor_decref(&root);
    free(t.data);
    free(odd.data);
    free(der.data);
}

/* ------------------------------------------------------------------------------------ */
/* Malformed C509 */

static void expect_decode_error(const blob *c, vtpmca_err want, const char *why)
{
    uint8_t *der = (uint8_t *)"x";
    size_t len = 1;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = c509_to_x509_der(c->data, c->len, &der, &len, &diag);
    if (err != want)
        print_error("%s: got %s (%s)\n", why, vtpmca_err_name(err), diag.msg);
    assert_int_equal(err, want);
    assert_null(der);
    assert_int_equal(len, 0);
    assert_true(diag.msg[0] != '\0');
    c509_info info;
    assert_int_equal(c509_decode_info(c->data, c->len, &info, NULL), want);
    c509_info_free(&info);
    assert_int_equal(c509_verify(c->data, c->len, F->ca_p256.key, NULL), want);
}

static blob concat(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, const uint8_t *c,
                   size_t cn)
{
    blob out = {malloc(an + bn + cn + 1), an + bn + cn};
    memcpy(out.data, a, an);
    if (bn > 0)
        memcpy(out.data + an, b, bn);
    if (cn > 0)
        memcpy(out.data + an + bn, c, cn);
    return out;
}

static blob replace_item(const blob *c, size_t index, cbor_item_t *item)
{
    struct cbor_load_result res;
    cbor_item_t *root = cbor_load(c->data, c->len, &res);
    assert_non_null(root);
    assert_true(cbor_array_replace(root, index, cbor_move(item)));
    blob out = {0};
    size_t cap = 0;
    out.len = cbor_serialize_alloc(root, &out.data, &cap);
    assert_true(out.len > 0);
    cbor_decref(&root);
    return out;
}

static cbor_item_t *arr2(cbor_item_t *a, cbor_item_t *b)
{
    cbor_item_t *arr = cbor_new_definite_array(2);
    assert_true(cbor_array_push(arr, cbor_move(a)));
    if (b != NULL)
        assert_true(cbor_array_push(arr, cbor_move(b)));
    return arr;
}

static cbor_item_t *tagged(uint64_t tag, cbor_item_t *inner)
{
    return cbor_build_tag(tag, cbor_move(inner));
}

static void test_malformed_cbor(void **state)
{
    blob der = make_ek(&F->ca_p256, F->p384);
    blob c = to_c509(&der);
    size_t end = tbs_end(&c);

    for (size_t n = 1; n < c.len; n++) {
        blob t = {c.data, n};
        expect_decode_error(&t, VTPMCA_ERR_PARSE, "truncated");
    }
    static const uint8_t zero = 0x00, brk = 0xff;
    const uint8_t head10 = 0x8a, head12 = 0x8c, indefinite = 0x9f;
    blob b = concat(&head10, 1, c.data + 1, end - 1, NULL, 0);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "array of 10");
    free(b.data);
    b = concat(&head12, 1, c.data + 1, c.len - 1, &zero, 1);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "array of 12");
    free(b.data);
    b = concat(c.data, c.len, &zero, 1, NULL, 0);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "trailing byte");
    free(b.data);
    b = concat(&indefinite, 1, c.data + 1, c.len - 1, &brk, 1);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "indefinite array");
    free(b.data);
    /* non-shortest heads: the type 3 as 0x18 0x03, the serial's length as 0x58 0x04 */
    b = concat((const uint8_t *)"\x8b\x18\x03", 3, c.data + 2, c.len - 2, NULL, 0);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "non-canonical int");
    free(b.data);
    assert_int_equal(c.data[2], 0x44);
    b = concat((const uint8_t *)"\x8b\x03\x58\x04", 4, c.data + 3, c.len - 3, NULL, 0);
    expect_decode_error(&b, VTPMCA_ERR_PARSE, "non-canonical length");
    free(b.data);

    static const struct {
        const char *hex;
        vtpmca_err want;
    } raw[] = {
        {"03", VTPMCA_ERR_PARSE},                       /* not an array */
        {"8b0300000000000000000000", VTPMCA_ERR_PARSE}, /* array of 11 ints */
        {"a0", VTPMCA_ERR_PARSE},                       /* map */
        {"f90000", VTPMCA_ERR_PARSE},                   /* half float */
        {"f7", VTPMCA_ERR_PARSE},                       /* undefined */
        {"e0", VTPMCA_ERR_PARSE},                       /* unassigned simple value */
        {"ff", VTPMCA_ERR_PARSE},                       /* break */
        {"1c", VTPMCA_ERR_PARSE},                       /* reserved additional info */
        {"5bffffffffffffffff", VTPMCA_ERR_PARSE},       /* absurd length */
        {"9bffffffffffffffff", VTPMCA_ERR_PARSE},       /* absurd count */
        {"5f41004100ff", VTPMCA_ERR_PARSE},             /* indefinite byte string */
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        blob r = from_hex(raw[i].hex);
        expect_decode_error(&r, raw[i].want, raw[i].hex);
        free(r.data);
    }
    uint8_t deep[201];
    memset(deep, 0x81, 200);
    deep[200] = 0x00;
    blob d = {deep, sizeof(deep)};
    expect_decode_error(&d, VTPMCA_ERR_LIMIT, "deep nesting");

    uint8_t long_serial[70];
    memset(long_serial, 0x11, sizeof(long_serial));
    struct {
        size_t index;
        cbor_item_t *item;
        vtpmca_err want;
        const char *why;
    } cases[] = {
        {0, cbor_build_string("3"), VTPMCA_ERR_PARSE, "type as text"},
        {0, cbor_build_uint8(4), VTPMCA_ERR_UNSUPPORTED, "type 4"},
        {0, cbor_build_uint8(1), VTPMCA_ERR_UNSUPPORTED, "type 1 (old drafts)"},
        {1, cbor_build_string("01"), VTPMCA_ERR_PARSE, "serial as text"},
        {1, cbor_build_bytestring((const uint8_t *)"\x00\x01", 2), VTPMCA_ERR_PARSE,
         "serial with a leading zero"},
        {1, cbor_build_bytestring(long_serial, sizeof(long_serial)), VTPMCA_ERR_LIMIT,
         "serial too long"},
        {2, cbor_build_uint16(9999), VTPMCA_ERR_UNSUPPORTED, "unknown signature algorithm"},
        {2, cbor_build_string("ecdsa"), VTPMCA_ERR_PARSE, "algorithm as text"},
        {2,
         arr2(cbor_build_bytestring((const uint8_t *)"\x80\x01", 2),
              cbor_build_bytestring((const uint8_t *)"\x05\x00", 2)),
         VTPMCA_ERR_PARSE, "invalid OID"},
        {2, arr2(cbor_build_bytestring((const uint8_t *)"\x2a\x03", 2), NULL), VTPMCA_ERR_PARSE,
         "[~oid] without parameters"},
        {3, cbor_build_uint8(5), VTPMCA_ERR_PARSE, "issuer as int"},
        {3, arr2(cbor_build_uint8(1), NULL), VTPMCA_ERR_PARSE, "odd name array"},
        {3, arr2(cbor_build_uint8(99), cbor_build_string("x")), VTPMCA_ERR_PARSE,
         "unknown attribute code"},
        {3, arr2(cbor_build_negint8(0), cbor_build_string("\xc3\xa4")), VTPMCA_ERR_PARSE,
         "printableString with a non-printable character"},
        {3, arr2(cbor_build_negint8(21), cbor_build_string("x")), VTPMCA_ERR_PARSE,
         "negative domainComponent (IA5 only)"},
        {3, cbor_build_stringn("\xc3\x28", 2), VTPMCA_ERR_PARSE, "invalid UTF-8"},
        {3, tagged(49, cbor_build_string("x")), VTPMCA_ERR_PARSE, "unknown tag"},
        {3, tagged(48, cbor_build_bytestring((const uint8_t *)"\x01\x02\x03\x04\x05", 5)),
         VTPMCA_ERR_PARSE, "MAC address of 5 bytes"},
        {3, cbor_build_bytestring(NULL, 0), VTPMCA_ERR_PARSE, "empty hex text"},
        {4, cbor_build_negint8(0), VTPMCA_ERR_PARSE, "negative time"},
        {4, cbor_build_uint64(C509_NO_EXPIRY + 1), VTPMCA_ERR_PARSE, "time after 9999"},
        {4, cbor_new_null(), VTPMCA_ERR_PARSE, "notBefore null"},
        {5, cbor_build_string("x"), VTPMCA_ERR_PARSE, "notAfter as text"},
        {6, cbor_new_null(), VTPMCA_ERR_PARSE, "subject null"},
        {7, cbor_build_uint16(9999), VTPMCA_ERR_UNSUPPORTED, "unknown key algorithm"},
        {8, cbor_build_uint8(5), VTPMCA_ERR_PARSE, "key as int"},
        {8, cbor_build_bytestring((const uint8_t *)"\xfe\x01\x02", 3), VTPMCA_ERR_PARSE,
         "short compressed point"},
        {9, cbor_build_string("x"), VTPMCA_ERR_PARSE, "extensions as text"},
        {9, cbor_build_uint8(0), VTPMCA_ERR_PARSE, "keyUsage without bits"},
        {9, arr2(cbor_build_uint8(99), cbor_build_bytestring(NULL, 0)), VTPMCA_ERR_UNSUPPORTED,
         "unknown extension code"},
        {9, arr2(cbor_build_uint8(3), cbor_build_uint8(5)), VTPMCA_ERR_PARSE, "SAN as int"},
        {9, arr2(cbor_build_uint8(4), cbor_build_negint8(5)), VTPMCA_ERR_PARSE,
         "basicConstraints -6"},
        {9, arr2(cbor_build_uint8(1), NULL), VTPMCA_ERR_PARSE, "odd extension array"},
        {9, arr2(cbor_build_bytestring((const uint8_t *)"\x2a\x03", 2), cbor_build_uint8(5)),
         VTPMCA_ERR_PARSE, "unregistered extension with an int value"},
        {9,
         arr2(cbor_build_bytestring((const uint8_t *)"\x2a\x03", 2),
              arr2(cbor_build_uint8(1), cbor_build_uint8(2))),
         VTPMCA_ERR_PARSE, "unregistered extension with [int, int]"},
        {9, arr2(cbor_build_bytestring((const uint8_t *)"\x80", 1), cbor_build_bytestring(NULL, 0)),
         VTPMCA_ERR_PARSE, "invalid extension OID"},
        {10, cbor_build_string("sig"), VTPMCA_ERR_PARSE, "signature as text"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        blob m = replace_item(&c, cases[i].index, cases[i].item);
        expect_decode_error(&m, cases[i].want, cases[i].why);
        free(m.data);
    }
    /* an ECDSA signature of odd length: decodable for display, but no signature */
    blob odd = replace_item(&c, 10, cbor_build_bytestring(long_serial, 63));
    uint8_t *out;
    size_t len;
    assert_int_equal(c509_to_x509_der(odd.data, odd.len, &out, &len, NULL), VTPMCA_ERR_PARSE);
    assert_int_equal(c509_verify(odd.data, odd.len, F->ca_p256.key, NULL), VTPMCA_ERR_PARSE);
    free(odd.data);

    /* type 2 rules: no negative attribute codes, no 0xfe/0xfd point prefixes */
    blob native = replace_item(&c, 0, cbor_build_uint8(2));
    blob m = replace_item(&native, 6, arr2(cbor_build_negint8(0), cbor_build_string("US")));
    expect_decode_error(&m, VTPMCA_ERR_PARSE, "printableString in a native certificate");
    free(m.data);
    expect_decode_error(&native, VTPMCA_ERR_PARSE, "0xfe/0xfd in a native certificate");
    free(native.data);
    free(c.data);
    free(der.data);
}

/* ------------------------------------------------------------------------------------ */
/* Fuzzing: mutated encodings never crash (run under ASan in CI), never verify by accident,
 * and whatever the encoder accepts it rebuilds byte for byte. */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static blob mutate(const blob *in)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x17, 0x18, 0x1b, 0x40, 0x7f, 0x80,
                                          0x81, 0x82, 0x9f, 0xa0, 0xd8, 0xf6, 0xf7, 0xff};
    blob out = {malloc(in->len + 64), in->len};
    memcpy(out.data, in->data, in->len);
    int ops = 1 + (int)(rng() % 3);
    for (int i = 0; i < ops && out.len > 0; i++) {
        size_t pos = (size_t)(rng() % out.len);
        switch (rng() % 6) {
        case 0:
            out.data[pos] ^= (uint8_t)(1u << (rng() % 8));
            break;
        case 1:
            out.data[pos] = interesting[rng() % sizeof(interesting)];
            break;
        case 2:
            if (out.len < in->len + 60) {
                memmove(out.data + pos + 1, out.data + pos, out.len - pos);
                out.data[pos] = (uint8_t)rng();
                out.len++;
            }
            break;
        case 3:
            memmove(out.data + pos, out.data + pos + 1, out.len - pos - 1);
            out.len--;
            break;
        case 4:
            out.len = pos;
            break;
        default:
            out.data[pos] = (uint8_t)rng();
            break;
        }
    }
    return out;
}

static void test_fuzz(void **state)
{
    const test_ca *ca = &F->ca_p256;
    blob seeds_der[3] = {make_ek(ca, F->rsa2048), make_iak(ca, F->p256),
                         make_many_exts(ca, F->p384)};
    native_ek n;
    native_ek_init(&n, ca, F->p384, &seeds_der[0]);
    blob seeds_c509[4] = {to_c509(&seeds_der[0]), to_c509(&seeds_der[1]), to_c509(&seeds_der[2]),
                          sign_native(&n.tbs, ca->key)};
    for (int round = 0; round < 2500; round++) {
        for (size_t s = 0; s < 4; s++) {
            blob m = mutate(&seeds_c509[s]);
            uint8_t *der = NULL;
            size_t der_len = 0;
            vtpmca_err err = c509_to_x509_der(m.data, m.len, &der, &der_len, NULL);
            assert_true(err != VTPMCA_OK || der != NULL);
            free(der);
            c509_info info;
            c509_decode_info(m.data, m.len, &info, NULL);
            c509_info_free(&info);
            if (c509_verify(m.data, m.len, ca->key, NULL) == VTPMCA_OK && s < 3) {
                /* only an equivalent encoding of the same DER can still verify */
                assert_int_equal(c509_to_x509_der(m.data, m.len, &der, &der_len, NULL), VTPMCA_OK);
                assert_int_equal(der_len, seeds_der[s].len);
                assert_memory_equal(der, seeds_der[s].data, der_len);
                free(der);
            }
            free(m.data);
        }
    }
    for (int round = 0; round < 600; round++) {
        for (size_t s = 0; s < 3; s++) {
            blob m = mutate(&seeds_der[s]);
            uint8_t *cbor = NULL, *der = NULL;
            size_t cbor_len = 0, der_len = 0;
            if (c509_from_x509_der(m.data, m.len, &cbor, &cbor_len, NULL) == VTPMCA_OK) {
                assert_int_equal(c509_to_x509_der(cbor, cbor_len, &der, &der_len, NULL), VTPMCA_OK);
                assert_int_equal(der_len, m.len);
                assert_memory_equal(der, m.data, der_len);
                free(der);
                free(cbor);
            }
            free(m.data);
        }
    }
    native_ek_free(&n);
    for (size_t s = 0; s < 4; s++)
        free(seeds_c509[s].data);
    for (size_t s = 0; s < 3; s++)
        free(seeds_der[s].data);
}

/* ------------------------------------------------------------------------------------ */
/* Arguments */

static void test_arguments(void **state)
{
    blob der = make_iak(&F->ca_p256, F->p256);
    blob c = to_c509(&der);
    uint8_t *out = NULL;
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(c509_from_x509_der(NULL, 5, &out, &len, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_from_x509_der(der.data, der.len, NULL, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_from_x509_der(der.data, der.len, &out, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_from_x509_der(der.data, 0, &out, &len, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(c509_from_x509_der(der.data, C509_MAX_INPUT + 1, &out, &len, &diag),
                     VTPMCA_ERR_LIMIT);
    assert_int_equal(c509_to_x509_der(NULL, 5, &out, &len, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_to_x509_der(c.data, c.len, NULL, &len, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_to_x509_der(c.data, 0, &out, &len, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(c509_to_x509_der(c.data, C509_MAX_INPUT + 1, &out, &len, &diag),
                     VTPMCA_ERR_LIMIT);
    assert_int_equal(c509_verify(NULL, 5, F->ca_p256.key, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_verify(c.data, c.len, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_verify(c.data, 0, F->ca_p256.key, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(c509_verify(c.data, C509_MAX_INPUT + 1, F->ca_p256.key, &diag),
                     VTPMCA_ERR_LIMIT);
    c509_info info;
    assert_int_equal(c509_decode_info(c.data, c.len, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(c509_decode_info(NULL, 3, &info, &diag), VTPMCA_ERR_INVALID_ARG);
    c509_info_free(&info);
    c509_info_free(NULL);
    /* a key of the wrong type for the algorithm is a verification failure */
    assert_int_equal(c509_verify(c.data, c.len, F->ca_rsa.key, &diag), VTPMCA_ERR_CRYPTO);
    /* NULL diag everywhere */
    assert_int_equal(c509_from_x509_der(c.data, c.len, &out, &len, NULL), VTPMCA_ERR_PARSE);
    assert_int_equal(c509_to_x509_der(der.data, der.len, &out, &len, NULL), VTPMCA_ERR_PARSE);
    free(c.data);
    free(der.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ek_round_trip),
        cmocka_unit_test(test_iak_round_trip),
        cmocka_unit_test(test_many_extensions_round_trip),
        cmocka_unit_test(test_other_keys_round_trip),
        cmocka_unit_test(test_native_ek),
        cmocka_unit_test(test_native_iak),
        cmocka_unit_test(test_native_algorithms),
        cmocka_unit_test(test_native_rejects),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_non_strict_der),
        cmocka_unit_test(test_malformed_cbor),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
