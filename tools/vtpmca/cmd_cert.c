/* vtpmca cert list|show|revoke: the EK/IAK certificates the CA issued (docs/ca.md, "Records
 * of issued certificates"), and their revocation, which the daemon's CRL picks up on its next
 * request. Like cli_admin.h, the commands run on an operations table with two
 * implementations: offline on the database (--db) and remote on the daemon's admin API
 * (--server; include/vtpmca/server_admin_certs.h), and print the same in both modes. */
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_admin.h"
#include "cli_common.h"
#include "cli_remote.h"
#include "cli_x509.h"
#include "vtpmca/c509.h"
#include "vtpmca/crl.h"
#include "vtpmca/ek_profile.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_admin_certs.h"

typedef struct {
    /* store_cert_list: metadata only, paged by serial. */
    vtpmca_err (*list)(void *ctx, const char *instance_id, const char *after_serial, size_t limit,
                       store_cert **out, size_t *n, vtpmca_diag *diag);
    /* store_cert_get, with the certificate's bytes. */
    vtpmca_err (*get)(void *ctx, const char *serial, store_cert *out, vtpmca_diag *diag);
    /* Revokes and records who did it (the audit log); *revoked gets the certificate's
     * metadata after the change. */
    vtpmca_err (*revoke)(void *ctx, const char *serial, crl_reason reason, store_cert *revoked,
                         vtpmca_diag *diag);
} cert_ops;

/* ---- Offline: the store opened from --db. ---- */

static vtpmca_err local_list(void *ctx, const char *instance_id, const char *after_serial,
                             size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag)
{
    return store_cert_list(ctx, instance_id, after_serial, limit, out, n, diag);
}

static vtpmca_err local_get(void *ctx, const char *serial, store_cert *out, vtpmca_diag *diag)
{
    return store_cert_get(ctx, serial, out, diag);
}

static vtpmca_err local_revoke(void *ctx, const char *serial, crl_reason reason,
                               store_cert *revoked, vtpmca_diag *diag)
{
    store *st = ctx;
    vtpmca_err err = crl_revoke(st, serial, reason, 0, diag);
    if (err == VTPMCA_OK)
        err = store_cert_get(st, serial, revoked, diag);
    if (err != VTPMCA_OK)
        return err;
    store_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    cli_admin_author(ev.actor, sizeof(ev.actor));
    snprintf(ev.action, sizeof(ev.action), "cert.revoke");
    snprintf(ev.instance_id, sizeof(ev.instance_id), "%s", revoked->instance_id);
    snprintf(ev.outcome, sizeof(ev.outcome), "ok");
    snprintf(ev.detail, sizeof(ev.detail), "%s certificate %s revoked: %s",
             store_cert_kind_name(revoked->kind), serial, revoked->reason);
    vtpmca_diag audit_diag = {{0}};
    if (store_audit_append(st, &ev, &audit_diag) != VTPMCA_OK)
        fprintf(stderr, "vtpmca: warning: the audit log did not take the revocation: %s\n",
                audit_diag.msg);
    return VTPMCA_OK;
}

static const cert_ops local_ops = {
    .list = local_list,
    .get = local_get,
    .revoke = local_revoke,
};

/* ---- Remote: the daemon's admin API. ---- */

static bool copy_text(const json_t *object, const char *key, char *buf, size_t size)
{
    const char *value = json_string_value(json_object_get(object, key));
    if (value == NULL || strlen(value) >= size)
        return false;
    memcpy(buf, value, strlen(value) + 1);
    return true;
}

static bool read_time(const json_t *object, const char *key, int64_t *out)
{
    time_t t = 0;
    const char *text = json_string_value(json_object_get(object, key));
    if (text == NULL || cli_parse_rfc3339(text, &t) != VTPMCA_OK)
        return false;
    *out = (int64_t)t;
    return true;
}

/* A base64 member into malloc'd bytes; null leaves them NULL. */
static bool read_bytes(const json_t *object, const char *key, uint8_t **out, size_t *len)
{
    const json_t *value = json_object_get(object, key);
    if (json_is_null(value))
        return true;
    return json_is_string(value) &&
           vt_b64_decode_alloc(json_string_value(value), json_string_length(value), VT_B64_STD, out,
                               len) == VTPMCA_OK &&
           *len > 0;
}

/* The inverse of server_admin_cert_json. */
static vtpmca_err cert_from_json(const json_t *object, bool with_bytes, store_cert *out,
                                 vtpmca_diag *diag)
{
    memset(out, 0, sizeof(*out));
    const char *kind = json_string_value(json_object_get(object, "kind"));
    const char *format = json_string_value(json_object_get(object, "format"));
    const char *status = json_string_value(json_object_get(object, "status"));
    bool ok = json_is_object(object) &&
              copy_text(object, "serial", out->serial, sizeof(out->serial)) &&
              copy_text(object, "instance_id", out->instance_id, sizeof(out->instance_id)) &&
              copy_text(object, "key_name", out->key_name, sizeof(out->key_name)) && kind != NULL &&
              store_cert_kind_parse(kind, &out->kind) == VTPMCA_OK && format != NULL &&
              store_cert_format_parse(format, &out->format) == VTPMCA_OK && status != NULL &&
              (strcmp(status, "issued") == 0 || strcmp(status, "revoked") == 0) &&
              read_time(object, "not_before", &out->not_before) &&
              read_time(object, "not_after", &out->not_after) &&
              read_time(object, "created_at", &out->created_at);
    if (ok && strcmp(status, "revoked") == 0) {
        out->status = STORE_CERT_REVOKED;
        ok = read_time(object, "revoked_at", &out->revoked_at) &&
             copy_text(object, "reason", out->reason, sizeof(out->reason));
    }
    if (ok && with_bytes)
        ok = read_bytes(object, "der", &out->der, &out->der_len) &&
             read_bytes(object, "c509", &out->c509, &out->c509_len);
    if (!ok) {
        store_cert_free_fields(out);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL,
                           "the daemon's answer is not a valid certificate record");
    }
    return VTPMCA_OK;
}

static vtpmca_err remote_list(void *ctx, const char *instance_id, const char *after_serial,
                              size_t limit, store_cert **out, size_t *n, vtpmca_diag *diag)
{
    *out = NULL;
    *n = 0;
    char path[256];
    int len = snprintf(path, sizeof(path), SERVER_ADMIN_CERTS_PATH "?limit=%zu", limit);
    /* Both are checked (instance id, hex serial) so they are safe in a query as they are. */
    if (instance_id != NULL)
        len += snprintf(path + len, sizeof(path) - (size_t)len, "&instance=%s", instance_id);
    if (after_serial != NULL)
        snprintf(path + len, sizeof(path) - (size_t)len, "&after=%s", after_serial);
    json_t *answer = NULL;
    vtpmca_err err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err != VTPMCA_OK)
        return err;
    const json_t *certs = json_object_get(answer, "certs");
    size_t count = json_array_size(certs);
    if (!json_is_array(certs) || count > limit)
        err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the daemon's answer has no valid certs");
    store_cert *items = err == VTPMCA_OK && count > 0 ? calloc(count, sizeof(*items)) : NULL;
    if (err == VTPMCA_OK && count > 0 && items == NULL)
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; err == VTPMCA_OK && i < count; i++)
        err = cert_from_json(json_array_get(certs, i), false, &items[i], diag);
    json_decref(answer);
    if (err != VTPMCA_OK) {
        free(items);
        return err;
    }
    *out = items;
    *n = count;
    return VTPMCA_OK;
}

static vtpmca_err remote_get(void *ctx, const char *serial, store_cert *out, vtpmca_diag *diag)
{
    char path[128];
    snprintf(path, sizeof(path), SERVER_ADMIN_CERTS_PATH "/%s", serial);
    json_t *answer = NULL;
    vtpmca_err err = cli_remote_call(ctx, "GET", path, ADMIN_ROLE_AUDITOR, NULL, &answer, diag);
    if (err == VTPMCA_OK)
        err = cert_from_json(answer, true, out, diag);
    json_decref(answer);
    return err;
}

static vtpmca_err remote_revoke(void *ctx, const char *serial, crl_reason reason,
                                store_cert *revoked, vtpmca_diag *diag)
{
    char path[128], body[96];
    snprintf(path, sizeof(path), SERVER_ADMIN_CERTS_PATH "/%s/revoke", serial);
    snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", crl_reason_name(reason));
    json_t *answer = NULL;
    vtpmca_err err = cli_remote_call(ctx, "POST", path, ADMIN_ROLE_ADMIN, body, &answer, diag);
    if (err == VTPMCA_OK)
        err = cert_from_json(answer, false, revoked, diag);
    json_decref(answer);
    return err;
}

static const cert_ops remote_ops = {
    .list = remote_list,
    .get = remote_get,
    .revoke = remote_revoke,
};

/* cli_admin opens and closes the --server or --db backend; these operations run on it. */
typedef struct {
    cli_admin admin;
    const cert_ops *ops;
} cert_backend;

static vtpmca_err backend_open(const cli_opts *opts, cert_backend *out, vtpmca_diag *diag)
{
    vtpmca_err err = cli_admin_open(opts, false, &out->admin, diag);
    if (err == VTPMCA_OK)
        out->ops = cli_admin_is_remote(&out->admin) ? &remote_ops : &local_ops;
    return err;
}

static void backend_close(cert_backend *backend)
{
    cli_admin_close(&backend->admin);
}

/* ---- Output ---- */

/* "4A:0B:..." (as openssl prints serials), "0x4a0b..." or "4a0b..." -> the store's form:
 * lower-case hex of the magnitude without leading zero bytes. */
static vtpmca_err normalize_serial(const char *text, char *out, size_t size)
{
    size_t n = 0;
    if (strncmp(text, "0x", 2) == 0 || strncmp(text, "0X", 2) == 0)
        text += 2;
    for (const char *p = text; *p != '\0'; p++) {
        char c = *p;
        if (c == ':')
            continue;
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n + 1 >= size)
            return VTPMCA_ERR_INVALID_ARG;
        out[n++] = c;
    }
    out[n] = '\0';
    if (n == 0 || n % 2 != 0)
        return VTPMCA_ERR_INVALID_ARG;
    size_t skip = 0;
    while (skip + 2 < n && out[skip] == '0' && out[skip + 1] == '0')
        skip += 2;
    memmove(out, out + skip, n - skip + 1);
    return VTPMCA_OK;
}

static void format_time_or_none(int64_t t, char *buf, size_t size)
{
    if (t == EK_NOT_AFTER_NONE)
        snprintf(buf, size, "none");
    else
        cli_format_time((time_t)t, buf, size);
}

int cmd_cert_list(const cli_command *cmd, const cli_opts *opts)
{
    const char *instance = opts->value[CLI_OPT_INSTANCE];
    vtpmca_diag diag = {{0}};
    if (instance != NULL && store_check_instance_id(instance, &diag) != VTPMCA_OK)
        return cli_usage_error(cmd, "--instance: %s", diag.msg);
    cert_backend backend;
    vtpmca_err err = backend_open(opts, &backend, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    json_t *list = opts->json ? json_array() : NULL;
    if (opts->json && list == NULL)
        err = VTPMCA_ERR_NOMEM;
    else if (!opts->json)
        printf("%-32s %-4s %-6s %-8s %-21s %s\n", "SERIAL", "KIND", "FORMAT", "STATUS", "NOT AFTER",
               "INSTANCE");
    char after[STORE_CERT_SERIAL_HEX_MAX + 1] = "";
    for (bool more = err == VTPMCA_OK; more;) {
        store_cert *page = NULL;
        size_t n = 0;
        err = backend.ops->list(backend.admin.ctx, instance, after[0] ? after : NULL,
                                STORE_LIST_MAX, &page, &n, &diag);
        for (size_t i = 0; err == VTPMCA_OK && i < n; i++) {
            if (list != NULL) {
                if (json_array_append_new(list, server_admin_cert_json(&page[i], false)) != 0)
                    err = VTPMCA_ERR_NOMEM;
                continue;
            }
            char not_after[32];
            format_time_or_none(page[i].not_after, not_after, sizeof(not_after));
            printf("%-32s %-4s %-6s %-8s %-21s %s\n", page[i].serial,
                   store_cert_kind_name(page[i].kind), store_cert_format_name(page[i].format),
                   store_cert_status_name(page[i].status), not_after, page[i].instance_id);
        }
        if (err == VTPMCA_OK && n > 0)
            snprintf(after, sizeof(after), "%s", page[n - 1].serial);
        more = err == VTPMCA_OK && n == STORE_LIST_MAX;
        free(page);
    }
    backend_close(&backend);
    if (err != VTPMCA_OK) {
        json_decref(list);
        return cli_fail_diag(cmd, err, &diag, "cannot list certificates");
    }
    return list != NULL ? cli_print_json_result(cmd, list) : CLI_EXIT_OK;
}

/* What the certificate itself says (X.509 when there is a DER form, else the C509 fields). */
static json_t *cert_content_json(const X509 *x509, const c509_info *c509)
{
    if (x509 != NULL)
        return cli_x509_json(x509);
    char not_before[32], not_after[32];
    cli_format_time((time_t)c509->not_before, not_before, sizeof(not_before));
    cli_format_time((time_t)c509->not_after, not_after, sizeof(not_after));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "subject", c509->subject, "issuer",
                     c509->issuer, "serial", c509->serial_hex, "not_before", not_before,
                     "not_after", not_after, "public_key", c509->public_key_alg, "signature_alg",
                     c509->sig_alg);
}

static json_t *identity_json(const ek_identity_info *id)
{
    char measurement[2 * EK_MEASUREMENT_LEN + 1], chip_id[2 * EK_CHIP_ID_LEN + 1];
    char kbs[2 * EK_KBS_KEY_HASH_LEN + 1];
    vt_hex_encode(id->measurement, sizeof(id->measurement), measurement, sizeof(measurement));
    vt_hex_encode(id->chip_id, sizeof(id->chip_id), chip_id, sizeof(chip_id));
    vt_hex_encode(id->kbs_key_hash, sizeof(id->kbs_key_hash), kbs, sizeof(kbs));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "fleet", id->fleet, "instance_id",
                     id->instance_id, "measurement", measurement, "chip_id", chip_id,
                     "policy_version", (json_int_t)id->policy_version, "kbs_key_sha256", kbs);
}

static void print_cert_text(const store_cert *cert, const X509 *x509, const c509_info *c509,
                            const ek_identity_info *id)
{
    char created[32], not_before[32], not_after[32], revoked_at[32];
    cli_format_time((time_t)cert->created_at, created, sizeof(created));
    cli_format_time((time_t)cert->not_before, not_before, sizeof(not_before));
    format_time_or_none(cert->not_after, not_after, sizeof(not_after));
    printf("serial:      %s\n", cert->serial);
    printf("instance:    %s\n", cert->instance_id);
    printf("kind:        %s\n", store_cert_kind_name(cert->kind));
    printf("format:      %s%s\n", store_cert_format_name(cert->format),
           c509 == NULL                   ? ""
           : c509->type == C509_TYPE_X509 ? " (type 3: re-encoded X.509)"
                                          : " (type 2: natively signed)");
    if (cert->status == STORE_CERT_REVOKED) {
        cli_format_time((time_t)cert->revoked_at, revoked_at, sizeof(revoked_at));
        printf("status:      revoked at %s (%s)\n", revoked_at, cert->reason);
    } else {
        printf("status:      issued\n");
    }
    printf("key name:    %s\n", cert->key_name);
    printf("issued at:   %s\n", created);
    if (x509 != NULL) {
        printf("certificate:\n");
        cli_x509_print(x509, "  ");
    } else {
        printf("certificate (C509):\n");
        printf("  subject:     %s\n  issuer:      %s\n", c509->subject, c509->issuer);
        printf("  validity:    %s to %s\n", not_before, not_after);
        printf("  public key:  %s\n  signature:   %s\n", c509->public_key_alg, c509->sig_alg);
    }
    if (id == NULL)
        return;
    char hex[2 * EK_CHIP_ID_LEN + 1];
    printf("instance identity:\n  fleet:       %s\n  instance:    %s\n", id->fleet,
           id->instance_id);
    vt_hex_encode(id->measurement, sizeof(id->measurement), hex, sizeof(hex));
    printf("  measurement: %s\n", hex);
    vt_hex_encode(id->chip_id, sizeof(id->chip_id), hex, sizeof(hex));
    printf("  chip id:     %s\n", hex);
    printf("  policy:      version %u\n", (unsigned)id->policy_version);
    vt_hex_encode(id->kbs_key_hash, sizeof(id->kbs_key_hash), hex, sizeof(hex));
    printf("  kbs key:     sha256 %s\n", hex);
}

/* --pem on stdout and --der-out: the stored DER, byte for byte. */
static int export_der(const cli_command *cmd, const cli_opts *opts, const store_cert *cert)
{
    const char *der_out = opts->value[CLI_OPT_DER_OUT];
    if (cert->der == NULL)
        return cli_fail(cmd, VTPMCA_ERR_UNSUPPORTED,
                        "certificate %s is a natively signed C509 certificate: it has no X.509 "
                        "DER form",
                        cert->serial);
    if (opts->value[CLI_OPT_PEM] != NULL &&
        PEM_write(stdout, PEM_STRING_X509, "", cert->der, (long)cert->der_len) <= 0)
        return cli_fail(cmd, VTPMCA_ERR_IO, "cannot write the PEM to stdout");
    vtpmca_diag diag = {{0}};
    vtpmca_err err = der_out != NULL
                         ? vt_file_write_atomic(der_out, cert->der, cert->der_len, 0644, &diag)
                         : VTPMCA_OK;
    return err == VTPMCA_OK ? CLI_EXIT_OK
                            : cli_fail_diag(cmd, err, &diag, "cannot write %s", der_out);
}

/* Parses what describes the certificate: the X.509 DER when stored, else the C509 form. */
static vtpmca_err decode_cert(const store_cert *cert, X509 **x509, c509_info *c509, bool *have_c509,
                              ek_identity_info *id, bool *have_id, vtpmca_diag *diag)
{
    *have_c509 = false;
    *have_id = false;
    if (cert->c509 != NULL) {
        vtpmca_err err = c509_decode_info(cert->c509, cert->c509_len, c509, diag);
        if (err != VTPMCA_OK)
            return err;
        *have_c509 = true;
    }
    if (cert->der == NULL)
        return *have_c509 ? VTPMCA_OK
                          : vtpmca_fail(diag, VTPMCA_ERR_STORE, "the record holds no certificate");
    const unsigned char *p = cert->der;
    *x509 = d2i_X509(NULL, &p, (long)cert->der_len);
    if (*x509 == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_STORE, "the stored certificate does not parse");
    vtpmca_diag id_diag = {{0}};
    vtpmca_err err = ek_cert_read_identity(cert->der, cert->der_len, id, &id_diag);
    if (err == VTPMCA_OK)
        *have_id = true;
    else if (err != VTPMCA_ERR_NOT_FOUND) /* still worth showing the rest */
        fprintf(stderr, "vtpmca: warning: certificate %s: unreadable instance identity: %s\n",
                cert->serial, id_diag.msg);
    return VTPMCA_OK;
}

int cmd_cert_show(const cli_command *cmd, const cli_opts *opts)
{
    char serial[STORE_CERT_SERIAL_HEX_MAX + 1];
    if (normalize_serial(opts->args[0], serial, sizeof(serial)) != VTPMCA_OK)
        return cli_usage_error(cmd,
                               "SERIAL '%s' is not a hexadecimal serial number of at most "
                               "20 bytes",
                               opts->args[0]);
    if (opts->value[CLI_OPT_PEM] != NULL && opts->json)
        return cli_usage_error(cmd, "--pem and --json exclude each other");
    vtpmca_diag diag = {{0}};
    cert_backend backend;
    vtpmca_err err = backend_open(opts, &backend, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    store_cert cert;
    memset(&cert, 0, sizeof(cert));
    err = backend.ops->get(backend.admin.ctx, serial, &cert, &diag);
    backend_close(&backend);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "no certificate %s", serial);
    int rc = CLI_EXIT_OK;
    if (opts->value[CLI_OPT_PEM] != NULL || opts->value[CLI_OPT_DER_OUT] != NULL)
        rc = export_der(cmd, opts, &cert);
    if (rc != CLI_EXIT_OK || opts->value[CLI_OPT_PEM] != NULL) {
        store_cert_free_fields(&cert);
        return rc;
    }
    X509 *x509 = NULL;
    c509_info c509;
    memset(&c509, 0, sizeof(c509));
    ek_identity_info id;
    bool have_c509 = false, have_id = false;
    err = decode_cert(&cert, &x509, &c509, &have_c509, &id, &have_id, &diag);
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "certificate %s", serial);
    } else if (opts->json) {
        json_t *out = server_admin_cert_json(&cert, false);
        if (out != NULL &&
            (json_object_set_new(out, "certificate",
                                 cert_content_json(x509, have_c509 ? &c509 : NULL)) != 0 ||
             json_object_set_new(out, "c509_type",
                                 have_c509 ? json_integer(c509.type) : json_null()) != 0 ||
             json_object_set_new(out, "identity", have_id ? identity_json(&id) : json_null()) !=
                 0)) {
            json_decref(out);
            out = NULL;
        }
        rc = cli_print_json_result(cmd, out);
    } else {
        print_cert_text(&cert, x509, have_c509 ? &c509 : NULL, have_id ? &id : NULL);
    }
    X509_free(x509);
    c509_info_free(&c509);
    store_cert_free_fields(&cert);
    return rc;
}

int cmd_cert_revoke(const cli_command *cmd, const cli_opts *opts)
{
    char serial[STORE_CERT_SERIAL_HEX_MAX + 1];
    if (normalize_serial(opts->args[0], serial, sizeof(serial)) != VTPMCA_OK)
        return cli_usage_error(cmd,
                               "SERIAL '%s' is not a hexadecimal serial number of at most "
                               "20 bytes",
                               opts->args[0]);
    crl_reason reason = VT_CRL_REASON_UNSPECIFIED;
    vtpmca_diag diag = {{0}};
    const char *reason_text = opts->value[CLI_OPT_REASON];
    if (reason_text != NULL && crl_reason_parse(reason_text, &reason, &diag) != VTPMCA_OK)
        return cli_usage_error(cmd, "--reason: %s", diag.msg);
    cert_backend backend;
    vtpmca_err err = backend_open(opts, &backend, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    store_cert cert;
    memset(&cert, 0, sizeof(cert));
    err = backend.ops->revoke(backend.admin.ctx, serial, reason, &cert, &diag);
    backend_close(&backend);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot revoke certificate %s", serial);
    int rc = CLI_EXIT_OK;
    if (opts->json) {
        rc = cli_print_json_result(cmd, server_admin_cert_json(&cert, false));
    } else {
        printf("revoked %s certificate %s of instance %s (%s)\n", store_cert_kind_name(cert.kind),
               cert.serial, cert.instance_id, cert.reason);
        printf("vtpmcad's CRL (GET /v1/ca/crl) lists it from its next request\n");
    }
    store_cert_free_fields(&cert);
    return rc;
}
