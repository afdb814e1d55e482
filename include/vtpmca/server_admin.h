/* The admin API's shared vocabulary. The daemon's admin routes (server/admin_routes.c) answer
 * with these JSON forms and the CLI prints the same forms with --json, so the online and
 * offline modes of a command print the same thing. Also the key under which an imported
 * VCEK is stored, shared by `vtpmca snp import-vcek --db` and POST /v1/admin/vceks. */
#ifndef VTPMCA_SERVER_ADMIN_H
#define VTPMCA_SERVER_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/snp_vcek.h"
#include "vtpmca/store.h"

#define SERVER_ADMIN_PREFIX "/v1/admin/"
/* Who changed something through the admin API, as recorded with policy versions. */
#define SERVER_ADMIN_AUTHOR_PREFIX "admin:"

/* Unix seconds as RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ" (size >= 32). */
void server_admin_format_time(int64_t t, char *buf, size_t size);

/* {"name", "description", "created_at": RFC 3339, "latest_policy": n (0 = no policy)};
 * NULL when out of memory. */
json_t *server_admin_fleet_json(const store_fleet *fleet);

/* {"version", "created_at": RFC 3339, "author"}; NULL when out of memory. */
json_t *server_admin_policy_version_json(const store_policy_version *version);

/* Where the verifier looks a certificate up: product ("Milan", ...), signer ("vcek" or
 * "vlek"), hwID zero-padded to 64 bytes (zeros for a VLEK) and the TCB encoded from the
 * certificate's SPL extensions. */
typedef struct {
    const char *product;
    const char *signer;
    uint8_t chip_id[64];
    uint64_t tcb;
} server_vcek_store_key;

vtpmca_err server_admin_vcek_store_key(const snp_vcek_info *info, server_vcek_store_key *out);

#endif
