/* EK and IAK certificates (profiles in include/vtpmca/ek_profile.h and docs/ca.md). The
 * TCG- and vtpmca-specific structures are described with OpenSSL ASN.1 templates, so every
 * byte comes from OpenSSL's DER encoder (sorted SET OF, minimal lengths and integers). */
#include "vtpmca/ek_profile.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/c509.h"
#include "vtpmca/encoding.h"
#include "vtpmca/tpm2_marshal.h"

#define DAY_SECONDS INT64_C(86400)
#define VALIDITY_DAYS_MAX 36525 /* 100 years */
#define BACKDATE_MAX DAY_SECONDS
#define SPEC_FAMILY_MAX 16
/* SEC 1 2.3.3: the first octet of an uncompressed point. */
#define POINT_UNCOMPRESSED 0x04

/* ---- ASN.1 structures (modules in docs/ca.md) ---- */

/* OpenSSL's template macros confuse clang-format. */
/* clang-format off */
/* TCG: TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER, revision INTEGER } */
typedef struct {
    ASN1_UTF8STRING *family;
    ASN1_INTEGER *level;
    ASN1_INTEGER *revision;
} TPM_SPECIFICATION;

ASN1_SEQUENCE(TPM_SPECIFICATION) = {
    ASN1_SIMPLE(TPM_SPECIFICATION, family, ASN1_UTF8STRING),
    ASN1_SIMPLE(TPM_SPECIFICATION, level, ASN1_INTEGER),
    ASN1_SIMPLE(TPM_SPECIFICATION, revision, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(TPM_SPECIFICATION)

/* RFC 5280: SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute */
ASN1_ITEM_TEMPLATE(SUBJECT_DIRECTORY_ATTRIBUTES) = ASN1_EX_TEMPLATE_TYPE(
    ASN1_TFLG_SEQUENCE_OF, 0, SubjectDirectoryAttributes, X509_ATTRIBUTE)
static_ASN1_ITEM_TEMPLATE_END(SUBJECT_DIRECTORY_ATTRIBUTES)

/* RFC 4108: HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING } */
typedef struct {
    ASN1_OBJECT *hw_type;
    ASN1_OCTET_STRING *hw_serial;
} HARDWARE_MODULE_NAME;

ASN1_SEQUENCE(HARDWARE_MODULE_NAME) = {
    ASN1_SIMPLE(HARDWARE_MODULE_NAME, hw_type, ASN1_OBJECT),
    ASN1_SIMPLE(HARDWARE_MODULE_NAME, hw_serial, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(HARDWARE_MODULE_NAME)

/* RFC 8017: RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } */
typedef struct {
    ASN1_INTEGER *modulus;
    ASN1_INTEGER *exponent;
} RSA_PUBLIC_NUMBERS;

ASN1_SEQUENCE(RSA_PUBLIC_NUMBERS) = {
    ASN1_SIMPLE(RSA_PUBLIC_NUMBERS, modulus, ASN1_INTEGER),
    ASN1_SIMPLE(RSA_PUBLIC_NUMBERS, exponent, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(RSA_PUBLIC_NUMBERS)

/* vtpmca: VtpmcaInstanceIdentity (docs/ca.md). */
typedef struct {
    ASN1_UTF8STRING *fleet;
    ASN1_UTF8STRING *instance_id;
    ASN1_OCTET_STRING *measurement;
    ASN1_OCTET_STRING *chip_id;
    ASN1_INTEGER *policy_version;
    ASN1_OCTET_STRING *kbs_key_hash;
} INSTANCE_IDENTITY;

ASN1_SEQUENCE(INSTANCE_IDENTITY) = {
    ASN1_SIMPLE(INSTANCE_IDENTITY, fleet, ASN1_UTF8STRING),
    ASN1_SIMPLE(INSTANCE_IDENTITY, instance_id, ASN1_UTF8STRING),
    ASN1_SIMPLE(INSTANCE_IDENTITY, measurement, ASN1_OCTET_STRING),
    ASN1_SIMPLE(INSTANCE_IDENTITY, chip_id, ASN1_OCTET_STRING),
    ASN1_SIMPLE(INSTANCE_IDENTITY, policy_version, ASN1_INTEGER),
    ASN1_SIMPLE(INSTANCE_IDENTITY, kbs_key_hash, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(INSTANCE_IDENTITY)
    /* clang-format on */

    /* ---- helpers ---- */

    static vtpmca_err openssl_fail(vtpmca_diag * diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "ek profile: %s", what);
    vtpmca_diag_append_openssl(diag);
    ERR_clear_error();
    return err;
}

static vtpmca_err nomem(vtpmca_diag *diag)
{
    return openssl_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

/* DER of a template-described value as an OCTET STRING (an extension value). */
static ASN1_OCTET_STRING *item_to_octets(const void *value, const ASN1_ITEM *item)
{
    unsigned char *der = NULL;
    int len = ASN1_item_i2d((const ASN1_VALUE *)value, &der, item);
    ASN1_OCTET_STRING *octets = len > 0 ? ASN1_OCTET_STRING_new() : NULL;
    if (octets != NULL && ASN1_STRING_set(octets, der, len) != 1) {
        ASN1_OCTET_STRING_free(octets);
        octets = NULL;
    }
    OPENSSL_free(der);
    return octets;
}

static ASN1_STRING *new_string(int type, const void *data, size_t len)
{
    ASN1_STRING *s = ASN1_STRING_type_new(type);
    if (s != NULL && ASN1_STRING_set(s, data, (int)len) != 1) {
        ASN1_STRING_free(s);
        return NULL;
    }
    return s;
}

static bool set_uint(ASN1_INTEGER **dst, uint64_t value)
{
    return *dst != NULL && ASN1_INTEGER_set_uint64(*dst, value) == 1;
}

static bool set_octets(ASN1_OCTET_STRING *dst, const void *data, size_t len)
{
    return ASN1_OCTET_STRING_set(dst, data, (int)len) == 1;
}

static bool set_utf8(ASN1_UTF8STRING *dst, const char *text)
{
    return ASN1_STRING_set(dst, text, (int)strlen(text)) == 1;
}

/* An extension OpenSSL has a method for, encoded from its value object (NULL on failure). */
static X509_EXTENSION *known_ext(int nid, void *value, int critical)
{
    return value != NULL ? X509V3_EXT_i2d(nid, critical, value) : NULL;
}

/* An extension without an OpenSSL method, from its DER value, which it consumes. */
static X509_EXTENSION *raw_ext(const ASN1_OBJECT *oid, int critical, ASN1_OCTET_STRING *value)
{
    X509_EXTENSION *ext = value != NULL && oid != NULL
                              ? X509_EXTENSION_create_by_OBJ(NULL, oid, critical, value)
                              : NULL;
    ASN1_OCTET_STRING_free(value);
    return ext;
}

/* Appends a copy of ext (X509_add_ext duplicates it, leaving the shared one untouched). */
static vtpmca_err add_ext(X509 *cert, const X509_EXTENSION *ext, vtpmca_diag *diag)
{
    if (ext == NULL || X509_add_ext(cert, (X509_EXTENSION *)ext, -1) != 1)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot add an extension");
    return VTPMCA_OK;
}

/* Appends an extension made for this certificate alone, and frees it. */
static vtpmca_err add_own_ext(X509 *cert, X509_EXTENSION *ext, vtpmca_diag *diag)
{
    vtpmca_err err = add_ext(cert, ext, diag);
    X509_EXTENSION_free(ext);
    return err;
}

static GENERAL_NAME *uri_name(const char *base, const char *path)
{
    char url[EK_PROFILE_BASE_URL_MAX + 64];
    int n = snprintf(url, sizeof(url), "%s%s", base, path);
    if (n < 0 || (size_t)n >= sizeof(url))
        return NULL;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = new_string(V_ASN1_IA5STRING, url, (size_t)n);
    if (gn == NULL || ia5 == NULL) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(ia5);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    return gn;
}

/* ---- argument checks ---- */

static bool is_hex_id(const char *text)
{
    /* "id:" followed by exactly 8 upper-case hex digits, as TCG vendor ids are written. */
    if (strncmp(text, "id:", 3) != 0 || strlen(text) != 11)
        return false;
    for (size_t i = 3; i < 11; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool is_printable_ascii(const char *text, size_t min_len, size_t max_len)
{
    size_t len = strlen(text);
    if (len < min_len || len > max_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < 0x20 || text[i] > 0x7e)
            return false;
    }
    return true;
}

/* The store's naming rule: 1..63 chars of [A-Za-z0-9._-] plus the extra characters. */
static bool is_identifier(const char *text, const char *extra)
{
    size_t len = text != NULL ? strlen(text) : 0;
    if (len == 0 || len > EK_IDENTITY_TEXT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || strchr(extra, c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

static bool is_base_url(const char *url)
{
    size_t scheme = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    size_t len = strlen(url);
    if (scheme == 0 || len <= scheme || len > EK_PROFILE_BASE_URL_MAX || url[len - 1] == '/')
        return false;
    /* IA5String, and nothing that would end or split a URI: no spaces, quotes or controls. */
    for (size_t i = 0; i < len; i++) {
        char c = url[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '#' ||
            c == '?')
            return false;
    }
    return true;
}

void ek_profile_config_default(ek_profile_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->base_url = NULL;
    cfg->subject_cn = true;
    cfg->tpm.manufacturer = EK_DEFAULT_TPM_MANUFACTURER;
    cfg->tpm.model = EK_DEFAULT_TPM_MODEL;
    cfg->tpm.version = EK_DEFAULT_TPM_VERSION;
    cfg->tpm.spec_family = EK_DEFAULT_SPEC_FAMILY;
    cfg->tpm.spec_level = EK_DEFAULT_SPEC_LEVEL;
    cfg->tpm.spec_revision = EK_DEFAULT_SPEC_REVISION;
    cfg->validity_days = 0;
    cfg->backdate_seconds = 300;
}

vtpmca_err ek_profile_config_check(const ek_profile_config *cfg, vtpmca_diag *diag)
{
    if (cfg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: configuration missing");
    if (cfg->base_url == NULL || !is_base_url(cfg->base_url))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: base URL must be http(s)://host[:port][/path] without a "
                           "trailing slash, query or fragment, at most %d printable ASCII bytes",
                           EK_PROFILE_BASE_URL_MAX);
    const ek_tpm_attributes *tpm = &cfg->tpm;
    if (tpm->manufacturer == NULL || !is_hex_id(tpm->manufacturer))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: tpmManufacturer must be \"id:\" and 8 upper-case hex "
                           "digits");
    if (tpm->version == NULL || !is_hex_id(tpm->version))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: tpmVersion must be \"id:\" and 8 upper-case hex digits");
    if (tpm->model == NULL || !is_printable_ascii(tpm->model, 1, EK_TPM_ATTR_MAX))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: tpmModel must be 1 to %d printable ASCII characters",
                           EK_TPM_ATTR_MAX);
    if (tpm->spec_family == NULL || !is_printable_ascii(tpm->spec_family, 1, SPEC_FAMILY_MAX))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: the tpmSpecification family must be 1 to %d printable "
                           "ASCII characters",
                           SPEC_FAMILY_MAX);
    if (cfg->validity_days > VALIDITY_DAYS_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: validity must be at most %d days (0 = no expiry)",
                           VALIDITY_DAYS_MAX);
    if (cfg->backdate_seconds < 0 || cfg->backdate_seconds > BACKDATE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: backdate must be 0 to %lld seconds",
                           (long long)BACKDATE_MAX);
    return VTPMCA_OK;
}

static vtpmca_err check_request(int64_t backdate_seconds, const ek_cert_request *req,
                                vtpmca_diag *diag)
{
    if (req->kind != EK_CERT_EK && req->kind != EK_CERT_IAK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: unknown certificate kind");
    if (req->c509 != EK_C509_NONE && req->c509 != EK_C509_REENCODED && req->c509 != EK_C509_NATIVE)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: unknown C509 form");
    if ((req->subject_key == NULL) == (req->subject_public == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: give the subject key either as subject_key or as "
                           "subject_public");
    const ek_instance_identity *id = req->identity;
    if (id == NULL && req->kind == EK_CERT_EK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: an EK certificate needs the instance identity");
    if (id != NULL && !is_identifier(id->fleet, ""))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: fleet must be 1 to %d chars of [A-Za-z0-9._-]",
                           EK_IDENTITY_TEXT_MAX);
    if (id != NULL && !is_identifier(id->instance_id, ":"))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: instance id must be 1 to %d chars of [A-Za-z0-9._:-]",
                           EK_IDENTITY_TEXT_MAX);
    if (req->kind == EK_CERT_EK && req->hw_serial != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: hwSerialNum belongs to IAK certificates only");
    if (req->kind == EK_CERT_IAK && req->hw_serial == NULL && id == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: an IAK certificate needs hwSerialNum or an identity");
    if (req->hw_serial != NULL &&
        (req->hw_serial_len == 0 || req->hw_serial_len > EK_HW_SERIAL_MAX))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ek profile: hwSerialNum must be 1 to %d bytes", EK_HW_SERIAL_MAX);
    /* 0 means now; explicit times must leave room for the backdate and the validity. */
    if (req->issued_at < 0 || (req->issued_at != 0 && req->issued_at < backdate_seconds) ||
        req->issued_at > EK_NOT_AFTER_NONE - (int64_t)VALIDITY_DAYS_MAX * DAY_SECONDS)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: issue time out of range");
    return VTPMCA_OK;
}

/* ---- the subject key ---- */

/* RSAPublicKey ::= SEQUENCE { modulus, publicExponent } (RFC 8017) of an RSA-2048 key with
 * e = 65537 (what TPM exponent 0 means); *der is OPENSSL_malloc'd. */
static vtpmca_err rsa_public_key_der(const BIGNUM *n, const BIGNUM *e, ek_cert_kind kind,
                                     unsigned char **der, int *der_len, vtpmca_diag *diag)
{
    if (BN_num_bits(n) != 2048)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "ek profile: RSA %s keys must have 2048 bits, not %d",
                           kind == EK_CERT_EK ? "EK" : "IAK", BN_num_bits(n));
    if (!BN_is_word(e, 65537))
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "ek profile: the RSA exponent must be 65537 (TPM exponent 0)");
    RSA_PUBLIC_NUMBERS *numbers =
        (RSA_PUBLIC_NUMBERS *)ASN1_item_new(ASN1_ITEM_rptr(RSA_PUBLIC_NUMBERS));
    *der = NULL;
    *der_len =
        numbers != NULL && BN_to_ASN1_INTEGER(n, numbers->modulus) != NULL &&
                BN_to_ASN1_INTEGER(e, numbers->exponent) != NULL
            ? ASN1_item_i2d((const ASN1_VALUE *)numbers, der, ASN1_ITEM_rptr(RSA_PUBLIC_NUMBERS))
            : -1;
    ASN1_item_free((ASN1_VALUE *)numbers, ASN1_ITEM_rptr(RSA_PUBLIC_NUMBERS));
    return *der_len > 0 ? VTPMCA_OK : nomem(diag);
}

/* The size of a coordinate of the curves TPM certificates use (0 for others). */
static size_t ec_field_size(int nid)
{
    return nid == NID_X9_62_prime256v1 ? 32 : nid == NID_secp384r1 ? 48 : 0;
}

static vtpmca_err unsupported_curve(vtpmca_diag *diag)
{
    return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                       "ek profile: EC keys must be on a named P-256 or P-384 curve");
}

/* The subject key as the SubjectPublicKeyInfo needs it: whether it is RSA, the curve of an
 * EC key, and the subjectPublicKey bits (RSAPublicKey DER, or the uncompressed point 04 || x
 * || y; OPENSSL_malloc'd). */
typedef struct {
    bool rsa;
    int curve;
    unsigned char *bits;
    int bits_len;
} subject_key_bits;

/* From an OpenSSL key object: its public numbers only, so any private part and any point-
 * format preference of the object are left behind. */
static vtpmca_err bits_from_evp(const EVP_PKEY *key, ek_cert_kind kind, subject_key_bits *out,
                                vtpmca_diag *diag)
{
    int base = EVP_PKEY_get_base_id(key);
    if (base == EVP_PKEY_RSA) {
        BIGNUM *n = NULL, *e = NULL;
        vtpmca_err err = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                                 EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1
                             ? rsa_public_key_der(n, e, kind, &out->bits, &out->bits_len, diag)
                             : openssl_fail(diag, VTPMCA_ERR_PARSE, "cannot read the RSA key");
        BN_free(n);
        BN_free(e);
        out->rsa = true;
        return err;
    }
    if (base != EVP_PKEY_EC)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "ek profile: the subject key must be RSA-2048, EC P-256 or EC P-384 "
                           "(RSA-PSS and other key types are refused)");
    char group[64];
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) == 1)
        out->curve = OBJ_txt2nid(group);
    size_t field = ec_field_size(out->curve);
    if (field == 0)
        return unsupported_curve(diag);
    size_t size = 1 + 2 * field, len = 0;
    unsigned char *p = OPENSSL_malloc(size);
    if (p == NULL)
        return nomem(diag);
    out->bits = p;
    out->bits_len = (int)size;
    /* The key's own encoding is the cheap way when the object prefers uncompressed points
     * (the usual case); otherwise the coordinates give the point. */
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, p, size, &len) ==
            1 &&
        len == size && p[0] == POINT_UNCOMPRESSED)
        return VTPMCA_OK;
    ERR_clear_error();
    BIGNUM *x = NULL, *y = NULL;
    bool ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
              BN_bn2binpad(x, p + 1, (int)field) == (int)field &&
              BN_bn2binpad(y, p + 1 + field, (int)field) == (int)field;
    p[0] = POINT_UNCOMPRESSED;
    BN_free(x);
    BN_free(y);
    return ok ? VTPMCA_OK : openssl_fail(diag, VTPMCA_ERR_PARSE, "cannot read the EC point");
}

/* From a TPMT_PUBLIC: its unique field, which vtpm_tpmt_public_check_key validated, byte for
 * byte (no OpenSSL key object is made). */
static vtpmca_err bits_from_tpm(const uint8_t *area, size_t len, ek_cert_kind kind,
                                subject_key_bits *out, vtpmca_diag *diag)
{
    tpm2_public pub;
    vtpmca_diag inner = {{0}};
    vtpmca_err err = vtpm_tpmt_public_check_key(area, len, &inner);
    if (err == VTPMCA_OK)
        err = tpm2_public_parse(area, len, &pub, &inner);
    if (err == VTPMCA_ERR_UNSUPPORTED)
        return vtpmca_fail(diag, err, "ek profile: unsupported subject key: %s", inner.msg);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err == VTPMCA_ERR_NOMEM ? err : VTPMCA_ERR_INVALID_ARG,
                           "ek profile: the subject's TPMT_PUBLIC holds no valid key: %s",
                           inner.msg);
    if (pub.type == TPM2_ALG_RSA) {
        BIGNUM *n = BN_bin2bn(pub.unique_a, (int)pub.unique_a_len, NULL);
        BIGNUM *e = BN_new();
        err = n != NULL && e != NULL &&
                      BN_set_word(e, pub.rsa_exponent == 0 ? 65537 : pub.rsa_exponent) == 1
                  ? rsa_public_key_der(n, e, kind, &out->bits, &out->bits_len, diag)
                  : nomem(diag);
        BN_free(n);
        BN_free(e);
        out->rsa = true;
        return err;
    }
    out->curve = pub.curve == TPM2_ECC_NIST_P256   ? NID_X9_62_prime256v1
                 : pub.curve == TPM2_ECC_NIST_P384 ? NID_secp384r1
                                                   : NID_undef;
    size_t field = ec_field_size(out->curve);
    if (field == 0)
        return unsupported_curve(diag);
    unsigned char *p = OPENSSL_malloc(1 + 2 * field);
    if (p == NULL)
        return nomem(diag);
    p[0] = POINT_UNCOMPRESSED;
    memcpy(p + 1, pub.unique_a, field);
    memcpy(p + 1 + field, pub.unique_b, field);
    out->bits = p;
    out->bits_len = (int)(1 + 2 * field);
    return VTPMCA_OK;
}

/* Writes the subject key into the certificate's SubjectPublicKeyInfo in the one encoding TPM
 * certificates use (RSA-2048 with e = 65537; named P-256 or P-384 curve, uncompressed
 * point) straight from its public numbers: no OpenSSL encoder or decoder runs
 * (X509_set_pubkey would run both, ~140 us a certificate). */
static vtpmca_err set_subject_key(X509 *cert, const ek_cert_request *req, bool *is_rsa,
                                  vtpmca_diag *diag)
{
    subject_key_bits key = {false, NID_undef, NULL, 0};
    vtpmca_err err =
        req->subject_key != NULL
            ? bits_from_evp(req->subject_key, req->kind, &key, diag)
            : bits_from_tpm(req->subject_public, req->subject_public_len, req->kind, &key, diag);
    /* OBJ_nid2obj gives static objects; set0 takes ownership of the bits. */
    if (err == VTPMCA_OK &&
        X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert),
                               OBJ_nid2obj(key.rsa ? NID_rsaEncryption : NID_X9_62_id_ecPublicKey),
                               key.rsa ? V_ASN1_NULL : V_ASN1_OBJECT,
                               key.rsa ? NULL : OBJ_nid2obj(key.curve), key.bits,
                               key.bits_len) == 1) {
        *is_rsa = key.rsa;
        return VTPMCA_OK;
    }
    OPENSSL_free(key.bits);
    return err != VTPMCA_OK ? err
                            : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot set the subject key");
}

/* ---- extensions ---- */

static X509_EXTENSION *make_basic_constraints(void)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    /* cA FALSE is the DEFAULT, so DER leaves it out: the value is an empty SEQUENCE. */
    if (bc != NULL)
        bc->ca = 0;
    X509_EXTENSION *ext = known_ext(NID_basic_constraints, bc, 1);
    BASIC_CONSTRAINTS_free(bc);
    return ext;
}

static X509_EXTENSION *make_key_usage(int bit)
{
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    if (ku != NULL && ASN1_BIT_STRING_set_bit(ku, bit, 1) != 1) {
        ASN1_BIT_STRING_free(ku);
        ku = NULL;
    }
    X509_EXTENSION *ext = known_ext(NID_key_usage, ku, 1);
    ASN1_BIT_STRING_free(ku);
    return ext;
}

static X509_EXTENSION *make_eku(const char *oid)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    if (eku == NULL || obj == NULL || sk_ASN1_OBJECT_push(eku, obj) <= 0) {
        ASN1_OBJECT_free(obj);
        sk_ASN1_OBJECT_free(eku);
        return NULL;
    }
    X509_EXTENSION *ext = known_ext(NID_ext_key_usage, eku, 0);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ext;
}

/* The SAN holding one general name (consumed). */
static X509_EXTENSION *make_san(GENERAL_NAME *gn, int critical)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (gn == NULL || names == NULL || sk_GENERAL_NAME_push(names, gn) <= 0) {
        GENERAL_NAME_free(gn);
        sk_GENERAL_NAME_free(names);
        return NULL;
    }
    X509_EXTENSION *ext = known_ext(NID_subject_alt_name, names, critical);
    GENERAL_NAMES_free(names);
    return ext;
}

/* EK SAN: directoryName with one RDN per TPM attribute, each a UTF8String. */
static X509_EXTENSION *make_ek_san(const ek_tpm_attributes *tpm)
{
    const char *const oids[] = {EK_OID_TPM_MANUFACTURER, EK_OID_TPM_MODEL, EK_OID_TPM_VERSION};
    const char *const values[] = {tpm->manufacturer, tpm->model, tpm->version};
    X509_NAME *name = X509_NAME_new();
    bool ok = name != NULL;
    for (size_t i = 0; ok && i < 3; i++) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oids[i], 1);
        ok = obj != NULL &&
             X509_NAME_add_entry_by_OBJ(name, obj, V_ASN1_UTF8STRING,
                                        (const unsigned char *)values[i], -1, -1, 0) == 1;
        ASN1_OBJECT_free(obj);
    }
    GENERAL_NAME *gn = ok ? GENERAL_NAME_new() : NULL;
    if (gn == NULL) {
        X509_NAME_free(name);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, name);
    return make_san(gn, 1);
}

/* IAK SAN: otherName hardwareModuleName {hwType tcg TPM 2.0, hwSerialNum}. */
static X509_EXTENSION *make_iak_san(const uint8_t *serial, size_t serial_len, int critical)
{
    HARDWARE_MODULE_NAME *hmn =
        (HARDWARE_MODULE_NAME *)ASN1_item_new(ASN1_ITEM_rptr(HARDWARE_MODULE_NAME));
    ASN1_OBJECT *type_id = OBJ_txt2obj(EK_OID_HARDWARE_MODULE_NAME, 1);
    ASN1_OBJECT *hw_type = OBJ_txt2obj(EK_OID_HW_TYPE_TPM2, 1);
    bool ok = hmn != NULL && type_id != NULL && hw_type != NULL &&
              set_octets(hmn->hw_serial, serial, serial_len);
    if (ok) {
        ASN1_OBJECT_free(hmn->hw_type);
        hmn->hw_type = hw_type;
        hw_type = NULL;
    }
    unsigned char *der = NULL;
    int der_len =
        ok ? ASN1_item_i2d((const ASN1_VALUE *)hmn, &der, ASN1_ITEM_rptr(HARDWARE_MODULE_NAME))
           : -1;
    /* otherName's value is ANY: a V_ASN1_SEQUENCE type carries the whole encoding. */
    ASN1_STRING *seq = der_len > 0 ? new_string(V_ASN1_SEQUENCE, der, (size_t)der_len) : NULL;
    ASN1_TYPE *value = seq != NULL ? ASN1_TYPE_new() : NULL;
    GENERAL_NAME *gn = value != NULL ? GENERAL_NAME_new() : NULL;
    OPENSSL_free(der);
    ASN1_item_free((ASN1_VALUE *)hmn, ASN1_ITEM_rptr(HARDWARE_MODULE_NAME));
    ASN1_OBJECT_free(hw_type);
    if (gn == NULL) {
        ASN1_OBJECT_free(type_id);
        ASN1_STRING_free(seq);
        ASN1_TYPE_free(value);
        return NULL;
    }
    ASN1_TYPE_set(value, V_ASN1_SEQUENCE, seq);
    if (GENERAL_NAME_set0_othername(gn, type_id, value) != 1) {
        ASN1_OBJECT_free(type_id);
        ASN1_TYPE_free(value);
        GENERAL_NAME_free(gn);
        return NULL;
    }
    return make_san(gn, critical);
}

/* subjectDirectoryAttributes { tpmSpecification { family, level, revision } }. */
static X509_EXTENSION *make_tpm_specification(const ek_tpm_attributes *tpm)
{
    TPM_SPECIFICATION *spec = (TPM_SPECIFICATION *)ASN1_item_new(ASN1_ITEM_rptr(TPM_SPECIFICATION));
    bool ok = spec != NULL && set_utf8(spec->family, tpm->spec_family) &&
              set_uint(&spec->level, tpm->spec_level) &&
              set_uint(&spec->revision, tpm->spec_revision);
    unsigned char *der = NULL;
    int der_len =
        ok ? ASN1_item_i2d((const ASN1_VALUE *)spec, &der, ASN1_ITEM_rptr(TPM_SPECIFICATION)) : -1;
    ASN1_item_free((ASN1_VALUE *)spec, ASN1_ITEM_rptr(TPM_SPECIFICATION));
    ASN1_OBJECT *spec_oid = OBJ_txt2obj(EK_OID_TPM_SPECIFICATION, 1);
    X509_ATTRIBUTE *attr =
        der_len > 0 && spec_oid != NULL
            ? X509_ATTRIBUTE_create_by_OBJ(NULL, spec_oid, V_ASN1_SEQUENCE, der, der_len)
            : NULL;
    OPENSSL_free(der);
    ASN1_OBJECT_free(spec_oid);
    STACK_OF(X509_ATTRIBUTE) *attrs = attr != NULL ? sk_X509_ATTRIBUTE_new_null() : NULL;
    if (attrs == NULL || sk_X509_ATTRIBUTE_push(attrs, attr) <= 0) {
        X509_ATTRIBUTE_free(attr);
        sk_X509_ATTRIBUTE_free(attrs);
        return NULL;
    }
    ASN1_OCTET_STRING *value = item_to_octets(attrs, ASN1_ITEM_rptr(SUBJECT_DIRECTORY_ATTRIBUTES));
    sk_X509_ATTRIBUTE_pop_free(attrs, X509_ATTRIBUTE_free);
    /* RFC 5280 4.2.1.8: subjectDirectoryAttributes MUST be non-critical. */
    return raw_ext(OBJ_nid2obj(NID_subject_directory_attributes), 0, value);
}

static X509_EXTENSION *make_aki(const ca_ctx *ca)
{
    AUTHORITY_KEYID *akid = NULL;
    X509_EXTENSION *ext = ca_authority_key_id(ca, &akid, NULL) == VTPMCA_OK
                              ? known_ext(NID_authority_key_identifier, akid, 0)
                              : NULL;
    AUTHORITY_KEYID_free(akid);
    return ext;
}

static X509_EXTENSION *make_crl_distribution_point(const char *base_url)
{
    CRL_DIST_POINTS *dps = sk_DIST_POINT_new_null();
    DIST_POINT *dp = DIST_POINT_new();
    DIST_POINT_NAME *dpn = DIST_POINT_NAME_new();
    GENERAL_NAMES *full = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *uri = uri_name(base_url, EK_PROFILE_CRL_PATH);
    if (dps == NULL || dp == NULL || dpn == NULL || full == NULL || uri == NULL ||
        sk_GENERAL_NAME_push(full, uri) <= 0) {
        sk_DIST_POINT_free(dps);
        DIST_POINT_free(dp);
        DIST_POINT_NAME_free(dpn);
        sk_GENERAL_NAME_free(full);
        GENERAL_NAME_free(uri);
        return NULL;
    }
    dpn->type = 0; /* fullName */
    dpn->name.fullname = full;
    dp->distpoint = dpn;
    if (sk_DIST_POINT_push(dps, dp) <= 0) {
        DIST_POINT_free(dp);
        sk_DIST_POINT_free(dps);
        return NULL;
    }
    X509_EXTENSION *ext = known_ext(NID_crl_distribution_points, dps, 0);
    CRL_DIST_POINTS_free(dps);
    return ext;
}

static X509_EXTENSION *make_aia(const char *base_url)
{
    AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
    ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();
    GENERAL_NAME *uri = uri_name(base_url, EK_PROFILE_CA_ISSUERS_PATH);
    if (aia == NULL || ad == NULL || uri == NULL) {
        sk_ACCESS_DESCRIPTION_free(aia);
        ACCESS_DESCRIPTION_free(ad);
        GENERAL_NAME_free(uri);
        return NULL;
    }
    ASN1_OBJECT_free(ad->method);
    ad->method = OBJ_nid2obj(NID_ad_ca_issuers);
    GENERAL_NAME_free(ad->location);
    ad->location = uri;
    if (sk_ACCESS_DESCRIPTION_push(aia, ad) <= 0) {
        ACCESS_DESCRIPTION_free(ad);
        sk_ACCESS_DESCRIPTION_free(aia);
        return NULL;
    }
    X509_EXTENSION *ext = known_ext(NID_info_access, aia, 0);
    AUTHORITY_INFO_ACCESS_free(aia);
    return ext;
}

static X509_EXTENSION *make_instance_identity(const ASN1_OBJECT *oid,
                                              const ek_instance_identity *id)
{
    INSTANCE_IDENTITY *ii = (INSTANCE_IDENTITY *)ASN1_item_new(ASN1_ITEM_rptr(INSTANCE_IDENTITY));
    bool ok = ii != NULL && set_utf8(ii->fleet, id->fleet) &&
              set_utf8(ii->instance_id, id->instance_id) &&
              set_octets(ii->measurement, id->measurement, sizeof(id->measurement)) &&
              set_octets(ii->chip_id, id->chip_id, sizeof(id->chip_id)) &&
              set_uint(&ii->policy_version, id->policy_version) &&
              set_octets(ii->kbs_key_hash, id->kbs_key_hash, sizeof(id->kbs_key_hash));
    ASN1_OCTET_STRING *value = ok ? item_to_octets(ii, ASN1_ITEM_rptr(INSTANCE_IDENTITY)) : NULL;
    ASN1_item_free((ASN1_VALUE *)ii, ASN1_ITEM_rptr(INSTANCE_IDENTITY));
    return raw_ext(oid, 0, value);
}

/* ---- prepared profiles ---- */

/* What every certificate of one (CA, configuration) shares, built once: the extensions that
 * do not depend on the subject, and the OID of the instance-identity extension. */
struct ek_profile {
    const ca_ctx *ca;
    bool subject_cn;
    uint32_t validity_days;
    int64_t backdate_seconds;
    X509_EXTENSION *basic_constraints;
    X509_EXTENSION *ek_key_usage_rsa, *ek_key_usage_ec, *iak_key_usage;
    X509_EXTENSION *ek_eku, *iak_eku;
    X509_EXTENSION *ek_san, *tpm_specification;
    X509_EXTENSION *aki, *crl_distribution_point, *aia;
    ASN1_OBJECT *identity_oid;
    atomic_uint refs;
};

vtpmca_err ek_profile_new(const ca_ctx *ca, const ek_profile_config *cfg, ek_profile **out,
                          vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (ca == NULL || cfg == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: missing argument");
    vtpmca_err err = ek_profile_config_check(cfg, diag);
    if (err != VTPMCA_OK)
        return err;
    ek_profile *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return nomem(diag);
    atomic_init(&p->refs, 1);
    p->ca = ca;
    p->subject_cn = cfg->subject_cn;
    p->validity_days = cfg->validity_days;
    p->backdate_seconds = cfg->backdate_seconds;
    p->basic_constraints = make_basic_constraints();
    p->ek_key_usage_rsa = make_key_usage(2 /* keyEncipherment */);
    p->ek_key_usage_ec = make_key_usage(4 /* keyAgreement */);
    p->iak_key_usage = make_key_usage(0 /* digitalSignature */);
    p->ek_eku = make_eku(EK_OID_KP_EK_CERTIFICATE);
    p->iak_eku = make_eku(EK_OID_KP_AIK_CERTIFICATE);
    p->ek_san = make_ek_san(&cfg->tpm);
    p->tpm_specification = make_tpm_specification(&cfg->tpm);
    p->aki = make_aki(ca);
    p->crl_distribution_point = make_crl_distribution_point(cfg->base_url);
    p->aia = make_aia(cfg->base_url);
    p->identity_oid = OBJ_txt2obj(EK_OID_INSTANCE_IDENTITY, 1);
    if (p->basic_constraints == NULL || p->ek_key_usage_rsa == NULL || p->ek_key_usage_ec == NULL ||
        p->iak_key_usage == NULL || p->ek_eku == NULL || p->iak_eku == NULL || p->ek_san == NULL ||
        p->tpm_specification == NULL || p->aki == NULL || p->crl_distribution_point == NULL ||
        p->aia == NULL || p->identity_oid == NULL) {
        ek_profile_free(p);
        return nomem(diag);
    }
    *out = p;
    return VTPMCA_OK;
}

void ek_profile_up_ref(ek_profile *profile)
{
    if (profile != NULL)
        atomic_fetch_add(&profile->refs, 1);
}

void ek_profile_free(ek_profile *profile)
{
    if (profile == NULL || atomic_fetch_sub(&profile->refs, 1) != 1)
        return;
    X509_EXTENSION *const exts[] = {profile->basic_constraints,
                                    profile->ek_key_usage_rsa,
                                    profile->ek_key_usage_ec,
                                    profile->iak_key_usage,
                                    profile->ek_eku,
                                    profile->iak_eku,
                                    profile->ek_san,
                                    profile->tpm_specification,
                                    profile->aki,
                                    profile->crl_distribution_point,
                                    profile->aia};
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
        X509_EXTENSION_free(exts[i]);
    ASN1_OBJECT_free(profile->identity_oid);
    free(profile);
}

/* ---- issuance ---- */

static vtpmca_err set_names(X509 *cert, const ca_ctx *ca, const char *cn, vtpmca_diag *diag)
{
    X509_NAME *subject = X509_NAME_new();
    bool ok =
        subject != NULL &&
        (cn == NULL || X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                                  (const unsigned char *)cn, -1, -1, 0) == 1) &&
        X509_set_subject_name(cert, subject) == 1 &&
        X509_set_issuer_name(cert, X509_get_subject_name(ca_cert(ca, CA_CERT_ISSUING))) == 1;
    X509_NAME_free(subject);
    return ok ? VTPMCA_OK : nomem(diag);
}

static vtpmca_err set_validity(X509 *cert, int64_t not_before, int64_t not_after, vtpmca_diag *diag)
{
    /* ASN1_TIME_set picks UTCTime through 2049 and GeneralizedTime after, as RFC 5280
     * 4.1.2.5 requires. */
    if (ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after) == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot set the validity");
    return VTPMCA_OK;
}

static vtpmca_err build_extensions(X509 *cert, const ek_profile *p, const ek_cert_request *req,
                                   bool is_rsa, bool empty_subject, vtpmca_diag *diag)
{
    vtpmca_err err = add_ext(cert, p->basic_constraints, diag);
    if (req->kind == EK_CERT_EK) {
        if (err == VTPMCA_OK)
            err = add_ext(cert, is_rsa ? p->ek_key_usage_rsa : p->ek_key_usage_ec, diag);
        if (err == VTPMCA_OK)
            err = add_ext(cert, p->ek_eku, diag);
        if (err == VTPMCA_OK)
            err = add_ext(cert, p->ek_san, diag);
        if (err == VTPMCA_OK)
            err = add_ext(cert, p->tpm_specification, diag);
    } else {
        const uint8_t *serial = req->hw_serial;
        size_t serial_len = req->hw_serial_len;
        if (serial == NULL) {
            serial = (const uint8_t *)req->identity->instance_id;
            serial_len = strlen(req->identity->instance_id);
        }
        if (err == VTPMCA_OK)
            err = add_ext(cert, p->iak_key_usage, diag);
        if (err == VTPMCA_OK)
            err = add_ext(cert, p->iak_eku, diag);
        /* RFC 5280 4.2.1.6: the SAN is critical exactly when the subject is empty. */
        if (err == VTPMCA_OK)
            err = add_own_ext(cert, make_iak_san(serial, serial_len, empty_subject ? 1 : 0), diag);
    }
    if (err == VTPMCA_OK)
        err = add_ext(cert, p->aki, diag);
    if (err == VTPMCA_OK)
        err = add_ext(cert, p->crl_distribution_point, diag);
    if (err == VTPMCA_OK)
        err = add_ext(cert, p->aia, diag);
    if (err == VTPMCA_OK && req->identity != NULL)
        err = add_own_ext(cert, make_instance_identity(p->identity_oid, req->identity), diag);
    return err;
}

/* Adds the requested C509 form to a signed X.509 certificate. */
static vtpmca_err add_c509_form(const ca_ctx *ca, ek_c509_form form, ek_cert_result *out,
                                vtpmca_diag *diag)
{
    if (form == EK_C509_NONE)
        return VTPMCA_OK;
    if (form == EK_C509_REENCODED)
        return c509_from_x509_der(out->der, out->der_len, &out->c509, &out->c509_len, diag);
    vtpmca_err err = c509_sign_native_from_x509(out->der, out->der_len, ca_issuing_key(ca),
                                                &out->c509, &out->c509_len, diag);
    /* The X.509 form was only the template: never hand out two certificates with one
     * serial. */
    free(out->der);
    out->der = NULL;
    out->der_len = 0;
    return err;
}

vtpmca_err ek_profile_issue(const ek_profile *profile, const ek_cert_request *req,
                            ek_cert_result *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (profile == NULL || req == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: missing argument");
    vtpmca_err err = check_request(profile->backdate_seconds, req, diag);
    if (err != VTPMCA_OK)
        return err;

    int64_t issued_at = req->issued_at != 0 ? req->issued_at : (int64_t)time(NULL);
    int64_t not_before = issued_at - profile->backdate_seconds;
    int64_t not_after = profile->validity_days == 0
                            ? EK_NOT_AFTER_NONE
                            : issued_at + (int64_t)profile->validity_days * DAY_SECONDS;
    const char *cn =
        profile->subject_cn && req->identity != NULL ? req->identity->instance_id : NULL;

    bool is_rsa = false;
    X509 *cert = X509_new();
    if (cert == NULL)
        err = nomem(diag);
    /* The key first: an unsupported key is refused before any other work. */
    if (err == VTPMCA_OK)
        err = set_subject_key(cert, req, &is_rsa, diag);
    if (err == VTPMCA_OK && X509_set_version(cert, X509_VERSION_3) != 1)
        err = nomem(diag);
    if (err == VTPMCA_OK)
        err = ca_set_new_serial(cert, out->serial, diag);
    if (err == VTPMCA_OK)
        err = set_names(cert, profile->ca, cn, diag);
    if (err == VTPMCA_OK)
        err = set_validity(cert, not_before, not_after, diag);
    if (err == VTPMCA_OK)
        err = build_extensions(cert, profile, req, is_rsa, cn == NULL, diag);
    if (err == VTPMCA_OK)
        err = ca_sign_cert(profile->ca, cert, &out->der, &out->der_len, diag);
    if (err == VTPMCA_OK)
        err = add_c509_form(profile->ca, req->c509, out, diag);
    X509_free(cert);
    if (err != VTPMCA_OK) {
        ek_cert_result_free(out);
        return err;
    }
    vt_hex_encode(out->serial, CA_SERIAL_LEN, out->serial_hex, sizeof(out->serial_hex));
    out->not_before = not_before;
    out->not_after = not_after;
    return VTPMCA_OK;
}

vtpmca_err ek_cert_issue(const ca_ctx *ca, const ek_profile_config *cfg, const ek_cert_request *req,
                         ek_cert_result *out, vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ca == NULL || cfg == NULL || req == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: missing argument");
    ek_profile *profile = NULL;
    vtpmca_err err = ek_profile_new(ca, cfg, &profile, diag);
    if (err == VTPMCA_OK)
        err = ek_profile_issue(profile, req, out, diag);
    ek_profile_free(profile);
    return err;
}

void ek_cert_result_free(ek_cert_result *res)
{
    if (res == NULL)
        return;
    free(res->der);
    free(res->c509);
    memset(res, 0, sizeof(*res));
}

/* ---- reading the identity back ---- */

static bool copy_fixed(const ASN1_OCTET_STRING *src, uint8_t *dst, size_t len)
{
    if (src == NULL || (size_t)ASN1_STRING_length(src) != len)
        return false;
    memcpy(dst, ASN1_STRING_get0_data(src), len);
    return true;
}

static bool copy_identifier(const ASN1_UTF8STRING *src, char *dst, const char *extra)
{
    int len = src != NULL ? ASN1_STRING_length(src) : 0;
    if (len <= 0 || len > EK_IDENTITY_TEXT_MAX)
        return false;
    memcpy(dst, ASN1_STRING_get0_data(src), (size_t)len);
    dst[len] = '\0';
    /* Rejects embedded NULs too: strlen would then be shorter than len. */
    return strlen(dst) == (size_t)len && is_identifier(dst, extra);
}

vtpmca_err ek_cert_read_identity(const uint8_t *der, size_t der_len, ek_identity_info *out,
                                 vtpmca_diag *diag)
{
    if (der == NULL || der_len == 0 || der_len > LONG_MAX || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ek profile: missing argument");
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    if (cert == NULL || p != der + der_len) {
        X509_free(cert);
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ek profile: not a DER certificate");
    }
    ASN1_OBJECT *oid = OBJ_txt2obj(EK_OID_INSTANCE_IDENTITY, 1);
    int pos = oid != NULL ? X509_get_ext_by_OBJ(cert, oid, -1) : -1;
    bool duplicate = pos >= 0 && X509_get_ext_by_OBJ(cert, oid, pos) >= 0;
    ASN1_OBJECT_free(oid);
    vtpmca_err err = VTPMCA_OK;
    if (pos < 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                          "ek profile: the certificate has no instance-identity extension");
    else if (duplicate)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "ek profile: the instance-identity extension appears twice");
    INSTANCE_IDENTITY *ii = NULL;
    if (err == VTPMCA_OK) {
        const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data(X509_get_ext(cert, pos));
        const unsigned char *q = ASN1_STRING_get0_data(value);
        long len = ASN1_STRING_length(value);
        ii = (INSTANCE_IDENTITY *)ASN1_item_d2i(NULL, &q, len, ASN1_ITEM_rptr(INSTANCE_IDENTITY));
        /* Only strict DER: re-encoding must give the same bytes. */
        unsigned char *again = NULL;
        int again_len =
            ii != NULL && q == ASN1_STRING_get0_data(value) + len
                ? ASN1_item_i2d((const ASN1_VALUE *)ii, &again, ASN1_ITEM_rptr(INSTANCE_IDENTITY))
                : -1;
        bool strict =
            again_len == len && memcmp(again, ASN1_STRING_get0_data(value), (size_t)len) == 0;
        OPENSSL_free(again);
        uint64_t policy = 0;
        memset(out, 0, sizeof(*out));
        if (!strict || !copy_identifier(ii->fleet, out->fleet, "") ||
            !copy_identifier(ii->instance_id, out->instance_id, ":") ||
            !copy_fixed(ii->measurement, out->measurement, sizeof(out->measurement)) ||
            !copy_fixed(ii->chip_id, out->chip_id, sizeof(out->chip_id)) ||
            !copy_fixed(ii->kbs_key_hash, out->kbs_key_hash, sizeof(out->kbs_key_hash)) ||
            ASN1_INTEGER_get_uint64(&policy, ii->policy_version) != 1 || policy > UINT32_MAX) {
            memset(out, 0, sizeof(*out));
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                              "ek profile: malformed instance-identity extension");
        } else {
            out->policy_version = (uint32_t)policy;
        }
    }
    ASN1_item_free((ASN1_VALUE *)ii, ASN1_ITEM_rptr(INSTANCE_IDENTITY));
    X509_free(cert);
    ERR_clear_error();
    return err;
}
