/* Trusted SEV-SNP roots: AMD ARK, ASK and ASVK per product. The pinned AMD certificates are
 * compiled in; further (e.g. test) roots are trusted only when configured explicitly. */
#ifndef VTPMCA_SNP_ROOTS_H
#define VTPMCA_SNP_ROOTS_H

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"

/* One compiled-in PEM file: name is the file's base name, e.g. "milan_ask". */
struct snp_embedded_pem {
    const char *name;
    const char *pem;
};
extern const struct snp_embedded_pem snp_embedded_roots[];
extern const unsigned snp_embedded_roots_count;

typedef struct snp_roots snp_roots;

/* The pinned AMD roots for Milan, Genoa and Turin: each ARK is checked to be self-signed
 * and each ASK/ASVK to be signed by its ARK (RSASSA-PSS SHA-384, salt 48) at load time. */
vtpmca_err snp_roots_new_builtin(snp_roots **out, vtpmca_diag *diag);

/* Adds the roots from a directory laid out like ../shared/amd: <product>_ark.pem,
 * <product>_ask.pem and optionally <product>_asvk_ark.pem (ASVK then ARK). Files for
 * products that are absent are skipped; at least one product must load. Used for explicit
 * extra trust (test roots) and for operators who pin roots on disk. */
vtpmca_err snp_roots_add_dir(snp_roots *roots, const char *dir, vtpmca_diag *diag);

/* An empty set (nothing trusted), to be filled with snp_roots_add_dir. */
vtpmca_err snp_roots_new_empty(snp_roots **out);

void snp_roots_free(snp_roots *roots);

/* One trusted chain: an ARK and the intermediate it signed, the ASK (signs VCEKs) or the
 * ASVK (signs VLEKs). A set may hold several chains per product and kind (builtin + test
 * root); chain checks try those whose intermediate subject matches the leaf's issuer.
 * Owned by the set; valid until snp_roots_free. */
typedef struct {
    snp_product product;
    snp_signer kind;    /* SNP_SIGNER_VCEK: intermediate is an ASK; VLEK: an ASVK */
    X509 *intermediate; /* ASK or ASVK, signed by ark */
    X509 *ark;          /* self-signed */
    time_t intermediate_not_before, intermediate_not_after;
    time_t ark_not_before, ark_not_after;
} snp_root_chain;

/* Number of chains in the set and the chain at index (NULL when out of range). */
size_t snp_roots_count(const snp_roots *roots);
const snp_root_chain *snp_roots_get(const snp_roots *roots, size_t index);

/* Checks that `cert`'s signature algorithm is RSASSA-PSS with SHA-384, MGF1-SHA-384 and a
 * 48-byte salt (trailer 1), as AMD signs every certificate of the chain. The parameters
 * are checked explicitly, so a valid PKCS#1 v1.5 or other-parameter signature is refused.
 * `what` names the certificate in the diag. VTPMCA_ERR_CRYPTO on a mismatch. */
vtpmca_err snp_check_amd_signature_alg(const X509 *cert, const char *what, vtpmca_diag *diag);

/* snp_check_amd_signature_alg, then the signature of `cert` with `issuer_key`.
 * `what` / `issuer_what` name the two certificates in the diag. */
vtpmca_err snp_check_amd_signature(X509 *cert, EVP_PKEY *issuer_key, const char *what,
                                   const char *issuer_what, vtpmca_diag *diag);

/* A certificate's validity window as time_t (UTC). */
vtpmca_err snp_cert_validity(const X509 *cert, time_t *not_before, time_t *not_after,
                             vtpmca_diag *diag);

#endif
