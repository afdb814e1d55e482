/* vtpmca instance enroll|wrap-key|show|list|enable|disable|re-enroll|delete: instances (SVSMs)
 * that get a persistence key after attestation. Each runs offline on the database of --db
 * (with the service master key beside it) or on the daemon's admin API (--server), through
 * the two implementations of instance_ops below; both produce the admin API's JSON forms
 * (server_admin.h), so a command prints the same either way. Offline admin actions are
 * recorded in the audit log here; the daemon records its own. (`instance history` and
 * `instance bulk` are in cmd_audit.c and cmd_bulk.c.) */
#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "cli_remote.h"
#include "vtpmca/encoding.h"
#include "vtpmca/enrollment.h"
#include "vtpmca/fileio.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/server_admin.h"

#define LIST_PAGE STORE_LIST_MAX /* instances per store call or admin API request */

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

vtpmca_err cli_open_master_key(const cli_command *cmd, const cli_opts *opts, keyvault **out,
                               vtpmca_diag *diag)
{
    char path[4096];
    vtpmca_err err = master_key_path(opts, path, sizeof(path), diag);
    if (err != VTPMCA_OK)
        return err;
    /* Like vtpmcad, create it when missing, but say so: a mistyped path would otherwise wrap
     * keys under a key the daemon never sees. */
    bool existed = access(path, F_OK) == 0;
    err = keyvault_open(path, true, out, diag);
    if (err == VTPMCA_OK && !existed)
        fprintf(stderr, "vtpmca %s %s: created a new master key in %s\n", cmd->group, cmd->name,
                path);
    return err;
}

/* An offline admin action in the audit log ("instance.<verb>", actor "cli:<user>"). */
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

/* Every operation answers the admin API's JSON form (*out, the caller's reference). */
typedef struct {
    vtpmca_err (*enroll)(void *ctx, const keyvault *vault, const enroll_request *req, json_t **out,
                         vtpmca_diag *diag);
    vtpmca_err (*get)(void *ctx, const char *id, json_t **out, vtpmca_diag *diag);
    /* One page (a JSON array) of instances after `after` (NULL: from the start); next gets
     * the id to go on from, "" after the last page. */
    vtpmca_err (*list)(void *ctx, const char *fleet, const char *after, json_t **page,
                       char next[STORE_INSTANCE_ID_MAX + 1], vtpmca_diag *diag);
    vtpmca_err (*set_disabled)(void *ctx, const char *id, bool disabled, json_t **out,
                               vtpmca_diag *diag);
    vtpmca_err (*reenroll)(void *ctx, const char *id, json_t **out, vtpmca_diag *diag);
    vtpmca_err (*remove)(void *ctx, const char *id, json_t **out, vtpmca_diag *diag);
    vtpmca_err (*wrap_key)(void *ctx, const keyvault *vault, const char *id, const uint8_t *key,
                           size_t key_len, json_t **out, vtpmca_diag *diag);
} instance_ops;

/* ---- Offline: the store opened from --db ---- */

static vtpmca_err made(json_t *value, json_t **out, vtpmca_diag *diag)
{
    *out = value;
    return value != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

static vtpmca_err local_get(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    store_instance inst;
    vtpmca_err err = store_instance_get(ctx, id, &inst, diag);
    if (err != VTPMCA_OK)
        return err;
    err = made(server_admin_instance_json(&inst), out, diag);
    store_instance_free_fields(&inst);
    return err;
}

static vtpmca_err local_enroll(void *ctx, const keyvault *vault, const enroll_request *req,
                               json_t **out, vtpmca_diag *diag)
{
    enroll_result res;
    vtpmca_err err = enrollment_enroll(ctx, vault, req, &res, diag);
    return err == VTPMCA_OK ? local_get(ctx, req->instance_id, out, diag) : err;
}

static vtpmca_err local_list(void *ctx, const char *fleet, const char *after, json_t **page,
                             char next[STORE_INSTANCE_ID_MAX + 1], vtpmca_diag *diag)
{
    next[0] = '\0';
    vtpmca_err err =
        fleet != NULL && after == NULL ? store_fleet_exists(ctx, fleet, diag) : VTPMCA_OK;
    store_instance *items = NULL;
    size_t n = 0;
    if (err == VTPMCA_OK)
        err = store_instance_list(ctx, fleet, after, LIST_PAGE, &items, &n, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_instance_json(&items[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (n == LIST_PAGE)
        snprintf(next, STORE_INSTANCE_ID_MAX + 1, "%s", items[n - 1].id);
    store_instance_list_free(items, n);
    return made(list, page, diag);
}

static vtpmca_err local_set_disabled(void *ctx, const char *id, bool disabled, json_t **out,
                                     vtpmca_diag *diag)
{
    vtpmca_err err = store_instance_set_disabled(ctx, id, disabled, diag);
    if (err != VTPMCA_OK)
        return err;
    record(ctx, disabled ? "instance.disable" : "instance.enable", id,
           disabled ? "key release refused until enabled again" : "key release allowed");
    return local_get(ctx, id, out, diag);
}

static vtpmca_err local_reenroll(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    vtpmca_err err = store_instance_ek_reenroll_grant(ctx, id, diag);
    if (err != VTPMCA_OK)
        return err;
    record(ctx, "instance.reenroll", id, "the next certification may present another EK");
    return made(json_pack("{s:s, s:b}", "instance", id, "ek_change_allowed", true), out, diag);
}

static vtpmca_err local_remove(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    store_instance_deletion deletion;
    vtpmca_err err = store_instance_delete(ctx, id, &deletion, diag);
    if (err != VTPMCA_OK)
        return err;
    char detail[96];
    snprintf(detail, sizeof(detail), "deleted with its key; %zu certificate%s revoked",
             deletion.certs_revoked, deletion.certs_revoked == 1 ? "" : "s");
    record(ctx, "instance.delete", id, detail);
    return made(json_pack("{s:s, s:b, s:I, s:b}", "instance", id, "deleted", true,
                          "certificates_revoked", (json_int_t)deletion.certs_revoked,
                          "ledger_key_deleted", deletion.ledger_key_deleted),
                out, diag);
}

/* Wraps a key; with a store (ctx), only for an instance enrolled in wrapped-key mode, since
 * a blob for any other instance would never be released. */
static vtpmca_err local_wrap_key(void *ctx, const keyvault *vault, const char *id,
                                 const uint8_t *key, size_t key_len, json_t **out,
                                 vtpmca_diag *diag)
{
    vtpmca_err err = VTPMCA_OK;
    if (ctx != NULL) {
        store_instance inst;
        err = store_instance_get(ctx, id, &inst, diag);
        if (err == VTPMCA_OK) {
            if (inst.key_mode != STORE_KEY_WRAPPED)
                err = vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                                  "instance %s is enrolled with a service-generated key, not in "
                                  "wrapped-key mode",
                                  id);
            store_instance_free_fields(&inst);
        }
    }
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (err == VTPMCA_OK)
        err = enrollment_wrap_key(vault, id, key, key_len, &blob, &blob_len, diag);
    char *text = NULL;
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(blob, blob_len, VT_B64_URL_NOPAD, &text);
    free(blob);
    if (err == VTPMCA_OK)
        err = made(json_pack("{s:s, s:s}", "instance", id, "wrapped_key", text), out, diag);
    free(text);
    return err;
}

static const instance_ops local_ops = {
    .enroll = local_enroll,
    .get = local_get,
    .list = local_list,
    .set_disabled = local_set_disabled,
    .reenroll = local_reenroll,
    .remove = local_remove,
    .wrap_key = local_wrap_key,
};

/* ---- Remote: the daemon's admin API ---- */

/* "/v1/admin/instances/<id><suffix>" after checking the id can be a path segment. */
static vtpmca_err instance_path(const char *id, const char *suffix, char *buf, size_t size,
                                vtpmca_diag *diag)
{
    vtpmca_err err = store_check_instance_id(id, diag);
    if (err == VTPMCA_OK)
        err = cli_remote_check_segment("instance id", id, diag);
    if (err == VTPMCA_OK)
        snprintf(buf, size, SERVER_ADMIN_PREFIX "instances/%s%s", id, suffix);
    return err;
}

/* `method` on an instance's path (suffix) with a JSON body (NULL: none). */
static vtpmca_err remote_instance_call(void *ctx, const char *method, const char *id,
                                       const char *suffix, admin_role role, const char *body,
                                       json_t **out, vtpmca_diag *diag)
{
    char path[256];
    vtpmca_err err = instance_path(id, suffix, path, sizeof(path), diag);
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, method, path, role, body, out, diag);
    return err;
}

/* Sends a JSON object made by the caller (consumed). */
static vtpmca_err remote_post_json(void *ctx, const char *path, json_t *body, json_t **out,
                                   vtpmca_diag *diag)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = cli_remote_call(ctx, "POST", path, ADMIN_ROLE_ADMIN, text, out, diag);
    OPENSSL_clear_free(text, strlen(text)); /* may hold a key (wrap-key) */
    return err;
}

static vtpmca_err remote_enroll(void *ctx, const keyvault *vault, const enroll_request *req,
                                json_t **out, vtpmca_diag *diag)
{
    (void)vault; /* the daemon uses its own master key */
    char host_data[65];
    if (req->host_data != NULL)
        vt_hex_encode(req->host_data, 32, host_data, sizeof(host_data));
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:s*, s:s*}", "instance", req->instance_id, "fleet", req->fleet,
                  "mode", store_key_mode_name(req->mode), "host_data",
                  req->host_data != NULL ? host_data : NULL, "resource_path", req->resource_path);
    return remote_post_json(ctx, SERVER_ADMIN_PREFIX "instances", body, out, diag);
}

static vtpmca_err remote_get(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    return remote_instance_call(ctx, "GET", id, "", ADMIN_ROLE_AUDITOR, NULL, out, diag);
}

static vtpmca_err remote_list(void *ctx, const char *fleet, const char *after, json_t **page,
                              char next[STORE_INSTANCE_ID_MAX + 1], vtpmca_diag *diag)
{
    next[0] = '\0';
    char path[512];
    int n = snprintf(path, sizeof(path), SERVER_ADMIN_PREFIX "instances?limit=%d", LIST_PAGE);
    vtpmca_err err = VTPMCA_OK;
    if (fleet != NULL && (err = cli_remote_check_segment("fleet name", fleet, diag)) == VTPMCA_OK)
        n += snprintf(path + n, sizeof(path) - (size_t)n, "&fleet=%s", fleet);
    if (err == VTPMCA_OK && after != NULL &&
        (err = cli_remote_check_segment("instance id", after, diag)) == VTPMCA_OK)
        snprintf(path + n, sizeof(path) - (size_t)n, "&after=%s", after);
    json_t *answer = NULL;
    if (err == VTPMCA_OK)
        err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *list = json_object_get(answer, "instances");
    const char *following = json_string_value(json_object_get(answer, "next_after"));
    if (!json_is_array(list)) {
        json_decref(answer);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the daemon's answer has no instances");
    }
    if (following != NULL)
        snprintf(next, STORE_INSTANCE_ID_MAX + 1, "%s", following);
    *page = json_incref(list);
    json_decref(answer);
    return VTPMCA_OK;
}

static vtpmca_err remote_set_disabled(void *ctx, const char *id, bool disabled, json_t **out,
                                      vtpmca_diag *diag)
{
    return remote_instance_call(ctx, "POST", id, disabled ? "/disable" : "/enable",
                                ADMIN_ROLE_ADMIN, "{}", out, diag);
}

static vtpmca_err remote_reenroll(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    return remote_instance_call(ctx, "POST", id, "/re-enroll", ADMIN_ROLE_ADMIN, "{}", out, diag);
}

static vtpmca_err remote_remove(void *ctx, const char *id, json_t **out, vtpmca_diag *diag)
{
    return remote_instance_call(ctx, "DELETE", id, "", ADMIN_ROLE_ADMIN, NULL, out, diag);
}

static vtpmca_err remote_wrap_key(void *ctx, const keyvault *vault, const char *id,
                                  const uint8_t *key, size_t key_len, json_t **out,
                                  vtpmca_diag *diag)
{
    (void)vault;
    char path[256], *b64 = NULL;
    vtpmca_err err = instance_path(id, "/wrap-key", path, sizeof(path), diag);
    if (err == VTPMCA_OK && vt_b64_encode_alloc(key, key_len, VT_B64_STD, &b64) != VTPMCA_OK)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    if (err != VTPMCA_OK)
        return err;
    json_t *body = json_pack("{s:s}", "key", b64);
    OPENSSL_clear_free(b64, strlen(b64));
    return remote_post_json(ctx, path, body, out, diag);
}

static const instance_ops remote_ops = {
    .enroll = remote_enroll,
    .get = remote_get,
    .list = remote_list,
    .set_disabled = remote_set_disabled,
    .reenroll = remote_reenroll,
    .remove = remote_remove,
    .wrap_key = remote_wrap_key,
};

/* ---- Commands ---- */

typedef struct {
    cli_admin admin;
    const instance_ops *ops;
} backend;

static vtpmca_err backend_open(const cli_opts *opts, backend *b, vtpmca_diag *diag)
{
    memset(b, 0, sizeof(*b)); /* closing a backend that did not open is a no-op */
    vtpmca_err err = cli_admin_open(opts, false, &b->admin, diag);
    b->ops = err == VTPMCA_OK && cli_admin_is_remote(&b->admin) ? &remote_ops : &local_ops;
    return err;
}

static const char *text_of(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value != NULL ? value : "-";
}

/* The commands on one instance (args[0]) that share a shape: call, then print the answer. */
typedef enum {
    INSTANCE_SHOW,
    INSTANCE_ENABLE,
    INSTANCE_DISABLE,
    INSTANCE_REENROLL,
    INSTANCE_DELETE
} instance_action;

/* Runs action on instance opts->args[0]. Returns true when the command is finished (an error,
 * or --json printed) with *exit_code set; false leaves *out for the caller to print as text. */
static bool instance_action_run(const cli_command *cmd, const cli_opts *opts,
                                instance_action action, json_t **out, int *exit_code)
{
    const char *id = opts->args[0];
    vtpmca_diag diag = {{0}};
    backend b;
    *out = NULL;
    vtpmca_err err = backend_open(opts, &b, &diag);
    if (err == VTPMCA_OK) {
        switch (action) {
        case INSTANCE_SHOW:
            err = b.ops->get(b.admin.ctx, id, out, &diag);
            break;
        case INSTANCE_ENABLE:
        case INSTANCE_DISABLE:
            err = b.ops->set_disabled(b.admin.ctx, id, action == INSTANCE_DISABLE, out, &diag);
            break;
        case INSTANCE_REENROLL:
            err = b.ops->reenroll(b.admin.ctx, id, out, &diag);
            break;
        case INSTANCE_DELETE:
            err = b.ops->remove(b.admin.ctx, id, out, &diag);
            break;
        }
        cli_admin_close(&b.admin);
    }
    if (err != VTPMCA_OK) {
        *exit_code = cli_fail_diag(cmd, err, &diag, NULL);
        return true;
    }
    if (opts->json) {
        *exit_code = cli_print_json_result(cmd, *out);
        return true;
    }
    return false;
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
    backend b;
    keyvault *vault = NULL;
    json_t *out = NULL;
    vtpmca_err err = backend_open(opts, &b, &diag);
    if (err == VTPMCA_OK && !cli_admin_is_remote(&b.admin))
        err = cli_open_master_key(cmd, opts, &vault, &diag);
    if (err == VTPMCA_OK)
        err = b.ops->enroll(b.admin.ctx, vault, &req, &out, &diag);
    keyvault_free(vault);
    cli_admin_close(&b.admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot enroll instance '%s'", req.instance_id);
    if (opts->json)
        return cli_print_json_result(cmd, out);
    printf("enrolled instance %s in fleet %s (key mode %s)\n", text_of(out, "instance"),
           text_of(out, "fleet"), text_of(out, "key_mode"));
    printf("resource path: %s\n", text_of(out, "resource_path"));
    json_decref(out);
    return CLI_EXIT_OK;
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
    /* Remotely the daemon wraps; offline the master key does, checked against --db if any. */
    bool remote = false;
    cli_remote_config remote_cfg;
    if (err == VTPMCA_OK)
        err = cli_remote_config_from_opts(opts, &remote, &remote_cfg, &diag);
    backend b = {{NULL, NULL}, &local_ops};
    bool opened = false;
    if (err == VTPMCA_OK && (remote || opts->value[CLI_OPT_DB] != NULL))
        opened = (err = backend_open(opts, &b, &diag)) == VTPMCA_OK;
    keyvault *vault = NULL;
    if (err == VTPMCA_OK && !remote)
        err = cli_open_master_key(cmd, opts, &vault, &diag);
    json_t *out = NULL;
    if (err == VTPMCA_OK)
        err = b.ops->wrap_key(b.admin.ctx, vault, id, key, key_len, &out, &diag);
    if (key != NULL)
        OPENSSL_clear_free(key, key_len);
    keyvault_free(vault);
    if (opened)
        cli_admin_close(&b.admin);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot wrap a key for '%s'", id);
    if (opts->json)
        return cli_print_json_result(cmd, out);
    printf("%s\n", text_of(out, "wrapped_key"));
    json_decref(out);
    return CLI_EXIT_OK;
}

int cmd_instance_show(const cli_command *cmd, const cli_opts *opts)
{
    json_t *out;
    int exit_code;
    if (instance_action_run(cmd, opts, INSTANCE_SHOW, &out, &exit_code))
        return exit_code;
    const char *host_data = json_string_value(json_object_get(out, "host_data"));
    printf("instance:      %s\nfleet:         %s\nresource path: %s\nkey mode:      %s\n"
           "host_data:     %s\nstatus:        %s\ncreated:       %s\n",
           text_of(out, "instance"), text_of(out, "fleet"), text_of(out, "resource_path"),
           text_of(out, "key_mode"), host_data != NULL ? host_data : "any",
           json_is_true(json_object_get(out, "disabled")) ? "disabled" : "enabled",
           text_of(out, "created_at"));
    json_decref(out);
    return CLI_EXIT_OK;
}

int cmd_instance_list(const cli_command *cmd, const cli_opts *opts)
{
    const char *fleet = opts->value[CLI_OPT_FLEET];
    vtpmca_diag diag = {{0}};
    backend b;
    vtpmca_err err = backend_open(opts, &b, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    json_t *all = opts->json ? json_array() : NULL;
    if (opts->json && all == NULL)
        err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
    bool header = false;
    /* Page through every instance: one store call or admin API request per page. */
    char after[STORE_INSTANCE_ID_MAX + 1] = "", next[STORE_INSTANCE_ID_MAX + 1] = "";
    while (err == VTPMCA_OK) {
        json_t *page = NULL;
        err = b.ops->list(b.admin.ctx, fleet, after[0] != '\0' ? after : NULL, &page, next, &diag);
        if (err != VTPMCA_OK)
            break;
        if (opts->json) {
            if (json_array_extend(all, page) != 0)
                err = vtpmca_fail(&diag, VTPMCA_ERR_NOMEM, "out of memory");
        } else {
            if (!header)
                printf("%-24s %-16s %-9s %-8s %s\n", "INSTANCE", "FLEET", "KEY MODE", "STATUS",
                       "RESOURCE PATH");
            header = true;
            size_t i;
            json_t *item;
            json_array_foreach(page, i, item)
            {
                printf("%-24s %-16s %-9s %-8s %s\n", text_of(item, "instance"),
                       text_of(item, "fleet"), text_of(item, "key_mode"),
                       json_is_true(json_object_get(item, "disabled")) ? "disabled" : "enabled",
                       text_of(item, "resource_path"));
            }
        }
        json_decref(page);
        if (next[0] == '\0')
            break;
        memcpy(after, next, sizeof(after));
    }
    cli_admin_close(&b.admin);
    if (err != VTPMCA_OK) {
        json_decref(all);
        return cli_fail_diag(cmd, err, &diag, "cannot list instances");
    }
    return opts->json ? cli_print_json_result(cmd, all) : CLI_EXIT_OK;
}

int cmd_instance_set_disabled(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    const bool disable = strcmp(cmd->name, "disable") == 0;
    json_t *out;
    int exit_code;
    if (instance_action_run(cmd, opts, disable ? INSTANCE_DISABLE : INSTANCE_ENABLE, &out,
                            &exit_code))
        return exit_code;
    json_decref(out);
    printf("%s instance %s\n", disable ? "disabled" : "enabled", id);
    return CLI_EXIT_OK;
}

int cmd_instance_reenroll(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    json_t *out;
    int exit_code;
    if (instance_action_run(cmd, opts, INSTANCE_REENROLL, &out, &exit_code))
        return exit_code;
    json_decref(out);
    printf("instance %s may present another EK at its next certification\n", id);
    return CLI_EXIT_OK;
}

int cmd_instance_delete(const cli_command *cmd, const cli_opts *opts)
{
    const char *id = opts->args[0];
    json_t *out;
    int exit_code;
    if (instance_action_run(cmd, opts, INSTANCE_DELETE, &out, &exit_code))
        return exit_code;
    json_int_t revoked = json_integer_value(json_object_get(out, "certificates_revoked"));
    printf("deleted instance %s and its key; %lld certificate%s revoked\n", id, (long long)revoked,
           revoked == 1 ? "" : "s");
    json_decref(out);
    return CLI_EXIT_OK;
}
