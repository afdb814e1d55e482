/* SEV-SNP attestation report: strict parsing and decoding (AMD SEV-SNP firmware ABI). */
#ifndef VTPMCA_SNP_REPORT_H
#define VTPMCA_SNP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

#define SNP_REPORT_SIZE 1184
#define SNP_REPORT_SIGNED_SIZE 0x2A0 /* bytes 0x000..0x29F are signed */
#define SNP_SIG_ALGO_ECDSA_P384_SHA384 1

/* Guest policy bits (report offset 0x008). */
#define SNP_POLICY_SMT (1ull << 16)
#define SNP_POLICY_RESERVED_ONE (1ull << 17)
#define SNP_POLICY_MIGRATE_MA (1ull << 18)
#define SNP_POLICY_DEBUG (1ull << 19)
#define SNP_POLICY_SINGLE_SOCKET (1ull << 20)
#define SNP_POLICY_CXL_ALLOW (1ull << 21)
#define SNP_POLICY_MEM_AES_256_XTS (1ull << 22)
#define SNP_POLICY_RAPL_DIS (1ull << 23)
#define SNP_POLICY_CIPHERTEXT_HIDING (1ull << 24)
#define SNP_POLICY_PAGE_SWAP_DISABLE (1ull << 25)

/* Platform info bits (report offset 0x040). */
#define SNP_PLATFORM_SMT_EN (1ull << 0)
#define SNP_PLATFORM_TSME_EN (1ull << 1)
#define SNP_PLATFORM_ECC_EN (1ull << 2)
#define SNP_PLATFORM_RAPL_DIS (1ull << 3)
#define SNP_PLATFORM_CIPHERTEXT_HIDING_EN (1ull << 4)
#define SNP_PLATFORM_ALIAS_CHECK_COMPLETE (1ull << 5)
#define SNP_PLATFORM_TIO_EN (1ull << 7)

/* key_info bits (report offset 0x048); bits 31:5 must be zero. */
#define SNP_KEY_INFO_AUTHOR_KEY_EN (1u << 0)
#define SNP_KEY_INFO_MASK_CHIP_KEY (1u << 1)

typedef enum {
    SNP_PRODUCT_UNKNOWN = 0,
    SNP_PRODUCT_MILAN,
    SNP_PRODUCT_GENOA,
    SNP_PRODUCT_TURIN,
} snp_product;

/* "Milan", "Genoa", "Turin" (or "unknown"). */
const char *snp_product_name(snp_product product);
/* Case-insensitive "milan"/"genoa"/"turin"; also accepts VCEK productName values such as
 * "Milan-B0" (the part before '-'). */
vtpmca_err snp_product_parse(const char *name, snp_product *out);

typedef enum {
    SNP_SIGNER_VCEK = 0,
    SNP_SIGNER_VLEK = 1,
    SNP_SIGNER_NONE = 7,
} snp_signer;

/* "VCEK", "VLEK", "none" (or "reserved" for the values 2..6). */
const char *snp_signer_name(snp_signer signer);

/* A TCB_VERSION decoded for its product's layout. fmc is only meaningful on Turin. */
typedef struct {
    uint8_t fmc;
    uint8_t bootloader;
    uint8_t tee;
    uint8_t snp;
    uint8_t microcode;
} snp_tcb;

/* Decodes / encodes the 8-byte little-endian TCB_VERSION value for a product.
 * Milan/Genoa: byte0 bootloader, 1 TEE, 6 SNP, 7 microcode.
 * Turin: byte0 FMC, 1 bootloader, 2 TEE, 3 SNP, 7 microcode. */
vtpmca_err snp_tcb_decode(uint64_t raw, snp_product product, snp_tcb *out);
vtpmca_err snp_tcb_encode(const snp_tcb *tcb, snp_product product, uint64_t *out);

/* All fields of a report, integers in host order. `raw` keeps the exact input so the
 * signature can be checked over it. */
typedef struct {
    uint32_t version;
    uint32_t guest_svn;
    uint64_t policy;
    uint8_t family_id[16];
    uint8_t image_id[16];
    uint32_t vmpl;
    uint32_t signature_algo;
    uint64_t current_tcb;
    uint64_t platform_info;
    uint32_t key_info;
    uint8_t report_data[64];
    uint8_t measurement[48];
    uint8_t host_data[32];
    uint8_t id_key_digest[48];
    uint8_t author_key_digest[48];
    uint8_t report_id[32];
    uint8_t report_id_ma[32];
    uint64_t reported_tcb;
    uint8_t cpuid_family;   /* v3+: 0 in v2 */
    uint8_t cpuid_model;    /* v3+ */
    uint8_t cpuid_stepping; /* v3+ */
    uint8_t chip_id[64];
    uint64_t committed_tcb;
    uint8_t current_build, current_minor, current_major;
    uint8_t committed_build, committed_minor, committed_major;
    uint64_t launch_tcb;
    uint64_t launch_mit_vector;  /* v5 */
    uint64_t current_mit_vector; /* v5 */
    uint8_t sig_r[72];           /* little-endian, zero padded */
    uint8_t sig_s[72];
    uint8_t raw[SNP_REPORT_SIZE];
} snp_report;

/* Parses a report strictly: exactly 1184 bytes, version 2, 3 or 5, signature_algo 1,
 * reserved-must-be-one policy bit set, must-be-zero key_info bits and reserved areas zero
 * (for the report's version), signing key VCEK or VLEK. The diag names the offending field. */
vtpmca_err snp_report_parse(const uint8_t *buf, size_t len, snp_report *out, vtpmca_diag *diag);

/* Writes every field (signature included) at its ABI offset; reserved areas are zero. No
 * validation: tests and the reference client use it to build reports, valid or not. */
vtpmca_err snp_report_encode(const snp_report *report, uint8_t out[SNP_REPORT_SIZE]);

/* Signing key named by key_info bits 4:2. */
snp_signer snp_report_signer(const snp_report *report);

/* Product from the CPUID fields (v3+). Returns SNP_PRODUCT_UNKNOWN for v2 reports or
 * unknown family/model: then the product comes from the VCEK or configuration. */
snp_product snp_report_product(const snp_report *report);

/* Writes a multi-line human description of every field to `out` (a FILE *). */
vtpmca_err snp_report_describe(const snp_report *report, snp_product product, void *out_file);

#endif
