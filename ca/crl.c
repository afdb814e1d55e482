/* The issuing CA's CRL (include/vtpmca/crl.h, docs/ca.md "Revocation"). */
#include "vtpmca/crl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/encoding.h"

static const struct {
    crl_reason reason;
    const char *name;
} reason_names[] = {
    {VT_CRL_REASON_UNSPECIFIED, "unspecified"},
    {VT_CRL_REASON_KEY_COMPROMISE, "keyCompromise"},
    {VT_CRL_REASON_CA_COMPROMISE, "cACompromise"},
    {VT_CRL_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {VT_CRL_REASON_SUPERSEDED, "superseded"},
    {VT_CRL_REASON_CESSATION_OF_OPERATION, "cessationOfOperation"},
    {VT_CRL_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
};
#define REASON_COUNT (sizeof(reason_names) / sizeof(reason_names[0]))

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "crl: %s", what);
    vtpmca_diag_append_openssl(diag);
    ERR_clear_error();
    return err;
}

vtpmca_err crl_reason_parse(const char *name, crl_reason *out, vtpmca_diag *diag)
{
    if (name == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: reason missing");
    for (size_t i = 0; i < REASON_COUNT; i++) {
        if (strcmp(name, reason_names[i].name) == 0) {
            *out = reason_names[i].reason;
            return VTPMCA_OK;
        }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                       "crl: unknown revocation reason (use unspecified, keyCompromise, "
                       "cACompromise, affiliationChanged, superseded, cessationOfOperation or "
                       "privilegeWithdrawn)");
}

const char *crl_reason_name(crl_reason reason)
{
    for (size_t i = 0; i < REASON_COUNT; i++) {
        if (reason_names[i].reason == reason)
            return reason_names[i].name;
    }
    return NULL;
}

void crl_result_free(crl_result *res)
{
    if (res == NULL)
        return;
    free(res->der);
    memset(res, 0, sizeof(*res));
}

static int compare_entries(const void *a, const void *b)
{
    const crl_entry *x = *(const crl_entry *const *)a;
    const crl_entry *y = *(const crl_entry *const *)b;
    /* Minimal big-endian magnitudes: the shorter one is the smaller number. */
    if (x->serial_len != y->serial_len)
        return x->serial_len < y->serial_len ? -1 : 1;
    return memcmp(x->serial, y->serial, x->serial_len);
}

static vtpmca_err check_entries(const crl_entry *entries, size_t n, vtpmca_diag *diag)
{
    for (size_t i = 0; i < n; i++) {
        const crl_entry *e = &entries[i];
        if (e->serial == NULL || e->serial_len == 0 || e->serial_len > CRL_SERIAL_MAX ||
            (e->serial_len > 1 && e->serial[0] == 0) || (e->serial_len == 1 && e->serial[0] == 0))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "crl: entry %zu: serial must be a positive number of 1 to %d "
                               "bytes without leading zeros",
                               i, CRL_SERIAL_MAX);
        if (e->revoked_at < 0)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "crl: entry %zu: revocation time before 1970", i);
        if (crl_reason_name(e->reason) == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: entry %zu: unknown reason", i);
    }
    /* Duplicates: sort pointers (the caller's array stays as it is) and compare neighbours. */
    if (n < 2)
        return VTPMCA_OK;
    const crl_entry **sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "crl: out of memory");
    for (size_t i = 0; i < n; i++)
        sorted[i] = &entries[i];
    qsort(sorted, n, sizeof(*sorted), compare_entries);
    vtpmca_err err = VTPMCA_OK;
    for (size_t i = 1; i < n && err == VTPMCA_OK; i++) {
        if (compare_entries(&sorted[i - 1], &sorted[i]) == 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: serial listed twice");
    }
    free(sorted);
    return err;
}

static ASN1_INTEGER *integer_from_bytes(const uint8_t *bytes, size_t len)
{
    BIGNUM *bn = BN_bin2bn(bytes, (int)len, NULL);
    ASN1_INTEGER *value = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    return value;
}

static bool add_entry(X509_CRL *crl, const crl_entry *e)
{
    X509_REVOKED *rev = X509_REVOKED_new();
    ASN1_INTEGER *serial = integer_from_bytes(e->serial, e->serial_len);
    ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)e->revoked_at);
    ASN1_ENUMERATED *reason = NULL;
    bool ok = rev != NULL && serial != NULL && when != NULL &&
              X509_REVOKED_set_serialNumber(rev, serial) == 1 &&
              X509_REVOKED_set_revocationDate(rev, when) == 1;
    /* RFC 5280 5.3.1: reasonCode unspecified SHOULD be absent. */
    if (ok && e->reason != VT_CRL_REASON_UNSPECIFIED) {
        reason = ASN1_ENUMERATED_new();
        ok = reason != NULL && ASN1_ENUMERATED_set(reason, (long)e->reason) == 1 &&
             X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, X509V3_ADD_DEFAULT) == 1;
    }
    if (ok)
        ok = X509_CRL_add0_revoked(crl, rev) == 1;
    if (!ok)
        X509_REVOKED_free(rev);
    ASN1_ENUMERATED_free(reason);
    ASN1_TIME_free(when);
    ASN1_INTEGER_free(serial);
    return ok;
}

static bool add_crl_extensions(X509_CRL *crl, const ca_ctx *ca, uint64_t crl_number)
{
    ASN1_INTEGER *number = ASN1_INTEGER_new();
    AUTHORITY_KEYID *akid = NULL;
    bool ok = number != NULL && ASN1_INTEGER_set_uint64(number, crl_number) == 1 &&
              ca_authority_key_id(ca, &akid, NULL) == VTPMCA_OK &&
              /* RFC 5280 5.2.1 and 5.2.3: both non-critical. */
              X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0,
                                    X509V3_ADD_DEFAULT) == 1 &&
              X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, X509V3_ADD_DEFAULT) == 1;
    AUTHORITY_KEYID_free(akid);
    ASN1_INTEGER_free(number);
    return ok;
}

vtpmca_err crl_build(const ca_ctx *ca, const crl_entry *entries, size_t n, uint64_t crl_number,
                     int64_t this_update, uint32_t next_update_secs, crl_result *out,
                     vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ca == NULL || (entries == NULL && n > 0) || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: missing argument");
    if (crl_number == 0 || crl_number > INT64_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: CRL number must be 1 to 2^63-1");
    if (next_update_secs < CRL_NEXT_UPDATE_MIN || next_update_secs > CRL_NEXT_UPDATE_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "crl: nextUpdate must be %d to %u seconds after thisUpdate",
                           CRL_NEXT_UPDATE_MIN, CRL_NEXT_UPDATE_MAX);
    if (this_update < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: thisUpdate before 1970");
    vtpmca_err err = check_entries(entries, n, diag);
    if (err != VTPMCA_OK)
        return err;

    int64_t now = this_update != 0 ? this_update : (int64_t)time(NULL);
    int64_t next = now + (int64_t)next_update_secs;
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *last_time = ASN1_TIME_set(NULL, (time_t)now);
    ASN1_TIME *next_time = ASN1_TIME_set(NULL, (time_t)next);
    const X509 *issuing = ca_cert(ca, CA_CERT_ISSUING);
    bool ok = crl != NULL && last_time != NULL && next_time != NULL &&
              X509_CRL_set_version(crl, X509_CRL_VERSION_2) == 1 &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuing)) == 1 &&
              X509_CRL_set1_lastUpdate(crl, last_time) == 1 &&
              X509_CRL_set1_nextUpdate(crl, next_time) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = add_entry(crl, &entries[i]);
    /* Entries in serial order: not required, but it makes CRLs comparable and diffable. */
    if (ok)
        ok = X509_CRL_sort(crl) == 1 && add_crl_extensions(crl, ca, crl_number);
    if (!ok)
        err = openssl_fail(diag, VTPMCA_ERR_NOMEM, "cannot build the CRL");
    if (err == VTPMCA_OK)
        err = ca_sign_crl(ca, crl, &out->der, &out->der_len, diag);
    ASN1_TIME_free(last_time);
    ASN1_TIME_free(next_time);
    X509_CRL_free(crl);
    if (err != VTPMCA_OK) {
        crl_result_free(out);
        return err;
    }
    out->crl_number = crl_number;
    out->this_update = now;
    out->next_update = next;
    return VTPMCA_OK;
}

vtpmca_err crl_generate(const ca_ctx *ca, store *st, uint32_t next_update_secs, crl_result *out,
                        vtpmca_diag *diag)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ca == NULL || st == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: missing argument");
    store_cert_revocation *revoked = NULL;
    size_t n = 0;
    vtpmca_err err = store_cert_revocations(st, &revoked, &n, diag);
    if (err != VTPMCA_OK)
        return err;
    crl_entry *entries = n > 0 ? calloc(n, sizeof(*entries)) : NULL;
    uint8_t(*serials)[CRL_SERIAL_MAX] = n > 0 ? calloc(n, sizeof(*serials)) : NULL;
    if (n > 0 && (entries == NULL || serials == NULL))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "crl: out of memory");
    for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
        size_t hex_len = strlen(revoked[i].serial);
        entries[i].serial = serials[i];
        entries[i].serial_len = hex_len / 2;
        entries[i].revoked_at = revoked[i].revoked_at;
        if (hex_len / 2 > CRL_SERIAL_MAX ||
            vt_hex_decode_fixed(revoked[i].serial, serials[i], hex_len / 2) != VTPMCA_OK)
            err = vtpmca_fail(diag, VTPMCA_ERR_STORE, "crl: stored serial %s is malformed",
                              revoked[i].serial);
        else if (crl_reason_parse(revoked[i].reason, &entries[i].reason, NULL) != VTPMCA_OK)
            err = vtpmca_fail(diag, VTPMCA_ERR_STORE,
                              "crl: certificate %s has an unknown revocation reason",
                              revoked[i].serial);
    }
    /* Take the number last, so a bad argument above does not burn one. */
    uint64_t number = 0;
    if (err == VTPMCA_OK &&
        (next_update_secs < CRL_NEXT_UPDATE_MIN || next_update_secs > CRL_NEXT_UPDATE_MAX))
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "crl: nextUpdate must be %d to %u seconds after thisUpdate",
                          CRL_NEXT_UPDATE_MIN, CRL_NEXT_UPDATE_MAX);
    if (err == VTPMCA_OK)
        err = store_crl_number_next(st, &number, diag);
    if (err == VTPMCA_OK)
        err = crl_build(ca, entries, n, number, 0, next_update_secs, out, diag);
    free(serials);
    free(entries);
    free(revoked);
    return err;
}

vtpmca_err crl_revoke(store *st, const char *serial_hex, crl_reason reason, int64_t revoked_at,
                      vtpmca_diag *diag)
{
    const char *name = crl_reason_name(reason);
    if (name == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "crl: unknown revocation reason %d",
                           (int)reason);
    return store_cert_revoke(st, serial_hex, revoked_at, name, diag);
}
