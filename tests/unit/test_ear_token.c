/* Unit tests for attest/ear_token.c: EAR JWTs signed with ES256 and ES384, checked by
 * verification, by hand-decoding the parts, and by the openssl command line tool; every
 * kind of tampering, the wrong key, expiry and malformed tokens are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "../support/snp_policy_fixture.h"
#include "vtpmca/ear.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"

#define NOW ((time_t)1750000000)

static struct {
    EVP_PKEY *p256, *p384, *p384_other, *tee;
    snp_evidence evidence;
    char tmp[64];
} g;

static int group_setup(void **state)
{
    (void)state;
    g.p256 = EVP_EC_gen("P-256");
    g.p384 = EVP_EC_gen("P-384");
    g.p384_other = EVP_EC_gen("P-384");
    g.tee = EVP_EC_gen("P-521");
    if (g.p256 == NULL || g.p384 == NULL || g.p384_other == NULL || g.tee == NULL ||
        ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "token") != 0)
        return -1;
    return fixture_evidence(SNP_PRODUCT_MILAN, &g.evidence) == VTPMCA_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g.p256);
    EVP_PKEY_free(g.p384);
    EVP_PKEY_free(g.p384_other);
    EVP_PKEY_free(g.tee);
    return ca_fixture_rmtree(g.tmp);
}

static json_t *tee_jwk(void)
{
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.tee, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    return jwk;
}

static json_t *claims_expiring(time_t exp)
{
    json_t *jwk = tee_jwk();
    ear_token_claims in = {.evidence = &g.evidence,
                           .issued_at = exp - 300,
                           .expires_at = exp,
                           .session_id = "00112233445566778899aabbccddeeff",
                           .tee_pubkey = jwk};
    json_t *claims = NULL;
    assert_int_equal(ear_token_build_claims(&in, &claims, NULL), VTPMCA_OK);
    json_decref(jwk);
    return claims;
}

static char *sign(EVP_PKEY *key, time_t exp)
{
    json_t *claims = claims_expiring(exp);
    char *token = NULL;
    ear_token_key tk;
    assert_int_equal(ear_token_key_init(&tk, key, NULL), VTPMCA_OK);
    assert_int_equal(ear_token_sign(&tk, claims, &token, NULL), VTPMCA_OK);
    ear_token_key_clear(&tk);
    json_decref(claims);
    return token;
}

/* Decodes one part of a token as JSON (NULL if it is not JSON). */
static json_t *decode_part(const char *token, int index)
{
    const char *start = token;
    for (int i = 0; i < index; i++)
        start = strchr(start, '.') + 1;
    const char *end = strchr(start, '.');
    size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(vt_b64_decode_alloc(start, len, VT_B64_URL_NOPAD, &raw, &raw_len), VTPMCA_OK);
    json_t *value = json_loadb((const char *)raw, raw_len, 0, NULL);
    free(raw);
    return value;
}

/* Verifies with a token key made from `key`; *claims (may be NULL) as ear_token_verify. */
static vtpmca_err verify_claims(EVP_PKEY *key, const char *token, time_t now, json_t **claims,
                                vtpmca_diag *diag)
{
    ear_token_key tk;
    vtpmca_err err = ear_token_key_init(&tk, key, diag);
    if (err == VTPMCA_OK)
        err = ear_token_verify(&tk, token, strlen(token), now, claims, diag);
    ear_token_key_clear(&tk);
    return err;
}

static vtpmca_err verify(EVP_PKEY *key, const char *token, time_t now)
{
    vtpmca_diag diag = {{0}};
    return verify_claims(key, token, now, NULL, &diag);
}

/* ---- tests ---- */

static void test_sign_verify_es384_es256(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p384, g.p256};
    const char *algs[] = {"ES384", "ES256"};
    for (int k = 0; k < 2; k++) {
        char *token = sign(keys[k], NOW + 300);
        json_t *claims = NULL;
        assert_int_equal(verify_claims(keys[k], token, NOW, &claims, NULL), VTPMCA_OK);
        assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + 300);
        assert_string_equal(json_string_value(json_object_get(claims, "sid")),
                            "00112233445566778899aabbccddeeff");
        json_decref(claims);

        /* Header: exactly alg, typ and kid = hex SHA-256 of the DER SubjectPublicKeyInfo. */
        json_t *header = decode_part(token, 0);
        assert_int_equal(json_object_size(header), 3);
        assert_string_equal(json_string_value(json_object_get(header, "alg")), algs[k]);
        assert_string_equal(json_string_value(json_object_get(header, "typ")), "JWT");
        unsigned char *der = NULL;
        int der_len = i2d_PUBKEY(keys[k], &der);
        uint8_t digest[32];
        assert_int_equal(EVP_Digest(der, (size_t)der_len, digest, NULL, EVP_sha256(), NULL), 1);
        OPENSSL_free(der);
        char kid[65];
        vt_hex_encode(digest, sizeof(digest), kid, sizeof(kid));
        assert_string_equal(json_string_value(json_object_get(header, "kid")), kid);
        json_decref(header);
        assert_string_equal(jws_es_alg(keys[k]), algs[k]);
        free(token);
    }
    assert_null(jws_es_alg(g.tee));
    assert_null(jws_es_alg(NULL));
}

/* The header segment is worked out once per key: every token starts with it, and it is the
 * base64url of exactly {"alg":..,"typ":"JWT","kid":..}; the payload segment is the base64url of
 * the claims' compact JSON. */
static void test_segments(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p384, g.p256};
    for (int k = 0; k < 2; k++) {
        ear_token_key tk;
        assert_int_equal(ear_token_key_init(&tk, keys[k], NULL), VTPMCA_OK);
        char header_json[160];
        snprintf(header_json, sizeof(header_json),
                 "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", tk.alg, tk.kid);
        char *want_header = NULL;
        assert_int_equal(vt_b64_encode_alloc((const uint8_t *)header_json, strlen(header_json),
                                             VT_B64_URL_NOPAD, &want_header),
                         VTPMCA_OK);
        assert_string_equal(tk.header_b64, want_header);
        json_t *claims = claims_expiring(NOW + 300);
        char *claims_json = json_dumps(claims, JSON_COMPACT), *want_payload = NULL;
        assert_int_equal(vt_b64_encode_alloc((const uint8_t *)claims_json, strlen(claims_json),
                                             VT_B64_URL_NOPAD, &want_payload),
                         VTPMCA_OK);
        for (int i = 0; i < 2; i++) { /* the cached header serves every token */
            char *token = NULL;
            assert_int_equal(ear_token_sign(&tk, claims, &token, NULL), VTPMCA_OK);
            const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
            assert_int_equal((size_t)(dot1 - token), strlen(want_header));
            assert_memory_equal(token, want_header, strlen(want_header));
            assert_int_equal((size_t)(dot2 - dot1 - 1), strlen(want_payload));
            assert_memory_equal(dot1 + 1, want_payload, strlen(want_payload));
            /* r || s: 64 or 96 bytes, 86 or 128 characters. */
            assert_int_equal(strlen(dot2 + 1), k == 0 ? 128 : 86);
            assert_int_equal(ear_token_verify(&tk, token, strlen(token), NOW, NULL, NULL),
                             VTPMCA_OK);
            free(token);
        }
        free(claims_json);
        free(want_payload);
        free(want_header);
        /* A key not set up by ear_token_key_init (no header), or cleared, signs nothing. */
        ear_token_key bare = tk; /* borrows tk's reference; never cleared */
        bare.header_b64[0] = '\0';
        char *token = NULL;
        assert_int_equal(ear_token_sign(&bare, claims, &token, NULL), VTPMCA_ERR_INVALID_ARG);
        ear_token_key_clear(&tk);
        assert_int_equal(ear_token_sign(&tk, claims, &token, NULL), VTPMCA_ERR_INVALID_ARG);
        assert_null(token);
        json_decref(claims);
    }
}

/* The EAR claims and the session claims the service adds. */
static void test_claims_content(void **state)
{
    (void)state;
    json_t *a = claims_expiring(NOW + 60), *b = claims_expiring(NOW + 60);
    assert_string_equal(json_string_value(json_object_get(a, "eat_profile")), EAR_PROFILE);
    assert_int_equal(json_integer_value(json_object_get(a, "iat")), NOW - 240);
    json_t *submod = json_object_get(json_object_get(a, "submods"), EAR_SUBMOD_SNP);
    assert_non_null(submod);
    /* Identity only: genuine hardware affirmed, executables not claimed. */
    assert_string_equal(json_string_value(json_object_get(submod, "ear.status")), "affirming");
    assert_string_equal(json_string_value(json_object_get(submod, "ear.appraisal-policy-id")),
                        EAR_TOKEN_POLICY_ID);
    json_t *vector = json_object_get(submod, "ear.trustworthiness-vector");
    assert_int_equal(json_integer_value(json_object_get(vector, "hardware")), 2);
    assert_int_equal(json_integer_value(json_object_get(vector, "executables")), 0);
    const char *jti_a = json_string_value(json_object_get(a, "jti"));
    const char *jti_b = json_string_value(json_object_get(b, "jti"));
    assert_int_equal(strlen(jti_a), 32);
    assert_string_not_equal(jti_a, jti_b);
    json_t *jwk = tee_jwk();
    assert_true(json_equal(json_object_get(a, "tee-pubkey"), jwk));
    json_decref(jwk);
    json_decref(a);
    json_decref(b);

    ear_token_claims bad = {.evidence = &g.evidence,
                            .issued_at = NOW,
                            .expires_at = NOW,
                            .session_id = "s",
                            .tee_pubkey = json_object_get(NULL, "x")};
    json_t *out = NULL;
    assert_int_equal(ear_token_build_claims(&bad, &out, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_token_build_claims(NULL, &out, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* Writes bytes to a file in the temp dir and returns its path (static buffer per name). */
static void write_file(const char *name, const void *data, size_t len, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", g.tmp, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* An independent check: the openssl CLI verifies the JWS signature over "header.payload". */
static void test_openssl_cli_verifies(void **state)
{
    (void)state;
    char *token = sign(g.p384, NOW + 300);
    const char *dot2 = strrchr(token, '.');
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(
        vt_b64_decode_alloc(dot2 + 1, strlen(dot2 + 1), VT_B64_URL_NOPAD, &raw, &raw_len),
        VTPMCA_OK);
    assert_int_equal(raw_len, 96);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(raw, 48, NULL), BN_bin2bn(raw + 48, 48, NULL));
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    free(raw);

    char input_path[128], sig_path[128], key_path[128];
    write_file("input", token, (size_t)(dot2 - token), input_path, sizeof(input_path));
    write_file("sig.der", der, (size_t)der_len, sig_path, sizeof(sig_path));
    OPENSSL_free(der);
    snprintf(key_path, sizeof(key_path), "%s/pub.pem", g.tmp);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, g.p384), 1);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl dgst -sha384 -verify '%s' -signature '%s' '%s' >/dev/null 2>&1", key_path,
             sig_path, input_path);
    assert_int_equal(system(cmd), 0);
    /* ... and rejects the same signature over other bytes. */
    write_file("input", token, (size_t)(dot2 - token) - 1, input_path, sizeof(input_path));
    assert_int_not_equal(system(cmd), 0);
    free(token);
}

static void test_tampering_refused(void **state)
{
    (void)state;
    char *token = sign(g.p384, NOW + 300);
    size_t len = strlen(token);
    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    /* Flip one character in each part (keeping it base64url). */
    size_t positions[] = {2, (size_t)(dot1 - token) + 5, (size_t)(dot2 - token) + 3, len - 2};
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        char *copy = strdup(token);
        copy[positions[i]] = copy[positions[i]] == 'A' ? 'B' : 'A';
        vtpmca_err err = verify(g.p384, copy, NOW);
        assert_true(err == VTPMCA_ERR_CRYPTO || err == VTPMCA_ERR_PARSE);
        free(copy);
    }
    /* A payload swapped in from another token of the same key. */
    char *other = sign(g.p384, NOW + 999);
    const char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
    char spliced[16384];
    snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(dot1 - token), token, (int)(o2 - o1), o1,
             dot2);
    assert_int_equal(verify(g.p384, spliced, NOW), VTPMCA_ERR_CRYPTO);
    free(other);

    /* Another key: refused by kid before the signature is even tried. */
    vtpmca_diag diag = {{0}};
    assert_int_equal(verify_claims(g.p384_other, token, NOW, NULL, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "kid"));
    /* A key of another curve: refused by alg. */
    assert_int_equal(verify(g.p256, token, NOW), VTPMCA_ERR_CRYPTO);
    free(token);
}

static void test_expiry(void **state)
{
    (void)state;
    char *token = sign(g.p256, NOW + 10);
    assert_int_equal(verify(g.p256, token, NOW + 9), VTPMCA_OK);
    assert_int_equal(verify(g.p256, token, NOW + 10), VTPMCA_ERR_POLICY);
    assert_int_equal(verify(g.p256, token, NOW + 100000), VTPMCA_ERR_POLICY);
    free(token);

    /* A signed token without "exp" is malformed. */
    json_t *claims = json_pack("{s:s}", "sid", "x");
    char *no_exp = NULL;
    ear_token_key tk;
    assert_int_equal(ear_token_key_init(&tk, g.p256, NULL), VTPMCA_OK);
    assert_int_equal(ear_token_sign(&tk, claims, &no_exp, NULL), VTPMCA_OK);
    ear_token_key_clear(&tk);
    assert_int_equal(verify(g.p256, no_exp, NOW), VTPMCA_ERR_PARSE);
    free(no_exp);
    json_decref(claims);
}

/* Builds "b64(header).b64(payload).b64(sig)" with an arbitrary header, signed properly. */
static char *token_with_header(EVP_PKEY *key, const char *header_json)
{
    char *h = NULL, *p = NULL, *s = NULL;
    const char *payload = "{\"exp\":9999999999}";
    vt_b64_encode_alloc((const uint8_t *)header_json, strlen(header_json), VT_B64_URL_NOPAD, &h);
    vt_b64_encode_alloc((const uint8_t *)payload, strlen(payload), VT_B64_URL_NOPAD, &p);
    char input[1024];
    snprintf(input, sizeof(input), "%s.%s", h, p);
    uint8_t sig[JWS_ES_SIG_MAX];
    size_t sig_len = 0;
    assert_int_equal(jws_es_sign(key, (const uint8_t *)input, strlen(input), sig, &sig_len, NULL),
                     VTPMCA_OK);
    vt_b64_encode_alloc(sig, sig_len, VT_B64_URL_NOPAD, &s);
    char *out = malloc(strlen(input) + strlen(s) + 2);
    sprintf(out, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    return out;
}

static void test_malformed_tokens(void **state)
{
    (void)state;
    char kid[EAR_TOKEN_KID_SIZE];
    assert_int_equal(ear_token_kid(g.p256, kid, NULL), VTPMCA_OK);
    char header[256];
    /* The control: a hand-built token with the right header verifies. */
    snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *t = token_with_header(g.p256, header);
    assert_int_equal(verify(g.p256, t, NOW), VTPMCA_OK);
    free(t);
    /* alg none, no kid, another typ, an extra member, not an object. */
    char bad[5][256];
    snprintf(bad[0], sizeof(bad[0]), "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    snprintf(bad[1], sizeof(bad[1]), "{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
    snprintf(bad[2], sizeof(bad[2]), "{\"alg\":\"ES256\",\"typ\":\"JOSE\",\"kid\":\"%s\"}", kid);
    snprintf(bad[3], sizeof(bad[3]),
             "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\",\"crit\":[\"x\"]}", kid);
    snprintf(bad[4], sizeof(bad[4]), "[\"ES256\"]");
    for (size_t i = 0; i < 5; i++) {
        t = token_with_header(g.p256, bad[i]);
        vtpmca_err err = verify(g.p256, t, NOW);
        assert_true(err == VTPMCA_ERR_PARSE || err == VTPMCA_ERR_CRYPTO);
        free(t);
    }
    char *good = sign(g.p256, NOW + 300);
    char buf[16384];
    /* Padding, a fourth part, two parts, empty. */
    snprintf(buf, sizeof(buf), "%s=", good);
    assert_int_equal(verify(g.p256, buf, NOW), VTPMCA_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%s.e30", good);
    assert_int_equal(verify(g.p256, buf, NOW), VTPMCA_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(good, '.') - good), good);
    assert_int_equal(verify(g.p256, buf, NOW), VTPMCA_ERR_PARSE);
    assert_int_equal(verify(g.p256, "", NOW), VTPMCA_ERR_PARSE);
    assert_int_equal(verify(g.p256, "..", NOW), VTPMCA_ERR_PARSE);
    /* A signature of the wrong length. */
    snprintf(buf, sizeof(buf), "%sAAAA", good);
    assert_int_equal(verify(g.p256, buf, NOW), VTPMCA_ERR_CRYPTO);
    /* Too long to look at. */
    char *huge = malloc(EAR_TOKEN_MAX_LEN + 2);
    memset(huge, 'A', EAR_TOKEN_MAX_LEN + 1);
    huge[EAR_TOKEN_MAX_LEN + 1] = '\0';
    assert_int_equal(verify(g.p256, huge, NOW), VTPMCA_ERR_PARSE);
    free(huge);
    free(good);

    /* Keys that cannot sign JWS ES tokens. */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    ear_token_key tk;
    assert_int_equal(ear_token_key_init(&tk, rsa, NULL), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(ear_token_key_init(&tk, g.tee, NULL), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(verify(rsa, "a.b.c", NOW), VTPMCA_ERR_UNSUPPORTED);
    json_t *claims = json_pack("{s:i}", "exp", 1);
    char *out = NULL;
    assert_int_equal(ear_token_key_init(&tk, g.p256, NULL), VTPMCA_OK);
    assert_string_equal(tk.alg, "ES256");
    assert_int_equal(ear_token_sign(&tk, NULL, &out, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_token_sign(NULL, claims, &out, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_token_sign(&tk, claims, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_token_verify(NULL, "a.b.c", 5, NOW, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    ear_token_key_clear(&tk);
    ear_token_key_clear(&tk); /* a cleared key may be cleared again */
    json_decref(claims);
    EVP_PKEY_free(rsa);
}

static void test_jws_es_primitives(void **state)
{
    (void)state;
    const uint8_t msg[] = "message";
    uint8_t sig[JWS_ES_SIG_MAX];
    size_t sig_len = 0;
    assert_int_equal(jws_es_sign(g.p384, msg, sizeof(msg), sig, &sig_len, NULL), VTPMCA_OK);
    assert_int_equal(sig_len, 96);
    assert_int_equal(jws_es_verify(g.p384, msg, sizeof(msg), sig, sig_len, NULL), VTPMCA_OK);
    assert_int_equal(jws_es_verify(g.p384_other, msg, sizeof(msg), sig, sig_len, NULL),
                     VTPMCA_ERR_CRYPTO);
    assert_int_equal(jws_es_verify(g.p384, msg, sizeof(msg) - 1, sig, sig_len, NULL),
                     VTPMCA_ERR_CRYPTO);
    assert_int_equal(jws_es_verify(g.p384, msg, sizeof(msg), sig, 64, NULL), VTPMCA_ERR_CRYPTO);
    assert_int_equal(jws_es_sign(g.p256, msg, sizeof(msg), sig, &sig_len, NULL), VTPMCA_OK);
    assert_int_equal(sig_len, 64);
    assert_int_equal(jws_es_verify(g.p256, msg, sizeof(msg), sig, sig_len, NULL), VTPMCA_OK);
    assert_int_equal(jws_es_sign(NULL, msg, 1, sig, &sig_len, NULL), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_es384_es256), cmocka_unit_test(test_segments),
        cmocka_unit_test(test_claims_content),          cmocka_unit_test(test_openssl_cli_verifies),
        cmocka_unit_test(test_tampering_refused),       cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_malformed_tokens),        cmocka_unit_test(test_jws_es_primitives),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
