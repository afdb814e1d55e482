/* Strict DER reading (see der.h): TLV framing by OpenSSL's ASN1_get_object plus the DER rules
 * it does not enforce, and the whole-encoding check of certificates and CRLs the CA signs
 * (ca_check_cert_der / ca_check_crl_der of vtpmca/ca_keys.h). */
#include "der.h"

#include <limits.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>

#include "vtpmca/ca_keys.h"

/* Deepest nesting accepted: certificates need about 10 levels (directoryName SANs). */
#define DER_MAX_DEPTH 32

/* ---- reading ---- */

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

bool der_single(const uint8_t *der, size_t len, int tag, der_tlv *out)
{
    der_cur c = der_cursor(der, len);
    return der_get(&c, tag, out) && der_done(&c);
}

/* ---- whole-encoding checks ---- */

typedef struct {
    const uint8_t *base; /* the checked encoding, so that failures name a byte offset */
    vtpmca_diag *diag;
} der_walk;

static vtpmca_err walk_fail(const der_walk *w, const uint8_t *at, const char *rule)
{
    return vtpmca_fail(w->diag, VTPMCA_ERR_PARSE, "not strict DER at byte %zu: %s",
                       (size_t)(at - w->base), rule);
}

static bool all_digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
    }
    return true;
}

/* Two's complement in the fewest octets: no leading 00 before a clear sign bit, no leading
 * FF before a set one. */
static bool integer_minimal(const der_tlv *t)
{
    if (t->len == 0)
        return false;
    if (t->len == 1)
        return true;
    bool sign = (t->val[1] & 0x80) != 0;
    return !((t->val[0] == 0x00 && !sign) || (t->val[0] == 0xff && sign));
}

/* First octet: unused bits 0..7 (0 when empty), and those bits of the last octet are 0. */
static bool bit_string_valid(const der_tlv *t)
{
    if (t->len == 0 || t->val[0] > 7)
        return false;
    if (t->len == 1)
        return t->val[0] == 0;
    return (t->val[t->len - 1] & ((1u << t->val[0]) - 1)) == 0;
}

/* Sub-identifiers in base 128 with no leading 0x80 octet, the last one complete. */
static bool oid_valid(const der_tlv *t)
{
    bool at_start = true;
    for (size_t i = 0; i < t->len; i++) {
        if (at_start && t->val[i] == 0x80)
            return false;
        at_start = (t->val[i] & 0x80) == 0;
    }
    return t->len > 0 && at_start;
}

/* RFC 5280 4.1.2.5: YYMMDDHHMMSSZ and YYYYMMDDHHMMSSZ, seconds present, no fraction. */
static bool time_valid(const der_tlv *t, size_t digits)
{
    return t->len == digits + 1 && all_digits(t->val, digits) && t->val[digits] == 'Z';
}

/* X.690 11.6: SET OF encodings compare as octet strings, the shorter padded with zeros. */
static int compare_padded(const der_tlv *a, const der_tlv *b)
{
    size_t common = a->tlv_len < b->tlv_len ? a->tlv_len : b->tlv_len;
    int c = memcmp(a->tlv, b->tlv, common);
    if (c != 0)
        return c;
    const der_tlv *longer = a->tlv_len > b->tlv_len ? a : b;
    for (size_t i = common; i < longer->tlv_len; i++) {
        if (longer->tlv[i] != 0)
            return longer == a ? 1 : -1;
    }
    return 0;
}

static vtpmca_err walk_list(const der_walk *w, const uint8_t *p, size_t len, int depth,
                            bool ordered);

static vtpmca_err check_primitive(const der_walk *w, const der_tlv *t)
{
    if ((t->tlv[0] & 0xc0) != 0)
        return VTPMCA_OK; /* an IMPLICIT tag hides the type: only the framing is checkable */
    switch (t->tag) {
    case 0x00:
        return walk_fail(w, t->tlv, "end-of-contents octets in a definite-length encoding");
    case DER_BOOLEAN:
        return t->len == 1 && (t->val[0] == 0x00 || t->val[0] == 0xff)
                   ? VTPMCA_OK
                   : walk_fail(w, t->tlv, "BOOLEAN is not one octet 00 or FF");
    case DER_INTEGER:
    case DER_ENUMERATED:
        return integer_minimal(t) ? VTPMCA_OK
                                  : walk_fail(w, t->tlv, "INTEGER/ENUMERATED is not minimal");
    case DER_BIT_STRING:
        return bit_string_valid(t) ? VTPMCA_OK
                                   : walk_fail(w, t->tlv, "BIT STRING unused bits are not zero");
    case DER_NULL:
        return t->len == 0 ? VTPMCA_OK : walk_fail(w, t->tlv, "NULL has content");
    case DER_OID:
        return oid_valid(t) ? VTPMCA_OK : walk_fail(w, t->tlv, "OBJECT IDENTIFIER is not minimal");
    case DER_UTCTIME:
        return time_valid(t, 12) ? VTPMCA_OK : walk_fail(w, t->tlv, "UTCTime is not YYMMDDHHMMSSZ");
    case DER_GENTIME:
        return time_valid(t, 14) ? VTPMCA_OK
                                 : walk_fail(w, t->tlv, "GeneralizedTime is not YYYYMMDDHHMMSSZ");
    case DER_SEQ & ~0x20: /* SEQUENCE and SET without the constructed bit */
    case DER_SET & ~0x20:
        return walk_fail(w, t->tlv, "SEQUENCE/SET in primitive form");
    default:
        return VTPMCA_OK; /* OCTET STRING and character strings: any content */
    }
}

static vtpmca_err check_tlv(const der_walk *w, const der_tlv *t, int depth)
{
    bool constructed = (t->tlv[0] & 0x20) != 0;
    if (!constructed)
        return check_primitive(w, t);
    /* DER encodes strings primitively: only SEQUENCE and SET are constructed universally. */
    if ((t->tlv[0] & 0xc0) == 0 && t->tag != DER_SEQ && t->tag != DER_SET)
        return walk_fail(w, t->tlv, "constructed encoding of a primitive type");
    if (depth >= DER_MAX_DEPTH)
        return vtpmca_fail(w->diag, VTPMCA_ERR_LIMIT, "DER nested deeper than %d at byte %zu",
                           DER_MAX_DEPTH, (size_t)(t->tlv - w->base));
    return walk_list(w, t->val, t->len, depth + 1, t->tag == DER_SET);
}

/* Checks every TLV of p[0..len) and, for a SET, that they are in ascending order. */
static vtpmca_err walk_list(const der_walk *w, const uint8_t *p, size_t len, int depth,
                            bool ordered)
{
    der_cur c = der_cursor(p, len);
    der_tlv prev = {0}, t;
    while (!der_done(&c)) {
        if (!der_next(&c, &t))
            return walk_fail(w, c.p, "bad header, or a length that is not minimal or overruns");
        vtpmca_err err = check_tlv(w, &t, depth);
        if (err != VTPMCA_OK)
            return err;
        if (ordered && prev.tlv != NULL && compare_padded(&prev, &t) > 0)
            return walk_fail(w, t.tlv, "SET OF elements are not in ascending order");
        prev = t;
    }
    return VTPMCA_OK;
}

/* Exactly one element in p[0..len), strict at every level. */
static vtpmca_err walk_one(const der_walk *w, const uint8_t *p, size_t len, int depth,
                           const char *what)
{
    der_cur c = der_cursor(p, len);
    der_tlv t;
    const char *rule = NULL;
    if (!der_next(&c, &t))
        rule = "bad header, or a length that is not minimal or overruns";
    else if (!der_done(&c))
        rule = "bytes after its one element";
    if (rule != NULL)
        return vtpmca_fail(w->diag, VTPMCA_ERR_PARSE, "not strict DER at byte %zu: %s: %s",
                           (size_t)(p - w->base), what, rule);
    return check_tlv(w, &t, depth);
}

/* id-ce-keyUsage (2.5.29.15): a named bit list, so DER also drops its trailing zero bits. */
static const uint8_t OID_KEY_USAGE[] = {0x55, 0x1d, 0x0f};

/* Extensions ::= SEQUENCE SIZE (1..MAX) OF SEQUENCE { extnID, critical BOOLEAN DEFAULT
 * FALSE, extnValue OCTET STRING }; the tree itself was walked already. */
static vtpmca_err check_extensions(const der_walk *w, const der_tlv *exts)
{
    der_cur list = der_inside(exts);
    if (exts->tag != DER_SEQ || der_done(&list))
        return walk_fail(w, exts->tlv, "extensions are not a non-empty SEQUENCE");
    while (!der_done(&list)) {
        der_tlv ext, oid, critical, value, bits;
        der_cur fields;
        if (!der_get(&list, DER_SEQ, &ext))
            return walk_fail(w, list.p, "an extension is not a SEQUENCE");
        fields = der_inside(&ext);
        if (!der_get(&fields, DER_OID, &oid))
            return walk_fail(w, ext.tlv, "an extension has no extnID");
        if (der_get(&fields, DER_BOOLEAN, &critical) && critical.val[0] != 0xff)
            return walk_fail(w, critical.tlv, "critical FALSE is the DEFAULT and must be omitted");
        if (!der_get(&fields, DER_OCTET_STRING, &value) || !der_done(&fields))
            return walk_fail(w, ext.tlv, "an extension is not {extnID, critical, extnValue}");
        vtpmca_err err = walk_one(w, value.val, value.len, 1, "an extnValue");
        if (err != VTPMCA_OK)
            return err;
        uint64_t named = 0;
        if (oid.len == sizeof(OID_KEY_USAGE) &&
            memcmp(oid.val, OID_KEY_USAGE, sizeof(OID_KEY_USAGE)) == 0 &&
            (!der_single(value.val, value.len, DER_BIT_STRING, &bits) ||
             !der_named_bits(&bits, &named)))
            return walk_fail(w, value.val, "keyUsage is not a BIT STRING without trailing zeros");
    }
    return VTPMCA_OK;
}

/* rsaEncryption (1.2.840.113549.1.1.1) and the ecdsa-with-SHA2 arc (1.2.840.10045.4.3). */
static const uint8_t OID_RSA_ENCRYPTION[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t OID_ECDSA_WITH_SHA2[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03};

/* Whether an AlgorithmIdentifier's OID is oid (prefix: an arc of it). */
static bool algorithm_is(const der_tlv *alg, const uint8_t *oid, size_t len, bool prefix)
{
    der_cur c = der_inside(alg);
    der_tlv id;
    return der_get(&c, DER_OID, &id) && (prefix ? id.len > len : id.len == len) &&
           memcmp(id.val, oid, len) == 0;
}

/* A BIT STRING whose bits are themselves DER (an RSAPublicKey, an ECDSA-Sig-Value). */
static vtpmca_err check_der_bits(const der_walk *w, const der_tlv *bits, const char *what)
{
    if (bits->len < 2 || bits->val[0] != 0)
        return walk_fail(w, bits->tlv, "a BIT STRING holding DER has unused bits");
    return walk_one(w, bits->val + 1, bits->len - 1, 1, what);
}

/* The outer SEQUENCE { tbs SEQUENCE, signatureAlgorithm, signature } of a certificate or
 * CRL, walked whole (an ECDSA signature value too); fields receives the inside of tbs. */
static vtpmca_err check_signed(const der_walk *w, const uint8_t *der, size_t len, der_cur *fields)
{
    vtpmca_err err = walk_one(w, der, len, 0, "the encoding");
    if (err != VTPMCA_OK)
        return err;
    der_tlv outer = {0}, tbs, alg, sig;
    bool shaped = der_single(der, len, DER_SEQ, &outer);
    der_cur c = der_inside(&outer);
    if (!shaped || !der_get(&c, DER_SEQ, &tbs) || !der_get(&c, DER_SEQ, &alg) ||
        !der_get(&c, DER_BIT_STRING, &sig) || !der_done(&c))
        return walk_fail(w, der, "not SEQUENCE { tbs, signatureAlgorithm, signature }");
    if (algorithm_is(&alg, OID_ECDSA_WITH_SHA2, sizeof(OID_ECDSA_WITH_SHA2), true)) {
        err = check_der_bits(w, &sig, "the ECDSA signature");
        if (err != VTPMCA_OK)
            return err;
    }
    *fields = der_inside(&tbs);
    return VTPMCA_OK;
}

vtpmca_err ca_check_cert_der(const uint8_t *der, size_t len, vtpmca_diag *diag)
{
    if (der == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "DER check: no certificate");
    der_walk w = {der, diag};
    der_cur fields;
    vtpmca_err err = check_signed(&w, der, len, &fields);
    if (err != VTPMCA_OK)
        return err;
    /* TBSCertificate: version [0] EXPLICIT DEFAULT v1 (present only for v2 and v3), serial,
     * signature, issuer, validity, subject, subjectPublicKeyInfo, [1], [2], extensions [3]. */
    der_tlv field, version, skipped, spki, alg, key;
    if (der_get(&fields, DER_CTX_CONS(0), &field) &&
        (!der_single(field.val, field.len, DER_INTEGER, &version) ||
         (version.len == 1 && version.val[0] == 0)))
        return walk_fail(&w, field.tlv, "version is not a non-default INTEGER");
    bool shaped = der_get(&fields, DER_INTEGER, &skipped);
    for (int i = 0; shaped && i < 4; i++)
        shaped = der_get(&fields, DER_SEQ, &skipped);
    shaped = shaped && der_get(&fields, DER_SEQ, &spki);
    der_cur key_info = shaped ? der_inside(&spki) : der_cursor(NULL, 0);
    if (!shaped || !der_get(&key_info, DER_SEQ, &alg) || !der_get(&key_info, DER_BIT_STRING, &key))
        return walk_fail(&w, fields.p, "TBSCertificate lacks its fields up to the key");
    if (algorithm_is(&alg, OID_RSA_ENCRYPTION, sizeof(OID_RSA_ENCRYPTION), false))
        err = check_der_bits(&w, &key, "the RSA public key");
    while (err == VTPMCA_OK && der_next(&fields, &field)) {
        der_tlv exts;
        if (field.tag != DER_CTX_CONS(3))
            continue;
        err = der_single(field.val, field.len, DER_SEQ, &exts)
                  ? check_extensions(&w, &exts)
                  : walk_fail(&w, field.tlv, "[3] does not hold one Extensions SEQUENCE");
    }
    return err;
}

static bool skip_time(der_cur *c)
{
    der_tlv t;
    return der_get(c, DER_UTCTIME, &t) || der_get(c, DER_GENTIME, &t);
}

vtpmca_err ca_check_crl_der(const uint8_t *der, size_t len, vtpmca_diag *diag)
{
    if (der == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "DER check: no CRL");
    der_walk w = {der, diag};
    der_cur fields;
    vtpmca_err err = check_signed(&w, der, len, &fields);
    if (err != VTPMCA_OK)
        return err;
    /* TBSCertList: version INTEGER OPTIONAL (v2), signature, issuer, thisUpdate,
     * nextUpdate OPTIONAL, revokedCertificates OPTIONAL, crlExtensions [0] OPTIONAL. */
    der_tlv t, entries, entry, exts;
    if (der_get(&fields, DER_INTEGER, &t) && !(t.len == 1 && t.val[0] == 1))
        return walk_fail(&w, t.tlv, "a CRL version other than v2 is present");
    if (!der_get(&fields, DER_SEQ, &t) || !der_get(&fields, DER_SEQ, &t) || !skip_time(&fields))
        return walk_fail(&w, fields.p, "TBSCertList lacks its signature, issuer or thisUpdate");
    (void)skip_time(&fields);
    if (der_get(&fields, DER_SEQ, &entries)) {
        der_cur list = der_inside(&entries);
        while (err == VTPMCA_OK && der_get(&list, DER_SEQ, &entry)) {
            der_cur e = der_inside(&entry);
            if (!der_get(&e, DER_INTEGER, &t) || !skip_time(&e))
                return walk_fail(&w, entry.tlv, "a revoked entry lacks its serial or date");
            if (der_get(&e, DER_SEQ, &exts))
                err = check_extensions(&w, &exts);
            if (err == VTPMCA_OK && !der_done(&e))
                err = walk_fail(&w, e.p, "a revoked entry has extra fields");
        }
        if (err == VTPMCA_OK && !der_done(&list))
            err = walk_fail(&w, list.p, "a revoked entry is not a SEQUENCE");
    }
    if (err == VTPMCA_OK && der_get(&fields, DER_CTX_CONS(0), &t))
        err = der_single(t.val, t.len, DER_SEQ, &exts)
                  ? check_extensions(&w, &exts)
                  : walk_fail(&w, t.tlv, "[0] does not hold one Extensions SEQUENCE");
    if (err == VTPMCA_OK && !der_done(&fields))
        err = walk_fail(&w, fields.p, "TBSCertList has extra fields");
    return err;
}
