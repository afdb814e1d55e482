/* A minimal blocking HTTP/1.1 client for the load generators of the benches (bench_kbs,
 * bench_certify): the client shares the machine's cores with the daemon it measures, so it
 * must cost next to nothing (like wrk), which the full protocol clients (libcurl, JSON
 * trees, certificate parsing) do not.
 *
 * One connection = one persistent keep-alive TCP connection to 127.0.0.1:port (TCP_NODELAY),
 * opened on the first request and again after the server closed it ("Connection: close", an
 * HTTP/1.0 answer, a failed request). Each request is written with one writev; the answer is
 * read into a buffer the connection keeps, so once warm a request allocates nothing.
 *
 * Answers must carry a Content-Length (except 204, 304 and answers to HEAD); chunked or
 * other transfer codings are refused (VTPMCA_ERR_UNSUPPORTED). Limits: the status line and
 * headers at most VT_BENCH_HTTP_HEADERS_MAX bytes, the body at most VT_BENCH_HTTP_BODY_MAX
 * (VTPMCA_ERR_LIMIT beyond). Malformed answers (status line, header lines, Content-Length,
 * bytes after the body) are VTPMCA_ERR_PARSE; connection failures, timeouts and a server
 * closing the connection early are VTPMCA_ERR_NETWORK. After any failure the connection is
 * closed (the next request opens a new one). Not thread-safe: one connection per thread. */
#ifndef VTPMCA_BENCH_HTTP_H
#define VTPMCA_BENCH_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

#define VT_BENCH_HTTP_HEADERS_MAX (16 * 1024)
#define VT_BENCH_HTTP_BODY_MAX (1024 * 1024)
/* Request header lines per request, and Set-Cookie headers remembered per answer. */
#define VT_BENCH_HTTP_MAX_HEADERS 16
#define VT_BENCH_HTTP_MAX_COOKIES 8

typedef struct vt_bench_http vt_bench_http;

/* A connection to 127.0.0.1:port (1..65535); timeout_ms (1..600000) bounds every send and
 * every wait for answer bytes. Nothing is connected yet. */
vtpmca_err vt_bench_http_new(unsigned port, unsigned timeout_ms, vt_bench_http **out,
                             vtpmca_diag *diag);
void vt_bench_http_free(vt_bench_http *conn);

/* The answer to the last request; body points into the connection's buffer (NUL-terminated
 * one past body_len) and is valid until the next request or vt_bench_http_free. */
typedef struct {
    unsigned status;
    const uint8_t *body;
    size_t body_len;
} vt_bench_http_answer;

/* One request: method (an HTTP token, e.g. "GET" or "POST"), path (origin form: starts with
 * '/', no spaces or control characters), headers a NULL-terminated list of at most
 * VT_BENCH_HTTP_MAX_HEADERS "Name: value" lines without CRLF (or NULL), e.g. "Cookie: a=b",
 * "Content-Type: application/cbor". Host and Content-Length are added (Content-Length for
 * every method but GET and HEAD without a body) and must not be in headers. The request line
 * and headers may take up to VT_BENCH_HTTP_HEADERS_MAX bytes, the body up to
 * VT_BENCH_HTTP_BODY_MAX (VTPMCA_ERR_INVALID_ARG beyond); body may be NULL when body_len is 0.
 * Any HTTP status is a success: the caller checks answer->status.
 * A request on a reused connection that the server had closed while idle (the send fails or
 * the connection ends before any answer byte) is retried once on a new connection. */
vtpmca_err vt_bench_http_request(vt_bench_http *conn, const char *method, const char *path,
                                 const char *const *headers, const void *body, size_t body_len,
                                 vt_bench_http_answer *answer, vtpmca_diag *diag);

/* The value of cookie `name` from the last answer's Set-Cookie headers (the cookie-pair's
 * value, without attributes); not NUL-terminated, valid like the answer's body.
 * VTPMCA_ERR_NOT_FOUND when the last answer set no such cookie. */
vtpmca_err vt_bench_http_cookie(const vt_bench_http *conn, const char *name, const char **value,
                                size_t *value_len);

/* Describes a failed request for a bench's error report, into out (out_size > 0): "<step>:
 * <diag message>" when err is not VTPMCA_OK (answer may then be NULL), else "<step>: HTTP
 * <status> <error> <message>" with the "error" and "message" members of the server's JSON
 * refusal (printable ASCII only; empty when the body has none). */
vtpmca_err vt_bench_http_describe(const char *step, vtpmca_err err, const vtpmca_diag *diag,
                                  const vt_bench_http_answer *answer, char *out, size_t out_size);

/* TCP connections opened so far (1 after any number of requests on one kept-alive
 * connection); 0 for NULL. */
unsigned long vt_bench_http_connects(const vt_bench_http *conn);

#endif
