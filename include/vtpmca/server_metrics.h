/* Prometheus metrics for vtpmcad. Recording is lock-free (relaxed atomics) so it costs a few
 * nanoseconds on the request path; rendering walks the counters and writes the text
 * exposition format, version 0.0.4. */
#ifndef VTPMCA_SERVER_METRICS_H
#define VTPMCA_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/kds.h"
#include "vtpmca/snp_verifier.h"

#define SERVER_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct server_metrics server_metrics;

/* route_labels are the values of the `route` label (copied), e.g. "/healthz"; requests
 * that match no route should be recorded under a label such as "unmatched". */
vtpmca_err server_metrics_new(const char *const *route_labels, size_t n_routes,
                              server_metrics **out);
void server_metrics_free(server_metrics *metrics);

/* Counts one finished request: vtpmca_http_requests_total{route,method,code} and the
 * route's vtpmca_http_request_duration_seconds histogram. Methods other than GET, HEAD,
 * POST, PUT, DELETE, PATCH and OPTIONS are recorded as "other"; status codes outside
 * 100..599 as "other". */
vtpmca_err server_metrics_observe_request(server_metrics *metrics, size_t route_index,
                                          const char *method, unsigned status, double duration_s);

typedef enum {
    SERVER_VERIFY_PASS = 0,
    SERVER_VERIFY_POLICY_FAIL,
    SERVER_VERIFY_EVIDENCE_FAIL,
    SERVER_VERIFY_BAD_REQUEST,
    SERVER_VERIFY_OUTCOME_COUNT
} server_verify_outcome;

/* "pass", "policy_fail", "evidence_fail", "bad_request". */
const char *server_verify_outcome_name(server_verify_outcome outcome);

/* vtpmca_snp_verifications_total{outcome}. */
vtpmca_err server_metrics_count_verification(server_metrics *metrics,
                                             server_verify_outcome outcome);

/* Values owned by other components, sampled when /metrics is rendered. */
typedef struct {
    const char *version;                /* vtpmca_build_info{version} */
    double start_time_s;                /* vtpmca_start_time_seconds (unix time) */
    const snp_verifier_stats *verifier; /* NULL: verifier metrics omitted */
    const kds_stats *kds;               /* NULL: KDS disabled, KDS metrics omitted */
    uint64_t policy_cache_entries;      /* vtpmca_policy_cache_entries gauge */
} server_metrics_external;

/* Renders every metric as Prometheus text; *out is malloc'd and NUL-terminated. */
vtpmca_err server_metrics_render(const server_metrics *metrics,
                                 const server_metrics_external *external, char **out,
                                 size_t *out_len);

#endif
