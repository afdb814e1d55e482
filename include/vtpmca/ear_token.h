/* The attestation token of the KBS `attest` step: an EAR (draft-fv-rats-ear) claims-set in a
 * JWT (RFC 7519), JWS compact serialization (RFC 7515) signed with ES256 or ES384 by the
 * service's token key. Header: {"alg","typ":"JWT","kid":<hex SHA-256 of the key's DER
 * SubjectPublicKeyInfo>}. The token key is an EC P-256 / P-384 key in a 0600 PEM file, kept
 * like the KBS key (kbs_key_load_or_create). See docs/protocol.md, "KBS protocol". */
#ifndef VTPMCA_EAR_TOKEN_H
#define VTPMCA_EAR_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/jws.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/snp_verifier.h"

/* Tokens longer than this are refused before any parsing. */
#define EAR_TOKEN_MAX_LEN 65536
/* Hex of the key fingerprint, plus the NUL. */
#define EAR_TOKEN_KID_SIZE (2 * KBS_KEY_FINGERPRINT_LEN + 1)
/* The "kid": lower-case hex of kbs_key_fingerprint(key). */
vtpmca_err ear_token_kid(const EVP_PKEY *key, char kid[EAR_TOKEN_KID_SIZE], vtpmca_diag *diag);

/* What the service puts into a token besides the EAR. */
typedef struct {
    const snp_evidence *evidence; /* verified evidence */
    time_t issued_at;             /* "iat" */
    time_t expires_at;            /* "exp" (the session's expiry) */
    const char *session_id;       /* "sid" */
    const json_t *tee_pubkey;     /* "tee-pubkey": the JWK the session is bound to */
} ear_token_claims;

/* Builds the claims-set: ear_render_snp of the evidence appraised without a fleet policy
 * (a verdict with no checks: hardware and instance identity only; the appraisal policy id is
 * EAR_TOKEN_POLICY_ID), plus "exp", "jti" (128 random bits, hex), "sid" and "tee-pubkey". */
#define EAR_TOKEN_POLICY_ID "vtpmca:kbs/attestation-identity"
vtpmca_err ear_token_build_claims(const ear_token_claims *in, json_t **out, vtpmca_diag *diag);

/* Room for the base64url JOSE header {"alg":"ES384","typ":"JWT","kid":"<64 hex>"} (102
 * bytes of JSON, 136 characters) and its NUL. */
#define EAR_TOKEN_HEADER_B64_SIZE 160

/* A token signing key with what every token needs from it worked out once. */
typedef struct {
    EVP_PKEY *key;                /* a reference held by this struct */
    const char *alg;              /* "ES256" or "ES384" */
    char kid[EAR_TOKEN_KID_SIZE]; /* ear_token_kid of the key */
    /* The token's first segment: the same for every token of this key. */
    char header_b64[EAR_TOKEN_HEADER_B64_SIZE];
} ear_token_key;

/* Takes a reference to an EC P-256 or P-384 key (VTPMCA_ERR_UNSUPPORTED otherwise). */
vtpmca_err ear_token_key_init(ear_token_key *out, const EVP_PKEY *key, vtpmca_diag *diag);
/* Drops the reference (a zeroed struct is fine). */
void ear_token_key_clear(ear_token_key *key);

/* Signs a claims object (serialised compactly) into "header.payload.signature". *out is
 * malloc'd. The key (set up by ear_token_key_init) must have its private half. */
vtpmca_err ear_token_sign(const ear_token_key *key, const json_t *claims, char **out,
                          vtpmca_diag *diag);

/* Verifies a token made by ear_token_sign with `key` (only its public half is used):
 * three base64url (unpadded) parts, a header with exactly "alg" (matching the key), "typ"
 * "JWT" and "kid" (this key's), a valid signature, and a payload object whose integer "exp"
 * is after `now`. On success *claims (may be NULL) receives the payload. Malformed tokens
 * are VTPMCA_ERR_PARSE, a wrong key or bad signature VTPMCA_ERR_CRYPTO, an expired token
 * VTPMCA_ERR_POLICY. */
vtpmca_err ear_token_verify(const ear_token_key *key, const char *token, size_t token_len,
                            time_t now, json_t **claims, vtpmca_diag *diag);

#endif
