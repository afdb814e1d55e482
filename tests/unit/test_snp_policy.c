/* Unit tests for attest/snp_policy.c: strict parsing of every key, canonical JSON, and the
 * evaluation of every rule (one passing and one failing evidence each), on hand-made claims
 * and on claims from the genuine Milan reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "../support/snp_policy_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/snp_policy.h"

/* ---- helpers ---- */

static snp_policy *parse_text(const char *text)
{
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_policy_from_json(text, strlen(text), &policy, &diag);
    if (err != VTPMCA_OK)
        fail_msg("policy did not parse: %s", diag.msg);
    return policy;
}

static char *canonical(const snp_policy *policy)
{
    char *text = NULL;
    assert_int_equal(snp_policy_to_json(policy, &text), VTPMCA_OK);
    assert_non_null(text);
    return text;
}

static void evaluate(const snp_policy *policy, const snp_evidence *evidence, snp_verdict *verdict)
{
    assert_int_equal(snp_policy_evaluate(policy, evidence, verdict), VTPMCA_OK);
}

static void assert_failed_checks(const snp_verdict *verdict, const char *const *checks,
                                 unsigned count)
{
    if (verdict->n_failed != count) {
        for (unsigned i = 0; i < verdict->n_failed; i++)
            print_message("failed: %s (%s)\n", verdict->failed[i].check, verdict->failed[i].detail);
    }
    assert_int_equal(verdict->n_failed, count);
    assert_int_equal(verdict->pass, count == 0);
    for (unsigned i = 0; i < count; i++) {
        assert_string_equal(verdict->failed[i].check, checks[i]);
        assert_true(strlen(verdict->failed[i].detail) > 0);
    }
}

/* ---- parsing ---- */

static void test_minimal_policy_canonical_defaults(void **state)
{
    (void)state;
    char m[97], upper[97];
    fixture_hex(0xab, 48, m);
    for (size_t i = 0; i < 96; i++)
        upper[i] = (char)(m[i] == 'a' ? 'A' : m[i] == 'b' ? 'B' : m[i]);
    upper[96] = '\0';
    char doc[160];
    snprintf(doc, sizeof(doc), "{\"measurements\":[\"%s\"]}", upper);
    snp_policy *policy = parse_text(doc);
    char *text = canonical(policy);
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "{\"allow_any_measurement\":false,\"allow_debug\":false,"
             "\"allow_migration_agent\":false,\"allow_vlek\":false,\"author_key_digest\":[],"
             "\"family_id\":[],\"host_data\":[],\"id_key_digest\":[],\"image_id\":[],"
             "\"measurements\":[\"%s\"],\"min_abi\":{\"major\":0,\"minor\":0},"
             "\"min_guest_svn\":0,\"min_tcb\":{\"bootloader\":0,\"fmc\":0,\"microcode\":0,"
             "\"snp\":0,\"tee\":0},\"products\":[],\"single_socket\":\"any\",\"smt\":\"any\","
             "\"version_range\":{\"max\":5,\"min\":2},\"vmpl\":0}",
             m);
    assert_string_equal(text, expected);
    free(text);
    snp_policy_free(policy);
}

static void test_full_policy_round_trip(void **state)
{
    (void)state;
    json_t *doc = fixture_strict_policy();
    /* Upper-case hex, unsorted list with a duplicate, products in another order and case. */
    char m1[97], m2[97];
    fixture_hex(FIXTURE_MEASUREMENT, 48, m1);
    fixture_hex(0xee, 48, m2);
    for (char *c = m2; *c; c++)
        *c = (char)(*c == 'e' ? 'E' : *c);
    json_object_set_new(doc, "measurements", json_pack("[s,s,s]", m2, m1, m2));
    json_object_set_new(doc, "products", json_pack("[s,s]", "turin", "MILAN"));
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(fixture_parse_policy(doc, &policy, &diag), VTPMCA_OK);
    char *first = canonical(policy);

    json_t *parsed = json_loads(first, 0, NULL);
    assert_non_null(parsed);
    json_t *list = json_object_get(parsed, "measurements");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_array_get(list, 0)), m1);
    fixture_hex(0xee, 48, m2);
    assert_string_equal(json_string_value(json_array_get(list, 1)), m2);
    json_t *products = json_object_get(parsed, "products");
    assert_int_equal(json_array_size(products), 2);
    assert_string_equal(json_string_value(json_array_get(products, 0)), "Milan");
    assert_string_equal(json_string_value(json_array_get(products, 1)), "Turin");
    assert_string_equal(json_string_value(json_object_get(parsed, "smt")), "forbidden");
    assert_string_equal(json_string_value(json_object_get(parsed, "single_socket")), "required");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(parsed, "min_tcb"), "fmc")),
                     2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(parsed, "version_range"), "min")), 3);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(parsed, "min_abi"), "minor")), 51);
    assert_int_equal(json_object_size(parsed), 18); /* every key, defaults explicit */
    json_decref(parsed);

    /* The canonical form parses back to the same canonical form. */
    snp_policy *again = parse_text(first);
    char *second = canonical(again);
    assert_string_equal(first, second);
    free(first);
    free(second);
    snp_policy_free(policy);
    snp_policy_free(again);
}

typedef struct {
    const char *overrides; /* JSON object merged into the strict policy (NULL: see text) */
    const char *text;      /* a whole document instead of overrides */
    const char *diag;      /* expected diag prefix */
} invalid_case;

static const invalid_case invalid_cases[] = {
    {NULL, "{", "policy: invalid JSON"},
    {NULL, "", "policy: invalid JSON"},
    {NULL, "{\"vmpl\":0} trailing", "policy: invalid JSON"},
    {NULL, "[]", "policy: expected a JSON object"},
    {NULL, "{\"vmpl\":0,\"vmpl\":1,\"allow_any_measurement\":true}", "policy: invalid JSON"},
    {NULL, "{\"allow_any_measurement\":true,\"colour\":1}", "colour: unknown key"},
    {"{\"version_range\":[2,5]}", NULL, "version_range: expected an object"},
    {"{\"version_range\":{\"min\":\"2\"}}", NULL, "version_range.min: expected an integer in 2..5"},
    {"{\"version_range\":{\"min\":1}}", NULL, "version_range.min: expected an integer in 2..5"},
    {"{\"version_range\":{\"max\":6}}", NULL, "version_range.max: expected an integer in 2..5"},
    {"{\"version_range\":{\"min\":4,\"max\":3}}", NULL,
     "version_range: min 4 is greater than max 3"},
    {"{\"version_range\":{\"min\":2,\"step\":1}}", NULL, "version_range.step: unknown key"},
    {"{\"measurements\":[]}", NULL, "measurements: required and non-empty"},
    {"{\"measurements\":\"11\"}", NULL, "measurements: expected an array of hex strings"},
    {"{\"allow_any_measurement\":true}", NULL,
     "measurements: must be empty when allow_any_measurement is true"},
    {"{\"allow_any_measurement\":\"true\"}", NULL, "allow_any_measurement: expected true or false"},
    {"{\"allow_debug\":1}", NULL, "allow_debug: expected true or false"},
    {"{\"allow_migration_agent\":null}", NULL, "allow_migration_agent: expected true or false"},
    {"{\"allow_vlek\":\"no\"}", NULL, "allow_vlek: expected true or false"},
    {"{\"vmpl\":4}", NULL, "vmpl: expected an integer in 0..3"},
    {"{\"vmpl\":-1}", NULL, "vmpl: expected an integer in 0..3"},
    {"{\"vmpl\":0.0}", NULL, "vmpl: expected an integer in 0..3"},
    {"{\"vmpl\":\"0\"}", NULL, "vmpl: expected an integer in 0..3"},
    {"{\"min_tcb\":8}", NULL, "min_tcb: expected an object"},
    {"{\"min_tcb\":{\"snp\":256}}", NULL, "min_tcb.snp: expected an integer in 0..255"},
    {"{\"min_tcb\":{\"bootloader\":-1}}", NULL,
     "min_tcb.bootloader: expected an integer in 0..255"},
    {"{\"min_tcb\":{\"tee\":\"1\"}}", NULL, "min_tcb.tee: expected an integer in 0..255"},
    {"{\"min_tcb\":{\"microcode\":true}}", NULL,
     "min_tcb.microcode: expected an integer in 0..255"},
    {"{\"min_tcb\":{\"fmc\":1000}}", NULL, "min_tcb.fmc: expected an integer in 0..255"},
    {"{\"min_tcb\":{\"ucode\":1}}", NULL, "min_tcb.ucode: unknown key"},
    {"{\"min_guest_svn\":4294967296}", NULL, "min_guest_svn: expected an integer in 0..4294967295"},
    {"{\"min_guest_svn\":-1}", NULL, "min_guest_svn: expected an integer in 0..4294967295"},
    {"{\"smt\":\"maybe\"}", NULL, "smt: expected \"any\", \"allowed\" or \"forbidden\""},
    {"{\"smt\":false}", NULL, "smt: expected \"any\", \"allowed\" or \"forbidden\""},
    {"{\"smt\":\"ANY\"}", NULL, "smt: expected \"any\", \"allowed\" or \"forbidden\""},
    {"{\"single_socket\":\"forbidden\"}", NULL, "single_socket: expected \"any\" or \"required\""},
    {"{\"single_socket\":1}", NULL, "single_socket: expected \"any\" or \"required\""},
    {"{\"products\":\"Milan\"}", NULL, "products: expected an array of strings"},
    {"{\"products\":[\"Milan\",\"Milan-B0\"]}", NULL,
     "products[1]: expected \"Milan\", \"Genoa\" or \"Turin\""},
    {"{\"products\":[\"Sapphire\"]}", NULL,
     "products[0]: expected \"Milan\", \"Genoa\" or \"Turin\""},
    {"{\"products\":[1]}", NULL, "products[0]: expected \"Milan\", \"Genoa\" or \"Turin\""},
    {"{\"min_abi\":\"1.51\"}", NULL, "min_abi: expected an object"},
    {"{\"min_abi\":{\"major\":256}}", NULL, "min_abi.major: expected an integer in 0..255"},
    {"{\"min_abi\":{\"minor\":-3}}", NULL, "min_abi.minor: expected an integer in 0..255"},
    {"{\"min_abi\":{\"build\":1}}", NULL, "min_abi.build: unknown key"},
};

static void expect_invalid(const char *text, const char *expected_diag)
{
    /* The policy type is opaque: any address works as a marker that *out was not set. */
    static char marker;
    snp_policy *const sentinel = (snp_policy *)&marker;
    snp_policy *out = sentinel;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_policy_from_json(text, strlen(text), &out, &diag);
    if (err != VTPMCA_ERR_PARSE || strncmp(diag.msg, expected_diag, strlen(expected_diag)) != 0)
        fail_msg("input %s: got %s \"%s\", expected parse \"%s\"", text, vtpmca_err_name(err),
                 diag.msg, expected_diag);
    assert_ptr_equal(out, sentinel); /* nothing handed out on failure */
}

static void test_invalid_documents(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const invalid_case *c = &invalid_cases[i];
        if (c->text != NULL) {
            expect_invalid(c->text, c->diag);
            continue;
        }
        json_t *doc = fixture_strict_policy();
        json_t *extra = json_loads(c->overrides, 0, NULL);
        assert_non_null(extra);
        assert_int_equal(json_object_update(doc, extra), 0);
        json_decref(extra);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        expect_invalid(text, c->diag);
        free(text);
    }
}

/* Every allow-list: wrong lengths, non-hex, non-strings and non-arrays, named by index. */
static void test_invalid_hex_lists(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        size_t width;
    } lists[] = {{"measurements", 48},      {"host_data", 32}, {"id_key_digest", 48},
                 {"author_key_digest", 48}, {"family_id", 16}, {"image_id", 16}};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        size_t digits = 2 * lists[i].width;
        char good[129], short_hex[129], long_hex[131], not_hex[129], spaced[131];
        fixture_hex(0x5a, lists[i].width, good);
        memcpy(short_hex, good, digits - 1);
        short_hex[digits - 1] = '\0';
        snprintf(long_hex, sizeof(long_hex), "%s0", good);
        memcpy(not_hex, good, digits + 1);
        not_hex[7] = 'g';
        snprintf(spaced, sizeof(spaced), " %s", good);
        spaced[digits] = '\0'; /* same length, leading space */
        const char *bad_items[] = {short_hex, long_hex, not_hex, spaced, ""};
        char expected[96];
        snprintf(expected, sizeof(expected), "%s[1]: expected %zu hex digits", lists[i].key,
                 digits);
        for (size_t b = 0; b < sizeof(bad_items) / sizeof(bad_items[0]); b++) {
            json_t *doc = fixture_strict_policy();
            json_object_set_new(doc, lists[i].key, json_pack("[s,s]", good, bad_items[b]));
            char *text = json_dumps(doc, JSON_COMPACT);
            json_decref(doc);
            expect_invalid(text, expected);
            free(text);
        }
        json_t *doc = fixture_strict_policy();
        json_object_set_new(doc, lists[i].key, json_pack("[s,i]", good, 7));
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        expect_invalid(text, expected);
        free(text);

        doc = fixture_strict_policy();
        json_object_set_new(doc, lists[i].key, json_string(good));
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        snprintf(expected, sizeof(expected), "%s: expected an array of hex strings", lists[i].key);
        expect_invalid(text, expected);
        free(text);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_policy_from_json(NULL, 0, &policy, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_policy_from_json("{}", 2, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(policy);

    policy = fixture_strict_policy_with(NULL);
    char *text = NULL;
    assert_int_equal(snp_policy_to_json(NULL, &text), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_policy_to_json(policy, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(text);

    snp_evidence evidence;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, &evidence), VTPMCA_OK);
    snp_verdict verdict;
    memset(&verdict, 0xa5, sizeof(verdict));
    snp_verdict untouched = verdict;
    assert_int_equal(snp_policy_evaluate(NULL, &evidence, &verdict), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_policy_evaluate(policy, NULL, &verdict), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_policy_evaluate(policy, &evidence, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_memory_equal(&verdict, &untouched, sizeof(verdict));
    assert_int_equal(snp_verdict_set_evidence_failure(NULL, VTPMCA_ERR_CRYPTO, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_verdict_set_evidence_failure(&verdict, VTPMCA_OK, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_memory_equal(&verdict, &untouched, sizeof(verdict));
    snp_policy_free(policy);
    snp_policy_free(NULL);
}

/* ---- evaluation: one passing and one failing evidence per rule ---- */

typedef void (*evidence_change)(snp_evidence *e);

static void set_version_2(snp_evidence *e)
{
    e->report.version = 2;
}
static void set_version_5(snp_evidence *e)
{
    e->report.version = 5;
}
static void set_version_6(snp_evidence *e)
{
    e->report.version = 6;
}
static void set_other_measurement(snp_evidence *e)
{
    memset(e->report.measurement, 0x99, sizeof(e->report.measurement));
}
static void set_second_measurement(snp_evidence *e)
{
    memset(e->report.measurement, FIXTURE_MEASUREMENT_2, sizeof(e->report.measurement));
}
static void set_debug(snp_evidence *e)
{
    e->report.policy |= SNP_POLICY_DEBUG;
}
static void set_migration_agent(snp_evidence *e)
{
    e->report.policy |= SNP_POLICY_MIGRATE_MA;
}
static void set_vmpl_2(snp_evidence *e)
{
    e->report.vmpl = 2;
}
static void lower_reported_bootloader(snp_evidence *e)
{
    e->reported_tcb.bootloader = 2;
}
static void lower_committed_bootloader(snp_evidence *e)
{
    e->committed_tcb.bootloader = 2;
}
static void lower_tee(snp_evidence *e)
{
    e->reported_tcb.tee = 0;
    e->committed_tcb.tee = 0;
}
static void lower_snp(snp_evidence *e)
{
    e->reported_tcb.snp = 7;
    e->committed_tcb.snp = 7;
}
static void lower_microcode(snp_evidence *e)
{
    e->reported_tcb.microcode = 114;
}
static void lower_fmc(snp_evidence *e)
{
    e->reported_tcb.fmc = 1;
}
static void raise_fmc(snp_evidence *e)
{
    e->reported_tcb.fmc = 3;
    e->committed_tcb.fmc = 3;
}
/* Component-wise ordering: a much newer microcode does not make up for an older SNP. */
static void higher_microcode_lower_snp(snp_evidence *e)
{
    e->reported_tcb.microcode = 250;
    e->committed_tcb.microcode = 250;
    e->reported_tcb.snp = 7;
}
static void raise_every_component(snp_evidence *e)
{
    snp_tcb newer = {.bootloader = 9, .tee = 9, .snp = 22, .microcode = 213};
    e->reported_tcb = e->committed_tcb = newer;
}
static void lower_guest_svn(snp_evidence *e)
{
    e->report.guest_svn = 1;
}
static void raise_guest_svn(snp_evidence *e)
{
    e->report.guest_svn = 4000000000u;
}
static void set_other_host_data(snp_evidence *e)
{
    e->report.host_data[31] ^= 1;
}
static void set_other_id_key(snp_evidence *e)
{
    e->report.id_key_digest[0] ^= 0x80;
}
static void set_other_author_key(snp_evidence *e)
{
    e->report.author_key_digest[47] = 0;
}
static void set_other_family_id(snp_evidence *e)
{
    memset(e->report.family_id, 0, sizeof(e->report.family_id));
}
static void set_other_image_id(snp_evidence *e)
{
    e->report.image_id[8] = 0x78;
}
static void set_guest_smt(snp_evidence *e)
{
    e->report.policy |= SNP_POLICY_SMT;
}
static void set_platform_smt(snp_evidence *e)
{
    e->report.platform_info |= SNP_PLATFORM_SMT_EN;
}
static void set_smt_both(snp_evidence *e)
{
    set_guest_smt(e);
    set_platform_smt(e);
}
static void clear_single_socket(snp_evidence *e)
{
    e->report.policy &= ~SNP_POLICY_SINGLE_SOCKET;
}
static void set_vlek(snp_evidence *e)
{
    e->signer = SNP_SIGNER_VLEK;
}
static void set_no_signer(snp_evidence *e)
{
    e->signer = SNP_SIGNER_NONE;
}
static void set_genoa(snp_evidence *e)
{
    e->product = SNP_PRODUCT_GENOA;
}
static void set_unknown_product(snp_evidence *e)
{
    e->product = SNP_PRODUCT_UNKNOWN;
}
static void set_abi_1_50(snp_evidence *e)
{
    e->report.current_minor = 50;
}
static void set_abi_2_0(snp_evidence *e)
{
    e->report.current_major = 2;
    e->report.current_minor = 0;
}
static void set_abi_0_99(snp_evidence *e)
{
    e->report.current_major = 0;
    e->report.current_minor = 99;
}

typedef struct {
    const char *name;
    const char *overrides; /* merged into the strict policy, or NULL */
    snp_product product;
    evidence_change change;
    const char *failed_check; /* NULL: must pass */
    unsigned checks_run;
} rule_case;

#define MILAN SNP_PRODUCT_MILAN
#define TURIN SNP_PRODUCT_TURIN
#define N FIXTURE_STRICT_CHECKS

static const rule_case rule_cases[] = {
    {"baseline milan", NULL, MILAN, NULL, NULL, N},
    {"baseline turin (fmc checked)", NULL, TURIN, NULL, NULL, N + 1},
    /* report_version */
    {"version at max", NULL, MILAN, set_version_5, NULL, N},
    {"version below min", NULL, MILAN, set_version_2, "report_version", N},
    {"version above max", NULL, MILAN, set_version_6, "report_version", N},
    {"version 2 in default range", "{\"version_range\":{\"min\":2}}", MILAN, set_version_2, NULL,
     N},
    /* measurement */
    {"second allowed measurement", NULL, MILAN, set_second_measurement, NULL, N},
    {"unknown measurement", NULL, MILAN, set_other_measurement, "measurement", N},
    {"any measurement allowed", "{\"allow_any_measurement\":true,\"measurements\":[]}", MILAN,
     set_other_measurement, NULL, N - 1},
    /* debug */
    {"debug allowed", "{\"allow_debug\":true}", MILAN, set_debug, NULL, N},
    {"debug forbidden", NULL, MILAN, set_debug, "debug", N},
    /* migration agent */
    {"migration agent allowed", "{\"allow_migration_agent\":true}", MILAN, set_migration_agent,
     NULL, N},
    {"migration agent forbidden", NULL, MILAN, set_migration_agent, "migration_agent", N},
    /* vmpl */
    {"vmpl 2 required and found", "{\"vmpl\":2}", MILAN, set_vmpl_2, NULL, N},
    {"vmpl 2 found, 0 required", NULL, MILAN, set_vmpl_2, "vmpl", N},
    {"vmpl 0 found, 2 required", "{\"vmpl\":2}", MILAN, NULL, "vmpl", N},
    /* min_tcb */
    {"every component newer", NULL, MILAN, raise_every_component, NULL, N},
    {"reported bootloader older", NULL, MILAN, lower_reported_bootloader, "min_tcb.bootloader", N},
    {"committed bootloader older", NULL, MILAN, lower_committed_bootloader, "min_tcb.bootloader",
     N},
    {"tee older", NULL, MILAN, lower_tee, "min_tcb.tee", N},
    {"snp older", NULL, MILAN, lower_snp, "min_tcb.snp", N},
    {"microcode older", NULL, MILAN, lower_microcode, "min_tcb.microcode", N},
    {"newer microcode, older snp", NULL, MILAN, higher_microcode_lower_snp, "min_tcb.snp", N},
    {"turin fmc newer", NULL, TURIN, raise_fmc, NULL, N + 1},
    {"turin fmc older", NULL, TURIN, lower_fmc, "min_tcb.fmc", N + 1},
    {"milan ignores fmc", NULL, MILAN, lower_fmc, NULL, N},
    /* guest_svn */
    {"guest svn newer", NULL, MILAN, raise_guest_svn, NULL, N},
    {"guest svn older", NULL, MILAN, lower_guest_svn, "guest_svn", N},
    /* allow-lists */
    {"host_data any", "{\"host_data\":[]}", MILAN, set_other_host_data, NULL, N - 1},
    {"host_data unknown", NULL, MILAN, set_other_host_data, "host_data", N},
    {"id_key_digest any", "{\"id_key_digest\":[]}", MILAN, set_other_id_key, NULL, N - 1},
    {"id_key_digest unknown", NULL, MILAN, set_other_id_key, "id_key_digest", N},
    {"author_key_digest any", "{\"author_key_digest\":[]}", MILAN, set_other_author_key, NULL,
     N - 1},
    {"author_key_digest unknown", NULL, MILAN, set_other_author_key, "author_key_digest", N},
    {"family_id any", "{\"family_id\":[]}", MILAN, set_other_family_id, NULL, N - 1},
    {"family_id unknown", NULL, MILAN, set_other_family_id, "family_id", N},
    {"image_id any", "{\"image_id\":[]}", MILAN, set_other_image_id, NULL, N - 1},
    {"image_id unknown", NULL, MILAN, set_other_image_id, "image_id", N},
    /* smt */
    {"smt forbidden, guest bit set", NULL, MILAN, set_guest_smt, "smt", N},
    {"smt forbidden, platform on", NULL, MILAN, set_platform_smt, "smt", N},
    {"smt allowed and on", "{\"smt\":\"allowed\"}", MILAN, set_smt_both, NULL, N},
    {"smt allowed, guest bit clear", "{\"smt\":\"allowed\"}", MILAN, NULL, "smt", N},
    {"smt any", "{\"smt\":\"any\"}", MILAN, set_smt_both, NULL, N - 1},
    /* single_socket */
    {"single socket any", "{\"single_socket\":\"any\"}", MILAN, clear_single_socket, NULL, N - 1},
    {"single socket required, bit clear", NULL, MILAN, clear_single_socket, "single_socket", N},
    /* signer */
    {"vlek allowed", "{\"allow_vlek\":true}", MILAN, set_vlek, NULL, N},
    {"vlek not allowed", NULL, MILAN, set_vlek, "signer", N},
    {"no signing key", "{\"allow_vlek\":true}", MILAN, set_no_signer, "signer", N},
    /* product */
    {"any product", "{\"products\":[]}", MILAN, set_genoa, NULL, N - 1},
    {"genoa not listed", NULL, MILAN, set_genoa, "product", N},
    {"product unknown", NULL, MILAN, set_unknown_product, "product", N},
    /* abi */
    {"newer abi major", NULL, MILAN, set_abi_2_0, NULL, N},
    {"older abi minor", NULL, MILAN, set_abi_1_50, "abi", N},
    {"older abi major", NULL, MILAN, set_abi_0_99, "abi", N},
};

static void test_every_rule(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
        const rule_case *c = &rule_cases[i];
        print_message("case: %s\n", c->name);
        snp_policy *policy = fixture_strict_policy_with(c->overrides);
        snp_evidence evidence;
        assert_int_equal(fixture_evidence(c->product, &evidence), VTPMCA_OK);
        if (c->change != NULL)
            c->change(&evidence);
        snp_verdict verdict;
        evaluate(policy, &evidence, &verdict);
        if (c->failed_check == NULL)
            assert_failed_checks(&verdict, NULL, 0);
        else
            assert_failed_checks(&verdict, &c->failed_check, 1);
        assert_int_equal(verdict.checks_run, c->checks_run);
        snp_policy_free(policy);
    }
}

/* Details say what was expected and what was found. */
static void test_failure_details(void **state)
{
    (void)state;
    snp_policy *policy = fixture_strict_policy_with(NULL);
    snp_evidence evidence;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, &evidence), VTPMCA_OK);
    set_other_measurement(&evidence);
    evidence.reported_tcb.snp = 7;
    evidence.report.vmpl = 1;
    evidence.report.guest_svn = 0;
    set_abi_1_50(&evidence);
    snp_verdict verdict;
    evaluate(policy, &evidence, &verdict);
    const char *checks[] = {"measurement", "vmpl", "min_tcb.snp", "guest_svn", "abi"};
    assert_failed_checks(&verdict, checks, 5);
    char found[97];
    fixture_hex(0x99, 48, found);
    assert_non_null(strstr(verdict.failed[0].detail, found));
    assert_non_null(strstr(verdict.failed[0].detail, "2 allowed"));
    assert_string_equal(verdict.failed[1].detail, "expected 0, found 1");
    assert_string_equal(verdict.failed[2].detail,
                        "expected >= 8, found reported_tcb 7, committed_tcb 8");
    assert_string_equal(verdict.failed[3].detail, "expected >= 2, found 0");
    assert_string_equal(verdict.failed[4].detail, "expected firmware ABI >= 1.51, found 1.50");
    assert_false(verdict.pass);
    assert_true(verdict.measurement_checked);
    snp_policy_free(policy);
}

/* Evaluation does not stop at the first failure: every broken rule is named, in order. */
static void test_every_rule_fails_at_once(void **state)
{
    (void)state;
    snp_policy *policy = fixture_strict_policy_with("{\"products\":[\"Genoa\"]}");
    snp_evidence evidence;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_TURIN, &evidence), VTPMCA_OK);
    evidence_change changes[] = {set_version_2,
                                 set_other_measurement,
                                 set_debug,
                                 set_migration_agent,
                                 set_vmpl_2,
                                 lower_reported_bootloader,
                                 lower_tee,
                                 lower_snp,
                                 lower_microcode,
                                 lower_fmc,
                                 lower_guest_svn,
                                 set_other_host_data,
                                 set_other_id_key,
                                 set_other_author_key,
                                 set_other_family_id,
                                 set_other_image_id,
                                 set_smt_both,
                                 clear_single_socket,
                                 set_vlek,
                                 set_abi_1_50};
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
        changes[i](&evidence);
    snp_verdict verdict;
    evaluate(policy, &evidence, &verdict);
    const char *checks[] = {"report_version",
                            "measurement",
                            "debug",
                            "migration_agent",
                            "vmpl",
                            "min_tcb.bootloader",
                            "min_tcb.tee",
                            "min_tcb.snp",
                            "min_tcb.microcode",
                            "min_tcb.fmc",
                            "guest_svn",
                            "host_data",
                            "id_key_digest",
                            "author_key_digest",
                            "family_id",
                            "image_id",
                            "smt",
                            "single_socket",
                            "signer",
                            "product",
                            "abi"};
    assert_failed_checks(&verdict, checks, sizeof(checks) / sizeof(checks[0]));
    assert_int_equal(verdict.checks_run, FIXTURE_STRICT_CHECKS + 1);
    snp_policy_free(policy);
}

/* 5000 measurements in hashing order (not sorted), plus upper-case duplicates: lookups find
 * the smallest, the largest and a middle entry, and miss values just outside the list. */
static void test_long_measurement_list(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    uint8_t(*digests)[48] = calloc(COUNT + 1, 48);
    assert_non_null(digests);
    json_t *list = json_array();
    char hex[97];
    size_t smallest = 0, largest = 0;
    for (uint32_t i = 0; i <= COUNT; i++) {
        unsigned int md_len = 0;
        uint8_t counter[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                              (uint8_t)i};
        assert_int_equal(
            EVP_Digest(counter, sizeof(counter), digests[i], &md_len, EVP_sha384(), NULL), 1);
        if (i == COUNT)
            break; /* digests[COUNT] stays out of the policy */
        if (memcmp(digests[i], digests[smallest], 48) < 0)
            smallest = i;
        if (memcmp(digests[i], digests[largest], 48) > 0)
            largest = i;
        assert_int_equal(vt_hex_encode(digests[i], 48, hex, sizeof(hex)), VTPMCA_OK);
        json_array_append_new(list, json_string(hex));
    }
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(vt_hex_encode(digests[i], 48, hex, sizeof(hex)), VTPMCA_OK);
        for (char *c = hex; *c; c++)
            if (*c >= 'a' && *c <= 'f')
                *c = (char)(*c - 'a' + 'A');
        json_array_append_new(list, json_string(hex));
    }
    json_t *doc = fixture_strict_policy();
    json_object_set_new(doc, "measurements", list);
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(fixture_parse_policy(doc, &policy, &diag), VTPMCA_OK);

    snp_evidence evidence;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, &evidence), VTPMCA_OK);
    snp_verdict verdict;
    size_t members[] = {smallest, largest, COUNT / 2, 0, COUNT - 1};
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        memcpy(evidence.report.measurement, digests[members[i]], 48);
        evaluate(policy, &evidence, &verdict);
        assert_failed_checks(&verdict, NULL, 0);
    }
    const char *measurement_check[] = {"measurement"};
    uint8_t outside[4][48];
    memcpy(outside[0], digests[COUNT], 48); /* not in the list */
    memset(outside[1], 0, 48);              /* below the smallest */
    memset(outside[2], 0xff, 48);           /* above the largest */
    memcpy(outside[3], digests[largest], 48);
    outside[3][47] ^= 1; /* next to the largest */
    for (size_t i = 0; i < 4; i++) {
        memcpy(evidence.report.measurement, outside[i], 48);
        evaluate(policy, &evidence, &verdict);
        assert_failed_checks(&verdict, measurement_check, 1);
        assert_non_null(strstr(verdict.failed[0].detail, "5000 allowed"));
    }

    /* Canonical form: 5000 unique entries, strictly ascending, lower-case. */
    char *text = canonical(policy);
    json_t *parsed = json_loads(text, 0, NULL);
    assert_non_null(parsed);
    json_t *sorted = json_object_get(parsed, "measurements");
    assert_int_equal(json_array_size(sorted), COUNT);
    for (size_t i = 1; i < COUNT; i++)
        assert_true(strcmp(json_string_value(json_array_get(sorted, i - 1)),
                           json_string_value(json_array_get(sorted, i))) < 0);
    assert_int_equal(vt_hex_encode(digests[smallest], 48, hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(json_string_value(json_array_get(sorted, 0)), hex);
    assert_int_equal(vt_hex_encode(digests[largest], 48, hex, sizeof(hex)), VTPMCA_OK);
    assert_string_equal(json_string_value(json_array_get(sorted, COUNT - 1)), hex);
    json_decref(parsed);
    free(text);
    free(digests);
    snp_policy_free(policy);
}

static void test_evidence_failure_verdict(void **state)
{
    (void)state;
    snp_verdict verdict;
    memset(&verdict, 0xa5, sizeof(verdict));
    assert_int_equal(
        snp_verdict_set_evidence_failure(&verdict, VTPMCA_ERR_CRYPTO, "report signature \xff bad"),
        VTPMCA_OK);
    const char *checks[] = {SNP_CHECK_EVIDENCE};
    assert_failed_checks(&verdict, checks, 1);
    assert_string_equal(verdict.failed[0].detail, "crypto: report signature ? bad");
    assert_int_equal(verdict.checks_run, 0);
    assert_false(verdict.measurement_checked);
    assert_int_equal(snp_verdict_set_evidence_failure(&verdict, VTPMCA_ERR_NOT_FOUND, NULL),
                     VTPMCA_OK);
    assert_string_equal(verdict.failed[0].detail, "not_found");
}

/* ---- genuine hardware reports ---- */

static snp_policy *genuine_policy(const snp_evidence *a, const snp_evidence *b,
                                  const char *overrides)
{
    char ma[97], mb[97];
    assert_int_equal(vt_hex_encode(a->report.measurement, 48, ma, sizeof(ma)), VTPMCA_OK);
    assert_int_equal(vt_hex_encode(b->report.measurement, 48, mb, sizeof(mb)), VTPMCA_OK);
    json_t *doc = json_pack("{s:[s,s]}", "measurements", ma, mb);
    if (overrides != NULL) {
        json_t *extra = json_loads(overrides, 0, NULL);
        assert_non_null(extra);
        json_object_update(doc, extra);
        json_decref(extra);
    }
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(fixture_parse_policy(doc, &policy, &diag), VTPMCA_OK);
    return policy;
}

static void test_genuine_reports(void **state)
{
    (void)state;
    snp_evidence debug_report, report_b;
    vtpmca_diag diag = {{0}};
    if (fixture_genuine_evidence("milan-v2-report.bin", &debug_report, &diag) != VTPMCA_OK ||
        fixture_genuine_evidence("milan-v2-report-b.bin", &report_b, &diag) != VTPMCA_OK)
        fail_msg("genuine report: %s", diag.msg);
    snp_verdict verdict;

    /* Facts read with xxd: report a is version 2 with DEBUG set, TCB bootloader 2 / snp 5 /
     * microcode 68, firmware 1.49; report b has TCB 3 / 8 / 115 and firmware 1.52. Both have
     * SMT on. */
    snp_policy *policy = genuine_policy(&debug_report, &report_b, NULL);
    evaluate(policy, &debug_report, &verdict);
    const char *debug_only[] = {"debug"};
    assert_failed_checks(&verdict, debug_only, 1);
    evaluate(policy, &report_b, &verdict);
    assert_failed_checks(&verdict, NULL, 0);
    snp_policy_free(policy);

    policy = genuine_policy(&debug_report, &report_b, "{\"allow_debug\":true}");
    evaluate(policy, &debug_report, &verdict);
    assert_failed_checks(&verdict, NULL, 0);
    snp_policy_free(policy);

    policy = genuine_policy(
        &debug_report, &report_b,
        "{\"min_tcb\":{\"bootloader\":3,\"snp\":8,\"microcode\":115},"
        "\"min_abi\":{\"major\":1,\"minor\":50},\"smt\":\"allowed\",\"products\":[\"Milan\"]}");
    evaluate(policy, &debug_report, &verdict);
    const char *stale[] = {"debug", "min_tcb.bootloader", "min_tcb.snp", "min_tcb.microcode",
                           "abi"};
    assert_failed_checks(&verdict, stale, 5);
    evaluate(policy, &report_b, &verdict);
    assert_failed_checks(&verdict, NULL, 0);
    snp_policy_free(policy);

    policy = genuine_policy(&debug_report, &report_b, "{\"smt\":\"forbidden\"}");
    evaluate(policy, &report_b, &verdict);
    const char *smt[] = {"smt"};
    assert_failed_checks(&verdict, smt, 1);
    snp_policy_free(policy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_policy_canonical_defaults),
        cmocka_unit_test(test_full_policy_round_trip),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_invalid_hex_lists),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_every_rule),
        cmocka_unit_test(test_failure_details),
        cmocka_unit_test(test_every_rule_fails_at_once),
        cmocka_unit_test(test_long_measurement_list),
        cmocka_unit_test(test_evidence_failure_verdict),
        cmocka_unit_test(test_genuine_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
