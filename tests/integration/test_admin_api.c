/* End-to-end tests of the admin API: the real vtpmcad on 127.0.0.1 with an admin keys
 * directory holding an admin (alice, Ed25519) and an auditor (audrey, P-256), spoken to with
 * libcurl and with tokens signed here, and the real vtpmca CLI in remote mode (a subprocess)
 * compared with offline mode on a database file. Then the same over HTTPS with a test CA and
 * server certificate made with the openssl command line. */
#define _XOPEN_SOURCE 700 /* POSIX (mkdtemp, strdup, ...) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "../support/http_capture.h"
#include "../support/vtpmcad_runner.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/store.h"

#define GENUINE_DIR VTPMCA_SHARED_DIR "/testdata/snp"
#define MEASUREMENT_A                                                                              \
    "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e487" \
    "2b01"

static struct {
    char dir[64];
    char keys_dir[128];
    char state[128], tls_state[128];
    char offline_db[160];
    char alice_key[160], audrey_key[160], eve_key[160];
    char v1[160], v2[160], bad_policy[160];
    char cacert[160], tls_cert[160], tls_key[160];
    EVP_PKEY *alice, *audrey, *eve;
    vtpmcad_proc daemon, tls;
    vtpmcad_proc cli_daemon; /* fresh state for comparing the CLI's two modes */
    bool tls_available;
    char tls_url[64];
    char *vcek_b_b64, *report_b_b64, *report_b64;
    char **sent_tokens; /* every token sent, to check none reaches the log */
    size_t n_sent;
} fx;

/* ---- helpers ---- */

static void write_text(const char *path, const char *text, mode_t mode)
{
    assert_int_equal(vt_file_write_atomic(path, text, strlen(text), mode, NULL), VTPMCA_OK);
    assert_int_equal(chmod(path, mode), 0);
}

static char *file_b64(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char *out = NULL;
    if (vt_file_read(path, 1 << 20, &data, &len, NULL) != VTPMCA_OK ||
        vt_b64_encode_alloc(data, len, VT_B64_STD, &out) != VTPMCA_OK)
        out = NULL;
    free(data);
    return out;
}

/* Writes NAME.pem (0600) into the work dir and NAME.pub.pem into `pub_dir` (NULL: none). */
static EVP_PKEY *make_admin_key(admin_key_type type, const char *name, const char *pub_dir,
                                char *key_path, size_t key_path_size)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    size_t len = 0;
    if (admin_key_generate(type, &key, NULL) != VTPMCA_OK)
        return NULL;
    snprintf(key_path, key_path_size, "%s/%s.pem", fx.dir, name);
    if (admin_key_to_pem(key, true, &pem, &len, NULL) != VTPMCA_OK ||
        vt_file_write_atomic(key_path, pem, len, 0600, NULL) != VTPMCA_OK)
        return NULL;
    OPENSSL_clear_free(pem, len);
    if (pub_dir != NULL) {
        char pub_path[256];
        snprintf(pub_path, sizeof(pub_path), "%s/%s.pub.pem", pub_dir, name);
        if (admin_key_to_pem(key, false, &pem, &len, NULL) != VTPMCA_OK ||
            vt_file_write_atomic(pub_path, pem, len, 0644, NULL) != VTPMCA_OK)
            return NULL;
        OPENSSL_free(pem);
    }
    return key;
}

static int shell(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* A test CA and a server certificate for 127.0.0.1 signed by it (openssl CLI). */
static int make_tls_material(void)
{
    char cmd[2048], ext[192];
    snprintf(fx.cacert, sizeof(fx.cacert), "%s/ca.pem", fx.dir);
    snprintf(fx.tls_cert, sizeof(fx.tls_cert), "%s/tls.crt", fx.dir);
    snprintf(fx.tls_key, sizeof(fx.tls_key), "%s/tls.key", fx.dir);
    snprintf(ext, sizeof(ext), "%s/tls.ext", fx.dir);
    FILE *f = fopen(ext, "w");
    if (f == NULL)
        return -1;
    fputs("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
          "basicConstraints=critical,CA:FALSE\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -subj /CN=vtpmca-test-CA -days 2 "
             "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
             ">/dev/null 2>&1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key "
             "-out tls.csr -subj /CN=127.0.0.1 >/dev/null 2>&1 && "
             "openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile tls.ext -out tls.crt >/dev/null 2>&1 && chmod 600 tls.key",
             fx.dir);
    return shell(cmd);
}

static int group_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "admin-api") != 0)
        return -1;
    snprintf(fx.keys_dir, sizeof(fx.keys_dir), "%s/admins", fx.dir);
    char auditors[160];
    snprintf(auditors, sizeof(auditors), "%s/auditors", fx.keys_dir);
    if (mkdir(fx.keys_dir, 0700) != 0 || mkdir(auditors, 0700) != 0)
        return -1;
    fx.alice =
        make_admin_key(ADMIN_KEY_ED25519, "alice", fx.keys_dir, fx.alice_key, sizeof(fx.alice_key));
    fx.audrey =
        make_admin_key(ADMIN_KEY_P256, "audrey", auditors, fx.audrey_key, sizeof(fx.audrey_key));
    fx.eve = make_admin_key(ADMIN_KEY_ED25519, "eve", NULL, fx.eve_key, sizeof(fx.eve_key));
    if (fx.alice == NULL || fx.audrey == NULL || fx.eve == NULL)
        return -1;

    snprintf(fx.state, sizeof(fx.state), "%s/state", fx.dir);
    snprintf(fx.tls_state, sizeof(fx.tls_state), "%s/tls-state", fx.dir);
    snprintf(fx.offline_db, sizeof(fx.offline_db), "%s/offline.db", fx.dir);
    snprintf(fx.v1, sizeof(fx.v1), "%s/v1.json", fx.dir);
    snprintf(fx.v2, sizeof(fx.v2), "%s/v2.json", fx.dir);
    snprintf(fx.bad_policy, sizeof(fx.bad_policy), "%s/bad.json", fx.dir);
    write_text(fx.v1, "{\"measurements\": [\"" MEASUREMENT_A "\"], \"allow_debug\": false}\n",
               0644);
    write_text(fx.v2, "{\"measurements\": [\"" MEASUREMENT_A "\"], \"allow_debug\": true}\n", 0644);
    write_text(fx.bad_policy, "{\"allow_debug\": false, \"frobnicate\": 1}\n", 0644);
    fx.vcek_b_b64 = file_b64(GENUINE_DIR "/milan-v2-vcek-b.der");
    fx.report_b_b64 = file_b64(GENUINE_DIR "/milan-v2-report-b.bin");
    fx.report_b64 = file_b64(GENUINE_DIR "/milan-v2-report.bin");
    if (fx.vcek_b_b64 == NULL || fx.report_b_b64 == NULL || fx.report_b64 == NULL)
        return -1;

    vtpmca_diag diag = {{0}};
    const char *extra[] = {"--admin-keys-dir", fx.keys_dir, NULL};
    if (vtpmcad_start(&fx.daemon, fx.dir, "daemon", fx.state, extra, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    fx.tls_available = MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
    if (make_tls_material() != 0)
        return -1;
    if (fx.tls_available) {
        const char *tls_extra[] = {
            "--admin-keys-dir", fx.keys_dir, "--tls-cert-file", fx.tls_cert, "--tls-key-file",
            fx.tls_key,         NULL};
        if (vtpmcad_start(&fx.tls, fx.dir, "tls", fx.tls_state, tls_extra, &diag) != VTPMCA_OK) {
            fprintf(stderr, "%s\n", diag.msg);
            return -1;
        }
        snprintf(fx.tls_url, sizeof(fx.tls_url), "https://127.0.0.1:%u", fx.tls.port);
    }
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* Stops a daemon; a non-zero exit (e.g. a sanitizer report) prints the end of its log. */
static int stop_checked(vtpmcad_proc *d)
{
    if (d->pid <= 0)
        return 0;
    char log_path[sizeof(d->log_path)];
    snprintf(log_path, sizeof(log_path), "%s", d->log_path);
    int code = vtpmcad_stop(d);
    if (code != 0) {
        uint8_t *log = NULL;
        size_t len = 0;
        if (vt_file_read(log_path, 1 << 24, &log, &len, NULL) == VTPMCA_OK)
            print_error("vtpmcad exited %d; end of %s:\n%s\n", code, log_path,
                        (char *)log + (len > 4000 ? len - 4000 : 0));
        free(log);
    }
    return code;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (stop_checked(&fx.daemon) != 0)
        rc = -1;
    if (stop_checked(&fx.tls) != 0)
        rc = -1;
    if (stop_checked(&fx.cli_daemon) != 0)
        rc = -1;
    EVP_PKEY_free(fx.alice);
    EVP_PKEY_free(fx.audrey);
    EVP_PKEY_free(fx.eve);
    free(fx.vcek_b_b64);
    free(fx.report_b_b64);
    free(fx.report_b64);
    for (size_t i = 0; i < fx.n_sent; i++)
        free(fx.sent_tokens[i]);
    free(fx.sent_tokens);
    curl_global_cleanup();
    ca_fixture_rmtree(fx.dir);
    return rc;
}

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body;
    size_t len;
    json_t *json;
    char www_authenticate[160];
    char allow[64];
    char content_type[64];
    CURLcode curl_code;
} http_result;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    return http_capture_append(&r->body, &r->len, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    size_t len = size * n;
    http_capture_header(data, len, "WWW-Authenticate", r->www_authenticate,
                        sizeof(r->www_authenticate));
    http_capture_header(data, len, "Allow", r->allow, sizeof(r->allow));
    http_capture_header(data, len, "Content-Type", r->content_type, sizeof(r->content_type));
    return len;
}

static void remember_token(const char *token)
{
    char **bigger = realloc(fx.sent_tokens, (fx.n_sent + 1) * sizeof(*bigger));
    assert_non_null(bigger);
    fx.sent_tokens = bigger;
    fx.sent_tokens[fx.n_sent++] = strdup(token);
}

/* One request; `authorization` is the whole header value (NULL: none). Transport failures
 * are returned in r->curl_code (status 0). */
static void http_raw(const char *base, const char *method, const char *path,
                     const char *authorization, const char *body, const char *cacert,
                     http_result *r)
{
    memset(r, 0, sizeof(*r));
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    char url[512], auth[ADMIN_TOKEN_MAX_LEN + 64];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (authorization != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: %s", authorization);
        headers = curl_slist_append(headers, auth);
    }
    if (body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (cacert != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    r->curl_code = curl_easy_perform(curl);
    if (r->curl_code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (r->body != NULL)
        r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void http_free(http_result *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static char *token_with(EVP_PKEY *key, const char *name, admin_role role)
{
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    if (admin_token_sign(key, name, role, time(NULL), 60, &token, &diag) != VTPMCA_OK)
        fail_msg("token: %s", diag.msg);
    return token;
}

/* A request to `base` with a fresh token for (key, name, role); key NULL = none. */
static void call_at(const char *base, EVP_PKEY *key, const char *name, admin_role role,
                    const char *method, const char *path, const char *body, long want_status,
                    http_result *r)
{
    char *token = key != NULL ? token_with(key, name, role) : NULL;
    char auth[ADMIN_TOKEN_MAX_LEN + 16];
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        remember_token(token);
    }
    http_raw(base, method, path, token != NULL ? auth : NULL, body, NULL, r);
    free(token);
    if (r->curl_code != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(r->curl_code));
    if (r->status != want_status)
        fail_msg("%s %s: status %ld, expected %ld: %s", method, path, r->status, want_status,
                 r->body != NULL ? r->body : "");
    if (r->json == NULL)
        fail_msg("%s %s: the answer is not JSON: %s", method, path, r->body ? r->body : "");
    assert_string_equal(r->content_type, "application/json");
}

/* The same on the main daemon. */
static void call(EVP_PKEY *key, const char *name, admin_role role, const char *method,
                 const char *path, const char *body, long want_status, http_result *r)
{
    call_at(fx.daemon.url, key, name, role, method, path, body, want_status, r);
}

#define ALICE fx.alice, "alice", ADMIN_ROLE_ADMIN
#define AUDREY fx.audrey, "audrey", ADMIN_ROLE_AUDITOR

static const char *json_str(const json_t *doc, const char *key)
{
    const char *value = json_string_value(json_object_get(doc, key));
    if (value == NULL)
        fail_msg("no string '%s'", key);
    return value;
}

static void expect_error(const http_result *r, const char *code, const char *needle)
{
    assert_string_equal(json_str(r->json, "error"), code);
    if (needle != NULL && strstr(json_str(r->json, "message"), needle) == NULL)
        fail_msg("message '%s' lacks '%s'", json_str(r->json, "message"), needle);
}

/* ---- Authentication ---- */

static void test_refused_without_token(void **state)
{
    (void)state;
    http_result r;
    const char *paths[] = {"/v1/admin/fleets", "/v1/admin/whoami", "/v1/admin/no-such-route"};
    for (size_t i = 0; i < 3; i++) {
        call(NULL, NULL, ADMIN_ROLE_ADMIN, "GET", paths[i], NULL, 401, &r);
        expect_error(&r, "unauthorized", "Bearer");
        assert_string_equal(r.www_authenticate, "Bearer realm=\"vtpmca-admin\"");
        http_free(&r);
    }
    /* A POST without a token creates nothing. */
    call(NULL, NULL, ADMIN_ROLE_ADMIN, "POST", "/v1/admin/fleets", "{\"name\":\"sneaky\"}", 401,
         &r);
    http_free(&r);
    /* Other schemes are no token. */
    http_raw(fx.daemon.url, "GET", "/v1/admin/fleets", "Basic YWxpY2U6c2VjcmV0", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.www_authenticate, "Bearer realm=\"vtpmca-admin\"");
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets", NULL, 200, &r);
    size_t i;
    json_t *fleet;
    json_array_foreach(json_object_get(r.json, "fleets"), i, fleet)
    {
        assert_string_not_equal(json_str(fleet, "name"), "sneaky");
    }
    http_free(&r);
}

static void expect_invalid_token(const char *authorization, const char *needle)
{
    http_result r;
    http_raw(fx.daemon.url, "GET", "/v1/admin/fleets", authorization, NULL, NULL, &r);
    if (r.status != 401)
        fail_msg("status %ld for a bad token (%s)", r.status, needle);
    assert_non_null(r.json);
    expect_error(&r, "invalid_token", needle);
    assert_string_equal(r.www_authenticate,
                        "Bearer realm=\"vtpmca-admin\", error=\"invalid_token\"");
    http_free(&r);
}

static void test_refused_bad_tokens(void **state)
{
    (void)state;
    char auth[ADMIN_TOKEN_MAX_LEN + 16], *token = NULL;
    /* Expired. */
    time_t now = time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "sub", "alice", "role", "admin",
                               "aud", ADMIN_TOKEN_AUDIENCE, "iat", (json_int_t)now - 200, "exp",
                               (json_int_t)now - 100, "jti", "expired-1");
    assert_int_equal(admin_token_sign_claims(fx.alice, "alice", claims, &token, NULL), VTPMCA_OK);
    json_decref(claims);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    remember_token(token);
    expect_invalid_token(auth, "expired");
    free(token);
    /* Garbage, an unknown admin's key, a key that is not the subject's. */
    expect_invalid_token("Bearer not-a-jwt", "three");
    token = token_with(fx.eve, "eve", ADMIN_ROLE_ADMIN);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    expect_invalid_token(auth, "unknown admin");
    free(token);
    token = token_with(fx.eve, "alice", ADMIN_ROLE_ADMIN);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    expect_invalid_token(auth, "signature");
    free(token);
    /* Replay: the same token twice. */
    token = token_with(fx.alice, "alice", ADMIN_ROLE_ADMIN);
    remember_token(token);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    http_result r;
    http_raw(fx.daemon.url, "GET", "/v1/admin/whoami", auth, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
    expect_invalid_token(auth, "replayed");
    free(token);
}

static void test_wrong_role_forbidden(void **state)
{
    (void)state;
    http_result r;
    call(AUDREY, "GET", "/v1/admin/fleets", NULL, 200, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/whoami", NULL, 200, &r);
    assert_string_equal(json_str(r.json, "admin"), "audrey");
    assert_string_equal(json_str(r.json, "granted_role"), "auditor");
    http_free(&r);
    call(AUDREY, "POST", "/v1/admin/fleets", "{\"name\":\"by-auditor\"}", 403, &r);
    expect_error(&r, "forbidden", "read-only");
    http_free(&r);
    call(AUDREY, "POST", "/v1/admin/vceks", "{\"vcek\":\"AAAA\"}", 403, &r);
    http_free(&r);
    /* The auditor's key asking for the admin role: refused even for a read. */
    call(fx.audrey, "audrey", ADMIN_ROLE_ADMIN, "GET", "/v1/admin/fleets", NULL, 403, &r);
    expect_error(&r, "forbidden", "auditor key");
    http_free(&r);
    /* An admin acting as auditor is read-only too. */
    call(fx.alice, "alice", ADMIN_ROLE_AUDITOR, "POST", "/v1/admin/fleets",
         "{\"name\":\"by-alice-as-auditor\"}", 403, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/fleets", NULL, 200, &r);
    size_t i;
    json_t *fleet;
    json_array_foreach(json_object_get(r.json, "fleets"), i, fleet)
    {
        assert_string_not_equal(json_str(fleet, "name"), "by-auditor");
        assert_string_not_equal(json_str(fleet, "name"), "by-alice-as-auditor");
    }
    http_free(&r);
}

/* ---- Routes ---- */

static char *policy_body(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(path, 1 << 16, &data, &len, NULL), VTPMCA_OK);
    return (char *)data;
}

static json_t *verify_report_at(const char *base, const char *fleet, const char *report_b64)
{
    json_t *req = json_pack("{s:s, s:s}", "fleet", fleet, "report", report_b64);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    http_result r;
    http_raw(base, "POST", "/v1/snp/verify", NULL, body, NULL, &r);
    free(body);
    assert_int_equal(r.status, 200);
    json_t *doc = json_incref(r.json);
    http_free(&r);
    return doc;
}

static json_t *verify_report(const char *fleet, const char *report_b64)
{
    return verify_report_at(fx.daemon.url, fleet, report_b64);
}

static bool failed_check(const json_t *doc, const char *check)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(json_object_get(doc, "verdict"), "failed"), i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "check")), check) == 0)
            return true;
    }
    return false;
}

static void test_fleet_and_policy_routes(void **state)
{
    (void)state;
    http_result r;
    call(ALICE, "GET", "/v1/admin/whoami", NULL, 200, &r);
    assert_string_equal(json_str(r.json, "admin"), "alice");
    assert_string_equal(json_str(r.json, "role"), "admin");
    assert_string_equal(json_str(r.json, "granted_role"), "admin");
    http_free(&r);

    /* Fleets. */
    call(ALICE, "POST", "/v1/admin/fleets",
         "{\"name\":\"api-fleet\",\"description\":\"made over the API\"}", 201, &r);
    assert_string_equal(json_str(r.json, "name"), "api-fleet");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":\"api-fleet\"}", 409, &r);
    expect_error(&r, "conflict", NULL);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":\"bad name\"}", 400, &r);
    expect_error(&r, "invalid_request", "fleet name");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":5}", 400, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":\"x\",\"owner\":\"me\"}", 400, &r);
    expect_error(&r, "invalid_request", "owner");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":", 400, &r);
    expect_error(&r, "invalid_json", NULL);
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets", NULL, 200, &r);
    bool found = false;
    size_t i;
    json_t *fleet;
    json_array_foreach(json_object_get(r.json, "fleets"), i, fleet)
    {
        if (strcmp(json_str(fleet, "name"), "api-fleet") == 0) {
            found = true;
            assert_string_equal(json_str(fleet, "description"), "made over the API");
            assert_int_equal(json_integer_value(json_object_get(fleet, "latest_policy")), 0);
            assert_int_equal(strlen(json_str(fleet, "created_at")), 20);
        }
    }
    assert_true(found);
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet", NULL, 200, &r);
    assert_string_equal(json_str(r.json, "name"), "api-fleet");
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/nope", NULL, 404, &r);
    expect_error(&r, "unknown_fleet", "nope");
    http_free(&r);

    /* Policies. */
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy", NULL, 404, &r);
    expect_error(&r, "no_policy", NULL);
    http_free(&r);
    char *bad = policy_body(fx.bad_policy), *v1 = policy_body(fx.v1), *v2 = policy_body(fx.v2);
    call(ALICE, "POST", "/v1/admin/fleets/api-fleet/policy", bad, 400, &r);
    expect_error(&r, "invalid_policy", "frobnicate");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets/nope/policy", v1, 404, &r);
    expect_error(&r, "unknown_fleet", NULL);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets/api-fleet/policy", v1, 201, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 1);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/fleets/api-fleet/policy", v2, 201, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 2);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/fleets/api-fleet/policy", NULL, 200, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 2);
    json_t *policy = json_object_get(r.json, "policy");
    assert_true(json_is_true(json_object_get(policy, "allow_debug")));
    /* Stored canonical: defaults made explicit. */
    assert_string_equal(json_str(policy, "smt"), "any");
    assert_non_null(json_object_get(policy, "min_tcb"));
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy?version=1", NULL, 200, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 1);
    assert_true(json_is_false(json_object_get(json_object_get(r.json, "policy"), "allow_debug")));
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy?version=3", NULL, 404, &r);
    expect_error(&r, "unknown_policy_version", NULL);
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy?version=0", NULL, 400, &r);
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy?version=abc", NULL, 400, &r);
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy?verison=1", NULL, 400, &r);
    expect_error(&r, "invalid_request", "verison");
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/api-fleet/policy/history", NULL, 200, &r);
    json_t *versions = json_object_get(r.json, "versions");
    assert_int_equal(json_array_size(versions), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(versions, 1), "version")),
                     2);
    assert_string_equal(json_str(json_array_get(versions, 0), "author"), "admin:alice");
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/fleets/nope/policy/history", NULL, 404, &r);
    http_free(&r);

    /* Generic answers inside the admin API. */
    call(ALICE, "POST", "/v1/admin/fleets/api-fleet/policy/history", "{}", 405, &r);
    assert_string_equal(r.allow, "GET");
    http_free(&r);
    call(ALICE, "GET", "/v1/admin/nothing-here", NULL, 404, &r);
    expect_error(&r, "not_found", NULL);
    http_free(&r);
    free(bad);
    free(v1);
    free(v2);
}

static void test_vcek_import_route(void **state)
{
    (void)state;
    http_result r;
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":\"vcek-fleet\"}", 201, &r);
    http_free(&r);
    char *v2 = policy_body(fx.v2);
    call(ALICE, "POST", "/v1/admin/fleets/vcek-fleet/policy", v2, 201, &r);
    http_free(&r);
    free(v2);
    /* The daemon does not know chip B's VCEK yet (no KDS): the evidence cannot verify. */
    json_t *doc = verify_report("vcek-fleet", fx.report_b_b64);
    assert_true(json_is_false(json_object_get(doc, "verified")));
    assert_true(failed_check(doc, "evidence"));
    json_decref(doc);

    /* Refused imports. */
    call(ALICE, "POST", "/v1/admin/vceks", "{\"vcek\":\"!!not base64!!\"}", 400, &r);
    expect_error(&r, "bad_encoding", NULL);
    http_free(&r);
    char body[8192];
    snprintf(body, sizeof(body), "{\"vcek\":\"%s\"}", fx.report_b_b64);
    call(ALICE, "POST", "/v1/admin/vceks", body, 400, &r);
    expect_error(&r, "bad_vcek", NULL);
    http_free(&r);
    snprintf(body, sizeof(body), "{\"vcek\":\"%s\",\"product\":\"milan\"}", fx.vcek_b_b64);
    call(ALICE, "POST", "/v1/admin/vceks", body, 400, &r);
    expect_error(&r, "invalid_request", "product");
    http_free(&r);
    /* A VCEK from a test root the daemon does not trust. */
    snp_test_root *root = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &root, &diag), VTPMCA_OK);
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK};
    memset(params.chip_id, 0xc5, sizeof(params.chip_id));
    params.tcb.bootloader = 3;
    params.tcb.snp = 8;
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(snp_test_issue_cert(root, &params, &key, &der, &der_len, &diag), VTPMCA_OK);
    char *untrusted = NULL;
    assert_int_equal(vt_b64_encode_alloc(der, der_len, VT_B64_STD, &untrusted), VTPMCA_OK);
    snprintf(body, sizeof(body), "{\"vcek\":\"%s\"}", untrusted);
    call(ALICE, "POST", "/v1/admin/vceks", body, 422, &r);
    expect_error(&r, "untrusted_vcek", "refused");
    http_free(&r);
    free(untrusted);
    free(der);
    EVP_PKEY_free(key);
    snp_test_root_free(root);

    /* The genuine VCEK of chip B: stored, and then the daemon verifies chip B's report. */
    snprintf(body, sizeof(body), "{\"vcek\":\"%s\"}", fx.vcek_b_b64);
    call(ALICE, "POST", "/v1/admin/vceks", body, 201, &r);
    assert_string_equal(json_str(r.json, "product"), "Milan");
    assert_string_equal(json_str(r.json, "signer"), "vcek");
    assert_int_equal(strlen(json_str(r.json, "hwid")), 128);
    http_free(&r);
    doc = verify_report("vcek-fleet", fx.report_b_b64);
    assert_false(failed_check(doc, "evidence"));
    assert_true(json_is_object(json_object_get(doc, "claims")));
    json_decref(doc);
}

/* Every admin action is in the audit log and in the daemon's log; no token is anywhere. */
static void test_logged_and_audited(void **state)
{
    (void)state;
    http_result r;
    call(ALICE, "POST", "/v1/admin/fleets", "{\"name\":\"audited\"}", 201, &r);
    http_free(&r);
    call(AUDREY, "POST", "/v1/admin/fleets", "{\"name\":\"audited-2\"}", 403, &r);
    http_free(&r);

    char db[256];
    snprintf(db, sizeof(db), "%s/vtpmca.db", fx.state);
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_open(db, &st, &diag), VTPMCA_OK);
    store_audit_filter filter = {.action = "admin.fleet_create", .limit = 1000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(st, &filter, &events, &n, &diag), VTPMCA_OK);
    bool alice_ok = false, audrey_forbidden = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(events[i].actor, "alice") == 0 && strcmp(events[i].outcome, "ok") == 0 &&
            strstr(events[i].detail, "fleet audited") != NULL)
            alice_ok = true;
        if (strcmp(events[i].actor, "audrey") == 0 && strcmp(events[i].outcome, "forbidden") == 0)
            audrey_forbidden = true;
    }
    assert_true(alice_ok);
    assert_true(audrey_forbidden);
    free(events);
    filter.action = "admin.policy_put";
    assert_int_equal(store_audit_query(st, &filter, &events, &n, &diag), VTPMCA_OK);
    /* The refused invalid document, then versions 1 and 2 of api-fleet. */
    size_t refused = 0, stored = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(events[i].outcome, "refused") == 0 && strstr(events[i].detail, "-> 400"))
            refused++;
        if (strstr(events[i].detail, "fleet api-fleet policy version") != NULL)
            stored++;
    }
    assert_true(refused >= 1);
    assert_int_equal(stored, 2);
    free(events);
    store_close(st);

    uint8_t *log = NULL;
    size_t log_len = 0;
    assert_int_equal(vt_file_read(fx.daemon.log_path, 1 << 26, &log, &log_len, NULL), VTPMCA_OK);
    assert_non_null(strstr((char *)log, "event=admin.request admin=alice role=admin method=POST "
                                        "route=/v1/admin/fleets"));
    assert_non_null(strstr((char *)log, "event=admin.auth_refused"));
    assert_true(fx.n_sent > 5);
    for (size_t i = 0; i < fx.n_sent; i++) {
        /* Not even the signature part of a token may appear. */
        const char *sig = strrchr(fx.sent_tokens[i], '.') + 1;
        if (strstr((char *)log, sig) != NULL)
            fail_msg("the daemon log holds a token");
    }
    free(log);
}

/* ---- The CLI ---- */

typedef struct {
    int code;
    char *out, *err;
} cli_run;

static void cli(cli_run *run, const char *const *args)
{
    run->out = run->err = NULL;
    run->code = run_program("vtpmca", args, 30, &run->out, &run->err);
    if (run->out == NULL)
        run->out = strdup("");
    if (run->err == NULL)
        run->err = strdup("");
}

static void cli_free(cli_run *run)
{
    free(run->out);
    free(run->err);
}

/* Replaces every occurrence of `from` by `to` (malloc'd result; `text` is freed). */
static char *replace_all(char *text, const char *from, const char *to)
{
    size_t from_len = strlen(from), to_len = strlen(to), count = 0;
    for (const char *p = strstr(text, from); p != NULL; p = strstr(p + from_len, from))
        count++;
    char *out = malloc(strlen(text) + count * to_len + 1);
    assert_non_null(out);
    char *o = out;
    const char *p = text, *hit;
    while ((hit = strstr(p, from)) != NULL) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, to_len);
        o += to_len;
        p = hit + from_len;
    }
    strcpy(o, p);
    free(text);
    return out;
}

/* Times and authors differ between two databases by nature; everything else must not. */
static char *normalize(char *text)
{
    for (char *p = text; *p != '\0'; p++) {
        if (strlen(p) >= 20 && p[4] == '-' && p[7] == '-' && p[10] == 'T' && p[13] == ':' &&
            p[16] == ':' && p[19] == 'Z')
            memcpy(p, "YYYY-MM-DDTHH:MM:SSZ", 20);
    }
    const struct passwd *pw = getpwuid(geteuid());
    char local_author[96];
    snprintf(local_author, sizeof(local_author), "cli:%s", pw != NULL ? pw->pw_name : "?");
    text = replace_all(text, local_author, "AUTHOR");
    return replace_all(text, "admin:alice", "AUTHOR");
}

/* Runs `args` (NULL-terminated) offline with --db and remotely with --server: same exit
 * code and (normalized) stdout. Returns the exit code. */
static int both_modes(const char *const *args)
{
    const char *offline[32], *remote[32];
    size_t n = 0;
    for (; args[n] != NULL; n++)
        offline[n] = remote[n] = args[n];
    offline[n] = "--db";
    offline[n + 1] = fx.offline_db;
    offline[n + 2] = NULL;
    remote[n] = "--server";
    remote[n + 1] = fx.cli_daemon.url;
    remote[n + 2] = "--admin-key";
    remote[n + 3] = fx.alice_key;
    remote[n + 4] = NULL;
    cli_run a, b;
    cli(&a, offline);
    cli(&b, remote);
    a.out = normalize(a.out);
    b.out = normalize(b.out);
    char what[256] = "";
    for (size_t i = 0; args[i] != NULL; i++) {
        strncat(what, args[i], sizeof(what) - strlen(what) - 2);
        strncat(what, " ", sizeof(what) - strlen(what) - 1);
    }
    if (a.code != b.code)
        fail_msg("vtpmca %s: offline exit %d (%s), remote exit %d (%s)", what, a.code, a.err,
                 b.code, b.err);
    if (strcmp(a.out, b.out) != 0)
        fail_msg("vtpmca %s: offline printed\n%s\nremote printed\n%s", what, a.out, b.out);
    /* Failures explain themselves in one line on stderr in both modes. */
    if (a.code != 0 && (strchr(a.err, '\n') != strrchr(a.err, '\n') || b.err[0] == '\0'))
        fail_msg("vtpmca %s: stderr offline '%s', remote '%s'", what, a.err, b.err);
    int code = a.code;
    cli_free(&a);
    cli_free(&b);
    return code;
}

static void test_cli_remote_matches_offline(void **state)
{
    (void)state;
    char cli_state[200];
    snprintf(cli_state, sizeof(cli_state), "%s/cli-state", fx.dir);
    vtpmca_diag diag = {{0}};
    const char *extra[] = {"--admin-keys-dir", fx.keys_dir, NULL};
    if (vtpmcad_start(&fx.cli_daemon, fx.dir, "cli", cli_state, extra, &diag) != VTPMCA_OK)
        fail_msg("%s", diag.msg);
    const char *vcek = GENUINE_DIR "/milan-v2-vcek.der";
    assert_int_equal(both_modes((const char *[]){"fleet", "create", "prod", "--description",
                                                 "Production VMs", "--json", NULL}),
                     0);
    assert_int_equal(both_modes((const char *[]){"fleet", "create", "staging", NULL}), 0);
    assert_int_equal(both_modes((const char *[]){"fleet", "create", "prod", NULL}), 1);
    assert_int_equal(both_modes((const char *[]){"fleet", "create", "bad name", NULL}), 2);
    assert_int_equal(
        both_modes((const char *[]){"policy", "update", "--fleet", "prod", "--file", fx.v1, NULL}),
        1); /* no policy yet */
    assert_int_equal(both_modes((const char *[]){"policy", "create", "--fleet", "prod", "--file",
                                                 fx.v1, "--json", NULL}),
                     0);
    assert_int_equal(
        both_modes((const char *[]){"policy", "create", "--fleet", "prod", "--file", fx.v1, NULL}),
        1); /* has one */
    assert_int_equal(
        both_modes((const char *[]){"policy", "update", "--fleet", "prod", "--file", fx.v2, NULL}),
        0);
    assert_int_equal(both_modes((const char *[]){"policy", "update", "--fleet", "prod", "--file",
                                                 fx.bad_policy, NULL}),
                     2);
    assert_int_equal(
        both_modes((const char *[]){"policy", "create", "--fleet", "nope", "--file", fx.v1, NULL}),
        1);
    assert_int_equal(both_modes((const char *[]){"policy", "show", "--fleet", "prod", NULL}), 0);
    assert_int_equal(
        both_modes((const char *[]){"policy", "show", "--fleet", "prod", "--json", NULL}), 0);
    assert_int_equal(both_modes((const char *[]){"policy", "show", "--fleet", "prod", "--version",
                                                 "1", "--json", NULL}),
                     0);
    assert_int_equal(
        both_modes((const char *[]){"policy", "show", "--fleet", "prod", "--version", "7", NULL}),
        1);
    assert_int_equal(both_modes((const char *[]){"policy", "show", "--fleet", "nope", NULL}), 1);
    assert_int_equal(both_modes((const char *[]){"policy", "show", "--fleet", "a/b", NULL}), 2);
    assert_int_equal(both_modes((const char *[]){"policy", "list", "--fleet", "prod", NULL}), 0);
    assert_int_equal(
        both_modes((const char *[]){"policy", "list", "--fleet", "prod", "--json", NULL}), 0);
    assert_int_equal(
        both_modes((const char *[]){"snp", "import-vcek", "--vcek", vcek, "--json", NULL}), 0);
    assert_int_equal(both_modes((const char *[]){"snp", "import-vcek", "--vcek",
                                                 GENUINE_DIR "/milan-v2-report.bin", NULL}),
                     2);
    assert_int_equal(both_modes((const char *[]){"fleet", "list", NULL}), 0);
    assert_int_equal(both_modes((const char *[]){"fleet", "list", "--json", NULL}), 0);

    /* The daemon's view of what the CLI did: alice is the author, and the imported VCEK
     * verifies chip A's report (policy v2 allows its DEBUG bit). */
    http_result r;
    call_at(fx.cli_daemon.url, ALICE, "GET", "/v1/admin/fleets/prod/policy/history", NULL, 200, &r);
    assert_string_equal(json_str(json_array_get(json_object_get(r.json, "versions"), 0), "author"),
                        "admin:alice");
    http_free(&r);
    json_t *doc = verify_report_at(fx.cli_daemon.url, "prod", fx.report_b64);
    assert_true(json_is_true(json_object_get(doc, "verified")));
    json_decref(doc);
    assert_int_equal(stop_checked(&fx.cli_daemon), 0);
}

static void test_cli_remote_settings(void **state)
{
    (void)state;
    cli_run run;
    /* From the environment. */
    setenv("VTPMCA_SERVER", fx.daemon.url, 1);
    setenv("VTPMCA_ADMIN_KEY", fx.audrey_key, 1);
    cli(&run, (const char *[]){"fleet", "list", "--json", NULL});
    assert_int_equal(run.code, 0);
    json_t *list = json_loads(run.out, 0, NULL);
    assert_true(json_is_array(list));
    json_decref(list);
    cli_free(&run);
    cli(&run, (const char *[]){"admin", "whoami", NULL});
    assert_int_equal(run.code, 0);
    assert_non_null(strstr(run.out, "admin audrey, granted role auditor"));
    cli_free(&run);
    /* The auditor cannot write: exit 1, nothing created. */
    cli(&run, (const char *[]){"fleet", "create", "by-cli-auditor", NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "forbidden"));
    cli_free(&run);
    /* An explicit --db is offline whatever the environment says. */
    char env_db[200];
    snprintf(env_db, sizeof(env_db), "%s/env.db", fx.dir);
    cli(&run, (const char *[]){"fleet", "create", "only-offline", "--db", env_db, NULL});
    assert_int_equal(run.code, 0);
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--db", env_db, NULL});
    assert_int_equal(run.code, 0);
    assert_non_null(strstr(run.out, "only-offline"));
    cli_free(&run);
    setenv("VTPMCA_ADMIN_NAME", "alice", 1); /* audrey's key under alice's name */
    cli(&run, (const char *[]){"fleet", "list", NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "refused the credentials"));
    cli_free(&run);
    unsetenv("VTPMCA_ADMIN_NAME");
    unsetenv("VTPMCA_ADMIN_KEY");
    unsetenv("VTPMCA_SERVER");

    const char *url = fx.daemon.url;
    /* A key the daemon does not know. */
    cli(&run, (const char *[]){"fleet", "list", "--server", url, "--admin-key", fx.eve_key, NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "unknown admin 'eve'"));
    cli_free(&run);
    /* A private key readable by others is not used. */
    char loose[256];
    snprintf(loose, sizeof(loose), "%s/loose/alice.pem", fx.dir);
    char loose_dir[200];
    snprintf(loose_dir, sizeof(loose_dir), "%s/loose", fx.dir);
    assert_int_equal(mkdir(loose_dir, 0700), 0);
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(vt_file_read(fx.alice_key, 1 << 16, &pem, &pem_len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(loose, pem, pem_len, 0644, NULL), VTPMCA_OK);
    free(pem);
    cli(&run, (const char *[]){"fleet", "list", "--server", url, "--admin-key", loose, NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "chmod 600"));
    cli_free(&run);
    /* Usage errors: exit 2. */
    cli(&run, (const char *[]){"fleet", "list", "--server", url, "--db", fx.offline_db, NULL});
    assert_int_equal(run.code, 2);
    assert_non_null(strstr(run.err, "exclude"));
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--server", url, NULL});
    assert_int_equal(run.code, 2);
    assert_non_null(strstr(run.err, "--admin-key"));
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", NULL});
    assert_int_equal(run.code, 2);
    assert_non_null(strstr(run.err, "--server"));
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--db", fx.offline_db, "--admin-key", fx.alice_key,
                               NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--server", "http://192.0.2.1:8377", "--admin-key",
                               fx.alice_key, NULL});
    assert_int_equal(run.code, 2);
    assert_non_null(strstr(run.err, "https"));
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--server", "ftp://127.0.0.1", "--admin-key",
                               fx.alice_key, NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--server", url, "--admin-key", fx.alice_key,
                               "--admin-name", "not valid!", NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
    /* Nobody listening: a failed operation, exit 1. */
    cli(&run, (const char *[]){"fleet", "list", "--server", "http://127.0.0.1:1", "--admin-key",
                               fx.alice_key, NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "cannot talk to"));
    cli_free(&run);
    cli(&run, (const char *[]){"admin", "whoami", "--db", fx.offline_db, NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
}

static void test_cli_admin_keygen(void **state)
{
    (void)state;
    char out[256], pub[256];
    snprintf(out, sizeof(out), "%s/carol.pem", fx.dir);
    snprintf(pub, sizeof(pub), "%s/carol.pub.pem", fx.dir);
    cli_run run;
    cli(&run,
        (const char *[]){"admin", "keygen", "--out", out, "--key-type", "p256", "--json", NULL});
    assert_int_equal(run.code, 0);
    json_t *doc = json_loads(run.out, 0, NULL);
    assert_string_equal(json_str(doc, "alg"), "ES256");
    assert_string_equal(json_str(doc, "admin_name"), "carol");
    json_decref(doc);
    cli_free(&run);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(pub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    /* The pair works: a token signed with the private key verifies with the public file. */
    EVP_PKEY *key = NULL;
    assert_int_equal(admin_key_load_private(out, &key, NULL), VTPMCA_OK);
    admin_auth *auth = NULL;
    assert_int_equal(admin_auth_new(&auth), VTPMCA_OK);
    assert_int_equal(admin_auth_add_key_file(auth, pub, ADMIN_ROLE_ADMIN, NULL), VTPMCA_OK);
    char *token = token_with(key, "carol", ADMIN_ROLE_ADMIN);
    admin_identity who;
    assert_int_equal(admin_auth_verify(auth, token, time(NULL), &who, NULL), VTPMCA_OK);
    free(token);
    admin_auth_free(auth);
    EVP_PKEY_free(key);
    /* Never overwrites; refuses a public-key name and an unknown type. */
    cli(&run, (const char *[]){"admin", "keygen", "--out", out, NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "refusing to overwrite"));
    cli_free(&run);
    cli(&run, (const char *[]){"admin", "keygen", "--out", pub, NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
    snprintf(out, sizeof(out), "%s/dave.pem", fx.dir);
    cli(&run, (const char *[]){"admin", "keygen", "--out", out, "--key-type", "rsa", NULL});
    assert_int_equal(run.code, 2);
    cli_free(&run);
    assert_int_not_equal(stat(out, &sb), 0);
    cli(&run, (const char *[]){"admin", "keygen", "--out", out, NULL});
    assert_int_equal(run.code, 0);
    assert_non_null(strstr(run.out, "alg EdDSA"));
    cli_free(&run);
}

/* ---- HTTPS ---- */

static void test_https(void **state)
{
    (void)state;
    if (!fx.tls_available) {
        /* libmicrohttpd without TLS: the daemon refuses to start with HTTPS configured. */
        char state_dir[200], *err = NULL;
        snprintf(state_dir, sizeof(state_dir), "%s/no-tls", fx.dir);
        const char *args[] = {"--state-dir", state_dir,        "--port",   "0", "--tls-cert-file",
                              fx.tls_cert,   "--tls-key-file", fx.tls_key, NULL};
        int code = run_program("vtpmcad", args, 15, NULL, &err);
        bool refused = code == 2 && err != NULL && strstr(err, "HTTPS is unavailable") != NULL;
        free(err);
        assert_true(refused);
        skip();
    }
    http_result r;
    http_raw(fx.tls_url, "GET", "/healthz", NULL, NULL, fx.cacert, &r);
    assert_int_equal(r.curl_code, CURLE_OK);
    assert_int_equal(r.status, 200);
    http_free(&r);
    /* The certificate does not chain to the system's CAs. */
    http_raw(fx.tls_url, "GET", "/healthz", NULL, NULL, NULL, &r);
    assert_int_equal(r.curl_code, CURLE_PEER_FAILED_VERIFICATION);
    http_free(&r);
    /* Admin API over HTTPS with a token. */
    char *token = token_with(fx.alice, "alice", ADMIN_ROLE_ADMIN);
    char auth[ADMIN_TOKEN_MAX_LEN + 16];
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    free(token);
    http_raw(fx.tls_url, "POST", "/v1/admin/fleets", auth, "{\"name\":\"tls-fleet\"}", fx.cacert,
             &r);
    assert_int_equal(r.status, 201);
    http_free(&r);
    http_raw(fx.tls_url, "GET", "/v1/admin/fleets", NULL, NULL, fx.cacert, &r);
    assert_int_equal(r.status, 401);
    http_free(&r);

    /* The CLI with --cacert, and without it. */
    cli_run run;
    cli(&run, (const char *[]){"fleet", "list", "--json", "--server", fx.tls_url, "--admin-key",
                               fx.audrey_key, "--cacert", fx.cacert, NULL});
    assert_int_equal(run.code, 0);
    json_t *list = json_loads(run.out, 0, NULL);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_str(json_array_get(list, 0), "name"), "tls-fleet");
    json_decref(list);
    cli_free(&run);
    cli(&run,
        (const char *[]){"policy", "create", "--fleet", "tls-fleet", "--file", fx.v1, "--server",
                         fx.tls_url, "--admin-key", fx.alice_key, "--cacert", fx.cacert, NULL});
    assert_int_equal(run.code, 0);
    assert_non_null(strstr(run.out, "policy version 1"));
    cli_free(&run);
    setenv("VTPMCA_CACERT", fx.cacert, 1);
    cli(&run, (const char *[]){"admin", "whoami", "--server", fx.tls_url, "--admin-key",
                               fx.alice_key, NULL});
    unsetenv("VTPMCA_CACERT");
    assert_int_equal(run.code, 0);
    assert_non_null(strstr(run.out, "admin alice, granted role admin"));
    cli_free(&run);
    cli(&run, (const char *[]){"fleet", "list", "--server", fx.tls_url, "--admin-key", fx.alice_key,
                               NULL});
    assert_int_equal(run.code, 1);
    assert_non_null(strstr(run.err, "certificate"));
    cli_free(&run);
}

/* Start-up refusals: TLS half configured, a bad certificate, unsafe admin key directories. */
static void test_daemon_config_refusals(void **state)
{
    (void)state;
    char state_dir[200], loose_dir[200], bad_cert[200];
    snprintf(state_dir, sizeof(state_dir), "%s/refusals", fx.dir);
    snprintf(loose_dir, sizeof(loose_dir), "%s/loose-admins", fx.dir);
    snprintf(bad_cert, sizeof(bad_cert), "%s/bad.crt", fx.dir);
    write_text(bad_cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
    assert_int_equal(mkdir(loose_dir, 0777), 0);
    assert_int_equal(chmod(loose_dir, 0777), 0);
    cli_run run;
    struct {
        const char *args[12];
        const char *needle;
    } cases[] = {
        {{"--state-dir", state_dir, "--tls-cert-file", fx.tls_cert, NULL}, "together"},
        {{"--state-dir", state_dir, "--listen", "0.0.0.0", NULL}, "without TLS"},
        {{"--state-dir", state_dir, "--port", "0", "--admin-keys-dir", loose_dir, NULL},
         "writable"},
        {{"--state-dir", state_dir, "--port", "0", "--admin-key", fx.alice_key, NULL}, ".pub.pem"},
        {{"--state-dir", state_dir, "--port", "0", "--tls-cert-file", bad_cert, "--tls-key-file",
          fx.tls_key, NULL},
         "tls_cert_file: no PEM certificate"},
        {{"--state-dir", state_dir, "--port", "0", "--tls-cert-file", fx.tls_cert, "--tls-key-file",
          fx.alice_key, NULL},
         "does not hold the key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run.code = run_program("vtpmcad", cases[i].args, 15, NULL, &run.err);
        bool ok = run.code == 2 && run.err != NULL && strstr(run.err, cases[i].needle) != NULL;
        if (!ok)
            print_error("case %zu: exit %d, stderr %s\n", i, run.code, run.err ? run.err : "");
        free(run.err);
        assert_true(ok);
    }

    /* Without admin keys every admin call is 401, saying so. */
    vtpmcad_proc bare;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpmcad_start(&bare, fx.dir, "bare", state_dir, NULL, &diag), VTPMCA_OK);
    char *token = token_with(fx.alice, "alice", ADMIN_ROLE_ADMIN);
    char auth[ADMIN_TOKEN_MAX_LEN + 16];
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    free(token);
    http_result r;
    http_raw(bare.url, "GET", "/v1/admin/fleets", auth, NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    expect_error(&r, "unauthorized", "no admin keys");
    http_free(&r);
    assert_int_equal(stop_checked(&bare), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_token),
        cmocka_unit_test(test_refused_bad_tokens),
        cmocka_unit_test(test_wrong_role_forbidden),
        cmocka_unit_test(test_fleet_and_policy_routes),
        cmocka_unit_test(test_vcek_import_route),
        cmocka_unit_test(test_cli_remote_matches_offline),
        cmocka_unit_test(test_cli_remote_settings),
        cmocka_unit_test(test_cli_admin_keygen),
        cmocka_unit_test(test_https),
        cmocka_unit_test(test_daemon_config_refusals),
        cmocka_unit_test(test_logged_and_audited),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
