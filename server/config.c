/* vtpmcad configuration: one option table drives defaults, the config file, flags and --help. */
#include "vtpmca/server_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/crl.h"
#include "vtpmca/fileio.h"

#define CONFIG_FILE_MAX_BYTES (1u << 20)

typedef enum {
    OPT_STRING,
    OPT_UINT,   /* unsigned */
    OPT_SIZE,   /* size_t */
    OPT_LONG,   /* long, non-negative */
    OPT_DOUBLE, /* double, > 0 */
    OPT_BOOL,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_PRODUCT,
    OPT_PATH_LIST, /* server_config_paths: each value appends, "" clears */
} option_type;

typedef struct {
    const char *key; /* file key; the flag is "--" + key with '_' written as '-' */
    option_type type;
    size_t offset;
    size_t string_size;          /* OPT_STRING: buffer size */
    bool allow_empty;            /* OPT_STRING: "" means unset */
    unsigned long long min, max; /* numeric range, inclusive (OPT_DOUBLE: (0, max]) */
    const char *default_value;   /* applied by server_config_defaults */
    const char *help;
} option_def;

#define STR_OPT(field, empty_ok)                                                                   \
    OPT_STRING, offsetof(server_config, field), sizeof(((server_config *)0)->field), empty_ok, 0, 0
#define NUM_OPT(type, field, lo, hi) type, offsetof(server_config, field), 0, false, lo, hi
#define LIST_OPT(field) OPT_PATH_LIST, offsetof(server_config, field), 0, true, 0, 0

static const option_def options[] = {
    {"listen", STR_OPT(listen, false), "127.0.0.1",
     "IP address to bind; non-loopback needs allow_remote_plain_http"},
    {"port", NUM_OPT(OPT_UINT, port, 0, 65535), "8377", "TCP port; 0 picks a free port"},
    {"port_file", STR_OPT(port_file, true), "",
     "file that receives the bound port once listening (for scripts and tests)"},
    {"allow_remote_plain_http", NUM_OPT(OPT_BOOL, allow_remote_plain_http, 0, 1), "false",
     "allow a non-loopback listen address without TLS"},
    {"state_dir", STR_OPT(state_dir, false), "/var/lib/vtpmca",
     "state directory, created with mode 0700"},
    {"db", STR_OPT(db, true), "",
     "store: sqlite path or sqlite:PATH (default <state_dir>/vtpmca.db)"},
    {"log_level", NUM_OPT(OPT_LOG_LEVEL, log_level, 0, 0), "info", "debug, info, warn or error"},
    {"log_format", NUM_OPT(OPT_LOG_FORMAT, log_format, 0, 0), "logfmt", "logfmt or json"},
    {"threads", NUM_OPT(OPT_UINT, threads, 0, 1024), "0",
     "HTTP worker threads; 0 = number of online CPUs"},
    {"max_body_bytes", NUM_OPT(OPT_SIZE, max_body_bytes, 1, 64u << 20), "65536",
     "largest accepted request body (larger gets 413)"},
    {"connection_limit", NUM_OPT(OPT_UINT, connection_limit, 1, 100000), "1024",
     "maximum concurrent connections"},
    {"connection_timeout_s", NUM_OPT(OPT_UINT, connection_timeout_s, 1, 3600), "30",
     "idle connection timeout in seconds"},
    {"shutdown_grace_ms", NUM_OPT(OPT_UINT, shutdown_grace_ms, 0, 600000), "5000",
     "how long in-flight requests may finish after SIGTERM"},
    {"extra_roots_dir", STR_OPT(extra_roots_dir, true), "",
     "directory of extra SEV-SNP roots to trust (e.g. test roots); logged as a warning"},
    {"kds_url", STR_OPT(kds_url, true), "",
     "AMD KDS base URL (e.g. https://kdsintf.amd.com); empty disables VCEK downloads"},
    {"kds_timeout_ms", NUM_OPT(OPT_LONG, kds_timeout_ms, 1, 600000), "5000",
     "whole-request timeout for KDS downloads"},
    {"kds_rate", NUM_OPT(OPT_DOUBLE, kds_rate, 0, 1000), "1", "sustained KDS requests per second"},
    {"kds_burst", NUM_OPT(OPT_UINT, kds_burst, 1, 10000), "4", "KDS request burst size"},
    {"default_product", NUM_OPT(OPT_PRODUCT, default_product, 0, 0), "",
     "product for v2 reports without a supplied VCEK (milan, genoa, turin; empty = try each)"},
    {"vcek_cache_entries", NUM_OPT(OPT_UINT, vcek_cache_entries, 1, 10000000), "1024",
     "verified VCEKs kept in memory"},
    {"policy_cache_entries", NUM_OPT(OPT_UINT, policy_cache_entries, 1, 100000), "256",
     "parsed fleet policies kept in memory"},
    {"policy_refresh_ms", NUM_OPT(OPT_UINT, policy_refresh_ms, 0, 3600000), "1000",
     "how long the latest policy version of a fleet is reused before asking the store again"},
    {"tls_cert_file", STR_OPT(tls_cert_file, true), "",
     "PEM certificate (then intermediates) for HTTPS; with tls_key_file"},
    {"tls_key_file", STR_OPT(tls_key_file, true), "", "PEM private key for HTTPS (mode 0600)"},
    {"admin_keys_dir", STR_OPT(admin_keys_dir, true), "",
     "admin API keys: NAME.pub.pem (role admin) and auditors/NAME.pub.pem (role auditor)"},
    {"admin_key", LIST_OPT(admin_keys), "",
     "one admin public key NAME.pub.pem (role admin); repeatable, empty clears"},
    {"auditor_key", LIST_OPT(auditor_keys), "",
     "one auditor public key NAME.pub.pem (read-only); repeatable, empty clears"},
    {"kbs_key_file", STR_OPT(kbs_key_file, true), "",
     "KBS binding signing key, PEM, created when missing (default <state_dir>/kbs-key.pem)"},
    {"kbs_key_curve", STR_OPT(kbs_key_curve, false), "p384",
     "curve of the KBS key: p384 (ES384) or p256 (ES256)"},
    {"kbs_token_key_file", STR_OPT(kbs_token_key_file, true), "",
     "attestation token signing key, PEM, created when missing (default "
     "<state_dir>/token-key.pem)"},
    {"kbs_token_alg", STR_OPT(kbs_token_alg, false), "ES384",
     "attestation token algorithm: ES384 or ES256"},
    {"master_key_file", STR_OPT(master_key_file, true), "",
     "master key wrapping the persistence keys, 32 bytes, created when missing (default "
     "<state_dir>/master.key)"},
    {"kbs_session_capacity", NUM_OPT(OPT_UINT, kbs_session_capacity, 1, 10000000), "4096",
     "KBS sessions held at most; memory stays bounded under floods of auth calls"},
    {"kbs_auth_ttl_s", NUM_OPT(OPT_UINT, kbs_auth_ttl_s, 1, 86400), "60",
     "seconds a KBS session may take from auth to attest"},
    {"kbs_session_ttl_s", NUM_OPT(OPT_UINT, kbs_session_ttl_s, 1, 86400), "300",
     "seconds an attested KBS session and its token stay valid"},
    {"ca_dir", STR_OPT(ca_dir, true), "",
     "certificate authority directory made by 'vtpmca ca init' (default <state_dir>/ca); "
     "without one the /v1/ca/ routes answer 503"},
    {"crl_next_update_s",
     NUM_OPT(OPT_UINT, crl_next_update_s, CRL_NEXT_UPDATE_MIN, CRL_NEXT_UPDATE_MAX), "604800",
     "seconds from a CRL's thisUpdate to its nextUpdate"},
    {"crl_refresh_s", NUM_OPT(OPT_UINT, crl_refresh_s, 1, CRL_NEXT_UPDATE_MAX), "86400",
     "reissue the served CRL once it is this old (at most half of crl_next_update_s); "
     "revocations reissue it at once"},
    {"ca_base_url", STR_OPT(ca_base_url, true), "",
     "public base URL of this service (http(s)://host[:port][/prefix]) for the CRL distribution "
     "point and AIA of issued certificates; empty = the listen address and port"},
    {"trusted_kbs_keys_dir", STR_OPT(trusted_kbs_keys_dir, true), "",
     "directory of peer KBS public keys (*.pem) whose SVSMs may ask for EK/IAK certificates, "
     "besides this service's own KBS key"},
    {"ca_challenge_capacity", NUM_OPT(OPT_UINT, ca_challenge_capacity, 1, 1000000), "4096",
     "EK/IAK issuance challenges held at most (the oldest is dropped beyond)"},
    {"ca_challenge_ttl_s", NUM_OPT(OPT_UINT, ca_challenge_ttl_s, 1, 86400), "60",
     "seconds a certify challenge (nonce) stays valid"},
    {"ca_activation_capacity", NUM_OPT(OPT_UINT, ca_activation_capacity, 1, 1000000), "1024",
     "pending IAK credential activations (and proofs) held at most"},
    {"ca_activation_ttl_s", NUM_OPT(OPT_UINT, ca_activation_ttl_s, 1, 86400), "300",
     "seconds from activation start to finish, and from finish to the certify that uses it"},
    {"ca_require_iak_activation", NUM_OPT(OPT_BOOL, ca_require_iak_activation, 0, 1), "false",
     "IAK certificates need a credential activation even when the evidence binds the IAK"},
    {"ledger_nonce_capacity", NUM_OPT(OPT_SIZE, ledger_nonce_capacity, 1, 100000000), "1048576",
     "rollback ledger: request nonces remembered against replays (about 40 bytes each)"},
    {"ledger_nonce_ttl_s", NUM_OPT(OPT_UINT, ledger_nonce_ttl_s, 1, 86400), "600",
     "rollback ledger: seconds a request nonce is remembered (while the capacity lasts)"},
    {"commit_workers", NUM_OPT(OPT_UINT, commit_workers, 1, 1024), "64",
     "threads that run key releases and certifications, which wait for a durable commit, off "
     "the HTTP workers; at most this many share one commit"},
    {"ledger_workers", NUM_OPT(OPT_UINT, ledger_workers, 1, 1024), "64",
     "rollback ledger: threads that wait for the group commit on behalf of requests; at most "
     "this many advances share one commit"},
    {"ledger_key_cache_ttl_ms", NUM_OPT(OPT_UINT, ledger_key_cache_ttl_ms, 0, 3600000), "10000",
     "rollback ledger: how long a derived ledger key and the instance's enrollment state are "
     "reused before the store is asked again (0 = every request)"},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

const char *server_version(void)
{
    return VTPMCA_VERSION;
}

static const option_def *find_option(const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcmp(options[i].key, key) == 0)
            return &options[i];
    }
    return NULL;
}

/* Matches "--state-dir" (name without the dashes, len bytes) against the key "state_dir". */
static bool flag_matches_key(const char *name, size_t len, const char *key)
{
    if (strlen(key) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char want = key[i] == '_' ? '-' : key[i];
        if (name[i] != want)
            return false;
    }
    return true;
}

/* Digits only: strtoull alone would accept "-1", "+5", " 7" and "0x10". */
static vtpmca_err parse_unsigned(const char *key, const char *value, unsigned long long min,
                                 unsigned long long max, unsigned long long *out, vtpmca_diag *diag)
{
    if (*value == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: a number is required", key);
    for (const char *p = value; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: '%.40s' is not a non-negative integer",
                               key, value);
    }
    errno = 0;
    unsigned long long n = strtoull(value, NULL, 10);
    if (errno == ERANGE || n < min || n > max)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: %.40s is out of range %llu..%llu", key,
                           value, min, max);
    *out = n;
    return VTPMCA_OK;
}

static vtpmca_err parse_bool(const char *key, const char *value, bool *out, vtpmca_diag *diag)
{
    if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0) {
        *out = true;
        return VTPMCA_OK;
    }
    if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0) {
        *out = false;
        return VTPMCA_OK;
    }
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected true or false, got '%.40s'", key,
                       value);
}

static vtpmca_err parse_positive_double(const char *key, const char *value, double max, double *out,
                                        vtpmca_diag *diag)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(value, &end);
    /* Plain decimal only: no leading sign or space, no hex floats, inf or nan. */
    bool plain = *value != '\0' && (isdigit((unsigned char)value[0]) || value[0] == '.') &&
                 strpbrk(value, "xXnN") == NULL;
    if (!plain || end == value || *end != '\0' || errno == ERANGE || !isfinite(d))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: '%.40s' is not a positive number", key,
                           value);
    if (d <= 0 || d > max)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: %.40s is out of range (0, %g]", key, value,
                           max);
    *out = d;
    return VTPMCA_OK;
}

static vtpmca_err set_string(const char *key, char *field, size_t size, bool allow_empty,
                             const char *value, vtpmca_diag *diag)
{
    size_t len = strlen(value);
    if (len == 0 && !allow_empty)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: must not be empty", key);
    if (len >= size)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: longer than %zu characters", key, size - 1);
    for (size_t i = 0; i < len; i++) {
        if (iscntrl((unsigned char)value[i]))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: contains a control character", key);
    }
    memcpy(field, value, len + 1);
    return VTPMCA_OK;
}

/* Parses into a temporary first so a bad value leaves the config unchanged. */
static vtpmca_err apply_option(server_config *cfg, const option_def *opt, const char *value,
                               vtpmca_diag *diag)
{
    char *field = (char *)cfg + opt->offset;
    unsigned long long n = 0;
    vtpmca_err err;
    switch (opt->type) {
    case OPT_STRING:
        return set_string(opt->key, field, opt->string_size, opt->allow_empty, value, diag);
    case OPT_UINT:
        err = parse_unsigned(opt->key, value, opt->min, opt->max, &n, diag);
        if (err == VTPMCA_OK)
            *(unsigned *)(void *)field = (unsigned)n;
        return err;
    case OPT_SIZE:
        err = parse_unsigned(opt->key, value, opt->min, opt->max, &n, diag);
        if (err == VTPMCA_OK)
            *(size_t *)(void *)field = (size_t)n;
        return err;
    case OPT_LONG:
        err = parse_unsigned(opt->key, value, opt->min, opt->max, &n, diag);
        if (err == VTPMCA_OK)
            *(long *)(void *)field = (long)n;
        return err;
    case OPT_DOUBLE: {
        double d = 0;
        err = parse_positive_double(opt->key, value, (double)opt->max, &d, diag);
        if (err == VTPMCA_OK)
            *(double *)(void *)field = d;
        return err;
    }
    case OPT_BOOL: {
        bool b = false;
        err = parse_bool(opt->key, value, &b, diag);
        if (err == VTPMCA_OK)
            *(bool *)(void *)field = b;
        return err;
    }
    case OPT_LOG_LEVEL: {
        vtpmca_log_level level;
        if (vtpmca_log_level_parse(value, &level) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "%s: '%.40s' is not one of debug, info, warn, error", opt->key,
                               value);
        *(vtpmca_log_level *)(void *)field = level;
        return VTPMCA_OK;
    }
    case OPT_LOG_FORMAT: {
        vtpmca_log_format format;
        if (vtpmca_log_format_parse(value, &format) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: '%.40s' is not logfmt or json",
                               opt->key, value);
        *(vtpmca_log_format *)(void *)field = format;
        return VTPMCA_OK;
    }
    case OPT_PATH_LIST: {
        server_config_paths *list = (server_config_paths *)(void *)field;
        if (*value == '\0') {
            memset(list, 0, sizeof(*list));
            return VTPMCA_OK;
        }
        if (list->count == SERVER_CONFIG_LIST_MAX)
            return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s: at most %d entries", opt->key,
                               SERVER_CONFIG_LIST_MAX);
        err = set_string(opt->key, list->path[list->count], sizeof(list->path[0]), false, value,
                         diag);
        if (err == VTPMCA_OK)
            list->count++;
        return err;
    }
    case OPT_PRODUCT: {
        snp_product product = SNP_PRODUCT_UNKNOWN;
        if (*value != '\0' && snp_product_parse(value, &product) != VTPMCA_OK)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: '%.40s' is not milan, genoa or turin",
                               opt->key, value);
        *(snp_product *)(void *)field = product;
        return VTPMCA_OK;
    }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "%s: unhandled option type", opt->key);
}

vtpmca_err server_config_defaults(server_config *cfg)
{
    if (cfg == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        vtpmca_err err = apply_option(cfg, &options[i], options[i].default_value, NULL);
        if (err != VTPMCA_OK)
            return VTPMCA_ERR_INTERNAL; /* a default that does not parse is a bug */
    }
    return VTPMCA_OK;
}

vtpmca_err server_config_set(server_config *cfg, const char *key, const char *value,
                             vtpmca_diag *diag)
{
    if (cfg == NULL || key == NULL || value == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "config: missing argument");
    const option_def *opt = find_option(key);
    if (opt == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "unknown key '%.60s'", key);
    return apply_option(cfg, opt, value, diag);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one line in place (it is a private copy). Inline comments need a blank before '#'
 * so values such as URLs with fragments are not cut by accident. */
static vtpmca_err parse_line(server_config *cfg, char *line, const char *origin, unsigned line_no,
                             vtpmca_diag *diag)
{
    char *p = line;
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return VTPMCA_OK;
    for (char *c = p + 1; *c; c++) {
        if (*c == '#' && is_blank(c[-1])) {
            *c = '\0';
            break;
        }
    }
    char *eq = strchr(p, '=');
    if (eq == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s:%u: expected 'key = value'", origin,
                           line_no);
    char *key_end = eq;
    while (key_end > p && is_blank(key_end[-1]))
        key_end--;
    *key_end = '\0';
    char *value = eq + 1;
    while (is_blank(*value))
        value++;
    char *value_end = value + strlen(value);
    while (value_end > value && is_blank(value_end[-1]))
        value_end--;
    *value_end = '\0';
    if (*p == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s:%u: missing key before '='", origin,
                           line_no);

    vtpmca_diag inner;
    vtpmca_diag_clear(&inner);
    vtpmca_err err = server_config_set(cfg, p, value, &inner);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err == VTPMCA_ERR_NOT_FOUND ? VTPMCA_ERR_PARSE : err,
                           "%.80s:%u: %.160s", origin, line_no, inner.msg);
    return VTPMCA_OK;
}

vtpmca_err server_config_parse_text(server_config *cfg, const char *text, size_t len,
                                    const char *origin, vtpmca_diag *diag)
{
    if (cfg == NULL || (text == NULL && len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "config: missing argument");
    if (origin == NULL)
        origin = "config";
    if (len > 0 && memchr(text, '\0', len) != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%.80s: contains a NUL byte", origin);
    unsigned line_no = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        line_no++;
        char *line = strndup(text + pos, line_len);
        if (line == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "config: out of memory");
        vtpmca_err err = parse_line(cfg, line, origin, line_no, diag);
        free(line);
        if (err != VTPMCA_OK)
            return err;
        pos += line_len + 1;
    }
    return VTPMCA_OK;
}

vtpmca_err server_config_load_file(server_config *cfg, const char *path, vtpmca_diag *diag)
{
    if (cfg == NULL || path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "config: missing argument");
    if (strlen(path) >= sizeof(cfg->config_path))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "config path is too long");
    uint8_t *text = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, CONFIG_FILE_MAX_BYTES, &text, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    err = server_config_parse_text(cfg, (const char *)text, len, path, diag);
    free(text);
    if (err == VTPMCA_OK)
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
    return err;
}

static vtpmca_err apply_flag(server_config *cfg, int argc, char *const argv[], int *i,
                             vtpmca_diag *diag)
{
    /* "--name=value" or "--name value". */
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unexpected argument '%.60s'", arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const char *value = eq != NULL ? eq + 1 : NULL;
    if (flag_matches_key(name, name_len, "config")) {
        if (value == NULL)
            (*i)++; /* the file itself was read before the other flags */
        return VTPMCA_OK;
    }
    const option_def *opt = NULL;
    for (size_t k = 0; k < N_OPTIONS && opt == NULL; k++) {
        if (flag_matches_key(name, name_len, options[k].key))
            opt = &options[k];
    }
    if (opt == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "unknown option '--%.*s'",
                           (int)(name_len > 60 ? 60 : name_len), name);
    if (value == NULL && opt->type == OPT_BOOL)
        value = "true";
    if (value == NULL) {
        if (*i + 1 >= argc)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "option '--%.*s' needs a value",
                               (int)name_len, name);
        value = argv[++*i];
    }
    return apply_option(cfg, opt, value, diag);
}

vtpmca_err server_config_from_args(int argc, char *const argv[], server_config *cfg,
                                   server_config_action *action, vtpmca_diag *diag)
{
    if (argc < 0 || (argc > 0 && argv == NULL) || cfg == NULL || action == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "config: missing argument");
    *action = SERVER_CONFIG_RUN;
    vtpmca_err err = server_config_defaults(cfg);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "config: built-in defaults are invalid");

    /* First pass: --help/--version win over everything, and --config is read before the
     * other flags so that flags override the file wherever they appear. */
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *action = SERVER_CONFIG_HELP;
            return VTPMCA_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            *action = SERVER_CONFIG_VERSION;
            return VTPMCA_OK;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "option '--config' needs a value");
            config_file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_file = argv[i] + 9;
        }
    }
    if (config_file != NULL) {
        err = server_config_load_file(cfg, config_file, diag);
        if (err != VTPMCA_OK)
            return err;
    }
    for (int i = 1; i < argc; i++) {
        err = apply_flag(cfg, argc, argv, &i, diag);
        if (err != VTPMCA_OK)
            return err;
    }
    return server_config_finalize(cfg, diag);
}

static bool is_loopback(const char *addr, bool *is_ipv6)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, addr, &v4) == 1) {
        *is_ipv6 = false;
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, addr, &v6) == 1) {
        *is_ipv6 = true;
        if (IN6_IS_ADDR_LOOPBACK(&v6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
    }
    return false;
}

vtpmca_err server_config_finalize(server_config *cfg, vtpmca_diag *diag)
{
    if (cfg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "config: missing argument");
    struct in6_addr scratch;
    if (inet_pton(AF_INET, cfg->listen, &scratch) != 1 &&
        inet_pton(AF_INET6, cfg->listen, &scratch) != 1)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "listen: '%.60s' is not an IPv4 or IPv6 address",
                           cfg->listen);
    if ((cfg->tls_cert_file[0] == '\0') != (cfg->tls_key_file[0] == '\0'))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "tls_cert_file and tls_key_file must be set together");
    bool tls = cfg->tls_cert_file[0] != '\0';
    bool ipv6 = false;
    if (!is_loopback(cfg->listen, &ipv6) && !tls && !cfg->allow_remote_plain_http)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "listen: refusing non-loopback address %.60s without TLS; set "
                           "tls_cert_file and tls_key_file, or allow_remote_plain_http = true to "
                           "accept plain HTTP from the network",
                           cfg->listen);
    if (strcmp(cfg->kbs_key_curve, "p384") != 0 && strcmp(cfg->kbs_key_curve, "p256") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "kbs_key_curve: must be p384 or p256");
    if (strcmp(cfg->kbs_token_alg, "ES384") != 0 && strcmp(cfg->kbs_token_alg, "ES256") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "kbs_token_alg: must be ES384 or ES256");
    if (cfg->kds_url[0] != '\0' && strncmp(cfg->kds_url, "https://", 8) != 0 &&
        strncmp(cfg->kds_url, "http://", 7) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "kds_url: must start with https:// or http://");
    if (cfg->ca_base_url[0] != '\0' && strncmp(cfg->ca_base_url, "https://", 8) != 0 &&
        strncmp(cfg->ca_base_url, "http://", 7) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "ca_base_url: must start with https:// or http://");
    if (cfg->db[0] == '\0') {
        int n = snprintf(cfg->db, sizeof(cfg->db), "%s/vtpmca.db", cfg->state_dir);
        if (n < 0 || (size_t)n >= sizeof(cfg->db))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "db: state_dir is too long");
    }
    if (cfg->ca_dir[0] == '\0') {
        int n = snprintf(cfg->ca_dir, sizeof(cfg->ca_dir), "%s/ca", cfg->state_dir);
        if (n < 0 || (size_t)n >= sizeof(cfg->ca_dir))
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "ca_dir: state_dir is too long");
    }
    return VTPMCA_OK;
}

vtpmca_err server_config_write_help(FILE *out, const char *program)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    fprintf(out,
            "Usage: %s [--config FILE] [options]\n"
            "\n"
            "vtpmca daemon: verifies SEV-SNP evidence over HTTP.\n"
            "Options are read from FILE (`key = value` lines, '#' comments), then from flags;\n"
            "flags win. Each flag --some-name sets the file key some_name.\n"
            "\n"
            "  --config FILE                 configuration file, e.g. " SERVER_DEFAULT_CONFIG_PATH
            "\n"
            "                                (default: none)\n"
            "  --help                        show this help\n"
            "  --version                     show the version\n",
            program != NULL ? program : "vtpmcad");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char flag[64];
        size_t n = 0;
        for (const char *k = options[i].key; *k && n + 1 < sizeof(flag); k++)
            flag[n++] = *k == '_' ? '-' : *k;
        flag[n] = '\0';
        const char *arg = options[i].type == OPT_BOOL ? "" : " VALUE";
        char spec[96];
        snprintf(spec, sizeof(spec), "--%s%s", flag, arg);
        fprintf(out, "  %-29s %s\n", spec, options[i].help);
        fprintf(out, "  %-29s (key %s, default: %s)\n", "", options[i].key,
                options[i].default_value[0] != '\0' ? options[i].default_value : "none");
    }
    return ferror(out) ? VTPMCA_ERR_IO : VTPMCA_OK;
}
