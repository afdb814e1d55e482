/* X.509 helpers of the CA commands (cmd_ca.c, cmd_cert.c, cmd_c509.c): reading a certificate
 * file with its exact DER bytes, and one way of showing a certificate as text and as JSON. */
#ifndef VTPMCA_CLI_X509_H
#define VTPMCA_CLI_X509_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"

/* Reads one certificate from a PEM or DER file (or DER as hex/base64, as cli_load_cert
 * accepts). *der (malloc'd) gets the certificate's bytes exactly as encoded: the DER itself,
 * or the body of the PEM block, never a re-encoding. *cert (may be NULL when not wanted) gets
 * it parsed. A file that holds no certificate is VTPMCA_ERR_PARSE. */
vtpmca_err cli_x509_load(const char *path, X509 **cert, uint8_t **der, size_t *der_len,
                         vtpmca_diag *diag);

/* A distinguished name on one line, RFC 2253 style as `c509 decode` prints it ("" if empty). */
void cli_x509_name(const X509_NAME *name, char *buf, size_t size);

/* An ASN.1 time as RFC 3339 UTC (size >= 32), "invalid" when it does not convert. */
void cli_x509_time(const ASN1_TIME *t, char *buf, size_t size);

/* "EC P-384", "RSA 3072", else OpenSSL's name of the key type. */
void cli_x509_key_name(const EVP_PKEY *key, char *buf, size_t size);

/* The certificate's main fields: subject, issuer, serial (lower-case hex), not_before,
 * not_after (RFC 3339), public_key, signature_alg, key_id (hex of the SKI, when present) and
 * sha256 (hex fingerprint of the DER); NULL when out of memory. */
json_t *cli_x509_json(const X509 *cert);

/* The same fields as "  label: value" lines on stdout, each line starting with `indent`. */
void cli_x509_print(const X509 *cert, const char *indent);

#endif
