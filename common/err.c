#include "vtpmca/err.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *vtpmca_err_name(vtpmca_err err)
{
    switch (err) {
    case VTPMCA_OK:
        return "ok";
    case VTPMCA_ERR_INVALID_ARG:
        return "invalid_argument";
    case VTPMCA_ERR_NOMEM:
        return "out_of_memory";
    case VTPMCA_ERR_IO:
        return "io";
    case VTPMCA_ERR_PARSE:
        return "parse";
    case VTPMCA_ERR_UNSUPPORTED:
        return "unsupported";
    case VTPMCA_ERR_CRYPTO:
        return "crypto";
    case VTPMCA_ERR_NOT_FOUND:
        return "not_found";
    case VTPMCA_ERR_POLICY:
        return "policy";
    case VTPMCA_ERR_CONFLICT:
        return "conflict";
    case VTPMCA_ERR_STORE:
        return "store";
    case VTPMCA_ERR_NETWORK:
        return "network";
    case VTPMCA_ERR_LIMIT:
        return "limit";
    case VTPMCA_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

vtpmca_err vtpmca_fail(vtpmca_diag *diag, vtpmca_err err, const char *fmt, ...)
{
    if (diag != NULL && fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}

void vtpmca_diag_clear(vtpmca_diag *diag)
{
    if (diag != NULL)
        diag->msg[0] = '\0';
}

void vtpmca_diag_append_openssl(vtpmca_diag *diag)
{
    unsigned long code = ERR_peek_last_error();
    if (diag == NULL) {
        ERR_clear_error();
        return;
    }
    if (code != 0) {
        char buf[160];
        size_t used = strlen(diag->msg);
        ERR_error_string_n(code, buf, sizeof(buf));
        if (used < sizeof(diag->msg) - 1)
            snprintf(diag->msg + used, sizeof(diag->msg) - used, " (openssl: %s)", buf);
    }
    ERR_clear_error();
}
