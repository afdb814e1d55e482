/* TEST-ONLY environment for the persistence-key tests (enrollment, key release): a temp
 * directory holding a master key and a sqlite store with fleets and policies, and a scan of
 * the database files for bytes that must never be stored. */
#ifndef VTPMCA_TESTS_KEYS_FIXTURE_H
#define VTPMCA_TESTS_KEYS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/keyvault.h"
#include "vtpmca/policy_cache.h"
#include "vtpmca/store.h"

typedef struct {
    char dir[64];       /* mkdtemp directory, removed by keys_env_close */
    char db_path[128];  /* the sqlite database file */
    char key_path[128]; /* the master key file (0600) */
    store *st;
    keyvault *vault;
    policy_cache *policies; /* refresh 0: every lookup sees the latest policy version */
} keys_env;

/* Fleets made by keys_env_open: FLEET "prod" holds the strict fixture policy (see
 * snp_policy_fixture.h), which fixture_evidence(SNP_PRODUCT_MILAN) passes; "bare" exists
 * without a policy. */
#define KEYS_FLEET "prod"
#define KEYS_FLEET_NO_POLICY "bare"

/* 0 on success; the diag (if any) is printed on failure. */
int keys_env_open(keys_env *env);
void keys_env_close(keys_env *env);

/* cmocka per-test setup and teardown: *state is a keys_env opened by keys_env_open (and
 * closed and freed by keys_env_teardown). */
int keys_env_setup(void **state);
int keys_env_teardown(void **state);

/* Closes and reopens the store (e.g. so every write is in the files, or to check what
 * survives). The policy cache is recreated too. 0 on success. */
int keys_env_reopen(keys_env *env);

/* Whether `needle` occurs in the database file or its -wal / -shm companions. */
bool keys_db_contains(const keys_env *env, const uint8_t *needle, size_t len);

#endif
