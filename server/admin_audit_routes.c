/* The admin API's audit routes: search the append-only audit log (admin actions, key
 * releases and refusals, certificate issuance and revocation, ledger refusals) and export it
 * as JSON Lines. Read-only: auditors may call both. admin_routes.c authenticates, checks the
 * query parameters, logs and audits the call itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_internal.h"
#include "vtpmca/rfc3339.h"
#include "vtpmca/server_admin.h"

#define AUDIT_PAGE_DEFAULT 100 /* events per page when the request names no limit */
/* Events of one export answer; beyond, the header names where the next request goes on. */
#define AUDIT_EXPORT_MAX 200000
#define AUDIT_NEXT_HEADER "X-Vtpmca-Next-After"
#define AUDIT_EXPORT_TYPE "application/x-ndjson"

/* ---- Time and the JSON form (server_admin.h) ---- */

void server_admin_format_time_ms(int64_t ms, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    char whole[32];
    server_admin_format_time(seconds, whole, sizeof(whole));
    size_t len = strlen(whole);
    if (len > 1 && whole[len - 1] == 'Z') /* "...SSZ" -> "...SS.mmmZ" */
        snprintf(buf, size, "%.*s.%03dZ", (int)(len - 1), whole, (int)(ms - seconds * 1000));
    else
        snprintf(buf, size, "%s", whole);
}

/* The admin API takes UTC only ("Z") and no leap second. */
vtpmca_err server_admin_parse_time_ms(const char *text, int64_t *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    vt_rfc3339 t;
    if (vt_rfc3339_parse(text, &t) != VTPMCA_OK || !t.utc || t.second > 59)
        return VTPMCA_ERR_PARSE;
    return vt_rfc3339_unix_ms(&t, out);
}

json_t *server_admin_audit_event_json(const store_audit_event *event)
{
    if (event == NULL)
        return NULL;
    char at[40];
    server_admin_format_time_ms(event->at_ms, at, sizeof(at));
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)event->seq,
                     "at", at, "actor", event->actor, "action", event->action, "instance",
                     event->instance_id, "outcome", event->outcome, "measurement",
                     event->measurement, "chip_id", event->chip_id, "detail", event->detail);
}

/* ---- Handlers ---- */

/* The filter of the query parameters; false when answered 400. `last` (may be NULL) is the
 * newest-N tail, which takes no other filter. */
static bool read_filter(admin_call *call, store_audit_filter *filter, uint64_t *last,
                        server_response *response)
{
    memset(filter, 0, sizeof(*filter));
    filter->instance_id = admin_query_value(call, "instance");
    filter->action = admin_query_value(call, "action");
    filter->outcome = admin_query_value(call, "outcome");
    const char *since = admin_query_value(call, "since");
    const char *until = admin_query_value(call, "until");
    const char *after = admin_query_value(call, "after");
    vtpmca_diag diag = {{0}};
    if (filter->instance_id != NULL &&
        store_check_instance_id(filter->instance_id, &diag) != VTPMCA_OK) {
        server_response_error(response, 400, "invalid_request", "'instance': %s", diag.msg);
        return false;
    }
    if ((since != NULL && server_admin_parse_time_ms(since, &filter->since_ms) != VTPMCA_OK) ||
        (until != NULL && server_admin_parse_time_ms(until, &filter->until_ms) != VTPMCA_OK)) {
        server_response_error(response, 400, "invalid_request",
                              "'since' and 'until' are RFC 3339 UTC times such as "
                              "2024-06-01T00:00:00Z");
        return false;
    }
    uint64_t after_seq = 0;
    if (after != NULL && !admin_parse_decimal(after, 0, INT64_MAX, &after_seq)) {
        server_response_error(response, 400, "invalid_request",
                              "'after' must be an audit sequence number");
        return false;
    }
    filter->after_seq = (int64_t)after_seq;
    const char *last_text = last != NULL ? admin_query_value(call, "last") : NULL;
    if (last_text != NULL) {
        if (!admin_parse_decimal(last_text, 1, STORE_LIST_MAX, last)) {
            server_response_error(response, 400, "invalid_request",
                                  "'last' must be a number from 1 to %d", STORE_LIST_MAX);
            return false;
        }
        if (filter->instance_id || filter->action || filter->outcome || since || until || after) {
            server_response_error(response, 400, "invalid_request",
                                  "'last' (the newest events) takes no other filter");
            return false;
        }
    }
    return true;
}

static void handle_audit_search(admin_call *call, server_response *response)
{
    store_audit_filter filter;
    uint64_t last = 0, limit = AUDIT_PAGE_DEFAULT;
    if (!read_filter(call, &filter, &last, response))
        return;
    const char *limit_text = admin_query_value(call, "limit");
    if (limit_text != NULL && !admin_parse_decimal(limit_text, 1, STORE_LIST_MAX, &limit)) {
        server_response_error(response, 400, "invalid_request",
                              "'limit' must be a number from 1 to %d", STORE_LIST_MAX);
        return;
    }
    vtpmca_diag diag = {{0}};
    vtpmca_err err = VTPMCA_OK;
    if (last > 0) {
        /* The newest `last` events: from the newest seq back (seqs are consecutive). */
        int64_t newest = 0;
        err = store_audit_last_seq(call->app->store, &newest, &diag);
        filter.after_seq = newest > (int64_t)last ? newest - (int64_t)last : 0;
        limit = last;
    }
    filter.limit = (size_t)limit;
    store_audit_event *events = NULL;
    size_t n = 0;
    if (err == VTPMCA_OK)
        err = store_audit_query(call->app->store, &filter, &events, &n, &diag);
    if (err != VTPMCA_OK) {
        admin_respond_error(response, err, &diag, "not_found");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_audit_event_json(&events[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    json_t *next =
        n == limit && last == 0 ? json_integer((json_int_t)events[n - 1].seq) : json_null();
    free(events);
    if (list == NULL || next == NULL) {
        json_decref(list);
        json_decref(next);
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    server_response_json(response, 200,
                         json_pack("{s:o, s:o}", "events", list, "next_after", next));
}

/* Appends one event's JSON line to the growing text. */
static vtpmca_err append_line(char **text, size_t *len, size_t *cap, const store_audit_event *ev)
{
    json_t *item = server_admin_audit_event_json(ev);
    char *line = item != NULL ? json_dumps(item, JSON_COMPACT) : NULL;
    json_decref(item);
    if (line == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t line_len = strlen(line);
    if (*len + line_len + 2 > *cap) {
        size_t bigger_cap = *cap ? *cap : 1 << 16;
        while (*len + line_len + 2 > bigger_cap)
            bigger_cap *= 2;
        char *bigger = realloc(*text, bigger_cap);
        if (bigger == NULL) {
            free(line);
            return VTPMCA_ERR_NOMEM;
        }
        *text = bigger;
        *cap = bigger_cap;
    }
    memcpy(*text + *len, line, line_len);
    (*text)[*len + line_len] = '\n';
    *len += line_len + 1;
    (*text)[*len] = '\0';
    free(line);
    return VTPMCA_OK;
}

static void handle_audit_export(admin_call *call, server_response *response)
{
    store_audit_filter filter;
    if (!read_filter(call, &filter, NULL, response))
        return;
    filter.limit = STORE_LIST_MAX;
    char *text = NULL;
    size_t len = 0, cap = 0, total = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = VTPMCA_OK;
    bool more = true;
    while (err == VTPMCA_OK && more && total < AUDIT_EXPORT_MAX) {
        store_audit_event *events = NULL;
        size_t n = 0;
        err = store_audit_query(call->app->store, &filter, &events, &n, &diag);
        for (size_t i = 0; err == VTPMCA_OK && i < n; i++)
            err = append_line(&text, &len, &cap, &events[i]);
        if (n > 0)
            filter.after_seq = events[n - 1].seq;
        more = n == STORE_LIST_MAX;
        total += n;
        free(events);
    }
    if (err != VTPMCA_OK) {
        free(text);
        if (err == VTPMCA_ERR_NOMEM)
            server_response_error(response, 500, "internal", "out of memory");
        else
            admin_respond_error(response, err, &diag, "not_found");
        return;
    }
    if (text == NULL && (text = strdup("")) == NULL) {
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    snprintf(call->audit_detail, sizeof(call->audit_detail), "exported %zu events", total);
    server_response_text(response, 200, AUDIT_EXPORT_TYPE, text, len);
    if (more) { /* a full last page: there may be more; say where to go on */
        char next[24];
        snprintf(next, sizeof(next), "%lld", (long long)filter.after_seq);
        server_response_add_header(response, AUDIT_NEXT_HEADER, next);
    }
}

static const admin_route audit_routes[] = {
    {"GET", "/v1/admin/audit", false, "admin.audit_search",
     "instance,action,outcome,since,until,after,limit,last", handle_audit_search},
    {"GET", "/v1/admin/audit/export", false, "admin.audit_export",
     "instance,action,outcome,since,until,after", handle_audit_export},
};

const admin_route_table admin_audit_route_table = {audit_routes,
                                                   sizeof(audit_routes) / sizeof(audit_routes[0])};
