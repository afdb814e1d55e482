/* Tests for the issuance engine (ca/issuance.c) in-process, with real parts: the SNP verifier
 * with a test AMD-like root (the KBS fixture: VCEK, sqlite store with enrolled instances and
 * fleet policies), a CA made by ca_init in a temp directory, EKs and an IAK from a libtpms
 * vTPM, and the CA's credential activation answered by TPM2_ActivateCredential.
 * Covered: REPORT_DATA layout (recomputed independently); issuance in x509 and c509 for
 * RSA-2048, P-256 and P-384 EKs (chain, key, identity extension, store records, audit); every
 * refusal (nonce unknown/reused/expired, untrusted KBS key, REPORT_DATA mismatch, evidence,
 * policy, disabled, host data, no policy, unknown resource, changed EK and admin
 * re-enrollment, template, malformed and oversized fields, IAK not proven); activation (right
 * and wrong secrets, expiry, single use, required mode); the wire codec (JSON and CBOR,
 * strictness); the challenge table bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/sha.h>

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/ca_fixture.h"
#include "../support/kbs_fixture.h"
#include "vtpmca/ca_client.h"
#include "vtpmca/c509.h"
#include "vtpmca/encoding.h"
#include "vtpmca/ek_template.h"
#include "vtpmca/issuance.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_roots.h"
#include "vtpmca/vtpm.h"

#define KIND_COUNT 3

static struct {
    kbs_fixture fx;
    char ca_dir[64];
    store *store;
    snp_roots *roots;
    snp_verifier *verifier;
    policy_cache *policies;
    ca_ctx *ca;
    EVP_PKEY *kbs_key, *peer_key, *stranger_key;
    uint8_t *kbs_der, *peer_der, *stranger_der;
    size_t kbs_der_len, peer_der_len, stranger_der_len;
    uint64_t now_ms;
    issuance *engine;
    vtpm *tpm;
    uint32_t ek_handle[KIND_COUNT], iak_handle;
    uint8_t *ek_pub[KIND_COUNT], *iak_pub;
    size_t ek_pub_len[KIND_COUNT], iak_pub_len;
    uint8_t other_ek[512]; /* a valid L-2 EK of "another TPM" */
    size_t other_ek_len;
} g;

static const vtpm_ek_kind KINDS[KIND_COUNT] = {VTPM_EK_RSA2048, VTPM_EK_ECC_P256, VTPM_EK_ECC_P384};

static uint64_t test_clock(void *ctx)
{
    (void)ctx;
    return g.now_ms;
}

static uint8_t *der_of(const EVP_PKEY *key, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY((EVP_PKEY *)key, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}

static void fingerprint(const EVP_PKEY *key, uint8_t out[32])
{
    assert_int_equal(kbs_key_fingerprint(key, out, NULL), VTPMCA_OK);
}

static issuance *make_engine(bool require_activation, unsigned challenge_capacity)
{
    uint8_t trusted[2][32];
    fingerprint(g.kbs_key, trusted[0]);
    fingerprint(g.peer_key, trusted[1]);
    issuance_config cfg = {
        .store = g.store,
        .verifier = g.verifier,
        .policies = g.policies,
        .ca = g.ca,
        .trusted_kbs_keys = (const uint8_t(*)[32])trusted,
        .n_trusted_kbs_keys = 2,
        .challenge_capacity = challenge_capacity,
        .require_iak_activation = require_activation,
        .clock = test_clock,
    };
    ca_fixture_profile(&cfg.profile);
    issuance *e = NULL;
    vtpmca_diag diag = {{0}};
    if (issuance_new(&cfg, &e, &diag) != VTPMCA_OK)
        fail_msg("issuance_new: %s", diag.msg);
    return e;
}

/* A restricted ECDSA P-256 signing key in the endorsement hierarchy (admin by authValue). */
static void create_iak(void)
{
    uint8_t buf[256];
    size_t tmpl_len = 0;
    assert_int_equal(ca_iak_template(buf, sizeof(buf), &tmpl_len), VTPMCA_OK);
    assert_int_equal(vtpm_create_primary(g.tpm, TPM2_RH_ENDORSEMENT, buf, tmpl_len, &g.iak_handle,
                                         &g.iak_pub, &g.iak_pub_len, NULL),
                     VTPMCA_OK);
}

/* An L-2 EK whose key is not this TPM's. */
static void make_other_ek(void)
{
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(VTPM_EK_ECC_P256, &t), VTPMCA_OK);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    BIGNUM *x = NULL, *y = NULL;
    uint8_t xy[64];
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    BN_bn2binpad(x, xy, 32);
    BN_bn2binpad(y, xy + 32, 32);
    BN_free(x);
    BN_free(y);
    EVP_PKEY_free(key);
    t.unique_a = xy;
    t.unique_b = xy + 32;
    tpm2_writer w;
    tpm2_writer_init(&w, g.other_ek, sizeof(g.other_ek));
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    g.other_ek_len = w.len;
}

static int group_setup(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    if (kbs_fixture_create(&g.fx, &diag) != VTPMCA_OK) {
        fprintf(stderr, "fixture: %s\n", diag.msg);
        return -1;
    }
    vtpmca_err err = store_open(g.fx.db_path, &g.store, &diag);
    if (err == VTPMCA_OK)
        err = snp_roots_new_empty(&g.roots);
    if (err == VTPMCA_OK)
        err = snp_roots_add_dir(g.roots, g.fx.roots_dir, &diag);
    if (err == VTPMCA_OK) {
        snp_verifier_config vc = {.roots = g.roots, .store = g.store};
        err = snp_verifier_new(&vc, &g.verifier, &diag);
    }
    if (err == VTPMCA_OK)
        err = policy_cache_new(g.store, 16, 0, &g.policies);
    if (err == VTPMCA_OK && ca_fixture_tmpdir(g.ca_dir, sizeof(g.ca_dir), "issuance") != 0)
        err = VTPMCA_ERR_IO;
    if (err == VTPMCA_OK) {
        char dir[128];
        snprintf(dir, sizeof(dir), "%s/ca", g.ca_dir);
        g.ca = ca_fixture_make_ca(dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P384);
        if (g.ca == NULL)
            err = VTPMCA_ERR_INTERNAL;
    }
    if (err == VTPMCA_OK)
        err = kbs_key_generate(KBS_KEY_P384, &g.kbs_key, &diag);
    if (err == VTPMCA_OK)
        err = kbs_key_generate(KBS_KEY_P256, &g.peer_key, &diag);
    if (err == VTPMCA_OK)
        err = kbs_key_generate(KBS_KEY_P384, &g.stranger_key, &diag);
    if (err == VTPMCA_OK)
        err = vtpm_open(NULL, 0, &g.tpm, &diag);
    if (err != VTPMCA_OK) {
        fprintf(stderr, "setup: %s\n", diag.msg);
        return -1;
    }
    g.kbs_der = der_of(g.kbs_key, &g.kbs_der_len);
    g.peer_der = der_of(g.peer_key, &g.peer_der_len);
    g.stranger_der = der_of(g.stranger_key, &g.stranger_der_len);
    for (int i = 0; i < KIND_COUNT; i++) {
        if (vtpm_create_ek(g.tpm, KINDS[i], &g.ek_handle[i], &g.ek_pub[i], &g.ek_pub_len[i], NULL,
                           &diag) != VTPMCA_OK)
            return -1;
        /* libtpms holds three transient objects: keep only the P-256 EK (activations). */
        if (KINDS[i] != VTPM_EK_ECC_P256 && vtpm_flush(g.tpm, g.ek_handle[i], &diag) != VTPMCA_OK)
            return -1;
    }
    create_iak();
    make_other_ek();
    g.now_ms = 5000000;
    g.engine = make_engine(false, 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    issuance_free(g.engine);
    vtpm_close(g.tpm);
    for (int i = 0; i < KIND_COUNT; i++)
        free(g.ek_pub[i]);
    free(g.iak_pub);
    OPENSSL_free(g.kbs_der);
    OPENSSL_free(g.peer_der);
    OPENSSL_free(g.stranger_der);
    EVP_PKEY_free(g.kbs_key);
    EVP_PKEY_free(g.peer_key);
    EVP_PKEY_free(g.stranger_key);
    ca_free(g.ca);
    policy_cache_free(g.policies);
    snp_verifier_free(g.verifier);
    snp_roots_free(g.roots);
    store_close(g.store);
    ca_fixture_rmtree(g.ca_dir);
    kbs_fixture_destroy(&g.fx);
    return 0;
}

/* ---- request builder ---- */

typedef struct {
    uint8_t nonce[ISSUANCE_NONCE_LEN];
    uint8_t report[SNP_REPORT_SIZE];
    issuance_certify_request rq;
} certify_input;

typedef struct {
    const uint8_t *ek; /* default: the P-256 EK */
    size_t ek_len;
    const uint8_t *iak; /* NULL: none */
    size_t iak_len;
    bool bind_iak;      /* REPORT_DATA includes the IAK name (default when iak is set) */
    bool no_bind_iak;   /* REPORT_DATA leaves the IAK out */
    const uint8_t *kbs; /* default: the service's KBS key */
    size_t kbs_len;
    const uint8_t *bound_kbs; /* the KBS key REPORT_DATA binds (default: kbs) */
    size_t bound_kbs_len;
    const uint8_t *bound_ek; /* the EK REPORT_DATA binds (default: ek) */
    size_t bound_ek_len;
    bool other_nonce_bound; /* REPORT_DATA binds another nonce */
    bool fresh_nonce_skip;  /* do not ask for a challenge (random nonce) */
    uint8_t measurement;    /* default KBS_FIXTURE_MEASUREMENT */
    kbs_fixture_instance instance;
    const char *format; /* default "x509" */
} certify_spec;

static void name_of(const uint8_t *pub, size_t len, uint8_t *name, size_t *name_len)
{
    assert_int_equal(vtpm_object_name(pub, len, name, name_len, NULL), VTPMCA_OK);
}

static void build(certify_input *in, certify_spec s, issuance *engine)
{
    memset(in, 0, sizeof(*in));
    if (s.ek == NULL) {
        s.ek = g.ek_pub[1];
        s.ek_len = g.ek_pub_len[1];
    }
    if (s.kbs == NULL) {
        s.kbs = g.kbs_der;
        s.kbs_len = g.kbs_der_len;
    }
    if (s.bound_kbs == NULL) {
        s.bound_kbs = s.kbs;
        s.bound_kbs_len = s.kbs_len;
    }
    if (s.bound_ek == NULL) {
        s.bound_ek = s.ek;
        s.bound_ek_len = s.ek_len;
    }
    if (s.measurement == 0)
        s.measurement = KBS_FIXTURE_MEASUREMENT;
    unsigned ttl = 0;
    if (s.fresh_nonce_skip)
        assert_int_equal(RAND_bytes(in->nonce, sizeof(in->nonce)), 1);
    else
        assert_int_equal(issuance_challenge(engine, in->nonce, &ttl, NULL), VTPMCA_OK);
    uint8_t bound_nonce[ISSUANCE_NONCE_LEN];
    memcpy(bound_nonce, in->nonce, sizeof(bound_nonce));
    if (s.other_nonce_bound)
        bound_nonce[0] ^= 0xff;
    uint8_t ek_name[TPM2_NAME_MAX], iak_name[TPM2_NAME_MAX], kbs_hash[32];
    size_t ek_name_len = 0, iak_name_len = 0;
    name_of(s.bound_ek, s.bound_ek_len, ek_name, &ek_name_len);
    if (s.iak != NULL && !s.no_bind_iak)
        name_of(s.iak, s.iak_len, iak_name, &iak_name_len);
    assert_int_equal(EVP_Digest(s.bound_kbs, s.bound_kbs_len, kbs_hash, NULL, EVP_sha256(), NULL),
                     1);
    uint8_t rd[64];
    assert_int_equal(issuance_report_data(bound_nonce, ek_name, ek_name_len,
                                          iak_name_len ? iak_name : NULL, iak_name_len, kbs_hash,
                                          rd, NULL),
                     VTPMCA_OK);
    assert_int_equal(kbs_fixture_sign_report(&g.fx, s.measurement, rd, in->report, NULL),
                     VTPMCA_OK);
    in->rq = (issuance_certify_request){
        .ek_public = s.ek,
        .ek_public_len = s.ek_len,
        .iak_public = s.iak,
        .iak_public_len = s.iak_len,
        .kbs_key = s.kbs,
        .kbs_key_len = s.kbs_len,
        .resource = g.fx.path[s.instance],
        .format = s.format != NULL ? s.format : "x509",
        .nonce = in->nonce,
        .nonce_len = sizeof(in->nonce),
        .report = in->report,
        .report_len = sizeof(in->report),
        .client = "unit-test",
    };
}

static issuance_certify_result run(issuance *engine, const certify_input *in)
{
    issuance_certify_result res;
    vtpmca_diag diag = {{0}};
    if (issuance_certify(engine, &in->rq, &res, &diag) != VTPMCA_OK)
        fail_msg("issuance_certify failed: %s", diag.msg);
    return res;
}

static void expect_refusal(issuance *engine, const certify_input *in, issuance_outcome want,
                           const char *needle)
{
    issuance_certify_result res = run(engine, in);
    if (res.outcome != want || (needle != NULL && strstr(res.message, needle) == NULL))
        fail_msg("expected %s (\"%s\"), got %s: %s", issuance_outcome_name(want),
                 needle ? needle : "", issuance_outcome_name(res.outcome), res.message);
    assert_null(res.ek_cert);
    assert_null(res.iak_cert);
    issuance_certify_result_clear(&res);
}

static size_t certs_of(const char *instance_id)
{
    store_cert *list = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(g.store, instance_id, NULL, 1000, &list, &n, NULL), VTPMCA_OK);
    free(list);
    return n;
}

/* The latest audit row of an action for an instance. */
static store_audit_event last_audit(const char *instance_id, const char *action)
{
    store_audit_filter f = {.instance_id = instance_id, .action = action, .limit = 10000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(g.store, &f, &events, &n, NULL), VTPMCA_OK);
    assert_true(n > 0);
    store_audit_event last = events[n - 1];
    free(events);
    return last;
}

/* How many audit rows of an action an instance has. */
static size_t audit_count(const char *instance_id, const char *action)
{
    store_audit_filter f = {.instance_id = instance_id, .action = action, .limit = 10000};
    store_audit_event *events = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_query(g.store, &f, &events, &n, NULL), VTPMCA_OK);
    free(events);
    return n;
}

static X509 *parse_cert(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    assert_non_null(cert);
    assert_ptr_equal(p, der + len);
    return cert;
}

/* The certificate verifies under the issuing CA, which verifies under the root; the
 * certificate's key is the TPM's key byte for byte. */
static void check_cert(const uint8_t *der, size_t len, const uint8_t *tpm_public,
                       size_t tpm_public_len, const issuance_certify_result *res)
{
    X509 *cert = parse_cert(der, len);
    X509 *issuing = parse_cert(res->chain[0], res->chain_len[0]);
    X509 *root = parse_cert(res->chain[1], res->chain_len[1]);
    assert_int_equal(X509_verify(cert, X509_get0_pubkey(issuing)), 1);
    assert_int_equal(X509_verify(issuing, X509_get0_pubkey(root)), 1);
    EVP_PKEY *tpm_key = NULL;
    assert_int_equal(vtpm_tpmt_public_to_evp(tpm_public, tpm_public_len, &tpm_key, NULL),
                     VTPMCA_OK);
    size_t want_len = 0, got_len = 0;
    uint8_t *want = der_of(tpm_key, &want_len), *got = der_of(X509_get0_pubkey(cert), &got_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    OPENSSL_free(want);
    OPENSSL_free(got);
    EVP_PKEY_free(tpm_key);
    X509_free(cert);
    X509_free(issuing);
    X509_free(root);
}

/* ---- REPORT_DATA ---- */

static void test_report_data_layout(void **state)
{
    (void)state;
    uint8_t nonce[32], ek[34], iak[50], kbs[32], got[64], want[64];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)i;
    memset(ek, 0xe0, sizeof(ek));
    ek[0] = 0x00;
    ek[1] = 0x0b;
    memset(iak, 0x1a, sizeof(iak));
    memset(kbs, 0xbb, sizeof(kbs));
    /* The same bytes written out by hand. */
    uint8_t msg[18 + 2 + 32 + 2 + 34 + 2 + 50 + 2 + 32];
    size_t n = 0;
    memcpy(msg, "vtpmca-certify-v1", 17);
    msg[17] = 0;
    n = 18;
    msg[n++] = 0;
    msg[n++] = 32;
    memcpy(msg + n, nonce, 32);
    n += 32;
    msg[n++] = 0;
    msg[n++] = 34;
    memcpy(msg + n, ek, 34);
    n += 34;
    msg[n++] = 0;
    msg[n++] = 50;
    memcpy(msg + n, iak, 50);
    n += 50;
    msg[n++] = 0;
    msg[n++] = 32;
    memcpy(msg + n, kbs, 32);
    n += 32;
    assert_int_equal(n, sizeof(msg));
    assert_int_equal(EVP_Digest(msg, n, want, NULL, EVP_sha512(), NULL), 1);
    assert_int_equal(issuance_report_data(nonce, ek, 34, iak, 50, kbs, got, NULL), VTPMCA_OK);
    assert_memory_equal(got, want, 64);

    /* Without an IAK: a zero length and nothing else. */
    uint8_t short_msg[18 + 2 + 32 + 2 + 34 + 2 + 2 + 32];
    memcpy(short_msg, msg, 18 + 2 + 32 + 2 + 34);
    n = 18 + 2 + 32 + 2 + 34;
    short_msg[n++] = 0;
    short_msg[n++] = 0;
    short_msg[n++] = 0;
    short_msg[n++] = 32;
    memcpy(short_msg + n, kbs, 32);
    assert_int_equal(EVP_Digest(short_msg, sizeof(short_msg), want, NULL, EVP_sha512(), NULL), 1);
    assert_int_equal(issuance_report_data(nonce, ek, 34, NULL, 0, kbs, got, NULL), VTPMCA_OK);
    assert_memory_equal(got, want, 64);

    /* The worked example of docs/protocol.md (computed there with Python's hashlib). */
    uint8_t ek34[34], iak34[34], doc[64];
    ek34[0] = iak34[0] = 0x00;
    ek34[1] = iak34[1] = 0x0b;
    memset(ek34 + 2, 0xe0, 32);
    memset(iak34 + 2, 0x1a, 32);
    assert_int_equal(vt_hex_decode_fixed("a579433ce4f72c12a1eee8840d49ed41fa15dfc610c8373b3d88b7e1"
                                         "1b4c8a16600a72e109d37766847fdc52e3dbcf1b19b89b0ae8cc3be3"
                                         "6e6d127418d63d6a",
                                         doc, 64),
                     VTPMCA_OK);
    assert_int_equal(issuance_report_data(nonce, ek34, 34, iak34, 34, kbs, got, NULL), VTPMCA_OK);
    assert_memory_equal(got, doc, 64);
    assert_int_equal(vt_hex_decode_fixed("0c275412908eae58fee5d08254aca455acbc5379d4fd8fda652550a0"
                                         "e87d5bd2fe6a44695085bd9941bfd4edeb7140a450168772c28bc66d"
                                         "d19d77a1bdd6e940",
                                         doc, 64),
                     VTPMCA_OK);
    assert_int_equal(issuance_report_data(nonce, ek34, 34, NULL, 0, kbs, got, NULL), VTPMCA_OK);
    assert_memory_equal(got, doc, 64);

    assert_int_equal(issuance_report_data(nonce, ek, 3, NULL, 0, kbs, got, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(issuance_report_data(nonce, ek, 34, iak, 2, kbs, got, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(issuance_report_data(nonce, ek, 34, NULL, 5, kbs, got, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

/* ---- issuance ---- */

static void test_certify_x509_every_ek_kind(void **state)
{
    (void)state;
    const char *inst = g.fx.instance_id[KBS_INSTANCE_GENERATED];
    /* RSA-2048, P-384, then P-256 (with the IAK), which later tests keep using. */
    const int order[KIND_COUNT] = {0, 2, 1};
    for (int k = 0; k < KIND_COUNT; k++) {
        int i = order[k];
        /* The instance keeps one EK: allow each new kind (an admin re-enrollment). */
        if (k > 0)
            assert_int_equal(issuance_allow_ek_change(g.store, inst, "admin", NULL), VTPMCA_OK);
        certify_input in;
        build(&in,
              (certify_spec){.ek = g.ek_pub[i],
                             .ek_len = g.ek_pub_len[i],
                             .iak = i == 1 ? g.iak_pub : NULL,
                             .iak_len = i == 1 ? g.iak_pub_len : 0},
              g.engine);
        size_t before = certs_of(inst);
        size_t audited_before = audit_count(inst, "certify");
        issuance_certify_result res = run(g.engine, &in);
        if (res.outcome != ISSUANCE_OK)
            fail_msg("%s: %s %s", ek_template_name(KINDS[i]), issuance_outcome_name(res.outcome),
                     res.message);
        assert_int_equal(res.format, ISSUANCE_FORMAT_X509);
        assert_string_equal(res.instance_id, inst);
        check_cert(res.ek_cert, res.ek_cert_len, g.ek_pub[i], g.ek_pub_len[i], &res);

        /* The identity extension carries what the evidence and the request said. */
        ek_identity_info id;
        assert_int_equal(ek_cert_read_identity(res.ek_cert, res.ek_cert_len, &id, NULL), VTPMCA_OK);
        assert_string_equal(id.fleet, "fleet-a");
        assert_string_equal(id.instance_id, inst);
        uint8_t measurement[48], kbs_hash[32];
        memset(measurement, KBS_FIXTURE_MEASUREMENT, sizeof(measurement));
        assert_memory_equal(id.measurement, measurement, 48);
        assert_memory_equal(id.chip_id, g.fx.chip_id, 64);
        assert_int_equal(id.policy_version, 1);
        fingerprint(g.kbs_key, kbs_hash);
        assert_memory_equal(id.kbs_key_hash, kbs_hash, 32);

        /* Recorded in the store with the EK's name. */
        store_cert rec;
        assert_int_equal(store_cert_get(g.store, res.ek_serial, &rec, NULL), VTPMCA_OK);
        uint8_t name[TPM2_NAME_MAX];
        size_t name_len = 0;
        char name_hex[2 * TPM2_NAME_MAX + 1];
        name_of(g.ek_pub[i], g.ek_pub_len[i], name, &name_len);
        vt_hex_encode(name, name_len, name_hex, sizeof(name_hex));
        assert_string_equal(rec.key_name, name_hex);
        assert_int_equal(rec.kind, STORE_CERT_EK);
        assert_int_equal(rec.format, STORE_CERT_X509);
        assert_string_equal(rec.instance_id, inst);
        assert_int_equal(rec.der_len, res.ek_cert_len);
        assert_memory_equal(rec.der, res.ek_cert, rec.der_len);
        store_cert_free_fields(&rec);

        if (i == 1) {
            assert_non_null(res.iak_cert);
            check_cert(res.iak_cert, res.iak_cert_len, g.iak_pub, g.iak_pub_len, &res);
            assert_int_equal(store_cert_get(g.store, res.iak_serial, &rec, NULL), VTPMCA_OK);
            assert_int_equal(rec.kind, STORE_CERT_IAK);
            store_cert_free_fields(&rec);
            assert_int_equal(certs_of(inst), before + 2);
            assert_non_null(strstr(res.message, "bound by evidence"));
        } else {
            assert_null(res.iak_cert);
            assert_int_equal(certs_of(inst), before + 1);
        }
        /* One audit row, written with the certificates, saying what the answer said. */
        assert_int_equal(audit_count(inst, "certify"), audited_before + 1);
        store_audit_event ev = last_audit(inst, "certify");
        assert_string_equal(ev.outcome, "issued");
        assert_string_equal(ev.actor, "unit-test");
        assert_non_null(strstr(ev.detail, res.ek_serial));
        char detail[300];
        snprintf(detail, sizeof(detail), "%s%s", i == 1 ? "ek+iak: " : "ek: ", res.message);
        assert_string_equal(ev.detail, detail);
        assert_int_equal(strlen(ev.measurement), 96);
        issuance_certify_result_clear(&res);
    }
}

static void test_certify_c509(void **state)
{
    (void)state;
    const char *inst = g.fx.instance_id[KBS_INSTANCE_HOST_DATA];
    certify_input in;
    build(&in,
          (certify_spec){.instance = KBS_INSTANCE_HOST_DATA,
                         .format = "c509",
                         .iak = g.iak_pub,
                         .iak_len = g.iak_pub_len},
          g.engine);
    issuance_certify_result res = run(g.engine, &in);
    if (res.outcome != ISSUANCE_OK)
        fail_msg("%s %s", issuance_outcome_name(res.outcome), res.message);
    assert_int_equal(res.format, ISSUANCE_FORMAT_C509);
    /* The chain is C509 too; each certificate rebuilds its DER and verifies. */
    uint8_t *chain_der[2] = {NULL, NULL};
    size_t chain_der_len[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(c509_to_x509_der(res.chain[i], res.chain_len[i], &chain_der[i],
                                          &chain_der_len[i], NULL),
                         VTPMCA_OK);
    X509 *issuing = parse_cert(chain_der[0], chain_der_len[0]);
    const uint8_t *certs[2] = {res.ek_cert, res.iak_cert};
    const size_t lens[2] = {res.ek_cert_len, res.iak_cert_len};
    const uint8_t *pubs[2] = {g.ek_pub[1], g.iak_pub};
    const size_t pub_lens[2] = {g.ek_pub_len[1], g.iak_pub_len};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c509_verify(certs[i], lens[i], X509_get0_pubkey(issuing), NULL),
                         VTPMCA_OK);
        uint8_t *der = NULL;
        size_t der_len = 0;
        assert_int_equal(c509_to_x509_der(certs[i], lens[i], &der, &der_len, NULL), VTPMCA_OK);
        issuance_certify_result as_x509 = res;
        as_x509.chain[0] = chain_der[0];
        as_x509.chain_len[0] = chain_der_len[0];
        as_x509.chain[1] = chain_der[1];
        as_x509.chain_len[1] = chain_der_len[1];
        check_cert(der, der_len, pubs[i], pub_lens[i], &as_x509);
        free(der);
    }
    /* The record keeps both encodings. */
    store_cert rec;
    assert_int_equal(store_cert_get(g.store, res.ek_serial, &rec, NULL), VTPMCA_OK);
    assert_int_equal(rec.format, STORE_CERT_C509);
    assert_non_null(rec.der);
    assert_int_equal(rec.c509_len, res.ek_cert_len);
    assert_memory_equal(rec.c509, res.ek_cert, rec.c509_len);
    assert_string_equal(rec.instance_id, inst);
    store_cert_free_fields(&rec);
    X509_free(issuing);
    free(chain_der[0]);
    free(chain_der[1]);
    issuance_certify_result_clear(&res);
}

/* ---- refusals ---- */

static void test_nonce_refusals(void **state)
{
    (void)state;
    const char *inst = g.fx.instance_id[KBS_INSTANCE_HOST_DATA];
    size_t before = certs_of(inst);
    certify_input in;
    /* Never issued. */
    build(&in, (certify_spec){.instance = KBS_INSTANCE_HOST_DATA, .fresh_nonce_skip = true},
          g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_INVALID_NONCE, "unknown");
    assert_int_equal(issuance_outcome_status(ISSUANCE_INVALID_NONCE), 401);
    /* Used twice: the second use is refused. */
    build(&in, (certify_spec){.instance = KBS_INSTANCE_HOST_DATA}, g.engine);
    issuance_certify_result res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    expect_refusal(g.engine, &in, ISSUANCE_INVALID_NONCE, "used already");
    /* Expired: the clock moves past the 60 s TTL. */
    build(&in, (certify_spec){.instance = KBS_INSTANCE_HOST_DATA}, g.engine);
    g.now_ms += 61 * 1000;
    expect_refusal(g.engine, &in, ISSUANCE_INVALID_NONCE, "expired");
    assert_int_equal(certs_of(inst), before + 1);
    /* Refused before the instance is looked up: audited without an instance id. */
    store_audit_event any = last_audit(NULL, "certify");
    assert_string_equal(any.outcome, "invalid_nonce");
    assert_string_equal(any.instance_id, "");
}

static void test_binding_and_key_refusals(void **state)
{
    (void)state;
    const char *inst = g.fx.instance_id[KBS_INSTANCE_GENERATED];
    size_t before = certs_of(inst);
    certify_input in;
    /* Untrusted KBS key: refused before the nonce is spent, so the nonce still works. */
    build(&in, (certify_spec){.kbs = g.stranger_der, .kbs_len = g.stranger_der_len}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_UNTRUSTED_KBS_KEY, "neither");
    in.rq.kbs_key = g.kbs_der;
    in.rq.kbs_key_len = g.kbs_der_len;
    /* ...now with the trusted key, but REPORT_DATA bound the stranger's. */
    expect_refusal(g.engine, &in, ISSUANCE_REPORT_DATA_MISMATCH, "does not bind");

    /* REPORT_DATA of another nonce, another EK, another KBS key, an unbound IAK. */
    build(&in, (certify_spec){.other_nonce_bound = true}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_REPORT_DATA_MISMATCH, NULL);
    build(&in, (certify_spec){.bound_ek = g.ek_pub[0], .bound_ek_len = g.ek_pub_len[0]}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_REPORT_DATA_MISMATCH, NULL);
    build(&in, (certify_spec){.bound_kbs = g.peer_der, .bound_kbs_len = g.peer_der_len}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_REPORT_DATA_MISMATCH, NULL);
    store_audit_event ev = last_audit(inst, "certify");
    assert_string_equal(ev.outcome, "report_data_mismatch");
    assert_true(strlen(ev.measurement) == 96);

    /* A peer KBS key is trusted. */
    build(&in, (certify_spec){.kbs = g.peer_der, .kbs_len = g.peer_der_len}, g.engine);
    issuance_certify_result res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    assert_int_equal(certs_of(inst), before + 1);

    /* Evidence that does not verify (one byte of the signed part changed). */
    build(&in, (certify_spec){0}, g.engine);
    in.report[0x30] ^= 1;
    expect_refusal(g.engine, &in, ISSUANCE_EVIDENCE_INVALID, "verification");
    assert_int_equal(certs_of(inst), before + 1);
}

static void test_instance_and_policy_refusals(void **state)
{
    (void)state;
    certify_input in;
    build(&in, (certify_spec){.measurement = KBS_FIXTURE_BAD_MEASUREMENT}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_POLICY_REJECTED, "measurement");
    store_audit_event ev = last_audit(g.fx.instance_id[KBS_INSTANCE_GENERATED], "certify");
    assert_string_equal(ev.outcome, "policy_rejected");

    build(&in, (certify_spec){.instance = KBS_INSTANCE_DISABLED}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_DISABLED, "disabled");
    build(&in, (certify_spec){.instance = KBS_INSTANCE_HOST_MISMATCH}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_HOST_DATA_MISMATCH, "host_data");
    build(&in, (certify_spec){.instance = KBS_INSTANCE_NO_POLICY}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_NO_POLICY, "fleet-b");
    build(&in, (certify_spec){0}, g.engine);
    in.rq.resource = "nobody/at/this-path";
    expect_refusal(g.engine, &in, ISSUANCE_UNKNOWN_RESOURCE, "nobody/at/this-path");
    for (int i = KBS_INSTANCE_DISABLED; i <= KBS_INSTANCE_NO_POLICY; i++)
        assert_int_equal(certs_of(g.fx.instance_id[i]), 0);
    assert_int_equal(certs_of(g.fx.instance_id[KBS_INSTANCE_HOST_MISMATCH]), 0);
}

static void test_changed_ek_needs_reenrollment(void **state)
{
    (void)state;
    const char *inst = g.fx.instance_id[KBS_INSTANCE_WRAPPED];
    certify_input in;
    build(&in, (certify_spec){.instance = KBS_INSTANCE_WRAPPED}, g.engine);
    issuance_certify_result res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    /* The same EK again is fine. */
    build(&in, (certify_spec){.instance = KBS_INSTANCE_WRAPPED}, g.engine);
    res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    size_t before = certs_of(inst);

    /* Another EK: 409 and audited. */
    certify_spec other = {
        .instance = KBS_INSTANCE_WRAPPED, .ek = g.other_ek, .ek_len = g.other_ek_len};
    build(&in, other, g.engine);
    size_t audited_refusal = audit_count(inst, "certify");
    expect_refusal(g.engine, &in, ISSUANCE_EK_CHANGED, "re-enroll");
    assert_int_equal(issuance_outcome_status(ISSUANCE_EK_CHANGED), 409);
    assert_int_equal(audit_count(inst, "certify"), audited_refusal + 1);
    store_audit_event ev = last_audit(inst, "certify");
    assert_string_equal(ev.outcome, "ek_changed");
    assert_non_null(strstr(ev.detail, "refused: instance"));
    assert_int_equal(certs_of(inst), before);

    /* An admin re-enrolls the EK: the next certify may change it, once. */
    assert_int_equal(issuance_allow_ek_change(g.store, inst, "alice", NULL), VTPMCA_OK);
    ev = last_audit(inst, "ek_reenroll");
    assert_string_equal(ev.actor, "alice");
    assert_string_equal(ev.outcome, "granted");
    build(&in, other, g.engine);
    size_t audited = audit_count(inst, "certify");
    res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    assert_non_null(strstr(res.message, "re-enrollment"));
    assert_int_equal(audit_count(inst, "certify"), audited + 1);
    ev = last_audit(inst, "certify");
    assert_string_equal(ev.outcome, "issued");
    assert_non_null(strstr(ev.detail, "EK changed under an admin re-enrollment"));
    issuance_certify_result_clear(&res);
    /* The old EK is now the changed one. */
    build(&in, (certify_spec){.instance = KBS_INSTANCE_WRAPPED}, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_EK_CHANGED, NULL);
    assert_int_equal(certs_of(inst), before + 1);

    vtpmca_diag diag = {{0}};
    assert_int_equal(issuance_allow_ek_change(g.store, "no-such-instance", "alice", &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(issuance_allow_ek_change(g.store, inst, "", &diag), VTPMCA_ERR_INVALID_ARG);
    bool granted = true;
    assert_int_equal(store_instance_ek_reenroll_take(g.store, inst, &granted, NULL), VTPMCA_OK);
    assert_false(granted);
}

static void test_request_shape_refusals(void **state)
{
    (void)state;
    certify_input in;
    build(&in, (certify_spec){0}, g.engine);
    const issuance_certify_request good = in.rq;

    /* A template other than the default EK template (userWithAuth clear on L-2 flipped). */
    uint8_t changed[512];
    memcpy(changed, g.ek_pub[1], g.ek_pub_len[1]);
    changed[7] ^= 0x40; /* objectAttributes low byte: userWithAuth */
    in.rq.ek_public = changed;
    expect_refusal(g.engine, &in, ISSUANCE_UNSUPPORTED_TEMPLATE, "objectAttributes");
    assert_int_equal(issuance_outcome_status(ISSUANCE_UNSUPPORTED_TEMPLATE), 422);
    /* The IAK as EK, and the EK as IAK. */
    in.rq.ek_public = g.iak_pub;
    in.rq.ek_public_len = g.iak_pub_len;
    expect_refusal(g.engine, &in, ISSUANCE_UNSUPPORTED_TEMPLATE, NULL);
    in.rq = good;
    in.rq.iak_public = g.ek_pub[0];
    in.rq.iak_public_len = g.ek_pub_len[0];
    expect_refusal(g.engine, &in, ISSUANCE_UNSUPPORTED_TEMPLATE, "IAK");
    /* Malformed TPMT_PUBLIC. */
    in.rq = good;
    in.rq.ek_public_len -= 1;
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "malformed TPMT_PUBLIC");
    /* Oversized fields. */
    uint8_t big[ISSUANCE_PUBLIC_MAX + 1] = {0};
    in.rq = good;
    in.rq.ek_public = big;
    in.rq.ek_public_len = sizeof(big);
    expect_refusal(g.engine, &in, ISSUANCE_FIELD_TOO_LARGE, "ek_public");
    in.rq = good;
    in.rq.report_len = ISSUANCE_REPORT_MAX + 1;
    expect_refusal(g.engine, &in, ISSUANCE_FIELD_TOO_LARGE, "report");
    /* Other sizes and values. */
    in.rq = good;
    in.rq.report_len = 1000;
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "1184");
    in.rq = good;
    in.rq.nonce_len = 16;
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "nonce");
    in.rq = good;
    in.rq.format = "pem";
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "format");
    in.rq = good;
    in.rq.resource = "not a path";
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "resource");
    in.rq = good;
    in.rq.kbs_key_len -= 1;
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "kbs_key");
    in.rq = good;
    in.rq.report = NULL;
    expect_refusal(g.engine, &in, ISSUANCE_BAD_REQUEST, "required");
    /* None of these spent the nonce: the original request still works. */
    in.rq = good;
    issuance_certify_result res = run(g.engine, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);

    assert_int_equal(issuance_certify(g.engine, NULL, &res, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(issuance_certify(NULL, &good, &res, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- IAK proof and credential activation ---- */

static vtpmca_err activate_with_tpm(const issuance_activation_result *start, uint8_t secret[32])
{
    uint8_t *info = NULL;
    size_t info_len = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = vtpm_activate_credential(
        g.tpm, g.iak_handle, g.ek_handle[1], start->credential_blob, start->credential_blob_len,
        start->encrypted_secret, start->encrypted_secret_len, &info, &info_len, &diag);
    if (err == VTPMCA_OK) {
        assert_int_equal(info_len, 32);
        memcpy(secret, info, 32);
    }
    free(info);
    return err;
}

static issuance_activation_result start_activation(issuance *engine, kbs_fixture_instance inst)
{
    issuance_activation_request rq = {
        .ek_public = g.ek_pub[1],
        .ek_public_len = g.ek_pub_len[1],
        .iak_public = g.iak_pub,
        .iak_public_len = g.iak_pub_len,
        .resource = g.fx.path[inst],
        .client = "unit-test",
    };
    issuance_activation_result res;
    vtpmca_diag diag = {{0}};
    if (issuance_activation_start(engine, &rq, &res, &diag) != VTPMCA_OK)
        fail_msg("activation start: %s", diag.msg);
    return res;
}

static void test_iak_by_activation(void **state)
{
    (void)state;
    const kbs_fixture_instance inst = KBS_INSTANCE_HOST_DATA;
    certify_spec unbound = {
        .instance = inst, .iak = g.iak_pub, .iak_len = g.iak_pub_len, .no_bind_iak = true};
    certify_input in;
    /* The report binds the EK only and nothing proves the IAK. */
    build(&in, unbound, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_IAK_NOT_PROVEN, "activation");

    /* Credential activation with the real TPM proves it. */
    issuance_activation_result start = start_activation(g.engine, inst);
    assert_int_equal(start.outcome, ISSUANCE_OK);
    assert_int_equal(strlen(start.activation_id), ISSUANCE_ACTIVATION_ID_HEX);
    assert_int_equal(start.expires_in_s, ISSUANCE_DEFAULT_ACTIVATION_TTL_S);
    uint8_t secret[32];
    assert_int_equal(activate_with_tpm(&start, secret), VTPMCA_OK);
    issuance_activation_result fin;
    assert_int_equal(issuance_activation_finish(g.engine, start.activation_id, secret, 32,
                                                "unit-test", &fin, NULL),
                     VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_OK);
    store_audit_event ev = last_audit(g.fx.instance_id[inst], "iak_activation");
    assert_string_equal(ev.outcome, "proven");
    /* Finished: a second finish is unknown. */
    issuance_activation_result again;
    assert_int_equal(
        issuance_activation_finish(g.engine, start.activation_id, secret, 32, NULL, &again, NULL),
        VTPMCA_OK);
    assert_int_equal(again.outcome, ISSUANCE_UNKNOWN_ACTIVATION);
    issuance_activation_result_clear(&start);

    build(&in, unbound, g.engine);
    issuance_certify_result res = run(g.engine, &in);
    if (res.outcome != ISSUANCE_OK)
        fail_msg("%s %s", issuance_outcome_name(res.outcome), res.message);
    assert_non_null(res.iak_cert);
    assert_non_null(strstr(res.message, "proven by activation"));
    issuance_certify_result_clear(&res);
    /* The proof was used up. */
    build(&in, unbound, g.engine);
    expect_refusal(g.engine, &in, ISSUANCE_IAK_NOT_PROVEN, NULL);

    /* A wrong secret fails once, and the activation is gone. */
    start = start_activation(g.engine, inst);
    memset(secret, 0x5a, sizeof(secret));
    assert_int_equal(
        issuance_activation_finish(g.engine, start.activation_id, secret, 32, NULL, &fin, NULL),
        VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_ACTIVATION_FAILED);
    ev = last_audit(g.fx.instance_id[inst], "iak_activation");
    assert_string_equal(ev.outcome, "activation_failed");
    assert_int_equal(activate_with_tpm(&start, secret), VTPMCA_OK);
    assert_int_equal(
        issuance_activation_finish(g.engine, start.activation_id, secret, 32, NULL, &fin, NULL),
        VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_UNKNOWN_ACTIVATION);
    issuance_activation_result_clear(&start);

    /* Expiry. */
    start = start_activation(g.engine, inst);
    assert_int_equal(activate_with_tpm(&start, secret), VTPMCA_OK);
    g.now_ms += (ISSUANCE_DEFAULT_ACTIVATION_TTL_S + 1) * 1000u;
    assert_int_equal(
        issuance_activation_finish(g.engine, start.activation_id, secret, 32, NULL, &fin, NULL),
        VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_UNKNOWN_ACTIVATION);
    assert_non_null(strstr(fin.message, "expired"));
    issuance_activation_result_clear(&start);

    /* Malformed finish requests and start refusals. */
    assert_int_equal(issuance_activation_finish(g.engine, "abc", secret, 32, NULL, &fin, NULL),
                     VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_BAD_REQUEST);
    char zeros[ISSUANCE_ACTIVATION_ID_HEX + 1];
    memset(zeros, '0', ISSUANCE_ACTIVATION_ID_HEX);
    zeros[ISSUANCE_ACTIVATION_ID_HEX] = '\0';
    assert_int_equal(issuance_activation_finish(g.engine, zeros, secret, 31, NULL, &fin, NULL),
                     VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_BAD_REQUEST);
    start = start_activation(g.engine, KBS_INSTANCE_DISABLED);
    assert_int_equal(start.outcome, ISSUANCE_DISABLED);
    assert_null(start.credential_blob);
    issuance_activation_request rq = {.ek_public = g.iak_pub,
                                      .ek_public_len = g.iak_pub_len,
                                      .iak_public = g.iak_pub,
                                      .iak_public_len = g.iak_pub_len,
                                      .resource = g.fx.path[inst]};
    assert_int_equal(issuance_activation_start(g.engine, &rq, &start, NULL), VTPMCA_OK);
    assert_int_equal(start.outcome, ISSUANCE_UNSUPPORTED_TEMPLATE);
    rq.ek_public = g.ek_pub[1];
    rq.ek_public_len = g.ek_pub_len[1];
    rq.resource = "unknown/resource/path";
    assert_int_equal(issuance_activation_start(g.engine, &rq, &start, NULL), VTPMCA_OK);
    assert_int_equal(start.outcome, ISSUANCE_UNKNOWN_RESOURCE);
}

static void test_required_activation_mode(void **state)
{
    (void)state;
    issuance *strict = make_engine(true, 0);
    const kbs_fixture_instance inst = KBS_INSTANCE_HOST_DATA;
    certify_spec bound = {.instance = inst, .iak = g.iak_pub, .iak_len = g.iak_pub_len};
    certify_input in;
    build(&in, bound, strict);
    expect_refusal(strict, &in, ISSUANCE_IAK_NOT_PROVEN, "requires a credential activation");
    issuance_activation_result start = start_activation(strict, inst), fin;
    uint8_t secret[32];
    assert_int_equal(activate_with_tpm(&start, secret), VTPMCA_OK);
    assert_int_equal(
        issuance_activation_finish(strict, start.activation_id, secret, 32, NULL, &fin, NULL),
        VTPMCA_OK);
    assert_int_equal(fin.outcome, ISSUANCE_OK);
    issuance_activation_result_clear(&start);
    build(&in, bound, strict);
    issuance_certify_result res = run(strict, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    assert_non_null(res.iak_cert);
    issuance_certify_result_clear(&res);
    /* An EK alone needs no activation. */
    build(&in, (certify_spec){.instance = inst}, strict);
    res = run(strict, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    issuance_stats stats;
    issuance_get_stats(strict, &stats);
    assert_int_equal(stats.issued, 2);
    assert_int_equal(stats.refused, 1);
    assert_int_equal(stats.activations_proven, 1);
    issuance_free(strict);
}

static void test_challenge_table_is_bounded(void **state)
{
    (void)state;
    issuance *small = make_engine(false, 4);
    certify_input first;
    build(&first, (certify_spec){.instance = KBS_INSTANCE_HOST_DATA}, small);
    uint8_t nonce[32];
    unsigned ttl = 0;
    for (int i = 0; i < 4; i++)
        assert_int_equal(issuance_challenge(small, nonce, &ttl, NULL), VTPMCA_OK);
    assert_int_equal(ttl, ISSUANCE_DEFAULT_CHALLENGE_TTL_S);
    /* Four newer challenges pushed the first one out. */
    expect_refusal(small, &first, ISSUANCE_INVALID_NONCE, NULL);
    issuance_stats stats;
    issuance_get_stats(small, &stats);
    assert_int_equal(stats.challenges, 5);
    assert_int_equal(stats.live_challenges, 4);
    issuance_free(small);
}

static void test_engine_config_and_base_url(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    issuance *e = NULL;
    issuance_config cfg = {0};
    assert_int_equal(issuance_new(&cfg, &e, &diag), VTPMCA_ERR_INVALID_ARG);
    cfg = (issuance_config){
        .store = g.store, .verifier = g.verifier, .policies = g.policies, .ca = g.ca};
    ek_profile_config_default(&cfg.profile); /* no base URL yet */
    assert_int_equal(issuance_new(&cfg, &e, &diag), VTPMCA_OK);
    /* Without a base URL certify answers unavailable (503). */
    certify_input in;
    build(&in, (certify_spec){0}, e);
    expect_refusal(e, &in, ISSUANCE_UNAVAILABLE, "starting");
    assert_int_equal(issuance_outcome_status(ISSUANCE_UNAVAILABLE), 503);
    assert_int_equal(issuance_set_base_url(e, "ftp://x", &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(issuance_set_base_url(e, "http://127.0.0.1:9", &diag), VTPMCA_OK);
    /* No KBS key is trusted by this engine. */
    build(&in, (certify_spec){0}, e);
    expect_refusal(e, &in, ISSUANCE_UNTRUSTED_KBS_KEY, NULL);
    /* Trusting the key at run time (as the admin API does) takes effect at once... */
    uint8_t fingerprint[1][ISSUANCE_KBS_KEY_HASH_LEN];
    assert_non_null(SHA256(in.rq.kbs_key, in.rq.kbs_key_len, fingerprint[0]));
    assert_int_equal(issuance_set_trusted_kbs_keys(
                         e, (const uint8_t(*)[ISSUANCE_KBS_KEY_HASH_LEN])fingerprint, 1, &diag),
                     VTPMCA_OK);
    build(&in, (certify_spec){0}, e);
    issuance_certify_result res = run(e, &in);
    assert_int_equal(res.outcome, ISSUANCE_OK);
    issuance_certify_result_clear(&res);
    /* ...and so does untrusting it. */
    assert_int_equal(issuance_set_trusted_kbs_keys(e, NULL, 0, &diag), VTPMCA_OK);
    assert_int_equal(issuance_set_trusted_kbs_keys(NULL, NULL, 0, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(issuance_set_trusted_kbs_keys(e, NULL, 1, &diag), VTPMCA_ERR_INVALID_ARG);
    build(&in, (certify_spec){0}, e);
    expect_refusal(e, &in, ISSUANCE_UNTRUSTED_KBS_KEY, NULL);
    issuance_free(e);
    cfg.challenge_ttl_s = ISSUANCE_MAX_TTL_S + 1;
    assert_int_equal(issuance_new(&cfg, &e, &diag), VTPMCA_ERR_INVALID_ARG);
    issuance_free(NULL);
    assert_string_equal(issuance_outcome_name(ISSUANCE_REPORT_DATA_MISMATCH),
                        "report_data_mismatch");
    issuance_format f;
    assert_int_equal(issuance_format_parse("c509", &f), VTPMCA_OK);
    assert_int_equal(f, ISSUANCE_FORMAT_C509);
    assert_int_equal(issuance_format_parse("X509", &f), VTPMCA_ERR_PARSE);
}

/* ---- wire codec ---- */

static void test_wire_round_trip(void **state)
{
    (void)state;
    certify_input in;
    build(&in, (certify_spec){.iak = g.iak_pub, .iak_len = g.iak_pub_len}, g.engine);
    const issuance_certify_request *rq = &in.rq;
    issuance_field fields[] = {
        {.name = "ek_public", .bytes = rq->ek_public, .len = rq->ek_public_len},
        {.name = "iak_public", .bytes = rq->iak_public, .len = rq->iak_public_len},
        {.name = "kbs_key", .bytes = rq->kbs_key, .len = rq->kbs_key_len},
        {.name = "resource",
         .type = ISSUANCE_FIELD_TEXT,
         .bytes = (const uint8_t *)rq->resource,
         .len = strlen(rq->resource)},
        {.name = "format", .type = ISSUANCE_FIELD_TEXT, .bytes = (const uint8_t *)"x509", .len = 4},
        {.name = "nonce", .bytes = rq->nonce, .len = rq->nonce_len},
        {.name = "report", .bytes = rq->report, .len = rq->report_len},
    };
    for (int enc = 0; enc < 2; enc++) {
        uint8_t *body = NULL;
        size_t len = 0;
        assert_int_equal(
            issuance_message_encode((issuance_encoding)enc, fields, 7, &body, &len, NULL),
            VTPMCA_OK);
        issuance_certify_request decoded;
        issuance_message msg;
        assert_int_equal(
            issuance_decode_certify((issuance_encoding)enc, body, len, &decoded, &msg, NULL),
            VTPMCA_OK);
        assert_int_equal(decoded.ek_public_len, rq->ek_public_len);
        assert_memory_equal(decoded.ek_public, rq->ek_public, rq->ek_public_len);
        assert_memory_equal(decoded.iak_public, rq->iak_public, rq->iak_public_len);
        assert_memory_equal(decoded.report, rq->report, rq->report_len);
        assert_string_equal(decoded.resource, rq->resource);
        assert_string_equal(decoded.format, "x509");
        if (enc == ISSUANCE_ENC_JSON) {
            assert_int_equal(body[0], '{');
            decoded.client = "json";
        } else {
            assert_int_equal(body[0], 0xa7); /* a CBOR map of 7 pairs */
            /* The engine decides a decoded CBOR request (nonce used for the first time). */
            decoded.client = "cbor";
            issuance_certify_result res;
            assert_int_equal(issuance_certify(g.engine, &decoded, &res, NULL), VTPMCA_OK);
            if (res.outcome != ISSUANCE_OK)
                fail_msg("%s", res.message);
            uint8_t *out = NULL;
            size_t out_len = 0;
            assert_int_equal(issuance_encode_certify(ISSUANCE_ENC_CBOR, &res, &out, &out_len, NULL),
                             VTPMCA_OK);
            issuance_message reply;
            assert_int_equal(issuance_message_decode(ISSUANCE_ENC_CBOR, out, out_len,
                                                     ISSUANCE_CERTIFY_RESPONSE, 4, &reply, NULL),
                             VTPMCA_OK);
            const issuance_field *ek = issuance_message_get(&reply, "ek_cert");
            const issuance_field *chain = issuance_message_get(&reply, "chain");
            assert_non_null(ek);
            assert_memory_equal(ek->bytes, res.ek_cert, res.ek_cert_len);
            assert_int_equal(chain->list_count, 2);
            assert_memory_equal(chain->list[1], res.chain[1], res.chain_len[1]);
            assert_non_null(issuance_message_get(&reply, "iak_cert"));
            issuance_message_free(&reply);
            free(out);
            issuance_certify_result_clear(&res);
        }
        issuance_message_free(&msg);
        free(body);
    }
    /* Challenge and activation messages. */
    uint8_t nonce[32] = {1, 2, 3}, *out = NULL;
    size_t out_len = 0;
    assert_int_equal(issuance_encode_challenge(ISSUANCE_ENC_JSON, nonce, 60, &out, &out_len, NULL),
                     VTPMCA_OK);
    issuance_message msg;
    assert_int_equal(issuance_message_decode(ISSUANCE_ENC_JSON, out, out_len,
                                             ISSUANCE_CHALLENGE_RESPONSE, 2, &msg, NULL),
                     VTPMCA_OK);
    assert_int_equal(issuance_message_get(&msg, "expires_in")->uint, 60);
    assert_memory_equal(issuance_message_get(&msg, "nonce")->bytes, nonce, 32);
    assert_non_null(strstr((const char *)out, "\"expires_in\":60"));
    issuance_message_free(&msg);
    free(out);
}

static void expect_decode(issuance_encoding enc, const void *body, size_t len, vtpmca_err want,
                          const char *needle)
{
    issuance_certify_request rq;
    issuance_message msg;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = issuance_decode_certify(enc, body, len, &rq, &msg, &diag);
    if (err != want || (needle != NULL && strstr(diag.msg, needle) == NULL))
        fail_msg("expected %s (\"%s\"), got %s: %s", vtpmca_err_name(want), needle ? needle : "",
                 vtpmca_err_name(err), diag.msg);
    if (err == VTPMCA_OK)
        issuance_message_free(&msg);
}

static void test_wire_strictness(void **state)
{
    (void)state;
    static const char good[] =
        "{\"ek_public\":\"AAEC\",\"kbs_key\":\"AAEC\",\"resource\":\"a/b/c\",\"format\":\"x509\","
        "\"nonce\":\"AAEC\",\"report\":\"AAEC\"}";
    expect_decode(ISSUANCE_ENC_JSON, good, strlen(good), VTPMCA_OK, NULL);
    const struct {
        const char *body;
        vtpmca_err err;
        const char *needle;
    } json_cases[] = {
        {"", VTPMCA_ERR_PARSE, "empty"},
        {"{", VTPMCA_ERR_PARSE, "malformed JSON"},
        {"[]", VTPMCA_ERR_PARSE, "object"},
        {"{\"ek_public\":\"AAEC\"}", VTPMCA_ERR_PARSE, "missing"},
        {"{\"ek_public\":\"AAEC\",\"ek_public\":\"AAEC\"}", VTPMCA_ERR_PARSE, "duplicate"},
        {"{\"extra\":1}", VTPMCA_ERR_PARSE, "unknown member"},
        {"{\"ek_public\":5}", VTPMCA_ERR_PARSE, "base64"},
        {"{\"ek_public\":\"AAE\"}", VTPMCA_ERR_PARSE, "base64"},
        {"{\"ek_public\":\"AA-_\"}", VTPMCA_ERR_PARSE, "base64"},
        {"{\"resource\":7}", VTPMCA_ERR_PARSE, "string"},
        {"{\"resource\":\"a\\u0000b\"}", VTPMCA_ERR_PARSE, "NUL"},
    };
    for (size_t i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++)
        expect_decode(ISSUANCE_ENC_JSON, json_cases[i].body, strlen(json_cases[i].body),
                      json_cases[i].err, json_cases[i].needle);
    /* Oversized fields: limits apply to the decoded bytes. */
    size_t big = 4 * ((ISSUANCE_PUBLIC_MAX + 3) / 3) + 64;
    char *body = malloc(big + 64);
    int n = snprintf(body, big + 64, "{\"ek_public\":\"");
    for (size_t i = 0; i < 4 * ((ISSUANCE_PUBLIC_MAX + 3) / 3); i++)
        body[n++] = 'A';
    n += snprintf(body + n, 64, "\"}");
    expect_decode(ISSUANCE_ENC_JSON, body, (size_t)n, VTPMCA_ERR_LIMIT, "ek_public");
    free(body);
    char long_text[400];
    n = snprintf(long_text, sizeof(long_text), "{\"format\":\"%0300d\"}", 1);
    expect_decode(ISSUANCE_ENC_JSON, long_text, (size_t)n, VTPMCA_ERR_LIMIT, "format");

    /* CBOR: a good map, then each kind of defect. */
    cbor_item_t *map = cbor_new_definite_map(6);
    const char *names[] = {"ek_public", "kbs_key", "nonce", "report"};
    for (int i = 0; i < 4; i++)
        cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string(names[i])),
                                             .value = cbor_move(cbor_build_bytestring(
                                                 (const uint8_t *)"\x01\x02", 2))});
    cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string("resource")),
                                         .value = cbor_move(cbor_build_string("a/b/c"))});
    cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string("format")),
                                         .value = cbor_move(cbor_build_string("c509"))});
    unsigned char *cbor = NULL;
    size_t cap = 0, len = cbor_serialize_alloc(map, &cbor, &cap);
    cbor_decref(&map);
    expect_decode(ISSUANCE_ENC_CBOR, cbor, len, VTPMCA_OK, NULL);
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, cbor, len);
    longer[len] = 0x00;
    expect_decode(ISSUANCE_ENC_CBOR, longer, len + 1, VTPMCA_ERR_PARSE, "after the CBOR item");
    expect_decode(ISSUANCE_ENC_CBOR, cbor, len - 1, VTPMCA_ERR_PARSE, "malformed CBOR");
    free(longer);
    free(cbor);
    const struct {
        const char *hex;
        vtpmca_err err;
        const char *needle;
    } cbor_cases[] = {
        {"80", VTPMCA_ERR_PARSE, "map"},                             /* [] */
        {"bfff", VTPMCA_ERR_PARSE, "definite"},                      /* {_ } */
        {"a1016161", VTPMCA_ERR_PARSE, "text strings"},              /* {1: "a"} */
        {"a166666f726d617401", VTPMCA_ERR_PARSE, "text string"},     /* {"format": 1} */
        {"a166666f726d6174c16178", VTPMCA_ERR_PARSE, "text string"}, /* tagged value */
        {"a1656e6f6e63656178", VTPMCA_ERR_PARSE, "byte string"},     /* {"nonce": "x"} */
        {"a1656e6f6e63655f4101ff", VTPMCA_ERR_PARSE, "definite"},    /* indefinite bytes */
        {"a2656e6f6e636541016e6f6e636541", VTPMCA_ERR_PARSE, NULL},  /* truncated */
        {"a2656e6f6e63654101656e6f6e63654101", VTPMCA_ERR_PARSE, "twice"},
        {"a163666f6f4101", VTPMCA_ERR_PARSE, "unknown member"},
    };
    for (size_t i = 0; i < sizeof(cbor_cases) / sizeof(cbor_cases[0]); i++) {
        uint8_t *bytes = NULL;
        size_t bytes_len = 0;
        assert_int_equal(
            vt_hex_decode_alloc(cbor_cases[i].hex, strlen(cbor_cases[i].hex), &bytes, &bytes_len),
            VTPMCA_OK);
        expect_decode(ISSUANCE_ENC_CBOR, bytes, bytes_len, cbor_cases[i].err, cbor_cases[i].needle);
        free(bytes);
    }
    /* A CBOR byte string above the limit. */
    uint8_t report[ISSUANCE_REPORT_MAX + 1] = {0};
    issuance_field f = {.name = "report", .bytes = report, .len = sizeof(report)};
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(issuance_message_encode(ISSUANCE_ENC_CBOR, &f, 1, &out, &out_len, NULL),
                     VTPMCA_OK);
    expect_decode(ISSUANCE_ENC_CBOR, out, out_len, VTPMCA_ERR_LIMIT, "report");
    free(out);

    issuance_encoding enc;
    assert_int_equal(issuance_encoding_from_type("application/json", &enc), VTPMCA_OK);
    assert_int_equal(enc, ISSUANCE_ENC_JSON);
    assert_int_equal(issuance_encoding_from_type(" Application/CBOR ; q=1", &enc), VTPMCA_OK);
    assert_int_equal(enc, ISSUANCE_ENC_CBOR);
    assert_int_equal(issuance_encoding_from_type("application/cbor-seq", &enc),
                     VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(issuance_encoding_from_type("text/plain", &enc), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(issuance_encoding_from_type(NULL, &enc), VTPMCA_ERR_UNSUPPORTED);
}

int main(void)
{
    /* Every refusal logs a warning; keep the test output readable. */
    vtpmca_log_setup(VTPMCA_LOG_ERROR, VTPMCA_LOG_LOGFMT, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_data_layout),
        cmocka_unit_test(test_certify_x509_every_ek_kind),
        cmocka_unit_test(test_certify_c509),
        cmocka_unit_test(test_nonce_refusals),
        cmocka_unit_test(test_binding_and_key_refusals),
        cmocka_unit_test(test_instance_and_policy_refusals),
        cmocka_unit_test(test_changed_ek_needs_reenrollment),
        cmocka_unit_test(test_request_shape_refusals),
        cmocka_unit_test(test_iak_by_activation),
        cmocka_unit_test(test_required_activation_mode),
        cmocka_unit_test(test_challenge_table_is_bounded),
        cmocka_unit_test(test_engine_config_and_base_url),
        cmocka_unit_test(test_wire_round_trip),
        cmocka_unit_test(test_wire_strictness),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
