#include "vtpmca/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static vtpmca_log_level g_min_level = VTPMCA_LOG_INFO;
static vtpmca_log_format g_format = VTPMCA_LOG_LOGFMT;
static int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

vtpmca_err vtpmca_log_level_parse(const char *text, vtpmca_log_level *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (vtpmca_log_level)i;
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_PARSE;
}

vtpmca_err vtpmca_log_format_parse(const char *text, vtpmca_log_format *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcmp(text, "logfmt") == 0)
        *out = VTPMCA_LOG_LOGFMT;
    else if (strcmp(text, "json") == 0)
        *out = VTPMCA_LOG_JSON;
    else
        return VTPMCA_ERR_PARSE;
    return VTPMCA_OK;
}

void vtpmca_log_setup(vtpmca_log_level min_level, vtpmca_log_format format, int fd)
{
    g_min_level = min_level;
    g_format = format;
    g_fd = fd;
}

/* Bounded line builder: truncates rather than overflowing. */
typedef struct {
    char buf[2048];
    size_t len;
} line_buf;

static void put_char(line_buf *lb, char c)
{
    if (lb->len < sizeof(lb->buf) - 2)
        lb->buf[lb->len++] = c;
}

static void put_str(line_buf *lb, const char *s)
{
    while (*s)
        put_char(lb, *s++);
}

/* Escapes a value for JSON strings and quoted logfmt values alike. */
static void put_escaped(line_buf *lb, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            put_char(lb, '\\');
            put_char(lb, (char)c);
        } else if (c == '\n') {
            put_str(lb, "\\n");
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            snprintf(hex, sizeof(hex), "\\u%04x", c);
            put_str(lb, hex);
        } else {
            put_char(lb, (char)c);
        }
    }
}

static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return 1;
    }
    return 0;
}

static void put_field(line_buf *lb, const char *key, const char *value, int first)
{
    if (g_format == VTPMCA_LOG_JSON) {
        if (!first)
            put_char(lb, ',');
        put_char(lb, '"');
        put_escaped(lb, key);
        put_str(lb, "\":\"");
        put_escaped(lb, value);
        put_char(lb, '"');
    } else {
        if (!first)
            put_char(lb, ' ');
        put_str(lb, key);
        put_char(lb, '=');
        if (needs_quotes(value)) {
            put_char(lb, '"');
            put_escaped(lb, value);
            put_char(lb, '"');
        } else {
            put_str(lb, value);
        }
    }
}

void vtpmca_log(vtpmca_log_level level, const char *event, ...)
{
    if (level < g_min_level || event == NULL)
        return;
    line_buf lb;
    lb.len = 0;

    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000L);

    if (g_format == VTPMCA_LOG_JSON)
        put_char(&lb, '{');
    put_field(&lb, "ts", when, 1);
    put_field(&lb, "level", level_names[level], 0);
    put_field(&lb, "event", event, 0);

    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        put_field(&lb, key, value != NULL ? value : "", 0);
    }
    va_end(ap);
    if (g_format == VTPMCA_LOG_JSON)
        put_char(&lb, '}');
    lb.buf[lb.len++] = '\n';

    /* One write keeps concurrent lines whole; a short write to a log is not worth retrying. */
    ssize_t written = write(g_fd, lb.buf, lb.len);
    (void)written;
}
