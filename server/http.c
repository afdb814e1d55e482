/* libmicrohttpd front end: route table dispatch, generic HTTP errors, logging and metrics. */
#include "vtpmca/server_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/log.h"

struct server_http {
    struct MHD_Daemon *daemon;
    const server_route *routes;
    size_t n_routes;
    const char **labels; /* metrics/log label of each label index (server_http_route_labels) */
    size_t *route_label; /* label index of each route */
    size_t unmatched_label;
    void *ctx;
    server_metrics *metrics;
    size_t max_body_bytes;
    unsigned port;
    atomic_uint in_flight; /* requests between their first byte and completion */
    atomic_uint deferred;  /* requests deferred and not yet sent (server_request_defer) */
    /* While MHD_start_daemon runs, libmicrohttpd's messages from the starting thread are kept
     * for the diag instead of being logged. */
    char start_error[160];
    atomic_bool starting;
    pthread_t starter;
};

/* Per-request state, created on the first call of the access handler. */
typedef struct server_deferred {
    struct timespec started;
    const server_route *route; /* NULL when rejected by the generic rules */
    size_t label;
    char method[16];
    unsigned reject_status; /* non-zero: answer with this error once the body is drained */
    const char *reject_code;
    char reject_message[160];
    char allow[64];
    bool body_too_large;
    bool responded;
    unsigned status;
    uint8_t *body;
    size_t body_len, body_cap;
    /* A deferred answer: set by server_request_defer, sent once `finished`. */
    server_http *http;
    struct MHD_Connection *conn;
    bool deferred;
    atomic_bool finished;
    server_response pending;
} request_state;

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* ---- Responses ---- */

static void response_reset(server_response *response)
{
    free(response->body);
    memset(response, 0, sizeof(*response));
}

vtpmca_err server_response_text(server_response *response, unsigned status,
                                const char *content_type, char *body, size_t len)
{
    if (response == NULL || content_type == NULL || (body == NULL && len > 0) || status < 100 ||
        status > 599) {
        free(body);
        return VTPMCA_ERR_INVALID_ARG;
    }
    free(response->body);
    response->status = status;
    response->content_type = content_type;
    response->body = body;
    response->body_len = len;
    return VTPMCA_OK;
}

vtpmca_err server_response_json(server_response *response, unsigned status, json_t *body)
{
    if (response == NULL || body == NULL) {
        json_decref(body);
        return VTPMCA_ERR_INVALID_ARG;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    return server_response_text(response, status, SERVER_JSON_CONTENT_TYPE, text, strlen(text));
}

vtpmca_err server_response_error(server_response *response, unsigned status, const char *code,
                                 const char *fmt, ...)
{
    if (response == NULL || code == NULL || fmt == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (body == NULL) /* message was not valid UTF-8 */
        body = json_pack("{s:s, s:s}", "error", code, "message", "(message not printable)");
    return server_response_json(response, status, body);
}

vtpmca_err server_response_add_header(server_response *response, const char *name,
                                      const char *value)
{
    if (response == NULL || name == NULL || value == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (response->n_headers >= SERVER_RESPONSE_MAX_HEADERS)
        return VTPMCA_ERR_LIMIT;
    if (strlen(name) >= sizeof(response->headers[0].name) ||
        strlen(value) >= sizeof(response->headers[0].value))
        return VTPMCA_ERR_LIMIT;
    strcpy(response->headers[response->n_headers].name, name);
    strcpy(response->headers[response->n_headers].value, value);
    response->n_headers++;
    return VTPMCA_OK;
}

/* ---- Routing ---- */

static bool path_matches(const char *pattern, const char *path)
{
    size_t len = strlen(pattern);
    if (len > 0 && pattern[len - 1] == '*')
        return strncmp(pattern, path, len - 1) == 0;
    return strcmp(pattern, path) == 0;
}

vtpmca_err server_http_route_labels(const server_route *routes, size_t n_routes,
                                    const char ***labels, size_t *n_labels)
{
    if ((routes == NULL && n_routes > 0) || labels == NULL || n_labels == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    const char **out = calloc(n_routes + 1, sizeof(*out));
    if (out == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < n_routes; i++) {
        if (routes[i].path == NULL || routes[i].method == NULL || routes[i].handler == NULL) {
            free(out);
            return VTPMCA_ERR_INVALID_ARG;
        }
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], routes[i].path) == 0;
        if (!seen)
            out[n++] = routes[i].path;
    }
    out[n++] = SERVER_ROUTE_UNMATCHED;
    *labels = out;
    *n_labels = n;
    return VTPMCA_OK;
}

/* `type`, e.g. "application/json" or "application/json; charset=utf-8", case-insensitive. */
static bool is_content_type(const char *value, const char *type)
{
    if (value == NULL)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(type);
    if (strncasecmp(value, type, n) != 0)
        return false;
    const char *rest = value + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return *rest == '\0' || *rest == ';';
}

static bool is_json_content_type(const char *value)
{
    return is_content_type(value, SERVER_JSON_CONTENT_TYPE);
}

static const char *request_content_type(struct MHD_Connection *conn)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
}

bool server_request_is_cbor(const server_request *request)
{
    return request != NULL && request->connection != NULL &&
           is_content_type(request_content_type(request->connection), SERVER_CBOR_CONTENT_TYPE);
}

bool server_name_in_list(const char *list, const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    const char *hit = list != NULL && len > 0 ? strstr(list, name) : NULL;
    while (hit != NULL) {
        if ((hit == list || hit[-1] == ',') && (hit[len] == ',' || hit[len] == '\0'))
            return true;
        hit = strstr(hit + 1, name);
    }
    return false;
}

typedef struct {
    const char *allowed;
    const char *unknown;
} query_check;

static enum MHD_Result check_query_key(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind, (void)value;
    query_check *check = cls;
    if (server_name_in_list(check->allowed, key))
        return MHD_YES;
    check->unknown = key;
    return MHD_NO;
}

const char *server_request_unknown_query(const server_request *request, const char *allowed)
{
    query_check check = {allowed, NULL};
    if (request != NULL && request->connection != NULL)
        MHD_get_connection_values(request->connection, MHD_GET_ARGUMENT_KIND, check_query_key,
                                  &check);
    return check.unknown;
}

static void reject(request_state *rs, unsigned status, const char *code, const char *fmt, ...)
    VTPMCA_PRINTF(4, 5);
static void reject(request_state *rs, unsigned status, const char *code, const char *fmt, ...)
{
    rs->reject_status = status;
    rs->reject_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->reject_message, sizeof(rs->reject_message), fmt, ap);
    va_end(ap);
}

/* Applies the generic rules (404, 405, 415) and picks the route. */
static void route_request(server_http *http, request_state *rs, struct MHD_Connection *conn,
                          const char *path)
{
    rs->label = http->unmatched_label;
    bool path_known = false;
    size_t allow_len = 0;
    for (size_t i = 0; i < http->n_routes; i++) {
        const server_route *r = &http->routes[i];
        if (!path_matches(r->path, path))
            continue;
        if (!path_known)
            rs->label = http->route_label[i];
        path_known = true;
        if (strcmp(r->method, rs->method) == 0) {
            rs->route = r;
            rs->label = http->route_label[i];
            break;
        }
        int n = snprintf(rs->allow + allow_len, sizeof(rs->allow) - allow_len, "%s%s",
                         allow_len ? ", " : "", r->method);
        if (n > 0 && (size_t)n < sizeof(rs->allow) - allow_len)
            allow_len += (size_t)n;
    }
    if (!path_known) {
        reject(rs, MHD_HTTP_NOT_FOUND, "not_found", "no such resource");
        return;
    }
    if (rs->route == NULL) {
        reject(rs, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
               "method %s is not allowed here; allowed: %s", rs->method, rs->allow);
        return;
    }
    if (rs->route->body == SERVER_BODY_JSON) {
        const char *type =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!is_json_content_type(type)) {
            reject(rs, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                   "Content-Type must be application/json");
            rs->route = NULL;
        }
    } else if (rs->route->body == SERVER_BODY_JSON_OR_CBOR) {
        const char *type = request_content_type(conn);
        if (!is_json_content_type(type) && !is_content_type(type, SERVER_CBOR_CONTENT_TYPE)) {
            reject(rs, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                   "Content-Type must be application/json or application/cbor");
            rs->route = NULL;
        }
    }
}

/* ---- Sending ---- */

static enum MHD_Result send_response(request_state *rs, struct MHD_Connection *conn,
                                     server_response *response)
{
    if (response->status == 0)
        server_response_error(response, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                              "the handler produced no response");
    if (response->status == 0) { /* even the error could not be built: out of memory */
        response_reset(response);
        response->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        response->content_type = "text/plain";
    }
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(response->body_len, response->body, MHD_RESPMEM_MUST_FREE);
    if (mr == NULL) {
        response_reset(response);
        return MHD_NO;
    }
    response->body = NULL; /* now owned by libmicrohttpd */
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, response->content_type);
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    for (size_t i = 0; i < response->n_headers; i++)
        MHD_add_response_header(mr, response->headers[i].name, response->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, response->status, mr);
    MHD_destroy_response(mr);
    if (ret == MHD_YES) {
        rs->responded = true;
        rs->status = response->status;
    }
    return ret;
}

static enum MHD_Result send_reject(request_state *rs, struct MHD_Connection *conn)
{
    server_response response = {0};
    server_response_error(&response, rs->reject_status, rs->reject_code, "%s", rs->reject_message);
    if (rs->reject_status == MHD_HTTP_METHOD_NOT_ALLOWED)
        server_response_add_header(&response, MHD_HTTP_HEADER_ALLOW, rs->allow);
    return send_response(rs, conn, &response);
}

static void append_body(server_http *http, request_state *rs, const char *data, size_t len)
{
    if (rs->body_too_large || rs->reject_status != 0 || rs->route == NULL ||
        rs->route->body == SERVER_BODY_NONE)
        return; /* drained and ignored */
    if (len > http->max_body_bytes - rs->body_len) {
        rs->body_too_large = true;
        free(rs->body);
        rs->body = NULL;
        rs->body_len = rs->body_cap = 0;
        return;
    }
    if (rs->body_len + len + 1 > rs->body_cap) {
        size_t cap = rs->body_cap ? rs->body_cap : 1024;
        while (cap < rs->body_len + len + 1)
            cap *= 2;
        uint8_t *bigger = realloc(rs->body, cap);
        if (bigger == NULL) {
            reject(rs, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "out of memory");
            return;
        }
        rs->body = bigger;
        rs->body_cap = cap;
    }
    memcpy(rs->body + rs->body_len, data, len);
    rs->body_len += len;
    rs->body[rs->body_len] = 0;
}

/* Declared Content-Length above the cap: answer before reading a byte of the body. */
static bool declared_too_large(server_http *http, struct MHD_Connection *conn)
{
    const char *value =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (value == NULL)
        return false;
    char *end = NULL;
    unsigned long long declared = strtoull(value, &end, 10);
    return end != value && declared > http->max_body_bytes;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    server_http *http = cls;
    request_state *rs = *req_cls;
    if (rs == NULL) {
        rs = calloc(1, sizeof(*rs));
        if (rs == NULL)
            return MHD_NO;
        *req_cls = rs;
        atomic_fetch_add(&http->in_flight, 1);
        clock_gettime(CLOCK_MONOTONIC, &rs->started);
        snprintf(rs->method, sizeof(rs->method), "%s", method);
        route_request(http, rs, conn, url);
        if (declared_too_large(http, conn)) {
            reject(rs, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                   "request body exceeds %zu bytes", http->max_body_bytes);
            return send_reject(rs, conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rs->responded)
            append_body(http, rs, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rs->deferred) {
        /* Called again once server_deferred_finish resumed the connection. */
        if (!atomic_load(&rs->finished))
            return MHD_YES;
        rs->deferred = false;
        enum MHD_Result sent = send_response(rs, conn, &rs->pending);
        atomic_fetch_sub(&http->deferred, 1);
        return sent;
    }
    if (rs->responded)
        return MHD_YES;
    if (rs->reject_status != 0)
        return send_reject(rs, conn);
    if (rs->body_too_large) {
        reject(rs, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
               "request body exceeds %zu bytes", http->max_body_bytes);
        return send_reject(rs, conn);
    }
    server_request request = {
        .connection = conn,
        .method = rs->method,
        .path = url,
        .body = rs->body,
        .body_len = rs->body_len,
        .state = rs,
    };
    rs->http = http;
    rs->conn = conn;
    server_response response = {0};
    rs->route->handler(http->ctx, &request, &response);
    if (rs->deferred) {
        response_reset(&response); /* the answer comes through server_deferred_finish */
        return MHD_YES;
    }
    return send_response(rs, conn, &response);
}

vtpmca_err server_request_defer(const server_request *request, server_deferred **out)
{
    if (request == NULL || request->state == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    request_state *rs = request->state;
    if (rs->deferred || rs->responded || rs->conn == NULL)
        return VTPMCA_ERR_CONFLICT;
    rs->deferred = true;
    atomic_store(&rs->finished, false);
    atomic_fetch_add(&rs->http->deferred, 1);
    /* Safe to resume from another thread even before the handler returns: libmicrohttpd
     * handles resumptions in the connection's own thread, after the handler. */
    MHD_suspend_connection(rs->conn);
    *out = rs;
    return VTPMCA_OK;
}

void server_deferred_finish(server_deferred *deferred, server_response *response)
{
    if (deferred == NULL) {
        if (response != NULL)
            response_reset(response);
        return;
    }
    if (response != NULL) {
        deferred->pending = *response;
        memset(response, 0, sizeof(*response));
    }
    atomic_store(&deferred->finished, true);
    MHD_resume_connection(deferred->conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    server_http *http = cls;
    request_state *rs = *req_cls;
    (void)conn;
    if (rs == NULL)
        return;
    *req_cls = NULL;
    double elapsed = seconds_since(&rs->started);
    char status[16], duration_ms[32];
    snprintf(duration_ms, sizeof(duration_ms), "%.3f", elapsed * 1000.0);
    if (rs->responded) {
        server_metrics_observe_request(http->metrics, rs->label, rs->method, rs->status, elapsed);
        snprintf(status, sizeof(status), "%u", rs->status);
    } else {
        snprintf(status, sizeof(status), "none");
    }
    vtpmca_log(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN,
               "http.request", "method", rs->method, "route", http->labels[rs->label], "status",
               status, "duration_ms", duration_ms, "outcome",
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "aborted", NULL);
    if (rs->deferred) {
        /* Finished and resumed, but the connection broke before the answer could be sent
         * (a suspended connection is never ended before it is resumed). */
        response_reset(&rs->pending);
        atomic_fetch_sub(&http->deferred, 1);
    }
    free(rs->body);
    free(rs);
    atomic_fetch_sub(&http->in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    server_http *http = cls;
    char message[256];
    vsnprintf(message, sizeof(message), fmt, ap);
    size_t len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == '\r'))
        message[--len] = '\0';
    if (atomic_load(&http->starting) && pthread_equal(pthread_self(), http->starter)) {
        snprintf(http->start_error, sizeof(http->start_error), "%s", message);
        return;
    }
    vtpmca_log(VTPMCA_LOG_WARN, "http.mhd", "message", message, NULL);
}

static vtpmca_err make_sockaddr(const char *listen, unsigned port, struct sockaddr_storage *addr,
                                bool *ipv6, vtpmca_diag *diag)
{
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, listen, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *ipv6 = false;
        return VTPMCA_OK;
    }
    if (inet_pton(AF_INET6, listen, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *ipv6 = true;
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "'%.60s' is not an IP address", listen);
}

vtpmca_err server_http_start(const server_http_config *config, const server_route *routes,
                             size_t n_routes, void *ctx, server_metrics *metrics, server_http **out,
                             vtpmca_diag *diag)
{
    if (config == NULL || config->listen == NULL || routes == NULL || n_routes == 0 ||
        metrics == NULL || out == NULL || config->port > 65535 || config->max_body_bytes == 0 ||
        (config->tls_cert_pem == NULL) != (config->tls_key_pem == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "http: bad arguments");
    const bool tls = config->tls_cert_pem != NULL;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "HTTPS is unavailable: this libmicrohttpd was built without TLS "
                           "(GnuTLS) support");
    struct sockaddr_storage addr;
    bool ipv6 = false;
    vtpmca_err err = make_sockaddr(config->listen, config->port, &addr, &ipv6, diag);
    if (err != VTPMCA_OK)
        return err;

    server_http *http = calloc(1, sizeof(*http));
    if (http == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "http: out of memory");
    http->route_label = calloc(n_routes, sizeof(*http->route_label));
    const char **labels = NULL;
    size_t n_labels = 0;
    err = server_http_route_labels(routes, n_routes, &labels, &n_labels);
    if (http->route_label == NULL || err != VTPMCA_OK) {
        free(labels);
        free(http->route_label);
        free(http);
        return vtpmca_fail(diag, err != VTPMCA_OK ? err : VTPMCA_ERR_NOMEM,
                           "http: bad route table");
    }
    for (size_t i = 0; i < n_routes; i++) {
        for (size_t k = 0; k < n_labels; k++) {
            if (strcmp(labels[k], routes[i].path) == 0) {
                http->route_label[i] = k;
                break;
            }
        }
    }
    http->labels = labels;
    http->unmatched_label = n_labels - 1;
    http->routes = routes;
    http->n_routes = n_routes;
    http->ctx = ctx;
    http->metrics = metrics;
    http->max_body_bytes = config->max_body_bytes;
    atomic_init(&http->in_flight, 0);
    atomic_init(&http->deferred, 0);

    unsigned threads = config->threads;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (unsigned)cpus : 1;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO; /* deferred answers */
    if (ipv6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    /* TLS options only with TLS (the first entry ends the array otherwise): TLS 1.2 and 1.3
     * with GnuTLS's NORMAL cipher suites. */
    struct MHD_OptionItem tls_options[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)config->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)config->tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    http->starter = pthread_self();
    atomic_store(&http->starting, true);
    /* The logger goes first so that libmicrohttpd reports even option errors through it. */
    http->daemon = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, on_request, http, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, http, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, config->connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, config->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, http, MHD_OPTION_ARRAY, tls_options, MHD_OPTION_END);
    atomic_store(&http->starting, false);
    if (http->daemon == NULL) {
        err = vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot listen on %s port %u: %s", config->listen,
                          config->port,
                          http->start_error[0] ? http->start_error : "libmicrohttpd failed");
        free(http->labels);
        free(http->route_label);
        free(http);
        return err;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
    http->port = info != NULL ? info->port : config->port;
    *out = http;
    return VTPMCA_OK;
}

unsigned server_http_port(const server_http *http)
{
    return http != NULL ? http->port : 0;
}

void server_http_stop(server_http *http, unsigned grace_ms)
{
    if (http == NULL)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(http->daemon);
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    while (atomic_load(&http->in_flight) > 0 && seconds_since(&started) * 1000.0 < grace_ms) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    unsigned left = atomic_load(&http->in_flight);
    if (left > 0) {
        char count[16];
        snprintf(count, sizeof(count), "%u", left);
        vtpmca_log(VTPMCA_LOG_WARN, "http.shutdown_timeout", "in_flight", count, NULL);
    }
    /* libmicrohttpd must not stop with suspended connections, and their owners still refer
     * to them: wait until every deferred request was finished and sent (their owners, e.g.
     * the ledger's workers, finish each one whatever happens). */
    while (atomic_load(&http->deferred) > 0) {
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    MHD_stop_daemon(http->daemon);
    /* After quiescing, closing the listening socket is ours (and only after the stop). */
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    free(http->labels);
    free(http->route_label);
    free(http);
}
