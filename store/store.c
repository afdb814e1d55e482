/* Backend-neutral store front end: validates every argument, then dispatches to the backend
 * chosen by the URI. Backends may rely on what is checked here. */
#include "vtpmca/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
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
