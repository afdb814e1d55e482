/* TEST-ONLY environment for the persistence-key tests (see keys_fixture.h). */
#include "keys_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_fixture.h"
#include "snp_policy_fixture.h"
#include "vtpmca/fileio.h"

static int open_store_and_cache(keys_env *env)
{
    vtpmca_diag diag = {{0}};
    if (store_open(env->db_path, &env->st, &diag) != VTPMCA_OK) {
        fprintf(stderr, "keys fixture: store: %s\n", diag.msg);
        return -1;
    }
    if (policy_cache_new(env->st, 16, 0, &env->policies) != VTPMCA_OK) {
        fprintf(stderr, "keys fixture: policy cache\n");
        return -1;
    }
    return 0;
}

int keys_env_open(keys_env *env)
{
    memset(env, 0, sizeof(*env));
    if (ca_fixture_tmpdir(env->dir, sizeof(env->dir), "keys") != 0)
        return -1;
    snprintf(env->db_path, sizeof(env->db_path), "%s/vtpmca.db", env->dir);
    snprintf(env->key_path, sizeof(env->key_path), "%s/master.key", env->dir);
    vtpmca_diag diag = {{0}};
    if (keyvault_open(env->key_path, true, &env->vault, &diag) != VTPMCA_OK) {
        fprintf(stderr, "keys fixture: vault: %s\n", diag.msg);
        return -1;
    }
    if (open_store_and_cache(env) != 0)
        return -1;
    json_t *doc = fixture_strict_policy();
    char *policy = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    int rc = -1;
    if (policy != NULL && store_fleet_create(env->st, KEYS_FLEET, "strict", &diag) == VTPMCA_OK &&
        store_policy_put(env->st, KEYS_FLEET, policy, "fixture", NULL, &diag) == VTPMCA_OK &&
        store_fleet_create(env->st, KEYS_FLEET_NO_POLICY, NULL, &diag) == VTPMCA_OK)
        rc = 0;
    else
        fprintf(stderr, "keys fixture: fleets: %s\n", diag.msg);
    free(policy);
    return rc;
}

int keys_env_reopen(keys_env *env)
{
    policy_cache_free(env->policies);
    store_close(env->st);
    env->policies = NULL;
    env->st = NULL;
    return open_store_and_cache(env);
}

void keys_env_close(keys_env *env)
{
    policy_cache_free(env->policies);
    store_close(env->st);
    keyvault_free(env->vault);
    if (env->dir[0] != '\0') {
        if (ca_fixture_rmtree(env->dir) != 0)
            fprintf(stderr, "keys fixture: could not remove %s\n", env->dir);
    }
    memset(env, 0, sizeof(*env));
}

static bool file_contains(const char *path, const uint8_t *needle, size_t len)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (vt_file_read(path, (size_t)1 << 30, &data, &size, NULL) != VTPMCA_OK)
        return false; /* a companion file that does not exist holds nothing */
    bool found = false;
    for (size_t i = 0; !found && len > 0 && i + len <= size; i++)
        found = memcmp(data + i, needle, len) == 0;
    free(data);
    return found;
}

bool keys_db_contains(const keys_env *env, const uint8_t *needle, size_t len)
{
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char path[160];
        snprintf(path, sizeof(path), "%s%s", env->db_path, suffixes[i]);
        if (file_contains(path, needle, len))
            return true;
    }
    return false;
}

int keys_env_setup(void **state)
{
    keys_env *env = calloc(1, sizeof(*env));
    if (env == NULL || keys_env_open(env) != 0) {
        free(env);
        return -1;
    }
    *state = env;
    return 0;
}

int keys_env_teardown(void **state)
{
    keys_env *env = *state;
    keys_env_close(env);
    free(env);
    return 0;
}
