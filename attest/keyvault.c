/* The service master key and AES-256-GCM wrapping of persistence keys under it.
 * Blob layout (version 1): 0x01 ‖ 12-byte random IV ‖ ciphertext ‖ 16-byte tag, with
 * AAD = "vtpmca-keywrap-v1" ‖ 0x00 ‖ context (see docs/protocol.md). */
#include "vtpmca/keyvault.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vtpmca/fileio.h"
#include "vtpmca/log.h"

#define MASTER_KEY_LEN 32
#define BLOB_VERSION 0x01
#define IV_LEN 12
#define TAG_LEN 16
#define BLOB_OVERHEAD (1 + IV_LEN + TAG_LEN)
#define CONTEXT_MAX 512

static const char AAD_LABEL[] = "vtpmca-keywrap-v1"; /* followed by its NUL in the AAD */

struct keyvault {
    uint8_t key[MASTER_KEY_LEN];
    EVP_CIPHER *aes_gcm; /* fetched once: an implicit fetch per wrap costs a lookup */
};

void keyvault_free(keyvault *vault)
{
    if (vault == NULL)
        return;
    EVP_CIPHER_free(vault->aes_gcm);
    OPENSSL_clear_free(vault, sizeof(*vault));
}

/* Reads the key through one descriptor, so the mode and size checked are those of the file
 * actually read (a symlink, e.g. a mounted secret, is followed). */
static vtpmca_err read_master_key(const char *path, uint8_t key[MASTER_KEY_LEN], vtpmca_diag *diag)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vtpmca_fail(diag, errno == ENOENT ? VTPMCA_ERR_NOT_FOUND : VTPMCA_ERR_IO,
                           "keyvault: cannot open master key file %s: %s", path, strerror(errno));
    vtpmca_err err = VTPMCA_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        err =
            vtpmca_fail(diag, VTPMCA_ERR_IO, "keyvault: cannot stat %s: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "keyvault: master key file %s is not a regular file", path);
    } else if ((sb.st_mode & 077) != 0) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "keyvault: master key file %s has mode 0%03o; it must not be "
                          "accessible to group or others (chmod 600)",
                          path, (unsigned)(sb.st_mode & 0777));
    } else if (sb.st_size != MASTER_KEY_LEN) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "keyvault: master key file %s holds %lld bytes; a master key is "
                          "exactly %d bytes",
                          path, (long long)sb.st_size, MASTER_KEY_LEN);
    }
    size_t got = 0;
    while (err == VTPMCA_OK && got < MASTER_KEY_LEN) {
        ssize_t n = read(fd, key + got, MASTER_KEY_LEN - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_IO, "keyvault: cannot read %s: %s", path,
                              strerror(errno));
        else if (n == 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                              "keyvault: master key file %s shrank while being read", path);
        else
            got += (size_t)n;
    }
    close(fd);
    if (err != VTPMCA_OK)
        OPENSSL_cleanse(key, MASTER_KEY_LEN);
    return err;
}

static vtpmca_err fsync_dir_of(const char *path, vtpmca_diag *diag)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "keyvault: out of memory");
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd < 0 || fsync(dfd) != 0) {
        vtpmca_err err =
            vtpmca_fail(diag, VTPMCA_ERR_IO, "keyvault: cannot sync the directory of %s: %s", path,
                        strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return err;
    }
    close(dfd);
    return VTPMCA_OK;
}

/* Creates the key file unless it exists. The fresh key is written durably under a unique
 * name and then link(2)ed into place, which, unlike rename, never replaces a key another
 * process created meanwhile: every wrapped key in the database depends on that file. The
 * caller then loads whatever the file holds. */
static vtpmca_err create_master_key(const char *path, vtpmca_diag *diag)
{
    uint8_t key[MASTER_KEY_LEN];
    uint8_t suffix[8];
    if (RAND_priv_bytes(key, sizeof(key)) != 1 || RAND_bytes(suffix, sizeof(suffix)) != 1) {
        OPENSSL_cleanse(key, sizeof(key));
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "keyvault: random generator failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (tmp == NULL) {
        OPENSSL_cleanse(key, sizeof(key));
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "keyvault: out of memory");
    }
    snprintf(tmp, tmp_len, "%s.new-%02x%02x%02x%02x%02x%02x%02x%02x", path, suffix[0], suffix[1],
             suffix[2], suffix[3], suffix[4], suffix[5], suffix[6], suffix[7]);
    vtpmca_err err = vt_file_write_atomic(tmp, key, sizeof(key), 0600, diag);
    OPENSSL_cleanse(key, sizeof(key));
    if (err == VTPMCA_OK) {
        if (link(tmp, path) == 0) {
            err = fsync_dir_of(path, diag);
            if (err == VTPMCA_OK)
                vtpmca_log(VTPMCA_LOG_INFO, "keyvault.created", "path", path, NULL);
        } else if (errno != EEXIST) {
            err = vtpmca_fail(diag, VTPMCA_ERR_IO, "keyvault: cannot create %s: %s", path,
                              strerror(errno));
        }
        unlink(tmp);
    }
    free(tmp);
    return err;
}

vtpmca_err keyvault_open(const char *path, bool create, keyvault **out, vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (path == NULL || path[0] == '\0' || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "keyvault: open: missing argument");
    keyvault *vault = OPENSSL_zalloc(sizeof(*vault));
    if (vault == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "keyvault: out of memory");
    vtpmca_err err = read_master_key(path, vault->key, diag);
    if (err == VTPMCA_ERR_NOT_FOUND && create) {
        err = create_master_key(path, diag);
        if (err == VTPMCA_OK)
            err = read_master_key(path, vault->key, diag);
    }
    if (err == VTPMCA_OK) {
        vault->aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        if (vault->aes_gcm == NULL) {
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "keyvault: AES-256-GCM is unavailable");
            vtpmca_diag_append_openssl(diag);
        }
    }
    if (err != VTPMCA_OK) {
        keyvault_free(vault);
        return err;
    }
    *out = vault;
    return VTPMCA_OK;
}

static vtpmca_err check_context(const char *context, vtpmca_diag *diag)
{
    if (context == NULL || context[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "keyvault: empty wrapping context");
    if (strlen(context) > CONTEXT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "keyvault: wrapping context longer than %d bytes", CONTEXT_MAX);
    return VTPMCA_OK;
}

/* One AES-256-GCM pass over `len` bytes. Encrypting writes the tag to `tag`; decrypting
 * checks it and returns false on any mismatch. */
static bool gcm_crypt(const keyvault *vault, bool encrypt, const uint8_t iv[IV_LEN],
                      const char *context, const uint8_t *in, size_t len, uint8_t *out,
                      uint8_t tag[TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, final_n = 0;
    bool ok =
        ctx != NULL && len <= KEYVAULT_KEY_MAX &&
        EVP_CipherInit_ex2(ctx, vault->aes_gcm, vault->key, iv, encrypt ? 1 : 0, NULL) == 1 &&
        EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)AAD_LABEL, sizeof(AAD_LABEL)) == 1 &&
        EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)context, (int)strlen(context)) == 1 &&
        EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1 && (size_t)n == len;
    if (ok && !encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    if (ok)
        ok = EVP_CipherFinal_ex(ctx, out + n, &final_n) == 1 && final_n == 0;
    if (ok && encrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the expanded key schedule */
    return ok;
}

vtpmca_err keyvault_wrap(const keyvault *vault, const uint8_t *key, size_t key_len,
                         const char *context, uint8_t **blob, size_t *blob_len, vtpmca_diag *diag)
{
    if (blob != NULL)
        *blob = NULL;
    if (blob_len != NULL)
        *blob_len = 0;
    if (vault == NULL || key == NULL || blob == NULL || blob_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "keyvault: wrap: missing argument");
    if (key_len == 0 || key_len > KEYVAULT_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "keyvault: a wrapped key must be 1 to %d bytes, got %zu",
                           KEYVAULT_KEY_MAX, key_len);
    vtpmca_err err = check_context(context, diag);
    if (err != VTPMCA_OK)
        return err;

    size_t len = BLOB_OVERHEAD + key_len;
    uint8_t *out = malloc(len);
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "keyvault: out of memory");
    out[0] = BLOB_VERSION;
    uint8_t *iv = out + 1, *ciphertext = out + 1 + IV_LEN, *tag = ciphertext + key_len;
    /* A random 96-bit IV per wrap; NIST SP 800-38D allows 2^32 of them under one key. */
    if (RAND_bytes(iv, IV_LEN) != 1 ||
        !gcm_crypt(vault, true, iv, context, key, key_len, ciphertext, tag)) {
        OPENSSL_clear_free(out, len);
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "keyvault: wrapping failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    *blob = out;
    *blob_len = len;
    return VTPMCA_OK;
}

/* A blob comes from storage or from an instance: its shape is checked, not trusted. */
static vtpmca_err check_blob_shape(const uint8_t *blob, size_t blob_len, size_t out_cap,
                                   vtpmca_diag *diag)
{
    if (blob_len < BLOB_OVERHEAD + 1 || blob_len > BLOB_OVERHEAD + KEYVAULT_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "keyvault: a wrapped key is %d to %d bytes, got %zu", BLOB_OVERHEAD + 1,
                           BLOB_OVERHEAD + KEYVAULT_KEY_MAX, blob_len);
    if (blob[0] != BLOB_VERSION)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "keyvault: unknown wrapped key version 0x%02x (expected 0x%02x)",
                           blob[0], BLOB_VERSION);
    if (out_cap < blob_len - BLOB_OVERHEAD)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "keyvault: unwrap: output holds %zu bytes, the key has %zu", out_cap,
                           blob_len - BLOB_OVERHEAD);
    return VTPMCA_OK;
}

vtpmca_err keyvault_unwrap(const keyvault *vault, const uint8_t *blob, size_t blob_len,
                           const char *context, uint8_t *out, size_t out_cap, size_t *out_len,
                           vtpmca_diag *diag)
{
    if (out_len != NULL)
        *out_len = 0;
    if (vault == NULL || blob == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "keyvault: unwrap: missing argument");
    vtpmca_err err = check_context(context, diag);
    if (err == VTPMCA_OK)
        err = check_blob_shape(blob, blob_len, out_cap, diag);
    size_t key_len = 0;
    if (err == VTPMCA_OK) {
        key_len = blob_len - BLOB_OVERHEAD;
        const uint8_t *iv = blob + 1, *ciphertext = blob + 1 + IV_LEN;
        uint8_t tag[TAG_LEN];
        memcpy(tag, ciphertext + key_len, TAG_LEN);
        if (!gcm_crypt(vault, false, iv, context, ciphertext, key_len, out, tag)) {
            vtpmca_diag_append_openssl(NULL); /* drop whatever OpenSSL queued */
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                              "keyvault: wrapped key does not authenticate (tampered, wrapped "
                              "for another context, or under another master key)");
        }
    }
    if (err != VTPMCA_OK) {
        /* GCM writes plaintext before the tag is checked: leave nothing behind. */
        OPENSSL_cleanse(out, out_cap);
        return err;
    }
    *out_len = key_len;
    return VTPMCA_OK;
}
