/* End-to-end tests of the CA's public routes on the real vtpmcad (127.0.0.1, ephemeral port),
 * spoken to with libcurl: GET /v1/ca/chain (PEM, and the certs-only CMS that the AIA
 * caIssuers URL of issued certificates names) and GET /v1/ca/crl (DER, signed by the issuing
 * CA, cached, reissued after revocations made through the store API or the vtpmca CLI on the
 * daemon's database while it runs, and once crl_refresh_s has passed). Everything is checked
 * with OpenSSL and cross-checked with the openssl command line. Also: a daemon without a CA
 * answers 503 ca_not_initialized, one whose CA does not open refuses to start, and the admin
 * API's certificate routes (list, show, revoke; roles, errors, audit) through the vtpmca CLI
 * in remote mode, compared with its offline mode on the same database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "../support/http_capture.h"
#include "../support/vtpmcad_runner.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/crl.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/store.h"

#define FAST_REFRESH_S "1"
#define FAST_NEXT_UPDATE_S 60

static struct {
    char dir[64];
    char ca_state[128], ca_dir[160], db[160];
    char fast_state[128], noca_state[128], broken_state[128];
    char issuing_pem[192];
    char keys_dir[128], alice_key[160], audrey_key[160]; /* admin and auditor */
    EVP_PKEY *alice;
    vtpmcad_proc ca_daemon;   /* state with a CA, default CRL settings */
    vtpmcad_proc fast_daemon; /* the same CA (--ca-dir), CRL reissued every second */
    vtpmcad_proc noca_daemon; /* state without a CA */
    ca_ctx *ca;               /* the CA as the tests read it from its files */
    store *store;             /* the ca_daemon's database, opened beside it */
} fx;

/* ---- HTTP ---- */

typedef struct {
    long status;
    char content_type[128];
    uint8_t *body;
    size_t len;
} http_answer;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    http_answer *a = user;
    char *text = (char *)a->body;
    size_t taken = http_capture_append(&text, &a->len, data, size * n);
    a->body = (uint8_t *)text;
    return taken;
}

/* method on url (absolute, or a path on the ca_daemon), with a bearer token and a JSON body
 * when given. */
static void http_with(const char *method, const char *url, const char *token, const char *body,
                      http_answer *a)
{
    memset(a, 0, sizeof(*a));
    char full[512], auth[ADMIN_TOKEN_MAX_LEN + 32];
    if (url[0] == '/')
        snprintf(full, sizeof(full), "%s%s", fx.ca_daemon.url, url);
    else
        snprintf(full, sizeof(full), "%s", url);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *headers = NULL;
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(curl, CURLOPT_URL, full);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, full, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->status);
    char *type = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(a->content_type, sizeof(a->content_type), "%s", type != NULL ? type : "");
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void http(const char *method, const char *url, http_answer *a)
{
    http_with(method, url, NULL, NULL, a);
}

/* An admin API call as alice, with a fresh token (each is single-use). */
static void http_admin(const char *method, const char *path, const char *body, http_answer *a)
{
    char *token = NULL;
    assert_int_equal(
        admin_token_sign(fx.alice, "alice", ADMIN_ROLE_ADMIN, time(NULL), 60, &token, NULL),
        VTPMCA_OK);
    http_with(method, path, token, body, a);
    free(token);
}

static void answer_free(http_answer *a)
{
    free(a->body);
    memset(a, 0, sizeof(*a));
}

/* A JSON error answer: {"error": code, "message": ...}. */
static void assert_json_error(const http_answer *a, long status, const char *code)
{
    assert_int_equal(a->status, status);
    assert_string_equal(a->content_type, "application/json");
    json_t *body = json_loadb((const char *)a->body, a->len, 0, NULL);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "error")), code);
    assert_true(json_is_string(json_object_get(body, "message")));
    json_decref(body);
}

/* ---- Fixture ---- */

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static int start(vtpmcad_proc *d, const char *name, const char *state, const char *const *extra)
{
    vtpmca_diag diag = {{0}};
    if (vtpmcad_start(d, fx.dir, name, state, extra, &diag) != VTPMCA_OK) {
        fprintf(stderr, "vtpmcad %s: %s\n", name, diag.msg);
        return -1;
    }
    return 0;
}

/* Writes NAME.pem (0600) into the work dir and NAME.pub.pem into pub_dir. */
static EVP_PKEY *make_admin_key(const char *name, const char *pub_dir, char *key_path,
                                size_t key_path_size)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL, pub_path[256];
    size_t len = 0;
    if (admin_key_generate(ADMIN_KEY_ED25519, &key, NULL) != VTPMCA_OK)
        return NULL;
    snprintf(key_path, key_path_size, "%s/%s.pem", fx.dir, name);
    snprintf(pub_path, sizeof(pub_path), "%s/%s.pub.pem", pub_dir, name);
    bool ok = admin_key_to_pem(key, true, &pem, &len, NULL) == VTPMCA_OK &&
              vt_file_write_atomic(key_path, pem, len, 0600, NULL) == VTPMCA_OK;
    if (pem != NULL)
        OPENSSL_clear_free(pem, len);
    pem = NULL;
    ok = ok && admin_key_to_pem(key, false, &pem, &len, NULL) == VTPMCA_OK &&
         vt_file_write_atomic(pub_path, pem, len, 0644, NULL) == VTPMCA_OK;
    OPENSSL_free(pem);
    if (!ok) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* alice (role admin) and audrey (auditors/, read-only). */
static int make_admin_keys(void)
{
    char auditors[192];
    snprintf(fx.keys_dir, sizeof(fx.keys_dir), "%s/admin-keys", fx.dir);
    snprintf(auditors, sizeof(auditors), "%s/%s", fx.keys_dir, ADMIN_AUDITORS_SUBDIR);
    if (vt_mkdir_p(auditors, 0755, NULL) != VTPMCA_OK)
        return -1;
    fx.alice = make_admin_key("alice", fx.keys_dir, fx.alice_key, sizeof(fx.alice_key));
    EVP_PKEY *audrey = make_admin_key("audrey", auditors, fx.audrey_key, sizeof(fx.audrey_key));
    EVP_PKEY_free(audrey);
    return fx.alice != NULL && audrey != NULL ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "capub") != 0)
        return -1;
    snprintf(fx.ca_state, sizeof(fx.ca_state), "%s/ca-state", fx.dir);
    snprintf(fx.ca_dir, sizeof(fx.ca_dir), "%s/ca", fx.ca_state);
    snprintf(fx.db, sizeof(fx.db), "%s/vtpmca.db", fx.ca_state);
    snprintf(fx.fast_state, sizeof(fx.fast_state), "%s/fast-state", fx.dir);
    snprintf(fx.noca_state, sizeof(fx.noca_state), "%s/noca-state", fx.dir);
    snprintf(fx.broken_state, sizeof(fx.broken_state), "%s/broken-state", fx.dir);
    snprintf(fx.issuing_pem, sizeof(fx.issuing_pem), "%s/%s", fx.ca_dir, CA_ISSUING_CERT_FILE);
    /* vtpmcad's default place for the CA: <state_dir>/ca. */
    fx.ca = ca_fixture_make_ca(fx.ca_dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P256);
    if (fx.ca == NULL)
        return -1;
    if (make_admin_keys() != 0)
        return -1;
    const char *const ca_args[] = {"--admin-keys-dir", fx.keys_dir, NULL};
    const char *const fast_args[] = {
        "--ca-dir", fx.ca_dir, "--crl-refresh-s", FAST_REFRESH_S, "--crl-next-update-s",
        "60",       NULL};
    if (start(&fx.ca_daemon, "ca", fx.ca_state, ca_args) != 0 ||
        start(&fx.fast_daemon, "fast", fx.fast_state, fast_args) != 0 ||
        start(&fx.noca_daemon, "noca", fx.noca_state, NULL) != 0)
        return -1;
    vtpmca_diag diag = {{0}};
    if (store_open(fx.db, &fx.store, &diag) != VTPMCA_OK) {
        fprintf(stderr, "store: %s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* A clean exit: also what the sanitizer build's leak checker reports through. */
    int failed = vtpmcad_stop(&fx.ca_daemon) != 0;
    failed |= vtpmcad_stop(&fx.fast_daemon) != 0;
    failed |= vtpmcad_stop(&fx.noca_daemon) != 0;
    if (failed)
        fprintf(stderr, "a vtpmcad did not exit cleanly; see the logs in %s\n", fx.dir);
    store_close(fx.store);
    ca_free(fx.ca);
    EVP_PKEY_free(fx.alice);
    if (!failed)
        ca_fixture_rmtree(fx.dir);
    return failed ? -1 : 0;
}

/* Issues an EK certificate whose CRL and AIA URLs name the ca_daemon, and records it in the
 * daemon's database (as the issuance service does). */
static void issue_cert(char serial[2 * CA_SERIAL_LEN + 1], X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    ek_profile_config profile;
    ca_fixture_profile(&profile);
    profile.base_url = fx.ca_daemon.url;
    ek_cert_request req = {.kind = EK_CERT_EK, .subject_key = key, .identity = &id};
    ek_cert_result res;
    vtpmca_diag diag = {{0}};
    if (ek_cert_issue(fx.ca, &profile, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("issue: %s", diag.msg);
    store_cert rec;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.serial, sizeof(rec.serial), "%s", res.serial_hex);
    snprintf(rec.instance_id, sizeof(rec.instance_id), "%s", CA_FIXTURE_INSTANCE);
    snprintf(rec.key_name, sizeof(rec.key_name), "000b%064x", 0); /* any well-formed name */
    rec.kind = STORE_CERT_EK;
    rec.format = STORE_CERT_X509;
    rec.not_before = res.not_before;
    rec.not_after = res.not_after;
    rec.status = STORE_CERT_ISSUED;
    rec.der = res.der;
    rec.der_len = res.der_len;
    if (store_cert_put(fx.store, &rec, &diag) != VTPMCA_OK)
        fail_msg("store: %s", diag.msg);
    memcpy(serial, res.serial_hex, sizeof(res.serial_hex));
    if (cert_out != NULL) {
        const unsigned char *p = res.der;
        *cert_out = d2i_X509(NULL, &p, (long)res.der_len);
        assert_non_null(*cert_out);
    }
    ek_cert_result_free(&res);
    EVP_PKEY_free(key);
}

/* ---- CRL helpers ---- */

static X509_CRL *fetch_crl(const char *base_url)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/ca/crl", base_url);
    http_answer a;
    http("GET", url, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.content_type, "application/pkix-crl");
    const unsigned char *p = a.body;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)a.len);
    assert_non_null(crl);
    assert_ptr_equal(p, a.body + a.len);
    answer_free(&a);
    /* Signed by the issuing CA, and names it. */
    const X509 *issuing = ca_cert(fx.ca, CA_CERT_ISSUING);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(issuing)), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuing)), 0);
    return crl;
}

static uint64_t crl_number(const X509_CRL *crl)
{
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(n);
    uint64_t value = 0;
    assert_int_equal(ASN1_INTEGER_get_uint64(&value, n), 1);
    ASN1_INTEGER_free(n);
    return value;
}

static int64_t asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return (int64_t)timegm(&tm);
}

/* The reason of serial's entry: -1 when the CRL does not list it, else the reason code
 * (0 unspecified, the default when the entry has no reasonCode). */
static int crl_lists(X509_CRL *crl, const char *serial_hex)
{
    uint8_t serial[CA_SERIAL_LEN];
    assert_int_equal(vt_hex_decode_fixed(serial_hex, serial, sizeof(serial)), VTPMCA_OK);
    ASN1_INTEGER *want = ASN1_INTEGER_new();
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    assert_non_null(BN_to_ASN1_INTEGER(bn, want));
    BN_free(bn);
    X509_REVOKED *entry = NULL;
    int found = X509_CRL_get0_by_serial(crl, &entry, want);
    ASN1_INTEGER_free(want);
    if (found != 1)
        return -1;
    ASN1_ENUMERATED *code = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL);
    int reason = code != NULL ? (int)ASN1_ENUMERATED_get(code) : 0;
    ASN1_ENUMERATED_free(code);
    return reason;
}

/* ---- Tests ---- */

static void test_without_ca_routes_answer_503(void **state)
{
    (void)state;
    const char *paths[] = {"/v1/ca/chain", "/v1/ca/chain?format=der", "/v1/ca/crl"};
    for (size_t i = 0; i < 3; i++) {
        char url[128];
        snprintf(url, sizeof(url), "%s%s", fx.noca_daemon.url, paths[i]);
        http_answer a;
        http("GET", url, &a);
        assert_json_error(&a, 503, "ca_not_initialized");
        assert_non_null(strstr((const char *)a.body, "vtpmca ca init"));
        answer_free(&a);
    }
    char *log = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(fx.noca_daemon.log_path, 1 << 20, (uint8_t **)&log, &len, NULL),
                     VTPMCA_OK);
    assert_non_null(strstr(log, "ca.absent"));
    free(log);
}

static void test_chain_pem_is_issuing_then_root(void **state)
{
    (void)state;
    const char *urls[] = {"/v1/ca/chain", "/v1/ca/chain?format=pem"};
    for (size_t u = 0; u < 2; u++) {
        http_answer a;
        http("GET", urls[u], &a);
        assert_int_equal(a.status, 200);
        assert_string_equal(a.content_type, "application/pem-certificate-chain");
        BIO *bio = BIO_new_mem_buf(a.body, (int)a.len);
        const ca_cert_which order[] = {CA_CERT_ISSUING, CA_CERT_ROOT};
        for (size_t i = 0; i < 2; i++) {
            X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
            assert_non_null(cert);
            assert_int_equal(X509_cmp(cert, ca_cert(fx.ca, order[i])), 0);
            X509_free(cert);
        }
        assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL)); /* exactly two */
        BIO_free(bio);
        /* Byte for byte what the CA files say. */
        char *pem = NULL;
        size_t pem_len = 0;
        assert_int_equal(ca_chain_pem(fx.ca, &pem, &pem_len, NULL), VTPMCA_OK);
        assert_int_equal(a.len, pem_len);
        assert_memory_equal(a.body, pem, pem_len);
        free(pem);
        answer_free(&a);
    }
}

/* The DER chain is the certs-only CMS of docs/ca.md, found by following the AIA caIssuers
 * URL of an issued certificate; openssl reads it too. */
static void test_chain_der_is_what_aia_names(void **state)
{
    (void)state;
    char serial[2 * CA_SERIAL_LEN + 1];
    X509 *cert = NULL;
    issue_cert(serial, &cert);
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(cert, NID_info_access, NULL, NULL);
    assert_non_null(aia);
    const char *ca_issuers = NULL;
    for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
        ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
        if (OBJ_obj2nid(ad->method) == NID_ad_ca_issuers && ad->location->type == GEN_URI)
            ca_issuers =
                (const char *)ASN1_STRING_get0_data(ad->location->d.uniformResourceIdentifier);
    }
    assert_non_null(ca_issuers);
    http_answer a;
    http("GET", ca_issuers, &a);
    AUTHORITY_INFO_ACCESS_free(aia);
    X509_free(cert);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.content_type, "application/pkcs7-mime");
    const unsigned char *p = a.body;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)a.len);
    assert_non_null(p7);
    assert_true(PKCS7_type_is_signed(p7));
    STACK_OF(X509) *certs = p7->d.sign->cert;
    assert_int_equal(sk_X509_num(certs), 2);
    bool seen_root = false, seen_issuing = false;
    for (int i = 0; i < 2; i++) {
        const X509 *c = sk_X509_value(certs, i);
        seen_root |= X509_cmp(c, ca_cert(fx.ca, CA_CERT_ROOT)) == 0;
        seen_issuing |= X509_cmp(c, ca_cert(fx.ca, CA_CERT_ISSUING)) == 0;
    }
    assert_true(seen_root && seen_issuing);
    PKCS7_free(p7);

    char path[192], cmd[512];
    char *out = NULL;
    path_in(path, sizeof(path), fx.dir, "chain.p7");
    assert_int_equal(ca_fixture_write(path, a.body, a.len), 0);
    snprintf(cmd, sizeof(cmd), "openssl pkcs7 -inform DER -in '%s' -print_certs -noout", path);
    assert_int_equal(ca_fixture_run(cmd, &out), 0);
    assert_non_null(strstr(out, "vtpmca EK Root CA"));
    assert_non_null(strstr(out, "vtpmca EK Issuing CA"));
    free(out);
    answer_free(&a);
}

static void test_chain_refuses_bad_requests(void **state)
{
    (void)state;
    http_answer a;
    http("GET", "/v1/ca/chain?format=xml", &a);
    assert_json_error(&a, 400, "invalid_request");
    answer_free(&a);
    http("GET", "/v1/ca/chain?format=der&x=1", &a);
    assert_json_error(&a, 400, "invalid_request");
    assert_non_null(strstr((const char *)a.body, "'x'"));
    answer_free(&a);
    http("GET", "/v1/ca/crl?format=pem", &a);
    assert_json_error(&a, 400, "invalid_request");
    answer_free(&a);
    http("POST", "/v1/ca/chain", &a);
    assert_json_error(&a, 405, "method_not_allowed");
    answer_free(&a);
    http("DELETE", "/v1/ca/crl", &a);
    assert_json_error(&a, 405, "method_not_allowed");
    answer_free(&a);
}

/* The CRL verifies with the issuing CA (OpenSSL and the openssl CLI), is valid for
 * crl_next_update_s, and is served from the cache while nothing changes. */
static void test_crl_verifies_and_is_cached(void **state)
{
    (void)state;
    X509_CRL *first = fetch_crl(fx.ca_daemon.url);
    X509_CRL *second = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_number(first), crl_number(second));
    assert_int_equal(X509_CRL_cmp(first, second), 0);
    int64_t this_update = asn1_time_unix(X509_CRL_get0_lastUpdate(first));
    int64_t next_update = asn1_time_unix(X509_CRL_get0_nextUpdate(first));
    assert_int_equal(next_update - this_update, CRL_NEXT_UPDATE_DEFAULT);
    assert_true(llabs((long long)(this_update - time(NULL))) < 60);

    unsigned char *der = NULL;
    int len = i2d_X509_CRL(first, &der);
    assert_true(len > 0);
    char path[192], cmd[512];
    char *out = NULL;
    path_in(path, sizeof(path), fx.dir, "crl.der");
    assert_int_equal(ca_fixture_write(path, der, (size_t)len), 0);
    OPENSSL_free(der);
    snprintf(cmd, sizeof(cmd), "openssl crl -inform DER -in '%s' -CAfile '%s' -noout", path,
             fx.issuing_pem);
    assert_int_equal(ca_fixture_run(cmd, &out), 0);
    assert_non_null(strstr(out, "verify OK"));
    free(out);
    /* The root's key does not verify it: the CRL is the issuing CA's. */
    assert_int_not_equal(X509_CRL_verify(first, X509_get0_pubkey(ca_cert(fx.ca, CA_CERT_ROOT))), 1);
    X509_CRL_free(first);
    X509_CRL_free(second);
}

/* A revocation written to the database by another process shows up in the next CRL. */
static void test_crl_lists_store_revocation(void **state)
{
    (void)state;
    char serial[2 * CA_SERIAL_LEN + 1];
    issue_cert(serial, NULL);
    X509_CRL *before = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_lists(before, serial), -1); /* issued, not revoked */
    vtpmca_diag diag = {{0}};
    assert_int_equal(crl_revoke(fx.store, serial, VT_CRL_REASON_KEY_COMPROMISE, 0, &diag),
                     VTPMCA_OK);
    X509_CRL *after = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_lists(after, serial), VT_CRL_REASON_KEY_COMPROMISE);
    assert_true(crl_number(after) > crl_number(before));
    /* Unchanged again: the new CRL is cached. */
    X509_CRL *again = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_number(again), crl_number(after));
    /* The daemon with the same CA on another database knows nothing of it. */
    X509_CRL *other = fetch_crl(fx.fast_daemon.url);
    assert_int_equal(crl_lists(other, serial), -1);
    X509_CRL_free(before);
    X509_CRL_free(after);
    X509_CRL_free(again);
    X509_CRL_free(other);
}

/* `vtpmca cert revoke` on the database of the running daemon, the CRL URL named by the
 * certificate itself, and `vtpmca crl show` agreeing with the daemon. */
static void test_crl_lists_cli_revocation(void **state)
{
    (void)state;
    char serial[2 * CA_SERIAL_LEN + 1];
    X509 *cert = NULL;
    issue_cert(serial, &cert);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
    assert_non_null(dps);
    GENERAL_NAME *gn =
        sk_GENERAL_NAME_value(sk_DIST_POINT_value(dps, 0)->distpoint->name.fullname, 0);
    char crl_url[256];
    snprintf(crl_url, sizeof(crl_url), "%s",
             (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier));
    CRL_DIST_POINTS_free(dps);
    X509_free(cert);
    char want[256];
    snprintf(want, sizeof(want), "%s/v1/ca/crl", fx.ca_daemon.url);
    assert_string_equal(crl_url, want);

    const char *args[] = {"cert", "revoke", serial, "--db", fx.db, "--reason", "superseded", NULL};
    char *out = NULL, *err = NULL;
    int rc = run_program("vtpmca", args, 20, &out, &err);
    if (rc != 0)
        fail_msg("vtpmca cert revoke: exit %d: %s", rc, err != NULL ? err : "");
    free(out);
    free(err);
    http_answer a;
    http("GET", crl_url, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    X509_CRL *crl = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_lists(crl, serial), VT_CRL_REASON_SUPERSEDED);

    const char *show[] = {"crl", "show", "--db", fx.db, "--ca-dir", fx.ca_dir, "--json", NULL};
    rc = run_program("vtpmca", show, 20, &out, &err);
    if (rc != 0)
        fail_msg("vtpmca crl show: exit %d: %s", rc, err != NULL ? err : "");
    json_t *shown = json_loads(out, 0, NULL);
    assert_non_null(shown);
    json_t *revoked = json_object_get(shown, "revoked");
    STACK_OF(X509_REVOKED) *entries = X509_CRL_get_REVOKED(crl);
    assert_int_equal(json_array_size(revoked), (size_t)sk_X509_REVOKED_num(entries));
    bool found = false;
    for (size_t i = 0; i < json_array_size(revoked); i++) {
        json_t *item = json_array_get(revoked, i);
        if (strcmp(json_string_value(json_object_get(item, "serial")), serial) == 0) {
            assert_string_equal(json_string_value(json_object_get(item, "reason")), "superseded");
            found = true;
        }
    }
    assert_true(found);
    /* The CLI took a CRL number of the same counter: the daemon's numbers keep increasing. */
    assert_true((uint64_t)json_integer_value(json_object_get(shown, "crl_number")) >
                crl_number(crl));
    json_decref(shown);
    free(out);
    free(err);
    X509_CRL_free(crl);
}

/* crl_refresh_s: a CRL is reissued once it is that old, even without revocations. */
static void test_crl_reissued_after_refresh(void **state)
{
    (void)state;
    X509_CRL *first = fetch_crl(fx.fast_daemon.url);
    int64_t this_update = asn1_time_unix(X509_CRL_get0_lastUpdate(first));
    assert_int_equal(asn1_time_unix(X509_CRL_get0_nextUpdate(first)) - this_update,
                     FAST_NEXT_UPDATE_S);
    usleep(1100 * 1000);
    X509_CRL *second = fetch_crl(fx.fast_daemon.url);
    assert_true(crl_number(second) > crl_number(first));
    assert_true(asn1_time_unix(X509_CRL_get0_lastUpdate(second)) > this_update);
    X509_CRL_free(first);
    X509_CRL_free(second);
}

/* A CA directory that exists but does not open stops the start with a clear reason, rather
 * than a daemon that silently answers 503. */
static void test_unusable_ca_refuses_start(void **state)
{
    (void)state;
    char ca_dir[192], cmd[1024];
    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", fx.broken_state);
    /* The CA's files, with an issuing key that others may read. */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s' && cp '%s'/*.pem '%s/issuing-ca.key' '%s/' && "
             "chmod 644 '%s/issuing-ca.key'",
             ca_dir, fx.ca_dir, fx.ca_dir, ca_dir, ca_dir);
    assert_int_equal(ca_fixture_run(cmd, NULL), 0);
    vtpmcad_proc d;
    vtpmca_diag diag = {{0}};
    assert_int_not_equal(vtpmcad_start(&d, fx.dir, "broken", fx.broken_state, NULL, &diag),
                         VTPMCA_OK);
    assert_non_null(strstr(diag.msg, "ca_dir"));
}

/* ---- The admin API's certificate routes, through the CLI in both modes ---- */

/* Runs vtpmca; returns its exit status with stdout and stderr in *out and *err. */
static int cli(const char *const *args, char **out, char **err)
{
    return run_program("vtpmca", args, 20, out, err);
}

/* The same command offline (--db) and remote (--server, with the key given) prints the same. */
static char *same_in_both_modes(const char *const *command, const char *key)
{
    const char *local[16], *remote[16];
    size_t n = 0;
    for (; command[n] != NULL; n++)
        local[n] = remote[n] = command[n];
    local[n] = "--db", local[n + 1] = fx.db, local[n + 2] = NULL;
    remote[n] = "--server", remote[n + 1] = fx.ca_daemon.url, remote[n + 2] = "--admin-key";
    remote[n + 3] = key, remote[n + 4] = NULL;
    char *local_out = NULL, *remote_out = NULL, *err = NULL;
    int rc = cli(local, &local_out, &err);
    if (rc != 0)
        fail_msg("offline %s %s: exit %d: %s", command[0], command[1], rc, err);
    free(err);
    rc = cli(remote, &remote_out, &err);
    if (rc != 0)
        fail_msg("remote %s %s: exit %d: %s", command[0], command[1], rc, err);
    free(err);
    assert_string_equal(remote_out, local_out);
    free(remote_out);
    return local_out;
}

static void test_admin_cert_routes_match_offline(void **state)
{
    (void)state;
    char serial[2 * CA_SERIAL_LEN + 1];
    issue_cert(serial, NULL);
    const char *list[] = {"cert", "list", "--json", NULL};
    char *out = same_in_both_modes(list, fx.audrey_key);
    assert_non_null(strstr(out, serial));
    free(out);
    const char *list_instance[] = {"cert", "list", "--instance", CA_FIXTURE_INSTANCE, NULL};
    out = same_in_both_modes(list_instance, fx.audrey_key);
    assert_non_null(strstr(out, serial));
    free(out);
    const char *show[] = {"cert", "show", serial, "--json", NULL};
    out = same_in_both_modes(show, fx.audrey_key);
    assert_non_null(strstr(out, "\"identity\""));
    assert_non_null(strstr(out, CA_FIXTURE_FLEET));
    free(out);
    const char *pem[] = {"cert", "show", serial, "--pem", NULL};
    out = same_in_both_modes(pem, fx.audrey_key);
    assert_non_null(strstr(out, "-----BEGIN CERTIFICATE-----"));
    free(out);

    const char *revoke[] = {
        "cert",     "revoke",         serial,        "--reason",   "cACompromise",
        "--server", fx.ca_daemon.url, "--admin-key", fx.alice_key, "--json",
        NULL};
    char *err = NULL;
    int rc = cli(revoke, &out, &err);
    if (rc != 0)
        fail_msg("remote revoke: exit %d: %s", rc, err);
    json_t *answer = json_loads(out, 0, NULL);
    assert_non_null(answer);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "revoked");
    assert_string_equal(json_string_value(json_object_get(answer, "reason")), "cACompromise");
    json_decref(answer);
    free(out);
    free(err);
    X509_CRL *crl = fetch_crl(fx.ca_daemon.url);
    assert_int_equal(crl_lists(crl, serial), VT_CRL_REASON_CA_COMPROMISE);
    X509_CRL_free(crl);

    /* Audited once, as alice's, for the instance. */
    store_audit_filter filter = {
        .instance_id = CA_FIXTURE_INSTANCE, .action = "admin.cert_revoke", .limit = 10};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(fx.store, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 1);
    assert_string_equal(events[0].actor, "alice");
    assert_string_equal(events[0].outcome, "ok");
    assert_non_null(strstr(events[0].detail, serial));
    free(events);

    /* A second revocation is refused and the first one stays. */
    rc = cli(revoke, &out, &err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "revoked already"));
    free(out);
    free(err);
    const char *show_local[] = {"cert", "show", serial, "--db", fx.db, "--json", NULL};
    assert_int_equal(cli(show_local, &out, &err), 0);
    assert_non_null(strstr(out, "\"cACompromise\""));
    free(out);
    free(err);
}

static void test_admin_cert_routes_refusals(void **state)
{
    (void)state;
    char serial[2 * CA_SERIAL_LEN + 1], other[2 * CA_SERIAL_LEN + 1];
    issue_cert(serial, NULL);
    issue_cert(other, NULL);
    /* An auditor reads but does not revoke. */
    const char *revoke[] = {"cert",           "revoke",      serial,        "--server",
                            fx.ca_daemon.url, "--admin-key", fx.audrey_key, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(cli(revoke, &out, &err), 1);
    assert_non_null(strstr(err, "forbidden"));
    free(out);
    free(err);

    http_answer a;
    http("GET", "/v1/admin/certs", &a); /* no token */
    assert_json_error(&a, 401, "unauthorized");
    answer_free(&a);
    const char *bad_queries[] = {"?limit=0", "?limit=10001", "?limit=x", "?instance=bad%20id",
                                 "?serial=1"};
    for (size_t i = 0; i < sizeof(bad_queries) / sizeof(bad_queries[0]); i++) {
        char path[96];
        snprintf(path, sizeof(path), "/v1/admin/certs%s", bad_queries[i]);
        http_admin("GET", path, NULL, &a);
        assert_json_error(&a, 400, "invalid_request");
        answer_free(&a);
    }
    http_admin("GET", "/v1/admin/certs/4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL, &a);
    assert_json_error(&a, 404, "unknown_certificate");
    answer_free(&a);
    http_admin("POST", "/v1/admin/certs/4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/revoke", "{}", &a);
    assert_json_error(&a, 404, "unknown_certificate");
    answer_free(&a);
    char path[128];
    snprintf(path, sizeof(path), "/v1/admin/certs/%s/revoke", serial);
    const char *bad_bodies[] = {"{\"reason\":\"certificateHold\"}", "{\"reason\":4}",
                                "{\"why\":\"x\"}", "[]"};
    for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++) {
        http_admin("POST", path, bad_bodies[i], &a);
        assert_int_equal(a.status, 400);
        answer_free(&a);
    }
    /* Refused requests changed nothing. */
    store_cert cert;
    assert_int_equal(store_cert_get(fx.store, serial, &cert, NULL), VTPMCA_OK);
    assert_int_equal(cert.status, STORE_CERT_ISSUED);
    store_cert_free_fields(&cert);

    /* Paging: limit=1 after the smaller serial gives the next one. */
    const char *first = strcmp(serial, other) < 0 ? serial : other;
    snprintf(path, sizeof(path), "/v1/admin/certs?limit=1&after=%s", first);
    http_admin("GET", path, NULL, &a);
    assert_int_equal(a.status, 200);
    json_t *page = json_loadb((const char *)a.body, a.len, 0, NULL);
    json_t *certs = json_object_get(page, "certs");
    assert_int_equal(json_array_size(certs), 1);
    const char *next = json_string_value(json_object_get(json_array_get(certs, 0), "serial"));
    assert_true(strcmp(next, first) > 0);
    json_decref(page);
    answer_free(&a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_ca_routes_answer_503),
        cmocka_unit_test(test_chain_pem_is_issuing_then_root),
        cmocka_unit_test(test_chain_der_is_what_aia_names),
        cmocka_unit_test(test_chain_refuses_bad_requests),
        cmocka_unit_test(test_crl_verifies_and_is_cached),
        cmocka_unit_test(test_crl_lists_store_revocation),
        cmocka_unit_test(test_crl_lists_cli_revocation),
        cmocka_unit_test(test_crl_reissued_after_refresh),
        cmocka_unit_test(test_unusable_ca_refuses_start),
        cmocka_unit_test(test_admin_cert_routes_match_offline),
        cmocka_unit_test(test_admin_cert_routes_refusals),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return failed;
}
