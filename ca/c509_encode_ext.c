/* C509 encoding of extensions (draft-ietf-cose-cbor-encoded-cert, "Encoding of
 * Extensions"): every registered extension value the draft can express gets its specific
 * encoding, kept only when the decoder rebuilds the exact extnValue from it; anything else
 * is carried as (~oid, bytes), or (~oid, [bytes]) when critical. */
#include "c509_internal.h"

#include <string.h>

/* Returned by the value encoders when the specific encoding cannot express a value: the
 * extension is then carried as (~oid, bytes). */
#define NOT_SPECIFIC VTPMCA_ERR_UNSUPPORTED

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
        if (!der_single(gn->val, gn->len, DER_SEQ, &name))
            return NOT_SPECIFIC;
        cb_int(out, C509_GN_CODE_DIRECTORY);
        c509_ctx quiet = *ctx;
        quiet.diag = NULL;
        return c509_enc_name(&quiet, &name, out) == VTPMCA_OK ? VTPMCA_OK : NOT_SPECIFIC;
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

/* The content of an extension value that must be one non-empty SEQUENCE. */
static bool ext_nonempty_seq(const uint8_t *der, size_t len, der_cur *content)
{
    der_tlv seq;
    if (!der_single(der, len, DER_SEQ, &seq))
        return false;
    *content = der_inside(&seq);
    return !der_done(content);
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
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Extension values (each returns NOT_SPECIFIC when its encoding cannot carry the value) */

static vtpmca_err enc_ext_ski(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv id;
    if (!der_single(der, len, DER_OCTET_STRING, &id))
        return NOT_SPECIFIC;
    cb_bytes(out, id.val, id.len);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_key_usage(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv bits;
    uint64_t v;
    /* no bits set: invalid (RFC 5280) and ambiguous in the single-int form */
    if (!der_single(der, len, DER_BIT_STRING, &bits) || !der_named_bits(&bits, &v) || v == 0)
        return NOT_SPECIFIC;
    cb_uint(out, v);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_alt_name(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, gn;
    if (!der_single(der, len, DER_SEQ, &seq))
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
    if (!der_single(der, len, DER_SEQ, &seq))
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
        cb_put_array(out, *count, &items);
    c509_buf_free(&items);
    return *count > 0 ? VTPMCA_OK : NOT_SPECIFIC;
}

static vtpmca_err enc_ext_crl_dp(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, simple_uri = {0};
    if (!der_single(der, len, DER_SEQ, &seq))
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
            !der_single(dpn.val, dpn.len, DER_CTX_CONS(0), &full))
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
            if (!der_single(issuer.val, issuer.len, DER_CTX_CONS(4), &dir) ||
                !der_single(dir.val, dir.len, DER_SEQ, &name))
                break;
            c509_ctx quiet = *ctx;
            quiet.diag = NULL;
            if (c509_enc_name(&quiet, &name, &items) != VTPMCA_OK)
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
        cb_put_array(out, count, &items);
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
            if (q.tag != DER_SEQ || !der_single(q.val, q.len, DER_UTF8, &text) ||
                !c509_utf8_valid(text.val, text.len))
                break;
        }
        cb_int(&items, e->code);
        cb_text(&items, (const char *)text.val, text.len);
        count++;
        err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK)
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_policies(const uint8_t *der, size_t len, c509_buf *out)
{
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
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
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_aki(c509_ctx *ctx, const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, id, issuer, serial;
    if (!der_single(der, len, DER_SEQ, &seq))
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
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv oid;
        err = der_next(&c, &oid) ? enc_registered_oid(C509_REG_EKU, &oid, &items) : NOT_SPECIFIC;
        count++;
    }
    if (err == VTPMCA_OK && count == 1)
        c509_buf_put(out, items.data, items.len);
    else if (err == VTPMCA_OK)
        cb_put_array(out, count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_info_access(const uint8_t *der, size_t len, c509_buf *out)
{
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
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
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_dir_attributes(c509_ctx *ctx, const uint8_t *der, size_t len,
                                         c509_buf *out)
{
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
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
            int vs = ok ? c509_attr_text_sign(ctx, ae, &v) : 0;
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
                c509_enc_special_text(&items, v.val, v.len);
            else
                cb_bytes(&items, v.tlv, v.tlv_len);
        }
        count++;
        err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK)
        cb_put_array(out, 2 * count, &items);
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
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_name_constraints(c509_ctx *ctx, const uint8_t *der, size_t len,
                                           c509_buf *out)
{
    der_tlv seq;
    if (!der_single(der, len, DER_SEQ, &seq))
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
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
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
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_policy_constraints(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, t;
    if (!der_single(der, len, DER_SEQ, &seq))
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
    if (!der_single(der, len, DER_INTEGER, &n) || !der_u64(&n, &v))
        return NOT_SPECIFIC;
    cb_uint(out, v);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_null(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv n;
    if (!der_single(der, len, DER_NULL, &n) || n.len != 0)
        return NOT_SPECIFIC;
    cb_null(out);
    return VTPMCA_OK;
}

static vtpmca_err enc_ext_tls_features(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, n;
    if (!der_single(der, len, DER_SEQ, &seq))
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
        cb_put_array(out, count, &items);
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

/* The IPAddress BIT STRINGs of one IPAddressOrRange: a prefix, or a range's min and max. */
static size_t ip_addresses(const der_tlv *entry, der_tlv addr[2])
{
    if (entry->tag == DER_BIT_STRING) {
        addr[0] = *entry;
        return 1;
    }
    der_cur r = der_inside(entry);
    if (entry->tag == DER_SEQ && der_get(&r, DER_BIT_STRING, &addr[0]) &&
        der_get(&r, DER_BIT_STRING, &addr[1]) && der_done(&r))
        return 2;
    return 0;
}

/* One family's addressesOrRanges: the int form (the first address absolute, the others as
 * deltas) when every unusedBits || value fits 8 octets, the byte-string form otherwise. */
static vtpmca_err enc_ip_choice(const der_tlv *choice, c509_buf *out)
{
    bool fits = true;
    der_cur c = der_inside(choice);
    der_tlv e, addr[2];
    while (!der_done(&c)) {
        size_t n = der_next(&c, &e) ? ip_addresses(&e, addr) : 0;
        if (n == 0)
            return NOT_SPECIFIC;
        for (size_t i = 0; i < n; i++) {
            /* unusedBits is 0..7, and 0 when there is no value octet */
            if (addr[i].len == 0 || addr[i].val[0] > 7 || (addr[i].len == 1 && addr[i].val[0]))
                return NOT_SPECIFIC;
            fits = fits && addr[i].len <= 8;
        }
    }
    c509_buf items = {0};
    size_t count = 0;
    uint64_t prev = 0;
    c = der_inside(choice);
    while (der_next(&c, &e)) {
        size_t n = ip_addresses(&e, addr);
        if (n == 2)
            cb_array(&items, 2);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = addr[i].val[0] + 1u; /* (unusedBits + 1) || value */
            for (size_t k = 1; k < addr[i].len; k++)
                v = (v << 8) | addr[i].val[k];
            if (!fits)
                cb_bytes(&items, addr[i].val, addr[i].len);
            else if (count == 0 && i == 0)
                cb_uint(&items, v);
            else
                cb_delta(&items, v, prev);
            prev = v;
        }
        count++;
    }
    vtpmca_err err = count > 0 ? VTPMCA_OK : NOT_SPECIFIC;
    if (err == VTPMCA_OK)
        cb_put_array(out, count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_ip_blocks(const uint8_t *der, size_t len, c509_buf *out)
{
    der_cur c;
    if (!ext_nonempty_seq(der, len, &c))
        return NOT_SPECIFIC;
    c509_buf items = {0};
    size_t count = 0;
    vtpmca_err err = VTPMCA_OK;
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
        cb_put_array(out, 3 * count, &items);
    c509_buf_free(&items);
    return err;
}

static vtpmca_err enc_ext_as_ids(const uint8_t *der, size_t len, c509_buf *out)
{
    der_tlv seq, asnum, choice, e, lo, hi;
    if (!der_single(der, len, DER_SEQ, &seq))
        return NOT_SPECIFIC;
    /* only asnum: rdi cannot be carried */
    if (!der_single(seq.val, seq.len, DER_CTX_CONS(0), &asnum) ||
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
        cb_put_array(out, count, &items);
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

/* One Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }. */
static vtpmca_err read_extension(c509_ctx *ctx, der_cur *c, der_tlv *oid, bool *critical,
                                 der_tlv *value)
{
    der_tlv ext, flag;
    if (!der_get(c, DER_SEQ, &ext))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed Extension");
    der_cur e = der_inside(&ext);
    if (!der_get(&e, DER_OID, oid) || !c509_oid_valid(oid->val, oid->len))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed extension OID");
    *critical = der_get(&e, DER_BOOLEAN, &flag);
    if (*critical && (flag.len != 1 || flag.val[0] != 0xff))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE,
                           "extension critical flag is not DER (TRUE is 0xff, FALSE is omitted)");
    if (!der_get(&e, DER_OCTET_STRING, value) || !der_done(&e))
        return vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "malformed Extension");
    return VTPMCA_OK;
}

/* One extension as (id, value): (+-code, specific value) when possible, else (~oid, bytes)
 * or (~oid, [bytes]) when critical. *code is the code used, 0 for the ~oid form. */
static vtpmca_err enc_extension(c509_ctx *ctx, const der_tlv *oid, bool critical,
                                const der_tlv *value, c509_buf *out, int *code)
{
    const c509_oid_entry *reg = c509_reg_by_oid(C509_REG_EXT, oid->val, oid->len);
    c509_buf specific = {0};
    vtpmca_err err = reg != NULL
                         ? enc_ext_checked(ctx, reg->code, value->val, value->len, &specific)
                         : NOT_SPECIFIC;
    *code = 0;
    if (err == VTPMCA_OK) {
        *code = reg->code;
        cb_int(out, critical ? -(int64_t)reg->code : reg->code);
        c509_buf_put(out, specific.data, specific.len);
    } else if (err == NOT_SPECIFIC) {
        err = VTPMCA_OK;
        cb_bytes(out, oid->val, oid->len);
        if (critical)
            cb_array(out, 1);
        cb_bytes(out, value->val, value->len);
    }
    c509_buf_free(&specific);
    return err;
}

vtpmca_err c509_encode_extensions(c509_ctx *ctx, const c509_parts *parts, c509_buf *out)
{
    if (!parts->has_exts) {
        cb_array(out, 0); /* omitted extensions are an empty array */
        return VTPMCA_OK;
    }
    c509_buf items = {0};
    size_t count = 0;
    int first_code = 0;
    bool first_critical = false;
    der_tlv first_value = {0};
    vtpmca_err err = VTPMCA_OK;
    der_cur c = der_inside(&parts->exts);
    while (err == VTPMCA_OK && !der_done(&c)) {
        der_tlv oid = {0}, value = {0};
        bool critical = false;
        int code = 0;
        err = read_extension(ctx, &c, &oid, &critical, &value);
        if (err == VTPMCA_OK)
            err = enc_extension(ctx, &oid, critical, &value, &items, &code);
        if (count++ == 0) {
            first_code = code;
            first_critical = critical;
            first_value = value;
        }
    }
    if (err == VTPMCA_OK && count == 0)
        err = vtpmca_fail(ctx->diag, VTPMCA_ERR_PARSE, "empty extensions (must hold one or more)");
    der_tlv bits;
    uint64_t ku;
    if (err == VTPMCA_OK && count == 1 && first_code == C509_EXT_CODE_KU &&
        der_single(first_value.val, first_value.len, DER_BIT_STRING, &bits) &&
        der_named_bits(&bits, &ku))
        /* a lone keyUsage is one int: its value, with the sign of criticality */
        cb_int(out, first_critical ? -(int64_t)ku : (int64_t)ku);
    else if (err == VTPMCA_OK)
        cb_put_array(out, 2 * count, &items);
    c509_buf_free(&items);
    return err;
}
