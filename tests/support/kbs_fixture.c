/* TEST-ONLY KBS fixture (see kbs_fixture.h). */
#include "kbs_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ca_fixture.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/jwe.h"

static const char *const instance_names[KBS_INSTANCE_COUNT] = {
    "inst-generated", "inst-host-data", "inst-host-mismatch",
    "inst-wrapped",   "inst-disabled",  "inst-no-policy"};

static vtpmca_err make_platform(kbs_fixture *fx, vtpmca_diag *diag)
{
    vtpmca_err err = snp_test_root_new(SNP_PRODUCT_MILAN, 2048, &fx->root, diag);
    if (err == VTPMCA_OK)
        err = snp_test_root_save(fx->root, fx->roots_dir, diag);
    if (err != VTPMCA_OK)
        return err;
    for (size_t i = 0; i < sizeof(fx->chip_id); i++)
        fx->chip_id[i] = (uint8_t)(0x80 + i * 3);
    fx->tcb = (snp_tcb){.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};
    snp_test_cert_params params = {.kind = SNP_SIGNER_VCEK, .tcb = fx->tcb};
    memcpy(params.chip_id, fx->chip_id, sizeof(params.chip_id));
    return snp_test_issue_cert(fx->root, &params, &fx->vcek_key, &fx->vcek_der, &fx->vcek_der_len,
                               diag);
}

/* fleet-a: a policy allowing only KBS_FIXTURE_MEASUREMENT; fleet-b: no policy. */
static vtpmca_err make_fleets(store *st, vtpmca_diag *diag)
{
    uint8_t measurement[48];
    char hex[97], policy[160];
    memset(measurement, KBS_FIXTURE_MEASUREMENT, sizeof(measurement));
    vt_hex_encode(measurement, sizeof(measurement), hex, sizeof(hex));
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"]}", hex);
    vtpmca_err err = store_fleet_create(st, "fleet-a", "KBS tests", diag);
    if (err == VTPMCA_OK)
        err = store_policy_put(st, "fleet-a", policy, "kbs-fixture", NULL, diag);
    if (err == VTPMCA_OK)
        err = store_fleet_create(st, "fleet-b", "no policy", diag);
    return err;
}

static vtpmca_err enroll_all(kbs_fixture *fx, store *st, const keyvault *vault, vtpmca_diag *diag)
{
    uint8_t host_data[32], other_host[32];
    memset(host_data, KBS_FIXTURE_HOST_DATA, sizeof(host_data));
    memset(other_host, 0x33, sizeof(other_host));
    for (int i = 0; i < KBS_INSTANCE_COUNT; i++) {
        snprintf(fx->instance_id[i], sizeof(fx->instance_id[i]), "%s", instance_names[i]);
        enroll_request req = {
            .instance_id = fx->instance_id[i],
            .fleet = i == KBS_INSTANCE_NO_POLICY ? "fleet-b" : "fleet-a",
            .host_data = i == KBS_INSTANCE_HOST_DATA       ? host_data
                         : i == KBS_INSTANCE_HOST_MISMATCH ? other_host
                                                           : NULL,
            .resource_path = NULL, /* generated: vtpmca/persistence-key/<random tag> */
            .mode = i == KBS_INSTANCE_WRAPPED ? STORE_KEY_WRAPPED : STORE_KEY_GENERATED,
            .actor = "kbs-fixture",
        };
        enroll_result res;
        vtpmca_err err = enrollment_enroll(st, vault, &req, &res, diag);
        if (err != VTPMCA_OK)
            return err;
        snprintf(fx->path[i], sizeof(fx->path[i]), "%s", res.resource_path);
    }
    for (size_t i = 0; i < sizeof(fx->wrapped_key); i++)
        fx->wrapped_key[i] = (uint8_t)(0xe0 ^ i);
    vtpmca_err err = enrollment_wrap_key(vault, fx->instance_id[KBS_INSTANCE_WRAPPED],
                                         fx->wrapped_key, sizeof(fx->wrapped_key),
                                         &fx->wrapped_blob, &fx->wrapped_blob_len, diag);
    if (err == VTPMCA_OK)
        err = store_instance_set_disabled(st, fx->instance_id[KBS_INSTANCE_DISABLED], true, diag);
    return err;
}

vtpmca_err kbs_fixture_create(kbs_fixture *fx, vtpmca_diag *diag)
{
    memset(fx, 0, sizeof(*fx));
    if (ca_fixture_tmpdir(fx->dir, sizeof(fx->dir), "kbs") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "mkdtemp failed");
    snprintf(fx->roots_dir, sizeof(fx->roots_dir), "%s/roots", fx->dir);
    snprintf(fx->db_path, sizeof(fx->db_path), "%s/state/vtpmca.db", fx->dir);
    snprintf(fx->master_key, sizeof(fx->master_key), "%s/state/master.key", fx->dir);
    char state_dir[128];
    snprintf(state_dir, sizeof(state_dir), "%s/state", fx->dir);
    vtpmca_err err = vt_mkdir_p(state_dir, 0700, diag);
    if (err == VTPMCA_OK)
        err = make_platform(fx, diag);
    store *st = NULL;
    keyvault *vault = NULL;
    if (err == VTPMCA_OK)
        err = store_open(fx->db_path, &st, diag);
    if (err == VTPMCA_OK) {
        uint64_t tcb_raw = 0;
        snp_tcb_encode(&fx->tcb, SNP_PRODUCT_MILAN, &tcb_raw);
        err = store_vcek_put(st, "Milan", "vcek", fx->chip_id, tcb_raw, fx->vcek_der,
                             fx->vcek_der_len, "import", diag);
    }
    if (err == VTPMCA_OK)
        err = make_fleets(st, diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(fx->master_key, true, &vault, diag);
    if (err == VTPMCA_OK)
        err = enroll_all(fx, st, vault, diag);
    keyvault_free(vault);
    store_close(st);
    return err;
}

void kbs_fixture_destroy(kbs_fixture *fx)
{
    snp_test_root_free(fx->root);
    EVP_PKEY_free(fx->vcek_key);
    free(fx->vcek_der);
    free(fx->wrapped_blob);
    if (fx->dir[0] != '\0') {
        if (ca_fixture_rmtree(fx->dir) != 0)
            fprintf(stderr, "cannot remove %s\n", fx->dir);
    }
    memset(fx, 0, sizeof(*fx));
}

vtpmca_err kbs_fixture_instance_key(const kbs_fixture *fx, kbs_fixture_instance instance,
                                    uint8_t out[KEYVAULT_KEY_MAX], size_t *len, vtpmca_diag *diag)
{
    store *st = NULL;
    keyvault *vault = NULL;
    store_instance inst;
    memset(&inst, 0, sizeof(inst));
    char context[ENROLLMENT_CONTEXT_MAX];
    vtpmca_err err = store_open(fx->db_path, &st, diag);
    if (err == VTPMCA_OK)
        err = keyvault_open(fx->master_key, false, &vault, diag);
    if (err == VTPMCA_OK)
        err = store_instance_get(st, fx->instance_id[instance], &inst, diag);
    if (err == VTPMCA_OK)
        err = enrollment_key_context(inst.key_mode, inst.id, context, diag);
    if (err == VTPMCA_OK)
        err = keyvault_unwrap(vault, inst.wrapped_key, inst.wrapped_key_len, context, out,
                              KEYVAULT_KEY_MAX, len, diag);
    store_instance_free_fields(&inst);
    keyvault_free(vault);
    store_close(st);
    return err;
}

vtpmca_err kbs_fixture_sign_report(const kbs_fixture *fx, uint8_t measurement,
                                   const uint8_t report_data[64], uint8_t out[SNP_REPORT_SIZE],
                                   vtpmca_diag *diag)
{
    snp_report report;
    vtpmca_err err = snp_test_report_defaults(&report, SNP_PRODUCT_MILAN, 3, fx->chip_id, &fx->tcb);
    if (err != VTPMCA_OK)
        return err;
    memset(report.measurement, measurement, sizeof(report.measurement));
    memset(report.host_data, KBS_FIXTURE_HOST_DATA, sizeof(report.host_data));
    memcpy(report.report_data, report_data, sizeof(report.report_data));
    return snp_test_report_sign(&report, fx->vcek_key, out, diag);
}

json_t *kbs_fixture_tee_jwk(const EVP_PKEY *tee_key)
{
    json_t *jwk = NULL;
    if (jwe_pubkey_to_jwk(tee_key, JWE_JWK_RFC7517, &jwk, NULL) != VTPMCA_OK)
        return NULL;
    const char *alg = jwe_ec_curve_name(tee_key) != NULL ? "ECDH-ES+A256KW" : "RSA-OAEP-256";
    json_object_set_new(jwk, "alg", json_string(alg));
    return jwk;
}

json_t *kbs_fixture_attest_body(const char *nonce_b64, const json_t *tee_jwk,
                                const uint8_t report[SNP_REPORT_SIZE])
{
    char *report_b64 = NULL;
    if (vt_b64_encode_alloc(report, SNP_REPORT_SIZE, VT_B64_STD, &report_b64) != VTPMCA_OK)
        return NULL;
    json_t *body =
        json_pack("{s:n,s:{s:s,s:O},s:{s:{s:s,s:n},s:s}}", "init-data", "runtime-data", "nonce",
                  nonce_b64, "tee-pubkey", tee_jwk, "tee-evidence", "primary_evidence",
                  "snp-report", report_b64, "certs-buf", "additional_evidence", "");
    free(report_b64);
    return body;
}

json_t *kbs_fixture_evidence(const kbs_fixture *fx, report_data_flavour flavour,
                             const EVP_PKEY *tee_key, const char *nonce_b64, uint8_t measurement)
{
    json_t *jwk = kbs_fixture_tee_jwk(tee_key);
    uint8_t *nonce = NULL;
    size_t nonce_len = 0;
    uint8_t report_data[64], report[SNP_REPORT_SIZE];
    json_t *body = NULL;
    vtpmca_err err = jwk != NULL ? vt_b64_decode_alloc(nonce_b64, strlen(nonce_b64), VT_B64_STD,
                                                       &nonce, &nonce_len)
                                 : VTPMCA_ERR_NOMEM;
    if (err == VTPMCA_OK)
        err = flavour == REPORT_DATA_FLAVOUR_SVSM
                  ? report_data_svsm(tee_key, nonce, nonce_len, report_data, NULL)
                  : report_data_trustee(jwk, nonce_b64, "", report_data, NULL);
    if (err == VTPMCA_OK)
        err = kbs_fixture_sign_report(fx, measurement, report_data, report, NULL);
    if (err == VTPMCA_OK)
        body = kbs_fixture_attest_body(nonce_b64, jwk, report);
    free(nonce);
    json_decref(jwk);
    return body;
}
