/* Checks of the TPM public areas the CA certifies (docs/protocol.md, "EK/IAK certificate
 * issuance"). Pure functions over TPMT_PUBLIC bytes; nothing here needs a TPM.
 *
 * EK: the TPMT_PUBLIC must be exactly an instance of one TCG EK Credential Profile default
 * template (vtpm_ek_template): L-1 (RSA-2048), L-2 (ECC NIST P-256) or H-3 (ECC NIST P-384).
 * Every field equals the template's -- type, nameAlg, objectAttributes, authPolicy, symmetric
 * (AES-CFB of the template's size), scheme and KDF (NULL), RSA keyBits and exponent (0), curve
 * -- except `unique`, which must hold a valid public key at the full key size (256-byte
 * modulus; x and y of 32 or 48 bytes on the curve). So the EK's name is that of a key a
 * verifier would recreate with TPM2_CreatePrimary from the default template.
 *
 * IAK: a minimal check of "TPM 2.0 Keys for Device Identity and Attestation" (TCG), enough to
 * know the key is a TPM-resident attestation key: a restricted signing key (restricted and
 * sign set, decrypt clear) that cannot leave its TPM (fixedTPM, fixedParent) and was made
 * inside it (sensitiveDataOrigin); RSA-2048 (exponent 65537) with RSASSA or RSAPSS, or ECC
 * P-256/P-384 with ECDSA; scheme hash and nameAlg SHA-256, SHA-384 or SHA-512; symmetric and
 * KDF NULL; a valid full-size key. Authorization attributes (userWithAuth, adminWithPolicy,
 * noDA, stClear) and the authPolicy are not checked: they govern use inside the TPM, not what
 * the certificate asserts.
 *
 * Errors: malformed bytes -> VTPMCA_ERR_PARSE (also a unique that is no valid key);
 * well-formed areas that are not an accepted template -> VTPMCA_ERR_UNSUPPORTED. The diag
 * names the first field that differs, with the expected and the found value. */
#ifndef VTPMCA_EK_TEMPLATE_H
#define VTPMCA_EK_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/tpm2_marshal.h"

/* "L-1 (RSA-2048)", "L-2 (ECC P-256)", "H-3 (ECC P-384)"; NULL for other values. */
const char *ek_template_name(vtpm_ek_kind kind);

/* Checks an EK TPMT_PUBLIC (no TPM2B size in front); *kind (may be NULL) tells which default
 * template it instantiates. */
vtpmca_err ek_template_check_ek(const uint8_t *tpmt_public, size_t len, vtpm_ek_kind *kind,
                                vtpmca_diag *diag);

/* Checks an IAK TPMT_PUBLIC as described above. */
vtpmca_err ek_template_check_iak(const uint8_t *tpmt_public, size_t len, vtpmca_diag *diag);

#endif
