/* Benchmark: full SEV-SNP report verifications per second per core with a warm VCEK cache,
 * against the floor of OpenSSL's raw ECDSA P-384/SHA-384 verify of the same 672 bytes with
 * the same key. Goal: warm >= 90% of the floor. Also measures the cold path (a new verifier
 * per report, VCEK from the store, chain verified each time) for information.
 *
 * Usage: bench_snp_verify [--threads N] [--seconds S] [--reports N] [--json]
 *                         [--fail-below-goal]
 * Uses a TEST root made on the fly (snp_testsigner), never AMD's keys. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/bench_util.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

#define GOAL_RATIO 0.90
#define REPORT_VERSION 3
#define ROOT_RSA_BITS 2048 /* the root only matters for the cold path; 4096 is slow to make */
/* The floor and the warm phase alternate in short rounds so background load hits both alike. */
#define ROUNDS 10

typedef struct {
    unsigned threads;
    double seconds; /* per phase */
    unsigned n_reports;
    bool json;
    bool fail_below_goal;
} bench_options;

typedef struct {
    uint8_t (*reports)[SNP_REPORT_SIZE];
    unsigned n_reports;
    unsigned char **sig_der; /* per report, for the floor */
    int *sig_der_len;
    EVP_PKEY *vcek_public;
    EVP_MD *sha384;
    snp_roots *roots;
    store *store;
    snp_verifier *warm;
} bench_ctx;

/* One verification of report `index`; returns true when it verified. */
typedef bool (*bench_op)(bench_ctx *ctx, unsigned index);

typedef struct {
    const char *name;
    double rate;  /* verifications per wall-clock second, summed over threads */
    double cpu_s; /* CPU time the worker threads used */
    uint64_t ops;
    double *latency_us; /* every sample of every round */
    size_t n_latency, cap_latency;
    bool failed;
} phase_result;

typedef struct {
    bench_ctx *ctx;
    bench_op op;
    unsigned first_report;
    const atomic_bool *stop;
    uint64_t ops;
    double elapsed_s, cpu_s;
    double *latency_us;
    size_t n_latency, cap_latency;
    bool failed;
} worker;

/* ---- The three operations ---- */

static bool op_openssl_floor(bench_ctx *ctx, unsigned index)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL &&
              EVP_DigestVerifyInit(md, NULL, ctx->sha384, NULL, ctx->vcek_public) == 1 &&
              EVP_DigestVerify(md, ctx->sig_der[index], (size_t)ctx->sig_der_len[index],
                               ctx->reports[index], SNP_REPORT_SIGNED_SIZE) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static bool op_verify_warm(bench_ctx *ctx, unsigned index)
{
    snp_evidence evidence;
    return snp_verifier_verify(ctx->warm, ctx->reports[index], SNP_REPORT_SIZE, NULL, 0, 0,
                               &evidence, NULL) == VTPMCA_OK;
}

static bool op_verify_cold(bench_ctx *ctx, unsigned index)
{
    snp_verifier_config config = {.roots = ctx->roots, .store = ctx->store};
    snp_verifier *verifier = NULL;
    snp_evidence evidence;
    bool ok = snp_verifier_new(&config, &verifier, NULL) == VTPMCA_OK &&
              snp_verifier_verify(verifier, ctx->reports[index], SNP_REPORT_SIZE, NULL, 0, 0,
                                  &evidence, NULL) == VTPMCA_OK;
    snp_verifier_free(verifier);
    return ok;
}

/* ---- Running a phase ---- */

static bool push_latency(double **samples, size_t *n, size_t *cap, double value)
{
    if (*n == *cap) {
        size_t bigger = *cap ? *cap * 2 : 4096;
        double *grown = realloc(*samples, bigger * sizeof(**samples));
        if (grown == NULL)
            return false;
        *samples = grown;
        *cap = bigger;
    }
    (*samples)[(*n)++] = value;
    return true;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    unsigned index = w->first_report;
    double start = vt_bench_now_s(), cpu_start = vt_bench_thread_cpu_s();
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        double t0 = vt_bench_now_s();
        bool ok = w->op(w->ctx, index);
        double t1 = vt_bench_now_s();
        if (!ok || !push_latency(&w->latency_us, &w->n_latency, &w->cap_latency, (t1 - t0) * 1e6)) {
            w->failed = true;
            break;
        }
        w->ops++;
        index = (index + 1) % w->ctx->n_reports;
    }
    w->elapsed_s = vt_bench_now_s() - start;
    w->cpu_s = vt_bench_thread_cpu_s() - cpu_start;
    return NULL;
}

/* Runs `op` on `threads` threads for `seconds`; adds the round's rate divided by `rounds` (so
 * a phase's rate is the mean over its rounds) and its latency samples to *result. */
static bool run_round(bench_ctx *ctx, bench_op op, unsigned threads, double seconds,
                      unsigned rounds, phase_result *result)
{
    worker *workers = calloc(threads, sizeof(*workers));
    pthread_t *tids = calloc(threads, sizeof(*tids));
    atomic_bool stop = false;
    unsigned started = 0;
    bool ok = workers != NULL && tids != NULL;
    for (unsigned t = 0; ok && t < threads; t++) {
        workers[t] = (worker){
            .ctx = ctx, .op = op, .first_report = (t * ctx->n_reports) / threads, .stop = &stop};
        ok = pthread_create(&tids[t], NULL, worker_main, &workers[t]) == 0;
        started += ok;
    }
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (ok && nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
    atomic_store(&stop, true);
    for (unsigned t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        worker *w = &workers[t];
        ok = ok && !w->failed;
        result->ops += w->ops;
        result->cpu_s += w->cpu_s;
        if (w->elapsed_s > 0)
            result->rate += (double)w->ops / w->elapsed_s / rounds;
        for (size_t i = 0; ok && i < w->n_latency; i++)
            ok = push_latency(&result->latency_us, &result->n_latency, &result->cap_latency,
                              w->latency_us[i]);
        free(w->latency_us);
    }
    free(tids);
    free(workers);
    result->failed = result->failed || !ok;
    return ok;
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const phase_result *result, unsigned percent)
{
    if (result->n_latency == 0)
        return 0;
    size_t rank = (result->n_latency * percent + 99) / 100;
    return result->latency_us[rank > 0 ? rank - 1 : 0];
}

/* ---- Setup ---- */

static const snp_tcb bench_tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};

static bool fail_setup(const char *step, const vtpmca_diag *diag)
{
    fprintf(stderr, "bench_snp_verify: %s failed: %s\n", step, diag ? diag->msg : "");
    return false;
}

/* Signs n_reports distinct reports (report_data differs) from one chip and TCB, and prepares
 * the DER signature of each for the floor. */
static bool make_reports(bench_ctx *ctx, EVP_PKEY *key, const uint8_t chip_id[64])
{
    vtpmca_diag diag = {{0}};
    ctx->reports = calloc(ctx->n_reports, sizeof(*ctx->reports));
    ctx->sig_der = calloc(ctx->n_reports, sizeof(*ctx->sig_der));
    ctx->sig_der_len = calloc(ctx->n_reports, sizeof(*ctx->sig_der_len));
    if (ctx->reports == NULL || ctx->sig_der == NULL || ctx->sig_der_len == NULL)
        return fail_setup("allocation", NULL);
    for (unsigned i = 0; i < ctx->n_reports; i++) {
        snp_report report;
        if (snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, REPORT_VERSION, chip_id,
                                     &bench_tcb) != VTPMCA_OK)
            return fail_setup("report defaults", NULL);
        memcpy(report.report_data, &i, sizeof(i));
        if (snp_test_report_sign(&report, key, ctx->reports[i], &diag) != VTPMCA_OK)
            return fail_setup("report signing", &diag);
        ECDSA_SIG *sig = ECDSA_SIG_new();
        BIGNUM *r = BN_lebin2bn(report.sig_r, sizeof(report.sig_r), NULL);
        BIGNUM *s = BN_lebin2bn(report.sig_s, sizeof(report.sig_s), NULL);
        bool ok = sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1;
        if (!ok) {
            BN_free(r);
            BN_free(s);
        }
        ctx->sig_der_len[i] = ok ? i2d_ECDSA_SIG(sig, &ctx->sig_der[i]) : -1;
        ECDSA_SIG_free(sig);
        if (ctx->sig_der_len[i] <= 0)
            return fail_setup("signature encoding", NULL);
    }
    return true;
}

/* Test root saved to dir and trusted from there (as an operator would), a VCEK in a store in
 * dir, the reports, and a verifier whose cache is warm. */
static bool setup(bench_ctx *ctx, const char *dir)
{
    vtpmca_diag diag = {{0}};
    snp_test_root *root = NULL;
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    X509 *cert = NULL;
    uint64_t tcb_raw = 0;
    char db_path[4096];
    bool ok = false;
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK, .tcb = bench_tcb};
    for (size_t i = 0; i < sizeof(params.chip_id); i++)
        params.chip_id[i] = (uint8_t)(0xA5 ^ (i * 7));
    snprintf(db_path, sizeof(db_path), "%s/bench.db", dir);

    if (snp_test_root_new(SNP_PRODUCT_MILAN, ROOT_RSA_BITS, &root, &diag) != VTPMCA_OK ||
        snp_test_issue_cert(root, &params, &key, &der, &der_len, &diag) != VTPMCA_OK ||
        snp_test_root_save(root, dir, &diag) != VTPMCA_OK) {
        fail_setup("test root", &diag);
        goto out;
    }
    if (snp_roots_new_empty(&ctx->roots) != VTPMCA_OK ||
        snp_roots_add_dir(ctx->roots, dir, &diag) != VTPMCA_OK) {
        fail_setup("trusting the test root", &diag);
        goto out;
    }
    if (snp_tcb_encode(&bench_tcb, SNP_PRODUCT_MILAN, &tcb_raw) != VTPMCA_OK ||
        store_open(db_path, &ctx->store, &diag) != VTPMCA_OK ||
        store_vcek_put(ctx->store, snp_product_name(SNP_PRODUCT_MILAN), "vcek", params.chip_id,
                       tcb_raw, der, der_len, "import", &diag) != VTPMCA_OK) {
        fail_setup("store", &diag);
        goto out;
    }
    const unsigned char *der_cursor = der; /* d2i_X509 advances it */
    ctx->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    cert = d2i_X509(NULL, &der_cursor, (long)der_len);
    ctx->vcek_public = cert != NULL ? X509_get_pubkey(cert) : NULL;
    if (ctx->sha384 == NULL || ctx->vcek_public == NULL) {
        fail_setup("VCEK public key", NULL);
        goto out;
    }
    if (!make_reports(ctx, key, params.chip_id))
        goto out;

    snp_verifier_config config = {.roots = ctx->roots, .store = ctx->store};
    if (snp_verifier_new(&config, &ctx->warm, &diag) != VTPMCA_OK) {
        fail_setup("verifier", &diag);
        goto out;
    }
    /* Warm the cache: the first report finds the VCEK in the store, the rest in the cache. */
    for (unsigned i = 0; i < ctx->n_reports; i++) {
        snp_evidence evidence;
        if (snp_verifier_verify(ctx->warm, ctx->reports[i], SNP_REPORT_SIZE, NULL, 0, 0, &evidence,
                                &diag) != VTPMCA_OK) {
            fail_setup("warm-up verification", &diag);
            goto out;
        }
    }
    ok = true;
out:
    X509_free(cert);
    free(der);
    EVP_PKEY_free(key);
    snp_test_root_free(root);
    return ok;
}

static void bench_ctx_free(bench_ctx *ctx)
{
    snp_verifier_free(ctx->warm);
    store_close(ctx->store);
    snp_roots_free(ctx->roots);
    for (unsigned i = 0; ctx->sig_der != NULL && i < ctx->n_reports; i++)
        OPENSSL_free(ctx->sig_der[i]);
    free(ctx->sig_der);
    free(ctx->sig_der_len);
    free(ctx->reports);
    EVP_PKEY_free(ctx->vcek_public);
    EVP_MD_free(ctx->sha384);
}

/* Removes the temporary directory and the files the root and the store left in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        const struct dirent *entry;
        while ((entry = readdir(d)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- Options and output ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bench_snp_verify [--threads N] [--seconds S] [--reports N] [--json]\n"
            "                        [--fail-below-goal]\n\n"
            "Measures SEV-SNP report verifications per second per core against OpenSSL's raw\n"
            "P-384 ECDSA verify of the same bytes (the floor); goal: warm >= %.0f%% of it.\n"
            "Uses a TEST root made on the fly, never AMD keys.\n\n"
            "  --threads N        worker threads per phase (default: number of cores)\n"
            "  --seconds S        seconds per phase (default 2)\n"
            "  --reports N        distinct signed reports, one chip and TCB (default 64)\n"
            "  --json             machine-readable output\n"
            "  --fail-below-goal  exit 1 when the warm rate is below the goal\n",
            GOAL_RATIO * 100);
}

static bool parse_unsigned(const char *text, unsigned min, unsigned max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = (unsigned)value;
    return true;
}

static int parse_options(int argc, char **argv, bench_options *opt)
{
    static const struct option longopts[] = {{"threads", required_argument, NULL, 't'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"reports", required_argument, NULL, 'r'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"fail-below-goal", no_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *opt = (bench_options){
        .threads = cores > 0 ? (unsigned)cores : 1, .seconds = 2.0, .n_reports = 64};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 't':
            if (!parse_unsigned(optarg, 1, 256, &opt->threads))
                goto bad;
            break;
        case 's':
            opt->seconds = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(opt->seconds >= 0.1 && opt->seconds <= 60))
                goto bad;
            break;
        case 'r':
            if (!parse_unsigned(optarg, 1, 4096, &opt->n_reports))
                goto bad;
            break;
        case 'j':
            opt->json = true;
            break;
        case 'f':
            opt->fail_below_goal = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_snp_verify: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return -1;
bad:
    fprintf(stderr,
            "bench_snp_verify: bad option or value at '%s' (threads 1..256, seconds 0.1..60, "
            "reports 1..4096; see --help)\n",
            argv[optind - 1]);
    return 2;
}

/* Verifications per second of CPU time: what one fully used core does, and unlike the wall
 * rate not skewed by other processes taking turns on the cores. */
static double per_core_rate(const phase_result *phase)
{
    return phase->cpu_s > 0 ? (double)phase->ops / phase->cpu_s : 0;
}

static void print_text(const bench_options *opt, unsigned cores, phase_result *phases[3],
                       double ratio, bool pass, const snp_verifier_stats *stats)
{
    printf("SEV-SNP verification benchmark: TEST root, Milan v%d reports (%u distinct, one chip),\n"
           "%u thread(s) on %u core(s), %.1f s per phase\n\n",
           REPORT_VERSION, opt->n_reports, opt->threads, cores, opt->seconds);
    printf("%-44s %12s %12s %10s %10s\n", "phase", "verifies/s", "per core/s", "p50 us", "p99 us");
    for (int i = 0; i < 3; i++)
        printf("%-44s %12.1f %12.1f %10.1f %10.1f\n", phases[i]->name, phases[i]->rate,
               per_core_rate(phases[i]), percentile(phases[i], 50), percentile(phases[i], 99));
    printf("\nper core/s = verifications per CPU-second of the worker threads.\n");
    printf("warm / floor per core: %.1f%% (goal >= %.0f%%): %s\n", ratio * 100, GOAL_RATIO * 100,
           pass ? "PASS" : "BELOW GOAL");
    printf("warm verifier cache: %llu hits, %llu misses, %llu store hits\n",
           (unsigned long long)stats->cache_hits, (unsigned long long)stats->cache_misses,
           (unsigned long long)stats->store_hits);
}

static void print_json(const bench_options *opt, unsigned cores, phase_result *phases[3],
                       double ratio, bool pass, const snp_verifier_stats *stats)
{
    static const char *const keys[3] = {"openssl_floor", "verify_warm", "verify_cold"};
    printf("{\"threads\": %u, \"cores\": %u, \"seconds_per_phase\": %.3f, \"reports\": %u,\n",
           opt->threads, cores, opt->seconds, opt->n_reports);
    printf(" \"phases\": {\n");
    for (int i = 0; i < 3; i++)
        printf("  \"%s\": {\"verifies_per_s\": %.1f, \"per_core_per_s\": %.1f, \"ops\": %llu, "
               "\"p50_us\": %.1f, \"p99_us\": %.1f}%s\n",
               keys[i], phases[i]->rate, per_core_rate(phases[i]),
               (unsigned long long)phases[i]->ops, percentile(phases[i], 50),
               percentile(phases[i], 99), i < 2 ? "," : "");
    printf(" },\n \"warm_over_floor\": %.4f, \"goal\": %.2f, \"pass\": %s,\n", ratio, GOAL_RATIO,
           pass ? "true" : "false");
    printf(" \"warm_cache\": {\"hits\": %llu, \"misses\": %llu, \"store_hits\": %llu}}\n",
           (unsigned long long)stats->cache_hits, (unsigned long long)stats->cache_misses,
           (unsigned long long)stats->store_hits);
}

int main(int argc, char **argv)
{
    bench_options opt;
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cores = online > 0 && (unsigned)online < opt.threads ? (unsigned)online : opt.threads;

    char dir[] = "/tmp/bench_snp_verify.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench_snp_verify: cannot create a temporary directory: %s\n",
                strerror(errno));
        return 1;
    }
    bench_ctx ctx = {.n_reports = opt.n_reports};
    phase_result floor_phase = {.name = "(a) OpenSSL P-384 ECDSA verify (floor)"};
    phase_result warm = {.name = "(b) snp_verifier_verify, warm cache"};
    phase_result cold = {.name = "(c) snp_verifier_verify, cold (info)"};
    phase_result *phases[3] = {&floor_phase, &warm, &cold};
    bool ok = setup(&ctx, dir);
    snp_verifier_stats before = {0}, after = {0};
    if (ok)
        snp_verifier_get_stats(ctx.warm, &before);
    /* Alternate which phase goes first so a trend in background load favours neither. */
    for (int round = 0; ok && round < ROUNDS; round++) {
        phase_result *first = round % 2 ? &warm : &floor_phase;
        phase_result *second = round % 2 ? &floor_phase : &warm;
        ok = run_round(&ctx, first == &warm ? op_verify_warm : op_openssl_floor, opt.threads,
                       opt.seconds / ROUNDS, ROUNDS, first) &&
             run_round(&ctx, second == &warm ? op_verify_warm : op_openssl_floor, opt.threads,
                       opt.seconds / ROUNDS, ROUNDS, second);
    }
    if (ok)
        ok = run_round(&ctx, op_verify_cold, opt.threads, opt.seconds, 1, &cold);
    if (ok) {
        snp_verifier_get_stats(ctx.warm, &after);
        snp_verifier_stats delta = {
            after.cache_hits - before.cache_hits, after.cache_misses - before.cache_misses,
            after.store_hits - before.store_hits, after.kds_fetches - before.kds_fetches};
        for (int i = 0; i < 3; i++)
            qsort(phases[i]->latency_us, phases[i]->n_latency, sizeof(double), vt_bench_cmp_double);
        double floor_rate = per_core_rate(&floor_phase);
        double ratio = floor_rate > 0 ? per_core_rate(&warm) / floor_rate : 0;
        bool pass = ratio >= GOAL_RATIO;
        if (opt.json)
            print_json(&opt, cores, phases, ratio, pass, &delta);
        else
            print_text(&opt, cores, phases, ratio, pass, &delta);
        rc = opt.fail_below_goal && !pass ? 1 : 0;
    } else {
        fprintf(stderr, "bench_snp_verify: %s\n",
                floor_phase.failed || warm.failed || cold.failed
                    ? "a verification failed during the run"
                    : "setup failed");
        rc = 1;
    }
    for (int i = 0; i < 3; i++)
        free(phases[i]->latency_us);
    bench_ctx_free(&ctx);
    remove_dir(dir);
    return rc;
}
