/* snp-testroot: makes a TEST-ONLY AMD-like SEV-SNP root, issues VCEK/VLEK certificates from it
 * and signs synthetic attestation reports, for demos, integrators and shell tests.
 * Exit status: 0 success, 1 operation failed, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "vtpmca/cli_util.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/sim_platform.h"
#include "vtpmca/snp_testsigner.h"

#define CHIP_ID_LEN 64
#define TURIN_HWID_LEN 8

static const char TEST_ONLY_NOTICE[] =
    "snp-testroot: TEST-ONLY SEV-SNP root (OU=vtpmca-test), not AMD's: never trust it in "
    "production\n";

static const char MAIN_USAGE[] =
    "usage: snp-testroot <command> [options]\n"
    "\n"
    "A TEST-ONLY stand-in for AMD's SEV-SNP key hierarchy (ARK -> ASK/ASVK -> VCEK/VLEK).\n"
    "\n"
    "commands:\n"
    "  init    create a test root (ARK, ASK, ASVK and their keys) in a directory\n"
    "  cert    issue a VCEK or VLEK certificate from a test root\n"
    "  report  sign a synthetic attestation report with a VCEK/VLEK key\n"
    "\n"
    "Run 'snp-testroot <command> --help' for the options of a command.\n";

static const char INIT_USAGE[] =
    "usage: snp-testroot init --dir DIR --product milan|genoa|turin [--bits 2048|3072|4096]\n"
    "                         [--force]\n"
    "\n"
    "Writes <product>_ark.pem, <product>_ask.pem, <product>_asvk_ark.pem (the layout of\n"
    "AMD's published roots, readable by 'vtpmcad --extra-roots-dir') and the private keys\n"
    "<product>_ark.key.pem, <product>_ask.key.pem, <product>_asvk.key.pem (mode 0600).\n"
    "\n"
    "  --dir DIR        directory to write (created with mode 0700 if missing)\n"
    "  --product P      milan, genoa or turin\n"
    "  --bits N         RSA size of the ARK/ASK/ASVK keys (default 4096 like AMD; 2048 is\n"
    "                   much faster to generate)\n"
    "  --force          replace a test root of the same product already in DIR\n";

static const char CERT_USAGE[] =
    "usage: snp-testroot cert --dir DIR --product P --chip-id HEX --tcb SPEC [--vlek]\n"
    "                         [--csp-id TEXT] --out CERT.der --key-out KEY.pem\n"
    "\n"
    "Issues a VCEK (or with --vlek a VLEK) with AMD's extensions, signed by the test root's\n"
    "ASK (ASVK), and a fresh P-384 key for it.\n"
    "\n"
    "  --dir DIR        test root directory made by 'snp-testroot init'\n"
    "  --product P      milan, genoa or turin\n"
    "  --chip-id HEX    the chip's hwID: 128 hex digits (Turin: 16 hex digits also accepted,\n"
    "                   the rest zero); not used for a VLEK\n"
    "  --tcb SPEC       bl=N,tee=N,snp=N,ucode=N[,fmc=N] (fmc on Turin only; each 0..255)\n"
    "  --vlek           issue a VLEK instead of a VCEK\n"
    "  --csp-id TEXT    the VLEK's csp_id (default vtpmca-test)\n"
    "  --out FILE       certificate, DER\n"
    "  --key-out FILE   private key, PEM (mode 0600)\n";

static const char REPORT_USAGE[] =
    "usage: snp-testroot report --product P --key KEY.pem --chip-id HEX --tcb SPEC\n"
    "                           [--version 2|3|5] [--measurement HEX96] [--report-data HEX128]\n"
    "                           [--host-data HEX64] [--policy 0xHEX] [--vmpl N] [--vlek]\n"
    "                           --out REPORT.bin\n"
    "\n"
    "Signs a synthetic 1184-byte SEV-SNP attestation report. Fields not given keep sensible\n"
    "defaults: policy 0x30000 (SMT allowed, reserved bit), VMPL 0, the TCB in every TCB\n"
    "field, the product's CPUID (version 3 and later).\n"
    "\n"
    "  --product P          milan, genoa or turin\n"
    "  --key FILE           the VCEK/VLEK private key (PEM) from 'snp-testroot cert'\n"
    "  --chip-id HEX        128 hex digits (Turin: 16 also accepted); optional with --vlek\n"
    "  --tcb SPEC           bl=N,tee=N,snp=N,ucode=N[,fmc=N], as given to 'cert'\n"
    "  --version N          report version 2, 3 or 5 (default 3)\n"
    "  --measurement HEX    48 bytes (96 hex digits)\n"
    "  --report-data HEX    64 bytes (128 hex digits)\n"
    "  --host-data HEX      32 bytes (64 hex digits)\n"
    "  --policy HEX         guest policy, e.g. 0x30000 (written as given)\n"
    "  --vmpl N             0..3 (default 0)\n"
    "  --vlek               the report names the VLEK as its signing key\n"
    "  --out FILE           the report, binary\n";

#define TOOL "snp-testroot"
/* One clear line naming the problem, then where to find the usage. */
#define usage_error(command, ...) vt_cli_usage_error(TOOL, command, __VA_ARGS__)

static bool parse_product(const char *text, snp_product *out)
{
    return text != NULL && snp_product_parse(text, out) == VTPMCA_OK;
}

static bool parse_ulong(const char *text, unsigned long max, unsigned long *out)
{
    if (text == NULL || text[0] == '\0' || text[0] == '-')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (errno != 0 || *end != '\0' || value > max)
        return false;
    *out = (unsigned long)value;
    return true;
}

static int cmd_init(int argc, char **argv)
{
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},  {"product", required_argument, NULL, 'p'},
        {"bits", required_argument, NULL, 'b'}, {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *product_text = NULL;
    unsigned long bits = 4096;
    bool force = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'p':
            product_text = optarg;
            break;
        case 'b':
            if (!parse_ulong(optarg, 4096, &bits) || (bits != 2048 && bits != 3072 && bits != 4096))
                return usage_error("init", "--bits must be 2048, 3072 or 4096, got %s", optarg);
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            fputs(INIT_USAGE, stdout);
            return EXIT_SUCCESS;
        default:
            return vt_cli_bad_option(TOOL, "init", opt, argv);
        }
    }
    snp_product product;
    if (optind != argc)
        return usage_error("init", "unexpected argument \"%s\"", argv[optind]);
    if (dir == NULL)
        return usage_error("init", "%s", "--dir is required");
    if (!parse_product(product_text, &product))
        return usage_error("init", "--product must be milan, genoa or turin, got %s",
                           product_text != NULL ? product_text : "nothing");

    fputs(TEST_ONLY_NOTICE, stderr);
    char existing[4096];
    /* Never silently replace a root (possibly AMD's own certificates) in DIR. */
    if (!force && snp_test_root_files_exist(dir, product, existing, sizeof(existing))) {
        fprintf(stderr, "snp-testroot init: %s exists; use --force to replace the %s root in %s\n",
                existing, snp_product_name(product), dir);
        return EXIT_FAILURE;
    }
    vtpmca_diag diag = {""};
    snp_test_root *root = NULL;
    vtpmca_err err = snp_test_root_new(product, (unsigned)bits, &root, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_save(root, dir, &diag);
    snp_test_root_free(root);
    if (err != VTPMCA_OK)
        return vt_cli_failed(TOOL, "init", err, &diag);
    printf("wrote a %s test root (RSA-%lu) to %s\n", snp_product_name(product), bits, dir);
    return EXIT_SUCCESS;
}

static int cmd_cert(int argc, char **argv)
{
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},     {"product", required_argument, NULL, 'p'},
        {"chip-id", required_argument, NULL, 'c'}, {"tcb", required_argument, NULL, 't'},
        {"vlek", no_argument, NULL, 'v'},          {"csp-id", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},     {"key-out", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *product_text = NULL, *chip_text = NULL, *tcb_text = NULL;
    const char *csp_id = NULL, *out_path = NULL, *key_path = NULL;
    bool vlek = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'p':
            product_text = optarg;
            break;
        case 'c':
            chip_text = optarg;
            break;
        case 't':
            tcb_text = optarg;
            break;
        case 'v':
            vlek = true;
            break;
        case 's':
            csp_id = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'k':
            key_path = optarg;
            break;
        case 'h':
            fputs(CERT_USAGE, stdout);
            return EXIT_SUCCESS;
        default:
            return vt_cli_bad_option(TOOL, "cert", opt, argv);
        }
    }
    if (optind != argc)
        return usage_error("cert", "unexpected argument \"%s\"", argv[optind]);
    const char *missing = dir == NULL            ? "--dir"
                          : product_text == NULL ? "--product"
                          : tcb_text == NULL     ? "--tcb"
                          : out_path == NULL     ? "--out"
                          : key_path == NULL     ? "--key-out"
                          : !vlek && !chip_text  ? "--chip-id"
                                                 : NULL;
    if (missing != NULL)
        return usage_error("cert", "%s is required", missing);
    snp_test_cert_params params = {.kind = vlek ? SNP_SIGNER_VLEK : SNP_SIGNER_VCEK};
    snp_product product;
    vtpmca_diag why = {""};
    if (!parse_product(product_text, &product))
        return usage_error("cert", "--product must be milan, genoa or turin, got %s", product_text);
    if (sim_tcb_parse(tcb_text, product, &params.tcb, &why) != VTPMCA_OK)
        return usage_error("cert", "--tcb: %s", why.msg);
    if (chip_text != NULL && vlek)
        return usage_error("cert", "%s", "--chip-id does not apply to a VLEK");
    if (csp_id != NULL && !vlek)
        return usage_error("cert", "%s", "--csp-id needs --vlek");
    if (chip_text != NULL &&
        sim_chip_id_parse(chip_text, product, params.chip_id, &why) != VTPMCA_OK)
        return usage_error("cert", "--chip-id: %s, got \"%s\"", why.msg, chip_text);
    params.csp_id = csp_id;

    fputs(TEST_ONLY_NOTICE, stderr);
    vtpmca_diag diag = {""};
    snp_test_root *root = NULL;
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_err err = snp_test_root_load(dir, product, &root, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_issue_cert(root, &params, &key, &der, &der_len, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_key_write_pem(key, key_path, &diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(out_path, der, der_len, 0644, &diag);
    free(der);
    EVP_PKEY_free(key);
    snp_test_root_free(root);
    if (err != VTPMCA_OK)
        return vt_cli_failed(TOOL, "cert", err, &diag);
    printf("wrote %s %s (%s) and its key %s\n", snp_product_name(product), vlek ? "VLEK" : "VCEK",
           out_path, key_path);
    return EXIT_SUCCESS;
}

static int cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"product", required_argument, NULL, 'p'},
        {"key", required_argument, NULL, 'k'},
        {"chip-id", required_argument, NULL, 'c'},
        {"tcb", required_argument, NULL, 't'},
        {"version", required_argument, NULL, 'V'},
        {"measurement", required_argument, NULL, 'm'},
        {"report-data", required_argument, NULL, 'r'},
        {"host-data", required_argument, NULL, 'H'},
        {"policy", required_argument, NULL, 'P'},
        {"vmpl", required_argument, NULL, 'l'},
        {"vlek", no_argument, NULL, 'v'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *product_text = NULL, *key_path = NULL, *chip_text = NULL, *tcb_text = NULL;
    const char *measurement = NULL, *report_data = NULL, *host_data = NULL, *out_path = NULL;
    const char *policy_text = NULL;
    unsigned long version = 3, vmpl = 0;
    bool vlek = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            product_text = optarg;
            break;
        case 'k':
            key_path = optarg;
            break;
        case 'c':
            chip_text = optarg;
            break;
        case 't':
            tcb_text = optarg;
            break;
        case 'V':
            if (!parse_ulong(optarg, 5, &version) || (version != 2 && version != 3 && version != 5))
                return usage_error("report", "--version must be 2, 3 or 5, got %s", optarg);
            break;
        case 'm':
            measurement = optarg;
            break;
        case 'r':
            report_data = optarg;
            break;
        case 'H':
            host_data = optarg;
            break;
        case 'P':
            policy_text = optarg;
            break;
        case 'l':
            if (!parse_ulong(optarg, 3, &vmpl))
                return usage_error("report", "--vmpl must be 0..3, got %s", optarg);
            break;
        case 'v':
            vlek = true;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'h':
            fputs(REPORT_USAGE, stdout);
            return EXIT_SUCCESS;
        default:
            return vt_cli_bad_option(TOOL, "report", opt, argv);
        }
    }
    if (optind != argc)
        return usage_error("report", "unexpected argument \"%s\"", argv[optind]);
    const char *missing = product_text == NULL  ? "--product"
                          : key_path == NULL    ? "--key"
                          : tcb_text == NULL    ? "--tcb"
                          : out_path == NULL    ? "--out"
                          : !vlek && !chip_text ? "--chip-id"
                                                : NULL;
    if (missing != NULL)
        return usage_error("report", "%s is required", missing);
    snp_product product;
    snp_tcb tcb;
    uint8_t chip_id[CHIP_ID_LEN] = {0};
    vtpmca_diag why = {""};
    if (!parse_product(product_text, &product))
        return usage_error("report", "--product must be milan, genoa or turin, got %s",
                           product_text);
    if (sim_tcb_parse(tcb_text, product, &tcb, &why) != VTPMCA_OK)
        return usage_error("report", "--tcb: %s", why.msg);
    if (chip_text != NULL && sim_chip_id_parse(chip_text, product, chip_id, &why) != VTPMCA_OK)
        return usage_error("report", "--chip-id: %s, got \"%s\"", why.msg, chip_text);
    snp_report report;
    if (snp_test_report_defaults(&report, product, (uint32_t)version, chip_id, &tcb) != VTPMCA_OK)
        return usage_error("report", "%s", "cannot build a report from these values");
    if (measurement != NULL && vt_hex_decode_fixed(measurement, report.measurement,
                                                   sizeof(report.measurement)) != VTPMCA_OK)
        return usage_error("report", "--measurement must be 96 hex digits, got %s", measurement);
    if (report_data != NULL && vt_hex_decode_fixed(report_data, report.report_data,
                                                   sizeof(report.report_data)) != VTPMCA_OK)
        return usage_error("report", "--report-data must be 128 hex digits, got %s", report_data);
    if (host_data != NULL &&
        vt_hex_decode_fixed(host_data, report.host_data, sizeof(report.host_data)) != VTPMCA_OK)
        return usage_error("report", "--host-data must be 64 hex digits, got %s", host_data);
    if (policy_text != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long policy = strtoull(policy_text, &end, 16);
        if (policy_text[0] == '\0' || policy_text[0] == '-' || errno != 0 || *end != '\0')
            return usage_error("report", "--policy must be a 64-bit hex number, got %s",
                               policy_text);
        report.policy = policy;
    }
    report.vmpl = (uint32_t)vmpl;
    if (vlek)
        report.key_info = (uint32_t)SNP_SIGNER_VLEK << SNP_KEY_INFO_SIGNER_SHIFT;

    fputs(TEST_ONLY_NOTICE, stderr);
    vtpmca_diag diag = {""};
    EVP_PKEY *key = NULL;
    uint8_t wire[SNP_REPORT_SIZE];
    vtpmca_err err = snp_test_key_read_pem(key_path, &key, &diag);
    if (err == VTPMCA_OK)
        err = snp_test_report_sign(&report, key, wire, &diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(out_path, wire, sizeof(wire), 0644, &diag);
    EVP_PKEY_free(key);
    if (err != VTPMCA_OK)
        return vt_cli_failed(TOOL, "report", err, &diag);
    printf("wrote %s (version %lu, %s, signed by the %s)\n", out_path, version,
           snp_product_name(product), vlek ? "VLEK" : "VCEK");
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(MAIN_USAGE, stderr);
        return VT_CLI_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(MAIN_USAGE, stdout);
        return EXIT_SUCCESS;
    }
    /* Sub-command options start after the command name. */
    if (strcmp(command, "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(command, "cert") == 0)
        return cmd_cert(argc - 1, argv + 1);
    if (strcmp(command, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "snp-testroot: unknown command \"%s\"\n%s", command, MAIN_USAGE);
    return VT_CLI_EXIT_USAGE;
}
