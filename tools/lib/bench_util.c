/* Shared parts of the bench programs (see vtpmca/bench_util.h). */
#define _GNU_SOURCE                 /* environ */
#define OPENSSL_SUPPRESS_DEPRECATED /* ECDSA_sign_setup / ECDSA_do_sign_ex: the signing pool */
#include "vtpmca/bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_testsigner.h"

extern char **environ;

/* Report layout (SEV-SNP ABI): signature r, s little-endian, 72 bytes each, right after the
 * signed part. */
#define SIG_FIELD_LEN 72
#define SIG_R_OFFSET SNP_REPORT_SIGNED_SIZE
#define SIG_S_OFFSET (SNP_REPORT_SIGNED_SIZE + SIG_FIELD_LEN)

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double vt_bench_now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

double vt_bench_thread_cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

double vt_bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double vt_bench_process_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    uint8_t *text = NULL;
    size_t len = 0;
    if (vt_file_read(path, 4096, &text, &len, NULL) != VTPMCA_OK)
        return 0;
    /* Fields after the command name (which may hold spaces) start after the last ')'. */
    const char *p = strrchr((char *)text, ')');
    unsigned long long utime = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        utime = stime = 0;
    free(text);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

vtpmca_err vt_bench_fsync_rate(const char *dir, double *per_second, vtpmca_diag *diag)
{
    if (dir == NULL || per_second == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "fsync rate: missing argument");
    char path[4096];
    int n_path = snprintf(path, sizeof(path), "%s/fsync-probe", dir);
    if (n_path < 0 || (size_t)n_path >= sizeof(path))
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "fsync rate: %s is too long", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    static const char block[4096];
    unsigned long n = 0;
    double start = vt_bench_now_s(), elapsed = 0;
    while (elapsed < 1.0) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fsync(fd) != 0) {
            vtpmca_err err =
                vtpmca_fail(diag, VTPMCA_ERR_IO, "write+fsync failed: %s", strerror(errno));
            close(fd);
            unlink(path);
            return err;
        }
        n++;
        elapsed = vt_bench_now_s() - start;
    }
    close(fd);
    unlink(path);
    *per_second = (double)n / elapsed;
    return VTPMCA_OK;
}

vtpmca_err vt_bench_start_vtpmcad(const char *const *argv, const char *log_path, bool quiet_stdout,
                                  const char *port_file, double timeout_s, pid_t *pid,
                                  unsigned *port, vtpmca_diag *diag)
{
    if (pid != NULL)
        *pid = 0;
    if (argv == NULL || argv[0] == NULL || log_path == NULL || port_file == NULL || pid == NULL ||
        port == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "start vtpmcad: missing argument");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (quiet_stdout)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    pid_t child = 0;
    int rc = posix_spawn(&child, argv[0], &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot start %s: %s (use --vtpmcad PATH)", argv[0],
                           strerror(rc));
    double deadline = vt_bench_now_s() + timeout_s;
    while (vt_bench_now_s() < deadline) {
        uint8_t *text = NULL;
        size_t len = 0;
        if (vt_file_read(port_file, 64, &text, &len, NULL) == VTPMCA_OK &&
            memchr(text, '\n', len) != NULL) {
            *port = (unsigned)strtoul((const char *)text, NULL, 10);
            free(text);
            *pid = child;
            return VTPMCA_OK;
        }
        free(text);
        if (waitpid(child, NULL, WNOHANG) == child)
            return vtpmca_fail(diag, VTPMCA_ERR_IO, "vtpmcad exited during startup; see %s",
                               log_path);
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return vtpmca_fail(diag, VTPMCA_ERR_IO, "vtpmcad did not start: no port in %s", port_file);
}

void vt_bench_stop_vtpmcad(pid_t *pid)
{
    if (pid == NULL || *pid <= 0)
        return;
    kill(*pid, SIGTERM);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

typedef struct {
    vt_bench_floor_op op;
    const void *in;
    double seconds;
    uint64_t done;
    double cpu_s;
    bool failed;
} floor_worker;

static void *floor_run(void *arg)
{
    floor_worker *w = arg;
    double cpu0 = vt_bench_thread_cpu_s(), end = vt_bench_now_s() + w->seconds;
    while (vt_bench_now_s() < end && !w->failed) {
        if (w->op(w->in))
            w->done++;
        else
            w->failed = true;
    }
    w->cpu_s = vt_bench_thread_cpu_s() - cpu0;
    return NULL;
}

bool vt_bench_floor_round(vt_bench_floor_op op, const void *in, unsigned threads, double seconds,
                          vt_bench_floor_totals *totals)
{
    if (op == NULL || totals == NULL || threads == 0 || threads > VT_BENCH_MAX_THREADS)
        return false;
    floor_worker workers[VT_BENCH_MAX_THREADS];
    pthread_t tids[VT_BENCH_MAX_THREADS];
    bool ok = true;
    unsigned started = 0;
    double start = vt_bench_now_s();
    for (; started < threads; started++) {
        workers[started] = (floor_worker){.op = op, .in = in, .seconds = seconds};
        if (pthread_create(&tids[started], NULL, floor_run, &workers[started]) != 0) {
            ok = false;
            break;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        totals->done += workers[i].done;
        totals->cpu_s += workers[i].cpu_s;
        ok = ok && !workers[i].failed;
    }
    totals->seconds += vt_bench_now_s() - start;
    return ok;
}

vtpmca_err vt_bench_floor_report_make(const snp_report *fields, EVP_PKEY *vcek_key,
                                      vt_bench_floor_report *out, vtpmca_diag *diag)
{
    if (fields == NULL || vcek_key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "floor report: missing argument");
    memset(out, 0, sizeof(*out));
    snp_report r = *fields;
    vtpmca_err err = snp_test_report_sign(&r, vcek_key, out->report, diag);
    if (err != VTPMCA_OK)
        return err;
    out->sig_der_len = sizeof(out->sig_der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, vcek_key) == 1 &&
              EVP_DigestSign(md, out->sig_der, &out->sig_der_len, out->report,
                             SNP_REPORT_SIGNED_SIZE) == 1;
    EVP_MD_CTX_free(md);
    /* A public-only copy, as the server holds it. */
    unsigned char *spki = NULL;
    int spki_len = ok ? i2d_PUBKEY(vcek_key, &spki) : -1;
    const unsigned char *p = spki;
    out->vcek_public = spki_len > 0 ? d2i_PUBKEY(NULL, &p, spki_len) : NULL;
    OPENSSL_free(spki);
    if (out->vcek_public == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "floor report: cannot sign or copy the key");
    return VTPMCA_OK;
}

void vt_bench_floor_report_free(vt_bench_floor_report *r)
{
    if (r == NULL)
        return;
    EVP_PKEY_free(r->vcek_public);
    r->vcek_public = NULL;
}

bool vt_bench_floor_verify(const vt_bench_floor_report *r)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, r->vcek_public) == 1 &&
        EVP_DigestVerify(md, r->sig_der, r->sig_der_len, r->report, SNP_REPORT_SIGNED_SIZE) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

bool vt_bench_floor_sign(EVP_PKEY *key, const uint8_t *msg, size_t len)
{
    uint8_t sig[160];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) == 1 &&
              EVP_DigestSign(md, sig, &sig_len, msg, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

typedef struct {
    vt_bench_sign_pool *pool;
    size_t from, to;
    bool failed;
} pool_range;

static void *pool_fill(void *arg)
{
    pool_range *range = arg;
    BN_CTX *ctx = BN_CTX_new();
    for (size_t i = range->from; i < range->to && !range->failed; i++) {
        if (ctx == NULL ||
            ECDSA_sign_setup(range->pool->key, ctx, &range->pool->kinv[i], &range->pool->r[i]) != 1)
            range->failed = true;
    }
    BN_CTX_free(ctx);
    return NULL;
}

vtpmca_err vt_bench_sign_pool_make(vt_bench_sign_pool *pool, EC_KEY *key, size_t n,
                                   unsigned threads, vtpmca_diag *diag)
{
    if (pool == NULL || key == NULL || threads == 0 || threads > VT_BENCH_MAX_THREADS)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "signing pool: bad arguments");
    memset(pool, 0, sizeof(*pool));
    pool->key = key;
    pool->kinv = calloc(n > 0 ? n : 1, sizeof(*pool->kinv));
    pool->r = calloc(n > 0 ? n : 1, sizeof(*pool->r));
    if (pool->kinv == NULL || pool->r == NULL) {
        vt_bench_sign_pool_free(pool);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    pool->size = n;
    pool_range ranges[VT_BENCH_MAX_THREADS];
    pthread_t tids[VT_BENCH_MAX_THREADS];
    unsigned started = 0;
    bool ok = true;
    for (; started < threads; started++) {
        ranges[started] =
            (pool_range){pool, n * started / threads, n * (started + 1) / threads, false};
        if (pthread_create(&tids[started], NULL, pool_fill, &ranges[started]) != 0) {
            ok = false;
            break;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        ok = ok && !ranges[i].failed;
    }
    if (!ok) {
        vt_bench_sign_pool_free(pool);
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "ECDSA_sign_setup");
    }
    return VTPMCA_OK;
}

void vt_bench_sign_pool_free(vt_bench_sign_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->size; i++) {
        BN_clear_free(pool->kinv[i]);
        BN_free(pool->r[i]);
    }
    free(pool->kinv);
    free(pool->r);
    pool->kinv = pool->r = NULL;
    pool->size = 0;
}

vtpmca_err vt_bench_sign_report(vt_bench_sign_pool *pool, uint8_t report[SNP_REPORT_SIZE])
{
    if (pool == NULL || pool->key == NULL || report == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t digest[48];
    if (EVP_Digest(report, SNP_REPORT_SIGNED_SIZE, digest, NULL, EVP_sha384(), NULL) != 1)
        return VTPMCA_ERR_CRYPTO;
    size_t i = atomic_fetch_add(&pool->next, 1);
    ECDSA_SIG *sig = NULL;
    if (i < pool->size) {
        sig = ECDSA_do_sign_ex(digest, sizeof(digest), pool->kinv[i], pool->r[i], pool->key);
    } else {
        atomic_fetch_add(&pool->misses, 1);
        sig = ECDSA_do_sign(digest, sizeof(digest), pool->key);
    }
    bool ok = sig != NULL &&
              BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), report + SIG_R_OFFSET, SIG_FIELD_LEN) >= 0 &&
              BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), report + SIG_S_OFFSET, SIG_FIELD_LEN) >= 0;
    ECDSA_SIG_free(sig);
    return ok ? VTPMCA_OK : VTPMCA_ERR_CRYPTO;
}

vtpmca_err vt_bench_platform_make(const char *roots_dir, uint8_t measurement_byte,
                                  vt_bench_platform *out, const char **failed_step,
                                  vtpmca_diag *diag)
{
    static const char *unused_step;
    if (failed_step == NULL)
        failed_step = &unused_step;
    *failed_step = "arguments";
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (roots_dir == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bench platform: missing argument");
    *failed_step = "test root";
    snp_test_root *root = NULL;
    vtpmca_err err = snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &root, diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_save(root, roots_dir, diag);
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK,
                                   .tcb = {.bootloader = 3, .snp = 8, .microcode = 115}};
    if (err == VTPMCA_OK && RAND_bytes(params.chip_id, sizeof(params.chip_id)) != 1)
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "RAND_bytes failed");
    if (err == VTPMCA_OK) {
        *failed_step = "VCEK";
        err = snp_test_issue_cert(root, &params, &out->vcek_key, &out->vcek_der, &out->vcek_der_len,
                                  diag);
    }
    snp_test_root_free(root);
    if (err == VTPMCA_OK) {
        *failed_step = "report template";
        err = snp_test_report_defaults(&out->template, SNP_PRODUCT_MILAN, 3, params.chip_id,
                                       &params.tcb);
    }
    if (err != VTPMCA_OK) {
        vt_bench_platform_free(out);
        return err;
    }
    memset(out->template.measurement, measurement_byte, sizeof(out->template.measurement));
    memcpy(out->chip_id, params.chip_id, sizeof(out->chip_id));
    out->tcb = params.tcb;
    return VTPMCA_OK;
}

void vt_bench_platform_free(vt_bench_platform *platform)
{
    if (platform == NULL)
        return;
    EVP_PKEY_free(platform->vcek_key);
    free(platform->vcek_der);
    memset(platform, 0, sizeof(*platform));
}

vtpmca_err vt_bench_store_make(const char *state_dir, const vt_bench_platform *platform,
                               const char *description, store **st, keyvault **vault,
                               vtpmca_diag *diag)
{
    if (st != NULL)
        *st = NULL;
    if (vault != NULL)
        *vault = NULL;
    if (state_dir == NULL || platform == NULL || description == NULL || st == NULL || vault == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bench store: missing argument");
    char path[4096], measurement[2 * sizeof(platform->template.measurement) + 1], policy[160];
    uint64_t tcb_raw = 0;
    snp_tcb_encode(&platform->tcb, SNP_PRODUCT_MILAN, &tcb_raw);
    vt_hex_encode(platform->template.measurement, sizeof(platform->template.measurement),
                  measurement, sizeof(measurement));
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", measurement);
    snprintf(path, sizeof(path), "%s/vtpmca.db", state_dir);
    vtpmca_err err = store_open(path, st, diag);
    if (err == VTPMCA_OK)
        err = store_vcek_put(*st, "Milan", "vcek", platform->chip_id, tcb_raw, platform->vcek_der,
                             platform->vcek_der_len, "import", diag);
    if (err == VTPMCA_OK)
        err = store_fleet_create(*st, "bench", description, diag);
    if (err == VTPMCA_OK)
        err = store_policy_put(*st, "bench", policy, "bench", NULL, diag);
    snprintf(path, sizeof(path), "%s/master.key", state_dir);
    if (err == VTPMCA_OK)
        err = keyvault_open(path, true, vault, diag);
    if (err != VTPMCA_OK) {
        keyvault_free(*vault);
        store_close(*st);
        *vault = NULL;
        *st = NULL;
    }
    return err;
}

int vt_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int vt_bench_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
