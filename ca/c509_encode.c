/* C509 encoding: X.509 DER -> C509 CBOR. Type 3 re-encodes a strict-DER certificate;
 * type 2 (c509_sign_native) first builds the X.509-equivalent DER of a c509_tbs and runs the
 * same transcoder, so both types share one encoding of every field. Each registered
 * extension gets its specific encoding only when that encoding rebuilds the exact extnValue
 * (checked with the decoder); otherwise it is carried as (~oid, bytes). */
#include "c509_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "vtpmca/encoding.h"

/* Returned by the extension encoders when the specific encoding cannot express a value:
 * the extension is then carried as (~oid, bytes). */
#define NOT_SPECIFIC VTPMCA_ERR_UNSUPPORTED

#define CBOR_TAG_MAC_ADDRESS 48 /* RFC 9542 section 2.4 */

/* Appends an array of `count` items already written to items. */
static void put_array(c509_buf *out, size_t count, const c509_buf *items)
{
    cb_array(out, count);
    c509_buf_put(out, items->data, items->len);
    if (items->oom)
        out->oom = true;
}

/* The content of a TLV that must be the only thing in der[0..len) with this tag. */
static bool single(const uint8_t *der, size_t len, int tag, der_tlv *out)
{
    der_cur c = der_cursor(der, len);
    return der_get(&c, tag, out) && der_done(&c);
}

/* ------------------------------------------------------------------------------------ */
/* Strings */

static bool is_lower_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* "HH-HH-HH-HH-HH-HH-HH-HH" with upper-case hex digits. */
static bool parse_eui64(const uint8_t *p, size_t n, uint8_t out[8])
{
    if (n != 23)
        return false;
    for (size_t i = 0; i < 8; i++) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            uint8_t c = p[3 * i + k];
            if (c >= '0' && c <= '9')
                v = v * 16 + (c - '0');
            else if (c >= 'A' && c <= 'F')
                v = v * 16 + (c - 'A' + 10);
            else
                return false;
        }
        if (i < 7 && p[3 * i + 2] != '-')
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

/* SpecialText: even-length lower-case hex -> bytes, EUI-64 -> tag 48 (6 bytes when it
 * embeds a MAC-48 as HH-HH-HH-FF-FE-HH-HH-HH), otherwise text. */
static void enc_special_text(c509_buf *out, const uint8_t *s, size_t n)
{
    uint8_t eui[8];
    if (n >= 2 && n % 2 == 0 && is_lower_hex(s, n)) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (vt_hex_decode_alloc((const char *)s, n, &bytes, &len) != VTPMCA_OK) {
            out->oom = true;
            return;
        }
        cb_bytes(out, bytes, len);
        free(bytes);
    } else if (parse_eui64(s, n, eui)) {
        cb_tag(out, CBOR_TAG_MAC_ADDRESS);
        if (eui[3] == 0xff && eui[4] == 0xfe) {
            uint8_t mac[6] = {eui[0], eui[1], eui[2], eui[5], eui[6], eui[7]};
            cb_bytes(out, mac, sizeof(mac));
        } else {
            cb_bytes(out, eui, sizeof(eui));
        }
    } else {
        cb_text(out, (const char *)s, n);
    }
}

/* The sign with which an attribute value can use the attribute's code: +1 (utf8String, or
 * IA5String for IA5-only attributes), -1 (printableString, type 3 only), 0 (not at all:
 * encoded as (~oid, DER value)). */
static int attr_text_sign(const c509_ctx *ctx, const c509_attr_entry *a, const der_tlv *v)
{
    if (a == NULL)
        return 0;
    if (a->ia5_only)
        return v->tag == DER_IA5 && c509_ascii_valid(v->val, v->len) ? 1 : 0;
    if (v->tag == DER_UTF8 && c509_utf8_valid(v->val, v->len))
        return 1;
    /* Native certificates have no DER string types and no negative attribute codes. */
    if (v->tag == DER_PRINTABLE && c509_printable_valid(v->val, v->len))
        return ctx->type == C509_TYPE_NATIVE ? 1 : -1;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Names */

/* One attribute as (type, value). *utf8_cn tells whether it is a commonName with +1. */
static vtpmca_err enc_attr(c509_ctx *ctx, const der_tlv *oid, const der_tlv *val, c509_buf *out,
                           bool *utf8_cn)
{
    const c509_attr_entry *a = c509_attr_by_oid(oid->val, oid->len);
    int sign = attr_text_sign(ctx, a, val);
    *utf8_cn = false;
    if (sign != 0) {
        cb_int(out, sign * (int64_t)a->e.code);
        enc_special_text(out, val->val, val->len);
        *utf8_cn = a->e.code == 1 && sign == 1;
        return VTPMCA_OK;
    }
    if (!c509_oid_valid(oid->val, oid->len))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "invalid attribute OID in a name");
    cb_bytes(out, oid->val, oid->len);
    cb_bytes(out, val->tlv, val->tlv_len);
    return VTPMCA_OK;
}

/* Name: [ * (type, value) ], or just the value of a lone utf8String commonName. */
static vtpmca_err enc_name(c509_ctx *ctx, const der_tlv *name, c509_buf *out)
{
    if (name->tag != DER_SEQ)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "a Name is not a SEQUENCE");
    c509_buf items = {0};
    size_t count = 0;
    bool utf8_cn = false;
    der_tlv cn_value = {0};
    vtpmca_err err = VTPMCA_OK;
    der_cur c = der_inside(name);
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv set, atv, oid, val;
        if (!der_get(&c, DER_SET, &set)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "a name's RDN is not a SET");
            break;
        }
        der_cur s = der_inside(&set);
        if (!der_get(&s, DER_SEQ, &atv)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed RDN in a name");
            break;
        }
        if (!der_done(&s)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                              "multi-valued RDN (C509 has one attribute per RDN)");
            break;
        }
        der_cur a = der_inside(&atv);
        if (!der_get(&a, DER_OID, &oid) || !der_next(&a, &val) || !der_done(&a)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed attribute in a name");
            break;
        }
        err = enc_attr(ctx, &oid, &val, &items, &utf8_cn);
        cn_value = val;
        count++;
    }
    if (err == VTPMCA_OK) {
        if (count == 1 && utf8_cn)
            enc_special_text(out, cn_value.val, cn_value.len);
        else
            put_array(out, 2 * count, &items);
    }
    c509_buf_free(&items);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Algorithms and keys */

/* ~oid, or [~oid, parameters] for an algorithm without a code. */
static vtpmca_err enc_alg_generic(c509_ctx *ctx, const der_tlv *alg, c509_buf *out)
{
    der_cur c = der_inside(alg);
    der_tlv oid, params;
    if (!der_get(&c, DER_OID, &oid) || !c509_oid_valid(oid.val, oid.len))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed AlgorithmIdentifier");
    if (der_done(&c)) {
        cb_bytes(out, oid.val, oid.len);
        return VTPMCA_OK;
    }
    if (!der_next(&c, &params) || !der_done(&c))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed AlgorithmIdentifier");
    cb_array(out, 2);
    cb_bytes(out, oid.val, oid.len);
    cb_bytes(out, params.tlv, params.tlv_len);
    return VTPMCA_OK;
}

/* Point compression: 04||X||Y -> prefix||X (type 3: 0xfe even / 0xfd odd y, type 2: 02/03),
 * only for points OpenSSL confirms are on the curve, so the decoder can rebuild Y. */
static void enc_ec_point(c509_ctx *ctx, const c509_pk_entry *e, const uint8_t *key, size_t len,
                         c509_buf *out)
{
    bool compress = false;
    if (e->curve_nid != NID_undef && len == 1 + 2 * e->field_size && key[0] == 0x04) {
        EC_GROUP *group = EC_GROUP_new_by_curve_name(e->curve_nid);
        EC_POINT *point = group != NULL ? EC_POINT_new(group) : NULL;
        compress = point != NULL && EC_POINT_oct2point(group, point, key, len, NULL) == 1;
        EC_POINT_free(point);
        EC_GROUP_free(group);
        ERR_clear_error();
    }
    if (!compress) {
        cb_bytes(out, key, len);
        return;
    }
    bool odd = (key[len - 1] & 1) != 0;
    uint8_t prefix;
    if (ctx->type == C509_TYPE_X509)
        prefix = odd ? 0xfd : 0xfe;
    else
        prefix = odd ? 0x03 : 0x02;
    uint8_t point[1 + 66];
    point[0] = prefix;
    memcpy(point + 1, key + 1, e->field_size);
    cb_bytes(out, point, 1 + e->field_size);
}

/* subjectPublicKeyAlgorithm and subjectPublicKey (two items). */
static vtpmca_err enc_spki(c509_ctx *ctx, const der_tlv *spki, c509_buf *out)
{
    der_cur c = der_inside(spki);
    der_tlv alg, bits;
    if (!der_get(&c, DER_SEQ, &alg) || !der_get(&c, DER_BIT_STRING, &bits) || !der_done(&c))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed SubjectPublicKeyInfo");
    if (bits.len == 0 || bits.val[0] != 0)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                           "subjectPublicKey BIT STRING has unused bits");
    const uint8_t *key = bits.val + 1;
    size_t key_len = bits.len - 1;
    const c509_pk_entry *e = c509_pk_by_der(alg.tlv, alg.tlv_len);
    if (e == NULL) {
        vtpmca_err err = enc_alg_generic(ctx, &alg, out);
        if (err == VTPMCA_OK)
            cb_bytes(out, key, key_len);
        return err;
    }
    cb_int(out, e->code);
    if (e->kind == C509_PKK_EC) {
        enc_ec_point(ctx, e, key, key_len, out);
    } else if (e->kind == C509_PKK_RSA) {
        der_tlv rsa, n, ex;
        const uint8_t *nm, *em;
        size_t nl, el;
        if (!single(key, key_len, DER_SEQ, &rsa))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "RSA key is not an RSAPublicKey");
        der_cur r = der_inside(&rsa);
        if (!der_get(&r, DER_INTEGER, &n) || !der_get(&r, DER_INTEGER, &ex) || !der_done(&r) ||
            !der_unsigned(&n, &nm, &nl) || !der_unsigned(&ex, &em, &el) || nl == 0 || el == 0)
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                               "RSA key is not a strict-DER RSAPublicKey");
        static const uint8_t f4[] = {0x01, 0x00, 0x01};
        if (el == sizeof(f4) && memcmp(em, f4, sizeof(f4)) == 0) {
            cb_bytes(out, nm, nl);
        } else {
            cb_array(out, 2);
            cb_bytes(out, nm, nl);
            cb_bytes(out, em, el);
        }
    } else {
        cb_bytes(out, key, key_len);
    }
    return VTPMCA_OK;
}

/* ------------------------------------------------------------------------------------ */
/* General names */

static vtpmca_err enc_other_name(const der_tlv *gn, c509_buf *out)
{
    der_cur c = der_inside(gn);
    der_tlv oid, wrap, value;
    der_cur w;
    if (!der_get(&c, DER_OID, &oid) || !der_get(&c, DER_CTX_CONS(0), &wrap) || !der_done(&c))
        return NOT_SPECIFIC;
    w = der_inside(&wrap);
    if (!der_next(&w, &value) || !der_done(&w) || !c509_oid_valid(oid.val, oid.len))
        return NOT_SPECIFIC;
    const c509_oid_entry *special = c509_reg_by_oid(C509_REG_OTHER_NAME, oid.val, oid.len);
    if (special != NULL && special->code == C509_GN_CODE_HW_MODULE && value.tag == DER_SEQ) {
        der_cur h = der_inside(&value);
        der_tlv hw_type, hw_serial;
        if (der_get(&h, DER_OID, &hw_type) && der_get(&h, DER_OCTET_STRING, &hw_serial) &&
            der_done(&h) && c509_oid_valid(hw_type.val, hw_type.len)) {
            cb_int(out, C509_GN_CODE_HW_MODULE);
            cb_array(out, 2);
            cb_bytes(out, hw_type.val, hw_type.len);
            cb_bytes(out, hw_serial.val, hw_serial.len);
            return VTPMCA_OK;
        }
    }
    if (special != NULL && special->code == C509_GN_CODE_SMTP_UTF8 && value.tag == DER_UTF8 &&
        c509_utf8_valid(value.val, value.len)) {
        cb_int(out, C509_GN_CODE_SMTP_UTF8);
        cb_text(out, (const char *)value.val, value.len);
        return VTPMCA_OK;
    }
    if (special != NULL && special->code == C509_GN_CODE_MAC_ADDRESS &&
        value.tag == DER_OCTET_STRING && (value.len == 6 || value.len == 8)) {
        cb_int(out, C509_GN_CODE_MAC_ADDRESS);
        cb_bytes(out, value.val, value.len);
        return VTPMCA_OK;
    }
    cb_int(out, C509_GN_CODE_OTHER_NAME);
    cb_array(out, 2);
    cb_bytes(out, oid.val, oid.len);
    cb_bytes(out, value.tlv, value.tlv_len);
    return VTPMCA_OK;
}

/* Name constraints carry iPAddress as address||mask; C509 as address||prefix length. */
static vtpmca_err enc_nc_ip(const der_tlv *gn, c509_buf *out)
{
    size_t alen = gn->len / 2;
    if (gn->len != 8 && gn->len != 32)
        return NOT_SPECIFIC;
    const uint8_t *mask = gn->val + alen;
    unsigned prefix = 0;
    bool ended = false;
    for (size_t i = 0; i < alen; i++)
        for (unsigned b = 0; b < 8; b++) {
            bool one = (mask[i] & (0x80u >> b)) != 0;
            if (one && ended)
                return NOT_SPECIFIC; /* not a prefix mask */
            if (one)
                prefix++;
            else
                ended = true;
        }
    uint8_t v[17];
    memcpy(v, gn->val, alen);
    v[alen] = (uint8_t)prefix;
    cb_int(out, C509_GN_CODE_IP);
    cb_bytes(out, v, alen + 1);
    return VTPMCA_OK;
}

/* One GeneralName as (code, value). */
static vtpmca_err enc_general_name(c509_ctx *ctx, const der_tlv *gn, bool name_constraints,
                                   c509_buf *out)
{
    int code;
    switch (gn->tag) {
    case DER_CTX_CONS(0):
        return enc_other_name(gn, out);
    case DER_CTX(1):
        code = C509_GN_CODE_RFC822;
        break;
    case DER_CTX(2):
        code = C509_GN_CODE_DNS;
        break;
    case DER_CTX(6):
        code = C509_GN_CODE_URI;
        break;
    case DER_CTX(7):
        if (name_constraints)
            return enc_nc_ip(gn, out);
        cb_int(out, C509_GN_CODE_IP);
        cb_bytes(out, gn->val, gn->len);
        return VTPMCA_OK;
    case DER_CTX(8):
        if (!c509_oid_valid(gn->val, gn->len))
            return NOT_SPECIFIC;
        cb_int(out, C509_GN_CODE_REGISTERED_ID);
        cb_bytes(out, gn->val, gn->len);
        return VTPMCA_OK;
    case DER_CTX_CONS(4): {
        der_tlv name;
        if (!single(gn->val, gn->len, DER_SEQ, &name))
            return NOT_SPECIFIC;
        cb_int(out, C509_GN_CODE_DIRECTORY);
        c509_ctx quiet = *ctx;
        quiet.diag = NULL;
        return enc_name(&quiet, &name, out) == VTPMCA_OK ? VTPMCA_OK : NOT_SPECIFIC;
    }
    default:
        return NOT_SPECIFIC; /* x400Address, ediPartyName */
    }
    if (!c509_ascii_valid(gn->val, gn->len))
        return NOT_SPECIFIC;
    cb_int(out, code);
    cb_text(out, (const char *)gn->val, gn->len);
    return VTPMCA_OK;
}

/* GeneralNames (SEQUENCE content) as [ + (code, value) ]. */
static vtpmca_err enc_general_names(c509_ctx *ctx, der_cur c, bool name_constraints, c509_buf *out)
{
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv gn;
        err =
            der_next(&c, &gn) ? enc_general_name(ctx, &gn, name_constraints, &items) : NOT_SPECIFIC;
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Extension values (each returns NOT_SPECIFIC when its encoding cannot carry the value) */

static vtpmca_err enc_ext_ski(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv id;
    if (!single(der, len, DER_OCTET_STRING, &id))
        return NOT_SPECIFIC;
    cb_bytes(out, id.val, id.len);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_key_usage(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv bits;
    uint64_t v;
    /* no bits set: invalid (RFC 5280) and ambiguous in the single-int form */
    if (!single(der, len, DER_BIT_STRING, &bits) || !der_named_bits(&bits, &v) || v == 0)
        return NOT_SPECIFIC;
    cb_uint(out, v);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_alt_name(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, gn;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    der_cur c = der_inside(&seq);
    /* a lone dNSName is just its text */
    if (der_get(&c, DER_CTX(2), &gn) && der_done(&c) && c509_ascii_valid(gn.val, gn.len)) {
        cb_text(out, (const char *)gn.val, gn.len);
        return VTPMCA_OK;
    }
    return enc_general_names(ctx, der_inside(&seq), false, out);
}

static vtpmca_err enc_ext_basic_constraints(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, ca, path;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    der_cur c = der_inside(&seq);
    if (der_done(&c)) {
        cb_int(out, -2); /* cA FALSE */
        return VTPMCA_OK;
    }
    if (!der_get(&c, DER_BOOLEAN, &ca) || ca.len != 1 || ca.val[0] != 0xff)
        return NOT_SPECIFIC;
    if (der_done(&c)) {
        cb_int(out, -1); /* cA TRUE, no pathLenConstraint */
        return VTPMCA_OK;
    }
    uint64_t n;
    if (!der_get(&c, DER_INTEGER, &path) || !der_done(&c) || !der_u64(&path, &n) || n > INT64_MAX)
        return NOT_SPECIFIC;
    cb_uint(out, n);
    return VTPMCA_OK;
}

/* URIs of a fullName (GeneralNames content): text for one, array for several. */
static vtpmca_err enc_full_name(der_cur c, c509_buf *out, der_tlv *first, size_t *count)
{
    c509_buf items = {0};
    *count = 0;
    while (!der_done(&c)) {
        der_tlv uri;
        if (!der_get(&c, DER_CTX(6), &uri) || !c509_ascii_valid(uri.val, uri.len)) {
            c509_buf_free(&items);
            return NOT_SPECIFIC;
        }
        if (*count == 0)
            *first = uri;
        cb_text(&items, (const char *)uri.val, uri.len);
        (*count)++;
    }
    if (*count == 1)
        cb_text(out, (const char *)first->val, first->len);
    else if (*count > 1)
        put_array(out, *count, &items);
    c509_buf_free(&items);
    return *count > 0 ? VTPMCA_OK : NOT_SPECIFIC;
}

static vtpmca_err enc_ext_crl_dp(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, simple_uri = {0};
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    bool simple = false; /* one point with one URI and nothing else */
    vtpmca_err err = VTPMCA_OK;
    der_cur c = der_inside(&seq);
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv dp, dpn, full, reasons, issuer;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &dp))
            break;
        der_cur d = der_inside(&dp);
        if (!der_get(&d, DER_CTX_CONS(0), &dpn) ||
            !single(dpn.val, dpn.len, DER_CTX_CONS(0), &full))
            break; /* no fullName (absent, or nameRelativeToCRLIssuer) */
        cb_array(&items, 3);
        size_t uris;
        if (enc_full_name(der_inside(&full), &items, &simple_uri, &uris) != VTPMCA_OK)
            break;
        bool has_reasons = der_get(&d, DER_CTX(1), &reasons);
        uint64_t bits;
        if (has_reasons && !der_named_bits(&reasons, &bits))
            break;
        if (has_reasons)
            cb_uint(&items, bits);
        else
            cb_null(&items);
        bool has_issuer = der_get(&d, DER_CTX_CONS(2), &issuer);
        if (has_issuer) {
            der_tlv dir, name;
            if (!single(issuer.val, issuer.len, DER_CTX_CONS(4), &dir) ||
                !single(dir.val, dir.len, DER_SEQ, &name))
                break;
            c509_ctx quiet = *ctx;
            quiet.diag = NULL;
            if (enc_name(&quiet, &name, &items) != VTPMCA_OK)
                break;
        } else {
            cb_null(&items);
        }
        if (!der_done(&d))
            break;
        simple = count == 0 && uris == 1 && !has_reasons && !has_issuer;
        count++;
        err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK && count == 1 && simple)
        cb_text(out, (const char *)simple_uri.val, simple_uri.len);
    else if (err == VTPMCA_OK && count > 0)
        put_array(out, count, &items);
    else
        err = NOT_SPECIFIC;
    c509_buf_free(&items);
    return err;
}

/* An OID as the registry's int when it has one, else ~oid. */
static vtpmca_err enc_registered_oid(c509_registry reg, const der_tlv *oid, c509_buf *out)
{
    if (oid->tag != DER_OID || !c509_oid_valid(oid->val, oid->len))
        return NOT_SPECIFIC;
    const c509_oid_entry *e = c509_reg_by_oid(reg, oid->val, oid->len);
    if (e != NULL)
        cb_int(out, e->code);
    else
        cb_bytes(out, oid->val, oid->len);
    return VTPMCA_OK;
}

static vtpmca_err enc_policy_qualifiers(const der_tlv *quals, c509_buf *out)
{
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(quals);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv pqi, id, q, text;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &pqi))
            break;
        der_cur p = der_inside(&pqi);
        if (!der_get(&p, DER_OID, &id) || !der_next(&p, &q) || !der_done(&p))
            break;
        const c509_oid_entry *e = c509_reg_by_oid(C509_REG_PQ, id.val, id.len);
        if (e == NULL)
            break; /* the qualifier's syntax is unknown: cannot be carried as text */
        if (e->code == C509_CERT_POLICY_QUALIFIER_CPS) {
            if (q.tag != DER_IA5 || !c509_ascii_valid(q.val, q.len))
                break;
            text = q;
        } else {
            /* UserNotice with explicitText only, as UTF8String */
            if (q.tag != DER_SEQ || !single(q.val, q.len, DER_UTF8, &text) ||
                !c509_utf8_valid(text.val, text.len))
                break;
        }
        cb_int(&items, e->code);
        cb_text(&items, (const char *)text.val, text.len);
        count++;
        err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_policies(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv info, oid, quals;
        if (!der_get(&c, DER_SEQ, &info)) {
            err = NOT_SPECIFIC;
            break;
        }
        der_cur i = der_inside(&info);
        if (!der_get(&i, DER_OID, &oid)) {
            err = NOT_SPECIFIC;
            break;
        }
        err = enc_registered_oid(C509_REG_CP, &oid, &items);
        if (err == VTPMCA_OK && der_done(&i))
            cb_array(&items, 0);
        else if (err == VTPMCA_OK && der_get(&i, DER_SEQ, &quals) && der_done(&i))
            err = enc_policy_qualifiers(&quals, &items);
        else
            err = NOT_SPECIFIC;
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_aki(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, id, issuer, serial;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    der_cur c = der_inside(&seq);
    if (!der_get(&c, DER_CTX(0), &id))
        return NOT_SPECIFIC;
    if (der_done(&c)) {
        cb_bytes(out, id.val, id.len);
        return VTPMCA_OK;
    }
    const uint8_t *mag;
    size_t mag_len;
    if (!der_get(&c, DER_CTX_CONS(1), &issuer) || !der_get(&c, DER_CTX(2), &serial) ||
        !der_done(&c) || !der_unsigned(&serial, &mag, &mag_len))
        return NOT_SPECIFIC;
    cb_array(out, 3);
    cb_bytes(out, id.val, id.len);
    vtpmca_err err = enc_general_names(ctx, der_inside(&issuer), false, out);
    cb_bytes(out, mag, mag_len);
    return err;
}

static vtpmca_err enc_ext_eku(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv oid;
        err = der_next(&c, &oid) ? enc_registered_oid(C509_REG_EKU, &oid, &items) : NOT_SPECIFIC;
        count++;
    }
    if (err == VTPMCA_OK && count == 1)
        c509_buf_put(out, items.data, items.len);
    else if (err == VTPMCA_OK)
        put_array(out, count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_info_access(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv ad, method, uri;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &ad))
            break;
        der_cur a = der_inside(&ad);
        if (!der_get(&a, DER_OID, &method) || !der_get(&a, DER_CTX(6), &uri) || !der_done(&a) ||
            !c509_ascii_valid(uri.val, uri.len))
            break;
        err = enc_registered_oid(C509_REG_IA, &method, &items);
        cb_text(&items, (const char *)uri.val, uri.len);
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_dir_attributes(c509_ctx *ctx, const uint8_t *der, size_t len,
                                         c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv attr, oid, set, v;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &attr))
            break;
        der_cur a = der_inside(&attr);
        if (!der_get(&a, DER_OID, &oid) || !der_get(&a, DER_SET, &set) || !der_done(&a) ||
            set.len == 0 || !c509_oid_valid(oid.val, oid.len))
            break;
        /* the attribute's code can be used when every value has the same text sign */
        const c509_attr_entry *ae = c509_attr_by_oid(oid.val, oid.len);
        int sign = 0;
        size_t nvalues = 0;
        bool ok = true;
        der_cur s = der_inside(&set);
        while (ok && !der_done(&s)) {
            ok = der_next(&s, &v);
            int vs = ok ? attr_text_sign(ctx, ae, &v) : 0;
            if (nvalues == 0)
                sign = vs;
            else if (vs != sign)
                sign = 0;
            nvalues++;
        }
        if (!ok)
            break;
        if (sign != 0)
            cb_int(&items, sign * (int64_t)ae->e.code);
        else
            cb_bytes(&items, oid.val, oid.len);
        cb_array(&items, nvalues);
        s = der_inside(&set);
        while (der_next(&s, &v)) {
            if (sign != 0)
                enc_special_text(&items, v.val, v.len);
            else
                cb_bytes(&items, v.tlv, v.tlv_len);
        }
        count++;
        err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_subtrees(c509_ctx *ctx, der_cur *c, int tag, c509_buf *out)
{
    der_tlv trees;
    if (!der_get(c, tag, &trees)) {
        cb_null(out);
        return VTPMCA_OK;
    }
    c509_buf items = {0};
    size_t count = 0;
    der_cur t = der_inside(&trees);
    vtpmca_err err = der_done(&t) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&t)) {
        der_tlv subtree, base;
        /* minimum and maximum are not carried: only a lone base */
        if (!der_get(&t, DER_SEQ, &subtree) || !der_is_single_tlv(subtree.val, subtree.len)) {
            err = NOT_SPECIFIC;
            break;
        }
        der_cur s = der_inside(&subtree);
        der_next(&s, &base);
        err = enc_general_name(ctx, &base, true, &items);
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_name_constraints(c509_ctx *ctx, const uint8_t *der, size_t len,
                                           c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    der_cur c = der_inside(&seq);
    cb_array(out, 2);
    vtpmca_err err = enc_subtrees(ctx, &c, DER_CTX_CONS(0), out);
    if (err == VTPMCA_OK)
        err = enc_subtrees(ctx, &c, DER_CTX_CONS(1), out);
    return err == VTPMCA_OK && der_done(&c) ? VTPMCA_OK : NOT_SPECIFIC;
}

static vtpmca_err enc_ext_policy_mappings(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv map, from, to;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &map))
            break;
        der_cur m = der_inside(&map);
        if (!der_get(&m, DER_OID, &from) || !der_get(&m, DER_OID, &to) || !der_done(&m))
            break;
        err = enc_registered_oid(C509_REG_CP, &from, &items);
        if (err == VTPMCA_OK)
            err = enc_registered_oid(C509_REG_CP, &to, &items);
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_policy_constraints(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, t;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    der_cur c = der_inside(&seq);
    cb_array(out, 2);
    for (int i = 0; i < 2; i++) {
        uint64_t v;
        if (!der_get(&c, DER_CTX(i), &t)) {
            cb_null(out);
            continue;
        }
        if (!der_u64(&t, &v))
            return NOT_SPECIFIC;
        cb_uint(out, v);
    }
    return der_done(&c) ? VTPMCA_OK : NOT_SPECIFIC;
}

static vtpmca_err enc_ext_uint(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv n;
    uint64_t v;
    if (!single(der, len, DER_INTEGER, &n) || !der_u64(&n, &v))
        return NOT_SPECIFIC;
    cb_uint(out, v);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_null(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv n;
    if (!single(der, len, DER_NULL, &n) || n.len != 0)
        return NOT_SPECIFIC;
    cb_null(out);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_tls_features(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, n;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        uint64_t v;
        if (der_get(&c, DER_INTEGER, &n) && der_u64(&n, &v))
            cb_uint(&items, v);
        else
            err = NOT_SPECIFIC;
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, count, &items);
    c509_buf_free(&items);
    return err;
}

/* Signed difference cur - prev as a CBOR int (|difference| < 2^64). */
static void cb_delta(c509_buf *out, uint64_t cur, uint64_t prev)
{
    if (cur >= prev)
        cb_uint(out, cur - prev);
    else
        cb_negint(out, prev - cur - 1);
}

/* An RFC 3779 IPAddress BIT STRING as the integer (unusedBits + 1) || value. */
static bool ip_as_int(const der_tlv *bits, uint64_t *v)
{
    if (bits->tag != DER_BIT_STRING || bits->len == 0 || bits->len > 8 || bits->val[0] > 7)
        return false;
    uint64_t x = bits->val[0] + 1u;
    for (size_t i = 1; i < bits->len; i++)
        x = (x << 8) | bits->val[i];
    *v = x;
    return true;
}

/* One family's addressesOrRanges: int form (deltas) when every address fits 8 octets as
 * unusedBits||value, byte-string form otherwise. */
static vtpmca_err enc_ip_choice(const der_tlv *choice, c509_buf *out)
{
    bool fits = true;
    der_cur c = der_inside(choice);
    der_tlv e, lo, hi;
    while (!der_done(&c)) {
        if (!der_next(&c, &e))
            return NOT_SPECIFIC;
        if (e.tag == DER_BIT_STRING) {
            fits = fits && e.len <= 8;
        } else {
            der_cur r = der_inside(&e);
            if (e.tag != DER_SEQ || !der_get(&r, DER_BIT_STRING, &lo) ||
                !der_get(&r, DER_BIT_STRING, &hi) || !der_done(&r))
                return NOT_SPECIFIC;
            fits = fits && lo.len <= 8 && hi.len <= 8;
        }
    }
    c509_buf items = {0};
    size_t count = 0;
    uint64_t prev = 0;
    vtpmca_err err = VTPMCA_OK;
    c = der_inside(choice);
    while (err == VTPMCA_OK && der_next(&c, &e)) {
        der_tlv addr[2];
        size_t n = 1;
        addr[0] = e;
        if (e.tag == DER_SEQ) {
            der_cur r = der_inside(&e);
            der_next(&r, &addr[0]);
            der_next(&r, &addr[1]);
            n = 2;
            cb_array(&items, 2);
        }
        for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
            uint64_t v;
            if (addr[i].len == 0 || addr[i].val[0] > 7 || (addr[i].len == 1 && addr[i].val[0]))
                err = NOT_SPECIFIC;
            else if (!fits)
                cb_bytes(&items, addr[i].val, addr[i].len);
            else if (!ip_as_int(&addr[i], &v))
                err = NOT_SPECIFIC;
            else if (count == 0 && i == 0)
                cb_uint(&items, v);
            else
                cb_delta(&items, v, prev);
            if (fits && err == VTPMCA_OK)
                ip_as_int(&addr[i], &prev);
        }
        count++;
    }
    if (err == VTPMCA_OK && count > 0)
        put_array(out, count, &items);
    else
        err = NOT_SPECIFIC;
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_ip_blocks(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    der_cur c = der_inside(&seq);
    vtpmca_err err = der_done(&c) ? NOT_SPECIFIC : VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv fam, afi, choice;
        err = NOT_SPECIFIC;
        if (!der_get(&c, DER_SEQ, &fam))
            break;
        der_cur f = der_inside(&fam);
        if (!der_get(&f, DER_OCTET_STRING, &afi) || afi.len < 2 || afi.len > 3 ||
            !der_next(&f, &choice) || !der_done(&f))
            break;
        cb_uint(&items, (uint64_t)afi.val[0] << 8 | afi.val[1]);
        if (afi.len == 3)
            cb_uint(&items, afi.val[2]);
        else
            cb_null(&items);
        if (choice.tag == DER_NULL && choice.len == 0) {
            cb_null(&items); /* inherit */
            err = VTPMCA_OK;
        } else if (choice.tag == DER_SEQ) {
            err = enc_ip_choice(&choice, &items);
        }
        count++;
    }
    if (err == VTPMCA_OK)
        put_array(out, 3 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_as_ids(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, asnum, choice, e, lo, hi;
    if (!single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    /* only asnum: rdi cannot be carried */
    if (!single(seq.val, seq.len, DER_CTX_CONS(0), &asnum) ||
        !der_is_single_tlv(asnum.val, asnum.len))
        return NOT_SPECIFIC;
    der_cur a = der_inside(&asnum);
    der_next(&a, &choice);
    if (choice.tag == DER_NULL && choice.len == 0) {
        cb_null(out);
        return VTPMCA_OK;
    }
    if (choice.tag != DER_SEQ || choice.len == 0)
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    uint64_t prev = 0;
    vtpmca_err err = VTPMCA_OK;
    der_cur c = der_inside(&choice);
    while (err == VTPMCA_OK && der_next(&c, &e)) {
        der_tlv ids[2] = {e};
        size_t n = 1;
        if (e.tag == DER_SEQ) {
            der_cur r = der_inside(&e);
            if (!der_get(&r, DER_INTEGER, &lo) || !der_get(&r, DER_INTEGER, &hi) || !der_done(&r)) {
                err = NOT_SPECIFIC;
                break;
            }
            ids[0] = lo;
            ids[1] = hi;
            n = 2;
            cb_array(&items, 2);
        } else if (e.tag != DER_INTEGER) {
            err = NOT_SPECIFIC;
            break;
        }
        for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
            uint64_t v;
            /* deltas are unsigned: the RFC 3779 ascending order is required */
            if (!der_u64(&ids[i], &v) || v > UINT32_MAX || (count + i > 0 && v < prev))
                err = NOT_SPECIFIC;
            else
                cb_uint(&items, count + i == 0 ? v : v - prev);
            prev = v;
        }
        count++;
    }
    if (err == VTPMCA_OK && der_done(&c))
        put_array(out, count, &items);
    else
        err = NOT_SPECIFIC;
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_value(c509_ctx *ctx, int code, const uint8_t *der, size_t len,
                                c509_buf *out)
{
    switch (code) {
    case C509_EXT_CODE_SKI:
        return enc_ext_ski(der, len, out);
    case C509_EXT_CODE_KU:
        return enc_ext_key_usage(der, len, out);
    case C509_EXT_CODE_SAN:
    case C509_EXT_CODE_IAN:
        return enc_ext_alt_name(ctx, der, len, out);
    case C509_EXT_CODE_BC:
        return enc_ext_basic_constraints(der, len, out);
    case C509_EXT_CODE_CRLDP:
    case C509_EXT_CODE_FRESHEST_CRL:
        return enc_ext_crl_dp(ctx, der, len, out);
    case C509_EXT_CODE_CP:
        return enc_ext_policies(der, len, out);
    case C509_EXT_CODE_AKI:
        return enc_ext_aki(ctx, der, len, out);
    case C509_EXT_CODE_EKU:
        return enc_ext_eku(der, len, out);
    case C509_EXT_CODE_AIA:
    case C509_EXT_CODE_SIA:
        return enc_ext_info_access(der, len, out);
    case C509_EXT_CODE_SDA:
        return enc_ext_dir_attributes(ctx, der, len, out);
    case C509_EXT_CODE_NC:
        return enc_ext_name_constraints(ctx, der, len, out);
    case C509_EXT_CODE_PM:
        return enc_ext_policy_mappings(der, len, out);
    case C509_EXT_CODE_PC:
        return enc_ext_policy_constraints(der, len, out);
    case C509_EXT_CODE_INHIBIT_ANY:
        return enc_ext_uint(der, len, out);
    case C509_EXT_CODE_IP_ADDR:
    case C509_EXT_CODE_IP_ADDR_V2:
        return enc_ext_ip_blocks(der, len, out);
    case C509_EXT_CODE_AS_IDS:
    case C509_EXT_CODE_AS_IDS_V2:
        return enc_ext_as_ids(der, len, out);
    case C509_EXT_CODE_OCSP_NOCHECK:
    case C509_EXT_CODE_PRECERT_SIGNING:
        return enc_ext_null(der, len, out);
    case C509_EXT_CODE_TLS_FEATURE:
        return enc_ext_tls_features(der, len, out);
    default:
        return NOT_SPECIFIC;
    }
}

/* The specific encoding of a registered extension, kept only if the decoder rebuilds the
 * same extnValue from it. */
static vtpmca_err enc_ext_checked(c509_ctx *ctx, int code, const uint8_t *der, size_t len,
                                  c509_buf *value)
{
    c509_ctx quiet = *ctx;
    quiet.diag = NULL;
    vtpmca_err err = enc_ext_value(&quiet, code, der, len, value);
    if (value->oom)
        return VTPMCA_ERR_NOMEM;
    if (err != VTPMCA_OK)
        return NOT_SPECIFIC;
    cbor_item_t *item = NULL;
    err = c509_cbor_load(value->data, value->len, &item, NULL);
    c509_buf rebuilt = {0};
    if (err == VTPMCA_OK)
        err = c509_ext_value_to_der(&quiet, code, item, &rebuilt);
    if (err == VTPMCA_OK && (rebuilt.len != len || memcmp(rebuilt.data, der, len) != 0))
        err = NOT_SPECIFIC;
    if (rebuilt.oom)
        err = VTPMCA_ERR_NOMEM;
    c509_buf_free(&rebuilt);
    if (item != NULL)
        cbor_decref(&item);
    if (err == VTPMCA_ERR_NOMEM)
        return err;
    return err == VTPMCA_OK ? VTPMCA_OK : NOT_SPECIFIC;
}

/* Extensions: [ * (id, value) ], or a lone keyUsage as one int. */
static vtpmca_err enc_extensions(c509_ctx *ctx, const c509_parts *parts, c509_buf *out)
{
    if (!parts->has_exts) {
        cb_array(out, 0);
        return VTPMCA_OK;
    }
    c509_buf items = {0};
    size_t count = 0;
    bool lone_ku = false; /* the first extension is keyUsage with its specific encoding */
    uint64_t ku_value = 0;
    bool ku_critical = false;
    vtpmca_err err = VTPMCA_OK;
    der_cur c = der_inside(&parts->exts);
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv ext, oid, crit, val;
        if (!der_get(&c, DER_SEQ, &ext)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed Extension");
            break;
        }
        der_cur e = der_inside(&ext);
        bool critical = false;
        if (!der_get(&e, DER_OID, &oid) || !c509_oid_valid(oid.val, oid.len)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed extension OID");
            break;
        }
        if (der_get(&e, DER_BOOLEAN, &crit)) {
            if (crit.len != 1 || crit.val[0] != 0xff) {
                err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                                  "extension critical flag is not DER (TRUE is 0xff, FALSE "
                                  "is omitted)");
                break;
            }
            critical = true;
        }
        if (!der_get(&e, DER_OCTET_STRING, &val) || !der_done(&e)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed Extension");
            break;
        }
        const c509_oid_entry *reg = c509_reg_by_oid(C509_REG_EXT, oid.val, oid.len);
        c509_buf value = {0};
        err =
            reg != NULL ? enc_ext_checked(ctx, reg->code, val.val, val.len, &value) : NOT_SPECIFIC;
        if (err == VTPMCA_OK) {
            cb_int(&items, critical ? -(int64_t)reg->code : reg->code);
            c509_buf_put(&items, value.data, value.len);
            if (count == 0 && reg->code == C509_EXT_CODE_KU) {
                lone_ku = true;
                cbor_item_t *item = NULL;
                if (c509_cbor_load(value.data, value.len, &item, NULL) == VTPMCA_OK)
                    cbi_uint(item, &ku_value);
                if (item != NULL)
                    cbor_decref(&item);
                ku_critical = critical;
            }
        } else if (err == NOT_SPECIFIC) {
            err = VTPMCA_OK;
            cb_bytes(&items, oid.val, oid.len);
            if (critical)
                cb_array(&items, 1);
            cb_bytes(&items, val.val, val.len);
        }
        c509_buf_free(&value);
        count++;
    }
    if (err == VTPMCA_OK && count == 0)
        err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "empty extensions (must hold one or more)");
    if (err == VTPMCA_OK) {
        if (count == 1 && lone_ku)
            cb_int(out, ku_critical ? -(int64_t)ku_value : (int64_t)ku_value);
        else
            put_array(out, 2 * count, &items);
    }
    c509_buf_free(&items);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Certificate */

static vtpmca_err parse_time(c509_ctx *ctx, der_cur *c, const char *what, uint64_t *out)
{
    der_tlv t;
    int year;
    if (!der_next(c, &t) || !c509_der_time(&t, out, &year))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                           "%s is not a DER UTCTime or GeneralizedTime in seconds with 'Z'", what);
    if (year < 1970)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                           "%s is before 1970 (C509 times are unsigned)", what);
    if ((year < 2050) != (t.tag == DER_UTCTIME))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_UNSUPPORTED,
                           "%s uses %s for year %d, against RFC 5280: cannot be rebuilt", what,
                           t.tag == DER_UTCTIME ? "UTCTime" : "GeneralizedTime", year);
    return VTPMCA_OK;
}

static bool alg_id_valid(const der_tlv *alg)
{
    der_cur c = der_inside(alg);
    der_tlv oid, params;
    if (!der_get(&c, DER_OID, &oid) || !c509_oid_valid(oid.val, oid.len))
        return false;
    return der_done(&c) || (der_next(&c, &params) && der_done(&c));
}

vtpmca_err c509_parse_x509(c509_ctx *ctx, const uint8_t *der, size_t len, c509_parts *parts,
                           const uint8_t **sig_bits, size_t *sig_len)
{
    memset(parts, 0, sizeof(*parts));
    vtpmca_diag *diag = ctx->diag;
    der_cur c = der_cursor(der, len);
    der_tlv cert, tbs, alg, bits;
    if (!der_get(&c, DER_SEQ, &cert))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "not a strict-DER certificate (outer SEQUENCE: bad header or length)");
    if (!der_done(&c))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%zu bytes after the certificate", c.len);
    der_cur in = der_inside(&cert);
    if (!der_get(&in, DER_SEQ, &tbs) || !der_get(&in, DER_SEQ, &alg) ||
        !der_get(&in, DER_BIT_STRING, &bits) || !der_done(&in))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "malformed Certificate (tbsCertificate, signatureAlgorithm, "
                           "signatureValue)");
    if (bits.len == 0 || bits.val[0] != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "signature BIT STRING has unused bits");
    *sig_bits = bits.val + 1;
    *sig_len = bits.len - 1;

    der_cur t = der_inside(&tbs);
    der_tlv version, vint, serial, validity;
    if (!der_get(&t, DER_CTX_CONS(0), &version))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "X.509 v1 certificate (no version field): C509 carries v3 only");
    uint64_t v;
    if (!single(version.val, version.len, DER_INTEGER, &vint) || !der_u64(&vint, &v))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed version field");
    if (v != 2)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "X.509 v%llu certificate: C509 carries v3 only",
                           (unsigned long long)v + 1);
    if (!der_get(&t, DER_INTEGER, &serial))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed serial number");
    if (serial.len > 0 && (serial.val[0] & 0x80) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "negative serial number (C509 serials are unsigned)");
    if (!der_unsigned(&serial, &parts->serial, &parts->serial_len))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "serial number is not a minimal DER INTEGER");
    if (parts->serial_len > C509_MAX_SERIAL)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "serial number longer than %d bytes",
                           C509_MAX_SERIAL);
    if (!der_get(&t, DER_SEQ, &parts->sig_alg) || !alg_id_valid(&parts->sig_alg))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed signature AlgorithmIdentifier");
    if (parts->sig_alg.tlv_len != alg.tlv_len ||
        memcmp(parts->sig_alg.tlv, alg.tlv, alg.tlv_len) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "signature algorithms of TBSCertificate and Certificate differ");
    if (!der_get(&t, DER_SEQ, &parts->issuer))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed issuer name");
    if (!der_get(&t, DER_SEQ, &validity))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed validity");
    der_cur vc = der_inside(&validity);
    vtpmca_err err = parse_time(ctx, &vc, "notBefore", &parts->not_before);
    if (err == VTPMCA_OK)
        err = parse_time(ctx, &vc, "notAfter", &parts->not_after);
    if (err != VTPMCA_OK)
        return err;
    if (!der_done(&vc))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed validity");
    if (!der_get(&t, DER_SEQ, &parts->subject))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed subject name");
    if (!der_get(&t, DER_SEQ, &parts->spki))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed subjectPublicKeyInfo");
    if (der_peek(&t, DER_CTX(1)) || der_peek(&t, DER_CTX(2)) || der_peek(&t, DER_CTX_CONS(1)) ||
        der_peek(&t, DER_CTX_CONS(2)))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "issuerUniqueID / subjectUniqueID are not supported by C509");
    der_tlv exts;
    if (der_get(&t, DER_CTX_CONS(3), &exts)) {
        if (!single(exts.val, exts.len, DER_SEQ, &parts->exts))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed extensions field");
        parts->has_exts = true;
    }
    if (!der_done(&t))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unexpected field at the end of TBSCertificate");
    return VTPMCA_OK;
}

vtpmca_err c509_encode_tbs(c509_ctx *ctx, const c509_parts *parts, c509_buf *out)
{
    cb_uint(out, (uint64_t)ctx->type);
    cb_bytes(out, parts->serial, parts->serial_len);
    const c509_sig_entry *sig = c509_sig_by_der(parts->sig_alg.tlv, parts->sig_alg.tlv_len);
    vtpmca_err err = VTPMCA_OK;
    if (sig != NULL)
        cb_int(out, sig->code);
    else
        err = enc_alg_generic(ctx, &parts->sig_alg, out);
    if (err != VTPMCA_OK)
        return err;
    if (parts->issuer.tlv_len == parts->subject.tlv_len &&
        memcmp(parts->issuer.tlv, parts->subject.tlv, parts->issuer.tlv_len) == 0)
        cb_null(out);
    else if ((err = enc_name(ctx, &parts->issuer, out)) != VTPMCA_OK)
        return err;
    cb_uint(out, parts->not_before);
    if (parts->not_after == C509_NO_EXPIRY)
        cb_null(out);
    else
        cb_uint(out, parts->not_after);
    err = enc_name(ctx, &parts->subject, out);
    if (err == VTPMCA_OK)
        err = enc_spki(ctx, &parts->spki, out);
    if (err == VTPMCA_OK)
        err = enc_extensions(ctx, parts, out);
    if (err == VTPMCA_OK)
        err = c509_buf_status(out, ctx->diag);
    return err;
}

vtpmca_err c509_ecdsa_der_to_raw(const uint8_t *der, size_t len, size_t half, c509_buf *out,
                                 vtpmca_diag *diag)
{
    der_tlv seq, r, s;
    const uint8_t *rm, *sm;
    size_t rl, sl;
    if (!single(der, len, DER_SEQ, &seq))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ECDSA signature is not a DER ECDSA-Sig-Value");
    der_cur c = der_inside(&seq);
    if (!der_get(&c, DER_INTEGER, &r) || !der_get(&c, DER_INTEGER, &s) || !der_done(&c) ||
        !der_unsigned(&r, &rm, &rl) || !der_unsigned(&s, &sm, &sl))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ECDSA signature is not a DER ECDSA-Sig-Value");
    size_t longest = rl > sl ? rl : sl;
    if (half == 0) {
        /* the issuer's curve is not in the certificate: the smallest NIST order size that
         * holds both (the decoder only splits in halves, so DER is rebuilt either way) */
        static const size_t sizes[] = {32, 48, 66};
        half = longest;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            if (longest <= sizes[i]) {
                half = sizes[i];
                break;
            }
    }
    if (longest > half || half == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ECDSA signature value longer than the curve");
    uint8_t zeros[128] = {0};
    if (half > sizeof(zeros))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "ECDSA curve too large");
    c509_buf_put(out, zeros, half - rl);
    c509_buf_put(out, rm, rl);
    c509_buf_put(out, zeros, half - sl);
    c509_buf_put(out, sm, sl);
    return c509_buf_status(out, diag);
}

vtpmca_err c509_encode_signature(c509_ctx *ctx, const c509_parts *parts, const uint8_t *sig,
                                 size_t len, c509_buf *out)
{
    const c509_sig_entry *e = c509_sig_by_der(parts->sig_alg.tlv, parts->sig_alg.tlv_len);
    if (e == NULL || e->kind != C509_SIGK_ECDSA) {
        cb_bytes(out, sig, len);
        return c509_buf_status(out, ctx->diag);
    }
    size_t half = ctx->ecdsa_half;
    if (half == 0 && parts->issuer.tlv_len == parts->subject.tlv_len &&
        memcmp(parts->issuer.tlv, parts->subject.tlv, parts->issuer.tlv_len) == 0) {
        /* self-issued: the signer's curve is probably the subject's */
        der_cur c = der_inside(&parts->spki);
        der_tlv alg;
        if (der_get(&c, DER_SEQ, &alg)) {
            const c509_pk_entry *pk = c509_pk_by_der(alg.tlv, alg.tlv_len);
            if (pk != NULL && pk->kind == C509_PKK_EC)
                half = pk->order_size;
        }
    }
    c509_buf raw = {0};
    vtpmca_err err = c509_ecdsa_der_to_raw(sig, len, half, &raw, ctx->diag);
    if (err == VTPMCA_ERR_PARSE && half != 0) {
        c509_buf_free(&raw);
        err = c509_ecdsa_der_to_raw(sig, len, 0, &raw, ctx->diag);
    }
    if (err == VTPMCA_OK)
        cb_bytes(out, raw.data, raw.len);
    c509_buf_free(&raw);
    return err == VTPMCA_OK ? c509_buf_status(out, ctx->diag) : err;
}

/* ------------------------------------------------------------------------------------ */
/* Natively signed certificates: the X.509-equivalent DER of a c509_tbs, which the
 * transcoder above turns into the type 2 TBS items. */

#define C509_MAX_NATIVE_ITEMS 256 /* attributes per name, names, extensions, URIs, ... */

static vtpmca_err put_oid(c509_ctx *ctx, c509_buf *out, int tag, const char *oid, const char *what,
                          size_t idx)
{
    c509_buf content = {0};
    vtpmca_err err = c509_oid_from_text(oid, &content, NULL);
    if (err == VTPMCA_ERR_INVALID_ARG)
        err = vtpmca_fail(ctx->diag, err, "%s %zu: \"%.64s\" is not a dotted OID", what, idx,
                          oid != NULL ? oid : "(null)");
    else if (err != VTPMCA_OK)
        err = vtpmca_fail(ctx->diag, err, "out of memory");
    else
        der_put(out, tag, content.data, content.len);
    c509_buf_free(&content);
    return err;
}

static vtpmca_err check_count(c509_ctx *ctx, const void *items, size_t count, bool need_one,
                              const char *what)
{
    if (count > C509_MAX_NATIVE_ITEMS)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_LIMIT, "%s: more than %d entries", what,
                           C509_MAX_NATIVE_ITEMS);
    if ((count > 0 && items == NULL) || (need_one && count == 0))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG, "%s: missing entries", what);
    return VTPMCA_OK;
}

static vtpmca_err put_ascii(c509_ctx *ctx, c509_buf *out, int tag, const char *text,
                            const char *what, size_t idx)
{
    if (text == NULL || !c509_ascii_valid((const uint8_t *)text, strlen(text)))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG, "%s %zu: missing or not ASCII", what,
                           idx);
    der_put(out, tag, (const uint8_t *)text, strlen(text));
    return VTPMCA_OK;
}

static vtpmca_err build_name(c509_ctx *ctx, const c509_name *name, const char *what, c509_buf *out)
{
    vtpmca_err err = check_count(ctx, name->attrs, name->count, false, what);
    size_t mark = der_open(out);
    for (size_t i = 0; err == VTPMCA_OK && i < name->count; i++) {
        const c509_attr *a = &name->attrs[i];
        size_t set = der_open(out);
        size_t atv = der_open(out);
        size_t oid_at = out->len;
        err = put_oid(ctx, out, DER_OID, a->oid, what, i);
        if (err != VTPMCA_OK)
            break;
        if ((a->text == NULL) == (a->der_value == NULL)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                              "%s attribute %zu: give either text or der_value", what, i);
            break;
        }
        der_cur oc = der_cursor(out->data + oid_at, out->len - oid_at);
        der_tlv oid;
        der_next(&oc, &oid);
        const c509_attr_entry *e = c509_attr_by_oid(oid.val, oid.len);
        if (a->text != NULL) {
            size_t n = strlen(a->text);
            bool ia5 = e != NULL && e->ia5_only;
            if (ia5 ? !c509_ascii_valid((const uint8_t *)a->text, n)
                    : !c509_utf8_valid((const uint8_t *)a->text, n)) {
                err = vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                                  "%s attribute %zu: text is not valid %s", what, i,
                                  ia5 ? "ASCII" : "UTF-8");
                break;
            }
            der_put(out, ia5 ? DER_IA5 : DER_UTF8, (const uint8_t *)a->text, n);
        } else if (der_is_single_tlv(a->der_value, a->der_value_len)) {
            c509_buf_put(out, a->der_value, a->der_value_len);
        } else {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                              "%s attribute %zu: der_value is not one DER TLV", what, i);
            break;
        }
        der_close(out, atv, DER_SEQ);
        der_close(out, set, DER_SET);
    }
    der_close(out, mark, DER_SEQ);
    return err;
}

static vtpmca_err build_general_name(c509_ctx *ctx, const c509_general_name *gn, size_t idx,
                                     c509_buf *out)
{
    static const char what[] = "general name";
    size_t mark = der_open(out);
    vtpmca_err err = VTPMCA_OK;
    switch (gn->type) {
    case C509_GN_EMAIL:
        return put_ascii(ctx, out, DER_CTX(1), gn->text, what, idx);
    case C509_GN_DNS:
        return put_ascii(ctx, out, DER_CTX(2), gn->text, what, idx);
    case C509_GN_URI:
        return put_ascii(ctx, out, DER_CTX(6), gn->text, what, idx);
    case C509_GN_IP:
        if (gn->bytes == NULL || (gn->bytes_len != 4 && gn->bytes_len != 16))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "general name %zu: an IP address has 4 or 16 bytes", idx);
        der_put(out, DER_CTX(7), gn->bytes, gn->bytes_len);
        return VTPMCA_OK;
    case C509_GN_REGISTERED_ID:
        return put_oid(ctx, out, DER_CTX(8), gn->oid, what, idx);
    case C509_GN_DIRECTORY_NAME:
        err = build_name(ctx, &gn->dir_name, "directoryName", out);
        der_close(out, mark, DER_CTX_CONS(4));
        return err;
    case C509_GN_OTHER_NAME:
    case C509_GN_HW_MODULE_NAME:
        break;
    default:
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG, "general name %zu: unknown type",
                           idx);
    }
    if (gn->bytes == NULL || gn->bytes_len == 0)
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG, "general name %zu: missing bytes",
                           idx);
    if (gn->type == C509_GN_OTHER_NAME) {
        if (!der_is_single_tlv(gn->bytes, gn->bytes_len))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "general name %zu: otherName value is not one DER TLV", idx);
        err = put_oid(ctx, out, DER_OID, gn->oid, what, idx);
        size_t value = der_open(out);
        c509_buf_put(out, gn->bytes, gn->bytes_len);
        der_close(out, value, DER_CTX_CONS(0));
    } else {
        const c509_oid_entry *hw = c509_reg_by_code(C509_REG_OTHER_NAME, C509_GN_CODE_HW_MODULE);
        der_put(out, DER_OID, hw->oid, hw->oid_len);
        size_t value = der_open(out);
        size_t seq = der_open(out);
        err = put_oid(ctx, out, DER_OID, gn->oid, what, idx);
        der_put(out, DER_OCTET_STRING, gn->bytes, gn->bytes_len);
        der_close(out, seq, DER_SEQ);
        der_close(out, value, DER_CTX_CONS(0));
    }
    der_close(out, mark, DER_CTX_CONS(0));
    return err;
}

/* extnValue of a structured extension; *code is its C509 extension code (0 for DER). */
static vtpmca_err build_ext_value(c509_ctx *ctx, const c509_ext *x, size_t idx, int *code,
                                  c509_buf *out)
{
    vtpmca_err err = VTPMCA_OK;
    size_t mark = der_open(out);
    switch (x->kind) {
    case C509_EXT_DER:
        *code = 0;
        if (x->der_value == NULL || !der_is_single_tlv(x->der_value, x->der_value_len))
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "extension %zu: der_value is not one DER TLV", idx);
        c509_buf_put(out, x->der_value, x->der_value_len);
        return VTPMCA_OK;
    case C509_EXT_SUBJECT_KEY_ID:
    case C509_EXT_AUTHORITY_KEY_ID:
        *code = x->kind == C509_EXT_SUBJECT_KEY_ID ? C509_EXT_CODE_SKI : C509_EXT_CODE_AKI;
        if (x->key_id == NULL || x->key_id_len == 0)
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "extension %zu: missing key identifier", idx);
        if (x->kind == C509_EXT_SUBJECT_KEY_ID) {
            der_put(out, DER_OCTET_STRING, x->key_id, x->key_id_len);
        } else {
            der_put(out, DER_CTX(0), x->key_id, x->key_id_len);
            der_close(out, mark, DER_SEQ);
        }
        return VTPMCA_OK;
    case C509_EXT_KEY_USAGE:
        *code = C509_EXT_CODE_KU;
        if (x->key_usage == 0 || x->key_usage > 0x1ff)
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "extension %zu: key usage 0x%x is not a non-empty set of RFC "
                               "5280 bits",
                               idx, (unsigned)x->key_usage);
        der_put_named_bits(out, DER_BIT_STRING, x->key_usage);
        return VTPMCA_OK;
    case C509_EXT_SUBJECT_ALT_NAME:
        *code = C509_EXT_CODE_SAN;
        err = check_count(ctx, x->names, x->name_count, true, "subjectAltName");
        for (size_t i = 0; err == VTPMCA_OK && i < x->name_count; i++)
            err = build_general_name(ctx, &x->names[i], i, out);
        break;
    case C509_EXT_BASIC_CONSTRAINTS:
        *code = C509_EXT_CODE_BC;
        if (!x->ca && x->path_len >= 0)
            return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                               "extension %zu: a path length needs cA TRUE", idx);
        if (x->ca) {
            static const uint8_t true_value = 0xff;
            der_put(out, DER_BOOLEAN, &true_value, 1);
        }
        if (x->path_len >= 0)
            der_put_u64(out, DER_INTEGER, (uint64_t)x->path_len);
        break;
    case C509_EXT_CRL_DISTRIBUTION_POINTS:
        *code = C509_EXT_CODE_CRLDP;
        err = check_count(ctx, x->uris, x->uri_count, true, "cRLDistributionPoints");
        for (size_t i = 0; err == VTPMCA_OK && i < x->uri_count; i++) {
            size_t dp = der_open(out), dpn = der_open(out), full = der_open(out);
            err = put_ascii(ctx, out, DER_CTX(6), x->uris[i], "CRL URI", i);
            der_close(out, full, DER_CTX_CONS(0));
            der_close(out, dpn, DER_CTX_CONS(0));
            der_close(out, dp, DER_SEQ);
        }
        break;
    case C509_EXT_EXT_KEY_USAGE:
        *code = C509_EXT_CODE_EKU;
        err = check_count(ctx, x->oids, x->oid_count, true, "extKeyUsage");
        for (size_t i = 0; err == VTPMCA_OK && i < x->oid_count; i++)
            err = put_oid(ctx, out, DER_OID, x->oids[i], "key purpose", i);
        break;
    case C509_EXT_AUTHORITY_INFO_ACCESS:
        *code = C509_EXT_CODE_AIA;
        err = check_count(ctx, x->access, x->access_count, true, "authorityInfoAccess");
        for (size_t i = 0; err == VTPMCA_OK && i < x->access_count; i++) {
            size_t ad = der_open(out);
            err = put_oid(ctx, out, DER_OID, x->access[i].method_oid, "access method", i);
            if (err == VTPMCA_OK)
                err = put_ascii(ctx, out, DER_CTX(6), x->access[i].uri, "access URI", i);
            der_close(out, ad, DER_SEQ);
        }
        break;
    default:
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG, "extension %zu: unknown kind", idx);
    }
    der_close(out, mark, DER_SEQ);
    return err;
}

static vtpmca_err build_extensions(c509_ctx *ctx, const c509_tbs *tbs, c509_buf *out)
{
    vtpmca_err err = check_count(ctx, tbs->exts, tbs->ext_count, false, "extensions");
    size_t mark = der_open(out);
    for (size_t i = 0; err == VTPMCA_OK && i < tbs->ext_count; i++) {
        const c509_ext *x = &tbs->exts[i];
        size_t ext = der_open(out);
        c509_buf value = {0};
        int code = 0;
        err = build_ext_value(ctx, x, i, &code, &value);
        if (err == VTPMCA_OK && code == 0) {
            err = put_oid(ctx, out, DER_OID, x->oid, "extension", i);
        } else if (err == VTPMCA_OK) {
            const c509_oid_entry *reg = c509_reg_by_code(C509_REG_EXT, code);
            der_put(out, DER_OID, reg->oid, reg->oid_len);
        }
        if (x->critical) {
            static const uint8_t true_value = 0xff;
            der_put(out, DER_BOOLEAN, &true_value, 1);
        }
        der_put(out, DER_OCTET_STRING, value.data, value.len);
        if (value.oom)
            out->oom = true;
        c509_buf_free(&value);
        der_close(out, ext, DER_SEQ);
    }
    der_close(out, mark, DER_SEQ);
    return err;
}

vtpmca_err c509_parts_from_tbs(c509_ctx *ctx, const c509_tbs *tbs, c509_parts *parts,
                               c509_buf *owned)
{
    memset(parts, 0, sizeof(*parts));
    vtpmca_diag *diag = ctx->diag;
    if (tbs->serial == NULL || tbs->serial_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing serial number");
    parts->serial = tbs->serial;
    parts->serial_len = tbs->serial_len;
    while (parts->serial_len > 0 && parts->serial[0] == 0) {
        parts->serial++;
        parts->serial_len--;
    }
    if (parts->serial_len > C509_MAX_SERIAL)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "serial number longer than %d bytes",
                           C509_MAX_SERIAL);
    if (tbs->not_before > C509_MAX_TIME || tbs->not_after > C509_MAX_TIME ||
        tbs->not_before > tbs->not_after)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "validity must satisfy notBefore <= notAfter <= 9999-12-31T23:59:59Z");
    if (tbs->subject_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing subject key");
    const c509_sig_entry *sig = c509_sig_by_code(tbs->sig_alg);
    if (sig == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "unknown signature algorithm");
    parts->not_before = tbs->not_before;
    parts->not_after = tbs->not_after;

    /* Pieces go into owned one after the other; their addresses are taken at the end,
     * once owned no longer moves. */
    size_t at_issuer, at_subject, at_spki, at_exts;
    c509_buf_put(owned, sig->der, sig->der_len);
    at_issuer = owned->len;
    vtpmca_err err = build_name(ctx, &tbs->issuer, "issuer", owned);
    at_subject = owned->len;
    if (err == VTPMCA_OK)
        err = build_name(ctx, &tbs->subject, "subject", owned);
    at_spki = owned->len;
    if (err == VTPMCA_OK) {
        int n = i2d_PUBKEY(tbs->subject_key, NULL);
        unsigned char *p;
        if (n <= 0) {
            ERR_clear_error();
            err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "cannot encode the subject key");
        } else if (c509_buf_reserve(owned, (size_t)n)) {
            p = owned->data + owned->len;
            if (i2d_PUBKEY(tbs->subject_key, &p) == n)
                owned->len += (size_t)n;
            else
                err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the subject key");
        }
    }
    at_exts = owned->len;
    if (err == VTPMCA_OK && tbs->ext_count > 0) {
        err = build_extensions(ctx, tbs, owned);
        parts->has_exts = true;
    }
    if (err == VTPMCA_OK)
        err = c509_buf_status(owned, diag);
    if (err != VTPMCA_OK)
        return err;
    der_cur c = der_cursor(owned->data, owned->len);
    der_next(&c, &parts->sig_alg);
    c = der_cursor(owned->data + at_issuer, at_subject - at_issuer);
    der_next(&c, &parts->issuer);
    c = der_cursor(owned->data + at_subject, at_spki - at_subject);
    der_next(&c, &parts->subject);
    c = der_cursor(owned->data + at_spki, at_exts - at_spki);
    if (!der_get(&c, DER_SEQ, &parts->spki))
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "subject key encoding is not DER");
    if (parts->has_exts) {
        c = der_cursor(owned->data + at_exts, owned->len - at_exts);
        der_next(&c, &parts->exts);
    }
    return VTPMCA_OK;
}
