/* TEST-ONLY helpers for libcurl callbacks in end-to-end tests: collecting a response body and
 * picking named header values out of the header lines. */
#ifndef VTPMCA_TESTS_HTTP_CAPTURE_H
#define VTPMCA_TESTS_HTTP_CAPTURE_H

#include <stddef.h>

/* Appends n bytes of data to the growing buffer *buf of *len bytes, keeping it
 * NUL-terminated. Returns n, or 0 when out of memory (which makes libcurl abort the
 * transfer), so a write callback can return it directly. */
size_t http_capture_append(char **buf, size_t *len, const char *data, size_t n);

/* When the header line `line` (len bytes, as libcurl passes it) is "<name>: value" (name
 * case-insensitive), copies the value without leading spaces and trailing CR/LF into out
 * (truncated to size); otherwise leaves out as it is. */
void http_capture_header(const char *line, size_t len, const char *name, char *out, size_t size);

#endif
