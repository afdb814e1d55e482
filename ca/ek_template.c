/* EK template and IAK checks (see vtpmca/ek_template.h). The EK check compares the parsed
 * area field by field with vtpm_ek_template, so the templates are defined in one place
 * (ca/tpm2_marshal.c); the key itself is validated by vtpm_tpmt_public_check_key. */
#include "vtpmca/ek_template.h"

#include <stdbool.h>
#include <string.h>

#define RSA_EXPONENT_65537 65537u

const char *ek_template_name(vtpm_ek_kind kind)
{
    switch (kind) {
    case VTPM_EK_RSA2048:
        return "L-1 (RSA-2048)";
    case VTPM_EK_ECC_P256:
        return "L-2 (ECC P-256)";
    case VTPM_EK_ECC_P384:
        return "H-3 (ECC P-384)";
    }
    return NULL;
}

static const char *curve_name(uint16_t curve)
{
    switch (curve) {
    case TPM2_ECC_NIST_P256:
        return "NIST P-256";
    case TPM2_ECC_NIST_P384:
        return "NIST P-384";
    case TPM2_ECC_NIST_P521:
        return "NIST P-521";
    }
    return "another curve";
}

/* Coordinate size of the curves we certify; 0 for others. */
static size_t curve_size(uint16_t curve)
{
    return curve == TPM2_ECC_NIST_P256 ? 32 : curve == TPM2_ECC_NIST_P384 ? 48 : 0;
}

/* The unique field must hold the key at its full size, and the key must be valid (modulus
 * of exactly keyBits, point on the curve). */
static vtpmca_err check_key(const uint8_t *tpmt_public, size_t len, const tpm2_public *pub,
                            const char *what, vtpmca_diag *diag)
{
    if (pub->type == TPM2_ALG_RSA) {
        if (pub->unique_a_len != 256)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "%s: unique holds a %zu-byte modulus; RSA-2048 needs 256 bytes",
                               what, pub->unique_a_len);
    } else {
        size_t size = curve_size(pub->curve);
        if (pub->unique_a_len != size || pub->unique_b_len != size)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "%s: unique holds x and y of %zu and %zu bytes; %s needs %zu each",
                               what, pub->unique_a_len, pub->unique_b_len, curve_name(pub->curve),
                               size);
    }
    vtpmca_diag inner = {{0}};
    if (vtpm_tpmt_public_check_key(tpmt_public, len, &inner) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: unique is not a valid public key: %s", what,
                           inner.msg);
    return VTPMCA_OK;
}

/* ---- EK ---- */

/* The default template an area claims to instantiate, from its type and size or curve. */
static vtpmca_err pick_template(const tpm2_public *pub, vtpm_ek_kind *kind, vtpmca_diag *diag)
{
    if (pub->type == TPM2_ALG_RSA) {
        if (pub->rsa_key_bits != 2048)
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                               "EK: RSA-%u is not a supported EK (RSA-2048, template L-1, only)",
                               pub->rsa_key_bits);
        *kind = VTPM_EK_RSA2048;
        return VTPMCA_OK;
    }
    if (pub->curve == TPM2_ECC_NIST_P256) {
        *kind = VTPM_EK_ECC_P256;
        return VTPMCA_OK;
    }
    if (pub->curve == TPM2_ECC_NIST_P384) {
        *kind = VTPM_EK_ECC_P384;
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                       "EK: ECC curve 0x%04x (%s) is not supported (P-256, template L-2, and "
                       "P-384, template H-3, only)",
                       pub->curve, curve_name(pub->curve));
}

/* Compares every field but unique with the template. */
static vtpmca_err compare_with_template(const tpm2_public *pub, const tpm2_public *t,
                                        const char *name, vtpmca_diag *diag)
{
    if (pub->name_alg != t->name_alg)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: nameAlg 0x%04x differs from template %s (0x%04x)", pub->name_alg,
                           name, t->name_alg);
    if (pub->object_attributes != t->object_attributes)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: objectAttributes 0x%08x differ from template %s (0x%08x; bits "
                           "0x%08x differ)",
                           pub->object_attributes, name, t->object_attributes,
                           pub->object_attributes ^ t->object_attributes);
    if (pub->auth_policy_len != t->auth_policy_len ||
        memcmp(pub->auth_policy, t->auth_policy, t->auth_policy_len) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: authPolicy (%zu bytes) is not the policy of template %s (%s)",
                           pub->auth_policy_len, name,
                           t->auth_policy_len == 32 ? "PolicyA_SHA256" : "PolicyB_SHA384");
    if (pub->sym_alg != t->sym_alg || pub->sym_key_bits != t->sym_key_bits ||
        pub->sym_mode != t->sym_mode)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: symmetric 0x%04x/%u/0x%04x differs from template %s (AES-%u-CFB)",
                           pub->sym_alg, pub->sym_key_bits, pub->sym_mode, name, t->sym_key_bits);
    if (pub->scheme != t->scheme)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: scheme 0x%04x differs from template %s (TPM_ALG_NULL)", pub->scheme,
                           name);
    if (pub->type == TPM2_ALG_RSA && pub->rsa_exponent != t->rsa_exponent)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: exponent %u differs from template %s (0, meaning 65537)",
                           pub->rsa_exponent, name);
    if (pub->type == TPM2_ALG_ECC && pub->kdf != t->kdf)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "EK: kdf 0x%04x differs from template %s (TPM_ALG_NULL)", pub->kdf,
                           name);
    return VTPMCA_OK;
}

vtpmca_err ek_template_check_ek(const uint8_t *tpmt_public, size_t len, vtpm_ek_kind *kind,
                                vtpmca_diag *diag)
{
    if (tpmt_public == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "EK: no public area");
    tpm2_public pub;
    vtpmca_diag inner = {{0}};
    vtpmca_err err = tpm2_public_parse(tpmt_public, len, &pub, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "EK: %s", inner.msg);
    vtpm_ek_kind picked = VTPM_EK_RSA2048;
    err = pick_template(&pub, &picked, diag);
    if (err != VTPMCA_OK)
        return err;
    tpm2_public t;
    if (vtpm_ek_template(picked, &t) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "EK: no template %d", (int)picked);
    err = compare_with_template(&pub, &t, ek_template_name(picked), diag);
    if (err == VTPMCA_OK)
        err = check_key(tpmt_public, len, &pub, "EK", diag);
    if (err == VTPMCA_OK && kind != NULL)
        *kind = picked;
    return err;
}

/* ---- IAK ---- */

static bool is_name_hash(uint16_t alg)
{
    return alg == TPM2_ALG_SHA256 || alg == TPM2_ALG_SHA384 || alg == TPM2_ALG_SHA512;
}

vtpmca_err ek_template_check_iak(const uint8_t *tpmt_public, size_t len, vtpmca_diag *diag)
{
    if (tpmt_public == NULL || len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "IAK: no public area");
    tpm2_public pub;
    vtpmca_diag inner = {{0}};
    vtpmca_err err = tpm2_public_parse(tpmt_public, len, &pub, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "IAK: %s", inner.msg);
    if (pub.type == TPM2_ALG_RSA && pub.rsa_key_bits != 2048)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: RSA-%u is not supported (RSA-2048, P-256 or P-384)",
                           pub.rsa_key_bits);
    if (pub.type == TPM2_ALG_ECC && curve_size(pub.curve) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: curve 0x%04x (%s) is not supported (RSA-2048, P-256 or P-384)",
                           pub.curve, curve_name(pub.curve));
    if (!is_name_hash(pub.name_alg))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: nameAlg 0x%04x is not SHA-256, SHA-384 or SHA-512", pub.name_alg);
    static const uint32_t required = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                     TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |
                                     TPMA_OBJECT_SIGN_ENCRYPT;
    uint32_t missing = required & ~pub.object_attributes;
    if (missing != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: objectAttributes 0x%08x lack 0x%08x (fixedTPM, fixedParent, "
                           "sensitiveDataOrigin, restricted and sign are required)",
                           pub.object_attributes, missing);
    if (pub.object_attributes & TPMA_OBJECT_DECRYPT)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: objectAttributes 0x%08x set decrypt: an IAK only signs",
                           pub.object_attributes);
    if (pub.sym_alg != TPM2_ALG_NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: symmetric 0x%04x must be TPM_ALG_NULL for a signing key",
                           pub.sym_alg);
    bool scheme_ok = pub.type == TPM2_ALG_RSA
                         ? pub.scheme == TPM2_ALG_RSASSA || pub.scheme == TPM2_ALG_RSAPSS
                         : pub.scheme == TPM2_ALG_ECDSA;
    if (!scheme_ok)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "IAK: scheme 0x%04x is not %s", pub.scheme,
                           pub.type == TPM2_ALG_RSA ? "RSASSA or RSAPSS" : "ECDSA");
    if (!is_name_hash(pub.scheme_hash))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "IAK: scheme hash 0x%04x is not SHA-256, SHA-384 or SHA-512",
                           pub.scheme_hash);
    if (pub.type == TPM2_ALG_RSA && pub.rsa_exponent != 0 && pub.rsa_exponent != RSA_EXPONENT_65537)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "IAK: exponent %u is not 65537 (or 0)",
                           pub.rsa_exponent);
    if (pub.type == TPM2_ALG_ECC && pub.kdf != TPM2_ALG_NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "IAK: kdf 0x%04x must be TPM_ALG_NULL",
                           pub.kdf);
    return check_key(tpmt_public, len, &pub, "IAK", diag);
}
