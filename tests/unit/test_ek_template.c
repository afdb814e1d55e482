/* Tests for the EK template and IAK checks (ca/ek_template.c): EKs that libtpms creates from
 * the three TCG default templates are accepted, and so are areas built here from the
 * templates with OpenSSL keys; then a refusal matrix changes one field at a time (nameAlg,
 * every objectAttributes bit, authPolicy, symmetric, scheme, exponent, KDF, key size, curve,
 * unique) and checks the error code and that the diag names the field. The same for IAKs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "vtpmca/ek_template.h"
#include "vtpmca/tpm2_marshal.h"
#include "vtpmca/vtpm.h"

#define AREA_MAX 1024

static struct {
    EVP_PKEY *rsa;  /* RSA-2048 */
    EVP_PKEY *p256; /* EC keys for the unique fields */
    EVP_PKEY *p384;
    EVP_PKEY *p521;
    EVP_PKEY *rsa3072;
} keys;

static uint8_t rsa_n[384], p256_xy[64], p384_xy[96], p521_xy[132];
static size_t rsa3072_len;
static uint8_t rsa3072_n[384];

/* ---- helpers ---- */

static void bn_param(const EVP_PKEY *key, const char *name, uint8_t *out, size_t size)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(key, name, &bn), 1);
    assert_int_equal(BN_bn2binpad(bn, out, (int)size), (int)size);
    BN_free(bn);
}

static int group_setup(void **state)
{
    (void)state;
    keys.rsa = EVP_RSA_gen(2048);
    keys.rsa3072 = EVP_RSA_gen(3072);
    keys.p256 = EVP_EC_gen("P-256");
    keys.p384 = EVP_EC_gen("P-384");
    keys.p521 = EVP_EC_gen("P-521");
    if (keys.rsa == NULL || keys.rsa3072 == NULL || keys.p256 == NULL || keys.p384 == NULL ||
        keys.p521 == NULL)
        return -1;
    bn_param(keys.rsa, OSSL_PKEY_PARAM_RSA_N, rsa_n, 256);
    rsa3072_len = 384;
    bn_param(keys.rsa3072, OSSL_PKEY_PARAM_RSA_N, rsa3072_n, rsa3072_len);
    bn_param(keys.p256, OSSL_PKEY_PARAM_EC_PUB_X, p256_xy, 32);
    bn_param(keys.p256, OSSL_PKEY_PARAM_EC_PUB_Y, p256_xy + 32, 32);
    bn_param(keys.p384, OSSL_PKEY_PARAM_EC_PUB_X, p384_xy, 48);
    bn_param(keys.p384, OSSL_PKEY_PARAM_EC_PUB_Y, p384_xy + 48, 48);
    bn_param(keys.p521, OSSL_PKEY_PARAM_EC_PUB_X, p521_xy, 66);
    bn_param(keys.p521, OSSL_PKEY_PARAM_EC_PUB_Y, p521_xy + 66, 66);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(keys.rsa);
    EVP_PKEY_free(keys.rsa3072);
    EVP_PKEY_free(keys.p256);
    EVP_PKEY_free(keys.p384);
    EVP_PKEY_free(keys.p521);
    return 0;
}

/* The default template of kind with a real key in unique. */
static tpm2_public ek_area(vtpm_ek_kind kind)
{
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(kind, &t), VTPMCA_OK);
    switch (kind) {
    case VTPM_EK_RSA2048:
        t.unique_a = rsa_n;
        t.unique_a_len = 256;
        break;
    case VTPM_EK_ECC_P256:
        t.unique_a = p256_xy;
        t.unique_b = p256_xy + 32;
        t.unique_a_len = t.unique_b_len = 32;
        break;
    case VTPM_EK_ECC_P384:
        t.unique_a = p384_xy;
        t.unique_b = p384_xy + 48;
        t.unique_a_len = t.unique_b_len = 48;
        break;
    }
    return t;
}

static size_t marshal(const tpm2_public *t, uint8_t *buf)
{
    tpm2_writer w;
    assert_int_equal(tpm2_writer_init(&w, buf, AREA_MAX), VTPMCA_OK);
    assert_int_equal(tpm2_put_public(&w, t), VTPMCA_OK);
    return w.len;
}

/* Checks one area as an EK: the code, and (for failures) a word the diag must contain. */
static void expect_ek(const tpm2_public *t, vtpmca_err want, const char *needle)
{
    uint8_t buf[AREA_MAX];
    size_t len = marshal(t, buf);
    vtpmca_diag diag = {{0}};
    vtpm_ek_kind kind = VTPM_EK_RSA2048;
    vtpmca_err err = ek_template_check_ek(buf, len, &kind, &diag);
    if (err != want || (needle != NULL && strstr(diag.msg, needle) == NULL))
        fail_msg("expected %s (\"%s\"), got %s: %s", vtpmca_err_name(want), needle ? needle : "",
                 vtpmca_err_name(err), diag.msg);
}

static void expect_iak(const tpm2_public *t, vtpmca_err want, const char *needle)
{
    uint8_t buf[AREA_MAX];
    size_t len = marshal(t, buf);
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ek_template_check_iak(buf, len, &diag);
    if (err != want || (needle != NULL && strstr(diag.msg, needle) == NULL))
        fail_msg("expected %s (\"%s\"), got %s: %s", vtpmca_err_name(want), needle ? needle : "",
                 vtpmca_err_name(err), diag.msg);
}

/* ---- EK ---- */

static void test_ek_from_libtpms_accepted(void **state)
{
    (void)state;
    vtpm *tpm = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_open(NULL, 0, &tpm, &diag), VTPMCA_OK);
    const vtpm_ek_kind kinds[] = {VTPM_EK_RSA2048, VTPM_EK_ECC_P256, VTPM_EK_ECC_P384};
    for (size_t i = 0; i < 3; i++) {
        uint32_t handle = 0;
        uint8_t *pub = NULL;
        size_t len = 0;
        assert_int_equal(vtpm_create_ek(tpm, kinds[i], &handle, &pub, &len, NULL, &diag),
                         VTPMCA_OK);
        vtpm_ek_kind kind = (vtpm_ek_kind)99;
        if (ek_template_check_ek(pub, len, &kind, &diag) != VTPMCA_OK)
            fail_msg("libtpms EK %s refused: %s", ek_template_name(kinds[i]), diag.msg);
        assert_int_equal(kind, kinds[i]);
        /* An EK is not an IAK (it decrypts). */
        assert_int_equal(ek_template_check_iak(pub, len, &diag), VTPMCA_ERR_UNSUPPORTED);
        assert_non_null(strstr(diag.msg, "sign"));
        assert_int_equal(vtpm_flush(tpm, handle, &diag), VTPMCA_OK);
        free(pub);
    }
    vtpm_close(tpm);
}

static void test_ek_built_from_templates_accepted(void **state)
{
    (void)state;
    const vtpm_ek_kind kinds[] = {VTPM_EK_RSA2048, VTPM_EK_ECC_P256, VTPM_EK_ECC_P384};
    for (size_t i = 0; i < 3; i++) {
        tpm2_public t = ek_area(kinds[i]);
        uint8_t buf[AREA_MAX];
        size_t len = marshal(&t, buf);
        vtpm_ek_kind kind = (vtpm_ek_kind)99;
        assert_int_equal(ek_template_check_ek(buf, len, &kind, NULL), VTPMCA_OK);
        assert_int_equal(kind, kinds[i]);
        /* kind is optional */
        assert_int_equal(ek_template_check_ek(buf, len, NULL, NULL), VTPMCA_OK);
    }
    assert_string_equal(ek_template_name(VTPM_EK_RSA2048), "L-1 (RSA-2048)");
    assert_string_equal(ek_template_name(VTPM_EK_ECC_P384), "H-3 (ECC P-384)");
    assert_null(ek_template_name((vtpm_ek_kind)7));
}

static void test_ek_field_refusals(void **state)
{
    (void)state;
    const vtpm_ek_kind kinds[] = {VTPM_EK_RSA2048, VTPM_EK_ECC_P256, VTPM_EK_ECC_P384};
    for (size_t i = 0; i < 3; i++) {
        tpm2_public base = ek_area(kinds[i]);
        tpm2_public t = base;
        t.name_alg = base.name_alg == TPM2_ALG_SHA256 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "nameAlg");

        /* Every objectAttributes bit, one at a time. */
        for (unsigned bit = 0; bit < 32; bit++) {
            t = base;
            t.object_attributes ^= 1u << bit;
            uint8_t buf[AREA_MAX];
            tpm2_writer w;
            tpm2_writer_init(&w, buf, sizeof(buf));
            tpm2_put_public(&w, &t);
            vtpmca_diag diag = {{0}};
            vtpmca_err err = ek_template_check_ek(buf, w.len, NULL, &diag);
            if (err != VTPMCA_ERR_UNSUPPORTED || strstr(diag.msg, "objectAttributes") == NULL)
                fail_msg("%s with attribute bit %u flipped: %s %s", ek_template_name(kinds[i]), bit,
                         vtpmca_err_name(err), diag.msg);
        }

        uint8_t policy[48];
        memcpy(policy, base.auth_policy, base.auth_policy_len);
        policy[5] ^= 1;
        t = base;
        t.auth_policy = policy;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "authPolicy");
        t.auth_policy_len = 0;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "authPolicy");
        /* The other profile policy (PolicyA SHA-384 for H-3, which uses PolicyB). */
        t = base;
        t.auth_policy =
            base.auth_policy_len == 32 ? TPM2_EK_POLICY_B_SHA384 : TPM2_EK_POLICY_A_SHA384;
        t.auth_policy_len = 48;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "authPolicy");

        t = base;
        t.sym_key_bits = base.sym_key_bits == 128 ? 256 : 128;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "symmetric");
        t = base;
        t.sym_alg = TPM2_ALG_NULL;
        t.sym_key_bits = 0;
        t.sym_mode = 0;
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "symmetric");

        t = base;
        if (base.type == TPM2_ALG_RSA) {
            t.scheme = TPM2_ALG_OAEP;
            t.scheme_hash = TPM2_ALG_SHA256;
        } else {
            t.scheme = TPM2_ALG_ECDH;
            t.scheme_hash = TPM2_ALG_SHA256;
        }
        expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "scheme");

        if (base.type == TPM2_ALG_RSA) {
            t = base;
            t.rsa_exponent = 65537; /* explicit: another name than the template's key */
            expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "exponent");
            t = base;
            t.unique_a_len = 255;
            expect_ek(&t, VTPMCA_ERR_PARSE, "256 bytes");
        } else {
            t = base;
            t.kdf = TPM2_ALG_KDF1_SP800_56A;
            t.kdf_hash = TPM2_ALG_SHA256;
            expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "kdf");
            t = base;
            t.unique_b_len--;
            expect_ek(&t, VTPMCA_ERR_PARSE, "unique");
            /* The template itself (zero or empty unique) has no key. */
            tpm2_public empty;
            assert_int_equal(vtpm_ek_template(kinds[i], &empty), VTPMCA_OK);
            expect_ek(&empty, VTPMCA_ERR_PARSE, "unique");
        }
    }
}

static void test_ek_key_and_curve_refusals(void **state)
{
    (void)state;
    tpm2_public t = ek_area(VTPM_EK_RSA2048);
    t.rsa_key_bits = 3072;
    t.unique_a = rsa3072_n;
    t.unique_a_len = rsa3072_len;
    expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "RSA-3072");

    t = ek_area(VTPM_EK_ECC_P384);
    t.curve = TPM2_ECC_NIST_P521;
    t.unique_a = p521_xy;
    t.unique_b = p521_xy + 66;
    t.unique_a_len = t.unique_b_len = 66;
    expect_ek(&t, VTPMCA_ERR_UNSUPPORTED, "P-521");

    /* A point that is not on the curve. */
    uint8_t off_curve[64];
    memcpy(off_curve, p256_xy, sizeof(off_curve));
    off_curve[63] ^= 1;
    t = ek_area(VTPM_EK_ECC_P256);
    t.unique_a = off_curve;
    t.unique_b = off_curve + 32;
    expect_ek(&t, VTPMCA_ERR_PARSE, "not a valid public key");

    /* The P-256 key in a P-384 template has the wrong size. */
    t = ek_area(VTPM_EK_ECC_P384);
    t.unique_a = p256_xy;
    t.unique_b = p256_xy + 32;
    t.unique_a_len = t.unique_b_len = 32;
    expect_ek(&t, VTPMCA_ERR_PARSE, "48 each");
}

static void test_ek_malformed(void **state)
{
    (void)state;
    tpm2_public t = ek_area(VTPM_EK_ECC_P256);
    uint8_t buf[AREA_MAX + 1];
    size_t len = marshal(&t, buf);
    vtpmca_diag diag = {{0}};
    /* Every truncation is malformed. */
    for (size_t cut = 1; cut < len; cut++) {
        vtpmca_err err = ek_template_check_ek(buf, cut, NULL, &diag);
        if (err != VTPMCA_ERR_PARSE)
            fail_msg("truncated to %zu: %s %s", cut, vtpmca_err_name(err), diag.msg);
    }
    buf[len] = 0;
    assert_int_equal(ek_template_check_ek(buf, len + 1, NULL, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "trailing"));
    /* An unknown type, and a keyed-hash object. */
    uint8_t bad[AREA_MAX];
    memcpy(bad, buf, len);
    bad[0] = 0x12;
    bad[1] = 0x34;
    assert_int_equal(ek_template_check_ek(bad, len, NULL, &diag), VTPMCA_ERR_PARSE);
    bad[0] = 0x00;
    bad[1] = 0x08;
    assert_int_equal(ek_template_check_ek(bad, len, NULL, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(ek_template_check_ek(NULL, 10, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ek_template_check_ek(buf, 0, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
}

/* ---- IAK ---- */

static tpm2_public iak_area(uint16_t type, uint16_t curve)
{
    tpm2_public t;
    memset(&t, 0, sizeof(t));
    t.type = type;
    t.name_alg = TPM2_ALG_SHA256;
    t.object_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
                          TPMA_OBJECT_SIGN_ENCRYPT;
    t.sym_alg = TPM2_ALG_NULL;
    t.scheme_hash = TPM2_ALG_SHA256;
    t.kdf = TPM2_ALG_NULL;
    if (type == TPM2_ALG_RSA) {
        t.scheme = TPM2_ALG_RSASSA;
        t.rsa_key_bits = 2048;
        t.unique_a = rsa_n;
        t.unique_a_len = 256;
    } else {
        t.scheme = TPM2_ALG_ECDSA;
        t.curve = curve;
        const uint8_t *xy = curve == TPM2_ECC_NIST_P256 ? p256_xy : p384_xy;
        size_t size = curve == TPM2_ECC_NIST_P256 ? 32 : 48;
        t.unique_a = xy;
        t.unique_b = xy + size;
        t.unique_a_len = t.unique_b_len = size;
        if (curve == TPM2_ECC_NIST_P384)
            t.name_alg = t.scheme_hash = TPM2_ALG_SHA384;
    }
    return t;
}

static void test_iak_accepted(void **state)
{
    (void)state;
    expect_iak((tpm2_public[]){iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256)}, VTPMCA_OK, NULL);
    expect_iak((tpm2_public[]){iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P384)}, VTPMCA_OK, NULL);
    tpm2_public t = iak_area(TPM2_ALG_RSA, 0);
    expect_iak(&t, VTPMCA_OK, NULL);
    t.scheme = TPM2_ALG_RSAPSS;
    expect_iak(&t, VTPMCA_OK, NULL);
    t.rsa_exponent = 65537;
    expect_iak(&t, VTPMCA_OK, NULL);
    /* Authorization attributes are not the CA's business. */
    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.object_attributes &= ~(TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_ADMINWITHPOLICY);
    t.object_attributes |= TPMA_OBJECT_NODA;
    expect_iak(&t, VTPMCA_OK, NULL);

    /* A key libtpms made in the endorsement hierarchy. */
    vtpm *tpm = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_open(NULL, 0, &tpm, &diag), VTPMCA_OK);
    tpm2_public tmpl = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    tmpl.unique_a_len = tmpl.unique_b_len = 0;
    uint8_t buf[AREA_MAX];
    size_t len = marshal(&tmpl, buf);
    uint32_t handle = 0;
    uint8_t *pub = NULL;
    size_t pub_len = 0;
    assert_int_equal(
        vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, buf, len, &handle, &pub, &pub_len, &diag),
        VTPMCA_OK);
    if (ek_template_check_iak(pub, pub_len, &diag) != VTPMCA_OK)
        fail_msg("libtpms IAK refused: %s", diag.msg);
    /* An IAK is not an EK. */
    assert_int_equal(ek_template_check_ek(pub, pub_len, NULL, &diag), VTPMCA_ERR_UNSUPPORTED);
    free(pub);
    vtpm_close(tpm);
}

static void test_iak_refusals(void **state)
{
    (void)state;
    const uint32_t required[] = {TPMA_OBJECT_FIXEDTPM, TPMA_OBJECT_FIXEDPARENT,
                                 TPMA_OBJECT_SENSITIVEDATAORIGIN, TPMA_OBJECT_RESTRICTED,
                                 TPMA_OBJECT_SIGN_ENCRYPT};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        tpm2_public t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
        t.object_attributes &= ~required[i];
        expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "lack");
    }
    tpm2_public t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.object_attributes |= TPMA_OBJECT_DECRYPT;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "decrypt");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.sym_alg = TPM2_ALG_AES;
    t.sym_key_bits = 128;
    t.sym_mode = TPM2_ALG_CFB;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "symmetric");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.scheme = TPM2_ALG_NULL;
    t.scheme_hash = 0;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "scheme");
    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.scheme = TPM2_ALG_ECSCHNORR;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "ECDSA");
    t = iak_area(TPM2_ALG_RSA, 0);
    t.scheme = TPM2_ALG_RSAES; /* an encryption scheme */
    t.scheme_hash = 0;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "RSASSA");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.scheme_hash = TPM2_ALG_SHA1;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "scheme hash");
    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.name_alg = TPM2_ALG_SHA1;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "nameAlg");

    t = iak_area(TPM2_ALG_RSA, 0);
    t.rsa_exponent = 3;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "exponent");
    t = iak_area(TPM2_ALG_RSA, 0);
    t.rsa_key_bits = 3072;
    t.unique_a = rsa3072_n;
    t.unique_a_len = rsa3072_len;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "RSA-3072");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P384);
    t.curve = TPM2_ECC_NIST_P521;
    t.unique_a = p521_xy;
    t.unique_b = p521_xy + 66;
    t.unique_a_len = t.unique_b_len = 66;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "P-521");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.kdf = TPM2_ALG_KDF2;
    t.kdf_hash = TPM2_ALG_SHA256;
    expect_iak(&t, VTPMCA_ERR_UNSUPPORTED, "kdf");

    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    t.unique_a_len = t.unique_b_len = 0;
    expect_iak(&t, VTPMCA_ERR_PARSE, "unique");

    uint8_t buf[AREA_MAX];
    t = iak_area(TPM2_ALG_ECC, TPM2_ECC_NIST_P256);
    size_t len = marshal(&t, buf);
    vtpmca_diag diag = {{0}};
    assert_int_equal(ek_template_check_iak(buf, len - 1, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "IAK"));
    assert_int_equal(ek_template_check_iak(NULL, 0, &diag), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ek_from_libtpms_accepted),
        cmocka_unit_test(test_ek_built_from_templates_accepted),
        cmocka_unit_test(test_ek_field_refusals),
        cmocka_unit_test(test_ek_key_and_curve_refusals),
        cmocka_unit_test(test_ek_malformed),
        cmocka_unit_test(test_iak_accepted),
        cmocka_unit_test(test_iak_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
