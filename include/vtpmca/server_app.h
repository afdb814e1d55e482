/* The vtpmcad application: one struct owns every long-lived service (store, trusted roots,
 * KDS client, verifier, policy cache, metrics, HTTP server), so later services (KBS, CA,
 * rollback ledger) are added beside them. Library code: it never exits or touches signals;
 * server/main.c drives it. */
#ifndef VTPMCA_SERVER_APP_H
#define VTPMCA_SERVER_APP_H

#include "vtpmca/err.h"
#include "vtpmca/server_config.h"

typedef struct server_app server_app;

/* Creates the state directory (0700), opens the store (applying migrations), loads the
 * pinned AMD roots plus extra_roots_dir when configured (logged as a warning), and builds
 * the KDS client (only when kds_url is set), verifier, policy cache and metrics. The config
 * is copied. Nothing listens yet. */
vtpmca_err server_app_new(const server_config *config, server_app **out, vtpmca_diag *diag);

/* Starts the HTTP server and writes the port file (if configured) once listening. */
vtpmca_err server_app_start(server_app *app, vtpmca_diag *diag);

/* The bound port, 0 before start. */
unsigned server_app_port(const server_app *app);

/* Stops the HTTP server gracefully (in-flight requests get shutdown_grace_ms) and removes
 * the port file. Idempotent. */
void server_app_stop(server_app *app);

/* Stops if needed and frees everything. NULL is a no-op. */
void server_app_free(server_app *app);

#endif
