/* Small JSON and CBOR building blocks shared by the body codecs that speak both encodings
 * (the ledger protocol and the issuance wire format), so both encode values the same way. */
#ifndef VTPMCA_WIRE_CODEC_H
#define VTPMCA_WIRE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cbor.h>
#include <jansson.h>

/* A JSON string holding standard, padded base64 of the bytes; NULL when out of memory. */
json_t *vt_json_b64(const uint8_t *data, size_t len);

/* The shortest unsigned integer head for v, as deterministic CBOR wants; NULL when out of
 * memory. */
cbor_item_t *vt_cbor_uint(uint64_t v);

/* Adds the text key -> value to a definite CBOR map. Takes the caller's reference to value
 * over, also on failure (so a NULL value from a failed builder can be passed straight in);
 * false when value is NULL, memory runs out or the map is full. */
bool vt_cbor_map_put(cbor_item_t *map, const char *key, cbor_item_t *value);

#endif
