/* TEST-ONLY SEV-SNP signer: an AMD-like root (ARK -> ASK/ASVK -> VCEK/VLEK, RSASSA-PSS
 * SHA-384 salt 48, AMD's VCEK extensions) that signs synthetic reports. For tests, demos,
 * benchmarks and the reference SVSM client. The product never trusts it unless an operator
 * adds its directory explicitly. */
#ifndef VTPMCA_SNP_TESTSIGNER_H
#define VTPMCA_SNP_TESTSIGNER_H

#include <openssl/evp.h>
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
 * another process can load the same root. */
vtpmca_err snp_test_root_save(const snp_test_root *root, const char *dir, vtpmca_diag *diag);
vtpmca_err snp_test_root_load(const char *dir, snp_product product, snp_test_root **out,
                              vtpmca_diag *diag);
void snp_test_root_free(snp_test_root *root);

typedef struct {
    snp_signer kind;        /* VCEK or VLEK */
    uint8_t chip_id[64];    /* hwID (VCEK); Turin certificates carry the first 8 bytes */
    snp_tcb tcb;            /* becomes the SPL extensions */
    const char *csp_id;     /* VLEK only; NULL -> "vtpmca-test" */
    time_t not_before;      /* 0 -> now - 1 day */
    time_t not_after;       /* 0 -> now + 7 years */
} snp_test_cert_params;

/* Issues a VCEK/VLEK (P-384) signed by the ASK/ASVK. *key receives the private key (caller
 * frees with EVP_PKEY_free); *der the certificate (malloc'd). */
vtpmca_err snp_test_issue_cert(snp_test_root *root, const snp_test_cert_params *params,
                               EVP_PKEY **key, uint8_t **der, size_t *der_len,
                               vtpmca_diag *diag);

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

#endif
