#include "cli_x509.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "vtpmca/encoding.h"

/* What cli_load_cert returned: PEM text as read, or DER (not NUL-terminated). */
static bool is_pem(const uint8_t *data, size_t len)
{
    static const char tag[] = "-----BEGIN";
    for (size_t i = 0; i + sizeof(tag) - 1 <= len; i++) {
        if (memcmp(data + i, tag, sizeof(tag) - 1) == 0)
            return true;
    }
    return false;
}

vtpmca_err cli_x509_load(const char *path, X509 **cert, uint8_t **der, size_t *der_len,
                         vtpmca_diag *diag)
{
    if (path == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certificate: missing argument");
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = cli_load_cert(path, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (is_pem(data, len)) {
        /* The PEM body as it is: re-encoding a parsed certificate could change its bytes. */
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        char *name = NULL, *header = NULL;
        unsigned char *body = NULL;
        long body_len = 0;
        bool ok = bio != NULL && PEM_read_bio(bio, &name, &header, &body, &body_len) == 1;
        bool is_cert = ok && strcmp(name, PEM_STRING_X509) == 0;
        free(data);
        data = NULL;
        if (is_cert) {
            data = malloc((size_t)body_len);
            if (data != NULL)
                memcpy(data, body, (size_t)body_len);
            len = (size_t)body_len;
        }
        if (!is_cert)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: the first PEM block is %s%s%s", path,
                              ok ? "a " : "not readable", ok ? name : "",
                              ok ? ", not a CERTIFICATE" : "");
        else if (data == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(body);
        BIO_free(bio);
        ERR_clear_error();
        if (err != VTPMCA_OK) {
            free(data);
            return err;
        }
    }
    const unsigned char *p = data;
    X509 *parsed = d2i_X509(NULL, &p, (long)len);
    if (parsed == NULL || p != data + len) {
        X509_free(parsed);
        free(data);
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: not an X.509 certificate%s", path,
                           parsed != NULL ? " (trailing bytes after it)" : "");
    }
    if (cert != NULL)
        *cert = parsed;
    else
        X509_free(parsed);
    *der = data;
    *der_len = len;
    return VTPMCA_OK;
}

void cli_x509_name(const X509_NAME *name, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    buf[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    /* The flags of c509_decode_info, so `cert show` and `c509 decode` print names alike. */
    if (bio != NULL && name != NULL &&
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        int n = BIO_read(bio, buf, (int)size - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

void cli_x509_key_name(const EVP_PKEY *key, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return;
    snprintf(buf, size, "unknown");
    if (key == NULL)
        return;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        snprintf(buf, size, "RSA %d", EVP_PKEY_get_bits(key));
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1)
            snprintf(group, sizeof(group), "?");
        const char *nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        snprintf(buf, size, "EC %s", nist != NULL ? nist : group);
    } else if (EVP_PKEY_get0_type_name(key) != NULL) {
        snprintf(buf, size, "%s", EVP_PKEY_get0_type_name(key));
    }
}

typedef struct {
    char subject[256];
    char issuer[256];
    char serial[2 * 64 + 2];
    char not_before[32];
    char not_after[32];
    char key[64];
    char signature[64];
    char key_id[2 * 64 + 1]; /* "" without an SKI */
    char sha256[2 * 32 + 1];
} cert_fields;

void cli_x509_time(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;
    if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
        cli_format_time(timegm(&tm), buf, size);
    else
        snprintf(buf, size, "invalid");
}

static void get_fields(const X509 *cert, cert_fields *f)
{
    memset(f, 0, sizeof(*f));
    cli_x509_name(X509_get_subject_name(cert), f->subject, sizeof(f->subject));
    cli_x509_name(X509_get_issuer_name(cert), f->issuer, sizeof(f->issuer));
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = serial != NULL ? BN_bn2hex(serial) : NULL;
    snprintf(f->serial, sizeof(f->serial), "%s", hex != NULL ? hex : "?");
    for (char *c = f->serial; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    OPENSSL_free(hex);
    BN_free(serial);
    cli_x509_time(X509_get0_notBefore(cert), f->not_before, sizeof(f->not_before));
    cli_x509_time(X509_get0_notAfter(cert), f->not_after, sizeof(f->not_after));
    cli_x509_key_name(X509_get0_pubkey(cert), f->key, sizeof(f->key));
    const char *sig = OBJ_nid2ln(X509_get_signature_nid(cert));
    snprintf(f->signature, sizeof(f->signature), "%s", sig != NULL ? sig : "unknown");
    /* OpenSSL caches the decoded extensions in the object, hence the non-const argument. */
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id((X509 *)cert);
    if (ski != NULL && ASN1_STRING_length(ski) <= 64)
        vt_hex_encode(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), f->key_id,
                      sizeof(f->key_id));
    uint8_t md[32];
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1 && md_len == sizeof(md))
        vt_hex_encode(md, sizeof(md), f->sha256, sizeof(f->sha256));
    ERR_clear_error();
}

json_t *cli_x509_json(const X509 *cert)
{
    if (cert == NULL)
        return NULL;
    cert_fields f;
    get_fields(cert, &f);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s}", "subject", f.subject,
                     "issuer", f.issuer, "serial", f.serial, "not_before", f.not_before,
                     "not_after", f.not_after, "public_key", f.key, "signature_alg", f.signature,
                     "key_id", f.key_id[0] != '\0' ? f.key_id : NULL, "sha256", f.sha256);
}

void cli_x509_print(const X509 *cert, const char *indent)
{
    if (cert == NULL)
        return;
    cert_fields f;
    get_fields(cert, &f);
    const char *in = indent != NULL ? indent : "";
    printf("%ssubject:     %s\n", in, f.subject);
    printf("%sissuer:      %s\n", in, f.issuer);
    printf("%sserial:      %s\n", in, f.serial);
    printf("%svalidity:    %s to %s\n", in, f.not_before, f.not_after);
    printf("%spublic key:  %s\n", in, f.key);
    printf("%ssignature:   %s\n", in, f.signature);
    if (f.key_id[0] != '\0')
        printf("%skey id:      %s\n", in, f.key_id);
    printf("%ssha256:      %s\n", in, f.sha256);
}
