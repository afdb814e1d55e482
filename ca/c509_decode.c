/* C509 decoding: C509 CBOR -> X.509 DER. For type 3 this rebuilds the original certificate
 * byte for byte (the inverse of c509_encode.c); for type 2 it gives the X.509-equivalent
 * fields used for display and the key. Input is loaded strictly (c509_cbor_load) and every
 * item's type is checked; malformed input fails with VTPMCA_ERR_PARSE. */
#include "c509_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>

#include "vtpmca/encoding.h"

static const uint8_t der_true = 0xff;

/* ------------------------------------------------------------------------------------ */
/* Items */

/* An unsigned bignum in its canonical form: no leading zero byte. */
static bool get_biguint(const cbor_item_t *it, const uint8_t **p, size_t *n)
{
    return cbi_bytes(it, p, n) && (*n == 0 || (*p)[0] != 0);
}

static bool get_ascii(const cbor_item_t *it, const char **p, size_t *n)
{
    return cbi_text(it, p, n) && c509_ascii_valid((const uint8_t *)*p, *n);
}

/* ~oid: the content octets of a valid OBJECT IDENTIFIER. */
static bool put_oid_item(const cbor_item_t *it, int tag, c509_buf *out)
{
    const uint8_t *p;
    size_t n;
    if (!cbi_bytes(it, &p, &n) || !c509_oid_valid(p, n))
        return false;
    der_put(out, tag, p, n);
    return true;
}

/* An int from a registry, or ~oid, as an OBJECT IDENTIFIER. */
static bool put_registered_oid(c509_registry reg, const cbor_item_t *it, c509_buf *out)
{
    int64_t code;
    if (cbi_int(it, &code)) {
        const c509_oid_entry *e = c509_reg_by_code(reg, code);
        if (e == NULL)
            return false;
        der_put(out, DER_OID, e->oid, e->oid_len);
        return true;
    }
    return put_oid_item(it, DER_OID, out);
}

/* An array of pairs (even count), non-empty when need_one. */
static bool get_pairs(const cbor_item_t *it, cbor_item_t ***items, size_t *n, bool need_one)
{
    return cbi_array(it, items, n) && *n % 2 == 0 && (!need_one || *n > 0);
}

/* SpecialText -> the attribute's characters (inverse of c509_enc_special_text). */
static bool get_special_text(const cbor_item_t *it, c509_buf *out)
{
    const char *t;
    const uint8_t *b;
    size_t n;
    if (cbi_text(it, &t, &n)) {
        c509_buf_put(out, t, n);
        return true;
    }
    if (cbi_bytes(it, &b, &n)) {
        if (n == 0 || !c509_buf_reserve(out, 2 * n + 1))
            return false;
        vt_hex_encode(b, n, (char *)out->data + out->len, 2 * n + 1);
        out->len += 2 * n;
        return true;
    }
    if (it == NULL || !cbor_isa_tag(it) || cbor_tag_value(it) != C509_TAG_MAC_ADDRESS)
        return false;
    cbor_item_t *inner = cbor_tag_item(it);
    bool ok = cbi_bytes(inner, &b, &n) && (n == 6 || n == 8);
    if (ok) {
        uint8_t eui[8];
        if (n == 6) {
            uint8_t tmp[8] = {b[0], b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]};
            memcpy(eui, tmp, sizeof(eui));
        } else {
            memcpy(eui, b, sizeof(eui));
        }
        char text[24];
        snprintf(text, sizeof(text), "%02X-%02X-%02X-%02X-%02X-%02X-%02X-%02X", eui[0], eui[1],
                 eui[2], eui[3], eui[4], eui[5], eui[6], eui[7]);
        c509_buf_put(out, text, 23);
    }
    cbor_decref(&inner);
    return ok;
}

/* ------------------------------------------------------------------------------------ */
/* Names */

/* The string type a coded attribute value is rebuilt with (0 on a sign error). */
static int attr_string_tag(const c509_ctx *ctx, const c509_attr_entry *a, int64_t signed_code)
{
    if (a->ia5_only)
        return signed_code >= 0 ? DER_IA5 : 0;
    if (signed_code < 0)
        return ctx->type == C509_TYPE_X509 ? DER_PRINTABLE : 0;
    return DER_UTF8;
}

static bool string_valid(int tag, const c509_buf *s)
{
    if (tag == DER_IA5)
        return c509_ascii_valid(s->data, s->len);
    if (tag == DER_PRINTABLE)
        return c509_printable_valid(s->data, s->len);
    return c509_utf8_valid(s->data, s->len);
}

/* One AttributeTypeAndValue SEQUENCE from (type, value); attribute values may be a set
 * (subjectDirectoryAttributes) when `values` is true. */
static bool put_attribute(const c509_ctx *ctx, const cbor_item_t *type, const cbor_item_t *value,
                          bool values, c509_buf *out)
{
    const cbor_item_t *one[1] = {value};
    const cbor_item_t *const *vals = one;
    size_t nvals = 1;
    cbor_item_t **set_items;
    if (values) {
        if (!cbi_array(value, &set_items, &nvals) || nvals == 0)
            return false;
        vals = (const cbor_item_t *const *)set_items;
    }
    size_t mark = der_open(out);
    int64_t code;
    int tag = 0;
    if (cbi_int(type, &code)) {
        const c509_attr_entry *a = c509_attr_by_code(code < 0 ? -code : code);
        tag = a != NULL ? attr_string_tag(ctx, a, code) : 0;
        if (tag == 0)
            return false;
        der_put(out, DER_OID, a->e.oid, a->e.oid_len);
    } else if (!put_oid_item(type, DER_OID, out)) {
        return false;
    }
    size_t set = der_open(out);
    for (size_t i = 0; i < nvals; i++) {
        if (tag != 0) {
            c509_buf s = {0};
            bool ok = get_special_text(vals[i], &s) && string_valid(tag, &s);
            if (ok)
                der_put(out, tag, s.data, s.len);
            c509_buf_free(&s);
            if (!ok)
                return false;
        } else {
            /* (~oid, bytes): the value's whole DER TLV */
            const uint8_t *p;
            size_t n;
            if (!cbi_bytes(vals[i], &p, &n) || !der_is_single_tlv(p, n))
                return false;
            c509_buf_put(out, p, n);
        }
    }
    if (values)
        der_close(out, set, DER_SET);
    der_close(out, mark, DER_SEQ);
    return true;
}

/* Name -> DER Name (inverse of c509_enc_name). */
static bool put_name(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    size_t mark = der_open(out);
    if (!cbi_array(it, &items, &n)) {
        /* a lone commonName (utf8String) */
        c509_buf s = {0};
        bool ok = get_special_text(it, &s) && c509_utf8_valid(s.data, s.len);
        if (ok) {
            const c509_attr_entry *cn = c509_attr_by_code(1);
            size_t set = der_open(out), atv = der_open(out);
            der_put(out, DER_OID, cn->e.oid, cn->e.oid_len);
            der_put(out, DER_UTF8, s.data, s.len);
            der_close(out, atv, DER_SEQ);
            der_close(out, set, DER_SET);
            der_close(out, mark, DER_SEQ);
        }
        c509_buf_free(&s);
        return ok;
    }
    if (n % 2 != 0)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        size_t set = der_open(out);
        if (!put_attribute(ctx, items[i], items[i + 1], false, out))
            return false;
        der_close(out, set, DER_SET);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* General names */

static bool put_other_name(int64_t code, const cbor_item_t *value, c509_buf *out)
{
    size_t mark = der_open(out);
    const c509_oid_entry *special = c509_reg_by_code(C509_REG_OTHER_NAME, code);
    cbor_item_t **items;
    size_t n;
    const uint8_t *p;
    const char *t;
    if (code == C509_GN_CODE_OTHER_NAME) {
        if (!cbi_array(value, &items, &n) || n != 2 || !put_oid_item(items[0], DER_OID, out) ||
            !cbi_bytes(items[1], &p, &n) || !der_is_single_tlv(p, n))
            return false;
        size_t wrap = der_open(out);
        c509_buf_put(out, p, n);
        der_close(out, wrap, DER_CTX_CONS(0));
        der_close(out, mark, DER_CTX_CONS(0));
        return true;
    }
    if (special == NULL)
        return false;
    der_put(out, DER_OID, special->oid, special->oid_len);
    size_t wrap = der_open(out);
    if (code == C509_GN_CODE_HW_MODULE) {
        size_t seq = der_open(out);
        if (!cbi_array(value, &items, &n) || n != 2 || !put_oid_item(items[0], DER_OID, out) ||
            !cbi_bytes(items[1], &p, &n))
            return false;
        der_put(out, DER_OCTET_STRING, p, n);
        der_close(out, seq, DER_SEQ);
    } else if (code == C509_GN_CODE_SMTP_UTF8) {
        if (!cbi_text(value, &t, &n))
            return false;
        der_put(out, DER_UTF8, (const uint8_t *)t, n);
    } else {
        if (!cbi_bytes(value, &p, &n) || (n != 6 && n != 8))
            return false;
        der_put(out, DER_OCTET_STRING, p, n);
    }
    der_close(out, wrap, DER_CTX_CONS(0));
    der_close(out, mark, DER_CTX_CONS(0));
    return true;
}

/* Name constraints: address||prefix length -> address||mask. */
static bool put_nc_ip(const uint8_t *p, size_t n, c509_buf *out)
{
    if (n != 5 && n != 17)
        return false;
    size_t alen = n - 1;
    unsigned prefix = p[alen];
    if (prefix > 8 * alen)
        return false;
    uint8_t v[32] = {0};
    memcpy(v, p, alen);
    for (unsigned i = 0; i < prefix; i++)
        v[alen + i / 8] |= (uint8_t)(0x80u >> (i % 8));
    der_put(out, DER_CTX(7), v, 2 * alen);
    return true;
}

static bool put_general_name(const c509_ctx *ctx, const cbor_item_t *type, const cbor_item_t *value,
                             bool name_constraints, c509_buf *out)
{
    int64_t code;
    const char *t;
    const uint8_t *p;
    size_t n;
    if (!cbi_int(type, &code))
        return false;
    switch (code) {
    case C509_GN_CODE_MAC_ADDRESS:
    case C509_GN_CODE_SMTP_UTF8:
    case C509_GN_CODE_HW_MODULE:
    case C509_GN_CODE_OTHER_NAME:
        return put_other_name(code, value, out);
    case C509_GN_CODE_RFC822:
    case C509_GN_CODE_DNS:
    case C509_GN_CODE_URI:
        if (!get_ascii(value, &t, &n))
            return false;
        der_put(out, DER_CTX((int)code), (const uint8_t *)t, n);
        return true;
    case C509_GN_CODE_DIRECTORY: {
        size_t mark = der_open(out);
        if (!put_name(ctx, value, out))
            return false;
        der_close(out, mark, DER_CTX_CONS(4));
        return true;
    }
    case C509_GN_CODE_IP:
        if (!cbi_bytes(value, &p, &n))
            return false;
        if (name_constraints)
            return put_nc_ip(p, n, out);
        der_put(out, DER_CTX(7), p, n);
        return true;
    case C509_GN_CODE_REGISTERED_ID:
        return put_oid_item(value, DER_CTX(8), out);
    default:
        return false;
    }
}

/* [ + (code, value) ] -> the content of GeneralNames. */
static bool put_general_names(const c509_ctx *ctx, const cbor_item_t *it, bool name_constraints,
                              c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!get_pairs(it, &items, &n, true))
        return false;
    for (size_t i = 0; i < n; i += 2)
        if (!put_general_name(ctx, items[i], items[i + 1], name_constraints, out))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* Extension values */

static bool dec_ext_alt_name(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    const char *t;
    size_t n;
    size_t mark = der_open(out);
    if (get_ascii(it, &t, &n))
        der_put(out, DER_CTX(2), (const uint8_t *)t, n);
    else if (!put_general_names(ctx, it, false, out))
        return false;
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_basic_constraints(const cbor_item_t *it, c509_buf *out)
{
    int64_t v;
    if (!cbi_int(it, &v) || v < -2)
        return false;
    size_t mark = der_open(out);
    if (v != -2)
        der_put(out, DER_BOOLEAN, &der_true, 1);
    if (v >= 0)
        der_put_u64(out, DER_INTEGER, (uint64_t)v);
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool put_full_name(const cbor_item_t *it, c509_buf *out)
{
    const char *t;
    size_t n;
    cbor_item_t **uris;
    size_t count;
    size_t mark = der_open(out);
    if (get_ascii(it, &t, &n)) {
        der_put(out, DER_CTX(6), (const uint8_t *)t, n);
    } else {
        if (!cbi_array(it, &uris, &count) || count == 0)
            return false;
        for (size_t i = 0; i < count; i++) {
            if (!get_ascii(uris[i], &t, &n))
                return false;
            der_put(out, DER_CTX(6), (const uint8_t *)t, n);
        }
    }
    der_close(out, mark, DER_CTX_CONS(0));
    return true;
}

static bool dec_ext_crl_dp(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    size_t mark = der_open(out);
    cbor_item_t **points;
    const char *text;
    size_t n;
    if (cbi_text(it, &text, &n)) {
        size_t dp = der_open(out), dpn = der_open(out);
        if (!put_full_name(it, out))
            return false;
        der_close(out, dpn, DER_CTX_CONS(0));
        der_close(out, dp, DER_SEQ);
    } else {
        if (!cbi_array(it, &points, &n) || n == 0)
            return false;
        for (size_t i = 0; i < n; i++) {
            cbor_item_t **f;
            size_t fn;
            uint64_t reasons;
            if (!cbi_array(points[i], &f, &fn) || fn != 3)
                return false;
            size_t dp = der_open(out), dpn = der_open(out);
            if (!put_full_name(f[0], out))
                return false;
            der_close(out, dpn, DER_CTX_CONS(0));
            if (cbi_uint(f[1], &reasons))
                der_put_named_bits(out, DER_CTX(1), reasons);
            else if (!cbi_null(f[1]))
                return false;
            if (!cbi_null(f[2])) {
                size_t issuer = der_open(out), dir = der_open(out);
                if (!put_name(ctx, f[2], out))
                    return false;
                der_close(out, dir, DER_CTX_CONS(4));
                der_close(out, issuer, DER_CTX_CONS(2));
            }
            der_close(out, dp, DER_SEQ);
        }
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_policies(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items, **quals;
    size_t n, nq;
    if (!get_pairs(it, &items, &n, true))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 2) {
        size_t info = der_open(out);
        if (!put_registered_oid(C509_REG_CP, items[i], out) ||
            !get_pairs(items[i + 1], &quals, &nq, false))
            return false;
        if (nq > 0) {
            size_t seq = der_open(out);
            for (size_t k = 0; k < nq; k += 2) {
                int64_t id;
                const char *t;
                size_t tn;
                const c509_oid_entry *e =
                    cbi_int(quals[k], &id) ? c509_reg_by_code(C509_REG_PQ, id) : NULL;
                if (e == NULL || !cbi_text(quals[k + 1], &t, &tn))
                    return false; /* a ~oid qualifier has no known text syntax */
                size_t pqi = der_open(out);
                der_put(out, DER_OID, e->oid, e->oid_len);
                if (e->code == C509_CERT_POLICY_QUALIFIER_CPS) {
                    if (!c509_ascii_valid((const uint8_t *)t, tn))
                        return false;
                    der_put(out, DER_IA5, (const uint8_t *)t, tn);
                } else {
                    size_t notice = der_open(out);
                    der_put(out, DER_UTF8, (const uint8_t *)t, tn);
                    der_close(out, notice, DER_SEQ);
                }
                der_close(out, pqi, DER_SEQ);
            }
            der_close(out, seq, DER_SEQ);
        }
        der_close(out, info, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_aki(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    const uint8_t *p, *serial;
    size_t n, serial_len;
    cbor_item_t **items;
    size_t mark = der_open(out);
    if (cbi_bytes(it, &p, &n)) {
        der_put(out, DER_CTX(0), p, n);
    } else {
        if (!cbi_array(it, &items, &n) || n != 3 || !cbi_bytes(items[0], &p, &n) ||
            !get_biguint(items[2], &serial, &serial_len))
            return false;
        der_put(out, DER_CTX(0), p, n);
        size_t names = der_open(out);
        if (!put_general_names(ctx, items[1], false, out))
            return false;
        der_close(out, names, DER_CTX_CONS(1));
        der_put_unsigned(out, DER_CTX(2), serial, serial_len);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_eku(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    size_t mark = der_open(out);
    if (cbi_array(it, &items, &n)) {
        if (n == 0)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!put_registered_oid(C509_REG_EKU, items[i], out))
                return false;
    } else if (!put_registered_oid(C509_REG_EKU, it, out)) {
        return false;
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_info_access(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!get_pairs(it, &items, &n, true))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 2) {
        const char *t;
        size_t tn;
        size_t ad = der_open(out);
        if (!put_registered_oid(C509_REG_IA, items[i], out) || !get_ascii(items[i + 1], &t, &tn))
            return false;
        der_put(out, DER_CTX(6), (const uint8_t *)t, tn);
        der_close(out, ad, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_dir_attributes(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!get_pairs(it, &items, &n, true))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 2)
        if (!put_attribute(ctx, items[i], items[i + 1], true, out))
            return false;
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_subtrees(const c509_ctx *ctx, const cbor_item_t *it, int tag, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (cbi_null(it))
        return true;
    if (!get_pairs(it, &items, &n, true))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 2) {
        size_t subtree = der_open(out);
        if (!put_general_name(ctx, items[i], items[i + 1], true, out))
            return false;
        der_close(out, subtree, DER_SEQ);
    }
    der_close(out, mark, tag);
    return true;
}

static bool dec_ext_name_constraints(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!cbi_array(it, &items, &n) || n != 2)
        return false;
    size_t mark = der_open(out);
    if (!dec_subtrees(ctx, items[0], DER_CTX_CONS(0), out) ||
        !dec_subtrees(ctx, items[1], DER_CTX_CONS(1), out))
        return false;
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_policy_mappings(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!get_pairs(it, &items, &n, true))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 2) {
        size_t map = der_open(out);
        if (!put_registered_oid(C509_REG_CP, items[i], out) ||
            !put_registered_oid(C509_REG_CP, items[i + 1], out))
            return false;
        der_close(out, map, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_policy_constraints(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!cbi_array(it, &items, &n) || n != 2)
        return false;
    size_t mark = der_open(out);
    for (int i = 0; i < 2; i++) {
        uint64_t v;
        if (cbi_uint(items[i], &v))
            der_put_u64(out, DER_CTX(i), v);
        else if (!cbi_null(items[i]))
            return false;
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

/* Next address of an int-form choice: the first is absolute, later ones are signed deltas
 * from the previous one (inverse of cb_delta). */
static bool next_int_address(const cbor_item_t *it, bool first, uint64_t *prev)
{
    if (it == NULL)
        return false;
    uint64_t v = cbor_isa_uint(it) || cbor_isa_negint(it) ? cbor_get_int(it) : 0;
    if (cbor_isa_uint(it)) {
        if (!first && v > UINT64_MAX - *prev)
            return false;
        *prev = first ? v : *prev + v;
        return true;
    }
    if (cbor_isa_negint(it) && !first && v < UINT64_MAX && v + 1 <= *prev) {
        *prev -= v + 1;
        return true;
    }
    return false;
}

/* (unusedBits + 1) || value -> an IPAddress BIT STRING. */
static bool put_int_address(uint64_t v, c509_buf *out)
{
    uint8_t be[8];
    size_t n = 0;
    for (int shift = 56; shift >= 0; shift -= 8)
        if (n > 0 || (v >> shift) != 0)
            be[n++] = (uint8_t)(v >> shift);
    if (n == 0 || be[0] > 8 || (n == 1 && be[0] != 1))
        return false;
    be[0] -= 1;
    der_put(out, DER_BIT_STRING, be, n);
    return true;
}

static bool put_bytes_address(const cbor_item_t *it, c509_buf *out)
{
    const uint8_t *p;
    size_t n;
    if (!cbi_bytes(it, &p, &n) || n == 0 || p[0] > 7 || (n == 1 && p[0] != 0))
        return false;
    der_put(out, DER_BIT_STRING, p, n);
    return true;
}

static bool put_ip_choice(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (cbi_null(it)) {
        der_put(out, DER_NULL, NULL, 0);
        return true;
    }
    if (!cbi_array(it, &items, &n) || n == 0)
        return false;
    /* the form is the first address's: ints, or byte strings */
    cbor_item_t **range;
    size_t rn;
    const cbor_item_t *first = cbi_array(items[0], &range, &rn) && rn > 0 ? range[0] : items[0];
    bool ints = cbor_isa_uint(first) || cbor_isa_negint(first);
    uint64_t prev = 0;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i++) {
        const cbor_item_t *addr[2] = {items[i], NULL};
        size_t count = 1;
        size_t seq = der_open(out);
        if (cbi_array(items[i], &range, &rn)) {
            if (rn != 2)
                return false;
            addr[0] = range[0];
            addr[1] = range[1];
            count = 2;
        }
        for (size_t k = 0; k < count; k++) {
            bool ok = ints ? next_int_address(addr[k], i == 0 && k == 0, &prev) &&
                                 put_int_address(prev, out)
                           : put_bytes_address(addr[k], out);
            if (!ok)
                return false;
        }
        if (count == 2)
            der_close(out, seq, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_ip_blocks(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!cbi_array(it, &items, &n) || n == 0 || n % 3 != 0)
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i += 3) {
        uint64_t afi, safi;
        uint8_t family[3];
        size_t flen = 2;
        if (!cbi_uint(items[i], &afi) || afi > 0xffff)
            return false;
        family[0] = (uint8_t)(afi >> 8);
        family[1] = (uint8_t)afi;
        if (cbi_uint(items[i + 1], &safi) && safi <= 0xff)
            family[flen++] = (uint8_t)safi;
        else if (!cbi_null(items[i + 1]))
            return false;
        size_t fam = der_open(out);
        der_put(out, DER_OCTET_STRING, family, flen);
        if (!put_ip_choice(items[i + 2], out))
            return false;
        der_close(out, fam, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_as_ids(const cbor_item_t *it, c509_buf *out)
{
    size_t mark = der_open(out), asnum = der_open(out);
    cbor_item_t **items, **range;
    size_t n, rn;
    if (cbi_null(it)) {
        der_put(out, DER_NULL, NULL, 0);
    } else {
        if (!cbi_array(it, &items, &n) || n == 0)
            return false;
        uint64_t prev = 0;
        size_t seq = der_open(out);
        for (size_t i = 0; i < n; i++) {
            const cbor_item_t *ids[2] = {items[i], NULL};
            size_t count = 1;
            size_t r = der_open(out);
            if (cbi_array(items[i], &range, &rn)) {
                if (rn != 2)
                    return false;
                ids[0] = range[0];
                ids[1] = range[1];
                count = 2;
            }
            for (size_t k = 0; k < count; k++) {
                uint64_t d;
                if (!cbi_uint(ids[k], &d) || d > UINT32_MAX || prev + d > UINT32_MAX)
                    return false;
                prev += d;
                der_put_u64(out, DER_INTEGER, prev);
            }
            if (count == 2)
                der_close(out, r, DER_SEQ);
        }
        der_close(out, seq, DER_SEQ);
    }
    der_close(out, asnum, DER_CTX_CONS(0));
    der_close(out, mark, DER_SEQ);
    return true;
}

static bool dec_ext_tls_features(const cbor_item_t *it, c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    if (!cbi_array(it, &items, &n))
        return false;
    size_t mark = der_open(out);
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (!cbi_uint(items[i], &v))
            return false;
        der_put_u64(out, DER_INTEGER, v);
    }
    der_close(out, mark, DER_SEQ);
    return true;
}

vtpmca_err c509_ext_value_to_der(c509_ctx *ctx, int64_t code, const cbor_item_t *value,
                                 c509_buf *out)
{
    const uint8_t *p;
    size_t n;
    uint64_t v;
    bool ok;
    switch (code) {
    case C509_EXT_CODE_SKI:
        ok = cbi_bytes(value, &p, &n);
        if (ok)
            der_put(out, DER_OCTET_STRING, p, n);
        break;
    case C509_EXT_CODE_KU:
        ok = cbi_uint(value, &v);
        if (ok)
            der_put_named_bits(out, DER_BIT_STRING, v);
        break;
    case C509_EXT_CODE_SAN:
    case C509_EXT_CODE_IAN:
        ok = dec_ext_alt_name(ctx, value, out);
        break;
    case C509_EXT_CODE_BC:
        ok = dec_ext_basic_constraints(value, out);
        break;
    case C509_EXT_CODE_CRLDP:
    case C509_EXT_CODE_FRESHEST_CRL:
        ok = dec_ext_crl_dp(ctx, value, out);
        break;
    case C509_EXT_CODE_CP:
        ok = dec_ext_policies(value, out);
        break;
    case C509_EXT_CODE_AKI:
        ok = dec_ext_aki(ctx, value, out);
        break;
    case C509_EXT_CODE_EKU:
        ok = dec_ext_eku(value, out);
        break;
    case C509_EXT_CODE_AIA:
    case C509_EXT_CODE_SIA:
        ok = dec_ext_info_access(value, out);
        break;
    case C509_EXT_CODE_SDA:
        ok = dec_ext_dir_attributes(ctx, value, out);
        break;
    case C509_EXT_CODE_NC:
        ok = dec_ext_name_constraints(ctx, value, out);
        break;
    case C509_EXT_CODE_PM:
        ok = dec_ext_policy_mappings(value, out);
        break;
    case C509_EXT_CODE_PC:
        ok = dec_ext_policy_constraints(value, out);
        break;
    case C509_EXT_CODE_INHIBIT_ANY:
        ok = cbi_uint(value, &v);
        if (ok)
            der_put_u64(out, DER_INTEGER, v);
        break;
    case C509_EXT_CODE_IP_ADDR:
    case C509_EXT_CODE_IP_ADDR_V2:
        ok = dec_ext_ip_blocks(value, out);
        break;
    case C509_EXT_CODE_AS_IDS:
    case C509_EXT_CODE_AS_IDS_V2:
        ok = dec_ext_as_ids(value, out);
        break;
    case C509_EXT_CODE_OCSP_NOCHECK:
    case C509_EXT_CODE_PRECERT_SIGNING:
        ok = cbi_null(value);
        if (ok)
            der_put(out, DER_NULL, NULL, 0);
        break;
    case C509_EXT_CODE_TLS_FEATURE:
        ok = dec_ext_tls_features(value, out);
        break;
    default:
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                           "extension code %lld is not supported", (long long)code);
    }
    if (out->oom)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (!ok) {
        const c509_oid_entry *e = c509_reg_by_code(C509_REG_EXT, code);
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed %s extension value",
                           e != NULL ? e->name : "registered");
    }
    return VTPMCA_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Certificate */

/* ~oid alone (no parameters), or [~oid, parameters as one DER TLV] -> AlgorithmIdentifier. */
static vtpmca_err put_alg_generic(const c509_ctx *ctx, const cbor_item_t *it, const char *what,
                                  c509_buf *out)
{
    cbor_item_t **items;
    size_t n;
    const uint8_t *params;
    size_t params_len;
    size_t mark = der_open(out);
    if (cbor_isa_bytestring(it)) {
        if (!put_oid_item(it, DER_OID, out))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed %s algorithm OID", what);
    } else if (cbi_array(it, &items, &n) && n == 2 && put_oid_item(items[0], DER_OID, out) &&
               cbi_bytes(items[1], &params, &params_len) && der_is_single_tlv(params, params_len)) {
        c509_buf_put(out, params, params_len);
    } else {
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed %s AlgorithmIdentifier", what);
    }
    der_close(out, mark, DER_SEQ);
    return VTPMCA_OK;
}

static vtpmca_err put_sig_alg(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out,
                              const c509_sig_entry **entry)
{
    int64_t code;
    *entry = NULL;
    if (!cbi_int(it, &code))
        return put_alg_generic(ctx, it, "signature", out);
    *entry = c509_sig_by_code(code);
    if (*entry == NULL)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED, "unknown signature algorithm %lld",
                           (long long)code);
    c509_buf_put(out, (*entry)->der, (*entry)->der_len);
    return VTPMCA_OK;
}

static vtpmca_err put_pk_alg(const c509_ctx *ctx, const cbor_item_t *it, c509_buf *out,
                             const c509_pk_entry **entry)
{
    int64_t code;
    *entry = NULL;
    if (!cbi_int(it, &code))
        return put_alg_generic(ctx, it, "public key", out);
    *entry = c509_pk_by_code(code);
    if (*entry == NULL)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED, "unknown public key algorithm %lld",
                           (long long)code);
    c509_buf_put(out, (*entry)->der, (*entry)->der_len);
    return VTPMCA_OK;
}

/* FE/FD||X (type 3) -> 04||X||Y, with the curve's equation (OpenSSL). */
static vtpmca_err decompress_point(const c509_ctx *ctx, const c509_pk_entry *e, const uint8_t *p,
                                   size_t n, c509_buf *out)
{
    if (e->curve_nid == NID_undef || n != 1 + e->field_size)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "bad compressed %s point", e->name);
    uint8_t point[1 + 66], full[1 + 2 * 66];
    point[0] = p[0] == 0xfe ? 0x02 : 0x03;
    memcpy(point + 1, p + 1, e->field_size);
    EC_GROUP *group = EC_GROUP_new_by_curve_name(e->curve_nid);
    EC_POINT *pt = group != NULL ? EC_POINT_new(group) : NULL;
    size_t len = 0;
    if (pt != NULL && EC_POINT_oct2point(group, pt, point, n, NULL) == 1)
        len =
            EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, full, sizeof(full), NULL);
    EC_POINT_free(pt);
    EC_GROUP_free(group);
    ERR_clear_error();
    if (len != 1 + 2 * e->field_size)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "compressed %s point is not on the curve",
                           e->name);
    c509_buf_put(out, full, len);
    return VTPMCA_OK;
}

static vtpmca_err put_spki(const c509_ctx *ctx, const cbor_item_t *alg, const cbor_item_t *key,
                           c509_buf *out, const c509_pk_entry **entry)
{
    size_t mark = der_open(out);
    const c509_pk_entry *pk;
    vtpmca_err err = put_pk_alg(ctx, alg, out, &pk);
    if (err != VTPMCA_OK)
        return err;
    *entry = pk;
    size_t bits = der_open(out);
    static const uint8_t no_unused_bits = 0;
    c509_buf_put(out, &no_unused_bits, 1);
    const uint8_t *p, *ep;
    size_t n, en, count;
    cbor_item_t **items;
    if (pk != NULL && pk->kind == C509_PKK_RSA) {
        /* the modulus alone (exponent 65537), or [modulus, exponent] */
        static const uint8_t f4[] = {0x01, 0x00, 0x01};
        if (get_biguint(key, &p, &n) && n > 0) {
            ep = f4;
            en = sizeof(f4);
        } else if (!(cbi_array(key, &items, &count) && count == 2 &&
                     get_biguint(items[0], &p, &n) && n > 0 && get_biguint(items[1], &ep, &en) &&
                     en > 0)) {
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed RSA public key");
        }
        size_t seq = der_open(out);
        der_put_unsigned(out, DER_INTEGER, p, n);
        der_put_unsigned(out, DER_INTEGER, ep, en);
        der_close(out, seq, DER_SEQ);
    } else {
        if (!cbi_bytes(key, &p, &n))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "subjectPublicKey is not bytes");
        bool fe_fd = n > 0 && (p[0] == 0xfe || p[0] == 0xfd);
        if (pk != NULL && pk->kind == C509_PKK_EC && fe_fd) {
            if (ctx->type != C509_TYPE_X509)
                return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                                   "0xfe/0xfd point prefixes are for re-encoded X.509 only");
            err = decompress_point(ctx, pk, p, n, out);
            if (err != VTPMCA_OK)
                return err;
        } else {
            c509_buf_put(out, p, n);
        }
    }
    der_close(out, bits, DER_BIT_STRING);
    der_close(out, mark, DER_SEQ);
    return VTPMCA_OK;
}

static void put_extension(const uint8_t *oid, size_t oid_len, bool critical, const c509_buf *value,
                          c509_buf *out)
{
    size_t mark = der_open(out);
    der_put(out, DER_OID, oid, oid_len);
    if (critical)
        der_put(out, DER_BOOLEAN, &der_true, 1);
    der_put(out, DER_OCTET_STRING, value->data, value->len);
    der_close(out, mark, DER_SEQ);
}

static vtpmca_err put_extensions(c509_ctx *ctx, const cbor_item_t *it, c509_buf *out, size_t *count)
{
    int64_t lone_ku;
    cbor_item_t **items;
    size_t n;
    c509_buf value = {0};
    vtpmca_err err = VTPMCA_OK;
    *count = 0;
    size_t mark = der_open(out);
    if (cbi_int(it, &lone_ku)) {
        if (lone_ku == 0)
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "keyUsage without any bit");
        der_put_named_bits(&value, DER_BIT_STRING, (uint64_t)(lone_ku < 0 ? -lone_ku : lone_ku));
        const c509_oid_entry *ku = c509_reg_by_code(C509_REG_EXT, C509_EXT_CODE_KU);
        put_extension(ku->oid, ku->oid_len, lone_ku < 0, &value, out);
        *count = 1;
    } else if (!get_pairs(it, &items, &n, false)) {
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                           "extensions are neither an array of pairs nor an int");
    } else {
        for (size_t i = 0; err == VTPMCA_OK && i < n; i += 2) {
            int64_t id;
            const uint8_t *oid, *p;
            size_t oid_len, pn;
            cbor_item_t **wrapped;
            size_t wn;
            value.len = 0;
            if (cbi_int(items[i], &id)) {
                int64_t code = id < 0 ? -id : id;
                const c509_oid_entry *reg = c509_reg_by_code(C509_REG_EXT, code);
                if (reg == NULL) {
                    err = vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                                      "unknown extension code %lld", (long long)id);
                    break;
                }
                err = c509_ext_value_to_der(ctx, code, items[i + 1], &value);
                if (err == VTPMCA_OK)
                    put_extension(reg->oid, reg->oid_len, id < 0, &value, out);
            } else if (cbi_bytes(items[i], &oid, &oid_len) && c509_oid_valid(oid, oid_len)) {
                bool critical = cbi_array(items[i + 1], &wrapped, &wn) && wn == 1;
                if (!cbi_bytes(critical ? wrapped[0] : items[i + 1], &p, &pn)) {
                    err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                                      "value of extension %zu is neither bytes nor [bytes]", i / 2);
                    break;
                }
                c509_buf_put(&value, p, pn);
                put_extension(oid, oid_len, critical, &value, out);
            } else {
                err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                                  "extension %zu has neither an int nor an OID id", i / 2);
            }
            (*count)++;
        }
    }
    c509_buf_free(&value);
    if (err == VTPMCA_OK && *count > 0)
        der_close(out, mark, DER_SEQ);
    return err;
}

static vtpmca_err field_error(vtpmca_diag *diag, const char *what)
{
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed C509 %s", what);
}

static vtpmca_err decode_fields(const uint8_t *cbor, size_t len, c509_decoded *out,
                                vtpmca_diag *diag)
{
    vtpmca_err err = c509_cbor_load(cbor, len, &out->root, diag);
    if (err != VTPMCA_OK)
        return err;
    cbor_item_t **f;
    size_t n;
    if (!cbi_array(out->root, &f, &n) || n != 11)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "not a C509Certificate: expected an array of 11 items (0x8b)");
    uint64_t type;
    if (!cbi_uint(f[0], &type))
        return field_error(diag, "c509CertificateType");
    if (type != C509_TYPE_NATIVE && type != C509_TYPE_X509)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "c509CertificateType %llu is not supported (2 and 3 are)",
                           (unsigned long long)type);
    out->type = (int)type;
    c509_ctx ctx = {.type = out->type, .diag = diag};

    const uint8_t *p;
    if (!get_biguint(f[1], &p, &n))
        return field_error(diag, "serial number (bytes without leading zeros)");
    if (n > C509_MAX_SERIAL)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "serial number longer than %d bytes",
                           C509_MAX_SERIAL);
    c509_buf_put(&out->serial, p, n);

    err = put_sig_alg(&ctx, f[2], &out->sig_alg, &out->sig);
    if (err != VTPMCA_OK)
        return err;

    bool issuer_is_subject = cbi_null(f[3]);
    if (!issuer_is_subject && !put_name(&ctx, f[3], &out->issuer))
        return field_error(diag, "issuer name");
    if (!cbi_uint(f[4], &out->not_before) || out->not_before > C509_MAX_TIME)
        return field_error(diag, "notBefore (epoch seconds)");
    if (cbi_null(f[5]))
        out->not_after = C509_NO_EXPIRY;
    else if (!cbi_uint(f[5], &out->not_after) || out->not_after > C509_MAX_TIME)
        return field_error(diag, "notAfter (epoch seconds or null)");
    if (!put_name(&ctx, f[6], &out->subject))
        return field_error(diag, "subject name");
    if (issuer_is_subject)
        c509_buf_put(&out->issuer, out->subject.data, out->subject.len);
    err = put_spki(&ctx, f[7], f[8], &out->spki, &out->pk);
    if (err == VTPMCA_OK)
        err = put_extensions(&ctx, f[9], &out->exts, &out->ext_count);
    if (err != VTPMCA_OK)
        return err;
    if (!cbi_bytes(f[10], &out->sig_value, &out->sig_value_len))
        return field_error(diag, "signature value (bytes)");
    out->tbs_offset = 1; /* after the one-byte array head 0x8b */
    out->tbs_len = len - 1 - cb_bytes_size(out->sig_value_len);
    c509_buf *bufs[] = {&out->serial,  &out->sig_alg, &out->issuer,
                        &out->subject, &out->spki,    &out->exts};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (bufs[i]->oom)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory decoding C509");
    return VTPMCA_OK;
}

vtpmca_err c509_decode(const uint8_t *cbor, size_t len, c509_decoded *out, vtpmca_diag *diag)
{
    memset(out, 0, sizeof(*out));
    vtpmca_err err = decode_fields(cbor, len, out, diag);
    if (err != VTPMCA_OK)
        c509_decoded_free(out);
    return err;
}

void c509_decoded_free(c509_decoded *d)
{
    if (d == NULL)
        return;
    if (d->root != NULL)
        cbor_decref(&d->root);
    c509_buf_free(&d->serial);
    c509_buf_free(&d->sig_alg);
    c509_buf_free(&d->issuer);
    c509_buf_free(&d->subject);
    c509_buf_free(&d->spki);
    c509_buf_free(&d->exts);
    memset(d, 0, sizeof(*d));
}

vtpmca_err c509_build_tbs_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag)
{
    static const uint8_t v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    size_t mark = der_open(out);
    c509_buf_put(out, v3, sizeof(v3));
    der_put_unsigned(out, DER_INTEGER, d->serial.data, d->serial.len);
    c509_buf_put(out, d->sig_alg.data, d->sig_alg.len);
    c509_buf_put(out, d->issuer.data, d->issuer.len);
    size_t validity = der_open(out);
    c509_put_time(out, d->not_before);
    c509_put_time(out, d->not_after);
    der_close(out, validity, DER_SEQ);
    c509_buf_put(out, d->subject.data, d->subject.len);
    c509_buf_put(out, d->spki.data, d->spki.len);
    if (d->ext_count > 0) {
        size_t exts = der_open(out);
        c509_buf_put(out, d->exts.data, d->exts.len);
        der_close(out, exts, DER_CTX_CONS(3));
    }
    der_close(out, mark, DER_SEQ);
    return c509_buf_status(out, diag);
}

vtpmca_err c509_signature_to_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag)
{
    if (d->sig == NULL || d->sig->kind != C509_SIGK_ECDSA) {
        c509_buf_put(out, d->sig_value, d->sig_value_len);
        return c509_buf_status(out, diag);
    }
    size_t half = d->sig_value_len / 2;
    if (half == 0 || d->sig_value_len % 2 != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "ECDSA signature value is not r||s of equal sizes");
    size_t mark = der_open(out);
    der_put_unsigned(out, DER_INTEGER, d->sig_value, half);
    der_put_unsigned(out, DER_INTEGER, d->sig_value + half, half);
    der_close(out, mark, DER_SEQ);
    return c509_buf_status(out, diag);
}
