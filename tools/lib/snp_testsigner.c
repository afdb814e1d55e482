/* TEST-ONLY AMD-like SEV-SNP root: ARK -> ASK/ASVK -> VCEK/VLEK with AMD's names, serials,
 * extensions and RSASSA-PSS parameters, plus a signer for synthetic attestation reports.
 * The structure mirrors the genuine certificates in ../shared/amd and ../shared/testdata. */
#include "vtpmca/snp_testsigner.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/fileio.h"

/* AMD signs with RSASSA-PSS, SHA-384, MGF1-SHA-384 and a 48-byte salt. */
#define PSS_SALT_LEN 48
#define ARK_VALIDITY_YEARS 25 /* like AMD's ARKs (2020..2045) */
#define VCEK_VALIDITY_YEARS 7 /* like AMD's VCEKs */
#define SECONDS_PER_DAY 86400L
#define PEM_FILE_MAX (1024 * 1024)

/* Nobody may mistake this root for AMD's: every name carries this OU. */
#define TEST_ORG_UNIT "vtpmca-test"
/* CRL URLs keep AMD's path shape on a host that cannot resolve (RFC 6761 .invalid). */
#define TEST_CRL_BASE "https://kdsintf.vtpmca-test.invalid"

#define KDS_OID_BASE "1.3.6.1.4.1.3704.1"

/* Where r and s sit in the wire format (right after the signed bytes). */
enum {
    OFF_SIG_R = SNP_REPORT_SIGNED_SIZE,
    OFF_SIG_S = SNP_REPORT_SIGNED_SIZE + 72,
};
#define SIG_COMPONENT_LEN 72

/* Per-product facts: VCEK productName, CPUID signature, AMD's certificate serial prefix. */
typedef struct {
    snp_product product;
    const char *vcek_product_name;
    uint8_t cpuid_family, cpuid_model, cpuid_stepping;
    long serial_base; /* ARK 0xN0000, ASK 0xN0001, ASVK 0xN0101 as AMD numbers them */
    size_t hwid_len;
    bool has_fmc;
} product_facts;

static const product_facts PRODUCTS[] = {
    {SNP_PRODUCT_MILAN, "Milan-B0", 0x19, 0x01, 0x00, 0x10000, 64, false},
    {SNP_PRODUCT_GENOA, "Genoa", 0x19, 0x11, 0x01, 0x20000, 64, false},
    {SNP_PRODUCT_TURIN, "Turin", 0x1A, 0x02, 0x00, 0x30000, 8, true},
};

struct snp_test_root {
    snp_product product;
    EVP_PKEY *ark_key, *ask_key, *asvk_key;
    X509 *ark, *ask, *asvk;
};

static const product_facts *facts_for(snp_product product)
{
    for (size_t i = 0; i < sizeof(PRODUCTS) / sizeof(PRODUCTS[0]); i++)
        if (PRODUCTS[i].product == product)
            return &PRODUCTS[i];
    return NULL;
}

/* The same UTC date and time `years` calendar years later, as AMD's validity periods are. */
static time_t add_years(time_t from, int years)
{
    struct tm tm;
    if (gmtime_r(&from, &tm) == NULL)
        return from;
    tm.tm_year += years;
    return timegm(&tm);
}

static vtpmca_err openssl_fail(vtpmca_diag *diag, const char *what)
{
    vtpmca_err err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s failed", what);
    vtpmca_diag_append_openssl(diag);
    return err;
}

/* ---- certificates ---- */

/* AMD's name layout: OU, C, L, ST, O, CN (UTF8String except C, which OpenSSL's string table
 * makes a PrintableString, as in AMD's certificates). */
static X509_NAME *make_amd_name(const char *common_name)
{
    static const struct {
        int nid;
        const char *value;
    } fixed[] = {
        {NID_organizationalUnitName, TEST_ORG_UNIT},
        {NID_countryName, "US"},
        {NID_localityName, "Santa Clara"},
        {NID_stateOrProvinceName, "CA"},
        {NID_organizationName, "Advanced Micro Devices"},
    };
    X509_NAME *name = X509_NAME_new();
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!X509_NAME_add_entry_by_NID(name, fixed[i].nid, MBSTRING_UTF8,
                                        (const unsigned char *)fixed[i].value, -1, -1, 0))
            goto fail;
    }
    if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)common_name, -1, -1, 0))
        goto fail;
    return name;
fail:
    X509_NAME_free(name);
    return NULL;
}

static vtpmca_err sign_pss_sha384(X509 *cert, EVP_PKEY *issuer_key, vtpmca_diag *diag)
{
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pkey_ctx = NULL;
    if (md_ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err = VTPMCA_OK;
    if (EVP_DigestSignInit(md_ctx, &pkey_ctx, EVP_sha384(), NULL, issuer_key) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pkey_ctx, PSS_SALT_LEN) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pkey_ctx, EVP_sha384()) != 1 ||
        X509_sign_ctx(cert, md_ctx) <= 0)
        err = openssl_fail(diag, "RSASSA-PSS certificate signature");
    EVP_MD_CTX_free(md_ctx);
    return err;
}

/* Sets version 3, serial, names, validity and key: the part every certificate shares. */
static vtpmca_err fill_cert_body(X509 *cert, long serial, const char *subject_cn,
                                 const X509 *issuer, time_t not_before, time_t not_after,
                                 EVP_PKEY *subject_key, vtpmca_diag *diag)
{
    X509_NAME *subject = make_amd_name(subject_cn);
    if (subject == NULL)
        return openssl_fail(diag, "building certificate name");
    int ok = X509_set_version(cert, X509_VERSION_3) &&
             ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) &&
             X509_set_subject_name(cert, subject) &&
             X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : subject) &&
             ASN1_TIME_set(X509_getm_notBefore(cert), not_before) != NULL &&
             ASN1_TIME_set(X509_getm_notAfter(cert), not_after) != NULL &&
             X509_set_pubkey(cert, subject_key);
    X509_NAME_free(subject);
    return ok ? VTPMCA_OK : openssl_fail(diag, "building certificate body");
}

/* Adds a standard extension written in OpenSSL's config syntax (e.g. "critical,CA:TRUE"). */
static vtpmca_err add_std_extension(X509 *cert, X509 *issuer, int nid, const char *value,
                                    vtpmca_diag *diag)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return openssl_fail(diag, "building a certificate extension");
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? VTPMCA_OK : openssl_fail(diag, "adding a certificate extension");
}

/* Standard extensions in the order and with the criticality of AMD's certificates; each
 * list ends with cRLDistributionPoints, whose URI depends on the product. */
typedef struct {
    int nid;
    const char *value; /* OpenSSL config syntax */
} std_extension;

static const std_extension ARK_EXTENSIONS[] = {
    {NID_key_usage, "critical,keyCertSign,cRLSign"},
    {NID_subject_key_identifier, "hash"},
    {NID_basic_constraints, "critical,CA:TRUE"},
};
static const std_extension SIGNING_CA_EXTENSIONS[] = {
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
    {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
    {NID_key_usage, "critical,keyCertSign"},
};

/* The ARK (issuer NULL: self-signed) or an ASK/ASVK signed by the ARK. */
static vtpmca_err make_ca_cert(snp_product product, const char *cn, long serial,
                               const char *crl_kind, EVP_PKEY *key, X509 *issuer,
                               EVP_PKEY *issuer_key, X509 **out, vtpmca_diag *diag)
{
    const std_extension *extensions = issuer == NULL ? ARK_EXTENSIONS : SIGNING_CA_EXTENSIONS;
    size_t extension_count = issuer == NULL
                                 ? sizeof(ARK_EXTENSIONS) / sizeof(ARK_EXTENSIONS[0])
                                 : sizeof(SIGNING_CA_EXTENSIONS) / sizeof(SIGNING_CA_EXTENSIONS[0]);
    char crl[160];
    snprintf(crl, sizeof(crl), "URI:%s/%s/v1/%s/crl", TEST_CRL_BASE, crl_kind,
             snp_product_name(product));
    time_t now = time(NULL);
    X509 *cert = X509_new();
    if (cert == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err = fill_cert_body(cert, serial, cn, issuer, now - SECONDS_PER_DAY,
                                    add_years(now, ARK_VALIDITY_YEARS), key, diag);
    X509 *ext_issuer = issuer != NULL ? issuer : cert;
    for (size_t i = 0; err == VTPMCA_OK && i < extension_count; i++)
        err = add_std_extension(cert, ext_issuer, extensions[i].nid, extensions[i].value, diag);
    if (err == VTPMCA_OK)
        err = add_std_extension(cert, ext_issuer, NID_crl_distribution_points, crl, diag);
    if (err == VTPMCA_OK)
        err = sign_pss_sha384(cert, issuer != NULL ? issuer_key : key, diag);
    if (err != VTPMCA_OK) {
        X509_free(cert);
        return err;
    }
    *out = cert;
    return VTPMCA_OK;
}

/* Adds an AMD KDS extension (non-critical) whose value is the given DER bytes verbatim. */
static vtpmca_err add_kds_extension(X509 *cert, const char *oid_suffix, const uint8_t *value,
                                    size_t value_len, vtpmca_diag *diag)
{
    char oid_text[64];
    snprintf(oid_text, sizeof(oid_text), "%s.%s", KDS_OID_BASE, oid_suffix);
    ASN1_OBJECT *oid = OBJ_txt2obj(oid_text, 1);
    ASN1_OCTET_STRING *octets = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    vtpmca_err err = VTPMCA_OK;
    if (oid == NULL || octets == NULL || value_len > INT_MAX ||
        !ASN1_OCTET_STRING_set(octets, value, (int)value_len) ||
        (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, octets)) == NULL ||
        !X509_add_ext(cert, ext, -1))
        err = openssl_fail(diag, "adding a KDS extension");
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(octets);
    ASN1_OBJECT_free(oid);
    return err;
}

/* Adds an extension from a value's DER (from i2d_*: der_len <= 0 means encoding failed);
 * frees der. */
static vtpmca_err add_kds_encoded(X509 *cert, const char *oid_suffix, unsigned char *der,
                                  int der_len, const char *type, vtpmca_diag *diag)
{
    if (der_len <= 0) {
        OPENSSL_free(der);
        char what[64];
        snprintf(what, sizeof(what), "encoding a KDS %s extension", type);
        return openssl_fail(diag, what);
    }
    vtpmca_err err = add_kds_extension(cert, oid_suffix, der, (size_t)der_len, diag);
    OPENSSL_free(der);
    return err;
}

/* An extension whose value is a DER INTEGER, as AMD encodes structVersion and the SPLs. */
static vtpmca_err add_kds_integer(X509 *cert, const char *oid_suffix, long value, vtpmca_diag *diag)
{
    ASN1_INTEGER *integer = ASN1_INTEGER_new();
    unsigned char *der = NULL;
    int der_len = -1;
    if (integer != NULL && ASN1_INTEGER_set(integer, value))
        der_len = i2d_ASN1_INTEGER(integer, &der);
    ASN1_INTEGER_free(integer);
    return add_kds_encoded(cert, oid_suffix, der, der_len, "INTEGER", diag);
}

/* An extension whose value is a DER IA5String (productName, csp_id). */
static vtpmca_err add_kds_ia5string(X509 *cert, const char *oid_suffix, const char *text,
                                    vtpmca_diag *diag)
{
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    unsigned char *der = NULL;
    int der_len = -1;
    if (ia5 != NULL && ASN1_STRING_set(ia5, text, -1))
        der_len = i2d_ASN1_IA5STRING(ia5, &der);
    ASN1_IA5STRING_free(ia5);
    return add_kds_encoded(cert, oid_suffix, der, der_len, "IA5String", diag);
}

/* The VCEK/VLEK extensions in the order of AMD's genuine VCEKs: structVersion, productName,
 * blSPL, teeSPL, the reserved SPLs .3.4-.3.7, snpSPL, ucodeSPL, fmcSPL (Turin), then hwID
 * (VCEK: raw bytes, no OCTET STRING inside) or csp_id (VLEK). */
static vtpmca_err add_vcek_extensions(X509 *cert, const product_facts *facts,
                                      const snp_test_cert_params *params, vtpmca_diag *diag)
{
    const struct {
        const char *oid_suffix;
        long value;
    } spls[] = {
        {"3.1", params->tcb.bootloader},
        {"3.2", params->tcb.tee},
        {"3.4", 0},
        {"3.5", 0},
        {"3.6", 0},
        {"3.7", 0},
        {"3.3", params->tcb.snp},
        {"3.8", params->tcb.microcode},
    };
    vtpmca_err err = add_kds_integer(cert, "1", 0, diag); /* structVersion 0, as AMD's */
    if (err == VTPMCA_OK)
        err = add_kds_ia5string(cert, "2", facts->vcek_product_name, diag);
    for (size_t i = 0; err == VTPMCA_OK && i < sizeof(spls) / sizeof(spls[0]); i++)
        err = add_kds_integer(cert, spls[i].oid_suffix, spls[i].value, diag);
    if (err == VTPMCA_OK && facts->has_fmc)
        err = add_kds_integer(cert, "3.9", params->tcb.fmc, diag);
    if (err != VTPMCA_OK)
        return err;
    if (params->kind == SNP_SIGNER_VCEK)
        return add_kds_extension(cert, "4", params->chip_id, facts->hwid_len, diag);
    return add_kds_ia5string(cert, "5", params->csp_id != NULL ? params->csp_id : "vtpmca-test",
                             diag);
}

static vtpmca_err check_cert_params(const snp_test_cert_params *params, const product_facts *facts,
                                    vtpmca_diag *diag)
{
    if (params->kind != SNP_SIGNER_VCEK && params->kind != SNP_SIGNER_VLEK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "certificate kind must be VCEK or VLEK, got %d", (int)params->kind);
    if (!facts->has_fmc && params->tcb.fmc != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "fmcSPL is only defined on Turin, got fmc=%u for %s", params->tcb.fmc,
                           snp_product_name(facts->product));
    if (params->kind == SNP_SIGNER_VCEK && params->csp_id != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "csp_id applies to VLEKs only");
    if (params->csp_id != NULL) {
        size_t len = strlen(params->csp_id);
        if (len == 0 || len > 127)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "csp_id must be 1..127 characters, got %zu", len);
        for (size_t i = 0; i < len; i++)
            if (!isprint((unsigned char)params->csp_id[i]))
                return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                                   "csp_id must be printable ASCII (byte %zu)", i);
    }
    return VTPMCA_OK;
}

vtpmca_err snp_test_issue_cert(snp_test_root *root, const snp_test_cert_params *params,
                               EVP_PKEY **key, uint8_t **der, size_t *der_len, vtpmca_diag *diag)
{
    if (root == NULL || params == NULL || key == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "issue cert: missing argument");
    const product_facts *facts = facts_for(root->product);
    vtpmca_err err = check_cert_params(params, facts, diag);
    if (err != VTPMCA_OK)
        return err;

    time_t now = time(NULL);
    time_t not_before = params->not_before != 0 ? params->not_before : now - SECONDS_PER_DAY;
    time_t not_after =
        params->not_after != 0 ? params->not_after : add_years(now, VCEK_VALIDITY_YEARS);
    if (not_after <= not_before)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "not_after must be later than not_before");
    bool vlek = params->kind == SNP_SIGNER_VLEK;
    X509 *issuer = vlek ? root->asvk : root->ask;
    EVP_PKEY *issuer_key = vlek ? root->asvk_key : root->ask_key;

    EVP_PKEY *leaf_key = EVP_EC_gen("P-384");
    if (leaf_key == NULL)
        return openssl_fail(diag, "P-384 key generation");
    X509 *cert = X509_new();
    if (cert == NULL) {
        EVP_PKEY_free(leaf_key);
        return VTPMCA_ERR_NOMEM;
    }
    /* Serial 0, like AMD's VCEKs. */
    err = fill_cert_body(cert, 0, vlek ? "SEV-VLEK" : "SEV-VCEK", issuer, not_before, not_after,
                         leaf_key, diag);
    if (err == VTPMCA_OK)
        err = add_vcek_extensions(cert, facts, params, diag);
    if (err == VTPMCA_OK)
        err = sign_pss_sha384(cert, issuer_key, diag);
    unsigned char *out_der = NULL;
    int out_len = 0;
    if (err == VTPMCA_OK && (out_len = i2d_X509(cert, &out_der)) <= 0)
        err = openssl_fail(diag, "certificate DER encoding");
    X509_free(cert);
    if (err != VTPMCA_OK) {
        EVP_PKEY_free(leaf_key);
        return err;
    }
    /* Hand out malloc'd memory as the header promises (OPENSSL_malloc may differ). */
    uint8_t *copy = malloc((size_t)out_len);
    if (copy == NULL) {
        OPENSSL_free(out_der);
        EVP_PKEY_free(leaf_key);
        return VTPMCA_ERR_NOMEM;
    }
    memcpy(copy, out_der, (size_t)out_len);
    OPENSSL_free(out_der);
    *der = copy;
    *der_len = (size_t)out_len;
    *key = leaf_key;
    return VTPMCA_OK;
}

/* ---- roots ---- */

void snp_test_root_free(snp_test_root *root)
{
    if (root == NULL)
        return;
    EVP_PKEY_free(root->ark_key);
    EVP_PKEY_free(root->ask_key);
    EVP_PKEY_free(root->asvk_key);
    X509_free(root->ark);
    X509_free(root->ask);
    X509_free(root->asvk);
    free(root);
}

static vtpmca_err check_product(snp_product product, vtpmca_diag *diag)
{
    if (facts_for(product) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "product must be Milan, Genoa or Turin, got %d", (int)product);
    return VTPMCA_OK;
}

/* AMD's CA common names: ARK-<Product>, SEV-<Product>, SEV-VLEK-<Product>. */
static void ca_common_name(snp_product product, snp_test_ca which, char *out, size_t out_size)
{
    static const char *const prefixes[] = {"ARK-", "SEV-", "SEV-VLEK-"};
    snprintf(out, out_size, "%s%s", prefixes[which], snp_product_name(product));
}

vtpmca_err snp_test_root_new(snp_product product, unsigned rsa_bits, snp_test_root **out,
                             vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "test root: missing output");
    vtpmca_err err = check_product(product, diag);
    if (err != VTPMCA_OK)
        return err;
    if (rsa_bits != 2048 && rsa_bits != 3072 && rsa_bits != 4096)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "RSA size must be 2048, 3072 or 4096 bits, got %u", rsa_bits);
    snp_test_root *root = calloc(1, sizeof(*root));
    if (root == NULL)
        return VTPMCA_ERR_NOMEM;
    root->product = product;
    root->ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
    root->ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
    root->asvk_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
    if (root->ark_key == NULL || root->ask_key == NULL || root->asvk_key == NULL) {
        snp_test_root_free(root);
        return openssl_fail(diag, "RSA key generation");
    }
    long serial = facts_for(product)->serial_base;
    char cn[64];
    ca_common_name(product, SNP_TEST_CA_ARK, cn, sizeof(cn));
    err = make_ca_cert(product, cn, serial, "vcek", root->ark_key, NULL, NULL, &root->ark, diag);
    if (err == VTPMCA_OK) {
        ca_common_name(product, SNP_TEST_CA_ASK, cn, sizeof(cn));
        err = make_ca_cert(product, cn, serial + 0x1, "vcek", root->ask_key, root->ark,
                           root->ark_key, &root->ask, diag);
    }
    if (err == VTPMCA_OK) {
        ca_common_name(product, SNP_TEST_CA_ASVK, cn, sizeof(cn));
        err = make_ca_cert(product, cn, serial + 0x101, "vlek", root->asvk_key, root->ark,
                           root->ark_key, &root->asvk, diag);
    }
    if (err != VTPMCA_OK) {
        snp_test_root_free(root);
        return err;
    }
    *out = root;
    return VTPMCA_OK;
}

snp_product snp_test_root_product(const snp_test_root *root)
{
    return root != NULL ? root->product : SNP_PRODUCT_UNKNOWN;
}

static X509 *root_cert(const snp_test_root *root, snp_test_ca which)
{
    switch (which) {
    case SNP_TEST_CA_ARK:
        return root->ark;
    case SNP_TEST_CA_ASK:
        return root->ask;
    case SNP_TEST_CA_ASVK:
        return root->asvk;
    }
    return NULL;
}

vtpmca_err snp_test_root_get_cert_der(const snp_test_root *root, snp_test_ca which, uint8_t **der,
                                      size_t *der_len, vtpmca_diag *diag)
{
    if (root == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "get cert: missing argument");
    X509 *cert = root_cert(root, which);
    if (cert == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "unknown CA certificate %d", (int)which);
    int len = i2d_X509(cert, NULL);
    if (len <= 0)
        return openssl_fail(diag, "certificate DER encoding");
    uint8_t *buf = malloc((size_t)len);
    if (buf == NULL)
        return VTPMCA_ERR_NOMEM;
    unsigned char *cursor = buf;
    if (i2d_X509(cert, &cursor) != len) {
        free(buf);
        return openssl_fail(diag, "certificate DER encoding");
    }
    *der = buf;
    *der_len = (size_t)len;
    return VTPMCA_OK;
}

/* PEM of the given certificates, concatenated, as a malloc'd NUL-terminated string. */
static vtpmca_err certs_to_pem(X509 *const *certs, size_t count, char **pem, size_t *pem_len,
                               vtpmca_diag *diag)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return VTPMCA_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        if (!PEM_write_bio_X509(bio, certs[i])) {
            BIO_free(bio);
            return openssl_fail(diag, "PEM encoding");
        }
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    char *copy = len > 0 ? malloc((size_t)len + 1) : NULL;
    if (copy == NULL) {
        BIO_free(bio);
        return len > 0 ? VTPMCA_ERR_NOMEM : openssl_fail(diag, "PEM encoding");
    }
    memcpy(copy, data, (size_t)len);
    copy[len] = '\0';
    BIO_free(bio);
    *pem = copy;
    *pem_len = (size_t)len;
    return VTPMCA_OK;
}

vtpmca_err snp_test_root_chain_pem(const snp_test_root *root, snp_signer kind, char **pem,
                                   size_t *pem_len, vtpmca_diag *diag)
{
    if (root == NULL || pem == NULL || pem_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "chain pem: missing argument");
    if (kind != SNP_SIGNER_VCEK && kind != SNP_SIGNER_VLEK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "chain pem: kind must be VCEK or VLEK");
    X509 *const chain[] = {kind == SNP_SIGNER_VCEK ? root->ask : root->asvk, root->ark};
    return certs_to_pem(chain, 2, pem, pem_len, diag);
}

vtpmca_err snp_test_key_write_pem(EVP_PKEY *key, const char *path, vtpmca_diag *diag)
{
    if (key == NULL || path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "write key: missing argument");
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err;
    char *data = NULL;
    long len = 0;
    if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
        (len = BIO_get_mem_data(bio, &data)) <= 0)
        err = openssl_fail(diag, "private key PEM encoding");
    else
        err = vt_file_write_atomic(path, data, (size_t)len, 0600, diag);
    if (data != NULL && len > 0)
        OPENSSL_cleanse(data, (size_t)len);
    BIO_free(bio);
    return err;
}

vtpmca_err snp_test_key_read_pem(const char *path, EVP_PKEY **out, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "read key: missing argument");
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, PEM_FILE_MAX, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    if (key == NULL) {
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: not a PEM private key", path);
        vtpmca_diag_append_openssl(diag);
        return err;
    }
    *out = key;
    return VTPMCA_OK;
}

/* The files of a saved root, after the lower-case product name (AMD's layout for the
 * certificates). */
#define ARK_KEY_FILE "_ark.key.pem"
#define ASK_KEY_FILE "_ask.key.pem"
#define ASVK_KEY_FILE "_asvk.key.pem"
#define ARK_FILE "_ark.pem"
#define ASK_FILE "_ask.pem"
#define ASVK_ARK_FILE "_asvk_ark.pem"

/* <dir>/<product lower-case><suffix>, e.g. "/d/milan_ask.pem". */
static vtpmca_err product_path(const char *dir, snp_product product, const char *suffix, char *out,
                               size_t out_size, vtpmca_diag *diag)
{
    char lower[16];
    const char *name = snp_product_name(product);
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    int n = snprintf(out, out_size, "%s/%s%s", dir, lower, suffix);
    if (n < 0 || (size_t)n >= out_size)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "path too long: %s", dir);
    return VTPMCA_OK;
}

static vtpmca_err write_certs_pem(const char *path, X509 *const *certs, size_t count,
                                  vtpmca_diag *diag)
{
    char *pem = NULL;
    size_t len = 0;
    vtpmca_err err = certs_to_pem(certs, count, &pem, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    err = vt_file_write_atomic(path, pem, len, 0644, diag);
    free(pem);
    return err;
}

vtpmca_err snp_test_root_save(const snp_test_root *root, const char *dir, vtpmca_diag *diag)
{
    if (root == NULL || dir == NULL || dir[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "save test root: missing argument");
    /* The directory holds private keys: create it private. */
    vtpmca_err err = vt_mkdir_p(dir, 0700, diag);
    X509 *const ark[] = {root->ark};
    X509 *const ask[] = {root->ask};
    X509 *const asvk_ark[] = {root->asvk, root->ark};
    const struct {
        const char *suffix;
        EVP_PKEY *key;      /* a key file, or */
        X509 *const *certs; /* a certificate file */
        size_t count;
    } files[] = {
        {ARK_KEY_FILE, root->ark_key, NULL, 0},
        {ASK_KEY_FILE, root->ask_key, NULL, 0},
        {ASVK_KEY_FILE, root->asvk_key, NULL, 0},
        {ARK_FILE, NULL, ark, 1},
        {ASK_FILE, NULL, ask, 1},
        {ASVK_ARK_FILE, NULL, asvk_ark, 2},
    };
    char path[4096];
    for (size_t i = 0; err == VTPMCA_OK && i < sizeof(files) / sizeof(files[0]); i++) {
        err = product_path(dir, root->product, files[i].suffix, path, sizeof(path), diag);
        if (err != VTPMCA_OK)
            break;
        err = files[i].key != NULL ? snp_test_key_write_pem(files[i].key, path, diag)
                                   : write_certs_pem(path, files[i].certs, files[i].count, diag);
    }
    return err;
}

bool snp_test_root_files_exist(const char *dir, snp_product product, char *found, size_t found_size)
{
    static const char *const suffixes[] = {ARK_FILE,     ASK_FILE,     ASVK_ARK_FILE,
                                           ARK_KEY_FILE, ASK_KEY_FILE, ASVK_KEY_FILE};
    char path[4096];
    if (dir == NULL || facts_for(product) == NULL)
        return false;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (product_path(dir, product, suffixes[i], path, sizeof(path), NULL) == VTPMCA_OK &&
            access(path, F_OK) == 0) {
            if (found != NULL && found_size > 0)
                snprintf(found, found_size, "%s", path);
            return true;
        }
    }
    return false;
}

/* Reads `count` PEM certificates from a file, refusing fewer or more. */
static vtpmca_err read_certs_pem(const char *path, X509 **certs, size_t count, vtpmca_diag *diag)
{
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, PEM_FILE_MAX, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    size_t got = 0;
    if (bio == NULL) {
        err = VTPMCA_ERR_NOMEM;
    } else {
        for (; got < count; got++) {
            if ((certs[got] = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL)
                break;
        }
        X509 *extra = got == count ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        if (got != count || extra != NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected %zu PEM certificate(s)", path,
                              count);
        X509_free(extra);
        ERR_clear_error(); /* the read that ends the loop leaves a "no start line" error */
    }
    BIO_free(bio);
    free(data);
    if (err != VTPMCA_OK) {
        for (size_t i = 0; i < got; i++) {
            X509_free(certs[i]);
            certs[i] = NULL;
        }
    }
    return err;
}

/* Checks a loaded CA certificate: the product's common name, its private key, and a valid
 * signature by the ARK (self-signature for the ARK). */
static vtpmca_err check_loaded_ca(const snp_test_root *root, snp_test_ca which, vtpmca_diag *diag)
{
    static const char *const labels[] = {"ARK", "ASK", "ASVK"};
    X509 *cert = root_cert(root, which);
    EVP_PKEY *keys[] = {root->ark_key, root->ask_key, root->asvk_key};
    char expected_cn[64], cn[64] = "";
    ca_common_name(root->product, which, expected_cn, sizeof(expected_cn));
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    if (strcmp(cn, expected_cn) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s common name is \"%s\", expected \"%s\"",
                           labels[which], cn, expected_cn);
    if (X509_check_private_key(cert, keys[which]) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s private key does not match its certificate",
                           labels[which]);
    }
    if (X509_verify(cert, X509_get0_pubkey(root->ark)) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not signed by the ARK", labels[which]);
    }
    return VTPMCA_OK;
}

vtpmca_err snp_test_root_load(const char *dir, snp_product product, snp_test_root **out,
                              vtpmca_diag *diag)
{
    if (dir == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "load test root: missing argument");
    vtpmca_err err = check_product(product, diag);
    if (err != VTPMCA_OK)
        return err;
    snp_test_root *root = calloc(1, sizeof(*root));
    if (root == NULL)
        return VTPMCA_ERR_NOMEM;
    root->product = product;
    char path[4096];
    X509 *asvk_ark[2] = {NULL, NULL};
    const struct {
        const char *suffix;
        X509 **certs; /* a certificate file, or */
        size_t count;
        EVP_PKEY **key; /* a key file */
    } files[] = {
        {ARK_FILE, &root->ark, 1, NULL},         {ASK_FILE, &root->ask, 1, NULL},
        {ASVK_ARK_FILE, asvk_ark, 2, NULL},      {ARK_KEY_FILE, NULL, 0, &root->ark_key},
        {ASK_KEY_FILE, NULL, 0, &root->ask_key}, {ASVK_KEY_FILE, NULL, 0, &root->asvk_key},
    };
    for (size_t i = 0; err == VTPMCA_OK && i < sizeof(files) / sizeof(files[0]); i++) {
        err = product_path(dir, product, files[i].suffix, path, sizeof(path), diag);
        if (err == VTPMCA_OK)
            err = files[i].key != NULL ? snp_test_key_read_pem(path, files[i].key, diag)
                                       : read_certs_pem(path, files[i].certs, files[i].count, diag);
        if (err == VTPMCA_OK && files[i].certs == asvk_ark) {
            /* AMD's pair file: the ASVK, then the same ARK as <product>_ark.pem. */
            root->asvk = asvk_ark[0];
            if (X509_cmp(asvk_ark[1], root->ark) != 0)
                err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: second certificate is not the ARK",
                                  path);
            X509_free(asvk_ark[1]);
        }
    }
    for (int which = SNP_TEST_CA_ARK; err == VTPMCA_OK && which <= SNP_TEST_CA_ASVK; which++)
        err = check_loaded_ca(root, (snp_test_ca)which, diag);
    if (err != VTPMCA_OK) {
        snp_test_root_free(root);
        return err;
    }
    *out = root;
    return VTPMCA_OK;
}

/* ---- reports ---- */

vtpmca_err snp_test_report_defaults(snp_report *report, snp_product product, uint32_t version,
                                    const uint8_t chip_id[64], const snp_tcb *tcb)
{
    const product_facts *facts = facts_for(product);
    if (report == NULL || chip_id == NULL || tcb == NULL || facts == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (version != 2 && version != 3 && version != 5)
        return VTPMCA_ERR_INVALID_ARG;
    uint64_t tcb_raw = 0;
    vtpmca_err err = snp_tcb_encode(tcb, product, &tcb_raw);
    if (err != VTPMCA_OK)
        return err;
    memset(report, 0, sizeof(*report));
    report->version = version;
    report->policy = SNP_POLICY_RESERVED_ONE | SNP_POLICY_SMT;
    report->vmpl = 0;
    report->signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384;
    report->current_tcb = tcb_raw;
    report->reported_tcb = tcb_raw;
    report->committed_tcb = tcb_raw;
    report->launch_tcb = tcb_raw;
    report->platform_info = SNP_PLATFORM_SMT_EN;
    report->key_info = (uint32_t)SNP_SIGNER_VCEK << SNP_KEY_INFO_SIGNER_SHIFT;
    if (version >= 3) {
        report->cpuid_family = facts->cpuid_family;
        report->cpuid_model = facts->cpuid_model;
        report->cpuid_stepping = facts->cpuid_stepping;
    }
    memcpy(report->chip_id, chip_id, sizeof(report->chip_id));
    /* A plausible SEV firmware version (1.55, build 0), current == committed. */
    report->current_major = report->committed_major = 1;
    report->current_minor = report->committed_minor = 55;
    return VTPMCA_OK;
}

static vtpmca_err check_p384_key(EVP_PKEY *key, vtpmca_diag *diag)
{
    char group[32] = "";
    size_t group_len = 0;
    if (!EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1 ||
        strcmp(group, SN_secp384r1) != 0) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "report signing key must be EC P-384 (got %s%s%s)",
                           EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
                           group[0] ? " " : "", group);
    }
    return VTPMCA_OK;
}

vtpmca_err snp_test_report_resign(uint8_t report[SNP_REPORT_SIZE], EVP_PKEY *key, vtpmca_diag *diag)
{
    if (report == NULL || key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sign report: missing argument");
    vtpmca_err err = check_p384_key(key, diag);
    if (err != VTPMCA_OK)
        return err;
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    unsigned char der_sig[128]; /* a P-384 ECDSA DER signature is at most 104 bytes */
    size_t der_len = sizeof(der_sig);
    ECDSA_SIG *sig = NULL;
    const unsigned char *cursor = der_sig;
    if (EVP_DigestSignInit(md_ctx, NULL, EVP_sha384(), NULL, key) != 1 ||
        EVP_DigestSign(md_ctx, der_sig, &der_len, report, SNP_REPORT_SIGNED_SIZE) != 1 ||
        (sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_len)) == NULL) {
        err = openssl_fail(diag, "ECDSA P-384 report signature");
    } else {
        uint8_t r[SIG_COMPONENT_LEN], s[SIG_COMPONENT_LEN];
        if (BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), r, sizeof(r)) != (int)sizeof(r) ||
            BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), s, sizeof(s)) != (int)sizeof(s)) {
            err = openssl_fail(diag, "writing the report signature");
        } else {
            memcpy(report + OFF_SIG_R, r, sizeof(r));
            memcpy(report + OFF_SIG_S, s, sizeof(s));
        }
    }
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md_ctx);
    return err;
}

vtpmca_err snp_test_report_sign(snp_report *report, EVP_PKEY *key, uint8_t out[SNP_REPORT_SIZE],
                                vtpmca_diag *diag)
{
    if (report == NULL || key == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "sign report: missing argument");
    uint8_t wire[SNP_REPORT_SIZE];
    vtpmca_err err = snp_report_encode(report, wire);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "sign report: cannot encode the fields");
    err = snp_test_report_resign(wire, key, diag);
    if (err != VTPMCA_OK)
        return err;
    memcpy(report->sig_r, wire + OFF_SIG_R, sizeof(report->sig_r));
    memcpy(report->sig_s, wire + OFF_SIG_S, sizeof(report->sig_s));
    memcpy(report->raw, wire, SNP_REPORT_SIZE);
    memcpy(out, wire, SNP_REPORT_SIZE);
    return VTPMCA_OK;
}
