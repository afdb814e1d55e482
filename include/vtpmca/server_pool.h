/* Threads that answer requests whose handlers wait, mostly for a durable group commit (a key
 * release's audit row, a certification, a ledger advance). An HTTP worker serves many
 * connections, so it must not wait: it defers the request (server_request_defer) and goes on,
 * and a pool thread runs the handler and sends its answer. Waiting handlers on the pool's
 * threads also share group commits: up to `threads` of them can ride on one fsync. */
#ifndef VTPMCA_SERVER_POOL_H
#define VTPMCA_SERVER_POOL_H

#include "vtpmca/err.h"
#include "vtpmca/server_http.h"

#define SERVER_POOL_MAX_THREADS 1024

typedef struct server_pool server_pool;

/* Starts `threads` (1..SERVER_POOL_MAX_THREADS) threads; `name` (e.g. "ledger") is used in
 * logs and errors. */
vtpmca_err server_pool_start(const char *name, unsigned threads, server_pool **out,
                             vtpmca_diag *diag);

/* The number of threads that run. */
unsigned server_pool_threads(const server_pool *pool);

/* Runs handler(ctx, request, answer) on a pool thread and sends that answer. The request
 * (copied; its strings and body stay valid until the answer is sent) must come from the HTTP
 * layer. When the request cannot be deferred (or pool is NULL), the handler runs here, in
 * the calling thread, and fills *response as usual; so handlers work the same either way. */
void server_pool_run(server_pool *pool, server_handler handler, void *ctx,
                     const server_request *request, server_response *response);

/* Work posted to the pool (server_pool_post): run(arg) on a pool thread. The task is the
 * caller's memory (usually inside the object it works on), so posting cannot fail. */
typedef struct server_pool_task {
    struct server_pool_task *next; /* the pool's */
    void (*run)(void *arg);
    void *arg;
} server_pool_task;

/* Queues task->run(task->arg) for a pool thread, for work that must not run where it is
 * found, e.g. a store report that has to write to the store. With no pool (NULL) it runs
 * here. The task must stay valid until run is called. */
void server_pool_post(server_pool *pool, server_pool_task *task);

/* Answers what is queued, joins the threads and frees the pool (NULL is a no-op). Call it
 * after server_http_stop, which waits for deferred answers: the pool must run until then. */
void server_pool_stop(server_pool *pool);

#endif
