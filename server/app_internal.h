/* Private to server/: the application struct and the route handlers defined outside app.c. */
#ifndef VTPMCA_SERVER_APP_INTERNAL_H
#define VTPMCA_SERVER_APP_INTERNAL_H

#include <time.h>

#include "vtpmca/admin_auth.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/kds.h"
#include "vtpmca/ledger.h"
#include "vtpmca/server_app.h"
#include "vtpmca/server_config.h"
#include "vtpmca/server_http.h"
#include "vtpmca/server_metrics.h"
#include "vtpmca/server_pool.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

/* The KBS protocol engine and its keys (server/kbs_routes.c). */
typedef struct server_kbs server_kbs;
/* The chain and the cached CRL behind the CA's public routes (server/ca_public_routes.c). */
typedef struct server_ca_public server_ca_public;
/* The rollback ledger: engine, protocol service and their keys (server/ledger_routes.c). */
typedef struct server_ledger server_ledger;
/* Evidence-bound EK/IAK issuance: the engine behind /v1/ca/challenge, certify and activate
 * (server/ca_routes.c). */
typedef struct server_certify server_certify;
/* The master key and KBS public key of the admin API's instance and KBS key routes
 * (server/admin_instance_routes.c; the struct is in server/admin_internal.h). */
typedef struct server_admin_fleet server_admin_fleet;

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
    ca_ctx *ca;      /* the EK/IAK certificate authority; NULL when config.ca_dir holds none */
    server_ca_public *ca_public;     /* what GET /v1/ca/chain and /v1/ca/crl serve */
    server_certify *certify;         /* EK/IAK issuance; NULL without a CA */
    server_ledger *ledger;           /* the rollback ledger */
    server_admin_fleet *fleet_admin; /* for the admin API's instance and KBS key routes */
    server_pool *commit_pool;        /* key releases and certifications: they wait for a commit */
};

/* A key or state file: `configured` when set, else <state_dir>/<name> (server/app.c). */
vtpmca_err server_state_path(const server_config *cfg, const char *configured, const char *name,
                             char *out, size_t out_size, vtpmca_diag *diag);

/* Appends extra_len bytes of exposition text (NUL-terminated at extra[extra_len]) to the
 * malloc'd metrics page *text of *len bytes; the module metrics appenders share it
 * (server/app.c). */
vtpmca_err server_metrics_join(char **text, size_t *len, const char *extra, size_t extra_len);

/* POST /v1/snp/verify (server/snp_verify.c). */
void server_handle_snp_verify(void *ctx, const server_request *request, server_response *response);

/* Everything under /v1/admin/ (server/admin_routes.c): authenticates the bearer token, then
 * dispatches through the admin route table there. */
void server_handle_admin(void *ctx, const server_request *request, server_response *response);

/* Loads the configured admin keys into app->admin (server/admin_routes.c). */
vtpmca_err server_admin_setup(server_app *app, vtpmca_diag *diag);
/* Loads what the admin API's instance and KBS key routes need into app->fleet_admin: the
 * master key and the KBS public key (server/admin_instance_routes.c). Runs after
 * server_kbs_setup, which creates those files when missing. */
vtpmca_err server_admin_fleet_setup(server_app *app, vtpmca_diag *diag);
void server_admin_fleet_free(server_admin_fleet *fleet_admin);

/* KBS protocol 0.4.0 (server/kbs_routes.c): POST /kbs/v0/auth, POST /kbs/v0/attest and
 * GET|POST /kbs/v0/resource/<repo>/<type>/<tag>. */
void server_handle_kbs_auth(void *ctx, const server_request *request, server_response *response);
void server_handle_kbs_attest(void *ctx, const server_request *request, server_response *response);
void server_handle_kbs_resource(void *ctx, const server_request *request,
                                server_response *response);

/* Loads (creating when missing) the KBS, token and master keys and builds app->kbs. */
vtpmca_err server_kbs_setup(server_app *app, vtpmca_diag *diag);
void server_kbs_free(server_kbs *kbs);

/* Appends the KBS metrics to the rendered /metrics text (*text is realloc'd). */
vtpmca_err server_kbs_metrics_append(const server_kbs *kbs, char **text, size_t *len);

/* The CA's public routes (server/ca_public_routes.c): GET /v1/ca/chain (PEM, or
 * ?format=der for the certs-only CMS that AIA caIssuers points to) and GET /v1/ca/crl (DER,
 * reissued after revocations and before nextUpdate). Both answer 503 ca_not_initialized
 * when app->ca is NULL. */
void server_handle_ca_chain(void *ctx, const server_request *request, server_response *response);
void server_handle_ca_crl(void *ctx, const server_request *request, server_response *response);

/* Opens the CA in config.ca_dir into app->ca (left NULL, and logged, when the directory holds
 * no CA files; a CA that exists but does not open fails the start) and prepares
 * app->ca_public. */
vtpmca_err server_ca_setup(server_app *app, vtpmca_diag *diag);
/* Frees app->ca_public and app->ca. */
void server_ca_teardown(server_app *app);

/* Evidence-bound EK/IAK issuance (server/ca_routes.c): POST /v1/ca/challenge,
 * /v1/ca/certify, /v1/ca/activate/start and /v1/ca/activate/finish, JSON or CBOR bodies.
 * Each answers 503 ca_not_initialized when there is no CA. */
void server_handle_ca_challenge(void *ctx, const server_request *request,
                                server_response *response);
void server_handle_ca_certify(void *ctx, const server_request *request, server_response *response);
void server_handle_ca_activate_start(void *ctx, const server_request *request,
                                     server_response *response);
void server_handle_ca_activate_finish(void *ctx, const server_request *request,
                                      server_response *response);
/* Builds app->certify when app->ca is open; runs after server_kbs_setup (the own KBS key is
 * trusted) and server_ca_setup. */
vtpmca_err server_certify_setup(server_app *app, vtpmca_diag *diag);
/* Re-reads this service's and the trusted peers' KBS keys into the issuance engine, after an
 * admin changed trusted_kbs_keys_dir. */
vtpmca_err server_certify_reload_trusted(server_app *app, vtpmca_diag *diag);
/* Once listening on `port`: without ca_base_url, issued certificates point at this address. */
void server_certify_started(server_app *app, unsigned port);
void server_certify_free(server_certify *certify);
/* Appends the issuance metrics to the rendered /metrics text (*text is realloc'd). */
vtpmca_err server_certify_metrics_append(const server_certify *certify, char **text, size_t *len);

/* The rollback ledger (server/ledger_routes.c): POST /v1/ledger/advance, /v1/ledger/query
 * and /v1/ledger/statement, JSON or CBOR bodies. */
void server_handle_ledger_advance(void *ctx, const server_request *request,
                                  server_response *response);
void server_handle_ledger_query(void *ctx, const server_request *request,
                                server_response *response);
void server_handle_ledger_statement(void *ctx, const server_request *request,
                                    server_response *response);
/* The key release hook (key_release_config.on_wrapped_release, hook_ctx = the server_app):
 * a key was released to a wrapped-key mode instance, so the ledger stores that instance's
 * ledger key now. Failures are logged; the release stands. */
void server_ledger_on_wrapped_release(void *app, const char *instance_id, const uint8_t *key,
                                      size_t key_len);

/* Opens the ledger engine (refusals audited) and its protocol service into app->ledger; runs
 * after server_kbs_setup, whose KBS key signs statements and whose master key it shares. */
vtpmca_err server_ledger_setup(server_app *app, vtpmca_diag *diag);
/* Stops the engine (answering what is queued) and frees app->ledger. Before store_close. */
void server_ledger_free(server_ledger *ledger);
/* The engine, for the admin API's ledger show / clear (ledger_inspect, ledger_clear, ...);
 * NULL before setup. */
ledger *server_ledger_engine(const server_app *app);
/* Appends the ledger metrics to the rendered /metrics text (*text is realloc'd). */
vtpmca_err server_ledger_metrics_append(const server_ledger *ledger, char **text, size_t *len);

#endif
