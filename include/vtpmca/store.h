/* Persistent store interface. Backends: sqlite (default, WAL) and, later, PostgreSQL.
 * Every SQL statement of the product lives behind this interface. All functions are safe to
 * call from several threads on one handle. Text arguments are NUL-terminated UTF-8. */
#ifndef VTPMCA_STORE_H
#define VTPMCA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

typedef struct store store;

/* Size limits enforced by the store (VTPMCA_ERR_LIMIT beyond them). */
#define STORE_VCEK_DER_MAX 65536
#define STORE_POLICY_JSON_MAX (1024 * 1024)

/* Opens (creating if needed) a store and applies pending schema migrations in order, each
 * in its own transaction. `uri` is "sqlite:PATH" or a plain path (sqlite). Other schemes
 * are VTPMCA_ERR_UNSUPPORTED for now. A database file the store creates is mode 0600.
 * A database whose schema is newer than this build is refused (VTPMCA_ERR_UNSUPPORTED). */
vtpmca_err store_open(const char *uri, store **out, vtpmca_diag *diag);
void store_close(store *st);

/* Current schema version (number of applied migrations). */
vtpmca_err store_schema_version(store *st, int *out);

/* ---- VCEK / VLEK certificates, keyed by (product, signer, chip_id, TCB). ----
 * product: "Milan"/"Genoa"/"Turin"; signer: "vcek" or "vlek"; chip_id 64 bytes (zeros for
 * VLEK); tcb: the TCB_VERSION value as in the report's reported_tcb. source: "import",
 * "kds". Putting an identical key again replaces the certificate. der: 1..STORE_VCEK_DER_MAX
 * bytes, stored as given (the caller verifies it). */
vtpmca_err store_vcek_put(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, const uint8_t *der,
                          size_t der_len, const char *source, vtpmca_diag *diag);
/* *der is malloc'd; VTPMCA_ERR_NOT_FOUND when absent. */
vtpmca_err store_vcek_get(store *st, const char *product, const char *signer,
                          const uint8_t chip_id[64], uint64_t tcb, uint8_t **der, size_t *der_len,
                          vtpmca_diag *diag);
/* Number of stored certificates (for status output). */
vtpmca_err store_vcek_count(store *st, uint64_t *out, vtpmca_diag *diag);

/* ---- Fleets and their versioned policies. ---- */
/* Fleet names: 1..63 chars of [A-Za-z0-9._-]. VTPMCA_ERR_CONFLICT if it exists.
 * description: NULL or up to 255 bytes of UTF-8 without control characters. */
vtpmca_err store_fleet_create(store *st, const char *name, const char *description,
                              vtpmca_diag *diag);
/* VTPMCA_OK if it exists, VTPMCA_ERR_NOT_FOUND if not. */
vtpmca_err store_fleet_exists(store *st, const char *name, vtpmca_diag *diag);

typedef struct {
    char name[64];
    char description[256];
    int64_t created_at;     /* unix seconds */
    uint32_t latest_policy; /* 0 when no policy yet */
} store_fleet;
/* *out is a malloc'd array of *n entries, ordered by name. */
vtpmca_err store_fleet_list(store *st, store_fleet **out, size_t *n, vtpmca_diag *diag);

/* Appends a new policy version (previous versions are kept) and returns its number,
 * starting at 1, in *version_out (may be NULL). The fleet must exist (else NOT_FOUND).
 * policy_json must be a JSON object of at most STORE_POLICY_JSON_MAX bytes (else PARSE /
 * LIMIT); its content is the policy module's business. author: 1..63 bytes of UTF-8 without
 * control characters. Concurrent puts get distinct, gapless versions. */
vtpmca_err store_policy_put(store *st, const char *fleet, const char *policy_json,
                            const char *author, uint32_t *version_out, vtpmca_diag *diag);
/* version 0 = latest. *policy_json is malloc'd; version_out (may be NULL) gets the version
 * returned. VTPMCA_ERR_NOT_FOUND for an unknown fleet, no policy yet, or an unknown version. */
vtpmca_err store_policy_get(store *st, const char *fleet, uint32_t version, char **policy_json,
                            uint32_t *version_out, vtpmca_diag *diag);

typedef struct {
    uint32_t version;
    int64_t created_at;
    char author[64];
} store_policy_version;
/* All versions of a fleet's policy, oldest first; *out malloc'd (NULL when *n is 0, i.e. the
 * fleet has no policy yet). VTPMCA_ERR_NOT_FOUND for an unknown fleet. */
vtpmca_err store_policy_history(store *st, const char *fleet, store_policy_version **out, size_t *n,
                                vtpmca_diag *diag);

/* ---- Enrolled instances and their persistence keys ---- */

/* Instance ids: 1..63 chars of [A-Za-z0-9._:-]. Resource paths: "<repo>/<type>/<tag>", each
 * segment 1..64 chars of [A-Za-z0-9._-] (the KBS resource URI an instance asks for). */
#define STORE_INSTANCE_ID_MAX 63
#define STORE_RESOURCE_SEGMENT_MAX 64
#define STORE_RESOURCE_PATH_MAX (3 * STORE_RESOURCE_SEGMENT_MAX + 2)
#define STORE_WRAPPED_KEY_MAX 1024 /* a stored wrapped key, as the key vault made it */
#define STORE_LIST_MAX 10000       /* most rows one list or query call returns */

typedef enum {
    STORE_KEY_GENERATED = 0, /* the service made the key; wrapped_key holds it wrapped */
    STORE_KEY_WRAPPED,       /* the instance presents its own wrapped key; none is stored */
} store_key_mode;

/* "generated" / "wrapped"; parse accepts exactly these (else INVALID_ARG). */
const char *store_key_mode_name(store_key_mode mode);
vtpmca_err store_key_mode_parse(const char *text, store_key_mode *out);

typedef struct {
    char id[STORE_INSTANCE_ID_MAX + 1];
    char fleet[64];
    char resource_path[STORE_RESOURCE_PATH_MAX + 1];
    bool has_host_data; /* enrolled host_data the attested one must equal */
    uint8_t host_data[32];
    store_key_mode key_mode;
    uint8_t *wrapped_key; /* generated mode: 1..STORE_WRAPPED_KEY_MAX bytes; wrapped: NULL */
    size_t wrapped_key_len;
    bool disabled;
    int64_t created_at; /* unix seconds, set by the store when the instance is put */
} store_instance;

/* Format checks of the two identifiers (INVALID_ARG with a diag naming the problem). */
vtpmca_err store_check_instance_id(const char *id, vtpmca_diag *diag);
vtpmca_err store_check_resource_path(const char *path, vtpmca_diag *diag);

/* Enrolls an instance. The fleet must exist (NOT_FOUND); an existing id or resource path is
 * VTPMCA_ERR_CONFLICT. `disabled` and `created_at` of the argument are ignored. */
vtpmca_err store_instance_put(store *st, const store_instance *instance, vtpmca_diag *diag);
/* Enrolls n instances (1..) all or nothing, in one transaction. On failure *failed_index
 * (may be NULL) names the item at fault, or n when no single item is. */
vtpmca_err store_instance_put_batch(store *st, const store_instance *items, size_t n,
                                    size_t *failed_index, vtpmca_diag *diag);
/* Found by id or by resource path; NOT_FOUND when absent. Free with
 * store_instance_free_fields. */
vtpmca_err store_instance_get(store *st, const char *id, store_instance *out, vtpmca_diag *diag);
vtpmca_err store_instance_get_by_path(store *st, const char *resource_path, store_instance *out,
                                      vtpmca_diag *diag);
/* Up to `limit` (1..STORE_LIST_MAX) instances ordered by id, of one fleet or all (NULL),
 * with ids after `after_id` (NULL: from the start) for paging. *out is malloc'd (NULL when
 * *n is 0); free with store_instance_list_free. */
vtpmca_err store_instance_list(store *st, const char *fleet, const char *after_id, size_t limit,
                               store_instance **out, size_t *n, vtpmca_diag *diag);
/* NOT_FOUND for an unknown id. */
vtpmca_err store_instance_set_disabled(store *st, const char *id, bool disabled, vtpmca_diag *diag);
void store_instance_free_fields(store_instance *instance); /* frees and clears wrapped_key */
void store_instance_list_free(store_instance *items, size_t n);

/* ---- Audit log (append-only: the database refuses UPDATE and DELETE) ---- */

typedef struct {
    int64_t seq;          /* assigned by the store */
    int64_t at_ms;        /* unix milliseconds; 0 on append = now */
    char actor[64];       /* who: an admin, a session id; "" = none */
    char action[32];      /* required: [a-z0-9_.]+, e.g. "enroll", "key_release" */
    char instance_id[64]; /* "" = none */
    char outcome[32];     /* e.g. "granted", "policy_rejected"; "" = none */
    char measurement[97]; /* hex; "" = none */
    char chip_id[129];    /* hex; "" = none */
    char detail[256];     /* free text; never key material */
} store_audit_event;

/* Appends one event. Text fields must be NUL-terminated in their arrays and hold valid
 * UTF-8 without control characters. */
vtpmca_err store_audit_append(store *st, const store_audit_event *event, vtpmca_diag *diag);

/* How an asynchronous write ended: err is VTPMCA_OK once it is durable; otherwise `detail`
 * says why it was not written. Called exactly once, from the store's commit thread (or the
 * thread of a write that shared the commit): it must be quick and must not call the store. */
typedef void (*store_write_done)(void *arg, vtpmca_err err, const char *detail);

/* store_audit_append without waiting: the event is copied and queued to be committed with
 * whatever else is being written, and `report` tells the outcome. Returns an error, and
 * never calls `report`, when the event is refused or cannot be queued. For callers that must
 * not act before the row is durable but have other work to do meanwhile (a key release
 * answers only in `report`). */
vtpmca_err store_audit_append_async(store *st, const store_audit_event *event,
                                    store_write_done report, void *arg, vtpmca_diag *diag);

typedef struct {
    const char *instance_id; /* NULL: any */
    const char *action;      /* NULL: any */
    const char *outcome;     /* NULL: any */
    int64_t since_ms;        /* at >= since_ms; 0: no bound */
    int64_t until_ms;        /* at < until_ms; 0: no bound */
    int64_t after_seq;       /* seq > after_seq (paging); 0: from the start */
    size_t limit;            /* 1..STORE_LIST_MAX */
} store_audit_filter;

/* Matching events in seq order; *out malloc'd (NULL when *n is 0). */
vtpmca_err store_audit_query(store *st, const store_audit_filter *filter, store_audit_event **out,
                             size_t *n, vtpmca_diag *diag);

/* Enrollment in one transaction with its audit trail: like store_instance_put_batch, and for
 * each item `describe` (called inside the transaction, possibly more than once per item when
 * the transaction is retried, so it must not have side effects) fills an event that is
 * appended with it. A describe error aborts the batch at that item. */
typedef vtpmca_err (*store_audit_describe_fn)(const store_instance *item, size_t index,
                                              store_audit_event *event, void *ctx);
vtpmca_err store_instance_put_batch_audited(store *st, const store_instance *items, size_t n,
                                            store_audit_describe_fn describe, void *ctx,
                                            size_t *failed_index, vtpmca_diag *diag);

/* ---- Rollback ledger (storage of attest/ledger.c; see include/vtpmca/ledger.h) ----
 * One row per instance. The ledger engine reads and writes it through a store_ledger_writer:
 * a dedicated connection for its one writer thread, so group commits neither wait for nor
 * block the store's other users. */
#define STORE_LEDGER_COUNTER_LEN 16
#define STORE_LEDGER_ROOT_MAX 64

typedef struct {
    bool has_entry; /* counter, origin, root are set (an advance was accepted) */
    uint8_t counter[STORE_LEDGER_COUNTER_LEN];
    uint8_t origin[STORE_LEDGER_COUNTER_LEN];
    uint8_t root[STORE_LEDGER_ROOT_MAX];
    size_t root_len;    /* 1..STORE_LEDGER_ROOT_MAX with an entry, else 0 */
    int64_t updated_ms; /* unix milliseconds of the last accepted advance; >= 0 */
    bool locked;
    bool require_admin_clear;
    uint64_t fork_refusals;     /* <= INT64_MAX */
    uint64_t rollback_refusals; /* <= INT64_MAX */
    uint64_t version;           /* row version: 1 when created, +1 per write; <= INT64_MAX */
} store_ledger_state;

typedef struct {
    const char *instance;     /* store_check_instance_id format */
    store_ledger_state state; /* the new row; state.version = stored version + 1 (1: new row) */
} store_ledger_write;

typedef struct store_ledger_writer store_ledger_writer;

/* Opens a writer on its own database connection (calls on one writer are serialised: meant
 * for one thread). Close it before the store. */
vtpmca_err store_ledger_writer_open(store *st, store_ledger_writer **out, vtpmca_diag *diag);
void store_ledger_writer_close(store_ledger_writer *w);
/* An instance's row; VTPMCA_ERR_NOT_FOUND when there is none. */
vtpmca_err store_ledger_load(store_ledger_writer *w, const char *instance, store_ledger_state *out,
                             vtpmca_diag *diag);
/* Writes n (1..STORE_LEDGER_BATCH_MAX) rows in ONE transaction, all or nothing; returns once
 * the transaction is durable. A write with version v > 1 applies only to the row at version
 * v - 1, one with version 1 only when there is no row: otherwise VTPMCA_ERR_CONFLICT (the row
 * changed since it was read) and nothing is written. */
#define STORE_LEDGER_BATCH_MAX 100000
vtpmca_err store_ledger_apply_batch(store_ledger_writer *w, const store_ledger_write *writes,
                                    size_t n, vtpmca_diag *diag);

/* The ledger key of a wrapped-key mode instance (see docs/protocol.md, "Rollback ledger:
 * protocol"): the service sees such an instance's persistence key only at release time, so it
 * keeps the ledger key derived from it, wrapped by the key vault (1..STORE_WRAPPED_KEY_MAX
 * bytes). Put replaces the instance's blob; NOT_FOUND when no such instance is enrolled.
 * Get: *blob is malloc'd; NOT_FOUND when none is stored. */
vtpmca_err store_ledger_key_put(store *st, const char *instance_id, const uint8_t *blob, size_t len,
                                vtpmca_diag *diag);
vtpmca_err store_ledger_key_get(store *st, const char *instance_id, uint8_t **blob, size_t *len,
                                vtpmca_diag *diag);

/* ---- EK re-enrollment grants (store_ek_reenroll_sqlite.c; used by ca/issuance.c) ----
 * An admin allows an instance's next certification to present another EK than the one
 * certified before (its vTPM was re-created). Grant: NOT_FOUND for an unknown instance;
 * granting again refreshes the grant. Take: deletes the grant in one transaction and tells
 * whether there was one (*granted), so a grant is used at most once. */
vtpmca_err store_instance_ek_reenroll_grant(store *st, const char *instance_id, vtpmca_diag *diag);
vtpmca_err store_instance_ek_reenroll_take(store *st, const char *instance_id, bool *granted,
                                           vtpmca_diag *diag);

/* ---- Deleting instances (store_admin_sqlite.c; the admin API and CLI) ----
 * Deletion retires an instance for good, in one transaction: its row goes, and with it its
 * wrapped persistence key (nothing can release that key again), its stored ledger key and
 * any EK re-enrollment grant; its certificates that are still valid are revoked (reason
 * cessationOfOperation, so the CRL lists them); its id and resource path are recorded and
 * can never be enrolled again (enrolling either is VTPMCA_ERR_CONFLICT). Its audit entries
 * and ledger row stay. NOT_FOUND for an unknown instance. */
typedef struct {
    size_t certs_revoked;    /* certificates of the instance revoked by the deletion */
    bool ledger_key_deleted; /* a stored ledger key (wrapped-key mode) was deleted */
} store_instance_deletion;
vtpmca_err store_instance_delete(store *st, const char *id, store_instance_deletion *out,
                                 vtpmca_diag *diag);
/* Whether an instance id or a resource path (either may be NULL, not both) belonged to a
 * deleted instance. */
vtpmca_err store_instance_was_deleted(store *st, const char *id, const char *resource_path,
                                      bool *deleted, vtpmca_diag *diag);

/* The seq of the newest audit event (0 for an empty log): where `audit tail` starts. */
vtpmca_err store_audit_last_seq(store *st, int64_t *out, vtpmca_diag *diag);

/* ---- Issued certificates (EK / IAK) and the CRL number (store_certs_sqlite.c) ----
 * One row per certificate the CA issued, keyed by serial number; revocation marks the row
 * (it is never deleted) and the CRL is built from the revoked rows. */
#define STORE_CERT_SERIAL_HEX_MAX 40    /* RFC 5280 serials: at most 20 bytes */
#define STORE_CERT_KEY_NAME_HEX_MAX 132 /* TPM name: 2-byte nameAlg + up to a SHA-512 digest */
#define STORE_CERT_BLOB_MAX 16384       /* a stored X.509 DER or C509 certificate */
#define STORE_CERT_REASON_MAX 31

typedef enum {
    STORE_CERT_EK = 0,
    STORE_CERT_IAK,
} store_cert_kind;

typedef enum {
    STORE_CERT_X509 = 0,
    STORE_CERT_C509,
} store_cert_format;

typedef enum {
    STORE_CERT_ISSUED = 0,
    STORE_CERT_REVOKED,
} store_cert_status;

/* "ek"/"iak", "x509"/"c509", "issued"/"revoked" (NULL for other values); parse accepts
 * exactly these (else INVALID_ARG). */
const char *store_cert_kind_name(store_cert_kind kind);
const char *store_cert_format_name(store_cert_format format);
const char *store_cert_status_name(store_cert_status status);
vtpmca_err store_cert_kind_parse(const char *text, store_cert_kind *out);
vtpmca_err store_cert_format_parse(const char *text, store_cert_format *out);

typedef struct {
    /* Lower-case hex of the serial number's big-endian magnitude (what the DER INTEGER holds,
     * without a leading zero byte): 2..STORE_CERT_SERIAL_HEX_MAX digits, even, no leading
     * "00". */
    char serial[STORE_CERT_SERIAL_HEX_MAX + 1];
    char instance_id[STORE_INSTANCE_ID_MAX + 1]; /* store_check_instance_id format */
    store_cert_kind kind;
    /* Lower-case hex of the certified key's TPM object name (nameAlg || digest), 4.. digits. */
    char key_name[STORE_CERT_KEY_NAME_HEX_MAX + 1];
    store_cert_format format;
    int64_t not_before; /* unix seconds */
    int64_t not_after;  /* unix seconds, >= not_before */
    store_cert_status status;
    int64_t revoked_at;                     /* unix seconds; 0 unless revoked */
    char reason[STORE_CERT_REASON_MAX + 1]; /* RFC 5280 reason name; "" unless revoked */
    uint8_t *der;    /* X.509 DER: required for x509; for c509 the re-encoded original, or NULL */
    size_t der_len;  /* 1..STORE_CERT_BLOB_MAX when der is set */
    uint8_t *c509;   /* C509 encoding: required for c509, NULL for x509 */
    size_t c509_len; /* 1..STORE_CERT_BLOB_MAX when c509 is set */
    int64_t created_at; /* unix seconds, set by the store */
} store_cert;

/* Records an issued certificate (status must be issued, revoked_at 0, reason ""). An
 * existing serial is VTPMCA_ERR_CONFLICT. */
vtpmca_err store_cert_put(store *st, const store_cert *cert, vtpmca_diag *diag);
/* VTPMCA_ERR_NOT_FOUND when absent. Free with store_cert_free_fields. */
vtpmca_err store_cert_get(store *st, const char *serial, store_cert *out, vtpmca_diag *diag);
/* The most recently stored certificate of this kind for an instance, whatever its status
 * (e.g. to compare an EK with the one certified before); NOT_FOUND when there is none. */
vtpmca_err store_cert_latest(store *st, const char *instance_id, store_cert_kind kind,
                             store_cert *out, vtpmca_diag *diag);
/* Up to `limit` (1..STORE_LIST_MAX) certificates ordered by serial, of one instance or all
 * (NULL), with serials after `after_serial` (NULL: from the start) for paging. Metadata
 * only: der and c509 are NULL. *out is malloc'd (NULL when *n is 0); free with free(). */
vtpmca_err store_cert_list(store *st, const char *instance_id, const char *after_serial,
                           size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag);
/* Marks a certificate revoked. revoked_at: unix seconds (0 = now); reason: 1..
 * STORE_CERT_REASON_MAX letters (the CA passes an RFC 5280 reason name). NOT_FOUND for an
 * unknown serial, CONFLICT when it is revoked already (the first revocation stays). */
vtpmca_err store_cert_revoke(store *st, const char *serial, int64_t revoked_at, const char *reason,
                             vtpmca_diag *diag);

typedef struct {
    char serial[STORE_CERT_SERIAL_HEX_MAX + 1];
    int64_t revoked_at;
    char reason[STORE_CERT_REASON_MAX + 1];
} store_cert_revocation;

/* Every revoked certificate, ordered by serial (what the CRL lists). *out malloc'd (NULL when
 * *n is 0). */
vtpmca_err store_cert_revocations(store *st, store_cert_revocation **out, size_t *n,
                                  vtpmca_diag *diag);
/* ---- Recording an evidence-bound certification (store_certs_sqlite.c; ca/issuance.c) ----
 * Everything one certification writes, in ONE durable write transaction, all or nothing:
 * the EK continuity check against the instance's latest EK certificate (whatever its status),
 * the EK re-enrollment grant it may use up, the new certificate rows and the audit row. */
typedef enum {
    STORE_EK_NEW = 0,        /* the instance had no EK certificate yet */
    STORE_EK_SAME,           /* its latest EK certificate certifies the same key (key_name) */
    STORE_EK_CHANGE_GRANTED, /* another key, allowed by a re-enrollment grant, now used up */
    STORE_EK_CHANGE_REFUSED, /* another key and no grant: nothing was written */
} store_ek_continuity;

/* Fills the certification's audit row, knowing how the EK continued (never REFUSED). Called
 * inside the transaction, possibly more than once when it is retried, so it must not have
 * side effects; an error aborts the certification. */
typedef vtpmca_err (*store_certification_describe_fn)(store_ek_continuity continuity,
                                                      store_audit_event *event, void *ctx);

typedef struct {
    store_ek_continuity continuity;
    /* The serial of the latest EK certificate before this certification ("" for NEW). */
    char previous_serial[STORE_CERT_SERIAL_HEX_MAX + 1];
} store_certification;

/* Records certs[0..n) (n 1..2: the EK certificate, then optionally an IAK certificate of the
 * same instance; each as store_cert_put requires) unless the instance's latest EK certificate
 * is for another key and no grant allows the change (then out->continuity is
 * STORE_EK_CHANGE_REFUSED, nothing is written and VTPMCA_OK is returned). Returns once the
 * rows and the audit row that describe made are durable. An existing serial is
 * VTPMCA_ERR_CONFLICT (nothing written). */
vtpmca_err store_cert_record_certification(store *st, const store_cert *certs, size_t n,
                                           store_certification_describe_fn describe, void *ctx,
                                           store_certification *out, vtpmca_diag *diag);

/* Takes the next CRL number (1, 2, ...) in its own transaction: numbers strictly increase
 * across processes and restarts, never repeat (a number taken for a CRL that was then not
 * published is simply skipped). */
vtpmca_err store_crl_number_next(store *st, uint64_t *out, vtpmca_diag *diag);
void store_cert_free_fields(store_cert *cert); /* frees and clears der and c509 */

#endif
