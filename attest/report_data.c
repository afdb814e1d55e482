/* REPORT_DATA flavours of the KBS protocol and RFC 8785 JSON canonicalisation. */
#include "vtpmca/report_data.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"

/* JSON nesting beyond this is refused rather than recursed into. */
#define JCS_MAX_DEPTH 64
/* 2^53: the largest range in which every integer is exactly a double. */
#define JCS_EXACT_INT_LIMIT 9007199254740992LL

const char *report_data_flavour_name(report_data_flavour flavour)
{
    switch (flavour) {
    case REPORT_DATA_FLAVOUR_NONE:
        return "none";
    case REPORT_DATA_FLAVOUR_SVSM:
        return "svsm";
    case REPORT_DATA_FLAVOUR_TRUSTEE:
        return "trustee";
    }
    return "unknown";
}

/* ---- RFC 8785 ---- */

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} text_buf;

static void buf_put(text_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (bigger == NULL) {
            b->failed = true;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(text_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* ECMAScript JSON.stringify string escaping (RFC 8785 section 3.2.2.2). */
static void put_string(text_buf *b, const char *s, size_t len)
{
    buf_put(b, "\"", 1);
    size_t run = 0; /* characters copied verbatim in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[7];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof(hex), "\\u%04x", c);
                esc = hex;
            }
        }
        if (esc == NULL) {
            run++;
            continue;
        }
        buf_put(b, s + i - run, run);
        run = 0;
        buf_puts(b, esc);
    }
    buf_put(b, s + len - run, run);
    buf_put(b, "\"", 1);
}

/* ECMAScript Number::toString for a finite double (RFC 8785 section 3.2.2.3): the shortest
 * digit string that reads back as the same double, placed by the exponent rules. */
static void put_double(text_buf *b, double value)
{
    if (value == 0) { /* also -0 */
        buf_puts(b, "0");
        return;
    }
    if (value < 0) {
        buf_puts(b, "-");
        value = -value;
    }
    char sci[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(sci, sizeof(sci), "%.*e", precision - 1, value);
        if (strtod(sci, NULL) == value)
            break;
    }
    /* sci is "d.ddde±XX": collect the digits and the decimal exponent. */
    char digits[20];
    size_t k = 0;
    const char *p = sci;
    for (; *p != 'e'; p++) {
        if (*p != '.')
            digits[k++] = *p;
    }
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int n = atoi(p + 1) + 1; /* value = 0.digits * 10^n */
    int kk = (int)k;
    if (kk <= n && n <= 21) { /* integer: the digits, then zeros */
        buf_put(b, digits, k);
        for (int i = kk; i < n; i++)
            buf_put(b, "0", 1);
    } else if (0 < n && n <= 21) { /* decimal point inside the digits */
        buf_put(b, digits, (size_t)n);
        buf_put(b, ".", 1);
        buf_put(b, digits + n, k - (size_t)n);
    } else if (-6 < n && n <= 0) { /* 0.000ddd */
        buf_put(b, "0.", 2);
        for (int i = n; i < 0; i++)
            buf_put(b, "0", 1);
        buf_put(b, digits, k);
    } else { /* d.ddde+XX */
        char exponent[16];
        snprintf(exponent, sizeof(exponent), "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
        buf_put(b, digits, 1);
        if (k > 1) {
            buf_put(b, ".", 1);
            buf_put(b, digits + 1, k - 1);
        }
        buf_puts(b, exponent);
    }
}

typedef struct {
    const char *key;
    size_t len;
    const json_t *value;
} member;

/* Next UTF-16 code unit of a valid UTF-8 string (jansson guarantees validity). `pending`
 * holds the low surrogate of a supplementary character between calls. */
static unsigned next_utf16(const unsigned char **p, const unsigned char *end, unsigned *pending)
{
    if (*pending != 0) {
        unsigned unit = *pending;
        *pending = 0;
        return unit;
    }
    unsigned c = **p, cp;
    size_t extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    cp = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i <= extra && *p + i < end; i++)
        cp = (cp << 6) | ((*p)[i] & 0x3F);
    *p += extra + 1;
    if (cp < 0x10000)
        return cp;
    cp -= 0x10000;
    *pending = 0xDC00 + (cp & 0x3FF);
    return 0xD800 + (cp >> 10);
}

static int compare_members(const void *a, const void *b)
{
    const member *ma = a, *mb = b;
    const unsigned char *pa = (const unsigned char *)ma->key, *ea = pa + ma->len;
    const unsigned char *pb = (const unsigned char *)mb->key, *eb = pb + mb->len;
    unsigned pend_a = 0, pend_b = 0;
    while ((pa < ea || pend_a) && (pb < eb || pend_b)) {
        unsigned ua = next_utf16(&pa, ea, &pend_a), ub = next_utf16(&pb, eb, &pend_b);
        if (ua != ub)
            return ua < ub ? -1 : 1;
    }
    bool a_left = pa < ea || pend_a, b_left = pb < eb || pend_b;
    return a_left == b_left ? 0 : a_left ? 1 : -1;
}

static vtpmca_err put_value(text_buf *b, const json_t *value, int depth, vtpmca_diag *diag);

static vtpmca_err put_object(text_buf *b, const json_t *object, int depth, vtpmca_diag *diag)
{
    size_t n = json_object_size(object);
    member *members = calloc(n ? n : 1, sizeof(*members));
    if (members == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    size_t i = 0;
    for (void *it = json_object_iter((json_t *)object); it != NULL && i < n;
         it = json_object_iter_next((json_t *)object, it), i++) {
        members[i].key = json_object_iter_key(it);
        members[i].len = json_object_iter_key_len(it);
        members[i].value = json_object_iter_value(it);
    }
    qsort(members, i, sizeof(*members), compare_members);
    vtpmca_err err = VTPMCA_OK;
    buf_put(b, "{", 1);
    for (size_t k = 0; k < i && err == VTPMCA_OK; k++) {
        if (k > 0)
            buf_put(b, ",", 1);
        put_string(b, members[k].key, members[k].len);
        buf_put(b, ":", 1);
        err = put_value(b, members[k].value, depth + 1, diag);
    }
    buf_put(b, "}", 1);
    free(members);
    return err;
}

static vtpmca_err put_value(text_buf *b, const json_t *value, int depth, vtpmca_diag *diag)
{
    if (depth > JCS_MAX_DEPTH)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "JSON nests deeper than %d levels",
                           JCS_MAX_DEPTH);
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return put_object(b, value, depth, diag);
    case JSON_ARRAY:
        buf_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(value); i++) {
            if (i > 0)
                buf_put(b, ",", 1);
            vtpmca_err err = put_value(b, json_array_get(value, i), depth + 1, diag);
            if (err != VTPMCA_OK)
                return err;
        }
        buf_put(b, "]", 1);
        return VTPMCA_OK;
    case JSON_STRING:
        put_string(b, json_string_value(value), json_string_length(value));
        return VTPMCA_OK;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(value);
        if (i > -JCS_EXACT_INT_LIMIT && i < JCS_EXACT_INT_LIMIT) {
            char text[32];
            snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, i);
            buf_puts(b, text);
        } else {
            put_double(b, (double)i);
        }
        return VTPMCA_OK;
    }
    case JSON_REAL: {
        double d = json_real_value(value);
        if (!isfinite(d))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "JSON numbers must be finite");
        put_double(b, d);
        return VTPMCA_OK;
    }
    case JSON_TRUE:
        buf_puts(b, "true");
        return VTPMCA_OK;
    case JSON_FALSE:
        buf_puts(b, "false");
        return VTPMCA_OK;
    case JSON_NULL:
        buf_puts(b, "null");
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "unknown JSON type");
}

vtpmca_err jcs_serialize(const json_t *value, char **out, size_t *out_len, vtpmca_diag *diag)
{
    if (value == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "jcs: missing argument");
    text_buf b = {0};
    vtpmca_err err = put_value(&b, value, 0, diag);
    if (err == VTPMCA_OK && b.failed)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err != VTPMCA_OK) {
        free(b.data);
        return err;
    }
    *out = b.data;
    if (out_len != NULL)
        *out_len = b.len;
    return VTPMCA_OK;
}

/* ---- flavours ---- */

/* SHA-512(X || Y || nonce) over the coordinates already laid out as X || Y. */
static vtpmca_err svsm_digest(const uint8_t *xy, size_t xy_len, const uint8_t *nonce,
                              size_t nonce_len, uint8_t out[REPORT_DATA_SIZE], vtpmca_diag *diag)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(md, xy, xy_len) == 1 && EVP_DigestUpdate(md, nonce, nonce_len) == 1 &&
             EVP_DigestFinal_ex(md, out, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-512 failed");
}

vtpmca_err report_data_svsm_point(const uint8_t *point, size_t point_len, const uint8_t *nonce,
                                  size_t nonce_len, uint8_t out[REPORT_DATA_SIZE],
                                  vtpmca_diag *diag)
{
    if (point == NULL || nonce == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: missing argument");
    if (nonce_len == 0 || nonce_len > KBS_BINDING_MAX_NONCE)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: nonce must be 1..%d bytes",
                           KBS_BINDING_MAX_NONCE);
    if (jwe_ec_point_curve_name(point, point_len) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "the SVSM flavour needs an uncompressed P-256/P-384/P-521 point");
    /* The SEC1 point is 0x04 || X || Y: the hash covers X || Y. */
    return svsm_digest(point + 1, point_len - 1, nonce, nonce_len, out, diag);
}

vtpmca_err report_data_svsm(const EVP_PKEY *tee_key, const uint8_t *nonce, size_t nonce_len,
                            uint8_t out[REPORT_DATA_SIZE], vtpmca_diag *diag)
{
    if (tee_key == NULL || nonce == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: missing argument");
    if (jwe_ec_curve_name(tee_key) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "the SVSM flavour needs an EC P-256/P-384/P-521 tee key");
    uint8_t point[JWE_EC_POINT_MAX];
    size_t point_len = 0;
    vtpmca_err err = jwe_ec_point_encode(tee_key, point, &point_len, diag);
    if (err != VTPMCA_OK)
        return err;
    return report_data_svsm_point(point, point_len, nonce, nonce_len, out, diag);
}

/* Copies a string member that must be present into the reduced key. */
static vtpmca_err copy_string_member(json_t *to, const json_t *from, const char *name,
                                     vtpmca_diag *diag)
{
    const json_t *value = json_object_get(from, name);
    if (!json_is_string(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tee-pubkey: \"%s\" is missing or not a string",
                           name);
    if (json_object_set(to, name, (json_t *)value) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    return VTPMCA_OK;
}

vtpmca_err report_data_trustee_object(const json_t *tee_pubkey, const char *nonce_text,
                                      const char *additional_evidence, json_t **out,
                                      vtpmca_diag *diag)
{
    if (tee_pubkey == NULL || nonce_text == NULL || additional_evidence == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: missing argument");
    if (!json_is_object(tee_pubkey))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tee-pubkey is not a JSON object");
    const char *kty = json_string_value(json_object_get(tee_pubkey, "kty"));
    static const char *const ec_members[] = {"kty", "crv", "alg", "x", "y", NULL};
    static const char *const rsa_members[] = {"kty", "alg", "n", "e", NULL};
    const char *const *names = kty == NULL               ? NULL
                               : strcmp(kty, "EC") == 0  ? ec_members
                               : strcmp(kty, "RSA") == 0 ? rsa_members
                                                         : NULL;
    if (names == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "tee-pubkey: \"kty\" must be \"EC\" or \"RSA\"");
    json_t *key = json_object();
    json_t *object = json_pack("{s:s,s:s,s:o}", "additional-evidence", additional_evidence, "nonce",
                               nonce_text, "tee-pubkey", key);
    if (object == NULL) /* a string that is not UTF-8, or no memory */
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "runtime data strings must be UTF-8");
    vtpmca_err err = VTPMCA_OK;
    for (size_t i = 0; names[i] != NULL && err == VTPMCA_OK; i++)
        err = copy_string_member(key, tee_pubkey, names[i], diag);
    if (err != VTPMCA_OK) {
        json_decref(object);
        return err;
    }
    *out = object;
    return VTPMCA_OK;
}

vtpmca_err report_data_trustee(const json_t *tee_pubkey, const char *nonce_text,
                               const char *additional_evidence, uint8_t out[REPORT_DATA_SIZE],
                               vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: missing argument");
    json_t *object = NULL;
    vtpmca_err err =
        report_data_trustee_object(tee_pubkey, nonce_text, additional_evidence, &object, diag);
    char *text = NULL;
    size_t text_len = 0;
    if (err == VTPMCA_OK)
        err = jcs_serialize(object, &text, &text_len, diag);
    json_decref(object);
    if (err != VTPMCA_OK)
        return err;
    memset(out, 0, REPORT_DATA_SIZE); /* the digest fills 48 bytes, the rest stays zero */
    int ok = EVP_Digest(text, text_len, out, NULL, EVP_sha384(), NULL) == 1;
    free(text);
    return ok ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-384 failed");
}

vtpmca_err report_data_match(const uint8_t report_data[REPORT_DATA_SIZE],
                             const report_data_inputs *inputs, report_data_flavour *matched,
                             vtpmca_diag *diag)
{
    if (report_data == NULL || inputs == NULL || matched == NULL || inputs->tee_key == NULL ||
        inputs->tee_pubkey == NULL || inputs->nonce == NULL || inputs->nonce_len == 0 ||
        inputs->nonce_len > KBS_BINDING_MAX_NONCE || inputs->nonce_text == NULL ||
        inputs->additional_evidence == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data match: missing argument");
    *matched = REPORT_DATA_FLAVOUR_NONE;
    uint8_t expected[REPORT_DATA_SIZE];
    vtpmca_err err;
    if (jwe_ec_curve_name(inputs->tee_key) != NULL) {
        err = inputs->tee_point != NULL
                  ? report_data_svsm_point(inputs->tee_point, inputs->tee_point_len, inputs->nonce,
                                           inputs->nonce_len, expected, diag)
                  : report_data_svsm(inputs->tee_key, inputs->nonce, inputs->nonce_len, expected,
                                     diag);
        if (err != VTPMCA_OK)
            return err;
        /* Both flavours binding the same bytes would need a hash collision: done. */
        if (CRYPTO_memcmp(expected, report_data, REPORT_DATA_SIZE) == 0) {
            *matched = REPORT_DATA_FLAVOUR_SVSM;
            return VTPMCA_OK;
        }
    }
    err = report_data_trustee(inputs->tee_pubkey, inputs->nonce_text, inputs->additional_evidence,
                              expected, diag);
    if (err != VTPMCA_OK)
        return err;
    if (CRYPTO_memcmp(expected, report_data, REPORT_DATA_SIZE) == 0)
        *matched = REPORT_DATA_FLAVOUR_TRUSTEE;
    if (*matched == REPORT_DATA_FLAVOUR_NONE)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "REPORT_DATA binds neither this nonce nor this tee-pubkey (checked the "
                           "SVSM and Trustee flavours)");
    return VTPMCA_OK;
}
