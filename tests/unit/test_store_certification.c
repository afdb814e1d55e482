/* Unit tests for store_cert_record_certification (store/store_certs_sqlite.c through
 * store.c): one write transaction holds the EK continuity check, the re-enrollment grant it
 * uses up, the certificate rows and the audit row. On a real sqlite file: every continuity
 * (new, same, change granted, change refused), all-or-nothing on a conflict or a failing
 * describe, every argument check, durability before the call returns (a child process exits
 * right after it), and concurrent certifications of one instance that must not interleave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/store.h"

#define FLEET "certify-fleet"

static struct {
    char tmp[64];
    char db[128];
    store *st;
    unsigned counter;   /* keeps serials and key names unique per run */
    unsigned instances; /* enrolled so far */
} g;

static const uint8_t DER[] = {0x30, 0x03, 0x02, 0x01, 0x01};

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "store-certification") != 0)
        return -1;
    snprintf(g.db, sizeof(g.db), "%s/vtpmca.db", g.tmp);
    vtpmca_diag diag = {{0}};
    if (store_open(g.db, &g.st, &diag) != VTPMCA_OK ||
        store_fleet_create(g.st, FLEET, NULL, &diag) != VTPMCA_OK) {
        fprintf(stderr, "store: %s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(g.st);
    return ca_fixture_rmtree(g.tmp);
}

/* A freshly enrolled instance (grants need one); its id goes to id (64 bytes). */
static void new_instance(char id[64])
{
    store_instance inst;
    memset(&inst, 0, sizeof(inst));
    unsigned n = ++g.instances;
    snprintf(inst.id, sizeof(inst.id), "vm-%04u", n);
    snprintf(inst.fleet, sizeof(inst.fleet), "%s", FLEET);
    snprintf(inst.resource_path, sizeof(inst.resource_path), "repo/vm/%04u", n);
    inst.key_mode = STORE_KEY_WRAPPED;
    vtpmca_diag diag = {{0}};
    if (store_instance_put(g.st, &inst, &diag) != VTPMCA_OK)
        fail_msg("store_instance_put: %s", diag.msg);
    snprintf(id, 64, "%s", inst.id);
}

/* A valid record with a fresh serial for the instance, certifying key_name. */
static store_cert record(const char *instance, store_cert_kind kind, const char *key_name)
{
    store_cert c;
    memset(&c, 0, sizeof(c));
    snprintf(c.serial, sizeof(c.serial), "5%031x", ++g.counter);
    snprintf(c.instance_id, sizeof(c.instance_id), "%s", instance);
    c.kind = kind;
    snprintf(c.key_name, sizeof(c.key_name), "%s", key_name);
    c.format = STORE_CERT_X509;
    c.not_before = 1767225600;
    c.not_after = 253402300799;
    c.der = (uint8_t *)DER;
    c.der_len = sizeof(DER);
    return c;
}

/* What describe saw and how it should answer. */
typedef struct {
    const char *instance;
    unsigned calls;
    store_ek_continuity seen;
    vtpmca_err fail_with; /* VTPMCA_OK: describe succeeds */
    bool bad_action;      /* make a row the store must refuse */
} describe_ctx;

static const char *const CONTINUITY_NAMES[] = {"new", "same", "change_granted", "change_refused"};

static vtpmca_err describe(store_ek_continuity continuity, store_audit_event *event, void *ctx)
{
    describe_ctx *d = ctx;
    d->calls++;
    d->seen = continuity;
    if (d->fail_with != VTPMCA_OK)
        return d->fail_with;
    snprintf(event->actor, sizeof(event->actor), "unit-test");
    snprintf(event->action, sizeof(event->action), "%s",
             d->bad_action ? "Not An Action" : "certify");
    snprintf(event->instance_id, sizeof(event->instance_id), "%s", d->instance);
    snprintf(event->outcome, sizeof(event->outcome), "issued");
    snprintf(event->detail, sizeof(event->detail), "continuity %s", CONTINUITY_NAMES[continuity]);
    return VTPMCA_OK;
}

static store_certification certify_ok(const store_cert *certs, size_t n, describe_ctx *d)
{
    store_certification out;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = store_cert_record_certification(g.st, certs, n, describe, d, &out, &diag);
    if (err != VTPMCA_OK)
        fail_msg("store_cert_record_certification: %s", diag.msg);
    return out;
}

/* The audit rows of an instance with action "certify". */
static size_t audit_rows(store *st, const char *instance, store_audit_event **events)
{
    store_audit_filter f = {.instance_id = instance, .action = "certify", .limit = 100};
    size_t n = 0;
    vtpmca_diag diag = {{0}};
    store_audit_event *ev = NULL;
    if (store_audit_query(st, &f, &ev, &n, &diag) != VTPMCA_OK)
        fail_msg("store_audit_query: %s", diag.msg);
    if (events != NULL)
        *events = ev;
    else
        free(ev);
    return n;
}

static bool cert_exists(store *st, const char *serial)
{
    store_cert c;
    vtpmca_err err = store_cert_get(st, serial, &c, NULL);
    store_cert_free_fields(&c);
    assert_true(err == VTPMCA_OK || err == VTPMCA_ERR_NOT_FOUND);
    return err == VTPMCA_OK;
}

static bool take_grant(const char *instance)
{
    bool granted = false;
    assert_int_equal(store_instance_ek_reenroll_take(g.st, instance, &granted, NULL), VTPMCA_OK);
    return granted;
}

/* ---- the four continuities ---- */

static void test_new_same_changed(void **state)
{
    (void)state;
    char id[64];
    new_instance(id);
    describe_ctx d = {.instance = id};

    /* First certification: NEW, EK and IAK rows and one audit row. */
    store_cert first[2] = {record(id, STORE_CERT_EK, "000b1111"),
                           record(id, STORE_CERT_IAK, "000b2222")};
    store_certification out = certify_ok(first, 2, &d);
    assert_int_equal(out.continuity, STORE_EK_NEW);
    assert_string_equal(out.previous_serial, "");
    assert_int_equal(d.seen, STORE_EK_NEW);
    assert_true(cert_exists(g.st, first[0].serial));
    assert_true(cert_exists(g.st, first[1].serial));
    store_audit_event *events = NULL;
    assert_int_equal(audit_rows(g.st, id, &events), 1);
    assert_string_equal(events[0].detail, "continuity new");
    assert_string_equal(events[0].outcome, "issued");
    free(events);

    /* The same EK again: SAME, naming the previous certificate. */
    store_cert again = record(id, STORE_CERT_EK, "000b1111");
    out = certify_ok(&again, 1, &d);
    assert_int_equal(out.continuity, STORE_EK_SAME);
    assert_string_equal(out.previous_serial, first[0].serial);
    assert_true(cert_exists(g.st, again.serial));
    assert_int_equal(audit_rows(g.st, id, NULL), 2);

    /* Another EK without a grant: refused, nothing written, describe not asked. */
    store_cert other = record(id, STORE_CERT_EK, "000b3333");
    unsigned calls = d.calls;
    out = certify_ok(&other, 1, &d);
    assert_int_equal(out.continuity, STORE_EK_CHANGE_REFUSED);
    assert_string_equal(out.previous_serial, again.serial);
    assert_int_equal(d.calls, calls);
    assert_false(cert_exists(g.st, other.serial));
    assert_int_equal(audit_rows(g.st, id, NULL), 2);

    /* With a grant: recorded, and the grant is used up. */
    assert_int_equal(store_instance_ek_reenroll_grant(g.st, id, NULL), VTPMCA_OK);
    out = certify_ok(&other, 1, &d);
    assert_int_equal(out.continuity, STORE_EK_CHANGE_GRANTED);
    assert_int_equal(d.seen, STORE_EK_CHANGE_GRANTED);
    assert_string_equal(out.previous_serial, again.serial);
    assert_true(cert_exists(g.st, other.serial));
    assert_false(take_grant(id));
    assert_int_equal(audit_rows(g.st, id, &events), 3);
    assert_string_equal(events[2].detail, "continuity change_granted");
    free(events);

    /* The changed EK is now the one to continue. */
    store_cert next = record(id, STORE_CERT_EK, "000b3333");
    assert_int_equal(certify_ok(&next, 1, &d).continuity, STORE_EK_SAME);
    store_cert old = record(id, STORE_CERT_EK, "000b1111");
    assert_int_equal(certify_ok(&old, 1, &d).continuity, STORE_EK_CHANGE_REFUSED);
}

/* A revoked EK certificate still fixes the instance's EK. */
static void test_revoked_counts(void **state)
{
    (void)state;
    char id[64];
    new_instance(id);
    describe_ctx d = {.instance = id};
    store_cert ek = record(id, STORE_CERT_EK, "000b4444");
    certify_ok(&ek, 1, &d);
    assert_int_equal(store_cert_revoke(g.st, ek.serial, 0, "superseded", NULL), VTPMCA_OK);
    store_cert other = record(id, STORE_CERT_EK, "000b5555");
    assert_int_equal(certify_ok(&other, 1, &d).continuity, STORE_EK_CHANGE_REFUSED);
    /* IAK certificates do not count as the EK. */
    char id2[64];
    new_instance(id2);
    describe_ctx d2 = {.instance = id2};
    store_cert iak = record(id2, STORE_CERT_IAK, "000b6666");
    assert_int_equal(store_cert_put(g.st, &iak, NULL), VTPMCA_OK);
    store_cert ek2 = record(id2, STORE_CERT_EK, "000b7777");
    assert_int_equal(certify_ok(&ek2, 1, &d2).continuity, STORE_EK_NEW);
}

/* ---- all or nothing ---- */

static void test_conflict_writes_nothing(void **state)
{
    (void)state;
    char id[64];
    new_instance(id);
    describe_ctx d = {.instance = id};
    store_cert ek = record(id, STORE_CERT_EK, "000b8888");
    certify_ok(&ek, 1, &d);
    assert_int_equal(store_instance_ek_reenroll_grant(g.st, id, NULL), VTPMCA_OK);

    /* The IAK's serial exists already: the EK row, the audit row and the grant's use all
     * roll back with it. */
    store_cert pair[2] = {record(id, STORE_CERT_EK, "000b9999"),
                          record(id, STORE_CERT_IAK, "000baaaa")};
    snprintf(pair[1].serial, sizeof(pair[1].serial), "%s", ek.serial);
    store_certification out;
    vtpmca_diag diag = {{0}};
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_non_null(strstr(diag.msg, ek.serial));
    assert_int_equal(out.continuity, STORE_EK_NEW); /* cleared */
    assert_false(cert_exists(g.st, pair[0].serial));
    assert_int_equal(audit_rows(g.st, id, NULL), 1);
    assert_true(take_grant(id)); /* still there */
}

static void test_describe_failures_write_nothing(void **state)
{
    (void)state;
    char id[64];
    new_instance(id);
    store_cert ek = record(id, STORE_CERT_EK, "000bbbbb");
    store_certification out;
    vtpmca_diag diag = {{0}};

    describe_ctx failing = {.instance = id, .fail_with = VTPMCA_ERR_INTERNAL};
    assert_int_equal(store_cert_record_certification(g.st, &ek, 1, describe, &failing, &out, &diag),
                     VTPMCA_ERR_INTERNAL);
    assert_non_null(strstr(diag.msg, "audit row"));
    assert_true(failing.calls >= 1);
    assert_false(cert_exists(g.st, ek.serial));

    describe_ctx bad = {.instance = id, .bad_action = true};
    assert_int_equal(store_cert_record_certification(g.st, &ek, 1, describe, &bad, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "action"));
    assert_false(cert_exists(g.st, ek.serial));
    assert_int_equal(audit_rows(g.st, id, NULL), 0);

    /* And the same certification then goes through. */
    describe_ctx good = {.instance = id};
    assert_int_equal(certify_ok(&ek, 1, &good).continuity, STORE_EK_NEW);
}

static void test_refusals(void **state)
{
    (void)state;
    char id[64], id2[64];
    new_instance(id);
    new_instance(id2);
    describe_ctx d = {.instance = id};
    store_certification out;
    vtpmca_diag diag = {{0}};
    store_cert ek = record(id, STORE_CERT_EK, "000bcccc");
    store_cert iak = record(id, STORE_CERT_IAK, "000bdddd");
    store_cert three[3] = {ek, iak, record(id, STORE_CERT_IAK, "000beeee")};
    struct {
        const store_cert *certs;
        size_t n;
        store_certification_describe_fn fn;
        store_certification *out;
        const char *part;
    } cases[] = {
        {NULL, 1, describe, &out, "missing"}, {&ek, 1, NULL, &out, "missing"},
        {&ek, 1, describe, NULL, "missing"},  {three, 0, describe, &out, "1 or 2"},
        {three, 3, describe, &out, "1 or 2"}, {&iak, 1, describe, &out, "an EK certificate, then"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        diag.msg[0] = '\0';
        assert_int_equal(store_cert_record_certification(g.st, cases[i].certs, cases[i].n,
                                                         cases[i].fn, &d, cases[i].out, &diag),
                         VTPMCA_ERR_INVALID_ARG);
        assert_non_null(strstr(diag.msg, cases[i].part));
    }
    assert_int_equal(store_cert_record_certification(NULL, &ek, 1, describe, &d, &out, NULL),
                     VTPMCA_ERR_INVALID_ARG);

    store_cert pair[2] = {ek, ek};
    pair[1].kind = STORE_CERT_EK;
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "then an IAK"));
    pair[1] = iak;
    snprintf(pair[1].instance_id, sizeof(pair[1].instance_id), "%s", id2);
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "one instance"));
    pair[1] = iak;
    snprintf(pair[1].serial, sizeof(pair[1].serial), "%s", ek.serial);
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "distinct serials"));
    /* Each certificate is checked as store_cert_put checks it. */
    pair[1] = iak;
    pair[1].not_after = pair[1].not_before - 1;
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "notAfter"));
    pair[1] = iak;
    snprintf(pair[1].key_name, sizeof(pair[1].key_name), "not hex");
    assert_int_equal(store_cert_record_certification(g.st, pair, 2, describe, &d, &out, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    assert_int_equal(d.calls, 0);
    assert_false(cert_exists(g.st, ek.serial));
    assert_false(cert_exists(g.st, iak.serial));
}

/* ---- durability and concurrency ---- */

/* A child certifies and exits at once, without closing the store: what the call reported
 * must be on disk. */
static void test_durable_on_return(void **state)
{
    (void)state;
    char id[64];
    new_instance(id);
    store_cert ek = record(id, STORE_CERT_EK, "000bffff");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store *child = NULL;
        describe_ctx d = {.instance = id};
        store_certification out;
        bool ok =
            store_open(g.db, &child, NULL) == VTPMCA_OK &&
            store_cert_record_certification(child, &ek, 1, describe, &d, &out, NULL) == VTPMCA_OK;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    store *fresh = NULL;
    assert_int_equal(store_open(g.db, &fresh, NULL), VTPMCA_OK);
    assert_true(cert_exists(fresh, ek.serial));
    assert_int_equal(audit_rows(fresh, id, NULL), 1);
    store_close(fresh);
}

enum { RACERS = 4, ROUNDS = 20 };

typedef struct {
    const char *instance;
    store_cert cert;
    store_ek_continuity continuity;
    vtpmca_err err;
    pthread_barrier_t *start;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    describe_ctx d = {.instance = r->instance};
    store_certification out;
    pthread_barrier_wait(r->start);
    r->err = store_cert_record_certification(g.st, &r->cert, 1, describe, &d, &out, NULL);
    r->continuity = out.continuity;
    return NULL;
}

/* Certifications of one instance with different EKs at the same time: the check and the
 * records never interleave, so exactly one EK wins each new instance. */
static void test_concurrent_one_instance(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        char id[64];
        new_instance(id);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, RACERS);
        racer racers[RACERS];
        pthread_t threads[RACERS];
        for (int i = 0; i < RACERS; i++) {
            char key[16];
            snprintf(key, sizeof(key), "000b%04x", i);
            racers[i] =
                (racer){id, record(id, STORE_CERT_EK, key), STORE_EK_NEW, VTPMCA_OK, &start};
            assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
        }
        int recorded = 0, refused = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(threads[i], NULL);
            assert_int_equal(racers[i].err, VTPMCA_OK);
            if (racers[i].continuity == STORE_EK_NEW) {
                recorded++;
                assert_true(cert_exists(g.st, racers[i].cert.serial));
            } else {
                assert_int_equal(racers[i].continuity, STORE_EK_CHANGE_REFUSED);
                assert_false(cert_exists(g.st, racers[i].cert.serial));
                refused++;
            }
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(recorded, 1);
        assert_int_equal(refused, RACERS - 1);
        assert_int_equal(audit_rows(g.st, id, NULL), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_same_changed),
        cmocka_unit_test(test_revoked_counts),
        cmocka_unit_test(test_conflict_writes_nothing),
        cmocka_unit_test(test_describe_failures_write_nothing),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_durable_on_return),
        cmocka_unit_test(test_concurrent_one_instance),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
