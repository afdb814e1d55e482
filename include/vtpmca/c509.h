/* C509 certificates (draft-ietf-cose-cbor-encoded-cert, current text: a CBOR array of 11
 * items, docs/c509.md):
 *  - type 3: re-encoding of a strict-DER X.509 v3 certificate, and the way back, byte for
 *    byte, so the issuer's original signature still verifies;
 *  - type 2: natively signed certificates, the signature covering the CBOR encoding of the
 *    10 TBS items (without the array header);
 *  - verification of both types and a decoder for display.
 * All CBOR goes through libcbor, all DER framing, keys and signatures through OpenSSL.
 * Encoding is deterministic; decoding is strict (canonical heads, definite lengths, no
 * trailing bytes, exact types) and bounded (C509_MAX_INPUT, nesting depth). */
#ifndef VTPMCA_C509_H
#define VTPMCA_C509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "vtpmca/err.h"

#define C509_TYPE_NATIVE 2 /* c509CertificateType of a natively signed certificate */
#define C509_TYPE_X509 3   /* c509CertificateType of a re-encoded X.509 certificate */

/* Largest DER or C509 certificate accepted (VTPMCA_ERR_LIMIT beyond). */
#define C509_MAX_INPUT (64 * 1024)

/* notAfter 99991231235959Z ("no well-defined expiration date"), encoded as null. */
#define C509_NO_EXPIRY UINT64_C(253402300799)

/* Signature algorithms a natively signed certificate can use; the values are the C509
 * Signature Algorithms registry codes. */
typedef enum {
    C509_SIG_ECDSA_SHA256 = 0,
    C509_SIG_ECDSA_SHA384 = 1,
    C509_SIG_ECDSA_SHA512 = 2,
    C509_SIG_ED25519 = 12,
    C509_SIG_RSA_PKCS1_SHA256 = 23,
    C509_SIG_RSA_PKCS1_SHA384 = 24,
    C509_SIG_RSA_PKCS1_SHA512 = 25,
    C509_SIG_RSA_PSS_SHA256 = 26, /* salt = digest length, MGF1 with the same digest */
    C509_SIG_RSA_PSS_SHA384 = 27,
    C509_SIG_RSA_PSS_SHA512 = 28,
} c509_sig_alg;

/* One attribute of a distinguished name (one RDN). Give either `text` (UTF-8) or
 * `der_value` (the attribute value as one whole DER TLV, any ASN.1 type):
 *  - a text value of an attribute with a C509 code (commonName, organizationName, ...) is
 *    encoded as (code, text), with the draft's hex / EUI-64 compactions;
 *  - anything else is encoded as (~oid, bytes) with bytes = the DER TLV of the value (text
 *    values of attributes without a code become a DER UTF8String), e.g. the EK's
 *    tpmManufacturer 2.23.133.2.1 "id:..." in the SAN directoryName. */
typedef struct {
    const char *oid; /* dotted decimal, e.g. "2.5.4.3" */
    const char *text;
    const uint8_t *der_value;
    size_t der_value_len;
} c509_attr;

/* A Name: attributes in order, one per RDN (multi-valued RDNs are not supported by C509).
 * count == 0 is the empty name (encoded as []). */
typedef struct {
    const c509_attr *attrs;
    size_t count;
} c509_name;

typedef enum {
    C509_GN_OTHER_NAME = 0, /* oid = type-id, bytes = DER TLV of the value */
    C509_GN_EMAIL,          /* text (rfc822Name, ASCII) */
    C509_GN_DNS,            /* text (ASCII) */
    C509_GN_DIRECTORY_NAME, /* dir_name */
    C509_GN_URI,            /* text (ASCII) */
    C509_GN_IP,             /* bytes: 4 or 16 */
    C509_GN_REGISTERED_ID,  /* oid */
    C509_GN_HW_MODULE_NAME, /* otherName hardwareModuleName (RFC 4108): oid = hwType,
                               bytes = hwSerialNum */
} c509_gn_type;

typedef struct {
    c509_gn_type type;
    const char *text;
    const char *oid;
    const uint8_t *bytes;
    size_t bytes_len;
    c509_name dir_name;
} c509_general_name;

/* accessMethod OIDs for authorityInfoAccess. */
#define C509_OID_AD_OCSP "1.3.6.1.5.5.7.48.1"
#define C509_OID_AD_CA_ISSUERS "1.3.6.1.5.5.7.48.2"

typedef struct {
    const char *method_oid;
    const char *uri;
} c509_access_desc;

/* Key usage bits (RFC 5280 4.2.1.3); C509 encodes named bit n as 2^n. */
#define C509_KU_DIGITAL_SIGNATURE (1u << 0)
#define C509_KU_NON_REPUDIATION (1u << 1)
#define C509_KU_KEY_ENCIPHERMENT (1u << 2)
#define C509_KU_DATA_ENCIPHERMENT (1u << 3)
#define C509_KU_KEY_AGREEMENT (1u << 4)
#define C509_KU_KEY_CERT_SIGN (1u << 5)
#define C509_KU_CRL_SIGN (1u << 6)
#define C509_KU_ENCIPHER_ONLY (1u << 7)
#define C509_KU_DECIPHER_ONLY (1u << 8)

/* An extension in C509 terms. The structured kinds cover the EK and IAK profiles; any other
 * extension (subjectDirectoryAttributes, a private instance-identity extension, ...) is
 * C509_EXT_DER with its OID and X.509 extnValue. Every extension ends up with its C509
 * registry encoding when the draft defines one that can express the value (e.g.
 * extKeyUsage 2.23.133.8.1 becomes code 8 with a ~oid purpose), otherwise as
 * (~oid, bytes), or (~oid, [bytes]) when critical. */
typedef enum {
    C509_EXT_DER = 0,                 /* oid + der_value (the extnValue OCTET STRING's content) */
    C509_EXT_SUBJECT_KEY_ID,          /* key_id */
    C509_EXT_KEY_USAGE,               /* key_usage (C509_KU_*), non-zero */
    C509_EXT_SUBJECT_ALT_NAME,        /* names */
    C509_EXT_BASIC_CONSTRAINTS,       /* ca, path_len (< 0: absent; only with ca) */
    C509_EXT_CRL_DISTRIBUTION_POINTS, /* uris: one distribution point (fullName) per URI */
    C509_EXT_AUTHORITY_KEY_ID,        /* key_id */
    C509_EXT_EXT_KEY_USAGE,           /* oids: key purposes */
    C509_EXT_AUTHORITY_INFO_ACCESS,   /* access */
} c509_ext_kind;

typedef struct {
    c509_ext_kind kind;
    bool critical;
    const char *oid;
    const uint8_t *der_value;
    size_t der_value_len;
    const uint8_t *key_id;
    size_t key_id_len;
    uint32_t key_usage;
    bool ca;
    int path_len;
    const c509_general_name *names;
    size_t name_count;
    const char *const *uris;
    size_t uri_count;
    const char *const *oids;
    size_t oid_count;
    const c509_access_desc *access;
    size_t access_count;
} c509_ext;

/* What a natively signed (type 2) certificate says. The issuer is encoded as null when it
 * equals the subject. */
typedef struct {
    const uint8_t *serial; /* unsigned big-endian, at most 64 significant bytes; leading
                              zeros are dropped as ~biguint requires */
    size_t serial_len;
    c509_sig_alg sig_alg; /* must suit issuer_key */
    c509_name issuer;
    uint64_t not_before; /* seconds since 1970-01-01T00:00:00Z */
    uint64_t not_after;  /* C509_NO_EXPIRY for 99991231235959Z */
    c509_name subject;
    EVP_PKEY *subject_key; /* any key OpenSSL can encode (EC keys on registered curves get
                              02/03 point compression) */
    const c509_ext *exts;
    size_t ext_count;
} c509_tbs;

/* Re-encodes a strict-DER X.509 v3 certificate as a type 3 C509 certificate (*cbor
 * malloc'd). Refuses, with a precise diag, input that is not strict DER
 * (VTPMCA_ERR_PARSE) or that uses what C509 cannot carry or rebuild: v1/v2, unique IDs,
 * multi-valued RDNs, times before 1970 or GeneralizedTime before 2050, negative serials,
 * BIT STRINGs with unused bits (VTPMCA_ERR_UNSUPPORTED). Values without a C509 form
 * (teletex/BMP strings, unknown extensions, extension values the draft's encodings cannot
 * express) are carried as (~oid, DER bytes). The result is checked by rebuilding the DER
 * from it and comparing. */
vtpmca_err c509_from_x509_der(const uint8_t *der, size_t der_len, uint8_t **cbor, size_t *cbor_len,
                              vtpmca_diag *diag);

/* Rebuilds the DER X.509 certificate of a type 3 C509 certificate, byte for byte
 * (*der malloc'd). A type 2 certificate has no DER form: VTPMCA_ERR_UNSUPPORTED. */
vtpmca_err c509_to_x509_der(const uint8_t *cbor, size_t cbor_len, uint8_t **der, size_t *der_len,
                            vtpmca_diag *diag);

/* Issues a natively signed (type 2) certificate: encodes tbs, signs the 10 TBS items with
 * issuer_key (ECDSA: raw r||s, each padded to the issuer curve's order size) and returns
 * the C509Certificate array (*cbor malloc'd). */
vtpmca_err c509_sign_native(const c509_tbs *tbs, EVP_PKEY *issuer_key, uint8_t **cbor,
                            size_t *cbor_len, vtpmca_diag *diag);

/* Issues a natively signed certificate with the content of an X.509 certificate (DER, its
 * signature is ignored): same serial, names, validity, key, extensions and signature
 * algorithm (one of c509_sig_alg). Lets a CA issue both formats from one profile. */
vtpmca_err c509_sign_native_from_x509(const uint8_t *der, size_t der_len, EVP_PKEY *issuer_key,
                                      uint8_t **cbor, size_t *cbor_len, vtpmca_diag *diag);

/* Verifies a C509 certificate's signature with the issuer's public key: type 2 over the
 * TBS encoding, type 3 over the rebuilt DER TBSCertificate. A wrong signature or a key
 * that does not suit the algorithm -> VTPMCA_ERR_CRYPTO; malformed input ->
 * VTPMCA_ERR_PARSE; an algorithm we cannot verify -> VTPMCA_ERR_UNSUPPORTED. */
vtpmca_err c509_verify(const uint8_t *cbor, size_t cbor_len, EVP_PKEY *issuer_pub,
                       vtpmca_diag *diag);

/* What a C509 certificate says, for display (`vtpmca c509 decode`). */
typedef struct {
    int type;         /* C509_TYPE_NATIVE or C509_TYPE_X509 */
    char *serial_hex; /* lower-case hex of the serial ("00" for zero) */
    char *sig_alg;    /* e.g. "ecdsa-with-SHA256", or the dotted OID */
    char *issuer;     /* one-line distinguished names (RFC 2253 style, OpenSSL's printer) */
    char *subject;
    uint64_t not_before;  /* seconds since the epoch */
    uint64_t not_after;   /* C509_NO_EXPIRY when the certificate has none */
    EVP_PKEY *public_key; /* the subject key; NULL if OpenSSL does not know its algorithm */
    char *public_key_alg; /* e.g. "EC P-256", "RSA 2048", or the dotted OID */
    size_t ext_count;
    char *extensions;  /* one block per extension as OpenSSL prints them ("" if none) */
    uint8_t *x509_der; /* type 3: the rebuilt X.509 certificate; NULL for type 2 */
    size_t x509_der_len;
} c509_info;

/* Decodes a C509 certificate of either type into *info (zeroed first; release with
 * c509_info_free, also after a failure). Does not verify the signature. */
vtpmca_err c509_decode_info(const uint8_t *cbor, size_t cbor_len, c509_info *info,
                            vtpmca_diag *diag);
void c509_info_free(c509_info *info);

#endif
