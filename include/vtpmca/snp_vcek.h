/* VCEK / VLEK certificates: decoding AMD's extensions, chain verification to the trusted
 * roots, the report signature, and the binding of a certificate to a report. */
#ifndef VTPMCA_SNP_VCEK_H
#define VTPMCA_SNP_VCEK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_roots.h"

typedef struct snp_vcek snp_vcek;

/* What the certificate says, decoded from real DER. */
typedef struct {
    snp_signer kind;       /* SNP_SIGNER_VCEK or SNP_SIGNER_VLEK (from subject CN) */
    snp_product product;   /* from the productName extension */
    char product_name[32]; /* productName as written, e.g. "Milan-B0" */
    long struct_version;   /* 1.3.6.1.4.1.3704.1.1 */
    snp_tcb tcb;           /* blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL (Turin) */
    uint64_t tcb_raw;      /* tcb encoded in the product's TCB_VERSION layout */
    uint8_t hwid[64];      /* VCEK only: 64 bytes, or 8 on Turin */
    size_t hwid_len;
    char csp_id[128]; /* VLEK only, empty otherwise */
    time_t not_before;
    time_t not_after;
} snp_vcek_info;

/* Parses a VCEK or VLEK certificate (DER, or PEM) and decodes its extensions. Fails with a
 * precise diag when a required extension is missing or malformed, or the key is not P-384. */
vtpmca_err snp_vcek_parse(const uint8_t *data, size_t len, snp_vcek **out, vtpmca_diag *diag);

const snp_vcek_info *snp_vcek_get_info(const snp_vcek *vcek);

/* The certificate's DER encoding (owned by vcek). */
vtpmca_err snp_vcek_get_der(const snp_vcek *vcek, const uint8_t **der, size_t *len);

/* Verifies VCEK -> ASK -> ARK (or VLEK -> ASVK -> ARK) against the trusted roots for the
 * certificate's product, with validity checked at `at`. All signatures must be RSASSA-PSS
 * with SHA-384. On success *valid_from / *valid_until (either may be NULL) receive the
 * window in which the whole chain is valid, so callers can cache the result.
 * `at` == 0 means now. A set holding several chains for the product tries each one whose
 * ASK/ASVK subject matches the certificate's issuer; the diag reports the closest miss. */
vtpmca_err snp_vcek_verify_chain(const snp_vcek *vcek, const snp_roots *roots, time_t at,
                                 time_t *valid_from, time_t *valid_until, vtpmca_diag *diag);

/* Checks that the certificate belongs to the report: same signer kind as key_info, product
 * consistent with the report's CPUID (v3+), TCB extensions equal to reported_tcb, and (VCEK)
 * hwID equal to chip_id (first 8 bytes on Turin). */
vtpmca_err snp_vcek_check_report(const snp_vcek *vcek, const snp_report *report, vtpmca_diag *diag);

/* Verifies the report's ECDSA P-384 / SHA-384 signature (r, s little-endian) over bytes
 * 0x000..0x29F with the certificate's key. */
vtpmca_err snp_report_verify_signature(const snp_report *report, const snp_vcek *vcek,
                                       vtpmca_diag *diag);

/* Reference counting, so a cache can hand out entries safely across threads. */
void snp_vcek_ref(snp_vcek *vcek);
void snp_vcek_free(snp_vcek *vcek); /* drops one reference */

#endif
