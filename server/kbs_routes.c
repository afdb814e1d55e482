/* HTTP glue of the KBS protocol (docs/protocol.md, "KBS protocol"): the routes under /kbs/v0/
 * hand the body, the kbs-session-id cookie and the bearer token to the transport-neutral
 * engine (attest/kbs_service.c) and turn its reply into the HTTP answer. Also sets up the
 * engine's keys: the KBS binding key, the token key and the master key, each created on
 * first start when missing. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app_internal.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/kbs_service.h"
#include "vtpmca/key_release.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/log.h"

#define RESOURCE_PREFIX "/kbs/v0/resource/"

struct server_kbs {
    kbs_service *service;
    key_release *release;
    keyvault *vault;
    EVP_PKEY *kbs_key;
    EVP_PKEY *token_key;
};

/* ---- setup ---- */

static vtpmca_err load_signing_key(const char *path, const char *want_alg, const char *what,
                                   EVP_PKEY **out, vtpmca_diag *diag)
{
    kbs_key_curve curve = strcmp(want_alg, "ES256") == 0 ? KBS_KEY_P256 : KBS_KEY_P384;
    vtpmca_err err = kbs_key_load_or_create(path, curve, out, NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    const char *alg = jws_es_alg(*out);
    if (alg == NULL || strcmp(alg, want_alg) != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "%s %.200s holds a %s key but the configuration asks for %s", what, path,
                           alg != NULL ? alg : "different", want_alg);
    }
    return VTPMCA_OK;
}

vtpmca_err server_kbs_setup(server_app *app, vtpmca_diag *diag)
{
    const server_config *cfg = &app->config;
    server_kbs *kbs = calloc(1, sizeof(*kbs));
    if (kbs == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    app->kbs = kbs;
    char path[SERVER_CONFIG_PATH_MAX + 32];
    const char *kbs_alg = strcmp(cfg->kbs_key_curve, "p256") == 0 ? "ES256" : "ES384";
    vtpmca_err err =
        server_state_path(cfg, cfg->kbs_key_file, "kbs-key.pem", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = load_signing_key(path, kbs_alg, "kbs_key_file", &kbs->kbs_key, diag);
    if (err == VTPMCA_OK)
        err = server_state_path(cfg, cfg->kbs_token_key_file, "token-key.pem", path, sizeof(path),
                                diag);
    if (err == VTPMCA_OK)
        err =
            load_signing_key(path, cfg->kbs_token_alg, "kbs_token_key_file", &kbs->token_key, diag);
    if (err == VTPMCA_OK)
        err = server_state_path(cfg, cfg->master_key_file, "master.key", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(path, true, &kbs->vault, diag);
    if (err == VTPMCA_OK) {
        key_release_config rc = {
            .store = app->store, .vault = kbs->vault, .policies = app->policies};
        err = key_release_new(&rc, &kbs->release, diag);
        if (err == VTPMCA_OK)
            err = key_release_set_wrapped_hook(kbs->release, server_ledger_on_wrapped_release, app);
    }
    if (err == VTPMCA_OK) {
        kbs_service_config sc = {
            .verifier = app->verifier,
            .release = kbs->release,
            .kbs_key = kbs->kbs_key,
            .token_key = kbs->token_key,
            .sessions = {.capacity = cfg->kbs_session_capacity,
                         .auth_ttl_s = cfg->kbs_auth_ttl_s,
                         .attested_ttl_s = cfg->kbs_session_ttl_s},
        };
        err = kbs_service_new(&sc, &kbs->service, diag);
    }
    if (err != VTPMCA_OK)
        return err; /* server_app_free releases what was made */
    char kid[EAR_TOKEN_KID_SIZE], kbs_kid[EAR_TOKEN_KID_SIZE];
    if (ear_token_kid(kbs->kbs_key, kbs_kid, NULL) != VTPMCA_OK ||
        ear_token_kid(kbs->token_key, kid, NULL) != VTPMCA_OK)
        kid[0] = kbs_kid[0] = '\0';
    vtpmca_log(VTPMCA_LOG_INFO, "kbs.ready", "kbs_key_alg", kbs_alg, "kbs_key_fingerprint", kbs_kid,
               "token_alg", cfg->kbs_token_alg, "token_kid", kid, NULL);
    return VTPMCA_OK;
}

void server_kbs_free(server_kbs *kbs)
{
    if (kbs == NULL)
        return;
    kbs_service_free(kbs->service);
    key_release_free(kbs->release);
    keyvault_free(kbs->vault);
    EVP_PKEY_free(kbs->kbs_key);
    EVP_PKEY_free(kbs->token_key);
    free(kbs);
}

vtpmca_err server_kbs_metrics_append(const server_kbs *kbs, char **text, size_t *len)
{
    if (kbs == NULL || kbs->service == NULL)
        return VTPMCA_OK;
    char *extra = NULL;
    size_t extra_len = 0;
    vtpmca_err err = kbs_service_metrics_render(kbs->service, &extra, &extra_len);
    if (err != VTPMCA_OK)
        return err;
    err = server_metrics_join(text, len, extra, extra_len);
    free(extra);
    return err;
}

/* ---- handlers ---- */

static void send_reply(kbs_reply *reply, server_response *response)
{
    if (reply->status == 0 || (reply->body == NULL && reply->text == NULL)) {
        server_response_error(response, 500, "internal", "the KBS engine produced no answer");
        kbs_reply_clear(reply);
        return;
    }
    /* The 200 answers come as text, sent as they are; the others as objects. Either way the
     * response takes the body over. */
    if (reply->text != NULL) {
        server_response_text(response, reply->status, SERVER_JSON_CONTENT_TYPE, reply->text,
                             reply->text_len);
        reply->text = NULL;
    } else {
        server_response_json(response, reply->status, reply->body);
        reply->body = NULL;
    }
    if (reply->set_cookie[0] != '\0')
        server_response_add_header(response, MHD_HTTP_HEADER_SET_COOKIE, reply->set_cookie);
    if (reply->retry_after_s > 0) {
        char seconds[16];
        snprintf(seconds, sizeof(seconds), "%u", reply->retry_after_s);
        server_response_add_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    kbs_reply_clear(reply);
}

static const char *session_cookie(const server_request *request)
{
    return MHD_lookup_connection_value(request->connection, MHD_COOKIE_KIND, KBS_COOKIE_NAME);
}

/* The token of "Authorization: Bearer <token>", "" for any other scheme (so the engine
 * refuses it as an invalid token), NULL without the header. */
static const char *bearer_token(const server_request *request)
{
    const char *value = MHD_lookup_connection_value(request->connection, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (value == NULL)
        return NULL;
    if (strncasecmp(value, "Bearer ", 7) != 0)
        return "";
    value += 7;
    while (*value == ' ')
        value++;
    return value;
}

/* The engine's result as the HTTP answer: its reply, or a 500 when it made none. */
static void answer(vtpmca_err err, kbs_reply *reply, server_response *response)
{
    if (err != VTPMCA_OK) {
        kbs_reply_clear(reply);
        server_response_error(response, 500, "internal", "KBS request failed (%s)",
                              vtpmca_err_name(err));
        return;
    }
    send_reply(reply, response);
}

void server_handle_kbs_auth(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    kbs_reply reply;
    vtpmca_err err = kbs_service_auth(app->kbs->service, request->body, request->body_len, &reply);
    answer(err, &reply, response);
}

void server_handle_kbs_attest(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    kbs_reply reply;
    vtpmca_err err = kbs_service_attest(app->kbs->service, session_cookie(request), request->body,
                                        request->body_len, &reply);
    answer(err, &reply, response);
}

/* A release waiting for its audit row, and the deferred request it answers. */
struct pending_release {
    server_app *app;
    kbs_release *release;
    server_deferred *deferred;
    vtpmca_err audit_err;
    server_pool_task task; /* when ending the release writes to the store */
};

static void end_release(server_app *app, kbs_release *release, vtpmca_err audit_err,
                        server_response *response)
{
    kbs_reply reply;
    vtpmca_err err = kbs_service_resource_end(app->kbs->service, release, audit_err, &reply);
    answer(err, &reply, response);
}

static void finish_release(void *arg)
{
    struct pending_release *p = arg;
    server_response response = {0};
    end_release(p->app, p->release, p->audit_err, &response);
    server_deferred_finish(p->deferred, &response);
    free(p);
}

/* The store's report on the audit row. It runs on the store's commit thread, which must not
 * wait for the store: a release whose end writes there goes to the commit pool. */
static void on_release_audited(void *arg, vtpmca_err err, const char *detail)
{
    struct pending_release *p = arg;
    p->audit_err = err;
    if (err != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "kbs.audit_failed", "detail", detail, NULL);
    if (kbs_release_writes_store(p->release)) {
        p->task = (server_pool_task){.run = finish_release, .arg = p};
        server_pool_post(p->app->commit_pool, &p->task);
        return;
    }
    finish_release(p);
}

/* The decision and the key's encryption run here, in the HTTP worker; the answer leaves only
 * once the audit row is durable. The worker does not wait for that: the request is deferred
 * and the store's group commit reports, so many releases share each fsync and the cores
 * spend no time handing requests to waiting threads. */
void server_handle_kbs_resource(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    const char *path = request->path + strlen(RESOURCE_PREFIX);
    /* A POST always carries the wrapped key; an empty one must not read as a GET. */
    bool post = strcmp(request->method, "POST") == 0;
    const uint8_t *body =
        post ? (request->body != NULL ? request->body : (const uint8_t *)"") : NULL;
    kbs_reply reply;
    kbs_release *release = NULL;
    vtpmca_err err = kbs_service_resource_begin(app->kbs->service, session_cookie(request),
                                                bearer_token(request), path, body,
                                                post ? request->body_len : 0, &reply, &release);
    if (err != VTPMCA_OK || release == NULL) {
        answer(err, &reply, response);
        return;
    }
    const store_audit_event *row = kbs_release_audit_row(release);
    struct pending_release *p = calloc(1, sizeof(*p));
    if (p == NULL || server_request_defer(request, &p->deferred) != VTPMCA_OK) {
        free(p); /* not deferrable (not an HTTP request, or no memory): wait here */
        end_release(app, release, store_audit_append(app->store, row, NULL), response);
        return;
    }
    p->app = app;
    p->release = release;
    vtpmca_diag diag = {{0}};
    if (store_audit_append_async(app->store, row, on_release_audited, p, &diag) != VTPMCA_OK)
        on_release_audited(p, VTPMCA_ERR_STORE, diag.msg);
}
