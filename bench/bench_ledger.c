/* Benchmark of the rollback ledger engine (group commit, no HTTP).
 *
 * 1. Measures this machine's fsync rate: append 4 KiB + fsync in a loop for about a second,
 *    on a file in the directory that will hold the database. That is the ceiling of a design
 *    that fsyncs once per advance.
 * 2. Runs N threads that each advance their own instances as fast as the ledger acknowledges
 *    (every advance durable before it returns) for a few seconds, and prints durable advances
 *    per second, p50/p99 latency, the average batch per commit, and the ratio to the fsync
 *    rate.
 *
 * Usage: bench_ledger [--threads N] [--seconds S] [--instances N] [--dir DIR]
 * Without --dir a fresh directory is made (and removed) in the current directory. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/bench_util.h"
#include "vtpmca/ledger.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"

enum { GOAL_PER_SECOND = 20000, GOAL_P99_US = 10000 };

struct options {
    unsigned threads;
    double seconds;
    unsigned instances;
    const char *dir;
};

struct worker {
    ledger *l;
    unsigned index, threads, instances;
    atomic_bool *stop;
    uint32_t *latencies_us; /* one per acknowledged advance */
    size_t count, cap;
    uint64_t failures;
    char failure[256];
    pthread_t thread;
};

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){64, 3.0, 1024, NULL};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(arg, "--threads") == 0 && value != NULL) {
            unsigned long v = strtoul(value, &end, 10);
            if (*end != '\0' || v < 1 || v > 4096)
                return -1;
            o->threads = (unsigned)v;
        } else if (strcmp(arg, "--seconds") == 0 && value != NULL) {
            o->seconds = strtod(value, &end);
            if (*end != '\0' || !(o->seconds > 0 && o->seconds <= 600))
                return -1;
        } else if (strcmp(arg, "--instances") == 0 && value != NULL) {
            unsigned long v = strtoul(value, &end, 10);
            if (*end != '\0' || v < 1 || v > 10000000)
                return -1;
            o->instances = (unsigned)v;
        } else if (strcmp(arg, "--dir") == 0 && value != NULL) {
            o->dir = value;
        } else {
            return -1;
        }
        i++;
    }
    if (o->instances < o->threads)
        o->instances = o->threads; /* every thread owns at least one instance */
    return 0;
}

static void instance_id(unsigned i, char *out, size_t size)
{
    snprintf(out, size, "bench-%u", i);
}

static void *advance_loop(void *arg)
{
    struct worker *w = arg;
    unsigned owned = 0;
    for (unsigned i = w->index; i < w->instances; i += w->threads)
        owned++;
    /* Counters start 1000 below 2^128 so that they wrap during the run. */
    uint8_t(*current)[LEDGER_COUNTER_LEN] = calloc(owned, sizeof(*current));
    if (current == NULL) {
        w->failures++;
        snprintf(w->failure, sizeof(w->failure), "out of memory");
        return NULL;
    }
    for (unsigned s = 0; s < owned; s++) {
        memset(current[s], 0xff, LEDGER_COUNTER_LEN);
        current[s][LEDGER_COUNTER_LEN - 2] = 0xfc; /* 2^128 - 769 */
    }
    uint8_t root[32] = {0};
    for (unsigned n = 0; !atomic_load_explicit(w->stop, memory_order_relaxed); n++) {
        unsigned slot = n % owned;
        unsigned inst = w->index + slot * w->threads;
        uint8_t *counter = current[slot];
        ledger_counter_increment(counter);
        memcpy(root, counter, LEDGER_COUNTER_LEN); /* a root per (instance, counter) */
        memcpy(root + LEDGER_COUNTER_LEN, &inst, sizeof(inst));
        char id[32];
        instance_id(inst, id, sizeof(id));

        ledger_result res;
        vtpmca_diag diag = {{0}};
        double t0 = vt_bench_now_s();
        vtpmca_err err = ledger_advance(w->l, id, counter, root, sizeof(root), &res, &diag);
        double t1 = vt_bench_now_s();
        if (err != VTPMCA_OK || res.outcome != LEDGER_ACCEPTED) {
            if (w->failures++ == 0)
                snprintf(w->failure, sizeof(w->failure), "%s", diag.msg);
            continue;
        }
        if (w->count == w->cap) {
            size_t cap = w->cap == 0 ? 4096 : w->cap * 2;
            uint32_t *bigger = realloc(w->latencies_us, cap * sizeof(*bigger));
            if (bigger == NULL) {
                w->failures++;
                break;
            }
            w->latencies_us = bigger;
            w->cap = cap;
        }
        double us = (t1 - t0) * 1e6;
        w->latencies_us[w->count++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
    free(current);
    return NULL;
}

static void remove_db_files(const char *dir)
{
    const char *names[] = {"ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
}

static int run(const struct options *o, const char *dir)
{
    double fsync_rate = 0;
    vtpmca_diag why = {{0}};
    if (vt_bench_fsync_rate(dir, &fsync_rate, &why) != VTPMCA_OK) {
        fprintf(stderr, "bench_ledger: %s\n", why.msg);
        return 1;
    }
    printf("fsync rate:          %.0f /s (append 4 KiB + fsync, %.3f ms each) in %s\n", fsync_rate,
           1000.0 / fsync_rate, dir);

    char db_path[4096];
    snprintf(db_path, sizeof(db_path), "%s/ledger.sqlite", dir);
    remove_db_files(dir);
    store *st = NULL;
    ledger *l = NULL;
    vtpmca_diag diag = {{0}};
    if (store_open(db_path, &st, &diag) != VTPMCA_OK) {
        fprintf(stderr, "bench_ledger: %s\n", diag.msg);
        return 1;
    }
    ledger_config cfg = {.store = st};
    if (ledger_open(&cfg, &l, &diag) != VTPMCA_OK) {
        fprintf(stderr, "bench_ledger: %s\n", diag.msg);
        store_close(st);
        return 1;
    }

    atomic_bool stop = false;
    struct worker *workers = calloc(o->threads, sizeof(*workers));
    if (workers == NULL) {
        ledger_close(l);
        store_close(st);
        return 1;
    }
    ledger_stats before;
    ledger_get_stats(l, &before);
    double start = vt_bench_now_s();
    unsigned started = 0;
    for (unsigned t = 0; t < o->threads; t++) {
        workers[t] = (struct worker){
            .l = l, .index = t, .threads = o->threads, .instances = o->instances, .stop = &stop};
        if (pthread_create(&workers[t].thread, NULL, advance_loop, &workers[t]) != 0)
            break;
        started++;
    }
    while (vt_bench_now_s() - start < o->seconds && started == o->threads)
        usleep(20000);
    atomic_store(&stop, true);
    for (unsigned t = 0; t < started; t++)
        pthread_join(workers[t].thread, NULL);
    double elapsed = vt_bench_now_s() - start;
    ledger_stats after;
    ledger_get_stats(l, &after);
    ledger_close(l);
    store_close(st);

    size_t total = 0;
    uint64_t failures = 0;
    for (unsigned t = 0; t < started; t++) {
        total += workers[t].count;
        if (workers[t].failures > 0 && failures == 0)
            fprintf(stderr, "bench_ledger: advance failed: %s\n", workers[t].failure);
        failures += workers[t].failures;
    }
    uint32_t *all = malloc((total > 0 ? total : 1) * sizeof(*all));
    int rc = 1;
    if (all != NULL && total > 0 && started == o->threads) {
        size_t pos = 0;
        for (unsigned t = 0; t < started; t++) {
            memcpy(all + pos, workers[t].latencies_us, workers[t].count * sizeof(*all));
            pos += workers[t].count;
        }
        qsort(all, total, sizeof(*all), vt_bench_cmp_u32);
        uint32_t p50 = all[total / 2], p99 = all[(total * 99) / 100], max = all[total - 1];
        double rate = (double)total / elapsed;
        uint64_t commits = after.commits - before.commits;
        uint64_t batched = after.batched_requests - before.batched_requests;
        uint64_t batches = after.batches - before.batches;
        printf("ledger load:         %u threads, %u instances, %.1f s, sqlite WAL "
               "synchronous=FULL\n",
               o->threads, o->instances, elapsed);
        printf("durable advances/s:  %.0f (%zu acknowledged, %llu failed)\n", rate, total,
               (unsigned long long)failures);
        printf("latency:             p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50 / 1000.0,
               p99 / 1000.0, max / 1000.0);
        printf("commits:             %.0f /s, average batch %.1f advances (largest %llu)\n",
               (double)commits / elapsed, batches > 0 ? (double)batched / (double)batches : 0.0,
               (unsigned long long)after.max_batch);
        printf("ratio to fsync rate: %.1fx\n", rate / fsync_rate);
        bool met = rate >= GOAL_PER_SECOND && p99 < GOAL_P99_US && failures == 0;
        printf("goal (>= %d/s, p99 < %d ms): %s\n", GOAL_PER_SECOND, GOAL_P99_US / 1000,
               met ? "met" : "NOT met");
        rc = failures == 0 ? 0 : 1;
    } else {
        fprintf(stderr, "bench_ledger: no advance was acknowledged\n");
    }
    free(all);
    for (unsigned t = 0; t < o->threads; t++)
        free(workers[t].latencies_us);
    free(workers);
    remove_db_files(dir);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_ledger [--threads N (64)] [--seconds S (3)] "
                        "[--instances N (1024)] [--dir DIR]\n");
        return 2;
    }
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    char made[] = "bench-ledger-XXXXXX";
    const char *dir = o.dir;
    if (dir == NULL) {
        if (mkdtemp(made) == NULL) {
            fprintf(stderr, "bench_ledger: cannot make a directory here: %s\n", strerror(errno));
            return 1;
        }
        dir = made;
    }
    int rc = run(&o, dir);
    if (o.dir == NULL)
        rmdir(made);
    return rc;
}
