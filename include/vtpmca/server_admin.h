/* The admin API's shared vocabulary. The daemon's admin routes (server/admin_routes.c) answer
 * with these JSON forms and the CLI prints the same forms with --json, so the online and
 * offline modes of a command print the same thing. Also the key under which an imported
 * VCEK is stored, shared by `vtpmca snp import-vcek --db` and POST /v1/admin/vceks. */
#ifndef VTPMCA_SERVER_ADMIN_H
#define VTPMCA_SERVER_ADMIN_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/ledger.h"
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

/* ---- Instances, audit, ledger (server/admin_instance_routes.c, admin_audit_routes.c,
 * admin_ledger_routes.c) ---- */

/* Unix milliseconds as RFC 3339 UTC with milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ"
 * (size >= 32). */
void server_admin_format_time_ms(int64_t ms, char *buf, size_t size);
/* The inverse for the admin API's time parameters: "YYYY-MM-DDTHH:MM:SSZ", optionally with
 * a fraction of a second (milliseconds kept), 'T' and 'Z' in either case. PARSE otherwise. */
vtpmca_err server_admin_parse_time_ms(const char *text, int64_t *out);

/* {"instance", "fleet", "resource_path", "key_mode": "generated"|"wrapped", "host_data": hex
 * or null, "disabled": bool, "created_at": RFC 3339}; NULL when out of memory. */
json_t *server_admin_instance_json(const store_instance *instance);

/* {"seq", "at": RFC 3339 with milliseconds, "actor", "action", "instance", "outcome",
 * "measurement", "chip_id", "detail"} ("" for empty fields); NULL when out of memory. */
json_t *server_admin_audit_event_json(const store_audit_event *event);

/* {"instance", "has_entry", "counter": 32 hex digits or null, "origin": the same, "root": hex
 * or null, "updated_at": RFC 3339 with milliseconds or null, "locked", "require_admin_clear",
 * "fork_refusals", "rollback_refusals"}; NULL when out of memory. */
json_t *server_admin_ledger_json(const char *instance, const ledger_record *record);

/* ---- KBS keys (server/admin_kbs_routes.c; `vtpmca kbs-key` offline uses them too) ----
 * Peer KBS public keys are trusted for EK/IAK certification as PEM files in vtpmcad's
 * trusted_kbs_keys_dir, which it reads at start. */

/* Hex digits of a KBS key fingerprint (SHA-256 of its DER SubjectPublicKeyInfo). */
#define SERVER_ADMIN_KBS_FINGERPRINT_HEX 64
/* Peer keys a directory may hold: vtpmcad trusts at most 64 KBS keys, its own included. */
#define SERVER_ADMIN_KBS_PEERS_MAX 63

/* {"fingerprint", "alg": "ES384"|"ES256", "pem"} of a KBS key's public part;
 * VTPMCA_ERR_UNSUPPORTED for a key that is not EC P-256 or P-384. */
vtpmca_err server_admin_kbs_key_json(const EVP_PKEY *key, json_t **out, vtpmca_diag *diag);

/* {"dir", "keys": [{"fingerprint", "alg", "pem", "file"}, or {"file", "error"} for a *.pem
 * file that holds no such key]}; a directory that does not exist holds no keys. */
vtpmca_err server_admin_kbs_trusted_list(const char *dir, json_t **out, vtpmca_diag *diag);

/* Trusts a peer KBS public key given as PEM text: writes DIR/<fingerprint>.pem atomically
 * (mode 0644; the directory is made when missing). Answers the key's JSON form with
 * "already_trusted" (then nothing was written). PARSE or UNSUPPORTED for anything but an EC
 * P-256/P-384 public key, CONFLICT for own_fingerprint (this service's key, trusted anyway),
 * LIMIT beyond SERVER_ADMIN_KBS_PEERS_MAX peers. */
vtpmca_err server_admin_kbs_trust(const char *dir, const char *own_fingerprint, const char *pem,
                                  size_t pem_len, json_t **out, vtpmca_diag *diag);

/* Stops trusting the peer key with this fingerprint (64 hex digits, either case): removes the
 * file that holds it. Answers {"fingerprint", "removed": true}; NOT_FOUND when no file does. */
vtpmca_err server_admin_kbs_untrust(const char *dir, const char *fingerprint, json_t **out,
                                    vtpmca_diag *diag);

#endif
