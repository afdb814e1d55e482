/* vtpmca admin keygen|whoami: admin keys for the daemon's admin API. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "cli_remote.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/fileio.h"

/* "DIR/NAME.pem" -> "DIR/NAME.pub.pem" (the name the daemon's admin_keys_dir expects). */
static vtpmca_err public_key_path(const char *private_path, char *buf, size_t size,
                                  vtpmca_diag *diag)
{
    size_t len = strlen(private_path);
    if (len <= 4 || strcmp(private_path + len - 4, ".pem") != 0 ||
        (len > 8 && strcmp(private_path + len - 8, ".pub.pem") == 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "--out must name the private key file NAME.pem (not NAME.pub.pem)");
    int n = snprintf(buf, size, "%.*s" ADMIN_PUBKEY_SUFFIX, (int)(len - 4), private_path);
    if (n < 0 || (size_t)n >= size)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "--out path is too long");
    return VTPMCA_OK;
}

/* Keys are never overwritten: losing one locks its admin out. */
static vtpmca_err refuse_existing(const char *path, vtpmca_diag *diag)
{
    struct stat sb;
    if (lstat(path, &sb) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT, "%s exists; refusing to overwrite a key",
                           path);
    if (errno != ENOENT)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "%s: %s", path, strerror(errno));
    return VTPMCA_OK;
}

int cmd_admin_keygen(const cli_command *cmd, const cli_opts *opts)
{
    const char *out = opts->value[CLI_OPT_OUT];
    admin_key_type type = ADMIN_KEY_ED25519;
    const char *type_text = opts->value[CLI_OPT_KEY_TYPE];
    if (type_text != NULL && admin_key_type_parse(type_text, &type) != VTPMCA_OK)
        return cli_usage_error(cmd, "--key-type '%s': expected ed25519 or p256", type_text);
    vtpmca_diag diag = {{0}};
    char pub_path[4096];
    vtpmca_err err = public_key_path(out, pub_path, sizeof(pub_path), &diag);
    if (err != VTPMCA_OK)
        return cli_usage_error(cmd, "%s", diag.msg);
    err = refuse_existing(out, &diag);
    if (err == VTPMCA_OK)
        err = refuse_existing(pub_path, &diag);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);

    EVP_PKEY *key = NULL;
    char *private_pem = NULL, *public_pem = NULL;
    size_t private_len = 0, public_len = 0;
    err = admin_key_generate(type, &key, &diag);
    if (err == VTPMCA_OK)
        err = admin_key_to_pem(key, true, &private_pem, &private_len, &diag);
    if (err == VTPMCA_OK)
        err = admin_key_to_pem(key, false, &public_pem, &public_len, &diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(out, private_pem, private_len, 0600, &diag);
    if (err == VTPMCA_OK)
        err = vt_file_write_atomic(pub_path, public_pem, public_len, 0644, &diag);
    const char *alg = admin_key_alg(key);
    if (private_pem != NULL)
        OPENSSL_clear_free(private_pem, private_len);
    OPENSSL_free(public_pem);
    EVP_PKEY_free(key);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, "cannot make the admin key");

    /* The admin name the CLI will use by default: the file name without .pem. */
    const char *slash = strrchr(out, '/');
    const char *base = slash != NULL ? slash + 1 : out;
    char name[ADMIN_NAME_MAX + 2];
    snprintf(name, sizeof(name), "%.*s", (int)(strlen(base) - 4), base);
    bool name_ok = admin_name_valid(name);
    if (opts->json) {
        json_t *result = json_pack("{s:s, s:s, s:s, s:s?}", "private_key", out, "public_key",
                                   pub_path, "alg", alg, "admin_name", name_ok ? name : NULL);
        err = result ? cli_print_json(result) : VTPMCA_ERR_NOMEM;
        json_decref(result);
        if (err != VTPMCA_OK)
            return cli_fail(cmd, err, "keys written, but printing failed");
    } else {
        printf("wrote %s (private, mode 0600) and %s (public), alg %s\n", out, pub_path, alg);
        printf("install %s in the daemon's admin_keys_dir (or its auditors/ subdirectory for a "
               "read-only admin)%s\n",
               pub_path, name_ok ? "" : "; rename it: the name must be 1 to 56 of [A-Za-z0-9._-]");
    }
    return CLI_EXIT_OK;
}

int cmd_admin_whoami(const cli_command *cmd, const cli_opts *opts)
{
    vtpmca_diag diag = {{0}};
    bool remote = false;
    cli_remote_config cfg;
    vtpmca_err err = cli_remote_config_from_opts(opts, &remote, &cfg, &diag);
    if (err != VTPMCA_OK)
        return cli_usage_error(cmd, "%s", diag.msg);
    if (!remote)
        return cli_usage_error(cmd, "needs --server URL (or VTPMCA_SERVER)");
    cli_remote *client = NULL;
    json_t *answer = NULL;
    err = cli_remote_open(&cfg, &client, &diag);
    /* Read-only, so it works with an auditor's key too; granted_role says what the key may. */
    if (err == VTPMCA_OK)
        err = cli_remote_call(client, "GET", "/v1/admin/whoami", ADMIN_ROLE_AUDITOR, NULL, &answer,
                              &diag);
    cli_remote_close(client);
    if (err != VTPMCA_OK)
        return cli_fail_diag(cmd, err, &diag, NULL);
    if (opts->json) {
        err = cli_print_json(answer);
    } else {
        const char *name = json_string_value(json_object_get(answer, "admin"));
        const char *granted = json_string_value(json_object_get(answer, "granted_role"));
        printf("admin %s, granted role %s, at %s\n", name ? name : "?", granted ? granted : "?",
               cfg.server);
    }
    json_decref(answer);
    if (err != VTPMCA_OK)
        return cli_fail(cmd, err, "cannot print the result");
    return CLI_EXIT_OK;
}
