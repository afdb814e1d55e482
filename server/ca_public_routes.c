/* The CA's public routes: GET /v1/ca/chain and GET /v1/ca/crl (docs/ca.md, docs/protocol.md).
 * The chain never changes while the daemon runs, so it is encoded once at start. The CRL is
 * cached and reissued when the store's set of revocations differs from the one the cached CRL
 * was built from (a revocation made by this daemon, the CLI on the same database or another
 * process), and once it is crl_refresh_s old, which is never later than half way to its
 * nextUpdate: relying parties always hold a CRL that is far from stale. */
#include <errno.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_internal.h"
#include "vtpmca/crl.h"
#include "vtpmca/log.h"

#define CA_PEM_CHAIN_CONTENT_TYPE "application/pem-certificate-chain"
/* RFC 5280 4.2.2.1: what an AIA caIssuers HTTP URL serves for a certs-only CMS. */
#define CA_CMS_CHAIN_CONTENT_TYPE "application/pkcs7-mime"
#define CA_CRL_CONTENT_TYPE "application/pkix-crl"
#define REVOCATIONS_HASH_LEN 32 /* SHA-256 */

struct server_ca_public {
    char *chain_pem; /* issuing CA then root */
    size_t chain_pem_len;
    uint8_t *chain_cms; /* certs-only CMS SignedData holding both */
    size_t chain_cms_len;
    uint32_t next_update_s;
    uint32_t refresh_s;       /* config.crl_refresh_s, capped at half of next_update_s */
    pthread_mutex_t crl_lock; /* guards crl and crl_revocations; held while reissuing */
    crl_result crl;           /* der == NULL until the first request */
    uint8_t crl_revocations[REVOCATIONS_HASH_LEN]; /* what the cached CRL was built from */
};

/* ---- Set-up ---- */

/* Whether dir holds any file of a CA: none means "no CA yet", some means it must open. */
static bool ca_files_present(const char *dir)
{
    static const char *const files[] = {CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, CA_ISSUING_CERT_FILE,
                                        CA_ISSUING_KEY_FILE};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[SERVER_CONFIG_PATH_MAX + 32];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (lstat(path, &sb) == 0 || errno != ENOENT)
            return true;
    }
    return false;
}

static void ca_public_free(server_ca_public *pub)
{
    if (pub == NULL)
        return;
    free(pub->chain_pem);
    free(pub->chain_cms);
    crl_result_free(&pub->crl);
    pthread_mutex_destroy(&pub->crl_lock);
    free(pub);
}

static vtpmca_err ca_public_new(const ca_ctx *ca, const server_config *cfg, server_ca_public **out,
                                vtpmca_diag *diag)
{
    server_ca_public *pub = calloc(1, sizeof(*pub));
    if (pub == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ca: out of memory");
    if (pthread_mutex_init(&pub->crl_lock, NULL) != 0) {
        free(pub);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ca: cannot create a mutex");
    }
    pub->next_update_s = cfg->crl_next_update_s;
    pub->refresh_s = cfg->crl_refresh_s;
    if (pub->refresh_s == 0 || pub->refresh_s > pub->next_update_s / 2)
        pub->refresh_s = pub->next_update_s / 2;
    vtpmca_err err = ca_chain_pem(ca, &pub->chain_pem, &pub->chain_pem_len, diag);
    if (err == VTPMCA_OK)
        err = ca_chain_der(ca, &pub->chain_cms, &pub->chain_cms_len, diag);
    if (err != VTPMCA_OK) {
        ca_public_free(pub);
        return err;
    }
    *out = pub;
    return VTPMCA_OK;
}

vtpmca_err server_ca_setup(server_app *app, vtpmca_diag *diag)
{
    if (app == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: missing argument");
    const server_config *cfg = &app->config;
    if (cfg->ca_dir[0] == '\0' || !ca_files_present(cfg->ca_dir)) {
        vtpmca_log(VTPMCA_LOG_INFO, "ca.absent", "dir", cfg->ca_dir, "message",
                   "no certificate authority: the /v1/ca/ routes answer 503 until 'vtpmca ca "
                   "init' creates one there and vtpmcad restarts",
                   NULL);
        return VTPMCA_OK;
    }
    vtpmca_diag inner = {{0}};
    vtpmca_err err = ca_open(cfg->ca_dir, &app->ca, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "ca_dir %.80s: %.160s", cfg->ca_dir, inner.msg);
    err = ca_public_new(app->ca, cfg, &app->ca_public, diag);
    if (err != VTPMCA_OK) {
        ca_free(app->ca);
        app->ca = NULL;
        return err;
    }
    char root_key[SERVER_CONFIG_PATH_MAX + 32];
    snprintf(root_key, sizeof(root_key), "%s/%s", cfg->ca_dir, CA_ROOT_KEY_FILE);
    if (access(root_key, F_OK) == 0)
        vtpmca_log(VTPMCA_LOG_WARN, "ca.root_key_online", "file", root_key, "message",
                   "the root CA key is on the online server; the daemon never uses it: move it "
                   "to offline storage",
                   NULL);
    char subject[256] = "";
    X509_NAME_oneline(X509_get_subject_name(ca_cert(app->ca, CA_CERT_ISSUING)), subject,
                      (int)sizeof(subject));
    vtpmca_log(VTPMCA_LOG_INFO, "ca.loaded", "dir", cfg->ca_dir, "issuing_ca", subject, NULL);
    return VTPMCA_OK;
}

void server_ca_teardown(server_app *app)
{
    if (app == NULL)
        return;
    ca_public_free(app->ca_public);
    app->ca_public = NULL;
    ca_free(app->ca);
    app->ca = NULL;
}

/* ---- Requests ---- */

/* Answers 503 and returns false when there is no CA. */
static bool require_ca(const server_app *app, server_response *response)
{
    if (app->ca != NULL && app->ca_public != NULL)
        return true;
    server_response_error(response, 503, "ca_not_initialized",
                          "this service has no certificate authority yet: run 'vtpmca ca init' "
                          "on the server, then restart vtpmcad");
    return false;
}

/* Refuses query parameters other than `allowed` (400); false when it answered. */
static bool check_query(const server_request *request, const char *allowed,
                        server_response *response)
{
    const char *unknown = server_request_unknown_query(request, allowed);
    if (unknown == NULL)
        return true;
    server_response_error(response, 400, "invalid_request", "unknown query parameter '%.40s'%s%s",
                          unknown, allowed != NULL ? "; allowed: " : "",
                          allowed != NULL ? allowed : "");
    return false;
}

/* A malloc'd copy of a body for server_response_text, which takes ownership. */
static void respond_copy(server_response *response, const char *content_type, const void *data,
                         size_t len)
{
    char *body = malloc(len > 0 ? len : 1);
    if (body == NULL) {
        server_response_error(response, 500, "internal", "out of memory");
        return;
    }
    memcpy(body, data, len);
    server_response_text(response, 200, content_type, body, len);
}

void server_handle_ca_chain(void *ctx, const server_request *request, server_response *response)
{
    const server_app *app = ctx;
    if (!require_ca(app, response) || !check_query(request, "format", response))
        return;
    const char *format =
        request->connection != NULL
            ? MHD_lookup_connection_value(request->connection, MHD_GET_ARGUMENT_KIND, "format")
            : NULL;
    const server_ca_public *pub = app->ca_public;
    if (format == NULL || strcmp(format, "pem") == 0)
        respond_copy(response, CA_PEM_CHAIN_CONTENT_TYPE, pub->chain_pem, pub->chain_pem_len);
    else if (strcmp(format, "der") == 0)
        respond_copy(response, CA_CMS_CHAIN_CONTENT_TYPE, pub->chain_cms, pub->chain_cms_len);
    else
        server_response_error(response, 400, "invalid_request",
                              "format must be pem (the default) or der, not '%.20s'", format);
}

/* SHA-256 over the store's revocations (serial, time, reason of each, in serial order): equal
 * hashes mean the CRL built from the first set still lists exactly the second. */
static vtpmca_err hash_revocations(store *st, uint8_t out[REVOCATIONS_HASH_LEN], vtpmca_diag *diag)
{
    store_cert_revocation *revoked = NULL;
    size_t n = 0;
    vtpmca_err err = store_cert_revocations(st, &revoked, &n, diag);
    if (err != VTPMCA_OK)
        return err;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        uint8_t when[8];
        for (int b = 0; b < 8; b++)
            when[b] = (uint8_t)((uint64_t)revoked[i].revoked_at >> (56 - 8 * b));
        /* The NULs delimit the text fields, so no two different lists hash alike. */
        ok = EVP_DigestUpdate(md, revoked[i].serial, strlen(revoked[i].serial) + 1) == 1 &&
             EVP_DigestUpdate(md, when, sizeof(when)) == 1 &&
             EVP_DigestUpdate(md, revoked[i].reason, strlen(revoked[i].reason) + 1) == 1;
    }
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == REVOCATIONS_HASH_LEN;
    EVP_MD_CTX_free(md);
    free(revoked);
    if (!ok) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "crl: cannot hash the revocations");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    return VTPMCA_OK;
}

static bool crl_is_current(const server_ca_public *pub, const uint8_t revocations[], time_t now)
{
    return pub->crl.der != NULL &&
           memcmp(pub->crl_revocations, revocations, REVOCATIONS_HASH_LEN) == 0 &&
           now >= pub->crl.this_update && now < pub->crl.this_update + (int64_t)pub->refresh_s;
}

void server_handle_ca_crl(void *ctx, const server_request *request, server_response *response)
{
    server_app *app = ctx;
    if (!require_ca(app, response) || !check_query(request, NULL, response))
        return;
    server_ca_public *pub = app->ca_public;
    /* Read before reissuing: a revocation that lands in between changes the hash again, so
     * the next request reissues rather than keeping a CRL that misses it. */
    uint8_t revocations[REVOCATIONS_HASH_LEN];
    vtpmca_diag diag = {{0}};
    vtpmca_err err = hash_revocations(app->store, revocations, &diag);
    pthread_mutex_lock(&pub->crl_lock);
    if (err == VTPMCA_OK && !crl_is_current(pub, revocations, time(NULL))) {
        crl_result fresh;
        err = crl_generate(app->ca, app->store, pub->next_update_s, &fresh, &diag);
        if (err == VTPMCA_OK) {
            crl_result_free(&pub->crl);
            pub->crl = fresh;
            memcpy(pub->crl_revocations, revocations, REVOCATIONS_HASH_LEN);
            char number[24];
            snprintf(number, sizeof(number), "%llu", (unsigned long long)fresh.crl_number);
            vtpmca_log(VTPMCA_LOG_INFO, "ca.crl_issued", "crl_number", number, NULL);
        }
    }
    if (err == VTPMCA_OK)
        respond_copy(response, CA_CRL_CONTENT_TYPE, pub->crl.der, pub->crl.der_len);
    pthread_mutex_unlock(&pub->crl_lock);
    if (err != VTPMCA_OK) {
        /* Details to the log only: they may name database internals. */
        vtpmca_log(VTPMCA_LOG_ERROR, "ca.crl_failed", "error", vtpmca_err_name(err), "detail",
                   diag.msg, NULL);
        server_response_error(response, 503, "crl_unavailable",
                              "the CRL cannot be issued right now");
    }
}
