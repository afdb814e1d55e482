/* TPM2_MakeCredential with OpenSSL (see vtpmca/credential.h for the construction). KDFa is
 * OpenSSL's KBKDF (SP 800-108 counter mode, HMAC), KDFe its single-step KDF (SP 800-56C with
 * a hash); both are exactly the TPM's definitions when the output is whole bytes. */
#include "vtpmca/credential.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

/* Labels of TPM 2.0 Part 1 (the terminating NUL is part of each). */
#define LABEL_IDENTITY "IDENTITY"
#define LABEL_STORAGE "STORAGE"
#define LABEL_INTEGRITY "INTEGRITY"

#define KDF_OUT_MAX 8192
#define ECC_COORD_MAX 66

static vtpmca_err openssl_fail(vtpmca_diag *diag, const char *what)
{
    vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "credential: %s failed", what);
    vtpmca_diag_append_openssl(diag);
    return VTPMCA_ERR_INTERNAL;
}

/* Runs one OpenSSL KDF with the given parameters into out. */
static vtpmca_err run_kdf(const char *kdf_name, const OSSL_PARAM *params, uint8_t *out,
                          size_t out_len, vtpmca_diag *diag)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, kdf_name, NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    int ok = ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? VTPMCA_OK : openssl_fail(diag, kdf_name);
}

/* The KDF's hash name (OpenSSL's) and the concatenation of two byte strings. */
static vtpmca_err kdf_inputs(uint16_t hash_alg, const uint8_t *a, size_t a_len, const uint8_t *b,
                             size_t b_len, const char **md_name, uint8_t **joined,
                             size_t *joined_len, vtpmca_diag *diag)
{
    const EVP_MD *md = NULL;
    size_t digest_len = 0;
    if (tpm2_hash_alg_md(hash_alg, &md, &digest_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "credential: hash 0x%04x unsupported",
                           hash_alg);
    *md_name = EVP_MD_get0_name(md);
    /* One spare byte so an empty concatenation still has a valid pointer. */
    *joined = malloc(a_len + b_len + 1);
    if (*joined == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "credential: out of memory");
    if (a_len > 0)
        memcpy(*joined, a, a_len);
    if (b_len > 0)
        memcpy(*joined + a_len, b, b_len);
    *joined_len = a_len + b_len;
    return VTPMCA_OK;
}

static bool bytes_ok(const uint8_t *p, size_t len)
{
    return p != NULL || len == 0;
}

vtpmca_err credential_kdfa(uint16_t hash_alg, const uint8_t *key, size_t key_len, const char *label,
                           const uint8_t *context_u, size_t context_u_len, const uint8_t *context_v,
                           size_t context_v_len, uint8_t *out, size_t out_len, vtpmca_diag *diag)
{
    if (key == NULL || key_len == 0 || label == NULL || !bytes_ok(context_u, context_u_len) ||
        !bytes_ok(context_v, context_v_len) || out == NULL || out_len == 0 || out_len > KDF_OUT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "KDFa: bad arguments");
    const char *md_name = NULL;
    uint8_t *context = NULL;
    size_t context_len = 0;
    vtpmca_err err = kdf_inputs(hash_alg, context_u, context_u_len, context_v, context_v_len,
                                &md_name, &context, &context_len, diag);
    if (err != VTPMCA_OK)
        return err;
    /* KBKDF's defaults are the TPM's layout: a 32-bit counter, the 0x00 separator after the
     * label (so the label's NUL is that separator) and the 32-bit output length in bits. */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, "counter", 0),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, "HMAC", 0),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, context, context_len),
        OSSL_PARAM_construct_end(),
    };
    err = run_kdf("KBKDF", params, out, out_len, diag);
    free(context);
    return err;
}

vtpmca_err credential_kdfe(uint16_t hash_alg, const uint8_t *z, size_t z_len, const char *label,
                           const uint8_t *party_u, size_t party_u_len, const uint8_t *party_v,
                           size_t party_v_len, uint8_t *out, size_t out_len, vtpmca_diag *diag)
{
    if (z == NULL || z_len == 0 || label == NULL || !bytes_ok(party_u, party_u_len) ||
        !bytes_ok(party_v, party_v_len) || out == NULL || out_len == 0 || out_len > KDF_OUT_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "KDFe: bad arguments");
    /* OtherInfo = label || 0x00 || partyUInfo || partyVInfo. */
    size_t label_len = strlen(label) + 1;
    uint8_t *parties = NULL, *info = NULL;
    size_t parties_len = 0, info_len = 0;
    const char *md_name = NULL;
    vtpmca_err err = kdf_inputs(hash_alg, party_u, party_u_len, party_v, party_v_len, &md_name,
                                &parties, &parties_len, diag);
    if (err == VTPMCA_OK)
        err = kdf_inputs(hash_alg, (const uint8_t *)label, label_len, parties, parties_len,
                         &md_name, &info, &info_len, diag);
    if (err == VTPMCA_OK) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name, 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)z, z_len),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len),
            OSSL_PARAM_construct_end(),
        };
        err = run_kdf("SSKDF", params, out, out_len, diag);
    }
    free(parties);
    free(info);
    return err;
}

/* ---- the seed ---- */

typedef struct {
    tpm2_public ek;
    const EVP_MD *md;
    size_t digest_len;
    EVP_PKEY *key;
} ek_info;

/* Parses the EK and checks it can protect a credential. */
static vtpmca_err load_ek(const uint8_t *ek_public, size_t len, ek_info *ek, vtpmca_diag *diag)
{
    vtpmca_diag inner = {{0}};
    vtpmca_err err = tpm2_public_parse(ek_public, len, &ek->ek, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "credential: EK: %s", inner.msg);
    const tpm2_public *p = &ek->ek;
    uint32_t need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    if ((p->object_attributes & need) != need)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "credential: the EK is not a restricted decryption key "
                           "(objectAttributes 0x%08x)",
                           p->object_attributes);
    if (p->sym_alg != TPM2_ALG_AES || p->sym_mode != TPM2_ALG_CFB ||
        (p->sym_key_bits != 128 && p->sym_key_bits != 192 && p->sym_key_bits != 256))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "credential: the EK's symmetric algorithm 0x%04x/%u/0x%04x is not "
                           "AES-CFB",
                           p->sym_alg, p->sym_key_bits, p->sym_mode);
    if (tpm2_hash_alg_md(p->name_alg, &ek->md, &ek->digest_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "credential: the EK's nameAlg 0x%04x is not supported", p->name_alg);
    if (p->type == TPM2_ALG_RSA && (p->rsa_key_bits < 2048 || p->rsa_key_bits > 4096))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "credential: RSA-%u EKs are not supported",
                           p->rsa_key_bits);
    err = vtpm_tpmt_public_to_evp(ek_public, len, &ek->key, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "credential: EK key: %s", inner.msg);
    return VTPMCA_OK;
}

/* RSA EK: a random seed, OAEP-encrypted with the label "IDENTITY\0". */
static vtpmca_err rsa_seed(const ek_info *ek, uint8_t *seed, uint8_t **secret, size_t *secret_len,
                           vtpmca_diag *diag)
{
    if (RAND_bytes(seed, (int)ek->digest_len) != 1)
        return openssl_fail(diag, "RAND_bytes");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek->key, NULL);
    unsigned char *label = OPENSSL_memdup(LABEL_IDENTITY, sizeof(LABEL_IDENTITY));
    size_t len = 0;
    bool ok = ctx != NULL && label != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, ek->md) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, ek->md) == 1 &&
              EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, (int)sizeof(LABEL_IDENTITY)) == 1;
    if (ok)
        label = NULL; /* owned by ctx now */
    ok = ok && EVP_PKEY_encrypt(ctx, NULL, &len, seed, ek->digest_len) == 1;
    *secret = ok ? malloc(len) : NULL;
    ok = ok && *secret != NULL && EVP_PKEY_encrypt(ctx, *secret, &len, seed, ek->digest_len) == 1;
    OPENSSL_free(label);
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        free(*secret);
        *secret = NULL;
        return openssl_fail(diag, "RSA-OAEP encryption of the seed");
    }
    *secret_len = len;
    return VTPMCA_OK;
}

/* x and y of an EC key, each padded to `size` bytes. */
static bool ec_coordinates(const EVP_PKEY *key, size_t size, uint8_t *x, uint8_t *y)
{
    BIGNUM *bx = NULL, *by = NULL;
    bool ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
              BN_bn2binpad(bx, x, (int)size) == (int)size &&
              BN_bn2binpad(by, y, (int)size) == (int)size;
    BN_free(bx);
    BN_free(by);
    return ok;
}

/* ECC EK: ECDH with an ephemeral key, the seed from KDFe; the secret is the ephemeral
 * point as TPMS_ECC_POINT. */
static vtpmca_err ecc_seed(const ek_info *ek, uint8_t *seed, uint8_t **secret, size_t *secret_len,
                           vtpmca_diag *diag)
{
    size_t size = ek->ek.unique_a_len;
    if (size == 0 || size > ECC_COORD_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "credential: EK point of %zu bytes", size);
    char group[32];
    if (EVP_PKEY_get_utf8_string_param(ek->key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1)
        return openssl_fail(diag, "reading the EK's curve");
    EVP_PKEY *eph = EVP_EC_gen(group);
    EVP_PKEY_CTX *ctx = eph != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL) : NULL;
    uint8_t z[ECC_COORD_MAX], x[ECC_COORD_MAX], y[ECC_COORD_MAX];
    size_t z_len = sizeof(z);
    bool ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
              EVP_PKEY_derive_set_peer(ctx, ek->key) == 1 && EVP_PKEY_derive(ctx, z, &z_len) == 1 &&
              z_len == size && ec_coordinates(eph, size, x, y);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(eph); /* the ephemeral private key is not needed any more */
    if (!ok) {
        OPENSSL_cleanse(z, sizeof(z));
        return openssl_fail(diag, "ECDH with the EK");
    }
    vtpmca_err err = credential_kdfe(ek->ek.name_alg, z, z_len, LABEL_IDENTITY, x, size,
                                     ek->ek.unique_a, size, seed, ek->digest_len, diag);
    OPENSSL_cleanse(z, sizeof(z));
    if (err != VTPMCA_OK)
        return err;
    tpm2_writer w;
    uint8_t point[2 * (2 + ECC_COORD_MAX)];
    tpm2_writer_init(&w, point, sizeof(point));
    tpm2_put_tpm2b(&w, x, size);
    tpm2_put_tpm2b(&w, y, size);
    if (w.err != VTPMCA_OK || (*secret = malloc(w.len)) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "credential: out of memory");
    memcpy(*secret, point, w.len);
    *secret_len = w.len;
    return VTPMCA_OK;
}

/* ---- the credential blob ---- */

static const EVP_CIPHER *aes_cfb(uint16_t bits)
{
    return bits == 128   ? EVP_aes_128_cfb128()
           : bits == 192 ? EVP_aes_192_cfb128()
                         : EVP_aes_256_cfb128();
}

/* AES-CFB with a zero IV, in place. */
static vtpmca_err cfb_encrypt(uint16_t bits, const uint8_t *key, uint8_t *data, size_t len,
                              vtpmca_diag *diag)
{
    static const uint8_t zero_iv[16] = {0};
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int out_len = 0, final_len = 0;
    bool ok = ctx != NULL && EVP_EncryptInit_ex(ctx, aes_cfb(bits), NULL, key, zero_iv) == 1 &&
              EVP_EncryptUpdate(ctx, data, &out_len, data, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, data + out_len, &final_len) == 1 &&
              (size_t)(out_len + final_len) == len;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? VTPMCA_OK : openssl_fail(diag, "AES-CFB");
}

static vtpmca_err hmac(const EVP_MD *md, const uint8_t *key, size_t key_len, const uint8_t *a,
                       size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out, size_t out_len,
                       vtpmca_diag *diag)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_end(),
    };
    size_t len = 0;
    bool ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
              EVP_MAC_update(ctx, a, a_len) == 1 && EVP_MAC_update(ctx, b, b_len) == 1 &&
              EVP_MAC_final(ctx, out, &len, out_len) == 1 && len == out_len;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? VTPMCA_OK : openssl_fail(diag, "HMAC");
}

/* integrityHMAC TPM2B || encIdentity, from the seed. */
static vtpmca_err make_blob(const ek_info *ek, const uint8_t *seed, const uint8_t *credential,
                            size_t credential_len, const uint8_t *name, size_t name_len,
                            uint8_t **blob, size_t *blob_len, vtpmca_diag *diag)
{
    size_t n = ek->digest_len;
    size_t enc_len = 2 + credential_len;
    size_t total = 2 + n + enc_len;
    uint8_t *out = malloc(total);
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "credential: out of memory");
    uint8_t *integrity = out + 2, *enc = out + 2 + n;
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    enc[0] = (uint8_t)(credential_len >> 8); /* the TPM2B_DIGEST credential */
    enc[1] = (uint8_t)credential_len;
    memcpy(enc + 2, credential, credential_len);

    uint8_t sym_key[32], hmac_key[TPM2_MAX_DIGEST];
    size_t sym_len = ek->ek.sym_key_bits / 8u;
    vtpmca_err err = credential_kdfa(ek->ek.name_alg, seed, n, LABEL_STORAGE, name, name_len, NULL,
                                     0, sym_key, sym_len, diag);
    if (err == VTPMCA_OK)
        err = cfb_encrypt(ek->ek.sym_key_bits, sym_key, enc, enc_len, diag);
    if (err == VTPMCA_OK)
        err = credential_kdfa(ek->ek.name_alg, seed, n, LABEL_INTEGRITY, NULL, 0, NULL, 0, hmac_key,
                              n, diag);
    if (err == VTPMCA_OK)
        err = hmac(ek->md, hmac_key, n, enc, enc_len, name, name_len, integrity, n, diag);
    OPENSSL_cleanse(sym_key, sizeof(sym_key));
    OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
    if (err != VTPMCA_OK) {
        OPENSSL_clear_free(out, total);
        return err;
    }
    *blob = out;
    *blob_len = total;
    return VTPMCA_OK;
}

/* A name is nameAlg || H(...) with a digest of that algorithm's size. */
static vtpmca_err check_name(const uint8_t *name, size_t len, vtpmca_diag *diag)
{
    const EVP_MD *md = NULL;
    size_t digest_len = 0;
    if (name == NULL || len < 2 || len > TPM2_NAME_MAX ||
        tpm2_hash_alg_md((uint16_t)(name[0] << 8 | name[1]), &md, &digest_len) != VTPMCA_OK ||
        len != 2 + digest_len)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "credential: the object name (%zu bytes) is not nameAlg || digest", len);
    return VTPMCA_OK;
}

vtpmca_err credential_make(const uint8_t *ek_public, size_t ek_public_len,
                           const uint8_t *credential, size_t credential_len,
                           const uint8_t *object_name, size_t object_name_len,
                           credential_result *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ek_public == NULL || ek_public_len == 0 || credential == NULL || credential_len == 0 ||
        out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "credential: missing argument");
    vtpmca_err err = check_name(object_name, object_name_len, diag);
    if (err != VTPMCA_OK)
        return err;
    ek_info ek;
    memset(&ek, 0, sizeof(ek));
    err = load_ek(ek_public, ek_public_len, &ek, diag);
    if (err == VTPMCA_OK && credential_len > ek.digest_len)
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "credential: %zu bytes exceed the EK nameAlg's digest size (%zu)",
                          credential_len, ek.digest_len);
    uint8_t seed[TPM2_MAX_DIGEST];
    if (err == VTPMCA_OK)
        err = ek.ek.type == TPM2_ALG_RSA
                  ? rsa_seed(&ek, seed, &out->secret, &out->secret_len, diag)
                  : ecc_seed(&ek, seed, &out->secret, &out->secret_len, diag);
    if (err == VTPMCA_OK)
        err = make_blob(&ek, seed, credential, credential_len, object_name, object_name_len,
                        &out->blob, &out->blob_len, diag);
    OPENSSL_cleanse(seed, sizeof(seed));
    EVP_PKEY_free(ek.key);
    if (err != VTPMCA_OK)
        credential_result_free(out);
    return err;
}

void credential_result_free(credential_result *res)
{
    if (res == NULL)
        return;
    if (res->blob != NULL)
        OPENSSL_clear_free(res->blob, res->blob_len);
    free(res->secret);
    memset(res, 0, sizeof(*res));
}
