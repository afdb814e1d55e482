/* Error codes and diagnostics shared by every vtpmca module. */
#ifndef VTPMCA_ERR_H
#define VTPMCA_ERR_H

#include <stddef.h>

typedef enum {
    VTPMCA_OK = 0,
    VTPMCA_ERR_INVALID_ARG, /* the caller broke the function's contract (NULL, bad size) */
    VTPMCA_ERR_NOMEM,       /* an allocation failed */
    VTPMCA_ERR_IO,          /* a file or socket operation failed */
    VTPMCA_ERR_PARSE,       /* input is malformed */
    VTPMCA_ERR_UNSUPPORTED, /* input is well formed but uses something we do not support */
    VTPMCA_ERR_CRYPTO,      /* a signature, chain or key check failed */
    VTPMCA_ERR_NOT_FOUND,   /* the looked-up object does not exist */
    VTPMCA_ERR_POLICY,      /* evidence is genuine but the policy rejects it */
    VTPMCA_ERR_CONFLICT,    /* the object exists already or changed concurrently */
    VTPMCA_ERR_STORE,       /* the database failed */
    VTPMCA_ERR_NETWORK,     /* a remote service failed or timed out */
    VTPMCA_ERR_LIMIT,       /* a size, rate or count limit was hit */
    VTPMCA_ERR_INTERNAL,    /* a bug or an unexpected library failure */
} vtpmca_err;

/* Stable lower-case name of an error code, e.g. "parse"; used in JSON errors. */
const char *vtpmca_err_name(vtpmca_err err);

/* A human-readable explanation of the most recent failure. Every function that
 * takes a vtpmca_diag * accepts NULL. Messages never contain secrets. */
typedef struct {
    char msg[256];
} vtpmca_diag;

#if defined(__GNUC__)
#define VTPMCA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VTPMCA_PRINTF(a, b)
#endif

/* Formats a message into diag (if non-NULL) and returns err, so callers can write
 * `return vtpmca_fail(d, VTPMCA_ERR_PARSE, "bad version %u", v);`. */
vtpmca_err vtpmca_fail(vtpmca_diag *diag, vtpmca_err err, const char *fmt, ...) VTPMCA_PRINTF(3, 4);

/* Clears a diagnostic (no-op on NULL). */
void vtpmca_diag_clear(vtpmca_diag *diag);

/* Appends the most recent OpenSSL error text to the diag message (for library failures). */
void vtpmca_diag_append_openssl(vtpmca_diag *diag);

#endif
