/* Client of the EK/IAK issuance protocol over libcurl (see vtpmca/ca_client.h). Request and
 * answer bodies go through the server's message code (ca/issuance_wire.c). */
#include "vtpmca/ca_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "vtpmca/c509.h"
#include "vtpmca/http_client.h"
#include "vtpmca/tpm2_marshal.h"

#define URL_MAX 512
#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 5000L

struct ca_client {
    vt_http http;
    issuance_encoding encoding;
    long last_status;
    char last_error[48];
};

vtpmca_err ca_client_new(const char *base_url, issuance_encoding encoding, long timeout_ms,
                         ca_client **out, vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (base_url == NULL || out == NULL || timeout_ms < 0 ||
        (encoding != ISSUANCE_ENC_JSON && encoding != ISSUANCE_ENC_CBOR))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca client: bad arguments");
    ca_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ca client: out of memory");
    vtpmca_err err = vt_http_init(&c->http, base_url, URL_MAX, timeout_ms, DEFAULT_TIMEOUT_MS,
                                  CONNECT_TIMEOUT_MS, "ca client", diag);
    if (err != VTPMCA_OK) {
        free(c);
        return err;
    }
    c->encoding = encoding;
    *out = c;
    return VTPMCA_OK;
}

void ca_client_free(ca_client *client)
{
    if (client == NULL)
        return;
    vt_http_cleanup(&client->http);
    free(client);
}

long ca_client_last_status(const ca_client *client)
{
    return client != NULL ? client->last_status : 0;
}

const char *ca_client_last_error(const ca_client *client)
{
    return client != NULL ? client->last_error : "";
}

/* ---- transport ---- */

vtpmca_err ca_client_post_raw(ca_client *client, const char *path, const char *content_type,
                              const uint8_t *body, size_t len, long *status, uint8_t **reply,
                              size_t *reply_len, vtpmca_diag *diag)
{
    if (reply != NULL)
        *reply = NULL;
    if (reply_len != NULL)
        *reply_len = 0;
    if (client == NULL || path == NULL || status == NULL || (body == NULL && len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca client: bad arguments");
    char type_header[96];
    if (content_type != NULL)
        snprintf(type_header, sizeof(type_header), "Content-Type: %s", content_type);
    const char *headers[] = {client->encoding == ISSUANCE_ENC_CBOR ? "Accept: application/cbor"
                                                                   : "Accept: application/json",
                             content_type != NULL ? type_header : NULL, NULL};
    const vt_http_request request = {.path = path,
                                     .label = path,
                                     .headers = headers,
                                     .body = body,
                                     .body_len = len,
                                     .reply_max = CA_CLIENT_RESPONSE_MAX,
                                     .too_big_err = VTPMCA_ERR_LIMIT};
    uint8_t *answer = NULL;
    size_t answer_len = 0;
    vtpmca_err err = vt_http_perform(&client->http, &request, status, &answer, &answer_len, diag);
    if (err != VTPMCA_OK)
        return err;
    client->last_status = *status;
    if (reply != NULL) {
        *reply = answer;
        if (reply_len != NULL)
            *reply_len = answer_len;
        answer = NULL;
    }
    free(answer);
    return VTPMCA_OK;
}

static vtpmca_err status_error(ca_client *client, long status, const uint8_t *body, size_t len,
                               const char *step, vtpmca_diag *diag)
{
    vtpmca_err err = status == 401 || status == 403 ? VTPMCA_ERR_POLICY
                     : status == 404                ? VTPMCA_ERR_NOT_FOUND
                     : status == 409                ? VTPMCA_ERR_CONFLICT
                     : status == 413                ? VTPMCA_ERR_LIMIT
                     : status == 422                ? VTPMCA_ERR_UNSUPPORTED
                     : status >= 500                ? VTPMCA_ERR_NETWORK
                                                    : VTPMCA_ERR_PARSE;
    /* Refusals are JSON {"error","message"} whatever the request's encoding. */
    char message[160] = "";
    vt_http_error_members(body, len, client->last_error, sizeof(client->last_error), message,
                          sizeof(message));
    if (client->last_error[0] == '\0' && message[0] == '\0')
        return vtpmca_fail(diag, err, "%s: HTTP %ld", step, status);
    return vtpmca_fail(diag, err, "%s: HTTP %ld %s: %s", step, status, client->last_error, message);
}

/* POSTs fields (or nothing) and decodes a 200 answer against spec. */
static vtpmca_err exchange(ca_client *client, const char *path, const issuance_field *fields,
                           size_t n_fields, const issuance_field_spec *spec, size_t n_spec,
                           issuance_message *reply, vtpmca_diag *diag)
{
    client->last_error[0] = '\0';
    uint8_t *body = NULL, *answer = NULL;
    size_t body_len = 0, answer_len = 0;
    vtpmca_err err = VTPMCA_OK;
    if (n_fields > 0)
        err = issuance_message_encode(client->encoding, fields, n_fields, &body, &body_len, diag);
    const char *type = n_fields == 0                           ? NULL
                       : client->encoding == ISSUANCE_ENC_CBOR ? ISSUANCE_CBOR_TYPE
                                                               : ISSUANCE_JSON_TYPE;
    long status = 0;
    if (err == VTPMCA_OK)
        err = ca_client_post_raw(client, path, type, body, body_len, &status, &answer, &answer_len,
                                 diag);
    free(body);
    if (err == VTPMCA_OK && status != 200)
        err = status_error(client, status, answer, answer_len, path, diag);
    if (err == VTPMCA_OK) {
        vtpmca_diag inner = {{0}};
        err = issuance_message_decode(client->encoding, answer, answer_len, spec, n_spec, reply,
                                      &inner);
        if (err != VTPMCA_OK)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: malformed answer: %s", path, inner.msg);
    }
    free(answer);
    return err;
}

/* Copies a decoded byte field. */
static vtpmca_err dup_field(const issuance_message *msg, const char *name, uint8_t **out,
                            size_t *len, vtpmca_diag *diag)
{
    const issuance_field *f = issuance_message_get(msg, name);
    *out = NULL;
    *len = 0;
    if (f == NULL)
        return VTPMCA_OK;
    *out = malloc(f->len > 0 ? f->len : 1);
    if (*out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ca client: out of memory");
    memcpy(*out, f->bytes, f->len);
    *len = f->len;
    return VTPMCA_OK;
}

/* ---- the protocol ---- */

vtpmca_err ca_client_challenge(ca_client *client, uint8_t nonce[ISSUANCE_NONCE_LEN],
                               unsigned *expires_in_s, vtpmca_diag *diag)
{
    if (client == NULL || nonce == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "challenge: missing argument");
    issuance_message reply;
    vtpmca_err err = exchange(client, "/v1/ca/challenge", NULL, 0, ISSUANCE_CHALLENGE_RESPONSE,
                              ISSUANCE_SPEC_COUNT(ISSUANCE_CHALLENGE_RESPONSE), &reply, diag);
    if (err != VTPMCA_OK)
        return err;
    const issuance_field *f = issuance_message_get(&reply, "nonce");
    if (f->len != ISSUANCE_NONCE_LEN)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "challenge: a %zu-byte nonce", f->len);
    else
        memcpy(nonce, f->bytes, ISSUANCE_NONCE_LEN);
    if (expires_in_s != NULL)
        *expires_in_s = (unsigned)issuance_message_get(&reply, "expires_in")->uint;
    issuance_message_free(&reply);
    return err;
}

void ca_certificates_free(ca_certificates *certs)
{
    if (certs == NULL)
        return;
    free(certs->ek_cert);
    free(certs->iak_cert);
    free(certs->chain[0]);
    free(certs->chain[1]);
    memset(certs, 0, sizeof(*certs));
}

static issuance_field bytes_field(const char *name, const uint8_t *data, size_t len)
{
    return (issuance_field){.name = name, .type = ISSUANCE_FIELD_BYTES, .bytes = data, .len = len};
}

static issuance_field text_field(const char *name, const char *text)
{
    return (issuance_field){.name = name,
                            .type = ISSUANCE_FIELD_TEXT,
                            .bytes = (const uint8_t *)text,
                            .len = strlen(text)};
}

vtpmca_err ca_client_certify(ca_client *client, const issuance_certify_request *request,
                             ca_certificates *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (client == NULL || request == NULL || out == NULL || request->ek_public == NULL ||
        request->kbs_key == NULL || request->resource == NULL || request->format == NULL ||
        request->nonce == NULL || request->report == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: missing argument");
    issuance_field fields[7];
    size_t n = 0;
    fields[n++] = bytes_field("ek_public", request->ek_public, request->ek_public_len);
    if (request->iak_public != NULL)
        fields[n++] = bytes_field("iak_public", request->iak_public, request->iak_public_len);
    fields[n++] = bytes_field("kbs_key", request->kbs_key, request->kbs_key_len);
    fields[n++] = text_field("resource", request->resource);
    fields[n++] = text_field("format", request->format);
    fields[n++] = bytes_field("nonce", request->nonce, request->nonce_len);
    fields[n++] = bytes_field("report", request->report, request->report_len);
    issuance_message reply;
    vtpmca_err err = exchange(client, "/v1/ca/certify", fields, n, ISSUANCE_CERTIFY_RESPONSE,
                              ISSUANCE_SPEC_COUNT(ISSUANCE_CERTIFY_RESPONSE), &reply, diag);
    if (err != VTPMCA_OK)
        return err;
    const issuance_field *chain = issuance_message_get(&reply, "chain");
    const issuance_field *format = issuance_message_get(&reply, "format");
    if (issuance_format_parse((const char *)format->bytes, &out->format) != VTPMCA_OK ||
        strcmp((const char *)format->bytes, request->format) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certify: the answer is in another format");
    else if (chain->list_count != 2)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certify: the chain has %zu certificates, not 2",
                          chain->list_count);
    if (err == VTPMCA_OK)
        err = dup_field(&reply, "ek_cert", &out->ek_cert, &out->ek_cert_len, diag);
    if (err == VTPMCA_OK)
        err = dup_field(&reply, "iak_cert", &out->iak_cert, &out->iak_cert_len, diag);
    if (err == VTPMCA_OK && (out->iak_cert == NULL) != (request->iak_public == NULL))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certify: the IAK certificate is %s",
                          out->iak_cert == NULL ? "missing" : "unexpected");
    for (size_t i = 0; i < 2 && err == VTPMCA_OK; i++) {
        out->chain[i] = malloc(chain->list_len[i] > 0 ? chain->list_len[i] : 1);
        if (out->chain[i] == NULL) {
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ca client: out of memory");
            break;
        }
        memcpy(out->chain[i], chain->list[i], chain->list_len[i]);
        out->chain_len[i] = chain->list_len[i];
    }
    issuance_message_free(&reply);
    if (err != VTPMCA_OK)
        ca_certificates_free(out);
    return err;
}

void ca_activation_free(ca_activation *activation)
{
    if (activation == NULL)
        return;
    free(activation->credential_blob);
    free(activation->encrypted_secret);
    memset(activation, 0, sizeof(*activation));
}

vtpmca_err ca_client_activate_start(ca_client *client, const uint8_t *ek_public, size_t ek_len,
                                    const uint8_t *iak_public, size_t iak_len, const char *resource,
                                    ca_activation *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (client == NULL || ek_public == NULL || iak_public == NULL || resource == NULL ||
        out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing argument");
    issuance_field fields[] = {
        bytes_field("ek_public", ek_public, ek_len),
        bytes_field("iak_public", iak_public, iak_len),
        text_field("resource", resource),
    };
    issuance_message reply;
    vtpmca_err err =
        exchange(client, "/v1/ca/activate/start", fields, 3, ISSUANCE_ACTIVATE_START_RESPONSE,
                 ISSUANCE_SPEC_COUNT(ISSUANCE_ACTIVATE_START_RESPONSE), &reply, diag);
    if (err != VTPMCA_OK)
        return err;
    snprintf(out->activation_id, sizeof(out->activation_id), "%s",
             (const char *)issuance_message_get(&reply, "activation_id")->bytes);
    out->expires_in_s = (unsigned)issuance_message_get(&reply, "expires_in")->uint;
    err = dup_field(&reply, "credential_blob", &out->credential_blob, &out->credential_blob_len,
                    diag);
    if (err == VTPMCA_OK)
        err = dup_field(&reply, "encrypted_secret", &out->encrypted_secret,
                        &out->encrypted_secret_len, diag);
    issuance_message_free(&reply);
    if (err != VTPMCA_OK)
        ca_activation_free(out);
    return err;
}

vtpmca_err ca_client_activate_finish(ca_client *client, const char *activation_id,
                                     const uint8_t *secret, size_t secret_len,
                                     unsigned *proof_ttl_s, vtpmca_diag *diag)
{
    if (client == NULL || activation_id == NULL || secret == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing argument");
    issuance_field fields[] = {
        text_field("activation_id", activation_id),
        bytes_field("secret", secret, secret_len),
    };
    issuance_message reply;
    vtpmca_err err =
        exchange(client, "/v1/ca/activate/finish", fields, 2, ISSUANCE_ACTIVATE_FINISH_RESPONSE,
                 ISSUANCE_SPEC_COUNT(ISSUANCE_ACTIVATE_FINISH_RESPONSE), &reply, diag);
    if (err != VTPMCA_OK)
        return err;
    if (strcmp((const char *)issuance_message_get(&reply, "status")->bytes, "proven") != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "activation: status is not \"proven\"");
    if (proof_ttl_s != NULL)
        *proof_ttl_s = (unsigned)issuance_message_get(&reply, "expires_in")->uint;
    issuance_message_free(&reply);
    return err;
}

vtpmca_err ca_iak_template(uint8_t *buf, size_t cap, size_t *len)
{
    if (buf == NULL || len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    tpm2_public t;
    memset(&t, 0, sizeof(t));
    t.type = TPM2_ALG_ECC;
    t.name_alg = TPM2_ALG_SHA256;
    t.object_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    t.sym_alg = TPM2_ALG_NULL;
    t.scheme = TPM2_ALG_ECDSA;
    t.scheme_hash = TPM2_ALG_SHA256;
    t.curve = TPM2_ECC_NIST_P256;
    t.kdf = TPM2_ALG_NULL;
    tpm2_writer w;
    vtpmca_err err = tpm2_writer_init(&w, buf, cap);
    if (err == VTPMCA_OK)
        err = tpm2_put_public(&w, &t);
    *len = err == VTPMCA_OK ? w.len : 0;
    return err;
}

/* ---- checks of received certificates ---- */

/* The DER of one received certificate (C509 type 3 is rebuilt byte for byte). */
static vtpmca_err to_der(issuance_format format, const uint8_t *in, size_t len, X509 **out,
                         uint8_t **der, size_t *der_len, vtpmca_diag *diag)
{
    uint8_t *copy = NULL;
    size_t copy_len = 0;
    vtpmca_err err = VTPMCA_OK;
    if (format == ISSUANCE_FORMAT_C509) {
        err = c509_to_x509_der(in, len, &copy, &copy_len, diag);
    } else {
        copy = malloc(len > 0 ? len : 1);
        if (copy == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        else
            memcpy(copy, in, len);
        copy_len = len;
    }
    if (err != VTPMCA_OK)
        return err;
    const unsigned char *p = copy;
    *out = d2i_X509(NULL, &p, (long)copy_len);
    if (*out == NULL || p != copy + copy_len) {
        X509_free(*out);
        *out = NULL;
        free(copy);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "a received certificate is not DER X.509");
    }
    if (der != NULL) {
        *der = copy;
        *der_len = copy_len;
    } else {
        free(copy);
    }
    return VTPMCA_OK;
}

/* OpenSSL chain verification: root trusted (and self-signed), issuing CA untrusted. */
static vtpmca_err verify_chain(X509 *cert, X509 *issuing, X509 *root, vtpmca_diag *diag)
{
    if (X509_check_issued(root, root) != X509_V_OK ||
        X509_verify(root, X509_get0_pubkey(root)) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "the received root is not self-signed");
    X509_STORE *trusted = X509_STORE_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = trusted != NULL && untrusted != NULL && ctx != NULL &&
              X509_STORE_add_cert(trusted, root) == 1 && sk_X509_push(untrusted, issuing) > 0 &&
              X509_STORE_CTX_init(ctx, trusted, cert, untrusted) == 1;
    int verified = ok ? X509_verify_cert(ctx) : -1;
    int code = ok ? X509_STORE_CTX_get_error(ctx) : X509_V_ERR_UNSPECIFIED;
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(trusted);
    if (verified != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "the certificate does not chain to the root: %s",
                           X509_verify_cert_error_string(code));
    return VTPMCA_OK;
}

/* The certificate's key equals the TPM's, as DER SubjectPublicKeyInfo. */
static vtpmca_err same_key(X509 *cert, const uint8_t *tpmt_public, size_t len, vtpmca_diag *diag)
{
    EVP_PKEY *tpm_key = NULL;
    vtpmca_err err = vtpm_tpmt_public_to_evp(tpmt_public, len, &tpm_key, diag);
    if (err != VTPMCA_OK)
        return err;
    unsigned char *want = NULL, *got = NULL;
    int want_len = i2d_PUBKEY(tpm_key, &want);
    int got_len = i2d_PUBKEY(X509_get0_pubkey(cert), &got);
    bool same = want_len > 0 && want_len == got_len && memcmp(want, got, (size_t)want_len) == 0;
    OPENSSL_free(want);
    OPENSSL_free(got);
    EVP_PKEY_free(tpm_key);
    return same ? VTPMCA_OK
                : vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                              "the certificate's public key is not the TPM's key");
}

vtpmca_err ca_certificate_check(issuance_format format, const uint8_t *cert, size_t cert_len,
                                const uint8_t *const chain[2], const size_t chain_len[2],
                                const uint8_t *tpmt_public, size_t tpmt_public_len, uint8_t **der,
                                size_t *der_len, vtpmca_diag *diag)
{
    if (der != NULL)
        *der = NULL;
    if (der_len != NULL)
        *der_len = 0;
    if (cert == NULL || chain == NULL || chain_len == NULL || chain[0] == NULL ||
        chain[1] == NULL || tpmt_public == NULL || (der != NULL && der_len == NULL) ||
        (format != ISSUANCE_FORMAT_X509 && format != ISSUANCE_FORMAT_C509))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certificate check: missing argument");
    X509 *leaf = NULL, *issuing = NULL, *root = NULL;
    vtpmca_err err = to_der(format, cert, cert_len, &leaf, der, der_len, diag);
    if (err == VTPMCA_OK)
        err = to_der(format, chain[0], chain_len[0], &issuing, NULL, NULL, diag);
    if (err == VTPMCA_OK)
        err = to_der(format, chain[1], chain_len[1], &root, NULL, NULL, diag);
    if (err == VTPMCA_OK)
        err = verify_chain(leaf, issuing, root, diag);
    if (err == VTPMCA_OK)
        err = same_key(leaf, tpmt_public, tpmt_public_len, diag);
    X509_free(leaf);
    X509_free(issuing);
    X509_free(root);
    if (err != VTPMCA_OK && der != NULL) {
        free(*der);
        *der = NULL;
        *der_len = 0;
    }
    return err;
}
