/* TEST-ONLY helpers for the CA tests (ca_keys, ek_profile, crl, store certificates): temp
 * directories, running the openssl CLI, a fixture instance identity, and an independent
 * strict-DER checker (a TLV walker that does not use OpenSSL's encoder). */
#ifndef VTPMCA_TESTS_CA_FIXTURE_H
#define VTPMCA_TESTS_CA_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/ca_keys.h"
#include "vtpmca/ek_profile.h"

/* Byte values repeated in the fixture identity's fields. */
#define CA_FIXTURE_MEASUREMENT 0xa1
#define CA_FIXTURE_CHIP_ID 0xc2
#define CA_FIXTURE_KBS_HASH 0x5b
#define CA_FIXTURE_FLEET "prod-eu"
#define CA_FIXTURE_INSTANCE "vm-0001:eu-west"
#define CA_FIXTURE_POLICY_VERSION 7
#define CA_FIXTURE_BASE_URL "https://ca.example.test:8443"

/* Makes a fresh directory /tmp/vtpmca-<tag>-XXXXXX into out (64 bytes). 0 on success. */
int ca_fixture_tmpdir(char *out, size_t size, const char *tag);
/* rm -rf of a directory made by ca_fixture_tmpdir. 0 on success. */
int ca_fixture_rmtree(const char *dir);

/* Runs a shell command, capturing stdout and stderr into *output (malloc'd, NUL-terminated;
 * may be NULL). Returns the exit status, or -1 when it could not run. */
int ca_fixture_run(const char *cmd, char **output);

/* The fixture identity (fleet, instance, measurement/chip/hash bytes above). */
void ca_fixture_identity(ek_instance_identity *out);
/* The profile config used by tests: defaults plus CA_FIXTURE_BASE_URL. */
void ca_fixture_profile(ek_profile_config *out);

/* ca_init of dir with the given algorithms then ca_open; NULL (after printing the diag) on
 * failure. */
ca_ctx *ca_fixture_make_ca(const char *dir, ca_key_alg root_alg, ca_key_alg issuing_alg);

/* Writes bytes to path (0644). 0 on success. */
int ca_fixture_write(const char *path, const void *data, size_t len);

typedef struct {
    size_t empty_sequences;  /* SEQUENCEs of length 0 (allowed only where DER needs them) */
    size_t extension_values; /* extnValue OCTET STRINGs that were walked into */
    size_t sets;             /* SET / SET OF checked for order */
} der_walk_stats;

/* Walks one DER element (the whole buffer) and checks what X.690 DER requires: definite,
 * minimal lengths; minimal INTEGER/ENUMERATED; BOOLEAN 00/FF; BIT STRING unused bits zero;
 * NULL empty; minimal OID sub-identifiers; UTCTime/GeneralizedTime in the Z forms without
 * fractions; SET OF elements in ascending order of their encodings. It also walks into every
 * extension value (extnValue OCTET STRING) and into RSA public keys and ECDSA signatures.
 * Returns true when strict; otherwise false with a reason (offset included) in why. */
bool der_is_strict(const uint8_t *der, size_t len, der_walk_stats *stats, char *why,
                   size_t why_size);

#endif
