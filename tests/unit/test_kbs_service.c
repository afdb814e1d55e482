/* Unit tests for attest/kbs_service.c, the KBS protocol engine, in-process and end to end:
 * a real verifier trusting a saved test root, a real sqlite store with enrolled instances,
 * the real key release. Clients decrypt the JWE with their own key (jwe_decrypt) and verify
 * the KBS binding (kbs_binding_verify_jwe). Covers both REPORT_DATA flavours on every
 * tee-pubkey type, the bearer token path, replays, expiry (injected clock), every release
 * outcome, bad input leaving sessions unchanged, and the metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/kbs_fixture.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/kbs_service.h"
#include "vtpmca/key_release.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_roots.h"

static struct {
    kbs_fixture fx;
    store *store;
    snp_roots *roots;
    snp_verifier *verifier;
    policy_cache *policies;
    keyvault *vault;
    key_release *release;
    EVP_PKEY *kbs_key, *token_key;
    ear_token_key token;     /* the service's token key, to check and forge tokens */
    ear_token_key kbs_token; /* tokens signed by another key (the KBS key) */
    EVP_PKEY *p521, *p384, *p256, *rsa;
    uint64_t now_ms;
} g;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g.now_ms;
}

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (kbs_fixture_create(&g.fx, &diag) != VTPMCA_OK) {
        fprintf(stderr, "fixture: %s\n", diag.msg);
        return -1;
    }
    snp_verifier_config vc = {0};
    key_release_config rc = {0};
    vtpmca_err err = store_open(g.fx.db_path, &g.store, &diag);
    if (err == VTPMCA_OK)
        err = snp_roots_new_empty(&g.roots);
    if (err == VTPMCA_OK)
        err = snp_roots_add_dir(g.roots, g.fx.roots_dir, &diag);
    if (err == VTPMCA_OK) {
        vc = (snp_verifier_config){.roots = g.roots, .store = g.store};
        err = snp_verifier_new(&vc, &g.verifier, &diag);
    }
    if (err == VTPMCA_OK)
        err = policy_cache_new(g.store, 16, 0, &g.policies);
    if (err == VTPMCA_OK)
        err = keyvault_open(g.fx.master_key, false, &g.vault, &diag);
    if (err == VTPMCA_OK) {
        rc = (key_release_config){.store = g.store, .vault = g.vault, .policies = g.policies};
        err = key_release_new(&rc, &g.release, &diag);
    }
    if (err == VTPMCA_OK)
        err = kbs_key_generate(KBS_KEY_P384, &g.kbs_key, &diag);
    if (err == VTPMCA_OK)
        err = kbs_key_generate(KBS_KEY_P384, &g.token_key, &diag);
    if (err == VTPMCA_OK)
        err = ear_token_key_init(&g.token, g.token_key, &diag);
    if (err == VTPMCA_OK)
        err = ear_token_key_init(&g.kbs_token, g.kbs_key, &diag);
    if (err != VTPMCA_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return -1;
    }
    g.p521 = EVP_EC_gen("P-521");
    g.p384 = EVP_EC_gen("P-384");
    g.p256 = EVP_EC_gen("P-256");
    g.rsa = EVP_RSA_gen(2048);
    g.now_ms = 1000000;
    return g.p521 && g.p384 && g.p256 && g.rsa ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    key_release_free(g.release);
    keyvault_free(g.vault);
    policy_cache_free(g.policies);
    snp_verifier_free(g.verifier);
    snp_roots_free(g.roots);
    store_close(g.store);
    ear_token_key_clear(&g.token);
    ear_token_key_clear(&g.kbs_token);
    EVP_PKEY_free(g.kbs_key);
    EVP_PKEY_free(g.token_key);
    EVP_PKEY_free(g.p521);
    EVP_PKEY_free(g.p384);
    EVP_PKEY_free(g.p256);
    EVP_PKEY_free(g.rsa);
    kbs_fixture_destroy(&g.fx);
    return 0;
}

static kbs_service *new_service_with(key_release *release, unsigned capacity)
{
    kbs_service_config config = {.verifier = g.verifier,
                                 .release = release,
                                 .kbs_key = g.kbs_key,
                                 .token_key = g.token_key,
                                 .sessions = {.capacity = capacity, .clock = fake_clock}};
    kbs_service *svc = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_service_new(&config, &svc, &diag), VTPMCA_OK);
    return svc;
}

static kbs_service *new_service(void)
{
    return new_service_with(g.release, 0);
}

/* ---- client side ---- */

typedef struct {
    char id[KBS_SESSION_ID_HEX + 1];
    char nonce[64];
    uint8_t nonce_raw[KBS_NONCE_BYTES];
} session;

static void expect_error(kbs_reply *reply, unsigned status, const char *code)
{
    if (reply->status != status ||
        strcmp(json_string_value(json_object_get(reply->body, "error")), code) != 0) {
        char *text = json_dumps(reply->body, 0);
        fail_msg("expected %u %s, got %u %s", status, code, reply->status, text);
    }
    assert_non_null(json_string_value(json_object_get(reply->body, "message")));
    assert_int_equal(json_object_size(reply->body), 2);
    kbs_reply_clear(reply);
}

/* A 200 answer comes as compact JSON text. Checks that it parses (duplicates refused) into an
 * object of exactly `names`, in that order, all strings, as the json_pack objects of the
 * engine's earlier versions had, and that the text is byte-for-byte json_dumps of that object
 * (so the wire bytes are unchanged). The reply then holds the object in body instead, for the
 * checks that follow. */
static void expect_answer(kbs_reply *reply, const char *const *names, size_t n_names)
{
    assert_int_equal(reply->status, 200);
    assert_null(reply->body);
    assert_non_null(reply->text);
    assert_int_equal(strlen(reply->text), reply->text_len);
    json_error_t jerr;
    json_t *doc = json_loadb(reply->text, reply->text_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        fail_msg("answer is not JSON (%s): %s", jerr.text, reply->text);
    assert_true(json_is_object(doc));
    assert_int_equal(json_object_size(doc), n_names);
    size_t i = 0;
    const char *name;
    json_t *value;
    json_object_foreach(doc, name, value)
    {
        assert_string_equal(name, names[i]);
        /* Every member is a string, except the JWE's unprotected header object. */
        assert_true(strcmp(name, "header") == 0 ? json_is_object(value) : json_is_string(value));
        i++;
    }
    char *dumped = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(dumped, reply->text);
    free(dumped);
    free(reply->text);
    reply->text = NULL;
    reply->text_len = 0;
    reply->body = doc;
}

static const char *const auth_members[] = {"nonce", "extra-params"};
static const char *const attest_members[] = {"token"};
/* The flattened JWE, with the KBS binding's "header" for EC tee keys. */
static const char *const jwe_members[] = {"protected",  "encrypted_key", "iv",
                                          "ciphertext", "tag",           "header"};

static void auth_text(kbs_service *svc, const char *body, kbs_reply *reply)
{
    assert_int_equal(kbs_service_auth(svc, (const uint8_t *)body, strlen(body), reply), VTPMCA_OK);
}

static void do_auth(kbs_service *svc, session *s)
{
    kbs_reply reply;
    auth_text(svc, "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":\"\"}", &reply);
    expect_answer(&reply, auth_members, 2);
    const char *nonce = json_string_value(json_object_get(reply.body, "nonce"));
    assert_non_null(nonce);
    assert_string_equal(json_string_value(json_object_get(reply.body, "extra-params")), "");
    assert_int_equal(json_object_size(reply.body), 2);
    snprintf(s->nonce, sizeof(s->nonce), "%s", nonce);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(vt_b64_decode_alloc(nonce, strlen(nonce), VT_B64_STD, &raw, &raw_len),
                     VTPMCA_OK);
    assert_int_equal(raw_len, KBS_NONCE_BYTES);
    memcpy(s->nonce_raw, raw, raw_len);
    free(raw);
    /* kbs-session-id=<32 hex>; Path=/kbs; HttpOnly; Max-Age=60 */
    assert_int_equal(strncmp(reply.set_cookie, "kbs-session-id=", 15), 0);
    memcpy(s->id, reply.set_cookie + 15, KBS_SESSION_ID_HEX);
    s->id[KBS_SESSION_ID_HEX] = '\0';
    assert_string_equal(reply.set_cookie + 15 + KBS_SESSION_ID_HEX,
                        "; Path=/kbs; HttpOnly; Max-Age=60");
    kbs_reply_clear(&reply);
}

static void attest_json(kbs_service *svc, const char *cookie, const json_t *body, kbs_reply *reply)
{
    char *text = json_dumps(body, JSON_COMPACT);
    assert_non_null(text);
    assert_int_equal(kbs_service_attest(svc, cookie, (const uint8_t *)text, strlen(text), reply),
                     VTPMCA_OK);
    free(text);
}

/* auth + attest; returns the token. */
static char *boot(kbs_service *svc, session *s, report_data_flavour flavour, EVP_PKEY *tee,
                  uint8_t measurement)
{
    do_auth(svc, s);
    json_t *body = kbs_fixture_evidence(&g.fx, flavour, tee, s->nonce, measurement);
    assert_non_null(body);
    kbs_reply reply;
    attest_json(svc, s->id, body, &reply);
    json_decref(body);
    if (reply.status != 200) {
        char *text = json_dumps(reply.body, 0);
        fail_msg("attest: %u %s", reply.status, text);
    }
    expect_answer(&reply, attest_members, 1);
    char *token = strdup(json_string_value(json_object_get(reply.body, "token")));
    char want_cookie[128];
    snprintf(want_cookie, sizeof(want_cookie),
             "kbs-session-id=%s; Path=/kbs; HttpOnly; Max-Age=300", s->id);
    assert_string_equal(reply.set_cookie, want_cookie);
    kbs_reply_clear(&reply);
    return token;
}

static void resource(kbs_service *svc, const char *cookie, const char *bearer, const char *path,
                     const char *body, kbs_reply *reply)
{
    assert_int_equal(kbs_service_resource(svc, cookie, bearer, path, (const uint8_t *)body,
                                          body != NULL ? strlen(body) : 0, reply),
                     VTPMCA_OK);
}

/* Decrypts a granted resource and checks its KBS binding (EC keys). */
static size_t open_jwe(kbs_reply *reply, const session *s, EVP_PKEY *tee, uint8_t *key_out)
{
    if (reply->status != 200) {
        char *text = json_dumps(reply->body, 0);
        fail_msg("resource: %u %s", reply->status, text);
    }
    expect_answer(reply, jwe_members, jwe_ec_curve_name(tee) != NULL ? 6 : 5);
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    assert_int_equal(jwe_decrypt(tee, reply->body, key_out, JWE_MAX_SECRET, &len, &diag),
                     VTPMCA_OK);
    if (jwe_ec_curve_name(tee) != NULL) {
        EVP_PKEY *kbs_pub = NULL;
        assert_int_equal(kbs_binding_verify_jwe(reply->body, s->nonce_raw, KBS_NONCE_BYTES, tee,
                                                g.kbs_key, &kbs_pub, &diag),
                         VTPMCA_OK);
        assert_int_equal(EVP_PKEY_eq(kbs_pub, g.kbs_key), 1);
        EVP_PKEY_free(kbs_pub);
    } else {
        assert_null(json_object_get(reply->body, "header")); /* RSA-OAEP: no binding */
    }
    kbs_reply_clear(reply);
    return len;
}

static size_t audit_count(const char *instance, const char *outcome)
{
    store_audit_filter filter = {
        .instance_id = instance, .action = "key_release", .outcome = outcome, .limit = 1000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(g.store, &filter, &events, &n, NULL), VTPMCA_OK);
    free(events);
    return n;
}

/* ---- auth ---- */

static void test_auth(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session a, b;
    do_auth(svc, &a);
    do_auth(svc, &b);
    assert_string_not_equal(a.id, b.id);
    assert_string_not_equal(a.nonce, b.nonce);
    assert_int_equal(strlen(a.nonce), 44); /* 32 bytes, padded standard base64 */

    kbs_reply reply;
    auth_text(svc, "{\"version\":\"0.4.0\",\"tee\":\"snp\"", &reply);
    expect_error(&reply, 400, "bad_request");
    auth_text(svc, "[\"0.4.0\"]", &reply);
    expect_error(&reply, 400, "bad_request");
    auth_text(svc, "", &reply);
    expect_error(&reply, 400, "bad_request");
    auth_text(svc, "{\"version\":\"0.3.0\",\"tee\":\"snp\",\"extra-params\":\"\"}", &reply);
    expect_error(&reply, 400, "unsupported_version");
    auth_text(svc, "{\"version\":\"0.4.0\",\"tee\":\"tdx\",\"extra-params\":\"\"}", &reply);
    expect_error(&reply, 400, "unsupported_tee");
    auth_text(svc, "{\"version\":4,\"tee\":\"snp\"}", &reply);
    expect_error(&reply, 400, "bad_request");
    auth_text(svc, "{\"version\":\"0.4.0\",\"version\":\"0.4.0\",\"tee\":\"snp\"}", &reply);
    expect_error(&reply, 400, "bad_request");
    /* None of those made a session. */
    kbs_session_stats stats;
    kbs_session_get_stats(kbs_service_sessions(svc), &stats);
    assert_int_equal(stats.created, 2);
    assert_int_equal(kbs_service_count(svc, "auth", "ok"), 2);
    assert_int_equal(kbs_service_count(svc, "auth", "bad_request"), 5);
    assert_int_equal(kbs_service_count(svc, "auth", "unsupported_version"), 1);
    assert_int_equal(kbs_service_count(svc, "auth", "unsupported_tee"), 1);
    assert_int_equal(kbs_service_count(svc, "auth", "nonsense"), 0);
    assert_int_equal(kbs_service_auth(NULL, NULL, 0, &reply), VTPMCA_ERR_INVALID_ARG);
    kbs_service_free(svc);
}

/* A full table of attested sessions turns auth away with 503 and Retry-After. */
static void test_auth_table_full(void **state)
{
    (void)state;
    kbs_service *svc = new_service_with(g.release, 1);
    session s;
    char *token = boot(svc, &s, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    free(token);
    kbs_reply reply;
    auth_text(svc, "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":\"\"}", &reply);
    assert_int_equal(reply.retry_after_s, 1);
    expect_error(&reply, 503, "table_full");
    kbs_service_free(svc);
}

/* ---- full boots ---- */

static void test_boot_svsm_p521(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    char *token = boot(svc, &s, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);

    /* The token: an EAR signed by the token key, bound to the session and the tee key. */
    json_t *claims = NULL;
    assert_int_equal(ear_token_verify(&g.token, token, strlen(token), time(NULL), &claims, NULL),
                     VTPMCA_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sid")), s.id);
    json_t *jwk = NULL;
    assert_int_equal(jwe_pubkey_to_jwk(g.p521, JWE_JWK_RFC7517, &jwk, NULL), VTPMCA_OK);
    assert_true(json_equal(json_object_get(claims, "tee-pubkey"), jwk));
    json_t *annotated =
        json_object_get(json_object_get(json_object_get(claims, "submods"), "SEV-SNP"),
                        "ear.veraison.annotated-evidence");
    /* Found in the store the first time, in the verifier's warm cache after that. */
    const char *source = json_string_value(json_object_get(annotated, "vcek_source"));
    assert_true(strcmp(source, "store") == 0 || strcmp(source, "cache") == 0);
    json_int_t iat = json_integer_value(json_object_get(claims, "iat"));
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), iat + 300);
    json_decref(jwk);
    json_decref(claims);

    /* The persistence key, exactly the one the service keeps for the instance. */
    uint8_t expected[KEYVAULT_KEY_MAX], got[JWE_MAX_SECRET];
    size_t expected_len = 0;
    assert_int_equal(
        kbs_fixture_instance_key(&g.fx, KBS_INSTANCE_GENERATED, expected, &expected_len, NULL),
        VTPMCA_OK);
    size_t before = audit_count(g.fx.instance_id[KBS_INSTANCE_GENERATED], "granted");
    kbs_reply reply;
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    /* Exactly the members aproxy parses, plus the unprotected header with the binding (what
     * open_jwe checks, with the binding's signature). */
    assert_int_equal(open_jwe(&reply, &s, g.p521, got), expected_len);
    assert_memory_equal(got, expected, expected_len);
    /* Repeated GETs within the session are allowed, each audited. */
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    assert_int_equal(open_jwe(&reply, &s, g.p521, got), expected_len);
    assert_int_equal(audit_count(g.fx.instance_id[KBS_INSTANCE_GENERATED], "granted"), before + 2);

    /* The instance with enrolled (matching) host data. */
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_HOST_DATA], NULL, &reply);
    open_jwe(&reply, &s, g.p521, got);

    assert_int_equal(kbs_service_count(svc, "attest", "ok"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "granted"), 3);
    free(token);
    kbs_service_free(svc);
}

static void test_boot_trustee_every_key_type(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    EVP_PKEY *keys[] = {g.p384, g.p256, g.p521, g.rsa};
    uint8_t expected[KEYVAULT_KEY_MAX], got[JWE_MAX_SECRET];
    size_t expected_len = 0;
    assert_int_equal(
        kbs_fixture_instance_key(&g.fx, KBS_INSTANCE_GENERATED, expected, &expected_len, NULL),
        VTPMCA_OK);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        session s;
        char *token = boot(svc, &s, REPORT_DATA_FLAVOUR_TRUSTEE, keys[i], KBS_FIXTURE_MEASUREMENT);
        free(token);
        kbs_reply reply;
        resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
        assert_int_equal(open_jwe(&reply, &s, keys[i], got), expected_len);
        assert_memory_equal(got, expected, expected_len);
    }
    /* The SVSM flavour on P-384 too (coordinates of the key's own size). */
    session s;
    free(boot(svc, &s, REPORT_DATA_FLAVOUR_SVSM, g.p384, KBS_FIXTURE_MEASUREMENT));
    assert_int_equal(kbs_service_count(svc, "attest", "ok"), 5);
    char *metrics = NULL;
    assert_int_equal(kbs_service_metrics_render(svc, &metrics, NULL), VTPMCA_OK);
    assert_non_null(strstr(metrics, "vtpmca_kbs_report_data_total{flavour=\"trustee\"} 4\n"));
    assert_non_null(strstr(metrics, "vtpmca_kbs_report_data_total{flavour=\"svsm\"} 1\n"));
    assert_non_null(
        strstr(metrics, "vtpmca_kbs_requests_total{step=\"attest\",outcome=\"ok\"} 5\n"));
    assert_non_null(strstr(metrics, "vtpmca_kbs_sessions{state=\"attested\"} 5\n"));
    free(metrics);
    kbs_service_free(svc);
}

/* The evidence shapes: "attestation_report"/"cert_chain" names, and a certificate table
 * carrying the VCEK (then used as supplied). */
static void test_evidence_shapes(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    do_auth(svc, &s);
    json_t *body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                        KBS_FIXTURE_MEASUREMENT);
    json_t *primary = json_object_get(json_object_get(body, "tee-evidence"), "primary_evidence");
    json_t *report = json_incref(json_object_get(primary, "snp-report"));
    json_object_clear(primary);
    json_object_set_new(primary, "attestation_report", report);
    /* Table: the VCEK entry (GUID in RFC 4122 order), the all-zero end, then the DER. */
    size_t table_len = 48 + g.fx.vcek_der_len;
    uint8_t *table = calloc(1, table_len);
    static const uint8_t vcek_guid[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                          0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
    memcpy(table, vcek_guid, 16);
    table[16] = 48;
    table[20] = (uint8_t)g.fx.vcek_der_len;
    table[21] = (uint8_t)(g.fx.vcek_der_len >> 8);
    memcpy(table + 48, g.fx.vcek_der, g.fx.vcek_der_len);
    char *table_b64 = NULL;
    vt_b64_encode_alloc(table, table_len, VT_B64_STD, &table_b64);
    json_object_set_new(primary, "cert_chain", json_string(table_b64));
    kbs_reply reply;
    attest_json(svc, s.id, body, &reply);
    expect_answer(&reply, attest_members, 1);
    const char *token = json_string_value(json_object_get(reply.body, "token"));
    json_t *claims = NULL;
    assert_int_equal(ear_token_verify(&g.token, token, strlen(token), time(NULL), &claims, NULL),
                     VTPMCA_OK);
    json_t *annotated =
        json_object_get(json_object_get(json_object_get(claims, "submods"), "SEV-SNP"),
                        "ear.veraison.annotated-evidence");
    assert_string_equal(json_string_value(json_object_get(annotated, "vcek_source")), "supplied");
    json_decref(claims);
    kbs_reply_clear(&reply);

    /* A table pointing outside itself is a bad request. */
    do_auth(svc, &s);
    json_decref(body);
    body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                KBS_FIXTURE_MEASUREMENT);
    table[20] = 0xff;
    table[21] = 0xff;
    free(table_b64);
    vt_b64_encode_alloc(table, table_len, VT_B64_STD, &table_b64);
    primary = json_object_get(json_object_get(body, "tee-evidence"), "primary_evidence");
    json_object_set_new(primary, "certs-buf", json_string(table_b64));
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 400, "bad_request");
    free(table);
    free(table_b64);
    json_decref(body);
    kbs_service_free(svc);
}

/* ---- bearer tokens ---- */

static void test_bearer_token(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session a, b;
    char *token_a = boot(svc, &a, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT);
    char *token_b = boot(svc, &b, REPORT_DATA_FLAVOUR_TRUSTEE, g.p384, KBS_FIXTURE_MEASUREMENT);
    const char *path = g.fx.path[KBS_INSTANCE_GENERATED];
    uint8_t got[JWE_MAX_SECRET];
    kbs_reply reply;
    /* The token alone, or with its own session's cookie. */
    resource(svc, NULL, token_a, path, NULL, &reply);
    open_jwe(&reply, &a, g.p521, got);
    resource(svc, a.id, token_a, path, NULL, &reply);
    open_jwe(&reply, &a, g.p521, got);
    /* Cookie of session A with the token of session B. */
    resource(svc, a.id, token_b, path, NULL, &reply);
    expect_error(&reply, 401, "session_mismatch");
    /* A tampered token, an empty one, one signed by another key. */
    char *tampered = strdup(token_a);
    tampered[strlen(tampered) - 3] = tampered[strlen(tampered) - 3] == 'A' ? 'B' : 'A';
    resource(svc, NULL, tampered, path, NULL, &reply);
    expect_error(&reply, 401, "invalid_token");
    resource(svc, NULL, "", path, NULL, &reply);
    expect_error(&reply, 401, "invalid_token");
    json_t *claims = json_pack("{s:s,s:I}", "sid", a.id, "exp", (json_int_t)time(NULL) + 60);
    char *foreign = NULL;
    assert_int_equal(ear_token_sign(&g.kbs_token, claims, &foreign, NULL), VTPMCA_OK);
    resource(svc, NULL, foreign, path, NULL, &reply);
    expect_error(&reply, 401, "invalid_token");
    /* Signed by the token key but naming another tee-pubkey than the session's. */
    json_t *other_jwk = NULL;
    jwe_pubkey_to_jwk(g.p256, JWE_JWK_RFC7517, &other_jwk, NULL);
    json_object_set_new(claims, "tee-pubkey", other_jwk);
    char *mismatched = NULL;
    assert_int_equal(ear_token_sign(&g.token, claims, &mismatched, NULL), VTPMCA_OK);
    resource(svc, NULL, mismatched, path, NULL, &reply);
    expect_error(&reply, 401, "token_mismatch");
    /* An expired token. */
    json_object_set_new(claims, "exp", json_integer((json_int_t)time(NULL) - 1));
    char *expired = NULL;
    assert_int_equal(ear_token_sign(&g.token, claims, &expired, NULL), VTPMCA_OK);
    resource(svc, NULL, expired, path, NULL, &reply);
    expect_error(&reply, 401, "token_expired");
    assert_int_equal(kbs_service_count(svc, "resource", "unauthorized"), 6);
    json_decref(claims);
    free(expired);
    free(mismatched);
    free(foreign);
    free(tampered);
    free(token_a);
    free(token_b);
    kbs_service_free(svc);
}

/* ---- replays and expiry ---- */

static void test_replays_refused(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    do_auth(svc, &s);
    json_t *body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                        KBS_FIXTURE_MEASUREMENT);
    kbs_reply reply;
    attest_json(svc, s.id, body, &reply);
    expect_answer(&reply, attest_members, 1);
    kbs_reply_clear(&reply);
    /* The same nonce again (second attest on the session). */
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 401, "nonce_spent");
    /* The same evidence on a new session: as sent, its nonce is the old one... */
    session t;
    do_auth(svc, &t);
    attest_json(svc, t.id, body, &reply);
    expect_error(&reply, 401, "nonce_mismatch");
    /* ...and with the new nonce put in, the REPORT_DATA still binds the old one. */
    json_object_set_new(json_object_get(body, "runtime-data"), "nonce", json_string(t.nonce));
    attest_json(svc, t.id, body, &reply);
    expect_error(&reply, 401, "report_data_mismatch");
    /* The refused attempts left session t usable. */
    json_decref(body);
    body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_TRUSTEE, g.p384, t.nonce,
                                KBS_FIXTURE_MEASUREMENT);
    attest_json(svc, t.id, body, &reply);
    expect_answer(&reply, attest_members, 1);
    kbs_reply_clear(&reply);
    json_decref(body);
    kbs_service_free(svc);
}

static void test_expiry(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    do_auth(svc, &s);
    g.now_ms += 60 * 1000;
    json_t *body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                        KBS_FIXTURE_MEASUREMENT);
    kbs_reply reply;
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 401, "expired_session");
    json_decref(body);

    session t;
    free(boot(svc, &t, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT));
    g.now_ms += 299 * 1000;
    resource(svc, t.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    expect_answer(&reply, jwe_members, 6);
    kbs_reply_clear(&reply);
    g.now_ms += 1000;
    resource(svc, t.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    expect_error(&reply, 401, "expired_session");
    resource(svc, t.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    expect_error(&reply, 401, "unknown_session");
    kbs_service_free(svc);
}

/* ---- bad input ---- */

typedef void (*mutation)(json_t *body);

static json_t *runtime(json_t *body)
{
    return json_object_get(body, "runtime-data");
}
static json_t *tee_pubkey(json_t *body)
{
    return json_object_get(runtime(body), "tee-pubkey");
}
static json_t *primary(json_t *body)
{
    return json_object_get(json_object_get(body, "tee-evidence"), "primary_evidence");
}
static void no_runtime(json_t *b)
{
    json_object_del(b, "runtime-data");
}
static void evidence_string(json_t *b)
{
    json_object_set_new(b, "tee-evidence", json_string("x"));
}
static void nonce_number(json_t *b)
{
    json_object_set_new(runtime(b), "nonce", json_integer(1));
}
static void kty_okp(json_t *b)
{
    json_object_set_new(tee_pubkey(b), "kty", json_string("OKP"));
}
static void alg_mismatch(json_t *b)
{
    json_object_set_new(tee_pubkey(b), "alg", json_string("RSA-OAEP-256"));
}
static void alg_missing(json_t *b)
{
    json_object_del(tee_pubkey(b), "alg");
}
static void curve_p192(json_t *b)
{
    json_object_set_new(tee_pubkey(b), "crv", json_string("P-192"));
}
/* Changes the last character of y: a point that is (almost surely) not on the curve. */
static void off_curve(json_t *b)
{
    char *y = strdup(json_string_value(json_object_get(tee_pubkey(b), "y")));
    size_t n = strlen(y);
    y[n - 2] = y[n - 2] == 'A' ? 'B' : 'A';
    json_object_set_new(tee_pubkey(b), "y", json_string(y));
    free(y);
}
static void x_padded(json_t *b)
{
    char *x = NULL;
    const char *orig = json_string_value(json_object_get(tee_pubkey(b), "x"));
    x = malloc(strlen(orig) + 3);
    sprintf(x, "%s==", orig);
    json_object_set_new(tee_pubkey(b), "x", json_string(x));
    free(x);
}
static void private_d(json_t *b)
{
    json_object_set_new(tee_pubkey(b), "d", json_string("AAAA"));
}
static void report_unpadded(json_t *b)
{
    char *r = strdup(json_string_value(json_object_get(primary(b), "snp-report")));
    char *eq = strchr(r, '=');
    if (eq != NULL)
        *eq = '\0';
    else
        r[strlen(r) - 1] = '*'; /* 1184 bytes encode without padding: spoil a char instead */
    json_object_set_new(primary(b), "snp-report", json_string(r));
    free(r);
}
static void report_urlsafe(json_t *b)
{
    char *r = strdup(json_string_value(json_object_get(primary(b), "snp-report")));
    r[0] = '-'; /* a base64url character, not in the standard alphabet */
    json_object_set_new(primary(b), "snp-report", json_string(r));
    free(r);
}
static void report_short(json_t *b)
{
    json_object_set_new(primary(b), "snp-report", json_string("AAAA"));
}
static void report_garbage(json_t *b)
{
    /* 1184 bytes that are no report (version 0). */
    uint8_t zeros[SNP_REPORT_SIZE] = {0};
    char *text = NULL;
    vt_b64_encode_alloc(zeros, sizeof(zeros), VT_B64_STD, &text);
    json_object_set_new(primary(b), "snp-report", json_string(text));
    free(text);
}
static void report_object(json_t *b)
{
    json_object_del(primary(b), "snp-report");
    json_object_set_new(primary(b), "attestation_report", json_pack("{s:i}", "version", 3));
}
static void two_reports(json_t *b)
{
    json_object_set(primary(b), "attestation_report", json_object_get(primary(b), "snp-report"));
}
static void certs_not_base64(json_t *b)
{
    json_object_set_new(primary(b), "certs-buf", json_string("!!"));
}
static void init_data(json_t *b)
{
    json_object_set_new(b, "init-data", json_pack("{s:s,s:s}", "format", "toml", "body", ""));
}
static void additional(json_t *b)
{
    json_object_set_new(json_object_get(b, "tee-evidence"), "additional_evidence",
                        json_string("{\"tdx\":{}}"));
}
static void additional_number(json_t *b)
{
    json_object_set_new(json_object_get(b, "tee-evidence"), "additional_evidence", json_integer(0));
}

static void test_attest_bad_input(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    do_auth(svc, &s);
    const mutation mutations[] = {
        no_runtime,      evidence_string,  nonce_number, kty_okp,        alg_mismatch,
        alg_missing,     curve_p192,       off_curve,    x_padded,       private_d,
        report_unpadded, report_urlsafe,   report_short, report_garbage, report_object,
        two_reports,     certs_not_base64, init_data,    additional,     additional_number,
    };
    kbs_reply reply;
    for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
        json_t *body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                            KBS_FIXTURE_MEASUREMENT);
        mutations[i](body);
        attest_json(svc, s.id, body, &reply);
        if (reply.status != 400) {
            char *text = json_dumps(reply.body, 0);
            fail_msg("mutation %zu: %u %s", i, reply.status, text);
        }
        expect_error(&reply, 400, "bad_request");
        json_decref(body);
    }
    const char *raw_bodies[] = {"", "{", "[]", "null", "{\"runtime-data\":{},\"tee-evidence\":{}}"};
    for (size_t i = 0; i < sizeof(raw_bodies) / sizeof(raw_bodies[0]); i++) {
        assert_int_equal(kbs_service_attest(svc, s.id, (const uint8_t *)raw_bodies[i],
                                            strlen(raw_bodies[i]), &reply),
                         VTPMCA_OK);
        expect_error(&reply, 400, "bad_request");
    }
    /* Sessions: none, unknown. */
    json_t *body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                        KBS_FIXTURE_MEASUREMENT);
    attest_json(svc, NULL, body, &reply);
    expect_error(&reply, 401, "no_session");
    attest_json(svc, "ffffffffffffffffffffffffffffffff", body, &reply);
    expect_error(&reply, 401, "unknown_session");
    /* Evidence for another nonce. */
    session other;
    do_auth(svc, &other);
    json_t *foreign = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, other.nonce,
                                           KBS_FIXTURE_MEASUREMENT);
    attest_json(svc, s.id, foreign, &reply);
    expect_error(&reply, 401, "nonce_mismatch");
    json_decref(foreign);

    /* After all that, the session is as it was: the genuine request succeeds. */
    attest_json(svc, s.id, body, &reply);
    expect_answer(&reply, attest_members, 1);
    kbs_reply_clear(&reply);
    json_decref(body);
    assert_int_equal(kbs_service_count(svc, "attest", "bad_request"), 25);
    kbs_service_free(svc);
}

/* Evidence that fails verification: a report signed by an untrusted root's VCEK, a report
 * altered after signing, and a chip whose VCEK is unknown. */
static void test_attest_evidence_invalid(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    do_auth(svc, &s);
    json_t *jwk = kbs_fixture_tee_jwk(g.p521);
    uint8_t report_data[64], report[SNP_REPORT_SIZE];
    assert_int_equal(report_data_svsm(g.p521, s.nonce_raw, 32, report_data, NULL), VTPMCA_OK);

    /* 1. Altered after signing (guest SVN): the signature no longer verifies. */
    assert_int_equal(
        kbs_fixture_sign_report(&g.fx, KBS_FIXTURE_MEASUREMENT, report_data, report, NULL),
        VTPMCA_OK);
    report[4] ^= 1;
    json_t *body = kbs_fixture_attest_body(s.nonce, jwk, report);
    kbs_reply reply;
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 401, "evidence_invalid");
    json_decref(body);

    /* 2. Same chip and TCB, but signed by a VCEK from a root nobody trusts. */
    snp_test_root *rogue = NULL;
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &rogue, NULL), VTPMCA_OK);
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK, .tcb = g.fx.tcb};
    memcpy(params.chip_id, g.fx.chip_id, 64);
    EVP_PKEY *rogue_key = NULL;
    uint8_t *rogue_der = NULL;
    size_t rogue_len = 0;
    assert_int_equal(snp_test_issue_cert(rogue, &params, &rogue_key, &rogue_der, &rogue_len, NULL),
                     VTPMCA_OK);
    snp_report r;
    snp_test_report_defaults(&r, SNP_PRODUCT_MILAN, 3, g.fx.chip_id, &g.fx.tcb);
    memset(r.measurement, KBS_FIXTURE_MEASUREMENT, 48);
    memcpy(r.report_data, report_data, 64);
    assert_int_equal(snp_test_report_sign(&r, rogue_key, report, NULL), VTPMCA_OK);
    body = kbs_fixture_attest_body(s.nonce, jwk, report);
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 401, "evidence_invalid");
    json_decref(body);

    /* 3. Another chip: no VCEK in the store and no KDS. */
    uint8_t other_chip[64];
    memset(other_chip, 0x77, sizeof(other_chip));
    snp_test_report_defaults(&r, SNP_PRODUCT_MILAN, 3, other_chip, &g.fx.tcb);
    memcpy(r.report_data, report_data, 64);
    assert_int_equal(snp_test_report_sign(&r, rogue_key, report, NULL), VTPMCA_OK);
    body = kbs_fixture_attest_body(s.nonce, jwk, report);
    attest_json(svc, s.id, body, &reply);
    expect_error(&reply, 401, "evidence_invalid");
    json_decref(body);
    assert_int_equal(kbs_service_count(svc, "attest", "evidence_invalid"), 3);

    /* The session survived every failed attempt. */
    body = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_SVSM, g.p521, s.nonce,
                                KBS_FIXTURE_MEASUREMENT);
    attest_json(svc, s.id, body, &reply);
    expect_answer(&reply, attest_members, 1);
    kbs_reply_clear(&reply);
    json_decref(body);
    json_decref(jwk);
    EVP_PKEY_free(rogue_key);
    free(rogue_der);
    snp_test_root_free(rogue);
    kbs_service_free(svc);
}

/* ---- release outcomes ---- */

static void test_resource_outcomes(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s, bad;
    free(boot(svc, &s, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT));
    free(boot(svc, &bad, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_BAD_MEASUREMENT));
    kbs_reply reply;

    resource(svc, s.id, NULL, "vtpmca/persistence-key/nothing-here", NULL, &reply);
    expect_error(&reply, 404, "unknown_resource");
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_DISABLED], NULL, &reply);
    expect_error(&reply, 403, "disabled");
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_HOST_MISMATCH], NULL, &reply);
    expect_error(&reply, 403, "host_data_mismatch");
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_NO_POLICY], NULL, &reply);
    expect_error(&reply, 403, "no_policy");
    /* A measurement the fleet's policy does not list: attested, but no release. */
    resource(svc, bad.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], NULL, &reply);
    expect_error(&reply, 403, "policy_rejected");
    assert_int_equal(audit_count(g.fx.instance_id[KBS_INSTANCE_GENERATED], "policy_rejected"), 1);

    /* Wrapped-key mode: GET has no blob; POST with the blob releases the admin's key. */
    const char *wrapped_path = g.fx.path[KBS_INSTANCE_WRAPPED];
    resource(svc, s.id, NULL, wrapped_path, NULL, &reply);
    expect_error(&reply, 403, "wrapped_key_invalid");
    char *blob = NULL;
    vt_b64_encode_alloc(g.fx.wrapped_blob, g.fx.wrapped_blob_len, VT_B64_URL_NOPAD, &blob);
    char body[512];
    snprintf(body, sizeof(body), "{\"wrapped-key\":\"%s\"}", blob);
    resource(svc, s.id, NULL, wrapped_path, body, &reply);
    uint8_t got[JWE_MAX_SECRET];
    assert_int_equal(open_jwe(&reply, &s, g.p521, got), sizeof(g.fx.wrapped_key));
    assert_memory_equal(got, g.fx.wrapped_key, sizeof(g.fx.wrapped_key));
    /* A tampered blob. */
    blob[5] = blob[5] == 'A' ? 'B' : 'A';
    snprintf(body, sizeof(body), "{\"wrapped-key\":\"%s\"}", blob);
    resource(svc, s.id, NULL, wrapped_path, body, &reply);
    expect_error(&reply, 403, "wrapped_key_invalid");
    /* The blob to another instance's path. */
    blob[5] = blob[5] == 'A' ? 'B' : 'A';
    snprintf(body, sizeof(body), "{\"wrapped-key\":\"%s\"}", blob);
    resource(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_GENERATED], body, &reply);
    expect_error(&reply, 403, "wrapped_key_invalid"); /* generated mode takes no blob */

    /* Malformed POST bodies and paths: 400, nothing audited. */
    size_t audited = audit_count(NULL, NULL);
    const char *bad_bodies[] = {"",
                                "{",
                                "[]",
                                "{\"wrapped-key\":1}",
                                "{\"wrapped-key\":\"AA==\"}",
                                "{\"wrapped-key\":\"\"}",
                                "{\"wrapped-key\":\"+/\"}",
                                "{\"wrapped-key\":\"AAAA\",\"x\":1}"};
    for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++) {
        resource(svc, s.id, NULL, wrapped_path, bad_bodies[i], &reply);
        expect_error(&reply, 400, "bad_request");
    }
    const char *bad_paths[] = {"a/b", "a/b/c/d", "a//c", "/a/b", "a/b/", "a/b/c d", "a/b/%2e", ""};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        resource(svc, s.id, NULL, bad_paths[i], NULL, &reply);
        expect_error(&reply, 400, "bad_request");
    }
    char long_path[128];
    memset(long_path, 'a', sizeof(long_path));
    memcpy(long_path, "a/b/", 4);
    long_path[4 + 65] = '\0';
    resource(svc, s.id, NULL, long_path, NULL, &reply);
    expect_error(&reply, 400, "bad_request");
    /* Sessions that may not fetch. */
    resource(svc, NULL, NULL, wrapped_path, NULL, &reply);
    expect_error(&reply, 401, "no_session");
    resource(svc, "0123456789abcdef0123456789abcdef", NULL, wrapped_path, NULL, &reply);
    expect_error(&reply, 401, "unknown_session");
    session pending;
    do_auth(svc, &pending);
    resource(svc, pending.id, NULL, wrapped_path, NULL, &reply);
    expect_error(&reply, 401, "not_attested");
    assert_int_equal(audit_count(NULL, NULL), audited);
    free(blob);

    /* Without a key release configured: 503. */
    kbs_service *bare = new_service_with(NULL, 0);
    resource(bare, s.id, NULL, wrapped_path, NULL, &reply);
    expect_error(&reply, 503, "unavailable");
    kbs_service_free(bare);

    assert_int_equal(kbs_service_count(svc, "resource", "unknown_resource"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "disabled"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "host_data_mismatch"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "no_policy"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "policy_rejected"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "wrapped_key_invalid"), 3);
    assert_int_equal(kbs_service_count(svc, "resource", "granted"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "bad_request"), 17);
    assert_int_equal(kbs_service_count(svc, "resource", "unauthorized"), 3);
    kbs_service_free(svc);
}

/* The resource in two halves, as the daemon runs it: begin decides and encrypts but writes
 * nothing and answers nothing; the answer comes from end, and the key only when the audit row
 * was written. */
static void test_resource_in_two_halves(void **state)
{
    (void)state;
    kbs_service *svc = new_service();
    session s;
    free(boot(svc, &s, REPORT_DATA_FLAVOUR_SVSM, g.p521, KBS_FIXTURE_MEASUREMENT));
    const char *instance = g.fx.instance_id[KBS_INSTANCE_GENERATED];
    const char *path = g.fx.path[KBS_INSTANCE_GENERATED];
    size_t granted = audit_count(instance, "granted");
    kbs_reply reply;
    kbs_release *release = NULL;

    /* The audit row cannot be written: 503, nothing handed out. */
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, path, NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_non_null(release);
    assert_int_equal(reply.status, 0);
    assert_null(reply.text);
    assert_null(reply.body);
    assert_false(kbs_release_writes_store(release));
    const store_audit_event *row = kbs_release_audit_row(release);
    assert_string_equal(row->action, "key_release");
    assert_string_equal(row->outcome, "granted");
    assert_string_equal(row->instance_id, instance);
    assert_string_equal(row->actor, s.id);
    assert_int_equal(audit_count(instance, "granted"), granted); /* not written by begin */
    assert_int_equal(kbs_service_resource_end(svc, release, VTPMCA_ERR_STORE, &reply), VTPMCA_OK);
    assert_int_equal(reply.retry_after_s, 1);
    expect_error(&reply, 503, "unavailable");
    assert_int_equal(kbs_service_count(svc, "resource", "internal"), 1);
    assert_int_equal(kbs_service_count(svc, "resource", "granted"), 0);

    /* Written: the JWE of the instance's key. */
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, path, NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_int_equal(store_audit_append(g.store, kbs_release_audit_row(release), NULL), VTPMCA_OK);
    assert_int_equal(kbs_service_resource_end(svc, release, VTPMCA_OK, &reply), VTPMCA_OK);
    uint8_t expected[KEYVAULT_KEY_MAX], got[JWE_MAX_SECRET];
    size_t expected_len = 0;
    assert_int_equal(
        kbs_fixture_instance_key(&g.fx, KBS_INSTANCE_GENERATED, expected, &expected_len, NULL),
        VTPMCA_OK);
    assert_int_equal(open_jwe(&reply, &s, g.p521, got), expected_len);
    assert_memory_equal(got, expected, expected_len);
    assert_int_equal(audit_count(instance, "granted"), granted + 1);

    /* A refusal is a release too: its row must be written before the answer. */
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_DISABLED],
                                                NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_non_null(release);
    assert_string_equal(kbs_release_audit_row(release)->outcome, "disabled");
    assert_int_equal(kbs_service_resource_end(svc, release, VTPMCA_OK, &reply), VTPMCA_OK);
    expect_error(&reply, 403, "disabled");

    /* Wrapped-key mode: ending it writes to the store (the ledger keeps the key). */
    char *blob = NULL;
    vt_b64_encode_alloc(g.fx.wrapped_blob, g.fx.wrapped_blob_len, VT_B64_URL_NOPAD, &blob);
    char body[512];
    snprintf(body, sizeof(body), "{\"wrapped-key\":\"%s\"}", blob);
    free(blob);
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, g.fx.path[KBS_INSTANCE_WRAPPED],
                                                (const uint8_t *)body, strlen(body), &reply,
                                                &release),
                     VTPMCA_OK);
    assert_true(kbs_release_writes_store(release));
    assert_int_equal(kbs_service_resource_end(svc, release, VTPMCA_OK, &reply), VTPMCA_OK);
    assert_int_equal(open_jwe(&reply, &s, g.p521, got), sizeof(g.fx.wrapped_key));
    assert_memory_equal(got, g.fx.wrapped_key, sizeof(g.fx.wrapped_key));

    /* No decision to make: answered at once, no release. */
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, "a/b", NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_null(release);
    expect_error(&reply, 400, "bad_request");
    assert_int_equal(kbs_service_resource_begin(svc, NULL, NULL, path, NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_null(release);
    expect_error(&reply, 401, "no_session");

    /* Bad arguments; end frees the release even then (ASan checks). */
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, path, NULL, 0, &reply, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_service_resource_begin(NULL, s.id, NULL, path, NULL, 0, &reply, &release),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(release);
    assert_int_equal(kbs_service_resource_begin(svc, s.id, NULL, path, NULL, 0, &reply, &release),
                     VTPMCA_OK);
    assert_int_equal(kbs_service_resource_end(NULL, release, VTPMCA_OK, &reply),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_service_resource_end(svc, NULL, VTPMCA_OK, &reply),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(kbs_release_audit_row(NULL));
    assert_false(kbs_release_writes_store(NULL));
    kbs_service_free(svc);
}

static void test_service_arguments(void **state)
{
    (void)state;
    kbs_service_config config = {.verifier = g.verifier, .kbs_key = g.kbs_key};
    kbs_service *svc = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_service_new(&config, &svc, &diag), VTPMCA_ERR_INVALID_ARG);
    config.token_key = g.rsa;
    assert_int_equal(kbs_service_new(&config, &svc, &diag), VTPMCA_ERR_UNSUPPORTED);
    config.token_key = g.p521;
    assert_int_equal(kbs_service_new(&config, &svc, &diag), VTPMCA_ERR_UNSUPPORTED);
    config.token_key = g.token_key;
    config.sessions.capacity = KBS_SESSION_MAX_CAPACITY + 1;
    assert_int_equal(kbs_service_new(&config, &svc, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(svc);
    kbs_reply reply;
    svc = new_service();
    assert_int_equal(kbs_service_attest(svc, NULL, NULL, 5, &reply), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_service_resource(svc, NULL, NULL, "a/b/c", NULL, 0, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(kbs_service_metrics_render(NULL, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    kbs_service_free(svc);
    kbs_service_free(NULL);
    kbs_reply_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_auth_table_full),
        cmocka_unit_test(test_boot_svsm_p521),
        cmocka_unit_test(test_boot_trustee_every_key_type),
        cmocka_unit_test(test_evidence_shapes),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_replays_refused),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_attest_bad_input),
        cmocka_unit_test(test_attest_evidence_invalid),
        cmocka_unit_test(test_resource_outcomes),
        cmocka_unit_test(test_resource_in_two_halves),
        cmocka_unit_test(test_service_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
