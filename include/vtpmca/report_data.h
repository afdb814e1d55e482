/* REPORT_DATA bindings of the KBS protocol: how an SNP report's 64-byte REPORT_DATA binds the
 * session nonce and the TEE's public key (docs/protocol.md, "KBS protocol"). Two flavours are
 * in use and a server accepts both:
 *  - SVSM / aproxy: SHA-512(X || Y || nonce), X and Y the tee-pubkey's coordinates as
 *    fixed-size big-endian integers (66 bytes each on P-521) and nonce the raw nonce bytes;
 *  - Trustee: SHA-384 over the RFC 8785 (JCS) canonical JSON of
 *    {"additional-evidence": <string>, "nonce": <nonce text>, "tee-pubkey": <TeePubKey>},
 *    zero-padded to 64 bytes. <TeePubKey> is the JWK reduced to the members Trustee's
 *    kbs_types::TeePubKey keeps: {"kty","crv","alg","x","y"} (EC) or {"kty","alg","n","e"}
 *    (RSA), values as sent.
 * Used by the server (kbs_service) and by clients (tools/svsm-sim). */
#ifndef VTPMCA_REPORT_DATA_H
#define VTPMCA_REPORT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"

/* KBS protocol constants shared by the server (kbs_service) and the reference client. */
#define KBS_PROTOCOL_VERSION "0.4.0"
#define KBS_COOKIE_NAME "kbs-session-id"

#define REPORT_DATA_SIZE 64

typedef enum {
    REPORT_DATA_FLAVOUR_NONE = 0,
    REPORT_DATA_FLAVOUR_SVSM,    /* SHA-512(X || Y || nonce) */
    REPORT_DATA_FLAVOUR_TRUSTEE, /* SHA-384(JCS(runtime data)) || 16 zero bytes */
} report_data_flavour;

/* "svsm", "trustee" ("none" for REPORT_DATA_FLAVOUR_NONE, "unknown" otherwise). */
const char *report_data_flavour_name(report_data_flavour flavour);

/* RFC 8785 JSON Canonicalization Scheme: object members sorted by the UTF-16 code units of
 * their names, no whitespace, strings with the minimal ECMAScript escapes, numbers in
 * ECMAScript Number-to-String form (integers beyond 2^53 are first rounded to the nearest
 * double, as a JavaScript reader would). *out is malloc'd and NUL-terminated; *out_len
 * excludes the NUL (a string value may itself contain "\u0000", written escaped). */
vtpmca_err jcs_serialize(const json_t *value, char **out, size_t *out_len, vtpmca_diag *diag);

/* SVSM flavour for an EC P-256/P-384/P-521 tee key and a nonce of 1..1024 bytes. */
vtpmca_err report_data_svsm(const EVP_PKEY *tee_key, const uint8_t *nonce, size_t nonce_len,
                            uint8_t out[REPORT_DATA_SIZE], vtpmca_diag *diag);

/* The same over the key's uncompressed SEC1 point (0x04 || X || Y, as jwe_ec_point_encode
 * writes it), for callers that keep the point instead of encoding the key per request. */
vtpmca_err report_data_svsm_point(const uint8_t *point, size_t point_len, const uint8_t *nonce,
                                  size_t nonce_len, uint8_t out[REPORT_DATA_SIZE],
                                  vtpmca_diag *diag);

/* The object the Trustee flavour hashes, built from the tee-pubkey JWK as sent (kty "EC" with
 * string crv, alg, x, y; or kty "RSA" with string alg, n, e; other members are dropped), the
 * nonce text as sent and the additional evidence string ("" when the request had none).
 * The JWK's values are not validated here (jwe_pubkey_from_jwk does that). */
vtpmca_err report_data_trustee_object(const json_t *tee_pubkey, const char *nonce_text,
                                      const char *additional_evidence, json_t **out,
                                      vtpmca_diag *diag);

/* Trustee flavour: SHA-384 of jcs_serialize(report_data_trustee_object(...)), zero-padded. */
vtpmca_err report_data_trustee(const json_t *tee_pubkey, const char *nonce_text,
                               const char *additional_evidence, uint8_t out[REPORT_DATA_SIZE],
                               vtpmca_diag *diag);

/* What an attestation request binds. tee_key must be the import of tee_pubkey. The SVSM
 * flavour hashes the key's X || Y: from tee_point when given (the point
 * jwe_pubkey_from_jwk_point imported, so the key is not encoded again), else from tee_key. */
typedef struct {
    const EVP_PKEY *tee_key;  /* the imported tee-pubkey */
    const json_t *tee_pubkey; /* the tee-pubkey JWK as sent */
    const uint8_t *tee_point; /* NULL, or tee_key's uncompressed point (tee_point_len bytes) */
    size_t tee_point_len;
    const uint8_t *nonce; /* the session nonce, raw */
    size_t nonce_len;
    const char *nonce_text;          /* the nonce as the request carried it */
    const char *additional_evidence; /* "" when absent */
} report_data_inputs;

/* Computes every flavour that applies (SVSM only for EC keys) and compares each with the
 * report's REPORT_DATA in constant time. *matched names the flavour that matched;
 * VTPMCA_ERR_CRYPTO (and *matched NONE) when none does. */
vtpmca_err report_data_match(const uint8_t report_data[REPORT_DATA_SIZE],
                             const report_data_inputs *inputs, report_data_flavour *matched,
                             vtpmca_diag *diag);

#endif
