/* JWS ECDSA signatures (RFC 7518 section 3.4): raw r || s instead of OpenSSL's DER. */
#include "vtpmca/jws.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"

static const jws_es_suite es_suites[] = {
    {"P-256", SN_X9_62_prime256v1, "ES256", EVP_sha256, 32},
    {"P-384", SN_secp384r1, "ES384", EVP_sha384, 48},
};
#define ES_SUITE_COUNT (sizeof(es_suites) / sizeof(es_suites[0]))

const jws_es_suite *jws_es_suite_by_key(const EVP_PKEY *key)
{
    const char *curve = key != NULL ? jwe_ec_curve_name(key) : NULL;
    for (size_t i = 0; curve != NULL && i < ES_SUITE_COUNT; i++) {
        if (strcmp(es_suites[i].curve, curve) == 0)
            return &es_suites[i];
    }
    return NULL;
}

const jws_es_suite *jws_es_suite_by_alg(const char *alg)
{
    for (size_t i = 0; alg != NULL && i < ES_SUITE_COUNT; i++) {
        if (strcmp(es_suites[i].alg, alg) == 0)
            return &es_suites[i];
    }
    return NULL;
}

const char *jws_es_alg(const EVP_PKEY *key)
{
    const jws_es_suite *suite = jws_es_suite_by_key(key);
    return suite != NULL ? suite->alg : NULL;
}

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "%s", what);
    vtpmca_diag_append_openssl(diag);
    return err;
}

vtpmca_err jws_es_sign(const EVP_PKEY *key, const uint8_t *data, size_t len,
                       uint8_t sig[JWS_ES_SIG_MAX], size_t *sig_len, vtpmca_diag *diag)
{
    if (key == NULL || (data == NULL && len > 0) || sig == NULL || sig_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jws sign: missing argument");
    const jws_es_suite *suite = jws_es_suite_by_key(key);
    if (suite == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "JWS signing needs an EC P-256 or P-384 key");
    uint8_t der[JWS_ES_SIG_MAX + 16];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestSignInit(md, NULL, suite->md(), NULL, (EVP_PKEY *)key) == 1 &&
             EVP_DigestSign(md, der, &der_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "ECDSA signing failed");
    const unsigned char *p = der;
    ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r = NULL, *s = NULL;
    if (ecdsa != NULL)
        ECDSA_SIG_get0(ecdsa, &r, &s);
    ok = ecdsa != NULL && BN_bn2binpad(r, sig, (int)suite->field_len) >= 0 &&
         BN_bn2binpad(s, sig + suite->field_len, (int)suite->field_len) >= 0;
    ECDSA_SIG_free(ecdsa);
    if (!ok)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot convert the ECDSA signature");
    *sig_len = 2 * suite->field_len;
    return VTPMCA_OK;
}

vtpmca_err jws_es_verify(const EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t *sig,
                         size_t sig_len, vtpmca_diag *diag)
{
    if (key == NULL || (data == NULL && len > 0) || (sig == NULL && sig_len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jws verify: missing argument");
    const jws_es_suite *suite = jws_es_suite_by_key(key);
    if (suite == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "JWS verification needs an EC P-256 or P-384 key");
    if (sig_len != 2 * suite->field_len)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s signature must be %zu bytes, not %zu",
                           suite->alg, 2 * suite->field_len, sig_len);
    ECDSA_SIG *ecdsa = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)suite->field_len, NULL);
    BIGNUM *s = BN_bin2bn(sig + suite->field_len, (int)suite->field_len, NULL);
    if (ecdsa == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
        ECDSA_SIG_free(ecdsa);
        BN_free(r);
        BN_free(s);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(ecdsa, &der);
    ECDSA_SIG_free(ecdsa);
    if (der_len <= 0)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the ECDSA signature");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL &&
             EVP_DigestVerifyInit(md, NULL, suite->md(), NULL, (EVP_PKEY *)key) == 1 &&
             EVP_DigestVerify(md, der, (size_t)der_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    if (!ok) {
        ERR_clear_error(); /* the diag says it; keep the thread's queue clean */
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s signature does not verify", suite->alg);
    }
    return VTPMCA_OK;
}

vtpmca_err jws_b64url_json(const json_t *value, char **out)
{
    if (value == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    char *text = json_dumps(value, JSON_COMPACT);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err =
        vt_b64_encode_alloc((const uint8_t *)text, strlen(text), VT_B64_URL_NOPAD, out);
    free(text);
    return err;
}
