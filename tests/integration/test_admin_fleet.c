/* End-to-end tests of the fleet admin routes: the real vtpmcad on 127.0.0.1 with an admin
 * (alice, Ed25519) and an auditor (audrey, P-256), spoken to with libcurl and tokens signed
 * here. Instances (enroll, bulk, list, show, disable/enable, re-enroll, wrap-key, delete),
 * the audit log (search filters, export), KBS keys (this service's, trusting and untrusting
 * peers) and the rollback ledger (show, clear, require-admin-clear of an instance whose
 * ledger was advanced and locked through ledger.h before the daemon started). Every refusal:
 * no token, an expired token, the auditor role on writes, bad input (nothing changes). */
#define _XOPEN_SOURCE 700 /* POSIX (mkdtemp, strdup, ...) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
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
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"

#define LOCKED_INSTANCE "led-1"
#define BULK_ROWS 10000

static struct {
    char dir[64];
    char keys_dir[128], state[128], trusted[160], db[192], master[192];
    EVP_PKEY *alice, *audrey;
    vtpmcad_proc daemon;
} fx;

/* ---- setup ---- */

static EVP_PKEY *make_admin_key(admin_key_type type, const char *name, const char *pub_dir)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL, path[256];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s.pub.pem", pub_dir, name);
    if (admin_key_generate(type, &key, NULL) != VTPMCA_OK ||
        admin_key_to_pem(key, false, &pem, &len, NULL) != VTPMCA_OK ||
        vt_file_write_atomic(path, pem, len, 0644, NULL) != VTPMCA_OK) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    OPENSSL_free(pem);
    return key;
}

/* Before the daemon starts: fleets, an enrolled instance, and its ledger advanced to counter
 * 5 and then locked by a rollback attempt (require-admin-clear on). */
static int prepare_state(void)
{
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    keyvault *vault = NULL;
    ledger *l = NULL;
    int rc = -1;
    if (store_open(fx.db, &st, &diag) != VTPMCA_OK ||
        keyvault_open(fx.master, true, &vault, &diag) != VTPMCA_OK ||
        store_fleet_create(st, "prod", "production", &diag) != VTPMCA_OK ||
        store_fleet_create(st, "lab", NULL, &diag) != VTPMCA_OK)
        goto out;
    enroll_request req = {.instance_id = LOCKED_INSTANCE,
                          .fleet = "prod",
                          .mode = STORE_KEY_GENERATED,
                          .actor = "test"};
    enroll_result res;
    ledger_config lc = {.store = st};
    if (enrollment_enroll(st, vault, &req, &res, &diag) != VTPMCA_OK ||
        ledger_open(&lc, &l, &diag) != VTPMCA_OK ||
        ledger_set_require_admin_clear(l, LOCKED_INSTANCE, true, &diag) != VTPMCA_OK)
        goto out;
    uint8_t counter[LEDGER_COUNTER_LEN] = {0}, root[32];
    memset(root, 0xab, sizeof(root));
    ledger_result result;
    counter[15] = 5;
    if (ledger_advance(l, LOCKED_INSTANCE, counter, root, sizeof(root), &result, &diag) !=
        VTPMCA_OK)
        goto out;
    counter[15] = 3; /* behind: refused, and locks the instance */
    if (ledger_advance(l, LOCKED_INSTANCE, counter, root, sizeof(root), &result, &diag) !=
            VTPMCA_ERR_CONFLICT ||
        result.outcome != LEDGER_REFUSED_ROLLBACK || !result.locked)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "prepare: %s\n", diag.msg);
    ledger_close(l);
    keyvault_free(vault);
    store_close(st);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    vtpmca_log_setup(VTPMCA_LOG_ERROR, VTPMCA_LOG_LOGFMT, 2); /* the setup's store and ledger */
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "admin-fleet") != 0)
        return -1;
    char auditors[160];
    snprintf(fx.keys_dir, sizeof(fx.keys_dir), "%s/admins", fx.dir);
    snprintf(auditors, sizeof(auditors), "%s/auditors", fx.keys_dir);
    snprintf(fx.state, sizeof(fx.state), "%s/state", fx.dir);
    snprintf(fx.trusted, sizeof(fx.trusted), "%s/trusted-kbs", fx.dir);
    snprintf(fx.db, sizeof(fx.db), "%s/vtpmca.db", fx.state);
    snprintf(fx.master, sizeof(fx.master), "%s/master.key", fx.state);
    if (mkdir(fx.keys_dir, 0700) != 0 || mkdir(auditors, 0700) != 0 || mkdir(fx.state, 0700) != 0)
        return -1;
    fx.alice = make_admin_key(ADMIN_KEY_ED25519, "alice", fx.keys_dir);
    fx.audrey = make_admin_key(ADMIN_KEY_P256, "audrey", auditors);
    if (fx.alice == NULL || fx.audrey == NULL || prepare_state() != 0)
        return -1;
    vtpmca_diag diag = {{0}};
    const char *extra[] = {
        "--admin-keys-dir", fx.keys_dir, "--trusted-kbs-keys-dir", fx.trusted, "--max-body-bytes",
        "8388608",          NULL};
    if (vtpmcad_start(&fx.daemon, fx.dir, "daemon", fx.state, extra, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    char log_path[sizeof(fx.daemon.log_path)];
    snprintf(log_path, sizeof(log_path), "%s", fx.daemon.log_path);
    if (fx.daemon.pid > 0 && vtpmcad_stop(&fx.daemon) != 0) {
        uint8_t *log = NULL;
        size_t len = 0;
        if (vt_file_read(log_path, 1 << 24, &log, &len, NULL) == VTPMCA_OK)
            print_error("vtpmcad failed; end of its log:\n%s\n",
                        (char *)log + (len > 4000 ? len - 4000 : 0));
        free(log);
        rc = -1;
    }
    EVP_PKEY_free(fx.alice);
    EVP_PKEY_free(fx.audrey);
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
    char content_type[64];
    char next_after[32]; /* X-Vtpmca-Next-After */
} http_result;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    return http_capture_append(&r->body, &r->len, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    http_result *r = user;
    http_capture_header(data, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    http_capture_header(data, size * n, "X-Vtpmca-Next-After", r->next_after,
                        sizeof(r->next_after));
    return size * n;
}

static char *token_for(EVP_PKEY *key, const char *name, admin_role role)
{
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    if (admin_token_sign(key, name, role, time(NULL), 60, &token, &diag) != VTPMCA_OK)
        fail_msg("token: %s", diag.msg);
    return token;
}

/* One request with `authorization` ("Bearer ..." or NULL) and a body of `type` (NULL:
 * none). */
static void http_raw(const char *method, const char *path, const char *authorization,
                     const char *type, const char *body, size_t body_len, http_result *r)
{
    memset(r, 0, sizeof(*r));
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    char url[1024], header[ADMIN_TOKEN_MAX_LEN + 64], type_header[96];
    snprintf(url, sizeof(url), "%s%s", fx.daemon.url, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (authorization != NULL) {
        snprintf(header, sizeof(header), "Authorization: %s", authorization);
        headers = curl_slist_append(headers, header);
    }
    if (body != NULL) {
        snprintf(type_header, sizeof(type_header), "Content-Type: %s", type);
        headers = curl_slist_append(headers, type_header);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    CURLcode code = curl_easy_perform(curl);
    /* The status is read before the handle is freed. */
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (code != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(code));
    if (r->body != NULL && strncmp(r->content_type, "application/json", 16) == 0)
        r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void http_free(http_result *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* A request with a fresh token of (key, name, role) (key NULL: no token), a body of `type`,
 * checked for `want` status and a JSON answer (unless export). */
static void call_typed(EVP_PKEY *key, const char *name, admin_role role, const char *method,
                       const char *path, const char *type, const char *body, long want,
                       http_result *r)
{
    char *token = key != NULL ? token_for(key, name, role) : NULL;
    char auth[ADMIN_TOKEN_MAX_LEN + 16];
    if (token != NULL)
        snprintf(auth, sizeof(auth), "Bearer %s", token);
    free(token);
    http_raw(method, path, key != NULL ? auth : NULL, type, body, body != NULL ? strlen(body) : 0,
             r);
    if (r->status != want)
        fail_msg("%s %s: status %ld, expected %ld: %.600s", method, path, r->status, want,
                 r->body != NULL ? r->body : "");
}

static void call(EVP_PKEY *key, const char *name, admin_role role, const char *method,
                 const char *path, const char *body, long want, http_result *r)
{
    call_typed(key, name, role, method, path, "application/json", body, want, r);
    if (r->json == NULL)
        fail_msg("%s %s: the answer is not JSON: %.300s", method, path, r->body ? r->body : "");
}

#define ALICE fx.alice, "alice", ADMIN_ROLE_ADMIN
#define AUDREY fx.audrey, "audrey", ADMIN_ROLE_AUDITOR

static const char *str(const json_t *doc, const char *key)
{
    const char *value = json_string_value(json_object_get(doc, key));
    if (value == NULL)
        fail_msg("no string '%s'", key);
    return value;
}

static json_int_t num(const json_t *doc, const char *key)
{
    const json_t *value = json_object_get(doc, key);
    if (!json_is_integer(value))
        fail_msg("no integer '%s'", key);
    return json_integer_value(value);
}

static void expect_error(const http_result *r, const char *code, const char *needle)
{
    assert_string_equal(str(r->json, "error"), code);
    if (needle != NULL && strstr(str(r->json, "message"), needle) == NULL)
        fail_msg("message '%s' lacks '%s'", str(r->json, "message"), needle);
}

/* Instances in the daemon's store, read through its own database file. */
static size_t store_count(void)
{
    store *st = NULL;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    size_t total = 0;
    char after[STORE_INSTANCE_ID_MAX + 1] = "";
    for (;;) {
        store_instance *items = NULL;
        size_t n = 0;
        assert_int_equal(store_instance_list(st, NULL, after[0] ? after : NULL, STORE_LIST_MAX,
                                             &items, &n, NULL),
                         VTPMCA_OK);
        if (n > 0)
            snprintf(after, sizeof(after), "%s", items[n - 1].id);
        store_instance_list_free(items, n);
        total += n;
        if (n < STORE_LIST_MAX)
            break;
    }
    store_close(st);
    return total;
}

static void enroll(const char *id, const char *fleet, const char *mode)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"instance\":\"%s\",\"fleet\":\"%s\",\"mode\":\"%s\"}", id,
             fleet, mode);
    http_result r;
    call(ALICE, "POST", "/v1/admin/instances", body, 201, &r);
    http_free(&r);
}

/* ---- Refusals ---- */

/* Every route of this file, with a body for the writes. */
static const struct {
    const char *method, *path, *body;
    bool write;
} routes[] = {
    {"GET", "/v1/admin/instances", NULL, false},
    {"GET", "/v1/admin/instances/" LOCKED_INSTANCE, NULL, false},
    {"POST", "/v1/admin/instances", "{\"instance\":\"x-1\",\"fleet\":\"prod\"}", true},
    {"POST", "/v1/admin/instances/bulk", "instance,fleet\nx-2,prod\n", true},
    {"POST", "/v1/admin/instances/" LOCKED_INSTANCE "/disable", "{}", true},
    {"POST", "/v1/admin/instances/" LOCKED_INSTANCE "/enable", "{}", true},
    {"POST", "/v1/admin/instances/" LOCKED_INSTANCE "/re-enroll", "{}", true},
    {"POST", "/v1/admin/instances/" LOCKED_INSTANCE "/wrap-key", "{\"key\":\"AAAA\"}", true},
    {"DELETE", "/v1/admin/instances/" LOCKED_INSTANCE, NULL, true},
    {"GET", "/v1/admin/audit", NULL, false},
    {"GET", "/v1/admin/audit/export", NULL, false},
    {"GET", "/v1/admin/kbs-key", NULL, false},
    {"GET", "/v1/admin/kbs-keys/trusted", NULL, false},
    {"POST", "/v1/admin/kbs-keys/trusted", "{\"pem\":\"x\"}", true},
    {"DELETE",
     "/v1/admin/kbs-keys/trusted/0000000000000000000000000000000000000000000000000000000000000000",
     NULL, true},
    {"GET", "/v1/admin/ledger/" LOCKED_INSTANCE, NULL, false},
    {"POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/clear", "{\"reset\":true}", true},
    {"POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/require-admin-clear", "{\"on\":false}", true},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *type_of(size_t i)
{
    return strstr(routes[i].path, "/bulk") != NULL ? "text/csv" : "application/json";
}

/* The ledger row of the locked instance, to see that refused calls changed nothing. */
static json_t *ledger_state(void)
{
    http_result r;
    call(AUDREY, "GET", "/v1/admin/ledger/" LOCKED_INSTANCE, NULL, 200, &r);
    json_t *out = json_incref(r.json);
    http_free(&r);
    return out;
}

static void test_refused_without_token_and_expired(void **state)
{
    (void)state;
    size_t before = store_count();
    json_t *ledger_before = ledger_state();
    /* An expired token of alice's own key. */
    time_t now = time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "sub", "alice", "role", "admin",
                               "aud", ADMIN_TOKEN_AUDIENCE, "iat", (json_int_t)now - 200, "exp",
                               (json_int_t)now - 100, "jti", "fleet-expired");
    char *expired = NULL, auth[ADMIN_TOKEN_MAX_LEN + 16];
    assert_int_equal(admin_token_sign_claims(fx.alice, "alice", claims, &expired, NULL), VTPMCA_OK);
    json_decref(claims);
    snprintf(auth, sizeof(auth), "Bearer %s", expired);
    free(expired);
    for (size_t i = 0; i < N_ROUTES; i++) {
        http_result r;
        size_t len = routes[i].body != NULL ? strlen(routes[i].body) : 0;
        http_raw(routes[i].method, routes[i].path, NULL, type_of(i), routes[i].body, len, &r);
        if (r.status != 401)
            fail_msg("%s %s without a token: %ld", routes[i].method, routes[i].path, r.status);
        expect_error(&r, "unauthorized", "Bearer");
        http_free(&r);
        /* The expired token is refused before its jti is remembered: it can be sent again. */
        http_raw(routes[i].method, routes[i].path, auth, type_of(i), routes[i].body, len, &r);
        if (r.status != 401)
            fail_msg("%s %s with an expired token: %ld", routes[i].method, routes[i].path,
                     r.status);
        expect_error(&r, "invalid_token", "expired");
        http_free(&r);
    }
    assert_int_equal(store_count(), before);
    json_t *ledger_after = ledger_state();
    assert_true(json_equal(ledger_before, ledger_after));
    json_decref(ledger_before);
    json_decref(ledger_after);
}

static void test_auditor_reads_but_may_not_write(void **state)
{
    (void)state;
    size_t before = store_count();
    json_t *ledger_before = ledger_state();
    for (size_t i = 0; i < N_ROUTES; i++) {
        http_result r;
        if (routes[i].write) {
            call_typed(AUDREY, routes[i].method, routes[i].path, type_of(i), routes[i].body, 403,
                       &r);
            expect_error(&r, "forbidden", NULL);
        } else {
            call_typed(AUDREY, routes[i].method, routes[i].path, type_of(i), routes[i].body, 200,
                       &r);
        }
        http_free(&r);
    }
    /* A token that asks for more than audrey's key grants is refused too. */
    http_result r;
    call(fx.audrey, "audrey", ADMIN_ROLE_ADMIN, "POST", "/v1/admin/instances",
         "{\"instance\":\"x-3\",\"fleet\":\"prod\"}", 403, &r);
    http_free(&r);
    assert_int_equal(store_count(), before);
    json_t *ledger_after = ledger_state();
    assert_true(json_equal(ledger_before, ledger_after));
    json_decref(ledger_before);
    json_decref(ledger_after);
}

/* ---- Instances ---- */

static void test_enroll_show_list(void **state)
{
    (void)state;
    http_result r;
    const char *host = "3333333333333333333333333333333333333333333333333333333333333333";
    char body[512];
    snprintf(body, sizeof(body),
             "{\"instance\":\"vm-a\",\"fleet\":\"prod\",\"host_data\":\"%s\","
             "\"resource_path\":\"default/sample/vm-a\",\"mode\":\"wrapped\"}",
             host);
    call(ALICE, "POST", "/v1/admin/instances", body, 201, &r);
    assert_string_equal(str(r.json, "instance"), "vm-a");
    assert_string_equal(str(r.json, "key_mode"), "wrapped");
    assert_string_equal(str(r.json, "host_data"), host);
    assert_string_equal(str(r.json, "resource_path"), "default/sample/vm-a");
    assert_false(json_is_true(json_object_get(r.json, "disabled")));
    assert_null(json_object_get(r.json, "wrapped_key"));
    http_free(&r);
    enroll("vm-b", "prod", "generated");
    enroll("lab-a", "lab", "generated");

    call(AUDREY, "GET", "/v1/admin/instances/vm-b", NULL, 200, &r);
    assert_string_equal(str(r.json, "fleet"), "prod");
    assert_true(strncmp(str(r.json, "resource_path"), ENROLLMENT_PATH_PREFIX,
                        strlen(ENROLLMENT_PATH_PREFIX)) == 0);
    http_free(&r);

    /* Refusals, each changing nothing. */
    size_t before = store_count();
    call(ALICE, "POST", "/v1/admin/instances", "{\"instance\":\"vm-b\",\"fleet\":\"prod\"}", 409,
         &r);
    expect_error(&r, "conflict", "already enrolled");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances", "{\"instance\":\"vm-c\",\"fleet\":\"nowhere\"}", 404,
         &r);
    expect_error(&r, "unknown_fleet", NULL);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances", "{\"instance\":\"vm c\",\"fleet\":\"prod\"}", 400,
         &r);
    expect_error(&r, "invalid_request", "instance id");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances",
         "{\"instance\":\"vm-c\",\"fleet\":\"prod\",\"host_data\":\"12\"}", 400, &r);
    expect_error(&r, "invalid_request", "host_data");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances",
         "{\"instance\":\"vm-c\",\"fleet\":\"prod\",\"mode\":\"other\"}", 400, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances",
         "{\"instance\":\"vm-c\",\"fleet\":\"prod\",\"colour\":\"blue\"}", 400, &r);
    expect_error(&r, "invalid_request", "unknown field");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances",
         "{\"instance\":\"vm-c\",\"fleet\":\"prod\",\"resource_path\":\"default/sample/vm-a\"}",
         409, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances", "[1]", 400, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/instances/vm-404", NULL, 404, &r);
    expect_error(&r, "unknown_instance", NULL);
    http_free(&r);
    assert_int_equal(store_count(), before);

    /* Lists: one fleet; paging with limit and after. */
    call(AUDREY, "GET", "/v1/admin/instances?fleet=lab", NULL, 200, &r);
    json_t *list = json_object_get(r.json, "instances");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(str(json_array_get(list, 0), "instance"), "lab-a");
    assert_true(json_is_null(json_object_get(r.json, "next_after")));
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/instances?fleet=prod&limit=1", NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "instances")), 1);
    char next[64];
    snprintf(next, sizeof(next), "%s", str(r.json, "next_after"));
    http_free(&r);
    char path[160];
    snprintf(path, sizeof(path), "/v1/admin/instances?fleet=prod&limit=1&after=%s", next);
    call(AUDREY, "GET", path, NULL, 200, &r);
    const char *second = str(json_array_get(json_object_get(r.json, "instances"), 0), "instance");
    assert_true(strcmp(second, next) > 0);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/instances?fleet=nowhere", NULL, 404, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/instances?limit=0", NULL, 400, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/instances?colour=blue", NULL, 400, &r);
    http_free(&r);
}

static void test_disable_enable_reenroll(void **state)
{
    (void)state;
    enroll("vm-d", "prod", "generated");
    http_result r;
    call(ALICE, "POST", "/v1/admin/instances/vm-d/disable", "", 200, &r); /* an empty body */
    assert_true(json_is_true(json_object_get(r.json, "disabled")));
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/vm-d/enable", "{}", 200, &r);
    assert_false(json_is_true(json_object_get(r.json, "disabled")));
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/vm-d/disable", "{\"why\":1}", 400, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/ghost/disable", "{}", 404, &r);
    http_free(&r);

    call(ALICE, "POST", "/v1/admin/instances/vm-d/re-enroll", "{}", 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "ek_change_allowed")));
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/ghost/re-enroll", "{}", 404, &r);
    http_free(&r);
    /* The grant is in the store for the next certification, once. */
    store *st = NULL;
    bool granted = false;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    assert_int_equal(store_instance_ek_reenroll_take(st, "vm-d", &granted, NULL), VTPMCA_OK);
    assert_true(granted);
    assert_int_equal(store_instance_ek_reenroll_take(st, "vm-d", &granted, NULL), VTPMCA_OK);
    assert_false(granted);
    store_close(st);
}

static void test_wrap_key(void **state)
{
    (void)state;
    enroll("vm-w", "prod", "wrapped");
    enroll("vm-g", "prod", "generated");
    uint8_t key[48];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 1);
    char *b64 = NULL, body[256];
    assert_int_equal(vt_b64_encode_alloc(key, sizeof(key), VT_B64_STD, &b64), VTPMCA_OK);
    snprintf(body, sizeof(body), "{\"key\":\"%s\"}", b64);
    free(b64);
    http_result r;
    call(ALICE, "POST", "/v1/admin/instances/vm-w/wrap-key", body, 200, &r);
    /* The blob unwraps with the daemon's master key, for this instance only. */
    const char *wrapped = str(r.json, "wrapped_key");
    uint8_t *blob = NULL, out[KEYVAULT_KEY_MAX];
    size_t blob_len = 0, out_len = 0;
    assert_int_equal(
        vt_b64_decode_alloc(wrapped, strlen(wrapped), VT_B64_URL_NOPAD, &blob, &blob_len),
        VTPMCA_OK);
    keyvault *vault = NULL;
    assert_int_equal(keyvault_open(fx.master, false, &vault, NULL), VTPMCA_OK);
    char context[ENROLLMENT_CONTEXT_MAX];
    assert_int_equal(enrollment_key_context(STORE_KEY_WRAPPED, "vm-w", context, NULL), VTPMCA_OK);
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, context, out, sizeof(out), &out_len, NULL),
        VTPMCA_OK);
    assert_int_equal(out_len, sizeof(key));
    assert_memory_equal(out, key, sizeof(key));
    assert_int_equal(enrollment_key_context(STORE_KEY_WRAPPED, "vm-g", context, NULL), VTPMCA_OK);
    assert_int_equal(
        keyvault_unwrap(vault, blob, blob_len, context, out, sizeof(out), &out_len, NULL),
        VTPMCA_ERR_CRYPTO);
    keyvault_free(vault);
    free(blob);
    http_free(&r);
    /* Refusals. */
    call(ALICE, "POST", "/v1/admin/instances/vm-g/wrap-key", body, 409, &r);
    expect_error(&r, "conflict", "wrapped-key mode");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/ghost/wrap-key", body, 404, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/vm-w/wrap-key", "{\"key\":\"not base64!\"}", 400, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/instances/vm-w/wrap-key", "{\"key\":\"\"}", 400, &r);
    http_free(&r);
    /* The key never reaches the daemon's log. */
    char hex[2 * sizeof(key) + 1];
    vt_hex_encode(key, sizeof(key), hex, sizeof(hex));
    uint8_t *log = NULL;
    size_t log_len = 0;
    assert_int_equal(vt_file_read(fx.daemon.log_path, 1 << 26, &log, &log_len, NULL), VTPMCA_OK);
    assert_null(strstr((char *)log, hex));
    free(log);
}

static void test_delete(void **state)
{
    (void)state;
    enroll("vm-x", "prod", "generated");
    /* A certificate of the instance, as the CA would have recorded it. */
    store *st = NULL;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    uint8_t der[16] = {0x30, 0x0e};
    store_cert cert = {.serial = "0a1b2c",
                       .instance_id = "vm-x",
                       .kind = STORE_CERT_EK,
                       .key_name = "000b00112233",
                       .format = STORE_CERT_X509,
                       .not_before = 1700000000,
                       .not_after = 1900000000,
                       .status = STORE_CERT_ISSUED,
                       .der = der,
                       .der_len = sizeof(der)};
    assert_int_equal(store_cert_put(st, &cert, NULL), VTPMCA_OK);

    http_result r;
    call(ALICE, "DELETE", "/v1/admin/instances/vm-x", NULL, 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "deleted")));
    assert_int_equal(num(r.json, "certificates_revoked"), 1);
    http_free(&r);
    store_cert got;
    assert_int_equal(store_cert_get(st, "0a1b2c", &got, NULL), VTPMCA_OK);
    assert_int_equal(got.status, STORE_CERT_REVOKED);
    assert_string_equal(got.reason, "cessationOfOperation");
    store_cert_free_fields(&got);
    store_instance inst;
    assert_int_equal(store_instance_get(st, "vm-x", &inst, NULL), VTPMCA_ERR_NOT_FOUND);
    store_close(st);

    call(AUDREY, "GET", "/v1/admin/instances/vm-x", NULL, 404, &r);
    http_free(&r);
    call(ALICE, "DELETE", "/v1/admin/instances/vm-x", NULL, 404, &r);
    http_free(&r);
    /* Its id is never enrolled again. */
    call(ALICE, "POST", "/v1/admin/instances", "{\"instance\":\"vm-x\",\"fleet\":\"prod\"}", 409,
         &r);
    expect_error(&r, "conflict", "deleted instance");
    http_free(&r);
    /* The audit log keeps the deletion, under the instance. */
    call(AUDREY, "GET", "/v1/admin/audit?instance=vm-x&action=admin.instance_delete", NULL, 200,
         &r);
    json_t *events = json_object_get(r.json, "events");
    assert_int_equal(json_array_size(events), 2); /* the deletion and the refused second one */
    assert_string_equal(str(json_array_get(events, 0), "outcome"), "ok");
    assert_string_equal(str(json_array_get(events, 0), "actor"), "alice");
    assert_string_equal(str(json_array_get(events, 1), "outcome"), "refused");
    http_free(&r);
}

/* ---- Bulk enrollment ---- */

static void test_bulk_bad_rows(void **state)
{
    (void)state;
    size_t before = store_count();
    http_result r;
    /* Format problems: reported with their lines, nothing enrolled. */
    const char *bad = "instance,fleet,host_data,mode\n"
                      "bulk-1,prod,,\n"
                      "bulk 2,prod,,\n"
                      "bulk-3,prod,,\n"
                      "bulk-4,prod,1234,\n"
                      "bulk-1,prod,,\n"
                      "bulk-6,prod,,sideways\n";
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "text/csv", bad, 400, &r);
    assert_non_null(r.json);
    expect_error(&r, "invalid_rows", "4 bad rows");
    json_t *errors = json_object_get(r.json, "errors");
    assert_int_equal(json_array_size(errors), 4);
    const json_int_t lines[] = {3, 5, 6, 7};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(num(json_array_get(errors, i), "line"), lines[i]);
    assert_non_null(strstr(str(json_array_get(errors, 2), "message"), "line 2"));
    http_free(&r);
    assert_int_equal(store_count(), before);

    /* Store problems (an enrolled id, an unknown fleet): the same, found before or by the
     * transaction. */
    const char *taken = "{\"instance\":\"bulk-a\",\"fleet\":\"prod\"}\n"
                        "\n"
                        "{\"instance\":\"vm-b\",\"fleet\":\"prod\"}\n"
                        "{\"instance\":\"bulk-c\",\"fleet\":\"prod\"}\n";
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "application/x-ndjson", taken, 409, &r);
    expect_error(&r, "conflict", "line 3");
    assert_int_equal(json_array_size(json_object_get(r.json, "errors")), 1);
    http_free(&r);
    const char *fleetless = "instance,fleet\nbulk-a,prod\nbulk-b,nowhere\n";
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "text/csv", fleetless, 404, &r);
    expect_error(&r, "unknown_fleet", "line 3");
    http_free(&r);
    assert_int_equal(store_count(), before);

    /* A bad document, a bad media type, a bad parameter. */
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "text/csv", "instance,colour\nx,y\n", 400,
               &r);
    expect_error(&r, "invalid_request", "unknown column");
    http_free(&r);
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "text/csv", "instance,fleet\n", 400, &r);
    http_free(&r);
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "application/json", "{}", 415, &r);
    http_free(&r);
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk?skip_bad=maybe", "text/csv", bad, 400, &r);
    http_free(&r);
    assert_int_equal(store_count(), before);

    /* With skip_bad, explicitly: the good rows go in, the bad ones are listed. */
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk?skip_bad=true", "text/csv", bad, 201, &r);
    assert_int_equal(num(r.json, "enrolled"), 2);
    assert_int_equal(num(r.json, "skipped"), 4);
    assert_int_equal(json_array_size(json_object_get(r.json, "errors")), 4);
    http_free(&r);
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk?skip_bad=true&fleet=lab",
               "application/x-ndjson", "{\"instance\":\"bulk-1\"}\n{\"instance\":\"bulk-7\"}\n",
               201, &r);
    assert_int_equal(num(r.json, "enrolled"), 1);
    assert_int_equal(num(json_array_get(json_object_get(r.json, "errors"), 0), "line"), 1);
    assert_string_equal(str(json_array_get(json_object_get(r.json, "instances"), 0), "fleet"),
                        "lab");
    http_free(&r);
    assert_int_equal(store_count(), before + 3);
}

static void test_bulk_10000_over_http(void **state)
{
    (void)state;
    size_t before = store_count();
    size_t cap = 64 + BULK_ROWS * 48, len = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    /* Every tenth row names its own tag; the others get generated ones. */
    len = (size_t)snprintf(csv, cap, "instance,fleet,resource_tag\n");
    for (size_t i = 0; i < BULK_ROWS; i++) {
        char tag[32] = "";
        if (i % 10 == 0)
            snprintf(tag, sizeof(tag), "tag-%05zu", i);
        len += (size_t)snprintf(csv + len, cap - len, "fleet-%05zu,prod,%s\n", i, tag);
    }
    http_result r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    call_typed(ALICE, "POST", "/v1/admin/instances/bulk", "text/csv", csv, 201, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(csv);
    print_message("bulk enrollment of %d instances over HTTP: %.2f s\n", BULK_ROWS,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_int_equal(num(r.json, "enrolled"), BULK_ROWS);
    assert_int_equal(num(r.json, "skipped"), 0);
    json_t *list = json_object_get(r.json, "instances");
    assert_int_equal(json_array_size(list), BULK_ROWS);
    assert_int_equal(store_count(), before + BULK_ROWS);
    /* The answer's paths are the stored ones. */
    store *st = NULL;
    assert_int_equal(store_open(fx.db, &st, NULL), VTPMCA_OK);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        store_instance inst;
        assert_int_equal(store_instance_get(st, str(item, "instance"), &inst, NULL), VTPMCA_OK);
        assert_string_equal(inst.resource_path, str(item, "resource_path"));
        assert_int_equal(num(item, "line"), (json_int_t)i + 2);
        if (i % 10 == 0) {
            char want[96];
            snprintf(want, sizeof(want), ENROLLMENT_PATH_PREFIX "tag-%05zu", i);
            assert_string_equal(inst.resource_path, want);
        }
        store_instance_free_fields(&inst);
    }
    store_close(st);
    http_free(&r);
}

/* ---- Audit ---- */

static void test_audit_search_and_export(void **state)
{
    (void)state;
    http_result r;
    char since[40], path[256];
    /* Events from now on: a disable and an enable of one instance. */
    call(AUDREY, "GET", "/v1/admin/audit?last=1", NULL, 200, &r);
    const char *newest = str(json_array_get(json_object_get(r.json, "events"), 0), "at");
    snprintf(since, sizeof(since), "%s", newest);
    json_int_t newest_seq = num(json_array_get(json_object_get(r.json, "events"), 0), "seq");
    http_free(&r);
    enroll("audit-1", "lab", "generated");
    call(ALICE, "POST", "/v1/admin/instances/audit-1/disable", "{}", 200, &r);
    http_free(&r);

    /* By instance: the enrollment (by the enrollment itself and by the admin call) and the
     * disable, in order. */
    call(AUDREY, "GET", "/v1/admin/audit?instance=audit-1", NULL, 200, &r);
    json_t *events = json_object_get(r.json, "events");
    assert_int_equal(json_array_size(events), 3);
    assert_string_equal(str(json_array_get(events, 0), "action"), "enroll");
    assert_string_equal(str(json_array_get(events, 0), "actor"), "admin:alice");
    assert_string_equal(str(json_array_get(events, 1), "action"), "admin.instance_enroll");
    assert_string_equal(str(json_array_get(events, 2), "action"), "admin.instance_disable");
    assert_true(num(json_array_get(events, 0), "seq") > newest_seq);
    http_free(&r);
    /* By action and outcome. */
    call(AUDREY, "GET", "/v1/admin/audit?action=enroll&outcome=enrolled&instance=audit-1", NULL,
         200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 1);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/audit?outcome=forbidden&limit=10000", NULL, 200, &r);
    events = json_object_get(r.json, "events");
    assert_true(json_array_size(events) >= 1); /* the auditor's refused writes */
    size_t k;
    json_t *event;
    json_array_foreach(events, k, event)
    {
        assert_string_equal(str(event, "outcome"), "forbidden");
    }
    http_free(&r);
    /* By time: since the newest event before; until the epoch's start finds nothing. */
    snprintf(path, sizeof(path), "/v1/admin/audit?since=%s&action=admin.instance_disable", since);
    call(AUDREY, "GET", path, NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 1);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/audit?until=2000-01-01T00:00:00Z", NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 0);
    http_free(&r);
    /* Paging. */
    call(AUDREY, "GET", "/v1/admin/audit?instance=audit-1&limit=2", NULL, 200, &r);
    json_int_t next = num(r.json, "next_after");
    http_free(&r);
    snprintf(path, sizeof(path), "/v1/admin/audit?instance=audit-1&limit=2&after=%lld",
             (long long)next);
    call(AUDREY, "GET", path, NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 1);
    assert_true(json_is_null(json_object_get(r.json, "next_after")));
    http_free(&r);
    /* Bad parameters. */
    const char *bad[] = {
        "/v1/admin/audit?since=yesterday", "/v1/admin/audit?until=2024-02-30T00:00:00Z",
        "/v1/admin/audit?limit=0",         "/v1/admin/audit?after=-1",
        "/v1/admin/audit?instance=a%20b",  "/v1/admin/audit?last=5&action=enroll",
        "/v1/admin/audit?verdict=ok"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call(AUDREY, "GET", bad[i], NULL, 400, &r);
        http_free(&r);
    }

    /* Export: JSON Lines, the same events as the search. */
    call_typed(AUDREY, "GET", "/v1/admin/audit/export?instance=audit-1", NULL, NULL, 200, &r);
    assert_string_equal(r.content_type, "application/x-ndjson");
    size_t lines = 0;
    for (char *line = strtok(r.body, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *one = json_loads(line, 0, NULL);
        assert_non_null(one);
        assert_string_equal(str(one, "instance"), "audit-1");
        json_decref(one);
        lines++;
    }
    assert_int_equal(lines, 3);
    assert_string_equal(r.next_after, "");
    http_free(&r);
    call_typed(AUDREY, "GET", "/v1/admin/audit/export?since=never", NULL, NULL, 400, &r);
    http_free(&r);
}

/* ---- KBS keys ---- */

/* A fresh EC public key as PEM. */
static char *ec_public_pem(const char *curve)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(key);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)len);
    BIO_free(bio);
    EVP_PKEY_free(key);
    return out;
}

/* SHA-256 of the DER SubjectPublicKeyInfo of a PEM public key, in hex (computed here,
 * independently of the daemon). */
static void fingerprint_of(const char *pem, char out[65])
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    assert_non_null(key);
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    assert_true(len > 0);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)len, digest);
    vt_hex_encode(digest, sizeof(digest), out, 65);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    BIO_free(bio);
}

static char *json_body(const char *key, const char *value)
{
    json_t *doc = json_pack("{s:s}", key, value);
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return out;
}

static void test_kbs_keys(void **state)
{
    (void)state;
    http_result r;
    /* This service's key: the public half of <state>/kbs-key.pem. */
    char path[256];
    snprintf(path, sizeof(path), "%s/kbs-key.pem", fx.state);
    EVP_PKEY *own = NULL;
    uint8_t digest[KBS_KEY_FINGERPRINT_LEN];
    char own_fp[65];
    assert_int_equal(kbs_key_load(path, &own, NULL), VTPMCA_OK);
    assert_int_equal(kbs_key_fingerprint(own, digest, NULL), VTPMCA_OK);
    vt_hex_encode(digest, sizeof(digest), own_fp, sizeof(own_fp));
    EVP_PKEY_free(own);
    call(AUDREY, "GET", "/v1/admin/kbs-key", NULL, 200, &r);
    assert_string_equal(str(r.json, "fingerprint"), own_fp);
    assert_string_equal(str(r.json, "alg"), "ES384");
    char fp[65];
    fingerprint_of(str(r.json, "pem"), fp);
    assert_string_equal(fp, own_fp);
    char *own_body = json_body("pem", str(r.json, "pem"));
    http_free(&r);

    call(AUDREY, "GET", "/v1/admin/kbs-keys/trusted", NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "keys")), 0);
    http_free(&r);

    /* Trust a peer: a file in trusted_kbs_keys_dir, listed; again: nothing new. */
    char *peer = ec_public_pem("P-256");
    char peer_fp[65];
    fingerprint_of(peer, peer_fp);
    char *body = json_body("pem", peer);
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", body, 201, &r);
    assert_string_equal(str(r.json, "fingerprint"), peer_fp);
    assert_string_equal(str(r.json, "alg"), "ES256");
    assert_false(json_is_true(json_object_get(r.json, "already_trusted")));
    http_free(&r);
    char file[300];
    snprintf(file, sizeof(file), "%s/%s.pem", fx.trusted, peer_fp);
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    assert_int_equal(vt_file_read(file, 1 << 16, &stored, &stored_len, NULL), VTPMCA_OK);
    assert_string_equal((char *)stored, peer);
    free(stored);
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", body, 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "already_trusted")));
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/kbs-keys/trusted", NULL, 200, &r);
    json_t *keys = json_object_get(r.json, "keys");
    assert_int_equal(json_array_size(keys), 1);
    assert_string_equal(str(json_array_get(keys, 0), "fingerprint"), peer_fp);
    http_free(&r);

    /* Refused: the own key, garbage, a private key, an RSA key. */
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", own_body, 409, &r);
    expect_error(&r, "conflict", "own KBS key");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", "{\"pem\":\"hello\"}", 400, &r);
    expect_error(&r, "invalid_key", NULL);
    http_free(&r);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *rsa_pem = NULL;
    long rsa_len = BIO_get_mem_data(bio, &rsa_pem);
    char *rsa_text = strndup(rsa_pem, (size_t)rsa_len);
    BIO_free(bio);
    char *rsa_body = json_body("pem", rsa_text);
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", rsa_body, 400, &r);
    expect_error(&r, "invalid_key", "P-256 or P-384");
    http_free(&r);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL);
    char *private_pem = NULL;
    long private_len = BIO_get_mem_data(bio, &private_pem);
    char *private_text = strndup(private_pem, (size_t)private_len);
    BIO_free(bio);
    char *private_body = json_body("pem", private_text);
    call(ALICE, "POST", "/v1/admin/kbs-keys/trusted", private_body, 400, &r);
    http_free(&r);
    EVP_PKEY_free(rsa);
    free(rsa_text);
    free(rsa_body);
    free(private_text);
    free(private_body);
    call(AUDREY, "GET", "/v1/admin/kbs-keys/trusted", NULL, 200, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "keys")), 1);
    http_free(&r);

    /* Untrust: the file goes; again: unknown; a bad fingerprint. */
    char del[200];
    snprintf(del, sizeof(del), "/v1/admin/kbs-keys/trusted/%s", peer_fp);
    call(ALICE, "DELETE", del, NULL, 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "removed")));
    http_free(&r);
    assert_int_not_equal(access(file, F_OK), 0);
    call(ALICE, "DELETE", del, NULL, 404, &r);
    expect_error(&r, "unknown_kbs_key", NULL);
    http_free(&r);
    call(ALICE, "DELETE", "/v1/admin/kbs-keys/trusted/abcd", NULL, 400, &r);
    http_free(&r);
    free(peer);
    free(body);
    free(own_body);
}

/* ---- Ledger ---- */

static void test_ledger_show_clear(void **state)
{
    (void)state;
    http_result r;
    call(AUDREY, "GET", "/v1/admin/ledger/" LOCKED_INSTANCE, NULL, 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "has_entry")));
    assert_string_equal(str(r.json, "counter"), "00000000000000000000000000000005");
    assert_string_equal(str(r.json, "origin"), "00000000000000000000000000000005");
    assert_int_equal(strlen(str(r.json, "root")), 64);
    assert_true(json_is_true(json_object_get(r.json, "locked")));
    assert_true(json_is_true(json_object_get(r.json, "require_admin_clear")));
    assert_int_equal(num(r.json, "rollback_refusals"), 1);
    assert_int_equal(num(r.json, "fork_refusals"), 0);
    http_free(&r);

    /* Refusals change nothing. */
    call(ALICE, "POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/clear", "{\"reset\":1}", 400, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/require-admin-clear", "{}", 400, &r);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/ledger/nobody", NULL, 404, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/ledger/nobody/clear", "{}", 404, &r);
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/ledger/nobody/require-admin-clear", "{\"on\":true}", 404, &r);
    expect_error(&r, "unknown_instance", NULL);
    http_free(&r);
    call(AUDREY, "GET", "/v1/admin/ledger/" LOCKED_INSTANCE, NULL, 200, &r);
    assert_true(json_is_true(json_object_get(r.json, "locked")));
    http_free(&r);

    /* Unlock, keeping the entry; turn the setting off; then forget the entry. */
    call(ALICE, "POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/clear", "{\"reset\":false}", 200, &r);
    assert_false(json_is_true(json_object_get(r.json, "locked")));
    assert_string_equal(str(r.json, "counter"), "00000000000000000000000000000005");
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/require-admin-clear",
         "{\"on\":false}", 200, &r);
    assert_false(json_is_true(json_object_get(r.json, "require_admin_clear")));
    http_free(&r);
    call(ALICE, "POST", "/v1/admin/ledger/" LOCKED_INSTANCE "/clear", "{\"reset\":true}", 200, &r);
    assert_false(json_is_true(json_object_get(r.json, "has_entry")));
    assert_true(json_is_null(json_object_get(r.json, "counter")));
    assert_int_equal(num(r.json, "rollback_refusals"), 1); /* counts are kept */
    http_free(&r);
    /* Each change is in the audit log under the instance. */
    call(AUDREY, "GET", "/v1/admin/audit?instance=" LOCKED_INSTANCE "&action=admin.ledger_clear",
         NULL, 200, &r);
    json_t *events = json_object_get(r.json, "events");
    assert_int_equal(json_array_size(events), 3); /* one refused, two done */
    assert_string_equal(str(json_array_get(events, 0), "outcome"), "refused");
    assert_non_null(strstr(str(json_array_get(events, 2), "detail"), "reset"));
    http_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_token_and_expired),
        cmocka_unit_test(test_auditor_reads_but_may_not_write),
        cmocka_unit_test(test_enroll_show_list),
        cmocka_unit_test(test_disable_enable_reenroll),
        cmocka_unit_test(test_wrap_key),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_bulk_bad_rows),
        cmocka_unit_test(test_bulk_10000_over_http),
        cmocka_unit_test(test_audit_search_and_export),
        cmocka_unit_test(test_kbs_keys),
        cmocka_unit_test(test_ledger_show_clear),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
