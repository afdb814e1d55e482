/* HTTP glue of the rollback ledger (docs/protocol.md, "Rollback ledger: protocol"): POST
 * /v1/ledger/{advance,query,statement} hand their JSON or CBOR body to the transport-neutral
 * service (attest/ledger_protocol.c) and send its answer. Also sets up the ledger engine (its
 * refusals audited), and is the key release hook for wrapped-key mode instances, so the
 * service can keep their ledger keys.
 *
 * An advance or a query waits for the engine's group commit. The HTTP worker threads must not
 * wait (each serves many connections), so the handlers defer their answer
 * (server_request_defer) and queue the request for a pool of `ledger_workers` threads, which
 * call the service, wait for the commit and finish the answer: up to that many requests share
 * one commit. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_protocol.h"
#include "vtpmca/log.h"

typedef vtpmca_err (*ledger_op_fn)(ledger_service *service, ledger_format format,
                                   const uint8_t *body, size_t len, ledger_reply *reply);

/* A deferred request waiting for a worker. */
struct ledger_job {
    struct ledger_job *next;
    ledger_op_fn op;
    ledger_format format;
    const uint8_t *body; /* the request's: valid until its answer is finished */
    size_t len;
    server_deferred *deferred;
};

struct server_ledger {
    ledger *engine;
    ledger_service *service;
    keyvault *vault;   /* the master key: unwraps instance keys, wraps stored ledger keys */
    EVP_PKEY *kbs_key; /* signs statements */
    /* The worker pool and its queue. */
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct ledger_job *head, *tail;
    bool stopping;
    pthread_t *workers; /* NULL until the pool is set up */
    unsigned n_workers; /* started */
};

/* ---- answering ---- */

/* Runs one request through the service and turns its reply into the HTTP answer. */
static void answer(ledger_service *service, ledger_op_fn op, ledger_format format,
                   const uint8_t *body, size_t len, server_response *response)
{
    ledger_reply reply;
    if (op(service, format, body, len, &reply) != VTPMCA_OK) {
        ledger_reply_clear(&reply);
        server_response_error(response, 500, "internal", "the ledger produced no answer");
        return;
    }
    const char *type =
        reply.format == LEDGER_FORMAT_CBOR ? SERVER_CBOR_CONTENT_TYPE : SERVER_JSON_CONTENT_TYPE;
    server_response_text(response, reply.status, type, (char *)reply.body, reply.body_len);
    reply.body = NULL; /* the response owns it now */
    if (reply.retry_after_s > 0) {
        char seconds[16];
        snprintf(seconds, sizeof(seconds), "%u", reply.retry_after_s);
        server_response_add_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    ledger_reply_clear(&reply);
}

static void *worker_main(void *arg)
{
    server_ledger *sl = arg;
    pthread_mutex_lock(&sl->lock);
    for (;;) {
        while (sl->head == NULL && !sl->stopping)
            pthread_cond_wait(&sl->ready, &sl->lock);
        struct ledger_job *job = sl->head;
        if (job == NULL)
            break; /* stopping, and nothing is left */
        sl->head = job->next;
        if (sl->head == NULL)
            sl->tail = NULL;
        pthread_mutex_unlock(&sl->lock);
        server_response response = {0};
        answer(sl->service, job->op, job->format, job->body, job->len, &response);
        server_deferred_finish(job->deferred, &response);
        free(job);
        pthread_mutex_lock(&sl->lock);
    }
    pthread_mutex_unlock(&sl->lock);
    return NULL;
}

static vtpmca_err start_workers(server_ledger *sl, unsigned n, vtpmca_diag *diag)
{
    pthread_mutex_init(&sl->lock, NULL);
    pthread_cond_init(&sl->ready, NULL);
    sl->workers = calloc(n, sizeof(*sl->workers));
    if (sl->workers == NULL) {
        pthread_cond_destroy(&sl->ready);
        pthread_mutex_destroy(&sl->lock);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    for (; sl->n_workers < n; sl->n_workers++) {
        if (pthread_create(&sl->workers[sl->n_workers], NULL, worker_main, sl) != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot start ledger worker %u of %u",
                               sl->n_workers + 1, n);
    }
    return VTPMCA_OK;
}

/* Lets the workers answer what is queued, then joins them. */
static void stop_workers(server_ledger *sl)
{
    if (sl->workers == NULL)
        return;
    pthread_mutex_lock(&sl->lock);
    sl->stopping = true;
    pthread_cond_broadcast(&sl->ready);
    pthread_mutex_unlock(&sl->lock);
    for (unsigned i = 0; i < sl->n_workers; i++)
        pthread_join(sl->workers[i], NULL);
    free(sl->workers);
    sl->workers = NULL;
    pthread_cond_destroy(&sl->ready);
    pthread_mutex_destroy(&sl->lock);
}

/* ---- setup ---- */

vtpmca_err server_ledger_setup(server_app *app, vtpmca_diag *diag)
{
    const server_config *cfg = &app->config;
    server_ledger *sl = calloc(1, sizeof(*sl));
    if (sl == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    app->ledger = sl;
    /* The KBS setup ran first, so both files exist (it creates them when missing). */
    char path[SERVER_CONFIG_PATH_MAX + 32];
    vtpmca_err err =
        server_state_path(cfg, cfg->kbs_key_file, "kbs-key.pem", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = kbs_key_load(path, &sl->kbs_key, diag);
    if (err == VTPMCA_OK)
        err = server_state_path(cfg, cfg->master_key_file, "master.key", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(path, false, &sl->vault, diag);
    if (err == VTPMCA_OK) {
        ledger_config lc = {
            .store = app->store, .on_refusal = ledger_refusal_audit, .hook_ctx = app->store};
        err = ledger_open(&lc, &sl->engine, diag);
    }
    if (err == VTPMCA_OK) {
        ledger_service_config sc = {
            .engine = sl->engine,
            .store = app->store,
            .vault = sl->vault,
            .statement_key = sl->kbs_key,
            .nonce_capacity = cfg->ledger_nonce_capacity,
            .nonce_ttl_s = cfg->ledger_nonce_ttl_s,
            .key_cache_ttl_ms = cfg->ledger_key_cache_ttl_ms,
        };
        err = ledger_service_new(&sc, &sl->service, diag);
    }
    if (err == VTPMCA_OK)
        err = start_workers(sl, cfg->ledger_workers > 0 ? cfg->ledger_workers : 1, diag);
    if (err != VTPMCA_OK)
        return err; /* server_app_free releases what was made */
    char capacity[24], ttl[24], workers[16];
    snprintf(capacity, sizeof(capacity), "%zu", cfg->ledger_nonce_capacity);
    snprintf(ttl, sizeof(ttl), "%u", cfg->ledger_nonce_ttl_s);
    snprintf(workers, sizeof(workers), "%u", sl->n_workers);
    vtpmca_log(VTPMCA_LOG_INFO, "ledger.ready", "workers", workers, "nonce_capacity", capacity,
               "nonce_ttl_s", ttl, NULL);
    return VTPMCA_OK;
}

void server_ledger_free(server_ledger *sl)
{
    if (sl == NULL)
        return;
    /* The HTTP server has stopped, so nothing is queued any more. The workers use the
     * service, the service the engine, the engine the store: stop them in that order. */
    stop_workers(sl);
    ledger_service_free(sl->service);
    ledger_close(sl->engine);
    keyvault_free(sl->vault);
    EVP_PKEY_free(sl->kbs_key);
    free(sl);
}

ledger *server_ledger_engine(const server_app *app)
{
    return app != NULL && app->ledger != NULL ? app->ledger->engine : NULL;
}

vtpmca_err server_ledger_metrics_append(const server_ledger *sl, char **text, size_t *len)
{
    if (sl == NULL || sl->service == NULL)
        return VTPMCA_OK;
    char *extra = NULL;
    size_t extra_len = 0;
    vtpmca_err err = ledger_service_metrics_render(sl->service, &extra, &extra_len);
    if (err != VTPMCA_OK)
        return err;
    err = server_metrics_join(text, len, extra, extra_len);
    free(extra);
    return err;
}

/* ---- handlers ---- */

/* Defers the request to the worker pool. */
static void handle(server_app *app, ledger_op_fn op, const server_request *request,
                   server_response *response)
{
    server_ledger *sl = app->ledger;
    if (sl == NULL || sl->service == NULL || sl->workers == NULL) {
        server_response_error(response, 503, "unavailable", "the ledger is not running");
        return;
    }
    struct ledger_job *job = calloc(1, sizeof(*job));
    if (job == NULL || server_request_defer(request, &job->deferred) != VTPMCA_OK) {
        free(job);
        server_response_error(response, 503, "unavailable", "the ledger cannot take requests");
        return;
    }
    job->op = op;
    job->format = server_request_is_cbor(request) ? LEDGER_FORMAT_CBOR : LEDGER_FORMAT_JSON;
    job->body = request->body;
    job->len = request->body_len;
    pthread_mutex_lock(&sl->lock);
    if (sl->tail != NULL)
        sl->tail->next = job;
    else
        sl->head = job;
    sl->tail = job;
    pthread_cond_signal(&sl->ready);
    pthread_mutex_unlock(&sl->lock);
}

void server_handle_ledger_advance(void *ctx, const server_request *request,
                                  server_response *response)
{
    handle(ctx, ledger_service_advance, request, response);
}

void server_handle_ledger_query(void *ctx, const server_request *request, server_response *response)
{
    handle(ctx, ledger_service_query, request, response);
}

void server_handle_ledger_statement(void *ctx, const server_request *request,
                                    server_response *response)
{
    handle(ctx, ledger_service_statement, request, response);
}

void server_ledger_on_wrapped_release(void *app, const char *instance_id, const uint8_t *key,
                                      size_t key_len)
{
    const server_app *sa = app;
    if (sa == NULL || sa->ledger == NULL || sa->ledger->service == NULL)
        return;
    vtpmca_diag diag = {{0}};
    if (ledger_service_remember_release(sa->ledger->service, instance_id, key, key_len, &diag) !=
        VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "ledger.key_store_failed", "detail", diag.msg, NULL);
}
