/* Wire encoding of the issuance protocol's messages (see vtpmca/issuance.h, "Wire
 * messages"): one flat map per message, in JSON (jansson) or CBOR (libcbor), decoded strictly
 * against a schema. The schemas are the single definition of the protocol's field names. */
#include "vtpmca/issuance.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cbor.h>
#include <jansson.h>

#include "vtpmca/encoding.h"
#include "vtpmca/wire_codec.h"

/* ---- schemas ---- */

const issuance_field_spec ISSUANCE_CHALLENGE_RESPONSE[2] = {
    {"nonce", ISSUANCE_FIELD_BYTES, ISSUANCE_NONCE_LEN, true},
    {"expires_in", ISSUANCE_FIELD_UINT, ISSUANCE_MAX_TTL_S, true},
};

const issuance_field_spec ISSUANCE_CERTIFY_REQUEST[7] = {
    {"ek_public", ISSUANCE_FIELD_BYTES, ISSUANCE_PUBLIC_MAX, true},
    {"iak_public", ISSUANCE_FIELD_BYTES, ISSUANCE_PUBLIC_MAX, false},
    {"kbs_key", ISSUANCE_FIELD_BYTES, ISSUANCE_KBS_KEY_MAX, true},
    {"resource", ISSUANCE_FIELD_TEXT, STORE_RESOURCE_PATH_MAX, true},
    {"format", ISSUANCE_FIELD_TEXT, ISSUANCE_FORMAT_MAX, true},
    {"nonce", ISSUANCE_FIELD_BYTES, ISSUANCE_NONCE_LEN, true},
    {"report", ISSUANCE_FIELD_BYTES, ISSUANCE_REPORT_MAX, true},
};

const issuance_field_spec ISSUANCE_CERTIFY_RESPONSE[4] = {
    {"ek_cert", ISSUANCE_FIELD_BYTES, STORE_CERT_BLOB_MAX, true},
    {"iak_cert", ISSUANCE_FIELD_BYTES, STORE_CERT_BLOB_MAX, false},
    {"chain", ISSUANCE_FIELD_BYTES_LIST, STORE_CERT_BLOB_MAX, true},
    {"format", ISSUANCE_FIELD_TEXT, ISSUANCE_FORMAT_MAX, true},
};

const issuance_field_spec ISSUANCE_ACTIVATE_START_REQUEST[3] = {
    {"ek_public", ISSUANCE_FIELD_BYTES, ISSUANCE_PUBLIC_MAX, true},
    {"iak_public", ISSUANCE_FIELD_BYTES, ISSUANCE_PUBLIC_MAX, true},
    {"resource", ISSUANCE_FIELD_TEXT, STORE_RESOURCE_PATH_MAX, true},
};

const issuance_field_spec ISSUANCE_ACTIVATE_START_RESPONSE[4] = {
    {"activation_id", ISSUANCE_FIELD_TEXT, ISSUANCE_ACTIVATION_ID_HEX, true},
    {"credential_blob", ISSUANCE_FIELD_BYTES, ISSUANCE_ACTIVATION_BLOB_MAX, true},
    {"encrypted_secret", ISSUANCE_FIELD_BYTES, ISSUANCE_ACTIVATION_BLOB_MAX, true},
    {"expires_in", ISSUANCE_FIELD_UINT, ISSUANCE_MAX_TTL_S, true},
};

const issuance_field_spec ISSUANCE_ACTIVATE_FINISH_REQUEST[2] = {
    {"activation_id", ISSUANCE_FIELD_TEXT, ISSUANCE_ACTIVATION_ID_HEX, true},
    {"secret", ISSUANCE_FIELD_BYTES, ISSUANCE_ACTIVATION_SECRET_LEN, true},
};

const issuance_field_spec ISSUANCE_ACTIVATE_FINISH_RESPONSE[2] = {
    {"status", ISSUANCE_FIELD_TEXT, 16, true},
    {"expires_in", ISSUANCE_FIELD_UINT, ISSUANCE_MAX_TTL_S, true},
};

vtpmca_err issuance_encoding_from_type(const char *content_type, issuance_encoding *out)
{
    if (content_type == NULL || out == NULL)
        return VTPMCA_ERR_UNSUPPORTED;
    while (*content_type == ' ' || *content_type == '\t')
        content_type++;
    const char *end = content_type;
    while (*end != '\0' && *end != ';' && *end != ' ' && *end != '\t')
        end++;
    size_t len = (size_t)(end - content_type);
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' && *end != ';')
        return VTPMCA_ERR_UNSUPPORTED;
    if (len == strlen(ISSUANCE_JSON_TYPE) &&
        strncasecmp(content_type, ISSUANCE_JSON_TYPE, len) == 0)
        *out = ISSUANCE_ENC_JSON;
    else if (len == strlen(ISSUANCE_CBOR_TYPE) &&
             strncasecmp(content_type, ISSUANCE_CBOR_TYPE, len) == 0)
        *out = ISSUANCE_ENC_CBOR;
    else
        return VTPMCA_ERR_UNSUPPORTED;
    return VTPMCA_OK;
}

/* ---- encoding ---- */

static vtpmca_err check_fields(const issuance_field *fields, size_t n, vtpmca_diag *diag)
{
    if (fields == NULL || n == 0 || n > ISSUANCE_MESSAGE_MAX_FIELDS)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: 1 to %d fields",
                           ISSUANCE_MESSAGE_MAX_FIELDS);
    for (size_t i = 0; i < n; i++) {
        const issuance_field *f = &fields[i];
        bool ok = f->name != NULL;
        if (f->type == ISSUANCE_FIELD_BYTES || f->type == ISSUANCE_FIELD_TEXT)
            ok = ok && (f->bytes != NULL || (f->len == 0 && f->type == ISSUANCE_FIELD_BYTES));
        if (f->type == ISSUANCE_FIELD_BYTES_LIST) {
            ok = ok && f->list_count <= ISSUANCE_LIST_MAX;
            for (size_t k = 0; ok && k < f->list_count; k++)
                ok = f->list[k] != NULL;
        }
        if (!ok)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: field %zu is incomplete", i);
    }
    return VTPMCA_OK;
}

static json_t *json_value(const issuance_field *f)
{
    switch (f->type) {
    case ISSUANCE_FIELD_BYTES:
        return vt_json_b64(f->bytes, f->len);
    case ISSUANCE_FIELD_TEXT:
        return json_stringn((const char *)f->bytes, f->len);
    case ISSUANCE_FIELD_UINT:
        return f->uint <= (uint64_t)INT64_MAX ? json_integer((json_int_t)f->uint) : NULL;
    case ISSUANCE_FIELD_BYTES_LIST: {
        json_t *array = json_array();
        for (size_t k = 0; array != NULL && k < f->list_count; k++) {
            if (json_array_append_new(array, vt_json_b64(f->list[k], f->list_len[k])) != 0) {
                json_decref(array);
                array = NULL;
            }
        }
        return array;
    }
    }
    return NULL;
}

static vtpmca_err encode_json(const issuance_field *fields, size_t n, uint8_t **out,
                              size_t *out_len, vtpmca_diag *diag)
{
    json_t *doc = json_object();
    for (size_t i = 0; doc != NULL && i < n; i++) {
        if (json_object_set_new(doc, fields[i].name, json_value(&fields[i])) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: cannot encode JSON");
    *out = (uint8_t *)text;
    *out_len = strlen(text);
    return VTPMCA_OK;
}

static cbor_item_t *cbor_value(const issuance_field *f)
{
    switch (f->type) {
    case ISSUANCE_FIELD_BYTES:
        return cbor_build_bytestring(f->bytes != NULL ? f->bytes : (const uint8_t *)"", f->len);
    case ISSUANCE_FIELD_TEXT:
        return cbor_build_stringn((const char *)f->bytes, f->len);
    case ISSUANCE_FIELD_UINT:
        return vt_cbor_uint(f->uint);
    case ISSUANCE_FIELD_BYTES_LIST: {
        cbor_item_t *array = cbor_new_definite_array(f->list_count);
        for (size_t k = 0; array != NULL && k < f->list_count; k++) {
            cbor_item_t *item = cbor_build_bytestring(f->list[k], f->list_len[k]);
            bool ok = item != NULL && cbor_array_push(array, item);
            if (item != NULL)
                cbor_decref(&item);
            if (!ok)
                cbor_decref(&array);
        }
        return array;
    }
    }
    return NULL;
}

static vtpmca_err encode_cbor(const issuance_field *fields, size_t n, uint8_t **out,
                              size_t *out_len, vtpmca_diag *diag)
{
    cbor_item_t *map = cbor_new_definite_map(n);
    for (size_t i = 0; map != NULL && i < n; i++) {
        if (!vt_cbor_map_put(map, fields[i].name, cbor_value(&fields[i])))
            cbor_decref(&map);
    }
    unsigned char *buf = NULL;
    size_t buf_size = 0, len = map != NULL ? cbor_serialize_alloc(map, &buf, &buf_size) : 0;
    if (map != NULL)
        cbor_decref(&map);
    if (len == 0) {
        free(buf);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: cannot encode CBOR");
    }
    *out = buf;
    *out_len = len;
    return VTPMCA_OK;
}

vtpmca_err issuance_message_encode(issuance_encoding encoding, const issuance_field *fields,
                                   size_t n, uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: missing output");
    *out = NULL;
    *out_len = 0;
    vtpmca_err err = check_fields(fields, n, diag);
    if (err != VTPMCA_OK)
        return err;
    if (encoding == ISSUANCE_ENC_JSON)
        return encode_json(fields, n, out, out_len, diag);
    if (encoding == ISSUANCE_ENC_CBOR)
        return encode_cbor(fields, n, out, out_len, diag);
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: unknown encoding");
}

/* ---- decoding ---- */

#define STORAGE_SLOTS (ISSUANCE_MESSAGE_MAX_FIELDS * (1 + ISSUANCE_LIST_MAX))

typedef struct {
    void *owned[STORAGE_SLOTS];
    size_t n;
} message_storage;

/* Keeps a malloc'd buffer with the message (freed on failure to keep). */
static bool keep(message_storage *s, void *p)
{
    if (p == NULL || s->n == STORAGE_SLOTS) {
        free(p);
        return false;
    }
    s->owned[s->n++] = p;
    return true;
}

static const issuance_field_spec *find_spec(const issuance_field_spec *spec, size_t n,
                                            const char *name, size_t name_len, size_t *index)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(spec[i].name) == name_len && memcmp(spec[i].name, name, name_len) == 0) {
            *index = i;
            return &spec[i];
        }
    }
    return NULL;
}

/* Decoded length of base64 text of text_len characters is at most 3 * text_len / 4. */
static vtpmca_err take_b64(const char *text, size_t text_len, const issuance_field_spec *sp,
                           message_storage *s, const uint8_t **data, size_t *len, vtpmca_diag *diag)
{
    if (text_len / 4 * 3 > sp->max + 2)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: larger than %zu bytes", sp->name, sp->max);
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (vt_b64_decode_alloc(text, text_len, VT_B64_STD, &out, &out_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: not standard base64 with padding",
                           sp->name);
    if (out_len > sp->max) {
        free(out);
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: %zu bytes, at most %zu", sp->name, out_len,
                           sp->max);
    }
    if (!keep(s, out != NULL ? out : malloc(1)))
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: out of memory");
    *data = s->owned[s->n - 1];
    *len = out_len;
    return VTPMCA_OK;
}

/* Copies text (no NUL inside) into storage, NUL-terminated. */
static vtpmca_err take_text(const char *text, size_t len, const issuance_field_spec *sp,
                            message_storage *s, issuance_field *f, vtpmca_diag *diag)
{
    if (len > sp->max)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: longer than %zu characters", sp->name,
                           sp->max);
    if (memchr(text, '\0', len) != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: contains a NUL character", sp->name);
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    if (!keep(s, copy))
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: out of memory");
    f->bytes = (const uint8_t *)copy;
    f->len = len;
    return VTPMCA_OK;
}

static vtpmca_err bytes_copy(const uint8_t *data, size_t len, const issuance_field_spec *sp,
                             message_storage *s, const uint8_t **out, size_t *out_len,
                             vtpmca_diag *diag)
{
    if (len > sp->max)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: %zu bytes, at most %zu", sp->name, len,
                           sp->max);
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy != NULL && len > 0)
        memcpy(copy, data, len);
    if (!keep(s, copy))
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: out of memory");
    *out = copy;
    *out_len = len;
    return VTPMCA_OK;
}

static vtpmca_err json_field(const json_t *value, const issuance_field_spec *sp, message_storage *s,
                             issuance_field *f, vtpmca_diag *diag)
{
    switch (sp->type) {
    case ISSUANCE_FIELD_BYTES:
        if (!json_is_string(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be a base64 string", sp->name);
        return take_b64(json_string_value(value), json_string_length(value), sp, s, &f->bytes,
                        &f->len, diag);
    case ISSUANCE_FIELD_TEXT:
        if (!json_is_string(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be a string", sp->name);
        return take_text(json_string_value(value), json_string_length(value), sp, s, f, diag);
    case ISSUANCE_FIELD_UINT: {
        if (!json_is_integer(value) || json_integer_value(value) < 0)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be an unsigned integer", sp->name);
        uint64_t v = (uint64_t)json_integer_value(value);
        if (v > sp->max)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: above %zu", sp->name, sp->max);
        f->uint = v;
        return VTPMCA_OK;
    }
    case ISSUANCE_FIELD_BYTES_LIST: {
        if (!json_is_array(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be an array", sp->name);
        if (json_array_size(value) > ISSUANCE_LIST_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: more than %d entries", sp->name,
                               ISSUANCE_LIST_MAX);
        for (size_t k = 0; k < json_array_size(value); k++) {
            const json_t *item = json_array_get(value, k);
            if (!json_is_string(item))
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: entries must be base64 strings",
                                   sp->name);
            vtpmca_err err = take_b64(json_string_value(item), json_string_length(item), sp, s,
                                      &f->list[k], &f->list_len[k], diag);
            if (err != VTPMCA_OK)
                return err;
            f->list_count++;
        }
        return VTPMCA_OK;
    }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s: unknown field type", sp->name);
}

static vtpmca_err cbor_field(const cbor_item_t *value, const issuance_field_spec *sp,
                             message_storage *s, issuance_field *f, vtpmca_diag *diag)
{
    switch (sp->type) {
    case ISSUANCE_FIELD_BYTES:
        if (!cbor_isa_bytestring(value) || !cbor_bytestring_is_definite(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be a definite byte string",
                               sp->name);
        return bytes_copy(cbor_bytestring_handle(value), cbor_bytestring_length(value), sp, s,
                          &f->bytes, &f->len, diag);
    case ISSUANCE_FIELD_TEXT:
        if (!cbor_isa_string(value) || !cbor_string_is_definite(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be a definite text string",
                               sp->name);
        return take_text((const char *)cbor_string_handle(value), cbor_string_length(value), sp, s,
                         f, diag);
    case ISSUANCE_FIELD_UINT: {
        if (!cbor_isa_uint(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be an unsigned integer", sp->name);
        uint64_t v = cbor_get_int(value);
        if (v > sp->max)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: above %zu", sp->name, sp->max);
        f->uint = v;
        return VTPMCA_OK;
    }
    case ISSUANCE_FIELD_BYTES_LIST: {
        if (!cbor_isa_array(value) || !cbor_array_is_definite(value))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must be a definite array", sp->name);
        size_t n = cbor_array_size(value);
        if (n > ISSUANCE_LIST_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: more than %d entries", sp->name,
                               ISSUANCE_LIST_MAX);
        cbor_item_t **items = cbor_array_handle(value);
        for (size_t k = 0; k < n; k++) {
            if (!cbor_isa_bytestring(items[k]) || !cbor_bytestring_is_definite(items[k]))
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                                   "%s: entries must be definite byte strings", sp->name);
            vtpmca_err err =
                bytes_copy(cbor_bytestring_handle(items[k]), cbor_bytestring_length(items[k]), sp,
                           s, &f->list[k], &f->list_len[k], diag);
            if (err != VTPMCA_OK)
                return err;
            f->list_count++;
        }
        return VTPMCA_OK;
    }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s: unknown field type", sp->name);
}

/* Claims the schema slot of a member: unknown and repeated names are errors. */
static vtpmca_err claim(const issuance_field_spec *spec, size_t n_spec, const char *name,
                        size_t name_len, bool *seen, size_t *index, vtpmca_diag *diag)
{
    if (find_spec(spec, n_spec, name, name_len, index) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unknown member \"%.*s\"",
                           (int)(name_len > 40 ? 40 : name_len), name);
    if (seen[*index])
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "member \"%s\" appears twice",
                           spec[*index].name);
    seen[*index] = true;
    return VTPMCA_OK;
}

static vtpmca_err decode_json(const uint8_t *body, size_t len, const issuance_field_spec *spec,
                              size_t n_spec, message_storage *s, issuance_field *slots, bool *seen,
                              vtpmca_diag *diag)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed JSON: %s (line %d)", jerr.text,
                           jerr.line);
    vtpmca_err err = VTPMCA_OK;
    if (!json_is_object(doc))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body must be a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        if (err != VTPMCA_OK)
            break;
        size_t index = 0;
        err = claim(spec, n_spec, key, strlen(key), seen, &index, diag);
        if (err == VTPMCA_OK)
            err = json_field(value, &spec[index], s, &slots[index], diag);
    }
    json_decref(doc);
    return err;
}

static vtpmca_err decode_cbor(const uint8_t *body, size_t len, const issuance_field_spec *spec,
                              size_t n_spec, message_storage *s, issuance_field *slots, bool *seen,
                              vtpmca_diag *diag)
{
    struct cbor_load_result result;
    cbor_item_t *doc = cbor_load(body, len, &result);
    vtpmca_err err = VTPMCA_OK;
    if (doc == NULL || result.error.code != CBOR_ERR_NONE)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "malformed CBOR at byte %zu",
                          result.error.position);
    else if (result.read != len)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%zu bytes after the CBOR item", len - result.read);
    else if (!cbor_isa_map(doc) || !cbor_map_is_definite(doc))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body must be a definite-length CBOR map");
    struct cbor_pair *pairs = err == VTPMCA_OK ? cbor_map_handle(doc) : NULL;
    size_t n = err == VTPMCA_OK ? cbor_map_size(doc) : 0;
    for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
        const cbor_item_t *key = pairs[i].key;
        if (!cbor_isa_string(key) || !cbor_string_is_definite(key)) {
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "map keys must be definite text strings");
            break;
        }
        size_t index = 0;
        err = claim(spec, n_spec, (const char *)cbor_string_handle(key), cbor_string_length(key),
                    seen, &index, diag);
        if (err == VTPMCA_OK)
            err = cbor_field(pairs[i].value, &spec[index], s, &slots[index], diag);
    }
    if (doc != NULL)
        cbor_decref(&doc);
    return err;
}

vtpmca_err issuance_message_decode(issuance_encoding encoding, const uint8_t *body, size_t len,
                                   const issuance_field_spec *spec, size_t n_spec,
                                   issuance_message *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if ((body == NULL && len > 0) || spec == NULL || n_spec == 0 ||
        n_spec > ISSUANCE_MESSAGE_MAX_FIELDS || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: bad arguments");
    if (len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the body is empty");
    message_storage *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "message: out of memory");
    out->storage = s;
    issuance_field slots[ISSUANCE_MESSAGE_MAX_FIELDS];
    bool seen[ISSUANCE_MESSAGE_MAX_FIELDS] = {false};
    memset(slots, 0, sizeof(slots));
    vtpmca_err err;
    if (encoding == ISSUANCE_ENC_JSON)
        err = decode_json(body, len, spec, n_spec, s, slots, seen, diag);
    else if (encoding == ISSUANCE_ENC_CBOR)
        err = decode_cbor(body, len, spec, n_spec, s, slots, seen, diag);
    else
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "message: unknown encoding");
    for (size_t i = 0; i < n_spec && err == VTPMCA_OK; i++) {
        if (spec[i].required && !seen[i])
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "member \"%s\" is missing", spec[i].name);
        if (seen[i]) {
            slots[i].name = spec[i].name;
            slots[i].type = spec[i].type;
            out->fields[out->count++] = slots[i];
        }
    }
    if (err != VTPMCA_OK)
        issuance_message_free(out);
    return err;
}

const issuance_field *issuance_message_get(const issuance_message *msg, const char *name)
{
    if (msg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < msg->count; i++) {
        if (strcmp(msg->fields[i].name, name) == 0)
            return &msg->fields[i];
    }
    return NULL;
}

void issuance_message_free(issuance_message *msg)
{
    if (msg == NULL)
        return;
    message_storage *s = msg->storage;
    for (size_t i = 0; s != NULL && i < s->n; i++)
        free(s->owned[i]);
    free(s);
    memset(msg, 0, sizeof(*msg));
}

/* ---- the protocol's messages ---- */

static const char *text_of(const issuance_message *msg, const char *name)
{
    const issuance_field *f = issuance_message_get(msg, name);
    return f != NULL ? (const char *)f->bytes : NULL;
}

static void bytes_of(const issuance_message *msg, const char *name, const uint8_t **data,
                     size_t *len)
{
    const issuance_field *f = issuance_message_get(msg, name);
    *data = f != NULL ? f->bytes : NULL;
    *len = f != NULL ? f->len : 0;
}

vtpmca_err issuance_decode_certify(issuance_encoding encoding, const uint8_t *body, size_t len,
                                   issuance_certify_request *request, issuance_message *msg,
                                   vtpmca_diag *diag)
{
    if (request == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: missing request");
    memset(request, 0, sizeof(*request));
    vtpmca_err err =
        issuance_message_decode(encoding, body, len, ISSUANCE_CERTIFY_REQUEST,
                                ISSUANCE_SPEC_COUNT(ISSUANCE_CERTIFY_REQUEST), msg, diag);
    if (err != VTPMCA_OK)
        return err;
    bytes_of(msg, "ek_public", &request->ek_public, &request->ek_public_len);
    bytes_of(msg, "iak_public", &request->iak_public, &request->iak_public_len);
    bytes_of(msg, "kbs_key", &request->kbs_key, &request->kbs_key_len);
    bytes_of(msg, "nonce", &request->nonce, &request->nonce_len);
    bytes_of(msg, "report", &request->report, &request->report_len);
    request->resource = text_of(msg, "resource");
    request->format = text_of(msg, "format");
    return VTPMCA_OK;
}

vtpmca_err issuance_decode_activation_start(issuance_encoding encoding, const uint8_t *body,
                                            size_t len, issuance_activation_request *request,
                                            issuance_message *msg, vtpmca_diag *diag)
{
    if (request == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing request");
    memset(request, 0, sizeof(*request));
    vtpmca_err err =
        issuance_message_decode(encoding, body, len, ISSUANCE_ACTIVATE_START_REQUEST,
                                ISSUANCE_SPEC_COUNT(ISSUANCE_ACTIVATE_START_REQUEST), msg, diag);
    if (err != VTPMCA_OK)
        return err;
    bytes_of(msg, "ek_public", &request->ek_public, &request->ek_public_len);
    bytes_of(msg, "iak_public", &request->iak_public, &request->iak_public_len);
    request->resource = text_of(msg, "resource");
    return VTPMCA_OK;
}

vtpmca_err issuance_decode_activation_finish(issuance_encoding encoding, const uint8_t *body,
                                             size_t len, const char **activation_id,
                                             const uint8_t **secret, size_t *secret_len,
                                             issuance_message *msg, vtpmca_diag *diag)
{
    if (activation_id == NULL || secret == NULL || secret_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing output");
    vtpmca_err err =
        issuance_message_decode(encoding, body, len, ISSUANCE_ACTIVATE_FINISH_REQUEST,
                                ISSUANCE_SPEC_COUNT(ISSUANCE_ACTIVATE_FINISH_REQUEST), msg, diag);
    if (err != VTPMCA_OK)
        return err;
    *activation_id = text_of(msg, "activation_id");
    bytes_of(msg, "secret", secret, secret_len);
    return VTPMCA_OK;
}

vtpmca_err issuance_encode_challenge(issuance_encoding encoding,
                                     const uint8_t nonce[ISSUANCE_NONCE_LEN], unsigned expires_in_s,
                                     uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (nonce == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "challenge: missing nonce");
    issuance_field fields[] = {
        {.name = "nonce", .type = ISSUANCE_FIELD_BYTES, .bytes = nonce, .len = ISSUANCE_NONCE_LEN},
        {.name = "expires_in", .type = ISSUANCE_FIELD_UINT, .uint = expires_in_s},
    };
    return issuance_message_encode(encoding, fields, 2, out, out_len, diag);
}

vtpmca_err issuance_encode_certify(issuance_encoding encoding,
                                   const issuance_certify_result *result, uint8_t **out,
                                   size_t *out_len, vtpmca_diag *diag)
{
    if (result == NULL || result->outcome != ISSUANCE_OK || result->ek_cert == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: no certificate to encode");
    const char *format = issuance_format_name(result->format);
    issuance_field fields[4];
    size_t n = 0;
    fields[n++] = (issuance_field){.name = "ek_cert",
                                   .type = ISSUANCE_FIELD_BYTES,
                                   .bytes = result->ek_cert,
                                   .len = result->ek_cert_len};
    if (result->iak_cert != NULL)
        fields[n++] = (issuance_field){.name = "iak_cert",
                                       .type = ISSUANCE_FIELD_BYTES,
                                       .bytes = result->iak_cert,
                                       .len = result->iak_cert_len};
    fields[n++] = (issuance_field){.name = "chain",
                                   .type = ISSUANCE_FIELD_BYTES_LIST,
                                   .list = {result->chain[0], result->chain[1]},
                                   .list_len = {result->chain_len[0], result->chain_len[1]},
                                   .list_count = 2};
    fields[n++] = (issuance_field){.name = "format",
                                   .type = ISSUANCE_FIELD_TEXT,
                                   .bytes = (const uint8_t *)format,
                                   .len = format != NULL ? strlen(format) : 0};
    return issuance_message_encode(encoding, fields, n, out, out_len, diag);
}

vtpmca_err issuance_encode_activation_start(issuance_encoding encoding,
                                            const issuance_activation_result *result, uint8_t **out,
                                            size_t *out_len, vtpmca_diag *diag)
{
    if (result == NULL || result->outcome != ISSUANCE_OK || result->credential_blob == NULL ||
        result->encrypted_secret == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: nothing to encode");
    issuance_field fields[] = {
        {.name = "activation_id",
         .type = ISSUANCE_FIELD_TEXT,
         .bytes = (const uint8_t *)result->activation_id,
         .len = strlen(result->activation_id)},
        {.name = "credential_blob",
         .type = ISSUANCE_FIELD_BYTES,
         .bytes = result->credential_blob,
         .len = result->credential_blob_len},
        {.name = "encrypted_secret",
         .type = ISSUANCE_FIELD_BYTES,
         .bytes = result->encrypted_secret,
         .len = result->encrypted_secret_len},
        {.name = "expires_in", .type = ISSUANCE_FIELD_UINT, .uint = result->expires_in_s},
    };
    return issuance_message_encode(encoding, fields, 4, out, out_len, diag);
}

vtpmca_err issuance_encode_activation_finish(issuance_encoding encoding,
                                             const issuance_activation_result *result,
                                             uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (result == NULL || result->outcome != ISSUANCE_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: nothing to encode");
    static const char proven[] = "proven";
    issuance_field fields[] = {
        {.name = "status",
         .type = ISSUANCE_FIELD_TEXT,
         .bytes = (const uint8_t *)proven,
         .len = sizeof(proven) - 1},
        {.name = "expires_in", .type = ISSUANCE_FIELD_UINT, .uint = result->expires_in_s},
    };
    return issuance_message_encode(encoding, fields, 2, out, out_len, diag);
}
