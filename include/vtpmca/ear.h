/* EAR-style attestation results (draft-fv-rats-ear) with the AR4SI trustworthiness vector,
 * and JSON renderings of SNP claims. */
#ifndef VTPMCA_EAR_H
#define VTPMCA_EAR_H

#include <jansson.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_verifier.h"

typedef enum {
    EAR_STATUS_NONE = 0,
    EAR_STATUS_AFFIRMING,
    EAR_STATUS_WARNING,
    EAR_STATUS_CONTRAINDICATED,
} ear_status;
const char *ear_status_name(ear_status status);

/* JSON object with the decoded claims (hex for byte fields, TCBs decoded per product). */
vtpmca_err snp_evidence_to_json(const snp_evidence *evidence, json_t **out);

/* JSON object {"pass":bool,"checks_run":n,"failed":[{"check","detail"},...]}. */
vtpmca_err snp_verdict_to_json(const snp_verdict *verdict, json_t **out);

/* Status implied by a verdict: affirming if it passes, contraindicated if evidence failed
 * or a security rule failed, warning for rules that only indicate staleness. */
ear_status ear_status_from_verdict(const snp_verdict *verdict);

/* The EAR claims-set: eat_profile, iat, ear.verifier-id, and submods{"SEV-SNP":{ear.status,
 * ear.trustworthiness-vector, ear.appraisal-policy-id, annotated evidence}}. */
vtpmca_err ear_render_snp(const snp_evidence *evidence, const snp_verdict *verdict,
                          const char *policy_id, time_t issued_at, json_t **out);

/* ---- Additions beyond the agreed contract ---- */

#define EAR_PROFILE "tag:github.com,2023:veraison/ear"
#define EAR_VERIFIER_DEVELOPER "vtpmca"
#define EAR_VERIFIER_BUILD "vtpmca " VTPMCA_VERSION
#define EAR_SUBMOD_SNP "SEV-SNP"

#endif
