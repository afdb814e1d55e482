/* Shared machinery of the vtpmca CLI: the option table and its getopt_long parser, help text,
 * error reporting and exit codes, and loaders for the files commands read. */
#ifndef VTPMCA_CLI_COMMON_H
#define VTPMCA_CLI_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/store.h"

/* Exit codes of every command (documented in docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* the operation ran and failed: verification, policy, store, ... */
    CLI_EXIT_USAGE = 2,  /* bad command line, or an input file that is unreadable or malformed */
};

/* Every option any command takes. A command lists the ones it accepts in a bit mask. */
typedef enum {
    CLI_OPT_REPORT = 0,
    CLI_OPT_VCEK,
    CLI_OPT_ROOTS,
    CLI_OPT_TRUST_BUILTIN,
    CLI_OPT_NO_BUILTIN,
    CLI_OPT_POLICY,
    CLI_OPT_AT,
    CLI_OPT_DB,
    CLI_OPT_PRODUCT,
    CLI_OPT_FLEET,
    CLI_OPT_FILE,
    CLI_OPT_VERSION,
    CLI_OPT_DESCRIPTION,
    CLI_OPT_JSON,
    /* Remote mode (the daemon's admin API) and admin keys. */
    CLI_OPT_SERVER,
    CLI_OPT_ADMIN_KEY,
    CLI_OPT_ADMIN_NAME,
    CLI_OPT_CACERT,
    CLI_OPT_OUT,
    CLI_OPT_KEY_TYPE,
    /* Instances and their persistence keys (cmd_instance.c). */
    CLI_OPT_MASTER_KEY,
    CLI_OPT_MODE,
    CLI_OPT_HOST_DATA,
    CLI_OPT_RESOURCE_PATH,
    CLI_OPT_KEY,
    /* The CA, its certificates and C509 (cmd_ca.c, cmd_cert.c, cmd_c509.c). */
    CLI_OPT_STATE_DIR,
    CLI_OPT_CA_DIR,
    CLI_OPT_ROOT_ALG,
    CLI_OPT_ISSUING_ALG,
    CLI_OPT_SUBJECT,
    CLI_OPT_ROOT_CERT,
    CLI_OPT_ROOT_KEY,
    CLI_OPT_ISSUING_CERT,
    CLI_OPT_ISSUING_KEY,
    CLI_OPT_INSTANCE,
    CLI_OPT_PEM,
    CLI_OPT_DER_OUT,
    CLI_OPT_REASON,
    CLI_OPT_IN,
    CLI_OPT_ISSUER,
    /* Bulk enrollment, audit, KBS keys, ledger (cmd_bulk.c, cmd_audit.c, cmd_kbs_key.c,
     * cmd_ledger.c). */
    CLI_OPT_FORMAT,
    CLI_OPT_BATCH,
    CLI_OPT_SKIP_BAD,
    CLI_OPT_FOLLOW,
    CLI_OPT_JSONL,
    CLI_OPT_ACTION,
    CLI_OPT_OUTCOME,
    CLI_OPT_SINCE,
    CLI_OPT_UNTIL,
    CLI_OPT_LIMIT,
    CLI_OPT_RESET,
    CLI_OPT_TRUSTED_DIR,
    CLI_OPT_COUNT
} cli_opt_id;

/* 64 bits: there are more options than an unsigned holds. */
#define CLI_OPT(id) (UINT64_C(1) << (id))
_Static_assert(CLI_OPT_COUNT <= 64, "cli_command option masks hold 64 options");
#define CLI_MAX_ARGS 4

/* A parsed command line. value[id] is the option's argument ("" for flags) or NULL when the
 * option was not given; typed values are decoded once here so commands do not re-parse. */
typedef struct {
    const char *value[CLI_OPT_COUNT];
    time_t at;           /* --at, 0 when absent (= now) */
    snp_product product; /* --product, SNP_PRODUCT_UNKNOWN when absent */
    uint32_t version;    /* --version, 0 when absent (= latest) */
    bool json;           /* --json */
    time_t since, until; /* --since / --until, 0 when absent */
    size_t limit;        /* --limit, 0 when absent */
    size_t batch;        /* --batch, 0 when absent */
    const char *args[CLI_MAX_ARGS];
    unsigned n_args;
} cli_opts;

typedef struct cli_command cli_command;
struct cli_command {
    const char *group;     /* "snp", "fleet", "policy" */
    const char *name;      /* "verify", ... */
    const char *args_help; /* positional arguments for the usage line, e.g. "NAME", or NULL */
    unsigned n_args;       /* exact number of positional arguments */
    uint64_t accepted;     /* CLI_OPT bits */
    uint64_t required;     /* CLI_OPT bits that must be given */
    const char *summary;   /* one line for the group listing */
    const char *details;   /* further paragraphs for --help, or NULL */
    int (*run)(const cli_command *cmd, const cli_opts *opts);
};

typedef struct {
    const char *name;
    const char *summary;
} cli_group;

/* The table of groups and commands (main.c). */
extern const cli_group cli_groups[];
extern const size_t cli_groups_count;
extern const cli_command cli_commands[];
extern const size_t cli_commands_count;

/* Parses argv (argv[0] is the command name) with getopt_long against the command's accepted
 * options. Returns -1 when the command should run, otherwise the exit code to use (help was
 * printed: 0; a usage error was reported: 2). */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_opts *opts);

/* Help for the whole program, a group, or one command, written to `out` (a FILE *). */
void cli_print_program_help(void *out);
void cli_print_group_help(const char *group, void *out);
void cli_print_command_help(const cli_command *cmd, void *out);

/* Exit code for an error: input problems (INVALID_ARG, IO, PARSE, UNSUPPORTED) -> 2,
 * everything else -> 1. */
int cli_exit_code(vtpmca_err err);

/* Prints "vtpmca GROUP NAME: <message>" to stderr and returns cli_exit_code(err). */
int cli_fail(const cli_command *cmd, vtpmca_err err, const char *fmt, ...) VTPMCA_PRINTF(3, 4);

/* Prints "vtpmca GROUP NAME: <context>: <diag message>" (the context is optional: fmt may be
 * NULL; an empty diag prints the error's name) and returns cli_exit_code(err). */
int cli_fail_diag(const cli_command *cmd, vtpmca_err err, const vtpmca_diag *diag, const char *fmt,
                  ...) VTPMCA_PRINTF(4, 5);

/* Prints a usage error (with a pointer to --help) and returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...) VTPMCA_PRINTF(2, 3);

/* Strict RFC 3339 date-time ("2024-06-01T00:00:00Z", "2024-06-01T02:00:00+02:00", optional
 * fractional seconds, which are dropped) to Unix seconds. */
vtpmca_err cli_parse_rfc3339(const char *text, time_t *out);
/* Strictly decimal digits within [min, max] (for counts such as --limit). */
vtpmca_err cli_parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* Formats Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 32 bytes). */
void cli_format_time(time_t t, char *buf, size_t size);

/* Reads an SNP report file: raw binary, hex or base64. *out is malloc'd. */
vtpmca_err cli_load_report(const char *path, uint8_t **out, size_t *out_len, vtpmca_diag *diag);
/* Reads a certificate file: DER or PEM, or DER as hex or base64. *out is malloc'd. */
vtpmca_err cli_load_cert(const char *path, uint8_t **out, size_t *out_len, vtpmca_diag *diag);
/* Reads and validates a policy document (docs/policy.md); the diag names the file and the
 * offending key. */
vtpmca_err cli_load_policy(const char *path, snp_policy **out, vtpmca_diag *diag);

/* The trust set of a command: the builtin AMD roots unless --no-builtin, plus --roots DIR.
 * *extra_trusted says whether roots other than the builtin ones are in the set. */
vtpmca_err cli_load_roots(const cli_opts *opts, snp_roots **out, bool *extra_trusted,
                          vtpmca_diag *diag);

/* Opens the store named by --db. With create == false a missing database file is an error
 * (read-only commands must not leave an empty database behind). */
vtpmca_err cli_open_store(const char *uri, bool create, store **out, vtpmca_diag *diag);

/* The service master key: --master-key, else master.key beside the --db file (vtpmcad's
 * layout), created when missing with a note on stderr (cmd_instance.c). */
struct keyvault;
vtpmca_err cli_open_master_key(const cli_command *cmd, const cli_opts *opts, struct keyvault **out,
                               vtpmca_diag *diag);

/* Prints a JSON value to stdout (indented) and a newline. */
vtpmca_err cli_print_json(const json_t *value);
/* Prints a command's JSON result (the reference is taken; NULL means it could not be made)
 * and returns the exit code: 0, or 1 after a one-line error. */
int cli_print_json_result(const cli_command *cmd, json_t *value);

/* Command entry points (cmd_snp.c, cmd_fleet.c, cmd_policy.c); main.c lists them. */
int cmd_snp_show(const cli_command *cmd, const cli_opts *opts);
int cmd_snp_verify(const cli_command *cmd, const cli_opts *opts);
int cmd_snp_import_vcek(const cli_command *cmd, const cli_opts *opts);
int cmd_fleet_create(const cli_command *cmd, const cli_opts *opts);
int cmd_fleet_list(const cli_command *cmd, const cli_opts *opts);
int cmd_policy_put(const cli_command *cmd, const cli_opts *opts); /* create and update */
int cmd_policy_show(const cli_command *cmd, const cli_opts *opts);
int cmd_policy_list(const cli_command *cmd, const cli_opts *opts);
int cmd_policy_check(const cli_command *cmd, const cli_opts *opts);
int cmd_admin_keygen(const cli_command *cmd, const cli_opts *opts); /* cmd_admin.c */
int cmd_admin_whoami(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_enroll(const cli_command *cmd, const cli_opts *opts); /* cmd_instance.c */
int cmd_instance_wrap_key(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_show(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_list(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_set_disabled(const cli_command *cmd, const cli_opts *opts); /* enable|disable */
int cmd_instance_reenroll(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_delete(const cli_command *cmd, const cli_opts *opts);
int cmd_instance_bulk(const cli_command *cmd, const cli_opts *opts);    /* cmd_bulk.c */
int cmd_instance_history(const cli_command *cmd, const cli_opts *opts); /* cmd_audit.c */
int cmd_audit_tail(const cli_command *cmd, const cli_opts *opts);
int cmd_audit_search(const cli_command *cmd, const cli_opts *opts);
int cmd_kbs_key_show(const cli_command *cmd, const cli_opts *opts); /* cmd_kbs_key.c */
int cmd_kbs_key_list(const cli_command *cmd, const cli_opts *opts);
int cmd_kbs_key_trust(const cli_command *cmd, const cli_opts *opts);
int cmd_kbs_key_untrust(const cli_command *cmd, const cli_opts *opts);
int cmd_ledger_show(const cli_command *cmd, const cli_opts *opts); /* cmd_ledger.c */
int cmd_ledger_clear(const cli_command *cmd, const cli_opts *opts);
int cmd_ledger_require_clear(const cli_command *cmd, const cli_opts *opts);
int cmd_ca_init(const cli_command *cmd, const cli_opts *opts); /* cmd_ca.c */
int cmd_ca_import(const cli_command *cmd, const cli_opts *opts);
int cmd_ca_show(const cli_command *cmd, const cli_opts *opts);
int cmd_ca_export_keylime(const cli_command *cmd, const cli_opts *opts);
int cmd_crl_show(const cli_command *cmd, const cli_opts *opts);
int cmd_cert_list(const cli_command *cmd, const cli_opts *opts); /* cmd_cert.c */
int cmd_cert_show(const cli_command *cmd, const cli_opts *opts);
int cmd_cert_revoke(const cli_command *cmd, const cli_opts *opts);
int cmd_c509_encode(const cli_command *cmd, const cli_opts *opts); /* cmd_c509.c */
int cmd_c509_decode(const cli_command *cmd, const cli_opts *opts);
int cmd_c509_verify(const cli_command *cmd, const cli_opts *opts);

#endif
