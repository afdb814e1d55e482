/* The rollback ledger's wire protocol (see include/vtpmca/ledger_protocol.h and
 * docs/protocol.md, "Rollback ledger: protocol").
 *
 * A request is handled in this order, so that nothing changes before it is authenticated:
 * parse (400) -> the enrolled instance and its ledger key (404 / 403) -> the MAC (401) -> the
 * nonce is fresh, and is remembered (409) -> the engine -> the MACed answer. */
#include "vtpmca/ledger_protocol.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cbor.h>

#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/log.h"
#include "vtpmca/wire_codec.h"

/* Bodies of ledger messages are a few hundred bytes; anything larger is refused before it is
 * parsed, which also bounds the nesting a hostile CBOR or JSON body can reach. */
#define LEDGER_BODY_MAX 4096
#define LEDGER_KEY_CONTEXT_MAX (sizeof(LEDGER_KEY_CONTEXT_PREFIX) + STORE_INSTANCE_ID_MAX)

/* ---- Keys ---- */

vtpmca_err ledger_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                              size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                              size_t out_len, vtpmca_diag *diag)
{
    if (ikm == NULL || ikm_len == 0 || (salt == NULL && salt_len > 0) ||
        (info == NULL && info_len > 0) || out == NULL || out_len == 0 || out_len > 255 * 32)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "hkdf: bad argument");
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL) {
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "hkdf: HKDF is not available");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    /* OpenSSL wants non-NULL pointers even for empty salt and info. */
    static const uint8_t empty[1] = {0};
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          (void *)(salt != NULL ? salt : empty), salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                          (void *)(info != NULL ? info : empty), info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, out_len);
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "hkdf: derivation failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    return VTPMCA_OK;
}

vtpmca_err ledger_key_derive(const uint8_t *persistence_key, size_t persistence_key_len,
                             const char *instance, uint8_t out[LEDGER_KEY_LEN], vtpmca_diag *diag)
{
    if (persistence_key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger key: missing argument");
    if (persistence_key_len == 0 || persistence_key_len > KEYVAULT_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ledger key: a persistence key is 1 to %d bytes, got %zu",
                           KEYVAULT_KEY_MAX, persistence_key_len);
    vtpmca_err err = store_check_instance_id(instance, diag);
    if (err != VTPMCA_OK)
        return err;
    return ledger_hkdf_sha256(persistence_key, persistence_key_len,
                              (const uint8_t *)LEDGER_KDF_SALT, strlen(LEDGER_KDF_SALT),
                              (const uint8_t *)instance, strlen(instance), out, LEDGER_KEY_LEN,
                              diag);
}

/* ---- Canonical MAC input ---- */

typedef struct {
    uint8_t *buf;
    size_t size, len;
    bool overflow;
} byte_writer;

static void put_bytes(byte_writer *w, const void *data, size_t len)
{
    if (w->overflow || len > w->size - w->len) {
        w->overflow = true;
        return;
    }
    if (len > 0)
        memcpy(w->buf + w->len, data, len);
    w->len += len;
}

/* A field: u32 big-endian length, then the bytes. */
static void put_field(byte_writer *w, const void *data, size_t len)
{
    uint8_t prefix[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};
    put_bytes(w, prefix, sizeof(prefix));
    put_bytes(w, data, len);
}

static void put_text_field(byte_writer *w, const char *text)
{
    put_field(w, text, strlen(text));
}

static void put_label(byte_writer *w, const char *label)
{
    put_bytes(w, label, strlen(label) + 1); /* with its NUL */
}

static bool text_in(const char *text, size_t size)
{
    return memchr(text, '\0', size) != NULL;
}

vtpmca_err ledger_msg_mac_input(ledger_msg_kind kind, const ledger_msg *msg, uint8_t *out,
                                size_t out_size, size_t *out_len, vtpmca_diag *diag)
{
    if (msg == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger mac input: missing argument");
    *out_len = 0;
    if (!text_in(msg->instance, sizeof(msg->instance)) ||
        !text_in(msg->result, sizeof(msg->result)) || msg->root_len > LEDGER_ROOT_MAX ||
        msg->nonce_len > LEDGER_NONCE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger mac input: bad message");
    byte_writer w = {out, out_size, 0, false};
    bool entry = msg->has_entry;
    switch (kind) {
    case LEDGER_MSG_ADVANCE_REQUEST:
        put_label(&w, LEDGER_LABEL_ADVANCE);
        put_text_field(&w, msg->instance);
        put_field(&w, msg->counter, LEDGER_COUNTER_LEN);
        put_field(&w, msg->root, msg->root_len);
        break;
    case LEDGER_MSG_ADVANCE_ANSWER:
        put_label(&w, LEDGER_LABEL_ADVANCE_ACK);
        put_text_field(&w, msg->instance);
        put_text_field(&w, msg->result);
        put_field(&w, msg->counter, entry ? LEDGER_COUNTER_LEN : 0);
        put_field(&w, msg->root, entry ? msg->root_len : 0);
        break;
    case LEDGER_MSG_QUERY_REQUEST:
        put_label(&w, LEDGER_LABEL_QUERY);
        put_text_field(&w, msg->instance);
        break;
    case LEDGER_MSG_QUERY_ANSWER: {
        put_label(&w, LEDGER_LABEL_QUERY_ANSWER);
        put_text_field(&w, msg->instance);
        put_text_field(&w, msg->result);
        put_field(&w, msg->counter, entry ? LEDGER_COUNTER_LEN : 0);
        put_field(&w, msg->origin, entry ? LEDGER_COUNTER_LEN : 0);
        put_field(&w, msg->root, entry ? msg->root_len : 0);
        uint64_t t = (uint64_t)msg->time_ms;
        uint8_t time_be[8];
        for (int i = 0; i < 8; i++)
            time_be[i] = (uint8_t)(t >> (56 - 8 * i));
        put_field(&w, time_be, entry ? sizeof(time_be) : 0);
        break;
    }
    default:
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ledger mac input: this message has no MAC");
    }
    put_field(&w, msg->nonce, msg->nonce_len);
    if (w.overflow)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "ledger mac input: buffer of %zu bytes too small", out_size);
    *out_len = w.len;
    return VTPMCA_OK;
}

/* HMAC is fetched once per process: an implicit fetch per request costs a method lookup. */
static EVP_MAC *hmac_method;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void)
{
    hmac_method = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

static vtpmca_err hmac_sha256(const uint8_t key[LEDGER_KEY_LEN], const uint8_t *data, size_t len,
                              uint8_t out[LEDGER_MAC_LEN], vtpmca_diag *diag)
{
    pthread_once(&hmac_once, fetch_hmac);
    EVP_MAC_CTX *ctx = hmac_method != NULL ? EVP_MAC_CTX_new(hmac_method) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t mac_len = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, LEDGER_KEY_LEN, params) == 1 &&
             EVP_MAC_update(ctx, data, len) == 1 &&
             EVP_MAC_final(ctx, out, &mac_len, LEDGER_MAC_LEN) == 1 && mac_len == LEDGER_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    if (!ok) {
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ledger: HMAC-SHA-256 failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    return VTPMCA_OK;
}

static vtpmca_err compute_mac(ledger_msg_kind kind, const ledger_msg *msg,
                              const uint8_t key[LEDGER_KEY_LEN], uint8_t mac[LEDGER_MAC_LEN],
                              vtpmca_diag *diag)
{
    if (msg == NULL || key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger mac: missing argument");
    uint8_t input[LEDGER_MAC_INPUT_MAX];
    size_t len = 0;
    vtpmca_err err = ledger_msg_mac_input(kind, msg, input, sizeof(input), &len, diag);
    if (err == VTPMCA_OK)
        err = hmac_sha256(key, input, len, mac, diag);
    return err;
}

vtpmca_err ledger_msg_sign(ledger_msg_kind kind, ledger_msg *msg, const uint8_t key[LEDGER_KEY_LEN],
                           vtpmca_diag *diag)
{
    return compute_mac(kind, msg, key, msg != NULL ? msg->mac : NULL, diag);
}

vtpmca_err ledger_msg_verify(ledger_msg_kind kind, const ledger_msg *msg,
                             const uint8_t key[LEDGER_KEY_LEN], vtpmca_diag *diag)
{
    uint8_t expected[LEDGER_MAC_LEN];
    vtpmca_err err = compute_mac(kind, msg, key, expected, diag);
    if (err != VTPMCA_OK)
        return err;
    if (CRYPTO_memcmp(expected, msg->mac, LEDGER_MAC_LEN) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "ledger: the MAC does not verify");
    return VTPMCA_OK;
}

/* ---- JSON and CBOR bodies ---- */

typedef enum {
    F_INSTANCE,
    F_RESULT,
    F_COUNTER,
    F_ORIGIN,
    F_ROOT,
    F_TIME,
    F_NONCE,
    F_MAC,
    F_LOCKED,
    F_ERROR,
    F_MESSAGE,
    F_COUNT
} field_id;

typedef enum {
    T_TEXT,    /* a string; CBOR text string */
    T_COUNTER, /* 16 bytes: JSON 32 hex digits, CBOR byte string */
    T_BYTES,   /* JSON standard base64 with padding, CBOR byte string */
    T_TIME,    /* unsigned integer */
    T_BOOL,
} field_type;

static const struct {
    const char *name;
    field_type type;
    size_t min, max; /* T_TEXT: characters; T_BYTES: bytes */
} FIELDS[F_COUNT] = {
    [F_INSTANCE] = {"instance", T_TEXT, 1, STORE_INSTANCE_ID_MAX},
    [F_RESULT] = {"result", T_TEXT, 1, 15},
    [F_COUNTER] = {"counter", T_COUNTER, 0, 0},
    [F_ORIGIN] = {"origin", T_COUNTER, 0, 0},
    [F_ROOT] = {"root", T_BYTES, 1, LEDGER_ROOT_MAX},
    [F_TIME] = {"time", T_TIME, 0, 0},
    [F_NONCE] = {"nonce", T_BYTES, LEDGER_NONCE_MIN, LEDGER_NONCE_MAX},
    [F_MAC] = {"mac", T_BYTES, LEDGER_MAC_LEN, LEDGER_MAC_LEN},
    [F_LOCKED] = {"locked", T_BOOL, 0, 0},
    [F_ERROR] = {"error", T_TEXT, 1, 31},
    [F_MESSAGE] = {"message", T_TEXT, 0, 255},
};

#define BIT(f) (1u << (f))
#define ENTRY_FIELDS (BIT(F_COUNTER) | BIT(F_ROOT))
#define QUERY_ENTRY_FIELDS (ENTRY_FIELDS | BIT(F_ORIGIN) | BIT(F_TIME))
#define ERROR_FIELDS (BIT(F_ERROR) | BIT(F_MESSAGE))

/* Members a request must have (and may have: requests are strict). */
static unsigned request_fields(ledger_msg_kind kind)
{
    switch (kind) {
    case LEDGER_MSG_ADVANCE_REQUEST:
        return BIT(F_INSTANCE) | BIT(F_COUNTER) | BIT(F_ROOT) | BIT(F_NONCE) | BIT(F_MAC);
    case LEDGER_MSG_QUERY_REQUEST:
        return BIT(F_INSTANCE) | BIT(F_NONCE) | BIT(F_MAC);
    case LEDGER_MSG_STATEMENT_REQUEST:
        return BIT(F_INSTANCE) | BIT(F_NONCE);
    default:
        return 0;
    }
}

static bool is_request(ledger_msg_kind kind)
{
    return request_fields(kind) != 0;
}

/* The members an answer is written with. */
static unsigned answer_fields(ledger_msg_kind kind, const ledger_msg *m)
{
    unsigned f = BIT(F_RESULT) | BIT(F_NONCE) | BIT(F_MAC);
    if (m->has_entry)
        f |= kind == LEDGER_MSG_QUERY_ANSWER ? QUERY_ENTRY_FIELDS : ENTRY_FIELDS;
    if (m->error[0] != '\0') {
        f |= ERROR_FIELDS;
        if (kind == LEDGER_MSG_ADVANCE_ANSWER)
            f |= BIT(F_LOCKED);
    }
    return f;
}

/* Where a bytes field lives in the message. */
static uint8_t *bytes_of(ledger_msg *m, field_id f, size_t **len)
{
    switch (f) {
    case F_ROOT:
        *len = &m->root_len;
        return m->root;
    case F_NONCE:
        *len = &m->nonce_len;
        return m->nonce;
    default:
        *len = NULL;
        return m->mac;
    }
}

static char *text_of(ledger_msg *m, field_id f, size_t *size)
{
    switch (f) {
    case F_INSTANCE:
        *size = sizeof(m->instance);
        return m->instance;
    case F_RESULT:
        *size = sizeof(m->result);
        return m->result;
    case F_ERROR:
        *size = sizeof(m->error);
        return m->error;
    default:
        *size = sizeof(m->message);
        return m->message;
    }
}

/* -- encoding -- */

static json_t *json_counter(const uint8_t counter[LEDGER_COUNTER_LEN])
{
    char hex[LEDGER_COUNTER_HEX_LEN + 1];
    if (ledger_counter_format_hex(counter, hex, sizeof(hex)) != VTPMCA_OK)
        return NULL;
    return json_string(hex);
}

static bool encode_field_json(json_t *obj, field_id f, const ledger_msg *m)
{
    ledger_msg *mm = (ledger_msg *)m; /* accessors are shared with decoding; nothing is written */
    json_t *value = NULL;
    size_t size = 0, *len = NULL;
    switch (FIELDS[f].type) {
    case T_TEXT:
        value = json_string(text_of(mm, f, &size));
        break;
    case T_COUNTER:
        value = json_counter(f == F_COUNTER ? m->counter : m->origin);
        break;
    case T_BYTES: {
        const uint8_t *data = bytes_of(mm, f, &len);
        value = vt_json_b64(data, len != NULL ? *len : LEDGER_MAC_LEN);
        break;
    }
    case T_TIME:
        value = json_integer((json_int_t)m->time_ms);
        break;
    case T_BOOL:
        value = json_boolean(m->locked);
        break;
    }
    return value != NULL && json_object_set_new(obj, FIELDS[f].name, value) == 0;
}

static bool encode_field_cbor(cbor_item_t *map, field_id f, const ledger_msg *m)
{
    ledger_msg *mm = (ledger_msg *)m;
    cbor_item_t *value = NULL;
    size_t size = 0, *len = NULL;
    switch (FIELDS[f].type) {
    case T_TEXT:
        value = cbor_build_string(text_of(mm, f, &size));
        break;
    case T_COUNTER:
        value = cbor_build_bytestring(f == F_COUNTER ? m->counter : m->origin, LEDGER_COUNTER_LEN);
        break;
    case T_BYTES: {
        const uint8_t *data = bytes_of(mm, f, &len);
        value = cbor_build_bytestring(data, len != NULL ? *len : LEDGER_MAC_LEN);
        break;
    }
    case T_TIME:
        value = vt_cbor_uint((uint64_t)m->time_ms);
        break;
    case T_BOOL:
        value = cbor_build_bool(m->locked);
        break;
    }
    return vt_cbor_map_put(map, FIELDS[f].name, value);
}

static unsigned popcount(unsigned v)
{
    unsigned n = 0;
    for (; v != 0; v &= v - 1)
        n++;
    return n;
}

static vtpmca_err encode_fields(ledger_format format, const ledger_msg *m, unsigned fields,
                                uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    bool ok = true;
    if (format == LEDGER_FORMAT_JSON) {
        json_t *obj = json_object();
        for (int f = 0; f < F_COUNT && ok && obj != NULL; f++)
            if (fields & BIT(f))
                ok = encode_field_json(obj, (field_id)f, m);
        char *text = ok && obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        if (text == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: cannot encode the message");
        *out = (uint8_t *)text;
        *out_len = strlen(text);
        return VTPMCA_OK;
    }
    cbor_item_t *map = cbor_new_definite_map(popcount(fields));
    for (int f = 0; f < F_COUNT && ok && map != NULL; f++)
        if (fields & BIT(f))
            ok = encode_field_cbor(map, (field_id)f, m);
    unsigned char *buf = NULL;
    size_t buf_size = 0, len = 0;
    if (ok && map != NULL)
        len = cbor_serialize_alloc(map, &buf, &buf_size);
    if (map != NULL)
        cbor_decref(&map);
    if (len == 0) {
        free(buf);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: cannot encode the message");
    }
    *out = buf;
    *out_len = len;
    return VTPMCA_OK;
}

vtpmca_err ledger_msg_encode(ledger_msg_kind kind, ledger_format format, const ledger_msg *msg,
                             uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (msg == NULL || out == NULL || out_len == NULL ||
        (format != LEDGER_FORMAT_JSON && format != LEDGER_FORMAT_CBOR) ||
        kind > LEDGER_MSG_STATEMENT_REQUEST)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger encode: bad argument");
    if (!text_in(msg->instance, sizeof(msg->instance)) ||
        !text_in(msg->result, sizeof(msg->result)) || !text_in(msg->error, sizeof(msg->error)) ||
        !text_in(msg->message, sizeof(msg->message)) || msg->root_len > LEDGER_ROOT_MAX ||
        msg->nonce_len > LEDGER_NONCE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger encode: bad message");
    unsigned fields = is_request(kind) ? request_fields(kind) : answer_fields(kind, msg);
    return encode_fields(format, msg, fields, out, out_len, diag);
}

/* -- decoding -- */

static int field_by_name(const char *name, size_t len)
{
    for (int f = 0; f < F_COUNT; f++)
        if (strlen(FIELDS[f].name) == len && memcmp(FIELDS[f].name, name, len) == 0)
            return f;
    return -1;
}

static vtpmca_err set_text(ledger_msg *m, field_id f, const char *text, size_t len,
                           vtpmca_diag *diag)
{
    if (len < FIELDS[f].min || len > FIELDS[f].max || memchr(text, '\0', len) != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" must be %zu to %zu characters",
                           FIELDS[f].name, FIELDS[f].min, FIELDS[f].max);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        /* Diagnostics and results end up in logs and terminals: printable ASCII only, except
         * messages, which are printed escaped. */
        if (f != F_MESSAGE && (c < 0x20 || c >= 0x7f))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" holds a byte 0x%02x", FIELDS[f].name,
                               c);
    }
    size_t size = 0;
    char *dst = text_of(m, f, &size);
    memcpy(dst, text, len);
    dst[len] = '\0';
    if (f == F_INSTANCE)
        return store_check_instance_id(dst, diag) == VTPMCA_OK
                   ? VTPMCA_OK
                   : vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                                 "\"instance\" must be 1 to %d characters of [A-Za-z0-9._:-]",
                                 STORE_INSTANCE_ID_MAX);
    return VTPMCA_OK;
}

static vtpmca_err set_bytes(ledger_msg *m, field_id f, const uint8_t *data, size_t len,
                            vtpmca_diag *diag)
{
    if (FIELDS[f].type == T_COUNTER) {
        if (len != LEDGER_COUNTER_LEN)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" must be %d bytes, got %zu",
                               FIELDS[f].name, LEDGER_COUNTER_LEN, len);
        memcpy(f == F_COUNTER ? m->counter : m->origin, data, LEDGER_COUNTER_LEN);
        return VTPMCA_OK;
    }
    if (len < FIELDS[f].min || len > FIELDS[f].max)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" must be %zu to %zu bytes, got %zu",
                           FIELDS[f].name, FIELDS[f].min, FIELDS[f].max, len);
    size_t *dst_len = NULL;
    uint8_t *dst = bytes_of(m, f, &dst_len);
    memcpy(dst, data, len);
    if (dst_len != NULL)
        *dst_len = len;
    return VTPMCA_OK;
}

static vtpmca_err set_time(ledger_msg *m, uint64_t v, vtpmca_diag *diag)
{
    if (v > INT64_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"time\" is out of range");
    m->time_ms = (int64_t)v;
    return VTPMCA_OK;
}

static vtpmca_err wrong_type(field_id f, const char *want, vtpmca_diag *diag)
{
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" must be %s", FIELDS[f].name, want);
}

static vtpmca_err decode_json_value(ledger_msg *m, field_id f, json_t *v, vtpmca_diag *diag)
{
    switch (FIELDS[f].type) {
    case T_TEXT:
        if (!json_is_string(v))
            return wrong_type(f, "a string", diag);
        return set_text(m, f, json_string_value(v), json_string_length(v), diag);
    case T_COUNTER: {
        if (!json_is_string(v))
            return wrong_type(f, "a string of 32 hex digits", diag);
        uint8_t counter[LEDGER_COUNTER_LEN];
        vtpmca_diag inner = {{0}};
        if (json_string_length(v) != LEDGER_COUNTER_HEX_LEN ||
            ledger_counter_parse_hex(json_string_value(v), counter, &inner) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\": %s", FIELDS[f].name,
                               inner.msg[0] != '\0' ? inner.msg : "a counter is 32 hex digits");
        return set_bytes(m, f, counter, sizeof(counter), diag);
    }
    case T_BYTES: {
        if (!json_is_string(v))
            return wrong_type(f, "a string (standard base64)", diag);
        uint8_t *data = NULL;
        size_t len = 0;
        if (vt_b64_decode_alloc(json_string_value(v), json_string_length(v), VT_B64_STD, &data,
                                &len) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "\"%s\" is not standard base64 with padding",
                               FIELDS[f].name);
        vtpmca_err err = set_bytes(m, f, data, len, diag);
        free(data);
        return err;
    }
    case T_TIME:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return wrong_type(f, "a non-negative integer", diag);
        return set_time(m, (uint64_t)json_integer_value(v), diag);
    case T_BOOL:
        if (!json_is_boolean(v))
            return wrong_type(f, "true or false", diag);
        m->locked = json_is_true(v);
        return VTPMCA_OK;
    }
    return VTPMCA_ERR_INTERNAL;
}

static vtpmca_err decode_cbor_value(ledger_msg *m, field_id f, cbor_item_t *v, vtpmca_diag *diag)
{
    switch (FIELDS[f].type) {
    case T_TEXT:
        if (!cbor_isa_string(v) || !cbor_string_is_definite(v))
            return wrong_type(f, "a definite-length text string", diag);
        return set_text(m, f, (const char *)cbor_string_handle(v), cbor_string_length(v), diag);
    case T_COUNTER:
    case T_BYTES:
        if (!cbor_isa_bytestring(v) || !cbor_bytestring_is_definite(v))
            return wrong_type(f, "a definite-length byte string", diag);
        return set_bytes(m, f, cbor_bytestring_handle(v), cbor_bytestring_length(v), diag);
    case T_TIME:
        if (!cbor_isa_uint(v))
            return wrong_type(f, "an unsigned integer", diag);
        return set_time(m, cbor_get_int(v), diag);
    case T_BOOL:
        if (!cbor_is_bool(v))
            return wrong_type(f, "true or false", diag);
        m->locked = cbor_get_bool(v);
        return VTPMCA_OK;
    }
    return VTPMCA_ERR_INTERNAL;
}

/* Decodes one member; *seen collects the fields decoded so far. Unknown members are an error
 * in requests and skipped in answers. */
static vtpmca_err decode_member(ledger_msg_kind kind, ledger_msg *m, const char *name,
                                size_t name_len, json_t *json_value, cbor_item_t *cbor_value,
                                unsigned *seen, vtpmca_diag *diag)
{
    int f = field_by_name(name, name_len);
    bool request = is_request(kind);
    if (f < 0 || (request && !(request_fields(kind) & BIT(f)))) {
        if (!request)
            return VTPMCA_OK;
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unknown member \"%.*s\"",
                           (int)(name_len > 40 ? 40 : name_len), name);
    }
    if (*seen & BIT(f))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "duplicate member \"%s\"", FIELDS[f].name);
    *seen |= BIT(f);
    return json_value != NULL ? decode_json_value(m, (field_id)f, json_value, diag)
                              : decode_cbor_value(m, (field_id)f, cbor_value, diag);
}

static vtpmca_err decode_json(ledger_msg_kind kind, const uint8_t *body, size_t len, ledger_msg *m,
                              unsigned *seen, vtpmca_diag *diag)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed JSON: %s", jerr.text);
    vtpmca_err err = VTPMCA_OK;
    if (!json_is_object(doc))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body must be a JSON object");
    const char *name;
    json_t *value;
    json_object_foreach(doc, name, value)
    {
        if (err != VTPMCA_OK)
            break;
        err = decode_member(kind, m, name, strlen(name), value, NULL, seen, diag);
    }
    json_decref(doc);
    return err;
}

static vtpmca_err decode_cbor(ledger_msg_kind kind, const uint8_t *body, size_t len, ledger_msg *m,
                              unsigned *seen, vtpmca_diag *diag)
{
    struct cbor_load_result result;
    cbor_item_t *doc = cbor_load(body, len, &result);
    if (doc == NULL || result.error.code != CBOR_ERR_NONE) {
        if (doc != NULL)
            cbor_decref(&doc);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed CBOR at offset %zu",
                           result.error.position);
    }
    vtpmca_err err = VTPMCA_OK;
    if (result.read != len)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%zu bytes after the CBOR item", len - result.read);
    else if (!cbor_isa_map(doc))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body must be a CBOR map");
    struct cbor_pair *pairs = err == VTPMCA_OK ? cbor_map_handle(doc) : NULL;
    size_t n = err == VTPMCA_OK ? cbor_map_size(doc) : 0;
    for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
        cbor_item_t *key = pairs[i].key;
        if (!cbor_isa_string(key) || !cbor_string_is_definite(key)) {
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "map keys must be definite text strings");
            break;
        }
        err = decode_member(kind, m, (const char *)cbor_string_handle(key), cbor_string_length(key),
                            NULL, pairs[i].value, seen, diag);
    }
    cbor_decref(&doc);
    return err;
}

vtpmca_err ledger_msg_decode(ledger_msg_kind kind, ledger_format format, const uint8_t *body,
                             size_t len, ledger_msg *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (out == NULL || (body == NULL && len > 0) || kind > LEDGER_MSG_STATEMENT_REQUEST ||
        (format != LEDGER_FORMAT_JSON && format != LEDGER_FORMAT_CBOR))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger decode: bad argument");
    if (len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body is empty");
    if (len > LEDGER_BODY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "the body is larger than %d bytes",
                           LEDGER_BODY_MAX);
    unsigned seen = 0;
    vtpmca_err err = format == LEDGER_FORMAT_JSON ? decode_json(kind, body, len, out, &seen, diag)
                                                  : decode_cbor(kind, body, len, out, &seen, diag);
    unsigned required =
        is_request(kind) ? request_fields(kind) : BIT(F_RESULT) | BIT(F_NONCE) | BIT(F_MAC);
    for (int f = 0; f < F_COUNT && err == VTPMCA_OK; f++)
        if ((required & BIT(f)) && !(seen & BIT(f)))
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "missing member \"%s\"", FIELDS[f].name);
    if (err == VTPMCA_OK && !is_request(kind)) {
        /* An answer carries all of its entry members or none. */
        unsigned entry = kind == LEDGER_MSG_QUERY_ANSWER ? QUERY_ENTRY_FIELDS : ENTRY_FIELDS;
        unsigned present = seen & entry;
        if (present != 0 && present != entry)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the answer has part of an entry");
        out->has_entry = present == entry;
    }
    if (err == VTPMCA_OK && is_request(kind))
        out->has_entry = (seen & ENTRY_FIELDS) == ENTRY_FIELDS;
    if (err != VTPMCA_OK) {
        memset(out, 0, sizeof(*out));
        return err;
    }
    return VTPMCA_OK;
}

/* ---- The SVSM's open check ---- */

vtpmca_err ledger_check_image(const ledger_entry *ledger_latest,
                              const uint8_t counter[LEDGER_COUNTER_LEN], const uint8_t *root,
                              size_t root_len, bool *newer, vtpmca_diag *diag)
{
    if (newer != NULL)
        *newer = false;
    if (ledger_latest == NULL || counter == NULL || root == NULL || root_len == 0 ||
        root_len > LEDGER_ROOT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger check: bad argument");
    char image_hex[LEDGER_COUNTER_HEX_LEN + 1], ledger_hex[LEDGER_COUNTER_HEX_LEN + 1];
    ledger_counter_format_hex(counter, image_hex, sizeof(image_hex));
    ledger_counter_format_hex(ledger_latest->counter, ledger_hex, sizeof(ledger_hex));
    if (memcmp(counter, ledger_latest->counter, LEDGER_COUNTER_LEN) == 0) {
        if (root_len == ledger_latest->root_len &&
            CRYPTO_memcmp(root, ledger_latest->root, root_len) == 0)
            return VTPMCA_OK;
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "fork: the image has the ledger's counter %s with another root",
                           image_hex);
    }
    bool after = false;
    ledger_counter_is_after(ledger_latest->origin, ledger_latest->counter, counter, &after);
    if (!after)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "rollback: the image's counter %s is older than the ledger's %s",
                           image_hex, ledger_hex);
    if (newer != NULL)
        *newer = true;
    return VTPMCA_OK;
}

/* ---- Recently seen request nonces ----
 * A ring of (digest, expiry) in arrival order, so expiry and eviction take the oldest, and a
 * hash index over it. The digest is SHA-256(u32 length || instance || nonce), truncated: the
 * set remembers a nonce per instance without keeping either. When the ring is full of
 * unexpired nonces the oldest is dropped early (counted): memory stays bounded, the window
 * shrinks under extreme load. */

#define NONCE_DIGEST_LEN 16

struct nonce_slot {
    uint8_t digest[NONCE_DIGEST_LEN];
    int64_t expires_ms;
    uint32_t next; /* next slot + 1 in the bucket chain; 0 = end */
};

typedef struct {
    pthread_mutex_t lock;
    struct nonce_slot *ring;
    size_t capacity, head, count;
    uint32_t *buckets; /* slot + 1; 0 = empty */
    size_t bucket_mask;
    int64_t ttl_ms;
    uint64_t evicted_early;
} nonce_set;

static vtpmca_err nonce_set_init(nonce_set *s, size_t capacity, unsigned ttl_s, vtpmca_diag *diag)
{
    if (capacity == 0 || capacity > UINT32_MAX - 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger: nonce capacity out of range");
    size_t buckets = 1;
    while (buckets < 2 * capacity)
        buckets <<= 1;
    /* calloc leaves the pages untouched until used: a large capacity costs nothing idle. */
    s->ring = calloc(capacity, sizeof(*s->ring));
    s->buckets = calloc(buckets, sizeof(*s->buckets));
    if (s->ring == NULL || s->buckets == NULL) {
        free(s->ring);
        free(s->buckets);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: out of memory for the nonce set");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->capacity = capacity;
    s->bucket_mask = buckets - 1;
    s->ttl_ms = (int64_t)ttl_s * 1000;
    return VTPMCA_OK;
}

static void nonce_set_destroy(nonce_set *s)
{
    if (s->ring == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s->buckets);
    memset(s, 0, sizeof(*s));
}

static size_t nonce_bucket(const nonce_set *s, const uint8_t digest[NONCE_DIGEST_LEN])
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h)); /* already uniformly distributed */
    return (size_t)h & s->bucket_mask;
}

/* Removes the oldest slot (the ring's head) from its chain. */
static void nonce_drop_oldest(nonce_set *s)
{
    uint32_t slot = (uint32_t)s->head;
    uint32_t *link = &s->buckets[nonce_bucket(s, s->ring[slot].digest)];
    while (*link != 0 && *link != slot + 1)
        link = &s->ring[*link - 1].next;
    if (*link != 0)
        *link = s->ring[slot].next;
    s->head = (s->head + 1) % s->capacity;
    s->count--;
}

/* Remembers the digest; false if it was seen within the window. */
static bool nonce_set_add(nonce_set *s, const uint8_t digest[NONCE_DIGEST_LEN], int64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    while (s->count > 0 && s->ring[s->head].expires_ms <= now_ms)
        nonce_drop_oldest(s);
    size_t b = nonce_bucket(s, digest);
    for (uint32_t i = s->buckets[b]; i != 0; i = s->ring[i - 1].next) {
        if (memcmp(s->ring[i - 1].digest, digest, NONCE_DIGEST_LEN) == 0) {
            pthread_mutex_unlock(&s->lock);
            return false;
        }
    }
    if (s->count == s->capacity) {
        nonce_drop_oldest(s);
        s->evicted_early++;
    }
    size_t slot = (s->head + s->count) % s->capacity;
    memcpy(s->ring[slot].digest, digest, NONCE_DIGEST_LEN);
    s->ring[slot].expires_ms = now_ms + s->ttl_ms;
    s->ring[slot].next = s->buckets[b];
    s->buckets[b] = (uint32_t)slot + 1;
    s->count++;
    pthread_mutex_unlock(&s->lock);
    return true;
}

static void nonce_set_stats(nonce_set *s, uint64_t *held, uint64_t *evicted_early)
{
    pthread_mutex_lock(&s->lock);
    *held = s->count;
    *evicted_early = s->evicted_early;
    pthread_mutex_unlock(&s->lock);
}

/* ---- Cache of derived ledger keys ---- */

struct key_entry {
    struct key_entry *next;
    int64_t loaded_ms;
    uint8_t key[LEDGER_KEY_LEN];
    char instance[STORE_INSTANCE_ID_MAX + 1];
};

typedef struct {
    pthread_mutex_t lock;
    struct key_entry **buckets;
    size_t bucket_count; /* a power of two */
    size_t count, capacity;
    int64_t ttl_ms;
    uint64_t hits, misses;
} key_cache;

static uint64_t hash_text(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static vtpmca_err key_cache_init(key_cache *c, size_t capacity, unsigned ttl_ms, vtpmca_diag *diag)
{
    size_t buckets = 16;
    while (buckets < capacity && buckets < (1u << 20))
        buckets <<= 1;
    c->buckets = calloc(buckets, sizeof(*c->buckets));
    if (c->buckets == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger: out of memory for the key cache");
    pthread_mutex_init(&c->lock, NULL);
    c->bucket_count = buckets;
    c->capacity = capacity;
    c->ttl_ms = ttl_ms;
    return VTPMCA_OK;
}

static void key_entry_free(struct key_entry *e)
{
    OPENSSL_clear_free(e, sizeof(*e));
}

/* Caller holds the lock. */
static void key_cache_clear_locked(key_cache *c)
{
    for (size_t i = 0; i < c->bucket_count; i++) {
        struct key_entry *e = c->buckets[i];
        while (e != NULL) {
            struct key_entry *next = e->next;
            key_entry_free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

static void key_cache_destroy(key_cache *c)
{
    if (c->buckets == NULL)
        return;
    key_cache_clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static struct key_entry **key_cache_link(key_cache *c, const char *instance)
{
    struct key_entry **link = &c->buckets[hash_text(instance) & (c->bucket_count - 1)];
    while (*link != NULL && strcmp((*link)->instance, instance) != 0)
        link = &(*link)->next;
    return link;
}

/* Copies a fresh cached key into key; false on a miss. */
static bool key_cache_get(key_cache *c, const char *instance, int64_t now_ms,
                          uint8_t key[LEDGER_KEY_LEN])
{
    pthread_mutex_lock(&c->lock);
    struct key_entry *e = *key_cache_link(c, instance);
    bool hit = e != NULL && now_ms - e->loaded_ms < c->ttl_ms;
    if (hit) {
        memcpy(key, e->key, LEDGER_KEY_LEN);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void key_cache_put(key_cache *c, const char *instance, const uint8_t key[LEDGER_KEY_LEN],
                          int64_t now_ms)
{
    if (c->ttl_ms <= 0)
        return;
    pthread_mutex_lock(&c->lock);
    struct key_entry **link = key_cache_link(c, instance);
    if (*link == NULL) {
        if (c->count >= c->capacity)
            key_cache_clear_locked(c); /* start over: simpler than LRU, and rare */
        link = key_cache_link(c, instance);
        *link = calloc(1, sizeof(**link));
        if (*link == NULL) {
            pthread_mutex_unlock(&c->lock);
            return; /* not cached: the next request derives the key again */
        }
        snprintf((*link)->instance, sizeof((*link)->instance), "%s", instance);
        c->count++;
    }
    memcpy((*link)->key, key, LEDGER_KEY_LEN);
    (*link)->loaded_ms = now_ms;
    pthread_mutex_unlock(&c->lock);
}

static void key_cache_drop(key_cache *c, const char *instance)
{
    pthread_mutex_lock(&c->lock);
    struct key_entry **link = key_cache_link(c, instance);
    if (*link != NULL) {
        struct key_entry *e = *link;
        *link = e->next;
        key_entry_free(e);
        c->count--;
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---- The service ---- */

typedef enum { OP_ADVANCE = 0, OP_QUERY, OP_STATEMENT, OP_COUNT } op_id;
static const char *const op_names[OP_COUNT] = {"advance", "query", "statement"};

typedef enum {
    OUT_OK = 0,           /* 200 */
    OUT_NONE,             /* query: 404 MACed "none" */
    OUT_REFUSED,          /* advance: 409 MACed refusal */
    OUT_BAD_REQUEST,      /* 400 */
    OUT_UNKNOWN_INSTANCE, /* 404 */
    OUT_DISABLED,         /* 403 */
    OUT_NO_LEDGER_KEY,    /* 403 */
    OUT_BAD_MAC,          /* 401 */
    OUT_STALE_NONCE,      /* 409 */
    OUT_UNAVAILABLE,      /* 503 */
    OUT_INTERNAL,         /* 500 */
    OUT_COUNT
} outcome_id;
static const char *const outcome_names[OUT_COUNT] = {
    "ok",       "none",          "refused", "bad_request", "unknown_instance",
    "disabled", "no_ledger_key", "bad_mac", "stale_nonce", "unavailable",
    "internal"};

struct ledger_service {
    ledger *engine;
    store *store;
    const keyvault *vault;
    ear_token_key statement_key;
    nonce_set nonces;
    key_cache keys;
    atomic_uint_fast64_t counts[OP_COUNT][OUT_COUNT];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

vtpmca_err ledger_service_new(const ledger_service_config *config, ledger_service **out,
                              vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (config == NULL || out == NULL || config->engine == NULL || config->store == NULL ||
        config->vault == NULL || config->statement_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ledger service: engine, store, key vault and statement key are "
                           "required");
    ledger_service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger service: out of memory");
    svc->engine = config->engine;
    svc->store = config->store;
    svc->vault = config->vault;
    vtpmca_err err = ear_token_key_init(&svc->statement_key, config->statement_key, diag);
    if (err == VTPMCA_OK)
        err = nonce_set_init(
            &svc->nonces,
            config->nonce_capacity != 0 ? config->nonce_capacity : LEDGER_DEFAULT_NONCE_CAPACITY,
            config->nonce_ttl_s != 0 ? config->nonce_ttl_s : LEDGER_DEFAULT_NONCE_TTL_S, diag);
    if (err == VTPMCA_OK)
        err = key_cache_init(&svc->keys,
                             config->key_cache_entries != 0 ? config->key_cache_entries
                                                            : LEDGER_DEFAULT_KEY_CACHE_ENTRIES,
                             config->key_cache_ttl_ms, diag);
    if (err != VTPMCA_OK) {
        ledger_service_free(svc);
        return err;
    }
    *out = svc;
    return VTPMCA_OK;
}

void ledger_service_free(ledger_service *svc)
{
    if (svc == NULL)
        return;
    key_cache_destroy(&svc->keys);
    nonce_set_destroy(&svc->nonces);
    ear_token_key_clear(&svc->statement_key);
    free(svc);
}

void ledger_reply_clear(ledger_reply *reply)
{
    if (reply == NULL)
        return;
    free(reply->body);
    memset(reply, 0, sizeof(*reply));
}

/* -- replies -- */

static void count(ledger_service *svc, op_id op, outcome_id outcome)
{
    atomic_fetch_add_explicit(&svc->counts[op][outcome], 1, memory_order_relaxed);
}

/* An error without a MAC: always JSON {"error","message"}. */
VTPMCA_PRINTF(5, 6)
static vtpmca_err reply_error(ledger_service *svc, op_id op, outcome_id outcome,
                              ledger_reply *reply, const char *fmt, ...)
{
    static const unsigned status[OUT_COUNT] = {
        [OUT_NONE] = 404,        [OUT_BAD_REQUEST] = 400,   [OUT_UNKNOWN_INSTANCE] = 404,
        [OUT_DISABLED] = 403,    [OUT_NO_LEDGER_KEY] = 403, [OUT_BAD_MAC] = 401,
        [OUT_STALE_NONCE] = 409, [OUT_UNAVAILABLE] = 503,   [OUT_INTERNAL] = 500,
    };
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    ledger_reply_clear(reply);
    /* The error codes are the metric outcome names, but "none" reads better as this. */
    const char *code = outcome == OUT_NONE ? "no_record" : outcome_names[outcome];
    json_t *body = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (body == NULL) /* not UTF-8 */
        body = json_pack("{s:s, s:s}", "error", code, "message", "(message not printable)");
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    count(svc, op, outcome);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    reply->status = status[outcome] != 0 ? status[outcome] : 500;
    reply->format = LEDGER_FORMAT_JSON;
    reply->body = (uint8_t *)text;
    reply->body_len = strlen(text);
    if (outcome == OUT_UNAVAILABLE)
        reply->retry_after_s = 1;
    return VTPMCA_OK;
}

/* A MACed answer in the request's format. */
static vtpmca_err reply_msg(ledger_service *svc, op_id op, outcome_id outcome, unsigned status,
                            ledger_msg_kind kind, ledger_format format, ledger_msg *msg,
                            const uint8_t key[LEDGER_KEY_LEN], ledger_reply *reply)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_msg_sign(kind, msg, key, &diag);
    uint8_t *body = NULL;
    size_t len = 0;
    if (err == VTPMCA_OK)
        err = ledger_msg_encode(kind, format, msg, &body, &len, &diag);
    if (err != VTPMCA_OK)
        return reply_error(svc, op, OUT_INTERNAL, reply, "cannot build the answer");
    ledger_reply_clear(reply);
    reply->status = status;
    reply->format = format;
    reply->body = body;
    reply->body_len = len;
    count(svc, op, outcome);
    return VTPMCA_OK;
}

/* -- the ledger key of an instance -- */

typedef enum { KEY_OK, KEY_UNKNOWN, KEY_DISABLED, KEY_NONE_STORED, KEY_ERROR } key_status;

static vtpmca_err key_context(const char *instance, char out[LEDGER_KEY_CONTEXT_MAX])
{
    int n = snprintf(out, LEDGER_KEY_CONTEXT_MAX, "%s%s", LEDGER_KEY_CONTEXT_PREFIX, instance);
    return n > 0 && (size_t)n < LEDGER_KEY_CONTEXT_MAX ? VTPMCA_OK : VTPMCA_ERR_INVALID_ARG;
}

/* Reads the enrollment and derives (generated mode) or unwraps (wrapped-key mode) the key. */
static key_status load_key(ledger_service *svc, const char *instance, uint8_t key[LEDGER_KEY_LEN],
                           vtpmca_diag *diag)
{
    store_instance inst;
    vtpmca_err err = store_instance_get(svc->store, instance, &inst, diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return KEY_UNKNOWN;
    if (err != VTPMCA_OK)
        return KEY_ERROR;
    key_status status = KEY_OK;
    uint8_t secret[KEYVAULT_KEY_MAX];
    size_t secret_len = 0;
    if (inst.disabled) {
        status = KEY_DISABLED;
    } else if (inst.key_mode == STORE_KEY_GENERATED) {
        char context[ENROLLMENT_CONTEXT_MAX];
        err = enrollment_key_context(STORE_KEY_GENERATED, instance, context, diag);
        if (err == VTPMCA_OK)
            err = keyvault_unwrap(svc->vault, inst.wrapped_key, inst.wrapped_key_len, context,
                                  secret, sizeof(secret), &secret_len, diag);
        if (err == VTPMCA_OK)
            err = ledger_key_derive(secret, secret_len, instance, key, diag);
        OPENSSL_cleanse(secret, sizeof(secret));
        status = err == VTPMCA_OK ? KEY_OK : KEY_ERROR;
    } else {
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        char context[LEDGER_KEY_CONTEXT_MAX];
        err = store_ledger_key_get(svc->store, instance, &blob, &blob_len, diag);
        if (err == VTPMCA_OK)
            err = key_context(instance, context);
        if (err == VTPMCA_OK)
            err = keyvault_unwrap(svc->vault, blob, blob_len, context, secret, sizeof(secret),
                                  &secret_len, diag);
        if (err == VTPMCA_OK && secret_len != LEDGER_KEY_LEN)
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "the stored ledger key has %zu bytes",
                              secret_len);
        if (err == VTPMCA_OK)
            memcpy(key, secret, LEDGER_KEY_LEN);
        OPENSSL_cleanse(secret, sizeof(secret));
        free(blob);
        status = err == VTPMCA_OK              ? KEY_OK
                 : err == VTPMCA_ERR_NOT_FOUND ? KEY_NONE_STORED
                                               : KEY_ERROR;
    }
    store_instance_free_fields(&inst);
    return status;
}

/* The instance's key, or an error reply (then false). */
static bool instance_key(ledger_service *svc, op_id op, const char *instance,
                         uint8_t key[LEDGER_KEY_LEN], ledger_reply *reply)
{
    int64_t now = monotonic_ms();
    if (key_cache_get(&svc->keys, instance, now, key))
        return true;
    vtpmca_diag diag = {{0}};
    switch (load_key(svc, instance, key, &diag)) {
    case KEY_OK:
        key_cache_put(&svc->keys, instance, key, now);
        return true;
    case KEY_UNKNOWN:
        reply_error(svc, op, OUT_UNKNOWN_INSTANCE, reply, "no instance %s is enrolled", instance);
        return false;
    case KEY_DISABLED:
        reply_error(svc, op, OUT_DISABLED, reply, "instance %s is disabled", instance);
        return false;
    case KEY_NONE_STORED:
        reply_error(svc, op, OUT_NO_LEDGER_KEY, reply,
                    "instance %s is in wrapped-key mode and the service has no ledger key for "
                    "it yet: it gets one when the instance's key is released over the KBS",
                    instance);
        return false;
    case KEY_ERROR:
        break;
    }
    vtpmca_log(VTPMCA_LOG_ERROR, "ledger.key_failed", "instance", instance, "detail", diag.msg,
               NULL);
    reply_error(svc, op, OUT_UNAVAILABLE, reply, "the ledger key of instance %s is unavailable",
                instance);
    return false;
}

/* The nonce's digest for the replay set. */
static bool nonce_digest(const char *instance, const uint8_t *nonce, size_t nonce_len,
                         uint8_t out[NONCE_DIGEST_LEN])
{
    uint8_t input[4 + STORE_INSTANCE_ID_MAX + LEDGER_NONCE_MAX];
    byte_writer w = {input, sizeof(input), 0, false};
    put_text_field(&w, instance);
    put_bytes(&w, nonce, nonce_len);
    uint8_t md[32];
    unsigned int md_len = 0;
    if (w.overflow || EVP_Digest(input, w.len, md, &md_len, EVP_sha256(), NULL) != 1)
        return false;
    memcpy(out, md, NONCE_DIGEST_LEN);
    return true;
}

/* Parses, finds the key, checks the MAC and remembers the nonce; false with *reply set when
 * the request is refused. */
static bool accept_request(ledger_service *svc, op_id op, ledger_msg_kind kind,
                           ledger_format format, const uint8_t *body, size_t len, ledger_msg *req,
                           uint8_t key[LEDGER_KEY_LEN], ledger_reply *reply)
{
    vtpmca_diag diag = {{0}};
    if (format != LEDGER_FORMAT_JSON && format != LEDGER_FORMAT_CBOR) {
        reply_error(svc, op, OUT_BAD_REQUEST, reply, "unknown body format");
        return false;
    }
    if (ledger_msg_decode(kind, format, body, len, req, &diag) != VTPMCA_OK) {
        reply_error(svc, op, OUT_BAD_REQUEST, reply, "%s", diag.msg);
        return false;
    }
    if (!instance_key(svc, op, req->instance, key, reply))
        return false;
    if (ledger_msg_verify(kind, req, key, &diag) != VTPMCA_OK) {
        reply_error(svc, op, OUT_BAD_MAC, reply,
                    "the request's MAC does not verify under instance %s's ledger key",
                    req->instance);
        return false;
    }
    uint8_t digest[NONCE_DIGEST_LEN];
    if (!nonce_digest(req->instance, req->nonce, req->nonce_len, digest)) {
        reply_error(svc, op, OUT_INTERNAL, reply, "cannot check the nonce");
        return false;
    }
    if (!nonce_set_add(&svc->nonces, digest, monotonic_ms())) {
        reply_error(svc, op, OUT_STALE_NONCE, reply,
                    "stale nonce: instance %s used this nonce recently; every request needs a "
                    "fresh one",
                    req->instance);
        return false;
    }
    return true;
}

/* Engine failures other than refusals. */
static vtpmca_err reply_engine_error(ledger_service *svc, op_id op, vtpmca_err err,
                                     const vtpmca_diag *diag, const char *instance,
                                     ledger_reply *reply)
{
    if (err == VTPMCA_ERR_LIMIT)
        return reply_error(svc, op, OUT_UNAVAILABLE, reply,
                           "the ledger is busy; retry with a fresh nonce");
    vtpmca_log(VTPMCA_LOG_ERROR, "ledger.request_failed", "op", op_names[op], "instance", instance,
               "detail", diag->msg, NULL);
    return reply_error(svc, op, OUT_UNAVAILABLE, reply,
                       "the ledger cannot answer now (%s); retry with a fresh nonce",
                       vtpmca_err_name(err));
}

static void entry_to_msg(const ledger_entry *e, ledger_msg *m)
{
    m->has_entry = e->root_len > 0;
    if (!m->has_entry)
        return;
    memcpy(m->counter, e->counter, LEDGER_COUNTER_LEN);
    memcpy(m->origin, e->origin, LEDGER_COUNTER_LEN);
    memcpy(m->root, e->root, e->root_len);
    m->root_len = e->root_len;
    m->time_ms = e->time_ms;
}

static bool bad_call(ledger_service *svc, const uint8_t *body, size_t len, ledger_reply *reply)
{
    if (reply != NULL)
        memset(reply, 0, sizeof(*reply));
    return svc == NULL || reply == NULL || (body == NULL && len > 0);
}

vtpmca_err ledger_service_advance(ledger_service *svc, ledger_format format, const uint8_t *body,
                                  size_t len, ledger_reply *reply)
{
    if (bad_call(svc, body, len, reply))
        return VTPMCA_ERR_INVALID_ARG;
    ledger_msg req;
    uint8_t key[LEDGER_KEY_LEN];
    if (!accept_request(svc, OP_ADVANCE, LEDGER_MSG_ADVANCE_REQUEST, format, body, len, &req, key,
                        reply)) {
        OPENSSL_cleanse(key, sizeof(key));
        return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    }
    ledger_result result;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_advance(svc->engine, req.instance, req.counter, req.root, req.root_len,
                                    &result, &diag);
    if (err != VTPMCA_OK && !(err == VTPMCA_ERR_CONFLICT && result.outcome != 0)) {
        OPENSSL_cleanse(key, sizeof(key));
        reply_engine_error(svc, OP_ADVANCE, err, &diag, req.instance, reply);
        return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    }
    ledger_msg ans;
    memset(&ans, 0, sizeof(ans));
    snprintf(ans.instance, sizeof(ans.instance), "%s", req.instance);
    snprintf(ans.result, sizeof(ans.result), "%s", ledger_outcome_name(result.outcome));
    entry_to_msg(&result.latest, &ans);
    memcpy(ans.nonce, req.nonce, req.nonce_len);
    ans.nonce_len = req.nonce_len;
    bool refused = err != VTPMCA_OK;
    if (refused) {
        snprintf(ans.error, sizeof(ans.error), "%s", ans.result);
        snprintf(ans.message, sizeof(ans.message), "%s", diag.msg);
        ans.locked = result.locked;
    }
    reply_msg(svc, OP_ADVANCE, refused ? OUT_REFUSED : OUT_OK, refused ? 409 : 200,
              LEDGER_MSG_ADVANCE_ANSWER, format, &ans, key, reply);
    OPENSSL_cleanse(key, sizeof(key));
    return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

vtpmca_err ledger_service_query(ledger_service *svc, ledger_format format, const uint8_t *body,
                                size_t len, ledger_reply *reply)
{
    if (bad_call(svc, body, len, reply))
        return VTPMCA_ERR_INVALID_ARG;
    ledger_msg req;
    uint8_t key[LEDGER_KEY_LEN];
    if (!accept_request(svc, OP_QUERY, LEDGER_MSG_QUERY_REQUEST, format, body, len, &req, key,
                        reply)) {
        OPENSSL_cleanse(key, sizeof(key));
        return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    }
    ledger_entry entry;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ledger_query(svc->engine, req.instance, &entry, &diag);
    if (err != VTPMCA_OK && err != VTPMCA_ERR_NOT_FOUND) {
        OPENSSL_cleanse(key, sizeof(key));
        reply_engine_error(svc, OP_QUERY, err, &diag, req.instance, reply);
        return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    }
    ledger_msg ans;
    memset(&ans, 0, sizeof(ans));
    snprintf(ans.instance, sizeof(ans.instance), "%s", req.instance);
    memcpy(ans.nonce, req.nonce, req.nonce_len);
    ans.nonce_len = req.nonce_len;
    bool found = err == VTPMCA_OK;
    if (found) {
        snprintf(ans.result, sizeof(ans.result), "%s", LEDGER_RESULT_FOUND);
        entry_to_msg(&entry, &ans);
    } else {
        snprintf(ans.result, sizeof(ans.result), "%s", LEDGER_RESULT_NONE);
        snprintf(ans.error, sizeof(ans.error), "no_record");
        snprintf(ans.message, sizeof(ans.message), "the ledger has no record of instance %s",
                 req.instance);
    }
    reply_msg(svc, OP_QUERY, found ? OUT_OK : OUT_NONE, found ? 200 : 404, LEDGER_MSG_QUERY_ANSWER,
              format, &ans, key, reply);
    OPENSSL_cleanse(key, sizeof(key));
    return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

/* {"statement": <JWT>} in the request's format. */
static vtpmca_err reply_statement(ledger_service *svc, ledger_format format, const char *jwt,
                                  ledger_reply *reply)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (format == LEDGER_FORMAT_JSON) {
        json_t *obj = json_pack("{s:s}", "statement", jwt);
        char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        body = (uint8_t *)text;
        len = text != NULL ? strlen(text) : 0;
    } else {
        cbor_item_t *map = cbor_new_definite_map(1);
        unsigned char *buf = NULL;
        size_t size = 0;
        if (map != NULL && vt_cbor_map_put(map, "statement", cbor_build_string(jwt)))
            len = cbor_serialize_alloc(map, &buf, &size);
        if (map != NULL)
            cbor_decref(&map);
        body = len > 0 ? buf : NULL;
        if (body == NULL)
            free(buf);
    }
    if (body == NULL)
        return reply_error(svc, OP_STATEMENT, OUT_INTERNAL, reply, "cannot build the answer");
    ledger_reply_clear(reply);
    reply->status = 200;
    reply->format = format;
    reply->body = body;
    reply->body_len = len;
    count(svc, OP_STATEMENT, OUT_OK);
    return VTPMCA_OK;
}

/* The signed claims: the instance's latest entry and the caller's nonce. */
static vtpmca_err sign_statement(ledger_service *svc, const ledger_msg *req,
                                 const ledger_entry *entry, char **jwt, vtpmca_diag *diag)
{
    char counter[LEDGER_COUNTER_HEX_LEN + 1], origin[LEDGER_COUNTER_HEX_LEN + 1];
    char *root = NULL, *nonce = NULL;
    ledger_counter_format_hex(entry->counter, counter, sizeof(counter));
    ledger_counter_format_hex(entry->origin, origin, sizeof(origin));
    vtpmca_err err = vt_b64_encode_alloc(entry->root, entry->root_len, VT_B64_STD, &root);
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(req->nonce, req->nonce_len, VT_B64_STD, &nonce);
    json_t *claims = NULL;
    if (err == VTPMCA_OK) {
        json_int_t now = (json_int_t)(wall_ms() / 1000);
        claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I}", "iss", "vtpmca-ledger",
                           "instance", req->instance, "counter", counter, "origin", origin, "root",
                           root, "time", (json_int_t)entry->time_ms, "nonce", nonce, "iat", now,
                           "exp", now + LEDGER_STATEMENT_TTL_S);
        err = claims != NULL ? ear_token_sign(&svc->statement_key, claims, jwt, diag)
                             : VTPMCA_ERR_NOMEM;
    }
    json_decref(claims);
    free(root);
    free(nonce);
    return err;
}

vtpmca_err ledger_service_statement(ledger_service *svc, ledger_format format, const uint8_t *body,
                                    size_t len, ledger_reply *reply)
{
    if (bad_call(svc, body, len, reply))
        return VTPMCA_ERR_INVALID_ARG;
    ledger_msg req;
    vtpmca_diag diag = {{0}};
    if (format != LEDGER_FORMAT_JSON && format != LEDGER_FORMAT_CBOR)
        return reply_error(svc, OP_STATEMENT, OUT_BAD_REQUEST, reply, "unknown body format");
    if (ledger_msg_decode(LEDGER_MSG_STATEMENT_REQUEST, format, body, len, &req, &diag) !=
        VTPMCA_OK)
        return reply_error(svc, OP_STATEMENT, OUT_BAD_REQUEST, reply, "%s", diag.msg);
    /* Statements are for enrolled instances only, but need no key: anyone may ask. */
    store_instance inst;
    vtpmca_err err = store_instance_get(svc->store, req.instance, &inst, &diag);
    store_instance_free_fields(&inst);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return reply_error(svc, OP_STATEMENT, OUT_UNKNOWN_INSTANCE, reply,
                           "no instance %s is enrolled", req.instance);
    ledger_entry entry;
    if (err == VTPMCA_OK)
        err = ledger_query(svc->engine, req.instance, &entry, &diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return reply_error(svc, OP_STATEMENT, OUT_NONE, reply,
                           "the ledger has no record of instance %s", req.instance);
    if (err != VTPMCA_OK)
        return reply_engine_error(svc, OP_STATEMENT, err, &diag, req.instance, reply);
    char *jwt = NULL;
    err = sign_statement(svc, &req, &entry, &jwt, &diag);
    if (err != VTPMCA_OK) {
        vtpmca_log(VTPMCA_LOG_ERROR, "ledger.statement_failed", "instance", req.instance, "detail",
                   diag.msg, NULL);
        return reply_error(svc, OP_STATEMENT, OUT_INTERNAL, reply, "cannot sign the statement");
    }
    err = reply_statement(svc, format, jwt, reply);
    free(jwt);
    return err;
}

/* -- wrapped-key mode -- */

vtpmca_err ledger_service_remember_release(ledger_service *svc, const char *instance_id,
                                           const uint8_t *persistence_key, size_t key_len,
                                           vtpmca_diag *diag)
{
    if (svc == NULL || persistence_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger remember: missing argument");
    store_instance inst;
    vtpmca_err err = store_instance_get(svc->store, instance_id, &inst, diag);
    bool wrapped_mode = err == VTPMCA_OK && inst.key_mode == STORE_KEY_WRAPPED;
    store_instance_free_fields(&inst);
    if (err != VTPMCA_OK || !wrapped_mode)
        return err;
    uint8_t key[LEDGER_KEY_LEN];
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    char context[LEDGER_KEY_CONTEXT_MAX];
    err = ledger_key_derive(persistence_key, key_len, instance_id, key, diag);
    if (err == VTPMCA_OK)
        err = key_context(instance_id, context);
    if (err == VTPMCA_OK)
        err = keyvault_wrap(svc->vault, key, sizeof(key), context, &blob, &blob_len, diag);
    OPENSSL_cleanse(key, sizeof(key));
    if (err == VTPMCA_OK)
        err = store_ledger_key_put(svc->store, instance_id, blob, blob_len, diag);
    free(blob);
    /* Dropped either way: a stale cached key would refuse the instance's new MACs. */
    key_cache_drop(&svc->keys, instance_id);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "ledger.key_stored", "instance", instance_id, NULL);
    return err;
}

vtpmca_err ledger_service_remember_wrapped_release(ledger_service *svc, const char *resource_path,
                                                   const uint8_t *blob, size_t blob_len,
                                                   vtpmca_diag *diag)
{
    if (svc == NULL || resource_path == NULL || blob == NULL || blob_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger remember: missing argument");
    store_instance inst;
    vtpmca_err err = store_instance_get_by_path(svc->store, resource_path, &inst, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t secret[KEYVAULT_KEY_MAX];
    size_t secret_len = 0;
    if (inst.key_mode == STORE_KEY_WRAPPED) {
        char context[ENROLLMENT_CONTEXT_MAX];
        err = enrollment_key_context(STORE_KEY_WRAPPED, inst.id, context, diag);
        if (err == VTPMCA_OK)
            err = keyvault_unwrap(svc->vault, blob, blob_len, context, secret, sizeof(secret),
                                  &secret_len, diag);
        if (err == VTPMCA_OK)
            err = ledger_service_remember_release(svc, inst.id, secret, secret_len, diag);
        OPENSSL_cleanse(secret, sizeof(secret));
    }
    store_instance_free_fields(&inst);
    return err;
}

/* ---- Metrics ---- */

vtpmca_err ledger_service_metrics_render(const ledger_service *svc, char **out, size_t *out_len)
{
    if (svc == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    ledger_stats st;
    vtpmca_err err = ledger_get_stats(svc->engine, &st);
    if (err != VTPMCA_OK)
        return err;
    ledger_service *s = (ledger_service *)svc; /* the locks are internal, the state unchanged */
    uint64_t nonces_held = 0, nonces_evicted = 0;
    nonce_set_stats(&s->nonces, &nonces_held, &nonces_evicted);
    pthread_mutex_lock(&s->keys.lock);
    uint64_t keys_cached = s->keys.count, key_hits = s->keys.hits, key_misses = s->keys.misses;
    pthread_mutex_unlock(&s->keys.lock);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return VTPMCA_ERR_NOMEM;
    fputs("# HELP vtpmca_ledger_requests_total Ledger protocol requests by operation and "
          "outcome.\n"
          "# TYPE vtpmca_ledger_requests_total counter\n",
          f);
    for (int op = 0; op < OP_COUNT; op++)
        for (int o = 0; o < OUT_COUNT; o++)
            fprintf(f, "vtpmca_ledger_requests_total{op=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                    op_names[op], outcome_names[o],
                    (uint64_t)atomic_load_explicit(&s->counts[op][o], memory_order_relaxed));
    fprintf(
        f,
        "# HELP vtpmca_ledger_advances_total Advances decided by the ledger engine, by result.\n"
        "# TYPE vtpmca_ledger_advances_total counter\n"
        "vtpmca_ledger_advances_total{result=\"accepted\"} %" PRIu64 "\n"
        "vtpmca_ledger_advances_total{result=\"duplicate\"} %" PRIu64 "\n"
        "vtpmca_ledger_advances_total{result=\"fork\"} %" PRIu64 "\n"
        "vtpmca_ledger_advances_total{result=\"rollback\"} %" PRIu64 "\n"
        "vtpmca_ledger_advances_total{result=\"locked\"} %" PRIu64 "\n"
        "vtpmca_ledger_advances_total{result=\"error\"} %" PRIu64 "\n"
        "# HELP vtpmca_ledger_commits_total Ledger transactions committed (one fsync each).\n"
        "# TYPE vtpmca_ledger_commits_total counter\n"
        "vtpmca_ledger_commits_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_commit_failures_total Ledger transactions that failed.\n"
        "# TYPE vtpmca_ledger_commit_failures_total counter\n"
        "vtpmca_ledger_commit_failures_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_committed_rows_total Instance rows written by the commits.\n"
        "# TYPE vtpmca_ledger_committed_rows_total counter\n"
        "vtpmca_ledger_committed_rows_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_batches_total Batches the ledger writer took from its queue.\n"
        "# TYPE vtpmca_ledger_batches_total counter\n"
        "vtpmca_ledger_batches_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_batched_requests_total Requests in those batches (average "
        "batch size = this / batches).\n"
        "# TYPE vtpmca_ledger_batched_requests_total counter\n"
        "vtpmca_ledger_batched_requests_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_max_batch Largest batch so far.\n"
        "# TYPE vtpmca_ledger_max_batch gauge\n"
        "vtpmca_ledger_max_batch %" PRIu64 "\n"
        "# HELP vtpmca_ledger_queue_depth Requests waiting for the ledger writer.\n"
        "# TYPE vtpmca_ledger_queue_depth gauge\n"
        "vtpmca_ledger_queue_depth %" PRIu64 "\n"
        "# HELP vtpmca_ledger_cached_instances Instances the ledger engine holds in memory.\n"
        "# TYPE vtpmca_ledger_cached_instances gauge\n"
        "vtpmca_ledger_cached_instances %" PRIu64 "\n"
        "# HELP vtpmca_ledger_nonces Request nonces remembered against replays.\n"
        "# TYPE vtpmca_ledger_nonces gauge\n"
        "vtpmca_ledger_nonces %" PRIu64 "\n"
        "# HELP vtpmca_ledger_nonce_early_evictions_total Nonces forgotten before their "
        "time because the set was full.\n"
        "# TYPE vtpmca_ledger_nonce_early_evictions_total counter\n"
        "vtpmca_ledger_nonce_early_evictions_total %" PRIu64 "\n"
        "# HELP vtpmca_ledger_keys_cached Derived ledger keys held in memory.\n"
        "# TYPE vtpmca_ledger_keys_cached gauge\n"
        "vtpmca_ledger_keys_cached %" PRIu64 "\n"
        "# HELP vtpmca_ledger_key_cache_lookups_total Ledger key lookups by result.\n"
        "# TYPE vtpmca_ledger_key_cache_lookups_total counter\n"
        "vtpmca_ledger_key_cache_lookups_total{result=\"hit\"} %" PRIu64 "\n"
        "vtpmca_ledger_key_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
        st.accepted, st.duplicates, st.refused_fork, st.refused_rollback, st.refused_locked,
        st.errors, st.commits, st.commit_failures, st.committed_writes, st.batches,
        st.batched_requests, st.max_batch, st.queue_depth, st.cached_instances, nonces_held,
        nonces_evicted, keys_cached, key_hits, key_misses);
    if (fclose(f) != 0) {
        free(text);
        return VTPMCA_ERR_NOMEM;
    }
    *out = text;
    if (out_len != NULL)
        *out_len = len;
    return VTPMCA_OK;
}

uint64_t ledger_service_count(const ledger_service *svc, const char *op, const char *outcome)
{
    if (svc == NULL || op == NULL || outcome == NULL)
        return 0;
    for (int o = 0; o < OP_COUNT; o++) {
        if (strcmp(op_names[o], op) != 0)
            continue;
        for (int k = 0; k < OUT_COUNT; k++)
            if (strcmp(outcome_names[k], outcome) == 0)
                return atomic_load_explicit(&((ledger_service *)svc)->counts[o][k],
                                            memory_order_relaxed);
    }
    return 0;
}

/* ---- Audit and admin ---- */

void ledger_refusal_audit(void *store_ctx, const ledger_refusal *refusal)
{
    store *st = store_ctx;
    if (st == NULL || refusal == NULL || refusal->instance == NULL || refusal->counter == NULL ||
        refusal->result == NULL)
        return;
    store_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.actor, sizeof(ev.actor), "ledger");
    snprintf(ev.action, sizeof(ev.action), "ledger_refused");
    snprintf(ev.instance_id, sizeof(ev.instance_id), "%s", refusal->instance);
    snprintf(ev.outcome, sizeof(ev.outcome), "%s", ledger_outcome_name(refusal->outcome));
    char presented[LEDGER_COUNTER_HEX_LEN + 1], latest[LEDGER_COUNTER_HEX_LEN + 1];
    ledger_counter_format_hex(refusal->counter, presented, sizeof(presented));
    ledger_counter_format_hex(refusal->result->latest.counter, latest, sizeof(latest));
    snprintf(ev.detail, sizeof(ev.detail), "counter=%s ledger_counter=%s locked=%s", presented,
             latest, refusal->result->locked ? "true" : "false");
    vtpmca_diag diag = {{0}};
    if (store_audit_append(st, &ev, &diag) != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "ledger.audit_failed", "instance", refusal->instance, "detail",
                   diag.msg, NULL);
}

vtpmca_err ledger_record_to_json(const char *instance, const ledger_record *record, json_t **out,
                                 vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (record == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger record: missing argument");
    vtpmca_err err = store_check_instance_id(instance, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *obj =
        json_pack("{s:s, s:b, s:b, s:b, s:I, s:I}", "instance", instance, "has_entry",
                  record->has_entry, "locked", record->locked, "require_admin_clear",
                  record->require_admin_clear, "fork_refusals", (json_int_t)record->fork_refusals,
                  "rollback_refusals", (json_int_t)record->rollback_refusals);
    if (obj != NULL && record->has_entry) {
        const ledger_entry *e = &record->entry;
        bool ok = e->root_len > 0 && e->root_len <= LEDGER_ROOT_MAX;
        ok = ok && json_object_set_new(obj, "counter", json_counter(e->counter)) == 0;
        ok = ok && json_object_set_new(obj, "origin", json_counter(e->origin)) == 0;
        ok = ok && json_object_set_new(obj, "root", vt_json_b64(e->root, e->root_len)) == 0;
        ok = ok && json_object_set_new(obj, "time_ms", json_integer((json_int_t)e->time_ms)) == 0;
        if (!ok) {
            json_decref(obj);
            obj = NULL;
        }
    }
    if (obj == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger record: cannot build the JSON");
    *out = obj;
    return VTPMCA_OK;
}
