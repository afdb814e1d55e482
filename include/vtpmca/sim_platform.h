/* A simulated SEV-SNP machine for the reference SVSM client (TEST ONLY): a chip id, a TCB and
 * a VCEK (key and certificate) issued by a test AMD-like root (snp_testsigner.h), kept in a
 * platform directory:
 *   <dir>/vcek.der      the VCEK certificate (DER, mode 0644): what an admin imports
 *   <dir>/vcek.key.pem  its private key (PKCS#8 PEM, mode 0600)
 * Everything else (product, chip id, TCB) is read back from the certificate's AMD
 * extensions, so the two files are the whole platform. */
#ifndef VTPMCA_SIM_PLATFORM_H
#define VTPMCA_SIM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"

#define SIM_PLATFORM_VCEK_FILE "vcek.der"
#define SIM_PLATFORM_VCEK_KEY_FILE "vcek.key.pem"
#define SIM_CHIP_ID_LEN 64
/* Turin VCEKs carry only the first 8 bytes of the chip id; the rest is zero. */
#define SIM_CHIP_ID_LEN_TURIN 8

typedef struct {
    snp_product product;
    uint8_t chip_id[SIM_CHIP_ID_LEN];
    snp_tcb tcb;
} sim_platform_params;

typedef struct sim_platform sim_platform;

/* Parses a TCB spec "bl=N,tee=N,snp=N,ucode=N[,fmc=N]" (each 0..255, each once; fmc only on
 * Turin, 0 when absent). Malformed -> VTPMCA_ERR_PARSE with the component named. */
vtpmca_err sim_tcb_parse(const char *spec, snp_product product, snp_tcb *out, vtpmca_diag *diag);

/* Parses a chip id: 128 hex digits, or on Turin also 16 (the rest zero). On Turin the bytes
 * after the first 8 must be zero (the VCEK cannot carry them). */
vtpmca_err sim_chip_id_parse(const char *hex, snp_product product, uint8_t out[SIM_CHIP_ID_LEN],
                             vtpmca_diag *diag);

/* A random chip id (64 random bytes; on Turin 8 random bytes and zeros). */
vtpmca_err sim_chip_id_random(snp_product product, uint8_t out[SIM_CHIP_ID_LEN], vtpmca_diag *diag);

/* Makes the platform in dir (created with mode 0700 if missing): loads the test root of
 * params->product from test_root_dir (a directory made by `snp-testroot init`), issues a VCEK
 * for the chip id and TCB, and writes the two files. An existing platform (either file) is
 * never replaced: VTPMCA_ERR_CONFLICT. */
vtpmca_err sim_platform_create(const char *dir, const char *test_root_dir,
                               const sim_platform_params *params, vtpmca_diag *diag);

/* Loads a platform: the certificate must parse as a VCEK and the key must be its key
 * (VTPMCA_ERR_CRYPTO otherwise). */
vtpmca_err sim_platform_load(const char *dir, sim_platform **out, vtpmca_diag *diag);
void sim_platform_free(sim_platform *platform);

/* Product, chip id and TCB of a loaded platform (owned by it). */
const sim_platform_params *sim_platform_get_params(const sim_platform *platform);

/* What the guest asks its platform for: the fields of the report that are the guest's. */
typedef struct {
    uint32_t version;        /* report version 2, 3 or 5 */
    uint8_t report_data[64]; /* e.g. the KBS REPORT_DATA binding */
    uint8_t measurement[48]; /* launch digest */
    uint8_t host_data[32];   /* HOST_DATA given at launch */
} sim_report_request;

/* Produces a report as the platform would for VMPL 0 with the VCEK: the product's defaults
 * (snp_test_report_defaults), the platform's chip id and TCB, the request's fields, signed
 * with the VCEK key. */
vtpmca_err sim_platform_sign_report(const sim_platform *platform, const sim_report_request *req,
                                    uint8_t out[SNP_REPORT_SIZE], vtpmca_diag *diag);

#endif
