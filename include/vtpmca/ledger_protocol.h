/* The rollback ledger's wire protocol (docs/protocol.md, "Rollback ledger: protocol"),
 * independent of HTTP: JSON and CBOR bodies, the per-instance ledger key (HKDF of the released
 * persistence key), HMAC-SHA-256 over canonical byte strings in both directions, request-nonce
 * freshness, and ES256/ES384 statements signed with the KBS ECDSA key for third parties.
 *
 * Three layers:
 *  - pure functions shared by the service and clients (ledger_key_derive, the canonical MAC
 *    input of each message, ledger_msg_encode / _decode, ledger_check_image);
 *  - ledger_service: what vtpmcad runs behind POST /v1/ledger/{advance,query,statement};
 *  - ledger_refusal_audit: the engine's refusal hook that writes the audit log.
 * The engine itself (order of counters, group commit, durability) is include/vtpmca/ledger.h. */
#ifndef VTPMCA_LEDGER_PROTOCOL_H
#define VTPMCA_LEDGER_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/ledger.h"
#include "vtpmca/store.h"

#define LEDGER_KEY_LEN 32 /* the per-instance ledger key */
#define LEDGER_MAC_LEN 32 /* HMAC-SHA-256 */
#define LEDGER_NONCE_MIN 16
#define LEDGER_NONCE_MAX 64
/* HKDF-SHA256 salt of the ledger key; the info is the instance id. */
#define LEDGER_KDF_SALT "vtpmca-ledger-v1"
/* Domain-separation labels: each canonical MAC input starts with one of these and a NUL. */
#define LEDGER_LABEL_ADVANCE "vtpmca-ledger-advance-v1"
#define LEDGER_LABEL_ADVANCE_ACK "vtpmca-ledger-advance-ack-v1"
#define LEDGER_LABEL_QUERY "vtpmca-ledger-query-v1"
#define LEDGER_LABEL_QUERY_ANSWER "vtpmca-ledger-query-answer-v1"
/* Key vault context of a stored (wrapped-key mode) ledger key: "ledger-key:<instance id>". */
#define LEDGER_KEY_CONTEXT_PREFIX "ledger-key:"
/* The largest canonical MAC input (a query answer with the longest fields). */
#define LEDGER_MAC_INPUT_MAX 512
/* Statements are valid for this long ("exp" - "iat"). */
#define LEDGER_STATEMENT_TTL_S 300

#define LEDGER_JSON_CONTENT_TYPE "application/json"
#define LEDGER_CBOR_CONTENT_TYPE "application/cbor"

typedef enum {
    LEDGER_FORMAT_JSON = 0, /* byte fields as strings: counters hex, the rest base64 */
    LEDGER_FORMAT_CBOR,     /* byte fields as CBOR byte strings */
} ledger_format;

/* ---- Keys ---- */

/* HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF "HKDF": extract with salt (may be empty),
 * expand with info (may be empty) to out_len (1..8160) bytes. */
vtpmca_err ledger_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                              size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                              size_t out_len, vtpmca_diag *diag);

/* The ledger key of an instance: HKDF-SHA256(IKM = persistence key (1..KEYVAULT_KEY_MAX
 * bytes), salt = LEDGER_KDF_SALT, info = instance id) -> LEDGER_KEY_LEN bytes. */
vtpmca_err ledger_key_derive(const uint8_t *persistence_key, size_t persistence_key_len,
                             const char *instance, uint8_t out[LEDGER_KEY_LEN], vtpmca_diag *diag);

/* ---- Messages ---- */

typedef enum {
    LEDGER_MSG_ADVANCE_REQUEST = 0, /* instance, counter, root, nonce, mac */
    LEDGER_MSG_ADVANCE_ANSWER,      /* result, [counter, root], nonce, mac (+ refusal info) */
    LEDGER_MSG_QUERY_REQUEST,       /* instance, nonce, mac */
    LEDGER_MSG_QUERY_ANSWER,        /* result, [counter, origin, root, time], nonce, mac */
    LEDGER_MSG_STATEMENT_REQUEST,   /* instance, nonce (no MAC: anyone may ask) */
} ledger_msg_kind;

/* Results of answers. */
#define LEDGER_RESULT_FOUND "found" /* query: the ledger has a record */
#define LEDGER_RESULT_NONE "none"   /* query: no record (404) */

/* One message of any kind; which fields are used depends on the kind (above). */
typedef struct {
    char instance[STORE_INSTANCE_ID_MAX + 1];
    /* Answers: "accepted", "duplicate", "fork", "rollback", "locked" (advance; the names of
     * ledger_outcome_name) or "found", "none" (query). */
    char result[16];
    bool has_entry; /* answers: counter and root (query answers: also origin, time) are set */
    uint8_t counter[LEDGER_COUNTER_LEN];
    uint8_t origin[LEDGER_COUNTER_LEN];
    uint8_t root[LEDGER_ROOT_MAX];
    size_t root_len;
    int64_t time_ms; /* unix milliseconds the ledger accepted the counter */
    uint8_t nonce[LEDGER_NONCE_MAX];
    size_t nonce_len;
    uint8_t mac[LEDGER_MAC_LEN];
    /* Informational members of non-200 answers; not covered by the MAC. */
    bool locked;    /* advance refusals: the instance is locked */
    char error[32]; /* the error code */
    char message[256];
} ledger_msg;

/* The exact bytes the MAC of a message covers: the kind's label and a NUL, then each field as
 * a u32 big-endian length and its bytes (docs/protocol.md lists the fields per kind; absent
 * answer fields have length 0, the time is 8 bytes big-endian). No MAC for statement
 * requests (VTPMCA_ERR_INVALID_ARG). */
vtpmca_err ledger_msg_mac_input(ledger_msg_kind kind, const ledger_msg *msg, uint8_t *out,
                                size_t out_size, size_t *out_len, vtpmca_diag *diag);

/* HMAC-SHA-256 under key of ledger_msg_mac_input: computes msg->mac, or checks it in
 * constant time (VTPMCA_ERR_CRYPTO when it differs). */
vtpmca_err ledger_msg_sign(ledger_msg_kind kind, ledger_msg *msg, const uint8_t key[LEDGER_KEY_LEN],
                           vtpmca_diag *diag);
vtpmca_err ledger_msg_verify(ledger_msg_kind kind, const ledger_msg *msg,
                             const uint8_t key[LEDGER_KEY_LEN], vtpmca_diag *diag);

/* Serialises the members of the kind (for answers: those its result carries) as a JSON
 * object or a CBOR map; *out is malloc'd. */
vtpmca_err ledger_msg_encode(ledger_msg_kind kind, ledger_format format, const ledger_msg *msg,
                             uint8_t **out, size_t *out_len, vtpmca_diag *diag);

/* Parses a body. Requests are strict: every member of the kind present, exactly once, with
 * its type and size, and no other member (VTPMCA_ERR_PARSE names the problem). Answers may
 * carry members this version does not know (ignored); members of non-200 answers (error,
 * message, locked) are optional. */
vtpmca_err ledger_msg_decode(ledger_msg_kind kind, ledger_format format, const uint8_t *body,
                             size_t len, ledger_msg *out, vtpmca_diag *diag);

/* The SVSM's check of its filesystem image against the ledger's latest entry, on open:
 * VTPMCA_OK when the image is the ledger's (same counter and root) or after it (then
 * *newer, which may be NULL, is true: writes the ledger never acknowledged, e.g. after an
 * admin reset); VTPMCA_ERR_CONFLICT with a diag saying "rollback" (a counter before the
 * ledger's) or "fork" (the ledger's counter with another root). */
vtpmca_err ledger_check_image(const ledger_entry *ledger_latest,
                              const uint8_t counter[LEDGER_COUNTER_LEN], const uint8_t *root,
                              size_t root_len, bool *newer, vtpmca_diag *diag);

/* ---- The service (vtpmcad) ---- */

typedef struct ledger_service ledger_service;

#define LEDGER_DEFAULT_NONCE_CAPACITY (1u << 20)
#define LEDGER_DEFAULT_NONCE_TTL_S 600u
#define LEDGER_DEFAULT_KEY_CACHE_ENTRIES 65536u

typedef struct {
    ledger *engine;                /* required; not owned */
    store *store;                  /* required: instances and stored ledger keys; not owned */
    const keyvault *vault;         /* required: unwraps instance keys; not owned */
    const EVP_PKEY *statement_key; /* required: EC P-256/P-384 (the KBS key); referenced */
    size_t nonce_capacity;         /* request nonces remembered; 0 = the default */
    unsigned nonce_ttl_s;          /* how long a nonce is remembered; 0 = the default */
    size_t key_cache_entries;      /* derived ledger keys kept in memory; 0 = the default */
    unsigned key_cache_ttl_ms;     /* how long a cached key (and the instance's enrollment
                                    * state) is reused; 0 = look it up for every request */
} ledger_service_config;

vtpmca_err ledger_service_new(const ledger_service_config *config, ledger_service **out,
                              vtpmca_diag *diag);
void ledger_service_free(ledger_service *service); /* wipes the cached keys; NULL is a no-op */

/* An answer: HTTP status and a body in `format` (MACed answers and statements in the
 * request's format; errors without a MAC are always JSON {"error","message"}). */
typedef struct {
    unsigned status;
    ledger_format format;
    uint8_t *body; /* malloc'd */
    size_t body_len;
    unsigned retry_after_s; /* non-zero: send Retry-After */
} ledger_reply;

void ledger_reply_clear(ledger_reply *reply);

/* POST /v1/ledger/advance. 200 accepted/duplicate; 409 MACed refusal (fork, rollback,
 * locked); 400 malformed; 401 bad MAC; 403 instance disabled or (wrapped-key mode) no ledger
 * key yet; 404 unknown instance; 409 stale nonce; 503 the engine is busy or the store failed.
 * Each call returns VTPMCA_OK once *reply is filled; an error only for bad arguments or when
 * no memory is left for an answer. */
vtpmca_err ledger_service_advance(ledger_service *service, ledger_format format,
                                  const uint8_t *body, size_t len, ledger_reply *reply);

/* POST /v1/ledger/query: 200 "found" or 404 "none", both MACed; errors as for advance. */
vtpmca_err ledger_service_query(ledger_service *service, ledger_format format, const uint8_t *body,
                                size_t len, ledger_reply *reply);

/* POST /v1/ledger/statement: 200 {"statement": JWT signed with the statement key} over the
 * instance's latest entry and the caller's nonce; 404 unknown instance or no record. */
vtpmca_err ledger_service_statement(ledger_service *service, ledger_format format,
                                    const uint8_t *body, size_t len, ledger_reply *reply);

/* Wrapped-key mode: called once a persistence key was released to an instance. Derives the
 * ledger key, stores it wrapped under the master key (context LEDGER_KEY_CONTEXT_PREFIX +
 * id) and drops the instance's cached key. A generated-mode instance needs nothing (its key
 * is in the store): VTPMCA_OK without writing. */
vtpmca_err ledger_service_remember_release(ledger_service *service, const char *instance_id,
                                           const uint8_t *persistence_key, size_t key_len,
                                           vtpmca_diag *diag);

/* The same for a release seen from the outside (the KBS resource POST that was answered
 * 200): the instance enrolled at resource_path, and the wrapped-key blob it presented, which
 * is unwrapped here. Generated-mode instances: VTPMCA_OK, nothing done. */
vtpmca_err ledger_service_remember_wrapped_release(ledger_service *service,
                                                   const char *resource_path, const uint8_t *blob,
                                                   size_t blob_len, vtpmca_diag *diag);

/* Prometheus text: vtpmca_ledger_requests_total{op,outcome}, the engine's
 * vtpmca_ledger_advances_total{result}, commits, batches, batch sizes, queue depth, and the
 * nonce and key caches. *out is malloc'd. */
vtpmca_err ledger_service_metrics_render(const ledger_service *service, char **out,
                                         size_t *out_len);

/* Requests counted for an op ("advance", "query", "statement") and outcome (as in the
 * metrics); 0 for unknown names. For tests and tools. */
uint64_t ledger_service_count(const ledger_service *service, const char *op, const char *outcome);

/* ---- Audit and admin ---- */

/* A ledger_refusal_hook (ledger_config.on_refusal) with ctx = the store: appends an audit
 * row {actor "ledger", action "ledger_refused", outcome fork|rollback|locked, detail: the
 * presented and the ledger's counters, whether the instance is locked}. Never the root or any
 * key. A failed append is logged (the refusal stands). */
void ledger_refusal_audit(void *store_ctx, const ledger_refusal *refusal);

/* The admin view of an instance's ledger record as JSON: {"instance", "has_entry",
 * "counter", "origin" (hex), "root" (base64), "time_ms", "locked", "require_admin_clear",
 * "fork_refusals", "rollback_refusals"} (counter, origin, root and time_ms only with an
 * entry). For `ledger show` in the admin API and the CLI. */
vtpmca_err ledger_record_to_json(const char *instance, const ledger_record *record, json_t **out,
                                 vtpmca_diag *diag);

#endif
