/* Unit tests for attest/report_data.c: RFC 8785 canonical JSON (the RFC's own examples and
 * number vectors, Trustee's published digest), and both REPORT_DATA flavours computed
 * independently here (coordinates from OpenSSL, digests from OpenSSL and the openssl CLI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"
#include "vtpmca/report_data.h"

static struct {
    EVP_PKEY *p521, *p384, *p256, *rsa;
} g;

static EVP_PKEY *gen_ec(const char *group)
{
    EVP_PKEY *key = EVP_EC_gen(group);
    assert_non_null(key);
    return key;
}

static int group_setup(void **state)
{
    (void)state;
    g.p521 = gen_ec("P-521");
    g.p384 = gen_ec("P-384");
    g.p256 = gen_ec("P-256");
    g.rsa = EVP_RSA_gen(2048);
    return g.rsa != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g.p521);
    EVP_PKEY_free(g.p384);
    EVP_PKEY_free(g.p256);
    EVP_PKEY_free(g.rsa);
    return 0;
}

/* ---- helpers ---- */

static char *jcs_of_text(const char *json)
{
    json_error_t jerr;
    json_t *value = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (value == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(jcs_serialize(value, &out, &len, NULL), VTPMCA_OK);
    assert_int_equal(len, strlen(out));
    json_decref(value);
    return out;
}

static void assert_jcs(const char *json, const char *expected)
{
    char *out = jcs_of_text(json);
    assert_string_equal(out, expected);
    free(out);
}

static char *jcs_of_double_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    json_t *value = json_real(d);
    char *out = NULL;
    assert_int_equal(jcs_serialize(value, &out, NULL, NULL), VTPMCA_OK);
    json_decref(value);
    return out;
}

static void sha(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    assert_int_equal(EVP_Digest(data, len, out, NULL, md, NULL), 1);
}

/* SHA-384 of a string by the openssl command line tool, as hex. */
static void openssl_cli_sha384_hex(const char *text, char out[97])
{
    char path[] = "/tmp/vtpmca-rd-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "openssl dgst -sha384 -r '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 97, p));
    out[96] = '\0';
    pclose(p);
    unlink(path);
}

/* X || Y of an EC key as fixed-size big-endian integers, straight from OpenSSL params. */
static size_t coordinates(const EVP_PKEY *key, size_t field_len, uint8_t *out)
{
    BIGNUM *x = NULL, *y = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    assert_int_equal(BN_bn2binpad(x, out, (int)field_len), (int)field_len);
    assert_int_equal(BN_bn2binpad(y, out + field_len, (int)field_len), (int)field_len);
    BN_free(x);
    BN_free(y);
    return 2 * field_len;
}

static json_t *jwk_of(const EVP_PKEY *key)
{
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(key, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    return jwk;
}

/* ---- JCS ---- */

/* Trustee's attestation-service test: SHA-384 of the canonical runtime data. */
static void test_jcs_trustee_vector(void **state)
{
    (void)state;
    char *out = jcs_of_text("{\"b\": 1, \"a\": \"test\", \"c\": {\"d\": \"e\"}}");
    assert_string_equal(out, "{\"a\":\"test\",\"b\":1,\"c\":{\"d\":\"e\"}}");
    uint8_t digest[48];
    sha(EVP_sha384(), out, strlen(out), digest);
    char hex[97];
    assert_int_equal(vt_hex_encode(digest, sizeof(digest), hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(hex, "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
                             "4597480a186427c813ca941da78870c3");
    free(out);
}

/* RFC 8785 section 3.2.2: literals, numbers and string escapes. */
static void test_jcs_rfc8785_example(void **state)
{
    (void)state;
    assert_jcs("{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, "
               "0.000000000000000000000000001],\n  \"string\": "
               "\"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": "
               "[null, true, false]\n}",
               "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,"
               "1e-27],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

/* RFC 8785 section 3.2.3: member names sort by UTF-16 code units, so U+1F600 (a surrogate
 * pair, 0xD83D...) sorts before U+FB33 although its code point is larger. */
static void test_jcs_sorting_utf16(void **state)
{
    (void)state;
    assert_jcs("{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\", \"\\ufb33\": "
               "\"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\", \"\\ud83d\\ude00\": "
               "\"Emoji: Grinning Face\", \"\\u0080\": \"Control\", \"\\u00f6\": \"Latin Small "
               "Letter O With Diaeresis\"}",
               "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\",\"\xc3\xb6\":"
               "\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
               "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\",\"\xef\xac\xb3\":\"Hebrew Letter "
               "Dalet With Dagesh\"}");
    /* A prefix sorts first; nested objects are sorted too; arrays keep their order. */
    assert_jcs("{\"ab\":1,\"a\":{\"z\":[3,1,2],\"y\":{}},\"\":[]}",
               "{\"\":[],\"a\":{\"y\":{},\"z\":[3,1,2]},\"ab\":1}");
}

/* RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript forms. */
static void test_jcs_numbers_appendix_b(void **state)
{
    (void)state;
    static const struct {
        uint64_t bits;
        const char *text;
    } vectors[] = {
        {0x0000000000000000ull, "0"},
        {0x8000000000000000ull, "0"},
        {0x0000000000000001ull, "5e-324"},
        {0x8000000000000001ull, "-5e-324"},
        {0x7fefffffffffffffull, "1.7976931348623157e+308"},
        {0xffefffffffffffffull, "-1.7976931348623157e+308"},
        {0x4340000000000000ull, "9007199254740992"},
        {0xc340000000000000ull, "-9007199254740992"},
        {0x4430000000000000ull, "295147905179352830000"},
        {0x44b52d02c7e14af5ull, "9.999999999999997e+22"},
        {0x44b52d02c7e14af6ull, "1e+23"},
        {0x44b52d02c7e14af7ull, "1.0000000000000001e+23"},
        {0x444b1ae4d6e2ef4eull, "999999999999999700000"},
        {0x444b1ae4d6e2ef4full, "999999999999999900000"},
        {0x444b1ae4d6e2ef50ull, "1e+21"},
        {0x3eb0c6f7a0b5ed8cull, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8dull, "0.000001"},
        {0x41b3de4355555553ull, "333333333.3333332"},
        {0x41b3de4355555554ull, "333333333.33333325"},
        {0x41b3de4355555555ull, "333333333.3333333"},
        {0x41b3de4355555556ull, "333333333.3333334"},
        {0x41b3de4355555557ull, "333333333.33333343"},
        {0xbecbf647612f3696ull, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959ull, "1424953923781206.2"},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char *out = jcs_of_double_bits(vectors[i].bits);
        if (strcmp(out, vectors[i].text) != 0)
            fail_msg("bits %016llx: got %s, want %s", (unsigned long long)vectors[i].bits, out,
                     vectors[i].text);
        free(out);
    }
    /* Integers are exact up to 2^53; beyond, a JavaScript reader has a double. */
    assert_jcs("[0,-1,9007199254740991,-9007199254740991,9007199254740993,100,1e2]",
               "[0,-1,9007199254740991,-9007199254740991,9007199254740992,100,100]");
}

static void test_jcs_strings_and_limits(void **state)
{
    (void)state;
    /* Only the mandatory escapes; DEL, '/' and non-ASCII stay as they are; NUL is escaped. */
    assert_jcs("\"\\u0000\\u0001\\u001f\\u007f/\\b\\f\\t\\u00e9\"",
               "\"\\u0000\\u0001\\u001f\x7f/\\b\\f\\t\xc3\xa9\"");
    /* Nesting is bounded. */
    char deep[200] = {0};
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    json_t *value = json_loads(deep, 0, NULL);
    assert_non_null(value);
    char *out = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jcs_serialize(value, &out, NULL, &diag), VTPMCA_ERR_LIMIT);
    assert_null(out);
    json_decref(value);
    assert_int_equal(jcs_serialize(NULL, &out, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- SVSM flavour ---- */

static void test_svsm_flavour_p521(void **state)
{
    (void)state;
    uint8_t nonce[32];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)(0xa0 + i);
    uint8_t material[2 * 66 + 32];
    size_t n = coordinates(g.p521, 66, material);
    assert_int_equal(n, 132);
    memcpy(material + n, nonce, sizeof(nonce));
    uint8_t expected[64], got[64];
    sha(EVP_sha512(), material, n + sizeof(nonce), expected);
    assert_int_equal(report_data_svsm(g.p521, nonce, sizeof(nonce), got, NULL), VTPMCA_OK);
    assert_memory_equal(got, expected, 64);

    /* Other curves use their own coordinate size (48 bytes on P-384). */
    n = coordinates(g.p384, 48, material);
    memcpy(material + n, nonce, sizeof(nonce));
    sha(EVP_sha512(), material, n + sizeof(nonce), expected);
    assert_int_equal(report_data_svsm(g.p384, nonce, sizeof(nonce), got, NULL), VTPMCA_OK);
    assert_memory_equal(got, expected, 64);

    vtpmca_diag diag = {{0}};
    assert_int_equal(report_data_svsm(g.rsa, nonce, sizeof(nonce), got, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(report_data_svsm(g.p521, nonce, 0, got, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(report_data_svsm(NULL, nonce, 32, got, &diag), VTPMCA_ERR_INVALID_ARG);

    /* From the point: the same digest; only uncompressed points of our curves. */
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    assert_int_equal(jwe_ec_point_encode(g.p384, point, &point_len, NULL), VTPMCA_OK);
    uint8_t from_point[64];
    assert_int_equal(
        report_data_svsm_point(point, point_len, nonce, sizeof(nonce), from_point, &diag),
        VTPMCA_OK);
    assert_memory_equal(from_point, expected, 64);
    assert_int_equal(
        report_data_svsm_point(point, point_len - 1, nonce, sizeof(nonce), from_point, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(report_data_svsm_point(point, point_len, nonce, 0, from_point, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    point[0] = 0x02;
    assert_int_equal(
        report_data_svsm_point(point, point_len, nonce, sizeof(nonce), from_point, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(report_data_svsm_point(NULL, 97, nonce, sizeof(nonce), from_point, &diag),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- Trustee flavour ---- */

static void test_trustee_flavour_ec(void **state)
{
    (void)state;
    json_t *canonical = jwk_of(g.p384);
    const char *x = json_string_value(json_object_get(canonical, "x"));
    const char *y = json_string_value(json_object_get(canonical, "y"));
    /* Members in another order, plus one Trustee's TeePubKey drops ("use"). */
    json_t *jwk = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "y", y, "use", "enc", "alg",
                            "ECDH-ES+A256KW", "x", x, "kty", "EC", "crv", "P-384");
    const char *nonce = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    char expected_text[512];
    snprintf(expected_text, sizeof(expected_text),
             "{\"additional-evidence\":\"\",\"nonce\":\"%s\",\"tee-pubkey\":{\"alg\":\"ECDH-ES+"
             "A256KW\",\"crv\":\"P-384\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}}",
             nonce, x, y);

    json_t *object = NULL;
    assert_int_equal(report_data_trustee_object(jwk, nonce, "", &object, NULL), VTPMCA_OK);
    char *text = NULL;
    assert_int_equal(jcs_serialize(object, &text, NULL, NULL), VTPMCA_OK);
    assert_string_equal(text, expected_text);
    free(text);
    json_decref(object);

    uint8_t expected[64] = {0}, got[64];
    sha(EVP_sha384(), expected_text, strlen(expected_text), expected);
    memset(got, 0xff, sizeof(got));
    assert_int_equal(report_data_trustee(jwk, nonce, "", got, NULL), VTPMCA_OK);
    assert_memory_equal(got, expected, 64); /* 48-byte digest, then 16 zero bytes */

    /* The same digest from the openssl command line tool. */
    char cli_hex[97], got_hex[97];
    openssl_cli_sha384_hex(expected_text, cli_hex);
    vt_hex_encode(got, 48, got_hex, sizeof(got_hex));
    assert_string_equal(cli_hex, got_hex);

    /* Additional evidence is part of the hash. */
    uint8_t other[64];
    assert_int_equal(report_data_trustee(jwk, nonce, "{}", other, NULL), VTPMCA_OK);
    assert_memory_not_equal(other, got, 64);
    json_decref(jwk);
    json_decref(canonical);
}

static void test_trustee_flavour_rsa(void **state)
{
    (void)state;
    json_t *canonical = jwk_of(g.rsa);
    const char *n = json_string_value(json_object_get(canonical, "n"));
    json_t *jwk =
        json_pack("{s:s,s:s,s:s,s:s}", "n", n, "e", "AQAB", "kty", "RSA", "alg", "RSA-OAEP-256");
    char *expected_text = NULL;
    size_t need = strlen(n) + 256;
    expected_text = malloc(need);
    snprintf(expected_text, need,
             "{\"additional-evidence\":\"\",\"nonce\":\"bm9uY2U=\",\"tee-pubkey\":{\"alg\":"
             "\"RSA-OAEP-256\",\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"%s\"}}",
             n);
    uint8_t expected[64] = {0}, got[64];
    sha(EVP_sha384(), expected_text, strlen(expected_text), expected);
    assert_int_equal(report_data_trustee(jwk, "bm9uY2U=", "", got, NULL), VTPMCA_OK);
    assert_memory_equal(got, expected, 64);
    free(expected_text);
    json_decref(jwk);
    json_decref(canonical);
}

static void test_trustee_flavour_rejects(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t out[64];
    json_t *no_alg =
        json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", "a", "y", "b");
    assert_int_equal(report_data_trustee(no_alg, "n", "", out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "alg"));
    json_t *okp = json_pack("{s:s,s:s}", "kty", "OKP", "alg", "x");
    assert_int_equal(report_data_trustee(okp, "n", "", out, &diag), VTPMCA_ERR_UNSUPPORTED);
    json_t *number_x = json_pack("{s:s,s:s,s:s,s:i,s:s}", "kty", "EC", "crv", "P-256", "alg",
                                 "ECDH-ES+A256KW", "x", 1, "y", "b");
    assert_int_equal(report_data_trustee(number_x, "n", "", out, &diag), VTPMCA_ERR_PARSE);
    json_t *array = json_array();
    assert_int_equal(report_data_trustee(array, "n", "", out, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(report_data_trustee(okp, NULL, "", out, &diag), VTPMCA_ERR_INVALID_ARG);
    json_decref(no_alg);
    json_decref(okp);
    json_decref(number_x);
    json_decref(array);
}

/* ---- matching ---- */

static void test_match_both_flavours(void **state)
{
    (void)state;
    uint8_t nonce[32];
    memset(nonce, 7, sizeof(nonce));
    char *nonce_text = NULL;
    assert_int_equal(vt_b64_encode_alloc(nonce, sizeof(nonce), VT_B64_STD, &nonce_text), VTPMCA_OK);
    json_t *jwk = jwk_of(g.p521);
    json_object_set_new(jwk, "alg", json_string("ECDH-ES+A256KW"));
    report_data_inputs in = {.tee_key = g.p521,
                             .tee_pubkey = jwk,
                             .nonce = nonce,
                             .nonce_len = sizeof(nonce),
                             .nonce_text = nonce_text,
                             .additional_evidence = ""};
    uint8_t rd[64];
    report_data_flavour matched = REPORT_DATA_FLAVOUR_NONE;

    assert_int_equal(report_data_svsm(g.p521, nonce, sizeof(nonce), rd, NULL), VTPMCA_OK);
    assert_int_equal(report_data_match(rd, &in, &matched, NULL), VTPMCA_OK);
    assert_int_equal(matched, REPORT_DATA_FLAVOUR_SVSM);
    assert_string_equal(report_data_flavour_name(matched), "svsm");
    /* The same with the imported point given instead of encoding the key. */
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    assert_int_equal(jwe_ec_point_encode(g.p521, point, &point_len, NULL), VTPMCA_OK);
    report_data_inputs with_point = in;
    with_point.tee_point = point;
    with_point.tee_point_len = point_len;
    matched = REPORT_DATA_FLAVOUR_NONE;
    assert_int_equal(report_data_match(rd, &with_point, &matched, NULL), VTPMCA_OK);
    assert_int_equal(matched, REPORT_DATA_FLAVOUR_SVSM);

    assert_int_equal(report_data_trustee(jwk, nonce_text, "", rd, NULL), VTPMCA_OK);
    assert_int_equal(report_data_match(rd, &in, &matched, NULL), VTPMCA_OK);
    assert_int_equal(matched, REPORT_DATA_FLAVOUR_TRUSTEE);
    assert_string_equal(report_data_flavour_name(matched), "trustee");

    /* One bit off, or made for another nonce: neither flavour matches. */
    rd[63] ^= 1;
    vtpmca_diag diag = {{0}};
    assert_int_equal(report_data_match(rd, &in, &matched, &diag), VTPMCA_ERR_CRYPTO);
    assert_int_equal(matched, REPORT_DATA_FLAVOUR_NONE);
    uint8_t other_nonce[32];
    memset(other_nonce, 8, sizeof(other_nonce));
    assert_int_equal(report_data_svsm(g.p521, other_nonce, 32, rd, NULL), VTPMCA_OK);
    assert_int_equal(report_data_match(rd, &in, &matched, &diag), VTPMCA_ERR_CRYPTO);
    /* Another tee key. */
    assert_int_equal(report_data_svsm(g.p384, nonce, 32, rd, NULL), VTPMCA_OK);
    assert_int_equal(report_data_match(rd, &in, &matched, &diag), VTPMCA_ERR_CRYPTO);

    /* An RSA key only has the Trustee flavour. */
    json_t *rsa_jwk = jwk_of(g.rsa);
    json_object_set_new(rsa_jwk, "alg", json_string("RSA-OAEP-256"));
    report_data_inputs rsa_in = in;
    rsa_in.tee_key = g.rsa;
    rsa_in.tee_pubkey = rsa_jwk;
    assert_int_equal(report_data_trustee(rsa_jwk, nonce_text, "", rd, NULL), VTPMCA_OK);
    assert_int_equal(report_data_match(rd, &rsa_in, &matched, NULL), VTPMCA_OK);
    assert_int_equal(matched, REPORT_DATA_FLAVOUR_TRUSTEE);

    assert_int_equal(report_data_match(NULL, &in, &matched, NULL), VTPMCA_ERR_INVALID_ARG);
    report_data_inputs missing = in;
    missing.nonce_text = NULL;
    assert_int_equal(report_data_match(rd, &missing, &matched, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_string_equal(report_data_flavour_name(REPORT_DATA_FLAVOUR_NONE), "none");
    assert_string_equal(report_data_flavour_name((report_data_flavour)99), "unknown");
    json_decref(rsa_jwk);
    json_decref(jwk);
    free(nonce_text);
}

/* The worked example of docs/protocol.md ("KBS protocol"): the P-521 tee-pubkey of the KBS
 * binding example and the nonce 00 01 .. 1f. Expected values computed independently (Python
 * hashlib over bytes assembled by hand). */
static void test_worked_example(void **state)
{
    (void)state;
    json_t *jwk = json_pack(
        "{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-521", "alg", "ECDH-ES+A256KW", "x",
        "Aex6pFml3QpYyr99f3d0RQ4qWRDCPRFCJJ1MN2okQEB36ed3ipdFiKgskpq2Xye-TjH9BZAqyrjIUlD_3Eoq16Tx",
        "y",
        "AMSbQhXlvQNSGuCITHaRMBCzOeYq5zxrqaonko7VT7Rzl_DPG0w1aRc0_QAkeoN91LgYb1aVIWgXzGlOzA6vm49e");
    EVP_PKEY *key = NULL;
    assert_int_equal(jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, NULL), VTPMCA_OK);
    uint8_t nonce[32];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)i;
    const char *nonce_text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    uint8_t rd[64];
    char hex[129];
    assert_int_equal(report_data_svsm(key, nonce, sizeof(nonce), rd, NULL), VTPMCA_OK);
    vt_hex_encode(rd, sizeof(rd), hex, sizeof(hex));
    assert_string_equal(hex, "bf00552bf5a06279aa8b3baafc86b3c3cbb3c9cecb6d22878b70db8b240fbf8b"
                             "502460978480f5cdc6671f7e6d6ef1bd575caaa57bc482c40e87936a6b17529f");
    assert_int_equal(report_data_trustee(jwk, nonce_text, "", rd, NULL), VTPMCA_OK);
    vt_hex_encode(rd, sizeof(rd), hex, sizeof(hex));
    assert_string_equal(hex, "737843d1f8453ef9b71547af11a789cf96d437f7a3d4d8e146b45023ffbda673"
                             "07f34273ba3247ec4e1b8d56c04856e600000000000000000000000000000000");
    EVP_PKEY_free(key);
    json_decref(jwk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jcs_trustee_vector),
        cmocka_unit_test(test_jcs_rfc8785_example),
        cmocka_unit_test(test_jcs_sorting_utf16),
        cmocka_unit_test(test_jcs_numbers_appendix_b),
        cmocka_unit_test(test_jcs_strings_and_limits),
        cmocka_unit_test(test_svsm_flavour_p521),
        cmocka_unit_test(test_trustee_flavour_ec),
        cmocka_unit_test(test_trustee_flavour_rsa),
        cmocka_unit_test(test_trustee_flavour_rejects),
        cmocka_unit_test(test_match_both_flavours),
        cmocka_unit_test(test_worked_example),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
