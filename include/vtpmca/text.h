/* printf into a heap string of exactly the right size, for answers built from parts that
 * need no escaping (the KBS answers, the JWE, the binding header). */
#ifndef VTPMCA_TEXT_H
#define VTPMCA_TEXT_H

#include <stdarg.h>
#include <stddef.h>

#include "vtpmca/err.h"

/* *out (malloc'd, NUL-terminated) receives the formatted text and *out_len its length.
 * VTPMCA_ERR_INVALID_ARG for missing arguments or a format that fails, VTPMCA_ERR_NOMEM
 * without memory; *out is NULL then. */
vtpmca_err vt_text_printf(char **out, size_t *out_len, const char *fmt, ...) VTPMCA_PRINTF(3, 4);
vtpmca_err vt_text_vprintf(char **out, size_t *out_len, const char *fmt, va_list ap)
    VTPMCA_PRINTF(3, 0);

#endif
