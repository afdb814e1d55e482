/* Unit tests for attest/key_release.c: every outcome of the release decision, with evidence
 * from a verified synthetic report (test root + VCEK + the real verifier) and with
 * hand-filled claims (tests/support/snp_policy_fixture), the audit row of each decision
 * (never holding key bytes), failures that hand out nothing, and concurrent decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/keys_fixture.h"
#include "../support/snp_policy_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/key_release.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_verifier.h"

#define SYNTHETIC_MEASUREMENT 0x6d

/* Made once per file: RSA key generation for the test root is slow. */
static struct {
    snp_test_root *root;
    snp_roots *roots;
    snp_verifier *verifier;
    snp_evidence verified; /* from a synthetic report the verifier accepted */
} g;

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &g.root, &diag) != VTPMCA_OK)
        goto fail;
    /* The verifier trusts exactly this test root (via the directory layout it reads). */
    char dir[] = "/tmp/vtpmca-keyrelease-roots-XXXXXX";
    if (mkdtemp(dir) == NULL || snp_test_root_save(g.root, dir, &diag) != VTPMCA_OK ||
        snp_roots_new_empty(&g.roots) != VTPMCA_OK ||
        snp_roots_add_dir(g.roots, dir, &diag) != VTPMCA_OK)
        goto fail;
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        goto fail;
    snp_verifier_config config = {.roots = g.roots, .default_product = SNP_PRODUCT_MILAN};
    if (snp_verifier_new(&config, &g.verifier, &diag) != VTPMCA_OK)
        goto fail;

    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK,
                                   .tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115}};
    memset(params.chip_id, 0xc7, sizeof(params.chip_id));
    EVP_PKEY *vcek_key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (snp_test_issue_cert(g.root, &params, &vcek_key, &der, &der_len, &diag) != VTPMCA_OK)
        goto fail;
    snp_report report;
    uint8_t raw[SNP_REPORT_SIZE];
    vtpmca_err err =
        snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, params.chip_id, &params.tcb);
    memset(report.measurement, SYNTHETIC_MEASUREMENT, sizeof(report.measurement));
    memset(report.host_data, 0x44, sizeof(report.host_data));
    if (err == VTPMCA_OK)
        err = snp_test_report_sign(&report, vcek_key, raw, &diag);
    if (err == VTPMCA_OK)
        err =
            snp_verifier_verify(g.verifier, raw, sizeof(raw), der, der_len, 0, &g.verified, &diag);
    EVP_PKEY_free(vcek_key);
    free(der);
    if (err == VTPMCA_OK)
        return 0;
fail:
    fprintf(stderr, "key release test setup: %s\n", diag.msg);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    snp_verifier_free(g.verifier);
    snp_roots_free(g.roots);
    snp_test_root_free(g.root);
    return 0;
}

typedef struct {
    keys_env env;
    key_release *kr;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || keys_env_open(&f->env) != 0) {
        free(f);
        return -1;
    }
    key_release_config config = {f->env.st, f->env.vault, f->env.policies};
    if (key_release_new(&config, &f->kr, NULL) != VTPMCA_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    key_release_free(f->kr);
    keys_env_close(&f->env);
    free(f);
    return 0;
}

/* Enrolls an instance and returns its resource path (in a static-sized buffer). */
static void enroll(fixture *f, const char *id, const char *fleet, store_key_mode mode,
                   const uint8_t *host_data, char path[STORE_RESOURCE_PATH_MAX + 1])
{
    enroll_request req = {
        .instance_id = id, .fleet = fleet, .host_data = host_data, .mode = mode, .actor = "admin"};
    enroll_result res;
    vtpmca_diag diag = {{0}};
    if (enrollment_enroll(f->env.st, f->env.vault, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("enroll %s: %s", id, diag.msg);
    memcpy(path, res.resource_path, sizeof(res.resource_path));
}

static void stored_key(fixture *f, const char *id, uint8_t key[KEYVAULT_KEY_MAX], size_t *len)
{
    store_instance inst;
    assert_int_equal(store_instance_get(f->env.st, id, &inst, NULL), VTPMCA_OK);
    char context[ENROLLMENT_CONTEXT_MAX];
    assert_int_equal(enrollment_key_context(STORE_KEY_GENERATED, id, context, NULL), VTPMCA_OK);
    assert_int_equal(keyvault_unwrap(f->env.vault, inst.wrapped_key, inst.wrapped_key_len, context,
                                     key, KEYVAULT_KEY_MAX, len, NULL),
                     VTPMCA_OK);
    store_instance_free_fields(&inst);
}

static snp_evidence fixture_claims(void)
{
    snp_evidence e;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, &e), VTPMCA_OK);
    return e;
}

typedef struct {
    key_release_decision d;
    uint8_t key[KEYVAULT_KEY_MAX];
    size_t key_len;
    vtpmca_err err;
} result;

static result decide(fixture *f, const snp_evidence *e, const char *path, const uint8_t *blob,
                     size_t blob_len, const char *client)
{
    result r;
    memset(r.key, 0xee, sizeof(r.key)); /* must be wiped unless granted */
    r.key_len = 99;
    r.err =
        key_release_decide(f->kr, e, path, blob, blob_len, client, r.key, &r.key_len, &r.d, NULL);
    const uint8_t zeros[KEYVAULT_KEY_MAX] = {0};
    if (r.err == VTPMCA_OK && r.d.outcome == KEY_RELEASE_GRANTED) {
        assert_true(r.key_len >= 1 && r.key_len <= KEYVAULT_KEY_MAX);
    } else {
        assert_int_equal(r.key_len, 0);
        assert_memory_equal(r.key, zeros, sizeof(zeros));
    }
    return r;
}

/* The latest audit row: it must describe the decision and hold no key bytes. */
static store_audit_event last_audit(fixture *f)
{
    store_audit_filter filter = {.action = "key_release", .limit = STORE_LIST_MAX};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(f->env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_true(n >= 1);
    store_audit_event last = events[n - 1];
    free(events);
    return last;
}

static void assert_audited(fixture *f, const snp_evidence *e, const char *client,
                           const char *instance, const char *outcome)
{
    store_audit_event ev = last_audit(f);
    assert_string_equal(ev.action, "key_release");
    assert_string_equal(ev.actor, client);
    assert_string_equal(ev.instance_id, instance);
    assert_string_equal(ev.outcome, outcome);
    char hex[129];
    vt_hex_encode(e->report.measurement, 48, hex, sizeof(hex));
    assert_string_equal(ev.measurement, hex);
    vt_hex_encode(e->report.chip_id, 64, hex, sizeof(hex));
    assert_string_equal(ev.chip_id, hex);
    assert_true(ev.detail[0] != '\0');
}

/* Neither the key nor its hex form is in any audit row or anywhere in the database. */
static void assert_key_not_recorded(fixture *f, const uint8_t *key, size_t len)
{
    char hex[2 * KEYVAULT_KEY_MAX + 1];
    vt_hex_encode(key, len, hex, sizeof(hex));
    store_audit_filter filter = {.limit = STORE_LIST_MAX};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(f->env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    for (size_t i = 0; i < n; i++) {
        const char *fields[] = {events[i].actor,   events[i].outcome, events[i].measurement,
                                events[i].chip_id, events[i].detail,  events[i].instance_id};
        for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++)
            assert_null(strstr(fields[j], hex));
    }
    free(events);
    assert_false(keys_db_contains(&f->env, key, len));
    assert_false(keys_db_contains(&f->env, (const uint8_t *)hex, 2 * len));
}

/* Granted with evidence the real verifier produced from a signed synthetic report. */
static void test_granted_verified_evidence(void **state)
{
    fixture *f = *state;
    char measurement[97];
    fixture_hex(SYNTHETIC_MEASUREMENT, 48, measurement);
    char policy[256];
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", measurement);
    assert_int_equal(store_fleet_create(f->env.st, "synthetic", NULL, NULL), VTPMCA_OK);
    assert_int_equal(store_policy_put(f->env.st, "synthetic", policy, "admin", NULL, NULL),
                     VTPMCA_OK);
    uint8_t host_data[32];
    memset(host_data, 0x44, sizeof(host_data));
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "svsm-1", "synthetic", STORE_KEY_GENERATED, host_data, path);

    result r = decide(f, &g.verified, path, NULL, 0, "session-aa");
    assert_int_equal(r.err, VTPMCA_OK);
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
    assert_string_equal(r.d.instance_id, "svsm-1");
    assert_string_equal(r.d.fleet, "synthetic");
    assert_int_equal(r.d.policy_version, 1);
    assert_true(r.d.verdict.pass);
    assert_non_null(strstr(r.d.reason, "policy v1"));
    uint8_t expect[KEYVAULT_KEY_MAX];
    size_t expect_len = 0;
    stored_key(f, "svsm-1", expect, &expect_len);
    assert_int_equal(r.key_len, 32);
    assert_memory_equal(r.key, expect, 32);
    assert_audited(f, &g.verified, "session-aa", "svsm-1", "granted");

    /* The same instance, asked again, gets the same key. */
    result again = decide(f, &g.verified, path, NULL, 0, "session-bb");
    assert_int_equal(again.d.outcome, KEY_RELEASE_GRANTED);
    assert_memory_equal(again.key, expect, 32);
    assert_key_not_recorded(f, expect, 32);
    /* Also once the WAL is checkpointed into the database file. f->kr still points at the old
     * policy cache, so only the store is used from here on. */
    assert_int_equal(keys_env_reopen(&f->env), 0);
    assert_key_not_recorded(f, expect, 32);
}

static void test_unknown_resource(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    result r =
        decide(f, &e, "vtpmca/persistence-key/00000000000000000000000000000000", NULL, 0, "s1");
    assert_int_equal(r.err, VTPMCA_OK);
    assert_int_equal(r.d.outcome, KEY_RELEASE_UNKNOWN_RESOURCE);
    assert_string_equal(r.d.instance_id, "");
    assert_audited(f, &e, "s1", "", "unknown_resource");
    /* Malformed paths are unknown resources too (the client chose them), and audited. */
    const char *bad[] = {"", "a/b", "a/b/c/d", "a/b/c?x=1", "../../etc/passwd"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = decide(f, &e, bad[i], NULL, 0, "s2");
        assert_int_equal(r.err, VTPMCA_OK);
        assert_int_equal(r.d.outcome, KEY_RELEASE_UNKNOWN_RESOURCE);
        assert_non_null(strstr(r.d.reason, "malformed resource path"));
        assert_audited(f, &e, "s2", "", "unknown_resource");
    }
}

static void test_disabled(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-d", KEYS_FLEET, STORE_KEY_GENERATED, NULL, path);
    assert_int_equal(store_instance_set_disabled(f->env.st, "vm-d", true, NULL), VTPMCA_OK);
    result r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_DISABLED);
    assert_string_equal(r.d.instance_id, "vm-d");
    assert_audited(f, &e, "s1", "vm-d", "disabled");
    /* Enabled again, it is granted. */
    assert_int_equal(store_instance_set_disabled(f->env.st, "vm-d", false, NULL), VTPMCA_OK);
    r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
}

static void test_no_policy(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-np", KEYS_FLEET_NO_POLICY, STORE_KEY_GENERATED, NULL, path);
    result r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_NO_POLICY);
    assert_string_equal(r.d.fleet, KEYS_FLEET_NO_POLICY);
    assert_non_null(strstr(r.d.reason, "has no policy"));
    assert_audited(f, &e, "s1", "vm-np", "no_policy");
    /* Once the fleet gets a policy, the next decision uses it. */
    char measurement[97];
    fixture_hex(FIXTURE_MEASUREMENT, 48, measurement);
    char policy[160];
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", measurement);
    assert_int_equal(store_policy_put(f->env.st, KEYS_FLEET_NO_POLICY, policy, "admin", NULL, NULL),
                     VTPMCA_OK);
    r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
    assert_int_equal(r.d.policy_version, 1);
}

static void test_policy_rejected(void **state)
{
    fixture *f = *state;
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-p", KEYS_FLEET, STORE_KEY_GENERATED, NULL, path);
    snp_evidence e = fixture_claims();
    memset(e.report.measurement, 0x99, sizeof(e.report.measurement));
    e.report.policy |= SNP_POLICY_DEBUG;
    result r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.err, VTPMCA_OK);
    assert_int_equal(r.d.outcome, KEY_RELEASE_POLICY_REJECTED);
    assert_false(r.d.verdict.pass);
    assert_int_equal(r.d.verdict.n_failed, 2);
    assert_int_equal(r.d.policy_version, 1);
    assert_non_null(strstr(r.d.reason, "policy v1 rejected the evidence: "));
    assert_non_null(strstr(r.d.reason, "measurement"));
    assert_non_null(strstr(r.d.reason, "debug"));
    assert_audited(f, &e, "s1", "vm-p", "policy_rejected");
    assert_non_null(strstr(last_audit(f).detail, "measurement"));

    /* A new policy version applies at once (the cache re-reads "latest" every time here):
     * one that allows this measurement and debug grants. */
    json_t *doc = fixture_strict_policy();
    char m[97];
    fixture_hex(0x99, 48, m);
    json_array_append_new(json_object_get(doc, "measurements"), json_string(m));
    json_object_set_new(doc, "allow_debug", json_true());
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_int_equal(store_policy_put(f->env.st, KEYS_FLEET, text, "admin", NULL, NULL), VTPMCA_OK);
    free(text);
    r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
    assert_int_equal(r.d.policy_version, 2);
}

static void test_host_data(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    uint8_t enrolled[32];
    memset(enrolled, FIXTURE_HOST_DATA, sizeof(enrolled));
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-h", KEYS_FLEET, STORE_KEY_GENERATED, enrolled, path);
    result r = decide(f, &e, path, NULL, 0, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);

    /* An instance enrolled with a value one byte off from the attested one. */
    enrolled[31] ^= 1;
    char other[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-h2", KEYS_FLEET, STORE_KEY_GENERATED, enrolled, other);
    r = decide(f, &e, other, NULL, 0, "s2");
    assert_int_equal(r.d.outcome, KEY_RELEASE_HOST_DATA_MISMATCH);
    assert_non_null(strstr(r.d.reason, "attested host_data 3333"));
    /* The reason (sent to the client) does not reveal the enrolled value. */
    char enrolled_hex[65];
    vt_hex_encode(enrolled, 32, enrolled_hex, sizeof(enrolled_hex));
    assert_null(strstr(r.d.reason, enrolled_hex));
    assert_audited(f, &e, "s2", "vm-h2", "host_data_mismatch");
}

static void test_wrapped_mode(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    char path[STORE_RESOURCE_PATH_MAX + 1], path2[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "w-1", KEYS_FLEET, STORE_KEY_WRAPPED, NULL, path);
    enroll(f, "w-2", KEYS_FLEET, STORE_KEY_WRAPPED, NULL, path2);
    uint8_t admin_key[64];
    for (size_t i = 0; i < sizeof(admin_key); i++)
        admin_key[i] = (uint8_t)(i * 5 + 3);
    uint8_t *blob = NULL, *blob2 = NULL, *as_generated = NULL;
    size_t blob_len = 0, blob2_len = 0, as_generated_len = 0;
    assert_int_equal(enrollment_wrap_key(f->env.vault, "w-1", admin_key, sizeof(admin_key), &blob,
                                         &blob_len, NULL),
                     VTPMCA_OK);
    assert_int_equal(
        enrollment_wrap_key(f->env.vault, "w-2", admin_key, 16, &blob2, &blob2_len, NULL),
        VTPMCA_OK);
    /* A blob made with the generated-mode context of the same instance. */
    assert_int_equal(keyvault_wrap(f->env.vault, admin_key, 32, "instance:w-1", &as_generated,
                                   &as_generated_len, NULL),
                     VTPMCA_OK);

    result r = decide(f, &e, path, blob, blob_len, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
    assert_int_equal(r.key_len, sizeof(admin_key));
    assert_memory_equal(r.key, admin_key, sizeof(admin_key));
    assert_audited(f, &e, "s1", "w-1", "granted");
    r = decide(f, &e, path2, blob2, blob2_len, "s1");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);
    assert_int_equal(r.key_len, 16);

    /* No blob, an empty blob, another instance's blob, the wrong context, tampering,
     * truncation: all refused. */
    r = decide(f, &e, path, NULL, 0, "s2");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    assert_non_null(strstr(r.d.reason, "presented no wrapped key"));
    assert_audited(f, &e, "s2", "w-1", "wrapped_key_invalid");
    r = decide(f, &e, path, blob, 0, "s2");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    r = decide(f, &e, path, blob2, blob2_len, "s2");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    r = decide(f, &e, path, as_generated, as_generated_len, "s2");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    for (size_t i = 0; i < blob_len; i += 7) {
        blob[i] ^= 0x20;
        r = decide(f, &e, path, blob, blob_len, "s3");
        assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
        blob[i] ^= 0x20;
    }
    r = decide(f, &e, path, blob, blob_len - 1, "s3");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    assert_audited(f, &e, "s3", "w-1", "wrapped_key_invalid");

    /* A generated-mode instance takes no blob. */
    char gen_path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "g-1", KEYS_FLEET, STORE_KEY_GENERATED, NULL, gen_path);
    r = decide(f, &e, gen_path, blob, blob_len, "s4");
    assert_int_equal(r.d.outcome, KEY_RELEASE_WRAPPED_KEY_INVALID);
    assert_non_null(strstr(r.d.reason, "service-generated key"));

    /* The wrapped-mode checks come after the policy: failing evidence is refused by the
     * policy even with a valid blob. */
    snp_evidence bad = e;
    bad.report.vmpl = 2;
    r = decide(f, &bad, path, blob, blob_len, "s5");
    assert_int_equal(r.d.outcome, KEY_RELEASE_POLICY_REJECTED);
    assert_key_not_recorded(f, admin_key, sizeof(admin_key));
    free(blob);
    free(blob2);
    free(as_generated);
}

/* What the wrapped-key hook saw. */
typedef struct {
    unsigned calls;
    char instance[64];
    size_t key_len;
} hook_seen;

static void record_hook(void *ctx, const char *instance_id, const uint8_t *key, size_t key_len)
{
    (void)key;
    hook_seen *seen = ctx;
    seen->calls++;
    snprintf(seen->instance, sizeof(seen->instance), "%s", instance_id);
    seen->key_len = key_len;
}

static size_t release_rows(fixture *f)
{
    store_audit_filter filter = {.action = "key_release", .limit = STORE_LIST_MAX};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(f->env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    free(events);
    return n;
}

/* The two halves for callers that write the audit row themselves: appraise writes nothing
 * and describes the row; the key stays only when its row was written; the wrapped-key hook
 * runs only after a written grant in wrapped-key mode. */
static void test_appraise_then_audited(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    hook_seen seen = {0};
    assert_int_equal(key_release_set_wrapped_hook(f->kr, record_hook, &seen), VTPMCA_OK);
    char path[STORE_RESOURCE_PATH_MAX + 1], wpath[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "split-g", KEYS_FLEET, STORE_KEY_GENERATED, NULL, path);
    enroll(f, "split-w", KEYS_FLEET, STORE_KEY_WRAPPED, NULL, wpath);
    uint8_t admin_key[32];
    memset(admin_key, 0x5a, sizeof(admin_key));
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(enrollment_wrap_key(f->env.vault, "split-w", admin_key, sizeof(admin_key),
                                         &blob, &blob_len, NULL),
                     VTPMCA_OK);
    size_t rows = release_rows(f);

    uint8_t key[KEYVAULT_KEY_MAX];
    size_t key_len = 0;
    key_release_decision d;
    store_audit_event audit;
    assert_int_equal(
        key_release_appraise(f->kr, &e, path, NULL, 0, "sess-1", key, &key_len, &d, &audit, NULL),
        VTPMCA_OK);
    assert_int_equal(d.outcome, KEY_RELEASE_GRANTED);
    assert_false(d.failed);
    assert_false(d.runs_hook);
    assert_int_equal(key_len, 32);
    assert_int_equal(release_rows(f), rows); /* nothing written yet */
    assert_string_equal(audit.action, "key_release");
    assert_string_equal(audit.outcome, "granted");
    assert_string_equal(audit.instance_id, "split-g");
    assert_string_equal(audit.actor, "sess-1");
    /* The row could not be written: the key is wiped and the error comes back. */
    assert_int_equal(key_release_audited(f->kr, &d, "sess-1", key, &key_len, VTPMCA_ERR_STORE),
                     VTPMCA_ERR_STORE);
    const uint8_t zeros[KEYVAULT_KEY_MAX] = {0};
    assert_int_equal(key_len, 0);
    assert_memory_equal(key, zeros, sizeof(zeros));

    /* Wrapped-key mode: the hook runs after a written grant, not after a failed write. */
    assert_int_equal(key_release_appraise(f->kr, &e, wpath, blob, blob_len, "sess-2", key, &key_len,
                                          &d, &audit, NULL),
                     VTPMCA_OK);
    assert_true(d.runs_hook);
    assert_int_equal(key_release_audited(f->kr, &d, "sess-2", key, &key_len, VTPMCA_ERR_IO),
                     VTPMCA_ERR_IO);
    assert_int_equal(seen.calls, 0);
    assert_int_equal(key_release_appraise(f->kr, &e, wpath, blob, blob_len, "sess-2", key, &key_len,
                                          &d, &audit, NULL),
                     VTPMCA_OK);
    assert_int_equal(store_audit_append(f->env.st, &audit, NULL), VTPMCA_OK);
    assert_int_equal(key_release_audited(f->kr, &d, "sess-2", key, &key_len, VTPMCA_OK), VTPMCA_OK);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.instance, "split-w");
    assert_int_equal(seen.key_len, sizeof(admin_key));
    assert_memory_equal(key, admin_key, sizeof(admin_key));
    assert_int_equal(release_rows(f), rows + 1);

    /* A refusal describes its row too and holds no key. */
    assert_int_equal(key_release_appraise(f->kr, &e, "repo/type/nobody", NULL, 0, "sess-3", key,
                                          &key_len, &d, &audit, NULL),
                     VTPMCA_OK);
    assert_int_equal(d.outcome, KEY_RELEASE_UNKNOWN_RESOURCE);
    assert_string_equal(audit.outcome, "unknown_resource");
    assert_int_equal(key_len, 0);

    /* Bad arguments. */
    assert_int_equal(
        key_release_appraise(f->kr, &e, path, NULL, 0, "s", key, &key_len, &d, NULL, NULL),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_audited(NULL, &d, "s", key, &key_len, VTPMCA_OK),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_audited(f->kr, NULL, "s", key, &key_len, VTPMCA_OK),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_set_wrapped_hook(f->kr, NULL, NULL), VTPMCA_OK);
    free(blob);
}

/* A decision that cannot be audited hands out nothing; a stored key that does not unwrap
 * (another master key) is an error, audited as such. */
static void test_failures_hand_out_nothing(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-f", KEYS_FLEET, STORE_KEY_GENERATED, NULL, path);

    /* Audit rows of client "blocked" are refused by the database itself. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->env.db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER audit_block BEFORE INSERT ON audit WHEN "
                                  "NEW.actor = 'blocked' BEGIN SELECT RAISE(ABORT, 'blocked'); "
                                  "END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    vtpmca_diag diag = {{0}};
    uint8_t key[KEYVAULT_KEY_MAX];
    memset(key, 0xee, sizeof(key));
    size_t key_len = 99;
    key_release_decision d;
    assert_int_equal(
        key_release_decide(f->kr, &e, path, NULL, 0, "blocked", key, &key_len, &d, &diag),
        VTPMCA_ERR_STORE);
    assert_int_equal(key_len, 0);
    const uint8_t zeros[KEYVAULT_KEY_MAX] = {0};
    assert_memory_equal(key, zeros, sizeof(key));
    /* Other clients are unaffected. */
    result r = decide(f, &e, path, NULL, 0, "fine");
    assert_int_equal(r.d.outcome, KEY_RELEASE_GRANTED);

    /* A service restarted with another master key cannot unwrap stored keys. */
    char other_key_path[160];
    snprintf(other_key_path, sizeof(other_key_path), "%s/other.key", f->env.dir);
    keyvault *other = NULL;
    assert_int_equal(keyvault_open(other_key_path, true, &other, NULL), VTPMCA_OK);
    key_release_config config = {f->env.st, other, f->env.policies};
    key_release *kr = NULL;
    assert_int_equal(key_release_new(&config, &kr, NULL), VTPMCA_OK);
    memset(key, 0xee, sizeof(key));
    assert_int_equal(key_release_decide(kr, &e, path, NULL, 0, "s-err", key, &key_len, &d, &diag),
                     VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "does not authenticate"));
    assert_int_equal(key_len, 0);
    assert_memory_equal(key, zeros, sizeof(key));
    store_audit_event ev = last_audit(f);
    assert_string_equal(ev.actor, "s-err");
    assert_string_equal(ev.outcome, "error");
    assert_string_equal(ev.instance_id, "vm-f");
    assert_non_null(strstr(ev.detail, "crypto"));
    key_release_free(kr);
    keyvault_free(other);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    snp_evidence e = fixture_claims();
    uint8_t key[KEYVAULT_KEY_MAX];
    size_t key_len;
    key_release_decision d;
    const char *p = "a/b/c";
    assert_int_equal(key_release_decide(NULL, &e, p, NULL, 0, "c", key, &key_len, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, NULL, p, NULL, 0, "c", key, &key_len, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, &e, NULL, NULL, 0, "c", key, &key_len, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, &e, p, NULL, 5, "c", key, &key_len, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, &e, p, NULL, 0, "c", NULL, &key_len, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, &e, p, NULL, 0, "c", key, NULL, &d, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_decide(f->kr, &e, p, NULL, 0, "c", key, &key_len, NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    char long_client[80];
    memset(long_client, 'c', sizeof(long_client) - 1);
    long_client[sizeof(long_client) - 1] = '\0';
    assert_int_equal(
        key_release_decide(f->kr, &e, p, NULL, 0, long_client, key, &key_len, &d, NULL),
        VTPMCA_ERR_INVALID_ARG);
    /* None of these was a decision: nothing audited. A NULL client is recorded as none. */
    store_audit_filter filter = {.limit = 10};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(f->env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 0);
    result r = decide(f, &e, p, NULL, 0, NULL);
    assert_int_equal(r.d.outcome, KEY_RELEASE_UNKNOWN_RESOURCE);
    assert_string_equal(last_audit(f).actor, "");

    key_release *kr = NULL;
    key_release_config config = {f->env.st, f->env.vault, NULL};
    assert_int_equal(key_release_new(&config, &kr, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(kr);
    config = (key_release_config){NULL, f->env.vault, f->env.policies};
    assert_int_equal(key_release_new(&config, &kr, NULL), VTPMCA_ERR_INVALID_ARG);
    config = (key_release_config){f->env.st, NULL, f->env.policies};
    assert_int_equal(key_release_new(&config, &kr, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(key_release_new(NULL, &kr, NULL), VTPMCA_ERR_INVALID_ARG);
    key_release_free(NULL);
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_GRANTED), "granted");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_UNKNOWN_RESOURCE), "unknown_resource");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_DISABLED), "disabled");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_NO_POLICY), "no_policy");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_POLICY_REJECTED), "policy_rejected");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_HOST_DATA_MISMATCH),
                        "host_data_mismatch");
    assert_string_equal(key_release_outcome_name(KEY_RELEASE_WRAPPED_KEY_INVALID),
                        "wrapped_key_invalid");
    assert_string_equal(key_release_outcome_name((key_release_outcome)42), "unknown");
}

struct thread_arg {
    fixture *f;
    const char *path;
    const uint8_t *expect;
    int granted;
};

static void *decide_many(void *p)
{
    struct thread_arg *a = p;
    snp_evidence e;
    if (fixture_evidence(SNP_PRODUCT_MILAN, &e) != VTPMCA_OK)
        return NULL;
    for (int i = 0; i < 25; i++) {
        uint8_t key[KEYVAULT_KEY_MAX];
        size_t key_len = 0;
        key_release_decision d;
        if (key_release_decide(a->f->kr, &e, a->path, NULL, 0, "thread", key, &key_len, &d, NULL) ==
                VTPMCA_OK &&
            d.outcome == KEY_RELEASE_GRANTED && key_len == 32 && memcmp(key, a->expect, 32) == 0)
            a->granted++;
    }
    return NULL;
}

static void test_concurrent_decisions(void **state)
{
    fixture *f = *state;
    char path[STORE_RESOURCE_PATH_MAX + 1];
    enroll(f, "vm-c", KEYS_FLEET, STORE_KEY_GENERATED, NULL, path);
    uint8_t expect[KEYVAULT_KEY_MAX];
    size_t expect_len = 0;
    stored_key(f, "vm-c", expect, &expect_len);
    pthread_t threads[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){f, path, expect, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, decide_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].granted, 25);
    }
    store_audit_filter filter = {.instance_id = "vm-c", .outcome = "granted", .limit = 1000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(f->env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 100);
    free(events);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_granted_verified_evidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapped_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appraise_then_audited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_hand_out_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test_setup_teardown(test_concurrent_decisions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
