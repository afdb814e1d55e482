/* vtpmca ledger show|clear|require-admin-clear: the rollback ledger of an instance's
 * filesystem (docs/protocol.md, "Rollback ledger: semantics"). show works offline on --db
 * too (a read); clear and require-admin-clear change the ledger, which only vtpmcad's ledger
 * engine writes, so they go through its admin API (/v1/admin/ledger/<instance>). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "cli_remote.h"
#include "vtpmca/server_admin.h"

/* What the ledger table holds, as the engine's admin view (ledger_inspect) has it. */
static void record_of(const store_ledger_state *state, ledger_record *out)
{
    memset(out, 0, sizeof(*out));
    out->has_entry = state->has_entry;
    memcpy(out->entry.counter, state->counter, LEDGER_COUNTER_LEN);
    memcpy(out->entry.origin, state->origin, LEDGER_COUNTER_LEN);
    out->entry.root_len = state->root_len <= LEDGER_ROOT_MAX ? state->root_len : 0;
    memcpy(out->entry.root, state->root, out->entry.root_len);
    out->entry.time_ms = state->updated_ms;
    out->locked = state->locked;
    out->require_admin_clear = state->require_admin_clear;
    out->fork_refusals = state->fork_refusals;
    out->rollback_refusals = state->rollback_refusals;
}

/* Offline: the ledger row read from the database (a read-only use of a writer connection,
 * which is how the store exposes the table). */
static vtpmca_err local_show(store *st, const char *id, json_t **out, vtpmca_diag *diag)
{
    store_ledger_writer *reader = NULL;
    store_ledger_state state;
    vtpmca_err err = store_ledger_writer_open(st, &reader, diag);
    if (err == VTPMCA_OK)
        err = store_ledger_load(reader, id, &state, diag);
    store_ledger_writer_close(reader);
    if (err == VTPMCA_ERR_NOT_FOUND)
        return vtpmca_fail(diag, err, "the ledger has no record of instance %s", id);
    if (err != VTPMCA_OK)
        return err;
    ledger_record record;
    record_of(&state, &record);
    *out = server_admin_ledger_json(id, &record);
    return *out != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

static vtpmca_err ledger_path(const char *id, const char *suffix, char *buf, size_t size,
                              vtpmca_diag *diag)
{
    vtpmca_err err = store_check_instance_id(id, diag);
    if (err == VTPMCA_OK)
        err = cli_remote_check_segment("instance id", id, diag);
    if (err == VTPMCA_OK)
        snprintf(buf, size, SERVER_ADMIN_PREFIX "ledger/%s%s", id, suffix);
    return err;
}

static const char *text_of(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value != NULL ? value : "-";
}

static const char *yes_no(const json_t *object, const char *key)
{
    return json_is_true(json_object_get(object, key)) ? "yes" : "no";
}

/* Prints a ledger record (consumed). */
static int print_record(const cli_command *cmd, const cli_opts *opts, json_t *record)
{
    if (opts->json)
        return cli_print_json_result(cmd, record);
    printf("instance:            %s\n", text_of(record, "instance"));
    if (json_is_true(json_object_get(record, "has_entry")))
        printf("counter:             %s\norigin:              %s\nroot:                %s\n"
               "updated:             %s\n",
               text_of(record, "counter"), text_of(record, "origin"), text_of(record, "root"),
               text_of(record, "updated_at"));
    else
        printf("counter:             none (no advance accepted since enrollment or a reset)\n");
    printf("locked:              %s\nrequire admin clear: %s\nfork refusals:       %lld\n"
           "rollback refusals:   %lld\n",
           yes_no(record, "locked"), yes_no(record, "require_admin_clear"),
           (long long)json_integer_value(json_object_get(record, "fork_refusals")),
           (long long)json_integer_value(json_object_get(record, "rollback_refusals")));
    json_decref(record);
    return CLI_EXIT_OK;
}

int cmd_ledger_show(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    json_t *out = NULL;
    vtpmca_err err = store_check_instance_id(id, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = cli_admin_open(opts, false, &admin, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    if (cli_admin_is_remote(&admin)) {
        char path[256];
        err = ledger_path(id, "", path, sizeof(path), &diag);
        if (err == VTPMCA_OK)
            err = cli_remote_call(admin.ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &out, &diag);
    } else {
        err = local_show(admin.ctx, id, &out, &diag);
    }
    cli_admin_close(&admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    return print_record(cmd, opts, out);
}

/* POST to /v1/admin/ledger/<id><suffix> on the daemon; offline use is refused. */
static int change(const cli_command *cmd, const cli_opts *opts, const char *suffix, json_t *body)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    json_t *out = NULL;
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    vtpmca_err err = text != NULL ? cli_admin_open(opts, false, &admin, &diag)
                                  : vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err == VTPMCA_OK && !cli_admin_is_remote(&admin)) {
        cli_admin_close(&admin);
        free(text);
        return cli_usage_error(cmd, "only vtpmcad writes the ledger: use --server URL (its admin "
                                    "API), not --db");
    }
    char path[256];
    if (err == VTPMCA_OK) {
        err = ledger_path(id, suffix, path, sizeof(path), &diag);
        if (err == VTPMCA_OK)
            err = cli_remote_call(admin.ctx, "POST", path, ADMIN_ROLE_ADMIN, text, &out, &diag);
        cli_admin_close(&admin);
    }
    free(text);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    return print_record(cmd, opts, out);
}

int cmd_ledger_clear(const cli_command *cmd, const cli_opts *opts)
{
    return change(cmd, opts, "/clear",
                  json_pack("{s:b}", "reset", opts->value[CLI_OPT_RESET] != NULL));
}

int cmd_ledger_require_clear(const cli_command *cmd, const cli_opts *opts)
{
    const char *setting = opts->args[1];
    if (strcmp(setting, "on") != 0 && strcmp(setting, "off") != 0)
        return cli_usage_error(cmd, "the setting is on or off, not '%s'", setting);
    return change(cmd, opts, "/require-admin-clear",
                  json_pack("{s:b}", "on", strcmp(setting, "on") == 0));
}
