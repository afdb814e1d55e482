#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vtpmca/encoding.h"
#include "vtpmca/enrollment_bulk.h"
#include "vtpmca/fileio.h"
#include "vtpmca/rfc3339.h"
#include "vtpmca/server_admin.h"

/* Upper bounds for files the CLI reads: reports and certificates are small; policies may
 * list thousands of measurements. */
#define CLI_MAX_EVIDENCE_FILE (1u << 20)
#define CLI_MAX_POLICY_FILE (16u << 20)

/* getopt_long values for table options start above every short-option character. */
#define CLI_OPT_BASE 256

typedef struct {
    const char *name;
    int has_arg;
    const char *metavar; /* NULL for flags */
    const char *help;
} cli_option_spec;

static const cli_option_spec option_specs[CLI_OPT_COUNT] = {
    [CLI_OPT_REPORT] = {"report", required_argument, "FILE",
                        "SEV-SNP report: 1184 raw bytes, hex or base64"},
    [CLI_OPT_VCEK] = {"vcek", required_argument, "FILE",
                      "VCEK/VLEK certificate: DER, PEM, or DER as hex/base64"},
    [CLI_OPT_ROOTS] = {"roots", required_argument, "DIR",
                       "also trust the roots in DIR (<product>_ark.pem, <product>_ask.pem, "
                       "<product>_asvk_ark.pem)"},
    [CLI_OPT_TRUST_BUILTIN] = {"trust-builtin", no_argument, NULL,
                               "trust the pinned AMD roots (the default)"},
    [CLI_OPT_NO_BUILTIN] = {"no-builtin", no_argument, NULL,
                            "do not trust the pinned AMD roots (needs --roots)"},
    [CLI_OPT_POLICY] = {"policy", required_argument, "FILE",
                        "appraise the verified claims with this policy document (JSON)"},
    [CLI_OPT_AT] = {"at", required_argument, "TIME",
                    "check certificate validity at TIME (RFC 3339, e.g. 2024-06-01T00:00:00Z) "
                    "instead of now"},
    [CLI_OPT_DB] = {"db", required_argument, "FILE", "the vtpmca database (path or sqlite:PATH)"},
    [CLI_OPT_PRODUCT] = {"product", required_argument, "P",
                         "SEV-SNP product: milan, genoa or turin (v2 reports do not name it)"},
    [CLI_OPT_FLEET] = {"fleet", required_argument, "NAME", "fleet name"},
    [CLI_OPT_FILE] = {"file", required_argument, "FILE",
                      "input file: a policy document (JSON), or for 'instance bulk' the "
                      "instances (CSV or JSON Lines)"},
    [CLI_OPT_VERSION] = {"version", required_argument, "N", "policy version (default: the latest)"},
    [CLI_OPT_DESCRIPTION] = {"description", required_argument, "TEXT", "free-text description"},
    [CLI_OPT_JSON] = {"json", no_argument, NULL, "print machine-readable JSON"},
    [CLI_OPT_SERVER] = {"server", required_argument, "URL",
                        "use the daemon's admin API at URL (https://HOST:PORT) instead of --db "
                        "(default: $VTPMCA_SERVER)"},
    [CLI_OPT_ADMIN_KEY] = {"admin-key", required_argument, "FILE",
                           "admin private key (PEM, Ed25519 or P-256, mode 0600) that signs the "
                           "requests (default: $VTPMCA_ADMIN_KEY)"},
    [CLI_OPT_ADMIN_NAME] = {"admin-name", required_argument, "NAME",
                            "admin name the daemon knows the key by (default: $VTPMCA_ADMIN_NAME, "
                            "else the key file name without .pem)"},
    [CLI_OPT_CACERT] = {"cacert", required_argument, "FILE",
                        "CA certificate(s) to check the daemon's HTTPS certificate with "
                        "(default: $VTPMCA_CACERT, else the system CAs)"},
    [CLI_OPT_OUT] = {"out", required_argument, "FILE",
                     "file to write (admin keygen: the private key NAME.pem, NAME.pub.pem gets "
                     "the public key; instance bulk: the enrolled instances as JSON Lines)"},
    [CLI_OPT_KEY_TYPE] = {"key-type", required_argument, "TYPE",
                          "ed25519 (alg EdDSA, the default) or p256 (alg ES256)"},
    [CLI_OPT_MASTER_KEY] = {"master-key", required_argument, "FILE",
                            "the service master key (default: master.key beside the --db file, "
                            "where vtpmcad keeps it; created when missing)"},
    [CLI_OPT_MODE] = {"mode", required_argument, "MODE",
                      "generated (the service makes and keeps the key, the default) or wrapped "
                      "(the instance presents a key wrapped by 'instance wrap-key')"},
    [CLI_OPT_HOST_DATA] = {"host-data", required_argument, "HEX",
                           "32 bytes (64 hex digits) the attested HOST_DATA must equal"},
    [CLI_OPT_RESOURCE_PATH] = {"resource-path", required_argument, "PATH",
                               "KBS resource path <repo>/<type>/<tag> (default: generated, "
                               "vtpmca/persistence-key/<random tag>)"},
    [CLI_OPT_KEY] = {"key", required_argument, "FILE", "the key to wrap: 1 to 64 raw bytes"},
    [CLI_OPT_STATE_DIR] = {"state-dir", required_argument, "DIR",
                           "vtpmcad's state directory; the CA is DIR/ca (default: "
                           "/var/lib/vtpmca)"},
    [CLI_OPT_CA_DIR] = {"ca-dir", required_argument, "DIR",
                        "the CA directory itself, instead of --state-dir"},
    [CLI_OPT_ROOT_ALG] = {"root-alg", required_argument, "ALG",
                          "root CA key: ecdsa-p384 (the default), ecdsa-p256 or rsa-3072"},
    [CLI_OPT_ISSUING_ALG] = {"issuing-alg", required_argument, "ALG",
                             "issuing CA key: ecdsa-p384 (the default), ecdsa-p256, rsa-3072 or "
                             "rsa-2048"},
    [CLI_OPT_SUBJECT] = {"subject", required_argument, "DN",
                         "CA names as O=ORG,CN=NAME (either part optional): both CAs get O=ORG, "
                         "the root CN=\"NAME Root CA\" and the issuing CA CN=\"NAME Issuing CA\" "
                         "(default: O=vtpmca,CN=vtpmca EK)"},
    [CLI_OPT_ROOT_CERT] = {"root-cert", required_argument, "FILE", "root CA certificate (PEM)"},
    [CLI_OPT_ROOT_KEY] = {"root-key", required_argument, "FILE",
                          "root CA private key (PEM); better left out, so it stays offline"},
    [CLI_OPT_ISSUING_CERT] = {"issuing-cert", required_argument, "FILE",
                              "issuing CA certificate (PEM), signed by the root"},
    [CLI_OPT_ISSUING_KEY] = {"issuing-key", required_argument, "FILE",
                             "issuing CA private key (PEM)"},
    [CLI_OPT_INSTANCE] = {"instance", required_argument, "ID", "only this instance"},
    [CLI_OPT_PEM] = {"pem", no_argument, NULL, "print the certificate as PEM"},
    [CLI_OPT_DER_OUT] = {"der-out", required_argument, "FILE", "write the DER encoding to FILE"},
    [CLI_OPT_REASON] = {"reason", required_argument, "R",
                        "RFC 5280 reason: unspecified (the default), keyCompromise, cACompromise, "
                        "affiliationChanged, superseded, cessationOfOperation or "
                        "privilegeWithdrawn"},
    [CLI_OPT_IN] = {"in", required_argument, "FILE", "input file"},
    [CLI_OPT_ISSUER] = {"issuer", required_argument, "FILE",
                        "the issuer's certificate (PEM or DER) whose key checks the signature"},
    [CLI_OPT_FORMAT] = {"format", required_argument, "FMT",
                        "csv or jsonl (default: from the file name, .csv or .jsonl/.ndjson)"},
    [CLI_OPT_BATCH] = {"batch", required_argument, "N",
                       "instances per transaction, 1 to 100000 (default: the whole file, in "
                       "batches of 100000 beyond that)"},
    [CLI_OPT_SKIP_BAD] = {"skip-bad", no_argument, NULL,
                          "enroll the good rows and leave out the bad ones (default: a bad row "
                          "stops everything)"},
    [CLI_OPT_FOLLOW] = {"follow", no_argument, NULL,
                        "keep printing new events as they come (until interrupted)"},
    [CLI_OPT_JSONL] = {"jsonl", no_argument, NULL, "print one JSON object per line"},
    [CLI_OPT_ACTION] = {"action", required_argument, "NAME",
                        "only this action, e.g. enroll, key_release, admin.instance_delete"},
    [CLI_OPT_OUTCOME] = {"outcome", required_argument, "NAME",
                         "only this outcome (verdict), e.g. granted, policy_rejected, ok"},
    [CLI_OPT_SINCE] = {"since", required_argument, "TIME",
                       "only events at or after TIME (RFC 3339, e.g. 2024-06-01T00:00:00Z)"},
    [CLI_OPT_UNTIL] = {"until", required_argument, "TIME", "only events before TIME (RFC 3339)"},
    [CLI_OPT_LIMIT] = {"limit", required_argument, "N", "print at most N entries"},
    [CLI_OPT_RESET] = {"reset", no_argument, NULL,
                       "also forget the ledger's entry: the next advance sets a new origin"},
    [CLI_OPT_TRUSTED_DIR] = {"trusted-dir", required_argument, "DIR",
                             "offline: vtpmcad's trusted_kbs_keys_dir, instead of --server"},
};

/* ---- Help ---- */

#define HELP_WIDTH 90
#define HELP_OPTION_COLUMN 25 /* where option descriptions start */

/* A cursor for word-wrapped help output. */
typedef struct {
    FILE *out;
    size_t column; /* characters on the current line */
    size_t indent; /* where continuation lines start */
    bool fresh;    /* at the start of a continuation line: no separating space */
} help_cursor;

/* Writes `token` after a space, or on a new indented line when it would pass HELP_WIDTH. */
static void put_token(help_cursor *cur, const char *token)
{
    size_t len = strlen(token);
    if (!cur->fresh && cur->column + 1 + len > HELP_WIDTH) {
        fprintf(cur->out, "\n%*s", (int)cur->indent, "");
        cur->column = cur->indent;
        cur->fresh = true;
    }
    if (!cur->fresh) {
        fputc(' ', cur->out);
        cur->column++;
    }
    fputs(token, cur->out);
    cur->column += len;
    cur->fresh = false;
}

/* Writes text word by word through put_token. */
static void put_wrapped(help_cursor *cur, const char *text)
{
    char word[128];
    while (*text != '\0') {
        size_t len = strcspn(text, " ");
        snprintf(word, sizeof(word), "%.*s", (int)(len < sizeof(word) ? len : sizeof(word) - 1),
                 text);
        put_token(cur, word);
        text += len;
        text += strspn(text, " ");
    }
}

static void print_usage_line(const cli_command *cmd, FILE *out)
{
    int n = fprintf(out, "Usage: vtpmca %s %s", cmd->group, cmd->name);
    help_cursor cur = {out, n > 0 ? (size_t)n : 0, n > 0 ? (size_t)n + 1 : 0, false};
    if (cmd->args_help != NULL)
        put_token(&cur, cmd->args_help);
    /* Required options first, then optional ones in brackets. */
    for (int pass = 0; pass < 2; pass++) {
        for (int id = 0; id < CLI_OPT_COUNT; id++) {
            uint64_t bit = CLI_OPT(id);
            bool required = (cmd->required & bit) != 0;
            if (!(cmd->accepted & bit) || required != (pass == 0))
                continue;
            const cli_option_spec *spec = &option_specs[id];
            char token[64];
            snprintf(token, sizeof(token), "%s--%s%s%s%s", required ? "" : "[", spec->name,
                     spec->metavar ? " " : "", spec->metavar ? spec->metavar : "",
                     required ? "" : "]");
            put_token(&cur, token);
        }
    }
    fputc('\n', out);
}

void cli_print_command_help(const cli_command *cmd, void *out_file)
{
    FILE *out = out_file;
    print_usage_line(cmd, out);
    fprintf(out, "\n%s.\n", cmd->summary);
    if (cmd->details != NULL)
        fprintf(out, "\n%s\n", cmd->details);
    fputs("\nOptions:\n", out);
    for (int id = 0; id < CLI_OPT_COUNT; id++) {
        if (!(cmd->accepted & CLI_OPT(id)))
            continue;
        const cli_option_spec *spec = &option_specs[id];
        char left[40];
        snprintf(left, sizeof(left), "--%s%s%s", spec->name, spec->metavar ? " " : "",
                 spec->metavar ? spec->metavar : "");
        int n = fprintf(out, "  %-22s", left);
        help_cursor cur = {out, n > 0 ? (size_t)n : 0, HELP_OPTION_COLUMN, false};
        put_wrapped(&cur, spec->help);
        if (cmd->required & CLI_OPT(id))
            put_token(&cur, "(required)");
        fputc('\n', out);
    }
    fprintf(out, "  %-22s %s\n", "-h, --help", "show this help");
    fputs("\nExit status: 0 success, 1 verification or operation failed, 2 usage error or\n"
          "unreadable/malformed input.\n",
          out);
}

void cli_print_group_help(const char *group, void *out_file)
{
    FILE *out = out_file;
    fprintf(out, "Usage: vtpmca %s <command> [options]\n\nCommands:\n", group);
    for (size_t i = 0; i < cli_commands_count; i++) {
        if (strcmp(cli_commands[i].group, group) == 0)
            fprintf(out, "  %-12s %s\n", cli_commands[i].name, cli_commands[i].summary);
    }
    fprintf(out, "\nRun 'vtpmca %s <command> --help' for the options of a command.\n", group);
}

void cli_print_program_help(void *out_file)
{
    FILE *out = out_file;
    fputs("Usage: vtpmca <group> <command> [options]\n"
          "       vtpmca --help | --version\n\n"
          "Admin CLI of vtpmca: verifies SEV-SNP evidence offline and manages fleets, policies\n"
          "and VCEKs in the vtpmca database (--db) or through the daemon's admin API\n"
          "(--server URL --admin-key FILE, or VTPMCA_SERVER and VTPMCA_ADMIN_KEY).\n",
          out);
    for (size_t g = 0; g < cli_groups_count; g++) {
        fprintf(out, "\n%s: %s\n", cli_groups[g].name, cli_groups[g].summary);
        for (size_t i = 0; i < cli_commands_count; i++) {
            if (strcmp(cli_commands[i].group, cli_groups[g].name) == 0)
                fprintf(out, "  vtpmca %-6s %-12s %s\n", cli_commands[i].group,
                        cli_commands[i].name, cli_commands[i].summary);
        }
    }
    fputs("\nRun 'vtpmca <group> <command> --help' for the options of a command.\n"
          "Exit status: 0 success, 1 verification or operation failed, 2 usage error or\n"
          "unreadable/malformed input.\n",
          out);
}

/* ---- Errors ---- */

int cli_exit_code(vtpmca_err err)
{
    switch (err) {
    case VTPMCA_OK:
        return CLI_EXIT_OK;
    case VTPMCA_ERR_INVALID_ARG:
    case VTPMCA_ERR_IO:
    case VTPMCA_ERR_PARSE:
    case VTPMCA_ERR_UNSUPPORTED:
    case VTPMCA_ERR_LIMIT: /* the CLI's only limits are input file sizes */
        return CLI_EXIT_USAGE;
    default:
        return CLI_EXIT_FAILED;
    }
}

/* "vtpmca GROUP NAME: " and the formatted message (if any), without a newline. */
static void print_error_start(const cli_command *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "vtpmca %s %s: ", cmd->group, cmd->name);
    if (fmt != NULL)
        vfprintf(stderr, fmt, ap);
}

int cli_fail(const cli_command *cmd, vtpmca_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error_start(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return cli_exit_code(err);
}

int cli_fail_diag(const cli_command *cmd, vtpmca_err err, const vtpmca_diag *diag, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error_start(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", fmt != NULL ? ": " : "",
            diag != NULL && diag->msg[0] != '\0' ? diag->msg : vtpmca_err_name(err));
    return cli_exit_code(err);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error_start(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'vtpmca %s %s --help')\n", cmd->group, cmd->name);
    return CLI_EXIT_USAGE;
}

/* ---- Option parsing ---- */

static vtpmca_err parse_version_number(const char *text, uint32_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return VTPMCA_ERR_PARSE;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value == 0 || value > UINT32_MAX)
        return VTPMCA_ERR_PARSE;
    *out = (uint32_t)value;
    return VTPMCA_OK;
}

vtpmca_err cli_parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL || out == NULL || text[0] < '0' || text[0] > '9')
        return VTPMCA_ERR_PARSE;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return VTPMCA_ERR_PARSE;
    *out = (uint64_t)value;
    return VTPMCA_OK;
}

/* Decodes the typed options and checks the combinations that no single option can. */
static int decode_option_values(const cli_command *cmd, cli_opts *opts)
{
    const char *at = opts->value[CLI_OPT_AT];
    if (at != NULL && cli_parse_rfc3339(at, &opts->at) != VTPMCA_OK)
        return cli_usage_error(cmd, "--at '%s': expected an RFC 3339 time such as %s", at,
                               "2024-06-01T00:00:00Z");
    const char *product = opts->value[CLI_OPT_PRODUCT];
    if (product != NULL && snp_product_parse(product, &opts->product) != VTPMCA_OK)
        return cli_usage_error(cmd, "--product '%s': expected milan, genoa or turin", product);
    const char *version = opts->value[CLI_OPT_VERSION];
    if (version != NULL && parse_version_number(version, &opts->version) != VTPMCA_OK)
        return cli_usage_error(cmd, "--version '%s': expected a policy version number >= 1",
                               version);
    opts->json = opts->value[CLI_OPT_JSON] != NULL;
    const char *since = opts->value[CLI_OPT_SINCE], *until = opts->value[CLI_OPT_UNTIL];
    if (since != NULL && cli_parse_rfc3339(since, &opts->since) != VTPMCA_OK)
        return cli_usage_error(cmd, "--since '%s': expected an RFC 3339 time such as %s", since,
                               "2024-06-01T00:00:00Z");
    if (until != NULL && cli_parse_rfc3339(until, &opts->until) != VTPMCA_OK)
        return cli_usage_error(cmd, "--until '%s': expected an RFC 3339 time such as %s", until,
                               "2024-06-01T00:00:00Z");
    uint64_t count = 0;
    const char *limit = opts->value[CLI_OPT_LIMIT], *batch = opts->value[CLI_OPT_BATCH];
    if (limit != NULL && (cli_parse_count(limit, 1, SIZE_MAX, &count) != VTPMCA_OK))
        return cli_usage_error(cmd, "--limit '%s': expected a number >= 1", limit);
    opts->limit = (size_t)count;
    if (batch != NULL && (cli_parse_count(batch, 1, BULK_MAX_ROWS, &count) != VTPMCA_OK))
        return cli_usage_error(cmd, "--batch '%s': expected a number from 1 to %d", batch,
                               BULK_MAX_ROWS);
    opts->batch = batch != NULL ? (size_t)count : 0;
    if (opts->value[CLI_OPT_TRUST_BUILTIN] != NULL && opts->value[CLI_OPT_NO_BUILTIN] != NULL)
        return cli_usage_error(cmd, "--trust-builtin and --no-builtin exclude each other");
    if (opts->value[CLI_OPT_NO_BUILTIN] != NULL && opts->value[CLI_OPT_ROOTS] == NULL)
        return cli_usage_error(cmd, "--no-builtin needs --roots DIR (nothing would be trusted)");
    return -1;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *opts)
{
    struct option longopts[CLI_OPT_COUNT + 2];
    size_t n = 0;
    for (int id = 0; id < CLI_OPT_COUNT; id++) {
        if (cmd->accepted & CLI_OPT(id))
            longopts[n++] = (struct option){option_specs[id].name, option_specs[id].has_arg, NULL,
                                            CLI_OPT_BASE + id};
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    memset(opts, 0, sizeof(*opts));
    optind = 0; /* glibc: full reset, argv is new */
    opterr = 0; /* we print our own one-line errors */
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            cli_print_command_help(cmd, stdout);
            return CLI_EXIT_OK;
        }
        if (c == ':')
            return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        if (c < CLI_OPT_BASE || c >= CLI_OPT_BASE + CLI_OPT_COUNT)
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        int id = c - CLI_OPT_BASE;
        if (opts->value[id] != NULL)
            return cli_usage_error(cmd, "option --%s given twice", option_specs[id].name);
        opts->value[id] = optarg != NULL ? optarg : "";
    }
    for (int i = optind; i < argc; i++) {
        if (opts->n_args == cmd->n_args || opts->n_args == CLI_MAX_ARGS)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        opts->args[opts->n_args++] = argv[i];
    }
    if (opts->n_args < cmd->n_args)
        return cli_usage_error(cmd, "missing %s", cmd->args_help);
    for (int id = 0; id < CLI_OPT_COUNT; id++) {
        if ((cmd->required & CLI_OPT(id)) && opts->value[id] == NULL)
            return cli_usage_error(cmd, "missing --%s %s", option_specs[id].name,
                                   option_specs[id].metavar ? option_specs[id].metavar : "");
    }
    return decode_option_values(cmd, opts);
}

/* ---- Time ---- */

/* Any offset, a leap second and a fraction (ignored) are fine; the epoch and earlier are
 * not (0 means "now" to the verifier). */
vtpmca_err cli_parse_rfc3339(const char *text, time_t *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    vt_rfc3339 t;
    int64_t ms = 0;
    if (vt_rfc3339_parse(text, &t) != VTPMCA_OK || vt_rfc3339_unix_ms(&t, &ms) != VTPMCA_OK ||
        ms / 1000 <= 0)
        return VTPMCA_ERR_PARSE;
    *out = (time_t)(ms / 1000);
    return VTPMCA_OK;
}

void cli_format_time(time_t t, char *buf, size_t size)
{
    server_admin_format_time((int64_t)t, buf, size); /* the admin API's format */
}

/* ---- Input files ---- */

vtpmca_err cli_load_report(const char *path, uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "report: missing argument");
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, CLI_MAX_EVIDENCE_FILE, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    err = vt_decode_flexible(data, len, SNP_REPORT_SIZE, out, out_len);
    free(data);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s: not a report in binary, hex or base64 form", path);
    return VTPMCA_OK;
}

vtpmca_err cli_load_cert(const char *path, uint8_t **out, size_t *out_len, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certificate: missing argument");
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, CLI_MAX_EVIDENCE_FILE, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    /* PEM goes to the certificate parser as is; anything else is DER, maybe as text. */
    if (strstr((const char *)data, "-----BEGIN") != NULL) {
        *out = data;
        *out_len = len;
        return VTPMCA_OK;
    }
    err = vt_decode_flexible(data, len, 0, out, out_len);
    free(data);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s: not a certificate in DER, PEM, hex or base64 form",
                           path);
    return VTPMCA_OK;
}

vtpmca_err cli_load_policy(const char *path, snp_policy **out, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "policy: missing argument");
    uint8_t *text = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, CLI_MAX_POLICY_FILE, &text, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    vtpmca_diag parse_diag = {{0}};
    err = snp_policy_from_json((const char *)text, len, out, &parse_diag);
    free(text);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "invalid policy %s: %s", path,
                           parse_diag.msg[0] ? parse_diag.msg : vtpmca_err_name(err));
    return VTPMCA_OK;
}

/* ---- Trust and store ---- */

vtpmca_err cli_load_roots(const cli_opts *opts, snp_roots **out, bool *extra_trusted,
                          vtpmca_diag *diag)
{
    if (opts == NULL || out == NULL || extra_trusted == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "roots: missing argument");
    snp_roots *roots = NULL;
    vtpmca_err err = opts->value[CLI_OPT_NO_BUILTIN] != NULL ? snp_roots_new_empty(&roots)
                                                             : snp_roots_new_builtin(&roots, diag);
    if (err != VTPMCA_OK)
        return err;
    const char *dir = opts->value[CLI_OPT_ROOTS];
    if (dir != NULL) {
        err = snp_roots_add_dir(roots, dir, diag);
        if (err != VTPMCA_OK) {
            snp_roots_free(roots);
            return err;
        }
    }
    *out = roots;
    *extra_trusted = dir != NULL;
    return VTPMCA_OK;
}

vtpmca_err cli_open_store(const char *uri, bool create, store **out, vtpmca_diag *diag)
{
    if (uri == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "store: missing argument");
    const char *path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
    struct stat st;
    if (!create && strstr(uri, "://") == NULL && stat(path, &st) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "no database at %s: %s", path, strerror(errno));
    return store_open(uri, out, diag);
}

vtpmca_err cli_print_json(const json_t *value)
{
    if (value == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (json_dumpf(value, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0)
        return VTPMCA_ERR_IO;
    fputc('\n', stdout);
    return VTPMCA_OK;
}

int cli_print_json_result(const cli_command *cmd, json_t *value)
{
    vtpmca_err err = value != NULL ? cli_print_json(value) : VTPMCA_ERR_NOMEM;
    json_decref(value);
    return err == VTPMCA_OK ? CLI_EXIT_OK : cli_fail(cmd, err, "cannot print the result");
}
