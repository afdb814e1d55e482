/* The issuance engine (see vtpmca/issuance.h): challenges, evidence-bound certify and
 * credential activation. No HTTP here (server/ca_routes.c is the glue); the wire codec is in
 * issuance_wire.c and the bounded tables in issuance_table.c. */
#include "vtpmca/issuance.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "issuance_table.h"
#include "vtpmca/c509.h"
#include "vtpmca/credential.h"
#include "vtpmca/ek_template.h"
#include "vtpmca/encoding.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_policy.h"

#define PROOF_LABEL "vtpmca-iak-proof"
#define NAME_HEX_MAX (2 * TPM2_NAME_MAX + 1)

/* A pending activation, kept in the table until finish. */
typedef struct {
    uint8_t secret[ISSUANCE_ACTIVATION_SECRET_LEN];
    char instance_id[STORE_INSTANCE_ID_MAX + 1];
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX];
    size_t ek_name_len, iak_name_len;
} pending_activation;

struct issuance {
    issuance_config config;
    /* Trusted KBS key fingerprints; replaced at run time when an admin trusts or untrusts a
     * peer key, so they are read under trusted_lock. */
    pthread_rwlock_t trusted_lock;
    uint8_t (*trusted)[ISSUANCE_KBS_KEY_HASH_LEN];
    size_t n_trusted;
    /* The prepared certificate profile (NULL until a base URL is set); replaced when the base
     * URL changes, so requests take a reference under profile_lock. */
    pthread_rwlock_t profile_lock;
    ek_profile *profile;
    issuance_table *challenges, *activations, *proofs;
    uint8_t *chain[2][2]; /* [format][0 issuing, 1 root]; C509 entries NULL if unavailable */
    size_t chain_len[2][2];
    atomic_uint_fast64_t challenges_made, issued, refused, activations_started, activations_proven;
};

/* ---- names, outcomes ---- */

static const char *const format_names[] = {
    [ISSUANCE_FORMAT_X509] = "x509", [ISSUANCE_FORMAT_C509] = "c509"};

const char *issuance_format_name(issuance_format format)
{
    return (unsigned)format < 2 ? format_names[format] : NULL;
}

vtpmca_err issuance_format_parse(const char *text, issuance_format *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(text, format_names[i]) == 0) {
            *out = (issuance_format)i;
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_PARSE;
}

static const struct {
    const char *name;
    unsigned status;
} outcomes[] = {
    [ISSUANCE_OK] = {"ok", 200},
    [ISSUANCE_BAD_REQUEST] = {"bad_request", 400},
    [ISSUANCE_FIELD_TOO_LARGE] = {"field_too_large", 413},
    [ISSUANCE_UNSUPPORTED_TEMPLATE] = {"unsupported_template", 422},
    [ISSUANCE_UNTRUSTED_KBS_KEY] = {"untrusted_kbs_key", 403},
    [ISSUANCE_INVALID_NONCE] = {"invalid_nonce", 401},
    [ISSUANCE_EVIDENCE_INVALID] = {"evidence_invalid", 401},
    [ISSUANCE_REPORT_DATA_MISMATCH] = {"report_data_mismatch", 401},
    [ISSUANCE_UNKNOWN_RESOURCE] = {"unknown_resource", 404},
    [ISSUANCE_DISABLED] = {"instance_disabled", 403},
    [ISSUANCE_HOST_DATA_MISMATCH] = {"host_data_mismatch", 403},
    [ISSUANCE_NO_POLICY] = {"no_policy", 403},
    [ISSUANCE_POLICY_REJECTED] = {"policy_rejected", 403},
    [ISSUANCE_EK_CHANGED] = {"ek_changed", 409},
    [ISSUANCE_IAK_NOT_PROVEN] = {"iak_not_proven", 403},
    [ISSUANCE_UNKNOWN_ACTIVATION] = {"unknown_activation", 404},
    [ISSUANCE_ACTIVATION_FAILED] = {"activation_failed", 403},
    [ISSUANCE_UNAVAILABLE] = {"unavailable", 503},
};

const char *issuance_outcome_name(issuance_outcome outcome)
{
    return (unsigned)outcome < sizeof(outcomes) / sizeof(outcomes[0]) ? outcomes[outcome].name
                                                                      : "unknown";
}

unsigned issuance_outcome_status(issuance_outcome outcome)
{
    return (unsigned)outcome < sizeof(outcomes) / sizeof(outcomes[0]) ? outcomes[outcome].status
                                                                      : 500;
}

/* Records a refusal: the outcome and a message for the client. Returns VTPMCA_OK (the
 * request was decided). */
VTPMCA_PRINTF(5, 6)
static vtpmca_err refuse(issuance_outcome *outcome, issuance_outcome code, char *message,
                         size_t size, const char *fmt, ...)
{
    *outcome = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, size, fmt, ap);
    va_end(ap);
    return VTPMCA_OK;
}

/* ---- REPORT_DATA ---- */

static void put_u16(EVP_MD_CTX *ctx, size_t len)
{
    uint8_t be[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    EVP_DigestUpdate(ctx, be, 2);
}

vtpmca_err issuance_report_data(const uint8_t nonce[ISSUANCE_NONCE_LEN], const uint8_t *ek_name,
                                size_t ek_name_len, const uint8_t *iak_name, size_t iak_name_len,
                                const uint8_t kbs_key_hash[ISSUANCE_KBS_KEY_HASH_LEN],
                                uint8_t out[64], vtpmca_diag *diag)
{
    if (nonce == NULL || ek_name == NULL || ek_name_len < 4 || ek_name_len > TPM2_NAME_MAX ||
        (iak_name == NULL && iak_name_len > 0) ||
        (iak_name != NULL && (iak_name_len < 4 || iak_name_len > TPM2_NAME_MAX)) ||
        kbs_key_hash == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "REPORT_DATA: bad arguments");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1;
    if (ok) {
        EVP_DigestUpdate(ctx, ISSUANCE_REPORT_DATA_LABEL, sizeof(ISSUANCE_REPORT_DATA_LABEL));
        put_u16(ctx, ISSUANCE_NONCE_LEN);
        EVP_DigestUpdate(ctx, nonce, ISSUANCE_NONCE_LEN);
        put_u16(ctx, ek_name_len);
        EVP_DigestUpdate(ctx, ek_name, ek_name_len);
        put_u16(ctx, iak_name_len);
        if (iak_name_len > 0)
            EVP_DigestUpdate(ctx, iak_name, iak_name_len);
        put_u16(ctx, ISSUANCE_KBS_KEY_HASH_LEN);
        EVP_DigestUpdate(ctx, kbs_key_hash, ISSUANCE_KBS_KEY_HASH_LEN);
        ok = EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 64;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "REPORT_DATA: SHA-512 failed");
    return VTPMCA_OK;
}

/* ---- engine ---- */

static uint64_t monotonic_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ms(const issuance *e)
{
    return e->config.clock(e->config.clock_ctx);
}

/* The CA chain in both formats; a CA that C509 cannot express leaves the C509 chain empty
 * (c509 requests are then refused). */
static vtpmca_err load_chain(issuance *e, vtpmca_diag *diag)
{
    const ca_cert_which which[2] = {CA_CERT_ISSUING, CA_CERT_ROOT};
    for (int i = 0; i < 2; i++) {
        vtpmca_err err = ca_cert_der(e->config.ca, which[i], &e->chain[ISSUANCE_FORMAT_X509][i],
                                     &e->chain_len[ISSUANCE_FORMAT_X509][i], diag);
        if (err != VTPMCA_OK)
            return err;
    }
    for (int i = 0; i < 2; i++) {
        vtpmca_diag inner = {{0}};
        if (c509_from_x509_der(e->chain[ISSUANCE_FORMAT_X509][i],
                               e->chain_len[ISSUANCE_FORMAT_X509][i],
                               &e->chain[ISSUANCE_FORMAT_C509][i],
                               &e->chain_len[ISSUANCE_FORMAT_C509][i], &inner) != VTPMCA_OK) {
            vtpmca_log(VTPMCA_LOG_WARN, "ca.c509_chain_unavailable", "reason", inner.msg, NULL);
            for (int k = 0; k < 2; k++) {
                free(e->chain[ISSUANCE_FORMAT_C509][k]);
                e->chain[ISSUANCE_FORMAT_C509][k] = NULL;
            }
            break;
        }
    }
    return VTPMCA_OK;
}

vtpmca_err issuance_new(const issuance_config *config, issuance **out, vtpmca_diag *diag)
{
    if (out != NULL)
        *out = NULL;
    if (config == NULL || out == NULL || config->store == NULL || config->verifier == NULL ||
        config->policies == NULL || config->ca == NULL ||
        (config->trusted_kbs_keys == NULL && config->n_trusted_kbs_keys > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "issuance: store, verifier, policy cache and CA are required");
    if (config->challenge_ttl_s > ISSUANCE_MAX_TTL_S ||
        config->activation_ttl_s > ISSUANCE_MAX_TTL_S ||
        config->challenge_capacity > ISSUANCE_TABLE_MAX_CAPACITY ||
        config->activation_capacity > ISSUANCE_TABLE_MAX_CAPACITY)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "issuance: TTLs at most %u s, capacities at most %u", ISSUANCE_MAX_TTL_S,
                           ISSUANCE_TABLE_MAX_CAPACITY);
    issuance *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "issuance: out of memory");
    e->config = *config;
    issuance_config *c = &e->config;
    if (c->challenge_capacity == 0)
        c->challenge_capacity = ISSUANCE_DEFAULT_CHALLENGE_CAPACITY;
    if (c->challenge_ttl_s == 0)
        c->challenge_ttl_s = ISSUANCE_DEFAULT_CHALLENGE_TTL_S;
    if (c->activation_capacity == 0)
        c->activation_capacity = ISSUANCE_DEFAULT_ACTIVATION_CAPACITY;
    if (c->activation_ttl_s == 0)
        c->activation_ttl_s = ISSUANCE_DEFAULT_ACTIVATION_TTL_S;
    if (c->clock == NULL)
        c->clock = monotonic_ms;
    pthread_rwlock_init(&e->profile_lock, NULL);
    pthread_rwlock_init(&e->trusted_lock, NULL);
    vtpmca_err err =
        issuance_set_trusted_kbs_keys(e, c->trusted_kbs_keys, c->n_trusted_kbs_keys, diag);
    c->trusted_kbs_keys = NULL; /* the caller's array is not kept */
    c->n_trusted_kbs_keys = 0;  /* e->n_trusted is the live count */
    if (err == VTPMCA_OK &&
        (issuance_table_new(c->challenge_capacity, 0, &e->challenges) != VTPMCA_OK ||
         issuance_table_new(c->activation_capacity, sizeof(pending_activation), &e->activations) !=
             VTPMCA_OK ||
         issuance_table_new(c->activation_capacity, 0, &e->proofs) != VTPMCA_OK))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "issuance: cannot allocate the tables");
    if (err == VTPMCA_OK)
        err = load_chain(e, diag);
    if (err == VTPMCA_OK && c->profile.base_url != NULL)
        err = issuance_set_base_url(e, c->profile.base_url, diag);
    if (err != VTPMCA_OK) {
        issuance_free(e);
        return err;
    }
    c->profile.base_url = NULL; /* e->profile holds the one in use */
    *out = e;
    return VTPMCA_OK;
}

void issuance_free(issuance *engine)
{
    if (engine == NULL)
        return;
    issuance_table_free(engine->challenges);
    issuance_table_free(engine->activations);
    issuance_table_free(engine->proofs);
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 2; i++)
            free(engine->chain[f][i]);
    free(engine->trusted);
    ek_profile_free(engine->profile);
    pthread_rwlock_destroy(&engine->profile_lock);
    pthread_rwlock_destroy(&engine->trusted_lock);
    free(engine);
}

vtpmca_err issuance_set_trusted_kbs_keys(issuance *engine,
                                         const uint8_t (*keys)[ISSUANCE_KBS_KEY_HASH_LEN], size_t n,
                                         vtpmca_diag *diag)
{
    if (engine == NULL || (keys == NULL && n > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "issuance: bad trusted KBS keys");
    uint8_t(*copy)[ISSUANCE_KBS_KEY_HASH_LEN] = NULL;
    if (n > 0) {
        copy = malloc(n * ISSUANCE_KBS_KEY_HASH_LEN);
        if (copy == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "issuance: out of memory");
        memcpy(copy, keys, n * ISSUANCE_KBS_KEY_HASH_LEN);
    }
    pthread_rwlock_wrlock(&engine->trusted_lock);
    uint8_t(*old)[ISSUANCE_KBS_KEY_HASH_LEN] = engine->trusted;
    engine->trusted = copy;
    engine->n_trusted = n;
    pthread_rwlock_unlock(&engine->trusted_lock);
    free(old);
    return VTPMCA_OK;
}

vtpmca_err issuance_set_base_url(issuance *engine, const char *base_url, vtpmca_diag *diag)
{
    if (engine == NULL || base_url == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "issuance: missing base URL");
    ek_profile_config config = engine->config.profile;
    config.base_url = base_url;
    ek_profile *profile = NULL;
    vtpmca_err err = ek_profile_new(engine->config.ca, &config, &profile, diag);
    if (err != VTPMCA_OK)
        return err;
    pthread_rwlock_wrlock(&engine->profile_lock);
    ek_profile *old = engine->profile;
    engine->profile = profile;
    pthread_rwlock_unlock(&engine->profile_lock);
    ek_profile_free(old); /* requests still issuing with it hold their own reference */
    return VTPMCA_OK;
}

/* A reference to the profile in use (NULL before a base URL is set); ek_profile_free it. */
static ek_profile *current_profile(issuance *e)
{
    pthread_rwlock_rdlock(&e->profile_lock);
    ek_profile *profile = e->profile;
    ek_profile_up_ref(profile);
    pthread_rwlock_unlock(&e->profile_lock);
    return profile;
}

vtpmca_err issuance_challenge(issuance *engine, uint8_t nonce[ISSUANCE_NONCE_LEN],
                              unsigned *expires_in_s, vtpmca_diag *diag)
{
    if (engine == NULL || nonce == NULL || expires_in_s == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "challenge: missing argument");
    if (RAND_bytes(nonce, ISSUANCE_NONCE_LEN) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "challenge: RAND_bytes failed");
    uint64_t now = now_ms(engine);
    uint64_t ttl_ms = (uint64_t)engine->config.challenge_ttl_s * 1000u;
    vtpmca_err err = issuance_table_put(engine->challenges, nonce, NULL, now + ttl_ms, now);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "challenge: cannot record the nonce");
    *expires_in_s = engine->config.challenge_ttl_s;
    atomic_fetch_add(&engine->challenges_made, 1);
    return VTPMCA_OK;
}

/* ---- shared checks ---- */

/* Size limits for callers that do not go through the wire decoder. */
static bool too_large(const issuance_certify_request *rq, const char **which)
{
    *which = rq->ek_public_len > ISSUANCE_PUBLIC_MAX    ? "ek_public"
             : rq->iak_public_len > ISSUANCE_PUBLIC_MAX ? "iak_public"
             : rq->kbs_key_len > ISSUANCE_KBS_KEY_MAX   ? "kbs_key"
             : rq->report_len > ISSUANCE_REPORT_MAX     ? "report"
             : rq->nonce_len > ISSUANCE_NONCE_LEN       ? "nonce"
                                                        : NULL;
    return *which != NULL;
}

typedef struct {
    vtpm_ek_kind ek_kind;
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX];
    size_t ek_name_len, iak_name_len;
    char ek_name_hex[NAME_HEX_MAX], iak_name_hex[NAME_HEX_MAX];
} key_pair;

/* The EK (and IAK) public areas: template checks (which validate the keys) and names. A
 * refusal fills outcome/message. */
static vtpmca_err check_keys(const uint8_t *ek, size_t ek_len, const uint8_t *iak, size_t iak_len,
                             key_pair *k, issuance_outcome *outcome, char *message, size_t size,
                             vtpmca_diag *diag)
{
    vtpmca_diag inner = {{0}};
    vtpmca_err err = ek_template_check_ek(ek, ek_len, &k->ek_kind, &inner);
    if (err == VTPMCA_OK && iak != NULL)
        err = ek_template_check_iak(iak, iak_len, &inner);
    if (err == VTPMCA_ERR_PARSE || err == VTPMCA_ERR_INVALID_ARG) {
        return refuse(outcome, ISSUANCE_BAD_REQUEST, message, size, "malformed TPMT_PUBLIC: %s",
                      inner.msg);
    }
    if (err == VTPMCA_ERR_UNSUPPORTED) {
        return refuse(outcome, ISSUANCE_UNSUPPORTED_TEMPLATE, message, size, "%s", inner.msg);
    }
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s", inner.msg);
    err = vtpm_object_name(ek, ek_len, k->ek_name, &k->ek_name_len, diag);
    if (err == VTPMCA_OK && iak != NULL)
        err = vtpm_object_name(iak, iak_len, k->iak_name, &k->iak_name_len, diag);
    if (err != VTPMCA_OK)
        return err;
    vt_hex_encode(k->ek_name, k->ek_name_len, k->ek_name_hex, sizeof(k->ek_name_hex));
    if (iak != NULL)
        vt_hex_encode(k->iak_name, k->iak_name_len, k->iak_name_hex, sizeof(k->iak_name_hex));
    return VTPMCA_OK;
}

/* Looks up the instance at a resource path; refuses unknown and disabled instances. */
static vtpmca_err find_instance(issuance *e, const char *resource, store_instance *inst,
                                bool *found, issuance_outcome *outcome, char *message, size_t size,
                                vtpmca_diag *diag)
{
    *found = false;
    vtpmca_err err = store_instance_get_by_path(e->config.store, resource, inst, diag);
    if (err == VTPMCA_ERR_NOT_FOUND) {
        return refuse(outcome, ISSUANCE_UNKNOWN_RESOURCE, message, size,
                      "no instance is enrolled at %s", resource);
    }
    if (err != VTPMCA_OK)
        return err;
    *found = true;
    if (inst->disabled) {
        return refuse(outcome, ISSUANCE_DISABLED, message, size, "instance %s is disabled",
                      inst->id);
    }
    return VTPMCA_OK;
}

static void make_audit_event(store_audit_event *ev, const char *action, const char *client,
                             const char *instance_id, const char *outcome, const snp_report *report,
                             const char *detail)
{
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->actor, sizeof(ev->actor), "%s", client != NULL ? client : "");
    snprintf(ev->action, sizeof(ev->action), "%s", action);
    snprintf(ev->instance_id, sizeof(ev->instance_id), "%s",
             instance_id != NULL ? instance_id : "");
    snprintf(ev->outcome, sizeof(ev->outcome), "%s", outcome);
    if (report != NULL) {
        vt_hex_encode(report->measurement, sizeof(report->measurement), ev->measurement,
                      sizeof(ev->measurement));
        vt_hex_encode(report->chip_id, sizeof(report->chip_id), ev->chip_id, sizeof(ev->chip_id));
    }
    snprintf(ev->detail, sizeof(ev->detail), "%s", detail);
}

static void append_audit(issuance *e, const store_audit_event *ev)
{
    vtpmca_diag diag = {{0}};
    if (store_audit_append(e->config.store, ev, &diag) != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_ERROR, "ca.audit_failed", "action", ev->action, "outcome",
                   ev->outcome, "reason", diag.msg, NULL);
}

static void audit(issuance *e, const char *action, const char *client, const char *instance_id,
                  const char *outcome, const snp_report *report, const char *detail)
{
    store_audit_event ev;
    make_audit_event(&ev, action, client, instance_id, outcome, report, detail);
    append_audit(e, &ev);
}

/* The key of the proof that an (instance, EK, IAK) passed an activation. */
static void proof_key(const char *instance_id, const uint8_t *ek_name, size_t ek_len,
                      const uint8_t *iak_name, size_t iak_len, uint8_t key[ISSUANCE_TABLE_KEY_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, PROOF_LABEL, sizeof(PROOF_LABEL));
    put_u16(ctx, strlen(instance_id));
    EVP_DigestUpdate(ctx, instance_id, strlen(instance_id));
    put_u16(ctx, ek_len);
    EVP_DigestUpdate(ctx, ek_name, ek_len);
    put_u16(ctx, iak_len);
    EVP_DigestUpdate(ctx, iak_name, iak_len);
    EVP_DigestFinal_ex(ctx, key, NULL);
    EVP_MD_CTX_free(ctx);
}

/* ---- certify ---- */

typedef struct {
    issuance *e;
    const issuance_certify_request *rq;
    issuance_certify_result *res;
    issuance_format format;
    bool format_known;
    key_pair keys;
    uint8_t kbs_hash[ISSUANCE_KBS_KEY_HASH_LEN];
    bool nonce_spent; /* from here on refusals are audited */
    bool audited;     /* the audit row went with the certificates' (issued) */
    snp_evidence evidence;
    bool have_evidence;
    bool iak_bound; /* REPORT_DATA binds the IAK name */
    store_instance inst;
    bool have_instance;
    uint32_t policy_version;
    bool iak_by_activation;
} certify_ctx;

#define REFUSE(c, code, ...)                                                                       \
    refuse(&(c)->res->outcome, (code), (c)->res->message, sizeof((c)->res->message), __VA_ARGS__)

/* Whether der is exactly the DER SubjectPublicKeyInfo OpenSSL writes for the key it holds. */
static bool is_canonical_spki(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)len);
    unsigned char *again = NULL;
    int again_len = key != NULL ? i2d_PUBKEY(key, &again) : -1;
    bool canonical = key != NULL && p == der + len && again_len >= 0 && (size_t)again_len == len &&
                     memcmp(again, der, len) == 0;
    OPENSSL_free(again);
    EVP_PKEY_free(key);
    ERR_clear_error(); /* a failed decode must not leak into later diagnostics */
    return canonical;
}

/* Shape, templates, KBS key: everything that needs no state. */
static vtpmca_err check_static(certify_ctx *c, vtpmca_diag *diag)
{
    const issuance_certify_request *rq = c->rq;
    const char *big = NULL;
    if (too_large(rq, &big))
        return REFUSE(c, ISSUANCE_FIELD_TOO_LARGE, "%s is larger than allowed", big);
    if (rq->ek_public == NULL || rq->kbs_key == NULL || rq->resource == NULL ||
        rq->format == NULL || rq->nonce == NULL || rq->report == NULL ||
        (rq->iak_public == NULL && rq->iak_public_len > 0))
        return REFUSE(c, ISSUANCE_BAD_REQUEST,
                      "ek_public, kbs_key, resource, format, nonce and report are required");
    if (issuance_format_parse(rq->format, &c->format) != VTPMCA_OK)
        return REFUSE(c, ISSUANCE_BAD_REQUEST, "format must be \"x509\" or \"c509\"");
    c->format_known = true;
    if (rq->nonce_len != ISSUANCE_NONCE_LEN)
        return REFUSE(c, ISSUANCE_BAD_REQUEST, "nonce must be %d bytes, got %zu",
                      ISSUANCE_NONCE_LEN, rq->nonce_len);
    if (rq->report_len != SNP_REPORT_SIZE)
        return REFUSE(c, ISSUANCE_BAD_REQUEST, "report must be %d bytes, got %zu", SNP_REPORT_SIZE,
                      rq->report_len);
    vtpmca_diag inner = {{0}};
    if (store_check_resource_path(rq->resource, &inner) != VTPMCA_OK)
        return REFUSE(c, ISSUANCE_BAD_REQUEST, "resource: %s", inner.msg);
    if (c->format == ISSUANCE_FORMAT_C509 && c->e->chain[ISSUANCE_FORMAT_C509][0] == NULL)
        return REFUSE(c, ISSUANCE_BAD_REQUEST,
                      "this CA's certificates cannot be expressed as C509; ask for x509");
    vtpmca_err err =
        check_keys(rq->ek_public, rq->ek_public_len, rq->iak_public, rq->iak_public_len, &c->keys,
                   &c->res->outcome, c->res->message, sizeof(c->res->message), diag);
    if (err != VTPMCA_OK || c->res->outcome != ISSUANCE_OK)
        return err;

    /* The KBS key: trusted when its bytes are the canonical DER SubjectPublicKeyInfo of a
     * trusted key (the fingerprints are SHA-256 over exactly that); only other bytes are
     * parsed, to tell malformed from untrusted. */
    if (EVP_Digest(rq->kbs_key, rq->kbs_key_len, c->kbs_hash, NULL, EVP_sha256(), NULL) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "certify: SHA-256 failed");
    bool trusted = false;
    pthread_rwlock_rdlock(&c->e->trusted_lock);
    for (size_t i = 0; i < c->e->n_trusted; i++)
        trusted |= CRYPTO_memcmp(c->e->trusted[i], c->kbs_hash, ISSUANCE_KBS_KEY_HASH_LEN) == 0;
    pthread_rwlock_unlock(&c->e->trusted_lock);
    if (trusted)
        return VTPMCA_OK;
    if (!is_canonical_spki(rq->kbs_key, rq->kbs_key_len))
        return REFUSE(c, ISSUANCE_BAD_REQUEST,
                      "kbs_key is not a DER SubjectPublicKeyInfo (canonical encoding)");
    char hex[2 * ISSUANCE_KBS_KEY_HASH_LEN + 1];
    vt_hex_encode(c->kbs_hash, sizeof(c->kbs_hash), hex, sizeof(hex));
    return REFUSE(c, ISSUANCE_UNTRUSTED_KBS_KEY,
                  "the KBS key sha256:%s is neither this service's nor a trusted peer's", hex);
}

static vtpmca_err check_nonce(certify_ctx *c)
{
    bool expired = false;
    vtpmca_err err =
        issuance_table_take(c->e->challenges, c->rq->nonce, NULL, now_ms(c->e), &expired);
    c->nonce_spent = true;
    if (err != VTPMCA_OK)
        return REFUSE(c, ISSUANCE_INVALID_NONCE,
                      expired ? "the nonce expired; ask for a new challenge"
                              : "the nonce is unknown or was used already; ask for a new "
                                "challenge");
    return VTPMCA_OK;
}

static vtpmca_err check_evidence(certify_ctx *c)
{
    vtpmca_diag inner = {{0}};
    vtpmca_err err = snp_verifier_verify(c->e->config.verifier, c->rq->report, c->rq->report_len,
                                         NULL, 0, 0, &c->evidence, &inner);
    if (err == VTPMCA_OK) {
        c->have_evidence = true;
        return VTPMCA_OK;
    }
    if (err == VTPMCA_ERR_NETWORK || err == VTPMCA_ERR_LIMIT)
        return REFUSE(c, ISSUANCE_UNAVAILABLE, "the VCEK cannot be fetched now: %.200s", inner.msg);
    return REFUSE(c, ISSUANCE_EVIDENCE_INVALID, "evidence failed verification (%s): %.200s",
                  vtpmca_err_name(err), inner.msg);
}

/* REPORT_DATA must bind the nonce, EK, KBS key and either the IAK or, without a proof by
 * binding, no IAK (then an activation must prove it). */
static vtpmca_err check_report_data(certify_ctx *c, vtpmca_diag *diag)
{
    const key_pair *k = &c->keys;
    uint8_t with_iak[64], without_iak[64];
    vtpmca_err err = issuance_report_data(c->rq->nonce, k->ek_name, k->ek_name_len,
                                          k->iak_name_len > 0 ? k->iak_name : NULL, k->iak_name_len,
                                          c->kbs_hash, with_iak, diag);
    if (err == VTPMCA_OK)
        err = issuance_report_data(c->rq->nonce, k->ek_name, k->ek_name_len, NULL, 0, c->kbs_hash,
                                   without_iak, diag);
    if (err != VTPMCA_OK)
        return err;
    const uint8_t *rd = c->evidence.report.report_data;
    if (CRYPTO_memcmp(rd, with_iak, 64) == 0) {
        c->iak_bound = k->iak_name_len > 0;
        return VTPMCA_OK;
    }
    if (k->iak_name_len > 0 && CRYPTO_memcmp(rd, without_iak, 64) == 0)
        return VTPMCA_OK; /* the IAK needs an activation proof (checked later) */
    return REFUSE(c, ISSUANCE_REPORT_DATA_MISMATCH,
                  "REPORT_DATA does not bind this nonce, EK%s and KBS key",
                  k->iak_name_len > 0 ? ", IAK" : "");
}

/* The enrolled instance at the resource path, known early so that later refusals are
 * audited under its id. */
static vtpmca_err check_instance(certify_ctx *c, vtpmca_diag *diag)
{
    vtpmca_err err =
        find_instance(c->e, c->rq->resource, &c->inst, &c->have_instance, &c->res->outcome,
                      c->res->message, sizeof(c->res->message), diag);
    if (c->have_instance)
        snprintf(c->res->instance_id, sizeof(c->res->instance_id), "%s", c->inst.id);
    return err;
}

/* host_data and the fleet policy (as key release appraises them). */
static vtpmca_err check_policy(certify_ctx *c, vtpmca_diag *diag)
{
    if (c->inst.has_host_data &&
        CRYPTO_memcmp(c->inst.host_data, c->evidence.report.host_data, 32) != 0)
        return REFUSE(c, ISSUANCE_HOST_DATA_MISMATCH,
                      "the attested host_data is not the value enrolled for instance %s",
                      c->inst.id);
    cached_policy *policy = NULL;
    policy_lookup lookup = POLICY_FOUND;
    vtpmca_err err =
        policy_cache_get(c->e->config.policies, c->inst.fleet, 0, &policy, &lookup, diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return REFUSE(c, ISSUANCE_NO_POLICY, "fleet %s has no policy", c->inst.fleet);
    if (err != VTPMCA_OK)
        return err;
    snp_verdict verdict;
    c->policy_version = cached_policy_version(policy);
    err = snp_policy_evaluate(cached_policy_get(policy), &c->evidence, &verdict);
    cached_policy_release(policy);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "certify: policy evaluation failed");
    if (!verdict.pass) {
        char failed[160] = "";
        for (unsigned i = 0; i < verdict.n_failed && i < SNP_VERDICT_MAX_FAILURES; i++) {
            size_t used = strlen(failed);
            snprintf(failed + used, sizeof(failed) - used, "%s%s", i ? ", " : "",
                     verdict.failed[i].check);
        }
        return REFUSE(c, ISSUANCE_POLICY_REJECTED, "fleet %s policy v%u rejected the evidence: %s",
                      c->inst.fleet, c->policy_version, failed);
    }
    return VTPMCA_OK;
}

static vtpmca_err check_iak_proof(certify_ctx *c)
{
    const key_pair *k = &c->keys;
    if (k->iak_name_len == 0)
        return VTPMCA_OK;
    if (c->iak_bound && !c->e->config.require_iak_activation)
        return VTPMCA_OK;
    uint8_t key[ISSUANCE_TABLE_KEY_LEN];
    proof_key(c->inst.id, k->ek_name, k->ek_name_len, k->iak_name, k->iak_name_len, key);
    if (issuance_table_take(c->e->proofs, key, NULL, now_ms(c->e), NULL) == VTPMCA_OK) {
        c->iak_by_activation = true;
        return VTPMCA_OK;
    }
    return REFUSE(c, ISSUANCE_IAK_NOT_PROVEN,
                  c->iak_bound ? "this service requires a credential activation for the IAK "
                                 "(POST /v1/ca/activate/start) before certify"
                               : "REPORT_DATA does not bind the IAK and no credential activation "
                                 "proved it");
}

/* Issues one certificate and fills the store record (which borrows the encodings). */
static vtpmca_err issue_one(certify_ctx *c, const ek_profile *profile, ek_cert_kind kind,
                            const ek_instance_identity *identity, ek_cert_result *cert,
                            store_cert *record, vtpmca_diag *diag)
{
    ek_cert_request req = {
        .kind = kind,
        /* The checked TPMT_PUBLIC itself: no OpenSSL key object is made for it. */
        .subject_public = kind == EK_CERT_EK ? c->rq->ek_public : c->rq->iak_public,
        .subject_public_len = kind == EK_CERT_EK ? c->rq->ek_public_len : c->rq->iak_public_len,
        .identity = identity,
        .c509 = c->format == ISSUANCE_FORMAT_C509 ? EK_C509_REENCODED : EK_C509_NONE,
    };
    vtpmca_err err = ek_profile_issue(profile, &req, cert, diag);
    if (err != VTPMCA_OK)
        return err;
    memset(record, 0, sizeof(*record));
    snprintf(record->serial, sizeof(record->serial), "%s", cert->serial_hex);
    snprintf(record->instance_id, sizeof(record->instance_id), "%s", c->inst.id);
    record->kind = kind == EK_CERT_EK ? STORE_CERT_EK : STORE_CERT_IAK;
    snprintf(record->key_name, sizeof(record->key_name), "%s",
             kind == EK_CERT_EK ? c->keys.ek_name_hex : c->keys.iak_name_hex);
    record->format = c->format == ISSUANCE_FORMAT_C509 ? STORE_CERT_C509 : STORE_CERT_X509;
    record->not_before = cert->not_before;
    record->not_after = cert->not_after;
    record->status = STORE_CERT_ISSUED;
    record->der = cert->der;
    record->der_len = cert->der_len;
    record->c509 = cert->c509;
    record->c509_len = cert->c509_len;
    return VTPMCA_OK;
}

/* Moves the wire form (C509 or DER) of a certificate into the result. */
static void take_encoding(certify_ctx *c, ek_cert_result *cert, uint8_t **out, size_t *out_len)
{
    uint8_t **src = c->format == ISSUANCE_FORMAT_C509 ? &cert->c509 : &cert->der;
    *out_len = c->format == ISSUANCE_FORMAT_C509 ? cert->c509_len : cert->der_len;
    *out = *src;
    *src = NULL;
}

/* What a successful certify says, to the client and in the audit log (iak_serial NULL
 * without an IAK). */
static void issued_message(const certify_ctx *c, const char *ek_serial, const char *iak_serial,
                           bool ek_changed, char *out, size_t size)
{
    snprintf(out, size, "EK certificate %s%s%s%s%s", ek_serial,
             iak_serial != NULL ? ", IAK certificate " : "", iak_serial != NULL ? iak_serial : "",
             iak_serial != NULL ? (c->iak_by_activation ? " (IAK proven by activation)"
                                                        : " (IAK bound by evidence)")
                                : "",
             ek_changed ? "; EK changed under an admin re-enrollment" : "");
}

/* The audit row of a decided certify request. */
static void certify_audit_event(const certify_ctx *c, const char *outcome, const char *message,
                                store_audit_event *ev)
{
    char detail[256];
    snprintf(detail, sizeof(detail), "%s%s%.200s", c->keys.iak_name_len > 0 ? "ek+iak: " : "ek: ",
             c->res->outcome == ISSUANCE_OK ? "" : "refused: ", message);
    make_audit_event(ev, "certify", c->rq->client, c->res->instance_id, outcome,
                     c->have_evidence ? &c->evidence.report : NULL, detail);
}

struct issued_audit {
    const certify_ctx *c;
    const char *ek_serial, *iak_serial;
};

/* The audit row stored with the certificates (store_certification_describe_fn). */
static vtpmca_err describe_issued(store_ek_continuity continuity, store_audit_event *event,
                                  void *ctx)
{
    const struct issued_audit *a = ctx;
    char message[256];
    issued_message(a->c, a->ek_serial, a->iak_serial, continuity == STORE_EK_CHANGE_GRANTED,
                   message, sizeof(message));
    certify_audit_event(a->c, "issued", message, event);
    return VTPMCA_OK;
}

static vtpmca_err issue(certify_ctx *c, const ek_profile *profile, vtpmca_diag *diag)
{
    ek_instance_identity identity;
    memset(&identity, 0, sizeof(identity));
    identity.fleet = c->inst.fleet;
    identity.instance_id = c->inst.id;
    memcpy(identity.measurement, c->evidence.report.measurement, EK_MEASUREMENT_LEN);
    memcpy(identity.chip_id, c->evidence.report.chip_id, EK_CHIP_ID_LEN);
    identity.policy_version = c->policy_version;
    memcpy(identity.kbs_key_hash, c->kbs_hash, EK_KBS_KEY_HASH_LEN);

    ek_cert_result ek = {0}, iak = {0};
    store_cert records[2];
    bool with_iak = c->keys.iak_name_len > 0;
    /* Signed before the EK continuity check, which the store makes in the transaction that
     * records the certificates; wasted only when it refuses. */
    vtpmca_err err = issue_one(c, profile, EK_CERT_EK, &identity, &ek, &records[0], diag);
    if (err == VTPMCA_OK && with_iak)
        err = issue_one(c, profile, EK_CERT_IAK, &identity, &iak, &records[1], diag);
    /* EK continuity, certificates and audit row in one durable transaction: the answer
     * goes out only once all of them are on disk, and two requests for one instance cannot
     * interleave between the check and the records. */
    store_certification recorded;
    struct issued_audit audit_ctx = {c, ek.serial_hex, with_iak ? iak.serial_hex : NULL};
    if (err == VTPMCA_OK)
        err = store_cert_record_certification(c->e->config.store, records, with_iak ? 2 : 1,
                                              describe_issued, &audit_ctx, &recorded, diag);
    if (err == VTPMCA_OK && recorded.continuity == STORE_EK_CHANGE_REFUSED)
        REFUSE(c, ISSUANCE_EK_CHANGED,
               "instance %s has a certified EK (certificate %s) and this is another EK; an "
               "admin must re-enroll the instance's EK first",
               c->inst.id, recorded.previous_serial);
    if (err == VTPMCA_OK && c->res->outcome == ISSUANCE_OK) {
        issuance_certify_result *res = c->res;
        c->audited = true;
        res->format = c->format;
        take_encoding(c, &ek, &res->ek_cert, &res->ek_cert_len);
        snprintf(res->ek_serial, sizeof(res->ek_serial), "%s", ek.serial_hex);
        if (with_iak) {
            take_encoding(c, &iak, &res->iak_cert, &res->iak_cert_len);
            snprintf(res->iak_serial, sizeof(res->iak_serial), "%s", iak.serial_hex);
        }
        for (int i = 0; i < 2; i++) {
            res->chain[i] = c->e->chain[c->format][i];
            res->chain_len[i] = c->e->chain_len[c->format][i];
        }
        issued_message(c, ek.serial_hex, with_iak ? iak.serial_hex : NULL,
                       recorded.continuity == STORE_EK_CHANGE_GRANTED, res->message,
                       sizeof(res->message));
    }
    ek_cert_result_free(&ek);
    ek_cert_result_free(&iak);
    return err;
}

static void log_certify(const certify_ctx *c, const char *outcome)
{
    const issuance_certify_request *rq = c->rq;
    vtpmca_log(c->res->outcome == ISSUANCE_OK ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN, "ca.certify",
               "client", rq->client != NULL ? rq->client : "", "instance", c->res->instance_id,
               "format", c->format_known ? issuance_format_name(c->format) : "", "ek_name",
               c->keys.ek_name_hex, "outcome", outcome, "detail", c->res->message, NULL);
}

vtpmca_err issuance_certify(issuance *engine, const issuance_certify_request *request,
                            issuance_certify_result *result, vtpmca_diag *diag)
{
    if (result != NULL)
        memset(result, 0, sizeof(*result));
    if (engine == NULL || request == NULL || result == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certify: missing argument");
    certify_ctx c;
    memset(&c, 0, sizeof(c));
    c.e = engine;
    c.rq = request;
    c.res = result;
    ek_profile *profile = current_profile(engine);
    vtpmca_err err = VTPMCA_OK;
    if (profile == NULL)
        REFUSE(&c, ISSUANCE_UNAVAILABLE, "the CA is starting; retry shortly");
    else
        err = check_static(&c, diag);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_nonce(&c);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_evidence(&c);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_instance(&c, diag);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_report_data(&c, diag);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_policy(&c, diag);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = check_iak_proof(&c);
    if (err == VTPMCA_OK && result->outcome == ISSUANCE_OK)
        err = issue(&c, profile, diag);
    ek_profile_free(profile);

    const char *outcome = err != VTPMCA_OK                 ? "error"
                          : result->outcome == ISSUANCE_OK ? "issued"
                                                           : issuance_outcome_name(result->outcome);
    if (err != VTPMCA_OK)
        snprintf(result->message, sizeof(result->message), "internal error (%s)",
                 vtpmca_err_name(err));
    if (c.nonce_spent && !c.audited) {
        store_audit_event ev;
        certify_audit_event(&c, outcome, result->message, &ev);
        append_audit(engine, &ev);
    }
    log_certify(&c, outcome);
    atomic_fetch_add(
        result->outcome == ISSUANCE_OK && err == VTPMCA_OK ? &engine->issued : &engine->refused, 1);
    if (c.have_instance)
        store_instance_free_fields(&c.inst);
    if (err != VTPMCA_OK)
        issuance_certify_result_clear(result);
    return err;
}

void issuance_certify_result_clear(issuance_certify_result *result)
{
    if (result == NULL)
        return;
    free(result->ek_cert);
    free(result->iak_cert);
    memset(result, 0, sizeof(*result));
}

/* ---- credential activation ---- */

vtpmca_err issuance_activation_start(issuance *engine, const issuance_activation_request *request,
                                     issuance_activation_result *result, vtpmca_diag *diag)
{
    if (result != NULL)
        memset(result, 0, sizeof(*result));
    if (engine == NULL || request == NULL || result == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing argument");
    issuance_outcome *outcome = &result->outcome;
    char *msg = result->message;
    size_t msg_size = sizeof(result->message);
    if (request->ek_public == NULL || request->iak_public == NULL || request->resource == NULL) {
        return refuse(outcome, ISSUANCE_BAD_REQUEST, msg, msg_size,
                      "ek_public, iak_public and resource are required");
    }
    if (request->ek_public_len > ISSUANCE_PUBLIC_MAX ||
        request->iak_public_len > ISSUANCE_PUBLIC_MAX) {
        return refuse(outcome, ISSUANCE_FIELD_TOO_LARGE, msg, msg_size,
                      "a public area is larger than %d bytes", ISSUANCE_PUBLIC_MAX);
    }
    vtpmca_diag inner = {{0}};
    if (store_check_resource_path(request->resource, &inner) != VTPMCA_OK) {
        return refuse(outcome, ISSUANCE_BAD_REQUEST, msg, msg_size, "resource: %s", inner.msg);
    }
    key_pair keys;
    memset(&keys, 0, sizeof(keys));
    vtpmca_err err = check_keys(request->ek_public, request->ek_public_len, request->iak_public,
                                request->iak_public_len, &keys, outcome, msg, msg_size, diag);
    store_instance inst;
    bool found = false;
    if (err == VTPMCA_OK && *outcome == ISSUANCE_OK)
        err = find_instance(engine, request->resource, &inst, &found, outcome, msg, msg_size, diag);
    if (found)
        snprintf(result->instance_id, sizeof(result->instance_id), "%s", inst.id);
    pending_activation pending;
    memset(&pending, 0, sizeof(pending));
    credential_result cred = {0};
    uint8_t id[ISSUANCE_TABLE_KEY_LEN];
    if (err == VTPMCA_OK && *outcome == ISSUANCE_OK) {
        if (RAND_bytes(pending.secret, sizeof(pending.secret)) != 1 ||
            RAND_bytes(id, sizeof(id)) != 1)
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "activation: RAND_bytes failed");
        if (err == VTPMCA_OK)
            err = credential_make(request->ek_public, request->ek_public_len, pending.secret,
                                  sizeof(pending.secret), keys.iak_name, keys.iak_name_len, &cred,
                                  diag);
    }
    if (err == VTPMCA_OK && *outcome == ISSUANCE_OK) {
        snprintf(pending.instance_id, sizeof(pending.instance_id), "%s", inst.id);
        memcpy(pending.ek_name, keys.ek_name, keys.ek_name_len);
        pending.ek_name_len = keys.ek_name_len;
        memcpy(pending.iak_name, keys.iak_name, keys.iak_name_len);
        pending.iak_name_len = keys.iak_name_len;
        uint64_t now = now_ms(engine);
        err = issuance_table_put(engine->activations, id, &pending,
                                 now + (uint64_t)engine->config.activation_ttl_s * 1000u, now);
    }
    if (err == VTPMCA_OK && *outcome == ISSUANCE_OK) {
        vt_hex_encode(id, sizeof(id), result->activation_id, sizeof(result->activation_id));
        result->credential_blob = cred.blob;
        result->credential_blob_len = cred.blob_len;
        result->encrypted_secret = cred.secret;
        result->encrypted_secret_len = cred.secret_len;
        memset(&cred, 0, sizeof(cred));
        result->expires_in_s = engine->config.activation_ttl_s;
        snprintf(msg, msg_size, "credential made for IAK %.16s... against EK %.16s...",
                 keys.iak_name_hex, keys.ek_name_hex);
        atomic_fetch_add(&engine->activations_started, 1);
    }
    vtpmca_log(*outcome == ISSUANCE_OK && err == VTPMCA_OK ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN,
               "ca.activation_start", "client", request->client != NULL ? request->client : "",
               "instance", result->instance_id, "outcome",
               err != VTPMCA_OK ? "error" : issuance_outcome_name(*outcome), "detail", msg, NULL);
    credential_result_free(&cred);
    OPENSSL_cleanse(&pending, sizeof(pending));
    if (found)
        store_instance_free_fields(&inst);
    if (err != VTPMCA_OK)
        issuance_activation_result_clear(result);
    return err;
}

vtpmca_err issuance_activation_finish(issuance *engine, const char *activation_id,
                                      const uint8_t *secret, size_t secret_len, const char *client,
                                      issuance_activation_result *result, vtpmca_diag *diag)
{
    if (result != NULL)
        memset(result, 0, sizeof(*result));
    if (engine == NULL || result == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "activation: missing argument");
    issuance_outcome *outcome = &result->outcome;
    char *msg = result->message;
    size_t msg_size = sizeof(result->message);
    uint8_t id[ISSUANCE_TABLE_KEY_LEN];
    if (activation_id == NULL || strlen(activation_id) != ISSUANCE_ACTIVATION_ID_HEX ||
        vt_hex_decode_fixed(activation_id, id, sizeof(id)) != VTPMCA_OK) {
        return refuse(outcome, ISSUANCE_BAD_REQUEST, msg, msg_size,
                      "activation_id must be %d hex digits", ISSUANCE_ACTIVATION_ID_HEX);
    }
    if (secret == NULL || secret_len != ISSUANCE_ACTIVATION_SECRET_LEN) {
        return refuse(outcome, ISSUANCE_BAD_REQUEST, msg, msg_size, "secret must be %d bytes",
                      ISSUANCE_ACTIVATION_SECRET_LEN);
    }
    pending_activation pending;
    bool expired = false;
    uint64_t now = now_ms(engine);
    if (issuance_table_take(engine->activations, id, &pending, now, &expired) != VTPMCA_OK) {
        refuse(outcome, ISSUANCE_UNKNOWN_ACTIVATION, msg, msg_size,
               expired ? "the activation expired; start a new one"
                       : "no such activation (unknown, or finished already)");
        vtpmca_log(VTPMCA_LOG_WARN, "ca.activation_finish", "client", client ? client : "",
                   "outcome", issuance_outcome_name(*outcome), NULL);
        return VTPMCA_OK;
    }
    snprintf(result->instance_id, sizeof(result->instance_id), "%s", pending.instance_id);
    const char *name = "proven";
    if (CRYPTO_memcmp(pending.secret, secret, ISSUANCE_ACTIVATION_SECRET_LEN) != 0) {
        refuse(outcome, ISSUANCE_ACTIVATION_FAILED, msg, msg_size,
               "the secret is not the activated credential: the IAK is not proven to share "
               "the EK's TPM");
        name = issuance_outcome_name(*outcome);
    } else {
        uint8_t key[ISSUANCE_TABLE_KEY_LEN];
        proof_key(pending.instance_id, pending.ek_name, pending.ek_name_len, pending.iak_name,
                  pending.iak_name_len, key);
        vtpmca_err err =
            issuance_table_put(engine->proofs, key, NULL,
                               now + (uint64_t)engine->config.activation_ttl_s * 1000u, now);
        if (err != VTPMCA_OK) {
            OPENSSL_cleanse(&pending, sizeof(pending));
            return vtpmca_fail(diag, err, "activation: cannot record the proof");
        }
        result->expires_in_s = engine->config.activation_ttl_s;
        char iak_hex[NAME_HEX_MAX];
        vt_hex_encode(pending.iak_name, pending.iak_name_len, iak_hex, sizeof(iak_hex));
        snprintf(msg, msg_size, "IAK %s proven to share the EK's TPM", iak_hex);
        atomic_fetch_add(&engine->activations_proven, 1);
    }
    audit(engine, "iak_activation", client, pending.instance_id, name, NULL, msg);
    vtpmca_log(*outcome == ISSUANCE_OK ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN, "ca.activation_finish",
               "client", client ? client : "", "instance", pending.instance_id, "outcome", name,
               NULL);
    OPENSSL_cleanse(&pending, sizeof(pending));
    return VTPMCA_OK;
}

void issuance_activation_result_clear(issuance_activation_result *result)
{
    if (result == NULL)
        return;
    free(result->credential_blob);
    free(result->encrypted_secret);
    memset(result, 0, sizeof(*result));
}

/* ---- admin ---- */

vtpmca_err issuance_allow_ek_change(store *st, const char *instance_id, const char *actor,
                                    vtpmca_diag *diag)
{
    if (st == NULL || instance_id == NULL || actor == NULL || actor[0] == '\0' ||
        strlen(actor) >= sizeof(((store_audit_event *)0)->actor))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "EK re-enrollment: an instance id and an actor of 1 to 63 bytes are "
                           "required");
    vtpmca_err err = store_instance_ek_reenroll_grant(st, instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    store_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.actor, sizeof(ev.actor), "%s", actor);
    snprintf(ev.action, sizeof(ev.action), "ek_reenroll");
    snprintf(ev.instance_id, sizeof(ev.instance_id), "%s", instance_id);
    snprintf(ev.outcome, sizeof(ev.outcome), "granted");
    snprintf(ev.detail, sizeof(ev.detail), "the next certify may present a new EK");
    err = store_audit_append(st, &ev, diag);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "ca.ek_reenroll", "actor", actor, "instance", instance_id,
                   NULL);
    return err;
}

void issuance_get_stats(issuance *engine, issuance_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (engine == NULL)
        return;
    out->challenges = atomic_load(&engine->challenges_made);
    out->issued = atomic_load(&engine->issued);
    out->refused = atomic_load(&engine->refused);
    out->activations_started = atomic_load(&engine->activations_started);
    out->activations_proven = atomic_load(&engine->activations_proven);
    out->live_challenges = issuance_table_size(engine->challenges);
}
