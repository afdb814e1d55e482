/* The client side of KBS protocol 0.4.0 (Request-Challenge-Attestation-Response) as the
 * SVSM's host proxy (aproxy) speaks it, over libcurl, for the reference SVSM client:
 *   POST /kbs/v0/auth      {"version":"0.4.0","tee":"snp","extra-params":""}
 *                          -> {"nonce":<std base64>,"extra-params":""} + kbs-session-id cookie
 *   POST /kbs/v0/attest    {"init-data":null,"runtime-data":{"nonce","tee-pubkey"},
 *                           "tee-evidence":{"primary_evidence":{"snp-report":<std base64>,
 *                           "certs-buf":null},"additional_evidence":""}} -> {"token":<JWT>}
 *   GET  /kbs/v0/resource/<repo>/<type>/<tag>           -> flattened JWE
 *   POST /kbs/v0/resource/<repo>/<type>/<tag>  {"wrapped-key":<base64url>} (wrapped-key mode)
 * The request builders are pure functions so tests can check the exact shapes. */
#ifndef VTPMCA_KBS_CLIENT_H
#define VTPMCA_KBS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/report_data.h"

/* Largest response body the client reads. */
#define KBS_CLIENT_RESPONSE_MAX (1024 * 1024)
/* Nonces the client accepts from auth (the KBS binding signs at most this much). */
#define KBS_CLIENT_NONCE_MAX 1024

/* REPORT_DATA flavours are report_data.h's (the server's own computation, so client and
 * server cannot disagree): REPORT_DATA_FLAVOUR_SVSM or REPORT_DATA_FLAVOUR_TRUSTEE.
 * "svsm" / "trustee" -> the flavour; anything else VTPMCA_ERR_PARSE. */
vtpmca_err kbs_flavour_parse(const char *text, report_data_flavour *out);

/* ---- Request bodies and REPORT_DATA (pure) ---- */

/* {"version":"0.4.0","tee":"snp","extra-params":""} */
vtpmca_err kbs_auth_request(json_t **out, vtpmca_diag *diag);

/* The runtime-data tee-pubkey of a key (public part used): EC P-256/P-384/P-521 as
 * {"kty":"EC","crv","alg":"ECDH-ES+A256KW","x","y"}, RSA as
 * {"kty":"RSA","alg":"RSA-OAEP-256","n","e"}; base64url without padding, members in that
 * order. */
vtpmca_err kbs_tee_pubkey_jwk(const EVP_PKEY *tee_key, json_t **out, vtpmca_diag *diag);

/* REPORT_DATA for the flavour from what the attest request carries: the nonce string as
 * received from auth and the tee-pubkey JWK as sent (the additional evidence is ""):
 *  svsm:    SHA-512(X || Y || nonce), fixed-size big-endian coordinates (66 bytes on P-521),
 *           the raw nonce; EC keys only (VTPMCA_ERR_UNSUPPORTED for RSA);
 *  trustee: SHA-384(JCS({"additional-evidence":"","nonce":<text>,"tee-pubkey":<JWK>})),
 *           zero-padded to 64 bytes. */
vtpmca_err kbs_report_data(report_data_flavour flavour, const char *nonce_b64,
                           const json_t *tee_pubkey_jwk, uint8_t out[REPORT_DATA_SIZE],
                           vtpmca_diag *diag);

/* The attest body above for a raw SNP report (1..8192 bytes). */
vtpmca_err kbs_attest_request(const char *nonce_b64, const json_t *tee_pubkey_jwk,
                              const uint8_t *report, size_t report_len, json_t **out,
                              vtpmca_diag *diag);

/* {"wrapped-key":<base64url without padding>} for a wrapped-key blob (1..4096 bytes). */
vtpmca_err kbs_resource_request(const uint8_t *wrapped_key, size_t len, json_t **out,
                                vtpmca_diag *diag);

/* ---- Transport ---- */

/* One KBS session: a libcurl handle with its own cookie store (like aproxy's reqwest client
 * with a cookie store), so the kbs-session-id cookie set by auth goes with the later
 * requests. The caller runs curl_global_init once per process. Not thread-safe. */
typedef struct kbs_client kbs_client;

/* base_url: "http://host:port" or "https://..." (a trailing '/' is ignored); timeout_ms 0
 * means 30 s per request. */
vtpmca_err kbs_client_new(const char *base_url, long timeout_ms, kbs_client **out,
                          vtpmca_diag *diag);
void kbs_client_free(kbs_client *client);

/* POST /kbs/v0/auth. Requires a 200 JSON reply with a standard-base64 "nonce" of
 * 1..KBS_CLIENT_NONCE_MAX bytes and an "extra-params" member (aproxy requires both), and a
 * kbs-session-id cookie. */
vtpmca_err kbs_client_auth(kbs_client *client, vtpmca_diag *diag);

/* The nonce of the last successful auth: as received (base64) and decoded; NULL / error
 * before auth. Owned by the client. */
const char *kbs_client_nonce_b64(const kbs_client *client);
vtpmca_err kbs_client_nonce(const kbs_client *client, const uint8_t **nonce, size_t *len);

/* POST /kbs/v0/attest with the body (kbs_attest_request). *token (malloc'd) is the JWT of a
 * 200 reply; any other status is a failed attestation. */
vtpmca_err kbs_client_attest(kbs_client *client, const json_t *attest_request, char **token,
                             vtpmca_diag *diag);

/* GET /kbs/v0/resource/<path>, path "<repo>/<type>/<tag>" as the store checks it
 * (store_check_resource_path: VTPMCA_ERR_INVALID_ARG otherwise), or with a wrapped-key blob POST
 * with kbs_resource_request's body. *jwe receives the 200 reply's JSON object (caller json_decref's
 * it). */
vtpmca_err kbs_client_resource(kbs_client *client, const char *path, const uint8_t *wrapped_key,
                               size_t wrapped_key_len, json_t **jwe, vtpmca_diag *diag);

/* HTTP status of the last request (0 when none completed). */
long kbs_client_last_status(const kbs_client *client);

/* Errors of the transport functions: VTPMCA_ERR_NETWORK when the server cannot be reached or
 * answers 5xx; a 401/403 answer (attestation or release refused) -> VTPMCA_ERR_POLICY;
 * 404 -> VTPMCA_ERR_NOT_FOUND; 413 -> VTPMCA_ERR_LIMIT; other statuses or a malformed 200
 * body -> VTPMCA_ERR_PARSE. The diag carries the status and the server's JSON
 * {"error","message"} when there is one. */

#endif
