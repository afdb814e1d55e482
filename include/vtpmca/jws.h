/* JWS ECDSA (RFC 7518 section 3.4): ES256 with P-256/SHA-256 and ES384 with P-384/SHA-384,
 * signatures as raw r || s, each left-padded to the curve's field size. Shared by the EAR
 * token, the KBS binding, ledger statements and admin tokens. */
#ifndef VTPMCA_JWS_H
#define VTPMCA_JWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"

/* Largest raw JWS ECDSA signature (ES384: r || s, 48 bytes each). */
#define JWS_ES_SIG_MAX 96

typedef struct {
    const char *curve;      /* RFC 7518 curve name, e.g. "P-384" */
    const char *ossl_group; /* OpenSSL group name */
    const char *alg;        /* "ES256" or "ES384" */
    const EVP_MD *(*md)(void);
    size_t field_len; /* r and s are this many bytes each */
} jws_es_suite;

/* The suite of an EC P-256 / P-384 key, or of an alg name; NULL for anything else. */
const jws_es_suite *jws_es_suite_by_key(const EVP_PKEY *key);
const jws_es_suite *jws_es_suite_by_alg(const char *alg);

/* "ES256" for a P-256 key, "ES384" for a P-384 key, NULL otherwise. */
const char *jws_es_alg(const EVP_PKEY *key);

/* Signs `data` and writes r || s to sig (*sig_len = 64 or 96). */
vtpmca_err jws_es_sign(const EVP_PKEY *key, const uint8_t *data, size_t len,
                       uint8_t sig[JWS_ES_SIG_MAX], size_t *sig_len, vtpmca_diag *diag);

/* Verifies an r || s signature. A signature of the wrong length or one that does not verify
 * is VTPMCA_ERR_CRYPTO. */
vtpmca_err jws_es_verify(const EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t *sig,
                         size_t sig_len, vtpmca_diag *diag);

/* A JWS header or payload segment: the compact JSON text of `value` in unpadded base64url;
 * *out is malloc'd. */
vtpmca_err jws_b64url_json(const json_t *value, char **out);

#endif
