/* JWE key wrapping for KBS resource responses: RFC 7516 flattened JSON serialization with
 * RFC 7518 "ECDH-ES+A256KW" (EC P-256/P-384/P-521 recipients) or "RSA-OAEP-256" (RSA
 * recipients) and "A256GCM" content encryption, in the exact shape the SVSM host proxy
 * (aproxy) parses. Also JWK <-> EVP_PKEY conversion for public keys. */
#ifndef VTPMCA_JWE_H
#define VTPMCA_JWE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"

/* Largest secret jwe_finish encrypts (the persistence key is 32 bytes). */
#define JWE_MAX_SECRET 4096
/* Largest uncompressed SEC1 point (P-521: 0x04 || X || Y, 66-byte coordinates). */
#define JWE_EC_POINT_MAX 133
/* RSA recipient modulus bounds, in bits. */
#define JWE_RSA_MIN_BITS 2048
#define JWE_RSA_MAX_BITS 8192

typedef enum {
    JWE_ALG_ECDH_ES_A256KW = 1, /* "ECDH-ES+A256KW" */
    JWE_ALG_RSA_OAEP_256,       /* "RSA-OAEP-256" (OAEP, SHA-256, MGF1-SHA-256) */
} jwe_alg;

/* How a JWK's members are encoded. */
typedef enum {
    /* RFC 7517/7518: "kty" and "crv" required, base64url without padding. */
    JWE_JWK_RFC7517 = 0,
    /* The SVSM's AttestationRequest "key": {"x","y"} in standard base64 with padding.
     * "kty"/"crv" may be absent, which means EC P-521; RSA keys are not expressible. */
    JWE_JWK_SVSM,
} jwe_jwk_format;

/* Strict JOSE base64url (RFC 7515 section 2): url alphabet, no padding, zero trailing
 * bits. Decodes into a malloc'd buffer. */
vtpmca_err jwe_b64url_decode(const char *text, size_t text_len, uint8_t **out, size_t *out_len);

/* Imports a public key from a JWK: {"kty":"EC","crv":"P-256|P-384|P-521","x","y"} with
 * fixed-length coordinates of a point on the curve (OpenSSL's point decoding: coordinates
 * below p, on the curve), or
 * {"kty":"RSA","n","e"} with minimal big-endian encodings, n odd and JWE_RSA_MIN_BITS ..
 * JWE_RSA_MAX_BITS, e odd and > 1. Members that carry private key material ("d") are
 * refused; other members ("alg", "use", "kid") are ignored. */
vtpmca_err jwe_pubkey_from_jwk(const json_t *jwk, jwe_jwk_format format, EVP_PKEY **out,
                               vtpmca_diag *diag);

/* jwe_pubkey_from_jwk that also returns, for EC keys, the uncompressed SEC1 point it
 * imported (*point_len 0 for RSA), so callers need not encode the key again. point and
 * point_len are both NULL or both set. */
vtpmca_err jwe_pubkey_from_jwk_point(const json_t *jwk, jwe_jwk_format format, EVP_PKEY **out,
                                     uint8_t point[JWE_EC_POINT_MAX], size_t *point_len,
                                     vtpmca_diag *diag);

/* The JWK of an uncompressed P-256/P-384/P-521 point (as jwe_pubkey_to_jwk writes it for the
 * key), without an EVP_PKEY. The point is not validated: pass points of imported keys. */
vtpmca_err jwe_ec_jwk_from_point(const uint8_t *point, size_t point_len, jwe_jwk_format format,
                                 json_t **out, vtpmca_diag *diag);

/* Exports the public part of an EC (P-256/P-384/P-521) or RSA key as a JWK with members
 * sorted as RFC 7638 orders them: {"crv","kty","x","y"} or {"e","kty","n"}. With
 * JWE_JWK_SVSM only {"x","y"} of an EC key, standard base64 with padding. */
vtpmca_err jwe_pubkey_to_jwk(const EVP_PKEY *key, jwe_jwk_format format, json_t **out,
                             vtpmca_diag *diag);

/* The RFC 7518 curve name ("P-256", "P-384", "P-521") of an EC key on a supported curve;
 * NULL for other keys (including NULL). */
const char *jwe_ec_curve_name(const EVP_PKEY *key);

/* The RFC 7518 curve name of an uncompressed SEC1 point (0x04 || X || Y) of a supported curve,
 * told by its length; NULL for anything else (including NULL). Not a validation of the point. */
const char *jwe_ec_point_curve_name(const uint8_t *point, size_t len);

/* Writes the uncompressed SEC1 encoding 0x04 || X || Y (coordinates left-padded to the
 * field size) of an EC P-256/P-384/P-521 public key; out holds JWE_EC_POINT_MAX bytes. */
vtpmca_err jwe_ec_point_encode(const EVP_PKEY *key, uint8_t out[JWE_EC_POINT_MAX], size_t *out_len,
                               vtpmca_diag *diag);

/* Two-step encryption, so the caller can sign the ephemeral key (KBS binding) and put the
 * signature into the unprotected header before the JWE is assembled:
 *   jwe_prepare(tee_key, &ctx, d);  sign jwe_ctx_epk(ctx);  jwe_finish(ctx, ...);
 * jwe_prepare generates the ephemeral key, the random CEK and the encrypted_key. */
typedef struct jwe_ctx jwe_ctx;

/* recipient: EC P-256/P-384/P-521 or RSA public key (private parts are not used). */
vtpmca_err jwe_prepare(const EVP_PKEY *recipient, jwe_ctx **out, vtpmca_diag *diag);

jwe_alg jwe_ctx_alg(const jwe_ctx *ctx);

/* The ephemeral public key ("epk"), owned by ctx; NULL for RSA recipients. */
const EVP_PKEY *jwe_ctx_epk(const jwe_ctx *ctx);

/* The epk's uncompressed SEC1 point (*len bytes), owned by ctx; NULL for RSA recipients. */
const uint8_t *jwe_ctx_epk_point(const jwe_ctx *ctx, size_t *len);

/* The "protected" member (base64url of the protected header), owned by ctx. */
const char *jwe_ctx_protected(const jwe_ctx *ctx);

/* Name of the flattened JWE's unprotected header member. */
#define JWE_UNPROTECTED_HEADER "header"

/* Encrypts secret (1..JWE_MAX_SECRET bytes) and returns the flattened JWE
 * {"protected","encrypted_key","iv","ciphertext","tag"[,"header"]}. unprotected_header,
 * when non-NULL, must be a JSON object; the JWE takes its own reference to it. A context
 * encrypts exactly one secret: a second call fails with VTPMCA_ERR_INVALID_ARG. */
vtpmca_err jwe_finish(jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                      json_t *unprotected_header, json_t **out, vtpmca_diag *diag);

/* jwe_finish writing the same JWE as compact JSON text (what json_dumps of jwe_finish's answer
 * would give), for answers sent as they are. unprotected_header, when non-NULL, is the
 * compact text of a JSON object without "alg", "enc" and "epk" (e.g. from
 * kbs_binding_sign_points_text); it is copied in unparsed, so only its braces are checked.
 * *out (malloc'd, NUL-terminated) holds *out_len bytes. */
vtpmca_err jwe_finish_text(jwe_ctx *ctx, const uint8_t *secret, size_t secret_len,
                           const char *unprotected_header, char **out, size_t *out_len,
                           vtpmca_diag *diag);

/* Frees ctx and wipes the CEK (NULL is a no-op). */
void jwe_ctx_free(jwe_ctx *ctx);

/* jwe_prepare + jwe_finish for callers that need no binding. */
vtpmca_err jwe_encrypt(const EVP_PKEY *recipient, const uint8_t *secret, size_t secret_len,
                       json_t *unprotected_header, json_t **out, vtpmca_diag *diag);

/* Decrypts a flattened JWE made for recipient (the private key): the members must be
 * exactly those jwe_finish writes, base64url without padding, and the protected header
 * byte-for-byte the canonical one for the key's type and curve. The secret goes to out
 * (out_size >= JWE_MAX_SECRET is always enough). Malformed input -> VTPMCA_ERR_PARSE;
 * wrong key, tampering or a bad tag -> VTPMCA_ERR_CRYPTO. out is wiped on failure. */
vtpmca_err jwe_decrypt(const EVP_PKEY *recipient, const json_t *jwe, uint8_t *out, size_t out_size,
                       size_t *out_len, vtpmca_diag *diag);

/* Validates the JWE's "protected" member and returns its algorithm and, for
 * ECDH-ES+A256KW, the ephemeral public key (*epk is NULL for RSA-OAEP-256). */
vtpmca_err jwe_get_epk(const json_t *jwe, jwe_alg *alg, EVP_PKEY **epk, vtpmca_diag *diag);

/* RFC 7518 section 4.6.2 Concat KDF (NIST SP 800-56A single-step KDF, SHA-256):
 * OtherInfo = u32be(len) alg_id || u32be(len) apu || u32be(len) apv || u32be(out_len*8).
 * Exposed for the RFC 7518 appendix C test vector. */
vtpmca_err jwe_concat_kdf(const uint8_t *z, size_t z_len, const char *alg_id, const uint8_t *apu,
                          size_t apu_len, const uint8_t *apv, size_t apv_len, uint8_t *out,
                          size_t out_len, vtpmca_diag *diag);

/* RFC 3394 AES-256 key wrap: in_len is a multiple of 8 and >= 16; the output is
 * in_len + 8 bytes. Unwrap fails with VTPMCA_ERR_CRYPTO when the integrity check fails. */
vtpmca_err jwe_aes256_kw_wrap(const uint8_t kek[32], const uint8_t *in, size_t in_len, uint8_t *out,
                              size_t out_size, size_t *out_len, vtpmca_diag *diag);
vtpmca_err jwe_aes256_kw_unwrap(const uint8_t kek[32], const uint8_t *in, size_t in_len,
                                uint8_t *out, size_t out_size, size_t *out_len, vtpmca_diag *diag);

#endif
