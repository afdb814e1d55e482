/* Unit tests for the strict-DER check of everything the CA signs (ca/der.c: ca_check_cert_der,
 * ca_check_crl_der, and ca_sign_cert / ca_sign_crl which apply them). Real EK, IAK and CA
 * certificates (ECDSA and RSA) and CRLs pass, agreeing with the independent walker of
 * tests/support; then each is taken apart into its TLV tree, one element is re-encoded
 * against one DER rule, and the check must refuse it naming the rule: long-form or
 * indefinite lengths, trailing bytes, non-minimal INTEGERs, BOOLEAN 01, unused BIT STRING
 * bits, keyUsage with trailing zero bits, NULL with content, non-minimal OIDs, times without
 * seconds or with fractions, constructed strings, primitive SEQUENCEs, SET OF out of order,
 * DEFAULT values present, and the same inside extension values, the RSA key and the ECDSA
 * signature. Finally ca_sign_cert / ca_sign_crl refuse (INTERNAL) an extension value that is
 * not DER, which a decode-and-re-encode comparison (shown here) does not notice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../support/ca_fixture.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/crl.h"
#include "vtpmca/ek_profile.h"

static struct {
    char tmp[64];
    ca_ctx *ca;     /* ECDSA P-384 */
    ca_ctx *rsa_ca; /* RSA-2048 issuing CA */
    EVP_PKEY *rsa_key, *ec_key;
} g;

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "ca-der") != 0)
        return -1;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/ca", g.tmp);
    g.ca = ca_fixture_make_ca(dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P384);
    snprintf(dir, sizeof(dir), "%s/rsa-ca", g.tmp);
    g.rsa_ca = ca_fixture_make_ca(dir, CA_KEY_ECDSA_P256, CA_KEY_RSA_2048);
    g.rsa_key = EVP_RSA_gen(2048);
    g.ec_key = EVP_EC_gen("P-256");
    return g.ca != NULL && g.rsa_ca != NULL && g.rsa_key != NULL && g.ec_key != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    ca_free(g.ca);
    ca_free(g.rsa_ca);
    EVP_PKEY_free(g.rsa_key);
    EVP_PKEY_free(g.ec_key);
    return ca_fixture_rmtree(g.tmp);
}

/* ---- a TLV tree to re-encode one element at a time ---- */

#define MAX_KIDS 32

typedef struct node {
    uint8_t tag;
    uint8_t *content; /* primitive content (or the raw content of a constructed node) */
    size_t content_len;
    struct node *kids[MAX_KIDS];
    size_t n_kids;
    bool parsed;         /* constructed, and kids hold its content */
    bool long_form;      /* long-form length even for a short content */
    size_t extra_length; /* leading zero octets added to a long-form length */
    bool indefinite;     /* 80 length and end-of-contents octets */
} node;

static void node_free(node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        node_free(n->kids[i]);
    free(n->content);
    free(n);
}

/* Parses exactly one element from p[0..len) (the inputs here are strict DER). */
static node *parse_one(const uint8_t *p, size_t len, size_t *used)
{
    assert_true(len >= 2);
    node *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    n->tag = p[0];
    assert_int_not_equal(n->tag & 0x1f, 0x1f); /* single-octet tags only */
    size_t i = 1, clen = 0;
    if (p[1] < 0x80) {
        clen = p[1];
        i = 2;
    } else {
        size_t octets = p[1] & 0x7f;
        assert_true(octets >= 1 && octets <= 4 && 2 + octets <= len);
        for (size_t k = 0; k < octets; k++)
            clen = (clen << 8) | p[2 + k];
        i = 2 + octets;
    }
    assert_true(clen <= len - i);
    n->content = malloc(clen + 1);
    assert_non_null(n->content);
    memcpy(n->content, p + i, clen);
    n->content_len = clen;
    if (n->tag & 0x20) {
        size_t off = 0;
        while (off < clen) {
            size_t k = 0;
            assert_true(n->n_kids < MAX_KIDS);
            n->kids[n->n_kids++] = parse_one(n->content + off, clen - off, &k);
            off += k;
        }
        n->parsed = true;
    }
    *used = i + clen;
    return n;
}

static node *parse(const uint8_t *der, size_t len)
{
    size_t used = 0;
    node *n = parse_one(der, len, &used);
    assert_int_equal(used, len);
    return n;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void encode(const node *n, buf *out)
{
    buf content = {0};
    if (n->parsed) {
        for (size_t i = 0; i < n->n_kids; i++)
            encode(n->kids[i], &content);
    } else {
        put(&content, n->content, n->content_len);
    }
    put(out, &n->tag, 1);
    if (n->indefinite) {
        uint8_t indef = 0x80, eoc[2] = {0, 0};
        put(out, &indef, 1);
        put(out, content.p, content.len);
        put(out, eoc, 2);
        free(content.p);
        return;
    }
    uint8_t len[16];
    if (content.len < 0x80 && !n->long_form) {
        len[0] = (uint8_t)content.len;
        put(out, len, 1);
    } else {
        size_t octets = 0;
        for (size_t v = content.len; v > 0; v >>= 8)
            octets++;
        octets = (octets == 0 ? 1 : octets) + n->extra_length;
        assert_true(octets < sizeof(len));
        len[0] = (uint8_t)(0x80 | octets);
        for (size_t k = 0; k < octets; k++) {
            size_t shift = 8 * (octets - 1 - k);
            len[1 + k] = shift < 8 * sizeof(size_t) ? (uint8_t)(content.len >> shift) : 0;
        }
        put(out, len, 1 + octets);
    }
    put(out, content.p, content.len);
    free(content.p);
}

/* The child at a path of indexes, ending with -1. */
static node *at(node *root, const int *path)
{
    node *n = root;
    for (const int *i = path; *i >= 0; i++) {
        assert_true(n->parsed && (size_t)*i < n->n_kids);
        n = n->kids[*i];
    }
    return n;
}

static void set_content(node *n, const uint8_t *content, size_t len)
{
    free(n->content);
    n->content = malloc(len + 1);
    assert_non_null(n->content);
    memcpy(n->content, content, len);
    n->content_len = len;
}

/* Inserts a new primitive child at index. */
static void insert_kid(node *parent, size_t index, uint8_t tag, const uint8_t *content, size_t len)
{
    assert_true(parent->parsed && parent->n_kids < MAX_KIDS && index <= parent->n_kids);
    node *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    n->tag = tag;
    set_content(n, content, len);
    memmove(&parent->kids[index + 1], &parent->kids[index],
            (parent->n_kids - index) * sizeof(parent->kids[0]));
    parent->kids[index] = n;
    parent->n_kids++;
}

/* Parses the content of a primitive node (an OCTET STRING, or a BIT STRING after skip
 * octets) as a tree, so that the inside can be changed; fold it back with fold_inner. */
static node *open_inner(node *n, size_t skip)
{
    return parse(n->content + skip, n->content_len - skip);
}

static void fold_inner(node *n, size_t skip, node *inner)
{
    buf b = {0};
    put(&b, n->content, skip);
    encode(inner, &b);
    set_content(n, b.p, b.len);
    free(b.p);
    node_free(inner);
}

/* ---- fixtures ---- */

static ek_cert_result issue(const ca_ctx *ca, EVP_PKEY *key, ek_cert_kind kind)
{
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_cert_request req = {.kind = kind, .subject_key = key, .identity = &id};
    ek_cert_result res;
    vtpmca_diag diag = {{0}};
    if (ek_cert_issue(ca, &cfg, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("ek_cert_issue: %s", diag.msg);
    return res;
}

static crl_result make_crl(void)
{
    static const uint8_t s1[] = {0x41, 0x02, 0x03}, s2[] = {0x52, 0x05};
    crl_entry entries[] = {
        {s1, sizeof(s1), 1767225600, VT_CRL_REASON_KEY_COMPROMISE},
        {s2, sizeof(s2), 1767225700, VT_CRL_REASON_UNSPECIFIED},
    };
    crl_result res;
    vtpmca_diag diag = {{0}};
    if (crl_build(g.ca, entries, 2, 7, 0, CRL_NEXT_UPDATE_DEFAULT, &res, &diag) != VTPMCA_OK)
        fail_msg("crl_build: %s", diag.msg);
    return res;
}

static void expect_strict(const uint8_t *der, size_t len, bool is_crl)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        is_crl ? ca_check_crl_der(der, len, &diag) : ca_check_cert_der(der, len, &diag);
    if (err != VTPMCA_OK)
        fail_msg("refused a strict-DER encoding: %s", diag.msg);
    char why[256];
    if (!der_is_strict(der, len, NULL, why, sizeof(why)))
        fail_msg("the independent walker disagrees: %s", why);
}

/* ---- acceptance ---- */

static void test_real_encodings_pass(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {g.ec_key, g.rsa_key};
    const ca_ctx *cas[] = {g.ca, g.rsa_ca};
    for (size_t c = 0; c < 2; c++) {
        for (size_t k = 0; k < 2; k++) {
            for (ek_cert_kind kind = EK_CERT_EK; kind <= EK_CERT_IAK; kind++) {
                ek_cert_result res = issue(cas[c], keys[k], kind);
                expect_strict(res.der, res.der_len, false);
                ek_cert_result_free(&res);
            }
        }
        for (ca_cert_which w = CA_CERT_ROOT; w <= CA_CERT_ISSUING; w++) {
            uint8_t *der = NULL;
            size_t len = 0;
            assert_int_equal(ca_cert_der(cas[c], w, &der, &len, NULL), VTPMCA_OK);
            expect_strict(der, len, false);
            free(der);
        }
    }
    crl_result crl = make_crl();
    expect_strict(crl.der, crl.der_len, true);
    crl_result_free(&crl);
    /* An empty CRL (no revokedCertificates) too. */
    crl_result empty;
    assert_int_equal(crl_build(g.rsa_ca, NULL, 0, 1, 0, CRL_NEXT_UPDATE_MIN, &empty, NULL),
                     VTPMCA_OK);
    expect_strict(empty.der, empty.der_len, true);
    crl_result_free(&empty);
}

/* ---- refusals of re-encoded certificates ---- */

/* Paths in an EK certificate (ek_profile.h order): tbs fields, and the extensions
 * basicConstraints, keyUsage, extendedKeyUsage, SAN, SDA, AKI, CRLDP, AIA, identity. */
enum { TBS = 0, SIG_ALG = 1, SIG = 2 };
enum { VERSION = 0, SERIAL = 1, VALIDITY = 4, SUBJECT = 5, SPKI = 6, EXTS = 7 };
enum { EXT_BC = 0, EXT_KU = 1, EXT_EKU = 2, EXT_IDENTITY = 8 };

typedef void (*mutation)(node *cert);

static node *ext_value(node *cert, int ext)
{
    node *e = at(cert, (const int[]){TBS, EXTS, 0, ext, -1});
    return e->kids[e->n_kids - 1];
}

static void long_length(node *cert)
{
    at(cert, (const int[]){TBS, SERIAL, -1})->long_form = true; /* 02 81 10 ... */
}

static void indefinite_length(node *cert)
{
    at(cert, (const int[]){TBS, VALIDITY, -1})->indefinite = true;
}

static void length_leading_zero(node *cert)
{
    at(cert, (const int[]){TBS, -1})->extra_length = 1; /* 83 00 xx xx */
}

static void serial_not_minimal(node *cert)
{
    node *serial = at(cert, (const int[]){TBS, SERIAL, -1});
    uint8_t v[64] = {0};
    memcpy(v + 1, serial->content, serial->content_len);
    set_content(serial, v, serial->content_len + 1);
}

static void boolean_01(node *cert)
{
    node *critical = at(cert, (const int[]){TBS, EXTS, 0, EXT_BC, 1, -1});
    assert_int_equal(critical->tag, 0x01);
    critical->content[0] = 0x01;
}

static void critical_false_present(node *cert)
{
    static const uint8_t f = 0x00;
    insert_kid(at(cert, (const int[]){TBS, EXTS, 0, EXT_EKU, -1}), 1, 0x01, &f, 1);
}

static void version_v1_explicit(node *cert)
{
    at(cert, (const int[]){TBS, VERSION, 0, -1})->content[0] = 0x00;
}

static void utctime_without_seconds(node *cert)
{
    static const char t[] = "2601010000Z";
    set_content(at(cert, (const int[]){TBS, VALIDITY, 0, -1}), (const uint8_t *)t, strlen(t));
}

static void gentime_with_fraction(node *cert)
{
    static const char t[] = "99991231235959.5Z";
    node *not_after = at(cert, (const int[]){TBS, VALIDITY, 1, -1});
    assert_int_equal(not_after->tag, 0x18);
    set_content(not_after, (const uint8_t *)t, strlen(t));
}

static void oid_not_minimal(node *cert)
{
    node *oid = at(cert, (const int[]){TBS, EXTS, 0, EXT_EKU, 0, -1});
    uint8_t v[64] = {0x55, 0x80};
    memcpy(v + 2, oid->content + 1, oid->content_len - 1); /* 2.5.29.37 as 55 80 25 */
    set_content(oid, v, oid->content_len + 1);
}

static void set_out_of_order(node *cert)
{
    /* subject RDN {CN=...}: add O=x, whose shorter encoding sorts before the CN's. */
    static const uint8_t org[] = {0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, 'x'};
    node *rdn = at(cert, (const int[]){TBS, SUBJECT, 0, -1});
    assert_int_equal(rdn->tag, 0x31);
    insert_kid(rdn, rdn->n_kids, 0x30, org, sizeof(org));
}

static void primitive_sequence(node *cert)
{
    node *validity = at(cert, (const int[]){TBS, VALIDITY, -1});
    buf b = {0};
    for (size_t i = 0; i < validity->n_kids; i++)
        encode(validity->kids[i], &b);
    for (size_t i = 0; i < validity->n_kids; i++)
        node_free(validity->kids[i]);
    validity->n_kids = 0;
    validity->parsed = false;
    validity->tag = 0x10;
    set_content(validity, b.p, b.len);
    free(b.p);
}

static void constructed_octet_string(node *cert)
{
    node *value = ext_value(cert, EXT_BC);
    node *inner = calloc(1, sizeof(*inner));
    assert_non_null(inner);
    inner->tag = 0x04;
    set_content(inner, value->content, value->content_len);
    value->tag = 0x24;
    value->parsed = true;
    value->kids[value->n_kids++] = inner;
}

static void signature_unused_bits(node *cert)
{
    node *sig = at(cert, (const int[]){SIG, -1});
    sig->content[0] = 0x01;
    sig->content[sig->content_len - 1] |= 0x01;
}

static void extension_value_trailing_byte(node *cert)
{
    node *value = ext_value(cert, EXT_BC);
    uint8_t v[64];
    memcpy(v, value->content, value->content_len);
    v[value->content_len] = 0x00;
    set_content(value, v, value->content_len + 1);
}

static void extension_value_long_length(node *cert)
{
    node *value = ext_value(cert, EXT_BC);
    node *inner = open_inner(value, 0);
    inner->long_form = true; /* basicConstraints {} as 30 81 00 */
    fold_inner(value, 0, inner);
}

static void extension_value_not_minimal(node *cert)
{
    node *value = ext_value(cert, EXT_IDENTITY);
    node *inner = open_inner(value, 0);
    node *policy = inner->kids[4];
    assert_int_equal(policy->tag, 0x02);
    uint8_t v[16] = {0};
    memcpy(v + 1, policy->content, policy->content_len);
    set_content(policy, v, policy->content_len + 1);
    fold_inner(value, 0, inner);
}

static void key_usage_trailing_zeros(node *cert)
{
    node *value = ext_value(cert, EXT_KU);
    node *bits = open_inner(value, 0);
    assert_int_equal(bits->tag, 0x03);
    bits->content[0] = 0x00; /* keyAgreement as 8 bits, 3 of them trailing zeros */
    fold_inner(value, 0, bits);
}

static void key_usage_unused_bit_set(node *cert)
{
    node *value = ext_value(cert, EXT_KU);
    node *bits = open_inner(value, 0);
    bits->content[bits->content_len - 1] |= 0x01;
    fold_inner(value, 0, bits);
}

static void ecdsa_signature_not_minimal(node *cert)
{
    node *sig = at(cert, (const int[]){SIG, -1});
    node *value = open_inner(sig, 1);
    node *r = value->kids[0];
    uint8_t v[80] = {0};
    memcpy(v + 1, r->content, r->content_len);
    set_content(r, v, r->content_len + 1);
    fold_inner(sig, 1, value);
}

static void empty_extensions(node *cert)
{
    node *list = at(cert, (const int[]){TBS, EXTS, 0, -1});
    for (size_t i = 0; i < list->n_kids; i++)
        node_free(list->kids[i]);
    list->n_kids = 0;
}

/* RSA subject keys: the AlgorithmIdentifier's NULL and the RSAPublicKey in the BIT STRING. */
static void rsa_null_with_content(node *cert)
{
    static const uint8_t junk = 0x00;
    node *null = at(cert, (const int[]){TBS, SPKI, 0, 1, -1});
    assert_int_equal(null->tag, 0x05);
    set_content(null, &junk, 1);
}

static void rsa_exponent_not_minimal(node *cert)
{
    node *bits = at(cert, (const int[]){TBS, SPKI, 1, -1});
    node *key = open_inner(bits, 1);
    static const uint8_t e[] = {0x00, 0x01, 0x00, 0x01};
    set_content(key->kids[1], e, sizeof(e));
    fold_inner(bits, 1, key);
}

typedef struct {
    const char *name;
    mutation mutate;
    bool rsa_subject;
    const char *rule; /* in the diag */
    bool independent; /* the support walker refuses it too */
} cert_case;

static const cert_case CERT_CASES[] = {
    {"long-form length", long_length, false, "not minimal", true},
    {"indefinite length", indefinite_length, false, "bad header", true},
    {"length with a leading zero", length_leading_zero, false, "not minimal", true},
    {"INTEGER not minimal", serial_not_minimal, false, "INTEGER/ENUMERATED is not minimal", true},
    {"BOOLEAN 01", boolean_01, false, "BOOLEAN", true},
    {"critical FALSE present", critical_false_present, false, "DEFAULT", true},
    {"version v1 encoded", version_v1_explicit, false, "version", false},
    {"UTCTime without seconds", utctime_without_seconds, false, "UTCTime", true},
    {"GeneralizedTime fraction", gentime_with_fraction, false, "GeneralizedTime", true},
    {"OID not minimal", oid_not_minimal, false, "OBJECT IDENTIFIER", true},
    {"SET OF out of order", set_out_of_order, false, "ascending order", true},
    {"primitive SEQUENCE", primitive_sequence, false, "primitive form", true},
    {"constructed OCTET STRING", constructed_octet_string, false, "constructed encoding", true},
    {"signature unused bits", signature_unused_bits, false, "unused bits", true},
    {"extnValue trailing byte", extension_value_trailing_byte, false, "extnValue: bytes after",
     true},
    {"extnValue long length", extension_value_long_length, false, "extnValue: bad header", true},
    {"extnValue INTEGER", extension_value_not_minimal, false, "INTEGER/ENUMERATED", true},
    {"keyUsage trailing zeros", key_usage_trailing_zeros, false, "keyUsage", false},
    {"keyUsage unused bit set", key_usage_unused_bit_set, false, "unused bits", true},
    {"ECDSA signature INTEGER", ecdsa_signature_not_minimal, false, "INTEGER/ENUMERATED", true},
    {"empty extensions", empty_extensions, false, "non-empty", false},
    {"RSA NULL with content", rsa_null_with_content, true, "NULL has content", true},
    {"RSA key INTEGER", rsa_exponent_not_minimal, true, "INTEGER/ENUMERATED", true},
};

static void test_certificate_variants_refused(void **state)
{
    (void)state;
    ek_cert_result ec = issue(g.ca, g.ec_key, EK_CERT_EK);
    ek_cert_result rsa = issue(g.ca, g.rsa_key, EK_CERT_EK);
    for (size_t i = 0; i < sizeof(CERT_CASES) / sizeof(CERT_CASES[0]); i++) {
        const cert_case *c = &CERT_CASES[i];
        const ek_cert_result *base = c->rsa_subject ? &rsa : &ec;
        node *cert = parse(base->der, base->der_len);
        /* The tree encodes back to the very same bytes before the change. */
        buf same = {0};
        encode(cert, &same);
        assert_int_equal(same.len, base->der_len);
        assert_memory_equal(same.p, base->der, base->der_len);
        free(same.p);

        c->mutate(cert);
        buf b = {0};
        encode(cert, &b);
        node_free(cert);
        vtpmca_diag diag = {{0}};
        vtpmca_err err = ca_check_cert_der(b.p, b.len, &diag);
        if (err != VTPMCA_ERR_PARSE || strstr(diag.msg, c->rule) == NULL)
            fail_msg("%s: got %s \"%s\", want PARSE naming \"%s\"", c->name, vtpmca_err_name(err),
                     diag.msg, c->rule);
        if (c->independent)
            assert_false(der_is_strict(b.p, b.len, NULL, NULL, 0));
        free(b.p);
    }
    /* Trailing bytes after the certificate. */
    uint8_t *longer = malloc(ec.der_len + 1);
    assert_non_null(longer);
    memcpy(longer, ec.der, ec.der_len);
    longer[ec.der_len] = 0x00;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ca_check_cert_der(longer, ec.der_len + 1, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "bytes after its one element"));
    /* Cut short. */
    assert_int_equal(ca_check_cert_der(ec.der, ec.der_len - 1, &diag), VTPMCA_ERR_PARSE);
    free(longer);
    assert_int_equal(ca_check_cert_der(NULL, 10, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ca_check_cert_der(ec.der, 0, &diag), VTPMCA_ERR_INVALID_ARG);
    /* Something strict but not a certificate. */
    static const uint8_t seq[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(ca_check_cert_der(seq, sizeof(seq), &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "signatureAlgorithm"));
    ek_cert_result_free(&ec);
    ek_cert_result_free(&rsa);
}

/* ---- refusals of re-encoded CRLs ---- */

/* TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, revoked, [0] exts. */
enum { CRL_VERSION = 0, CRL_REVOKED = 5, CRL_EXTS = 6 };

/* The revoked entry with extensions (the keyCompromise one). */
static node *entry_with_extensions(node *crl)
{
    node *entries = at(crl, (const int[]){TBS, CRL_REVOKED, -1});
    for (size_t i = 0; i < entries->n_kids; i++) {
        if (entries->kids[i]->n_kids == 3)
            return entries->kids[i];
    }
    fail_msg("no revoked entry has extensions");
    return NULL;
}

static void crl_entry_reason_not_minimal(node *crl)
{
    node *ext = at(entry_with_extensions(crl), (const int[]){2, 0, -1});
    node *value = ext->kids[ext->n_kids - 1];
    static const uint8_t reason[] = {0x0a, 0x02, 0x00, 0x01};
    set_content(value, reason, sizeof(reason));
}

static void crl_number_not_minimal(node *crl)
{
    node *list = at(crl, (const int[]){TBS, CRL_EXTS, 0, -1});
    node *number = list->kids[list->n_kids - 1];
    node *value = number->kids[number->n_kids - 1];
    static const uint8_t seven[] = {0x02, 0x02, 0x00, 0x07};
    set_content(value, seven, sizeof(seven));
}

static void crl_version_v1(node *crl)
{
    at(crl, (const int[]){TBS, CRL_VERSION, -1})->content[0] = 0x00;
}

static void crl_revocation_date_short(node *crl)
{
    static const char t[] = "2601010000Z";
    set_content(at(crl, (const int[]){TBS, CRL_REVOKED, 1, 1, -1}), (const uint8_t *)t, strlen(t));
}

static void test_crl_variants_refused(void **state)
{
    (void)state;
    crl_result crl = make_crl();
    const struct {
        const char *name;
        mutation mutate;
        const char *rule;
    } cases[] = {
        {"entry reasonCode", crl_entry_reason_not_minimal, "INTEGER/ENUMERATED"},
        {"cRLNumber", crl_number_not_minimal, "INTEGER/ENUMERATED"},
        {"version v1", crl_version_v1, "other than v2"},
        {"revocationDate", crl_revocation_date_short, "UTCTime"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        node *tree = parse(crl.der, crl.der_len);
        cases[i].mutate(tree);
        buf b = {0};
        encode(tree, &b);
        node_free(tree);
        vtpmca_diag diag = {{0}};
        vtpmca_err err = ca_check_crl_der(b.p, b.len, &diag);
        if (err != VTPMCA_ERR_PARSE || strstr(diag.msg, cases[i].rule) == NULL)
            fail_msg("%s: got %s \"%s\", want PARSE naming \"%s\"", cases[i].name,
                     vtpmca_err_name(err), diag.msg, cases[i].rule);
        free(b.p);
    }
    assert_int_equal(ca_check_crl_der(NULL, 1, NULL), VTPMCA_ERR_INVALID_ARG);
    crl_result_free(&crl);
}

/* ---- signing refuses what is not DER ---- */

/* The old check: decode, re-encode the TBS from the parsed fields, compare. */
static bool reencodes_identically(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *parsed = d2i_X509(NULL, &p, (long)len);
    unsigned char *again = NULL;
    int again_len = -1;
    if (parsed != NULL && i2d_re_X509_tbs(parsed, NULL) > 0)
        again_len = i2d_X509(parsed, &again);
    bool same = again_len == (int)len && memcmp(again, der, len) == 0;
    OPENSSL_free(again);
    X509_free(parsed);
    return same;
}

/* An extension whose value is {30 81 00}: a SEQUENCE with a long-form length. */
static X509_EXTENSION *non_der_extension(void)
{
    static const uint8_t value[] = {0x30, 0x81, 0x00};
    ASN1_OCTET_STRING *octets = ASN1_OCTET_STRING_new();
    assert_int_equal(ASN1_OCTET_STRING_set(octets, value, sizeof(value)), 1);
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1);
    X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, octets);
    assert_non_null(ext);
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(octets);
    return ext;
}

static void test_signing_refuses_non_der(void **state)
{
    (void)state;
    X509 *cert = X509_new();
    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
    assert_int_equal(ca_set_new_serial(cert, NULL, NULL), VTPMCA_OK);
    assert_int_equal(
        X509_set_issuer_name(cert, X509_get_subject_name(ca_cert(g.ca, CA_CERT_ISSUING))), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), 3600));
    assert_int_equal(X509_set_pubkey(cert, g.ec_key), 1);
    uint8_t *der = NULL;
    size_t len = 0;
    /* Without the extension it signs. */
    assert_int_equal(ca_sign_cert(g.ca, cert, &der, &len, NULL), VTPMCA_OK);
    expect_strict(der, len, false);
    free(der);

    X509_EXTENSION *ext = non_der_extension();
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    vtpmca_diag diag = {{0}};
    der = NULL;
    assert_int_equal(ca_sign_cert(g.ca, cert, &der, &len, &diag), VTPMCA_ERR_INTERNAL);
    assert_null(der);
    assert_non_null(strstr(diag.msg, "not strict DER"));
    assert_non_null(strstr(diag.msg, "extnValue"));

    /* The same certificate, signed without the check: decoding and re-encoding gives the
     * same bytes, so a re-encode comparison would have let it through. */
    assert_true(X509_sign(cert, ca_issuing_key(g.ca), ca_issuing_md(g.ca)) > 0);
    unsigned char *raw = NULL;
    int raw_len = i2d_X509(cert, &raw);
    assert_true(raw_len > 0);
    assert_true(reencodes_identically(raw, (size_t)raw_len));
    assert_int_equal(ca_check_cert_der(raw, (size_t)raw_len, &diag), VTPMCA_ERR_PARSE);
    OPENSSL_free(raw);
    X509_free(cert);

    /* A CRL with that extension. */
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    assert_int_equal(X509_CRL_set_version(crl, X509_CRL_VERSION_2), 1);
    assert_int_equal(
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert(g.ca, CA_CERT_ISSUING))), 1);
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    assert_int_equal(X509_CRL_set1_lastUpdate(crl, now), 1);
    ASN1_TIME_free(now);
    assert_int_equal(ca_sign_crl(g.ca, crl, &der, &len, NULL), VTPMCA_OK);
    expect_strict(der, len, true);
    free(der);
    assert_int_equal(X509_CRL_add_ext(crl, ext, -1), 1);
    der = NULL;
    assert_int_equal(ca_sign_crl(g.ca, crl, &der, &len, &diag), VTPMCA_ERR_INTERNAL);
    assert_null(der);
    assert_non_null(strstr(diag.msg, "CRL is not strict DER"));
    X509_CRL_free(crl);
    X509_EXTENSION_free(ext);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_encodings_pass),
        cmocka_unit_test(test_certificate_variants_refused),
        cmocka_unit_test(test_crl_variants_refused),
        cmocka_unit_test(test_signing_refuses_non_der),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
