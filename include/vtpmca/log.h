/* Structured logging: one line per event, logfmt (key=value) or JSON, to stderr or a file.
 * Thread-safe: each event is written with one write(2). Never log secrets. */
#ifndef VTPMCA_LOG_H
#define VTPMCA_LOG_H

#include "vtpmca/err.h"

typedef enum {
    VTPMCA_LOG_DEBUG = 0,
    VTPMCA_LOG_INFO,
    VTPMCA_LOG_WARN,
    VTPMCA_LOG_ERROR,
} vtpmca_log_level;

typedef enum {
    VTPMCA_LOG_LOGFMT = 0,
    VTPMCA_LOG_JSON,
} vtpmca_log_format;

/* Parses "debug", "info", "warn", "error". */
vtpmca_err vtpmca_log_level_parse(const char *text, vtpmca_log_level *out);
/* Parses "logfmt" or "json". */
vtpmca_err vtpmca_log_format_parse(const char *text, vtpmca_log_format *out);

/* Configures the process-wide logger. fd is where lines go (2 for stderr). */
void vtpmca_log_setup(vtpmca_log_level min_level, vtpmca_log_format format, int fd);

/* Logs an event. `fields` is a sequence of key/value string pairs ended by NULL:
 *   vtpmca_log(VTPMCA_LOG_INFO, "http.request", "route", "/healthz", "status", "200", NULL);
 * Values are quoted/escaped as the format needs. */
void vtpmca_log(vtpmca_log_level level, const char *event, ...)
#if defined(__GNUC__)
    __attribute__((sentinel))
#endif
    ;

#endif
