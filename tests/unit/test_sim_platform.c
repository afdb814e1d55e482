/* Unit tests for tools/lib/sim_platform.c, the simulated SEV-SNP machine of svsm-sim: the TCB
 * and chip id parsers (every rejection), platform creation and loading (files, modes, a key
 * that is not the certificate's, refusing to replace a platform), and reports that the real
 * verifier accepts when it trusts the test root (and only then). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/fileio.h"
#include "vtpmca/sim_platform.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_verifier.h"

static struct {
    char dir[64];
    char roots[128];
    unsigned next;
} g;

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.dir, sizeof(g.dir), "sim-platform") != 0)
        return -1;
    snprintf(g.roots, sizeof(g.roots), "%s/test-root", g.dir);
    snp_test_root *milan = NULL, *turin = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &milan, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_save(milan, g.roots, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_new(SNP_PRODUCT_TURIN, 2048, &turin, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_save(turin, g.roots, &diag);
    snp_test_root_free(milan);
    snp_test_root_free(turin);
    if (err != VTPMCA_OK)
        fprintf(stderr, "test root: %s\n", diag.msg);
    return err == VTPMCA_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return ca_fixture_rmtree(g.dir);
}

static void fresh_dir(char *out, size_t size)
{
    snprintf(out, size, "%s/platform-%u", g.dir, g.next++);
}

static void test_tcb_parse(void **state)
{
    (void)state;
    snp_tcb tcb;
    vtpmca_diag diag = {{0}};
    assert_int_equal(sim_tcb_parse("bl=3,tee=0,snp=8,ucode=115", SNP_PRODUCT_MILAN, &tcb, &diag),
                     VTPMCA_OK);
    assert_int_equal(tcb.bootloader, 3);
    assert_int_equal(tcb.tee, 0);
    assert_int_equal(tcb.snp, 8);
    assert_int_equal(tcb.microcode, 115);
    assert_int_equal(tcb.fmc, 0);
    /* Any order; fmc on Turin. */
    assert_int_equal(
        sim_tcb_parse("ucode=255,fmc=1,snp=0,tee=2,bl=9", SNP_PRODUCT_TURIN, &tcb, &diag),
        VTPMCA_OK);
    assert_int_equal(tcb.fmc, 1);
    assert_int_equal(tcb.microcode, 255);
    assert_int_equal(tcb.bootloader, 9);

    const struct {
        const char *spec;
        const char *why;
    } bad[] = {
        {"bl=3,tee=0,snp=8", "ucode is missing"},
        {"bl=3,tee=0,snp=8,ucode=256", "ucode must be 0..255"},
        {"bl=3,tee=0,snp=8,ucode=-1", "ucode must be 0..255"},
        {"bl=3,tee=0,snp=8,ucode=1x", "ucode must be 0..255"},
        {"bl=3,tee=0,snp=8,ucode=", "ucode must be 0..255"},
        {"bl=3,bl=4,tee=0,snp=8,ucode=1", "bl is given twice"},
        {"bl=3,tee=0,snp=8,ucode=1,fmc=2", "fmc exists on Turin only"},
        {"bl=3,tee=0,snp=8,ucode=1,x=2", "\"x\" is unknown"},
        {"bl=3,tee=0,snp=8,ucode=1,", "\"\" is unknown"},
        {"bl,tee=0,snp=8,ucode=1", "bl needs =VALUE"},
        {"", "\"\" is unknown"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        diag.msg[0] = '\0';
        assert_int_equal(sim_tcb_parse(bad[i].spec, SNP_PRODUCT_MILAN, &tcb, &diag),
                         VTPMCA_ERR_PARSE);
        if (strstr(diag.msg, bad[i].why) == NULL)
            fail_msg("\"%s\": diag \"%s\" lacks \"%s\"", bad[i].spec, diag.msg, bad[i].why);
    }
    assert_int_equal(sim_tcb_parse(NULL, SNP_PRODUCT_MILAN, &tcb, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_chip_id(void **state)
{
    (void)state;
    uint8_t chip[SIM_CHIP_ID_LEN], zero[SIM_CHIP_ID_LEN] = {0};
    char hex[129];
    memset(hex, 'a', 128);
    hex[128] = '\0';
    assert_int_equal(sim_chip_id_parse(hex, SNP_PRODUCT_MILAN, chip, NULL), VTPMCA_OK);
    assert_int_equal(chip[0], 0xaa);
    assert_int_equal(chip[63], 0xaa);
    /* Turin: 16 digits, the rest zero; 128 digits only with zeros after byte 8. */
    assert_int_equal(sim_chip_id_parse("0102030405060708", SNP_PRODUCT_TURIN, chip, NULL),
                     VTPMCA_OK);
    assert_int_equal(chip[7], 0x08);
    assert_memory_equal(chip + 8, zero, 56);
    vtpmca_diag diag = {{0}};
    assert_int_equal(sim_chip_id_parse(hex, SNP_PRODUCT_TURIN, chip, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "rest must be zero"));
    assert_int_equal(sim_chip_id_parse("0102030405060708", SNP_PRODUCT_MILAN, chip, NULL),
                     VTPMCA_ERR_PARSE);
    hex[5] = 'g';
    assert_int_equal(sim_chip_id_parse(hex, SNP_PRODUCT_MILAN, chip, NULL), VTPMCA_ERR_PARSE);
    assert_int_equal(sim_chip_id_parse(NULL, SNP_PRODUCT_MILAN, chip, NULL),
                     VTPMCA_ERR_INVALID_ARG);

    uint8_t a[SIM_CHIP_ID_LEN], b[SIM_CHIP_ID_LEN];
    assert_int_equal(sim_chip_id_random(SNP_PRODUCT_GENOA, a, NULL), VTPMCA_OK);
    assert_int_equal(sim_chip_id_random(SNP_PRODUCT_GENOA, b, NULL), VTPMCA_OK);
    assert_memory_not_equal(a, b, SIM_CHIP_ID_LEN);
    assert_int_equal(sim_chip_id_random(SNP_PRODUCT_TURIN, a, NULL), VTPMCA_OK);
    assert_memory_equal(a + 8, zero, 56);
    assert_int_equal(sim_chip_id_random(SNP_PRODUCT_UNKNOWN, a, NULL), VTPMCA_ERR_INVALID_ARG);
}

static sim_platform *create_and_load(const char *dir, snp_product product, const char *tcb_spec,
                                     sim_platform_params *params)
{
    vtpmca_diag diag = {{0}};
    memset(params, 0, sizeof(*params));
    params->product = product;
    assert_int_equal(sim_tcb_parse(tcb_spec, product, &params->tcb, &diag), VTPMCA_OK);
    assert_int_equal(sim_chip_id_random(product, params->chip_id, &diag), VTPMCA_OK);
    if (sim_platform_create(dir, g.roots, params, &diag) != VTPMCA_OK)
        fail_msg("create: %s", diag.msg);
    sim_platform *platform = NULL;
    if (sim_platform_load(dir, &platform, &diag) != VTPMCA_OK)
        fail_msg("load: %s", diag.msg);
    return platform;
}

/* Verifies a report with the real verifier, trusting the test root (or only AMD's roots). */
static vtpmca_err verify(const uint8_t report[SNP_REPORT_SIZE], const char *platform_dir,
                         bool trust_test_root, snp_evidence *evidence)
{
    snp_roots *roots = NULL;
    snp_verifier *verifier = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", platform_dir, SIM_PLATFORM_VCEK_FILE);
    assert_int_equal(vt_file_read(path, 65536, &der, &der_len, NULL), VTPMCA_OK);
    if (trust_test_root) {
        assert_int_equal(snp_roots_new_empty(&roots), VTPMCA_OK);
        assert_int_equal(snp_roots_add_dir(roots, g.roots, NULL), VTPMCA_OK);
    } else {
        assert_int_equal(snp_roots_new_builtin(&roots, NULL), VTPMCA_OK);
    }
    snp_verifier_config config = {.roots = roots};
    assert_int_equal(snp_verifier_new(&config, &verifier, NULL), VTPMCA_OK);
    vtpmca_err err =
        snp_verifier_verify(verifier, report, SNP_REPORT_SIZE, der, der_len, 0, evidence, NULL);
    snp_verifier_free(verifier);
    snp_roots_free(roots);
    free(der);
    return err;
}

static void test_create_load_and_sign(void **state)
{
    (void)state;
    char dir[128];
    fresh_dir(dir, sizeof(dir));
    sim_platform_params params;
    sim_platform *platform =
        create_and_load(dir, SNP_PRODUCT_MILAN, "bl=4,tee=1,snp=9,ucode=200", &params);
    const sim_platform_params *loaded = sim_platform_get_params(platform);
    assert_int_equal(loaded->product, SNP_PRODUCT_MILAN);
    assert_memory_equal(loaded->chip_id, params.chip_id, SIM_CHIP_ID_LEN);
    assert_memory_equal(&loaded->tcb, &params.tcb, sizeof(snp_tcb));

    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, SIM_PLATFORM_VCEK_KEY_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    const uint32_t versions[] = {2, 3, 5};
    for (size_t i = 0; i < 3; i++) {
        sim_report_request req = {.version = versions[i]};
        memset(req.report_data, 0x11, sizeof(req.report_data));
        memset(req.measurement, 0x22, sizeof(req.measurement));
        memset(req.host_data, 0x33, sizeof(req.host_data));
        uint8_t report[SNP_REPORT_SIZE];
        vtpmca_diag diag = {{0}};
        assert_int_equal(sim_platform_sign_report(platform, &req, report, &diag), VTPMCA_OK);
        snp_evidence ev;
        assert_int_equal(verify(report, dir, true, &ev), VTPMCA_OK);
        assert_int_equal(ev.report.version, versions[i]);
        assert_int_equal(ev.report.vmpl, 0);
        assert_int_equal(ev.signer, SNP_SIGNER_VCEK);
        assert_memory_equal(ev.report.report_data, req.report_data, 64);
        assert_memory_equal(ev.report.measurement, req.measurement, 48);
        assert_memory_equal(ev.report.host_data, req.host_data, 32);
        assert_memory_equal(ev.report.chip_id, params.chip_id, 64);
        assert_int_equal(ev.reported_tcb.microcode, 200);
        /* AMD's pinned roots alone do not trust the test VCEK. */
        assert_int_not_equal(verify(report, dir, false, &ev), VTPMCA_OK);
    }
    sim_report_request bad = {.version = 4};
    uint8_t report[SNP_REPORT_SIZE];
    assert_int_equal(sim_platform_sign_report(platform, &bad, report, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(sim_platform_sign_report(NULL, &bad, report, NULL), VTPMCA_ERR_INVALID_ARG);
    sim_platform_free(platform);
    sim_platform_free(NULL);
}

static void test_turin_platform(void **state)
{
    (void)state;
    char dir[128];
    fresh_dir(dir, sizeof(dir));
    sim_platform_params params;
    sim_platform *platform =
        create_and_load(dir, SNP_PRODUCT_TURIN, "bl=1,tee=2,snp=3,ucode=4,fmc=5", &params);
    const sim_platform_params *loaded = sim_platform_get_params(platform);
    assert_int_equal(loaded->product, SNP_PRODUCT_TURIN);
    assert_int_equal(loaded->tcb.fmc, 5);
    assert_memory_equal(loaded->chip_id, params.chip_id, SIM_CHIP_ID_LEN);
    sim_report_request req = {.version = 3};
    uint8_t report[SNP_REPORT_SIZE];
    assert_int_equal(sim_platform_sign_report(platform, &req, report, NULL), VTPMCA_OK);
    snp_evidence ev;
    assert_int_equal(verify(report, dir, true, &ev), VTPMCA_OK);
    assert_int_equal(ev.product, SNP_PRODUCT_TURIN);
    sim_platform_free(platform);
}

static void test_refusals(void **state)
{
    (void)state;
    char a[128], b[128], path_a[256], path_b[256];
    fresh_dir(a, sizeof(a));
    fresh_dir(b, sizeof(b));
    sim_platform_params params;
    sim_platform_free(create_and_load(a, SNP_PRODUCT_MILAN, "bl=3,tee=0,snp=8,ucode=115", &params));
    sim_platform_free(create_and_load(b, SNP_PRODUCT_MILAN, "bl=3,tee=0,snp=8,ucode=115", &params));
    vtpmca_diag diag = {{0}};

    /* A platform is never replaced. */
    snprintf(path_a, sizeof(path_a), "%s/%s", a, SIM_PLATFORM_VCEK_FILE);
    uint8_t *before = NULL;
    size_t before_len = 0;
    assert_int_equal(vt_file_read(path_a, 65536, &before, &before_len, NULL), VTPMCA_OK);
    assert_int_equal(sim_platform_create(a, g.roots, &params, &diag), VTPMCA_ERR_CONFLICT);
    uint8_t *after = NULL;
    size_t after_len = 0;
    assert_int_equal(vt_file_read(path_a, 65536, &after, &after_len, NULL), VTPMCA_OK);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);

    /* Another chip's key next to this chip's certificate. */
    snprintf(path_a, sizeof(path_a), "%s/%s", a, SIM_PLATFORM_VCEK_KEY_FILE);
    snprintf(path_b, sizeof(path_b), "%s/%s", b, SIM_PLATFORM_VCEK_KEY_FILE);
    uint8_t *key_b = NULL;
    size_t key_b_len = 0;
    assert_int_equal(vt_file_read(path_b, 65536, &key_b, &key_b_len, NULL), VTPMCA_OK);
    assert_int_equal(vt_file_write_atomic(path_a, key_b, key_b_len, 0600, NULL), VTPMCA_OK);
    free(key_b);
    sim_platform *platform = NULL;
    assert_int_equal(sim_platform_load(a, &platform, &diag), VTPMCA_ERR_CRYPTO);
    assert_non_null(strstr(diag.msg, "is not the key of"));
    assert_null(platform);

    /* Not a certificate; missing files; a test root of another product. */
    snprintf(path_b, sizeof(path_b), "%s/%s", b, SIM_PLATFORM_VCEK_FILE);
    assert_int_equal(vt_file_write_atomic(path_b, "garbage", 7, 0644, NULL), VTPMCA_OK);
    assert_int_not_equal(sim_platform_load(b, &platform, &diag), VTPMCA_OK);
    char missing[128];
    fresh_dir(missing, sizeof(missing));
    assert_int_equal(sim_platform_load(missing, &platform, &diag), VTPMCA_ERR_IO);
    params.product = SNP_PRODUCT_GENOA; /* the test root has no Genoa hierarchy */
    assert_int_not_equal(sim_platform_create(missing, g.roots, &params, &diag), VTPMCA_OK);
    assert_int_not_equal(access(missing, F_OK), 0);
    assert_int_equal(sim_platform_create(NULL, g.roots, &params, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(sim_platform_load(NULL, &platform, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(sim_platform_get_params(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcb_parse),
        cmocka_unit_test(test_chip_id),
        cmocka_unit_test(test_create_load_and_sign),
        cmocka_unit_test(test_turin_platform),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
