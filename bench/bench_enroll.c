/* Benchmark: bulk enrollment of many instances, the two ways an admin runs it:
 *   offline  - what `vtpmca instance bulk --db` does: parse and check the CSV, then one
 *              transaction (bulk_parse + bulk_enroll) on a fresh sqlite database;
 *   admin API - what `vtpmca instance bulk --server` does: the same CSV in one POST
 *              /v1/admin/instances/bulk (signed admin token, loopback HTTP) to a vtpmcad
 *              running in this process on its own fresh database, until its answer (the
 *              generated resource paths) is in.
 * Each instance gets a fresh 256-bit key wrapped under the master key, a random resource tag
 * and an audit row, all in the one transaction. Goal: 100,000 instances in under 10 s, each
 * way. The counts are checked afterwards (every instance is in the store).
 *
 * Usage: bench_enroll [--rows N] [--keep]   (N default 100000, at most BULK_MAX_ROWS) */
#define _XOPEN_SOURCE 700 /* nftw */
#include <curl/curl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/bench_util.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/enrollment_bulk.h"
#include "vtpmca/fileio.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/log.h"
#include "vtpmca/server_app.h"
#include "vtpmca/server_config.h"
#include "vtpmca/store.h"

#define GOAL_SECONDS 10.0
#define FLEET "bench"

static void die(const char *what, const vtpmca_diag *diag)
{
    fprintf(stderr, "bench_enroll: %s%s%s\n", what, diag != NULL ? ": " : "",
            diag != NULL ? diag->msg : "");
    exit(1);
}

/* "instance,fleet" and N rows: the smallest useful document (paths generated). */
static char *make_csv(size_t rows, size_t *len)
{
    size_t cap = 32 + rows * 32;
    char *csv = malloc(cap);
    if (csv == NULL)
        die("out of memory", NULL);
    size_t n = (size_t)snprintf(csv, cap, "instance,fleet\n");
    for (size_t i = 0; i < rows; i++)
        n += (size_t)snprintf(csv + n, cap - n, "bench-%07zu,%s\n", i, FLEET);
    *len = n;
    return csv;
}

/* Instances in the store, counted page by page. */
static size_t count_instances(store *st)
{
    size_t total = 0;
    char after[STORE_INSTANCE_ID_MAX + 1] = "";
    for (;;) {
        store_instance *items = NULL;
        size_t n = 0;
        vtpmca_diag diag = {{0}};
        if (store_instance_list(st, NULL, after[0] ? after : NULL, STORE_LIST_MAX, &items, &n,
                                &diag) != VTPMCA_OK)
            die("listing instances", &diag);
        if (n > 0)
            snprintf(after, sizeof(after), "%s", items[n - 1].id);
        store_instance_list_free(items, n);
        total += n;
        if (n < STORE_LIST_MAX)
            return total;
    }
}

static double run_offline(const char *dir, const char *csv, size_t len, size_t rows)
{
    char db[256], key[256];
    snprintf(db, sizeof(db), "%s/offline.db", dir);
    snprintf(key, sizeof(key), "%s/offline-master.key", dir);
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    keyvault *vault = NULL;
    if (store_open(db, &st, &diag) != VTPMCA_OK ||
        keyvault_open(key, true, &vault, &diag) != VTPMCA_OK ||
        store_fleet_create(st, FLEET, "bench", &diag) != VTPMCA_OK)
        die("offline setup", &diag);
    double start = vt_bench_now_s();
    bulk_doc doc;
    bulk_result *results = NULL;
    size_t n = 0;
    if (bulk_parse(csv, len, BULK_CSV, NULL, &doc, &diag) != VTPMCA_OK || doc.n_bad != 0)
        die("parsing", &diag);
    if (bulk_enroll(st, vault, &doc, 0, doc.n_rows, "cli:bench", false, &results, &n, &diag) !=
        VTPMCA_OK)
        die("enrolling offline", &diag);
    double seconds = vt_bench_now_s() - start;
    if (n != rows || count_instances(st) != rows)
        die("offline: not every instance was enrolled", NULL);
    bulk_results_free(results, n);
    bulk_doc_free(&doc);
    keyvault_free(vault);
    store_close(st);
    return seconds;
}

typedef struct {
    char *data;
    size_t len;
} buffer;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    buffer *b = user;
    char *bigger = realloc(b->data, b->len + size * n + 1);
    if (bigger == NULL)
        return 0;
    memcpy(bigger + b->len, data, size * n);
    b->data = bigger;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* An admin key (Ed25519) whose public half the daemon trusts. */
static EVP_PKEY *make_admin(const char *keys_dir)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL, path[300];
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    snprintf(path, sizeof(path), "%s/bench.pub.pem", keys_dir);
    if (mkdir(keys_dir, 0700) != 0 ||
        admin_key_generate(ADMIN_KEY_ED25519, &key, &diag) != VTPMCA_OK ||
        admin_key_to_pem(key, false, &pem, &len, &diag) != VTPMCA_OK ||
        vt_file_write_atomic(path, pem, len, 0644, &diag) != VTPMCA_OK)
        die("admin key", &diag);
    free(pem);
    return key;
}

static double run_api(const char *dir, const char *csv, size_t len, size_t rows)
{
    char state[256], keys[256];
    snprintf(state, sizeof(state), "%s/daemon", dir);
    snprintf(keys, sizeof(keys), "%s/admins", dir);
    EVP_PKEY *admin = make_admin(keys);
    server_config cfg;
    vtpmca_diag diag = {{0}};
    if (server_config_defaults(&cfg) != VTPMCA_OK ||
        server_config_set(&cfg, "state_dir", state, &diag) != VTPMCA_OK ||
        server_config_set(&cfg, "listen", "127.0.0.1", &diag) != VTPMCA_OK ||
        server_config_set(&cfg, "port", "0", &diag) != VTPMCA_OK ||
        server_config_set(&cfg, "admin_keys_dir", keys, &diag) != VTPMCA_OK ||
        server_config_set(&cfg, "max_body_bytes", "67108864", &diag) != VTPMCA_OK ||
        server_config_finalize(&cfg, &diag) != VTPMCA_OK)
        die("daemon configuration", &diag);
    server_app *app = NULL;
    if (server_app_new(&cfg, &app, &diag) != VTPMCA_OK || server_app_start(app, &diag) != VTPMCA_OK)
        die("starting the daemon", &diag);
    /* The fleet, through the daemon's own store file. */
    store *st = NULL;
    if (store_open(cfg.db, &st, &diag) != VTPMCA_OK ||
        store_fleet_create(st, FLEET, "bench", &diag) != VTPMCA_OK)
        die("daemon fleet", &diag);

    char url[128], *token = NULL, auth[ADMIN_TOKEN_MAX_LEN + 32];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/admin/instances/bulk", server_app_port(app));
    if (admin_token_sign(admin, "bench", ADMIN_ROLE_ADMIN, time(NULL), 120, &token, &diag) !=
        VTPMCA_OK)
        die("token", &diag);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    free(token);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    headers = curl_slist_append(headers, "Content-Type: text/csv");
    buffer answer = {NULL, 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, csv);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    double start = vt_bench_now_s();
    CURLcode rc = curl_easy_perform(curl);
    double seconds = vt_bench_now_s() - start;
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    json_t *doc = answer.data != NULL ? json_loads(answer.data, 0, NULL) : NULL;
    if (rc != CURLE_OK || status != 201 ||
        json_integer_value(json_object_get(doc, "enrolled")) != (json_int_t)rows ||
        json_array_size(json_object_get(doc, "instances")) != rows) {
        fprintf(stderr, "HTTP %ld: %.300s\n", status, answer.data != NULL ? answer.data : "");
        die("the admin API did not enroll every instance", NULL);
    }
    json_decref(doc);
    free(answer.data);
    if (count_instances(st) != rows)
        die("admin API: not every instance is in the store", NULL);
    store_close(st);
    server_app_free(app);
    EVP_PKEY_free(admin);
    return seconds;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    size_t rows = 100000;
    bool keep = false;
    const struct option longopts[] = {{"rows", required_argument, NULL, 'r'},
                                      {"keep", no_argument, NULL, 'k'},
                                      {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'r') {
            char *end = NULL;
            unsigned long long value = strtoull(optarg, &end, 10);
            if (*end != '\0' || value == 0 || value > BULK_MAX_ROWS)
                die("--rows must be 1 to 100000", NULL);
            rows = (size_t)value;
        } else if (c == 'k') {
            keep = true;
        } else {
            fprintf(stderr, "usage: bench_enroll [--rows N] [--keep]\n");
            return 2;
        }
    }
    vtpmca_log_setup(VTPMCA_LOG_WARN, VTPMCA_LOG_LOGFMT, 2);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("libcurl", NULL);
    char dir[] = "/tmp/vtpmca-bench-enroll-XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", NULL);
    size_t len = 0;
    char *csv = make_csv(rows, &len);
    printf("bench_enroll: %zu instances (CSV of %zu bytes), generated keys and paths, one "
           "transaction each way\n",
           rows, len);
    double offline = run_offline(dir, csv, len, rows);
    printf("  offline (vtpmca instance bulk --db):     %6.2f s  %8.0f instances/s\n", offline,
           (double)rows / offline);
    double api = run_api(dir, csv, len, rows);
    printf("  admin API (POST /v1/admin/instances/bulk): %6.2f s  %8.0f instances/s\n", api,
           (double)rows / api);
    double goal = GOAL_SECONDS * (double)rows / 100000.0;
    bool met = offline < goal && api < goal;
    printf("goal: %zu instances in under %.1f s each way: %s\n", rows, goal,
           met ? "met" : "MISSED");
    free(csv);
    curl_global_cleanup();
    if (keep)
        printf("kept %s\n", dir);
    else
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return met ? 0 : 1;
}
