/* C509 encoding: X.509 DER -> C509 CBOR, certificate level (structure and strict-DER checks,
 * names, algorithms, keys, validity, signature). Type 3 re-encodes a strict-DER certificate;
 * type 2 runs the same transcoder on the X.509-equivalent DER that c509_native.c builds, so
 * both types share one encoding of every field. Extensions: c509_encode_ext.c. */
#include "c509_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "vtpmca/encoding.h"

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
void c509_enc_special_text(c509_buf *out, const uint8_t *s, size_t n)
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
        cb_tag(out, C509_TAG_MAC_ADDRESS);
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
int c509_attr_text_sign(const c509_ctx *ctx, const c509_attr_entry *a, const der_tlv *v)
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
    int sign = c509_attr_text_sign(ctx, a, val);
    *utf8_cn = false;
    if (sign != 0) {
        cb_int(out, sign * (int64_t)a->e.code);
        c509_enc_special_text(out, val->val, val->len);
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
vtpmca_err c509_enc_name(c509_ctx *ctx, const der_tlv *name, c509_buf *out)
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
            c509_enc_special_text(out, cn_value.val, cn_value.len);
        else
            cb_put_array(out, 2 * count, &items);
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
        if (!der_single(key, key_len, DER_SEQ, &rsa))
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
    if (!der_single(version.val, version.len, DER_INTEGER, &vint) || !der_u64(&vint, &v))
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
        if (!der_single(exts.val, exts.len, DER_SEQ, &parts->exts))
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
    else if ((err = c509_enc_name(ctx, &parts->issuer, out)) != VTPMCA_OK)
        return err;
    cb_uint(out, parts->not_before);
    if (parts->not_after == C509_NO_EXPIRY)
        cb_null(out);
    else
        cb_uint(out, parts->not_after);
    err = c509_enc_name(ctx, &parts->subject, out);
    if (err == VTPMCA_OK)
        err = enc_spki(ctx, &parts->spki, out);
    if (err == VTPMCA_OK)
        err = c509_encode_extensions(ctx, parts, out);
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
    if (!der_single(der, len, DER_SEQ, &seq))
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
