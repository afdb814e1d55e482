/* The admin API under /v1/admin/. Each request is authenticated (bearer JWT, admin_auth.h),
 * matched against admin_routes[], authorized (auditors may only read), handled, logged
 * ("admin.request") and audited. Adding an admin route is one row in admin_routes[] and a
 * handler; the HTTP layer's generic rules (413, 415, ...) ran before any of this. */
#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admin_internal.h"
#include "app_internal.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/encoding.h"
#include "vtpmca/log.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_vcek.h"

#define ADMIN_REALM "Bearer realm=\"vtpmca-admin\""

static void handle_whoami(admin_call *call, server_response *response);
static void handle_fleet_list(admin_call *call, server_response *response);
static void handle_fleet_create(admin_call *call, server_response *response);
static void handle_fleet_get(admin_call *call, server_response *response);
static void handle_policy_get(admin_call *call, server_response *response);
static void handle_policy_put(admin_call *call, server_response *response);
static void handle_policy_history(admin_call *call, server_response *response);
static void handle_vcek_import(admin_call *call, server_response *response);

/* Every admin route. POST bodies are JSON (the HTTP layer enforced the content type). */
static const admin_route admin_routes[] = {
    {"GET", "/v1/admin/whoami", false, "admin.whoami", NULL, handle_whoami},
    {"GET", "/v1/admin/fleets", false, "admin.fleet_list", NULL, handle_fleet_list},
    {"POST", "/v1/admin/fleets", true, "admin.fleet_create", NULL, handle_fleet_create},
    {"GET", "/v1/admin/fleets/{}", false, "admin.fleet_show", NULL, handle_fleet_get},
    {"GET", "/v1/admin/fleets/{}/policy", false, "admin.policy_show", "version", handle_policy_get},
    {"POST", "/v1/admin/fleets/{}/policy", true, "admin.policy_put", NULL, handle_policy_put},
    {"GET", "/v1/admin/fleets/{}/policy/history", false, "admin.policy_history", NULL,
     handle_policy_history},
    {"POST", "/v1/admin/vceks", true, "admin.vcek_import", NULL, handle_vcek_import},
};
#define N_ADMIN_ROUTES (sizeof(admin_routes) / sizeof(admin_routes[0]))

/* This file's routes, then those of the other admin files (admin_internal.h). */
static const admin_route_table admin_core_route_table = {admin_routes, N_ADMIN_ROUTES};
static const admin_route_table *const admin_route_tables[] = {
    &admin_core_route_table, &admin_instance_route_table, &admin_audit_route_table,
    &admin_kbs_route_table,  &admin_ledger_route_table,   &admin_cert_route_table,
};
#define N_ADMIN_ROUTE_TABLES (sizeof(admin_route_tables) / sizeof(admin_route_tables[0]))

/* ---- Shared vocabulary (server_admin.h) ---- */

void server_admin_format_time(int64_t t, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "@%lld", (long long)t);
}

json_t *server_admin_fleet_json(const store_fleet *fleet)
{
    if (fleet == NULL)
        return NULL;
    char created[32];
    server_admin_format_time(fleet->created_at, created, sizeof(created));
    return json_pack("{s:s, s:s, s:s, s:I}", "name", fleet->name, "description", fleet->description,
                     "created_at", created, "latest_policy", (json_int_t)fleet->latest_policy);
}

json_t *server_admin_policy_version_json(const store_policy_version *version)
{
    if (version == NULL)
        return NULL;
    char created[32];
    server_admin_format_time(version->created_at, created, sizeof(created));
    return json_pack("{s:I, s:s, s:s}", "version", (json_int_t)version->version, "created_at",
                     created, "author", version->author);
}

vtpmca_err server_admin_vcek_store_key(const snp_vcek_info *info, server_vcek_store_key *out)
{
    if (info == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    out->product = snp_product_name(info->product);
    out->signer = info->kind == SNP_SIGNER_VLEK ? "vlek" : "vcek";
    if (info->kind == SNP_SIGNER_VCEK)
        memcpy(out->chip_id, info->hwid, info->hwid_len < 64 ? info->hwid_len : 64);
    out->tcb = info->tcb_raw;
    return VTPMCA_OK;
}

/* ---- Helpers ---- */

/* Store and module errors as HTTP answers; `not_found_code` names what was missing. */
static void respond_error(server_response *response, vtpmca_err err, const vtpmca_diag *diag,
                          const char *not_found_code)
{
    const char *message = diag->msg[0] != '\0' ? diag->msg : vtpmca_err_name(err);
    switch (err) {
    case VTPMCA_ERR_INVALID_ARG:
    case VTPMCA_ERR_PARSE:
    case VTPMCA_ERR_UNSUPPORTED:
        server_response_error(response, 400, "invalid_request", "%s", message);
        return;
    case VTPMCA_ERR_NOT_FOUND:
        server_response_error(response, 404, not_found_code, "%s", message);
        return;
    case VTPMCA_ERR_CONFLICT:
        server_response_error(response, 409, "conflict", "%s", message);
        return;
    case VTPMCA_ERR_LIMIT:
        server_response_error(response, 413, "too_large", "%s", message);
        return;
    default:
        /* Server-side trouble: the details go to the log, not to the client. */
        vtpmca_log(VTPMCA_LOG_ERROR, "admin.error", "error", vtpmca_err_name(err), "detail",
                   message, NULL);
        server_response_error(response, 500, "internal", "the request failed on the server (%s)",
                              vtpmca_err_name(err));
    }
}

/* Parses a JSON object body whose keys must all be in `allowed` (comma separated). */
static json_t *parse_object_body(const server_request *request, const char *allowed,
                                 server_response *response)
{
    json_error_t jerr;
    json_t *root = json_loadb(request->body != NULL ? (const char *)request->body : "",
                              request->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        server_response_error(response, 400, "invalid_json",
                              "body is not valid JSON: line %d column %d: %s", jerr.line,
                              jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        server_response_error(response, 400, "invalid_request", "body must be a JSON object");
        return NULL;
    }
    {
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value)
        {
            if (!server_name_in_list(allowed, key)) {
                server_response_error(response, 400, "invalid_request", "unknown field '%.60s'",
                                      key);
                json_decref(root);
                return NULL;
            }
        }
    }
    return root;
}

/* Strictly decimal 1..UINT32_MAX. */
static bool parse_version(const char *text, uint32_t *out)
{
    if (text == NULL || *text == '\0' || strlen(text) > 10)
        return false;
    unsigned long long value = 0;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        value = value * 10 + (unsigned)(*p - '0');
    }
    if (value == 0 || value > UINT32_MAX)
        return false;
    *out = (uint32_t)value;
    return true;
}

static const char *query_value(const admin_call *call, const char *key)
{
    return MHD_lookup_connection_value(call->request->connection, MHD_GET_ARGUMENT_KIND, key);
}

/* 404 unknown_fleet unless the fleet named by the first path parameter exists. */
static bool require_fleet(admin_call *call, server_response *response)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_fleet_exists(call->app->store, call->params[0], &diag);
    if (err == VTPMCA_OK)
        return true;
    respond_error(response, err, &diag, "unknown_fleet");
    return false;
}

/* For the admin routes of the other files (admin_internal.h). */
void admin_respond_error(server_response *response, vtpmca_err err, const vtpmca_diag *diag,
                         const char *not_found_code)
{
    respond_error(response, err, diag, not_found_code);
}

json_t *admin_parse_object_body(const server_request *request, const char *allowed,
                                server_response *response)
{
    return parse_object_body(request, allowed, response);
}

const char *admin_query_value(const admin_call *call, const char *key)
{
    return query_value(call, key);
}

bool admin_parse_decimal(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL || *text == '\0' || strlen(text) > 19 || out == NULL)
        return false;
    uint64_t value = 0;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    if (value < min || value > max)
        return false;
    *out = value;
    return true;
}

/* ---- Handlers ---- */

static void handle_whoami(admin_call *call, server_response *response)
{
    char expires[32];
    server_admin_format_time(call->who->expires_at, expires, sizeof(expires));
    server_response_json(response, 200,
                         json_pack("{s:s, s:s, s:s, s:s}", "admin", call->who->name, "role",
                                   admin_role_name(call->who->role), "granted_role",
                                   admin_role_name(call->who->granted), "token_expires_at",
                                   expires));
}

static void handle_fleet_list(admin_call *call, server_response *response)
{
    vtpmca_diag diag = {{0}};
    store_fleet *fleets = NULL;
    size_t n = 0;
    vtpmca_err err = store_fleet_list(call->app->store, &fleets, &n, &diag);
    if (err != VTPMCA_OK) {
        respond_error(response, err, &diag, "not_found");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_fleet_json(&fleets[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(fleets);
    if (list == NULL) {
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    server_response_json(response, 200, json_pack("{s:o}", "fleets", list));
}

static void handle_fleet_create(admin_call *call, server_response *response)
{
    json_t *body = parse_object_body(call->request, "name,description", response);
    if (body == NULL)
        return;
    json_t *name = json_object_get(body, "name");
    json_t *description = json_object_get(body, "description");
    if (!json_is_string(name) || (description != NULL && !json_is_string(description))) {
        json_decref(body);
        server_response_error(response, 400, "invalid_request",
                              "'name' must be a string and 'description' a string if given");
        return;
    }
    const char *text = description != NULL ? json_string_value(description) : "";
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_fleet_create(call->app->store, json_string_value(name), text, &diag);
    if (err == VTPMCA_OK) {
        snprintf(call->audit_detail, sizeof(call->audit_detail), "fleet %.63s",
                 json_string_value(name));
        server_response_json(
            response, 201,
            json_pack("{s:s, s:s}", "name", json_string_value(name), "description", text));
    } else {
        respond_error(response, err, &diag, "not_found");
    }
    json_decref(body);
}

static void handle_fleet_get(admin_call *call, server_response *response)
{
    if (!require_fleet(call, response))
        return;
    vtpmca_diag diag = {{0}};
    store_fleet *fleets = NULL;
    size_t n = 0;
    vtpmca_err err = store_fleet_list(call->app->store, &fleets, &n, &diag);
    if (err != VTPMCA_OK) {
        respond_error(response, err, &diag, "unknown_fleet");
        return;
    }
    const store_fleet *found = NULL;
    for (size_t i = 0; i < n && found == NULL; i++) {
        if (strcmp(fleets[i].name, call->params[0]) == 0)
            found = &fleets[i];
    }
    if (found != NULL)
        server_response_json(response, 200, server_admin_fleet_json(found));
    else /* deleted between the two reads */
        server_response_error(response, 404, "unknown_fleet", "no fleet '%s'", call->params[0]);
    free(fleets);
}

static void handle_policy_get(admin_call *call, server_response *response)
{
    uint32_t version = 0;
    const char *version_text = query_value(call, "version");
    if (version_text != NULL && !parse_version(version_text, &version)) {
        server_response_error(response, 400, "invalid_request",
                              "'version' must be a policy version number >= 1");
        return;
    }
    if (!require_fleet(call, response))
        return;
    vtpmca_diag diag = {{0}};
    char *policy_text = NULL;
    uint32_t found = 0;
    vtpmca_err err =
        store_policy_get(call->app->store, call->params[0], version, &policy_text, &found, &diag);
    if (err != VTPMCA_OK) {
        respond_error(response, err, &diag, version == 0 ? "no_policy" : "unknown_policy_version");
        return;
    }
    json_error_t jerr;
    json_t *policy = json_loads(policy_text, 0, &jerr);
    free(policy_text);
    if (policy == NULL) {
        server_response_error(response, 500, "invalid_stored_policy",
                              "the stored policy is not JSON");
        return;
    }
    server_response_json(response, 200,
                         json_pack("{s:s, s:I, s:o}", "fleet", call->params[0], "version",
                                   (json_int_t)found, "policy", policy));
}

static void handle_policy_history(admin_call *call, server_response *response)
{
    vtpmca_diag diag = {{0}};
    store_policy_version *versions = NULL;
    size_t n = 0;
    vtpmca_err err = store_policy_history(call->app->store, call->params[0], &versions, &n, &diag);
    if (err != VTPMCA_OK) {
        respond_error(response, err, &diag, "unknown_fleet");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_policy_version_json(&versions[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(versions);
    if (list == NULL) {
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    server_response_json(response, 200,
                         json_pack("{s:s, s:o}", "fleet", call->params[0], "versions", list));
}

static void handle_policy_put(admin_call *call, server_response *response)
{
    const server_request *request = call->request;
    if (!require_fleet(call, response))
        return;
    /* Validate before storing: an invalid document changes nothing. */
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_policy_from_json(request->body != NULL ? (const char *)request->body : "",
                                          request->body_len, &policy, &diag);
    if (err != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_policy", "%s",
                              diag.msg[0] ? diag.msg : vtpmca_err_name(err));
        return;
    }
    char *canonical = NULL;
    err = snp_policy_to_json(policy, &canonical);
    snp_policy_free(policy);
    if (err != VTPMCA_OK) {
        server_response_error(response, 500, "internal", "cannot render the policy");
        return;
    }
    char author[64];
    snprintf(author, sizeof(author), SERVER_ADMIN_AUTHOR_PREFIX "%s", call->who->name);
    uint32_t version = 0;
    err = store_policy_put(call->app->store, call->params[0], canonical, author, &version, &diag);
    free(canonical);
    if (err != VTPMCA_OK) {
        respond_error(response, err, &diag, "unknown_fleet");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "fleet %.63s policy version %u",
             call->params[0], (unsigned)version);
    server_response_json(
        response, 201,
        json_pack("{s:s, s:I}", "fleet", call->params[0], "version", (json_int_t)version));
}

static void handle_vcek_import(admin_call *call, server_response *response)
{
    json_t *body = parse_object_body(call->request, "vcek", response);
    if (body == NULL)
        return;
    json_t *text = json_object_get(body, "vcek");
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (!json_is_string(text) ||
        vt_b64_decode_alloc(json_string_value(text), json_string_length(text), VT_B64_STD, &der,
                            &der_len) != VTPMCA_OK ||
        der_len == 0) {
        json_decref(body);
        free(der);
        server_response_error(response, 400, "bad_encoding",
                              "'vcek' must be the DER certificate in standard base64");
        return;
    }
    json_decref(body);
    snp_vcek *vcek = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_vcek_parse(der, der_len, &vcek, &diag);
    free(der);
    if (err != VTPMCA_OK) {
        server_response_error(response, 400, "bad_vcek", "%s",
                              diag.msg[0] ? diag.msg : vtpmca_err_name(err));
        return;
    }
    /* The same trust as the verifier: the daemon's roots, validity now. */
    err = snp_vcek_verify_chain(vcek, call->app->roots, 0, NULL, NULL, &diag);
    if (err != VTPMCA_OK) {
        snp_vcek_free(vcek);
        server_response_error(response, 422, "untrusted_vcek", "refused: %s",
                              diag.msg[0] ? diag.msg : vtpmca_err_name(err));
        return;
    }
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    server_vcek_store_key key;
    const uint8_t *cert = NULL;
    size_t cert_len = 0;
    err = server_admin_vcek_store_key(info, &key);
    if (err == VTPMCA_OK)
        err = snp_vcek_get_der(vcek, &cert, &cert_len);
    if (err == VTPMCA_OK)
        err = store_vcek_put(call->app->store, key.product, key.signer, key.chip_id, key.tcb, cert,
                             cert_len, "import", &diag);
    if (err != VTPMCA_OK) {
        snp_vcek_free(vcek);
        respond_error(response, err, &diag, "not_found");
        return;
    }
    char hwid[2 * 64 + 1] = "", tcb[24];
    vt_hex_encode(info->hwid, info->hwid_len, hwid, sizeof(hwid));
    snprintf(tcb, sizeof(tcb), "0x%016llx", (unsigned long long)info->tcb_raw);
    snprintf(call->audit_detail, sizeof(call->audit_detail), "%s %s tcb %s", key.product,
             key.signer, tcb);
    server_response_json(response, 201,
                         json_pack("{s:s, s:s, s:s, s:s, s:s}", "product", key.product,
                                   "product_name", info->product_name, "signer", key.signer, "hwid",
                                   hwid, "tcb_raw", tcb));
    snp_vcek_free(vcek);
}

/* ---- Dispatch ---- */

/* Matches a path against a pattern, capturing the {} segments. */
static bool match_pattern(const char *pattern, const char *path, admin_call *call)
{
    const char *p = pattern, *u = path;
    size_t n = 0;
    while (*p != '\0' && *u != '\0') {
        if (p[0] == '{' && p[1] == '}') {
            size_t len = strcspn(u, "/");
            if (len == 0 || len > ADMIN_PARAM_MAX || n == ADMIN_MAX_PARAMS)
                return false;
            memcpy(call->params[n], u, len);
            call->params[n][len] = '\0';
            n++;
            p += 2;
            u += len;
        } else if (*p++ != *u++) {
            return false;
        }
    }
    return *p == '\0' && *u == '\0';
}

/* Log values and audit details hold printable ASCII only: paths are client input. */
static void copy_printable(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < size; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
}

static void client_address(struct MHD_Connection *connection, char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    const union MHD_ConnectionInfo *info =
        connection != NULL ? MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS)
                           : NULL;
    if (info == NULL || info->client_addr == NULL)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)size);
}

static void refuse_unauthenticated(server_response *response, const server_request *request,
                                   bool token_given, const char *reason)
{
    char client[64], path[128];
    client_address(request->connection, client, sizeof(client));
    copy_printable(path, sizeof(path), request->path);
    vtpmca_log(VTPMCA_LOG_WARN, "admin.auth_refused", "client", client, "method", request->method,
               "path", path, "reason", reason, NULL);
    server_response_error(response, 401, token_given ? "invalid_token" : "unauthorized", "%s",
                          reason);
    server_response_add_header(response, "WWW-Authenticate",
                               token_given ? ADMIN_REALM ", error=\"invalid_token\"" : ADMIN_REALM);
}

/* Authenticates the request; false when it was answered (401 or 503). */
static bool authenticate(server_app *app, const server_request *request, admin_identity *who,
                         server_response *response)
{
    if (admin_auth_key_count(app->admin) == 0) {
        refuse_unauthenticated(response, request, false,
                               "the admin API is disabled: no admin keys are configured");
        return false;
    }
    const char *header = MHD_lookup_connection_value(request->connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION);
    const char *token = NULL;
    size_t token_len = 0;
    if (admin_bearer_token(header, &token, &token_len) != VTPMCA_OK) {
        refuse_unauthenticated(response, request, false,
                               "an 'Authorization: Bearer <token>' header is required");
        return false;
    }
    if (token_len > ADMIN_TOKEN_MAX_LEN) {
        refuse_unauthenticated(response, request, true, "token too long");
        return false;
    }
    char copy[ADMIN_TOKEN_MAX_LEN + 1];
    memcpy(copy, token, token_len);
    copy[token_len] = '\0';
    vtpmca_diag diag = {{0}};
    vtpmca_err err = admin_auth_verify(app->admin, copy, time(NULL), who, &diag);
    if (err == VTPMCA_ERR_LIMIT) {
        vtpmca_log(VTPMCA_LOG_WARN, "admin.replay_cache_full", "message", diag.msg, NULL);
        server_response_error(response, 503, "unavailable", "%s", diag.msg);
        server_response_add_header(response, "Retry-After", "30");
        return false;
    }
    if (err != VTPMCA_OK) {
        refuse_unauthenticated(response, request, true, diag.msg);
        return false;
    }
    return true;
}

static const char *outcome_of(unsigned status)
{
    if (status >= 200 && status < 300)
        return "ok";
    if (status == 401 || status == 403)
        return "forbidden";
    return status < 500 ? "refused" : "failed";
}

/* One log line per authenticated request, and an audit row for each matched route. */
static void record(server_app *app, const admin_identity *who, const server_request *request,
                   const admin_route *route, const admin_call *call, unsigned status)
{
    char path[160], status_text[16];
    copy_printable(path, sizeof(path), request->path);
    snprintf(status_text, sizeof(status_text), "%u", status);
    const char *outcome = outcome_of(status);
    vtpmca_log(status < 400 ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN, "admin.request", "admin",
               who->name, "role", admin_role_name(who->role), "method", request->method, "route",
               route != NULL ? route->pattern : "unmatched", "path", path, "status", status_text,
               "outcome", outcome, NULL);
    if (route == NULL)
        return;
    store_audit_event event;
    memset(&event, 0, sizeof(event));
    snprintf(event.actor, sizeof(event.actor), "%s", who->name);
    snprintf(event.action, sizeof(event.action), "%s", route->action);
    snprintf(event.outcome, sizeof(event.outcome), "%s", outcome);
    snprintf(event.instance_id, sizeof(event.instance_id), "%s", call->audit_instance);
    char detail[sizeof(event.detail)];
    /* Bounded pieces: the line always fits the audit row. */
    snprintf(detail, sizeof(detail), "%.16s %.96s -> %u (role %s)%s%.100s", request->method, path,
             status, admin_role_name(who->role), call->audit_detail[0] ? ": " : "",
             call->audit_detail);
    copy_printable(event.detail, sizeof(event.detail), detail);
    vtpmca_diag diag = {{0}};
    if (store_audit_append(app->store, &event, &diag) != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "admin.audit_failed", "admin", who->name, "route",
                   route->pattern, "detail", diag.msg, NULL);
}

/* Finds the route for the request; answers 404/405 itself (returns NULL then). */
static const admin_route *find_route(const server_request *request, admin_call *call,
                                     server_response *response)
{
    char allow[64] = "";
    size_t allow_len = 0;
    for (size_t t = 0; t < N_ADMIN_ROUTE_TABLES; t++) {
        for (size_t i = 0; i < admin_route_tables[t]->count; i++) {
            const admin_route *route = &admin_route_tables[t]->routes[i];
            if (!match_pattern(route->pattern, request->path, call))
                continue;
            if (strcmp(route->method, request->method) == 0)
                return route;
            if (strstr(allow, route->method) != NULL)
                continue; /* e.g. GET of /instances/{} and of /instances/{}/x */
            int n = snprintf(allow + allow_len, sizeof(allow) - allow_len, "%s%s",
                             allow_len ? ", " : "", route->method);
            if (n > 0 && (size_t)n < sizeof(allow) - allow_len)
                allow_len += (size_t)n;
        }
    }
    if (allow_len == 0) {
        server_response_error(response, 404, "not_found", "no such admin resource");
    } else {
        server_response_error(response, 405, "method_not_allowed",
                              "method %s is not allowed here; allowed: %s", request->method, allow);
        server_response_add_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return NULL;
}

void server_handle_admin(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    admin_identity who;
    if (!authenticate(app, request, &who, response))
        return;
    admin_call call;
    memset(&call, 0, sizeof(call));
    call.app = app;
    call.request = request;
    call.who = &who;
    const admin_route *route = find_route(request, &call, response);
    if (route != NULL) {
        vtpmca_diag diag = {{0}};
        const char *unknown = NULL;
        if (admin_authorize(&who, route->write, &diag) != VTPMCA_OK) {
            server_response_error(response, 403, "forbidden", "%s", diag.msg);
        } else if ((unknown = server_request_unknown_query(request, route->query)) != NULL) {
            char key[64];
            copy_printable(key, sizeof(key), unknown);
            server_response_error(response, 400, "invalid_request", "unknown query parameter '%s'",
                                  key);
        } else {
            route->handler(&call, response);
        }
    }
    /* A handler that set nothing is sent as 500 by the HTTP layer. */
    record(app, &who, request, route, &call, response->status != 0 ? response->status : 500);
}

vtpmca_err server_admin_setup(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin: missing argument");
    vtpmca_err err = admin_auth_new(&app->admin);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "admin: cannot create the key set");
    const server_config *cfg = &app->config;
    if (cfg->admin_keys_dir[0] != '\0')
        err = admin_auth_add_dir(app->admin, cfg->admin_keys_dir, diag);
    for (unsigned i = 0; err == VTPMCA_OK && i < cfg->admin_keys.count; i++)
        err = admin_auth_add_key_file(app->admin, cfg->admin_keys.path[i], ADMIN_ROLE_ADMIN, diag);
    for (unsigned i = 0; err == VTPMCA_OK && i < cfg->auditor_keys.count; i++)
        err = admin_auth_add_key_file(app->admin, cfg->auditor_keys.path[i], ADMIN_ROLE_AUDITOR,
                                      diag);
    if (err != VTPMCA_OK)
        return err;
    if (admin_auth_key_count(app->admin) == 0)
        vtpmca_log(
            VTPMCA_LOG_INFO, "admin.disabled", "message",
            "no admin keys configured (admin_keys_dir, admin_key): the admin API answers 401",
            NULL);
    return VTPMCA_OK;
}
