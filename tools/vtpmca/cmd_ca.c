/* vtpmca ca init|import|show|export-keylime and crl show: the certificate authority's
 * directory (docs/ca.md) and the CRL its issuing CA signs. These work on files, offline:
 * vtpmcad loads the CA once at start, from the same directory. */
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_x509.h"
#include "vtpmca/ca_keys.h"
#include "vtpmca/crl.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_config.h"

/* What --subject's CN=NAME becomes; the default NAME gives ca_init_options' default names. */
#define ROOT_CN_SUFFIX " Root CA"
#define ISSUING_CN_SUFFIX " Issuing CA"
#define DEFAULT_CN_BASE "vtpmca EK"
#define CA_FILE_PATH_MAX (SERVER_CONFIG_PATH_MAX + 32)

/* --ca-dir DIR, else the ca_dir vtpmcad derives from --state-dir (or from its default state
 * directory): the daemon's own rule, so that the CLI and the daemon agree on the place. */
static vtpmca_err resolve_ca_dir(const cli_opts *opts, char *out, size_t size, vtpmca_diag *diag)
{
    const char *ca_dir = opts->value[CLI_OPT_CA_DIR];
    const char *state_dir = opts->value[CLI_OPT_STATE_DIR];
    if (ca_dir != NULL && state_dir != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "--ca-dir and --state-dir exclude each other");
    if (ca_dir != NULL) {
        if (ca_dir[0] == '\0' || strlen(ca_dir) >= size)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--ca-dir is empty or too long");
        snprintf(out, size, "%s", ca_dir);
        return VTPMCA_OK;
    }
    server_config *cfg = malloc(sizeof(*cfg));
    if (cfg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = server_config_defaults(cfg);
    if (err == VTPMCA_OK && state_dir != NULL)
        err = server_config_set(cfg, "state_dir", state_dir, diag);
    if (err == VTPMCA_OK)
        err = server_config_finalize(cfg, diag);
    if (err == VTPMCA_OK && strlen(cfg->ca_dir) >= size)
        err = vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--state-dir is too long");
    if (err == VTPMCA_OK)
        snprintf(out, size, "%s", cfg->ca_dir);
    free(cfg);
    return err;
}

/* Opens the CA of the command's options; the diag names the directory. */
static vtpmca_err open_ca(const cli_opts *opts, char *dir, size_t dir_size, ca_ctx **ca,
                          vtpmca_diag *diag)
{
    vtpmca_err err = resolve_ca_dir(opts, dir, dir_size, diag);
    if (err != VTPMCA_OK)
        return err;
    vtpmca_diag inner = {{0}};
    err = ca_open(dir, ca, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "no usable CA in %.100s: %.140s", dir, inner.msg);
    return VTPMCA_OK;
}

static bool root_key_present(const char *dir)
{
    char path[CA_FILE_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, CA_ROOT_KEY_FILE);
    return access(path, F_OK) == 0;
}

/* Prints the CA in dir (ca show, and after init/import). `done` is the text headline, e.g.
 * "created the CA in". */
static int print_ca(const cli_command *cmd, const cli_opts *opts, const char *dir, const char *done)
{
    ca_ctx *ca = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = ca_open(dir, &ca, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot open the CA in %s", dir);
    const X509 *root = ca_cert(ca, CA_CERT_ROOT);
    const X509 *issuing = ca_cert(ca, CA_CERT_ISSUING);
    bool root_key = root_key_present(dir);
    int rc = CLI_EXIT_OK;
    if (opts->json) {
        rc = cli_print_json_result(
            cmd, json_pack("{s:s, s:o, s:o, s:b}", "dir", dir, "root", cli_x509_json(root),
                           "issuing", cli_x509_json(issuing), "root_key_present", root_key));
    } else {
        printf("%s %s\n", done, dir);
        printf("root CA:\n");
        cli_x509_print(root, "  ");
        printf("issuing CA:\n");
        cli_x509_print(issuing, "  ");
        if (root_key)
            printf("note: %s/%s is the root key: keep it offline (vtpmcad never reads it)\n", dir,
                   CA_ROOT_KEY_FILE);
    }
    ca_free(ca);
    return rc;
}

/* --subject "O=ORG,CN=NAME" (either part optional; no commas inside values). */
typedef struct {
    char organization[CA_NAME_MAX + 1];
    char root_cn[CA_NAME_MAX + 1];
    char issuing_cn[CA_NAME_MAX + 1];
} ca_names;

static vtpmca_err parse_subject(const char *text, ca_names *out, vtpmca_diag *diag)
{
    ca_init_options defaults;
    ca_init_options_default(&defaults);
    snprintf(out->organization, sizeof(out->organization), "%s", defaults.organization);
    const char *cn = DEFAULT_CN_BASE;
    /* Room for the longer suffix: both CNs then fit CA_NAME_MAX. */
    char cn_buf[CA_NAME_MAX + 1 - (sizeof(ISSUING_CN_SUFFIX) - 1)];
    bool seen_o = false, seen_cn = false;
    if (text[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--subject is empty");
    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "--subject: expected O=... or CN=..., found '%.*s'",
                               (int)(len > 40 ? 40 : len), p);
        const char *key = p;
        size_t key_len = (size_t)(eq - p), value_len = len - key_len - 1;
        while (key_len > 0 && key[0] == ' ') /* "O=Acme, CN=..." */
            key++, key_len--;
        bool is_o = key_len == 1 && strncasecmp(key, "O", 1) == 0;
        bool is_cn = key_len == 2 && strncasecmp(key, "CN", 2) == 0;
        if ((!is_o && !is_cn) || (is_o && seen_o) || (is_cn && seen_cn))
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "--subject: each of O and CN at most once, and nothing else");
        size_t max = is_o ? CA_NAME_MAX : sizeof(cn_buf) - 1;
        if (value_len == 0 || value_len > max)
            return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                               "--subject: %s must be 1 to %zu characters", is_o ? "O" : "CN", max);
        if (is_o) {
            snprintf(out->organization, sizeof(out->organization), "%.*s", (int)value_len, eq + 1);
            seen_o = true;
        } else {
            snprintf(cn_buf, sizeof(cn_buf), "%.*s", (int)value_len, eq + 1);
            cn = cn_buf;
            seen_cn = true;
        }
        p += len + (p[len] == ',' ? 1 : 0);
    }
    snprintf(out->root_cn, sizeof(out->root_cn), "%s" ROOT_CN_SUFFIX, cn);
    snprintf(out->issuing_cn, sizeof(out->issuing_cn), "%s" ISSUING_CN_SUFFIX, cn);
    return VTPMCA_OK;
}

int cmd_ca_init(const cli_command *cmd, const cli_opts *opts)
{
    ca_init_options init;
    ca_init_options_default(&init);
    vtpmca_diag diag = {{0}};
    const char *root_alg = opts->value[CLI_OPT_ROOT_ALG];
    const char *issuing_alg = opts->value[CLI_OPT_ISSUING_ALG];
    if (root_alg != NULL && ca_key_alg_parse(root_alg, &init.root_alg, &diag) != VTPMCA_OK)
        return cli_usage_error(cmd, "--root-alg: %s", diag.msg);
    if (issuing_alg != NULL && ca_key_alg_parse(issuing_alg, &init.issuing_alg, &diag) != VTPMCA_OK)
        return cli_usage_error(cmd, "--issuing-alg: %s", diag.msg);
    ca_names names;
    if (opts->value[CLI_OPT_SUBJECT] != NULL) {
        if (parse_subject(opts->value[CLI_OPT_SUBJECT], &names, &diag) != VTPMCA_OK)
            return cli_usage_error(cmd, "%s", diag.msg);
        init.organization = names.organization;
        init.root_cn = names.root_cn;
        init.issuing_cn = names.issuing_cn;
    }
    char dir[SERVER_CONFIG_PATH_MAX];
    vtpmca_err err = resolve_ca_dir(opts, dir, sizeof(dir), &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = ca_init(dir, &init, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot create a CA in %s", dir);
    return print_ca(cmd, opts, dir, "created the CA in");
}

int cmd_ca_import(const cli_command *cmd, const cli_opts *opts)
{
    char dir[SERVER_CONFIG_PATH_MAX];
    vtpmca_diag diag = {{0}};
    vtpmca_err err = resolve_ca_dir(opts, dir, sizeof(dir), &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = ca_import(dir, opts->value[CLI_OPT_ROOT_CERT], opts->value[CLI_OPT_ROOT_KEY],
                    opts->value[CLI_OPT_ISSUING_CERT], opts->value[CLI_OPT_ISSUING_KEY], &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot import the CA into %s", dir);
    return print_ca(cmd, opts, dir, "imported the CA into");
}

int cmd_ca_show(const cli_command *cmd, const cli_opts *opts)
{
    char dir[SERVER_CONFIG_PATH_MAX];
    vtpmca_diag diag = {{0}};
    vtpmca_err err = resolve_ca_dir(opts, dir, sizeof(dir), &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    return print_ca(cmd, opts, dir, "CA directory:");
}

int cmd_ca_export_keylime(const cli_command *cmd, const cli_opts *opts)
{
    const char *out_dir = opts->args[0];
    char dir[SERVER_CONFIG_PATH_MAX];
    ca_ctx *ca = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = open_ca(opts, dir, sizeof(dir), &ca, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    err = ca_export_keylime(ca, out_dir, &diag);
    ca_free(ca);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot export to %s", out_dir);
    char issuing[CA_FILE_PATH_MAX], root[CA_FILE_PATH_MAX];
    snprintf(issuing, sizeof(issuing), "%s/%s", out_dir, CA_KEYLIME_ISSUING_FILE);
    snprintf(root, sizeof(root), "%s/%s", out_dir, CA_KEYLIME_ROOT_FILE);
    if (opts->json)
        return cli_print_json_result(cmd, json_pack("{s:s, s:s, s:s}", "dir", out_dir, "issuing_ca",
                                                    issuing, "root_ca", root));
    printf("wrote %s\nwrote %s\n", issuing, root);
    printf("set Keylime's tpm_cert_store to %s (or copy both files into it)\n", out_dir);
    return CLI_EXIT_OK;
}

/* ---- crl show ---- */

typedef struct {
    char serial[2 * CRL_SERIAL_MAX + 1];
    char revoked_at[32];
    const char *reason;
} crl_line;

/* One entry of the signed CRL, read back with OpenSSL: what relying parties will see. */
static void read_entry(const X509_REVOKED *rev, crl_line *line)
{
    const ASN1_INTEGER *serial = X509_REVOKED_get0_serialNumber(rev);
    int len = ASN1_STRING_length(serial);
    if (len < 1 || len > CRL_SERIAL_MAX ||
        vt_hex_encode(ASN1_STRING_get0_data(serial), (size_t)len, line->serial,
                      sizeof(line->serial)) != VTPMCA_OK)
        snprintf(line->serial, sizeof(line->serial), "?");
    cli_x509_time(X509_REVOKED_get0_revocationDate(rev), line->revoked_at,
                  sizeof(line->revoked_at));
    /* RFC 5280 5.3.1: no reasonCode extension means "unspecified". */
    ASN1_ENUMERATED *code = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
    line->reason = code != NULL ? crl_reason_name((crl_reason)ASN1_ENUMERATED_get(code))
                                : crl_reason_name(VT_CRL_REASON_UNSPECIFIED);
    if (line->reason == NULL)
        line->reason = "unknown";
    ASN1_ENUMERATED_free(code);
}

static int print_crl(const cli_command *cmd, const cli_opts *opts, const crl_result *res)
{
    const unsigned char *p = res->der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)res->der_len);
    if (crl == NULL)
        return cli_fail(cmd, VTPMCA_ERR_INTERNAL, "the new CRL does not parse");
    char issuer[256], this_update[32], next_update[32];
    cli_x509_name(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
    cli_format_time((time_t)res->this_update, this_update, sizeof(this_update));
    cli_format_time((time_t)res->next_update, next_update, sizeof(next_update));
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    int n = revoked != NULL ? sk_X509_REVOKED_num(revoked) : 0;
    int rc = CLI_EXIT_OK;
    if (opts->json) {
        json_t *list = json_array();
        for (int i = 0; list != NULL && i < n; i++) {
            crl_line line;
            read_entry(sk_X509_REVOKED_value(revoked, i), &line);
            if (json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "serial", line.serial,
                                                      "revoked_at", line.revoked_at, "reason",
                                                      line.reason)) != 0) {
                json_decref(list);
                list = NULL;
            }
        }
        rc = cli_print_json_result(
            cmd, list == NULL
                     ? NULL
                     : json_pack("{s:I, s:s, s:s, s:s, s:o}", "crl_number",
                                 (json_int_t)res->crl_number, "issuer", issuer, "this_update",
                                 this_update, "next_update", next_update, "revoked", list));
    } else {
        printf("CRL number %llu, issued by %s\n", (unsigned long long)res->crl_number, issuer);
        printf("this update: %s\nnext update: %s\n", this_update, next_update);
        printf("revoked certificates: %d\n", n);
        if (n > 0)
            printf("  %-40s %-21s %s\n", "SERIAL", "REVOKED AT", "REASON");
        for (int i = 0; i < n; i++) {
            crl_line line;
            read_entry(sk_X509_REVOKED_value(revoked, i), &line);
            printf("  %-40s %-21s %s\n", line.serial, line.revoked_at, line.reason);
        }
    }
    X509_CRL_free(crl);
    return rc;
}

int cmd_crl_show(const cli_command *cmd, const cli_opts *opts)
{
    char dir[SERVER_CONFIG_PATH_MAX];
    ca_ctx *ca = NULL;
    store *st = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = open_ca(opts, dir, sizeof(dir), &ca, &diag);
    if (err == VTPMCA_OK)
        err = cli_open_store(opts->value[CLI_OPT_DB], false, &st, &diag);
    crl_result res = {0};
    if (err == VTPMCA_OK)
        err = crl_generate(ca, st, CRL_NEXT_UPDATE_DEFAULT, &res, &diag);
    store_close(st);
    ca_free(ca);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot make the CRL");
    const char *der_out = opts->value[CLI_OPT_DER_OUT];
    if (der_out != NULL) {
        err = vt_file_write_atomic(der_out, res.der, res.der_len, 0644, &diag);
        if (err != VTPMCA_OK) {
            crl_result_free(&res);
            return cli_fail_diag(cmd, err, &diag, "cannot write %s", der_out);
        }
    }
    int rc = print_crl(cmd, opts, &res);
    crl_result_free(&res);
    return rc;
}
