/* vtpmca: the admin CLI. `vtpmca <group> <command> [options]`; see docs/cli.md. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "vtpmca/log.h"

#define TRUST_OPTS                                                                                 \
    (CLI_OPT(CLI_OPT_ROOTS) | CLI_OPT(CLI_OPT_TRUST_BUILTIN) | CLI_OPT(CLI_OPT_NO_BUILTIN))
#define JSON_OPT CLI_OPT(CLI_OPT_JSON)
#define DB_OPT CLI_OPT(CLI_OPT_DB)
/* The daemon's admin API instead of --db (cli_remote.h). */
#define REMOTE_OPTS                                                                                \
    (CLI_OPT(CLI_OPT_SERVER) | CLI_OPT(CLI_OPT_ADMIN_KEY) | CLI_OPT(CLI_OPT_ADMIN_NAME) |          \
     CLI_OPT(CLI_OPT_CACERT))
/* Admin commands run on --db FILE or, with REMOTE_OPTS, on the daemon: neither is required
 * by the parser; cli_admin_open says what is missing. */
#define ADMIN_OPTS (DB_OPT | REMOTE_OPTS)
/* Where the CA directory is: --ca-dir, else <--state-dir or vtpmcad's default>/ca. */
#define CA_DIR_OPTS (CLI_OPT(CLI_OPT_STATE_DIR) | CLI_OPT(CLI_OPT_CA_DIR))

const cli_group cli_groups[] = {
    {"snp", "SEV-SNP evidence: decode, verify offline, import VCEKs"},
    {"fleet", "fleets of confidential VMs that share a policy"},
    {"policy", "versioned per-fleet appraisal policies"},
    {"admin", "admin keys for the daemon's admin API (remote mode: --server)"},
    {"instance", "instances (SVSMs) enrolled for persistence-key release"},
    {"audit", "the audit log: admin actions, key releases, refusals, certificates"},
    {"kbs-key", "this service's KBS key and the peer KBS keys it trusts"},
    {"ledger", "the rollback ledger of instances' filesystems"},
    {"ca", "the EK/IAK certificate authority: create, import, show, export for Keylime"},
    {"cert", "EK/IAK certificates the CA issued: list, show, revoke"},
    {"crl", "the certificate revocation list the issuing CA signs"},
    {"c509", "C509 (CBOR) certificates: encode, decode, verify"},
};
const size_t cli_groups_count = sizeof(cli_groups) / sizeof(cli_groups[0]);

const cli_command cli_commands[] = {
    {"snp", "verify", NULL, 0,
     CLI_OPT(CLI_OPT_REPORT) | CLI_OPT(CLI_OPT_VCEK) | TRUST_OPTS | CLI_OPT(CLI_OPT_POLICY) |
         CLI_OPT(CLI_OPT_AT) | DB_OPT | CLI_OPT(CLI_OPT_PRODUCT) | JSON_OPT,
     CLI_OPT(CLI_OPT_REPORT), "Verify a SEV-SNP report offline and appraise it with a policy",
     "Checks the report's signature with its VCEK/VLEK, the certificate's chain to the trusted\n"
     "roots and its binding to the report (TCB, chip id), then the policy if --policy is given.\n"
     "The certificate comes from --vcek, or from the database (--db) where import-vcek put it.\n"
     "Output says when a root other than the pinned AMD roots was trusted.\n"
     "Exit status 0 only if the evidence verifies and passes the policy (when given).",
     cmd_snp_verify},
    {"snp", "show", NULL, 0, CLI_OPT(CLI_OPT_REPORT) | CLI_OPT(CLI_OPT_PRODUCT) | JSON_OPT,
     CLI_OPT(CLI_OPT_REPORT), "Decode a SEV-SNP report without verifying it",
     "--product chooses the TCB layout for v2 reports, which do not name their product.",
     cmd_snp_show},
    {"snp", "import-vcek", NULL, 0,
     CLI_OPT(CLI_OPT_VCEK) | ADMIN_OPTS | CLI_OPT(CLI_OPT_PRODUCT) | TRUST_OPTS |
         CLI_OPT(CLI_OPT_AT) | JSON_OPT,
     CLI_OPT(CLI_OPT_VCEK), "Store a VCEK/VLEK in the database after checking its chain",
     "The certificate is stored under its product, kind, hwID and TCB, where the verifier and\n"
     "the daemon look it up. Certificates that do not chain to a trusted root are refused;\n"
     "--product, when given, must match the certificate's productName. With --server the\n"
     "daemon checks the chain again against its own roots (at its current time).",
     cmd_snp_import_vcek},
    {"fleet", "create", "NAME", 1, ADMIN_OPTS | CLI_OPT(CLI_OPT_DESCRIPTION) | JSON_OPT, 0,
     "Create a fleet", "NAME: 1 to 63 characters of A-Z a-z 0-9 . _ -", cmd_fleet_create},
    {"fleet", "list", NULL, 0, ADMIN_OPTS | JSON_OPT, 0, "List fleets and their latest policy",
     NULL, cmd_fleet_list},
    {"policy", "create", NULL, 0,
     CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_FILE) | ADMIN_OPTS | JSON_OPT,
     CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_FILE), "Set the first policy of a fleet (version 1)",
     "The document is validated first (see docs/policy.md) and stored in canonical form.",
     cmd_policy_put},
    {"policy", "update", NULL, 0,
     CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_FILE) | ADMIN_OPTS | JSON_OPT,
     CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_FILE), "Add a new version of a fleet's policy",
     "The document is validated first and stored in canonical form; earlier versions stay.",
     cmd_policy_put},
    {"policy", "show", NULL, 0,
     CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_VERSION) | ADMIN_OPTS | JSON_OPT,
     CLI_OPT(CLI_OPT_FLEET), "Print a fleet's policy (the latest or --version N)", NULL,
     cmd_policy_show},
    {"policy", "list", NULL, 0, CLI_OPT(CLI_OPT_FLEET) | ADMIN_OPTS | JSON_OPT,
     CLI_OPT(CLI_OPT_FLEET), "List every version of a fleet's policy", NULL, cmd_policy_list},
    {"policy", "check", NULL, 0, CLI_OPT(CLI_OPT_FILE) | JSON_OPT, CLI_OPT(CLI_OPT_FILE),
     "Validate a policy document without storing it",
     "Exit status 0 if the document is valid, 1 if it is not (the message names the key),\n"
     "2 if it cannot be read.",
     cmd_policy_check},
    {"admin", "keygen", NULL, 0, CLI_OPT(CLI_OPT_OUT) | CLI_OPT(CLI_OPT_KEY_TYPE) | JSON_OPT,
     CLI_OPT(CLI_OPT_OUT), "Make an admin key pair for the daemon's admin API",
     "Writes the private key to NAME.pem (mode 0600) and the public key to NAME.pub.pem.\n"
     "Install NAME.pub.pem in the daemon's admin_keys_dir (role admin) or in its auditors/\n"
     "subdirectory (read-only). NAME is the admin's name (1 to 56 of A-Z a-z 0-9 . _ -).\n"
     "Existing files are never overwritten.",
     cmd_admin_keygen},
    {"admin", "whoami", NULL, 0, REMOTE_OPTS | JSON_OPT, 0,
     "Check the admin key against the daemon: who the daemon says you are",
     "Needs --server URL (or VTPMCA_SERVER) and --admin-key FILE (or VTPMCA_ADMIN_KEY).",
     cmd_admin_whoami},
    /* Instances: offline on --db and the master key, or through the daemon (cmd_instance.c,
     * cmd_bulk.c; history in cmd_audit.c). */
    {"instance", "enroll", "ID", 1,
     ADMIN_OPTS | CLI_OPT(CLI_OPT_FLEET) | CLI_OPT(CLI_OPT_MODE) | CLI_OPT(CLI_OPT_HOST_DATA) |
         CLI_OPT(CLI_OPT_RESOURCE_PATH) | CLI_OPT(CLI_OPT_MASTER_KEY) | JSON_OPT,
     CLI_OPT(CLI_OPT_FLEET), "Enroll an instance for persistence-key release",
     "ID: 1 to 63 characters of A-Z a-z 0-9 . _ : -. The instance gets its key at its resource\n"
     "path (printed; put it on the instance's disk or configuration) once its evidence passes\n"
     "the fleet's policy and, with --host-data, carries that HOST_DATA. Generated mode: the\n"
     "service makes a 256-bit key, stored wrapped under the master key. Wrapped mode: nothing\n"
     "is stored; the instance presents a key wrapped by 'instance wrap-key'. Ids and resource\n"
     "paths of deleted instances are never enrolled again.",
     cmd_instance_enroll},
    {"instance", "bulk", NULL, 0,
     ADMIN_OPTS | CLI_OPT(CLI_OPT_FILE) | CLI_OPT(CLI_OPT_FORMAT) | CLI_OPT(CLI_OPT_BATCH) |
         CLI_OPT(CLI_OPT_OUT) | CLI_OPT(CLI_OPT_SKIP_BAD) | CLI_OPT(CLI_OPT_FLEET) |
         CLI_OPT(CLI_OPT_MASTER_KEY) | JSON_OPT,
     CLI_OPT(CLI_OPT_FILE), "Enroll many instances from a CSV or JSON Lines file",
     "Columns (a CSV header names them; JSON Lines objects use them as keys): instance, fleet\n"
     "(or --fleet for rows without), host_data, resource_path or resource_tag (default:\n"
     "generated), mode (generated or wrapped) and key (wrapped mode: a key to wrap, base64).\n"
     "Every row is checked first; bad rows are reported with their line numbers and nothing\n"
     "is enrolled unless --skip-bad. Each batch is one transaction: all of it or nothing.\n"
     "The enrolled instances and their resource paths go to --out as JSON Lines (else to\n"
     "stdout), batch by batch; a summary line follows. A progress bar shows on a terminal.\n"
     "Through the daemon each batch is one request: it must fit its max_body_bytes.",
     cmd_instance_bulk},
    {"instance", "wrap-key", "ID", 1,
     CLI_OPT(CLI_OPT_KEY) | ADMIN_OPTS | CLI_OPT(CLI_OPT_MASTER_KEY) | JSON_OPT,
     CLI_OPT(CLI_OPT_KEY), "Wrap a key you bring for a wrapped-key mode instance",
     "Prints the wrapped key (base64url) that the instance presents as {\"wrapped-key\": ...}\n"
     "with POST /kbs/v0/resource/<path>; it unwraps for this instance only. With --db or\n"
     "--server the instance must be enrolled in wrapped-key mode. Offline it needs\n"
     "--master-key or --db; through the daemon, the daemon's master key wraps.",
     cmd_instance_wrap_key},
    {"instance", "show", "ID", 1, ADMIN_OPTS | JSON_OPT, 0, "Show an enrolled instance", NULL,
     cmd_instance_show},
    {"instance", "list", NULL, 0, ADMIN_OPTS | CLI_OPT(CLI_OPT_FLEET) | JSON_OPT, 0,
     "List enrolled instances (of one fleet with --fleet)", NULL, cmd_instance_list},
    {"instance", "disable", "ID", 1, ADMIN_OPTS | JSON_OPT, 0,
     "Refuse key release to an instance until it is enabled again", NULL,
     cmd_instance_set_disabled},
    {"instance", "enable", "ID", 1, ADMIN_OPTS | JSON_OPT, 0, "Allow key release again", NULL,
     cmd_instance_set_disabled},
    {"instance", "re-enroll", "ID", 1, ADMIN_OPTS | JSON_OPT, 0,
     "Allow another EK at the instance's next certification",
     "For an instance whose vTPM was re-created: its next EK certification may present an EK\n"
     "other than the one certified before (once; the certification uses the grant up).",
     cmd_instance_reenroll},
    {"instance", "delete", "ID", 1, ADMIN_OPTS | JSON_OPT, 0,
     "Delete an instance for good, with its persistence key",
     "In one transaction: the instance and its wrapped persistence key are deleted (nothing\n"
     "can release that key again), its stored ledger key and any EK re-enrollment grant go\n"
     "too, and its valid certificates are revoked (cessationOfOperation). Its audit entries\n"
     "and ledger record stay, and its id and resource path are never enrolled again.",
     cmd_instance_delete},
    {"instance", "history", "ID", 1, ADMIN_OPTS | JSON_OPT, 0,
     "Print an instance's audit log: enrollment, key releases and refusals, admin actions", NULL,
     cmd_instance_history},
    /* The audit log (cmd_audit.c), KBS keys (cmd_kbs_key.c), the ledger (cmd_ledger.c). */
    {"audit", "tail", NULL, 0,
     ADMIN_OPTS | CLI_OPT(CLI_OPT_LIMIT) | CLI_OPT(CLI_OPT_FOLLOW) | CLI_OPT(CLI_OPT_JSONL) |
         JSON_OPT,
     0, "Print the newest audit events (20, or --limit N), then new ones with --follow",
     "--follow polls every second until interrupted (Ctrl-C); through the daemon it leaves out\n"
     "the audit rows of its own polls.",
     cmd_audit_tail},
    {"audit", "search", NULL, 0,
     ADMIN_OPTS | CLI_OPT(CLI_OPT_INSTANCE) | CLI_OPT(CLI_OPT_ACTION) | CLI_OPT(CLI_OPT_OUTCOME) |
         CLI_OPT(CLI_OPT_SINCE) | CLI_OPT(CLI_OPT_UNTIL) | CLI_OPT(CLI_OPT_LIMIT) |
         CLI_OPT(CLI_OPT_JSONL) | JSON_OPT,
     0, "Search the audit log by instance, action, outcome and time",
     "Events come oldest first. --jsonl prints one JSON object per line (an export); --json\n"
     "one array.",
     cmd_audit_search},
    {"kbs-key", "show", NULL, 0, REMOTE_OPTS | CLI_OPT(CLI_OPT_STATE_DIR) | JSON_OPT, 0,
     "Show this service's KBS public key and its fingerprint",
     "SVSMs remember this key from key release; peer services trust it with 'kbs-key trust'.\n"
     "Offline it is read from <--state-dir>/kbs-key.pem.",
     cmd_kbs_key_show},
    {"kbs-key", "list", NULL, 0, REMOTE_OPTS | CLI_OPT(CLI_OPT_TRUSTED_DIR) | JSON_OPT, 0,
     "List the peer KBS keys trusted for EK/IAK certification", NULL, cmd_kbs_key_list},
    {"kbs-key", "trust", "PEMFILE", 1,
     REMOTE_OPTS | CLI_OPT(CLI_OPT_TRUSTED_DIR) | CLI_OPT(CLI_OPT_STATE_DIR) | JSON_OPT, 0,
     "Trust a peer KBS public key for EK/IAK certification",
     "PEMFILE holds the peer's KBS public key (what 'kbs-key show' prints there). SVSMs that\n"
     "remember that key may then ask this CA for certificates. vtpmcad reads its\n"
     "trusted_kbs_keys_dir at start: the change applies at its next start.",
     cmd_kbs_key_trust},
    {"kbs-key", "untrust", "FINGERPRINT", 1, REMOTE_OPTS | CLI_OPT(CLI_OPT_TRUSTED_DIR) | JSON_OPT,
     0, "Stop trusting a peer KBS key",
     "FINGERPRINT: the 64 hex digits 'kbs-key list' shows. Applies at vtpmcad's next start.",
     cmd_kbs_key_untrust},
    {"ledger", "show", "ID", 1, ADMIN_OPTS | JSON_OPT, 0,
     "Show what the rollback ledger holds for an instance",
     "The latest accepted counter and root, the origin, whether the instance is locked after a\n"
     "fork or rollback attempt, and the refusal counts.",
     cmd_ledger_show},
    {"ledger", "clear", "ID", 1,
     REMOTE_OPTS | CLI_OPT(CLI_OPT_DB) | CLI_OPT(CLI_OPT_RESET) | JSON_OPT, 0,
     "Unlock an instance's ledger (with --reset, also forget its entry)",
     "Only vtpmcad writes the ledger, so this needs --server. --reset is for a re-provisioned\n"
     "filesystem: the next advance is accepted whatever its counter and becomes the origin.",
     cmd_ledger_clear},
    {"ledger", "require-admin-clear", "ID on|off", 2, REMOTE_OPTS | CLI_OPT(CLI_OPT_DB) | JSON_OPT,
     0, "Whether a fork or rollback attempt locks the instance",
     "With on, a refused fork or rollback locks the instance until 'ledger clear'. Needs\n"
     "--server.",
     cmd_ledger_require_clear},
    /* The CA (cmd_ca.c), its certificates (cmd_cert.c) and C509 files (cmd_c509.c). */
    {"ca", "init", NULL, 0,
     CA_DIR_OPTS | CLI_OPT(CLI_OPT_ROOT_ALG) | CLI_OPT(CLI_OPT_ISSUING_ALG) |
         CLI_OPT(CLI_OPT_SUBJECT) | JSON_OPT,
     0, "Create a root CA and an issuing CA",
     "Writes root-ca.pem, root-ca.key, issuing-ca.pem and issuing-ca.key into the CA directory\n"
     "(created 0700; keys 0600), where vtpmcad loads the CA at its next start. Refuses to\n"
     "overwrite an existing CA. Move root-ca.key to offline storage afterwards: only a new\n"
     "issuing CA needs it.",
     cmd_ca_init},
    {"ca", "import", NULL, 0,
     CA_DIR_OPTS | CLI_OPT(CLI_OPT_ROOT_CERT) | CLI_OPT(CLI_OPT_ROOT_KEY) |
         CLI_OPT(CLI_OPT_ISSUING_CERT) | CLI_OPT(CLI_OPT_ISSUING_KEY) | JSON_OPT,
     CLI_OPT(CLI_OPT_ROOT_CERT) | CLI_OPT(CLI_OPT_ISSUING_CERT) | CLI_OPT(CLI_OPT_ISSUING_KEY),
     "Install an existing root and issuing CA (PEM files)",
     "The root must be self-signed, the issuing CA signed by it, each key must match its\n"
     "certificate, and both must use ECDSA (P-256, P-384) or RSA (2048 bits or more) with\n"
     "PKCS#1 v1.5 signatures. Nothing is written when a check fails.",
     cmd_ca_import},
    {"ca", "show", NULL, 0, CA_DIR_OPTS | JSON_OPT, 0, "Show the CA certificates", NULL,
     cmd_ca_show},
    {"ca", "export-keylime", "DIR", 1, CA_DIR_OPTS | JSON_OPT, 0,
     "Write the CA certificates for Keylime's tpm_cert_store",
     "Writes vtpmca-issuing-ca.pem and vtpmca-root-ca.pem (one certificate each) into DIR.",
     cmd_ca_export_keylime},
    {"cert", "list", NULL, 0, ADMIN_OPTS | CLI_OPT(CLI_OPT_INSTANCE) | JSON_OPT, 0,
     "List issued certificates (of one instance with --instance)", NULL, cmd_cert_list},
    {"cert", "show", "SERIAL", 1,
     ADMIN_OPTS | CLI_OPT(CLI_OPT_PEM) | CLI_OPT(CLI_OPT_DER_OUT) | JSON_OPT, 0,
     "Show an issued certificate and the instance identity it carries",
     "SERIAL is hexadecimal, with or without colons. --pem prints only the certificate;\n"
     "--der-out writes its DER (X.509 and type 3 C509 certificates).",
     cmd_cert_show},
    {"cert", "revoke", "SERIAL", 1, ADMIN_OPTS | CLI_OPT(CLI_OPT_REASON) | JSON_OPT, 0,
     "Revoke an issued certificate",
     "The revocation is recorded in the database and the audit log; vtpmcad's CRL lists it\n"
     "from its next request. A certificate is revoked once. Needs the admin role remotely.",
     cmd_cert_revoke},
    {"crl", "show", NULL, 0, DB_OPT | CA_DIR_OPTS | CLI_OPT(CLI_OPT_DER_OUT) | JSON_OPT, DB_OPT,
     "Sign a CRL of the current revocations and print it",
     "Needs the issuing CA's key. The CRL takes the next CRL number, as the daemon's do;\n"
     "--der-out writes it.",
     cmd_crl_show},
    {"c509", "encode", NULL, 0, CLI_OPT(CLI_OPT_IN) | CLI_OPT(CLI_OPT_OUT) | JSON_OPT,
     CLI_OPT(CLI_OPT_IN) | CLI_OPT(CLI_OPT_OUT), "Re-encode an X.509 certificate as C509 (type 3)",
     "--in is a strict-DER certificate (DER or PEM); --out receives the CBOR.", cmd_c509_encode},
    {"c509", "decode", NULL, 0, CLI_OPT(CLI_OPT_IN) | CLI_OPT(CLI_OPT_DER_OUT) | JSON_OPT,
     CLI_OPT(CLI_OPT_IN), "Show a C509 certificate (type 2 or 3)",
     "--der-out writes the X.509 DER that a type 3 certificate re-encodes, byte for byte.",
     cmd_c509_decode},
    {"c509", "verify", NULL, 0, CLI_OPT(CLI_OPT_IN) | CLI_OPT(CLI_OPT_ISSUER) | JSON_OPT,
     CLI_OPT(CLI_OPT_IN) | CLI_OPT(CLI_OPT_ISSUER),
     "Check a C509 certificate's signature with its issuer's certificate",
     "Exit status 0 when the signature verifies with --issuer's key and the certificate\n"
     "names --issuer's subject as its issuer, 1 when not.",
     cmd_c509_verify},
};
const size_t cli_commands_count = sizeof(cli_commands) / sizeof(cli_commands[0]);

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static bool group_exists(const char *group)
{
    for (size_t i = 0; i < cli_groups_count; i++) {
        if (strcmp(cli_groups[i].name, group) == 0)
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    /* Library warnings (e.g. a rejected certificate) repeat what the command reports in its
     * one error line; only errors are worth a second line. */
    vtpmca_log_setup(VTPMCA_LOG_ERROR, VTPMCA_LOG_LOGFMT, 2);
    if (argc < 2) {
        cli_print_program_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *group = argv[1];
    if (is_help(group)) {
        cli_print_program_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(group, "--version") == 0) {
        printf("vtpmca %s\n", VTPMCA_VERSION);
        return CLI_EXIT_OK;
    }
    if (!group_exists(group)) {
        fprintf(stderr, "vtpmca: unknown command group '%s' (see 'vtpmca --help')\n", group);
        return CLI_EXIT_USAGE;
    }
    if (argc < 3) {
        cli_print_group_help(group, stderr);
        return CLI_EXIT_USAGE;
    }
    if (is_help(argv[2])) {
        cli_print_group_help(group, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < cli_commands_count; i++) {
        const cli_command *cmd = &cli_commands[i];
        if (strcmp(cmd->group, group) != 0 || strcmp(cmd->name, argv[2]) != 0)
            continue;
        cli_opts opts;
        int rc = cli_parse(cmd, argc - 2, argv + 2, &opts);
        if (rc >= 0)
            return rc;
        return cmd->run(cmd, &opts);
    }
    fprintf(stderr, "vtpmca %s: unknown command '%s' (see 'vtpmca %s --help')\n", group, argv[2],
            group);
    return CLI_EXIT_USAGE;
}
