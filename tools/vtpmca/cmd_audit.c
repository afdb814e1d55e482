/* vtpmca audit tail|search and instance history: the append-only audit log (admin actions,
 * enrollments, key releases and refusals, certificates, ledger refusals), offline on --db or
 * through the daemon's admin API (GET /v1/admin/audit). Both print the admin API's event
 * form (server_admin_audit_event_json). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "cli_remote.h"
#include "vtpmca/server_admin.h"

#define TAIL_DEFAULT 20
#define FOLLOW_POLL_MS 1000

typedef struct {
    /* Events matching the filter after filter->after_seq, at most filter->limit
     * (1..STORE_LIST_MAX), oldest first, as a JSON array. */
    vtpmca_err (*query)(void *ctx, const store_audit_filter *filter, json_t **events,
                        vtpmca_diag *diag);
    /* The newest n (1..STORE_LIST_MAX) events, oldest first. */
    vtpmca_err (*last)(void *ctx, size_t n, json_t **events, vtpmca_diag *diag);
} audit_ops;

/* ---- Offline: the store opened from --db ---- */

static vtpmca_err local_query(void *ctx, const store_audit_filter *filter, json_t **events,
                              vtpmca_diag *diag)
{
    store_audit_event *items = NULL;
    size_t n = 0;
    vtpmca_err err = store_audit_query(ctx, filter, &items, &n, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, server_admin_audit_event_json(&items[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(items);
    *events = list;
    return list != NULL ? VTPMCA_OK : vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
}

static vtpmca_err local_last(void *ctx, size_t n, json_t **events, vtpmca_diag *diag)
{
    int64_t newest = 0;
    vtpmca_err err = store_audit_last_seq(ctx, &newest, diag);
    if (err != VTPMCA_OK)
        return err;
    /* Sequence numbers are consecutive: the log is append-only. */
    store_audit_filter filter = {.after_seq = newest > (int64_t)n ? newest - (int64_t)n : 0,
                                 .limit = n};
    return local_query(ctx, &filter, events, diag);
}

static const audit_ops local_ops = {local_query, local_last};

/* ---- Remote: GET /v1/admin/audit ---- */

/* Filter values go into the query string as they are: only the characters of ids, action
 * and outcome names. */
static vtpmca_err check_query_value(const char *what, const char *value, vtpmca_diag *diag)
{
    return value == NULL ? VTPMCA_OK : cli_remote_check_segment(what, value, diag);
}

static vtpmca_err append_param(char *path, size_t size, const char *key, const char *value)
{
    size_t len = strlen(path);
    int n = snprintf(path + len, size - len, "%s%s=%s", strchr(path, '?') ? "&" : "?", key, value);
    return n > 0 && (size_t)n < size - len ? VTPMCA_OK : VTPMCA_ERR_LIMIT;
}

/* GET on an audit path; the answer's "events" array. */
static vtpmca_err remote_events(void *ctx, const char *path, json_t **events, vtpmca_diag *diag)
{
    json_t *answer = NULL;
    vtpmca_err err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    json_t *list = json_object_get(answer, "events");
    if (!json_is_array(list))
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the daemon's answer has no events");
    else
        *events = json_incref(list);
    json_decref(answer);
    return err;
}

static vtpmca_err remote_query(void *ctx, const store_audit_filter *filter, json_t **events,
                               vtpmca_diag *diag)
{
    char path[1024] = SERVER_ADMIN_PREFIX "audit", number[32], since[40], until[40];
    vtpmca_err err = check_query_value("instance id", filter->instance_id, diag);
    if (err == VTPMCA_OK)
        err = check_query_value("action", filter->action, diag);
    if (err == VTPMCA_OK)
        err = check_query_value("outcome", filter->outcome, diag);
    if (err != VTPMCA_OK)
        return err;
    if (filter->instance_id != NULL)
        err = append_param(path, sizeof(path), "instance", filter->instance_id);
    if (err == VTPMCA_OK && filter->action != NULL)
        err = append_param(path, sizeof(path), "action", filter->action);
    if (err == VTPMCA_OK && filter->outcome != NULL)
        err = append_param(path, sizeof(path), "outcome", filter->outcome);
    if (err == VTPMCA_OK && filter->since_ms != 0) {
        server_admin_format_time_ms(filter->since_ms, since, sizeof(since));
        err = append_param(path, sizeof(path), "since", since);
    }
    if (err == VTPMCA_OK && filter->until_ms != 0) {
        server_admin_format_time_ms(filter->until_ms, until, sizeof(until));
        err = append_param(path, sizeof(path), "until", until);
    }
    snprintf(number, sizeof(number), "%lld", (long long)filter->after_seq);
    if (err == VTPMCA_OK && filter->after_seq != 0)
        err = append_param(path, sizeof(path), "after", number);
    snprintf(number, sizeof(number), "%zu", filter->limit);
    if (err == VTPMCA_OK)
        err = append_param(path, sizeof(path), "limit", number);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "the audit filter is too long");
    return remote_events(ctx, path, events, diag);
}

static vtpmca_err remote_last(void *ctx, size_t n, json_t **events, vtpmca_diag *diag)
{
    char path[128];
    snprintf(path, sizeof(path), SERVER_ADMIN_PREFIX "audit?last=%zu", n);
    return remote_events(ctx, path, events, diag);
}

static const audit_ops remote_ops = {remote_query, remote_last};

/* ---- Output ---- */

typedef enum {
    OUT_TABLE = 0,
    OUT_JSON,  /* one array at the end */
    OUT_JSONL, /* one object per line, as they come */
} out_mode;

typedef struct {
    out_mode mode;
    bool per_instance; /* instance history: no instance column */
    bool header_done;
    json_t *all; /* OUT_JSON */
    int64_t last_seq;
    size_t printed;
    /* Following remotely: each poll is itself an audited admin call; leave out the rows of
     * this admin's polls, or the stream would feed on itself. */
    const char *hide_polls_of;
} printer;

#define POLL_ACTION "admin.audit_search"

static const char *text_of(const json_t *event, const char *key)
{
    const char *value = json_string_value(json_object_get(event, key));
    return value != NULL && value[0] != '\0' ? value : "-";
}

static vtpmca_err print_events(printer *p, const json_t *events, size_t max)
{
    size_t i;
    json_t *event;
    json_array_foreach(events, i, event)
    {
        if (max != 0 && p->printed == max)
            break;
        p->last_seq = (int64_t)json_integer_value(json_object_get(event, "seq"));
        if (p->hide_polls_of != NULL && strcmp(text_of(event, "action"), POLL_ACTION) == 0 &&
            strcmp(text_of(event, "actor"), p->hide_polls_of) == 0)
            continue;
        p->printed++;
        if (p->mode == OUT_JSON) {
            if (json_array_append(p->all, event) != 0)
                return VTPMCA_ERR_NOMEM;
            continue;
        }
        if (p->mode == OUT_JSONL) {
            if (json_dumpf(event, stdout, JSON_COMPACT) != 0)
                return VTPMCA_ERR_IO;
            fputc('\n', stdout);
            continue;
        }
        if (!p->header_done && p->per_instance)
            printf("%-24s %-24s %-20s %-20s %s\n", "TIME", "ACTION", "OUTCOME", "ACTOR", "DETAIL");
        else if (!p->header_done)
            printf("%-24s %-26s %-20s %-16s %-16s %s\n", "TIME", "ACTION", "INSTANCE", "OUTCOME",
                   "ACTOR", "DETAIL");
        p->header_done = true;
        if (p->per_instance)
            printf("%-24s %-24s %-20s %-20s %s\n", text_of(event, "at"), text_of(event, "action"),
                   text_of(event, "outcome"), text_of(event, "actor"), text_of(event, "detail"));
        else
            printf("%-24s %-26s %-20s %-16s %-16s %s\n", text_of(event, "at"),
                   text_of(event, "action"), text_of(event, "instance"), text_of(event, "outcome"),
                   text_of(event, "actor"), text_of(event, "detail"));
    }
    fflush(stdout);
    return VTPMCA_OK;
}

static int finish(const cli_command *cmd, printer *p, vtpmca_err err, const vtpmca_diag *diag)
{
    if (err == VTPMCA_OK && p->mode == OUT_JSON)
        err = cli_print_json(p->all);
    json_decref(p->all);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, diag, "cannot read the audit log");
    return CLI_EXIT_OK;
}

static vtpmca_err open_audit(const cli_opts *opts, cli_admin *admin, const audit_ops **ops,
                             printer *p, vtpmca_diag *diag)
{
    memset(p, 0, sizeof(*p));
    p->mode = opts->json ? OUT_JSON : opts->value[CLI_OPT_JSONL] != NULL ? OUT_JSONL : OUT_TABLE;
    if (p->mode == OUT_JSON && (p->all = json_array()) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = cli_admin_open(opts, false, admin, diag);
    *ops = err == VTPMCA_OK && cli_admin_is_remote(admin) ? &remote_ops : &local_ops;
    return err;
}

/* Every matching event, page by page (up to opts->limit). */
static vtpmca_err search(const audit_ops *ops, void *ctx, store_audit_filter *filter,
                         const cli_opts *opts, printer *p, vtpmca_diag *diag)
{
    vtpmca_err err = VTPMCA_OK;
    while (err == VTPMCA_OK && (opts->limit == 0 || p->printed < opts->limit)) {
        filter->limit = STORE_LIST_MAX;
        json_t *events = NULL;
        err = ops->query(ctx, filter, &events, diag);
        if (err != VTPMCA_OK)
            break;
        size_t n = json_array_size(events);
        err = print_events(p, events, opts->limit);
        json_decref(events);
        filter->after_seq = p->last_seq;
        if (n < STORE_LIST_MAX)
            break;
    }
    return err;
}

/* ---- Commands ---- */

int cmd_audit_search(const cli_command *cmd, const cli_opts *opts)
{
    if (opts->json && opts->value[CLI_OPT_JSONL] != NULL)
        return cli_usage_error(cmd, "--json and --jsonl exclude each other");
    vtpmca_diag diag = {{0}};
    const char *instance = opts->value[CLI_OPT_INSTANCE];
    if (instance != NULL && store_check_instance_id(instance, &diag) != VTPMCA_OK)
        return cli_usage_error(cmd, "--instance: %s", diag.msg);
    store_audit_filter filter = {
        .instance_id = instance,
        .action = opts->value[CLI_OPT_ACTION],
        .outcome = opts->value[CLI_OPT_OUTCOME],
        .since_ms = (int64_t)opts->since * 1000,
        .until_ms = (int64_t)opts->until * 1000,
    };
    cli_admin admin;
    const audit_ops *ops = NULL;
    printer p;
    vtpmca_err err = open_audit(opts, &admin, &ops, &p, &diag);
    if (err == VTPMCA_OK) {
        err = search(ops, admin.ctx, &filter, opts, &p, &diag);
        cli_admin_close(&admin);
    }
    return finish(cmd, &p, err, &diag);
}

int cmd_instance_history(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    if (store_check_instance_id(opts->args[0], &diag) != VTPMCA_OK)
        return cli_fail_diag(cmd, VTPMCA_ERR_INVALID_ARG, &diag, NULL);
    store_audit_filter filter = {.instance_id = opts->args[0]};
    cli_admin admin;
    const audit_ops *ops = NULL;
    printer p;
    vtpmca_err err = open_audit(opts, &admin, &ops, &p, &diag);
    p.per_instance = true;
    if (err == VTPMCA_OK) {
        err = search(ops, admin.ctx, &filter, opts, &p, &diag);
        cli_admin_close(&admin);
    }
    return finish(cmd, &p, err, &diag);
}

static volatile sig_atomic_t stop_following;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_following = 1;
}

/* Sleeps up to ms, returning early once asked to stop. */
static void pause_ms(long ms)
{
    for (long slept = 0; slept < ms && !stop_following; slept += 100) {
        struct timespec step = {0, 100L * 1000 * 1000};
        nanosleep(&step, NULL);
    }
}

int cmd_audit_tail(const cli_command *cmd, const cli_opts *opts)
{
    bool follow = opts->value[CLI_OPT_FOLLOW] != NULL;
    if (opts->json && (follow || opts->value[CLI_OPT_JSONL] != NULL))
        return cli_usage_error(cmd, "--json prints one array: use --jsonl with --follow");
    size_t n = opts->limit != 0 ? opts->limit : TAIL_DEFAULT;
    if (n > STORE_LIST_MAX)
        return cli_usage_error(cmd, "--limit: tail shows at most %d events", STORE_LIST_MAX);
    vtpmca_diag diag = {{0}};
    cli_admin admin;
    const audit_ops *ops = NULL;
    printer p;
    vtpmca_err err = open_audit(opts, &admin, &ops, &p, &diag);
    if (err != VTPMCA_OK)
        return finish(cmd, &p, err, &diag);
    json_t *events = NULL;
    err = ops->last(admin.ctx, n, &events, &diag);
    if (err == VTPMCA_OK)
        err = print_events(&p, events, 0);
    json_decref(events);
    if (err == VTPMCA_OK && follow) {
        /* Until interrupted: a clean exit (status 0) on SIGINT or SIGTERM. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        store_audit_filter filter = {0};
        cli_opts unlimited = *opts; /* --limit was the tail's length */
        unlimited.limit = 0;
        if (cli_admin_is_remote(&admin))
            p.hide_polls_of = cli_remote_admin_name(admin.ctx);
        if (p.printed == 0) { /* start after whatever exists now */
            err = ops->last(admin.ctx, 1, &events, &diag);
            if (err == VTPMCA_OK && json_array_size(events) == 1)
                p.last_seq =
                    (int64_t)json_integer_value(json_object_get(json_array_get(events, 0), "seq"));
            json_decref(events);
        }
        while (err == VTPMCA_OK && !stop_following) {
            filter.after_seq = p.last_seq;
            size_t before = p.printed;
            err = search(ops, admin.ctx, &filter, &unlimited, &p, &diag);
            if (err == VTPMCA_OK && p.printed == before)
                pause_ms(FOLLOW_POLL_MS);
        }
    }
    cli_admin_close(&admin);
    return finish(cmd, &p, err, &diag);
}
