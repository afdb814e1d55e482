/* Shared by the test tools (snp-testroot, svsm-sim): the usage / failure reporting and exit
 * codes of "<tool> <command> [options]" programs, and joining a directory and a file name. */
#ifndef VTPMCA_CLI_UTIL_H
#define VTPMCA_CLI_UTIL_H

#include <stddef.h>

#include "vtpmca/err.h"

/* Exit status: 0 success, 1 operation refused or failed, 2 usage error. */
#define VT_CLI_EXIT_FAILED 1
#define VT_CLI_EXIT_USAGE 2

/* Prints "<tool> <command>: <message>" and where to find the usage to stderr; returns
 * VT_CLI_EXIT_USAGE. */
int vt_cli_usage_error(const char *tool, const char *command, const char *fmt, ...)
    VTPMCA_PRINTF(3, 4);

/* For getopt_long run with opterr = 0 and an optstring starting with ':' (so a bad option is
 * reported once, in the tool's format): reports the option getopt_long just returned opt
 * (':' or '?') for, as a usage error. */
int vt_cli_bad_option(const char *tool, const char *command, int opt, char **argv);

/* Prints "<tool> <command>: <diag or "failed"> (<error name>)" to stderr; returns
 * VT_CLI_EXIT_FAILED. */
int vt_cli_failed(const char *tool, const char *command, vtpmca_err err, const vtpmca_diag *diag);

/* out = "<dir>/<file>"; VTPMCA_ERR_LIMIT when it does not fit in out_size. */
vtpmca_err vt_path_join(const char *dir, const char *file, char *out, size_t out_size,
                        vtpmca_diag *diag);

#endif
