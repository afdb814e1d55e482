/* Unit tests for server/config.c: defaults, the config file format, flags overriding the
 * file, and every kind of rejected input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vtpmca/server_config.h"

/* Every option key the daemon documents. */
static const char *const all_keys[] = {
    "listen",
    "port",
    "port_file",
    "allow_remote_plain_http",
    "state_dir",
    "db",
    "log_level",
    "log_format",
    "threads",
    "max_body_bytes",
    "connection_limit",
    "connection_timeout_s",
    "shutdown_grace_ms",
    "extra_roots_dir",
    "kds_url",
    "kds_timeout_ms",
    "kds_rate",
    "kds_burst",
    "default_product",
    "vcek_cache_entries",
    "policy_cache_entries",
    "policy_refresh_ms",
    /* HTTPS and the admin API keys. */
    "tls_cert_file",
    "tls_key_file",
    "admin_keys_dir",
    "admin_key",
    "auditor_key",
    /* KBS protocol: keys and sessions. */
    "kbs_key_file",
    "kbs_key_curve",
    "kbs_token_key_file",
    "kbs_token_alg",
    "master_key_file",
    "kbs_session_capacity",
    "kbs_auth_ttl_s",
    "kbs_session_ttl_s",
    /* The certificate authority, its CRL and the issuance protocol. */
    "ca_dir",
    "crl_next_update_s",
    "crl_refresh_s",
    "ca_base_url",
    "trusted_kbs_keys_dir",
    "ca_challenge_capacity",
    "ca_challenge_ttl_s",
    "ca_activation_capacity",
    "ca_activation_ttl_s",
    "ca_require_iak_activation",
    /* The rollback ledger. */
    "ledger_nonce_capacity",
    "ledger_nonce_ttl_s",
    "ledger_workers",
    "ledger_key_cache_ttl_ms",
    /* Threads for requests that wait for a durable commit. */
    "commit_workers",
};
#define N_KEYS (sizeof(all_keys) / sizeof(all_keys[0]))

static void test_defaults(void **state)
{
    (void)state;
    server_config cfg;
    assert_int_equal(server_config_defaults(&cfg), VTPMCA_OK);
    assert_string_equal(cfg.listen, "127.0.0.1");
    assert_int_equal(cfg.port, 8377);
    assert_string_equal(cfg.port_file, "");
    assert_false(cfg.allow_remote_plain_http);
    assert_string_equal(cfg.state_dir, "/var/lib/vtpmca");
    assert_string_equal(cfg.db, "");
    assert_int_equal(cfg.log_level, VTPMCA_LOG_INFO);
    assert_int_equal(cfg.log_format, VTPMCA_LOG_LOGFMT);
    assert_int_equal(cfg.threads, 0);
    assert_int_equal(cfg.max_body_bytes, 65536);
    assert_int_equal(cfg.connection_limit, 1024);
    assert_int_equal(cfg.connection_timeout_s, 30);
    assert_int_equal(cfg.shutdown_grace_ms, 5000);
    assert_string_equal(cfg.extra_roots_dir, "");
    assert_string_equal(cfg.kds_url, "");
    assert_int_equal(cfg.kds_timeout_ms, 5000);
    assert_true(cfg.kds_rate == 1.0);
    assert_int_equal(cfg.kds_burst, 4);
    assert_int_equal(cfg.default_product, SNP_PRODUCT_UNKNOWN);
    assert_int_equal(cfg.vcek_cache_entries, 1024);
    assert_int_equal(cfg.policy_cache_entries, 256);
    assert_int_equal(cfg.policy_refresh_ms, 1000);
    assert_string_equal(cfg.ca_dir, "");
    assert_int_equal(cfg.crl_next_update_s, 604800);
    assert_int_equal(cfg.crl_refresh_s, 86400);
    assert_string_equal(cfg.config_path, "");

    /* The database lives in the state directory unless configured. */
    assert_int_equal(server_config_finalize(&cfg, NULL), VTPMCA_OK);
    assert_string_equal(cfg.db, "/var/lib/vtpmca/vtpmca.db");
    assert_string_equal(cfg.ca_dir, "/var/lib/vtpmca/ca"); /* likewise the CA */
    assert_int_equal(server_config_defaults(NULL), VTPMCA_ERR_INVALID_ARG);
}

/* Every key with a non-default value, plus comments, blank lines, odd spacing and CRLF. */
static const char full_file[] = "# vtpmcad configuration\n"
                                "\n"
                                "   # indented comment\n"
                                "listen = ::1\n"
                                "port=9000\n"
                                "port_file =   /run/vtpmca/port   \n"
                                "allow_remote_plain_http = true\r\n"
                                "\tstate_dir\t=\t/srv/vtpmca\n"
                                "db = sqlite:/srv/vtpmca/other.db # inline comment\n"
                                "log_level = debug\n"
                                "log_format = json\n"
                                "threads = 8\n"
                                "max_body_bytes = 1048576\n"
                                "connection_limit = 64\n"
                                "connection_timeout_s = 10\n"
                                "shutdown_grace_ms = 250\n"
                                "extra_roots_dir = /srv/test-roots\n"
                                "kds_url = https://kdsintf.amd.com/path#frag\n"
                                "kds_timeout_ms = 1500\n"
                                "kds_rate = 2.5\n"
                                "kds_burst = 9\n"
                                "default_product = genoa\n"
                                "vcek_cache_entries = 77\n"
                                "policy_cache_entries = 5\n"
                                "policy_refresh_ms = 0\n";

static void test_file_every_key(void **state)
{
    (void)state;
    server_config cfg;
    server_config_defaults(&cfg);
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        server_config_parse_text(&cfg, full_file, strlen(full_file), "test.conf", &diag),
        VTPMCA_OK);
    assert_string_equal(cfg.listen, "::1");
    assert_int_equal(cfg.port, 9000);
    assert_string_equal(cfg.port_file, "/run/vtpmca/port");
    assert_true(cfg.allow_remote_plain_http);
    assert_string_equal(cfg.state_dir, "/srv/vtpmca");
    assert_string_equal(cfg.db, "sqlite:/srv/vtpmca/other.db");
    assert_int_equal(cfg.log_level, VTPMCA_LOG_DEBUG);
    assert_int_equal(cfg.log_format, VTPMCA_LOG_JSON);
    assert_int_equal(cfg.threads, 8);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.connection_limit, 64);
    assert_int_equal(cfg.connection_timeout_s, 10);
    assert_int_equal(cfg.shutdown_grace_ms, 250);
    assert_string_equal(cfg.extra_roots_dir, "/srv/test-roots");
    /* '#' without a blank before it is part of the value. */
    assert_string_equal(cfg.kds_url, "https://kdsintf.amd.com/path#frag");
    assert_int_equal(cfg.kds_timeout_ms, 1500);
    assert_true(cfg.kds_rate == 2.5);
    assert_int_equal(cfg.kds_burst, 9);
    assert_int_equal(cfg.default_product, SNP_PRODUCT_GENOA);
    assert_int_equal(cfg.vcek_cache_entries, 77);
    assert_int_equal(cfg.policy_cache_entries, 5);
    assert_int_equal(cfg.policy_refresh_ms, 0);
    /* An explicit db is kept by finalize. */
    assert_int_equal(server_config_finalize(&cfg, &diag), VTPMCA_OK);
    assert_string_equal(cfg.db, "sqlite:/srv/vtpmca/other.db");

    /* An empty value clears an optional setting; the last line needs no newline. */
    const char clear[] = "kds_url =\ndefault_product=";
    assert_int_equal(server_config_parse_text(&cfg, clear, strlen(clear), "t", &diag), VTPMCA_OK);
    assert_string_equal(cfg.kds_url, "");
    assert_int_equal(cfg.default_product, SNP_PRODUCT_UNKNOWN);
    /* An empty file changes nothing. */
    assert_int_equal(server_config_parse_text(&cfg, "", 0, "t", &diag), VTPMCA_OK);
}

static void expect_text_error(const char *text, const char *needle1, const char *needle2)
{
    /* Both start from defaults (which zero the padding), so bytes compare equal. */
    server_config cfg, before;
    server_config_defaults(&cfg);
    server_config_defaults(&before);
    vtpmca_diag diag = {{0}};
    assert_int_equal(server_config_parse_text(&cfg, text, strlen(text), "bad.conf", &diag),
                     VTPMCA_ERR_PARSE);
    if (strstr(diag.msg, needle1) == NULL || (needle2 && strstr(diag.msg, needle2) == NULL))
        fail_msg("diag '%s' lacks '%s' / '%s'", diag.msg, needle1, needle2 ? needle2 : "");
    /* A single bad line changes nothing. */
    if (strchr(text, '\n') == NULL || strchr(text, '\n')[1] == '\0')
        assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_file_errors(void **state)
{
    (void)state;
    expect_text_error("port = 80\nfrobnicate = 1\n", "bad.conf:2", "unknown key 'frobnicate'");
    expect_text_error("port 80\n", "bad.conf:1", "key = value");
    expect_text_error("= 80\n", "bad.conf:1", "missing key");
    expect_text_error("port = 70000\n", "bad.conf:1", "port");
    expect_text_error("log_level = verbose\n", "log_level", "verbose");
    expect_text_error("max_body_bytes = -1\n", "max_body_bytes", NULL);
    expect_text_error("# ok\n\nthreads = many\n", "bad.conf:3", "threads");
    /* Keys are case-sensitive and use underscores. */
    expect_text_error("Port = 80\n", "unknown key 'Port'", NULL);
    expect_text_error("state-dir = /x\n", "unknown key 'state-dir'", NULL);
    char with_nul[] = "port = 80\0\n";
    server_config cfg;
    server_config_defaults(&cfg);
    assert_int_equal(server_config_parse_text(&cfg, with_nul, sizeof(with_nul) - 1, "n", NULL),
                     VTPMCA_ERR_PARSE);
    assert_int_equal(server_config_parse_text(NULL, "", 0, "n", NULL), VTPMCA_ERR_INVALID_ARG);
}

static void expect_bad_value(const char *key, const char *value)
{
    /* Both start from defaults (which zero the padding), so bytes compare equal. */
    server_config cfg, before;
    server_config_defaults(&cfg);
    server_config_defaults(&before);
    vtpmca_diag diag = {{0}};
    vtpmca_err err = server_config_set(&cfg, key, value, &diag);
    if (err != VTPMCA_ERR_PARSE)
        fail_msg("%s = '%s' gave %d, expected a parse error", key, value, err);
    if (strstr(diag.msg, key) == NULL)
        fail_msg("diag '%s' does not name %s", diag.msg, key);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_bad_value("port", "70000");
    expect_bad_value("port", "65536");
    expect_bad_value("port", "-1");
    expect_bad_value("port", "+80");
    expect_bad_value("port", " 80");
    expect_bad_value("port", "0x50");
    expect_bad_value("port", "");
    expect_bad_value("port", "99999999999999999999999");
    expect_bad_value("max_body_bytes", "-5");
    expect_bad_value("max_body_bytes", "0");
    expect_bad_value("max_body_bytes", "1k");
    expect_bad_value("threads", "1025");
    expect_bad_value("connection_limit", "0");
    expect_bad_value("connection_timeout_s", "0");
    expect_bad_value("kds_timeout_ms", "-100");
    expect_bad_value("kds_rate", "0");
    expect_bad_value("kds_rate", "-1");
    expect_bad_value("kds_rate", "abc");
    expect_bad_value("kds_rate", "inf");
    expect_bad_value("kds_rate", "nan");
    expect_bad_value("kds_rate", "0x10");
    expect_bad_value("kds_rate", "1001");
    expect_bad_value("kds_burst", "0");
    expect_bad_value("log_level", "verbose");
    expect_bad_value("log_level", "INFO");
    expect_bad_value("log_format", "xml");
    expect_bad_value("allow_remote_plain_http", "maybe");
    expect_bad_value("default_product", "epyc");
    expect_bad_value("listen", "");
    expect_bad_value("state_dir", "");
    expect_bad_value("state_dir", "/tmp/a\tb");
    char long_path[SERVER_CONFIG_PATH_MAX + 10];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    expect_bad_value("state_dir", long_path);

    /* Boundaries that are accepted. */
    server_config cfg;
    server_config_defaults(&cfg);
    assert_int_equal(server_config_set(&cfg, "port", "65535", NULL), VTPMCA_OK);
    assert_int_equal(cfg.port, 65535);
    assert_int_equal(server_config_set(&cfg, "port", "0", NULL), VTPMCA_OK);
    assert_int_equal(cfg.port, 0);
    assert_int_equal(server_config_set(&cfg, "kds_rate", "0.25", NULL), VTPMCA_OK);
    assert_true(cfg.kds_rate == 0.25);
    assert_int_equal(server_config_set(&cfg, "allow_remote_plain_http", "yes", NULL), VTPMCA_OK);
    assert_true(cfg.allow_remote_plain_http);
    assert_int_equal(server_config_set(&cfg, "default_product", "Milan", NULL), VTPMCA_OK);
    assert_int_equal(cfg.default_product, SNP_PRODUCT_MILAN);

    vtpmca_diag diag = {{0}};
    assert_int_equal(server_config_set(&cfg, "nope", "1", &diag), VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "nope"));
    assert_int_equal(server_config_set(&cfg, NULL, "1", NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(server_config_set(&cfg, "port", NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

static vtpmca_err finalize_listen(const char *listen, bool allow, vtpmca_diag *diag)
{
    server_config cfg;
    server_config_defaults(&cfg);
    assert_int_equal(server_config_set(&cfg, "listen", listen, NULL), VTPMCA_OK);
    cfg.allow_remote_plain_http = allow;
    return server_config_finalize(&cfg, diag);
}

static void test_listen_address(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    assert_int_equal(finalize_listen("127.0.0.1", false, &diag), VTPMCA_OK);
    assert_int_equal(finalize_listen("127.5.6.7", false, &diag), VTPMCA_OK);
    assert_int_equal(finalize_listen("::1", false, &diag), VTPMCA_OK);
    assert_int_equal(finalize_listen("::ffff:127.0.0.1", false, &diag), VTPMCA_OK);

    const char *remote[] = {"0.0.0.0", "10.1.2.3", "::", "2001:db8::1", "128.0.0.1"};
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        vtpmca_diag_clear(&diag);
        assert_int_equal(finalize_listen(remote[i], false, &diag), VTPMCA_ERR_POLICY);
        assert_non_null(strstr(diag.msg, "allow_remote_plain_http"));
        assert_non_null(strstr(diag.msg, remote[i]));
        assert_int_equal(finalize_listen(remote[i], true, &diag), VTPMCA_OK);
    }
    /* Only IP literals: a name would depend on resolver state at start. */
    assert_int_equal(finalize_listen("localhost", true, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "localhost"));
    assert_int_equal(finalize_listen("127.0.0.1:80", false, &diag), VTPMCA_ERR_PARSE);

    server_config cfg;
    server_config_defaults(&cfg);
    assert_int_equal(server_config_set(&cfg, "kds_url", "ftp://kds.example", NULL), VTPMCA_OK);
    assert_int_equal(server_config_finalize(&cfg, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "kds_url"));
    assert_int_equal(server_config_finalize(NULL, NULL), VTPMCA_ERR_INVALID_ARG);
}

static char tmp_dir[64];

static int make_tmp_dir(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/vtpmca-config-XXXXXX");
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/vtpmcad.conf", tmp_dir);
    unlink(path);
    return rmdir(tmp_dir);
}

static void write_config(const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/vtpmcad.conf", tmp_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static vtpmca_err from_args(server_config *cfg, server_config_action *action, vtpmca_diag *diag,
                            int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = "vtpmcad";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    return server_config_from_args(argc, argv, cfg, action, diag);
}

static void test_flags_override_file(void **state)
{
    (void)state;
    char path[128];
    write_config("port = 9000\nstate_dir = /from/file\nlog_level = warn\nthreads = 3\n", path,
                 sizeof(path));
    server_config cfg;
    server_config_action action;
    vtpmca_diag diag = {{0}};
    /* The flag before --config still wins over the file. */
    assert_int_equal(from_args(&cfg, &action, &diag, 7, "--port", "9100", "--config", path,
                               "--state-dir=/from/flag", "--allow-remote-plain-http"),
                     VTPMCA_OK);
    assert_int_equal(action, SERVER_CONFIG_RUN);
    assert_string_equal(cfg.config_path, path);
    assert_int_equal(cfg.port, 9100);
    assert_string_equal(cfg.state_dir, "/from/flag");
    assert_string_equal(cfg.db, "/from/flag/vtpmca.db");
    assert_string_equal(cfg.ca_dir, "/from/flag/ca");
    assert_int_equal(cfg.log_level, VTPMCA_LOG_WARN); /* from the file */
    assert_int_equal(cfg.threads, 3);
    assert_true(cfg.allow_remote_plain_http);

    /* Every key has a flag (boolean flags take their value after '='). */
    for (size_t i = 0; i < N_KEYS; i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", all_keys[i]);
        for (char *c = flag; *c; c++)
            if (*c == '_')
                *c = '-';
        const char *value = "1";
        if (strcmp(all_keys[i], "listen") == 0)
            value = "127.0.0.1";
        else if (strcmp(all_keys[i], "log_level") == 0)
            value = "error";
        else if (strcmp(all_keys[i], "log_format") == 0)
            value = "json";
        else if (strcmp(all_keys[i], "default_product") == 0)
            value = "turin";
        else if (strcmp(all_keys[i], "kds_url") == 0)
            value = "http://127.0.0.1:1";
        else if (strcmp(all_keys[i], "crl_next_update_s") == 0)
            value = "60"; /* CRL_NEXT_UPDATE_MIN */
        else if (strcmp(all_keys[i], "kbs_key_curve") == 0)
            value = "p384";
        else if (strcmp(all_keys[i], "kbs_token_alg") == 0)
            value = "ES384";
        else if (strcmp(all_keys[i], "ca_base_url") == 0)
            value = "https://ca.example.test";
        char flag_value[128];
        snprintf(flag_value, sizeof(flag_value), "%s=%s", flag, value);
        /* tls_cert_file and tls_key_file are only valid together. */
        const char *pair = strcmp(all_keys[i], "tls_cert_file") == 0  ? "--tls-key-file=1"
                           : strcmp(all_keys[i], "tls_key_file") == 0 ? "--tls-cert-file=1"
                                                                      : NULL;
        vtpmca_diag_clear(&diag);
        if (from_args(&cfg, &action, &diag, pair != NULL ? 3 : 2, flag_value, pair) != VTPMCA_OK)
            fail_msg("%s: %s", flag_value, diag.msg);
    }
    assert_int_equal(from_args(&cfg, &action, &diag, 2, "--allow-remote-plain-http=false"),
                     VTPMCA_OK);
    assert_false(cfg.allow_remote_plain_http);
    assert_int_equal(from_args(&cfg, &action, &diag, 1), VTPMCA_OK);
    assert_string_equal(cfg.config_path, "");
}

static void test_flag_errors(void **state)
{
    (void)state;
    server_config cfg;
    server_config_action action;
    vtpmca_diag diag = {{0}};
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--bogus", "1"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "--bogus"));
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--state_dir", "/x"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "--state_dir"));
    assert_int_equal(from_args(&cfg, &action, &diag, 2, "--port"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "needs a value"));
    assert_int_equal(from_args(&cfg, &action, &diag, 2, "stray"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "stray"));
    assert_int_equal(from_args(&cfg, &action, &diag, 2, "-p"), VTPMCA_ERR_PARSE);
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--port", "70000"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "port"));
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--log-level", "loud"), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "log_level"));
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--max-body-bytes", "-1"),
                     VTPMCA_ERR_PARSE);
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--listen", "0.0.0.0"), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "allow_remote_plain_http"));
    assert_int_equal(from_args(&cfg, &action, &diag, 2, "--config"), VTPMCA_ERR_PARSE);
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--config", "/nonexistent/vtpmcad.conf"),
                     VTPMCA_ERR_IO);
    assert_non_null(strstr(diag.msg, "/nonexistent/vtpmcad.conf"));

    char path[128];
    write_config("port = 1\nmystery = 2\n", path, sizeof(path));
    assert_int_equal(from_args(&cfg, &action, &diag, 3, "--config", path), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "mystery"));
    assert_non_null(strstr(diag.msg, ":2"));

    assert_int_equal(server_config_from_args(1, NULL, &cfg, &action, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_help_and_version(void **state)
{
    (void)state;
    server_config cfg;
    server_config_action action;
    /* --help wins even next to bad flags. */
    assert_int_equal(from_args(&cfg, &action, NULL, 3, "--bogus", "--help"), VTPMCA_OK);
    assert_int_equal(action, SERVER_CONFIG_HELP);
    assert_int_equal(from_args(&cfg, &action, NULL, 2, "--version"), VTPMCA_OK);
    assert_int_equal(action, SERVER_CONFIG_VERSION);
    assert_non_null(server_version());
    assert_true(strlen(server_version()) > 0);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(server_config_write_help(f, "vtpmcad"), VTPMCA_OK);
    fclose(f);
    /* Every option with its flag, key and default; nothing undocumented. */
    server_config defaults;
    server_config_defaults(&defaults);
    size_t documented = 0;
    for (const char *p = text; (p = strstr(p, "(key ")) != NULL; p++)
        documented++;
    assert_int_equal(documented, N_KEYS);
    for (size_t i = 0; i < N_KEYS; i++) {
        char flag[64], key[80];
        snprintf(flag, sizeof(flag), "--%s", all_keys[i]);
        for (char *c = flag; *c; c++)
            if (*c == '_')
                *c = '-';
        snprintf(key, sizeof(key), "(key %s, default: ", all_keys[i]);
        if (strstr(text, flag) == NULL || strstr(text, key) == NULL)
            fail_msg("help does not document %s", all_keys[i]);
    }
    assert_non_null(strstr(text, "(key port, default: 8377)"));
    assert_non_null(strstr(text, "(key listen, default: 127.0.0.1)"));
    assert_non_null(strstr(text, "--config FILE"));
    assert_non_null(strstr(text, "--version"));
    free(text);
    assert_int_equal(server_config_write_help(NULL, "x"), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_file_every_key),
        cmocka_unit_test(test_file_errors),    cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_listen_address), cmocka_unit_test(test_flags_override_file),
        cmocka_unit_test(test_flag_errors),    cmocka_unit_test(test_help_and_version),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
