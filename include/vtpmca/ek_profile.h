/* EK and IAK certificate profiles (docs/ca.md has every field, OID and the ASN.1 module of
 * our instance-identity extension).
 *
 * EK (TCG EK Credential Profile for TPM 2.0, as swtpm issues it and Keylime accepts it):
 *   subject CN=<instance id> (or empty), critical SAN directoryName {tpmManufacturer,
 *   tpmModel, tpmVersion}, critical basicConstraints CA:FALSE, critical keyUsage
 *   keyEncipherment (RSA) / keyAgreement (ECC), EKU tcg-kp-EKCertificate, subjectDirectory-
 *   Attributes {tpmSpecification}, AKI, CRL distribution point, AIA caIssuers, and the
 *   non-critical vtpmca instance-identity extension.
 * IAK (TCG TPM 2.0 Keys for Device Identity and Attestation):
 *   SAN otherName hardwareModuleName {hwType 2.23.133.1.2, hwSerialNum} (critical when the
 *   subject is empty), critical basicConstraints CA:FALSE, critical keyUsage
 *   digitalSignature, EKU tcg-kp-AIKCertificate, AKI, CRL distribution point, AIA and the
 *   instance-identity extension when an identity is given.
 * Certificates are strict DER (checked after signing) and the subject public key is the
 * TPM's key byte for byte: RSA-2048 or a named-curve P-256/P-384 key with an uncompressed
 * point. ek_cert_issue is thread-safe. */
#ifndef VTPMCA_EK_PROFILE_H
#define VTPMCA_EK_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "vtpmca/ca_keys.h"
#include "vtpmca/err.h"

/* OIDs (dotted text). */
#define EK_OID_TPM_MANUFACTURER "2.23.133.2.1"
#define EK_OID_TPM_MODEL "2.23.133.2.2"
#define EK_OID_TPM_VERSION "2.23.133.2.3"
#define EK_OID_TPM_SPECIFICATION "2.23.133.2.16"
#define EK_OID_KP_EK_CERTIFICATE "2.23.133.8.1"
#define EK_OID_KP_AIK_CERTIFICATE "2.23.133.8.3"
#define EK_OID_HW_TYPE_TPM2 "2.23.133.1.2"
#define EK_OID_HARDWARE_MODULE_NAME "1.3.6.1.5.5.7.8.4"
/* vtpmca's OID arc: a UUID-derived OID (ITU-T X.667, arc 2.25), which needs no
 * registration; the UUID is 11696259-535f-401a-a616-621347a04667. */
#define EK_OID_VTPMCA_ARC "2.25.23144061851739754864661155739596768871"
#define EK_OID_INSTANCE_IDENTITY EK_OID_VTPMCA_ARC ".1.1"

/* Paths appended to the configured base URL. */
#define EK_PROFILE_CRL_PATH "/v1/ca/crl"
#define EK_PROFILE_CA_ISSUERS_PATH "/v1/ca/chain?format=der"
#define EK_PROFILE_BASE_URL_MAX 200

/* Our defaults for the SAN directoryName and tpmSpecification; see docs/ca.md. */
#define EK_DEFAULT_TPM_MANUFACTURER                                                                \
    "id:4D534654" /* TCG vendor id "MSFT": the TCG reference TPM                                   \
                   */
#define EK_DEFAULT_TPM_MODEL "svsm-vtpm"
#define EK_DEFAULT_TPM_VERSION "id:00000001"
#define EK_DEFAULT_SPEC_FAMILY "2.0"
#define EK_DEFAULT_SPEC_LEVEL 0
#define EK_DEFAULT_SPEC_REVISION 164
#define EK_TPM_ATTR_MAX 64

/* notAfter 99991231235959Z: "no well-defined expiration date" (RFC 5280 4.1.2.5). */
#define EK_NOT_AFTER_NONE INT64_C(253402300799)

#define EK_MEASUREMENT_LEN 48
#define EK_CHIP_ID_LEN 64
#define EK_KBS_KEY_HASH_LEN 32
#define EK_IDENTITY_TEXT_MAX 63
#define EK_HW_SERIAL_MAX 64

typedef enum {
    EK_CERT_EK = 0,
    EK_CERT_IAK,
} ek_cert_kind;

/* The C509 form wanted besides (or instead of) X.509 (docs/c509.md). */
typedef enum {
    EK_C509_NONE = 0,  /* X.509 DER only */
    EK_C509_REENCODED, /* also the type 3 C509 re-encoding of the X.509 certificate */
    EK_C509_NATIVE,    /* only a natively signed (type 2) C509 certificate of the same
                          content: der is NULL (no X.509 certificate with its serial exists) */
} ek_c509_form;

typedef struct {
    /* tpmManufacturer and tpmVersion: "id:" and 8 upper-case hex digits; tpmModel: 1 to
     * EK_TPM_ATTR_MAX printable ASCII characters. */
    const char *manufacturer;
    const char *model;
    const char *version;
    const char *spec_family; /* tpmSpecification: "2.0" */
    uint32_t spec_level;
    uint32_t spec_revision;
} ek_tpm_attributes;

typedef struct {
    /* "https://host[:port][/prefix]" (or http://), no trailing slash, at most
     * EK_PROFILE_BASE_URL_MAX bytes: the CRL distribution point is base_url +
     * EK_PROFILE_CRL_PATH and AIA caIssuers base_url + EK_PROFILE_CA_ISSUERS_PATH. */
    const char *base_url;
    bool subject_cn;          /* true: subject CN=<instance id>; false: empty subject */
    ek_tpm_attributes tpm;    /* EK only */
    uint32_t validity_days;   /* 0: notAfter 99991231235959Z */
    int64_t backdate_seconds; /* notBefore = issue time minus this (clock skew), 0..86400 */
} ek_profile_config;

/* Who the certified TPM belongs to, from the verified evidence: the instance-identity
 * extension. fleet: 1..EK_IDENTITY_TEXT_MAX chars of [A-Za-z0-9._-]; instance_id: the same
 * plus ':' (the store's naming rules). */
typedef struct {
    const char *fleet;
    const char *instance_id;
    uint8_t measurement[EK_MEASUREMENT_LEN];   /* SNP launch measurement */
    uint8_t chip_id[EK_CHIP_ID_LEN];           /* SNP chip id (zeros when masked) */
    uint32_t policy_version;                   /* fleet policy version that accepted the evidence */
    uint8_t kbs_key_hash[EK_KBS_KEY_HASH_LEN]; /* SHA-256 of the KBS key's DER SPKI */
} ek_instance_identity;

typedef struct {
    ek_cert_kind kind;
    /* The subject key, given one way or the other (exactly one of them): an RSA-2048, EC
     * P-256 or EC P-384 key object, or the TPM's TPMT_PUBLIC of such a key (its unique field
     * is the key; the cheap way, since no OpenSSL key is made: an invalid key is
     * VTPMCA_ERR_INVALID_ARG). */
    const EVP_PKEY *subject_key;
    const uint8_t *subject_public;
    size_t subject_public_len;
    /* Required for EK certificates, optional (NULL) for IAK certificates. Without one the
     * subject is empty. */
    const ek_instance_identity *identity;
    /* IAK only: hwSerialNum (1..EK_HW_SERIAL_MAX bytes); NULL = the instance id's bytes
     * (the "device" an SVSM vTPM belongs to is its VM instance). */
    const uint8_t *hw_serial;
    size_t hw_serial_len;
    int64_t issued_at; /* unix seconds; 0 = now */
    ek_c509_form c509; /* default EK_C509_NONE */
} ek_cert_request;

typedef struct {
    uint8_t *der; /* malloc'd; NULL for EK_C509_NATIVE */
    size_t der_len;
    uint8_t *c509; /* malloc'd C509 certificate; NULL for EK_C509_NONE */
    size_t c509_len;
    uint8_t serial[CA_SERIAL_LEN];
    char serial_hex[2 * CA_SERIAL_LEN + 1]; /* lower-case */
    int64_t not_before;
    int64_t not_after;
} ek_cert_result;

/* Fills cfg with the defaults (base_url NULL: the caller must set it). */
void ek_profile_config_default(ek_profile_config *cfg);

/* Checks a configuration (what ek_cert_issue also checks), for config loading. */
vtpmca_err ek_profile_config_check(const ek_profile_config *cfg, vtpmca_diag *diag);

/* Builds, signs with the CA's issuing key and encodes one certificate with a fresh random
 * serial, plus the C509 form asked for (c509_from_x509_der / c509_sign_native_from_x509 of
 * ca/c509.c). Bad requests -> VTPMCA_ERR_INVALID_ARG; unsupported subject keys (other sizes,
 * curves, RSA-PSS keys, exponents other than 65537) -> VTPMCA_ERR_UNSUPPORTED. */
vtpmca_err ek_cert_issue(const ca_ctx *ca, const ek_profile_config *cfg, const ek_cert_request *req,
                         ek_cert_result *out, vtpmca_diag *diag);
void ek_cert_result_free(ek_cert_result *res);

/* A prepared profile: ek_cert_issue for one CA and configuration without redoing, for every
 * certificate, what all of them share (the configuration check, the extensions that do not
 * depend on the subject). ek_profile_new checks cfg as ek_profile_config_check does and
 * copies what it needs (cfg's strings need not outlive it); ca must outlive the profile.
 * ek_profile_issue is ek_cert_issue with the profile's CA and configuration (same results,
 * same errors) and may run in several threads at once. Profiles are reference counted:
 * ek_profile_up_ref takes another reference and ek_profile_free drops one (the last frees),
 * so one thread can replace a shared profile while others still issue with the old one. */
typedef struct ek_profile ek_profile;
vtpmca_err ek_profile_new(const ca_ctx *ca, const ek_profile_config *cfg, ek_profile **out,
                          vtpmca_diag *diag);
void ek_profile_up_ref(ek_profile *profile);
void ek_profile_free(ek_profile *profile);
vtpmca_err ek_profile_issue(const ek_profile *profile, const ek_cert_request *req,
                            ek_cert_result *out, vtpmca_diag *diag);

/* The instance-identity extension read back from a certificate (for `vtpmca cert show` and
 * verifiers). VTPMCA_ERR_NOT_FOUND when the certificate has none, VTPMCA_ERR_PARSE when it
 * is malformed. */
typedef struct {
    char fleet[EK_IDENTITY_TEXT_MAX + 1];
    char instance_id[EK_IDENTITY_TEXT_MAX + 1];
    uint8_t measurement[EK_MEASUREMENT_LEN];
    uint8_t chip_id[EK_CHIP_ID_LEN];
    uint32_t policy_version;
    uint8_t kbs_key_hash[EK_KBS_KEY_HASH_LEN];
} ek_identity_info;

vtpmca_err ek_cert_read_identity(const uint8_t *der, size_t der_len, ek_identity_info *out,
                                 vtpmca_diag *diag);

#endif
