/* SEV-SNP verification pipeline: parse the report, find its VCEK/VLEK (supplied, warm
 * cache, store, KDS), verify the chain and the binding, check the signature.
 *
 * The warm cache is the hot path: it holds certificates whose chain was verified, with the
 * chain's validity window, so a hit costs a hash lookup under a shard's read lock plus the
 * binding comparison and the ECDSA verification, both done without any lock held. Entries
 * are reference counted, so eviction never frees a certificate another thread is using. */
#include "vtpmca/snp_verifier.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/encoding.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_vcek.h"

#define VERIFIER_DEFAULT_CACHE 1024
#define VERIFIER_MAX_SHARDS 16
#define VERIFIER_MIN_PER_SHARD 8
#define VERIFIER_MAX_CERT (64 * 1024)

/* What a VCEK/VLEK certifies: the cache and the store are keyed by it. VLEKs are not
 * chip-specific (chip_id all zero); Turin VCEKs name only the first 8 bytes of CHIP_ID. */
typedef struct {
    uint32_t product;
    uint32_t signer;
    uint64_t tcb; /* canonical TCB_VERSION for the product's layout */
    uint8_t chip_id[64];
} vcek_key;

typedef struct {
    vcek_key key;
    uint64_t hash;
    snp_vcek *vcek; /* one reference held by the cache; NULL for a free slot */
    time_t valid_from, valid_until;
    _Atomic unsigned char referenced; /* clock bit, set by readers */
    int32_t next;                     /* next slot in the same bucket, -1 at the end */
} cache_entry;

typedef struct {
    pthread_rwlock_t lock;
    cache_entry *entries;
    unsigned capacity, used, hand;
    int32_t *buckets;
    uint64_t bucket_mask;
} cache_shard;

struct snp_verifier {
    const snp_roots *roots;
    store *store;
    kds_client *kds;
    snp_product default_product;
    uint64_t hash_seed;
    cache_shard *shards;
    unsigned n_shards; /* a power of two */
    _Atomic uint64_t cache_hits, cache_misses, store_hits, kds_fetches;
};

/* A certificate found for a report, with where it came from. `fresh` means its chain was
 * just verified (window set) and it should go into the cache once the binding holds. */
typedef struct {
    snp_vcek *vcek;
    snp_vcek_source source;
    bool fresh;
    time_t valid_from, valid_until;
} found_vcek;

const char *snp_vcek_source_name(snp_vcek_source source)
{
    switch (source) {
    case SNP_VCEK_SUPPLIED:
        return "supplied";
    case SNP_VCEK_CACHE:
        return "cache";
    case SNP_VCEK_STORE:
        return "store";
    case SNP_VCEK_KDS:
        return "kds";
    }
    return "unknown";
}

static uint64_t key_hash(const snp_verifier *verifier, const vcek_key *key)
{
    /* FNV-1a with a per-verifier seed; keys only enter the cache after verification. */
    const uint8_t *bytes = (const uint8_t *)key;
    uint64_t hash = 0xcbf29ce484222325ull ^ verifier->hash_seed;
    for (size_t i = 0; i < sizeof(*key); i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash ^ (hash >> 29);
}

static bool key_from_report(const snp_report *report, snp_product product, snp_signer signer,
                            vcek_key *key)
{
    snp_tcb tcb;
    memset(key, 0, sizeof(*key));
    key->product = (uint32_t)product;
    key->signer = (uint32_t)signer;
    if (snp_tcb_decode(report->reported_tcb, product, &tcb) != VTPMCA_OK ||
        snp_tcb_encode(&tcb, product, &key->tcb) != VTPMCA_OK)
        return false;
    if (signer == SNP_SIGNER_VCEK)
        memcpy(key->chip_id, report->chip_id, product == SNP_PRODUCT_TURIN ? 8 : 64);
    return true;
}

static void key_from_info(const snp_vcek_info *info, vcek_key *key)
{
    memset(key, 0, sizeof(*key));
    key->product = (uint32_t)info->product;
    key->signer = (uint32_t)info->kind;
    key->tcb = info->tcb_raw;
    if (info->kind == SNP_SIGNER_VCEK && info->hwid_len <= sizeof(key->chip_id))
        memcpy(key->chip_id, info->hwid, info->hwid_len);
}

static cache_shard *shard_for(const snp_verifier *verifier, uint64_t hash)
{
    return &verifier->shards[(hash >> 56) & (verifier->n_shards - 1)];
}

/* Returns a new reference to the cached certificate for key, or NULL. */
static snp_vcek *cache_get(snp_verifier *verifier, const vcek_key *key, time_t *valid_from,
                           time_t *valid_until)
{
    uint64_t hash = key_hash(verifier, key);
    cache_shard *shard = shard_for(verifier, hash);
    snp_vcek *vcek = NULL;
    pthread_rwlock_rdlock(&shard->lock);
    for (int32_t i = shard->buckets[hash & shard->bucket_mask]; i >= 0;
         i = shard->entries[i].next) {
        cache_entry *entry = &shard->entries[i];
        if (entry->hash != hash || memcmp(&entry->key, key, sizeof(*key)) != 0)
            continue;
        vcek = entry->vcek;
        snp_vcek_ref(vcek);
        *valid_from = entry->valid_from;
        *valid_until = entry->valid_until;
        /* Avoid dirtying the cache line when the bit is already set. */
        if (!atomic_load_explicit(&entry->referenced, memory_order_relaxed))
            atomic_store_explicit(&entry->referenced, 1, memory_order_relaxed);
        break;
    }
    pthread_rwlock_unlock(&shard->lock);
    return vcek;
}

static void bucket_unlink(cache_shard *shard, int32_t slot)
{
    int32_t *link = &shard->buckets[shard->entries[slot].hash & shard->bucket_mask];
    while (*link != slot)
        link = &shard->entries[*link].next;
    *link = shard->entries[slot].next;
}

/* Adds (or replaces) the entry for key; the cache takes its own reference. */
static void cache_put(snp_verifier *verifier, const vcek_key *key, snp_vcek *vcek,
                      time_t valid_from, time_t valid_until)
{
    uint64_t hash = key_hash(verifier, key);
    cache_shard *shard = shard_for(verifier, hash);
    snp_vcek *dropped = NULL;
    snp_vcek_ref(vcek);
    pthread_rwlock_wrlock(&shard->lock);
    cache_entry *entry = NULL;
    for (int32_t i = shard->buckets[hash & shard->bucket_mask]; i >= 0;
         i = shard->entries[i].next) {
        if (shard->entries[i].hash == hash &&
            memcmp(&shard->entries[i].key, key, sizeof(*key)) == 0) {
            entry = &shard->entries[i];
            dropped = entry->vcek;
            break;
        }
    }
    if (entry == NULL) {
        int32_t slot;
        if (shard->used < shard->capacity) {
            slot = (int32_t)shard->used++;
        } else {
            /* Clock: skip (and clear) recently used entries, evict the first idle one. */
            for (;;) {
                cache_entry *candidate = &shard->entries[shard->hand];
                slot = (int32_t)shard->hand;
                shard->hand = (shard->hand + 1) % shard->capacity;
                if (!atomic_load_explicit(&candidate->referenced, memory_order_relaxed))
                    break;
                atomic_store_explicit(&candidate->referenced, 0, memory_order_relaxed);
            }
            bucket_unlink(shard, slot);
            dropped = shard->entries[slot].vcek;
        }
        entry = &shard->entries[slot];
        entry->key = *key;
        entry->hash = hash;
        entry->next = shard->buckets[hash & shard->bucket_mask];
        shard->buckets[hash & shard->bucket_mask] = slot;
    }
    entry->vcek = vcek;
    entry->valid_from = valid_from;
    entry->valid_until = valid_until;
    atomic_store_explicit(&entry->referenced, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&shard->lock);
    /* Only drops the cache's reference: threads still using it keep theirs. */
    snp_vcek_free(dropped);
}

static void shards_free(cache_shard *shards, unsigned n_shards)
{
    for (unsigned s = 0; shards != NULL && s < n_shards; s++) {
        for (unsigned i = 0; i < shards[s].used; i++)
            snp_vcek_free(shards[s].entries[i].vcek);
        free(shards[s].entries);
        free(shards[s].buckets);
        pthread_rwlock_destroy(&shards[s].lock);
    }
    free(shards);
}

static vtpmca_err shards_new(snp_verifier *verifier, unsigned entries)
{
    unsigned n_shards = 1;
    while (n_shards < VERIFIER_MAX_SHARDS && entries / (n_shards * 2) >= VERIFIER_MIN_PER_SHARD)
        n_shards *= 2;
    verifier->shards = calloc(n_shards, sizeof(*verifier->shards));
    if (verifier->shards == NULL)
        return VTPMCA_ERR_NOMEM;
    verifier->n_shards = n_shards;
    for (unsigned s = 0; s < n_shards; s++) {
        cache_shard *shard = &verifier->shards[s];
        /* Spread the remainder so the total is exactly `entries`. */
        shard->capacity = entries / n_shards + (s < entries % n_shards ? 1 : 0);
        unsigned n_buckets = 1;
        while (n_buckets < shard->capacity)
            n_buckets *= 2;
        shard->bucket_mask = n_buckets - 1;
        shard->entries = calloc(shard->capacity, sizeof(*shard->entries));
        shard->buckets = malloc(n_buckets * sizeof(*shard->buckets));
        if (shard->entries == NULL || shard->buckets == NULL ||
            pthread_rwlock_init(&shard->lock, NULL) != 0) {
            free(shard->entries);
            free(shard->buckets);
            shard->entries = NULL;
            shard->buckets = NULL;
            verifier->n_shards = s; /* only initialised shards are torn down */
            return VTPMCA_ERR_NOMEM;
        }
        for (unsigned b = 0; b < n_buckets; b++)
            shard->buckets[b] = -1;
    }
    return VTPMCA_OK;
}

vtpmca_err snp_verifier_new(const snp_verifier_config *config, snp_verifier **out,
                            vtpmca_diag *diag)
{
    if (config == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "verifier: config and out are required");
    *out = NULL;
    if (config->roots == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "verifier: roots are required");
    if (config->default_product != SNP_PRODUCT_UNKNOWN &&
        config->default_product != SNP_PRODUCT_MILAN &&
        config->default_product != SNP_PRODUCT_GENOA &&
        config->default_product != SNP_PRODUCT_TURIN)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "verifier: unknown default product %d",
                           (int)config->default_product);
    if (config->cache_entries > (1u << 24))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "verifier: cache_entries %u is larger than 16777216",
                           config->cache_entries);

    snp_verifier *verifier = calloc(1, sizeof(*verifier));
    if (verifier == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "verifier: out of memory");
    verifier->roots = config->roots;
    verifier->store = config->store;
    verifier->kds = config->kds;
    verifier->default_product = config->default_product;
    if (RAND_bytes((unsigned char *)&verifier->hash_seed, sizeof(verifier->hash_seed)) != 1) {
        free(verifier);
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "verifier: no randomness for the cache seed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    unsigned entries = config->cache_entries > 0 ? config->cache_entries : VERIFIER_DEFAULT_CACHE;
    if (shards_new(verifier, entries) != VTPMCA_OK) {
        shards_free(verifier->shards, verifier->n_shards);
        free(verifier);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "verifier: out of memory");
    }
    *out = verifier;
    return VTPMCA_OK;
}

void snp_verifier_free(snp_verifier *verifier)
{
    if (verifier == NULL)
        return;
    shards_free(verifier->shards, verifier->n_shards);
    free(verifier);
}

void snp_verifier_get_stats(const snp_verifier *verifier, snp_verifier_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (verifier == NULL)
        return;
    out->cache_hits = atomic_load_explicit(&verifier->cache_hits, memory_order_relaxed);
    out->cache_misses = atomic_load_explicit(&verifier->cache_misses, memory_order_relaxed);
    out->store_hits = atomic_load_explicit(&verifier->store_hits, memory_order_relaxed);
    out->kds_fetches = atomic_load_explicit(&verifier->kds_fetches, memory_order_relaxed);
}

static void count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Products to look under: the report's CPUID names it (v3+); otherwise the configured
 * default, otherwise every product. */
static unsigned candidate_products(snp_product from_cpuid, snp_product fallback, snp_product out[3])
{
    if (from_cpuid != SNP_PRODUCT_UNKNOWN) {
        out[0] = from_cpuid;
        return 1;
    }
    if (fallback != SNP_PRODUCT_UNKNOWN) {
        out[0] = fallback;
        return 1;
    }
    out[0] = SNP_PRODUCT_MILAN;
    out[1] = SNP_PRODUCT_GENOA;
    out[2] = SNP_PRODUCT_TURIN;
    return 3;
}

static const char *signer_store_name(snp_signer signer)
{
    return signer == SNP_SIGNER_VLEK ? "vlek" : "vcek";
}

/* Parses a certificate (supplied, from the store or from KDS) and verifies its chain at `at`. */
static vtpmca_err parse_and_verify_chain(const snp_verifier *verifier, const uint8_t *der,
                                         size_t der_len, time_t at, const char *origin,
                                         found_vcek *found, vtpmca_diag *diag)
{
    vtpmca_err err = snp_vcek_parse(der, der_len, &found->vcek, diag);
    if (err != VTPMCA_OK)
        return err;
    err = snp_vcek_verify_chain(found->vcek, verifier->roots, at, &found->valid_from,
                                &found->valid_until, diag);
    if (err != VTPMCA_OK) {
        /* A bad certificate in our own store or from KDS needs an operator's attention; a
         * bad one supplied with evidence is the submitter's problem. */
        vtpmca_log(found->source == SNP_VCEK_SUPPLIED ? VTPMCA_LOG_INFO : VTPMCA_LOG_WARN,
                   "snp.vcek_rejected", "origin", origin, "error", vtpmca_err_name(err), NULL);
        snp_vcek_free(found->vcek);
        found->vcek = NULL;
        return err;
    }
    found->fresh = true;
    return VTPMCA_OK;
}

/* A supplied certificate byte-identical to a cached one reuses the cached verification. */
static snp_vcek *cached_supplied(snp_verifier *verifier, const snp_report *report,
                                 snp_signer signer, const uint8_t *cert, size_t cert_len, time_t at)
{
    snp_product products[3];
    unsigned n = candidate_products(snp_report_product(report), SNP_PRODUCT_UNKNOWN, products);
    for (unsigned i = 0; i < n; i++) {
        vcek_key key;
        time_t from, until;
        if (!key_from_report(report, products[i], signer, &key))
            continue;
        snp_vcek *vcek = cache_get(verifier, &key, &from, &until);
        if (vcek == NULL)
            continue;
        const uint8_t *der = NULL;
        size_t der_len = 0;
        if (at >= from && at <= until && snp_vcek_get_der(vcek, &der, &der_len) == VTPMCA_OK &&
            der_len == cert_len && memcmp(der, cert, cert_len) == 0)
            return vcek;
        snp_vcek_free(vcek);
    }
    return NULL;
}

static vtpmca_err find_supplied(snp_verifier *verifier, const snp_report *report, snp_signer signer,
                                const uint8_t *cert, size_t cert_len, time_t at, found_vcek *found,
                                vtpmca_diag *diag)
{
    found->source = SNP_VCEK_SUPPLIED;
    found->vcek = cached_supplied(verifier, report, signer, cert, cert_len, at);
    if (found->vcek != NULL) {
        count(&verifier->cache_hits);
        return VTPMCA_OK;
    }
    count(&verifier->cache_misses);
    return parse_and_verify_chain(verifier, cert, cert_len, at, "supplied", found, diag);
}

static vtpmca_err find_in_cache(snp_verifier *verifier, const vcek_key *keys, unsigned n_keys,
                                time_t at, found_vcek *found, vtpmca_diag *diag)
{
    for (unsigned i = 0; i < n_keys; i++) {
        time_t from, until;
        snp_vcek *vcek = cache_get(verifier, &keys[i], &from, &until);
        if (vcek == NULL)
            continue;
        found->vcek = vcek;
        found->source = SNP_VCEK_CACHE;
        if (at >= from && at <= until) {
            count(&verifier->cache_hits);
            return VTPMCA_OK;
        }
        /* Outside the verified window: verify again, which names the expired certificate. */
        count(&verifier->cache_misses);
        vtpmca_err err = snp_vcek_verify_chain(vcek, verifier->roots, at, &found->valid_from,
                                               &found->valid_until, diag);
        if (err != VTPMCA_OK) {
            snp_vcek_free(vcek);
            found->vcek = NULL;
            return err;
        }
        found->fresh = true;
        return VTPMCA_OK;
    }
    count(&verifier->cache_misses);
    return VTPMCA_ERR_NOT_FOUND;
}

static vtpmca_err find_in_store(snp_verifier *verifier, const vcek_key *keys, unsigned n_keys,
                                time_t at, found_vcek *found, vtpmca_diag *diag)
{
    if (verifier->store == NULL)
        return VTPMCA_ERR_NOT_FOUND;
    for (unsigned i = 0; i < n_keys; i++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        vtpmca_err err =
            store_vcek_get(verifier->store, snp_product_name((snp_product)keys[i].product),
                           signer_store_name((snp_signer)keys[i].signer), keys[i].chip_id,
                           keys[i].tcb, &der, &der_len, diag);
        if (err == VTPMCA_ERR_NOT_FOUND)
            continue;
        if (err != VTPMCA_OK)
            return err;
        count(&verifier->store_hits);
        found->source = SNP_VCEK_STORE;
        err = parse_and_verify_chain(verifier, der, der_len, at, "store", found, diag);
        free(der);
        return err;
    }
    return VTPMCA_ERR_NOT_FOUND;
}

static vtpmca_err find_in_kds(snp_verifier *verifier, const vcek_key *keys, unsigned n_keys,
                              time_t at, found_vcek *found, vtpmca_diag *diag)
{
    /* KDS serves VCEKs only: VLEKs are issued to the cloud provider. */
    if (verifier->kds == NULL || keys[0].signer != SNP_SIGNER_VCEK)
        return VTPMCA_ERR_NOT_FOUND;
    for (unsigned i = 0; i < n_keys; i++) {
        snp_product product = (snp_product)keys[i].product;
        snp_tcb tcb;
        if (snp_tcb_decode(keys[i].tcb, product, &tcb) != VTPMCA_OK)
            continue;
        uint8_t *der = NULL;
        size_t der_len = 0;
        vtpmca_err err =
            kds_fetch_vcek(verifier->kds, product, keys[i].chip_id, &tcb, &der, &der_len, diag);
        if (err == VTPMCA_ERR_NOT_FOUND)
            continue;
        if (err != VTPMCA_OK)
            return err;
        count(&verifier->kds_fetches);
        found->source = SNP_VCEK_KDS;
        err = parse_and_verify_chain(verifier, der, der_len, at, "kds", found, diag);
        free(der);
        return err;
    }
    return VTPMCA_ERR_NOT_FOUND;
}

static vtpmca_err find_vcek(snp_verifier *verifier, const snp_report *report, snp_signer signer,
                            time_t at, found_vcek *found, vtpmca_diag *diag)
{
    snp_product products[3];
    vcek_key keys[3];
    unsigned n_products =
        candidate_products(snp_report_product(report), verifier->default_product, products);
    unsigned n_keys = 0;
    for (unsigned i = 0; i < n_products; i++)
        if (key_from_report(report, products[i], signer, &keys[n_keys]))
            n_keys++;
    if (n_keys == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "verifier: cannot decode reported_tcb");

    vtpmca_err err = find_in_cache(verifier, keys, n_keys, at, found, diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        err = find_in_store(verifier, keys, n_keys, at, found, diag);
    if (err == VTPMCA_ERR_NOT_FOUND)
        err = find_in_kds(verifier, keys, n_keys, at, found, diag);
    if (err != VTPMCA_ERR_NOT_FOUND)
        return err;

    char chip[17];
    vt_hex_encode(report->chip_id, 8, chip, sizeof(chip));
    if (signer == SNP_SIGNER_VLEK)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                           "no VLEK for reported_tcb 0x%016llx in the cache or store (VLEKs are "
                           "not served by KDS: supply or import it)",
                           (unsigned long long)report->reported_tcb);
    return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND,
                       "no VCEK for chip %s... at reported_tcb 0x%016llx (searched cache%s%s)",
                       chip, (unsigned long long)report->reported_tcb,
                       verifier->store != NULL ? ", store" : "",
                       verifier->kds != NULL ? ", KDS" : "");
}

/* Keeps a VCEK fetched from KDS so later verifications (and restarts) need no network. */
static void save_kds_answer(snp_verifier *verifier, const snp_vcek *vcek, const vcek_key *key)
{
    const uint8_t *der = NULL;
    size_t der_len = 0;
    vtpmca_diag diag = {{0}};
    if (verifier->store == NULL || snp_vcek_get_der(vcek, &der, &der_len) != VTPMCA_OK)
        return;
    const char *product = snp_product_name((snp_product)key->product);
    vtpmca_err err = store_vcek_put(verifier->store, product, "vcek", key->chip_id, key->tcb, der,
                                    der_len, "kds", &diag);
    if (err != VTPMCA_OK)
        vtpmca_log(VTPMCA_LOG_WARN, "snp.vcek_save_failed", "product", product, "error",
                   vtpmca_err_name(err), "detail", diag.msg, NULL);
    else
        vtpmca_log(VTPMCA_LOG_INFO, "snp.vcek_saved", "product", product, "source", "kds", NULL);
}

static void fill_evidence(snp_evidence *out, const snp_vcek_info *info, snp_vcek_source source)
{
    out->product = info->product;
    out->signer = info->kind;
    out->vcek_source = source;
    snp_tcb_decode(out->report.reported_tcb, info->product, &out->reported_tcb);
    snp_tcb_decode(out->report.current_tcb, info->product, &out->current_tcb);
    snp_tcb_decode(out->report.committed_tcb, info->product, &out->committed_tcb);
    snp_tcb_decode(out->report.launch_tcb, info->product, &out->launch_tcb);
    snprintf(out->vcek_product_name, sizeof(out->vcek_product_name), "%s", info->product_name);
}

vtpmca_err snp_verifier_verify(snp_verifier *verifier, const uint8_t *report, size_t report_len,
                               const uint8_t *cert, size_t cert_len, time_t at, snp_evidence *out,
                               vtpmca_diag *diag)
{
    if (verifier == NULL || report == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "verifier: verifier, report and out are required");
    if ((cert == NULL) != (cert_len == 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "verifier: certificate pointer and length disagree");
    if (cert_len > VERIFIER_MAX_CERT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "verifier: certificate larger than %d bytes",
                           VERIFIER_MAX_CERT);
    memset(out, 0, sizeof(*out));
    vtpmca_err err = snp_report_parse(report, report_len, &out->report, diag);
    if (err != VTPMCA_OK)
        return err;
    snp_signer signer = snp_report_signer(&out->report);
    out->signer = signer;
    out->product = snp_report_product(&out->report);
    if (at == 0)
        at = time(NULL);

    found_vcek found = {0};
    if (cert != NULL)
        err = find_supplied(verifier, &out->report, signer, cert, cert_len, at, &found, diag);
    else
        err = find_vcek(verifier, &out->report, signer, at, &found, diag);
    if (err != VTPMCA_OK)
        return err;

    err = snp_vcek_check_report(found.vcek, &out->report, diag);
    if (err == VTPMCA_OK && found.fresh) {
        /* Chain and binding hold: the certificate is worth keeping for this key. */
        vcek_key key;
        key_from_info(snp_vcek_get_info(found.vcek), &key);
        cache_put(verifier, &key, found.vcek, found.valid_from, found.valid_until);
        if (found.source == SNP_VCEK_KDS)
            save_kds_answer(verifier, found.vcek, &key);
    }
    if (err == VTPMCA_OK)
        err = snp_report_verify_signature(&out->report, found.vcek, diag);
    if (err == VTPMCA_OK)
        fill_evidence(out, snp_vcek_get_info(found.vcek), found.source);
    snp_vcek_free(found.vcek);
    return err;
}
