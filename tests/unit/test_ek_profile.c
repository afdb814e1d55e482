/* Unit tests for ca/ek_profile.c: EK certificates for RSA-2048, P-256 and P-384 keys (also
 * real libtpms EKs) and IAK certificates. Every extension is parsed back with OpenSSL and its
 * value compared with an encoding made independently by OpenSSL's ASN1_generate_nconf from a
 * textual description; strict DER is checked with the TLV walker of tests/support; the chain
 * is checked with the openssl CLI and with a Keylime-like one-level check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/conf.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../support/ca_fixture.h"
#include "vtpmca/c509.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/encoding.h"
#include "vtpmca/tpm2_marshal.h"
#include "vtpmca/vtpm.h"

static struct {
    char tmp[64];
    char ca_dir[128];
    char keylime_dir[128];
    ca_ctx *ca;     /* P-384 root and issuing CA */
    ca_ctx *rsa_ca; /* P-256 root, RSA-2048 issuing CA */
    EVP_PKEY *rsa2048, *p256, *p384;
} g;

/* ---- helpers ---- */

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "ek-profile") != 0)
        return -1;
    snprintf(g.ca_dir, sizeof(g.ca_dir), "%s/ca", g.tmp);
    snprintf(g.keylime_dir, sizeof(g.keylime_dir), "%s/keylime", g.tmp);
    char rsa_dir[128];
    snprintf(rsa_dir, sizeof(rsa_dir), "%s/rsa-ca", g.tmp);
    g.ca = ca_fixture_make_ca(g.ca_dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P384);
    g.rsa_ca = ca_fixture_make_ca(rsa_dir, CA_KEY_ECDSA_P256, CA_KEY_RSA_2048);
    g.rsa2048 = EVP_RSA_gen(2048);
    g.p256 = EVP_EC_gen("P-256");
    g.p384 = EVP_EC_gen("P-384");
    if (g.ca == NULL || g.rsa_ca == NULL || g.rsa2048 == NULL || g.p256 == NULL || g.p384 == NULL)
        return -1;
    return ca_export_keylime(g.ca, g.keylime_dir, NULL) == VTPMCA_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    ca_free(g.ca);
    ca_free(g.rsa_ca);
    EVP_PKEY_free(g.rsa2048);
    EVP_PKEY_free(g.p256);
    EVP_PKEY_free(g.p384);
    return ca_fixture_rmtree(g.tmp);
}

static X509 *parse_cert(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    assert_non_null(cert);
    assert_ptr_equal(p, der + len);
    return cert;
}

static ek_cert_result issue_ok(const ca_ctx *ca, const ek_profile_config *cfg,
                               const ek_cert_request *req)
{
    ek_cert_result res;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ek_cert_issue(ca, cfg, req, &res, &diag);
    if (err != VTPMCA_OK)
        fail_msg("ek_cert_issue: %s", diag.msg);
    return res;
}

/* DER of a value described in OpenSSL's ASN1_generate_nconf syntax: `top` is the outer
 * value, `sections` the config text holding the sections it references. */
static void generate_der(const char *top, const char *sections, uint8_t **der, size_t *len)
{
    CONF *conf = NCONF_new(NULL);
    BIO *bio = BIO_new_mem_buf(sections, -1);
    long errline = -1;
    if (NCONF_load_bio(conf, bio, &errline) <= 0)
        fail_msg("bad test config at line %ld", errline);
    ASN1_TYPE *value = ASN1_generate_nconf(top, conf);
    assert_non_null(value);
    unsigned char *buf = NULL;
    int n = i2d_ASN1_TYPE(value, &buf);
    assert_true(n > 0);
    *der = malloc((size_t)n);
    memcpy(*der, buf, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(buf);
    ASN1_TYPE_free(value);
    BIO_free(bio);
    NCONF_free(conf);
}

/* The extension with this OID: its value must equal the generated encoding. */
static const X509_EXTENSION *ext_by_oid(const X509 *cert, const char *oid_text)
{
    ASN1_OBJECT *oid = OBJ_txt2obj(oid_text, 1);
    int pos = X509_get_ext_by_OBJ(cert, oid, -1);
    assert_true(pos >= 0);
    assert_int_equal(X509_get_ext_by_OBJ(cert, oid, pos), -1); /* exactly once */
    ASN1_OBJECT_free(oid);
    return X509_get_ext(cert, pos);
}

static void assert_ext_value(const X509 *cert, const char *oid_text, int critical, const char *top,
                             const char *sections)
{
    const X509_EXTENSION *ext = ext_by_oid(cert, oid_text);
    assert_int_equal(X509_EXTENSION_get_critical(ext), critical);
    const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data((X509_EXTENSION *)ext);
    uint8_t *expect = NULL;
    size_t expect_len = 0;
    generate_der(top, sections, &expect, &expect_len);
    if ((size_t)ASN1_STRING_length(value) != expect_len ||
        memcmp(ASN1_STRING_get0_data(value), expect, expect_len) != 0) {
        char got_hex[2048], want_hex[2048];
        size_t got_len = (size_t)ASN1_STRING_length(value);
        vt_hex_encode(ASN1_STRING_get0_data(value), got_len < 1000 ? got_len : 1000, got_hex,
                      sizeof(got_hex));
        vt_hex_encode(expect, expect_len < 1000 ? expect_len : 1000, want_hex, sizeof(want_hex));
        fail_msg("extension %s:\n got  %s\n want %s", oid_text, got_hex, want_hex);
    }
    free(expect);
}

static void hex_of(uint8_t byte, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02X", byte);
}

static void assert_strict(const uint8_t *der, size_t len, size_t empty_sequences, size_t extensions)
{
    der_walk_stats stats;
    char why[256];
    if (!der_is_strict(der, len, &stats, why, sizeof(why)))
        fail_msg("not strict DER: %s", why);
    assert_int_equal(stats.empty_sequences, empty_sequences);
    assert_int_equal(stats.extension_values, extensions);
    assert_true(stats.sets >= 2); /* the issuer's RDNs at least */

    /* Re-encoding from the parsed fields (not OpenSSL's cached bytes) gives the same bytes,
     * which is what Keylime does before checking the signature. */
    X509 *cert = parse_cert(der, len);
    assert_true(i2d_re_X509_tbs(cert, NULL) > 0);
    unsigned char *again = NULL;
    int again_len = i2d_X509(cert, &again);
    assert_int_equal((size_t)again_len, len);
    assert_memory_equal(again, der, len);
    OPENSSL_free(again);
    X509_free(cert);
}

/* The subject key in the certificate is the input key's SubjectPublicKeyInfo, byte for byte. */
static void assert_same_spki(const X509 *cert, const EVP_PKEY *key)
{
    unsigned char *want = NULL, *got = NULL;
    int want_len = i2d_PUBKEY(key, &want);
    int got_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &got);
    assert_true(want_len > 0);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, (size_t)want_len);
    OPENSSL_free(want);
    OPENSSL_free(got);
}

static void write_file(const char *name, const uint8_t *der, size_t len, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", g.tmp, name);
    assert_int_equal(ca_fixture_write(path, der, len), 0);
}

/* `openssl verify` against our chain; `extra` adds options. */
static void openssl_verify(const uint8_t *der, size_t len, const char *ca_dir, const char *extra)
{
    char ek_path[256], pem_path[256], cmd[1024];
    write_file("verify.der", der, len, ek_path, sizeof(ek_path));
    snprintf(pem_path, sizeof(pem_path), "%s/verify.pem", g.tmp);
    snprintf(cmd, sizeof(cmd), "openssl x509 -inform DER -in '%s' -out '%s'", ek_path, pem_path);
    assert_int_equal(ca_fixture_run(cmd, NULL), 0);
    snprintf(cmd, sizeof(cmd), "openssl verify %s -CAfile '%s/%s' -untrusted '%s/%s' '%s'", extra,
             ca_dir, CA_ROOT_CERT_FILE, ca_dir, CA_ISSUING_CERT_FILE, pem_path);
    char *out = NULL;
    int rc = ca_fixture_run(cmd, &out);
    if (rc != 0 || strstr(out, ": OK") == NULL)
        fail_msg("%s\n%s", cmd, out);
    free(out);
}

/* What Keylime's tenant does with tpm_cert_store: the certificate's issuer must be the
 * subject of the first certificate of one *.pem file, and that certificate's key must verify
 * the signature. */
static void keylime_check(const uint8_t *der, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g.keylime_dir, CA_KEYLIME_ISSUING_FILE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *issuer = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(issuer);
    X509 *cert = parse_cert(der, len);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(issuer)), 0);
    assert_int_equal(X509_verify(cert, X509_get0_pubkey(issuer)), 1);
    /* The root file alone is not enough for a one-level check: its subject differs. */
    snprintf(path, sizeof(path), "%s/%s", g.keylime_dir, CA_KEYLIME_ROOT_FILE);
    f = fopen(path, "r");
    X509 *root = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_int_not_equal(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(root)), 0);
    X509_free(root);
    X509_free(issuer);
    X509_free(cert);
}

/* ---- common extension checks ---- */

static void check_common(const X509 *cert, const ca_ctx *ca, const ek_cert_result *res)
{
    assert_int_equal(X509_get_version(cert), X509_VERSION_3);
    /* Serial: 16 content bytes, positive, as reported. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
    assert_int_equal(ASN1_STRING_length(serial), CA_SERIAL_LEN);
    assert_memory_equal(ASN1_STRING_get0_data(serial), res->serial, CA_SERIAL_LEN);
    char hex[2 * CA_SERIAL_LEN + 1];
    vt_hex_encode(res->serial, CA_SERIAL_LEN, hex, sizeof(hex));
    assert_string_equal(hex, res->serial_hex);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert),
                                   X509_get_subject_name(ca_cert(ca, CA_CERT_ISSUING))),
                     0);
    assert_int_equal(X509_verify((X509 *)cert, X509_get0_pubkey(ca_cert(ca, CA_CERT_ISSUING))), 1);

    /* basicConstraints: critical, CA:FALSE, i.e. the DER value is an empty SEQUENCE. */
    assert_ext_value(cert, "2.5.29.19", 1, "SEQUENCE:empty", "[empty]\n");
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);

    /* AKI: the issuing CA's key identifier only. */
    AUTHORITY_KEYID *akid = X509_get_ext_d2i(cert, NID_authority_key_identifier, &crit, NULL);
    assert_non_null(akid);
    assert_int_equal(crit, 0);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id((X509 *)ca_cert(ca, CA_CERT_ISSUING));
    assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, ski), 0);
    assert_null(akid->issuer);
    assert_null(akid->serial);
    AUTHORITY_KEYID_free(akid);

    /* CRL distribution point: one full-name URI. */
    CRL_DIST_POINTS *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, &crit, NULL);
    assert_non_null(dps);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_DIST_POINT_num(dps), 1);
    DIST_POINT *dp = sk_DIST_POINT_value(dps, 0);
    assert_int_equal(dp->distpoint->type, 0);
    assert_int_equal(sk_GENERAL_NAME_num(dp->distpoint->name.fullname), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
    assert_int_equal(gn->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                        CA_FIXTURE_BASE_URL "/v1/ca/crl");
    assert_null(dp->reasons);
    assert_null(dp->CRLissuer);
    CRL_DIST_POINTS_free(dps);

    /* AIA: caIssuers only. */
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(cert, NID_info_access, &crit, NULL);
    assert_non_null(aia);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_ACCESS_DESCRIPTION_num(aia), 1);
    ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
    assert_int_equal(OBJ_obj2nid(ad->method), NID_ad_ca_issuers);
    assert_int_equal(ad->location->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(ad->location->d.ia5),
                        CA_FIXTURE_BASE_URL "/v1/ca/chain?format=der");
    AUTHORITY_INFO_ACCESS_free(aia);

    /* No SKI: the TCG profiles do not ask for one. */
    assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_key_identifier, -1), -1);
}

static const char IDENTITY_SECTIONS_FMT[] = "[id]\n"
                                            "fleet=UTF8:" CA_FIXTURE_FLEET "\n"
                                            "instance=UTF8:" CA_FIXTURE_INSTANCE "\n"
                                            "measurement=FORMAT:HEX,OCTETSTRING:%s\n"
                                            "chip=FORMAT:HEX,OCTETSTRING:%s\n"
                                            "policy=INT:%d\n"
                                            "kbs=FORMAT:HEX,OCTETSTRING:%s\n";

static void check_identity(const X509 *cert, const uint8_t *der, size_t len)
{
    char measurement[2 * EK_MEASUREMENT_LEN + 1], chip[2 * EK_CHIP_ID_LEN + 1],
        kbs[2 * EK_KBS_KEY_HASH_LEN + 1], sections[1024];
    hex_of(CA_FIXTURE_MEASUREMENT, EK_MEASUREMENT_LEN, measurement);
    hex_of(CA_FIXTURE_CHIP_ID, EK_CHIP_ID_LEN, chip);
    hex_of(CA_FIXTURE_KBS_HASH, EK_KBS_KEY_HASH_LEN, kbs);
    snprintf(sections, sizeof(sections), IDENTITY_SECTIONS_FMT, measurement, chip,
             CA_FIXTURE_POLICY_VERSION, kbs);
    assert_ext_value(cert, EK_OID_INSTANCE_IDENTITY, 0, "SEQUENCE:id", sections);

    ek_identity_info info;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_cert_read_identity(der, len, &info, &diag), VTPMCA_OK);
    assert_string_equal(info.fleet, CA_FIXTURE_FLEET);
    assert_string_equal(info.instance_id, CA_FIXTURE_INSTANCE);
    assert_int_equal(info.policy_version, CA_FIXTURE_POLICY_VERSION);
    ek_instance_identity expect;
    ca_fixture_identity(&expect);
    assert_memory_equal(info.measurement, expect.measurement, EK_MEASUREMENT_LEN);
    assert_memory_equal(info.chip_id, expect.chip_id, EK_CHIP_ID_LEN);
    assert_memory_equal(info.kbs_key_hash, expect.kbs_key_hash, EK_KBS_KEY_HASH_LEN);
}

static const char EK_SAN_SECTIONS[] = "[names]\n"
                                      "dir=EXPLICIT:4,SEQUENCE:rdns\n"
                                      "[rdns]\n"
                                      "r1=SET:rdn1\n"
                                      "r2=SET:rdn2\n"
                                      "r3=SET:rdn3\n"
                                      "[rdn1]\n"
                                      "a=SEQUENCE:manufacturer\n"
                                      "[rdn2]\n"
                                      "a=SEQUENCE:model\n"
                                      "[rdn3]\n"
                                      "a=SEQUENCE:version\n"
                                      "[manufacturer]\n"
                                      "type=OID:2.23.133.2.1\n"
                                      "value=UTF8:" EK_DEFAULT_TPM_MANUFACTURER "\n"
                                      "[model]\n"
                                      "type=OID:2.23.133.2.2\n"
                                      "value=UTF8:" EK_DEFAULT_TPM_MODEL "\n"
                                      "[version]\n"
                                      "type=OID:2.23.133.2.3\n"
                                      "value=UTF8:" EK_DEFAULT_TPM_VERSION "\n";

static const char EK_SDA_SECTIONS[] = "[sda]\n"
                                      "attr=SEQUENCE:attr\n"
                                      "[attr]\n"
                                      "type=OID:2.23.133.2.16\n"
                                      "values=SET:values\n"
                                      "[values]\n"
                                      "spec=SEQUENCE:spec\n"
                                      "[spec]\n"
                                      "family=UTF8:2.0\n"
                                      "level=INT:0\n"
                                      "revision=INT:164\n";

/* Everything an EK certificate must hold. */
static void check_ek(const ek_cert_result *res, const EVP_PKEY *key, bool rsa, bool with_cn)
{
    X509 *cert = parse_cert(res->der, res->der_len);
    check_common(cert, g.ca, res);
    assert_same_spki(cert, key);
    assert_int_equal(X509_get_ext_count(cert), 9);

    const X509_NAME *subject = X509_get_subject_name(cert);
    if (with_cn) {
        assert_int_equal(X509_NAME_entry_count(subject), 1);
        char cn[64];
        assert_true(
            X509_NAME_get_text_by_NID((X509_NAME *)subject, NID_commonName, cn, sizeof(cn)) > 0);
        assert_string_equal(cn, CA_FIXTURE_INSTANCE);
    } else {
        assert_int_equal(X509_NAME_entry_count(subject), 0);
    }

    /* keyUsage: critical, exactly keyEncipherment (RSA) or keyAgreement (ECC). */
    uint32_t ku = X509_get_key_usage(cert);
    assert_int_equal(ku, rsa ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT);
    assert_ext_value(cert, "2.5.29.15", 1,
                     rsa ? "FORMAT:BITLIST,BITSTRING:2" : "FORMAT:BITLIST,BITSTRING:4", "");
    /* EKU tcg-kp-EKCertificate, not critical. */
    assert_ext_value(cert, "2.5.29.37", 0, "SEQUENCE:eku", "[eku]\nek=OID:2.23.133.8.1\n");
    /* SAN: critical directoryName with the three TPM attributes in their own RDNs. */
    assert_ext_value(cert, "2.5.29.17", 1, "SEQUENCE:names", EK_SAN_SECTIONS);
    int crit = -1;
    GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    assert_non_null(san);
    assert_int_equal(sk_GENERAL_NAME_num(san), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, 0);
    assert_int_equal(gn->type, GEN_DIRNAME);
    assert_int_equal(X509_NAME_entry_count(gn->d.directoryName), 3);
    GENERAL_NAMES_free(san);
    /* subjectDirectoryAttributes: tpmSpecification {"2.0", 0, 164}, not critical. */
    assert_ext_value(cert, "2.5.29.9", 0, "SEQUENCE:sda", EK_SDA_SECTIONS);
    check_identity(cert, res->der, res->der_len);
    X509_free(cert);

    /* basicConstraints' value is the one empty SEQUENCE; an empty subject adds another. */
    assert_strict(res->der, res->der_len, with_cn ? 1 : 2, 9);
    openssl_verify(res->der, res->der_len, g.ca_dir, "");
    openssl_verify(res->der, res->der_len, g.ca_dir, "-x509_strict");
    keylime_check(res->der, res->der_len);
}

static ek_cert_request ek_request(const EVP_PKEY *key, const ek_instance_identity *id)
{
    ek_cert_request req;
    memset(&req, 0, sizeof(req));
    req.kind = EK_CERT_EK;
    req.subject_key = key;
    req.identity = id;
    return req;
}

/* ---- EK tests ---- */

static void test_ek_each_key_type(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    const struct {
        EVP_PKEY *key;
        bool rsa;
    } cases[] = {{g.rsa2048, true}, {g.p256, false}, {g.p384, false}};
    for (size_t i = 0; i < 3; i++) {
        ek_cert_request req = ek_request(cases[i].key, &id);
        time_t before = time(NULL);
        ek_cert_result res = issue_ok(g.ca, &cfg, &req);
        /* Default validity: backdated 5 minutes, no well-defined expiry. */
        assert_true(res.not_before >= before - 300 && res.not_before <= time(NULL) - 300);
        assert_int_equal(res.not_after, EK_NOT_AFTER_NONE);
        X509 *cert = parse_cert(res.der, res.der_len);
        const ASN1_TIME *na = X509_get0_notAfter(cert);
        assert_int_equal(ASN1_STRING_type(na), V_ASN1_GENERALIZEDTIME);
        assert_string_equal((const char *)ASN1_STRING_get0_data(na), "99991231235959Z");
        X509_free(cert);
        check_ek(&res, cases[i].key, cases[i].rsa, true);
        ek_cert_result_free(&res);
        assert_null(res.der);
    }
}

static void test_ek_empty_subject(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    cfg.subject_cn = false;
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    check_ek(&res, g.p256, false, false);
    ek_cert_result_free(&res);
}

static void test_ek_signed_by_rsa_ca(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p384, &id);
    ek_cert_result res = issue_ok(g.rsa_ca, &cfg, &req);
    X509 *cert = parse_cert(res.der, res.der_len);
    /* PKCS#1 v1.5 with SHA-256, never PSS. */
    assert_int_equal(X509_get_signature_nid(cert), NID_sha256WithRSAEncryption);
    check_common(cert, g.rsa_ca, &res);
    X509_free(cert);
    assert_strict(res.der, res.der_len, 1, 9);
    ek_cert_result_free(&res);
}

static void test_ek_validity(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    cfg.validity_days = 365;
    cfg.backdate_seconds = 60;
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    req.issued_at = 1767225600; /* 2026-01-01T00:00:00Z */
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    assert_int_equal(res.not_before, 1767225600 - 60);
    assert_int_equal(res.not_after, 1767225600 + 365 * 86400);
    X509 *cert = parse_cert(res.der, res.der_len);
    const ASN1_TIME *nb = X509_get0_notBefore(cert), *na = X509_get0_notAfter(cert);
    assert_int_equal(ASN1_STRING_type(nb), V_ASN1_UTCTIME);
    assert_string_equal((const char *)ASN1_STRING_get0_data(nb), "251231235900Z");
    assert_string_equal((const char *)ASN1_STRING_get0_data(na), "270101000000Z");
    X509_free(cert);
    ek_cert_result_free(&res);

    /* After 2049 RFC 5280 wants GeneralizedTime. */
    req.issued_at = 2524608000; /* 2050-01-01T00:00:00Z */
    cfg.backdate_seconds = 0;
    res = issue_ok(g.ca, &cfg, &req);
    cert = parse_cert(res.der, res.der_len);
    assert_int_equal(ASN1_STRING_type(X509_get0_notBefore(cert)), V_ASN1_GENERALIZEDTIME);
    assert_string_equal((const char *)ASN1_STRING_get0_data(X509_get0_notBefore(cert)),
                        "20500101000000Z");
    X509_free(cert);
    assert_strict(res.der, res.der_len, 1, 9);
    ek_cert_result_free(&res);
}

static void test_ek_tpm_attributes_configurable(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    cfg.tpm.manufacturer = "id:49424D00";
    cfg.tpm.model = "swtpm";
    cfg.tpm.version = "id:20191023";
    cfg.tpm.spec_revision = 159;
    cfg.tpm.spec_level = 2;
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.rsa2048, &id);
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    X509 *cert = parse_cert(res.der, res.der_len);
    GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    X509_NAME *dn = sk_GENERAL_NAME_value(san, 0)->d.directoryName;
    const char *want[] = {"id:49424D00", "swtpm", "id:20191023"};
    for (int i = 0; i < 3; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(dn, i);
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
        assert_int_equal(ASN1_STRING_type(v), V_ASN1_UTF8STRING);
        assert_int_equal(ASN1_STRING_length(v), (int)strlen(want[i]));
        assert_memory_equal(ASN1_STRING_get0_data(v), want[i], strlen(want[i]));
        assert_int_equal(X509_NAME_ENTRY_set(e), i); /* one RDN each */
    }
    GENERAL_NAMES_free(san);
    assert_ext_value(cert, "2.5.29.9", 0, "SEQUENCE:sda",
                     "[sda]\nattr=SEQUENCE:attr\n[attr]\ntype=OID:2.23.133.2.16\n"
                     "values=SET:values\n[values]\nspec=SEQUENCE:spec\n[spec]\n"
                     "family=UTF8:2.0\nlevel=INT:2\nrevision=INT:159\n");
    X509_free(cert);
    ek_cert_result_free(&res);
}

static void test_ek_key_normalised(void **state)
{
    (void)state;
    /* A key object that prefers compressed points still yields the uncompressed point. */
    EVP_PKEY *key = EVP_PKEY_dup(g.p256);
    assert_int_equal(EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                    "compressed"),
                     1);
    unsigned char *compressed = NULL;
    assert_int_equal(i2d_PUBKEY(key, &compressed), 26 + 33);
    OPENSSL_free(compressed);
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(key, &id);
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    X509 *cert = parse_cert(res.der, res.der_len);
    assert_same_spki(cert, g.p256); /* the original, uncompressed encoding */
    const unsigned char *point = NULL;
    int point_len = 0;
    assert_int_equal(
        X509_PUBKEY_get0_param(NULL, &point, &point_len, NULL, X509_get_X509_PUBKEY(cert)), 1);
    assert_int_equal(point_len, 65);
    assert_int_equal(point[0], 0x04);
    X509_free(cert);
    ek_cert_result_free(&res);
    EVP_PKEY_free(key);
}

static void test_serials_unique(void **state)
{
    (void)state;
    enum { N = 1000 };
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    char(*serials)[2 * CA_SERIAL_LEN + 1] = calloc(N, sizeof(*serials));
    assert_non_null(serials);
    for (int i = 0; i < N; i++) {
        ek_cert_result res = issue_ok(g.ca, &cfg, &req);
        assert_int_equal(res.serial[0] & 0xc0, 0x40);
        memcpy(serials[i], res.serial_hex, sizeof(serials[i]));
        ek_cert_result_free(&res);
    }
    qsort(serials, N, sizeof(*serials), (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(serials[i - 1], serials[i]);
    free(serials);
}

/* ---- real TPM keys ---- */

/* EKs from a libtpms TPM: the certificate's key must be the TPM's unique bytes. */
static void test_ek_from_vtpm(void **state)
{
    (void)state;
    vtpm *tpm = NULL;
    vtpmca_diag diag = {{0}};
    if (vtpm_open(NULL, 0, &tpm, &diag) != VTPMCA_OK)
        fail_msg("vtpm_open: %s", diag.msg);
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    const vtpm_ek_kind kinds[] = {VTPM_EK_RSA2048, VTPM_EK_ECC_P256, VTPM_EK_ECC_P384};
    for (size_t i = 0; i < 3; i++) {
        uint32_t handle = 0;
        uint8_t *pub_area = NULL;
        size_t pub_len = 0;
        if (vtpm_create_ek(tpm, kinds[i], &handle, &pub_area, &pub_len, NULL, &diag) != VTPMCA_OK)
            fail_msg("vtpm_create_ek: %s", diag.msg);
        EVP_PKEY *key = NULL;
        assert_int_equal(vtpm_tpmt_public_to_evp(pub_area, pub_len, &key, &diag), VTPMCA_OK);
        tpm2_public parsed;
        assert_int_equal(tpm2_public_parse(pub_area, pub_len, &parsed, &diag), VTPMCA_OK);

        ek_cert_request req = ek_request(key, &id);
        ek_cert_result res = issue_ok(g.ca, &cfg, &req);
        X509 *cert = parse_cert(res.der, res.der_len);
        const unsigned char *bits = NULL;
        int bits_len = 0;
        assert_int_equal(
            X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, X509_get_X509_PUBKEY(cert)), 1);
        if (kinds[i] == VTPM_EK_RSA2048) {
            /* RSAPublicKey { modulus = the TPM's 256 bytes, publicExponent 65537 }. */
            static const uint8_t head[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00};
            static const uint8_t tail[] = {0x02, 0x03, 0x01, 0x00, 0x01};
            assert_int_equal(parsed.rsa_exponent, 0);
            assert_int_equal(parsed.unique_a_len, 256);
            assert_int_equal(bits_len, (int)(sizeof(head) + 256 + sizeof(tail)));
            assert_memory_equal(bits, head, sizeof(head));
            assert_memory_equal(bits + sizeof(head), parsed.unique_a, 256);
            assert_memory_equal(bits + sizeof(head) + 256, tail, sizeof(tail));
            assert_int_equal(X509_get_key_usage(cert), KU_KEY_ENCIPHERMENT);
        } else {
            /* 04 || x || y, each exactly the TPM's coordinate bytes. */
            size_t field = parsed.unique_a_len;
            assert_int_equal(field, kinds[i] == VTPM_EK_ECC_P256 ? 32 : 48);
            assert_int_equal(bits_len, (int)(1 + 2 * field));
            assert_int_equal(bits[0], 0x04);
            assert_memory_equal(bits + 1, parsed.unique_a, field);
            assert_memory_equal(bits + 1 + field, parsed.unique_b, field);
            assert_int_equal(X509_get_key_usage(cert), KU_KEY_AGREEMENT);
        }
        /* The TPMT_PUBLIC itself as the subject gives the same key and extensions. */
        ek_cert_request from_area = req;
        from_area.subject_key = NULL;
        from_area.subject_public = pub_area;
        from_area.subject_public_len = pub_len;
        ek_cert_result res2 = issue_ok(g.ca, &cfg, &from_area);
        X509 *cert2 = parse_cert(res2.der, res2.der_len);
        assert_same_spki(cert2, key);
        assert_int_equal(X509_get_ext_count(cert2), X509_get_ext_count(cert));
        for (int e = 0; e < X509_get_ext_count(cert); e++) {
            unsigned char *a = NULL, *b = NULL;
            int a_len = i2d_X509_EXTENSION(X509_get_ext(cert, e), &a);
            int b_len = i2d_X509_EXTENSION(X509_get_ext(cert2, e), &b);
            assert_int_equal(a_len, b_len);
            assert_memory_equal(a, b, (size_t)a_len);
            OPENSSL_free(a);
            OPENSSL_free(b);
        }
        X509_free(cert2);
        assert_strict(res2.der, res2.der_len, 1, 9);
        ek_cert_result_free(&res2);
        X509_free(cert);
        assert_strict(res.der, res.der_len, 1, 9);
        openssl_verify(res.der, res.der_len, g.ca_dir, "");
        ek_cert_result_free(&res);
        EVP_PKEY_free(key);
        free(pub_area);
        vtpm_flush(tpm, handle, NULL);
    }
    vtpm_close(tpm);
}

/* ---- the subject as a TPMT_PUBLIC ---- */

static void expect_refused(const ca_ctx *ca, const ek_profile_config *cfg,
                           const ek_cert_request *req, vtpmca_err expected, const char *part);

/* The TPMT_PUBLIC of template kind holding key's public numbers (a TPM's EK area). */
static size_t area_of(vtpm_ek_kind kind, const EVP_PKEY *key, uint8_t *area, size_t size)
{
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(kind, &t), VTPMCA_OK);
    uint8_t a[256], b[66];
    BIGNUM *x = NULL, *y = NULL;
    if (kind == VTPM_EK_RSA2048) {
        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &x), 1);
        assert_int_equal(BN_bn2binpad(x, a, 256), 256);
        t.unique_a = a;
        t.unique_a_len = 256;
    } else {
        size_t field = kind == VTPM_EK_ECC_P256 ? 32 : 48;
        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
        assert_int_equal(BN_bn2binpad(x, a, (int)field), (int)field);
        assert_int_equal(BN_bn2binpad(y, b, (int)field), (int)field);
        t.unique_a = a;
        t.unique_b = b;
        t.unique_a_len = t.unique_b_len = field;
    }
    BN_free(x);
    BN_free(y);
    tpm2_writer w;
    tpm2_writer_init(&w, area, size);
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    return w.len;
}

/* Re-encodes an area after changing its parsed form. */
static size_t area_changed(const uint8_t *area, size_t len, void (*change)(tpm2_public *),
                           uint8_t *out, size_t size)
{
    tpm2_public t;
    assert_int_equal(tpm2_public_parse(area, len, &t, NULL), VTPMCA_OK);
    change(&t);
    tpm2_writer w;
    tpm2_writer_init(&w, out, size);
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    return w.len;
}

static uint8_t changed_unique[512];

static void point_off_curve(tpm2_public *t)
{
    memcpy(changed_unique, t->unique_b, t->unique_b_len);
    changed_unique[t->unique_b_len - 1] ^= 0x01;
    t->unique_b = changed_unique;
}

static void exponent_3(tpm2_public *t)
{
    t->rsa_exponent = 3;
}

static void rsa_3072(tpm2_public *t)
{
    memset(changed_unique, 0xc5, 384);
    t->rsa_key_bits = 3072;
    t->unique_a = changed_unique;
    t->unique_a_len = 384;
}

static void p521_point(tpm2_public *t)
{
    EVP_PKEY *k = EVP_EC_gen("P-521");
    BIGNUM *x = NULL, *y = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    BN_bn2binpad(x, changed_unique, 66);
    BN_bn2binpad(y, changed_unique + 66, 66);
    BN_free(x);
    BN_free(y);
    EVP_PKEY_free(k);
    t->curve = TPM2_ECC_NIST_P521;
    t->unique_a = changed_unique;
    t->unique_b = changed_unique + 66;
    t->unique_a_len = t->unique_b_len = 66;
}

static void test_subject_public(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    const struct {
        vtpm_ek_kind kind;
        EVP_PKEY *key;
    } cases[] = {
        {VTPM_EK_RSA2048, g.rsa2048}, {VTPM_EK_ECC_P256, g.p256}, {VTPM_EK_ECC_P384, g.p384}};
    uint8_t area[1024], bad[1024];
    for (size_t i = 0; i < 3; i++) {
        size_t len = area_of(cases[i].kind, cases[i].key, area, sizeof(area));
        for (ek_cert_kind kind = EK_CERT_EK; kind <= EK_CERT_IAK; kind++) {
            ek_cert_request req = {
                .kind = kind, .subject_public = area, .subject_public_len = len, .identity = &id};
            ek_cert_result res = issue_ok(g.ca, &cfg, &req);
            X509 *cert = parse_cert(res.der, res.der_len);
            assert_same_spki(cert, cases[i].key);
            X509_free(cert);
            assert_strict(res.der, res.der_len, 1, kind == EK_CERT_EK ? 9 : 8);
            ek_cert_result_free(&res);
        }
    }

    size_t len = area_of(VTPM_EK_ECC_P256, g.p256, area, sizeof(area));
    ek_cert_request req = {.kind = EK_CERT_EK, .identity = &id};
    req.subject_public = bad;
    req.subject_public_len = area_changed(area, len, point_off_curve, bad, sizeof(bad));
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "no valid key");
    req.subject_public_len = area_changed(area, len, p521_point, bad, sizeof(bad));
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_UNSUPPORTED, "P-256 or P-384");
    req.subject_public = area;
    req.subject_public_len = len - 1; /* cut short */
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "TPMT_PUBLIC");
    req.subject_public_len = len;
    req.subject_key = g.p256; /* both */
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "either");
    req.subject_key = NULL;

    len = area_of(VTPM_EK_RSA2048, g.rsa2048, area, sizeof(area));
    req.subject_public = bad;
    req.subject_public_len = area_changed(area, len, exponent_3, bad, sizeof(bad));
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_UNSUPPORTED, "65537");
    req.subject_public_len = area_changed(area, len, rsa_3072, bad, sizeof(bad));
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_UNSUPPORTED, "2048 bits");
}

/* ---- prepared profiles ---- */

static void test_profile_api(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    /* The profile keeps copies: the configuration's strings may go away. */
    char url[64], model[16];
    snprintf(url, sizeof(url), "%s", CA_FIXTURE_BASE_URL);
    snprintf(model, sizeof(model), "model-one");
    cfg.base_url = url;
    cfg.tpm.model = model;
    ek_profile *profile = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_profile_new(g.ca, &cfg, &profile, &diag), VTPMCA_OK);
    snprintf(url, sizeof(url), "https://other.example");
    snprintf(model, sizeof(model), "model-two");

    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    ek_cert_result a, b;
    assert_int_equal(ek_profile_issue(profile, &req, &a, &diag), VTPMCA_OK);
    /* Another reference keeps it alive after the first is dropped. */
    ek_profile_up_ref(profile);
    ek_profile_free(profile);
    assert_int_equal(ek_profile_issue(profile, &req, &b, &diag), VTPMCA_OK);
    ek_profile_free(profile);
    assert_string_not_equal(a.serial_hex, b.serial_hex);
    X509 *cert = parse_cert(a.der, a.der_len);
    check_common(cert, g.ca, &a); /* the original base URL in CRLDP and AIA */
    GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const ASN1_STRING *v = X509_NAME_ENTRY_get_data(
        X509_NAME_get_entry(sk_GENERAL_NAME_value(san, 0)->d.directoryName, 1));
    assert_int_equal(ASN1_STRING_length(v), 9);
    assert_memory_equal(ASN1_STRING_get0_data(v), "model-one", 9);
    GENERAL_NAMES_free(san);
    X509_free(cert);
    ek_cert_result_free(&a);
    ek_cert_result_free(&b);

    /* Refusals. */
    assert_int_equal(ek_profile_new(NULL, &cfg, &profile, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(profile);
    assert_int_equal(ek_profile_new(g.ca, NULL, &profile, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ek_profile_new(g.ca, &cfg, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    cfg.base_url = "ftp://nope";
    assert_int_equal(ek_profile_new(g.ca, &cfg, &profile, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "base URL"));
    assert_null(profile);
    ek_cert_result res;
    assert_int_equal(ek_profile_issue(NULL, &req, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    ek_profile_free(NULL);
    ek_profile_up_ref(NULL);
}

/* ---- IAK ---- */

static void check_iak(const ek_cert_result *res, const EVP_PKEY *key, bool with_cn,
                      bool with_identity, const char *hw_serial_text)
{
    X509 *cert = parse_cert(res->der, res->der_len);
    check_common(cert, g.ca, res);
    assert_same_spki(cert, key);
    /* basicConstraints, keyUsage, EKU, SAN, AKI, CRLDP, AIA (+ instance identity). */
    int ext_count = with_identity ? 8 : 7;
    assert_int_equal(X509_get_ext_count(cert), ext_count);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(cert)), with_cn ? 1 : 0);
    assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
    assert_ext_value(cert, "2.5.29.15", 1, "FORMAT:BITLIST,BITSTRING:0", "");
    assert_ext_value(cert, "2.5.29.37", 0, "SEQUENCE:eku", "[eku]\naik=OID:2.23.133.8.3\n");
    /* SAN otherName hardwareModuleName {hwType 2.23.133.1.2, hwSerialNum}; critical only
     * with an empty subject. */
    char sections[512];
    snprintf(sections, sizeof(sections),
             "[names]\nother=IMPLICIT:0,SEQUENCE:othername\n"
             "[othername]\ntype=OID:1.3.6.1.5.5.7.8.4\nvalue=EXPLICIT:0,SEQUENCE:hmn\n"
             "[hmn]\nhwtype=OID:2.23.133.1.2\nserial=OCTETSTRING:%s\n",
             hw_serial_text);
    assert_ext_value(cert, "2.5.29.17", with_cn ? 0 : 1, "SEQUENCE:names", sections);
    GENERAL_NAMES *san = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(san), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, 0);
    assert_int_equal(gn->type, GEN_OTHERNAME);
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
    assert_string_equal(oid, EK_OID_HARDWARE_MODULE_NAME);
    GENERAL_NAMES_free(san);
    assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_directory_attributes, -1), -1);
    ek_identity_info info;
    vtpmca_diag diag = {{0}};
    if (with_identity)
        check_identity(cert, res->der, res->der_len);
    else
        assert_int_equal(ek_cert_read_identity(res->der, res->der_len, &info, &diag),
                         VTPMCA_ERR_NOT_FOUND);
    X509_free(cert);
    assert_strict(res->der, res->der_len, with_cn ? 1 : 2, (size_t)ext_count);
    openssl_verify(res->der, res->der_len, g.ca_dir, "");
    openssl_verify(res->der, res->der_len, g.ca_dir, "-x509_strict");
    keylime_check(res->der, res->der_len);
}

static void test_iak(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req;
    memset(&req, 0, sizeof(req));
    req.kind = EK_CERT_IAK;
    req.identity = &id;

    /* hwSerialNum defaults to the instance id. */
    req.subject_key = g.p256;
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    check_iak(&res, g.p256, true, true, CA_FIXTURE_INSTANCE);
    ek_cert_result_free(&res);

    req.subject_key = g.rsa2048;
    res = issue_ok(g.ca, &cfg, &req);
    check_iak(&res, g.rsa2048, true, true, CA_FIXTURE_INSTANCE);
    ek_cert_result_free(&res);

    /* Explicit hwSerialNum, no identity: empty subject, critical SAN, no vtpmca extension. */
    req.subject_key = g.p384;
    req.identity = NULL;
    req.hw_serial = (const uint8_t *)"EK-serial-0042";
    req.hw_serial_len = 14;
    res = issue_ok(g.ca, &cfg, &req);
    check_iak(&res, g.p384, false, false, "EK-serial-0042");
    ek_cert_result_free(&res);
}

/* ---- C509 forms ---- */

static void test_c509_forms(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    const ca_ctx *cas[] = {g.ca, g.rsa_ca};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *issuer = X509_get0_pubkey(ca_cert(cas[i], CA_CERT_ISSUING));
        vtpmca_diag diag = {{0}};

        /* Type 3: the X.509 certificate plus its re-encoding, which rebuilds it exactly. */
        ek_cert_request req = ek_request(g.p256, &id);
        req.c509 = EK_C509_REENCODED;
        ek_cert_result res = issue_ok(cas[i], &cfg, &req);
        assert_non_null(res.der);
        assert_non_null(res.c509);
        assert_int_equal(c509_verify(res.c509, res.c509_len, issuer, &diag), VTPMCA_OK);
        uint8_t *rebuilt = NULL;
        size_t rebuilt_len = 0;
        assert_int_equal(c509_to_x509_der(res.c509, res.c509_len, &rebuilt, &rebuilt_len, &diag),
                         VTPMCA_OK);
        assert_int_equal(rebuilt_len, res.der_len);
        assert_memory_equal(rebuilt, res.der, res.der_len);
        free(rebuilt);
        c509_info info;
        assert_int_equal(c509_decode_info(res.c509, res.c509_len, &info, &diag), VTPMCA_OK);
        assert_int_equal(info.type, C509_TYPE_X509);
        assert_string_equal(info.serial_hex, res.serial_hex);
        c509_info_free(&info);
        ek_cert_result_free(&res);

        /* Type 2: only the natively signed certificate, same serial and content. */
        req = ek_request(g.rsa2048, &id);
        req.kind = EK_CERT_IAK;
        req.c509 = EK_C509_NATIVE;
        res = issue_ok(cas[i], &cfg, &req);
        assert_null(res.der);
        assert_int_equal(res.der_len, 0);
        assert_non_null(res.c509);
        assert_int_equal(c509_verify(res.c509, res.c509_len, issuer, &diag), VTPMCA_OK);
        assert_int_equal(c509_decode_info(res.c509, res.c509_len, &info, &diag), VTPMCA_OK);
        assert_int_equal(info.type, C509_TYPE_NATIVE);
        assert_string_equal(info.serial_hex, res.serial_hex);
        assert_int_equal(EVP_PKEY_eq(info.public_key, g.rsa2048), 1);
        c509_info_free(&info);
        /* A flipped signature byte no longer verifies. */
        res.c509[res.c509_len - 1] ^= 0x01;
        assert_int_not_equal(c509_verify(res.c509, res.c509_len, issuer, &diag), VTPMCA_OK);
        ek_cert_result_free(&res);
    }
    ek_instance_identity id2;
    ca_fixture_identity(&id2);
    ek_cert_request bad = ek_request(g.p256, &id2);
    bad.c509 = (ek_c509_form)7;
    ek_cert_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_cert_issue(g.ca, &cfg, &bad, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "C509"));
}

/* ---- refusals ---- */

static void expect_refused(const ca_ctx *ca, const ek_profile_config *cfg,
                           const ek_cert_request *req, vtpmca_err expected, const char *part)
{
    ek_cert_result res;
    memset(&res, 0x5a, sizeof(res));
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ek_cert_issue(ca, cfg, req, &res, &diag);
    if (err != expected)
        fail_msg("got %d (%s), expected %d", err, diag.msg, expected);
    if (part != NULL && strstr(diag.msg, part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, part);
    assert_null(res.der);
    assert_int_equal(res.der_len, 0);
}

static void test_bad_requests(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    ek_cert_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_cert_issue(NULL, &cfg, &req, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ek_cert_issue(g.ca, NULL, &req, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ek_cert_issue(g.ca, &cfg, NULL, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ek_cert_issue(g.ca, &cfg, &req, NULL, &diag), VTPMCA_ERR_INVALID_ARG);

    ek_cert_request bad = req;
    bad.kind = (ek_cert_kind)9;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "kind");
    bad = req;
    bad.subject_key = NULL;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "subject key");
    bad = req;
    bad.identity = NULL;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "instance identity");
    bad = req;
    bad.hw_serial = (const uint8_t *)"x";
    bad.hw_serial_len = 1;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "IAK certificates only");
    bad = req;
    bad.kind = EK_CERT_IAK;
    bad.identity = NULL;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "hwSerialNum or an identity");
    uint8_t long_serial[EK_HW_SERIAL_MAX + 1] = {1};
    bad.hw_serial = long_serial;
    bad.hw_serial_len = sizeof(long_serial);
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "hwSerialNum must be");
    bad.hw_serial_len = 0;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "hwSerialNum must be");
    bad = req;
    bad.issued_at = -5;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "issue time");
    bad.issued_at = EK_NOT_AFTER_NONE;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "issue time");

    const char *bad_fleets[] = {"", "has space", "semi;colon", "colon:not-allowed",
                                "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad_fleets) / sizeof(bad_fleets[0]); i++) {
        ek_instance_identity bad_id = id;
        bad_id.fleet = bad_fleets[i];
        bad = req;
        bad.identity = &bad_id;
        expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "fleet");
    }
    const char *bad_instances[] = {"", "a/b", "tab\there", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_instances) / sizeof(bad_instances[0]); i++) {
        ek_instance_identity bad_id = id;
        bad_id.instance_id = bad_instances[i];
        bad = req;
        bad.identity = &bad_id;
        expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "instance id");
    }
    ek_instance_identity null_id = id;
    null_id.fleet = NULL;
    bad = req;
    bad.identity = &null_id;
    expect_refused(g.ca, &cfg, &bad, VTPMCA_ERR_INVALID_ARG, "fleet");
}

static void test_bad_config(void **state)
{
    (void)state;
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    const char *bad_urls[] = {"ftp://ca.example",        "https://",
                              "https://ca.example/",     "https://ca example",
                              "https://ca.example?x=1",  "https://ca.example#frag",
                              "https://ca.example/\x01", "https://ca.ex\xc3\xa4mple"};
    ek_profile_config cfg;
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        ca_fixture_profile(&cfg);
        cfg.base_url = bad_urls[i];
        expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "base URL");
    }
    char long_url[EK_PROFILE_BASE_URL_MAX + 2];
    memcpy(long_url, "https://", 8);
    memset(long_url + 8, 'a', sizeof(long_url) - 9);
    long_url[sizeof(long_url) - 1] = '\0';
    ca_fixture_profile(&cfg);
    cfg.base_url = long_url;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "base URL");
    ca_fixture_profile(&cfg);
    cfg.base_url = NULL;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "base URL");

    const char *bad_ids[] = {"id:1234", "id:4d534654", "4D534654", "id:4D53465G", "id:4D5346540"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        ca_fixture_profile(&cfg);
        cfg.tpm.manufacturer = bad_ids[i];
        expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "tpmManufacturer");
        ca_fixture_profile(&cfg);
        cfg.tpm.version = bad_ids[i];
        expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "tpmVersion");
    }
    ca_fixture_profile(&cfg);
    cfg.tpm.model = "";
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "tpmModel");
    cfg.tpm.model = "bad\x7fmodel";
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "tpmModel");
    ca_fixture_profile(&cfg);
    cfg.tpm.spec_family = NULL;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "family");
    ca_fixture_profile(&cfg);
    cfg.validity_days = 36526;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "validity");
    ca_fixture_profile(&cfg);
    cfg.backdate_seconds = -1;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "backdate");
    cfg.backdate_seconds = 86401;
    expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_INVALID_ARG, "backdate");
    assert_int_equal(ek_profile_config_check(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    ca_fixture_profile(&cfg);
    assert_int_equal(ek_profile_config_check(&cfg, NULL), VTPMCA_OK);
}

/* An RSA ("RSA" or "RSA-PSS") key with a chosen exponent. */
static EVP_PKEY *rsa_keygen(const char *type, unsigned bits, unsigned long e)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    BIGNUM *exp = BN_new();
    BN_set_word(exp, e);
    EVP_PKEY *key = NULL;
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) > 0);
    assert_true(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, exp) > 0);
    assert_int_equal(EVP_PKEY_keygen(ctx, &key), 1);
    BN_free(exp);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static void test_unsupported_keys(void **state)
{
    (void)state;
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    struct {
        EVP_PKEY *key;
        const char *part;
    } cases[] = {
        {EVP_RSA_gen(1024), "2048 bits"},
        {rsa_keygen("RSA", 2048, 3), "65537"},
        {EVP_EC_gen("P-521"), "P-256 or P-384"},
        {EVP_EC_gen("secp256k1"), "P-256 or P-384"},
        {EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), "RSA-2048, EC P-256 or EC P-384"},
        {EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), "RSA-2048, EC P-256 or EC P-384"},
        {rsa_keygen("RSA-PSS", 2048, 65537), "RSA-PSS"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_non_null(cases[i].key);
        ek_cert_request req = ek_request(cases[i].key, &id);
        expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_UNSUPPORTED, cases[i].part);
        req.kind = EK_CERT_IAK;
        expect_refused(g.ca, &cfg, &req, VTPMCA_ERR_UNSUPPORTED, cases[i].part);
        EVP_PKEY_free(cases[i].key);
    }
}

static void test_read_identity_errors(void **state)
{
    (void)state;
    ek_identity_info info;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_cert_read_identity(NULL, 10, &info, &diag), VTPMCA_ERR_INVALID_ARG);
    const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(ek_cert_read_identity(junk, sizeof(junk), &info, &diag), VTPMCA_ERR_PARSE);
    /* A CA certificate has no identity extension. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(ca_cert_der(g.ca, CA_CERT_ISSUING, &der, &der_len, NULL), VTPMCA_OK);
    assert_int_equal(ek_cert_read_identity(der, der_len, &info, &diag), VTPMCA_ERR_NOT_FOUND);
    free(der);

    /* Trailing bytes after a certificate. */
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = ek_request(g.p256, &id);
    ek_cert_result res = issue_ok(g.ca, &cfg, &req);
    uint8_t *longer = malloc(res.der_len + 1);
    memcpy(longer, res.der, res.der_len);
    longer[res.der_len] = 0;
    assert_int_equal(ek_cert_read_identity(longer, res.der_len + 1, &info, &diag),
                     VTPMCA_ERR_PARSE);
    free(longer);
    ek_cert_result_free(&res);

    /* A certificate whose identity extension is malformed (measurement too short), made by
     * the openssl CLI. */
    char dir[256], cmd[2048];
    snprintf(dir, sizeof(dir), "%s", g.tmp);
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout bad-id.key -subj /CN=bad -days 1 "
             "-addext '%s=DER:30:11:0c:01:61:0c:01:62:04:01:00:04:01:00:02:01:01:04:00' "
             "-outform DER -out bad-id.der",
             dir, EK_OID_INSTANCE_IDENTITY);
    char *out = NULL;
    if (ca_fixture_run(cmd, &out) != 0)
        fail_msg("%s\n%s", cmd, out);
    free(out);
    char path[300];
    snprintf(path, sizeof(path), "%s/bad-id.der", g.tmp);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(ek_cert_read_identity(buf, n, &info, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "malformed"));
}

/* The strict-DER checker used above really rejects what Keylime would re-encode. */
static void test_strict_der_checker(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *hex;
        bool strict;
    } cases[] = {
        {"minimal", "3003020101", true},
        {"long-form short length", "308103020101", false},
        {"indefinite length",
         "3080020101"
         "0000",
         false},
        {"length with leading zero", "30820003020101", false},
        {"non-minimal INTEGER", "02020001", false},
        {"non-minimal negative INTEGER", "0202ff80", false},
        {"BOOLEAN FALSE (a DEFAULT)", "010100", false},
        {"BOOLEAN true not FF", "010101", false},
        {"sorted SET OF", "3106020101020102", true},
        {"unsorted SET OF", "3106020102020101", false},
        {"BIT STRING unused bits set", "03020781", false},
        {"constructed OCTET STRING", "2403040100", false},
        {"NULL with content", "050100", false},
        {"UTCTime without seconds", "170b323630313031303030305a", false},
        {"GeneralizedTime with fraction", "181132303236303130313030303030302e315a", false},
        {"trailing bytes", "02010100", false},
        /* basicConstraints whose value spells out cA FALSE: caught inside the extension. */
        {"extension value with DEFAULT",
         "300c0603551d130405300301010"
         "0",
         false},
        {"extension value minimal", "30090603551d1304023000", true},
        {"OID with 0x80 padding", "0603808101", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        assert_int_equal(vt_hex_decode_alloc(cases[i].hex, strlen(cases[i].hex), &der, &len),
                         VTPMCA_OK);
        char why[256];
        bool strict = der_is_strict(der, len, NULL, why, sizeof(why));
        if (strict != cases[i].strict)
            fail_msg("%s: checker said %s (%s)", cases[i].what, strict ? "strict" : "not strict",
                     why);
        free(der);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ek_each_key_type),
        cmocka_unit_test(test_ek_empty_subject),
        cmocka_unit_test(test_ek_signed_by_rsa_ca),
        cmocka_unit_test(test_ek_validity),
        cmocka_unit_test(test_ek_tpm_attributes_configurable),
        cmocka_unit_test(test_ek_key_normalised),
        cmocka_unit_test(test_serials_unique),
        cmocka_unit_test(test_ek_from_vtpm),
        cmocka_unit_test(test_iak),
        cmocka_unit_test(test_c509_forms),
        cmocka_unit_test(test_subject_public),
        cmocka_unit_test(test_profile_api),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_read_identity_errors),
        cmocka_unit_test(test_strict_der_checker),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
