/* KBS protocol 0.4.0 client (the SVSM host proxy's side), over libcurl. */
#include "vtpmca/kbs_client.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"
#include "vtpmca/store.h"

#define REPORT_MAX 8192
#define WRAPPED_KEY_MAX 4096
#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define URL_MAX 2048

struct kbs_client {
    CURL *curl;
    char *base_url;
    long timeout_ms;
    long last_status;
    char *nonce_b64;
    uint8_t *nonce;
    size_t nonce_len;
};

vtpmca_err kbs_flavour_parse(const char *text, report_data_flavour *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcmp(text, "svsm") == 0)
        *out = REPORT_DATA_FLAVOUR_SVSM;
    else if (strcmp(text, "trustee") == 0)
        *out = REPORT_DATA_FLAVOUR_TRUSTEE;
    else
        return VTPMCA_ERR_PARSE;
    return VTPMCA_OK;
}

/* ---- request bodies ---- */

vtpmca_err kbs_auth_request(json_t **out, vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "auth request: missing argument");
    *out = json_pack("{s:s, s:s, s:s}", "version", KBS_PROTOCOL_VERSION, "tee", "snp",
                     "extra-params", "");
    return *out != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

vtpmca_err kbs_tee_pubkey_jwk(const EVP_PKEY *tee_key, json_t **out, vtpmca_diag *diag)
{
    if (tee_key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "tee-pubkey: missing argument");
    *out = NULL;
    json_t *jwk = NULL;
    vtpmca_err err = jwe_pubkey_to_jwk(tee_key, JWE_JWK_RFC7517, &jwk, diag);
    if (err != VTPMCA_OK)
        return err;
    /* The member order aproxy sends; jansson keeps insertion order. */
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    json_t *ordered = NULL;
    if (kty != NULL && strcmp(kty, "EC") == 0)
        ordered = json_pack("{s:s, s:O, s:s, s:O, s:O}", "kty", "EC", "crv",
                            json_object_get(jwk, "crv"), "alg", "ECDH-ES+A256KW", "x",
                            json_object_get(jwk, "x"), "y", json_object_get(jwk, "y"));
    else if (kty != NULL && strcmp(kty, "RSA") == 0)
        ordered = json_pack("{s:s, s:s, s:O, s:O}", "kty", "RSA", "alg", "RSA-OAEP-256", "n",
                            json_object_get(jwk, "n"), "e", json_object_get(jwk, "e"));
    json_decref(jwk);
    if (ordered == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "tee-pubkey must be an EC P-256/P-384/P-521 or RSA key");
    *out = ordered;
    return VTPMCA_OK;
}

/* The SVSM flavour from the request's view: the key and the raw nonce decoded from what is
 * sent, then the server's own computation. */
static vtpmca_err svsm_report_data(const char *nonce_b64, const json_t *jwk,
                                   uint8_t out[REPORT_DATA_SIZE], vtpmca_diag *diag)
{
    EVP_PKEY *key = NULL;
    uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    vtpmca_err err = jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &key, diag);
    if (err == VTPMCA_OK && jwe_ec_curve_name(key) == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                          "the svsm flavour binds an EC tee-pubkey (X || Y), not RSA");
    if (err == VTPMCA_OK && vt_b64_decode_alloc(nonce_b64, strlen(nonce_b64), VT_B64_STD, &nonce,
                                                &nonce_len) != VTPMCA_OK)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the nonce is not standard base64");
    if (err == VTPMCA_OK)
        err = report_data_svsm(key, nonce, nonce_len, out, diag);
    EVP_PKEY_free(key);
    free(nonce);
    return err;
}

vtpmca_err kbs_report_data(report_data_flavour flavour, const char *nonce_b64,
                           const json_t *tee_pubkey_jwk, uint8_t out[REPORT_DATA_SIZE],
                           vtpmca_diag *diag)
{
    if (nonce_b64 == NULL || !json_is_object(tee_pubkey_jwk) || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: missing argument");
    if (flavour == REPORT_DATA_FLAVOUR_SVSM)
        return svsm_report_data(nonce_b64, tee_pubkey_jwk, out, diag);
    if (flavour == REPORT_DATA_FLAVOUR_TRUSTEE)
        return report_data_trustee(tee_pubkey_jwk, nonce_b64, "", out, diag);
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report data: unknown flavour");
}

vtpmca_err kbs_attest_request(const char *nonce_b64, const json_t *tee_pubkey_jwk,
                              const uint8_t *report, size_t report_len, json_t **out,
                              vtpmca_diag *diag)
{
    if (nonce_b64 == NULL || !json_is_object(tee_pubkey_jwk) || report == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "attest request: missing argument");
    if (report_len == 0 || report_len > REPORT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "attest request: the report must be 1..%d bytes", REPORT_MAX);
    char *report_b64 = NULL;
    vtpmca_err err = vt_b64_encode_alloc(report, report_len, VT_B64_STD, &report_b64);
    if (err != VTPMCA_OK)
        return err;
    *out = json_pack("{s:n, s:{s:s, s:O}, s:{s:{s:s, s:n}, s:s}}", "init-data", "runtime-data",
                     "nonce", nonce_b64, "tee-pubkey", tee_pubkey_jwk, "tee-evidence",
                     "primary_evidence", "snp-report", report_b64, "certs-buf",
                     "additional_evidence", "");
    free(report_b64);
    return *out != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

vtpmca_err kbs_resource_request(const uint8_t *wrapped_key, size_t len, json_t **out,
                                vtpmca_diag *diag)
{
    if (wrapped_key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "resource request: missing argument");
    if (len == 0 || len > WRAPPED_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "resource request: the wrapped key must be 1..%d bytes",
                           WRAPPED_KEY_MAX);
    char *text = NULL;
    vtpmca_err err = vt_b64_encode_alloc(wrapped_key, len, VT_B64_URL_NOPAD, &text);
    if (err != VTPMCA_OK)
        return err;
    *out = json_pack("{s:s}", "wrapped-key", text);
    free(text);
    return *out != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

/* ---- transport ---- */

vtpmca_err kbs_client_new(const char *base_url, long timeout_ms, kbs_client **out,
                          vtpmca_diag *diag)
{
    if (base_url == NULL || out == NULL || timeout_ms < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs client: missing argument");
    *out = NULL;
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "server URL must start with http:// or https://");
    size_t len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if (len + 64 > URL_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "server URL is too long");
    kbs_client *client = calloc(1, sizeof(*client));
    if (client == NULL)
        return VTPMCA_ERR_NOMEM;
    client->base_url = strndup(base_url, len);
    client->curl = curl_easy_init();
    client->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    /* An empty cookie file turns on libcurl's in-memory cookie store for this handle. */
    if (client->base_url == NULL || client->curl == NULL ||
        curl_easy_setopt(client->curl, CURLOPT_COOKIEFILE, "") != CURLE_OK) {
        kbs_client_free(client);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "cannot set up libcurl");
    }
    *out = client;
    return VTPMCA_OK;
}

void kbs_client_free(kbs_client *client)
{
    if (client == NULL)
        return;
    if (client->curl != NULL)
        curl_easy_cleanup(client->curl);
    free(client->base_url);
    free(client->nonce_b64);
    free(client->nonce);
    free(client);
}

long kbs_client_last_status(const kbs_client *client)
{
    return client != NULL ? client->last_status : 0;
}

const char *kbs_client_nonce_b64(const kbs_client *client)
{
    return client != NULL ? client->nonce_b64 : NULL;
}

vtpmca_err kbs_client_nonce(const kbs_client *client, const uint8_t **nonce, size_t *len)
{
    if (client == NULL || nonce == NULL || len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (client->nonce == NULL)
        return VTPMCA_ERR_NOT_FOUND;
    *nonce = client->nonce;
    *len = client->nonce_len;
    return VTPMCA_OK;
}

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} response_body;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    response_body *body = user;
    size_t chunk = size * n;
    if (body->len + chunk > KBS_CLIENT_RESPONSE_MAX) {
        body->too_big = true;
        return 0; /* makes libcurl abort the transfer */
    }
    char *bigger = realloc(body->data, body->len + chunk + 1);
    if (bigger == NULL)
        return 0;
    body->data = bigger;
    memcpy(body->data + body->len, data, chunk);
    body->len += chunk;
    body->data[body->len] = '\0';
    return chunk;
}

/* Copies a server-supplied string into out, keeping printable ASCII only (it ends up on a
 * terminal and in logs). */
static void printable_copy(const char *in, char *out, size_t out_size)
{
    size_t j = 0;
    for (size_t i = 0; in != NULL && in[i] != '\0' && j + 1 < out_size; i++)
        out[j++] = isprint((unsigned char)in[i]) ? in[i] : '?';
    out[j] = '\0';
}

static vtpmca_err status_error(long status, const response_body *body, const char *step,
                               vtpmca_diag *diag)
{
    vtpmca_err err = status == 401 || status == 403 ? VTPMCA_ERR_POLICY
                     : status == 404                ? VTPMCA_ERR_NOT_FOUND
                     : status == 413                ? VTPMCA_ERR_LIMIT
                     : status >= 500                ? VTPMCA_ERR_NETWORK
                                                    : VTPMCA_ERR_PARSE;
    json_t *doc = body->data != NULL ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    char error[48] = "", message[160] = "";
    printable_copy(json_string_value(json_object_get(doc, "error")), error, sizeof(error));
    printable_copy(json_string_value(json_object_get(doc, "message")), message, sizeof(message));
    json_decref(doc);
    if (error[0] == '\0' && message[0] == '\0')
        return vtpmca_fail(diag, err, "%s: HTTP %ld", step, status);
    return vtpmca_fail(diag, err, "%s: HTTP %ld %s: %s", step, status, error, message);
}

/* One request: POST with a JSON body, or GET when body is NULL. On 200 *reply is the parsed
 * JSON object. */
static vtpmca_err perform(kbs_client *client, const char *path, const json_t *body, json_t **reply,
                          const char *step, vtpmca_diag *diag)
{
    *reply = NULL;
    client->last_status = 0;
    char url[URL_MAX];
    int n = snprintf(url, sizeof(url), "%s%s", client->base_url, path);
    if (n < 0 || (size_t)n >= sizeof(url))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: URL too long", step);
    char *text = NULL;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
        return VTPMCA_ERR_NOMEM;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (body != NULL && headers != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    response_body response = {0};
    CURL *curl = client->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, client->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = headers != NULL ? curl_easy_perform(curl) : CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    free(text);
    vtpmca_err err = VTPMCA_OK;
    if (response.too_big)
        err = vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: the reply is larger than %d bytes", step,
                          KBS_CLIENT_RESPONSE_MAX);
    else if (rc != CURLE_OK)
        err = vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "%s: %s", step, curl_easy_strerror(rc));
    if (err == VTPMCA_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &client->last_status);
        if (client->last_status != 200)
            err = status_error(client->last_status, &response, step, diag);
    }
    if (err == VTPMCA_OK) {
        *reply = response.data != NULL
                     ? json_loadb(response.data, response.len, JSON_REJECT_DUPLICATES, NULL)
                     : NULL;
        if (!json_is_object(*reply)) {
            json_decref(*reply);
            *reply = NULL;
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: the reply is not a JSON object", step);
        }
    }
    free(response.data);
    return err;
}

/* Whether libcurl's cookie store holds the session cookie (Netscape format lines:
 * domain, tailmatch, path, secure, expiry, name, value, separated by tabs). */
static bool has_session_cookie(CURL *curl)
{
    struct curl_slist *cookies = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_COOKIELIST, &cookies) != CURLE_OK)
        return false;
    bool found = false;
    for (struct curl_slist *c = cookies; c != NULL && !found; c = c->next) {
        const char *field = c->data;
        for (int i = 0; i < 5 && field != NULL; i++) {
            field = strchr(field, '\t');
            if (field != NULL)
                field++;
        }
        size_t name_len = strlen(KBS_COOKIE_NAME);
        found = field != NULL && strncmp(field, KBS_COOKIE_NAME, name_len) == 0 &&
                field[name_len] == '\t' && field[name_len + 1] != '\0';
    }
    curl_slist_free_all(cookies);
    return found;
}

vtpmca_err kbs_client_auth(kbs_client *client, vtpmca_diag *diag)
{
    if (client == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "auth: missing argument");
    free(client->nonce_b64);
    free(client->nonce);
    client->nonce_b64 = NULL;
    client->nonce = NULL;
    client->nonce_len = 0;
    json_t *request = NULL, *reply = NULL;
    vtpmca_err err = kbs_auth_request(&request, diag);
    if (err == VTPMCA_OK)
        err = perform(client, "/kbs/v0/auth", request, &reply, "POST /kbs/v0/auth", diag);
    json_decref(request);
    if (err != VTPMCA_OK)
        return err;
    const char *nonce = json_string_value(json_object_get(reply, "nonce"));
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (nonce == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "POST /kbs/v0/auth: the reply has no \"nonce\" string");
    else if (json_object_get(reply, "extra-params") == NULL)
        err = vtpmca_fail(
            diag, VTPMCA_ERR_PARSE,
            "POST /kbs/v0/auth: the reply has no \"extra-params\" member (aproxy requires it)");
    else if (vt_b64_decode_alloc(nonce, strlen(nonce), VT_B64_STD, &raw, &raw_len) != VTPMCA_OK ||
             raw_len == 0 || raw_len > KBS_CLIENT_NONCE_MAX)
        err = vtpmca_fail(
            diag, VTPMCA_ERR_PARSE,
            "POST /kbs/v0/auth: the nonce must be 1..%d bytes of padded standard base64",
            KBS_CLIENT_NONCE_MAX);
    else if (!has_session_cookie(client->curl))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "POST /kbs/v0/auth: the reply set no %s cookie",
                          KBS_COOKIE_NAME);
    if (err == VTPMCA_OK && (client->nonce_b64 = strdup(nonce)) == NULL)
        err = VTPMCA_ERR_NOMEM;
    if (err == VTPMCA_OK) {
        client->nonce = raw;
        client->nonce_len = raw_len;
        raw = NULL;
    }
    free(raw);
    json_decref(reply);
    return err;
}

vtpmca_err kbs_client_attest(kbs_client *client, const json_t *attest_request, char **token,
                             vtpmca_diag *diag)
{
    if (client == NULL || !json_is_object(attest_request) || token == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "attest: missing argument");
    *token = NULL;
    json_t *reply = NULL;
    vtpmca_err err =
        perform(client, "/kbs/v0/attest", attest_request, &reply, "POST /kbs/v0/attest", diag);
    if (err != VTPMCA_OK)
        return err;
    const char *text = json_string_value(json_object_get(reply, "token"));
    if (text == NULL || text[0] == '\0')
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "POST /kbs/v0/attest: the reply has no \"token\" string");
    else if ((*token = strdup(text)) == NULL)
        err = VTPMCA_ERR_NOMEM;
    json_decref(reply);
    return err;
}

vtpmca_err kbs_client_resource(kbs_client *client, const char *path, const uint8_t *wrapped_key,
                               size_t wrapped_key_len, json_t **jwe, vtpmca_diag *diag)
{
    if (client == NULL || path == NULL || jwe == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "resource: missing argument");
    *jwe = NULL;
    vtpmca_err err = store_check_resource_path(path, diag);
    if (err != VTPMCA_OK)
        return err;
    char url_path[URL_MAX];
    snprintf(url_path, sizeof(url_path), "/kbs/v0/resource/%s", path);
    json_t *body = NULL;
    if (wrapped_key != NULL &&
        (err = kbs_resource_request(wrapped_key, wrapped_key_len, &body, diag)) != VTPMCA_OK)
        return err;
    err = perform(client, url_path, body, jwe,
                  body != NULL ? "POST /kbs/v0/resource" : "GET /kbs/v0/resource", diag);
    json_decref(body);
    return err;
}
