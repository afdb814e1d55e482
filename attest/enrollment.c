/* Enrollment of instances for persistence-key release (see include/vtpmca/enrollment.h). */
#include "vtpmca/enrollment.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/encoding.h"

#define TAG_BYTES 16 /* 128 random bits per generated resource tag */

vtpmca_err enrollment_key_context(store_key_mode mode, const char *instance_id,
                                  char out[ENROLLMENT_CONTEXT_MAX], vtpmca_diag *diag)
{
    if (out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "enrollment: context: missing buffer");
    out[0] = '\0';
    if (mode != STORE_KEY_GENERATED && mode != STORE_KEY_WRAPPED)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "enrollment: unknown key mode %d",
                           (int)mode);
    vtpmca_err err = store_check_instance_id(instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    snprintf(out, ENROLLMENT_CONTEXT_MAX, "%s:%s",
             mode == STORE_KEY_GENERATED ? "instance" : "instance-wrapped", instance_id);
    return VTPMCA_OK;
}

vtpmca_err enrollment_wrap_key(const keyvault *vault, const char *instance_id, const uint8_t *key,
                               size_t key_len, uint8_t **blob, size_t *blob_len, vtpmca_diag *diag)
{
    char context[ENROLLMENT_CONTEXT_MAX];
    vtpmca_err err = enrollment_key_context(STORE_KEY_WRAPPED, instance_id, context, diag);
    if (err != VTPMCA_OK)
        return err;
    return keyvault_wrap(vault, key, key_len, context, blob, blob_len, diag);
}

static vtpmca_err generate_resource_path(char *out, size_t size, vtpmca_diag *diag)
{
    uint8_t tag[TAG_BYTES];
    char tag_hex[2 * TAG_BYTES + 1];
    if (RAND_bytes(tag, sizeof(tag)) != 1) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "enrollment: random generator failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    vtpmca_err err = vt_hex_encode(tag, sizeof(tag), tag_hex, sizeof(tag_hex));
    if (err == VTPMCA_OK)
        snprintf(out, size, "%s%s", ENROLLMENT_PATH_PREFIX, tag_hex);
    return err;
}

/* A fresh 256-bit persistence key, wrapped at once; the plaintext is wiped. */
static vtpmca_err generate_wrapped_key(const keyvault *vault, const char *instance_id,
                                       uint8_t **blob, size_t *blob_len, vtpmca_diag *diag)
{
    char context[ENROLLMENT_CONTEXT_MAX];
    vtpmca_err err = enrollment_key_context(STORE_KEY_GENERATED, instance_id, context, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t key[ENROLLMENT_KEY_LEN];
    if (RAND_priv_bytes(key, sizeof(key)) != 1) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "enrollment: random generator failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    err = keyvault_wrap(vault, key, sizeof(key), context, blob, blob_len, diag);
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

/* Checks what the store cannot (the key mode, the actor's size) and fills the instance. The
 * store checks the rest (id, fleet, path formats) when the batch is put. */
static vtpmca_err prepare_instance(const keyvault *vault, const enroll_request *req,
                                   store_instance *inst, vtpmca_diag *diag)
{
    if (req->instance_id == NULL || req->fleet == NULL || req->actor == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "enrollment: instance id, fleet and actor are required");
    vtpmca_err err = store_check_instance_id(req->instance_id, diag);
    if (err != VTPMCA_OK)
        return err;
    size_t actor_len = strlen(req->actor);
    if (actor_len == 0 || actor_len >= sizeof(((store_audit_event *)0)->actor))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "enrollment: actor must be 1 to %zu bytes, got %zu",
                           sizeof(((store_audit_event *)0)->actor) - 1, actor_len);
    if (strlen(req->fleet) >= sizeof(inst->fleet))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "enrollment: fleet name longer than %zu characters",
                           sizeof(inst->fleet) - 1);
    snprintf(inst->id, sizeof(inst->id), "%s", req->instance_id);
    snprintf(inst->fleet, sizeof(inst->fleet), "%s", req->fleet);
    if (req->resource_path != NULL) {
        err = store_check_resource_path(req->resource_path, diag);
        if (err != VTPMCA_OK)
            return err;
        snprintf(inst->resource_path, sizeof(inst->resource_path), "%s", req->resource_path);
    } else {
        err = generate_resource_path(inst->resource_path, sizeof(inst->resource_path), diag);
        if (err != VTPMCA_OK)
            return err;
    }
    inst->has_host_data = req->host_data != NULL;
    if (inst->has_host_data)
        memcpy(inst->host_data, req->host_data, sizeof(inst->host_data));
    inst->key_mode = req->mode;
    switch (req->mode) {
    case STORE_KEY_GENERATED:
        return generate_wrapped_key(vault, req->instance_id, &inst->wrapped_key,
                                    &inst->wrapped_key_len, diag);
    case STORE_KEY_WRAPPED:
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                       "enrollment: key mode must be generated or wrapped (got %d)",
                       (int)req->mode);
}

/* The audit row of one enrollment: who, which instance, which fleet and key mode. The
 * resource path is left out: its tag is meant to stay unguessable. */
struct describe_ctx {
    const enroll_request *reqs;
};

static vtpmca_err describe_enrollment(const store_instance *item, size_t index,
                                      store_audit_event *event, void *ctx)
{
    const enroll_request *reqs = ((const struct describe_ctx *)ctx)->reqs;
    snprintf(event->actor, sizeof(event->actor), "%s", reqs[index].actor);
    snprintf(event->action, sizeof(event->action), "enroll");
    snprintf(event->instance_id, sizeof(event->instance_id), "%s", item->id);
    snprintf(event->outcome, sizeof(event->outcome), "enrolled");
    snprintf(event->detail, sizeof(event->detail), "fleet=%s key_mode=%s host_data=%s", item->fleet,
             store_key_mode_name(item->key_mode), item->has_host_data ? "bound" : "any");
    return VTPMCA_OK;
}

vtpmca_err enrollment_enroll_batch(store *st, const keyvault *vault, const enroll_request *reqs,
                                   size_t n, enroll_result *results, size_t *failed_index,
                                   vtpmca_diag *diag)
{
    if (failed_index != NULL)
        *failed_index = n;
    if (st == NULL || vault == NULL || reqs == NULL || results == NULL || n == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "enrollment: missing argument");
    store_instance *items = calloc(n, sizeof(*items));
    if (items == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "enrollment: out of memory for %zu items", n);
    vtpmca_err err = VTPMCA_OK;
    size_t i;
    for (i = 0; i < n; i++) {
        vtpmca_diag item_diag = {{0}};
        err = prepare_instance(vault, &reqs[i], &items[i], &item_diag);
        if (err != VTPMCA_OK) {
            if (failed_index != NULL)
                *failed_index = i;
            if (n > 1)
                vtpmca_fail(diag, err, "enrollment: request %zu: %s", i, item_diag.msg);
            else
                vtpmca_fail(diag, err, "%s", item_diag.msg);
            break;
        }
    }
    if (err == VTPMCA_OK) {
        struct describe_ctx ctx = {reqs};
        err = store_instance_put_batch_audited(st, items, n, describe_enrollment, &ctx,
                                               failed_index, diag);
    }
    if (err == VTPMCA_OK) {
        for (i = 0; i < n; i++)
            memcpy(results[i].resource_path, items[i].resource_path,
                   sizeof(results[i].resource_path));
    }
    store_instance_list_free(items, n);
    return err;
}

vtpmca_err enrollment_enroll(store *st, const keyvault *vault, const enroll_request *req,
                             enroll_result *res, vtpmca_diag *diag)
{
    return enrollment_enroll_batch(st, vault, req, 1, res, NULL, diag);
}
