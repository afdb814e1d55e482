/* EAR attestation results (draft-fv-rats-ear) for SEV-SNP evidence, with the AR4SI
 * trustworthiness vector (draft-ietf-rats-ar4si), and JSON renderings of claims and
 * verdicts. The mapping from policy checks to vector claims is documented in
 * docs/policy.md. */
#include "vtpmca/ear.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vtpmca/encoding.h"

/* Guest policy ABI fields (report offset 0x008, bits 7:0 minor, 15:8 major). */
#define GUEST_POLICY_ABI_MINOR(policy) ((unsigned)((policy)&0xffu))
#define GUEST_POLICY_ABI_MAJOR(policy) ((unsigned)(((policy) >> 8) & 0xffu))
/* key_info (report offset 0x048). */
#define KEY_INFO_AUTHOR_KEY_EN 0x1u
#define KEY_INFO_MASK_CHIP_KEY 0x2u

/* AR4SI trustworthiness claim values used here. */
enum {
    AR4SI_NO_CLAIM = 0,
    AR4SI_AFFIRMING = 2, /* trustworthy instance, approved config/runtime, genuine hw, ... */
    AR4SI_UNSAFE = 32,   /* configuration / hardware / executables: known weaknesses */
    AR4SI_UNRECOGNIZED_RUNTIME = 33,
    AR4SI_CONTRAINDICATED = 96, /* untrustworthy instance, unsupportable config, visible memory */
    AR4SI_CRYPTO_FAILED = 99,
};

typedef enum {
    TV_INSTANCE_IDENTITY = 0,
    TV_CONFIGURATION,
    TV_EXECUTABLES,
    TV_FILE_SYSTEM,
    TV_HARDWARE,
    TV_RUNTIME_OPAQUE,
    TV_STORAGE_OPAQUE,
    TV_SOURCED_DATA,
    TV_COUNT,
} tv_entry;

static const char *const tv_keys[TV_COUNT] = {
    "instance-identity", "configuration",  "executables",    "file-system",
    "hardware",          "runtime-opaque", "storage-opaque", "sourced-data",
};

/* What each failed policy check says about the vector. `stale` marks checks that only say
 * the platform or guest is older than required (status warning); every other failure is a
 * security failure (status contraindicated). A check may touch several entries. */
static const struct {
    const char *check;
    tv_entry entry;
    int value;
    bool stale;
} check_effects[] = {
    {"report_version", TV_HARDWARE, AR4SI_CONTRAINDICATED, false},
    {"measurement", TV_EXECUTABLES, AR4SI_UNRECOGNIZED_RUNTIME, false},
    {"debug", TV_CONFIGURATION, AR4SI_UNSAFE, false},
    {"debug", TV_RUNTIME_OPAQUE, AR4SI_CONTRAINDICATED, false},
    {"migration_agent", TV_CONFIGURATION, AR4SI_UNSAFE, false},
    {"vmpl", TV_CONFIGURATION, AR4SI_CONTRAINDICATED, false},
    {"min_tcb.bootloader", TV_HARDWARE, AR4SI_UNSAFE, true},
    {"min_tcb.tee", TV_HARDWARE, AR4SI_UNSAFE, true},
    {"min_tcb.snp", TV_HARDWARE, AR4SI_UNSAFE, true},
    {"min_tcb.microcode", TV_HARDWARE, AR4SI_UNSAFE, true},
    {"min_tcb.fmc", TV_HARDWARE, AR4SI_UNSAFE, true},
    {"guest_svn", TV_EXECUTABLES, AR4SI_UNSAFE, true},
    {"host_data", TV_CONFIGURATION, AR4SI_CONTRAINDICATED, false},
    {"id_key_digest", TV_EXECUTABLES, AR4SI_UNRECOGNIZED_RUNTIME, false},
    {"author_key_digest", TV_EXECUTABLES, AR4SI_UNRECOGNIZED_RUNTIME, false},
    {"family_id", TV_EXECUTABLES, AR4SI_UNRECOGNIZED_RUNTIME, false},
    {"image_id", TV_EXECUTABLES, AR4SI_UNRECOGNIZED_RUNTIME, false},
    {"smt", TV_CONFIGURATION, AR4SI_UNSAFE, false},
    {"single_socket", TV_CONFIGURATION, AR4SI_UNSAFE, false},
    {"signer", TV_INSTANCE_IDENTITY, AR4SI_CONTRAINDICATED, false},
    {"product", TV_HARDWARE, AR4SI_CONTRAINDICATED, false},
    {"abi", TV_HARDWARE, AR4SI_UNSAFE, true},
};
#define CHECK_EFFECT_COUNT (sizeof(check_effects) / sizeof(check_effects[0]))

const char *ear_status_name(ear_status status)
{
    switch (status) {
    case EAR_STATUS_NONE:
        return "none";
    case EAR_STATUS_AFFIRMING:
        return "affirming";
    case EAR_STATUS_WARNING:
        return "warning";
    case EAR_STATUS_CONTRAINDICATED:
        return "contraindicated";
    }
    return "unknown";
}

/* AR4SI tiers: 96..127 contraindicated, 32..95 warning, 2..31 affirming, the rest none. */
static ear_status claim_tier(int value)
{
    if (value >= 96 && value <= 127)
        return EAR_STATUS_CONTRAINDICATED;
    if (value >= 32 && value <= 95)
        return EAR_STATUS_WARNING;
    if (value >= 2 && value <= 31)
        return EAR_STATUS_AFFIRMING;
    return EAR_STATUS_NONE;
}

static bool is_evidence_failure(const snp_verdict *verdict)
{
    for (unsigned i = 0; i < verdict->n_failed && i < SNP_VERDICT_MAX_FAILURES; i++)
        if (strcmp(verdict->failed[i].check, SNP_CHECK_EVIDENCE) == 0)
            return true;
    return false;
}

/* A failed check is staleness only if every row that names it says so; unknown names are
 * treated as security failures. */
static bool is_stale_check(const char *check)
{
    bool known = false;
    for (size_t i = 0; i < CHECK_EFFECT_COUNT; i++) {
        if (strcmp(check_effects[i].check, check) != 0)
            continue;
        if (!check_effects[i].stale)
            return false;
        known = true;
    }
    return known;
}

ear_status ear_status_from_verdict(const snp_verdict *verdict)
{
    if (verdict == NULL)
        return EAR_STATUS_NONE;
    if (verdict->pass && verdict->n_failed == 0)
        return EAR_STATUS_AFFIRMING;
    /* A failing verdict without named failures is inconsistent: fail closed. */
    if (verdict->n_failed == 0)
        return EAR_STATUS_CONTRAINDICATED;
    for (unsigned i = 0; i < verdict->n_failed && i < SNP_VERDICT_MAX_FAILURES; i++)
        if (!is_stale_check(verdict->failed[i].check))
            return EAR_STATUS_CONTRAINDICATED;
    return EAR_STATUS_WARNING;
}

/* Keeps the more severe of two claims (higher tier; within a tier the higher value). */
static int more_severe(int current, int candidate)
{
    ear_status a = claim_tier(current), b = claim_tier(candidate);
    if (b > a || (b == a && candidate > current))
        return candidate;
    return current;
}

static void compute_vector(const snp_evidence *evidence, const snp_verdict *verdict,
                           int vector[TV_COUNT])
{
    for (size_t i = 0; i < TV_COUNT; i++)
        vector[i] = AR4SI_NO_CLAIM;
    if (is_evidence_failure(verdict)) {
        /* The report's signature or its key's chain to AMD did not verify: nothing it says
         * can be appraised. */
        vector[TV_INSTANCE_IDENTITY] = AR4SI_CRYPTO_FAILED;
        vector[TV_HARDWARE] = AR4SI_CRYPTO_FAILED;
        return;
    }
    /* Verified SNP evidence: an AMD-rooted key signed it on genuine hardware, and the policy
     * checked the guest configuration. Executables are only affirmed if the measurement was
     * actually checked, and memory opacity only if the guest cannot be debugged. */
    vector[TV_INSTANCE_IDENTITY] = AR4SI_AFFIRMING;
    vector[TV_CONFIGURATION] = AR4SI_AFFIRMING;
    vector[TV_HARDWARE] = AR4SI_AFFIRMING;
    if (verdict->measurement_checked)
        vector[TV_EXECUTABLES] = AR4SI_AFFIRMING;
    if (!(evidence->report.policy & SNP_POLICY_DEBUG))
        vector[TV_RUNTIME_OPAQUE] = AR4SI_AFFIRMING;

    for (unsigned f = 0; f < verdict->n_failed && f < SNP_VERDICT_MAX_FAILURES; f++)
        for (size_t i = 0; i < CHECK_EFFECT_COUNT; i++)
            if (strcmp(check_effects[i].check, verdict->failed[f].check) == 0)
                vector[check_effects[i].entry] =
                    more_severe(vector[check_effects[i].entry], check_effects[i].value);
}

/* ---- JSON renderings ---- */

static json_t *hex_json(const uint8_t *bytes, size_t len)
{
    char hex[2 * 64 + 1];
    if (vt_hex_encode(bytes, len, hex, sizeof(hex)) != VTPMCA_OK)
        return NULL;
    return json_string(hex);
}

/* 64-bit raw values as "0x" hex strings: JSON integers above 2^53 are not portable, and
 * microcode in the top byte makes TCB values exceed 2^63. */
static json_t *u64_json(uint64_t value)
{
    char text[2 + 16 + 1];
    snprintf(text, sizeof(text), "0x%016" PRIx64, value);
    return json_string(text);
}

static json_t *tcb_json(uint64_t raw, const snp_tcb *tcb, snp_product product)
{
    json_t *obj =
        json_pack("{s:o,s:i,s:i,s:i,s:i}", "raw", u64_json(raw), "bootloader", tcb->bootloader,
                  "tee", tcb->tee, "snp", tcb->snp, "microcode", tcb->microcode);
    if (obj != NULL && product == SNP_PRODUCT_TURIN &&
        json_object_set_new(obj, "fmc", json_integer(tcb->fmc)) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* A fixed-size text field filled from a certificate: never read past it, and keep it
 * printable ASCII so one odd byte cannot make the whole rendering fail. */
static json_t *printable_json(const char *field, size_t size)
{
    char text[64];
    size_t len = strnlen(field, size);
    if (len >= sizeof(text))
        len = sizeof(text) - 1;
    for (size_t i = 0; i < len; i++)
        text[i] = field[i] >= 0x20 && field[i] <= 0x7e ? field[i] : '?';
    return json_stringn(text, len);
}

static json_t *version_json(uint8_t major, uint8_t minor, uint8_t build)
{
    return json_pack("{s:i,s:i,s:i}", "major", major, "minor", minor, "build", build);
}

vtpmca_err snp_evidence_to_json(const snp_evidence *evidence, json_t **out)
{
    if (evidence == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    const snp_report *r = &evidence->report;
    snp_product product = evidence->product;
    json_t *obj = json_object();
    if (obj == NULL)
        return VTPMCA_ERR_NOMEM;

    /* json_object_set_new fails on a NULL value, so one flag catches every failed
     * allocation below. */
    bool ok = true;
#define SET(key, value) ok = (json_object_set_new(obj, (key), (value)) == 0) && ok
    SET("version", json_integer(r->version));
    SET("guest_svn", json_integer(r->guest_svn));
    SET("policy",
        json_pack("{s:o,s:i,s:i,s:b,s:b,s:b,s:b}", "raw", u64_json(r->policy), "abi_major",
                  GUEST_POLICY_ABI_MAJOR(r->policy), "abi_minor", GUEST_POLICY_ABI_MINOR(r->policy),
                  "smt", (r->policy & SNP_POLICY_SMT) != 0, "migrate_ma",
                  (r->policy & SNP_POLICY_MIGRATE_MA) != 0, "debug",
                  (r->policy & SNP_POLICY_DEBUG) != 0, "single_socket",
                  (r->policy & SNP_POLICY_SINGLE_SOCKET) != 0));
    SET("family_id", hex_json(r->family_id, sizeof(r->family_id)));
    SET("image_id", hex_json(r->image_id, sizeof(r->image_id)));
    SET("vmpl", json_integer(r->vmpl));
    SET("signature_algo", json_integer(r->signature_algo));
    SET("current_tcb", tcb_json(r->current_tcb, &evidence->current_tcb, product));
    SET("platform_info", json_pack("{s:o,s:b,s:b}", "raw", u64_json(r->platform_info), "smt_en",
                                   (r->platform_info & SNP_PLATFORM_SMT_EN) != 0, "tsme_en",
                                   (r->platform_info & SNP_PLATFORM_TSME_EN) != 0));
    SET("key_info", json_pack("{s:I,s:b,s:b,s:s}", "raw", (json_int_t)r->key_info, "author_key_en",
                              (r->key_info & KEY_INFO_AUTHOR_KEY_EN) != 0, "mask_chip_key",
                              (r->key_info & KEY_INFO_MASK_CHIP_KEY) != 0, "signing_key",
                              snp_signer_name(snp_report_signer(r))));
    SET("report_data", hex_json(r->report_data, sizeof(r->report_data)));
    SET("measurement", hex_json(r->measurement, sizeof(r->measurement)));
    SET("host_data", hex_json(r->host_data, sizeof(r->host_data)));
    SET("id_key_digest", hex_json(r->id_key_digest, sizeof(r->id_key_digest)));
    SET("author_key_digest", hex_json(r->author_key_digest, sizeof(r->author_key_digest)));
    SET("report_id", hex_json(r->report_id, sizeof(r->report_id)));
    SET("report_id_ma", hex_json(r->report_id_ma, sizeof(r->report_id_ma)));
    SET("reported_tcb", tcb_json(r->reported_tcb, &evidence->reported_tcb, product));
    SET("cpuid", json_pack("{s:i,s:i,s:i}", "family", r->cpuid_family, "model", r->cpuid_model,
                           "stepping", r->cpuid_stepping));
    SET("chip_id", hex_json(r->chip_id, sizeof(r->chip_id)));
    SET("committed_tcb", tcb_json(r->committed_tcb, &evidence->committed_tcb, product));
    SET("current_version", version_json(r->current_major, r->current_minor, r->current_build));
    SET("committed_version",
        version_json(r->committed_major, r->committed_minor, r->committed_build));
    SET("launch_tcb", tcb_json(r->launch_tcb, &evidence->launch_tcb, product));
    SET("launch_mit_vector", u64_json(r->launch_mit_vector));
    SET("current_mit_vector", u64_json(r->current_mit_vector));
    SET("product", json_string(snp_product_name(product)));
    SET("signer", json_string(snp_signer_name(evidence->signer)));
    SET("vcek_source", json_string(snp_vcek_source_name(evidence->vcek_source)));
    SET("vcek_product_name",
        printable_json(evidence->vcek_product_name, sizeof(evidence->vcek_product_name)));
#undef SET
    if (!ok) {
        json_decref(obj);
        return VTPMCA_ERR_NOMEM;
    }
    *out = obj;
    return VTPMCA_OK;
}

vtpmca_err snp_verdict_to_json(const snp_verdict *verdict, json_t **out)
{
    if (verdict == NULL || out == NULL || verdict->n_failed > SNP_VERDICT_MAX_FAILURES)
        return VTPMCA_ERR_INVALID_ARG;
    json_t *failed = json_array();
    for (unsigned i = 0; failed != NULL && i < verdict->n_failed; i++) {
        const snp_check_failure *f = &verdict->failed[i];
        json_t *item =
            json_pack("{s:s%,s:s%}", "check", f->check, strnlen(f->check, sizeof(f->check)),
                      "detail", f->detail, strnlen(f->detail, sizeof(f->detail)));
        if (json_array_append_new(failed, item) != 0) {
            json_decref(failed);
            failed = NULL;
        }
    }
    if (failed == NULL)
        return VTPMCA_ERR_NOMEM;
    json_t *obj = json_pack("{s:b,s:I,s:o}", "pass", verdict->pass, "checks_run",
                            (json_int_t)verdict->checks_run, "failed", failed);
    if (obj == NULL)
        return VTPMCA_ERR_NOMEM;
    *out = obj;
    return VTPMCA_OK;
}

vtpmca_err ear_render_snp(const snp_evidence *evidence, const snp_verdict *verdict,
                          const char *policy_id, time_t issued_at, json_t **out)
{
    if (evidence == NULL || verdict == NULL || out == NULL || issued_at < 0)
        return VTPMCA_ERR_INVALID_ARG;
    int vector[TV_COUNT];
    compute_vector(evidence, verdict, vector);
    /* EAR requires the status to be no more trusted than the worst vector claim; the verdict
     * rule gives that for every mapped check, and taking the worse of the two keeps it true
     * whatever the vector says. */
    ear_status status = ear_status_from_verdict(verdict);
    for (size_t i = 0; i < TV_COUNT; i++)
        if (claim_tier(vector[i]) > status)
            status = claim_tier(vector[i]);

    json_t *tv = json_object();
    bool ok = tv != NULL;
    for (size_t i = 0; ok && i < TV_COUNT; i++)
        ok = json_object_set_new(tv, tv_keys[i], json_integer(vector[i])) == 0;
    if (!ok) {
        json_decref(tv);
        return VTPMCA_ERR_NOMEM;
    }
    json_t *annotated = NULL;
    vtpmca_err err = snp_evidence_to_json(evidence, &annotated);
    if (err != VTPMCA_OK) {
        json_decref(tv);
        return err;
    }
    /* "o" steals both references, also when packing fails. */
    json_t *submod =
        json_pack("{s:s,s:o,s:o}", "ear.status", ear_status_name(status),
                  "ear.trustworthiness-vector", tv, "ear.veraison.annotated-evidence", annotated);
    if (submod != NULL && policy_id != NULL &&
        json_object_set_new(submod, "ear.appraisal-policy-id", json_string(policy_id)) != 0) {
        json_decref(submod);
        return VTPMCA_ERR_INVALID_ARG; /* policy_id is not valid UTF-8 */
    }
    if (submod == NULL)
        return VTPMCA_ERR_NOMEM;
    json_t *ear =
        json_pack("{s:s,s:I,s:{s:s,s:s},s:{s:o}}", "eat_profile", EAR_PROFILE, "iat",
                  (json_int_t)issued_at, "ear.verifier-id", "developer", EAR_VERIFIER_DEVELOPER,
                  "build", EAR_VERIFIER_BUILD, "submods", EAR_SUBMOD_SNP, submod);
    if (ear == NULL)
        return VTPMCA_ERR_NOMEM;
    *out = ear;
    return VTPMCA_OK;
}
