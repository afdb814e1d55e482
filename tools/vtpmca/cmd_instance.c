/* vtpmca instance enroll|wrap-key|show|list|enable|disable|history: instances (SVSMs) that
 * get a persistence key after attestation. Offline, on the database named by --db and the
 * service master key; admin actions are recorded in the audit log. */
#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/keyvault.h"

/* --master-key, else master.key in the directory of the --db file (vtpmcad's default layout:
 * <state_dir>/vtpmca.db and <state_dir>/master.key). */
static vtpmca_err master_key_path(const cli_opts *opts, char *out, size_t size, vtpmca_diag *diag)
{
    const char *given = opts->value[CLI_OPT_MASTER_KEY];
    const char *db = opts->value[CLI_OPT_DB];
    if (given != NULL) {
        snprintf(out, size, "%s", given);
        return VTPMCA_OK;
    }
    if (db == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "give --master-key FILE or --db FILE");
    char *copy = strdup(strncmp(db, "sqlite:", 7) == 0 ? db + 7 : db);
    if (copy == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    snprintf(out, size, "%s/master.key", dirname(copy));
    free(copy);
    return VTPMCA_OK;
}

/* Opens (or, like vtpmcad, creates) the master key, saying so when it is new: a mistyped path
 * would otherwise wrap keys under a key the daemon never sees. */
static vtpmca_err open_vault(const cli_command *cmd, const cli_opts *opts, keyvault **out,
                             vtpmca_diag *diag)
{
    char path[4096];
    vtpmca_err err = master_key_path(opts, path, sizeof(path), diag);
    if (err != VTPMCA_OK)
        return err;
    bool existed = access(path, F_OK) == 0;
    err = keyvault_open(path, true, out, diag);
    if (err == VTPMCA_OK && !existed)
        fprintf(stderr, "vtpmca %s %s: created a new master key in %s\n", cmd->group, cmd->name,
                path);
    return err;
}

static void record(store *st, const char *action, const char *instance_id, const char *detail)
{
    store_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    cli_admin_author(ev.actor, sizeof(ev.actor));
    snprintf(ev.action, sizeof(ev.action), "%s", action);
    snprintf(ev.instance_id, sizeof(ev.instance_id), "%s", instance_id);
    snprintf(ev.outcome, sizeof(ev.outcome), "ok");
    snprintf(ev.detail, sizeof(ev.detail), "%s", detail);
    vtpmca_diag diag = {{0}};
    if (store_audit_append(st, &ev, &diag) != VTPMCA_OK)
        fprintf(stderr, "vtpmca: warning: the audit log did not take the %s record: %s\n", action,
                diag.msg);
}

static json_t *instance_to_json(const store_instance *inst)
{
    char created[32], host_data[65];
    cli_format_time((time_t)inst->created_at, created, sizeof(created));
    if (inst->has_host_data)
        vt_hex_encode(inst->host_data, sizeof(inst->host_data), host_data, sizeof(host_data));
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:b, s:s}", "instance", inst->id, "fleet",
                     inst->fleet, "resource_path", inst->resource_path, "key_mode",
                     store_key_mode_name(inst->key_mode), "host_data",
                     inst->has_host_data ? host_data : NULL, "disabled", inst->disabled,
                     "created_at", created);
}

/* Prints a JSON value made by the caller (consumed), or reports it could not be made. */
static int print_json_result(const cli_command *cmd, json_t *value)
{
    vtpmca_err err = value != NULL ? cli_print_json(value) : VTPMCA_ERR_NOMEM;
    json_decref(value);
    return err == VTPMCA_OK ? CLI_EXIT_OK : cli_fail(cmd, err, "cannot print the result");
}

int cmd_instance_enroll(const cli_command *cmd, const cli_opts *opts)
{
    enroll_request req = {.instance_id = opts->args[0],
                          .fleet = opts->value[CLI_OPT_FLEET],
                          .resource_path = opts->value[CLI_OPT_RESOURCE_PATH],
                          .mode = STORE_KEY_GENERATED};
    const char *mode = opts->value[CLI_OPT_MODE];
    if (mode != NULL && store_key_mode_parse(mode, &req.mode) != VTPMCA_OK)
        return cli_usage_error(cmd, "--mode must be generated or wrapped, not '%s'", mode);
    uint8_t host_data[32];
    const char *host_hex = opts->value[CLI_OPT_HOST_DATA];
    if (host_hex != NULL) {
        if (strlen(host_hex) != 64 || vt_hex_decode_fixed(host_hex, host_data, 32) != VTPMCA_OK)
            return cli_usage_error(cmd, "--host-data must be 64 hex digits (32 bytes)");
        req.host_data = host_data;
    }
    char actor[64];
    cli_admin_author(actor, sizeof(actor));
    req.actor = actor;

    vtpmca_diag diag = {{0}};
    store *st = NULL;
    keyvault *vault = NULL;
    vtpmca_err err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    if (err == VTPMCA_OK)
        err = open_vault(cmd, opts, &vault, &diag);
    enroll_result res;
    if (err == VTPMCA_OK)
        err = enrollment_enroll(st, vault, &req, &res, &diag);
    keyvault_free(vault);
    store_close(st);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot enroll instance '%s'", req.instance_id);
    if (opts->json)
        return print_json_result(cmd, json_pack("{s:s, s:s, s:s, s:s, s:s?}", "instance",
                                                req.instance_id, "fleet", req.fleet, "key_mode",
                                                store_key_mode_name(req.mode), "resource_path",
                                                res.resource_path, "host_data", host_hex));
    printf("enrolled instance %s in fleet %s (key mode %s)\n", req.instance_id, req.fleet,
           store_key_mode_name(req.mode));
    printf("resource path: %s\n", res.resource_path);
    return CLI_EXIT_OK;
}

/* With --db, the instance must be enrolled in wrapped-key mode: a blob for any other
 * instance would never be released. */
static vtpmca_err check_wrapped_instance(const char *db, const char *id, vtpmca_diag *diag)
{
    store *st = NULL;
    vtpmca_err err = cli_open_store(db, false, &st, diag);
    store_instance inst;
    if (err == VTPMCA_OK)
        err = store_instance_get(st, id, &inst, diag);
    if (err == VTPMCA_OK) {
        if (inst.key_mode != STORE_KEY_WRAPPED)
            err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                              "instance %s is enrolled with a service-generated key, not in "
                              "wrapped-key mode",
                              id);
        store_instance_free_fields(&inst);
    }
    store_close(st);
    return err;
}

int cmd_instance_wrap_key(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    uint8_t *key = NULL;
    size_t key_len = 0;
    /* One byte more than allowed, so an oversized file is recognised as such. */
    vtpmca_err err =
        vt_file_read(opts->value[CLI_OPT_KEY], KEYVAULT_KEY_MAX + 1, &key, &key_len, &diag);
    if (err == VTPMCA_OK && (key_len == 0 || key_len > KEYVAULT_KEY_MAX))
        err = vtpmca_fail(&diag, VTPMCA_ERR_INVALID_ARG,
                          "%s holds %zu bytes; a key is 1 to %d raw bytes",
                          opts->value[CLI_OPT_KEY], key_len, KEYVAULT_KEY_MAX);
    if (err == VTPMCA_ERR_LIMIT)
        err = vtpmca_fail(&diag, VTPMCA_ERR_INVALID_ARG, "%s is larger than %d bytes",
                          opts->value[CLI_OPT_KEY], KEYVAULT_KEY_MAX);
    if (err == VTPMCA_OK && opts->value[CLI_OPT_DB] != NULL)
        err = check_wrapped_instance(opts->value[CLI_OPT_DB], id, &diag);
    keyvault *vault = NULL;
    if (err == VTPMCA_OK)
        err = open_vault(cmd, opts, &vault, &diag);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (err == VTPMCA_OK)
        err = enrollment_wrap_key(vault, id, key, key_len, &blob, &blob_len, &diag);
    if (key != NULL)
        OPENSSL_clear_free(key, key_len);
    keyvault_free(vault);
    char *text = NULL;
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(blob, blob_len, VT_B64_URL_NOPAD, &text);
    free(blob);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot wrap a key for '%s'", id);
    int rc = CLI_EXIT_OK;
    if (opts->json)
        rc = print_json_result(cmd, json_pack("{s:s, s:s}", "instance", id, "wrapped_key", text));
    else
        printf("%s\n", text);
    free(text);
    return rc;
}

int cmd_instance_show(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    store_instance inst;
    vtpmca_err err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    if (err == VTPMCA_OK)
        err = store_instance_get(st, id, &inst, &diag);
    store_close(st);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    int rc = CLI_EXIT_OK;
    if (opts->json) {
        rc = print_json_result(cmd, instance_to_json(&inst));
    } else {
        char created[32], host_data[65] = "any";
        cli_format_time((time_t)inst.created_at, created, sizeof(created));
        if (inst.has_host_data)
            vt_hex_encode(inst.host_data, sizeof(inst.host_data), host_data, sizeof(host_data));
        printf("instance:      %s\nfleet:         %s\nresource path: %s\nkey mode:      %s\n"
               "host_data:     %s\nstatus:        %s\ncreated:       %s\n",
               inst.id, inst.fleet, inst.resource_path, store_key_mode_name(inst.key_mode),
               host_data, inst.disabled ? "disabled" : "enabled", created);
    }
    store_instance_free_fields(&inst);
    return rc;
}

int cmd_instance_list(const cli_command *cmd, const cli_opts *opts)
{
    const char *fleet = opts->value[CLI_OPT_FLEET];
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    vtpmca_err err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    if (err == VTPMCA_OK && fleet != NULL)
        err = store_fleet_exists(st, fleet, &diag);
    json_t *list = opts->json ? json_array() : NULL;
    if (err == VTPMCA_OK && opts->json && list == NULL)
        err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && !opts->json)
        printf("%-24s %-16s %-9s %-8s %s\n", "INSTANCE", "FLEET", "KEY MODE", "STATUS",
               "RESOURCE PATH");
    /* Page through every instance, one store call per STORE_LIST_MAX. */
    char after[STORE_INSTANCE_ID_MAX + 1] = "";
    while (err == VTPMCA_OK) {
        store_instance *items = NULL;
        size_t n = 0;
        err = store_instance_list(st, fleet, after[0] != '\0' ? after : NULL, STORE_LIST_MAX,
                                  &items, &n, &diag);
        for (size_t i = 0; err == VTPMCA_OK && i < n; i++) {
            if (opts->json) {
                json_t *item = instance_to_json(&items[i]);
                if (item == NULL || json_array_append_new(list, item) != 0)
                    err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
            } else {
                printf("%-24s %-16s %-9s %-8s %s\n", items[i].id, items[i].fleet,
                       store_key_mode_name(items[i].key_mode),
                       items[i].disabled ? "disabled" : "enabled", items[i].resource_path);
            }
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", items[n - 1].id);
        store_instance_list_free(items, n);
        if (n < STORE_LIST_MAX)
            break;
    }
    store_close(st);
    if (err != VTPMCA_OK) {
        json_decref(list);
        return cli_fail_diag(cmd, err, &diag, "cannot list instances");
    }
    return opts->json ? print_json_result(cmd, list) : CLI_EXIT_OK;
}

int cmd_instance_set_disabled(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    const bool disable = strcmp(cmd->name, "disable") == 0;
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    vtpmca_err err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    if (err == VTPMCA_OK)
        err = store_instance_set_disabled(st, id, disable, &diag);
    if (err == VTPMCA_OK)
        record(st, disable ? "instance.disable" : "instance.enable", id,
               disable ? "key release refused until enabled again" : "key release allowed");
    store_close(st);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    if (opts->json)
        return print_json_result(cmd, json_pack("{s:s, s:b}", "instance", id, "disabled", disable));
    printf("%s instance %s\n", disable ? "disabled" : "enabled", id);
    return CLI_EXIT_OK;
}

static json_t *event_to_json(const store_audit_event *ev, const char *at)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)ev->seq, "at",
                     at, "actor", ev->actor, "action", ev->action, "outcome", ev->outcome,
                     "measurement", ev->measurement, "chip_id", ev->chip_id, "detail", ev->detail);
}

int cmd_instance_history(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    store *st = NULL;
    vtpmca_err err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    if (err == VTPMCA_OK)
        err = store_check_instance_id(id, &diag);
    json_t *list = opts->json ? json_array() : NULL;
    if (err == VTPMCA_OK && opts->json && list == NULL)
        err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && !opts->json)
        printf("%-24s %-18s %-20s %-20s %s\n", "TIME", "ACTION", "OUTCOME", "ACTOR", "DETAIL");
    store_audit_filter filter = {.instance_id = id, .limit = STORE_LIST_MAX};
    while (err == VTPMCA_OK) {
        store_audit_event *events = NULL;
        size_t n = 0;
        err = store_audit_query(st, &filter, &events, &n, &diag);
        for (size_t i = 0; err == VTPMCA_OK && i < n; i++) {
            const store_audit_event *ev = &events[i];
            char at[48];
            cli_format_time((time_t)(ev->at_ms / 1000), at, sizeof(at));
            if (opts->json) {
                json_t *item = event_to_json(ev, at);
                if (item == NULL || json_array_append_new(list, item) != 0)
                    err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
            } else {
                printf("%-24s %-18s %-20s %-20s %s\n", at, ev->action, ev->outcome, ev->actor,
                       ev->detail);
            }
        }
        if (n > 0)
            filter.after_seq = events[n - 1].seq;
        free(events);
        if (n < STORE_LIST_MAX)
            break;
    }
    store_close(st);
    if (err != VTPMCA_OK) {
        json_decref(list);
        return cli_fail_diag(cmd, err, &diag, NULL);
    }
    return opts->json ? print_json_result(cmd, list) : CLI_EXIT_OK;
}
