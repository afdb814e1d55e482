/* The client side of evidence-bound EK/IAK certificate issuance (docs/protocol.md, "EK/IAK
 * certificate issuance"), over libcurl, for the reference SVSM client (tools/svsm-sim.c),
 * tests and benchmarks:
 *   POST /v1/ca/challenge        -> {nonce, expires_in}
 *   POST /v1/ca/certify          {ek_public, iak_public?, kbs_key, resource, format, nonce,
 *                                 report} -> {ek_cert, iak_cert?, chain, format}
 *   POST /v1/ca/activate/start   {ek_public, iak_public, resource}
 *                                -> {activation_id, credential_blob, encrypted_secret, expires_in}
 *   POST /v1/ca/activate/finish  {activation_id, secret} -> {status, expires_in}
 * Bodies are JSON or CBOR (the client's choice), encoded and decoded with the server's own
 * message code (issuance.h), so both sides use one definition of the fields. Plus the
 * checks a client makes of what it receives (ca_certificate_check). */
#ifndef VTPMCA_CA_CLIENT_H
#define VTPMCA_CA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/issuance.h"

/* Largest answer read. */
#define CA_CLIENT_RESPONSE_MAX (256 * 1024)

typedef struct ca_client ca_client;

/* base_url "http://host:port" or "https://..." (a trailing '/' is ignored); timeout_ms 0
 * means 30 s per request. The caller runs curl_global_init once per process. Not
 * thread-safe: one client per thread. */
vtpmca_err ca_client_new(const char *base_url, issuance_encoding encoding, long timeout_ms,
                         ca_client **out, vtpmca_diag *diag);
void ca_client_free(ca_client *client);

/* HTTP status and the "error" code of the last answer ("" after a success or when the body
 * had none), e.g. "ek_changed" or "ca_not_initialized". */
long ca_client_last_status(const ca_client *client);
const char *ca_client_last_error(const ca_client *client);

/* Errors of the calls below map the server's answer: 401/403 -> VTPMCA_ERR_POLICY,
 * 404 -> NOT_FOUND, 409 -> CONFLICT, 413 -> LIMIT, 422 -> UNSUPPORTED, other 4xx -> PARSE,
 * 5xx and transport failures -> NETWORK; the diag holds "HTTP <status> <error>: <message>". */

vtpmca_err ca_client_challenge(ca_client *client, uint8_t nonce[ISSUANCE_NONCE_LEN],
                               unsigned *expires_in_s, vtpmca_diag *diag);

typedef struct {
    issuance_format format;
    uint8_t *ek_cert; /* DER or C509 as received, malloc'd */
    size_t ek_cert_len;
    uint8_t *iak_cert; /* NULL when none was asked for */
    size_t iak_cert_len;
    uint8_t *chain[2]; /* issuing CA, root: in the same format */
    size_t chain_len[2];
} ca_certificates;

void ca_certificates_free(ca_certificates *certs);

/* request->client is ignored; request->format is "x509" or "c509". */
vtpmca_err ca_client_certify(ca_client *client, const issuance_certify_request *request,
                             ca_certificates *out, vtpmca_diag *diag);

typedef struct {
    char activation_id[ISSUANCE_ACTIVATION_ID_HEX + 1];
    uint8_t *credential_blob; /* for TPM2_ActivateCredential (vtpm_activate_credential) */
    size_t credential_blob_len;
    uint8_t *encrypted_secret;
    size_t encrypted_secret_len;
    unsigned expires_in_s;
} ca_activation;

void ca_activation_free(ca_activation *activation);

vtpmca_err ca_client_activate_start(ca_client *client, const uint8_t *ek_public, size_t ek_len,
                                    const uint8_t *iak_public, size_t iak_len, const char *resource,
                                    ca_activation *out, vtpmca_diag *diag);
/* *proof_ttl_s (may be NULL): how long the service keeps the proof for certify. */
vtpmca_err ca_client_activate_finish(ca_client *client, const char *activation_id,
                                     const uint8_t *secret, size_t secret_len,
                                     unsigned *proof_ttl_s, vtpmca_diag *diag);

/* Posts a raw body (content_type may be NULL: none) to path and returns the status and the
 * body (malloc'd, NUL-terminated one past *reply_len; may be NULL to discard). For tests of
 * malformed requests. A transport failure is VTPMCA_ERR_NETWORK; any HTTP status is OK. */
vtpmca_err ca_client_post_raw(ca_client *client, const char *path, const char *content_type,
                              const uint8_t *body, size_t len, long *status, uint8_t **reply,
                              size_t *reply_len, vtpmca_diag *diag);

/* The IAK the reference SVSM client makes (docs/svsm-sim.md): a primary key in the
 * endorsement hierarchy (so the same endorsement seed always gives the same IAK, like the
 * EK), ECC NIST P-256, nameAlg SHA-256, restricted signing with ECDSA SHA-256, fixedTPM,
 * fixedParent, sensitiveDataOrigin and userWithAuth, an empty authPolicy and adminWithPolicy
 * clear (TPM2_ActivateCredential then authorizes it with its empty authValue). Writes the
 * TPMT_PUBLIC template into buf. */
vtpmca_err ca_iak_template(uint8_t *buf, size_t cap, size_t *len);

/* What a client checks of a received certificate (cert in `format`, chain as received):
 * the chain rebuilds (C509: each certificate back to its DER, byte for byte), the root is
 * self-signed, the issuing CA is signed by the root and the certificate by the issuing CA
 * (OpenSSL chain verification, at the current time), and the certificate's public key is the
 * TPM's key of tpmt_public, byte for byte (DER SubjectPublicKeyInfo). *der (may be NULL;
 * malloc'd) receives the X.509 DER, which goes into the TPM's NV index. Failures ->
 * VTPMCA_ERR_CRYPTO (chain, key) or VTPMCA_ERR_PARSE (malformed). */
vtpmca_err ca_certificate_check(issuance_format format, const uint8_t *cert, size_t cert_len,
                                const uint8_t *const chain[2], const size_t chain_len[2],
                                const uint8_t *tpmt_public, size_t tpmt_public_len, uint8_t **der,
                                size_t *der_len, vtpmca_diag *diag);

#endif
