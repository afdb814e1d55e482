/* TEST-ONLY fixture for the KBS protocol tests (engine in-process and the real daemon): a
 * test AMD-like Milan root and one VCEK, a sqlite store holding that VCEK, two fleets (one
 * with a policy allowing KBS_FIXTURE_MEASUREMENT, one without a policy), a master key, and
 * enrolled instances covering every release outcome; plus builders for signed reports and
 * attest bodies of both REPORT_DATA flavours. */
#ifndef VTPMCA_TESTS_KBS_FIXTURE_H
#define VTPMCA_TESTS_KBS_FIXTURE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/report_data.h"
#include "vtpmca/snp_report.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/store.h"

#define KBS_FIXTURE_MEASUREMENT 0x11     /* allowed by fleet-a's policy */
#define KBS_FIXTURE_BAD_MEASUREMENT 0x22 /* not allowed */
#define KBS_FIXTURE_HOST_DATA 0x44       /* HOST_DATA of the fixture's reports */

/* Instances, by what a release to them decides. */
typedef enum {
    KBS_INSTANCE_GENERATED = 0, /* fleet-a, generated key: granted */
    KBS_INSTANCE_HOST_DATA,     /* fleet-a, enrolled host data = the reports': granted */
    KBS_INSTANCE_HOST_MISMATCH, /* fleet-a, enrolled host data differs: host_data_mismatch */
    KBS_INSTANCE_WRAPPED,       /* fleet-a, wrapped-key mode: granted with its blob */
    KBS_INSTANCE_DISABLED,      /* fleet-a, disabled */
    KBS_INSTANCE_NO_POLICY,     /* fleet-b, which has no policy */
    KBS_INSTANCE_COUNT
} kbs_fixture_instance;

typedef struct {
    char dir[64];         /* temporary directory, removed by kbs_fixture_destroy */
    char roots_dir[128];  /* the test root, for snp_roots_add_dir / --extra-roots-dir */
    char db_path[128];    /* the sqlite store */
    char master_key[128]; /* the master key file */
    snp_test_root *root;
    EVP_PKEY *vcek_key;
    uint8_t *vcek_der;
    size_t vcek_der_len;
    uint8_t chip_id[64];
    snp_tcb tcb;
    char instance_id[KBS_INSTANCE_COUNT][32];
    char path[KBS_INSTANCE_COUNT][STORE_RESOURCE_PATH_MAX + 1];
    uint8_t wrapped_key[32]; /* the admin's key of the wrapped-mode instance */
    uint8_t *wrapped_blob;   /* what that instance presents */
    size_t wrapped_blob_len;
} kbs_fixture;

/* Makes everything above (about a second: RSA keys of the test root). The store is closed
 * again when this returns. */
vtpmca_err kbs_fixture_create(kbs_fixture *fx, vtpmca_diag *diag);
void kbs_fixture_destroy(kbs_fixture *fx);

/* The persistence key the service keeps for a generated-mode instance (unwrapped with the
 * master key, read from the store). */
vtpmca_err kbs_fixture_instance_key(const kbs_fixture *fx, kbs_fixture_instance instance,
                                    uint8_t out[KEYVAULT_KEY_MAX], size_t *len, vtpmca_diag *diag);

/* A Milan v3 report signed by the fixture's VCEK, from VMPL 0, with the given measurement
 * byte (repeated), HOST_DATA KBS_FIXTURE_HOST_DATA and report_data. */
vtpmca_err kbs_fixture_sign_report(const kbs_fixture *fx, uint8_t measurement,
                                   const uint8_t report_data[64], uint8_t out[SNP_REPORT_SIZE],
                                   vtpmca_diag *diag);

/* The runtime-data tee-pubkey of a key: its RFC 7517 JWK plus "alg" (ECDH-ES+A256KW for EC,
 * RSA-OAEP-256 for RSA). */
json_t *kbs_fixture_tee_jwk(const EVP_PKEY *tee_key);

/* The attest body exactly as aproxy sends it (see docs/protocol.md):
 * {"init-data":null,"runtime-data":{"nonce","tee-pubkey"},"tee-evidence":{
 *  "primary_evidence":{"snp-report":<std base64>,"certs-buf":null},"additional_evidence":""}}
 * The JWK reference is not taken. */
json_t *kbs_fixture_attest_body(const char *nonce_b64, const json_t *tee_jwk,
                                const uint8_t report[SNP_REPORT_SIZE]);

/* A complete attest body for a session nonce: REPORT_DATA of the flavour over the tee key's
 * JWK and the nonce, and a report with that measurement byte. */
json_t *kbs_fixture_evidence(const kbs_fixture *fx, report_data_flavour flavour,
                             const EVP_PKEY *tee_key, const char *nonce_b64, uint8_t measurement);

#endif
