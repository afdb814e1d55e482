/* Unit tests for vtpm_tpmt_public_check_key (ca/tpm2_marshal.c), the check of a TPMT_PUBLIC's
 * key without an OpenSSL key object: for valid keys of every supported type and for each
 * way a key can be wrong (point off the curve, coordinates or modulus of the wrong size,
 * empty unique, even or tiny exponent, unknown curve or key size, truncated bytes), it must
 * give exactly the error vtpm_tpmt_public_to_evp gives. Also from several threads at once,
 * since the curve groups it uses are shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "vtpmca/tpm2_marshal.h"

static struct {
    uint8_t rsa_n[256];
    uint8_t p256[64], p384[96], p521[132];
} g;

static void coords(const char *curve, uint8_t *out, size_t field)
{
    EVP_PKEY *key = EVP_EC_gen(curve);
    BIGNUM *x = NULL, *y = NULL;
    assert_non_null(key);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    assert_int_equal(BN_bn2binpad(x, out, (int)field), (int)field);
    assert_int_equal(BN_bn2binpad(y, out + field, (int)field), (int)field);
    BN_free(x);
    BN_free(y);
    EVP_PKEY_free(key);
}

static int group_setup(void **state)
{
    (void)state;
    /* check_key and to_evp only look at the modulus' size and top bit: random will do. */
    for (size_t i = 0; i < sizeof(g.rsa_n); i++)
        g.rsa_n[i] = (uint8_t)(i * 37 + 11);
    g.rsa_n[0] |= 0x80;
    g.rsa_n[255] |= 0x01;
    coords("P-256", g.p256, 32);
    coords("P-384", g.p384, 48);
    coords("P-521", g.p521, 66);
    return 0;
}

static tpm2_public rsa_area(void)
{
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(VTPM_EK_RSA2048, &t), VTPMCA_OK);
    t.unique_a = g.rsa_n;
    return t;
}

static tpm2_public ecc_area(uint16_t curve)
{
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(VTPM_EK_ECC_P256, &t), VTPMCA_OK);
    const uint8_t *xy = curve == TPM2_ECC_NIST_P256   ? g.p256
                        : curve == TPM2_ECC_NIST_P384 ? g.p384
                                                      : g.p521;
    size_t field = curve == TPM2_ECC_NIST_P256 ? 32 : curve == TPM2_ECC_NIST_P384 ? 48 : 66;
    t.curve = curve;
    t.unique_a = xy;
    t.unique_b = xy + field;
    t.unique_a_len = t.unique_b_len = field;
    return t;
}

static size_t encode(const tpm2_public *t, uint8_t *buf, size_t size)
{
    tpm2_writer w;
    tpm2_writer_init(&w, buf, size);
    assert_int_equal(tpm2_put_public(&w, t), VTPMCA_OK);
    return w.len;
}

/* Both functions on the same bytes: the same verdict, and the one expected. */
static void expect_same(const uint8_t *area, size_t len, vtpmca_err expected, const char *what)
{
    EVP_PKEY *key = NULL;
    vtpmca_diag d1 = {{0}}, d2 = {{0}};
    vtpmca_err by_evp = vtpm_tpmt_public_to_evp(area, len, &key, &d1);
    vtpmca_err by_check = vtpm_tpmt_public_check_key(area, len, &d2);
    EVP_PKEY_free(key);
    if (by_evp != expected || by_check != expected)
        fail_msg("%s: to_evp %s (%s), check_key %s (%s), want %s", what, vtpmca_err_name(by_evp),
                 d1.msg, vtpmca_err_name(by_check), d2.msg, vtpmca_err_name(expected));
    if (expected != VTPMCA_OK)
        assert_true(d2.msg[0] != '\0');
}

static void test_agrees_with_to_evp(void **state)
{
    (void)state;
    uint8_t buf[1024], bad[256];
    tpm2_public t;

    t = rsa_area();
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_OK, "RSA-2048");
    t.rsa_exponent = 65537;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_OK, "RSA exponent 65537");
    t.rsa_exponent = 4;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "RSA even exponent");
    t.rsa_exponent = 1;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "RSA exponent 1");
    t = rsa_area();
    t.unique_a_len = 255;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "RSA short modulus");
    memcpy(bad, g.rsa_n, 256);
    bad[0] &= 0x7f;
    t = rsa_area();
    t.unique_a = bad;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "RSA 2047-bit modulus");
    t = rsa_area();
    t.unique_a_len = 0;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "RSA template");
    t = rsa_area();
    t.rsa_key_bits = 2000;
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_UNSUPPORTED, "RSA-2000");

    const uint16_t curves[] = {TPM2_ECC_NIST_P256, TPM2_ECC_NIST_P384, TPM2_ECC_NIST_P521};
    for (size_t i = 0; i < 3; i++) {
        t = ecc_area(curves[i]);
        expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_OK, "ECC point");
        memcpy(bad, t.unique_b, t.unique_b_len);
        bad[t.unique_b_len - 1] ^= 0x01;
        t.unique_b = bad;
        expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_CRYPTO, "ECC off the curve");
        t = ecc_area(curves[i]);
        memset(bad, 0xff, t.unique_a_len); /* x beyond the field prime */
        t.unique_a = bad;
        expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_CRYPTO, "ECC x >= p");
        t = ecc_area(curves[i]);
        t.unique_b_len--;
        expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "ECC short y");
        t.unique_a_len = t.unique_b_len = 0;
        expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_PARSE, "ECC template");
    }
    t = ecc_area(TPM2_ECC_NIST_P256);
    t.curve = 0x0010; /* BN P-256 */
    expect_same(buf, encode(&t, buf, sizeof(buf)), VTPMCA_ERR_UNSUPPORTED, "other curve");

    t = ecc_area(TPM2_ECC_NIST_P256);
    size_t len = encode(&t, buf, sizeof(buf));
    expect_same(buf, len - 1, VTPMCA_ERR_PARSE, "truncated");
    assert_int_equal(vtpm_tpmt_public_check_key(NULL, 10, NULL), VTPMCA_ERR_INVALID_ARG);
}

enum { THREADS = 4, ROUNDS = 200 };

static void *check_many(void *arg)
{
    (void)arg;
    uint8_t good[512], off[512], bad_y[48];
    tpm2_public t = ecc_area(TPM2_ECC_NIST_P384);
    size_t good_len = encode(&t, good, sizeof(good));
    memcpy(bad_y, t.unique_b, 48);
    bad_y[47] ^= 0x02;
    t.unique_b = bad_y;
    size_t off_len = encode(&t, off, sizeof(off));
    for (int i = 0; i < ROUNDS; i++) {
        if (vtpm_tpmt_public_check_key(good, good_len, NULL) != VTPMCA_OK ||
            vtpm_tpmt_public_check_key(off, off_len, NULL) != VTPMCA_ERR_CRYPTO)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, check_many, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failed = NULL;
        pthread_join(threads[i], &failed);
        assert_null(failed);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_to_evp),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
