/* Bulk enrollment from CSV or JSON Lines (see include/vtpmca/enrollment_bulk.h). */
#include "vtpmca/enrollment_bulk.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vtpmca/encoding.h"

/* At most this many rounds of "refused, look up the taken rows, leave them out" with
 * skip_bad: each round leaves out at least the row the store refused. */
#define BULK_SKIP_ROUNDS 5

/* ---- Formats ---- */

const char *bulk_format_name(bulk_format format)
{
    return format == BULK_JSONL ? "jsonl" : "csv";
}

vtpmca_err bulk_format_parse(const char *text, bulk_format *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcmp(text, "csv") == 0)
        *out = BULK_CSV;
    else if (strcmp(text, "jsonl") == 0 || strcmp(text, "ndjson") == 0)
        *out = BULK_JSONL;
    else
        return VTPMCA_ERR_INVALID_ARG;
    return VTPMCA_OK;
}

const char *bulk_format_content_type(bulk_format format)
{
    return format == BULK_JSONL ? "application/x-ndjson" : "text/csv";
}

/* `value` is `type`, optionally followed by parameters after ';'. */
static bool media_type_is(const char *value, const char *type)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(type);
    if (strncasecmp(value, type, n) != 0)
        return false;
    value += n;
    while (*value == ' ' || *value == '\t')
        value++;
    return *value == '\0' || *value == ';';
}

vtpmca_err bulk_format_from_content_type(const char *content_type, bulk_format *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (content_type == NULL)
        return VTPMCA_ERR_UNSUPPORTED;
    if (media_type_is(content_type, "text/csv")) {
        *out = BULK_CSV;
        return VTPMCA_OK;
    }
    static const char *const jsonl_types[] = {"application/x-ndjson", "application/jsonl",
                                              "application/json-lines"};
    for (size_t i = 0; i < sizeof(jsonl_types) / sizeof(jsonl_types[0]); i++) {
        if (media_type_is(content_type, jsonl_types[i])) {
            *out = BULK_JSONL;
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_UNSUPPORTED;
}

/* ---- Documents ---- */

enum {
    COL_INSTANCE = 0,
    COL_FLEET,
    COL_HOST_DATA,
    COL_RESOURCE_PATH,
    COL_RESOURCE_TAG,
    COL_MODE,
    COL_KEY,
    COL_COUNT
};
static const char *const column_names[COL_COUNT] = {
    "instance", "fleet", "host_data", "resource_path", "resource_tag", "mode", "key"};
#define COLUMN_LIST "instance, fleet, host_data, resource_path, resource_tag, mode, key"

/* One row's values as written (NULL or "" = absent). */
typedef struct {
    const char *value[COL_COUNT];
} raw_row;

static int column_index(const char *name)
{
    for (int c = 0; c < COL_COUNT; c++) {
        if (strcmp(column_names[c], name) == 0)
            return c;
    }
    return -1;
}

void bulk_doc_add_error(bulk_doc *doc, size_t line, vtpmca_err err, const char *fmt, ...)
{
    if (doc == NULL || fmt == NULL)
        return;
    if (line != 0)
        doc->n_bad++;
    if (doc->n_errors == BULK_MAX_ERRORS)
        return;
    if (doc->errors == NULL) {
        doc->errors = calloc(BULK_MAX_ERRORS, sizeof(*doc->errors));
        if (doc->errors == NULL)
            return; /* the row still counts as bad */
    }
    bulk_error *e = &doc->errors[doc->n_errors++];
    e->line = line;
    e->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* The store's messages start with "store: "; inside a row's message that is noise. */
static const char *plain(const vtpmca_diag *diag)
{
    const char *msg = diag->msg;
    return strncmp(msg, "store: ", 7) == 0 ? msg + 7 : msg;
}

/* Input echoed in a message: printable ASCII only (messages end up in JSON and terminals). */
static const char *printable(const char *src, char *dst, size_t size)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < size; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
    return dst;
}

static void free_row(bulk_row *row)
{
    if (row->key != NULL)
        OPENSSL_clear_free(row->key, row->key_len);
    row->key = NULL;
    row->key_len = 0;
}

void bulk_doc_free(bulk_doc *doc)
{
    if (doc == NULL)
        return;
    for (size_t i = 0; i < doc->n_rows; i++)
        free_row(&doc->rows[i]);
    free(doc->rows);
    free(doc->errors);
    memset(doc, 0, sizeof(*doc));
}

static bool present(const char *value)
{
    return value != NULL && value[0] != '\0';
}

/* Checks one row's values into *row; on a problem returns its code with the message in
 * diag (without the line, which the caller adds). */
static vtpmca_err check_row(const raw_row *raw, const bulk_parse_options *options, bulk_row *row,
                            vtpmca_diag *diag)
{
    vtpmca_diag inner = {{0}};
    char echo[68];
    const char *id = raw->value[COL_INSTANCE];
    if (!present(id))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "no instance id");
    if (store_check_instance_id(id, &inner) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "instance '%s': %s",
                           printable(id, echo, sizeof(echo)), plain(&inner));
    snprintf(row->instance_id, sizeof(row->instance_id), "%s", id);

    const char *fleet =
        present(raw->value[COL_FLEET]) ? raw->value[COL_FLEET] : options->default_fleet;
    if (!present(fleet))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "instance %s: no fleet (add a fleet column or give a default fleet)",
                           id);
    if (strlen(fleet) >= sizeof(row->fleet) || strcmp(printable(fleet, echo, sizeof(echo)), fleet))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "instance %s: a fleet name is 1 to %zu printable characters", id,
                           sizeof(row->fleet) - 1);
    snprintf(row->fleet, sizeof(row->fleet), "%s", fleet);

    const char *host_data = raw->value[COL_HOST_DATA];
    if (present(host_data)) {
        if (strlen(host_data) != 64 ||
            vt_hex_decode_fixed(host_data, row->host_data, sizeof(row->host_data)) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "instance %s: host_data must be 64 hex digits (32 bytes)", id);
        row->has_host_data = true;
    }

    const char *path = raw->value[COL_RESOURCE_PATH], *tag = raw->value[COL_RESOURCE_TAG];
    if (present(path) && present(tag))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "instance %s: give resource_path or resource_tag, not both", id);
    if (present(tag)) {
        int n = snprintf(row->resource_path, sizeof(row->resource_path), "%s%s",
                         ENROLLMENT_PATH_PREFIX, tag);
        if (n < 0 || (size_t)n >= sizeof(row->resource_path) ||
            store_check_resource_path(row->resource_path, &inner) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "instance %s: resource_tag must be 1 to %d characters of "
                               "[A-Za-z0-9._-]",
                               id, STORE_RESOURCE_SEGMENT_MAX);
    } else if (present(path)) {
        if (store_check_resource_path(path, &inner) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "instance %s: %s", id, plain(&inner));
        snprintf(row->resource_path, sizeof(row->resource_path), "%s", path);
    }

    row->mode = STORE_KEY_GENERATED;
    const char *mode = raw->value[COL_MODE];
    if (present(mode) && store_key_mode_parse(mode, &row->mode) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "instance %s: mode must be generated or wrapped, not '%.32s'", id,
                           printable(mode, echo, sizeof(echo)));

    const char *key = raw->value[COL_KEY];
    if (present(key)) {
        if (row->mode != STORE_KEY_WRAPPED)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "instance %s: a key goes with mode wrapped only (the service "
                               "makes the key in generated mode)",
                               id);
        if (vt_b64_decode_alloc(key, strlen(key), VT_B64_STD, &row->key, &row->key_len) !=
                VTPMCA_OK ||
            row->key_len == 0 || row->key_len > KEYVAULT_KEY_MAX) {
            free_row(row);
            /* Never echo the value: it is key material. */
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "instance %s: key must be 1 to %d bytes in standard base64", id,
                               KEYVAULT_KEY_MAX);
        }
    }
    return VTPMCA_OK;
}

/* A parser's state: where rows go and how many there were. */
typedef struct {
    bulk_doc *doc;
    const bulk_parse_options *options;
    size_t cap;
    size_t n_data_lines; /* rows seen, good or bad */
} parse_state;

/* Checks a row and appends it, or records its problem. */
static vtpmca_err add_row(parse_state *ps, size_t line, const raw_row *raw)
{
    bulk_doc *doc = ps->doc;
    if (doc->n_rows == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        bulk_row *bigger = realloc(doc->rows, cap * sizeof(*bigger));
        if (bigger == NULL)
            return VTPMCA_ERR_NOMEM;
        doc->rows = bigger;
        ps->cap = cap;
    }
    bulk_row *row = &doc->rows[doc->n_rows];
    memset(row, 0, sizeof(*row));
    row->line = line;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = check_row(raw, ps->options, row, &diag);
    if (err == VTPMCA_OK)
        doc->n_rows++;
    else
        bulk_doc_add_error(doc, line, err, "%s", diag.msg);
    return VTPMCA_OK;
}

/* Splits a CSV line in place into at most max fields (RFC 4180 quoting within one line;
 * spaces around fields are dropped). Returns the number of fields, or -1 with a message. */
static int split_csv(char *line, char **fields, int max, const char **problem)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (n == max) {
            *problem = "more fields than columns";
            return -1;
        }
        char *start = p, *out = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    *problem = "a quoted field is not closed";
                    return -1;
                }
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ',' && *p != '\0') {
                *problem = "text after a quoted field";
                return -1;
            }
        } else {
            while (*p != ',' && *p != '\0') {
                if (*p == '"') {
                    *problem = "a quote inside an unquoted field";
                    return -1;
                }
                *out++ = *p++;
            }
            while (out > start && (out[-1] == ' ' || out[-1] == '\t'))
                out--;
        }
        char end = *p;
        *out = '\0';
        fields[n++] = start;
        if (end == '\0')
            return n;
        p++; /* the comma */
    }
}

/* The CSV header: which column each field is. A bad header is an error of the document. */
static vtpmca_err parse_csv_header(char *line, size_t line_no, const bulk_parse_options *options,
                                   int *columns, int *n_columns, vtpmca_diag *diag)
{
    char *fields[COL_COUNT + 1];
    const char *problem = NULL;
    int n = split_csv(line, fields, COL_COUNT, &problem);
    if (n < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "line %zu (the header): %s (columns: %s)",
                           line_no, problem, COLUMN_LIST);
    bool seen[COL_COUNT] = {false};
    for (int i = 0; i < n; i++) {
        int c = column_index(fields[i]);
        char echo[44];
        if (c < 0)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "line %zu (the header): unknown column '%s' (columns: %s)", line_no,
                               printable(fields[i], echo, sizeof(echo)), COLUMN_LIST);
        if (seen[c])
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "line %zu (the header): column '%s' appears twice", line_no,
                               column_names[c]);
        seen[c] = true;
        columns[i] = c;
    }
    if (!seen[COL_INSTANCE])
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "line %zu (the header): no 'instance' column (columns: %s)", line_no,
                           COLUMN_LIST);
    if (!seen[COL_FLEET] && !present(options->default_fleet))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "line %zu (the header): no 'fleet' column and no default fleet",
                           line_no);
    *n_columns = n;
    return VTPMCA_OK;
}

static vtpmca_err parse_csv_row(parse_state *ps, char *line, size_t line_no, const int *columns,
                                int n_columns)
{
    char *fields[COL_COUNT];
    const char *problem = NULL;
    int n = split_csv(line, fields, n_columns, &problem);
    if (n >= 0 && n != n_columns)
        problem = "fewer fields than the header has columns";
    if (n < 0 || n != n_columns) {
        bulk_doc_add_error(ps->doc, line_no, VTPMCA_ERR_PARSE, "%s", problem);
        return VTPMCA_OK;
    }
    raw_row raw = {{NULL}};
    for (int i = 0; i < n; i++)
        raw.value[columns[i]] = fields[i];
    return add_row(ps, line_no, &raw);
}

static vtpmca_err parse_jsonl_row(parse_state *ps, const char *line, size_t len, size_t line_no)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(obj)) {
        if (obj == NULL)
            bulk_doc_add_error(ps->doc, line_no, VTPMCA_ERR_PARSE, "not JSON: column %d: %s",
                               jerr.column, jerr.text);
        else
            bulk_doc_add_error(ps->doc, line_no, VTPMCA_ERR_PARSE, "not a JSON object");
        json_decref(obj);
        return VTPMCA_OK;
    }
    raw_row raw = {{NULL}};
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        int c = column_index(key);
        if (c < 0 || (!json_is_string(value) && !json_is_null(value))) {
            if (c < 0)
                bulk_doc_add_error(ps->doc, line_no, VTPMCA_ERR_PARSE,
                                   "unknown key '%.40s' (keys: %s)", key, COLUMN_LIST);
            /* (jansson keys are valid UTF-8, so echoing one is safe in JSON) */
            else
                bulk_doc_add_error(ps->doc, line_no, VTPMCA_ERR_PARSE, "'%s' must be a string",
                                   key);
            json_decref(obj);
            return VTPMCA_OK;
        }
        raw.value[c] = json_string_value(value); /* NULL for null */
    }
    vtpmca_err err = add_row(ps, line_no, &raw);
    json_decref(obj);
    return err;
}

static int compare_by_id(const void *a, const void *b)
{
    const bulk_row *x = *(const bulk_row *const *)a, *y = *(const bulk_row *const *)b;
    int c = strcmp(x->instance_id, y->instance_id);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static int compare_by_path(const void *a, const void *b)
{
    const bulk_row *x = *(const bulk_row *const *)a, *y = *(const bulk_row *const *)b;
    int c = strcmp(x->resource_path, y->resource_path);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* Every row whose instance id or given resource path an earlier row has too is bad. */
static vtpmca_err drop_duplicates(bulk_doc *doc)
{
    if (doc->n_rows < 2)
        return VTPMCA_OK;
    const bulk_row **sorted = malloc(doc->n_rows * sizeof(*sorted));
    bool *bad = calloc(doc->n_rows, sizeof(*bad));
    if (sorted == NULL || bad == NULL) {
        free(sorted);
        free(bad);
        return VTPMCA_ERR_NOMEM;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < doc->n_rows; i++)
            sorted[i] = &doc->rows[i];
        qsort(sorted, doc->n_rows, sizeof(*sorted), pass == 0 ? compare_by_id : compare_by_path);
        for (size_t i = 1; i < doc->n_rows; i++) {
            const bulk_row *prev = sorted[i - 1], *row = sorted[i];
            size_t index = (size_t)(row - doc->rows);
            if (bad[index])
                continue;
            if (pass == 0 && strcmp(prev->instance_id, row->instance_id) == 0) {
                /* Point at the first occurrence, which sorts first. */
                size_t first = i - 1;
                while (first > 0 && strcmp(sorted[first - 1]->instance_id, row->instance_id) == 0)
                    first--;
                bad[index] = true;
                bulk_doc_add_error(doc, row->line, VTPMCA_ERR_CONFLICT,
                                   "instance %s appears on line %zu already", row->instance_id,
                                   sorted[first]->line);
            } else if (pass == 1 && row->resource_path[0] != '\0' &&
                       strcmp(prev->resource_path, row->resource_path) == 0) {
                size_t first = i - 1;
                while (first > 0 &&
                       strcmp(sorted[first - 1]->resource_path, row->resource_path) == 0)
                    first--;
                bad[index] = true;
                bulk_doc_add_error(doc, row->line, VTPMCA_ERR_CONFLICT,
                                   "instance %s: resource path %s is on line %zu already",
                                   row->instance_id, row->resource_path, sorted[first]->line);
            }
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < doc->n_rows; i++) {
        if (bad[i])
            free_row(&doc->rows[i]);
        else
            doc->rows[kept++] = doc->rows[i];
    }
    doc->n_rows = kept;
    free(sorted);
    free(bad);
    return VTPMCA_OK;
}

static int compare_errors(const void *a, const void *b)
{
    const bulk_error *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

vtpmca_err bulk_parse(const char *text, size_t len, bulk_format format,
                      const bulk_parse_options *options, bulk_doc *doc, vtpmca_diag *diag)
{
    if (doc != NULL)
        memset(doc, 0, sizeof(*doc));
    if ((text == NULL && len > 0) || doc == NULL || (format != BULK_CSV && format != BULK_JSONL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bulk: missing argument");
    const bulk_parse_options none = {NULL, 0};
    if (options == NULL)
        options = &none;
    size_t max_rows = options->max_rows != 0 ? options->max_rows : BULK_MAX_ROWS;
    parse_state ps = {doc, options, 0, 0};
    int columns[COL_COUNT], n_columns = 0;
    bool have_header = format == BULK_JSONL;
    char line[BULK_LINE_MAX + 1];
    vtpmca_err err = VTPMCA_OK;
    size_t pos = 0, line_no = 0;
    /* A UTF-8 byte order mark, as spreadsheets write it. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    while (err == VTPMCA_OK && pos < len) {
        line_no++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        if (line_len > 0 && start[line_len - 1] == '\r')
            line_len--;
        size_t skip = 0;
        while (skip < line_len && (start[skip] == ' ' || start[skip] == '\t'))
            skip++;
        if (skip == line_len || (format == BULK_CSV && start[skip] == '#'))
            continue;
        if (have_header && ++ps.n_data_lines > max_rows) {
            err = vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "more than %zu rows (line %zu)", max_rows,
                              line_no);
            break;
        }
        if (line_len > BULK_LINE_MAX || memchr(start, '\0', line_len) != NULL) {
            if (!have_header)
                err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "line %zu (the header): %s", line_no,
                                  line_len > BULK_LINE_MAX ? "too long" : "holds a NUL byte");
            else if (line_len > BULK_LINE_MAX)
                bulk_doc_add_error(doc, line_no, VTPMCA_ERR_PARSE, "longer than %d bytes",
                                   BULK_LINE_MAX);
            else
                bulk_doc_add_error(doc, line_no, VTPMCA_ERR_PARSE, "holds a NUL byte");
            continue;
        }
        if (format == BULK_JSONL) {
            err = parse_jsonl_row(&ps, start, line_len, line_no);
            continue;
        }
        memcpy(line, start, line_len);
        line[line_len] = '\0';
        if (!have_header) {
            err = parse_csv_header(line, line_no, options, columns, &n_columns, diag);
            have_header = err == VTPMCA_OK;
        } else {
            err = parse_csv_row(&ps, line, line_no, columns, n_columns);
        }
    }
    if (err == VTPMCA_OK && ps.n_data_lines == 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "the document holds no instances%s",
                          format == BULK_CSV && !have_header ? " (not even a header)" : "");
    if (err == VTPMCA_OK)
        err = drop_duplicates(doc);
    if (err != VTPMCA_OK) {
        if (err == VTPMCA_ERR_NOMEM)
            vtpmca_fail(diag, err, "out of memory");
        bulk_doc_free(doc);
        return err;
    }
    if (doc->n_errors > 1)
        qsort(doc->errors, doc->n_errors, sizeof(*doc->errors), compare_errors);
    return VTPMCA_OK;
}

/* ---- Enrollment ---- */

void bulk_results_free(bulk_result *results, size_t n)
{
    if (results == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(results[i].wrapped_key);
    free(results);
}

/* Leaves a row out (skip_bad) or only records its problem. */
static void refuse_row(bulk_doc *doc, bulk_row *row, bool skip_bad, vtpmca_err err,
                       const char *message)
{
    bulk_doc_add_error(doc, row->line, err, "%s", message);
    if (skip_bad)
        row->skipped = true;
}

static int compare_row_fleet(const void *a, const void *b)
{
    const bulk_row *x = *(bulk_row *const *)a, *y = *(bulk_row *const *)b;
    return strcmp(x->fleet, y->fleet);
}

/* Every row of the range must name an existing fleet; each distinct name is looked up once.
 * *refused counts the rows refused. */
static vtpmca_err check_fleets(store *st, bulk_doc *doc, size_t from, size_t to, bool skip_bad,
                               size_t *refused, vtpmca_diag *diag)
{
    *refused = 0;
    bulk_row **sorted = malloc((to - from) * sizeof(*sorted));
    if (sorted == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        if (!doc->rows[i].skipped)
            sorted[n++] = &doc->rows[i];
    }
    qsort(sorted, n, sizeof(*sorted), compare_row_fleet);
    vtpmca_err err = VTPMCA_OK;
    for (size_t i = 0; i < n && err == VTPMCA_OK;) {
        size_t end = i + 1;
        while (end < n && strcmp(sorted[end]->fleet, sorted[i]->fleet) == 0)
            end++;
        vtpmca_diag inner = {{0}};
        vtpmca_err exists = store_fleet_exists(st, sorted[i]->fleet, &inner);
        if (exists == VTPMCA_ERR_NOT_FOUND || exists == VTPMCA_ERR_INVALID_ARG) {
            for (size_t k = i; k < end; k++) {
                char text[BULK_ERROR_MESSAGE + STORE_INSTANCE_ID_MAX];
                snprintf(text, sizeof(text), "instance %s: there is no fleet '%s'",
                         sorted[k]->instance_id, sorted[k]->fleet);
                refuse_row(doc, sorted[k], skip_bad, VTPMCA_ERR_NOT_FOUND, text);
            }
            *refused += end - i;
        } else if (exists != VTPMCA_OK) {
            err = vtpmca_fail(diag, exists, "%s", inner.msg);
        }
        i = end;
    }
    free(sorted);
    if (doc->n_errors > 1)
        qsort(doc->errors, doc->n_errors, sizeof(*doc->errors), compare_errors);
    return err;
}

/* Why the store would refuse a row's id or path: enrolled already, or of a deleted instance.
 * *taken is false when neither. */
static vtpmca_err why_taken(store *st, const bulk_row *row, bool *taken, char *message, size_t size,
                            vtpmca_diag *diag)
{
    *taken = false;
    store_instance inst;
    vtpmca_err err = store_instance_get(st, row->instance_id, &inst, diag);
    if (err == VTPMCA_OK) {
        store_instance_free_fields(&inst);
        snprintf(message, size, "instance %s is already enrolled (fleet %s)", row->instance_id,
                 inst.fleet);
        *taken = true;
        return VTPMCA_OK;
    }
    if (err != VTPMCA_ERR_NOT_FOUND)
        return err;
    if (row->resource_path[0] != '\0') {
        err = store_instance_get_by_path(st, row->resource_path, &inst, diag);
        if (err == VTPMCA_OK) {
            store_instance_free_fields(&inst);
            snprintf(message, size, "resource path %.90s belongs to instance %s",
                     row->resource_path, inst.id);
            *taken = true;
            return VTPMCA_OK;
        }
        if (err != VTPMCA_ERR_NOT_FOUND)
            return err;
    }
    bool deleted = false;
    err = store_instance_was_deleted(st, row->instance_id,
                                     row->resource_path[0] != '\0' ? row->resource_path : NULL,
                                     &deleted, diag);
    if (err == VTPMCA_OK && deleted) {
        snprintf(message, size,
                 "instance %s: its id or resource path belonged to a deleted instance (they are "
                 "never reused)",
                 row->instance_id);
        *taken = true;
    }
    return err;
}

/* After the store refused the batch at `failed` (a row of the range): lists every row of
 * the range whose id or path is taken, the refused one at least. Without skip_bad the
 * search stops once BULK_MAX_ERRORS problems are listed. */
static vtpmca_err find_taken(store *st, bulk_doc *doc, size_t from, size_t to, bulk_row *failed,
                             const vtpmca_diag *refusal, bool skip_bad, vtpmca_diag *diag)
{
    bool failed_listed = false;
    size_t found = 0;
    for (size_t i = from; i < to; i++) {
        bulk_row *row = &doc->rows[i];
        if (row->skipped)
            continue;
        if (!skip_bad && found >= BULK_MAX_ERRORS)
            break;
        char message[BULK_ERROR_MESSAGE];
        bool taken = false;
        vtpmca_err err = why_taken(st, row, &taken, message, sizeof(message), diag);
        if (err != VTPMCA_OK)
            return err;
        if (taken) {
            refuse_row(doc, row, skip_bad, VTPMCA_ERR_CONFLICT, message);
            failed_listed = failed_listed || row == failed;
            found++;
        }
    }
    /* Changed since (or refused for a reason the lookups do not see): say what the store
     * said. */
    if (!failed_listed && failed != NULL && !failed->skipped)
        refuse_row(doc, failed, skip_bad, VTPMCA_ERR_CONFLICT, plain(refusal));
    if (doc->n_errors > 1)
        qsort(doc->errors, doc->n_errors, sizeof(*doc->errors), compare_errors);
    return VTPMCA_OK;
}

/* The wrapped blob (base64url) of each row of the batch that brought a key. */
static vtpmca_err wrap_brought_keys(const keyvault *vault, bulk_row *const *rows, size_t n,
                                    bulk_result *results, vtpmca_diag *diag)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i]->key == NULL)
            continue;
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        vtpmca_err err = enrollment_wrap_key(vault, rows[i]->instance_id, rows[i]->key,
                                             rows[i]->key_len, &blob, &blob_len, diag);
        if (err == VTPMCA_OK)
            err = vt_b64_encode_alloc(blob, blob_len, VT_B64_URL_NOPAD, &results[i].wrapped_key);
        free(blob);
        if (err != VTPMCA_OK)
            return err;
    }
    return VTPMCA_OK;
}

/* One attempt at the rows of the range that are not skipped. */
static vtpmca_err enroll_once(store *st, const keyvault *vault, bulk_doc *doc, size_t from,
                              size_t to, const char *actor, bulk_result **results_out,
                              size_t *n_out, bulk_row **failed, vtpmca_diag *diag)
{
    *failed = NULL;
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        n += doc->rows[i].skipped ? 0 : 1;
    if (n == 0)
        return VTPMCA_OK;
    bulk_row **rows = malloc(n * sizeof(*rows));
    enroll_request *reqs = calloc(n, sizeof(*reqs));
    enroll_result *enrolled = calloc(n, sizeof(*enrolled));
    bulk_result *results = calloc(n, sizeof(*results));
    vtpmca_err err = VTPMCA_OK;
    if (rows == NULL || reqs == NULL || enrolled == NULL || results == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory for %zu rows", n);
    for (size_t i = from, k = 0; err == VTPMCA_OK && i < to; i++) {
        bulk_row *row = &doc->rows[i];
        if (row->skipped)
            continue;
        rows[k] = row;
        reqs[k] = (enroll_request){
            .instance_id = row->instance_id,
            .fleet = row->fleet,
            .host_data = row->has_host_data ? row->host_data : NULL,
            .resource_path = row->resource_path[0] != '\0' ? row->resource_path : NULL,
            .mode = row->mode,
            .actor = actor,
        };
        k++;
    }
    if (err == VTPMCA_OK)
        err = wrap_brought_keys(vault, rows, n, results, diag);
    size_t failed_index = n;
    if (err == VTPMCA_OK)
        err = enrollment_enroll_batch(st, vault, reqs, n, enrolled, &failed_index, diag);
    if (err == VTPMCA_OK) {
        for (size_t k = 0; k < n; k++) {
            results[k].line = rows[k]->line;
            memcpy(results[k].instance_id, rows[k]->instance_id, sizeof(results[k].instance_id));
            memcpy(results[k].fleet, rows[k]->fleet, sizeof(results[k].fleet));
            memcpy(results[k].resource_path, enrolled[k].resource_path,
                   sizeof(results[k].resource_path));
        }
        *results_out = results;
        *n_out = n;
        results = NULL;
    } else if (failed_index < n) {
        *failed = rows[failed_index];
    }
    bulk_results_free(results, n);
    free(rows);
    free(reqs);
    free(enrolled);
    return err;
}

vtpmca_err bulk_enroll(store *st, const keyvault *vault, bulk_doc *doc, size_t from, size_t to,
                       const char *actor, bool skip_bad, bulk_result **results, size_t *n_results,
                       vtpmca_diag *diag)
{
    if (results != NULL)
        *results = NULL;
    if (n_results != NULL)
        *n_results = 0;
    if (st == NULL || vault == NULL || doc == NULL || actor == NULL || results == NULL ||
        n_results == NULL || from > to || to > doc->n_rows)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "bulk: missing argument");
    if (from == to)
        return VTPMCA_OK;
    size_t refused = 0;
    vtpmca_err err = check_fleets(st, doc, from, to, skip_bad, &refused, diag);
    if (err != VTPMCA_OK)
        return err;
    if (refused > 0 && !skip_bad)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                           "%zu row%s name%s a fleet that does not exist; nothing was enrolled",
                           refused, refused == 1 ? "" : "s", refused == 1 ? "s" : "");
    for (int round = 1;; round++) {
        bulk_row *failed = NULL;
        vtpmca_diag refusal = {{0}};
        err = enroll_once(st, vault, doc, from, to, actor, results, n_results, &failed, &refusal);
        if (err == VTPMCA_OK)
            return VTPMCA_OK;
        /* A row the store refused: an id or path taken (or a fleet deleted meanwhile). */
        if (failed == NULL || (err != VTPMCA_ERR_CONFLICT && err != VTPMCA_ERR_NOT_FOUND))
            return vtpmca_fail(diag, err, "%s", refusal.msg);
        size_t bad_before = doc->n_bad;
        err = find_taken(st, doc, from, to, failed, &refusal, skip_bad, diag);
        if (err != VTPMCA_OK)
            return err;
        size_t taken = doc->n_bad - bad_before;
        if (!skip_bad)
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "%zu%s row%s name an instance id or resource path that is taken; "
                               "nothing was enrolled",
                               taken, taken >= BULK_MAX_ERRORS ? " or more" : "",
                               taken == 1 ? "" : "s");
        if (round == BULK_SKIP_ROUNDS)
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "the store kept refusing rows (%s); gave up after %d attempts",
                               refusal.msg, round);
    }
}

/* ---- JSON forms ---- */

json_t *bulk_result_to_json(const bulk_result *result)
{
    if (result == NULL)
        return NULL;
    return json_pack("{s:I, s:s, s:s, s:s, s:s*}", "line", (json_int_t)result->line, "instance",
                     result->instance_id, "fleet", result->fleet, "resource_path",
                     result->resource_path, "wrapped_key", result->wrapped_key);
}

json_t *bulk_errors_to_json(const bulk_doc *doc)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && doc != NULL && i < doc->n_errors; i++) {
        json_t *item = json_pack("{s:I, s:s}", "line", (json_int_t)doc->errors[i].line, "message",
                                 doc->errors[i].message);
        if (item == NULL || json_array_append_new(list, item) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

json_t *bulk_row_to_json(const bulk_row *row)
{
    if (row == NULL)
        return NULL;
    char host_data[65] = "";
    char *key = NULL;
    if (row->has_host_data)
        vt_hex_encode(row->host_data, sizeof(row->host_data), host_data, sizeof(host_data));
    if (row->key != NULL &&
        vt_b64_encode_alloc(row->key, row->key_len, VT_B64_STD, &key) != VTPMCA_OK)
        return NULL;
    json_t *out =
        json_pack("{s:s, s:s, s:s*, s:s*, s:s, s:s*}", "instance", row->instance_id, "fleet",
                  row->fleet, "host_data", row->has_host_data ? host_data : NULL, "resource_path",
                  row->resource_path[0] != '\0' ? row->resource_path : NULL, "mode",
                  store_key_mode_name(row->mode), "key", key);
    if (key != NULL)
        OPENSSL_clear_free(key, strlen(key));
    return out;
}
