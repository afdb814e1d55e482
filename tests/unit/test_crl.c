/* Unit tests for ca/crl.c: an empty CRL, then revocations recorded in a real sqlite store;
 * each CRL verified and listed by the openssl CLI, parsed back with OpenSSL, and checked for
 * strict DER; CRL numbers increase; nextUpdate as configured; every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../support/ca_fixture.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/crl.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/store.h"

#define CERTS 5

static struct {
    char tmp[64];
    char ca_dir[128];
    char chain_path[160];
    ca_ctx *ca;
    ca_ctx *rsa_ca; /* RSA-2048 issuing CA: CRLs signed with PKCS#1 v1.5 */
    store *st;
    char serials[CERTS][2 * CA_SERIAL_LEN + 1];
} g;

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(g.tmp, sizeof(g.tmp), "crl") != 0)
        return -1;
    snprintf(g.ca_dir, sizeof(g.ca_dir), "%s/ca", g.tmp);
    char rsa_dir[128], db[128];
    snprintf(rsa_dir, sizeof(rsa_dir), "%s/rsa-ca", g.tmp);
    snprintf(db, sizeof(db), "%s/vtpmca.db", g.tmp);
    g.ca = ca_fixture_make_ca(g.ca_dir, CA_KEY_ECDSA_P384, CA_KEY_ECDSA_P384);
    g.rsa_ca = ca_fixture_make_ca(rsa_dir, CA_KEY_ECDSA_P256, CA_KEY_RSA_2048);
    vtpmca_diag diag = {{0}};
    if (g.ca == NULL || g.rsa_ca == NULL || store_open(db, &g.st, &diag) != VTPMCA_OK)
        return -1;

    /* The chain as the CLI's -CAfile: issuing CA then root. */
    char *pem = NULL;
    size_t pem_len = 0;
    snprintf(g.chain_path, sizeof(g.chain_path), "%s/chain.pem", g.tmp);
    if (ca_chain_pem(g.ca, &pem, &pem_len, NULL) != VTPMCA_OK ||
        ca_fixture_write(g.chain_path, pem, pem_len) != 0)
        return -1;
    free(pem);

    /* A few issued EK certificates, recorded as the issuance layer records them. */
    ek_profile_config cfg;
    ca_fixture_profile(&cfg);
    ek_instance_identity id;
    ca_fixture_identity(&id);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    for (int i = 0; i < CERTS; i++) {
        ek_cert_request req = {.kind = EK_CERT_EK, .subject_key = key, .identity = &id};
        ek_cert_result res;
        if (ek_cert_issue(g.ca, &cfg, &req, &res, &diag) != VTPMCA_OK)
            return -1;
        store_cert rec;
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.serial, sizeof(rec.serial), "%s", res.serial_hex);
        snprintf(rec.instance_id, sizeof(rec.instance_id), "vm-%d", i);
        snprintf(rec.key_name, sizeof(rec.key_name), "000b%064d", i);
        rec.kind = STORE_CERT_EK;
        rec.format = STORE_CERT_X509;
        rec.not_before = res.not_before;
        rec.not_after = res.not_after;
        rec.der = res.der;
        rec.der_len = res.der_len;
        vtpmca_err err = store_cert_put(g.st, &rec, &diag);
        memcpy(g.serials[i], res.serial_hex, sizeof(g.serials[i]));
        ek_cert_result_free(&res);
        if (err != VTPMCA_OK) {
            fprintf(stderr, "store: %s\n", diag.msg);
            return -1;
        }
    }
    EVP_PKEY_free(key);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(g.st);
    ca_free(g.ca);
    ca_free(g.rsa_ca);
    return ca_fixture_rmtree(g.tmp);
}

static X509_CRL *parse_crl(const crl_result *res)
{
    const unsigned char *p = res->der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)res->der_len);
    assert_non_null(crl);
    assert_ptr_equal(p, res->der + res->der_len);
    return crl;
}

static int64_t time_of(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return (int64_t)timegm(&tm);
}

/* What every CRL must be: v2, issued by the issuing CA, AKI and CRL number (both not
 * critical), times as reported, a valid signature, strict DER. */
static void check_crl(const ca_ctx *ca, const crl_result *res, size_t entries)
{
    X509_CRL *crl = parse_crl(res);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    const X509 *issuing = ca_cert(ca, CA_CERT_ISSUING);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuing)), 0);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(issuing)), 1);
    assert_int_equal(time_of(X509_CRL_get0_lastUpdate(crl)), res->this_update);
    assert_int_equal(time_of(X509_CRL_get0_nextUpdate(crl)), res->next_update);

    int crit = -1;
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
    assert_non_null(number);
    assert_int_equal(crit, 0);
    uint64_t value = 0;
    assert_int_equal(ASN1_INTEGER_get_uint64(&value, number), 1);
    assert_int_equal(value, res->crl_number);
    ASN1_INTEGER_free(number);
    AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, &crit, NULL);
    assert_non_null(akid);
    assert_int_equal(crit, 0);
    size_t id_len = 0;
    const uint8_t *id = ca_issuing_key_id(ca, &id_len);
    assert_int_equal(ASN1_STRING_length(akid->keyid), (int)id_len);
    assert_memory_equal(ASN1_STRING_get0_data(akid->keyid), id, id_len);
    AUTHORITY_KEYID_free(akid);
    assert_int_equal(X509_CRL_get_ext_count(crl), 2);

    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    assert_int_equal(revoked != NULL ? (size_t)sk_X509_REVOKED_num(revoked) : 0, entries);
    X509_CRL_free(crl);

    /* An empty list is left out entirely (no empty SEQUENCE); two CRL extensions plus one
     * reasonCode per entry that has a reason. */
    der_walk_stats stats;
    char why[256];
    if (!der_is_strict(res->der, res->der_len, &stats, why, sizeof(why)))
        fail_msg("CRL is not strict DER: %s", why);
    assert_int_equal(stats.empty_sequences, 0);
    assert_true(stats.extension_values >= 2);
}

/* `openssl crl -CAfile` must verify the CRL; returns the -text output. */
static char *openssl_crl(const crl_result *res, const char *ca_file)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof(path), "%s/crl.der", g.tmp);
    assert_int_equal(ca_fixture_write(path, res->der, res->der_len), 0);
    snprintf(cmd, sizeof(cmd), "openssl crl -inform DER -in '%s' -CAfile '%s' -noout -text", path,
             ca_file);
    char *out = NULL;
    int rc = ca_fixture_run(cmd, &out);
    if (rc != 0 || strstr(out, "verify OK") == NULL)
        fail_msg("%s\n%s", cmd, out);
    return out;
}

/* Serial numbers listed in `openssl crl -text` output, upper-case hex without separators. */
static size_t listed_serials(const char *text, char out[][2 * CRL_SERIAL_MAX + 1], size_t max)
{
    size_t n = 0;
    const char *p = text;
    while ((p = strstr(p, "Serial Number: ")) != NULL && n < max) {
        p += strlen("Serial Number: ");
        size_t len = strspn(p, "0123456789ABCDEF");
        assert_true(len > 0 && len <= 2 * CRL_SERIAL_MAX);
        memcpy(out[n], p, len);
        out[n][len] = '\0';
        n++;
    }
    return n;
}

static void upper(const char *in, char *out)
{
    size_t i = 0;
    for (; in[i] != '\0'; i++)
        out[i] = (char)(in[i] >= 'a' && in[i] <= 'f' ? in[i] - 'a' + 'A' : in[i]);
    out[i] = '\0';
}

/* ---- tests (in order: the store's CRL counter carries over) ---- */

static void test_empty_crl(void **state)
{
    (void)state;
    crl_result res;
    vtpmca_diag diag = {{0}};
    time_t before = time(NULL);
    assert_int_equal(crl_generate(g.ca, g.st, CRL_NEXT_UPDATE_DEFAULT, &res, &diag), VTPMCA_OK);
    assert_int_equal(res.crl_number, 1);
    assert_true(res.this_update >= before && res.this_update <= time(NULL));
    assert_int_equal(res.next_update - res.this_update, CRL_NEXT_UPDATE_DEFAULT);
    check_crl(g.ca, &res, 0);
    char *text = openssl_crl(&res, g.chain_path);
    assert_non_null(strstr(text, "No Revoked Certificates"));
    free(text);
    crl_result_free(&res);
    assert_null(res.der);
}

static void test_revoke_three(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    const crl_reason reasons[] = {VT_CRL_REASON_KEY_COMPROMISE, VT_CRL_REASON_SUPERSEDED,
                                  VT_CRL_REASON_UNSPECIFIED};
    const int64_t when[] = {1767225600, 1767229200, 1767232800};
    for (int i = 0; i < 3; i++)
        assert_int_equal(crl_revoke(g.st, g.serials[i], reasons[i], when[i], &diag), VTPMCA_OK);
    /* A second revocation is refused and keeps the first. */
    assert_int_equal(crl_revoke(g.st, g.serials[0], VT_CRL_REASON_SUPERSEDED, 0, &diag),
                     VTPMCA_ERR_CONFLICT);
    assert_int_equal(crl_revoke(g.st, g.serials[4], (crl_reason)6, 0, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    crl_result res;
    assert_int_equal(crl_generate(g.ca, g.st, 3600, &res, &diag), VTPMCA_OK);
    assert_int_equal(res.crl_number, 2);
    assert_int_equal(res.next_update - res.this_update, 3600);
    check_crl(g.ca, &res, 3);

    /* The CLI lists exactly the three serials. */
    char *text = openssl_crl(&res, g.chain_path);
    char listed[8][2 * CRL_SERIAL_MAX + 1];
    size_t n = listed_serials(text, listed, 8);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char want[2 * CA_SERIAL_LEN + 1];
        upper(g.serials[i], want);
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found = found || strcmp(listed[k], want) == 0;
        if (!found)
            fail_msg("serial %s missing from:\n%s", want, text);
    }
    assert_non_null(strstr(text, "Key Compromise"));
    assert_non_null(strstr(text, "Superseded"));
    free(text);

    /* And OpenSSL's parser sees the dates and reason codes (none for "unspecified"). */
    X509_CRL *crl = parse_crl(&res);
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    for (int i = 0; i < 3; i++) {
        X509_REVOKED *entry = NULL;
        uint8_t serial_bytes[CA_SERIAL_LEN];
        for (int k = 0; k < CA_SERIAL_LEN; k++) {
            unsigned byte;
            sscanf(g.serials[i] + 2 * k, "%2x", &byte);
            serial_bytes[k] = (uint8_t)byte;
        }
        for (int k = 0; k < sk_X509_REVOKED_num(revoked); k++) {
            X509_REVOKED *r = sk_X509_REVOKED_value(revoked, k);
            const ASN1_INTEGER *s = X509_REVOKED_get0_serialNumber(r);
            if (ASN1_STRING_length(s) == CA_SERIAL_LEN &&
                memcmp(ASN1_STRING_get0_data(s), serial_bytes, CA_SERIAL_LEN) == 0)
                entry = r;
        }
        assert_non_null(entry);
        assert_int_equal(time_of(X509_REVOKED_get0_revocationDate(entry)), when[i]);
        int crit = -1;
        ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, &crit, NULL);
        if (i == 2) {
            assert_null(reason);
        } else {
            assert_non_null(reason);
            assert_int_equal(crit, 0);
            assert_int_equal(ASN1_ENUMERATED_get(reason),
                             i == 0 ? VT_CRL_REASON_KEY_COMPROMISE : VT_CRL_REASON_SUPERSEDED);
            ASN1_ENUMERATED_free(reason);
        }
    }
    X509_CRL_free(crl);
    crl_result_free(&res);

    /* Regenerating gives the next number; the unrevoked certificates stay off the list. */
    assert_int_equal(crl_generate(g.ca, g.st, 3600, &res, &diag), VTPMCA_OK);
    assert_int_equal(res.crl_number, 3);
    check_crl(g.ca, &res, 3);
    crl_result_free(&res);
}

static void test_wrong_ca_fails_verification(void **state)
{
    (void)state;
    crl_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(crl_generate(g.ca, g.st, 600, &res, &diag), VTPMCA_OK);
    /* Another CA's chain must not verify it: the CLI check above can fail. */
    char other[256], path[256], cmd[1024];
    snprintf(other, sizeof(other), "%s/other.pem", g.tmp);
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(ca_chain_pem(g.rsa_ca, &pem, &pem_len, NULL), VTPMCA_OK);
    assert_int_equal(ca_fixture_write(other, pem, pem_len), 0);
    free(pem);
    snprintf(path, sizeof(path), "%s/crl.der", g.tmp);
    assert_int_equal(ca_fixture_write(path, res.der, res.der_len), 0);
    snprintf(cmd, sizeof(cmd), "openssl crl -inform DER -in '%s' -CAfile '%s' -noout", path, other);
    char *out = NULL;
    int rc = ca_fixture_run(cmd, &out);
    assert_true(rc != 0 || strstr(out, "verify OK") == NULL);
    free(out);
    crl_result_free(&res);
}

static void test_build_explicit(void **state)
{
    (void)state;
    const uint8_t s1[] = {0x01};
    const uint8_t s2[] = {0x7f, 0xff, 0x00};
    const uint8_t s3[] = {0x80, 0x00}; /* needs a leading 00 in DER: still positive */
    uint8_t s20[CRL_SERIAL_MAX];
    memset(s20, 0x42, sizeof(s20));
    const crl_entry entries[] = {
        {s2, sizeof(s2), 1700000000, VT_CRL_REASON_CESSATION_OF_OPERATION},
        {s1, sizeof(s1), 1700000001, VT_CRL_REASON_PRIVILEGE_WITHDRAWN},
        {s3, sizeof(s3), 1700000002, VT_CRL_REASON_AFFILIATION_CHANGED},
        {s20, sizeof(s20), 1700000003, VT_CRL_REASON_CA_COMPROMISE},
    };
    crl_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(crl_build(g.rsa_ca, entries, 4, 42, 1767225600, 86400, &res, &diag),
                     VTPMCA_OK);
    assert_int_equal(res.crl_number, 42);
    assert_int_equal(res.this_update, 1767225600);
    assert_int_equal(res.next_update, 1767225600 + 86400);
    check_crl(g.rsa_ca, &res, 4);
    X509_CRL *crl = parse_crl(&res);
    assert_int_equal(X509_CRL_get_signature_nid(crl), NID_sha256WithRSAEncryption);
    /* Entries come out in serial order. */
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    const ASN1_INTEGER *first = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, 0));
    assert_int_equal(ASN1_INTEGER_get(first), 1);
    X509_CRL_free(crl);
    crl_result_free(&res);

    /* nextUpdate bounds are inclusive. */
    assert_int_equal(crl_build(g.ca, NULL, 0, 1, 0, CRL_NEXT_UPDATE_MIN, &res, &diag), VTPMCA_OK);
    crl_result_free(&res);
    assert_int_equal(crl_build(g.ca, NULL, 0, 1, 0, CRL_NEXT_UPDATE_MAX, &res, &diag), VTPMCA_OK);
    crl_result_free(&res);
}

static void expect_build_refused(const crl_entry *entries, size_t n, uint64_t number,
                                 int64_t this_update, uint32_t next, const char *part)
{
    crl_result res;
    memset(&res, 0x5a, sizeof(res));
    vtpmca_diag diag = {{0}};
    vtpmca_err err = crl_build(g.ca, entries, n, number, this_update, next, &res, &diag);
    if (err != VTPMCA_ERR_INVALID_ARG)
        fail_msg("got %d (%s)", err, diag.msg);
    if (strstr(diag.msg, part) == NULL)
        fail_msg("diag \"%s\" lacks \"%s\"", diag.msg, part);
    assert_null(res.der);
}

static void test_build_refusals(void **state)
{
    (void)state;
    const uint8_t ok[] = {0x11, 0x22};
    const uint8_t zero[] = {0x00};
    const uint8_t leading[] = {0x00, 0x22};
    uint8_t too_long[CRL_SERIAL_MAX + 1];
    memset(too_long, 1, sizeof(too_long));
    crl_entry e = {ok, sizeof(ok), 1700000000, VT_CRL_REASON_UNSPECIFIED};
    crl_result res;
    assert_int_equal(crl_build(NULL, &e, 1, 1, 0, 3600, &res, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(crl_build(g.ca, &e, 1, 1, 0, 3600, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    expect_build_refused(NULL, 1, 1, 0, 3600, "missing");
    expect_build_refused(&e, 1, 0, 0, 3600, "CRL number");
    expect_build_refused(&e, 1, (uint64_t)INT64_MAX + 1, 0, 3600, "CRL number");
    expect_build_refused(&e, 1, 1, 0, CRL_NEXT_UPDATE_MIN - 1, "nextUpdate");
    expect_build_refused(&e, 1, 1, 0, CRL_NEXT_UPDATE_MAX + 1, "nextUpdate");
    expect_build_refused(&e, 1, 1, -1, 3600, "thisUpdate");

    crl_entry bad = e;
    bad.serial = zero;
    bad.serial_len = 1;
    expect_build_refused(&bad, 1, 1, 0, 3600, "serial");
    bad.serial = leading;
    bad.serial_len = 2;
    expect_build_refused(&bad, 1, 1, 0, 3600, "serial");
    bad.serial = too_long;
    bad.serial_len = sizeof(too_long);
    expect_build_refused(&bad, 1, 1, 0, 3600, "serial");
    bad.serial = NULL;
    expect_build_refused(&bad, 1, 1, 0, 3600, "serial");
    bad = e;
    bad.serial_len = 0;
    expect_build_refused(&bad, 1, 1, 0, 3600, "serial");
    bad = e;
    bad.revoked_at = -1;
    expect_build_refused(&bad, 1, 1, 0, 3600, "before 1970");
    bad = e;
    bad.reason = (crl_reason)6; /* certificateHold: we never suspend */
    expect_build_refused(&bad, 1, 1, 0, 3600, "unknown reason");
    const crl_entry twice[] = {e, {ok, sizeof(ok), 1700000001, VT_CRL_REASON_SUPERSEDED}};
    expect_build_refused(twice, 2, 1, 0, 3600, "twice");
}

static void test_reason_names(void **state)
{
    (void)state;
    const crl_reason all[] = {
        VT_CRL_REASON_UNSPECIFIED,        VT_CRL_REASON_KEY_COMPROMISE,
        VT_CRL_REASON_CA_COMPROMISE,      VT_CRL_REASON_AFFILIATION_CHANGED,
        VT_CRL_REASON_SUPERSEDED,         VT_CRL_REASON_CESSATION_OF_OPERATION,
        VT_CRL_REASON_PRIVILEGE_WITHDRAWN};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        crl_reason parsed;
        assert_non_null(crl_reason_name(all[i]));
        assert_int_equal(crl_reason_parse(crl_reason_name(all[i]), &parsed, NULL), VTPMCA_OK);
        assert_int_equal(parsed, all[i]);
    }
    crl_reason parsed;
    vtpmca_diag diag = {{0}};
    assert_int_equal(crl_reason_parse("certificateHold", &parsed, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "keyCompromise"));
    assert_int_equal(crl_reason_parse("KeyCompromise", &parsed, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(crl_reason_parse(NULL, &parsed, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(crl_reason_name((crl_reason)6));
    assert_null(crl_reason_name((crl_reason)8));
}

static void test_generate_refusals(void **state)
{
    (void)state;
    crl_result res;
    vtpmca_diag diag = {{0}};
    assert_int_equal(crl_generate(NULL, g.st, 3600, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(crl_generate(g.ca, NULL, 3600, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(crl_generate(g.ca, g.st, 3600, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
    /* A bad nextUpdate does not use up a CRL number. */
    assert_int_equal(crl_generate(g.ca, g.st, 1, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    uint64_t before = 0;
    assert_int_equal(store_crl_number_next(g.st, &before, NULL), VTPMCA_OK);
    assert_int_equal(crl_generate(g.ca, g.st, 1, &res, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(crl_generate(g.ca, g.st, 600, &res, &diag), VTPMCA_OK);
    assert_int_equal(res.crl_number, before + 1);
    crl_result_free(&res);

    /* A stored reason that is not an RFC 5280 name (the store only checks it is letters):
     * the CRL is refused and no number is used. */
    assert_int_equal(store_cert_revoke(g.st, g.serials[3], 0, "bogus", &diag), VTPMCA_OK);
    assert_int_equal(crl_generate(g.ca, g.st, 600, &res, &diag), VTPMCA_ERR_STORE);
    assert_non_null(strstr(diag.msg, "revocation reason"));
    assert_null(res.der);
    uint64_t after = 0;
    assert_int_equal(store_crl_number_next(g.st, &after, NULL), VTPMCA_OK);
    assert_int_equal(after, before + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_crl),
        cmocka_unit_test(test_revoke_three),
        cmocka_unit_test(test_wrong_ca_fails_verification),
        cmocka_unit_test(test_build_explicit),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_generate_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
