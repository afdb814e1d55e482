/* The CLI's remote mode: calls to the daemon's admin API (/v1/admin/...) over HTTP(S) with
 * libcurl, each with a fresh short-lived token signed by the admin's private key
 * (admin_auth.h). cli_remote_admin_ops is the remote implementation of cli_admin_ops, so the
 * commands work the same against a database file (--db) and against the daemon (--server).
 *
 * Adding a remote admin operation: a function here that builds the path (checking its
 * segments with cli_remote_check_segment), calls cli_remote_call and decodes the answer. */
#ifndef VTPMCA_CLI_REMOTE_H
#define VTPMCA_CLI_REMOTE_H

#include <jansson.h>
#include <stdbool.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "vtpmca/admin_auth.h"

/* Lifetime of the token of one request: enough for a slow upload, far below the daemon's
 * ADMIN_TOKEN_MAX_LIFETIME_S. */
#define CLI_REMOTE_TOKEN_LIFETIME_S 60

typedef struct {
    const char *server;   /* base URL, e.g. https://vtpmca.example:8377 */
    const char *key_path; /* the admin's private key (PEM) */
    const char *name;     /* admin name; NULL = the key file name without .pem */
    const char *cacert;   /* CA file for HTTPS; NULL = the system's CAs */
} cli_remote_config;

/* Whether the command runs remotely: --server, else VTPMCA_SERVER when --db is absent. Fills
 * *cfg from the options, falling back to VTPMCA_ADMIN_KEY, VTPMCA_ADMIN_NAME and
 * VTPMCA_CACERT. *remote is false for offline use (then the remote options must be absent:
 * VTPMCA_ERR_INVALID_ARG). */
vtpmca_err cli_remote_config_from_opts(const cli_opts *opts, bool *remote, cli_remote_config *cfg,
                                       vtpmca_diag *diag);

typedef struct cli_remote cli_remote;

/* Loads the key and prepares the HTTP client. http:// is accepted only for loopback hosts
 * (a bearer token must not cross a network in clear). */
vtpmca_err cli_remote_open(const cli_remote_config *cfg, cli_remote **out, vtpmca_diag *diag);
void cli_remote_close(cli_remote *remote);

/* The admin name the requests are signed for (as the daemon's audit log names the actor). */
const char *cli_remote_admin_name(const cli_remote *remote);

/* Checks that `segment` can be a path segment as is (1..256 of [A-Za-z0-9._~:-]); `what`
 * names it in the diag (VTPMCA_ERR_INVALID_ARG). */
vtpmca_err cli_remote_check_segment(const char *what, const char *segment, vtpmca_diag *diag);

/* One call: `method` on `path` (starting with /v1/admin/) with a token for `role`, and
 * `body` (JSON text, NULL for none). A 2xx answer's JSON goes to *answer (may be NULL when
 * not wanted). Other answers become errors carrying the daemon's message: 400 PARSE,
 * 401 CRYPTO, 403 POLICY, 404 NOT_FOUND, 409 CONFLICT, 413 LIMIT, 422 CRYPTO, 429/503
 * NETWORK, others INTERNAL; transport failures are NETWORK. */
vtpmca_err cli_remote_call(cli_remote *remote, const char *method, const char *path,
                           admin_role role, const char *body, json_t **answer, vtpmca_diag *diag);

/* The general form of cli_remote_call: a body of any media type (content_type; body_len
 * bytes), the HTTP status in *status_out (may be NULL), and the daemon's JSON answer in
 * *answer (may be NULL) whatever the status, so that callers can read an error's details
 * (e.g. the line numbers of a refused bulk enrollment). The return value is as for
 * cli_remote_call. */
vtpmca_err cli_remote_request(cli_remote *remote, const char *method, const char *path,
                              admin_role role, const char *content_type, const char *body,
                              size_t body_len, long *status_out, json_t **answer,
                              vtpmca_diag *diag);

/* The admin operations over the API; ctx is a cli_remote *. */
extern const cli_admin_ops cli_remote_admin_ops;

#endif
