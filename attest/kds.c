/* AMD Key Distribution Service client: VCEK download over libcurl with a whole-request
 * timeout, a response size cap, an in-memory answer cache (positive and negative) and a
 * token-bucket rate limit that refuses instead of waiting. */
#include "vtpmca/kds.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "vtpmca/encoding.h"
#include "vtpmca/log.h"

#define KDS_MAX_RESPONSE 16384
#define KDS_MAX_BASE_URL 512
#define KDS_DEFAULT_TIMEOUT_MS 5000
#define KDS_DEFAULT_RATE 1.0
#define KDS_DEFAULT_BURST 4
#define KDS_DEFAULT_CACHE 256
#define KDS_DEFAULT_NEGATIVE_TTL_S 300

/* One remembered answer: a certificate, or "not found" until `expires`. */
typedef struct {
    char *url; /* NULL when the slot is free */
    uint8_t *der;
    size_t der_len;
    bool negative;
    double expires;     /* monotonic seconds; negative answers only */
    uint64_t last_used; /* LRU tick */
} kds_answer;

struct kds_client {
    char base_url[KDS_MAX_BASE_URL];
    long timeout_ms;
    double rate_per_sec;
    double burst;
    long negative_ttl_s;

    pthread_mutex_t lock; /* guards the answers and the bucket; never held during I/O */
    kds_answer *answers;
    unsigned n_answers;
    uint64_t tick;
    double tokens;
    double last_refill;

    _Atomic uint64_t requests, cache_hits, rate_limited, failures;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

/* curl_global_init is not guaranteed thread-safe on every build: run it exactly once. */
static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool url_scheme_allowed(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

vtpmca_err kds_vcek_url(const kds_config *config, snp_product product, const uint8_t chip_id[64],
                        const snp_tcb *tcb, char **out)
{
    if (chip_id == NULL || tcb == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *out = NULL;
    if (product != SNP_PRODUCT_MILAN && product != SNP_PRODUCT_GENOA &&
        product != SNP_PRODUCT_TURIN)
        return VTPMCA_ERR_INVALID_ARG;

    /* Turin VCEKs are keyed by the first 8 bytes of CHIP_ID only. */
    size_t hwid_len = product == SNP_PRODUCT_TURIN ? 8 : 64;
    char hwid[129];
    vtpmca_err err = vt_hex_encode(chip_id, hwid_len, hwid, sizeof(hwid));
    if (err != VTPMCA_OK)
        return err;

    const char *base = "";
    size_t base_len = 0;
    if (config != NULL && config->base_url != NULL) {
        base = config->base_url;
        base_len = strlen(base);
        while (base_len > 0 && base[base_len - 1] == '/')
            base_len--;
    }

    /* AMD's KDS specification (57230) lists fmcSPL first for Turin. */
    char query[128];
    if (product == SNP_PRODUCT_TURIN)
        snprintf(query, sizeof(query),
                 "fmcSPL=%02u&blSPL=%02u&teeSPL=%02u&snpSPL=%02u&ucodeSPL=%02u", tcb->fmc,
                 tcb->bootloader, tcb->tee, tcb->snp, tcb->microcode);
    else
        snprintf(query, sizeof(query), "blSPL=%02u&teeSPL=%02u&snpSPL=%02u&ucodeSPL=%02u",
                 tcb->bootloader, tcb->tee, tcb->snp, tcb->microcode);

    const char *name = snp_product_name(product);
    size_t size =
        base_len + strlen("/vcek/v1///?") + strlen(name) + strlen(hwid) + strlen(query) + 1;
    char *url = malloc(size);
    if (url == NULL)
        return VTPMCA_ERR_NOMEM;
    snprintf(url, size, "%.*s/vcek/v1/%s/%s?%s", (int)base_len, base, name, hwid, query);
    *out = url;
    return VTPMCA_OK;
}

vtpmca_err kds_client_new(const kds_config *config, kds_client **out, vtpmca_diag *diag)
{
    if (config == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kds: config and out are required");
    *out = NULL;
    if (config->base_url == NULL || !url_scheme_allowed(config->base_url))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "kds: base_url must start with http:// or https://");
    if (strlen(config->base_url) >= KDS_MAX_BASE_URL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kds: base_url longer than %d bytes",
                           KDS_MAX_BASE_URL - 1);
    if (config->timeout_ms < 0 || config->rate_per_sec < 0 || config->negative_ttl_s < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "kds: timeout, rate and negative TTL must not be negative");

    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "kds: curl_global_init failed: %s",
                           curl_easy_strerror(curl_init_result));

    kds_client *kds = calloc(1, sizeof(*kds));
    if (kds == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: out of memory");
    snprintf(kds->base_url, sizeof(kds->base_url), "%s", config->base_url);
    kds->timeout_ms = config->timeout_ms > 0 ? config->timeout_ms : KDS_DEFAULT_TIMEOUT_MS;
    kds->rate_per_sec = config->rate_per_sec > 0 ? config->rate_per_sec : KDS_DEFAULT_RATE;
    kds->burst = config->burst > 0 ? config->burst : KDS_DEFAULT_BURST;
    kds->negative_ttl_s =
        config->negative_ttl_s > 0 ? config->negative_ttl_s : KDS_DEFAULT_NEGATIVE_TTL_S;
    kds->n_answers = config->cache_entries > 0 ? config->cache_entries : KDS_DEFAULT_CACHE;
    kds->answers = calloc(kds->n_answers, sizeof(*kds->answers));
    if (kds->answers == NULL || pthread_mutex_init(&kds->lock, NULL) != 0) {
        free(kds->answers);
        free(kds);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: out of memory");
    }
    kds->tokens = kds->burst;
    kds->last_refill = monotonic_seconds();
    *out = kds;
    return VTPMCA_OK;
}

static void answer_clear(kds_answer *answer)
{
    free(answer->url);
    free(answer->der);
    memset(answer, 0, sizeof(*answer));
}

void kds_client_free(kds_client *kds)
{
    if (kds == NULL)
        return;
    for (unsigned i = 0; i < kds->n_answers; i++)
        answer_clear(&kds->answers[i]);
    free(kds->answers);
    pthread_mutex_destroy(&kds->lock);
    free(kds);
}

void kds_client_stats(const kds_client *kds, kds_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (kds == NULL)
        return;
    out->requests = atomic_load_explicit(&kds->requests, memory_order_relaxed);
    out->cache_hits = atomic_load_explicit(&kds->cache_hits, memory_order_relaxed);
    out->rate_limited = atomic_load_explicit(&kds->rate_limited, memory_order_relaxed);
    out->failures = atomic_load_explicit(&kds->failures, memory_order_relaxed);
}

/* Caller holds kds->lock. Expired negative answers are dropped on sight. */
static kds_answer *answer_find(kds_client *kds, const char *url, double now)
{
    for (unsigned i = 0; i < kds->n_answers; i++) {
        kds_answer *answer = &kds->answers[i];
        if (answer->url == NULL || strcmp(answer->url, url) != 0)
            continue;
        if (answer->negative && now >= answer->expires) {
            answer_clear(answer);
            return NULL;
        }
        answer->last_used = ++kds->tick;
        return answer;
    }
    return NULL;
}

/* Caller holds kds->lock. Takes ownership of url and der (also on failure). */
static void answer_remember(kds_client *kds, char *url, uint8_t *der, size_t der_len, bool negative,
                            double now)
{
    kds_answer *slot = NULL;
    for (unsigned i = 0; i < kds->n_answers; i++) {
        kds_answer *answer = &kds->answers[i];
        if (answer->url != NULL && strcmp(answer->url, url) == 0) {
            slot = answer; /* a concurrent fetch of the same URL finished first */
            break;
        }
        if (slot == NULL || answer->url == NULL ||
            (slot->url != NULL && answer->last_used < slot->last_used))
            slot = answer;
    }
    answer_clear(slot);
    slot->url = url;
    slot->der = der;
    slot->der_len = der_len;
    slot->negative = negative;
    slot->expires = negative ? now + (double)kds->negative_ttl_s : 0;
    slot->last_used = ++kds->tick;
}

/* Caller holds kds->lock. Takes one token if available. */
static bool bucket_take(kds_client *kds, double now)
{
    double elapsed = now - kds->last_refill;
    if (elapsed > 0) {
        kds->tokens += elapsed * kds->rate_per_sec;
        if (kds->tokens > kds->burst)
            kds->tokens = kds->burst;
        kds->last_refill = now;
    }
    if (kds->tokens < 1.0)
        return false;
    kds->tokens -= 1.0;
    return true;
}

typedef struct {
    uint8_t *buf;
    size_t len;
    bool too_large;
} response_body;

static size_t body_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    response_body *body = userdata;
    size_t n = size * nmemb;
    if (n > KDS_MAX_RESPONSE - body->len) {
        body->too_large = true;
        return 0; /* makes curl abort the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(body->buf + body->len, data, n);
    body->len += n;
    return n;
}

/* Performs one GET. Returns the HTTP status in *status, or an error for transport failures. */
static vtpmca_err http_get(const kds_client *kds, const char *url, response_body *body,
                           long *status, vtpmca_diag *diag)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: curl_easy_init failed");
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_OK;
#define KDS_SETOPT(opt, val)                                                                       \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(curl, opt, val);                                                 \
    } while (0)
    KDS_SETOPT(CURLOPT_URL, url);
    KDS_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    KDS_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    KDS_SETOPT(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for timeouts in a threaded process */
    KDS_SETOPT(CURLOPT_TIMEOUT_MS, kds->timeout_ms);
    KDS_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, kds->timeout_ms);
    KDS_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)KDS_MAX_RESPONSE);
    KDS_SETOPT(CURLOPT_WRITEFUNCTION, body_write);
    KDS_SETOPT(CURLOPT_WRITEDATA, body);
    KDS_SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    KDS_SETOPT(CURLOPT_USERAGENT, "vtpmca/0.1");
    KDS_SETOPT(CURLOPT_HTTPGET, 1L);
#undef KDS_SETOPT
    if (rc != CURLE_OK) {
        curl_easy_cleanup(curl);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "kds: curl option failed: %s",
                           curl_easy_strerror(rc));
    }
    rc = curl_easy_perform(curl);
    vtpmca_err err = VTPMCA_OK;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    } else if (body->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        err = vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "kds: response larger than %d bytes refused",
                          KDS_MAX_RESPONSE);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        err = vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "kds: request timed out after %ld ms",
                          kds->timeout_ms);
    } else {
        err = vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "kds: request failed: %s",
                          errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(curl);
    return err;
}

static void log_fetch(const char *product, const char *outcome, long status)
{
    char status_text[16] = "none";
    if (status > 0)
        snprintf(status_text, sizeof(status_text), "%ld", status);
    vtpmca_log(status == 200 || status == 404 ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN, "kds.fetch",
               "product", product, "outcome", outcome, "http_status", status_text, NULL);
}

vtpmca_err kds_fetch_vcek(kds_client *kds, snp_product product, const uint8_t chip_id[64],
                          const snp_tcb *tcb, uint8_t **der, size_t *der_len, vtpmca_diag *diag)
{
    if (kds == NULL || chip_id == NULL || tcb == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "kds: missing argument");
    *der = NULL;
    *der_len = 0;
    kds_config where = {.base_url = kds->base_url};
    char *url = NULL;
    vtpmca_err err = kds_vcek_url(&where, product, chip_id, tcb, &url);
    if (err == VTPMCA_ERR_INVALID_ARG)
        return vtpmca_fail(diag, err, "kds: no VCEK service for product %d", (int)product);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "kds: cannot build the request URL");

    /* Remembered answers first, then the rate limit; neither holds the lock during I/O. */
    double now = monotonic_seconds();
    pthread_mutex_lock(&kds->lock);
    kds_answer *known = answer_find(kds, url, now);
    if (known != NULL) {
        if (!known->negative) {
            uint8_t *copy = malloc(known->der_len);
            if (copy != NULL) {
                memcpy(copy, known->der, known->der_len);
                *der = copy;
                *der_len = known->der_len;
            }
        }
        bool negative = known->negative;
        pthread_mutex_unlock(&kds->lock);
        free(url);
        if (!negative && *der == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: out of memory");
        atomic_fetch_add_explicit(&kds->cache_hits, 1, memory_order_relaxed);
        if (negative)
            return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                               "kds: no %s VCEK for this chip and TCB (remembered answer)",
                               snp_product_name(product));
        return VTPMCA_OK;
    }
    bool allowed = bucket_take(kds, now);
    pthread_mutex_unlock(&kds->lock);
    if (!allowed) {
        free(url);
        atomic_fetch_add_explicit(&kds->rate_limited, 1, memory_order_relaxed);
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "kds: request rate limit reached");
    }

    atomic_fetch_add_explicit(&kds->requests, 1, memory_order_relaxed);
    const char *name = snp_product_name(product);
    response_body body = {.buf = malloc(KDS_MAX_RESPONSE)};
    if (body.buf == NULL) {
        free(url);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: out of memory");
    }
    long status = 0;
    err = http_get(kds, url, &body, &status, diag);
    if (err != VTPMCA_OK) {
        atomic_fetch_add_explicit(&kds->failures, 1, memory_order_relaxed);
        log_fetch(name, vtpmca_err_name(err), 0);
        free(body.buf);
        free(url);
        return err;
    }
    log_fetch(name, status == 200 ? "ok" : status == 404 ? "not_found" : "error", status);

    if (status == 404) {
        free(body.buf);
        pthread_mutex_lock(&kds->lock);
        answer_remember(kds, url, NULL, 0, true, monotonic_seconds());
        pthread_mutex_unlock(&kds->lock);
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "kds: no %s VCEK for this chip and TCB",
                           name);
    }
    if (status != 200 || body.len == 0) {
        free(body.buf);
        free(url);
        atomic_fetch_add_explicit(&kds->failures, 1, memory_order_relaxed);
        if (status == 200)
            return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "kds: empty response body");
        return vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "kds: HTTP status %ld%s", status,
                           status == 429 ? " (KDS rate limit)" : "");
    }

    /* One copy for the caller, the shrunk buffer for the cache. */
    uint8_t *copy = malloc(body.len);
    uint8_t *kept = realloc(body.buf, body.len);
    if (kept == NULL)
        kept = body.buf;
    if (copy == NULL) {
        free(kept);
        free(url);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "kds: out of memory");
    }
    memcpy(copy, kept, body.len);
    pthread_mutex_lock(&kds->lock);
    answer_remember(kds, url, kept, body.len, false, monotonic_seconds());
    pthread_mutex_unlock(&kds->lock);
    *der = copy;
    *der_len = body.len;
    return VTPMCA_OK;
}
