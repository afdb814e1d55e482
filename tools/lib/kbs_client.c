/* KBS protocol 0.4.0 client (the SVSM host proxy's side), over libcurl. */
#include "vtpmca/kbs_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "vtpmca/encoding.h"
#include "vtpmca/http_client.h"
#include "vtpmca/jwe.h"
#include "vtpmca/store.h"

#define REPORT_MAX 8192
#define WRAPPED_KEY_MAX 4096
#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define URL_MAX 2048

struct kbs_client {
    vt_http http;
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
    kbs_client *client = calloc(1, sizeof(*client));
    if (client == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err = vt_http_init(&client->http, base_url, URL_MAX, timeout_ms, DEFAULT_TIMEOUT_MS,
                                  CONNECT_TIMEOUT_MS, "kbs client", diag);
    if (err != VTPMCA_OK) {
        free(client);
        return err;
    }
    /* An empty cookie file turns on libcurl's in-memory cookie store for this handle. */
    if (curl_easy_setopt(client->http.curl, CURLOPT_COOKIEFILE, "") != CURLE_OK) {
        kbs_client_free(client);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kbs client: cannot set up libcurl");
    }
    *out = client;
    return VTPMCA_OK;
}

void kbs_client_free(kbs_client *client)
{
    if (client == NULL)
        return;
    vt_http_cleanup(&client->http);
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

static vtpmca_err status_error(long status, const uint8_t *body, size_t len, const char *step,
                               vtpmca_diag *diag)
{
    vtpmca_err err = status == 401 || status == 403 ? VTPMCA_ERR_POLICY
                     : status == 404                ? VTPMCA_ERR_NOT_FOUND
                     : status == 413                ? VTPMCA_ERR_LIMIT
                     : status >= 500                ? VTPMCA_ERR_NETWORK
                                                    : VTPMCA_ERR_PARSE;
    char error[48] = "", message[160] = "";
    vt_http_error_members(body, len, error, sizeof(error), message, sizeof(message));
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
    char *text = NULL;
    if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
        return VTPMCA_ERR_NOMEM;
    const char *headers[] = {"Accept: application/json",
                             body != NULL ? "Content-Type: application/json" : NULL, NULL};
    const vt_http_request request = {.path = path,
                                     .label = step,
                                     .headers = headers,
                                     .get = body == NULL,
                                     .body = text,
                                     .body_len = text != NULL ? strlen(text) : 0,
                                     .reply_max = KBS_CLIENT_RESPONSE_MAX,
                                     .too_big_err = VTPMCA_ERR_LIMIT};
    uint8_t *answer = NULL;
    size_t answer_len = 0;
    vtpmca_err err =
        vt_http_perform(&client->http, &request, &client->last_status, &answer, &answer_len, diag);
    free(text);
    if (err == VTPMCA_OK && client->last_status != 200)
        err = status_error(client->last_status, answer, answer_len, step, diag);
    if (err == VTPMCA_OK) {
        *reply = answer != NULL
                     ? json_loadb((const char *)answer, answer_len, JSON_REJECT_DUPLICATES, NULL)
                     : NULL;
        if (!json_is_object(*reply)) {
            json_decref(*reply);
            *reply = NULL;
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: the reply is not a JSON object", step);
        }
    }
    free(answer);
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
    else if (!has_session_cookie(client->http.curl))
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
