/* vtpmca c509 encode|decode|verify: C509 certificates in files (docs/c509.md). encode makes
 * the type 3 re-encoding of an X.509 certificate, decode shows either type and rebuilds the
 * X.509 DER of type 3 byte for byte, verify checks the signature with the issuer's key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_x509.h"
#include "vtpmca/c509.h"
#include "vtpmca/fileio.h"

/* Reads a C509 certificate file (raw CBOR), refusing files above C509_MAX_INPUT. */
static vtpmca_err load_c509(const char *path, uint8_t **cbor, size_t *len, vtpmca_diag *diag)
{
    return vt_file_read(path, C509_MAX_INPUT, cbor, len, diag);
}

static const char *type_text(int type)
{
    return type == C509_TYPE_X509 ? "3 (re-encoded X.509)" : "2 (natively signed)";
}

int cmd_c509_encode(const cli_command *cmd, const cli_opts *opts)
{
    const char *in = opts->value[CLI_OPT_IN], *out = opts->value[CLI_OPT_OUT];
    uint8_t *der = NULL, *cbor = NULL;
    size_t der_len = 0, cbor_len = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = cli_x509_load(in, NULL, &der, &der_len, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = c509_from_x509_der(der, der_len, &cbor, &cbor_len, &diag);
    free(der);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot re-encode %s as C509", in);
    err = vt_file_write_atomic(out, cbor, cbor_len, 0644, &diag);
    free(cbor);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot write %s", out);
    if (opts->json)
        return cli_print_json_result(
            cmd, json_pack("{s:s, s:i, s:I, s:I}", "out", out, "type", C509_TYPE_X509, "c509_bytes",
                           (json_int_t)cbor_len, "x509_bytes", (json_int_t)der_len));
    printf("wrote %s: C509 type %s, %zu bytes (the X.509 DER has %zu)\n", out,
           type_text(C509_TYPE_X509), cbor_len, der_len);
    return CLI_EXIT_OK;
}

static json_t *info_json(const c509_info *info)
{
    char not_before[32], not_after[32];
    cli_format_time((time_t)info->not_before, not_before, sizeof(not_before));
    cli_format_time((time_t)info->not_after, not_after, sizeof(not_after));
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o}", "type", info->type,
                     "serial", info->serial_hex, "signature_alg", info->sig_alg, "issuer",
                     info->issuer, "subject", info->subject, "not_before", not_before, "not_after",
                     not_after, "public_key", info->public_key_alg, "extension_count",
                     (json_int_t)info->ext_count, "extensions", info->extensions, "x509_bytes",
                     info->x509_der != NULL ? json_integer((json_int_t)info->x509_der_len)
                                            : json_null());
}

static void print_info(const c509_info *info)
{
    char not_before[32], not_after[32];
    cli_format_time((time_t)info->not_before, not_before, sizeof(not_before));
    if (info->not_after == C509_NO_EXPIRY)
        snprintf(not_after, sizeof(not_after), "none (99991231235959Z)");
    else
        cli_format_time((time_t)info->not_after, not_after, sizeof(not_after));
    printf("type:        %s\n", type_text(info->type));
    printf("serial:      %s\n", info->serial_hex);
    printf("signature:   %s\n", info->sig_alg);
    printf("issuer:      %s\n", info->issuer);
    printf("subject:     %s\n", info->subject);
    printf("validity:    %s to %s\n", not_before, not_after);
    printf("public key:  %s\n", info->public_key_alg);
    printf("extensions:  %zu\n", info->ext_count);
    if (info->extensions[0] != '\0')
        printf("%s%s", info->extensions,
               info->extensions[strlen(info->extensions) - 1] == '\n' ? "" : "\n");
    if (info->x509_der != NULL)
        printf("X.509 DER:   %zu bytes (rebuilt)\n", info->x509_der_len);
}

int cmd_c509_decode(const cli_command *cmd, const cli_opts *opts)
{
    const char *in = opts->value[CLI_OPT_IN], *der_out = opts->value[CLI_OPT_DER_OUT];
    uint8_t *cbor = NULL;
    size_t cbor_len = 0;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = load_c509(in, &cbor, &cbor_len, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    c509_info info;
    err = c509_decode_info(cbor, cbor_len, &info, &diag);
    free(cbor);
    int rc = CLI_EXIT_OK;
    if (err != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "%s is not a C509 certificate we can read", in);
    } else if (der_out != NULL && info.x509_der == NULL) {
        rc = cli_fail(cmd, VTPMCA_ERR_UNSUPPORTED,
                      "%s is a natively signed (type 2) certificate: it has no X.509 DER form", in);
    } else if (der_out != NULL &&
               (err = vt_file_write_atomic(der_out, info.x509_der, info.x509_der_len, 0644,
                                           &diag)) != VTPMCA_OK) {
        rc = cli_fail_diag(cmd, err, &diag, "cannot write %s", der_out);
    } else if (opts->json) {
        rc = cli_print_json_result(cmd, info_json(&info));
    } else {
        print_info(&info);
        if (der_out != NULL)
            printf("wrote %s\n", der_out);
    }
    c509_info_free(&info);
    return rc;
}

int cmd_c509_verify(const cli_command *cmd, const cli_opts *opts)
{
    const char *in = opts->value[CLI_OPT_IN], *issuer_path = opts->value[CLI_OPT_ISSUER];
    uint8_t *cbor = NULL, *issuer_der = NULL;
    size_t cbor_len = 0, issuer_der_len = 0;
    X509 *issuer = NULL;
    c509_info info;
    memset(&info, 0, sizeof(info));
    vtpmca_diag diag = {{0}};
    vtpmca_err err = load_c509(in, &cbor, &cbor_len, &diag);
    if (err == VTPMCA_OK)
        err = cli_x509_load(issuer_path, &issuer, &issuer_der, &issuer_der_len, &diag);
    free(issuer_der);
    if (err == VTPMCA_OK)
        err = c509_decode_info(cbor, cbor_len, &info, &diag);
    if (err != VTPMCA_OK) {
        free(cbor);
        X509_free(issuer);
        c509_info_free(&info);
        return cli_fail_diag(cmd, err, &diag, NULL);
    }
    char issuer_name[256];
    cli_x509_name(X509_get_subject_name(issuer), issuer_name, sizeof(issuer_name));
    /* The signature, and (as X.509 path validation would) the names. */
    err = c509_verify(cbor, cbor_len, X509_get0_pubkey(issuer), &diag);
    if (err == VTPMCA_OK && strcmp(info.issuer, issuer_name) != 0)
        err = vtpmca_fail(&diag, VTPMCA_ERR_CRYPTO,
                          "the certificate's issuer is '%.80s', not the subject of %.60s",
                          info.issuer, issuer_path);
    int rc = CLI_EXIT_OK;
    if (opts->json)
        rc = cli_print_json_result(cmd, json_pack("{s:b, s:i, s:s, s:s, s:s?}", "verified",
                                                  err == VTPMCA_OK, "type", info.type, "serial",
                                                  info.serial_hex, "issuer", issuer_name, "error",
                                                  err == VTPMCA_OK ? NULL : diag.msg));
    if (err != VTPMCA_OK)
        rc = cli_fail_diag(cmd, err, &diag, "%s does not verify", in);
    else if (!opts->json)
        printf("%s: signature valid (C509 type %s, serial %s), issued by %s\n", in,
               type_text(info.type), info.serial_hex, issuer_name);
    free(cbor);
    X509_free(issuer);
    c509_info_free(&info);
    return rc;
}
