/* TEST-ONLY: runs the svsm-sim tool of the build directory (`svsm-sim boot` against a running
 * vtpmcad) and checks its outcome, for the end-to-end tests. Uses cmocka assertions. */
#ifndef VTPMCA_TESTS_SVSM_SIM_RUNNER_H
#define VTPMCA_TESTS_SVSM_SIM_RUNNER_H

/* How long one boot may take (RSA EK generation in libtpms is slow under sanitizers). */
#define SVSM_SIM_BOOT_TIMEOUT_S 60.0

typedef struct {
    int code;        /* exit status, -1 on a signal or time-out */
    char *out, *err; /* stdout and stderr, malloc'd */
} svsm_sim_run;

/* The options every boot passes. */
typedef struct {
    const char *server_url;
    const char *platform;
    const char *state;
    const char *resource;
    const char *measurement;
} svsm_sim_boot_opts;

/* svsm-sim boot --server --platform --state --resource --measurement, then `extra`
 * (NULL-terminated, may be NULL). Fails the test if the output cannot be captured. */
svsm_sim_run svsm_sim_boot(const svsm_sim_boot_opts *opts, const char *const *extra);

void svsm_sim_run_free(svsm_sim_run *r);

/* Fails the test (showing both outputs) unless the boot exited 0 and printed "boot OK". */
void svsm_sim_expect_boot_ok(const svsm_sim_run *r);

/* A 96-hex-digit launch measurement made of byte_hex (two hex digits) repeated. */
void svsm_sim_fill_measurement(char out[97], const char *byte_hex);

/* Saves a fresh Milan test root (RSA-2048) into roots_dir. 0, or -1 after printing why. */
int svsm_sim_save_test_root(const char *roots_dir);

/* svsm-sim platform-init --platform platform --test-root roots_dir --product milan, plus
 * --chip-id chip_id unless it is NULL. 0 when it exits 0 and names the `vtpmca snp
 * import-vcek` step, else -1 after printing its output. */
int svsm_sim_platform_init(const char *platform, const char *roots_dir, const char *chip_id);

#endif
