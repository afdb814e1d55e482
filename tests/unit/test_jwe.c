/* Unit tests for attest/jwe.c: RFC test vectors (Concat KDF, AES key wrap), round trips on
 * every supported recipient type, the exact protected header, tampering and wrong keys,
 * JWK import checks, and cross-checks against the openssl CLI and raw EVP calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Keys generated once per test file (RSA key generation is slow). */
static struct {
    EVP_PKEY *p256, *p384, *p521, *p521_other;
    EVP_PKEY *rsa2048, *rsa3072, *rsa2048_other;
    char dir[64];
} g;

/* ---- helpers ---- */

static EVP_PKEY *gen_rsa(unsigned bits)
{
    EVP_PKEY *key = EVP_RSA_gen(bits);
    assert_non_null(key);
    return key;
}

static int group_setup(void **state)
{
    (void)state;
    g.p256 = EVP_EC_gen("P-256");
    g.p384 = EVP_EC_gen("P-384");
    g.p521 = EVP_EC_gen("P-521");
    g.p521_other = EVP_EC_gen("P-521");
    g.rsa2048 = gen_rsa(2048);
    g.rsa3072 = gen_rsa(3072);
    g.rsa2048_other = gen_rsa(2048);
    return g.p256 && g.p384 && g.p521 && g.p521_other &&
                   ca_fixture_tmpdir(g.dir, sizeof(g.dir), "test-jwe") == 0
               ? 0
               : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p256,    g.p384,    g.p521,         g.p521_other,
                        g.rsa2048, g.rsa3072, g.rsa2048_other};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    return ca_fixture_rmtree(g.dir);
}

/* The public half of a key, as a recipient would receive it. */
static EVP_PKEY *public_only(const EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    assert_true(len > 0);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, len);
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

static uint8_t *b64url_member(const json_t *obj, const char *name, size_t *len)
{
    const char *text = json_string_value(json_object_get(obj, name));
    assert_non_null(text);
    uint8_t *out = NULL;
    assert_int_equal(jwe_b64url_decode(text, strlen(text), &out, len), VTPMCA_OK);
    return out;
}

static void set_b64url_member(json_t *obj, const char *name, const uint8_t *data, size_t len)
{
    char *text = NULL;
    assert_int_equal(vt_b64_encode_alloc(data, len, VT_B64_URL_NOPAD, &text), VTPMCA_OK);
    assert_int_equal(json_object_set_new(obj, name, json_string(text)), 0);
    free(text);
}

/* A copy of jwe with one bit of a binary member flipped. */
static json_t *flip_bit(const json_t *jwe, const char *member, size_t byte_index)
{
    json_t *copy = json_deep_copy(jwe);
    size_t len = 0;
    uint8_t *data = b64url_member(copy, member, &len);
    assert_true(byte_index < len);
    data[byte_index] ^= 0x01;
    set_b64url_member(copy, member, data, len);
    free(data);
    return copy;
}

static json_t *with_string(const json_t *jwe, const char *member, const char *value)
{
    json_t *copy = json_deep_copy(jwe);
    assert_int_equal(json_object_set_new(copy, member, json_string(value)), 0);
    return copy;
}

static json_t *with_protected_text(const json_t *jwe, const char *header_json)
{
    char *b64 = NULL;
    assert_int_equal(vt_b64_encode_alloc((const uint8_t *)header_json, strlen(header_json),
                                         VT_B64_URL_NOPAD, &b64),
                     VTPMCA_OK);
    json_t *copy = with_string(jwe, "protected", b64);
    free(b64);
    return copy;
}

static char *protected_text(const json_t *jwe)
{
    size_t len = 0;
    uint8_t *bytes = b64url_member(jwe, "protected", &len);
    char *text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, bytes, len);
    text[len] = '\0';
    free(bytes);
    return text;
}

static void fill_pattern(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
}

/* Encrypts to the public half of key, checks the output shape, decrypts with key. */
static void roundtrip(EVP_PKEY *key, size_t secret_len, size_t expect_encrypted_key_len)
{
    uint8_t secret[JWE_MAX_SECRET], out[JWE_MAX_SECRET];
    fill_pattern(secret, secret_len);
    EVP_PKEY *pub = public_only(key);
    json_t *jwe = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_encrypt(pub, secret, secret_len, NULL, &jwe, &diag), VTPMCA_OK);
    assert_int_equal(json_object_size(jwe), 5);
    const char *members[] = {"protected", "encrypted_key", "iv", "ciphertext", "tag"};
    for (size_t i = 0; i < 5; i++) {
        const char *text = json_string_value(json_object_get(jwe, members[i]));
        assert_non_null(text);
        assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-_"),
                         strlen(text));
    }
    size_t len = 0;
    free(b64url_member(jwe, "iv", &len));
    assert_int_equal(len, 12);
    free(b64url_member(jwe, "tag", &len));
    assert_int_equal(len, 16);
    free(b64url_member(jwe, "ciphertext", &len));
    assert_int_equal(len, secret_len);
    free(b64url_member(jwe, "encrypted_key", &len));
    assert_int_equal(len, expect_encrypted_key_len);

    size_t out_len = 0;
    assert_int_equal(jwe_decrypt(key, jwe, out, sizeof(out), &out_len, &diag), VTPMCA_OK);
    assert_int_equal(out_len, secret_len);
    assert_memory_equal(out, secret, secret_len);
    /* A public key cannot decrypt. */
    assert_int_not_equal(jwe_decrypt(pub, jwe, out, sizeof(out), &out_len, &diag), VTPMCA_OK);
    json_decref(jwe);
    EVP_PKEY_free(pub);
}

static void expect_decrypt_fails(const EVP_PKEY *key, const json_t *jwe, vtpmca_err expect,
                                 const char *diag_part)
{
    uint8_t out[JWE_MAX_SECRET];
    memset(out, 0xaa, sizeof(out));
    size_t out_len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_decrypt(key, jwe, out, sizeof(out), &out_len, &diag), expect);
    if (diag_part != NULL && strstr(diag.msg, diag_part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, diag_part);
    /* Nothing of a half-decrypted secret is left behind. */
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0);
}

static json_t *load_json(const char *text)
{
    json_error_t err;
    json_t *value = json_loads(text, 0, &err);
    assert_non_null(value);
    return value;
}

static vtpmca_err import_jwk_text(const char *text, jwe_jwk_format format, EVP_PKEY **out,
                                  vtpmca_diag *diag)
{
    json_t *jwk = load_json(text);
    vtpmca_err err = jwe_pubkey_from_jwk(jwk, format, out, diag);
    json_decref(jwk);
    return err;
}

static void write_pem(const char *name, const EVP_PKEY *key, int private_part, char *path,
                      size_t path_size)
{
    snprintf(path, path_size, "%s/%s", g.dir, name);
    BIO *bio = BIO_new_file(path, "w");
    assert_non_null(bio);
    int ok = private_part ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, key);
    assert_int_equal(ok, 1);
    BIO_free(bio);
}

static uint8_t *read_file(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g.dir, name);
    uint8_t *data = NULL;
    assert_int_equal(vt_file_read(path, 1 << 20, &data, len, NULL), VTPMCA_OK);
    return data;
}

static void write_file(const char *name, const uint8_t *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g.dir, name);
    assert_int_equal(vt_file_write_atomic(path, data, len, 0600, NULL), VTPMCA_OK);
}

static int have_openssl_cli(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* AES-256-GCM decryption written directly against EVP, independent of jwe.c. */
static int independent_gcm_decrypt(const uint8_t cek[32], const json_t *jwe, const char *aad,
                                   uint8_t *out, size_t *out_len)
{
    size_t iv_len = 0, ct_len = 0, tag_len = 0;
    uint8_t *iv = b64url_member(jwe, "iv", &iv_len);
    uint8_t *ct = b64url_member(jwe, "ciphertext", &ct_len);
    uint8_t *tag = b64url_member(jwe, "tag", &tag_len);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    int ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, cek, iv) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
             EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)tag_len, tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    *out_len = (size_t)(n + fin);
    free(iv);
    free(ct);
    free(tag);
    return ok;
}

/* ---- RFC test vectors ---- */

/* RFC 7518 appendix C: ECDH-ES with A128GCM, apu "Alice", apv "Bob". */
static const char *const rfc7518_alice_epk =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0\","
    "\"y\":\"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps\"}";
static const uint8_t rfc7518_z[32] = {158, 86,  217, 29,  129, 113, 53,  211, 114, 131, 66,
                                      131, 191, 132, 38,  156, 251, 49,  110, 163, 218, 128,
                                      106, 72,  246, 218, 167, 121, 140, 254, 144, 196};

static void test_concat_kdf_rfc7518_appendix_c(void **state)
{
    (void)state;
    uint8_t key[16];
    assert_int_equal(jwe_concat_kdf(rfc7518_z, sizeof(rfc7518_z), "A128GCM",
                                    (const uint8_t *)"Alice", 5, (const uint8_t *)"Bob", 3, key,
                                    sizeof(key), NULL),
                     VTPMCA_OK);
    const uint8_t expect[16] = {86, 170, 141, 234, 248, 35,  109, 32,
                                92, 34,  40,  205, 113, 167, 16,  26};
    assert_memory_equal(key, expect, sizeof(expect));
    char *text = NULL;
    assert_int_equal(vt_b64_encode_alloc(key, sizeof(key), VT_B64_URL_NOPAD, &text), VTPMCA_OK);
    assert_string_equal(text, "VqqN6vgjbSBcIijNcacQGg");
    free(text);

    /* The Z of the appendix is the ECDH of Bob's key with Alice's epk as imported here. */
    EVP_PKEY *alice = NULL;
    assert_int_equal(import_jwk_text(rfc7518_alice_epk, JWE_JWK_RFC7517, &alice, NULL), VTPMCA_OK);
    /* Bob's private key, straight from the appendix's JWK members. */
    size_t d_len = 0, x_len = 0, y_len = 0;
    uint8_t *bob_d = NULL, *bob_x = NULL, *bob_y = NULL;
    const char *d_b64 = "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw";
    const char *x_b64 = "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ";
    const char *y_b64 = "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck";
    assert_int_equal(jwe_b64url_decode(d_b64, strlen(d_b64), &bob_d, &d_len), VTPMCA_OK);
    assert_int_equal(jwe_b64url_decode(x_b64, strlen(x_b64), &bob_x, &x_len), VTPMCA_OK);
    assert_int_equal(jwe_b64url_decode(y_b64, strlen(y_b64), &bob_y, &y_len), VTPMCA_OK);
    assert_int_equal(d_len + x_len + y_len, 96);
    uint8_t bob_pub[65] = {0x04};
    memcpy(bob_pub + 1, bob_x, 32);
    memcpy(bob_pub + 33, bob_y, 32);
    BIGNUM *d = BN_bin2bn(bob_d, (int)d_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0),
                     1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d), 1);
    assert_int_equal(
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, bob_pub, sizeof(bob_pub)),
        1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *bob = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(pctx, &bob, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(d);
    free(bob_d);
    free(bob_x);
    free(bob_y);
    /* The private scalar really belongs to the public point. */
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, bob, NULL);
    assert_int_equal(EVP_PKEY_pairwise_check(pctx), 1);
    EVP_PKEY_CTX_free(pctx);
    uint8_t z[32];
    size_t z_len = sizeof(z);
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, bob, NULL);
    assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(pctx, alice), 1);
    assert_int_equal(EVP_PKEY_derive(pctx, z, &z_len), 1);
    EVP_PKEY_CTX_free(pctx);
    assert_int_equal(z_len, 32);
    assert_memory_equal(z, rfc7518_z, 32);
    EVP_PKEY_free(alice);
    EVP_PKEY_free(bob);
}

static void test_concat_kdf_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t out[32], big[600] = {0};
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_concat_kdf(NULL, 32, "A", NULL, 0, NULL, 0, out, 32, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_concat_kdf(rfc7518_z, 32, "A", NULL, 0, NULL, 0, out, 0, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_concat_kdf(rfc7518_z, 32, "A", NULL, 5, NULL, 0, out, 32, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_concat_kdf(rfc7518_z, 32, "A", big, sizeof(big), NULL, 0, out, 32, &diag),
                     VTPMCA_ERR_LIMIT);
    /* The SuppPubInfo length changes the output, not just its truncation. */
    uint8_t k16[16], k32[32];
    assert_int_equal(jwe_concat_kdf(rfc7518_z, 32, "A", NULL, 0, NULL, 0, k16, 16, NULL),
                     VTPMCA_OK);
    assert_int_equal(jwe_concat_kdf(rfc7518_z, 32, "A", NULL, 0, NULL, 0, k32, 32, NULL),
                     VTPMCA_OK);
    assert_memory_not_equal(k16, k32, 16);
}

/* RFC 3394 section 4.6: 256 bits of key data wrapped with a 256-bit KEK. */
static void test_aes_kw_rfc3394_4_6(void **state)
{
    (void)state;
    uint8_t kek[32], data[32], expect[40], wrapped[40], unwrapped[32];
    assert_int_equal(vt_hex_decode_fixed("000102030405060708090a0b0c0d0e0f101112131415161718191a"
                                         "1b1c1d1e1f",
                                         kek, sizeof(kek)),
                     VTPMCA_OK);
    assert_int_equal(vt_hex_decode_fixed("00112233445566778899aabbccddeeff00010203040506070809"
                                         "0a0b0c0d0e0f",
                                         data, sizeof(data)),
                     VTPMCA_OK);
    assert_int_equal(vt_hex_decode_fixed("28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e7"
                                         "1a99f43bfb988b9b7a02dd21",
                                         expect, sizeof(expect)),
                     VTPMCA_OK);
    size_t len = 0;
    assert_int_equal(jwe_aes256_kw_wrap(kek, data, 32, wrapped, sizeof(wrapped), &len, NULL),
                     VTPMCA_OK);
    assert_int_equal(len, 40);
    assert_memory_equal(wrapped, expect, 40);
    assert_int_equal(
        jwe_aes256_kw_unwrap(kek, expect, 40, unwrapped, sizeof(unwrapped), &len, NULL), VTPMCA_OK);
    assert_int_equal(len, 32);
    assert_memory_equal(unwrapped, data, 32);

    vtpmca_diag diag = {{0}};
    /* Integrity check: a changed byte or another KEK fails. */
    expect[17] ^= 0x80;
    assert_int_equal(
        jwe_aes256_kw_unwrap(kek, expect, 40, unwrapped, sizeof(unwrapped), &len, &diag),
        VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "integrity"));
    expect[17] ^= 0x80;
    kek[0] ^= 1;
    assert_int_equal(
        jwe_aes256_kw_unwrap(kek, expect, 40, unwrapped, sizeof(unwrapped), &len, &diag),
        VTPMCA_ERR_CRYPTO);
    /* Lengths: multiple of 8, at least two blocks, output room. */
    assert_int_equal(jwe_aes256_kw_wrap(kek, data, 12, wrapped, sizeof(wrapped), &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_aes256_kw_wrap(kek, data, 8, wrapped, sizeof(wrapped), &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_aes256_kw_wrap(kek, data, 32, wrapped, 39, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_aes256_kw_unwrap(kek, expect, 16, unwrapped, 32, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- round trips and format ---- */

static void test_roundtrip_ec(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p256, g.p384, g.p521};
    for (size_t i = 0; i < 3; i++) {
        roundtrip(keys[i], 32, 40);
        roundtrip(keys[i], 1, 40);
        roundtrip(keys[i], JWE_MAX_SECRET, 40);
    }
}

static void test_roundtrip_rsa(void **state)
{
    (void)state;
    roundtrip(g.rsa2048, 32, 256);
    roundtrip(g.rsa3072, 32, 384);
    roundtrip(g.rsa3072, 1000, 384);

    json_t *jwe = NULL;
    const uint8_t secret[32] = {1};
    assert_int_equal(jwe_encrypt(g.rsa2048, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    char *text = protected_text(jwe);
    assert_string_equal(text, "{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256GCM\"}");
    free(text);
    jwe_alg alg = 0;
    EVP_PKEY *epk = (EVP_PKEY *)1;
    assert_int_equal(jwe_get_epk(jwe, &alg, &epk, NULL), VTPMCA_OK);
    assert_int_equal(alg, JWE_ALG_RSA_OAEP_256);
    assert_null(epk);
    json_decref(jwe);
}

static void check_header_shape(EVP_PKEY *recipient, const char *crv, int coord_chars)
{
    jwe_ctx *ctx = NULL;
    assert_int_equal(jwe_prepare(recipient, &ctx, NULL), VTPMCA_OK);
    assert_int_equal(jwe_ctx_alg(ctx), JWE_ALG_ECDH_ES_A256KW);
    const uint8_t secret[32] = {0};
    json_t *jwe = NULL;
    const EVP_PKEY *epk = jwe_ctx_epk(ctx);
    assert_non_null(epk);
    json_t *epk_jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(epk, JWE_JWK_RFC7517, &epk_jwk, NULL), VTPMCA_OK);
    char expect[512];
    snprintf(expect, sizeof(expect),
             "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{\"crv\":\"%s\","
             "\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}}",
             crv, json_string_value(json_object_get(epk_jwk, "x")),
             json_string_value(json_object_get(epk_jwk, "y")));
    char *protected_copy = strdup(jwe_ctx_protected(ctx));
    assert_int_equal(jwe_finish(ctx, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    assert_string_equal(json_string_value(json_object_get(jwe, "protected")), protected_copy);
    char *text = protected_text(jwe);
    assert_string_equal(text, expect);

    char pattern[256];
    snprintf(pattern, sizeof(pattern),
             "^\\{\"alg\":\"ECDH-ES\\+A256KW\",\"enc\":\"A256GCM\",\"epk\":\\{\"crv\":\"%s\","
             "\"kty\":\"EC\",\"x\":\"[A-Za-z0-9_-]{%d}\",\"y\":\"[A-Za-z0-9_-]{%d}\"\\}\\}$",
             crv, coord_chars, coord_chars);
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regexec(&re, text, 0, NULL, 0), 0);
    regfree(&re);
    free(text);
    free(protected_copy);
    json_decref(epk_jwk);
    json_decref(jwe);
    jwe_ctx_free(ctx);
}

static void test_protected_header_exact(void **state)
{
    (void)state;
    /* P-521: 66-byte coordinates -> 88 base64url characters, whatever their values. */
    for (int i = 0; i < 8; i++)
        check_header_shape(g.p521, "P-521", 88);
    check_header_shape(g.p384, "P-384", 64);
    check_header_shape(g.p256, "P-256", 43);
}

static void test_unprotected_header_member(void **state)
{
    (void)state;
    json_t *header = load_json("{\"kbs-binding\":{\"v\":1}}");
    const uint8_t secret[32] = {9};
    json_t *jwe = NULL;
    assert_int_equal(jwe_encrypt(g.p384, secret, sizeof(secret), header, &jwe, NULL), VTPMCA_OK);
    assert_ptr_equal(json_object_get(jwe, "header"), header);
    assert_int_equal(json_object_size(jwe), 6);
    uint8_t out[64];
    size_t out_len = 0;
    assert_int_equal(jwe_decrypt(g.p384, jwe, out, sizeof(out), &out_len, NULL), VTPMCA_OK);
    assert_memory_equal(out, secret, 32);
    json_decref(jwe);
    /* The caller still owns its reference. */
    assert_int_equal(header->refcount, 1);

    /* Header parameters may not repeat protected ones, and must be an object. */
    vtpmca_diag diag = {{0}};
    json_t *bad = load_json("{\"alg\":\"none\"}");
    assert_int_equal(jwe_encrypt(g.p384, secret, sizeof(secret), bad, &jwe, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(bad);
    bad = json_string("x");
    assert_int_equal(jwe_encrypt(g.p384, secret, sizeof(secret), bad, &jwe, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(bad);
    json_decref(header);
}

/* ---- rejection paths ---- */

static void test_tampering_fails(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p521, g.rsa2048};
    for (size_t k = 0; k < 2; k++) {
        uint8_t secret[32];
        fill_pattern(secret, sizeof(secret));
        json_t *jwe = NULL;
        assert_int_equal(jwe_encrypt(keys[k], secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
        const char *members[] = {"ciphertext", "tag", "encrypted_key", "iv"};
        for (size_t m = 0; m < 4; m++) {
            json_t *bad = flip_bit(jwe, members[m], 0);
            expect_decrypt_fails(keys[k], bad, VTPMCA_ERR_CRYPTO, NULL);
            json_decref(bad);
            bad = flip_bit(jwe, members[m], 5);
            expect_decrypt_fails(keys[k], bad, VTPMCA_ERR_CRYPTO, NULL);
            json_decref(bad);
        }
        json_decref(jwe);
    }
}

/* The AAD is the protected member's text: changing it (even to an equivalent JSON
 * spelling) breaks decryption, and the raw GCM check proves the tag covers it. */
static void test_aad_binding(void **state)
{
    (void)state;
    const uint8_t secret[32] = {7, 7, 7};
    jwe_ctx *ctx = NULL;
    assert_int_equal(jwe_prepare(g.p256, &ctx, NULL), VTPMCA_OK);
    json_t *jwe = NULL;
    assert_int_equal(jwe_finish(ctx, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    jwe_ctx_free(ctx);

    /* Same header with a space: semantically equal JSON, different AAD -> refused. */
    char *text = protected_text(jwe);
    char spaced[512];
    snprintf(spaced, sizeof(spaced), "{ %s", text + 1);
    json_t *bad = with_protected_text(jwe, spaced);
    expect_decrypt_fails(g.p256, bad, VTPMCA_ERR_PARSE, "canonical");
    json_decref(bad);

    /* Recover the CEK independently and run GCM with the real and a changed AAD. */
    EVP_PKEY *epk = NULL;
    jwe_alg alg = 0;
    assert_int_equal(jwe_get_epk(jwe, &alg, &epk, NULL), VTPMCA_OK);
    uint8_t z[32], kek[32], cek[32], out[64];
    size_t z_len = sizeof(z), len = 0;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, g.p256, NULL);
    assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(pctx, epk), 1);
    assert_int_equal(EVP_PKEY_derive(pctx, z, &z_len), 1);
    EVP_PKEY_CTX_free(pctx);
    assert_int_equal(
        jwe_concat_kdf(z, z_len, "ECDH-ES+A256KW", NULL, 0, NULL, 0, kek, sizeof(kek), NULL),
        VTPMCA_OK);
    size_t ek_len = 0;
    uint8_t *ek = b64url_member(jwe, "encrypted_key", &ek_len);
    assert_int_equal(jwe_aes256_kw_unwrap(kek, ek, ek_len, cek, sizeof(cek), &len, NULL),
                     VTPMCA_OK);
    free(ek);
    const char *aad = json_string_value(json_object_get(jwe, "protected"));
    assert_true(independent_gcm_decrypt(cek, jwe, aad, out, &len));
    assert_int_equal(len, 32);
    assert_memory_equal(out, secret, 32);
    char *changed_aad = strdup(aad);
    changed_aad[3] = changed_aad[3] == 'A' ? 'B' : 'A';
    assert_false(independent_gcm_decrypt(cek, jwe, changed_aad, out, &len));
    /* The base64url of the spaced header is also a different AAD. */
    bad = with_protected_text(jwe, spaced);
    assert_false(independent_gcm_decrypt(
        cek, jwe, json_string_value(json_object_get(bad, "protected")), out, &len));
    json_decref(bad);
    free(changed_aad);
    free(text);
    EVP_PKEY_free(epk);
    json_decref(jwe);
}

static void test_malformed_jwe_refused(void **state)
{
    (void)state;
    const uint8_t secret[32] = {3};
    json_t *jwe = NULL;
    assert_int_equal(jwe_encrypt(g.p521, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    json_t *bad;

    bad = json_deep_copy(jwe);
    json_object_set_new(bad, "aad", json_string("eA"));
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "unexpected JWE member");
    json_decref(bad);

    bad = json_deep_copy(jwe);
    json_object_del(bad, "tag");
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "\"tag\"");
    json_decref(bad);

    bad = json_deep_copy(jwe);
    json_object_set_new(bad, "iv", json_integer(5));
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "\"iv\"");
    json_decref(bad);

    /* Padding and the standard alphabet are not base64url-without-padding. */
    char padded[64];
    snprintf(padded, sizeof(padded), "%s==", json_string_value(json_object_get(jwe, "tag")));
    bad = with_string(jwe, "tag", padded);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "base64url");
    json_decref(bad);
    bad = with_string(jwe, "iv", "AAAAAAAAAAAA+/AA");
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "base64url");
    json_decref(bad);

    /* Wrong lengths. */
    const uint8_t short_iv[8] = {0};
    bad = json_deep_copy(jwe);
    set_b64url_member(bad, "iv", short_iv, sizeof(short_iv));
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "iv must be");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    set_b64url_member(bad, "encrypted_key", short_iv, sizeof(short_iv));
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "encrypted_key");
    json_decref(bad);
    bad = with_string(jwe, "ciphertext", "");
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "ciphertext");
    json_decref(bad);

    /* Unprotected header clashes or is not an object. */
    bad = json_deep_copy(jwe);
    json_object_set_new(bad, "header", load_json("{\"enc\":\"A128GCM\"}"));
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "header");
    json_decref(bad);
    bad = json_deep_copy(jwe);
    json_object_set_new(bad, "header", json_array());
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "header");
    json_decref(bad);

    /* Protected headers: other algorithms, other member order, extra members, junk. */
    char *text = protected_text(jwe);
    char header[512];
    const char *epk = strstr(text, "\"epk\"");
    assert_non_null(epk);
    snprintf(header, sizeof(header), "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",%s", epk);
    bad = with_protected_text(jwe, header);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_UNSUPPORTED, "alg");
    json_decref(bad);
    snprintf(header, sizeof(header), "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A128GCM\",%s", epk);
    bad = with_protected_text(jwe, header);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_UNSUPPORTED, "enc");
    json_decref(bad);
    snprintf(header, sizeof(header), "{\"enc\":\"A256GCM\",\"alg\":\"ECDH-ES+A256KW\",%s", epk);
    bad = with_protected_text(jwe, header);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "canonical");
    json_decref(bad);
    snprintf(header, sizeof(header), "%.*s,\"kid\":\"1\"}", (int)strlen(text) - 1, text);
    bad = with_protected_text(jwe, header);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "canonical");
    json_decref(bad);
    bad = with_protected_text(jwe, "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\"}");
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "epk");
    json_decref(bad);
    bad = with_protected_text(jwe, "{\"alg\": \"RSA-OAEP-256\",\"enc\":\"A256GCM\"}");
    expect_decrypt_fails(g.rsa2048, bad, VTPMCA_ERR_PARSE, "canonical");
    json_decref(bad);
    bad = with_protected_text(jwe, "not json");
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "protected");
    json_decref(bad);
    /* An epk that is not on the curve. */
    json_t *header_json = load_json(text);
    json_t *epk_obj = json_object_get(header_json, "epk");
    const char *x = json_string_value(json_object_get(epk_obj, "x"));
    char x_bad[128];
    snprintf(x_bad, sizeof(x_bad), "%s", x);
    x_bad[40] = x_bad[40] == 'A' ? 'B' : 'A';
    json_object_set_new(epk_obj, "x", json_string(x_bad));
    char *dumped = json_dumps(header_json, JSON_COMPACT);
    bad = with_protected_text(jwe, dumped);
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_CRYPTO, "point");
    json_decref(bad);
    free(dumped);
    json_decref(header_json);
    free(text);

    /* Output buffer too small. */
    uint8_t out[16];
    size_t out_len = 0;
    assert_int_equal(jwe_decrypt(g.p521, jwe, out, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_decrypt(g.p521, NULL, out, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(jwe);
    bad = json_array();
    expect_decrypt_fails(g.p521, bad, VTPMCA_ERR_PARSE, "not a JSON object");
    json_decref(bad);
}

static void test_wrong_recipient_fails(void **state)
{
    (void)state;
    const uint8_t secret[32] = {5};
    json_t *ec = NULL, *rsa = NULL;
    assert_int_equal(jwe_encrypt(g.p521, secret, sizeof(secret), NULL, &ec, NULL), VTPMCA_OK);
    assert_int_equal(jwe_encrypt(g.rsa2048, secret, sizeof(secret), NULL, &rsa, NULL), VTPMCA_OK);
    expect_decrypt_fails(g.p521_other, ec, VTPMCA_ERR_CRYPTO, "unwrap");
    expect_decrypt_fails(g.p384, ec, VTPMCA_ERR_CRYPTO, "P-521");
    expect_decrypt_fails(g.rsa2048, ec, VTPMCA_ERR_CRYPTO, "EC recipient");
    expect_decrypt_fails(g.rsa2048_other, rsa, VTPMCA_ERR_CRYPTO, "RSA-OAEP-256");
    expect_decrypt_fails(g.rsa3072, rsa, VTPMCA_ERR_PARSE, "modulus");
    expect_decrypt_fails(g.p521, rsa, VTPMCA_ERR_CRYPTO, "RSA recipient");
    json_decref(ec);
    json_decref(rsa);
}

static void test_api_misuse(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t secret[JWE_MAX_SECRET + 1] = {0};
    json_t *jwe = NULL;
    jwe_ctx *ctx = NULL;
    assert_int_equal(jwe_prepare(NULL, &ctx, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_prepare(g.p256, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_encrypt(g.p256, secret, 0, NULL, &jwe, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_encrypt(g.p256, secret, JWE_MAX_SECRET + 1, NULL, &jwe, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(jwe);

    /* Unsupported recipients: another curve, another key type, a small RSA key. */
    EVP_PKEY *k256 = EVP_EC_gen("secp256k1");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
    assert_int_equal(jwe_prepare(k256, &ctx, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(jwe_prepare(ed, &ctx, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(jwe_prepare(rsa1024, &ctx, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "1024"));
    assert_null(ctx);
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    assert_int_equal(jwe_ec_point_encode(k256, point, &point_len, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(jwe_ec_point_encode(g.rsa2048, point, &point_len, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_null(jwe_ec_curve_name(k256));
    assert_null(jwe_ec_curve_name(NULL));
    assert_string_equal(jwe_ec_curve_name(g.p384), "P-384");
    EVP_PKEY_free(k256);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa1024);

    /* A context encrypts one secret only. */
    assert_int_equal(jwe_prepare(g.p256, &ctx, &diag), VTPMCA_OK);
    assert_int_equal(jwe_finish(ctx, secret, 32, NULL, &jwe, &diag), VTPMCA_OK);
    json_t *again = NULL;
    assert_int_equal(jwe_finish(ctx, secret, 32, NULL, &again, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(again);
    jwe_ctx_free(ctx);
    json_decref(jwe);
    jwe_ctx_free(NULL);
    assert_null(jwe_ctx_epk(NULL));
    assert_null(jwe_ctx_protected(NULL));

    /* RSA contexts have no epk. */
    assert_int_equal(jwe_prepare(g.rsa2048, &ctx, &diag), VTPMCA_OK);
    assert_int_equal(jwe_ctx_alg(ctx), JWE_ALG_RSA_OAEP_256);
    assert_null(jwe_ctx_epk(ctx));
    jwe_ctx_free(ctx);
}

/* Member names of a JSON object, in order, joined by commas. */
static void member_list(const json_t *obj, char *out, size_t size)
{
    out[0] = '\0';
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)obj, name, value)
    {
        strncat(out, name, size - strlen(out) - 1);
        strncat(out, ",", size - strlen(out) - 1);
    }
}

/* jwe_finish_text writes what jwe_finish builds: the same members in the same order, compact
 * text identical to json_dumps of the parsed object, decrypting to the secret, on every
 * recipient type, with and without an unprotected header. */
static void test_finish_text(void **state)
{
    (void)state;
    EVP_PKEY *recipients[] = {g.p256, g.p384, g.p521, g.rsa2048};
    const char *header_text = "{\"kbs-binding\":{\"alg\":\"ES384\",\"v\":1}}";
    uint8_t secret[100];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)(i * 7 + 1);
    for (size_t k = 0; k < sizeof(recipients) / sizeof(recipients[0]); k++) {
        for (int with_header = 0; with_header < 2; with_header++) {
            vtpmca_diag diag = {{0}};
            jwe_ctx *ctx = NULL;
            assert_int_equal(jwe_prepare(recipients[k], &ctx, &diag), VTPMCA_OK);
            char *protected_copy = strdup(jwe_ctx_protected(ctx));
            char *text = NULL;
            size_t len = 0;
            assert_int_equal(jwe_finish_text(ctx, secret, sizeof(secret),
                                             with_header ? header_text : NULL, &text, &len, &diag),
                             VTPMCA_OK);
            assert_int_equal(strlen(text), len);
            json_t *parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
            assert_non_null(parsed);
            char *dumped = json_dumps(parsed, JSON_COMPACT);
            assert_string_equal(dumped, text);
            free(dumped);
            assert_string_equal(json_string_value(json_object_get(parsed, "protected")),
                                protected_copy);
            uint8_t out[JWE_MAX_SECRET];
            size_t out_len = 0;
            assert_int_equal(jwe_decrypt(recipients[k], parsed, out, sizeof(out), &out_len, &diag),
                             VTPMCA_OK);
            assert_int_equal(out_len, sizeof(secret));
            assert_memory_equal(out, secret, sizeof(secret));
            /* The same JWE made by jwe_finish (the json_t form) has the same members, in the
             * same order, and the same kinds of values. */
            json_t *header = with_header ? load_json(header_text) : NULL;
            json_t *built = NULL;
            assert_int_equal(
                jwe_encrypt(recipients[k], secret, sizeof(secret), header, &built, &diag),
                VTPMCA_OK);
            char text_members[128], built_members[128];
            member_list(parsed, text_members, sizeof(text_members));
            member_list(built, built_members, sizeof(built_members));
            assert_string_equal(text_members,
                                with_header ? "protected,encrypted_key,iv,ciphertext,tag,header,"
                                            : "protected,encrypted_key,iv,ciphertext,tag,");
            assert_string_equal(text_members, built_members);
            if (with_header)
                assert_true(json_equal(json_object_get(parsed, JWE_UNPROTECTED_HEADER), header));
            const char *name;
            json_t *value;
            json_object_foreach(built, name, value)
            {
                json_t *other = json_object_get(parsed, name);
                assert_int_equal(json_typeof(value), json_typeof(other));
                if (json_is_string(value)) /* the same lengths: same sizes, same encoding */
                    assert_int_equal(json_string_length(value), json_string_length(other));
            }
            json_decref(built);
            json_decref(header);
            json_decref(parsed);
            free(text);
            free(protected_copy);
            jwe_ctx_free(ctx);
        }
    }
}

static void test_finish_text_rejects(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t secret[JWE_MAX_SECRET + 1] = {0};
    char *text = (char *)1;
    size_t len = 1;
    jwe_ctx *ctx = NULL;
    assert_int_equal(jwe_prepare(g.p384, &ctx, &diag), VTPMCA_OK);
    assert_int_equal(jwe_finish_text(NULL, secret, 32, NULL, &text, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_finish_text(ctx, NULL, 32, NULL, &text, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_finish_text(ctx, secret, 0, NULL, &text, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_finish_text(ctx, secret, JWE_MAX_SECRET + 1, NULL, &text, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_finish_text(ctx, secret, 32, NULL, NULL, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_finish_text(ctx, secret, 32, NULL, &text, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* The header must be an object's text. */
    const char *bad_headers[] = {"", "{", "}", "\"x\"", "[1]", "1", "{\"a\":1} "};
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        assert_int_equal(jwe_finish_text(ctx, secret, 32, bad_headers[i], &text, &len, &diag),
                         VTPMCA_ERR_INVALID_ARG);
        assert_non_null(strstr(diag.msg, "header"));
    }
    /* None of those touched the output or used the context up. */
    assert_ptr_equal(text, (char *)1);
    assert_int_equal(len, 1);
    assert_int_equal(jwe_finish_text(ctx, secret, 32, "{}", &text, &len, &diag), VTPMCA_OK);
    json_t *jwe = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(jwe);
    assert_int_equal(json_object_size(json_object_get(jwe, JWE_UNPROTECTED_HEADER)), 0);
    uint8_t out[64];
    size_t out_len = 0;
    assert_int_equal(jwe_decrypt(g.p384, jwe, out, sizeof(out), &out_len, &diag), VTPMCA_OK);
    json_decref(jwe);
    free(text);
    /* One secret per context, in either form. */
    char *again = NULL;
    assert_int_equal(jwe_finish_text(ctx, secret, 32, NULL, &again, &len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    json_t *again_json = NULL;
    assert_int_equal(jwe_finish(ctx, secret, 32, NULL, &again_json, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(again);
    assert_null(again_json);
    jwe_ctx_free(ctx);
}

static void test_ec_point_encode(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p256, g.p384, g.p521};
    const size_t lens[] = {65, 97, 133};
    for (size_t i = 0; i < 3; i++) {
        uint8_t point[JWE_EC_POINT_MAX], ossl[JWE_EC_POINT_MAX];
        size_t len = 0, ossl_len = 0;
        assert_int_equal(jwe_ec_point_encode(keys[i], point, &len, NULL), VTPMCA_OK);
        assert_int_equal(len, lens[i]);
        /* OpenSSL's own encoding of a generated key is uncompressed. */
        assert_int_equal(EVP_PKEY_get_octet_string_param(keys[i], OSSL_PKEY_PARAM_PUB_KEY, ossl,
                                                         sizeof(ossl), &ossl_len),
                         1);
        assert_int_equal(ossl_len, len);
        assert_memory_equal(point, ossl, len);
    }
}

/* The point-based helpers give the same bytes and JWKs as the key-based ones. */
static void test_point_helpers(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p256, g.p384, g.p521};
    for (size_t i = 0; i < 3; i++) {
        uint8_t point[JWE_EC_POINT_MAX], imported[JWE_EC_POINT_MAX];
        size_t len = 0, imported_len = 0;
        assert_int_equal(jwe_ec_point_encode(keys[i], point, &len, NULL), VTPMCA_OK);
        assert_string_equal(jwe_ec_point_curve_name(point, len), jwe_ec_curve_name(keys[i]));
        assert_null(jwe_ec_point_curve_name(point, len - 1));
        json_t *from_key = NULL, *from_point = NULL;
        assert_int_equal(jwe_pubkey_to_jwk(keys[i], JWE_JWK_RFC7517, &from_key, NULL), VTPMCA_OK);
        assert_int_equal(jwe_ec_jwk_from_point(point, len, JWE_JWK_RFC7517, &from_point, NULL),
                         VTPMCA_OK);
        assert_true(json_equal(from_key, from_point));
        json_decref(from_point);
        assert_int_equal(jwe_ec_jwk_from_point(point, len, JWE_JWK_SVSM, &from_point, NULL),
                         VTPMCA_OK);
        assert_non_null(json_object_get(from_point, "x"));
        assert_null(json_object_get(from_point, "crv"));
        json_decref(from_point);
        /* Import returns the point it imported: the key's own encoding. */
        EVP_PKEY *back = NULL;
        assert_int_equal(jwe_pubkey_from_jwk_point(from_key, JWE_JWK_RFC7517, &back, imported,
                                                   &imported_len, NULL),
                         VTPMCA_OK);
        assert_int_equal(imported_len, len);
        assert_memory_equal(imported, point, len);
        assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
        EVP_PKEY_free(back);
        json_decref(from_key);
        /* A prepared JWE exposes its epk's point, equal to the epk's encoding. */
        jwe_ctx *ctx = NULL;
        assert_int_equal(jwe_prepare(keys[i], &ctx, NULL), VTPMCA_OK);
        size_t epk_len = 0;
        const uint8_t *epk_point = jwe_ctx_epk_point(ctx, &epk_len);
        assert_non_null(epk_point);
        assert_int_equal(jwe_ec_point_encode(jwe_ctx_epk(ctx), point, &len, NULL), VTPMCA_OK);
        assert_int_equal(epk_len, len);
        assert_memory_equal(epk_point, point, len);
        jwe_ctx_free(ctx);
    }
    /* RSA: no point, and no epk. */
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.rsa2048, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    EVP_PKEY *rsa = NULL;
    uint8_t point[JWE_EC_POINT_MAX];
    size_t len = 99;
    assert_int_equal(jwe_pubkey_from_jwk_point(jwk, JWE_JWK_RFC7517, &rsa, point, &len, NULL),
                     VTPMCA_OK);
    assert_int_equal(len, 0);
    EVP_PKEY_free(rsa);
    json_decref(jwk);
    jwe_ctx *ctx = NULL;
    assert_int_equal(jwe_prepare(g.rsa2048, &ctx, NULL), VTPMCA_OK);
    assert_null(jwe_ctx_epk_point(ctx, &len));
    assert_int_equal(len, 0);
    jwe_ctx_free(ctx);
    /* Points of other lengths, compressed points and misuse are refused. */
    assert_int_equal(jwe_ec_point_encode(g.p256, point, &len, NULL), VTPMCA_OK);
    json_t *out = NULL;
    assert_int_equal(jwe_ec_jwk_from_point(point, len - 1, JWE_JWK_RFC7517, &out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    point[0] = 0x02;
    assert_null(jwe_ec_point_curve_name(point, len));
    assert_null(jwe_ec_point_curve_name(NULL, len));
    assert_int_equal(jwe_ec_jwk_from_point(point, len, JWE_JWK_RFC7517, &out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(jwe_ec_jwk_from_point(NULL, 0, JWE_JWK_RFC7517, &out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(out);
    assert_int_equal(jwe_pubkey_from_jwk_point(jwk, JWE_JWK_RFC7517, &rsa, point, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- JWK import / export ---- */

static void test_jwk_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.p256, g.p384, g.p521, g.rsa2048, g.rsa3072};
    for (size_t i = 0; i < 5; i++) {
        json_t *jwk = NULL;
        assert_int_equal(jwe_pubkey_to_jwk(keys[i], JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
        EVP_PKEY *back = NULL;
        assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &back, NULL), VTPMCA_OK);
        assert_int_equal(EVP_PKEY_eq(back, keys[i]), 1);
        EVP_PKEY_free(back);
        json_decref(jwk);
    }
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.rsa2048, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    char *text = json_dumps(jwk, JSON_COMPACT);
    const char *prefix = "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"";
    assert_int_equal(strncmp(text, prefix, strlen(prefix)), 0);
    free(text);
    json_decref(jwk);
    /* Extra members a TEE sends (KBS tee-pubkey carries "alg") are ignored. */
    EVP_PKEY *key = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.p521, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    json_object_set_new(jwk, "alg", json_string("ECDH-ES+A256KW"));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, NULL), VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(key, g.p521), 1);
    EVP_PKEY_free(key);
    json_decref(jwk);
}

static void test_jwk_svsm_format(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.p521, JWE_JWK_SVSM, &jwk, NULL), VTPMCA_OK);
    assert_int_equal(json_object_size(jwk), 2);
    const char *x = json_string_value(json_object_get(jwk, "x"));
    assert_int_equal(strlen(x), 88);
    EVP_PKEY *key = NULL;
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_SVSM, &key, &diag), VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(key, g.p521), 1);
    EVP_PKEY_free(key);
    /* Strict RFC 7517 needs kty/crv. */
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, &diag), VTPMCA_ERR_PARSE);
    assert_null(key);
    json_decref(jwk);

    /* P-256 coordinates (32 bytes) need padding in standard base64. */
    assert_int_equal(jwe_pubkey_to_jwk(g.p256, JWE_JWK_SVSM, &jwk, NULL), VTPMCA_OK);
    x = json_string_value(json_object_get(jwk, "x"));
    assert_int_equal(strlen(x), 44);
    assert_int_equal(x[43], '=');
    json_object_set_new(jwk, "kty", json_string("EC"));
    json_object_set_new(jwk, "crv", json_string("P-256"));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_SVSM, &key, &diag), VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(key, g.p256), 1);
    EVP_PKEY_free(key);
    /* The same members are not valid base64url (padding). */
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, &diag), VTPMCA_ERR_PARSE);
    /* Without padding they are not valid SVSM (padded) base64. */
    char unpadded[64];
    snprintf(unpadded, sizeof(unpadded), "%.43s", x);
    json_object_set_new(jwk, "x", json_string(unpadded));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_SVSM, &key, &diag), VTPMCA_ERR_PARSE);
    json_decref(jwk);

    assert_int_equal(jwe_pubkey_to_jwk(g.rsa2048, JWE_JWK_SVSM, &jwk, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(import_jwk_text("{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
                                     JWE_JWK_SVSM, &key, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
}

/* Replaces coordinate `member` of key's JWK by the given bytes. */
static vtpmca_err import_with_coordinate(EVP_PKEY *key, const char *member, const uint8_t *bytes,
                                         size_t len, vtpmca_diag *diag)
{
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(key, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    set_b64url_member(jwk, member, bytes, len);
    EVP_PKEY *out = NULL;
    vtpmca_err err = jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, diag);
    assert_true(err == VTPMCA_OK || out == NULL);
    EVP_PKEY_free(out);
    json_decref(jwk);
    return err;
}

static void test_jwk_invalid_ec_points(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    EVP_PKEY *keys[] = {g.p256, g.p521};
    for (size_t i = 0; i < 2; i++) {
        uint8_t point[JWE_EC_POINT_MAX];
        size_t len = 0;
        assert_int_equal(jwe_ec_point_encode(keys[i], point, &len, NULL), VTPMCA_OK);
        size_t field = (len - 1) / 2;
        uint8_t y[66], zero[66] = {0}, ones[66];
        memcpy(y, point + 1 + field, field);
        /* Off the curve: y + 1 in the last byte. */
        y[field - 1] ^= 0x01;
        assert_int_equal(import_with_coordinate(keys[i], "y", y, field, &diag), VTPMCA_ERR_CRYPTO);
        assert_non_null(strstr(diag.msg, "point"));
        /* Identity / (0,0) is not a point of these curves. */
        json_t *jwk = NULL;
        assert_int_equal(jwe_pubkey_to_jwk(keys[i], JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
        set_b64url_member(jwk, "x", zero, field);
        set_b64url_member(jwk, "y", zero, field);
        EVP_PKEY *out = NULL;
        assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
        assert_null(out);
        json_decref(jwk);
        /* A coordinate at or above the field prime. */
        memset(ones, 0xff, sizeof(ones));
        if (field == 66)
            ones[0] = 0x01; /* P-521: 2^521 - 1 is p itself */
        assert_int_equal(import_with_coordinate(keys[i], "x", ones, field, &diag),
                         VTPMCA_ERR_CRYPTO);
        /* Wrong coordinate lengths: one byte short, one long (leading zero). */
        assert_int_equal(import_with_coordinate(keys[i], "x", point + 2, field - 1, &diag),
                         VTPMCA_ERR_PARSE);
        assert_non_null(strstr(diag.msg, "coordinates must be"));
        uint8_t longer[67] = {0};
        memcpy(longer + 1, point + 1, field);
        assert_int_equal(import_with_coordinate(keys[i], "x", longer, field + 1, &diag),
                         VTPMCA_ERR_PARSE);
    }
    /* Member checks. */
    EVP_PKEY *out = NULL;
    assert_int_equal(
        import_jwk_text("{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}", JWE_JWK_RFC7517, &out, &diag),
        VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "crv"));
    assert_int_equal(import_jwk_text("{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AA\",\"y\":\"AA\"}",
                                     JWE_JWK_RFC7517, &out, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(import_jwk_text("{\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}",
                                     JWE_JWK_RFC7517, &out, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "kty"));
    assert_int_equal(import_jwk_text("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}",
                                     JWE_JWK_RFC7517, &out, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(import_jwk_text("[1]", JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_PARSE);
    /* Private material is refused. */
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.p256, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    json_object_set_new(jwk, "d", json_string("AAAA"));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "private"));
    json_decref(jwk);
    assert_null(out);
    assert_int_equal(jwe_pubkey_from_jwk(NULL, JWE_JWK_RFC7517, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
}

static void test_jwk_invalid_rsa(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    json_t *good = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.rsa2048, JWE_JWK_RFC7517, &good, NULL), VTPMCA_OK);
    EVP_PKEY *out = NULL;
    json_t *jwk;

    const uint8_t e_one[] = {1}, e_even[] = {1, 0, 0}, e_zero_lead[] = {0, 1, 0, 1};
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "e", e_one, sizeof(e_one));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "exponent"));
    json_decref(jwk);
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "e", e_even, sizeof(e_even));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
    json_decref(jwk);
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "e", e_zero_lead, sizeof(e_zero_lead));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "minimally"));
    json_decref(jwk);

    /* Modulus: too small, even, leading zero. */
    size_t n_len = 0;
    uint8_t *n = b64url_member(good, "n", &n_len);
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "n", n, 128); /* 1024 bits */
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "1024 bits"));
    json_decref(jwk);
    n[n_len - 1] &= 0xfe;
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "n", n, n_len);
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "even"));
    json_decref(jwk);
    uint8_t *n_lead = calloc(1, n_len + 1);
    memcpy(n_lead + 1, n, n_len);
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "n", n_lead, n_len + 1);
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_PARSE);
    json_decref(jwk);
    /* A prime modulus (an RSA "key" anyone can decrypt for) fails OpenSSL's check. */
    BIGNUM *prime = BN_new();
    assert_int_equal(BN_generate_prime_ex(prime, 2048, 0, NULL, NULL, NULL), 1);
    uint8_t prime_bytes[256];
    assert_int_equal(BN_bn2binpad(prime, prime_bytes, sizeof(prime_bytes)), 256);
    jwk = json_deep_copy(good);
    set_b64url_member(jwk, "n", prime_bytes, sizeof(prime_bytes));
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "public key check"));
    json_decref(jwk);
    BN_free(prime);
    jwk = json_deep_copy(good);
    json_object_del(jwk, "e");
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &out, &diag), VTPMCA_ERR_PARSE);
    json_decref(jwk);
    assert_null(out);
    free(n);
    free(n_lead);
    json_decref(good);
}

/* ---- independent cross-checks ---- */

/* ECDH with the openssl CLI (pkeyutl -derive), then KDF, unwrap, and GCM by hand. */
static void test_openssl_cli_ecdh_cross_check(void **state)
{
    (void)state;
    if (!have_openssl_cli())
        skip();
    EVP_PKEY *keys[] = {g.p384, g.p521};
    for (size_t i = 0; i < 2; i++) {
        uint8_t secret[48];
        fill_pattern(secret, sizeof(secret));
        json_t *jwe = NULL;
        assert_int_equal(jwe_encrypt(keys[i], secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
        EVP_PKEY *epk = NULL;
        jwe_alg alg = 0;
        assert_int_equal(jwe_get_epk(jwe, &alg, &epk, NULL), VTPMCA_OK);
        char recipient_pem[256], epk_pem[256], cmd[1024];
        write_pem("recipient.pem", keys[i], 1, recipient_pem, sizeof(recipient_pem));
        write_pem("epk.pem", epk, 0, epk_pem, sizeof(epk_pem));
        snprintf(cmd, sizeof(cmd), "openssl pkeyutl -derive -inkey %s -peerkey %s -out %s/z.bin",
                 recipient_pem, epk_pem, g.dir);
        assert_int_equal(system(cmd), 0);
        size_t z_len = 0;
        uint8_t *z = read_file("z.bin", &z_len);
        assert_int_equal(z_len, i == 0 ? 48 : 66);
        uint8_t kek[32], cek[32], out[64];
        assert_int_equal(
            jwe_concat_kdf(z, z_len, "ECDH-ES+A256KW", NULL, 0, NULL, 0, kek, 32, NULL), VTPMCA_OK);
        size_t ek_len = 0, len = 0;
        uint8_t *ek = b64url_member(jwe, "encrypted_key", &ek_len);
        assert_int_equal(jwe_aes256_kw_unwrap(kek, ek, ek_len, cek, sizeof(cek), &len, NULL),
                         VTPMCA_OK);
        assert_true(independent_gcm_decrypt(
            cek, jwe, json_string_value(json_object_get(jwe, "protected")), out, &len));
        assert_int_equal(len, sizeof(secret));
        assert_memory_equal(out, secret, sizeof(secret));
        free(z);
        free(ek);
        EVP_PKEY_free(epk);
        json_decref(jwe);
    }
}

/* RSA-OAEP-256 decryption of encrypted_key with the openssl CLI. */
static void test_openssl_cli_rsa_cross_check(void **state)
{
    (void)state;
    if (!have_openssl_cli())
        skip();
    uint8_t secret[32];
    fill_pattern(secret, sizeof(secret));
    json_t *jwe = NULL;
    assert_int_equal(jwe_encrypt(g.rsa3072, secret, sizeof(secret), NULL, &jwe, NULL), VTPMCA_OK);
    char key_pem[256], cmd[1024];
    write_pem("rsa.pem", g.rsa3072, 1, key_pem, sizeof(key_pem));
    size_t ek_len = 0;
    uint8_t *ek = b64url_member(jwe, "encrypted_key", &ek_len);
    write_file("ek.bin", ek, ek_len);
    snprintf(cmd, sizeof(cmd),
             "openssl pkeyutl -decrypt -inkey %s -pkeyopt rsa_padding_mode:oaep "
             "-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in %s/ek.bin "
             "-out %s/cek.bin",
             key_pem, g.dir, g.dir);
    assert_int_equal(system(cmd), 0);
    size_t cek_len = 0, len = 0;
    uint8_t *cek = read_file("cek.bin", &cek_len);
    assert_int_equal(cek_len, 32);
    uint8_t out[64];
    assert_true(independent_gcm_decrypt(
        cek, jwe, json_string_value(json_object_get(jwe, "protected")), out, &len));
    assert_memory_equal(out, secret, sizeof(secret));
    free(cek);
    free(ek);
    json_decref(jwe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concat_kdf_rfc7518_appendix_c),
        cmocka_unit_test(test_concat_kdf_rejects_bad_arguments),
        cmocka_unit_test(test_aes_kw_rfc3394_4_6),
        cmocka_unit_test(test_roundtrip_ec),
        cmocka_unit_test(test_roundtrip_rsa),
        cmocka_unit_test(test_protected_header_exact),
        cmocka_unit_test(test_unprotected_header_member),
        cmocka_unit_test(test_tampering_fails),
        cmocka_unit_test(test_aad_binding),
        cmocka_unit_test(test_malformed_jwe_refused),
        cmocka_unit_test(test_wrong_recipient_fails),
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_finish_text),
        cmocka_unit_test(test_finish_text_rejects),
        cmocka_unit_test(test_ec_point_encode),
        cmocka_unit_test(test_point_helpers),
        cmocka_unit_test(test_jwk_roundtrip),
        cmocka_unit_test(test_jwk_svsm_format),
        cmocka_unit_test(test_jwk_invalid_ec_points),
        cmocka_unit_test(test_jwk_invalid_rsa),
        cmocka_unit_test(test_openssl_cli_ecdh_cross_check),
        cmocka_unit_test(test_openssl_cli_rsa_cross_check),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
