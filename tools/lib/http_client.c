/* libcurl transport of the tool-side protocol clients (see vtpmca/http_client.h). */
#include "vtpmca/http_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

vtpmca_err vt_http_init(vt_http *http, const char *base_url, size_t url_max, long timeout_ms,
                        long default_timeout_ms, long connect_timeout_ms, const char *who,
                        vtpmca_diag *diag)
{
    if (http != NULL)
        memset(http, 0, sizeof(*http));
    if (http == NULL || base_url == NULL || who == NULL || timeout_ms < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "http client: bad arguments");
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "%s: the server URL must start with http:// or https://", who);
    size_t len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if (len + VT_HTTP_PATH_ROOM > url_max)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: the server URL is too long", who);
    http->base_url = strndup(base_url, len);
    http->curl = curl_easy_init();
    http->url_max = url_max;
    http->timeout_ms = timeout_ms > 0 ? timeout_ms : default_timeout_ms;
    http->connect_timeout_ms = connect_timeout_ms;
    if (http->base_url == NULL || http->curl == NULL) {
        vt_http_cleanup(http);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "%s: cannot set up libcurl", who);
    }
    return VTPMCA_OK;
}

void vt_http_cleanup(vt_http *http)
{
    if (http == NULL)
        return;
    if (http->curl != NULL)
        curl_easy_cleanup(http->curl);
    free(http->base_url);
    memset(http, 0, sizeof(*http));
}

typedef struct {
    uint8_t *data;
    size_t len;
    size_t max;
    bool too_big;
} response_body;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    response_body *body = user;
    size_t chunk = size * n;
    if (body->len + chunk > body->max) {
        body->too_big = true;
        return 0; /* makes libcurl abort the transfer */
    }
    uint8_t *bigger = realloc(body->data, body->len + chunk + 1);
    if (bigger == NULL)
        return 0;
    body->data = bigger;
    memcpy(body->data + body->len, data, chunk);
    body->len += chunk;
    body->data[body->len] = '\0';
    return chunk;
}

vtpmca_err vt_http_perform(vt_http *http, const vt_http_request *request, long *status,
                           uint8_t **reply, size_t *reply_len, vtpmca_diag *diag)
{
    if (status != NULL)
        *status = 0;
    if (reply != NULL)
        *reply = NULL;
    if (reply_len != NULL)
        *reply_len = 0;
    if (http == NULL || http->curl == NULL || request == NULL || request->path == NULL ||
        request->label == NULL || status == NULL || reply == NULL || reply_len == NULL ||
        (request->body == NULL && request->body_len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "http client: bad arguments");
    char *url = malloc(http->url_max);
    if (url == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "%s: out of memory", request->label);
    int n = snprintf(url, http->url_max, "%s%s", http->base_url, request->path);
    if (n < 0 || (size_t)n >= http->url_max) {
        free(url);
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: URL too long", request->label);
    }
    /* A failed append leaves headers NULL, which is reported as out of memory below. */
    struct curl_slist *headers = NULL;
    bool headers_ok = true;
    for (size_t i = 0; request->headers != NULL && request->headers[i] != NULL && headers_ok; i++) {
        struct curl_slist *longer = curl_slist_append(headers, request->headers[i]);
        if (longer == NULL)
            headers_ok = false;
        else
            headers = longer;
    }
    response_body response = {.max = request->reply_max};
    CURL *curl = http->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, http->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    if (request->get) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                         request->body != NULL ? (const char *)request->body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_len);
    }
    CURLcode rc = headers_ok ? curl_easy_perform(curl) : CURLE_OUT_OF_MEMORY;
    /* The handle outlives this call's headers, body and URL. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    if (!request->get)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    free(url);
    vtpmca_err err = VTPMCA_OK;
    if (response.too_big)
        err = vtpmca_fail(diag, request->too_big_err, "%s: the answer is larger than %zu bytes",
                          request->label, request->reply_max);
    else if (rc != CURLE_OK)
        err =
            vtpmca_fail(diag, VTPMCA_ERR_NETWORK, "%s: %s", request->label, curl_easy_strerror(rc));
    if (err != VTPMCA_OK) {
        free(response.data);
        return err;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    *reply = response.data;
    *reply_len = response.len;
    return VTPMCA_OK;
}

bool vt_http_content_type_is(vt_http *http, const char *type)
{
    const char *actual = NULL;
    if (http == NULL || http->curl == NULL || type == NULL ||
        curl_easy_getinfo(http->curl, CURLINFO_CONTENT_TYPE, &actual) != CURLE_OK)
        return false;
    return actual != NULL && strncmp(actual, type, strlen(type)) == 0;
}

/* Keeps printable ASCII only. */
static void printable_copy(const char *in, char *out, size_t out_size)
{
    size_t j = 0;
    for (size_t i = 0; in != NULL && in[i] != '\0' && j + 1 < out_size; i++)
        out[j++] = isprint((unsigned char)in[i]) ? in[i] : '?';
    out[j] = '\0';
}

void vt_http_error_members(const uint8_t *body, size_t len, char *error, size_t error_size,
                           char *message, size_t message_size)
{
    json_t *doc = body != NULL ? json_loadb((const char *)body, len, 0, NULL) : NULL;
    if (error != NULL && error_size > 0)
        printable_copy(json_string_value(json_object_get(doc, "error")), error, error_size);
    if (message != NULL && message_size > 0)
        printable_copy(json_string_value(json_object_get(doc, "message")), message, message_size);
    json_decref(doc);
}
