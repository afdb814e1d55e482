/* Private to server/: how admin routes defined outside server/admin_routes.c plug into its
 * dispatcher. A file with admin routes defines an admin_route_table (an array of routes and its
 * length) and lists it in admin_route_tables[] in admin_routes.c; authentication, the role
 * check, the query-parameter check, the log line and the audit row stay in admin_routes.c. */
#ifndef VTPMCA_SERVER_ADMIN_INTERNAL_H
#define VTPMCA_SERVER_ADMIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_internal.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/server_http.h"
#include "vtpmca/store.h"

#define ADMIN_MAX_PARAMS 2
#define ADMIN_PARAM_MAX 256

typedef struct {
    server_app *app;
    const server_request *request;
    const admin_identity *who;
    char params[ADMIN_MAX_PARAMS][ADMIN_PARAM_MAX + 1]; /* the {} segments of the path */
    char audit_detail[128]; /* what the handler did, for the audit log (never a secret) */
    /* The instance the call concerns, for the audit row's instance column (so that
     * `audit search --instance` finds admin actions too); "" = none. */
    char audit_instance[STORE_INSTANCE_ID_MAX + 1];
} admin_call;

typedef void (*admin_handler)(admin_call *call, server_response *response);

typedef struct {
    const char *method;
    const char *pattern; /* "{}" matches one non-empty path segment */
    bool write;          /* needs role admin; otherwise auditors may call it too */
    const char *action;  /* audit action name */
    const char *query;   /* accepted query parameters, comma separated; NULL = none */
    admin_handler handler;
} admin_route;

typedef struct {
    const admin_route *routes;
    size_t count;
} admin_route_table;

/* Route tables of the other admin files. */
extern const admin_route_table admin_instance_route_table; /* admin_instance_routes.c */
extern const admin_route_table admin_audit_route_table;    /* admin_audit_routes.c */
extern const admin_route_table admin_kbs_route_table;      /* admin_kbs_routes.c */
extern const admin_route_table admin_ledger_route_table;   /* admin_ledger_routes.c */
extern const admin_route_table admin_cert_route_table;     /* admin_cert_routes.c */

/* ---- Helpers of admin_routes.c for handlers elsewhere ---- */

/* Store and module errors as HTTP answers (400, 404 `not_found_code`, 409, 413, else 500
 * with the details only in the log). */
void admin_respond_error(server_response *response, vtpmca_err err, const vtpmca_diag *diag,
                         const char *not_found_code);

/* Parses a JSON object body whose keys must all be in `allowed` (comma separated); answers
 * 400 itself and returns NULL when it is not one. */
json_t *admin_parse_object_body(const server_request *request, const char *allowed,
                                server_response *response);

/* A query parameter's value, or NULL when absent. */
const char *admin_query_value(const admin_call *call, const char *key);

/* Strictly decimal digits (at most 19) within [min, max]. */
bool admin_parse_decimal(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* ---- What the instance and KBS key routes need beyond the store ----
 * Loaded by server_admin_fleet_setup (admin_instance_routes.c) from the files the KBS setup
 * made, like the ledger does: the daemon's state never changes under a running daemon. */
struct server_admin_fleet {
    keyvault *vault; /* the master key: enrollment and wrap-key */
    json_t *kbs_key; /* this service's KBS public key (server_admin_kbs_key_json) */
    char kbs_fingerprint[SERVER_ADMIN_KBS_FINGERPRINT_HEX + 1];
    char trusted_kbs_dir[SERVER_CONFIG_PATH_MAX]; /* trusted peer KBS keys; "" = none */
};

#endif
