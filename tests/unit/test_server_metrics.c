/* Unit tests for server/metrics.c: the rendered text is parsed back as Prometheus text
 * exposition format 0.0.4 and checked line by line. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vtpmca/server_metrics.h"

/* ---- A small exposition-format parser (strict enough to catch format mistakes). ---- */

#define MAX_SAMPLES 512
#define MAX_LABELS 4

typedef struct {
    char name[96];
    size_t n_labels;
    char label_name[MAX_LABELS][32];
    char label_value[MAX_LABELS][64];
    double value;
} sample;

typedef struct {
    char name[96];
    char type[16];
    bool has_help;
} family;

typedef struct {
    sample samples[MAX_SAMPLES];
    size_t n_samples;
    family families[64];
    size_t n_families;
} exposition;

static bool valid_metric_name(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static family *find_family(exposition *e, const char *name)
{
    for (size_t i = 0; i < e->n_families; i++)
        if (strcmp(e->families[i].name, name) == 0)
            return &e->families[i];
    return NULL;
}

/* The family a sample belongs to: histograms own _bucket, _sum and _count series. */
static family *family_of_sample(exposition *e, const char *name)
{
    family *f = find_family(e, name);
    if (f != NULL)
        return f;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(name), sl = strlen(suffixes[i]);
        if (n > sl && strcmp(name + n - sl, suffixes[i]) == 0) {
            char base[96];
            snprintf(base, sizeof(base), "%.*s", (int)(n - sl), name);
            f = find_family(e, base);
            if (f != NULL && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return NULL;
}

/* Parses `{a="x",b="y\"z"}`; returns a pointer after '}' or NULL. */
static const char *parse_labels(const char *p, sample *s)
{
    p++; /* '{' */
    while (*p != '}') {
        if (s->n_labels == MAX_LABELS)
            return NULL;
        const char *name = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p == name || *p != '=' || p[1] != '"')
            return NULL;
        snprintf(s->label_name[s->n_labels], 32, "%.*s", (int)(p - name), name);
        p += 2;
        size_t n = 0;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return NULL;
            char c = *p++;
            if (c == '\\') {
                c = *p++;
                if (c == 'n')
                    c = '\n';
                else if (c != '\\' && c != '"')
                    return NULL; /* only \\, \" and \n are valid escapes */
            }
            if (n + 1 < 64)
                s->label_value[s->n_labels][n++] = c;
        }
        s->label_value[s->n_labels][n] = '\0';
        s->n_labels++;
        p++; /* closing quote */
        if (*p == ',')
            p++;
        else if (*p != '}')
            return NULL;
    }
    return p + 1;
}

static void parse_exposition(const char *text, exposition *e)
{
    memset(e, 0, sizeof(*e));
    assert_true(strlen(text) > 0);
    assert_int_equal(text[strlen(text) - 1], '\n');
    const char *line = text;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        char buf[512];
        assert_true((size_t)(end - line) < sizeof(buf));
        snprintf(buf, sizeof(buf), "%.*s", (int)(end - line), line);
        line = end + 1;
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            const char *name = buf + 7;
            const char *sp = strchr(name, ' ');
            assert_non_null(sp);
            assert_true(valid_metric_name(name, (size_t)(sp - name)));
            char fname[96];
            snprintf(fname, sizeof(fname), "%.*s", (int)(sp - name), name);
            family *f = find_family(e, fname);
            if (buf[2] == 'H') {
                /* HELP comes first and only once per family. */
                assert_null(f);
                assert_true(e->n_families < 64);
                f = &e->families[e->n_families++];
                snprintf(f->name, sizeof(f->name), "%s", fname);
                f->has_help = true;
                assert_true(strlen(sp + 1) > 0);
            } else {
                assert_non_null(f);
                assert_string_equal(f->type, "");
                const char *type = sp + 1;
                if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
                    strcmp(type, "histogram") != 0)
                    fail_msg("bad TYPE line: %s", buf);
                snprintf(f->type, sizeof(f->type), "%s", type);
            }
            continue;
        }
        assert_true(buf[0] != '#' && buf[0] != '\0');
        assert_true(e->n_samples < MAX_SAMPLES);
        sample *s = &e->samples[e->n_samples++];
        const char *p = buf;
        while (*p && *p != '{' && *p != ' ')
            p++;
        assert_true(valid_metric_name(buf, (size_t)(p - buf)));
        snprintf(s->name, sizeof(s->name), "%.*s", (int)(p - buf), buf);
        if (*p == '{') {
            p = parse_labels(p, s);
            if (p == NULL)
                fail_msg("bad labels in: %s", buf);
        }
        assert_int_equal(*p, ' ');
        char *value_end = NULL;
        s->value = strtod(p + 1, &value_end);
        assert_true(value_end != p + 1 && *value_end == '\0');
        /* Every sample belongs to a family declared (with TYPE) before it. */
        family *f = family_of_sample(e, s->name);
        if (f == NULL || f->type[0] == '\0')
            fail_msg("sample without a declared family: %s", buf);
    }
}

static const char *label(const sample *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->label_name[i], name) == 0)
            return s->label_value[i];
    return NULL;
}

/* Value of the sample with this name and label set (pairs, NULL-terminated); -1 if absent. */
static double value_of(const exposition *e, const char *name, ...)
{
    for (size_t i = 0; i < e->n_samples; i++) {
        const sample *s = &e->samples[i];
        if (strcmp(s->name, name) != 0)
            continue;
        va_list ap;
        va_start(ap, name);
        bool match = true;
        size_t n = 0;
        for (const char *k; (k = va_arg(ap, const char *)) != NULL; n++) {
            const char *v = va_arg(ap, const char *);
            const char *have = label(s, k);
            if (have == NULL || strcmp(have, v) != 0)
                match = false;
        }
        va_end(ap);
        if (match && n == s->n_labels)
            return s->value;
    }
    return -1;
}

/* Checks one route's histogram: ascending le, cumulative counts, +Inf last and == _count. */
static void check_histogram(const exposition *e, const char *route, double expect_count,
                            double expect_sum)
{
    double prev_le = -INFINITY, prev_count = 0;
    bool saw_inf = false;
    size_t buckets = 0;
    for (size_t i = 0; i < e->n_samples; i++) {
        const sample *s = &e->samples[i];
        if (strcmp(s->name, "vtpmca_http_request_duration_seconds_bucket") != 0 ||
            strcmp(label(s, "route"), route) != 0)
            continue;
        assert_false(saw_inf); /* +Inf is the last bucket */
        const char *le_text = label(s, "le");
        assert_non_null(le_text);
        double le = strcmp(le_text, "+Inf") == 0 ? INFINITY : strtod(le_text, NULL);
        saw_inf = isinf(le);
        assert_true(le > prev_le);
        assert_true(s->value >= prev_count);
        prev_le = le;
        prev_count = s->value;
        buckets++;
    }
    assert_true(saw_inf);
    assert_true(buckets >= 2);
    double count = value_of(e, "vtpmca_http_request_duration_seconds_count", "route", route, NULL);
    assert_true(count == prev_count);
    assert_true(count == expect_count);
    double sum = value_of(e, "vtpmca_http_request_duration_seconds_sum", "route", route, NULL);
    assert_true(fabs(sum - expect_sum) < 1e-6);
}

static double bucket(const exposition *e, const char *route, const char *le)
{
    return value_of(e, "vtpmca_http_request_duration_seconds_bucket", "route", route, "le", le,
                    NULL);
}

static char *render(const server_metrics *m, const server_metrics_external *ext)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(server_metrics_render(m, ext, &text, &len), VTPMCA_OK);
    assert_int_equal(strlen(text), len);
    return text;
}

static exposition parsed; /* large: static rather than on the stack */

static void test_counters_and_histograms(void **state)
{
    (void)state;
    /* A label with characters that need escaping. */
    const char *labels[] = {"/a", "/odd\"path\\", "unmatched"};
    server_metrics *m = NULL;
    assert_int_equal(server_metrics_new(labels, 3, &m), VTPMCA_OK);

    assert_int_equal(server_metrics_observe_request(m, 0, "GET", 200, 0.0002), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 0, "GET", 200, 0.003), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 0, "POST", 405, 0.2), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 0, "BREW", 418, 20.0), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 1, "GET", 999, 0.001), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 2, "DELETE", 404, 0.0005), VTPMCA_OK);
    assert_int_equal(server_metrics_count_verification(m, SERVER_VERIFY_PASS), VTPMCA_OK);
    assert_int_equal(server_metrics_count_verification(m, SERVER_VERIFY_PASS), VTPMCA_OK);
    assert_int_equal(server_metrics_count_verification(m, SERVER_VERIFY_BAD_REQUEST), VTPMCA_OK);

    snp_verifier_stats vs = {
        .cache_hits = 11, .cache_misses = 3, .store_hits = 2, .kds_fetches = 1};
    kds_stats ks = {.requests = 5, .cache_hits = 4, .rate_limited = 1, .failures = 2};
    server_metrics_external ext = {.version = "9.8.7",
                                   .start_time_s = 1700000000.5,
                                   .verifier = &vs,
                                   .kds = &ks,
                                   .policy_cache_entries = 6};
    char *text = render(m, &ext);
    parse_exposition(text, &parsed);

    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/a", "method", "GET",
                         "code", "200", NULL) == 2);
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/a", "method", "POST",
                         "code", "405", NULL) == 1);
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/a", "method", "other",
                         "code", "418", NULL) == 1);
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/odd\"path\\", "method",
                         "GET", "code", "other", NULL) == 1);
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "unmatched", "method",
                         "DELETE", "code", "404", NULL) == 1);
    /* Combinations never seen are not rendered. */
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/a", "method", "GET",
                         "code", "500", NULL) == -1);
    assert_non_null(strstr(text, "route=\"/odd\\\"path\\\\\""));

    check_histogram(&parsed, "/a", 4, 0.0002 + 0.003 + 0.2 + 20.0);
    check_histogram(&parsed, "/odd\"path\\", 1, 0.001);
    check_histogram(&parsed, "unmatched", 1, 0.0005);
    /* Bucket bounds are inclusive upper bounds. */
    assert_true(bucket(&parsed, "/a", "0.0005") == 1);
    assert_true(bucket(&parsed, "/a", "0.0025") == 1);
    assert_true(bucket(&parsed, "/a", "0.005") == 2);
    assert_true(bucket(&parsed, "/a", "0.25") == 3);
    assert_true(bucket(&parsed, "/a", "10") == 3);
    assert_true(bucket(&parsed, "/a", "+Inf") == 4);
    assert_true(bucket(&parsed, "unmatched", "0.0005") == 1);

    assert_true(value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "pass", NULL) == 2);
    assert_true(
        value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "bad_request", NULL) == 1);
    assert_true(
        value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "policy_fail", NULL) == 0);
    assert_true(
        value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "evidence_fail", NULL) == 0);
    assert_true(value_of(&parsed, "vtpmca_vcek_cache_hits_total", NULL) == 11);
    assert_true(value_of(&parsed, "vtpmca_vcek_cache_misses_total", NULL) == 3);
    assert_true(value_of(&parsed, "vtpmca_vcek_store_hits_total", NULL) == 2);
    assert_true(value_of(&parsed, "vtpmca_vcek_kds_fetches_total", NULL) == 1);
    assert_true(value_of(&parsed, "vtpmca_kds_requests_total", NULL) == 5);
    assert_true(value_of(&parsed, "vtpmca_kds_cache_hits_total", NULL) == 4);
    assert_true(value_of(&parsed, "vtpmca_kds_rate_limited_total", NULL) == 1);
    assert_true(value_of(&parsed, "vtpmca_kds_failures_total", NULL) == 2);
    assert_true(value_of(&parsed, "vtpmca_policy_cache_entries", NULL) == 6);
    assert_true(value_of(&parsed, "vtpmca_start_time_seconds", NULL) == 1700000000.5);
    assert_true(value_of(&parsed, "vtpmca_build_info", "version", "9.8.7", NULL) == 1);

    const struct {
        const char *name, *type;
    } families[] = {
        {"vtpmca_http_requests_total", "counter"},
        {"vtpmca_http_request_duration_seconds", "histogram"},
        {"vtpmca_snp_verifications_total", "counter"},
        {"vtpmca_vcek_cache_hits_total", "counter"},
        {"vtpmca_kds_requests_total", "counter"},
        {"vtpmca_policy_cache_entries", "gauge"},
        {"vtpmca_build_info", "gauge"},
    };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        family *f = find_family(&parsed, families[i].name);
        if (f == NULL)
            fail_msg("family %s missing", families[i].name);
        assert_true(f->has_help);
        assert_string_equal(f->type, families[i].type);
    }
    free(text);

    /* Without a KDS client its metrics are left out; the rest still parses. */
    ext.kds = NULL;
    text = render(m, &ext);
    parse_exposition(text, &parsed);
    assert_null(find_family(&parsed, "vtpmca_kds_requests_total"));
    assert_non_null(find_family(&parsed, "vtpmca_vcek_cache_hits_total"));
    free(text);
    /* No external values at all. */
    text = render(m, NULL);
    parse_exposition(text, &parsed);
    assert_null(find_family(&parsed, "vtpmca_vcek_cache_hits_total"));
    assert_true(value_of(&parsed, "vtpmca_build_info", "version", "unknown", NULL) == 1);
    free(text);
    server_metrics_free(m);
}

static void test_empty_metrics_render(void **state)
{
    (void)state;
    const char *labels[] = {"/healthz", "unmatched"};
    server_metrics *m = NULL;
    assert_int_equal(server_metrics_new(labels, 2, &m), VTPMCA_OK);
    char *text = render(m, NULL);
    parse_exposition(text, &parsed);
    /* Histograms exist from the start with zero counts, so rate() works from the first scrape. */
    check_histogram(&parsed, "/healthz", 0, 0);
    assert_non_null(find_family(&parsed, "vtpmca_http_requests_total"));
    assert_true(value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "pass", NULL) == 0);
    free(text);
    server_metrics_free(m);
}

typedef struct {
    server_metrics *m;
    int id;
} worker_arg;

#define THREADS 4
#define PER_THREAD 20000

static void *observe_many(void *p)
{
    worker_arg *arg = p;
    for (int i = 0; i < PER_THREAD; i++) {
        server_metrics_observe_request(arg->m, (size_t)(i % 2), "POST", 200, 0.001 * (i % 7));
        server_metrics_count_verification(arg->m, (server_verify_outcome)(i % 4));
    }
    return NULL;
}

/* Counting from several threads loses nothing (the counters are atomic). */
static void test_concurrent_counting(void **state)
{
    (void)state;
    const char *labels[] = {"/x", "/y", "unmatched"};
    server_metrics *m = NULL;
    assert_int_equal(server_metrics_new(labels, 3, &m), VTPMCA_OK);
    pthread_t threads[THREADS];
    worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){m, t};
        assert_int_equal(pthread_create(&threads[t], NULL, observe_many, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    char *text = render(m, NULL);
    parse_exposition(text, &parsed);
    double per_route = THREADS * PER_THREAD / 2.0;
    assert_true(value_of(&parsed, "vtpmca_http_requests_total", "route", "/x", "method", "POST",
                         "code", "200", NULL) == per_route);
    assert_true(value_of(&parsed, "vtpmca_http_request_duration_seconds_count", "route", "/y",
                         NULL) == per_route);
    assert_true(value_of(&parsed, "vtpmca_snp_verifications_total", "outcome", "evidence_fail",
                         NULL) == THREADS * PER_THREAD / 4.0);
    free(text);
    server_metrics_free(m);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *labels[] = {"/a", NULL};
    server_metrics *m = NULL;
    assert_int_equal(server_metrics_new(labels, 2, &m), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_new(NULL, 1, &m), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_new(labels, 1, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_new(labels, 1, &m), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 1, "GET", 200, 0.1), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_observe_request(m, 0, NULL, 200, 0.1), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_observe_request(NULL, 0, "GET", 200, 0.1),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_count_verification(m, SERVER_VERIFY_OUTCOME_COUNT),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_count_verification(NULL, SERVER_VERIFY_PASS),
                     VTPMCA_ERR_INVALID_ARG);
    /* A negative or NaN duration counts as zero rather than corrupting the sum. */
    assert_int_equal(server_metrics_observe_request(m, 0, "GET", 200, -1.0), VTPMCA_OK);
    assert_int_equal(server_metrics_observe_request(m, 0, "GET", 200, NAN), VTPMCA_OK);
    char *text = render(m, NULL);
    parse_exposition(text, &parsed);
    check_histogram(&parsed, "/a", 2, 0);
    free(text);
    char *out = NULL;
    assert_int_equal(server_metrics_render(NULL, NULL, &out, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_metrics_render(m, NULL, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_string_equal(server_verify_outcome_name(SERVER_VERIFY_POLICY_FAIL), "policy_fail");
    assert_string_equal(server_verify_outcome_name(SERVER_VERIFY_OUTCOME_COUNT), "unknown");
    server_metrics_free(m);
    server_metrics_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_histograms),
        cmocka_unit_test(test_empty_metrics_render),
        cmocka_unit_test(test_concurrent_counting),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
