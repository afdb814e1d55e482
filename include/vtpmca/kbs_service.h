/* The KBS protocol 0.4.0 engine (docs/protocol.md, "KBS protocol"): auth, attest and
 * resource, independent of HTTP. The transport hands over the request body, the
 * kbs-session-id cookie and the bearer token; the engine answers with a status, a JSON body
 * and the Set-Cookie value to send. The 200 answers come as compact JSON text, ready to send;
 * every answer other than 200 is the object {"error": <code>, "message": <text>}; messages
 * never carry key material.
 * Thread-safe: one service serves every HTTP worker. */
#ifndef VTPMCA_KBS_SERVICE_H
#define VTPMCA_KBS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "vtpmca/err.h"
#include "vtpmca/kbs_session.h"
#include "vtpmca/report_data.h"
#include "vtpmca/key_release.h"
#include "vtpmca/snp_verifier.h"
#include "vtpmca/store.h"

#define KBS_COOKIE_PATH "/kbs"
/* Size of a Set-Cookie value (name, id, attributes). */
#define KBS_SET_COOKIE_MAX 128
/* Largest wrapped-key blob accepted in a resource POST, decoded. */
#define KBS_WRAPPED_KEY_MAX 1024

typedef struct {
    snp_verifier *verifier;    /* required; not owned */
    key_release *release;      /* not owned; NULL: resource requests answer 503 */
    const EVP_PKEY *kbs_key;   /* required: signs the KBS binding (EC P-256/P-384) */
    const EVP_PKEY *token_key; /* required: signs the EAR tokens (EC P-256/P-384) */
    kbs_session_config sessions;
} kbs_service_config;

typedef struct kbs_service kbs_service;

/* Both keys are referenced (the caller may free its own references). */
vtpmca_err kbs_service_new(const kbs_service_config *config, kbs_service **out, vtpmca_diag *diag);
void kbs_service_free(kbs_service *service);

/* Exactly one of body and text is set in a filled reply: text for the 200 answers (made
 * without building JSON objects: they are the hot path), body for the others. */
typedef struct {
    unsigned status;                     /* HTTP status */
    json_t *body;                        /* a JSON answer; kbs_reply_clear frees it */
    char set_cookie[KBS_SET_COOKIE_MAX]; /* Set-Cookie value, "" = none */
    unsigned retry_after_s;              /* non-zero: send Retry-After */
    char *text;      /* a JSON answer as compact text (malloc'd, NUL-terminated); freed too */
    size_t text_len; /* its length */
} kbs_reply;

void kbs_reply_clear(kbs_reply *reply);

/* POST /kbs/v0/auth with body {"version":"0.4.0","tee":"snp","extra-params":...}. 200:
 * {"nonce": <32 random bytes, standard base64 with padding>, "extra-params": ""} and a
 * cookie "kbs-session-id=<id>; Path=/kbs; HttpOnly; Max-Age=<auth TTL>". 400 for a
 * malformed request or another version, 503 when the session table is full.
 * Each call returns VTPMCA_OK once *reply is filled (whatever its status); an error only
 * for bad arguments or when no memory is left for a reply. */
vtpmca_err kbs_service_auth(kbs_service *service, const uint8_t *body, size_t body_len,
                            kbs_reply *reply);

/* POST /kbs/v0/attest with the session cookie (NULL when absent) and the Attestation body.
 * 200: {"token": <EAR JWT>} and the cookie again with the attested TTL. 400 malformed,
 * 401 no/unknown/expired session, a nonce other than the session's, a spent nonce (second
 * attest), evidence that fails verification or whose REPORT_DATA binds something else;
 * 409 while another attest on the session runs; 503 when the VCEK cannot be fetched now. */
vtpmca_err kbs_service_attest(kbs_service *service, const char *cookie, const uint8_t *body,
                              size_t body_len, kbs_reply *reply);

/* GET (body NULL) or POST (body {"wrapped-key": <base64url of the blob>}) of
 * /kbs/v0/resource/<resource_path>, resource_path being "<repo>/<type>/<tag>". Credentials:
 * the session cookie, or a bearer token from `attest` (both may be given; then they must
 * name the same session). 200: the flattened JWE of the key for the session's tee-pubkey,
 * with the KBS binding in "header" (EC tee keys). 400 malformed, 401 no valid attested
 * session or token, 403 the release is refused (policy, host data, disabled, wrapped key),
 * 404 no instance at that path, 503 no key release configured. */
vtpmca_err kbs_service_resource(kbs_service *service, const char *cookie, const char *bearer,
                                const char *resource_path, const uint8_t *body, size_t body_len,
                                kbs_reply *reply);

/* kbs_service_resource in two halves, for callers that write the release's audit row without
 * waiting (store_audit_append_async) and serve other requests meanwhile:
 *   kbs_service_resource_begin answers at once when no release is decided (malformed path
 *   or body, no attested session, no key release): *reply is filled and *release is NULL.
 *   Otherwise it decides, makes the JWE when granted, and returns *release with an empty
 *   *reply: the caller then writes kbs_release_audit_row(*release) and passes how that ended
 *   to kbs_service_resource_end, which fills *reply (the granted key only when the row is
 *   durable; 503 otherwise) and frees the release, also on an error return.
 *   When kbs_release_writes_store is true (a wrapped-key instance: the ledger keeps its key),
 *   kbs_service_resource_end writes to the store, so it must not run inside a store report.
 * kbs_service_resource is the two with a waiting write in between. */
typedef struct kbs_release kbs_release;
vtpmca_err kbs_service_resource_begin(kbs_service *service, const char *cookie, const char *bearer,
                                      const char *resource_path, const uint8_t *body,
                                      size_t body_len, kbs_reply *reply, kbs_release **release);
const store_audit_event *kbs_release_audit_row(const kbs_release *release);
bool kbs_release_writes_store(const kbs_release *release);
vtpmca_err kbs_service_resource_end(kbs_service *service, kbs_release *release,
                                    vtpmca_err audit_err, kbs_reply *reply);

/* Prometheus text (format 0.0.4) of the KBS counters and the live-session gauge:
 * vtpmca_kbs_requests_total{step,outcome}, vtpmca_kbs_report_data_total{flavour},
 * vtpmca_kbs_sessions, vtpmca_kbs_session_evictions_total{reason}. *out is malloc'd. */
vtpmca_err kbs_service_metrics_render(const kbs_service *service, char **out, size_t *out_len);

/* Counter value for one step ("auth", "attest", "resource") and outcome name (as in the
 * metrics); 0 for unknown names. For tests and tools. */
uint64_t kbs_service_count(const kbs_service *service, const char *step, const char *outcome);

/* The session table (for statistics). */
const kbs_session_table *kbs_service_sessions(const kbs_service *service);

#endif
