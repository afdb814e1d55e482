/* Admin API tokens: JWS compact (EdDSA / ES256) verification with a replay cache, and the
 * signing side used by the CLI. All cryptography is OpenSSL's; JSON is jansson's. */
#include "vtpmca/admin_auth.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vtpmca/encoding.h"
#include "vtpmca/jws.h"
#include "vtpmca/fileio.h"

#define PUBKEY_FILE_MAX (64u * 1024u)
#define PRIVATE_KEY_FILE_MAX (64u * 1024u)
#define ED25519_SIG_LEN 64
#define ES256_SIG_LEN 64
#define REPLAY_BUCKETS 4096

typedef struct {
    char name[ADMIN_NAME_MAX + 1];
    admin_role granted;
    EVP_PKEY *key;
    const char *alg; /* "EdDSA" or "ES256" */
} admin_key;

/* One remembered token id: name '\0' jti '\0', kept until the token could no longer be
 * accepted anyway. */
typedef struct seen_jti {
    struct seen_jti *next;
    int64_t forget_after;
    size_t id_len;
    char id[];
} seen_jti;

struct admin_auth {
    admin_key *keys;
    size_t n_keys, cap_keys;
    pthread_mutex_t lock; /* guards the replay cache */
    seen_jti *buckets[REPLAY_BUCKETS];
    size_t n_seen;
};

/* ---- Names and roles ---- */

const char *admin_role_name(admin_role role)
{
    return role == ADMIN_ROLE_ADMIN ? "admin" : "auditor";
}

vtpmca_err admin_role_parse(const char *text, admin_role *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcmp(text, "admin") == 0)
        *out = ADMIN_ROLE_ADMIN;
    else if (strcmp(text, "auditor") == 0)
        *out = ADMIN_ROLE_AUDITOR;
    else
        return VTPMCA_ERR_PARSE;
    return VTPMCA_OK;
}

bool admin_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > ADMIN_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- Keys ---- */

/* The JWS alg a key can sign for; NULL for keys we do not accept. */
const char *admin_key_alg(const EVP_PKEY *key)
{
    if (key == NULL)
        return NULL;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return "EdDSA";
    char group[32];
    size_t group_len = 0;
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) == 1 &&
        strcmp(group, "prime256v1") == 0)
        return "ES256";
    return NULL;
}

vtpmca_err admin_key_type_parse(const char *text, admin_key_type *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (strcasecmp(text, "ed25519") == 0 || strcasecmp(text, "eddsa") == 0)
        *out = ADMIN_KEY_ED25519;
    else if (strcasecmp(text, "p256") == 0 || strcasecmp(text, "p-256") == 0 ||
             strcasecmp(text, "es256") == 0)
        *out = ADMIN_KEY_P256;
    else
        return VTPMCA_ERR_PARSE;
    return VTPMCA_OK;
}

vtpmca_err admin_key_generate(admin_key_type type, EVP_PKEY **out, vtpmca_diag *diag)
{
    if (out == NULL || (type != ADMIN_KEY_ED25519 && type != ADMIN_KEY_P256))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin key: bad arguments");
    EVP_PKEY *key = type == ADMIN_KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                              : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL) {
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "admin key: key generation failed");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    *out = key;
    return VTPMCA_OK;
}

vtpmca_err admin_key_to_pem(EVP_PKEY *key, bool private_part, char **pem, size_t *len,
                            vtpmca_diag *diag)
{
    if (key == NULL || pem == NULL || len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin key: missing argument");
    if (admin_key_alg(key) == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "admin key: not Ed25519 or P-256");
    /* A secure-memory BIO is wiped when freed: the private PEM leaves no copy behind. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "admin key: out of memory");
    int ok = private_part ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, key);
    char *data = NULL;
    long data_len = ok == 1 ? BIO_get_mem_data(bio, &data) : 0;
    if (data_len <= 0) {
        BIO_free(bio);
        vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "admin key: cannot encode PEM");
        vtpmca_diag_append_openssl(diag);
        return VTPMCA_ERR_CRYPTO;
    }
    char *copy = OPENSSL_malloc((size_t)data_len + 1);
    if (copy == NULL) {
        BIO_free(bio);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "admin key: out of memory");
    }
    memcpy(copy, data, (size_t)data_len);
    copy[data_len] = '\0';
    BIO_free(bio);
    *pem = copy;
    *len = (size_t)data_len;
    return VTPMCA_OK;
}

/* Encrypted keys are not supported: refuse instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *user)
{
    (void)buf, (void)size, (void)rwflag, (void)user;
    return -1;
}

vtpmca_err admin_key_load_private(const char *path, EVP_PKEY **out, vtpmca_diag *diag)
{
    if (path == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin key: missing argument");
    /* One descriptor for the mode check and the read, so both concern the same file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot open admin key %s: %s", path,
                           strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "admin key %s is not a regular file", path);
    }
    if ((sb.st_mode & 077) != 0) {
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "admin key %s has mode 0%03o; a private key must not be accessible "
                           "to group or others (chmod 600)",
                           path, (unsigned)(sb.st_mode & 0777));
    }
    if (sb.st_size <= 0 || (uint64_t)sb.st_size > PRIVATE_KEY_FILE_MAX) {
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "admin key %s: unexpected size %lld", path,
                           (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    unsigned char *buf = OPENSSL_malloc(size);
    if (buf == NULL) {
        close(fd);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    EVP_PKEY *key = NULL;
    BIO *bio = got == size ? BIO_new_mem_buf(buf, (int)size) : NULL;
    if (bio != NULL)
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    OPENSSL_clear_free(buf, size);
    if (key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "admin key %s: not an unencrypted PEM private key", path);
    if (admin_key_alg(key) == NULL) {
        EVP_PKEY_free(key);
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "admin key %s: must be Ed25519 or P-256 (ECDSA)", path);
    }
    *out = key;
    return VTPMCA_OK;
}

/* ---- The key set ---- */

vtpmca_err admin_auth_new(admin_auth **out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    admin_auth *auth = calloc(1, sizeof(*auth));
    if (auth == NULL)
        return VTPMCA_ERR_NOMEM;
    if (pthread_mutex_init(&auth->lock, NULL) != 0) {
        free(auth);
        return VTPMCA_ERR_INTERNAL;
    }
    *out = auth;
    return VTPMCA_OK;
}

void admin_auth_free(admin_auth *auth)
{
    if (auth == NULL)
        return;
    for (size_t i = 0; i < auth->n_keys; i++)
        EVP_PKEY_free(auth->keys[i].key);
    free(auth->keys);
    for (size_t b = 0; b < REPLAY_BUCKETS; b++) {
        seen_jti *e = auth->buckets[b];
        while (e != NULL) {
            seen_jti *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&auth->lock);
    free(auth);
}

size_t admin_auth_key_count(const admin_auth *auth)
{
    return auth != NULL ? auth->n_keys : 0;
}

vtpmca_err admin_auth_add_key_pem(admin_auth *auth, const char *name, admin_role granted,
                                  const char *pem, size_t pem_len, vtpmca_diag *diag)
{
    if (auth == NULL || name == NULL || pem == NULL || pem_len == 0 || pem_len > INT32_MAX ||
        (granted != ADMIN_ROLE_ADMIN && granted != ADMIN_ROLE_AUDITOR))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin key: bad arguments");
    if (!admin_name_valid(name))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "admin name '%.64s' must be 1 to %d characters of [A-Za-z0-9._-]", name,
                           ADMIN_NAME_MAX);
    for (size_t i = 0; i < auth->n_keys; i++) {
        if (strcmp(auth->keys[i].name, name) == 0 && auth->keys[i].granted != granted)
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "admin '%s' has keys with different roles (%s and %s)", name,
                               admin_role_name(auth->keys[i].granted), admin_role_name(granted));
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "admin '%s': not a PEM public key", name);
    const char *alg = admin_key_alg(key);
    if (alg == NULL) {
        EVP_PKEY_free(key);
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "admin '%s': key must be Ed25519 or P-256 (ECDSA)", name);
    }
    if (auth->n_keys == auth->cap_keys) {
        size_t cap = auth->cap_keys ? auth->cap_keys * 2 : 8;
        admin_key *bigger = realloc(auth->keys, cap * sizeof(*bigger));
        if (bigger == NULL) {
            EVP_PKEY_free(key);
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        }
        auth->keys = bigger;
        auth->cap_keys = cap;
    }
    admin_key *slot = &auth->keys[auth->n_keys++];
    memset(slot, 0, sizeof(*slot));
    snprintf(slot->name, sizeof(slot->name), "%s", name);
    slot->granted = granted;
    slot->key = key;
    slot->alg = alg;
    return VTPMCA_OK;
}

/* Whoever can replace a key file or add one to the directory controls the admin API. */
static vtpmca_err check_not_writable_by_others(const char *path, const struct stat *sb,
                                               vtpmca_diag *diag)
{
    if ((sb->st_mode & 022) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "%s has mode 0%03o; admin keys and their directory must not be "
                           "writable by group or others",
                           path, (unsigned)(sb->st_mode & 0777));
    return VTPMCA_OK;
}

static bool has_pubkey_suffix(const char *file_name)
{
    size_t len = strlen(file_name), suffix = strlen(ADMIN_PUBKEY_SUFFIX);
    return len > suffix && strcmp(file_name + len - suffix, ADMIN_PUBKEY_SUFFIX) == 0;
}

vtpmca_err admin_auth_add_key_file(admin_auth *auth, const char *path, admin_role granted,
                                   vtpmca_diag *diag)
{
    if (auth == NULL || path == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin key: missing argument");
    const char *slash = strrchr(path, '/');
    const char *file_name = slash != NULL ? slash + 1 : path;
    if (!has_pubkey_suffix(file_name))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "admin key %s: the file name must be NAME" ADMIN_PUBKEY_SUFFIX, path);
    char name[ADMIN_NAME_MAX + 2];
    size_t name_len = strlen(file_name) - strlen(ADMIN_PUBKEY_SUFFIX);
    if (name_len >= sizeof(name))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "admin key %s: the name is too long", path);
    memcpy(name, file_name, name_len);
    name[name_len] = '\0';
    struct stat sb;
    if (stat(path, &sb) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot stat admin key %s: %s", path,
                           strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "admin key %s is not a regular file", path);
    vtpmca_err err = check_not_writable_by_others(path, &sb, diag);
    if (err != VTPMCA_OK)
        return err;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    err = vt_file_read(path, PUBKEY_FILE_MAX, &pem, &pem_len, diag);
    if (err != VTPMCA_OK)
        return err;
    vtpmca_diag inner = {{0}};
    err = pem_len > 0
              ? admin_auth_add_key_pem(auth, name, granted, (const char *)pem, pem_len, &inner)
              : vtpmca_fail(&inner, VTPMCA_ERR_PARSE, "empty file");
    free(pem);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%.100s: %.140s", path, inner.msg);
    return VTPMCA_OK;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every *.pub.pem of one directory, in name order (stable messages). A missing
 * directory is fine only when `optional`. */
static vtpmca_err add_key_dir(admin_auth *auth, const char *dir, admin_role granted, bool optional,
                              vtpmca_diag *diag)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (optional && errno == ENOENT)
            return VTPMCA_OK;
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "admin keys directory %s: %s", dir,
                           strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "admin keys directory %s is not a directory", dir);
    vtpmca_err err = check_not_writable_by_others(dir, &sb, diag);
    if (err != VTPMCA_OK)
        return err;
    DIR *d = opendir(dir);
    if (d == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot read %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *entry;
    while (err == VTPMCA_OK && (entry = readdir(d)) != NULL) {
        if (!has_pubkey_suffix(entry->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **bigger = realloc(names, cap * sizeof(*bigger));
            if (bigger == NULL) {
                err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
                break;
            }
            names = bigger;
        }
        names[n] = strdup(entry->d_name);
        if (names[n] == NULL)
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), compare_strings);
    for (size_t i = 0; i < n && err == VTPMCA_OK; i++) {
        char path[4096];
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (len < 0 || (size_t)len >= sizeof(path))
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "admin key path is too long in %s", dir);
        else
            err = admin_auth_add_key_file(auth, path, granted, diag);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return err;
}

vtpmca_err admin_auth_add_dir(admin_auth *auth, const char *dir, vtpmca_diag *diag)
{
    if (auth == NULL || dir == NULL || dir[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin keys: missing directory");
    vtpmca_err err = add_key_dir(auth, dir, ADMIN_ROLE_ADMIN, false, diag);
    if (err != VTPMCA_OK)
        return err;
    char auditors[4096];
    int len = snprintf(auditors, sizeof(auditors), "%s/" ADMIN_AUDITORS_SUBDIR, dir);
    if (len < 0 || (size_t)len >= sizeof(auditors))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "admin keys directory path is too long");
    return add_key_dir(auth, auditors, ADMIN_ROLE_AUDITOR, true, diag);
}

/* ---- Token parsing ---- */

/* Decodes one base64url part (no padding, as JWS requires) as a JSON object. */
static vtpmca_err decode_json_part(const char *part, size_t len, const char *what, json_t **out,
                                   vtpmca_diag *diag)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (memchr(part, '=', len) != NULL ||
        vt_b64_decode_alloc(part, len, VT_B64_URL_NOPAD, &raw, &raw_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token %s is not base64url", what);
    json_error_t jerr;
    json_t *value = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (value == NULL || !json_is_object(value)) {
        json_decref(value);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token %s is not a JSON object", what);
    }
    *out = value;
    return VTPMCA_OK;
}

static vtpmca_err check_header(const json_t *header, const char **alg_out, const char **kid_out,
                               vtpmca_diag *diag)
{
    const json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token header has no alg");
    const char *name = json_string_value(alg);
    if (strcmp(name, "EdDSA") != 0 && strcmp(name, "ES256") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "token alg '%.20s' is not accepted (EdDSA or ES256 only)", name);
    /* We understand no extension, so any critical one makes the token unusable (RFC 7515
     * section 4.1.11). */
    if (json_object_get(header, "crit") != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "token header has crit");
    const json_t *typ = json_object_get(header, "typ");
    if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token typ must be JWT");
    const json_t *kid = json_object_get(header, "kid");
    if (kid != NULL && !json_is_string(kid))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token kid must be a string");
    *alg_out = name;
    *kid_out = kid != NULL ? json_string_value(kid) : NULL;
    return VTPMCA_OK;
}

typedef struct {
    const char *sub;
    const char *jti;
    admin_role role;
    int64_t iat, exp, nbf;
    bool has_nbf;
} token_claims;

static bool claim_int(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *value = json_object_get(claims, name);
    if (!json_is_integer(value))
        return false;
    *out = (int64_t)json_integer_value(value);
    return true;
}

static bool audience_matches(const json_t *aud)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), ADMIN_TOKEN_AUDIENCE) == 0;
    size_t i;
    const json_t *item;
    json_array_foreach(aud, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), ADMIN_TOKEN_AUDIENCE) == 0)
            return true;
    }
    return false;
}

static bool jti_valid(const char *jti)
{
    size_t len = strlen(jti);
    if (len == 0 || len > ADMIN_JTI_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (jti[i] < 0x21 || jti[i] > 0x7e)
            return false;
    }
    return true;
}

/* Shape of the claims (types and formats); their meaning is checked after the signature. */
static vtpmca_err read_claims(const json_t *claims, token_claims *out, vtpmca_diag *diag)
{
    const json_t *sub = json_object_get(claims, "sub");
    if (!json_is_string(sub) || !admin_name_valid(json_string_value(sub)))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "token sub must be an admin name (1 to %d of [A-Za-z0-9._-])",
                           ADMIN_NAME_MAX);
    const json_t *role = json_object_get(claims, "role");
    if (!json_is_string(role) || admin_role_parse(json_string_value(role), &out->role) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token role must be admin or auditor");
    if (!claim_int(claims, "iat", &out->iat) || !claim_int(claims, "exp", &out->exp))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token iat and exp must be integers");
    out->has_nbf = json_object_get(claims, "nbf") != NULL;
    if (out->has_nbf && !claim_int(claims, "nbf", &out->nbf))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token nbf must be an integer");
    const json_t *jti = json_object_get(claims, "jti");
    if (!json_is_string(jti) || !jti_valid(json_string_value(jti)))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token jti must be 1 to %d printable characters",
                           ADMIN_JTI_MAX);
    const json_t *aud = json_object_get(claims, "aud");
    if (!json_is_string(aud) && !json_is_array(aud))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token aud is missing");
    out->sub = json_string_value(sub);
    out->jti = json_string_value(jti);
    return VTPMCA_OK;
}

static vtpmca_err check_claims(const json_t *claims, const token_claims *c, time_t now,
                               vtpmca_diag *diag)
{
    if (!audience_matches(json_object_get(claims, "aud")))
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token audience is not " ADMIN_TOKEN_AUDIENCE);
    int64_t t = (int64_t)now;
    if (c->iat < 0 || c->exp <= c->iat)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token exp must be after iat");
    if (c->exp - c->iat > ADMIN_TOKEN_MAX_LIFETIME_S)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token lifetime %lld s exceeds %d s",
                           (long long)(c->exp - c->iat), ADMIN_TOKEN_MAX_LIFETIME_S);
    if (t > c->exp + ADMIN_TOKEN_CLOCK_SKEW_S)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token expired %lld s ago",
                           (long long)(t - c->exp));
    if (c->iat > t + ADMIN_TOKEN_CLOCK_SKEW_S)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "token issued %lld s in the future (check the clocks)",
                           (long long)(c->iat - t));
    if (c->has_nbf && c->nbf > t + ADMIN_TOKEN_CLOCK_SKEW_S)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token not valid before %lld s from now",
                           (long long)(c->nbf - t));
    return VTPMCA_OK;
}

/* ---- Signatures ---- */

static bool signature_verifies(const admin_key *key, const uint8_t *sig, size_t sig_len,
                               const char *signed_part, size_t signed_len)
{
    if (strcmp(key->alg, "ES256") == 0)
        return jws_es_verify(key->key, (const uint8_t *)signed_part, signed_len, sig, sig_len,
                             NULL) == VTPMCA_OK;
    if (sig_len != ED25519_SIG_LEN)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->key) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* Tries the keys of admin `name` that fit `alg`; the matching key's grant goes to *granted. */
static vtpmca_err verify_signature(const admin_auth *auth, const char *name, const char *alg,
                                   const uint8_t *sig, size_t sig_len, const char *signed_part,
                                   size_t signed_len, admin_role *granted, vtpmca_diag *diag)
{
    bool known = false, alg_fits = false;
    for (size_t i = 0; i < auth->n_keys; i++) {
        const admin_key *key = &auth->keys[i];
        if (strcmp(key->name, name) != 0)
            continue;
        known = true;
        if (strcmp(key->alg, alg) != 0)
            continue;
        alg_fits = true;
        if (signature_verifies(key, sig, sig_len, signed_part, signed_len)) {
            *granted = key->granted;
            return VTPMCA_OK;
        }
    }
    ERR_clear_error(); /* failed verifications leave errors on this thread's queue */
    if (!known)
        return vtpmca_fail(diag, VTPMCA_ERR_NOT_FOUND, "unknown admin '%s'", name);
    if (!alg_fits)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "admin '%s' has no %s key", name, alg);
    return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                       "token signature does not verify with a key of '%s'", name);
}

/* ---- Replay cache ---- */

static uint64_t fnv1a(const char *data, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Drops every entry that can no longer matter; called with the lock held. */
static void sweep_expired(admin_auth *auth, int64_t now)
{
    for (size_t b = 0; b < REPLAY_BUCKETS; b++) {
        seen_jti **link = &auth->buckets[b];
        while (*link != NULL) {
            seen_jti *e = *link;
            if (e->forget_after < now) {
                *link = e->next;
                free(e);
                auth->n_seen--;
            } else {
                link = &e->next;
            }
        }
    }
}

static vtpmca_err remember_jti(admin_auth *auth, const char *name, const char *jti,
                               int64_t forget_after, int64_t now, vtpmca_diag *diag)
{
    size_t name_len = strlen(name), jti_len = strlen(jti);
    size_t id_len = name_len + 1 + jti_len + 1;
    seen_jti *fresh = malloc(sizeof(*fresh) + id_len);
    if (fresh == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    memcpy(fresh->id, name, name_len + 1);
    memcpy(fresh->id + name_len + 1, jti, jti_len + 1);
    fresh->id_len = id_len;
    fresh->forget_after = forget_after;
    size_t bucket = (size_t)(fnv1a(fresh->id, id_len) % REPLAY_BUCKETS);

    pthread_mutex_lock(&auth->lock);
    seen_jti **link = &auth->buckets[bucket];
    while (*link != NULL) {
        seen_jti *e = *link;
        if (e->forget_after < now) { /* tidy the bucket on the way */
            *link = e->next;
            free(e);
            auth->n_seen--;
            continue;
        }
        if (e->id_len == id_len && memcmp(e->id, fresh->id, id_len) == 0) {
            pthread_mutex_unlock(&auth->lock);
            free(fresh);
            return vtpmca_fail(diag, VTPMCA_ERR_CONFLICT,
                               "token replayed: its jti was already used by '%s'", name);
        }
        link = &e->next;
    }
    if (auth->n_seen >= ADMIN_REPLAY_CACHE_MAX)
        sweep_expired(auth, now);
    if (auth->n_seen >= ADMIN_REPLAY_CACHE_MAX) {
        pthread_mutex_unlock(&auth->lock);
        free(fresh);
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT,
                           "too many recent admin tokens (%d); retry when older ones expire",
                           ADMIN_REPLAY_CACHE_MAX);
    }
    fresh->next = auth->buckets[bucket];
    auth->buckets[bucket] = fresh;
    auth->n_seen++;
    pthread_mutex_unlock(&auth->lock);
    return VTPMCA_OK;
}

/* ---- Verification ---- */

vtpmca_err admin_auth_verify(admin_auth *auth, const char *token, time_t now, admin_identity *out,
                             vtpmca_diag *diag)
{
    if (auth == NULL || token == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin auth: missing argument");
    size_t len = strnlen(token, ADMIN_TOKEN_MAX_LEN + 1);
    if (len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty token");
    if (len > ADMIN_TOKEN_MAX_LEN)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token longer than %d bytes",
                           ADMIN_TOKEN_MAX_LEN);
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 =
        dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token is not three base64url parts (JWS)");
    size_t header_len = (size_t)(dot1 - token), payload_len = (size_t)(dot2 - dot1 - 1);
    size_t sig_text_len = len - (size_t)(dot2 + 1 - token);
    if (header_len == 0 || payload_len == 0 || sig_text_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token has an empty part");

    json_t *header = NULL, *claims = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    const char *alg = NULL, *kid = NULL;
    token_claims c;
    memset(&c, 0, sizeof(c));
    admin_role granted = ADMIN_ROLE_AUDITOR;
    vtpmca_err err = decode_json_part(token, header_len, "header", &header, diag);
    if (err == VTPMCA_OK)
        err = check_header(header, &alg, &kid, diag);
    if (err == VTPMCA_OK)
        err = decode_json_part(dot1 + 1, payload_len, "claims", &claims, diag);
    if (err == VTPMCA_OK)
        err = read_claims(claims, &c, diag);
    if (err == VTPMCA_OK && kid != NULL && strcmp(kid, c.sub) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "token kid does not name its subject");
    if (err == VTPMCA_OK && (memchr(dot2 + 1, '=', sig_text_len) != NULL ||
                             vt_b64_decode_alloc(dot2 + 1, sig_text_len, VT_B64_URL_NOPAD, &sig,
                                                 &sig_len) != VTPMCA_OK))
        err = vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token signature is not base64url");
    if (err == VTPMCA_OK)
        err = verify_signature(auth, c.sub, alg, sig, sig_len, token, (size_t)(dot2 - token),
                               &granted, diag);
    if (err == VTPMCA_OK)
        err = check_claims(claims, &c, now, diag);
    if (err == VTPMCA_OK)
        err =
            remember_jti(auth, c.sub, c.jti, c.exp + ADMIN_TOKEN_CLOCK_SKEW_S, (int64_t)now, diag);
    if (err == VTPMCA_OK) {
        memset(out, 0, sizeof(*out));
        snprintf(out->name, sizeof(out->name), "%s", c.sub);
        out->role = c.role;
        out->granted = granted;
        out->issued_at = c.iat;
        out->expires_at = c.exp;
    }
    free(sig);
    json_decref(claims);
    json_decref(header);
    return err;
}

vtpmca_err admin_bearer_token(const char *header, const char **token, size_t *token_len)
{
    if (token == NULL || token_len == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    if (header == NULL)
        return VTPMCA_ERR_NOT_FOUND;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return VTPMCA_ERR_NOT_FOUND;
    const char *start = header + 6;
    while (*start == ' ' || *start == '\t')
        start++;
    size_t len = strlen(start);
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len == 0)
        return VTPMCA_ERR_NOT_FOUND;
    *token = start;
    *token_len = len;
    return VTPMCA_OK;
}

vtpmca_err admin_authorize(const admin_identity *who, bool write, vtpmca_diag *diag)
{
    if (who == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin auth: missing identity");
    if (who->role > who->granted)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY,
                           "'%s' holds an %s key and cannot act with role %s", who->name,
                           admin_role_name(who->granted), admin_role_name(who->role));
    if (write && who->role != ADMIN_ROLE_ADMIN)
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "role %s is read-only; this needs role admin",
                           admin_role_name(who->role));
    return VTPMCA_OK;
}

/* ---- Signing ---- */

/* Signs `input` with the key: Ed25519 directly, ES256 as JWS r||s. */
static vtpmca_err sign_raw(EVP_PKEY *key, bool es256, const char *input, size_t input_len,
                           uint8_t sig[64])
{
    if (es256) {
        uint8_t raw[JWS_ES_SIG_MAX];
        size_t raw_len = 0;
        vtpmca_err err = jws_es_sign(key, (const uint8_t *)input, input_len, raw, &raw_len, NULL);
        if (err == VTPMCA_OK && raw_len != ES256_SIG_LEN)
            err = VTPMCA_ERR_CRYPTO;
        if (err == VTPMCA_OK)
            memcpy(sig, raw, ES256_SIG_LEN);
        return err;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return VTPMCA_ERR_NOMEM;
    size_t sig_len = ED25519_SIG_LEN;
    vtpmca_err err =
        EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input, input_len) == 1
            ? VTPMCA_OK
            : VTPMCA_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    return err;
}

vtpmca_err admin_token_sign_claims(EVP_PKEY *key, const char *kid, const json_t *claims,
                                   char **token, vtpmca_diag *diag)
{
    if (key == NULL || !json_is_object(claims) || token == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin token: bad arguments");
    const char *alg = admin_key_alg(key);
    if (alg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "admin token: the key must be Ed25519 or P-256");
    json_t *header = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    if (header != NULL && kid != NULL &&
        json_object_set_new(header, "kid", json_string(kid)) != 0) {
        json_decref(header);
        header = NULL;
    }
    if (header == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "admin token: out of memory");
    char *header_b64 = NULL, *claims_b64 = NULL, *sig_b64 = NULL, *input = NULL;
    vtpmca_err err = jws_b64url_json(header, &header_b64);
    json_decref(header);
    if (err == VTPMCA_OK)
        err = jws_b64url_json(claims, &claims_b64);
    size_t input_len = 0;
    if (err == VTPMCA_OK) {
        input_len = strlen(header_b64) + 1 + strlen(claims_b64);
        input = malloc(input_len + 1);
        if (input == NULL)
            err = VTPMCA_ERR_NOMEM;
        else
            snprintf(input, input_len + 1, "%s.%s", header_b64, claims_b64);
    }
    uint8_t sig[64];
    if (err == VTPMCA_OK)
        err = sign_raw(key, strcmp(alg, "ES256") == 0, input, input_len, sig);
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(sig, sizeof(sig), VT_B64_URL_NOPAD, &sig_b64);
    if (err == VTPMCA_OK) {
        size_t total = input_len + 1 + strlen(sig_b64) + 1;
        char *out = malloc(total);
        if (out == NULL) {
            err = VTPMCA_ERR_NOMEM;
        } else {
            snprintf(out, total, "%s.%s", input, sig_b64);
            *token = out;
        }
    }
    free(header_b64);
    free(claims_b64);
    free(sig_b64);
    free(input);
    if (err == VTPMCA_ERR_CRYPTO) {
        vtpmca_fail(diag, err, "admin token: signing failed");
        vtpmca_diag_append_openssl(diag);
    } else if (err != VTPMCA_OK) {
        vtpmca_fail(diag, err, "admin token: cannot encode");
    }
    return err;
}

vtpmca_err admin_token_sign(EVP_PKEY *key, const char *name, admin_role role, time_t now,
                            unsigned lifetime_s, char **token, vtpmca_diag *diag)
{
    if (key == NULL || token == NULL || lifetime_s == 0 ||
        lifetime_s > ADMIN_TOKEN_MAX_LIFETIME_S ||
        (role != ADMIN_ROLE_ADMIN && role != ADMIN_ROLE_AUDITOR))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "admin token: bad arguments");
    if (!admin_name_valid(name))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG,
                           "admin name must be 1 to %d characters of [A-Za-z0-9._-]",
                           ADMIN_NAME_MAX);
    uint8_t nonce[16];
    char jti[2 * sizeof(nonce) + 1];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1 ||
        vt_hex_encode(nonce, sizeof(nonce), jti, sizeof(jti)) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "admin token: no randomness");
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "sub", name, "role", admin_role_name(role),
                  "aud", ADMIN_TOKEN_AUDIENCE, "iat", (json_int_t)now, "exp",
                  (json_int_t)now + (json_int_t)lifetime_s, "jti", jti);
    if (claims == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "admin token: out of memory");
    vtpmca_err err = admin_token_sign_claims(key, name, claims, token, diag);
    json_decref(claims);
    return err;
}
