/* The pool for waiting handlers (server/pool.c) behind a real libmicrohttpd server on
 * loopback: with ONE HTTP worker thread, several requests must be inside their (waiting)
 * handlers at the same time, which is only possible when the worker does not wait itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtpmca/bench_http.h"
#include "vtpmca/server_http.h"
#include "vtpmca/server_pool.h"

#define CONCURRENT 4

/* The handlers' meeting point: each waits until CONCURRENT of them are inside. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    unsigned inside, most_inside;
    bool release;
    bool hold; /* the test releases the handlers itself */
    server_pool *pool;
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false, false, NULL};

static void waiting_handler(void *ctx, const server_request *request, server_response *response)
{
    (void)ctx;
    pthread_mutex_lock(&g.lock);
    g.inside++;
    if (g.inside > g.most_inside)
        g.most_inside = g.inside;
    if (g.inside == CONCURRENT && !g.hold)
        g.release = true;
    pthread_cond_broadcast(&g.changed);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5; /* a worker that waits inline would never see the others */
    while (!g.release) {
        if (pthread_cond_timedwait(&g.changed, &g.lock, &deadline) != 0)
            break;
    }
    g.inside--;
    pthread_mutex_unlock(&g.lock);
    char text[128];
    int len =
        snprintf(text, sizeof(text), "{\"path\":\"%s\",\"body\":\"%.*s\"}", request->path,
                 (int)request->body_len, request->body != NULL ? (const char *)request->body : "");
    server_response_text(response, 200, SERVER_JSON_CONTENT_TYPE, strdup(text), (size_t)len);
}

static void pooled_route(void *ctx, const server_request *request, server_response *response)
{
    server_pool_run(g.pool, waiting_handler, ctx, request, response);
}

static const server_route routes[] = {
    {"POST", "/wait/*", SERVER_BODY_JSON, pooled_route},
};

typedef struct {
    unsigned port, index;
    unsigned status;
    char body[256];
} caller;

static void *call(void *arg)
{
    caller *c = arg;
    vt_bench_http *conn = NULL;
    vt_bench_http_answer answer = {0};
    char path[32], body[32];
    snprintf(path, sizeof(path), "/wait/%u", c->index);
    int len = snprintf(body, sizeof(body), "n%u", c->index);
    const char *const headers[] = {"Content-Type: application/json", NULL};
    if (vt_bench_http_new(c->port, 10000, &conn, NULL) == VTPMCA_OK &&
        vt_bench_http_request(conn, "POST", path, headers, body, (size_t)len, &answer, NULL) ==
            VTPMCA_OK) {
        c->status = answer.status;
        snprintf(c->body, sizeof(c->body), "%.*s", (int)answer.body_len, (const char *)answer.body);
    }
    vt_bench_http_free(conn);
    return NULL;
}

static server_http *start_http(server_metrics **metrics)
{
    const char **labels = NULL;
    size_t n_labels = 0;
    assert_int_equal(server_http_route_labels(routes, 1, &labels, &n_labels), VTPMCA_OK);
    assert_int_equal(server_metrics_new(labels, n_labels, metrics), VTPMCA_OK);
    free(labels);
    server_http_config config = {.listen = "127.0.0.1",
                                 .port = 0,
                                 .threads = 1,
                                 .connection_limit = 64,
                                 .connection_timeout_s = 10,
                                 .max_body_bytes = 4096};
    server_http *http = NULL;
    assert_int_equal(server_http_start(&config, routes, 1, NULL, *metrics, &http, NULL), VTPMCA_OK);
    return http;
}

static void run_callers(unsigned port, caller *callers)
{
    pthread_t tids[CONCURRENT];
    for (unsigned i = 0; i < CONCURRENT; i++) {
        callers[i] = (caller){.port = port, .index = i};
        assert_int_equal(pthread_create(&tids[i], NULL, call, &callers[i]), 0);
    }
    for (unsigned i = 0; i < CONCURRENT; i++)
        pthread_join(tids[i], NULL);
}

static void test_waiting_handlers_do_not_hold_the_worker(void **state)
{
    (void)state;
    assert_int_equal(server_pool_start("test", CONCURRENT, &g.pool, NULL), VTPMCA_OK);
    assert_int_equal(server_pool_threads(g.pool), CONCURRENT);
    g.most_inside = 0;
    g.release = false;
    server_metrics *metrics = NULL;
    server_http *http = start_http(&metrics);
    caller callers[CONCURRENT];
    run_callers(server_http_port(http), callers);
    /* All were inside at once, with a single HTTP worker thread, and each got its own answer
     * (its path and body, read on the pool thread after the worker moved on). */
    assert_int_equal(g.most_inside, CONCURRENT);
    for (unsigned i = 0; i < CONCURRENT; i++) {
        char expect[64];
        snprintf(expect, sizeof(expect), "{\"path\":\"/wait/%u\",\"body\":\"n%u\"}", i, i);
        assert_int_equal(callers[i].status, 200);
        assert_string_equal(callers[i].body, expect);
    }
    server_http_stop(http, 1000);
    server_pool_stop(g.pool);
    g.pool = NULL;
    server_metrics_free(metrics);
}

typedef struct {
    server_http *http;
    bool returned;
} stopper;

static void *stop_http(void *arg)
{
    stopper *st = arg;
    server_http_stop(st->http, 10000);
    pthread_mutex_lock(&g.lock);
    st->returned = true;
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

/* Shutdown while handlers wait on the pool: server_http_stop waits for their answers (the
 * pool keeps running meanwhile), every client gets its answer, and then the pool stops. */
static void test_stop_waits_for_deferred_answers(void **state)
{
    (void)state;
    assert_int_equal(server_pool_start("test", CONCURRENT, &g.pool, NULL), VTPMCA_OK);
    g.most_inside = 0;
    g.release = false;
    g.hold = true;
    server_metrics *metrics = NULL;
    server_http *http = start_http(&metrics);
    caller callers[CONCURRENT];
    pthread_t tids[CONCURRENT];
    for (unsigned i = 0; i < CONCURRENT; i++) {
        callers[i] = (caller){.port = server_http_port(http), .index = i};
        assert_int_equal(pthread_create(&tids[i], NULL, call, &callers[i]), 0);
    }
    pthread_mutex_lock(&g.lock);
    while (g.inside < CONCURRENT)
        pthread_cond_wait(&g.changed, &g.lock);
    pthread_mutex_unlock(&g.lock);
    stopper st = {.http = http};
    pthread_t stop_tid;
    assert_int_equal(pthread_create(&stop_tid, NULL, stop_http, &st), 0);
    struct timespec pause = {0, 200L * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&g.lock);
    bool returned_early = st.returned;
    g.release = true;
    pthread_cond_broadcast(&g.changed);
    pthread_mutex_unlock(&g.lock);
    assert_false(returned_early);
    pthread_join(stop_tid, NULL);
    assert_true(st.returned);
    for (unsigned i = 0; i < CONCURRENT; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(callers[i].status, 200);
    }
    server_pool_stop(g.pool);
    g.pool = NULL;
    g.hold = false;
    server_metrics_free(metrics);
}

/* Without a pool the handler runs in the HTTP worker: answers still come, but one at a time. */
static void test_without_a_pool_the_worker_waits(void **state)
{
    (void)state;
    g.pool = NULL;
    g.most_inside = 0;
    g.release = true; /* nobody could wait for the others here */
    server_metrics *metrics = NULL;
    server_http *http = start_http(&metrics);
    caller callers[CONCURRENT];
    run_callers(server_http_port(http), callers);
    assert_int_equal(g.most_inside, 1);
    for (unsigned i = 0; i < CONCURRENT; i++)
        assert_int_equal(callers[i].status, 200);
    server_http_stop(http, 1000);
    server_metrics_free(metrics);
}

/* A request that did not come from the HTTP layer cannot be deferred: it runs inline. */
static void test_not_deferrable_runs_inline(void **state)
{
    (void)state;
    assert_int_equal(server_pool_start("test", 1, &g.pool, NULL), VTPMCA_OK);
    g.release = true;
    server_request request = {.method = "POST", .path = "/wait/x", .body = NULL, .body_len = 0};
    server_response response = {0};
    server_pool_run(g.pool, waiting_handler, NULL, &request, &response);
    assert_int_equal(response.status, 200);
    assert_string_equal(response.body, "{\"path\":\"/wait/x\",\"body\":\"\"}");
    free(response.body);
    server_pool_stop(g.pool);
    g.pool = NULL;
}

/* Posted work: each task runs once, on a pool thread, and stop runs what is still queued. */
typedef struct {
    server_pool_task task;
    pthread_t ran_on;
    int runs;
} posted;

static void run_posted(void *arg)
{
    posted *p = arg;
    p->ran_on = pthread_self();
    p->runs++;
}

static void test_posted_tasks(void **state)
{
    (void)state;
    server_pool *pool = NULL;
    assert_int_equal(server_pool_start("post", 2, &pool, NULL), VTPMCA_OK);
    enum { TASKS = 50 };
    posted tasks[TASKS];
    memset(tasks, 0, sizeof(tasks));
    for (int i = 0; i < TASKS; i++) {
        tasks[i].task = (server_pool_task){.run = run_posted, .arg = &tasks[i]};
        server_pool_post(pool, &tasks[i].task);
    }
    server_pool_stop(pool); /* runs whatever is still queued, then joins */
    for (int i = 0; i < TASKS; i++) {
        assert_int_equal(tasks[i].runs, 1);
        assert_false(pthread_equal(tasks[i].ran_on, pthread_self()));
    }
    /* Without a pool the task runs here; a task without work is ignored. */
    posted here = {0};
    here.task = (server_pool_task){.run = run_posted, .arg = &here};
    server_pool_post(NULL, &here.task);
    assert_int_equal(here.runs, 1);
    assert_true(pthread_equal(here.ran_on, pthread_self()));
    server_pool_post(NULL, NULL);
    server_pool_task idle = {0};
    server_pool_post(NULL, &idle);
}

static void test_arguments(void **state)
{
    (void)state;
    server_pool *pool = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(server_pool_start("x", 0, &pool, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(pool);
    assert_int_equal(server_pool_start("x", SERVER_POOL_MAX_THREADS + 1, &pool, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_pool_start(NULL, 1, &pool, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_pool_start("x", 1, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_pool_threads(NULL), 0);
    server_response response = {0};
    server_pool_run(NULL, NULL, NULL, NULL, &response); /* nothing to run: no answer set */
    assert_int_equal(response.status, 0);
    server_pool_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiting_handlers_do_not_hold_the_worker),
        cmocka_unit_test(test_stop_waits_for_deferred_answers),
        cmocka_unit_test(test_without_a_pool_the_worker_waits),
        cmocka_unit_test(test_not_deferrable_runs_inline),
        cmocka_unit_test(test_posted_tasks),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
