/* svsm-sim: the reference SVSM client (TEST ONLY). It behaves like a COCONUT-SVSM plus its
 * host proxy (aproxy): a simulated SEV-SNP platform signs reports with a VCEK from a test
 * root, the KBS protocol 0.4.0 exchange releases the persistence key, the KBS ECDSA binding
 * is verified and its key remembered, and the key opens (or creates) a libtpms vTPM whose
 * state is kept encrypted in a local file. docs/svsm-sim.md describes it.
 * Exit status: 0 success, 1 refused or failed, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "vtpmca/cli_util.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jwe.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/ca_client.h"
#include "vtpmca/issuance.h"
#include "vtpmca/kbs_client.h"
#include "vtpmca/ledger_client.h"
#include "vtpmca/sim_platform.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/store.h"
#include "vtpmca/svsm_state.h"
#include "vtpmca/vtpm.h"

#define STATE_FILE "vtpm.state"
#define KBS_KEY_FILE "kbs-key.pem"
#define LEDGER_MARKER_FILE "ledger-instance" /* the instance id, once a boot used the ledger */
#define LEDGER_ATTEMPTS 3                    /* advances retried after a network failure */
#define DEFAULT_TCB "bl=3,tee=0,snp=8,ucode=115"
#define WRAPPED_KEY_FILE_MAX 16384

static const char TEST_ONLY_NOTICE[] =
    "svsm-sim: TEST-ONLY simulated SVSM and SEV-SNP platform (VCEK from a TEST root, not AMD)\n";

static const char MAIN_USAGE[] =
    "usage: svsm-sim <command> [options]\n"
    "\n"
    "A reference SVSM client for demos, tests and integrators (TEST ONLY): a simulated\n"
    "SEV-SNP platform, the KBS protocol 0.4.0 as the SVSM's host proxy speaks it, and a\n"
    "libtpms vTPM whose state is encrypted under the released persistence key.\n"
    "\n"
    "commands:\n"
    "  platform-init  make a simulated SEV-SNP chip and its VCEK, signed by a TEST root\n"
    "  boot           attest to a KBS, receive the persistence key, open or create the vTPM\n"
    "\n"
    "Run 'svsm-sim <command> --help' for the options of a command.\n"
    "Exit status: 0 success, 1 refused or failed, 2 usage error.\n";

static const char PLATFORM_INIT_USAGE[] =
    "usage: svsm-sim platform-init --platform DIR --test-root DIR --product milan|genoa|turin\n"
    "                              [--chip-id HEX] [--tcb bl=N,tee=N,snp=N,ucode=N[,fmc=N]]\n"
    "\n"
    "Makes a simulated SEV-SNP chip: a chip id, a TCB, and a VCEK (P-384 key and certificate)\n"
    "issued by the TEST root. Writes DIR/vcek.der and DIR/vcek.key.pem (mode 0600). The\n"
    "server cannot fetch a test VCEK from AMD's KDS: an admin imports DIR/vcek.der with\n"
    "'vtpmca snp import-vcek'.\n"
    "\n"
    "  --platform DIR   platform directory to create (never overwritten)\n"
    "  --test-root DIR  a TEST root made by 'snp-testroot init'\n"
    "  --product P      milan, genoa or turin\n"
    "  --chip-id HEX    the chip id: 128 hex digits (Turin: 16); random when absent\n"
    "  --tcb SPEC       the platform TCB (default " DEFAULT_TCB "; fmc on Turin only)\n";

static const char BOOT_USAGE[] =
    "usage: svsm-sim boot --server URL --platform DIR --state DIR --resource REPO/TYPE/TAG\n"
    "                     [--flavour svsm|trustee] [--tee-key p521|p384|p256|rsa]\n"
    "                     [--measurement HEX96] [--host-data HEX64] [--report-version 2|3|5]\n"
    "                     [--wrapped-key FILE] [--kbs-key PEM]\n"
    "                     [--instance ID] [--ledger auto|on|off]\n"
    "                     [--certify x509|c509|none] [--ca-encoding json|cbor]\n"
    "                     [--iak-proof evidence|activation|none] [--ek rsa2048|p256|p384]\n"
    "\n"
    "Boots like an SVSM: KBS auth (nonce + session cookie), an ephemeral TEE key, an SNP\n"
    "report binding both in REPORT_DATA, attest, the resource (the persistence key as a JWE),\n"
    "the KBS ECDSA binding, then the vTPM: DIR/vtpm.state is opened with the released key, or\n"
    "a new vTPM is made and saved there. Nothing is written unless every step succeeds.\n"
    "\n"
    "  --server URL          the KBS (vtpmcad), e.g. http://127.0.0.1:8080\n"
    "  --platform DIR        a platform made by 'svsm-sim platform-init'\n"
    "  --state DIR           the instance's state directory (vtpm.state, kbs-key.pem)\n"
    "  --resource PATH       the instance's resource path REPO/TYPE/TAG\n"
    "  --flavour F           REPORT_DATA binding: svsm (SHA-512(X||Y||nonce), P-521; the\n"
    "                        default) or trustee (SHA-384 of the JCS runtime data)\n"
    "  --tee-key K           ephemeral TEE key: p521 (svsm; the only choice there), p384 (the\n"
    "                        trustee default), p256 or rsa (RSA-2048, RSA-OAEP-256)\n"
    "  --measurement HEX     the launch measurement, 48 bytes (default all zero)\n"
    "  --host-data HEX       HOST_DATA, 32 bytes (default all zero)\n"
    "  --report-version N    SNP report version 2, 3 or 5 (default 3)\n"
    "  --wrapped-key FILE    wrapped-key mode: present this blob (raw, hex or base64) with a\n"
    "                        POST to the resource\n"
    "  --kbs-key PEM         pin the KBS public key (PEM); otherwise the first boot\n"
    "                        remembers it in DIR/kbs-key.pem and later boots require it\n"
    "  --instance ID         the instance id the admin enrolled (the rollback ledger's name\n"
    "                        for this instance); remembered in DIR/ledger-instance\n"
    "  --ledger MODE         rollback ledger: auto (the default: used when the instance id is\n"
    "                        known and the server offers it; once used, always required), on\n"
    "                        (required) or off. On open the state must not be older than the\n"
    "                        ledger's record; every state write is acknowledged by the ledger\n"
    "                        before the file is written\n"
    "  --certify F           EK/IAK certificates from the service's CA before the state is\n"
    "                        saved: x509 (the default), c509 or none. The EK certificate is\n"
    "                        checked and written to the vTPM's NV at its standard index. When\n"
    "                        not given and the server has no CA, the step is skipped\n"
    "  --ca-encoding E       body encoding of the CA requests: cbor (the default) or json\n"
    "  --iak-proof P         how the IAK is proven to share the EK's TPM: evidence (REPORT_DATA\n"
    "                        binds it; the default), activation (TPM2_ActivateCredential of the\n"
    "                        CA's credential) or none (no IAK)\n"
    "  --ek K                the EK: rsa2048 (template L-1, the default), p256 (L-2) or p384\n"
    "                        (H-3); later boots of a state must use the same kind\n";

/* ---- shared helpers ---- */

#define TOOL "svsm-sim"
#define usage_error(command, ...) vt_cli_usage_error(TOOL, command, __VA_ARGS__)

static void print_hex(const uint8_t *data, size_t len)
{
    char hex[2 * 128 + 1];
    if (2 * len + 1 > sizeof(hex))
        len = (sizeof(hex) - 1) / 2;
    vt_hex_encode(data, len, hex, sizeof(hex));
    fputs(hex, stdout);
}

static bool parse_hex_option(const char *text, uint8_t *out, size_t len)
{
    return vt_hex_decode_fixed(text, out, len) == VTPMCA_OK;
}

/* ---- platform-init ---- */

static int cmd_platform_init(int argc, char **argv)
{
    static const struct option options[] = {
        {"platform", required_argument, NULL, 'p'},
        {"test-root", required_argument, NULL, 'r'},
        {"product", required_argument, NULL, 'P'},
        {"chip-id", required_argument, NULL, 'c'},
        {"tcb", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *root_dir = NULL, *product_text = NULL, *chip_text = NULL;
    const char *tcb_text = DEFAULT_TCB;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            dir = optarg;
            break;
        case 'r':
            root_dir = optarg;
            break;
        case 'P':
            product_text = optarg;
            break;
        case 'c':
            chip_text = optarg;
            break;
        case 't':
            tcb_text = optarg;
            break;
        case 'h':
            fputs(PLATFORM_INIT_USAGE, stdout);
            return EXIT_SUCCESS;
        default:
            return vt_cli_bad_option(TOOL, "platform-init", opt, argv);
        }
    }
    if (optind != argc)
        return usage_error("platform-init", "unexpected argument \"%s\"", argv[optind]);
    const char *missing = dir == NULL            ? "--platform"
                          : root_dir == NULL     ? "--test-root"
                          : product_text == NULL ? "--product"
                                                 : NULL;
    if (missing != NULL)
        return usage_error("platform-init", "%s is required", missing);
    sim_platform_params params = {0};
    vtpmca_diag diag = {""};
    if (snp_product_parse(product_text, &params.product) != VTPMCA_OK)
        return usage_error("platform-init", "--product must be milan, genoa or turin, got \"%s\"",
                           product_text);
    if (sim_tcb_parse(tcb_text, params.product, &params.tcb, &diag) != VTPMCA_OK)
        return usage_error("platform-init", "--tcb: %s", diag.msg);
    if (chip_text != NULL &&
        sim_chip_id_parse(chip_text, params.product, params.chip_id, &diag) != VTPMCA_OK)
        return usage_error("platform-init", "--chip-id: %s", diag.msg);

    fputs(TEST_ONLY_NOTICE, stderr);
    vtpmca_err err = VTPMCA_OK;
    if (chip_text == NULL)
        err = sim_chip_id_random(params.product, params.chip_id, &diag);
    if (err == VTPMCA_OK)
        err = sim_platform_create(dir, root_dir, &params, &diag);
    if (err != VTPMCA_OK)
        return vt_cli_failed(TOOL, "platform-init", err, &diag);
    printf("platform: simulated %s chip (TEST)\n", snp_product_name(params.product));
    printf("  chip id  ");
    print_hex(params.chip_id, sizeof(params.chip_id));
    printf("\n  TCB      bl=%u tee=%u snp=%u ucode=%u", params.tcb.bootloader, params.tcb.tee,
           params.tcb.snp, params.tcb.microcode);
    if (params.product == SNP_PRODUCT_TURIN)
        printf(" fmc=%u", params.tcb.fmc);
    printf("\n  VCEK     %s/%s (key %s/%s, mode 0600)\n", dir, SIM_PLATFORM_VCEK_FILE, dir,
           SIM_PLATFORM_VCEK_KEY_FILE);
    printf("The server cannot fetch a TEST VCEK from AMD's KDS; an admin imports it:\n"
           "  vtpmca snp import-vcek --db DB --vcek %s/%s --roots %s\n",
           dir, SIM_PLATFORM_VCEK_FILE, root_dir);
    return EXIT_SUCCESS;
}

/* ---- boot ---- */

typedef enum { TEE_KEY_P521 = 0, TEE_KEY_P384, TEE_KEY_P256, TEE_KEY_RSA } tee_key_kind;

typedef enum { LEDGER_MODE_AUTO = 0, LEDGER_MODE_ON, LEDGER_MODE_OFF } ledger_mode;

typedef enum { IAK_PROOF_EVIDENCE = 0, IAK_PROOF_ACTIVATION, IAK_PROOF_NONE } iak_proof_mode;

typedef struct {
    const char *server, *platform_dir, *state_dir, *resource, *wrapped_key_path, *kbs_key_path;
    const char *instance; /* --instance, NULL when not given */
    ledger_mode ledger;
    issuance_format certify_format; /* --certify */
    bool certify_none;
    bool certify_explicit; /* --certify given: a server without a CA is then a failure */
    issuance_encoding ca_encoding;
    iak_proof_mode iak_proof;
    vtpm_ek_kind ek_kind;
    report_data_flavour flavour;
    tee_key_kind tee_key;
    uint32_t report_version;
    uint8_t measurement[48];
    uint8_t host_data[32];
} boot_options;

typedef struct {
    boot_options opt;
    char state_path[PATH_MAX];
    char kbs_key_path[PATH_MAX];
    sim_platform *platform;
    kbs_client *kbs;
    uint8_t *wrapped_key;
    size_t wrapped_key_len;
    EVP_PKEY *expected_kbs_key; /* remembered or pinned; NULL on first use */
    bool kbs_key_remembered;    /* <state>/kbs-key.pem exists */
    EVP_PKEY *tee_key;
    json_t *tee_jwk;
    uint8_t report[SNP_REPORT_SIZE];
    json_t *jwe;
    uint8_t persistence_key[JWE_MAX_SECRET];
    size_t persistence_key_len;
    EVP_PKEY *kbs_pubkey; /* from the verified binding */
    /* Rollback ledger: the client when this boot uses it, the instance id, and whether the
     * state dir says an earlier boot used it (then it is required). */
    ledger_client *ledger;
    char ledger_instance[STORE_INSTANCE_ID_MAX + 1];
    char ledger_marker_path[PATH_MAX];
    bool ledger_remembered;
    const char *failed_step; /* a step run inside another one that failed (for the report) */
} boot_ctx;

static const char *const tee_key_names[] = {"p521", "p384", "p256", "rsa"};

static bool parse_tee_key(const char *text, tee_key_kind *out)
{
    for (size_t i = 0; i < sizeof(tee_key_names) / sizeof(tee_key_names[0]); i++) {
        if (strcmp(text, tee_key_names[i]) == 0) {
            *out = (tee_key_kind)i;
            return true;
        }
    }
    return false;
}

/* Parses boot's options into *opt; returns -1 to go on, or the exit code. */
static int parse_boot_options(int argc, char **argv, boot_options *opt)
{
    static const struct option options[] = {
        {"server", required_argument, NULL, 's'},
        {"platform", required_argument, NULL, 'p'},
        {"state", required_argument, NULL, 'S'},
        {"resource", required_argument, NULL, 'r'},
        {"flavour", required_argument, NULL, 'f'},
        {"tee-key", required_argument, NULL, 'k'},
        {"measurement", required_argument, NULL, 'm'},
        {"host-data", required_argument, NULL, 'H'},
        {"report-version", required_argument, NULL, 'v'},
        {"wrapped-key", required_argument, NULL, 'w'},
        {"kbs-key", required_argument, NULL, 'K'},
        {"instance", required_argument, NULL, 'i'},
        {"ledger", required_argument, NULL, 'l'},
        {"certify", required_argument, NULL, 'c'},
        {"ca-encoding", required_argument, NULL, 'e'},
        {"iak-proof", required_argument, NULL, 'I'},
        {"ek", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(opt, 0, sizeof(*opt));
    opt->flavour = REPORT_DATA_FLAVOUR_SVSM;
    opt->report_version = 3;
    opt->certify_format = ISSUANCE_FORMAT_X509;
    opt->ca_encoding = ISSUANCE_ENC_CBOR;
    const char *tee_key_text = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 's':
            opt->server = optarg;
            break;
        case 'p':
            opt->platform_dir = optarg;
            break;
        case 'S':
            opt->state_dir = optarg;
            break;
        case 'r':
            opt->resource = optarg;
            break;
        case 'f':
            if (kbs_flavour_parse(optarg, &opt->flavour) != VTPMCA_OK)
                return usage_error("boot", "--flavour must be svsm or trustee, got \"%s\"", optarg);
            break;
        case 'k':
            if (!parse_tee_key(optarg, &opt->tee_key))
                return usage_error("boot", "--tee-key must be p521, p384, p256 or rsa, got \"%s\"",
                                   optarg);
            tee_key_text = optarg;
            break;
        case 'm':
            if (!parse_hex_option(optarg, opt->measurement, sizeof(opt->measurement)))
                return usage_error("boot", "--measurement must be 96 hex digits");
            break;
        case 'H':
            if (!parse_hex_option(optarg, opt->host_data, sizeof(opt->host_data)))
                return usage_error("boot", "--host-data must be 64 hex digits");
            break;
        case 'v':
            if (strcmp(optarg, "2") != 0 && strcmp(optarg, "3") != 0 && strcmp(optarg, "5") != 0)
                return usage_error("boot", "--report-version must be 2, 3 or 5, got \"%s\"",
                                   optarg);
            opt->report_version = (uint32_t)(optarg[0] - '0');
            break;
        case 'w':
            opt->wrapped_key_path = optarg;
            break;
        case 'K':
            opt->kbs_key_path = optarg;
            break;
        case 'i':
            if (store_check_instance_id(optarg, NULL) != VTPMCA_OK)
                return usage_error("boot",
                                   "--instance must be 1..63 characters of [A-Za-z0-9._:-], "
                                   "got \"%s\"",
                                   optarg);
            opt->instance = optarg;
            break;
        case 'l':
            if (strcmp(optarg, "auto") == 0)
                opt->ledger = LEDGER_MODE_AUTO;
            else if (strcmp(optarg, "on") == 0)
                opt->ledger = LEDGER_MODE_ON;
            else if (strcmp(optarg, "off") == 0)
                opt->ledger = LEDGER_MODE_OFF;
            else
                return usage_error("boot", "--ledger must be auto, on or off, got \"%s\"", optarg);
            break;
        case 'c':
            opt->certify_explicit = true;
            opt->certify_none = strcmp(optarg, "none") == 0;
            if (!opt->certify_none &&
                issuance_format_parse(optarg, &opt->certify_format) != VTPMCA_OK)
                return usage_error("boot", "--certify must be x509, c509 or none, got \"%s\"",
                                   optarg);
            break;
        case 'e':
            if (strcmp(optarg, "json") == 0)
                opt->ca_encoding = ISSUANCE_ENC_JSON;
            else if (strcmp(optarg, "cbor") == 0)
                opt->ca_encoding = ISSUANCE_ENC_CBOR;
            else
                return usage_error("boot", "--ca-encoding must be json or cbor, got \"%s\"",
                                   optarg);
            break;
        case 'I':
            if (strcmp(optarg, "evidence") == 0)
                opt->iak_proof = IAK_PROOF_EVIDENCE;
            else if (strcmp(optarg, "activation") == 0)
                opt->iak_proof = IAK_PROOF_ACTIVATION;
            else if (strcmp(optarg, "none") == 0)
                opt->iak_proof = IAK_PROOF_NONE;
            else
                return usage_error(
                    "boot", "--iak-proof must be evidence, activation or none, got \"%s\"", optarg);
            break;
        case 'E':
            if (strcmp(optarg, "rsa2048") == 0)
                opt->ek_kind = VTPM_EK_RSA2048;
            else if (strcmp(optarg, "p256") == 0)
                opt->ek_kind = VTPM_EK_ECC_P256;
            else if (strcmp(optarg, "p384") == 0)
                opt->ek_kind = VTPM_EK_ECC_P384;
            else
                return usage_error("boot", "--ek must be rsa2048, p256 or p384, got \"%s\"",
                                   optarg);
            break;
        case 'h':
            fputs(BOOT_USAGE, stdout);
            return EXIT_SUCCESS;
        default:
            return vt_cli_bad_option(TOOL, "boot", c, argv);
        }
    }
    if (optind != argc)
        return usage_error("boot", "unexpected argument \"%s\"", argv[optind]);
    const char *missing = opt->server == NULL         ? "--server"
                          : opt->platform_dir == NULL ? "--platform"
                          : opt->state_dir == NULL    ? "--state"
                          : opt->resource == NULL     ? "--resource"
                                                      : NULL;
    if (missing != NULL)
        return usage_error("boot", "%s is required", missing);
    vtpmca_diag diag = {""};
    if (store_check_resource_path(opt->resource, &diag) != VTPMCA_OK)
        return usage_error("boot", "--resource: %s", diag.msg);
    if (tee_key_text == NULL)
        opt->tee_key = opt->flavour == REPORT_DATA_FLAVOUR_SVSM ? TEE_KEY_P521 : TEE_KEY_P384;
    else if (opt->flavour == REPORT_DATA_FLAVOUR_SVSM && opt->tee_key != TEE_KEY_P521)
        return usage_error("boot",
                           "the svsm flavour uses a P-521 tee key (the SVSM's choice); "
                           "--tee-key %s needs --flavour trustee",
                           tee_key_text);
    return -1;
}

/* Reads a public key PEM (SubjectPublicKeyInfo). */
static vtpmca_err read_public_pem(const char *path, EVP_PKEY **out, vtpmca_diag *diag)
{
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, KBS_KEY_FILE_MAX, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    *out = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(data);
    if (*out == NULL) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s is not a PEM public key", path);
        vtpmca_diag_append_openssl(diag);
    }
    return err;
}

static vtpmca_err write_public_pem(const EVP_PKEY *key, const char *path, vtpmca_diag *diag)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len = 0;
    if (bio == NULL || PEM_write_bio_PUBKEY(bio, (EVP_PKEY *)key) != 1 ||
        (len = BIO_get_mem_data(bio, &pem)) <= 0) {
        BIO_free(bio);
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the KBS key");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    vtpmca_err err = vt_file_write_atomic(path, pem, (size_t)len, 0600, diag);
    BIO_free(bio);
    return err;
}

static void print_key_fingerprint(const EVP_PKEY *key)
{
    uint8_t fp[KBS_KEY_FINGERPRINT_LEN];
    if (kbs_key_fingerprint(key, fp, NULL) == VTPMCA_OK)
        print_hex(fp, sizeof(fp));
    else
        fputs("(unavailable)", stdout);
}

/* Loads what the boot needs before talking to the server: the platform, the KBS key to
 * expect, the wrapped-key blob, the HTTP client. */
static vtpmca_err boot_setup(boot_ctx *ctx, vtpmca_diag *diag)
{
    const boot_options *opt = &ctx->opt;
    vtpmca_err err =
        vt_path_join(opt->state_dir, STATE_FILE, ctx->state_path, sizeof(ctx->state_path), diag);
    if (err == VTPMCA_OK)
        err = vt_path_join(opt->state_dir, KBS_KEY_FILE, ctx->kbs_key_path,
                           sizeof(ctx->kbs_key_path), diag);
    if (err == VTPMCA_OK)
        err = sim_platform_load(opt->platform_dir, &ctx->platform, diag);
    if (err != VTPMCA_OK)
        return err;
    struct stat st;
    ctx->kbs_key_remembered = stat(ctx->kbs_key_path, &st) == 0;
    if (ctx->kbs_key_remembered)
        err = read_public_pem(ctx->kbs_key_path, &ctx->expected_kbs_key, diag);
    if (err == VTPMCA_OK && opt->kbs_key_path != NULL) {
        EVP_PKEY *pinned = NULL;
        err = read_public_pem(opt->kbs_key_path, &pinned, diag);
        if (err == VTPMCA_OK && ctx->expected_kbs_key != NULL &&
            EVP_PKEY_eq(pinned, ctx->expected_kbs_key) != 1)
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                              "--kbs-key %s differs from the KBS key remembered in %s",
                              opt->kbs_key_path, ctx->kbs_key_path);
        if (err == VTPMCA_OK && ctx->expected_kbs_key == NULL) {
            ctx->expected_kbs_key = pinned;
            pinned = NULL;
        }
        EVP_PKEY_free(pinned);
    }
    if (err == VTPMCA_OK && opt->wrapped_key_path != NULL) {
        uint8_t *file = NULL;
        size_t file_len = 0;
        err = vt_file_read(opt->wrapped_key_path, WRAPPED_KEY_FILE_MAX, &file, &file_len, diag);
        if (err == VTPMCA_OK && (vt_decode_flexible(file, file_len, 0, &ctx->wrapped_key,
                                                    &ctx->wrapped_key_len) != VTPMCA_OK ||
                                 ctx->wrapped_key_len == 0))
            err =
                vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s is not a wrapped key (raw, hex or base64)",
                            opt->wrapped_key_path);
        free(file);
    }
    if (err == VTPMCA_OK)
        err = kbs_client_new(opt->server, 0, &ctx->kbs, diag);
    if (err != VTPMCA_OK)
        return err;
    const sim_platform_params *p = sim_platform_get_params(ctx->platform);
    printf("[0] setup     platform %s: simulated %s chip ", opt->platform_dir,
           snp_product_name(p->product));
    print_hex(p->chip_id, 8);
    printf("..., TCB bl=%u tee=%u snp=%u ucode=%u\n", p->tcb.bootloader, p->tcb.tee, p->tcb.snp,
           p->tcb.microcode);
    printf("              KBS key: ");
    if (ctx->expected_kbs_key == NULL) {
        printf("none remembered yet (trust on first use)\n");
    } else {
        print_key_fingerprint(ctx->expected_kbs_key);
        printf(" (%s)\n", ctx->kbs_key_remembered ? "remembered" : "pinned by --kbs-key");
    }
    return VTPMCA_OK;
}

static vtpmca_err step_auth(boot_ctx *ctx, vtpmca_diag *diag)
{
    vtpmca_err err = kbs_client_auth(ctx->kbs, diag);
    if (err != VTPMCA_OK)
        return err;
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    kbs_client_nonce(ctx->kbs, &nonce, &nonce_len);
    printf("[1] auth      POST %s/kbs/v0/auth -> nonce %s (%zu bytes), cookie %s set\n",
           ctx->opt.server, kbs_client_nonce_b64(ctx->kbs), nonce_len, KBS_COOKIE_NAME);
    return VTPMCA_OK;
}

static vtpmca_err step_tee_key(boot_ctx *ctx, vtpmca_diag *diag)
{
    static const char *const curves[] = {"P-521", "P-384", "P-256"};
    tee_key_kind kind = ctx->opt.tee_key;
    ctx->tee_key = kind == TEE_KEY_RSA ? EVP_RSA_gen(2048) : EVP_EC_gen(curves[kind]);
    if (ctx->tee_key == NULL) {
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot generate the tee key");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_INTERNAL;
    }
    vtpmca_err err = kbs_tee_pubkey_jwk(ctx->tee_key, &ctx->tee_jwk, diag);
    if (err != VTPMCA_OK)
        return err;
    printf("[2] tee key   ephemeral %s key (%s)\n", kind == TEE_KEY_RSA ? "RSA-2048" : curves[kind],
           json_string_value(json_object_get(ctx->tee_jwk, "alg")));
    return VTPMCA_OK;
}

static vtpmca_err step_report(boot_ctx *ctx, vtpmca_diag *diag)
{
    sim_report_request req = {.version = ctx->opt.report_version};
    memcpy(req.measurement, ctx->opt.measurement, sizeof(req.measurement));
    memcpy(req.host_data, ctx->opt.host_data, sizeof(req.host_data));
    vtpmca_err err = kbs_report_data(ctx->opt.flavour, kbs_client_nonce_b64(ctx->kbs), ctx->tee_jwk,
                                     req.report_data, diag);
    if (err == VTPMCA_OK)
        err = sim_platform_sign_report(ctx->platform, &req, ctx->report, diag);
    if (err != VTPMCA_OK)
        return err;
    printf("[3] report    SNP report v%u, VMPL 0, signed by the platform VCEK\n", req.version);
    printf("              measurement ");
    print_hex(req.measurement, sizeof(req.measurement));
    printf("\n              host_data   ");
    print_hex(req.host_data, sizeof(req.host_data));
    printf("\n              REPORT_DATA %s = %s\n              ",
           report_data_flavour_name(ctx->opt.flavour),
           ctx->opt.flavour == REPORT_DATA_FLAVOUR_SVSM
               ? "SHA-512(X || Y || nonce)"
               : "SHA-384(JCS {additional-evidence, nonce, tee-pubkey}) || zeros");
    print_hex(req.report_data, sizeof(req.report_data));
    printf("\n");
    return VTPMCA_OK;
}

static vtpmca_err step_attest(boot_ctx *ctx, vtpmca_diag *diag)
{
    json_t *request = NULL;
    char *token = NULL;
    vtpmca_err err = kbs_attest_request(kbs_client_nonce_b64(ctx->kbs), ctx->tee_jwk, ctx->report,
                                        sizeof(ctx->report), &request, diag);
    if (err == VTPMCA_OK)
        err = kbs_client_attest(ctx->kbs, request, &token, diag);
    json_decref(request);
    if (err == VTPMCA_OK)
        printf("[4] attest    POST /kbs/v0/attest -> 200, attestation token (JWT, %zu bytes)\n",
               strlen(token));
    free(token);
    return err;
}

static vtpmca_err step_resource(boot_ctx *ctx, vtpmca_diag *diag)
{
    vtpmca_err err = kbs_client_resource(ctx->kbs, ctx->opt.resource, ctx->wrapped_key,
                                         ctx->wrapped_key_len, &ctx->jwe, diag);
    jwe_alg alg = 0;
    EVP_PKEY *epk = NULL;
    if (err == VTPMCA_OK)
        err = jwe_get_epk(ctx->jwe, &alg, &epk, diag);
    EVP_PKEY_free(epk);
    if (err == VTPMCA_OK)
        err = jwe_decrypt(ctx->tee_key, ctx->jwe, ctx->persistence_key,
                          sizeof(ctx->persistence_key), &ctx->persistence_key_len, diag);
    if (err != VTPMCA_OK)
        return err;
    printf("[5] resource  %s /kbs/v0/resource/%s -> JWE %s + A256GCM, decrypted a %zu-byte "
           "persistence key\n",
           ctx->wrapped_key != NULL ? "POST (wrapped key)" : "GET", ctx->opt.resource,
           alg == JWE_ALG_ECDH_ES_A256KW ? "ECDH-ES+A256KW" : "RSA-OAEP-256",
           ctx->persistence_key_len);
    return VTPMCA_OK;
}

static vtpmca_err step_binding(boot_ctx *ctx, vtpmca_diag *diag)
{
    if (ctx->opt.tee_key == TEE_KEY_RSA) {
        /* RSA-OAEP-256 has no ephemeral key to sign: version 1 carries no binding. */
        if (ctx->expected_kbs_key != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                               "an RSA-OAEP-256 response carries no KBS binding, so the "
                               "expected KBS key cannot be checked");
        printf("[6] binding   none: RSA-OAEP-256 responses carry no KBS binding (v1); the KBS "
               "key is neither checked nor remembered\n");
        return VTPMCA_OK;
    }
    const uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    vtpmca_err err = kbs_client_nonce(ctx->kbs, &nonce, &nonce_len);
    if (err == VTPMCA_OK)
        err = kbs_binding_verify_jwe(ctx->jwe, nonce, nonce_len, ctx->tee_key,
                                     ctx->expected_kbs_key, &ctx->kbs_pubkey, diag);
    if (err != VTPMCA_OK)
        return err;
    const char *alg = json_string_value(json_object_get(
        json_object_get(json_object_get(ctx->jwe, "header"), KBS_BINDING_HEADER), "alg"));
    printf("[6] binding   %s signature over (epk, nonce, tee key) verifies; KBS key ", alg);
    print_key_fingerprint(ctx->kbs_pubkey);
    printf("\n              %s\n", ctx->expected_kbs_key == NULL
                                       ? "first use: it will be remembered once the boot succeeds"
                                       : (ctx->kbs_key_remembered ? "same as the remembered KBS key"
                                                                  : "same as the pinned KBS key"));
    return VTPMCA_OK;
}

static void print_version(const char *what, const svsm_state_version *v)
{
    printf("%s counter ", what);
    print_hex(v->counter, sizeof(v->counter));
    printf(" root ");
    print_hex(v->root, sizeof(v->root));
    printf("\n");
}

/* ---- rollback ledger ---- */

/* The instance id this boot reports under: --instance, or the one the state dir remembers
 * from an earlier boot that used the ledger (then the ledger is required). */
static vtpmca_err ledger_identity(boot_ctx *ctx, vtpmca_diag *diag)
{
    vtpmca_err err = vt_path_join(ctx->opt.state_dir, LEDGER_MARKER_FILE, ctx->ledger_marker_path,
                                  sizeof(ctx->ledger_marker_path), diag);
    uint8_t *marker = NULL;
    size_t len = 0;
    if (err == VTPMCA_OK && access(ctx->ledger_marker_path, F_OK) == 0) {
        err = vt_file_read(ctx->ledger_marker_path, STORE_INSTANCE_ID_MAX + 2, &marker, &len, diag);
        while (err == VTPMCA_OK && len > 0 && marker[len - 1] == '\n')
            marker[--len] = '\0';
        if (err == VTPMCA_OK && store_check_instance_id((const char *)marker, NULL) != VTPMCA_OK)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s does not hold an instance id",
                              ctx->ledger_marker_path);
        if (err == VTPMCA_OK && ctx->opt.instance != NULL &&
            strcmp(ctx->opt.instance, (const char *)marker) != 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                              "--instance %s differs from instance %s, which this state uses the "
                              "ledger for (%s)",
                              ctx->opt.instance, (const char *)marker, ctx->ledger_marker_path);
        if (err == VTPMCA_OK) {
            snprintf(ctx->ledger_instance, sizeof(ctx->ledger_instance), "%s", marker);
            ctx->ledger_remembered = true;
        }
        free(marker);
    } else if (err == VTPMCA_OK && ctx->opt.instance != NULL) {
        snprintf(ctx->ledger_instance, sizeof(ctx->ledger_instance), "%s", ctx->opt.instance);
    }
    return err;
}

/* The version of the state file as it is now (decrypted with the released key). */
static vtpmca_err current_state_version(boot_ctx *ctx, svsm_state_version *version,
                                        vtpmca_diag *diag)
{
    uint8_t key[SVSM_STATE_KEY_LEN];
    svsm_state_content content = {0};
    vtpmca_err err =
        svsm_state_derive_key(ctx->persistence_key, ctx->persistence_key_len, key, diag);
    if (err == VTPMCA_OK)
        err = svsm_state_read(ctx->state_path, key, &content, version, diag);
    svsm_state_content_clear(&content);
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

/* On open: asks the ledger (fresh nonce, MACed answer) for the latest (counter, root) and
 * refuses a state that is older, or another root at the ledger's counter. */
static vtpmca_err step_ledger(boot_ctx *ctx, vtpmca_diag *diag)
{
    vtpmca_err err = ledger_identity(ctx, diag);
    if (err != VTPMCA_OK)
        return err;
    bool required = ctx->opt.ledger == LEDGER_MODE_ON || ctx->ledger_remembered;
    if (ctx->opt.ledger == LEDGER_MODE_OFF) {
        printf("[L] ledger    off (--ledger off): state writes are not reported\n");
        return VTPMCA_OK;
    }
    if (ctx->ledger_instance[0] == '\0') {
        if (required)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--ledger on needs --instance");
        printf("[L] ledger    off: no --instance given (the ledger knows instances by id)\n");
        return VTPMCA_OK;
    }
    err = ledger_client_new(ctx->opt.server, ctx->ledger_instance, ctx->persistence_key,
                            ctx->persistence_key_len, LEDGER_FORMAT_JSON, 0, &ctx->ledger, diag);
    if (err != VTPMCA_OK)
        return err;
    ledger_msg answer;
    err = ledger_client_query(ctx->ledger, &answer, diag);
    if (err == VTPMCA_ERR_UNSUPPORTED && !required) {
        printf("[L] ledger    the server offers no rollback ledger: off\n");
        ledger_client_free(ctx->ledger);
        ctx->ledger = NULL;
        return VTPMCA_OK;
    }
    if (err == VTPMCA_ERR_UNSUPPORTED)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "the server offers no rollback ledger, but this instance uses one "
                           "(%s)",
                           ctx->ledger_marker_path);
    if (err != VTPMCA_OK && err != VTPMCA_ERR_NOT_FOUND)
        return err;
    bool has_state = access(ctx->state_path, F_OK) == 0;
    svsm_state_version version;
    if (err == VTPMCA_ERR_NOT_FOUND) {
        printf("[L] ledger    POST /v1/ledger/query -> no record of instance %s (MAC verified)"
               "\n              %s\n",
               ctx->ledger_instance,
               has_state ? "the next state write starts the record"
                         : "first boot: the first state write starts the record");
        return VTPMCA_OK;
    }
    printf("[L] ledger    POST /v1/ledger/query -> instance %s (MAC verified, fresh nonce)\n",
           ctx->ledger_instance);
    printf("              ledger  counter ");
    print_hex(answer.counter, sizeof(answer.counter));
    printf("\n");
    if (!has_state)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "the ledger has a record of instance %s but there is no %s: refusing "
                           "to make a new vTPM over a deleted or replaced state (an admin resets "
                           "the ledger record of a re-provisioned instance)",
                           ctx->ledger_instance, ctx->state_path);
    err = current_state_version(ctx, &version, diag);
    if (err != VTPMCA_OK)
        return err;
    print_version("              state  ", &version);
    ledger_entry latest = {.root_len = answer.root_len, .time_ms = answer.time_ms};
    memcpy(latest.counter, answer.counter, sizeof(latest.counter));
    memcpy(latest.origin, answer.origin, sizeof(latest.origin));
    memcpy(latest.root, answer.root, answer.root_len);
    bool newer = false;
    vtpmca_diag why = {{0}};
    if (ledger_check_image(&latest, version.counter, version.root, sizeof(version.root), &newer,
                           &why) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "%s: %s is not the state the ledger holds",
                           why.msg, ctx->state_path);
    printf("              %s\n", newer ? "the state is newer than the ledger's record (it was "
                                         "reset?): the next write advances it"
                                       : "the state is the ledger's latest");
    return VTPMCA_OK;
}

/* Runs after the new state's (counter, root) are known and before the file is written: the
 * ledger must acknowledge them (durably) first, or nothing is written. */
static vtpmca_err ledger_commit(const svsm_state_version *next, void *hook_ctx, vtpmca_diag *diag)
{
    boot_ctx *ctx = hook_ctx;
    if (ctx->ledger == NULL) {
        print_version("              next   ", next);
        printf("              (no rollback ledger: the write is not reported)\n");
        return VTPMCA_OK;
    }
    ledger_msg answer;
    vtpmca_err err = VTPMCA_ERR_NETWORK;
    /* A retry is safe: the ledger answers "duplicate" to an advance it already took. */
    for (int i = 0; i < LEDGER_ATTEMPTS && err == VTPMCA_ERR_NETWORK; i++)
        err = ledger_client_advance(ctx->ledger, next->counter, next->root, sizeof(next->root),
                                    &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    printf("              ledger: advance to counter ");
    print_hex(next->counter, sizeof(next->counter));
    printf(" -> %s (durable, MAC verified)\n", answer.result);
    return VTPMCA_OK;
}

static vtpmca_err step_remember_ledger(boot_ctx *ctx, vtpmca_diag *diag)
{
    if (ctx->ledger == NULL || ctx->ledger_remembered)
        return VTPMCA_OK;
    char line[STORE_INSTANCE_ID_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", ctx->ledger_instance);
    vtpmca_err err = vt_file_write_atomic(ctx->ledger_marker_path, line, (size_t)n, 0600, diag);
    if (err == VTPMCA_OK)
        printf("[L] ledger    remembered in %s; later boots require the ledger\n",
               ctx->ledger_marker_path);
    return err;
}

/* ---- EK/IAK certificates (docs/svsm-sim.md, "Certificates") ---- */

static const char *ek_kind_label(vtpm_ek_kind kind)
{
    return kind == VTPM_EK_ECC_P256   ? "ECC P-256"
           : kind == VTPM_EK_ECC_P384 ? "ECC P-384"
                                      : "RSA-2048";
}

/* What the certificate step holds while it runs. */
typedef struct {
    ca_client *client;
    uint32_t ek_handle, iak_handle;
    uint8_t *ek_pub, *iak_pub;
    size_t ek_pub_len, iak_pub_len;
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX];
    size_t ek_name_len, iak_name_len;
    uint8_t *kbs_der;
    size_t kbs_der_len;
    ca_certificates certs;
    uint8_t *ek_der, *iak_der;
    size_t ek_der_len, iak_der_len;
} certify_state;

static void certify_state_clear(certify_state *s, vtpm *tpm)
{
    if (s->ek_handle != 0)
        vtpm_flush(tpm, s->ek_handle, NULL);
    if (s->iak_handle != 0)
        vtpm_flush(tpm, s->iak_handle, NULL);
    ca_client_free(s->client);
    free(s->ek_pub);
    free(s->iak_pub);
    OPENSSL_free(s->kbs_der);
    ca_certificates_free(&s->certs);
    free(s->ek_der);
    free(s->iak_der);
}

/* The EK (recreated from its template: the same seed gives the same key) and the IAK. */
static vtpmca_err certify_keys(boot_ctx *ctx, vtpm *tpm, certify_state *s, vtpmca_diag *diag)
{
    vtpmca_err err = vtpm_create_ek(tpm, ctx->opt.ek_kind, &s->ek_handle, &s->ek_pub,
                                    &s->ek_pub_len, NULL, diag);
    if (err == VTPMCA_OK)
        err = vtpm_object_name(s->ek_pub, s->ek_pub_len, s->ek_name, &s->ek_name_len, diag);
    if (err != VTPMCA_OK || ctx->opt.iak_proof == IAK_PROOF_NONE)
        return err;
    uint8_t tmpl[256];
    size_t tmpl_len = 0;
    err = ca_iak_template(tmpl, sizeof(tmpl), &tmpl_len);
    if (err == VTPMCA_OK)
        err = vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl, tmpl_len, &s->iak_handle,
                                  &s->iak_pub, &s->iak_pub_len, diag);
    if (err == VTPMCA_OK)
        err = vtpm_object_name(s->iak_pub, s->iak_pub_len, s->iak_name, &s->iak_name_len, diag);
    if (err == VTPMCA_OK) {
        printf("              IAK ECC P-256 restricted signing key (endorsement hierarchy), name ");
        print_hex(s->iak_name, s->iak_name_len);
        printf("\n");
    }
    return err;
}

/* The second proof that the IAK lives in the EK's TPM: the CA's credential, activated. */
static vtpmca_err certify_activation(vtpm *tpm, const char *resource, certify_state *s,
                                     vtpmca_diag *diag)
{
    ca_activation act;
    vtpmca_err err = ca_client_activate_start(s->client, s->ek_pub, s->ek_pub_len, s->iak_pub,
                                              s->iak_pub_len, resource, &act, diag);
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    if (err == VTPMCA_OK)
        err = vtpm_activate_credential(tpm, s->iak_handle, s->ek_handle, act.credential_blob,
                                       act.credential_blob_len, act.encrypted_secret,
                                       act.encrypted_secret_len, &secret, &secret_len, diag);
    unsigned ttl = 0;
    if (err == VTPMCA_OK)
        err =
            ca_client_activate_finish(s->client, act.activation_id, secret, secret_len, &ttl, diag);
    if (err == VTPMCA_OK)
        printf("              activation: POST /v1/ca/activate/start -> credential for the IAK; "
               "TPM2_ActivateCredential\n              recovered it; POST /v1/ca/activate/finish "
               "-> proven (kept %u s)\n",
               ttl);
    if (secret != NULL)
        OPENSSL_clear_free(secret, secret_len);
    ca_activation_free(&act);
    return err;
}

/* A fresh challenge and a report binding it, the EK, the IAK (evidence proof) and the KBS
 * key; then the certificates. */
static vtpmca_err certify_request(boot_ctx *ctx, certify_state *s, vtpmca_diag *diag)
{
    uint8_t nonce[ISSUANCE_NONCE_LEN], kbs_hash[32];
    unsigned ttl = 0;
    vtpmca_err err = ca_client_challenge(s->client, nonce, &ttl, diag);
    if (err != VTPMCA_OK)
        return err;
    bool bind_iak = ctx->opt.iak_proof == IAK_PROOF_EVIDENCE;
    sim_report_request req = {.version = ctx->opt.report_version};
    memcpy(req.measurement, ctx->opt.measurement, sizeof(req.measurement));
    memcpy(req.host_data, ctx->opt.host_data, sizeof(req.host_data));
    uint8_t report[SNP_REPORT_SIZE];
    if (EVP_Digest(s->kbs_der, s->kbs_der_len, kbs_hash, NULL, EVP_sha256(), NULL) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "SHA-256 failed");
    err = issuance_report_data(nonce, s->ek_name, s->ek_name_len, bind_iak ? s->iak_name : NULL,
                               bind_iak ? s->iak_name_len : 0, kbs_hash, req.report_data, diag);
    if (err == VTPMCA_OK)
        err = sim_platform_sign_report(ctx->platform, &req, report, diag);
    if (err != VTPMCA_OK)
        return err;
    printf("              POST /v1/ca/challenge -> nonce (%d bytes, valid %u s)\n",
           ISSUANCE_NONCE_LEN, ttl);
    printf("              report: REPORT_DATA = SHA-512(\"%s\" || nonce || EK name || %s || "
           "SHA-256(KBS key))\n",
           ISSUANCE_REPORT_DATA_LABEL, bind_iak ? "IAK name" : "no IAK");
    const char *format = issuance_format_name(ctx->opt.certify_format);
    issuance_certify_request rq = {
        .ek_public = s->ek_pub,
        .ek_public_len = s->ek_pub_len,
        .iak_public = s->iak_pub,
        .iak_public_len = s->iak_pub_len,
        .kbs_key = s->kbs_der,
        .kbs_key_len = s->kbs_der_len,
        .resource = ctx->opt.resource,
        .format = format,
        .nonce = nonce,
        .nonce_len = sizeof(nonce),
        .report = report,
        .report_len = sizeof(report),
    };
    err = ca_client_certify(s->client, &rq, &s->certs, diag);
    if (err == VTPMCA_OK)
        printf("              POST /v1/ca/certify (%s body) -> %s EK certificate (%zu bytes)%s\n",
               ctx->opt.ca_encoding == ISSUANCE_ENC_CBOR ? "CBOR" : "JSON", format,
               s->certs.ek_cert_len, s->certs.iak_cert != NULL ? " and IAK certificate" : "");
    return err;
}

static void print_cert(const char *what, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    char issuer[160] = "?";
    BIGNUM *serial = cert != NULL ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
    char *serial_hex = serial != NULL ? BN_bn2hex(serial) : NULL;
    if (cert != NULL)
        X509_NAME_oneline(X509_get_issuer_name(cert), issuer, (int)sizeof(issuer));
    printf("              %s certificate serial %s, issuer %s: chains to the received root, "
           "key = the TPM's key\n",
           what, serial_hex != NULL ? serial_hex : "?", issuer);
    OPENSSL_free(serial_hex);
    BN_free(serial);
    X509_free(cert);
}

/* The checks, then the EK certificate into NV at its standard index, read back. */
static vtpmca_err certify_store(boot_ctx *ctx, vtpm *tpm, certify_state *s, vtpmca_diag *diag)
{
    const ca_certificates *c = &s->certs;
    const uint8_t *const chain[2] = {c->chain[0], c->chain[1]};
    vtpmca_err err =
        ca_certificate_check(c->format, c->ek_cert, c->ek_cert_len, chain, c->chain_len, s->ek_pub,
                             s->ek_pub_len, &s->ek_der, &s->ek_der_len, diag);
    if (err == VTPMCA_OK && c->iak_cert != NULL)
        err = ca_certificate_check(c->format, c->iak_cert, c->iak_cert_len, chain, c->chain_len,
                                   s->iak_pub, s->iak_pub_len, &s->iak_der, &s->iak_der_len, diag);
    if (err != VTPMCA_OK)
        return err;
    print_cert("EK", s->ek_der, s->ek_der_len);
    if (s->iak_der != NULL)
        print_cert("IAK", s->iak_der, s->iak_der_len);
    uint32_t index = 0;
    uint8_t *back = NULL;
    size_t back_len = 0;
    err = vtpm_ek_cert_nv_index(ctx->opt.ek_kind, &index);
    if (err == VTPMCA_OK)
        err = vtpm_nv_define_write(tpm, index, s->ek_der, s->ek_der_len, diag);
    if (err == VTPMCA_OK)
        err = vtpm_nv_read(tpm, index, &back, &back_len, diag);
    if (err == VTPMCA_OK && (back_len != s->ek_der_len || memcmp(back, s->ek_der, back_len) != 0))
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                          "NV index 0x%08x does not read back the "
                          "certificate written",
                          index);
    free(back);
    if (err == VTPMCA_OK)
        printf("              NV 0x%08x: wrote the EK certificate (%zu bytes DER), read back "
               "identical\n",
               index, s->ek_der_len);
    return err;
}

/* The server has no CA and the user did not ask for certificates explicitly: go on. */
static bool skip_without_ca(const boot_ctx *ctx, const certify_state *s)
{
    return !ctx->opt.certify_explicit &&
           strcmp(ca_client_last_error(s->client), "ca_not_initialized") == 0;
}

/* Runs inside the vTPM step, with the TPM open, before its state is saved (so the state
 * carries the certificate). */
static vtpmca_err step_certify(boot_ctx *ctx, vtpm *tpm, vtpmca_diag *diag)
{
    if (ctx->opt.certify_none) {
        printf("[C] certify   skipped (--certify none)\n");
        return VTPMCA_OK;
    }
    const EVP_PKEY *kbs = ctx->kbs_pubkey != NULL ? ctx->kbs_pubkey : ctx->expected_kbs_key;
    if (kbs == NULL) {
        if (ctx->opt.certify_explicit) {
            ctx->failed_step = "certificates";
            return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                               "no KBS key is known (an RSA tee key carries no binding), so no "
                               "certificate can be asked for");
        }
        printf("[C] certify   skipped: no KBS key is known to present to the CA\n");
        return VTPMCA_OK;
    }
    printf("[C] certify   EK %s and %s, format %s, from %s/v1/ca/\n",
           ek_kind_label(ctx->opt.ek_kind),
           ctx->opt.iak_proof == IAK_PROOF_NONE         ? "no IAK"
           : ctx->opt.iak_proof == IAK_PROOF_ACTIVATION ? "IAK (proof: credential activation)"
                                                        : "IAK (proof: evidence binding)",
           issuance_format_name(ctx->opt.certify_format), ctx->opt.server);
    certify_state s;
    memset(&s, 0, sizeof(s));
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY((EVP_PKEY *)kbs, &der);
    s.kbs_der = der;
    s.kbs_der_len = der_len > 0 ? (size_t)der_len : 0;
    vtpmca_err err = der_len > 0
                         ? VTPMCA_OK
                         : vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the KBS key");
    if (err == VTPMCA_OK)
        err = ca_client_new(ctx->opt.server, ctx->opt.ca_encoding, 0, &s.client, diag);
    if (err == VTPMCA_OK)
        err = certify_keys(ctx, tpm, &s, diag);
    if (err == VTPMCA_OK && ctx->opt.iak_proof == IAK_PROOF_ACTIVATION)
        err = certify_activation(tpm, ctx->opt.resource, &s, diag);
    if (err == VTPMCA_OK)
        err = certify_request(ctx, &s, diag);
    if (err != VTPMCA_OK && s.client != NULL && skip_without_ca(ctx, &s)) {
        printf("              the server has no CA (ca_not_initialized): certificates skipped "
               "(--certify %s requires them)\n",
               issuance_format_name(ctx->opt.certify_format));
        err = VTPMCA_OK;
    } else if (err == VTPMCA_OK) {
        err = certify_store(ctx, tpm, &s, diag);
    }
    if (err != VTPMCA_OK)
        ctx->failed_step = "certificates";
    certify_state_clear(&s, tpm);
    return err;
}

/* The EK of the vTPM and its fingerprint (SHA-256 of its DER SubjectPublicKeyInfo). */
static vtpmca_err make_ek(vtpm *tpm, vtpm_ek_kind kind,
                          uint8_t fingerprint[SVSM_STATE_EK_FINGERPRINT_LEN], vtpmca_diag *diag)
{
    uint32_t handle = 0;
    EVP_PKEY *ek = NULL;
    vtpmca_err err = vtpm_create_ek(tpm, kind, &handle, NULL, NULL, &ek, diag);
    if (err == VTPMCA_OK)
        err = kbs_key_fingerprint(ek, fingerprint, diag);
    if (err == VTPMCA_OK)
        err = vtpm_flush(tpm, handle, diag);
    EVP_PKEY_free(ek);
    return err;
}

static vtpmca_err step_vtpm(boot_ctx *ctx, vtpmca_diag *diag)
{
    uint8_t key[SVSM_STATE_KEY_LEN];
    svsm_state_content content = {0};
    svsm_state_version previous, written;
    uint8_t ek[SVSM_STATE_EK_FINGERPRINT_LEN];
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    vtpm *tpm = NULL;
    bool reopen = false;
    vtpmca_err err =
        svsm_state_derive_key(ctx->persistence_key, ctx->persistence_key_len, key, diag);
    if (err == VTPMCA_OK) {
        err = svsm_state_read(ctx->state_path, key, &content, &previous, diag);
        reopen = err == VTPMCA_OK;
        if (err == VTPMCA_ERR_NOT_FOUND)
            err = VTPMCA_OK;
    }
    if (err == VTPMCA_OK)
        err = reopen ? vtpm_open(content.tpm_state, content.tpm_state_len, &tpm, diag)
                     : vtpm_open(NULL, 0, &tpm, diag);
    if (err == VTPMCA_OK)
        err = make_ek(tpm, ctx->opt.ek_kind, ek, diag);
    if (err == VTPMCA_OK && reopen && memcmp(ek, content.ek_fingerprint, sizeof(ek)) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                          "the restored vTPM's EK differs from the one recorded in %s",
                          ctx->state_path);
    if (err == VTPMCA_OK) {
        if (reopen) {
            printf("[7] vTPM      opened %s with the released key\n", ctx->state_path);
            print_version("              stored version", &previous);
        } else {
            printf("[7] vTPM      no %s: manufactured a new vTPM (libtpms)\n", ctx->state_path);
        }
        printf("              EK %s sha256 ", ek_kind_label(ctx->opt.ek_kind));
        print_hex(ek, sizeof(ek));
        printf("%s\n", reopen ? " (same as recorded)" : "");
        /* The certificates go into the vTPM's NV before its state is saved. */
        err = step_certify(ctx, tpm, diag);
    }
    if (err == VTPMCA_OK)
        err = vtpm_save_state(tpm, &blob, &blob_len, diag);
    if (err == VTPMCA_OK)
        err = vt_mkdir_p(ctx->opt.state_dir, 0700, diag);
    if (err == VTPMCA_OK) {
        svsm_state_content next = {.tpm_state = blob, .tpm_state_len = blob_len};
        memcpy(next.ek_fingerprint, ek, sizeof(ek));
        err = svsm_state_write(ctx->state_path, key, &next, reopen ? &previous : NULL,
                               ledger_commit, ctx, &written, diag);
    }
    if (err == VTPMCA_OK) {
        printf("              state saved (AES-256-GCM, %zu bytes of libtpms state)\n", blob_len);
        print_version("              update", &written);
    }
    vtpm_close(tpm);
    if (blob != NULL) {
        OPENSSL_cleanse(blob, blob_len);
        free(blob);
    }
    svsm_state_content_clear(&content);
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

static vtpmca_err step_remember(boot_ctx *ctx, vtpmca_diag *diag)
{
    if (ctx->kbs_key_remembered || ctx->kbs_pubkey == NULL)
        return VTPMCA_OK;
    vtpmca_err err = write_public_pem(ctx->kbs_pubkey, ctx->kbs_key_path, diag);
    if (err == VTPMCA_OK)
        printf("[8] KBS key   remembered in %s; later boots require it\n", ctx->kbs_key_path);
    return err;
}

static void boot_ctx_free(boot_ctx *ctx)
{
    sim_platform_free(ctx->platform);
    kbs_client_free(ctx->kbs);
    free(ctx->wrapped_key);
    EVP_PKEY_free(ctx->expected_kbs_key);
    EVP_PKEY_free(ctx->tee_key);
    json_decref(ctx->tee_jwk);
    json_decref(ctx->jwe);
    EVP_PKEY_free(ctx->kbs_pubkey);
    ledger_client_free(ctx->ledger);
    OPENSSL_cleanse(ctx->persistence_key, sizeof(ctx->persistence_key));
}

static int cmd_boot(int argc, char **argv)
{
    boot_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    int code = parse_boot_options(argc, argv, &ctx.opt);
    if (code >= 0)
        return code;
    static const struct {
        const char *name;
        vtpmca_err (*run)(boot_ctx *, vtpmca_diag *);
    } steps[] = {
        {"setup", boot_setup},
        {"auth", step_auth},
        {"tee key", step_tee_key},
        {"report", step_report},
        {"attest", step_attest},
        {"resource", step_resource},
        {"KBS binding", step_binding},
        {"ledger", step_ledger},
        {"vTPM", step_vtpm},
        {"remember KBS key", step_remember},
        {"remember ledger", step_remember_ledger},
    };
    fputs(TEST_ONLY_NOTICE, stderr);
    printf("svsm-sim boot: server %s, resource %s, flavour %s\n", ctx.opt.server, ctx.opt.resource,
           report_data_flavour_name(ctx.opt.flavour));
    fflush(stdout);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    vtpmca_diag diag = {""};
    vtpmca_err err = VTPMCA_OK;
    size_t i = 0;
    for (; i < sizeof(steps) / sizeof(steps[0]) && err == VTPMCA_OK; i++) {
        err = steps[i].run(&ctx, &diag);
        fflush(stdout);
    }
    if (err != VTPMCA_OK) {
        /* The outcome on stdout (like "boot OK"), the reason on stderr. */
        const char *step = ctx.failed_step != NULL ? ctx.failed_step : steps[i - 1].name;
        printf("boot REFUSED at %s\n", step);
        fflush(stdout);
        fprintf(stderr, "svsm-sim boot: REFUSED at %s: %s (%s)\n", step,
                diag.msg[0] != '\0' ? diag.msg : "failed", vtpmca_err_name(err));
        code = VT_CLI_EXIT_FAILED;
    } else {
        printf("boot OK\n");
        code = EXIT_SUCCESS;
    }
    boot_ctx_free(&ctx);
    curl_global_cleanup();
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("svsm-sim: a command is required\n(run 'svsm-sim --help' for usage)\n", stderr);
        return VT_CLI_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(MAIN_USAGE, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(command, "platform-init") == 0)
        return cmd_platform_init(argc - 1, argv + 1);
    if (strcmp(command, "boot") == 0)
        return cmd_boot(argc - 1, argv + 1);
    fprintf(stderr, "svsm-sim: unknown command \"%s\"\n(run 'svsm-sim --help' for usage)\n",
            command);
    return VT_CLI_EXIT_USAGE;
}
