/* Evidence-bound EK/IAK certificate issuance (docs/protocol.md, "EK/IAK certificate
 * issuance"): the transport-neutral engine behind POST /v1/ca/challenge, /v1/ca/certify,
 * /v1/ca/activate/start and /v1/ca/activate/finish, and the wire encoding (JSON or CBOR) of
 * their messages, shared by the server and the client (tools/lib/ca_client.c).
 *
 * certify checks, in this order, and refuses at the first failure:
 *   request shape and sizes; the EK is a TCG default EK template and the IAK (if any) a
 *   restricted signing key (ek_template.h); the KBS key is trusted; the nonce is live and
 *   unused (it is spent by this request, whatever the outcome); the SNP report verifies; an
 *   instance is enrolled at the resource path and enabled; REPORT_DATA binds the nonce, the
 *   EK, the IAK and the KBS key (issuance_report_data); host_data and the fleet's latest
 *   policy accept the evidence; the IAK is proven (bound in REPORT_DATA, or by a credential
 *   activation; both when configured); the EK is the one certified for the instance before
 *   (unless an admin allowed a change with issuance_allow_ek_change).
 * Then it issues the EK (and IAK) certificate with the instance-identity extension, records
 * it in the store and audits the outcome. Refusals after the nonce check are audited too
 * (action "certify"); earlier ones are only logged, so unauthenticated garbage cannot flood
 * the audit log. Thread-safe: one engine serves every HTTP worker. */
#ifndef VTPMCA_ISSUANCE_H
#define VTPMCA_ISSUANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/ca_keys.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/err.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"
#include "vtpmca/tpm2_marshal.h"

/* ---- Constants of the protocol ---- */

#define ISSUANCE_NONCE_LEN 32
#define ISSUANCE_KBS_KEY_HASH_LEN 32
/* Domain-separation label of REPORT_DATA; the hashed bytes start with it and a NUL. */
#define ISSUANCE_REPORT_DATA_LABEL "vtpmca-certify-v1"
/* Largest fields accepted (decoded); larger ones are refused as too large. */
#define ISSUANCE_PUBLIC_MAX 1024  /* a TPMT_PUBLIC */
#define ISSUANCE_KBS_KEY_MAX 1024 /* a DER SubjectPublicKeyInfo */
#define ISSUANCE_REPORT_MAX 4096  /* an SNP report (exactly 1184 bytes are valid) */
#define ISSUANCE_FORMAT_MAX 16
/* Activation: ids are 32 random bytes as 64 lower-case hex digits; the credential is 32
 * random bytes (every default EK's nameAlg digest is at least that long). */
#define ISSUANCE_ACTIVATION_ID_HEX 64
#define ISSUANCE_ACTIVATION_SECRET_LEN 32
#define ISSUANCE_ACTIVATION_BLOB_MAX 512

#define ISSUANCE_DEFAULT_CHALLENGE_CAPACITY 4096
#define ISSUANCE_DEFAULT_CHALLENGE_TTL_S 60
#define ISSUANCE_DEFAULT_ACTIVATION_CAPACITY 1024
#define ISSUANCE_DEFAULT_ACTIVATION_TTL_S 300
#define ISSUANCE_MAX_TTL_S 86400u

/* Media types of the two encodings. */
#define ISSUANCE_JSON_TYPE "application/json"
#define ISSUANCE_CBOR_TYPE "application/cbor"

typedef enum {
    ISSUANCE_FORMAT_X509 = 0, /* DER X.509 certificates */
    ISSUANCE_FORMAT_C509,     /* C509 type 3: the re-encoding of the X.509 certificate, from
                                 which the DER is rebuilt byte for byte (c509_to_x509_der) */
} issuance_format;

/* "x509" / "c509"; parse accepts exactly these (else VTPMCA_ERR_PARSE). */
const char *issuance_format_name(issuance_format format);
vtpmca_err issuance_format_parse(const char *text, issuance_format *out);

/* Why a request was refused; each has a stable name (the JSON "error") and an HTTP status. */
typedef enum {
    ISSUANCE_OK = 0,
    ISSUANCE_BAD_REQUEST,          /* 400 bad_request: malformed body or field */
    ISSUANCE_FIELD_TOO_LARGE,      /* 413 field_too_large */
    ISSUANCE_UNSUPPORTED_TEMPLATE, /* 422 unsupported_template: EK or IAK public area */
    ISSUANCE_UNTRUSTED_KBS_KEY,    /* 403 untrusted_kbs_key */
    ISSUANCE_INVALID_NONCE,        /* 401 invalid_nonce: unknown, expired or used */
    ISSUANCE_EVIDENCE_INVALID,     /* 401 evidence_invalid: the report does not verify */
    ISSUANCE_REPORT_DATA_MISMATCH, /* 401 report_data_mismatch: other keys or nonce bound */
    ISSUANCE_UNKNOWN_RESOURCE,     /* 404 unknown_resource: no instance at that path */
    ISSUANCE_DISABLED,             /* 403 instance_disabled */
    ISSUANCE_HOST_DATA_MISMATCH,   /* 403 host_data_mismatch */
    ISSUANCE_NO_POLICY,            /* 403 no_policy */
    ISSUANCE_POLICY_REJECTED,      /* 403 policy_rejected */
    ISSUANCE_EK_CHANGED,           /* 409 ek_changed: another EK than the certified one */
    ISSUANCE_IAK_NOT_PROVEN,       /* 403 iak_not_proven */
    ISSUANCE_UNKNOWN_ACTIVATION,   /* 404 unknown_activation: unknown, expired or finished */
    ISSUANCE_ACTIVATION_FAILED,    /* 403 activation_failed: wrong secret */
    ISSUANCE_UNAVAILABLE,          /* 503 unavailable: VCEK not fetchable now, not started */
} issuance_outcome;

const char *issuance_outcome_name(issuance_outcome outcome);
unsigned issuance_outcome_status(issuance_outcome outcome);

/* REPORT_DATA of a certify request:
 *   SHA-512( "vtpmca-certify-v1" 0x00
 *            || u16be(32) nonce
 *            || u16be(len) name(EK)
 *            || u16be(len) name(IAK)      -- u16be(0) and nothing without an IAK
 *            || u16be(32) SHA-256(kbs_key DER SubjectPublicKeyInfo) )
 * Names are TPM object names (nameAlg || H_nameAlg(TPMT_PUBLIC)), 4..TPM2_NAME_MAX bytes. */
vtpmca_err issuance_report_data(const uint8_t nonce[ISSUANCE_NONCE_LEN], const uint8_t *ek_name,
                                size_t ek_name_len, const uint8_t *iak_name, size_t iak_name_len,
                                const uint8_t kbs_key_hash[ISSUANCE_KBS_KEY_HASH_LEN],
                                uint8_t out[64], vtpmca_diag *diag);

/* ---- The engine ---- */

/* Monotonic time in milliseconds (tests inject their own). */
typedef uint64_t (*issuance_clock_fn)(void *ctx);

typedef struct {
    store *store;           /* instances, certificates, audit; not owned */
    snp_verifier *verifier; /* not owned */
    policy_cache *policies; /* fleet policies; not owned */
    const ca_ctx *ca;       /* the issuing CA; not owned */
    /* Certificate profile (copied; its strings must outlive the engine). base_url may be
     * NULL until issuance_set_base_url: certify answers unavailable meanwhile. */
    ek_profile_config profile;
    /* SHA-256 fingerprints of the DER SubjectPublicKeyInfo of every KBS key whose holders
     * may present certify requests: this service's own and configured peers' (copied). */
    const uint8_t (*trusted_kbs_keys)[ISSUANCE_KBS_KEY_HASH_LEN];
    size_t n_trusted_kbs_keys;
    unsigned challenge_capacity;  /* 0 = default */
    unsigned challenge_ttl_s;     /* 0 = default */
    unsigned activation_capacity; /* pending activations and proofs each; 0 = default */
    unsigned activation_ttl_s;    /* start -> finish, and finish -> certify; 0 = default */
    /* true: an IAK certificate needs a credential activation even when REPORT_DATA binds
     * the IAK (default false: either way proves it). */
    bool require_iak_activation;
    issuance_clock_fn clock; /* NULL = CLOCK_MONOTONIC */
    void *clock_ctx;
} issuance_config;

typedef struct issuance issuance;

/* Checks the configuration (profile with ek_profile_config_check once a base URL is set) and
 * precomputes the CA chain in both formats. */
vtpmca_err issuance_new(const issuance_config *config, issuance **out, vtpmca_diag *diag);
void issuance_free(issuance *engine);

/* Replaces the trusted KBS key fingerprints (SHA-256 of the DER SubjectPublicKeyInfo), e.g.
 * after an admin trusted or untrusted a peer KBS key; requests in flight see the old or the
 * new set, never a mix. */
vtpmca_err issuance_set_trusted_kbs_keys(issuance *engine,
                                         const uint8_t (*keys)[ISSUANCE_KBS_KEY_HASH_LEN], size_t n,
                                         vtpmca_diag *diag);

/* Sets (or replaces) the base URL of CRL distribution points and AIA in issued certificates,
 * e.g. once the daemon knows its port. The string is copied. */
vtpmca_err issuance_set_base_url(issuance *engine, const char *base_url, vtpmca_diag *diag);

/* A fresh single-use nonce, valid for *expires_in_s seconds (or until challenge_capacity
 * newer challenges were made). */
vtpmca_err issuance_challenge(issuance *engine, uint8_t nonce[ISSUANCE_NONCE_LEN],
                              unsigned *expires_in_s, vtpmca_diag *diag);

typedef struct {
    const uint8_t *ek_public; /* TPMT_PUBLIC */
    size_t ek_public_len;
    const uint8_t *iak_public; /* optional (NULL) */
    size_t iak_public_len;
    const uint8_t *kbs_key; /* DER SubjectPublicKeyInfo of the KBS key the SVSM remembered */
    size_t kbs_key_len;
    const char *resource; /* the instance's resource path */
    const char *format;   /* "x509" or "c509" */
    const uint8_t *nonce;
    size_t nonce_len;
    const uint8_t *report; /* the SNP report */
    size_t report_len;
    const char *client; /* who asks, for logs and the audit actor (may be NULL) */
} issuance_certify_request;

typedef struct {
    issuance_outcome outcome;
    char message[256]; /* why (refusals) or what (success); never key material */
    char instance_id[STORE_INSTANCE_ID_MAX + 1]; /* once known */
    /* ISSUANCE_OK only: */
    issuance_format format;
    uint8_t *ek_cert; /* DER or C509, malloc'd */
    size_t ek_cert_len;
    uint8_t *iak_cert; /* NULL without an IAK */
    size_t iak_cert_len;
    char ek_serial[2 * CA_SERIAL_LEN + 1];
    char iak_serial[2 * CA_SERIAL_LEN + 1];
    /* The issuing CA then the root, in the requested format; borrowed from the engine. */
    const uint8_t *chain[2];
    size_t chain_len[2];
} issuance_certify_result;

/* Decides a certify request (see the top of this file). Returns VTPMCA_OK when the request
 * was decided, issued or refused (result->outcome); an error only for bad arguments or
 * failures of the service itself (store, signing), which the caller answers with 500. */
vtpmca_err issuance_certify(issuance *engine, const issuance_certify_request *request,
                            issuance_certify_result *result, vtpmca_diag *diag);
void issuance_certify_result_clear(issuance_certify_result *result);

/* Credential activation, the second way to prove the IAK lives in the EK's TPM. start makes
 * a credential (ISSUANCE_ACTIVATION_SECRET_LEN random bytes) against the EK for the IAK's
 * name (credential.h); finish compares the secret the client recovered with
 * TPM2_ActivateCredential. One attempt per activation. A proven (instance, EK, IAK) is
 * remembered for activation_ttl_s and used up by the certify that issues its IAK
 * certificate. The instance must be enrolled and enabled; EK and IAK must pass the same
 * checks as in certify. */
typedef struct {
    const uint8_t *ek_public;
    size_t ek_public_len;
    const uint8_t *iak_public;
    size_t iak_public_len;
    const char *resource;
    const char *client;
} issuance_activation_request;

typedef struct {
    issuance_outcome outcome;
    char message[256];
    char instance_id[STORE_INSTANCE_ID_MAX + 1];
    char activation_id[ISSUANCE_ACTIVATION_ID_HEX + 1]; /* start */
    uint8_t *credential_blob; /* start: TPM2B_ID_OBJECT contents, malloc'd */
    size_t credential_blob_len;
    uint8_t *encrypted_secret; /* start: TPM2B_ENCRYPTED_SECRET contents, malloc'd */
    size_t encrypted_secret_len;
    unsigned expires_in_s; /* start: until finish; finish: how long the proof is kept */
} issuance_activation_result;

vtpmca_err issuance_activation_start(issuance *engine, const issuance_activation_request *request,
                                     issuance_activation_result *result, vtpmca_diag *diag);
vtpmca_err issuance_activation_finish(issuance *engine, const char *activation_id,
                                      const uint8_t *secret, size_t secret_len, const char *client,
                                      issuance_activation_result *result, vtpmca_diag *diag);
void issuance_activation_result_clear(issuance_activation_result *result);

/* An admin allows the next certify of instance_id to present an EK other than the one
 * certified before (the instance's vTPM was re-created): recorded in the store
 * (store_instance_ek_reenroll_grant), used up by that certify, audited (action
 * "ek_reenroll", actor: 1..63 bytes). Needs only the store, so the admin API and the CLI
 * (on the database) call it alike. NOT_FOUND for an unknown instance. */
vtpmca_err issuance_allow_ek_change(store *st, const char *instance_id, const char *actor,
                                    vtpmca_diag *diag);

typedef struct {
    uint64_t challenges, issued, refused, activations_started, activations_proven;
    size_t live_challenges;
} issuance_stats;
void issuance_get_stats(issuance *engine, issuance_stats *out);

/* ---- Wire messages (issuance_wire.c) ----
 * Every message is one flat map with text keys. JSON: an object, byte fields as standard
 * base64 with padding, lists as arrays. CBOR (RFC 8949): a definite-length map, byte fields
 * as byte strings, text as text strings, integers as unsigned integers, lists as arrays of
 * byte strings. Decoding is strict: unknown or duplicate keys, wrong types, missing
 * required fields, trailing bytes, indefinite lengths and (CBOR) tags are VTPMCA_ERR_PARSE;
 * a field above its limit is VTPMCA_ERR_LIMIT. */

typedef enum {
    ISSUANCE_ENC_JSON = 0,
    ISSUANCE_ENC_CBOR,
} issuance_encoding;

/* The encoding of a Content-Type value ("application/json" or "application/cbor", any
 * case, parameters after ';' ignored); VTPMCA_ERR_UNSUPPORTED for others and NULL. */
vtpmca_err issuance_encoding_from_type(const char *content_type, issuance_encoding *out);

typedef enum {
    ISSUANCE_FIELD_BYTES = 0,
    ISSUANCE_FIELD_TEXT,
    ISSUANCE_FIELD_UINT,
    ISSUANCE_FIELD_BYTES_LIST,
} issuance_field_type;

#define ISSUANCE_LIST_MAX 4

typedef struct {
    const char *name;
    issuance_field_type type;
    const uint8_t *bytes;                   /* BYTES; TEXT as NUL-terminated UTF-8 */
    size_t len;                             /* BYTES length; TEXT length without the NUL */
    uint64_t uint;                          /* UINT */
    const uint8_t *list[ISSUANCE_LIST_MAX]; /* BYTES_LIST */
    size_t list_len[ISSUANCE_LIST_MAX];
    size_t list_count;
} issuance_field;

#define ISSUANCE_MESSAGE_MAX_FIELDS 8

/* What a message may hold: name, type, limit (bytes: decoded length; text: characters;
 * uint: the largest value; list: entries' length, at most ISSUANCE_LIST_MAX entries) and
 * whether it is required. */
typedef struct {
    const char *name;
    issuance_field_type type;
    size_t max;
    bool required;
} issuance_field_spec;

/* A decoded message: the fields present, in schema order, pointing into storage the message
 * owns (free with issuance_message_free). */
typedef struct {
    issuance_field fields[ISSUANCE_MESSAGE_MAX_FIELDS];
    size_t count;
    void *storage;
} issuance_message;

/* Encodes fields (1..ISSUANCE_MESSAGE_MAX_FIELDS) as one map; *out malloc'd. */
vtpmca_err issuance_message_encode(issuance_encoding encoding, const issuance_field *fields,
                                   size_t n, uint8_t **out, size_t *out_len, vtpmca_diag *diag);
/* Decodes body against spec (1..ISSUANCE_MESSAGE_MAX_FIELDS entries). */
vtpmca_err issuance_message_decode(issuance_encoding encoding, const uint8_t *body, size_t len,
                                   const issuance_field_spec *spec, size_t n_spec,
                                   issuance_message *out, vtpmca_diag *diag);
/* The field called name, or NULL when absent. */
const issuance_field *issuance_message_get(const issuance_message *msg, const char *name);
void issuance_message_free(issuance_message *msg);

/* The message schemas of the protocol (docs/protocol.md lists the same). */
extern const issuance_field_spec ISSUANCE_CHALLENGE_RESPONSE[2];
extern const issuance_field_spec ISSUANCE_CERTIFY_REQUEST[7];
extern const issuance_field_spec ISSUANCE_CERTIFY_RESPONSE[4];
extern const issuance_field_spec ISSUANCE_ACTIVATE_START_REQUEST[3];
extern const issuance_field_spec ISSUANCE_ACTIVATE_START_RESPONSE[4];
extern const issuance_field_spec ISSUANCE_ACTIVATE_FINISH_REQUEST[2];
extern const issuance_field_spec ISSUANCE_ACTIVATE_FINISH_RESPONSE[2];
#define ISSUANCE_SPEC_COUNT(spec) (sizeof(spec) / sizeof((spec)[0]))

/* Server side: request bodies into engine requests (pointing into *msg, which the caller
 * frees), results into response bodies. Decoding errors are PARSE (400) or LIMIT (413). */
vtpmca_err issuance_decode_certify(issuance_encoding encoding, const uint8_t *body, size_t len,
                                   issuance_certify_request *request, issuance_message *msg,
                                   vtpmca_diag *diag);
vtpmca_err issuance_decode_activation_start(issuance_encoding encoding, const uint8_t *body,
                                            size_t len, issuance_activation_request *request,
                                            issuance_message *msg, vtpmca_diag *diag);
/* activation_id points into *msg (NUL-terminated). */
vtpmca_err issuance_decode_activation_finish(issuance_encoding encoding, const uint8_t *body,
                                             size_t len, const char **activation_id,
                                             const uint8_t **secret, size_t *secret_len,
                                             issuance_message *msg, vtpmca_diag *diag);
vtpmca_err issuance_encode_challenge(issuance_encoding encoding,
                                     const uint8_t nonce[ISSUANCE_NONCE_LEN], unsigned expires_in_s,
                                     uint8_t **out, size_t *out_len, vtpmca_diag *diag);
vtpmca_err issuance_encode_certify(issuance_encoding encoding,
                                   const issuance_certify_result *result, uint8_t **out,
                                   size_t *out_len, vtpmca_diag *diag);
vtpmca_err issuance_encode_activation_start(issuance_encoding encoding,
                                            const issuance_activation_result *result, uint8_t **out,
                                            size_t *out_len, vtpmca_diag *diag);
vtpmca_err issuance_encode_activation_finish(issuance_encoding encoding,
                                             const issuance_activation_result *result,
                                             uint8_t **out, size_t *out_len, vtpmca_diag *diag);

#endif
