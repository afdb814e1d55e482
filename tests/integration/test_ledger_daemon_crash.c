/* Crash safety of the rollback ledger over HTTP: the real vtpmcad serves several client
 * threads, each advancing its own enrolled instance one counter at a time as fast as the
 * daemon acknowledges, while the main thread SIGKILLs the daemon at random moments (at least
 * KILLS times) and restarts it on the same database.
 * Each client has at most one advance in flight, so after a crash the ledger must hold the
 * client's last acknowledged counter (with its root) or the one in flight, never less: checked
 * by a MACed query after every restart and at the end. A retried in-flight advance must then
 * be acknowledged (accepted, or duplicate if it was durable already); any refusal, forged
 * answer or counter behind an acknowledgement fails the test. Bounded well under 60 s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/keys_fixture.h"
#include "../support/vtpmcad_runner.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/ledger.h"
#include "vtpmca/ledger_client.h"

enum {
    CLIENTS = 6,
    KILLS = 12,
    MIN_GAP_MS = 120, /* between a restart and the next kill */
    MAX_GAP_MS = 450,
    DEADLINE_S = 50,
};

typedef struct {
    int index;
    char id[32];
    uint8_t pk[KEYVAULT_KEY_MAX];
    size_t pk_len;
    uint8_t last_acked[LEDGER_COUNTER_LEN]; /* valid when acked > 0 */
    uint64_t acked, network_errors, recoveries;
    char failure[384]; /* first violation */
    pthread_t thread;
} client_state;

static struct {
    keys_env env;
    pthread_mutex_t lock;
    char url[64];
    unsigned generation; /* bumped by every restart */
    atomic_bool stop;
    client_state clients[CLIENTS];
} g;

/* The root that goes with a counter: distinct per instance and counter. */
static void root_of(const client_state *c, const uint8_t counter[16], uint8_t root[20])
{
    memcpy(root, counter, 16);
    root[16] = 'r';
    root[17] = (uint8_t)c->index;
    root[18] = counter[15] ^ 0x5a;
    root[19] = counter[14];
}

static void fail_client(client_state *c, const char *fmt, ...) VTPMCA_PRINTF(2, 3);
static void fail_client(client_state *c, const char *fmt, ...)
{
    if (c->failure[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof(c->failure), fmt, ap);
    va_end(ap);
}

/* A client for the daemon's current address. */
static ledger_client *connect_client(client_state *c, unsigned *generation)
{
    pthread_mutex_lock(&g.lock);
    char url[64];
    snprintf(url, sizeof(url), "%s", g.url);
    *generation = g.generation;
    pthread_mutex_unlock(&g.lock);
    ledger_client *lc = NULL;
    vtpmca_diag diag = {{0}};
    if (ledger_client_new(url, c->id, c->pk, c->pk_len,
                          c->index % 2 ? LEDGER_FORMAT_CBOR : LEDGER_FORMAT_JSON, 2000, &lc,
                          &diag) != VTPMCA_OK)
        fail_client(c, "client: %s", diag.msg);
    return lc;
}

/* After a failure: waits for the next daemon, then checks (by a verified query) that the
 * ledger holds the last acknowledged counter or the one in flight. */
static ledger_client *recover(client_state *c, ledger_client *lc, unsigned *generation,
                              const uint8_t in_flight[16])
{
    ledger_client_free(lc);
    for (;;) {
        if (atomic_load(&g.stop))
            return NULL;
        pthread_mutex_lock(&g.lock);
        bool restarted = g.generation != *generation;
        pthread_mutex_unlock(&g.lock);
        if (!restarted) {
            runner_sleep_ms(5);
            continue;
        }
        lc = connect_client(c, generation);
        if (lc == NULL)
            return NULL;
        ledger_msg answer;
        vtpmca_diag diag = {{0}};
        vtpmca_err err = ledger_client_query(lc, &answer, &diag);
        if (err == VTPMCA_ERR_NETWORK) {
            ledger_client_free(lc); /* killed again already: wait for the next one */
            continue;
        }
        c->recoveries++;
        if (err == VTPMCA_ERR_NOT_FOUND && c->acked == 0)
            return lc; /* nothing was ever acknowledged */
        if (err != VTPMCA_OK) {
            fail_client(c, "query after restart: %s (%s)", diag.msg, vtpmca_err_name(err));
            return lc;
        }
        bool at_acked = c->acked > 0 && memcmp(answer.counter, c->last_acked, 16) == 0;
        bool at_in_flight = memcmp(answer.counter, in_flight, 16) == 0;
        if (!at_acked && !at_in_flight) {
            char have[33], want[33];
            ledger_counter_format_hex(answer.counter, have, sizeof(have));
            ledger_counter_format_hex(c->last_acked, want, sizeof(want));
            fail_client(c, "after a crash the ledger holds %s; the last acknowledged was %s", have,
                        want);
        }
        uint8_t root[20];
        root_of(c, answer.counter, root);
        if (answer.root_len != sizeof(root) || memcmp(answer.root, root, sizeof(root)) != 0)
            fail_client(c, "after a crash the ledger holds another root");
        return lc;
    }
}

static void *client_main(void *arg)
{
    client_state *c = arg;
    unsigned generation = 0;
    ledger_client *lc = connect_client(c, &generation);
    uint8_t next[16];
    if (RAND_bytes(next, sizeof(next)) != 1)
        fail_client(c, "no random counter");
    while (lc != NULL && !atomic_load(&g.stop) && c->failure[0] == '\0') {
        uint8_t root[20];
        root_of(c, next, root);
        ledger_msg answer;
        vtpmca_diag diag = {{0}};
        vtpmca_err err = ledger_client_advance(lc, next, root, sizeof(root), &answer, &diag);
        if (err == VTPMCA_OK) {
            memcpy(c->last_acked, next, 16);
            c->acked++;
            ledger_counter_increment(next);
        } else if (err == VTPMCA_ERR_NETWORK) {
            c->network_errors++;
            lc = recover(c, lc, &generation, next); /* then the same advance is retried */
        } else {
            fail_client(c, "advance: %s (%s, result %s)", diag.msg, vtpmca_err_name(err),
                        answer.result);
        }
    }
    ledger_client_free(lc);
    return NULL;
}

static vtpmca_err start_daemon(vtpmcad_proc *d, int round)
{
    char name[32];
    snprintf(name, sizeof(name), "vtpmcad-%d", round);
    const char *extra[] = {"--ledger-workers", "16", "--log-level", "warn", NULL};
    vtpmca_diag diag = {{0}};
    vtpmca_err err = vtpmcad_start(d, g.env.dir, name, g.env.dir, extra, &diag);
    if (err != VTPMCA_OK) {
        fprintf(stderr, "vtpmcad: %s\n", diag.msg);
        return err;
    }
    pthread_mutex_lock(&g.lock);
    snprintf(g.url, sizeof(g.url), "%s", d->url);
    g.generation++;
    pthread_mutex_unlock(&g.lock);
    return VTPMCA_OK;
}

static void kill_daemon(vtpmcad_proc *d)
{
    assert_int_equal(kill(d->pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    d->pid = 0;
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (keys_env_open(&g.env) != 0)
        return -1;
    for (int i = 0; i < CLIENTS; i++) {
        client_state *c = &g.clients[i];
        c->index = i;
        snprintf(c->id, sizeof(c->id), "crash-%d", i);
        enroll_request req = {
            .instance_id = c->id, .fleet = KEYS_FLEET, .mode = STORE_KEY_GENERATED, .actor = "t"};
        enroll_result res;
        store_instance inst;
        char context[ENROLLMENT_CONTEXT_MAX];
        vtpmca_diag diag = {{0}};
        if (enrollment_enroll(g.env.st, g.env.vault, &req, &res, &diag) != VTPMCA_OK ||
            store_instance_get(g.env.st, c->id, &inst, &diag) != VTPMCA_OK ||
            enrollment_key_context(STORE_KEY_GENERATED, c->id, context, &diag) != VTPMCA_OK ||
            keyvault_unwrap(g.env.vault, inst.wrapped_key, inst.wrapped_key_len, context, c->pk,
                            sizeof(c->pk), &c->pk_len, &diag) != VTPMCA_OK) {
            fprintf(stderr, "enroll: %s\n", diag.msg);
            return -1;
        }
        store_instance_free_fields(&inst);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    keys_env_close(&g.env);
    curl_global_cleanup();
    pthread_mutex_destroy(&g.lock);
    return 0;
}

static void test_sigkill_under_load_loses_no_acknowledged_advance(void **state)
{
    (void)state;
    double started = runner_now_s();
    vtpmcad_proc d;
    assert_int_equal(start_daemon(&d, 0), VTPMCA_OK);
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&g.clients[i].thread, NULL, client_main, &g.clients[i]), 0);
    uint64_t acked_before_kill = 0;
    int kills = 0;
    for (int round = 1; round <= KILLS && runner_now_s() - started < DEADLINE_S; round++) {
        unsigned gap = 0;
        RAND_bytes((uint8_t *)&gap, sizeof(gap));
        runner_sleep_ms(MIN_GAP_MS + (long)(gap % (MAX_GAP_MS - MIN_GAP_MS)));
        uint64_t acked = 0;
        for (int i = 0; i < CLIENTS; i++)
            acked += g.clients[i].acked;
        if (acked <= acked_before_kill)
            fail_msg("no advance was acknowledged between kills %d and %d", kills, kills + 1);
        acked_before_kill = acked;
        kill_daemon(&d);
        kills++;
        assert_int_equal(start_daemon(&d, round), VTPMCA_OK);
    }
    runner_sleep_ms(300); /* the clients recover and advance again */
    atomic_store(&g.stop, true);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(g.clients[i].thread, NULL);

    /* The final state: exactly each client's last acknowledged counter and root. */
    uint64_t total = 0, network_errors = 0, recoveries = 0;
    for (int i = 0; i < CLIENTS; i++) {
        client_state *c = &g.clients[i];
        if (c->failure[0] != '\0')
            fail_msg("client %d: %s", i, c->failure);
        assert_true(c->acked > 0);
        ledger_client *lc = NULL;
        assert_int_equal(
            ledger_client_new(d.url, c->id, c->pk, c->pk_len, LEDGER_FORMAT_JSON, 5000, &lc, NULL),
            VTPMCA_OK);
        ledger_msg answer;
        vtpmca_diag diag = {{0}};
        if (ledger_client_query(lc, &answer, &diag) != VTPMCA_OK)
            fail_msg("final query of %s: %s", c->id, diag.msg);
        assert_memory_equal(answer.counter, c->last_acked, 16);
        uint8_t root[20];
        root_of(c, answer.counter, root);
        assert_int_equal(answer.root_len, sizeof(root));
        assert_memory_equal(answer.root, root, sizeof(root));
        ledger_client_free(lc);
        total += c->acked;
        network_errors += c->network_errors;
        recoveries += c->recoveries;
    }
    /* Nothing was ever refused (a retried in-flight advance is a duplicate, not a fork). */
    store_audit_filter filter = {.action = "ledger_refused", .limit = 10};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(g.env.st, &filter, &events, &n, NULL), VTPMCA_OK);
    assert_int_equal(n, 0);
    free(events);
    assert_int_equal(vtpmcad_stop(&d), 0);
    double elapsed = runner_now_s() - started;
    printf("# %d SIGKILLs in %.1f s: %llu advances acknowledged by %d clients, %llu requests "
           "cut by a kill, %llu recoveries checked\n",
           kills, elapsed, (unsigned long long)total, CLIENTS, (unsigned long long)network_errors,
           (unsigned long long)recoveries);
    assert_true(kills >= 10);
    /* The kills hit requests in flight. */
    assert_true(network_errors >= (uint64_t)kills);
    assert_true(elapsed < 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_under_load_loses_no_acknowledged_advance),
    };
    return cmocka_run_group_tests_name("ledger daemon crash", tests, setup, teardown);
}
