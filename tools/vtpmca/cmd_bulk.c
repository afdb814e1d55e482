/* vtpmca instance bulk: enrolls many instances from a CSV or JSON Lines file (the format is
 * in include/vtpmca/enrollment_bulk.h and docs/operations.md). Every row is checked first and
 * bad rows are reported with their line numbers; then each batch of rows is enrolled in one
 * transaction, offline (--db, with the master key) or by the daemon (--server, one admin API
 * request per batch). The enrolled instances and their resource paths come out as JSON
 * Lines (--out FILE, else stdout), written batch by batch as each one commits. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "cli_remote.h"
#include "progress.h"
#include "vtpmca/enrollment_bulk.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_admin.h"

#define BULK_FILE_MAX (1024u << 20) /* bytes of an input file */
#define BULK_CLI_MAX_ROWS 10000000  /* rows of one input file (in batches) */
#define BULK_PATH SERVER_ADMIN_PREFIX "instances/bulk"
#define ERRORS_SHOWN 20 /* problems printed one per line; the rest are counted */

/* --format, else the file name's extension. */
static int choose_format(const cli_command *cmd, const cli_opts *opts, bulk_format *out)
{
    const char *given = opts->value[CLI_OPT_FORMAT];
    if (given != NULL) {
        if (bulk_format_parse(given, out) != VTPMCA_OK)
            return cli_usage_error(cmd, "--format must be csv or jsonl, not '%s'", given);
        return -1;
    }
    const char *dot = strrchr(opts->value[CLI_OPT_FILE], '.');
    if (dot != NULL && strcmp(dot, ".csv") == 0)
        *out = BULK_CSV;
    else if (dot != NULL && (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".ndjson") == 0))
        *out = BULK_JSONL;
    else
        return cli_usage_error(cmd,
                               "cannot tell the format of %s from its name: give --format "
                               "csv or --format jsonl",
                               opts->value[CLI_OPT_FILE]);
    return -1;
}

/* Where the enrolled instances go: --out FILE (0600: the paths are meant to stay
 * unguessable), else stdout. */
typedef struct {
    FILE *file;
    bool to_stdout;
    json_t *collected; /* --json without --out: the instances go into the summary */
} tag_sink;

static vtpmca_err sink_open(const cli_opts *opts, tag_sink *sink, vtpmca_diag *diag)
{
    memset(sink, 0, sizeof(*sink));
    const char *path = opts->value[CLI_OPT_OUT];
    if (path == NULL) {
        sink->to_stdout = true;
        if (opts->json && (sink->collected = json_array()) == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        return VTPMCA_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (sink->file = fdopen(fd, "w")) == NULL) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot write %s: %s", path, strerror(saved));
    }
    return VTPMCA_OK;
}

/* Writes a committed batch's instances, durably when they go to a file. */
static vtpmca_err sink_write(tag_sink *sink, const bulk_result *results, size_t n,
                             vtpmca_diag *diag)
{
    FILE *out = sink->file != NULL ? sink->file : stdout;
    for (size_t i = 0; i < n; i++) {
        json_t *item = bulk_result_to_json(&results[i]);
        int rc = -1;
        if (item != NULL && sink->collected != NULL)
            rc = json_array_append(sink->collected, item);
        else if (item != NULL)
            rc = json_dumpf(item, out, JSON_COMPACT) == 0 && fputc('\n', out) != EOF ? 0 : -1;
        json_decref(item);
        if (rc != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot write the enrolled instances");
    }
    if (fflush(out) != 0 || (sink->file != NULL && fsync(fileno(sink->file)) != 0))
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot write the enrolled instances: %s",
                           strerror(errno));
    return VTPMCA_OK;
}

static void sink_close(tag_sink *sink)
{
    if (sink->file != NULL)
        fclose(sink->file);
    json_decref(sink->collected);
}

/* ---- One batch through the admin API ---- */

/* Rows [from, to) that are not skipped, as JSON Lines; sent[k] is the row on line k+1. */
static vtpmca_err batch_body(const bulk_doc *doc, size_t from, size_t to, char **body,
                             size_t *body_len, const bulk_row ***sent, vtpmca_diag *diag)
{
    *body = NULL;
    *body_len = 0;
    *sent = malloc((to - from) * sizeof(**sent));
    size_t cap = 0, n = 0;
    vtpmca_err err = *sent != NULL ? VTPMCA_OK : VTPMCA_ERR_NOMEM;
    for (size_t i = from; err == VTPMCA_OK && i < to; i++) {
        if (doc->rows[i].skipped)
            continue;
        json_t *row = bulk_row_to_json(&doc->rows[i]);
        char *line = row != NULL ? json_dumps(row, JSON_COMPACT) : NULL;
        json_decref(row);
        size_t len = line != NULL ? strlen(line) : 0;
        if (line != NULL && *body_len + len + 2 > cap) {
            size_t bigger_cap = cap ? cap * 2 : 1 << 16;
            while (*body_len + len + 2 > bigger_cap)
                bigger_cap *= 2;
            char *bigger = realloc(*body, bigger_cap);
            if (bigger != NULL) {
                *body = bigger;
                cap = bigger_cap;
            }
        }
        if (line == NULL || *body_len + len + 2 > cap) {
            err = VTPMCA_ERR_NOMEM;
        } else {
            memcpy(*body + *body_len, line, len);
            (*body)[*body_len + len] = '\n';
            *body_len += len + 1;
            (*body)[*body_len] = '\0';
            (*sent)[n++] = &doc->rows[i];
        }
        if (line != NULL)
            OPENSSL_clear_free(line, len); /* a row may carry a key */
    }
    if (err != VTPMCA_OK) {
        if (*body != NULL)
            OPENSSL_clear_free(*body, cap);
        free(*sent);
        *body = NULL;
        *sent = NULL;
        return vtpmca_fail(diag, err, "out of memory");
    }
    return VTPMCA_OK;
}

/* The row of a line number of the sent body, or NULL. */
static const bulk_row *sent_row(const bulk_row **sent, size_t n_sent, const json_t *item)
{
    json_int_t line = json_integer_value(json_object_get(item, "line"));
    return line >= 1 && (size_t)line <= n_sent ? sent[line - 1] : NULL;
}

/* The daemon's problems with the batch, under the file's line numbers. */
static void take_remote_errors(bulk_doc *doc, const bulk_row **sent, size_t n_sent,
                               const json_t *answer, bool skip_bad)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(answer, "errors"), i, item)
    {
        const bulk_row *row = sent_row(sent, n_sent, item);
        const char *message = json_string_value(json_object_get(item, "message"));
        bulk_doc_add_error(doc, row != NULL ? row->line : 0, VTPMCA_ERR_CONFLICT, "%s",
                           message != NULL ? message : "refused by the daemon");
        if (row != NULL && skip_bad)
            ((bulk_row *)row)->skipped = true;
    }
}

static vtpmca_err remote_batch(cli_remote *remote, bulk_doc *doc, size_t from, size_t to,
                               bool skip_bad, bulk_result **results, size_t *n_results,
                               vtpmca_diag *diag)
{
    *results = NULL;
    *n_results = 0;
    char *body = NULL;
    size_t body_len = 0;
    const bulk_row **sent = NULL;
    vtpmca_err err = batch_body(doc, from, to, &body, &body_len, &sent, diag);
    if (err != VTPMCA_OK || body_len == 0) {
        free(body);
        free(sent);
        return err;
    }
    size_t n_sent = 0;
    for (size_t i = from; i < to; i++)
        n_sent += doc->rows[i].skipped ? 0 : 1;
    json_t *answer = NULL;
    err = cli_remote_request(remote, "POST", skip_bad ? BULK_PATH "?skip_bad=true" : BULK_PATH,
                             ADMIN_ROLE_ADMIN, bulk_format_content_type(BULK_JSONL), body, body_len,
                             NULL, &answer, diag);
    OPENSSL_clear_free(body, body_len);
    take_remote_errors(doc, sent, n_sent, answer, skip_bad);
    if (err == VTPMCA_ERR_LIMIT && diag != NULL) {
        char refusal[sizeof(diag->msg)];
        snprintf(refusal, sizeof(refusal), "%s", diag->msg);
        vtpmca_fail(diag, err,
                    "%.150s: the batch is larger than the daemon accepts (its max_body_bytes); "
                    "pass a smaller --batch",
                    refusal);
    }
    const json_t *list = json_object_get(answer, "instances");
    size_t n = json_array_size(list);
    bulk_result *out = err == VTPMCA_OK && n > 0 ? calloc(n, sizeof(*out)) : NULL;
    if (err == VTPMCA_OK && n > 0 && out == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; err == VTPMCA_OK && i < n; i++) {
        const json_t *item = json_array_get(list, i);
        const bulk_row *row = sent_row(sent, n_sent, item);
        const char *path = json_string_value(json_object_get(item, "resource_path"));
        const char *wrapped = json_string_value(json_object_get(item, "wrapped_key"));
        if (row == NULL || path == NULL || strlen(path) > STORE_RESOURCE_PATH_MAX) {
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the daemon's answer has a bad instance");
            break;
        }
        out[i].line = row->line;
        snprintf(out[i].instance_id, sizeof(out[i].instance_id), "%s", row->instance_id);
        snprintf(out[i].fleet, sizeof(out[i].fleet), "%s", row->fleet);
        snprintf(out[i].resource_path, sizeof(out[i].resource_path), "%s", path);
        if (wrapped != NULL && (out[i].wrapped_key = strdup(wrapped)) == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    json_decref(answer);
    free(sent);
    if (err != VTPMCA_OK) {
        bulk_results_free(out, n);
        return err;
    }
    *results = out;
    *n_results = n;
    return VTPMCA_OK;
}

/* ---- The command ---- */

static void print_problems(const bulk_doc *doc)
{
    for (size_t i = 0; i < doc->n_errors && i < ERRORS_SHOWN; i++) {
        if (doc->errors[i].line != 0)
            fprintf(stderr, "vtpmca instance bulk: line %zu: %s\n", doc->errors[i].line,
                    doc->errors[i].message);
        else
            fprintf(stderr, "vtpmca instance bulk: %s\n", doc->errors[i].message);
    }
    size_t shown = doc->n_errors < ERRORS_SHOWN ? doc->n_errors : ERRORS_SHOWN;
    if (doc->n_bad > shown)
        fprintf(stderr, "vtpmca instance bulk: ... and %zu more bad rows\n", doc->n_bad - shown);
}

typedef struct {
    size_t enrolled, batches, batch_size, failed_from, failed_to;
    double seconds;
    bool failed;
} bulk_summary;

static int report(const cli_command *cmd, const cli_opts *opts, const bulk_doc *doc,
                  const bulk_summary *sum, tag_sink *sink, vtpmca_err err, const vtpmca_diag *diag)
{
    print_problems(doc);
    double rate = sum->seconds > 0 ? (double)sum->enrolled / sum->seconds : 0;
    if (opts->json) {
        json_t *errors = bulk_errors_to_json(doc);
        json_t *out = json_pack(
            "{s:I, s:I, s:I, s:f, s:s*, s:o*, s:s*}", "enrolled", (json_int_t)sum->enrolled,
            "skipped", (json_int_t)(opts->value[CLI_OPT_SKIP_BAD] ? doc->n_bad : 0), "batches",
            (json_int_t)sum->batches, "seconds", sum->seconds, "out", opts->value[CLI_OPT_OUT],
            "errors", errors, "error", err != VTPMCA_OK ? diag->msg : NULL);
        if (out != NULL && sink->collected != NULL)
            json_object_set(out, "instances", sink->collected);
        if (out == NULL || cli_print_json(out) != VTPMCA_OK)
            fprintf(stderr, "vtpmca instance bulk: cannot print the summary\n");
        json_decref(out);
    } else {
        /* The summary goes to stderr when stdout carries the instances. */
        FILE *out = sink->to_stdout ? stderr : stdout;
        fprintf(out,
                "enrolled %zu instance%s in %zu batch%s (%zu bad row%s %s) in %.2f s "
                "(%.0f/s)%s%s\n",
                sum->enrolled, sum->enrolled == 1 ? "" : "s", sum->batches,
                sum->batches == 1 ? "" : "es", doc->n_bad, doc->n_bad == 1 ? "" : "s",
                opts->value[CLI_OPT_SKIP_BAD] != NULL ? "skipped" : "found", sum->seconds, rate,
                opts->value[CLI_OPT_OUT] != NULL ? "; instances in " : "",
                opts->value[CLI_OPT_OUT] != NULL ? opts->value[CLI_OPT_OUT] : "");
    }
    if (err == VTPMCA_OK)
        return CLI_EXIT_OK;
    if (sum->failed && sum->batches > 0)
        return cli_fail_diag(cmd, err, diag,
                             "the batch of rows %zu to %zu was refused and nothing of it enrolled "
                             "(the %zu earlier batch%s are)",
                             sum->failed_from + 1, sum->failed_to, sum->batches,
                             sum->batches == 1 ? "" : "es");
    return cli_fail_diag(cmd, err, diag, NULL);
}

int cmd_instance_bulk(const cli_command *cmd, const cli_opts *opts)
{
    bulk_format format = BULK_CSV;
    int rc = choose_format(cmd, opts, &format);
    if (rc >= 0)
        return rc;
    const bool skip_bad = opts->value[CLI_OPT_SKIP_BAD] != NULL;
    vtpmca_diag diag = {{0}};
    uint8_t *text = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(opts->value[CLI_OPT_FILE], BULK_FILE_MAX, &text, &len, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    bulk_parse_options parse_options = {.default_fleet = opts->value[CLI_OPT_FLEET],
                                        .max_rows = BULK_CLI_MAX_ROWS};
    bulk_doc doc;
    err = bulk_parse((const char *)text, len, format, &parse_options, &doc, &diag);
    OPENSSL_clear_free(text, len); /* rows may carry keys */
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "%s", opts->value[CLI_OPT_FILE]);
    bulk_summary sum = {.batch_size = opts->batch != 0 ? opts->batch : BULK_MAX_ROWS};
    tag_sink sink;
    err = sink_open(opts, &sink, &diag);
    if (err == VTPMCA_OK && doc.n_bad > 0 && !skip_bad) {
        err = vtpmca_fail(&diag, VTPMCA_ERR_PARSE,
                          "%zu bad row%s in %s; nothing was enrolled (--skip-bad enrolls the "
                          "others)",
                          doc.n_bad, doc.n_bad == 1 ? "" : "s", opts->value[CLI_OPT_FILE]);
        int code = report(cmd, opts, &doc, &sum, &sink, err, &diag);
        sink_close(&sink);
        bulk_doc_free(&doc);
        return code;
    }
    cli_admin admin = {NULL, NULL};
    keyvault *vault = NULL;
    if (err == VTPMCA_OK)
        err = cli_admin_open(opts, false, &admin, &diag);
    bool remote = cli_admin_is_remote(&admin);
    if (err == VTPMCA_OK && !remote)
        err = cli_open_master_key(cmd, opts, &vault, &diag);
    char actor[64];
    cli_admin_author(actor, sizeof(actor));
    cli_progress progress;
    cli_progress_start(&progress, "enrolling", doc.n_rows);
    for (size_t from = 0; err == VTPMCA_OK && from < doc.n_rows; from += sum.batch_size) {
        size_t to = doc.n_rows - from > sum.batch_size ? from + sum.batch_size : doc.n_rows;
        bulk_result *results = NULL;
        size_t n = 0;
        err = remote ? remote_batch(admin.ctx, &doc, from, to, skip_bad, &results, &n, &diag)
                     : bulk_enroll(admin.ctx, vault, &doc, from, to, actor, skip_bad, &results, &n,
                                   &diag);
        if (err != VTPMCA_OK) {
            sum.failed = true;
            sum.failed_from = from;
            sum.failed_to = to;
        } else {
            err = sink_write(&sink, results, n, &diag);
            sum.enrolled += n;
            sum.batches++;
        }
        bulk_results_free(results, n);
        cli_progress_update(&progress, to);
    }
    cli_progress_finish(&progress);
    sum.seconds = cli_progress_elapsed(&progress);
    keyvault_free(vault);
    if (admin.ops != NULL)
        cli_admin_close(&admin);
    rc = report(cmd, opts, &doc, &sum, &sink, err, &diag);
    sink_close(&sink);
    bulk_doc_free(&doc);
    return rc;
}
