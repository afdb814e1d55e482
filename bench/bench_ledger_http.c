/* Benchmark of durable rollback-ledger advances over HTTP on loopback: the real vtpmcad (a
 * subprocess) and many concurrent keep-alive clients, each an instance advancing its own
 * counter one request at a time, every request and answer MACed (CBOR bodies by default).
 *
 * 1. Enrolls the instances in a fresh database and derives their ledger keys.
 * 2. Measures this machine's fsync rate in the same directory (append 4 KiB + fsync): the
 *    ceiling of a design that fsyncs once per advance.
 * 3. Starts vtpmcad (its default HTTP threads, one ledger worker per connection so that every
 *    request in flight can join a group commit) and runs the clients from one epoll thread
 *    for a warm-up and then the measured seconds. Every acknowledgement is verified (MAC,
 *    nonce, counter, root).
 * 4. Prints durable advances/s, p50/p99/max latency, the commits and average batch (from the
 *    daemon's /metrics), the ratio to the fsync rate, and the CPU time of the client and of
 *    the daemon: both share this machine's cores, so the client's share is reported beside
 *    the result.
 *
 * Usage: bench_ledger_http [--connections N (64)] [--seconds S (5)] [--format cbor|json]
 *                          [--ledger-workers N (connections)] [--http-threads N (CPUs)]
 *                          [--dir DIR] [--vtpmcad PATH]
 * Without --dir a fresh directory is made (and removed) in the current directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vtpmca/bench_util.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_protocol.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"

enum { GOAL_PER_SECOND = 20000, GOAL_P99_US = 10000, BUF_SIZE = 4096, WARMUP_MS = 700 };

struct options {
    unsigned connections;
    double seconds;
    unsigned ledger_workers; /* 0: connections */
    unsigned http_threads;   /* 0: the daemon's default (one per CPU) */
    ledger_format format;
    const char *dir;
    const char *vtpmcad;
};

/* One keep-alive connection: one instance, one request in flight. */
struct conn {
    int fd;
    char instance[32];
    uint8_t key[LEDGER_KEY_LEN];
    uint8_t counter[LEDGER_COUNTER_LEN];
    uint8_t nonce_prefix[8];
    uint64_t seq;
    ledger_msg req;
    char out[BUF_SIZE];
    size_t out_len, out_sent;
    char in[BUF_SIZE];
    size_t in_len;
    double sent_at;
    bool busy;
};

struct run_stats {
    uint32_t *latencies_us;
    size_t count, cap;
    uint64_t failures;
    char failure[256];
};

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.connections = 64, .seconds = 5.0, .format = LEDGER_FORMAT_CBOR};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (value == NULL)
            return -1;
        if (strcmp(arg, "--connections") == 0) {
            unsigned long v = strtoul(value, &end, 10);
            if (*end != '\0' || v < 1 || v > 1000)
                return -1;
            o->connections = (unsigned)v;
        } else if (strcmp(arg, "--seconds") == 0) {
            o->seconds = strtod(value, &end);
            if (*end != '\0' || !(o->seconds > 0 && o->seconds <= 600))
                return -1;
        } else if (strcmp(arg, "--http-threads") == 0) {
            unsigned long v = strtoul(value, &end, 10);
            if (*end != '\0' || v < 1 || v > 1024)
                return -1;
            o->http_threads = (unsigned)v;
        } else if (strcmp(arg, "--ledger-workers") == 0) {
            unsigned long v = strtoul(value, &end, 10);
            if (*end != '\0' || v < 1 || v > 1024)
                return -1;
            o->ledger_workers = (unsigned)v;
        } else if (strcmp(arg, "--format") == 0) {
            if (strcmp(value, "cbor") == 0)
                o->format = LEDGER_FORMAT_CBOR;
            else if (strcmp(value, "json") == 0)
                o->format = LEDGER_FORMAT_JSON;
            else
                return -1;
        } else if (strcmp(arg, "--dir") == 0) {
            o->dir = value;
        } else if (strcmp(arg, "--vtpmcad") == 0) {
            o->vtpmcad = value;
        } else {
            return -1;
        }
        i++;
    }
    if (o->ledger_workers == 0)
        o->ledger_workers = o->connections > 1024 ? 1024 : o->connections;
    return 0;
}

/* ---- setup: instances and their ledger keys ---- */

static int enroll_instances(const char *dir, struct conn *conns, unsigned n)
{
    char db[PATH_MAX], master[PATH_MAX];
    snprintf(db, sizeof(db), "%s/vtpmca.db", dir);
    snprintf(master, sizeof(master), "%s/master.key", dir);
    store *st = NULL;
    keyvault *vault = NULL;
    vtpmca_diag diag = {{0}};
    enroll_request *reqs = calloc(n, sizeof(*reqs));
    enroll_result *res = calloc(n, sizeof(*res));
    vtpmca_err err = reqs != NULL && res != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    if (err == VTPMCA_OK)
        err = store_open(db, &st, &diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(master, true, &vault, &diag);
    if (err == VTPMCA_OK)
        err = store_fleet_create(st, "bench", "ledger benchmark", &diag);
    for (unsigned i = 0; i < n && err == VTPMCA_OK; i++) {
        snprintf(conns[i].instance, sizeof(conns[i].instance), "bench-%u", i);
        reqs[i] = (enroll_request){.instance_id = conns[i].instance,
                                   .fleet = "bench",
                                   .mode = STORE_KEY_GENERATED,
                                   .actor = "bench"};
    }
    if (err == VTPMCA_OK)
        err = enrollment_enroll_batch(st, vault, reqs, n, res, NULL, &diag);
    for (unsigned i = 0; i < n && err == VTPMCA_OK; i++) {
        store_instance inst;
        char context[ENROLLMENT_CONTEXT_MAX];
        uint8_t pk[KEYVAULT_KEY_MAX];
        size_t pk_len = 0;
        err = store_instance_get(st, conns[i].instance, &inst, &diag);
        if (err == VTPMCA_OK)
            err = enrollment_key_context(STORE_KEY_GENERATED, conns[i].instance, context, &diag);
        if (err == VTPMCA_OK)
            err = keyvault_unwrap(vault, inst.wrapped_key, inst.wrapped_key_len, context, pk,
                                  sizeof(pk), &pk_len, &diag);
        if (err == VTPMCA_OK)
            err = ledger_key_derive(pk, pk_len, conns[i].instance, conns[i].key, &diag);
        OPENSSL_cleanse(pk, sizeof(pk));
        store_instance_free_fields(&inst);
        /* Counters start near 2^128 so that they wrap during the run. */
        memset(conns[i].counter, 0xff, LEDGER_COUNTER_LEN);
        conns[i].counter[LEDGER_COUNTER_LEN - 3] = 0xf0;
        RAND_bytes(conns[i].nonce_prefix, sizeof(conns[i].nonce_prefix));
    }
    keyvault_free(vault);
    store_close(st);
    free(reqs);
    free(res);
    if (err != VTPMCA_OK)
        fprintf(stderr, "bench_ledger_http: setup: %s\n", diag.msg);
    return err == VTPMCA_OK ? 0 : -1;
}

/* ---- the daemon ---- */

static pid_t start_daemon(const struct options *o, const char *dir, unsigned *port)
{
    char port_file[PATH_MAX], log[PATH_MAX], workers[16], threads[16];
    snprintf(port_file, sizeof(port_file), "%s/vtpmcad.port", dir);
    snprintf(log, sizeof(log), "%s/vtpmcad.log", dir);
    snprintf(workers, sizeof(workers), "%u", o->ledger_workers);
    snprintf(threads, sizeof(threads), "%u", o->http_threads); /* 0: one per CPU */
    const char *argv[] = {o->vtpmcad, "--state-dir",        dir,       "--port",
                          "0",        "--port-file",        port_file, "--ledger-workers",
                          workers,    "--threads",          threads,   "--log-level",
                          "warn",     "--connection-limit", "4096",    NULL};
    pid_t pid = 0;
    vtpmca_diag diag = {{0}};
    if (vt_bench_start_vtpmcad(argv, log, false, port_file, 15, &pid, port, &diag) != VTPMCA_OK) {
        fprintf(stderr, "bench_ledger_http: %s\n", diag.msg);
        return -1;
    }
    return pid;
}

static size_t on_metrics(char *data, size_t size, size_t n, void *user)
{
    FILE *f = user;
    return fwrite(data, size, n, f);
}

/* A counter of the daemon's /metrics (0 when absent). */
static double metric(const char *text, const char *name)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *at = text != NULL ? strstr(text, needle) : NULL;
    return at != NULL ? strtod(at + strlen(needle), NULL) : 0;
}

static char *fetch_metrics(unsigned port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CURL *curl = curl_easy_init();
    if (f == NULL || curl == NULL) {
        if (f != NULL)
            fclose(f);
        free(text);
        curl_easy_cleanup(curl);
        return NULL;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_metrics);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    fclose(f);
    if (rc != CURLE_OK) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- the clients ---- */

static void fail(struct run_stats *s, const char *what)
{
    if (s->failures++ == 0)
        snprintf(s->failure, sizeof(s->failure), "%s", what);
}

/* Builds the next signed advance of a connection as an HTTP request. */
static int prepare_request(struct conn *c, ledger_format format)
{
    ledger_counter_increment(c->counter);
    ledger_msg *m = &c->req;
    memset(m, 0, sizeof(*m));
    snprintf(m->instance, sizeof(m->instance), "%s", c->instance);
    memcpy(m->counter, c->counter, LEDGER_COUNTER_LEN);
    memcpy(m->root, c->counter, LEDGER_COUNTER_LEN); /* a root per (instance, counter) */
    memcpy(m->root + LEDGER_COUNTER_LEN, c->instance, 16);
    m->root_len = 32;
    m->has_entry = true;
    /* Unique per instance: a random prefix per connection and a sequence number. */
    memcpy(m->nonce, c->nonce_prefix, 8);
    c->seq++;
    memcpy(m->nonce + 8, &c->seq, 8);
    m->nonce_len = 16;
    uint8_t *body = NULL;
    size_t len = 0;
    if (ledger_msg_sign(LEDGER_MSG_ADVANCE_REQUEST, m, c->key, NULL) != VTPMCA_OK ||
        ledger_msg_encode(LEDGER_MSG_ADVANCE_REQUEST, format, m, &body, &len, NULL) != VTPMCA_OK)
        return -1;
    int head = snprintf(
        c->out, sizeof(c->out),
        "POST /v1/ledger/advance HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
        format == LEDGER_FORMAT_CBOR ? LEDGER_CBOR_CONTENT_TYPE : LEDGER_JSON_CONTENT_TYPE, len);
    if (head < 0 || (size_t)head + len > sizeof(c->out)) {
        free(body);
        return -1;
    }
    memcpy(c->out + head, body, len);
    free(body);
    c->out_len = (size_t)head + len;
    c->out_sent = 0;
    c->in_len = 0;
    return 0;
}

static int send_pending(struct conn *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        c->out_sent += (size_t)n;
    }
    return 0;
}

/* 1: a whole answer is in c->in (status and body located), 0: more to read, -1: broken. */
static int parse_answer(struct conn *c, unsigned *status, const char **body, size_t *body_len)
{
    c->in[c->in_len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return c->in_len + 1 >= sizeof(c->in) ? -1 : 0;
    if (sscanf(c->in, "HTTP/1.1 %u", status) != 1)
        return -1;
    size_t length = 0;
    bool has_length = false;
    for (char *line = strstr(c->in, "\r\n"); line != NULL && line < end;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
            length = strtoul(line + 17, NULL, 10);
            has_length = true;
        }
    }
    size_t head = (size_t)(end + 4 - c->in);
    if (!has_length || head + length >= sizeof(c->in))
        return -1;
    if (c->in_len < head + length)
        return 0;
    *body = c->in + head;
    *body_len = length;
    return 1;
}

/* Verifies the acknowledgement of the connection's request. */
static bool acknowledged(struct conn *c, ledger_format format, unsigned status, const char *body,
                         size_t len)
{
    ledger_msg ans;
    if (status != 200 || ledger_msg_decode(LEDGER_MSG_ADVANCE_ANSWER, format, (const uint8_t *)body,
                                           len, &ans, NULL) != VTPMCA_OK)
        return false;
    snprintf(ans.instance, sizeof(ans.instance), "%s", c->instance);
    return strcmp(ans.result, "accepted") == 0 && ans.nonce_len == c->req.nonce_len &&
           memcmp(ans.nonce, c->req.nonce, ans.nonce_len) == 0 &&
           memcmp(ans.counter, c->req.counter, LEDGER_COUNTER_LEN) == 0 &&
           ledger_msg_verify(LEDGER_MSG_ADVANCE_ANSWER, &ans, c->key, NULL) == VTPMCA_OK;
}

static int connect_loopback(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void record(struct run_stats *s, double us)
{
    if (s->count == s->cap) {
        size_t cap = s->cap == 0 ? 65536 : s->cap * 2;
        uint32_t *bigger = realloc(s->latencies_us, cap * sizeof(*bigger));
        if (bigger == NULL) {
            fail(s, "out of memory");
            return;
        }
        s->latencies_us = bigger;
        s->cap = cap;
    }
    s->latencies_us[s->count++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Runs every connection until `until`; latencies are recorded after `record_from`. */
static int run_load(struct conn *conns, unsigned n, ledger_format format, int ep,
                    double record_from, double until, struct run_stats *s)
{
    struct epoll_event events[256];
    for (unsigned i = 0; i < n; i++) {
        if (conns[i].busy)
            continue;
        if (prepare_request(&conns[i], format) != 0 || send_pending(&conns[i]) != 0)
            return -1;
        conns[i].sent_at = vt_bench_now_s();
        conns[i].busy = true;
    }
    unsigned in_flight = n;
    bool stopping = false;
    while (in_flight > 0) {
        int ready = epoll_wait(ep, events, 256, 1000);
        if (ready < 0 && errno != EINTR)
            return -1;
        double t = vt_bench_now_s();
        stopping = stopping || t >= until;
        for (int k = 0; k < ready; k++) {
            struct conn *c = events[k].data.ptr;
            if (events[k].events & EPOLLOUT && send_pending(c) != 0)
                return -1;
            if (!(events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t got = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
            if (got < 0 && errno == EAGAIN)
                continue;
            if (got <= 0) {
                fail(s, "the server closed a connection");
                return -1;
            }
            c->in_len += (size_t)got;
            unsigned status = 0;
            const char *body = NULL;
            size_t body_len = 0;
            int whole = parse_answer(c, &status, &body, &body_len);
            if (whole < 0) {
                fail(s, "malformed HTTP answer");
                return -1;
            }
            if (whole == 0)
                continue;
            if (!acknowledged(c, format, status, body, body_len)) {
                char what[160];
                snprintf(what, sizeof(what), "advance not acknowledged: HTTP %u %.100s", status,
                         body);
                fail(s, what);
            } else if (c->sent_at >= record_from) {
                record(s, (vt_bench_now_s() - c->sent_at) * 1e6);
            }
            if (stopping) {
                c->busy = false;
                in_flight--;
                continue;
            }
            if (prepare_request(c, format) != 0 || send_pending(c) != 0)
                return -1;
            c->sent_at = vt_bench_now_s();
        }
    }
    return 0;
}

static void report(const struct options *o, const struct run_stats *s, double elapsed,
                   double fsync_rate, double client_cpu, double server_cpu, const char *m0,
                   const char *m1)
{
    uint32_t *sorted = malloc(s->count * sizeof(*sorted));
    if (sorted == NULL || s->count == 0) {
        free(sorted);
        fprintf(stderr, "bench_ledger_http: no advance was acknowledged\n");
        return;
    }
    memcpy(sorted, s->latencies_us, s->count * sizeof(*sorted));
    qsort(sorted, s->count, sizeof(*sorted), vt_bench_cmp_u32);
    uint32_t p50 = sorted[s->count / 2], p99 = sorted[(s->count * 99) / 100],
             max = sorted[s->count - 1];
    free(sorted);
    double rate = (double)s->count / elapsed;
    double commits =
        metric(m1, "vtpmca_ledger_commits_total") - metric(m0, "vtpmca_ledger_commits_total");
    double batches =
        metric(m1, "vtpmca_ledger_batches_total") - metric(m0, "vtpmca_ledger_batches_total");
    double batched = metric(m1, "vtpmca_ledger_batched_requests_total") -
                     metric(m0, "vtpmca_ledger_batched_requests_total");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("load:                %u keep-alive connections (one instance each, one request in "
           "flight), %s bodies, %.1f s measured\n",
           o->connections, o->format == LEDGER_FORMAT_CBOR ? "CBOR" : "JSON", elapsed);
    printf("server:              vtpmcad, %u HTTP threads (0: one per CPU), %u ledger workers, "
           "sqlite WAL synchronous=FULL\n",
           o->http_threads, o->ledger_workers);
    printf("durable advances/s:  %.0f (%zu acknowledged and verified, %llu failed)\n", rate,
           s->count, (unsigned long long)s->failures);
    printf("latency:             p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50 / 1000.0,
           p99 / 1000.0, max / 1000.0);
    printf("commits:             %.0f /s, average batch %.1f requests\n", commits / elapsed,
           batches > 0 ? batched / batches : 0.0);
    printf("fsync rate:          %.0f /s (same directory, same run)\n", fsync_rate);
    printf("ratio to fsync rate: %.1fx\n", rate / fsync_rate);
    printf("cpu:                 client %.2f s (%.0f%% of one core), vtpmcad %.2f s (%.0f%% of "
           "one core); the machine has %ld cores, shared by both\n",
           client_cpu, 100 * client_cpu / elapsed, server_cpu, 100 * server_cpu / elapsed, cores);
    printf("client share:        %.0f%% of the CPU time used\n",
           100 * client_cpu / (client_cpu + server_cpu > 0 ? client_cpu + server_cpu : 1));
    bool met = rate >= GOAL_PER_SECOND && p99 < GOAL_P99_US && s->failures == 0;
    printf("goal (>= %d/s, p99 < %d ms): %s\n", GOAL_PER_SECOND, GOAL_P99_US / 1000,
           met ? "met" : "NOT met");
}

static int run(const struct options *o, const char *dir)
{
    struct conn *conns = calloc(o->connections, sizeof(*conns));
    if (conns == NULL || enroll_instances(dir, conns, o->connections) != 0) {
        free(conns);
        return 1;
    }
    double fsync_rate = 0;
    if (vt_bench_fsync_rate(dir, &fsync_rate, NULL) != VTPMCA_OK) {
        fprintf(stderr, "bench_ledger_http: cannot measure the fsync rate in %s\n", dir);
        free(conns);
        return 1;
    }
    unsigned port = 0;
    pid_t pid = start_daemon(o, dir, &port);
    if (pid < 0) {
        free(conns);
        return 1;
    }
    int rc = 1, ep = epoll_create1(EPOLL_CLOEXEC);
    unsigned opened = 0;
    for (; ep >= 0 && opened < o->connections; opened++) {
        conns[opened].fd = connect_loopback(port);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                 .data.ptr = &conns[opened]};
        if (conns[opened].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, conns[opened].fd, &ev) != 0)
            break;
    }
    struct run_stats s = {0};
    if (opened == o->connections) {
        /* Warm-up: every instance's first advance (a new engine cache entry, a key lookup). */
        double t0 = vt_bench_now_s();
        if (run_load(conns, o->connections, o->format, ep, INFINITY, t0 + WARMUP_MS / 1000.0, &s) ==
            0) {
            char *m0 = fetch_metrics(port);
            double c0 = vt_bench_self_cpu_s(), d0 = vt_bench_process_cpu_s(pid),
                   start = vt_bench_now_s();
            int load =
                run_load(conns, o->connections, o->format, ep, start, start + o->seconds, &s);
            double elapsed = vt_bench_now_s() - start;
            double client_cpu = vt_bench_self_cpu_s() - c0,
                   server_cpu = vt_bench_process_cpu_s(pid) - d0;
            char *m1 = fetch_metrics(port);
            if (load == 0) {
                report(o, &s, elapsed, fsync_rate, client_cpu, server_cpu, m0, m1);
                rc = s.failures == 0 && s.count > 0 ? 0 : 1;
            }
            free(m0);
            free(m1);
        }
    } else {
        fprintf(stderr, "bench_ledger_http: cannot connect to vtpmcad on port %u\n", port);
    }
    if (s.failures > 0)
        fprintf(stderr, "bench_ledger_http: %llu failures; first: %s\n",
                (unsigned long long)s.failures, s.failure);
    for (unsigned i = 0; i < opened; i++)
        close(conns[i].fd);
    if (ep >= 0)
        close(ep);
    vt_bench_stop_vtpmcad(&pid);
    OPENSSL_cleanse(conns, o->connections * sizeof(*conns));
    free(conns);
    free(s.latencies_us);
    return rc;
}

/* vtpmcad beside this program unless --vtpmcad says otherwise. */
static const char *default_vtpmcad(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 16);
    if (n <= 0)
        return "./vtpmcad";
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    snprintf(slash != NULL ? slash + 1 : buf, 16, "vtpmcad");
    return buf;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: bench_ledger_http [--connections N (64)] [--seconds S (5)] "
                "[--format cbor|json] [--ledger-workers N (connections)] [--http-threads N (CPUs)] "
                "[--dir DIR] [--vtpmcad PATH]\n");
        return 2;
    }
    char exe[PATH_MAX];
    if (o.vtpmcad == NULL)
        o.vtpmcad = default_vtpmcad(exe, sizeof(exe));
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char made[] = "bench-ledger-http-XXXXXX";
    const char *dir = o.dir;
    if (dir == NULL) {
        if (mkdtemp(made) == NULL) {
            fprintf(stderr, "bench_ledger_http: cannot make a directory here: %s\n",
                    strerror(errno));
            return 1;
        }
        dir = made;
    }
    int rc = run(&o, dir);
    if (o.dir == NULL) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", made);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_ledger_http: cannot remove %s\n", made);
    }
    curl_global_cleanup();
    return rc;
}
