/* TEST-ONLY svsm-sim runner (see svsm_sim_runner.h). */
#include "svsm_sim_runner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/snp_testsigner.h"
#include "vtpmcad_runner.h"

#define MAX_BOOT_ARGS 48

svsm_sim_run svsm_sim_boot(const svsm_sim_boot_opts *opts, const char *const *extra)
{
    assert_non_null(opts);
    const char *args[MAX_BOOT_ARGS] = {
        "boot",      "--server",   opts->server_url, "--platform",    opts->platform,    "--state",
        opts->state, "--resource", opts->resource,   "--measurement", opts->measurement, NULL};
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(n < MAX_BOOT_ARGS - 1);
        args[n++] = extra[i];
    }
    args[n] = NULL;
    svsm_sim_run r = {0};
    r.code = run_program("svsm-sim", args, SVSM_SIM_BOOT_TIMEOUT_S, &r.out, &r.err);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

void svsm_sim_run_free(svsm_sim_run *r)
{
    free(r->out);
    free(r->err);
}

void svsm_sim_expect_boot_ok(const svsm_sim_run *r)
{
    if (r->code != 0 || strstr(r->out, "boot OK") == NULL)
        fail_msg("svsm-sim exited %d\nstdout:\n%s\nstderr:\n%s", r->code, r->out, r->err);
}

void svsm_sim_fill_measurement(char out[97], const char *byte_hex)
{
    for (int i = 0; i < 48; i++)
        memcpy(out + 2 * i, byte_hex, 2);
    out[96] = '\0';
}

int svsm_sim_save_test_root(const char *roots_dir)
{
    vtpmca_diag diag = {{0}};
    snp_test_root *root = NULL;
    if (snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &root, &diag) != VTPMCA_OK ||
        snp_test_root_save(root, roots_dir, &diag) != VTPMCA_OK) {
        fprintf(stderr, "test root: %s\n", diag.msg);
        snp_test_root_free(root);
        return -1;
    }
    snp_test_root_free(root);
    return 0;
}

int svsm_sim_platform_init(const char *platform, const char *roots_dir, const char *chip_id)
{
    const char *init[] = {"platform-init", "--platform", platform, "--test-root", roots_dir,
                          "--product",     "milan",      NULL,     NULL,          NULL};
    if (chip_id != NULL) {
        init[7] = "--chip-id";
        init[8] = chip_id;
    }
    char *out = NULL, *err = NULL;
    int code = run_program("svsm-sim", init, 30, &out, &err);
    int result = code == 0 && out != NULL && strstr(out, "vtpmca snp import-vcek") != NULL ? 0 : -1;
    if (result != 0)
        fprintf(stderr, "platform-init exited %d: %s%s\n", code, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return result;
}
