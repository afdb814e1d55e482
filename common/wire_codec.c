#include "vtpmca/wire_codec.h"

#include <stdlib.h>

#include "vtpmca/encoding.h"

json_t *vt_json_b64(const uint8_t *data, size_t len)
{
    char *text = NULL;
    if (vt_b64_encode_alloc(data, len, VT_B64_STD, &text) != VTPMCA_OK)
        return NULL;
    json_t *value = json_string(text);
    free(text);
    return value;
}

cbor_item_t *vt_cbor_uint(uint64_t v)
{
    if (v <= UINT8_MAX)
        return cbor_build_uint8((uint8_t)v);
    if (v <= UINT16_MAX)
        return cbor_build_uint16((uint16_t)v);
    if (v <= UINT32_MAX)
        return cbor_build_uint32((uint32_t)v);
    return cbor_build_uint64(v);
}

bool vt_cbor_map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    cbor_item_t *k = map != NULL && key != NULL ? cbor_build_string(key) : NULL;
    bool ok = k != NULL && value != NULL &&
              cbor_map_add(map, (struct cbor_pair){.key = k, .value = value});
    if (k != NULL)
        cbor_decref(&k);
    if (value != NULL)
        cbor_decref(&value);
    return ok;
}
