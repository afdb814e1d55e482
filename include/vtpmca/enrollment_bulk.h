/* Bulk enrollment: many instances from one CSV or JSON Lines document, for the admin API
 * (POST /v1/admin/instances/bulk), `vtpmca instance bulk` and bench/bench_enroll.c.
 *
 * Every row is parsed and checked before anything is enrolled; bad rows are reported with
 * their line numbers. A batch of rows is enrolled all or nothing in one transaction
 * (enrollment_enroll_batch); with skip_bad the bad rows are left out instead, explicitly.
 *
 * Columns (CSV: a header line names them, in any order; JSON Lines: one object per line
 * with these keys, string values, null = absent):
 *   instance       required: the instance id (store_check_instance_id)
 *   fleet          required unless a default fleet is given: an existing fleet
 *   host_data      optional: 64 hex digits the attested HOST_DATA must equal
 *   resource_path  optional: "<repo>/<type>/<tag>"; or
 *   resource_tag   optional: a tag under ENROLLMENT_PATH_PREFIX; neither = generated
 *   mode           optional: "generated" (default) or "wrapped"
 *   key            optional, wrapped mode only: a key the admin brings (standard base64,
 *                  1..KEYVAULT_KEY_MAX bytes); the result carries its wrapped blob
 * Blank lines and (CSV) lines starting with '#' are skipped; line numbers count every line
 * of the document. CSV fields may be double-quoted ("" is a quote inside). */
#ifndef VTPMCA_ENROLLMENT_BULK_H
#define VTPMCA_ENROLLMENT_BULK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/enrollment.h"
#include "vtpmca/err.h"
#include "vtpmca/keyvault.h"
#include "vtpmca/store.h"

#define BULK_MAX_ROWS 100000   /* rows of one admin API request (one transaction) */
#define BULK_MAX_ERRORS 100    /* problems listed; further bad rows are only counted */
#define BULK_LINE_MAX 4096     /* bytes of one line */
#define BULK_ERROR_MESSAGE 200 /* bytes of one problem's message */

typedef enum {
    BULK_CSV = 0,
    BULK_JSONL,
} bulk_format;

/* "csv" / "jsonl"; parse also accepts "ndjson". Else VTPMCA_ERR_INVALID_ARG. */
const char *bulk_format_name(bulk_format format);
vtpmca_err bulk_format_parse(const char *text, bulk_format *out);
/* "text/csv" / "application/x-ndjson". */
const char *bulk_format_content_type(bulk_format format);
/* text/csv; application/x-ndjson, application/jsonl or application/json-lines (any case,
 * parameters after ';' ignored). VTPMCA_ERR_UNSUPPORTED for others and NULL. */
vtpmca_err bulk_format_from_content_type(const char *content_type, bulk_format *out);

typedef struct {
    size_t line; /* 1-based line of the document */
    char instance_id[STORE_INSTANCE_ID_MAX + 1];
    char fleet[64];
    bool has_host_data;
    uint8_t host_data[32];
    char resource_path[STORE_RESOURCE_PATH_MAX + 1]; /* "" = generated at enrollment */
    store_key_mode mode;
    uint8_t *key; /* wrapped mode: the admin's key to wrap (malloc'd, wiped), else NULL */
    size_t key_len;
    bool skipped; /* left out by bulk_enroll with skip_bad (its fleet or id was refused) */
} bulk_row;

typedef struct {
    size_t line;    /* 0 = the document as a whole */
    vtpmca_err err; /* PARSE / INVALID_ARG (format), NOT_FOUND (fleet), CONFLICT (taken) */
    char message[BULK_ERROR_MESSAGE];
} bulk_error;

typedef struct {
    bulk_row *rows; /* the rows without problems, in document order */
    size_t n_rows;
    bulk_error *errors; /* the first BULK_MAX_ERRORS problems, in the order found */
    size_t n_errors;
    size_t n_bad; /* rows left out because of a problem (may exceed n_errors) */
} bulk_doc;

typedef struct {
    const char *default_fleet; /* fleet of rows that name none; NULL = each row must */
    size_t max_rows;           /* 0 = BULK_MAX_ROWS; more rows is VTPMCA_ERR_LIMIT */
} bulk_parse_options;

/* Parses and checks every row (formats, modes, keys, and that no instance id or resource
 * path appears twice). Rows with a problem are left out of doc->rows and listed in
 * doc->errors. Errors of the call itself: the document has no rows or a bad CSV header
 * (VTPMCA_ERR_PARSE), too many rows (VTPMCA_ERR_LIMIT). options may be NULL. */
vtpmca_err bulk_parse(const char *text, size_t len, bulk_format format,
                      const bulk_parse_options *options, bulk_doc *doc, vtpmca_diag *diag);
void bulk_doc_free(bulk_doc *doc);

/* The outcome of one enrolled row. */
typedef struct {
    size_t line;
    char instance_id[STORE_INSTANCE_ID_MAX + 1];
    char fleet[64];
    char resource_path[STORE_RESOURCE_PATH_MAX + 1];
    char *wrapped_key; /* base64url of the wrapped key for rows that brought one, else NULL */
} bulk_result;

void bulk_results_free(bulk_result *results, size_t n);

/* Enrolls doc->rows[from, to) in one transaction (enrollment_enroll_batch, each row audited
 * as "enroll" by `actor`). Before it, the rows' fleets must exist; when the transaction is
 * refused because a row's id or resource path is taken (enrolled, or of a deleted
 * instance), every such row of the range is looked up and listed. Without skip_bad any
 * problem enrolls nothing: VTPMCA_ERR_NOT_FOUND (unknown fleet) or VTPMCA_ERR_CONFLICT,
 * with the problems appended to doc->errors. With skip_bad those rows are left out and the
 * others enrolled. *results (malloc'd, NULL when *n_results is 0) lists the enrolled rows
 * in document order. */
vtpmca_err bulk_enroll(store *st, const keyvault *vault, bulk_doc *doc, size_t from, size_t to,
                       const char *actor, bool skip_bad, bulk_result **results, size_t *n_results,
                       vtpmca_diag *diag);

/* ---- JSON forms (the admin API's answers, the CLI's output) ---- */

/* {"line", "instance", "fleet", "resource_path", "wrapped_key"?}; NULL when out of memory. */
json_t *bulk_result_to_json(const bulk_result *result);
/* [{"line", "message"}...] of doc->errors. */
json_t *bulk_errors_to_json(const bulk_doc *doc);
/* One row as a JSON Lines object (what the CLI sends to the admin API); the key, if any,
 * is in it as standard base64. */
json_t *bulk_row_to_json(const bulk_row *row);
/* Appends a problem to doc->errors (kept to BULK_MAX_ERRORS) and counts the row bad. */
void bulk_doc_add_error(bulk_doc *doc, size_t line, vtpmca_err err, const char *fmt, ...)
    VTPMCA_PRINTF(4, 5);

#endif
