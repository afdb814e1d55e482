/* Owner policy for SEV-SNP evidence, per fleet and versioned (stored as JSON). Evaluation
 * runs every check and names each failure. */
#ifndef VTPMCA_SNP_POLICY_H
#define VTPMCA_SNP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_verifier.h"

typedef struct snp_policy snp_policy;

/* Parses and validates a policy document (see docs/policy.md). Unknown keys, wrong types,
 * bad hex lengths and out-of-range values are errors with a diag naming the key. */
vtpmca_err snp_policy_from_json(const char *json, size_t len, snp_policy **out, vtpmca_diag *diag);
/* Canonical JSON (sorted keys, compact) of the policy; *out malloc'd. */
vtpmca_err snp_policy_to_json(const snp_policy *policy, char **out);
void snp_policy_free(snp_policy *policy);

#define SNP_VERDICT_MAX_FAILURES 32

typedef struct {
    char check[40];   /* stable name, e.g. "measurement", "debug", "min_tcb.snp" */
    char detail[200]; /* what was expected and what was found */
} snp_check_failure;

typedef struct {
    bool pass;
    unsigned checks_run;
    unsigned n_failed;
    snp_check_failure failed[SNP_VERDICT_MAX_FAILURES];
    /* Added: false when the policy allows any measurement (or the evidence failed), so an
     * attestation result does not claim approved executables it never checked. */
    bool measurement_checked;
} snp_verdict;

/* Evaluates every rule against verified evidence and fills *verdict. Returns VTPMCA_OK when
 * the evaluation ran (whatever the verdict), an error only for bad arguments. */
vtpmca_err snp_policy_evaluate(const snp_policy *policy, const snp_evidence *evidence,
                               snp_verdict *verdict);

/* ---- Additions beyond the agreed contract ---- */

/* Check name recorded when the evidence itself failed verification (signature, chain,
 * VCEK binding): the policy never ran. ear_status_from_verdict maps it to contraindicated. */
#define SNP_CHECK_EVIDENCE "evidence"

/* Fills *verdict for evidence that failed verification (err is the verifier's error, detail
 * its diag message or NULL): pass false, checks_run 0, one failure named "evidence". Lets
 * callers render an attestation result for evidence that never reached the policy. */
vtpmca_err snp_verdict_set_evidence_failure(snp_verdict *verdict, vtpmca_err err,
                                            const char *detail);

#endif
