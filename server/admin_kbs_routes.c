/* The admin API's KBS key routes: this service's KBS public key (the key its SVSMs remember
 * and bind into their certification requests), and the peer KBS public keys it trusts for
 * EK/IAK certification. Peer keys are PEM files in trusted_kbs_keys_dir: trusting writes
 * <fingerprint>.pem there atomically, untrusting removes the file that holds the key, and
 * either reloads the issuance engine's trusted set at once (server_certify_reload_trusted).
 * The directory functions are shared with `vtpmca kbs-key` offline (server_admin.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_internal.h"
#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_admin.h"

#define PEM_SUFFIX ".pem"

/* ---- Keys and the trusted directory (server_admin.h) ---- */

vtpmca_err server_admin_kbs_key_json(const EVP_PKEY *key, json_t **out, vtpmca_diag *diag)
{
    if (key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs key: missing argument");
    *out = NULL;
    const char *alg = jws_es_alg(key);
    if (alg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "a KBS key is an EC P-256 or P-384 public key");
    uint8_t digest[KBS_KEY_FINGERPRINT_LEN];
    char fingerprint[SERVER_ADMIN_KBS_FINGERPRINT_HEX + 1];
    vtpmca_err err = kbs_key_fingerprint(key, digest, diag);
    if (err == VTPMCA_OK)
        err = vt_hex_encode(digest, sizeof(digest), fingerprint, sizeof(fingerprint));
    BIO *bio = err == VTPMCA_OK ? BIO_new(BIO_s_mem()) : NULL;
    if (err == VTPMCA_OK && (bio == NULL || PEM_write_bio_PUBKEY(bio, (EVP_PKEY *)key) != 1))
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "cannot write a public key as PEM");
    if (err == VTPMCA_OK) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        json_t *pem = json_stringn(data, len > 0 ? (size_t)len : 0);
        *out = pem != NULL ? json_pack("{s:s, s:s, s:o}", "fingerprint", fingerprint, "alg", alg,
                                       "pem", pem)
                           : NULL;
        if (*out == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    BIO_free(bio);
    return err;
}

/* A PEM public key (SubjectPublicKeyInfo) from text; never a private key. */
static vtpmca_err parse_public_pem(const char *text, size_t len, EVP_PKEY **out, vtpmca_diag *diag)
{
    BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(text, (int)len) : NULL;
    *out = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (*out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    return VTPMCA_OK;
}

/* Calls `each` with every *.pem file of the directory and its key's JSON form (NULL when
 * the file holds no KBS public key), until it returns false. */
typedef bool (*peer_fn)(void *ctx, const char *file, const json_t *key);

static vtpmca_err for_each_peer(const char *dir, peer_fn each, void *ctx, vtpmca_diag *diag)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? VTPMCA_OK /* nothing trusted yet */
                               : vtpmca_fail(diag, VTPMCA_ERR_IO, "%.200s cannot be read: %s", dir,
                                             strerror(errno));
    struct dirent *entry;
    bool go_on = true;
    while (go_on && (entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len <= strlen(PEM_SUFFIX) || strcmp(entry->d_name + len - 4, PEM_SUFFIX) != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        uint8_t *text = NULL;
        size_t text_len = 0;
        EVP_PKEY *key = NULL;
        json_t *described = NULL;
        if (vt_file_read(path, KBS_KEY_FILE_MAX, &text, &text_len, NULL) == VTPMCA_OK &&
            parse_public_pem((const char *)text, text_len, &key, NULL) == VTPMCA_OK)
            server_admin_kbs_key_json(key, &described, NULL);
        free(text);
        EVP_PKEY_free(key);
        go_on = each(ctx, entry->d_name, described);
        json_decref(described);
    }
    closedir(d);
    return VTPMCA_OK;
}

typedef struct {
    json_t *list;
    bool failed; /* out of memory */
} list_ctx;

static bool list_one(void *ctx, const char *file, const json_t *key)
{
    list_ctx *lc = ctx;
    json_t *item = key != NULL ? json_deep_copy(key)
                               : json_pack("{s:s}", "error",
                                           "not an EC P-256 or P-384 PEM public key (vtpmcad "
                                           "refuses to start with it)");
    if (item == NULL || json_object_set_new(item, "file", json_string(file)) != 0 ||
        json_array_append_new(lc->list, item) != 0) {
        lc->failed = true;
        return false;
    }
    return true;
}

vtpmca_err server_admin_kbs_trusted_list(const char *dir, json_t **out, vtpmca_diag *diag)
{
    if (dir == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs keys: missing argument");
    *out = NULL;
    list_ctx lc = {json_array(), false};
    vtpmca_err err = lc.list != NULL ? for_each_peer(dir, list_one, &lc, diag) : VTPMCA_OK;
    if (err == VTPMCA_OK && (lc.list == NULL || lc.failed))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && (*out = json_pack("{s:s, s:o}", "dir", dir, "keys", lc.list)) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err != VTPMCA_OK)
        json_decref(lc.list);
    return err;
}

typedef struct {
    const char *fingerprint;
    char file[300]; /* the file holding that key, "" = none */
    size_t peers;
} find_ctx;

static bool find_one(void *ctx, const char *file, const json_t *key)
{
    find_ctx *fc = ctx;
    fc->peers++;
    const char *fingerprint = json_string_value(json_object_get(key, "fingerprint"));
    if (fingerprint != NULL && strcmp(fingerprint, fc->fingerprint) == 0)
        snprintf(fc->file, sizeof(fc->file), "%s", file);
    return true;
}

vtpmca_err server_admin_kbs_trust(const char *dir, const char *own_fingerprint, const char *pem,
                                  size_t pem_len, json_t **out, vtpmca_diag *diag)
{
    if (dir == NULL || dir[0] == '\0' || pem == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs keys: missing argument");
    *out = NULL;
    EVP_PKEY *key = NULL;
    json_t *described = NULL;
    vtpmca_err err = parse_public_pem(pem, pem_len, &key, diag);
    if (err == VTPMCA_OK)
        err = server_admin_kbs_key_json(key, &described, diag);
    EVP_PKEY_free(key);
    if (err != VTPMCA_OK)
        return err;
    const char *fingerprint = json_string_value(json_object_get(described, "fingerprint"));
    const char *canonical = json_string_value(json_object_get(described, "pem"));
    find_ctx fc = {fingerprint, "", 0};
    if (own_fingerprint != NULL && strcmp(fingerprint, own_fingerprint) == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                          "this is the service's own KBS key, which is always trusted");
    if (err == VTPMCA_OK)
        err = vt_mkdir_p(dir, 0755, diag);
    if (err == VTPMCA_OK)
        err = for_each_peer(dir, find_one, &fc, diag);
    if (err == VTPMCA_OK && fc.file[0] == '\0' && fc.peers >= SERVER_ADMIN_KBS_PEERS_MAX)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                        "%zu peer KBS keys are trusted already, the most vtpmcad loads", fc.peers);
    if (err == VTPMCA_OK && fc.file[0] == '\0') {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s%s", dir, fingerprint, PEM_SUFFIX);
        err = vt_file_write_atomic(path, canonical, strlen(canonical), 0644, diag);
    }
    if (err == VTPMCA_OK &&
        json_object_set_new(described, "already_trusted", json_boolean(fc.file[0] != '\0')) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err != VTPMCA_OK) {
        json_decref(described);
        return err;
    }
    *out = described;
    return VTPMCA_OK;
}

vtpmca_err server_admin_kbs_untrust(const char *dir, const char *fingerprint, json_t **out,
                                    vtpmca_diag *diag)
{
    if (dir == NULL || fingerprint == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs keys: missing argument");
    *out = NULL;
    char wanted[SERVER_ADMIN_KBS_FINGERPRINT_HEX + 1];
    size_t len = strlen(fingerprint);
    bool hex = len == SERVER_ADMIN_KBS_FINGERPRINT_HEX;
    for (size_t i = 0; hex && i < len; i++) {
        char c = fingerprint[i];
        hex = strchr("0123456789abcdefABCDEF", c) != NULL;
        wanted[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    if (!hex)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "a KBS key fingerprint is %d hex digits (SHA-256 of its DER "
                           "SubjectPublicKeyInfo)",
                           SERVER_ADMIN_KBS_FINGERPRINT_HEX);
    wanted[len] = '\0';
    find_ctx fc = {wanted, "", 0};
    vtpmca_err err = for_each_peer(dir, find_one, &fc, diag);
    if (err == VTPMCA_OK && fc.file[0] == '\0')
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "no trusted peer KBS key has fingerprint %s",
                          wanted);
    if (err != VTPMCA_OK)
        return err;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, fc.file);
    if (unlink(path) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot remove %s: %s", fc.file, strerror(errno));
    /* Durable like the atomic writes: the directory entry is what changed. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    *out = json_pack("{s:s, s:b}", "fingerprint", wanted, "removed", true);
    return *out != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

/* ---- Handlers ---- */

/* Answers with a JSON value made by a call above (taken over), or its error. */
static void respond(vtpmca_err err, json_t *out, unsigned status, const vtpmca_diag *diag,
                    const char *not_found_code, server_response *response)
{
    if (err == VTPMCA_OK)
        server_response_json(response, status, out);
    else if (err == VTPMCA_ERR_UNSUPPORTED || err == VTPMCA_ERR_PARSE)
        server_response_error(response, 400, "invalid_key", "%s", diag->msg);
    else
        admin_respond_error(response, err, diag, not_found_code);
}

/* 409 unless trusted_kbs_keys_dir is configured. */
static const char *trusted_dir(admin_call *call, server_response *response)
{
    const char *dir = call->app->fleet_admin->trusted_kbs_dir;
    if (dir[0] != '\0')
        return dir;
    server_response_error(response, 409, "not_configured",
                          "no trusted_kbs_keys_dir is configured: set it in vtpmcad's "
                          "configuration to trust peer KBS keys");
    return NULL;
}

static void handle_kbs_key(admin_call *call, server_response *response)
{
    json_t *out = json_deep_copy(call->app->fleet_admin->kbs_key);
    if (out == NULL)
        server_response_error(response, 500, "internal", "out of memory");
    else
        server_response_json(response, 200, out);
}

static void handle_trusted_list(admin_call *call, server_response *response)
{
    const char *dir = call->app->fleet_admin->trusted_kbs_dir;
    json_t *out = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = VTPMCA_OK;
    if (dir[0] != '\0')
        err = server_admin_kbs_trusted_list(dir, &out, &diag);
    else if ((out = json_pack("{s:n, s:[]}", "dir", "keys")) == NULL)
        err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
    respond(err, out, 200, &diag, "not_found", response);
}

static void handle_trusted_add(admin_call *call, server_response *response)
{
    const char *dir = trusted_dir(call, response);
    if (dir == NULL)
        return;
    json_t *body = admin_parse_object_body(call->request, "pem", response);
    if (body == NULL)
        return;
    json_t *pem = json_object_get(body, "pem");
    json_t *out = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err =
        json_is_string(pem)
            ? server_admin_kbs_trust(dir, call->app->fleet_admin->kbs_fingerprint,
                                     json_string_value(pem), json_string_length(pem), &out, &diag)
            : vtpmca_fail(&diag, VTPMCA_ERR_PARSE, "'pem' must be a string");
    json_decref(body);
    if (err == VTPMCA_OK)
        err = server_certify_reload_trusted(call->app, &diag);
    bool already = json_is_true(json_object_get(out, "already_trusted"));
    if (err == VTPMCA_OK)
        snprintf(call->audit_detail, sizeof(call->audit_detail), "KBS key %.64s%s",
                 json_string_value(json_object_get(out, "fingerprint")),
                 already ? " (trusted already)" : "");
    respond(err, out, already ? 200 : 201, &diag, "not_found", response);
}

static void handle_trusted_remove(admin_call *call, server_response *response)
{
    const char *dir = trusted_dir(call, response);
    if (dir == NULL)
        return;
    json_t *out = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = server_admin_kbs_untrust(dir, call->params[0], &out, &diag);
    if (err == VTPMCA_OK)
        err = server_certify_reload_trusted(call->app, &diag);
    if (err == VTPMCA_OK)
        snprintf(call->audit_detail, sizeof(call->audit_detail), "KBS key %.64s",
                 json_string_value(json_object_get(out, "fingerprint")));
    respond(err, out, 200, &diag, "unknown_kbs_key", response);
}

static const admin_route kbs_routes[] = {
    {"GET", "/v1/admin/kbs-key", false, "admin.kbs_key_show", NULL, handle_kbs_key},
    {"GET", "/v1/admin/kbs-keys/trusted", false, "admin.kbs_key_list", NULL, handle_trusted_list},
    {"POST", "/v1/admin/kbs-keys/trusted", true, "admin.kbs_key_trust", NULL, handle_trusted_add},
    {"DELETE", "/v1/admin/kbs-keys/trusted/{}", true, "admin.kbs_key_untrust", NULL,
     handle_trusted_remove},
};

const admin_route_table admin_kbs_route_table = {kbs_routes,
                                                 sizeof(kbs_routes) / sizeof(kbs_routes[0])};
