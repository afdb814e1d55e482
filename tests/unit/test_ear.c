/* Unit tests for attest/ear.c: EAR status and AR4SI trustworthiness vector for real policy
 * verdicts, the JSON shape of the EAR, the annotated evidence (cross-checked against values
 * read from a genuine report with xxd) and the verdict rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../support/snp_policy_fixture.h"
#include "vtpmca/ear.h"

#define ISSUED_AT ((time_t)1717200000) /* 2024-06-01T00:00:00Z */

enum {
    II, /* instance-identity */
    CF, /* configuration */
    EX, /* executables */
    FS, /* file-system */
    HW, /* hardware */
    RO, /* runtime-opaque */
    SO, /* storage-opaque */
    SD, /* sourced-data */
    VECTOR_LEN,
};
static const char *const vector_keys[VECTOR_LEN] = {
    "instance-identity", "configuration",  "executables",    "file-system",
    "hardware",          "runtime-opaque", "storage-opaque", "sourced-data",
};

/* Evidence changes a policy override cannot express. */
enum {
    CHANGE_DEBUG = 1 << 0,
    CHANGE_MIGRATION_AGENT = 1 << 1,
    CHANGE_NO_SINGLE_SOCKET = 1 << 2,
    CHANGE_VLEK = 1 << 3,
    EVIDENCE_FAILED = 1 << 4, /* the verifier rejected the evidence: the policy never ran */
};

typedef struct {
    const char *name;
    const char *overrides; /* merged into the strict policy */
    unsigned changes;
    ear_status status;
    int vector[VECTOR_LEN];
} ear_case;

/* The strict policy's baseline claims pass; each case breaks rules through the policy (a
 * value the claims do not have) or the evidence. */
static const ear_case ear_cases[] = {
    {"pass", NULL, 0, EAR_STATUS_AFFIRMING, {2, 2, 2, 0, 2, 2, 0, 0}},
    {"pass, any measurement",
     "{\"allow_any_measurement\":true,\"measurements\":[]}",
     0,
     EAR_STATUS_AFFIRMING,
     {2, 2, 0, 0, 2, 2, 0, 0}},
    {"pass, debug allowed",
     "{\"allow_debug\":true}",
     CHANGE_DEBUG,
     EAR_STATUS_AFFIRMING,
     {2, 2, 2, 0, 2, 0, 0, 0}},
    {"debug", NULL, CHANGE_DEBUG, EAR_STATUS_CONTRAINDICATED, {2, 32, 2, 0, 2, 96, 0, 0}},
    {"measurement",
     "{\"measurements\":[\"" /* 48 x 0x99 */
     "999999999999999999999999999999999999999999999999"
     "999999999999999999999999999999999999999999999999\"]}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 33, 0, 2, 2, 0, 0}},
    {"tcb only",
     "{\"min_tcb\":{\"snp\":9,\"microcode\":200}}",
     0,
     EAR_STATUS_WARNING,
     {2, 2, 2, 0, 32, 2, 0, 0}},
    {"guest svn only", "{\"min_guest_svn\":3}", 0, EAR_STATUS_WARNING, {2, 2, 32, 0, 2, 2, 0, 0}},
    {"abi only",
     "{\"min_abi\":{\"major\":1,\"minor\":52}}",
     0,
     EAR_STATUS_WARNING,
     {2, 2, 2, 0, 32, 2, 0, 0}},
    {"tcb and svn",
     "{\"min_tcb\":{\"tee\":2},\"min_guest_svn\":3}",
     0,
     EAR_STATUS_WARNING,
     {2, 2, 32, 0, 32, 2, 0, 0}},
    {"tcb and debug",
     "{\"min_tcb\":{\"tee\":2}}",
     CHANGE_DEBUG,
     EAR_STATUS_CONTRAINDICATED,
     {2, 32, 2, 0, 32, 96, 0, 0}},
    {"measurement and svn",
     "{\"measurements\":[\""
     "999999999999999999999999999999999999999999999999"
     "999999999999999999999999999999999999999999999999\"],"
     "\"min_guest_svn\":3}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 33, 0, 2, 2, 0, 0}},
    {"report version",
     "{\"version_range\":{\"min\":5,\"max\":5}}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 2, 0, 96, 2, 0, 0}},
    {"migration agent",
     NULL,
     CHANGE_MIGRATION_AGENT,
     EAR_STATUS_CONTRAINDICATED,
     {2, 32, 2, 0, 2, 2, 0, 0}},
    {"vmpl", "{\"vmpl\":1}", 0, EAR_STATUS_CONTRAINDICATED, {2, 96, 2, 0, 2, 2, 0, 0}},
    {"host_data",
     "{\"host_data\":[\"0000000000000000000000000000000000000000000000000000000000000000\"]}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 96, 2, 0, 2, 2, 0, 0}},
    {"id_key_digest",
     "{\"id_key_digest\":[\"" /* 48 zero bytes */
     "000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000\"]}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 33, 0, 2, 2, 0, 0}},
    {"image_id",
     "{\"image_id\":[\"00000000000000000000000000000000\"]}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 33, 0, 2, 2, 0, 0}},
    {"smt", "{\"smt\":\"allowed\"}", 0, EAR_STATUS_CONTRAINDICATED, {2, 32, 2, 0, 2, 2, 0, 0}},
    {"single socket",
     NULL,
     CHANGE_NO_SINGLE_SOCKET,
     EAR_STATUS_CONTRAINDICATED,
     {2, 32, 2, 0, 2, 2, 0, 0}},
    {"signer", NULL, CHANGE_VLEK, EAR_STATUS_CONTRAINDICATED, {96, 2, 2, 0, 2, 2, 0, 0}},
    {"product",
     "{\"products\":[\"Genoa\"]}",
     0,
     EAR_STATUS_CONTRAINDICATED,
     {2, 2, 2, 0, 96, 2, 0, 0}},
    {"evidence failed",
     NULL,
     EVIDENCE_FAILED,
     EAR_STATUS_CONTRAINDICATED,
     {99, 0, 0, 0, 99, 0, 0, 0}},
};

static const ear_case *find_case(const char *name)
{
    for (size_t i = 0; i < sizeof(ear_cases) / sizeof(ear_cases[0]); i++)
        if (strcmp(ear_cases[i].name, name) == 0)
            return &ear_cases[i];
    fail_msg("no case %s", name);
    return NULL;
}

static void make_case(const ear_case *c, snp_evidence *evidence, snp_verdict *verdict)
{
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, evidence), VTPMCA_OK);
    if (c->changes & CHANGE_DEBUG)
        evidence->report.policy |= SNP_POLICY_DEBUG;
    if (c->changes & CHANGE_MIGRATION_AGENT)
        evidence->report.policy |= SNP_POLICY_MIGRATE_MA;
    if (c->changes & CHANGE_NO_SINGLE_SOCKET)
        evidence->report.policy &= ~SNP_POLICY_SINGLE_SOCKET;
    if (c->changes & CHANGE_VLEK)
        evidence->signer = SNP_SIGNER_VLEK;
    if (c->changes & EVIDENCE_FAILED) {
        assert_int_equal(
            snp_verdict_set_evidence_failure(verdict, VTPMCA_ERR_CRYPTO, "signature mismatch"),
            VTPMCA_OK);
        return;
    }
    snp_policy *policy = fixture_strict_policy_with(c->overrides);
    assert_int_equal(snp_policy_evaluate(policy, evidence, verdict), VTPMCA_OK);
    snp_policy_free(policy);
}

/* Renders, serialises and parses back, so the assertions see what a relying party sees. */
static json_t *render_round_trip(const snp_evidence *evidence, const snp_verdict *verdict,
                                 const char *policy_id)
{
    json_t *ear = NULL;
    assert_int_equal(ear_render_snp(evidence, verdict, policy_id, ISSUED_AT, &ear), VTPMCA_OK);
    char *text = json_dumps(ear, JSON_COMPACT);
    json_decref(ear);
    assert_non_null(text);
    json_error_t error;
    json_t *parsed = json_loads(text, JSON_REJECT_DUPLICATES, &error);
    free(text);
    assert_non_null(parsed);
    return parsed;
}

static ear_status tier_of(int value)
{
    if (value >= 96 && value <= 127)
        return EAR_STATUS_CONTRAINDICATED;
    if (value >= 32 && value <= 95)
        return EAR_STATUS_WARNING;
    if (value >= 2 && value <= 31)
        return EAR_STATUS_AFFIRMING;
    return EAR_STATUS_NONE;
}

static void test_status_and_vector(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ear_cases) / sizeof(ear_cases[0]); i++) {
        const ear_case *c = &ear_cases[i];
        print_message("case: %s\n", c->name);
        snp_evidence evidence;
        snp_verdict verdict;
        make_case(c, &evidence, &verdict);
        assert_int_equal(verdict.pass, c->status == EAR_STATUS_AFFIRMING);
        assert_int_equal(ear_status_from_verdict(&verdict), c->status);

        json_t *ear = render_round_trip(&evidence, &verdict, "fleet-a/v1");
        json_t *submod = json_object_get(json_object_get(ear, "submods"), EAR_SUBMOD_SNP);
        assert_string_equal(json_string_value(json_object_get(submod, "ear.status")),
                            ear_status_name(c->status));
        json_t *vector = json_object_get(submod, "ear.trustworthiness-vector");
        assert_int_equal(json_object_size(vector), VECTOR_LEN);
        ear_status worst = EAR_STATUS_NONE;
        for (size_t k = 0; k < VECTOR_LEN; k++) {
            json_t *claim = json_object_get(vector, vector_keys[k]);
            assert_true(json_is_integer(claim));
            if (json_integer_value(claim) != c->vector[k])
                fail_msg("%s: %s is %lld, expected %d", c->name, vector_keys[k],
                         (long long)json_integer_value(claim), c->vector[k]);
            if (tier_of(c->vector[k]) > worst)
                worst = tier_of(c->vector[k]);
        }
        /* EAR: the status is never more trusted than the worst claim in the vector. */
        assert_true(c->status >= worst);
        json_decref(ear);
    }
}

static void test_status_edge_cases(void **state)
{
    (void)state;
    snp_verdict verdict;
    memset(&verdict, 0, sizeof(verdict));
    assert_int_equal(ear_status_from_verdict(NULL), EAR_STATUS_NONE);
    /* Failing without a named failure is inconsistent: fail closed. */
    assert_int_equal(ear_status_from_verdict(&verdict), EAR_STATUS_CONTRAINDICATED);
    verdict.pass = true;
    assert_int_equal(ear_status_from_verdict(&verdict), EAR_STATUS_AFFIRMING);
    /* A check name this version does not know is treated as a security failure. */
    verdict.pass = false;
    verdict.n_failed = 2;
    snprintf(verdict.failed[0].check, sizeof(verdict.failed[0].check), "min_tcb.snp");
    snprintf(verdict.failed[1].check, sizeof(verdict.failed[1].check), "future_rule");
    assert_int_equal(ear_status_from_verdict(&verdict), EAR_STATUS_CONTRAINDICATED);
    verdict.n_failed = 1;
    assert_int_equal(ear_status_from_verdict(&verdict), EAR_STATUS_WARNING);

    assert_string_equal(ear_status_name(EAR_STATUS_NONE), "none");
    assert_string_equal(ear_status_name(EAR_STATUS_AFFIRMING), "affirming");
    assert_string_equal(ear_status_name(EAR_STATUS_WARNING), "warning");
    assert_string_equal(ear_status_name(EAR_STATUS_CONTRAINDICATED), "contraindicated");
    assert_string_equal(ear_status_name((ear_status)42), "unknown");
}

static void test_ear_shape(void **state)
{
    (void)state;
    snp_evidence evidence;
    snp_verdict verdict;
    make_case(find_case("pass"), &evidence, &verdict);
    json_t *ear = render_round_trip(&evidence, &verdict, "fleet-a/v7");
    assert_int_equal(json_object_size(ear), 4);
    assert_string_equal(json_string_value(json_object_get(ear, "eat_profile")),
                        "tag:github.com,2023:veraison/ear");
    assert_int_equal(json_integer_value(json_object_get(ear, "iat")), 1717200000);
    json_t *verifier = json_object_get(ear, "ear.verifier-id");
    assert_int_equal(json_object_size(verifier), 2);
    assert_string_equal(json_string_value(json_object_get(verifier, "developer")), "vtpmca");
    assert_string_equal(json_string_value(json_object_get(verifier, "build")),
                        "vtpmca " VTPMCA_VERSION);
    json_t *submods = json_object_get(ear, "submods");
    assert_int_equal(json_object_size(submods), 1);
    json_t *submod = json_object_get(submods, "SEV-SNP");
    assert_int_equal(json_object_size(submod), 4);
    assert_string_equal(json_string_value(json_object_get(submod, "ear.status")), "affirming");
    assert_string_equal(json_string_value(json_object_get(submod, "ear.appraisal-policy-id")),
                        "fleet-a/v7");
    json_t *annotated = json_object_get(submod, "ear.veraison.annotated-evidence");
    assert_true(json_is_object(annotated));
    char measurement[97];
    fixture_hex(FIXTURE_MEASUREMENT, 48, measurement);
    assert_string_equal(json_string_value(json_object_get(annotated, "measurement")), measurement);
    json_decref(ear);

    /* Without a policy id the claim is left out. */
    ear = render_round_trip(&evidence, &verdict, NULL);
    submod = json_object_get(json_object_get(ear, "submods"), "SEV-SNP");
    assert_int_equal(json_object_size(submod), 3);
    assert_null(json_object_get(submod, "ear.appraisal-policy-id"));
    json_decref(ear);
}

static const char *string_at(json_t *obj, const char *key)
{
    const char *value = json_string_value(json_object_get(obj, key));
    if (value == NULL)
        fail_msg("missing string %s", key);
    return value;
}

static long long int_at(json_t *obj, const char *key)
{
    json_t *value = json_object_get(obj, key);
    if (!json_is_integer(value))
        fail_msg("missing integer %s", key);
    return json_integer_value(value);
}

static bool bool_at(json_t *obj, const char *key)
{
    json_t *value = json_object_get(obj, key);
    if (!json_is_boolean(value))
        fail_msg("missing boolean %s", key);
    return json_is_true(value);
}

/* Expected values read from milan-v2-report-b.bin with xxd (offsets from the SNP notes). */
static void test_annotated_genuine_evidence(void **state)
{
    (void)state;
    snp_evidence evidence;
    vtpmca_diag diag = {{0}};
    if (fixture_genuine_evidence("milan-v2-report-b.bin", &evidence, &diag) != VTPMCA_OK)
        fail_msg("genuine report: %s", diag.msg);
    json_t *claims = NULL;
    assert_int_equal(snp_evidence_to_json(&evidence, &claims), VTPMCA_OK);

    assert_int_equal(int_at(claims, "version"), 2);
    assert_int_equal(int_at(claims, "guest_svn"), 0);
    assert_int_equal(int_at(claims, "vmpl"), 0);
    assert_int_equal(int_at(claims, "signature_algo"), 1);
    assert_string_equal(string_at(claims, "measurement"),
                        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb424"
                        "64bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f");
    assert_string_equal(string_at(claims, "report_id"),
                        "92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b");
    assert_string_equal(string_at(claims, "report_id_ma"),
                        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
    assert_int_equal(strncmp(string_at(claims, "chip_id"), "d49554ec717f4e5b", 16), 0);
    assert_int_equal(strlen(string_at(claims, "chip_id")), 128);
    assert_int_equal(
        strncmp(string_at(claims, "report_data"), "d447b55d197491bfe15cf298f9de9986", 32), 0);
    assert_int_equal(strlen(string_at(claims, "report_data")), 128);
    assert_int_equal(strlen(string_at(claims, "host_data")), 64);
    assert_int_equal(strlen(string_at(claims, "id_key_digest")), 96);
    assert_int_equal(strlen(string_at(claims, "author_key_digest")), 96);
    assert_int_equal(strlen(string_at(claims, "family_id")), 32);
    assert_int_equal(strlen(string_at(claims, "image_id")), 32);

    json_t *policy = json_object_get(claims, "policy");
    assert_string_equal(string_at(policy, "raw"), "0x0000000000030000");
    assert_true(bool_at(policy, "smt"));
    assert_false(bool_at(policy, "debug"));
    assert_false(bool_at(policy, "migrate_ma"));
    assert_false(bool_at(policy, "single_socket"));
    assert_int_equal(int_at(policy, "abi_major"), 0);
    assert_int_equal(int_at(policy, "abi_minor"), 0);

    json_t *platform = json_object_get(claims, "platform_info");
    assert_string_equal(string_at(platform, "raw"), "0x0000000000000001");
    assert_true(bool_at(platform, "smt_en"));
    assert_false(bool_at(platform, "tsme_en"));

    json_t *key_info = json_object_get(claims, "key_info");
    assert_int_equal(int_at(key_info, "raw"), 0);
    assert_string_equal(string_at(key_info, "signing_key"), "VCEK");
    assert_false(bool_at(key_info, "author_key_en"));
    assert_false(bool_at(key_info, "mask_chip_key"));

    const char *tcbs[] = {"current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"};
    for (size_t i = 0; i < 4; i++) {
        json_t *tcb = json_object_get(claims, tcbs[i]);
        assert_string_equal(string_at(tcb, "raw"), "0x7308000000000003");
        assert_int_equal(int_at(tcb, "bootloader"), 3);
        assert_int_equal(int_at(tcb, "tee"), 0);
        assert_int_equal(int_at(tcb, "snp"), 8);
        assert_int_equal(int_at(tcb, "microcode"), 115);
        assert_null(json_object_get(tcb, "fmc")); /* Milan has no FMC component */
        assert_int_equal(json_object_size(tcb), 5);
    }
    json_t *current = json_object_get(claims, "current_version");
    assert_int_equal(int_at(current, "major"), 1);
    assert_int_equal(int_at(current, "minor"), 52);
    assert_int_equal(int_at(current, "build"), 4);
    json_t *committed = json_object_get(claims, "committed_version");
    assert_int_equal(int_at(committed, "minor"), 52);
    json_t *cpuid = json_object_get(claims, "cpuid");
    assert_int_equal(int_at(cpuid, "family"), 0); /* v2 has no CPUID */
    assert_string_equal(string_at(claims, "launch_mit_vector"), "0x0000000000000000");
    assert_string_equal(string_at(claims, "current_mit_vector"), "0x0000000000000000");
    assert_string_equal(string_at(claims, "product"), "Milan");
    assert_string_equal(string_at(claims, "signer"), "VCEK");
    assert_string_equal(string_at(claims, "vcek_source"), snp_vcek_source_name(SNP_VCEK_SUPPLIED));
    assert_string_equal(string_at(claims, "vcek_product_name"), "Milan-B0");
    json_decref(claims);

    /* The DEBUG report shows the flag. */
    if (fixture_genuine_evidence("milan-v2-report.bin", &evidence, &diag) != VTPMCA_OK)
        fail_msg("genuine report: %s", diag.msg);
    assert_int_equal(snp_evidence_to_json(&evidence, &claims), VTPMCA_OK);
    policy = json_object_get(claims, "policy");
    assert_true(bool_at(policy, "debug"));
    assert_string_equal(string_at(policy, "raw"), "0x00000000000b0000");
    json_decref(claims);
}

/* Turin names the FMC component; the raw value is byte 0 FMC, 1 bootloader, 2 TEE, 3 SNP,
 * 7 microcode. */
static void test_annotated_turin_tcb(void **state)
{
    (void)state;
    snp_evidence evidence;
    assert_int_equal(fixture_evidence(SNP_PRODUCT_TURIN, &evidence), VTPMCA_OK);
    evidence.report.policy |= SNP_POLICY_MIGRATE_MA | SNP_POLICY_DEBUG | SNP_POLICY_SMT;
    evidence.report.policy |= 0x0133; /* ABI 1.51 */
    evidence.report.key_info = 0x3 | (SNP_SIGNER_VLEK << 2);
    evidence.signer = SNP_SIGNER_VLEK;
    evidence.vcek_source = SNP_VCEK_KDS;
    /* A stray byte from a certificate is shown, not allowed to break the rendering. */
    snprintf(evidence.vcek_product_name, sizeof(evidence.vcek_product_name), "Turin\xff\n");
    json_t *claims = NULL;
    assert_int_equal(snp_evidence_to_json(&evidence, &claims), VTPMCA_OK);
    json_t *tcb = json_object_get(claims, "reported_tcb");
    assert_string_equal(string_at(tcb, "raw"), "0x7300000008010302");
    assert_int_equal(int_at(tcb, "fmc"), 2);
    assert_int_equal(int_at(tcb, "bootloader"), 3);
    assert_int_equal(int_at(tcb, "tee"), 1);
    assert_int_equal(int_at(tcb, "snp"), 8);
    assert_int_equal(int_at(tcb, "microcode"), 115);
    json_t *policy = json_object_get(claims, "policy");
    assert_true(bool_at(policy, "debug"));
    assert_true(bool_at(policy, "migrate_ma"));
    assert_true(bool_at(policy, "smt"));
    assert_true(bool_at(policy, "single_socket"));
    assert_int_equal(int_at(policy, "abi_major"), 1);
    assert_int_equal(int_at(policy, "abi_minor"), 51);
    json_t *key_info = json_object_get(claims, "key_info");
    assert_string_equal(string_at(key_info, "signing_key"), "VLEK");
    assert_true(bool_at(key_info, "author_key_en"));
    assert_true(bool_at(key_info, "mask_chip_key"));
    assert_string_equal(string_at(claims, "product"), "Turin");
    assert_string_equal(string_at(claims, "signer"), "VLEK");
    assert_string_equal(string_at(claims, "vcek_source"), snp_vcek_source_name(SNP_VCEK_KDS));
    assert_string_equal(string_at(claims, "vcek_product_name"), "Turin??");
    json_decref(claims);

    /* Milan fixture TCB: byte 0 bootloader, 1 TEE, 6 SNP, 7 microcode. */
    assert_int_equal(fixture_evidence(SNP_PRODUCT_MILAN, &evidence), VTPMCA_OK);
    assert_int_equal(snp_evidence_to_json(&evidence, &claims), VTPMCA_OK);
    assert_string_equal(string_at(json_object_get(claims, "committed_tcb"), "raw"),
                        "0x7308000000000103");
    json_decref(claims);
}

static void test_verdict_json(void **state)
{
    (void)state;
    snp_evidence evidence;
    snp_verdict verdict;
    make_case(find_case("tcb and debug"), &evidence, &verdict);
    json_t *obj = NULL;
    assert_int_equal(snp_verdict_to_json(&verdict, &obj), VTPMCA_OK);
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    json_t *parsed = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(parsed);
    assert_int_equal(json_object_size(parsed), 3);
    assert_false(bool_at(parsed, "pass"));
    assert_int_equal(int_at(parsed, "checks_run"), FIXTURE_STRICT_CHECKS);
    json_t *failed = json_object_get(parsed, "failed");
    assert_int_equal(json_array_size(failed), 2);
    assert_string_equal(string_at(json_array_get(failed, 0), "check"), "debug");
    assert_string_equal(string_at(json_array_get(failed, 1), "check"), "min_tcb.tee");
    assert_string_equal(string_at(json_array_get(failed, 1), "detail"), verdict.failed[1].detail);
    json_decref(parsed);

    make_case(find_case("pass"), &evidence, &verdict);
    assert_int_equal(snp_verdict_to_json(&verdict, &obj), VTPMCA_OK);
    assert_true(bool_at(obj, "pass"));
    assert_int_equal(json_array_size(json_object_get(obj, "failed")), 0);
    json_decref(obj);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    snp_evidence evidence;
    snp_verdict verdict;
    make_case(find_case("pass"), &evidence, &verdict);
    json_t *out = NULL;
    assert_int_equal(snp_evidence_to_json(NULL, &out), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_evidence_to_json(&evidence, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_verdict_to_json(NULL, &out), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_verdict_to_json(&verdict, NULL), VTPMCA_ERR_INVALID_ARG);
    snp_verdict overflowing = verdict;
    overflowing.n_failed = SNP_VERDICT_MAX_FAILURES + 1;
    assert_int_equal(snp_verdict_to_json(&overflowing, &out), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_render_snp(NULL, &verdict, "p", ISSUED_AT, &out), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_render_snp(&evidence, NULL, "p", ISSUED_AT, &out), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_render_snp(&evidence, &verdict, "p", ISSUED_AT, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ear_render_snp(&evidence, &verdict, "p", -1, &out), VTPMCA_ERR_INVALID_ARG);
    /* A policy id that is not UTF-8 cannot go into JSON. */
    assert_int_equal(ear_render_snp(&evidence, &verdict, "fleet-\xff", ISSUED_AT, &out),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_vector),
        cmocka_unit_test(test_status_edge_cases),
        cmocka_unit_test(test_ear_shape),
        cmocka_unit_test(test_annotated_genuine_evidence),
        cmocka_unit_test(test_annotated_turin_tcb),
        cmocka_unit_test(test_verdict_json),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
