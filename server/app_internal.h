/* Private to server/: the application struct and the route handlers defined outside app.c. */
#ifndef VTPMCA_SERVER_APP_INTERNAL_H
#define VTPMCA_SERVER_APP_INTERNAL_H

#include <time.h>

#include "vtpmca/admin_auth.h"
#include "vtpmca/kds.h"
#include "vtpmca/server_app.h"
#include "vtpmca/server_config.h"
#include "vtpmca/server_http.h"
#include "vtpmca/server_metrics.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

/* The KBS protocol engine and its keys (server/kbs_routes.c). */
typedef struct server_kbs server_kbs;

struct server_app {
    server_config config;
    store *store;
    snp_roots *roots;
    kds_client *kds; /* NULL when KDS is disabled */
    snp_verifier *verifier;
    policy_cache *policies;
    server_metrics *metrics;
    server_http *http; /* NULL unless started */
    struct timespec started_monotonic;
    time_t started_wall;
    admin_auth *admin;  /* admin API keys and replay cache; no keys = every admin call is 401 */
    char *tls_cert_pem; /* read at start when HTTPS is configured */
    char *tls_key_pem;  /* wiped when freed */
    size_t tls_key_len;
    server_kbs *kbs; /* KBS protocol 0.4.0 */
};

/* POST /v1/snp/verify (server/snp_verify.c). */
void server_handle_snp_verify(void *ctx, const server_request *request, server_response *response);

/* Everything under /v1/admin/ (server/admin_routes.c): authenticates the bearer token, then
 * dispatches through the admin route table there. */
void server_handle_admin(void *ctx, const server_request *request, server_response *response);

/* Loads the configured admin keys into app->admin (server/admin_routes.c). */
vtpmca_err server_admin_setup(server_app *app, vtpmca_diag *diag);

/* KBS protocol 0.4.0 (server/kbs_routes.c): POST /kbs/v0/auth, POST /kbs/v0/attest and
 * GET|POST /kbs/v0/resource/<repo>/<type>/<tag>. */
void server_handle_kbs_auth(void *ctx, const server_request *request, server_response *response);
void server_handle_kbs_attest(void *ctx, const server_request *request,
                              server_response *response);
void server_handle_kbs_resource(void *ctx, const server_request *request,
                                server_response *response);

/* Loads (creating when missing) the KBS, token and master keys and builds app->kbs. */
vtpmca_err server_kbs_setup(server_app *app, vtpmca_diag *diag);
void server_kbs_free(server_kbs *kbs);

/* Appends the KBS metrics to the rendered /metrics text (*text is realloc'd). */
vtpmca_err server_kbs_metrics_append(const server_kbs *kbs, char **text, size_t *len);

#endif
