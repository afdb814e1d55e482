/* The certificate revocation list of the issuing CA (RFC 5280 section 5): a v2 DER CRL signed
 * by the issuing CA, with the CRL number and authority key identifier extensions and one
 * entry per revoked certificate (reasonCode entry extension unless "unspecified"). Served at
 * the CRL distribution point of every certificate we issue (GET /v1/ca/crl); callers
 * regenerate it on every revocation and before nextUpdate. */
#ifndef VTPMCA_CRL_H
#define VTPMCA_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/ca_keys.h"
#include "vtpmca/err.h"
#include "vtpmca/store.h"

/* Allowed nextUpdate distances. */
#define CRL_NEXT_UPDATE_MIN 60
#define CRL_NEXT_UPDATE_MAX (366u * 86400u)
#define CRL_NEXT_UPDATE_DEFAULT (7u * 86400u)
/* Longest serial number accepted (RFC 5280 4.1.2.2). */
#define CRL_SERIAL_MAX 20

/* RFC 5280 CRLReason values we use (no certificateHold/removeFromCRL: we never suspend). */
typedef enum {
    VT_CRL_REASON_UNSPECIFIED = 0,
    VT_CRL_REASON_KEY_COMPROMISE = 1,
    VT_CRL_REASON_CA_COMPROMISE = 2,
    VT_CRL_REASON_AFFILIATION_CHANGED = 3,
    VT_CRL_REASON_SUPERSEDED = 4,
    VT_CRL_REASON_CESSATION_OF_OPERATION = 5,
    VT_CRL_REASON_PRIVILEGE_WITHDRAWN = 9,
} crl_reason;

/* Parses the RFC 5280 names "unspecified", "keyCompromise", "cACompromise",
 * "affiliationChanged", "superseded", "cessationOfOperation", "privilegeWithdrawn" (the
 * strings stored as a certificate's revocation reason). */
vtpmca_err crl_reason_parse(const char *name, crl_reason *out, vtpmca_diag *diag);
/* The RFC 5280 name, or NULL for a value outside the enum. */
const char *crl_reason_name(crl_reason reason);

typedef struct {
    const uint8_t *serial; /* big-endian magnitude, 1..CRL_SERIAL_MAX bytes, no leading 0 */
    size_t serial_len;
    int64_t revoked_at; /* unix seconds */
    crl_reason reason;
} crl_entry;

typedef struct {
    uint8_t *der; /* malloc'd */
    size_t der_len;
    uint64_t crl_number;
    int64_t this_update;
    int64_t next_update;
} crl_result;

/* Builds and signs a CRL from explicit entries. crl_number >= 1; this_update 0 = now;
 * nextUpdate = thisUpdate + next_update_secs (CRL_NEXT_UPDATE_MIN..MAX). Duplicate serials
 * -> VTPMCA_ERR_INVALID_ARG. */
vtpmca_err crl_build(const ca_ctx *ca, const crl_entry *entries, size_t n, uint64_t crl_number,
                     int64_t this_update, uint32_t next_update_secs, crl_result *out,
                     vtpmca_diag *diag);

/* Builds the current CRL from the store: every revoked certificate, and the next CRL number
 * from the store's counter (so numbers increase across restarts and processes). */
vtpmca_err crl_generate(const ca_ctx *ca, store *st, uint32_t next_update_secs, crl_result *out,
                        vtpmca_diag *diag);

/* Records a revocation in the store with the reason's RFC 5280 name (what crl_generate reads
 * back). serial_hex as the store keys certificates; revoked_at 0 = now. NOT_FOUND for an
 * unknown serial, CONFLICT when it is revoked already. */
vtpmca_err crl_revoke(store *st, const char *serial_hex, crl_reason reason, int64_t revoked_at,
                      vtpmca_diag *diag);

void crl_result_free(crl_result *res);

#endif
