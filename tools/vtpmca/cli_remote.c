/* The CLI's remote mode: admin API calls with libcurl, one fresh signed token per request. */
#include "cli_remote.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "vtpmca/encoding.h"
#include "vtpmca/server_admin.h"

#define CLI_REMOTE_MAX_ANSWER (64u << 20)
#define CLI_REMOTE_TIMEOUT_MS 60000L
#define CLI_REMOTE_CONNECT_TIMEOUT_MS 10000L
#define CLI_REMOTE_SEGMENT_MAX 256

struct cli_remote {
    char *base; /* scheme://host[:port], no trailing slash */
    char name[ADMIN_NAME_MAX + 1];
    EVP_PKEY *key;
    char *cacert;
    CURL *curl; /* one handle, so the requests of a command share a connection */
};

/* ---- Configuration ---- */

static const char *flag_or_env(const cli_opts *opts, cli_opt_id id, const char *env)
{
    if (opts->value[id] != NULL)
        return opts->value[id];
    const char *value = getenv(env);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

vtpmca_err cli_remote_config_from_opts(const cli_opts *opts, bool *remote, cli_remote_config *cfg,
                                       vtpmca_diag *diag)
{
    if (opts == NULL || remote == NULL || cfg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "remote: missing argument");
    memset(cfg, 0, sizeof(*cfg));
    *remote = false;
    const char *db = opts->value[CLI_OPT_DB];
    const char *server = opts->value[CLI_OPT_SERVER];
    if (db != NULL && server != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--db and --server exclude each other");
    if (db != NULL) {
        /* An explicit --db is offline use; the environment's server settings do not apply. */
        if (opts->value[CLI_OPT_ADMIN_KEY] != NULL || opts->value[CLI_OPT_ADMIN_NAME] != NULL ||
            opts->value[CLI_OPT_CACERT] != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "--admin-key, --admin-name and --cacert go with --server, not --db");
        return VTPMCA_OK;
    }
    server = flag_or_env(opts, CLI_OPT_SERVER, "VTPMCA_SERVER");
    if (server == NULL)
        return VTPMCA_OK;
    cfg->server = server;
    cfg->key_path = flag_or_env(opts, CLI_OPT_ADMIN_KEY, "VTPMCA_ADMIN_KEY");
    cfg->name = flag_or_env(opts, CLI_OPT_ADMIN_NAME, "VTPMCA_ADMIN_NAME");
    cfg->cacert = flag_or_env(opts, CLI_OPT_CACERT, "VTPMCA_CACERT");
    if (cfg->key_path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "talking to %s needs --admin-key FILE (or VTPMCA_ADMIN_KEY)", server);
    *remote = true;
    return VTPMCA_OK;
}

/* "KEY.pem" -> "KEY": `vtpmca admin keygen --out NAME.pem` names the key after its admin. */
static vtpmca_err name_from_key_path(const char *path, char *name, size_t size, vtpmca_diag *diag)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".pem") == 0)
        len -= 4;
    if (len >= size)
        len = size - 1;
    memcpy(name, base, len);
    name[len] = '\0';
    if (!admin_name_valid(name))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "cannot take an admin name from the key file name %s; pass "
                           "--admin-name NAME",
                           path);
    return VTPMCA_OK;
}

static bool is_loopback_host(const char *host)
{
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0;
}

/* Accepts http(s)://host[:port][/], refusing plain HTTP beyond loopback. */
static vtpmca_err check_server_url(const char *server, char **base, vtpmca_diag *diag)
{
    CURLU *url = curl_url();
    char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *port = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (url == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (curl_url_set(url, CURLUPART_URL, server, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "--server '%.100s' is not a URL such as https://host:8377", server);
        goto out;
    }
    curl_url_get(url, CURLUPART_PATH, &path, 0);
    curl_url_get(url, CURLUPART_QUERY, &query, 0);
    curl_url_get(url, CURLUPART_PORT, &port, 0);
    bool https = strcmp(scheme, "https") == 0;
    if (!https && strcmp(scheme, "http") != 0) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--server must be an https:// URL");
        goto out;
    }
    if ((path != NULL && strcmp(path, "/") != 0) || query != NULL) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "--server is the daemon's base URL, without a path or query");
        goto out;
    }
    if (!https && !is_loopback_host(host)) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "refusing plain http:// to %.100s: admin tokens may cross a network "
                          "only over https://",
                          host);
        goto out;
    }
    size_t size = strlen(scheme) + 3 + strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    *base = malloc(size);
    if (*base == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    else
        snprintf(*base, size, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_free(query);
    curl_free(port);
    curl_url_cleanup(url);
    return err;
}

vtpmca_err cli_remote_open(const cli_remote_config *cfg, cli_remote **out, vtpmca_diag *diag)
{
    if (cfg == NULL || cfg->server == NULL || cfg->key_path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "remote: missing argument");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot initialise libcurl");
    cli_remote *remote = calloc(1, sizeof(*remote));
    if (remote == NULL) {
        curl_global_cleanup();
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    vtpmca_err err = check_server_url(cfg->server, &remote->base, diag);
    if (err == VTPMCA_OK && cfg->name != NULL) {
        if (!admin_name_valid(cfg->name))
            err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                              "--admin-name '%.64s' must be 1 to %d characters of [A-Za-z0-9._-]",
                              cfg->name, ADMIN_NAME_MAX);
        else
            snprintf(remote->name, sizeof(remote->name), "%s", cfg->name);
    } else if (err == VTPMCA_OK) {
        err = name_from_key_path(cfg->key_path, remote->name, sizeof(remote->name), diag);
    }
    if (err == VTPMCA_OK)
        err = admin_key_load_private(cfg->key_path, &remote->key, diag);
    if (err == VTPMCA_OK && cfg->cacert != NULL && (remote->cacert = strdup(cfg->cacert)) == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && (remote->curl = curl_easy_init()) == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot create a libcurl handle");
    if (err != VTPMCA_OK) {
        cli_remote_close(remote);
        return err;
    }
    *out = remote;
    return VTPMCA_OK;
}

void cli_remote_close(cli_remote *remote)
{
    if (remote == NULL)
        return;
    if (remote->curl != NULL)
        curl_easy_cleanup(remote->curl);
    EVP_PKEY_free(remote->key);
    free(remote->cacert);
    free(remote->base);
    free(remote);
    curl_global_cleanup();
}

const char *cli_remote_admin_name(const cli_remote *remote)
{
    return remote != NULL ? remote->name : NULL;
}

vtpmca_err cli_remote_check_segment(const char *what, const char *segment, vtpmca_diag *diag)
{
    if (what == NULL || segment == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "remote: missing argument");
    size_t len = strlen(segment);
    bool ok = len > 0 && len <= CLI_REMOTE_SEGMENT_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = segment[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             strchr("._~:-", c) != NULL;
    }
    if (!ok)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "%s '%.64s' must be 1 to %d characters of [A-Za-z0-9._~:-]", what,
                           segment, CLI_REMOTE_SEGMENT_MAX);
    return VTPMCA_OK;
}

/* ---- Calls ---- */

typedef struct {
    char *data;
    size_t len;
    bool too_large;
} answer_buffer;

static size_t on_answer(char *data, size_t size, size_t n, void *user)
{
    answer_buffer *buf = user;
    size_t chunk = size * n;
    if (chunk > CLI_REMOTE_MAX_ANSWER - buf->len) {
        buf->too_large = true;
        return 0; /* aborts the transfer */
    }
    char *bigger = realloc(buf->data, buf->len + chunk + 1);
    if (bigger == NULL)
        return 0;
    memcpy(bigger + buf->len, data, chunk);
    buf->data = bigger;
    buf->len += chunk;
    buf->data[buf->len] = '\0';
    return chunk;
}

static vtpmca_err error_for_status(long status)
{
    switch (status) {
    case 400:
        return VTPMCA_ERR_PARSE;
    case 401:
    case 422:
        return VTPMCA_ERR_CRYPTO;
    case 403:
        return VTPMCA_ERR_POLICY;
    case 404:
        return VTPMCA_ERR_NOT_FOUND;
    case 409:
        return VTPMCA_ERR_CONFLICT;
    case 413:
        return VTPMCA_ERR_LIMIT;
    case 429:
    case 502:
    case 503:
    case 504:
        return VTPMCA_ERR_NETWORK;
    default:
        return VTPMCA_ERR_INTERNAL;
    }
}

/* Performs one request (body: NULL for none, else body_len bytes of content_type); *status
 * and the answer's bytes on success. */
static vtpmca_err perform(cli_remote *remote, const char *method, const char *url,
                          const char *token, const char *content_type, const char *body,
                          size_t body_len, long *status, answer_buffer *answer, vtpmca_diag *diag)
{
    char type_header[96];
    snprintf(type_header, sizeof(type_header), "Content-Type: %s", content_type);
    CURL *curl = remote->curl;
    char auth[ADMIN_TOKEN_MAX_LEN + 32];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    OPENSSL_cleanse(auth, sizeof(auth));
    struct curl_slist *more =
        headers ? curl_slist_append(headers, "Accept: application/json") : NULL;
    if (more != NULL && body != NULL)
        more = curl_slist_append(more, type_header);
    if (more == NULL) {
        curl_slist_free_all(headers);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    headers = more;
    char error_text[CURL_ERROR_SIZE] = "";
    curl_easy_reset(curl); /* keeps the connection cache */
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, CLI_REMOTE_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CLI_REMOTE_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (remote->cacert != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, remote->cacert);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body != NULL ? body_len : 0));
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers); /* held the token */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    if (answer->too_large)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "the answer of %s is larger than %u bytes", url,
                           CLI_REMOTE_MAX_ANSWER);
    if (rc != CURLE_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "cannot talk to %s: %s", remote->base,
                           error_text[0] ? error_text : curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    return VTPMCA_OK;
}

vtpmca_err cli_remote_call(cli_remote *remote, const char *method, const char *path,
                           admin_role role, const char *body, json_t **answer, vtpmca_diag *diag)
{
    json_t *any = NULL;
    vtpmca_err err = cli_remote_request(remote, method, path, role, "application/json", body,
                                        body != NULL ? strlen(body) : 0, NULL,
                                        answer != NULL ? &any : NULL, diag);
    if (answer != NULL)
        *answer = err == VTPMCA_OK ? any : NULL;
    if (err != VTPMCA_OK)
        json_decref(any);
    return err;
}

vtpmca_err cli_remote_request(cli_remote *remote, const char *method, const char *path,
                              admin_role role, const char *content_type, const char *body,
                              size_t body_len, long *status_out, json_t **answer, vtpmca_diag *diag)
{
    if (answer != NULL)
        *answer = NULL;
    if (status_out != NULL)
        *status_out = 0;
    if (remote == NULL || method == NULL || path == NULL || path[0] != '/' ||
        (body != NULL && content_type == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "remote: bad arguments");
    size_t url_size = strlen(remote->base) + strlen(path) + 1;
    char *url = malloc(url_size);
    if (url == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    snprintf(url, url_size, "%s%s", remote->base, path);
    char *token = NULL;
    vtpmca_err err = admin_token_sign(remote->key, remote->name, role, time(NULL),
                                      CLI_REMOTE_TOKEN_LIFETIME_S, &token, diag);
    long status = 0;
    answer_buffer buf = {0};
    if (err == VTPMCA_OK)
        err =
            perform(remote, method, url, token, content_type, body, body_len, &status, &buf, diag);
    if (status_out != NULL)
        *status_out = status;
    free(token);
    json_t *json = NULL;
    if (err == VTPMCA_OK && buf.len > 0) {
        json_error_t jerr;
        json = json_loadb(buf.data, buf.len, 0, &jerr);
    }
    if (err == VTPMCA_OK && (status < 200 || status > 299)) {
        const char *message = json_string_value(json_object_get(json, "message"));
        err = error_for_status(status);
        if (status == 401)
            vtpmca_fail(diag, err, "%s refused the credentials of '%s': %s", remote->base,
                        remote->name, message != NULL ? message : "unauthorized");
        else if (status == 403)
            vtpmca_fail(diag, err, "forbidden: %s", message != NULL ? message : "no permission");
        else
            vtpmca_fail(diag, err, "%s", message != NULL ? message : "request failed");
        if (message == NULL) /* not our daemon's JSON error: say what came back */
            vtpmca_fail(diag, err, "%s %s: HTTP %ld", method, url, status);
    } else if (err == VTPMCA_OK && answer != NULL && json == NULL) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s %s: the answer is not JSON", method, url);
    }
    /* The daemon's JSON answer, an error's details included. */
    if (answer != NULL && json != NULL && status != 0)
        *answer = json_incref(json);
    json_decref(json);
    free(buf.data);
    free(url);
    return err;
}

/* ---- The admin operations over the API ---- */

/* "/v1/admin/fleets/<fleet><suffix>" after checking the name can be a path segment. */
static vtpmca_err fleet_path(const char *fleet, const char *suffix, char *buf, size_t size,
                             vtpmca_diag *diag)
{
    vtpmca_err err = cli_remote_check_segment("fleet name", fleet, diag);
    if (err != VTPMCA_OK)
        return err;
    snprintf(buf, size, SERVER_ADMIN_PREFIX "fleets/%s%s", fleet, suffix);
    return VTPMCA_OK;
}

/* Copies a JSON string member into a fixed buffer; false when missing or too long. */
static bool copy_member(const json_t *object, const char *key, char *buf, size_t size)
{
    const char *value = json_string_value(json_object_get(object, key));
    if (value == NULL || strlen(value) >= size)
        return false;
    memcpy(buf, value, strlen(value) + 1);
    return true;
}

static bool read_time_member(const json_t *object, const char *key, int64_t *out)
{
    time_t t = 0;
    const char *text = json_string_value(json_object_get(object, key));
    if (text == NULL || cli_parse_rfc3339(text, &t) != VTPMCA_OK)
        return false;
    *out = (int64_t)t;
    return true;
}

static vtpmca_err bad_answer(vtpmca_diag *diag, const char *what)
{
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the daemon's answer has no valid %s", what);
}

static vtpmca_err remote_fleet_create(void *ctx, const char *name, const char *description,
                                      vtpmca_diag *diag)
{
    json_t *body = json_pack("{s:s, s:s}", "name", name, "description",
                             description != NULL ? description : "");
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "fleet name and description must be UTF-8");
    vtpmca_err err = cli_remote_call(ctx, "POST", SERVER_ADMIN_PREFIX "fleets", ADMIN_ROLE_ADMIN,
                                     text, NULL, diag);
    free(text);
    return err;
}

static vtpmca_err remote_fleet_exists(void *ctx, const char *name, vtpmca_diag *diag)
{
    char path[512];
    vtpmca_err err = fleet_path(name, "", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, NULL, diag);
    return err;
}

static vtpmca_err remote_fleet_list(void *ctx, store_fleet **out, size_t *n, vtpmca_diag *diag)
{
    json_t *answer = NULL;
    vtpmca_err err = cli_remote_call(ctx, "GET", SERVER_ADMIN_PREFIX "fleets", ADMIN_ROLE_AUDITOR,
                                     NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    const json_t *list = json_object_get(answer, "fleets");
    size_t count = json_array_size(list);
    store_fleet *fleets = count > 0 ? calloc(count, sizeof(*fleets)) : NULL;
    if (!json_is_array(list) || (count > 0 && fleets == NULL))
        err = bad_answer(diag, "fleets");
    for (size_t i = 0; err == VTPMCA_OK && i < count; i++) {
        const json_t *item = json_array_get(list, i);
        const json_t *latest_json = json_object_get(item, "latest_policy");
        json_int_t latest = json_integer_value(latest_json);
        if (!json_is_integer(latest_json) ||
            !copy_member(item, "name", fleets[i].name, sizeof(fleets[i].name)) ||
            !copy_member(item, "description", fleets[i].description,
                         sizeof(fleets[i].description)) ||
            !read_time_member(item, "created_at", &fleets[i].created_at) || latest < 0 ||
            latest > UINT32_MAX)
            err = bad_answer(diag, "fleet");
        else
            fleets[i].latest_policy = (uint32_t)latest;
    }
    json_decref(answer);
    if (err != VTPMCA_OK) {
        free(fleets);
        return err;
    }
    *out = fleets;
    *n = count;
    return VTPMCA_OK;
}

static vtpmca_err remote_policy_put(void *ctx, const char *fleet, const char *policy_json,
                                    const char *author, uint32_t *version_out, vtpmca_diag *diag)
{
    (void)author; /* the daemon records the authenticated admin instead */
    char path[512];
    json_t *answer = NULL;
    vtpmca_err err = fleet_path(fleet, "/policy", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, "POST", path, ADMIN_ROLE_ADMIN, policy_json, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    json_int_t version = json_integer_value(json_object_get(answer, "version"));
    json_decref(answer);
    if (version < 1 || version > UINT32_MAX)
        return bad_answer(diag, "version");
    if (version_out != NULL)
        *version_out = (uint32_t)version;
    return VTPMCA_OK;
}

static vtpmca_err remote_policy_get(void *ctx, const char *fleet, uint32_t version,
                                    char **policy_json, uint32_t *version_out, vtpmca_diag *diag)
{
    char suffix[40], path[512];
    if (version != 0)
        snprintf(suffix, sizeof(suffix), "/policy?version=%u", (unsigned)version);
    else
        snprintf(suffix, sizeof(suffix), "/policy");
    json_t *answer = NULL;
    vtpmca_err err = fleet_path(fleet, suffix, path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    json_int_t found = json_integer_value(json_object_get(answer, "version"));
    const json_t *policy = json_object_get(answer, "policy");
    char *text = json_is_object(policy) ? json_dumps(policy, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (text == NULL || found < 1 || found > UINT32_MAX) {
        free(text);
        return bad_answer(diag, "policy");
    }
    *policy_json = text;
    if (version_out != NULL)
        *version_out = (uint32_t)found;
    return VTPMCA_OK;
}

static vtpmca_err remote_policy_history(void *ctx, const char *fleet, store_policy_version **out,
                                        size_t *n, vtpmca_diag *diag)
{
    char path[512];
    json_t *answer = NULL;
    vtpmca_err err = fleet_path(fleet, "/policy/history", path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    const json_t *list = json_object_get(answer, "versions");
    size_t count = json_array_size(list);
    store_policy_version *versions = count > 0 ? calloc(count, sizeof(*versions)) : NULL;
    if (!json_is_array(list) || (count > 0 && versions == NULL))
        err = bad_answer(diag, "versions");
    for (size_t i = 0; err == VTPMCA_OK && i < count; i++) {
        const json_t *item = json_array_get(list, i);
        json_int_t version = json_integer_value(json_object_get(item, "version"));
        if (version < 1 || version > UINT32_MAX ||
            !copy_member(item, "author", versions[i].author, sizeof(versions[i].author)) ||
            !read_time_member(item, "created_at", &versions[i].created_at))
            err = bad_answer(diag, "policy version");
        else
            versions[i].version = (uint32_t)version;
    }
    json_decref(answer);
    if (err != VTPMCA_OK) {
        free(versions);
        return err;
    }
    *out = versions;
    *n = count;
    return VTPMCA_OK;
}

static vtpmca_err remote_vcek_put(void *ctx, const char *product, const char *signer,
                                  const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                                  size_t der_len, const char *source, vtpmca_diag *diag)
{
    /* The daemon parses the certificate, checks its chain against its own roots and derives
     * the store key itself; it is sent nothing else. */
    (void)product, (void)signer, (void)chip_id, (void)tcb, (void)source;
    char *b64 = NULL;
    if (vt_b64_encode_alloc(der, der_len, VT_B64_STD, &b64) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    json_t *body = json_pack("{s:s}", "vcek", b64);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    free(b64);
    if (text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = cli_remote_call(ctx, "POST", SERVER_ADMIN_PREFIX "vceks", ADMIN_ROLE_ADMIN,
                                     text, NULL, diag);
    free(text);
    return err;
}

static void remote_close(void *ctx)
{
    cli_remote_close(ctx);
}

const cli_admin_ops cli_remote_admin_ops = {
    .fleet_create = remote_fleet_create,
    .fleet_exists = remote_fleet_exists,
    .fleet_list = remote_fleet_list,
    .policy_put = remote_policy_put,
    .policy_get = remote_policy_get,
    .policy_history = remote_policy_history,
    .vcek_put = remote_vcek_put,
    .close = remote_close,
};
