/* Private to ca/c509*.c: buffers, the CBOR (libcbor) and DER (OpenSSL framing) writers and
 * readers, the C509 registries, and the entry points each direction exposes to the others.
 *   c509.c             public API, signatures
 *   c509_util.c        buffers, CBOR writing and strict loading, DER writing, OID, text,
 *                      time (the strict DER readers are in der.h / der.c)
 *   c509_registry.c    the draft's registries
 *   c509_encode.c      DER -> C509, certificate level (type 3 re-encoding; type 2 from the
 *                      X.509-equivalent DER of a c509_tbs)
 *   c509_encode_ext.c  DER -> C509 for extensions
 *   c509_native.c      c509_tbs -> X.509-equivalent DER (type 2 issuance)
 *   c509_decode.c      C509 -> DER (type 3 rebuild; type 2 X.509-equivalent for display) */
#ifndef VTPMCA_C509_INTERNAL_H
#define VTPMCA_C509_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cbor.h>

#include "der.h"
#include "vtpmca/c509.h"

/* Deepest CBOR nesting a certificate needs is 6 (IPAddrBlocks ranges); allow some slack. */
#define C509_MAX_DEPTH 12
/* CBOR tag of a MAC address (RFC 9542 section 2.4), used for EUI-64 attribute values. */
#define C509_TAG_MAC_ADDRESS 48
/* Most CBOR items accepted in one certificate (bounds work on hostile input). */
#define C509_MAX_ITEMS 20000
/* Longest serial number accepted (RFC 5280 allows 20 octets; real CAs stay below 64). */
#define C509_MAX_SERIAL 64

/* ---- growable buffer; an allocation failure sticks and is reported once at the end ---- */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool oom;
} c509_buf;

void c509_buf_free(c509_buf *b);
void c509_buf_put(c509_buf *b, const void *p, size_t n);
/* Makes room for n more bytes; false (and oom set) on failure. */
bool c509_buf_reserve(c509_buf *b, size_t n);
/* VTPMCA_ERR_NOMEM if an allocation failed while writing b. */
vtpmca_err c509_buf_status(const c509_buf *b, vtpmca_diag *diag);

/* ---- CBOR writers (libcbor's encoders, deterministic heads) ---- */
void cb_uint(c509_buf *b, uint64_t v);
void cb_negint(c509_buf *b, uint64_t n); /* the integer -1 - n */
void cb_int(c509_buf *b, int64_t v);
void cb_bytes(c509_buf *b, const uint8_t *p, size_t n);
void cb_text(c509_buf *b, const char *p, size_t n);
void cb_array(c509_buf *b, size_t count);
void cb_tag(c509_buf *b, uint64_t tag);
void cb_null(c509_buf *b);
/* Encoded size of a byte string of n bytes (head + content). */
size_t cb_bytes_size(size_t n);
/* Appends an array of `count` items already written to items. */
void cb_put_array(c509_buf *out, size_t count, const c509_buf *items);

/* ---- CBOR reading (trees from libcbor's cbor_load) ---- */
/* Loads exactly one item spanning all of in[0..len): definite lengths, canonical heads, no
 * maps, floats, undefined or other simple values, valid UTF-8 text, depth and item bounds. */
vtpmca_err c509_cbor_load(const uint8_t *in, size_t len, cbor_item_t **out, vtpmca_diag *diag);
bool cbi_uint(const cbor_item_t *it, uint64_t *v);
bool cbi_int(const cbor_item_t *it, int64_t *v); /* uint or negint fitting int64 */
bool cbi_bytes(const cbor_item_t *it, const uint8_t **p, size_t *n);
bool cbi_text(const cbor_item_t *it, const char **p, size_t *n);
bool cbi_array(const cbor_item_t *it, cbor_item_t ***items, size_t *n);
bool cbi_null(const cbor_item_t *it);

/* ---- DER writers (the readers are in der.h) ---- */
void der_put(c509_buf *b, int tag, const uint8_t *content, size_t len);
/* Nested writing: mark = der_open(b); ...content...; der_close(b, mark, tag). */
size_t der_open(const c509_buf *b);
void der_close(c509_buf *b, size_t mark, int tag);
/* INTEGER (or an IMPLICIT tag) from an unsigned big-endian magnitude (leading zeros ok). */
void der_put_unsigned(c509_buf *b, int tag, const uint8_t *mag, size_t len);
void der_put_u64(c509_buf *b, int tag, uint64_t v);
void der_put_named_bits(c509_buf *b, int tag, uint64_t bits);
/* Checks that OID content octets are a valid encoding (OpenSSL's decoder). */
bool c509_oid_valid(const uint8_t *p, size_t n);
/* Dotted text -> content octets (appended to out). */
vtpmca_err c509_oid_from_text(const char *text, c509_buf *out, vtpmca_diag *diag);
/* Content octets -> dotted text (out of out_size, NUL-terminated). */
void c509_oid_to_text(const uint8_t *p, size_t n, char *out, size_t out_size);

/* ---- text ---- */
bool c509_utf8_valid(const uint8_t *p, size_t n);
bool c509_printable_valid(const uint8_t *p, size_t n);
bool c509_ascii_valid(const uint8_t *p, size_t n);

/* ---- time ---- */
/* Largest time C509 carries: 9999-12-31T23:59:59Z. */
#define C509_MAX_TIME C509_NO_EXPIRY
/* Parses a strict-DER UTCTime / GeneralizedTime (seconds, 'Z'). RFC 5280's choice of type
 * by year and times before 1970 are checked by the caller. */
bool c509_der_time(const der_tlv *t, uint64_t *epoch, int *year);
/* Writes the RFC 5280 encoding: UTCTime through 2049, GeneralizedTime from 2050. */
void c509_put_time(c509_buf *b, uint64_t epoch);

/* ---- registries ---- */
typedef struct {
    int code;
    const uint8_t *oid; /* content octets */
    size_t oid_len;
    const char *name;
} c509_oid_entry;

typedef struct {
    c509_oid_entry e;
    bool ia5_only; /* values are always IA5String (emailAddress, domainComponent) */
} c509_attr_entry;

typedef enum {
    C509_SIGK_OTHER = 0, /* no verification support */
    C509_SIGK_ECDSA,
    C509_SIGK_RSA_PKCS1,
    C509_SIGK_RSA_PSS,
    C509_SIGK_EDDSA,
} c509_sig_kind;

typedef struct {
    int code;
    const uint8_t *der; /* the whole AlgorithmIdentifier */
    size_t der_len;
    const char *name;
    c509_sig_kind kind;
    const char *md; /* digest name for OpenSSL, NULL for EdDSA */
} c509_sig_entry;

typedef enum {
    C509_PKK_RAW = 0, /* key bytes kept as they are */
    C509_PKK_RSA,
    C509_PKK_EC,
} c509_pk_kind;

typedef struct {
    int code;
    const uint8_t *der; /* the whole AlgorithmIdentifier */
    size_t der_len;
    const char *name;
    c509_pk_kind kind;
    int curve_nid;     /* EC: OpenSSL NID, NID_undef when OpenSSL lacks the curve */
    size_t field_size; /* EC: coordinate size */
    size_t order_size; /* EC: size of the group order (ECDSA r and s) */
} c509_pk_entry;

/* Extension codes used by the transcoders. */
enum {
    C509_EXT_CODE_SKI = 1,
    C509_EXT_CODE_KU = 2,
    C509_EXT_CODE_SAN = 3,
    C509_EXT_CODE_BC = 4,
    C509_EXT_CODE_CRLDP = 5,
    C509_EXT_CODE_CP = 6,
    C509_EXT_CODE_AKI = 7,
    C509_EXT_CODE_EKU = 8,
    C509_EXT_CODE_AIA = 9,
    C509_EXT_CODE_SDA = 24,
    C509_EXT_CODE_IAN = 25,
    C509_EXT_CODE_NC = 26,
    C509_EXT_CODE_PM = 27,
    C509_EXT_CODE_PC = 28,
    C509_EXT_CODE_FRESHEST_CRL = 29,
    C509_EXT_CODE_INHIBIT_ANY = 30,
    C509_EXT_CODE_SIA = 31,
    C509_EXT_CODE_IP_ADDR = 32,
    C509_EXT_CODE_AS_IDS = 33,
    C509_EXT_CODE_IP_ADDR_V2 = 34,
    C509_EXT_CODE_AS_IDS_V2 = 35,
    C509_EXT_CODE_OCSP_NOCHECK = 36,
    C509_EXT_CODE_PRECERT_SIGNING = 37,
    C509_EXT_CODE_TLS_FEATURE = 38,
};

/* General name codes. */
enum {
    C509_GN_CODE_MAC_ADDRESS = -3,
    C509_GN_CODE_SMTP_UTF8 = -2,
    C509_GN_CODE_HW_MODULE = -1,
    C509_GN_CODE_OTHER_NAME = 0,
    C509_GN_CODE_RFC822 = 1,
    C509_GN_CODE_DNS = 2,
    C509_GN_CODE_DIRECTORY = 4,
    C509_GN_CODE_URI = 6,
    C509_GN_CODE_IP = 7,
    C509_GN_CODE_REGISTERED_ID = 8,
};

#define C509_CERT_POLICY_QUALIFIER_CPS 1
#define C509_CERT_POLICY_QUALIFIER_UNOTICE 2

typedef enum {
    C509_REG_ATTR = 0,   /* RDN attributes */
    C509_REG_EXT,        /* extensions */
    C509_REG_EKU,        /* extended key usages */
    C509_REG_CP,         /* certificate policies */
    C509_REG_PQ,         /* policy qualifiers */
    C509_REG_IA,         /* information access methods */
    C509_REG_OTHER_NAME, /* otherName type-ids with their own general name code */
} c509_registry;

const c509_oid_entry *c509_reg_by_code(c509_registry reg, int64_t code);
const c509_oid_entry *c509_reg_by_oid(c509_registry reg, const uint8_t *oid, size_t len);
const c509_attr_entry *c509_attr_by_code(int64_t code);
const c509_attr_entry *c509_attr_by_oid(const uint8_t *oid, size_t len);
const c509_sig_entry *c509_sig_by_code(int64_t code);
const c509_sig_entry *c509_sig_by_der(const uint8_t *der, size_t len);
const c509_pk_entry *c509_pk_by_code(int64_t code);
const c509_pk_entry *c509_pk_by_der(const uint8_t *der, size_t len);

/* ---- shared state of one encoding / decoding ---- */
typedef struct {
    int type; /* C509_TYPE_NATIVE or C509_TYPE_X509 */
    vtpmca_diag *diag;
    size_t ecdsa_half; /* size of r and s in a raw ECDSA signature; 0 = derive */
} c509_ctx;

/* An X.509 TBSCertificate cut into the pieces C509 encodes (slices of caller memory). */
typedef struct {
    const uint8_t *serial; /* magnitude, no leading zeros */
    size_t serial_len;
    der_tlv sig_alg; /* AlgorithmIdentifier */
    der_tlv issuer;  /* Name */
    uint64_t not_before;
    uint64_t not_after;
    der_tlv subject;
    der_tlv spki;
    bool has_exts;
    der_tlv exts; /* SEQUENCE OF Extension */
} c509_parts;

/* c509_encode.c */
/* Cuts a strict-DER certificate into parts (type 3 checks); *sig_bits is the signature's
 * BIT STRING content after the unused-bits octet. */
vtpmca_err c509_parse_x509(c509_ctx *ctx, const uint8_t *der, size_t len, c509_parts *parts,
                           const uint8_t **sig_bits, size_t *sig_len);
/* Writes the 10 TBS items. */
vtpmca_err c509_encode_tbs(c509_ctx *ctx, const c509_parts *parts, c509_buf *out);
/* Writes issuerSignatureValue from the X.509 signature bits (ECDSA: DER -> raw r||s, each
 * padded to ctx->ecdsa_half, or when 0 to the subject curve's order size for self-issued
 * certificates, else to the smallest NIST size that holds both). */
vtpmca_err c509_encode_signature(c509_ctx *ctx, const c509_parts *parts, const uint8_t *sig,
                                 size_t len, c509_buf *out);
/* ECDSA-Sig-Value DER -> r||s, each left-padded to half bytes (0: derived as above). */
vtpmca_err c509_ecdsa_der_to_raw(const uint8_t *der, size_t len, size_t half, c509_buf *out,
                                 vtpmca_diag *diag);
/* Name (DER) -> [ * (type, value) ] or the lone utf8String commonName's SpecialText. */
vtpmca_err c509_enc_name(c509_ctx *ctx, const der_tlv *name, c509_buf *out);
/* Attribute characters -> SpecialText (hex -> bytes, EUI-64 -> tag 48, else text). */
void c509_enc_special_text(c509_buf *out, const uint8_t *s, size_t n);
/* How a value can use its attribute's code: +1, -1 (printableString, type 3) or 0 (as
 * (~oid, DER value)). a may be NULL (attribute without a code: 0). */
int c509_attr_text_sign(const c509_ctx *ctx, const c509_attr_entry *a, const der_tlv *v);

/* c509_encode_ext.c: the extensions item (array of pairs, or the lone keyUsage int). */
vtpmca_err c509_encode_extensions(c509_ctx *ctx, const c509_parts *parts, c509_buf *out);

/* c509_native.c: the X.509-equivalent DER pieces of a c509_tbs (for type 2 encoding);
 * owned keeps the memory the parts point into. */
vtpmca_err c509_parts_from_tbs(c509_ctx *ctx, const c509_tbs *tbs, c509_parts *parts,
                               c509_buf *owned);

/* c509_decode.c */
typedef struct {
    int type;
    cbor_item_t *root;
    c509_buf serial;           /* magnitude */
    const c509_sig_entry *sig; /* NULL: algorithm not in the registry */
    c509_buf sig_alg;          /* AlgorithmIdentifier DER */
    c509_buf issuer;           /* Name DER */
    c509_buf subject;
    uint64_t not_before;
    uint64_t not_after;
    const c509_pk_entry *pk; /* NULL: algorithm not in the registry */
    c509_buf spki;
    size_t ext_count;
    c509_buf exts;            /* SEQUENCE OF Extension (empty buffer when there are none) */
    const uint8_t *sig_value; /* issuerSignatureValue as in the C509 (borrowed from root) */
    size_t sig_value_len;
    size_t tbs_offset; /* the 10 TBS items inside the input */
    size_t tbs_len;
} c509_decoded;

/* Strictly decodes a C509Certificate and rebuilds the DER of each field (out is released
 * on failure; c509_decoded_free is safe on it either way). */
vtpmca_err c509_decode(const uint8_t *cbor, size_t len, c509_decoded *out, vtpmca_diag *diag);
void c509_decoded_free(c509_decoded *d);
/* The DER TBSCertificate of a decoded certificate. */
vtpmca_err c509_build_tbs_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag);
/* The X.509 signatureValue bits (ECDSA raw r||s -> DER). */
vtpmca_err c509_signature_to_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag);
/* extnValue DER of a value encoded with a registered extension code (the encoder's check). */
vtpmca_err c509_ext_value_to_der(c509_ctx *ctx, int64_t code, const cbor_item_t *value,
                                 c509_buf *out);

#endif
