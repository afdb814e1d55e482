/* TEST-ONLY stand-in KDS server on loopback (see kds_standin.h). */
#include "kds_standin.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtpmca/kds.h"

typedef struct {
    char *uri;
    uint8_t *body;
    size_t len;
} standin_entry;

struct kds_standin {
    struct MHD_Daemon *daemon;
    char base_url[64];
    pthread_mutex_t lock; /* guards entries and last_uri */
    standin_entry *entries;
    size_t n_entries;
    char last_uri[1024];
    _Atomic unsigned requests;
    _Atomic unsigned delay_ms;
    _Atomic unsigned forced_status;
    _Atomic bool stopping;
};

/* MHD strips the query before the handler sees the URL: keep the raw request URI. */
static void *record_uri(void *cls, const char *uri, struct MHD_Connection *connection)
{
    (void)connection;
    kds_standin *standin = cls;
    atomic_fetch_add(&standin->requests, 1);
    pthread_mutex_lock(&standin->lock);
    snprintf(standin->last_uri, sizeof(standin->last_uri), "%s", uri);
    pthread_mutex_unlock(&standin->lock);
    return strdup(uri);
}

static void request_done(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

/* Sleeps in small steps so stopping the server does not wait out a long delay. */
static void standin_delay(kds_standin *standin)
{
    unsigned remaining = atomic_load(&standin->delay_ms);
    while (remaining > 0 && !atomic_load(&standin->stopping)) {
        unsigned step = remaining < 10 ? remaining : 10;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        nanosleep(&ts, NULL);
        remaining -= step;
    }
}

static enum MHD_Result answer(struct MHD_Connection *connection, unsigned status,
                              const uint8_t *body, size_t len)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (response == NULL)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return ret;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)url;
    (void)version;
    (void)upload_data;
    kds_standin *standin = cls;
    const char *uri = *con_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    standin_delay(standin);
    unsigned forced = atomic_load(&standin->forced_status);
    if (forced != 0)
        return answer(connection, forced, NULL, 0);
    if (strcmp(method, "GET") != 0 || uri == NULL)
        return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, 0);

    pthread_mutex_lock(&standin->lock);
    enum MHD_Result ret = MHD_NO;
    bool found = false;
    for (size_t i = 0; i < standin->n_entries; i++) {
        if (strcmp(standin->entries[i].uri, uri) == 0) {
            ret =
                answer(connection, MHD_HTTP_OK, standin->entries[i].body, standin->entries[i].len);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&standin->lock);
    return found ? ret : answer(connection, MHD_HTTP_NOT_FOUND, NULL, 0);
}

vtpmca_err kds_standin_start(kds_standin **out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *out = NULL;
    kds_standin *standin = calloc(1, sizeof(*standin));
    if (standin == NULL)
        return VTPMCA_ERR_NOMEM;
    pthread_mutex_init(&standin->lock, NULL);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A thread per connection, so a delayed answer does not hold up other requests. */
    standin->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, handle_request, standin, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_URI_LOG_CALLBACK, record_uri, standin,
                         MHD_OPTION_NOTIFY_COMPLETED, request_done, standin, MHD_OPTION_END);
    if (standin->daemon == NULL) {
        pthread_mutex_destroy(&standin->lock);
        free(standin);
        return VTPMCA_ERR_IO;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(standin->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        MHD_stop_daemon(standin->daemon);
        pthread_mutex_destroy(&standin->lock);
        free(standin);
        return VTPMCA_ERR_IO;
    }
    snprintf(standin->base_url, sizeof(standin->base_url), "http://127.0.0.1:%u",
             (unsigned)info->port);
    *out = standin;
    return VTPMCA_OK;
}

void kds_standin_stop(kds_standin *standin)
{
    if (standin == NULL)
        return;
    atomic_store(&standin->stopping, true);
    MHD_stop_daemon(standin->daemon);
    for (size_t i = 0; i < standin->n_entries; i++) {
        free(standin->entries[i].uri);
        free(standin->entries[i].body);
    }
    free(standin->entries);
    pthread_mutex_destroy(&standin->lock);
    free(standin);
}

const char *kds_standin_base_url(const kds_standin *standin)
{
    return standin != NULL ? standin->base_url : NULL;
}

vtpmca_err kds_standin_put(kds_standin *standin, const char *uri, const uint8_t *body, size_t len)
{
    if (standin == NULL || uri == NULL || (body == NULL && len > 0))
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return VTPMCA_ERR_NOMEM;
    if (len > 0)
        memcpy(copy, body, len);

    pthread_mutex_lock(&standin->lock);
    for (size_t i = 0; i < standin->n_entries; i++) {
        if (strcmp(standin->entries[i].uri, uri) == 0) {
            free(standin->entries[i].body);
            standin->entries[i].body = copy;
            standin->entries[i].len = len;
            pthread_mutex_unlock(&standin->lock);
            return VTPMCA_OK;
        }
    }
    standin_entry *grown =
        realloc(standin->entries, (standin->n_entries + 1) * sizeof(*standin->entries));
    char *uri_copy = strdup(uri);
    if (grown == NULL || uri_copy == NULL) {
        if (grown != NULL)
            standin->entries = grown;
        pthread_mutex_unlock(&standin->lock);
        free(uri_copy);
        free(copy);
        return VTPMCA_ERR_NOMEM;
    }
    standin->entries = grown;
    standin->entries[standin->n_entries++] = (standin_entry){uri_copy, copy, len};
    pthread_mutex_unlock(&standin->lock);
    return VTPMCA_OK;
}

vtpmca_err kds_standin_put_vcek(kds_standin *standin, snp_product product,
                                const uint8_t chip_id[64], const snp_tcb *tcb, const uint8_t *der,
                                size_t der_len)
{
    char *uri = NULL;
    vtpmca_err err = kds_vcek_url(NULL, product, chip_id, tcb, &uri);
    if (err != VTPMCA_OK)
        return err;
    err = kds_standin_put(standin, uri, der, der_len);
    free(uri);
    return err;
}

void kds_standin_set_delay_ms(kds_standin *standin, unsigned delay_ms)
{
    if (standin != NULL)
        atomic_store(&standin->delay_ms, delay_ms);
}

void kds_standin_set_status(kds_standin *standin, unsigned status)
{
    if (standin != NULL)
        atomic_store(&standin->forced_status, status);
}

unsigned kds_standin_request_count(const kds_standin *standin)
{
    return standin != NULL ? atomic_load(&((kds_standin *)standin)->requests) : 0;
}

void kds_standin_last_uri(kds_standin *standin, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    buf[0] = '\0';
    if (standin == NULL)
        return;
    pthread_mutex_lock(&standin->lock);
    snprintf(buf, size, "%s", standin->last_uri);
    pthread_mutex_unlock(&standin->lock);
}
