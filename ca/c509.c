/* C509 certificates: shared infrastructure (buffers, strict CBOR loading with libcbor, DER
 * framing with OpenSSL, text and time helpers), the C509 registries of
 * draft-ietf-cose-cbor-encoded-cert, and the public API of include/vtpmca/c509.h. */
#include "c509_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/encoding.h"

/* ------------------------------------------------------------------------------------ */
/* Buffers */

void c509_buf_free(c509_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    memset(b, 0, sizeof(*b));
}

bool c509_buf_reserve(c509_buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len >= n)
        return true;
    size_t cap = b->cap != 0 ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) {
        b->oom = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void c509_buf_put(c509_buf *b, const void *p, size_t n)
{
    if (n == 0 || !c509_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

vtpmca_err c509_buf_status(const c509_buf *b, vtpmca_diag *diag)
{
    if (b->oom)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory while encoding");
    return VTPMCA_OK;
}

/* ------------------------------------------------------------------------------------ */
/* CBOR writers: libcbor's encoders always pick the shortest head (RFC 8949 4.2.1). */

static void cb_put_head(c509_buf *b, const unsigned char *head, size_t n)
{
    if (n == 0) { /* cannot happen with a 9-byte buffer; never emit a truncated item */
        b->oom = true;
        return;
    }
    c509_buf_put(b, head, n);
}

void cb_uint(c509_buf *b, uint64_t v)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_uint(v, h, sizeof(h)));
}

void cb_negint(c509_buf *b, uint64_t n)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_negint(n, h, sizeof(h)));
}

void cb_int(c509_buf *b, int64_t v)
{
    if (v >= 0)
        cb_uint(b, (uint64_t)v);
    else
        cb_negint(b, (uint64_t)(-(v + 1)));
}

void cb_bytes(c509_buf *b, const uint8_t *p, size_t n)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_bytestring_start(n, h, sizeof(h)));
    c509_buf_put(b, p, n);
}

void cb_text(c509_buf *b, const char *p, size_t n)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_string_start(n, h, sizeof(h)));
    c509_buf_put(b, p, n);
}

void cb_array(c509_buf *b, size_t count)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_array_start(count, h, sizeof(h)));
}

void cb_tag(c509_buf *b, uint64_t tag)
{
    unsigned char h[9];
    cb_put_head(b, h, cbor_encode_tag(tag, h, sizeof(h)));
}

void cb_null(c509_buf *b)
{
    unsigned char h[1];
    cb_put_head(b, h, cbor_encode_null(h, sizeof(h)));
}

size_t cb_bytes_size(size_t n)
{
    unsigned char h[9];
    return cbor_encode_bytestring_start(n, h, sizeof(h)) + n;
}

/* ------------------------------------------------------------------------------------ */
/* Strict CBOR loading. A first pass with libcbor's streaming decoder checks every head
 * (shortest form, definite length, allowed major type) and the nesting; only then does
 * cbor_load build the tree, so its recursion is bounded by C509_MAX_DEPTH. */

typedef enum {
    SCAN_INT,
    SCAN_STRING,
    SCAN_ARRAY,
    SCAN_TAG,
    SCAN_SIMPLE,
} scan_kind;

typedef struct {
    scan_kind kind;
    uint64_t value; /* integer, string length, array size or tag */
    const char *error;
} cbor_scan;

static void scan_fail(cbor_scan *s, const char *why)
{
    if (s->error == NULL)
        s->error = why;
}

static void scan_int(cbor_scan *s, uint64_t v)
{
    s->kind = SCAN_INT;
    s->value = v;
}

static void scan_u8(void *c, uint8_t v)
{
    scan_int(c, v);
}
static void scan_u16(void *c, uint16_t v)
{
    scan_int(c, v);
}
static void scan_u32(void *c, uint32_t v)
{
    scan_int(c, v);
}
static void scan_u64(void *c, uint64_t v)
{
    scan_int(c, v);
}

static void scan_bytes(void *c, cbor_data data, size_t len)
{
    cbor_scan *s = c;
    s->kind = SCAN_STRING;
    s->value = len;
}

static void scan_text(void *c, cbor_data data, size_t len)
{
    cbor_scan *s = c;
    s->kind = SCAN_STRING;
    s->value = len;
    if (!c509_utf8_valid(data, len))
        scan_fail(s, "text string is not valid UTF-8");
}

static void scan_array(void *c, size_t n)
{
    cbor_scan *s = c;
    s->kind = SCAN_ARRAY;
    s->value = n;
}

static void scan_tag(void *c, uint64_t v)
{
    cbor_scan *s = c;
    s->kind = SCAN_TAG;
    s->value = v;
}

static void scan_null(void *c)
{
    cbor_scan *s = c;
    s->kind = SCAN_SIMPLE;
}

static void scan_bool(void *c, bool v)
{
    cbor_scan *s = c;
    s->kind = SCAN_SIMPLE;
}

static void scan_indefinite(void *c)
{
    scan_fail(c, "indefinite-length item");
}

static void scan_map(void *c, size_t n)
{
    scan_fail(c, "map (C509 has none)");
}

static void scan_float(void *c, float v)
{
    scan_fail(c, "floating-point value");
}

static void scan_double(void *c, double v)
{
    scan_fail(c, "floating-point value");
}

static void scan_undefined(void *c)
{
    scan_fail(c, "undefined value");
}

static const struct cbor_callbacks scan_callbacks = {
    .uint8 = scan_u8,
    .uint16 = scan_u16,
    .uint32 = scan_u32,
    .uint64 = scan_u64,
    .negint8 = scan_u8,
    .negint16 = scan_u16,
    .negint32 = scan_u32,
    .negint64 = scan_u64,
    .byte_string_start = scan_indefinite,
    .byte_string = scan_bytes,
    .string = scan_text,
    .string_start = scan_indefinite,
    .indef_array_start = scan_indefinite,
    .array_start = scan_array,
    .indef_map_start = scan_indefinite,
    .map_start = scan_map,
    .tag = scan_tag,
    .float2 = scan_float,
    .float4 = scan_float,
    .float8 = scan_double,
    .undefined = scan_undefined,
    .null = scan_null,
    .boolean = scan_bool,
    .indef_break = scan_indefinite,
};

/* Size of the shortest head carrying argument v. */
static size_t cbor_head_size(uint64_t v)
{
    if (v < 24)
        return 1;
    if (v <= 0xff)
        return 2;
    if (v <= 0xffff)
        return 3;
    if (v <= 0xffffffffu)
        return 5;
    return 9;
}

static vtpmca_err cbor_scan_all(const uint8_t *in, size_t len, vtpmca_diag *diag)
{
    /* remaining[d]: items still to come in the container open at depth d (0 = top). */
    size_t remaining[C509_MAX_DEPTH + 1];
    int depth = 0;
    remaining[0] = 1;
    size_t off = 0;
    size_t items = 0;
    while (depth >= 0) {
        cbor_scan s = {0};
        struct cbor_decoder_result r = cbor_stream_decode(in + off, len - off, &scan_callbacks, &s);
        if (r.status == CBOR_DECODER_NEDATA || (r.status == CBOR_DECODER_FINISHED && off == len))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "CBOR truncated at byte %zu", off);
        if (r.status != CBOR_DECODER_FINISHED)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed CBOR at byte %zu", off);
        if (s.error != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "CBOR at byte %zu: %s", off, s.error);
        size_t head = r.read;
        if (s.kind == SCAN_STRING)
            head = r.read - (size_t)s.value;
        size_t want = s.kind == SCAN_SIMPLE ? 1 : cbor_head_size(s.value);
        if (head != want)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "CBOR at byte %zu: head is not in its shortest form", off);
        off += r.read;
        if (++items > C509_MAX_ITEMS)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "more than %d CBOR items", C509_MAX_ITEMS);
        remaining[depth]--;
        uint64_t children = 0;
        if (s.kind == SCAN_ARRAY)
            children = s.value;
        else if (s.kind == SCAN_TAG)
            children = 1;
        if (children > 0) {
            /* every item takes at least one byte: a bigger count is a lie */
            if (children > len - off)
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "CBOR truncated at byte %zu", off);
            if (depth + 1 > C509_MAX_DEPTH)
                return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "CBOR nested deeper than %d",
                                   C509_MAX_DEPTH);
            remaining[++depth] = (size_t)children;
        }
        while (depth >= 0 && remaining[depth] == 0)
            depth--;
    }
    if (off != len)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%zu trailing bytes after the certificate",
                           len - off);
    return VTPMCA_OK;
}

vtpmca_err c509_cbor_load(const uint8_t *in, size_t len, cbor_item_t **out, vtpmca_diag *diag)
{
    *out = NULL;
    if (len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty CBOR input");
    vtpmca_err err = cbor_scan_all(in, len, diag);
    if (err != VTPMCA_OK)
        return err;
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(in, len, &res);
    if (item == NULL || res.error.code != CBOR_ERR_NONE || res.read != len) {
        if (item != NULL)
            cbor_decref(&item);
        if (res.error.code == CBOR_ERR_MEMERROR)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory decoding CBOR");
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed CBOR at byte %zu",
                           res.error.position);
    }
    *out = item;
    return VTPMCA_OK;
}

bool cbi_uint(const cbor_item_t *it, uint64_t *v)
{
    if (it == NULL || !cbor_isa_uint(it))
        return false;
    *v = cbor_get_int(it);
    return true;
}

bool cbi_int(const cbor_item_t *it, int64_t *v)
{
    if (it == NULL)
        return false;
    if (cbor_isa_uint(it)) {
        uint64_t u = cbor_get_int(it);
        if (u > INT64_MAX)
            return false;
        *v = (int64_t)u;
        return true;
    }
    if (cbor_isa_negint(it)) {
        uint64_t n = cbor_get_int(it);
        if (n > INT64_MAX)
            return false;
        *v = -1 - (int64_t)n;
        return true;
    }
    return false;
}

bool cbi_bytes(const cbor_item_t *it, const uint8_t **p, size_t *n)
{
    if (it == NULL || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
        return false;
    *p = cbor_bytestring_handle(it);
    *n = cbor_bytestring_length(it);
    return true;
}

bool cbi_text(const cbor_item_t *it, const char **p, size_t *n)
{
    if (it == NULL || !cbor_isa_string(it) || !cbor_string_is_definite(it))
        return false;
    *p = (const char *)cbor_string_handle(it);
    *n = cbor_string_length(it);
    return true;
}

bool cbi_array(const cbor_item_t *it, cbor_item_t ***items, size_t *n)
{
    if (it == NULL || !cbor_isa_array(it) || !cbor_array_is_definite(it))
        return false;
    *items = cbor_array_handle(it);
    *n = cbor_array_size(it);
    return true;
}

bool cbi_null(const cbor_item_t *it)
{
    return it != NULL && cbor_isa_float_ctrl(it) && cbor_is_null(it);
}

/* ------------------------------------------------------------------------------------ */
/* DER: OpenSSL's ASN1_get_object / ASN1_put_object do the framing; we add the strict-DER
 * rule they do not enforce (shortest header). */

bool der_next(der_cur *c, der_tlv *out)
{
    if (c->len == 0 || c->len > LONG_MAX)
        return false;
    const unsigned char *p = c->p;
    long len = 0;
    int tag = 0, xclass = 0;
    int ret = ASN1_get_object(&p, &len, &tag, &xclass, (long)c->len);
    if ((ret & 0x80) != 0 || (ret & 0x01) != 0) { /* error, or indefinite length */
        ERR_clear_error();
        return false;
    }
    size_t header = (size_t)(p - c->p);
    int constructed = ret & V_ASN1_CONSTRUCTED;
    if (len < 0 || (size_t)len > c->len - header || len > INT_MAX)
        return false;
    int minimal = ASN1_object_size(constructed ? 1 : 0, (int)len, tag);
    if (minimal < 0 || (size_t)minimal != header + (size_t)len)
        return false;
    out->tag = tag < 31 ? (xclass | constructed | tag) : -1;
    out->tlv = c->p;
    out->tlv_len = header + (size_t)len;
    out->val = p;
    out->len = (size_t)len;
    c->p += out->tlv_len;
    c->len -= out->tlv_len;
    return true;
}

bool der_get(der_cur *c, int tag, der_tlv *out)
{
    der_cur save = *c;
    if (!der_next(c, out) || out->tag != tag) {
        *c = save;
        return false;
    }
    return true;
}

bool der_peek(const der_cur *c, int tag)
{
    der_cur copy = *c;
    der_tlv t;
    return der_next(&copy, &t) && t.tag == tag;
}

bool der_is_single_tlv(const uint8_t *p, size_t len)
{
    der_cur c = der_cursor(p, len);
    der_tlv t;
    return der_next(&c, &t) && der_done(&c);
}

bool der_unsigned(const der_tlv *t, const uint8_t **mag, size_t *mag_len)
{
    const uint8_t *v = t->val;
    size_t n = t->len;
    if (n == 0 || (v[0] & 0x80) != 0)
        return false;
    if (n > 1 && v[0] == 0 && (v[1] & 0x80) == 0) /* redundant leading zero */
        return false;
    if (v[0] == 0) {
        v++;
        n--;
    }
    *mag = v;
    *mag_len = n;
    return true;
}

bool der_u64(const der_tlv *t, uint64_t *v)
{
    const uint8_t *mag;
    size_t n;
    if (!der_unsigned(t, &mag, &n) || n > 8)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | mag[i];
    *v = x;
    return true;
}

bool der_named_bits(const der_tlv *t, uint64_t *bits)
{
    if (t->len == 0 || t->len > 9)
        return false;
    unsigned unused = t->val[0];
    size_t nbytes = t->len - 1;
    if (nbytes == 0) {
        *bits = 0;
        return unused == 0;
    }
    uint8_t last = t->val[t->len - 1];
    /* DER drops trailing zero bits of a named bit list: the last bit before the unused
     * ones is set, and the unused ones are zero. */
    if (unused > 7 || last == 0 || (last & ((1u << unused) - 1)) != 0 ||
        (last & (1u << unused)) == 0)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < nbytes; i++)
        for (unsigned j = 0; j < 8; j++)
            if (t->val[1 + i] & (0x80u >> j))
                x |= UINT64_C(1) << (8 * i + j);
    *bits = x;
    return true;
}

static size_t der_header(uint8_t hdr[16], int tag, size_t len)
{
    unsigned char *p = hdr;
    ASN1_put_object(&p, (tag & 0x20) ? 1 : 0, (int)len, tag & 0x1f, tag & 0xc0);
    return (size_t)(p - hdr);
}

void der_put(c509_buf *b, int tag, const uint8_t *content, size_t len)
{
    if (len > INT_MAX) {
        b->oom = true;
        return;
    }
    uint8_t hdr[16];
    c509_buf_put(b, hdr, der_header(hdr, tag, len));
    c509_buf_put(b, content, len);
}

size_t der_open(const c509_buf *b)
{
    return b->len;
}

void der_close(c509_buf *b, size_t mark, int tag)
{
    if (b->oom)
        return;
    size_t len = b->len - mark;
    if (len > INT_MAX) {
        b->oom = true;
        return;
    }
    uint8_t hdr[16];
    size_t hlen = der_header(hdr, tag, len);
    if (!c509_buf_reserve(b, hlen))
        return;
    memmove(b->data + mark + hlen, b->data + mark, len);
    memcpy(b->data + mark, hdr, hlen);
    b->len += hlen;
}

void der_put_unsigned(c509_buf *b, int tag, const uint8_t *mag, size_t len)
{
    while (len > 0 && mag[0] == 0) {
        mag++;
        len--;
    }
    size_t mark = der_open(b);
    if (len == 0 || (mag[0] & 0x80) != 0) {
        uint8_t zero = 0;
        c509_buf_put(b, &zero, 1);
    }
    c509_buf_put(b, mag, len);
    der_close(b, mark, tag);
}

void der_put_u64(c509_buf *b, int tag, uint64_t v)
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (56 - 8 * i));
    der_put_unsigned(b, tag, be, sizeof(be));
}

void der_put_named_bits(c509_buf *b, int tag, uint64_t bits)
{
    uint8_t content[9] = {0};
    size_t n = 1;
    if (bits != 0) {
        unsigned top = 63;
        while ((bits & (UINT64_C(1) << top)) == 0)
            top--;
        n = 1 + top / 8 + 1;
        content[0] = (uint8_t)(7 - top % 8);
        for (unsigned i = 0; i <= top; i++)
            if (bits & (UINT64_C(1) << i))
                content[1 + i / 8] |= (uint8_t)(0x80u >> (i % 8));
    }
    der_put(b, tag, content, n);
}

static ASN1_OBJECT *oid_object(const uint8_t *p, size_t n)
{
    if (n == 0 || n > 255)
        return NULL;
    uint8_t tlv[258];
    tlv[0] = DER_OID;
    size_t hl = 2;
    if (n < 128) {
        tlv[1] = (uint8_t)n;
    } else {
        tlv[1] = 0x81;
        tlv[2] = (uint8_t)n;
        hl = 3;
    }
    memcpy(tlv + hl, p, n);
    const unsigned char *q = tlv;
    ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &q, (long)(hl + n));
    if (obj == NULL || q != tlv + hl + n) {
        ASN1_OBJECT_free(obj);
        ERR_clear_error();
        return NULL;
    }
    return obj;
}

bool c509_oid_valid(const uint8_t *p, size_t n)
{
    ASN1_OBJECT *obj = oid_object(p, n);
    ASN1_OBJECT_free(obj);
    return obj != NULL;
}

vtpmca_err c509_oid_from_text(const char *text, c509_buf *out, vtpmca_diag *diag)
{
    if (text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing OID");
    ASN1_OBJECT *obj = OBJ_txt2obj(text, 1);
    if (obj == NULL || OBJ_length(obj) == 0) {
        ASN1_OBJECT_free(obj);
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "\"%.64s\" is not a dotted OID", text);
    }
    c509_buf_put(out, OBJ_get0_data(obj), OBJ_length(obj));
    ASN1_OBJECT_free(obj);
    return c509_buf_status(out, diag);
}

void c509_oid_to_text(const uint8_t *p, size_t n, char *out, size_t out_size)
{
    ASN1_OBJECT *obj = oid_object(p, n);
    if (obj == NULL || OBJ_obj2txt(out, (int)out_size, obj, 1) <= 0)
        snprintf(out, out_size, "?");
    ASN1_OBJECT_free(obj);
}

/* ------------------------------------------------------------------------------------ */
/* Text */

bool c509_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t extra;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += extra + 1;
    }
    return true;
}

bool c509_printable_valid(const uint8_t *p, size_t n)
{
    static const char extra[] = " '()+,-./:=?";
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (c != 0 && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

bool c509_ascii_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x80)
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* Time (proleptic Gregorian calendar, H. Hinnant's days_from_civil / civil_from_days). */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const uint8_t *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

bool c509_der_time(const der_tlv *t, uint64_t *epoch, int *year)
{
    const uint8_t *p = t->val;
    unsigned y, mo, d, h, mi, s;
    size_t ylen;
    if (t->tag == DER_UTCTIME && t->len == 13)
        ylen = 2;
    else if (t->tag == DER_GENTIME && t->len == 15)
        ylen = 4;
    else
        return false;
    if (p[t->len - 1] != 'Z' || !digits(p, ylen, &y) || !digits(p + ylen, 2, &mo) ||
        !digits(p + ylen + 2, 2, &d) || !digits(p + ylen + 4, 2, &h) ||
        !digits(p + ylen + 6, 2, &mi) || !digits(p + ylen + 8, 2, &s))
        return false;
    if (ylen == 2)
        y += y < 50 ? 2000 : 1900;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || s > 59)
        return false;
    *year = (int)y;
    int64_t days = days_from_civil(y, mo, d);
    *epoch = days < 0 ? 0 : (uint64_t)days * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

void c509_put_time(c509_buf *b, uint64_t epoch)
{
    int64_t y;
    unsigned mo, d;
    civil_from_days((int64_t)(epoch / 86400), &y, &mo, &d);
    unsigned secs = (unsigned)(epoch % 86400);
    char text[24];
    int n;
    if (y < 2050)
        n = snprintf(text, sizeof(text), "%02u%02u%02u%02u%02u%02uZ", (unsigned)(y % 100), mo, d,
                     secs / 3600, secs / 60 % 60, secs % 60);
    else
        n = snprintf(text, sizeof(text), "%04u%02u%02u%02u%02u%02uZ", (unsigned)y, mo, d,
                     secs / 3600, secs / 60 % 60, secs % 60);
    der_put(b, y < 2050 ? DER_UTCTIME : DER_GENTIME, (const uint8_t *)text, (size_t)n);
}

/* ------------------------------------------------------------------------------------ */
/* Registries (draft-ietf-cose-cbor-encoded-cert, IANA considerations). OIDs are the DER
 * content octets; algorithm identifiers the whole DER AlgorithmIdentifier. */

#define OIDB(s) (const uint8_t *)(s), sizeof(s) - 1

static const c509_attr_entry attr_registry[] = {
    {{0, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"), "emailAddress"}, true},
    {{1, OIDB("\x55\x04\x03"), "CN"}, false},
    {{2, OIDB("\x55\x04\x04"), "SN"}, false},
    {{3, OIDB("\x55\x04\x05"), "serialNumber"}, false},
    {{4, OIDB("\x55\x04\x06"), "C"}, false},
    {{5, OIDB("\x55\x04\x07"), "L"}, false},
    {{6, OIDB("\x55\x04\x08"), "ST"}, false},
    {{7, OIDB("\x55\x04\x09"), "street"}, false},
    {{8, OIDB("\x55\x04\x0a"), "O"}, false},
    {{9, OIDB("\x55\x04\x0b"), "OU"}, false},
    {{10, OIDB("\x55\x04\x0c"), "title"}, false},
    {{11, OIDB("\x55\x04\x0f"), "businessCategory"}, false},
    {{12, OIDB("\x55\x04\x11"), "postalCode"}, false},
    {{13, OIDB("\x55\x04\x2a"), "GN"}, false},
    {{14, OIDB("\x55\x04\x2b"), "initials"}, false},
    {{15, OIDB("\x55\x04\x2c"), "generationQualifier"}, false},
    {{16, OIDB("\x55\x04\x2e"), "dnQualifier"}, false},
    {{17, OIDB("\x55\x04\x41"), "pseudonym"}, false},
    {{18, OIDB("\x55\x04\x61"), "organizationIdentifier"}, false},
    {{19, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x01"), "jurisdictionL"}, false},
    {{20, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x02"), "jurisdictionST"}, false},
    {{21, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x03"), "jurisdictionC"}, false},
    {{22, OIDB("\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19"), "DC"}, true},
    {{25, OIDB("\x55\x04\x29"), "name"}, false},
    {{26, OIDB("\x55\x04\x14"), "telephoneNumber"}, false},
    {{27, OIDB("\x55\x04\x36"), "dmdName"}, false},
    {{28, OIDB("\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x01"), "UID"}, false},
    {{29, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x02"), "unstructuredName"}, false},
    /* The registry's DER column for 30 reads 06 0A ... 09 08 00, which is not the OID
     * 1.2.840.113549.1.9.8 of its OID column; we use the OID column (docs/c509.md). */
    {{30, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x08"), "unstructuredAddress"}, false},
};

static const c509_oid_entry ext_registry[] = {
    {C509_EXT_CODE_SKI, OIDB("\x55\x1d\x0e"), "subjectKeyIdentifier"},
    {C509_EXT_CODE_KU, OIDB("\x55\x1d\x0f"), "keyUsage"},
    {C509_EXT_CODE_SAN, OIDB("\x55\x1d\x11"), "subjectAltName"},
    {C509_EXT_CODE_BC, OIDB("\x55\x1d\x13"), "basicConstraints"},
    {C509_EXT_CODE_CRLDP, OIDB("\x55\x1d\x1f"), "cRLDistributionPoints"},
    {C509_EXT_CODE_CP, OIDB("\x55\x1d\x20"), "certificatePolicies"},
    {C509_EXT_CODE_AKI, OIDB("\x55\x1d\x23"), "authorityKeyIdentifier"},
    {C509_EXT_CODE_EKU, OIDB("\x55\x1d\x25"), "extKeyUsage"},
    {C509_EXT_CODE_AIA, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x01"), "authorityInfoAccess"},
    {C509_EXT_CODE_SDA, OIDB("\x55\x1d\x09"), "subjectDirectoryAttributes"},
    {C509_EXT_CODE_IAN, OIDB("\x55\x1d\x12"), "issuerAltName"},
    {C509_EXT_CODE_NC, OIDB("\x55\x1d\x1e"), "nameConstraints"},
    {C509_EXT_CODE_PM, OIDB("\x55\x1d\x21"), "policyMappings"},
    {C509_EXT_CODE_PC, OIDB("\x55\x1d\x24"), "policyConstraints"},
    {C509_EXT_CODE_FRESHEST_CRL, OIDB("\x55\x1d\x2e"), "freshestCRL"},
    {C509_EXT_CODE_INHIBIT_ANY, OIDB("\x55\x1d\x36"), "inhibitAnyPolicy"},
    {C509_EXT_CODE_SIA, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x0b"), "subjectInfoAccess"},
    {C509_EXT_CODE_IP_ADDR, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x07"), "id-pe-ipAddrBlocks"},
    {C509_EXT_CODE_AS_IDS, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x08"), "id-pe-autonomousSysIds"},
    {C509_EXT_CODE_IP_ADDR_V2, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x1c"), "id-pe-ipAddrBlocks-v2"},
    {C509_EXT_CODE_AS_IDS_V2, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x1d"),
     "id-pe-autonomousSysIds-v2"},
    {C509_EXT_CODE_OCSP_NOCHECK, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x01\x05"),
     "id-pkix-ocsp-nocheck"},
    {C509_EXT_CODE_PRECERT_SIGNING, OIDB("\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03"),
     "precertificateSigning"},
    {C509_EXT_CODE_TLS_FEATURE, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x18"), "id-pe-tlsfeature"},
};

static const c509_oid_entry eku_registry[] = {
    {0, OIDB("\x55\x1d\x25\x00"), "anyExtendedKeyUsage"},
    {1, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x01"), "serverAuth"},
    {2, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x02"), "clientAuth"},
    {3, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x03"), "codeSigning"},
    {4, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x04"), "emailProtection"},
    {8, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x08"), "timeStamping"},
    {9, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x09"), "OCSPSigning"},
    {10, OIDB("\x2b\x06\x01\x05\x02\x03\x04"), "pkInitClientAuth"},
    {11, OIDB("\x2b\x06\x01\x05\x02\x03\x05"), "pkInitKDC"},
    {12, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x15"), "secureShellClient"},
    {13, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x16"), "secureShellServer"},
    {14, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x23"), "bundleSecurity"},
    {15, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1b"), "cmcCA"},
    {16, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1c"), "cmcRA"},
    {17, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1d"), "cmcArchive"},
    {18, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x20"), "cmKGA"},
    {19, OIDB("\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x04"), "certificateTransparency"},
    {20, OIDB("\x2b\x06\x01\x04\x01\x82\xe4\x25\x01"), "wisunFanDevice"},
};

static const c509_oid_entry cp_registry[] = {
    {0, OIDB("\x55\x1d\x20\x00"), "anyPolicy"},
    {1, OIDB("\x67\x81\x0c\x01\x02\x01"), "domain-validated"},
    {2, OIDB("\x67\x81\x0c\x01\x02\x02"), "organization-validated"},
    {3, OIDB("\x67\x81\x0c\x01\x02\x03"), "individual-validated"},
    {4, OIDB("\x67\x81\x0c\x01\x01"), "ev-guidelines"},
    {7, OIDB("\x2b\x06\x01\x05\x05\x07\x0e\x02"), "id-cp-ipAddr-asNumber"},
    {8, OIDB("\x2b\x06\x01\x05\x05\x07\x0e\x03"), "id-cp-ipAddr-asNumber-v2"},
    {24, OIDB("\x67\x81\x12\x01\x02\x01\x00"), "id-rspRole-ci"},
    {25, OIDB("\x67\x81\x12\x01\x02\x01\x01"), "id-rspRole-euicc-v2"},
    {26, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x00\x00\x00"), "id-rspRole-euicc"},
    {27, OIDB("\x67\x81\x12\x01\x02\x01\x02"), "id-rspRole-eum-v2"},
    {28, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x00"), "id-rspRole-eum"},
    {29, OIDB("\x67\x81\x12\x01\x02\x01\x03"), "id-rspRole-dp-tls-v2"},
    {30, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x00"), "id-rspRole-dp-tls"},
    {31, OIDB("\x67\x81\x12\x01\x02\x01\x04"), "id-rspRole-dp-auth-v2"},
    {32, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x01"), "id-rspRole-dp-auth"},
    {33, OIDB("\x67\x81\x12\x01\x02\x01\x05"), "id-rspRole-dp-pb-v2"},
    {34, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x02"), "id-rspRole-dp-pb"},
    {35, OIDB("\x67\x81\x12\x01\x02\x01\x06"), "id-rspRole-ds-tls-v2"},
    {36, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x02\x00"), "id-rspRole-ds-tls"},
    {37, OIDB("\x67\x81\x12\x01\x02\x01\x07"), "id-rspRole-ds-auth-v2"},
    {38, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x02\x01"), "id-rspRole-ds-auth"},
};

static const c509_oid_entry pq_registry[] = {
    {C509_CERT_POLICY_QUALIFIER_CPS, OIDB("\x2b\x06\x01\x05\x05\x07\x02\x01"), "cps"},
    {C509_CERT_POLICY_QUALIFIER_UNOTICE, OIDB("\x2b\x06\x01\x05\x05\x07\x02\x02"), "unotice"},
};

static const c509_oid_entry ia_registry[] = {
    {1, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x01"), "OCSP"},
    {2, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x02"), "caIssuers"},
    {3, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x03"), "timeStamping"},
    {5, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x05"), "caRepository"},
    {10, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0a"), "rpkiManifest"},
    {11, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0b"), "signedObject"},
    {13, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0d"), "rpkiNotify"},
};

static const c509_oid_entry other_name_registry[] = {
    {C509_GN_CODE_MAC_ADDRESS, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x0c"), "MACAddress"},
    {C509_GN_CODE_SMTP_UTF8, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x09"), "SmtpUTF8Mailbox"},
    {C509_GN_CODE_HW_MODULE, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x04"), "hardwareModuleName"},
};

#define PSS_ALG(h, salt)                                                                           \
    OIDB("\x30\x41\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a\x30\x34\xa0\x0f\x30\x0d\x06\x09"    \
         "\x60\x86\x48\x01\x65\x03\x04\x02" h "\x05\x00\xa1\x1c\x30\x1a\x06\x09\x2a\x86\x48\x86"   \
         "\xf7\x0d\x01\x01\x08\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02" h "\x05\x00\xa2"   \
         "\x03\x02\x01" salt)

static const c509_sig_entry sig_registry[] = {
    {-256, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05\x05\x00"),
     "sha1WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA1"},
    {-255, OIDB("\x30\x09\x06\x07\x2a\x86\x48\xce\x3d\x04\x01"), "ecdsa-with-SHA1", C509_SIGK_ECDSA,
     "SHA1"},
    {0, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02"), "ecdsa-with-SHA256",
     C509_SIGK_ECDSA, "SHA256"},
    {1, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x03"), "ecdsa-with-SHA384",
     C509_SIGK_ECDSA, "SHA384"},
    {2, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x04"), "ecdsa-with-SHA512",
     C509_SIGK_ECDSA, "SHA512"},
    /* ECDSA-Sig-Value signatures whose verification OpenSSL does not offer here (md NULL) */
    {3, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x20"), "id-ecdsa-with-shake128",
     C509_SIGK_ECDSA, NULL},
    {4, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x21"), "id-ecdsa-with-shake256",
     C509_SIGK_ECDSA, NULL},
    {5, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x24"), "id-alg-unsigned",
     C509_SIGK_OTHER, NULL},
    {8, OIDB("\x30\x0a\x06\x08\x2a\x81\x1c\xcf\x55\x01\x83\x75"), "sm2-with-sm3", C509_SIGK_ECDSA,
     NULL},
    {12, OIDB("\x30\x05\x06\x03\x2b\x65\x70"), "Ed25519", C509_SIGK_EDDSA, NULL},
    {13, OIDB("\x30\x05\x06\x03\x2b\x65\x71"), "Ed448", C509_SIGK_EDDSA, NULL},
    {14, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1a"), "sa-ecdhPop-sha256-hmac-sha256",
     C509_SIGK_OTHER, NULL},
    {15, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1b"), "sa-ecdhPop-sha384-hmac-sha384",
     C509_SIGK_OTHER, NULL},
    {16, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1c"), "sa-ecdhPop-sha512-hmac-sha512",
     C509_SIGK_OTHER, NULL},
    {23, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b\x05\x00"),
     "sha256WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA256"},
    {24, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0c\x05\x00"),
     "sha384WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA384"},
    {25, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0d\x05\x00"),
     "sha512WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA512"},
    {26, PSS_ALG("\x01", "\x20"), "RSASSA-PSS-SHA256", C509_SIGK_RSA_PSS, "SHA256"},
    {27, PSS_ALG("\x02", "\x30"), "RSASSA-PSS-SHA384", C509_SIGK_RSA_PSS, "SHA384"},
    {28, PSS_ALG("\x03", "\x40"), "RSASSA-PSS-SHA512", C509_SIGK_RSA_PSS, "SHA512"},
    {29, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1e"), "id-RSASSA-PSS-SHAKE128",
     C509_SIGK_OTHER, NULL},
    {30, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1f"), "id-RSASSA-PSS-SHAKE256",
     C509_SIGK_OTHER, NULL},
};

#define EC_ALG(curve) OIDB("\x06\x07\x2a\x86\x48\xce\x3d\x02\x01" curve)

static const c509_pk_entry pk_registry[] = {
    {0, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"), "RSA", C509_PKK_RSA,
     NID_undef, 0, 0},
    {1,
     OIDB("\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01"
          "\x07"),
     "EC P-256", C509_PKK_EC, NID_X9_62_prime256v1, 32, 32},
    {2, OIDB("\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x22"),
     "EC P-384", C509_PKK_EC, NID_secp384r1, 48, 48},
    {3, OIDB("\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x23"),
     "EC P-521", C509_PKK_EC, NID_secp521r1, 66, 66},
    {6,
     OIDB("\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82"
          "\x2d"),
     "EC sm2p256v1", C509_PKK_EC, NID_sm2, 32, 32},
    {8, OIDB("\x30\x05\x06\x03\x2b\x65\x6e"), "X25519", C509_PKK_RAW, NID_undef, 0, 0},
    {9, OIDB("\x30\x05\x06\x03\x2b\x65\x6f"), "X448", C509_PKK_RAW, NID_undef, 0, 0},
    {12, OIDB("\x30\x05\x06\x03\x2b\x65\x70"), "Ed25519", C509_PKK_RAW, NID_undef, 0, 0},
    {13, OIDB("\x30\x05\x06\x03\x2b\x65\x71"), "Ed448", C509_PKK_RAW, NID_undef, 0, 0},
    {24,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x07"),
     "EC brainpoolP256r1", C509_PKK_EC, NID_brainpoolP256r1, 32, 32},
    {25,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x0b"),
     "EC brainpoolP384r1", C509_PKK_EC, NID_brainpoolP384r1, 48, 48},
    {26,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x0d"),
     "EC brainpoolP512r1", C509_PKK_EC, NID_brainpoolP512r1, 64, 64},
    /* OpenSSL has no FRP256v1: its keys are kept uncompressed */
    {27,
     OIDB("\x30\x15\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x0a\x2a\x81\x7a\x01\x81\x5f\x65"
          "\x82\x00\x01"),
     "EC FRP256v1", C509_PKK_EC, NID_undef, 32, 32},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void registry_table(c509_registry reg, const c509_oid_entry **tab, size_t *n, size_t *stride)
{
    *stride = sizeof(c509_oid_entry);
    switch (reg) {
    case C509_REG_ATTR:
        *tab = &attr_registry[0].e;
        *n = COUNT(attr_registry);
        *stride = sizeof(c509_attr_entry);
        return;
    case C509_REG_EXT:
        *tab = ext_registry;
        *n = COUNT(ext_registry);
        return;
    case C509_REG_EKU:
        *tab = eku_registry;
        *n = COUNT(eku_registry);
        return;
    case C509_REG_CP:
        *tab = cp_registry;
        *n = COUNT(cp_registry);
        return;
    case C509_REG_PQ:
        *tab = pq_registry;
        *n = COUNT(pq_registry);
        return;
    case C509_REG_IA:
        *tab = ia_registry;
        *n = COUNT(ia_registry);
        return;
    case C509_REG_OTHER_NAME:
        *tab = other_name_registry;
        *n = COUNT(other_name_registry);
        return;
    }
    *tab = NULL;
    *n = 0;
}

static const c509_oid_entry *registry_at(const c509_oid_entry *tab, size_t stride, size_t i)
{
    return (const c509_oid_entry *)((const uint8_t *)tab + i * stride);
}

const c509_oid_entry *c509_reg_by_code(c509_registry reg, int64_t code)
{
    const c509_oid_entry *tab;
    size_t n, stride;
    registry_table(reg, &tab, &n, &stride);
    for (size_t i = 0; i < n; i++)
        if (registry_at(tab, stride, i)->code == code)
            return registry_at(tab, stride, i);
    return NULL;
}

const c509_oid_entry *c509_reg_by_oid(c509_registry reg, const uint8_t *oid, size_t len)
{
    const c509_oid_entry *tab;
    size_t n, stride;
    registry_table(reg, &tab, &n, &stride);
    for (size_t i = 0; i < n; i++) {
        const c509_oid_entry *e = registry_at(tab, stride, i);
        if (e->oid_len == len && memcmp(e->oid, oid, len) == 0)
            return e;
    }
    return NULL;
}

const c509_attr_entry *c509_attr_by_code(int64_t code)
{
    return (const c509_attr_entry *)c509_reg_by_code(C509_REG_ATTR, code);
}

const c509_attr_entry *c509_attr_by_oid(const uint8_t *oid, size_t len)
{
    return (const c509_attr_entry *)c509_reg_by_oid(C509_REG_ATTR, oid, len);
}

const c509_sig_entry *c509_sig_by_code(int64_t code)
{
    for (size_t i = 0; i < COUNT(sig_registry); i++)
        if (sig_registry[i].code == code)
            return &sig_registry[i];
    return NULL;
}

const c509_sig_entry *c509_sig_by_der(const uint8_t *der, size_t len)
{
    for (size_t i = 0; i < COUNT(sig_registry); i++)
        if (sig_registry[i].der_len == len && memcmp(sig_registry[i].der, der, len) == 0)
            return &sig_registry[i];
    return NULL;
}

const c509_pk_entry *c509_pk_by_code(int64_t code)
{
    for (size_t i = 0; i < COUNT(pk_registry); i++)
        if (pk_registry[i].code == code)
            return &pk_registry[i];
    return NULL;
}

const c509_pk_entry *c509_pk_by_der(const uint8_t *der, size_t len)
{
    for (size_t i = 0; i < COUNT(pk_registry); i++)
        if (pk_registry[i].der_len == len && memcmp(pk_registry[i].der, der, len) == 0)
            return &pk_registry[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Signatures */

static bool sig_verifiable(const c509_sig_entry *e)
{
    return e != NULL &&
           (e->kind == C509_SIGK_EDDSA ||
            (e->md != NULL && (e->kind == C509_SIGK_ECDSA || e->kind == C509_SIGK_RSA_PKCS1 ||
                               e->kind == C509_SIGK_RSA_PSS)));
}

/* The key type an algorithm needs (EVP_PKEY_* id). */
static int sig_key_type(const c509_sig_entry *e)
{
    switch (e->kind) {
    case C509_SIGK_ECDSA:
        return EVP_PKEY_EC;
    case C509_SIGK_RSA_PKCS1:
    case C509_SIGK_RSA_PSS:
        return EVP_PKEY_RSA;
    case C509_SIGK_EDDSA:
        return e->code == 12 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448;
    case C509_SIGK_OTHER:
        break;
    }
    return NID_undef;
}

static vtpmca_err sig_check_key(const c509_sig_entry *e, EVP_PKEY *key, vtpmca_diag *diag)
{
    if (EVP_PKEY_get_base_id(key) != sig_key_type(e))
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "a %s key cannot be used with %s",
                           EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
                           e->name);
    return VTPMCA_OK;
}

/* Sets up md_ctx for signing or verifying with algorithm e. */
static vtpmca_err sig_init(EVP_MD_CTX *md_ctx, const c509_sig_entry *e, EVP_PKEY *key, bool sign,
                           vtpmca_diag *diag)
{
    EVP_PKEY_CTX *pctx = NULL;
    const char *md = e->kind == C509_SIGK_EDDSA ? NULL : e->md;
    int ok = sign ? EVP_DigestSignInit_ex(md_ctx, &pctx, md, NULL, NULL, key, NULL)
                  : EVP_DigestVerifyInit_ex(md_ctx, &pctx, md, NULL, NULL, key, NULL);
    if (ok == 1 && e->kind == C509_SIGK_RSA_PSS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, e->md, NULL) == 1;
    if (ok != 1) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "cannot set up %s: ", e->name);
        vtpmca_diag_append_openssl(diag);
        ERR_clear_error();
        return VTPMCA_ERR_CRYPTO;
    }
    return VTPMCA_OK;
}

/* Verifies sig (X.509 form: ECDSA as DER ECDSA-Sig-Value) over msg. */
static vtpmca_err sig_verify(const c509_sig_entry *e, EVP_PKEY *key, const uint8_t *msg,
                             size_t msg_len, const uint8_t *sig, size_t sig_len, vtpmca_diag *diag)
{
    vtpmca_err err = sig_check_key(e, key, diag);
    if (err != VTPMCA_OK)
        return err;
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    err = sig_init(md_ctx, e, key, false, diag);
    if (err == VTPMCA_OK && EVP_DigestVerify(md_ctx, sig, sig_len, msg, msg_len) != 1) {
        ERR_clear_error();
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s signature does not verify", e->name);
    }
    EVP_MD_CTX_free(md_ctx);
    return err;
}

/* Signs msg; *sig is malloc'd (ECDSA: DER ECDSA-Sig-Value). */
static vtpmca_err sig_sign(const c509_sig_entry *e, EVP_PKEY *key, const uint8_t *msg,
                           size_t msg_len, c509_buf *sig, vtpmca_diag *diag)
{
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = sig_init(md_ctx, e, key, true, diag);
    size_t len = 0;
    if (err == VTPMCA_OK && EVP_DigestSign(md_ctx, NULL, &len, msg, msg_len) != 1)
        err = VTPMCA_ERR_CRYPTO;
    if (err == VTPMCA_OK && !c509_buf_reserve(sig, len))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && EVP_DigestSign(md_ctx, sig->data, &len, msg, msg_len) != 1)
        err = VTPMCA_ERR_CRYPTO;
    if (err == VTPMCA_ERR_CRYPTO && (diag == NULL || diag->msg[0] == '\0')) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s signing failed: ", e->name);
        vtpmca_diag_append_openssl(diag);
    }
    ERR_clear_error();
    if (err == VTPMCA_OK)
        sig->len = len;
    EVP_MD_CTX_free(md_ctx);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Public API */

/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
static vtpmca_err build_cert_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag)
{
    c509_buf sig = {0};
    vtpmca_err err = c509_signature_to_der(d, &sig, diag);
    if (err == VTPMCA_OK) {
        size_t mark = der_open(out);
        err = c509_build_tbs_der(d, out, diag);
        if (err == VTPMCA_OK) {
            c509_buf_put(out, d->sig_alg.data, d->sig_alg.len);
            size_t bits = der_open(out);
            uint8_t unused = 0;
            c509_buf_put(out, &unused, 1);
            c509_buf_put(out, sig.data, sig.len);
            der_close(out, bits, DER_BIT_STRING);
            der_close(out, mark, DER_SEQ);
            err = c509_buf_status(out, diag);
        }
    }
    c509_buf_free(&sig);
    return err;
}

static vtpmca_err check_output_args(const void *in, size_t in_len, uint8_t **out, size_t *out_len,
                                    vtpmca_diag *diag)
{
    if (out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    *out = NULL;
    *out_len = 0;
    if (in == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing input");
    if (in_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (in_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", in_len,
                           C509_MAX_INPUT);
    return VTPMCA_OK;
}

vtpmca_err c509_from_x509_der(const uint8_t *der, size_t der_len, uint8_t **cbor, size_t *cbor_len,
                              vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(der, der_len, cbor, cbor_len, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_ctx ctx = {.type = C509_TYPE_X509, .diag = diag};
    c509_parts parts;
    const uint8_t *sig;
    size_t sig_len;
    err = c509_parse_x509(&ctx, der, der_len, &parts, &sig, &sig_len);
    if (err != VTPMCA_OK)
        return err;
    c509_buf out = {0};
    cb_array(&out, 11);
    err = c509_encode_tbs(&ctx, &parts, &out);
    if (err == VTPMCA_OK)
        err = c509_encode_signature(&ctx, &parts, sig, sig_len, &out);
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, diag);

    /* Every choice above must be recoverable: rebuild the DER and compare. */
    if (err == VTPMCA_OK) {
        c509_decoded d;
        vtpmca_diag inner = {{0}};
        err = c509_decode(out.data, out.len, &d, &inner);
        c509_buf rebuilt = {0};
        if (err == VTPMCA_OK)
            err = build_cert_der(&d, &rebuilt, &inner);
        if (err == VTPMCA_ERR_NOMEM) {
            vtpmca_fail(diag, err, "%s", inner.msg);
        } else if (err != VTPMCA_OK) {
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "re-encoding cannot be decoded: %s",
                              inner.msg);
        } else if (rebuilt.len != der_len || memcmp(rebuilt.data, der, der_len) != 0) {
            size_t at = 0;
            while (at < rebuilt.len && at < der_len && rebuilt.data[at] == der[at])
                at++;
            err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                              "certificate cannot be rebuilt byte for byte from C509 (first "
                              "difference at DER offset %zu)",
                              at);
        }
        c509_buf_free(&rebuilt);
        c509_decoded_free(&d);
    }
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *cbor = out.data;
    *cbor_len = out.len;
    return VTPMCA_OK;
}

vtpmca_err c509_to_x509_der(const uint8_t *cbor, size_t cbor_len, uint8_t **der, size_t *der_len,
                            vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(cbor, cbor_len, der, der_len, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_decoded d;
    err = c509_decode(cbor, cbor_len, &d, diag);
    if (err == VTPMCA_OK && d.type != C509_TYPE_X509)
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                          "a natively signed (type 2) C509 certificate has no X.509 form");
    c509_buf out = {0};
    if (err == VTPMCA_OK)
        err = build_cert_der(&d, &out, diag);
    c509_decoded_free(&d);
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *der = out.data;
    *der_len = out.len;
    return VTPMCA_OK;
}

/* Encodes parts as a type 2 certificate and signs it. */
static vtpmca_err sign_native_parts(c509_ctx *ctx, const c509_parts *parts,
                                    const c509_sig_entry *alg, EVP_PKEY *issuer_key, uint8_t **cbor,
                                    size_t *cbor_len)
{
    c509_buf out = {0}, sig = {0};
    cb_array(&out, 11);
    size_t tbs_start = out.len;
    vtpmca_err err = c509_encode_tbs(ctx, parts, &out);
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, ctx->diag);
    if (err == VTPMCA_OK)
        err = sig_sign(alg, issuer_key, out.data + tbs_start, out.len - tbs_start, &sig, ctx->diag);
    if (err == VTPMCA_OK) {
        if (alg->kind == C509_SIGK_ECDSA) {
            c509_buf raw = {0};
            err = c509_ecdsa_der_to_raw(sig.data, sig.len, ctx->ecdsa_half, &raw, ctx->diag);
            if (err == VTPMCA_OK)
                cb_bytes(&out, raw.data, raw.len);
            c509_buf_free(&raw);
        } else {
            cb_bytes(&out, sig.data, sig.len);
        }
    }
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, ctx->diag);
    c509_buf_free(&sig);
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *cbor = out.data;
    *cbor_len = out.len;
    return VTPMCA_OK;
}

/* The algorithm a native signature may use with this key (c509_sig_alg values only). */
static vtpmca_err native_sig_alg(int64_t code, EVP_PKEY *issuer_key, const c509_sig_entry **out,
                                 size_t *ecdsa_half, vtpmca_diag *diag)
{
    static const int allowed[] = {
        C509_SIG_ECDSA_SHA256,     C509_SIG_ECDSA_SHA384,     C509_SIG_ECDSA_SHA512,
        C509_SIG_ED25519,          C509_SIG_RSA_PKCS1_SHA256, C509_SIG_RSA_PKCS1_SHA384,
        C509_SIG_RSA_PKCS1_SHA512, C509_SIG_RSA_PSS_SHA256,   C509_SIG_RSA_PSS_SHA384,
        C509_SIG_RSA_PSS_SHA512,
    };
    bool ok = false;
    for (size_t i = 0; i < COUNT(allowed); i++)
        ok = ok || allowed[i] == code;
    const c509_sig_entry *e = c509_sig_by_code(code);
    if (!ok || e == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "signature algorithm %lld cannot sign native C509 certificates",
                           (long long)code);
    vtpmca_err err = sig_check_key(e, issuer_key, diag);
    if (err != VTPMCA_OK)
        return err;
    *ecdsa_half = 0;
    if (e->kind == C509_SIGK_ECDSA) {
        int bits = EVP_PKEY_get_bits(issuer_key); /* EC: bits of the group order */
        if (bits <= 0)
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "cannot read the issuer curve's order");
        *ecdsa_half = ((size_t)bits + 7) / 8;
    }
    *out = e;
    return VTPMCA_OK;
}

vtpmca_err c509_sign_native(const c509_tbs *tbs, EVP_PKEY *issuer_key, uint8_t **cbor,
                            size_t *cbor_len, vtpmca_diag *diag)
{
    if (cbor == NULL || cbor_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    *cbor = NULL;
    *cbor_len = 0;
    if (tbs == NULL || issuer_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing certificate or issuer key");
    c509_ctx ctx = {.type = C509_TYPE_NATIVE, .diag = diag};
    const c509_sig_entry *alg;
    vtpmca_err err = native_sig_alg(tbs->sig_alg, issuer_key, &alg, &ctx.ecdsa_half, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_parts parts;
    c509_buf owned = {0};
    err = c509_parts_from_tbs(&ctx, tbs, &parts, &owned);
    if (err == VTPMCA_OK)
        err = sign_native_parts(&ctx, &parts, alg, issuer_key, cbor, cbor_len);
    c509_buf_free(&owned);
    return err;
}

vtpmca_err c509_sign_native_from_x509(const uint8_t *der, size_t der_len, EVP_PKEY *issuer_key,
                                      uint8_t **cbor, size_t *cbor_len, vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(der, der_len, cbor, cbor_len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (issuer_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing issuer key");
    c509_ctx ctx = {.type = C509_TYPE_NATIVE, .diag = diag};
    c509_parts parts;
    const uint8_t *sig;
    size_t sig_len;
    err = c509_parse_x509(&ctx, der, der_len, &parts, &sig, &sig_len);
    if (err != VTPMCA_OK)
        return err;
    const c509_sig_entry *alg = c509_sig_by_der(parts.sig_alg.tlv, parts.sig_alg.tlv_len);
    if (alg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "the certificate's signature algorithm has no C509 code");
    err = native_sig_alg(alg->code, issuer_key, &alg, &ctx.ecdsa_half, diag);
    if (err != VTPMCA_OK)
        return err;
    return sign_native_parts(&ctx, &parts, alg, issuer_key, cbor, cbor_len);
}

vtpmca_err c509_verify(const uint8_t *cbor, size_t cbor_len, EVP_PKEY *issuer_pub,
                       vtpmca_diag *diag)
{
    if (cbor == NULL || issuer_pub == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing certificate or issuer key");
    if (cbor_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (cbor_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", cbor_len,
                           C509_MAX_INPUT);
    c509_decoded d;
    vtpmca_err err = c509_decode(cbor, cbor_len, &d, diag);
    c509_buf tbs = {0}, sig = {0};
    if (err != VTPMCA_OK)
        goto done;
    if (d.type == C509_TYPE_NATIVE) {
        if (!sig_verifiable(d.sig)) {
            err =
                vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "cannot verify this signature algorithm");
            goto done;
        }
        err = c509_signature_to_der(&d, &sig, diag);
        if (err == VTPMCA_OK)
            err = sig_verify(d.sig, issuer_pub, cbor + d.tbs_offset, d.tbs_len, sig.data, sig.len,
                             diag);
        goto done;
    }
    if (sig_verifiable(d.sig)) {
        err = c509_build_tbs_der(&d, &tbs, diag);
        if (err == VTPMCA_OK)
            err = c509_signature_to_der(&d, &sig, diag);
        if (err == VTPMCA_OK)
            err = sig_verify(d.sig, issuer_pub, tbs.data, tbs.len, sig.data, sig.len, diag);
        goto done;
    }
    /* An algorithm without a usable C509 code: let OpenSSL's X.509 verifier try. */
    err = build_cert_der(&d, &tbs, diag);
    if (err == VTPMCA_OK) {
        const unsigned char *p = tbs.data;
        X509 *x = d2i_X509(NULL, &p, (long)tbs.len);
        if (x == NULL || X509_verify(x, issuer_pub) != 1)
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                              "signature does not verify (or algorithm unknown to OpenSSL)");
        X509_free(x);
        ERR_clear_error();
    }
done:
    c509_buf_free(&tbs);
    c509_buf_free(&sig);
    c509_decoded_free(&d);
    return err;
}

/* Copies a memory BIO's contents into a malloc'd string. */
static char *bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (s == NULL)
        return NULL;
    if (n > 0)
        memcpy(s, data, (size_t)n);
    s[n > 0 ? n : 0] = '\0';
    return s;
}

static char *name_text(const c509_buf *der)
{
    const unsigned char *p = der->data;
    X509_NAME *name = d2i_X509_NAME(NULL, &p, (long)der->len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (name != NULL && bio != NULL &&
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        s = bio_string(bio);
    BIO_free(bio);
    X509_NAME_free(name);
    ERR_clear_error();
    return s;
}

static char *extensions_text(const c509_buf *der)
{
    if (der->len == 0)
        return strdup("");
    const unsigned char *p = der->data;
    X509_EXTENSIONS *exts = d2i_X509_EXTENSIONS(NULL, &p, (long)der->len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (exts != NULL && bio != NULL &&
        X509V3_extensions_print(bio, NULL, exts, X509V3_EXT_DUMP_UNKNOWN, 0) == 1)
        s = bio_string(bio);
    BIO_free(bio);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return s;
}

/* The dotted OID of an AlgorithmIdentifier. */
static char *alg_oid_text(const c509_buf *alg)
{
    der_cur c = der_cursor(alg->data, alg->len);
    der_tlv seq, oid;
    char text[128] = "?";
    if (der_get(&c, DER_SEQ, &seq)) {
        der_cur in = der_inside(&seq);
        if (der_get(&in, DER_OID, &oid))
            c509_oid_to_text(oid.val, oid.len, text, sizeof(text));
    }
    return strdup(text);
}

vtpmca_err c509_decode_info(const uint8_t *cbor, size_t cbor_len, c509_info *info,
                            vtpmca_diag *diag)
{
    if (info == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    memset(info, 0, sizeof(*info));
    if (cbor == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing input");
    if (cbor_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (cbor_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", cbor_len,
                           C509_MAX_INPUT);
    c509_decoded d;
    vtpmca_err err = c509_decode(cbor, cbor_len, &d, diag);
    if (err != VTPMCA_OK)
        return err;
    info->type = d.type;
    info->not_before = d.not_before;
    info->not_after = d.not_after;
    info->ext_count = d.ext_count;
    size_t hex_size = 2 * (d.serial.len > 0 ? d.serial.len : 1) + 1;
    info->serial_hex = malloc(hex_size);
    if (info->serial_hex != NULL) {
        if (d.serial.len == 0)
            snprintf(info->serial_hex, hex_size, "00");
        else
            vt_hex_encode(d.serial.data, d.serial.len, info->serial_hex, hex_size);
    }
    info->sig_alg = d.sig != NULL ? strdup(d.sig->name) : alg_oid_text(&d.sig_alg);
    info->issuer = name_text(&d.issuer);
    info->subject = name_text(&d.subject);
    info->extensions = extensions_text(&d.exts);

    const unsigned char *p = d.spki.data;
    info->public_key = d2i_PUBKEY(NULL, &p, (long)d.spki.len);
    ERR_clear_error();
    if (d.pk != NULL && d.pk->kind == C509_PKK_RSA && info->public_key != NULL) {
        char text[32];
        snprintf(text, sizeof(text), "RSA %d", EVP_PKEY_get_bits(info->public_key));
        info->public_key_alg = strdup(text);
    } else if (d.pk != NULL) {
        info->public_key_alg = strdup(d.pk->name);
    } else {
        c509_buf alg = {0};
        der_cur c = der_cursor(d.spki.data, d.spki.len);
        der_tlv spki, a;
        if (der_get(&c, DER_SEQ, &spki)) {
            der_cur in = der_inside(&spki);
            if (der_next(&in, &a))
                c509_buf_put(&alg, a.tlv, a.tlv_len);
        }
        info->public_key_alg = alg_oid_text(&alg);
        c509_buf_free(&alg);
    }
    if (d.type == C509_TYPE_X509) {
        c509_buf der = {0};
        err = build_cert_der(&d, &der, diag);
        info->x509_der = der.data;
        info->x509_der_len = der.len;
    }
    if (err == VTPMCA_OK &&
        (info->serial_hex == NULL || info->sig_alg == NULL || info->issuer == NULL ||
         info->subject == NULL || info->extensions == NULL || info->public_key_alg == NULL))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory formatting the certificate");
    c509_decoded_free(&d);
    return err;
}

void c509_info_free(c509_info *info)
{
    if (info == NULL)
        return;
    free(info->serial_hex);
    free(info->sig_alg);
    free(info->issuer);
    free(info->subject);
    EVP_PKEY_free(info->public_key);
    free(info->public_key_alg);
    free(info->extensions);
    free(info->x509_der);
    memset(info, 0, sizeof(*info));
}
