/* The SVSM's side of the rollback ledger protocol (docs/protocol.md, "Rollback ledger:
 * protocol") over libcurl, for the reference client svsm-sim, tests and benchmarks: requests
 * with a fresh random nonce and a MAC under the instance's ledger key, answers accepted only
 * when their MAC verifies under that key and binds the request's nonce. */
#ifndef VTPMCA_LEDGER_CLIENT_H
#define VTPMCA_LEDGER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/ledger_protocol.h"

/* One instance's connection to a ledger: a libcurl handle (keep-alive) and the ledger key.
 * The caller runs curl_global_init once per process. Not thread-safe: one per thread. */
typedef struct ledger_client ledger_client;

/* base_url "http://host:port" or "https://..."; the ledger key is derived here from the
 * released persistence key (ledger_key_derive); format: the request bodies' encoding;
 * timeout_ms 0 means 30 s per request. */
vtpmca_err ledger_client_new(const char *base_url, const char *instance,
                             const uint8_t *persistence_key, size_t persistence_key_len,
                             ledger_format format, long timeout_ms, ledger_client **out,
                             vtpmca_diag *diag);
void ledger_client_free(ledger_client *client); /* wipes the key; NULL is a no-op */

/* What the functions below return:
 *  VTPMCA_OK                a verified answer: advance accepted or duplicate, query found;
 *  VTPMCA_ERR_NOT_FOUND     a verified "none" (query): the ledger has no record;
 *  VTPMCA_ERR_CONFLICT      a verified refusal (advance): answer->result is "fork",
 *                           "rollback" or "locked", answer->counter/root what the ledger holds;
 *  VTPMCA_ERR_UNSUPPORTED   the server offers no ledger (its generic 404 for the route);
 *  VTPMCA_ERR_CRYPTO        an answer whose MAC does not verify, that binds another nonce or,
 *                           for an advance, another counter or root: forged or replayed;
 *  VTPMCA_ERR_POLICY        the server refused the request without a MAC (unknown or disabled
 *                           instance, no ledger key, bad MAC, stale nonce): nothing vouches
 *                           for it, the diag carries its error and message;
 *  VTPMCA_ERR_NETWORK       unreachable, timeout, 5xx (retry: a fresh nonce is drawn);
 *  VTPMCA_ERR_PARSE         a malformed answer.
 * *answer (may be NULL) receives the decoded answer on OK, NOT_FOUND and CONFLICT. */
vtpmca_err ledger_client_advance(ledger_client *client, const uint8_t counter[LEDGER_COUNTER_LEN],
                                 const uint8_t *root, size_t root_len, ledger_msg *answer,
                                 vtpmca_diag *diag);
vtpmca_err ledger_client_query(ledger_client *client, ledger_msg *answer, vtpmca_diag *diag);

/* POST /v1/ledger/statement with the caller's nonce (16..64 bytes): *jwt (malloc'd) is the
 * signed statement of a 200 answer, for the caller to verify with the KBS key (e.g.
 * ear_token_verify). 404: VTPMCA_ERR_NOT_FOUND. */
vtpmca_err ledger_client_statement(ledger_client *client, const uint8_t *nonce, size_t nonce_len,
                                   char **jwt, vtpmca_diag *diag);

/* HTTP status of the last request (0 when none completed). */
long ledger_client_last_status(const ledger_client *client);

#endif
