/* The admin API's rollback ledger routes: what the ledger holds for an instance, clearing a
 * lock (optionally forgetting the entry, for a re-provisioned filesystem), and whether a fork
 * or rollback attempt locks the instance. They go through the daemon's ledger engine
 * (server_ledger_engine), the only writer of the ledger table, so a clear is ordered with the
 * advances in flight and its cache stays right. admin_routes.c authenticates, checks the role
 * (writes need admin), logs and audits every call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "vtpmca/encoding.h"
#include "vtpmca/ledger.h"
#include "vtpmca/server_admin.h"

json_t *server_admin_ledger_json(const char *instance, const ledger_record *record)
{
    if (instance == NULL || record == NULL)
        return NULL;
    char counter[LEDGER_COUNTER_HEX_LEN + 1], origin[LEDGER_COUNTER_HEX_LEN + 1];
    char root[2 * LEDGER_ROOT_MAX + 1], updated[40];
    bool entry = record->has_entry && record->entry.root_len > 0 &&
                 record->entry.root_len <= LEDGER_ROOT_MAX;
    if (entry) {
        ledger_counter_format_hex(record->entry.counter, counter, sizeof(counter));
        ledger_counter_format_hex(record->entry.origin, origin, sizeof(origin));
        vt_hex_encode(record->entry.root, record->entry.root_len, root, sizeof(root));
        server_admin_format_time_ms(record->entry.time_ms, updated, sizeof(updated));
    }
    return json_pack("{s:s, s:b, s:s?, s:s?, s:s?, s:s?, s:b, s:b, s:I, s:I}", "instance", instance,
                     "has_entry", entry, "counter", entry ? counter : NULL, "origin",
                     entry ? origin : NULL, "root", entry ? root : NULL, "updated_at",
                     entry ? updated : NULL, "locked", record->locked, "require_admin_clear",
                     record->require_admin_clear, "fork_refusals",
                     (json_int_t)record->fork_refusals, "rollback_refusals",
                     (json_int_t)record->rollback_refusals);
}

/* ---- Handlers ---- */

/* The engine, and the instance of the path (valid id; named in the audit row). */
static ledger *engine_for(admin_call *call, server_response *response)
{
    vtpmca_diag diag = {{0}};
    if (store_check_instance_id(call->params[0], &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "%s", diag.msg);
        return NULL;
    }
    snprintf(call->audit_instance, sizeof(call->audit_instance), "%.63s", call->params[0]);
    ledger *engine = server_ledger_engine(call->app);
    if (engine == NULL)
        server_response_error(response, 503, "unavailable", "the rollback ledger is not running");
    return engine;
}

/* Answers with what the ledger holds for the instance now. */
static void respond_record(admin_call *call, ledger *engine, server_response *response)
{
    ledger_record record;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_inspect(engine, call->params[0], &record, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "no_ledger_record");
        return;
    }
    json_t *out = server_admin_ledger_json(call->params[0], &record);
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, 200, out);
}

/* The one boolean member `key` of the body; `fallback` for an empty body when not
 * required. false when answered 400. */
static bool bool_body(admin_call *call, const char *key, bool required, bool fallback, bool *out,
                      server_response *response)
{
    *out = fallback;
    if (call->request->body_len == 0 && !required)
        return true;
    json_t *body = admin_parse_object_body(call->request, key, response);
    if (body == NULL)
        return false;
    json_t *value = json_object_get(body, key);
    bool ok = json_is_boolean(value) || (value == NULL && !required);
    if (json_is_boolean(value))
        *out = json_is_true(value);
    json_decref(body);
    if (!ok)
        server_response_error(response, 400, "invalid_request", "'%s' must be %s", key,
                              required ? "given as true or false" : "true or false");
    return ok;
}

static void handle_ledger_show(admin_call *call, server_response *response)
{
    ledger *engine = engine_for(call, response);
    if (engine != NULL)
        respond_record(call, engine, response);
}

static void handle_ledger_clear(admin_call *call, server_response *response)
{
    ledger *engine = engine_for(call, response);
    bool reset = false;
    if (engine == NULL || !bool_body(call, "reset", false, false, &reset, response))
        return;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_clear(engine, call->params[0], reset, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "no_ledger_record");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "%s",
             reset ? "unlocked and reset: the next advance sets a new origin" : "unlocked");
    respond_record(call, engine, response);
}

static void handle_ledger_require_clear(admin_call *call, server_response *response)
{
    ledger *engine = engine_for(call, response);
    bool on = false;
    if (engine == NULL || !bool_body(call, "on", true, false, &on, response))
        return;
    /* The setting works before a first advance, so it could make a row for any id: only for
     * enrolled instances. */
    vtpmca_diag diag = {{0}};
    store_instance inst;
    vtpmca_err err = store_instance_get(call->app->store, call->params[0], &inst, &diag);
    if (err == VTPMCA_OK) {
        store_instance_free_fields(&inst);
        err = ledger_set_require_admin_clear(engine, call->params[0], on, &diag);
    }
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "unknown_instance");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "require admin clear %s",
             on ? "on" : "off");
    respond_record(call, engine, response);
}

static const admin_route ledger_routes[] = {
    {"GET", "/v1/admin/ledger/{}", false, "admin.ledger_show", NULL, handle_ledger_show},
    {"POST", "/v1/admin/ledger/{}/clear", true, "admin.ledger_clear", NULL, handle_ledger_clear},
    {"POST", "/v1/admin/ledger/{}/require-admin-clear", true, "admin.ledger_require_clear", NULL,
     handle_ledger_require_clear},
};

const admin_route_table admin_ledger_route_table = {ledger_routes, sizeof(ledger_routes) /
                                                                       sizeof(ledger_routes[0])};
