/* HTTP glue of evidence-bound EK/IAK certificate issuance (docs/protocol.md, "EK/IAK
 * certificate issuance"): POST /v1/ca/challenge, /v1/ca/certify, /v1/ca/activate/start and
 * /v1/ca/activate/finish hand their bodies (JSON or CBOR) to the transport-neutral engine
 * (ca/issuance.c) and answer in the request's encoding; refusals are JSON
 * {"error","message"}. Also sets the engine up: the CA (app->ca, opened by
 * server/ca_public_routes.c), the trusted KBS keys (this service's own plus the PEM public
 * keys in trusted_kbs_keys_dir) and the base URL of CRL distribution points and AIA. */
#include <arpa/inet.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "app_internal.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/issuance.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/log.h"

#define TRUSTED_KBS_KEYS_MAX 64

struct server_certify {
    issuance *engine;
};

/* ---- set-up ---- */

static vtpmca_err add_fingerprint(uint8_t (*keys)[ISSUANCE_KBS_KEY_HASH_LEN], size_t *n,
                                  const EVP_PKEY *key, const char *what, vtpmca_diag *diag)
{
    if (*n == TRUSTED_KBS_KEYS_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "more than %d trusted KBS keys",
                           TRUSTED_KBS_KEYS_MAX);
    vtpmca_err err = kbs_key_fingerprint(key, keys[*n], diag);
    if (err != VTPMCA_OK)
        return err;
    char hex[2 * ISSUANCE_KBS_KEY_HASH_LEN + 1];
    vt_hex_encode(keys[*n], ISSUANCE_KBS_KEY_HASH_LEN, hex, sizeof(hex));
    vtpmca_log(VTPMCA_LOG_INFO, "ca.trusted_kbs_key", "source", what, "fingerprint", hex, NULL);
    (*n)++;
    return VTPMCA_OK;
}

/* The peer KBS public keys: every *.pem file of the directory must hold one. */
static vtpmca_err load_peer_keys(const char *dir, uint8_t (*keys)[ISSUANCE_KBS_KEY_HASH_LEN],
                                 size_t *n, vtpmca_diag *diag)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "trusted_kbs_keys_dir %.200s cannot be read", dir);
    vtpmca_err err = VTPMCA_OK;
    struct dirent *entry;
    while (err == VTPMCA_OK && (entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len < 5 || strcmp(entry->d_name + len - 4, ".pem") != 0)
            continue;
        char path[SERVER_CONFIG_PATH_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        uint8_t *pem = NULL;
        size_t pem_len = 0;
        err = vt_file_read(path, KBS_KEY_FILE_MAX, &pem, &pem_len, diag);
        if (err != VTPMCA_OK)
            break;
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        EVP_PKEY *key = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        free(pem);
        if (key == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                              "trusted KBS key %.200s is not a PEM public key", path);
        else
            err = add_fingerprint(keys, n, key, path, diag);
        EVP_PKEY_free(key);
    }
    closedir(d);
    return err;
}

/* This service's own KBS key (created by server_kbs_setup) and the configured peers'. */
static vtpmca_err trusted_kbs_keys(const server_config *cfg,
                                   uint8_t (*keys)[ISSUANCE_KBS_KEY_HASH_LEN], size_t *n,
                                   vtpmca_diag *diag)
{
    char path[SERVER_CONFIG_PATH_MAX + 32];
    vtpmca_err err =
        server_state_path(cfg, cfg->kbs_key_file, "kbs-key.pem", path, sizeof(path), diag);
    EVP_PKEY *own = NULL;
    if (err == VTPMCA_OK)
        err = kbs_key_load(path, &own, diag);
    if (err == VTPMCA_OK)
        err = add_fingerprint(keys, n, own, "own", diag);
    EVP_PKEY_free(own);
    if (err == VTPMCA_OK && cfg->trusted_kbs_keys_dir[0] != '\0')
        err = load_peer_keys(cfg->trusted_kbs_keys_dir, keys, n, diag);
    return err;
}

vtpmca_err server_certify_reload_trusted(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: missing argument");
    if (app->certify == NULL)
        return VTPMCA_OK; /* no CA: nothing checks KBS keys */
    uint8_t keys[TRUSTED_KBS_KEYS_MAX][ISSUANCE_KBS_KEY_HASH_LEN];
    size_t n = 0;
    vtpmca_err err = trusted_kbs_keys(&app->config, keys, &n, diag);
    if (err == VTPMCA_OK)
        err = issuance_set_trusted_kbs_keys(
            app->certify->engine, (const uint8_t(*)[ISSUANCE_KBS_KEY_HASH_LEN])keys, n, diag);
    return err;
}

vtpmca_err server_certify_setup(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: missing argument");
    if (app->ca == NULL)
        return VTPMCA_OK; /* the routes answer 503 ca_not_initialized */
    const server_config *cfg = &app->config;
    uint8_t keys[TRUSTED_KBS_KEYS_MAX][ISSUANCE_KBS_KEY_HASH_LEN];
    size_t n = 0;
    vtpmca_err err = trusted_kbs_keys(cfg, keys, &n, diag);
    if (err != VTPMCA_OK)
        return err;
    server_certify *certify = calloc(1, sizeof(*certify));
    if (certify == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "certify: out of memory");
    app->certify = certify;
    issuance_config ic = {
        .store = app->store,
        .verifier = app->verifier,
        .policies = app->policies,
        .ca = app->ca,
        .trusted_kbs_keys = (const uint8_t(*)[ISSUANCE_KBS_KEY_HASH_LEN])keys,
        .n_trusted_kbs_keys = n,
        .challenge_capacity = cfg->ca_challenge_capacity,
        .challenge_ttl_s = cfg->ca_challenge_ttl_s,
        .activation_capacity = cfg->ca_activation_capacity,
        .activation_ttl_s = cfg->ca_activation_ttl_s,
        .require_iak_activation = cfg->ca_require_iak_activation,
    };
    ek_profile_config_default(&ic.profile);
    /* Without a configured base URL the engine waits for server_certify_started. */
    ic.profile.base_url = cfg->ca_base_url[0] != '\0' ? cfg->ca_base_url : NULL;
    vtpmca_diag inner = {{0}};
    err = issuance_new(&ic, &certify->engine, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "certificate issuance: %.200s", inner.msg);
    return VTPMCA_OK;
}

void server_certify_started(server_app *app, unsigned port)
{
    if (app == NULL || app->certify == NULL || app->config.ca_base_url[0] != '\0')
        return;
    /* The daemon's own address: right for local clients; set ca_base_url for others. */
    const server_config *cfg = &app->config;
    struct in6_addr v6;
    bool ipv6 = inet_pton(AF_INET6, cfg->listen, &v6) == 1;
    char url[EK_PROFILE_BASE_URL_MAX + 1];
    snprintf(url, sizeof(url), "%s://%s%s%s:%u", cfg->tls_cert_file[0] != '\0' ? "https" : "http",
             ipv6 ? "[" : "", cfg->listen, ipv6 ? "]" : "", port);
    vtpmca_diag diag = {{0}};
    if (issuance_set_base_url(app->certify->engine, url, &diag) != VTPMCA_OK) {
        vtpmca_log(VTPMCA_LOG_ERROR, "ca.base_url", "url", url, "reason", diag.msg, NULL);
        return;
    }
    vtpmca_log(VTPMCA_LOG_WARN, "ca.base_url", "url", url, "message",
               "ca_base_url is not set: issued certificates point their CRL distribution point "
               "and AIA at this listen address; set ca_base_url to the service's public URL",
               NULL);
}

void server_certify_free(server_certify *certify)
{
    if (certify == NULL)
        return;
    issuance_free(certify->engine);
    free(certify);
}

vtpmca_err server_certify_metrics_append(const server_certify *certify, char **text, size_t *len)
{
    if (certify == NULL || certify->engine == NULL)
        return VTPMCA_OK;
    issuance_stats s;
    issuance_get_stats(certify->engine, &s);
    char extra[768];
    int n = snprintf(extra, sizeof(extra),
                     "# HELP vtpmca_ca_challenges_total Issuance challenges made.\n"
                     "# TYPE vtpmca_ca_challenges_total counter\n"
                     "vtpmca_ca_challenges_total %llu\n"
                     "# HELP vtpmca_ca_certify_total Certify requests by outcome.\n"
                     "# TYPE vtpmca_ca_certify_total counter\n"
                     "vtpmca_ca_certify_total{outcome=\"issued\"} %llu\n"
                     "vtpmca_ca_certify_total{outcome=\"refused\"} %llu\n"
                     "# HELP vtpmca_ca_activations_total Credential activations by step.\n"
                     "# TYPE vtpmca_ca_activations_total counter\n"
                     "vtpmca_ca_activations_total{step=\"started\"} %llu\n"
                     "vtpmca_ca_activations_total{step=\"proven\"} %llu\n",
                     (unsigned long long)s.challenges, (unsigned long long)s.issued,
                     (unsigned long long)s.refused, (unsigned long long)s.activations_started,
                     (unsigned long long)s.activations_proven);
    if (n < 0 || (size_t)n >= sizeof(extra))
        return VTPMCA_ERR_INTERNAL;
    return server_metrics_join(text, len, extra, (size_t)n);
}

/* ---- requests ---- */

/* The engine, or NULL after answering 503 (no CA). */
static issuance *engine_of(void *ctx, server_response *response)
{
    server_app *app = ctx;
    if (app->certify != NULL && app->certify->engine != NULL)
        return app->certify->engine;
    server_response_error(response, 503, "ca_not_initialized",
                          "this service has no certificate authority yet: run 'vtpmca ca init' "
                          "on the server, then restart vtpmcad");
    return NULL;
}

/* The client's address, for logs and the audit actor. */
static void client_of(const server_request *request, char *out, size_t size)
{
    snprintf(out, size, "unknown");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(request->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
}

static issuance_encoding request_encoding(const server_request *request)
{
    return server_request_is_cbor(request) ? ISSUANCE_ENC_CBOR : ISSUANCE_ENC_JSON;
}

/* A body decoding failure: 413 for oversized fields, else 400. */
static void answer_decode_error(server_response *response, vtpmca_err err, const char *message)
{
    if (err == VTPMCA_ERR_LIMIT)
        server_response_error(response, 413, "field_too_large", "%s", message);
    else if (err == VTPMCA_ERR_PARSE)
        server_response_error(response, 400, "bad_request", "%s", message);
    else
        server_response_error(response, 500, "internal", "cannot read the request");
}

static void answer_refusal(server_response *response, issuance_outcome outcome, const char *message)
{
    server_response_error(response, issuance_outcome_status(outcome),
                          issuance_outcome_name(outcome), "%s", message);
    if (outcome == ISSUANCE_UNAVAILABLE)
        server_response_add_header(response, MHD_HTTP_HEADER_RETRY_AFTER, "5");
}

static void answer_body(server_response *response, issuance_encoding enc, vtpmca_err err,
                        uint8_t *body, size_t len)
{
    if (err != VTPMCA_OK) {
        free(body);
        server_response_error(response, 500, "internal", "cannot encode the answer");
        return;
    }
    server_response_text(response, 200,
                         enc == ISSUANCE_ENC_CBOR ? SERVER_CBOR_CONTENT_TYPE
                                                  : SERVER_JSON_CONTENT_TYPE,
                         (char *)body, len);
}

void server_handle_ca_challenge(void *ctx, const server_request *request, server_response *response)
{
    issuance *engine = engine_of(ctx, response);
    if (engine == NULL)
        return;
    /* No body: the answer is CBOR when the client accepts exactly that. */
    issuance_encoding enc = ISSUANCE_ENC_JSON;
    const char *accept =
        MHD_lookup_connection_value(request->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (issuance_encoding_from_type(accept, &enc) != VTPMCA_OK)
        enc = ISSUANCE_ENC_JSON;
    uint8_t nonce[ISSUANCE_NONCE_LEN];
    unsigned expires_in = 0;
    uint8_t *body = NULL;
    size_t len = 0;
    vtpmca_err err = issuance_challenge(engine, nonce, &expires_in, NULL);
    if (err == VTPMCA_OK)
        err = issuance_encode_challenge(enc, nonce, expires_in, &body, &len, NULL);
    answer_body(response, enc, err, body, len);
}

/* Runs on the commit pool: a certification waits until its rows are durable. */
static void certify_now(void *ctx, const server_request *request, server_response *response)
{
    issuance *engine = engine_of(ctx, response);
    if (engine == NULL)
        return;
    issuance_encoding enc = request_encoding(request);
    issuance_certify_request rq;
    issuance_message msg;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        issuance_decode_certify(enc, request->body, request->body_len, &rq, &msg, &diag);
    if (err != VTPMCA_OK) {
        answer_decode_error(response, err, diag.msg);
        return;
    }
    char client[INET6_ADDRSTRLEN];
    client_of(request, client, sizeof(client));
    rq.client = client;
    issuance_certify_result res;
    err = issuance_certify(engine, &rq, &res, &diag);
    issuance_message_free(&msg);
    if (err != VTPMCA_OK) {
        server_response_error(response, 500, "internal", "certification failed (%s)",
                              vtpmca_err_name(err));
        return;
    }
    if (res.outcome != ISSUANCE_OK) {
        answer_refusal(response, res.outcome, res.message);
    } else {
        uint8_t *body = NULL;
        size_t len = 0;
        err = issuance_encode_certify(enc, &res, &body, &len, NULL);
        answer_body(response, enc, err, body, len);
    }
    issuance_certify_result_clear(&res);
}

void server_handle_ca_certify(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    server_pool_run(app->commit_pool, certify_now, app, request, response);
}

void server_handle_ca_activate_start(void *ctx, const server_request *request,
                                     server_response *response)
{
    issuance *engine = engine_of(ctx, response);
    if (engine == NULL)
        return;
    issuance_encoding enc = request_encoding(request);
    issuance_activation_request rq;
    issuance_message msg;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        issuance_decode_activation_start(enc, request->body, request->body_len, &rq, &msg, &diag);
    if (err != VTPMCA_OK) {
        answer_decode_error(response, err, diag.msg);
        return;
    }
    char client[INET6_ADDRSTRLEN];
    client_of(request, client, sizeof(client));
    rq.client = client;
    issuance_activation_result res;
    err = issuance_activation_start(engine, &rq, &res, &diag);
    issuance_message_free(&msg);
    if (err != VTPMCA_OK) {
        server_response_error(response, 500, "internal", "activation failed (%s)",
                              vtpmca_err_name(err));
        return;
    }
    if (res.outcome != ISSUANCE_OK) {
        answer_refusal(response, res.outcome, res.message);
    } else {
        uint8_t *body = NULL;
        size_t len = 0;
        err = issuance_encode_activation_start(enc, &res, &body, &len, NULL);
        answer_body(response, enc, err, body, len);
    }
    issuance_activation_result_clear(&res);
}

void server_handle_ca_activate_finish(void *ctx, const server_request *request,
                                      server_response *response)
{
    issuance *engine = engine_of(ctx, response);
    if (engine == NULL)
        return;
    issuance_encoding enc = request_encoding(request);
    const char *id = NULL;
    const uint8_t *secret = NULL;
    size_t secret_len = 0;
    issuance_message msg;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = issuance_decode_activation_finish(enc, request->body, request->body_len, &id,
                                                       &secret, &secret_len, &msg, &diag);
    if (err != VTPMCA_OK) {
        answer_decode_error(response, err, diag.msg);
        return;
    }
    char client[INET6_ADDRSTRLEN];
    client_of(request, client, sizeof(client));
    issuance_activation_result res;
    err = issuance_activation_finish(engine, id, secret, secret_len, client, &res, &diag);
    issuance_message_free(&msg);
    if (err != VTPMCA_OK) {
        server_response_error(response, 500, "internal", "activation failed (%s)",
                              vtpmca_err_name(err));
        return;
    }
    if (res.outcome != ISSUANCE_OK) {
        answer_refusal(response, res.outcome, res.message);
    } else {
        uint8_t *body = NULL;
        size_t len = 0;
        err = issuance_encode_activation_finish(enc, &res, &body, &len, NULL);
        answer_body(response, enc, err, body, len);
    }
    issuance_activation_result_clear(&res);
}
