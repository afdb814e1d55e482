/* KBS protocol 0.4.0 engine: request validation, sessions, evidence and REPORT_DATA checks,
 * EAR tokens, key release and the JWE answer. No HTTP here (server/kbs_routes.c is the glue). */
#include "vtpmca/kbs_service.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "vtpmca/ear_token.h"
#include "vtpmca/encoding.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/log.h"
#include "vtpmca/report_data.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/store.h"
#include "vtpmca/text.h"

#define ALG_EC "ECDH-ES+A256KW"
#define ALG_RSA "RSA-OAEP-256"

/* ---- outcomes, one counter each ---- */

typedef enum {
    AUTH_OK = 0,
    AUTH_BAD_REQUEST,
    AUTH_UNSUPPORTED_VERSION,
    AUTH_UNSUPPORTED_TEE,
    AUTH_TABLE_FULL,
    AUTH_INTERNAL,
    AUTH_COUNT
} auth_outcome;
static const char *const auth_names[AUTH_COUNT] = {
    "ok", "bad_request", "unsupported_version", "unsupported_tee", "table_full", "internal"};

typedef enum {
    ATTEST_OK = 0,
    ATTEST_BAD_REQUEST,
    ATTEST_NO_SESSION,
    ATTEST_UNKNOWN_SESSION,
    ATTEST_EXPIRED_SESSION,
    ATTEST_NONCE_SPENT,
    ATTEST_BUSY,
    ATTEST_NONCE_MISMATCH,
    ATTEST_REPORT_DATA_MISMATCH,
    ATTEST_EVIDENCE_INVALID,
    ATTEST_VCEK_UNAVAILABLE,
    ATTEST_INTERNAL,
    ATTEST_COUNT
} attest_outcome;
static const char *const attest_names[ATTEST_COUNT] = {"ok",
                                                       "bad_request",
                                                       "no_session",
                                                       "unknown_session",
                                                       "expired_session",
                                                       "nonce_spent",
                                                       "busy",
                                                       "nonce_mismatch",
                                                       "report_data_mismatch",
                                                       "evidence_invalid",
                                                       "vcek_unavailable",
                                                       "internal"};

typedef enum {
    RES_GRANTED = 0,
    RES_UNKNOWN_RESOURCE,
    RES_DISABLED,
    RES_NO_POLICY,
    RES_POLICY_REJECTED,
    RES_HOST_DATA_MISMATCH,
    RES_WRAPPED_KEY_INVALID,
    RES_UNAUTHORIZED,
    RES_BAD_REQUEST,
    RES_UNAVAILABLE,
    RES_INTERNAL,
    RES_COUNT
} resource_outcome;
static const char *const resource_names[RES_COUNT] = {"granted",
                                                      "unknown_resource",
                                                      "disabled",
                                                      "no_policy",
                                                      "policy_rejected",
                                                      "host_data_mismatch",
                                                      "wrapped_key_invalid",
                                                      "unauthorized",
                                                      "bad_request",
                                                      "unavailable",
                                                      "internal"};

struct kbs_service {
    snp_verifier *verifier;
    key_release *release;
    EVP_PKEY *kbs_key;
    char *kbs_jwk_text; /* kbs_key's public JWK as JSON text, made once: every binding has it */
    ear_token_key token_key;
    kbs_session_table *sessions;
    kbs_session_config session_config;
    atomic_uint_fast64_t auth[AUTH_COUNT];
    atomic_uint_fast64_t attest[ATTEST_COUNT];
    atomic_uint_fast64_t resource[RES_COUNT];
    atomic_uint_fast64_t flavours[3]; /* by report_data_flavour */
};

/* ---- replies ---- */

void kbs_reply_clear(kbs_reply *reply)
{
    if (reply == NULL)
        return;
    json_decref(reply->body);
    free(reply->text);
    memset(reply, 0, sizeof(*reply));
}

/* Drops the body a reply holds, to put another one in. */
static void drop_body(kbs_reply *reply)
{
    json_decref(reply->body);
    free(reply->text);
    reply->body = NULL;
    reply->text = NULL;
    reply->text_len = 0;
}

static bool has_body(const kbs_reply *reply)
{
    return reply->body != NULL || reply->text != NULL;
}

/* Fills an error reply {"error": code, "message": text}. */
static vtpmca_err reply_error(kbs_reply *reply, unsigned status, const char *code, const char *fmt,
                              ...) VTPMCA_PRINTF(4, 5);
static vtpmca_err reply_error(kbs_reply *reply, unsigned status, const char *code, const char *fmt,
                              ...)
{
    char message[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    drop_body(reply);
    reply->status = status;
    reply->body = json_pack("{s:s,s:s}", "error", code, "message", message);
    if (reply->body == NULL) /* the message was not UTF-8 */
        reply->body = json_pack("{s:s,s:s}", "error", code, "message", "(not printable)");
    return reply->body != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

/* Takes over malloc'd JSON text as a reply body. */
static void reply_take_text(kbs_reply *reply, unsigned status, char *text, size_t len)
{
    drop_body(reply);
    reply->status = status;
    reply->text = text;
    reply->text_len = len;
}

/* Fills a 200-style reply with JSON text made by printf from fmt, whose values must need no
 * JSON escaping (base64, base64url, fixed names). */
static vtpmca_err reply_text(kbs_reply *reply, unsigned status, const char *fmt, ...)
    VTPMCA_PRINTF(3, 4);
static vtpmca_err reply_text(kbs_reply *reply, unsigned status, const char *fmt, ...)
{
    char *text = NULL;
    size_t len = 0;
    va_list ap;
    va_start(ap, fmt);
    vtpmca_err err = vt_text_vprintf(&text, &len, fmt, ap);
    va_end(ap);
    if (err != VTPMCA_OK)
        return err;
    reply_take_text(reply, status, text, len);
    return VTPMCA_OK;
}

static void set_cookie(kbs_reply *reply, const char *session_id, unsigned max_age_s)
{
    snprintf(reply->set_cookie, sizeof(reply->set_cookie),
             KBS_COOKIE_NAME "=%s; Path=" KBS_COOKIE_PATH "; HttpOnly; Max-Age=%u", session_id,
             max_age_s);
}

static const char *short_id(const char *id)
{
    return id != NULL ? id : "";
}

/* ---- service ---- */

vtpmca_err kbs_service_new(const kbs_service_config *config, kbs_service **out, vtpmca_diag *diag)
{
    if (config == NULL || out == NULL || config->verifier == NULL || config->kbs_key == NULL ||
        config->token_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "kbs: verifier, KBS key and token key are required");
    if (jws_es_alg(config->kbs_key) == NULL || jws_es_alg(config->token_key) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "kbs: the KBS key and the token key must be EC P-256 or P-384");
    kbs_service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = ear_token_key_init(&svc->token_key, config->token_key, diag);
    if (err == VTPMCA_OK)
        err = kbs_binding_jwk_text(config->kbs_key, &svc->kbs_jwk_text, diag);
    if (err == VTPMCA_OK)
        err = kbs_session_table_new(&config->sessions, &svc->sessions, diag);
    if (err != VTPMCA_OK) {
        kbs_service_free(svc);
        return err;
    }
    kbs_session_table_config(svc->sessions, &svc->session_config);
    svc->verifier = config->verifier;
    svc->release = config->release;
    svc->kbs_key = (EVP_PKEY *)config->kbs_key;
    EVP_PKEY_up_ref(svc->kbs_key);
    *out = svc;
    return VTPMCA_OK;
}

void kbs_service_free(kbs_service *svc)
{
    if (svc == NULL)
        return;
    kbs_session_table_free(svc->sessions);
    EVP_PKEY_free(svc->kbs_key);
    free(svc->kbs_jwk_text);
    ear_token_key_clear(&svc->token_key);
    free(svc);
}

const kbs_session_table *kbs_service_sessions(const kbs_service *svc)
{
    return svc != NULL ? svc->sessions : NULL;
}

/* Parses a request body as one JSON object (duplicate members refused). */
static json_t *parse_object(const uint8_t *body, size_t len, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(body != NULL ? (const char *)body : "", body != NULL ? len : 0,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, why_size, "body is not valid JSON: line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(why, why_size, "body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- auth ---- */

static vtpmca_err auth_done(kbs_service *svc, auth_outcome outcome, vtpmca_err err)
{
    atomic_fetch_add(&svc->auth[outcome], 1);
    if (outcome != AUTH_OK)
        vtpmca_log(VTPMCA_LOG_WARN, "kbs.auth", "outcome", auth_names[outcome], NULL);
    return err;
}

vtpmca_err kbs_service_auth(kbs_service *svc, const uint8_t *body, size_t body_len,
                            kbs_reply *reply)
{
    if (svc == NULL || reply == NULL || (body == NULL && body_len > 0))
        return VTPMCA_ERR_INVALID_ARG;
    memset(reply, 0, sizeof(*reply));
    char why[256];
    json_t *root = parse_object(body, body_len, why, sizeof(why));
    if (root == NULL)
        return auth_done(svc, AUTH_BAD_REQUEST, reply_error(reply, 400, "bad_request", "%s", why));
    const char *version = json_string_value(json_object_get(root, "version"));
    const char *tee = json_string_value(json_object_get(root, "tee"));
    vtpmca_err err;
    auth_outcome outcome = AUTH_OK;
    if (version == NULL || tee == NULL) {
        outcome = AUTH_BAD_REQUEST;
        err = reply_error(reply, 400, "bad_request", "\"version\" and \"tee\" must be strings");
    } else if (strcmp(version, KBS_PROTOCOL_VERSION) != 0) {
        outcome = AUTH_UNSUPPORTED_VERSION;
        err = reply_error(reply, 400, "unsupported_version",
                          "KBS protocol version %.32s is not supported; this server speaks %s",
                          version, KBS_PROTOCOL_VERSION);
    } else if (strcmp(tee, "snp") != 0) {
        outcome = AUTH_UNSUPPORTED_TEE;
        err = reply_error(reply, 400, "unsupported_tee",
                          "tee \"%.32s\" is not supported; only \"snp\" is", tee);
    }
    json_decref(root);
    if (outcome != AUTH_OK)
        return auth_done(svc, outcome, err);

    kbs_session_info info;
    vtpmca_diag diag = {{0}};
    err = kbs_session_create(svc->sessions, &info, &diag);
    if (err == VTPMCA_ERR_LIMIT) {
        reply->retry_after_s = 1;
        return auth_done(svc, AUTH_TABLE_FULL,
                         reply_error(reply, 503, "table_full", "%s", diag.msg));
    }
    if (err != VTPMCA_OK) {
        vtpmca_log(VTPMCA_LOG_ERROR, "kbs.auth.failed", "detail", diag.msg, NULL);
        return auth_done(svc, AUTH_INTERNAL,
                         reply_error(reply, 500, "internal", "cannot create a session"));
    }
    char *nonce = NULL;
    err = vt_b64_encode_alloc(info.nonce, sizeof(info.nonce), VT_B64_STD, &nonce);
    OPENSSL_cleanse(info.nonce, sizeof(info.nonce));
    if (err == VTPMCA_OK)
        err = reply_text(reply, 200, "{\"nonce\":\"%s\",\"extra-params\":\"\"}", nonce);
    free(nonce);
    if (err != VTPMCA_OK)
        return auth_done(svc, AUTH_INTERNAL, err);
    set_cookie(reply, info.id, svc->session_config.auth_ttl_s);
    vtpmca_log(VTPMCA_LOG_INFO, "kbs.auth", "session", info.id, "outcome", "ok", NULL);
    return auth_done(svc, AUTH_OK, VTPMCA_OK);
}

/* ---- attest: request parsing ---- */

typedef struct {
    json_t *root;
    const char *nonce_text;
    const json_t *tee_pubkey; /* points into root */
    const char *additional_evidence;
    EVP_PKEY *tee_key;
    uint8_t tee_point[JWE_EC_POINT_MAX]; /* EC keys: the imported point; RSA: length 0 */
    size_t tee_point_len;
    uint8_t *report;
    size_t report_len;
    uint8_t *cert; /* VCEK/VLEK DER from the certificate table, or NULL */
    size_t cert_len;
} attest_request;

static void attest_request_free(attest_request *req)
{
    json_decref(req->root);
    EVP_PKEY_free(req->tee_key);
    free(req->report);
    free(req->cert);
    memset(req, 0, sizeof(*req));
}

/* Table GUIDs (AMD SEV-SNP GHCB extended guest request), RFC 4122 byte order. */
static const uint8_t guid_vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
static const uint8_t guid_vlek[16] = {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
                                      0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1};

/* Tables exist with the GUID in RFC 4122 order and in the mixed-endian order of UEFI/Windows
 * (first three fields little-endian); either names the same certificate. */
static bool guid_matches(const uint8_t *entry, const uint8_t guid[16])
{
    if (memcmp(entry, guid, 16) == 0)
        return true;
    uint8_t mixed[16] = {guid[3], guid[2], guid[1], guid[0], guid[5], guid[4], guid[7], guid[6]};
    memcpy(mixed + 8, guid + 8, 8);
    return memcmp(entry, mixed, 16) == 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Finds the VCEK (or VLEK) in an SNP certificate table: entries of GUID, u32le offset,
 * u32le length, ended by an all-zero entry; offsets are from the table's start. No entry
 * is fine (the VCEK is then looked up); a malformed table is not. */
static bool cert_from_table(const uint8_t *table, size_t len, uint8_t **cert, size_t *cert_len,
                            char *why, size_t why_size)
{
    static const uint8_t zero[24] = {0};
    for (size_t pos = 0;; pos += 24) {
        if (pos + 24 > len) {
            snprintf(why, why_size, "certificate table has no terminating entry");
            return false;
        }
        const uint8_t *entry = table + pos;
        if (memcmp(entry, zero, 24) == 0)
            return true;
        uint32_t offset = le32(entry + 16), length = le32(entry + 20);
        if (offset > len || length > len - offset || length == 0) {
            snprintf(why, why_size, "certificate table entry %zu points outside the table",
                     pos / 24);
            return false;
        }
        if ((guid_matches(entry, guid_vcek) || guid_matches(entry, guid_vlek)) && *cert == NULL) {
            *cert = malloc(length);
            if (*cert == NULL) {
                snprintf(why, why_size, "out of memory");
                return false;
            }
            memcpy(*cert, table + offset, length);
            *cert_len = length;
        }
    }
}

/* Decodes a padded standard base64 member that may be absent or null. */
static bool optional_b64(const json_t *obj, const char *name, uint8_t **out, size_t *out_len,
                         char *why, size_t why_size)
{
    const json_t *value = json_object_get(obj, name);
    if (value == NULL || json_is_null(value))
        return true;
    if (!json_is_string(value) ||
        vt_b64_decode_alloc(json_string_value(value), json_string_length(value), VT_B64_STD, out,
                            out_len) != VTPMCA_OK) {
        snprintf(why, why_size, "\"%s\" must be null or standard base64 with padding", name);
        return false;
    }
    return true;
}

/* primary_evidence: {"snp-report","certs-buf"} (aproxy) or {"attestation_report",
 * "cert_chain"} with the report as base64 (aproxy's KBS backend, Trustee's member names). */
static bool parse_primary_evidence(const json_t *primary, attest_request *req, char *why,
                                   size_t why_size)
{
    if (!json_is_object(primary)) {
        snprintf(why, why_size, "\"tee-evidence.primary_evidence\" must be an object");
        return false;
    }
    const json_t *aproxy_report = json_object_get(primary, "snp-report");
    const json_t *attestation_report = json_object_get(primary, "attestation_report");
    if ((aproxy_report == NULL) == (attestation_report == NULL)) {
        snprintf(why, why_size,
                 "primary_evidence needs exactly one of \"snp-report\" and "
                 "\"attestation_report\"");
        return false;
    }
    const json_t *report = aproxy_report != NULL ? aproxy_report : attestation_report;
    const char *report_name = aproxy_report != NULL ? "snp-report" : "attestation_report";
    const char *certs_name = aproxy_report != NULL ? "certs-buf" : "cert_chain";
    if (json_is_object(report)) {
        snprintf(why, why_size,
                 "\"%s\" as a decoded JSON structure is not supported: send the "
                 "1184-byte report as standard base64",
                 report_name);
        return false;
    }
    if (!json_is_string(report) ||
        vt_b64_decode_alloc(json_string_value(report), json_string_length(report), VT_B64_STD,
                            &req->report, &req->report_len) != VTPMCA_OK) {
        snprintf(why, why_size, "\"%s\" must be standard base64 with padding", report_name);
        return false;
    }
    if (req->report_len != SNP_REPORT_SIZE) {
        snprintf(why, why_size, "\"%s\" decodes to %zu bytes, not %d", report_name, req->report_len,
                 SNP_REPORT_SIZE);
        return false;
    }
    uint8_t *table = NULL;
    size_t table_len = 0;
    if (!optional_b64(primary, certs_name, &table, &table_len, why, why_size))
        return false;
    bool ok = table == NULL ||
              cert_from_table(table, table_len, &req->cert, &req->cert_len, why, why_size);
    free(table);
    return ok;
}

/* tee-pubkey: an RFC 7517 JWK whose "alg" matches its type; the point must be on the curve. */
static bool parse_tee_pubkey(const json_t *jwk, attest_request *req, char *why, size_t why_size)
{
    if (!json_is_object(jwk)) {
        snprintf(why, why_size, "\"runtime-data.tee-pubkey\" must be a JWK object");
        return false;
    }
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    const char *want = kty == NULL               ? NULL
                       : strcmp(kty, "EC") == 0  ? ALG_EC
                       : strcmp(kty, "RSA") == 0 ? ALG_RSA
                                                 : NULL;
    if (want == NULL) {
        snprintf(why, why_size, "tee-pubkey \"kty\" must be \"EC\" or \"RSA\"");
        return false;
    }
    if (alg == NULL || strcmp(alg, want) != 0) {
        snprintf(why, why_size, "tee-pubkey \"alg\" must be \"%s\" for kty %s", want, kty);
        return false;
    }
    vtpmca_diag diag = {{0}};
    if (jwe_pubkey_from_jwk_point(jwk, JWE_JWK_RFC7517, &req->tee_key, req->tee_point,
                                  &req->tee_point_len, &diag) != VTPMCA_OK) {
        snprintf(why, why_size, "tee-pubkey: %.200s", diag.msg);
        return false;
    }
    req->tee_pubkey = jwk;
    return true;
}

static bool parse_attest_body(const uint8_t *body, size_t len, attest_request *req, char *why,
                              size_t why_size)
{
    req->root = parse_object(body, len, why, why_size);
    if (req->root == NULL)
        return false;
    const json_t *runtime = json_object_get(req->root, "runtime-data");
    const json_t *evidence = json_object_get(req->root, "tee-evidence");
    const json_t *init_data = json_object_get(req->root, "init-data");
    if (!json_is_object(runtime) || !json_is_object(evidence)) {
        snprintf(why, why_size, "\"runtime-data\" and \"tee-evidence\" must be objects");
        return false;
    }
    if (init_data != NULL && !json_is_null(init_data)) {
        snprintf(why, why_size,
                 "\"init-data\" is not supported (host data is checked by the "
                 "instance's enrollment and fleet policy); send null");
        return false;
    }
    req->nonce_text = json_string_value(json_object_get(runtime, "nonce"));
    if (req->nonce_text == NULL) {
        snprintf(why, why_size, "\"runtime-data.nonce\" must be a string");
        return false;
    }
    const json_t *additional = json_object_get(evidence, "additional_evidence");
    req->additional_evidence = "";
    if (additional != NULL && !json_is_string(additional)) {
        snprintf(why, why_size, "\"tee-evidence.additional_evidence\" must be a string");
        return false;
    }
    if (additional != NULL && json_string_length(additional) > 0) {
        snprintf(why, why_size, "additional evidence (other TEEs) is not supported; send \"\"");
        return false;
    }
    return parse_tee_pubkey(json_object_get(runtime, "tee-pubkey"), req, why, why_size) &&
           parse_primary_evidence(json_object_get(evidence, "primary_evidence"), req, why,
                                  why_size);
}

/* ---- attest ---- */

static vtpmca_err attest_done(kbs_service *svc, attest_outcome outcome, const char *session,
                              const char *detail, vtpmca_err err)
{
    atomic_fetch_add(&svc->attest[outcome], 1);
    if (outcome != ATTEST_OK)
        vtpmca_log(outcome == ATTEST_INTERNAL ? VTPMCA_LOG_ERROR : VTPMCA_LOG_WARN, "kbs.attest",
                   "session", short_id(session), "outcome", attest_names[outcome], "detail",
                   detail != NULL ? detail : "", NULL);
    return err;
}

/* RFC 7638 thumbprint of the request's key: SHA-256 over the JCS form of its required JWK
 * members, which is what jwe_pubkey_to_jwk returns (for EC keys made from the imported point,
 * without converting the key back). *jwk_out (may be NULL) receives that JWK. */
static vtpmca_err key_thumbprint(const attest_request *req, uint8_t out[KBS_TEE_THUMBPRINT_LEN],
                                 json_t **jwk_out, vtpmca_diag *diag)
{
    json_t *jwk = NULL;
    vtpmca_err err =
        req->tee_point_len > 0
            ? jwe_ec_jwk_from_point(req->tee_point, req->tee_point_len, JWE_JWK_RFC7517, &jwk, diag)
            : jwe_pubkey_to_jwk(req->tee_key, JWE_JWK_RFC7517, &jwk, diag);
    char *text = NULL;
    size_t len = 0;
    if (err == VTPMCA_OK)
        err = jcs_serialize(jwk, &text, &len, diag);
    if (err == VTPMCA_OK && EVP_Digest(text, len, out, NULL, EVP_sha256(), NULL) != 1)
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-256 failed");
    free(text);
    if (err == VTPMCA_OK && jwk_out != NULL)
        *jwk_out = jwk;
    else
        json_decref(jwk);
    return err;
}

static vtpmca_err session_refused(kbs_service *svc, kbs_reply *reply, const char *id,
                                  kbs_session_status status)
{
    attest_outcome outcome = status == KBS_SESSION_EXPIRED ? ATTEST_EXPIRED_SESSION
                             : status == KBS_SESSION_SPENT ? ATTEST_NONCE_SPENT
                             : status == KBS_SESSION_BUSY  ? ATTEST_BUSY
                                                           : ATTEST_UNKNOWN_SESSION;
    const char *text = outcome == ATTEST_EXPIRED_SESSION
                           ? "the session expired; start again with auth"
                       : outcome == ATTEST_NONCE_SPENT
                           ? "this session's nonce was already used by a successful attest"
                       : outcome == ATTEST_BUSY ? "another attest on this session is running"
                                                : "unknown session; start with auth";
    vtpmca_err err =
        reply_error(reply, outcome == ATTEST_BUSY ? 409 : 401, attest_names[outcome], "%s", text);
    return attest_done(svc, outcome, id, text, err);
}

/* Verifies the evidence and its binding; on success fills *evidence and *flavour. On failure
 * fills the reply and returns the outcome to count. */
static attest_outcome check_evidence(kbs_service *svc, const attest_request *req,
                                     const uint8_t nonce[KBS_NONCE_BYTES], snp_evidence *evidence,
                                     report_data_flavour *flavour, kbs_reply *reply, char *detail,
                                     size_t detail_size)
{
    /* The runtime data must carry the session's nonce exactly as auth issued it. */
    char *expected = NULL;
    if (vt_b64_encode_alloc(nonce, KBS_NONCE_BYTES, VT_B64_STD, &expected) != VTPMCA_OK)
        return ATTEST_INTERNAL;
    bool same = strcmp(expected, req->nonce_text) == 0;
    free(expected);
    if (!same) {
        snprintf(detail, detail_size, "runtime-data nonce is not this session's nonce");
        reply_error(reply, 401, "nonce_mismatch", "%s", detail);
        return ATTEST_NONCE_MISMATCH;
    }
    snp_report parsed;
    vtpmca_diag diag = {{0}};
    if (snp_report_parse(req->report, req->report_len, &parsed, &diag) != VTPMCA_OK) {
        snprintf(detail, detail_size, "report: %.200s", diag.msg);
        reply_error(reply, 400, "bad_request", "%s", detail);
        return ATTEST_BAD_REQUEST;
    }
    /* Checked before the signature: replayed evidence (bound to an old nonce) is turned away
     * without spending an ECDSA verification. Nothing is trusted until both pass. */
    report_data_inputs inputs = {
        .tee_key = req->tee_key,
        .tee_pubkey = req->tee_pubkey,
        .tee_point = req->tee_point_len > 0 ? req->tee_point : NULL,
        .tee_point_len = req->tee_point_len,
        .nonce = nonce,
        .nonce_len = KBS_NONCE_BYTES,
        .nonce_text = req->nonce_text,
        .additional_evidence = req->additional_evidence,
    };
    vtpmca_err err = report_data_match(parsed.report_data, &inputs, flavour, &diag);
    if (err == VTPMCA_ERR_CRYPTO) {
        snprintf(detail, detail_size, "%.200s", diag.msg);
        reply_error(reply, 401, "report_data_mismatch", "%s", detail);
        return ATTEST_REPORT_DATA_MISMATCH;
    }
    if (err != VTPMCA_OK) {
        snprintf(detail, detail_size, "report data: %.200s", diag.msg);
        reply_error(reply, 400, "bad_request", "%s", detail);
        return ATTEST_BAD_REQUEST;
    }
    vtpmca_diag_clear(&diag);
    err = snp_verifier_verify(svc->verifier, req->report, req->report_len, req->cert, req->cert_len,
                              0, evidence, &diag);
    if (err == VTPMCA_OK)
        return ATTEST_OK;
    snprintf(detail, detail_size, "%s: %.200s", vtpmca_err_name(err), diag.msg);
    if (err == VTPMCA_ERR_NETWORK || (err == VTPMCA_ERR_LIMIT && req->cert == NULL)) {
        reply->retry_after_s = 5;
        reply_error(reply, 503, "vcek_unavailable",
                    "the VCEK is not known and AMD KDS cannot be asked now: %.200s", diag.msg);
        return ATTEST_VCEK_UNAVAILABLE;
    }
    if (err == VTPMCA_ERR_NOT_FOUND || err == VTPMCA_ERR_CRYPTO) {
        reply_error(reply, 401, "evidence_invalid", "evidence failed verification: %s", detail);
        return ATTEST_EVIDENCE_INVALID;
    }
    if (req->cert != NULL &&
        (err == VTPMCA_ERR_PARSE || err == VTPMCA_ERR_UNSUPPORTED || err == VTPMCA_ERR_LIMIT)) {
        reply_error(reply, 400, "bad_request", "certificate from the table: %.200s", diag.msg);
        return ATTEST_BAD_REQUEST;
    }
    reply_error(reply, 500, "internal", "verification failed unexpectedly");
    return ATTEST_INTERNAL;
}

/* Signs the token and binds the session; on failure the reply says why. */
static attest_outcome issue_token(kbs_service *svc, const char *id, const attest_request *req,
                                  const snp_evidence *evidence, report_data_flavour flavour,
                                  kbs_reply *reply, char *detail, size_t detail_size)
{
    uint8_t thumbprint[KBS_TEE_THUMBPRINT_LEN];
    json_t *jwk = NULL, *claims = NULL;
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    time_t now = time(NULL);
    vtpmca_err err = key_thumbprint(req, thumbprint, &jwk, &diag);
    if (err == VTPMCA_OK) {
        ear_token_claims in = {
            .evidence = evidence,
            .issued_at = now,
            .expires_at = now + (time_t)svc->session_config.attested_ttl_s,
            .session_id = id,
            .tee_pubkey = jwk,
        };
        err = ear_token_build_claims(&in, &claims, &diag);
    }
    if (err == VTPMCA_OK)
        err = ear_token_sign(&svc->token_key, claims, &token, &diag);
    json_decref(claims);
    json_decref(jwk);
    if (err == VTPMCA_OK) {
        kbs_attestation attestation = {
            .evidence = evidence,
            .tee_key = req->tee_key,
            .tee_thumbprint = thumbprint,
            .flavour = flavour,
            .tee_point = req->tee_point_len > 0 ? req->tee_point : NULL,
            .tee_point_len = req->tee_point_len,
        };
        err = kbs_session_finish_attest(svc->sessions, id, &attestation, NULL, &diag);
        if (err == VTPMCA_ERR_NOT_FOUND) {
            free(token);
            snprintf(detail, detail_size, "%.200s", diag.msg);
            reply_error(reply, 401, "unknown_session", "the session ended during attestation");
            return ATTEST_UNKNOWN_SESSION;
        }
    }
    if (err != VTPMCA_OK) {
        free(token);
        snprintf(detail, detail_size, "%.200s", diag.msg);
        reply_error(reply, 500, "internal", "cannot issue the token");
        return ATTEST_INTERNAL;
    }
    err = reply_text(reply, 200, "{\"token\":\"%s\"}", token);
    free(token);
    if (err != VTPMCA_OK)
        return ATTEST_INTERNAL;
    set_cookie(reply, id, svc->session_config.attested_ttl_s);
    return ATTEST_OK;
}

vtpmca_err kbs_service_attest(kbs_service *svc, const char *cookie, const uint8_t *body,
                              size_t body_len, kbs_reply *reply)
{
    if (svc == NULL || reply == NULL || (body == NULL && body_len > 0))
        return VTPMCA_ERR_INVALID_ARG;
    memset(reply, 0, sizeof(*reply));
    if (cookie == NULL || cookie[0] == '\0') {
        vtpmca_err err =
            reply_error(reply, 401, "no_session", "no " KBS_COOKIE_NAME " cookie; start with auth");
        return attest_done(svc, ATTEST_NO_SESSION, NULL, "no cookie", err);
    }
    /* Everything about the request is checked before the session is touched, so a bad
     * request leaves it as it was. */
    attest_request req = {0};
    char detail[300];
    if (!parse_attest_body(body, body_len, &req, detail, sizeof(detail))) {
        attest_request_free(&req);
        vtpmca_err err = reply_error(reply, 400, "bad_request", "%s", detail);
        return attest_done(svc, ATTEST_BAD_REQUEST, cookie, detail, err);
    }
    uint8_t nonce[KBS_NONCE_BYTES];
    kbs_session_status status;
    if (kbs_session_begin_attest(svc->sessions, cookie, nonce, &status) != VTPMCA_OK) {
        attest_request_free(&req);
        return session_refused(svc, reply, cookie, status);
    }
    snp_evidence evidence;
    report_data_flavour flavour = REPORT_DATA_FLAVOUR_NONE;
    detail[0] = '\0';
    attest_outcome outcome =
        check_evidence(svc, &req, nonce, &evidence, &flavour, reply, detail, sizeof(detail));
    if (outcome == ATTEST_OK)
        outcome = issue_token(svc, cookie, &req, &evidence, flavour, reply, detail, sizeof(detail));
    if (outcome != ATTEST_OK) {
        kbs_session_abort_attest(svc->sessions, cookie);
        if (reply->status == 0)
            reply_error(reply, 500, "internal", "attestation failed unexpectedly");
    }
    attest_request_free(&req);
    OPENSSL_cleanse(nonce, sizeof(nonce));
    if (outcome == ATTEST_OK) {
        atomic_fetch_add(&svc->flavours[flavour], 1);
        char measurement[2 * sizeof(evidence.report.measurement) + 1];
        char chip[2 * 8 + 1];
        vt_hex_encode(evidence.report.measurement, sizeof(evidence.report.measurement), measurement,
                      sizeof(measurement));
        vt_hex_encode(evidence.report.chip_id, 8, chip, sizeof(chip));
        vtpmca_log(VTPMCA_LOG_INFO, "kbs.attest", "session", cookie, "outcome", "ok", "report_data",
                   report_data_flavour_name(flavour), "measurement", measurement, "chip_id_prefix",
                   chip, "vcek_source", snp_vcek_source_name(evidence.vcek_source), NULL);
    }
    return attest_done(svc, outcome, cookie, detail,
                       has_body(reply) ? VTPMCA_OK : VTPMCA_ERR_NOMEM);
}

/* ---- resource ---- */

static vtpmca_err resource_done(kbs_service *svc, resource_outcome outcome, const char *session,
                                const char *path, const char *instance, const char *detail,
                                vtpmca_err err)
{
    atomic_fetch_add(&svc->resource[outcome], 1);
    /* The tag is the unguessable part of a resource path: logs name only <repo>/<type>. */
    char type[2 * STORE_RESOURCE_SEGMENT_MAX + 2] = "";
    const char *tag = path != NULL ? strrchr(path, '/') : NULL;
    if (tag != NULL && tag - path < (ptrdiff_t)sizeof(type))
        snprintf(type, sizeof(type), "%.*s", (int)(tag - path), path);
    vtpmca_log(outcome == RES_GRANTED    ? VTPMCA_LOG_INFO
               : outcome == RES_INTERNAL ? VTPMCA_LOG_ERROR
                                         : VTPMCA_LOG_WARN,
               "kbs.resource", "session", short_id(session), "resource_type", type, "outcome",
               resource_names[outcome], "instance", instance != NULL ? instance : "", "detail",
               detail != NULL ? detail : "", NULL);
    return err;
}

/* Resolves the credentials to an attested session; fills the reply when they do not hold. */
static bool authorize(kbs_service *svc, const char *cookie, const char *bearer,
                      kbs_session_view *view, kbs_reply *reply, char *detail, size_t detail_size)
{
    json_t *claims = NULL;
    const char *id = cookie;
    if (bearer != NULL) {
        vtpmca_diag diag = {{0}};
        vtpmca_err err =
            ear_token_verify(&svc->token_key, bearer, strlen(bearer), time(NULL), &claims, &diag);
        if (err != VTPMCA_OK) {
            snprintf(detail, detail_size, "token: %.200s", diag.msg);
            reply_error(reply, 401, err == VTPMCA_ERR_POLICY ? "token_expired" : "invalid_token",
                        "%s", detail);
            return false;
        }
        id = json_string_value(json_object_get(claims, "sid"));
        if (id == NULL || (cookie != NULL && strcmp(cookie, id) != 0)) {
            json_decref(claims);
            snprintf(detail, detail_size, "the token belongs to another session");
            reply_error(reply, 401, "session_mismatch", "%s", detail);
            return false;
        }
    }
    if (id == NULL || id[0] == '\0') {
        snprintf(detail, detail_size, "no session cookie and no bearer token");
        reply_error(reply, 401, "no_session", "%s; attest first", detail);
        return false;
    }
    kbs_session_status status;
    if (kbs_session_get_attested(svc->sessions, id, view, &status) != VTPMCA_OK) {
        json_decref(claims);
        snprintf(detail, detail_size, "session %s", kbs_session_status_name(status));
        reply_error(reply, 401,
                    status == KBS_SESSION_EXPIRED        ? "expired_session"
                    : status == KBS_SESSION_NOT_ATTESTED ? "not_attested"
                                                         : "unknown_session",
                    "%s; attest first", detail);
        return false;
    }
    if (claims != NULL) {
        /* The token must be for the key this session is bound to. */
        uint8_t thumbprint[KBS_TEE_THUMBPRINT_LEN];
        const json_t *jwk = json_object_get(claims, "tee-pubkey");
        char *text = NULL;
        size_t len = 0;
        bool same = json_is_object(jwk) && jcs_serialize(jwk, &text, &len, NULL) == VTPMCA_OK &&
                    EVP_Digest(text, len, thumbprint, NULL, EVP_sha256(), NULL) == 1 &&
                    CRYPTO_memcmp(thumbprint, view->tee_thumbprint, sizeof(thumbprint)) == 0;
        free(text);
        json_decref(claims);
        if (!same) {
            kbs_session_view_clear(view);
            snprintf(detail, detail_size, "the token's tee-pubkey is not the session's");
            reply_error(reply, 401, "token_mismatch", "%s", detail);
            return false;
        }
    }
    return true;
}

/* {"wrapped-key": "<base64url>"} -> the blob. */
static bool parse_wrapped_key(const uint8_t *body, size_t len, uint8_t **blob, size_t *blob_len,
                              char *why, size_t why_size)
{
    json_t *root = parse_object(body, len, why, why_size);
    if (root == NULL)
        return false;
    const json_t *value = json_object_get(root, "wrapped-key");
    bool ok = json_is_string(value) && json_object_size(root) == 1;
    if (!ok)
        snprintf(why, why_size, "body must be {\"wrapped-key\": \"<base64url>\"}");
    if (ok && jwe_b64url_decode(json_string_value(value), json_string_length(value), blob,
                                blob_len) != VTPMCA_OK) {
        snprintf(why, why_size, "\"wrapped-key\" must be base64url without padding");
        ok = false;
    }
    if (ok && (*blob_len == 0 || *blob_len > KBS_WRAPPED_KEY_MAX)) {
        snprintf(why, why_size, "\"wrapped-key\" must decode to 1..%d bytes", KBS_WRAPPED_KEY_MAX);
        ok = false;
    }
    if (!ok) {
        free(*blob);
        *blob = NULL;
    }
    json_decref(root);
    return ok;
}

static resource_outcome outcome_of(key_release_outcome outcome, unsigned *status)
{
    switch (outcome) {
    case KEY_RELEASE_GRANTED:
        *status = 200;
        return RES_GRANTED;
    case KEY_RELEASE_UNKNOWN_RESOURCE:
        *status = 404;
        return RES_UNKNOWN_RESOURCE;
    case KEY_RELEASE_DISABLED:
        *status = 403;
        return RES_DISABLED;
    case KEY_RELEASE_NO_POLICY:
        *status = 403;
        return RES_NO_POLICY;
    case KEY_RELEASE_POLICY_REJECTED:
        *status = 403;
        return RES_POLICY_REJECTED;
    case KEY_RELEASE_HOST_DATA_MISMATCH:
        *status = 403;
        return RES_HOST_DATA_MISMATCH;
    case KEY_RELEASE_WRAPPED_KEY_INVALID:
        *status = 403;
        return RES_WRAPPED_KEY_INVALID;
    }
    *status = 500;
    return RES_INTERNAL;
}

/* Encrypts the key to the session's tee-pubkey as the JWE text of the answer; EC recipients
 * get the KBS binding. */
static vtpmca_err wrap_for_tee(kbs_service *svc, const kbs_session_view *view, const uint8_t *key,
                               size_t key_len, char **jwe, size_t *jwe_len, vtpmca_diag *diag)
{
    jwe_ctx *ctx = NULL;
    char *header = NULL;
    size_t header_len = 0, epk_len = 0;
    vtpmca_err err = jwe_prepare(view->tee_key, &ctx, diag);
    const uint8_t *epk_point = err == VTPMCA_OK ? jwe_ctx_epk_point(ctx, &epk_len) : NULL;
    if (epk_point != NULL) /* RSA-OAEP has no ephemeral key to bind */
        err = kbs_binding_sign_points_text(svc->kbs_key, svc->kbs_jwk_text, epk_point, epk_len,
                                           view->nonce, KBS_NONCE_BYTES, view->tee_point,
                                           view->tee_point_len, &header, &header_len, diag);
    if (err == VTPMCA_OK)
        err = jwe_finish_text(ctx, key, key_len, header, jwe, jwe_len, diag);
    free(header);
    jwe_ctx_free(ctx);
    return err;
}

/* A release decided and waiting for its audit row (kbs_service_resource_begin). */
struct kbs_release {
    char session[KBS_SESSION_ID_HEX + 1];
    char path[STORE_RESOURCE_PATH_MAX + 1];
    key_release_decision decision;
    uint8_t key[KEYVAULT_KEY_MAX]; /* kept only for the wrapped-key hook */
    size_t key_len;
    store_audit_event audit;
    resource_outcome outcome;
    char detail[300];
    kbs_reply answer; /* sent only once the audit row is durable */
};

/* Frees a release with what it still holds (NULL is a no-op). */
static void release_free(kbs_release *rel)
{
    if (rel == NULL)
        return;
    OPENSSL_cleanse(rel->key, sizeof(rel->key));
    kbs_reply_clear(&rel->answer);
    free(rel);
}

/* The answer when no release can be made or recorded now: 503, try again in a second. */
static void reply_release_unavailable(kbs_reply *reply)
{
    reply_error(reply, 503, "unavailable", "the release decision could not be made");
    reply->retry_after_s = 1;
}

/* The answer to a release: the JWE when granted, else the refusal or the failure. */
static void answer_release(kbs_service *svc, const kbs_session_view *view, kbs_release *rel,
                           vtpmca_err appraise_err, const char *appraise_msg)
{
    if (appraise_err != VTPMCA_OK) {
        rel->outcome = RES_INTERNAL;
        snprintf(rel->detail, sizeof(rel->detail), "key release: %.200s", appraise_msg);
        reply_release_unavailable(&rel->answer);
        return;
    }
    unsigned status = 500;
    rel->outcome = outcome_of(rel->decision.outcome, &status);
    snprintf(rel->detail, sizeof(rel->detail), "%s", rel->decision.reason);
    if (rel->outcome != RES_GRANTED) {
        reply_error(&rel->answer, status, resource_names[rel->outcome], "%s",
                    rel->decision.reason[0] != '\0' ? rel->decision.reason
                                                    : resource_names[rel->outcome]);
        return;
    }
    char *jwe = NULL;
    size_t jwe_len = 0;
    vtpmca_diag diag = {{0}};
    if (wrap_for_tee(svc, view, rel->key, rel->key_len, &jwe, &jwe_len, &diag) == VTPMCA_OK) {
        reply_take_text(&rel->answer, 200, jwe, jwe_len);
        return;
    }
    /* Nothing leaves: the row records the failure instead of the grant. */
    rel->outcome = RES_INTERNAL;
    rel->decision.runs_hook = false;
    snprintf(rel->detail, sizeof(rel->detail), "jwe: %.200s", diag.msg);
    snprintf(rel->audit.outcome, sizeof(rel->audit.outcome), "error");
    snprintf(rel->audit.detail, sizeof(rel->audit.detail), "%.250s", rel->detail);
    reply_error(&rel->answer, 500, "internal", "cannot encrypt the key for the tee-pubkey");
}

vtpmca_err kbs_service_resource_begin(kbs_service *svc, const char *cookie, const char *bearer,
                                      const char *resource_path, const uint8_t *body,
                                      size_t body_len, kbs_reply *reply, kbs_release **release)
{
    if (release != NULL)
        *release = NULL;
    if (svc == NULL || reply == NULL || release == NULL || (body == NULL && body_len > 0))
        return VTPMCA_ERR_INVALID_ARG;
    memset(reply, 0, sizeof(*reply));
    char detail[300] = "";
    if (svc->release == NULL) {
        vtpmca_err err = reply_error(reply, 503, "unavailable", "key release is not configured");
        return resource_done(svc, RES_UNAVAILABLE, cookie, resource_path, NULL, "no key release",
                             err);
    }
    /* The store's own rule, so a path the KBS accepts is one an instance can hold. */
    if (store_check_resource_path(resource_path, NULL) != VTPMCA_OK) {
        vtpmca_err err = reply_error(reply, 400, "bad_request",
                                     "the resource path must be <repo>/<type>/<tag>, each 1..64 "
                                     "characters of [A-Za-z0-9._-]");
        return resource_done(svc, RES_BAD_REQUEST, cookie, NULL, NULL, "bad path", err);
    }
    kbs_session_view view;
    memset(&view, 0, sizeof(view));
    if (!authorize(svc, cookie, bearer, &view, reply, detail, sizeof(detail)))
        return resource_done(svc, RES_UNAUTHORIZED, cookie, resource_path, NULL, detail, VTPMCA_OK);
    uint8_t *wrapped = NULL;
    size_t wrapped_len = 0;
    vtpmca_err err = VTPMCA_OK;
    if (body != NULL &&
        !parse_wrapped_key(body, body_len, &wrapped, &wrapped_len, detail, sizeof(detail))) {
        err = reply_error(reply, 400, "bad_request", "%s", detail);
        resource_done(svc, RES_BAD_REQUEST, view.id, resource_path, NULL, detail, err);
        kbs_session_view_clear(&view);
        return err;
    }
    kbs_release *rel = calloc(1, sizeof(*rel));
    vtpmca_diag diag = {{0}};
    if (rel != NULL)
        err = key_release_appraise(svc->release, &view.evidence, resource_path, wrapped,
                                   wrapped_len, view.id, rel->key, &rel->key_len, &rel->decision,
                                   &rel->audit, &diag);
    free(wrapped);
    if (rel == NULL || (err != VTPMCA_OK && !rel->decision.failed)) {
        /* No row to write (no memory, or arguments the engine should never pass). */
        snprintf(detail, sizeof(detail), "key release: %.200s",
                 rel == NULL ? "out of memory" : diag.msg);
        release_free(rel);
        kbs_session_view_clear(&view);
        reply_error(reply, 500, "internal", "the release decision could not be made");
        return resource_done(svc, RES_INTERNAL, cookie, resource_path, NULL, detail,
                             has_body(reply) ? VTPMCA_OK : VTPMCA_ERR_NOMEM);
    }
    snprintf(rel->session, sizeof(rel->session), "%s", view.id);
    snprintf(rel->path, sizeof(rel->path), "%s", resource_path);
    answer_release(svc, &view, rel, err, diag.msg);
    kbs_session_view_clear(&view);
    if (!rel->decision.runs_hook) /* the JWE holds the key now; only the hook needs it again */
        OPENSSL_cleanse(rel->key, sizeof(rel->key));
    *release = rel;
    return VTPMCA_OK;
}

const store_audit_event *kbs_release_audit_row(const kbs_release *release)
{
    return release != NULL ? &release->audit : NULL;
}

bool kbs_release_writes_store(const kbs_release *release)
{
    return release != NULL && release->decision.runs_hook;
}

vtpmca_err kbs_service_resource_end(kbs_service *svc, kbs_release *rel, vtpmca_err audit_err,
                                    kbs_reply *reply)
{
    if (svc == NULL || rel == NULL || reply == NULL) {
        release_free(rel);
        return VTPMCA_ERR_INVALID_ARG;
    }
    memset(reply, 0, sizeof(*reply));
    (void)key_release_audited(svc->release, &rel->decision, rel->session, rel->key, &rel->key_len,
                              audit_err);
    if (audit_err == VTPMCA_OK) {
        *reply = rel->answer; /* the answer moves to the caller */
        memset(&rel->answer, 0, sizeof(rel->answer));
    } else {
        /* Not on record, so nothing is handed out (release_free drops the answer). */
        rel->outcome = RES_INTERNAL;
        snprintf(rel->detail, sizeof(rel->detail),
                 "key release: the decision could not be audited (%s)", vtpmca_err_name(audit_err));
        reply_release_unavailable(reply);
    }
    resource_done(svc, rel->outcome, rel->session, rel->path, rel->decision.instance_id,
                  rel->detail, VTPMCA_OK);
    release_free(rel);
    return has_body(reply) ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
}

vtpmca_err kbs_service_resource(kbs_service *svc, const char *cookie, const char *bearer,
                                const char *resource_path, const uint8_t *body, size_t body_len,
                                kbs_reply *reply)
{
    kbs_release *rel = NULL;
    vtpmca_err err =
        kbs_service_resource_begin(svc, cookie, bearer, resource_path, body, body_len, reply, &rel);
    if (err != VTPMCA_OK || rel == NULL)
        return err;
    vtpmca_err audit_err = key_release_write_audit(svc->release, &rel->audit, NULL);
    return kbs_service_resource_end(svc, rel, audit_err, reply);
}

/* ---- metrics ---- */

static const char *const *step_names(const char *step, size_t *n,
                                     const atomic_uint_fast64_t **counters, const kbs_service *svc)
{
    if (strcmp(step, "auth") == 0) {
        *n = AUTH_COUNT;
        *counters = svc->auth;
        return auth_names;
    }
    if (strcmp(step, "attest") == 0) {
        *n = ATTEST_COUNT;
        *counters = svc->attest;
        return attest_names;
    }
    if (strcmp(step, "resource") == 0) {
        *n = RES_COUNT;
        *counters = svc->resource;
        return resource_names;
    }
    return NULL;
}

uint64_t kbs_service_count(const kbs_service *svc, const char *step, const char *outcome)
{
    if (svc == NULL || step == NULL || outcome == NULL)
        return 0;
    size_t n = 0;
    const atomic_uint_fast64_t *counters = NULL;
    const char *const *names = step_names(step, &n, &counters, svc);
    for (size_t i = 0; names != NULL && i < n; i++) {
        if (strcmp(names[i], outcome) == 0)
            return atomic_load((atomic_uint_fast64_t *)&counters[i]);
    }
    return 0;
}

vtpmca_err kbs_service_metrics_render(const kbs_service *svc, char **out, size_t *out_len)
{
    if (svc == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return VTPMCA_ERR_NOMEM;
    fputs("# HELP vtpmca_kbs_requests_total KBS protocol requests by step and outcome.\n"
          "# TYPE vtpmca_kbs_requests_total counter\n",
          f);
    static const char *const steps[] = {"auth", "attest", "resource"};
    for (size_t s = 0; s < 3; s++) {
        size_t n = 0;
        const atomic_uint_fast64_t *counters = NULL;
        const char *const *names = step_names(steps[s], &n, &counters, svc);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "vtpmca_kbs_requests_total{step=\"%s\",outcome=\"%s\"} %llu\n", steps[s],
                    names[i],
                    (unsigned long long)atomic_load((atomic_uint_fast64_t *)&counters[i]));
    }
    fputs("# HELP vtpmca_kbs_report_data_total Successful attestations by REPORT_DATA flavour.\n"
          "# TYPE vtpmca_kbs_report_data_total counter\n",
          f);
    for (int fl = REPORT_DATA_FLAVOUR_SVSM; fl <= REPORT_DATA_FLAVOUR_TRUSTEE; fl++)
        fprintf(f, "vtpmca_kbs_report_data_total{flavour=\"%s\"} %llu\n",
                report_data_flavour_name((report_data_flavour)fl),
                (unsigned long long)atomic_load((atomic_uint_fast64_t *)&svc->flavours[fl]));
    kbs_session_stats stats;
    kbs_session_get_stats(svc->sessions, &stats);
    fprintf(f,
            "# HELP vtpmca_kbs_sessions KBS sessions held, by state.\n"
            "# TYPE vtpmca_kbs_sessions gauge\n"
            "vtpmca_kbs_sessions{state=\"pending\"} %llu\n"
            "vtpmca_kbs_sessions{state=\"attested\"} %llu\n"
            "# HELP vtpmca_kbs_session_capacity Sessions the table can hold.\n"
            "# TYPE vtpmca_kbs_session_capacity gauge\n"
            "vtpmca_kbs_session_capacity %u\n"
            "# HELP vtpmca_kbs_session_evictions_total Sessions removed before use, by reason; "
            "\"refused\" counts auth calls turned away by a full table.\n"
            "# TYPE vtpmca_kbs_session_evictions_total counter\n"
            "vtpmca_kbs_session_evictions_total{reason=\"expired\"} %llu\n"
            "vtpmca_kbs_session_evictions_total{reason=\"unattested\"} %llu\n"
            "vtpmca_kbs_session_evictions_total{reason=\"refused\"} %llu\n",
            (unsigned long long)(stats.live - stats.attested), (unsigned long long)stats.attested,
            svc->session_config.capacity, (unsigned long long)stats.evicted_expired,
            (unsigned long long)stats.evicted_unattested, (unsigned long long)stats.refused_full);
    if (fclose(f) != 0) {
        free(text);
        return VTPMCA_ERR_NOMEM;
    }
    *out = text;
    if (out_len != NULL)
        *out_len = len;
    return VTPMCA_OK;
}
