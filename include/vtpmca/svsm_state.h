/* The reference SVSM client's vTPM state file (docs/svsm-sim.md, "The state file"): the
 * libtpms permanent state and the EK fingerprint, encrypted and authenticated with
 * AES-256-GCM under a key derived from the released persistence key, with a 128-bit update
 * counter and a 32-byte root that stand in for CocoonFs's (a later rollback ledger records
 * (counter, root) before each write).
 *
 *   offset size  field
 *   0      8     magic "SVSMVTPM"
 *   8      4     format version, u32 big-endian (1)
 *   12     16    update counter, u128 big-endian
 *   28     12    AES-GCM IV (random for every write)
 *   40     n     AES-256-GCM ciphertext of: EK fingerprint (32) || libtpms permanent state
 *   40+n   16    AES-GCM tag
 * AAD = bytes 0..39 (everything before the ciphertext). root = SHA-256 of the whole file
 * (header || ciphertext || tag). */
#ifndef VTPMCA_SVSM_STATE_H
#define VTPMCA_SVSM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

#define SVSM_STATE_MAGIC "SVSMVTPM"
#define SVSM_STATE_MAGIC_LEN 8
#define SVSM_STATE_VERSION 1u
#define SVSM_STATE_COUNTER_LEN 16
#define SVSM_STATE_IV_LEN 12
#define SVSM_STATE_TAG_LEN 16
#define SVSM_STATE_HEADER_LEN                                                                      \
    (SVSM_STATE_MAGIC_LEN + 4 + SVSM_STATE_COUNTER_LEN + SVSM_STATE_IV_LEN)
#define SVSM_STATE_ROOT_LEN 32
#define SVSM_STATE_KEY_LEN 32
#define SVSM_STATE_EK_FINGERPRINT_LEN 32
/* Largest libtpms state accepted (its permanent state is tens of KiB). */
#define SVSM_STATE_TPM_STATE_MAX (4u * 1024 * 1024)
#define SVSM_STATE_FILE_MAX                                                                        \
    (SVSM_STATE_HEADER_LEN + SVSM_STATE_EK_FINGERPRINT_LEN + SVSM_STATE_TPM_STATE_MAX +            \
     SVSM_STATE_TAG_LEN)
/* HKDF-SHA256 info that derives the file key from the persistence key. */
#define SVSM_STATE_KDF_INFO "vtpmca svsm-sim vtpm-state v1"

/* What the file protects. */
typedef struct {
    uint8_t ek_fingerprint[SVSM_STATE_EK_FINGERPRINT_LEN]; /* SHA-256 of the EK's DER SPKI */
    uint8_t *tpm_state; /* libtpms permanent state (malloc'd when read) */
    size_t tpm_state_len;
} svsm_state_content;

/* Identifies one version of the file: what a rollback ledger records. */
typedef struct {
    uint8_t counter[SVSM_STATE_COUNTER_LEN]; /* big-endian */
    uint8_t root[SVSM_STATE_ROOT_LEN];       /* SHA-256 of the whole file */
} svsm_state_version;

/* The file key: HKDF-SHA256 (RFC 5869, no salt, info SVSM_STATE_KDF_INFO) of the released
 * persistence key (1..64 bytes), 32 bytes of output. */
vtpmca_err svsm_state_derive_key(const uint8_t *persistence_key, size_t persistence_key_len,
                                 uint8_t key_out[SVSM_STATE_KEY_LEN], vtpmca_diag *diag);

/* Reads and decrypts the file. *content receives a copy the caller releases with
 * svsm_state_content_clear; *version (may be NULL) the file's counter and root.
 * A missing file -> VTPMCA_ERR_NOT_FOUND; too short, bad magic or a content too short for the
 * EK fingerprint -> VTPMCA_ERR_PARSE; another format version -> VTPMCA_ERR_UNSUPPORTED;
 * a wrong key or any modified byte of counter, IV, ciphertext or tag -> VTPMCA_ERR_CRYPTO. */
vtpmca_err svsm_state_read(const char *path, const uint8_t key[SVSM_STATE_KEY_LEN],
                           svsm_state_content *content, svsm_state_version *version,
                           vtpmca_diag *diag);

/* Runs after the new file's (counter, root) are known and before anything is written: a
 * rollback ledger records them here. A result other than VTPMCA_OK aborts the write and is
 * returned by svsm_state_write (the file is unchanged). */
typedef vtpmca_err (*svsm_state_commit_hook)(const svsm_state_version *next, void *hook_ctx,
                                             vtpmca_diag *diag);

/* Encrypts content (tpm_state 1..SVSM_STATE_TPM_STATE_MAX bytes) with a fresh IV and writes
 * the file atomically and durably with mode 0600.
 * previous NULL: creates the file, which must not exist yet (else VTPMCA_ERR_CONFLICT); the
 *   counter starts at a random 128-bit value.
 * previous non-NULL: replaces the file, which must still be exactly that version (same
 *   counter and root, else VTPMCA_ERR_CONFLICT: someone else wrote it); the counter becomes
 *   previous->counter + 1 modulo 2^128 (ledger_counter_increment, the rollback ledger's own
 *   counter arithmetic).
 * hook (may be NULL) runs between computing the new version and the write. *written (may be
 * NULL) receives the new version. */
vtpmca_err svsm_state_write(const char *path, const uint8_t key[SVSM_STATE_KEY_LEN],
                            const svsm_state_content *content, const svsm_state_version *previous,
                            svsm_state_commit_hook hook, void *hook_ctx,
                            svsm_state_version *written, vtpmca_diag *diag);

/* Wipes and frees the tpm_state of content and clears the fingerprint (NULL is a no-op). */
void svsm_state_content_clear(svsm_state_content *content);

#endif
