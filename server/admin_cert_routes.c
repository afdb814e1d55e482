/* The admin API's certificate routes (include/vtpmca/server_admin_certs.h): list, show and
 * revoke the EK/IAK certificates the CA issued. admin_routes.c authenticates, checks the role
 * (revoking needs admin) and the query parameters, logs and audits every call; a revocation
 * reaches GET /v1/ca/crl on its next request (server/ca_public_routes.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "vtpmca/crl.h"
#include "vtpmca/encoding.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/server_admin_certs.h"

/* ---- The JSON form ---- */

/* Standard base64 of bytes, or JSON null for none. */
static json_t *bytes_json(const uint8_t *data, size_t len)
{
    if (data == NULL)
        return json_null();
    char *b64 = NULL;
    if (vt_b64_encode_alloc(data, len, VT_B64_STD, &b64) != VTPMCA_OK)
        return NULL;
    json_t *out = json_string(b64);
    free(b64);
    return out;
}

json_t *server_admin_cert_json(const store_cert *cert, bool with_bytes)
{
    if (cert == NULL)
        return NULL;
    char not_before[32], not_after[32], created[32], revoked_at[32];
    server_admin_format_time(cert->not_before, not_before, sizeof(not_before));
    server_admin_format_time(cert->not_after, not_after, sizeof(not_after));
    server_admin_format_time(cert->created_at, created, sizeof(created));
    bool revoked = cert->status == STORE_CERT_REVOKED;
    if (revoked)
        server_admin_format_time(cert->revoked_at, revoked_at, sizeof(revoked_at));
    json_t *out = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s}", "serial", cert->serial,
        "instance_id", cert->instance_id, "kind", store_cert_kind_name(cert->kind), "format",
        store_cert_format_name(cert->format), "key_name", cert->key_name, "status",
        store_cert_status_name(cert->status), "not_before", not_before, "not_after", not_after,
        "revoked_at", revoked ? revoked_at : NULL, "reason", revoked ? cert->reason : NULL,
        "created_at", created);
    if (out != NULL && with_bytes &&
        (json_object_set_new(out, "der", bytes_json(cert->der, cert->der_len)) != 0 ||
         json_object_set_new(out, "c509", bytes_json(cert->c509, cert->c509_len)) != 0)) {
        json_decref(out);
        out = NULL;
    }
    return out;
}

/* ---- Handlers ---- */

static void handle_cert_list(admin_call *call, server_response *response)
{
    const char *instance = admin_query_value(call, "instance");
    const char *after = admin_query_value(call, "after");
    const char *limit_text = admin_query_value(call, "limit");
    uint64_t limit_value = SERVER_ADMIN_CERTS_PAGE_DEFAULT;
    /* At most five digits, as this route has always required (STORE_LIST_MAX has five). */
    if (limit_text != NULL && (strlen(limit_text) > 5 ||
                               !admin_parse_decimal(limit_text, 1, STORE_LIST_MAX, &limit_value))) {
        server_response_error(response, 400, "invalid_request", "limit must be 1 to %d",
                              STORE_LIST_MAX);
        return;
    }
    size_t limit = (size_t)limit_value;
    vtpmca_diag diag = {{0}};
    if (instance != NULL && store_check_instance_id(instance, &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "instance: %s", diag.msg);
        return;
    }
    store_cert *certs = NULL;
    size_t n = 0;
    vtpmca_err err = store_cert_list(call->app->store, instance, after, limit, &certs, &n, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "not_found");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_cert_json(&certs[i], false)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(certs);
    if (list == NULL) {
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    server_response_json(response, 200, json_pack("{s:o}", "certs", list));
}

static void handle_cert_get(admin_call *call, server_response *response)
{
    store_cert cert;
    memset(&cert, 0, sizeof(cert));
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_cert_get(call->app->store, call->params[0], &cert, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_certificate");
        return;
    }
    snprintf(call->audit_instance, sizeof(call->audit_instance), "%s", cert.instance_id);
    json_t *out = server_admin_cert_json(&cert, true);
    store_cert_free_fields(&cert);
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, 200, out);
}

static void handle_cert_revoke(admin_call *call, server_response *response)
{
    json_t *body = admin_parse_object_body(call->request, "reason", response);
    if (body == NULL)
        return;
    crl_reason reason = VT_CRL_REASON_UNSPECIFIED;
    json_t *reason_json = json_object_get(body, "reason");
    vtpmca_diag diag = {{0}};
    if (reason_json != NULL &&
        (!json_is_string(reason_json) ||
         crl_reason_parse(json_string_value(reason_json), &reason, &diag) != VTPMCA_OK)) {
        json_decref(body);
        server_response_error(response, 400, "invalid_request", "reason: %s",
                              diag.msg[0] ? diag.msg : "must be a string");
        return;
    }
    json_decref(body);
    const char *serial = call->params[0];
    store_cert cert;
    memset(&cert, 0, sizeof(cert));
    vtpmca_err err = crl_revoke(call->app->store, serial, reason, 0, &diag);
    if (err == VTPMCA_OK)
        err = store_cert_get(call->app->store, serial, &cert, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_certificate");
        return;
    }
    snprintf(call->audit_instance, sizeof(call->audit_instance), "%s", cert.instance_id);
    snprintf(call->audit_detail, sizeof(call->audit_detail), "%s certificate %.40s revoked: %s",
             store_cert_kind_name(cert.kind), cert.serial, cert.reason);
    json_t *out = server_admin_cert_json(&cert, false);
    store_cert_free_fields(&cert);
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, 200, out);
}

static const admin_route cert_routes[] = {
    {"GET", SERVER_ADMIN_CERTS_PATH, false, "admin.cert_list", "instance,after,limit",
     handle_cert_list},
    {"GET", SERVER_ADMIN_CERTS_PATH "/{}", false, "admin.cert_show", NULL, handle_cert_get},
    {"POST", SERVER_ADMIN_CERTS_PATH "/{}/revoke", true, "admin.cert_revoke", NULL,
     handle_cert_revoke},
};

const admin_route_table admin_cert_route_table = {cert_routes,
                                                  sizeof(cert_routes) / sizeof(cert_routes[0])};
