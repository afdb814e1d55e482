/* Tests for the CA's TPM2_MakeCredential (ca/credential.c) against libtpms: for RSA-2048,
 * ECC P-256 and ECC P-384 EKs made from the TCG default templates, a credential the CA makes
 * for an IAK-like key is recovered by TPM2_ActivateCredential (vtpm_activate_credential);
 * its outputs have exactly the sizes of the TPM's own TPM2_MakeCredential (which is random
 * too, so only the layout can be compared byte for byte); credentials made for another
 * object, another EK or tampered with are refused by the TPM. KDFa and KDFe are checked
 * against independent implementations written here on plain HMAC / digest calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "vtpmca/ca_client.h"
#include "vtpmca/credential.h"
#include "vtpmca/tpm2_marshal.h"
#include "vtpmca/vtpm.h"

/* ---- independent KDFs (TPM 2.0 Part 1, 11.4.10.2 and 11.4.10.3) ---- */

static void be32(uint32_t v, uint8_t out[4])
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

/* K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32). */
static void ref_kdfa(const char *md_name, const uint8_t *key, size_t key_len, const char *label,
                     const uint8_t *cu, size_t cu_len, const uint8_t *cv, size_t cv_len,
                     uint8_t *out, size_t out_len)
{
    uint8_t bits[4], counter[4], block[64];
    be32((uint32_t)(out_len * 8), bits);
    size_t done = 0;
    for (uint32_t i = 1; done < out_len; i++) {
        be32(i, counter);
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md_name, 0),
            OSSL_PARAM_construct_end()};
        size_t len = 0;
        assert_int_equal(EVP_MAC_init(ctx, key, key_len, params), 1);
        EVP_MAC_update(ctx, counter, 4);
        EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1);
        EVP_MAC_update(ctx, cu, cu_len);
        EVP_MAC_update(ctx, cv, cv_len);
        EVP_MAC_update(ctx, bits, 4);
        assert_int_equal(EVP_MAC_final(ctx, block, &len, sizeof(block)), 1);
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        size_t take = out_len - done < len ? out_len - done : len;
        memcpy(out + done, block, take);
        done += take;
    }
}

/* K(i) = H([i]32 || Z || label || 0x00 || partyU || partyV). */
static void ref_kdfe(const EVP_MD *md, const uint8_t *z, size_t z_len, const char *label,
                     const uint8_t *pu, size_t pu_len, const uint8_t *pv, size_t pv_len,
                     uint8_t *out, size_t out_len)
{
    uint8_t counter[4], block[64];
    size_t done = 0;
    for (uint32_t i = 1; done < out_len; i++) {
        be32(i, counter);
        unsigned len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, md, NULL);
        EVP_DigestUpdate(ctx, counter, 4);
        EVP_DigestUpdate(ctx, z, z_len);
        EVP_DigestUpdate(ctx, label, strlen(label) + 1);
        EVP_DigestUpdate(ctx, pu, pu_len);
        EVP_DigestUpdate(ctx, pv, pv_len);
        EVP_DigestFinal_ex(ctx, block, &len);
        EVP_MD_CTX_free(ctx);
        size_t take = out_len - done < len ? out_len - done : len;
        memcpy(out + done, block, take);
        done += take;
    }
}

static void test_kdfa_matches_the_definition(void **state)
{
    (void)state;
    uint8_t key[48], cu[66], cv[20];
    assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
    assert_int_equal(RAND_bytes(cu, sizeof(cu)), 1);
    assert_int_equal(RAND_bytes(cv, sizeof(cv)), 1);
    const struct {
        uint16_t alg;
        const char *name;
    } hashes[] = {
        {TPM2_ALG_SHA256, "SHA256"}, {TPM2_ALG_SHA384, "SHA384"}, {TPM2_ALG_SHA1, "SHA1"}};
    const size_t lengths[] = {1, 16, 32, 33, 48, 100, 257};
    for (size_t h = 0; h < 3; h++) {
        for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
            uint8_t got[300], want[300];
            size_t n = lengths[l];
            assert_int_equal(
                credential_kdfa(hashes[h].alg, key, 32, "STORAGE", cu, 34, NULL, 0, got, n, NULL),
                VTPMCA_OK);
            ref_kdfa(hashes[h].name, key, 32, "STORAGE", cu, 34, NULL, 0, want, n);
            assert_memory_equal(got, want, n);
            assert_int_equal(credential_kdfa(hashes[h].alg, key, sizeof(key), "INTEGRITY", NULL, 0,
                                             NULL, 0, got, n, NULL),
                             VTPMCA_OK);
            ref_kdfa(hashes[h].name, key, sizeof(key), "INTEGRITY", NULL, 0, NULL, 0, want, n);
            assert_memory_equal(got, want, n);
            assert_int_equal(credential_kdfa(hashes[h].alg, key, 20, "X", cu, sizeof(cu), cv,
                                             sizeof(cv), got, n, NULL),
                             VTPMCA_OK);
            ref_kdfa(hashes[h].name, key, 20, "X", cu, sizeof(cu), cv, sizeof(cv), want, n);
            assert_memory_equal(got, want, n);
        }
    }
    uint8_t out[8];
    vtpmca_diag diag = {{0}};
    assert_int_equal(credential_kdfa(TPM2_ALG_SHA256, key, 0, "A", NULL, 0, NULL, 0, out, 8, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(credential_kdfa(TPM2_ALG_SHA256, key, 8, "A", NULL, 3, NULL, 0, out, 8, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(credential_kdfa(TPM2_ALG_SHA256, key, 8, "A", NULL, 0, NULL, 0, out, 0, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(credential_kdfa(0x0099, key, 8, "A", NULL, 0, NULL, 0, out, 8, &diag),
                     VTPMCA_ERR_UNSUPPORTED);
}

static void test_kdfe_matches_the_definition(void **state)
{
    (void)state;
    uint8_t z[66], pu[66], pv[66];
    assert_int_equal(RAND_bytes(z, sizeof(z)), 1);
    assert_int_equal(RAND_bytes(pu, sizeof(pu)), 1);
    assert_int_equal(RAND_bytes(pv, sizeof(pv)), 1);
    const size_t lengths[] = {1, 32, 48, 64, 65, 130};
    for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
        uint8_t got[200], want[200];
        size_t n = lengths[l];
        assert_int_equal(
            credential_kdfe(TPM2_ALG_SHA256, z, 32, "IDENTITY", pu, 32, pv, 32, got, n, NULL),
            VTPMCA_OK);
        ref_kdfe(EVP_sha256(), z, 32, "IDENTITY", pu, 32, pv, 32, want, n);
        assert_memory_equal(got, want, n);
        assert_int_equal(
            credential_kdfe(TPM2_ALG_SHA384, z, 48, "IDENTITY", pu, 48, pv, 48, got, n, NULL),
            VTPMCA_OK);
        ref_kdfe(EVP_sha384(), z, 48, "IDENTITY", pu, 48, pv, 48, want, n);
        assert_memory_equal(got, want, n);
    }
    uint8_t out[8];
    assert_int_equal(credential_kdfe(TPM2_ALG_SHA256, NULL, 0, "A", NULL, 0, NULL, 0, out, 8, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- against libtpms ---- */

/* A restricted ECDSA P-256 signing key, its admin role authorised by its authValue (what
 * vtpm_activate_credential needs). */
static void create_iak(vtpm *tpm, uint32_t *handle, uint8_t *name, size_t *name_len)
{
    uint8_t buf[256];
    size_t tmpl_len = 0;
    assert_int_equal(ca_iak_template(buf, sizeof(buf), &tmpl_len), VTPMCA_OK);
    vtpmca_diag diag = {{0}};
    uint8_t *pub = NULL;
    size_t pub_len = 0;
    assert_int_equal(
        vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, buf, tmpl_len, handle, &pub, &pub_len, &diag),
        VTPMCA_OK);
    assert_int_equal(vtpm_object_name(pub, pub_len, name, name_len, &diag), VTPMCA_OK);
    free(pub);
}

typedef struct {
    vtpm *tpm;
    uint32_t ek, iak;
    uint8_t *ek_pub;
    size_t ek_pub_len;
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX];
    size_t ek_name_len, iak_name_len;
} tpm_setup;

static void setup_tpm(tpm_setup *s, vtpm_ek_kind kind)
{
    memset(s, 0, sizeof(*s));
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_open(NULL, 0, &s->tpm, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_create_ek(s->tpm, kind, &s->ek, &s->ek_pub, &s->ek_pub_len, NULL, &diag),
                     VTPMCA_OK);
    assert_int_equal(vtpm_object_name(s->ek_pub, s->ek_pub_len, s->ek_name, &s->ek_name_len, &diag),
                     VTPMCA_OK);
    create_iak(s->tpm, &s->iak, s->iak_name, &s->iak_name_len);
}

static void teardown_tpm(tpm_setup *s)
{
    free(s->ek_pub);
    vtpm_close(s->tpm);
}

static vtpmca_err activate(tpm_setup *s, const credential_result *c, uint8_t **info,
                           size_t *info_len, vtpmca_diag *diag)
{
    return vtpm_activate_credential(s->tpm, s->iak, s->ek, c->blob, c->blob_len, c->secret,
                                    c->secret_len, info, info_len, diag);
}

static void run_kind(vtpm_ek_kind kind, size_t digest_len, size_t secret_len)
{
    tpm_setup s;
    setup_tpm(&s, kind);
    vtpmca_diag diag = {{0}};
    /* Lengths 1, a middle one and the maximum (the EK nameAlg's digest size). */
    const size_t lengths[] = {1, 20, digest_len};
    for (size_t i = 0; i < 3; i++) {
        uint8_t credential[CREDENTIAL_MAX];
        assert_int_equal(RAND_bytes(credential, (int)lengths[i]), 1);
        credential_result c;
        if (credential_make(s.ek_pub, s.ek_pub_len, credential, lengths[i], s.iak_name,
                            s.iak_name_len, &c, &diag) != VTPMCA_OK)
            fail_msg("credential_make: %s", diag.msg);
        assert_int_equal(c.blob_len, 2 + digest_len + 2 + lengths[i]);
        assert_int_equal(c.secret_len, secret_len);
        uint8_t *info = NULL;
        size_t info_len = 0;
        if (activate(&s, &c, &info, &info_len, &diag) != VTPMCA_OK)
            fail_msg("TPM2_ActivateCredential refused the CA's credential: %s", diag.msg);
        assert_int_equal(info_len, lengths[i]);
        assert_memory_equal(info, credential, lengths[i]);
        free(info);

        /* The TPM's own MakeCredential: same layout (its seed is random too). */
        uint8_t *blob = NULL, *secret = NULL;
        size_t blob_len = 0, tpm_secret_len = 0;
        assert_int_equal(vtpm_make_credential(s.tpm, s.ek, credential, lengths[i], s.iak_name,
                                              s.iak_name_len, &blob, &blob_len, &secret,
                                              &tpm_secret_len, &diag),
                         VTPMCA_OK);
        assert_int_equal(blob_len, c.blob_len);
        assert_int_equal(tpm_secret_len, c.secret_len);
        /* integrityHMAC size prefix; for ECC also the point's coordinate sizes. */
        assert_memory_equal(blob, c.blob, 2);
        if (kind != VTPM_EK_RSA2048) {
            assert_memory_equal(secret, c.secret, 2);
            assert_memory_equal(secret + 2 + (secret_len - 4) / 2,
                                c.secret + 2 + (secret_len - 4) / 2, 2);
        }
        free(blob);
        free(secret);
        credential_result_free(&c);
    }
    teardown_tpm(&s);
}

static void test_activation_rsa2048(void **state)
{
    (void)state;
    run_kind(VTPM_EK_RSA2048, 32, 256);
}

static void test_activation_p256(void **state)
{
    (void)state;
    run_kind(VTPM_EK_ECC_P256, 32, 2 + 32 + 2 + 32);
}

static void test_activation_p384(void **state)
{
    (void)state;
    run_kind(VTPM_EK_ECC_P384, 48, 2 + 48 + 2 + 48);
}

static void test_tpm_refuses_foreign_or_tampered_credentials(void **state)
{
    (void)state;
    tpm_setup s;
    setup_tpm(&s, VTPM_EK_ECC_P256);
    vtpmca_diag diag = {{0}};
    uint8_t credential[32];
    assert_int_equal(RAND_bytes(credential, sizeof(credential)), 1);
    uint8_t *info = NULL;
    size_t info_len = 0;

    /* Made for another object (the EK's own name): the IAK cannot activate it. */
    credential_result c;
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, sizeof(credential),
                                     s.ek_name, s.ek_name_len, &c, &diag),
                     VTPMCA_OK);
    assert_int_equal(activate(&s, &c, &info, &info_len, &diag), VTPMCA_ERR_CRYPTO);
    credential_result_free(&c);

    /* Every byte of the blob and of the secret is protected. */
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, sizeof(credential),
                                     s.iak_name, s.iak_name_len, &c, &diag),
                     VTPMCA_OK);
    const size_t blob_positions[] = {2, 2 + 16, 2 + 32, c.blob_len - 1};
    for (size_t i = 0; i < 4; i++) {
        c.blob[blob_positions[i]] ^= 0x01;
        vtpmca_err err = activate(&s, &c, &info, &info_len, &diag);
        c.blob[blob_positions[i]] ^= 0x01;
        if (err == VTPMCA_OK)
            fail_msg("a blob with byte %zu changed was activated", blob_positions[i]);
        free(info);
        info = NULL;
    }
    c.secret[10] ^= 0x01;
    assert_int_not_equal(activate(&s, &c, &info, &info_len, &diag), VTPMCA_OK);
    c.secret[10] ^= 0x01;
    assert_int_equal(activate(&s, &c, &info, &info_len, &diag), VTPMCA_OK);
    assert_memory_equal(info, credential, sizeof(credential));
    free(info);
    credential_result_free(&c);

    /* Made against another TPM's EK: this TPM cannot recover the seed. */
    tpm2_public ek;
    assert_int_equal(tpm2_public_parse(s.ek_pub, s.ek_pub_len, &ek, &diag), VTPMCA_OK);
    EVP_PKEY *other = EVP_EC_gen("P-256");
    BIGNUM *x = NULL, *y = NULL;
    uint8_t xy[64];
    assert_int_equal(EVP_PKEY_get_bn_param(other, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(other, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    BN_bn2binpad(x, xy, 32);
    BN_bn2binpad(y, xy + 32, 32);
    BN_free(x);
    BN_free(y);
    EVP_PKEY_free(other);
    ek.unique_a = xy;
    ek.unique_b = xy + 32;
    uint8_t other_pub[512];
    tpm2_writer w;
    tpm2_writer_init(&w, other_pub, sizeof(other_pub));
    assert_int_equal(tpm2_put_public(&w, &ek), VTPMCA_OK);
    assert_int_equal(credential_make(other_pub, w.len, credential, sizeof(credential), s.iak_name,
                                     s.iak_name_len, &c, &diag),
                     VTPMCA_OK);
    assert_int_equal(activate(&s, &c, &info, &info_len, &diag), VTPMCA_ERR_CRYPTO);
    credential_result_free(&c);
    teardown_tpm(&s);
}

static void test_refusals(void **state)
{
    (void)state;
    tpm_setup s;
    setup_tpm(&s, VTPM_EK_RSA2048);
    vtpmca_diag diag = {{0}};
    uint8_t credential[CREDENTIAL_MAX] = {1};
    credential_result c;

    /* Longer than the EK nameAlg's digest (SHA-256). */
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, 33, s.iak_name,
                                     s.iak_name_len, &c, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "digest size"));
    assert_null(c.blob);
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, 0, s.iak_name,
                                     s.iak_name_len, &c, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* Names that are not nameAlg || digest. */
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, 16, s.iak_name,
                                     s.iak_name_len - 1, &c, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    uint8_t bad_name[34] = {0x00, 0x99};
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, 16, bad_name,
                                     sizeof(bad_name), &c, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* Malformed EK bytes. */
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len - 1, credential, 16, s.iak_name,
                                     s.iak_name_len, &c, &diag),
                     VTPMCA_ERR_PARSE);
    /* A key that is not a restricted decryption key (an IAK), and an EK without AES. */
    tpm2_public ek;
    assert_int_equal(tpm2_public_parse(s.ek_pub, s.ek_pub_len, &ek, &diag), VTPMCA_OK);
    uint8_t buf[512];
    tpm2_writer w;
    tpm2_public t = ek;
    t.object_attributes &= ~TPMA_OBJECT_RESTRICTED;
    tpm2_writer_init(&w, buf, sizeof(buf));
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    assert_int_equal(
        credential_make(buf, w.len, credential, 16, s.iak_name, s.iak_name_len, &c, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "restricted decryption"));
    t = ek;
    t.sym_mode = TPM2_ALG_NULL;
    tpm2_writer_init(&w, buf, sizeof(buf));
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    assert_int_equal(
        credential_make(buf, w.len, credential, 16, s.iak_name, s.iak_name_len, &c, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "AES-CFB"));
    assert_int_equal(
        credential_make(NULL, 0, credential, 16, s.iak_name, s.iak_name_len, &c, &diag),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(credential_make(s.ek_pub, s.ek_pub_len, credential, 16, s.iak_name,
                                     s.iak_name_len, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    credential_result_free(NULL);
    teardown_tpm(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kdfa_matches_the_definition),
        cmocka_unit_test(test_kdfe_matches_the_definition),
        cmocka_unit_test(test_activation_rsa2048),
        cmocka_unit_test(test_activation_p256),
        cmocka_unit_test(test_activation_p384),
        cmocka_unit_test(test_tpm_refuses_foreign_or_tampered_credentials),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
