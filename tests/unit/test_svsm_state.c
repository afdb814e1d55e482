/* Unit tests for tools/lib/svsm_state.c: the reference SVSM client's encrypted vTPM state
 * file. The documented layout (include/vtpmca/svsm_state.h, docs/svsm-sim.md) is checked
 * independently: files written by the module are decrypted here with OpenSSL's EVP
 * interface, files built here by hand are read by the module, and the HKDF key derivation is
 * recomputed from RFC 5869's definition with HMAC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/fileio.h"
#include "vtpmca/svsm_state.h"

#define HEADER_LEN 40
#define COUNTER_OFF 12
#define IV_OFF 28
#define STATE_LEN 3000

static char g_tmp[64];
static unsigned g_counter;

static int group_setup(void **state)
{
    (void)state;
    return ca_fixture_tmpdir(g_tmp, sizeof(g_tmp), "svsm-state");
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g_tmp);
}

static void fresh_path(char *path, size_t size)
{
    snprintf(path, size, "%s/vtpm-%u.state", g_tmp, g_counter++);
}

static void random_bytes(uint8_t *out, size_t len)
{
    assert_int_equal(RAND_bytes(out, (int)len), 1);
}

/* A content with random EK fingerprint and TPM state (the caller frees tpm_state). */
static svsm_state_content random_content(size_t state_len)
{
    svsm_state_content c = {.tpm_state_len = state_len};
    random_bytes(c.ek_fingerprint, sizeof(c.ek_fingerprint));
    c.tpm_state = malloc(state_len);
    assert_non_null(c.tpm_state);
    random_bytes(c.tpm_state, state_len);
    return c;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    assert_int_equal(vt_file_read(path, 1 << 24, &data, len, NULL), VTPMCA_OK);
    return data;
}

static void write_all(const char *path, const uint8_t *data, size_t len)
{
    assert_int_equal(vt_file_write_atomic(path, data, len, 0600, NULL), VTPMCA_OK);
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

static void write_new(const char *path, const uint8_t key[32], const svsm_state_content *c,
                      svsm_state_version *written)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = svsm_state_write(path, key, c, NULL, NULL, NULL, written, &diag);
    if (err != VTPMCA_OK)
        fail_msg("svsm_state_write: %s", diag.msg);
}

/* Builds a state file from the documented layout with OpenSSL directly. */
static void build_file_by_hand(const char *path, const uint8_t key[32], const uint8_t counter[16],
                               const svsm_state_content *c)
{
    size_t plain_len = 32 + c->tpm_state_len;
    size_t len = HEADER_LEN + plain_len + 16;
    uint8_t *file = malloc(len);
    assert_non_null(file);
    memcpy(file, "SVSMVTPM", 8);
    memcpy(file + 8, "\x00\x00\x00\x01", 4);
    memcpy(file + COUNTER_OFF, counter, 16);
    random_bytes(file + IV_OFF, 12);
    uint8_t *plain = malloc(plain_len);
    assert_non_null(plain);
    memcpy(plain, c->ek_fingerprint, 32);
    memcpy(plain + 32, c->tpm_state, c->tpm_state_len);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, file + IV_OFF), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, file, HEADER_LEN), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, file + HEADER_LEN, &n, plain, (int)plain_len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, file + HEADER_LEN + n, &fin), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, file + len - 16), 1);
    EVP_CIPHER_CTX_free(ctx);
    write_all(path, file, len);
    free(plain);
    free(file);
}

static void test_round_trip_and_layout(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(STATE_LEN);
    svsm_state_version written;
    write_new(path, key, &c, &written);

    svsm_state_content back;
    svsm_state_version version;
    vtpmca_diag diag = {{0}};
    assert_int_equal(svsm_state_read(path, key, &back, &version, &diag), VTPMCA_OK);
    assert_memory_equal(back.ek_fingerprint, c.ek_fingerprint, 32);
    assert_int_equal(back.tpm_state_len, STATE_LEN);
    assert_memory_equal(back.tpm_state, c.tpm_state, STATE_LEN);
    assert_memory_equal(&version, &written, sizeof(version));
    svsm_state_content_clear(&back);
    assert_null(back.tpm_state);

    /* The layout, decrypted independently. */
    size_t len = 0;
    uint8_t *file = read_all(path, &len);
    assert_int_equal(len, HEADER_LEN + 32 + STATE_LEN + 16);
    assert_memory_equal(file, "SVSMVTPM\x00\x00\x00\x01", 12);
    assert_memory_equal(file + COUNTER_OFF, written.counter, 16);
    uint8_t root[32];
    sha256(file, len, root);
    assert_memory_equal(root, written.root, 32);
    uint8_t *plain = malloc(32 + STATE_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, file + IV_OFF), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, file, HEADER_LEN), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, plain, &n, file + HEADER_LEN, 32 + STATE_LEN), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, file + len - 16), 1);
    assert_int_equal(EVP_DecryptFinal_ex(ctx, plain + n, &fin), 1);
    EVP_CIPHER_CTX_free(ctx);
    assert_memory_equal(plain, c.ek_fingerprint, 32);
    assert_memory_equal(plain + 32, c.tpm_state, STATE_LEN);
    /* The plaintext does not appear in the file. */
    for (size_t i = 0; i + 64 <= len; i++)
        assert_memory_not_equal(file + i, c.tpm_state, 64);
    free(plain);
    free(file);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(c.tpm_state);
}

static void test_reads_hand_built_file(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32], counter[16];
    random_bytes(key, sizeof(key));
    random_bytes(counter, sizeof(counter));
    svsm_state_content c = random_content(17);
    build_file_by_hand(path, key, counter, &c);
    svsm_state_content back;
    svsm_state_version version;
    assert_int_equal(svsm_state_read(path, key, &back, &version, NULL), VTPMCA_OK);
    assert_memory_equal(back.ek_fingerprint, c.ek_fingerprint, 32);
    assert_int_equal(back.tpm_state_len, 17);
    assert_memory_equal(back.tpm_state, c.tpm_state, 17);
    assert_memory_equal(version.counter, counter, 16);
    svsm_state_content_clear(&back);
    free(c.tpm_state);
}

static void test_wrong_key(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32], other[32];
    random_bytes(key, sizeof(key));
    memcpy(other, key, sizeof(other));
    other[31] ^= 0x01;
    svsm_state_content c = random_content(100);
    write_new(path, key, &c, NULL);
    svsm_state_content back;
    vtpmca_diag diag = {{0}};
    assert_int_equal(svsm_state_read(path, other, &back, NULL, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "wrong persistence key or modified file"));
    assert_null(back.tpm_state);
    assert_int_equal(back.tpm_state_len, 0);
    free(c.tpm_state);
}

/* Flips one bit at `offset` (negative: from the end) and expects `want`. */
static void expect_tamper(const char *path, const uint8_t key[32], long offset, vtpmca_err want)
{
    size_t len = 0;
    uint8_t *orig = read_all(path, &len);
    uint8_t *copy = malloc(len);
    memcpy(copy, orig, len);
    size_t at = offset >= 0 ? (size_t)offset : len - (size_t)(-offset);
    copy[at] ^= 0x80;
    char tampered[160];
    snprintf(tampered, sizeof(tampered), "%s.tampered", path);
    write_all(tampered, copy, len);
    svsm_state_content back;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = svsm_state_read(tampered, key, &back, NULL, &diag);
    if (err != want)
        fail_msg("tampering byte %zu: got %d (%s), want %d", at, err, diag.msg, want);
    unlink(tampered);
    free(copy);
    free(orig);
}

static void test_each_tampered_region(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(200);
    write_new(path, key, &c, NULL);
    expect_tamper(path, key, 0, VTPMCA_ERR_PARSE);            /* magic */
    expect_tamper(path, key, 11, VTPMCA_ERR_UNSUPPORTED);     /* version */
    expect_tamper(path, key, COUNTER_OFF, VTPMCA_ERR_CRYPTO); /* counter, first byte */
    expect_tamper(path, key, COUNTER_OFF + 15, VTPMCA_ERR_CRYPTO);
    expect_tamper(path, key, IV_OFF, VTPMCA_ERR_CRYPTO); /* IV */
    expect_tamper(path, key, IV_OFF + 11, VTPMCA_ERR_CRYPTO);
    expect_tamper(path, key, HEADER_LEN, VTPMCA_ERR_CRYPTO);      /* ciphertext: fingerprint */
    expect_tamper(path, key, HEADER_LEN + 32, VTPMCA_ERR_CRYPTO); /* ciphertext: TPM state */
    expect_tamper(path, key, -17, VTPMCA_ERR_CRYPTO);             /* last ciphertext byte */
    expect_tamper(path, key, -16, VTPMCA_ERR_CRYPTO);             /* tag */
    expect_tamper(path, key, -1, VTPMCA_ERR_CRYPTO);
    free(c.tpm_state);
}

static void test_truncated_and_missing(void **state)
{
    (void)state;
    char path[128], cut[160];
    fresh_path(path, sizeof(path));
    snprintf(cut, sizeof(cut), "%s.cut", path);
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(64);
    write_new(path, key, &c, NULL);
    size_t len = 0;
    uint8_t *file = read_all(path, &len);
    svsm_state_content back;
    vtpmca_diag diag = {{0}};
    /* Shorter than any state file: a framing error. */
    const size_t short_lengths[] = {0, 8, HEADER_LEN, HEADER_LEN + 32 + 16};
    for (size_t i = 0; i < sizeof(short_lengths) / sizeof(short_lengths[0]); i++) {
        write_all(cut, file, short_lengths[i]);
        assert_int_equal(svsm_state_read(cut, key, &back, NULL, &diag), VTPMCA_ERR_PARSE);
        assert_non_null(strstr(diag.msg, "truncated"));
    }
    /* Long enough to frame but missing its end: the tag no longer authenticates. */
    write_all(cut, file, len - 1);
    assert_int_equal(svsm_state_read(cut, key, &back, NULL, NULL), VTPMCA_ERR_CRYPTO);
    write_all(cut, file, len - 20);
    assert_int_equal(svsm_state_read(cut, key, &back, NULL, NULL), VTPMCA_ERR_CRYPTO);
    unlink(cut);
    assert_int_equal(svsm_state_read(cut, key, &back, NULL, &diag), VTPMCA_ERR_NOT_FOUND);
    free(file);
    free(c.tpm_state);
}

typedef struct {
    unsigned calls;
    svsm_state_version seen;
    vtpmca_err result;
} hook_record;

static vtpmca_err record_hook(const svsm_state_version *next, void *ctx, vtpmca_diag *diag)
{
    hook_record *rec = ctx;
    rec->calls++;
    rec->seen = *next;
    return rec->result == VTPMCA_OK
               ? VTPMCA_OK
               : vtpmca_fail(diag, rec->result, "ledger refused the new version");
}

static void test_counter_increments_on_update(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(500);
    svsm_state_version v1, v2, v3;
    write_new(path, key, &c, &v1);
    /* Big-endian + 1, computed here with a 128-bit integer. */
    unsigned __int128 n1 = 0;
    for (int i = 0; i < 16; i++)
        n1 = n1 << 8 | v1.counter[i];
    hook_record rec = {0};
    vtpmca_diag diag = {{0}};
    random_bytes(c.tpm_state, 10); /* the TPM state changed */
    assert_int_equal(svsm_state_write(path, key, &c, &v1, record_hook, &rec, &v2, &diag),
                     VTPMCA_OK);
    unsigned __int128 n2 = 0;
    for (int i = 0; i < 16; i++)
        n2 = n2 << 8 | v2.counter[i];
    assert_true(n2 == n1 + 1);
    assert_int_equal(rec.calls, 1);
    assert_memory_equal(&rec.seen, &v2, sizeof(v2));
    assert_memory_not_equal(v1.root, v2.root, 32);
    /* What the hook saw is the file that was then written. */
    size_t len = 0;
    uint8_t *file = read_all(path, &len);
    uint8_t root[32];
    sha256(file, len, root);
    assert_memory_equal(root, rec.seen.root, 32);
    free(file);
    /* Another write from v2 gives v2 + 1; the content reads back. */
    assert_int_equal(svsm_state_write(path, key, &c, &v2, NULL, NULL, &v3, NULL), VTPMCA_OK);
    svsm_state_content back;
    svsm_state_version read_version;
    assert_int_equal(svsm_state_read(path, key, &back, &read_version, NULL), VTPMCA_OK);
    assert_memory_equal(&read_version, &v3, sizeof(v3));
    assert_memory_equal(back.tpm_state, c.tpm_state, 500);
    svsm_state_content_clear(&back);
    free(c.tpm_state);
}

static void test_counter_wraps(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32], all_ones[16], zero[16] = {0};
    random_bytes(key, sizeof(key));
    memset(all_ones, 0xff, sizeof(all_ones));
    svsm_state_content c = random_content(40);
    build_file_by_hand(path, key, all_ones, &c);
    svsm_state_content back;
    svsm_state_version v, next;
    assert_int_equal(svsm_state_read(path, key, &back, &v, NULL), VTPMCA_OK);
    svsm_state_content_clear(&back);
    assert_memory_equal(v.counter, all_ones, 16);
    assert_int_equal(svsm_state_write(path, key, &c, &v, NULL, NULL, &next, NULL), VTPMCA_OK);
    assert_memory_equal(next.counter, zero, 16); /* 2^128 - 1 + 1 = 0 */
    assert_int_equal(svsm_state_read(path, key, &back, &v, NULL), VTPMCA_OK);
    assert_memory_equal(v.counter, zero, 16);
    svsm_state_content_clear(&back);

    free(c.tpm_state);
}

static void test_new_counters_are_random(void **state)
{
    (void)state;
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(8);
    svsm_state_version a, b;
    char path[128];
    fresh_path(path, sizeof(path));
    write_new(path, key, &c, &a);
    fresh_path(path, sizeof(path));
    write_new(path, key, &c, &b);
    assert_memory_not_equal(a.counter, b.counter, 16);
    free(c.tpm_state);
}

static void test_write_conflicts_change_nothing(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32];
    random_bytes(key, sizeof(key));
    svsm_state_content c = random_content(64);
    svsm_state_version v1, v2, stale;
    write_new(path, key, &c, &v1);
    size_t len = 0;
    uint8_t *before = read_all(path, &len);
    vtpmca_diag diag = {{0}};
    /* Creating over an existing file. */
    assert_int_equal(svsm_state_write(path, key, &c, NULL, NULL, NULL, NULL, &diag),
                     VTPMCA_ERR_CONFLICT);
    /* Updating from a version that is not the file's: another counter, or same counter and
     * another root. */
    stale = v1;
    stale.counter[15] ^= 1;
    assert_int_equal(svsm_state_write(path, key, &c, &stale, NULL, NULL, NULL, &diag),
                     VTPMCA_ERR_CONFLICT);
    stale = v1;
    stale.root[0] ^= 1;
    assert_int_equal(svsm_state_write(path, key, &c, &stale, NULL, NULL, NULL, &diag),
                     VTPMCA_ERR_CONFLICT);
    /* A hook that refuses: nothing is written. */
    hook_record rec = {.result = VTPMCA_ERR_POLICY};
    assert_int_equal(svsm_state_write(path, key, &c, &v1, record_hook, &rec, &v2, &diag),
                     VTPMCA_ERR_POLICY);
    assert_int_equal(rec.calls, 1);
    assert_non_null(strstr(diag.msg, "ledger refused"));
    size_t after_len = 0;
    uint8_t *after = read_all(path, &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, before, len);
    /* Updating a file that was removed. */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s.gone", path);
    assert_int_equal(svsm_state_write(missing, key, &c, &v1, NULL, NULL, NULL, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_int_not_equal(access(missing, F_OK), 0);
    free(after);
    free(before);
    free(c.tpm_state);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    char path[128];
    fresh_path(path, sizeof(path));
    uint8_t key[32] = {0};
    svsm_state_content c = random_content(8);
    svsm_state_content empty = {.tpm_state = c.tpm_state, .tpm_state_len = 0};
    svsm_state_content back;
    assert_int_equal(svsm_state_write(NULL, key, &c, NULL, NULL, NULL, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(svsm_state_write(path, NULL, &c, NULL, NULL, NULL, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(svsm_state_write(path, key, &empty, NULL, NULL, NULL, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(svsm_state_read(NULL, key, &back, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(svsm_state_read(path, key, NULL, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    uint8_t out[32];
    assert_int_equal(svsm_state_derive_key(NULL, 32, out, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(svsm_state_derive_key(key, 0, out, NULL), VTPMCA_ERR_INVALID_ARG);
    uint8_t big[65] = {0};
    assert_int_equal(svsm_state_derive_key(big, sizeof(big), out, NULL), VTPMCA_ERR_INVALID_ARG);
    svsm_state_content_clear(NULL);
    free(c.tpm_state);
}

/* RFC 5869 with an empty salt (a HashLen string of zeros) and one output block:
 * PRK = HMAC(zeros, IKM), OKM = HMAC(PRK, info || 0x01). */
static void test_derive_key_is_hkdf_sha256(void **state)
{
    (void)state;
    uint8_t ikm[32];
    random_bytes(ikm, sizeof(ikm));
    uint8_t zeros[32] = {0}, prk[32], okm[32];
    unsigned int n = 0;
    assert_non_null(HMAC(EVP_sha256(), zeros, sizeof(zeros), ikm, sizeof(ikm), prk, &n));
    const char *info = "vtpmca svsm-sim vtpm-state v1";
    uint8_t block[64];
    size_t info_len = strlen(info);
    memcpy(block, info, info_len);
    block[info_len] = 0x01;
    assert_non_null(HMAC(EVP_sha256(), prk, sizeof(prk), block, info_len + 1, okm, &n));
    uint8_t derived[32];
    assert_int_equal(svsm_state_derive_key(ikm, sizeof(ikm), derived, NULL), VTPMCA_OK);
    assert_memory_equal(derived, okm, 32);
    assert_string_equal(SVSM_STATE_KDF_INFO, info);
    /* Another persistence key, another file key. */
    ikm[0] ^= 1;
    uint8_t other[32];
    assert_int_equal(svsm_state_derive_key(ikm, sizeof(ikm), other, NULL), VTPMCA_OK);
    assert_memory_not_equal(other, derived, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_layout),
        cmocka_unit_test(test_reads_hand_built_file),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_each_tampered_region),
        cmocka_unit_test(test_truncated_and_missing),
        cmocka_unit_test(test_counter_increments_on_update),
        cmocka_unit_test(test_counter_wraps),
        cmocka_unit_test(test_new_counters_are_random),
        cmocka_unit_test(test_write_conflicts_change_nothing),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_derive_key_is_hkdf_sha256),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
