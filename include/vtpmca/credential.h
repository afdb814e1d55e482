/* TPM2_MakeCredential done by the CA with OpenSSL (TPM 2.0 Library Part 1 section 24
 * "Credential Protection", Part 3 TPM2_MakeCredential), so the CA can ask a TPM to prove that
 * an object (an IAK) lives beside an EK: only the TPM holding the EK's private key can
 * recover the credential, and TPM2_ActivateCredential releases it only for an object with the
 * given name.
 *
 * With the EK's nameAlg H (digest size n bytes) and symmetric algorithm (AES-k-CFB):
 *   seed     RSA EK: n random bytes, RSA-OAEP encrypted to the EK (hash and MGF1 H, label
 *            "IDENTITY\0"): encryptedSecret = the ciphertext.
 *            ECC EK: an ephemeral key pair on the EK's curve; Z = x of (ephemeral private *
 *            EK point); seed = KDFe(H, Z, "IDENTITY", ephemeral x, EK x, 8n bits):
 *            encryptedSecret = the ephemeral point as TPMS_ECC_POINT (TPM2B x || TPM2B y).
 *   symKey   KDFa(H, seed, "STORAGE", objectName, empty, k bits)
 *   encIdentity = AES-k-CFB(symKey, IV = 0, TPM2B_DIGEST credential (u16 size || bytes))
 *   hmacKey  KDFa(H, seed, "INTEGRITY", empty, empty, 8n bits)
 *   outerHMAC = HMAC-H(hmacKey, encIdentity || objectName)
 *   credentialBlob (TPM2B_ID_OBJECT contents) = u16 n || outerHMAC || encIdentity
 * KDFa is SP 800-108 counter-mode HMAC as TPM Part 1 section 11.4.10.2 defines it
 * (OpenSSL's KBKDF in counter mode: i || label || 0x00 || context || L, 32-bit counter and
 * length); KDFe is the SP 800-56A concatenation KDF of Part 1 section 11.4.10.3 (OpenSSL's
 * single-step KDF with a hash: H(i || Z || label || 0x00 || partyU || partyV)). */
#ifndef VTPMCA_CREDENTIAL_H
#define VTPMCA_CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/tpm2_marshal.h"

/* Largest credential (a TPM2B_DIGEST); a credential is also at most the digest size of the
 * EK's nameAlg (TPM2_MakeCredential's rule). */
#define CREDENTIAL_MAX 64

typedef struct {
    uint8_t *blob; /* TPM2B_ID_OBJECT contents (without its own size), malloc'd */
    size_t blob_len;
    uint8_t *secret; /* TPM2B_ENCRYPTED_SECRET contents (without its own size), malloc'd */
    size_t secret_len;
} credential_result;

/* Makes a credential for the object named object_name (nameAlg || digest, as
 * vtpm_object_name gives it) against the EK whose TPMT_PUBLIC is given. The EK must be a
 * restricted decryption key (restricted and decrypt set) with an AES-CFB symmetric
 * algorithm, RSA (2048..4096 bits) or ECC NIST P-256/P-384/P-521, nameAlg SHA-1/256/384/512;
 * otherwise VTPMCA_ERR_UNSUPPORTED (malformed bytes: VTPMCA_ERR_PARSE). credential: 1 ..
 * the digest size of the EK's nameAlg (VTPMCA_ERR_INVALID_ARG otherwise). The outputs are
 * what TPM2_ActivateCredential (vtpm_activate_credential) takes. */
vtpmca_err credential_make(const uint8_t *ek_public, size_t ek_public_len,
                           const uint8_t *credential, size_t credential_len,
                           const uint8_t *object_name, size_t object_name_len,
                           credential_result *out, vtpmca_diag *diag);

/* Frees and clears the result (NULL is a no-op). */
void credential_result_free(credential_result *res);

/* KDFa(hash_alg, key, label, context_u, context_v, 8 * out_len bits): label is a C string
 * (its terminating NUL is part of the input, as the TPM specifies); contexts may be empty
 * (NULL with length 0). out_len 1..8192. */
vtpmca_err credential_kdfa(uint16_t hash_alg, const uint8_t *key, size_t key_len, const char *label,
                           const uint8_t *context_u, size_t context_u_len, const uint8_t *context_v,
                           size_t context_v_len, uint8_t *out, size_t out_len, vtpmca_diag *diag);

/* KDFe(hash_alg, Z, label, party_u, party_v, 8 * out_len bits), label as for KDFa. */
vtpmca_err credential_kdfe(uint16_t hash_alg, const uint8_t *z, size_t z_len, const char *label,
                           const uint8_t *party_u, size_t party_u_len, const uint8_t *party_v,
                           size_t party_v_len, uint8_t *out, size_t out_len, vtpmca_diag *diag);

#endif
