/* Hex and base64 codecs used at the edges (CLI input, JSON bodies). */
#ifndef VTPMCA_ENCODING_H
#define VTPMCA_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

/* Writes 2*len lower-case hex digits and a NUL to out (out_size >= 2*len+1). */
vtpmca_err vt_hex_encode(const uint8_t *in, size_t len, char *out, size_t out_size);

/* Decodes hex (either case, no separators; surrounding ASCII whitespace ignored) into a
 * malloc'd buffer. */
vtpmca_err vt_hex_decode_alloc(const char *in, size_t in_len, uint8_t **out, size_t *out_len);

/* Decodes exactly out_len bytes of hex into a fixed buffer. */
vtpmca_err vt_hex_decode_fixed(const char *in, uint8_t *out, size_t out_len);

typedef enum {
    VT_B64_STD,       /* RFC 4648 section 4, padding required */
    VT_B64_STD_NOPAD, /* section 4, padding optional on input, omitted on output */
    VT_B64_URL_NOPAD, /* section 5, padding optional on input, omitted on output */
} vt_b64_variant;

/* Encodes into a malloc'd NUL-terminated string. */
vtpmca_err vt_b64_encode_alloc(const uint8_t *in, size_t len, vt_b64_variant variant, char **out);

/* Strictly decodes base64 of the given variant into a malloc'd buffer. Rejects characters
 * of the other alphabet, bad padding and non-zero trailing bits. */
vtpmca_err vt_b64_decode_alloc(const char *in, size_t in_len, vt_b64_variant variant, uint8_t **out,
                               size_t *out_len);

/* Decodes data that may be raw binary, hex, or base64 (standard or url-safe), as the CLI
 * accepts for reports and certificates. `expect_len`, when non-zero, is the decoded length
 * that makes a text interpretation plausible (e.g. 1184 for an SNP report); raw input of
 * exactly that length is taken as binary. */
vtpmca_err vt_decode_flexible(const uint8_t *in, size_t in_len, size_t expect_len, uint8_t **out,
                              size_t *out_len);

#endif
