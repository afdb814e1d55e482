/* Rollback-protection ledger for the CocoonFs filesystems of SVSM instances (issue 5).
 *
 * For every instance the ledger keeps the latest (update counter, Merkle root, time) that it
 * accepted, the first counter it ever accepted (the "origin"), and whether the instance is
 * locked after a fork or rollback attempt. An advance is acknowledged only once it is durable
 * (sqlite WAL, synchronous=FULL). Many concurrent advances share one transaction and one fsync
 * (group commit): callers queue their request and wait; one writer thread applies everything
 * queued in one transaction and then answers each caller.
 *
 * Counters are 128-bit unsigned big-endian values that wrap modulo 2^128. This header has
 * the counter arithmetic (pure functions) and the engine. Binding answers to a nonce and
 * authenticating them is the protocol layer's job. docs/protocol.md, section "Rollback ledger:
 * semantics", is the full description. */
#ifndef VTPMCA_LEDGER_H
#define VTPMCA_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/store.h"

#define LEDGER_COUNTER_LEN 16     /* bytes of a counter */
#define LEDGER_COUNTER_HEX_LEN 32 /* hex digits of a counter (without the NUL) */
#define LEDGER_ROOT_MAX 64        /* a root is 1..LEDGER_ROOT_MAX opaque bytes */

/* ---- Counter arithmetic (pure; no ledger needed) ----
 * Order: counters of an instance are ordered by their distance from the origin, modulo 2^128.
 * A candidate is "after" the current counter when it is farther from the origin than the
 * current one AND less than 2^127 steps ahead of it. The second rule refuses a counter that
 * lies behind the origin (an image older than the ledger's first record, e.g. after an admin
 * reset), which the distance alone would take for one almost 2^128 steps ahead. A step of
 * exactly 2^127 is as far behind as ahead and is therefore not "after". */

/* out = (to - from) mod 2^128: how many increments lead from `from` to `to`. */
vtpmca_err ledger_counter_distance(const uint8_t from[LEDGER_COUNTER_LEN],
                                   const uint8_t to[LEDGER_COUNTER_LEN],
                                   uint8_t out[LEDGER_COUNTER_LEN]);

/* *out = -1, 0 or 1 as a is before, equal to or after b, by distance from origin. */
vtpmca_err ledger_counter_compare(const uint8_t origin[LEDGER_COUNTER_LEN],
                                  const uint8_t a[LEDGER_COUNTER_LEN],
                                  const uint8_t b[LEDGER_COUNTER_LEN], int *out);

/* The advance rule above: *out tells whether candidate is strictly after current. */
vtpmca_err ledger_counter_is_after(const uint8_t origin[LEDGER_COUNTER_LEN],
                                   const uint8_t current[LEDGER_COUNTER_LEN],
                                   const uint8_t candidate[LEDGER_COUNTER_LEN], bool *out);

/* counter = (counter + 1) mod 2^128 (2^128 - 1 wraps to 0). */
vtpmca_err ledger_counter_increment(uint8_t counter[LEDGER_COUNTER_LEN]);

/* Parses exactly LEDGER_COUNTER_HEX_LEN hex digits (either case; no prefix, no whitespace).
 * VTPMCA_ERR_PARSE names the problem (length, offset of a bad character). */
vtpmca_err ledger_counter_parse_hex(const char *text, uint8_t out[LEDGER_COUNTER_LEN],
                                    vtpmca_diag *diag);

/* Writes LEDGER_COUNTER_HEX_LEN lower-case hex digits and a NUL (out_size >= 33). */
vtpmca_err ledger_counter_format_hex(const uint8_t counter[LEDGER_COUNTER_LEN], char *out,
                                     size_t out_size);

/* ---- The engine ---- */

typedef struct ledger ledger;

typedef enum {
    LEDGER_ACCEPTED = 1,     /* the counter was after the latest: it is now the latest */
    LEDGER_DUPLICATE,        /* the same counter and root as the latest: nothing written */
    LEDGER_REFUSED_FORK,     /* the latest counter with another root */
    LEDGER_REFUSED_ROLLBACK, /* a counter that is not after the latest */
    LEDGER_REFUSED_LOCKED,   /* the instance is locked until an admin clears it */
} ledger_outcome;

/* Stable lower-case name: "accepted", "duplicate", "fork", "rollback", "locked" ("unknown"
 * for anything else, such as the 0 of a zeroed result). */
const char *ledger_outcome_name(ledger_outcome outcome);

/* The latest accepted state of an instance. */
typedef struct {
    uint8_t counter[LEDGER_COUNTER_LEN];
    uint8_t origin[LEDGER_COUNTER_LEN]; /* the first counter accepted (order reference) */
    uint8_t root[LEDGER_ROOT_MAX];
    size_t root_len;
    int64_t time_ms; /* unix milliseconds when the counter was accepted */
} ledger_entry;

/* Everything the ledger keeps about an instance (admin view). */
typedef struct {
    bool has_entry; /* false: no advance accepted yet, or reset by an admin */
    ledger_entry entry;
    bool locked;
    bool require_admin_clear;
    uint64_t fork_refusals; /* persistent per-instance counts */
    uint64_t rollback_refusals;
} ledger_record;

/* What an advance did and what the ledger holds afterwards. */
typedef struct {
    ledger_outcome outcome;
    ledger_entry latest; /* the latest after the call (for a refusal: what the ledger holds) */
    bool locked;         /* the instance is locked after the call */
} ledger_result;

/* A refused advance, handed to the refusal hook. */
typedef struct {
    const char *instance;
    ledger_outcome outcome; /* LEDGER_REFUSED_* */
    const uint8_t *counter; /* presented counter (LEDGER_COUNTER_LEN bytes) */
    const uint8_t *root;    /* presented root */
    size_t root_len;
    const ledger_result *result; /* the ledger's state; result->locked is true when this
                                  * refusal locked the instance or it was locked before */
} ledger_refusal;

/* Called for every refused advance (to audit it), on the thread that called ledger_advance,
 * after any state change of the refusal (counts, lock) is durable and before ledger_advance
 * returns. It must not call back into the ledger. */
typedef void (*ledger_refusal_hook)(void *ctx, const ledger_refusal *refusal);

typedef struct {
    store *store;      /* required; not owned; must outlive the ledger */
    size_t max_batch;  /* requests per transaction; 0 = 4096 */
    size_t max_queue;  /* waiting requests before VTPMCA_ERR_LIMIT; 0 = 65536 */
    size_t max_cached; /* instances kept in memory; 0 = 1048576 (then the cache restarts) */
    ledger_refusal_hook on_refusal; /* optional */
    void *hook_ctx;
} ledger_config;

/* Starts the engine (its writer thread and a dedicated store connection). The ledger must be
 * the only writer of the store's ledger table: each write is conditional on the row version
 * it last read, so another writer makes its batches fail (VTPMCA_ERR_CONFLICT) rather than
 * overwrite, but it answers from its cache. */
vtpmca_err ledger_open(const ledger_config *config, ledger **out, vtpmca_diag *diag);

/* Stops accepting requests, answers every queued one (drains the queue), waits for the
 * callers still inside the ledger to return, and frees it. NULL is a no-op. */
void ledger_close(ledger *l);

/* Advances an instance (id: 1..63 chars of [A-Za-z0-9._:-]) to (counter, root), root_len
 * 1..LEDGER_ROOT_MAX. Returns only once the decision and any write it made are durable.
 *  - no entry yet: accepted; the counter becomes the origin.
 *  - counter after the latest (see the order above): accepted.
 *  - the latest counter and root again: LEDGER_DUPLICATE, VTPMCA_OK (retries are safe).
 *  - the latest counter with another root: LEDGER_REFUSED_FORK; a counter not after the
 *    latest: LEDGER_REFUSED_ROLLBACK. Both are counted (per instance, persistently, and in
 *    the stats), logged, passed to the refusal hook, and lock the instance when it requires
 *    an admin clear.
 *  - a locked instance: LEDGER_REFUSED_LOCKED, whatever the counter.
 * Refusals return VTPMCA_ERR_CONFLICT with *result filled. Other errors (bad arguments, a
 * store failure: then nothing of the request is durable, retry; the queue is full:
 * VTPMCA_ERR_LIMIT; the ledger is closing) leave *result zeroed. */
vtpmca_err ledger_advance(ledger *l, const char *instance,
                          const uint8_t counter[LEDGER_COUNTER_LEN], const uint8_t *root,
                          size_t root_len, ledger_result *result, vtpmca_diag *diag);

/* The latest accepted state (VTPMCA_ERR_NOT_FOUND if none). Ordered with the advances: it
 * reflects every advance acknowledged before the call. */
vtpmca_err ledger_query(ledger *l, const char *instance, ledger_entry *out, vtpmca_diag *diag);

/* Everything about an instance (VTPMCA_ERR_NOT_FOUND if the ledger has never seen it). */
vtpmca_err ledger_inspect(ledger *l, const char *instance, ledger_record *out, vtpmca_diag *diag);

/* Admin: unlocks the instance. With `reset`, also forgets its entry: the next advance is
 * accepted whatever its counter and becomes the new origin (for a re-provisioned filesystem;
 * counters behind the new origin are then refused by the 2^127 rule). The refusal counts and
 * the require-admin-clear setting are kept. VTPMCA_ERR_NOT_FOUND for an unknown instance. */
vtpmca_err ledger_clear(ledger *l, const char *instance, bool reset, vtpmca_diag *diag);

/* Admin: whether a fork or rollback attempt locks the instance (default: no). Works before
 * the first advance too. Turning it off does not unlock a locked instance (ledger_clear does). */
vtpmca_err ledger_set_require_admin_clear(ledger *l, const char *instance, bool require,
                                          vtpmca_diag *diag);

/* Counters since ledger_open, for metrics. */
typedef struct {
    uint64_t accepted;
    uint64_t duplicates;
    uint64_t refused_fork;
    uint64_t refused_rollback;
    uint64_t refused_locked;
    uint64_t errors;           /* requests answered with an error (store failure, ...) */
    uint64_t batches;          /* batches the writer took from the queue */
    uint64_t batched_requests; /* requests in them (advances, queries, admin requests) */
    uint64_t commits;          /* store transactions (batches that wrote something) */
    uint64_t committed_writes; /* instance rows written by them */
    uint64_t commit_failures;
    uint64_t max_batch; /* largest batch so far */
    uint64_t queue_depth;
    uint64_t cached_instances;
} ledger_stats;

vtpmca_err ledger_get_stats(ledger *l, ledger_stats *out);

#endif
