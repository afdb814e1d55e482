/* Rollback ledger protocol client (the SVSM's side), over libcurl. */
#include "vtpmca/ledger_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vtpmca/http_client.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define URL_MAX 2048
#define RESPONSE_MAX 65536
#define REQUEST_NONCE_LEN 32

struct ledger_client {
    vt_http http;
    char instance[STORE_INSTANCE_ID_MAX + 1];
    uint8_t key[LEDGER_KEY_LEN];
    ledger_format format;
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
    ledger_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ledger client: out of memory");
    vtpmca_err err = vt_http_init(&c->http, base_url, URL_MAX, timeout_ms, DEFAULT_TIMEOUT_MS,
                                  CONNECT_TIMEOUT_MS, "ledger client", diag);
    if (err == VTPMCA_OK)
        err = ledger_key_derive(persistence_key, persistence_key_len, instance, c->key, diag);
    if (err != VTPMCA_OK) {
        ledger_client_free(c);
        return err;
    }
    snprintf(c->instance, sizeof(c->instance), "%s", instance);
    c->format = format;
    *out = c;
    return VTPMCA_OK;
}

void ledger_client_free(ledger_client *c)
{
    if (c == NULL)
        return;
    vt_http_cleanup(&c->http);
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
} response_body;

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
    const char *headers[] = {c->format == LEDGER_FORMAT_CBOR
                                 ? "Content-Type: " LEDGER_CBOR_CONTENT_TYPE
                                 : "Content-Type: " LEDGER_JSON_CONTENT_TYPE,
                             NULL};
    const vt_http_request request = {.path = path,
                                     .label = path,
                                     .headers = headers,
                                     .body = body,
                                     .body_len = len,
                                     .reply_max = RESPONSE_MAX,
                                     .too_big_err = VTPMCA_ERR_PARSE};
    vtpmca_err err =
        vt_http_perform(&c->http, &request, &x->status, &x->body.data, &x->body.len, diag);
    if (err != VTPMCA_OK)
        return err;
    c->last_status = x->status;
    x->cbor = vt_http_content_type_is(&c->http, LEDGER_CBOR_CONTENT_TYPE);
    return VTPMCA_OK;
}

/* The members of an error answer {"error","message"} (always JSON), printable. */
static void error_of(const exchange *x, char error[48], char message[200])
{
    vt_http_error_members(!x->cbor ? x->body.data : NULL, x->body.len, error, 48, message, 200);
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
    exchange x = {0};
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
    exchange x = {0};
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
