/* HTTP glue of the rollback ledger (docs/protocol.md, "Rollback ledger: protocol"): POST
 * /v1/ledger/{advance,query,statement} hand their JSON or CBOR body to the transport-neutral
 * service (attest/ledger_protocol.c) and send its answer. Also sets up the ledger engine (its
 * refusals audited), and notices releases to wrapped-key mode instances so the service can
 * keep their ledger keys.
 *
 * Each advance or query waits in its HTTP worker thread for the engine's group commit, so the
 * number of requests that share one commit is bounded by the `threads` setting. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "vtpmca/encoding.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_protocol.h"
#include "vtpmca/log.h"

#define RESOURCE_PREFIX "/kbs/v0/resource/"

struct server_ledger {
    ledger *engine;
    ledger_service *service;
    keyvault *vault;   /* the master key: unwraps instance keys, wraps stored ledger keys */
    EVP_PKEY *kbs_key; /* signs statements */
};

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
    if (err != VTPMCA_OK)
        return err; /* server_app_free releases what was made */
    char capacity[24], ttl[24];
    snprintf(capacity, sizeof(capacity), "%zu", cfg->ledger_nonce_capacity);
    snprintf(ttl, sizeof(ttl), "%u", cfg->ledger_nonce_ttl_s);
    vtpmca_log(VTPMCA_LOG_INFO, "ledger.ready", "nonce_capacity", capacity, "nonce_ttl_s", ttl,
               NULL);
    return VTPMCA_OK;
}

void server_ledger_free(server_ledger *sl)
{
    if (sl == NULL)
        return;
    /* The service refers to the engine, the engine to the store: free in that order. */
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
    char *joined = realloc(*text, *len + extra_len + 1);
    if (joined == NULL) {
        free(extra);
        return VTPMCA_ERR_NOMEM;
    }
    memcpy(joined + *len, extra, extra_len + 1);
    *text = joined;
    *len += extra_len;
    free(extra);
    return VTPMCA_OK;
}

/* ---- handlers ---- */

typedef vtpmca_err (*ledger_op_fn)(ledger_service *service, ledger_format format,
                                   const uint8_t *body, size_t len, ledger_reply *reply);

static void handle(server_app *app, ledger_op_fn op, const server_request *request,
                   server_response *response)
{
    if (app->ledger == NULL || app->ledger->service == NULL) {
        server_response_error(response, 503, "unavailable", "the ledger is not running");
        return;
    }
    ledger_format format =
        server_request_is_cbor(request) ? LEDGER_FORMAT_CBOR : LEDGER_FORMAT_JSON;
    ledger_reply reply;
    if (op(app->ledger->service, format, request->body, request->body_len, &reply) != VTPMCA_OK) {
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

/* The wrapped-key blob of a resource POST body {"wrapped-key": <base64url>}; NULL if none. */
static uint8_t *wrapped_key_of(const server_request *request, size_t *len)
{
    json_t *doc = request->body != NULL
                      ? json_loadb((const char *)request->body, request->body_len, 0, NULL)
                      : NULL;
    const char *text = json_string_value(json_object_get(doc, "wrapped-key"));
    uint8_t *blob = NULL;
    if (text == NULL ||
        vt_b64_decode_alloc(text, strlen(text), VT_B64_URL_NOPAD, &blob, len) != VTPMCA_OK)
        blob = NULL;
    json_decref(doc);
    return blob;
}

void server_handle_kbs_resource_ledger(void *ctx, const server_request *request,
                                       server_response *response)
{
    server_app *app = ctx;
    server_handle_kbs_resource(ctx, request, response);
    /* A 200 to a POST means the KBS released the key unwrapped from this very blob to the
     * instance at this path: the one moment the service holds a wrapped-key mode instance's
     * key, so its ledger key is derived and stored now. The answer is not changed. */
    if (response->status != 200 || strcmp(request->method, "POST") != 0 || app->ledger == NULL)
        return;
    size_t blob_len = 0;
    uint8_t *blob = wrapped_key_of(request, &blob_len);
    const char *path = request->path + strlen(RESOURCE_PREFIX);
    vtpmca_diag diag = {{0}};
    if (blob == NULL || ledger_service_remember_wrapped_release(app->ledger->service, path, blob,
                                                                blob_len, &diag) != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "ledger.key_store_failed", "detail",
                   blob == NULL ? "no wrapped key in the request" : diag.msg, NULL);
    free(blob);
}
