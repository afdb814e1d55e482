/* The service master key and the wrapping of persistence keys under it (AES-256-GCM).
 * The master key lives in a 0600 file, is loaded once, and never appears in logs or errors. */
#ifndef VTPMCA_KEYVAULT_H
#define VTPMCA_KEYVAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

#define KEYVAULT_KEY_MAX 64 /* largest key that can be wrapped */

typedef struct keyvault keyvault;

/* Loads the 32-byte master key from `path`. With create=true a missing file is created with
 * a fresh random key (mode 0600, durable). A file readable or writable by group/others, or of
 * the wrong size, is refused. */
vtpmca_err keyvault_open(const char *path, bool create, keyvault **out, vtpmca_diag *diag);
void keyvault_free(keyvault *vault); /* wipes the key */

/* Wraps a key (1..KEYVAULT_KEY_MAX bytes) for storage or for handing to an instance. The
 * context (e.g. "instance:<id>") is authenticated, so a blob only unwraps for the same
 * context. Blob layout is versioned (see docs/protocol.md); *blob is malloc'd. */
vtpmca_err keyvault_wrap(const keyvault *vault, const uint8_t *key, size_t key_len,
                         const char *context, uint8_t **blob, size_t *blob_len, vtpmca_diag *diag);

/* Unwraps into out (out_cap >= KEYVAULT_KEY_MAX is always enough). Any tampering, another
 * context or another master key -> VTPMCA_ERR_CRYPTO; out is wiped on failure. */
vtpmca_err keyvault_unwrap(const keyvault *vault, const uint8_t *blob, size_t blob_len,
                           const char *context, uint8_t *out, size_t out_cap, size_t *out_len,
                           vtpmca_diag *diag);

#endif
