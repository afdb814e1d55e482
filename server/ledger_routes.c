/* HTTP glue of the rollback ledger (docs/protocol.md, "Rollback ledger: protocol"): POST
 * /v1/ledger/{advance,query,statement} hand their JSON or CBOR body to the transport-neutral
 * service (attest/ledger_protocol.c) and send its answer. Also sets up the ledger engine (its
 * refusals audited), and is the key release hook for wrapped-key mode instances, so the
 * service can keep their ledger keys.
 *
 * An advance or a query waits for the engine's group commit. The HTTP worker threads must not
 * wait (each serves many connections), so the handlers run on a pool of `ledger_workers`
 * threads (vtpmca/server_pool.h), which call the service, wait for the commit and finish the
 * answer: up to that many requests share one commit. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_protocol.h"
#include "vtpmca/log.h"
#include "vtpmca/server_pool.h"

typedef vtpmca_err (*ledger_op_fn)(ledger_service *service, ledger_format format,
                                   const uint8_t *body, size_t len, ledger_reply *reply);

struct server_ledger {
    ledger *engine;
    ledger_service *service;
    keyvault *vault;      /* the master key: unwraps instance keys, wraps stored ledger keys */
    EVP_PKEY *kbs_key;    /* signs statements */
    server_pool *workers; /* NULL until set up */
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
        err = server_pool_start("ledger", cfg->ledger_workers > 0 ? cfg->ledger_workers : 1,
                                &sl->workers, diag);
    if (err != VTPMCA_OK)
        return err; /* server_app_free releases what was made */
    char capacity[24], ttl[24], workers[16];
    snprintf(capacity, sizeof(capacity), "%zu", cfg->ledger_nonce_capacity);
    snprintf(ttl, sizeof(ttl), "%u", cfg->ledger_nonce_ttl_s);
    snprintf(workers, sizeof(workers), "%u", server_pool_threads(sl->workers));
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
    server_pool_stop(sl->workers);
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

/* Runs on a pool thread: the service waits for the commit there. */
static void run_op(server_app *app, ledger_op_fn op, const server_request *request,
                   server_response *response)
{
    ledger_format format =
        server_request_is_cbor(request) ? LEDGER_FORMAT_CBOR : LEDGER_FORMAT_JSON;
    answer(app->ledger->service, op, format, request->body, request->body_len, response);
}

static void advance_now(void *ctx, const server_request *request, server_response *response)
{
    run_op(ctx, ledger_service_advance, request, response);
}

static void query_now(void *ctx, const server_request *request, server_response *response)
{
    run_op(ctx, ledger_service_query, request, response);
}

static void statement_now(void *ctx, const server_request *request, server_response *response)
{
    run_op(ctx, ledger_service_statement, request, response);
}

/* Hands the request to the worker pool. */
static void handle(server_app *app, server_handler now, const server_request *request,
                   server_response *response)
{
    server_ledger *sl = app->ledger;
    if (sl == NULL || sl->service == NULL || sl->workers == NULL) {
        server_response_error(response, 503, "unavailable", "the ledger is not running");
        return;
    }
    server_pool_run(sl->workers, now, app, request, response);
}

void server_handle_ledger_advance(void *ctx, const server_request *request,
                                  server_response *response)
{
    handle(ctx, advance_now, request, response);
}

void server_handle_ledger_query(void *ctx, const server_request *request, server_response *response)
{
    handle(ctx, query_now, request, response);
}

void server_handle_ledger_statement(void *ctx, const server_request *request,
                                    server_response *response)
{
    handle(ctx, statement_now, request, response);
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
