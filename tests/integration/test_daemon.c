/* End-to-end tests of the real vtpmcad binary: it is started on 127.0.0.1 with an ephemeral
 * port in a temporary state directory and spoken to over HTTP with libcurl. The database is
 * prepared with the store API beforehand (fleets, policies, the genuine Milan VCEKs); a
 * synthetic report comes from a test-only root that one daemon trusts through
 * --extra-roots-dir and a second daemon, started without it, refuses. */
#define _XOPEN_SOURCE 700 /* POSIX (mkdtemp, strdup, ...) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_config.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/store.h"

#include "../support/kds_standin.h"
#include "../support/http_capture.h"
#include "../support/vtpmcad_runner.h"

#define GENUINE_DIR VTPMCA_SHARED_DIR "/testdata/snp"
#define MAX_BODY 65536

static struct {
    char dir[64];
    char state_dir[128];
    char db[160];
    char roots_dir[160];
    char *report_b_b64, *report_b_hex, *report_debug_b64;
    char *synthetic_b64, *synthetic_vcek_b64;
    uint8_t *synthetic_vcek; /* DER */
    size_t synthetic_vcek_len;
    snp_test_cert_params synthetic_params;
    vtpmcad_proc trusting; /* started with --extra-roots-dir */
    vtpmcad_proc plain;    /* builtin AMD roots only */
} fx;

/* ---- processes ---- */

/* Starts vtpmcad (see vtpmcad_start) with a 64 KiB body limit and `extra` flags
 * (NULL-terminated, may be NULL); fails the test if it does not come up. */
static void start_daemon(vtpmcad_proc *d, const char *name, const char *state_dir,
                         const char *const *extra)
{
    const char *args[32] = {"--max-body-bytes", "65536", NULL};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < 32; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    vtpmca_diag diag = {{0}};
    if (vtpmcad_start(d, fx.dir, name, state_dir, args, &diag) != VTPMCA_OK)
        fail_msg("%s", diag.msg);
    assert_true(d->port > 0 && d->port < 65536);
}

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body;
    size_t len;
    char allow[128];
    char content_type[128];
} http_result;

typedef struct {
    const char *data;
    size_t len, pos;
} upload;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    return http_capture_append(&r->body, &r->len, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    size_t len = size * n;
    http_capture_header(data, len, "Allow", r->allow, sizeof(r->allow));
    http_capture_header(data, len, "Content-Type", r->content_type, sizeof(r->content_type));
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *user)
{
    upload *u = user;
    size_t want = size * n, left = u->len - u->pos;
    size_t chunk = want < left ? want : left;
    if (chunk > 1000)
        chunk = 1000; /* several chunks */
    memcpy(buf, u->data + u->pos, chunk);
    u->pos += chunk;
    return chunk;
}

/* content_type NULL sends no Content-Type header at all. */
static void http_call(const vtpmcad_proc *d, const char *method, const char *path,
                      const char *content_type, const char *body, size_t body_len, bool chunked,
                      http_result *r)
{
    memset(r, 0, sizeof(*r));
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", d->port, path);
    struct curl_slist *headers = NULL;
    char ct[160];
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "");
    if (content_type != NULL)
        headers = curl_slist_append(headers, ct);
    else
        headers = curl_slist_append(headers, "Content-Type:");
    upload u = {body, body_len, 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    if (body != NULL && chunked) {
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, &u);
    } else if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static json_t *http_json(const vtpmcad_proc *d, const char *method, const char *path,
                         const char *body, long expect_status)
{
    http_result r;
    http_call(d, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
              false, &r);
    if (r.status != expect_status)
        fail_msg("%s %s: status %ld, expected %ld: %s", method, path, r.status, expect_status,
                 r.body ? r.body : "");
    assert_string_equal(r.content_type, "application/json");
    json_error_t jerr;
    json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
    if (doc == NULL)
        fail_msg("response is not JSON: %s", r.body ? r.body : "");
    free(r.body);
    return doc;
}

static json_t *verify(const vtpmcad_proc *d, const char *fleet, const char *report,
                      const char *vcek, int policy_version)
{
    json_t *req = json_pack("{s:s, s:s}", "fleet", fleet, "report", report);
    if (vcek != NULL)
        json_object_set_new(req, "vcek", json_string(vcek));
    if (policy_version > 0)
        json_object_set_new(req, "policy_version", json_integer(policy_version));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *doc = http_json(d, "POST", "/v1/snp/verify", body, 200);
    free(body);
    return doc;
}

static const char *ear_status(json_t *doc)
{
    json_t *s = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "ear"), "submods"), "SEV-SNP"),
        "ear.status");
    assert_true(json_is_string(s));
    return json_string_value(s);
}

static bool verdict_failed(json_t *doc, const char *check)
{
    json_t *failed = json_object_get(json_object_get(doc, "verdict"), "failed");
    assert_true(json_is_array(failed));
    size_t i;
    json_t *f;
    json_array_foreach(failed, i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "check")), check) == 0)
            return true;
    }
    return false;
}

/* A sample's value from /metrics (0 when the series has not appeared yet). */
static double metric(const vtpmcad_proc *d, const char *series)
{
    http_result r;
    http_call(d, "GET", "/metrics", NULL, NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *at = strstr(r.body, needle);
    double value = at != NULL ? strtod(at + strlen(needle), NULL) : 0;
    free(r.body);
    return value;
}

/* Request counters are updated when libmicrohttpd reports the request complete, which can be
 * just after the client has read the answer: wait (bounded) for the expected value. */
static double metric_settled(const vtpmcad_proc *d, const char *series, double expected)
{
    double value = metric(d, series);
    for (int i = 0; i < 100 && value != expected; i++) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        value = metric(d, series);
    }
    return value;
}

#define VERIFY_SERIES(code)                                                                        \
    "vtpmca_http_requests_total{route=\"/v1/snp/verify\",method=\"POST\",code=\"" code "\"}"
#define OUTCOME_SERIES(o) "vtpmca_snp_verifications_total{outcome=\"" o "\"}"

/* ---- fixtures ---- */

static char *b64(const uint8_t *data, size_t len)
{
    char *out = NULL;
    assert_int_equal(vt_b64_encode_alloc(data, len, VT_B64_STD, &out), VTPMCA_OK);
    return out;
}

static char *hex(const uint8_t *data, size_t len)
{
    char *out = malloc(2 * len + 1);
    assert_non_null(out);
    assert_int_equal(vt_hex_encode(data, len, out, 2 * len + 1), VTPMCA_OK);
    return out;
}

/* Imports a genuine VCEK for its report and returns the report's measurement in hex. */
static void import_genuine(store *st, const char *report_file, const char *vcek_file,
                           uint8_t **report_out, char measurement_hex[97])
{
    char path[512];
    uint8_t *report = NULL, *der = NULL;
    size_t report_len = 0, der_len = 0;
    snprintf(path, sizeof(path), "%s/%s", GENUINE_DIR, report_file);
    assert_int_equal(vt_file_read(path, 4096, &report, &report_len, NULL), VTPMCA_OK);
    snprintf(path, sizeof(path), "%s/%s", GENUINE_DIR, vcek_file);
    assert_int_equal(vt_file_read(path, 8192, &der, &der_len, NULL), VTPMCA_OK);
    snp_report parsed;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_report_parse(report, report_len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(store_vcek_put(st, "Milan", "vcek", parsed.chip_id, parsed.reported_tcb, der,
                                    der_len, "import", &diag),
                     VTPMCA_OK);
    assert_int_equal(vt_hex_encode(parsed.measurement, 48, measurement_hex, 97), VTPMCA_OK);
    free(der);
    *report_out = report;
}

static void put_policy(store *st, const char *fleet, const char *json)
{
    vtpmca_diag diag = {{0}};
    uint32_t version = 0;
    if (store_policy_put(st, fleet, json, "test", &version, &diag) != VTPMCA_OK)
        fail_msg("policy for %s: %s", fleet, diag.msg);
}

static void make_synthetic(void)
{
    vtpmca_diag diag = {{0}};
    snp_test_root *root = NULL;
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &root, &diag), VTPMCA_OK);
    assert_int_equal(vt_mkdir_p(fx.roots_dir, 0700, &diag), VTPMCA_OK);
    assert_int_equal(snp_test_root_save(root, fx.roots_dir, &diag), VTPMCA_OK);
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK,
                                   .tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115}};
    memset(params.chip_id, 0xc5, sizeof(params.chip_id));
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, &der_len, &diag), VTPMCA_OK);
    snp_report report;
    assert_int_equal(
        snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, params.chip_id, &params.tcb),
        VTPMCA_OK);
    memset(report.measurement, 0x5a, sizeof(report.measurement));
    uint8_t wire[SNP_REPORT_SIZE];
    assert_int_equal(snp_test_report_sign(&report, key, wire, &diag), VTPMCA_OK);
    fx.synthetic_b64 = b64(wire, sizeof(wire));
    fx.synthetic_vcek_b64 = b64(der, der_len);
    fx.synthetic_vcek = der;
    fx.synthetic_vcek_len = der_len;
    fx.synthetic_params = params;
    EVP_PKEY_free(key);
    snp_test_root_free(root);
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "daemon") != 0)
        return -1;
    snprintf(fx.state_dir, sizeof(fx.state_dir), "%s/state", fx.dir);
    snprintf(fx.db, sizeof(fx.db), "%s/vtpmca.db", fx.state_dir);
    snprintf(fx.roots_dir, sizeof(fx.roots_dir), "%s/test-roots", fx.dir);

    store *st = NULL;
    vtpmca_diag diag = {{0}};
    if (vt_mkdir_p(fx.state_dir, 0700, &diag) != VTPMCA_OK ||
        store_open(fx.db, &st, &diag) != VTPMCA_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return -1;
    }
    uint8_t *report_b = NULL, *report_debug = NULL;
    char meas_b[97], meas_debug[97];
    import_genuine(st, "milan-v2-report-b.bin", "milan-v2-vcek-b.der", &report_b, meas_b);
    import_genuine(st, "milan-v2-report.bin", "milan-v2-vcek.der", &report_debug, meas_debug);
    fx.report_b_b64 = b64(report_b, SNP_REPORT_SIZE);
    fx.report_b_hex = hex(report_b, SNP_REPORT_SIZE);
    fx.report_debug_b64 = b64(report_debug, SNP_REPORT_SIZE);
    free(report_b);
    free(report_debug);
    make_synthetic();

    char policy[512];
    /* Both genuine measurements are listed, so the DEBUG report fails on "debug" alone. */
    assert_int_equal(store_fleet_create(st, "genuine", "genuine Milan reports", &diag), VTPMCA_OK);
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\",\"%s\"]}", meas_b, meas_debug);
    put_policy(st, "genuine", policy);
    assert_int_equal(store_fleet_create(st, "versions", NULL, &diag), VTPMCA_OK);
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", meas_b);
    put_policy(st, "versions", policy);
    assert_int_equal(store_fleet_create(st, "synthetic", NULL, &diag), VTPMCA_OK);
    char meas_synthetic[97];
    memset(meas_synthetic, 0, sizeof(meas_synthetic));
    for (int i = 0; i < 48; i++)
        memcpy(meas_synthetic + 2 * i, "5a", 2);
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", meas_synthetic);
    put_policy(st, "synthetic", policy);
    assert_int_equal(store_fleet_create(st, "empty", "no policy yet", &diag), VTPMCA_OK);
    store_close(st);

    const char *trust[] = {"--extra-roots-dir", fx.roots_dir, NULL};
    start_daemon(&fx.trusting, "trusting", fx.state_dir, trust);
    start_daemon(&fx.plain, "plain", fx.state_dir, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (fx.trusting.pid > 0)
        vtpmcad_stop(&fx.trusting);
    if (fx.plain.pid > 0)
        vtpmcad_stop(&fx.plain);
    free(fx.report_b_b64);
    free(fx.report_b_hex);
    free(fx.report_debug_b64);
    free(fx.synthetic_b64);
    free(fx.synthetic_vcek_b64);
    free(fx.synthetic_vcek);
    curl_global_cleanup();
    return ca_fixture_rmtree(fx.dir);
}

/* ---- tests ---- */

static void test_healthz(void **state)
{
    (void)state;
    json_t *doc = http_json(&fx.trusting, "GET", "/healthz", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    assert_true(json_integer_value(json_object_get(doc, "schema_version")) >= 1);
    assert_true(json_is_integer(json_object_get(doc, "uptime_s")));
    assert_true(json_integer_value(json_object_get(doc, "uptime_s")) >= 0);
    json_decref(doc);
}

static void test_metrics_endpoint(void **state)
{
    (void)state;
    http_result r;
    http_call(&fx.trusting, "GET", "/metrics", NULL, NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "# TYPE vtpmca_http_requests_total counter\n"));
    assert_non_null(strstr(r.body, "# TYPE vtpmca_http_request_duration_seconds histogram\n"));
    char build_info[96];
    snprintf(build_info, sizeof(build_info), "vtpmca_build_info{version=\"%s\"} 1\n",
             server_version());
    assert_non_null(strstr(r.body, build_info));
    assert_non_null(strstr(r.body, "vtpmca_vcek_cache_hits_total "));
    /* KDS is disabled unless a URL is configured. */
    assert_null(strstr(r.body, "vtpmca_kds_requests_total"));
    free(r.body);
    /* The earlier /healthz call was counted (once libmicrohttpd reported it complete). */
    const char *healthz =
        "vtpmca_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"200\"}";
    double counted = metric(&fx.trusting, healthz);
    for (int i = 0; i < 100 && counted < 1; i++) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        counted = metric(&fx.trusting, healthz);
    }
    assert_true(counted >= 1);
}

static void test_genuine_report_verified(void **state)
{
    (void)state;
    double pass_before = metric(&fx.trusting, OUTCOME_SERIES("pass"));
    /* Base64 and hex encodings of the same report. */
    const char *encodings[] = {fx.report_b_b64, fx.report_b_hex};
    for (size_t i = 0; i < 2; i++) {
        json_t *doc = verify(&fx.trusting, "genuine", encodings[i], NULL, 0);
        assert_true(json_is_true(json_object_get(doc, "verified")));
        assert_string_equal(json_string_value(json_object_get(doc, "fleet")), "genuine");
        assert_int_equal(json_integer_value(json_object_get(doc, "policy_version")), 1);
        assert_true(json_is_true(json_object_get(json_object_get(doc, "verdict"), "pass")));
        assert_true(json_is_object(json_object_get(doc, "claims")));
        assert_null(json_object_get(doc, "error"));
        assert_string_equal(ear_status(doc), "affirming");
        json_decref(doc);
    }
    assert_true(metric(&fx.trusting, OUTCOME_SERIES("pass")) == pass_before + 2);
}

static void test_debug_report_rejected_by_policy(void **state)
{
    (void)state;
    double before = metric(&fx.trusting, OUTCOME_SERIES("policy_fail"));
    json_t *doc = verify(&fx.trusting, "genuine", fx.report_debug_b64, NULL, 0);
    assert_true(json_is_false(json_object_get(doc, "verified")));
    assert_true(verdict_failed(doc, "debug"));
    assert_false(verdict_failed(doc, "measurement"));
    /* Genuine evidence: the claims are reported, the policy said no. */
    assert_true(json_is_object(json_object_get(doc, "claims")));
    assert_non_null(strstr(json_string_value(json_object_get(doc, "error")), "debug"));
    assert_string_equal(ear_status(doc), "contraindicated");
    json_decref(doc);
    assert_true(metric(&fx.trusting, OUTCOME_SERIES("policy_fail")) == before + 1);
}

static void test_synthetic_with_extra_roots(void **state)
{
    (void)state;
    json_t *doc = verify(&fx.trusting, "synthetic", fx.synthetic_b64, fx.synthetic_vcek_b64, 0);
    assert_true(json_is_true(json_object_get(doc, "verified")));
    assert_string_equal(ear_status(doc), "affirming");
    json_decref(doc);
    char *log = runner_read_text(fx.trusting.log_path);
    assert_non_null(log);
    /* Trusting extra roots is announced as a warning naming the directory. */
    assert_non_null(strstr(log, "level=warn event=roots.extra_trusted"));
    assert_non_null(strstr(log, fx.roots_dir));
    free(log);
}

static void test_synthetic_without_extra_roots(void **state)
{
    (void)state;
    double before = metric(&fx.plain, OUTCOME_SERIES("evidence_fail"));
    json_t *doc = verify(&fx.plain, "synthetic", fx.synthetic_b64, fx.synthetic_vcek_b64, 0);
    /* Refused, but as an appraisal result: 200 with verified false. */
    assert_true(json_is_false(json_object_get(doc, "verified")));
    assert_true(verdict_failed(doc, "evidence"));
    assert_null(json_object_get(doc, "claims"));
    assert_non_null(strstr(json_string_value(json_object_get(doc, "error")), "crypto"));
    assert_string_equal(ear_status(doc), "contraindicated");
    json_decref(doc);
    assert_true(metric(&fx.plain, OUTCOME_SERIES("evidence_fail")) == before + 1);
    char *log = runner_read_text(fx.plain.log_path);
    assert_null(strstr(log, "roots.extra_trusted"));
    free(log);

    /* Without a supplied VCEK nothing in the store matches: also an evidence failure. */
    doc = verify(&fx.plain, "synthetic", fx.synthetic_b64, NULL, 0);
    assert_true(json_is_false(json_object_get(doc, "verified")));
    assert_non_null(strstr(json_string_value(json_object_get(doc, "error")), "not_found"));
    json_decref(doc);
}

static void test_policy_versions(void **state)
{
    (void)state;
    json_t *doc = verify(&fx.trusting, "versions", fx.report_b_b64, NULL, 0);
    assert_true(json_is_true(json_object_get(doc, "verified")));
    assert_int_equal(json_integer_value(json_object_get(doc, "policy_version")), 1);
    json_decref(doc);

    /* A second version, written while the daemon runs, becomes the latest. */
    store *st = NULL;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    put_policy(st, "versions",
               "{\"measurements\":[\"" /* 96 zeros */
               "0000000000000000000000000000000000000000000000000000000000000000"
               "00000000000000000000000000000000\"]}");
    store_close(st);
    doc = verify(&fx.trusting, "versions", fx.report_b_b64, NULL, 0);
    assert_true(json_is_false(json_object_get(doc, "verified")));
    assert_int_equal(json_integer_value(json_object_get(doc, "policy_version")), 2);
    assert_true(verdict_failed(doc, "measurement"));
    json_decref(doc);
    /* The older version can still be asked for. */
    doc = verify(&fx.trusting, "versions", fx.report_b_b64, NULL, 1);
    assert_true(json_is_true(json_object_get(doc, "verified")));
    assert_int_equal(json_integer_value(json_object_get(doc, "policy_version")), 1);
    json_decref(doc);
}

/* One row of the bad-input matrix. */
typedef struct {
    const char *name;
    const char *method, *path, *content_type;
    const char *body; /* NULL: none; "@big": oversized */
    bool chunked;
    long status;
    const char *error;
} bad_case;

static void test_bad_input_matrix(void **state)
{
    (void)state;
    char *report_1183 = NULL;
    {
        uint8_t *raw = NULL;
        size_t len = 0;
        assert_int_equal(
            vt_b64_decode_alloc(fx.report_b_b64, strlen(fx.report_b_b64), VT_B64_STD, &raw, &len),
            VTPMCA_OK);
        report_1183 = b64(raw, SNP_REPORT_SIZE - 1);
        free(raw);
    }
    char short_report[2048], short_hex[64];
    snprintf(short_report, sizeof(short_report), "{\"fleet\":\"genuine\",\"report\":\"%s\"}",
             report_1183);
    snprintf(short_hex, sizeof(short_hex), "{\"fleet\":\"genuine\",\"report\":\"00ff\"}");
    char unknown_fleet[2200], bad_vcek[2200], no_policy[2200], bad_version[2200];
    snprintf(unknown_fleet, sizeof(unknown_fleet), "{\"fleet\":\"nope\",\"report\":\"%s\"}",
             fx.report_b_b64);
    snprintf(no_policy, sizeof(no_policy), "{\"fleet\":\"empty\",\"report\":\"%s\"}",
             fx.report_b_b64);
    snprintf(bad_version, sizeof(bad_version),
             "{\"fleet\":\"genuine\",\"report\":\"%s\",\"policy_version\":99}", fx.report_b_b64);
    snprintf(bad_vcek, sizeof(bad_vcek),
             "{\"fleet\":\"genuine\",\"report\":\"%s\",\"vcek\":\"MIIBAAAA\"}", fx.report_b_b64);
    char bad_fleet_name[2200];
    snprintf(bad_fleet_name, sizeof(bad_fleet_name), "{\"fleet\":\"../x\",\"report\":\"%s\"}",
             fx.report_b_b64);
    const char *json = "application/json";
    const bad_case cases[] = {
        {"invalid JSON", "POST", "/v1/snp/verify", json, "{\"fleet\":", false, 400, "invalid_json"},
        {"not an object", "POST", "/v1/snp/verify", json, "[1,2]", false, 400, "invalid_request"},
        {"empty body", "POST", "/v1/snp/verify", json, "", false, 400, "invalid_json"},
        {"fleet not a string", "POST", "/v1/snp/verify", json, "{\"fleet\":5,\"report\":\"00\"}",
         false, 400, "invalid_request"},
        {"report not a string", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":12}", false, 400, "invalid_request"},
        {"vcek not a string", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":\"00\",\"vcek\":7}", false, 400, "invalid_request"},
        {"policy_version a string", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":\"00\",\"policy_version\":\"1\"}", false, 400,
         "invalid_request"},
        {"policy_version zero", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":\"00\",\"policy_version\":0}", false, 400,
         "invalid_request"},
        {"missing report", "POST", "/v1/snp/verify", json, "{\"fleet\":\"genuine\"}", false, 400,
         "invalid_request"},
        {"unknown field", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":\"00\",\"extra\":1}", false, 400, "invalid_request"},
        {"duplicate key", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"fleet\":\"x\",\"report\":\"00\"}", false, 400, "invalid_json"},
        {"bad base64", "POST", "/v1/snp/verify", json,
         "{\"fleet\":\"genuine\",\"report\":\"!!not base64!!\"}", false, 400, "bad_encoding"},
        {"1183-byte report", "POST", "/v1/snp/verify", json, short_report, false, 400,
         "bad_report"},
        {"2-byte hex report", "POST", "/v1/snp/verify", json, short_hex, false, 400, "bad_report"},
        {"bad vcek", "POST", "/v1/snp/verify", json, bad_vcek, false, 400, "bad_vcek"},
        {"invalid fleet name", "POST", "/v1/snp/verify", json, bad_fleet_name, false, 400,
         "invalid_request"},
        {"unknown fleet", "POST", "/v1/snp/verify", json, unknown_fleet, false, 404,
         "unknown_fleet"},
        {"fleet without policy", "POST", "/v1/snp/verify", json, no_policy, false, 404,
         "no_policy"},
        {"unknown policy version", "POST", "/v1/snp/verify", json, bad_version, false, 404,
         "unknown_policy_version"},
        {"oversized body", "POST", "/v1/snp/verify", json, "@big", false, 413, "payload_too_large"},
        {"oversized chunked body", "POST", "/v1/snp/verify", json, "@big", true, 413,
         "payload_too_large"},
        {"wrong method", "GET", "/v1/snp/verify", NULL, NULL, false, 405, "method_not_allowed"},
        {"wrong method with body", "PUT", "/v1/snp/verify", json, "{}", false, 405,
         "method_not_allowed"},
        {"unknown route", "GET", "/v1/nothing", NULL, NULL, false, 404, "not_found"},
        {"unknown route with body", "POST", "/nope", json, "{}", false, 404, "not_found"},
        {"wrong content type", "POST", "/v1/snp/verify", "text/plain", "{}", false, 415,
         "unsupported_media_type"},
        {"missing content type", "POST", "/v1/snp/verify", NULL, "{}", false, 415,
         "unsupported_media_type"},
    };
    const size_t n_cases = sizeof(cases) / sizeof(cases[0]);

    /* What must not change: the store's fleets, policy versions and certificates. */
    store *st = NULL;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    store_fleet *fleets_before = NULL;
    size_t n_fleets_before = 0;
    uint64_t vceks_before = 0;
    assert_int_equal(store_fleet_list(st, &fleets_before, &n_fleets_before, NULL), VTPMCA_OK);
    assert_int_equal(store_vcek_count(st, &vceks_before, NULL), VTPMCA_OK);

    const char *codes[] = {"400", "404", "405", "413", "415"};
    double by_code_before[5], unmatched_before, bad_before;
    for (size_t c = 0; c < 5; c++) {
        char series[160];
        snprintf(series, sizeof(series), VERIFY_SERIES("%s"), codes[c]);
        by_code_before[c] = metric(&fx.plain, series);
    }
    unmatched_before = metric(
        &fx.plain, "vtpmca_http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"}");
    bad_before = metric(&fx.plain, OUTCOME_SERIES("bad_request"));

    char *big = malloc(MAX_BODY + 5000);
    assert_non_null(big);
    memset(big, ' ', MAX_BODY + 5000);
    big[0] = '{';
    big[MAX_BODY + 4999] = '}';
    double expect_by_code[5] = {0};
    double expect_bad_outcome = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const bad_case *c = &cases[i];
        bool is_big = c->body != NULL && strcmp(c->body, "@big") == 0;
        const char *body = is_big ? big : c->body;
        size_t len = is_big ? MAX_BODY + 5000 : (body ? strlen(body) : 0);
        http_result r;
        http_call(&fx.plain, c->method, c->path, c->content_type, body, len, c->chunked, &r);
        if (r.status != c->status)
            fail_msg("%s: status %ld, expected %ld (%s)", c->name, r.status, c->status,
                     r.body ? r.body : "");
        assert_string_equal(r.content_type, "application/json");
        json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        if (doc == NULL || !json_is_string(json_object_get(doc, "error")) ||
            !json_is_string(json_object_get(doc, "message")))
            fail_msg("%s: error body is not {error, message}: %s", c->name, r.body);
        if (strcmp(json_string_value(json_object_get(doc, "error")), c->error) != 0)
            fail_msg("%s: error %s, expected %s", c->name,
                     json_string_value(json_object_get(doc, "error")), c->error);
        assert_true(strlen(json_string_value(json_object_get(doc, "message"))) > 0);
        if (c->status == 405)
            assert_string_equal(r.allow, "POST");
        json_decref(doc);
        free(r.body);
        if (strcmp(c->path, "/v1/snp/verify") == 0 && strcmp(c->method, "POST") == 0) {
            for (size_t k = 0; k < 5; k++)
                if (c->status == strtol(codes[k], NULL, 10))
                    expect_by_code[k]++;
            if (c->status == 400 || c->status == 404)
                expect_bad_outcome++; /* the handler saw them */
        }
    }
    free(big);

    /* Metrics counted every request by route, method and code. */
    for (size_t c = 0; c < 5; c++) {
        char series[160];
        snprintf(series, sizeof(series), VERIFY_SERIES("%s"), codes[c]);
        double now = metric_settled(&fx.plain, series, by_code_before[c] + expect_by_code[c]);
        if (now != by_code_before[c] + expect_by_code[c])
            fail_msg("%s: %g, expected %g", series, now, by_code_before[c] + expect_by_code[c]);
    }
    assert_true(metric(&fx.plain, "vtpmca_http_requests_total{route=\"/v1/snp/verify\",method="
                                  "\"GET\",code=\"405\"}") >= 1);
    assert_true(metric_settled(&fx.plain,
                               "vtpmca_http_requests_total{route=\"unmatched\",method="
                               "\"GET\",code=\"404\"}",
                               unmatched_before + 1) == unmatched_before + 1);
    assert_true(metric(&fx.plain, OUTCOME_SERIES("bad_request")) ==
                bad_before + expect_bad_outcome);

    /* Nothing changed in the store, and the daemon is still healthy. */
    store_fleet *fleets_after = NULL;
    size_t n_fleets_after = 0;
    uint64_t vceks_after = 0;
    assert_int_equal(store_fleet_list(st, &fleets_after, &n_fleets_after, NULL), VTPMCA_OK);
    assert_int_equal(store_vcek_count(st, &vceks_after, NULL), VTPMCA_OK);
    assert_int_equal(n_fleets_after, n_fleets_before);
    for (size_t i = 0; i < n_fleets_after; i++) {
        assert_string_equal(fleets_after[i].name, fleets_before[i].name);
        assert_int_equal(fleets_after[i].latest_policy, fleets_before[i].latest_policy);
    }
    assert_int_equal(vceks_after, vceks_before);
    free(fleets_before);
    free(fleets_after);
    store_close(st);
    free(report_1183);
    json_decref(http_json(&fx.plain, "GET", "/healthz", NULL, 200));
}

static void test_request_log(void **state)
{
    (void)state;
    char *log = runner_read_text(fx.plain.log_path);
    assert_non_null(log);
    /* One line per request with method, route, status and duration. */
    assert_non_null(strstr(log, "event=http.request method=POST route=/v1/snp/verify "
                                "status=413 duration_ms="));
    assert_non_null(strstr(log, "event=http.request method=GET route=unmatched status=404"));
    assert_non_null(strstr(log, "event=start "));
    /* Request bodies are never logged: no piece of any submitted report appears. */
    char piece[41];
    snprintf(piece, sizeof(piece), "%.40s", fx.report_b_b64 + 600);
    assert_null(strstr(log, piece));
    snprintf(piece, sizeof(piece), "%.40s", fx.synthetic_vcek_b64 + 200);
    assert_null(strstr(log, piece));
    free(log);
}

static void test_startup_failures(void **state)
{
    (void)state;
    char port[16], state_dir[160];
    snprintf(port, sizeof(port), "%u", fx.plain.port);
    snprintf(state_dir, sizeof(state_dir), "%s/other-state", fx.dir);
    const struct {
        const char *args[8];
        const char *message;
    } cases[] = {
        /* The port is taken by the running daemon. */
        {{"--state-dir", state_dir, "--port", port, NULL}, "cannot listen"},
        {{"--state-dir", state_dir, "--listen", "0.0.0.0", NULL}, "allow_remote_plain_http"},
        {{"--state-dir", state_dir, "--bogus-flag", NULL}, "--bogus-flag"},
        {{"--state-dir", state_dir, "--port", "70000", NULL}, "port"},
        {{"--state-dir", state_dir, "--db", "/proc/vtpmca/none.db", "--port", "0", NULL},
         "startup failed"},
        {{"--state-dir", state_dir, "--extra-roots-dir", "/nonexistent-roots", "--port", "0", NULL},
         "startup failed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *log = NULL;
        int code = run_program("vtpmcad", cases[i].args, 10.0, NULL, &log);
        if (code != 2)
            fail_msg("case %zu: exit %d, expected 2: %s", i, code, log ? log : "");
        if (log == NULL || strstr(log, cases[i].message) == NULL)
            fail_msg("case %zu: output lacks '%s': %s", i, cases[i].message, log ? log : "");
        /* One clear line says why. */
        size_t lines = 0;
        for (const char *p = log; (p = strstr(p, "vtpmcad: ")) != NULL; p++)
            lines++;
        if (lines != 1)
            fail_msg("case %zu: expected one error line: %s", i, log);
        free(log);
    }
    /* The state directory is created private. */
    struct stat sb;
    assert_int_equal(stat(state_dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* The daemon whose port was contested still works. */
    json_decref(http_json(&fx.plain, "GET", "/healthz", NULL, 200));
}

/* /healthz reports a store that stopped working (here: its schema table was dropped behind
 * the daemon's back) as 503 with a JSON body, while metrics keep working. */
static void test_healthz_store_unusable(void **state)
{
    (void)state;
    char state_dir[160], db[192];
    snprintf(state_dir, sizeof(state_dir), "%s/broken-state", fx.dir);
    snprintf(db, sizeof(db), "%s/vtpmca.db", state_dir);
    vtpmcad_proc d = {0};
    start_daemon(&d, "broken", state_dir, NULL);
    json_decref(http_json(&d, "GET", "/healthz", NULL, 200));

    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "DROP TABLE schema_migrations", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    json_t *doc = http_json(&d, "GET", "/healthz", NULL, 503);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "unavailable");
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "store_unavailable");
    json_decref(doc);
    /* Metrics do not depend on the store. */
    assert_true(metric_settled(&d,
                               "vtpmca_http_requests_total{route=\"/healthz\",method=\"GET\","
                               "code=\"503\"}",
                               1) == 1);
    assert_int_equal(vtpmcad_stop(&d), 0);
}

/* A verification that runs in a worker thread while the daemon is told to stop. Only plain
 * libcurl here: cmocka assertions belong on the main thread. */
typedef struct {
    unsigned port;
    const char *body;
    long status;
    char *response;
    size_t len;
} inflight_call;

static size_t collect(char *data, size_t size, size_t n, void *user)
{
    inflight_call *c = user;
    return http_capture_append(&c->response, &c->len, data, size * n);
}

static void *run_inflight(void *arg)
{
    inflight_call *c = arg;
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return NULL;
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/snp/verify", c->port);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &c->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return NULL;
}

/* SIGTERM while a request waits on a slow KDS: the request still completes, then the
 * daemon exits 0. Also covers VCEK download through --kds-url and the KDS metrics. */
static void test_graceful_shutdown_with_request_in_flight(void **state)
{
    (void)state;
    kds_standin *kds = NULL;
    assert_int_equal(kds_standin_start(&kds), VTPMCA_OK);
    assert_int_equal(kds_standin_put_vcek(kds, SNP_PRODUCT_MILAN, fx.synthetic_params.chip_id,
                                          &fx.synthetic_params.tcb, fx.synthetic_vcek,
                                          fx.synthetic_vcek_len),
                     VTPMCA_OK);
    kds_standin_set_delay_ms(kds, 1000);

    /* A fresh store that has the policy but not the VCEK. */
    char state_dir[160], db[192];
    snprintf(state_dir, sizeof(state_dir), "%s/kds-state", fx.dir);
    snprintf(db, sizeof(db), "%s/vtpmca.db", state_dir);
    assert_int_equal(vt_mkdir_p(state_dir, 0700, NULL), VTPMCA_OK);
    store *st = NULL;
    assert_int_equal(store_open(db, &st, NULL), VTPMCA_OK);
    assert_int_equal(store_fleet_create(st, "synthetic", NULL, NULL), VTPMCA_OK);
    char policy[160] = "{\"measurements\":[\"";
    for (int i = 0; i < 48; i++)
        strcat(policy, "5a");
    strcat(policy, "\"]}");
    put_policy(st, "synthetic", policy);
    store_close(st);

    vtpmcad_proc d = {0};
    const char *extra[] = {
        "--extra-roots-dir", fx.roots_dir, "--kds-url", kds_standin_base_url(kds),
        "--kds-timeout-ms",  "5000",       NULL};
    start_daemon(&d, "kds", state_dir, extra);

    char body[2200];
    snprintf(body, sizeof(body), "{\"fleet\":\"synthetic\",\"report\":\"%s\"}", fx.synthetic_b64);
    inflight_call call = {.port = d.port, .body = body};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, run_inflight, &call), 0);
    /* Wait until the daemon is inside the request (it has asked the KDS). */
    double deadline = runner_now_s() + 5;
    while (kds_standin_request_count(kds) == 0 && runner_now_s() < deadline)
        runner_sleep_ms(10);
    assert_int_equal(kds_standin_request_count(kds), 1);
    double signalled = runner_now_s();
    int code = vtpmcad_stop(&d);
    pthread_join(thread, NULL);
    assert_int_equal(code, 0);
    assert_true(runner_now_s() - signalled < 5.0);

    /* The in-flight request was answered in full. */
    if (call.status != 200)
        fail_msg("in-flight request: status %ld: %s", call.status,
                 call.response ? call.response : "(none)");
    json_t *doc = json_loadb(call.response, call.len, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(doc, "verified")));
    json_decref(doc);
    free(call.response);
    char *log = runner_read_text(d.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "event=kds.enabled"));
    assert_non_null(strstr(log, "event=shutdown"));
    /* The request finished before the server stopped. */
    const char *request_line = strstr(log, "route=/v1/snp/verify status=200");
    assert_non_null(request_line);
    assert_true(request_line < strstr(log, "event=http.stopped"));
    free(log);

    /* The VCEK the KDS delivered was saved in the store. */
    uint64_t vceks = 0;
    assert_int_equal(store_open(db, &st, NULL), VTPMCA_OK);
    assert_int_equal(store_vcek_count(st, &vceks, NULL), VTPMCA_OK);
    assert_int_equal(vceks, 1);
    store_close(st);
    kds_standin_stop(kds);
}

static void test_sigterm_shutdown(void **state)
{
    (void)state;
    double started = runner_now_s();
    int code = vtpmcad_stop(&fx.trusting);
    double elapsed = runner_now_s() - started;
    assert_int_equal(code, 0);
    assert_true(elapsed < 5.0);
    char *log = runner_read_text(fx.trusting.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "event=shutdown signal=SIGTERM"));
    free(log);
    /* The port file is removed, and the port is free again. */
    assert_int_equal(access(fx.trusting.port_file, F_OK), -1);
    http_result r;
    CURL *curl = curl_easy_init();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz", fx.trusting.port);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
    memset(&r, 0, sizeof(r));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    assert_int_equal(curl_easy_perform(curl), CURLE_COULDNT_CONNECT);
    curl_easy_cleanup(curl);
    free(r.body);

    /* The daemon that answered every bad request also stops cleanly (under ASan this
     * includes the leak check of all those error paths). */
    assert_int_equal(vtpmcad_stop(&fx.plain), 0);
    log = runner_read_text(fx.plain.log_path);
    assert_non_null(strstr(log, "event=shutdown signal=SIGTERM"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_genuine_report_verified),
        cmocka_unit_test(test_debug_report_rejected_by_policy),
        cmocka_unit_test(test_synthetic_with_extra_roots),
        cmocka_unit_test(test_synthetic_without_extra_roots),
        cmocka_unit_test(test_policy_versions),
        cmocka_unit_test(test_bad_input_matrix),
        cmocka_unit_test(test_request_log),
        cmocka_unit_test(test_startup_failures),
        cmocka_unit_test(test_healthz_store_unusable),
        cmocka_unit_test(test_graceful_shutdown_with_request_in_flight),
        cmocka_unit_test(test_sigterm_shutdown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
