/* Private to server/: the application struct and the route handlers defined outside app.c. */
#ifndef VTPMCA_SERVER_APP_INTERNAL_H
#define VTPMCA_SERVER_APP_INTERNAL_H

#include <time.h>

#include "vtpmca/kds.h"
#include "vtpmca/server_app.h"
#include "vtpmca/server_config.h"
#include "vtpmca/server_http.h"
#include "vtpmca/server_metrics.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

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
};

/* POST /v1/snp/verify (server/snp_verify.c). */
void server_handle_snp_verify(void *ctx, const server_request *request, server_response *response);

#endif
