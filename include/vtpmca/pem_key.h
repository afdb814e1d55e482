/* Reading unencrypted PEM private keys from files, shared by the KBS key and the CA keys. */
#ifndef VTPMCA_PEM_KEY_H
#define VTPMCA_PEM_KEY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "vtpmca/err.h"

/* An OpenSSL pem_password_cb that never prompts: the service runs unattended, so an
 * encrypted PEM simply fails to load. */
int vt_pem_no_passphrase(char *buf, int size, int rwflag, void *u);

/* Reads the file at `path` (at most max_len bytes) and parses one unencrypted PEM private key
 * into *out. The file text is wiped before it is freed. A file that holds no such key gives
 * VTPMCA_ERR_PARSE with "<prefix><path> is not an unencrypted PEM private key" (prefix may be
 * NULL) and leaves the OpenSSL error queue clean. */
vtpmca_err vt_pem_private_key_read(const char *path, size_t max_len, const char *prefix,
                                   EVP_PKEY **out, vtpmca_diag *diag);

#endif
