/* Trusted SEV-SNP roots: the pinned AMD ARK/ASK/ASVK certificates per product, plus roots
 * an operator adds explicitly from a directory. Every certificate is checked once at load
 * (ARK self-signed, ASK/ASVK signed by the ARK, all RSASSA-PSS SHA-384 salt 48), so a chain
 * check later only verifies the leaf. The set is immutable once built; concurrent readers
 * need no lock (snp_roots_add_dir must not run while others use the set). */
#include "vtpmca/snp_roots.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vtpmca/fileio.h"
#include "vtpmca/log.h"

#define AMD_PSS_SALT_LEN 48
#define ROOT_FILE_MAX (64 * 1024)

struct snp_roots {
    snp_root_chain *chains;
    size_t count;
};

/* File name prefix of each product, as in ../shared/amd and attest/roots. */
static const struct {
    snp_product product;
    const char *prefix;
} product_files[] = {
    {SNP_PRODUCT_MILAN, "milan"},
    {SNP_PRODUCT_GENOA, "genoa"},
    {SNP_PRODUCT_TURIN, "turin"},
};
#define PRODUCT_FILES_COUNT (sizeof(product_files) / sizeof(product_files[0]))

/* ---- shared certificate checks ---- */

static int algor_nid(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *oid = NULL;
    X509_ALGOR_get0(&oid, NULL, NULL, alg);
    return OBJ_obj2nid(oid);
}

vtpmca_err snp_check_amd_signature_alg(const X509 *cert, const char *what, vtpmca_diag *diag)
{
    if (cert == NULL || what == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "signature check: missing argument");
    const X509_ALGOR *alg = NULL;
    X509_get0_signature(NULL, &alg, cert);
    int nid = algor_nid(alg);
    if (nid != NID_rsassaPss)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                           "%s is signed with %s, not RSASSA-PSS as AMD signs its chain", what,
                           nid == NID_undef ? "an unknown algorithm" : OBJ_nid2ln(nid));
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS parameters are missing", what);
    RSA_PSS_PARAMS *pss = ASN1_item_unpack(pval, ASN1_ITEM_rptr(RSA_PSS_PARAMS));
    if (pss == NULL) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS parameters are malformed",
                           what);
    }
    vtpmca_err err = VTPMCA_OK;
    /* Absent fields mean the RFC 4055 defaults (SHA-1, MGF1-SHA-1, salt 20): all refused. */
    X509_ALGOR *mgf_hash = NULL;
    if (pss->hashAlgorithm == NULL || algor_nid(pss->hashAlgorithm) != NID_sha384) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS hash is not SHA-384", what);
    } else if (pss->maskGenAlgorithm == NULL || algor_nid(pss->maskGenAlgorithm) != NID_mgf1 ||
               pss->maskGenAlgorithm->parameter == NULL ||
               pss->maskGenAlgorithm->parameter->type != V_ASN1_SEQUENCE ||
               (mgf_hash = ASN1_item_unpack(pss->maskGenAlgorithm->parameter->value.sequence,
                                            ASN1_ITEM_rptr(X509_ALGOR))) == NULL ||
               algor_nid(mgf_hash) != NID_sha384) {
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS mask is not MGF1 with SHA-384",
                          what);
    } else {
        int64_t salt = 0;
        if (pss->saltLength == NULL || !ASN1_INTEGER_get_int64(&salt, pss->saltLength) ||
            salt != AMD_PSS_SALT_LEN) {
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS salt length is not %d bytes",
                              what, AMD_PSS_SALT_LEN);
        } else {
            int64_t trailer = 1;
            if (pss->trailerField != NULL &&
                (!ASN1_INTEGER_get_int64(&trailer, pss->trailerField) || trailer != 1))
                err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: RSASSA-PSS trailer field is not 1",
                                  what);
        }
    }
    X509_ALGOR_free(mgf_hash);
    RSA_PSS_PARAMS_free(pss);
    ERR_clear_error();
    return err;
}

vtpmca_err snp_check_amd_signature(X509 *cert, EVP_PKEY *issuer_key, const char *what,
                                   const char *issuer_what, vtpmca_diag *diag)
{
    if (cert == NULL || issuer_key == NULL || what == NULL || issuer_what == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "signature check: missing argument");
    vtpmca_err err = snp_check_amd_signature_alg(cert, what, diag);
    if (err != VTPMCA_OK)
        return err;
    if (X509_verify(cert, issuer_key) != 1) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not signed by the %s", what,
                           issuer_what);
    }
    return VTPMCA_OK;
}

static vtpmca_err asn1_time_to_time_t(const ASN1_TIME *when, time_t *out)
{
    struct tm tm;
    if (when == NULL || !ASN1_TIME_to_tm(when, &tm)) {
        ERR_clear_error();
        return VTPMCA_ERR_PARSE;
    }
    *out = timegm(&tm);
    return VTPMCA_OK;
}

vtpmca_err snp_cert_validity(const X509 *cert, time_t *not_before, time_t *not_after,
                             vtpmca_diag *diag)
{
    if (cert == NULL || not_before == NULL || not_after == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "certificate validity: missing argument");
    time_t from, until;
    if (asn1_time_to_time_t(X509_get0_notBefore(cert), &from) != VTPMCA_OK ||
        asn1_time_to_time_t(X509_get0_notAfter(cert), &until) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "certificate validity dates are malformed");
    *not_before = from;
    *not_after = until;
    return VTPMCA_OK;
}

/* ---- loading ---- */

static void chain_clear(snp_root_chain *chain)
{
    X509_free(chain->intermediate);
    X509_free(chain->ark);
}

static void chains_free(snp_root_chain *chains, size_t count)
{
    for (size_t i = 0; i < count; i++)
        chain_clear(&chains[i]);
    free(chains);
}

/* Reads exactly `want` certificates from PEM text. */
static vtpmca_err read_pem_certs(const char *pem, const char *file, X509 **certs, size_t want,
                                 vtpmca_diag *diag)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t got = 0;
    vtpmca_err err = VTPMCA_OK;
    for (;;) {
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert == NULL) {
            unsigned long code = ERR_peek_last_error();
            bool at_end = ERR_GET_LIB(code) == ERR_LIB_PEM &&
                          ERR_GET_REASON(code) == PEM_R_NO_START_LINE && got > 0;
            if (!at_end)
                err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                                  "%s: certificate %zu is not a valid PEM X.509 certificate", file,
                                  got + 1);
            ERR_clear_error();
            break;
        }
        if (got == want) {
            X509_free(cert);
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s holds more than %zu certificate(s)", file,
                              want);
            break;
        }
        certs[got++] = cert;
    }
    BIO_free(bio);
    if (err == VTPMCA_OK && got != want)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s holds %zu certificate(s), expected %zu", file,
                          got, want);
    if (err != VTPMCA_OK) {
        for (size_t i = 0; i < got; i++) {
            X509_free(certs[i]);
            certs[i] = NULL;
        }
    }
    return err;
}

static vtpmca_err check_ca(X509 *cert, const char *file, vtpmca_diag *diag)
{
    /* An AMD ARK/ASK/ASVK is a CA that may sign certificates (basicConstraints, keyUsage). */
    if (X509_check_ca(cert) != 1 || (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
        ERR_clear_error();
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not a CA certificate", file);
    }
    return VTPMCA_OK;
}

/* Checks an ASK/ASVK against its ARK and appends the chain (taking a reference on both). */
static vtpmca_err add_chain(snp_roots *into, snp_product product, snp_signer kind,
                            X509 *intermediate, X509 *ark, const char *file, const char *ark_file,
                            vtpmca_diag *diag)
{
    if (X509_NAME_cmp(X509_get_issuer_name(intermediate), X509_get_subject_name(ark)) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not issued by %s (issuer name)", file,
                           ark_file);
    vtpmca_err err =
        snp_check_amd_signature(intermediate, X509_get0_pubkey(ark), file, ark_file, diag);
    if (err == VTPMCA_OK)
        err = check_ca(intermediate, file, diag);
    snp_root_chain chain = {.product = product, .kind = kind};
    if (err == VTPMCA_OK)
        err = snp_cert_validity(intermediate, &chain.intermediate_not_before,
                                &chain.intermediate_not_after, diag);
    if (err == VTPMCA_OK)
        err = snp_cert_validity(ark, &chain.ark_not_before, &chain.ark_not_after, diag);
    if (err != VTPMCA_OK)
        return err;
    snp_root_chain *grown = realloc(into->chains, (into->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return VTPMCA_ERR_NOMEM;
    into->chains = grown;
    if (!X509_up_ref(intermediate))
        return VTPMCA_ERR_INTERNAL;
    if (!X509_up_ref(ark)) {
        X509_free(intermediate);
        return VTPMCA_ERR_INTERNAL;
    }
    chain.intermediate = intermediate;
    chain.ark = ark;
    into->chains[into->count++] = chain;
    return VTPMCA_OK;
}

/* PEM texts of one product (asvk_ark may be NULL) and the file names for diags. */
typedef struct {
    const char *ark, *ask, *asvk_ark;
    char ark_file[64], ask_file[64], asvk_file[64];
} product_pems;

static void name_files(product_pems *pems, const char *prefix)
{
    snprintf(pems->ark_file, sizeof(pems->ark_file), "%s_ark.pem", prefix);
    snprintf(pems->ask_file, sizeof(pems->ask_file), "%s_ask.pem", prefix);
    snprintf(pems->asvk_file, sizeof(pems->asvk_file), "%s_asvk_ark.pem", prefix);
}

static vtpmca_err load_product(snp_roots *into, snp_product product, const product_pems *pems,
                               vtpmca_diag *diag)
{
    X509 *ark = NULL, *ask = NULL, *asvk_ark[2] = {NULL, NULL};
    vtpmca_err err = read_pem_certs(pems->ark, pems->ark_file, &ark, 1, diag);
    if (err != VTPMCA_OK)
        return err;
    if (X509_get0_pubkey(ark) == NULL) {
        ERR_clear_error();
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s: the public key is not usable",
                          pems->ark_file);
    } else if (X509_NAME_cmp(X509_get_subject_name(ark), X509_get_issuer_name(ark)) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s is not self-signed (issuer != subject)",
                          pems->ark_file);
    if (err == VTPMCA_OK)
        err = snp_check_amd_signature(ark, X509_get0_pubkey(ark), pems->ark_file,
                                      "ARK itself (self-signature)", diag);
    if (err == VTPMCA_OK)
        err = check_ca(ark, pems->ark_file, diag);
    if (err == VTPMCA_OK)
        err = read_pem_certs(pems->ask, pems->ask_file, &ask, 1, diag);
    if (err == VTPMCA_OK)
        err = add_chain(into, product, SNP_SIGNER_VCEK, ask, ark, pems->ask_file, pems->ark_file,
                        diag);
    if (err == VTPMCA_OK && pems->asvk_ark != NULL) {
        err = read_pem_certs(pems->asvk_ark, pems->asvk_file, asvk_ark, 2, diag);
        /* The file repeats the ARK after the ASVK; it must be the same ARK. */
        if (err == VTPMCA_OK && X509_cmp(asvk_ark[1], ark) != 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                              "%s: the second certificate is not the ARK of %s", pems->asvk_file,
                              pems->ark_file);
        if (err == VTPMCA_OK)
            err = add_chain(into, product, SNP_SIGNER_VLEK, asvk_ark[0], ark, pems->asvk_file,
                            pems->ark_file, diag);
    }
    X509_free(ark);
    X509_free(ask);
    X509_free(asvk_ark[0]);
    X509_free(asvk_ark[1]);
    return err;
}

static const char *embedded_pem(const char *name)
{
    for (unsigned i = 0; i < snp_embedded_roots_count; i++) {
        if (snp_embedded_roots[i].name != NULL && strcmp(snp_embedded_roots[i].name, name) == 0)
            return snp_embedded_roots[i].pem;
    }
    return NULL;
}

vtpmca_err snp_roots_new_empty(snp_roots **out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    snp_roots *roots = calloc(1, sizeof(*roots));
    if (roots == NULL)
        return VTPMCA_ERR_NOMEM;
    *out = roots;
    return VTPMCA_OK;
}

vtpmca_err snp_roots_new_builtin(snp_roots **out, vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_roots_new_builtin: missing argument");
    snp_roots *roots = NULL;
    vtpmca_err err = snp_roots_new_empty(&roots);
    for (size_t i = 0; err == VTPMCA_OK && i < PRODUCT_FILES_COUNT; i++) {
        product_pems pems;
        name_files(&pems, product_files[i].prefix);
        char name[32];
        snprintf(name, sizeof(name), "%s_ark", product_files[i].prefix);
        pems.ark = embedded_pem(name);
        snprintf(name, sizeof(name), "%s_ask", product_files[i].prefix);
        pems.ask = embedded_pem(name);
        snprintf(name, sizeof(name), "%s_asvk_ark", product_files[i].prefix);
        pems.asvk_ark = embedded_pem(name);
        if (pems.ark == NULL || pems.ask == NULL || pems.asvk_ark == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                              "the pinned %s roots are missing from the build",
                              snp_product_name(product_files[i].product));
        else
            err = load_product(roots, product_files[i].product, &pems, diag);
    }
    if (err != VTPMCA_OK) {
        snp_roots_free(roots);
        return err;
    }
    *out = roots;
    return VTPMCA_OK;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reads <dir>/<file> if it exists; *text stays NULL when it does not. */
static vtpmca_err read_optional(const char *dir, const char *file, char **text, vtpmca_diag *diag)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "roots directory path is too long");
    *text = NULL;
    if (!file_exists(path))
        return VTPMCA_OK;
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, ROOT_FILE_MAX, &data, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    *text = (char *)data; /* vt_file_read NUL-terminates */
    return VTPMCA_OK;
}

vtpmca_err snp_roots_add_dir(snp_roots *roots, const char *dir, vtpmca_diag *diag)
{
    if (roots == NULL || dir == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_roots_add_dir: missing argument");
    /* Load into a scratch set so a failure leaves `roots` unchanged. */
    snp_roots scratch = {0};
    char loaded_names[64] = "";
    vtpmca_err err = VTPMCA_OK;
    for (size_t i = 0; err == VTPMCA_OK && i < PRODUCT_FILES_COUNT; i++) {
        product_pems pems;
        name_files(&pems, product_files[i].prefix);
        char *ark = NULL, *ask = NULL, *asvk = NULL;
        err = read_optional(dir, pems.ark_file, &ark, diag);
        if (err == VTPMCA_OK)
            err = read_optional(dir, pems.ask_file, &ask, diag);
        if (err == VTPMCA_OK)
            err = read_optional(dir, pems.asvk_file, &asvk, diag);
        if (err == VTPMCA_OK && (ark != NULL || ask != NULL || asvk != NULL)) {
            if (ark == NULL || ask == NULL) {
                err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "%s: %s has %s but not %s", dir,
                                  snp_product_name(product_files[i].product),
                                  ark != NULL ? pems.ark_file : pems.ask_file,
                                  ark != NULL ? pems.ask_file : pems.ark_file);
            } else {
                pems.ark = ark;
                pems.ask = ask;
                pems.asvk_ark = asvk;
                err = load_product(&scratch, product_files[i].product, &pems, diag);
                if (err == VTPMCA_OK) {
                    size_t used = strlen(loaded_names);
                    snprintf(loaded_names + used, sizeof(loaded_names) - used, "%s%s",
                             used ? "," : "", product_files[i].prefix);
                }
            }
        }
        free(ark);
        free(ask);
        free(asvk);
    }
    if (err == VTPMCA_OK && scratch.count == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                          "%s holds no roots (expected <product>_ark.pem and <product>_ask.pem)",
                          dir);
    if (err == VTPMCA_OK) {
        snp_root_chain *grown =
            realloc(roots->chains, (roots->count + scratch.count) * sizeof(*grown));
        if (grown == NULL) {
            err = VTPMCA_ERR_NOMEM;
        } else {
            roots->chains = grown;
            memcpy(roots->chains + roots->count, scratch.chains,
                   scratch.count * sizeof(*scratch.chains));
            roots->count += scratch.count;
            free(scratch.chains); /* the references moved to roots */
            scratch.chains = NULL;
            scratch.count = 0;
            vtpmca_log(VTPMCA_LOG_INFO, "snp.roots.added", "dir", dir, "products", loaded_names,
                       NULL);
        }
    }
    chains_free(scratch.chains, scratch.count);
    return err;
}

void snp_roots_free(snp_roots *roots)
{
    if (roots == NULL)
        return;
    chains_free(roots->chains, roots->count);
    free(roots);
}

size_t snp_roots_count(const snp_roots *roots)
{
    return roots == NULL ? 0 : roots->count;
}

const snp_root_chain *snp_roots_get(const snp_roots *roots, size_t index)
{
    if (roots == NULL || index >= roots->count)
        return NULL;
    return &roots->chains[index];
}
