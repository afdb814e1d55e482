/* TPM 2.0 marshalling helpers and pure TPMT_PUBLIC functions (see vtpmca/tpm2_marshal.h).
 * Structure layouts follow TPM 2.0 Library Part 2; EK templates follow the TCG EK Credential
 * Profile 2.x (templates L-1, L-2, H-3). */
#include "vtpmca/tpm2_marshal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

/* TPM_RC format-1 layout: bit 7 set, bit 6 "parameter", bits 8..11 the number. */
#define RC_FMT1_NUMBER_SHIFT 8
#define RC_FMT1_NUMBER_MASK 0xFu
#define RC_FMT1_BASE_MASK 0x0BFu
#define RC_FMT1_SESSION_BASE 8u /* TPM_RC_S: number 9 is session 1 */
#define RSA_DEFAULT_EXPONENT 65537u
#define EC_UNCOMPRESSED_TAG 0x04

/* ---- Writer ---- */

vtpmca_err tpm2_writer_init(tpm2_writer *w, uint8_t *buf, size_t cap)
{
    if (w == NULL || (buf == NULL && cap > 0))
        return VTPMCA_ERR_INVALID_ARG;
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->err = VTPMCA_OK;
    return VTPMCA_OK;
}

/* Reserves n bytes and returns where they start, or NULL (and a sticky error). */
static uint8_t *writer_reserve(tpm2_writer *w, size_t n)
{
    if (w->err != VTPMCA_OK)
        return NULL;
    if (n > w->cap - w->len) {
        w->err = VTPMCA_ERR_LIMIT;
        return NULL;
    }
    uint8_t *at = w->buf + w->len;
    w->len += n;
    return at;
}

static void store_be(uint8_t *at, uint64_t value, size_t n)
{
    for (size_t i = 0; i < n; i++)
        at[i] = (uint8_t)(value >> (8 * (n - 1 - i)));
}

static uint64_t load_be(const uint8_t *at, size_t n)
{
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = (value << 8) | at[i];
    return value;
}

static vtpmca_err put_be(tpm2_writer *w, uint64_t value, size_t n)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t *at = writer_reserve(w, n);
    if (at != NULL)
        store_be(at, value, n);
    return w->err;
}

vtpmca_err tpm2_put_u8(tpm2_writer *w, uint8_t value)
{
    return put_be(w, value, 1);
}

vtpmca_err tpm2_put_u16(tpm2_writer *w, uint16_t value)
{
    return put_be(w, value, 2);
}

vtpmca_err tpm2_put_u32(tpm2_writer *w, uint32_t value)
{
    return put_be(w, value, 4);
}

vtpmca_err tpm2_put_u64(tpm2_writer *w, uint64_t value)
{
    return put_be(w, value, 8);
}

vtpmca_err tpm2_put_bytes(tpm2_writer *w, const void *data, size_t len)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (data == NULL && len > 0) {
        if (w->err == VTPMCA_OK)
            w->err = VTPMCA_ERR_INVALID_ARG;
        return w->err;
    }
    uint8_t *at = writer_reserve(w, len);
    if (at != NULL && len > 0)
        memcpy(at, data, len);
    return w->err;
}

vtpmca_err tpm2_put_tpm2b(tpm2_writer *w, const void *data, size_t len)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (len > UINT16_MAX && w->err == VTPMCA_OK)
        w->err = VTPMCA_ERR_LIMIT;
    tpm2_put_u16(w, (uint16_t)len);
    return tpm2_put_bytes(w, data, len);
}

/* Reserves a big-endian length field of `width` bytes to be filled in later. */
static vtpmca_err length_begin(tpm2_writer *w, size_t width, size_t *mark)
{
    if (w == NULL || mark == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *mark = w->len;
    if (writer_reserve(w, width) != NULL)
        memset(w->buf + *mark, 0, width);
    return w->err;
}

/* Fills the length field at mark with the number of bytes written after it. */
static vtpmca_err length_end(tpm2_writer *w, size_t width, size_t mark, uint64_t max)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (w->err != VTPMCA_OK)
        return w->err;
    if (mark > w->len || w->len - mark < width) {
        w->err = VTPMCA_ERR_INVALID_ARG;
        return w->err;
    }
    size_t body = w->len - mark - width;
    if (body > max) {
        w->err = VTPMCA_ERR_LIMIT;
        return w->err;
    }
    store_be(w->buf + mark, body, width);
    return VTPMCA_OK;
}

vtpmca_err tpm2_tpm2b_begin(tpm2_writer *w, size_t *mark)
{
    return length_begin(w, 2, mark);
}

vtpmca_err tpm2_tpm2b_end(tpm2_writer *w, size_t mark)
{
    return length_end(w, 2, mark, UINT16_MAX);
}

vtpmca_err tpm2_command_begin(tpm2_writer *w, uint16_t tag, uint32_t command_code)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (w->len != 0 || (tag != TPM2_ST_NO_SESSIONS && tag != TPM2_ST_SESSIONS)) {
        if (w->err == VTPMCA_OK)
            w->err = VTPMCA_ERR_INVALID_ARG;
        return w->err;
    }
    tpm2_put_u16(w, tag);
    tpm2_put_u32(w, 0); /* commandSize, patched by tpm2_command_end */
    return tpm2_put_u32(w, command_code);
}

vtpmca_err tpm2_command_end(tpm2_writer *w)
{
    if (w == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (w->err != VTPMCA_OK)
        return w->err;
    if (w->len < TPM2_HEADER_SIZE) {
        w->err = VTPMCA_ERR_INVALID_ARG;
        return w->err;
    }
    store_be(w->buf + 2, w->len, 4);
    return VTPMCA_OK;
}

vtpmca_err tpm2_sessions_begin(tpm2_writer *w, size_t *mark)
{
    return length_begin(w, 4, mark);
}

vtpmca_err tpm2_put_auth(tpm2_writer *w, uint32_t session_handle, const uint8_t *nonce,
                         size_t nonce_len, uint8_t attributes, const uint8_t *hmac, size_t hmac_len)
{
    tpm2_put_u32(w, session_handle);
    tpm2_put_tpm2b(w, nonce, nonce_len);
    tpm2_put_u8(w, attributes);
    return tpm2_put_tpm2b(w, hmac, hmac_len);
}

vtpmca_err tpm2_sessions_end(tpm2_writer *w, size_t mark)
{
    return length_end(w, 4, mark, UINT32_MAX);
}

vtpmca_err tpm2_put_password_session(tpm2_writer *w, const uint8_t *password, size_t len)
{
    size_t mark = 0;
    tpm2_sessions_begin(w, &mark);
    tpm2_put_auth(w, TPM2_RS_PW, NULL, 0, 0, password, len);
    return tpm2_sessions_end(w, mark);
}

/* ---- Reader ---- */

vtpmca_err tpm2_reader_init(tpm2_reader *r, const uint8_t *data, size_t len)
{
    if (r == NULL || (data == NULL && len > 0))
        return VTPMCA_ERR_INVALID_ARG;
    r->data = data;
    r->len = len;
    r->off = 0;
    r->err = VTPMCA_OK;
    return VTPMCA_OK;
}

vtpmca_err tpm2_get_bytes(tpm2_reader *r, size_t len, const uint8_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (r == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (r->err != VTPMCA_OK)
        return r->err;
    if (len > r->len - r->off) {
        r->err = VTPMCA_ERR_PARSE;
        return r->err;
    }
    *out = r->data + r->off;
    r->off += len;
    return VTPMCA_OK;
}

static vtpmca_err get_be(tpm2_reader *r, size_t n, uint64_t *out)
{
    const uint8_t *at = NULL;
    *out = 0;
    vtpmca_err err = tpm2_get_bytes(r, n, &at);
    if (err == VTPMCA_OK)
        *out = load_be(at, n);
    return err;
}

vtpmca_err tpm2_get_u8(tpm2_reader *r, uint8_t *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint64_t value;
    vtpmca_err err = get_be(r, 1, &value);
    *out = (uint8_t)value;
    return err;
}

vtpmca_err tpm2_get_u16(tpm2_reader *r, uint16_t *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint64_t value;
    vtpmca_err err = get_be(r, 2, &value);
    *out = (uint16_t)value;
    return err;
}

vtpmca_err tpm2_get_u32(tpm2_reader *r, uint32_t *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint64_t value;
    vtpmca_err err = get_be(r, 4, &value);
    *out = (uint32_t)value;
    return err;
}

vtpmca_err tpm2_get_u64(tpm2_reader *r, uint64_t *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    return get_be(r, 8, out);
}

vtpmca_err tpm2_get_tpm2b(tpm2_reader *r, const uint8_t **data, size_t *len)
{
    if (data == NULL || len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint16_t size = 0;
    *len = 0;
    tpm2_get_u16(r, &size);
    vtpmca_err err = tpm2_get_bytes(r, size, data);
    if (err == VTPMCA_OK)
        *len = size;
    return err;
}

vtpmca_err tpm2_reader_expect_end(const tpm2_reader *r)
{
    if (r == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (r->err != VTPMCA_OK)
        return r->err;
    return r->off == r->len ? VTPMCA_OK : VTPMCA_ERR_PARSE;
}

/* ---- Responses ---- */

vtpmca_err tpm2_response_parse(const uint8_t *resp, size_t len, tpm2_response *out,
                               vtpmca_diag *diag)
{
    if (resp == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "tpm2 response: NULL argument");
    memset(out, 0, sizeof(*out));
    if (len < TPM2_HEADER_SIZE)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tpm2 response: %zu bytes, header needs %u", len,
                           TPM2_HEADER_SIZE);
    uint16_t tag = (uint16_t)load_be(resp, 2);
    uint32_t size = (uint32_t)load_be(resp + 2, 4);
    uint32_t rc = (uint32_t)load_be(resp + 6, 4);
    if (tag != TPM2_ST_NO_SESSIONS && tag != TPM2_ST_SESSIONS)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "tpm2 response: bad tag 0x%04x", tag);
    if (size != len)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "tpm2 response: size field %u but %zu bytes received", size, len);
    /* An error response is only the header (Part 1, 18.10). */
    if (rc != TPM2_RC_SUCCESS && len != TPM2_HEADER_SIZE)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "tpm2 response: error 0x%08x with %zu bytes of body", rc,
                           len - TPM2_HEADER_SIZE);
    out->tag = tag;
    out->rc = rc;
    return tpm2_reader_init(&out->body, resp + TPM2_HEADER_SIZE, len - TPM2_HEADER_SIZE);
}

vtpmca_err tpm2_response_params(tpm2_response *resp, tpm2_reader *params)
{
    if (resp == NULL || params == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    tpm2_reader *body = &resp->body;
    if (resp->tag == TPM2_ST_NO_SESSIONS) {
        const uint8_t *rest = NULL;
        size_t rest_len = body->len - body->off;
        if (body->err != VTPMCA_OK)
            return body->err;
        tpm2_get_bytes(body, rest_len, &rest);
        return tpm2_reader_init(params, rest, rest_len);
    }
    uint32_t param_size = 0;
    const uint8_t *param_bytes = NULL;
    tpm2_get_u32(body, &param_size);
    vtpmca_err err = tpm2_get_bytes(body, param_size, &param_bytes);
    if (err != VTPMCA_OK)
        return err;
    return tpm2_reader_init(params, param_bytes, param_size);
}

/* ---- TPM_RC descriptions ---- */

typedef struct {
    uint32_t rc;
    const char *name;
} rc_name;

/* The codes a client of this module can plausibly meet (Part 2, table "TPM_RC"). */
static const rc_name RC_NAMES[] = {
    {0x000, "TPM_RC_SUCCESS"},
    {0x100, "TPM_RC_INITIALIZE"},
    {0x101, "TPM_RC_FAILURE"},
    {0x103, "TPM_RC_SEQUENCE"},
    {0x10B, "TPM_RC_PRIVATE"},
    {0x119, "TPM_RC_HMAC"},
    {0x120, "TPM_RC_DISABLED"},
    {0x121, "TPM_RC_EXCLUSIVE"},
    {0x124, "TPM_RC_AUTH_TYPE"},
    {0x125, "TPM_RC_AUTH_MISSING"},
    {0x126, "TPM_RC_POLICY"},
    {0x127, "TPM_RC_PCR"},
    {0x128, "TPM_RC_PCR_CHANGED"},
    {0x12D, "TPM_RC_UPGRADE"},
    {0x12E, "TPM_RC_TOO_MANY_CONTEXTS"},
    {0x12F, "TPM_RC_AUTH_UNAVAILABLE"},
    {0x130, "TPM_RC_REBOOT"},
    {0x131, "TPM_RC_UNBALANCED"},
    {0x142, "TPM_RC_COMMAND_SIZE"},
    {0x143, "TPM_RC_COMMAND_CODE"},
    {0x144, "TPM_RC_AUTHSIZE"},
    {0x145, "TPM_RC_AUTH_CONTEXT"},
    {0x146, "TPM_RC_NV_RANGE"},
    {0x147, "TPM_RC_NV_SIZE"},
    {0x148, "TPM_RC_NV_LOCKED"},
    {0x149, "TPM_RC_NV_AUTHORIZATION"},
    {0x14A, "TPM_RC_NV_UNINITIALIZED"},
    {0x14B, "TPM_RC_NV_SPACE"},
    {0x14C, "TPM_RC_NV_DEFINED"},
    {0x150, "TPM_RC_BAD_CONTEXT"},
    {0x151, "TPM_RC_CPHASH"},
    {0x152, "TPM_RC_PARENT"},
    {0x153, "TPM_RC_NEEDS_TEST"},
    {0x154, "TPM_RC_NO_RESULT"},
    {0x155, "TPM_RC_SENSITIVE"},
    {0x081, "TPM_RC_ASYMMETRIC"},
    {0x082, "TPM_RC_ATTRIBUTES"},
    {0x083, "TPM_RC_HASH"},
    {0x084, "TPM_RC_VALUE"},
    {0x085, "TPM_RC_HIERARCHY"},
    {0x087, "TPM_RC_KEY_SIZE"},
    {0x088, "TPM_RC_MGF"},
    {0x089, "TPM_RC_MODE"},
    {0x08A, "TPM_RC_TYPE"},
    {0x08B, "TPM_RC_HANDLE"},
    {0x08C, "TPM_RC_KDF"},
    {0x08D, "TPM_RC_RANGE"},
    {0x08E, "TPM_RC_AUTH_FAIL"},
    {0x08F, "TPM_RC_NONCE"},
    {0x090, "TPM_RC_PP"},
    {0x092, "TPM_RC_SCHEME"},
    {0x095, "TPM_RC_SIZE"},
    {0x096, "TPM_RC_SYMMETRIC"},
    {0x097, "TPM_RC_TAG"},
    {0x098, "TPM_RC_SELECTOR"},
    {0x09A, "TPM_RC_INSUFFICIENT"},
    {0x09B, "TPM_RC_SIGNATURE"},
    {0x09C, "TPM_RC_KEY"},
    {0x09D, "TPM_RC_POLICY_FAIL"},
    {0x09F, "TPM_RC_INTEGRITY"},
    {0x0A0, "TPM_RC_TICKET"},
    {0x0A1, "TPM_RC_RESERVED_BITS"},
    {0x0A2, "TPM_RC_BAD_AUTH"},
    {0x0A3, "TPM_RC_EXPIRED"},
    {0x0A4, "TPM_RC_POLICY_CC"},
    {0x0A5, "TPM_RC_BINDING"},
    {0x0A6, "TPM_RC_CURVE"},
    {0x0A7, "TPM_RC_ECC_POINT"},
    {0x901, "TPM_RC_CONTEXT_GAP"},
    {0x902, "TPM_RC_OBJECT_MEMORY"},
    {0x903, "TPM_RC_SESSION_MEMORY"},
    {0x904, "TPM_RC_MEMORY"},
    {0x905, "TPM_RC_SESSION_HANDLES"},
    {0x906, "TPM_RC_OBJECT_HANDLES"},
    {0x907, "TPM_RC_LOCALITY"},
    {0x908, "TPM_RC_YIELDED"},
    {0x909, "TPM_RC_CANCELED"},
    {0x90A, "TPM_RC_TESTING"},
    {0x910, "TPM_RC_REFERENCE_H0"},
    {0x911, "TPM_RC_REFERENCE_H1"},
    {0x912, "TPM_RC_REFERENCE_H2"},
    {0x913, "TPM_RC_REFERENCE_H3"},
    {0x914, "TPM_RC_REFERENCE_H4"},
    {0x915, "TPM_RC_REFERENCE_H5"},
    {0x916, "TPM_RC_REFERENCE_H6"},
    {0x920, "TPM_RC_NV_RATE"},
    {0x921, "TPM_RC_LOCKOUT"},
    {0x922, "TPM_RC_RETRY"},
    {0x923, "TPM_RC_NV_UNAVAILABLE"},
};

uint32_t tpm2_rc_base(uint32_t rc)
{
    return (rc & TPM2_RC_FMT1) ? (rc & RC_FMT1_BASE_MASK) : rc;
}

unsigned tpm2_rc_handle_number(uint32_t rc)
{
    unsigned number = (rc >> RC_FMT1_NUMBER_SHIFT) & RC_FMT1_NUMBER_MASK;
    if (!(rc & TPM2_RC_FMT1) || (rc & TPM2_RC_P) || number >= RC_FMT1_SESSION_BASE)
        return 0;
    return number;
}

vtpmca_err tpm2_rc_describe(uint32_t rc, char *out, size_t out_size)
{
    if (out == NULL || out_size < 16)
        return VTPMCA_ERR_INVALID_ARG;
    uint32_t base = tpm2_rc_base(rc);
    const char *name = "unknown TPM_RC";
    for (size_t i = 0; i < sizeof(RC_NAMES) / sizeof(RC_NAMES[0]); i++) {
        if (RC_NAMES[i].rc == base) {
            name = RC_NAMES[i].name;
            break;
        }
    }
    char where[24] = "";
    if (rc & TPM2_RC_FMT1) {
        unsigned number = (rc >> RC_FMT1_NUMBER_SHIFT) & RC_FMT1_NUMBER_MASK;
        if (rc & TPM2_RC_P)
            snprintf(where, sizeof(where), ", parameter %u", number);
        else if (number >= RC_FMT1_SESSION_BASE)
            snprintf(where, sizeof(where), ", session %u", number - RC_FMT1_SESSION_BASE);
        else if (tpm2_rc_handle_number(rc) > 0)
            snprintf(where, sizeof(where), ", handle %u", tpm2_rc_handle_number(rc));
    }
    snprintf(out, out_size, "0x%08x (%s%s)", rc, name, where);
    return VTPMCA_OK;
}

/* ---- Algorithms ---- */

vtpmca_err tpm2_hash_alg_md(uint16_t hash_alg, const EVP_MD **md, size_t *digest_len)
{
    if (md == NULL || digest_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    switch (hash_alg) {
    case TPM2_ALG_SHA1:
        *md = EVP_sha1();
        break;
    case TPM2_ALG_SHA256:
        *md = EVP_sha256();
        break;
    case TPM2_ALG_SHA384:
        *md = EVP_sha384();
        break;
    case TPM2_ALG_SHA512:
        *md = EVP_sha512();
        break;
    default:
        *md = NULL;
        *digest_len = 0;
        return VTPMCA_ERR_UNSUPPORTED;
    }
    *digest_len = (size_t)EVP_MD_get_size(*md);
    return VTPMCA_OK;
}

static bool is_hash_or_null(uint16_t alg)
{
    return alg == TPM2_ALG_NULL || alg == TPM2_ALG_SHA1 || alg == TPM2_ALG_SHA256 ||
           alg == TPM2_ALG_SHA384 || alg == TPM2_ALG_SHA512;
}

/* ---- TPMT_PUBLIC ---- */

/* TPMT_SYM_DEF_OBJECT: algorithm, then keyBits and mode unless NULL. */
static vtpmca_err parse_sym_def(tpm2_reader *r, tpm2_public *out, vtpmca_diag *diag)
{
    tpm2_get_u16(r, &out->sym_alg);
    if (r->err == VTPMCA_OK && out->sym_alg != TPM2_ALG_NULL) {
        if (out->sym_alg != TPM2_ALG_AES && out->sym_alg != TPM2_ALG_SM4 &&
            out->sym_alg != TPM2_ALG_CAMELLIA)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "TPMT_PUBLIC: unknown symmetric algorithm 0x%04x", out->sym_alg);
        tpm2_get_u16(r, &out->sym_key_bits);
        tpm2_get_u16(r, &out->sym_mode);
    }
    return VTPMCA_OK;
}

/* TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: scheme, then its details (Part 2, TPMU_ASYM_SCHEME). */
static vtpmca_err parse_scheme(tpm2_reader *r, tpm2_public *out, vtpmca_diag *diag)
{
    tpm2_get_u16(r, &out->scheme);
    if (r->err != VTPMCA_OK)
        return VTPMCA_OK;
    bool rsa = out->type == TPM2_ALG_RSA;
    switch (out->scheme) {
    case TPM2_ALG_NULL:
        return VTPMCA_OK;
    case TPM2_ALG_RSAES:
        if (!rsa)
            break;
        return VTPMCA_OK; /* TPMS_ENC_SCHEME_RSAES is empty */
    case TPM2_ALG_RSASSA:
    case TPM2_ALG_RSAPSS:
    case TPM2_ALG_OAEP:
        if (!rsa)
            break;
        tpm2_get_u16(r, &out->scheme_hash);
        return VTPMCA_OK;
    case TPM2_ALG_ECDSA:
    case TPM2_ALG_ECDH:
    case TPM2_ALG_SM2:
    case TPM2_ALG_ECSCHNORR:
    case TPM2_ALG_ECMQV:
        if (rsa)
            break;
        tpm2_get_u16(r, &out->scheme_hash);
        return VTPMCA_OK;
    case TPM2_ALG_ECDAA:
        if (rsa)
            break;
        tpm2_get_u16(r, &out->scheme_hash);
        tpm2_get_u16(r, &out->scheme_count);
        return VTPMCA_OK;
    default:
        break;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: scheme 0x%04x invalid for %s key",
                       out->scheme, rsa ? "an RSA" : "an ECC");
}

static vtpmca_err parse_kdf(tpm2_reader *r, tpm2_public *out, vtpmca_diag *diag)
{
    tpm2_get_u16(r, &out->kdf);
    if (r->err != VTPMCA_OK || out->kdf == TPM2_ALG_NULL)
        return VTPMCA_OK;
    if (out->kdf != TPM2_ALG_KDF1_SP800_56A && out->kdf != TPM2_ALG_KDF2 &&
        out->kdf != TPM2_ALG_KDF1_SP800_108)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: unknown KDF 0x%04x", out->kdf);
    tpm2_get_u16(r, &out->kdf_hash);
    return VTPMCA_OK;
}

/* Hashes inside the parameters (scheme, KDF) must be known algorithms. */
static vtpmca_err check_param_hashes(const tpm2_public *pub, vtpmca_diag *diag)
{
    bool scheme_has_hash = pub->scheme != TPM2_ALG_NULL && pub->scheme != TPM2_ALG_RSAES;
    if (scheme_has_hash && !is_hash_or_null(pub->scheme_hash))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: unknown scheme hash 0x%04x",
                           pub->scheme_hash);
    if (pub->type == TPM2_ALG_ECC && pub->kdf != TPM2_ALG_NULL && !is_hash_or_null(pub->kdf_hash))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: unknown KDF hash 0x%04x",
                           pub->kdf_hash);
    return VTPMCA_OK;
}

vtpmca_err tpm2_public_parse(const uint8_t *tpmt_public, size_t len, tpm2_public *out,
                             vtpmca_diag *diag)
{
    if (tpmt_public == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "TPMT_PUBLIC: NULL argument");
    tpm2_public pub;
    memset(&pub, 0, sizeof(pub));
    tpm2_reader r;
    tpm2_reader_init(&r, tpmt_public, len);

    tpm2_get_u16(&r, &pub.type);
    tpm2_get_u16(&r, &pub.name_alg);
    tpm2_get_u32(&r, &pub.object_attributes);
    if (r.err != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: truncated header (%zu bytes)",
                           len);
    if (pub.type == TPM2_ALG_KEYEDHASH || pub.type == TPM2_ALG_SYMCIPHER)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "TPMT_PUBLIC: type 0x%04x (keyedhash/symcipher) is not supported",
                           pub.type);
    if (pub.type != TPM2_ALG_RSA && pub.type != TPM2_ALG_ECC)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: unknown type 0x%04x", pub.type);
    if (!is_hash_or_null(pub.name_alg))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: unknown nameAlg 0x%04x",
                           pub.name_alg);

    tpm2_get_tpm2b(&r, &pub.auth_policy, &pub.auth_policy_len);
    vtpmca_err err = parse_sym_def(&r, &pub, diag);
    if (err == VTPMCA_OK)
        err = parse_scheme(&r, &pub, diag);
    if (err != VTPMCA_OK)
        return err;
    if (pub.type == TPM2_ALG_RSA) {
        tpm2_get_u16(&r, &pub.rsa_key_bits);
        tpm2_get_u32(&r, &pub.rsa_exponent);
        tpm2_get_tpm2b(&r, &pub.unique_a, &pub.unique_a_len);
    } else {
        tpm2_get_u16(&r, &pub.curve);
        err = parse_kdf(&r, &pub, diag);
        if (err != VTPMCA_OK)
            return err;
        tpm2_get_tpm2b(&r, &pub.unique_a, &pub.unique_a_len);
        tpm2_get_tpm2b(&r, &pub.unique_b, &pub.unique_b_len);
    }
    if (r.err != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: truncated at byte %zu of %zu",
                           r.off, len);
    if (r.off != len)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: %zu trailing bytes", len - r.off);
    err = check_param_hashes(&pub, diag);
    if (err != VTPMCA_OK)
        return err;
    *out = pub;
    return VTPMCA_OK;
}

vtpmca_err tpm2_put_public(tpm2_writer *w, const tpm2_public *pub)
{
    if (w == NULL || pub == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (pub->type != TPM2_ALG_RSA && pub->type != TPM2_ALG_ECC) {
        if (w->err == VTPMCA_OK)
            w->err = VTPMCA_ERR_UNSUPPORTED;
        return w->err;
    }
    tpm2_put_u16(w, pub->type);
    tpm2_put_u16(w, pub->name_alg);
    tpm2_put_u32(w, pub->object_attributes);
    tpm2_put_tpm2b(w, pub->auth_policy, pub->auth_policy_len);
    tpm2_put_u16(w, pub->sym_alg);
    if (pub->sym_alg != TPM2_ALG_NULL) {
        tpm2_put_u16(w, pub->sym_key_bits);
        tpm2_put_u16(w, pub->sym_mode);
    }
    tpm2_put_u16(w, pub->scheme);
    if (pub->scheme != TPM2_ALG_NULL && pub->scheme != TPM2_ALG_RSAES) {
        tpm2_put_u16(w, pub->scheme_hash);
        if (pub->scheme == TPM2_ALG_ECDAA)
            tpm2_put_u16(w, pub->scheme_count);
    }
    if (pub->type == TPM2_ALG_RSA) {
        tpm2_put_u16(w, pub->rsa_key_bits);
        tpm2_put_u32(w, pub->rsa_exponent);
        return tpm2_put_tpm2b(w, pub->unique_a, pub->unique_a_len);
    }
    tpm2_put_u16(w, pub->curve);
    tpm2_put_u16(w, pub->kdf);
    if (pub->kdf != TPM2_ALG_NULL)
        tpm2_put_u16(w, pub->kdf_hash);
    tpm2_put_tpm2b(w, pub->unique_a, pub->unique_a_len);
    return tpm2_put_tpm2b(w, pub->unique_b, pub->unique_b_len);
}

vtpmca_err vtpm_object_name(const uint8_t *tpmt_public, size_t len, uint8_t name_out[TPM2_NAME_MAX],
                            size_t *name_len, vtpmca_diag *diag)
{
    if (name_out == NULL || name_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "object name: NULL argument");
    *name_len = 0;
    tpm2_public pub;
    vtpmca_err err = tpm2_public_parse(tpmt_public, len, &pub, diag);
    if (err != VTPMCA_OK)
        return err;
    const EVP_MD *md = NULL;
    size_t digest_len = 0;
    if (tpm2_hash_alg_md(pub.name_alg, &md, &digest_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "object name: nameAlg 0x%04x has no digest", pub.name_alg);
    unsigned int written = 0;
    if (EVP_Digest(tpmt_public, len, name_out + 2, &written, md, NULL) != 1 ||
        written != digest_len) {
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "object name: digest failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    store_be(name_out, pub.name_alg, 2);
    *name_len = 2 + digest_len;
    return VTPMCA_OK;
}

/* Builds an OpenSSL public key of `type_name` from params. */
static vtpmca_err evp_from_params(const char *type_name, OSSL_PARAM_BLD *bld, EVP_PKEY **out,
                                  vtpmca_diag *diag)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type_name, NULL);
    EVP_PKEY *pkey = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "TPMT_PUBLIC: OpenSSL %s setup failed",
                          type_name);
        vtpmca_diag_append_openssl(diag);
    } else if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        /* OpenSSL refuses points that are not on the curve here. */
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "TPMT_PUBLIC: %s public key is invalid",
                          type_name);
        vtpmca_diag_append_openssl(diag);
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (err == VTPMCA_OK)
        *out = pkey;
    return err;
}

/* What an RSA key in unique must be before OpenSSL sees it; *exponent gets its value. */
static vtpmca_err rsa_check(const tpm2_public *pub, uint32_t *exponent, vtpmca_diag *diag)
{
    unsigned bits = pub->rsa_key_bits;
    if (bits != 1024 && bits != 2048 && bits != 3072 && bits != 4096)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "TPMT_PUBLIC: RSA keyBits %u", bits);
    if (pub->unique_a_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "TPMT_PUBLIC: RSA modulus is empty (a template, not a key)");
    if (pub->unique_a_len != bits / 8 || (pub->unique_a[0] & 0x80) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "TPMT_PUBLIC: RSA modulus is not %u bits (%zu bytes)", bits,
                           pub->unique_a_len);
    *exponent = pub->rsa_exponent == 0 ? RSA_DEFAULT_EXPONENT : pub->rsa_exponent;
    if (*exponent < 3 || (*exponent & 1) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TPMT_PUBLIC: RSA exponent %u is invalid",
                           *exponent);
    return VTPMCA_OK;
}

static vtpmca_err rsa_to_evp(const tpm2_public *pub, EVP_PKEY **out, vtpmca_diag *diag)
{
    uint32_t exponent = 0;
    vtpmca_err err = rsa_check(pub, &exponent, diag);
    if (err != VTPMCA_OK)
        return err;
    BIGNUM *n = BN_bin2bn(pub->unique_a, (int)pub->unique_a_len, NULL);
    BIGNUM *e = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (n == NULL || e == NULL || bld == NULL || BN_set_word(e, exponent) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "TPMT_PUBLIC: RSA parameters");
        vtpmca_diag_append_openssl(diag);
    } else {
        err = evp_from_params("RSA", bld, out, diag);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return err;
}

/* The NIST curves a TPMT_PUBLIC may name, with OpenSSL's names. */
static const struct {
    uint16_t tpm_curve;
    const char *group;
    int nid;
    size_t coord_len;
} ecc_curves[] = {
    {TPM2_ECC_NIST_P256, "P-256", NID_X9_62_prime256v1, 32},
    {TPM2_ECC_NIST_P384, "P-384", NID_secp384r1, 48},
    {TPM2_ECC_NIST_P521, "P-521", NID_secp521r1, 66},
};
#define ECC_CURVE_COUNT (sizeof(ecc_curves) / sizeof(ecc_curves[0]))

/* What an ECC key in unique must be before OpenSSL sees it; *curve indexes ecc_curves and
 * point receives 04 || x || y. */
static vtpmca_err ecc_check(const tpm2_public *pub, size_t *curve, uint8_t point[1 + 2 * 66],
                            vtpmca_diag *diag)
{
    size_t i = 0;
    while (i < ECC_CURVE_COUNT && ecc_curves[i].tpm_curve != pub->curve)
        i++;
    if (i == ECC_CURVE_COUNT)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "TPMT_PUBLIC: ECC curve 0x%04x",
                           pub->curve);
    size_t coord_len = ecc_curves[i].coord_len;
    if (pub->unique_a_len == 0 && pub->unique_b_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "TPMT_PUBLIC: ECC point is empty (a template, not a key)");
    if (pub->unique_a_len != coord_len || pub->unique_b_len != coord_len)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "TPMT_PUBLIC: ECC point has %zu/%zu-byte coordinates, %s needs %zu",
                           pub->unique_a_len, pub->unique_b_len, ecc_curves[i].group, coord_len);
    point[0] = EC_UNCOMPRESSED_TAG;
    memcpy(point + 1, pub->unique_a, coord_len);
    memcpy(point + 1 + coord_len, pub->unique_b, coord_len);
    *curve = i;
    return VTPMCA_OK;
}

static vtpmca_err ecc_to_evp(const tpm2_public *pub, EVP_PKEY **out, vtpmca_diag *diag)
{
    uint8_t point[1 + 2 * 66];
    size_t curve = 0;
    vtpmca_err err = ecc_check(pub, &curve, point, diag);
    if (err != VTPMCA_OK)
        return err;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ecc_curves[curve].group,
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         1 + 2 * ecc_curves[curve].coord_len) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "TPMT_PUBLIC: EC parameters");
        vtpmca_diag_append_openssl(diag);
    } else {
        err = evp_from_params("EC", bld, out, diag);
    }
    OSSL_PARAM_BLD_free(bld);
    return err;
}

vtpmca_err vtpm_tpmt_public_to_evp(const uint8_t *tpmt_public, size_t len, EVP_PKEY **out,
                                   vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "TPMT_PUBLIC: NULL argument");
    *out = NULL;
    tpm2_public pub;
    vtpmca_err err = tpm2_public_parse(tpmt_public, len, &pub, diag);
    if (err != VTPMCA_OK)
        return err;
    return pub.type == TPM2_ALG_RSA ? rsa_to_evp(&pub, out, diag) : ecc_to_evp(&pub, out, diag);
}

/* The curves' groups, made once per process: a group costs more to build (~7 us) than
 * checking a point on it, and EC_GROUP objects may be shared read-only between threads.
 * They live until exit. */
static EC_GROUP *ecc_groups[ECC_CURVE_COUNT];
static pthread_once_t ecc_groups_once = PTHREAD_ONCE_INIT;

static void make_ecc_groups(void)
{
    for (size_t i = 0; i < ECC_CURVE_COUNT; i++)
        ecc_groups[i] = EC_GROUP_new_by_curve_name(ecc_curves[i].nid);
}

vtpmca_err vtpm_tpmt_public_check_key(const uint8_t *tpmt_public, size_t len, vtpmca_diag *diag)
{
    tpm2_public pub;
    vtpmca_err err = tpm2_public_parse(tpmt_public, len, &pub, diag);
    if (err != VTPMCA_OK)
        return err;
    if (pub.type == TPM2_ALG_RSA) {
        uint32_t exponent = 0;
        return rsa_check(&pub, &exponent, diag);
    }
    uint8_t point[1 + 2 * 66];
    size_t curve = 0;
    err = ecc_check(&pub, &curve, point, diag);
    if (err != VTPMCA_OK)
        return err;
    pthread_once(&ecc_groups_once, make_ecc_groups);
    const EC_GROUP *group = ecc_groups[curve];
    EC_POINT *p = group != NULL ? EC_POINT_new(group) : NULL;
    if (p == NULL) {
        vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "TPMT_PUBLIC: EC point");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_NOMEM;
    }
    /* oct2point refuses points that are not on the curve, as EVP_PKEY_fromdata does. */
    if (EC_POINT_oct2point(group, p, point, 1 + 2 * ecc_curves[curve].coord_len, NULL) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "TPMT_PUBLIC: EC public key is invalid");
        vtpmca_diag_append_openssl(diag);
    }
    EC_POINT_free(p);
    return err;
}

/* ---- EK templates (TCG EK Credential Profile for TPM Family 2.0, Level 0, v2.x) ---- */

/* PolicyA = PolicySecret(TPM_RH_ENDORSEMENT):
 * H(H(0..0 || TPM_CC_PolicySecret || TPM_RH_ENDORSEMENT) || policyRef=""). */
const uint8_t TPM2_EK_POLICY_A_SHA256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

const uint8_t TPM2_EK_POLICY_A_SHA384[48] = {
    0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6,
    0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e,
    0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
};

/* PolicyC = PolicyAuthorizeNV(I-2): H(0..0 || TPM_CC_PolicyAuthorizeNV || name of I-2). */
const uint8_t TPM2_EK_POLICY_C_SHA384[48] = {
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
    0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
    0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
};

/* PolicyB = PolicyOR(PolicyA, PolicyC): H(0..0 || TPM_CC_PolicyOR || PolicyA || PolicyC). */
const uint8_t TPM2_EK_POLICY_B_SHA384[48] = {
    0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
    0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
    0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
};

/* The low-range templates put zeros of the key size in `unique` (RSA 256 bytes, P-256 32
 * bytes per coordinate); the high-range template H-3 leaves it empty. */
static const uint8_t EK_UNIQUE_ZEROS[256];

/* fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt */
#define EK_ATTRIBUTES_LOW 0x000300b2u
/* ... plus userWithAuth (high-range templates) */
#define EK_ATTRIBUTES_HIGH 0x000300f2u

vtpmca_err vtpm_ek_template(vtpm_ek_kind kind, tpm2_public *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    tpm2_public t;
    memset(&t, 0, sizeof(t));
    t.sym_alg = TPM2_ALG_AES;
    t.sym_mode = TPM2_ALG_CFB;
    t.scheme = TPM2_ALG_NULL;
    t.kdf = TPM2_ALG_NULL;
    switch (kind) {
    case VTPM_EK_RSA2048: /* L-1 */
        t.type = TPM2_ALG_RSA;
        t.name_alg = TPM2_ALG_SHA256;
        t.object_attributes = EK_ATTRIBUTES_LOW;
        t.auth_policy = TPM2_EK_POLICY_A_SHA256;
        t.auth_policy_len = sizeof(TPM2_EK_POLICY_A_SHA256);
        t.sym_key_bits = 128;
        t.rsa_key_bits = 2048;
        t.rsa_exponent = 0;
        t.unique_a = EK_UNIQUE_ZEROS;
        t.unique_a_len = 256;
        break;
    case VTPM_EK_ECC_P256: /* L-2 */
        t.type = TPM2_ALG_ECC;
        t.name_alg = TPM2_ALG_SHA256;
        t.object_attributes = EK_ATTRIBUTES_LOW;
        t.auth_policy = TPM2_EK_POLICY_A_SHA256;
        t.auth_policy_len = sizeof(TPM2_EK_POLICY_A_SHA256);
        t.sym_key_bits = 128;
        t.curve = TPM2_ECC_NIST_P256;
        t.unique_a = EK_UNIQUE_ZEROS;
        t.unique_a_len = 32;
        t.unique_b = EK_UNIQUE_ZEROS;
        t.unique_b_len = 32;
        break;
    case VTPM_EK_ECC_P384: /* H-3 */
        t.type = TPM2_ALG_ECC;
        t.name_alg = TPM2_ALG_SHA384;
        t.object_attributes = EK_ATTRIBUTES_HIGH;
        t.auth_policy = TPM2_EK_POLICY_B_SHA384;
        t.auth_policy_len = sizeof(TPM2_EK_POLICY_B_SHA384);
        t.sym_key_bits = 256;
        t.curve = TPM2_ECC_NIST_P384;
        break;
    default:
        return VTPMCA_ERR_INVALID_ARG;
    }
    *out = t;
    return VTPMCA_OK;
}

vtpmca_err vtpm_ek_cert_nv_index(vtpm_ek_kind kind, uint32_t *nv_index)
{
    if (nv_index == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    switch (kind) {
    case VTPM_EK_RSA2048:
        *nv_index = VTPM_NV_EK_CERT_RSA2048;
        return VTPMCA_OK;
    case VTPM_EK_ECC_P256:
        *nv_index = VTPM_NV_EK_CERT_ECC_P256;
        return VTPMCA_OK;
    case VTPM_EK_ECC_P384:
        *nv_index = VTPM_NV_EK_CERT_ECC_P384;
        return VTPMCA_OK;
    }
    return VTPMCA_ERR_INVALID_ARG;
}
