/* Private to ca/: reading DER (X.690) strictly. OpenSSL's ASN1_get_object does the framing;
 * these helpers add the DER rules it does not enforce. Used by the C509 transcoders
 * (c509*.c) and by the strict-DER check of everything the CA signs. The DER
 * writers, which grow a c509_buf, are in c509_internal.h; der.c also implements
 * ca_check_cert_der / ca_check_crl_der (vtpmca/ca_keys.h) with these readers. */
#ifndef VTPMCA_CA_DER_H
#define VTPMCA_CA_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

/* Identifier octets of the universal types the CA reads and writes. */
enum {
    DER_BOOLEAN = 0x01,
    DER_INTEGER = 0x02,
    DER_BIT_STRING = 0x03,
    DER_OCTET_STRING = 0x04,
    DER_NULL = 0x05,
    DER_OID = 0x06,
    DER_ENUMERATED = 0x0a,
    DER_UTF8 = 0x0c,
    DER_PRINTABLE = 0x13,
    DER_IA5 = 0x16,
    DER_UTCTIME = 0x17,
    DER_GENTIME = 0x18,
    DER_SEQ = 0x30,
    DER_SET = 0x31,
};
#define DER_CTX(n) (0x80 | (n))      /* [n] IMPLICIT, primitive */
#define DER_CTX_CONS(n) (0xa0 | (n)) /* [n], constructed */

typedef struct {
    const uint8_t *p;
    size_t len;
} der_cur;

typedef struct {
    int tag; /* identifier octet; -1 for multi-octet tags (tlv[0] still has class and form) */
    const uint8_t *tlv;
    size_t tlv_len;
    const uint8_t *val;
    size_t len;
} der_tlv;

static inline der_cur der_cursor(const uint8_t *p, size_t len)
{
    der_cur c = {p, len};
    return c;
}
static inline der_cur der_inside(const der_tlv *t)
{
    return der_cursor(t->val, t->len);
}
static inline bool der_done(const der_cur *c)
{
    return c->len == 0;
}

/* Reads the next TLV: definite length, minimal header (strict DER). */
bool der_next(der_cur *c, der_tlv *out);
/* Reads the next TLV and checks its identifier octet. */
bool der_get(der_cur *c, int tag, der_tlv *out);
/* True when the next TLV has this identifier octet. */
bool der_peek(const der_cur *c, int tag);
/* Exactly one TLV spans p[0..len). */
bool der_is_single_tlv(const uint8_t *p, size_t len);
/* The only TLV of der[0..len) has this identifier octet (out receives it). */
bool der_single(const uint8_t *der, size_t len, int tag, der_tlv *out);
/* A DER INTEGER's content that is minimal and >= 0; mag / mag_len is the magnitude
 * without the sign octet (empty for zero). */
bool der_unsigned(const der_tlv *t, const uint8_t **mag, size_t *mag_len);
/* A minimal non-negative INTEGER that fits 64 bits. */
bool der_u64(const der_tlv *t, uint64_t *v);
/* A named-bit BIT STRING in DER form (no trailing zero bits) of at most 64 bits: bit n of
 * the ASN.1 value becomes 2^n. */
bool der_named_bits(const der_tlv *t, uint64_t *bits);

#endif
