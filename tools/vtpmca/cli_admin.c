#include "cli_admin.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_remote.h"

/* ---- Local mode: the store opened from --db. ---- */

static vtpmca_err local_fleet_create(void *ctx, const char *name, const char *description,
                                     vtpmca_diag *diag)
{
    return store_fleet_create(ctx, name, description, diag);
}

static vtpmca_err local_fleet_exists(void *ctx, const char *name, vtpmca_diag *diag)
{
    return store_fleet_exists(ctx, name, diag);
}

static vtpmca_err local_fleet_list(void *ctx, store_fleet **out, size_t *n, vtpmca_diag *diag)
{
    return store_fleet_list(ctx, out, n, diag);
}

static vtpmca_err local_policy_put(void *ctx, const char *fleet, const char *policy_json,
                                   const char *author, uint32_t *version_out, vtpmca_diag *diag)
{
    return store_policy_put(ctx, fleet, policy_json, author, version_out, diag);
}

static vtpmca_err local_policy_get(void *ctx, const char *fleet, uint32_t version,
                                   char **policy_json, uint32_t *version_out, vtpmca_diag *diag)
{
    return store_policy_get(ctx, fleet, version, policy_json, version_out, diag);
}

static vtpmca_err local_policy_history(void *ctx, const char *fleet, store_policy_version **out,
                                       size_t *n, vtpmca_diag *diag)
{
    return store_policy_history(ctx, fleet, out, n, diag);
}

static vtpmca_err local_vcek_put(void *ctx, const char *product, const char *signer,
                                 const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                                 size_t der_len, const char *source, vtpmca_diag *diag)
{
    return store_vcek_put(ctx, product, signer, chip_id, tcb, der, der_len, source, diag);
}

static void local_close(void *ctx)
{
    store_close(ctx);
}

static const cli_admin_ops local_ops = {
    .fleet_create = local_fleet_create,
    .fleet_exists = local_fleet_exists,
    .fleet_list = local_fleet_list,
    .policy_put = local_policy_put,
    .policy_get = local_policy_get,
    .policy_history = local_policy_history,
    .vcek_put = local_vcek_put,
    .close = local_close,
};

vtpmca_err cli_admin_open(const cli_opts *opts, bool create, cli_admin *out, vtpmca_diag *diag)
{
    if (opts == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin: missing argument");
    bool remote = false;
    cli_remote_config remote_cfg;
    vtpmca_err err = cli_remote_config_from_opts(opts, &remote, &remote_cfg, diag);
    if (err != VTPMCA_OK)
        return err;
    if (remote) {
        cli_remote *client = NULL;
        err = cli_remote_open(&remote_cfg, &client, diag);
        if (err != VTPMCA_OK)
            return err;
        out->ops = &cli_remote_admin_ops;
        out->ctx = client;
        return VTPMCA_OK;
    }
    const char *db = opts->value[CLI_OPT_DB];
    if (db == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "missing --db FILE (offline) or --server URL (the daemon's admin API; "
                           "or set VTPMCA_SERVER)");
    store *st = NULL;
    err = cli_open_store(db, create, &st, diag);
    if (err != VTPMCA_OK)
        return err;
    out->ops = &local_ops;
    out->ctx = st;
    return VTPMCA_OK;
}

void cli_admin_close(cli_admin *admin)
{
    if (admin == NULL || admin->ops == NULL)
        return;
    admin->ops->close(admin->ctx);
    admin->ops = NULL;
    admin->ctx = NULL;
}

bool cli_admin_is_remote(const cli_admin *admin)
{
    return admin != NULL && admin->ops == &cli_remote_admin_ops;
}

void cli_admin_author(char *buf, size_t size)
{
    const struct passwd *pw = getpwuid(geteuid());
    if (pw != NULL && pw->pw_name != NULL)
        snprintf(buf, size, "cli:%s", pw->pw_name);
    else
        snprintf(buf, size, "cli:uid-%u", (unsigned)geteuid());
}
