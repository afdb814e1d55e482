/* End-to-end tests of the KBS protocol on the real vtpmcad: the daemon runs on 127.0.0.1
 * (ephemeral port) over a state directory prepared with the store and enrollment APIs (the
 * VCEK of a test root it trusts through --extra-roots-dir, fleets, enrolled instances, the
 * master key), and is spoken to with libcurl. Like aproxy, a client is one HTTP handle with a
 * cookie store, so the kbs-session-id cookie set by auth travels with attest and resource.
 * Covers the SVSM flavour (P-521) and the Trustee flavour (P-384, RSA-2048), the bearer
 * token, replays, expiry, bad input with its status and JSON error, the metrics, and the
 * audit rows read back through the store after the daemon stopped. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <sqlite3.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/kbs_fixture.h"
#include "../support/http_capture.h"
#include "../support/vtpmcad_runner.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/kbs_session.h"

#define AUTH_TTL_S 2
#define SESSION_TTL_S 4
#define MAX_BODY 65536
#define AUTH_BODY "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":\"\"}"

static struct {
    kbs_fixture fx;
    char state_dir[128];
    vtpmcad_proc daemon;
    EVP_PKEY *p521, *p384, *rsa;
    EVP_PKEY *kbs_key, *token_key; /* the daemon's, read from its state directory */
    ear_token_key token;
} g;

/* ---- the daemon ---- */

/* Starts vtpmcad (see vtpmcad_start) trusting the fixture's roots, with short KBS TTLs. */
static int start_daemon(void)
{
    char auth_ttl[16], session_ttl[16], body_max[16];
    snprintf(auth_ttl, sizeof(auth_ttl), "%d", AUTH_TTL_S);
    snprintf(session_ttl, sizeof(session_ttl), "%d", SESSION_TTL_S);
    snprintf(body_max, sizeof(body_max), "%d", MAX_BODY);
    const char *extra[] = {"--extra-roots-dir",
                           g.fx.roots_dir,
                           "--max-body-bytes",
                           body_max,
                           "--kbs-auth-ttl-s",
                           auth_ttl,
                           "--kbs-session-ttl-s",
                           session_ttl,
                           NULL};
    vtpmca_diag diag = {{0}};
    if (vtpmcad_start(&g.daemon, g.fx.dir, "vtpmcad", g.state_dir, extra, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (kbs_fixture_create(&g.fx, &diag) != VTPMCA_OK) {
        fprintf(stderr, "fixture: %s\n", diag.msg);
        return -1;
    }
    snprintf(g.state_dir, sizeof(g.state_dir), "%s/state", g.fx.dir);
    g.p521 = EVP_EC_gen("P-521");
    g.p384 = EVP_EC_gen("P-384");
    g.rsa = EVP_RSA_gen(2048);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (g.p521 == NULL || g.p384 == NULL || g.rsa == NULL || start_daemon() != 0)
        return -1;
    /* The daemon made its KBS and token keys on first start. */
    char path[200];
    snprintf(path, sizeof(path), "%s/kbs-key.pem", g.state_dir);
    if (kbs_key_load(path, &g.kbs_key, &diag) != VTPMCA_OK)
        return -1;
    snprintf(path, sizeof(path), "%s/token-key.pem", g.state_dir);
    if (kbs_key_load(path, &g.token_key, &diag) != VTPMCA_OK)
        return -1;
    return ear_token_key_init(&g.token, g.token_key, &diag) == VTPMCA_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    vtpmcad_stop(&g.daemon);
    EVP_PKEY_free(g.p521);
    EVP_PKEY_free(g.p384);
    EVP_PKEY_free(g.rsa);
    EVP_PKEY_free(g.kbs_key);
    EVP_PKEY_free(g.token_key);
    ear_token_key_clear(&g.token);
    curl_global_cleanup();
    kbs_fixture_destroy(&g.fx);
    return 0;
}

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body;
    size_t len;
    char set_cookie[256];
    char content_type[128];
} http_result;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    return http_capture_append(&r->body, &r->len, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    size_t len = size * n;
    http_capture_header(data, len, "Set-Cookie", r->set_cookie, sizeof(r->set_cookie));
    http_capture_header(data, len, "Content-Type", r->content_type, sizeof(r->content_type));
    return len;
}

/* One client as aproxy makes it: a handle with its own cookie store, reused (keep-alive). */
static CURL *new_client(void)
{
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_COOKIEFILE, ""); /* enable the cookie engine, no file */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    return curl;
}

typedef struct {
    const char *content_type; /* NULL: application/json when there is a body */
    const char *cookie;       /* explicit Cookie header value */
    const char *bearer;
} extras;

static void request(CURL *curl, const char *method, const char *path, const char *body,
                    size_t body_len, const extras *ex, http_result *r)
{
    memset(r, 0, sizeof(*r));
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", g.daemon.port, path);
    struct curl_slist *headers = NULL;
    char line[16384];
    if (body != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s",
                 ex != NULL && ex->content_type != NULL ? ex->content_type : "application/json");
        headers = curl_slist_append(headers, line);
    }
    if (ex != NULL && ex->bearer != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", ex->bearer);
        headers = curl_slist_append(headers, line);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(curl, CURLOPT_COOKIE, ex != NULL ? ex->cookie : NULL);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
}

/* Sends and expects `status`; returns the JSON answer. */
static json_t *call(CURL *curl, const char *method, const char *path, const char *body,
                    const extras *ex, long status)
{
    http_result r;
    request(curl, method, path, body, body != NULL ? strlen(body) : 0, ex, &r);
    if (r.status != status)
        fail_msg("%s %s: status %ld, expected %ld: %s", method, path, r.status, status,
                 r.body ? r.body : "");
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
    if (doc == NULL)
        fail_msg("%s %s: not JSON: %s", method, path, r.body ? r.body : "");
    free(r.body);
    return doc;
}

/* Expects {"error": code, "message": ...}. */
static void call_error(CURL *curl, const char *method, const char *path, const char *body,
                       const extras *ex, long status, const char *code)
{
    json_t *doc = call(curl, method, path, body, ex, status);
    const char *got = json_string_value(json_object_get(doc, "error"));
    if (got == NULL || strcmp(got, code) != 0)
        fail_msg("%s %s: error %s, expected %s", method, path, got ? got : "(none)", code);
    assert_true(json_is_string(json_object_get(doc, "message")));
    json_decref(doc);
}

static char *dumps(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_non_null(text);
    return text;
}

static void resource_path(char *out, size_t size, kbs_fixture_instance instance)
{
    snprintf(out, size, "/kbs/v0/resource/%s", g.fx.path[instance]);
}

/* ---- a boot ---- */

typedef struct {
    CURL *curl;
    char id[KBS_SESSION_ID_HEX + 1];
    char nonce[64];
    uint8_t nonce_raw[32];
    char *token;
} boot_state;

static void boot_auth(boot_state *b)
{
    http_result r;
    request(b->curl, "POST", "/kbs/v0/auth", AUTH_BODY, strlen(AUTH_BODY), NULL, &r);
    assert_int_equal(r.status, 200);
    /* Exactly the cookie aproxy's cookie store keeps. */
    assert_int_equal(strncmp(r.set_cookie, "kbs-session-id=", 15), 0);
    memcpy(b->id, r.set_cookie + 15, KBS_SESSION_ID_HEX);
    b->id[KBS_SESSION_ID_HEX] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "kbs-session-id=%s; Path=/kbs; HttpOnly; Max-Age=%d", b->id,
             AUTH_TTL_S);
    assert_string_equal(r.set_cookie, want);
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "extra-params")), "");
    snprintf(b->nonce, sizeof(b->nonce), "%s", json_string_value(json_object_get(doc, "nonce")));
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(vt_b64_decode_alloc(b->nonce, strlen(b->nonce), VT_B64_STD, &raw, &raw_len),
                     VTPMCA_OK);
    assert_int_equal(raw_len, 32);
    memcpy(b->nonce_raw, raw, 32);
    free(raw);
    json_decref(doc);
    free(r.body);
}

static void boot_attest(boot_state *b, report_data_flavour flavour, EVP_PKEY *tee,
                        uint8_t measurement)
{
    json_t *body = kbs_fixture_evidence(&g.fx, flavour, tee, b->nonce, measurement);
    char *text = dumps(body);
    http_result r;
    request(b->curl, "POST", "/kbs/v0/attest", text, strlen(text), NULL, &r);
    if (r.status != 200)
        fail_msg("attest: %ld %s", r.status, r.body ? r.body : "");
    char want[128];
    snprintf(want, sizeof(want), "kbs-session-id=%s; Path=/kbs; HttpOnly; Max-Age=%d", b->id,
             SESSION_TTL_S);
    assert_string_equal(r.set_cookie, want);
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    assert_int_equal(json_object_size(doc), 1);
    b->token = strdup(json_string_value(json_object_get(doc, "token")));
    /* The token verifies under the daemon's token key and names this session. */
    json_t *claims = NULL;
    assert_int_equal(
        ear_token_verify(&g.token, b->token, strlen(b->token), time(NULL), &claims, NULL),
        VTPMCA_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sid")), b->id);
    json_decref(claims);
    json_decref(doc);
    free(r.body);
    free(text);
    json_decref(body);
}

/* Decrypts a 200 resource answer and checks the binding to the daemon's KBS key. */
static size_t open_resource(json_t *jwe, const boot_state *b, EVP_PKEY *tee, uint8_t *out)
{
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_decrypt(tee, jwe, out, JWE_MAX_SECRET, &len, &diag), VTPMCA_OK);
    if (jwe_ec_curve_name(tee) != NULL)
        assert_int_equal(kbs_binding_verify_jwe(jwe, b->nonce_raw, 32, tee, g.kbs_key, NULL, &diag),
                         VTPMCA_OK);
    return len;
}

static void full_boot(report_data_flavour flavour, EVP_PKEY *tee)
{
    boot_state b = {.curl = new_client()};
    boot_auth(&b);
    boot_attest(&b, flavour, tee, KBS_FIXTURE_MEASUREMENT);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    json_t *jwe = call(b.curl, "GET", path, NULL, NULL, 200);
    uint8_t got[JWE_MAX_SECRET], expected[KEYVAULT_KEY_MAX];
    size_t expected_len = 0;
    assert_int_equal(
        kbs_fixture_instance_key(&g.fx, KBS_INSTANCE_GENERATED, expected, &expected_len, NULL),
        VTPMCA_OK);
    assert_int_equal(open_resource(jwe, &b, tee, got), expected_len);
    assert_memory_equal(got, expected, expected_len);
    json_decref(jwe);
    free(b.token);
    curl_easy_cleanup(b.curl);
}

/* ---- tests ---- */

static void test_boot_svsm_p521(void **state)
{
    (void)state;
    full_boot(REPORT_DATA_FLAVOUR_SVSM, g.p521);
    /* The JWE members are exactly aproxy's, plus the binding header. */
    boot_state b = {.curl = new_client()};
    boot_auth(&b);
    boot_attest(&b, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    json_t *jwe = call(b.curl, "GET", path, NULL, NULL, 200);
    const char *members[] = {"protected", "encrypted_key", "iv", "ciphertext", "tag", "header"};
    assert_int_equal(json_object_size(jwe), 6);
    for (size_t i = 0; i < 6; i++)
        assert_non_null(json_object_get(jwe, members[i]));
    json_decref(jwe);
    free(b.token);
    curl_easy_cleanup(b.curl);
}

static void test_boot_trustee_p384_and_rsa(void **state)
{
    (void)state;
    full_boot(REPORT_DATA_FLAVOUR_TRUSTEE, g.p384);
    full_boot(REPORT_DATA_FLAVOUR_TRUSTEE, g.rsa);
}

static void test_bearer_and_wrapped_key(void **state)
{
    (void)state;
    boot_state a = {.curl = new_client()}, b = {.curl = new_client()};
    boot_auth(&a);
    boot_attest(&a, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    boot_auth(&b);
    boot_attest(&b, REPORT_DATA_FLAVOUR_TRUSTEE, g.p384, KBS_FIXTURE_MEASUREMENT);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    /* A client without cookies, with the token only. */
    CURL *plain = new_client();
    extras bearer = {.bearer = a.token};
    json_t *jwe = call(plain, "GET", path, NULL, &bearer, 200);
    uint8_t got[JWE_MAX_SECRET];
    open_resource(jwe, &a, g.p521, got);
    json_decref(jwe);
    /* Session A's cookie (sent by its handle) with session B's token. */
    extras other = {.bearer = b.token};
    call_error(a.curl, "GET", path, NULL, &other, 401, "session_mismatch");

    /* Wrapped-key mode: POST the blob (base64url). */
    char *blob = NULL;
    vt_b64_encode_alloc(g.fx.wrapped_blob, g.fx.wrapped_blob_len, VT_B64_URL_NOPAD, &blob);
    char body[512];
    snprintf(body, sizeof(body), "{\"wrapped-key\":\"%s\"}", blob);
    resource_path(path, sizeof(path), KBS_INSTANCE_WRAPPED);
    jwe = call(a.curl, "POST", path, body, NULL, 200);
    assert_int_equal(open_resource(jwe, &a, g.p521, got), sizeof(g.fx.wrapped_key));
    assert_memory_equal(got, g.fx.wrapped_key, sizeof(g.fx.wrapped_key));
    json_decref(jwe);
    call_error(a.curl, "GET", path, NULL, NULL, 403, "wrapped_key_invalid");
    call_error(a.curl, "POST", path, "{\"wrapped-key\":\"AA==\"}", NULL, 400, "bad_request");
    free(blob);
    free(a.token);
    free(b.token);
    curl_easy_cleanup(a.curl);
    curl_easy_cleanup(b.curl);
    curl_easy_cleanup(plain);
}

static void test_replays_and_refusals(void **state)
{
    (void)state;
    boot_state b = {.curl = new_client()};
    boot_auth(&b);
    json_t *evidence = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, b.nonce,
                                            KBS_FIXTURE_MEASUREMENT);
    char *text = dumps(evidence);
    json_t *ok = call(b.curl, "POST", "/kbs/v0/attest", text, NULL, 200);
    json_decref(ok);
    /* Same nonce: second attest on the session. */
    call_error(b.curl, "POST", "/kbs/v0/attest", text, NULL, 401, "nonce_spent");
    /* Same evidence on a new session (the handle's cookie is replaced by auth). */
    boot_state c = {.curl = b.curl};
    boot_auth(&c);
    call_error(c.curl, "POST", "/kbs/v0/attest", text, NULL, 401, "nonce_mismatch");
    json_object_set_new(json_object_get(evidence, "runtime-data"), "nonce", json_string(c.nonce));
    free(text);
    text = dumps(evidence);
    call_error(c.curl, "POST", "/kbs/v0/attest", text, NULL, 401, "report_data_mismatch");
    free(text);
    json_decref(evidence);

    /* A measurement the policy does not allow: attested, but the release is refused. */
    boot_state d = {.curl = new_client()};
    boot_auth(&d);
    boot_attest(&d, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_BAD_MEASUREMENT);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    call_error(d.curl, "GET", path, NULL, NULL, 403, "policy_rejected");
    resource_path(path, sizeof(path), KBS_INSTANCE_DISABLED);
    call_error(d.curl, "GET", path, NULL, NULL, 403, "disabled");
    call_error(d.curl, "GET", "/kbs/v0/resource/vtpmca/persistence-key/nope", NULL, NULL, 404,
               "unknown_resource");
    free(d.token);
    curl_easy_cleanup(d.curl);
    curl_easy_cleanup(b.curl);
}

static void test_bad_input(void **state)
{
    (void)state;
    CURL *curl = new_client();
    /* auth */
    call_error(curl, "POST", "/kbs/v0/auth", "{\"version\":", NULL, 400, "bad_request");
    call_error(curl, "POST", "/kbs/v0/auth", "{\"version\":\"0.3.0\",\"tee\":\"snp\"}", NULL, 400,
               "unsupported_version");
    call_error(curl, "POST", "/kbs/v0/auth", "{\"version\":\"0.4.0\",\"tee\":\"sgx\"}", NULL, 400,
               "unsupported_tee");
    extras text_plain = {.content_type = "text/plain"};
    call_error(curl, "POST", "/kbs/v0/auth", AUTH_BODY, &text_plain, 415, "unsupported_media_type");
    call_error(curl, "PUT", "/kbs/v0/auth", AUTH_BODY, NULL, 405, "method_not_allowed");
    /* An oversized body is cut off at max_body_bytes. */
    size_t big_len = MAX_BODY + 100;
    char *big = malloc(big_len + 1);
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    big[0] = '{';
    big[big_len - 1] = '}';
    http_result r;
    request(curl, "POST", "/kbs/v0/attest", big, big_len, NULL, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"payload_too_large\""));
    free(r.body);
    free(big);

    /* attest: sessions */
    boot_state b = {.curl = curl};
    boot_auth(&b);
    json_t *evidence = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, b.nonce,
                                            KBS_FIXTURE_MEASUREMENT);
    char *good = dumps(evidence);
    CURL *fresh = new_client();
    call_error(fresh, "POST", "/kbs/v0/attest", good, NULL, 401, "no_session");
    extras unknown = {.cookie = "kbs-session-id=0123456789abcdef0123456789abcdef"};
    call_error(fresh, "POST", "/kbs/v0/attest", good, &unknown, 401, "unknown_session");
    extras garbage = {.cookie = "kbs-session-id=../../etc/passwd"};
    call_error(fresh, "POST", "/kbs/v0/attest", good, &garbage, 401, "unknown_session");

    /* attest: malformed JSON, wrong types, wrong curve, off-curve point, wrong base64 */
    call_error(curl, "POST", "/kbs/v0/attest", "{\"runtime-data\":", NULL, 400, "bad_request");
    json_t *bad = json_deep_copy(evidence);
    json_object_set_new(json_object_get(bad, "runtime-data"), "tee-pubkey", json_string("k"));
    char *text = dumps(bad);
    call_error(curl, "POST", "/kbs/v0/attest", text, NULL, 400, "bad_request");
    free(text);
    json_decref(bad);
    bad = json_deep_copy(evidence);
    json_t *jwk = json_object_get(json_object_get(bad, "runtime-data"), "tee-pubkey");
    json_object_set_new(jwk, "crv", json_string("P-192"));
    text = dumps(bad);
    call_error(curl, "POST", "/kbs/v0/attest", text, NULL, 400, "bad_request");
    free(text);
    json_decref(bad);
    bad = json_deep_copy(evidence);
    jwk = json_object_get(json_object_get(bad, "runtime-data"), "tee-pubkey");
    char *y = strdup(json_string_value(json_object_get(jwk, "y")));
    y[10] = y[10] == 'A' ? 'B' : 'A';
    json_object_set_new(jwk, "y", json_string(y));
    free(y);
    text = dumps(bad);
    call_error(curl, "POST", "/kbs/v0/attest", text, NULL, 400, "bad_request");
    free(text);
    json_decref(bad);
    bad = json_deep_copy(evidence);
    json_t *primary = json_object_get(json_object_get(bad, "tee-evidence"), "primary_evidence");
    char *report = strdup(json_string_value(json_object_get(primary, "snp-report")));
    for (char *c = report; *c; c++) /* the url-safe alphabet where the protocol fixes std */
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    json_object_set_new(primary, "snp-report", json_string(report));
    free(report);
    text = dumps(bad);
    call_error(curl, "POST", "/kbs/v0/attest", text, NULL, 400, "bad_request");
    free(text);
    json_decref(bad);

    /* Evidence that fails verification: altered after signing. */
    bad = json_deep_copy(evidence);
    primary = json_object_get(json_object_get(bad, "tee-evidence"), "primary_evidence");
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    const char *b64 = json_string_value(json_object_get(primary, "snp-report"));
    vt_b64_decode_alloc(b64, strlen(b64), VT_B64_STD, &raw, &raw_len);
    raw[4] ^= 1; /* guest SVN */
    char *altered = NULL;
    vt_b64_encode_alloc(raw, raw_len, VT_B64_STD, &altered);
    json_object_set_new(primary, "snp-report", json_string(altered));
    text = dumps(bad);
    call_error(curl, "POST", "/kbs/v0/attest", text, NULL, 401, "evidence_invalid");
    free(text);
    free(altered);
    free(raw);
    json_decref(bad);

    /* Nothing of that touched the session: the genuine evidence is accepted now. */
    json_t *ok = call(curl, "POST", "/kbs/v0/attest", good, NULL, 200);
    json_decref(ok);
    /* resource: malformed paths and no session */
    call_error(curl, "GET", "/kbs/v0/resource/only/two", NULL, NULL, 400, "bad_request");
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    call_error(fresh, "GET", path, NULL, NULL, 401, "no_session");
    extras junk_token = {.bearer = "not.a.token"};
    call_error(fresh, "GET", path, NULL, &junk_token, 401, "invalid_token");
    free(good);
    json_decref(evidence);
    curl_easy_cleanup(fresh);
    curl_easy_cleanup(curl);
}

static void test_expiry(void **state)
{
    (void)state;
    boot_state a = {.curl = new_client()}, b = {.curl = new_client()};
    boot_auth(&a);
    boot_auth(&b);
    boot_attest(&b, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    json_t *evidence = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, a.nonce,
                                            KBS_FIXTURE_MEASUREMENT);
    char *text = dumps(evidence);
    /* Past the auth TTL; the cookie is sent explicitly (a cookie store would drop it). */
    runner_sleep_ms(AUTH_TTL_S * 1000 + 200);
    extras cookie_a = {.cookie = NULL};
    char cookie[64];
    snprintf(cookie, sizeof(cookie), "kbs-session-id=%s", a.id);
    cookie_a.cookie = cookie;
    CURL *curl = new_client();
    call_error(curl, "POST", "/kbs/v0/attest", text, &cookie_a, 401, "expired_session");
    /* Past the attested TTL: neither the cookie nor the token works. */
    runner_sleep_ms((SESSION_TTL_S - AUTH_TTL_S) * 1000 + 200);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    extras token_b = {.bearer = b.token};
    call_error(curl, "GET", path, NULL, &token_b, 401, "token_expired");
    snprintf(cookie, sizeof(cookie), "kbs-session-id=%s", b.id);
    extras cookie_b = {.cookie = cookie};
    call_error(curl, "GET", path, NULL, &cookie_b, 401, "expired_session");
    free(text);
    json_decref(evidence);
    free(b.token);
    curl_easy_cleanup(curl);
    curl_easy_cleanup(a.curl);
    curl_easy_cleanup(b.curl);
}

static unsigned long long metric(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (p == NULL)
        fail_msg("metric %s missing", series);
    return strtoull(p + strlen(series), NULL, 10);
}

/* Runs last: metrics reflect the outcomes above; after the daemon stops, the audit rows are
 * there and the key files were created with mode 0600. */
/* Runs SQL on the daemon's database from outside (another connection). */
static void db_exec(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(g.fx.db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s: %s", sql, msg != NULL ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
}

/* A release whose audit row cannot be written hands out nothing: 503 with a JSON error, the
 * store's reason only in the log; the same request succeeds once the row can be written. */
static void test_release_waits_for_its_audit_row(void **state)
{
    (void)state;
    boot_state b = {.curl = new_client()};
    boot_auth(&b);
    boot_attest(&b, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    char path[256];
    resource_path(path, sizeof(path), KBS_INSTANCE_GENERATED);
    db_exec("CREATE TRIGGER test_refuse_release BEFORE INSERT ON audit WHEN "
            "NEW.action = 'key_release' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    http_result r;
    request(b.curl, "GET", path, NULL, 0, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "unavailable");
    assert_null(json_object_get(doc, "ciphertext"));
    assert_null(strstr(r.body, "refused by the test")); /* store details stay in the log */
    json_decref(doc);
    free(r.body);
    db_exec("DROP TRIGGER test_refuse_release");

    json_t *jwe = call(b.curl, "GET", path, NULL, NULL, 200);
    uint8_t got[JWE_MAX_SECRET];
    assert_int_equal(open_resource(jwe, &b, g.p521, got), 32);
    json_decref(jwe);
    free(b.token);
    curl_easy_cleanup(b.curl);

    char *log = runner_read_text(g.daemon.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "event=kbs.audit_failed"));
    free(log);
}

static void test_metrics_audit_and_files(void **state)
{
    (void)state;
    CURL *curl = new_client();
    http_result r;
    request(curl, "GET", "/metrics", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(metric(r.body, "vtpmca_kbs_requests_total{step=\"attest\",outcome=\"ok\"} ") >= 9);
    assert_true(
        metric(r.body, "vtpmca_kbs_requests_total{step=\"resource\",outcome=\"granted\"} ") >= 6);
    assert_int_equal(
        metric(r.body, "vtpmca_kbs_requests_total{step=\"resource\",outcome=\"policy_rejected\"} "),
        1);
    assert_int_equal(
        metric(r.body, "vtpmca_kbs_requests_total{step=\"attest\",outcome=\"nonce_spent\"} "), 1);
    assert_int_equal(
        metric(r.body,
               "vtpmca_kbs_requests_total{step=\"attest\",outcome=\"report_data_mismatch\"} "),
        1);
    assert_int_equal(
        metric(r.body, "vtpmca_kbs_requests_total{step=\"attest\",outcome=\"expired_session\"} "),
        1);
    assert_true(metric(r.body, "vtpmca_kbs_report_data_total{flavour=\"trustee\"} ") >= 3);
    assert_non_null(strstr(r.body, "vtpmca_kbs_sessions{state=\"pending\"}"));
    assert_non_null(strstr(r.body, "route=\"/kbs/v0/attest\",method=\"POST\",code=\"200\""));
    free(r.body);
    curl_easy_cleanup(curl);

    assert_int_equal(vtpmcad_stop(&g.daemon), 0);
    store *st = NULL;
    assert_int_equal(store_open(g.fx.db_path, &st, NULL), VTPMCA_OK);
    store_audit_filter filter = {.action = "key_release", .limit = 1000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, &filter, &events, &n, NULL), VTPMCA_OK);
    size_t granted = 0, rejected = 0;
    char measurement[97];
    memset(measurement, '2', 96);
    measurement[96] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(events[i].actor), KBS_SESSION_ID_HEX); /* the session id */
        if (strcmp(events[i].outcome, "granted") == 0)
            granted++;
        if (strcmp(events[i].outcome, "policy_rejected") == 0) {
            rejected++;
            assert_string_equal(events[i].instance_id, g.fx.instance_id[KBS_INSTANCE_GENERATED]);
            assert_string_equal(events[i].measurement, measurement);
        }
    }
    assert_true(granted >= 6);
    assert_int_equal(rejected, 1);
    free(events);
    store_close(st);

    const char *files[] = {"kbs-key.pem", "token-key.pem", "master.key"};
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", g.state_dir, files[i]);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    /* Nothing secret in the log. */
    char *log = runner_read_text(g.daemon.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "event=kbs.attest"));
    assert_null(strstr(log, "PRIVATE KEY"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_svsm_p521),
        cmocka_unit_test(test_boot_trustee_p384_and_rsa),
        cmocka_unit_test(test_bearer_and_wrapped_key),
        cmocka_unit_test(test_replays_and_refusals),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_release_waits_for_its_audit_row),
        cmocka_unit_test(test_metrics_audit_and_files),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
