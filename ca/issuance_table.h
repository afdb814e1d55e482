/* Private to ca/issuance*.c: a bounded, expiring, single-use table keyed by 32-byte random
 * keys, for the issuance engine's challenges, pending credential activations and activation
 * proofs.
 *  - All slots are allocated up front, so floods cannot grow memory. Entries live in a ring
 *    in insertion order; with one TTL per table that is also expiry order. When the ring is
 *    full, a put drops the oldest entry: an entry lives until it expires, is taken, or
 *    `capacity` newer entries were put.
 *  - take() removes the entry it returns (single use); an expired entry is removed and
 *    reported as such. Values are wiped when removed.
 *  - Thread-safe (one mutex; every operation is a few pointer moves and copies). */
#ifndef VTPMCA_CA_ISSUANCE_TABLE_H
#define VTPMCA_CA_ISSUANCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

#define ISSUANCE_TABLE_KEY_LEN 32
#define ISSUANCE_TABLE_MAX_CAPACITY 1000000u

typedef struct issuance_table issuance_table;

/* capacity 1..ISSUANCE_TABLE_MAX_CAPACITY entries of value_size bytes each (0 allowed). */
vtpmca_err issuance_table_new(unsigned capacity, size_t value_size, issuance_table **out);
void issuance_table_free(issuance_table *table);

/* Adds (or replaces) key with a copy of value (value_size bytes; NULL when 0), valid until
 * expires_ms. now_ms lets expired entries at the head be reclaimed. */
vtpmca_err issuance_table_put(issuance_table *table, const uint8_t key[ISSUANCE_TABLE_KEY_LEN],
                              const void *value, uint64_t expires_ms, uint64_t now_ms);

/* Removes key. VTPMCA_OK with its value copied into value_out (may be NULL), or
 * VTPMCA_ERR_NOT_FOUND when absent; *expired (may be NULL) tells whether it was there but
 * expired (it is removed then too). */
vtpmca_err issuance_table_take(issuance_table *table, const uint8_t key[ISSUANCE_TABLE_KEY_LEN],
                               void *value_out, uint64_t now_ms, bool *expired);

/* Entries held (expired ones count until reclaimed). */
size_t issuance_table_size(issuance_table *table);

#endif
