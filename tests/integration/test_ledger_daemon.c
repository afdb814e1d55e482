/* End-to-end tests of the rollback ledger protocol against the real daemon: vtpmcad runs on
 * 127.0.0.1 over the KBS fixture's database (test root, fleets, enrolled instances, master
 * key), and the tests talk HTTP to it with the ledger client, with raw libcurl requests, with
 * the KBS client and with svsm-sim as a subprocess.
 * What is checked: advance / duplicate / fork / rollback / query in JSON and in CBOR, every
 * answer's MAC verified under the ledger key derived here from the vault's copy of the
 * persistence key; the error matrix (415, 400, 401, 404, 405, stale nonce 409) changes
 * nothing; statements verify with the daemon's KBS public key (also with the openssl CLI);
 * a wrapped-key mode instance can use the ledger once its key was released over the KBS;
 * refusals are audited and counted in /metrics; svsm-sim boots with the ledger, and a
 * rollback attempt (an older copy of vtpm.state restored) and a deleted state are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/kbs_fixture.h"
#include "../support/http_capture.h"
#include "../support/vtpmcad_runner.h"
#include "../support/svsm_sim_runner.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/kbs_client.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger_client.h"
#include "vtpmca/ledger_protocol.h"
#include "vtpmca/snp_vcek.h"
#include "vtpmca/store.h"
#include "vtpmca/svsm_state.h"

#define SIM_INSTANCE "sim-vm"

static struct {
    kbs_fixture fx;
    vtpmcad_proc d;
    char state_dir[128];
    char platform[128];
    char sim_state[128];
    char measurement[97];
    char sim_path[STORE_RESOURCE_PATH_MAX + 1];
    uint8_t sim_pk[KEYVAULT_KEY_MAX];
    size_t sim_pk_len;
    EVP_PKEY *kbs_key; /* the daemon's, private half included (read from its state dir) */
} g;

/* ---- helpers ---- */

static void counter_n(uint8_t out[16], uint8_t hi, uint8_t n)
{
    memset(out, 0, 16);
    out[0] = hi;
    out[15] = n;
}

static ledger_client *client_for(kbs_fixture_instance which, ledger_format format)
{
    uint8_t pk[KEYVAULT_KEY_MAX];
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    if (kbs_fixture_instance_key(&g.fx, which, pk, &len, &diag) != VTPMCA_OK)
        fail_msg("instance key: %s", diag.msg);
    ledger_client *c = NULL;
    if (ledger_client_new(g.d.url, g.fx.instance_id[which], pk, len, format, 10000, &c, &diag) !=
        VTPMCA_OK)
        fail_msg("ledger client: %s", diag.msg);
    return c;
}

static void expect_advance(ledger_client *c, const uint8_t counter[16], const char *root,
                           vtpmca_err want, const char *result)
{
    ledger_msg answer;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        ledger_client_advance(c, counter, (const uint8_t *)root, strlen(root), &answer, &diag);
    if (err != want || strcmp(answer.result, result) != 0)
        fail_msg("advance: expected %s %s, got %s %s (%s)", vtpmca_err_name(want), result,
                 vtpmca_err_name(err), answer.result, diag.msg);
}

static void expect_latest(ledger_client *c, const uint8_t counter[16], const char *root)
{
    ledger_msg answer;
    vtpmca_diag diag = {{0}};
    if (ledger_client_query(c, &answer, &diag) != VTPMCA_OK)
        fail_msg("query: %s", diag.msg);
    assert_string_equal(answer.result, "found");
    assert_memory_equal(answer.counter, counter, 16);
    assert_int_equal(answer.root_len, strlen(root));
    assert_memory_equal(answer.root, root, answer.root_len);
}

typedef struct {
    long status;
    char type[64];
    char *body;
    size_t len;
} http_answer;

static size_t collect(char *data, size_t size, size_t n, void *user)
{
    http_answer *a = user;
    return http_capture_append(&a->body, &a->len, data, size * n);
}

/* One raw request (body NULL: GET). */
static http_answer http(const char *method, const char *path, const char *content_type,
                        const void *body, size_t len)
{
    http_answer a = {0};
    CURL *curl = curl_easy_init();
    char url[256], header[128];
    snprintf(url, sizeof(url), "%s%s", g.d.url, path);
    snprintf(header, sizeof(header), "Content-Type: %s", content_type);
    struct curl_slist *headers = curl_slist_append(NULL, header);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a.status);
    const char *type = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(a.type, sizeof(a.type), "%s", type != NULL ? type : "");
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return a;
}

/* A JSON error answer with this status and code. */
static void expect_json_error(http_answer *a, long status, const char *code)
{
    if (a->status != status)
        fail_msg("expected HTTP %ld %s, got %ld: %s", status, code, a->status,
                 a->body != NULL ? a->body : "");
    assert_string_equal(a->type, "application/json");
    json_t *doc = json_loads(a->body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "error")), code);
    assert_non_null(json_string_value(json_object_get(doc, "message")));
    assert_null(json_object_get(doc, "mac"));
    json_decref(doc);
    free(a->body);
}

/* A signed advance body of an instance with a fresh nonce. */
static uint8_t *advance_body(kbs_fixture_instance which, const uint8_t key[LEDGER_KEY_LEN],
                             ledger_format format, const uint8_t counter[16], size_t *len)
{
    ledger_msg req;
    memset(&req, 0, sizeof(req));
    snprintf(req.instance, sizeof(req.instance), "%s", g.fx.instance_id[which]);
    memcpy(req.counter, counter, 16);
    req.root_len = 8;
    memcpy(req.root, "raw-root", 8);
    req.nonce_len = 32;
    assert_int_equal(RAND_bytes(req.nonce, 32), 1);
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_ADVANCE_REQUEST, &req, key, NULL), VTPMCA_OK);
    uint8_t *body = NULL;
    assert_int_equal(ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, format, &req, &body, len, NULL),
                     VTPMCA_OK);
    return body;
}

/* ---- fixture ---- */

static int prepare_database(void)
{
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    keyvault *vault = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    snp_vcek *vcek = NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s/vcek.der", g.platform);
    vtpmca_err err = store_open(g.fx.db_path, &st, &diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(g.fx.master_key, false, &vault, &diag);
    /* The simulated platform's VCEK, as `vtpmca snp import-vcek` stores it. */
    if (err == VTPMCA_OK)
        err = vt_file_read(path, 65536, &der, &der_len, &diag);
    if (err == VTPMCA_OK)
        err = snp_vcek_parse(der, der_len, &vcek, &diag);
    if (err == VTPMCA_OK) {
        const snp_vcek_info *info = snp_vcek_get_info(vcek);
        err = store_vcek_put(st, "Milan", "vcek", info->hwid, info->tcb_raw, der, der_len, "import",
                             &diag);
    }
    enroll_result res;
    enroll_request req = {.instance_id = SIM_INSTANCE,
                          .fleet = "fleet-a",
                          .mode = STORE_KEY_GENERATED,
                          .actor = "test"};
    if (err == VTPMCA_OK)
        err = enrollment_enroll(st, vault, &req, &res, &diag);
    store_instance inst;
    memset(&inst, 0, sizeof(inst));
    char context[ENROLLMENT_CONTEXT_MAX];
    if (err == VTPMCA_OK)
        err = store_instance_get(st, SIM_INSTANCE, &inst, &diag);
    if (err == VTPMCA_OK)
        err = enrollment_key_context(STORE_KEY_GENERATED, SIM_INSTANCE, context, &diag);
    if (err == VTPMCA_OK)
        err = keyvault_unwrap(vault, inst.wrapped_key, inst.wrapped_key_len, context, g.sim_pk,
                              sizeof(g.sim_pk), &g.sim_pk_len, &diag);
    snprintf(g.sim_path, sizeof(g.sim_path), "%s", res.resource_path);
    store_instance_free_fields(&inst);
    snp_vcek_free(vcek);
    free(der);
    keyvault_free(vault);
    store_close(st);
    if (err != VTPMCA_OK)
        fprintf(stderr, "prepare: %s\n", diag.msg);
    return err == VTPMCA_OK ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof(g));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    vtpmca_diag diag = {{0}};
    if (kbs_fixture_create(&g.fx, &diag) != VTPMCA_OK) {
        fprintf(stderr, "fixture: %s\n", diag.msg);
        return -1;
    }
    snprintf(g.state_dir, sizeof(g.state_dir), "%s/state", g.fx.dir);
    snprintf(g.platform, sizeof(g.platform), "%s/platform", g.fx.dir);
    snprintf(g.sim_state, sizeof(g.sim_state), "%s/sim-vm", g.fx.dir);
    for (int i = 0; i < 48; i++)
        snprintf(g.measurement + 2 * i, 3, "%02x", KBS_FIXTURE_MEASUREMENT);
    if (svsm_sim_platform_init(g.platform, g.fx.roots_dir, NULL) != 0 || prepare_database() != 0)
        return -1;
    const char *extra[] = {"--extra-roots-dir", g.fx.roots_dir, "--threads", "4", NULL};
    if (vtpmcad_start(&g.d, g.fx.dir, "vtpmcad", g.state_dir, extra, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/kbs-key.pem", g.state_dir);
    if (kbs_key_load(path, &g.kbs_key, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int code = vtpmcad_stop(&g.d);
    EVP_PKEY_free(g.kbs_key);
    kbs_fixture_destroy(&g.fx);
    curl_global_cleanup();
    return code == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void matrix(kbs_fixture_instance which, ledger_format format)
{
    ledger_client *c = client_for(which, format);
    ledger_msg answer;
    vtpmca_diag diag = {{0}};
    /* A fresh instance: a MACed "none", not an unauthenticated 404. */
    assert_int_equal(ledger_client_query(c, &answer, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_string_equal(answer.result, "none");
    assert_int_equal(ledger_client_last_status(c), 404);
    uint8_t c1[16], c2[16], before[16];
    counter_n(c1, 0x80, 1);
    counter_n(c2, 0x80, 2);
    counter_n(before, 0x7f, 0xff);
    expect_advance(c, c1, "root-one", VTPMCA_OK, "accepted");
    expect_advance(c, c1, "root-one", VTPMCA_OK, "duplicate");
    expect_advance(c, c2, "root-two", VTPMCA_OK, "accepted");
    expect_advance(c, c2, "root-fork", VTPMCA_ERR_CONFLICT, "fork");
    assert_int_equal(ledger_client_last_status(c), 409);
    expect_advance(c, c1, "root-one", VTPMCA_ERR_CONFLICT, "rollback");
    expect_advance(c, before, "root-zero", VTPMCA_ERR_CONFLICT, "rollback");
    expect_latest(c, c2, "root-two");
    ledger_client_free(c);
}

static void test_json_matrix(void **state)
{
    (void)state;
    matrix(KBS_INSTANCE_GENERATED, LEDGER_FORMAT_JSON);
}

static void test_cbor_matrix(void **state)
{
    (void)state;
    matrix(KBS_INSTANCE_HOST_DATA, LEDGER_FORMAT_CBOR);
}

static void test_http_errors_change_nothing(void **state)
{
    (void)state;
    uint8_t pk[KEYVAULT_KEY_MAX], key[LEDGER_KEY_LEN];
    size_t pk_len = 0;
    assert_int_equal(kbs_fixture_instance_key(&g.fx, KBS_INSTANCE_GENERATED, pk, &pk_len, NULL),
                     VTPMCA_OK);
    assert_int_equal(
        ledger_key_derive(pk, pk_len, g.fx.instance_id[KBS_INSTANCE_GENERATED], key, NULL),
        VTPMCA_OK);
    uint8_t c3[16];
    counter_n(c3, 0x80, 3);
    size_t len = 0;
    uint8_t *body = advance_body(KBS_INSTANCE_GENERATED, key, LEDGER_FORMAT_JSON, c3, &len);

    http_answer a = http("POST", "/v1/ledger/advance", "text/plain", body, len);
    expect_json_error(&a, 415, "unsupported_media_type");
    a = http("GET", "/v1/ledger/advance", "application/json", NULL, 0);
    expect_json_error(&a, 405, "method_not_allowed");
    a = http("POST", "/v1/ledger/advance", "application/json", "{\"instance\":", 12);
    expect_json_error(&a, 400, "bad_request");
    /* A CBOR request's errors are JSON too. */
    a = http("POST", "/v1/ledger/query", "application/cbor", "\xa1\x61", 2);
    expect_json_error(&a, 400, "bad_request");
    /* The right shape under another key: 401; for nobody: 404. */
    uint8_t wrong[LEDGER_KEY_LEN];
    memset(wrong, 0x42, sizeof(wrong));
    size_t wrong_len = 0;
    uint8_t *forged =
        advance_body(KBS_INSTANCE_GENERATED, wrong, LEDGER_FORMAT_CBOR, c3, &wrong_len);
    a = http("POST", "/v1/ledger/advance", "application/cbor", forged, wrong_len);
    expect_json_error(&a, 401, "bad_mac");
    free(forged);
    ledger_msg req;
    memset(&req, 0, sizeof(req));
    snprintf(req.instance, sizeof(req.instance), "nobody");
    req.nonce_len = 16;
    assert_int_equal(ledger_msg_sign(LEDGER_MSG_QUERY_REQUEST, &req, key, NULL), VTPMCA_OK);
    uint8_t *q = NULL;
    size_t q_len = 0;
    assert_int_equal(
        ledger_msg_encode(LEDGER_MSG_QUERY_REQUEST, LEDGER_FORMAT_JSON, &req, &q, &q_len, NULL),
        VTPMCA_OK);
    a = http("POST", "/v1/ledger/query", "application/json", q, q_len);
    expect_json_error(&a, 404, "unknown_instance");
    free(q);
    /* None of that moved the ledger. */
    ledger_client *c = client_for(KBS_INSTANCE_GENERATED, LEDGER_FORMAT_JSON);
    uint8_t c2[16];
    counter_n(c2, 0x80, 2);
    expect_latest(c, c2, "root-two");

    /* The genuine request: accepted (a MACed CBOR or JSON answer); its replay: stale. */
    a = http("POST", "/v1/ledger/advance", "application/json; charset=utf-8", body, len);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.type, "application/json");
    assert_non_null(strstr(a.body, "\"result\":\"accepted\""));
    free(a.body);
    a = http("POST", "/v1/ledger/advance", "application/json", body, len);
    expect_json_error(&a, 409, "stale_nonce");
    expect_latest(c, c3, "raw-root");
    free(body);
    ledger_client_free(c);
}

/* Verifies a JWS ES384 with the openssl CLI: r || s converted to DER, the public key as PEM. */
static void openssl_cli_verifies(const char *jwt, const EVP_PKEY *key)
{
    const char *last = strrchr(jwt, '.');
    assert_non_null(last);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    assert_int_equal(
        vt_b64_decode_alloc(last + 1, strlen(last + 1), VT_B64_URL_NOPAD, &sig, &sig_len),
        VTPMCA_OK);
    assert_int_equal(sig_len, 96);
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 48, NULL), BN_bin2bn(sig + 48, 48, NULL)),
                     1);
    uint8_t *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    assert_true(der_len > 0);
    ECDSA_SIG_free(es);
    free(sig);
    char dir[160], data[192], sig_path[192], pub[192], cmd[800];
    snprintf(dir, sizeof(dir), "%s/statement", g.fx.dir);
    assert_int_equal(vt_mkdir_p(dir, 0700, NULL), VTPMCA_OK);
    snprintf(data, sizeof(data), "%s/signed.txt", dir);
    snprintf(sig_path, sizeof(sig_path), "%s/sig.der", dir);
    snprintf(pub, sizeof(pub), "%s/kbs.pub.pem", dir);
    assert_int_equal(vt_file_write_atomic(data, jwt, (size_t)(last - jwt), 0600, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(sig_path, der, (size_t)der_len, 0600, NULL), VTPMCA_OK);
    OPENSSL_free(der);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, (EVP_PKEY *)key), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(vt_file_write_atomic(pub, pem, (size_t)pem_len, 0600, NULL), VTPMCA_OK);
    BIO_free(bio);
    snprintf(cmd, sizeof(cmd),
             "openssl dgst -sha384 -verify '%s' -signature '%s' '%s' >/dev/null 2>&1", pub,
             sig_path, data);
    assert_int_equal(system(cmd), 0);
}

static void test_statement_verifies_with_kbs_key(void **state)
{
    (void)state;
    /* Only the public half is used (what a third party holds). */
    uint8_t *spki = NULL;
    int spki_len = i2d_PUBKEY(g.kbs_key, &spki);
    const uint8_t *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, spki_len);
    OPENSSL_free(spki);
    ear_token_key vk;
    assert_int_equal(ear_token_key_init(&vk, pub, NULL), VTPMCA_OK);
    for (int f = 0; f < 2; f++) {
        ledger_client *c =
            client_for(KBS_INSTANCE_GENERATED, f == 0 ? LEDGER_FORMAT_JSON : LEDGER_FORMAT_CBOR);
        uint8_t nonce[24];
        assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
        char *jwt = NULL;
        vtpmca_diag diag = {{0}};
        if (ledger_client_statement(c, nonce, sizeof(nonce), &jwt, &diag) != VTPMCA_OK)
            fail_msg("statement: %s", diag.msg);
        json_t *claims = NULL;
        if (ear_token_verify(&vk, jwt, strlen(jwt), time(NULL), &claims, &diag) != VTPMCA_OK)
            fail_msg("statement does not verify: %s", diag.msg);
        char *nonce_b64 = NULL;
        assert_int_equal(vt_b64_encode_alloc(nonce, sizeof(nonce), VT_B64_STD, &nonce_b64),
                         VTPMCA_OK);
        assert_string_equal(json_string_value(json_object_get(claims, "nonce")), nonce_b64);
        assert_string_equal(json_string_value(json_object_get(claims, "counter")),
                            "80000000000000000000000000000003");
        assert_string_equal(json_string_value(json_object_get(claims, "instance")),
                            g.fx.instance_id[KBS_INSTANCE_GENERATED]);
        free(nonce_b64);
        json_decref(claims);
        openssl_cli_verifies(jwt, pub);
        free(jwt);
        ledger_client_free(c);
    }
    /* An instance without a record has no statement. */
    ledger_client *c = client_for(KBS_INSTANCE_DISABLED, LEDGER_FORMAT_JSON);
    uint8_t nonce[16] = {0};
    char *jwt = NULL;
    assert_int_equal(ledger_client_statement(c, nonce, sizeof(nonce), &jwt, NULL),
                     VTPMCA_ERR_NOT_FOUND);
    assert_null(jwt);
    ledger_client_free(c);
    ear_token_key_clear(&vk);
    EVP_PKEY_free(pub);
}

static void test_disabled_instance_refused(void **state)
{
    (void)state;
    ledger_client *c = client_for(KBS_INSTANCE_DISABLED, LEDGER_FORMAT_CBOR);
    uint8_t c1[16];
    counter_n(c1, 1, 1);
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_client_advance(c, c1, (const uint8_t *)"r", 1, NULL, &diag),
                     VTPMCA_ERR_POLICY);
    assert_int_equal(ledger_client_last_status(c), 403);
    assert_non_null(strstr(diag.msg, "disabled"));
    ledger_client_free(c);
}

/* KBS auth + attest + resource POST with the wrapped-key blob. */
static void release_wrapped_key(void)
{
    kbs_client *kc = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(kbs_client_new(g.d.url, 10000, &kc, &diag), VTPMCA_OK);
    if (kbs_client_auth(kc, &diag) != VTPMCA_OK)
        fail_msg("auth: %s", diag.msg);
    EVP_PKEY *tee = EVP_EC_gen("P-384");
    json_t *evidence = kbs_fixture_evidence(&g.fx, REPORT_DATA_FLAVOUR_TRUSTEE, tee,
                                            kbs_client_nonce_b64(kc), KBS_FIXTURE_MEASUREMENT);
    assert_non_null(evidence);
    char *token = NULL;
    if (kbs_client_attest(kc, evidence, &token, &diag) != VTPMCA_OK)
        fail_msg("attest: %s", diag.msg);
    json_t *jwe = NULL;
    if (kbs_client_resource(kc, g.fx.path[KBS_INSTANCE_WRAPPED], g.fx.wrapped_blob,
                            g.fx.wrapped_blob_len, &jwe, &diag) != VTPMCA_OK)
        fail_msg("resource: %s", diag.msg);
    json_decref(jwe);
    free(token);
    json_decref(evidence);
    EVP_PKEY_free(tee);
    kbs_client_free(kc);
}

static void test_wrapped_mode_after_release(void **state)
{
    (void)state;
    ledger_client *c = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_client_new(g.d.url, g.fx.instance_id[KBS_INSTANCE_WRAPPED],
                                       g.fx.wrapped_key, sizeof(g.fx.wrapped_key),
                                       LEDGER_FORMAT_JSON, 10000, &c, &diag),
                     VTPMCA_OK);
    uint8_t c1[16];
    counter_n(c1, 0x10, 1);
    /* Before its key was ever released the service cannot check this instance's MACs. */
    assert_int_equal(ledger_client_advance(c, c1, (const uint8_t *)"w", 1, NULL, &diag),
                     VTPMCA_ERR_POLICY);
    assert_int_equal(ledger_client_last_status(c), 403);
    assert_non_null(strstr(diag.msg, "no_ledger_key"));
    release_wrapped_key();
    expect_advance(c, c1, "w", VTPMCA_OK, "accepted");
    expect_latest(c, c1, "w");
    ledger_client_free(c);
}

static void test_metrics_and_audit(void **state)
{
    (void)state;
    http_answer a = http("GET", "/metrics", "text/plain", NULL, 0);
    assert_int_equal(a.status, 200);
    /* Two instances each refused one fork and two rollbacks. */
    assert_non_null(strstr(a.body, "vtpmca_ledger_advances_total{result=\"fork\"} 2\n"));
    assert_non_null(strstr(a.body, "vtpmca_ledger_advances_total{result=\"rollback\"} 4\n"));
    assert_non_null(
        strstr(a.body, "vtpmca_ledger_requests_total{op=\"advance\",outcome=\"stale_nonce\"} 1\n"));
    assert_non_null(
        strstr(a.body, "vtpmca_ledger_requests_total{op=\"advance\",outcome=\"bad_mac\"} 1\n"));
    assert_non_null(strstr(a.body, "vtpmca_ledger_commits_total "));
    assert_non_null(strstr(a.body, "route=\"/v1/ledger/advance\""));
    free(a.body);
    store *st = NULL;
    assert_int_equal(store_open(g.fx.db_path, &st, NULL), VTPMCA_OK);
    store_audit_filter filter = {.action = "ledger_refused",
                                 .instance_id = g.fx.instance_id[KBS_INSTANCE_GENERATED],
                                 .limit = 100};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 3);
    assert_string_equal(events[0].outcome, "fork");
    assert_string_equal(events[1].outcome, "rollback");
    assert_string_equal(events[2].outcome, "rollback");
    free(events);
    store_close(st);
}

/* ---- svsm-sim ---- */

static svsm_sim_run boot(const char *const *extra)
{
    const char *more[16] = {"--instance", SIM_INSTANCE, NULL};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(n < 15);
        more[n++] = extra[i];
    }
    more[n] = NULL;
    svsm_sim_boot_opts opts = {g.d.url, g.platform, g.sim_state, g.sim_path, g.measurement};
    return svsm_sim_boot(&opts, more);
}

static void expect_refused_at_ledger(svsm_sim_run *r, const char *reason)
{
    if (r->code != 1 || strstr(r->out, "boot REFUSED at ledger") == NULL ||
        strstr(r->err, reason) == NULL)
        fail_msg("expected a ledger refusal (%s), got %d\nstdout:\n%s\nstderr:\n%s", reason,
                 r->code, r->out, r->err);
}

static void state_file(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g.sim_state, name);
}

/* The counter of the state file (decrypted with the key derived from the vault's copy). */
static void state_counter(uint8_t counter[16])
{
    uint8_t key[SVSM_STATE_KEY_LEN];
    assert_int_equal(svsm_state_derive_key(g.sim_pk, g.sim_pk_len, key, NULL), VTPMCA_OK);
    char path[256];
    state_file(path, sizeof(path), "vtpm.state");
    svsm_state_content content;
    svsm_state_version version;
    assert_int_equal(svsm_state_read(path, key, &content, &version, NULL), VTPMCA_OK);
    svsm_state_content_clear(&content);
    memcpy(counter, version.counter, 16);
}

static void copy_file(const char *from, const char *to)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(from, 1 << 24, &data, &len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(to, data, len, 0600, NULL), VTPMCA_OK);
    free(data);
}

static void test_svsm_sim_rollback_refused(void **state)
{
    (void)state;
    char live[256], saved[256], marker[256];
    state_file(live, sizeof(live), "vtpm.state");
    snprintf(saved, sizeof(saved), "%s/vtpm.state.boot1", g.fx.dir);
    state_file(marker, sizeof(marker), "ledger-instance");

    svsm_sim_run r = boot(NULL);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "no record of instance " SIM_INSTANCE));
    assert_non_null(strstr(r.out, "-> accepted (durable, MAC verified)"));
    assert_non_null(strstr(r.out, "remembered in"));
    assert_int_equal(access(marker, F_OK), 0);
    svsm_sim_run_free(&r);
    copy_file(live, saved);

    r = boot(NULL);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "the state is the ledger's latest"));
    svsm_sim_run_free(&r);
    /* The ledger holds exactly the state file's counter. */
    uint8_t counter[16];
    state_counter(counter);
    ledger_client *c = NULL;
    assert_int_equal(ledger_client_new(g.d.url, SIM_INSTANCE, g.sim_pk, g.sim_pk_len,
                                       LEDGER_FORMAT_CBOR, 10000, &c, NULL),
                     VTPMCA_OK);
    ledger_msg answer;
    assert_int_equal(ledger_client_query(c, &answer, NULL), VTPMCA_OK);
    assert_memory_equal(answer.counter, counter, 16);

    /* The host restores the copy from after the first boot: caught, nothing written. */
    char current[256];
    snprintf(current, sizeof(current), "%s/vtpm.state.boot2", g.fx.dir);
    copy_file(live, current);
    copy_file(saved, live);
    r = boot(NULL);
    expect_refused_at_ledger(&r, "rollback");
    svsm_sim_run_free(&r);
    uint8_t *now = NULL, *old = NULL;
    size_t now_len = 0, old_len = 0;
    assert_int_equal(vt_file_read(live, 1 << 24, &now, &now_len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_read(saved, 1 << 24, &old, &old_len, NULL), VTPMCA_OK);
    assert_int_equal(now_len, old_len);
    assert_memory_equal(now, old, now_len);
    free(now);
    free(old);

    /* Without any state file the instance refuses to start over. */
    assert_int_equal(unlink(live), 0);
    r = boot(NULL);
    expect_refused_at_ledger(&r, "no ");
    svsm_sim_run_free(&r);
    assert_int_not_equal(access(live, F_OK), 0);

    /* The genuine latest state boots again and advances the ledger. */
    copy_file(current, live);
    r = boot(NULL);
    svsm_sim_expect_boot_ok(&r);
    svsm_sim_run_free(&r);
    uint8_t after[16];
    state_counter(after);
    ledger_counter_increment(counter);
    assert_memory_equal(after, counter, 16);
    assert_int_equal(ledger_client_query(c, &answer, NULL), VTPMCA_OK);
    assert_memory_equal(answer.counter, after, 16);
    ledger_client_free(c);

    /* The state dir remembers the instance: another id is refused. */
    const char *other[] = {"--instance", "another", NULL};
    svsm_sim_boot_opts opts = {g.d.url, g.platform, g.sim_state, g.sim_path, g.measurement};
    r = svsm_sim_boot(&opts, other);
    expect_refused_at_ledger(&r, "differs from instance " SIM_INSTANCE);
    svsm_sim_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_matrix),
        cmocka_unit_test(test_cbor_matrix),
        cmocka_unit_test(test_http_errors_change_nothing),
        cmocka_unit_test(test_statement_verifies_with_kbs_key),
        cmocka_unit_test(test_disabled_instance_refused),
        cmocka_unit_test(test_wrapped_mode_after_release),
        cmocka_unit_test(test_metrics_and_audit),
        cmocka_unit_test(test_svsm_sim_rollback_refused),
    };
    return cmocka_run_group_tests_name("ledger daemon", tests, group_setup, group_teardown);
}
