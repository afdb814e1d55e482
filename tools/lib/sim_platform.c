/* The simulated SEV-SNP machine of the reference SVSM client (TEST ONLY). */
#include "vtpmca/sim_platform.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "vtpmca/cli_util.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_vcek.h"

/* A VCEK certificate is about 1.3 KiB; anything near this bound is not one. */
#define VCEK_FILE_MAX 65536

struct sim_platform {
    sim_platform_params params;
    EVP_PKEY *vcek_key;
};

vtpmca_err sim_tcb_parse(const char *spec, snp_product product, snp_tcb *out, vtpmca_diag *diag)
{
    enum { BL, TEE, SNP, UCODE, FMC, COMPONENTS };
    static const char *const names[COMPONENTS] = {"bl", "tee", "snp", "ucode", "fmc"};
    if (spec == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "tcb: missing argument");
    bool seen[COMPONENTS] = {false};
    unsigned values[COMPONENTS] = {0};
    const char *p = spec;
    for (;;) {
        size_t name_len = strcspn(p, "=,");
        size_t c = 0;
        while (c < COMPONENTS &&
               !(strlen(names[c]) == name_len && strncmp(p, names[c], name_len) == 0))
            c++;
        if (c == COMPONENTS)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "TCB component \"%.*s\" is unknown (bl, tee, snp, ucode, fmc)",
                               (int)(name_len > 16 ? 16 : name_len), p);
        if (p[name_len] != '=')
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TCB component %s needs =VALUE", names[c]);
        if (seen[c])
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TCB component %s is given twice", names[c]);
        const char *digits = p + name_len + 1;
        char *end = NULL;
        errno = 0;
        unsigned long value = digits[0] >= '0' && digits[0] <= '9' ? strtoul(digits, &end, 10) : 0;
        if (end == NULL || end == digits || errno != 0 || value > 255 ||
            (*end != ',' && *end != '\0'))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TCB component %s must be 0..255", names[c]);
        seen[c] = true;
        values[c] = (unsigned)value;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    for (size_t c = BL; c <= UCODE; c++) {
        if (!seen[c])
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TCB component %s is missing", names[c]);
    }
    if (seen[FMC] && product != SNP_PRODUCT_TURIN)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "TCB component fmc exists on Turin only");
    *out = (snp_tcb){.bootloader = (uint8_t)values[BL],
                     .tee = (uint8_t)values[TEE],
                     .snp = (uint8_t)values[SNP],
                     .microcode = (uint8_t)values[UCODE],
                     .fmc = (uint8_t)values[FMC]};
    return VTPMCA_OK;
}

static size_t chip_id_significant_len(snp_product product)
{
    return product == SNP_PRODUCT_TURIN ? SIM_CHIP_ID_LEN_TURIN : SIM_CHIP_ID_LEN;
}

vtpmca_err sim_chip_id_parse(const char *hex, snp_product product, uint8_t out[SIM_CHIP_ID_LEN],
                             vtpmca_diag *diag)
{
    if (hex == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "chip id: missing argument");
    uint8_t chip_id[SIM_CHIP_ID_LEN] = {0};
    size_t len = strlen(hex);
    bool short_turin = product == SNP_PRODUCT_TURIN && len == 2 * SIM_CHIP_ID_LEN_TURIN;
    if (vt_hex_decode_fixed(hex, chip_id, short_turin ? SIM_CHIP_ID_LEN_TURIN : SIM_CHIP_ID_LEN) !=
        VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the chip id must be %s hex digits",
                           product == SNP_PRODUCT_TURIN ? "16 or 128" : "128");
    for (size_t i = chip_id_significant_len(product); i < SIM_CHIP_ID_LEN; i++) {
        if (chip_id[i] != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "a Turin chip id has 8 bytes: the rest must be zero");
    }
    memcpy(out, chip_id, SIM_CHIP_ID_LEN);
    return VTPMCA_OK;
}

vtpmca_err sim_chip_id_random(snp_product product, uint8_t out[SIM_CHIP_ID_LEN], vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "chip id: missing argument");
    if (product != SNP_PRODUCT_MILAN && product != SNP_PRODUCT_GENOA &&
        product != SNP_PRODUCT_TURIN)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "chip id: unknown product");
    memset(out, 0, SIM_CHIP_ID_LEN);
    if (RAND_bytes(out, (int)chip_id_significant_len(product)) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "random chip id failed");
    return VTPMCA_OK;
}

/* <dir>/vcek.der and <dir>/vcek.key.pem. */
static vtpmca_err platform_paths(const char *dir, char cert_path[PATH_MAX], char key_path[PATH_MAX],
                                 vtpmca_diag *diag)
{
    vtpmca_err err = vt_path_join(dir, SIM_PLATFORM_VCEK_FILE, cert_path, PATH_MAX, diag);
    if (err == VTPMCA_OK)
        err = vt_path_join(dir, SIM_PLATFORM_VCEK_KEY_FILE, key_path, PATH_MAX, diag);
    return err;
}

vtpmca_err sim_platform_create(const char *dir, const char *test_root_dir,
                               const sim_platform_params *params, vtpmca_diag *diag)
{
    if (dir == NULL || test_root_dir == NULL || params == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "platform create: missing argument");
    char cert_path[PATH_MAX], key_path[PATH_MAX];
    vtpmca_err err = platform_paths(dir, cert_path, key_path, diag);
    if (err != VTPMCA_OK)
        return err;
    /* A platform is a chip: replacing its key would silently make another machine. */
    struct stat st;
    if (stat(cert_path, &st) == 0 || stat(key_path, &st) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "%s already holds a platform", dir);

    snp_test_root *root = NULL;
    EVP_PKEY *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    snp_test_cert_params cert = {.kind = SNP_SIGNER_VCEK, .tcb = params->tcb};
    memcpy(cert.chip_id, params->chip_id, sizeof(cert.chip_id));
    err = snp_test_root_load(test_root_dir, params->product, &root, diag);
    if (err == VTPMCA_OK)
        err = snp_test_issue_cert(root, &cert, &key, &der, &der_len, diag);
    if (err == VTPMCA_OK)
        err = vt_mkdir_p(dir, 0700, diag);
    /* The key first: a crash in between leaves no certificate without its key. */
    if (err == VTPMCA_OK)
        err = snp_test_key_write_pem(key, key_path, diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(cert_path, der, der_len, 0644, diag);
    free(der);
    EVP_PKEY_free(key);
    snp_test_root_free(root);
    return err;
}

/* Whether key is the private half of the certificate's public key. */
static vtpmca_err check_key_matches(const snp_vcek *vcek, EVP_PKEY *key, const char *dir,
                                    vtpmca_diag *diag)
{
    const uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_err err = snp_vcek_get_der(vcek, &der, &der_len);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "cannot get the VCEK's DER");
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    EVP_PKEY *cert_key = cert != NULL ? X509_get0_pubkey(cert) : NULL;
    int same = cert_key != NULL ? EVP_PKEY_eq(cert_key, key) : 0;
    X509_free(cert);
    if (same != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s/%s is not the key of %s/%s", dir,
                           SIM_PLATFORM_VCEK_KEY_FILE, dir, SIM_PLATFORM_VCEK_FILE);
    return VTPMCA_OK;
}

vtpmca_err sim_platform_load(const char *dir, sim_platform **out, vtpmca_diag *diag)
{
    if (dir == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "platform load: missing argument");
    *out = NULL;
    char cert_path[PATH_MAX], key_path[PATH_MAX];
    vtpmca_err err = platform_paths(dir, cert_path, key_path, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t *der = NULL;
    size_t der_len = 0;
    snp_vcek *vcek = NULL;
    sim_platform *platform = calloc(1, sizeof(*platform));
    if (platform == NULL)
        return VTPMCA_ERR_NOMEM;
    err = vt_file_read(cert_path, VCEK_FILE_MAX, &der, &der_len, diag);
    if (err == VTPMCA_OK)
        err = snp_vcek_parse(der, der_len, &vcek, diag);
    const snp_vcek_info *info = vcek != NULL ? snp_vcek_get_info(vcek) : NULL;
    if (err == VTPMCA_OK && info->kind != SNP_SIGNER_VCEK)
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "%s is a VLEK; a platform has a VCEK",
                          cert_path);
    if (err == VTPMCA_OK)
        err = snp_test_key_read_pem(key_path, &platform->vcek_key, diag);
    if (err == VTPMCA_OK)
        err = check_key_matches(vcek, platform->vcek_key, dir, diag);
    if (err == VTPMCA_OK) {
        platform->params.product = info->product;
        platform->params.tcb = info->tcb;
        memcpy(platform->params.chip_id, info->hwid, info->hwid_len);
        *out = platform;
        platform = NULL;
    }
    snp_vcek_free(vcek);
    free(der);
    sim_platform_free(platform);
    return err;
}

void sim_platform_free(sim_platform *platform)
{
    if (platform == NULL)
        return;
    EVP_PKEY_free(platform->vcek_key);
    free(platform);
}

const sim_platform_params *sim_platform_get_params(const sim_platform *platform)
{
    return platform != NULL ? &platform->params : NULL;
}

vtpmca_err sim_platform_sign_report(const sim_platform *platform, const sim_report_request *req,
                                    uint8_t out[SNP_REPORT_SIZE], vtpmca_diag *diag)
{
    if (platform == NULL || req == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sign report: missing argument");
    if (req->version != 2 && req->version != 3 && req->version != 5)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "sign report: version must be 2, 3 or 5, got %u", req->version);
    snp_report report;
    vtpmca_err err = snp_test_report_defaults(&report, platform->params.product, req->version,
                                              platform->params.chip_id, &platform->params.tcb);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "cannot fill the report defaults");
    memcpy(report.report_data, req->report_data, sizeof(report.report_data));
    memcpy(report.measurement, req->measurement, sizeof(report.measurement));
    memcpy(report.host_data, req->host_data, sizeof(report.host_data));
    return snp_test_report_sign(&report, platform->vcek_key, out, diag);
}
