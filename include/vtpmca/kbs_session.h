/* KBS protocol sessions (docs/protocol.md, "KBS protocol"): the state between `auth`,
 * `attest` and `resource`. A bounded, sharded table:
 *  - a session id is 128 random bits (32 lower-case hex characters), its nonce 32 random
 *    bytes; both come from the OpenSSL DRBG;
 *  - an un-attested session lives auth_ttl_s; an attested one attested_ttl_s from the moment
 *    it was attested;
 *  - the nonce is single use: one successful attestation per session; a failed attempt
 *    leaves the session as it was (the client may retry until it expires);
 *  - all slots are allocated when the table is made, so a flood of `auth` calls cannot grow
 *    memory. When a shard is full, creating a session evicts, in this order: an expired
 *    session, then the oldest un-attested session that no attestation is running on. Live
 *    attested sessions are never evicted: when a shard holds nothing else, creation fails
 *    with VTPMCA_ERR_LIMIT (the server answers 503);
 *  - sessions are spread over up to 16 shards by their random id, each with its own mutex.
 * Thread-safe. Times come from an injectable monotonic millisecond clock. */
#ifndef VTPMCA_KBS_SESSION_H
#define VTPMCA_KBS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/jwe.h"
#include "vtpmca/report_data.h"
#include "vtpmca/snp_verifier.h"

#define KBS_SESSION_ID_BYTES 16
#define KBS_SESSION_ID_HEX (2 * KBS_SESSION_ID_BYTES)
#define KBS_NONCE_BYTES 32
#define KBS_TEE_THUMBPRINT_LEN 32

#define KBS_SESSION_DEFAULT_CAPACITY 4096
#define KBS_SESSION_DEFAULT_AUTH_TTL_S 60
#define KBS_SESSION_DEFAULT_ATTESTED_TTL_S 300
#define KBS_SESSION_MAX_CAPACITY 10000000u
#define KBS_SESSION_MAX_TTL_S 86400u

/* Monotonic time in milliseconds. */
typedef uint64_t (*kbs_clock_fn)(void *ctx);

typedef struct {
    unsigned capacity;       /* sessions held at most; 0 = default */
    unsigned auth_ttl_s;     /* un-attested lifetime; 0 = default */
    unsigned attested_ttl_s; /* attested lifetime; 0 = default */
    kbs_clock_fn clock;      /* NULL = CLOCK_MONOTONIC */
    void *clock_ctx;
} kbs_session_config;

typedef struct kbs_session_table kbs_session_table;

vtpmca_err kbs_session_table_new(const kbs_session_config *config, kbs_session_table **out,
                                 vtpmca_diag *diag);
/* Frees every session (wiping nonces). NULL is a no-op. */
void kbs_session_table_free(kbs_session_table *table);

/* The effective configuration (defaults filled in). */
void kbs_session_table_config(const kbs_session_table *table, kbs_session_config *out);

/* Current time of the table's clock. */
uint64_t kbs_session_now_ms(const kbs_session_table *table);

typedef struct {
    char id[KBS_SESSION_ID_HEX + 1];
    uint8_t nonce[KBS_NONCE_BYTES];
    uint64_t expires_ms; /* table clock */
} kbs_session_info;

/* Creates an un-attested session. VTPMCA_ERR_LIMIT when its shard holds only live attested
 * (or currently attesting) sessions. */
vtpmca_err kbs_session_create(kbs_session_table *table, kbs_session_info *out, vtpmca_diag *diag);

/* Why a session could not be used. */
typedef enum {
    KBS_SESSION_OK = 0,
    KBS_SESSION_UNKNOWN,      /* no such id (never issued, evicted, or malformed) */
    KBS_SESSION_EXPIRED,      /* it existed but outlived its TTL; it is removed now */
    KBS_SESSION_NOT_ATTESTED, /* resource on a session without a successful attest */
    KBS_SESSION_SPENT,        /* attest on a session whose nonce was already used */
    KBS_SESSION_BUSY,         /* another attest on this session is in progress */
} kbs_session_status;

/* Stable name, e.g. "expired". */
const char *kbs_session_status_name(kbs_session_status status);

/* Starts one attestation attempt on an un-attested session and copies its nonce. Only one
 * attempt runs at a time. Returns VTPMCA_OK or VTPMCA_ERR_NOT_FOUND / VTPMCA_ERR_CONFLICT
 * with *status saying why. Every successful call is followed by exactly one of
 * kbs_session_finish_attest or kbs_session_abort_attest. */
vtpmca_err kbs_session_begin_attest(kbs_session_table *table, const char *id,
                                    uint8_t nonce[KBS_NONCE_BYTES], kbs_session_status *status);

/* Ends a failed attempt: the session is un-attested again, nonce unchanged. */
void kbs_session_abort_attest(kbs_session_table *table, const char *id);

/* What a successful attestation binds to the session. */
typedef struct {
    const snp_evidence *evidence;  /* copied */
    EVP_PKEY *tee_key;             /* the table takes its own reference */
    const uint8_t *tee_thumbprint; /* KBS_TEE_THUMBPRINT_LEN bytes (RFC 7638 SHA-256) */
    report_data_flavour flavour;
    /* The uncompressed SEC1 point of an EC tee_key, kept so resource requests need not
     * encode the key again; NULL/0 lets the table encode it (and means nothing for RSA). */
    const uint8_t *tee_point;
    size_t tee_point_len;
} kbs_attestation;

/* Ends a successful attempt: the nonce is spent and the session is attested until
 * now + attested_ttl_s (*expires_ms, may be NULL). VTPMCA_ERR_NOT_FOUND if the session is no
 * longer there or no attempt was started. */
vtpmca_err kbs_session_finish_attest(kbs_session_table *table, const char *id,
                                     const kbs_attestation *attestation, uint64_t *expires_ms,
                                     vtpmca_diag *diag);

/* A copy of an attested session, for a resource request. */
typedef struct {
    char id[KBS_SESSION_ID_HEX + 1];
    uint8_t nonce[KBS_NONCE_BYTES];
    snp_evidence evidence;
    EVP_PKEY *tee_key; /* a reference: kbs_session_view_clear frees it */
    uint8_t tee_thumbprint[KBS_TEE_THUMBPRINT_LEN];
    report_data_flavour flavour;
    uint64_t expires_ms;
    uint8_t tee_point[JWE_EC_POINT_MAX]; /* EC tee keys: uncompressed SEC1; RSA: length 0 */
    size_t tee_point_len;
} kbs_session_view;

/* Copies a live attested session. VTPMCA_ERR_NOT_FOUND with *status UNKNOWN, EXPIRED or
 * NOT_ATTESTED otherwise. */
vtpmca_err kbs_session_get_attested(kbs_session_table *table, const char *id, kbs_session_view *out,
                                    kbs_session_status *status);

/* Releases the view's key reference and wipes the nonce. */
void kbs_session_view_clear(kbs_session_view *view);

typedef struct {
    uint64_t live;     /* slots in use (expired ones count until they are reclaimed) */
    uint64_t attested; /* of which attested */
    uint64_t created, evicted_expired, evicted_unattested, refused_full;
} kbs_session_stats;

void kbs_session_get_stats(const kbs_session_table *table, kbs_session_stats *out);

#endif
