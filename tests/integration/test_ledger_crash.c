/* Crash safety of the rollback ledger: a child process (this binary re-executed with
 * --crash-child) runs concurrent advances against a sqlite database and reports each advance
 * on a pipe only after ledger_advance acknowledged it. The parent SIGKILLs the child at
 * random moments, many times, and after each kill checks with a fresh store connection that
 * every acknowledged advance is present and that no instance's counter went backwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/ledger.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"

enum {
    INSTANCES = 32,
    CHILD_THREADS = 16, /* each owns INSTANCES / CHILD_THREADS instances */
    ROUNDS = 24,
    RECORD_LEN = 4 + LEDGER_COUNTER_LEN, /* instance index, counter: < PIPE_BUF, so atomic */
    ACK_FD = 3,                          /* where the child writes its acknowledgements */
    MAX_TOTAL_MS = 25000,
};

typedef uint8_t ctr[LEDGER_COUNTER_LEN];

/* ---- Shared by parent and child ---- */

/* Instance i starts at its base counter; even ones just before 2^128, so they wrap. */
static void base_of(unsigned i, ctr out)
{
    uint64_t hi = i % 2 == 0 ? UINT64_MAX : 0x5a5a5a5a00000000ULL + i;
    uint64_t lo = i % 2 == 0 ? UINT64_MAX - 200 - i : 0x0123456789abcdefULL * (i + 1);
    for (int b = 0; b < 8; b++) {
        out[7 - b] = (uint8_t)(hi >> (8 * b));
        out[15 - b] = (uint8_t)(lo >> (8 * b));
    }
}

static void instance_id(unsigned i, char *out, size_t size)
{
    snprintf(out, size, "crash-vm-%02u", i);
}

/* The root the child stores with a counter: lets the parent check that a stored record is a
 * consistent (counter, root) pair. */
static bool root_of(unsigned i, const ctr counter, uint8_t root[32])
{
    uint8_t msg[4 + LEDGER_COUNTER_LEN];
    msg[0] = (uint8_t)(i >> 24);
    msg[1] = (uint8_t)(i >> 16);
    msg[2] = (uint8_t)(i >> 8);
    msg[3] = (uint8_t)i;
    memcpy(msg + 4, counter, LEDGER_COUNTER_LEN);
    unsigned len = 0;
    return EVP_Digest(msg, sizeof(msg), root, &len, EVP_sha256(), NULL) == 1 && len == 32;
}

/* ---- Child ---- */

struct child_worker {
    ledger *l;
    unsigned first;
    ctr current[INSTANCES / CHILD_THREADS];
    bool has_current[INSTANCES / CHILD_THREADS];
};

static void *child_advance_loop(void *arg)
{
    struct child_worker *w = arg;
    for (unsigned n = 0;; n++) {
        unsigned slot = n % (INSTANCES / CHILD_THREADS);
        unsigned inst = w->first + slot * CHILD_THREADS;
        ctr next;
        if (w->has_current[slot]) {
            memcpy(next, w->current[slot], sizeof(ctr));
            ledger_counter_increment(next);
        } else {
            base_of(inst, next);
        }
        uint8_t root[32];
        char id[32];
        instance_id(inst, id, sizeof(id));
        ledger_result res;
        vtpmca_diag diag = {{0}};
        if (!root_of(inst, next, root) ||
            ledger_advance(w->l, id, next, root, sizeof(root), &res, &diag) != VTPMCA_OK ||
            res.outcome != LEDGER_ACCEPTED) {
            fprintf(stderr, "crash child: advance of %s failed: %s\n", id, diag.msg);
            _exit(3);
        }
        memcpy(w->current[slot], next, sizeof(ctr));
        w->has_current[slot] = true;
        uint8_t record[RECORD_LEN] = {(uint8_t)(inst >> 24), (uint8_t)(inst >> 16),
                                      (uint8_t)(inst >> 8), (uint8_t)inst};
        memcpy(record + 4, next, LEDGER_COUNTER_LEN);
        if (write(ACK_FD, record, sizeof(record)) != (ssize_t)sizeof(record))
            _exit(4);
    }
    return NULL;
}

static int child_main(const char *db_path)
{
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    store *st = NULL;
    ledger *l = NULL;
    vtpmca_diag diag = {{0}};
    if (store_open(db_path, &st, &diag) != VTPMCA_OK) {
        fprintf(stderr, "crash child: %s\n", diag.msg);
        return 2;
    }
    ledger_config cfg = {.store = st};
    if (ledger_open(&cfg, &l, &diag) != VTPMCA_OK) {
        fprintf(stderr, "crash child: %s\n", diag.msg);
        return 2;
    }
    static struct child_worker workers[CHILD_THREADS];
    for (unsigned t = 0; t < CHILD_THREADS; t++) {
        workers[t].l = l;
        workers[t].first = t;
        /* Resume from what the ledger holds (the last advance may be durable unacknowledged). */
        for (unsigned s = 0; s < INSTANCES / CHILD_THREADS; s++) {
            char id[32];
            instance_id(t + s * CHILD_THREADS, id, sizeof(id));
            ledger_entry entry;
            vtpmca_err err = ledger_query(l, id, &entry, &diag);
            if (err == VTPMCA_OK) {
                memcpy(workers[t].current[s], entry.counter, sizeof(ctr));
                workers[t].has_current[s] = true;
            } else if (err != VTPMCA_ERR_NOT_FOUND) {
                fprintf(stderr, "crash child: %s\n", diag.msg);
                return 2;
            }
        }
    }
    pthread_t threads[CHILD_THREADS];
    for (unsigned t = 0; t < CHILD_THREADS; t++) {
        if (pthread_create(&threads[t], NULL, child_advance_loop, &workers[t]) != 0)
            return 2;
    }
    for (unsigned t = 0; t < CHILD_THREADS; t++)
        pthread_join(threads[t], NULL); /* never returns: the parent kills us */
    return 0;
}

/* ---- Parent ---- */

struct tracking {
    bool acked[INSTANCES];
    uint64_t acked_k[INSTANCES]; /* latest acknowledged counter, as an offset from the base */
    bool stored[INSTANCES];
    uint64_t stored_k[INSTANCES]; /* what the database held after the previous kill */
    uint64_t total_acked;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The counter's distance from the instance's base; it must fit in 64 bits in this test. */
static uint64_t offset_from_base(unsigned inst, const ctr counter)
{
    ctr base, d;
    base_of(inst, base);
    assert_int_equal(ledger_counter_distance(base, counter, d), VTPMCA_OK);
    uint64_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i < 8)
            assert_int_equal(d[i], 0);
        else
            k = (k << 8) | d[i];
    }
    return k;
}

static void take_record(struct tracking *t, const uint8_t *rec)
{
    unsigned inst =
        ((unsigned)rec[0] << 24) | ((unsigned)rec[1] << 16) | ((unsigned)rec[2] << 8) | rec[3];
    assert_true(inst < INSTANCES);
    uint64_t k = offset_from_base(inst, rec + 4);
    /* Acknowledgements of one instance come from one thread, in order, one step apart (a
     * restarted child continues right after the stored counter). */
    if (t->acked[inst])
        assert_int_equal(k, t->acked_k[inst] + 1);
    else
        assert_int_equal(k, 0);
    t->acked[inst] = true;
    t->acked_k[inst] = k;
    t->total_acked++;
}

/* Reads acknowledgements until the deadline (or EOF when deadline_ms < 0). */
static void read_acks(int fd, struct tracking *t, uint8_t *buf, size_t *have, int64_t deadline_ms)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - mono_ms();
            if (left <= 0)
                return;
            timeout = (int)left;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, timeout);
        if (rc < 0 && errno == EINTR)
            continue;
        assert_true(rc >= 0);
        if (rc == 0)
            continue;
        ssize_t n = read(fd, buf + *have, 4096 - *have);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            return; /* the child is gone and the pipe drained */
        *have += (size_t)n;
        size_t used = 0;
        while (*have - used >= RECORD_LEN) {
            take_record(t, buf + used);
            used += RECORD_LEN;
        }
        memmove(buf, buf + used, *have - used);
        *have -= used;
    }
}

static pid_t start_child(const char *db_path, int *read_fd)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(fcntl(fds[1], F_SETFD, FD_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* dup2 clears close-on-exec on the copy, so only the write end reaches the child. */
        if (dup2(fds[1], ACK_FD) < 0)
            _exit(126);
        execl("/proc/self/exe", "test_ledger_crash", "--crash-child", db_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *read_fd = fds[0];
    return pid;
}

/* After a kill: every acknowledged advance is in the database, nothing went backwards, and
 * each stored counter comes with its own root. */
static void verify_database(const char *db_path, struct tracking *t)
{
    store *st = NULL;
    store_ledger_writer *w = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_open(db_path, &st, &diag);
    if (err != VTPMCA_OK)
        print_error("store_open: %s\n", diag.msg);
    assert_int_equal(err, VTPMCA_OK);
    assert_int_equal(store_ledger_writer_open(st, &w, &diag), VTPMCA_OK);
    for (unsigned i = 0; i < INSTANCES; i++) {
        char id[32];
        instance_id(i, id, sizeof(id));
        store_ledger_state s;
        err = store_ledger_load(w, id, &s, &diag);
        if (err == VTPMCA_ERR_NOT_FOUND) {
            assert_false(t->acked[i]);
            assert_false(t->stored[i]);
            continue;
        }
        assert_int_equal(err, VTPMCA_OK);
        assert_true(s.has_entry);
        ctr base;
        base_of(i, base);
        assert_memory_equal(s.origin, base, sizeof(ctr));
        uint64_t k = offset_from_base(i, s.counter);
        if (t->acked[i] && k < t->acked_k[i])
            fail_msg("%s: acknowledged offset %llu but the database holds %llu", id,
                     (unsigned long long)t->acked_k[i], (unsigned long long)k);
        if (t->stored[i] && k < t->stored_k[i])
            fail_msg("%s: went back from offset %llu to %llu across a restart", id,
                     (unsigned long long)t->stored_k[i], (unsigned long long)k);
        /* Beyond the acknowledged one, at most the single advance in flight may be durable. */
        assert_true(k <= (t->acked[i] ? t->acked_k[i] + 1 : 0));
        uint8_t root[32];
        assert_true(root_of(i, s.counter, root));
        assert_int_equal(s.root_len, sizeof(root));
        assert_memory_equal(s.root, root, sizeof(root));
        t->stored[i] = true;
        t->stored_k[i] = k;
        /* The child resumes from the stored counter, so acknowledgements continue after it. */
        t->acked[i] = true;
        t->acked_k[i] = k;
    }
    store_ledger_writer_close(w);
    store_close(st);
}

static void test_sigkill_never_loses_acknowledged_advances(void **state)
{
    (void)state;
    char dir[] = "/tmp/vtpmca-test-ledger-crash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char db_path[128];
    snprintf(db_path, sizeof(db_path), "%s/ledger.sqlite", dir);

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("    seed %u\n", seed);
    srand(seed);
    struct tracking *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    int64_t start = mono_ms();
    int kills = 0;
    for (int round = 0; round < ROUNDS && mono_ms() - start < MAX_TOTAL_MS; round++) {
        int fd = -1;
        uint64_t acked_before = t->total_acked;
        pid_t pid = start_child(db_path, &fd);
        /* Anywhere from during start-up and recovery to well into the load. */
        int64_t delay = 5 + rand() % 300;
        uint8_t buf[4096];
        size_t have = 0;
        read_acks(fd, t, buf, &have, mono_ms() + delay);
        assert_int_equal(kill(pid, SIGKILL), 0);
        read_acks(fd, t, buf, &have, -1);
        assert_int_equal(have, 0); /* no torn acknowledgement */
        close(fd);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("the child ended by itself (status 0x%x)", status);
        kills++;
        verify_database(db_path, t);
        print_message("    round %2d: killed after %3lld ms, %llu advances acknowledged\n", round,
                      (long long)delay, (unsigned long long)(t->total_acked - acked_before));
    }
    assert_true(kills >= 20);
    /* Not vacuous: the children made real progress between kills. */
    assert_true(t->total_acked >= 1000);
    print_message("    %d kills, %llu acknowledged advances, all present\n", kills,
                  (unsigned long long)t->total_acked);

    free(t);
    char path[200];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s%s", db_path, suffixes[i]);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--crash-child") == 0)
        return child_main(argv[2]);
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_never_loses_acknowledged_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
