/* Decides whether an enrolled instance's persistence key may be released to verified SNP
 * evidence, and audits every decision. Transport-neutral: the KBS protocol engine calls it
 * after the evidence and its REPORT_DATA binding are verified. */
#ifndef VTPMCA_KEY_RELEASE_H
#define VTPMCA_KEY_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

typedef struct key_release key_release;

typedef struct {
    store *store;           /* instances and the audit log; not owned */
    const keyvault *vault;  /* master key; not owned */
    policy_cache *policies; /* fleet policies; not owned */
} key_release_config;

vtpmca_err key_release_new(const key_release_config *config, key_release **out, vtpmca_diag *diag);
void key_release_free(key_release *kr);

/* Called (with ctx) after a wrapped-key mode instance's key was granted and audited, the one
 * moment the service holds that key (the rollback ledger derives and stores its ledger key
 * then). It cannot change the decision. */
typedef void (*key_release_hook)(void *ctx, const char *instance_id, const uint8_t *key,
                                 size_t key_len);

/* Sets (or, with NULL, clears) the wrapped-key release hook; call before releases start. */
vtpmca_err key_release_set_wrapped_hook(key_release *kr, key_release_hook hook, void *ctx);

typedef enum {
    KEY_RELEASE_GRANTED = 0,
    KEY_RELEASE_UNKNOWN_RESOURCE,    /* no enrolled instance at that resource path */
    KEY_RELEASE_DISABLED,            /* the instance is disabled */
    KEY_RELEASE_NO_POLICY,           /* the instance's fleet has no policy */
    KEY_RELEASE_POLICY_REJECTED,     /* evidence fails the fleet policy (see verdict) */
    KEY_RELEASE_HOST_DATA_MISMATCH,  /* enrolled host_data differs from the attested one */
    KEY_RELEASE_WRAPPED_KEY_INVALID, /* wrapped-key mode: blob missing, tampered or foreign */
} key_release_outcome;

/* Stable name, e.g. "granted", "policy_rejected". */
const char *key_release_outcome_name(key_release_outcome outcome);

typedef struct {
    key_release_outcome outcome;
    char instance_id[64];
    char fleet[64];
    uint32_t policy_version;
    snp_verdict verdict;
    char reason[256]; /* for logs and the client; never contains key material */
    bool failed;      /* no decision could be made (reason says why); outcome is meaningless */
    bool runs_hook;   /* key_release_audited will call the wrapped-key hook */
} key_release_decision;

/* resource_path is "<repo>/<type>/<tag>". `wrapped` (may be NULL) is the blob an instance in
 * wrapped-key mode presents. `client` names the requester for the audit log (e.g. the
 * session id). On GRANTED, key_out receives *key_len (<= KEYVAULT_KEY_MAX) bytes. Every
 * decision is written to the audit log (instance, time, outcome, measurement, chip id,
 * reason; never the key). Returns VTPMCA_OK when a decision was made, granted or not. */
vtpmca_err key_release_decide(key_release *kr, const snp_evidence *evidence,
                              const char *resource_path, const uint8_t *wrapped, size_t wrapped_len,
                              const char *client, uint8_t key_out[KEYVAULT_KEY_MAX],
                              size_t *key_len, key_release_decision *decision, vtpmca_diag *diag);

/* key_release_decide in two halves, for callers that write the audit row themselves without
 * waiting (store_audit_append_async) and do other work meanwhile:
 *   key_release_appraise decides like key_release_decide but writes nothing: *audit receives
 *   the row to write, also when no decision could be made (an error return other than for
 *   bad arguments; decision->failed is then set and the row records the failure). The key
 *   must not leave the service before
 *   key_release_audited is told how writing that row ended: with audit_err != VTPMCA_OK it
 *   wipes the key and returns audit_err; otherwise it logs the decision and, when
 *   decision->runs_hook, calls the wrapped-key hook, which may write to the store (so never
 *   call it from inside a store report then). */
vtpmca_err key_release_appraise(key_release *kr, const snp_evidence *evidence,
                                const char *resource_path, const uint8_t *wrapped,
                                size_t wrapped_len, const char *client,
                                uint8_t key_out[KEYVAULT_KEY_MAX], size_t *key_len,
                                key_release_decision *decision, store_audit_event *audit,
                                vtpmca_diag *diag);
/* Writes an audit row key_release_appraise described, waiting until it is durable. */
vtpmca_err key_release_write_audit(key_release *kr, const store_audit_event *audit,
                                   vtpmca_diag *diag);
vtpmca_err key_release_audited(key_release *kr, const key_release_decision *decision,
                               const char *client, uint8_t key[KEYVAULT_KEY_MAX], size_t *key_len,
                               vtpmca_err audit_err);

#endif
