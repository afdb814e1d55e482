/* Unit tests for tools/lib/kbs_client.c, the client side of KBS protocol 0.4.0:
 *  - REPORT_DATA of both flavours against values computed here independently (SHA-512 over
 *    X || Y || nonce built by hand from the key's coordinates; SHA-384 over a JCS string
 *    written out by hand for a fixed JWK);
 *  - the request bodies have exactly the shapes of ../shared/notes/svsm-boot-protocol.md
 *    (parsed back member by member);
 *  - the transport over real HTTP on 127.0.0.1: a small libmicrohttpd peer in this file
 *    answers with scripted replies and records what the client sent (method, path, cookie,
 *    content type, body), so the cookie handling and the status -> error mapping are
 *    checked on the wire. The real daemon is exercised by tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vtpmca/kbs_client.h"

/* ---- keys and encodings, done here without the module ---- */

static EVP_PKEY *g_p521, *g_p384, *g_p256, *g_rsa;

/* Fixed-size big-endian coordinate of an EC key (OpenSSL's own parameter API). */
static void coordinate(const EVP_PKEY *key, const char *which, size_t size, uint8_t *out)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(key, which, &bn), 1);
    assert_int_equal(BN_bn2binpad(bn, out, (int)size), (int)size);
    BN_free(bn);
}

/* Standard base64 with padding via OpenSSL's EVP_EncodeBlock. */
static char *std_b64(const uint8_t *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* base64url without padding, by translating EVP_EncodeBlock's output. */
static char *url_b64(const uint8_t *data, size_t len)
{
    char *out = std_b64(data, len);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static void digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, out, &n, md, NULL), 1);
}

/* Member names of an object, in order, joined by ','. */
static void member_names(const json_t *obj, char *out, size_t size)
{
    out[0] = '\0';
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)obj, name, value)
    {
        (void)value;
        if (out[0] != '\0')
            strncat(out, ",", size - strlen(out) - 1);
        strncat(out, name, size - strlen(out) - 1);
    }
}

static void assert_members(const json_t *obj, const char *expected)
{
    assert_true(json_is_object(obj));
    char names[256];
    member_names(obj, names, sizeof(names));
    assert_string_equal(names, expected);
}

/* ---- request bodies ---- */

static void test_auth_request_shape(void **state)
{
    (void)state;
    json_t *body = NULL;
    assert_int_equal(kbs_auth_request(&body, NULL), VTPMCA_OK);
    char *text = json_dumps(body, JSON_COMPACT);
    assert_string_equal(text, "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":\"\"}");
    free(text);
    json_decref(body);
    assert_int_equal(kbs_auth_request(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void check_ec_jwk(EVP_PKEY *key, const char *crv, size_t field)
{
    json_t *jwk = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_tee_pubkey_jwk(key, &jwk, &diag), VTPMCA_OK);
    uint8_t x[66], y[66];
    coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X, field, x);
    coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y, field, y);
    char *xs = url_b64(x, field), *ys = url_b64(y, field);
    char expected[512];
    snprintf(expected, sizeof(expected),
             "{\"kty\":\"EC\",\"crv\":\"%s\",\"alg\":\"ECDH-ES+A256KW\",\"x\":\"%s\",\"y\":\"%s\"}",
             crv, xs, ys);
    char *text = json_dumps(jwk, JSON_COMPACT);
    assert_string_equal(text, expected);
    free(text);
    free(xs);
    free(ys);
    json_decref(jwk);
}

static void test_tee_pubkey_jwk_ec(void **state)
{
    (void)state;
    check_ec_jwk(g_p521, "P-521", 66);
    check_ec_jwk(g_p384, "P-384", 48);
    check_ec_jwk(g_p256, "P-256", 32);
}

static void test_tee_pubkey_jwk_rsa(void **state)
{
    (void)state;
    json_t *jwk = NULL;
    assert_int_equal(kbs_tee_pubkey_jwk(g_rsa, &jwk, NULL), VTPMCA_OK);
    assert_members(jwk, "kty,alg,n,e");
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RSA-OAEP-256");
    BIGNUM *n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(g_rsa, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    uint8_t modulus[256];
    assert_int_equal(BN_bn2bin(n, modulus), 256);
    BN_free(n);
    char *ns = url_b64(modulus, sizeof(modulus));
    assert_string_equal(json_string_value(json_object_get(jwk, "n")), ns);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB"); /* 65537 */
    free(ns);
    json_decref(jwk);
    assert_int_equal(kbs_tee_pubkey_jwk(NULL, &jwk, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_report_data_svsm(void **state)
{
    (void)state;
    uint8_t nonce[32];
    assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
    char *nonce_b64 = std_b64(nonce, sizeof(nonce));
    /* X || Y || nonce with 66-byte coordinates, hashed here. */
    uint8_t message[66 + 66 + 32], expected[64];
    coordinate(g_p521, OSSL_PKEY_PARAM_EC_PUB_X, 66, message);
    coordinate(g_p521, OSSL_PKEY_PARAM_EC_PUB_Y, 66, message + 66);
    memcpy(message + 132, nonce, sizeof(nonce));
    digest(EVP_sha512(), message, sizeof(message), expected);

    json_t *jwk = NULL;
    assert_int_equal(kbs_tee_pubkey_jwk(g_p521, &jwk, NULL), VTPMCA_OK);
    uint8_t report_data[REPORT_DATA_SIZE];
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, nonce_b64, jwk, report_data, &diag),
                     VTPMCA_OK);
    assert_memory_equal(report_data, expected, 64);

    /* A P-384 key in the svsm flavour: 48-byte coordinates. */
    json_t *jwk384 = NULL;
    uint8_t message384[48 + 48 + 32];
    coordinate(g_p384, OSSL_PKEY_PARAM_EC_PUB_X, 48, message384);
    coordinate(g_p384, OSSL_PKEY_PARAM_EC_PUB_Y, 48, message384 + 48);
    memcpy(message384 + 96, nonce, sizeof(nonce));
    digest(EVP_sha512(), message384, sizeof(message384), expected);
    assert_int_equal(kbs_tee_pubkey_jwk(g_p384, &jwk384, NULL), VTPMCA_OK);
    assert_int_equal(
        kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, nonce_b64, jwk384, report_data, NULL), VTPMCA_OK);
    assert_memory_equal(report_data, expected, 64);

    /* Another nonce, another binding. */
    nonce[0] ^= 1;
    char *other = std_b64(nonce, sizeof(nonce));
    uint8_t changed[REPORT_DATA_SIZE];
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, other, jwk, changed, NULL),
                     VTPMCA_OK);
    assert_memory_not_equal(changed, report_data, 64);
    free(other);
    free(nonce_b64);
    json_decref(jwk);
    json_decref(jwk384);
}

/* A fixed P-384 point (the KBS key of docs/protocol.md's worked example) and a nonce whose
 * base64 has '+' and '/' (JCS does not escape them). */
#define FIXED_X "gN3sEcrTQBXvr-LZ7qMyKkB9VqYiZLvzrzXQzgLEVKN6v0a8EGhHhQY5fjmIT66-"
#define FIXED_Y "COR9ig9TqLp6bej1goxFZ5b3RBL_dljbGj4xlyQayF19mjxZK66_KT9rvEu_eXk5"
#define FIXED_NONCE "+/8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0="
/* An RSA-2048 modulus (RFC 7515 appendix A.2), base64url. */
#define FIXED_N                                                                                    \
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4" \
    "d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"                     \
    "bSf63kpaSHSXndS5z5rexM"                                                                       \
    "dbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFv" \
    "UK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"

static void test_report_data_trustee_jcs(void **state)
{
    (void)state;
    /* The JWK as the client sends it (kty, crv, alg, x, y) ... */
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "alg",
                            "ECDH-ES+A256KW", "x", FIXED_X, "y", FIXED_Y);
    /* ... and the JCS form written out by hand: members sorted, no whitespace. */
    const char *jcs = "{\"additional-evidence\":\"\",\"nonce\":\"" FIXED_NONCE "\","
                      "\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-384\",\"kty\":\"EC\","
                      "\"x\":\"" FIXED_X "\",\"y\":\"" FIXED_Y "\"}}";
    uint8_t expected[64] = {0};
    digest(EVP_sha384(), jcs, strlen(jcs), expected); /* bytes 48..63 stay zero */
    uint8_t report_data[REPORT_DATA_SIZE];
    memset(report_data, 0xaa, sizeof(report_data));
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        kbs_report_data(REPORT_DATA_FLAVOUR_TRUSTEE, FIXED_NONCE, jwk, report_data, &diag),
        VTPMCA_OK);
    assert_memory_equal(report_data, expected, 64);
    json_decref(jwk);

    /* RSA: {"alg","e","kty","n"} sorted. */
    json_t *rsa = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "alg", "RSA-OAEP-256", "n",
                            FIXED_N, "e", "AQAB");
    const char *rsa_jcs = "{\"additional-evidence\":\"\",\"nonce\":\"" FIXED_NONCE "\","
                          "\"tee-pubkey\":{\"alg\":\"RSA-OAEP-256\",\"e\":\"AQAB\","
                          "\"kty\":\"RSA\",\"n\":\"" FIXED_N "\"}}";
    memset(expected, 0, sizeof(expected));
    digest(EVP_sha384(), rsa_jcs, strlen(rsa_jcs), expected);
    assert_int_equal(
        kbs_report_data(REPORT_DATA_FLAVOUR_TRUSTEE, FIXED_NONCE, rsa, report_data, &diag),
        VTPMCA_OK);
    assert_memory_equal(report_data, expected, 64);
    json_decref(rsa);
}

static void test_report_data_refusals(void **state)
{
    (void)state;
    json_t *rsa = NULL, *ec = NULL;
    assert_int_equal(kbs_tee_pubkey_jwk(g_rsa, &rsa, NULL), VTPMCA_OK);
    assert_int_equal(kbs_tee_pubkey_jwk(g_p521, &ec, NULL), VTPMCA_OK);
    uint8_t out[REPORT_DATA_SIZE];
    vtpmca_diag diag = {{0}};
    /* The SVSM binds X || Y: an RSA key has none. */
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, FIXED_NONCE, rsa, out, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    /* The nonce of auth is standard base64 with padding. */
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, "-_8AAQ", ec, out, &diag),
                     VTPMCA_ERR_PARSE);
    /* A JWK whose point is not on the curve. */
    json_t *bad = json_deep_copy(ec);
    char *x = strdup(json_string_value(json_object_get(ec, "x")));
    x[10] = x[10] == 'A' ? 'B' : 'A';
    json_object_set_new(bad, "x", json_string(x));
    assert_int_not_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, FIXED_NONCE, bad, out, &diag),
                         VTPMCA_OK);
    free(x);
    json_decref(bad);
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_NONE, FIXED_NONCE, ec, out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, NULL, ec, out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_report_data(REPORT_DATA_FLAVOUR_SVSM, FIXED_NONCE, NULL, out, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(rsa);
    json_decref(ec);
}

static void test_flavour_parse(void **state)
{
    (void)state;
    report_data_flavour f = REPORT_DATA_FLAVOUR_NONE;
    assert_int_equal(kbs_flavour_parse("svsm", &f), VTPMCA_OK);
    assert_int_equal(f, REPORT_DATA_FLAVOUR_SVSM);
    assert_int_equal(kbs_flavour_parse("trustee", &f), VTPMCA_OK);
    assert_int_equal(f, REPORT_DATA_FLAVOUR_TRUSTEE);
    assert_int_equal(kbs_flavour_parse("SVSM", &f), VTPMCA_ERR_PARSE);
    assert_int_equal(kbs_flavour_parse("", &f), VTPMCA_ERR_PARSE);
    assert_int_equal(kbs_flavour_parse(NULL, &f), VTPMCA_ERR_INVALID_ARG);
}

static void test_attest_request_shape(void **state)
{
    (void)state;
    uint8_t report[1184];
    assert_int_equal(RAND_bytes(report, sizeof(report)), 1);
    json_t *jwk = NULL, *body = NULL;
    assert_int_equal(kbs_tee_pubkey_jwk(g_p521, &jwk, NULL), VTPMCA_OK);
    assert_int_equal(kbs_attest_request(FIXED_NONCE, jwk, report, sizeof(report), &body, NULL),
                     VTPMCA_OK);
    /* Parse the serialised body back, as a server does. */
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *doc = json_loads(text, 0, NULL);
    assert_members(doc, "init-data,runtime-data,tee-evidence");
    assert_true(json_is_null(json_object_get(doc, "init-data")));
    json_t *runtime = json_object_get(doc, "runtime-data");
    assert_members(runtime, "nonce,tee-pubkey");
    assert_string_equal(json_string_value(json_object_get(runtime, "nonce")), FIXED_NONCE);
    assert_true(json_equal(json_object_get(runtime, "tee-pubkey"), jwk));
    json_t *evidence = json_object_get(doc, "tee-evidence");
    assert_members(evidence, "primary_evidence,additional_evidence");
    assert_string_equal(json_string_value(json_object_get(evidence, "additional_evidence")), "");
    json_t *primary = json_object_get(evidence, "primary_evidence");
    assert_members(primary, "snp-report,certs-buf");
    assert_true(json_is_null(json_object_get(primary, "certs-buf")));
    char *expected_report = std_b64(report, sizeof(report));
    assert_string_equal(json_string_value(json_object_get(primary, "snp-report")), expected_report);
    free(expected_report);
    free(text);
    json_decref(doc);
    json_decref(body);

    assert_int_equal(kbs_attest_request(FIXED_NONCE, jwk, report, 0, &body, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_attest_request(FIXED_NONCE, jwk, NULL, 1184, &body, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_attest_request(NULL, jwk, report, 1184, &body, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    json_decref(jwk);
}

static void test_resource_request_shape(void **state)
{
    (void)state;
    uint8_t blob[61];
    assert_int_equal(RAND_bytes(blob, sizeof(blob)), 1);
    blob[0] = 0xfb; /* base64url '-'/'_' territory */
    json_t *body = NULL;
    assert_int_equal(kbs_resource_request(blob, sizeof(blob), &body, NULL), VTPMCA_OK);
    assert_members(body, "wrapped-key");
    char *expected = url_b64(blob, sizeof(blob));
    assert_string_equal(json_string_value(json_object_get(body, "wrapped-key")), expected);
    free(expected);
    json_decref(body);
    uint8_t big[4097] = {0};
    assert_int_equal(kbs_resource_request(big, 4097, &body, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_resource_request(big, 4096, &body, NULL), VTPMCA_OK);
    json_decref(body);
    assert_int_equal(kbs_resource_request(big, 0, &body, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- a scripted HTTP peer on 127.0.0.1 ---- */

static struct {
    struct MHD_Daemon *daemon;
    char url[64];
    pthread_mutex_t lock;
    /* the next reply */
    unsigned status;
    char *body;
    size_t body_len;
    const char *set_cookie;
    /* what the last request carried */
    unsigned requests;
    char method[16], path[256], cookie[256], content_type[128];
    char *request_body;
} peer;

typedef struct {
    char *data;
    size_t len;
} upload_buf;

static enum MHD_Result peer_handle(void *cls, struct MHD_Connection *connection, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    upload_buf *up = *con_cls;
    if (up == NULL) {
        *con_cls = calloc(1, sizeof(upload_buf));
        return *con_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size != 0) {
        char *bigger = realloc(up->data, up->len + *upload_data_size + 1);
        if (bigger == NULL)
            return MHD_NO;
        up->data = bigger;
        memcpy(up->data + up->len, upload_data, *upload_data_size);
        up->len += *upload_data_size;
        up->data[up->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }
    const char *cookie = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Cookie");
    const char *ctype = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Type");
    pthread_mutex_lock(&peer.lock);
    peer.requests++;
    snprintf(peer.method, sizeof(peer.method), "%s", method);
    snprintf(peer.path, sizeof(peer.path), "%s", url);
    snprintf(peer.cookie, sizeof(peer.cookie), "%s", cookie ? cookie : "");
    snprintf(peer.content_type, sizeof(peer.content_type), "%s", ctype ? ctype : "");
    free(peer.request_body);
    peer.request_body = up->data;
    up->data = NULL;
    struct MHD_Response *response = MHD_create_response_from_buffer(
        peer.body_len, peer.body != NULL ? peer.body : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (peer.set_cookie != NULL)
        MHD_add_response_header(response, "Set-Cookie", peer.set_cookie);
    MHD_add_response_header(response, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(connection, peer.status, response);
    pthread_mutex_unlock(&peer.lock);
    MHD_destroy_response(response);
    return ret;
}

static void peer_done(void *cls, struct MHD_Connection *connection, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    upload_buf *up = *con_cls;
    if (up != NULL)
        free(up->data);
    free(up);
    *con_cls = NULL;
}

static unsigned peer_request_count(void)
{
    pthread_mutex_lock(&peer.lock);
    unsigned n = peer.requests;
    pthread_mutex_unlock(&peer.lock);
    return n;
}

static void peer_reply(unsigned status, const char *body, const char *set_cookie)
{
    pthread_mutex_lock(&peer.lock);
    free(peer.body);
    peer.body = body != NULL ? strdup(body) : NULL;
    peer.body_len = body != NULL ? strlen(body) : 0;
    peer.status = status;
    peer.set_cookie = set_cookie;
    pthread_mutex_unlock(&peer.lock);
}

#define SESSION_COOKIE "kbs-session-id=0123456789abcdef0123456789abcdef; Path=/kbs; HttpOnly"
#define AUTH_REPLY "{\"nonce\":\"" FIXED_NONCE "\",\"extra-params\":\"\"}"

static kbs_client *new_client(void)
{
    kbs_client *client = NULL;
    vtpmca_diag diag = {{0}};
    if (kbs_client_new(peer.url, 5000, &client, &diag) != VTPMCA_OK)
        fail_msg("kbs_client_new: %s", diag.msg);
    return client;
}

static void authenticate(kbs_client *client)
{
    peer_reply(200, AUTH_REPLY, SESSION_COOKIE);
    vtpmca_diag diag = {{0}};
    if (kbs_client_auth(client, &diag) != VTPMCA_OK)
        fail_msg("auth: %s", diag.msg);
}

static void test_session_on_the_wire(void **state)
{
    (void)state;
    kbs_client *client = new_client();
    assert_null(kbs_client_nonce_b64(client));
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    assert_int_equal(kbs_client_nonce(client, &nonce, &nonce_len), VTPMCA_ERR_NOT_FOUND);

    authenticate(client);
    assert_string_equal(peer.method, "POST");
    assert_string_equal(peer.path, "/kbs/v0/auth");
    assert_string_equal(peer.content_type, "application/json");
    assert_string_equal(peer.cookie, "");
    assert_string_equal(peer.request_body,
                        "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":\"\"}");
    assert_string_equal(kbs_client_nonce_b64(client), FIXED_NONCE);
    assert_int_equal(kbs_client_nonce(client, &nonce, &nonce_len), VTPMCA_OK);
    assert_int_equal(nonce_len, 32);
    assert_int_equal(nonce[0], 0xfb);
    assert_int_equal(nonce[31], 0x1d);
    assert_int_equal(kbs_client_last_status(client), 200);

    /* attest carries the cookie and exactly the request body. */
    uint8_t report[1184] = {0};
    json_t *jwk = NULL, *request = NULL;
    assert_int_equal(kbs_tee_pubkey_jwk(g_p521, &jwk, NULL), VTPMCA_OK);
    assert_int_equal(kbs_attest_request(FIXED_NONCE, jwk, report, sizeof(report), &request, NULL),
                     VTPMCA_OK);
    peer_reply(200, "{\"token\":\"aaa.bbb.ccc\"}", NULL);
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_attest(client, request, &token, &diag), VTPMCA_OK);
    assert_string_equal(token, "aaa.bbb.ccc");
    assert_string_equal(peer.method, "POST");
    assert_string_equal(peer.path, "/kbs/v0/attest");
    assert_string_equal(peer.cookie, "kbs-session-id=0123456789abcdef0123456789abcdef");
    json_t *sent = json_loads(peer.request_body, 0, NULL);
    assert_true(json_equal(sent, request));
    json_decref(sent);
    free(token);

    /* resource: GET with the cookie, no body. */
    peer_reply(200, "{\"protected\":\"p\",\"ciphertext\":\"c\"}", NULL);
    json_t *jwe = NULL;
    assert_int_equal(kbs_client_resource(client, "default/sample/test", NULL, 0, &jwe, &diag),
                     VTPMCA_OK);
    assert_string_equal(peer.method, "GET");
    assert_string_equal(peer.path, "/kbs/v0/resource/default/sample/test");
    assert_string_equal(peer.cookie, "kbs-session-id=0123456789abcdef0123456789abcdef");
    assert_string_equal(peer.request_body != NULL ? peer.request_body : "", "");
    assert_string_equal(json_string_value(json_object_get(jwe, "protected")), "p");
    json_decref(jwe);

    /* wrapped-key mode: POST with {"wrapped-key"}. */
    uint8_t blob[40];
    memset(blob, 0xfe, sizeof(blob));
    assert_int_equal(
        kbs_client_resource(client, "vtpmca/persistence-key/abc", blob, sizeof(blob), &jwe, &diag),
        VTPMCA_OK);
    assert_string_equal(peer.method, "POST");
    assert_string_equal(peer.path, "/kbs/v0/resource/vtpmca/persistence-key/abc");
    assert_string_equal(peer.content_type, "application/json");
    json_t *expected_body = NULL;
    assert_int_equal(kbs_resource_request(blob, sizeof(blob), &expected_body, NULL), VTPMCA_OK);
    sent = json_loads(peer.request_body, 0, NULL);
    assert_true(json_equal(sent, expected_body));
    json_decref(sent);
    json_decref(expected_body);
    json_decref(jwe);

    /* A path that is not REPO/TYPE/TAG is refused before anything is sent. */
    unsigned before = peer_request_count();
    const char *bad_paths[] = {"a/b", "a/b/c/d", "a//c", "a/b/c?x=1", "../b/c", ""};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
        assert_int_equal(kbs_client_resource(client, bad_paths[i], NULL, 0, &jwe, NULL),
                         VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(peer_request_count(), before);
    json_decref(request);
    json_decref(jwk);
    kbs_client_free(client);
}

static void expect_auth_failure(const char *body, const char *cookie, vtpmca_err want,
                                const char *diag_part)
{
    kbs_client *client = new_client();
    peer_reply(200, body, cookie);
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_auth(client, &diag), want);
    if (strstr(diag.msg, diag_part) == NULL)
        fail_msg("diag \"%s\" does not mention \"%s\"", diag.msg, diag_part);
    assert_null(kbs_client_nonce_b64(client));
    kbs_client_free(client);
}

static void test_auth_reply_checks(void **state)
{
    (void)state;
    expect_auth_failure(AUTH_REPLY, NULL, VTPMCA_ERR_PARSE, "cookie");
    expect_auth_failure("{\"nonce\":\"" FIXED_NONCE "\"}", SESSION_COOKIE, VTPMCA_ERR_PARSE,
                        "extra-params");
    expect_auth_failure("{\"extra-params\":\"\"}", SESSION_COOKIE, VTPMCA_ERR_PARSE, "nonce");
    /* url-safe alphabet, missing padding, empty */
    expect_auth_failure("{\"nonce\":\"-_8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0=\","
                        "\"extra-params\":\"\"}",
                        SESSION_COOKIE, VTPMCA_ERR_PARSE, "base64");
    expect_auth_failure("{\"nonce\":\"AAE\",\"extra-params\":\"\"}", SESSION_COOKIE,
                        VTPMCA_ERR_PARSE, "base64");
    expect_auth_failure("{\"nonce\":\"\",\"extra-params\":\"\"}", SESSION_COOKIE, VTPMCA_ERR_PARSE,
                        "base64");
    expect_auth_failure("{\"nonce\":\"" FIXED_NONCE "\",\"nonce\":\"AAAA\",\"extra-params\":\"\"}",
                        SESSION_COOKIE, VTPMCA_ERR_PARSE, "JSON object"); /* duplicate member */
    expect_auth_failure("[\"nonce\"]", SESSION_COOKIE, VTPMCA_ERR_PARSE, "JSON object");
    expect_auth_failure("not json", SESSION_COOKIE, VTPMCA_ERR_PARSE, "JSON object");
}

static void expect_status(unsigned status, const char *body, vtpmca_err want, const char *part)
{
    kbs_client *client = new_client();
    authenticate(client);
    peer_reply(status, body, NULL);
    json_t *request = json_pack("{s:s}", "x", "y");
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_attest(client, request, &token, &diag), want);
    assert_null(token);
    assert_int_equal(kbs_client_last_status(client), status);
    if (strstr(diag.msg, part) == NULL)
        fail_msg("diag \"%s\" does not mention \"%s\"", diag.msg, part);
    json_decref(request);
    kbs_client_free(client);
}

static void test_error_statuses(void **state)
{
    (void)state;
    expect_status(401, "{\"error\":\"attestation_failed\",\"message\":\"measurement not allowed\"}",
                  VTPMCA_ERR_POLICY, "HTTP 401 attestation_failed: measurement not allowed");
    expect_status(403, "{\"error\":\"policy\",\"message\":\"refused\"}", VTPMCA_ERR_POLICY,
                  "HTTP 403");
    expect_status(404, "{\"error\":\"not_found\",\"message\":\"no such resource\"}",
                  VTPMCA_ERR_NOT_FOUND, "no such resource");
    expect_status(413, "", VTPMCA_ERR_LIMIT, "HTTP 413");
    expect_status(400, "{\"error\":\"parse\",\"message\":\"bad\\u0001\"}", VTPMCA_ERR_PARSE,
                  "bad?"); /* control characters from the server are not passed on */
    expect_status(500, "oops", VTPMCA_ERR_NETWORK, "HTTP 500");
    expect_status(503, NULL, VTPMCA_ERR_NETWORK, "HTTP 503");
    /* 200 without a token */
    expect_status(200, "{\"tok\":\"x\"}", VTPMCA_ERR_PARSE, "token");
    expect_status(200, "{\"token\":\"\"}", VTPMCA_ERR_PARSE, "token");
}

static void test_oversized_reply(void **state)
{
    (void)state;
    kbs_client *client = new_client();
    authenticate(client);
    size_t len = KBS_CLIENT_RESPONSE_MAX + 100;
    char *big = malloc(len + 1);
    memset(big, ' ', len);
    big[0] = '{';
    memcpy(big + len - 2, "}", 2);
    peer_reply(200, big, NULL);
    free(big);
    json_t *jwe = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_resource(client, "a/b/c", NULL, 0, &jwe, &diag), VTPMCA_ERR_LIMIT);
    assert_null(jwe);
    kbs_client_free(client);
}

static void test_unreachable_server_and_bad_urls(void **state)
{
    (void)state;
    kbs_client *client = NULL;
    assert_int_equal(kbs_client_new("ftp://127.0.0.1/", 0, &client, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_client_new("127.0.0.1:80", 0, &client, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_client_new(NULL, 0, &client, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(client);
    /* A port nobody listens on: bind one, note it, close it. */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t alen = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &alen), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(addr.sin_port));
    assert_int_equal(kbs_client_new(url, 2000, &client, NULL), VTPMCA_OK);
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_auth(client, &diag), VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "POST /kbs/v0/auth:"));
    assert_int_equal(kbs_client_last_status(client), 0);
    kbs_client_free(client);
    kbs_client_free(NULL);
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_p521 = EVP_EC_gen("P-521");
    g_p384 = EVP_EC_gen("P-384");
    g_p256 = EVP_EC_gen("P-256");
    g_rsa = EVP_RSA_gen(2048);
    if (g_p521 == NULL || g_p384 == NULL || g_p256 == NULL || g_rsa == NULL)
        return -1;
    pthread_mutex_init(&peer.lock, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    peer.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, peer_handle,
                                   NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_NOTIFY_COMPLETED, peer_done, NULL, MHD_OPTION_END);
    if (peer.daemon == NULL)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(peer.daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        return -1;
    /* A trailing slash on purpose: the client drops it. */
    snprintf(peer.url, sizeof(peer.url), "http://127.0.0.1:%u/", (unsigned)info->port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(peer.daemon);
    free(peer.body);
    free(peer.request_body);
    pthread_mutex_destroy(&peer.lock);
    EVP_PKEY_free(g_p521);
    EVP_PKEY_free(g_p384);
    EVP_PKEY_free(g_p256);
    EVP_PKEY_free(g_rsa);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_request_shape),
        cmocka_unit_test(test_tee_pubkey_jwk_ec),
        cmocka_unit_test(test_tee_pubkey_jwk_rsa),
        cmocka_unit_test(test_report_data_svsm),
        cmocka_unit_test(test_report_data_trustee_jcs),
        cmocka_unit_test(test_report_data_refusals),
        cmocka_unit_test(test_flavour_parse),
        cmocka_unit_test(test_attest_request_shape),
        cmocka_unit_test(test_resource_request_shape),
        cmocka_unit_test(test_session_on_the_wire),
        cmocka_unit_test(test_auth_reply_checks),
        cmocka_unit_test(test_error_statuses),
        cmocka_unit_test(test_oversized_reply),
        cmocka_unit_test(test_unreachable_server_and_bad_urls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
