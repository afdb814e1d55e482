/* Verifies SEV-SNP evidence end to end: parse, find the VCEK/VLEK (supplied, warm cache,
 * store, or KDS), chain to the trusted roots, bind it to the report, check the signature.
 * Produces the claims the rest of the product uses. Thread-safe. */
#ifndef VTPMCA_SNP_VERIFIER_H
#define VTPMCA_SNP_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/kds.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/store.h"

typedef struct {
    const snp_roots *roots;      /* required; not owned */
    store *store;                /* optional: VCEK lookups and saving KDS answers */
    kds_client *kds;             /* optional: fetch missing VCEKs */
    unsigned cache_entries;      /* verified VCEKs kept warm; default 1024 when 0 */
    snp_product default_product; /* for v2 reports when nothing else names the product */
} snp_verifier_config;

typedef struct snp_verifier snp_verifier;

/* Where the certificate that verified the report came from. */
typedef enum {
    SNP_VCEK_SUPPLIED = 0,
    SNP_VCEK_CACHE,
    SNP_VCEK_STORE,
    SNP_VCEK_KDS,
} snp_vcek_source;
const char *snp_vcek_source_name(snp_vcek_source source);

/* Claims from verified evidence. */
typedef struct {
    snp_report report;
    snp_product product;
    snp_signer signer;
    snp_tcb reported_tcb, current_tcb, committed_tcb, launch_tcb;
    snp_vcek_source vcek_source;
    char vcek_product_name[32];
} snp_evidence;

vtpmca_err snp_verifier_new(const snp_verifier_config *config, snp_verifier **out,
                            vtpmca_diag *diag);
void snp_verifier_free(snp_verifier *verifier);

/* Details of snp_verifier_verify below: a certificate found in the store or KDS, or
 * supplied, enters the warm cache once its chain and its binding to the report hold; a KDS
 * answer is also saved to the store (source "kds"). A cached entry is used only while `at`
 * is inside its chain's validity window. KDS is never asked for a VLEK. Certificates over
 * 64 KiB are refused with VTPMCA_ERR_LIMIT. */

/* Verifies a raw report. `cert` (DER or PEM, may be NULL) is a VCEK/VLEK supplied with the
 * evidence. `at` is the time for certificate validity (0 = now). On success fills *out.
 * On a failure after parsing, out->report is still filled (for audit) and the error says
 * which step failed: PARSE/UNSUPPORTED (report), NOT_FOUND (no VCEK), CRYPTO (chain,
 * binding or signature), NETWORK/LIMIT (KDS). */
vtpmca_err snp_verifier_verify(snp_verifier *verifier, const uint8_t *report, size_t report_len,
                               const uint8_t *cert, size_t cert_len, time_t at, snp_evidence *out,
                               vtpmca_diag *diag);

/* cache_hits: verifications that reused a cached chain verification (a warm lookup, or a
 * supplied certificate byte-identical to a cached one, DER only); cache_misses: the others
 * that reached the lookup; store_hits / kds_fetches: certificates found there. */
typedef struct {
    uint64_t cache_hits, cache_misses, store_hits, kds_fetches;
} snp_verifier_stats;
void snp_verifier_get_stats(const snp_verifier *verifier, snp_verifier_stats *out);

#endif
