/* vtpmca policy create|update|show|list|check */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/snp_policy.h"

/* Reads and validates a policy file; *canonical receives its canonical JSON (malloc'd). */
static vtpmca_err load_canonical_policy(const char *path, char **canonical, vtpmca_diag *diag)
{
    snp_policy *policy = NULL;
    vtpmca_err err = cli_load_policy(path, &policy, diag);
    if (err != VTPMCA_OK)
        return err;
    err = snp_policy_to_json(policy, canonical);
    snp_policy_free(policy);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "cannot render the policy");
    return VTPMCA_OK;
}

/* Prints {"fleet", "version", "policy"} (JSON) or the policy for a person. */
static vtpmca_err print_policy(const char *fleet, uint32_t version, const char *policy_json,
                               bool as_json)
{
    json_error_t jerr;
    json_t *policy = json_loads(policy_json, 0, &jerr);
    if (policy == NULL)
        return VTPMCA_ERR_PARSE;
    vtpmca_err err;
    if (as_json) {
        json_t *out = json_pack("{s:s, s:I, s:o}", "fleet", fleet, "version", (json_int_t)version,
                                "policy", policy);
        err = out ? cli_print_json(out) : VTPMCA_ERR_NOMEM;
        json_decref(out);
    } else {
        printf("fleet %s, policy version %u:\n", fleet, (unsigned)version);
        err = cli_print_json(policy);
        json_decref(policy);
    }
    return err;
}

int cmd_policy_put(const cli_command *cmd, const cli_opts *opts)
{
    const bool creating = strcmp(cmd->name, "create") == 0;
    const char *fleet = opts->value[CLI_OPT_FLEET];
    vtpmca_diag diag = {{0}};
    char *canonical = NULL;
    /* Validate before touching the database: an invalid document changes nothing. */
    vtpmca_err err = load_canonical_policy(opts->value[CLI_OPT_FILE], &canonical, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);

    cli_admin admin;
    err = cli_admin_open(opts, false, &admin, &diag);
    if (err != VTPMCA_OK) {
        free(canonical);
        return cli_fail_diag(cmd, err, &diag, NULL);
    }
    int rc = CLI_EXIT_OK;
    uint32_t latest = 0, version = 0;
    char *current = NULL;
    err = admin.ops->fleet_exists(admin.ctx, fleet, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "fleet '%s'", fleet);
        goto out;
    }
    err = admin.ops->policy_get(admin.ctx, fleet, 0, &current, &latest, &diag);
    if (err != VTPMCA_OK && err != VTPMCA_ERR_NOT_FOUND) {
        rc = cli_fail_diag(cmd, err, &diag, "fleet '%s'", fleet);
        goto out;
    }
    if (creating && err == VTPMCA_OK) {
        rc = cli_fail(cmd, VTPMCA_ERR_CONFLICT,
                      "fleet '%s' already has a policy (version %u); use 'vtpmca policy update'",
                      fleet, (unsigned)latest);
        goto out;
    }
    if (!creating && err == VTPMCA_ERR_NOT_FOUND) {
        rc = cli_fail(cmd, err, "fleet '%s' has no policy yet; use 'vtpmca policy create'", fleet);
        goto out;
    }
    char author[64];
    cli_admin_author(author, sizeof(author));
    err = admin.ops->policy_put(admin.ctx, fleet, canonical, author, &version, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "cannot store the policy of fleet '%s'", fleet);
        goto out;
    }
    if (opts->json) {
        json_t *result = json_pack("{s:s, s:I}", "fleet", fleet, "version", (json_int_t)version);
        err = result ? cli_print_json(result) : VTPMCA_ERR_NOMEM;
        json_decref(result);
        if (err != VTPMCA_OK)
            rc = cli_fail(cmd, err, "policy version %u stored, but printing failed",
                          (unsigned)version);
    } else {
        printf("fleet %s: policy version %u\n", fleet, (unsigned)version);
    }
out:
    free(current);
    free(canonical);
    cli_admin_close(&admin);
    return rc;
}

int cmd_policy_show(const cli_command *cmd, const cli_opts *opts)
{
    const char *fleet = opts->value[CLI_OPT_FLEET];
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    vtpmca_err err = cli_admin_open(opts, false, &admin, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    char *policy_json = NULL;
    uint32_t version = 0;
    err = admin.ops->fleet_exists(admin.ctx, fleet, &diag);
    if (err == VTPMCA_OK)
        err = admin.ops->policy_get(admin.ctx, fleet, opts->version, &policy_json, &version, &diag);
    cli_admin_close(&admin);
    if (err == VTPMCA_ERR_NOT_FOUND && opts->version != 0)
        return cli_fail_diag(cmd, err, &diag, "fleet '%s', policy version %u", fleet,
                             (unsigned)opts->version);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "fleet '%s'", fleet);
    err = print_policy(fleet, version, policy_json, opts->json);
    free(policy_json);
    if (err != VTPMCA_OK)
        return cli_fail(cmd, VTPMCA_ERR_INTERNAL, "stored policy of fleet '%s' is not JSON", fleet);
    return CLI_EXIT_OK;
}

/* The same form as the admin API's GET /v1/admin/fleets/<name>/policy/history. */
static json_t *history_to_json(const store_policy_version *versions, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        json_t *item = server_admin_policy_version_json(&versions[i]);
        if (item == NULL || json_array_append_new(list, item) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

int cmd_policy_list(const cli_command *cmd, const cli_opts *opts)
{
    const char *fleet = opts->value[CLI_OPT_FLEET];
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    vtpmca_err err = cli_admin_open(opts, false, &admin, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    store_policy_version *versions = NULL;
    size_t n = 0;
    err = admin.ops->fleet_exists(admin.ctx, fleet, &diag);
    if (err == VTPMCA_OK)
        err = admin.ops->policy_history(admin.ctx, fleet, &versions, &n, &diag);
    cli_admin_close(&admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "fleet '%s'", fleet);
    if (opts->json) {
        json_t *list = history_to_json(versions, n);
        err = list ? cli_print_json(list) : VTPMCA_ERR_NOMEM;
        json_decref(list);
    } else {
        printf("%-8s %-21s %s\n", "VERSION", "CREATED", "AUTHOR");
        for (size_t i = 0; i < n; i++) {
            char created[32];
            cli_format_time((time_t)versions[i].created_at, created, sizeof(created));
            printf("%-8u %-21s %s\n", (unsigned)versions[i].version, created, versions[i].author);
        }
    }
    free(versions);
    if (err != VTPMCA_OK)
        return cli_fail(cmd, err, "cannot print the result");
    return CLI_EXIT_OK;
}

int cmd_policy_check(const cli_command *cmd, const cli_opts *opts)
{
    const char *path = opts->value[CLI_OPT_FILE];
    vtpmca_diag diag = {{0}};
    char *canonical = NULL;
    vtpmca_err err = load_canonical_policy(path, &canonical, &diag);
    /* The check's answer: a document that does not validate is a failed check (1); a file
     * that cannot be read is an input error (2). */
    bool invalid = err == VTPMCA_ERR_PARSE || err == VTPMCA_ERR_UNSUPPORTED;
    if (err != VTPMCA_OK && !invalid)
        return cli_fail_diag(cmd, err, &diag, NULL);
    if (opts->json) {
        json_error_t jerr;
        json_t *out = invalid ? json_pack("{s:b, s:s}", "valid", 0, "error", diag.msg)
                              : json_pack("{s:b, s:o}", "valid", 1, "policy",
                                          json_loads(canonical, 0, &jerr));
        if (out == NULL || cli_print_json(out) != VTPMCA_OK) {
            json_decref(out);
            free(canonical);
            return cli_fail(cmd, VTPMCA_ERR_INTERNAL, "cannot print the result");
        }
        json_decref(out);
    } else if (!invalid) {
        printf("policy %s is valid\n", path);
    }
    free(canonical);
    if (invalid) {
        cli_fail_diag(cmd, err, &diag, NULL);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}
