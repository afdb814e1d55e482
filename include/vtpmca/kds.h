/* Client for AMD's Key Distribution Service (VCEK download), with a request timeout, an
 * in-memory cache of answers (including "not found") and a token-bucket rate limit.
 * Used only where configured; tests point it at a stand-in server on loopback. */
#ifndef VTPMCA_KDS_H
#define VTPMCA_KDS_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"

typedef struct {
    const char *base_url;   /* e.g. "https://kdsintf.amd.com"; no trailing slash needed */
    long timeout_ms;        /* whole-request timeout; default 5000 when 0 */
    double rate_per_sec;    /* sustained requests per second; default 1 when 0 */
    unsigned burst;         /* bucket size; default 4 when 0 */
    unsigned cache_entries; /* answers kept in memory; default 256 when 0 */
    long negative_ttl_s;    /* how long a 404 is remembered; default 300 when 0 */
} kds_config;

typedef struct kds_client kds_client;

vtpmca_err kds_client_new(const kds_config *config, kds_client **out, vtpmca_diag *diag);
void kds_client_free(kds_client *kds);

/* Builds the VCEK URL path: /vcek/v1/{Milan|Genoa|Turin}/{hex chip id}?blSPL=..&teeSPL=..
 * &snpSPL=..&ucodeSPL=.. (Turin: fmcSPL too and an 8-byte hwid). *out malloc'd.
 * Details: hex is lower case; SPLs are decimal with at least two digits ("03"); on Turin the
 * query is fmcSPL=..&blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=.. (the order AMD's KDS
 * specification lists). config may be NULL: then only the path is built; when
 * config->base_url is set it is prefixed (trailing '/' dropped). INVALID_ARG for an
 * unknown product. */
vtpmca_err kds_vcek_url(const kds_config *config, snp_product product, const uint8_t chip_id[64],
                        const snp_tcb *tcb, char **out);

/* Fetches a VCEK (DER). VTPMCA_ERR_NOT_FOUND on 404, VTPMCA_ERR_LIMIT when the rate limit
 * refuses a new request, VTPMCA_ERR_NETWORK on timeout/other failure. Thread-safe.
 * Details: *der is malloc'd. Answers (certificates, and 404s for negative_ttl_s) are
 * remembered and served without a token; only new requests take one, and an empty bucket
 * refuses at once. A body over 16 KiB, HTTP 429, 5xx and any other status are NETWORK
 * errors and are not remembered. Only http:// and https:// are used; redirects are not
 * followed. */
vtpmca_err kds_fetch_vcek(kds_client *kds, snp_product product, const uint8_t chip_id[64],
                          const snp_tcb *tcb, uint8_t **der, size_t *der_len, vtpmca_diag *diag);

/* Counters for metrics: requests sent, answers served from memory, requests refused by
 * the rate limit, requests that failed (NETWORK). */
typedef struct {
    uint64_t requests, cache_hits, rate_limited, failures;
} kds_stats;
void kds_client_stats(const kds_client *kds, kds_stats *out);

#endif
