/* End-to-end tests of the reference SVSM client against the real daemon: `svsm-sim` runs as
 * a subprocess against vtpmcad on 127.0.0.1. Each daemon's database is prepared before it
 * starts through the store and enrollment APIs: the simulated platform's VCEK (made by
 * `svsm-sim platform-init` from a test root the daemon trusts via --extra-roots-dir), a fleet
 * whose policy lists the good measurement, and enrolled instances. A second daemon with its
 * own KBS key stands for another server identity.
 * What is checked: the first boot makes the vTPM and the second reopens it with the same EK;
 * the released key is the enrolled one (the state file is opened here with a key derived
 * from the vault's copy); refused boots (wrong measurement, another KBS key, another
 * instance's state file, unknown resource, no server) exit 1 and write nothing; the Trustee
 * flavour with P-384 and RSA keys; wrapped-key mode; usage errors exit 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "../support/vtpmcad_runner.h"
#include "../support/svsm_sim_runner.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_vcek.h"
#include "vtpmca/store.h"
#include "vtpmca/svsm_state.h"

#define FLEET "sim"
#define CHIP_ID                                                                                    \
    "5151515151515151515151515151515151515151515151515151515151515151"                             \
    "5151515151515151515151515151515151515151515151515151515151515151"

typedef struct {
    char path[STORE_RESOURCE_PATH_MAX + 1];
    uint8_t key[ENROLLMENT_KEY_LEN]; /* the persistence key, from the vault */
} enrolled;

static struct {
    char dir[64];
    char roots[128], platform[128];
    char state_a[128], state_b[128];
    char good[97], bad[97];
    enrolled vm1, vm2, vm3; /* generated mode on daemon A (vm1's path also on B) */
    enrolled wrapped;       /* wrapped-key mode on daemon A */
    char wrapped_blob_file[160];
    vtpmcad_proc a, b;
    unsigned next_dir;
} fx;

/* ---- helpers ---- */

static void fresh_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s-%u", fx.dir, name, fx.next_dir++);
}

static void state_file(const char *state_dir, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", state_dir, name);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Contents of the state dir's two files (NULL when absent), to prove nothing changed. */
typedef struct {
    uint8_t *state, *kbs_key;
    size_t state_len, kbs_key_len;
} snapshot;

static snapshot take_snapshot(const char *state_dir)
{
    snapshot s = {0};
    char path[256];
    state_file(state_dir, "vtpm.state", path, sizeof(path));
    if (exists(path))
        assert_int_equal(vt_file_read(path, 1 << 24, &s.state, &s.state_len, NULL), VTPMCA_OK);
    state_file(state_dir, "kbs-key.pem", path, sizeof(path));
    if (exists(path))
        assert_int_equal(vt_file_read(path, 1 << 16, &s.kbs_key, &s.kbs_key_len, NULL), VTPMCA_OK);
    return s;
}

static void assert_unchanged(const char *state_dir, snapshot *before)
{
    snapshot now = take_snapshot(state_dir);
    assert_int_equal(now.state_len, before->state_len);
    assert_int_equal(now.kbs_key_len, before->kbs_key_len);
    assert_true((now.state == NULL) == (before->state == NULL));
    assert_true((now.kbs_key == NULL) == (before->kbs_key == NULL));
    if (now.state != NULL)
        assert_memory_equal(now.state, before->state, now.state_len);
    if (now.kbs_key != NULL)
        assert_memory_equal(now.kbs_key, before->kbs_key, now.kbs_key_len);
    free(now.state);
    free(now.kbs_key);
    free(before->state);
    free(before->kbs_key);
}

/* svsm-sim boot against `server` with the common options and `extra` (NULL-terminated). */
static svsm_sim_run boot(const vtpmcad_proc *server, const char *state_dir, const char *resource,
                         const char *measurement, const char *const *extra)
{
    svsm_sim_boot_opts opts = {server->url, fx.platform, state_dir, resource, measurement};
    return svsm_sim_boot(&opts, extra);
}

static void expect_refused(svsm_sim_run *r, const char *step, const char *reason)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "REFUSED at %s:", step);
    if (r->code != 1 || strstr(r->err, needle) == NULL ||
        (reason != NULL && strstr(r->err, reason) == NULL))
        fail_msg("expected exit 1 \"%s\" (%s), got %d\nstdout:\n%s\nstderr:\n%s", needle,
                 reason ? reason : "", r->code, r->out, r->err);
    assert_null(strstr(r->out, "boot OK"));
    snprintf(needle, sizeof(needle), "boot REFUSED at %s\n", step);
    assert_non_null(strstr(r->out, needle));
}

/* The hex value that follows `label` in text (e.g. "EK RSA-2048 sha256 "). */
static void value_after(const char *text, const char *label, size_t hex_len, char *out)
{
    const char *at = strstr(text, label);
    if (at == NULL)
        fail_msg("no \"%s\" in:\n%s", label, text);
    at += strlen(label);
    assert_true(strspn(at, "0123456789abcdef") >= hex_len);
    memcpy(out, at, hex_len);
    out[hex_len] = '\0';
}

/* Opens a state file as the SVSM would, with a key derived from the vault's copy of the
 * persistence key: proves the client received exactly the enrolled key. */
static void open_state_with(const char *state_dir, const uint8_t key[ENROLLMENT_KEY_LEN],
                            char ek_hex[65], char counter_hex[33])
{
    uint8_t file_key[SVSM_STATE_KEY_LEN];
    assert_int_equal(svsm_state_derive_key(key, ENROLLMENT_KEY_LEN, file_key, NULL), VTPMCA_OK);
    char path[256];
    state_file(state_dir, "vtpm.state", path, sizeof(path));
    svsm_state_content content;
    svsm_state_version version;
    vtpmca_diag diag = {{0}};
    if (svsm_state_read(path, file_key, &content, &version, &diag) != VTPMCA_OK)
        fail_msg("state %s: %s", path, diag.msg);
    assert_true(content.tpm_state_len > 512); /* a libtpms permanent state */
    assert_int_equal(vt_hex_encode(content.ek_fingerprint, 32, ek_hex, 65), VTPMCA_OK);
    assert_int_equal(vt_hex_encode(version.counter, 16, counter_hex, 33), VTPMCA_OK);
    svsm_state_content_clear(&content);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* counter_hex + 1 modulo 2^128, as 32 hex digits. */
static void counter_plus_one(const char *counter_hex, char out[33])
{
    uint8_t c[16];
    assert_int_equal(vt_hex_decode_fixed(counter_hex, c, 16), VTPMCA_OK);
    for (int i = 15; i >= 0 && ++c[i] == 0; i--)
        ;
    assert_int_equal(vt_hex_encode(c, 16, out, 33), VTPMCA_OK);
}

static EVP_PKEY *read_pubkey_pem(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(path, 1 << 16, &data, &len, NULL), VTPMCA_OK);
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    free(data);
    assert_non_null(key);
    return key;
}

/* The daemon's KBS key (private PEM in its state dir), as a public PEM file at out_path. */
static EVP_PKEY *daemon_kbs_key(const char *state_dir, const char *out_path)
{
    char path[256];
    state_file(state_dir, "kbs-key.pem", path, sizeof(path));
    EVP_PKEY *key = NULL;
    vtpmca_diag diag = {{0}};
    if (kbs_key_load(path, &key, &diag) != VTPMCA_OK)
        fail_msg("daemon KBS key %s: %s", path, diag.msg);
    if (out_path != NULL) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *pem = NULL;
        assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
        long len = BIO_get_mem_data(bio, &pem);
        assert_int_equal(vt_file_write_atomic(out_path, pem, (size_t)len, 0644, NULL), VTPMCA_OK);
        BIO_free(bio);
    }
    return key;
}

/* ---- fixture ---- */

static void enroll(store *st, const keyvault *vault, const char *id, const char *path,
                   store_key_mode mode, enrolled *out)
{
    enroll_request req = {
        .instance_id = id, .fleet = FLEET, .resource_path = path, .mode = mode, .actor = "test"};
    enroll_result res;
    vtpmca_diag diag = {{0}};
    if (enrollment_enroll(st, vault, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("enroll %s: %s", id, diag.msg);
    if (out == NULL)
        return;
    snprintf(out->path, sizeof(out->path), "%s", res.resource_path);
    if (mode != STORE_KEY_GENERATED)
        return;
    store_instance inst;
    assert_int_equal(store_instance_get(st, id, &inst, NULL), VTPMCA_OK);
    char context[ENROLLMENT_CONTEXT_MAX];
    assert_int_equal(enrollment_key_context(STORE_KEY_GENERATED, id, context, NULL), VTPMCA_OK);
    uint8_t key[KEYVAULT_KEY_MAX];
    size_t len = 0;
    assert_int_equal(keyvault_unwrap(vault, inst.wrapped_key, inst.wrapped_key_len, context, key,
                                     sizeof(key), &len, NULL),
                     VTPMCA_OK);
    assert_int_equal(len, ENROLLMENT_KEY_LEN);
    memcpy(out->key, key, ENROLLMENT_KEY_LEN);
    store_instance_free_fields(&inst);
}

/* A daemon's database and master key: the platform's VCEK, the fleet and its policy. */
static void prepare_state(const char *state_dir, store **st_out, keyvault **vault_out)
{
    vtpmca_diag diag = {{0}};
    char path[256];
    assert_int_equal(vt_mkdir_p(state_dir, 0700, &diag), VTPMCA_OK);
    state_file(state_dir, "vtpmca.db", path, sizeof(path));
    assert_int_equal(store_open(path, st_out, &diag), VTPMCA_OK);
    state_file(state_dir, "master.key", path, sizeof(path));
    assert_int_equal(keyvault_open(path, true, vault_out, &diag), VTPMCA_OK);

    /* What `vtpmca snp import-vcek` stores for the platform's VCEK. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    snp_vcek *vcek = NULL;
    snprintf(path, sizeof(path), "%s/vcek.der", fx.platform);
    assert_int_equal(vt_file_read(path, 65536, &der, &der_len, &diag), VTPMCA_OK);
    assert_int_equal(snp_vcek_parse(der, der_len, &vcek, &diag), VTPMCA_OK);
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    assert_int_equal(store_vcek_put(*st_out, "Milan", "vcek", info->hwid, info->tcb_raw, der,
                                    der_len, "import", &diag),
                     VTPMCA_OK);
    snp_vcek_free(vcek);
    free(der);

    assert_int_equal(store_fleet_create(*st_out, FLEET, "svsm-sim boots", &diag), VTPMCA_OK);
    char policy[256];
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"],\"allow_debug\":false}", fx.good);
    assert_int_equal(store_policy_put(*st_out, FLEET, policy, "test", NULL, &diag), VTPMCA_OK);
}

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "svsm-boot") != 0)
        return -1;
    snprintf(fx.roots, sizeof(fx.roots), "%s/test-root", fx.dir);
    snprintf(fx.platform, sizeof(fx.platform), "%s/platform", fx.dir);
    snprintf(fx.state_a, sizeof(fx.state_a), "%s/server-a", fx.dir);
    snprintf(fx.state_b, sizeof(fx.state_b), "%s/server-b", fx.dir);
    svsm_sim_fill_measurement(fx.good, "5a");
    svsm_sim_fill_measurement(fx.bad, "ee");
    vtpmca_diag diag = {{0}};
    if (svsm_sim_save_test_root(fx.roots) != 0 ||
        svsm_sim_platform_init(fx.platform, fx.roots, CHIP_ID) != 0)
        return -1;

    store *st = NULL;
    keyvault *vault = NULL;
    prepare_state(fx.state_a, &st, &vault);
    enroll(st, vault, "vm1", NULL, STORE_KEY_GENERATED, &fx.vm1);
    enroll(st, vault, "vm2", NULL, STORE_KEY_GENERATED, &fx.vm2);
    enroll(st, vault, "vm3", NULL, STORE_KEY_GENERATED, &fx.vm3);
    enroll(st, vault, "vm-wrapped", "demo/wrapped/vm-wrapped", STORE_KEY_WRAPPED, &fx.wrapped);
    /* Wrapped-key mode: the admin's own key, wrapped by the service for the instance. */
    assert_int_equal(RAND_bytes(fx.wrapped.key, sizeof(fx.wrapped.key)), 1);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    char *blob_b64 = NULL;
    assert_int_equal(enrollment_wrap_key(vault, "vm-wrapped", fx.wrapped.key,
                                         sizeof(fx.wrapped.key), &blob, &blob_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(vt_b64_encode_alloc(blob, blob_len, VT_B64_STD, &blob_b64), VTPMCA_OK);
    snprintf(fx.wrapped_blob_file, sizeof(fx.wrapped_blob_file), "%s/wrapped.b64", fx.dir);
    assert_int_equal(
        vt_file_write_atomic(fx.wrapped_blob_file, blob_b64, strlen(blob_b64), 0600, &diag),
        VTPMCA_OK);
    free(blob);
    free(blob_b64);
    keyvault_free(vault);
    store_close(st);

    /* Server B: another identity (its own KBS and master keys) serving vm1's path. */
    prepare_state(fx.state_b, &st, &vault);
    enroll(st, vault, "vm1", fx.vm1.path, STORE_KEY_GENERATED, NULL);
    keyvault_free(vault);
    store_close(st);

    const char *trust[] = {"--extra-roots-dir", fx.roots, NULL};
    if (vtpmcad_start(&fx.a, fx.dir, "server-a", fx.state_a, trust, &diag) != VTPMCA_OK ||
        vtpmcad_start(&fx.b, fx.dir, "server-b", fx.state_b, trust, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int a = vtpmcad_stop(&fx.a), b = vtpmcad_stop(&fx.b);
    int rm = ca_fixture_rmtree(fx.dir);
    return a == 0 && b == 0 && rm == 0 ? 0 : -1;
}

/* ---- tests ---- */

static char g_vm1_dir[192];
static char g_vm1_ek[65];

static void test_first_boot_creates_the_vtpm(void **state)
{
    (void)state;
    fresh_dir(g_vm1_dir, sizeof(g_vm1_dir), "vm1");
    svsm_sim_run r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.good, NULL);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "manufactured a new vTPM"));
    assert_non_null(strstr(r.out, "REPORT_DATA svsm"));
    assert_non_null(strstr(r.out, "ephemeral P-521 key"));
    assert_non_null(strstr(r.out, "first use"));
    value_after(r.out, "EK RSA-2048 sha256 ", 64, g_vm1_ek);
    char printed_counter[33];
    value_after(r.out, "update counter ", 32, printed_counter);

    /* The state opens with the enrolled key: the client got exactly that key. */
    char ek[65], counter[33];
    open_state_with(g_vm1_dir, fx.vm1.key, ek, counter);
    assert_string_equal(ek, g_vm1_ek);
    assert_string_equal(counter, printed_counter);

    /* The remembered KBS key is server A's. */
    char path[256];
    state_file(g_vm1_dir, "kbs-key.pem", path, sizeof(path));
    EVP_PKEY *remembered = read_pubkey_pem(path);
    EVP_PKEY *server_key = daemon_kbs_key(fx.state_a, NULL);
    assert_int_equal(EVP_PKEY_eq(remembered, server_key), 1);
    EVP_PKEY_free(remembered);
    EVP_PKEY_free(server_key);
    struct stat st;
    assert_int_equal(stat(g_vm1_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    svsm_sim_run_free(&r);
}

static void test_second_boot_reopens_with_the_same_ek(void **state)
{
    (void)state;
    char ek_before[65], counter_before[33], expected_counter[33];
    open_state_with(g_vm1_dir, fx.vm1.key, ek_before, counter_before);
    svsm_sim_run r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.good, NULL);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "opened"));
    assert_non_null(strstr(r.out, "same as the remembered KBS key"));
    char ek[65];
    value_after(r.out, "EK RSA-2048 sha256 ", 64, ek);
    assert_string_equal(ek, g_vm1_ek);
    assert_non_null(strstr(r.out, "(same as recorded)"));
    char stored[33], updated[33];
    value_after(r.out, "stored version counter ", 32, stored);
    value_after(r.out, "update counter ", 32, updated);
    assert_string_equal(stored, counter_before);
    counter_plus_one(counter_before, expected_counter);
    assert_string_equal(updated, expected_counter);
    /* The file now holds the next version, still with the same EK. */
    char ek_after[65], counter_after[33];
    open_state_with(g_vm1_dir, fx.vm1.key, ek_after, counter_after);
    assert_string_equal(ek_after, g_vm1_ek);
    assert_string_equal(counter_after, expected_counter);
    svsm_sim_run_free(&r);
}

static void test_wrong_measurement_is_refused(void **state)
{
    (void)state;
    snapshot before = take_snapshot(g_vm1_dir);
    svsm_sim_run r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.bad, NULL);
    expect_refused(&r, "resource", "HTTP 403");
    assert_unchanged(g_vm1_dir, &before);
    svsm_sim_run_free(&r);

    /* A first boot that is refused creates nothing at all. */
    char dir[192];
    fresh_dir(dir, sizeof(dir), "refused");
    r = boot(&fx.a, dir, fx.vm2.path, fx.bad, NULL);
    expect_refused(&r, "resource", "HTTP 403");
    assert_false(exists(dir));
    svsm_sim_run_free(&r);
}

static void test_other_server_identity_is_refused(void **state)
{
    (void)state;
    /* Server B releases a key for vm1's path, signed with its own KBS key. */
    snapshot before = take_snapshot(g_vm1_dir);
    svsm_sim_run r = boot(&fx.b, g_vm1_dir, fx.vm1.path, fx.good, NULL);
    expect_refused(&r, "KBS binding", "different KBS key");
    assert_unchanged(g_vm1_dir, &before);
    svsm_sim_run_free(&r);

    /* A pinned KBS key (server A's) refuses server B on a first boot too ... */
    char pinned[256], dir[192];
    snprintf(pinned, sizeof(pinned), "%s/server-a-kbs.pub.pem", fx.dir);
    EVP_PKEY_free(daemon_kbs_key(fx.state_a, pinned));
    fresh_dir(dir, sizeof(dir), "pinned");
    const char *pin[] = {"--kbs-key", pinned, NULL};
    r = boot(&fx.b, dir, fx.vm1.path, fx.good, pin);
    expect_refused(&r, "KBS binding", "different KBS key");
    assert_false(exists(dir));
    svsm_sim_run_free(&r);

    /* ... and a pin that disagrees with the remembered key is refused before any request. */
    char pinned_b[256];
    snprintf(pinned_b, sizeof(pinned_b), "%s/server-b-kbs.pub.pem", fx.dir);
    EVP_PKEY_free(daemon_kbs_key(fx.state_b, pinned_b));
    const char *pin_b[] = {"--kbs-key", pinned_b, NULL};
    before = take_snapshot(g_vm1_dir);
    r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.good, pin_b);
    expect_refused(&r, "setup", "differs from the KBS key remembered");
    assert_unchanged(g_vm1_dir, &before);
    svsm_sim_run_free(&r);

    /* With server A's key pinned, server A is accepted. */
    r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.good, pin);
    svsm_sim_expect_boot_ok(&r);
    svsm_sim_run_free(&r);
}

static void test_trustee_flavour_p384(void **state)
{
    (void)state;
    char dir[192];
    fresh_dir(dir, sizeof(dir), "vm2");
    const char *trustee[] = {"--flavour", "trustee", "--tee-key", "p384", NULL};
    svsm_sim_run r = boot(&fx.a, dir, fx.vm2.path, fx.good, trustee);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "REPORT_DATA trustee"));
    assert_non_null(strstr(r.out, "ephemeral P-384 key"));
    assert_non_null(strstr(r.out, "manufactured a new vTPM"));
    char ek[65], counter[33], printed[65];
    value_after(r.out, "EK RSA-2048 sha256 ", 64, printed);
    open_state_with(dir, fx.vm2.key, ek, counter);
    assert_string_equal(ek, printed);
    assert_string_not_equal(ek, g_vm1_ek); /* another vTPM, another EK */
    svsm_sim_run_free(&r);

    /* The trustee flavour reopens it too (report version 5 this time). */
    const char *again[] = {"--flavour", "trustee", "--report-version", "5", NULL};
    r = boot(&fx.a, dir, fx.vm2.path, fx.good, again);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "(same as recorded)"));
    svsm_sim_run_free(&r);
}

static void test_copied_state_of_another_instance_fails_to_open(void **state)
{
    (void)state;
    /* vm1's state file, copied into a directory vm3 boots from: vm3's key cannot open it. */
    char dir[192], src[256], dst[256];
    fresh_dir(dir, sizeof(dir), "copied");
    assert_int_equal(vt_mkdir_p(dir, 0700, NULL), VTPMCA_OK);
    state_file(g_vm1_dir, "vtpm.state", src, sizeof(src));
    state_file(dir, "vtpm.state", dst, sizeof(dst));
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(src, 1 << 24, &data, &len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(dst, data, len, 0600, NULL), VTPMCA_OK);
    free(data);
    snapshot before = take_snapshot(dir);
    svsm_sim_run r = boot(&fx.a, dir, fx.vm3.path, fx.good, NULL);
    expect_refused(&r, "vTPM", "wrong persistence key or modified file");
    assert_unchanged(dir, &before);
    svsm_sim_run_free(&r);
}

static void test_tampered_state_is_refused(void **state)
{
    (void)state;
    char dir[192], path[256];
    fresh_dir(dir, sizeof(dir), "vm3");
    svsm_sim_run r = boot(&fx.a, dir, fx.vm3.path, fx.good, NULL);
    svsm_sim_expect_boot_ok(&r);
    svsm_sim_run_free(&r);
    state_file(dir, "vtpm.state", path, sizeof(path));
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vt_file_read(path, 1 << 24, &data, &len, NULL), VTPMCA_OK);
    data[len / 2] ^= 0x01;
    assert_int_equal(vt_file_write_atomic(path, data, len, 0600, NULL), VTPMCA_OK);
    free(data);
    snapshot before = take_snapshot(dir);
    r = boot(&fx.a, dir, fx.vm3.path, fx.good, NULL);
    expect_refused(&r, "vTPM", "modified file");
    assert_unchanged(dir, &before);
    svsm_sim_run_free(&r);
}

static void test_wrapped_key_mode(void **state)
{
    (void)state;
    char dir[192];
    fresh_dir(dir, sizeof(dir), "wrapped");
    /* Without the blob the service has nothing to release. */
    svsm_sim_run r = boot(&fx.a, dir, fx.wrapped.path, fx.good, NULL);
    expect_refused(&r, "resource", NULL);
    assert_false(exists(dir));
    svsm_sim_run_free(&r);

    const char *wrapped[] = {"--wrapped-key", fx.wrapped_blob_file, NULL};
    r = boot(&fx.a, dir, fx.wrapped.path, fx.good, wrapped);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "POST (wrapped key)"));
    char ek[65], counter[33];
    open_state_with(dir, fx.wrapped.key, ek, counter); /* the admin's own key was released */
    svsm_sim_run_free(&r);
}

static void test_rsa_tee_key(void **state)
{
    (void)state;
    /* A remembered KBS key cannot be checked without a binding: refused. */
    snapshot before = take_snapshot(g_vm1_dir);
    const char *rsa[] = {"--flavour", "trustee", "--tee-key", "rsa", NULL};
    svsm_sim_run r = boot(&fx.a, g_vm1_dir, fx.vm1.path, fx.good, rsa);
    expect_refused(&r, "KBS binding", "no KBS binding");
    assert_unchanged(g_vm1_dir, &before);
    svsm_sim_run_free(&r);

    /* A first boot works and remembers nothing. */
    char dir[192], path[256];
    fresh_dir(dir, sizeof(dir), "rsa");
    r = boot(&fx.a, dir, fx.vm2.path, fx.good, rsa);
    /* vm2's state lives elsewhere: this directory gets a new vTPM under vm2's key. */
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "RSA-OAEP-256"));
    state_file(dir, "kbs-key.pem", path, sizeof(path));
    assert_false(exists(path));
    svsm_sim_run_free(&r);
}

static void test_unknown_resource_and_no_server(void **state)
{
    (void)state;
    char dir[192];
    fresh_dir(dir, sizeof(dir), "unknown");
    svsm_sim_run r =
        boot(&fx.a, dir, "vtpmca/persistence-key/00000000000000000000000000000000", fx.good, NULL);
    expect_refused(&r, "resource", "HTTP 404");
    assert_false(exists(dir));
    svsm_sim_run_free(&r);

    vtpmcad_proc gone = fx.a;
    snprintf(gone.url, sizeof(gone.url), "http://127.0.0.1:1");
    r = boot(&gone, dir, fx.vm1.path, fx.good, NULL);
    expect_refused(&r, "auth", NULL);
    assert_false(exists(dir));
    svsm_sim_run_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char dir[192];
    fresh_dir(dir, sizeof(dir), "usage");
    const char *const cases[][4] = {
        {"--tee-key", "p384", NULL, NULL},     /* the svsm flavour is P-521 */
        {"--flavour", "aproxy", NULL, NULL},   /* unknown flavour */
        {"--report-version", "4", NULL, NULL}, /* no such report version */
        {"--host-data", "abcd", NULL, NULL},   /* not 32 bytes */
        {"--tee-key", "p999", NULL, NULL},     /* unknown key */
        {"--bogus", NULL, NULL, NULL},         /* unknown option */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        svsm_sim_run r = boot(&fx.a, dir, fx.vm1.path, fx.good, cases[i]);
        if (r.code != 2)
            fail_msg("case %zu: exit %d, stderr %s", i, r.code, r.err);
        assert_non_null(strstr(r.err, "svsm-sim boot"));
        svsm_sim_run_free(&r);
    }
    svsm_sim_run r = boot(&fx.a, dir, "not-a-path", fx.good, NULL);
    assert_int_equal(r.code, 2);
    svsm_sim_run_free(&r);
    r = boot(&fx.a, dir, fx.vm1.path, "5a5a", NULL); /* measurement too short */
    assert_int_equal(r.code, 2);
    svsm_sim_run_free(&r);
    assert_false(exists(dir));

    const char *help[] = {"boot", "--help", NULL};
    char *out = NULL;
    assert_int_equal(run_program("svsm-sim", help, 10, &out, NULL), 0);
    assert_non_null(strstr(out, "usage: svsm-sim boot"));
    free(out);
    const char *help_init[] = {"platform-init", "--help", NULL};
    assert_int_equal(run_program("svsm-sim", help_init, 10, &out, NULL), 0);
    assert_non_null(strstr(out, "usage: svsm-sim platform-init"));
    free(out);
    const char *none[] = {NULL};
    assert_int_equal(run_program("svsm-sim", none, 10, NULL, NULL), 2);
    /* platform-init never replaces a platform (a chip keeps its key). */
    const char *again[] = {"platform-init", "--platform", fx.platform, "--test-root",
                           fx.roots,        "--product",  "milan",     NULL};
    assert_int_equal(run_program("svsm-sim", again, 30, NULL, NULL), 1);
    const char *missing[] = {"platform-init", "--platform", fx.platform, NULL};
    assert_int_equal(run_program("svsm-sim", missing, 10, NULL, NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* In order: later tests use the vTPM the first one makes. */
        cmocka_unit_test(test_first_boot_creates_the_vtpm),
        cmocka_unit_test(test_second_boot_reopens_with_the_same_ek),
        cmocka_unit_test(test_wrong_measurement_is_refused),
        cmocka_unit_test(test_other_server_identity_is_refused),
        cmocka_unit_test(test_trustee_flavour_p384),
        cmocka_unit_test(test_copied_state_of_another_instance_fails_to_open),
        cmocka_unit_test(test_tampered_state_is_refused),
        cmocka_unit_test(test_wrapped_key_mode),
        cmocka_unit_test(test_rsa_tee_key),
        cmocka_unit_test(test_unknown_resource_and_no_server),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
