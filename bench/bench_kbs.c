/* Benchmark: full KBS boots (auth, attest, resource) against a real vtpmcad on loopback, many
 * concurrent aproxy-like clients (libcurl with a cookie store, keep-alive), beside the floor
 * of the server-side crypto of one boot measured in the same run on the same cores:
 *   P-384 ECDSA verify of the report (VCEK) + P-521 ECDH key generation and derivation (the
 *   JWE's ephemeral key) + P-384 ECDSA sign (the KBS binding).
 * The ECDH skips OpenSSL's full check of the peer key in derive (EVP_PKEY_derive_set_peer_ex
 * with 0), as the daemon does: it checks the tee key's point when it imports it (on the curve),
 * and P-521 has cofactor 1, so the full check's extra scalar multiplication proves nothing.
 * Goals: boots/s >= 80% of that floor; p99 latency < 20 ms at half that load.
 *
 * Client and server share the machine's cores, so client CPU would be counted against the
 * server. The client's expensive step is the P-384 signature of each report (as costly as
 * the server's verification); its nonce-dependent part is cheap, so the k*G part of every
 * signature is computed by a pool BEFORE the timed phases (ECDSA_sign_setup) and each report
 * is then signed with ECDSA_do_sign_ex. A client keeps one tee key (the server still parses
 * and checks it every time). Its first boot is untimed and checked in full with the real
 * client library (libcurl, kbs_client, JWE decryption and KBS binding verification); the
 * timed boots are a lean load generator (bench_http.h: one keep-alive connection, the
 * tee-pubkey JWK text built once, the attest body printed into a per-client buffer) that
 * checks the statuses and the shape of the answer only. What remains on the client per boot
 * is HTTP on a kept-alive socket, the auth answer's JSON, REPORT_DATA and two hashes.
 *
 * Other load on the machine slows load and floor alike only if it hits both: the full-load
 * phase runs in short windows that alternate with floor rounds. CPU times are also printed
 * (the daemon's from /proc, the floor threads' own): they do not depend on other load and
 * say how close the server is to the crypto, and what client and server together allow.
 *
 * The token is signed with ES256 by default here (--token-alg ES384 for the daemon's own
 * default): the floor does not include the token, and an ES384 signature would add a fourth
 * P-384 operation to each boot.
 *
 * Usage: bench_kbs [--clients N] [--seconds S] [--server-threads N] [--token-alg ES256|ES384]
 *                  [--vtpmcad PATH] [--keep]
 * The daemon runs with the TEST root made here (never AMD's keys) and --log-level warn. */
#define OPENSSL_SUPPRESS_DEPRECATED /* EVP_PKEY_get1_EC_KEY: the signing pool's key */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/bench_http.h"
#include "vtpmca/bench_util.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/kbs_client.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/log.h"
#include "vtpmca/report_data.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/store.h"

#define GOAL_RATIO 0.80
#define GOAL_P99_MS 20.0
/* The floor runs in rounds between the load windows (ROUNDS windows share --seconds). */
#define FLOOR_ROUND_S 0.5
#define ROUNDS 4
#define MEASUREMENT_BYTE 0x11
/* Report layout (SEV-SNP ABI): REPORT_DATA at 0x50; signature r, s little-endian, 72 bytes
 * each, right after the signed part. */

typedef struct {
    unsigned clients;
    double seconds; /* per load phase */
    unsigned server_threads;
    const char *token_alg;
    char vtpmcad[1024];
    bool keep;
} bench_options;

static struct {
    char dir[64];
    char roots[128], state[128], port_file[160], log[160];
    pid_t pid;
    unsigned port;
    char base_url[64];
    snp_report template; /* a Milan v3 report for the VCEK's chip and TCB */
    EVP_PKEY *vcek_key;
    EC_KEY *vcek_ec;
    char resource_path[STORE_RESOURCE_PATH_MAX + 1];
    vt_bench_sign_pool pool;
} env;

static void sleep_until(double t)
{
    double left = t - vt_bench_now_s();
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
    nanosleep(&ts, NULL);
}

static void die(const char *what, const vtpmca_diag *diag)
{
    fprintf(stderr, "bench_kbs: %s%s%s\n", what, diag != NULL ? ": " : "",
            diag != NULL ? diag->msg : "");
    if (env.pid > 0)
        kill(env.pid, SIGKILL);
    exit(1);
}

/* ---- setup: test root, VCEK, store with an enrolled instance, the daemon ---- */

static void make_platform(void)
{
    vtpmca_diag diag = {{0}};
    vt_bench_platform platform;
    const char *step = NULL;
    if (vt_bench_platform_make(env.roots, MEASUREMENT_BYTE, &platform, &step, &diag) != VTPMCA_OK)
        die(step, &diag);
    env.template = platform.template;
    env.vcek_key = platform.vcek_key;
    platform.vcek_key = NULL; /* env's now */
    env.vcek_ec = EVP_PKEY_get1_EC_KEY(env.vcek_key);

    store *st = NULL;
    keyvault *vault = NULL;
    vtpmca_err err = vt_bench_store_make(env.state, &platform, "bench_kbs", &st, &vault, &diag);
    enroll_request req = {.instance_id = "bench-svsm",
                          .fleet = "bench",
                          .mode = STORE_KEY_GENERATED,
                          .actor = "bench_kbs"};
    enroll_result res;
    if (err == VTPMCA_OK)
        err = enrollment_enroll(st, vault, &req, &res, &diag);
    if (err != VTPMCA_OK)
        die("store", &diag);
    snprintf(env.resource_path, sizeof(env.resource_path), "%s", res.resource_path);
    keyvault_free(vault);
    store_close(st);
    vt_bench_platform_free(&platform);
}

static void start_daemon(const bench_options *opt)
{
    char threads[16];
    snprintf(threads, sizeof(threads), "%u", opt->server_threads);
    const char *argv[] = {opt->vtpmcad,
                          "--state-dir",
                          env.state,
                          "--port",
                          "0",
                          "--port-file",
                          env.port_file,
                          "--extra-roots-dir",
                          env.roots,
                          "--threads",
                          threads,
                          "--log-level",
                          "warn",
                          "--kbs-token-alg",
                          opt->token_alg,
                          "--kbs-session-capacity",
                          "65536",
                          NULL};
    vtpmca_diag diag = {{0}};
    unsigned port = 0;
    if (vt_bench_start_vtpmcad(argv, env.log, true, env.port_file, 20, &env.pid, &port, &diag) !=
        VTPMCA_OK)
        die(diag.msg, NULL);
    env.port = port;
    snprintf(env.base_url, sizeof(env.base_url), "http://127.0.0.1:%u", env.port);
}

static void stop_daemon(void)
{
    vt_bench_stop_vtpmcad(&env.pid);
}

/* ---- the crypto floor ---- */

typedef struct {
    vt_bench_floor_report report;
    EVP_PKEY *peer_p521, *kbs_key;
    uint8_t message[332]; /* a binding message for P-521 keys and a 32-byte nonce */
} floor_inputs;

/* The server-side crypto of one boot, exactly as OpenSSL does it for the daemon. */
static bool floor_op(const void *arg)
{
    const floor_inputs *in = arg;
    /* 1. the report's signature, as the verifier checks it */
    bool ok = vt_bench_floor_verify(&in->report);
    /* 2. the JWE's ephemeral P-521 key and the ECDH with the tee key */
    EVP_PKEY *epk = EVP_EC_gen("P-521");
    EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new_from_pkey(NULL, epk, NULL);
    uint8_t z[66];
    size_t z_len = sizeof(z);
    ok = ok && epk != NULL && dctx != NULL && EVP_PKEY_derive_init(dctx) == 1 &&
         EVP_PKEY_derive_set_peer_ex(dctx, in->peer_p521, 0) == 1 &&
         EVP_PKEY_derive(dctx, z, &z_len) == 1;
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(epk);
    /* 3. the binding signature */
    return ok && vt_bench_floor_sign(in->kbs_key, in->message, sizeof(in->message));
}

static void floor_prepare(floor_inputs *in)
{
    vtpmca_diag diag = {{0}};
    if (vt_bench_floor_report_make(&env.template, env.vcek_key, &in->report, &diag) != VTPMCA_OK)
        die("floor report", &diag);
    in->peer_p521 = EVP_EC_gen("P-521");
    RAND_bytes(in->message, sizeof(in->message));
    if (in->peer_p521 == NULL || kbs_key_generate(KBS_KEY_P384, &in->kbs_key, NULL) != VTPMCA_OK)
        die("floor keys", NULL);
}

static void floor_release(floor_inputs *in)
{
    vt_bench_floor_report_free(&in->report);
    EVP_PKEY_free(in->peer_p521);
    EVP_PKEY_free(in->kbs_key);
}

/* Runs the floor on `threads` threads for `seconds`; adds boots, wall and CPU time. */
static void floor_round(const floor_inputs *in, unsigned threads, double seconds,
                        vt_bench_floor_totals *totals)
{
    if (!vt_bench_floor_round(floor_op, in, threads, seconds, totals))
        die("floor crypto failed", NULL);
}

/* ---- the signing pool ---- */

static void make_pool(size_t n, unsigned threads)
{
    vtpmca_diag diag = {{0}};
    if (vt_bench_sign_pool_make(&env.pool, env.vcek_ec, n, threads, &diag) != VTPMCA_OK)
        die(diag.msg, NULL);
}

static void free_pool(void)
{
    vt_bench_sign_pool_free(&env.pool);
}

/* Signs a report with the next precomputed (k^-1, r); each pair is used once. */
static void sign_report(uint8_t report[SNP_REPORT_SIZE])
{
    if (vt_bench_sign_report(&env.pool, report) != VTPMCA_OK)
        die("report signature", NULL);
}

/* ---- clients ---- */

/* The clients stay connected for the whole run; the main thread switches them between
 * running and pausing, so load windows can alternate with floor rounds. */
enum { CTRL_PAUSE = 0, CTRL_RUN, CTRL_STOP };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int state;
    unsigned generation; /* bumped by every RUN */
    unsigned busy;       /* clients inside a boot */
    unsigned ready;      /* clients past their first (checked) boot */
    double interval_s;   /* per client, while RUN; 0 = as fast as possible */
} ctrl = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, CTRL_PAUSE, 0, 0, 0, 0};

/* The attest body's base64 report and the auth nonce, as text. */
#define REPORT_B64_LEN (4 * ((SNP_REPORT_SIZE + 2) / 3))
#define NONCE_B64_MAX (4 * ((KBS_CLIENT_NONCE_MAX + 2) / 3))
#define COOKIE_VALUE_MAX 128
#define AUTH_BODY "{\"version\":\"" KBS_PROTOCOL_VERSION "\",\"tee\":\"snp\",\"extra-params\":\"\"}"

typedef struct {
    EVP_PKEY *tee;
    json_t *tee_jwk;
    char *tee_jwk_text;                  /* compact, as kbs_client sends it */
    uint8_t tee_point[JWE_EC_POINT_MAX]; /* encoded once: REPORT_DATA hashes its X || Y */
    size_t tee_point_len;
    vt_bench_http *http;
    char resource_url[sizeof("/kbs/v0/resource/") + STORE_RESOURCE_PATH_MAX];
    char cookie[sizeof("Cookie: " KBS_COOKIE_NAME "=") + COOKIE_VALUE_MAX];
    char nonce_b64[NONCE_B64_MAX + 1];
    char *attest_body; /* printed per boot, sized once */
    size_t attest_cap;
    double *latency_ms; /* of the current window set */
    size_t n, cap;
    uint64_t failures;
    char error[256];
} client;

/* One boot with the real client library; returns false (with c->error) when a step failed.
 * check_answer: decrypt the JWE and verify its KBS binding. */
static bool boot_once(kbs_client *kc, client *c, bool check_answer)
{
    vtpmca_diag diag = {{0}};
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    uint8_t report[SNP_REPORT_SIZE];
    snp_report fields = env.template;
    json_t *body = NULL, *jwe = NULL;
    char *token = NULL;
    vtpmca_err err = kbs_client_auth(kc, &diag);
    if (err == VTPMCA_OK)
        err = kbs_client_nonce(kc, &nonce, &nonce_len);
    if (err == VTPMCA_OK)
        err = report_data_svsm(c->tee, nonce, nonce_len, fields.report_data, &diag);
    if (err == VTPMCA_OK)
        err = snp_report_encode(&fields, report);
    if (err == VTPMCA_OK) {
        sign_report(report);
        err = kbs_attest_request(kbs_client_nonce_b64(kc), c->tee_jwk, report, sizeof(report),
                                 &body, &diag);
    }
    if (err == VTPMCA_OK)
        err = kbs_client_attest(kc, body, &token, &diag);
    if (err == VTPMCA_OK)
        err = kbs_client_resource(kc, env.resource_path, NULL, 0, &jwe, &diag);
    if (err == VTPMCA_OK && check_answer) {
        uint8_t key[JWE_MAX_SECRET];
        size_t key_len = 0;
        err = jwe_decrypt(c->tee, jwe, key, sizeof(key), &key_len, &diag);
        OPENSSL_cleanse(key, sizeof(key));
        if (err == VTPMCA_OK)
            err = kbs_binding_verify_jwe(jwe, nonce, nonce_len, c->tee, NULL, NULL, &diag);
    }
    if (err != VTPMCA_OK)
        snprintf(c->error, sizeof(c->error), "%s", diag.msg[0] ? diag.msg : vtpmca_err_name(err));
    json_decref(body);
    json_decref(jwe);
    free(token);
    return err == VTPMCA_OK;
}

/* The attest body exactly as kbs_attest_request's compact JSON (main checks they agree),
 * printed into c->attest_body; the nonce is checked base64, so it needs no escaping. */
static size_t attest_body(client *c, const uint8_t report[SNP_REPORT_SIZE])
{
    int head = snprintf(c->attest_body, c->attest_cap,
                        "{\"init-data\":null,\"runtime-data\":{\"nonce\":\"%s\",\"tee-pubkey\":%s},"
                        "\"tee-evidence\":{\"primary_evidence\":{\"snp-report\":\"",
                        c->nonce_b64, c->tee_jwk_text);
    static const char tail[] = "\",\"certs-buf\":null},\"additional_evidence\":\"\"}}";
    size_t len = (size_t)head;
    if (head < 0 || len + REPORT_B64_LEN + sizeof(tail) > c->attest_cap)
        die("attest body buffer", NULL);
    len += (size_t)EVP_EncodeBlock((unsigned char *)c->attest_body + len, report, SNP_REPORT_SIZE);
    memcpy(c->attest_body + len, tail, sizeof(tail));
    return len + sizeof(tail) - 1;
}

/* Records why a lean boot failed: the step, and the status with the server's error. */
static bool lean_failed(client *c, const char *step, vtpmca_err err, const vtpmca_diag *diag,
                        const vt_bench_http_answer *answer)
{
    vt_bench_http_describe(step, err, diag, answer, c->error, sizeof(c->error));
    return false;
}

/* The auth answer: the session cookie and the nonce ({"nonce":<std base64>,...}). */
static bool lean_auth_answer(client *c, const vt_bench_http_answer *answer, uint8_t **nonce,
                             size_t *nonce_len)
{
    const char *cookie = NULL;
    size_t cookie_len = 0;
    if (vt_bench_http_cookie(c->http, KBS_COOKIE_NAME, &cookie, &cookie_len) != VTPMCA_OK ||
        cookie_len == 0 || cookie_len > COOKIE_VALUE_MAX) {
        snprintf(c->error, sizeof(c->error), "auth: no usable %s cookie", KBS_COOKIE_NAME);
        return false;
    }
    snprintf(c->cookie, sizeof(c->cookie), "Cookie: %s=%.*s", KBS_COOKIE_NAME, (int)cookie_len,
             cookie);
    json_t *doc =
        json_loadb((const char *)answer->body, answer->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *text = json_string_value(json_object_get(doc, "nonce"));
    size_t text_len = text != NULL ? strlen(text) : 0;
    bool ok = text_len > 0 && text_len <= NONCE_B64_MAX &&
              vt_b64_decode_alloc(text, text_len, VT_B64_STD, nonce, nonce_len) == VTPMCA_OK;
    if (ok)
        memcpy(c->nonce_b64, text, text_len + 1);
    else
        snprintf(c->error, sizeof(c->error), "auth: the answer has no standard base64 nonce");
    json_decref(doc);
    return ok;
}

/* The resource answer looks like a flattened JWE: a JSON object with a "ciphertext" member
 * (the first boot checked one in full). */
static bool looks_like_jwe(const vt_bench_http_answer *answer)
{
    const char *body = (const char *)answer->body;
    return answer->body_len > 2 && body[0] == '{' && body[answer->body_len - 1] == '}' &&
           strstr(body, "\"ciphertext\":\"") != NULL;
}

/* One timed boot with the lean client: auth, attest, resource on the kept-alive connection;
 * OK when all three answer 200 and the resource answer looks like a JWE. */
static bool boot_lean(client *c)
{
    static const char *const auth_headers[] = {"Accept: application/json",
                                               "Content-Type: application/json", NULL};
    vtpmca_diag diag = {{0}};
    vt_bench_http_answer answer;
    vtpmca_err err = vt_bench_http_request(c->http, "POST", "/kbs/v0/auth", auth_headers, AUTH_BODY,
                                           sizeof(AUTH_BODY) - 1, &answer, &diag);
    if (err != VTPMCA_OK || answer.status != 200)
        return lean_failed(c, "auth", err, &diag, &answer);
    uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    if (!lean_auth_answer(c, &answer, &nonce, &nonce_len))
        return false;
    snp_report fields = env.template;
    uint8_t report[SNP_REPORT_SIZE];
    err = report_data_svsm_point(c->tee_point, c->tee_point_len, nonce, nonce_len,
                                 fields.report_data, &diag);
    free(nonce);
    if (err == VTPMCA_OK)
        err = snp_report_encode(&fields, report);
    if (err != VTPMCA_OK)
        return lean_failed(c, "report", err, &diag, NULL);
    sign_report(report);
    size_t body_len = attest_body(c, report);
    const char *const attest_headers[] = {"Accept: application/json",
                                          "Content-Type: application/json", c->cookie, NULL};
    err = vt_bench_http_request(c->http, "POST", "/kbs/v0/attest", attest_headers, c->attest_body,
                                body_len, &answer, &diag);
    if (err != VTPMCA_OK || answer.status != 200)
        return lean_failed(c, "attest", err, &diag, &answer);
    const char *const resource_headers[] = {"Accept: application/json", c->cookie, NULL};
    err = vt_bench_http_request(c->http, "GET", c->resource_url, resource_headers, NULL, 0, &answer,
                                &diag);
    if (err != VTPMCA_OK || answer.status != 200)
        return lean_failed(c, "resource", err, &diag, &answer);
    if (!looks_like_jwe(&answer)) {
        snprintf(c->error, sizeof(c->error), "resource: the answer is not a JWE object");
        return false;
    }
    return true;
}

/* What a lean client builds once: the JWK text, the resource path, the attest buffer, its
 * connection. */
static void client_prepare(client *c)
{
    vtpmca_diag diag = {{0}};
    c->tee = EVP_EC_gen("P-521");
    if (c->tee == NULL || kbs_tee_pubkey_jwk(c->tee, &c->tee_jwk, &diag) != VTPMCA_OK ||
        jwe_ec_point_encode(c->tee, c->tee_point, &c->tee_point_len, &diag) != VTPMCA_OK)
        die("tee key", &diag);
    c->tee_jwk_text = json_dumps(c->tee_jwk, JSON_COMPACT);
    c->attest_cap = 512 + NONCE_B64_MAX + REPORT_B64_LEN +
                    (c->tee_jwk_text != NULL ? strlen(c->tee_jwk_text) : 0);
    c->attest_body = malloc(c->attest_cap);
    if (c->tee_jwk_text == NULL || c->attest_body == NULL)
        die("out of memory", NULL);
    snprintf(c->resource_url, sizeof(c->resource_url), "/kbs/v0/resource/%s", env.resource_path);
    if (vt_bench_http_new(env.port, 10000, &c->http, &diag) != VTPMCA_OK)
        die("bench http", &diag);
}

static void client_release(client *c)
{
    EVP_PKEY_free(c->tee);
    json_decref(c->tee_jwk);
    free(c->tee_jwk_text);
    free(c->attest_body);
    vt_bench_http_free(c->http);
    free(c->latency_ms);
}

/* The lean request bodies must be the library's, byte for byte (checked once, untimed). */
static void check_wire_bodies(client *c)
{
    json_t *auth = NULL;
    char *auth_text = NULL;
    if (kbs_auth_request(&auth, NULL) != VTPMCA_OK ||
        (auth_text = json_dumps(auth, JSON_COMPACT)) == NULL || strcmp(auth_text, AUTH_BODY) != 0)
        die("the lean auth body differs from kbs_auth_request's", NULL);
    free(auth_text);
    json_decref(auth);

    uint8_t report[SNP_REPORT_SIZE];
    RAND_bytes(report, sizeof(report));
    snprintf(c->nonce_b64, sizeof(c->nonce_b64), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    json_t *body = NULL;
    char *text = NULL;
    vtpmca_diag diag = {{0}};
    if (kbs_attest_request(c->nonce_b64, c->tee_jwk, report, sizeof(report), &body, &diag) !=
            VTPMCA_OK ||
        (text = json_dumps(body, JSON_COMPACT)) == NULL)
        die("attest request", &diag);
    size_t len = attest_body(c, report);
    if (len != strlen(text) || memcmp(text, c->attest_body, len) != 0)
        die("the lean attest body differs from kbs_attest_request's", NULL);
    free(text);
    json_decref(body);
}

static void record(client *c, double ms)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->latency_ms = realloc(c->latency_ms, c->cap * sizeof(double));
        if (c->latency_ms == NULL)
            die("out of memory", NULL);
    }
    c->latency_ms[c->n++] = ms;
}

static void *client_run(void *arg)
{
    client *c = arg;
    kbs_client *kc = NULL;
    vtpmca_diag diag = {{0}};
    if (kbs_client_new(env.base_url, 10000, &kc, &diag) != VTPMCA_OK)
        die("kbs client", &diag);
    /* A first, untimed boot with the real client checks the answer: decryption and the KBS
     * binding. Its connection is closed: the timed boots use the lean client's. */
    bool checked = boot_once(kc, c, true);
    kbs_client_free(kc);
    pthread_mutex_lock(&ctrl.lock);
    if (!checked)
        c->failures++;
    ctrl.ready++;
    pthread_cond_broadcast(&ctrl.changed);
    unsigned generation = ctrl.generation;
    double next = 0;
    for (;;) {
        while (ctrl.state == CTRL_PAUSE)
            pthread_cond_wait(&ctrl.changed, &ctrl.lock);
        if (ctrl.state == CTRL_STOP)
            break;
        double interval = ctrl.interval_s;
        if (generation != ctrl.generation) { /* a new window: stagger paced starts */
            generation = ctrl.generation;
            next = vt_bench_now_s() + interval * drand48();
        }
        ctrl.busy++;
        pthread_mutex_unlock(&ctrl.lock);
        if (interval > 0)
            sleep_until(next);
        /* Paced: latency from the scheduled start, so a late start counts against us. */
        double t0 = interval > 0 ? next : vt_bench_now_s();
        bool ok = boot_lean(c);
        double ms = (vt_bench_now_s() - t0) * 1000.0;
        next += interval;
        pthread_mutex_lock(&ctrl.lock);
        if (ok)
            record(c, ms);
        else
            c->failures++;
        ctrl.busy--;
        pthread_cond_broadcast(&ctrl.changed);
    }
    pthread_mutex_unlock(&ctrl.lock);
    return NULL;
}

static void set_state(int state, double interval_s)
{
    pthread_mutex_lock(&ctrl.lock);
    ctrl.state = state;
    ctrl.interval_s = interval_s;
    if (state == CTRL_RUN)
        ctrl.generation++;
    pthread_cond_broadcast(&ctrl.changed);
    pthread_mutex_unlock(&ctrl.lock);
}

/* Pauses the clients and waits until every boot in progress has ended. */
static void pause_and_drain(void)
{
    pthread_mutex_lock(&ctrl.lock);
    ctrl.state = CTRL_PAUSE;
    while (ctrl.busy > 0)
        pthread_cond_wait(&ctrl.changed, &ctrl.lock);
    pthread_mutex_unlock(&ctrl.lock);
}

typedef struct {
    double seconds, server_cpu_s, client_cpu_s;
} window_totals;

/* Lets the clients run for `seconds` (paced when interval_s > 0) and accumulates the time
 * until the last boot ended and the CPU time used by the daemon and by this process. */
static void load_window(double seconds, double interval_s, window_totals *totals)
{
    double server0 = vt_bench_process_cpu_s(env.pid), self0 = vt_bench_self_cpu_s(),
           t0 = vt_bench_now_s();
    set_state(CTRL_RUN, interval_s);
    sleep_until(t0 + seconds);
    pause_and_drain();
    totals->seconds += vt_bench_now_s() - t0;
    totals->server_cpu_s += vt_bench_process_cpu_s(env.pid) - server0;
    totals->client_cpu_s += vt_bench_self_cpu_s() - self0;
}

typedef struct {
    double rate, p50, p99, server_ms, client_ms;
    uint64_t boots, failures;
} phase_result;

/* Collects (and resets) the clients' samples of the windows since the last call. */
static phase_result collect(client *clients, unsigned n_clients, const window_totals *totals)
{
    phase_result res = {0};
    size_t total = 0;
    for (unsigned i = 0; i < n_clients; i++) {
        total += clients[i].n;
        res.failures += clients[i].failures;
        if (clients[i].failures > 0)
            fprintf(stderr, "bench_kbs: client %u: %s\n", i, clients[i].error);
    }
    double *all = malloc((total ? total : 1) * sizeof(double));
    if (all == NULL)
        die("out of memory", NULL);
    size_t k = 0;
    for (unsigned i = 0; i < n_clients; i++) {
        memcpy(all + k, clients[i].latency_ms, clients[i].n * sizeof(double));
        k += clients[i].n;
        clients[i].n = 0;
        clients[i].failures = 0;
    }
    qsort(all, total, sizeof(double), vt_bench_cmp_double);
    res.boots = total;
    res.rate = totals->seconds > 0 ? (double)total / totals->seconds : 0;
    res.p50 = total ? all[total / 2] : 0;
    res.p99 = total ? all[(size_t)((double)(total - 1) * 0.99)] : 0;
    res.server_ms = total ? totals->server_cpu_s * 1000.0 / (double)total : 0;
    res.client_ms = total ? totals->client_cpu_s * 1000.0 / (double)total : 0;
    free(all);
    return res;
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_kbs [--clients N] [--seconds S] [--server-threads N]\n"
                 "                 [--token-alg ES256|ES384] [--vtpmcad PATH] [--keep]\n");
}

static void parse_options(int argc, char **argv, bench_options *opt)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* 32: with a third of the boots waiting for their audit row's fsync at any time, fewer
     * clients leave the two cores idle now and then (16 kept them ~95% busy). */
    *opt = (bench_options){.clients = 32,
                           .seconds = 6,
                           .server_threads = cpus > 0 ? (unsigned)cpus : 2,
                           .token_alg = "ES256"};
    const char *bin_dir = getenv("VTPMCA_BIN_DIR");
    char self[1024];
    snprintf(self, sizeof(self), "%s", argv[0]);
    snprintf(opt->vtpmcad, sizeof(opt->vtpmcad), "%s/vtpmcad",
             bin_dir != NULL ? bin_dir : dirname(self));
    static const struct option longs[] = {{"clients", required_argument, NULL, 'c'},
                                          {"seconds", required_argument, NULL, 's'},
                                          {"server-threads", required_argument, NULL, 't'},
                                          {"token-alg", required_argument, NULL, 'a'},
                                          {"vtpmcad", required_argument, NULL, 'd'},
                                          {"keep", no_argument, NULL, 'k'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opt->clients = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            opt->seconds = strtod(optarg, NULL);
            break;
        case 't':
            opt->server_threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'a':
            opt->token_alg = optarg;
            break;
        case 'd':
            snprintf(opt->vtpmcad, sizeof(opt->vtpmcad), "%s", optarg);
            break;
        case 'k':
            opt->keep = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (opt->clients < 1 || opt->clients > 256 || opt->seconds <= 0 || opt->seconds > 600 ||
        opt->server_threads < 1 || opt->server_threads > 64 ||
        (strcmp(opt->token_alg, "ES256") != 0 && strcmp(opt->token_alg, "ES384") != 0)) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    bench_options opt;
    parse_options(argc, argv, &opt);
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srand48((long)time(NULL));
    snprintf(env.dir, sizeof(env.dir), "/tmp/vtpmca-bench-kbs-XXXXXX");
    if (mkdtemp(env.dir) == NULL)
        die("mkdtemp", NULL);
    snprintf(env.roots, sizeof(env.roots), "%s/roots", env.dir);
    snprintf(env.state, sizeof(env.state), "%s/state", env.dir);
    snprintf(env.port_file, sizeof(env.port_file), "%s/port", env.dir);
    snprintf(env.log, sizeof(env.log), "%s/vtpmcad.log", env.dir);
    vtpmca_diag diag = {{0}};
    if (vt_mkdir_p(env.state, 0700, &diag) != VTPMCA_OK)
        die("state dir", &diag);
    make_platform();
    start_daemon(&opt);
    unsigned cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_kbs: %u clients, %u server threads, %u CPUs, KBS key ES384, token %s\n",
           opt.clients, opt.server_threads, cpus, opt.token_alg);

    /* A first floor round sizes the signing pool: both phases at up to the floor's rate. */
    floor_inputs floor_in;
    floor_prepare(&floor_in);
    vt_bench_floor_totals floor = {0};
    floor_round(&floor_in, cpus, FLOOR_ROUND_S, &floor);
    double rough_floor = (double)floor.done / floor.seconds;
    size_t pool = (size_t)(rough_floor * opt.seconds * 1.7) + 8 * opt.clients + 64;
    double pool_start = vt_bench_now_s();
    make_pool(pool, cpus);
    printf("signing pool: %zu precomputed report signatures in %.1f s (untimed)\n", pool,
           vt_bench_now_s() - pool_start);

    client *clients = calloc(opt.clients, sizeof(*clients));
    pthread_t *tids = calloc(opt.clients, sizeof(*tids));
    if (clients == NULL || tids == NULL)
        die("out of memory", NULL);
    for (unsigned i = 0; i < opt.clients; i++) {
        client_prepare(&clients[i]);
        check_wire_bodies(&clients[i]);
        pthread_create(&tids[i], NULL, client_run, &clients[i]);
    }
    pthread_mutex_lock(&ctrl.lock);
    while (ctrl.ready < opt.clients)
        pthread_cond_wait(&ctrl.changed, &ctrl.lock);
    pthread_mutex_unlock(&ctrl.lock);
    uint64_t checked_failures = 0;
    for (unsigned i = 0; i < opt.clients; i++)
        checked_failures += clients[i].failures;
    if (checked_failures > 0)
        die("a checked boot failed (JWE or KBS binding); see above", NULL);

    /* Full load in short windows that alternate with floor rounds, so background load on
     * the machine weighs on both alike. */
    window_totals full_totals = {0};
    for (unsigned r = 0; r < ROUNDS; r++) {
        load_window(opt.seconds / ROUNDS, 0, &full_totals);
        floor_round(&floor_in, cpus, FLOOR_ROUND_S, &floor);
    }
    double floor_rate = (double)floor.done / floor.seconds;
    double floor_ms = floor.cpu_s * 1000.0 / (double)floor.done; /* CPU per boot */
    phase_result full = collect(clients, opt.clients, &full_totals);
    double ratio = full.rate / floor_rate;
    printf("crypto floor: %.0f boots/s on %u threads, %.3f ms of CPU per boot (P-384 verify, "
           "P-521 keygen and ECDH with a pre-checked peer, P-384 sign)\n",
           floor_rate, cpus, floor_ms);
    printf("full load: %.0f boots/s = %.0f%% of the floor; latency p50 %.1f ms, p99 %.1f ms "
           "(%llu boots, %llu failed)\n",
           full.rate, 100 * ratio, full.p50, full.p99, (unsigned long long)full.boots,
           (unsigned long long)full.failures);
    /* CPU time does not depend on other load on the machine: it says how close the server
     * is to the crypto, and what client and server together would reach on idle cores. */
    printf("  CPU per boot: server %.3f ms (the floor is %.0f%% of it), client %.3f ms; on "
           "otherwise idle cores they would reach %.0f%% of the floor\n",
           full.server_ms, full.server_ms > 0 ? 100 * floor_ms / full.server_ms : 0, full.client_ms,
           full.server_ms > 0 ? 100 * floor_ms / (full.server_ms + full.client_ms) : 0);

    window_totals half_totals = {0};
    double half_rate = full.rate / 2;
    load_window(opt.seconds, opt.clients / half_rate, &half_totals);
    phase_result half = collect(clients, opt.clients, &half_totals);
    printf("half load: %.0f boots/s offered, %.0f achieved; latency p50 %.1f ms, p99 %.1f ms "
           "(%llu boots, %llu failed)\n",
           half_rate, half.rate, half.p50, half.p99, (unsigned long long)half.boots,
           (unsigned long long)half.failures);
    if (atomic_load(&env.pool.misses) > 0)
        printf("note: %llu reports were signed outside the pool (their client CPU counted)\n",
               (unsigned long long)atomic_load(&env.pool.misses));
    unsigned long connects = 0;
    for (unsigned i = 0; i < opt.clients; i++)
        connects += vt_bench_http_connects(clients[i].http);
    if (connects > opt.clients)
        printf("note: the clients opened %lu connections (%u kept alive throughout would be "
               "%u)\n",
               connects, opt.clients, opt.clients);
    bool ok_ratio = ratio >= GOAL_RATIO, ok_p99 = half.p99 < GOAL_P99_MS;
    printf("goals: throughput >= %.0f%% of the floor: %s; p99 < %.0f ms at half load: %s\n",
           100 * GOAL_RATIO, ok_ratio ? "met" : "MISSED", GOAL_P99_MS, ok_p99 ? "met" : "MISSED");

    set_state(CTRL_STOP, 0);
    for (unsigned i = 0; i < opt.clients; i++)
        pthread_join(tids[i], NULL);
    stop_daemon();
    for (unsigned i = 0; i < opt.clients; i++)
        client_release(&clients[i]);
    free(clients);
    free(tids);
    floor_release(&floor_in);
    free_pool();
    EC_KEY_free(env.vcek_ec);
    EVP_PKEY_free(env.vcek_key);
    curl_global_cleanup();
    if (!opt.keep) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_kbs: cannot remove %s\n", env.dir);
    } else {
        printf("kept %s (daemon log: %s)\n", env.dir, env.log);
    }
    return full.failures + half.failures > 0 ? 1 : 0;
}
