/* POST /v1/snp/verify: verify SEV-SNP evidence and appraise it against a fleet policy.
 * Bad requests get a 4xx; evidence that fails verification or policy is an appraisal result
 * (200, "verified": false) with an EAR that says why. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "vtpmca/ear.h"
#include "vtpmca/encoding.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_policy.h"

typedef struct {
    const char *fleet;
    uint32_t policy_version; /* 0 = latest */
    uint8_t *report;
    size_t report_len;
    uint8_t *vcek; /* NULL when not supplied */
    size_t vcek_len;
} verify_request;

static void verify_request_free(verify_request *vr)
{
    free(vr->report);
    free(vr->vcek);
}

/* Hex when every character is a hex digit, else strict standard base64 (padded). A report's
 * base64 always has a non-hex character (its version field encodes as "Ag", "Aw" or "BQ"),
 * and a certificate's starts with "MI", so the two readings never collide. */
static vtpmca_err decode_binary_field(const char *text, uint8_t **out, size_t *out_len)
{
    size_t len = strlen(text);
    bool all_hex = len > 0;
    for (size_t i = 0; i < len && all_hex; i++)
        all_hex = isxdigit((unsigned char)text[i]) != 0;
    if (all_hex)
        return vt_hex_decode_alloc(text, len, out, out_len);
    return vt_b64_decode_alloc(text, len, VT_B64_STD, out, out_len);
}

static void bad_request(server_app *app, server_response *response, unsigned status,
                        const char *code, const char *message)
{
    server_metrics_count_verification(app->metrics, SERVER_VERIFY_BAD_REQUEST);
    server_response_error(response, status, code, "%s", message);
}

/* Checks the body's shape and decodes it. On failure writes the 400 message to `why`. */
static bool parse_body(const server_request *request, verify_request *vr, json_t **root_out,
                       const char **code, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(request->body != NULL ? (const char *)request->body : "",
                              request->body_len, JSON_REJECT_DUPLICATES, &jerr);
    *root_out = root;
    *code = "invalid_request";
    if (root == NULL) {
        *code = "invalid_json";
        snprintf(why, why_size, "body is not valid JSON: line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(root)) {
        snprintf(why, why_size, "body must be a JSON object");
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "fleet") != 0 && strcmp(key, "report") != 0 && strcmp(key, "vcek") != 0 &&
            strcmp(key, "policy_version") != 0) {
            snprintf(why, why_size, "unknown field '%.60s'", key);
            return false;
        }
    }
    json_t *fleet = json_object_get(root, "fleet");
    json_t *report = json_object_get(root, "report");
    json_t *vcek = json_object_get(root, "vcek");
    json_t *version = json_object_get(root, "policy_version");
    if (!json_is_string(fleet) || json_string_length(fleet) == 0) {
        snprintf(why, why_size, "'fleet' must be a non-empty string");
        return false;
    }
    if (!json_is_string(report)) {
        snprintf(why, why_size, "'report' must be a string (base64 or hex of the report)");
        return false;
    }
    if (vcek != NULL && !json_is_null(vcek) && !json_is_string(vcek)) {
        snprintf(why, why_size, "'vcek' must be a string (base64 of the DER certificate)");
        return false;
    }
    if (version != NULL && !json_is_null(version)) {
        if (!json_is_integer(version) || json_integer_value(version) < 1 ||
            json_integer_value(version) > (json_int_t)UINT32_MAX) {
            snprintf(why, why_size, "'policy_version' must be an integer >= 1");
            return false;
        }
        vr->policy_version = (uint32_t)json_integer_value(version);
    }
    vr->fleet = json_string_value(fleet);

    *code = "bad_encoding";
    if (decode_binary_field(json_string_value(report), &vr->report, &vr->report_len) != VTPMCA_OK) {
        snprintf(why, why_size, "'report' is neither hex nor standard base64");
        return false;
    }
    if (json_is_string(vcek) &&
        decode_binary_field(json_string_value(vcek), &vr->vcek, &vr->vcek_len) != VTPMCA_OK) {
        snprintf(why, why_size, "'vcek' is neither standard base64 nor hex");
        return false;
    }
    if (vr->vcek != NULL && vr->vcek_len == 0) {
        free(vr->vcek);
        vr->vcek = NULL; /* "" means not supplied */
    }
    return true;
}

/* Maps a policy lookup failure to the HTTP answer. */
static void policy_lookup_failed(server_app *app, server_response *response, vtpmca_err err,
                                 policy_lookup lookup, const vtpmca_diag *diag)
{
    if (err == VTPMCA_ERR_NOT_FOUND) {
        const char *code = lookup == POLICY_UNKNOWN_FLEET ? "unknown_fleet"
                           : lookup == POLICY_NO_POLICY   ? "no_policy"
                                                          : "unknown_policy_version";
        bad_request(app, response, 404, code, diag->msg);
    } else if (err == VTPMCA_ERR_INVALID_ARG) {
        bad_request(app, response, 400, "invalid_request", diag->msg);
    } else {
        vtpmca_log(VTPMCA_LOG_ERROR, "snp.verify.policy_unavailable", "error", vtpmca_err_name(err),
                   "detail", diag->msg, NULL);
        server_response_error(response, err == VTPMCA_ERR_PARSE ? 500 : 503,
                              err == VTPMCA_ERR_PARSE ? "invalid_stored_policy" : "unavailable",
                              "the fleet policy cannot be loaded");
    }
}

/* Names the failed checks, e.g. "debug, measurement". */
static void failed_checks_text(const snp_verdict *verdict, char *out, size_t out_size)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < verdict->n_failed && i < SNP_VERDICT_MAX_FAILURES; i++) {
        int n =
            snprintf(out + used, out_size - used, "%s%s", i ? ", " : "", verdict->failed[i].check);
        if (n < 0 || (size_t)n >= out_size - used)
            break;
        used += (size_t)n;
    }
}

/* Builds the 200 answer for verified or rejected evidence. */
static vtpmca_err appraisal_response(const char *fleet, uint32_t policy_version,
                                     const snp_evidence *evidence, const snp_verdict *verdict,
                                     bool evidence_ok, const char *error, json_t **out)
{
    char policy_id[128];
    snprintf(policy_id, sizeof(policy_id), "vtpmca:fleet/%s/policy/%u", fleet, policy_version);
    json_t *ear = NULL, *verdict_json = NULL, *claims = NULL;
    vtpmca_err err = ear_render_snp(evidence, verdict, policy_id, time(NULL), &ear);
    if (err == VTPMCA_OK)
        err = snp_verdict_to_json(verdict, &verdict_json);
    /* Claims are only reported for evidence that verified: otherwise nothing vouches for
     * them (the EAR still carries them, annotated as contraindicated). */
    if (err == VTPMCA_OK && evidence_ok)
        err = snp_evidence_to_json(evidence, &claims);
    json_t *body = err == VTPMCA_OK
                       ? json_pack("{s:b, s:s, s:I}", "verified", evidence_ok && verdict->pass,
                                   "fleet", fleet, "policy_version", (json_int_t)policy_version)
                       : NULL;
    if (body == NULL) {
        json_decref(ear);
        json_decref(verdict_json);
        json_decref(claims);
        return err != VTPMCA_OK ? err : VTPMCA_ERR_NOMEM;
    }
    if (claims != NULL)
        json_object_set_new(body, "claims", claims);
    json_object_set_new(body, "verdict", verdict_json);
    json_object_set_new(body, "ear", ear);
    if (error != NULL)
        json_object_set_new(body, "error", json_string(error));
    *out = body;
    return VTPMCA_OK;
}

/* Errors from the verifier that are not about the evidence's authenticity. */
static bool is_bad_vcek_input(vtpmca_err err)
{
    return err == VTPMCA_ERR_PARSE || err == VTPMCA_ERR_UNSUPPORTED || err == VTPMCA_ERR_LIMIT ||
           err == VTPMCA_ERR_INVALID_ARG;
}

static void log_outcome(const char *fleet, uint32_t version, server_verify_outcome outcome,
                        const char *detail)
{
    char version_text[16];
    snprintf(version_text, sizeof(version_text), "%u", version);
    vtpmca_log(outcome == SERVER_VERIFY_PASS ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN, "snp.verify",
               "fleet", fleet, "policy_version", version_text, "outcome",
               server_verify_outcome_name(outcome), "detail", detail, NULL);
}

void server_handle_snp_verify(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    verify_request vr = {0};
    json_t *root = NULL;
    const char *code = NULL;
    char why[256];
    cached_policy *policy = NULL;

    if (!parse_body(request, &vr, &root, &code, why, sizeof(why))) {
        bad_request(app, response, 400, code, why);
        goto out;
    }
    /* A report that does not parse is a bad request, not an appraisal result. */
    snp_report parsed;
    vtpmca_diag diag;
    vtpmca_diag_clear(&diag);
    if (snp_report_parse(vr.report, vr.report_len, &parsed, &diag) != VTPMCA_OK) {
        snprintf(why, sizeof(why), "report: %.240s", diag.msg);
        bad_request(app, response, 400, "bad_report", why);
        goto out;
    }
    policy_lookup lookup;
    vtpmca_err err =
        policy_cache_get(app->policies, vr.fleet, vr.policy_version, &policy, &lookup, &diag);
    if (err != VTPMCA_OK) {
        policy_lookup_failed(app, response, err, lookup, &diag);
        goto out;
    }
    uint32_t version = cached_policy_version(policy);

    snp_evidence evidence;
    vtpmca_diag_clear(&diag);
    err = snp_verifier_verify(app->verifier, vr.report, vr.report_len, vr.vcek, vr.vcek_len, 0,
                              &evidence, &diag);
    snp_verdict verdict;
    server_verify_outcome outcome;
    char error_text[300];
    const char *error = NULL;
    if (err == VTPMCA_OK) {
        snp_policy_evaluate(cached_policy_get(policy), &evidence, &verdict);
        outcome = verdict.pass ? SERVER_VERIFY_PASS : SERVER_VERIFY_POLICY_FAIL;
        if (!verdict.pass) {
            char checks[200];
            failed_checks_text(&verdict, checks, sizeof(checks));
            snprintf(error_text, sizeof(error_text), "policy rejected the evidence: %s", checks);
            error = error_text;
        }
    } else if (vr.vcek != NULL && is_bad_vcek_input(err)) {
        snprintf(why, sizeof(why), "vcek: %.240s", diag.msg);
        bad_request(app, response, 400, "bad_vcek", why);
        goto out;
    } else if (err == VTPMCA_ERR_NOT_FOUND || err == VTPMCA_ERR_CRYPTO) {
        snp_verdict_set_evidence_failure(&verdict, err, diag.msg);
        outcome = SERVER_VERIFY_EVIDENCE_FAIL;
        snprintf(error_text, sizeof(error_text), "%s: %s", vtpmca_err_name(err), diag.msg);
        error = error_text;
    } else if (err == VTPMCA_ERR_NETWORK || err == VTPMCA_ERR_LIMIT) {
        vtpmca_log(VTPMCA_LOG_WARN, "snp.verify.kds_unavailable", "fleet", vr.fleet, "error",
                   vtpmca_err_name(err), "detail", diag.msg, NULL);
        server_response_error(response, 503, "kds_unavailable",
                              "the VCEK is not known and AMD KDS cannot be asked now: %s",
                              diag.msg);
        server_response_add_header(response, "Retry-After", "5");
        goto out;
    } else {
        vtpmca_log(VTPMCA_LOG_ERROR, "snp.verify.failed", "error", vtpmca_err_name(err), "detail",
                   diag.msg, NULL);
        server_response_error(response, 500, "internal", "verification failed unexpectedly");
        goto out;
    }

    json_t *body = NULL;
    err = appraisal_response(vr.fleet, version, &evidence, &verdict,
                             outcome != SERVER_VERIFY_EVIDENCE_FAIL, error, &body);
    if (err != VTPMCA_OK) {
        server_response_error(response, 500, "internal", "cannot render the result (%s)",
                              vtpmca_err_name(err));
        goto out;
    }
    server_metrics_count_verification(app->metrics, outcome);
    log_outcome(vr.fleet, version, outcome, error != NULL ? error : "");
    server_response_json(response, 200, body);
out:
    cached_policy_release(policy);
    verify_request_free(&vr);
    json_decref(root); /* vr.fleet pointed into it */
}
