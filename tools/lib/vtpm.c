/* An in-process TPM 2.0 on libtpms (see vtpmca/vtpm.h). libtpms keeps one TPM in global state
 * and calls back into us for its NVRAM without a context pointer, so the open TPM, its
 * in-memory NVRAM and the lock that serialises every libtpms call are process-global here. */
#include "vtpmca/vtpm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_nvfilename.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vtpmca/log.h"

/* A handle's top byte is its type (TPM_HT): 0x01 NV index, 0x80 transient, 0x02/0x03 HMAC
 * and policy sessions. */
#define HANDLE_TYPE_SHIFT 24
#define HT_HMAC_SESSION 0x02u
#define HT_POLICY_SESSION 0x03u
#define MAX_CREDENTIAL 64u /* TPM2B_DIGEST */
/* Room for a command made of handles, sessions and small parameters. */
#define SMALL_COMMAND 64u
#define RC_TEXT 64
#define MAX_ATTEMPTS 5 /* for TPM_RC_RETRY and its kin */

struct vtpm {
    uint8_t cmd[TPM2_MAX_COMMAND_SIZE]; /* libtpms takes a mutable command buffer */
    unsigned char *resp;                /* grown by TPMLIB_Process */
    uint32_t resp_cap;
};

/* ---- Process-global state (guarded by g_lock) ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static vtpm *g_open;

/* The blobs libtpms stores through the NVRAM callbacks, by name. */
typedef struct {
    const char *name;
    unsigned char *data;
    uint32_t len;
} nvram_blob;

static nvram_blob g_nvram[] = {
    {TPM_PERMANENT_ALL_NAME, NULL, 0},
    {TPM_VOLATILESTATE_NAME, NULL, 0},
    {TPM_SAVESTATE_NAME, NULL, 0},
};
#define NVRAM_SLOTS (sizeof(g_nvram) / sizeof(g_nvram[0]))

static nvram_blob *nvram_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < NVRAM_SLOTS; i++) {
        if (strcmp(g_nvram[i].name, name) == 0)
            return &g_nvram[i];
    }
    return NULL;
}

/* The blobs hold the TPM's seeds: wipe them when dropped. */
static void nvram_blob_clear(nvram_blob *blob)
{
    OPENSSL_clear_free(blob->data, blob->len);
    blob->data = NULL;
    blob->len = 0;
}

static void nvram_clear_all(void)
{
    for (size_t i = 0; i < NVRAM_SLOTS; i++)
        nvram_blob_clear(&g_nvram[i]);
}

static TPM_RESULT nvram_init_cb(void)
{
    return TPM_SUCCESS;
}

/* TPM_RETRY tells libtpms the blob does not exist, which makes it manufacture a new TPM. */
static TPM_RESULT nvram_load_cb(unsigned char **data, uint32_t *length, uint32_t tpm_number,
                                const char *name)
{
    nvram_blob *blob = nvram_find(name);
    if (tpm_number != 0 || blob == NULL || blob->data == NULL)
        return TPM_RETRY;
    *data = malloc(blob->len); /* libtpms frees it with free() */
    if (*data == NULL)
        return TPM_FAIL;
    memcpy(*data, blob->data, blob->len);
    *length = blob->len;
    return TPM_SUCCESS;
}

static TPM_RESULT nvram_store_cb(const unsigned char *data, uint32_t length, uint32_t tpm_number,
                                 const char *name)
{
    nvram_blob *blob = nvram_find(name);
    if (tpm_number != 0 || blob == NULL || (data == NULL && length > 0))
        return TPM_FAIL;
    unsigned char *copy = malloc(length > 0 ? length : 1);
    if (copy == NULL)
        return TPM_FAIL;
    if (length > 0)
        memcpy(copy, data, length);
    nvram_blob_clear(blob);
    blob->data = copy;
    blob->len = length;
    return TPM_SUCCESS;
}

static TPM_RESULT nvram_delete_cb(uint32_t tpm_number, const char *name, TPM_BOOL must_exist)
{
    nvram_blob *blob = nvram_find(name);
    if (tpm_number != 0 || blob == NULL || blob->data == NULL)
        return must_exist ? TPM_FAIL : TPM_SUCCESS;
    nvram_blob_clear(blob);
    return TPM_SUCCESS;
}

static struct libtpms_callbacks g_callbacks = {
    .sizeOfStruct = sizeof(struct libtpms_callbacks),
    .tpm_nvram_init = nvram_init_cb,
    .tpm_nvram_loaddata = nvram_load_cb,
    .tpm_nvram_storedata = nvram_store_cb,
    .tpm_nvram_deletename = nvram_delete_cb,
};

/* Takes the lock if tpm is the open TPM. */
static vtpmca_err lock_open(vtpm *tpm, vtpmca_diag *diag)
{
    if (tpm == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm: NULL handle");
    pthread_mutex_lock(&g_lock);
    if (g_open != tpm) {
        pthread_mutex_unlock(&g_lock);
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm: this TPM is not open");
    }
    return VTPMCA_OK;
}

static void unlock(void)
{
    pthread_mutex_unlock(&g_lock);
}

/* ---- Running commands (lock held) ---- */

static vtpmca_err process_locked(vtpm *tpm, const uint8_t *cmd, size_t cmd_len, uint32_t *resp_len,
                                 vtpmca_diag *diag)
{
    if (cmd_len < TPM2_HEADER_SIZE || cmd_len > sizeof(tpm->cmd))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm: command of %zu bytes (must be %u..%u)", cmd_len, TPM2_HEADER_SIZE,
                           TPM2_MAX_COMMAND_SIZE);
    if (cmd != tpm->cmd)
        memcpy(tpm->cmd, cmd, cmd_len);
    *resp_len = 0;
    TPM_RESULT res =
        TPMLIB_Process(&tpm->resp, resp_len, &tpm->resp_cap, tpm->cmd, (uint32_t)cmd_len);
    OPENSSL_cleanse(tpm->cmd, cmd_len); /* commands may carry credentials or NV data */
    if (res != TPM_SUCCESS || tpm->resp == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                           "vtpm: libtpms could not process the command (TPM_RESULT 0x%x)",
                           (unsigned)res);
    return VTPMCA_OK;
}

static vtpmca_err rc_to_err(uint32_t rc)
{
    /* A handle the TPM does not know: format-1 VALUE/HANDLE on handle 1..7, or a
     * TPM_RC_REFERENCE_H0..H6 warning. */
    bool on_handle = tpm2_rc_handle_number(rc) != 0;
    if (on_handle && (tpm2_rc_base(rc) == TPM2_RC_VALUE || tpm2_rc_base(rc) == TPM2_RC_HANDLE))
        return VTPMCA_ERR_NOT_FOUND;
    if (rc >= TPM2_RC_REFERENCE_H0 && rc <= TPM2_RC_REFERENCE_H0 + 6)
        return VTPMCA_ERR_NOT_FOUND;
    switch (tpm2_rc_base(rc)) {
    case TPM2_RC_HANDLE:
    case TPM2_RC_NV_UNINITIALIZED: /* the index was never written */
        return VTPMCA_ERR_NOT_FOUND;
    case TPM2_RC_NV_DEFINED:
        return VTPMCA_ERR_CONFLICT;
    case TPM2_RC_SIZE:
    case TPM2_RC_NV_SIZE:
    case TPM2_RC_NV_SPACE:
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_SESSION_HANDLES:
    case TPM2_RC_OBJECT_HANDLES:
    case TPM2_RC_LOCKOUT: /* dictionary-attack lockout: too many failed authorizations */
        return VTPMCA_ERR_LIMIT;
    case TPM2_RC_INTEGRITY:
    case TPM2_RC_AUTH_FAIL:
    case TPM2_RC_POLICY_FAIL:
    case TPM2_RC_BAD_AUTH:
    case TPM2_RC_POLICY:
        return VTPMCA_ERR_CRYPTO;
    default:
        return VTPMCA_ERR_INTERNAL;
    }
}

/* Finishes the command in w, runs it, and parses the response header into *resp (whose body
 * points into tpm->resp until the next command). A TPM_RC other than success is an error
 * whose diag names `what`; *rc_out (optional) receives the TPM_RC either way. */
static vtpmca_err run_locked(vtpm *tpm, tpm2_writer *w, const char *what, tpm2_response *resp,
                             uint32_t *rc_out, vtpmca_diag *diag)
{
    if (rc_out != NULL)
        *rc_out = TPM2_RC_SUCCESS;
    vtpmca_err err = tpm2_command_end(w);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s: could not build the command (%s)", what,
                           vtpmca_err_name(err));
    /* TPM_RC_RETRY/YIELDED/TESTING mean "not executed, send it again"; libtpms answers RETRY
     * to the first use of a DA-protected object after startup (it records daUsed first). */
    for (unsigned attempt = 0;; attempt++) {
        uint32_t resp_len = 0;
        err = process_locked(tpm, w->buf, w->len, &resp_len, diag);
        if (err != VTPMCA_OK)
            return err;
        vtpmca_diag parse_diag = {{0}};
        if (tpm2_response_parse(tpm->resp, resp_len, resp, &parse_diag) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                               "%s: libtpms sent a malformed response: %s", what, parse_diag.msg);
        bool again =
            resp->rc == TPM2_RC_RETRY || resp->rc == TPM2_RC_YIELDED || resp->rc == TPM2_RC_TESTING;
        if (!again || attempt + 1 >= MAX_ATTEMPTS)
            break;
    }
    if (rc_out != NULL)
        *rc_out = resp->rc;
    if (resp->rc != TPM2_RC_SUCCESS) {
        char text[RC_TEXT];
        tpm2_rc_describe(resp->rc, text, sizeof(text));
        return vtpmca_fail(diag, rc_to_err(resp->rc), "%s failed: TPM_RC %s", what, text);
    }
    return VTPMCA_OK;
}

/* For response fields the TPM must have sent. */
static vtpmca_err malformed(vtpmca_diag *diag, const char *what)
{
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s: unexpected response layout", what);
}

static vtpmca_err dup_bytes(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                            vtpmca_diag *diag)
{
    *out = malloc(len > 0 ? len : 1);
    if (*out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "vtpm: out of memory");
    if (len > 0)
        memcpy(*out, data, len);
    *out_len = len;
    return VTPMCA_OK;
}

static vtpmca_err startup_locked(vtpm *tpm, vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_STARTUP);
    tpm2_put_u16(&w, TPM2_SU_CLEAR);
    return run_locked(tpm, &w, "TPM2_Startup", &resp, NULL, diag);
}

static vtpmca_err flush_locked(vtpm *tpm, uint32_t handle, vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
    tpm2_put_u32(&w, handle);
    return run_locked(tpm, &w, "TPM2_FlushContext", &resp, NULL, diag);
}

/* ---- Lifecycle ---- */

vtpmca_err vtpm_open(const uint8_t *permanent_state, size_t len, vtpm **out, vtpmca_diag *diag)
{
    if (out == NULL || (permanent_state == NULL) != (len == 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm_open: need out, and state and length together");
    *out = NULL;
    if (len > UINT32_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "vtpm_open: a state of %zu bytes is too large",
                           len);
    vtpm *tpm = calloc(1, sizeof(*tpm));
    if (tpm == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "vtpm_open: out of memory");

    pthread_mutex_lock(&g_lock);
    if (g_open != NULL) {
        unlock();
        free(tpm);
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                           "vtpm_open: a vTPM is already open (libtpms runs one TPM per process)");
    }
    nvram_clear_all();
    if (permanent_state != NULL &&
        nvram_store_cb(permanent_state, (uint32_t)len, 0, TPM_PERMANENT_ALL_NAME) != TPM_SUCCESS) {
        unlock();
        free(tpm);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "vtpm_open: out of memory");
    }
    TPM_RESULT res = TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2);
    if (res == TPM_SUCCESS)
        res = TPMLIB_RegisterCallbacks(&g_callbacks);
    if (res == TPM_SUCCESS)
        res = TPMLIB_MainInit();
    if (res != TPM_SUCCESS) {
        TPMLIB_Terminate();
        nvram_clear_all();
        unlock();
        free(tpm);
        if (permanent_state != NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "vtpm_open: libtpms rejected the permanent state (TPM_RESULT 0x%x)",
                               (unsigned)res);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                           "vtpm_open: libtpms failed to start (TPM_RESULT 0x%x)", (unsigned)res);
    }
    g_open = tpm;
    vtpmca_err err = startup_locked(tpm, diag);
    unlock();
    if (err != VTPMCA_OK) {
        vtpm_close(tpm);
        return err;
    }
    vtpmca_log(VTPMCA_LOG_DEBUG, "vtpm.open", "state", permanent_state ? "restored" : "fresh",
               NULL);
    *out = tpm;
    return VTPMCA_OK;
}

void vtpm_close(vtpm *tpm)
{
    if (tpm == NULL)
        return;
    pthread_mutex_lock(&g_lock);
    if (g_open == tpm) {
        TPMLIB_Terminate();
        nvram_clear_all();
        g_open = NULL;
    }
    unlock();
    OPENSSL_clear_free(tpm->resp, tpm->resp_cap);
    OPENSSL_clear_free(tpm, sizeof(*tpm));
}

/* TPMLIB_GetState(PERMANENT) of the running TPM; the blob is malloc'd by libtpms. */
static vtpmca_err get_state_locked(const char *fn, uint8_t **out, size_t *len, vtpmca_diag *diag)
{
    unsigned char *blob = NULL;
    uint32_t blob_len = 0;
    TPM_RESULT res = TPMLIB_GetState(TPMLIB_STATE_PERMANENT, &blob, &blob_len);
    if (res != TPM_SUCCESS || blob == NULL || blob_len == 0) {
        free(blob);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                           "%s: libtpms could not export its state (TPM_RESULT 0x%x)", fn,
                           (unsigned)res);
    }
    *out = blob;
    *len = blob_len;
    return VTPMCA_OK;
}

/* The permanent state, after a TPM2_Shutdown(CLEAR) when shutdown_first. */
static vtpmca_err export_state(vtpm *tpm, bool shutdown_first, const char *fn, uint8_t **out,
                               size_t *len, vtpmca_diag *diag)
{
    if (out == NULL || len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: NULL argument", fn);
    *out = NULL;
    *len = 0;
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    if (shutdown_first) {
        uint8_t buf[SMALL_COMMAND];
        tpm2_writer w;
        tpm2_response resp;
        tpm2_writer_init(&w, buf, sizeof(buf));
        tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_SHUTDOWN);
        tpm2_put_u16(&w, TPM2_SU_CLEAR);
        err = run_locked(tpm, &w, "TPM2_Shutdown", &resp, NULL, diag);
    }
    if (err == VTPMCA_OK)
        err = get_state_locked(fn, out, len, diag);
    unlock();
    return err;
}

vtpmca_err vtpm_save_state(vtpm *tpm, uint8_t **out, size_t *len, vtpmca_diag *diag)
{
    return export_state(tpm, false, "vtpm_save_state", out, len, diag);
}

vtpmca_err vtpm_shutdown_state(vtpm *tpm, uint8_t **out, size_t *len, vtpmca_diag *diag)
{
    return export_state(tpm, true, "vtpm_shutdown_state", out, len, diag);
}

vtpmca_err vtpm_transact(vtpm *tpm, const uint8_t *cmd, size_t cmd_len, uint8_t **resp,
                         size_t *resp_len, vtpmca_diag *diag)
{
    if (cmd == NULL || resp == NULL || resp_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_transact: NULL argument");
    *resp = NULL;
    *resp_len = 0;
    if (cmd_len < TPM2_HEADER_SIZE || cmd_len > TPM2_MAX_COMMAND_SIZE)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm_transact: command of %zu bytes (must be %u..%u)", cmd_len,
                           TPM2_HEADER_SIZE, TPM2_MAX_COMMAND_SIZE);
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    uint32_t len = 0;
    err = process_locked(tpm, cmd, cmd_len, &len, diag);
    if (err == VTPMCA_OK)
        err = dup_bytes(tpm->resp, len, resp, resp_len, diag);
    unlock();
    return err;
}

/* ---- Objects ---- */

static bool is_primary_hierarchy(uint32_t hierarchy)
{
    return hierarchy == TPM2_RH_ENDORSEMENT || hierarchy == TPM2_RH_OWNER ||
           hierarchy == TPM2_RH_PLATFORM || hierarchy == TPM2_RH_NULL;
}

/* TPM2_CreatePrimary with an empty password session and empty sensitive data. On success the
 * returned outPublic is a malloc'd copy. */
static vtpmca_err create_primary_locked(vtpm *tpm, uint32_t hierarchy, const uint8_t *tmpl,
                                        size_t tmpl_len, uint32_t *handle, uint8_t **pub,
                                        size_t *pub_len, vtpmca_diag *diag)
{
    static const char what[] = "TPM2_CreatePrimary";
    uint8_t buf[TPM2_MAX_COMMAND_SIZE];
    tpm2_writer w;
    tpm2_response resp;
    size_t mark = 0;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_CREATE_PRIMARY);
    tpm2_put_u32(&w, hierarchy);
    tpm2_put_password_session(&w, NULL, 0);
    tpm2_tpm2b_begin(&w, &mark); /* inSensitive: TPM2B_SENSITIVE_CREATE */
    tpm2_put_tpm2b(&w, NULL, 0); /* userAuth */
    tpm2_put_tpm2b(&w, NULL, 0); /* data */
    tpm2_tpm2b_end(&w, mark);
    tpm2_put_tpm2b(&w, tmpl, tmpl_len); /* inPublic */
    tpm2_put_tpm2b(&w, NULL, 0);        /* outsideInfo */
    tpm2_put_u32(&w, 0);                /* creationPCR: no PCRs */
    vtpmca_err err = run_locked(tpm, &w, what, &resp, NULL, diag);
    if (err != VTPMCA_OK)
        return err;

    uint32_t new_handle = 0;
    tpm2_reader params;
    const uint8_t *out_public = NULL;
    size_t out_public_len = 0;
    tpm2_public parsed;
    tpm2_get_u32(&resp.body, &new_handle);
    if (tpm2_response_params(&resp, &params) != VTPMCA_OK ||
        tpm2_get_tpm2b(&params, &out_public, &out_public_len) != VTPMCA_OK ||
        tpm2_public_parse(out_public, out_public_len, &parsed, NULL) != VTPMCA_OK)
        err = malformed(diag, what);
    if (err == VTPMCA_OK)
        err = dup_bytes(out_public, out_public_len, pub, pub_len, diag);
    if (err != VTPMCA_OK) {
        if (new_handle != 0)
            flush_locked(tpm, new_handle, NULL);
        return err;
    }
    *handle = new_handle;
    return VTPMCA_OK;
}

vtpmca_err vtpm_create_primary(vtpm *tpm, uint32_t hierarchy, const uint8_t *template_public,
                               size_t template_len, uint32_t *handle, uint8_t **tpmt_public,
                               size_t *tpmt_public_len, vtpmca_diag *diag)
{
    if (handle == NULL || (tpmt_public == NULL) != (tpmt_public_len == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_create_primary: bad outputs");
    *handle = 0;
    if (tpmt_public != NULL) {
        *tpmt_public = NULL;
        *tpmt_public_len = 0;
    }
    if (!is_primary_hierarchy(hierarchy))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm_create_primary: 0x%08x is not a hierarchy", hierarchy);
    tpm2_public parsed;
    vtpmca_err err = tpm2_public_parse(template_public, template_len, &parsed, diag);
    if (err != VTPMCA_OK)
        return err;
    err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t *pub = NULL;
    size_t pub_len = 0;
    err = create_primary_locked(tpm, hierarchy, template_public, template_len, handle, &pub,
                                &pub_len, diag);
    unlock();
    if (err != VTPMCA_OK)
        return err;
    if (tpmt_public != NULL) {
        *tpmt_public = pub;
        *tpmt_public_len = pub_len;
    } else {
        free(pub);
    }
    return VTPMCA_OK;
}

vtpmca_err vtpm_create_ek(vtpm *tpm, vtpm_ek_kind kind, uint32_t *handle, uint8_t **tpmt_public,
                          size_t *tpmt_public_len, EVP_PKEY **pub, vtpmca_diag *diag)
{
    if (handle == NULL || (tpmt_public == NULL) != (tpmt_public_len == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_create_ek: bad outputs");
    *handle = 0;
    if (pub != NULL)
        *pub = NULL;
    tpm2_public tmpl;
    if (vtpm_ek_template(kind, &tmpl) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_create_ek: unknown EK kind %d",
                           (int)kind);
    uint8_t tmpl_bytes[512];
    tpm2_writer w;
    tpm2_writer_init(&w, tmpl_bytes, sizeof(tmpl_bytes));
    if (tpm2_put_public(&w, &tmpl) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "vtpm_create_ek: template too large");

    uint8_t *bytes = NULL;
    size_t bytes_len = 0;
    uint32_t ek = 0;
    vtpmca_err err = vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl_bytes, w.len, &ek, &bytes,
                                         &bytes_len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (pub != NULL)
        err = vtpm_tpmt_public_to_evp(bytes, bytes_len, pub, diag);
    if (err != VTPMCA_OK) {
        vtpm_flush(tpm, ek, NULL);
        free(bytes);
        return err;
    }
    if (tpmt_public != NULL) {
        *tpmt_public = bytes;
        *tpmt_public_len = bytes_len;
    } else {
        free(bytes);
    }
    *handle = ek;
    return VTPMCA_OK;
}

/* TPM2_ReadPublic; out_public points into the response buffer. */
static vtpmca_err read_public_locked(vtpm *tpm, uint32_t handle, const uint8_t **out_public,
                                     size_t *out_public_len, const uint8_t **name, size_t *name_len,
                                     vtpmca_diag *diag)
{
    static const char what[] = "TPM2_ReadPublic";
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_reader params;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_READ_PUBLIC);
    tpm2_put_u32(&w, handle);
    vtpmca_err err = run_locked(tpm, &w, what, &resp, NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    tpm2_response_params(&resp, &params);
    tpm2_get_tpm2b(&params, out_public, out_public_len);
    if (tpm2_get_tpm2b(&params, name, name_len) != VTPMCA_OK || *name_len > TPM2_NAME_MAX)
        return malformed(diag, what);
    return VTPMCA_OK;
}

vtpmca_err vtpm_read_public(vtpm *tpm, uint32_t handle, uint8_t **tpmt_public, size_t *len,
                            uint8_t name_out[TPM2_NAME_MAX], size_t *name_len, vtpmca_diag *diag)
{
    if (tpmt_public == NULL || len == NULL || (name_out == NULL) != (name_len == NULL))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_read_public: bad outputs");
    *tpmt_public = NULL;
    *len = 0;
    if (name_len != NULL)
        *name_len = 0;
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    const uint8_t *pub = NULL, *name = NULL;
    size_t pub_len = 0, tpm_name_len = 0;
    err = read_public_locked(tpm, handle, &pub, &pub_len, &name, &tpm_name_len, diag);
    if (err == VTPMCA_OK)
        err = dup_bytes(pub, pub_len, tpmt_public, len, diag);
    if (err == VTPMCA_OK && name_out != NULL) {
        memcpy(name_out, name, tpm_name_len);
        *name_len = tpm_name_len;
    }
    unlock();
    return err;
}

vtpmca_err vtpm_flush(vtpm *tpm, uint32_t handle, vtpmca_diag *diag)
{
    uint32_t type = handle >> HANDLE_TYPE_SHIFT;
    if (type != TPM2_HT_TRANSIENT && type != HT_HMAC_SESSION && type != HT_POLICY_SESSION)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm_flush: 0x%08x is not a transient object or session", handle);
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    err = flush_locked(tpm, handle, diag);
    unlock();
    return err;
}

/* ---- NV ---- */

/* Names the command and the index in diagnostics, e.g. "TPM2_NV_Write of 0x01c00002". */
#define NV_WHAT_LEN 48
static const char *nv_what(char out[NV_WHAT_LEN], const char *command, uint32_t nv_index)
{
    snprintf(out, NV_WHAT_LEN, "%s of 0x%08x", command, nv_index);
    return out;
}

static vtpmca_err check_nv_index(uint32_t nv_index, const char *fn, vtpmca_diag *diag)
{
    if ((nv_index >> HANDLE_TYPE_SHIFT) != TPM2_HT_NV_INDEX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: 0x%08x is not an NV index", fn,
                           nv_index);
    return VTPMCA_OK;
}

static vtpmca_err nv_read_public_locked(vtpm *tpm, uint32_t nv_index, uint32_t *attributes,
                                        size_t *data_size, vtpmca_diag *diag)
{
    char what[NV_WHAT_LEN];
    nv_what(what, "TPM2_NV_ReadPublic", nv_index);
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_reader params, nv_public;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_NV_READ_PUBLIC);
    tpm2_put_u32(&w, nv_index);
    vtpmca_err err = run_locked(tpm, &w, what, &resp, NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    /* nvPublic: TPM2B_NV_PUBLIC { nvIndex, nameAlg, attributes, authPolicy, dataSize } */
    const uint8_t *body = NULL;
    size_t body_len = 0;
    uint32_t index = 0;
    uint16_t name_alg = 0, size = 0;
    const uint8_t *policy = NULL;
    size_t policy_len = 0;
    tpm2_response_params(&resp, &params);
    tpm2_get_tpm2b(&params, &body, &body_len);
    tpm2_reader_init(&nv_public, body, body_len);
    tpm2_get_u32(&nv_public, &index);
    tpm2_get_u16(&nv_public, &name_alg);
    tpm2_get_u32(&nv_public, attributes);
    tpm2_get_tpm2b(&nv_public, &policy, &policy_len);
    tpm2_get_u16(&nv_public, &size);
    if (params.err != VTPMCA_OK || tpm2_reader_expect_end(&nv_public) != VTPMCA_OK ||
        index != nv_index)
        return malformed(diag, what);
    *data_size = size;
    return VTPMCA_OK;
}

static vtpmca_err nv_undefine_locked(vtpm *tpm, uint32_t nv_index, uint32_t attributes,
                                     vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    uint32_t auth = (attributes & TPMA_NV_PLATFORMCREATE) ? TPM2_RH_PLATFORM : TPM2_RH_OWNER;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_UNDEFINE_SPACE);
    tpm2_put_u32(&w, auth);
    tpm2_put_u32(&w, nv_index);
    tpm2_put_password_session(&w, NULL, 0);
    char what[NV_WHAT_LEN];
    return run_locked(tpm, &w, nv_what(what, "TPM2_NV_UndefineSpace", nv_index), &resp, NULL, diag);
}

static vtpmca_err nv_define_locked(vtpm *tpm, uint32_t nv_index, size_t size, vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    size_t mark = 0;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_DEFINE_SPACE);
    tpm2_put_u32(&w, TPM2_RH_PLATFORM);
    tpm2_put_password_session(&w, NULL, 0);
    tpm2_put_tpm2b(&w, NULL, 0); /* auth: the index's own authValue stays empty */
    tpm2_tpm2b_begin(&w, &mark); /* publicInfo: TPM2B_NV_PUBLIC */
    tpm2_put_u32(&w, nv_index);
    tpm2_put_u16(&w, TPM2_ALG_SHA256);
    tpm2_put_u32(&w, VTPM_NV_CERT_ATTRIBUTES);
    tpm2_put_tpm2b(&w, NULL, 0); /* authPolicy */
    tpm2_put_u16(&w, (uint16_t)size);
    tpm2_tpm2b_end(&w, mark);
    char what[NV_WHAT_LEN];
    return run_locked(tpm, &w, nv_what(what, "TPM2_NV_DefineSpace", nv_index), &resp, NULL, diag);
}

static vtpmca_err nv_write_locked(vtpm *tpm, uint32_t nv_index, const uint8_t *data, size_t len,
                                  vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND + TPM2_MAX_NV_BUFFER];
    char what[NV_WHAT_LEN];
    nv_what(what, "TPM2_NV_Write", nv_index);
    for (size_t offset = 0; offset < len; offset += TPM2_MAX_NV_BUFFER) {
        size_t chunk = len - offset < TPM2_MAX_NV_BUFFER ? len - offset : TPM2_MAX_NV_BUFFER;
        tpm2_writer w;
        tpm2_response resp;
        tpm2_writer_init(&w, buf, sizeof(buf));
        tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_WRITE);
        tpm2_put_u32(&w, TPM2_RH_PLATFORM);
        tpm2_put_u32(&w, nv_index);
        tpm2_put_password_session(&w, NULL, 0);
        tpm2_put_tpm2b(&w, data + offset, chunk);
        tpm2_put_u16(&w, (uint16_t)offset);
        vtpmca_err err = run_locked(tpm, &w, what, &resp, NULL, diag);
        OPENSSL_cleanse(buf, sizeof(buf));
        if (err != VTPMCA_OK)
            return err;
    }
    return VTPMCA_OK;
}

vtpmca_err vtpm_nv_define_write(vtpm *tpm, uint32_t nv_index, const uint8_t *data, size_t len,
                                vtpmca_diag *diag)
{
    static const char fn[] = "vtpm_nv_define_write";
    vtpmca_err err = check_nv_index(nv_index, fn, diag);
    if (err != VTPMCA_OK)
        return err;
    if (data == NULL || len == 0 || len > VTPM_NV_INDEX_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: data must be 1..%u bytes", fn,
                           VTPM_NV_INDEX_MAX);
    err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    uint32_t old_attributes = 0;
    size_t old_size = 0;
    vtpmca_diag probe = {{0}};
    err = nv_read_public_locked(tpm, nv_index, &old_attributes, &old_size, &probe);
    if (err == VTPMCA_OK)
        err = nv_undefine_locked(tpm, nv_index, old_attributes, diag);
    else if (err == VTPMCA_ERR_NOT_FOUND)
        err = VTPMCA_OK;
    else
        vtpmca_fail(diag, err, "%s", probe.msg);
    if (err == VTPMCA_OK)
        err = nv_define_locked(tpm, nv_index, len, diag);
    if (err == VTPMCA_OK) {
        err = nv_write_locked(tpm, nv_index, data, len, diag);
        /* Do not leave a half-written certificate behind. */
        if (err != VTPMCA_OK)
            nv_undefine_locked(tpm, nv_index, VTPM_NV_CERT_ATTRIBUTES, NULL);
    }
    unlock();
    if (err == VTPMCA_OK) {
        char index_text[16], size_text[16];
        snprintf(index_text, sizeof(index_text), "0x%08x", nv_index);
        snprintf(size_text, sizeof(size_text), "%zu", len);
        vtpmca_log(VTPMCA_LOG_DEBUG, "vtpm.nv_write", "index", index_text, "bytes", size_text,
                   NULL);
    }
    return err;
}

/* Checks nv_index, takes the TPM lock and reads the index's public area. On success the
 * lock is held (the caller unlocks); on failure it is not. */
static vtpmca_err nv_begin(vtpm *tpm, uint32_t nv_index, const char *fn, uint32_t *attributes,
                           size_t *size, vtpmca_diag *diag)
{
    vtpmca_err err = check_nv_index(nv_index, fn, diag);
    if (err != VTPMCA_OK)
        return err;
    err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    err = nv_read_public_locked(tpm, nv_index, attributes, size, diag);
    if (err != VTPMCA_OK)
        unlock();
    return err;
}

vtpmca_err vtpm_nv_read_public(vtpm *tpm, uint32_t nv_index, uint32_t *attributes,
                               size_t *data_size, vtpmca_diag *diag)
{
    uint32_t attrs = 0;
    size_t size = 0;
    vtpmca_err err = nv_begin(tpm, nv_index, "vtpm_nv_read_public", &attrs, &size, diag);
    if (err != VTPMCA_OK)
        return err;
    unlock();
    if (attributes != NULL)
        *attributes = attrs;
    if (data_size != NULL)
        *data_size = size;
    return VTPMCA_OK;
}

vtpmca_err vtpm_nv_read(vtpm *tpm, uint32_t nv_index, uint8_t **data, size_t *len,
                        vtpmca_diag *diag)
{
    char what[NV_WHAT_LEN];
    nv_what(what, "TPM2_NV_Read", nv_index);
    if (data == NULL || len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_nv_read: NULL argument");
    *data = NULL;
    *len = 0;
    uint32_t attributes = 0;
    size_t size = 0;
    vtpmca_err err = nv_begin(tpm, nv_index, "vtpm_nv_read", &attributes, &size, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t *out = malloc(size > 0 ? size : 1);
    if (out == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "vtpm_nv_read: out of memory");
    for (size_t offset = 0; err == VTPMCA_OK && offset < size; offset += TPM2_MAX_NV_BUFFER) {
        size_t chunk = size - offset < TPM2_MAX_NV_BUFFER ? size - offset : TPM2_MAX_NV_BUFFER;
        uint8_t buf[SMALL_COMMAND];
        tpm2_writer w;
        tpm2_response resp;
        tpm2_reader params;
        const uint8_t *part = NULL;
        size_t part_len = 0;
        tpm2_writer_init(&w, buf, sizeof(buf));
        tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_READ);
        tpm2_put_u32(&w, TPM2_RH_OWNER);
        tpm2_put_u32(&w, nv_index);
        tpm2_put_password_session(&w, NULL, 0);
        tpm2_put_u16(&w, (uint16_t)chunk);
        tpm2_put_u16(&w, (uint16_t)offset);
        err = run_locked(tpm, &w, what, &resp, NULL, diag);
        if (err != VTPMCA_OK)
            break;
        tpm2_response_params(&resp, &params);
        if (tpm2_get_tpm2b(&params, &part, &part_len) != VTPMCA_OK || part_len != chunk)
            err = malformed(diag, what);
        else
            memcpy(out + offset, part, chunk);
    }
    unlock();
    if (err != VTPMCA_OK) {
        free(out);
        return err;
    }
    *data = out;
    *len = size;
    return VTPMCA_OK;
}

vtpmca_err vtpm_nv_undefine(vtpm *tpm, uint32_t nv_index, vtpmca_diag *diag)
{
    uint32_t attributes = 0;
    size_t size = 0;
    vtpmca_err err = nv_begin(tpm, nv_index, "vtpm_nv_undefine", &attributes, &size, diag);
    if (err != VTPMCA_OK)
        return err;
    err = nv_undefine_locked(tpm, nv_index, attributes, diag);
    unlock();
    return err;
}

/* ---- Credential activation ---- */

/* Which EK policy an authPolicy is; after PolicySecret the session holds PolicyA, and
 * PolicyB needs PolicyOR(PolicyA, PolicyC) on top. */
typedef enum { EK_POLICY_UNKNOWN, EK_POLICY_A, EK_POLICY_B } ek_policy;

static ek_policy classify_ek_policy(const tpm2_public *ek)
{
    const uint8_t *p = ek->auth_policy;
    size_t len = ek->auth_policy_len;
    if (ek->name_alg == TPM2_ALG_SHA256 && len == sizeof(TPM2_EK_POLICY_A_SHA256) &&
        memcmp(p, TPM2_EK_POLICY_A_SHA256, len) == 0)
        return EK_POLICY_A;
    if (ek->name_alg == TPM2_ALG_SHA384 && len == sizeof(TPM2_EK_POLICY_A_SHA384) &&
        memcmp(p, TPM2_EK_POLICY_A_SHA384, len) == 0)
        return EK_POLICY_A;
    if (ek->name_alg == TPM2_ALG_SHA384 && len == sizeof(TPM2_EK_POLICY_B_SHA384) &&
        memcmp(p, TPM2_EK_POLICY_B_SHA384, len) == 0)
        return EK_POLICY_B;
    return EK_POLICY_UNKNOWN;
}

static vtpmca_err start_policy_session_locked(vtpm *tpm, uint16_t hash_alg, uint32_t *session,
                                              vtpmca_diag *diag)
{
    const EVP_MD *md = NULL;
    size_t digest_len = 0;
    if (tpm2_hash_alg_md(hash_alg, &md, &digest_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "EK nameAlg 0x%04x is not a hash",
                           hash_alg);
    uint8_t nonce[TPM2_MAX_DIGEST];
    if (RAND_bytes(nonce, (int)digest_len) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "RAND_bytes failed");
    uint8_t buf[SMALL_COMMAND + TPM2_MAX_DIGEST];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_START_AUTH_SESSION);
    tpm2_put_u32(&w, TPM2_RH_NULL);        /* tpmKey: unsalted */
    tpm2_put_u32(&w, TPM2_RH_NULL);        /* bind: unbound */
    tpm2_put_tpm2b(&w, nonce, digest_len); /* nonceCaller */
    tpm2_put_tpm2b(&w, NULL, 0);           /* encryptedSalt */
    tpm2_put_u8(&w, TPM2_SE_POLICY);       /* sessionType */
    tpm2_put_u16(&w, TPM2_ALG_NULL);       /* symmetric */
    tpm2_put_u16(&w, hash_alg);            /* authHash */
    vtpmca_err err = run_locked(tpm, &w, "TPM2_StartAuthSession", &resp, NULL, diag);
    if (err != VTPMCA_OK)
        return err;
    if (tpm2_get_u32(&resp.body, session) != VTPMCA_OK)
        return malformed(diag, "TPM2_StartAuthSession");
    return VTPMCA_OK;
}

/* PolicySecret(TPM_RH_ENDORSEMENT) with the (empty) endorsement authorization. */
static vtpmca_err policy_secret_endorsement_locked(vtpm *tpm, uint32_t session, vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_POLICY_SECRET);
    tpm2_put_u32(&w, TPM2_RH_ENDORSEMENT); /* authHandle */
    tpm2_put_u32(&w, session);             /* policySession */
    tpm2_put_password_session(&w, NULL, 0);
    tpm2_put_tpm2b(&w, NULL, 0); /* nonceTPM: not bound to this session's nonce */
    tpm2_put_tpm2b(&w, NULL, 0); /* cpHashA */
    tpm2_put_tpm2b(&w, NULL, 0); /* policyRef */
    tpm2_put_u32(&w, 0);         /* expiration: none */
    return run_locked(tpm, &w, "TPM2_PolicySecret", &resp, NULL, diag);
}

/* PolicyOR(PolicyA_SHA384, PolicyC_SHA384): turns PolicyA into PolicyB. */
static vtpmca_err policy_or_b_locked(vtpm *tpm, uint32_t session, vtpmca_diag *diag)
{
    uint8_t buf[SMALL_COMMAND + 2 * TPM2_MAX_DIGEST];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_POLICY_OR);
    tpm2_put_u32(&w, session);
    tpm2_put_u32(&w, 2); /* pHashList: TPML_DIGEST */
    tpm2_put_tpm2b(&w, TPM2_EK_POLICY_A_SHA384, sizeof(TPM2_EK_POLICY_A_SHA384));
    tpm2_put_tpm2b(&w, TPM2_EK_POLICY_C_SHA384, sizeof(TPM2_EK_POLICY_C_SHA384));
    return run_locked(tpm, &w, "TPM2_PolicyOR", &resp, NULL, diag);
}

/* Starts a policy session in the EK's nameAlg that satisfies the EK's authPolicy. */
static vtpmca_err ek_policy_session_locked(vtpm *tpm, const tpm2_public *ek, uint32_t *session,
                                           vtpmca_diag *diag)
{
    ek_policy policy = classify_ek_policy(ek);
    if (policy == EK_POLICY_UNKNOWN)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "the EK's authPolicy is neither PolicyA nor PolicyB_SHA384");
    uint32_t handle = 0;
    vtpmca_err err = start_policy_session_locked(tpm, ek->name_alg, &handle, diag);
    if (err != VTPMCA_OK)
        return err;
    err = policy_secret_endorsement_locked(tpm, handle, diag);
    if (err == VTPMCA_OK && policy == EK_POLICY_B)
        err = policy_or_b_locked(tpm, handle, diag);
    if (err != VTPMCA_OK) {
        flush_locked(tpm, handle, NULL);
        return err;
    }
    *session = handle;
    return VTPMCA_OK;
}

static vtpmca_err activate_locked(vtpm *tpm, uint32_t activate_handle, uint32_t ek_handle,
                                  const uint8_t *blob, size_t blob_len, const uint8_t *secret,
                                  size_t secret_len, uint8_t **cert_info, size_t *cert_info_len,
                                  vtpmca_diag *diag)
{
    static const char what[] = "TPM2_ActivateCredential";
    const uint8_t *ek_public = NULL, *ek_name = NULL;
    size_t ek_public_len = 0, ek_name_len = 0;
    tpm2_public ek;
    vtpmca_err err = read_public_locked(tpm, ek_handle, &ek_public, &ek_public_len, &ek_name,
                                        &ek_name_len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (tpm2_public_parse(ek_public, ek_public_len, &ek, diag) != VTPMCA_OK)
        return malformed(diag, "TPM2_ReadPublic");
    uint32_t session = 0;
    err = ek_policy_session_locked(tpm, &ek, &session, diag);
    if (err != VTPMCA_OK)
        return err;

    uint8_t buf[TPM2_MAX_COMMAND_SIZE];
    tpm2_writer w;
    tpm2_response resp;
    size_t mark = 0;
    uint32_t rc = 0;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_ACTIVATE_CREDENTIAL);
    tpm2_put_u32(&w, activate_handle);
    tpm2_put_u32(&w, ek_handle);
    tpm2_sessions_begin(&w, &mark);
    tpm2_put_auth(&w, TPM2_RS_PW, NULL, 0, 0, NULL, 0); /* activateHandle: admin, authValue */
    tpm2_put_auth(&w, session, NULL, 0, 0, NULL, 0);    /* keyHandle: the EK policy */
    tpm2_sessions_end(&w, mark);
    tpm2_put_tpm2b(&w, blob, blob_len);
    tpm2_put_tpm2b(&w, secret, secret_len);
    err = run_locked(tpm, &w, what, &resp, &rc, diag);
    if (err != VTPMCA_OK) {
        /* A policy session without continueSession is only flushed when the command works. */
        flush_locked(tpm, session, NULL);
        /* A credential that does not decrypt or verify is a crypto failure, not a bug. */
        if ((rc & TPM2_RC_FMT1) && (rc & TPM2_RC_P))
            err = VTPMCA_ERR_CRYPTO;
        return err;
    }
    tpm2_reader params;
    const uint8_t *info = NULL;
    size_t info_len = 0;
    tpm2_response_params(&resp, &params);
    if (tpm2_get_tpm2b(&params, &info, &info_len) != VTPMCA_OK)
        return malformed(diag, what);
    return dup_bytes(info, info_len, cert_info, cert_info_len, diag);
}

vtpmca_err vtpm_activate_credential(vtpm *tpm, uint32_t activate_handle, uint32_t ek_handle,
                                    const uint8_t *credential_blob, size_t credential_blob_len,
                                    const uint8_t *secret, size_t secret_len, uint8_t **cert_info,
                                    size_t *cert_info_len, vtpmca_diag *diag)
{
    static const char fn[] = "vtpm_activate_credential";
    if (cert_info == NULL || cert_info_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: NULL output", fn);
    *cert_info = NULL;
    *cert_info_len = 0;
    if (credential_blob == NULL || credential_blob_len == 0 || secret == NULL || secret_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "%s: empty credential blob or secret", fn);
    /* Both are TPM2Bs in one command buffer. */
    if (credential_blob_len > TPM2_MAX_COMMAND_SIZE / 2 || secret_len > TPM2_MAX_COMMAND_SIZE / 2)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: credential blob or secret too large", fn);
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    err = activate_locked(tpm, activate_handle, ek_handle, credential_blob, credential_blob_len,
                          secret, secret_len, cert_info, cert_info_len, diag);
    unlock();
    return err;
}

vtpmca_err vtpm_make_credential(vtpm *tpm, uint32_t handle, const uint8_t *credential,
                                size_t credential_len, const uint8_t *object_name,
                                size_t object_name_len, uint8_t **credential_blob,
                                size_t *credential_blob_len, uint8_t **secret, size_t *secret_len,
                                vtpmca_diag *diag)
{
    static const char what[] = "TPM2_MakeCredential";
    if (credential_blob == NULL || credential_blob_len == NULL || secret == NULL ||
        secret_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpm_make_credential: NULL output");
    *credential_blob = NULL;
    *secret = NULL;
    *credential_blob_len = *secret_len = 0;
    if (credential == NULL || credential_len == 0 || credential_len > MAX_CREDENTIAL ||
        object_name == NULL || object_name_len == 0 || object_name_len > TPM2_NAME_MAX)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "vtpm_make_credential: credential must be 1..%u bytes and the name "
                           "1..%u bytes",
                           MAX_CREDENTIAL, TPM2_NAME_MAX);
    vtpmca_err err = lock_open(tpm, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t buf[SMALL_COMMAND + MAX_CREDENTIAL + TPM2_NAME_MAX];
    tpm2_writer w;
    tpm2_response resp;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_MAKE_CREDENTIAL);
    tpm2_put_u32(&w, handle);
    tpm2_put_tpm2b(&w, credential, credential_len);
    tpm2_put_tpm2b(&w, object_name, object_name_len);
    err = run_locked(tpm, &w, what, &resp, NULL, diag);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (err == VTPMCA_OK) {
        tpm2_reader params;
        const uint8_t *blob = NULL, *seed = NULL;
        size_t blob_len = 0, seed_len = 0;
        tpm2_response_params(&resp, &params);
        tpm2_get_tpm2b(&params, &blob, &blob_len);
        if (tpm2_get_tpm2b(&params, &seed, &seed_len) != VTPMCA_OK)
            err = malformed(diag, what);
        if (err == VTPMCA_OK)
            err = dup_bytes(blob, blob_len, credential_blob, credential_blob_len, diag);
        if (err == VTPMCA_OK)
            err = dup_bytes(seed, seed_len, secret, secret_len, diag);
        if (err != VTPMCA_OK) {
            free(*credential_blob);
            *credential_blob = NULL;
            *credential_blob_len = 0;
        }
    }
    unlock();
    return err;
}
