/* Unit tests for attest/keyvault.c: the master key file (creation, permissions, size, races)
 * and AES-256-GCM key wrapping (round trips, contexts, tampering, sizes). The blob format of
 * docs/protocol.md is checked independently with OpenSSL's EVP interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/keyvault.h"

static char g_tmp[64];
static unsigned g_counter;

static int group_setup(void **state)
{
    (void)state;
    return ca_fixture_tmpdir(g_tmp, sizeof(g_tmp), "keyvault");
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g_tmp);
}

static void fresh_path(char *path, size_t size)
{
    snprintf(path, size, "%s/master-%u.key", g_tmp, g_counter++);
}

static void write_key_file(const char *path, const uint8_t *key, size_t len, mode_t mode)
{
    assert_int_equal(vt_file_write_atomic(path, key, len, mode, NULL), VTPMCA_OK);
}

static keyvault *open_vault(const char *path, bool create)
{
    keyvault *vault = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = keyvault_open(path, create, &vault, &diag);
    if (err != VTPMCA_OK)
        fail_msg("keyvault_open(%s): %s", path, diag.msg);
    return vault;
}

/* A vault over a known key, so tests can check the format independently. */
static keyvault *vault_with_key(const uint8_t key[32])
{
    char path[128];
    fresh_path(path, sizeof(path));
    write_key_file(path, key, 32, 0600);
    return open_vault(path, false);
}

static void test_create_then_load(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    keyvault *created = open_vault(path, true);

    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 32);
    /* No temporary file is left beside the key. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test $(ls '%s' | grep -c '%s.new') -eq 0", g_tmp,
             strrchr(path, '/') + 1);
    assert_int_equal(system(cmd), 0);

    /* Loading the file again (with or without create) gives the same key. */
    keyvault *loaded = open_vault(path, false);
    keyvault *again = open_vault(path, true);
    const uint8_t secret[32] = {1, 2, 3};
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(
        keyvault_wrap(created, secret, sizeof(secret), "instance:a", &blob, &blob_len, NULL),
        VTPMCA_OK);
    uint8_t out[KEYVAULT_KEY_MAX];
    size_t out_len = 0;
    assert_int_equal(
        keyvault_unwrap(loaded, blob, blob_len, "instance:a", out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    assert_int_equal(out_len, 32);
    assert_memory_equal(out, secret, 32);
    assert_int_equal(
        keyvault_unwrap(again, blob, blob_len, "instance:a", out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    free(blob);
    keyvault_free(created);
    keyvault_free(loaded);
    keyvault_free(again);

    /* Two created vaults have different keys. */
    char other[128];
    fresh_path(other, sizeof(other));
    keyvault *second = open_vault(other, true);
    uint8_t a[32], b[32];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(a, 1, 32, f), 32);
    fclose(f);
    f = fopen(other, "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, 32, f), 32);
    fclose(f);
    assert_memory_not_equal(a, b, 32);
    keyvault_free(second);
}

static void test_missing_without_create(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    keyvault *vault = (keyvault *)&vault; /* must be reset to NULL */
    vtpmca_diag diag = {{0}};
    assert_int_equal(keyvault_open(path, false, &vault, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_null(vault);
    assert_non_null(strstr(diag.msg, path));
    assert_int_equal(access(path, F_OK), -1); /* nothing was created */

    /* create=true in a directory that does not exist: an I/O error, no key. */
    char deep[160];
    snprintf(deep, sizeof(deep), "%s/no/such/dir/master.key", g_tmp);
    assert_int_equal(keyvault_open(deep, true, &vault, &diag), VTPMCA_ERR_IO);
    assert_null(vault);
}

static void test_loose_modes_refused(void **state)
{
    (void)state;
    const uint8_t key[32] = {9};
    const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0660};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char path[128];
        fresh_path(path, sizeof(path));
        write_key_file(path, key, sizeof(key), modes[i]);
        keyvault *vault = NULL;
        vtpmca_diag diag = {{0}};
        assert_int_equal(keyvault_open(path, true, &vault, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_null(vault);
        char expect[16];
        snprintf(expect, sizeof(expect), "0%03o", (unsigned)modes[i]);
        assert_non_null(strstr(diag.msg, expect));
        assert_non_null(strstr(diag.msg, "chmod 600"));
        /* The refused file is left as it was (create=true does not replace it). */
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, modes[i]);
    }
    /* Stricter than 0600 is fine. */
    char path[128];
    fresh_path(path, sizeof(path));
    write_key_file(path, key, sizeof(key), 0400);
    keyvault_free(open_vault(path, false));
}

static void test_wrong_size_refused(void **state)
{
    (void)state;
    uint8_t key[64] = {0};
    const size_t sizes[] = {0, 1, 31, 33, 64};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char path[128];
        fresh_path(path, sizeof(path));
        write_key_file(path, key, sizes[i], 0600);
        keyvault *vault = NULL;
        vtpmca_diag diag = {{0}};
        assert_int_equal(keyvault_open(path, true, &vault, &diag), VTPMCA_ERR_INVALID_ARG);
        assert_null(vault);
        char expect[32];
        snprintf(expect, sizeof(expect), "holds %zu bytes", sizes[i]);
        assert_non_null(strstr(diag.msg, expect));
    }
    /* A directory is not a key file. */
    keyvault *vault = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(keyvault_open(g_tmp, false, &vault, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "not a regular file"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    keyvault *vault = NULL;
    assert_int_equal(keyvault_open(NULL, true, &vault, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_open("", true, &vault, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_open("/tmp/x", true, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    keyvault_free(NULL);

    const uint8_t master[32] = {7};
    vault = vault_with_key(master);
    const uint8_t key[16] = {1};
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(keyvault_wrap(NULL, key, 16, "c", &blob, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_wrap(vault, NULL, 16, "c", &blob, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_wrap(vault, key, 16, NULL, &blob, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_wrap(vault, key, 16, "", &blob, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_wrap(vault, key, 16, "c", NULL, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_wrap(vault, key, 16, "c", &blob, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    char long_context[600];
    memset(long_context, 'x', sizeof(long_context) - 1);
    long_context[sizeof(long_context) - 1] = '\0';
    assert_int_equal(keyvault_wrap(vault, key, 16, long_context, &blob, &blob_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(blob);

    assert_int_equal(keyvault_wrap(vault, key, 16, "c", &blob, &blob_len, NULL), VTPMCA_OK);
    uint8_t out[KEYVAULT_KEY_MAX];
    size_t out_len = 0;
    assert_int_equal(keyvault_unwrap(NULL, blob, blob_len, "c", out, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_unwrap(vault, NULL, blob_len, "c", out, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "", out, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "c", NULL, sizeof(out), &out_len, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "c", out, sizeof(out), NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    /* An output buffer smaller than the key. */
    vtpmca_diag diag = {{0}};
    assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "c", out, 15, &out_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "output holds 15 bytes"));
    assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "c", out, 16, &out_len, NULL),
                     VTPMCA_OK);
    assert_memory_equal(out, key, 16);
    free(blob);
    keyvault_free(vault);
}

static void test_wrap_sizes(void **state)
{
    (void)state;
    const uint8_t master[32] = {1, 1, 1};
    keyvault *vault = vault_with_key(master);
    uint8_t key[KEYVAULT_KEY_MAX + 1];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0xa0 + i);

    const size_t good[] = {1, 16, 32, 63, 64};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        assert_int_equal(keyvault_wrap(vault, key, good[i], "ctx", &blob, &blob_len, NULL),
                         VTPMCA_OK);
        assert_int_equal(blob_len, 1 + 12 + good[i] + 16);
        assert_int_equal(blob[0], 0x01);
        uint8_t out[KEYVAULT_KEY_MAX];
        size_t out_len = 0;
        assert_int_equal(
            keyvault_unwrap(vault, blob, blob_len, "ctx", out, sizeof(out), &out_len, NULL),
            VTPMCA_OK);
        assert_int_equal(out_len, good[i]);
        assert_memory_equal(out, key, good[i]);
        free(blob);
    }
    const size_t bad[] = {0, KEYVAULT_KEY_MAX + 1};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        vtpmca_diag diag = {{0}};
        assert_int_equal(keyvault_wrap(vault, key, bad[i], "ctx", &blob, &blob_len, &diag),
                         VTPMCA_ERR_INVALID_ARG);
        assert_null(blob);
        assert_int_equal(blob_len, 0);
        assert_non_null(strstr(diag.msg, "1 to 64 bytes"));
    }
    keyvault_free(vault);
}

/* The same key wrapped twice gives different blobs (random IV), both valid. */
static void test_wrap_is_randomised(void **state)
{
    (void)state;
    const uint8_t master[32] = {2};
    keyvault *vault = vault_with_key(master);
    const uint8_t key[32] = {5, 6, 7};
    uint8_t *a = NULL, *b = NULL;
    size_t a_len = 0, b_len = 0;
    assert_int_equal(keyvault_wrap(vault, key, 32, "instance:x", &a, &a_len, NULL), VTPMCA_OK);
    assert_int_equal(keyvault_wrap(vault, key, 32, "instance:x", &b, &b_len, NULL), VTPMCA_OK);
    assert_int_equal(a_len, b_len);
    assert_memory_not_equal(a + 1, b + 1, 12);
    assert_memory_not_equal(a + 13, b + 13, 32);
    /* The key never appears in the blob. */
    for (size_t i = 0; i + 32 <= a_len; i++)
        assert_memory_not_equal(a + i, key, 32);
    free(a);
    free(b);
    keyvault_free(vault);
}

/* Another context, another master key, or any tampered byte: CRYPTO, and out is wiped. */
static void test_unwrap_rejections(void **state)
{
    (void)state;
    const uint8_t master[32] = {3, 3};
    uint8_t other_master[32] = {3, 3};
    other_master[31] = 1;
    keyvault *vault = vault_with_key(master);
    keyvault *other = vault_with_key(other_master);
    uint8_t key[32];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 3 + 1);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(keyvault_wrap(vault, key, 32, "instance:alpha", &blob, &blob_len, NULL),
                     VTPMCA_OK);

    uint8_t out[KEYVAULT_KEY_MAX];
    size_t out_len = 99;
    vtpmca_diag diag = {{0}};
    const uint8_t zeros[KEYVAULT_KEY_MAX] = {0};
    const char *contexts[] = {"instance:beta", "instance:alph", "instance:alpha ",
                              "instance-wrapped:alpha", "Instance:alpha"};
    for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
        memset(out, 0xaa, sizeof(out));
        assert_int_equal(
            keyvault_unwrap(vault, blob, blob_len, contexts[i], out, sizeof(out), &out_len, &diag),
            VTPMCA_ERR_CRYPTO);
        assert_int_equal(out_len, 0);
        assert_memory_equal(out, zeros, sizeof(out));
    }
    assert_non_null(strstr(diag.msg, "does not authenticate"));

    memset(out, 0xaa, sizeof(out));
    assert_int_equal(
        keyvault_unwrap(other, blob, blob_len, "instance:alpha", out, sizeof(out), &out_len, NULL),
        VTPMCA_ERR_CRYPTO);
    assert_memory_equal(out, zeros, sizeof(out));

    /* Every byte of the blob, each flipped in turn. */
    for (size_t i = 0; i < blob_len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            blob[i] ^= (uint8_t)(1u << bit);
            memset(out, 0xaa, sizeof(out));
            assert_int_equal(keyvault_unwrap(vault, blob, blob_len, "instance:alpha", out,
                                             sizeof(out), &out_len, NULL),
                             VTPMCA_ERR_CRYPTO);
            assert_memory_equal(out, zeros, sizeof(out));
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated, extended and too short blobs. */
    uint8_t longer[128];
    memcpy(longer, blob, blob_len);
    longer[blob_len] = 0;
    const size_t lengths[] = {0, 1, 29, blob_len - 1, blob_len + 1};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
        assert_int_equal(keyvault_unwrap(vault, longer, lengths[i], "instance:alpha", out,
                                         sizeof(out), &out_len, NULL),
                         VTPMCA_ERR_CRYPTO);
    assert_int_equal(keyvault_unwrap(vault, longer, 1 + 12 + 65 + 16, "instance:alpha", out,
                                     sizeof(out), &out_len, &diag),
                     VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "30 to 93 bytes"));
    /* A version byte we do not know. */
    blob[0] = 0x02;
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, "instance:alpha", out, sizeof(out), &out_len, &diag),
        VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "version 0x02"));
    blob[0] = 0x01;

    /* Untouched, it still unwraps. */
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, "instance:alpha", out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    assert_memory_equal(out, key, 32);
    free(blob);
    keyvault_free(vault);
    keyvault_free(other);
}

/* Decrypts a blob with plain EVP calls following docs/protocol.md, independently of the
 * module's code, and wraps with EVP so the module must unwrap it. */
static void test_blob_format_matches_docs(void **state)
{
    (void)state;
    uint8_t master[32];
    for (size_t i = 0; i < 32; i++)
        master[i] = (uint8_t)(0x40 + i);
    keyvault *vault = vault_with_key(master);
    const uint8_t key[20] = "persistence-key-0001";
    const char *context = "instance:vm-17";
    uint8_t aad[64];
    const char label[] = "vtpmca-keywrap-v1";
    memcpy(aad, label, sizeof(label)); /* with its NUL */
    memcpy(aad + sizeof(label), context, strlen(context));
    int aad_len = (int)(sizeof(label) + strlen(context));

    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(keyvault_wrap(vault, key, sizeof(key), context, &blob, &blob_len, NULL),
                     VTPMCA_OK);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t plain[32];
    int n = 0, fin = 0;
    assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, blob + 1), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, aad, aad_len), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, plain, &n, blob + 13, (int)sizeof(key)), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, blob + 13 + sizeof(key)),
                     1);
    assert_int_equal(EVP_DecryptFinal_ex(ctx, plain + n, &fin), 1);
    assert_memory_equal(plain, key, sizeof(key));
    EVP_CIPHER_CTX_free(ctx);
    free(blob);

    /* The other direction: a blob made by hand. */
    uint8_t made[1 + 12 + sizeof(key) + 16];
    made[0] = 0x01;
    memset(made + 1, 0x5c, 12);
    ctx = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, master, made + 1), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, aad, aad_len), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, made + 13, &n, key, (int)sizeof(key)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, made + 13 + n, &fin), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, made + 13 + sizeof(key)),
                     1);
    EVP_CIPHER_CTX_free(ctx);
    uint8_t out[KEYVAULT_KEY_MAX];
    size_t out_len = 0;
    assert_int_equal(
        keyvault_unwrap(vault, made, sizeof(made), context, out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    assert_int_equal(out_len, sizeof(key));
    assert_memory_equal(out, key, sizeof(key));
    keyvault_free(vault);
}

/* The worked example of docs/protocol.md (computed independently with Python's
 * cryptography AESGCM): master key 00 01 .. 1f, IV a0 .. ab, context "instance:vm-1". */
static void test_documented_vector(void **state)
{
    (void)state;
    uint8_t master[32];
    for (size_t i = 0; i < 32; i++)
        master[i] = (uint8_t)i;
    keyvault *vault = vault_with_key(master);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    const char *hex = "01a0a1a2a3a4a5a6a7a8a9aaaba45a3e6f078940fd2027c5914538829c32ee1b52d0f500"
                      "2ede4c64c43de9374358df634105673396143f13ae143bcd04";
    assert_int_equal(vt_hex_decode_alloc(hex, strlen(hex), &blob, &blob_len), VTPMCA_OK);
    assert_int_equal(blob_len, 61);
    uint8_t out[KEYVAULT_KEY_MAX], expect[32];
    memset(expect, 0x42, sizeof(expect));
    size_t out_len = 0;
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, "instance:vm-1", out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    assert_int_equal(out_len, 32);
    assert_memory_equal(out, expect, 32);
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, "instance:vm-2", out, sizeof(out), &out_len, NULL),
        VTPMCA_ERR_CRYPTO);
    free(blob);
    keyvault_free(vault);
}

struct race_arg {
    const char *path;
    keyvault *vault;
    vtpmca_err err;
};

static void *race_open(void *p)
{
    struct race_arg *a = p;
    a->err = keyvault_open(a->path, true, &a->vault, NULL);
    return NULL;
}

/* Openers racing to create the same key file all end up with the one key that was kept. */
static void test_concurrent_create(void **state)
{
    (void)state;
    enum { ROUNDS = 20, THREADS = 4 };
    for (int round = 0; round < ROUNDS; round++) {
        char path[128];
        fresh_path(path, sizeof(path));
        pthread_t threads[THREADS];
        struct race_arg args[THREADS];
        for (int t = 0; t < THREADS; t++) {
            args[t] = (struct race_arg){path, NULL, VTPMCA_ERR_INTERNAL};
            assert_int_equal(pthread_create(&threads[t], NULL, race_open, &args[t]), 0);
        }
        for (int t = 0; t < THREADS; t++)
            pthread_join(threads[t], NULL);
        const uint8_t key[8] = "racekey";
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        assert_int_equal(args[0].err, VTPMCA_OK);
        assert_int_equal(keyvault_wrap(args[0].vault, key, 8, "c", &blob, &blob_len, NULL),
                         VTPMCA_OK);
        for (int t = 0; t < THREADS; t++) {
            assert_int_equal(args[t].err, VTPMCA_OK);
            uint8_t out[KEYVAULT_KEY_MAX];
            size_t out_len = 0;
            assert_int_equal(keyvault_unwrap(args[t].vault, blob, blob_len, "c", out, sizeof(out),
                                             &out_len, NULL),
                             VTPMCA_OK);
            keyvault_free(args[t].vault);
        }
        free(blob);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_load),
        cmocka_unit_test(test_missing_without_create),
        cmocka_unit_test(test_loose_modes_refused),
        cmocka_unit_test(test_wrong_size_refused),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_wrap_sizes),
        cmocka_unit_test(test_wrap_is_randomised),
        cmocka_unit_test(test_unwrap_rejections),
        cmocka_unit_test(test_blob_format_matches_docs),
        cmocka_unit_test(test_documented_vector),
        cmocka_unit_test(test_concurrent_create),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
