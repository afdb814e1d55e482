/* Unit tests of the rollback ledger protocol (attest/ledger_protocol.c):
 *  - HKDF against RFC 5869 test vectors 1 and 3, and the ledger key against the openssl CLI;
 *  - each canonical MAC input built here byte by byte, and its HMAC computed with OpenSSL's
 *    one-shot HMAC() and the openssl CLI;
 *  - JSON and CBOR round trips and every malformed form of a request;
 *  - the open check across the 2^128 wrap;
 *  - the service in-process (real sqlite store in a temp dir, real engine, real key vault):
 *    accepted, duplicate, fork, rollback, locked, stale nonce, bad MAC, unknown, disabled and
 *    wrapped-key instances, queries, signed statements, nonce expiry and eviction, audit rows
 *    and metrics; every refusal leaves the ledger unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cbor.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/keys_fixture.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_protocol.h"

/* ---- helpers ---- */

static void hex_to(const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal(vt_hex_decode_fixed(hex, out, len), VTPMCA_OK);
}

/* Runs a shell command and returns its first output line (without the newline). */
static void run_line(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, (int)size, p));
    assert_int_equal(pclose(p), 0);
    out[strcspn(out, "\n")] = '\0';
}

static void hex_of(const uint8_t *data, size_t len, char *out, size_t size)
{
    assert_int_equal(vt_hex_encode(data, len, out, size), VTPMCA_OK);
}

/* The canonical bytes, built here independently of the library. */
typedef struct {
    uint8_t b[LEDGER_MAC_INPUT_MAX];
    size_t n;
} bytes;

static void b_raw(bytes *b, const void *data, size_t len)
{
    assert_true(b->n + len <= sizeof(b->b));
    memcpy(b->b + b->n, data, len);
    b->n += len;
}

static void b_field(bytes *b, const void *data, size_t len)
{
    uint8_t prefix[4] = {0, 0, (uint8_t)(len >> 8), (uint8_t)len};
    b_raw(b, prefix, 4);
    b_raw(b, data, len);
}

static void b_label(bytes *b, const char *label)
{
    b_raw(b, label, strlen(label) + 1);
}

static void hmac_oneshot(const uint8_t key[32], const bytes *b, uint8_t out[32])
{
    unsigned int len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, 32, b->b, b->n, out, &len));
    assert_int_equal(len, 32);
}

static ledger_msg sample_advance(void)
{
    ledger_msg m;
    memset(&m, 0, sizeof(m));
    snprintf(m.instance, sizeof(m.instance), "vm-1");
    for (int i = 0; i < 16; i++)
        m.counter[i] = (uint8_t)(0xf0 + i);
    m.root_len = 32;
    for (int i = 0; i < 32; i++)
        m.root[i] = (uint8_t)i;
    m.nonce_len = 16;
    memset(m.nonce, 0xab, 16);
    m.has_entry = true;
    return m;
}

/* ---- keys ---- */

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    /* Test case 1. */
    uint8_t ikm[22], salt[13], info[10], okm[42], want[42];
    memset(ikm, 0x0b, sizeof(ikm));
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    hex_to("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
           want, sizeof(want));
    assert_int_equal(ledger_hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), info, sizeof(info),
                                        okm, sizeof(okm), NULL),
                     VTPMCA_OK);
    assert_memory_equal(okm, want, sizeof(want));
    /* Test case 3: empty salt and info. */
    hex_to("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
           want, sizeof(want));
    assert_int_equal(ledger_hkdf_sha256(ikm, sizeof(ikm), NULL, 0, NULL, 0, okm, sizeof(okm), NULL),
                     VTPMCA_OK);
    assert_memory_equal(okm, want, sizeof(want));
    /* Bad arguments. */
    assert_int_equal(ledger_hkdf_sha256(NULL, 1, NULL, 0, NULL, 0, okm, 32, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_hkdf_sha256(ikm, 0, NULL, 0, NULL, 0, okm, 32, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_hkdf_sha256(ikm, 1, NULL, 0, NULL, 0, okm, 255 * 32 + 1, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

static void test_ledger_key_matches_openssl_cli(void **state)
{
    (void)state;
    uint8_t pk[32], key[LEDGER_KEY_LEN], want[LEDGER_KEY_LEN];
    for (int i = 0; i < 32; i++)
        pk[i] = (uint8_t)(7 * i + 1);
    assert_int_equal(ledger_key_derive(pk, sizeof(pk), "vm-1.prod:eu", key, NULL), VTPMCA_OK);
    char pk_hex[65], cmd[512], line[256];
    hex_of(pk, sizeof(pk), pk_hex, sizeof(pk_hex));
    snprintf(cmd, sizeof(cmd),
             "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt "
             "salt:" LEDGER_KDF_SALT " -kdfopt info:vm-1.prod:eu HKDF",
             pk_hex);
    run_line(cmd, line, sizeof(line));
    /* "AA:BB:..." */
    for (size_t i = 0; i < LEDGER_KEY_LEN; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(line + 3 * i, "%2x", &v), 1);
        want[i] = (uint8_t)v;
    }
    assert_memory_equal(key, want, LEDGER_KEY_LEN);
    /* The instance is the info: another instance, another key. */
    uint8_t other[LEDGER_KEY_LEN];
    assert_int_equal(ledger_key_derive(pk, sizeof(pk), "vm-2", other, NULL), VTPMCA_OK);
    assert_memory_not_equal(key, other, LEDGER_KEY_LEN);
    /* Bad arguments. */
    assert_int_equal(ledger_key_derive(pk, 0, "vm-1", key, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_key_derive(pk, 65, "vm-1", key, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_key_derive(pk, 32, "bad id", key, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_key_derive(pk, 32, NULL, key, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- MAC construction ---- */

static void check_mac(ledger_msg_kind kind, ledger_msg *m, const bytes *expected)
{
    uint8_t key[32], input[LEDGER_MAC_INPUT_MAX], want[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x40 + i);
    size_t len = 0;
    assert_int_equal(ledger_msg_mac_input(kind, m, input, sizeof(input), &len, NULL), VTPMCA_OK);
    assert_int_equal(len, expected->n);
    assert_memory_equal(input, expected->b, len);
    hmac_oneshot(key, expected, want);
    assert_int_equal(ledger_msg_sign(kind, m, key, NULL), VTPMCA_OK);
    assert_memory_equal(m->mac, want, 32);
    assert_int_equal(ledger_msg_verify(kind, m, key, NULL), VTPMCA_OK);
    m->mac[31] ^= 1;
    assert_int_equal(ledger_msg_verify(kind, m, key, NULL), VTPMCA_ERR_CRYPTO);
    m->mac[31] ^= 1;
    key[0] ^= 1;
    assert_int_equal(ledger_msg_verify(kind, m, key, NULL), VTPMCA_ERR_CRYPTO);
}

static void test_mac_advance_request(void **state)
{
    (void)state;
    ledger_msg m = sample_advance();
    bytes b = {0};
    b_label(&b, "vtpmca-ledger-advance-v1");
    b_field(&b, "vm-1", 4);
    b_field(&b, m.counter, 16);
    b_field(&b, m.root, 32);
    b_field(&b, m.nonce, 16);
    check_mac(LEDGER_MSG_ADVANCE_REQUEST, &m, &b);

    /* The same MAC from the openssl CLI over the bytes written to a file. */
    char path[] = "/tmp/vtpmca-ledger-mac-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b.b, b.n), (ssize_t)b.n);
    close(fd);
    char cmd[512], line[256], want[65];
    snprintf(cmd, sizeof(cmd),
             "openssl dgst -sha256 -mac HMAC -macopt "
             "hexkey:404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f -r %s",
             path);
    run_line(cmd, line, sizeof(line));
    unlink(path);
    hex_of(m.mac, 32, want, sizeof(want));
    assert_memory_equal(line, want, 64);
}

static void test_mac_advance_answer(void **state)
{
    (void)state;
    ledger_msg m = sample_advance();
    snprintf(m.result, sizeof(m.result), "accepted");
    bytes b = {0};
    b_label(&b, "vtpmca-ledger-advance-ack-v1");
    b_field(&b, "vm-1", 4);
    b_field(&b, "accepted", 8);
    b_field(&b, m.counter, 16);
    b_field(&b, m.root, 32);
    b_field(&b, m.nonce, 16);
    check_mac(LEDGER_MSG_ADVANCE_ANSWER, &m, &b);
    /* The refusal info is not covered. */
    uint8_t mac[32];
    memcpy(mac, m.mac, 32);
    m.locked = true;
    snprintf(m.error, sizeof(m.error), "fork");
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x40 + i);
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_ADVANCE_ANSWER, &m, key, NULL), VTPMCA_OK);
    assert_memory_equal(m.mac, mac, 32);
    /* Without an entry, counter and root are empty fields. */
    m.has_entry = false;
    bytes e = {0};
    b_label(&e, "vtpmca-ledger-advance-ack-v1");
    b_field(&e, "vm-1", 4);
    b_field(&e, "accepted", 8);
    b_field(&e, "", 0);
    b_field(&e, "", 0);
    b_field(&e, m.nonce, 16);
    check_mac(LEDGER_MSG_ADVANCE_ANSWER, &m, &e);
}

static void test_mac_query(void **state)
{
    (void)state;
    ledger_msg m = sample_advance();
    bytes b = {0};
    b_label(&b, "vtpmca-ledger-query-v1");
    b_field(&b, "vm-1", 4);
    b_field(&b, m.nonce, 16);
    check_mac(LEDGER_MSG_QUERY_REQUEST, &m, &b);

    snprintf(m.result, sizeof(m.result), "found");
    memset(m.origin, 0x11, 16);
    m.time_ms = 0x0102030405060708LL;
    bytes a = {0};
    b_label(&a, "vtpmca-ledger-query-answer-v1");
    b_field(&a, "vm-1", 4);
    b_field(&a, "found", 5);
    b_field(&a, m.counter, 16);
    b_field(&a, m.origin, 16);
    b_field(&a, m.root, 32);
    const uint8_t time_be[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    b_field(&a, time_be, 8);
    b_field(&a, m.nonce, 16);
    check_mac(LEDGER_MSG_QUERY_ANSWER, &m, &a);

    m.has_entry = false;
    snprintf(m.result, sizeof(m.result), "none");
    bytes n = {0};
    b_label(&n, "vtpmca-ledger-query-answer-v1");
    b_field(&n, "vm-1", 4);
    b_field(&n, "none", 4);
    for (int i = 0; i < 4; i++)
        b_field(&n, "", 0);
    b_field(&n, m.nonce, 16);
    check_mac(LEDGER_MSG_QUERY_ANSWER, &m, &n);

    /* Statement requests carry no MAC; small buffers are refused. */
    uint8_t buf[LEDGER_MAC_INPUT_MAX];
    size_t len = 0;
    assert_int_equal(
        ledger_msg_mac_input(LEDGER_MSG_STATEMENT_REQUEST, &m, buf, sizeof(buf), &len, NULL),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_msg_mac_input(LEDGER_MSG_QUERY_REQUEST, &m, buf, 20, &len, NULL),
                     VTPMCA_ERR_LIMIT);
    assert_int_equal(ledger_msg_mac_input(LEDGER_MSG_QUERY_REQUEST, NULL, buf, 20, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* The worked example of docs/protocol.md (computed there with Python's hmac/hashlib). */
static void test_worked_example(void **state)
{
    (void)state;
    uint8_t pk[32], key[LEDGER_KEY_LEN], want[LEDGER_KEY_LEN];
    memset(pk, 0x42, sizeof(pk));
    assert_int_equal(ledger_key_derive(pk, sizeof(pk), "vm-1", key, NULL), VTPMCA_OK);
    hex_to("310ef11194e60babd57b5bf8f04bcf05b5565bb773831e82c03fc68ddf0b3bef", want, sizeof(want));
    assert_memory_equal(key, want, sizeof(want));
    ledger_msg m;
    memset(&m, 0, sizeof(m));
    snprintf(m.instance, sizeof(m.instance), "vm-1");
    m.counter[15] = 0x2a;
    m.root_len = 32;
    for (int i = 0; i < 32; i++)
        m.root[i] = (uint8_t)i;
    m.nonce_len = 16;
    memset(m.nonce, 0xab, 16);
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_ADVANCE_REQUEST, &m, key, NULL), VTPMCA_OK);
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, &m, &body, &len, NULL),
        VTPMCA_OK);
    const char *json = "{\"instance\":\"vm-1\",\"counter\":\"0000000000000000000000000000002a\","
                       "\"root\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                       "\"nonce\":\"q6urq6urq6urq6urq6urqw==\","
                       "\"mac\":\"+Bl6oD28aZpXoxIMcBzItsLgXiR5tDOCDtvHG4ecd54=\"}";
    assert_int_equal(len, strlen(json));
    assert_memory_equal(body, json, len);
    free(body);
    snprintf(m.result, sizeof(m.result), "accepted");
    m.has_entry = true;
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_ADVANCE_ANSWER, &m, key, NULL), VTPMCA_OK);
    char *mac = NULL;
    assert_int_equal(vt_b64_encode_alloc(m.mac, 32, VT_B64_STD, &mac), VTPMCA_OK);
    assert_string_equal(mac, "ScfLCtnm8sknA/5m/6G9he/IYbFBq77/oBEeANHk0/M=");
    free(mac);
}

/* ---- encoding ---- */

static void round_trip(ledger_msg_kind kind, ledger_format format, const ledger_msg *m)
{
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(ledger_msg_encode(kind, format, m, &body, &len, NULL), VTPMCA_OK);
    ledger_msg back;
    vtpmca_diag diag = {{0}};
    if (ledger_msg_decode(kind, format, body, len, &back, &diag) != VTPMCA_OK)
        fail_msg("decode: %s", diag.msg);
    free(body);
    assert_string_equal(back.result, m->result);
    assert_int_equal(back.nonce_len, m->nonce_len);
    assert_memory_equal(back.nonce, m->nonce, m->nonce_len);
    if (kind != LEDGER_MSG_STATEMENT_REQUEST && kind != LEDGER_MSG_QUERY_REQUEST)
        assert_int_equal(back.has_entry, m->has_entry);
    if (kind == LEDGER_MSG_ADVANCE_REQUEST || kind == LEDGER_MSG_QUERY_REQUEST ||
        kind == LEDGER_MSG_STATEMENT_REQUEST)
        assert_string_equal(back.instance, m->instance);
    if (kind != LEDGER_MSG_STATEMENT_REQUEST)
        assert_memory_equal(back.mac, m->mac, 32);
    if (back.has_entry) {
        assert_memory_equal(back.counter, m->counter, 16);
        assert_int_equal(back.root_len, m->root_len);
        assert_memory_equal(back.root, m->root, m->root_len);
    }
    if (kind == LEDGER_MSG_QUERY_ANSWER && back.has_entry) {
        assert_memory_equal(back.origin, m->origin, 16);
        assert_int_equal(back.time_ms, m->time_ms);
    }
    if (kind == LEDGER_MSG_ADVANCE_ANSWER && m->error[0] != '\0') {
        assert_string_equal(back.error, m->error);
        assert_string_equal(back.message, m->message);
        assert_int_equal(back.locked, m->locked);
    }
}

static void test_round_trips(void **state)
{
    (void)state;
    for (int f = 0; f < 2; f++) {
        ledger_format format = f == 0 ? LEDGER_FORMAT_JSON : LEDGER_FORMAT_CBOR;
        ledger_msg m = sample_advance();
        memset(m.mac, 0x5c, 32);
        round_trip(LEDGER_MSG_ADVANCE_REQUEST, format, &m);
        round_trip(LEDGER_MSG_QUERY_REQUEST, format, &m);
        round_trip(LEDGER_MSG_STATEMENT_REQUEST, format, &m);
        snprintf(m.result, sizeof(m.result), "duplicate");
        round_trip(LEDGER_MSG_ADVANCE_ANSWER, format, &m);
        snprintf(m.result, sizeof(m.result), "rollback");
        snprintf(m.error, sizeof(m.error), "rollback");
        snprintf(m.message, sizeof(m.message), "not after the ledger's");
        m.locked = true;
        round_trip(LEDGER_MSG_ADVANCE_ANSWER, format, &m);
        memset(m.error, 0, sizeof(m.error));
        snprintf(m.result, sizeof(m.result), "found");
        memset(m.origin, 0x77, 16);
        m.time_ms = 1767225600123LL;
        round_trip(LEDGER_MSG_QUERY_ANSWER, format, &m);
        m.has_entry = false;
        snprintf(m.result, sizeof(m.result), "none");
        round_trip(LEDGER_MSG_QUERY_ANSWER, format, &m);
    }
}

static void test_json_shape(void **state)
{
    (void)state;
    ledger_msg m = sample_advance();
    memset(m.mac, 0, 32);
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, &m, &body, &len, NULL),
        VTPMCA_OK);
    const char *want = "{\"instance\":\"vm-1\",\"counter\":\"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\","
                       "\"root\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                       "\"nonce\":\"q6urq6urq6urq6urq6urqw==\","
                       "\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(body, want, len);
    free(body);
    /* CBOR: a map of 5 with byte strings. */
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_CBOR, &m, &body, &len, NULL),
        VTPMCA_OK);
    assert_int_equal(body[0], 0xa5);
    struct cbor_load_result r;
    cbor_item_t *item = cbor_load(body, len, &r);
    assert_non_null(item);
    struct cbor_pair *pairs = cbor_map_handle(item);
    assert_true(cbor_isa_bytestring(pairs[1].value));
    assert_int_equal(cbor_bytestring_length(pairs[1].value), 16);
    cbor_decref(&item);
    free(body);
}

static void expect_bad(ledger_msg_kind kind, ledger_format format, const void *body, size_t len,
                       const char *needle)
{
    ledger_msg out;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_msg_decode(kind, format, body, len, &out, &diag);
    if (err == VTPMCA_OK)
        fail_msg("accepted: %.*s", (int)len, (const char *)body);
    if (needle != NULL && strstr(diag.msg, needle) == NULL)
        fail_msg("diag \"%s\" does not say \"%s\"", diag.msg, needle);
    /* Nothing of a refused body is kept. */
    ledger_msg zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&out, &zero, sizeof(out));
}

#define GOOD_COUNTER "\"counter\":\"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\""
#define GOOD_ROOT "\"root\":\"AAECAwQ=\""
#define GOOD_NONCE "\"nonce\":\"q6urq6urq6urq6urq6urqw==\""
#define GOOD_MAC "\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\""

static void bad_json(const char *text, const char *needle)
{
    expect_bad(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, text, strlen(text), needle);
}

static void test_malformed_json(void **state)
{
    (void)state;
    const char *good =
        "{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}";
    ledger_msg out;
    assert_int_equal(ledger_msg_decode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON,
                                       (const uint8_t *)good, strlen(good), &out, NULL),
                     VTPMCA_OK);
    bad_json("", "empty");
    bad_json("{", "malformed JSON");
    bad_json("[1]", "JSON object");
    bad_json("{\"instance\":\"vm-1\"," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "missing member \"counter\"");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_NONCE "," GOOD_MAC "}",
             "missing member \"root\"");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_MAC "}",
             "missing member \"nonce\"");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "}",
             "missing member \"mac\"");
    bad_json("{" GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "missing member \"instance\"");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC
             ",\"extra\":1}",
             "unknown member \"extra\"");
    /* A member of another message kind is unknown here too. */
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC
             ",\"time\":1}",
             "unknown member \"time\"");
    bad_json("{\"instance\":\"vm-1\",\"instance\":\"vm-2\"," GOOD_COUNTER "," GOOD_ROOT
             "," GOOD_NONCE "," GOOD_MAC "}",
             "duplicate");
    bad_json("{\"instance\":7," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "\"instance\" must be a string");
    bad_json("{\"instance\":\"vm 1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "\"instance\"");
    bad_json("{\"instance\":\"\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "\"instance\"");
    bad_json("{\"instance\":\"vm-1\",\"counter\":\"f0f1f2f3f4f5f6f7f8f9fafbfcfdfef\"," GOOD_ROOT
             "," GOOD_NONCE "," GOOD_MAC "}",
             "\"counter\"");
    bad_json("{\"instance\":\"vm-1\",\"counter\":\"g0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\"," GOOD_ROOT
             "," GOOD_NONCE "," GOOD_MAC "}",
             "non-hex");
    bad_json("{\"instance\":\"vm-1\",\"counter\":12," GOOD_ROOT "," GOOD_NONCE "," GOOD_MAC "}",
             "\"counter\" must be");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER ",\"root\":\"\"," GOOD_NONCE "," GOOD_MAC "}",
             "\"root\"");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER
             ",\"root\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1"
             "Njc4OTo7PD0+P0A=\"," GOOD_NONCE "," GOOD_MAC "}",
             "\"root\" must be 1 to 64 bytes, got 65");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER ",\"root\":\"AAECAwQ\"," GOOD_NONCE "," GOOD_MAC
             "}",
             "base64");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER ",\"root\":\"-_8=\"," GOOD_NONCE "," GOOD_MAC
             "}",
             "base64");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT
             ",\"nonce\":\"q6urq6urq6urq6urq6ur\"," GOOD_MAC "}",
             "\"nonce\" must be 16 to 64 bytes, got 15");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE
             ",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"}",
             "\"mac\" must be 32 to 32 bytes, got 31");
    bad_json("{\"instance\":\"vm-1\"," GOOD_COUNTER "," GOOD_ROOT "," GOOD_NONCE ",\"mac\":null}",
             "\"mac\" must be");
    /* Larger than any ledger message. */
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, ' ', 4999);
    big[0] = '{';
    big[4998] = '}';
    big[4999] = '\0';
    bad_json(big, "larger than");
    free(big);
    /* Answers tolerate unknown members but need result, nonce and mac, and whole entries. */
    const char *answer = "{\"result\":\"accepted\"," GOOD_NONCE "," GOOD_MAC ",\"future\":[1]}";
    assert_int_equal(ledger_msg_decode(LEDGER_MSG_ADVANCE_ANSWER, LEDGER_FORMAT_JSON,
                                       (const uint8_t *)answer, strlen(answer), &out, NULL),
                     VTPMCA_OK);
    const char *partial = "{\"result\":\"accepted\"," GOOD_COUNTER "," GOOD_NONCE "," GOOD_MAC "}";
    expect_bad(LEDGER_MSG_ADVANCE_ANSWER, LEDGER_FORMAT_JSON, partial, strlen(partial),
               "part of an entry");
    const char *no_result = "{" GOOD_NONCE "," GOOD_MAC "}";
    expect_bad(LEDGER_MSG_QUERY_ANSWER, LEDGER_FORMAT_JSON, no_result, strlen(no_result),
               "missing member \"result\"");
    const char *neg_time =
        "{\"result\":\"found\"," GOOD_COUNTER ",\"origin\":\"00000000000000000"
        "000000000000000\"," GOOD_ROOT ",\"time\":-1," GOOD_NONCE "," GOOD_MAC "}";
    expect_bad(LEDGER_MSG_QUERY_ANSWER, LEDGER_FORMAT_JSON, neg_time, strlen(neg_time),
               "\"time\" must be a non-negative integer");
}

/* Builds a CBOR map from (key, item) pairs; NULL key = an integer key 1. */
static size_t cbor_body(uint8_t **out, size_t n, const char *const *keys, cbor_item_t **values)
{
    cbor_item_t *map = cbor_new_definite_map(n);
    for (size_t i = 0; i < n; i++) {
        cbor_item_t *k = keys[i] != NULL ? cbor_build_string(keys[i]) : cbor_build_uint8(1);
        assert_true(cbor_map_add(map, (struct cbor_pair){.key = k, .value = values[i]}));
        cbor_decref(&k);
        cbor_decref(&values[i]);
    }
    size_t size = 0;
    size_t len = cbor_serialize_alloc(map, out, &size);
    cbor_decref(&map);
    assert_true(len > 0);
    return len;
}

static void bad_cbor_query(const char *k0, cbor_item_t *v0, cbor_item_t *nonce, cbor_item_t *mac,
                           const char *needle)
{
    const char *keys[3] = {k0, "nonce", "mac"};
    cbor_item_t *values[3] = {v0, nonce, mac};
    uint8_t *body = NULL;
    size_t len = cbor_body(&body, 3, keys, values);
    expect_bad(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, body, len, needle);
    free(body);
}

static void test_malformed_cbor(void **state)
{
    (void)state;
    uint8_t nonce[16], mac[32];
    memset(nonce, 1, sizeof(nonce));
    memset(mac, 2, sizeof(mac));
    /* The good query. */
    {
        const char *keys[3] = {"instance", "nonce", "mac"};
        cbor_item_t *values[3] = {cbor_build_string("vm-1"), cbor_build_bytestring(nonce, 16),
                                  cbor_build_bytestring(mac, 32)};
        uint8_t *body = NULL;
        size_t len = cbor_body(&body, 3, keys, values);
        ledger_msg out;
        assert_int_equal(
            ledger_msg_decode(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, body, len, &out, NULL),
            VTPMCA_OK);
        assert_string_equal(out.instance, "vm-1");
        /* Trailing bytes and truncation. */
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, body, len);
        longer[len] = 0x00;
        expect_bad(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, longer, len + 1, "after the CBOR");
        expect_bad(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, body, len - 1, "malformed CBOR");
        free(longer);
        free(body);
    }
    /* Not a map. */
    const uint8_t array[] = {0x81, 0x01};
    expect_bad(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, array, sizeof(array), "CBOR map");
    /* Wrong value types. */
    bad_cbor_query("instance", cbor_build_bytestring((const uint8_t *)"vm-1", 4),
                   cbor_build_bytestring(nonce, 16), cbor_build_bytestring(mac, 32),
                   "\"instance\" must be a definite-length text string");
    bad_cbor_query("instance", cbor_build_string("vm-1"),
                   cbor_build_string("AQEBAQEBAQEBAQEBAQEBAQ=="), cbor_build_bytestring(mac, 32),
                   "\"nonce\" must be a definite-length byte");
    bad_cbor_query("instance", cbor_build_string("vm-1"), cbor_build_bytestring(nonce, 15),
                   cbor_build_bytestring(mac, 32), "got 15");
    bad_cbor_query("instance", cbor_build_string("vm-1"), cbor_build_bytestring(nonce, 16),
                   cbor_build_uint8(3), "\"mac\" must be");
    /* An integer key, an unknown key, a duplicate key. */
    bad_cbor_query(NULL, cbor_build_string("vm-1"), cbor_build_bytestring(nonce, 16),
                   cbor_build_bytestring(mac, 32), "keys must be definite text strings");
    bad_cbor_query("root", cbor_build_bytestring(nonce, 4), cbor_build_bytestring(nonce, 16),
                   cbor_build_bytestring(mac, 32), "unknown member \"root\"");
    bad_cbor_query("nonce", cbor_build_bytestring(nonce, 16), cbor_build_bytestring(nonce, 16),
                   cbor_build_bytestring(mac, 32), "duplicate member \"nonce\"");
    /* An indefinite-length text string. */
    {
        cbor_item_t *chunked = cbor_new_indefinite_string();
        cbor_item_t *chunk = cbor_build_string("vm-1");
        assert_true(cbor_string_add_chunk(chunked, chunk));
        cbor_decref(&chunk);
        bad_cbor_query("instance", chunked, cbor_build_bytestring(nonce, 16),
                       cbor_build_bytestring(mac, 32), "definite-length text string");
    }
    /* A counter of 15 bytes in an advance. */
    {
        uint8_t counter[16] = {0};
        const char *keys[5] = {"instance", "counter", "root", "nonce", "mac"};
        cbor_item_t *values[5] = {cbor_build_string("vm-1"), cbor_build_bytestring(counter, 15),
                                  cbor_build_bytestring(counter, 4),
                                  cbor_build_bytestring(nonce, 16), cbor_build_bytestring(mac, 32)};
        uint8_t *body = NULL;
        size_t len = cbor_body(&body, 5, keys, values);
        expect_bad(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_CBOR, body, len,
                   "\"counter\" must be 16 bytes, got 15");
        free(body);
    }
}

static void test_encode_decode_arguments(void **state)
{
    (void)state;
    ledger_msg m = sample_advance();
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, 7, &m, &body, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, NULL, &body, &len, NULL),
        VTPMCA_ERR_INVALID_ARG);
    m.root_len = 65;
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, &m, &body, &len, NULL),
        VTPMCA_ERR_INVALID_ARG);
    ledger_msg out;
    assert_int_equal(
        ledger_msg_decode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, NULL, 3, &out, NULL),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_msg_decode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON,
                                       (const uint8_t *)"{}", 2, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- the open check ---- */

static void test_check_image(void **state)
{
    (void)state;
    ledger_entry e;
    memset(&e, 0, sizeof(e));
    /* origin 2^128 - 2, ledger at 1 (wrapped): 3 steps from the origin. */
    memset(e.origin, 0xff, 16);
    e.origin[15] = 0xfe;
    e.counter[15] = 1;
    e.root_len = 4;
    memcpy(e.root, "root", 4);
    uint8_t c[16];
    memcpy(c, e.counter, 16);
    bool newer = true;
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"root", 4, &newer, NULL),
                     VTPMCA_OK);
    assert_false(newer);
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"toor", 4, &newer, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "fork"));
    /* 0 and 2^128 - 1 are before 1 (across the wrap): rollbacks. */
    memset(c, 0, 16);
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"root", 4, &newer, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, "rollback"));
    memset(c, 0xff, 16);
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"root", 4, &newer, &diag),
                     VTPMCA_ERR_CONFLICT);
    /* 2 is after 1: newer. */
    memset(c, 0, 16);
    c[15] = 2;
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"x", 1, &newer, NULL), VTPMCA_OK);
    assert_true(newer);
    assert_int_equal(ledger_check_image(NULL, c, (const uint8_t *)"x", 1, &newer, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_check_image(&e, c, (const uint8_t *)"x", 0, &newer, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- the service in-process ---- */

static struct {
    keys_env env;
    ledger *engine;
    ledger_service *svc;
    EVP_PKEY *statement_key;
    uint8_t gen_pk[KEYVAULT_KEY_MAX]; /* vm-gen's persistence key */
    size_t gen_pk_len;
    uint8_t gen_key[LEDGER_KEY_LEN]; /* its ledger key, derived here */
    uint8_t wrapped_pk[32];          /* vm-wrapped's key (the admin's) */
    uint8_t *wrapped_blob;
    size_t wrapped_blob_len;
    char wrapped_path[STORE_RESOURCE_PATH_MAX + 1];
} sx;

static void enroll(const char *id, store_key_mode mode, char *path_out)
{
    enroll_request req = {.instance_id = id, .fleet = KEYS_FLEET, .mode = mode, .actor = "test"};
    enroll_result res;
    vtpmca_diag diag = {{0}};
    if (enrollment_enroll(sx.env.st, sx.env.vault, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("enroll %s: %s", id, diag.msg);
    if (path_out != NULL)
        snprintf(path_out, STORE_RESOURCE_PATH_MAX + 1, "%s", res.resource_path);
}

static ledger_service *make_service(size_t nonce_capacity, unsigned nonce_ttl_s)
{
    ledger_service_config sc = {.engine = sx.engine,
                                .store = sx.env.st,
                                .vault = sx.env.vault,
                                .statement_key = sx.statement_key,
                                .nonce_capacity = nonce_capacity,
                                .nonce_ttl_s = nonce_ttl_s,
                                .key_cache_ttl_ms = 60000};
    ledger_service *svc = NULL;
    vtpmca_diag diag = {{0}};
    if (ledger_service_new(&sc, &svc, &diag) != VTPMCA_OK)
        fail_msg("service: %s", diag.msg);
    return svc;
}

static int service_setup(void **state)
{
    (void)state;
    memset(&sx, 0, sizeof(sx));
    if (keys_env_open(&sx.env) != 0)
        return -1;
    enroll("vm-gen", STORE_KEY_GENERATED, NULL);
    enroll("vm-off", STORE_KEY_GENERATED, NULL);
    enroll("vm-lock", STORE_KEY_GENERATED, NULL);
    enroll("vm-wrapped", STORE_KEY_WRAPPED, sx.wrapped_path);
    vtpmca_diag diag = {{0}};
    if (store_instance_set_disabled(sx.env.st, "vm-off", true, &diag) != VTPMCA_OK)
        return -1;
    /* vm-gen's persistence key as the vault holds it: what the SVSM receives at release. */
    store_instance inst;
    char context[ENROLLMENT_CONTEXT_MAX];
    if (store_instance_get(sx.env.st, "vm-gen", &inst, &diag) != VTPMCA_OK ||
        enrollment_key_context(STORE_KEY_GENERATED, "vm-gen", context, &diag) != VTPMCA_OK ||
        keyvault_unwrap(sx.env.vault, inst.wrapped_key, inst.wrapped_key_len, context, sx.gen_pk,
                        sizeof(sx.gen_pk), &sx.gen_pk_len, &diag) != VTPMCA_OK ||
        ledger_key_derive(sx.gen_pk, sx.gen_pk_len, "vm-gen", sx.gen_key, &diag) != VTPMCA_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return -1;
    }
    store_instance_free_fields(&inst);
    for (size_t i = 0; i < sizeof(sx.wrapped_pk); i++)
        sx.wrapped_pk[i] = (uint8_t)(0x90 + i);
    if (enrollment_wrap_key(sx.env.vault, "vm-wrapped", sx.wrapped_pk, sizeof(sx.wrapped_pk),
                            &sx.wrapped_blob, &sx.wrapped_blob_len, &diag) != VTPMCA_OK)
        return -1;
    ledger_config lc = {
        .store = sx.env.st, .on_refusal = ledger_refusal_audit, .hook_ctx = sx.env.st};
    if (ledger_open(&lc, &sx.engine, &diag) != VTPMCA_OK ||
        kbs_key_generate(KBS_KEY_P384, &sx.statement_key, &diag) != VTPMCA_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return -1;
    }
    sx.svc = make_service(0, 0);
    return 0;
}

static int service_teardown(void **state)
{
    (void)state;
    ledger_service_free(sx.svc);
    ledger_close(sx.engine);
    EVP_PKEY_free(sx.statement_key);
    free(sx.wrapped_blob);
    keys_env_close(&sx.env);
    return 0;
}

/* A signed request body for `instance` under `key` with a fresh nonce (kept in *req). */
static uint8_t *signed_request(ledger_msg_kind kind, ledger_format format, const char *instance,
                               const uint8_t key[32], const uint8_t *counter, const char *root,
                               ledger_msg *req, size_t *len)
{
    memset(req, 0, sizeof(*req));
    snprintf(req->instance, sizeof(req->instance), "%s", instance);
    if (counter != NULL) {
        memcpy(req->counter, counter, 16);
        req->root_len = strlen(root);
        memcpy(req->root, root, req->root_len);
        req->has_entry = true;
    }
    req->nonce_len = 24;
    assert_int_equal(RAND_bytes(req->nonce, 24), 1);
    assert_int_equal(ledger_msg_sign(kind, req, key, NULL), VTPMCA_OK);
    uint8_t *body = NULL;
    assert_int_equal(ledger_msg_encode(kind, format, req, &body, len, NULL), VTPMCA_OK);
    return body;
}

typedef struct {
    unsigned status;
    ledger_msg answer; /* decoded when MACed */
    json_t *error;     /* the JSON error otherwise */
} outcome;

static void outcome_free(outcome *o)
{
    json_decref(o->error);
}

/* Runs an op and decodes its answer; MACed answers are verified with `key`. */
static outcome call(vtpmca_err (*op)(ledger_service *, ledger_format, const uint8_t *, size_t,
                                     ledger_reply *),
                    ledger_format format, const uint8_t *body, size_t len,
                    ledger_msg_kind answer_kind, const ledger_msg *req, const uint8_t key[32])
{
    ledger_reply reply;
    assert_int_equal(op(sx.svc, format, body, len, &reply), VTPMCA_OK);
    outcome o;
    memset(&o, 0, sizeof(o));
    o.status = reply.status;
    assert_non_null(reply.body);
    if (reply.format == LEDGER_FORMAT_JSON) {
        json_t *doc = json_loadb((const char *)reply.body, reply.body_len, 0, NULL);
        assert_non_null(doc);
        if (json_object_get(doc, "mac") == NULL) {
            o.error = doc;
            assert_non_null(json_string_value(json_object_get(doc, "error")));
            assert_non_null(json_string_value(json_object_get(doc, "message")));
        } else {
            json_decref(doc);
        }
    } else {
        assert_int_equal(reply.format, format);
    }
    if (o.error == NULL) {
        assert_int_equal(reply.format, format);
        assert_int_equal(
            ledger_msg_decode(answer_kind, format, reply.body, reply.body_len, &o.answer, NULL),
            VTPMCA_OK);
        snprintf(o.answer.instance, sizeof(o.answer.instance), "%s", req->instance);
        assert_int_equal(o.answer.nonce_len, req->nonce_len);
        assert_memory_equal(o.answer.nonce, req->nonce, req->nonce_len);
        assert_int_equal(ledger_msg_verify(answer_kind, &o.answer, key, NULL), VTPMCA_OK);
    }
    ledger_reply_clear(&reply);
    return o;
}

static outcome advance(ledger_format format, const char *instance, const uint8_t key[32],
                       const uint8_t counter[16], const char *root)
{
    ledger_msg req;
    size_t len = 0;
    uint8_t *body = signed_request(LEDGER_MSG_ADVANCE_REQUEST, format, instance, key, counter, root,
                                   &req, &len);
    outcome o =
        call(ledger_service_advance, format, body, len, LEDGER_MSG_ADVANCE_ANSWER, &req, key);
    free(body);
    return o;
}

static outcome query(ledger_format format, const char *instance, const uint8_t key[32])
{
    ledger_msg req;
    size_t len = 0;
    uint8_t *body =
        signed_request(LEDGER_MSG_QUERY_REQUEST, format, instance, key, NULL, NULL, &req, &len);
    outcome o = call(ledger_service_query, format, body, len, LEDGER_MSG_QUERY_ANSWER, &req, key);
    free(body);
    return o;
}

static void expect_error(outcome *o, unsigned status, const char *code)
{
    if (o->status != status || o->error == NULL ||
        strcmp(json_string_value(json_object_get(o->error, "error")), code) != 0)
        fail_msg("expected %u %s, got %u %s", status, code, o->status,
                 o->error != NULL ? json_string_value(json_object_get(o->error, "error"))
                                  : o->answer.result);
    outcome_free(o);
}

static void expect_result(outcome *o, unsigned status, const char *result)
{
    if (o->status != status || o->error != NULL || strcmp(o->answer.result, result) != 0)
        fail_msg("expected %u %s, got %u %s", status, result, o->status,
                 o->error != NULL ? json_string_value(json_object_get(o->error, "message"))
                                  : o->answer.result);
    outcome_free(o);
}

static void counter_n(uint8_t out[16], uint8_t n)
{
    memset(out, 0xff, 16); /* near the wrap: 2^128 - 256 + n */
    out[15] = n;
}

/* The ledger's entry of vm-gen (through the engine, not the protocol). */
static bool entry_of(const char *instance, ledger_entry *e)
{
    return ledger_query(sx.engine, instance, e, NULL) == VTPMCA_OK;
}

static void test_service_advance_matrix(void **state)
{
    (void)state;
    uint8_t c1[16], c2[16], c0[16];
    counter_n(c1, 0xf0);
    counter_n(c2, 0xf1);
    counter_n(c0, 0xef);
    /* No record yet: a MACed "none". */
    outcome o = query(LEDGER_FORMAT_JSON, "vm-gen", sx.gen_key);
    assert_int_equal(o.status, 404);
    assert_false(o.answer.has_entry);
    expect_result(&o, 404, "none");

    o = advance(LEDGER_FORMAT_JSON, "vm-gen", sx.gen_key, c1, "root-1");
    assert_true(o.answer.has_entry);
    assert_memory_equal(o.answer.counter, c1, 16);
    expect_result(&o, 200, "accepted");
    o = advance(LEDGER_FORMAT_JSON, "vm-gen", sx.gen_key, c1, "root-1");
    expect_result(&o, 200, "duplicate");
    o = advance(LEDGER_FORMAT_CBOR, "vm-gen", sx.gen_key, c2, "root-2");
    expect_result(&o, 200, "accepted");

    /* Refusals are MACed and name what the ledger holds; nothing changes. */
    o = advance(LEDGER_FORMAT_JSON, "vm-gen", sx.gen_key, c2, "other");
    assert_int_equal(o.status, 409);
    assert_string_equal(o.answer.error, "fork");
    assert_memory_equal(o.answer.counter, c2, 16);
    assert_int_equal(o.answer.root_len, 6);
    assert_memory_equal(o.answer.root, "root-2", 6);
    assert_false(o.answer.locked);
    expect_result(&o, 409, "fork");
    o = advance(LEDGER_FORMAT_CBOR, "vm-gen", sx.gen_key, c0, "old");
    expect_result(&o, 409, "rollback");
    ledger_entry e;
    assert_true(entry_of("vm-gen", &e));
    assert_memory_equal(e.counter, c2, 16);
    assert_memory_equal(e.root, "root-2", 6);

    /* The latest, MACed, in both formats. */
    for (int f = 0; f < 2; f++) {
        o = query(f == 0 ? LEDGER_FORMAT_JSON : LEDGER_FORMAT_CBOR, "vm-gen", sx.gen_key);
        assert_memory_equal(o.answer.counter, c2, 16);
        assert_memory_equal(o.answer.origin, c1, 16);
        assert_int_equal(o.answer.time_ms, e.time_ms);
        expect_result(&o, 200, "found");
    }

    /* Refusals are audited. */
    store_audit_filter filter = {.action = "ledger_refused", .instance_id = "vm-gen", .limit = 10};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(sx.env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(events[0].outcome, "fork");
    assert_string_equal(events[1].outcome, "rollback");
    assert_string_equal(events[0].actor, "ledger");
    assert_non_null(strstr(events[1].detail, "counter=ffffffffffffffffffffffffffffffef"));
    assert_null(strstr(events[0].detail, "other")); /* never the root */
    free(events);
    assert_true(ledger_service_count(sx.svc, "advance", "refused") >= 2);
    assert_true(ledger_service_count(sx.svc, "advance", "ok") >= 3);
}

static void test_service_locked(void **state)
{
    (void)state;
    uint8_t key[LEDGER_KEY_LEN], c1[16], c2[16];
    store_instance inst;
    char context[ENROLLMENT_CONTEXT_MAX];
    uint8_t pk[KEYVAULT_KEY_MAX];
    size_t pk_len = 0;
    assert_int_equal(store_instance_get(sx.env.st, "vm-lock", &inst, NULL), VTPMCA_OK);
    assert_int_equal(enrollment_key_context(STORE_KEY_GENERATED, "vm-lock", context, NULL),
                     VTPMCA_OK);
    assert_int_equal(keyvault_unwrap(sx.env.vault, inst.wrapped_key, inst.wrapped_key_len, context,
                                     pk, sizeof(pk), &pk_len, NULL),
                     VTPMCA_OK);
    store_instance_free_fields(&inst);
    assert_int_equal(ledger_key_derive(pk, pk_len, "vm-lock", key, NULL), VTPMCA_OK);
    assert_int_equal(ledger_set_require_admin_clear(sx.engine, "vm-lock", true, NULL), VTPMCA_OK);
    counter_n(c1, 1);
    counter_n(c2, 2);
    outcome o = advance(LEDGER_FORMAT_JSON, "vm-lock", key, c2, "r2");
    expect_result(&o, 200, "accepted");
    o = advance(LEDGER_FORMAT_JSON, "vm-lock", key, c1, "r1");
    assert_true(o.answer.locked);
    expect_result(&o, 409, "rollback");
    /* Now even a valid advance is refused until an admin clears the lock. */
    uint8_t c3[16];
    counter_n(c3, 3);
    o = advance(LEDGER_FORMAT_CBOR, "vm-lock", key, c3, "r3");
    assert_true(o.answer.locked);
    expect_result(&o, 409, "locked");
    assert_int_equal(ledger_clear(sx.engine, "vm-lock", false, NULL), VTPMCA_OK);
    o = advance(LEDGER_FORMAT_CBOR, "vm-lock", key, c3, "r3");
    expect_result(&o, 200, "accepted");
}

static void test_service_refusals_change_nothing(void **state)
{
    (void)state;
    ledger_entry before, after;
    assert_true(entry_of("vm-gen", &before));
    uint8_t next[16];
    memcpy(next, before.counter, 16);
    ledger_counter_increment(next);

    /* Bad MAC: 401, and the nonce is not burned (a correct MAC with it still works). */
    ledger_msg req;
    size_t len = 0;
    uint8_t *body = signed_request(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, "vm-gen",
                                   sx.gen_key, next, "next", &req, &len);
    ledger_msg forged = req;
    forged.mac[0] ^= 0x80;
    uint8_t *bad = NULL;
    size_t bad_len = 0;
    assert_int_equal(ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, LEDGER_FORMAT_JSON, &forged,
                                       &bad, &bad_len, NULL),
                     VTPMCA_OK);
    outcome o = call(ledger_service_advance, LEDGER_FORMAT_JSON, bad, bad_len,
                     LEDGER_MSG_ADVANCE_ANSWER, &req, sx.gen_key);
    expect_error(&o, 401, "bad_mac");
    free(bad);
    /* A MAC under another instance's key. */
    uint8_t wrong_key[32];
    memset(wrong_key, 0x33, sizeof(wrong_key));
    o = advance(LEDGER_FORMAT_CBOR, "vm-gen", wrong_key, next, "next");
    expect_error(&o, 401, "bad_mac");
    assert_true(entry_of("vm-gen", &after));
    assert_memory_equal(after.counter, before.counter, 16);

    /* The genuine request once: accepted; replayed: stale nonce, even as the duplicate it is. */
    o = call(ledger_service_advance, LEDGER_FORMAT_JSON, body, len, LEDGER_MSG_ADVANCE_ANSWER, &req,
             sx.gen_key);
    expect_result(&o, 200, "accepted");
    o = call(ledger_service_advance, LEDGER_FORMAT_JSON, body, len, LEDGER_MSG_ADVANCE_ANSWER, &req,
             sx.gen_key);
    expect_error(&o, 409, "stale_nonce");
    free(body);
    /* A query with the nonce of that advance is stale too (one use per instance). */
    ledger_msg q = req;
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_QUERY_REQUEST, &q, sx.gen_key, NULL), VTPMCA_OK);
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_CBOR, &q, &body, &len, NULL),
        VTPMCA_OK);
    o = call(ledger_service_query, LEDGER_FORMAT_CBOR, body, len, LEDGER_MSG_QUERY_ANSWER, &q,
             sx.gen_key);
    expect_error(&o, 409, "stale_nonce");
    free(body);

    /* Unknown and disabled instances, malformed bodies. */
    uint8_t c[16] = {0};
    o = advance(LEDGER_FORMAT_JSON, "vm-nobody", sx.gen_key, c, "r");
    expect_error(&o, 404, "unknown_instance");
    o = advance(LEDGER_FORMAT_JSON, "vm-off", sx.gen_key, c, "r");
    expect_error(&o, 403, "disabled");
    o = call(ledger_service_advance, LEDGER_FORMAT_JSON, (const uint8_t *)"{\"instance\":1}", 14,
             LEDGER_MSG_ADVANCE_ANSWER, &req, sx.gen_key);
    expect_error(&o, 400, "bad_request");
    o = call(ledger_service_query, LEDGER_FORMAT_CBOR, (const uint8_t *)"\xa1", 1,
             LEDGER_MSG_QUERY_ANSWER, &req, sx.gen_key);
    expect_error(&o, 400, "bad_request");
    assert_true(entry_of("vm-gen", &after));
    assert_memory_equal(after.counter, next, 16);
    ledger_reply reply;
    assert_int_equal(ledger_service_advance(NULL, LEDGER_FORMAT_JSON, NULL, 0, &reply),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_service_advance(sx.svc, LEDGER_FORMAT_JSON, NULL, 5, &reply),
                     VTPMCA_ERR_INVALID_ARG);
}

static void test_service_wrapped_mode(void **state)
{
    (void)state;
    uint8_t key[LEDGER_KEY_LEN], c[16];
    assert_int_equal(
        ledger_key_derive(sx.wrapped_pk, sizeof(sx.wrapped_pk), "vm-wrapped", key, NULL),
        VTPMCA_OK);
    counter_n(c, 9);
    /* Before any release the service cannot verify this instance's requests. */
    outcome o = advance(LEDGER_FORMAT_JSON, "vm-wrapped", key, c, "w");
    expect_error(&o, 403, "no_ledger_key");
    /* A blob that is not this instance's is refused and stores nothing. */
    uint8_t *foreign = NULL;
    size_t foreign_len = 0;
    assert_int_equal(enrollment_wrap_key(sx.env.vault, "vm-gen", sx.wrapped_pk, 32, &foreign,
                                         &foreign_len, NULL),
                     VTPMCA_OK);
    assert_int_equal(ledger_service_remember_wrapped_release(sx.svc, sx.wrapped_path, foreign,
                                                             foreign_len, NULL),
                     VTPMCA_ERR_CRYPTO);
    free(foreign);
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    assert_int_equal(store_ledger_key_get(sx.env.st, "vm-wrapped", &stored, &stored_len, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    /* The release of the genuine blob stores the ledger key, wrapped (never in clear). */
    assert_int_equal(ledger_service_remember_wrapped_release(
                         sx.svc, sx.wrapped_path, sx.wrapped_blob, sx.wrapped_blob_len, NULL),
                     VTPMCA_OK);
    assert_int_equal(store_ledger_key_get(sx.env.st, "vm-wrapped", &stored, &stored_len, NULL),
                     VTPMCA_OK);
    assert_true(stored_len > LEDGER_KEY_LEN);
    free(stored);
    assert_false(keys_db_contains(&sx.env, key, sizeof(key)));
    o = advance(LEDGER_FORMAT_CBOR, "vm-wrapped", key, c, "w");
    expect_result(&o, 200, "accepted");
    /* A generated-mode instance needs nothing stored. */
    assert_int_equal(
        ledger_service_remember_release(sx.svc, "vm-gen", sx.gen_pk, sx.gen_pk_len, NULL),
        VTPMCA_OK);
    assert_int_equal(store_ledger_key_get(sx.env.st, "vm-gen", &stored, &stored_len, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(ledger_service_remember_release(sx.svc, "vm-nobody", sx.gen_pk, 32, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    /* Another released key (the admin re-wrapped the instance's key) replaces it at once. */
    uint8_t new_pk[32], new_key[LEDGER_KEY_LEN];
    memset(new_pk, 0x5a, sizeof(new_pk));
    assert_int_equal(ledger_service_remember_release(sx.svc, "vm-wrapped", new_pk, 32, NULL),
                     VTPMCA_OK);
    assert_int_equal(ledger_key_derive(new_pk, 32, "vm-wrapped", new_key, NULL), VTPMCA_OK);
    o = advance(LEDGER_FORMAT_JSON, "vm-wrapped", key, c, "w");
    expect_error(&o, 401, "bad_mac");
    o = advance(LEDGER_FORMAT_JSON, "vm-wrapped", new_key, c, "w");
    expect_result(&o, 200, "duplicate");
}

static void test_service_statement(void **state)
{
    (void)state;
    ledger_entry e;
    assert_true(entry_of("vm-gen", &e));
    for (int f = 0; f < 2; f++) {
        ledger_format format = f == 0 ? LEDGER_FORMAT_JSON : LEDGER_FORMAT_CBOR;
        ledger_msg req;
        memset(&req, 0, sizeof(req));
        snprintf(req.instance, sizeof(req.instance), "vm-gen");
        req.nonce_len = 20;
        memset(req.nonce, 0x21 + f, 20);
        uint8_t *body = NULL;
        size_t len = 0;
        assert_int_equal(
            ledger_msg_encode(LEDGER_MSG_STATEMENT_REQUEST, format, &req, &body, &len, NULL),
            VTPMCA_OK);
        ledger_reply reply;
        assert_int_equal(ledger_service_statement(sx.svc, format, body, len, &reply), VTPMCA_OK);
        free(body);
        assert_int_equal(reply.status, 200);
        assert_int_equal(reply.format, format);
        char *jwt = NULL;
        if (format == LEDGER_FORMAT_JSON) {
            json_t *doc = json_loadb((const char *)reply.body, reply.body_len, 0, NULL);
            jwt = strdup(json_string_value(json_object_get(doc, "statement")));
            json_decref(doc);
        } else {
            struct cbor_load_result r;
            cbor_item_t *item = cbor_load(reply.body, reply.body_len, &r);
            assert_non_null(item);
            assert_int_equal(cbor_map_size(item), 1);
            cbor_item_t *v = cbor_map_handle(item)[0].value;
            jwt = strndup((const char *)cbor_string_handle(v), cbor_string_length(v));
            cbor_decref(&item);
        }
        ledger_reply_clear(&reply);
        /* It verifies with the public half of the key only. */
        EVP_PKEY *pub = NULL;
        uint8_t *spki = NULL;
        int spki_len = i2d_PUBKEY(sx.statement_key, &spki);
        const uint8_t *p = spki;
        pub = d2i_PUBKEY(NULL, &p, spki_len);
        OPENSSL_free(spki);
        ear_token_key vk;
        assert_int_equal(ear_token_key_init(&vk, pub, NULL), VTPMCA_OK);
        json_t *claims = NULL;
        vtpmca_diag diag = {{0}};
        if (ear_token_verify(&vk, jwt, strlen(jwt), time(NULL), &claims, &diag) != VTPMCA_OK)
            fail_msg("statement: %s", diag.msg);
        char counter[33], nonce_b64[64];
        hex_of(e.counter, 16, counter, sizeof(counter));
        char *nb = NULL;
        assert_int_equal(vt_b64_encode_alloc(req.nonce, 20, VT_B64_STD, &nb), VTPMCA_OK);
        snprintf(nonce_b64, sizeof(nonce_b64), "%s", nb);
        free(nb);
        assert_string_equal(json_string_value(json_object_get(claims, "instance")), "vm-gen");
        assert_string_equal(json_string_value(json_object_get(claims, "counter")), counter);
        assert_string_equal(json_string_value(json_object_get(claims, "nonce")), nonce_b64);
        assert_int_equal(json_integer_value(json_object_get(claims, "time")), e.time_ms);
        json_decref(claims);
        /* A changed payload does not verify. */
        char *dot = strchr(jwt, '.');
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
        assert_int_not_equal(ear_token_verify(&vk, jwt, strlen(jwt), time(NULL), NULL, NULL),
                             VTPMCA_OK);
        ear_token_key_clear(&vk);
        EVP_PKEY_free(pub);
        free(jwt);
    }
    /* Unknown instance, no record (vm-off is enrolled but has none), malformed. */
    const char *unknown = "{\"instance\":\"vm-nobody\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}";
    const char *no_record = "{\"instance\":\"vm-off\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}";
    const char *no_nonce = "{\"instance\":\"vm-gen\"}";
    struct {
        const char *body;
        unsigned status;
        const char *code;
    } cases[] = {{unknown, 404, "unknown_instance"},
                 {no_record, 404, "no_record"},
                 {no_nonce, 400, "bad_request"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ledger_reply reply;
        assert_int_equal(ledger_service_statement(sx.svc, LEDGER_FORMAT_JSON,
                                                  (const uint8_t *)cases[i].body,
                                                  strlen(cases[i].body), &reply),
                         VTPMCA_OK);
        assert_int_equal(reply.status, cases[i].status);
        assert_non_null(strstr((const char *)reply.body, cases[i].code));
        ledger_reply_clear(&reply);
    }
}

static void test_service_nonce_window(void **state)
{
    (void)state;
    /* A window of 1 s and room for 3 nonces. */
    ledger_service *main_svc = sx.svc;
    sx.svc = make_service(3, 1);
    ledger_msg reqs[4];
    uint8_t *bodies[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        bodies[i] = signed_request(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_JSON, "vm-gen",
                                   sx.gen_key, NULL, NULL, &reqs[i], &lens[i]);
        outcome o = call(ledger_service_query, LEDGER_FORMAT_JSON, bodies[i], lens[i],
                         LEDGER_MSG_QUERY_ANSWER, &reqs[i], sx.gen_key);
        expect_result(&o, 200, "found");
    }
    /* The fourth pushed out the first early (counted); the last three are remembered. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ledger_service_metrics_render(sx.svc, &text, &len), VTPMCA_OK);
    assert_non_null(strstr(text, "vtpmca_ledger_nonce_early_evictions_total 1\n"));
    assert_non_null(strstr(text, "vtpmca_ledger_nonces 3\n"));
    assert_non_null(strstr(text, "vtpmca_ledger_requests_total{op=\"query\",outcome=\"ok\"} 4\n"));
    assert_non_null(strstr(text, "# TYPE vtpmca_ledger_advances_total counter\n"));
    free(text);
    outcome o = call(ledger_service_query, LEDGER_FORMAT_JSON, bodies[3], lens[3],
                     LEDGER_MSG_QUERY_ANSWER, &reqs[3], sx.gen_key);
    expect_error(&o, 409, "stale_nonce");
    /* After the window a replayed query is answered on its merits (with its own nonce). */
    usleep(1100 * 1000);
    o = call(ledger_service_query, LEDGER_FORMAT_JSON, bodies[3], lens[3], LEDGER_MSG_QUERY_ANSWER,
             &reqs[3], sx.gen_key);
    expect_result(&o, 200, "found");
    for (int i = 0; i < 4; i++)
        free(bodies[i]);
    ledger_service_free(sx.svc);
    sx.svc = main_svc;
}

static void test_service_arguments(void **state)
{
    (void)state;
    ledger_service *svc = NULL;
    ledger_service_config sc = {.engine = sx.engine, .store = sx.env.st, .vault = sx.env.vault};
    assert_int_equal(ledger_service_new(&sc, &svc, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(svc);
    assert_int_equal(ledger_service_new(NULL, &svc, NULL), VTPMCA_ERR_INVALID_ARG);
    /* Only EC P-256 / P-384 keys sign statements. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    sc.statement_key = ed;
    assert_int_equal(ledger_service_new(&sc, &svc, NULL), VTPMCA_ERR_UNSUPPORTED);
    EVP_PKEY_free(ed);
    ledger_service_free(NULL);
    ledger_reply_clear(NULL);
    assert_int_equal(ledger_service_count(sx.svc, "advance", "nonsense"), 0);
    assert_int_equal(ledger_service_count(NULL, "advance", "ok"), 0);
}

static void test_record_json(void **state)
{
    (void)state;
    ledger_record r;
    assert_int_equal(ledger_inspect(sx.engine, "vm-lock", &r, NULL), VTPMCA_OK);
    json_t *doc = NULL;
    assert_int_equal(ledger_record_to_json("vm-lock", &r, &doc, NULL), VTPMCA_OK);
    char counter[33];
    hex_of(r.entry.counter, 16, counter, sizeof(counter));
    assert_string_equal(json_string_value(json_object_get(doc, "counter")), counter);
    assert_true(json_is_true(json_object_get(doc, "require_admin_clear")));
    assert_int_equal(json_integer_value(json_object_get(doc, "rollback_refusals")), 1);
    assert_string_equal(json_string_value(json_object_get(doc, "root")), "cjM=");
    json_decref(doc);
    r.has_entry = false;
    assert_int_equal(ledger_record_to_json("vm-lock", &r, &doc, NULL), VTPMCA_OK);
    assert_null(json_object_get(doc, "counter"));
    json_decref(doc);
    assert_int_equal(ledger_record_to_json("bad id", &r, &doc, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_store_ledger_keys(void **state)
{
    (void)state;
    uint8_t blob[40], *got = NULL;
    size_t len = 0;
    memset(blob, 7, sizeof(blob));
    assert_int_equal(store_ledger_key_put(sx.env.st, "vm-nobody", blob, sizeof(blob), NULL),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(store_ledger_key_put(sx.env.st, "vm-off", blob, 0, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_key_put(sx.env.st, "vm-off", blob, 1025, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_key_put(sx.env.st, "bad id", blob, 4, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(store_ledger_key_put(sx.env.st, "vm-off", blob, sizeof(blob), NULL),
                     VTPMCA_OK);
    blob[0] = 8;
    assert_int_equal(store_ledger_key_put(sx.env.st, "vm-off", blob, 20, NULL), VTPMCA_OK);
    assert_int_equal(store_ledger_key_get(sx.env.st, "vm-off", &got, &len, NULL), VTPMCA_OK);
    assert_int_equal(len, 20);
    assert_memory_equal(got, blob, 20);
    free(got);
    assert_int_equal(store_ledger_key_get(sx.env.st, "vm-off", NULL, &len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_ledger_key_matches_openssl_cli),
        cmocka_unit_test(test_mac_advance_request),
        cmocka_unit_test(test_mac_advance_answer),
        cmocka_unit_test(test_mac_query),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_malformed_cbor),
        cmocka_unit_test(test_encode_decode_arguments),
        cmocka_unit_test(test_check_image),
    };
    const struct CMUnitTest service[] = {
        cmocka_unit_test(test_service_advance_matrix),
        cmocka_unit_test(test_service_locked),
        cmocka_unit_test(test_service_refusals_change_nothing),
        cmocka_unit_test(test_service_wrapped_mode),
        cmocka_unit_test(test_service_statement),
        cmocka_unit_test(test_service_nonce_window),
        cmocka_unit_test(test_service_arguments),
        cmocka_unit_test(test_record_json),
        cmocka_unit_test(test_store_ledger_keys),
    };
    int failed = cmocka_run_group_tests_name("ledger protocol", pure, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("ledger service", service, service_setup, service_teardown);
    return failed;
}
