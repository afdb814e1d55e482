/* End-to-end tests of evidence-bound EK/IAK issuance: the real vtpmcad on 127.0.0.1 with a
 * CA (made by ca_init in its ca_dir), svsm-sim subprocesses that boot and get their
 * certificates, and the protocol spoken directly with the CA client for the refusals.
 * What is checked: a boot gets its certificates (X.509 or C509, CBOR or JSON bodies, IAK
 * proven by evidence or by credential activation, RSA-2048/P-256/P-384 EKs); the EK
 * certificate sits in the vTPM's NV index (read from the saved state with the enrolled
 * persistence key), `openssl verify -CAfile root -untrusted issuing` accepts it and its key
 * is the TPM's key byte for byte; every refusal over HTTP is a 4xx JSON {"error","message"}
 * and issues nothing; a daemon without a CA makes the default boot skip the step and an
 * explicit --certify fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/ca_fixture.h"
#include "../support/vtpmcad_runner.h"
#include "../support/svsm_sim_runner.h"
#include "vtpmca/ca_client.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/issuance.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/sim_platform.h"
#include "vtpmca/snp_testsigner.h"
#include "vtpmca/snp_vcek.h"
#include "vtpmca/store.h"
#include "vtpmca/svsm_state.h"
#include "vtpmca/vtpm.h"

#define FLEET "certify"
#define CHIP_ID                                                                                    \
    "6161616161616161616161616161616161616161616161616161616161616161"                             \
    "6161616161616161616161616161616161616161616161616161616161616161"

typedef struct {
    char id[32];
    char path[STORE_RESOURCE_PATH_MAX + 1];
    uint8_t key[ENROLLMENT_KEY_LEN];
    char state[192];
} vm;

enum { VM_RSA = 0, VM_P256, VM_P384, VM_PROTO, VM_COUNT };

static struct {
    char dir[64];
    char roots[128], platform[128], server_state[128], bare_state[128];
    char root_pem[256], issuing_pem[256];
    char good[97], bad[97];
    vm vms[VM_COUNT];
    vm bare_vm; /* on the daemon without a CA */
    vtpmcad_proc d, bare;
    sim_platform *sim; /* the platform, to sign reports here */
} fx;

/* ---- helpers ---- */

static void prepare_state(const char *state_dir, store **st_out, keyvault **vault_out)
{
    vtpmca_diag diag = {{0}};
    char path[256];
    assert_int_equal(vt_mkdir_p(state_dir, 0700, &diag), VTPMCA_OK);
    snprintf(path, sizeof(path), "%s/vtpmca.db", state_dir);
    assert_int_equal(store_open(path, st_out, &diag), VTPMCA_OK);
    snprintf(path, sizeof(path), "%s/master.key", state_dir);
    assert_int_equal(keyvault_open(path, true, vault_out, &diag), VTPMCA_OK);
    /* What `vtpmca snp import-vcek` stores for the platform's VCEK. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    snp_vcek *vcek = NULL;
    snprintf(path, sizeof(path), "%s/vcek.der", fx.platform);
    assert_int_equal(vt_file_read(path, 65536, &der, &der_len, &diag), VTPMCA_OK);
    assert_int_equal(snp_vcek_parse(der, der_len, &vcek, &diag), VTPMCA_OK);
    const snp_vcek_info *info = snp_vcek_get_info(vcek);
    assert_int_equal(store_vcek_put(*st_out, "Milan", "vcek", info->hwid, info->tcb_raw, der,
                                    der_len, "import", &diag),
                     VTPMCA_OK);
    snp_vcek_free(vcek);
    free(der);
    assert_int_equal(store_fleet_create(*st_out, FLEET, "certify tests", &diag), VTPMCA_OK);
    char policy[256];
    snprintf(policy, sizeof(policy), "{\"measurements\":[\"%s\"],\"allow_debug\":false}", fx.good);
    assert_int_equal(store_policy_put(*st_out, FLEET, policy, "test", NULL, &diag), VTPMCA_OK);
}

static void enroll(store *st, const keyvault *vault, const char *id, vm *out)
{
    snprintf(out->id, sizeof(out->id), "%s", id);
    enroll_request req = {
        .instance_id = id, .fleet = FLEET, .mode = STORE_KEY_GENERATED, .actor = "test"};
    enroll_result res;
    vtpmca_diag diag = {{0}};
    if (enrollment_enroll(st, vault, &req, &res, &diag) != VTPMCA_OK)
        fail_msg("enroll %s: %s", id, diag.msg);
    snprintf(out->path, sizeof(out->path), "%s", res.resource_path);
    store_instance inst;
    assert_int_equal(store_instance_get(st, id, &inst, NULL), VTPMCA_OK);
    char context[ENROLLMENT_CONTEXT_MAX];
    assert_int_equal(enrollment_key_context(STORE_KEY_GENERATED, id, context, NULL), VTPMCA_OK);
    uint8_t key[KEYVAULT_KEY_MAX];
    size_t len = 0;
    assert_int_equal(keyvault_unwrap(vault, inst.wrapped_key, inst.wrapped_key_len, context, key,
                                     sizeof(key), &len, NULL),
                     VTPMCA_OK);
    memcpy(out->key, key, ENROLLMENT_KEY_LEN);
    store_instance_free_fields(&inst);
    snprintf(out->state, sizeof(out->state), "%s/vm-%s", fx.dir, id);
}

static svsm_sim_run boot(const vtpmcad_proc *server, const vm *v, const char *measurement,
                         const char *const *extra)
{
    svsm_sim_boot_opts opts = {server->url, fx.platform, v->state, v->path, measurement};
    return svsm_sim_boot(&opts, extra);
}

/* The NV index of the saved vTPM state (opened with the enrolled persistence key) and the
 * EK's public area, both malloc'd. */
static void read_vtpm(const vm *v, vtpm_ek_kind kind, uint32_t nv_index, uint8_t **cert,
                      size_t *cert_len, uint8_t **ek_pub, size_t *ek_pub_len)
{
    uint8_t file_key[SVSM_STATE_KEY_LEN];
    assert_int_equal(svsm_state_derive_key(v->key, ENROLLMENT_KEY_LEN, file_key, NULL), VTPMCA_OK);
    char path[256];
    snprintf(path, sizeof(path), "%s/vtpm.state", v->state);
    svsm_state_content content;
    svsm_state_version version;
    vtpmca_diag diag = {{0}};
    if (svsm_state_read(path, file_key, &content, &version, &diag) != VTPMCA_OK)
        fail_msg("state %s: %s", path, diag.msg);
    vtpm *tpm = NULL;
    assert_int_equal(vtpm_open(content.tpm_state, content.tpm_state_len, &tpm, &diag), VTPMCA_OK);
    if (vtpm_nv_read(tpm, nv_index, cert, cert_len, &diag) != VTPMCA_OK)
        fail_msg("NV 0x%08x: %s", nv_index, diag.msg);
    uint32_t handle = 0;
    assert_int_equal(vtpm_create_ek(tpm, kind, &handle, ek_pub, ek_pub_len, NULL, &diag),
                     VTPMCA_OK);
    vtpm_close(tpm);
    svsm_state_content_clear(&content);
}

/* `openssl verify` of a DER certificate against the CA files, and its key = the EK's. */
static void verify_ek_cert(const uint8_t *der, size_t der_len, const uint8_t *ek_pub,
                           size_t ek_pub_len, const char *name)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    assert_non_null(cert);
    char pem_path[192];
    snprintf(pem_path, sizeof(pem_path), "%s/%s.pem", fx.dir, name);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(ca_fixture_write(pem_path, pem, (size_t)pem_len), 0);
    BIO_free(bio);
    char cmd[768], *out = NULL;
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s' -untrusted '%s' '%s'", fx.root_pem,
             fx.issuing_pem, pem_path);
    int code = ca_fixture_run(cmd, &out);
    if (code != 0 || strstr(out, ": OK") == NULL)
        fail_msg("%s -> %d\n%s", cmd, code, out);
    free(out);
    EVP_PKEY *ek = NULL;
    assert_int_equal(vtpm_tpmt_public_to_evp(ek_pub, ek_pub_len, &ek, NULL), VTPMCA_OK);
    unsigned char *want = NULL, *got = NULL;
    int want_len = i2d_PUBKEY(ek, &want), got_len = i2d_PUBKEY(X509_get0_pubkey(cert), &got);
    assert_true(want_len > 0);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, (size_t)want_len);
    OPENSSL_free(want);
    OPENSSL_free(got);
    EVP_PKEY_free(ek);
    X509_free(cert);
}

static size_t issued_for(const char *state_dir, const char *instance_id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/vtpmca.db", state_dir);
    store *st = NULL;
    assert_int_equal(store_open(path, &st, NULL), VTPMCA_OK);
    store_cert *list = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(st, instance_id, NULL, 1000, &list, &n, NULL), VTPMCA_OK);
    free(list);
    store_close(st);
    return n;
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "certify-daemon") != 0)
        return -1;
    snprintf(fx.roots, sizeof(fx.roots), "%s/test-root", fx.dir);
    snprintf(fx.platform, sizeof(fx.platform), "%s/platform", fx.dir);
    snprintf(fx.server_state, sizeof(fx.server_state), "%s/server", fx.dir);
    snprintf(fx.bare_state, sizeof(fx.bare_state), "%s/bare", fx.dir);
    svsm_sim_fill_measurement(fx.good, "5a");
    svsm_sim_fill_measurement(fx.bad, "ee");
    vtpmca_diag diag = {{0}};
    if (svsm_sim_save_test_root(fx.roots) != 0 ||
        svsm_sim_platform_init(fx.platform, fx.roots, CHIP_ID) != 0 ||
        sim_platform_load(fx.platform, &fx.sim, &diag) != VTPMCA_OK)
        return -1;

    store *st = NULL;
    keyvault *vault = NULL;
    prepare_state(fx.server_state, &st, &vault);
    const char *names[VM_COUNT] = {"vm-rsa", "vm-p256", "vm-p384", "vm-proto"};
    for (int i = 0; i < VM_COUNT; i++)
        enroll(st, vault, names[i], &fx.vms[i]);
    keyvault_free(vault);
    store_close(st);
    prepare_state(fx.bare_state, &st, &vault);
    enroll(st, vault, "vm-bare", &fx.bare_vm);
    keyvault_free(vault);
    store_close(st);

    /* The CA in the daemon's default ca_dir, and its certificates as PEM files. */
    char ca_dir[192];
    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", fx.server_state);
    ca_ctx *ca = ca_fixture_make_ca(ca_dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P384);
    if (ca == NULL)
        return -1;
    ca_free(ca);
    snprintf(fx.root_pem, sizeof(fx.root_pem), "%s/%s", ca_dir, CA_ROOT_CERT_FILE);
    snprintf(fx.issuing_pem, sizeof(fx.issuing_pem), "%s/%s", ca_dir, CA_ISSUING_CERT_FILE);

    const char *trust[] = {"--extra-roots-dir", fx.roots, NULL};
    if (vtpmcad_start(&fx.d, fx.dir, "server", fx.server_state, trust, &diag) != VTPMCA_OK ||
        vtpmcad_start(&fx.bare, fx.dir, "bare", fx.bare_state, trust, &diag) != VTPMCA_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int a = vtpmcad_stop(&fx.d), b = vtpmcad_stop(&fx.bare);
    sim_platform_free(fx.sim);
    curl_global_cleanup();
    int rm = ca_fixture_rmtree(fx.dir);
    return a == 0 && b == 0 && rm == 0 ? 0 : -1;
}

/* ---- boots ---- */

static void boot_and_check(vm *v, vtpm_ek_kind kind, uint32_t nv_index, const char *const *extra,
                           const char *needle)
{
    size_t before = issued_for(fx.server_state, v->id);
    svsm_sim_run r = boot(&fx.d, v, fx.good, extra);
    svsm_sim_expect_boot_ok(&r);
    char nv[32];
    snprintf(nv, sizeof(nv), "NV 0x%08x: wrote", nv_index);
    if (strstr(r.out, nv) == NULL || strstr(r.out, needle) == NULL ||
        strstr(r.out, "IAK certificate serial") == NULL)
        fail_msg("missing \"%s\" / \"%s\" in:\n%s", nv, needle, r.out);
    svsm_sim_run_free(&r);
    assert_int_equal(issued_for(fx.server_state, v->id), before + 2);

    uint8_t *cert = NULL, *ek_pub = NULL;
    size_t cert_len = 0, ek_pub_len = 0;
    read_vtpm(v, kind, nv_index, &cert, &cert_len, &ek_pub, &ek_pub_len);
    verify_ek_cert(cert, cert_len, ek_pub, ek_pub_len, v->id);
    free(cert);
    free(ek_pub);
}

static void test_boot_x509_cbor_rsa(void **state)
{
    (void)state;
    boot_and_check(&fx.vms[VM_RSA], VTPM_EK_RSA2048, VTPM_NV_EK_CERT_RSA2048, NULL,
                   "(CBOR body) -> x509");
    /* A second boot: the same EK is certified again and its NV index rewritten. */
    boot_and_check(&fx.vms[VM_RSA], VTPM_EK_RSA2048, VTPM_NV_EK_CERT_RSA2048, NULL, "opened");
}

static void test_boot_c509_json_p256_activation(void **state)
{
    (void)state;
    const char *extra[] = {"--certify", "c509",        "--ca-encoding", "json", "--ek",
                           "p256",      "--iak-proof", "activation",    NULL};
    boot_and_check(&fx.vms[VM_P256], VTPM_EK_ECC_P256, VTPM_NV_EK_CERT_ECC_P256, extra,
                   "TPM2_ActivateCredential");
}

static void test_boot_c509_p384(void **state)
{
    (void)state;
    const char *extra[] = {"--certify", "c509", "--ek", "p384", NULL};
    boot_and_check(&fx.vms[VM_P384], VTPM_EK_ECC_P384, VTPM_NV_EK_CERT_ECC_P384, extra,
                   "(CBOR body) -> c509");
}

static void test_daemon_without_ca(void **state)
{
    (void)state;
    svsm_sim_run r = boot(&fx.bare, &fx.bare_vm, fx.good, NULL);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "ca_not_initialized"));
    svsm_sim_run_free(&r);
    const char *extra[] = {"--certify", "x509", NULL};
    r = boot(&fx.bare, &fx.bare_vm, fx.good, extra);
    if (r.code != 1 || strstr(r.err, "REFUSED at certificates:") == NULL ||
        strstr(r.err, "ca_not_initialized") == NULL)
        fail_msg("expected a refusal, got %d\n%s\n%s", r.code, r.out, r.err);
    svsm_sim_run_free(&r);
    /* --certify none never asks. */
    const char *none[] = {"--certify", "none", NULL};
    r = boot(&fx.bare, &fx.bare_vm, fx.good, none);
    svsm_sim_expect_boot_ok(&r);
    assert_non_null(strstr(r.out, "skipped (--certify none)"));
    svsm_sim_run_free(&r);
}

/* ---- the refusal matrix over HTTP ---- */

typedef struct {
    uint8_t *ek_pub, *iak_pub;
    size_t ek_pub_len, iak_pub_len;
    uint8_t *kbs_der;
    size_t kbs_der_len;
    uint8_t nonce[ISSUANCE_NONCE_LEN];
    uint8_t report[SNP_REPORT_SIZE];
} proto_keys;

/* An L-1 EK / IAK from a fresh libtpms TPM, and the daemon's KBS key. */
static void make_keys(proto_keys *k)
{
    memset(k, 0, sizeof(*k));
    vtpm *tpm = NULL;
    assert_int_equal(vtpm_open(NULL, 0, &tpm, NULL), VTPMCA_OK);
    uint32_t handle = 0;
    assert_int_equal(
        vtpm_create_ek(tpm, VTPM_EK_RSA2048, &handle, &k->ek_pub, &k->ek_pub_len, NULL, NULL),
        VTPMCA_OK);
    uint8_t tmpl[256];
    size_t tmpl_len = 0;
    assert_int_equal(ca_iak_template(tmpl, sizeof(tmpl), &tmpl_len), VTPMCA_OK);
    assert_int_equal(vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl, tmpl_len, &handle,
                                         &k->iak_pub, &k->iak_pub_len, NULL),
                     VTPMCA_OK);
    vtpm_close(tpm);
    char path[256];
    snprintf(path, sizeof(path), "%s/kbs-key.pem", fx.server_state);
    EVP_PKEY *kbs = NULL;
    assert_int_equal(kbs_key_load(path, &kbs, NULL), VTPMCA_OK);
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(kbs, &der);
    assert_true(len > 0);
    k->kbs_der = der;
    k->kbs_der_len = (size_t)len;
    EVP_PKEY_free(kbs);
}

static void free_keys(proto_keys *k)
{
    free(k->ek_pub);
    free(k->iak_pub);
    OPENSSL_free(k->kbs_der);
}

/* A request for VM_PROTO with a fresh challenge and a report binding what `bind_*` say. */
static issuance_certify_request make_request(ca_client *client, proto_keys *k,
                                             const uint8_t *bind_kbs, size_t bind_kbs_len,
                                             const char *measurement_hex)
{
    assert_int_equal(ca_client_challenge(client, k->nonce, NULL, NULL), VTPMCA_OK);
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX], kbs_hash[32];
    size_t ek_name_len = 0, iak_name_len = 0;
    assert_int_equal(vtpm_object_name(k->ek_pub, k->ek_pub_len, ek_name, &ek_name_len, NULL),
                     VTPMCA_OK);
    assert_int_equal(vtpm_object_name(k->iak_pub, k->iak_pub_len, iak_name, &iak_name_len, NULL),
                     VTPMCA_OK);
    EVP_Digest(bind_kbs, bind_kbs_len, kbs_hash, NULL, EVP_sha256(), NULL);
    sim_report_request req = {.version = 3};
    assert_int_equal(vt_hex_decode_fixed(measurement_hex, req.measurement, 48), VTPMCA_OK);
    assert_int_equal(issuance_report_data(k->nonce, ek_name, ek_name_len, iak_name, iak_name_len,
                                          kbs_hash, req.report_data, NULL),
                     VTPMCA_OK);
    assert_int_equal(sim_platform_sign_report(fx.sim, &req, k->report, NULL), VTPMCA_OK);
    return (issuance_certify_request){
        .ek_public = k->ek_pub,
        .ek_public_len = k->ek_pub_len,
        .iak_public = k->iak_pub,
        .iak_public_len = k->iak_pub_len,
        .kbs_key = k->kbs_der,
        .kbs_key_len = k->kbs_der_len,
        .resource = fx.vms[VM_PROTO].path,
        .format = "x509",
        .nonce = k->nonce,
        .nonce_len = sizeof(k->nonce),
        .report = k->report,
        .report_len = sizeof(k->report),
    };
}

static void expect_http_refusal(ca_client *client, const issuance_certify_request *rq, long status,
                                const char *error)
{
    ca_certificates certs;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ca_client_certify(client, rq, &certs, &diag);
    if (err == VTPMCA_OK || ca_client_last_status(client) != status ||
        strcmp(ca_client_last_error(client), error) != 0)
        fail_msg("expected HTTP %ld %s, got %s %ld %s: %s", status, error, vtpmca_err_name(err),
                 ca_client_last_status(client), ca_client_last_error(client), diag.msg);
    assert_null(certs.ek_cert);
}

/* A raw body; the answer must be a JSON error with that status and code. */
static void expect_raw_refusal(ca_client *client, const char *type, const void *body, size_t len,
                               long status, const char *error)
{
    long got = 0;
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    assert_int_equal(ca_client_post_raw(client, "/v1/ca/certify", type, body, len, &got, &reply,
                                        &reply_len, NULL),
                     VTPMCA_OK);
    json_t *doc = json_loadb((const char *)reply, reply_len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "error"));
    if (got != status || code == NULL || strcmp(code, error) != 0 ||
        !json_is_string(json_object_get(doc, "message")))
        fail_msg("expected %ld %s, got %ld: %s", status, error, got,
                 reply != NULL ? (const char *)reply : "");
    json_decref(doc);
    free(reply);
}

static void test_refusals_over_http(void **state)
{
    (void)state;
    const char *inst = fx.vms[VM_PROTO].id;
    proto_keys k;
    make_keys(&k);
    ca_client *client = NULL;
    for (int enc = 0; enc < 2; enc++) {
        assert_int_equal(ca_client_new(fx.d.url, (issuance_encoding)enc, 0, &client, NULL),
                         VTPMCA_OK);
        /* First a success, which pins this instance's EK. */
        issuance_certify_request rq = make_request(client, &k, k.kbs_der, k.kbs_der_len, fx.good);
        ca_certificates certs;
        vtpmca_diag diag = {{0}};
        if (ca_client_certify(client, &rq, &certs, &diag) != VTPMCA_OK)
            fail_msg("certify: %s", diag.msg);
        const uint8_t *const chain[2] = {certs.chain[0], certs.chain[1]};
        assert_int_equal(ca_certificate_check(certs.format, certs.ek_cert, certs.ek_cert_len, chain,
                                              certs.chain_len, k.ek_pub, k.ek_pub_len, NULL, NULL,
                                              &diag),
                         VTPMCA_OK);
        ca_certificates_free(&certs);
        size_t issued = issued_for(fx.server_state, inst);

        /* The same nonce again, and one never issued. */
        expect_http_refusal(client, &rq, 401, "invalid_nonce");
        issuance_certify_request other = rq;
        uint8_t random_nonce[ISSUANCE_NONCE_LEN] = {7};
        other.nonce = random_nonce;
        expect_http_refusal(client, &other, 401, "invalid_nonce");
        /* REPORT_DATA binding another KBS key. */
        uint8_t wrong[8] = {1, 2, 3};
        rq = make_request(client, &k, wrong, sizeof(wrong), fx.good);
        expect_http_refusal(client, &rq, 401, "report_data_mismatch");
        /* An untrusted KBS key (bound correctly). */
        EVP_PKEY *stranger = EVP_EC_gen("P-384");
        unsigned char *sder = NULL;
        int slen = i2d_PUBKEY(stranger, &sder);
        rq = make_request(client, &k, sder, (size_t)slen, fx.good);
        rq.kbs_key = sder;
        rq.kbs_key_len = (size_t)slen;
        expect_http_refusal(client, &rq, 403, "untrusted_kbs_key");
        OPENSSL_free(sder);
        EVP_PKEY_free(stranger);
        /* The fleet policy refuses the measurement. */
        rq = make_request(client, &k, k.kbs_der, k.kbs_der_len, fx.bad);
        expect_http_refusal(client, &rq, 403, "policy_rejected");
        /* Another EK for the instance. */
        proto_keys other_keys;
        make_keys(&other_keys);
        rq = make_request(client, &other_keys, other_keys.kbs_der, other_keys.kbs_der_len, fx.good);
        expect_http_refusal(client, &rq, 409, "ek_changed");
        free_keys(&other_keys);
        /* Not a default EK template (the IAK as EK), and malformed bytes. */
        rq = make_request(client, &k, k.kbs_der, k.kbs_der_len, fx.good);
        issuance_certify_request bad = rq;
        bad.ek_public = k.iak_pub;
        bad.ek_public_len = k.iak_pub_len;
        expect_http_refusal(client, &bad, 422, "unsupported_template");
        bad = rq;
        bad.ek_public_len -= 3;
        expect_http_refusal(client, &bad, 400, "bad_request");
        /* An oversized field. */
        uint8_t big[ISSUANCE_PUBLIC_MAX + 8] = {0};
        bad = rq;
        bad.ek_public = big;
        bad.ek_public_len = sizeof(big);
        expect_http_refusal(client, &bad, 413, "field_too_large");
        assert_int_equal(issued_for(fx.server_state, inst), issued);
        ca_client_free(client);
        client = NULL;
    }
    assert_int_equal(ca_client_new(fx.d.url, ISSUANCE_ENC_JSON, 0, &client, NULL), VTPMCA_OK);
    size_t issued = issued_for(fx.server_state, inst);
    /* Malformed bodies and media types. */
    expect_raw_refusal(client, "application/json", "{\"ek_public\":", 13, 400, "bad_request");
    expect_raw_refusal(client, "application/json", "{\"surprise\":1}", 14, 400, "bad_request");
    static const uint8_t cbor_garbage[] = {0xa1, 0x65, 'n', 'o', 'n'};
    expect_raw_refusal(client, "application/cbor", cbor_garbage, sizeof(cbor_garbage), 400,
                       "bad_request");
    static const uint8_t cbor_array[] = {0x80};
    expect_raw_refusal(client, "application/cbor", cbor_array, sizeof(cbor_array), 400,
                       "bad_request");
    expect_raw_refusal(client, "text/plain", "x", 1, 415, "unsupported_media_type");
    assert_int_equal(issued_for(fx.server_state, inst), issued);
    ca_client_free(client);
    free_keys(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_x509_cbor_rsa),
        cmocka_unit_test(test_boot_c509_json_p256_activation),
        cmocka_unit_test(test_boot_c509_p384),
        cmocka_unit_test(test_daemon_without_ca),
        cmocka_unit_test(test_refusals_over_http),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
