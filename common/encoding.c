#include "vtpmca/encoding.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char hex_digits[] = "0123456789abcdef";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

vtpmca_err vt_hex_encode(const uint8_t *in, size_t len, char *out, size_t out_size)
{
    if ((in == NULL && len > 0) || out == NULL || out_size < 2 * len + 1)
        return VTPMCA_ERR_INVALID_ARG;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
    return VTPMCA_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void trim(const char **in, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)(*in)[0])) {
        (*in)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*in)[*len - 1]))
        (*len)--;
}

vtpmca_err vt_hex_decode_alloc(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
    if (in == NULL || out == NULL || out_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    trim(&in, &in_len);
    if (in_len % 2 != 0)
        return VTPMCA_ERR_PARSE;
    uint8_t *buf = malloc(in_len / 2 + 1);
    if (buf == NULL)
        return VTPMCA_ERR_NOMEM;
    for (size_t i = 0; i < in_len / 2; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return VTPMCA_ERR_PARSE;
        }
        buf[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = buf;
    *out_len = in_len / 2;
    return VTPMCA_OK;
}

vtpmca_err vt_hex_decode_fixed(const char *in, uint8_t *out, size_t out_len)
{
    if (in == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strlen(in) != 2 * out_len)
        return VTPMCA_ERR_PARSE;
    for (size_t i = 0; i < out_len; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return VTPMCA_ERR_PARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return VTPMCA_OK;
}

vtpmca_err vt_b64_encode_alloc(const uint8_t *in, size_t len, vt_b64_variant variant, char **out)
{
    if ((in == NULL && len > 0) || out == NULL || len > (SIZE_MAX / 4) - 4)
        return VTPMCA_ERR_INVALID_ARG;
    const char *alphabet = variant == VT_B64_URL_NOPAD ? b64_url : b64_std;
    int pad = variant == VT_B64_STD;
    char *buf = malloc((len + 2) / 3 * 4 + 1);
    if (buf == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        buf[o++] = alphabet[v >> 18];
        buf[o++] = alphabet[(v >> 12) & 63];
        buf[o++] = alphabet[(v >> 6) & 63];
        buf[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        buf[o++] = alphabet[v >> 18];
        buf[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            buf[o++] = '=';
            buf[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        buf[o++] = alphabet[v >> 18];
        buf[o++] = alphabet[(v >> 12) & 63];
        buf[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            buf[o++] = '=';
    }
    buf[o] = '\0';
    *out = buf;
    return VTPMCA_OK;
}

static int b64_value(char c, const char *alphabet)
{
    const char *p = c != '\0' ? strchr(alphabet, c) : NULL;
    return p != NULL ? (int)(p - alphabet) : -1;
}

vtpmca_err vt_b64_decode_alloc(const char *in, size_t in_len, vt_b64_variant variant, uint8_t **out,
                               size_t *out_len)
{
    if ((in == NULL && in_len > 0) || out == NULL || out_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    const char *alphabet = variant == VT_B64_URL_NOPAD ? b64_url : b64_std;
    size_t pads = 0;
    while (pads < 2 && in_len > pads && in[in_len - 1 - pads] == '=')
        pads++;
    if (variant == VT_B64_STD && in_len % 4 != 0)
        return VTPMCA_ERR_PARSE;
    if (pads > 0 && in_len % 4 != 0)
        return VTPMCA_ERR_PARSE;
    size_t data_len = in_len - pads;
    if (data_len % 4 == 1)
        return VTPMCA_ERR_PARSE;
    if (pads > 0 && (data_len % 4) + pads != 4)
        return VTPMCA_ERR_PARSE;
    uint8_t *buf = malloc(data_len / 4 * 3 + 3);
    if (buf == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < data_len; i++) {
        int v = b64_value(in[i], alphabet);
        if (v < 0) {
            free(buf);
            return VTPMCA_ERR_PARSE;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero: otherwise two encodings would decode alike. */
    if (acc != 0) {
        free(buf);
        return VTPMCA_ERR_PARSE;
    }
    *out = buf;
    *out_len = o;
    return VTPMCA_OK;
}

static int is_text(const uint8_t *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0 || in[i] > 0x7e || (in[i] < 0x20 && !isspace(in[i])))
            return 0;
    }
    return 1;
}

vtpmca_err vt_decode_flexible(const uint8_t *in, size_t in_len, size_t expect_len, uint8_t **out,
                              size_t *out_len)
{
    if (in == NULL || out == NULL || out_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if ((expect_len != 0 && in_len == expect_len) || !is_text(in, in_len)) {
        uint8_t *copy = malloc(in_len ? in_len : 1);
        if (copy == NULL)
            return VTPMCA_ERR_NOMEM;
        memcpy(copy, in, in_len);
        *out = copy;
        *out_len = in_len;
        return VTPMCA_OK;
    }
    /* Text: strip all whitespace (files often wrap base64), then try hex, then base64. */
    char *text = malloc(in_len + 1);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (!isspace(in[i]))
            text[n++] = (char)in[i];
    }
    text[n] = '\0';
    vtpmca_err err = vt_hex_decode_alloc(text, n, out, out_len);
    if (err == VTPMCA_ERR_PARSE) {
        int url = strpbrk(text, "-_") != NULL;
        err = vt_b64_decode_alloc(text, n, url ? VT_B64_URL_NOPAD : VT_B64_STD_NOPAD, out, out_len);
    }
    free(text);
    return err;
}
