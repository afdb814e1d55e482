/* Backend-neutral store front end: validates every argument, then dispatches to the backend
 * chosen by the URI. Backends may rely on what is checked here. */
#include "vtpmca/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_backend.h"

struct store {
    const struct store_backend_ops *ops;
    void *impl;
};

/* Longest strings that fit the fixed-size fields of the result structs (NUL excluded). */
#define FLEET_NAME_MAX (sizeof((store_fleet){0}.name) - 1)
#define FLEET_DESCRIPTION_MAX (sizeof((store_fleet){0}.description) - 1)
#define AUTHOR_MAX (sizeof((store_policy_version){0}.author) - 1)

static bool is_one_of(const char *text, const char *const *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(text, allowed[i]) == 0)
            return true;
    }
    return false;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF) without ASCII
 * control characters: these strings end up in JSON answers and log lines. */
static bool is_clean_utf8(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p != 0) {
        unsigned char c = *p;
        size_t extra;
        unsigned long cp;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += extra + 1;
    }
    return true;
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static vtpmca_err check_fleet_name(const char *name, vtpmca_diag *diag)
{
    if (name == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: fleet name missing");
    size_t len = strlen(name);
    if (len == 0 || len > FLEET_NAME_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: fleet name must be 1 to %zu characters, got %zu", FLEET_NAME_MAX,
                           len);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!is_name_char(c))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: fleet name may only hold [A-Za-z0-9._-] (bad byte "
                               "0x%02x at offset %zu)",
                               (unsigned)(unsigned char)c, i);
    }
    return VTPMCA_OK;
}

static vtpmca_err check_text(const char *what, const char *text, size_t min_len, size_t max_len,
                             vtpmca_diag *diag)
{
    size_t len = strlen(text);
    if (len < min_len || len > max_len)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: %s must be %zu to %zu bytes, got %zu", what, min_len, max_len,
                           len);
    if (!is_clean_utf8(text))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: %s is not valid UTF-8 or holds control characters", what);
    return VTPMCA_OK;
}

static vtpmca_err check_vcek_key(store *st, const char *product, const char *signer,
                                 const uint8_t chip_id[64], vtpmca_diag *diag)
{
    static const char *const products[] = {"Milan", "Genoa", "Turin"};
    static const char *const signers[] = {"vcek", "vlek"};
    if (st == NULL || product == NULL || signer == NULL || chip_id == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: vcek: missing argument");
    if (!is_one_of(product, products, sizeof(products) / sizeof(products[0])))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: product must be Milan, Genoa or Turin");
    if (!is_one_of(signer, signers, sizeof(signers) / sizeof(signers[0])))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: signer must be vcek or vlek");
    if (strcmp(signer, "vlek") == 0) {
        /* A VLEK is per CSP, not per chip: its key must not depend on a chip id. */
        for (size_t i = 0; i < 64; i++) {
            if (chip_id[i] != 0)
                return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                                   "store: a VLEK is stored with an all-zero chip id");
        }
    }
    return VTPMCA_OK;
}

vtpmca_err store_open(const char *uri, store **out, vtpmca_diag *diag)
{
    if (uri == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: open: missing argument");
    *out = NULL;

    const struct store_backend_ops *ops = NULL;
    const char *location = uri;
    if (strncmp(uri, "sqlite:", 7) == 0) {
        ops = &store_sqlite_backend;
        location = uri + 7;
    } else if (strncmp(uri, "postgres://", 11) == 0 || strncmp(uri, "postgresql://", 13) == 0) {
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "store: the PostgreSQL backend is not available yet; use "
                           "sqlite:PATH");
    } else {
        /* Anything shaped like "scheme://" is a URI we do not know, not a file name. */
        size_t scheme_len = strspn(uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789+.-");
        if (scheme_len > 0 && strncmp(uri + scheme_len, "://", 3) == 0)
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                               "store: unknown URI scheme \"%.*s\" (supported: sqlite:PATH "
                               "or a plain path)",
                               (int)(scheme_len < 32 ? scheme_len : 32), uri);
        ops = &store_sqlite_backend;
    }
    if (location[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: empty database path");

    store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
    st->ops = ops;
    vtpmca_err err = ops->open(location, &st->impl, diag);
    if (err != VTPMCA_OK) {
        free(st);
        return err;
    }
    *out = st;
    return VTPMCA_OK;
}

void store_close(store *st)
{
    if (st == NULL)
        return;
    st->ops->close(st->impl);
    free(st);
}

vtpmca_err store_schema_version(store *st, int *out)
{
    if (st == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    return st->ops->schema_version(st->impl, out, NULL);
}

vtpmca_err store_vcek_put(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                          size_t der_len, const char *source, vtpmca_diag *diag)
{
    static const char *const sources[] = {"import", "kds"};
    vtpmca_err err = check_vcek_key(st, product, signer, chip_id, diag);
    if (err != VTPMCA_OK)
        return err;
    if (der == NULL || der_len == 0 || source == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: vcek put: missing argument");
    if (der_len > STORE_VCEK_DER_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "store: certificate of %zu bytes exceeds the %d byte limit", der_len,
                           STORE_VCEK_DER_MAX);
    if (!is_one_of(source, sources, sizeof(sources) / sizeof(sources[0])))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: source must be import or kds");
    return st->ops->vcek_put(st->impl, product, signer, chip_id, tcb, der, der_len, source, diag);
}

vtpmca_err store_vcek_get(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, uint8_t **der, size_t *der_len,
                          vtpmca_diag *diag)
{
    if (der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: vcek get: missing argument");
    *der = NULL;
    *der_len = 0;
    vtpmca_err err = check_vcek_key(st, product, signer, chip_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->vcek_get(st->impl, product, signer, chip_id, tcb, der, der_len, diag);
}

vtpmca_err store_vcek_count(store *st, uint64_t *out, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: vcek count: missing argument");
    return st->ops->vcek_count(st->impl, out, diag);
}

vtpmca_err store_fleet_create(store *st, const char *name, const char *description,
                              vtpmca_diag *diag)
{
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: fleet create: missing store");
    vtpmca_err err = check_fleet_name(name, diag);
    if (err != VTPMCA_OK)
        return err;
    if (description == NULL)
        description = "";
    err = check_text("fleet description", description, 0, FLEET_DESCRIPTION_MAX, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->fleet_create(st->impl, name, description, diag);
}

vtpmca_err store_fleet_exists(store *st, const char *name, vtpmca_diag *diag)
{
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: fleet exists: missing store");
    vtpmca_err err = check_fleet_name(name, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->fleet_exists(st->impl, name, diag);
}

vtpmca_err store_fleet_list(store *st, store_fleet **out, size_t *n, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: fleet list: missing argument");
    *out = NULL;
    *n = 0;
    return st->ops->fleet_list(st->impl, out, n, diag);
}

vtpmca_err store_policy_put(store *st, const char *fleet, const char *policy_json,
                            const char *author, uint32_t *version_out, vtpmca_diag *diag)
{
    if (st == NULL || policy_json == NULL || author == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: policy put: missing argument");
    vtpmca_err err = check_fleet_name(fleet, diag);
    if (err != VTPMCA_OK)
        return err;
    err = check_text("policy author", author, 1, AUTHOR_MAX, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t json_len = strlen(policy_json);
    if (json_len > STORE_POLICY_JSON_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "store: policy of %zu bytes exceeds the %d byte limit", json_len,
                           STORE_POLICY_JSON_MAX);
    /* Only the shape is checked here; the policy module validates the content. */
    json_error_t jerr;
    json_t *doc = json_loadb(policy_json, json_len, JSON_REJECT_DUPLICATES, &jerr);
    bool is_object = json_is_object(doc);
    json_decref(doc);
    if (doc == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "store: policy is not valid JSON (line %d, column %d)", jerr.line,
                           jerr.column);
    if (!is_object)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "store: policy must be a JSON object");
    return st->ops->policy_put(st->impl, fleet, policy_json, author, version_out, diag);
}

vtpmca_err store_policy_get(store *st, const char *fleet, uint32_t version, char **policy_json,
                            uint32_t *version_out, vtpmca_diag *diag)
{
    if (st == NULL || policy_json == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: policy get: missing argument");
    *policy_json = NULL;
    vtpmca_err err = check_fleet_name(fleet, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->policy_get(st->impl, fleet, version, policy_json, version_out, diag);
}

vtpmca_err store_policy_history(store *st, const char *fleet, store_policy_version **out, size_t *n,
                                vtpmca_diag *diag)
{
    if (st == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: policy history: missing argument");
    *out = NULL;
    *n = 0;
    vtpmca_err err = check_fleet_name(fleet, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->policy_history(st->impl, fleet, out, n, diag);
}

/* ---- Instances ---- */

const char *store_key_mode_name(store_key_mode mode)
{
    switch (mode) {
    case STORE_KEY_GENERATED:
        return "generated";
    case STORE_KEY_WRAPPED:
        return "wrapped";
    }
    return "unknown";
}

vtpmca_err store_key_mode_parse(const char *text, store_key_mode *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcmp(text, "generated") == 0)
        *out = STORE_KEY_GENERATED;
    else if (strcmp(text, "wrapped") == 0)
        *out = STORE_KEY_WRAPPED;
    else
        return VTPMCA_ERR_INVALID_ARG;
    return VTPMCA_OK;
}

vtpmca_err store_check_instance_id(const char *id, vtpmca_diag *diag)
{
    if (id == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance id missing");
    size_t len = strlen(id);
    if (len == 0 || len > STORE_INSTANCE_ID_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: instance id must be 1 to %d characters, got %zu",
                           STORE_INSTANCE_ID_MAX, len);
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(id[i]) && id[i] != ':')
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: instance id may only hold [A-Za-z0-9._:-] (bad byte "
                               "0x%02x at offset %zu)",
                               (unsigned)(unsigned char)id[i], i);
    }
    return VTPMCA_OK;
}

vtpmca_err store_check_resource_path(const char *path, vtpmca_diag *diag)
{
    static const char *const segment_names[] = {"repository", "type", "tag"};
    if (path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: resource path missing");
    const char *p = path;
    for (int segment = 0; segment < 3; segment++) {
        size_t len = 0;
        while (p[len] != '\0' && p[len] != '/') {
            if (!is_name_char(p[len]))
                return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                                   "store: resource path %s may only hold [A-Za-z0-9._-] (bad "
                                   "byte 0x%02x at offset %zu)",
                                   segment_names[segment], (unsigned)(unsigned char)p[len],
                                   (size_t)(p - path) + len);
            len++;
        }
        if (len == 0 || len > STORE_RESOURCE_SEGMENT_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: resource path %s must be 1 to %d characters, got %zu "
                               "(the form is <repository>/<type>/<tag>)",
                               segment_names[segment], STORE_RESOURCE_SEGMENT_MAX, len);
        /* HTTP clients fold "." and ".." segments away: such a path could never be asked for. */
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: resource path %s may not be . or ..",
                               segment_names[segment]);
        p += len;
        if (segment < 2 && *p != '/')
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: resource path must be <repository>/<type>/<tag>");
        if (segment < 2)
            p++;
    }
    if (*p != '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: resource path has more than three segments");
    return VTPMCA_OK;
}

/* A fixed-size text field of a struct the caller filled: it must end inside its array. */
static bool is_terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

static vtpmca_err check_instance(const store_instance *inst, vtpmca_diag *diag)
{
    if (!is_terminated(inst->id, sizeof(inst->id)) ||
        !is_terminated(inst->fleet, sizeof(inst->fleet)) ||
        !is_terminated(inst->resource_path, sizeof(inst->resource_path)))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: instance text field is not NUL-terminated");
    vtpmca_err err = store_check_instance_id(inst->id, diag);
    if (err == VTPMCA_OK)
        err = check_fleet_name(inst->fleet, diag);
    if (err == VTPMCA_OK)
        err = store_check_resource_path(inst->resource_path, diag);
    if (err != VTPMCA_OK)
        return err;
    switch (inst->key_mode) {
    case STORE_KEY_GENERATED:
        if (inst->wrapped_key == NULL || inst->wrapped_key_len == 0)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: instance %s: generated key mode needs its wrapped key",
                               inst->id);
        if (inst->wrapped_key_len > STORE_WRAPPED_KEY_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                               "store: instance %s: wrapped key of %zu bytes exceeds %d", inst->id,
                               inst->wrapped_key_len, STORE_WRAPPED_KEY_MAX);
        return VTPMCA_OK;
    case STORE_KEY_WRAPPED:
        if (inst->wrapped_key != NULL || inst->wrapped_key_len != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: instance %s: wrapped key mode stores no key", inst->id);
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance %s: unknown key mode %d",
                       inst->id, (int)inst->key_mode);
}

static vtpmca_err check_audit_event(const store_audit_event *ev, vtpmca_diag *diag)
{
    const struct {
        const char *name;
        const char *text;
        size_t size;
    } fields[] = {
        {"actor", ev->actor, sizeof(ev->actor)},
        {"action", ev->action, sizeof(ev->action)},
        {"instance_id", ev->instance_id, sizeof(ev->instance_id)},
        {"outcome", ev->outcome, sizeof(ev->outcome)},
        {"measurement", ev->measurement, sizeof(ev->measurement)},
        {"chip_id", ev->chip_id, sizeof(ev->chip_id)},
        {"detail", ev->detail, sizeof(ev->detail)},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!is_terminated(fields[i].text, fields[i].size))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: audit %s is not NUL-terminated", fields[i].name);
        if (!is_clean_utf8(fields[i].text))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "store: audit %s is not valid UTF-8 or holds control characters",
                               fields[i].name);
    }
    if (ev->action[0] == '\0' ||
        strspn(ev->action, "abcdefghijklmnopqrstuvwxyz0123456789_.") != strlen(ev->action))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: audit action must be non-empty [a-z0-9_.]");
    if (strspn(ev->measurement, "0123456789abcdef") != strlen(ev->measurement) ||
        strspn(ev->chip_id, "0123456789abcdef") != strlen(ev->chip_id))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: audit measurement and chip_id are lower-case hex");
    if (ev->at_ms < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: audit time is negative");
    return VTPMCA_OK;
}

/* Validates the caller's audit rows as the backend asks for them. */
struct describe_checked_ctx {
    store_audit_describe_fn describe;
    void *ctx;
    vtpmca_diag *diag;
};

static vtpmca_err describe_checked(const store_instance *item, size_t index,
                                   store_audit_event *event, void *ctx)
{
    struct describe_checked_ctx *c = ctx;
    vtpmca_err err = c->describe(item, index, event, c->ctx);
    if (err != VTPMCA_OK)
        return vtpmca_fail(c->diag, err, "store: item %zu: no audit row could be made", index);
    return check_audit_event(event, c->diag);
}

vtpmca_err store_instance_put_batch_audited(store *st, const store_instance *items, size_t n,
                                            store_audit_describe_fn describe, void *ctx,
                                            size_t *failed_index, vtpmca_diag *diag)
{
    if (failed_index != NULL)
        *failed_index = n;
    if (st == NULL || items == NULL || n == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance put: missing argument");
    for (size_t i = 0; i < n; i++) {
        vtpmca_diag item_diag = {{0}};
        vtpmca_err err = check_instance(&items[i], &item_diag);
        if (err != VTPMCA_OK) {
            if (failed_index != NULL)
                *failed_index = i;
            return n > 1 ? vtpmca_fail(diag, err, "%s (item %zu)", item_diag.msg, i)
                         : vtpmca_fail(diag, err, "%s", item_diag.msg);
        }
    }
    struct describe_checked_ctx checked = {describe, ctx, diag};
    return st->ops->instance_put_batch(st->impl, items, n,
                                       describe != NULL ? describe_checked : NULL, &checked,
                                       failed_index, diag);
}

vtpmca_err store_instance_put_batch(store *st, const store_instance *items, size_t n,
                                    size_t *failed_index, vtpmca_diag *diag)
{
    return store_instance_put_batch_audited(st, items, n, NULL, NULL, failed_index, diag);
}

vtpmca_err store_instance_put(store *st, const store_instance *instance, vtpmca_diag *diag)
{
    return store_instance_put_batch_audited(st, instance, 1, NULL, NULL, NULL, diag);
}

vtpmca_err store_instance_get(store *st, const char *id, store_instance *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance get: missing argument");
    vtpmca_err err = store_check_instance_id(id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_get(st->impl, id, NULL, out, diag);
}

vtpmca_err store_instance_get_by_path(store *st, const char *resource_path, store_instance *out,
                                      vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance get: missing argument");
    vtpmca_err err = store_check_resource_path(resource_path, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_get(st->impl, NULL, resource_path, out, diag);
}

vtpmca_err store_instance_list(store *st, const char *fleet, const char *after_id, size_t limit,
                               store_instance **out, size_t *n, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance list: missing argument");
    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > STORE_LIST_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: instance list limit must be 1 to %d, got %zu", STORE_LIST_MAX,
                           limit);
    vtpmca_err err = fleet != NULL ? check_fleet_name(fleet, diag) : VTPMCA_OK;
    if (err == VTPMCA_OK && after_id != NULL)
        err = store_check_instance_id(after_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_list(st->impl, fleet, after_id, limit, out, n, diag);
}

vtpmca_err store_instance_set_disabled(store *st, const char *id, bool disabled, vtpmca_diag *diag)
{
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: instance disable: missing store");
    vtpmca_err err = store_check_instance_id(id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_set_disabled(st->impl, id, disabled, diag);
}

void store_instance_free_fields(store_instance *instance)
{
    if (instance == NULL)
        return;
    free(instance->wrapped_key);
    instance->wrapped_key = NULL;
    instance->wrapped_key_len = 0;
}

void store_instance_list_free(store_instance *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_instance_free_fields(&items[i]);
    free(items);
}

/* ---- Audit log ---- */

vtpmca_err store_audit_append(store *st, const store_audit_event *event, vtpmca_diag *diag)
{
    if (st == NULL || event == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: audit append: missing argument");
    vtpmca_err err = check_audit_event(event, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->audit_append(st->impl, event, diag);
}

vtpmca_err store_audit_append_async(store *st, const store_audit_event *event,
                                    store_write_done report, void *arg, vtpmca_diag *diag)
{
    if (st == NULL || event == NULL || report == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: asynchronous audit append: missing argument");
    vtpmca_err err = check_audit_event(event, diag);
    if (err != VTPMCA_OK)
        return err;
    if (st->ops->audit_append_async != NULL)
        return st->ops->audit_append_async(st->impl, event, report, arg, diag);
    vtpmca_diag local = {{0}};
    err = st->ops->audit_append(st->impl, event, &local);
    report(arg, err, err != VTPMCA_OK ? local.msg : "");
    return VTPMCA_OK;
}

vtpmca_err store_audit_query(store *st, const store_audit_filter *filter, store_audit_event **out,
                             size_t *n, vtpmca_diag *diag)
{
    if (st == NULL || filter == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: audit query: missing argument");
    *out = NULL;
    *n = 0;
    if (filter->limit == 0 || filter->limit > STORE_LIST_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: audit query limit must be 1 to %d, got %zu", STORE_LIST_MAX,
                           filter->limit);
    if (filter->since_ms < 0 || filter->until_ms < 0 || filter->after_seq < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: audit query bounds must not be negative");
    const char *texts[] = {filter->instance_id, filter->action, filter->outcome};
    for (size_t i = 0; i < 3; i++) {
        if (texts[i] != NULL) {
            vtpmca_err err = check_text("audit filter", texts[i], 1, 255, diag);
            if (err != VTPMCA_OK)
                return err;
        }
    }
    return st->ops->audit_query(st->impl, filter, out, n, diag);
}

/* ---- Rollback ledger ---- */

struct store_ledger_writer {
    const struct store_backend_ops *ops;
    void *impl;
};

vtpmca_err store_ledger_writer_open(store *st, store_ledger_writer **out, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger writer: missing argument");
    *out = NULL;
    store_ledger_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "store: out of memory");
    w->ops = st->ops;
    vtpmca_err err = st->ops->ledger_writer_open(st->impl, &w->impl, diag);
    if (err != VTPMCA_OK) {
        free(w);
        return err;
    }
    *out = w;
    return VTPMCA_OK;
}

void store_ledger_writer_close(store_ledger_writer *w)
{
    if (w == NULL)
        return;
    w->ops->ledger_writer_close(w->impl);
    free(w);
}

vtpmca_err store_ledger_load(store_ledger_writer *w, const char *instance, store_ledger_state *out,
                             vtpmca_diag *diag)
{
    if (w == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger load: missing argument");
    memset(out, 0, sizeof(*out));
    vtpmca_err err = store_check_instance_id(instance, diag);
    if (err != VTPMCA_OK)
        return err;
    return w->ops->ledger_load(w->impl, instance, out, diag);
}

static vtpmca_err check_ledger_state(const store_ledger_state *s, size_t index, vtpmca_diag *diag)
{
    if (s->has_entry && (s->root_len == 0 || s->root_len > STORE_LEDGER_ROOT_MAX))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: ledger write %zu: root must be 1 to %d bytes, got %zu", index,
                           STORE_LEDGER_ROOT_MAX, s->root_len);
    if (!s->has_entry && s->root_len != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: ledger write %zu: a root without an entry", index);
    if (s->updated_ms < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger write %zu: negative time",
                           index);
    /* sqlite integers are signed 64-bit. */
    if (s->version < 1 || s->version > INT64_MAX || s->fork_refusals > INT64_MAX ||
        s->rollback_refusals > INT64_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: ledger write %zu: version or count out of range", index);
    return VTPMCA_OK;
}

vtpmca_err store_ledger_apply_batch(store_ledger_writer *w, const store_ledger_write *writes,
                                    size_t n, vtpmca_diag *diag)
{
    if (w == NULL || writes == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger batch: missing argument");
    if (n == 0 || n > STORE_LEDGER_BATCH_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: ledger batch must hold 1 to %d writes, got %zu",
                           STORE_LEDGER_BATCH_MAX, n);
    for (size_t i = 0; i < n; i++) {
        vtpmca_err err = store_check_instance_id(writes[i].instance, diag);
        if (err == VTPMCA_OK)
            err = check_ledger_state(&writes[i].state, i, diag);
        if (err != VTPMCA_OK)
            return err;
    }
    return w->ops->ledger_apply_batch(w->impl, writes, n, diag);
}

/* ---- Issued certificates ---- */

static const char *const cert_kind_names[] = {[STORE_CERT_EK] = "ek", [STORE_CERT_IAK] = "iak"};
static const char *const cert_format_names[] = {
    [STORE_CERT_X509] = "x509", [STORE_CERT_C509] = "c509"};
static const char *const cert_status_names[] = {
    [STORE_CERT_ISSUED] = "issued", [STORE_CERT_REVOKED] = "revoked"};

const char *store_cert_kind_name(store_cert_kind kind)
{
    return (unsigned)kind < 2 ? cert_kind_names[kind] : NULL;
}

const char *store_cert_format_name(store_cert_format format)
{
    return (unsigned)format < 2 ? cert_format_names[format] : NULL;
}

const char *store_cert_status_name(store_cert_status status)
{
    return (unsigned)status < 2 ? cert_status_names[status] : NULL;
}

vtpmca_err store_cert_kind_parse(const char *text, store_cert_kind *out)
{
    for (unsigned i = 0; text != NULL && out != NULL && i < 2; i++) {
        if (strcmp(text, cert_kind_names[i]) == 0) {
            *out = (store_cert_kind)i;
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_INVALID_ARG;
}

vtpmca_err store_cert_format_parse(const char *text, store_cert_format *out)
{
    for (unsigned i = 0; text != NULL && out != NULL && i < 2; i++) {
        if (strcmp(text, cert_format_names[i]) == 0) {
            *out = (store_cert_format)i;
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_INVALID_ARG;
}

/* Lower-case hex of min_len..max_len digits (an even number). */
static bool is_lower_hex(const char *text, size_t min_len, size_t max_len)
{
    size_t len = strlen(text);
    if (len < min_len || len > max_len || len % 2 != 0)
        return false;
    return strspn(text, "0123456789abcdef") == len;
}

static vtpmca_err check_cert_serial(const char *serial, vtpmca_diag *diag)
{
    if (serial == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: certificate serial missing");
    /* The serial's magnitude as DER holds it: no leading zero byte, so one spelling each. */
    if (!is_lower_hex(serial, 2, STORE_CERT_SERIAL_HEX_MAX) || strncmp(serial, "00", 2) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate serial must be 2 to %d lower-case hex digits "
                           "(whole bytes, no leading 00)",
                           STORE_CERT_SERIAL_HEX_MAX);
    return VTPMCA_OK;
}

static vtpmca_err check_cert_reason(const char *reason, vtpmca_diag *diag)
{
    size_t len = reason != NULL ? strlen(reason) : 0;
    if (len == 0 || len > STORE_CERT_REASON_MAX ||
        strspn(reason, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != len)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: revocation reason must be 1 to %d letters",
                           STORE_CERT_REASON_MAX);
    return VTPMCA_OK;
}

static vtpmca_err check_cert_blob(const char *what, const uint8_t *data, size_t len, bool required,
                                  vtpmca_diag *diag)
{
    if (data == NULL && len == 0 && !required)
        return VTPMCA_OK;
    if (data == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: certificate %s missing", what);
    if (len > STORE_CERT_BLOB_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "store: certificate %s of %zu bytes exceeds the %d byte limit", what,
                           len, STORE_CERT_BLOB_MAX);
    return VTPMCA_OK;
}

static vtpmca_err check_cert(const store_cert *c, vtpmca_diag *diag)
{
    if (!is_terminated(c->serial, sizeof(c->serial)) ||
        !is_terminated(c->instance_id, sizeof(c->instance_id)) ||
        !is_terminated(c->key_name, sizeof(c->key_name)) ||
        !is_terminated(c->reason, sizeof(c->reason)))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate text field is not NUL-terminated");
    vtpmca_err err = check_cert_serial(c->serial, diag);
    if (err == VTPMCA_OK)
        err = store_check_instance_id(c->instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    if (store_cert_kind_name(c->kind) == NULL || store_cert_format_name(c->format) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate %s: unknown kind or format", c->serial);
    if (!is_lower_hex(c->key_name, 4, STORE_CERT_KEY_NAME_HEX_MAX))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate %s: key name must be 4 to %d lower-case hex "
                           "digits",
                           c->serial, STORE_CERT_KEY_NAME_HEX_MAX);
    if (c->not_after < c->not_before)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate %s: notAfter before notBefore", c->serial);
    if (c->status != STORE_CERT_ISSUED || c->revoked_at != 0 || c->reason[0] != '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: certificate %s: a new certificate is not revoked (use "
                           "store_cert_revoke)",
                           c->serial);
    bool x509 = c->format == STORE_CERT_X509;
    err = check_cert_blob("DER", c->der, c->der_len, x509, diag);
    if (err == VTPMCA_OK)
        err = check_cert_blob("C509", c->c509, c->c509_len, !x509, diag);
    if (err == VTPMCA_OK && x509 && c->c509 != NULL)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                        "store: certificate %s: an x509 record holds no C509 encoding", c->serial);
    return err;
}

vtpmca_err store_cert_put(store *st, const store_cert *cert, vtpmca_diag *diag)
{
    if (st == NULL || cert == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: cert put: missing argument");
    vtpmca_err err = check_cert(cert, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->cert_put(st->impl, cert, diag);
}

/* Validates the caller's audit row of a certification as the backend asks for it. */
struct certification_describe_ctx {
    store_certification_describe_fn describe;
    void *ctx;
    vtpmca_diag *diag;
};

static vtpmca_err certification_describe_checked(store_ek_continuity continuity,
                                                 store_audit_event *event, void *ctx)
{
    struct certification_describe_ctx *c = ctx;
    vtpmca_err err = c->describe(continuity, event, c->ctx);
    if (err != VTPMCA_OK)
        return vtpmca_fail(c->diag, err, "store: no audit row could be made for a certification");
    return check_audit_event(event, c->diag);
}

vtpmca_err store_cert_record_certification(store *st, const store_cert *certs, size_t n,
                                           store_certification_describe_fn describe, void *ctx,
                                           store_certification *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (st == NULL || certs == NULL || describe == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: certification: missing argument");
    if (n == 0 || n > 2)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: a certification records 1 or 2 certificates, not %zu", n);
    for (size_t i = 0; i < n; i++) {
        vtpmca_err err = check_cert(&certs[i], diag);
        if (err != VTPMCA_OK)
            return err;
    }
    if (certs[0].kind != STORE_CERT_EK || (n == 2 && certs[1].kind != STORE_CERT_IAK))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: a certification records an EK certificate, then an IAK one");
    if (n == 2 && strcmp(certs[0].instance_id, certs[1].instance_id) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: a certification's certificates belong to one instance");
    if (n == 2 && strcmp(certs[0].serial, certs[1].serial) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: a certification's certificates have distinct serials");
    struct certification_describe_ctx checked = {describe, ctx, diag};
    return st->ops->cert_record_certification(st->impl, certs, n, certification_describe_checked,
                                              &checked, out, diag);
}

vtpmca_err store_cert_get(store *st, const char *serial, store_cert *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: cert get: missing argument");
    vtpmca_err err = check_cert_serial(serial, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->cert_get(st->impl, serial, NULL, STORE_CERT_EK, out, diag);
}

vtpmca_err store_cert_latest(store *st, const char *instance_id, store_cert_kind kind,
                             store_cert *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: cert latest: missing argument");
    if (store_cert_kind_name(kind) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: unknown certificate kind %d",
                           (int)kind);
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->cert_get(st->impl, NULL, instance_id, kind, out, diag);
}

vtpmca_err store_cert_list(store *st, const char *instance_id, const char *after_serial,
                           size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: cert list: missing argument");
    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > STORE_LIST_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: cert list limit must be 1 to %d, got %zu", STORE_LIST_MAX,
                           limit);
    vtpmca_err err = instance_id != NULL ? store_check_instance_id(instance_id, diag) : VTPMCA_OK;
    if (err == VTPMCA_OK && after_serial != NULL)
        err = check_cert_serial(after_serial, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->cert_list(st->impl, instance_id, after_serial, limit, out, n, diag);
}

vtpmca_err store_cert_revoke(store *st, const char *serial, int64_t revoked_at, const char *reason,
                             vtpmca_diag *diag)
{
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: cert revoke: missing store");
    vtpmca_err err = check_cert_serial(serial, diag);
    if (err == VTPMCA_OK)
        err = check_cert_reason(reason, diag);
    if (err != VTPMCA_OK)
        return err;
    if (revoked_at < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: revocation time before 1970");
    if (revoked_at == 0)
        revoked_at = (int64_t)time(NULL);
    return st->ops->cert_revoke(st->impl, serial, revoked_at, reason, diag);
}

vtpmca_err store_cert_revocations(store *st, store_cert_revocation **out, size_t *n,
                                  vtpmca_diag *diag)
{
    if (st == NULL || out == NULL || n == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: cert revocations: missing argument");
    *out = NULL;
    *n = 0;
    return st->ops->cert_revocations(st->impl, out, n, diag);
}

vtpmca_err store_crl_number_next(store *st, uint64_t *out, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: crl number: missing argument");
    return st->ops->crl_number_next(st->impl, out, diag);
}

/* ---- Rollback ledger keys ---- */

vtpmca_err store_ledger_key_put(store *st, const char *instance_id, const uint8_t *blob, size_t len,
                                vtpmca_diag *diag)
{
    if (st == NULL || blob == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger key put: missing argument");
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    if (len == 0 || len > STORE_WRAPPED_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "store: a wrapped ledger key is 1 to %d bytes, got %zu",
                           STORE_WRAPPED_KEY_MAX, len);
    return st->ops->ledger_key_put(st->impl, instance_id, blob, len, diag);
}

vtpmca_err store_ledger_key_get(store *st, const char *instance_id, uint8_t **blob, size_t *len,
                                vtpmca_diag *diag)
{
    if (blob != NULL)
        *blob = NULL;
    if (len != NULL)
        *len = 0;
    if (st == NULL || blob == NULL || len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: ledger key get: missing argument");
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->ledger_key_get(st->impl, instance_id, blob, len, diag);
}

/* ---- EK re-enrollment grants ---- */

vtpmca_err store_instance_ek_reenroll_grant(store *st, const char *instance_id, vtpmca_diag *diag)
{
    if (st == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: EK re-enroll: missing store");
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->ek_reenroll_grant(st->impl, instance_id, diag);
}

vtpmca_err store_instance_ek_reenroll_take(store *st, const char *instance_id, bool *granted,
                                           vtpmca_diag *diag)
{
    if (granted != NULL)
        *granted = false;
    if (st == NULL || granted == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: EK re-enroll: missing argument");
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->ek_reenroll_take(st->impl, instance_id, granted, diag);
}

/* ---- Deleting instances, audit tail ---- */

vtpmca_err store_instance_delete(store *st, const char *id, store_instance_deletion *out,
                                 vtpmca_diag *diag)
{
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: delete: missing argument");
    memset(out, 0, sizeof(*out));
    vtpmca_err err = store_check_instance_id(id, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_delete(st->impl, id, out, diag);
}

vtpmca_err store_instance_was_deleted(store *st, const char *id, const char *resource_path,
                                      bool *deleted, vtpmca_diag *diag)
{
    if (deleted != NULL)
        *deleted = false;
    if (st == NULL || deleted == NULL || (id == NULL && resource_path == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: was deleted: missing argument");
    vtpmca_err err = id != NULL ? store_check_instance_id(id, diag) : VTPMCA_OK;
    if (err == VTPMCA_OK && resource_path != NULL)
        err = store_check_resource_path(resource_path, diag);
    if (err != VTPMCA_OK)
        return err;
    return st->ops->instance_was_deleted(st->impl, id, resource_path, deleted, diag);
}

vtpmca_err store_audit_last_seq(store *st, int64_t *out, vtpmca_diag *diag)
{
    if (st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: audit: missing argument");
    return st->ops->audit_last_seq(st->impl, out, diag);
}

void store_cert_free_fields(store_cert *cert)
{
    if (cert == NULL)
        return;
    free(cert->der);
    free(cert->c509);
    cert->der = NULL;
    cert->der_len = 0;
    cert->c509 = NULL;
    cert->c509_len = 0;
}
