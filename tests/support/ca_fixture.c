/* TEST-ONLY helpers for the CA tests; see ca_fixture.h. */
#include "ca_fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "vtpmca/fileio.h"

int ca_fixture_tmpdir(char *out, size_t size, const char *tag)
{
    int n = snprintf(out, size, "/tmp/vtpmca-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= size)
        return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

int ca_fixture_rmtree(const char *dir)
{
    if (dir == NULL || strncmp(dir, "/tmp/vtpmca-", 12) != 0 || strchr(dir, '\'') != NULL)
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int ca_fixture_run(const char *cmd, char **output)
{
    char full[4096];
    int n = snprintf(full, sizeof(full), "( %s ) 2>&1", cmd);
    if (n < 0 || (size_t)n >= sizeof(full))
        return -1;
    FILE *pipe = popen(full, "r");
    if (pipe == NULL)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (len + 1024 > cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, pipe);
        if (got == 0)
            break;
        len += got;
    }
    int status = pclose(pipe);
    if (buf != NULL)
        buf[len] = '\0';
    if (output != NULL)
        *output = buf;
    else
        free(buf);
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void ca_fixture_identity(ek_instance_identity *out)
{
    memset(out, 0, sizeof(*out));
    out->fleet = CA_FIXTURE_FLEET;
    out->instance_id = CA_FIXTURE_INSTANCE;
    memset(out->measurement, CA_FIXTURE_MEASUREMENT, sizeof(out->measurement));
    memset(out->chip_id, CA_FIXTURE_CHIP_ID, sizeof(out->chip_id));
    out->policy_version = CA_FIXTURE_POLICY_VERSION;
    memset(out->kbs_key_hash, CA_FIXTURE_KBS_HASH, sizeof(out->kbs_key_hash));
}

void ca_fixture_profile(ek_profile_config *out)
{
    ek_profile_config_default(out);
    out->base_url = CA_FIXTURE_BASE_URL;
}

ca_ctx *ca_fixture_make_ca(const char *dir, ca_key_alg root_alg, ca_key_alg issuing_alg)
{
    ca_init_options opts;
    ca_init_options_default(&opts);
    opts.root_alg = root_alg;
    opts.issuing_alg = issuing_alg;
    vtpmca_diag diag = {{0}};
    ca_ctx *ca = NULL;
    if (ca_init(dir, &opts, &diag) != VTPMCA_OK || ca_open(dir, &ca, &diag) != VTPMCA_OK) {
        fprintf(stderr, "ca fixture: %s\n", diag.msg);
        return NULL;
    }
    return ca;
}

int ca_fixture_write(const char *path, const void *data, size_t len)
{
    return vt_file_write_atomic(path, data, len, 0644, NULL) == VTPMCA_OK ? 0 : -1;
}

/* ---- strict DER walker ---- */

enum {
    TAG_BOOLEAN = 1,
    TAG_INTEGER = 2,
    TAG_BIT_STRING = 3,
    TAG_OCTET_STRING = 4,
    TAG_NULL = 5,
    TAG_OID = 6,
    TAG_ENUMERATED = 10,
    TAG_SEQUENCE = 16,
    TAG_SET = 17,
    TAG_UTC_TIME = 23,
    TAG_GENERALIZED_TIME = 24,
    MAX_DEPTH = 64,
};

typedef struct {
    const uint8_t *base;
    der_walk_stats *stats;
    char *why;
    size_t why_size;
} walker;

typedef struct {
    unsigned cls; /* 0 universal, 1 application, 2 context, 3 private */
    bool constructed;
    unsigned long number;
    const uint8_t *start; /* first byte of the tag */
    const uint8_t *content;
    size_t content_len;
    size_t total_len; /* tag + length + content */
} tlv;

static bool fail_at(walker *w, const uint8_t *at, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->why != NULL)
        snprintf(w->why, w->why_size, "offset %zu: %s", (size_t)(at - w->base), msg);
    return false;
}

static bool read_tlv(walker *w, const uint8_t *p, size_t avail, tlv *out)
{
    size_t i = 0;
    if (avail < 2)
        return fail_at(w, p, "truncated header");
    out->start = p;
    out->cls = p[0] >> 6;
    out->constructed = (p[0] & 0x20) != 0;
    out->number = p[0] & 0x1f;
    i = 1;
    if (out->number == 0x1f) {
        /* High tag number form: minimal base-128, and only for numbers >= 31. */
        if (p[i] == 0x80)
            return fail_at(w, p, "non-minimal high tag number");
        out->number = 0;
        do {
            if (i >= avail || i > 4)
                return fail_at(w, p, "bad high tag number");
            out->number = (out->number << 7) | (p[i] & 0x7f);
        } while ((p[i++] & 0x80) != 0);
        if (out->number < 31)
            return fail_at(w, p, "high tag form for a low tag number");
    }
    if (i >= avail)
        return fail_at(w, p, "truncated length");
    uint8_t first = p[i++];
    size_t len = 0;
    if (first < 0x80) {
        len = first;
    } else if (first == 0x80) {
        return fail_at(w, p, "indefinite length");
    } else {
        size_t n = first & 0x7f;
        if (n > sizeof(size_t) || i + n > avail)
            return fail_at(w, p, "bad long-form length");
        if (p[i] == 0)
            return fail_at(w, p, "length with a leading zero byte");
        for (size_t k = 0; k < n; k++)
            len = (len << 8) | p[i + k];
        i += n;
        if (len < 0x80)
            return fail_at(w, p, "long-form length %zu that fits the short form", len);
    }
    if (len > avail - i)
        return fail_at(w, p, "length %zu runs past the end", len);
    out->content = p + i;
    out->content_len = len;
    out->total_len = i + len;
    return true;
}

static bool walk(walker *w, const uint8_t *p, size_t len, int depth);

static bool is_digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
    }
    return true;
}

/* Prefixes (content bytes) of OIDs whose SEQUENCE {oid, [critical], OCTET STRING} is an
 * X.509 extension: id-ce (2.5.29), id-pe (1.3.6.1.5.5.7.1) and the 2.25 UUID arc. */
static bool is_extension_oid(const tlv *oid)
{
    static const uint8_t id_ce[] = {0x55, 0x1d};
    static const uint8_t id_pe[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01};
    static const uint8_t uuid_arc[] = {0x69};
    const struct {
        const uint8_t *bytes;
        size_t len;
    } prefixes[] = {{id_ce, sizeof(id_ce)}, {id_pe, sizeof(id_pe)}, {uuid_arc, sizeof(uuid_arc)}};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (oid->content_len > prefixes[i].len &&
            memcmp(oid->content, prefixes[i].bytes, prefixes[i].len) == 0)
            return true;
    }
    return false;
}

/* AlgorithmIdentifiers whose following BIT STRING holds DER: rsaEncryption keys and
 * ECDSA signatures. */
static bool bit_string_holds_der(walker *w, const tlv *alg_id)
{
    static const uint8_t rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
    static const uint8_t ecdsa_with[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03};
    tlv oid = {0};
    if (alg_id->cls != 0 || alg_id->number != TAG_SEQUENCE || alg_id->content_len == 0 ||
        !read_tlv(w, alg_id->content, alg_id->content_len, &oid) || oid.number != TAG_OID)
        return false;
    return (oid.content_len == sizeof(rsa) && memcmp(oid.content, rsa, sizeof(rsa)) == 0) ||
           (oid.content_len == sizeof(ecdsa_with) + 1 &&
            memcmp(oid.content, ecdsa_with, sizeof(ecdsa_with)) == 0);
}

/* Walks `content` as exactly one element. */
static bool walk_one(walker *w, const uint8_t *content, size_t len, int depth, const char *what)
{
    tlv inner = {0};
    if (!read_tlv(w, content, len, &inner))
        return false;
    if (inner.total_len != len)
        return fail_at(w, content, "%s has trailing bytes", what);
    return walk(w, content, len, depth + 1);
}

/* Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }: walks into
 * the value of a SEQUENCE that looks like one (first children given, n in total). */
static bool check_extension(walker *w, const tlv *first, size_t n, int depth)
{
    if ((n == 2 || n == 3) && first[0].cls == 0 && first[0].number == TAG_OID &&
        first[n - 1].cls == 0 && first[n - 1].number == TAG_OCTET_STRING &&
        (n == 2 || (first[1].cls == 0 && first[1].number == TAG_BOOLEAN)) &&
        is_extension_oid(&first[0])) {
        w->stats->extension_values++;
        return walk_one(w, first[n - 1].content, first[n - 1].content_len, depth,
                        "an extension value");
    }
    return true;
}

/* An AlgorithmIdentifier followed by a BIT STRING holding DER (RSA key, ECDSA signature). */
static bool check_bit_string_after(walker *w, const tlv *prev, const tlv *bits, int depth)
{
    if (bits->cls != 0 || bits->number != TAG_BIT_STRING || !bit_string_holds_der(w, prev))
        return true;
    if (bits->content[0] != 0)
        return fail_at(w, bits->start, "DER-holding BIT STRING with unused bits");
    return walk_one(w, bits->content + 1, bits->content_len - 1, depth, "a BIT STRING");
}

/* X.690 11.6: SET OF components in ascending order, comparing encodings as octet strings
 * padded with trailing zeros. */
static int compare_encodings(const tlv *a, const tlv *b)
{
    size_t n = a->total_len < b->total_len ? a->total_len : b->total_len;
    int c = memcmp(a->start, b->start, n);
    if (c != 0)
        return c;
    const tlv *longer = a->total_len > b->total_len ? a : b;
    for (size_t i = n; i < longer->total_len; i++) {
        if (longer->start[i] != 0)
            return longer == a ? 1 : -1;
    }
    return 0;
}

static bool walk_constructed(walker *w, const tlv *t, int depth)
{
    bool is_sequence = t->cls == 0 && t->number == TAG_SEQUENCE;
    bool is_set = t->cls == 0 && t->number == TAG_SET;
    tlv first[3], prev, child;
    size_t n = 0;
    const uint8_t *p = t->content;
    size_t left = t->content_len;
    while (left > 0) {
        if (!read_tlv(w, p, left, &child) || !walk(w, p, child.total_len, depth + 1))
            return false;
        if (n < 3)
            first[n] = child;
        if (n > 0 && is_sequence && !check_bit_string_after(w, &prev, &child, depth))
            return false;
        if (n > 0 && is_set && compare_encodings(&prev, &child) > 0)
            return fail_at(w, child.start, "SET OF elements out of order");
        prev = child;
        p += child.total_len;
        left -= child.total_len;
        n++;
    }
    if (is_set)
        w->stats->sets++;
    if (is_sequence && n == 0)
        w->stats->empty_sequences++;
    return is_sequence ? check_extension(w, first, n, depth) : true;
}

static bool walk_primitive(walker *w, const tlv *t)
{
    const uint8_t *c = t->content;
    size_t n = t->content_len;
    if (t->cls != 0)
        return true; /* implicitly tagged primitives: opaque */
    switch (t->number) {
    case TAG_BOOLEAN:
        if (n != 1 || (c[0] != 0x00 && c[0] != 0xff))
            return fail_at(w, t->start, "BOOLEAN must be one byte 00 or FF");
        /* Every BOOLEAN in certificates and CRLs is DEFAULT FALSE: DER omits FALSE. */
        if (c[0] == 0x00)
            return fail_at(w, t->start, "BOOLEAN FALSE encoded although it is the DEFAULT");
        return true;
    case TAG_INTEGER:
    case TAG_ENUMERATED:
        if (n == 0)
            return fail_at(w, t->start, "empty INTEGER");
        if (n > 1 && ((c[0] == 0x00 && c[1] < 0x80) || (c[0] == 0xff && c[1] >= 0x80)))
            return fail_at(w, t->start, "INTEGER with a redundant leading byte");
        return true;
    case TAG_BIT_STRING:
        if (n == 0 || c[0] > 7 || (n == 1 && c[0] != 0))
            return fail_at(w, t->start, "bad BIT STRING unused-bits count");
        if (n > 1 && (c[n - 1] & ((1u << c[0]) - 1)) != 0)
            return fail_at(w, t->start, "BIT STRING unused bits not zero");
        return true;
    case TAG_NULL:
        return n == 0 ? true : fail_at(w, t->start, "NULL with content");
    case TAG_OID:
        if (n == 0 || (c[n - 1] & 0x80) != 0)
            return fail_at(w, t->start, "bad OBJECT IDENTIFIER");
        for (size_t i = 0; i < n; i++) {
            bool starts_subid = i == 0 || (c[i - 1] & 0x80) == 0;
            if (starts_subid && c[i] == 0x80)
                return fail_at(w, t->start, "OID sub-identifier with a leading 0x80");
        }
        return true;
    case TAG_UTC_TIME:
        if (n != 13 || !is_digits(c, 12) || c[12] != 'Z')
            return fail_at(w, t->start, "UTCTime must be YYMMDDHHMMSSZ");
        return true;
    case TAG_GENERALIZED_TIME:
        if (n != 15 || !is_digits(c, 14) || c[14] != 'Z')
            return fail_at(w, t->start, "GeneralizedTime must be YYYYMMDDHHMMSSZ");
        return true;
    default:
        return true;
    }
}

static bool walk(walker *w, const uint8_t *p, size_t len, int depth)
{
    if (depth > MAX_DEPTH)
        return fail_at(w, p, "nested too deep");
    tlv t = {0};
    if (!read_tlv(w, p, len, &t))
        return false;
    if (t.cls == 0) {
        bool must_construct = t.number == TAG_SEQUENCE || t.number == TAG_SET;
        if (must_construct != t.constructed)
            return fail_at(w, p, "universal tag %lu with the wrong constructed bit", t.number);
    }
    return t.constructed ? walk_constructed(w, &t, depth) : walk_primitive(w, &t);
}

bool der_is_strict(const uint8_t *der, size_t len, der_walk_stats *stats, char *why,
                   size_t why_size)
{
    der_walk_stats local;
    memset(&local, 0, sizeof(local));
    walker w = {der, stats != NULL ? stats : &local, why, why_size};
    memset(w.stats, 0, sizeof(*w.stats));
    if (why != NULL && why_size > 0)
        why[0] = '\0';
    tlv top = {0};
    if (der == NULL || !read_tlv(&w, der, len, &top))
        return false;
    if (top.total_len != len)
        return fail_at(&w, der, "trailing bytes after the element");
    return walk(&w, der, len, 0);
}
