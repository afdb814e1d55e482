#include "vtpmca/pem_key.h"

#include <stdint.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "vtpmca/fileio.h"

int vt_pem_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

vtpmca_err vt_pem_private_key_read(const char *path, size_t max_len, const char *prefix,
                                   EVP_PKEY **out, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "pem key read: missing argument");
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    vtpmca_err err = vt_file_read(path, max_len, &pem, &pem_len, diag);
    if (err != VTPMCA_OK)
        return err;
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *key =
        bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, vt_pem_no_passphrase, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem, pem_len);
    free(pem);
    if (key == NULL) {
        ERR_clear_error(); /* diag explains it; keep the queue clean for later calls */
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s%s is not an unencrypted PEM private key",
                           prefix != NULL ? prefix : "", path);
    }
    *out = key;
    return VTPMCA_OK;
}
