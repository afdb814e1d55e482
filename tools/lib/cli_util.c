/* Usage and failure reporting of the test tools (see vtpmca/cli_util.h). */
#include "vtpmca/cli_util.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

int vt_cli_usage_error(const char *tool, const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", tool, command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run '%s %s --help' for usage)\n", tool, command);
    va_end(ap);
    return VT_CLI_EXIT_USAGE;
}

int vt_cli_bad_option(const char *tool, const char *command, int opt, char **argv)
{
    const char *given = argv[optind - 1];
    if (opt == ':')
        return vt_cli_usage_error(tool, command, "option %s needs a value", given);
    return vt_cli_usage_error(tool, command, "unknown option %s", given);
}

int vt_cli_failed(const char *tool, const char *command, vtpmca_err err, const vtpmca_diag *diag)
{
    fprintf(stderr, "%s %s: %s (%s)\n", tool, command,
            diag != NULL && diag->msg[0] != '\0' ? diag->msg : "failed", vtpmca_err_name(err));
    return VT_CLI_EXIT_FAILED;
}

vtpmca_err vt_path_join(const char *dir, const char *file, char *out, size_t out_size,
                        vtpmca_diag *diag)
{
    if (dir == NULL || file == NULL || out == NULL || out_size == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "path join: missing argument");
    int n = snprintf(out, out_size, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= out_size)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "path %s/%s is too long", dir, file);
    return VTPMCA_OK;
}
