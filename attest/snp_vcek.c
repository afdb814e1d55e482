/* VCEK / VLEK certificates: AMD's extensions decoded as real DER, the chain to the trusted
 * roots, the binding of a certificate to a report, and the report signature (hot path).
 * Facts: AMD VCEK specification 57230 and ../shared/notes/snp-report.md. */
#include "vtpmca/snp_vcek.h"

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VCEK_MAX_INPUT (64 * 1024)
#define P384_SCALAR_SIZE 48
#define SIG_COMPONENT_SIZE 72
/* DER ECDSA-Sig-Value of two <= 48-byte integers: 2 + 2 * (2 + 49) bytes. */
#define P384_DER_SIG_MAX 104

/* AMD's VCEK/VLEK extension OIDs (arc 1.3.6.1.4.1.3704.1). */
#define OID_STRUCT_VERSION "1.3.6.1.4.1.3704.1.1"
#define OID_PRODUCT_NAME "1.3.6.1.4.1.3704.1.2"
#define OID_BL_SPL "1.3.6.1.4.1.3704.1.3.1"
#define OID_TEE_SPL "1.3.6.1.4.1.3704.1.3.2"
#define OID_SNP_SPL "1.3.6.1.4.1.3704.1.3.3"
#define OID_UCODE_SPL "1.3.6.1.4.1.3704.1.3.8"
#define OID_FMC_SPL "1.3.6.1.4.1.3704.1.3.9"
#define OID_HWID "1.3.6.1.4.1.3704.1.4"
#define OID_CSP_ID "1.3.6.1.4.1.3704.1.5"

#define HWID_LEN 64
#define HWID_LEN_TURIN 8

struct snp_vcek {
    atomic_int refs;
    X509 *cert;
    EVP_PKEY *key;  /* owned by cert */
    EVP_MD *sha384; /* fetched once so each signature check skips the implicit fetch */
    uint8_t *der;
    size_t der_len;
    snp_vcek_info info;
};

static const char *kind_name(snp_signer kind)
{
    return kind == SNP_SIGNER_VLEK ? "VLEK" : "VCEK";
}

static const char *intermediate_name(snp_signer kind)
{
    return kind == SNP_SIGNER_VLEK ? "ASVK" : "ASK";
}

static void format_utc(time_t when, char *out, size_t out_size)
{
    struct tm tm;
    if (gmtime_r(&when, &tm) == NULL || strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, out_size, "%lld", (long long)when);
}

/* ---- parsing ---- */

/* The DER value of the extension with the given OID, NULL when absent. */
static vtpmca_err find_extension(const X509 *cert, const char *kind, const char *field,
                                 const char *oid, const ASN1_OCTET_STRING **value,
                                 vtpmca_diag *diag)
{
    *value = NULL;
    for (int i = 0; i < X509_get_ext_count(cert); i++) {
        X509_EXTENSION *ext = X509_get_ext(cert, i);
        char text[80];
        if (OBJ_obj2txt(text, sizeof(text), X509_EXTENSION_get_object(ext), 1) <= 0 ||
            strcmp(text, oid) != 0)
            continue;
        if (*value != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s extension %s (%s) appears twice", kind,
                               field, oid);
        *value = X509_EXTENSION_get_data(ext);
    }
    return VTPMCA_OK;
}

static vtpmca_err require_extension(const X509 *cert, const char *kind, const char *field,
                                    const char *oid, const ASN1_OCTET_STRING **value,
                                    vtpmca_diag *diag)
{
    vtpmca_err err = find_extension(cert, kind, field, oid, value, diag);
    if (err == VTPMCA_OK && *value == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s extension %s (%s) is missing", kind, field,
                          oid);
    return err;
}

/* Decodes an extension value as one complete DER element of the given type(s). */
static vtpmca_err decode_extension(const ASN1_OCTET_STRING *value, int type, int alt_type,
                                   const char *kind, const char *field, ASN1_TYPE **out,
                                   vtpmca_diag *diag)
{
    const unsigned char *p = ASN1_STRING_get0_data(value);
    long len = ASN1_STRING_length(value);
    ASN1_TYPE *decoded = d2i_ASN1_TYPE(NULL, &p, len);
    if (decoded == NULL || p != ASN1_STRING_get0_data(value) + len ||
        (ASN1_TYPE_get(decoded) != type && ASN1_TYPE_get(decoded) != alt_type)) {
        ASN1_TYPE_free(decoded);
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s extension %s is not a DER %s", kind, field,
                           ASN1_tag2str(type));
    }
    *out = decoded;
    return VTPMCA_OK;
}

static vtpmca_err extension_integer(const X509 *cert, const char *kind, const char *field,
                                    const char *oid, int64_t max, int64_t *out, vtpmca_diag *diag)
{
    const ASN1_OCTET_STRING *value = NULL;
    ASN1_TYPE *decoded = NULL;
    vtpmca_err err = require_extension(cert, kind, field, oid, &value, diag);
    if (err == VTPMCA_OK)
        err = decode_extension(value, V_ASN1_INTEGER, V_ASN1_INTEGER, kind, field, &decoded, diag);
    if (err != VTPMCA_OK)
        return err;
    int64_t number = -1;
    if (!ASN1_INTEGER_get_int64(&number, decoded->value.integer) || number < 0 || number > max)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s extension %s is out of range (0..%lld)", kind,
                          field, (long long)max);
    ASN1_TYPE_free(decoded);
    ERR_clear_error();
    if (err == VTPMCA_OK)
        *out = number;
    return err;
}

/* Copies a decoded string extension into a NUL-terminated buffer. */
static vtpmca_err extension_string(const X509 *cert, const char *kind, const char *field,
                                   const char *oid, int type, int alt_type, char *out,
                                   size_t out_size, vtpmca_diag *diag)
{
    const ASN1_OCTET_STRING *value = NULL;
    ASN1_TYPE *decoded = NULL;
    vtpmca_err err = require_extension(cert, kind, field, oid, &value, diag);
    if (err == VTPMCA_OK)
        err = decode_extension(value, type, alt_type, kind, field, &decoded, diag);
    if (err != VTPMCA_OK)
        return err;
    const ASN1_STRING *text = decoded->value.asn1_string;
    int len = ASN1_STRING_length(text);
    const unsigned char *bytes = ASN1_STRING_get0_data(text);
    if (len <= 0 || (size_t)len >= out_size || memchr(bytes, 0, (size_t)len) != NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s extension %s has a bad length (%d)", kind,
                          field, len);
    else {
        memcpy(out, bytes, (size_t)len);
        out[len] = '\0';
    }
    ASN1_TYPE_free(decoded);
    return err;
}

/* hwID is usually the raw chip id as the extension value; accept an OCTET STRING wrapping. */
static vtpmca_err extension_hwid(const X509 *cert, size_t want, snp_vcek_info *info,
                                 vtpmca_diag *diag)
{
    const ASN1_OCTET_STRING *value = NULL;
    vtpmca_err err = require_extension(cert, "VCEK", "hwID", OID_HWID, &value, diag);
    if (err != VTPMCA_OK)
        return err;
    const unsigned char *data = ASN1_STRING_get0_data(value);
    long len = ASN1_STRING_length(value);
    if ((size_t)len == want) {
        memcpy(info->hwid, data, want);
        info->hwid_len = want;
        return VTPMCA_OK;
    }
    const unsigned char *p = data;
    ASN1_OCTET_STRING *inner = d2i_ASN1_OCTET_STRING(NULL, &p, len);
    if (inner != NULL && p == data + len && (size_t)ASN1_STRING_length(inner) == want) {
        memcpy(info->hwid, ASN1_STRING_get0_data(inner), want);
        info->hwid_len = want;
    } else {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                          "VCEK extension hwID is %ld bytes, expected %zu (raw or OCTET STRING)",
                          len, want);
    }
    ASN1_OCTET_STRING_free(inner);
    ERR_clear_error();
    return err;
}

static vtpmca_err decode_kind(const X509 *cert, snp_signer *kind, vtpmca_diag *diag)
{
    const X509_NAME *subject = X509_get_subject_name(cert);
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certificate subject has no CN");
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    int len = ASN1_STRING_length(cn);
    const unsigned char *bytes = ASN1_STRING_get0_data(cn);
    if (len == 8 && memcmp(bytes, "SEV-VCEK", 8) == 0)
        *kind = SNP_SIGNER_VCEK;
    else if (len == 8 && memcmp(bytes, "SEV-VLEK", 8) == 0)
        *kind = SNP_SIGNER_VLEK;
    else
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "certificate subject CN is neither SEV-VCEK nor SEV-VLEK");
    return VTPMCA_OK;
}

static vtpmca_err check_p384_key(EVP_PKEY *key, snp_signer kind, vtpmca_diag *diag)
{
    char group[32] = "";
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        !EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) ||
        OBJ_txt2nid(group) != NID_secp384r1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "%s key is not an EC P-384 key",
                           kind_name(kind));
    }
    return VTPMCA_OK;
}

static vtpmca_err decode_extensions(const X509 *cert, snp_vcek_info *info, vtpmca_diag *diag)
{
    const char *kind = kind_name(info->kind);
    int64_t number = 0;
    vtpmca_err err = extension_integer(cert, kind, "structVersion", OID_STRUCT_VERSION, INT32_MAX,
                                       &number, diag);
    if (err != VTPMCA_OK)
        return err;
    info->struct_version = (long)number;
    err = extension_string(cert, kind, "productName", OID_PRODUCT_NAME, V_ASN1_IA5STRING,
                           V_ASN1_IA5STRING, info->product_name, sizeof(info->product_name), diag);
    if (err != VTPMCA_OK)
        return err;
    if (snp_product_parse(info->product_name, &info->product) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "%s productName \"%s\" is not supported",
                           kind, info->product_name);

    const struct {
        const char *field, *oid;
        uint8_t *component;
        bool turin_only;
    } spls[] = {
        {"blSPL", OID_BL_SPL, &info->tcb.bootloader, false},
        {"teeSPL", OID_TEE_SPL, &info->tcb.tee, false},
        {"snpSPL", OID_SNP_SPL, &info->tcb.snp, false},
        {"ucodeSPL", OID_UCODE_SPL, &info->tcb.microcode, false},
        {"fmcSPL", OID_FMC_SPL, &info->tcb.fmc, true},
    };
    for (size_t i = 0; i < sizeof(spls) / sizeof(spls[0]); i++) {
        if (spls[i].turin_only && info->product != SNP_PRODUCT_TURIN)
            continue;
        err = extension_integer(cert, kind, spls[i].field, spls[i].oid, UINT8_MAX, &number, diag);
        if (err != VTPMCA_OK)
            return err;
        *spls[i].component = (uint8_t)number;
    }
    if (snp_tcb_encode(&info->tcb, info->product, &info->tcb_raw) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the %s TCB", kind);

    if (info->kind == SNP_SIGNER_VCEK)
        return extension_hwid(cert, info->product == SNP_PRODUCT_TURIN ? HWID_LEN_TURIN : HWID_LEN,
                              info, diag);
    return extension_string(cert, kind, "csp_id", OID_CSP_ID, V_ASN1_IA5STRING, V_ASN1_UTF8STRING,
                            info->csp_id, sizeof(info->csp_id), diag);
}

static bool looks_like_pem(const uint8_t *data, size_t len)
{
    static const char marker[] = "-----BEGIN";
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return len - i >= sizeof(marker) - 1 && memcmp(data + i, marker, sizeof(marker) - 1) == 0;
}

static vtpmca_err decode_certificate(const uint8_t *data, size_t len, X509 **out, vtpmca_diag *diag)
{
    X509 *cert = NULL;
    if (looks_like_pem(data, len)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (bio == NULL)
            return VTPMCA_ERR_NOMEM;
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        cert = d2i_X509(NULL, &p, (long)len);
        if (cert != NULL && p != data + len) {
            X509_free(cert);
            ERR_clear_error();
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certificate DER has %zu trailing bytes",
                               (size_t)(data + len - p));
        }
    }
    if (cert == NULL) {
        vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certificate is neither DER nor PEM X.509");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_PARSE;
    }
    *out = cert;
    return VTPMCA_OK;
}

static void vcek_destroy(snp_vcek *vcek)
{
    X509_free(vcek->cert);
    EVP_MD_free(vcek->sha384);
    OPENSSL_free(vcek->der);
    free(vcek);
}

vtpmca_err snp_vcek_parse(const uint8_t *data, size_t len, snp_vcek **out, vtpmca_diag *diag)
{
    if (data == NULL || len == 0 || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_vcek_parse: missing argument");
    if (len > VCEK_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "certificate is %zu bytes, limit %d", len,
                           VCEK_MAX_INPUT);
    snp_vcek *vcek = calloc(1, sizeof(*vcek));
    if (vcek == NULL)
        return VTPMCA_ERR_NOMEM;
    atomic_init(&vcek->refs, 1);
    vtpmca_err err = decode_certificate(data, len, &vcek->cert, diag);
    if (err == VTPMCA_OK)
        err = decode_kind(vcek->cert, &vcek->info.kind, diag);
    if (err == VTPMCA_OK) {
        vcek->key = X509_get0_pubkey(vcek->cert);
        err = check_p384_key(vcek->key, vcek->info.kind, diag);
    }
    if (err == VTPMCA_OK)
        err = decode_extensions(vcek->cert, &vcek->info, diag);
    if (err == VTPMCA_OK)
        err = snp_cert_validity(vcek->cert, &vcek->info.not_before, &vcek->info.not_after, diag);
    if (err == VTPMCA_OK) {
        int der_len = i2d_X509(vcek->cert, &vcek->der);
        vcek->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
        if (der_len <= 0 || vcek->sha384 == NULL) {
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot prepare the certificate");
            vtpmca_diag_append_openssl(diag);
        }
        vcek->der_len = der_len > 0 ? (size_t)der_len : 0;
    }
    if (err != VTPMCA_OK) {
        vcek_destroy(vcek);
        return err;
    }
    *out = vcek;
    return VTPMCA_OK;
}

const snp_vcek_info *snp_vcek_get_info(const snp_vcek *vcek)
{
    return vcek == NULL ? NULL : &vcek->info;
}

vtpmca_err snp_vcek_get_der(const snp_vcek *vcek, const uint8_t **der, size_t *len)
{
    if (vcek == NULL || der == NULL || len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    *der = vcek->der;
    *len = vcek->der_len;
    return VTPMCA_OK;
}

void snp_vcek_ref(snp_vcek *vcek)
{
    if (vcek != NULL)
        atomic_fetch_add_explicit(&vcek->refs, 1, memory_order_relaxed);
}

void snp_vcek_free(snp_vcek *vcek)
{
    if (vcek == NULL)
        return;
    /* acq_rel: the last owner must see every other owner's writes before destroying. */
    if (atomic_fetch_sub_explicit(&vcek->refs, 1, memory_order_acq_rel) == 1)
        vcek_destroy(vcek);
}

/* ---- chain ---- */

/* Checks that `at` lies inside [not_before, not_after]. */
static vtpmca_err check_validity(const char *what, time_t not_before, time_t not_after, time_t at,
                                 vtpmca_diag *diag)
{
    char when[32];
    if (at < not_before) {
        format_utc(not_before, when, sizeof(when));
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not valid before %s", what, when);
    }
    if (at > not_after) {
        format_utc(not_after, when, sizeof(when));
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s expired at %s", what, when);
    }
    return VTPMCA_OK;
}

/* How far a leaf got along one trusted chain (later is closer to success). */
typedef enum {
    CHAIN_ISSUER_MISMATCH = 0,
    CHAIN_BAD_SIGNATURE,
    CHAIN_OUTSIDE_VALIDITY,
    CHAIN_VALID,
} chain_result;

/* Tries one trusted chain: issuer name, signature, then every validity window at `at`. */
static chain_result try_chain(const snp_vcek *vcek, const snp_root_chain *chain, time_t at,
                              vtpmca_diag *diag)
{
    const snp_vcek_info *info = &vcek->info;
    const char *leaf = kind_name(info->kind);
    const char *product = snp_product_name(info->product);
    char inter[32], ark[32];
    snprintf(inter, sizeof(inter), "%s %s", product, intermediate_name(info->kind));
    snprintf(ark, sizeof(ark), "%s ARK", product);

    if (X509_NAME_cmp(X509_get_issuer_name(vcek->cert),
                      X509_get_subject_name(chain->intermediate)) != 0) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s issuer is not a trusted %s", leaf, inter);
        return CHAIN_ISSUER_MISMATCH;
    }
    if (X509_verify(vcek->cert, X509_get0_pubkey(chain->intermediate)) != 1) {
        ERR_clear_error();
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not signed by the %s", leaf, inter);
        return CHAIN_BAD_SIGNATURE;
    }
    if (check_validity(leaf, info->not_before, info->not_after, at, diag) != VTPMCA_OK ||
        check_validity(inter, chain->intermediate_not_before, chain->intermediate_not_after, at,
                       diag) != VTPMCA_OK ||
        check_validity(ark, chain->ark_not_before, chain->ark_not_after, at, diag) != VTPMCA_OK)
        return CHAIN_OUTSIDE_VALIDITY;
    return CHAIN_VALID;
}

static time_t max_time(time_t a, time_t b)
{
    return a > b ? a : b;
}

static time_t min_time(time_t a, time_t b)
{
    return a < b ? a : b;
}

vtpmca_err snp_vcek_verify_chain(const snp_vcek *vcek, const snp_roots *roots, time_t at,
                                 time_t *valid_from, time_t *valid_until, vtpmca_diag *diag)
{
    if (vcek == NULL || roots == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_vcek_verify_chain: missing argument");
    if (at == 0)
        at = time(NULL);
    const snp_vcek_info *info = &vcek->info;
    const char *leaf = kind_name(info->kind);
    /* OpenSSL does not know AMD's extensions; none of them may be critical. */
    if (X509_get_extension_flags(vcek->cert) & EXFLAG_CRITICAL)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s has an unsupported critical extension",
                           leaf);
    vtpmca_err err = snp_check_amd_signature_alg(vcek->cert, leaf, diag);
    if (err != VTPMCA_OK)
        return err;

    /* Several chains may serve a product (builtin and an explicit test root): keep the
     * diagnostic of the one that got furthest. */
    bool tried = false;
    chain_result best = CHAIN_ISSUER_MISMATCH;
    vtpmca_diag attempt, best_diag = {{0}};
    for (size_t i = 0; i < snp_roots_count(roots); i++) {
        const snp_root_chain *chain = snp_roots_get(roots, i);
        if (chain->product != info->product || chain->kind != info->kind)
            continue;
        attempt.msg[0] = '\0';
        chain_result result = try_chain(vcek, chain, at, &attempt);
        if (result == CHAIN_VALID) {
            if (valid_from != NULL)
                *valid_from = max_time(max_time(info->not_before, chain->intermediate_not_before),
                                       chain->ark_not_before);
            if (valid_until != NULL)
                *valid_until = min_time(min_time(info->not_after, chain->intermediate_not_after),
                                        chain->ark_not_after);
            return VTPMCA_OK;
        }
        if (!tried || result > best) {
            best = result;
            best_diag = attempt;
        }
        tried = true;
    }
    if (!tried)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "no trusted %s %s for the %s's product",
                           snp_product_name(info->product), intermediate_name(info->kind), leaf);
    return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s", best_diag.msg);
}

/* ---- binding to a report ---- */

vtpmca_err snp_vcek_check_report(const snp_vcek *vcek, const snp_report *report, vtpmca_diag *diag)
{
    if (vcek == NULL || report == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_vcek_check_report: missing argument");
    const snp_vcek_info *info = &vcek->info;
    const char *kind = kind_name(info->kind);
    snp_signer signer = snp_report_signer(report);
    if (signer != info->kind)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "report key_info names the %s as signer but the certificate is a %s",
                           snp_signer_name(signer), kind);
    if (report->version >= 3) {
        snp_product reported = snp_report_product(report);
        if (reported != info->product)
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                               "report CPUID (family 0x%02x model 0x%02x: %s) does not match "
                               "the %s product %s",
                               report->cpuid_family, report->cpuid_model,
                               snp_product_name(reported), kind, info->product_name);
    }
    snp_tcb tcb;
    if (snp_tcb_decode(report->reported_tcb, info->product, &tcb) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "report reported_tcb 0x%016llx is not a valid %s TCB (reserved bytes)",
                           (unsigned long long)report->reported_tcb,
                           snp_product_name(info->product));
    const struct {
        const char *name;
        uint8_t reported, certified;
    } components[] = {
        {"blSPL (bootloader)", tcb.bootloader, info->tcb.bootloader},
        {"teeSPL (tee)", tcb.tee, info->tcb.tee},
        {"snpSPL (snp)", tcb.snp, info->tcb.snp},
        {"ucodeSPL (microcode)", tcb.microcode, info->tcb.microcode},
        {"fmcSPL (fmc)", tcb.fmc, info->tcb.fmc},
    };
    for (size_t i = 0; i < sizeof(components) / sizeof(components[0]); i++) {
        if (components[i].reported != components[i].certified)
            return vtpmca_fail(
                diag, VTPMCA_ERR_CRYPTO, "report reported_tcb %s is %u but the %s certifies %u",
                components[i].name, components[i].reported, kind, components[i].certified);
    }
    if (info->kind == SNP_SIGNER_VCEK && memcmp(info->hwid, report->chip_id, info->hwid_len) != 0) {
        bool masked = (report->key_info & SNP_KEY_INFO_MASK_CHIP_KEY) != 0;
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "report chip_id does not match the VCEK hwID%s",
                           masked ? " (the report has MASK_CHIP_KEY set: chip_id is zeroed)" : "");
    }
    return VTPMCA_OK;
}

/* ---- report signature (hot path) ---- */

static bool high_bytes_zero(const uint8_t component[SIG_COMPONENT_SIZE])
{
    uint8_t any = 0;
    for (size_t i = P384_SCALAR_SIZE; i < SIG_COMPONENT_SIZE; i++)
        any |= component[i];
    return any == 0;
}

vtpmca_err snp_report_verify_signature(const snp_report *report, const snp_vcek *vcek,
                                       vtpmca_diag *diag)
{
    if (report == NULL || vcek == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "snp_report_verify_signature: missing argument");
    if (!high_bytes_zero(report->sig_r) || !high_bytes_zero(report->sig_s))
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "report signature %s has non-zero bytes beyond the P-384 size",
                           high_bytes_zero(report->sig_r) ? "s" : "r");

    vtpmca_err err = VTPMCA_ERR_NOMEM;
    unsigned char der[P384_DER_SIG_MAX];
    int der_len = 0;
    BIGNUM *r = BN_lebin2bn(report->sig_r, P384_SCALAR_SIZE, NULL);
    BIGNUM *s = BN_lebin2bn(report->sig_s, P384_SCALAR_SIZE, NULL);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (r == NULL || s == NULL || sig == NULL || ctx == NULL || !ECDSA_SIG_set0(sig, r, s))
        goto out;
    r = s = NULL; /* owned by sig */
    /* r, s < 2^384, so the DER form fits P384_DER_SIG_MAX; check anyway before writing. */
    if (i2d_ECDSA_SIG(sig, NULL) > (int)sizeof(der)) {
        err = VTPMCA_ERR_INTERNAL;
        goto out;
    }
    unsigned char *p = der;
    der_len = i2d_ECDSA_SIG(sig, &p);
    if (der_len <= 0 || EVP_DigestVerifyInit(ctx, NULL, vcek->sha384, NULL, vcek->key) != 1) {
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "cannot set up the signature check");
        vtpmca_diag_append_openssl(diag);
        goto out;
    }
    if (EVP_DigestVerify(ctx, der, (size_t)der_len, report->raw, SNP_REPORT_SIGNED_SIZE) != 1)
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "report signature does not verify with the %s",
                          kind_name(vcek->info.kind));
    else
        err = VTPMCA_OK;
out:
    ERR_clear_error();
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    return err;
}
