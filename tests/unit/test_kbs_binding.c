/* Unit tests for attest/kbs_binding.c: sign/verify with real keys inside real JWEs, every
 * tampered field, the remembered-key rule, key files, and the worked example of
 * docs/protocol.md (checked against the document's own text). */
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

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../support/ca_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"

static struct {
    EVP_PKEY *kbs384, *kbs384_other, *kbs256;
    EVP_PKEY *tee521, *tee521_other, *tee384;
    char dir[64];
} g;

static const uint8_t g_nonce[32] = {0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 1,  2,  3,
                                    4,    5,    6,    7,    8,    9,    10,   11,   12, 13, 14,
                                    15,   16,   17,   18,   19,   20,   21,   22,   23, 24};

/* ---- helpers ---- */

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (kbs_key_generate(KBS_KEY_P384, &g.kbs384, &diag) != VTPMCA_OK ||
        kbs_key_generate(KBS_KEY_P384, &g.kbs384_other, &diag) != VTPMCA_OK ||
        kbs_key_generate(KBS_KEY_P256, &g.kbs256, &diag) != VTPMCA_OK)
        return -1;
    g.tee521 = EVP_EC_gen("P-521");
    g.tee521_other = EVP_EC_gen("P-521");
    g.tee384 = EVP_EC_gen("P-384");
    return g.tee521 && g.tee521_other && g.tee384 &&
                   ca_fixture_tmpdir(g.dir, sizeof(g.dir), "test-kbs") == 0
               ? 0
               : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.kbs384, g.kbs384_other, g.kbs256, g.tee521, g.tee521_other, g.tee384};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    return ca_fixture_rmtree(g.dir);
}

static json_t *load_json(const char *text)
{
    json_error_t err;
    json_t *value = json_loads(text, 0, &err);
    if (value == NULL)
        fail_msg("bad JSON in test: %s", err.text);
    return value;
}

static EVP_PKEY *key_from_jwk_text(const char *text)
{
    json_t *jwk = load_json(text);
    EVP_PKEY *key = NULL;
    vtpmca_diag diag = {{0}};
    if (jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, &diag) != VTPMCA_OK)
        fail_msg("jwk import: %s", diag.msg);
    json_decref(jwk);
    return key;
}

/* A resource response as the server builds it: prepare, sign the epk, finish. */
static json_t *make_bound_jwe(const EVP_PKEY *kbs_key, const EVP_PKEY *tee)
{
    jwe_ctx *ctx = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_prepare(tee, &ctx, &diag), VTPMCA_OK);
    json_t *header = NULL;
    assert_int_equal(
        kbs_binding_sign(kbs_key, jwe_ctx_epk(ctx), g_nonce, sizeof(g_nonce), tee, &header, &diag),
        VTPMCA_OK);
    uint8_t secret[32] = {0x5a};
    json_t *jwe = NULL;
    assert_int_equal(jwe_finish(ctx, secret, sizeof(secret), header, &jwe, &diag), VTPMCA_OK);
    json_decref(header);
    jwe_ctx_free(ctx);
    return jwe;
}

static json_t *binding_of(json_t *jwe)
{
    json_t *binding = json_object_get(json_object_get(jwe, "header"), KBS_BINDING_HEADER);
    assert_non_null(binding);
    return binding;
}

static void expect_verify_fails(const json_t *jwe, const uint8_t *nonce, size_t nonce_len,
                                const EVP_PKEY *tee, const EVP_PKEY *expected,
                                vtpmca_err expect_err, const char *diag_part)
{
    vtpmca_diag diag = {{0}};
    EVP_PKEY *out = (EVP_PKEY *)1;
    assert_int_equal(kbs_binding_verify_jwe(jwe, nonce, nonce_len, tee, expected, &out, &diag),
                     expect_err);
    assert_null(out);
    if (diag_part != NULL && strstr(diag.msg, diag_part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, diag_part);
}

static void path_in_dir(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", g.dir, name);
}

/* ---- sign / verify ---- */

static void roundtrip(const EVP_PKEY *kbs_key, const EVP_PKEY *tee, const char *alg,
                      size_t sig_chars, const char *crv)
{
    json_t *jwe = make_bound_jwe(kbs_key, tee);
    json_t *binding = binding_of(jwe);
    assert_int_equal(json_object_size(binding), 4);
    assert_string_equal(json_string_value(json_object_get(binding, "alg")), alg);
    assert_int_equal(json_integer_value(json_object_get(binding, "v")), 1);
    assert_int_equal(strlen(json_string_value(json_object_get(binding, "sig"))), sig_chars);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(binding, "kbs-key"), "crv")), crv);

    vtpmca_diag diag = {{0}};
    EVP_PKEY *learned = NULL;
    assert_int_equal(
        kbs_binding_verify_jwe(jwe, g_nonce, sizeof(g_nonce), tee, NULL, &learned, &diag),
        VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(learned, kbs_key), 1);
    /* Second response of a later boot: the remembered key is accepted. */
    assert_int_equal(
        kbs_binding_verify_jwe(jwe, g_nonce, sizeof(g_nonce), tee, learned, NULL, &diag),
        VTPMCA_OK);
    /* The separate-argument form with the epk from the JWE. */
    EVP_PKEY *epk = NULL;
    jwe_alg jalg = 0;
    assert_int_equal(jwe_get_epk(jwe, &jalg, &epk, NULL), VTPMCA_OK);
    assert_int_equal(kbs_binding_verify(json_object_get(jwe, "header"), epk, g_nonce,
                                        sizeof(g_nonce), tee, kbs_key, NULL, &diag),
                     VTPMCA_OK);
    /* The binding does not disturb decryption (tee keys here hold the private part). */
    uint8_t out[64];
    size_t out_len = 0;
    assert_int_equal(jwe_decrypt(tee, jwe, out, sizeof(out), &out_len, &diag), VTPMCA_OK);
    assert_int_equal(out_len, 32);
    EVP_PKEY_free(epk);
    EVP_PKEY_free(learned);
    json_decref(jwe);
}

static void test_sign_verify_roundtrip(void **state)
{
    (void)state;
    roundtrip(g.kbs384, g.tee521, "ES384", 128, "P-384");
    roundtrip(g.kbs256, g.tee521, "ES256", 86, "P-256");
    roundtrip(g.kbs384, g.tee384, "ES384", 128, "P-384");
}

static void test_tampered_fields_fail(void **state)
{
    (void)state;
    json_t *jwe = make_bound_jwe(g.kbs384, g.tee521);

    /* Another epk: the protected header of another response to the same TEE. */
    json_t *other = make_bound_jwe(g.kbs384, g.tee521);
    json_t *bad = json_deep_copy(jwe);
    json_object_set(bad, "protected", json_object_get(other, "protected"));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO,
                        "signature");
    json_decref(bad);
    json_decref(other);

    /* Another nonce: one bit, or a prefix. */
    uint8_t nonce[sizeof(g_nonce)];
    memcpy(nonce, g_nonce, sizeof(nonce));
    nonce[31] ^= 1;
    expect_verify_fails(jwe, nonce, sizeof(nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO, "signature");
    expect_verify_fails(jwe, g_nonce, sizeof(g_nonce) - 1, g.tee521, NULL, VTPMCA_ERR_CRYPTO,
                        "signature");

    /* Another tee-pubkey on the same curve. */
    expect_verify_fails(jwe, g_nonce, sizeof(g_nonce), g.tee521_other, NULL, VTPMCA_ERR_CRYPTO,
                        "signature");

    /* The signature: a flipped bit in r and in s, a wrong length, padding. */
    const char *sig = json_string_value(json_object_get(binding_of(jwe), "sig"));
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(jwe_b64url_decode(sig, strlen(sig), &raw, &raw_len), VTPMCA_OK);
    assert_int_equal(raw_len, 96);
    size_t positions[] = {0, 47, 48, 95};
    for (size_t i = 0; i < 4; i++) {
        raw[positions[i]] ^= 0x04;
        char *text = NULL;
        assert_int_equal(vt_b64_encode_alloc(raw, raw_len, VT_B64_URL_NOPAD, &text), VTPMCA_OK);
        bad = json_deep_copy(jwe);
        json_object_set_new(binding_of(bad), "sig", json_string(text));
        expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO,
                            "signature");
        json_decref(bad);
        free(text);
        raw[positions[i]] ^= 0x04;
    }
    char *text = NULL;
    assert_int_equal(vt_b64_encode_alloc(raw, 64, VT_B64_URL_NOPAD, &text), VTPMCA_OK);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "sig", json_string(text));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "sig");
    json_decref(bad);
    free(text);
    char padded[200];
    snprintf(padded, sizeof(padded), "%s==", sig);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "sig", json_string(padded));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "sig");
    json_decref(bad);
    free(raw);

    /* alg: another curve's name, an unknown one, "none", not a string. */
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "alg", json_string("ES256"));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO,
                        "does not match");
    json_decref(bad);
    const char *unsupported[] = {"ES512", "none", "RS256"};
    for (size_t i = 0; i < 3; i++) {
        bad = json_deep_copy(jwe);
        json_object_set_new(binding_of(bad), "alg", json_string(unsupported[i]));
        expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_UNSUPPORTED,
                            "alg");
        json_decref(bad);
    }
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "alg", json_integer(384));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "alg");
    json_decref(bad);

    /* kbs-key swapped for another key: the signature no longer verifies. */
    json_t *other_jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.kbs384_other, JWE_JWK_RFC7517, &other_jwk, NULL),
                     VTPMCA_OK);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "kbs-key", other_jwk);
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO,
                        "signature");
    json_decref(bad);
    /* kbs-key not a valid point. */
    bad = json_deep_copy(jwe);
    json_t *jwk = json_object_get(binding_of(bad), "kbs-key");
    char x[80];
    snprintf(x, sizeof(x), "%s", json_string_value(json_object_get(jwk, "x")));
    x[10] = x[10] == 'A' ? 'B' : 'A';
    json_object_set_new(jwk, "x", json_string(x));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_CRYPTO, "point");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "kbs-key", json_string("key"));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "kbs-key");
    json_decref(bad);

    /* Version and members. */
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "v", json_integer(2));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_UNSUPPORTED,
                        "version");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "v", json_string("1"));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "\"v\"");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_set_new(binding_of(bad), "kid", json_string("x"));
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE,
                        "unexpected");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_del(binding_of(bad), "sig");
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "sig");
    json_decref(bad);

    /* No binding at all. */
    bad = json_deep_copy(jwe);
    json_object_set_new(bad, "header", json_object());
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE,
                        KBS_BINDING_HEADER);
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_del(bad, "header");
    expect_verify_fails(bad, g_nonce, sizeof(g_nonce), g.tee521, NULL, VTPMCA_ERR_PARSE, "header");
    json_decref(bad);
    json_decref(jwe);

    /* RSA-OAEP-256 responses carry no binding. */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    const uint8_t secret[32] = {1};
    assert_int_equal(jwe_encrypt(rsa, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    expect_verify_fails(jwe, g_nonce, sizeof(g_nonce), rsa, NULL, VTPMCA_ERR_UNSUPPORTED,
                        "ECDH-ES");
    json_decref(jwe);
    EVP_PKEY_free(rsa);
}

static void test_remembered_key_enforced(void **state)
{
    (void)state;
    json_t *jwe = make_bound_jwe(g.kbs384, g.tee521);
    /* A client that remembers another KBS key refuses this (valid) binding. */
    expect_verify_fails(jwe, g_nonce, sizeof(g_nonce), g.tee521, g.kbs384_other, VTPMCA_ERR_CRYPTO,
                        "remembered");
    expect_verify_fails(jwe, g_nonce, sizeof(g_nonce), g.tee521, g.kbs256, VTPMCA_ERR_CRYPTO,
                        "remembered");
    /* The same key in another object (e.g. parsed from storage) is accepted. */
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.kbs384, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    EVP_PKEY *remembered = NULL;
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &remembered, NULL), VTPMCA_OK);
    assert_int_equal(
        kbs_binding_verify_jwe(jwe, g_nonce, sizeof(g_nonce), g.tee521, remembered, NULL, NULL),
        VTPMCA_OK);
    EVP_PKEY_free(remembered);
    json_decref(jwk);
    json_decref(jwe);
}

static void test_message_and_sign_arguments(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t msg[KBS_BINDING_MESSAGE_MAX];
    size_t len = 0;
    EVP_PKEY *epk = EVP_EC_gen("P-521");
    assert_int_equal(
        kbs_binding_message(epk, g_nonce, sizeof(g_nonce), g.tee521, msg, sizeof(msg), &len, &diag),
        VTPMCA_OK);
    assert_int_equal(len, 22 + 4 + 133 + 4 + 32 + 4 + 133);
    assert_memory_equal(msg, "vtpmca-kbs-binding-v1\0", 22);
    assert_int_equal(kbs_binding_message(epk, g_nonce, 0, g.tee521, msg, sizeof(msg), &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    uint8_t big_nonce[KBS_BINDING_MAX_NONCE + 1] = {0};
    assert_int_equal(kbs_binding_message(epk, big_nonce, sizeof(big_nonce), g.tee521, msg,
                                         sizeof(msg), &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_message(epk, big_nonce, KBS_BINDING_MAX_NONCE, g.tee521, msg,
                                         sizeof(msg), &len, &diag),
                     VTPMCA_OK);
    assert_int_equal(len, KBS_BINDING_MESSAGE_MAX);
    assert_int_equal(
        kbs_binding_message(epk, g_nonce, sizeof(g_nonce), g.tee521, msg, 100, &len, &diag),
        VTPMCA_ERR_INVALID_ARG);
    /* The TEE key must be EC on the epk's curve. */
    assert_int_equal(
        kbs_binding_message(epk, g_nonce, sizeof(g_nonce), g.tee384, msg, sizeof(msg), &len, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_int_equal(
        kbs_binding_message(epk, g_nonce, sizeof(g_nonce), rsa, msg, sizeof(msg), &len, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(
        kbs_binding_message(rsa, g_nonce, sizeof(g_nonce), rsa, msg, sizeof(msg), &len, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_message(NULL, g_nonce, sizeof(g_nonce), g.tee521, msg, sizeof(msg),
                                         &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* Signing needs a P-384 / P-256 KBS key. */
    json_t *header = NULL;
    assert_int_equal(
        kbs_binding_sign(g.tee521, epk, g_nonce, sizeof(g_nonce), g.tee521, &header, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_sign(rsa, epk, g_nonce, sizeof(g_nonce), g.tee521, &header, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_sign(g.kbs384, epk, g_nonce, sizeof(g_nonce), rsa, &header, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_null(header);
    assert_int_equal(
        kbs_binding_verify(NULL, epk, g_nonce, sizeof(g_nonce), g.tee521, NULL, NULL, &diag),
        VTPMCA_ERR_INVALID_ARG);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(epk);
}

/* A fresh P-521 ephemeral key and the encoded points of it and of the P-521 tee key. */
static EVP_PKEY *p521_points(uint8_t epk_point[JWE_EC_POINT_MAX], size_t *epk_len,
                             uint8_t tee_point[JWE_EC_POINT_MAX], size_t *tee_len)
{
    EVP_PKEY *epk = EVP_EC_gen("P-521");
    assert_non_null(epk);
    assert_int_equal(jwe_ec_point_encode(epk, epk_point, epk_len, NULL), VTPMCA_OK);
    assert_int_equal(jwe_ec_point_encode(g.tee521, tee_point, tee_len, NULL), VTPMCA_OK);
    return epk;
}

/* The point-based message and signature equal the key-based ones, and verify. */
static void test_points_variants(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t epk_point[JWE_EC_POINT_MAX], tee_point[JWE_EC_POINT_MAX];
    size_t epk_len = 0, tee_len = 0;
    EVP_PKEY *epk = p521_points(epk_point, &epk_len, tee_point, &tee_len);
    uint8_t by_keys[KBS_BINDING_MESSAGE_MAX], by_points[KBS_BINDING_MESSAGE_MAX];
    size_t keys_len = 0, points_len = 0;
    assert_int_equal(kbs_binding_message(epk, g_nonce, sizeof(g_nonce), g.tee521, by_keys,
                                         sizeof(by_keys), &keys_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(kbs_binding_message_points(epk_point, epk_len, g_nonce, sizeof(g_nonce),
                                                tee_point, tee_len, by_points, sizeof(by_points),
                                                &points_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(points_len, keys_len);
    assert_memory_equal(by_points, by_keys, keys_len);
    /* Signed with a cached JWK: the client's verifier accepts it. */
    json_t *kbs_jwk = NULL, *header = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.kbs384, JWE_JWK_RFC7517, &kbs_jwk, NULL), VTPMCA_OK);
    assert_int_equal(kbs_binding_sign_points(g.kbs384, kbs_jwk, epk_point, epk_len, g_nonce,
                                             sizeof(g_nonce), tee_point, tee_len, &header, &diag),
                     VTPMCA_OK);
    EVP_PKEY *seen = NULL;
    assert_int_equal(
        kbs_binding_verify(header, epk, g_nonce, sizeof(g_nonce), g.tee521, g.kbs384, &seen, &diag),
        VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(seen, g.kbs384), 1);
    EVP_PKEY_free(seen);
    json_decref(header);
    /* Points on different curves, compressed or short points are refused. */
    uint8_t p384[JWE_EC_POINT_MAX];
    size_t p384_len = 0;
    assert_int_equal(jwe_ec_point_encode(g.tee384, p384, &p384_len, NULL), VTPMCA_OK);
    assert_int_equal(kbs_binding_message_points(epk_point, epk_len, g_nonce, sizeof(g_nonce), p384,
                                                p384_len, by_points, sizeof(by_points), &points_len,
                                                &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_message_points(epk_point, epk_len - 1, g_nonce, sizeof(g_nonce),
                                                tee_point, tee_len, by_points, sizeof(by_points),
                                                &points_len, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    tee_point[0] = 0x03;
    assert_int_equal(kbs_binding_sign_points(g.kbs384, kbs_jwk, epk_point, epk_len, g_nonce,
                                             sizeof(g_nonce), tee_point, tee_len, &header, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_null(header);
    json_t *not_jwk = json_string("x");
    assert_int_equal(kbs_binding_sign_points(g.kbs384, not_jwk, epk_point, epk_len, g_nonce,
                                             sizeof(g_nonce), tee_point, tee_len, &header, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(not_jwk);
    json_decref(kbs_jwk);
    EVP_PKEY_free(epk);
}

/* The header text with the signature's value cut out (ECDSA signatures are randomised, so two
 * signings differ there only). */
static char *without_sig(const char *text)
{
    const char *start = strstr(text, "\"sig\":\"");
    assert_non_null(start);
    start += strlen("\"sig\":\"");
    const char *end = strchr(start, '"');
    assert_non_null(end);
    char *out = malloc(strlen(text) + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(start - text));
    strcpy(out + (start - text), end);
    return out;
}

/* The text form of the binding header is byte-for-byte json_dumps of the json_t form (up to
 * the randomised signature), verifies, and inside a jwe_finish_text JWE is what the client
 * accepts, for both KBS key curves and with the JWK text cached or computed. */
static void test_sign_points_text(void **state)
{
    (void)state;
    EVP_PKEY *kbs_keys[] = {g.kbs384, g.kbs256};
    EVP_PKEY *tees[] = {g.tee521, g.tee384};
    for (size_t k = 0; k < 2; k++) {
        for (size_t t = 0; t < 2; t++) {
            vtpmca_diag diag = {{0}};
            jwe_ctx *ctx = NULL;
            assert_int_equal(jwe_prepare(tees[t], &ctx, &diag), VTPMCA_OK);
            size_t epk_len = 0, tee_len = 0;
            const uint8_t *epk_point = jwe_ctx_epk_point(ctx, &epk_len);
            uint8_t tee_point[JWE_EC_POINT_MAX];
            assert_int_equal(jwe_ec_point_encode(tees[t], tee_point, &tee_len, NULL), VTPMCA_OK);

            /* The cached JWK text is json_dumps of the key's JWK. */
            char *jwk_text = NULL;
            json_t *jwk = NULL;
            assert_int_equal(kbs_binding_jwk_text(kbs_keys[k], &jwk_text, &diag), VTPMCA_OK);
            assert_int_equal(jwe_pubkey_to_jwk(kbs_keys[k], JWE_JWK_RFC7517, &jwk, NULL),
                             VTPMCA_OK);
            char *jwk_dumped = json_dumps(jwk, JSON_COMPACT);
            assert_string_equal(jwk_text, jwk_dumped);
            free(jwk_dumped);

            char *cached = NULL, *computed = NULL;
            size_t cached_len = 0, computed_len = 0;
            assert_int_equal(kbs_binding_sign_points_text(kbs_keys[k], jwk_text, epk_point, epk_len,
                                                          g_nonce, sizeof(g_nonce), tee_point,
                                                          tee_len, &cached, &cached_len, &diag),
                             VTPMCA_OK);
            assert_int_equal(strlen(cached), cached_len);
            assert_int_equal(kbs_binding_sign_points_text(kbs_keys[k], NULL, epk_point, epk_len,
                                                          g_nonce, sizeof(g_nonce), tee_point,
                                                          tee_len, &computed, &computed_len, &diag),
                             VTPMCA_OK);
            json_t *header = NULL;
            assert_int_equal(kbs_binding_sign_points(kbs_keys[k], jwk, epk_point, epk_len, g_nonce,
                                                     sizeof(g_nonce), tee_point, tee_len, &header,
                                                     &diag),
                             VTPMCA_OK);
            char *header_dumped = json_dumps(header, JSON_COMPACT);
            char *a = without_sig(cached), *b = without_sig(computed),
                 *c = without_sig(header_dumped);
            assert_string_equal(a, c);
            assert_string_equal(b, c);
            assert_int_equal(strlen(header_dumped), cached_len);
            free(a);
            free(b);
            free(c);
            /* Parsed back, the text is the same bytes again: compact, nothing escaped. */
            json_t *parsed = json_loadb(cached, cached_len, JSON_REJECT_DUPLICATES, NULL);
            assert_non_null(parsed);
            char *reparsed = json_dumps(parsed, JSON_COMPACT);
            assert_string_equal(reparsed, cached);
            free(reparsed);
            /* Each signature verifies. */
            EVP_PKEY *seen = NULL;
            assert_int_equal(kbs_binding_verify(parsed, jwe_ctx_epk(ctx), g_nonce, sizeof(g_nonce),
                                                tees[t], kbs_keys[k], &seen, &diag),
                             VTPMCA_OK);
            assert_int_equal(EVP_PKEY_eq(seen, kbs_keys[k]), 1);
            EVP_PKEY_free(seen);
            assert_int_equal(kbs_binding_verify(header, jwe_ctx_epk(ctx), g_nonce, sizeof(g_nonce),
                                                tees[t], kbs_keys[k], NULL, &diag),
                             VTPMCA_OK);
            json_decref(parsed);
            parsed = json_loadb(computed, computed_len, JSON_REJECT_DUPLICATES, NULL);
            assert_int_equal(kbs_binding_verify(parsed, jwe_ctx_epk(ctx), g_nonce, sizeof(g_nonce),
                                                tees[t], kbs_keys[k], NULL, &diag),
                             VTPMCA_OK);
            json_decref(parsed);

            /* In the JWE text, as the service answers: the client decrypts and verifies. */
            const uint8_t secret[32] = {0x77};
            char *jwe_text = NULL;
            size_t jwe_len = 0;
            assert_int_equal(
                jwe_finish_text(ctx, secret, sizeof(secret), cached, &jwe_text, &jwe_len, &diag),
                VTPMCA_OK);
            json_t *jwe = json_loadb(jwe_text, jwe_len, JSON_REJECT_DUPLICATES, NULL);
            assert_non_null(jwe);
            uint8_t out[64];
            size_t out_len = 0;
            assert_int_equal(jwe_decrypt(tees[t], jwe, out, sizeof(out), &out_len, &diag),
                             VTPMCA_OK);
            assert_memory_equal(out, secret, sizeof(secret));
            assert_int_equal(kbs_binding_verify_jwe(jwe, g_nonce, sizeof(g_nonce), tees[t],
                                                    kbs_keys[k], NULL, &diag),
                             VTPMCA_OK);
            /* Another nonce does not verify: the text carries a real signature. */
            uint8_t other_nonce[32] = {0};
            assert_int_equal(kbs_binding_verify_jwe(jwe, other_nonce, sizeof(other_nonce), tees[t],
                                                    NULL, NULL, &diag),
                             VTPMCA_ERR_CRYPTO);
            json_decref(jwe);
            free(jwe_text);
            json_decref(header);
            free(header_dumped);
            free(cached);
            free(computed);
            free(jwk_text);
            json_decref(jwk);
            jwe_ctx_free(ctx);
        }
    }
}

static void test_sign_points_text_rejects(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t epk_point[JWE_EC_POINT_MAX], tee_point[JWE_EC_POINT_MAX];
    size_t epk_len = 0, tee_len = 0;
    EVP_PKEY *epk = p521_points(epk_point, &epk_len, tee_point, &tee_len);
    char *jwk_text = NULL;
    assert_int_equal(kbs_binding_jwk_text(g.kbs384, &jwk_text, NULL), VTPMCA_OK);
    char *header = NULL;
    size_t len = 0;
    /* Missing arguments. */
    assert_int_equal(kbs_binding_sign_points_text(NULL, jwk_text, epk_point, epk_len, g_nonce,
                                                  sizeof(g_nonce), tee_point, tee_len, &header,
                                                  &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_sign_points_text(g.kbs384, jwk_text, epk_point, epk_len, g_nonce,
                                                  sizeof(g_nonce), tee_point, tee_len, NULL, &len,
                                                  &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_sign_points_text(g.kbs384, jwk_text, epk_point, epk_len, g_nonce,
                                                  sizeof(g_nonce), tee_point, tee_len, &header,
                                                  NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_sign_points_text(g.kbs384, jwk_text, epk_point, epk_len, NULL,
                                                  sizeof(g_nonce), tee_point, tee_len, &header,
                                                  &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_sign_points_text(g.kbs384, jwk_text, epk_point, epk_len, g_nonce,
                                                  0, tee_point, tee_len, &header, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* JWK text that is no object's text. */
    const char *bad_jwks[] = {"", "x", "{", "\"{}\"", "[]"};
    for (size_t i = 0; i < sizeof(bad_jwks) / sizeof(bad_jwks[0]); i++)
        assert_int_equal(kbs_binding_sign_points_text(g.kbs384, bad_jwks[i], epk_point, epk_len,
                                                      g_nonce, sizeof(g_nonce), tee_point, tee_len,
                                                      &header, &len, &diag),
                         VTPMCA_ERR_INVALID_ARG);
    /* Keys and points the binding does not take. */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_int_equal(kbs_binding_sign_points_text(g.tee521, jwk_text, epk_point, epk_len, g_nonce,
                                                  sizeof(g_nonce), tee_point, tee_len, &header,
                                                  &len, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_sign_points_text(rsa, NULL, epk_point, epk_len, g_nonce,
                                                  sizeof(g_nonce), tee_point, tee_len, &header,
                                                  &len, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    header = (char *)1; /* a failed call leaves no header behind */
    len = 99;
    assert_int_equal(kbs_binding_sign_points_text(g.kbs384, jwk_text, epk_point, epk_len - 1,
                                                  g_nonce, sizeof(g_nonce), tee_point, tee_len,
                                                  &header, &len, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_null(header);
    assert_int_equal(len, 0);
    /* kbs_binding_jwk_text. */
    char *out = NULL;
    assert_int_equal(kbs_binding_jwk_text(NULL, &out, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_jwk_text(g.kbs384, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_binding_jwk_text(rsa, &out, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_binding_jwk_text(g.tee521, &out, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_null(out);
    EVP_PKEY_free(rsa);
    free(jwk_text);
    EVP_PKEY_free(epk);
}

/* ---- key files ---- */

static void test_key_save_load(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    EVP_PKEY *keys[] = {g.kbs384, g.kbs256};
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        path_in_dir(i == 0 ? "kbs384.pem" : "kbs256.pem", path, sizeof(path));
        assert_int_equal(kbs_key_save(keys[i], path, &diag), VTPMCA_OK);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        EVP_PKEY *back = NULL;
        assert_int_equal(kbs_key_load(path, &back, &diag), VTPMCA_OK);
        assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
        /* The loaded key signs bindings that verify under the original. */
        EVP_PKEY *epk = EVP_EC_gen("P-521");
        json_t *header = NULL;
        assert_int_equal(
            kbs_binding_sign(back, epk, g_nonce, sizeof(g_nonce), g.tee521, &header, &diag),
            VTPMCA_OK);
        assert_int_equal(kbs_binding_verify(header, epk, g_nonce, sizeof(g_nonce), g.tee521,
                                            keys[i], NULL, &diag),
                         VTPMCA_OK);
        json_decref(header);
        EVP_PKEY_free(epk);
        EVP_PKEY_free(back);
    }
    assert_int_equal(kbs_key_generate((kbs_key_curve)7, &keys[0], &diag), VTPMCA_ERR_INVALID_ARG);
}

static void write_text(const char *name, const char *text, char *path, size_t size)
{
    path_in_dir(name, path, size);
    assert_int_equal(vt_file_write_atomic(path, text, strlen(text), 0600, NULL), VTPMCA_OK);
}

static void write_private_pem(const char *name, const EVP_PKEY *key, const EVP_CIPHER *cipher,
                              char *path, size_t size)
{
    path_in_dir(name, path, size);
    BIO *bio = BIO_new_file(path, "w");
    assert_non_null(bio);
    assert_int_equal(
        PEM_write_bio_PrivateKey(bio, key, cipher, (unsigned char *)"secret", 6, NULL, NULL), 1);
    BIO_free(bio);
}

/* An EC "key pair" whose public point belongs to another scalar. */
static EVP_PKEY *mismatched_pair(void)
{
    BIGNUM *priv = NULL;
    uint8_t pub[JWE_EC_POINT_MAX];
    size_t pub_len = 0;
    assert_int_equal(EVP_PKEY_get_bn_param(g.kbs384, OSSL_PKEY_PARAM_PRIV_KEY, &priv), 1);
    assert_int_equal(jwe_ec_point_encode(g.kbs384_other, pub, &pub_len, NULL), VTPMCA_OK);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    return key;
}

static void test_key_load_rejects(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    EVP_PKEY *key = NULL;
    char path[256];
    path_in_dir("missing.pem", path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_IO);
    write_text("garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
               path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "PEM private key"));

    /* A public key only. */
    path_in_dir("public.pem", path, sizeof(path));
    BIO *bio = BIO_new_file(path, "w");
    assert_int_equal(PEM_write_bio_PUBKEY(bio, g.kbs384), 1);
    BIO_free(bio);
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_PARSE);
    /* Encrypted: refused without prompting for a passphrase. */
    write_private_pem("encrypted.pem", g.kbs384, EVP_aes_256_cbc(), path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_PARSE);
    /* Other key types and curves. */
    EVP_PKEY *p521 = EVP_EC_gen("P-521");
    write_private_pem("p521.pem", p521, NULL, path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(kbs_key_save(p521, path, &diag), VTPMCA_ERR_UNSUPPORTED);
    EVP_PKEY_free(p521);
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    write_private_pem("rsa.pem", rsa, NULL, path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_UNSUPPORTED);
    EVP_PKEY_free(rsa);
    /* A private scalar that does not match the public point. */
    EVP_PKEY *bad = mismatched_pair();
    write_private_pem("mismatch.pem", bad, NULL, path, sizeof(path));
    assert_int_equal(kbs_key_load(path, &key, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "inconsistent"));
    EVP_PKEY_free(bad);
    assert_null(key);
    /* Saving a public key only fails. */
    EVP_PKEY *pub = key_from_jwk_text("{\"kty\":\"EC\",\"crv\":\"P-256\","
                                      "\"x\":\"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ\","
                                      "\"y\":\"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck\"}");
    path_in_dir("pubonly.pem", path, sizeof(path));
    assert_int_equal(kbs_key_save(pub, path, &diag), VTPMCA_ERR_CRYPTO);
    assert_int_equal(access(path, F_OK), -1);
    EVP_PKEY_free(pub);
    assert_int_equal(kbs_key_load(NULL, &key, &diag), VTPMCA_ERR_INVALID_ARG);
}

static void test_key_load_or_create(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    char path[256];
    path_in_dir("auto.pem", path, sizeof(path));
    EVP_PKEY *first = NULL, *second = NULL;
    int created = -1;
    assert_int_equal(kbs_key_load_or_create(path, KBS_KEY_P256, &first, &created, &diag),
                     VTPMCA_OK);
    assert_int_equal(created, 1);
    assert_string_equal(jwe_ec_curve_name(first), "P-256");
    assert_int_equal(kbs_key_load_or_create(path, KBS_KEY_P384, &second, &created, &diag),
                     VTPMCA_OK);
    assert_int_equal(created, 0);
    assert_int_equal(EVP_PKEY_eq(first, second), 1);
    EVP_PKEY_free(first);
    EVP_PKEY_free(second);
    /* A directory that does not exist is an I/O error, not a silent new key. */
    assert_int_equal(
        kbs_key_load_or_create("/nonexistent-dir/kbs.pem", KBS_KEY_P384, &first, NULL, &diag),
        VTPMCA_ERR_IO);
    assert_null(first);
}

static void test_fingerprint(void **state)
{
    (void)state;
    uint8_t fp[KBS_KEY_FINGERPRINT_LEN], expect[32];
    assert_int_equal(kbs_key_fingerprint(g.kbs384, fp, NULL), VTPMCA_OK);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(g.kbs384, &der);
    assert_true(der_len > 0);
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(der, (size_t)der_len, expect, &md_len, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
    assert_memory_equal(fp, expect, 32);
    /* The public half has the same fingerprint; another key does not. */
    json_t *jwk = NULL;
    EVP_PKEY *pub = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.kbs384, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &pub, NULL), VTPMCA_OK);
    assert_int_equal(kbs_key_fingerprint(pub, expect, NULL), VTPMCA_OK);
    assert_memory_equal(fp, expect, 32);
    assert_int_equal(kbs_key_fingerprint(g.kbs384_other, expect, NULL), VTPMCA_OK);
    assert_memory_not_equal(fp, expect, 32);
    EVP_PKEY_free(pub);
    json_decref(jwk);
    assert_int_equal(kbs_key_fingerprint(NULL, fp, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- docs/protocol.md worked example ---- */

#define EX_KBS_JWK                                                                                 \
    "{\"crv\":\"P-384\",\"kty\":\"EC\","                                                           \
    "\"x\":\"gN3sEcrTQBXvr-LZ7qMyKkB9VqYiZLvzrzXQzgLEVKN6v0a8EGhHhQY5fjmIT66-\","                  \
    "\"y\":\"COR9ig9TqLp6bej1goxFZ5b3RBL_dljbGj4xlyQayF19mjxZK66_KT9rvEu_eXk5\"}"
#define EX_KBS_PRIV                                                                                \
    "5f5d8d066da56ceb7c0b44cf50e9b86f54bb627fcf17ea885b5cc4e3cc730f5d1bf3efa7ab9a6bdba368c85c"     \
    "15f6507a"
#define EX_EPK_JWK                                                                                 \
    "{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"AfqEe2-hlpZSPx5gHEKP6clezwSjwU5sh3q-n-"             \
    "OrIeJZC2XYqfl7uQcddbGtyBcRAo3HZmF-akuy46xsmdcy_DDE\",\"y\":\"AajObkfi1TKjWd4EVsrPovCQc3q"     \
    "dIWsy5K8neZEqNHOc3I2Rt7FYcIVTUlsyaf26e0bbCBywPymRzHisHKkDf5sC\"}"
#define EX_TEE_JWK                                                                                 \
    "{\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"Aex6pFml3QpYyr99f3d0RQ4qWRDCPRFCJJ1MN2okQEB36ed3"   \
    "ipdFiKgskpq2Xye-TjH9BZAqyrjIUlD_3Eoq16Tx\",\"y\":\"AMSbQhXlvQNSGuCITHaRMBCzOeYq5zxrqaonko"    \
    "7VT7Rzl_DPG0w1aRc0_QAkeoN91LgYb1aVIWgXzGlOzA6vm49e\"}"
#define EX_SIG                                                                                     \
    "tNGzMxUZjAr0c4DhAM_HCW9H1MHqSBaNrnTIhE3cXmH7IUkf4nuorxsqiKagVNnqzoHrRcw_Sd50QBhhCCgvszzmP"    \
    "9fartq8GtDn5i4ctDL5VT8wMA-olej4KeM7F1rN"
#define EX_MESSAGE                                                                                 \
    "7674706d63612d6b62732d62696e64696e672d763100000000850401fa847b6f"                             \
    "a19696523f1e601c428fe9c95ecf04a3c14e6c877abe9fe3ab21e2590b65d8a9"                             \
    "f97bb9071d75b1adc81711028dc766617e6a4bb2e3ac6c99d732fc30c401a8ce"                             \
    "6e47e2d532a359de0456cacfa2f090737a9d216b32e4af2779912a34739cdc8d"                             \
    "91b7b158708553525b3269fdba7b46db081cb03f2991cc78ac1ca9037f9b0200"                             \
    "000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c"                             \
    "1d1e1f000000850401ec7aa459a5dd0a58cabf7d7f7774450e2a5910c23d1142"                             \
    "249d4c376a24404077e9e7778a974588a82c929ab65f27be4e31fd05902acab8"                             \
    "c85250ffdc4a2ad7a4f100c49b4215e5bd03521ae0884c76913010b339e62ae7"                             \
    "3c6ba9aa27928ed54fb47397f0cf1b4c35691734fd00247a837dd4b8186f5695"                             \
    "216817cc694ecc0eaf9b8f5e"
#define EX_SHA384                                                                                  \
    "29751e416488036b56d7e9b2ac1560df6ab8daec50c2909ae530530b3debe5bd7172d091ee95ec007170caed"     \
    "005f4852"
#define EX_FINGERPRINT "b1e2934baa182eb128c17ac039866a95f7aa98faf08f1be95bca1f7c5fd437ae"
#define EX_HEADER                                                                                  \
    "{\"kbs-binding\":{\"alg\":\"ES384\",\"kbs-key\":" EX_KBS_JWK ",\"sig\":\"" EX_SIG             \
    "\",\"v\":1}}"

/* docs/protocol.md with all whitespace removed, so wrapped hex blocks read contiguously. */
static char *load_protocol_doc(void)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(
        vt_file_read(VTPMCA_SOURCE_DIR "/docs/protocol.md", 1 << 20, &data, &len, NULL), VTPMCA_OK);
    char *out = malloc(len + 1);
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != ' ' && data[i] != '\n' && data[i] != '\t' && data[i] != '\r')
            out[n++] = (char)data[i];
    }
    out[n] = '\0';
    free(data);
    return out;
}

static void assert_doc_contains(const char *doc, const char *text)
{
    if (strstr(doc, text) == NULL)
        fail_msg("docs/protocol.md does not contain %.60s...", text);
}

static void test_worked_example(void **state)
{
    (void)state;
    EVP_PKEY *kbs = key_from_jwk_text(EX_KBS_JWK);
    EVP_PKEY *epk = key_from_jwk_text(EX_EPK_JWK);
    EVP_PKEY *tee = key_from_jwk_text(EX_TEE_JWK);
    uint8_t nonce[32];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)i;

    /* The message bytes, from the API and rebuilt by hand from the JWK coordinates. */
    uint8_t msg[KBS_BINDING_MESSAGE_MAX], expect[KBS_BINDING_MESSAGE_MAX];
    size_t msg_len = 0;
    assert_int_equal(
        kbs_binding_message(epk, nonce, sizeof(nonce), tee, msg, sizeof(msg), &msg_len, NULL),
        VTPMCA_OK);
    char hex[2 * KBS_BINDING_MESSAGE_MAX + 1];
    assert_int_equal(vt_hex_encode(msg, msg_len, hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(hex, EX_MESSAGE);
    size_t n = 0;
    memcpy(expect, "vtpmca-kbs-binding-v1", 21);
    n = 22;
    expect[21] = 0;
    const EVP_PKEY *points[] = {epk, NULL, tee};
    for (size_t f = 0; f < 3; f++) {
        uint8_t field[JWE_EC_POINT_MAX];
        size_t field_len = sizeof(nonce);
        if (points[f] != NULL) {
            json_t *jwk = NULL;
            assert_int_equal(jwe_pubkey_to_jwk(points[f], JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
            uint8_t *x = NULL, *y = NULL;
            size_t x_len = 0, y_len = 0;
            const char *xs = json_string_value(json_object_get(jwk, "x"));
            const char *ys = json_string_value(json_object_get(jwk, "y"));
            assert_int_equal(jwe_b64url_decode(xs, strlen(xs), &x, &x_len), VTPMCA_OK);
            assert_int_equal(jwe_b64url_decode(ys, strlen(ys), &y, &y_len), VTPMCA_OK);
            field[0] = 0x04;
            memcpy(field + 1, x, x_len);
            memcpy(field + 1 + x_len, y, y_len);
            field_len = 1 + x_len + y_len;
            free(x);
            free(y);
            json_decref(jwk);
        } else {
            memcpy(field, nonce, sizeof(nonce));
        }
        expect[n++] = (uint8_t)(field_len >> 24);
        expect[n++] = (uint8_t)(field_len >> 16);
        expect[n++] = (uint8_t)(field_len >> 8);
        expect[n++] = (uint8_t)field_len;
        memcpy(expect + n, field, field_len);
        n += field_len;
    }
    assert_int_equal(n, msg_len);
    assert_memory_equal(expect, msg, n);

    /* Hash, signature and fingerprint. */
    uint8_t digest[48];
    assert_int_equal(EVP_Digest(msg, msg_len, digest, NULL, EVP_sha384(), NULL), 1);
    assert_int_equal(vt_hex_encode(digest, sizeof(digest), hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(hex, EX_SHA384);
    json_t *header = load_json(EX_HEADER);
    EVP_PKEY *learned = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        kbs_binding_verify(header, epk, nonce, sizeof(nonce), tee, NULL, &learned, &diag),
        VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(learned, kbs), 1);
    uint8_t fp[32];
    assert_int_equal(kbs_key_fingerprint(kbs, fp, NULL), VTPMCA_OK);
    assert_int_equal(vt_hex_encode(fp, sizeof(fp), hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(hex, EX_FINGERPRINT);

    /* The documented private scalar belongs to the documented KBS key and signs too. */
    uint8_t priv_bytes[48], pub[JWE_EC_POINT_MAX];
    size_t pub_len = 0;
    assert_int_equal(vt_hex_decode_fixed(EX_KBS_PRIV, priv_bytes, sizeof(priv_bytes)), VTPMCA_OK);
    assert_int_equal(jwe_ec_point_encode(kbs, pub, &pub_len, NULL), VTPMCA_OK);
    BIGNUM *priv = BN_bin2bn(priv_bytes, sizeof(priv_bytes), NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *kbs_priv = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &kbs_priv, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, kbs_priv, NULL);
    assert_int_equal(EVP_PKEY_pairwise_check(ctx), 1);
    EVP_PKEY_CTX_free(ctx);
    json_t *fresh = NULL;
    assert_int_equal(kbs_binding_sign(kbs_priv, epk, nonce, sizeof(nonce), tee, &fresh, &diag),
                     VTPMCA_OK);
    assert_int_equal(kbs_binding_verify(fresh, epk, nonce, sizeof(nonce), tee, kbs, NULL, &diag),
                     VTPMCA_OK);
    json_decref(fresh);
    EVP_PKEY_free(kbs_priv);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);

    /* The document shows exactly these values. */
    char *doc = load_protocol_doc();
    assert_doc_contains(doc, EX_MESSAGE);
    assert_doc_contains(doc, EX_SHA384);
    assert_doc_contains(doc, EX_SIG);
    assert_doc_contains(doc, EX_FINGERPRINT);
    assert_doc_contains(doc, EX_KBS_PRIV);
    assert_doc_contains(doc, EX_KBS_JWK);
    assert_doc_contains(doc, EX_EPK_JWK);
    assert_doc_contains(doc, EX_TEE_JWK);
    assert_doc_contains(doc, EX_HEADER);
    free(doc);

    json_decref(header);
    EVP_PKEY_free(learned);
    EVP_PKEY_free(kbs);
    EVP_PKEY_free(epk);
    EVP_PKEY_free(tee);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_tampered_fields_fail),
        cmocka_unit_test(test_remembered_key_enforced),
        cmocka_unit_test(test_message_and_sign_arguments),
        cmocka_unit_test(test_points_variants),
        cmocka_unit_test(test_sign_points_text),
        cmocka_unit_test(test_sign_points_text_rejects),
        cmocka_unit_test(test_key_save_load),
        cmocka_unit_test(test_key_load_rejects),
        cmocka_unit_test(test_key_load_or_create),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_worked_example),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
