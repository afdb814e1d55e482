/* The libcurl transport shared by the tool-side protocol clients (KBS, CA issuance, rollback
 * ledger): one easy handle bound to a base URL, one request at a time. */
#ifndef VTPMCA_HTTP_CLIENT_H
#define VTPMCA_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "vtpmca/err.h"

/* Room a base URL must leave in url_max for the request paths. */
#define VT_HTTP_PATH_ROOM 64

typedef struct {
    CURL *curl;
    char *base_url; /* without trailing '/' */
    size_t url_max;
    long timeout_ms;
    long connect_timeout_ms;
} vt_http;

/* Checks base_url (http:// or https://, trailing '/' dropped, short enough to leave
 * VT_HTTP_PATH_ROOM in url_max) and sets up the handle. timeout_ms 0 means
 * default_timeout_ms. who prefixes diag messages. On failure *http owns nothing. */
vtpmca_err vt_http_init(vt_http *http, const char *base_url, size_t url_max, long timeout_ms,
                        long default_timeout_ms, long connect_timeout_ms, const char *who,
                        vtpmca_diag *diag);
void vt_http_cleanup(vt_http *http);

typedef struct {
    const char *path;           /* appended to the base URL */
    const char *label;          /* names the request in diag messages */
    const char *const *headers; /* NULL-terminated header lines, or NULL */
    bool get;                   /* GET instead of POST */
    const void *body;           /* POST body (NULL: empty) */
    size_t body_len;
    size_t reply_max;       /* larger answers abort the transfer ... */
    vtpmca_err too_big_err; /* ... and fail with this code */
} vt_http_request;

/* Performs one request. On success *status is the HTTP status and *reply (NUL-terminated,
 * the caller's to free; NULL for an empty body) holds reply_len bytes. On failure *status is
 * 0 and *reply NULL: VTPMCA_ERR_NETWORK for transport errors. */
vtpmca_err vt_http_perform(vt_http *http, const vt_http_request *request, long *status,
                           uint8_t **reply, size_t *reply_len, vtpmca_diag *diag);

/* The last answer's Content-Type starts with type (valid after a successful perform). */
bool vt_http_content_type_is(vt_http *http, const char *type);

/* The "error" and "message" members of a JSON refusal body (NULL or non-JSON: ""), printable
 * ASCII only since server text ends up on terminals and in logs. */
void vt_http_error_members(const uint8_t *body, size_t len, char *error, size_t error_size,
                           char *message, size_t message_size);

#endif
