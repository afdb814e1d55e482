/* The KBS ECDSA binding: the service's static ECDSA key signs the JWE ephemeral key, the
 * session nonce and the TEE key, so the SVSM learns an authenticated KBS public key. The
 * byte layout is specified in docs/protocol.md ("KBS ECDSA binding"). */
#include "vtpmca/kbs_binding.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jws.h"
#include "vtpmca/log.h"
#include "vtpmca/pem_key.h"
#include "vtpmca/text.h"

/* The JWS algorithm of each kbs_key_curve, in enum order. */
static const char *const curve_algs[] = {
    [KBS_KEY_P384] = "ES384",
    [KBS_KEY_P256] = "ES256",
};

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "%s", what);
    vtpmca_diag_append_openssl(diag);
    return err;
}

/* ---- key management ---- */

vtpmca_err kbs_key_generate(kbs_key_curve curve, EVP_PKEY **out, vtpmca_diag *diag)
{
    if (out == NULL || (curve != KBS_KEY_P384 && curve != KBS_KEY_P256))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs key generate: bad argument");
    *out = EVP_EC_gen(jws_es_suite_by_alg(curve_algs[curve])->ossl_group);
    if (*out == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "KBS key generation failed");
    return VTPMCA_OK;
}

static void warn_if_exposed(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
        vtpmca_log(VTPMCA_LOG_WARN, "kbs_key.permissions", "path", path, "mode", mode, "hint",
                   "the KBS key file should be mode 0600", NULL);
    }
}

vtpmca_err kbs_key_load(const char *path, EVP_PKEY **out, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs key load: missing argument");
    *out = NULL;
    EVP_PKEY *key = NULL;
    vtpmca_err err = vt_pem_private_key_read(path, KBS_KEY_FILE_MAX, NULL, &key, diag);
    if (err != VTPMCA_OK)
        return err;
    if (jws_es_suite_by_key(key) == NULL) {
        EVP_PKEY_free(key);
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "%s: the KBS key must be EC P-384 or P-256", path);
    }
    /* Full check: the private scalar matches the public point. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(key);
        ERR_clear_error(); /* diag explains it; keep the queue clean for later calls */
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: the KBS key pair is inconsistent", path);
    }
    warn_if_exposed(path);
    *out = key;
    return VTPMCA_OK;
}

vtpmca_err kbs_key_save(const EVP_PKEY *key, const char *path, vtpmca_diag *diag)
{
    if (key == NULL || path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs key save: missing argument");
    if (jws_es_suite_by_key(key) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "the KBS key must be EC P-384 or P-256");
    /* Secure-heap BIO: the PEM text is wiped when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err;
    char *pem = NULL;
    long pem_len = 0;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0)
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot encode the KBS private key");
    else
        err = vt_file_write_atomic(path, pem, (size_t)pem_len, 0600, diag);
    BIO_free(bio);
    return err;
}

vtpmca_err kbs_key_load_or_create(const char *path, kbs_key_curve curve, EVP_PKEY **out,
                                  int *created, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL || (curve != KBS_KEY_P384 && curve != KBS_KEY_P256))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs key: bad argument");
    *out = NULL;
    if (created != NULL)
        *created = 0;
    if (access(path, F_OK) == 0 || errno != ENOENT)
        return kbs_key_load(path, out, diag);
    EVP_PKEY *key = NULL;
    vtpmca_err err = kbs_key_generate(curve, &key, diag);
    if (err == VTPMCA_OK)
        err = kbs_key_save(key, path, diag);
    if (err != VTPMCA_OK) {
        EVP_PKEY_free(key);
        return err;
    }
    vtpmca_log(VTPMCA_LOG_INFO, "kbs_key.created", "path", path, "alg", curve_algs[curve], NULL);
    if (created != NULL)
        *created = 1;
    *out = key;
    return VTPMCA_OK;
}

vtpmca_err kbs_key_fingerprint(const EVP_PKEY *key, uint8_t out[KBS_KEY_FINGERPRINT_LEN],
                               vtpmca_diag *diag)
{
    if (key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "fingerprint: missing argument");
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(key, &der);
    if (der_len <= 0)
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot encode the public key");
    unsigned int md_len = 0;
    int ok = EVP_Digest(der, (size_t)der_len, out, &md_len, EVP_sha256(), NULL) == 1 &&
             md_len == KBS_KEY_FINGERPRINT_LEN;
    OPENSSL_free(der);
    return ok ? VTPMCA_OK : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-256 failed");
}

/* ---- the signed message ---- */

static size_t put_field(uint8_t *out, const uint8_t *data, size_t len)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    memcpy(out + 4, data, len);
    return 4 + len;
}

vtpmca_err kbs_binding_message_points(const uint8_t *epk_point, size_t epk_len,
                                      const uint8_t *nonce, size_t nonce_len,
                                      const uint8_t *tee_point, size_t tee_len, uint8_t *out,
                                      size_t out_size, size_t *out_len, vtpmca_diag *diag)
{
    if (nonce == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding: missing argument");
    if (nonce_len == 0 || nonce_len > KBS_BINDING_MAX_NONCE)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding: nonce must be 1..%d bytes",
                           KBS_BINDING_MAX_NONCE);
    if (jwe_ec_point_curve_name(epk_point, epk_len) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs binding: epk must be an uncompressed P-256/P-384/P-521 point");
    /* ECDH-ES puts the ephemeral key on the recipient's curve; anything else is misuse. The
     * point length names the curve. */
    if (jwe_ec_point_curve_name(tee_point, tee_len) == NULL || tee_len != epk_len)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs binding: tee-pubkey must be an EC point on the epk's curve");
    size_t need = sizeof(KBS_BINDING_LABEL) + 12 + epk_len + nonce_len + tee_len;
    if (out_size < need)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding: buffer needs %zu bytes",
                           need);
    size_t used = sizeof(KBS_BINDING_LABEL); /* the label and its NUL */
    memcpy(out, KBS_BINDING_LABEL, used);
    used += put_field(out + used, epk_point, epk_len);
    used += put_field(out + used, nonce, nonce_len);
    used += put_field(out + used, tee_point, tee_len);
    *out_len = used;
    return VTPMCA_OK;
}

/* Both points of a binding, from keys that must be EC on one supported curve. */
typedef struct {
    uint8_t epk[JWE_EC_POINT_MAX], tee[JWE_EC_POINT_MAX];
    size_t epk_len, tee_len;
} binding_points;

static vtpmca_err encode_binding_points(const EVP_PKEY *epk, const EVP_PKEY *tee_pubkey,
                                        binding_points *out, vtpmca_diag *diag)
{
    const char *epk_curve = jwe_ec_curve_name(epk), *tee_curve = jwe_ec_curve_name(tee_pubkey);
    if (epk_curve == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs binding: epk must be an EC P-256/P-384/P-521 key");
    /* ECDH-ES puts the ephemeral key on the recipient's curve; anything else is misuse. */
    if (tee_curve == NULL || strcmp(epk_curve, tee_curve) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs binding: tee-pubkey must be an EC key on the epk's curve %s",
                           epk_curve);
    vtpmca_err err = jwe_ec_point_encode(epk, out->epk, &out->epk_len, diag);
    return err == VTPMCA_OK ? jwe_ec_point_encode(tee_pubkey, out->tee, &out->tee_len, diag) : err;
}

vtpmca_err kbs_binding_message(const EVP_PKEY *epk, const uint8_t *nonce, size_t nonce_len,
                               const EVP_PKEY *tee_pubkey, uint8_t *out, size_t out_size,
                               size_t *out_len, vtpmca_diag *diag)
{
    if (epk == NULL || nonce == NULL || tee_pubkey == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding: missing argument");
    binding_points p;
    vtpmca_err err = encode_binding_points(epk, tee_pubkey, &p, diag);
    return err != VTPMCA_OK ? err
                            : kbs_binding_message_points(p.epk, p.epk_len, nonce, nonce_len, p.tee,
                                                         p.tee_len, out, out_size, out_len, diag);
}

/* ---- sign / verify ---- */

/* The unprotected header as compact JSON text: the one definition of its shape. The values
 * are an alg name, JWK text from json_dumps, base64url and an integer: nothing to escape. */
#define BINDING_HEADER_FMT                                                                         \
    "{\"" KBS_BINDING_HEADER "\":{\"alg\":\"%s\",\"kbs-key\":%s,\"sig\":\"%s\",\"v\":%d}}"

vtpmca_err kbs_binding_jwk_text(const EVP_PKEY *kbs_key, char **out, vtpmca_diag *diag)
{
    if (kbs_key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs jwk: missing argument");
    *out = NULL;
    if (jws_es_suite_by_key(kbs_key) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "the KBS key must be EC P-384 or P-256");
    json_t *jwk = NULL;
    vtpmca_err err = jwe_pubkey_to_jwk(kbs_key, JWE_JWK_RFC7517, &jwk, diag);
    if (err != VTPMCA_OK)
        return err;
    *out = json_dumps(jwk, JSON_COMPACT);
    json_decref(jwk);
    return *out != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

vtpmca_err kbs_binding_sign_points_text(const EVP_PKEY *kbs_key, const char *kbs_jwk_text,
                                        const uint8_t *epk_point, size_t epk_len,
                                        const uint8_t *nonce, size_t nonce_len,
                                        const uint8_t *tee_point, size_t tee_len, char **header_out,
                                        size_t *header_len, vtpmca_diag *diag)
{
    if (kbs_key == NULL || header_out == NULL || header_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding sign: missing argument");
    *header_out = NULL;
    *header_len = 0;
    const jws_es_suite *suite = jws_es_suite_by_key(kbs_key);
    if (suite == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "the KBS key must be EC P-384 or P-256");
    size_t jwk_len = kbs_jwk_text != NULL ? strlen(kbs_jwk_text) : 0;
    if (kbs_jwk_text != NULL &&
        (jwk_len < 2 || kbs_jwk_text[0] != '{' || kbs_jwk_text[jwk_len - 1] != '}'))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "kbs binding sign: kbs_jwk_text is not a JWK object's text");
    uint8_t message[KBS_BINDING_MESSAGE_MAX];
    size_t message_len = 0;
    vtpmca_err err =
        kbs_binding_message_points(epk_point, epk_len, nonce, nonce_len, tee_point, tee_len,
                                   message, sizeof(message), &message_len, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t raw[JWS_ES_SIG_MAX];
    size_t raw_len = 0;
    err = jws_es_sign(kbs_key, message, message_len, raw, &raw_len, diag);
    if (err != VTPMCA_OK)
        return err;

    char *sig_text = NULL, *own_jwk = NULL;
    err = vt_b64_encode_alloc(raw, raw_len, VT_B64_URL_NOPAD, &sig_text);
    if (err == VTPMCA_OK && kbs_jwk_text == NULL)
        err = kbs_binding_jwk_text(kbs_key, &own_jwk, diag);
    const char *jwk_text = kbs_jwk_text != NULL ? kbs_jwk_text : own_jwk;
    if (err == VTPMCA_OK && vt_text_printf(header_out, header_len, BINDING_HEADER_FMT, suite->alg,
                                           jwk_text, sig_text, KBS_BINDING_VERSION) != VTPMCA_OK)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    free(own_jwk);
    free(sig_text);
    return err;
}

vtpmca_err kbs_binding_sign_points(const EVP_PKEY *kbs_key, const json_t *kbs_jwk,
                                   const uint8_t *epk_point, size_t epk_len, const uint8_t *nonce,
                                   size_t nonce_len, const uint8_t *tee_point, size_t tee_len,
                                   json_t **header_out, vtpmca_diag *diag)
{
    if (kbs_key == NULL || header_out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding sign: missing argument");
    *header_out = NULL;
    if (kbs_jwk != NULL && !json_is_object(kbs_jwk))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding sign: kbs_jwk not a JWK");
    /* The text form parsed back, so both forms have one shape. */
    char *jwk_text = kbs_jwk != NULL ? json_dumps(kbs_jwk, JSON_COMPACT) : NULL;
    if (kbs_jwk != NULL && jwk_text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    vtpmca_err err = kbs_binding_sign_points_text(kbs_key, jwk_text, epk_point, epk_len, nonce,
                                                  nonce_len, tee_point, tee_len, &text, &len, diag);
    free(jwk_text);
    if (err != VTPMCA_OK)
        return err;
    *header_out = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    return *header_out != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

vtpmca_err kbs_binding_sign(const EVP_PKEY *kbs_key, const EVP_PKEY *epk, const uint8_t *nonce,
                            size_t nonce_len, const EVP_PKEY *tee_pubkey, json_t **header_out,
                            vtpmca_diag *diag)
{
    if (kbs_key == NULL || epk == NULL || tee_pubkey == NULL || header_out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding sign: missing argument");
    *header_out = NULL;
    binding_points p;
    vtpmca_err err = encode_binding_points(epk, tee_pubkey, &p, diag);
    return err != VTPMCA_OK
               ? err
               : kbs_binding_sign_points(kbs_key, NULL, p.epk, p.epk_len, nonce, nonce_len, p.tee,
                                         p.tee_len, header_out, diag);
}

static vtpmca_err check_binding_members(const json_t *binding, vtpmca_diag *diag)
{
    static const char *const allowed[] = {"alg", "kbs-key", "sig", "v"};
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)binding, name, value)
    {
        size_t i = 0;
        while (i < sizeof(allowed) / sizeof(allowed[0]) && strcmp(allowed[i], name) != 0)
            i++;
        if (i == sizeof(allowed) / sizeof(allowed[0]))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unexpected kbs-binding member \"%.32s\"",
                               name);
    }
    const json_t *version = json_object_get(binding, "v");
    if (!json_is_integer(version))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "kbs-binding \"v\" is missing or not an integer");
    if (json_integer_value(version) != KBS_BINDING_VERSION)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs-binding version %" JSON_INTEGER_FORMAT " is not supported",
                           json_integer_value(version));
    return VTPMCA_OK;
}

vtpmca_err kbs_binding_verify(const json_t *header, const EVP_PKEY *epk, const uint8_t *nonce,
                              size_t nonce_len, const EVP_PKEY *tee_pubkey,
                              const EVP_PKEY *expected_kbs_key, EVP_PKEY **kbs_pubkey_out,
                              vtpmca_diag *diag)
{
    if (header == NULL || epk == NULL || nonce == NULL || tee_pubkey == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding verify: missing argument");
    if (kbs_pubkey_out != NULL)
        *kbs_pubkey_out = NULL;
    const json_t *binding = json_object_get(header, KBS_BINDING_HEADER);
    if (!json_is_object(binding))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "header has no \"%s\" object",
                           KBS_BINDING_HEADER);
    vtpmca_err err = check_binding_members(binding, diag);
    if (err != VTPMCA_OK)
        return err;
    const char *alg = json_string_value(json_object_get(binding, "alg"));
    const char *sig_text = json_string_value(json_object_get(binding, "sig"));
    if (alg == NULL || sig_text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "kbs-binding \"alg\" and \"sig\" must be strings");
    const jws_es_suite *suite = jws_es_suite_by_alg(alg);
    if (suite == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs-binding alg \"%.16s\" is not supported", alg);
    const json_t *jwk = json_object_get(binding, "kbs-key");
    if (!json_is_object(jwk))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "kbs-binding \"kbs-key\" is not a JWK object");

    EVP_PKEY *kbs_key = NULL;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    uint8_t message[KBS_BINDING_MESSAGE_MAX];
    size_t message_len = 0;
    err = jwe_pubkey_from_jwk(jwk, JWE_JWK_RFC7517, &kbs_key, diag);
    if (err != VTPMCA_OK)
        goto out;
    if (jws_es_suite_by_key(kbs_key) != suite) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "kbs-binding alg %s does not match kbs-key %s",
                          suite->alg,
                          jwe_ec_curve_name(kbs_key) ? jwe_ec_curve_name(kbs_key) : "(not EC)");
        goto out;
    }
    if (jwe_b64url_decode(sig_text, strlen(sig_text), &raw, &raw_len) != VTPMCA_OK ||
        raw_len != 2 * suite->field_len) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "kbs-binding \"sig\" must be %zu bytes of unpadded base64url",
                          2 * suite->field_len);
        goto out;
    }
    err = kbs_binding_message(epk, nonce, nonce_len, tee_pubkey, message, sizeof(message),
                              &message_len, diag);
    if (err == VTPMCA_OK)
        err = jws_es_verify(kbs_key, message, message_len, raw, raw_len, diag);
    if (err != VTPMCA_OK)
        goto out;
    if (expected_kbs_key != NULL && EVP_PKEY_eq(expected_kbs_key, kbs_key) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                          "kbs-binding is signed by a different KBS key than the remembered one");
        goto out;
    }
    if (kbs_pubkey_out != NULL) {
        *kbs_pubkey_out = kbs_key;
        kbs_key = NULL;
    }
out:
    EVP_PKEY_free(kbs_key);
    free(raw);
    return err;
}

vtpmca_err kbs_binding_verify_jwe(const json_t *jwe, const uint8_t *nonce, size_t nonce_len,
                                  const EVP_PKEY *tee_pubkey, const EVP_PKEY *expected_kbs_key,
                                  EVP_PKEY **kbs_pubkey_out, vtpmca_diag *diag)
{
    if (jwe == NULL || nonce == NULL || tee_pubkey == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kbs binding verify: missing argument");
    if (kbs_pubkey_out != NULL)
        *kbs_pubkey_out = NULL;
    jwe_alg alg = 0;
    EVP_PKEY *epk = NULL;
    vtpmca_err err = jwe_get_epk(jwe, &alg, &epk, diag);
    if (err != VTPMCA_OK)
        return err;
    const json_t *header = json_object_get(jwe, JWE_UNPROTECTED_HEADER);
    if (alg != JWE_ALG_ECDH_ES_A256KW)
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                          "only ECDH-ES+A256KW JWEs carry a KBS binding");
    else if (header == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "JWE has no unprotected \"header\" member");
    else
        err = kbs_binding_verify(header, epk, nonce, nonce_len, tee_pubkey, expected_kbs_key,
                                 kbs_pubkey_out, diag);
    EVP_PKEY_free(epk);
    return err;
}
