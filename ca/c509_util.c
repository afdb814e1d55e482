/* C509 infrastructure shared by the encoder and the decoder: growable buffers, CBOR writing
 * and strict loading with libcbor, DER writing with OpenSSL's framing (the strict readers are
 * in der.c), OID, text and time helpers. */
#include "c509_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

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

/* Size of the shortest head carrying argument v (libcbor's encoder always picks it). */
static size_t cbor_head_size(uint64_t v)
{
    unsigned char head[9];
    return cbor_encode_uint(v, head, sizeof(head));
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
        if (n >= INT64_MAX) /* keeps -v representable */
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
/* DER writers: OpenSSL's ASN1_put_object does the framing (shortest header). */

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
/* Time: the strict shape is checked here, calendar and conversions are OpenSSL's. */

bool c509_der_time(const der_tlv *t, uint64_t *epoch, int *year)
{
    size_t digits = t->tag == DER_UTCTIME ? 12 : t->tag == DER_GENTIME ? 14 : 0;
    if (digits == 0 || t->len != digits + 1 || t->val[digits] != 'Z')
        return false; /* DER: seconds present, no fraction, UTC */
    for (size_t i = 0; i < digits; i++)
        if (t->val[i] < '0' || t->val[i] > '9')
            return false;
    const unsigned char *p = t->tlv;
    ASN1_TIME *when = d2i_ASN1_TIME(NULL, &p, (long)t->tlv_len);
    ASN1_TIME *zero = ASN1_TIME_set(NULL, 0);
    struct tm tm;
    int days = 0, secs = 0;
    /* ASN1_TIME_to_tm validates the calendar (no leap seconds, no 31 April) */
    bool ok = when != NULL && zero != NULL && ASN1_TIME_to_tm(when, &tm) == 1 &&
              ASN1_TIME_diff(&days, &secs, zero, when) == 1;
    ASN1_TIME_free(when);
    ASN1_TIME_free(zero);
    ERR_clear_error();
    if (!ok)
        return false;
    *year = tm.tm_year + 1900;
    *epoch = days < 0 || secs < 0 ? 0 : (uint64_t)days * 86400 + (uint64_t)secs;
    return true;
}

void c509_put_time(c509_buf *b, uint64_t epoch)
{
    /* ASN1_TIME_set picks RFC 5280's type: UTCTime for 1950-2049, else GeneralizedTime */
    ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)epoch);
    unsigned char *der = NULL;
    int n = t != NULL ? i2d_ASN1_TIME(t, &der) : -1;
    if (n > 0)
        c509_buf_put(b, der, (size_t)n);
    else
        b->oom = true;
    OPENSSL_free(der);
    ASN1_TIME_free(t);
    ERR_clear_error();
}

/* ------------------------------------------------------------------------------------ */
/* Composite helpers */

/* Appends an array of `count` items already written to items. */
void cb_put_array(c509_buf *out, size_t count, const c509_buf *items)
{
    cb_array(out, count);
    c509_buf_put(out, items->data, items->len);
    if (items->oom)
        out->oom = true;
}
