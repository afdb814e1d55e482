/* vtpmca fleet create|list */
#include <stdio.h>
#include <stdlib.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "vtpmca/server_admin.h"

int cmd_fleet_create(const cli_command *cmd, const cli_opts *opts)
{
    const char *name = opts->args[0];
    const char *description =
        opts->value[CLI_OPT_DESCRIPTION] ? opts->value[CLI_OPT_DESCRIPTION] : "";
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    vtpmca_err err = cli_admin_open(opts, true, &admin, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = admin.ops->fleet_create(admin.ctx, name, description, &diag);
    cli_admin_close(&admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot create fleet '%s'", name);
    if (opts->json) {
        json_t *out = json_pack("{s:s, s:s}", "fleet", name, "description", description);
        err = out ? cli_print_json(out) : VTPMCA_ERR_NOMEM;
        json_decref(out);
        if (err != VTPMCA_OK)
            return cli_fail(cmd, err, "cannot print the result");
    } else {
        printf("created fleet %s\n", name);
    }
    return CLI_EXIT_OK;
}

/* The same form as the admin API's GET /v1/admin/fleets. */
static json_t *fleets_to_json(const store_fleet *fleets, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        json_t *item = server_admin_fleet_json(&fleets[i]);
        if (item == NULL || json_array_append_new(list, item) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

int cmd_fleet_list(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    vtpmca_err err = cli_admin_open(opts, false, &admin, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    store_fleet *fleets = NULL;
    size_t n = 0;
    err = admin.ops->fleet_list(admin.ctx, &fleets, &n, &diag);
    cli_admin_close(&admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot list fleets");
    if (opts->json) {
        json_t *list = fleets_to_json(fleets, n);
        err = list ? cli_print_json(list) : VTPMCA_ERR_NOMEM;
        json_decref(list);
    } else {
        printf("%-24s %-7s %-21s %s\n", "FLEET", "POLICY", "CREATED", "DESCRIPTION");
        for (size_t i = 0; i < n; i++) {
            char created[32], policy[16];
            cli_format_time((time_t)fleets[i].created_at, created, sizeof(created));
            if (fleets[i].latest_policy == 0)
                snprintf(policy, sizeof(policy), "-");
            else
                snprintf(policy, sizeof(policy), "v%u", (unsigned)fleets[i].latest_policy);
            printf("%-24s %-7s %-21s %s\n", fleets[i].name, policy, created, fleets[i].description);
        }
    }
    free(fleets);
    if (err != VTPMCA_OK)
        return cli_fail(cmd, err, "cannot print the result");
    return CLI_EXIT_OK;
}
