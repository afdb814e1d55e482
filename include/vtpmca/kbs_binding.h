/* The KBS ECDSA binding (docs/protocol.md, "KBS ECDSA binding"): with every resource
 * response the service signs the JWE's ephemeral ECDH key together with the session nonce
 * and the TEE's key, using a static ECDSA key (P-384 by default, P-256 allowed). The SVSM
 * verifies the signature and remembers the KBS public key. The binding travels in the
 * JWE's unprotected header:
 *   "header": {"kbs-binding": {"alg":"ES384","kbs-key":{JWK},"sig":"<b64url r||s>","v":1}}
 */
#ifndef VTPMCA_KBS_BINDING_H
#define VTPMCA_KBS_BINDING_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/jwe.h"

/* Domain-separation label; the signed message starts with these bytes and a NUL. */
#define KBS_BINDING_LABEL "vtpmca-kbs-binding-v1"
#define KBS_BINDING_VERSION 1
/* Name of the member of the JWE unprotected header that carries the binding. */
#define KBS_BINDING_HEADER "kbs-binding"
#define KBS_BINDING_MAX_NONCE 1024
/* label+NUL, then three u32be-length-prefixed fields (two points, the nonce). */
#define KBS_BINDING_MESSAGE_MAX                                                                    \
    (sizeof(KBS_BINDING_LABEL) + 3 * 4 + 2 * JWE_EC_POINT_MAX + KBS_BINDING_MAX_NONCE)
#define KBS_KEY_FINGERPRINT_LEN 32
/* Largest KBS key PEM file read back. */
#define KBS_KEY_FILE_MAX 16384

typedef enum {
    KBS_KEY_P384 = 0, /* ES384, the default */
    KBS_KEY_P256,     /* ES256 */
} kbs_key_curve;

/* Generates a fresh KBS signing key. */
vtpmca_err kbs_key_generate(kbs_key_curve curve, EVP_PKEY **out, vtpmca_diag *diag);

/* Loads an unencrypted PEM private key (PKCS#8 or SEC1) and checks that it is a consistent
 * EC P-256 or P-384 key pair. Warns in the log when the file is readable by others. */
vtpmca_err kbs_key_load(const char *path, EVP_PKEY **out, vtpmca_diag *diag);

/* Writes the private key as unencrypted PKCS#8 PEM, atomically, mode 0600. */
vtpmca_err kbs_key_save(const EVP_PKEY *key, const char *path, vtpmca_diag *diag);

/* Loads path, or when it does not exist generates a key of `curve` and saves it there.
 * *created (may be NULL) tells which happened. */
vtpmca_err kbs_key_load_or_create(const char *path, kbs_key_curve curve, EVP_PKEY **out,
                                  int *created, vtpmca_diag *diag);

/* SHA-256 over the DER SubjectPublicKeyInfo of key's public part. */
vtpmca_err kbs_key_fingerprint(const EVP_PKEY *key, uint8_t out[KBS_KEY_FINGERPRINT_LEN],
                               vtpmca_diag *diag);

/* The exact bytes that are signed:
 *   "vtpmca-kbs-binding-v1" 0x00 || u32be(len) epk || u32be(len) nonce || u32be(len) tee
 * where epk and tee are uncompressed SEC1 points (0x04 || X || Y) of keys on the same
 * curve, and nonce is 1..KBS_BINDING_MAX_NONCE raw bytes. */
vtpmca_err kbs_binding_message(const EVP_PKEY *epk, const uint8_t *nonce, size_t nonce_len,
                               const EVP_PKEY *tee_pubkey, uint8_t *out, size_t out_size,
                               size_t *out_len, vtpmca_diag *diag);

/* kbs_binding_message over points the caller already holds (uncompressed SEC1, same
 * length, i.e. the same curve), so the hot path encodes no key twice. */
vtpmca_err kbs_binding_message_points(const uint8_t *epk_point, size_t epk_len,
                                      const uint8_t *nonce, size_t nonce_len,
                                      const uint8_t *tee_point, size_t tee_len, uint8_t *out,
                                      size_t out_size, size_t *out_len, vtpmca_diag *diag);

/* kbs_binding_sign over points the caller holds; kbs_jwk (may be NULL: then it is computed)
 * is kbs_key's public JWK as jwe_pubkey_to_jwk makes it, cached by long-lived callers. */
vtpmca_err kbs_binding_sign_points(const EVP_PKEY *kbs_key, const json_t *kbs_jwk,
                                   const uint8_t *epk_point, size_t epk_len, const uint8_t *nonce,
                                   size_t nonce_len, const uint8_t *tee_point, size_t tee_len,
                                   json_t **header_out, vtpmca_diag *diag);

/* kbs_key's public JWK as compact JSON text (json_dumps of jwe_pubkey_to_jwk's JWK), for
 * kbs_binding_sign_points_text; made once by long-lived callers. *out is malloc'd. */
vtpmca_err kbs_binding_jwk_text(const EVP_PKEY *kbs_key, char **out, vtpmca_diag *diag);

/* kbs_binding_sign_points writing the header as compact JSON text, byte-for-byte what
 * json_dumps(header, JSON_COMPACT) gives for kbs_binding_sign_points' object:
 *   {"kbs-binding":{"alg":"ES384","kbs-key":<kbs_jwk_text>,"sig":"<b64url>","v":1}}
 * kbs_jwk_text (may be NULL: then it is computed) is kbs_binding_jwk_text's text; it is copied
 * in unparsed, so only its braces are checked. *header_out (malloc'd, NUL-terminated) holds
 * *header_len bytes, for jwe_finish_text. */
vtpmca_err kbs_binding_sign_points_text(const EVP_PKEY *kbs_key, const char *kbs_jwk_text,
                                        const uint8_t *epk_point, size_t epk_len,
                                        const uint8_t *nonce, size_t nonce_len,
                                        const uint8_t *tee_point, size_t tee_len, char **header_out,
                                        size_t *header_len, vtpmca_diag *diag);

/* Signs the binding with kbs_key and returns the unprotected header object
 * {"kbs-binding":{...}} to pass to jwe_finish. */
vtpmca_err kbs_binding_sign(const EVP_PKEY *kbs_key, const EVP_PKEY *epk, const uint8_t *nonce,
                            size_t nonce_len, const EVP_PKEY *tee_pubkey, json_t **header_out,
                            vtpmca_diag *diag);

/* Verifies the binding in a JWE unprotected header. When expected_kbs_key is non-NULL (the
 * client already remembers a KBS key) a binding made with another key is refused.
 * *kbs_pubkey_out (may be NULL) receives the KBS public key from the binding. Malformed
 * bindings -> VTPMCA_ERR_PARSE / UNSUPPORTED; a bad signature or a different key ->
 * VTPMCA_ERR_CRYPTO. */
vtpmca_err kbs_binding_verify(const json_t *header, const EVP_PKEY *epk, const uint8_t *nonce,
                              size_t nonce_len, const EVP_PKEY *tee_pubkey,
                              const EVP_PKEY *expected_kbs_key, EVP_PKEY **kbs_pubkey_out,
                              vtpmca_diag *diag);

/* kbs_binding_verify on a whole flattened JWE: the epk comes from its (validated)
 * protected header and the binding from its "header" member. */
vtpmca_err kbs_binding_verify_jwe(const json_t *jwe, const uint8_t *nonce, size_t nonce_len,
                                  const EVP_PKEY *tee_pubkey, const EVP_PKEY *expected_kbs_key,
                                  EVP_PKEY **kbs_pubkey_out, vtpmca_diag *diag);

#endif
