/* An in-process TPM 2.0 on libtpms, for the reference SVSM client and tests: a freshly
 * manufactured TPM or one restored from its permanent state, raw commands, and typed helpers
 * for what an SVSM vTPM does at provisioning (TCG EKs, EK certificates in NV, credential
 * activation for an IAK).
 *
 * ONE TPM PER PROCESS: libtpms keeps the TPM in global state, so only one vtpm may be open at
 * a time; vtpm_open refuses a second one (VTPMCA_ERR_CONFLICT) until vtpm_close. Calls are
 * serialised by an internal lock, so an open vtpm may be shared between threads.
 * NVRAM lives in memory only (libtpms writes no files); vtpm_save_state hands the permanent
 * state to the caller, who keeps it (encrypted) and passes it back to vtpm_open. */
#ifndef VTPMCA_VTPM_H
#define VTPMCA_VTPM_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/tpm2_marshal.h"

typedef struct vtpm vtpm;

/* permanent_state NULL (len 0): a freshly manufactured TPM 2.0 (new random seeds).
 * Otherwise restores that state (same seeds, NV indices and persistent objects); a blob that
 * libtpms rejects gives VTPMCA_ERR_PARSE. libtpms checks the blob's format, not its
 * integrity: that is the caller's (keep it under an AEAD). Then runs
 * TPM2_Startup(TPM_SU_CLEAR); libtpms self-tests each algorithm on first use. */
vtpmca_err vtpm_open(const uint8_t *permanent_state, size_t len, vtpm **out, vtpmca_diag *diag);

/* Terminates libtpms (transient objects and sessions are lost) so another vtpm may be
 * opened. NULL is a no-op. */
void vtpm_close(vtpm *tpm);

/* The permanent state (TPMLIB_STATE_PERMANENT: seeds, hierarchy settings, NV indices,
 * persistent objects) as a malloc'd blob for vtpm_open. Contains the TPM's secrets.
 * Taken from the running TPM like a power loss (no TPM2_Shutdown), so the TPM keeps working.
 * Restoring such a snapshot is a non-orderly startup: if a DA-protected object (noDA clear)
 * was authorised since the last orderly shutdown, the TPM counts one failed try, and after
 * maxTries (3 in libtpms) such reboots those objects are locked out (TPM_RC_LOCKOUT). Use
 * vtpm_shutdown_state at the end of a run. */
vtpmca_err vtpm_save_state(vtpm *tpm, uint8_t **out, size_t *len, vtpmca_diag *diag);

/* Orderly end of a run: TPM2_Shutdown(TPM_SU_CLEAR), then the permanent state as
 * vtpm_save_state gives it. Close the TPM next: commands after a shutdown may clear the
 * orderly flag again (TPM 2.0 rules), and this blob would not reflect them. */
vtpmca_err vtpm_shutdown_state(vtpm *tpm, uint8_t **out, size_t *len, vtpmca_diag *diag);

/* Sends one raw command (at most TPM2_MAX_COMMAND_SIZE bytes) and returns the raw response
 * (malloc'd). The TPM_RC inside the response is the caller's to check. */
vtpmca_err vtpm_transact(vtpm *tpm, const uint8_t *cmd, size_t cmd_len, uint8_t **resp,
                         size_t *resp_len, vtpmca_diag *diag);

/* ---- Typed helpers. They resend a command the TPM answers with TPM_RC_RETRY, YIELDED or
 * TESTING (not executed). A failing TPM command gives a diag naming the command (and NV
 * index) and the TPM_RC in hex; the error code is VTPMCA_ERR_NOT_FOUND for a missing handle
 * or an NV index never written, VTPMCA_ERR_CONFLICT for an NV index that exists,
 * VTPMCA_ERR_LIMIT for TPM memory/size limits and dictionary-attack lockout,
 * VTPMCA_ERR_CRYPTO for failed integrity/authorization checks, VTPMCA_ERR_INTERNAL
 * otherwise. ---- */

/* TPM2_CreatePrimary in `hierarchy` (TPM2_RH_ENDORSEMENT, TPM2_RH_OWNER, TPM2_RH_PLATFORM or
 * TPM2_RH_NULL; empty password session, empty sensitive data) from a TPMT_PUBLIC template.
 * *handle is the new transient object; *tpmt_public (optional, malloc'd) the TPM's outPublic
 * without its TPM2B size. */
vtpmca_err vtpm_create_primary(vtpm *tpm, uint32_t hierarchy, const uint8_t *template_public,
                               size_t template_len, uint32_t *handle, uint8_t **tpmt_public,
                               size_t *tpmt_public_len, vtpmca_diag *diag);

/* Creates the EK of kind from the TCG default template (vtpm_ek_template) in the endorsement
 * hierarchy. tpmt_public/tpmt_public_len and pub are optional (NULL); *pub is the EK public
 * key (caller frees). The same endorsement seed always gives the same EK. */
vtpmca_err vtpm_create_ek(vtpm *tpm, vtpm_ek_kind kind, uint32_t *handle, uint8_t **tpmt_public,
                          size_t *tpmt_public_len, EVP_PKEY **pub, vtpmca_diag *diag);

/* TPM2_ReadPublic: the object's TPMT_PUBLIC (malloc'd) and, if name_out is non-NULL, the
 * name the TPM computed for it. */
vtpmca_err vtpm_read_public(vtpm *tpm, uint32_t handle, uint8_t **tpmt_public, size_t *len,
                            uint8_t name_out[TPM2_NAME_MAX], size_t *name_len, vtpmca_diag *diag);

/* TPM2_FlushContext of a transient object or session; VTPMCA_ERR_NOT_FOUND if not loaded. */
vtpmca_err vtpm_flush(vtpm *tpm, uint32_t handle, vtpmca_diag *diag);

/* The NV attributes vtpm_nv_define_write uses, as swtpm provisions EK certificates:
 * written with platform authorization, readable with platform, owner or the index's own
 * (empty) authorization (`tpm2_nvread 0x01c00002 -C o` works), not DA-protected. */
#define VTPM_NV_CERT_ATTRIBUTES                                                                    \
    (TPMA_NV_PLATFORMCREATE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD | TPMA_NV_PPREAD |              \
     TPMA_NV_PPWRITE | TPMA_NV_NO_DA | TPMA_NV_WRITEDEFINE)
/* The largest index libtpms accepts (MAX_NV_INDEX_SIZE). */
#define VTPM_NV_INDEX_MAX 2048u

/* Defines nv_index (an NV handle, 0x01xxxxxx) with VTPM_NV_CERT_ATTRIBUTES, nameAlg SHA-256
 * and exactly len bytes (1..VTPM_NV_INDEX_MAX), and writes data in chunks of at most
 * TPM2_MAX_NV_BUFFER bytes with platform authorization. An existing index is undefined
 * first. If writing fails after the index was defined, the index is removed again. */
vtpmca_err vtpm_nv_define_write(vtpm *tpm, uint32_t nv_index, const uint8_t *data, size_t len,
                                vtpmca_diag *diag);

/* Reads the whole index (size from TPM2_NV_ReadPublic) with owner authorization, in chunks;
 * *data is malloc'd. VTPMCA_ERR_NOT_FOUND if the index does not exist. */
vtpmca_err vtpm_nv_read(vtpm *tpm, uint32_t nv_index, uint8_t **data, size_t *len,
                        vtpmca_diag *diag);

/* TPM2_NV_ReadPublic: the index's TPMA_NV attributes and data size (either may be NULL). */
vtpmca_err vtpm_nv_read_public(vtpm *tpm, uint32_t nv_index, uint32_t *attributes,
                               size_t *data_size, vtpmca_diag *diag);

/* Removes nv_index (platform authorization for a TPMA_NV_PLATFORMCREATE index, else owner).
 * VTPMCA_ERR_NOT_FOUND if it does not exist. */
vtpmca_err vtpm_nv_undefine(vtpm *tpm, uint32_t nv_index, vtpmca_diag *diag);

/* TPM2_ActivateCredential: recovers the credential a CA made with TPM2_MakeCredential for
 * the object activate_handle (e.g. an IAK) against the EK ek_handle.
 *   credential_blob: the TPM2B_ID_OBJECT contents (integrityHMAC TPM2B || encIdentity),
 *   secret:          the TPM2B_ENCRYPTED_SECRET contents (RSA-OAEP ciphertext or an ECC
 *                    point), both without their own TPM2B size.
 * The EK is authorised with a policy session in its nameAlg: PolicySecret(TPM_RH_ENDORSEMENT)
 * with the empty endorsement authorization (PolicyA), followed by PolicyOR(PolicyA, PolicyC)
 * when the EK's authPolicy is PolicyB_SHA384 (H-3); other EK policies are UNSUPPORTED. The
 * activated object's admin role uses its (empty) authValue in a password session, so its
 * template must have adminWithPolicy clear. *cert_info (malloc'd) is the credential. A blob
 * made for another object or EK fails with VTPMCA_ERR_CRYPTO. */
vtpmca_err vtpm_activate_credential(vtpm *tpm, uint32_t activate_handle, uint32_t ek_handle,
                                    const uint8_t *credential_blob, size_t credential_blob_len,
                                    const uint8_t *secret, size_t secret_len, uint8_t **cert_info,
                                    size_t *cert_info_len, vtpmca_diag *diag);

/* TPM2_MakeCredential done by this TPM with the public part of the loaded key handle (a
 * reference for checking a CA's own MakeCredential): outputs in the format
 * vtpm_activate_credential takes (both malloc'd). credential is 1..64 bytes. */
vtpmca_err vtpm_make_credential(vtpm *tpm, uint32_t handle, const uint8_t *credential,
                                size_t credential_len, const uint8_t *object_name,
                                size_t object_name_len, uint8_t **credential_blob,
                                size_t *credential_blob_len, uint8_t **secret, size_t *secret_len,
                                vtpmca_diag *diag);

#endif
