/* Rollback ledger protocol client (the SVSM's side), over libcurl. */
#include "vtpmca/ledger_client.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define URL_MAX 2048
#define RESPONSE_MAX 65536
#define REQUEST_NONCE_LEN 32

struct ledger_client {
    CURL *curl;
    char *base_url;
    char instance[STORE_INSTANCE_ID_MAX + 1];
    uint8_t key[LEDGER_KEY_LEN];
    ledger_format format;
    long timeout_ms;
    long last_status;
};

vtpmca_err ledger_client_new(const char *base_url, const char *instance,
                             const uint8_t *persistence_key, size_t persistence_key_len,
                             ledger_format format, long timeout_ms, ledger_client **out,
                             vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (base_url == NULL || out == NULL || timeout_ms < 0 ||
        (format != LEDGER_FORMAT_JSON && format != LEDGER_FORMAT_CBOR))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger client: bad argument");
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ledger client: the server URL must start with http:// or https://");
    size_t len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if (len + 64 > URL_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger client: server URL too long");
    ledger_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger client: out of memory");
    vtpmca_err err =
        ledger_key_derive(persistence_key, persistence_key_len, instance, c->key, diag);
    if (err != VTPMCA_OK) {
        ledger_client_free(c);
        return err;
    }
    snprintf(c->instance, sizeof(c->instance), "%s", instance);
    c->format = format;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    c->base_url = strndup(base_url, len);
    c->curl = curl_easy_init();
    if (c->base_url == NULL || c->curl == NULL) {
        ledger_client_free(c);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger client: cannot set up libcurl");
    }
    *out = c;
    return VTPMCA_OK;
}

void ledger_client_free(ledger_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->base_url);
    OPENSSL_clear_free(c, sizeof(*c));
}

long ledger_client_last_status(const ledger_client *c)
{
    return c != NULL ? c->last_status : 0;
}

/* ---- transport ---- */

typedef struct {
    uint8_t *data;
    size_t len;
    bool too_big;
} response_body;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    response_body *body = user;
    size_t chunk = size * n;
    if (body->len + chunk > RESPONSE_MAX) {
        body->too_big = true;
        return 0; /* makes libcurl abort the transfer */
    }
    uint8_t *bigger = realloc(body->data, body->len + chunk + 1);
    if (bigger == NULL)
        return 0;
    body->data = bigger;
    memcpy(body->data + body->len, data, chunk);
    body->len += chunk;
    body->data[body->len] = 0;
    return chunk;
}

typedef struct {
    long status;
    bool cbor; /* the answer's Content-Type is application/cbor */
    response_body body;
} exchange;

/* POSTs body to path; fills *x (its body is the caller's to free) or fails with NETWORK. */
static vtpmca_err post(ledger_client *c, const char *path, const uint8_t *body, size_t len,
                       exchange *x, vtpmca_diag *diag)
{
    memset(x, 0, sizeof(*x));
    c->last_status = 0;
    char url[URL_MAX];
    snprintf(url, sizeof(url), "%s%s", c->base_url, path);
    struct curl_slist *headers = curl_slist_append(
        NULL, c->format == LEDGER_FORMAT_CBOR ? "Content-Type: " LEDGER_CBOR_CONTENT_TYPE
                                              : "Content-Type: " LEDGER_JSON_CONTENT_TYPE);
    CURL *curl = c->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = headers != NULL ? curl_easy_perform(curl) : CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    if (x->body.too_big)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: the answer is larger than %d bytes", path,
                           RESPONSE_MAX);
    if (rc != CURLE_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "%s: %s", path, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &x->status);
    c->last_status = x->status;
    const char *type = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    x->cbor = type != NULL &&
              strncmp(type, LEDGER_CBOR_CONTENT_TYPE, strlen(LEDGER_CBOR_CONTENT_TYPE)) == 0;
    return VTPMCA_OK;
}

/* Copies a server string for a diag: printable ASCII only. */
static void printable_copy(const char *in, char *out, size_t out_size)
{
    size_t j = 0;
    for (size_t i = 0; in != NULL && in[i] != '\0' && j + 1 < out_size; i++)
        out[j++] = isprint((unsigned char)in[i]) ? in[i] : '?';
    out[j] = '\0';
}

/* The members of an error answer {"error","message"} (always JSON), printable. */
static void error_of(const exchange *x, char error[48], char message[200])
{
    json_t *doc = x->body.data != NULL && !x->cbor
                      ? json_loadb((const char *)x->body.data, x->body.len, 0, NULL)
                      : NULL;
    printable_copy(json_string_value(json_object_get(doc, "error")), error, 48);
    printable_copy(json_string_value(json_object_get(doc, "message")), message, 200);
    json_decref(doc);
}

/* A non-MACed error answer. */
static vtpmca_err unverified_error(const char *path, const exchange *x, vtpmca_diag *diag)
{
    char error[48], message[200];
    error_of(x, error, message);
    /* The router's own 404 for a path it does not know: this server has no ledger. */
    if (x->status == 404 && strcmp(error, "not_found") == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "%s: the server offers no ledger (%s)",
                           path, message);
    vtpmca_err err = x->status >= 500   ? VTPMCA_ERR_NETWORK
                     : x->status >= 400 ? VTPMCA_ERR_POLICY
                                        : VTPMCA_ERR_PARSE;
    return vtpmca_fail(diag, err, "%s: HTTP %ld %s: %s (not authenticated)", path, x->status,
                       error[0] != '\0' ? error : "error", message);
}

/* Sends a signed request; VTPMCA_OK when *answer is an answer of `answer_kind` whose MAC
 * verifies and whose nonce is the request's. */
static vtpmca_err exchange_signed(ledger_client *c, const char *path, ledger_msg_kind kind,
                                  ledger_msg *req, ledger_msg_kind answer_kind, ledger_msg *answer,
                                  vtpmca_diag *diag)
{
    snprintf(req->instance, sizeof(req->instance), "%s", c->instance);
    req->nonce_len = REQUEST_NONCE_LEN;
    if (RAND_bytes(req->nonce, REQUEST_NONCE_LEN) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ledger client: no random nonce");
    uint8_t *body = NULL;
    size_t len = 0;
    vtpmca_err err = ledger_msg_sign(kind, req, c->key, diag);
    if (err == VTPMCA_OK)
        err = ledger_msg_encode(kind, c->format, req, &body, &len, diag);
    exchange x;
    if (err == VTPMCA_OK)
        err = post(c, path, body, len, &x, diag);
    free(body);
    if (err != VTPMCA_OK) {
        free(x.body.data);
        return err;
    }
    /* Only MACed answers come in the request's format; errors are JSON. */
    bool maced = x.body.data != NULL && x.cbor == (c->format == LEDGER_FORMAT_CBOR) &&
                 (x.status == 200 || x.status == 404 || x.status == 409);
    vtpmca_diag inner = {{0}};
    if (maced && ledger_msg_decode(answer_kind, c->format, x.body.data, x.body.len, answer,
                                   &inner) != VTPMCA_OK)
        maced = false; /* e.g. a JSON 409 stale_nonce error to a JSON request */
    if (!maced) {
        err = unverified_error(path, &x, diag);
        free(x.body.data);
        return err;
    }
    free(x.body.data);
    /* Verified with the request's nonce and instance: an answer to another request fails. */
    snprintf(answer->instance, sizeof(answer->instance), "%s", c->instance);
    bool same_nonce = answer->nonce_len == req->nonce_len &&
                      CRYPTO_memcmp(answer->nonce, req->nonce, req->nonce_len) == 0;
    if (!same_nonce || ledger_msg_verify(answer_kind, answer, c->key, NULL) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "%s: HTTP %ld with an answer that does not verify under the ledger "
                           "key or binds another nonce: forged or replayed",
                           path, x.status);
    return VTPMCA_OK;
}

vtpmca_err ledger_client_advance(ledger_client *c, const uint8_t counter[LEDGER_COUNTER_LEN],
                                 const uint8_t *root, size_t root_len, ledger_msg *answer,
                                 vtpmca_diag *diag)
{
    ledger_msg local;
    if (answer == NULL)
        answer = &local;
    memset(answer, 0, sizeof(*answer));
    if (c == NULL || counter == NULL || root == NULL || root_len == 0 || root_len > LEDGER_ROOT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger advance: bad argument");
    ledger_msg req;
    memset(&req, 0, sizeof(req));
    memcpy(req.counter, counter, LEDGER_COUNTER_LEN);
    memcpy(req.root, root, root_len);
    req.root_len = root_len;
    req.has_entry = true;
    vtpmca_err err = exchange_signed(c, "/v1/ledger/advance", LEDGER_MSG_ADVANCE_REQUEST, &req,
                                     LEDGER_MSG_ADVANCE_ANSWER, answer, diag);
    if (err != VTPMCA_OK)
        return err;
    bool ok = strcmp(answer->result, "accepted") == 0 || strcmp(answer->result, "duplicate") == 0;
    if (ok && c->last_status == 200) {
        /* An acknowledgement must be of exactly what was sent. */
        if (!answer->has_entry || memcmp(answer->counter, counter, LEDGER_COUNTER_LEN) != 0 ||
            answer->root_len != root_len || memcmp(answer->root, root, root_len) != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                               "advance: the acknowledgement names another counter or root");
        return VTPMCA_OK;
    }
    if (c->last_status == 409 && !ok)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "advance refused by the ledger: %s%s",
                           answer->result, answer->locked ? " (the instance is locked)" : "");
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "advance: HTTP %ld with result \"%s\"",
                       c->last_status, answer->result);
}

vtpmca_err ledger_client_query(ledger_client *c, ledger_msg *answer, vtpmca_diag *diag)
{
    ledger_msg local;
    if (answer == NULL)
        answer = &local;
    memset(answer, 0, sizeof(*answer));
    if (c == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger query: bad argument");
    ledger_msg req;
    memset(&req, 0, sizeof(req));
    vtpmca_err err = exchange_signed(c, "/v1/ledger/query", LEDGER_MSG_QUERY_REQUEST, &req,
                                     LEDGER_MSG_QUERY_ANSWER, answer, diag);
    if (err != VTPMCA_OK)
        return err;
    if (c->last_status == 200 && strcmp(answer->result, LEDGER_RESULT_FOUND) == 0 &&
        answer->has_entry)
        return VTPMCA_OK;
    if (c->last_status == 404 && strcmp(answer->result, LEDGER_RESULT_NONE) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "the ledger has no record of %s",
                           c->instance);
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "query: HTTP %ld with result \"%s\"", c->last_status,
                       answer->result);
}

vtpmca_err ledger_client_statement(ledger_client *c, const uint8_t *nonce, size_t nonce_len,
                                   char **jwt, vtpmca_diag *diag)
{
    if (jwt != NULL)
        *jwt = NULL;
    if (c == NULL || nonce == NULL || jwt == NULL || nonce_len < LEDGER_NONCE_MIN ||
        nonce_len > LEDGER_NONCE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ledger statement: bad argument");
    ledger_msg req;
    memset(&req, 0, sizeof(req));
    snprintf(req.instance, sizeof(req.instance), "%s", c->instance);
    memcpy(req.nonce, nonce, nonce_len);
    req.nonce_len = nonce_len;
    uint8_t *body = NULL;
    size_t len = 0;
    exchange x;
    vtpmca_err err =
        ledger_msg_encode(LEDGER_MSG_STATEMENT_REQUEST, c->format, &req, &body, &len, diag);
    if (err == VTPMCA_OK)
        err = post(c, "/v1/ledger/statement", body, len, &x, diag);
    free(body);
    if (err != VTPMCA_OK) {
        free(x.body.data);
        return err;
    }
    if (x.status != 200) {
        char error[48], message[200];
        error_of(&x, error, message);
        err = x.status == 404 && strcmp(error, "no_record") == 0
                  ? vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "the ledger has no record of %s",
                                c->instance)
                  : unverified_error("/v1/ledger/statement", &x, diag);
        free(x.body.data);
        return err;
    }
    const char *text = NULL;
    json_t *doc = NULL;
    cbor_item_t *item = NULL;
    char *copy = NULL;
    if (x.cbor) {
        struct cbor_load_result result;
        item = cbor_load(x.body.data, x.body.len, &result);
        if (item != NULL && cbor_isa_map(item)) {
            struct cbor_pair *pairs = cbor_map_handle(item);
            for (size_t i = 0; i < cbor_map_size(item); i++) {
                cbor_item_t *k = pairs[i].key, *v = pairs[i].value;
                if (cbor_isa_string(k) && cbor_string_length(k) == 9 &&
                    memcmp(cbor_string_handle(k), "statement", 9) == 0 && cbor_isa_string(v) &&
                    cbor_string_is_definite(v))
                    copy = strndup((const char *)cbor_string_handle(v), cbor_string_length(v));
            }
        }
    } else {
        doc = json_loadb((const char *)x.body.data, x.body.len, 0, NULL);
        text = json_string_value(json_object_get(doc, "statement"));
        if (text != NULL)
            copy = strdup(text);
    }
    if (item != NULL)
        cbor_decref(&item);
    json_decref(doc);
    free(x.body.data);
    if (copy == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "statement: the answer holds no statement");
    *jwt = copy;
    return VTPMCA_OK;
}
