/* The HTTP layer of vtpmcad: libmicrohttpd (epoll, internal thread pool) dispatching through
 * a route table. It owns the generic rules so handlers only see well-formed requests:
 * unknown path -> 404, wrong method -> 405 with Allow, POST to a JSON route without
 * `Content-Type: application/json` -> 415, body above max_body_bytes -> 413; every such
 * error is a JSON body {"error": code, "message": text}. Each finished request is logged
 * (method, route, status, duration_ms; never the body) and counted in the metrics. */
#ifndef VTPMCA_SERVER_HTTP_H
#define VTPMCA_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/server_metrics.h"

struct MHD_Connection;

/* Route label for requests that match no route (metrics and logs). */
#define SERVER_ROUTE_UNMATCHED "unmatched"
#define SERVER_JSON_CONTENT_TYPE "application/json"
#define SERVER_CBOR_CONTENT_TYPE "application/cbor"

typedef struct {
    struct MHD_Connection *connection; /* for headers and cookies */
    const char *method;
    const char *path;    /* without the query string */
    const uint8_t *body; /* NUL-terminated copy of the body (NULL when empty) */
    size_t body_len;
    void *state; /* the HTTP layer's, for server_request_defer */
} server_request;

#define SERVER_RESPONSE_MAX_HEADERS 4

typedef struct {
    unsigned status;          /* 0 = handler set nothing (sent as 500) */
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the HTTP layer frees it */
    size_t body_len;
    size_t n_headers;
    struct {
        char name[32];
        char value[128];
    } headers[SERVER_RESPONSE_MAX_HEADERS];
} server_response;

/* `ctx` is the pointer given to server_http_start (the application). */
typedef void (*server_handler)(void *ctx, const server_request *request, server_response *response);

typedef enum {
    SERVER_BODY_NONE = 0,     /* a body, if any, is read and ignored */
    SERVER_BODY_JSON,         /* requires Content-Type application/json */
    SERVER_BODY_JSON_OR_CBOR, /* application/json or application/cbor (see
                               * server_request_is_cbor) */
    SERVER_BODY_ANY,          /* any Content-Type: the handler checks it (e.g. CSV uploads) */
} server_body_kind;

typedef struct {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* exact path, or a prefix match when it ends in a star */
    server_body_kind body;
    server_handler handler;
} server_route;

/* Metric route labels of a table: each distinct path once, in table order, then
 * SERVER_ROUTE_UNMATCHED. *labels is a malloc'd array of pointers into the table. */
vtpmca_err server_http_route_labels(const server_route *routes, size_t n_routes,
                                    const char ***labels, size_t *n_labels);

typedef struct {
    const char *listen; /* IPv4 or IPv6 literal */
    unsigned port;      /* 0 = ephemeral */
    unsigned threads;   /* thread pool size; 0 = online CPUs */
    unsigned connection_limit;
    unsigned connection_timeout_s;
    size_t max_body_bytes;
    /* HTTPS when both are set: PEM text of the certificate (chain) and of the private key,
     * which must stay valid until server_http_stop. A libmicrohttpd built without TLS makes
     * server_http_start fail with VTPMCA_ERR_UNSUPPORTED. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
} server_http_config;

typedef struct server_http server_http;

/* Binds and starts serving. `routes` and `ctx` must outlive the server; `metrics` (labels
 * from server_http_route_labels) is not owned. A port in use or a bad address fails with a
 * diag that says why. */
vtpmca_err server_http_start(const server_http_config *config, const server_route *routes,
                             size_t n_routes, void *ctx, server_metrics *metrics, server_http **out,
                             vtpmca_diag *diag);

/* The bound TCP port (useful with port 0). */
unsigned server_http_port(const server_http *http);

/* Stops accepting connections, lets in-flight requests finish for up to grace_ms, then
 * stops the threads and frees everything. NULL is a no-op. */
void server_http_stop(server_http *http, unsigned grace_ms);

/* ---- Building responses (for handlers). ---- */

/* Serialises `body` (reference taken over, also on error) compactly as the response. */
vtpmca_err server_response_json(server_response *response, unsigned status, json_t *body);

/* {"error": code, "message": formatted text}. */
vtpmca_err server_response_error(server_response *response, unsigned status, const char *code,
                                 const char *fmt, ...) VTPMCA_PRINTF(4, 5);

/* Takes over a malloc'd body. */
vtpmca_err server_response_text(server_response *response, unsigned status,
                                const char *content_type, char *body, size_t len);

/* Whether a request's Content-Type is application/cbor (parameters allowed, any case): for
 * SERVER_BODY_JSON_OR_CBOR routes, whose bodies are otherwise JSON. */
bool server_request_is_cbor(const server_request *request);

/* Whether `name` is one of the names in the comma-separated `list` (NULL: an empty list). */
bool server_name_in_list(const char *list, const char *name);

/* The first query parameter of the request whose name is not in the comma-separated
 * `allowed` list (NULL: none allowed), or NULL when all are allowed. The string belongs to
 * the request. */
const char *server_request_unknown_query(const server_request *request, const char *allowed);

/* Deferred answers, for a handler whose work would block (e.g. waiting for the rollback
 * ledger's group commit): blocking in the handler would hold a worker thread that also serves
 * other connections. server_request_defer suspends the request's connection; the handler then
 * returns without setting its response and hands the work, with *out, to another thread,
 * which calls server_deferred_finish exactly once. The request's body stays valid until then.
 * server_http_stop waits for every deferred request to be finished. */
typedef struct server_deferred server_deferred;
vtpmca_err server_request_defer(const server_request *request, server_deferred **out);
/* Sends `response` (taken over, as a handler would fill it) and resumes the connection. Any
 * thread. */
void server_deferred_finish(server_deferred *deferred, server_response *response);

/* Adds a response header (e.g. Retry-After); at most SERVER_RESPONSE_MAX_HEADERS. */
vtpmca_err server_response_add_header(server_response *response, const char *name,
                                      const char *value);

#endif
