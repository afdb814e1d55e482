/* The reference SVSM client's encrypted vTPM state file; layout in include/vtpmca/svsm_state.h
 * and docs/svsm-sim.md. */
#include "vtpmca/svsm_state.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "vtpmca/fileio.h"
#include "vtpmca/ledger.h"

#define MAGIC_OFF 0
#define VERSION_OFF (MAGIC_OFF + SVSM_STATE_MAGIC_LEN)
#define COUNTER_OFF (VERSION_OFF + 4)
#define IV_OFF (COUNTER_OFF + SVSM_STATE_COUNTER_LEN)
/* The plaintext holds at least the EK fingerprint and one byte of libtpms state. */
#define MIN_PLAINTEXT (SVSM_STATE_EK_FINGERPRINT_LEN + 1)
#define MIN_FILE (SVSM_STATE_HEADER_LEN + MIN_PLAINTEXT + SVSM_STATE_TAG_LEN)
#define PERSISTENCE_KEY_MAX 64

_Static_assert(SVSM_STATE_COUNTER_LEN == LEDGER_COUNTER_LEN, "the ledger records this counter");

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "%s", what);
    vtpmca_diag_append_openssl(diag);
    return err;
}

vtpmca_err svsm_state_derive_key(const uint8_t *persistence_key, size_t persistence_key_len,
                                 uint8_t key_out[SVSM_STATE_KEY_LEN], vtpmca_diag *diag)
{
    if (persistence_key == NULL || key_out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "state key: missing argument");
    if (persistence_key_len == 0 || persistence_key_len > PERSISTENCE_KEY_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "state key: the persistence key must be 1..%d bytes, got %zu",
                           PERSISTENCE_KEY_MAX, persistence_key_len);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "HKDF is not available");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)persistence_key,
                                          persistence_key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)SVSM_STATE_KDF_INFO,
                                          strlen(SVSM_STATE_KDF_INFO)),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, key_out, SVSM_STATE_KEY_LEN, params) == 1;
    EVP_KDF_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(key_out, SVSM_STATE_KEY_LEN);
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "HKDF failed");
    }
    return VTPMCA_OK;
}

void svsm_state_content_clear(svsm_state_content *content)
{
    if (content == NULL)
        return;
    if (content->tpm_state != NULL) {
        OPENSSL_cleanse(content->tpm_state, content->tpm_state_len);
        free(content->tpm_state);
    }
    memset(content, 0, sizeof(*content));
}

static vtpmca_err file_root(const uint8_t *file, size_t len, uint8_t root[SVSM_STATE_ROOT_LEN],
                            vtpmca_diag *diag)
{
    unsigned int md_len = 0;
    if (EVP_Digest(file, len, root, &md_len, EVP_sha256(), NULL) != 1 ||
        md_len != SVSM_STATE_ROOT_LEN)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-256 failed");
    return VTPMCA_OK;
}

static bool file_exists(const char *path, vtpmca_diag *diag, vtpmca_err *err)
{
    struct stat st;
    *err = VTPMCA_OK;
    if (stat(path, &st) == 0)
        return true;
    if (errno != ENOENT)
        *err = vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    return false;
}

/* Checks magic and version; the length must already be at least MIN_FILE. */
static vtpmca_err check_header(const uint8_t *file, const char *path, vtpmca_diag *diag)
{
    if (memcmp(file + MAGIC_OFF, SVSM_STATE_MAGIC, SVSM_STATE_MAGIC_LEN) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s is not a vTPM state file (bad magic)", path);
    uint32_t version = (uint32_t)file[VERSION_OFF] << 24 | (uint32_t)file[VERSION_OFF + 1] << 16 |
                       (uint32_t)file[VERSION_OFF + 2] << 8 | file[VERSION_OFF + 3];
    if (version != SVSM_STATE_VERSION)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "%s has state format version %u; this build reads version %u", path,
                           version, SVSM_STATE_VERSION);
    return VTPMCA_OK;
}

/* Reads the file and checks its framing. A missing file is VTPMCA_ERR_NOT_FOUND. */
static vtpmca_err load_file(const char *path, uint8_t **file, size_t *len, vtpmca_diag *diag)
{
    vtpmca_err err;
    if (!file_exists(path, diag, &err))
        return err != VTPMCA_OK
                   ? err
                   : vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "%s does not exist", path);
    err = vt_file_read(path, SVSM_STATE_FILE_MAX, file, len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (*len < MIN_FILE)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "%s is truncated: %zu bytes, a state file has at least %d", path, *len,
                          MIN_FILE);
    else
        err = check_header(*file, path, diag);
    if (err != VTPMCA_OK) {
        free(*file);
        *file = NULL;
    }
    return err;
}

vtpmca_err svsm_state_read(const char *path, const uint8_t key[SVSM_STATE_KEY_LEN],
                           svsm_state_content *content, svsm_state_version *version,
                           vtpmca_diag *diag)
{
    if (path == NULL || key == NULL || content == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "state read: missing argument");
    memset(content, 0, sizeof(*content));
    uint8_t *file = NULL, *plain = NULL;
    size_t len = 0;
    vtpmca_err err = load_file(path, &file, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t cipher_len = len - SVSM_STATE_HEADER_LEN - SVSM_STATE_TAG_LEN;
    const uint8_t *cipher = file + SVSM_STATE_HEADER_LEN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    plain = malloc(cipher_len);
    int out_len = 0, final_len = 0;
    if (ctx == NULL || plain == NULL) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SVSM_STATE_IV_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, file + IV_OFF) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &out_len, file, SVSM_STATE_HEADER_LEN) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &out_len, cipher, (int)cipher_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SVSM_STATE_TAG_LEN,
                            file + len - SVSM_STATE_TAG_LEN) != 1) {
        err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "AES-256-GCM setup failed");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, plain + out_len, &final_len) != 1) {
        ERR_clear_error(); /* the diag says why; keep the queue clean for later calls */
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                          "%s does not authenticate: wrong persistence key or modified file", path);
        goto out;
    }
    content->tpm_state_len = cipher_len - SVSM_STATE_EK_FINGERPRINT_LEN;
    content->tpm_state = malloc(content->tpm_state_len);
    if (content->tpm_state == NULL) {
        err = VTPMCA_ERR_NOMEM;
        goto out;
    }
    memcpy(content->ek_fingerprint, plain, SVSM_STATE_EK_FINGERPRINT_LEN);
    memcpy(content->tpm_state, plain + SVSM_STATE_EK_FINGERPRINT_LEN, content->tpm_state_len);
    if (version != NULL) {
        memcpy(version->counter, file + COUNTER_OFF, SVSM_STATE_COUNTER_LEN);
        err = file_root(file, len, version->root, diag);
    }
out:
    if (err != VTPMCA_OK)
        svsm_state_content_clear(content);
    EVP_CIPHER_CTX_free(ctx);
    if (plain != NULL) {
        OPENSSL_cleanse(plain, cipher_len);
        free(plain);
    }
    free(file);
    return err;
}

/* The counter the next write gets: random for a new file, previous + 1 for an update whose
 * file is still exactly `previous`. */
static vtpmca_err next_counter(const char *path, const svsm_state_version *previous,
                               uint8_t counter[SVSM_STATE_COUNTER_LEN], vtpmca_diag *diag)
{
    vtpmca_err err;
    if (previous == NULL) {
        if (file_exists(path, diag, &err))
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "%s exists already; refusing to replace it with a new state", path);
        if (err != VTPMCA_OK)
            return err;
        if (RAND_bytes(counter, SVSM_STATE_COUNTER_LEN) != 1)
            return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "random counter failed");
        return VTPMCA_OK;
    }
    uint8_t *file = NULL;
    size_t len = 0;
    err = load_file(path, &file, &len, diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "%s was removed since it was read", path);
    if (err != VTPMCA_OK)
        return err;
    uint8_t root[SVSM_STATE_ROOT_LEN];
    err = file_root(file, len, root, diag);
    if (err == VTPMCA_OK &&
        (memcmp(file + COUNTER_OFF, previous->counter, SVSM_STATE_COUNTER_LEN) != 0 ||
         CRYPTO_memcmp(root, previous->root, SVSM_STATE_ROOT_LEN) != 0))
        err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                          "%s changed since it was read (another writer?)", path);
    free(file);
    if (err != VTPMCA_OK)
        return err;
    memcpy(counter, previous->counter, SVSM_STATE_COUNTER_LEN);
    return ledger_counter_increment(counter);
}

/* Builds header || ciphertext || tag into file (of the exact size). */
static vtpmca_err seal(const uint8_t key[SVSM_STATE_KEY_LEN],
                       const uint8_t counter[SVSM_STATE_COUNTER_LEN],
                       const svsm_state_content *content, uint8_t *file, size_t len,
                       vtpmca_diag *diag)
{
    memcpy(file + MAGIC_OFF, SVSM_STATE_MAGIC, SVSM_STATE_MAGIC_LEN);
    file[VERSION_OFF] = (uint8_t)(SVSM_STATE_VERSION >> 24);
    file[VERSION_OFF + 1] = (uint8_t)(SVSM_STATE_VERSION >> 16);
    file[VERSION_OFF + 2] = (uint8_t)(SVSM_STATE_VERSION >> 8);
    file[VERSION_OFF + 3] = (uint8_t)SVSM_STATE_VERSION;
    memcpy(file + COUNTER_OFF, counter, SVSM_STATE_COUNTER_LEN);
    if (RAND_bytes(file + IV_OFF, SVSM_STATE_IV_LEN) != 1)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "random IV failed");
    uint8_t *cipher = file + SVSM_STATE_HEADER_LEN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0, n3 = 0;
    int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SVSM_STATE_IV_LEN, NULL) == 1 &&
             EVP_EncryptInit_ex(ctx, NULL, NULL, key, file + IV_OFF) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &n1, file, SVSM_STATE_HEADER_LEN) == 1 &&
             EVP_EncryptUpdate(ctx, cipher, &n1, content->ek_fingerprint,
                               SVSM_STATE_EK_FINGERPRINT_LEN) == 1 &&
             EVP_EncryptUpdate(ctx, cipher + n1, &n2, content->tpm_state,
                               (int)content->tpm_state_len) == 1 &&
             EVP_EncryptFinal_ex(ctx, cipher + n1 + n2, &n3) == 1 &&
             (size_t)(n1 + n2 + n3) == len - SVSM_STATE_HEADER_LEN - SVSM_STATE_TAG_LEN &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SVSM_STATE_TAG_LEN,
                                 file + len - SVSM_STATE_TAG_LEN) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? VTPMCA_OK : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "AES-256-GCM failed");
}

vtpmca_err svsm_state_write(const char *path, const uint8_t key[SVSM_STATE_KEY_LEN],
                            const svsm_state_content *content, const svsm_state_version *previous,
                            svsm_state_commit_hook hook, void *hook_ctx,
                            svsm_state_version *written, vtpmca_diag *diag)
{
    if (path == NULL || key == NULL || content == NULL || content->tpm_state == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "state write: missing argument");
    if (content->tpm_state_len == 0 || content->tpm_state_len > SVSM_STATE_TPM_STATE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "state write: the TPM state must be 1..%u bytes, got %zu",
                           SVSM_STATE_TPM_STATE_MAX, content->tpm_state_len);
    svsm_state_version next;
    vtpmca_err err = next_counter(path, previous, next.counter, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t len = SVSM_STATE_HEADER_LEN + SVSM_STATE_EK_FINGERPRINT_LEN + content->tpm_state_len +
                 SVSM_STATE_TAG_LEN;
    uint8_t *file = malloc(len);
    if (file == NULL)
        return VTPMCA_ERR_NOMEM;
    err = seal(key, next.counter, content, file, len, diag);
    if (err == VTPMCA_OK)
        err = file_root(file, len, next.root, diag);
    if (err == VTPMCA_OK && hook != NULL)
        err = hook(&next, hook_ctx, diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(path, file, len, 0600, diag);
    free(file); /* ciphertext only: nothing to wipe */
    if (err == VTPMCA_OK && written != NULL)
        *written = next;
    return err;
}
