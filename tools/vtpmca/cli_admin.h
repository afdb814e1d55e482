/* The admin operations of the CLI (fleets, policies, VCEK import) behind one interface with
 * two implementations: offline on the database named by --db (cli_admin.c), and remote on the
 * daemon's admin API with signed tokens (--server, cli_remote.c). cli_admin_open chooses; the
 * commands do not know which. A new operation is a member here, a local function in
 * cli_admin.c and a remote one in cli_remote.c. */
#ifndef VTPMCA_CLI_ADMIN_H
#define VTPMCA_CLI_ADMIN_H

#include <stdbool.h>

#include "cli_common.h"
#include "vtpmca/store.h"

typedef struct {
    vtpmca_err (*fleet_create)(void *ctx, const char *name, const char *description,
                               vtpmca_diag *diag);
    vtpmca_err (*fleet_exists)(void *ctx, const char *name, vtpmca_diag *diag);
    vtpmca_err (*fleet_list)(void *ctx, store_fleet **out, size_t *n, vtpmca_diag *diag);
    vtpmca_err (*policy_put)(void *ctx, const char *fleet, const char *policy_json,
                             const char *author, uint32_t *version_out, vtpmca_diag *diag);
    vtpmca_err (*policy_get)(void *ctx, const char *fleet, uint32_t version, char **policy_json,
                             uint32_t *version_out, vtpmca_diag *diag);
    vtpmca_err (*policy_history)(void *ctx, const char *fleet, store_policy_version **out,
                                 size_t *n, vtpmca_diag *diag);
    vtpmca_err (*vcek_put)(void *ctx, const char *product, const char *signer,
                           const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                           size_t der_len, const char *source, vtpmca_diag *diag);
    void (*close)(void *ctx);
} cli_admin_ops;

typedef struct {
    const cli_admin_ops *ops;
    void *ctx;
} cli_admin;

/* Opens the admin backend for a command's options: --server (or VTPMCA_SERVER without --db)
 * for the daemon's admin API, else --db. Read-only commands pass create == false so that a
 * mistyped path is an error rather than a new empty database (unused remotely). */
vtpmca_err cli_admin_open(const cli_opts *opts, bool create, cli_admin *out, vtpmca_diag *diag);
void cli_admin_close(cli_admin *admin);

/* Whether an open admin backend is the daemon's admin API (ctx is a cli_remote *) rather
 * than the database of --db (ctx is a store *): for commands with their own operations of
 * each kind (e.g. cmd_instance.c, cmd_audit.c). */
bool cli_admin_is_remote(const cli_admin *admin);

/* Who is making a change, recorded with policy versions: "cli:<login name>". */
void cli_admin_author(char *buf, size_t size);

#endif
