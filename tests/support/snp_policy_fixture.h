/* TEST-ONLY fixtures for policy and EAR tests: a "strict" owner policy that constrains every
 * rule, baseline SNP claims that pass it, and claims read from the genuine reports in
 * ../shared/testdata/snp. */
#ifndef VTPMCA_TESTS_SNP_POLICY_FIXTURE_H
#define VTPMCA_TESTS_SNP_POLICY_FIXTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_policy.h"
#include "vtpmca/snp_verifier.h"

/* Byte values the baseline claims repeat in each field, and the allow-lists of the strict
 * policy (each list allows exactly the baseline value, measurements also a second one). */
#define FIXTURE_MEASUREMENT 0x11
#define FIXTURE_MEASUREMENT_2 0x22
#define FIXTURE_HOST_DATA 0x33
#define FIXTURE_ID_KEY 0x44
#define FIXTURE_AUTHOR_KEY 0x55
#define FIXTURE_FAMILY_ID 0x66
#define FIXTURE_IMAGE_ID 0x77

/* Checks the strict policy runs on Milan/Genoa claims (Turin adds min_tcb.fmc). */
#define FIXTURE_STRICT_CHECKS 20

/* Writes `len` copies of `byte` as hex (out holds 2*len+1). */
void fixture_hex(uint8_t byte, size_t len, char *out);

/* The strict policy: version 3..5, two measurements, no debug / migration agent, VMPL 0,
 * min_tcb {bootloader 3, tee 1, snp 8, microcode 115, fmc 2}, min_guest_svn 2, one value
 * in every other allow-list, smt forbidden, single_socket required, VCEK only, products
 * Milan and Turin, min_abi 1.51. A new object the caller owns. */
json_t *fixture_strict_policy(void);

/* Serialises `doc` (the reference is consumed) and parses it with snp_policy_from_json. */
vtpmca_err fixture_parse_policy(json_t *doc, snp_policy **out, vtpmca_diag *diag);

/* The strict policy with `overrides` (a JSON object text, may be NULL) merged in, parsed;
 * fails the test (cmocka) if any step fails. */
snp_policy *fixture_strict_policy_with(const char *overrides);

/* Claims that pass the strict policy: version 3, the FIXTURE_* values, guest policy with
 * the reserved bit and SINGLE_SOCKET, platform SMT off, VMPL 0, guest SVN 2, every TCB
 * {bootloader 3, tee 1, snp 8, microcode 115, fmc 2 on Turin (0 elsewhere)} with raw fields
 * encoded for the product, firmware 1.51, signer VCEK. */
vtpmca_err fixture_evidence(snp_product product, snp_evidence *out);

/* Re-encodes the raw TCB fields of out->report after a test changed the decoded ones. */
vtpmca_err fixture_encode_tcbs(snp_evidence *evidence);

/* Claims from a genuine Milan report in ../shared/testdata/snp (parsed strictly, TCBs
 * decoded; the signature is not checked here: that is the verifier's job). */
vtpmca_err fixture_genuine_evidence(const char *file_name, snp_evidence *out, vtpmca_diag *diag);

#endif
