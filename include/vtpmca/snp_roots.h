/* Trusted SEV-SNP roots: AMD ARK, ASK and ASVK per product. The pinned AMD certificates are
 * compiled in; further (e.g. test) roots are trusted only when configured explicitly. */
#ifndef VTPMCA_SNP_ROOTS_H
#define VTPMCA_SNP_ROOTS_H

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

#endif
