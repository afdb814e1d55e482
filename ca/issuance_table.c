/* Bounded expiring single-use table (see issuance_table.h): a ring of slots in insertion
 * order plus a chained hash index over the live ones. A taken slot stays in the ring as a
 * hole until the ring's head passes it. */
#include "issuance_table.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define NIL UINT32_MAX

typedef struct {
    uint8_t key[ISSUANCE_TABLE_KEY_LEN];
    uint64_t expires_ms;
    uint32_t next; /* hash chain */
    bool live;
} slot_head;

struct issuance_table {
    pthread_mutex_t lock;
    uint32_t capacity;
    size_t value_size;
    slot_head *slots;
    uint8_t *values; /* capacity * value_size */
    uint32_t *buckets;
    uint32_t bucket_mask;
    uint32_t head;  /* oldest ring position */
    uint32_t count; /* ring positions in use (live entries and holes) */
    size_t live;
};

vtpmca_err issuance_table_new(unsigned capacity, size_t value_size, issuance_table **out)
{
    if (out == NULL || capacity == 0 || capacity > ISSUANCE_TABLE_MAX_CAPACITY || value_size > 4096)
        return VTPMCA_ERR_INVALID_ARG;
    *out = NULL;
    issuance_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return VTPMCA_ERR_NOMEM;
    uint32_t buckets = 1;
    while (buckets < capacity)
        buckets <<= 1;
    t->capacity = capacity;
    t->value_size = value_size;
    t->bucket_mask = buckets - 1;
    t->slots = calloc(capacity, sizeof(*t->slots));
    t->buckets = malloc(buckets * sizeof(*t->buckets));
    t->values = value_size > 0 ? calloc(capacity, value_size) : NULL;
    if (t->slots == NULL || t->buckets == NULL || (value_size > 0 && t->values == NULL) ||
        pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->slots);
        free(t->buckets);
        free(t->values);
        free(t);
        return VTPMCA_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < buckets; i++)
        t->buckets[i] = NIL;
    *out = t;
    return VTPMCA_OK;
}

void issuance_table_free(issuance_table *table)
{
    if (table == NULL)
        return;
    pthread_mutex_destroy(&table->lock);
    if (table->values != NULL)
        OPENSSL_clear_free(table->values, (size_t)table->capacity * table->value_size);
    OPENSSL_clear_free(table->slots, (size_t)table->capacity * sizeof(*table->slots));
    free(table->buckets);
    free(table);
}

static uint32_t bucket_of(const issuance_table *t, const uint8_t *key)
{
    /* Keys are random or hashes: any four bytes make a fine hash. */
    uint32_t h =
        (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 | (uint32_t)key[3] << 24;
    return h & t->bucket_mask;
}

static uint8_t *value_of(issuance_table *t, uint32_t i)
{
    return t->values + (size_t)i * t->value_size;
}

/* The live slot holding key, and the link pointing at it. */
static uint32_t find(issuance_table *t, const uint8_t *key, uint32_t **link_out)
{
    uint32_t *link = &t->buckets[bucket_of(t, key)];
    while (*link != NIL) {
        if (CRYPTO_memcmp(t->slots[*link].key, key, ISSUANCE_TABLE_KEY_LEN) == 0) {
            *link_out = link;
            return *link;
        }
        link = &t->slots[*link].next;
    }
    return NIL;
}

/* Unlinks a live slot and wipes it; it becomes a hole in the ring. */
static void kill(issuance_table *t, uint32_t i, uint32_t *link)
{
    *link = t->slots[i].next;
    OPENSSL_cleanse(&t->slots[i], sizeof(t->slots[i]));
    if (t->value_size > 0)
        OPENSSL_cleanse(value_of(t, i), t->value_size);
    t->live--;
}

static void kill_slot(issuance_table *t, uint32_t i)
{
    uint32_t *link = NULL;
    if (t->slots[i].live && find(t, t->slots[i].key, &link) == i)
        kill(t, i, link);
}

/* Drops the head of the ring (killing it if live). */
static void pop_head(issuance_table *t)
{
    kill_slot(t, t->head);
    t->head = (t->head + 1) % t->capacity;
    t->count--;
}

/* Reclaims holes and expired entries at the head. */
static void purge(issuance_table *t, uint64_t now_ms)
{
    while (t->count > 0) {
        const slot_head *s = &t->slots[t->head];
        if (s->live && now_ms < s->expires_ms)
            break;
        pop_head(t);
    }
}

vtpmca_err issuance_table_put(issuance_table *table, const uint8_t key[ISSUANCE_TABLE_KEY_LEN],
                              const void *value, uint64_t expires_ms, uint64_t now_ms)
{
    if (table == NULL || key == NULL || (value == NULL && table->value_size > 0))
        return VTPMCA_ERR_INVALID_ARG;
    pthread_mutex_lock(&table->lock);
    uint32_t *link = NULL;
    uint32_t old = find(table, key, &link);
    if (old != NIL)
        kill(table, old, link);
    purge(table, now_ms);
    if (table->count == table->capacity)
        pop_head(table);
    uint32_t i = (table->head + table->count) % table->capacity;
    table->count++;
    slot_head *s = &table->slots[i];
    memcpy(s->key, key, ISSUANCE_TABLE_KEY_LEN);
    s->expires_ms = expires_ms;
    s->live = true;
    uint32_t b = bucket_of(table, key);
    s->next = table->buckets[b];
    table->buckets[b] = i;
    if (table->value_size > 0)
        memcpy(value_of(table, i), value, table->value_size);
    table->live++;
    pthread_mutex_unlock(&table->lock);
    return VTPMCA_OK;
}

vtpmca_err issuance_table_take(issuance_table *table, const uint8_t key[ISSUANCE_TABLE_KEY_LEN],
                               void *value_out, uint64_t now_ms, bool *expired)
{
    if (expired != NULL)
        *expired = false;
    if (table == NULL || key == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    pthread_mutex_lock(&table->lock);
    uint32_t *link = NULL;
    uint32_t i = find(table, key, &link);
    vtpmca_err err = VTPMCA_ERR_NOT_FOUND;
    if (i != NIL) {
        if (now_ms >= table->slots[i].expires_ms) {
            if (expired != NULL)
                *expired = true;
        } else {
            if (value_out != NULL && table->value_size > 0)
                memcpy(value_out, value_of(table, i), table->value_size);
            err = VTPMCA_OK;
        }
        kill(table, i, link);
    }
    purge(table, now_ms);
    pthread_mutex_unlock(&table->lock);
    return err;
}

size_t issuance_table_size(issuance_table *table)
{
    if (table == NULL)
        return 0;
    pthread_mutex_lock(&table->lock);
    size_t n = table->live;
    pthread_mutex_unlock(&table->lock);
    return n;
}
