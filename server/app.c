/* vtpmcad application: owns the services, the route table and the small GET handlers. */
#include "app_internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vtpmca/fileio.h"
#include "vtpmca/log.h"

static void handle_healthz(void *ctx, const server_request *request, server_response *response);
static void handle_metrics(void *ctx, const server_request *request, server_response *response);

/* Every HTTP route of the daemon. New services add rows here (and a handler). */
static const server_route app_routes[] = {
    {"GET", "/healthz", SERVER_BODY_NONE, handle_healthz},
    {"GET", "/metrics", SERVER_BODY_NONE, handle_metrics},
    {"POST", "/v1/snp/verify", SERVER_BODY_JSON, server_handle_snp_verify},
    /* The admin API authenticates and routes itself (server/admin_routes.c). */
    {"GET", "/v1/admin/*", SERVER_BODY_NONE, server_handle_admin},
    /* Bulk enrollment takes CSV or JSON Lines (server/admin_instance_routes.c). */
    {"POST", "/v1/admin/instances/bulk", SERVER_BODY_ANY, server_handle_admin},
    {"POST", "/v1/admin/*", SERVER_BODY_JSON, server_handle_admin},
    {"DELETE", "/v1/admin/*", SERVER_BODY_NONE, server_handle_admin},
    /* KBS protocol 0.4.0 (server/kbs_routes.c). */
    {"POST", "/kbs/v0/auth", SERVER_BODY_JSON, server_handle_kbs_auth},
    {"POST", "/kbs/v0/attest", SERVER_BODY_JSON, server_handle_kbs_attest},
    {"GET", "/kbs/v0/resource/*", SERVER_BODY_NONE, server_handle_kbs_resource},
    {"POST", "/kbs/v0/resource/*", SERVER_BODY_JSON, server_handle_kbs_resource},
    /* The CA's public routes (server/ca_public_routes.c). */
    {"GET", "/v1/ca/chain", SERVER_BODY_NONE, server_handle_ca_chain},
    {"GET", "/v1/ca/crl", SERVER_BODY_NONE, server_handle_ca_crl},
    /* Evidence-bound EK/IAK issuance (server/ca_routes.c). */
    {"POST", "/v1/ca/challenge", SERVER_BODY_NONE, server_handle_ca_challenge},
    {"POST", "/v1/ca/certify", SERVER_BODY_JSON_OR_CBOR, server_handle_ca_certify},
    {"POST", "/v1/ca/activate/start", SERVER_BODY_JSON_OR_CBOR, server_handle_ca_activate_start},
    {"POST", "/v1/ca/activate/finish", SERVER_BODY_JSON_OR_CBOR, server_handle_ca_activate_finish},
    /* The rollback ledger (server/ledger_routes.c). */
    {"POST", "/v1/ledger/advance", SERVER_BODY_JSON_OR_CBOR, server_handle_ledger_advance},
    {"POST", "/v1/ledger/query", SERVER_BODY_JSON_OR_CBOR, server_handle_ledger_query},
    {"POST", "/v1/ledger/statement", SERVER_BODY_JSON_OR_CBOR, server_handle_ledger_statement},
};
#define N_APP_ROUTES (sizeof(app_routes) / sizeof(app_routes[0]))

static double uptime_s(const server_app *app)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - app->started_monotonic.tv_sec) +
           (double)(now.tv_nsec - app->started_monotonic.tv_nsec) / 1e9;
}

static void handle_healthz(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    (void)request;
    int schema = 0;
    vtpmca_err err = store_schema_version(app->store, &schema);
    if (err != VTPMCA_OK) {
        server_response_json(response, 503,
                             json_pack("{s:s, s:s, s:s}", "status", "unavailable", "error",
                                       "store_unavailable", "message", "the store cannot be read"));
        return;
    }
    server_response_json(response, 200,
                         json_pack("{s:s, s:i, s:I}", "status", "ok", "schema_version", schema,
                                   "uptime_s", (json_int_t)uptime_s(app)));
}

static void handle_metrics(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    (void)request;
    snp_verifier_stats verifier_stats;
    snp_verifier_get_stats(app->verifier, &verifier_stats);
    kds_stats kds = {0};
    if (app->kds != NULL)
        kds_client_stats(app->kds, &kds);
    server_metrics_external external = {
        .version = server_version(),
        .start_time_s = (double)app->started_wall,
        .verifier = &verifier_stats,
        .kds = app->kds != NULL ? &kds : NULL,
        .policy_cache_entries = policy_cache_size(app->policies),
    };
    char *text = NULL;
    size_t len = 0;
    if (server_metrics_render(app->metrics, &external, &text, &len) != VTPMCA_OK ||
        server_kbs_metrics_append(app->kbs, &text, &len) != VTPMCA_OK ||
        server_ledger_metrics_append(app->ledger, &text, &len) != VTPMCA_OK ||
        server_certify_metrics_append(app->certify, &text, &len) != VTPMCA_OK) {
        free(text);
        server_response_error(response, 503, "unavailable", "cannot render metrics");
        return;
    }
    server_response_text(response, 200, SERVER_METRICS_CONTENT_TYPE, text, len);
}

vtpmca_err server_metrics_join(char **text, size_t *len, const char *extra, size_t extra_len)
{
    if (text == NULL || len == NULL || extra == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    char *joined = realloc(*text, *len + extra_len + 1);
    if (joined == NULL)
        return VTPMCA_ERR_NOMEM;
    memcpy(joined + *len, extra, extra_len + 1);
    *text = joined;
    *len += extra_len;
    return VTPMCA_OK;
}

vtpmca_err server_state_path(const server_config *cfg, const char *configured, const char *name,
                             char *out, size_t out_size, vtpmca_diag *diag)
{
    if (cfg == NULL || configured == NULL || name == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "state path: missing argument");
    int n = configured[0] != '\0' ? snprintf(out, out_size, "%s", configured)
                                  : snprintf(out, out_size, "%s/%s", cfg->state_dir, name);
    if (n < 0 || (size_t)n >= out_size)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the path for %s is too long", name);
    return VTPMCA_OK;
}

static vtpmca_err load_roots(server_app *app, vtpmca_diag *diag)
{
    vtpmca_err err = snp_roots_new_builtin(&app->roots, diag);
    if (err != VTPMCA_OK)
        return err;
    if (app->config.extra_roots_dir[0] == '\0')
        return VTPMCA_OK;
    err = snp_roots_add_dir(app->roots, app->config.extra_roots_dir, diag);
    if (err != VTPMCA_OK)
        return err;
    vtpmca_log(VTPMCA_LOG_WARN, "roots.extra_trusted", "dir", app->config.extra_roots_dir,
               "message",
               "trusting extra SEV-SNP roots from this directory in addition to AMD's; "
               "evidence signed by them (e.g. test roots) will verify",
               NULL);
    return VTPMCA_OK;
}

static vtpmca_err make_kds(server_app *app, vtpmca_diag *diag)
{
    if (app->config.kds_url[0] == '\0')
        return VTPMCA_OK;
    kds_config kds = {
        .base_url = app->config.kds_url,
        .timeout_ms = app->config.kds_timeout_ms,
        .rate_per_sec = app->config.kds_rate,
        .burst = app->config.kds_burst,
    };
    vtpmca_err err = kds_client_new(&kds, &app->kds, diag);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "kds.enabled", "url", app->config.kds_url, NULL);
    return err;
}

static vtpmca_err make_metrics(server_app *app)
{
    const char **labels = NULL;
    size_t n_labels = 0;
    vtpmca_err err = server_http_route_labels(app_routes, N_APP_ROUTES, &labels, &n_labels);
    if (err != VTPMCA_OK)
        return err;
    err = server_metrics_new(labels, n_labels, &app->metrics);
    free(labels);
    return err;
}

vtpmca_err server_app_new(const server_config *config, server_app **out, vtpmca_diag *diag)
{
    if (config == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "app: missing argument");
    server_app *app = calloc(1, sizeof(*app));
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    app->config = *config;
    clock_gettime(CLOCK_MONOTONIC, &app->started_monotonic);
    app->started_wall = time(NULL);

    vtpmca_err err = vt_mkdir_p(app->config.state_dir, 0700, diag);
    if (err == VTPMCA_OK)
        err = store_open(app->config.db, &app->store, diag);
    if (err == VTPMCA_OK)
        err = load_roots(app, diag);
    if (err == VTPMCA_OK)
        err = make_kds(app, diag);
    if (err == VTPMCA_OK) {
        snp_verifier_config vc = {
            .roots = app->roots,
            .store = app->store,
            .kds = app->kds,
            .cache_entries = app->config.vcek_cache_entries,
            .default_product = app->config.default_product,
        };
        err = snp_verifier_new(&vc, &app->verifier, diag);
    }
    if (err == VTPMCA_OK) {
        err = policy_cache_new(app->store, app->config.policy_cache_entries,
                               app->config.policy_refresh_ms, &app->policies);
        if (err != VTPMCA_OK)
            vtpmca_fail(diag, err, "cannot create the policy cache");
    }
    if (err == VTPMCA_OK) {
        err = make_metrics(app);
        if (err != VTPMCA_OK)
            vtpmca_fail(diag, err, "cannot create the metrics");
    }
    if (err == VTPMCA_OK)
        err = server_admin_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_kbs_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_ca_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_ledger_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_admin_fleet_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_certify_setup(app, diag);
    if (err == VTPMCA_OK)
        err = server_pool_start("commit",
                                app->config.commit_workers > 0 ? app->config.commit_workers : 1,
                                &app->commit_pool, diag);
    if (err != VTPMCA_OK) {
        server_app_free(app);
        return err;
    }
    *out = app;
    return VTPMCA_OK;
}

#define TLS_FILE_MAX (1u << 20)

static void free_tls_material(server_app *app)
{
    free(app->tls_cert_pem);
    app->tls_cert_pem = NULL;
    if (app->tls_key_pem != NULL)
        OPENSSL_clear_free(app->tls_key_pem, app->tls_key_len);
    app->tls_key_pem = NULL;
    app->tls_key_len = 0;
}

/* Checks the PEM files with OpenSSL before GnuTLS sees them: precise messages, and no
 * half-loaded credentials inside libmicrohttpd on a failed start. */
static vtpmca_err check_tls_pair(const char *cert_pem, size_t cert_len, const char *key_pem,
                                 size_t key_len, vtpmca_diag *diag)
{
    BIO *cert_bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
    BIO *key_bio = BIO_new_mem_buf(key_pem, (int)key_len);
    X509 *cert = cert_bio != NULL ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_bio != NULL ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;
    vtpmca_err err = VTPMCA_OK;
    if (cert == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tls_cert_file: no PEM certificate");
    else if (key == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tls_key_file: no unencrypted PEM private key");
    else if (X509_check_private_key(cert, key) != 1)
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                          "tls_key_file does not hold the key of tls_cert_file's certificate");
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    return err;
}

/* Reads the HTTPS certificate and key (kept until the server stops). */
static vtpmca_err load_tls_material(server_app *app, vtpmca_diag *diag)
{
    const server_config *cfg = &app->config;
    if (cfg->tls_cert_file[0] == '\0')
        return VTPMCA_OK;
    uint8_t *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    vtpmca_err err = vt_file_read(cfg->tls_cert_file, TLS_FILE_MAX, &cert, &cert_len, diag);
    if (err != VTPMCA_OK)
        return err;
    struct stat sb;
    if (stat(cfg->tls_key_file, &sb) == 0 && (sb.st_mode & 077) != 0)
        vtpmca_log(VTPMCA_LOG_WARN, "tls.key_permissions", "file", cfg->tls_key_file, "message",
                   "the TLS private key is accessible to group or others; chmod 600 it", NULL);
    err = vt_file_read(cfg->tls_key_file, TLS_FILE_MAX, &key, &key_len, diag);
    if (err == VTPMCA_OK)
        err = check_tls_pair((const char *)cert, cert_len, (const char *)key, key_len, diag);
    if (err != VTPMCA_OK) {
        free(cert);
        if (key != NULL)
            OPENSSL_clear_free(key, key_len);
        return err;
    }
    app->tls_cert_pem = (char *)cert;
    app->tls_key_pem = (char *)key;
    app->tls_key_len = key_len;
    return VTPMCA_OK;
}

vtpmca_err server_app_start(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "app: missing argument");
    if (app->http != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "the HTTP server is already running");
    const server_config *cfg = &app->config;
    /* A stale port file from an earlier run must not be mistaken for this one. */
    if (cfg->port_file[0] != '\0' && unlink(cfg->port_file) != 0 && errno != ENOENT)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot remove old port file %s: %s",
                           cfg->port_file, strerror(errno));
    server_http_config hc = {
        .listen = cfg->listen,
        .port = cfg->port,
        .threads = cfg->threads,
        .connection_limit = cfg->connection_limit,
        .connection_timeout_s = cfg->connection_timeout_s,
        .max_body_bytes = cfg->max_body_bytes,
    };
    vtpmca_err err = load_tls_material(app, diag);
    if (err != VTPMCA_OK)
        return err;
    hc.tls_cert_pem = app->tls_cert_pem;
    hc.tls_key_pem = app->tls_key_pem;
    err = server_http_start(&hc, app_routes, N_APP_ROUTES, app, app->metrics, &app->http, diag);
    if (err != VTPMCA_OK) {
        free_tls_material(app);
        return err;
    }
    char port[16];
    snprintf(port, sizeof(port), "%u", server_http_port(app->http));
    server_certify_started(app, server_http_port(app->http));
    if (cfg->port_file[0] != '\0') {
        char line[20];
        int n = snprintf(line, sizeof(line), "%s\n", port);
        err = vt_file_write_atomic(cfg->port_file, line, (size_t)n, 0644, diag);
        if (err != VTPMCA_OK) {
            server_http_stop(app->http, 0);
            app->http = NULL;
            free_tls_material(app);
            return err;
        }
    }
    char admin_keys[16];
    snprintf(admin_keys, sizeof(admin_keys), "%zu", admin_auth_key_count(app->admin));
    vtpmca_log(VTPMCA_LOG_INFO, "start", "version", server_version(), "listen", cfg->listen, "port",
               port, "tls", hc.tls_cert_pem != NULL ? "on" : "off", "db", cfg->db, "kds",
               app->kds != NULL ? "enabled" : "disabled", "admin_keys", admin_keys, NULL);
    return VTPMCA_OK;
}

unsigned server_app_port(const server_app *app)
{
    return app != NULL ? server_http_port(app->http) : 0;
}

void server_app_stop(server_app *app)
{
    if (app == NULL || app->http == NULL)
        return;
    server_http_stop(app->http, app->config.shutdown_grace_ms);
    app->http = NULL;
    free_tls_material(app);
    if (app->config.port_file[0] != '\0')
        unlink(app->config.port_file);
    vtpmca_log(VTPMCA_LOG_INFO, "http.stopped", NULL);
}

void server_app_free(server_app *app)
{
    if (app == NULL)
        return;
    server_app_stop(app);
    /* No request is running now (server_http_stop waited for the deferred ones): the pools
     * have nothing left to answer. Both before the store closes. */
    server_pool_stop(app->commit_pool);
    server_ledger_free(app->ledger);
    server_admin_fleet_free(app->fleet_admin);
    admin_auth_free(app->admin);
    server_kbs_free(app->kbs);
    server_certify_free(app->certify);
    app->certify = NULL;
    server_ca_teardown(app);
    server_metrics_free(app->metrics);
    policy_cache_free(app->policies);
    snp_verifier_free(app->verifier);
    kds_client_free(app->kds);
    snp_roots_free(app->roots);
    store_close(app->store);
    free(app);
}
