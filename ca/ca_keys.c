/* The CA hierarchy: creation (`ca init`), import, loading, signing with the issuing key, and
 * the exports verifiers need (chain, Keylime cert store). Layout and choices: docs/ca.md. */
#include "vtpmca/ca_keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "vtpmca/fileio.h"
#include "vtpmca/log.h"
#include "vtpmca/pem_key.h"

/* Longest path built from a CA directory and a file name. */
#define CA_PATH_MAX 4096

struct ca_ctx {
    X509 *root;
    X509 *issuing;
    EVP_PKEY *issuing_key;
    const EVP_MD *md;
    uint8_t key_id[CA_KEY_ID_LEN];
    size_t key_id_len;
    /* Encodings computed once at open, so serving them never touches shared OpenSSL objects. */
    uint8_t *der[2];
    size_t der_len[2];
    char *pem[2];
    size_t pem_len[2];
};

typedef struct {
    const char *name;
    int ec_nid; /* NID_undef for RSA */
    int rsa_bits;
} key_alg_info;

static const key_alg_info key_algs[] = {
    [CA_KEY_ECDSA_P384] = {"ecdsa-p384", NID_secp384r1, 0},
    [CA_KEY_ECDSA_P256] = {"ecdsa-p256", NID_X9_62_prime256v1, 0},
    [CA_KEY_RSA_3072] = {"rsa-3072", NID_undef, 3072},
    [CA_KEY_RSA_2048] = {"rsa-2048", NID_undef, 2048},
};
#define KEY_ALG_COUNT (sizeof(key_algs) / sizeof(key_algs[0]))

/* Signature algorithms a verifier such as Keylime accepts on TPM certificates: ECDSA and RSA
 * PKCS#1 v1.5. RSA-PSS and EdDSA are deliberately absent. */
static const int accepted_sig_nids[] = {
    NID_ecdsa_with_SHA256,       NID_ecdsa_with_SHA384,       NID_ecdsa_with_SHA512,
    NID_sha256WithRSAEncryption, NID_sha384WithRSAEncryption, NID_sha512WithRSAEncryption,
};

static const char *const ca_files[] = {CA_ROOT_CERT_FILE, CA_ROOT_KEY_FILE, CA_ISSUING_CERT_FILE,
                                       CA_ISSUING_KEY_FILE};

static vtpmca_err openssl_fail(vtpmca_diag *diag, vtpmca_err err, const char *what)
{
    vtpmca_fail(diag, err, "ca: %s", what);
    vtpmca_diag_append_openssl(diag);
    ERR_clear_error();
    return err;
}

static vtpmca_err nomem(vtpmca_diag *diag)
{
    return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "ca: out of memory");
}

void ca_init_options_default(ca_init_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof(*opts));
    opts->root_alg = CA_KEY_ECDSA_P384;
    opts->issuing_alg = CA_KEY_ECDSA_P384;
    opts->organization = "vtpmca";
    opts->root_cn = "vtpmca EK Root CA";
    opts->issuing_cn = "vtpmca EK Issuing CA";
    opts->root_validity_days = 7305;
    opts->issuing_validity_days = 3653;
}

vtpmca_err ca_key_alg_parse(const char *text, ca_key_alg *out, vtpmca_diag *diag)
{
    if (text == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: key algorithm missing");
    for (size_t i = 0; i < KEY_ALG_COUNT; i++) {
        if (strcmp(text, key_algs[i].name) == 0) {
            *out = (ca_key_alg)i;
            return VTPMCA_OK;
        }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                       "ca: unknown key algorithm (use ecdsa-p384, ecdsa-p256, rsa-3072 or "
                       "rsa-2048)");
}

const char *ca_key_alg_name(ca_key_alg alg)
{
    return (size_t)alg < KEY_ALG_COUNT ? key_algs[alg].name : "unknown";
}

/* ---- keys ---- */

/* The curve of an EC key as a NID, NID_undef for other keys. */
static int ec_curve_nid(const EVP_PKEY *key)
{
    char group[64];
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1)
        return NID_undef;
    int nid = OBJ_txt2nid(group);
    return nid != NID_undef ? nid : EC_curve_nist2nid(group);
}

/* Checks that a CA key is one we can sign with and picks its digest. */
static vtpmca_err check_ca_key(const EVP_PKEY *key, const char *what, const EVP_MD **md,
                               vtpmca_diag *diag)
{
    if (key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "ca: the %s key cannot be decoded", what);
    int base = EVP_PKEY_get_base_id(key);
    if (base == EVP_PKEY_EC) {
        int nid = ec_curve_nid(key);
        if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1) {
            if (md != NULL)
                *md = nid == NID_secp384r1 ? EVP_sha384() : EVP_sha256();
            return VTPMCA_OK;
        }
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "ca: the %s key is on an unsupported curve (use P-256 or P-384)", what);
    }
    if (base == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits < 2048 || bits > 8192)
            return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                               "ca: the %s key has %d bits (RSA keys must have 2048 to 8192)", what,
                               bits);
        if (md != NULL)
            *md = EVP_sha256();
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                       "ca: the %s key must be EC P-256/P-384 or RSA (PKCS#1 v1.5); RSA-PSS and "
                       "EdDSA keys are refused because verifiers reject their signatures",
                       what);
}

static vtpmca_err generate_key(ca_key_alg alg, EVP_PKEY **out, vtpmca_diag *diag)
{
    const key_alg_info *info = &key_algs[alg];
    *out = info->ec_nid != NID_undef ? EVP_EC_gen(OBJ_nid2sn(info->ec_nid))
                                     : EVP_RSA_gen((unsigned int)info->rsa_bits);
    if (*out == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "key generation failed");
    return VTPMCA_OK;
}

static vtpmca_err path_join(const char *dir, const char *name, char *out, size_t size,
                            vtpmca_diag *diag)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: path too long: %s/%s", dir, name);
    return VTPMCA_OK;
}

/* Refuses key files that group or others could read or write: a leaked issuing key lets
 * anyone mint EK certificates that every verifier trusting us accepts. */
static vtpmca_err check_key_file_mode(const char *path, vtpmca_diag *diag)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "ca: cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "ca: %s is not a regular file", path);
    if ((sb.st_mode & 077) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO,
                           "ca: key file %s has mode %04o; it must not be accessible to group or "
                           "others (chmod 600)",
                           path, (unsigned)(sb.st_mode & 07777));
    return VTPMCA_OK;
}

/* Reads exactly one PEM certificate. */
static vtpmca_err read_cert(const char *path, X509 **out, vtpmca_diag *diag)
{
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    vtpmca_err err = vt_file_read(path, CA_PEM_FILE_MAX, &pem, &pem_len, diag);
    if (err != VTPMCA_OK)
        return err;
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, vt_pem_no_passphrase, NULL) : NULL;
    X509 *extra = cert != NULL ? PEM_read_bio_X509(bio, NULL, vt_pem_no_passphrase, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    ERR_clear_error(); /* the second read always ends with "no start line" */
    if (cert == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ca: %s holds no PEM certificate", path);
    if (extra != NULL) {
        X509_free(extra);
        X509_free(cert);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "ca: %s holds more than one certificate; give one per file", path);
    }
    *out = cert;
    return VTPMCA_OK;
}

static vtpmca_err key_to_pem(const EVP_PKEY *key, BIO **out, vtpmca_diag *diag)
{
    /* Secure-heap BIO: the PEM text is wiped when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        return nomem(diag);
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot encode a private key");
    }
    *out = bio;
    return VTPMCA_OK;
}

static vtpmca_err cert_to_pem(const X509 *cert, char **pem, size_t *pem_len, vtpmca_diag *diag)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len = 0;
    if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1 ||
        (len = BIO_get_mem_data(bio, &data)) <= 0) {
        BIO_free(bio);
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode a certificate as PEM");
    }
    char *copy = malloc((size_t)len + 1);
    if (copy == NULL) {
        BIO_free(bio);
        return nomem(diag);
    }
    memcpy(copy, data, (size_t)len);
    copy[len] = '\0';
    BIO_free(bio);
    *pem = copy;
    *pem_len = (size_t)len;
    return VTPMCA_OK;
}

static vtpmca_err cert_to_der(const X509 *cert, uint8_t **der, size_t *der_len, vtpmca_diag *diag)
{
    unsigned char *buf = NULL;
    int len = i2d_X509(cert, &buf);
    if (len <= 0)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode a certificate");
    uint8_t *copy = malloc((size_t)len);
    if (copy == NULL) {
        OPENSSL_free(buf);
        return nomem(diag);
    }
    memcpy(copy, buf, (size_t)len);
    OPENSSL_free(buf);
    *der = copy;
    *der_len = (size_t)len;
    return VTPMCA_OK;
}

/* ---- certificate checks ---- */

static vtpmca_err check_sig_alg(const X509 *cert, const char *what, vtpmca_diag *diag)
{
    int nid = X509_get_signature_nid(cert);
    for (size_t i = 0; i < sizeof(accepted_sig_nids) / sizeof(accepted_sig_nids[0]); i++) {
        if (nid == accepted_sig_nids[i])
            return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                       "ca: the %s certificate is signed with %s; only ECDSA and RSA PKCS#1 v1.5 "
                       "with SHA-256/384/512 are accepted",
                       what, nid != NID_undef ? OBJ_nid2ln(nid) : "an unknown algorithm");
}

/* A certificate that may sign certificates (and, for the issuing CA, CRLs). */
static vtpmca_err check_ca_cert(X509 *cert, const char *what, bool signs_crls, vtpmca_diag *diag)
{
    uint32_t flags = X509_get_extension_flags(cert);
    if ((flags & EXFLAG_INVALID) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ca: the %s certificate has invalid extensions",
                           what);
    if ((flags & EXFLAG_CA) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the %s certificate is not a CA (basicConstraints CA:TRUE missing)",
                           what);
    uint32_t usage = X509_get_key_usage(cert);
    if ((flags & EXFLAG_KUSAGE) != 0 && (usage & KU_KEY_CERT_SIGN) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the %s certificate's keyUsage lacks keyCertSign", what);
    if (signs_crls && (flags & EXFLAG_KUSAGE) != 0 && (usage & KU_CRL_SIGN) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the %s certificate's keyUsage lacks cRLSign", what);
    vtpmca_err err = check_sig_alg(cert, what, diag);
    if (err != VTPMCA_OK)
        return err;
    return check_ca_key(X509_get0_pubkey(cert), what, NULL, diag);
}

/* Everything ca_import and ca_open require of a hierarchy. root_key may be NULL. */
static vtpmca_err check_hierarchy(X509 *root, EVP_PKEY *root_key, X509 *issuing,
                                  EVP_PKEY *issuing_key, vtpmca_diag *diag)
{
    vtpmca_err err = check_ca_cert(root, "root", false, diag);
    if (err == VTPMCA_OK)
        err = check_ca_cert(issuing, "issuing CA", true, diag);
    if (err != VTPMCA_OK)
        return err;
    if (X509_self_signed(root, 1) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the root certificate is not self-signed (or its signature is bad)");
    }
    if (X509_check_issued(root, issuing) != X509_V_OK ||
        X509_verify(issuing, X509_get0_pubkey(root)) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the issuing CA certificate is not signed by the root");
    }
    err = check_ca_key(issuing_key, "issuing CA", NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    if (X509_check_private_key(issuing, issuing_key) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the issuing CA key does not match the issuing CA certificate");
    }
    if (root_key != NULL && X509_check_private_key(root, root_key) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "ca: the root key does not match the root certificate");
    }
    return VTPMCA_OK;
}

/* ---- building the CA certificates ---- */

vtpmca_err ca_new_serial(uint8_t serial[CA_SERIAL_LEN], vtpmca_diag *diag)
{
    if (serial == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: serial buffer missing");
    if (RAND_bytes(serial, CA_SERIAL_LEN) != 1)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "random serial generation failed");
    serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
    return VTPMCA_OK;
}

vtpmca_err ca_set_new_serial(X509 *cert, uint8_t serial_out[CA_SERIAL_LEN], vtpmca_diag *diag)
{
    if (cert == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: certificate missing");
    uint8_t serial[CA_SERIAL_LEN];
    vtpmca_err err = ca_new_serial(serial, diag);
    if (err != VTPMCA_OK)
        return err;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    ASN1_INTEGER *value = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = value != NULL && X509_set_serialNumber(cert, value) == 1;
    ASN1_INTEGER_free(value);
    BN_free(bn);
    if (!ok)
        return openssl_fail(diag, VTPMCA_ERR_NOMEM, "cannot set a serial");
    if (serial_out != NULL)
        memcpy(serial_out, serial, sizeof(serial));
    return VTPMCA_OK;
}

static vtpmca_err check_name_part(const char *what, const char *text, bool optional,
                                  vtpmca_diag *diag)
{
    if (text == NULL && optional)
        return VTPMCA_OK;
    size_t len = text != NULL ? strlen(text) : 0;
    if (len == 0 || len > CA_NAME_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: %s must be 1 to %d bytes", what,
                           CA_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "ca: %s holds a control character at offset %zu", what, i);
    }
    return VTPMCA_OK;
}

static X509_NAME *make_ca_name(const char *organization, const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    if (name == NULL)
        return NULL;
    /* UTF8String, as RFC 5280 4.1.2.6 asks of new certificates. */
    if ((organization != NULL &&
         X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                    (const unsigned char *)organization, -1, -1, 0) != 1) ||
        X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                   -1, -1, 0) != 1) {
        X509_NAME_free(name);
        return NULL;
    }
    return name;
}

static vtpmca_err add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value,
                          vtpmca_diag *diag)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? VTPMCA_OK : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot add an extension");
}

static vtpmca_err set_validity(X509 *cert, time_t now, uint32_t days, vtpmca_diag *diag)
{
    /* ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after, as RFC 5280 asks. */
    if (X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, &now) == NULL)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot set the validity");
    return VTPMCA_OK;
}

/* Builds and signs a CA certificate. issuer == NULL makes a self-signed root. */
static vtpmca_err make_ca_cert(EVP_PKEY *subject_key, const char *organization, const char *cn,
                               uint32_t days, const char *path_len, X509 *issuer,
                               EVP_PKEY *issuer_key, X509 **out, vtpmca_diag *diag)
{
    const EVP_MD *md = NULL;
    vtpmca_err err = check_ca_key(issuer_key, "signing", &md, diag);
    if (err != VTPMCA_OK)
        return err;
    X509 *cert = X509_new();
    X509_NAME *name = make_ca_name(organization, cn);
    if (cert == NULL || name == NULL) {
        X509_free(cert);
        X509_NAME_free(name);
        return nomem(diag);
    }
    time_t now = time(NULL);
    if (X509_set_version(cert, X509_VERSION_3) != 1 || X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
        X509_set_pubkey(cert, subject_key) != 1)
        err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot fill a CA certificate");
    X509_NAME_free(name);
    if (err == VTPMCA_OK)
        err = ca_set_new_serial(cert, NULL, diag);
    if (err == VTPMCA_OK)
        err = set_validity(cert, now, days, diag);

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    if (err == VTPMCA_OK)
        err = add_ext(cert, &ctx, NID_basic_constraints, path_len, diag);
    if (err == VTPMCA_OK)
        err = add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", diag);
    if (err == VTPMCA_OK)
        err = add_ext(cert, &ctx, NID_subject_key_identifier, "hash", diag);
    if (err == VTPMCA_OK && issuer != NULL)
        err = add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always", diag);
    if (err == VTPMCA_OK && X509_sign(cert, issuer_key, md) <= 0)
        err = openssl_fail(diag, VTPMCA_ERR_CRYPTO, "cannot sign a CA certificate");
    if (err != VTPMCA_OK) {
        X509_free(cert);
        return err;
    }
    *out = cert;
    return VTPMCA_OK;
}

/* ---- writing a CA directory ---- */

static vtpmca_err check_no_ca_files(const char *dir, vtpmca_diag *diag)
{
    for (size_t i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++) {
        char path[CA_PATH_MAX];
        vtpmca_err err = path_join(dir, ca_files[i], path, sizeof(path), diag);
        if (err != VTPMCA_OK)
            return err;
        if (access(path, F_OK) == 0 || errno != ENOENT)
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "ca: %s exists already; refusing to overwrite a CA", path);
    }
    return VTPMCA_OK;
}

static vtpmca_err write_key_file(const char *dir, const char *file, const EVP_PKEY *key,
                                 vtpmca_diag *diag)
{
    char path[CA_PATH_MAX];
    vtpmca_err err = path_join(dir, file, path, sizeof(path), diag);
    BIO *bio = NULL;
    if (err == VTPMCA_OK)
        err = key_to_pem(key, &bio, diag);
    if (err != VTPMCA_OK)
        return err;
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    err = pem_len > 0 ? vt_file_write_atomic(path, pem, (size_t)pem_len, 0600, diag)
                      : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "empty key encoding");
    BIO_free(bio);
    return err;
}

static vtpmca_err write_cert_file(const char *dir, const char *file, const X509 *cert,
                                  vtpmca_diag *diag)
{
    char path[CA_PATH_MAX];
    char *pem = NULL;
    size_t pem_len = 0;
    vtpmca_err err = path_join(dir, file, path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cert_to_pem(cert, &pem, &pem_len, diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(path, pem, pem_len, 0644, diag);
    free(pem);
    return err;
}

/* Writes a checked hierarchy; on failure removes what it wrote, so a retry starts clean. */
static vtpmca_err write_ca_dir(const char *dir, X509 *root, EVP_PKEY *root_key, X509 *issuing,
                               EVP_PKEY *issuing_key, vtpmca_diag *diag)
{
    vtpmca_err err = vt_mkdir_p(dir, 0700, diag);
    if (err != VTPMCA_OK)
        return err;
    /* Keys first: certificates without keys would look like a usable CA. */
    err = write_key_file(dir, CA_ISSUING_KEY_FILE, issuing_key, diag);
    if (err == VTPMCA_OK && root_key != NULL)
        err = write_key_file(dir, CA_ROOT_KEY_FILE, root_key, diag);
    if (err == VTPMCA_OK)
        err = write_cert_file(dir, CA_ROOT_CERT_FILE, root, diag);
    if (err == VTPMCA_OK)
        err = write_cert_file(dir, CA_ISSUING_CERT_FILE, issuing, diag);
    if (err != VTPMCA_OK) {
        for (size_t i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++) {
            char path[CA_PATH_MAX];
            if (path_join(dir, ca_files[i], path, sizeof(path), NULL) == VTPMCA_OK)
                unlink(path);
        }
    }
    return err;
}

vtpmca_err ca_init(const char *dir, const ca_init_options *opts, vtpmca_diag *diag)
{
    if (dir == NULL || dir[0] == '\0' || opts == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca init: missing argument");
    if ((size_t)opts->root_alg >= KEY_ALG_COUNT || (size_t)opts->issuing_alg >= KEY_ALG_COUNT)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca init: unknown key algorithm");
    if (opts->root_alg == CA_KEY_RSA_2048)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ca init: the root key must be ecdsa-p384, ecdsa-p256 or rsa-3072");
    if (opts->root_validity_days == 0 || opts->issuing_validity_days == 0 ||
        opts->issuing_validity_days > opts->root_validity_days || opts->root_validity_days > 36525)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "ca init: validity must be 1 to 36525 days, the issuing CA's at most "
                           "the root's");
    vtpmca_err err = check_name_part("organization", opts->organization, true, diag);
    if (err == VTPMCA_OK)
        err = check_name_part("root CN", opts->root_cn, false, diag);
    if (err == VTPMCA_OK)
        err = check_name_part("issuing CA CN", opts->issuing_cn, false, diag);
    if (err == VTPMCA_OK && strcmp(opts->root_cn, opts->issuing_cn) == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                          "ca init: the root and issuing CA need different names");
    if (err == VTPMCA_OK)
        err = check_no_ca_files(dir, diag);
    if (err != VTPMCA_OK)
        return err;

    EVP_PKEY *root_key = NULL, *issuing_key = NULL;
    X509 *root = NULL, *issuing = NULL;
    err = generate_key(opts->root_alg, &root_key, diag);
    if (err == VTPMCA_OK)
        err = generate_key(opts->issuing_alg, &issuing_key, diag);
    if (err == VTPMCA_OK)
        err = make_ca_cert(root_key, opts->organization, opts->root_cn, opts->root_validity_days,
                           "critical,CA:TRUE", NULL, root_key, &root, diag);
    if (err == VTPMCA_OK)
        err = make_ca_cert(issuing_key, opts->organization, opts->issuing_cn,
                           opts->issuing_validity_days, "critical,CA:TRUE,pathlen:0", root,
                           root_key, &issuing, diag);
    if (err == VTPMCA_OK)
        err = check_hierarchy(root, root_key, issuing, issuing_key, diag);
    if (err == VTPMCA_OK)
        err = write_ca_dir(dir, root, root_key, issuing, issuing_key, diag);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "ca.init", "dir", dir, "root_alg",
                   key_algs[opts->root_alg].name, "issuing_alg", key_algs[opts->issuing_alg].name,
                   NULL);
    X509_free(root);
    X509_free(issuing);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(issuing_key);
    return err;
}

vtpmca_err ca_import(const char *dir, const char *root_cert_path, const char *root_key_path,
                     const char *issuing_cert_path, const char *issuing_key_path, vtpmca_diag *diag)
{
    if (dir == NULL || dir[0] == '\0' || root_cert_path == NULL || issuing_cert_path == NULL ||
        issuing_key_path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca import: missing argument");
    vtpmca_err err = check_no_ca_files(dir, diag);
    if (err != VTPMCA_OK)
        return err;
    X509 *root = NULL, *issuing = NULL;
    EVP_PKEY *root_key = NULL, *issuing_key = NULL;
    err = read_cert(root_cert_path, &root, diag);
    if (err == VTPMCA_OK)
        err = read_cert(issuing_cert_path, &issuing, diag);
    if (err == VTPMCA_OK)
        err =
            vt_pem_private_key_read(issuing_key_path, CA_PEM_FILE_MAX, "ca: ", &issuing_key, diag);
    if (err == VTPMCA_OK && root_key_path != NULL)
        err = vt_pem_private_key_read(root_key_path, CA_PEM_FILE_MAX, "ca: ", &root_key, diag);
    if (err == VTPMCA_OK)
        err = check_hierarchy(root, root_key, issuing, issuing_key, diag);
    if (err == VTPMCA_OK)
        err = write_ca_dir(dir, root, root_key, issuing, issuing_key, diag);
    if (err == VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_INFO, "ca.import", "dir", dir, "root_key",
                   root_key != NULL ? "imported" : "offline", NULL);
    X509_free(root);
    X509_free(issuing);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(issuing_key);
    return err;
}

/* ---- the loaded CA ---- */

void ca_free(ca_ctx *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->root);
    X509_free(ca->issuing);
    EVP_PKEY_free(ca->issuing_key);
    for (size_t i = 0; i < 2; i++) {
        free(ca->der[i]);
        free(ca->pem[i]);
    }
    free(ca);
}

/* The key identifier: the SKI when the certificate has one, else SHA-1 over the
 * subjectPublicKey BIT STRING (RFC 5280 4.2.1.2 method 1). */
static vtpmca_err compute_key_id(ca_ctx *ca, vtpmca_diag *diag)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca->issuing);
    if (ski != NULL && ASN1_STRING_length(ski) > 0 &&
        (size_t)ASN1_STRING_length(ski) <= sizeof(ca->key_id)) {
        ca->key_id_len = (size_t)ASN1_STRING_length(ski);
        memcpy(ca->key_id, ASN1_STRING_get0_data(ski), ca->key_id_len);
        return VTPMCA_OK;
    }
    unsigned int len = 0;
    if (X509_pubkey_digest(ca->issuing, EVP_sha1(), ca->key_id, &len) != 1 || len != CA_KEY_ID_LEN)
        return openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot compute the key identifier");
    ca->key_id_len = len;
    return VTPMCA_OK;
}

static void warn_if_expiring(const X509 *cert, const char *which)
{
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
        vtpmca_log(VTPMCA_LOG_WARN, "ca.expired", "certificate", which, "hint",
                   "the CA certificate has expired; certificates it issues will not verify", NULL);
}

vtpmca_err ca_open(const char *dir, ca_ctx **out, vtpmca_diag *diag)
{
    if (dir == NULL || dir[0] == '\0' || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca open: missing argument");
    *out = NULL;
    char root_path[CA_PATH_MAX], issuing_path[CA_PATH_MAX], key_path[CA_PATH_MAX];
    vtpmca_err err = path_join(dir, CA_ROOT_CERT_FILE, root_path, sizeof(root_path), diag);
    if (err == VTPMCA_OK)
        err = path_join(dir, CA_ISSUING_CERT_FILE, issuing_path, sizeof(issuing_path), diag);
    if (err == VTPMCA_OK)
        err = path_join(dir, CA_ISSUING_KEY_FILE, key_path, sizeof(key_path), diag);
    if (err != VTPMCA_OK)
        return err;
    ca_ctx *ca = calloc(1, sizeof(*ca));
    if (ca == NULL)
        return nomem(diag);
    err = check_key_file_mode(key_path, diag);
    if (err == VTPMCA_OK)
        err = read_cert(root_path, &ca->root, diag);
    if (err == VTPMCA_OK)
        err = read_cert(issuing_path, &ca->issuing, diag);
    if (err == VTPMCA_OK)
        err = vt_pem_private_key_read(key_path, CA_PEM_FILE_MAX, "ca: ", &ca->issuing_key, diag);
    if (err == VTPMCA_OK)
        err = check_hierarchy(ca->root, NULL, ca->issuing, ca->issuing_key, diag);
    if (err == VTPMCA_OK)
        err = check_ca_key(ca->issuing_key, "issuing CA", &ca->md, diag);
    if (err == VTPMCA_OK)
        err = compute_key_id(ca, diag);
    const X509 *certs[2] = {[CA_CERT_ROOT] = ca->root, [CA_CERT_ISSUING] = ca->issuing};
    for (size_t i = 0; i < 2 && err == VTPMCA_OK; i++) {
        err = cert_to_der(certs[i], &ca->der[i], &ca->der_len[i], diag);
        if (err == VTPMCA_OK)
            err = cert_to_pem(certs[i], &ca->pem[i], &ca->pem_len[i], diag);
    }
    if (err != VTPMCA_OK) {
        ca_free(ca);
        return err;
    }
    warn_if_expiring(ca->root, "root");
    warn_if_expiring(ca->issuing, "issuing");
    *out = ca;
    return VTPMCA_OK;
}

const X509 *ca_cert(const ca_ctx *ca, ca_cert_which which)
{
    if (ca == NULL)
        return NULL;
    return which == CA_CERT_ROOT ? ca->root : which == CA_CERT_ISSUING ? ca->issuing : NULL;
}

EVP_PKEY *ca_issuing_key(const ca_ctx *ca)
{
    return ca != NULL ? ca->issuing_key : NULL;
}

const EVP_MD *ca_issuing_md(const ca_ctx *ca)
{
    return ca != NULL ? ca->md : NULL;
}

const uint8_t *ca_issuing_key_id(const ca_ctx *ca, size_t *len)
{
    if (ca == NULL || len == NULL)
        return NULL;
    *len = ca->key_id_len;
    return ca->key_id;
}

vtpmca_err ca_authority_key_id(const ca_ctx *ca, AUTHORITY_KEYID **out, vtpmca_diag *diag)
{
    if (ca == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca: authority key id: bad argument");
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    ASN1_OCTET_STRING *keyid = ASN1_OCTET_STRING_new();
    if (akid == NULL || keyid == NULL ||
        ASN1_OCTET_STRING_set(keyid, ca->key_id, (int)ca->key_id_len) != 1) {
        AUTHORITY_KEYID_free(akid);
        ASN1_OCTET_STRING_free(keyid);
        return nomem(diag);
    }
    akid->keyid = keyid;
    *out = akid;
    return VTPMCA_OK;
}

/* ---- signing ---- */

static vtpmca_err copy_openssl_buf(unsigned char *buf, int len, uint8_t **out, size_t *out_len,
                                   vtpmca_diag *diag)
{
    uint8_t *copy = len > 0 ? malloc((size_t)len) : NULL;
    if (copy == NULL) {
        OPENSSL_free(buf);
        return len > 0 ? nomem(diag) : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "empty encoding");
    }
    memcpy(copy, buf, (size_t)len);
    OPENSSL_free(buf);
    *out = copy;
    *out_len = (size_t)len;
    return VTPMCA_OK;
}

/* Verifiers such as Keylime re-encode what they parse before checking the signature, so
 * anything we sign must be strict DER; a failure is a bug of ours, hence INTERNAL. */
static vtpmca_err check_signed_der(vtpmca_err (*check)(const uint8_t *, size_t, vtpmca_diag *),
                                   const uint8_t *der, size_t der_len, const char *what,
                                   vtpmca_diag *diag)
{
    vtpmca_diag inner = {{0}};
    if (check(der, der_len, &inner) == VTPMCA_OK)
        return VTPMCA_OK;
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "ca: the signed %s is not strict DER (%s)", what,
                       inner.msg);
}

vtpmca_err ca_sign_cert(const ca_ctx *ca, X509 *cert, uint8_t **der, size_t *der_len,
                        vtpmca_diag *diag)
{
    if (ca == NULL || cert == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca sign: missing argument");
    if (X509_sign(cert, ca->issuing_key, ca->md) <= 0)
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "signing a certificate failed");
    unsigned char *buf = NULL;
    int len = i2d_X509(cert, &buf);
    uint8_t *copy = NULL;
    size_t copy_len = 0;
    vtpmca_err err = len > 0 ? copy_openssl_buf(buf, len, &copy, &copy_len, diag)
                             : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode a cert");
    if (err == VTPMCA_OK)
        err = check_signed_der(ca_check_cert_der, copy, copy_len, "certificate", diag);
    if (err != VTPMCA_OK) {
        free(copy);
        return err;
    }
    *der = copy;
    *der_len = copy_len;
    return VTPMCA_OK;
}

vtpmca_err ca_sign_crl(const ca_ctx *ca, X509_CRL *crl, uint8_t **der, size_t *der_len,
                       vtpmca_diag *diag)
{
    if (ca == NULL || crl == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca sign: missing argument");
    if (X509_CRL_sign(crl, ca->issuing_key, ca->md) <= 0)
        return openssl_fail(diag, VTPMCA_ERR_CRYPTO, "signing a CRL failed");
    unsigned char *buf = NULL;
    int len = i2d_X509_CRL(crl, &buf);
    uint8_t *copy = NULL;
    size_t copy_len = 0;
    vtpmca_err err = len > 0 ? copy_openssl_buf(buf, len, &copy, &copy_len, diag)
                             : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode a CRL");
    if (err == VTPMCA_OK)
        err = check_signed_der(ca_check_crl_der, copy, copy_len, "CRL", diag);
    if (err != VTPMCA_OK) {
        free(copy);
        return err;
    }
    *der = copy;
    *der_len = copy_len;
    return VTPMCA_OK;
}

/* ---- exports ---- */

static vtpmca_err dup_bytes(const void *src, size_t len, size_t extra, void **out,
                            vtpmca_diag *diag)
{
    uint8_t *copy = malloc(len + extra);
    if (copy == NULL)
        return nomem(diag);
    memcpy(copy, src, len);
    if (extra > 0)
        copy[len] = 0;
    *out = copy;
    return VTPMCA_OK;
}

vtpmca_err ca_cert_der(const ca_ctx *ca, ca_cert_which which, uint8_t **der, size_t *der_len,
                       vtpmca_diag *diag)
{
    if (ca == NULL || der == NULL || der_len == NULL ||
        (which != CA_CERT_ROOT && which != CA_CERT_ISSUING))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca cert: bad argument");
    void *copy = NULL;
    vtpmca_err err = dup_bytes(ca->der[which], ca->der_len[which], 0, &copy, diag);
    if (err == VTPMCA_OK) {
        *der = copy;
        *der_len = ca->der_len[which];
    }
    return err;
}

vtpmca_err ca_cert_pem(const ca_ctx *ca, ca_cert_which which, char **pem, size_t *pem_len,
                       vtpmca_diag *diag)
{
    if (ca == NULL || pem == NULL || pem_len == NULL ||
        (which != CA_CERT_ROOT && which != CA_CERT_ISSUING))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca cert: bad argument");
    void *copy = NULL;
    vtpmca_err err = dup_bytes(ca->pem[which], ca->pem_len[which], 1, &copy, diag);
    if (err == VTPMCA_OK) {
        *pem = copy;
        *pem_len = ca->pem_len[which];
    }
    return err;
}

vtpmca_err ca_chain_pem(const ca_ctx *ca, char **pem, size_t *pem_len, vtpmca_diag *diag)
{
    if (ca == NULL || pem == NULL || pem_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca chain: missing argument");
    size_t len = ca->pem_len[CA_CERT_ISSUING] + ca->pem_len[CA_CERT_ROOT];
    char *chain = malloc(len + 1);
    if (chain == NULL)
        return nomem(diag);
    memcpy(chain, ca->pem[CA_CERT_ISSUING], ca->pem_len[CA_CERT_ISSUING]);
    memcpy(chain + ca->pem_len[CA_CERT_ISSUING], ca->pem[CA_CERT_ROOT], ca->pem_len[CA_CERT_ROOT]);
    chain[len] = '\0';
    *pem = chain;
    *pem_len = len;
    return VTPMCA_OK;
}

vtpmca_err ca_chain_der(const ca_ctx *ca, uint8_t **der, size_t *der_len, vtpmca_diag *diag)
{
    if (ca == NULL || der == NULL || der_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca chain: missing argument");
    /* A degenerate SignedData: no signers, no content, just the certificates. */
    PKCS7 *p7 = PKCS7_new();
    vtpmca_err err = VTPMCA_OK;
    if (p7 == NULL || PKCS7_set_type(p7, NID_pkcs7_signed) != 1 ||
        PKCS7_content_new(p7, NID_pkcs7_data) != 1 || PKCS7_add_certificate(p7, ca->issuing) != 1 ||
        PKCS7_add_certificate(p7, ca->root) != 1)
        err = openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot build the certs-only chain");
    unsigned char *buf = NULL;
    int len = err == VTPMCA_OK ? i2d_PKCS7(p7, &buf) : -1;
    if (err == VTPMCA_OK)
        err = len > 0 ? copy_openssl_buf(buf, len, der, der_len, diag)
                      : openssl_fail(diag, VTPMCA_ERR_INTERNAL, "cannot encode the chain");
    PKCS7_free(p7);
    return err;
}

vtpmca_err ca_export_keylime(const ca_ctx *ca, const char *dir, vtpmca_diag *diag)
{
    if (ca == NULL || dir == NULL || dir[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "ca export-keylime: missing argument");
    char issuing_path[CA_PATH_MAX], root_path[CA_PATH_MAX];
    vtpmca_err err =
        path_join(dir, CA_KEYLIME_ISSUING_FILE, issuing_path, sizeof(issuing_path), diag);
    if (err == VTPMCA_OK)
        err = path_join(dir, CA_KEYLIME_ROOT_FILE, root_path, sizeof(root_path), diag);
    if (err == VTPMCA_OK)
        err = vt_mkdir_p(dir, 0755, diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(issuing_path, ca->pem[CA_CERT_ISSUING],
                                   ca->pem_len[CA_CERT_ISSUING], 0644, diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(root_path, ca->pem[CA_CERT_ROOT], ca->pem_len[CA_CERT_ROOT],
                                   0644, diag);
    return err;
}
