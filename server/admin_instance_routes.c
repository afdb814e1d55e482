/* The admin API's instance routes (docs/protocol.md lists them with the rest of the admin
 * API): enroll one or many instances, list, show, disable and enable them, allow a changed
 * EK at the next certification (re-enroll), delete them, and wrap a key an admin brings for
 * a wrapped-key mode instance. admin_routes.c authenticates, checks the role (writes need
 * admin) and the query parameters, logs and audits every call; enrollments are audited once
 * more per instance ("enroll") in their own transaction. Also loads what these routes and the
 * KBS key routes need at start (server_admin_fleet_setup). */
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/enrollment_bulk.h"
#include "vtpmca/server_admin.h"

#define INSTANCES_PAGE_DEFAULT 1000 /* instances per page when the request names no limit */

/* ---- Setup ---- */

/* This service's KBS public key: its JSON form and fingerprint. */
static vtpmca_err load_kbs_public(const server_config *cfg, server_admin_fleet *fa,
                                  vtpmca_diag *diag)
{
    char path[SERVER_CONFIG_PATH_MAX + 32];
    vtpmca_err err =
        server_state_path(cfg, cfg->kbs_key_file, "kbs-key.pem", path, sizeof(path), diag);
    EVP_PKEY *key = NULL;
    if (err == VTPMCA_OK)
        err = kbs_key_load(path, &key, diag);
    if (err == VTPMCA_OK)
        err = server_admin_kbs_key_json(key, &fa->kbs_key, diag);
    if (err == VTPMCA_OK)
        snprintf(fa->kbs_fingerprint, sizeof(fa->kbs_fingerprint), "%s",
                 json_string_value(json_object_get(fa->kbs_key, "fingerprint")));
    EVP_PKEY_free(key);
    return err;
}

vtpmca_err server_admin_fleet_setup(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin: missing argument");
    const server_config *cfg = &app->config;
    server_admin_fleet *fa = calloc(1, sizeof(*fa));
    if (fa == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    app->fleet_admin = fa;
    snprintf(fa->trusted_kbs_dir, sizeof(fa->trusted_kbs_dir), "%s", cfg->trusted_kbs_keys_dir);
    /* The KBS setup ran first and created both files when missing. */
    char path[SERVER_CONFIG_PATH_MAX + 32];
    vtpmca_err err =
        server_state_path(cfg, cfg->master_key_file, "master.key", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(path, false, &fa->vault, diag);
    if (err == VTPMCA_OK)
        err = load_kbs_public(cfg, fa, diag);
    return err; /* server_app_free releases what was made */
}

void server_admin_fleet_free(server_admin_fleet *fa)
{
    if (fa == NULL)
        return;
    keyvault_free(fa->vault);
    json_decref(fa->kbs_key);
    free(fa);
}

/* ---- The JSON form ---- */

json_t *server_admin_instance_json(const store_instance *instance)
{
    if (instance == NULL)
        return NULL;
    char created[32], host_data[65];
    server_admin_format_time(instance->created_at, created, sizeof(created));
    if (instance->has_host_data)
        vt_hex_encode(instance->host_data, sizeof(instance->host_data), host_data,
                      sizeof(host_data));
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:b, s:s}", "instance", instance->id, "fleet",
                     instance->fleet, "resource_path", instance->resource_path, "key_mode",
                     store_key_mode_name(instance->key_mode), "host_data",
                     instance->has_host_data ? host_data : NULL, "disabled", instance->disabled,
                     "created_at", created);
}

/* ---- Helpers ---- */

/* "admin:<name>": who enrolls, in the audit log (as policy authors are recorded). */
static void actor_of(const admin_call *call, char *buf, size_t size)
{
    snprintf(buf, size, SERVER_ADMIN_AUTHOR_PREFIX "%s", call->who->name);
}

/* The instance of the first path parameter must have a valid id; it names the audit row. */
static bool instance_param(admin_call *call, server_response *response)
{
    vtpmca_diag diag = {{0}};
    if (store_check_instance_id(call->params[0], &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "%s", diag.msg);
        return false;
    }
    snprintf(call->audit_instance, sizeof(call->audit_instance), "%.63s", call->params[0]);
    return true;
}

/* Answers 200 (or `status`) with the stored instance's JSON form. */
static void respond_instance(admin_call *call, const char *id, unsigned status,
                             server_response *response)
{
    vtpmca_diag diag = {{0}};
    store_instance inst;
    vtpmca_err err = store_instance_get(call->app->store, id, &inst, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    json_t *out = server_admin_instance_json(&inst);
    store_instance_free_fields(&inst);
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, status, out);
}

/* A POST without fields: an empty body or {}. */
static bool empty_body(admin_call *call, server_response *response)
{
    if (call->request->body_len == 0)
        return true;
    json_t *body = admin_parse_object_body(call->request, "", response);
    json_decref(body);
    return body != NULL;
}

/* An optional string member; false (answered 400) when it is there but not a string. */
static bool optional_string(json_t *body, const char *key, const char **out,
                            server_response *response)
{
    json_t *value = json_object_get(body, key);
    *out = NULL;
    if (value == NULL || json_is_null(value))
        return true;
    if (!json_is_string(value)) {
        server_response_error(response, 400, "invalid_request", "'%s' must be a string", key);
        return false;
    }
    *out = json_string_value(value);
    return true;
}

/* ---- Handlers ---- */

static void handle_instance_list(admin_call *call, server_response *response)
{
    const char *fleet = admin_query_value(call, "fleet");
    const char *after = admin_query_value(call, "after");
    const char *limit_text = admin_query_value(call, "limit");
    uint64_t limit = INSTANCES_PAGE_DEFAULT;
    vtpmca_diag diag = {{0}};
    if (limit_text != NULL && !admin_parse_decimal(limit_text, 1, STORE_LIST_MAX, &limit)) {
        server_response_error(response, 400, "invalid_request",
                              "'limit' must be a number from 1 to %d", STORE_LIST_MAX);
        return;
    }
    if (after != NULL && store_check_instance_id(after, &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "'after': %s", diag.msg);
        return;
    }
    vtpmca_err err = VTPMCA_OK;
    if (fleet != NULL && (err = store_fleet_exists(call->app->store, fleet, &diag)) != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_fleet");
        return;
    }
    store_instance *items = NULL;
    size_t n = 0;
    err = store_instance_list(call->app->store, fleet, after, (size_t)limit, &items, &n, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "not_found");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_instance_json(&items[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    /* A full page may have a successor: page on from its last id. */
    json_t *next = n == limit ? json_string(items[n - 1].id) : json_null();
    store_instance_list_free(items, n);
    if (list == NULL || next == NULL) {
        json_decref(list);
        json_decref(next);
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    server_response_json(response, 200,
                         json_pack("{s:o, s:o}", "instances", list, "next_after", next));
}

static void handle_instance_enroll(admin_call *call, server_response *response)
{
    json_t *body = admin_parse_object_body(call->request,
                                           "instance,fleet,host_data,resource_path,mode", response);
    if (body == NULL)
        return;
    const char *id = NULL, *fleet = NULL, *host_hex = NULL, *path = NULL, *mode = NULL;
    if (!optional_string(body, "instance", &id, response) ||
        !optional_string(body, "fleet", &fleet, response) ||
        !optional_string(body, "host_data", &host_hex, response) ||
        !optional_string(body, "resource_path", &path, response) ||
        !optional_string(body, "mode", &mode, response)) {
        json_decref(body);
        return;
    }
    char actor[64];
    actor_of(call, actor, sizeof(actor));
    uint8_t host_data[32];
    enroll_request req = {.instance_id = id,
                          .fleet = fleet,
                          .resource_path = path,
                          .mode = STORE_KEY_GENERATED,
                          .actor = actor};
    vtpmca_diag diag = {{0}};
    if (id == NULL || fleet == NULL) {
        server_response_error(response, 400, "invalid_request",
                              "'instance' and 'fleet' are required");
    } else if (store_check_instance_id(id, &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "%s", diag.msg);
    } else if (mode != NULL && store_key_mode_parse(mode, &req.mode) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request",
                              "'mode' must be generated or wrapped");
    } else if (host_hex != NULL && (strlen(host_hex) != 64 ||
                                    vt_hex_decode_fixed(host_hex, host_data, 32) != VTPMCA_OK)) {
        server_response_error(response, 400, "invalid_request",
                              "'host_data' must be 64 hex digits (32 bytes)");
    } else {
        snprintf(call->audit_instance, sizeof(call->audit_instance), "%.63s", id);
        req.host_data = host_hex != NULL ? host_data : NULL;
        enroll_result res;
        vtpmca_err err =
            enrollment_enroll(call->app->store, call->app->fleet_admin->vault, &req, &res, &diag);
        if (err == VTPMCA_OK) {
            snprintf(call->audit_detail, sizeof(call->audit_detail), "fleet %.63s key mode %s",
                     fleet, store_key_mode_name(req.mode));
            respond_instance(call, id, 201, response);
        } else {
            admin_respond_error(response, err, &diag, "unknown_fleet");
        }
    }
    json_decref(body);
}

/* The answer to a refused bulk document: its problems with their lines. */
static void respond_bulk_refused(server_response *response, unsigned status, const char *code,
                                 const char *message, const bulk_doc *doc)
{
    json_t *errors = bulk_errors_to_json(doc);
    json_t *out = errors != NULL
                      ? json_pack("{s:s, s:s, s:I, s:o}", "error", code, "message", message,
                                  "bad_rows", (json_int_t)doc->n_bad, "errors", errors)
                      : NULL;
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, status, out);
}

static bool parse_flag(const char *text, bool *out)
{
    if (text == NULL || strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *out = false;
        return true;
    }
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0 || text[0] == '\0') {
        *out = true;
        return true;
    }
    return false;
}

static void handle_instance_bulk(admin_call *call, server_response *response)
{
    const char *content_type = MHD_lookup_connection_value(
        call->request->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    bulk_format format;
    if (bulk_format_from_content_type(content_type, &format) != VTPMCA_OK) {
        server_response_error(response, 415, "unsupported_media_type",
                              "Content-Type must be text/csv or application/x-ndjson (JSON "
                              "Lines)");
        return;
    }
    bool skip_bad = false;
    if (!parse_flag(admin_query_value(call, "skip_bad"), &skip_bad)) {
        server_response_error(response, 400, "invalid_request", "'skip_bad' must be true or false");
        return;
    }
    bulk_parse_options options = {.default_fleet = admin_query_value(call, "fleet"),
                                  .max_rows = BULK_MAX_ROWS};
    bulk_doc doc;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = bulk_parse((const char *)call->request->body, call->request->body_len, format,
                                &options, &doc, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "not_found");
        return;
    }
    char message[256];
    if (doc.n_bad > 0 && !skip_bad) {
        snprintf(message, sizeof(message),
                 "%zu bad row%s (first: line %zu: %.160s); nothing was enrolled", doc.n_bad,
                 doc.n_bad == 1 ? "" : "s", doc.n_errors > 0 ? doc.errors[0].line : 0,
                 doc.n_errors > 0 ? doc.errors[0].message : "?");
        snprintf(call->audit_detail, sizeof(call->audit_detail), "bulk refused: %zu bad rows",
                 doc.n_bad);
        respond_bulk_refused(response, 400, "invalid_rows", message, &doc);
        bulk_doc_free(&doc);
        return;
    }
    char actor[64];
    actor_of(call, actor, sizeof(actor));
    bulk_result *results = NULL;
    size_t n_results = 0;
    err = bulk_enroll(call->app->store, call->app->fleet_admin->vault, &doc, 0, doc.n_rows, actor,
                      skip_bad, &results, &n_results, &diag);
    if (err == VTPMCA_ERR_NOT_FOUND || err == VTPMCA_ERR_CONFLICT) {
        snprintf(message, sizeof(message), "%.100s (first: line %zu: %.120s)", diag.msg,
                 doc.n_errors > 0 ? doc.errors[0].line : 0,
                 doc.n_errors > 0 ? doc.errors[0].message : "?");
        snprintf(call->audit_detail, sizeof(call->audit_detail), "bulk refused: %zu bad rows",
                 doc.n_bad);
        respond_bulk_refused(response, err == VTPMCA_ERR_NOT_FOUND ? 404 : 409,
                             err == VTPMCA_ERR_NOT_FOUND ? "unknown_fleet" : "conflict", message,
                             &doc);
    } else if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "not_found");
    } else {
        json_t *list = json_array();
        for (size_t i = 0; list != NULL && i < n_results; i++) {
            if (json_array_append_new(list, bulk_result_to_json(&results[i])) != 0) {
                json_decref(list);
                list = NULL;
            }
        }
        json_t *errors = bulk_errors_to_json(&doc);
        json_t *out =
            list != NULL && errors != NULL
                ? json_pack("{s:I, s:I, s:o, s:o}", "enrolled", (json_int_t)n_results, "skipped",
                            (json_int_t)doc.n_bad, "instances", list, "errors", errors)
                : NULL;
        if (out == NULL) {
            if (list == NULL || errors == NULL) {
                json_decref(list);
                json_decref(errors);
            }
            server_response_error(response, 500, "internal", "out of memory");
        } else {
            snprintf(call->audit_detail, sizeof(call->audit_detail),
                     "bulk: %zu enrolled, %zu skipped", n_results, doc.n_bad);
            server_response_json(response, 201, out);
        }
    }
    bulk_results_free(results, n_results);
    bulk_doc_free(&doc);
}

static void handle_instance_get(admin_call *call, server_response *response)
{
    if (instance_param(call, response))
        respond_instance(call, call->params[0], 200, response);
}

static void set_disabled(admin_call *call, bool disabled, server_response *response)
{
    if (!instance_param(call, response) || !empty_body(call, response))
        return;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        store_instance_set_disabled(call->app->store, call->params[0], disabled, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "%s",
             disabled ? "key release refused until enabled again" : "key release allowed");
    respond_instance(call, call->params[0], 200, response);
}

static void handle_instance_disable(admin_call *call, server_response *response)
{
    set_disabled(call, true, response);
}

static void handle_instance_enable(admin_call *call, server_response *response)
{
    set_disabled(call, false, response);
}

static void handle_instance_reenroll(admin_call *call, server_response *response)
{
    if (!instance_param(call, response) || !empty_body(call, response))
        return;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_instance_ek_reenroll_grant(call->app->store, call->params[0], &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail),
             "the next certification may present another EK");
    server_response_json(
        response, 200,
        json_pack("{s:s, s:b}", "instance", call->params[0], "ek_change_allowed", true));
}

static void handle_instance_delete(admin_call *call, server_response *response)
{
    if (!instance_param(call, response))
        return;
    vtpmca_diag diag = {{0}};
    store_instance_deletion deletion;
    vtpmca_err err = store_instance_delete(call->app->store, call->params[0], &deletion, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail),
             "deleted with its key; %zu certificate%s revoked", deletion.certs_revoked,
             deletion.certs_revoked == 1 ? "" : "s");
    server_response_json(response, 200,
                         json_pack("{s:s, s:b, s:I, s:b}", "instance", call->params[0], "deleted",
                                   true, "certificates_revoked", (json_int_t)deletion.certs_revoked,
                                   "ledger_key_deleted", deletion.ledger_key_deleted));
}

static void handle_instance_wrap_key(admin_call *call, server_response *response)
{
    if (!instance_param(call, response))
        return;
    json_t *body = admin_parse_object_body(call->request, "key", response);
    if (body == NULL)
        return;
    const char *text = json_string_value(json_object_get(body, "key"));
    uint8_t *key = NULL;
    size_t key_len = 0;
    vtpmca_diag diag = {{0}};
    if (text == NULL ||
        vt_b64_decode_alloc(text, strlen(text), VT_B64_STD, &key, &key_len) != VTPMCA_OK ||
        key_len == 0 || key_len > KEYVAULT_KEY_MAX) {
        if (key != NULL)
            OPENSSL_clear_free(key, key_len);
        json_decref(body);
        server_response_error(response, 400, "invalid_request",
                              "'key' must be 1 to %d bytes in standard base64", KEYVAULT_KEY_MAX);
        return;
    }
    json_decref(body); /* held the key's text: freed at once */
    /* A blob for an instance that is not in wrapped-key mode would never be released. */
    store_instance inst;
    vtpmca_err err = store_instance_get(call->app->store, call->params[0], &inst, &diag);
    if (err == VTPMCA_OK) {
        if (inst.key_mode != STORE_KEY_WRAPPED)
            err = vtpmca_fail(&diag, VTPMCA_ERR_CONFLICT,
                              "instance %s is enrolled with a service-generated key, not in "
                              "wrapped-key mode",
                              call->params[0]);
        store_instance_free_fields(&inst);
    }
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (err == VTPMCA_OK)
        err = enrollment_wrap_key(call->app->fleet_admin->vault, call->params[0], key, key_len,
                                  &blob, &blob_len, &diag);
    OPENSSL_clear_free(key, key_len);
    char *wrapped = NULL;
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(blob, blob_len, VT_B64_URL_NOPAD, &wrapped);
    free(blob);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "wrapped a %zu-byte key", key_len);
    server_response_json(
        response, 200,
        json_pack("{s:s, s:s}", "instance", call->params[0], "wrapped_key", wrapped));
    free(wrapped);
}

static const admin_route instance_routes[] = {
    {"GET", "/v1/admin/instances", false, "admin.instance_list", "fleet,after,limit",
     handle_instance_list},
    {"POST", "/v1/admin/instances", true, "admin.instance_enroll", NULL, handle_instance_enroll},
    /* Before /instances/{}: an instance may well be called "bulk" (GET, DELETE). */
    {"POST", "/v1/admin/instances/bulk", true, "admin.instance_bulk", "fleet,skip_bad",
     handle_instance_bulk},
    {"GET", "/v1/admin/instances/{}", false, "admin.instance_show", NULL, handle_instance_get},
    {"DELETE", "/v1/admin/instances/{}", true, "admin.instance_delete", NULL,
     handle_instance_delete},
    {"POST", "/v1/admin/instances/{}/disable", true, "admin.instance_disable", NULL,
     handle_instance_disable},
    {"POST", "/v1/admin/instances/{}/enable", true, "admin.instance_enable", NULL,
     handle_instance_enable},
    {"POST", "/v1/admin/instances/{}/re-enroll", true, "admin.instance_reenroll", NULL,
     handle_instance_reenroll},
    {"POST", "/v1/admin/instances/{}/wrap-key", true, "admin.instance_wrap_key", NULL,
     handle_instance_wrap_key},
};

const admin_route_table admin_instance_route_table = {
    instance_routes, sizeof(instance_routes) / sizeof(instance_routes[0])};
