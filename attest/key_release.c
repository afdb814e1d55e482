/* The persistence-key release decision (see include/vtpmca/key_release.h). Checks run in a
 * fixed order: the instance (by resource path), disabled, host_data, the fleet policy, then
 * the key. Every decision, and every failure once the arguments are valid, leaves an audit
 * row; a key is handed out only after its audit row is stored. */
#include "vtpmca/key_release.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/log.h"

struct key_release {
    key_release_config config;
    key_release_hook wrapped_hook; /* see key_release_set_wrapped_hook */
    void *hook_ctx;
};

vtpmca_err key_release_new(const key_release_config *config, key_release **out, vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (config == NULL || config->store == NULL || config->vault == NULL ||
        config->policies == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "key release: store, key vault and policy cache are required");
    key_release *kr = calloc(1, sizeof(*kr));
    if (kr == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "key release: out of memory");
    kr->config = *config;
    *out = kr;
    return VTPMCA_OK;
}

vtpmca_err key_release_set_wrapped_hook(key_release *kr, key_release_hook hook, void *ctx)
{
    if (kr == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    kr->wrapped_hook = hook;
    kr->hook_ctx = ctx;
    return VTPMCA_OK;
}

void key_release_free(key_release *kr)
{
    free(kr);
}

const char *key_release_outcome_name(key_release_outcome outcome)
{
    switch (outcome) {
    case KEY_RELEASE_GRANTED:
        return "granted";
    case KEY_RELEASE_UNKNOWN_RESOURCE:
        return "unknown_resource";
    case KEY_RELEASE_DISABLED:
        return "disabled";
    case KEY_RELEASE_NO_POLICY:
        return "no_policy";
    case KEY_RELEASE_POLICY_REJECTED:
        return "policy_rejected";
    case KEY_RELEASE_HOST_DATA_MISMATCH:
        return "host_data_mismatch";
    case KEY_RELEASE_WRAPPED_KEY_INVALID:
        return "wrapped_key_invalid";
    }
    return "unknown";
}

/* Appends printf-style text to a bounded buffer, truncating silently. */
VTPMCA_PRINTF(3, 4)
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* Names every failed check, then as much of the first failure's detail as fits. */
static void describe_rejection(const key_release_decision *d, char *out, size_t size)
{
    snprintf(out, size, "fleet %s policy v%u rejected the evidence: ", d->fleet, d->policy_version);
    for (unsigned i = 0; i < d->verdict.n_failed && i < SNP_VERDICT_MAX_FAILURES; i++)
        append(out, size, "%s%s", i == 0 ? "" : ", ", d->verdict.failed[i].check);
    if (d->verdict.n_failed > 0)
        append(out, size, " (%s)", d->verdict.failed[0].detail);
}

typedef struct {
    const snp_evidence *evidence;
    const char *resource_path;
    const uint8_t *wrapped;
    size_t wrapped_len;
} release_request;

/* Appraises an enrolled instance and, when everything passes, unwraps its key into key_out.
 * Fills decision->outcome / reason / policy fields. An error return means no decision could
 * be made (diag says why). */
static vtpmca_err appraise_instance(key_release *kr, const release_request *rq,
                                    const store_instance *inst, uint8_t *key_out, size_t *key_len,
                                    key_release_decision *d, vtpmca_diag *diag)
{
    if (inst->disabled) {
        d->outcome = KEY_RELEASE_DISABLED;
        snprintf(d->reason, sizeof(d->reason), "instance %s is disabled", inst->id);
        return VTPMCA_OK;
    }
    if (inst->has_host_data &&
        CRYPTO_memcmp(inst->host_data, rq->evidence->report.host_data, 32) != 0) {
        /* The reason reaches the client: name what it sent, not what is enrolled. */
        char attested[65];
        vt_hex_encode(rq->evidence->report.host_data, 32, attested, sizeof(attested));
        d->outcome = KEY_RELEASE_HOST_DATA_MISMATCH;
        snprintf(d->reason, sizeof(d->reason),
                 "attested host_data %s is not the value enrolled for instance %s", attested,
                 inst->id);
        return VTPMCA_OK;
    }

    cached_policy *policy = NULL;
    policy_lookup lookup = POLICY_FOUND;
    vtpmca_err err = policy_cache_get(kr->config.policies, inst->fleet, 0, &policy, &lookup, diag);
    if (err == VTPMCA_ERR_NOT_FOUND) {
        d->outcome = KEY_RELEASE_NO_POLICY;
        snprintf(d->reason, sizeof(d->reason), "fleet %s has no policy%s", inst->fleet,
                 lookup == POLICY_UNKNOWN_FLEET ? " (unknown fleet)" : "");
        return VTPMCA_OK;
    }
    if (err != VTPMCA_OK)
        return err;
    d->policy_version = cached_policy_version(policy);
    err = snp_policy_evaluate(cached_policy_get(policy), rq->evidence, &d->verdict);
    cached_policy_release(policy);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "key release: policy evaluation failed");
    if (!d->verdict.pass) {
        d->outcome = KEY_RELEASE_POLICY_REJECTED;
        describe_rejection(d, d->reason, sizeof(d->reason));
        return VTPMCA_OK;
    }

    char context[ENROLLMENT_CONTEXT_MAX];
    err = enrollment_key_context(inst->key_mode, inst->id, context, diag);
    if (err != VTPMCA_OK)
        return err;
    if (inst->key_mode == STORE_KEY_GENERATED) {
        if (rq->wrapped != NULL) {
            d->outcome = KEY_RELEASE_WRAPPED_KEY_INVALID;
            snprintf(d->reason, sizeof(d->reason),
                     "instance %s has a service-generated key; it presents no wrapped key",
                     inst->id);
            return VTPMCA_OK;
        }
        /* A stored key that does not unwrap is the service's fault (another master key or
         * a damaged database), not a refusal: an error. */
        err = keyvault_unwrap(kr->config.vault, inst->wrapped_key, inst->wrapped_key_len, context,
                              key_out, KEYVAULT_KEY_MAX, key_len, diag);
        if (err != VTPMCA_OK)
            return err;
    } else {
        if (rq->wrapped == NULL) {
            d->outcome = KEY_RELEASE_WRAPPED_KEY_INVALID;
            snprintf(d->reason, sizeof(d->reason),
                     "instance %s is in wrapped-key mode and presented no wrapped key", inst->id);
            return VTPMCA_OK;
        }
        if (keyvault_unwrap(kr->config.vault, rq->wrapped, rq->wrapped_len, context, key_out,
                            KEYVAULT_KEY_MAX, key_len, NULL) != VTPMCA_OK) {
            d->outcome = KEY_RELEASE_WRAPPED_KEY_INVALID;
            snprintf(d->reason, sizeof(d->reason),
                     "the presented wrapped key is not a key wrapped for instance %s "
                     "(tampered, foreign or malformed)",
                     inst->id);
            return VTPMCA_OK;
        }
    }
    d->outcome = KEY_RELEASE_GRANTED;
    snprintf(d->reason, sizeof(d->reason), "granted under fleet %s policy v%u", inst->fleet,
             d->policy_version);
    return VTPMCA_OK;
}

/* Finds the instance at the requested path and appraises it (see appraise_instance). */
static vtpmca_err find_and_appraise(key_release *kr, const release_request *rq, uint8_t *key_out,
                                    size_t *key_len, key_release_decision *d, vtpmca_diag *diag)
{
    if (store_check_resource_path(rq->resource_path, NULL) != VTPMCA_OK) {
        d->outcome = KEY_RELEASE_UNKNOWN_RESOURCE;
        snprintf(d->reason, sizeof(d->reason),
                 "malformed resource path (the form is <repo>/<type>/<tag>, each 1 to 64 "
                 "characters of [A-Za-z0-9._-])");
        return VTPMCA_OK;
    }
    store_instance inst;
    vtpmca_err err = store_instance_get_by_path(kr->config.store, rq->resource_path, &inst, diag);
    if (err == VTPMCA_ERR_NOT_FOUND) {
        d->outcome = KEY_RELEASE_UNKNOWN_RESOURCE;
        /* The requested path names nobody: safe to record for whoever mistyped it. */
        snprintf(d->reason, sizeof(d->reason), "no instance is enrolled at %s", rq->resource_path);
        return VTPMCA_OK;
    }
    if (err != VTPMCA_OK)
        return err;
    snprintf(d->instance_id, sizeof(d->instance_id), "%s", inst.id);
    snprintf(d->fleet, sizeof(d->fleet), "%s", inst.fleet);
    err = appraise_instance(kr, rq, &inst, key_out, key_len, d, diag);
    store_instance_free_fields(&inst);
    return err;
}

/* Fills the audit row of a decision (outcome "error": of a failure, with `reason`). */
static void describe_decision(const release_request *rq, const char *client, const char *outcome,
                              const key_release_decision *d, const char *reason,
                              store_audit_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->actor, sizeof(ev->actor), "%s", client);
    snprintf(ev->action, sizeof(ev->action), "key_release");
    snprintf(ev->instance_id, sizeof(ev->instance_id), "%s", d->instance_id);
    snprintf(ev->outcome, sizeof(ev->outcome), "%s", outcome);
    vt_hex_encode(rq->evidence->report.measurement, sizeof(rq->evidence->report.measurement),
                  ev->measurement, sizeof(ev->measurement));
    vt_hex_encode(rq->evidence->report.chip_id, sizeof(rq->evidence->report.chip_id), ev->chip_id,
                  sizeof(ev->chip_id));
    snprintf(ev->detail, sizeof(ev->detail), "%s", reason);
}

static void log_decision(const char *client, const char *outcome, const key_release_decision *d,
                         const char *reason)
{
    vtpmca_log(strcmp(outcome, "granted") == 0 ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN,
               "key_release.decision", "client", client, "instance", d->instance_id, "fleet",
               d->fleet, "outcome", outcome, "reason", reason, NULL);
}

vtpmca_err key_release_appraise(key_release *kr, const snp_evidence *evidence,
                                const char *resource_path, const uint8_t *wrapped,
                                size_t wrapped_len, const char *client,
                                uint8_t key_out[KEYVAULT_KEY_MAX], size_t *key_len,
                                key_release_decision *decision, store_audit_event *audit,
                                vtpmca_diag *diag)
{
    if (key_len != NULL)
        *key_len = 0;
    if (decision != NULL)
        memset(decision, 0, sizeof(*decision));
    if (audit != NULL)
        memset(audit, 0, sizeof(*audit));
    if (kr == NULL || evidence == NULL || resource_path == NULL || key_out == NULL ||
        key_len == NULL || decision == NULL || audit == NULL ||
        (wrapped == NULL && wrapped_len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "key release: missing argument");
    if (client == NULL)
        client = "";
    if (strlen(client) >= sizeof(audit->actor))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "key release: client name longer than %zu bytes",
                           sizeof(audit->actor) - 1);
    if (wrapped != NULL && wrapped_len == 0)
        wrapped = NULL; /* an empty blob is no blob */

    release_request rq = {evidence, resource_path, wrapped, wrapped_len};
    key_release_decision *d = decision;
    vtpmca_diag local = {{0}}; /* kept for the audit row even when the caller passes no diag */
    vtpmca_err err = find_and_appraise(kr, &rq, key_out, key_len, d, &local);
    if (err != VTPMCA_OK) {
        /* No decision: hand out nothing; the row records the failure. */
        OPENSSL_cleanse(key_out, KEYVAULT_KEY_MAX);
        *key_len = 0;
        d->failed = true;
        snprintf(d->reason, sizeof(d->reason), "error (%s): %s", vtpmca_err_name(err), local.msg);
        describe_decision(&rq, client, "error", d, d->reason, audit);
        return vtpmca_fail(diag, err, "%s", local.msg);
    }
    /* Granted with a blob means wrapped-key mode (a generated-mode instance presenting one
     * is refused). */
    d->runs_hook = d->outcome == KEY_RELEASE_GRANTED && rq.wrapped != NULL;
    describe_decision(&rq, client, key_release_outcome_name(d->outcome), d, d->reason, audit);
    if (d->outcome != KEY_RELEASE_GRANTED) {
        OPENSSL_cleanse(key_out, KEYVAULT_KEY_MAX);
        *key_len = 0;
    }
    return VTPMCA_OK;
}

vtpmca_err key_release_audited(key_release *kr, const key_release_decision *decision,
                               const char *client, uint8_t key[KEYVAULT_KEY_MAX], size_t *key_len,
                               vtpmca_err audit_err)
{
    if (kr == NULL || decision == NULL || key == NULL || key_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (client == NULL)
        client = "";
    if (audit_err != VTPMCA_OK) {
        /* Not on record, so not handed out. */
        OPENSSL_cleanse(key, KEYVAULT_KEY_MAX);
        *key_len = 0;
        log_decision(client, "error", decision,
                     decision->failed ? decision->reason : "the decision could not be audited");
        return audit_err;
    }
    log_decision(client, decision->failed ? "error" : key_release_outcome_name(decision->outcome),
                 decision, decision->reason);
    if (decision->runs_hook && !decision->failed && kr->wrapped_hook != NULL)
        kr->wrapped_hook(kr->hook_ctx, decision->instance_id, key, *key_len);
    return VTPMCA_OK;
}

vtpmca_err key_release_write_audit(key_release *kr, const store_audit_event *audit,
                                   vtpmca_diag *diag)
{
    if (kr == NULL || audit == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "key release: missing argument");
    return store_audit_append(kr->config.store, audit, diag);
}

vtpmca_err key_release_decide(key_release *kr, const snp_evidence *evidence,
                              const char *resource_path, const uint8_t *wrapped, size_t wrapped_len,
                              const char *client, uint8_t key_out[KEYVAULT_KEY_MAX],
                              size_t *key_len, key_release_decision *decision, vtpmca_diag *diag)
{
    store_audit_event audit;
    vtpmca_err err = key_release_appraise(kr, evidence, resource_path, wrapped, wrapped_len, client,
                                          key_out, key_len, decision, &audit, diag);
    if (err != VTPMCA_OK && (decision == NULL || !decision->failed))
        return err; /* bad arguments: no row to write */
    vtpmca_diag audit_diag = {{0}};
    vtpmca_err audit_err = key_release_write_audit(kr, &audit, &audit_diag);
    if (err != VTPMCA_OK) {
        (void)key_release_audited(kr, decision, client, key_out, key_len, audit_err);
        return err; /* the failure is the answer, recorded or not (best effort) */
    }
    err = key_release_audited(kr, decision, client, key_out, key_len, audit_err);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s", audit_diag.msg);
    return VTPMCA_OK;
}
