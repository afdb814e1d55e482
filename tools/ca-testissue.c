/* ca-testissue: TEST-ONLY. Issues one EK or IAK certificate with a CA directory for a key of a
 * freshly manufactured libtpms TPM and records it in a vtpmca database as the issuance
 * service does, so that tests and demos of `vtpmca cert|crl|c509` and of the daemon's CRL
 * have real certificates to work on. It verifies no evidence: the instance identity it
 * writes (measurement, chip id, KBS key hash) is made of fixed test bytes. Prints the serial.
 *
 * Usage: ca-testissue --ca-dir DIR --db FILE --instance ID [--fleet NAME] [--kind ek|iak]
 *                     [--key rsa2048|p256|p384] [--format x509|c509|c509-native]
 *                     [--base-url URL]
 * The IAK is a restricted ECDSA P-256 signing key (--key does not apply). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/ca_keys.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/encoding.h"
#include "vtpmca/log.h"
#include "vtpmca/store.h"
#include "vtpmca/tpm2_marshal.h"
#include "vtpmca/vtpm.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define TEST_BYTE_MEASUREMENT 0xa1
#define TEST_BYTE_CHIP_ID 0xc2
#define TEST_BYTE_KBS_HASH 0x5b

typedef struct {
    const char *ca_dir, *db, *instance, *fleet, *base_url;
    ek_cert_kind kind;
    vtpm_ek_kind key;
    store_cert_format format;
    ek_c509_form c509;
} issue_args;

static int usage(const char *why)
{
    fprintf(stderr,
            "ca-testissue: %s\n"
            "usage: ca-testissue --ca-dir DIR --db FILE --instance ID [--fleet NAME]\n"
            "                    [--kind ek|iak] [--key rsa2048|p256|p384]\n"
            "                    [--format x509|c509|c509-native] [--base-url URL]\n",
            why);
    return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, issue_args *a)
{
    static const struct option options[] = {
        {"ca-dir", required_argument, NULL, 'c'},
        {"db", required_argument, NULL, 'd'},
        {"instance", required_argument, NULL, 'i'},
        {"fleet", required_argument, NULL, 'f'},
        {"kind", required_argument, NULL, 'k'},
        {"key", required_argument, NULL, 'K'},
        {"format", required_argument, NULL, 'F'},
        {"base-url", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    *a = (issue_args){.fleet = "test-fleet",
                      .base_url = "http://127.0.0.1:8377",
                      .kind = EK_CERT_EK,
                      .key = VTPM_EK_ECC_P256,
                      .format = STORE_CERT_X509,
                      .c509 = EK_C509_NONE};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case 'c':
            a->ca_dir = v;
            break;
        case 'd':
            a->db = v;
            break;
        case 'i':
            a->instance = v;
            break;
        case 'f':
            a->fleet = v;
            break;
        case 'b':
            a->base_url = v;
            break;
        case 'k':
            if (strcmp(v, "ek") != 0 && strcmp(v, "iak") != 0)
                return usage("--kind must be ek or iak");
            a->kind = strcmp(v, "ek") == 0 ? EK_CERT_EK : EK_CERT_IAK;
            break;
        case 'K':
            if (strcmp(v, "rsa2048") == 0)
                a->key = VTPM_EK_RSA2048;
            else if (strcmp(v, "p256") == 0)
                a->key = VTPM_EK_ECC_P256;
            else if (strcmp(v, "p384") == 0)
                a->key = VTPM_EK_ECC_P384;
            else
                return usage("--key must be rsa2048, p256 or p384");
            break;
        case 'F':
            if (strcmp(v, "x509") == 0)
                a->format = STORE_CERT_X509, a->c509 = EK_C509_NONE;
            else if (strcmp(v, "c509") == 0)
                a->format = STORE_CERT_C509, a->c509 = EK_C509_REENCODED;
            else if (strcmp(v, "c509-native") == 0)
                a->format = STORE_CERT_C509, a->c509 = EK_C509_NATIVE;
            else
                return usage("--format must be x509, c509 or c509-native");
            break;
        default:
            return usage("unknown option or missing value");
        }
    }
    if (optind != argc || a->ca_dir == NULL || a->db == NULL || a->instance == NULL)
        return usage("--ca-dir, --db and --instance are required");
    return -1;
}

/* A restricted ECDSA P-256 signing key made in the TPM, the IAK of TCG's device identity
 * specification (minimal attributes). */
static vtpmca_err create_iak(vtpm *tpm, uint8_t **tpmt_public, size_t *len, vtpmca_diag *diag)
{
    tpm2_public tmpl = {
        .type = TPM2_ALG_ECC,
        .name_alg = TPM2_ALG_SHA256,
        .object_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                             TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                             TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT,
        .sym_alg = TPM2_ALG_NULL,
        .scheme = TPM2_ALG_ECDSA,
        .scheme_hash = TPM2_ALG_SHA256,
        .curve = TPM2_ECC_NIST_P256,
        .kdf = TPM2_ALG_NULL,
    };
    uint8_t buf[512];
    tpm2_writer w;
    tpm2_writer_init(&w, buf, sizeof(buf));
    vtpmca_err err = tpm2_put_public(&w, &tmpl);
    uint32_t handle = 0;
    if (err == VTPMCA_OK)
        err = vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, buf, w.len, &handle, tpmt_public, len,
                                  diag);
    return err;
}

/* The key to certify, from a new TPM: its TPMT_PUBLIC and TPM name. */
static vtpmca_err make_tpm_key(const issue_args *a, EVP_PKEY **key, char *name_hex,
                               size_t name_hex_size, vtpmca_diag *diag)
{
    vtpm *tpm = NULL;
    uint8_t *pub = NULL;
    size_t pub_len = 0;
    uint32_t handle = 0;
    vtpmca_err err = vtpm_open(NULL, 0, &tpm, diag);
    if (err == VTPMCA_OK)
        err = a->kind == EK_CERT_EK
                  ? vtpm_create_ek(tpm, a->key, &handle, &pub, &pub_len, NULL, diag)
                  : create_iak(tpm, &pub, &pub_len, diag);
    vtpm_close(tpm);
    uint8_t name[TPM2_NAME_MAX];
    size_t name_len = 0;
    if (err == VTPMCA_OK)
        err = vtpm_object_name(pub, pub_len, name, &name_len, diag);
    if (err == VTPMCA_OK)
        err = vt_hex_encode(name, name_len, name_hex, name_hex_size);
    if (err == VTPMCA_OK)
        err = vtpm_tpmt_public_to_evp(pub, pub_len, key, diag);
    free(pub);
    return err;
}

static vtpmca_err issue(const issue_args *a, char serial[2 * CA_SERIAL_LEN + 1], vtpmca_diag *diag)
{
    ca_ctx *ca = NULL;
    store *st = NULL;
    EVP_PKEY *key = NULL;
    char key_name[STORE_CERT_KEY_NAME_HEX_MAX + 1] = "";
    ek_cert_result res;
    memset(&res, 0, sizeof(res));
    vtpmca_err err = ca_open(a->ca_dir, &ca, diag);
    if (err == VTPMCA_OK)
        err = store_open(a->db, &st, diag);
    if (err == VTPMCA_OK)
        err = make_tpm_key(a, &key, key_name, sizeof(key_name), diag);
    ek_instance_identity id = {.fleet = a->fleet, .instance_id = a->instance, .policy_version = 1};
    memset(id.measurement, TEST_BYTE_MEASUREMENT, sizeof(id.measurement));
    memset(id.chip_id, TEST_BYTE_CHIP_ID, sizeof(id.chip_id));
    memset(id.kbs_key_hash, TEST_BYTE_KBS_HASH, sizeof(id.kbs_key_hash));
    ek_profile_config profile;
    ek_profile_config_default(&profile);
    profile.base_url = a->base_url;
    ek_cert_request req = {.kind = a->kind, .subject_key = key, .identity = &id, .c509 = a->c509};
    if (err == VTPMCA_OK)
        err = ek_cert_issue(ca, &profile, &req, &res, diag);
    if (err == VTPMCA_OK) {
        store_cert rec;
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.serial, sizeof(rec.serial), "%s", res.serial_hex);
        snprintf(rec.instance_id, sizeof(rec.instance_id), "%s", a->instance);
        snprintf(rec.key_name, sizeof(rec.key_name), "%s", key_name);
        rec.kind = a->kind == EK_CERT_EK ? STORE_CERT_EK : STORE_CERT_IAK;
        rec.format = a->format;
        rec.not_before = res.not_before;
        rec.not_after = res.not_after;
        rec.status = STORE_CERT_ISSUED;
        rec.der = res.der;
        rec.der_len = res.der_len;
        rec.c509 = res.c509;
        rec.c509_len = res.c509_len;
        err = store_cert_put(st, &rec, diag);
    }
    if (err == VTPMCA_OK)
        memcpy(serial, res.serial_hex, sizeof(res.serial_hex));
    ek_cert_result_free(&res);
    EVP_PKEY_free(key);
    store_close(st);
    ca_free(ca);
    return err;
}

int main(int argc, char **argv)
{
    vtpmca_log_setup(VTPMCA_LOG_ERROR, VTPMCA_LOG_LOGFMT,
                     2); /* a new database logs its migrations */
    issue_args args;
    int rc = parse_args(argc, argv, &args);
    if (rc >= 0)
        return rc;
    char serial[2 * CA_SERIAL_LEN + 1];
    vtpmca_diag diag = {{0}};
    if (issue(&args, serial, &diag) != VTPMCA_OK) {
        fprintf(stderr, "ca-testissue: %s\n", diag.msg);
        return EXIT_FAILED;
    }
    printf("%s\n", serial);
    return 0;
}
