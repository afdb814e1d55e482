/* See include/vtpmca/text.h. Two passes of vsnprintf: one to measure, one to write. */
#include "vtpmca/text.h"

#include <stdio.h>
#include <stdlib.h>

vtpmca_err vt_text_vprintf(char **out, size_t *out_len, const char *fmt, va_list ap)
{
    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL || out_len == NULL || fmt == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    va_list measure;
    va_copy(measure, ap);
    int len = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    if (len < 0)
        return VTPMCA_ERR_INVALID_ARG;
    char *text = malloc((size_t)len + 1);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    vsnprintf(text, (size_t)len + 1, fmt, ap);
    *out = text;
    *out_len = (size_t)len;
    return VTPMCA_OK;
}

vtpmca_err vt_text_printf(char **out, size_t *out_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vtpmca_err err = vt_text_vprintf(out, out_len, fmt, ap);
    va_end(ap);
    return err;
}
