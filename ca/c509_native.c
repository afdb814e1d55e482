/* Natively signed C509 certificates: the X.509-equivalent DER of a c509_tbs (names,
 * general names, the structured extensions of the EK and IAK profiles), which
 * c509_encode_tbs then turns into the type 2 TBS items, so both certificate types share one
 * encoding of every field. Caller mistakes fail with VTPMCA_ERR_INVALID_ARG and a diag
 * naming the field. */
#include "c509_internal.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define C509_MAX_NATIVE_ITEMS 256 /* attributes per name, names, extensions, URIs, ... */

/* The content octets of a dotted OID given by the caller. */
static vtpmca_err oid_content(c509_ctx *ctx, const char *oid, const char *what, size_t idx,
                              c509_buf *content)
{
    vtpmca_err err = c509_oid_from_text(oid, content, NULL);
    if (err == VTPMCA_ERR_INVALID_ARG)
        return vtpmca_fail(ctx->diag, err, "%s %zu: \"%.64s\" is not a dotted OID", what, idx,
                           oid != NULL ? oid : "(null)");
    if (err != VTPMCA_OK)
        return vtpmca_fail(ctx->diag, err, "out of memory");
    return VTPMCA_OK;
}

static vtpmca_err put_oid(c509_ctx *ctx, c509_buf *out, int tag, const char *oid, const char *what,
                          size_t idx)
{
    c509_buf content = {0};
    vtpmca_err err = oid_content(ctx, oid, what, idx, &content);
    if (err == VTPMCA_OK)
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
        c509_buf oid = {0};
        err = oid_content(ctx, a->oid, what, i, &oid);
        if (err != VTPMCA_OK)
            break;
        der_put(out, DER_OID, oid.data, oid.len);
        const c509_attr_entry *e = c509_attr_by_oid(oid.data, oid.len);
        c509_buf_free(&oid);
        if ((a->text == NULL) == (a->der_value == NULL)) {
            err = vtpmca_fail(ctx->diag, VTPMCA_ERR_INVALID_ARG,
                              "%s attribute %zu: give either text or der_value", what, i);
            break;
        }
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
