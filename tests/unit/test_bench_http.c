/* Unit tests for tools/lib/bench_http.c, the benches' minimal HTTP/1.1 client, over real
 * TCP on 127.0.0.1:
 *  - against a libmicrohttpd server started here: status and body, the request as the server
 *    saw it (method, path, headers, body, Content-Length), Set-Cookie lookup, keep-alive reuse
 *    (the server reports the client's port: one connection serves many requests),
 *    "Connection: close" (the next request opens a new connection), 204 and HEAD answers,
 *    the description of a refusal (vt_bench_http_describe),
 *    a 1 MiB body, and the refusals of a chunked answer, a body above 1 MiB and headers
 *    above 16 KiB;
 *  - against a raw socket server that writes canned bytes: every malformed answer (status
 *    line, header lines, Content-Length, bytes after the body, a connection ending early),
 *    an interim 1xx answer, a timeout, HTTP/1.0 closing, and the retry of a request on a
 *    kept-alive connection the server had closed;
 *  - argument checks, which open no connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vtpmca/bench_http.h"

#define TIMEOUT_MS 5000

/* ---- a libmicrohttpd server ---- */

static struct {
    struct MHD_Daemon *daemon;
    unsigned port;
    char *big;       /* VT_BENCH_HTTP_BODY_MAX + 1 bytes of a pattern */
    char *big_value; /* a header value above VT_BENCH_HTTP_HEADERS_MAX */
} srv;

typedef struct {
    char body[4096];
    size_t len;
    bool overflow;
} upload;

static unsigned client_port(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr->sa_family != AF_INET)
        return 0;
    return ntohs(((const struct sockaddr_in *)(const void *)info->client_addr)->sin_port);
}

static const char *header_or_dash(struct MHD_Connection *connection, const char *name)
{
    const char *value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
    return value != NULL ? value : "-";
}

static ssize_t chunked_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= 5)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < 5 - pos ? max : 5 - (size_t)pos;
    memcpy(buf, "hello" + pos, n);
    return (ssize_t)n;
}

/* Routes: /echo (what the server received), /status/<code>, /cookie (two Set-Cookie
 * headers), /refuse (a JSON refusal), /close (Connection: close), /big?n=<bytes>, /chunked,
 * /bigheader, /empty (204). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *connection, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)version;
    upload *up = *req_cls;
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        *req_cls = up;
        return up != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        if (up->len + *upload_data_size < sizeof(up->body)) {
            memcpy(up->body + up->len, upload_data, *upload_data_size);
            up->len += *upload_data_size;
        } else {
            up->overflow = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *response = NULL;
    unsigned status = 200;
    if (strcmp(url, "/echo") == 0) {
        char text[8192];
        int n = snprintf(
            text, sizeof(text), "%s %s|cookie=%s|type=%s|length=%s|x=%s|body=%.*s|port=%u", method,
            url, header_or_dash(connection, "Cookie"), header_or_dash(connection, "Content-Type"),
            header_or_dash(connection, "Content-Length"), header_or_dash(connection, "X-Bench"),
            (int)up->len, up->body, client_port(connection));
        response = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
    } else if (strncmp(url, "/status/", 8) == 0) {
        status = (unsigned)atoi(url + 8);
        response = MHD_create_response_from_buffer(4, "nope", MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(url, "/refuse") == 0) {
        static const char refusal[] =
            "{\"error\":\"policy_rejected\",\"message\":\"no \\u0007bell\\nhere\"}";
        status = 403;
        response = MHD_create_response_from_buffer(sizeof(refusal) - 1, (void *)refusal,
                                                   MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(url, "/cookie") == 0) {
        response = MHD_create_response_from_buffer(2, "ok", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE, "other=x; Path=/");
        MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE,
                                "kbs-session-id=0123abcd; Path=/kbs; HttpOnly; Max-Age=60");
    } else if (strcmp(url, "/close") == 0) {
        char text[32];
        int n = snprintf(text, sizeof(text), "closing|port=%u", client_port(connection));
        response = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    } else if (strcmp(url, "/big") == 0) {
        const char *n = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "n");
        size_t len = n != NULL ? strtoul(n, NULL, 10) : 0;
        if (len > VT_BENCH_HTTP_BODY_MAX + 1)
            len = VT_BENCH_HTTP_BODY_MAX + 1;
        response = MHD_create_response_from_buffer(len, srv.big, MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(url, "/chunked") == 0) {
        response =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, chunked_reader, NULL, NULL);
    } else if (strcmp(url, "/bigheader") == 0) {
        response = MHD_create_response_from_buffer(2, "ok", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(response, "X-Big", srv.big_value);
    } else if (strcmp(url, "/empty") == 0) {
        status = 204;
        response = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    } else {
        status = 404;
        response = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    }
    if (response == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}

/* ---- a raw server writing canned bytes ---- */

typedef struct {
    int listen_fd;
    unsigned port;
    pthread_t thread;
    const char *answer; /* written after each request's headers arrived */
    size_t answer_len;
    bool hold_open; /* after the answer, wait for the client to close (else close at once) */
    unsigned connections;
    char request[2048]; /* the first request received */
} raw_server;

static void *raw_serve(void *arg)
{
    raw_server *rs = arg;
    for (;;) {
        int fd = accept(rs->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        rs->connections++;
        char buf[2048];
        size_t len = 0;
        /* The request: headers, then Content-Length bytes of body. */
        while (len < sizeof(buf) - 1) {
            ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            const char *end = strstr(buf, "\r\n\r\n");
            const char *length = strstr(buf, "Content-Length: ");
            size_t body_len = length != NULL && length < end ? strtoul(length + 16, NULL, 10) : 0;
            if (end != NULL && len >= (size_t)(end + 4 - buf) + body_len)
                break;
        }
        buf[len] = '\0';
        if (rs->request[0] == '\0')
            memcpy(rs->request, buf, len + 1);
        if (rs->answer_len > 0 &&
            send(fd, rs->answer, rs->answer_len, MSG_NOSIGNAL) != (ssize_t)rs->answer_len) {
            close(fd);
            continue;
        }
        if (rs->hold_open)
            while (recv(fd, buf, sizeof(buf), 0) > 0)
                ;
        close(fd);
    }
}

static void raw_start(raw_server *rs, const char *answer, size_t answer_len, bool hold_open)
{
    memset(rs, 0, sizeof(*rs));
    rs->answer = answer;
    rs->answer_len = answer_len;
    rs->hold_open = hold_open;
    rs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rs->listen_fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof(addr);
    assert_int_equal(bind(rs->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(rs->listen_fd, 8), 0);
    assert_int_equal(getsockname(rs->listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
    rs->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&rs->thread, NULL, raw_serve, rs), 0);
}

static void raw_stop(raw_server *rs)
{
    shutdown(rs->listen_fd, SHUT_RDWR);
    pthread_join(rs->thread, NULL);
    close(rs->listen_fd);
}

/* One GET to a raw server answering `answer` (then closing), expecting err. */
static void expect_canned(const char *answer, size_t len, vtpmca_err want, const char *diag_part)
{
    raw_server rs;
    raw_start(&rs, answer, len, false);
    vt_bench_http *conn = NULL;
    assert_int_equal(vt_bench_http_new(rs.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    vt_bench_http_answer answer_out;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = vt_bench_http_request(conn, "GET", "/x", NULL, NULL, 0, &answer_out, &diag);
    if (err != want)
        print_error("answer \"%.60s\": got %s (%s), want %s\n", answer, vtpmca_err_name(err),
                    diag.msg, vtpmca_err_name(want));
    assert_int_equal(err, want);
    assert_non_null(strstr(diag.msg, diag_part));
    assert_int_equal(answer_out.status, 0);
    assert_null(answer_out.body);
    /* A failure opens no second connection and leaves no cookie behind. */
    assert_int_equal(vt_bench_http_connects(conn), 1);
    const char *value = NULL;
    size_t value_len = 0;
    assert_int_equal(vt_bench_http_cookie(conn, "a", &value, &value_len), VTPMCA_ERR_NOT_FOUND);
    vt_bench_http_free(conn);
    raw_stop(&rs);
}

/* ---- helpers ---- */

static vt_bench_http *connect_srv(void)
{
    vt_bench_http *conn = NULL;
    assert_int_equal(vt_bench_http_new(srv.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    return conn;
}

static void request_ok(vt_bench_http *conn, const char *method, const char *path,
                       const char *const *headers, const char *body, vt_bench_http_answer *answer)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = vt_bench_http_request(conn, method, path, headers, body,
                                           body != NULL ? strlen(body) : 0, answer, &diag);
    if (err != VTPMCA_OK)
        print_error("%s %s: %s\n", method, path, diag.msg);
    assert_int_equal(err, VTPMCA_OK);
}

/* The client port /echo or /close reported. */
static unsigned reported_port(const vt_bench_http_answer *answer)
{
    const char *p = strstr((const char *)answer->body, "port=");
    assert_non_null(p);
    return (unsigned)atoi(p + 5);
}

/* ---- tests against libmicrohttpd ---- */

static void test_get_and_post(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    vt_bench_http_answer answer;
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    /* No body, no Content-Length on a GET; the body is NUL-terminated in place. */
    assert_non_null(strstr((const char *)answer.body, "GET /echo|cookie=-|type=-|length=-|x=-|"));
    assert_int_equal(strlen((const char *)answer.body), answer.body_len);

    const char *headers[] = {"Cookie: kbs-session-id=feed", "Content-Type: application/cbor",
                             "X-Bench:  spaced value", NULL};
    request_ok(conn, "POST", "/echo", headers, "hello body", &answer);
    assert_int_equal(answer.status, 200);
    const char *want = "POST /echo|cookie=kbs-session-id=feed|type=application/cbor|length=10|"
                       "x=spaced value|body=hello body|port=";
    assert_memory_equal(answer.body, want, strlen(want));

    /* A POST without a body still says Content-Length: 0. */
    request_ok(conn, "POST", "/echo", NULL, NULL, &answer);
    assert_non_null(strstr((const char *)answer.body, "|length=0|"));

    request_ok(conn, "GET", "/status/404", NULL, NULL, &answer);
    assert_int_equal(answer.status, 404);
    assert_int_equal(answer.body_len, 4);
    assert_memory_equal(answer.body, "nope", 4);
    request_ok(conn, "GET", "/status/503", NULL, NULL, &answer);
    assert_int_equal(answer.status, 503);
    vt_bench_http_free(conn);
}

static void test_keep_alive_and_close(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    assert_int_equal(vt_bench_http_connects(conn), 0);
    vt_bench_http_answer answer;
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    unsigned first = reported_port(&answer);
    for (int i = 0; i < 20; i++) {
        request_ok(conn, i % 2 ? "GET" : "POST", "/echo", NULL, i % 2 ? NULL : "x", &answer);
        assert_int_equal(reported_port(&answer), first);
    }
    assert_int_equal(vt_bench_http_connects(conn), 1);

    /* Connection: close: the answer is read, then the connection is dropped... */
    request_ok(conn, "GET", "/close", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(reported_port(&answer), first);
    assert_memory_equal(answer.body, "closing|", 8);
    assert_int_equal(vt_bench_http_connects(conn), 1);
    /* ... and the next request goes on a new one, which is kept again. */
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    unsigned second = reported_port(&answer);
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    assert_int_equal(reported_port(&answer), second);
    assert_int_equal(vt_bench_http_connects(conn), 2);
    vt_bench_http_free(conn);
}

static void test_cookies(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    vt_bench_http_answer answer;
    const char *value = NULL;
    size_t len = 0;
    request_ok(conn, "POST", "/cookie", NULL, NULL, &answer);
    assert_int_equal(vt_bench_http_cookie(conn, "kbs-session-id", &value, &len), VTPMCA_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(value, "0123abcd", 8);
    assert_int_equal(vt_bench_http_cookie(conn, "other", &value, &len), VTPMCA_OK);
    assert_int_equal(len, 1);
    assert_memory_equal(value, "x", 1);
    /* Names match exactly: no prefixes, no attributes. */
    assert_int_equal(vt_bench_http_cookie(conn, "kbs-session", &value, &len), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(vt_bench_http_cookie(conn, "Path", &value, &len), VTPMCA_ERR_NOT_FOUND);
    assert_null(value);
    assert_int_equal(len, 0);
    /* Cookies are the last answer's only. */
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    assert_int_equal(vt_bench_http_cookie(conn, "kbs-session-id", &value, &len),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(vt_bench_http_cookie(NULL, "a", &value, &len), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_cookie(conn, NULL, &value, &len), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_cookie(conn, "", &value, &len), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_cookie(conn, "a", NULL, &len), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_cookie(conn, "a", &value, NULL), VTPMCA_ERR_INVALID_ARG);
    vt_bench_http_free(conn);
}

static void test_bodies(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    vt_bench_http_answer answer;
    /* The largest body accepted, across many reads and a grown buffer. */
    request_ok(conn, "GET", "/big?n=1048576", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(answer.body_len, VT_BENCH_HTTP_BODY_MAX);
    assert_memory_equal(answer.body, srv.big, VT_BENCH_HTTP_BODY_MAX);
    assert_int_equal(answer.body[answer.body_len], '\0');
    /* 204 and HEAD answers have no body (HEAD's Content-Length is the GET's). */
    request_ok(conn, "GET", "/empty", NULL, NULL, &answer);
    assert_int_equal(answer.status, 204);
    assert_int_equal(answer.body_len, 0);
    request_ok(conn, "HEAD", "/big?n=10", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(answer.body_len, 0);
    request_ok(conn, "GET", "/big?n=10", NULL, NULL, &answer);
    assert_int_equal(answer.body_len, 10);
    assert_memory_equal(answer.body, srv.big, 10);
    assert_int_equal(vt_bench_http_connects(conn), 1);

    /* One byte more is refused, and the connection is replaced for the next request. */
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        vt_bench_http_request(conn, "GET", "/big?n=1048577", NULL, NULL, 0, &answer, &diag),
        VTPMCA_ERR_LIMIT);
    assert_non_null(strstr(diag.msg, "body is above"));
    assert_null(answer.body);
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(vt_bench_http_connects(conn), 2);
    vt_bench_http_free(conn);
}

static void test_refused_answers(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    vt_bench_http_answer answer;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vt_bench_http_request(conn, "GET", "/chunked", NULL, NULL, 0, &answer, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "chunked"));
    assert_int_equal(
        vt_bench_http_request(conn, "GET", "/bigheader", NULL, NULL, 0, &answer, &diag),
        VTPMCA_ERR_LIMIT);
    assert_non_null(strstr(diag.msg, "headers exceed"));
    request_ok(conn, "GET", "/echo", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(vt_bench_http_connects(conn), 3);
    vt_bench_http_free(conn);
}

static void test_describe(void **state)
{
    (void)state;
    vt_bench_http *conn = connect_srv();
    vt_bench_http_answer answer;
    char out[128];
    /* A refusal: the status and the server's error and message, printable ASCII only. */
    request_ok(conn, "GET", "/refuse", NULL, NULL, &answer);
    assert_int_equal(vt_bench_http_describe("attest", VTPMCA_OK, NULL, &answer, out, sizeof(out)),
                     VTPMCA_OK);
    assert_string_equal(out, "attest: HTTP 403 policy_rejected no ?bell?here");
    /* A body that is not JSON: the status only. */
    request_ok(conn, "GET", "/status/404", NULL, NULL, &answer);
    assert_int_equal(vt_bench_http_describe("auth", VTPMCA_OK, NULL, &answer, out, sizeof(out)),
                     VTPMCA_OK);
    assert_string_equal(out, "auth: HTTP 404  ");
    /* A failed request: the diag, else the error's name; the answer is not needed. */
    vtpmca_diag diag = {{0}};
    assert_int_equal(vt_bench_http_request(conn, "GET", "/chunked", NULL, NULL, 0, &answer, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(
        vt_bench_http_describe("resource", VTPMCA_ERR_UNSUPPORTED, &diag, NULL, out, sizeof(out)),
        VTPMCA_OK);
    assert_memory_equal(out, "resource: bench http: Transfer-Encoding", 39);
    assert_int_equal(
        vt_bench_http_describe("resource", VTPMCA_ERR_NETWORK, NULL, NULL, out, sizeof(out)),
        VTPMCA_OK);
    assert_string_equal(out, "resource: network");
    /* Truncated to the room given. */
    assert_int_equal(vt_bench_http_describe("abcdef", VTPMCA_ERR_NETWORK, NULL, NULL, out, 4),
                     VTPMCA_OK);
    assert_string_equal(out, "abc");
    assert_int_equal(vt_bench_http_describe(NULL, VTPMCA_ERR_NETWORK, NULL, NULL, out, 4),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_describe("a", VTPMCA_OK, NULL, NULL, out, sizeof(out)),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_describe("a", VTPMCA_ERR_NETWORK, NULL, NULL, NULL, 4),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_describe("a", VTPMCA_ERR_NETWORK, NULL, NULL, out, 0),
                     VTPMCA_ERR_INVALID_ARG);
    vt_bench_http_free(conn);
}

/* ---- tests against canned answers ---- */

#define CANNED(text, err, part) expect_canned(text, sizeof(text) - 1, err, part)

static void test_malformed_answers(void **state)
{
    (void)state;
    CANNED("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", VTPMCA_ERR_PARSE,
           "no Content-Length");
    CANNED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
           VTPMCA_ERR_UNSUPPORTED, "chunked");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\nok",
           VTPMCA_ERR_UNSUPPORTED, "gzip");
    CANNED("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "status line");
    CANNED("HTTP/2 200\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "status line");
    CANNED("HTTP/1.1 600 Huh\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "status line");
    CANNED("HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "status line");
    CANNED("garbage\r\n\r\n", VTPMCA_ERR_PARSE, "status line");
    CANNED("HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "control");
    CANNED("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", VTPMCA_ERR_UNSUPPORTED,
           "interim");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
           VTPMCA_ERR_PARSE, "conflicting");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", VTPMCA_ERR_PARSE, "not a number");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", VTPMCA_ERR_PARSE, "not a number");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", VTPMCA_ERR_PARSE, "empty");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", VTPMCA_ERR_LIMIT,
           "above");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n", VTPMCA_ERR_LIMIT, "above");
    CANNED("HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE,
           "malformed header");
    CANNED("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", VTPMCA_ERR_PARSE, "malformed header");
    CANNED("HTTP/1.1 200 OK\r\nName : v\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE,
           "malformed header");
    CANNED("HTTP/1.1 200 OK\r\n Folded: x\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE,
           "malformed header");
    CANNED("HTTP/1.1 200 OK\r\nX: a\nb\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "CRLF");
    CANNED("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "bare CR");
    CANNED("HTTP/1.1 200 OK\r\nX: a\x7f\r\nContent-Length: 0\r\n\r\n", VTPMCA_ERR_PARSE, "control");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhello", VTPMCA_ERR_PARSE,
           "after the answer's body");
    CANNED("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", VTPMCA_ERR_NETWORK,
           "5 bytes short");
    CANNED("HTTP/1.1 200 OK\r\nContent-Le", VTPMCA_ERR_NETWORK, "inside the answer's headers");
    CANNED("", VTPMCA_ERR_NETWORK, "before an answer");

    /* Headers that never end within the limit. */
    size_t big_len = VT_BENCH_HTTP_HEADERS_MAX + 1024;
    char *big = malloc(big_len);
    assert_non_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX-A: ", 22);
    memset(big + 22, 'a', big_len - 22);
    expect_canned(big, big_len, VTPMCA_ERR_LIMIT, "headers exceed");
    free(big);
}

/* What the raw server received: the request exactly as written on the wire. */
static void test_request_bytes(void **state)
{
    (void)state;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    raw_server rs;
    raw_start(&rs, ok, sizeof(ok) - 1, true);
    vt_bench_http *conn = NULL;
    assert_int_equal(vt_bench_http_new(rs.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    const char *headers[] = {"Accept: application/json", "Cookie: a=b", NULL};
    vt_bench_http_answer answer;
    request_ok(conn, "POST", "/kbs/v0/attest", headers, "{}", &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(answer.body_len, 2);
    assert_memory_equal(answer.body, "ok", 2);
    vt_bench_http_free(conn);
    raw_stop(&rs);
    char want[256];
    snprintf(want, sizeof(want),
             "POST /kbs/v0/attest HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: application/json\r\n"
             "Cookie: a=b\r\nContent-Length: 2\r\n\r\n{}",
             rs.port);
    assert_string_equal(rs.request, want);
}

static void test_http10_and_stale_connection(void **state)
{
    (void)state;
    /* HTTP/1.0 without keep-alive: the connection closes after each answer. */
    static const char http10[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    raw_server rs;
    raw_start(&rs, http10, sizeof(http10) - 1, true);
    vt_bench_http *conn = NULL;
    assert_int_equal(vt_bench_http_new(rs.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    vt_bench_http_answer answer;
    request_ok(conn, "GET", "/a", NULL, NULL, &answer);
    request_ok(conn, "GET", "/b", NULL, NULL, &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(vt_bench_http_connects(conn), 2);
    vt_bench_http_free(conn);
    raw_stop(&rs);

    /* A keep-alive answer, then the server closes: the next request is sent again on a new
     * connection, once. */
    static const char kept[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    raw_start(&rs, kept, sizeof(kept) - 1, false);
    assert_int_equal(vt_bench_http_new(rs.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    request_ok(conn, "GET", "/a", NULL, NULL, &answer);
    assert_int_equal(vt_bench_http_connects(conn), 1);
    usleep(50 * 1000); /* the server's close arrives */
    request_ok(conn, "POST", "/b", NULL, "x", &answer);
    assert_int_equal(answer.status, 200);
    assert_int_equal(vt_bench_http_connects(conn), 2);
    vt_bench_http_free(conn);
    raw_stop(&rs);
    assert_int_equal(rs.connections, 2);

    /* A fresh connection that ends without an answer is not retried. */
    raw_start(&rs, "", 0, false);
    assert_int_equal(vt_bench_http_new(rs.port, TIMEOUT_MS, &conn, NULL), VTPMCA_OK);
    assert_int_equal(vt_bench_http_request(conn, "GET", "/a", NULL, NULL, 0, &answer, NULL),
                     VTPMCA_ERR_NETWORK);
    assert_int_equal(vt_bench_http_connects(conn), 1);
    vt_bench_http_free(conn);
    raw_stop(&rs);
}

static void test_timeout_and_refused_connection(void **state)
{
    (void)state;
    /* The server reads the request and never answers. */
    raw_server rs;
    raw_start(&rs, "", 0, true);
    vt_bench_http *conn = NULL;
    assert_int_equal(vt_bench_http_new(rs.port, 200, &conn, NULL), VTPMCA_OK);
    vt_bench_http_answer answer;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vt_bench_http_request(conn, "GET", "/a", NULL, NULL, 0, &answer, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "no answer within 200 ms"));
    vt_bench_http_free(conn); /* closes: the server's thread ends its connection */
    unsigned port = rs.port;
    raw_stop(&rs);

    /* Nobody listens there any more. */
    assert_int_equal(vt_bench_http_new(port, 200, &conn, NULL), VTPMCA_OK);
    assert_int_equal(vt_bench_http_request(conn, "GET", "/a", NULL, NULL, 0, &answer, &diag),
                     VTPMCA_ERR_NETWORK);
    assert_non_null(strstr(diag.msg, "connect"));
    vt_bench_http_free(conn);
}

/* ---- argument checks ---- */

static void test_arguments(void **state)
{
    (void)state;
    vt_bench_http *conn = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vt_bench_http_new(0, 100, &conn, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_null(conn);
    assert_int_equal(vt_bench_http_new(65536, 100, &conn, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_new(80, 0, &conn, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_new(80, 600001, &conn, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_new(80, 100, NULL, NULL), VTPMCA_ERR_INVALID_ARG);

    conn = connect_srv();
    vt_bench_http_answer answer;
    const char *too_many[VT_BENCH_HTTP_MAX_HEADERS + 2];
    for (int i = 0; i < VT_BENCH_HTTP_MAX_HEADERS + 1; i++)
        too_many[i] = "X-A: b";
    too_many[VT_BENCH_HTTP_MAX_HEADERS + 1] = NULL;
    /* Request headers above the limit: one long line, or two halves. */
    static char long_line[VT_BENCH_HTTP_HEADERS_MAX + 16], half_line[VT_BENCH_HTTP_HEADERS_MAX / 2];
    memset(long_line, 'a', sizeof(long_line) - 1);
    memcpy(long_line, "X-Long: ", 8);
    memset(half_line, 'b', sizeof(half_line) - 1);
    memcpy(half_line, "X-Half: ", 8);
    const struct {
        const char *method, *path;
        const char *const *headers;
        const void *body;
        size_t body_len;
        const char *diag_part;
    } bad[] = {
        {"", "/echo", NULL, NULL, 0, "method"},
        {"GE T", "/echo", NULL, NULL, 0, "method"},
        {"GET\r\n", "/echo", NULL, NULL, 0, "method"},
        {"ABCDEFGHIJKLMNOPQ", "/echo", NULL, NULL, 0, "method"},
        {"GET", "echo", NULL, NULL, 0, "path"},
        {"GET", "", NULL, NULL, 0, "path"},
        {"GET", "/a b", NULL, NULL, 0, "path"},
        {"GET", "/a\r\nX: y", NULL, NULL, 0, "path"},
        {"GET", "/\x7f", NULL, NULL, 0, "path"},
        {"POST", "/echo", NULL, NULL, 3, "without body"},
        {"POST", "/echo", NULL, "x", VT_BENCH_HTTP_BODY_MAX + 1, "request body above"},
        {"GET", "/echo", (const char *const[]){"NoColon", NULL}, NULL, 0, "Name: value"},
        {"GET", "/echo", (const char *const[]){": v", NULL}, NULL, 0, "Name: value"},
        {"GET", "/echo", (const char *const[]){"A B: v", NULL}, NULL, 0, "Name: value"},
        {"GET", "/echo", (const char *const[]){"X: a\r\nY: b", NULL}, NULL, 0, "control"},
        {"GET", "/echo", (const char *const[]){"X: a\n", NULL}, NULL, 0, "control"},
        {"GET", "/echo", (const char *const[]){"host: x", NULL}, NULL, 0, "client writes"},
        {"GET", "/echo", (const char *const[]){"Content-Length: 1", NULL}, NULL, 0,
         "client writes"},
        {"GET", "/echo", (const char *const[]){"Transfer-Encoding: chunked", NULL}, NULL, 0,
         "client writes"},
        {"GET", "/echo", too_many, NULL, 0, "more than"},
        {"GET", "/echo", (const char *const[]){long_line, NULL}, NULL, 0, "exceed"},
        {"GET", "/echo", (const char *const[]){half_line, half_line, NULL}, NULL, 0, "exceed"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        diag.msg[0] = '\0';
        vtpmca_err err = vt_bench_http_request(conn, bad[i].method, bad[i].path, bad[i].headers,
                                               bad[i].body, bad[i].body_len, &answer, &diag);
        if (err != VTPMCA_ERR_INVALID_ARG || strstr(diag.msg, bad[i].diag_part) == NULL)
            print_error("case %zu: %s (%s)\n", i, vtpmca_err_name(err), diag.msg);
        assert_int_equal(err, VTPMCA_ERR_INVALID_ARG);
        assert_non_null(strstr(diag.msg, bad[i].diag_part));
    }
    assert_int_equal(vt_bench_http_request(NULL, "GET", "/", NULL, NULL, 0, &answer, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_request(conn, NULL, "/", NULL, NULL, 0, &answer, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_request(conn, "GET", NULL, NULL, NULL, 0, &answer, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_bench_http_request(conn, "GET", "/", NULL, NULL, 0, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    /* Nothing was sent: no connection was opened. */
    assert_int_equal(vt_bench_http_connects(conn), 0);
    /* The maximum number of header lines is fine. */
    too_many[VT_BENCH_HTTP_MAX_HEADERS] = NULL;
    request_ok(conn, "GET", "/echo", too_many, NULL, &answer);
    assert_int_equal(answer.status, 200);
    vt_bench_http_free(conn);
    vt_bench_http_free(NULL);
    assert_int_equal(vt_bench_http_connects(NULL), 0);
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    srv.big = malloc(VT_BENCH_HTTP_BODY_MAX + 1);
    srv.big_value = malloc(VT_BENCH_HTTP_HEADERS_MAX + 2);
    if (srv.big == NULL || srv.big_value == NULL)
        return -1;
    for (size_t i = 0; i < VT_BENCH_HTTP_BODY_MAX + 1; i++)
        srv.big[i] = (char)('a' + (i * 7) % 26);
    memset(srv.big_value, 'v', VT_BENCH_HTTP_HEADERS_MAX + 1);
    srv.big_value[VT_BENCH_HTTP_HEADERS_MAX + 1] = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    srv.daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle,
                         NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    if (srv.daemon == NULL)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        return -1;
    srv.port = info->port;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(srv.daemon);
    free(srv.big);
    free(srv.big_value);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_post),
        cmocka_unit_test(test_keep_alive_and_close),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_refused_answers),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_malformed_answers),
        cmocka_unit_test(test_request_bytes),
        cmocka_unit_test(test_http10_and_stale_connection),
        cmocka_unit_test(test_timeout_and_refused_connection),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
