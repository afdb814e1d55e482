/* Shared by the bench programs: clocks, a vtpmcad child, the crypto-floor rounds, a pool of
 * precomputed ECDSA nonces for signing SNP reports, and sort comparators. */
#ifndef VTPMCA_BENCH_UTIL_H
#define VTPMCA_BENCH_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/store.h"

/* Monotonic wall time, the calling thread's CPU time and this process's CPU time (user +
 * system), in seconds. */
double vt_bench_now_s(void);
double vt_bench_thread_cpu_s(void);
double vt_bench_self_cpu_s(void);
/* utime + stime of process pid (/proc/<pid>/stat fields 14 and 15) in seconds; 0 when
 * unreadable. */
double vt_bench_process_cpu_s(pid_t pid);

/* Appends 4 KiB and fsyncs to <dir>/fsync-probe for about a second: the one-fsync-per-write
 * ceiling of dir's file system, in writes per second. */
vtpmca_err vt_bench_fsync_rate(const char *dir, double *per_second, vtpmca_diag *diag);

/* Spawns vtpmcad (argv[0] is its path; argv must pass "--port-file port_file" and "--port 0")
 * with stderr to log_path (and stdout to /dev/null when quiet_stdout), and waits up to
 * timeout_s for the port file. On failure the child, if any, is killed and reaped. */
vtpmca_err vt_bench_start_vtpmcad(const char *const *argv, const char *log_path, bool quiet_stdout,
                                  const char *port_file, double timeout_s, pid_t *pid,
                                  unsigned *port, vtpmca_diag *diag);
/* SIGTERM and reap; *pid becomes 0. */
void vt_bench_stop_vtpmcad(pid_t *pid);

/* One operation of a crypto floor; false when it failed. */
typedef bool (*vt_bench_floor_op)(const void *in);

typedef struct {
    uint64_t done;  /* operations */
    double seconds; /* wall time */
    double cpu_s;   /* the workers' thread CPU time, which other load does not inflate */
} vt_bench_floor_totals;

#define VT_BENCH_MAX_THREADS 64

/* Runs op(in) in a loop on `threads` (1..VT_BENCH_MAX_THREADS) threads for `seconds`; adds
 * to *totals. false when an operation failed or a thread could not start. */
bool vt_bench_floor_round(vt_bench_floor_op op, const void *in, unsigned threads, double seconds,
                          vt_bench_floor_totals *totals);

/* What every floor verifies: a report signed by the test VCEK, its DER signature and a
 * public-only copy of the VCEK, as the daemon holds it. */
typedef struct {
    uint8_t report[SNP_REPORT_SIZE];
    uint8_t sig_der[128];
    size_t sig_der_len;
    EVP_PKEY *vcek_public;
} vt_bench_floor_report;

/* Signs `fields` with vcek_key (private) into out. */
vtpmca_err vt_bench_floor_report_make(const snp_report *fields, EVP_PKEY *vcek_key,
                                      vt_bench_floor_report *out, vtpmca_diag *diag);
void vt_bench_floor_report_free(vt_bench_floor_report *r);
/* One report signature check (ECDSA P-384, SHA-384), as the verifier makes it. */
bool vt_bench_floor_verify(const vt_bench_floor_report *r);
/* One ECDSA signature with SHA-384 over msg, as the daemon's signers make it. */
bool vt_bench_floor_sign(EVP_PKEY *key, const uint8_t *msg, size_t len);

/* Precomputed (k^-1, r) pairs of a P-384 key, so signing a report in the measured loop costs
 * what an SNP firmware's signature costs the host: nothing. Each pair is used once. */
typedef struct {
    EC_KEY *key;
    BIGNUM **kinv, **r;
    size_t size;
    atomic_size_t next;
    atomic_uint_fast64_t misses; /* signatures made without a pair */
} vt_bench_sign_pool;

/* Fills pool with n pairs for key (referenced, not owned) on `threads` threads. */
vtpmca_err vt_bench_sign_pool_make(vt_bench_sign_pool *pool, EC_KEY *key, size_t n,
                                   unsigned threads, vtpmca_diag *diag);
void vt_bench_sign_pool_free(vt_bench_sign_pool *pool);
/* Signs report's signed part into its signature field with the next pair. */
vtpmca_err vt_bench_sign_report(vt_bench_sign_pool *pool, uint8_t report[SNP_REPORT_SIZE]);

/* A TEST SEV-SNP machine for the KBS and certify benches: a Milan test root (RSA-2048) saved
 * in roots_dir, a VCEK for a random chip id and the TCB bl=3 snp=8 ucode=115, and a version 3
 * report template of that chip whose measurement is all measurement_byte. */
typedef struct {
    EVP_PKEY *vcek_key;
    uint8_t *vcek_der;
    size_t vcek_der_len;
    uint8_t chip_id[64];
    snp_tcb tcb;
    snp_report template;
} vt_bench_platform;

/* On failure *failed_step names the step ("test root", "VCEK", "report template"). */
vtpmca_err vt_bench_platform_make(const char *roots_dir, uint8_t measurement_byte,
                                  vt_bench_platform *out, const char **failed_step,
                                  vtpmca_diag *diag);
void vt_bench_platform_free(vt_bench_platform *platform);

/* Creates <state_dir>/vtpmca.db with the platform's VCEK imported, the fleet "bench"
 * (described as description) and a policy accepting the template's measurement, and
 * <state_dir>/master.key; both are left open for the bench to enroll its instances. */
vtpmca_err vt_bench_store_make(const char *state_dir, const vt_bench_platform *platform,
                               const char *description, store **st, keyvault **vault,
                               vtpmca_diag *diag);

/* qsort comparators, ascending. */
int vt_bench_cmp_double(const void *a, const void *b);
int vt_bench_cmp_u32(const void *a, const void *b);

#endif
