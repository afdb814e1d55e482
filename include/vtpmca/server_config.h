/* vtpmcad configuration: defaults, a `key = value` file and command-line flags (flags win).
 * Every option has one entry in a table (server/config.c) that drives the file parser, the
 * flag parser and --help, so the three cannot drift apart. Nothing here touches the system:
 * parsing is testable without starting anything. */
#ifndef VTPMCA_SERVER_CONFIG_H
#define VTPMCA_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vtpmca/err.h"
#include "vtpmca/log.h"
#include "vtpmca/snp_report.h"

#define SERVER_CONFIG_PATH_MAX 1024
#define SERVER_DEFAULT_CONFIG_PATH "/etc/vtpmca/vtpmcad.conf"

/* A repeatable path option: every `key = PATH` line (or flag) adds one; an empty value
 * clears the list. */
#define SERVER_CONFIG_LIST_MAX 16
typedef struct {
    unsigned count;
    char path[SERVER_CONFIG_LIST_MAX][SERVER_CONFIG_PATH_MAX];
} server_config_paths;

typedef struct {
    char config_path[SERVER_CONFIG_PATH_MAX]; /* file that was read; empty when none */
    char listen[64];                          /* IPv4 or IPv6 literal */
    unsigned port;                            /* 0 = ephemeral */
    char port_file[SERVER_CONFIG_PATH_MAX];   /* written with the bound port; empty = none */
    bool allow_remote_plain_http;             /* permit a non-loopback listen address */
    char state_dir[SERVER_CONFIG_PATH_MAX];
    char db[SERVER_CONFIG_PATH_MAX]; /* store URI or path; empty = <state_dir>/vtpmca.db */
    vtpmca_log_level log_level;
    vtpmca_log_format log_format;
    unsigned threads;              /* HTTP worker threads; 0 = number of online CPUs */
    size_t max_body_bytes;         /* request bodies above this get 413 */
    unsigned connection_limit;     /* concurrent connections */
    unsigned connection_timeout_s; /* idle connections are closed after this */
    unsigned shutdown_grace_ms;    /* how long in-flight requests may finish at shutdown */
    char extra_roots_dir[SERVER_CONFIG_PATH_MAX]; /* explicitly trusted extra SNP roots */
    char kds_url[512];                            /* empty = KDS disabled */
    long kds_timeout_ms;
    double kds_rate;
    unsigned kds_burst;
    snp_product default_product; /* SNP_PRODUCT_UNKNOWN = none (try each product) */
    unsigned vcek_cache_entries;
    unsigned policy_cache_entries;
    unsigned policy_refresh_ms; /* how long "latest policy version" answers are reused */
    /* HTTPS (both set) or plain HTTP (both empty). */
    char tls_cert_file[SERVER_CONFIG_PATH_MAX]; /* PEM certificate, then any intermediates */
    char tls_key_file[SERVER_CONFIG_PATH_MAX];  /* PEM private key (unencrypted) */
    /* Admin API keys: <admin_keys_dir>/<name>.pub.pem (role admin), .../auditors/<name>.pub.pem
     * (role auditor), plus single files (repeatable keys admin_key / auditor_key). */
    char admin_keys_dir[SERVER_CONFIG_PATH_MAX];
    server_config_paths admin_keys;
    server_config_paths auditor_keys;
    /* KBS protocol: key files default to <state_dir>/kbs-key.pem, token-key.pem and
     * master.key; each is created (mode 0600) when missing. */
    char kbs_key_file[SERVER_CONFIG_PATH_MAX];
    char kbs_key_curve[8]; /* "p384" or "p256" */
    char kbs_token_key_file[SERVER_CONFIG_PATH_MAX];
    char kbs_token_alg[8]; /* "ES384" or "ES256" */
    char master_key_file[SERVER_CONFIG_PATH_MAX];
    unsigned kbs_session_capacity; /* sessions held at most */
    unsigned kbs_auth_ttl_s;       /* auth -> attest */
    unsigned kbs_session_ttl_s;    /* lifetime of an attested session and its token */
    /* Certificate authority (docs/ca.md): loaded at start when <ca_dir> holds one; the CRL
     * served at /v1/ca/crl is valid for crl_next_update_s and reissued after crl_refresh_s
     * (at most half its validity) or as soon as a certificate is revoked. */
    char ca_dir[SERVER_CONFIG_PATH_MAX]; /* empty = <state_dir>/ca */
    unsigned crl_next_update_s;
    unsigned crl_refresh_s;
    /* Evidence-bound EK/IAK issuance (docs/protocol.md, "EK/IAK certificate issuance"). */
    char ca_base_url[256]; /* CRLDP/AIA base in issued certificates; empty = listen address */
    char trusted_kbs_keys_dir[SERVER_CONFIG_PATH_MAX]; /* peer KBS public keys (*.pem) */
    unsigned ca_challenge_capacity;                    /* live challenges held at most */
    unsigned ca_challenge_ttl_s;                       /* challenge -> certify */
    unsigned ca_activation_capacity; /* pending activations (and proofs) held at most */
    unsigned ca_activation_ttl_s;    /* activation start -> finish -> certify */
    bool ca_require_iak_activation;  /* IAK certificates need a credential activation */
    /* Rollback ledger (docs/protocol.md, "Rollback ledger: protocol"). */
    size_t ledger_nonce_capacity;     /* request nonces remembered against replays */
    unsigned ledger_nonce_ttl_s;      /* how long each is remembered */
    unsigned ledger_key_cache_ttl_ms; /* how long a derived ledger key is reused; 0 = never */
    unsigned ledger_workers; /* threads answering ledger requests (bounds a group commit) */
    unsigned commit_workers; /* threads for key releases and certifications (durable commits) */
} server_config;

/* Fills every field with its documented default. */
vtpmca_err server_config_defaults(server_config *cfg);

/* Sets one option by its file key (e.g. "max_body_bytes"); the value is validated and the
 * diag names the key. Unknown keys are VTPMCA_ERR_NOT_FOUND. */
vtpmca_err server_config_set(server_config *cfg, const char *key, const char *value,
                             vtpmca_diag *diag);

/* Applies a config file's text: one `key = value` per line, `#` starts a comment, blank
 * lines and surrounding whitespace are ignored. `origin` names the file in diags
 * ("vtpmcad.conf:12: unknown key 'foo'"). On error cfg may be partly updated. */
vtpmca_err server_config_parse_text(server_config *cfg, const char *text, size_t len,
                                    const char *origin, vtpmca_diag *diag);

/* Reads and applies a config file (at most 1 MiB) and records its path. */
vtpmca_err server_config_load_file(server_config *cfg, const char *path, vtpmca_diag *diag);

typedef enum {
    SERVER_CONFIG_RUN = 0,
    SERVER_CONFIG_HELP,
    SERVER_CONFIG_VERSION,
} server_config_action;

/* Builds the configuration from the command line: defaults, then the file named by
 * --config (if any), then every other flag, then server_config_finalize. Flags are
 * `--name value` or `--name=value`; boolean flags take no value or `=true|false`.
 * --help and --version set *action and stop. */
vtpmca_err server_config_from_args(int argc, char *const argv[], server_config *cfg,
                                   server_config_action *action, vtpmca_diag *diag);

/* Fills derived defaults (db under the state dir) and checks cross-option rules: the
 * listen address must be an IP literal, and loopback unless TLS is configured or
 * allow_remote_plain_http; tls_cert_file and tls_key_file go together. */
vtpmca_err server_config_finalize(server_config *cfg, vtpmca_diag *diag);

/* Writes the usage text: every option with its flag, file key, default and meaning. */
vtpmca_err server_config_write_help(FILE *out, const char *program);

/* The release version, e.g. "0.1.0". */
const char *server_version(void);

#endif
