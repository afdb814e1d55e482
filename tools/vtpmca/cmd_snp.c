/* vtpmca snp show|verify|import-vcek */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "vtpmca/ear.h"
#include "vtpmca/encoding.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_vcek.h"
#include "vtpmca/snp_verifier.h"

static void format_tcb(const snp_tcb *tcb, snp_product product, char *buf, size_t size)
{
    int n = snprintf(buf, size, "bl=%u tee=%u snp=%u ucode=%u", tcb->bootloader, tcb->tee, tcb->snp,
                     tcb->microcode);
    if (product == SNP_PRODUCT_TURIN && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " fmc=%u", tcb->fmc);
}

static bool has_only_scalars(const json_t *object)
{
    const char *key;
    const json_t *member;
    json_object_foreach((json_t *)object, key, member)
    {
        if (json_is_object(member) || json_is_array(member))
            return false;
    }
    return true;
}

/* Prints a JSON value for a person: one "name  value" line per claim; an object of plain
 * values (a TCB, the policy bits) on one line as "key=value ...", deeper objects as
 * "key.sub" lines. */
static void print_flat_json(const char *prefix, const json_t *value)
{
    if (json_is_object(value) && prefix[0] != '\0' && has_only_scalars(value)) {
        printf("  %-22s", prefix);
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            char *text = json_is_string(member) ? NULL : json_dumps(member, JSON_ENCODE_ANY);
            printf(" %s=%s", key,
                   json_is_string(member) ? json_string_value(member)
                   : text                 ? text
                                          : "?");
            free(text);
        }
        putchar('\n');
        return;
    }
    if (json_is_object(value)) {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            char path[128];
            snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", key);
            print_flat_json(path, member);
        }
        return;
    }
    if (json_is_string(value)) {
        printf("  %-22s %s\n", prefix, json_string_value(value));
        return;
    }
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("  %-22s %s\n", prefix, text ? text : "?");
    free(text);
}

/* ---- snp show ---- */

/* Claims of a parsed but unverified report, in the JSON shape of verified evidence minus the
 * certificate fields. Without a product (v2 reports do not name it; see --product) the TCB
 * layout is unknown, so TCBs keep only their raw value, as snp_report_describe does. */
static vtpmca_err unverified_claims_json(const snp_report *report, snp_product product,
                                         json_t **out)
{
    snp_evidence *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return VTPMCA_ERR_NOMEM;
    ev->report = *report;
    ev->product = product;
    ev->signer = snp_report_signer(report);
    if (product != SNP_PRODUCT_UNKNOWN) {
        snp_tcb_decode(report->reported_tcb, product, &ev->reported_tcb);
        snp_tcb_decode(report->current_tcb, product, &ev->current_tcb);
        snp_tcb_decode(report->committed_tcb, product, &ev->committed_tcb);
        snp_tcb_decode(report->launch_tcb, product, &ev->launch_tcb);
    }
    json_t *claims = NULL;
    vtpmca_err err = snp_evidence_to_json(ev, &claims);
    free(ev);
    if (err != VTPMCA_OK)
        return err;
    json_object_del(claims, "vcek_source");
    json_object_del(claims, "vcek_product_name");
    static const char *const tcb_keys[] = {"current_tcb", "reported_tcb", "committed_tcb",
                                           "launch_tcb"};
    for (size_t i = 0; product == SNP_PRODUCT_UNKNOWN && i < 4; i++) {
        json_t *tcb = json_object_get(claims, tcb_keys[i]);
        json_t *raw = json_incref(json_object_get(tcb, "raw"));
        if (raw != NULL)
            json_object_set_new(claims, tcb_keys[i], json_pack("{s:o}", "raw", raw));
    }
    *out = claims;
    return VTPMCA_OK;
}

/* The product of a report: its CPUID (v3+), else --product. A --product that contradicts the
 * CPUID is an error. */
static vtpmca_err report_product(const snp_report *report, snp_product requested, snp_product *out,
                                 vtpmca_diag *diag)
{
    snp_product from_cpuid = snp_report_product(report);
    if (from_cpuid != SNP_PRODUCT_UNKNOWN && requested != SNP_PRODUCT_UNKNOWN &&
        from_cpuid != requested)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "--product %s contradicts the report's CPUID (%s)",
                           snp_product_name(requested), snp_product_name(from_cpuid));
    *out = from_cpuid != SNP_PRODUCT_UNKNOWN ? from_cpuid : requested;
    return VTPMCA_OK;
}

int cmd_snp_show(const cli_command *cmd, const cli_opts *opts)
{
    const char *path = opts->value[CLI_OPT_REPORT];
    vtpmca_diag diag = {{0}};
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    vtpmca_err err = cli_load_report(path, &raw, &raw_len, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    snp_report *report = malloc(sizeof(*report));
    int rc = CLI_EXIT_OK;
    snp_product product = SNP_PRODUCT_UNKNOWN;
    if (report == NULL) {
        rc = cli_fail(cmd, VTPMCA_ERR_NOMEM, "out of memory");
        goto out;
    }
    err = snp_report_parse(raw, raw_len, report, &diag);
    if (err == VTPMCA_OK)
        err = report_product(report, opts->product, &product, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "%s", path);
        goto out;
    }
    if (opts->json) {
        json_t *claims = NULL;
        err = unverified_claims_json(report, product, &claims);
        json_t *result =
            err == VTPMCA_OK ? json_pack("{s:b, s:o}", "verified", 0, "claims", claims) : NULL;
        err = result != NULL ? cli_print_json(result) : VTPMCA_ERR_NOMEM;
        json_decref(result);
    } else {
        err = snp_report_describe(report, product, stdout);
    }
    if (err != VTPMCA_OK)
        rc = cli_fail(cmd, err, "cannot print the report");
out:
    free(report);
    free(raw);
    return rc;
}

/* ---- snp verify ---- */

typedef struct {
    uint8_t *report;
    size_t report_len;
    uint8_t *cert;
    size_t cert_len;
    snp_policy *policy;
    snp_roots *roots;
    bool extra_roots;
    store *store;
    snp_verifier *verifier;
    snp_evidence evidence;
    snp_verdict verdict;
} verify_job;

static void verify_job_free(verify_job *job)
{
    snp_verifier_free(job->verifier);
    store_close(job->store);
    snp_roots_free(job->roots);
    snp_policy_free(job->policy);
    free(job->cert);
    free(job->report);
    free(job);
}

/* Loads every input of `snp verify`; errors here are input errors (exit 2) or store errors. */
static vtpmca_err verify_job_load(const cli_opts *opts, verify_job *job, vtpmca_diag *diag)
{
    vtpmca_err err =
        cli_load_report(opts->value[CLI_OPT_REPORT], &job->report, &job->report_len, diag);
    if (err == VTPMCA_OK && opts->value[CLI_OPT_VCEK] != NULL)
        err = cli_load_cert(opts->value[CLI_OPT_VCEK], &job->cert, &job->cert_len, diag);
    if (err == VTPMCA_OK && opts->value[CLI_OPT_POLICY] != NULL)
        err = cli_load_policy(opts->value[CLI_OPT_POLICY], &job->policy, diag);
    if (err == VTPMCA_OK)
        err = cli_load_roots(opts, &job->roots, &job->extra_roots, diag);
    if (err == VTPMCA_OK && opts->value[CLI_OPT_DB] != NULL)
        err = cli_open_store(opts->value[CLI_OPT_DB], false, &job->store, diag);
    return err;
}

static vtpmca_err new_verifier(const snp_roots *roots, store *st, snp_product product,
                               snp_verifier **out, vtpmca_diag *diag)
{
    snp_verifier_config config = {0};
    config.roots = roots;
    config.store = st;
    config.default_product = product;
    return snp_verifier_new(&config, out, diag);
}

/* Whether the pinned AMD roots alone verify the evidence, i.e. no extra root was needed. */
static bool builtin_roots_suffice(const cli_opts *opts, verify_job *job)
{
    if (opts->value[CLI_OPT_NO_BUILTIN] != NULL)
        return false;
    if (!job->extra_roots)
        return true;
    snp_roots *builtin = NULL;
    snp_verifier *verifier = NULL;
    snp_evidence *scratch = malloc(sizeof(*scratch));
    bool ok = scratch != NULL && snp_roots_new_builtin(&builtin, NULL) == VTPMCA_OK &&
              new_verifier(builtin, job->store, opts->product, &verifier, NULL) == VTPMCA_OK &&
              snp_verifier_verify(verifier, job->report, job->report_len, job->cert, job->cert_len,
                                  opts->at, scratch, NULL) == VTPMCA_OK;
    snp_verifier_free(verifier);
    snp_roots_free(builtin);
    free(scratch);
    return ok;
}

static const char *vcek_origin(snp_vcek_source source)
{
    switch (source) {
    case SNP_VCEK_SUPPLIED:
        return "supplied with --vcek";
    case SNP_VCEK_STORE:
    case SNP_VCEK_CACHE:
        return "from the database (--db)";
    case SNP_VCEK_KDS:
        return "from AMD KDS";
    }
    return "unknown";
}

static json_t *trust_to_json(const cli_opts *opts, bool verified, bool builtin_ok)
{
    const char *chained_to = !verified ? NULL : builtin_ok ? "builtin" : "non-builtin";
    return json_pack("{s:b, s:s?, s:s?}", "builtin_roots", opts->value[CLI_OPT_NO_BUILTIN] == NULL,
                     "extra_roots_dir", opts->value[CLI_OPT_ROOTS], "chained_to", chained_to);
}

static vtpmca_err print_verify_json(const cli_opts *opts, verify_job *job, vtpmca_err evidence_err,
                                    const char *evidence_error, bool builtin_ok, bool accepted)
{
    bool verified = evidence_err == VTPMCA_OK;
    json_t *claims = NULL, *verdict = NULL, *ear = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (verified)
        err = snp_evidence_to_json(&job->evidence, &claims);
    else /* an attestation result for evidence that never reached the policy */
        err = snp_verdict_set_evidence_failure(&job->verdict, evidence_err, evidence_error);
    /* Without a policy nothing was appraised, so there is no verdict and no EAR. */
    bool appraised = !verified || job->policy != NULL;
    if (err == VTPMCA_OK && appraised)
        err = snp_verdict_to_json(&job->verdict, &verdict);
    if (err == VTPMCA_OK && appraised)
        err = ear_render_snp(&job->evidence, &job->verdict, opts->value[CLI_OPT_POLICY], time(NULL),
                             &ear);
    char at[32] = "";
    if (opts->at != 0)
        cli_format_time(opts->at, at, sizeof(at));
    json_t *out =
        err == VTPMCA_OK
            ? json_pack("{s:b, s:b, s:o?, s:o?, s:o?, s:s?, s:o, s:s?}", "verified", accepted,
                        "evidence_verified", verified, "claims", claims, "verdict", verdict, "ear",
                        ear, "error", evidence_error, "trust",
                        trust_to_json(opts, verified, builtin_ok), "at", at[0] ? at : NULL)
            : NULL;
    if (out == NULL) {
        if (err == VTPMCA_OK) /* json_pack consumed the references */
            return VTPMCA_ERR_NOMEM;
        json_decref(claims);
        json_decref(verdict);
        json_decref(ear);
        return err;
    }
    err = cli_print_json(out);
    json_decref(out);
    return err;
}

static vtpmca_err print_verify_text(const cli_opts *opts, verify_job *job, vtpmca_err evidence_err,
                                    const char *evidence_error, bool builtin_ok, bool accepted)
{
    const snp_evidence *ev = &job->evidence;
    const char *roots_dir = opts->value[CLI_OPT_ROOTS];
    printf("report:    %s\n", opts->value[CLI_OPT_REPORT]);
    if (opts->value[CLI_OPT_NO_BUILTIN] != NULL)
        printf("trust:     ONLY the NON-BUILTIN roots in %s (not AMD's pinned roots)\n", roots_dir);
    else if (roots_dir != NULL)
        printf("trust:     pinned AMD roots plus NON-BUILTIN roots from %s\n", roots_dir);
    else
        printf("trust:     pinned AMD roots\n");
    if (evidence_err != VTPMCA_OK) {
        printf("evidence:  NOT VERIFIED: %s\n", evidence_error);
        printf("result:    REJECTED\n");
        return VTPMCA_OK;
    }
    char at[32];
    cli_format_time(opts->at != 0 ? opts->at : time(NULL), at, sizeof(at));
    printf("evidence:  VERIFIED at %s: report v%u, %s, signed by %s (certificate %s)\n", at,
           (unsigned)ev->report.version, snp_product_name(ev->product), snp_signer_name(ev->signer),
           vcek_origin(ev->vcek_source));
    if (!builtin_ok)
        printf("WARNING:   the chain ends at a NON-BUILTIN root from %s, not at AMD's pinned "
               "roots\n",
               roots_dir);
    json_t *claims = NULL;
    vtpmca_err err = snp_evidence_to_json(ev, &claims);
    if (err != VTPMCA_OK)
        return err;
    printf("claims:\n");
    print_flat_json("", claims);
    json_decref(claims);
    if (job->policy != NULL) {
        const snp_verdict *v = &job->verdict;
        printf("policy:    %s: %s (%u checks, %u failed)\n", opts->value[CLI_OPT_POLICY],
               v->pass ? "PASS" : "FAIL", v->checks_run, v->n_failed);
        for (unsigned i = 0; i < v->n_failed && i < SNP_VERDICT_MAX_FAILURES; i++)
            printf("  failed %s: %s\n", v->failed[i].check, v->failed[i].detail);
    } else {
        printf("policy:    none given (evidence only)\n");
    }
    printf("result:    %s\n", accepted ? "ACCEPTED" : "REJECTED");
    return VTPMCA_OK;
}

int cmd_snp_verify(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    verify_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return cli_fail(cmd, VTPMCA_ERR_NOMEM, "out of memory");
    int rc;
    vtpmca_err err = verify_job_load(opts, job, &diag);
    if (err == VTPMCA_OK)
        err = new_verifier(job->roots, job->store, opts->product, &job->verifier, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, NULL);
        goto out;
    }
    vtpmca_err evidence_err =
        snp_verifier_verify(job->verifier, job->report, job->report_len, job->cert, job->cert_len,
                            opts->at, &job->evidence, &diag);
    if (cli_exit_code(evidence_err) == CLI_EXIT_USAGE) {
        /* A report or certificate that does not parse is a bad input file, not a verdict. */
        rc = cli_fail_diag(cmd, evidence_err, &diag, NULL);
        goto out;
    }
    bool verified = evidence_err == VTPMCA_OK;
    bool builtin_ok = verified && builtin_roots_suffice(opts, job);
    if (verified && job->policy != NULL) {
        err = snp_policy_evaluate(job->policy, &job->evidence, &job->verdict);
        if (err != VTPMCA_OK) {
            rc = cli_fail(cmd, err, "policy evaluation failed");
            goto out;
        }
    }
    bool accepted = verified && (job->policy == NULL || job->verdict.pass);
    const char *evidence_error = verified ? NULL : diag.msg;
    err = opts->json
              ? print_verify_json(opts, job, evidence_err, evidence_error, builtin_ok, accepted)
              : print_verify_text(opts, job, evidence_err, evidence_error, builtin_ok, accepted);
    if (err != VTPMCA_OK) {
        rc = cli_fail(cmd, err, "cannot print the result");
        goto out;
    }
    fflush(stdout);
    if (!verified) {
        rc = cli_fail_diag(cmd, evidence_err, &diag, "evidence not verified");
    } else if (!accepted) {
        char failed[256] = "";
        size_t used = 0;
        for (unsigned i = 0; i < job->verdict.n_failed && used < sizeof(failed); i++)
            used += (size_t)snprintf(failed + used, sizeof(failed) - used, "%s%s", i ? ", " : "",
                                     job->verdict.failed[i].check);
        rc = cli_fail(cmd, VTPMCA_ERR_POLICY, "rejected by policy %s: failed %s",
                      opts->value[CLI_OPT_POLICY], failed);
    } else {
        rc = CLI_EXIT_OK;
    }
out:
    verify_job_free(job);
    return rc;
}

/* ---- snp import-vcek ---- */

int cmd_snp_import_vcek(const cli_command *cmd, const cli_opts *opts)
{
    const char *path = opts->value[CLI_OPT_VCEK];
    vtpmca_diag diag = {{0}};
    uint8_t *data = NULL;
    size_t len = 0;
    snp_vcek *vcek = NULL;
    snp_roots *roots = NULL, *builtin = NULL;
    bool extra_roots = false;
    int rc = CLI_EXIT_OK;
    vtpmca_err err = cli_load_cert(path, &data, &len, &diag);
    if (err == VTPMCA_OK)
        err = snp_vcek_parse(data, len, &vcek, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "%s", path);
        goto out;
    }
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    if (opts->product != SNP_PRODUCT_UNKNOWN && opts->product != info->product) {
        rc = cli_fail(
            cmd, VTPMCA_ERR_INVALID_ARG, "%s is a %s certificate (productName %s), not %s", path,
            snp_product_name(info->product), info->product_name, snp_product_name(opts->product));
        goto out;
    }
    err = cli_load_roots(opts, &roots, &extra_roots, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, NULL);
        goto out;
    }
    time_t at = opts->at != 0 ? opts->at : time(NULL);
    err = snp_vcek_verify_chain(vcek, roots, at, NULL, NULL, &diag);
    if (err != VTPMCA_OK) {
        /* An unverifiable certificate is refused, whatever the reason: a failed check. */
        rc = cli_fail_diag(cmd, VTPMCA_ERR_CRYPTO, &diag, "refused %s", path);
        goto out;
    }
    bool builtin_ok =
        opts->value[CLI_OPT_NO_BUILTIN] == NULL &&
        (!extra_roots || (snp_roots_new_builtin(&builtin, NULL) == VTPMCA_OK &&
                          snp_vcek_verify_chain(vcek, builtin, at, NULL, NULL, NULL) == VTPMCA_OK));

    /* The store key is what the verifier looks up (the same as POST /v1/admin/vceks). */
    server_vcek_store_key key = {0};
    const uint8_t *der = NULL;
    size_t der_len = 0;
    cli_admin admin;
    err = server_admin_vcek_store_key(info, &key);
    if (err == VTPMCA_OK)
        err = snp_vcek_get_der(vcek, &der, &der_len);
    const char *signer = key.signer;
    if (err == VTPMCA_OK)
        err = cli_admin_open(opts, true, &admin, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, NULL);
        goto out;
    }
    err = admin.ops->vcek_put(admin.ctx, key.product, key.signer, key.chip_id, key.tcb, der,
                              der_len, "import", &diag);
    cli_admin_close(&admin);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "cannot store %s", path);
        goto out;
    }

    char hwid_hex[2 * 64 + 1] = "";
    char tcb[64];
    vt_hex_encode(info->hwid, info->hwid_len, hwid_hex, sizeof(hwid_hex));
    format_tcb(&info->tcb, info->product, tcb, sizeof(tcb));
    if (opts->json) {
        char tcb_raw[24];
        snprintf(tcb_raw, sizeof(tcb_raw), "0x%016" PRIx64, info->tcb_raw);
        json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "product",
                                snp_product_name(info->product), "product_name", info->product_name,
                                "signer", signer, "hwid", hwid_hex, "tcb", tcb, "tcb_raw", tcb_raw,
                                "chained_to", builtin_ok ? "builtin" : "non-builtin");
        err = out ? cli_print_json(out) : VTPMCA_ERR_NOMEM;
        json_decref(out);
        if (err != VTPMCA_OK)
            rc = cli_fail(cmd, err, "stored, but printing failed");
    } else {
        printf("imported %s %s (productName %s), TCB %s (0x%016" PRIx64 ")\n",
               snp_product_name(info->product), snp_signer_name(info->kind), info->product_name,
               tcb, info->tcb_raw);
        if (info->kind == SNP_SIGNER_VCEK)
            printf("  hwID %s\n", hwid_hex);
        if (!builtin_ok)
            printf("WARNING: the chain ends at a NON-BUILTIN root from %s, not at AMD's pinned "
                   "roots\n",
                   opts->value[CLI_OPT_ROOTS]);
    }
out:
    snp_roots_free(builtin);
    snp_roots_free(roots);
    snp_vcek_free(vcek);
    free(data);
    return rc;
}
