/* A minimal blocking HTTP/1.1 client for the benches' load generators (see
 * vtpmca/bench_http.h). */
#include "vtpmca/bench_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vtpmca/http_client.h"

#define METHOD_MAX 16
#define PATH_MAX_LEN 8192
#define TIMEOUT_MAX_MS 600000u
/* The first buffer holds every answer of the benches; it grows only for larger bodies. */
#define INITIAL_BUFFER (16 * 1024)

struct vt_bench_http {
    int fd;      /* -1: not connected */
    bool reused; /* fd has carried a complete answer already */
    unsigned port;
    unsigned timeout_ms;
    unsigned long connects;
    char host_line[40]; /* "Host: 127.0.0.1:<port>\r\n" */
    size_t host_line_len;
    char *head;   /* the request being sent: request line and headers */
    uint8_t *buf; /* the last answer: status line, headers, body, NUL */
    size_t cap;
    struct {
        size_t off, len;
    } cookies[VT_BENCH_HTTP_MAX_COOKIES]; /* Set-Cookie values of the last answer, in buf */
    size_t n_cookies;
};

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The length of the token at s (0 when s does not start with one). */
static size_t token_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && is_tchar((unsigned char)s[n]))
        n++;
    return n;
}

/* Field-value octets: HTAB, SP, VCHAR, obs-text (no CR, LF, NUL or other controls). */
static bool is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

vtpmca_err vt_bench_http_new(unsigned port, unsigned timeout_ms, vt_bench_http **out,
                             vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL || port == 0 || port > 65535 || timeout_ms == 0 || timeout_ms > TIMEOUT_MAX_MS)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "bench http: need a port 1..65535 and a timeout of 1..%u ms",
                           TIMEOUT_MAX_MS);
    vt_bench_http *conn = calloc(1, sizeof(*conn));
    uint8_t *buf = malloc(INITIAL_BUFFER);
    char *head = malloc(VT_BENCH_HTTP_HEADERS_MAX);
    if (conn == NULL || buf == NULL || head == NULL) {
        free(conn);
        free(buf);
        free(head);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "bench http: out of memory");
    }
    conn->head = head;
    conn->fd = -1;
    conn->port = port;
    conn->timeout_ms = timeout_ms;
    conn->buf = buf;
    conn->cap = INITIAL_BUFFER;
    int n = snprintf(conn->host_line, sizeof(conn->host_line), "Host: 127.0.0.1:%u\r\n", port);
    conn->host_line_len = (size_t)n;
    *out = conn;
    return VTPMCA_OK;
}

static void close_connection(vt_bench_http *conn)
{
    if (conn->fd >= 0)
        close(conn->fd);
    conn->fd = -1;
    conn->reused = false;
}

void vt_bench_http_free(vt_bench_http *conn)
{
    if (conn == NULL)
        return;
    close_connection(conn);
    free(conn->buf);
    free(conn->head);
    free(conn);
}

unsigned long vt_bench_http_connects(const vt_bench_http *conn)
{
    return conn != NULL ? conn->connects : 0;
}

static vtpmca_err open_connection(vt_bench_http *conn, vtpmca_diag *diag)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: socket: %s", strerror(errno));
    /* Requests go out in one piece; Nagle would hold the next one for the previous ACK. */
    int one = 1;
    struct timeval tv = {.tv_sec = conn->timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(conn->timeout_ms % 1000) * 1000};
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)conn->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        int e = errno;
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: setsockopt: %s", strerror(e));
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        int e = errno;
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: connect to 127.0.0.1:%u: %s",
                           conn->port, strerror(e));
    }
    conn->fd = fd;
    conn->reused = false;
    conn->connects++;
    return VTPMCA_OK;
}

/* ---- the request ---- */

/* Room for "Content-Length: <digits>\r\n". */
#define LENGTH_LINE_MAX 40

static bool sends_length(const char *method, size_t body_len)
{
    return body_len > 0 || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0);
}

/* Checks the request's parts, and that its request line and headers fit conn->head. */
static vtpmca_err check_request(const vt_bench_http *conn, const char *method, const char *path,
                                const char *const *headers, const void *body, size_t body_len,
                                vtpmca_diag *diag)
{
    size_t method_len = strlen(method);
    if (method_len == 0 || method_len > METHOD_MAX || token_len(method, method_len) != method_len)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "bench http: the method must be an HTTP token of 1..%d characters",
                           METHOD_MAX);
    size_t path_len = strlen(path);
    if (path[0] != '/' || path_len > PATH_MAX_LEN)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "bench http: the path must start with '/' and be at most %d bytes",
                           PATH_MAX_LEN);
    for (size_t i = 0; i < path_len; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "bench http: the path has a space or control character at %zu", i);
    if (body == NULL && body_len > 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bench http: a body length without body");
    if (body_len > VT_BENCH_HTTP_BODY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "bench http: a request body above %d bytes", VT_BENCH_HTTP_BODY_MAX);
    /* "METHOD SP path SP HTTP/1.1 CRLF", Host, the lines, Content-Length, CRLF. */
    size_t len = method_len + 1 + path_len + 11 + conn->host_line_len + LENGTH_LINE_MAX + 2;
    for (size_t h = 0; headers != NULL && headers[h] != NULL; h++) {
        const char *line = headers[h];
        size_t name_len = token_len(line, VT_BENCH_HTTP_HEADERS_MAX);
        if (h >= VT_BENCH_HTTP_MAX_HEADERS)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "bench http: more than %d header lines", VT_BENCH_HTTP_MAX_HEADERS);
        if (name_len == 0 || line[name_len] != ':')
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "bench http: header line %zu is not \"Name: value\"", h);
        if (name_is(line, name_len, "Host") || name_is(line, name_len, "Content-Length") ||
            name_is(line, name_len, "Transfer-Encoding"))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "bench http: header line %zu sets %.*s, which the client writes", h,
                               (int)name_len, line);
        const char *p = line + name_len + 1;
        for (; *p != '\0' && (size_t)(p - line) <= VT_BENCH_HTTP_HEADERS_MAX; p++)
            if (!is_field_char((unsigned char)*p))
                return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                                   "bench http: header line %zu has a control character", h);
        len += (size_t)(p - line) + 2;
        if (len > VT_BENCH_HTTP_HEADERS_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "bench http: the request line and headers exceed %d bytes",
                               VT_BENCH_HTTP_HEADERS_MAX);
    }
    return VTPMCA_OK;
}

static char *append(char *out, const char *text, size_t len)
{
    memcpy(out, text, len);
    return out + len;
}

/* Writes the request line and headers into conn->head (check_request sized them). */
static size_t build_head(vt_bench_http *conn, const char *method, const char *path,
                         const char *const *headers, size_t body_len)
{
    char *out = conn->head;
    out = append(out, method, strlen(method));
    out = append(out, " ", 1);
    out = append(out, path, strlen(path));
    out = append(out, " HTTP/1.1\r\n", 11);
    out = append(out, conn->host_line, conn->host_line_len);
    for (size_t h = 0; headers != NULL && headers[h] != NULL; h++) {
        out = append(out, headers[h], strlen(headers[h]));
        out = append(out, "\r\n", 2);
    }
    if (sends_length(method, body_len))
        out += snprintf(out, LENGTH_LINE_MAX, "Content-Length: %zu\r\n", body_len);
    out = append(out, "\r\n", 2);
    return (size_t)(out - conn->head);
}

/* Sends head and body with sendmsg (one writev, without SIGPIPE), continuing after partial
 * writes. *stale: the peer had closed the connection (EPIPE, ECONNRESET). */
static vtpmca_err send_request(vt_bench_http *conn, size_t head_len, const void *body,
                               size_t body_len, bool *stale, vtpmca_diag *diag)
{
    struct iovec iov[2] = {{.iov_base = conn->head, .iov_len = head_len},
                           {.iov_base = (void *)body, .iov_len = body_len}};
    struct iovec *next = iov;
    size_t left = body_len > 0 ? 2 : 1;
    while (left > 0) {
        struct msghdr msg = {.msg_iov = next, .msg_iovlen = left};
        ssize_t sent = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0) {
            *stale = errno == EPIPE || errno == ECONNRESET;
            return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: send: %s",
                               errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                                       : strerror(errno));
        }
        size_t done = (size_t)sent;
        while (left > 0 && done >= next->iov_len) {
            done -= next->iov_len;
            next++;
            left--;
        }
        if (left > 0) {
            next->iov_base = (uint8_t *)next->iov_base + done;
            next->iov_len -= done;
        }
    }
    return VTPMCA_OK;
}

/* ---- the answer ---- */

typedef struct {
    unsigned status;
    bool has_length;
    size_t content_length;
    bool close_after;
} answer_head;

/* "HTTP/1.x SP 3DIGIT SP reason" (the reason may be empty, and the SP before it absent). */
static vtpmca_err parse_status_line(const char *line, size_t len, answer_head *head, bool *http10,
                                    vtpmca_diag *diag)
{
    if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
        line[11] < '0' || line[11] > '9' || (len > 12 && line[12] != ' '))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "bench http: malformed status line \"%.*s\"",
                           (int)(len < 40 ? len : 40), line);
    for (size_t i = 12; i < len; i++)
        if (!is_field_char((unsigned char)line[i]))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "bench http: a control character in the status line");
    *http10 = line[7] == '0';
    head->status = (unsigned)((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
    if (head->status < 200)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "bench http: interim answers (%u) are not supported", head->status);
    return VTPMCA_OK;
}

/* 1*DIGIT within the body limit; several Content-Length headers must agree. */
static vtpmca_err parse_content_length(const char *value, size_t len, answer_head *head,
                                       vtpmca_diag *diag)
{
    if (len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "bench http: an empty Content-Length");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "bench http: Content-Length \"%.*s\" is not a number",
                               (int)(len < 24 ? len : 24), value);
        n = n * 10 + (size_t)(value[i] - '0');
        if (n > VT_BENCH_HTTP_BODY_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                               "bench http: the answer's body is above %d bytes",
                               VT_BENCH_HTTP_BODY_MAX);
    }
    if (head->has_length && head->content_length != n)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "bench http: conflicting Content-Length headers (%zu, %zu)",
                           head->content_length, n);
    head->has_length = true;
    head->content_length = n;
    return VTPMCA_OK;
}

/* Whether a comma-separated Connection value lists the option. */
static bool lists_option(const char *value, size_t len, const char *option)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',' && value[i] != ' ' && value[i] != '\t')
            i++;
        if (i > start && name_is(value + start, i - start, option))
            return true;
    }
    return false;
}

/* Parses the status line and headers in conn->buf[0, end) (end: just past the blank line's
 * CRLF) and remembers the Set-Cookie values. */
static vtpmca_err parse_head(vt_bench_http *conn, size_t end, bool head_request, answer_head *head,
                             vtpmca_diag *diag)
{
    const char *text = (const char *)conn->buf;
    size_t pos = 0;
    bool http10 = false, keep_alive = false;
    *head = (answer_head){0};
    for (bool first = true;; first = false) {
        const char *nl = memchr(text + pos, '\n', end - pos);
        if (nl == NULL || nl == text + pos || nl[-1] != '\r')
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "bench http: a header line does not end with CRLF");
        const char *line = text + pos;
        size_t len = (size_t)(nl - line) - 1;
        pos = (size_t)(nl - text) + 1;
        if (memchr(line, '\r', len) != NULL || memchr(line, '\0', len) != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "bench http: a bare CR or NUL in the answer's headers");
        vtpmca_err err;
        if (first) {
            if ((err = parse_status_line(line, len, head, &http10, diag)) != VTPMCA_OK)
                return err;
            continue;
        }
        if (len == 0)
            break;
        size_t name_len = token_len(line, len);
        if (name_len == 0 || name_len == len || line[name_len] != ':')
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "bench http: malformed header line \"%.*s\"",
                               (int)(len < 40 ? len : 40), line);
        const char *value = line + name_len + 1;
        size_t value_len = len - name_len - 1;
        while (value_len > 0 && (*value == ' ' || *value == '\t')) {
            value++;
            value_len--;
        }
        while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        for (size_t i = 0; i < value_len; i++)
            if (!is_field_char((unsigned char)value[i]))
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                                   "bench http: a control character in header %.*s", (int)name_len,
                                   line);
        if (name_is(line, name_len, "Content-Length")) {
            if ((err = parse_content_length(value, value_len, head, diag)) != VTPMCA_OK)
                return err;
        } else if (name_is(line, name_len, "Transfer-Encoding")) {
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                               "bench http: Transfer-Encoding \"%.*s\" is not supported (only "
                               "Content-Length bodies)",
                               (int)(value_len < 32 ? value_len : 32), value);
        } else if (name_is(line, name_len, "Connection")) {
            head->close_after = head->close_after || lists_option(value, value_len, "close");
            keep_alive = keep_alive || lists_option(value, value_len, "keep-alive");
        } else if (name_is(line, name_len, "Set-Cookie") &&
                   conn->n_cookies < VT_BENCH_HTTP_MAX_COOKIES) {
            conn->cookies[conn->n_cookies].off = (size_t)((const uint8_t *)value - conn->buf);
            conn->cookies[conn->n_cookies].len = value_len;
            conn->n_cookies++;
        }
    }
    if (http10 && !keep_alive)
        head->close_after = true;
    /* These answers never have a body, whatever their headers say (RFC 9112, 6.3). */
    if (head_request || head->status == 204 || head->status == 304) {
        head->has_length = true;
        head->content_length = 0;
    }
    if (!head->has_length)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "bench http: the answer (%u) has no Content-Length", head->status);
    return VTPMCA_OK;
}

/* Makes room for at least need bytes (and the NUL after them) in conn->buf. */
static vtpmca_err reserve(vt_bench_http *conn, size_t need, vtpmca_diag *diag)
{
    if (need + 1 <= conn->cap)
        return VTPMCA_OK;
    size_t cap = conn->cap;
    while (cap < need + 1)
        cap *= 2;
    uint8_t *grown = realloc(conn->buf, cap);
    if (grown == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "bench http: out of memory");
    conn->buf = grown;
    conn->cap = cap;
    return VTPMCA_OK;
}

/* Reads one answer into conn->buf. *stale: the connection ended before any answer byte. */
static vtpmca_err read_answer(vt_bench_http *conn, bool head_request, vt_bench_http_answer *answer,
                              bool *stale, vtpmca_diag *diag)
{
    size_t len = 0, head_end = 0, total = 0;
    answer_head head = {0};
    for (;;) {
        if (head_end > 0 && len >= total)
            break;
        /* Once the headers ended, reserve() made room for the whole answer: the buffer can
         * only be full before, when a little more shows whether they exceed their limit. */
        size_t room = (conn->cap - 1) - len;
        if (room == 0) {
            vtpmca_err err = reserve(conn, VT_BENCH_HTTP_HEADERS_MAX + 1, diag);
            if (err != VTPMCA_OK)
                return err;
            room = (conn->cap - 1) - len;
        }
        ssize_t got = recv(conn->fd, conn->buf + len, room, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: no answer within %u ms",
                               conn->timeout_ms);
        if (got < 0) {
            *stale = len == 0 && errno == ECONNRESET;
            return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: recv: %s", strerror(errno));
        }
        if (got == 0) {
            *stale = len == 0;
            if (head_end > 0)
                return vtpmca_fail(diag, VTPMCA_ERR_NETWORK,
                                   "bench http: the connection ended %zu bytes short of the "
                                   "answer's Content-Length",
                                   total - len);
            return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "bench http: the connection ended %s",
                               len == 0 ? "before an answer" : "inside the answer's headers");
        }
        size_t scan_from = len >= 3 ? len - 3 : 0;
        len += (size_t)got;
        if (head_end > 0)
            continue;
        /* Look for the blank line in what arrived (and the 3 bytes before it). */
        for (size_t i = scan_from; i + 4 <= len; i++) {
            if (memcmp(conn->buf + i, "\r\n\r\n", 4) == 0) {
                head_end = i + 4;
                break;
            }
        }
        if (head_end == 0) {
            if (len > VT_BENCH_HTTP_HEADERS_MAX)
                return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                                   "bench http: the answer's headers exceed %d bytes",
                                   VT_BENCH_HTTP_HEADERS_MAX);
            continue;
        }
        if (head_end > VT_BENCH_HTTP_HEADERS_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                               "bench http: the answer's headers exceed %d bytes",
                               VT_BENCH_HTTP_HEADERS_MAX);
        vtpmca_err err = parse_head(conn, head_end, head_request, &head, diag);
        if (err == VTPMCA_OK)
            err = reserve(conn, head_end + head.content_length, diag);
        if (err != VTPMCA_OK)
            return err;
        total = head_end + head.content_length;
    }
    if (len > total)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "bench http: %zu bytes after the answer's body",
                           len - total);
    conn->buf[total] = '\0';
    answer->status = head.status;
    answer->body = conn->buf + head_end;
    answer->body_len = head.content_length;
    if (head.close_after)
        close_connection(conn);
    else
        conn->reused = true;
    return VTPMCA_OK;
}

vtpmca_err vt_bench_http_request(vt_bench_http *conn, const char *method, const char *path,
                                 const char *const *headers, const void *body, size_t body_len,
                                 vt_bench_http_answer *answer, vtpmca_diag *diag)
{
    if (answer != NULL)
        *answer = (vt_bench_http_answer){0};
    if (conn == NULL || method == NULL || path == NULL || answer == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bench http: missing argument");
    vtpmca_err err = check_request(conn, method, path, headers, body, body_len, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t head_len = build_head(conn, method, path, headers, body_len);
    conn->n_cookies = 0;
    bool head_request = strcmp(method, "HEAD") == 0;
    /* A kept-alive connection may have been closed by the server while idle: then (and only
     * then: nothing of an answer arrived) the request goes once more on a new one. */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = conn->fd >= 0 && conn->reused, stale = false;
        err = conn->fd >= 0 ? VTPMCA_OK : open_connection(conn, diag);
        if (err == VTPMCA_OK)
            err = send_request(conn, head_len, body, body_len, &stale, diag);
        if (err == VTPMCA_OK)
            err = read_answer(conn, head_request, answer, &stale, diag);
        if (err == VTPMCA_OK)
            return VTPMCA_OK;
        close_connection(conn);
        conn->n_cookies = 0;
        if (!(reused && stale))
            break;
    }
    *answer = (vt_bench_http_answer){0};
    return err;
}

vtpmca_err vt_bench_http_cookie(const vt_bench_http *conn, const char *name, const char **value,
                                size_t *value_len)
{
    if (value != NULL)
        *value = NULL;
    if (value_len != NULL)
        *value_len = 0;
    if (conn == NULL || name == NULL || name[0] == '\0' || value == NULL || value_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    size_t name_len = strlen(name);
    for (size_t i = 0; i < conn->n_cookies; i++) {
        /* cookie-pair = name "=" value, up to the first ';' (RFC 6265, 5.2). */
        const char *pair = (const char *)conn->buf + conn->cookies[i].off;
        size_t len = conn->cookies[i].len;
        const char *semi = memchr(pair, ';', len);
        if (semi != NULL)
            len = (size_t)(semi - pair);
        const char *eq = memchr(pair, '=', len);
        if (eq == NULL)
            continue;
        size_t n = (size_t)(eq - pair);
        while (n > 0 && (pair[n - 1] == ' ' || pair[n - 1] == '\t'))
            n--;
        if (n != name_len || memcmp(pair, name, n) != 0)
            continue;
        const char *v = eq + 1;
        const char *v_end = pair + len;
        while (v < v_end && (*v == ' ' || *v == '\t'))
            v++;
        while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
            v_end--;
        *value = v;
        *value_len = (size_t)(v_end - v);
        return VTPMCA_OK;
    }
    return VTPMCA_ERR_NOT_FOUND;
}

vtpmca_err vt_bench_http_describe(const char *step, vtpmca_err err, const vtpmca_diag *diag,
                                  const vt_bench_http_answer *answer, char *out, size_t out_size)
{
    if (step == NULL || out == NULL || out_size == 0 || (err == VTPMCA_OK && answer == NULL))
        return VTPMCA_ERR_INVALID_ARG;
    if (err != VTPMCA_OK) {
        snprintf(out, out_size, "%s: %s", step,
                 diag != NULL && diag->msg[0] != '\0' ? diag->msg : vtpmca_err_name(err));
        return VTPMCA_OK;
    }
    /* Server text ends up on terminals: vt_http_error_members keeps printable ASCII only. */
    char error[48] = "", message[160] = "";
    vt_http_error_members(answer->body, answer->body_len, error, sizeof(error), message,
                          sizeof(message));
    snprintf(out, out_size, "%s: HTTP %u %s %s", step, answer->status, error, message);
    return VTPMCA_OK;
}
