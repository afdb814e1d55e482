/* The pool of threads for waiting handlers (see vtpmca/server_pool.h): a FIFO of deferred
 * requests under one mutex; each thread takes the oldest, runs its handler and finishes the
 * deferred answer. */
#include "vtpmca/server_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A deferred request waiting for a thread. */
struct pool_job {
    server_pool_task task; /* runs run_job */
    server_handler handler;
    void *ctx;
    server_request request; /* copied: the HTTP layer's copy lives on its stack */
    server_deferred *deferred;
};

struct server_pool {
    char name[32];
    pthread_mutex_t lock;
    pthread_cond_t ready;
    server_pool_task *head, *tail;
    bool stopping;
    pthread_t *threads;
    unsigned n_threads; /* started */
};

static void *pool_main(void *arg)
{
    server_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        server_pool_task *task = pool->head;
        if (task == NULL)
            break; /* stopping, and nothing is left */
        pool->head = task->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->lock);
        task->run(task->arg);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

vtpmca_err server_pool_start(const char *name, unsigned threads, server_pool **out,
                             vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (name == NULL || out == NULL || threads == 0 || threads > SERVER_POOL_MAX_THREADS)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "pool: name and 1..%d threads needed",
                           SERVER_POOL_MAX_THREADS);
    server_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL || (pool->threads = calloc(threads, sizeof(*pool->threads))) == NULL) {
        free(pool);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    for (; pool->n_threads < threads; pool->n_threads++) {
        if (pthread_create(&pool->threads[pool->n_threads], NULL, pool_main, pool) != 0) {
            vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s: cannot start thread %u of %u", pool->name,
                        pool->n_threads + 1, threads);
            server_pool_stop(pool);
            return VTPMCA_ERR_INTERNAL;
        }
    }
    *out = pool;
    return VTPMCA_OK;
}

unsigned server_pool_threads(const server_pool *pool)
{
    return pool != NULL ? pool->n_threads : 0;
}

void server_pool_post(server_pool *pool, server_pool_task *task)
{
    if (task == NULL || task->run == NULL)
        return;
    if (pool == NULL) {
        task->run(task->arg);
        return;
    }
    task->next = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail != NULL)
        pool->tail->next = task;
    else
        pool->head = task;
    pool->tail = task;
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
}

/* A deferred request's turn: run its handler and send the answer. */
static void run_job(void *arg)
{
    struct pool_job *job = arg;
    server_response response = {0};
    job->handler(job->ctx, &job->request, &response);
    server_deferred_finish(job->deferred, &response);
    free(job);
}

void server_pool_run(server_pool *pool, server_handler handler, void *ctx,
                     const server_request *request, server_response *response)
{
    if (handler == NULL || request == NULL || response == NULL)
        return; /* the HTTP layer answers a handler that set nothing with a 500 */
    struct pool_job *job = pool != NULL ? calloc(1, sizeof(*job)) : NULL;
    if (job == NULL || server_request_defer(request, &job->deferred) != VTPMCA_OK) {
        /* Not deferrable (no pool, no memory, not an HTTP request): wait here instead. */
        free(job);
        handler(ctx, request, response);
        return;
    }
    job->handler = handler;
    job->ctx = ctx;
    job->request = *request;
    job->task = (server_pool_task){.run = run_job, .arg = job};
    server_pool_post(pool, &job->task);
}

void server_pool_stop(server_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->ready);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
