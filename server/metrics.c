/* Prometheus counters and histograms with relaxed atomics; text exposition format 0.0.4. */
#include "vtpmca/server_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"GET",    "HEAD",  "POST",    "PUT",
                                           "DELETE", "PATCH", "OPTIONS", "other"};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))

/* Status codes 100..599 are indexed directly (exact labels, no lookup); the last slot
 * holds anything else. */
#define STATUS_MIN 100u
#define STATUS_MAX 599u
#define N_STATUS (STATUS_MAX - STATUS_MIN + 2)

/* Upper bounds in seconds: verification takes about a millisecond; KDS fetches seconds. */
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

typedef struct {
    char *label;
    atomic_uint_fast64_t requests[N_METHODS][N_STATUS];
    atomic_uint_fast64_t buckets[N_BUCKETS + 1]; /* non-cumulative; last is > max bound */
    atomic_uint_fast64_t duration_sum_ns;
} route_metrics;

struct server_metrics {
    size_t n_routes;
    route_metrics *routes;
    atomic_uint_fast64_t verifications[SERVER_VERIFY_OUTCOME_COUNT];
};

static const char *const outcome_names[SERVER_VERIFY_OUTCOME_COUNT] = {
    "pass", "policy_fail", "evidence_fail", "bad_request"};

const char *server_verify_outcome_name(server_verify_outcome outcome)
{
    if ((unsigned)outcome >= SERVER_VERIFY_OUTCOME_COUNT)
        return "unknown";
    return outcome_names[outcome];
}

vtpmca_err server_metrics_new(const char *const *route_labels, size_t n_routes,
                              server_metrics **out)
{
    if (out == NULL || (route_labels == NULL && n_routes > 0))
        return VTPMCA_ERR_INVALID_ARG;
    for (size_t i = 0; i < n_routes; i++) {
        if (route_labels[i] == NULL)
            return VTPMCA_ERR_INVALID_ARG;
    }
    server_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return VTPMCA_ERR_NOMEM;
    m->routes = calloc(n_routes ? n_routes : 1, sizeof(*m->routes));
    if (m->routes == NULL) {
        free(m);
        return VTPMCA_ERR_NOMEM;
    }
    m->n_routes = n_routes;
    /* calloc's zero bytes are valid initial values for the lock-free atomics used here. */
    for (size_t i = 0; i < n_routes; i++) {
        m->routes[i].label = strdup(route_labels[i]);
        if (m->routes[i].label == NULL) {
            server_metrics_free(m);
            return VTPMCA_ERR_NOMEM;
        }
    }
    *out = m;
    return VTPMCA_OK;
}

void server_metrics_free(server_metrics *metrics)
{
    if (metrics == NULL)
        return;
    for (size_t i = 0; i < metrics->n_routes; i++)
        free(metrics->routes[i].label);
    free(metrics->routes);
    free(metrics);
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < N_METHODS; i++) {
        if (strcmp(method, method_names[i]) == 0)
            return i;
    }
    return N_METHODS - 1;
}

static size_t status_index(unsigned status)
{
    if (status < STATUS_MIN || status > STATUS_MAX)
        return N_STATUS - 1;
    return status - STATUS_MIN;
}

vtpmca_err server_metrics_observe_request(server_metrics *metrics, size_t route_index,
                                          const char *method, unsigned status, double duration_s)
{
    if (metrics == NULL || method == NULL || route_index >= metrics->n_routes)
        return VTPMCA_ERR_INVALID_ARG;
    if (!(duration_s >= 0)) /* also rejects NaN */
        duration_s = 0;
    route_metrics *r = &metrics->routes[route_index];
    atomic_fetch_add_explicit(&r->requests[method_index(method)][status_index(status)], 1,
                              memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKETS && duration_s > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    double ns = duration_s * 1e9;
    uint64_t ns_int = ns < 1.8e19 ? (uint64_t)ns : UINT64_MAX;
    atomic_fetch_add_explicit(&r->duration_sum_ns, ns_int, memory_order_relaxed);
    return VTPMCA_OK;
}

vtpmca_err server_metrics_count_verification(server_metrics *metrics, server_verify_outcome outcome)
{
    if (metrics == NULL || (unsigned)outcome >= SERVER_VERIFY_OUTCOME_COUNT)
        return VTPMCA_ERR_INVALID_ARG;
    atomic_fetch_add_explicit(&metrics->verifications[outcome], 1, memory_order_relaxed);
    return VTPMCA_OK;
}

static uint64_t load(const atomic_uint_fast64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

/* Label values escape backslash, double quote and newline (exposition format rules). */
static void put_label_value(FILE *f, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p == '"')
            fputs("\\\"", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
}

static void put_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_counter(FILE *f, const char *name, const char *help, uint64_t value)
{
    put_family(f, name, "counter", help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)value);
}

static void render_http(FILE *f, const server_metrics *m)
{
    put_family(f, "vtpmca_http_requests_total", "counter",
               "HTTP requests by route, method and status code.");
    for (size_t r = 0; r < m->n_routes; r++) {
        for (size_t meth = 0; meth < N_METHODS; meth++) {
            for (size_t s = 0; s < N_STATUS; s++) {
                uint64_t n = load(&m->routes[r].requests[meth][s]);
                if (n == 0)
                    continue;
                fputs("vtpmca_http_requests_total{route=\"", f);
                put_label_value(f, m->routes[r].label);
                fprintf(f, "\",method=\"%s\",code=\"", method_names[meth]);
                if (s == N_STATUS - 1)
                    fputs("other", f);
                else
                    fprintf(f, "%u", (unsigned)(s + STATUS_MIN));
                fprintf(f, "\"} %llu\n", (unsigned long long)n);
            }
        }
    }

    put_family(f, "vtpmca_http_request_duration_seconds", "histogram",
               "HTTP request duration by route, from the first byte of the request to the "
               "end of the response.");
    for (size_t r = 0; r < m->n_routes; r++) {
        const route_metrics *rm = &m->routes[r];
        /* _count is the total of the buckets read here, so +Inf always equals it even while
         * other threads keep counting. */
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) {
            cumulative += load(&rm->buckets[b]);
            fputs("vtpmca_http_request_duration_seconds_bucket{route=\"", f);
            put_label_value(f, rm->label);
            if (b < N_BUCKETS)
                fprintf(f, "\",le=\"%g\"} %llu\n", bucket_bounds[b],
                        (unsigned long long)cumulative);
            else
                fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        fputs("vtpmca_http_request_duration_seconds_sum{route=\"", f);
        put_label_value(f, rm->label);
        fprintf(f, "\"} %.9g\n", (double)load(&rm->duration_sum_ns) / 1e9);
        fputs("vtpmca_http_request_duration_seconds_count{route=\"", f);
        put_label_value(f, rm->label);
        fprintf(f, "\"} %llu\n", (unsigned long long)cumulative);
    }
}

static void render_external(FILE *f, const server_metrics_external *ext)
{
    if (ext->verifier != NULL) {
        put_counter(f, "vtpmca_vcek_cache_hits_total",
                    "Verifications that found their VCEK in the warm cache.",
                    ext->verifier->cache_hits);
        put_counter(f, "vtpmca_vcek_cache_misses_total",
                    "Verifications that had to look beyond the warm cache.",
                    ext->verifier->cache_misses);
        put_counter(f, "vtpmca_vcek_store_hits_total", "VCEKs loaded from the store.",
                    ext->verifier->store_hits);
        put_counter(f, "vtpmca_vcek_kds_fetches_total", "VCEKs the verifier fetched from KDS.",
                    ext->verifier->kds_fetches);
    }
    if (ext->kds != NULL) {
        put_counter(f, "vtpmca_kds_requests_total", "HTTP requests sent to AMD KDS.",
                    ext->kds->requests);
        put_counter(f, "vtpmca_kds_cache_hits_total", "KDS answers served from memory.",
                    ext->kds->cache_hits);
        put_counter(f, "vtpmca_kds_rate_limited_total",
                    "KDS requests refused by the local rate limit.", ext->kds->rate_limited);
        put_counter(f, "vtpmca_kds_failures_total", "KDS requests that failed.",
                    ext->kds->failures);
    }
    put_family(f, "vtpmca_policy_cache_entries", "gauge", "Parsed fleet policies in memory.");
    fprintf(f, "vtpmca_policy_cache_entries %llu\n", (unsigned long long)ext->policy_cache_entries);
    if (ext->start_time_s > 0) {
        put_family(f, "vtpmca_start_time_seconds", "gauge",
                   "Unix time at which the daemon started.");
        fprintf(f, "vtpmca_start_time_seconds %.3f\n", ext->start_time_s);
    }
    put_family(f, "vtpmca_build_info", "gauge", "Build information; the value is always 1.");
    fputs("vtpmca_build_info{version=\"", f);
    put_label_value(f, ext->version != NULL ? ext->version : "unknown");
    fputs("\"} 1\n", f);
}

vtpmca_err server_metrics_render(const server_metrics *metrics,
                                 const server_metrics_external *external, char **out,
                                 size_t *out_len)
{
    if (metrics == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return VTPMCA_ERR_NOMEM;

    render_http(f, metrics);
    put_family(f, "vtpmca_snp_verifications_total", "counter",
               "SEV-SNP verification requests by outcome.");
    for (size_t i = 0; i < SERVER_VERIFY_OUTCOME_COUNT; i++)
        fprintf(f, "vtpmca_snp_verifications_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                (unsigned long long)load(&metrics->verifications[i]));
    server_metrics_external none = {0};
    render_external(f, external != NULL ? external : &none);

    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(text);
        return VTPMCA_ERR_NOMEM;
    }
    *out = text;
    if (out_len != NULL)
        *out_len = len;
    return VTPMCA_OK;
}
