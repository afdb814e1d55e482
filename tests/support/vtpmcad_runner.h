/* TEST-ONLY process helpers for end-to-end tests: start the real vtpmcad from the build
 * directory on 127.0.0.1 with an ephemeral port (--port 0 --port-file), stop it with SIGTERM,
 * and run a program of the build directory (e.g. svsm-sim) capturing its output and exit
 * status. The build directory is $VTPMCA_BIN_DIR, else VTPMCA_BINARY_DIR. */
#ifndef VTPMCA_TESTS_VTPMCAD_RUNNER_H
#define VTPMCA_TESTS_VTPMCAD_RUNNER_H

#include <sys/types.h>

#include "vtpmca/err.h"

typedef struct {
    pid_t pid; /* 0 when not running */
    unsigned port;
    char url[64];       /* "http://127.0.0.1:PORT" */
    char log_path[512]; /* the daemon's stderr */
    char port_file[512];
} vtpmcad_proc;

/* The build directory holding vtpmcad and the tools. */
const char *vtpmcad_runner_bin_dir(void);

/* Starts vtpmcad --state-dir state_dir --port 0 --port-file <work_dir>/<name>.port
 * --threads 2 --policy-refresh-ms 0 --shutdown-grace-ms 4000, then `extra` (NULL-terminated,
 * may be NULL), with stderr in <work_dir>/<name>.log, and waits (up to 15 s) for the port
 * file. On failure the diag holds the end of the daemon's log. */
vtpmca_err vtpmcad_start(vtpmcad_proc *d, const char *work_dir, const char *name,
                         const char *state_dir, const char *const *extra, vtpmca_diag *diag);

/* SIGTERM, then waits up to 5 s: the exit status, or -1 (then it is killed). */
int vtpmcad_stop(vtpmcad_proc *d);

/* Runs <bin dir>/<program> with args (NULL-terminated) and waits up to timeout_s. *out and
 * *err (malloc'd, NUL-terminated; either pointer may be NULL to discard) receive stdout and
 * stderr. Returns the exit status, or -1 if it was killed by a signal or timed out. */
int run_program(const char *program, const char *const *args, double timeout_s, char **out,
                char **err);

/* Monotonic clock in seconds, for deadlines in tests. */
double runner_now_s(void);

/* Sleeps ms milliseconds. */
void runner_sleep_ms(long ms);

/* The whole file (up to 16 MiB) as a malloc'd NUL-terminated string, or NULL. */
char *runner_read_text(const char *path);

#endif
