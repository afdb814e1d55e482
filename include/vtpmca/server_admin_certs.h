/* The admin API's certificate routes (server/admin_cert_routes.c) and their JSON form, which
 * `vtpmca cert list|show|revoke` prints with --json in both of its modes (--db and --server):
 *   GET  /v1/admin/certs?instance=ID&after=SERIAL&limit=N -> {"certs": [record, ...]}
 *        (ordered by serial; page with after = the last serial while limit records come back)
 *   GET  /v1/admin/certs/<serial>                         -> record with its bytes
 *   POST /v1/admin/certs/<serial>/revoke {"reason": R}    -> record (role admin)
 * A record is {"serial", "instance_id", "kind", "format", "key_name", "status", "not_before",
 * "not_after", "revoked_at", "reason", "created_at"} (times RFC 3339; revoked_at and reason
 * null unless revoked), plus "der" and "c509" (standard base64, or null) with its bytes. */
#ifndef VTPMCA_SERVER_ADMIN_CERTS_H
#define VTPMCA_SERVER_ADMIN_CERTS_H

#include <jansson.h>
#include <stdbool.h>

#include "vtpmca/store.h"

#define SERVER_ADMIN_CERTS_PATH "/v1/admin/certs"
/* Records per page when the request names no limit (at most STORE_LIST_MAX). */
#define SERVER_ADMIN_CERTS_PAGE_DEFAULT 1000

/* The record of a stored certificate, with its bytes when with_bytes; NULL when out of
 * memory or when cert is NULL. */
json_t *server_admin_cert_json(const store_cert *cert, bool with_bytes);

#endif
