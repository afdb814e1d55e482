/* vtpmcad application: owns the services, the route table and the small GET handlers. */
#include "app_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (server_metrics_render(app->metrics, &external, &text, &len) != VTPMCA_OK) {
        server_response_error(response, 503, "unavailable", "cannot render metrics");
        return;
    }
    server_response_text(response, 200, SERVER_METRICS_CONTENT_TYPE, text, len);
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
    if (err != VTPMCA_OK) {
        server_app_free(app);
        return err;
    }
    *out = app;
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
    vtpmca_err err =
        server_http_start(&hc, app_routes, N_APP_ROUTES, app, app->metrics, &app->http, diag);
    if (err != VTPMCA_OK)
        return err;
    char port[16];
    snprintf(port, sizeof(port), "%u", server_http_port(app->http));
    if (cfg->port_file[0] != '\0') {
        char line[20];
        int n = snprintf(line, sizeof(line), "%s\n", port);
        err = vt_file_write_atomic(cfg->port_file, line, (size_t)n, 0644, diag);
        if (err != VTPMCA_OK) {
            server_http_stop(app->http, 0);
            app->http = NULL;
            return err;
        }
    }
    vtpmca_log(VTPMCA_LOG_INFO, "start", "version", server_version(), "listen", cfg->listen, "port",
               port, "db", cfg->db, "kds", app->kds != NULL ? "enabled" : "disabled", NULL);
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
    if (app->config.port_file[0] != '\0')
        unlink(app->config.port_file);
    vtpmca_log(VTPMCA_LOG_INFO, "http.stopped", NULL);
}

void server_app_free(server_app *app)
{
    if (app == NULL)
        return;
    server_app_stop(app);
    server_metrics_free(app->metrics);
    policy_cache_free(app->policies);
    snp_verifier_free(app->verifier);
    kds_client_free(app->kds);
    snp_roots_free(app->roots);
    store_close(app->store);
    free(app);
}
