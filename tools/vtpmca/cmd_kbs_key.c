/* vtpmca kbs-key show|list|trust|untrust: this service's KBS public key (the key SVSMs
 * remember from key release and bind into their certification requests) and the peer KBS
 * keys whose SVSMs may ask this CA for EK/IAK certificates. Remotely through the admin API
 * (/v1/admin/kbs-key, /v1/admin/kbs-keys/trusted); offline on vtpmcad's files: the key in
 * --state-dir, the peers in --trusted-dir (its trusted_kbs_keys_dir), with the functions the
 * daemon's routes use (server_admin.h), so both print the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_remote.h"
#include "vtpmca/fileio.h"
#include "vtpmca/kbs_binding.h"
#include "vtpmca/server_admin.h"
#include "vtpmca/server_config.h"

#define KBS_KEY_NAME "kbs-key.pem" /* vtpmcad's default kbs_key_file in its state directory */
#define PEERS_PATH SERVER_ADMIN_PREFIX "kbs-keys/trusted"
#define RESTART_NOTE "vtpmcad applies the change to certification at its next start"

/* The daemon's admin API when the options (or VTPMCA_SERVER) ask for it; *remote NULL
 * otherwise. */
static vtpmca_err open_remote(const cli_opts *opts, cli_remote **remote, vtpmca_diag *diag)
{
    *remote = NULL;
    bool is_remote = false;
    cli_remote_config cfg;
    vtpmca_err err = cli_remote_config_from_opts(opts, &is_remote, &cfg, diag);
    if (err == VTPMCA_OK && is_remote)
        err = cli_remote_open(&cfg, remote, diag);
    return err;
}

/* <--state-dir, else vtpmcad's default state directory>/kbs-key.pem, as JSON. */
static vtpmca_err own_key_offline(const cli_opts *opts, json_t **out, vtpmca_diag *diag)
{
    server_config *cfg = malloc(sizeof(*cfg));
    if (cfg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = server_config_defaults(cfg);
    const char *state_dir = opts->value[CLI_OPT_STATE_DIR];
    char path[SERVER_CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", state_dir != NULL ? state_dir : cfg->state_dir,
             KBS_KEY_NAME);
    free(cfg);
    EVP_PKEY *key = NULL;
    if (err == VTPMCA_OK)
        err = kbs_key_load(path, &key, diag);
    if (err == VTPMCA_OK)
        err = server_admin_kbs_key_json(key, out, diag);
    EVP_PKEY_free(key);
    return err;
}

static const char *text_of(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value != NULL ? value : "-";
}

int cmd_kbs_key_show(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    cli_remote *remote = NULL;
    json_t *out = NULL;
    vtpmca_err err = open_remote(opts, &remote, &diag);
    if (err == VTPMCA_OK && remote != NULL)
        err = cli_remote_call(remote, "GET", SERVER_ADMIN_PREFIX "kbs-key", ADMIN_ROLE_AUDITOR,
                              NULL, &out, &diag);
    else if (err == VTPMCA_OK)
        err = own_key_offline(opts, &out, &diag);
    cli_remote_close(remote);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot read the KBS key");
    if (opts->json)
        return cli_print_json_result(cmd, out);
    printf("fingerprint: %s\nalg:         %s\n%s", text_of(out, "fingerprint"), text_of(out, "alg"),
           text_of(out, "pem"));
    json_decref(out);
    return CLI_EXIT_OK;
}

/* Offline commands on the peers need --trusted-dir. */
static vtpmca_err trusted_dir(const cli_opts *opts, const char **dir, vtpmca_diag *diag)
{
    *dir = opts->value[CLI_OPT_TRUSTED_DIR];
    if (*dir == NULL || (*dir)[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "missing --server URL (the daemon's admin API; or set VTPMCA_SERVER) "
                           "or --trusted-dir DIR (offline: vtpmcad's trusted_kbs_keys_dir)");
    return VTPMCA_OK;
}

int cmd_kbs_key_list(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    cli_remote *remote = NULL;
    json_t *out = NULL;
    const char *dir = NULL;
    vtpmca_err err = open_remote(opts, &remote, &diag);
    if (err == VTPMCA_OK && remote != NULL)
        err = cli_remote_call(remote, "GET", PEERS_PATH, ADMIN_ROLE_AUDITOR, NULL, &out, &diag);
    else if (err == VTPMCA_OK && (err = trusted_dir(opts, &dir, &diag)) == VTPMCA_OK)
        err = server_admin_kbs_trusted_list(dir, &out, &diag);
    cli_remote_close(remote);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot list the trusted KBS keys");
    if (opts->json)
        return cli_print_json_result(cmd, out);
    const json_t *keys = json_object_get(out, "keys");
    if (json_array_size(keys) == 0)
        printf("no peer KBS keys are trusted%s\n",
               json_is_null(json_object_get(out, "dir")) ? " (no trusted_kbs_keys_dir)" : "");
    else
        printf("%-64s %-6s %s\n", "FINGERPRINT", "ALG", "FILE");
    size_t i;
    json_t *key;
    json_array_foreach(keys, i, key)
    {
        if (json_object_get(key, "error") != NULL)
            printf("%-64s %-6s %s (%s)\n", "-", "-", text_of(key, "file"), text_of(key, "error"));
        else
            printf("%-64s %-6s %s\n", text_of(key, "fingerprint"), text_of(key, "alg"),
                   text_of(key, "file"));
    }
    json_decref(out);
    return CLI_EXIT_OK;
}

int cmd_kbs_key_trust(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    vtpmca_err err = vt_file_read(opts->args[0], KBS_KEY_FILE_MAX, &pem, &pem_len, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    cli_remote *remote = NULL;
    json_t *out = NULL;
    const char *dir = NULL;
    err = open_remote(opts, &remote, &diag);
    if (err == VTPMCA_OK && remote != NULL) {
        json_t *body = json_pack("{s:s%}", "pem", (const char *)pem, pem_len);
        char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        err =
            text != NULL
                ? cli_remote_call(remote, "POST", PEERS_PATH, ADMIN_ROLE_ADMIN, text, &out, &diag)
                : vtpmca_fail(&diag, VTPMCA_ERR_PARSE, "%s is not a PEM text file", opts->args[0]);
        free(text);
    } else if (err == VTPMCA_OK && (err = trusted_dir(opts, &dir, &diag)) == VTPMCA_OK) {
        /* With --state-dir, this service's own key is recognised as such. */
        json_t *own = NULL;
        if (opts->value[CLI_OPT_STATE_DIR] != NULL)
            err = own_key_offline(opts, &own, &diag);
        if (err == VTPMCA_OK)
            err =
                server_admin_kbs_trust(dir, json_string_value(json_object_get(own, "fingerprint")),
                                       (const char *)pem, pem_len, &out, &diag);
        json_decref(own);
    }
    free(pem);
    cli_remote_close(remote);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot trust %s", opts->args[0]);
    if (opts->json)
        return cli_print_json_result(cmd, out);
    if (json_is_true(json_object_get(out, "already_trusted")))
        printf("KBS key %s (%s) was trusted already\n", text_of(out, "fingerprint"),
               text_of(out, "alg"));
    else
        printf("trusted KBS key %s (%s); " RESTART_NOTE "\n", text_of(out, "fingerprint"),
               text_of(out, "alg"));
    json_decref(out);
    return CLI_EXIT_OK;
}

int cmd_kbs_key_untrust(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    const char *fingerprint = opts->args[0];
    cli_remote *remote = NULL;
    json_t *out = NULL;
    const char *dir = NULL;
    vtpmca_err err = open_remote(opts, &remote, &diag);
    if (err == VTPMCA_OK && remote != NULL) {
        char path[256];
        err = cli_remote_check_segment("fingerprint", fingerprint, &diag);
        snprintf(path, sizeof(path), PEERS_PATH "/%.100s", fingerprint);
        if (err == VTPMCA_OK)
            err = cli_remote_call(remote, "DELETE", path, ADMIN_ROLE_ADMIN, NULL, &out, &diag);
    } else if (err == VTPMCA_OK && (err = trusted_dir(opts, &dir, &diag)) == VTPMCA_OK) {
        err = server_admin_kbs_untrust(dir, fingerprint, &out, &diag);
    }
    cli_remote_close(remote);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot untrust KBS key");
    if (opts->json)
        return cli_print_json_result(cmd, out);
    printf("no longer trusting KBS key %s; " RESTART_NOTE "\n", text_of(out, "fingerprint"));
    json_decref(out);
    return CLI_EXIT_OK;
}
