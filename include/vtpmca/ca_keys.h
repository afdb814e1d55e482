/* The certificate authority's key hierarchy (docs/ca.md): an offline-style root CA and an
 * online issuing CA that signs EK/IAK certificates and the CRL.
 *
 * A CA directory holds four files:
 *   root-ca.pem      root certificate (PEM, 0644)
 *   root-ca.key      root private key (PKCS#8 PEM, 0600) -- only needed to (re)create the
 *                    issuing CA; move it offline after `ca init`
 *   issuing-ca.pem   issuing CA certificate, signed by the root (PEM, 0644)
 *   issuing-ca.key   issuing CA private key (PKCS#8 PEM, 0600)
 * ca_open loads the issuing key once and never reads root-ca.key. Key files readable or
 * writable by group or others are refused.
 *
 * Signatures are ECDSA (P-256 with SHA-256, P-384 with SHA-384) or RSA PKCS#1 v1.5 with
 * SHA-256, never RSA-PSS: Keylime and many TPM tools reject PSS-signed EK certificates.
 * A ca_ctx is immutable after ca_open, so one handle may sign from several threads. */
#ifndef VTPMCA_CA_KEYS_H
#define VTPMCA_CA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/err.h"

#define CA_ROOT_CERT_FILE "root-ca.pem"
#define CA_ROOT_KEY_FILE "root-ca.key"
#define CA_ISSUING_CERT_FILE "issuing-ca.pem"
#define CA_ISSUING_KEY_FILE "issuing-ca.key"

/* File names ca_export_keylime writes (one certificate per file, as Keylime's
 * tpm_cert_store wants: it matches an EK certificate's issuer against the first
 * certificate of each *.pem file). */
#define CA_KEYLIME_ISSUING_FILE "vtpmca-issuing-ca.pem"
#define CA_KEYLIME_ROOT_FILE "vtpmca-root-ca.pem"

/* Largest PEM file (certificate or key) the CA reads. */
#define CA_PEM_FILE_MAX 65536
/* Longest CN / O accepted for the CA names. */
#define CA_NAME_MAX 64
/* Size of a key identifier (SHA-1 of the subjectPublicKey bits, RFC 5280 4.2.1.2 (1)). */
#define CA_KEY_ID_LEN 20
/* Certificate serial numbers are 16 random bytes, positive, always exactly 16 bytes in DER. */
#define CA_SERIAL_LEN 16

typedef enum {
    CA_KEY_ECDSA_P384 = 0, /* the default for both CAs */
    CA_KEY_ECDSA_P256,
    CA_KEY_RSA_3072,
    CA_KEY_RSA_2048, /* allowed for the issuing CA, for verifiers that only handle RSA */
} ca_key_alg;

typedef enum {
    CA_CERT_ROOT = 0,
    CA_CERT_ISSUING,
} ca_cert_which;

typedef struct {
    ca_key_alg root_alg;            /* default CA_KEY_ECDSA_P384 */
    ca_key_alg issuing_alg;         /* default CA_KEY_ECDSA_P384 */
    const char *organization;       /* subject O of both CAs; NULL = none. Default "vtpmca" */
    const char *root_cn;            /* default "vtpmca EK Root CA" */
    const char *issuing_cn;         /* default "vtpmca EK Issuing CA" */
    uint32_t root_validity_days;    /* default 7305 (20 years) */
    uint32_t issuing_validity_days; /* default 3653 (10 years); at most the root's */
} ca_init_options;

typedef struct ca_ctx ca_ctx;

/* Fills opts with the defaults above. */
void ca_init_options_default(ca_init_options *opts);

/* Parses "ecdsa-p384", "ecdsa-p256", "rsa-3072", "rsa-2048" (for the CLI). */
vtpmca_err ca_key_alg_parse(const char *text, ca_key_alg *out, vtpmca_diag *diag);
const char *ca_key_alg_name(ca_key_alg alg);

/* `ca init`: generates a root key and self-signed root certificate (basicConstraints
 * critical CA:TRUE, keyUsage critical keyCertSign+cRLSign, SKI), then an issuing CA key and
 * certificate signed by the root (CA:TRUE pathlen:0, same key usage, SKI, AKI), and writes
 * the four files into dir (created 0700 if missing). Refuses (VTPMCA_ERR_CONFLICT) when any
 * of the four files exists already; nothing is written on failure. */
vtpmca_err ca_init(const char *dir, const ca_init_options *opts, vtpmca_diag *diag);

/* Imports an existing hierarchy from PEM files into dir (same layout as ca_init). The root
 * must be a self-signed CA certificate, the issuing certificate a CA certificate signed by
 * it; each key must match its certificate; both certificates must be signed with ECDSA or
 * RSA PKCS#1 v1.5 (SHA-256/384/512) and their keys be EC P-256/P-384 or RSA >= 2048 bits.
 * root_key_path may be NULL (the root key stays offline). Mismatches -> VTPMCA_ERR_CRYPTO,
 * unsupported algorithms -> VTPMCA_ERR_UNSUPPORTED, existing files -> VTPMCA_ERR_CONFLICT;
 * nothing is written on failure. */
vtpmca_err ca_import(const char *dir, const char *root_cert_path, const char *root_key_path,
                     const char *issuing_cert_path, const char *issuing_key_path,
                     vtpmca_diag *diag);

/* Loads root-ca.pem, issuing-ca.pem and issuing-ca.key from dir and checks them as
 * ca_import does. A key file with any group/other permission bit -> VTPMCA_ERR_IO. */
vtpmca_err ca_open(const char *dir, ca_ctx **out, vtpmca_diag *diag);
void ca_free(ca_ctx *ca);

/* Borrowed pointers, valid until ca_free. */
const X509 *ca_cert(const ca_ctx *ca, ca_cert_which which);
/* The issuing CA's private key, for signers other than X.509 (C509 type 2). */
EVP_PKEY *ca_issuing_key(const ca_ctx *ca);
/* The digest the issuing CA signs with (SHA-256 or SHA-384). */
const EVP_MD *ca_issuing_md(const ca_ctx *ca);
/* The issuing CA's key identifier: its SKI extension when present, else computed as
 * RFC 5280 method (1). Used as the AKI of everything the issuing CA signs. */
const uint8_t *ca_issuing_key_id(const ca_ctx *ca, size_t *len);

/* A fresh random serial: 126 random bits; the top bit is clear (positive) and the next one
 * set, so the DER INTEGER is always CA_SERIAL_LEN bytes. */
vtpmca_err ca_new_serial(uint8_t serial[CA_SERIAL_LEN], vtpmca_diag *diag);
/* ca_new_serial, set as cert's serialNumber; serial_out (may be NULL) gets the bytes. */
vtpmca_err ca_set_new_serial(X509 *cert, uint8_t serial_out[CA_SERIAL_LEN], vtpmca_diag *diag);
/* A new AuthorityKeyIdentifier holding only ca_issuing_key_id (caller frees), the AKI of
 * every certificate and CRL the issuing CA signs. */
vtpmca_err ca_authority_key_id(const ca_ctx *ca, AUTHORITY_KEYID **out, vtpmca_diag *diag);

/* Signs a prepared certificate / CRL with the issuing key (issuer name, AKI and validity are
 * the caller's), encodes it, and checks that the encoding is strict DER with
 * ca_check_cert_der / ca_check_crl_der (VTPMCA_ERR_INTERNAL otherwise). *der is malloc'd. */
vtpmca_err ca_sign_cert(const ca_ctx *ca, X509 *cert, uint8_t **der, size_t *der_len,
                        vtpmca_diag *diag);
vtpmca_err ca_sign_crl(const ca_ctx *ca, X509_CRL *crl, uint8_t **der, size_t *der_len,
                       vtpmca_diag *diag);

/* Whether a whole certificate / CRL encoding is strict DER, as verifiers that re-encode
 * before checking signatures (Keylime) need: every TLV in DER form (definite, minimal
 * lengths, no trailing bytes, BOOLEAN 00/FF, minimal INTEGERs, zero unused BIT STRING bits,
 * minimal OIDs, "Z" times, primitive strings, sorted SET OF, ...), each extension's
 * extnValue exactly one such element, DEFAULT values omitted. VTPMCA_ERR_PARSE (the diag
 * names the byte offset and the rule) when not. Cheap: no OpenSSL decoding. */
vtpmca_err ca_check_cert_der(const uint8_t *der, size_t der_len, vtpmca_diag *diag);
vtpmca_err ca_check_crl_der(const uint8_t *der, size_t der_len, vtpmca_diag *diag);

/* One CA certificate as DER or PEM (malloc'd; PEM is NUL-terminated, the NUL not counted). */
vtpmca_err ca_cert_der(const ca_ctx *ca, ca_cert_which which, uint8_t **der, size_t *der_len,
                       vtpmca_diag *diag);
vtpmca_err ca_cert_pem(const ca_ctx *ca, ca_cert_which which, char **pem, size_t *pem_len,
                       vtpmca_diag *diag);
/* The chain for GET /v1/ca/chain: PEM = issuing CA then root; DER = a certs-only CMS
 * SignedData (RFC 5280 4.2.2.1 "certs-only CMS", application/pkcs7-mime) holding both, which
 * is also what the AIA caIssuers URL of issued certificates serves. */
vtpmca_err ca_chain_pem(const ca_ctx *ca, char **pem, size_t *pem_len, vtpmca_diag *diag);
vtpmca_err ca_chain_der(const ca_ctx *ca, uint8_t **der, size_t *der_len, vtpmca_diag *diag);

/* `vtpmca ca export-keylime DIR`: writes CA_KEYLIME_ISSUING_FILE and CA_KEYLIME_ROOT_FILE
 * (one PEM certificate each, mode 0644) into dir, creating it if needed. */
vtpmca_err ca_export_keylime(const ca_ctx *ca, const char *dir, vtpmca_diag *diag);

#endif
