/* Benchmark: evidence-bound EK certificate issuance (challenge + certify) against a real
 * vtpmcad on loopback, with concurrent SVSM-like clients (keep-alive, CBOR bodies),
 * beside the floor of the server-side crypto of one issuance measured in the same run on the
 * same cores: the P-384 ECDSA verification of the SNP report (VCEK) + the issuing CA's
 * P-384 ECDSA signature of a certificate. Goal: certificates/s >= 75% of that floor.
 *
 * Client and server share the machine's cores, so the client's own crypto would be counted
 * against the server: each client signs its reports with the VCEK key, and a P-384
 * signature costs as much as the server's verification. Its nonce-dependent part is cheap,
 * so the k*G part of every signature is computed BEFORE the timed phase (ECDSA_sign_setup)
 * and each report is then signed with ECDSA_do_sign_ex. One issuance is made and checked in
 * full first, untimed, with the real client (libcurl, ca_client, ca_certificate_check: the
 * chain verifies and the certificate holds the EK). The timed ones use a lean load generator
 * (bench_http.h: one keep-alive connection per client) that sends the same CBOR bodies
 * (issuance_message_encode, as ca_client) and checks the status and the decoded answer
 * without parsing the certificates. What remains on the client is CBOR, HTTP and two hashes.
 * The floor runs before and after the load phase; their mean is used. CPU times are printed
 * too (the daemon's from /proc, the floor's own and this process's during the load), which
 * other load on the machine does not inflate.
 *
 * Usage: bench_certify [--clients N] [--seconds S] [--server-threads N] [--vtpmcad PATH]
 *                      [--keep]
 * The daemon runs with the TEST root made here (never AMD's keys) and --log-level warn. The
 * clients certify the EKs of 64 enrolled instances in turn (the store records each
 * certificate and audits each issuance, as in production). BENCH_TMP (a mkdtemp template)
 * puts the daemon's state elsewhere, e.g. on tmpfs to take the disk's fsync out. */
#define OPENSSL_SUPPRESS_DEPRECATED /* EVP_PKEY_get1_EC_KEY: the signing pool's key */
#include <curl/curl.h>
#include <getopt.h>
#include <libgen.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
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
#include "vtpmca/ca_client.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/issuance.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/store.h"
#include "vtpmca/tpm2_marshal.h"

#define GOAL_RATIO 0.75
#define FLOOR_S 2.0
#define MEASUREMENT_BYTE 0x11
/* Report layout (SEV-SNP ABI): signature r and s little-endian, 72 bytes each, right after
 * the signed part. */
#define MAX_THREADS 64
/* Instances, each with its own EK (one instance's requests serialize their store writes). */
#define INSTANCES 64

typedef struct {
    unsigned clients;
    double seconds;
    unsigned server_threads;
    char vtpmcad[1024];
    bool keep;
} bench_options;

static struct {
    char dir[64];
    char roots[128], state[128], port_file[160], log[160];
    pid_t pid;
    unsigned port;
    char base_url[64];
    snp_report template; /* a Milan v3 report of the VCEK's chip and TCB */
    EVP_PKEY *vcek_key;
    EC_KEY *vcek_ec;
    struct {
        char resource[STORE_RESOURCE_PATH_MAX + 1];
        uint8_t ek_pub[256];
        size_t ek_pub_len;
        uint8_t ek_name[TPM2_NAME_MAX];
        size_t ek_name_len;
    } vm[INSTANCES];
    uint8_t *kbs_der;
    size_t kbs_der_len;
    uint8_t kbs_hash[32];
    vt_bench_sign_pool pool;
} env;

static void die(const char *what, const vtpmca_diag *diag)
{
    fprintf(stderr, "bench_certify: %s%s%s\n", what, diag != NULL ? ": " : "",
            diag != NULL ? diag->msg : "");
    if (env.pid > 0)
        kill(env.pid, SIGKILL);
    exit(1);
}

/* ---- setup: test root, VCEK, store with an enrolled instance, a CA, the daemon ---- */

static void make_state(void)
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
    vtpmca_err err = vt_bench_store_make(env.state, &platform, "bench_certify", &st, &vault, &diag);
    for (int i = 0; i < INSTANCES && err == VTPMCA_OK; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bench-svsm-%02d", i);
        enroll_request req = {
            .instance_id = id, .fleet = "bench", .mode = STORE_KEY_GENERATED, .actor = "bench"};
        enroll_result res;
        err = enrollment_enroll(st, vault, &req, &res, &diag);
        snprintf(env.vm[i].resource, sizeof(env.vm[i].resource), "%s", res.resource_path);
    }
    if (err != VTPMCA_OK)
        die("store", &diag);
    keyvault_free(vault);
    store_close(st);
    vt_bench_platform_free(&platform);

    /* The CA the daemon opens (default: <state>/ca, ECDSA P-384 root and issuing CA). */
    char path[192];
    ca_init_options opts;
    ca_init_options_default(&opts);
    snprintf(path, sizeof(path), "%s/ca", env.state);
    if (ca_init(path, &opts, &diag) != VTPMCA_OK)
        die("ca init", &diag);
    /* The KBS key the daemon will create and trust: made here so the clients know it. */
    EVP_PKEY *kbs = NULL;
    snprintf(path, sizeof(path), "%s/kbs-key.pem", env.state);
    if (kbs_key_generate(KBS_KEY_P384, &kbs, &diag) != VTPMCA_OK ||
        kbs_key_save(kbs, path, &diag) != VTPMCA_OK ||
        kbs_key_fingerprint(kbs, env.kbs_hash, &diag) != VTPMCA_OK)
        die("KBS key", &diag);
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(kbs, &spki);
    env.kbs_der = spki;
    env.kbs_der_len = (size_t)spki_len;
    EVP_PKEY_free(kbs);
}

/* An L-2 (ECC P-256) EK instance with a fresh key for instance i. */
static void make_ek(int i)
{
    tpm2_public t;
    vtpm_ek_template(VTPM_EK_ECC_P256, &t);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    BIGNUM *x = NULL, *y = NULL;
    uint8_t xy[64];
    if (key == NULL || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1)
        die("EK key", NULL);
    BN_bn2binpad(x, xy, 32);
    BN_bn2binpad(y, xy + 32, 32);
    BN_free(x);
    BN_free(y);
    EVP_PKEY_free(key);
    t.unique_a = xy;
    t.unique_b = xy + 32;
    tpm2_writer w;
    tpm2_writer_init(&w, env.vm[i].ek_pub, sizeof(env.vm[i].ek_pub));
    if (tpm2_put_public(&w, &t) != VTPMCA_OK ||
        vtpm_object_name(env.vm[i].ek_pub, w.len, env.vm[i].ek_name, &env.vm[i].ek_name_len,
                         NULL) != VTPMCA_OK)
        die("EK", NULL);
    env.vm[i].ek_pub_len = w.len;
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
                          "--ca-base-url",
                          "http://ca.bench.test",
                          NULL};
    vtpmca_diag diag = {{0}};
    unsigned port = 0;
    if (vt_bench_start_vtpmcad(argv, env.log, true, env.port_file, 20, &env.pid, &port, &diag) !=
        VTPMCA_OK)
        die(diag.msg, NULL);
    env.port = port;
    snprintf(env.base_url, sizeof(env.base_url), "http://127.0.0.1:%u", port);
}

static void stop_daemon(void)
{
    vt_bench_stop_vtpmcad(&env.pid);
}

/* ---- the crypto floor: report verification + the CA's certificate signature ---- */

typedef struct {
    vt_bench_floor_report report;
    EVP_PKEY *ca_key;
    uint8_t tbs[1024]; /* stands for a TBSCertificate of an EK certificate */
} floor_inputs;

/* One issuance's server-side crypto. */
static bool floor_op(const void *arg)
{
    const floor_inputs *in = arg;
    return vt_bench_floor_verify(&in->report) &&
           vt_bench_floor_sign(in->ca_key, in->tbs, sizeof(in->tbs));
}

static void floor_prepare(floor_inputs *in)
{
    vtpmca_diag diag = {{0}};
    if (vt_bench_floor_report_make(&env.template, env.vcek_key, &in->report, &diag) != VTPMCA_OK)
        die("floor report", &diag);
    /* The issuing CA's own key, as the daemon signs with it. */
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/ca", env.state);
    ca_ctx *ca = NULL;
    if (ca_open(dir, &ca, &diag) != VTPMCA_OK)
        die("ca open", &diag);
    in->ca_key = ca_issuing_key(ca);
    EVP_PKEY_up_ref(in->ca_key);
    ca_free(ca);
    RAND_bytes(in->tbs, sizeof(in->tbs));
}

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

typedef struct {
    double seconds;
    unsigned index, stride; /* this client's instances: index, index + stride, ... */
    unsigned next;
    vt_bench_http *http;
    uint64_t issued, failed;
    char error[256];
} client;

/* The certify request of instance i for a nonce and a signed report, as ca_client_certify
 * sends it. */
static issuance_certify_request certify_request(unsigned i, const uint8_t *nonce,
                                                const uint8_t *report)
{
    return (issuance_certify_request){
        .ek_public = env.vm[i].ek_pub,
        .ek_public_len = env.vm[i].ek_pub_len,
        .kbs_key = env.kbs_der,
        .kbs_key_len = env.kbs_der_len,
        .resource = env.vm[i].resource,
        .format = "x509",
        .nonce = nonce,
        .nonce_len = ISSUANCE_NONCE_LEN,
        .report = report,
        .report_len = SNP_REPORT_SIZE,
    };
}

/* The signed report of instance i for a nonce. */
static void make_report(unsigned i, const uint8_t nonce[ISSUANCE_NONCE_LEN],
                        uint8_t report[SNP_REPORT_SIZE])
{
    vtpmca_diag diag = {{0}};
    snp_report r = env.template;
    if (issuance_report_data(nonce, env.vm[i].ek_name, env.vm[i].ek_name_len, NULL, 0, env.kbs_hash,
                             r.report_data, &diag) != VTPMCA_OK ||
        snp_report_encode(&r, report) != VTPMCA_OK)
        die("REPORT_DATA", &diag);
    sign_report(report);
}

/* One challenge + certify of instance 0 with the real client, and the full check of the
 * certificate: the chain verifies and it certifies instance 0's EK (untimed). */
static void certify_checked(void)
{
    ca_client *cc = NULL;
    vtpmca_diag diag = {{0}};
    uint8_t nonce[ISSUANCE_NONCE_LEN], report[SNP_REPORT_SIZE];
    if (ca_client_new(env.base_url, ISSUANCE_ENC_CBOR, 0, &cc, &diag) != VTPMCA_OK ||
        ca_client_challenge(cc, nonce, NULL, &diag) != VTPMCA_OK)
        die("checked issuance: challenge", &diag);
    make_report(0, nonce, report);
    issuance_certify_request rq = certify_request(0, nonce, report);
    ca_certificates certs;
    if (ca_client_certify(cc, &rq, &certs, &diag) != VTPMCA_OK)
        die("checked issuance: certify", &diag);
    const uint8_t *const chain[2] = {certs.chain[0], certs.chain[1]};
    if (ca_certificate_check(certs.format, certs.ek_cert, certs.ek_cert_len, chain, certs.chain_len,
                             env.vm[0].ek_pub, env.vm[0].ek_pub_len, NULL, NULL,
                             &diag) != VTPMCA_OK)
        die("the issued certificate does not check", &diag);
    ca_certificates_free(&certs);
    ca_client_free(cc);
}

/* Records why a lean issuance failed: the step, and the status with the server's error. */
static bool lean_failed(client *c, const char *step, vtpmca_err err, const vtpmca_diag *diag,
                        const vt_bench_http_answer *answer)
{
    vt_bench_http_describe(step, err, diag, answer, c->error, sizeof(c->error));
    return false;
}

/* The certify answer decodes (the library decoder, as ca_client) to an X.509 answer with an
 * EK certificate that is a DER SEQUENCE and a chain of two; the certificates themselves are
 * not parsed (the checked issuance did that). */
static bool certify_answer_ok(client *c, const vt_bench_http_answer *answer)
{
    issuance_message msg;
    vtpmca_diag diag = {{0}};
    if (issuance_message_decode(
            ISSUANCE_ENC_CBOR, answer->body, answer->body_len, ISSUANCE_CERTIFY_RESPONSE,
            ISSUANCE_SPEC_COUNT(ISSUANCE_CERTIFY_RESPONSE), &msg, &diag) != VTPMCA_OK) {
        snprintf(c->error, sizeof(c->error), "certify: malformed answer: %.200s", diag.msg);
        return false;
    }
    const issuance_field *cert = issuance_message_get(&msg, "ek_cert");
    const issuance_field *chain = issuance_message_get(&msg, "chain");
    const issuance_field *format = issuance_message_get(&msg, "format");
    bool ok = strcmp((const char *)format->bytes, "x509") == 0 && cert->len > 0 &&
              cert->bytes[0] == 0x30 && chain->list_count == 2 &&
              issuance_message_get(&msg, "iak_cert") == NULL;
    if (!ok)
        snprintf(c->error, sizeof(c->error),
                 "certify: not an x509 answer with an EK certificate "
                 "and a chain of two");
    issuance_message_free(&msg);
    return ok;
}

/* One timed challenge + certify with the lean client; false on any failure (recorded). */
static bool certify_lean(client *c)
{
    unsigned i = c->index + c->stride * c->next;
    if (i >= INSTANCES) {
        c->next = 0;
        i = c->index;
    }
    c->next++;
    static const char *const challenge_headers[] = {"Accept: " ISSUANCE_CBOR_TYPE, NULL};
    static const char *const certify_headers[] = {"Accept: " ISSUANCE_CBOR_TYPE,
                                                  "Content-Type: " ISSUANCE_CBOR_TYPE, NULL};
    vtpmca_diag diag = {{0}};
    vt_bench_http_answer answer;
    vtpmca_err err = vt_bench_http_request(c->http, "POST", "/v1/ca/challenge", challenge_headers,
                                           NULL, 0, &answer, &diag);
    if (err != VTPMCA_OK || answer.status != 200)
        return lean_failed(c, "challenge", err, &diag, &answer);
    issuance_message msg;
    err = issuance_message_decode(ISSUANCE_ENC_CBOR, answer.body, answer.body_len,
                                  ISSUANCE_CHALLENGE_RESPONSE,
                                  ISSUANCE_SPEC_COUNT(ISSUANCE_CHALLENGE_RESPONSE), &msg, &diag);
    if (err != VTPMCA_OK)
        return lean_failed(c, "challenge answer", err, &diag, NULL);
    const issuance_field *nonce_field = issuance_message_get(&msg, "nonce");
    uint8_t nonce[ISSUANCE_NONCE_LEN];
    bool nonce_ok = nonce_field->len == sizeof(nonce);
    if (nonce_ok)
        memcpy(nonce, nonce_field->bytes, sizeof(nonce));
    issuance_message_free(&msg);
    if (!nonce_ok) {
        snprintf(c->error, sizeof(c->error), "challenge: a nonce of another length");
        return false;
    }
    uint8_t report[SNP_REPORT_SIZE];
    make_report(i, nonce, report);
    /* The body ca_client_certify sends: its fields in its order, the library's encoder. */
    issuance_certify_request rq = certify_request(i, nonce, report);
    const issuance_field fields[] = {
        {.name = "ek_public",
         .type = ISSUANCE_FIELD_BYTES,
         .bytes = rq.ek_public,
         .len = rq.ek_public_len},
        {.name = "kbs_key",
         .type = ISSUANCE_FIELD_BYTES,
         .bytes = rq.kbs_key,
         .len = rq.kbs_key_len},
        {.name = "resource",
         .type = ISSUANCE_FIELD_TEXT,
         .bytes = (const uint8_t *)rq.resource,
         .len = strlen(rq.resource)},
        {.name = "format",
         .type = ISSUANCE_FIELD_TEXT,
         .bytes = (const uint8_t *)rq.format,
         .len = strlen(rq.format)},
        {.name = "nonce", .type = ISSUANCE_FIELD_BYTES, .bytes = rq.nonce, .len = rq.nonce_len},
        {.name = "report", .type = ISSUANCE_FIELD_BYTES, .bytes = rq.report, .len = rq.report_len},
    };
    uint8_t *body = NULL;
    size_t body_len = 0;
    err = issuance_message_encode(ISSUANCE_ENC_CBOR, fields, sizeof(fields) / sizeof(fields[0]),
                                  &body, &body_len, &diag);
    if (err == VTPMCA_OK)
        err = vt_bench_http_request(c->http, "POST", "/v1/ca/certify", certify_headers, body,
                                    body_len, &answer, &diag);
    free(body);
    if (err != VTPMCA_OK || answer.status != 200)
        return lean_failed(c, "certify", err, &diag, &answer);
    return certify_answer_ok(c, &answer);
}

static void *client_run(void *arg)
{
    client *c = arg;
    double end = vt_bench_now_s() + c->seconds;
    while (vt_bench_now_s() < end) {
        if (certify_lean(c))
            c->issued++;
        else
            c->failed++;
    }
    return NULL;
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_certify [--clients N] [--seconds S] [--server-threads N] "
                 "[--vtpmcad PATH] [--keep]\n");
}

static void parse_options(int argc, char **argv, bench_options *opt)
{
    static const struct option options[] = {
        {"clients", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"server-threads", required_argument, NULL, 't'},
        {"vtpmcad", required_argument, NULL, 'v'},
        {"keep", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *opt = (bench_options){
        .clients = 64, .seconds = 6, .server_threads = cpus > 0 ? (unsigned)cpus : 2};
    /* vtpmcad sits next to this program in the build directory. */
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(opt->vtpmcad, sizeof(opt->vtpmcad), "%s/vtpmcad", dirname(self));
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            opt->clients = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            opt->seconds = strtod(optarg, NULL);
            break;
        case 't':
            opt->server_threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'v':
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
    if (opt->clients == 0 || opt->clients > MAX_THREADS || opt->seconds <= 0 ||
        opt->seconds > 600 || opt->server_threads == 0 || opt->server_threads > MAX_THREADS) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    bench_options opt;
    parse_options(argc, argv, &opt);
    snprintf(env.dir, sizeof(env.dir), "%s",
             getenv("BENCH_TMP") ? getenv("BENCH_TMP") : "/tmp/vtpmca-bench-certify-XXXXXX");
    if (mkdtemp(env.dir) == NULL)
        die("mkdtemp", NULL);
    snprintf(env.roots, sizeof(env.roots), "%s/roots", env.dir);
    snprintf(env.state, sizeof(env.state), "%s/state", env.dir);
    snprintf(env.port_file, sizeof(env.port_file), "%s/port", env.dir);
    snprintf(env.log, sizeof(env.log), "%s/vtpmcad.log", env.dir);
    if (vt_mkdir_p(env.state, 0700, NULL) != VTPMCA_OK)
        die("state dir", NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    make_state();
    for (int i = 0; i < INSTANCES; i++)
        make_ek(i);
    floor_inputs in;
    floor_prepare(&in);
    start_daemon(&opt);
    printf("bench_certify: vtpmcad %s (%u threads), %u clients (CBOR) over %d instances, %.1f s "
           "load; EK P-256, CA ECDSA P-384\n",
           env.base_url, opt.server_threads, opt.clients, INSTANCES, opt.seconds);

    /* Precomputed report signatures for well above the rates seen here (more would only
     * lengthen the set-up; a shortfall is counted and printed). */
    unsigned cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    make_pool((size_t)(opt.seconds * 2000) + 1000, cpus);

    vt_bench_floor_totals floor = {0};
    floor_round(&in, cpus, FLOOR_S, &floor);

    certify_checked();
    client clients[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (unsigned i = 0; i < opt.clients; i++) {
        clients[i] = (client){.seconds = opt.seconds, .index = i, .stride = opt.clients};
        vtpmca_diag diag = {{0}};
        if (vt_bench_http_new(env.port, 10000, &clients[i].http, &diag) != VTPMCA_OK)
            die("bench http", &diag);
    }
    double cpu0 = vt_bench_process_cpu_s(env.pid), self0 = vt_bench_self_cpu_s(),
           start = vt_bench_now_s();
    for (unsigned i = 0; i < opt.clients; i++)
        pthread_create(&tids[i], NULL, client_run, &clients[i]);
    uint64_t issued = 0, failed = 0;
    const char *error = NULL;
    for (unsigned i = 0; i < opt.clients; i++) {
        pthread_join(tids[i], NULL);
        issued += clients[i].issued;
        failed += clients[i].failed;
        if (clients[i].failed > 0 && error == NULL)
            error = clients[i].error;
    }
    double elapsed = vt_bench_now_s() - start, daemon_cpu = vt_bench_process_cpu_s(env.pid) - cpu0,
           client_cpu = vt_bench_self_cpu_s() - self0;
    floor_round(&in, cpus, FLOOR_S, &floor);

    double rate = (double)issued / elapsed;
    double floor_rate = (double)floor.done / floor.seconds;
    double ratio = rate / floor_rate;
    printf("issued        %llu certificates in %.2f s: %.0f certificates/s (%llu failed)\n",
           (unsigned long long)issued, elapsed, rate, (unsigned long long)failed);
    if (error != NULL)
        printf("              first failure: %s\n", error);
    printf("crypto floor  %.0f/s on %u threads (P-384 report verify + P-384 CA signature), "
           "%.3f ms CPU each\n",
           floor_rate, cpus, floor.cpu_s * 1000.0 / (double)floor.done);
    /* CPU time does not depend on other load on the machine: it says how close the server
     * is to the crypto, and what client and server together would reach on idle cores. */
    double floor_ms = floor.cpu_s * 1000.0 / (double)floor.done;
    double daemon_ms = issued > 0 ? daemon_cpu * 1000.0 / (double)issued : 0.0;
    double client_ms = issued > 0 ? client_cpu * 1000.0 / (double)issued : 0.0;
    printf("daemon CPU    %.3f ms per certificate (%.0f%% of it is the floor's crypto)\n",
           daemon_ms, daemon_ms > 0 ? 100.0 * floor_ms / daemon_ms : 0.0);
    printf("client CPU    %.3f ms per certificate; on otherwise idle cores daemon and client "
           "would reach %.0f%% of the floor\n",
           client_ms, daemon_ms > 0 ? 100.0 * floor_ms / (daemon_ms + client_ms) : 0.0);
    if (atomic_load(&env.pool.misses) > 0)
        printf("note          %llu report signatures were not precomputed\n",
               (unsigned long long)atomic_load(&env.pool.misses));
    printf("ratio         %.0f%% of the floor (goal >= %.0f%%): %s\n", 100.0 * ratio,
           100.0 * GOAL_RATIO, ratio >= GOAL_RATIO && failed == 0 ? "MET" : "NOT MET");

    unsigned long connects = 0;
    for (unsigned i = 0; i < opt.clients; i++) {
        connects += vt_bench_http_connects(clients[i].http);
        vt_bench_http_free(clients[i].http);
    }
    if (connects > opt.clients)
        printf("note          the clients opened %lu connections (%u kept alive throughout "
               "would be %u)\n",
               connects, opt.clients, opt.clients);
    stop_daemon();
    free_pool();
    vt_bench_floor_report_free(&in.report);
    EVP_PKEY_free(in.ca_key);
    EVP_PKEY_free(env.vcek_key);
    EC_KEY_free(env.vcek_ec);
    OPENSSL_free(env.kbs_der);
    curl_global_cleanup();
    if (!opt.keep) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_certify: could not remove %s\n", env.dir);
    } else {
        printf("kept          %s\n", env.dir);
    }
    return ratio >= GOAL_RATIO && failed == 0 ? 0 : 1;
}
