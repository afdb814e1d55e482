/* JWE (RFC 7516 flattened JSON) with ECDH-ES+A256KW / RSA-OAEP-256 and A256GCM (RFC 7518),
 * byte-compatible with what the SVSM host proxy (aproxy) parses. All crypto is OpenSSL. */
#include "vtpmca/jwe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "vtpmca/encoding.h"
#include "vtpmca/text.h"

#define CEK_LEN 32
#define KEK_LEN 32
#define WRAPPED_CEK_LEN (CEK_LEN + 8)
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define ALG_ECDH_ES_A256KW "ECDH-ES+A256KW"
#define ALG_RSA_OAEP_256 "RSA-OAEP-256"
#define ENC_A256GCM "A256GCM"
/* aproxy re-serialises the header as alg, enc, then the rest sorted, compact; emitting
 * exactly that makes our AAD and its AAD the same bytes. */
#define PROTECTED_EC_FMT                                                                           \
    "{\"alg\":\"" ALG_ECDH_ES_A256KW "\",\"enc\":\"" ENC_A256GCM                                   \
    "\",\"epk\":{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}}"
#define PROTECTED_RSA "{\"alg\":\"" ALG_RSA_OAEP_256 "\",\"enc\":\"" ENC_A256GCM "\"}"
/* Room for the P-521 header: 88-character coordinates plus the fixed text. */
#define PROTECTED_MAX 384

typedef struct {
    const char *jwk_name;  /* RFC 7518 "crv" */
    const char *ossl_name; /* OpenSSL group name */
    size_t field_len;      /* coordinate (and ECDH shared secret) length */
} ec_curve;

static const ec_curve supported_curves[] = {
    {"P-256", SN_X9_62_prime256v1, 32},
    {"P-384", SN_secp384r1, 48},
    {"P-521", SN_secp521r1, 66},
};

struct jwe_ctx {
    jwe_alg alg;
    int used;
    EVP_PKEY *epk;
    uint8_t epk_point[JWE_EC_POINT_MAX]; /* encoded once: header, binding and callers share it */
    size_t epk_point_len;
    char *protected_b64;
    uint8_t cek[CEK_LEN];
    uint8_t encrypted_key[JWE_RSA_MAX_BITS / 8];
    size_t encrypted_key_len;
};

static const ec_curve *curve_by_jwk_name(const char *name)
{
    for (size_t i = 0; i < sizeof(supported_curves) / sizeof(supported_curves[0]); i++) {
        if (strcmp(supported_curves[i].jwk_name, name) == 0)
            return &supported_curves[i];
    }
    return NULL;
}

/* The supported curve of an EC key, or NULL (not EC, or another curve). */
static const ec_curve *curve_of_key(const EVP_PKEY *key)
{
    char group[64];
    size_t group_len = 0;
    if (!EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &group_len) != 1)
        return NULL;
    for (size_t i = 0; i < sizeof(supported_curves) / sizeof(supported_curves[0]); i++) {
        if (strcmp(supported_curves[i].ossl_name, group) == 0 ||
            strcmp(supported_curves[i].jwk_name, group) == 0)
            return &supported_curves[i];
    }
    return NULL;
}

const char *jwe_ec_curve_name(const EVP_PKEY *key)
{
    const ec_curve *curve = key != NULL ? curve_of_key(key) : NULL;
    return curve != NULL ? curve->jwk_name : NULL;
}

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "%s", what);
    vtpmca_diag_append_openssl(diag);
    return err;
}

/* A member that must be a string; returns NULL and sets diag otherwise. */
static const char *string_member(const json_t *obj, const char *name, size_t *len,
                                 vtpmca_diag *diag)
{
    const json_t *value = json_object_get(obj, name);
    if (!json_is_string(value)) {
        vtpmca_fail(diag, VTPMCA_ERR_PARSE, "member \"%s\" is missing or not a string", name);
        return NULL;
    }
    if (len != NULL)
        *len = json_string_length(value);
    return json_string_value(value);
}

/* Decodes a binary member: base64url without padding (JOSE), or padded standard base64. */
static vtpmca_err b64_member(const json_t *obj, const char *name, vt_b64_variant variant,
                             uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    size_t text_len = 0;
    const char *text = string_member(obj, name, &text_len, diag);
    if (text == NULL)
        return VTPMCA_ERR_PARSE;
    vtpmca_err err = variant == VT_B64_URL_NOPAD
                         ? jwe_b64url_decode(text, text_len, out, out_len)
                         : vt_b64_decode_alloc(text, text_len, variant, out, out_len);
    if (err == VTPMCA_ERR_PARSE)
        return vtpmca_fail(diag, err, "member \"%s\" is not valid %s", name,
                           variant == VT_B64_URL_NOPAD ? "unpadded base64url" : "padded base64");
    return err == VTPMCA_OK ? VTPMCA_OK : vtpmca_fail(diag, err, "decoding \"%s\" failed", name);
}

vtpmca_err jwe_b64url_decode(const char *text, size_t text_len, uint8_t **out, size_t *out_len)
{
    if ((text == NULL && text_len > 0) || out == NULL || out_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    /* The shared decoder tolerates padding in the url variant; JOSE forbids it. */
    if (text_len > 0 && memchr(text, '=', text_len) != NULL)
        return VTPMCA_ERR_PARSE;
    return vt_b64_decode_alloc(text, text_len, VT_B64_URL_NOPAD, out, out_len);
}

static vtpmca_err b64url_encode(const uint8_t *in, size_t len, char **out)
{
    return vt_b64_encode_alloc(in, len, VT_B64_URL_NOPAD, out);
}

vtpmca_err jwe_ec_point_encode(const EVP_PKEY *key, uint8_t out[JWE_EC_POINT_MAX], size_t *out_len,
                               vtpmca_diag *diag)
{
    if (key == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ec point: missing argument");
    const ec_curve *curve = curve_of_key(key);
    if (curve == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "key is not an EC key on P-256, P-384 or P-521");
    size_t want = 1 + 2 * curve->field_len, len = 0;
    /* One provider call that converts the point to affine once; asking for X and Y
     * separately costs two conversions and twice the parameter plumbing. */
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
                                        JWE_EC_POINT_MAX, &len) == 1 &&
        len == want && out[0] == 0x04) {
        *out_len = len;
        return VTPMCA_OK;
    }
    ERR_clear_error();
    /* A key set to the compressed form: rebuild the uncompressed encoding from X and Y. */
    BIGNUM *x = NULL, *y = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot read the EC public point");
    } else {
        out[0] = 0x04;
        if (BN_bn2binpad(x, out + 1, (int)curve->field_len) < 0 ||
            BN_bn2binpad(y, out + 1 + curve->field_len, (int)curve->field_len) < 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "EC coordinate exceeds the field size");
        else
            *out_len = want;
    }
    BN_free(x);
    BN_free(y);
    return err;
}

/* The supported curve of an uncompressed point, by its length (unique per curve). */
static const ec_curve *curve_of_point(const uint8_t *point, size_t len)
{
    if (point == NULL || len == 0 || point[0] != 0x04)
        return NULL;
    for (size_t i = 0; i < sizeof(supported_curves) / sizeof(supported_curves[0]); i++) {
        if (len == 1 + 2 * supported_curves[i].field_len)
            return &supported_curves[i];
    }
    return NULL;
}
const char *jwe_ec_point_curve_name(const uint8_t *point, size_t len)
{
    const ec_curve *curve = curve_of_point(point, len);
    return curve != NULL ? curve->jwk_name : NULL;
}

/* ---- JWK import / export ---- */

static vtpmca_err ec_key_from_point(const ec_curve *curve, const uint8_t *point, size_t len,
                                    EVP_PKEY **out, vtpmca_diag *diag)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve->ossl_name, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL)
        return openssl_fail(diag, VTPMCA_ERR_NOMEM, "cannot create an EC context");
    /* This is the partial public key validation (SP 800-56A 5.6.2.3.4): fromdata decodes the
     * uncompressed point with EC_POINT_oct2point, which refuses coordinates >= p and points
     * off the curve, and the identity has no uncompressed encoding. (EVP_PKEY_public_check_quick
     * would repeat exactly these checks.) The full check's scalar multiplication for subgroup
     * membership is implied on P-256/384/521 (cofactor 1). */
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_CTX_free(ctx);
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "JWK point is not a valid point on %s",
                    curve->jwk_name);
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    EVP_PKEY_CTX_free(ctx);
    *out = key;
    return VTPMCA_OK;
}

static vtpmca_err ec_from_jwk(const json_t *jwk, jwe_jwk_format format, EVP_PKEY **out,
                              uint8_t point_out[JWE_EC_POINT_MAX], size_t *point_len,
                              vtpmca_diag *diag)
{
    const ec_curve *curve = curve_by_jwk_name("P-521");
    if (format == JWE_JWK_RFC7517 || json_object_get(jwk, "crv") != NULL) {
        const char *crv = string_member(jwk, "crv", NULL, diag);
        if (crv == NULL)
            return VTPMCA_ERR_PARSE;
        curve = curve_by_jwk_name(crv);
        if (curve == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "JWK curve \"%.32s\" is not supported",
                               crv);
    }
    vt_b64_variant variant = format == JWE_JWK_SVSM ? VT_B64_STD : VT_B64_URL_NOPAD;
    uint8_t *x = NULL, *y = NULL;
    size_t x_len = 0, y_len = 0;
    vtpmca_err err = b64_member(jwk, "x", variant, &x, &x_len, diag);
    if (err == VTPMCA_OK)
        err = b64_member(jwk, "y", variant, &y, &y_len, diag);
    if (err == VTPMCA_OK && (x_len != curve->field_len || y_len != curve->field_len))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "JWK %s coordinates must be %zu bytes each (x %zu, y %zu)",
                          curve->jwk_name, curve->field_len, x_len, y_len);
    if (err == VTPMCA_OK) {
        uint8_t point[JWE_EC_POINT_MAX];
        point[0] = 0x04;
        memcpy(point + 1, x, x_len);
        memcpy(point + 1 + x_len, y, y_len);
        err = ec_key_from_point(curve, point, 1 + x_len + y_len, out, diag);
        if (err == VTPMCA_OK && point_out != NULL) {
            memcpy(point_out, point, 1 + x_len + y_len);
            *point_len = 1 + x_len + y_len;
        }
    }
    free(x);
    free(y);
    return err;
}

/* A JWK integer (RFC 7518 6.3.1): big-endian, no leading zero octets. */
static vtpmca_err bn_member(const json_t *jwk, const char *name, BIGNUM **out, vtpmca_diag *diag)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    vtpmca_err err = b64_member(jwk, name, VT_B64_URL_NOPAD, &bytes, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (len == 0 || bytes[0] == 0 || len > JWE_RSA_MAX_BITS / 8) {
        free(bytes);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "JWK member \"%s\" is empty, too long or not minimally encoded", name);
    }
    *out = BN_bin2bn(bytes, (int)len, NULL);
    free(bytes);
    return *out != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

static vtpmca_err rsa_key_from_bn(const BIGNUM *n, const BIGNUM *e, EVP_PKEY **out,
                                  vtpmca_diag *diag)
{
    vtpmca_err err = VTPMCA_OK;
    EVP_PKEY *key = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL) {
        err = openssl_fail(diag, VTPMCA_ERR_NOMEM, "cannot build RSA parameters");
        goto out;
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot import the RSA key");
        goto out;
    }
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    /* SP 800-56B public check: n composite without small factors, 65537 <= e < 2^256. */
    if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "RSA key fails the public key check");
        goto out;
    }
    *out = key;
    key = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return err;
}

static vtpmca_err rsa_from_jwk(const json_t *jwk, EVP_PKEY **out, vtpmca_diag *diag)
{
    BIGNUM *n = NULL, *e = NULL;
    vtpmca_err err = bn_member(jwk, "n", &n, diag);
    if (err == VTPMCA_OK)
        err = bn_member(jwk, "e", &e, diag);
    if (err != VTPMCA_OK)
        goto out;
    int bits = BN_num_bits(n);
    if (bits < JWE_RSA_MIN_BITS || bits > JWE_RSA_MAX_BITS) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "RSA modulus has %d bits, need %d..%d", bits,
                          JWE_RSA_MIN_BITS, JWE_RSA_MAX_BITS);
    } else if (!BN_is_odd(n)) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "RSA modulus is even");
    } else if (!BN_is_odd(e) || BN_is_one(e)) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "RSA exponent must be odd and greater than 1");
    } else {
        err = rsa_key_from_bn(n, e, out, diag);
    }
out:
    BN_free(n);
    BN_free(e);
    return err;
}

vtpmca_err jwe_pubkey_from_jwk_point(const json_t *jwk, jwe_jwk_format format, EVP_PKEY **out,
                                     uint8_t point[JWE_EC_POINT_MAX], size_t *point_len,
                                     vtpmca_diag *diag)
{
    if (jwk == NULL || out == NULL || (format != JWE_JWK_RFC7517 && format != JWE_JWK_SVSM) ||
        (point == NULL) != (point_len == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwk import: bad argument");
    *out = NULL;
    if (point_len != NULL)
        *point_len = 0;
    if (!json_is_object(jwk))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "JWK is not a JSON object");
    if (json_object_get(jwk, "d") != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "JWK carries private key member \"d\"");
    const char *kty = "EC";
    if (format == JWE_JWK_RFC7517 || json_object_get(jwk, "kty") != NULL) {
        kty = string_member(jwk, "kty", NULL, diag);
        if (kty == NULL)
            return VTPMCA_ERR_PARSE;
    }
    if (strcmp(kty, "EC") == 0)
        return ec_from_jwk(jwk, format, out, point, point_len, diag);
    if (strcmp(kty, "RSA") == 0 && format == JWE_JWK_RFC7517)
        return rsa_from_jwk(jwk, out, diag);
    return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "JWK key type \"%.16s\" is not supported",
                       kty);
}

vtpmca_err jwe_pubkey_from_jwk(const json_t *jwk, jwe_jwk_format format, EVP_PKEY **out,
                               vtpmca_diag *diag)
{
    return jwe_pubkey_from_jwk_point(jwk, format, out, NULL, NULL, diag);
}

/* Base64 (url or padded standard) of an uncompressed point's coordinates. */
static vtpmca_err point_coordinates_b64(const uint8_t *point, size_t point_len,
                                        vt_b64_variant variant, char **x, char **y)
{
    size_t field_len = (point_len - 1) / 2;
    *x = *y = NULL;
    if (vt_b64_encode_alloc(point + 1, field_len, variant, x) != VTPMCA_OK ||
        vt_b64_encode_alloc(point + 1 + field_len, field_len, variant, y) != VTPMCA_OK) {
        free(*x);
        *x = NULL;
        return VTPMCA_ERR_NOMEM;
    }
    return VTPMCA_OK;
}

vtpmca_err jwe_ec_jwk_from_point(const uint8_t *point, size_t point_len, jwe_jwk_format format,
                                 json_t **out, vtpmca_diag *diag)
{
    if (out == NULL || (format != JWE_JWK_RFC7517 && format != JWE_JWK_SVSM))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwk export: bad argument");
    *out = NULL;
    const ec_curve *curve = curve_of_point(point, point_len);
    if (curve == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "not an uncompressed P-256, P-384 or P-521 point");
    char *x = NULL, *y = NULL;
    if (point_coordinates_b64(point, point_len,
                              format == JWE_JWK_SVSM ? VT_B64_STD : VT_B64_URL_NOPAD, &x,
                              &y) != VTPMCA_OK)
        return VTPMCA_ERR_NOMEM;
    if (format == JWE_JWK_SVSM)
        *out = json_pack("{s:s,s:s}", "x", x, "y", y);
    else
        *out = json_pack("{s:s,s:s,s:s,s:s}", "crv", curve->jwk_name, "kty", "EC", "x", x, "y", y);
    free(x);
    free(y);
    return *out != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

static vtpmca_err rsa_to_jwk(const EVP_PKEY *key, json_t **out, vtpmca_diag *diag)
{
    BIGNUM *n = NULL, *e = NULL;
    uint8_t *n_bytes = NULL, *e_bytes = NULL;
    char *n_text = NULL, *e_text = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot read the RSA public key");
        goto out;
    }
    n_bytes = malloc((size_t)BN_num_bytes(n) + 1);
    e_bytes = malloc((size_t)BN_num_bytes(e) + 1);
    if (n_bytes == NULL || e_bytes == NULL) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    int n_len = BN_bn2bin(n, n_bytes), e_len = BN_bn2bin(e, e_bytes);
    if (b64url_encode(n_bytes, (size_t)n_len, &n_text) != VTPMCA_OK ||
        b64url_encode(e_bytes, (size_t)e_len, &e_text) != VTPMCA_OK) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    *out = json_pack("{s:s,s:s,s:s}", "e", e_text, "kty", "RSA", "n", n_text);
    if (*out == NULL)
        err = VTPMCA_ERR_NOMEM;
out:
    BN_free(n);
    BN_free(e);
    free(n_bytes);
    free(e_bytes);
    free(n_text);
    free(e_text);
    return err;
}

vtpmca_err jwe_pubkey_to_jwk(const EVP_PKEY *key, jwe_jwk_format format, json_t **out,
                             vtpmca_diag *diag)
{
    if (key == NULL || out == NULL || (format != JWE_JWK_RFC7517 && format != JWE_JWK_SVSM))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwk export: bad argument");
    *out = NULL;
    if (EVP_PKEY_is_a(key, "RSA")) {
        if (format == JWE_JWK_SVSM)
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "the SVSM key format is EC only");
        return rsa_to_jwk(key, out, diag);
    }
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    vtpmca_err err = jwe_ec_point_encode(key, point, &point_len, diag);
    return err == VTPMCA_OK ? jwe_ec_jwk_from_point(point, point_len, format, out, diag) : err;
}

/* ---- primitives ---- */

vtpmca_err jwe_concat_kdf(const uint8_t *z, size_t z_len, const char *alg_id, const uint8_t *apu,
                          size_t apu_len, const uint8_t *apv, size_t apv_len, uint8_t *out,
                          size_t out_len, vtpmca_diag *diag)
{
    if (z == NULL || z_len == 0 || alg_id == NULL || (apu == NULL && apu_len > 0) ||
        (apv == NULL && apv_len > 0) || out == NULL || out_len == 0 || out_len > UINT32_MAX / 8)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "concat kdf: bad argument");
    /* OtherInfo fits a small stack buffer for every JOSE use (alg names, short apu/apv). */
    uint8_t info[512];
    size_t alg_len = strlen(alg_id);
    if (alg_len > sizeof(info) - 16 || apu_len > sizeof(info) - 16 - alg_len ||
        apv_len > sizeof(info) - 16 - alg_len - apu_len)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "concat kdf: OtherInfo too long");
    size_t used = 0;
    const uint8_t *parts[] = {(const uint8_t *)alg_id, apu, apv};
    const size_t part_lens[] = {alg_len, apu_len, apv_len};
    for (size_t i = 0; i < 3; i++) {
        uint32_t len = (uint32_t)part_lens[i];
        info[used++] = (uint8_t)(len >> 24);
        info[used++] = (uint8_t)(len >> 16);
        info[used++] = (uint8_t)(len >> 8);
        info[used++] = (uint8_t)len;
        if (len > 0)
            memcpy(info + used, parts[i], len);
        used += len;
    }
    uint32_t key_bits = (uint32_t)(out_len * 8); /* SuppPubInfo: keydatalen in bits */
    info[used++] = (uint8_t)(key_bits >> 24);
    info[used++] = (uint8_t)(key_bits >> 16);
    info[used++] = (uint8_t)(key_bits >> 8);
    info[used++] = (uint8_t)key_bits;

    /* Concat KDF is SP 800-56C's single-step KDF, which OpenSSL provides as SSKDF. */
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SSKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "SSKDF is not available");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, SN_sha256, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)z, z_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, used),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, out_len, params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "Concat KDF failed");
    return VTPMCA_OK;
}

static vtpmca_err aes256_kw(int wrap, const uint8_t kek[32], const uint8_t *in, size_t in_len,
                            uint8_t *out, size_t out_size, size_t *out_len, vtpmca_diag *diag)
{
    size_t min_in = wrap ? 16 : 24;
    if (kek == NULL || in == NULL || out == NULL || out_len == NULL || in_len < min_in ||
        in_len % 8 != 0 || in_len > INT32_MAX - 8)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "AES key wrap: input must be a multiple of 8 bytes, at least %zu",
                           min_in);
    size_t expect = wrap ? in_len + 8 : in_len - 8;
    if (out_size < expect)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "AES key wrap: output buffer too small");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    /* The legacy EVP interface only runs wrap modes when the caller opts in. */
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    int n = 0, fin = 0;
    int ok = EVP_CipherInit_ex(ctx, EVP_aes_256_wrap(), NULL, kek, NULL, wrap) == 1 &&
             EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) == 1 &&
             EVP_CipherFinal_ex(ctx, out + n, &fin) == 1 && (size_t)(n + fin) == expect;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, expect);
        if (wrap)
            return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "AES key wrap failed");
        ERR_clear_error(); /* diag explains it; keep the queue clean for later calls */
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "AES key unwrap integrity check failed (wrong key or tampered data)");
    }
    *out_len = expect;
    return VTPMCA_OK;
}

vtpmca_err jwe_aes256_kw_wrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out,
                              size_t out_size, size_t *out_len, vtpmca_diag *diag)
{
    return aes256_kw(1, kek, in, in_len, out, out_size, out_len, diag);
}

vtpmca_err jwe_aes256_kw_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len,
                                uint8_t *out, size_t out_size, size_t *out_len, vtpmca_diag *diag)
{
    return aes256_kw(0, kek, in, in_len, out, out_size, out_len, diag);
}

/* ECDH between own (private) and peer (public), then the Concat KDF for ECDH-ES+A256KW. */
static vtpmca_err ecdh_es_kek(const EVP_PKEY *own, const EVP_PKEY *peer, uint8_t kek[KEK_LEN],
                              vtpmca_diag *diag)
{
    uint8_t z[66];
    size_t z_len = sizeof(z);
    /* OpenSSL takes its own references; it does not modify either key. The peer gets the
     * partial public key validation (SP 800-56A 5.6.2.3.4: in range, on the curve, not the
     * identity). The full check's extra n*Q scalar multiplication proves subgroup membership,
     * which every point of P-256/384/521 has (cofactor 1): it would only double the cost. */
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, (EVP_PKEY *)peer, NULL);
    int ok = check != NULL && EVP_PKEY_public_check_quick(check) == 1;
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX *ctx = ok ? EVP_PKEY_CTX_new_from_pkey(NULL, (EVP_PKEY *)own, NULL) : NULL;
    ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
         EVP_PKEY_derive_set_peer_ex(ctx, (EVP_PKEY *)peer, 0) == 1 &&
         EVP_PKEY_derive(ctx, z, &z_len) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(z, sizeof(z));
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "ECDH key agreement failed");
    }
    vtpmca_err err =
        jwe_concat_kdf(z, z_len, ALG_ECDH_ES_A256KW, NULL, 0, NULL, 0, kek, KEK_LEN, diag);
    OPENSSL_cleanse(z, sizeof(z));
    return err;
}

static EVP_PKEY_CTX *rsa_oaep_ctx(const EVP_PKEY *key, int encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, (EVP_PKEY *)key, NULL);
    if (ctx == NULL)
        return NULL;
    int ok = (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* AES-256-GCM with a 12-byte IV and a 16-byte tag; in == out lengths. */
static vtpmca_err aes256_gcm(int encrypt, const uint8_t key[CEK_LEN], const uint8_t iv[GCM_IV_LEN],
                             const char *aad, const uint8_t *in, size_t len, uint8_t *out,
                             uint8_t tag[GCM_TAG_LEN], vtpmca_diag *diag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    int n = 0, fin = 0;
    int ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, encrypt) == 1 &&
             EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
             EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
    if (ok && !encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1;
    /* In decryption, Final is where the tag is compared. */
    ok = ok && EVP_CipherFinal_ex(ctx, out + n, &fin) == 1;
    if (ok && encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (ok)
        return VTPMCA_OK;
    OPENSSL_cleanse(out, len);
    if (encrypt)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "AES-GCM encryption failed");
    ERR_clear_error(); /* diag explains it; keep the queue clean for later calls */
    return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                       "AES-GCM authentication failed (tampered ciphertext, tag, iv or header)");
}

/* The canonical protected header as base64url: the exact bytes aproxy re-creates. */
static vtpmca_err build_protected(jwe_alg alg, const uint8_t *epk_point, size_t epk_point_len,
                                  char **out, vtpmca_diag *diag)
{
    char header[PROTECTED_MAX];
    int len;
    if (alg == JWE_ALG_RSA_OAEP_256) {
        len = snprintf(header, sizeof(header), "%s", PROTECTED_RSA);
    } else {
        const ec_curve *curve = curve_of_point(epk_point, epk_point_len);
        char *x = NULL, *y = NULL;
        if (curve == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "epk is not a supported point");
        if (point_coordinates_b64(epk_point, epk_point_len, VT_B64_URL_NOPAD, &x, &y) != VTPMCA_OK)
            return VTPMCA_ERR_NOMEM;
        len = snprintf(header, sizeof(header), PROTECTED_EC_FMT, curve->jwk_name, x, y);
        free(x);
        free(y);
    }
    if (len < 0 || (size_t)len >= sizeof(header))
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "protected header too long");
    return b64url_encode((const uint8_t *)header, (size_t)len, out);
}

/* Parses a received "protected" member; it must be exactly what build_protected makes. */
static vtpmca_err parse_protected(const char *b64, size_t b64_len, jwe_alg *alg, EVP_PKEY **epk,
                                  vtpmca_diag *diag)
{
    *epk = NULL;
    uint8_t *text = NULL;
    size_t text_len = 0;
    vtpmca_err err = jwe_b64url_decode(b64, b64_len, &text, &text_len);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "member \"protected\" is not valid unpadded base64url");
    if (text_len == strlen(PROTECTED_RSA) && memcmp(text, PROTECTED_RSA, text_len) == 0) {
        free(text);
        *alg = JWE_ALG_RSA_OAEP_256;
        return VTPMCA_OK;
    }
    json_error_t json_err;
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    json_t *header = json_loadb((const char *)text, text_len, JSON_REJECT_DUPLICATES, &json_err);
    char *canonical = NULL;
    const char *alg_name = NULL, *enc_name = NULL;
    if (!json_is_object(header)) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "protected header is not a JSON object (%.80s)",
                          header == NULL ? json_err.text : "not an object");
    } else if ((alg_name = string_member(header, "alg", NULL, diag)) == NULL ||
               (enc_name = string_member(header, "enc", NULL, diag)) == NULL) {
        err = VTPMCA_ERR_PARSE;
    } else if (strcmp(alg_name, ALG_ECDH_ES_A256KW) != 0 &&
               strcmp(alg_name, ALG_RSA_OAEP_256) != 0) {
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "JWE alg \"%.32s\" is not supported",
                          alg_name);
    } else if (strcmp(enc_name, ENC_A256GCM) != 0) {
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "JWE enc \"%.32s\" is not supported",
                          enc_name);
    } else if (strcmp(alg_name, ALG_ECDH_ES_A256KW) != 0) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "protected header is not in canonical form");
    } else if (!json_is_object(json_object_get(header, "epk"))) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "protected header has no \"epk\" object");
    } else if ((err = jwe_pubkey_from_jwk_point(json_object_get(header, "epk"), JWE_JWK_RFC7517,
                                                epk, point, &point_len, diag)) != VTPMCA_OK) {
        /* diag says what is wrong with the key */
    } else if (!EVP_PKEY_is_a(*epk, "EC")) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"epk\" is not an EC key");
    } else if ((err = build_protected(JWE_ALG_ECDH_ES_A256KW, point, point_len, &canonical,
                                      diag)) != VTPMCA_OK) {
        /* diag set */
    } else if (strlen(canonical) != b64_len || memcmp(canonical, b64, b64_len) != 0) {
        /* Member order, spacing, escapes or extra members would change the AAD aproxy
         * computes, so only the canonical bytes are accepted. */
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "protected header is not in canonical form");
    } else {
        *alg = JWE_ALG_ECDH_ES_A256KW;
    }
    free(canonical);
    json_decref(header);
    free(text);
    if (err != VTPMCA_OK) {
        EVP_PKEY_free(*epk);
        *epk = NULL;
    }
    return err;
}

/* ---- encryption ---- */

vtpmca_err jwe_prepare(const EVP_PKEY *recipient, jwe_ctx **out, vtpmca_diag *diag)
{
    if (recipient == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe prepare: missing argument");
    *out = NULL;
    const ec_curve *curve = curve_of_key(recipient);
    int is_rsa = EVP_PKEY_is_a(recipient, "RSA");
    if (curve == NULL && !is_rsa)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "recipient must be an EC P-256/P-384/P-521 or RSA key");
    if (is_rsa && (EVP_PKEY_get_bits(recipient) < JWE_RSA_MIN_BITS ||
                   EVP_PKEY_get_bits(recipient) > JWE_RSA_MAX_BITS))
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "RSA recipient has %d bits, need %d..%d",
                           EVP_PKEY_get_bits(recipient), JWE_RSA_MIN_BITS, JWE_RSA_MAX_BITS);
    jwe_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err = VTPMCA_OK;
    if (RAND_priv_bytes(ctx->cek, CEK_LEN) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "random CEK generation failed");
        goto fail;
    }
    if (is_rsa) {
        ctx->alg = JWE_ALG_RSA_OAEP_256;
        EVP_PKEY_CTX *pctx = rsa_oaep_ctx(recipient, 1);
        size_t len = sizeof(ctx->encrypted_key);
        int ok = pctx != NULL &&
                 EVP_PKEY_encrypt(pctx, ctx->encrypted_key, &len, ctx->cek, CEK_LEN) == 1;
        EVP_PKEY_CTX_free(pctx);
        if (!ok) {
            err =
                openssl_fail(diag, VTPMCA_ERR_CRYPTO, "RSA-OAEP-256 encryption of the CEK failed");
            goto fail;
        }
        ctx->encrypted_key_len = len;
    } else {
        ctx->alg = JWE_ALG_ECDH_ES_A256KW;
        uint8_t kek[KEK_LEN];
        ctx->epk = EVP_EC_gen(curve->ossl_name);
        if (ctx->epk == NULL) {
            err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "ephemeral key generation failed");
            goto fail;
        }
        err = jwe_ec_point_encode(ctx->epk, ctx->epk_point, &ctx->epk_point_len, diag);
        if (err == VTPMCA_OK)
            err = ecdh_es_kek(ctx->epk, recipient, kek, diag);
        if (err == VTPMCA_OK)
            err = jwe_aes256_kw_wrap(kek, ctx->cek, CEK_LEN, ctx->encrypted_key,
                                     sizeof(ctx->encrypted_key), &ctx->encrypted_key_len, diag);
        OPENSSL_cleanse(kek, sizeof(kek));
        if (err != VTPMCA_OK)
            goto fail;
    }
    err = build_protected(ctx->alg, ctx->epk_point, ctx->epk_point_len, &ctx->protected_b64, diag);
    if (err != VTPMCA_OK)
        goto fail;
    *out = ctx;
    return VTPMCA_OK;
fail:
    jwe_ctx_free(ctx);
    return err;
}

jwe_alg jwe_ctx_alg(const jwe_ctx *ctx)
{
    return ctx != NULL ? ctx->alg : (jwe_alg)0;
}

const EVP_PKEY *jwe_ctx_epk(const jwe_ctx *ctx)
{
    return ctx != NULL ? ctx->epk : NULL;
}

const uint8_t *jwe_ctx_epk_point(const jwe_ctx *ctx, size_t *len)
{
    if (len != NULL)
        *len = ctx != NULL && ctx->epk != NULL ? ctx->epk_point_len : 0;
    return ctx != NULL && ctx->epk != NULL ? ctx->epk_point : NULL;
}

const char *jwe_ctx_protected(const jwe_ctx *ctx)
{
    return ctx != NULL ? ctx->protected_b64 : NULL;
}

void jwe_ctx_free(jwe_ctx *ctx)
{
    if (ctx == NULL)
        return;
    EVP_PKEY_free(ctx->epk);
    free(ctx->protected_b64);
    OPENSSL_cleanse(ctx, sizeof(*ctx));
    free(ctx);
}

/* RFC 7516 4: a parameter may not appear in both the protected and the unprotected header. */
static int header_clashes(const json_t *header)
{
    return json_object_get(header, "alg") != NULL || json_object_get(header, "enc") != NULL ||
           json_object_get(header, "epk") != NULL;
}

/* The flattened JWE as compact JSON text. Every value is base64url (or, for the header, JSON
 * text the caller made), so nothing needs escaping. This format is the one place that names
 * and orders the members; jwe_finish parses it back. */
#define JWE_TEXT_FMT                                                                               \
    "{\"protected\":\"%s\",\"encrypted_key\":\"%s\",\"iv\":\"%s\",\"ciphertext\":\"%s\","          \
    "\"tag\":\"%s\"%s%s}"

/* Checks the arguments both finishers share; nothing is changed on failure. */
static vtpmca_err check_finish_args(const jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                                    vtpmca_diag *diag)
{
    if (ctx == NULL || secret == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe finish: missing argument");
    if (ctx->used)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe context was already used");
    if (secret_len == 0 || secret_len > JWE_MAX_SECRET)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "secret must be 1..%d bytes",
                           JWE_MAX_SECRET);
    return VTPMCA_OK;
}

/* Encrypts secret and writes the JWE text, with `"header":<header_json>` when it is non-NULL.
 * The arguments are checked by the caller. */
static vtpmca_err finish_text(jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                              const char *header_json, char **out, size_t *out_len,
                              vtpmca_diag *diag)
{
    ctx->used = 1;
    uint8_t iv[GCM_IV_LEN], tag[GCM_TAG_LEN];
    uint8_t *ciphertext = malloc(secret_len);
    char *members[4] = {NULL, NULL, NULL, NULL}; /* encrypted_key, iv, ciphertext, tag */
    vtpmca_err err = VTPMCA_OK;
    if (ciphertext == NULL) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    if (RAND_bytes(iv, sizeof(iv)) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "random IV generation failed");
        goto out;
    }
    err =
        aes256_gcm(1, ctx->cek, iv, ctx->protected_b64, secret, secret_len, ciphertext, tag, diag);
    if (err != VTPMCA_OK)
        goto out;
    if (b64url_encode(ctx->encrypted_key, ctx->encrypted_key_len, &members[0]) != VTPMCA_OK ||
        b64url_encode(iv, sizeof(iv), &members[1]) != VTPMCA_OK ||
        b64url_encode(ciphertext, secret_len, &members[2]) != VTPMCA_OK ||
        b64url_encode(tag, sizeof(tag), &members[3]) != VTPMCA_OK) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    const char *header_name = header_json != NULL ? ",\"" JWE_UNPROTECTED_HEADER "\":" : "";
    const char *header_text = header_json != NULL ? header_json : "";
    err = vt_text_printf(out, out_len, JWE_TEXT_FMT, ctx->protected_b64, members[0], members[1],
                         members[2], members[3], header_name, header_text);
out:
    OPENSSL_cleanse(ctx->cek, sizeof(ctx->cek)); /* one secret per CEK */
    free(ciphertext);
    for (size_t i = 0; i < 4; i++)
        free(members[i]);
    return err;
}

vtpmca_err jwe_finish_text(jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                           const char *unprotected_header, char **out, size_t *out_len,
                           vtpmca_diag *diag)
{
    if (out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe finish: missing argument");
    vtpmca_err err = check_finish_args(ctx, secret, secret_len, diag);
    if (err != VTPMCA_OK)
        return err;
    /* The header is trusted text (not parsed here: that is what the text form saves); only
     * its shape is checked, so a string or a fragment cannot slip into the JWE. */
    size_t header_len = unprotected_header != NULL ? strlen(unprotected_header) : 0;
    if (unprotected_header != NULL && (header_len < 2 || unprotected_header[0] != '{' ||
                                       unprotected_header[header_len - 1] != '}'))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "unprotected header must be the text of a JSON object");
    *out = NULL;
    *out_len = 0;
    return finish_text(ctx, secret, secret_len, unprotected_header, out, out_len, diag);
}

vtpmca_err jwe_finish(jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                      json_t *unprotected_header, json_t **out, vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe finish: missing argument");
    vtpmca_err err = check_finish_args(ctx, secret, secret_len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (unprotected_header != NULL &&
        (!json_is_object(unprotected_header) || header_clashes(unprotected_header)))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "unprotected header must be an object without alg, enc, epk");
    *out = NULL;
    /* The text form parsed back, so both forms have the same members in the same order; the
     * header object is then added by reference, as the last member like in the text. */
    char *text = NULL;
    size_t len = 0;
    err = finish_text(ctx, secret, secret_len, NULL, &text, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *jwe = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (jwe == NULL || (unprotected_header != NULL &&
                        json_object_set(jwe, JWE_UNPROTECTED_HEADER, unprotected_header) != 0)) {
        json_decref(jwe);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    *out = jwe;
    return VTPMCA_OK;
}

vtpmca_err jwe_encrypt(const EVP_PKEY *recipient, const uint8_t *secret, size_t secret_len,
                       json_t *unprotected_header, json_t **out, vtpmca_diag *diag)
{
    jwe_ctx *ctx = NULL;
    vtpmca_err err = jwe_prepare(recipient, &ctx, diag);
    if (err == VTPMCA_OK)
        err = jwe_finish(ctx, secret, secret_len, unprotected_header, out, diag);
    jwe_ctx_free(ctx);
    return err;
}

/* ---- decryption ---- */

static vtpmca_err check_jwe_members(const json_t *jwe, vtpmca_diag *diag)
{
    static const char *const allowed[] = {"protected",  "encrypted_key", "iv",
                                          "ciphertext", "tag",           JWE_UNPROTECTED_HEADER};
    if (!json_is_object(jwe))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "JWE is not a JSON object");
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)jwe, name, value)
    {
        size_t i = 0;
        while (i < sizeof(allowed) / sizeof(allowed[0]) && strcmp(allowed[i], name) != 0)
            i++;
        if (i == sizeof(allowed) / sizeof(allowed[0]))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unexpected JWE member \"%.32s\"", name);
    }
    const json_t *header = json_object_get(jwe, JWE_UNPROTECTED_HEADER);
    if (header != NULL && (!json_is_object(header) || header_clashes(header)))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "JWE \"header\" must be an object without alg, enc, epk");
    return VTPMCA_OK;
}

vtpmca_err jwe_get_epk(const json_t *jwe, jwe_alg *alg, EVP_PKEY **epk, vtpmca_diag *diag)
{
    if (jwe == NULL || alg == NULL || epk == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe epk: missing argument");
    *epk = NULL;
    vtpmca_err err = check_jwe_members(jwe, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t len = 0;
    const char *protected_b64 = string_member(jwe, "protected", &len, diag);
    if (protected_b64 == NULL)
        return VTPMCA_ERR_PARSE;
    return parse_protected(protected_b64, len, alg, epk, diag);
}

/* Recovers the CEK from encrypted_key with the recipient's private key. */
static vtpmca_err recover_cek(const EVP_PKEY *recipient, jwe_alg alg, const EVP_PKEY *epk,
                              const uint8_t *encrypted_key, size_t encrypted_key_len,
                              uint8_t cek[CEK_LEN], vtpmca_diag *diag)
{
    if (alg == JWE_ALG_RSA_OAEP_256) {
        if (encrypted_key_len != (size_t)EVP_PKEY_get_size(recipient))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "encrypted_key is %zu bytes, the RSA modulus %d", encrypted_key_len,
                               EVP_PKEY_get_size(recipient));
        uint8_t plain[JWE_RSA_MAX_BITS / 8];
        size_t plain_len = sizeof(plain);
        EVP_PKEY_CTX *ctx = rsa_oaep_ctx(recipient, 0);
        int ok = ctx != NULL &&
                 EVP_PKEY_decrypt(ctx, plain, &plain_len, encrypted_key, encrypted_key_len) == 1;
        EVP_PKEY_CTX_free(ctx);
        ok = ok && plain_len == CEK_LEN;
        if (ok)
            memcpy(cek, plain, CEK_LEN);
        OPENSSL_cleanse(plain, sizeof(plain));
        if (!ok) {
            ERR_clear_error(); /* diag explains it; keep the queue clean for later calls */
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                               "RSA-OAEP-256 decryption of encrypted_key failed");
        }
        return VTPMCA_OK;
    }
    if (encrypted_key_len != WRAPPED_CEK_LEN)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "encrypted_key must be %d bytes, got %zu",
                           WRAPPED_CEK_LEN, encrypted_key_len);
    uint8_t kek[KEK_LEN];
    size_t cek_len = 0;
    vtpmca_err err = ecdh_es_kek(recipient, epk, kek, diag);
    if (err == VTPMCA_OK)
        err = jwe_aes256_kw_unwrap(kek, encrypted_key, encrypted_key_len, cek, CEK_LEN, &cek_len,
                                   diag);
    OPENSSL_cleanse(kek, sizeof(kek));
    return err;
}

/* Checks that the JWE's algorithm and curve fit the recipient key. */
static vtpmca_err check_recipient(const EVP_PKEY *recipient, jwe_alg alg, const EVP_PKEY *epk,
                                  vtpmca_diag *diag)
{
    if (alg == JWE_ALG_RSA_OAEP_256) {
        if (!EVP_PKEY_is_a(recipient, "RSA"))
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                               "JWE is for an RSA recipient but the key is not RSA");
        return VTPMCA_OK;
    }
    const ec_curve *own = curve_of_key(recipient), *theirs = curve_of_key(epk);
    if (own == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "JWE is for an EC recipient but the key is not a supported EC key");
    if (own != theirs)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "epk is on %s, the recipient key on %s",
                           theirs->jwk_name, own->jwk_name);
    return VTPMCA_OK;
}

vtpmca_err jwe_decrypt(const EVP_PKEY *recipient, const json_t *jwe, uint8_t *out, size_t out_size,
                       size_t *out_len, vtpmca_diag *diag)
{
    if (recipient == NULL || jwe == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jwe decrypt: missing argument");
    jwe_alg alg = 0;
    EVP_PKEY *epk = NULL;
    uint8_t *encrypted_key = NULL, *iv = NULL, *ciphertext = NULL, *tag = NULL;
    size_t encrypted_key_len = 0, iv_len = 0, ciphertext_len = 0, tag_len = 0;
    uint8_t cek[CEK_LEN];
    vtpmca_err err = jwe_get_epk(jwe, &alg, &epk, diag);
    if (err == VTPMCA_OK)
        err = check_recipient(recipient, alg, epk, diag);
    if (err == VTPMCA_OK)
        err = b64_member(jwe, "encrypted_key", VT_B64_URL_NOPAD, &encrypted_key, &encrypted_key_len,
                         diag);
    if (err == VTPMCA_OK)
        err = b64_member(jwe, "iv", VT_B64_URL_NOPAD, &iv, &iv_len, diag);
    if (err == VTPMCA_OK)
        err = b64_member(jwe, "ciphertext", VT_B64_URL_NOPAD, &ciphertext, &ciphertext_len, diag);
    if (err == VTPMCA_OK)
        err = b64_member(jwe, "tag", VT_B64_URL_NOPAD, &tag, &tag_len, diag);
    if (err != VTPMCA_OK)
        goto out;
    if (iv_len != GCM_IV_LEN || tag_len != GCM_TAG_LEN) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "iv must be %d and tag %d bytes (got %zu, %zu)",
                          GCM_IV_LEN, GCM_TAG_LEN, iv_len, tag_len);
        goto out;
    }
    if (ciphertext_len == 0 || ciphertext_len > JWE_MAX_SECRET) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ciphertext must be 1..%d bytes, got %zu",
                          JWE_MAX_SECRET, ciphertext_len);
        goto out;
    }
    if (out_size < ciphertext_len) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "output buffer too small for %zu bytes",
                          ciphertext_len);
        goto out;
    }
    err = recover_cek(recipient, alg, epk, encrypted_key, encrypted_key_len, cek, diag);
    if (err == VTPMCA_OK)
        err = aes256_gcm(0, cek, iv, json_string_value(json_object_get(jwe, "protected")),
                         ciphertext, ciphertext_len, out, tag, diag);
    if (err == VTPMCA_OK)
        *out_len = ciphertext_len;
out:
    OPENSSL_cleanse(cek, sizeof(cek));
    EVP_PKEY_free(epk);
    free(encrypted_key);
    free(iv);
    free(ciphertext);
    free(tag);
    if (err != VTPMCA_OK)
        OPENSSL_cleanse(out, out_size);
    return err;
}
