/* TEST-ONLY SEV-SNP signer: an AMD-like root (ARK -> ASK/ASVK -> VCEK/VLEK, RSASSA-PSS
 * SHA-384 salt 48, AMD's VCEK extensions) that signs synthetic reports. For tests, demos,
 * benchmarks and the reference SVSM client. The product never trusts it unless an operator
 * adds its directory explicitly. */
#ifndef VTPMCA_SNP_TESTSIGNER_H
#define VTPMCA_SNP_TESTSIGNER_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"

typedef struct snp_test_root snp_test_root;

/* Makes a fresh hierarchy for a product. rsa_bits: 4096 like AMD, or 2048 for speed. */
vtpmca_err snp_test_root_new(snp_product product, unsigned rsa_bits, snp_test_root **out,
                             vtpmca_diag *diag);

/* Writes <product>_ark.pem, <product>_ask.pem, <product>_asvk_ark.pem (the layout
 * snp_roots_add_dir reads) plus the private keys (<product>_*.key.pem, mode 0600) so
 * another process can load the same root. Creates `dir` (mode 0700) if missing. Load checks
 * each certificate's name, that each key matches it and that the ARK signed it. */
vtpmca_err snp_test_root_save(const snp_test_root *root, const char *dir, vtpmca_diag *diag);
vtpmca_err snp_test_root_load(const char *dir, snp_product product, snp_test_root **out,
                              vtpmca_diag *diag);
void snp_test_root_free(snp_test_root *root);

typedef struct {
    snp_signer kind;     /* VCEK or VLEK */
    uint8_t chip_id[64]; /* hwID (VCEK); Turin certificates carry the first 8 bytes */
    snp_tcb tcb;         /* becomes the SPL extensions */
    const char *csp_id;  /* VLEK only; NULL -> "vtpmca-test" */
    time_t not_before;   /* 0 -> now - 1 day */
    time_t not_after;    /* 0 -> now + 7 years */
} snp_test_cert_params;

/* Issues a VCEK/VLEK (P-384) signed by the ASK/ASVK. *key receives the private key (caller
 * frees with EVP_PKEY_free); *der the certificate (malloc'd). */
vtpmca_err snp_test_issue_cert(snp_test_root *root, const snp_test_cert_params *params,
                               EVP_PKEY **key, uint8_t **der, size_t *der_len, vtpmca_diag *diag);

/* Fills a report with sensible defaults for a product and version (2, 3 or 5): policy with
 * the reserved bit and SMT, VMPL 0, signature_algo 1, CPUID for the product (v3+), the
 * given chip id and TCB in every TCB field, signer VCEK. */
vtpmca_err snp_test_report_defaults(snp_report *report, snp_product product, uint32_t version,
                                    const uint8_t chip_id[64], const snp_tcb *tcb);

/* Serialises report fields (not `raw`) to the 1184-byte wire layout and signs bytes
 * 0x000..0x29F with ECDSA P-384/SHA-384, writing r and s little-endian. Also updates
 * report->raw and the signature fields. */
vtpmca_err snp_test_report_sign(snp_report *report, EVP_PKEY *key, uint8_t out[SNP_REPORT_SIZE],
                                vtpmca_diag *diag);

/* ---- Additions beyond the agreed contract ---- */

/* snp_test_report_sign writes every field exactly as given and does not validate it (a v2
 * report with CPUID bytes, version 4, a clear reserved policy bit, mitigation vectors in a
 * v2/v3 report all serialise faithfully), so tests can make signed reports that a strict
 * parser must reject. Only the key is checked (EC P-384 with its private half). */

/* key_info bits 4:2 name the signing key: key_info = kind << SNP_KEY_INFO_SIGNER_SHIFT. */
#define SNP_KEY_INFO_SIGNER_SHIFT 2

/* Re-signs an already serialised report in place: signs bytes 0x000..0x29F and overwrites
 * the r and s fields at 0x2A0 / 0x2E8. For tests that alter bytes no field describes
 * (e.g. a reserved area) and still need a valid signature. */
vtpmca_err snp_test_report_resign(uint8_t report[SNP_REPORT_SIZE], EVP_PKEY *key,
                                  vtpmca_diag *diag);

/* Whether `dir` holds any file snp_test_root_save writes for the product (e.g. AMD's own
 * <product>_ark.pem), so tools can refuse to overwrite it. The first one found is copied to
 * `found` (may be NULL). */
bool snp_test_root_files_exist(const char *dir, snp_product product, char *found,
                               size_t found_size);

/* The product a root was made for. */
snp_product snp_test_root_product(const snp_test_root *root);

typedef enum {
    SNP_TEST_CA_ARK = 0,
    SNP_TEST_CA_ASK,  /* signs VCEKs */
    SNP_TEST_CA_ASVK, /* signs VLEKs */
} snp_test_ca;

/* DER of one of the root's CA certificates (malloc'd; caller frees). */
vtpmca_err snp_test_root_get_cert_der(const snp_test_root *root, snp_test_ca which, uint8_t **der,
                                      size_t *der_len, vtpmca_diag *diag);

/* The chain a KDS `cert_chain` answer carries for a signer kind: PEM of the ASK (VCEK) or
 * ASVK (VLEK) followed by the ARK. NUL-terminated, malloc'd; caller frees. */
vtpmca_err snp_test_root_chain_pem(const snp_test_root *root, snp_signer kind, char **pem,
                                   size_t *pem_len, vtpmca_diag *diag);

/* Private key files (unencrypted PKCS#8 PEM, written atomically with mode 0600), shared by
 * snp_test_root_save/load and the snp-testroot tool. */
vtpmca_err snp_test_key_write_pem(EVP_PKEY *key, const char *path, vtpmca_diag *diag);
vtpmca_err snp_test_key_read_pem(const char *path, EVP_PKEY **out, vtpmca_diag *diag);

#endif
