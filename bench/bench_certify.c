/* Benchmark: evidence-bound EK certificate issuance (challenge + certify) against a real
 * vtpmcad on loopback, with concurrent SVSM-like clients (libcurl keep-alive, CBOR bodies),
 * beside the floor of the server-side crypto of one issuance measured in the same run on the
 * same cores: the P-384 ECDSA verification of the SNP report (VCEK) + the issuing CA's
 * P-384 ECDSA signature of a certificate. Goal: certificates/s >= 75% of that floor.
 *
 * Client and server share the machine's cores, so the client's own crypto would be counted
 * against the server: each client signs its reports with the VCEK key, and a P-384
 * signature costs as much as the server's verification. Its nonce-dependent part is cheap,
 * so the k*G part of every signature is computed BEFORE the timed phase (ECDSA_sign_setup)
 * and each report is then signed with ECDSA_do_sign_ex. What remains on the client is CBOR,
 * HTTP and two hashes. The floor runs before and after the load phase; their mean is used.
 * CPU times are printed too (the daemon's from /proc, the floor's own), which other load on
 * the machine does not inflate.
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

#include "vtpmca/ca_client.h"
#include "vtpmca/bench_util.h"
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
    snprintf(env.base_url, sizeof(env.base_url), "http://127.0.0.1:%u", port);
}

static void stop_daemon(void)
{
    vt_bench_stop_vtpmcad(&env.pid);
}

/* ---- the crypto floor: report verification + the CA's certificate signature ---- */

typedef struct {
    uint8_t report[SNP_REPORT_SIZE];
    uint8_t sig_der[128];
    size_t sig_der_len;
    EVP_PKEY *vcek_public, *ca_key;
    uint8_t tbs[1024]; /* stands for a TBSCertificate of an EK certificate */
} floor_inputs;

/* One issuance's server-side crypto. */
static bool floor_op(const void *arg)
{
    const floor_inputs *in = arg;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, in->vcek_public) == 1 &&
        EVP_DigestVerify(md, in->sig_der, in->sig_der_len, in->report, SNP_REPORT_SIGNED_SIZE) == 1;
    EVP_MD_CTX_free(md);
    uint8_t sig[128];
    size_t sig_len = sizeof(sig);
    md = EVP_MD_CTX_new();
    ok = ok && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, in->ca_key) == 1 &&
         EVP_DigestSign(md, sig, &sig_len, in->tbs, sizeof(in->tbs)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void floor_prepare(floor_inputs *in)
{
    snp_report r = env.template;
    if (snp_test_report_sign(&r, env.vcek_key, in->report, NULL) != VTPMCA_OK)
        die("floor report", NULL);
    in->sig_der_len = sizeof(in->sig_der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, env.vcek_key);
    EVP_DigestSign(md, in->sig_der, &in->sig_der_len, in->report, SNP_REPORT_SIGNED_SIZE);
    EVP_MD_CTX_free(md);
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(env.vcek_key, &spki);
    const unsigned char *p = spki;
    in->vcek_public = d2i_PUBKEY(NULL, &p, spki_len);
    OPENSSL_free(spki);
    /* The issuing CA's own key, as the daemon signs with it. */
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/ca", env.state);
    ca_ctx *ca = NULL;
    vtpmca_diag diag = {{0}};
    if (ca_open(dir, &ca, &diag) != VTPMCA_OK)
        die("ca open", &diag);
    in->ca_key = ca_issuing_key(ca);
    EVP_PKEY_up_ref(in->ca_key);
    ca_free(ca);
    RAND_bytes(in->tbs, sizeof(in->tbs));
    if (in->vcek_public == NULL)
        die("floor keys", NULL);
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
    bool check_first; /* verify the first certificate fully (outside the count) */
    uint64_t issued, failed;
    char error[256];
} client;

/* One challenge + certify; false on any failure (recorded). */
static bool certify_once(ca_client *cc, client *c, ca_certificates *certs)
{
    unsigned i = c->index + c->stride * c->next;
    if (i >= INSTANCES) {
        c->next = 0;
        i = c->index;
    }
    c->next++;
    vtpmca_diag diag = {{0}};
    uint8_t nonce[ISSUANCE_NONCE_LEN];
    if (ca_client_challenge(cc, nonce, NULL, &diag) != VTPMCA_OK) {
        snprintf(c->error, sizeof(c->error), "%s", diag.msg);
        return false;
    }
    snp_report r = env.template;
    if (issuance_report_data(nonce, env.vm[i].ek_name, env.vm[i].ek_name_len, NULL, 0, env.kbs_hash,
                             r.report_data, &diag) != VTPMCA_OK)
        die("REPORT_DATA", &diag);
    uint8_t report[SNP_REPORT_SIZE];
    snp_report_encode(&r, report);
    sign_report(report);
    issuance_certify_request rq = {
        .ek_public = env.vm[i].ek_pub,
        .ek_public_len = env.vm[i].ek_pub_len,
        .kbs_key = env.kbs_der,
        .kbs_key_len = env.kbs_der_len,
        .resource = env.vm[i].resource,
        .format = "x509",
        .nonce = nonce,
        .nonce_len = sizeof(nonce),
        .report = report,
        .report_len = sizeof(report),
    };
    if (ca_client_certify(cc, &rq, certs, &diag) != VTPMCA_OK) {
        snprintf(c->error, sizeof(c->error), "%s", diag.msg);
        return false;
    }
    return true;
}

static void *client_run(void *arg)
{
    client *c = arg;
    ca_client *cc = NULL;
    if (ca_client_new(env.base_url, ISSUANCE_ENC_CBOR, 0, &cc, NULL) != VTPMCA_OK)
        die("ca client", NULL);
    if (c->check_first) {
        ca_certificates certs;
        vtpmca_diag diag = {{0}};
        if (!certify_once(cc, c, &certs))
            die(c->error, NULL);
        c->next = 0;
        const uint8_t *const chain[2] = {certs.chain[0], certs.chain[1]};
        if (ca_certificate_check(certs.format, certs.ek_cert, certs.ek_cert_len, chain,
                                 certs.chain_len, env.vm[c->index].ek_pub,
                                 env.vm[c->index].ek_pub_len, NULL, NULL, &diag) != VTPMCA_OK)
            die("the issued certificate does not check", &diag);
        ca_certificates_free(&certs);
    }
    double end = vt_bench_now_s() + c->seconds;
    while (vt_bench_now_s() < end) {
        ca_certificates certs;
        if (certify_once(cc, c, &certs))
            c->issued++;
        else
            c->failed++;
        ca_certificates_free(&certs);
    }
    ca_client_free(cc);
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
        .clients = 8, .seconds = 6, .server_threads = cpus > 0 ? (unsigned)cpus : 2};
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
    make_pool((size_t)(opt.seconds * 1500) + 1000, opt.server_threads);

    vt_bench_floor_totals floor = {0};
    floor_round(&in, opt.server_threads, FLOOR_S, &floor);

    client clients[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    double cpu0 = vt_bench_process_cpu_s(env.pid), start = vt_bench_now_s();
    for (unsigned i = 0; i < opt.clients; i++) {
        clients[i] = (client){
            .seconds = opt.seconds, .index = i, .stride = opt.clients, .check_first = i == 0};
        pthread_create(&tids[i], NULL, client_run, &clients[i]);
    }
    uint64_t issued = 0, failed = 0;
    const char *error = NULL;
    for (unsigned i = 0; i < opt.clients; i++) {
        pthread_join(tids[i], NULL);
        issued += clients[i].issued;
        failed += clients[i].failed;
        if (clients[i].failed > 0 && error == NULL)
            error = clients[i].error;
    }
    double elapsed = vt_bench_now_s() - start, daemon_cpu = vt_bench_process_cpu_s(env.pid) - cpu0;
    floor_round(&in, opt.server_threads, FLOOR_S, &floor);

    double rate = (double)issued / elapsed;
    double floor_rate = (double)floor.done / floor.seconds;
    double ratio = rate / floor_rate;
    printf("issued        %llu certificates in %.2f s: %.0f certificates/s (%llu failed)\n",
           (unsigned long long)issued, elapsed, rate, (unsigned long long)failed);
    if (error != NULL)
        printf("              first failure: %s\n", error);
    printf("crypto floor  %.0f/s on %u threads (P-384 report verify + P-384 CA signature), "
           "%.3f ms CPU each\n",
           floor_rate, opt.server_threads, floor.cpu_s * 1000.0 / (double)floor.done);
    printf("daemon CPU    %.3f ms per certificate (%.0f%% of it is the floor's crypto)\n",
           issued > 0 ? daemon_cpu * 1000.0 / (double)issued : 0.0,
           issued > 0 && daemon_cpu > 0
               ? 100.0 * (floor.cpu_s / (double)floor.done) / (daemon_cpu / (double)issued)
               : 0.0);
    if (atomic_load(&env.pool.misses) > 0)
        printf("note          %llu report signatures were not precomputed\n",
               (unsigned long long)atomic_load(&env.pool.misses));
    printf("ratio         %.0f%% of the floor (goal >= %.0f%%): %s\n", 100.0 * ratio,
           100.0 * GOAL_RATIO, ratio >= GOAL_RATIO && failed == 0 ? "MET" : "NOT MET");

    stop_daemon();
    free_pool();
    EVP_PKEY_free(in.vcek_public);
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
