/* Authentication of the admin API: short-lived JWTs (JWS compact serialization, RFC 7515 and
 * RFC 7519) signed by an admin's own key, alg EdDSA (Ed25519, RFC 8037) or ES256 (P-256,
 * raw r||s, RFC 7518 section 3.4). The daemon holds only public keys, each with a name (the
 * admin) and the highest role it grants; the CLI signs one fresh token per request.
 *
 * A token is accepted when: it has three base64url parts; its header names alg EdDSA or
 * ES256 (no "crit"; "typ", if present, is "JWT"; "kid", if present, equals "sub"); its
 * signature verifies with one of the keys named by "sub"; "aud" is (or contains)
 * ADMIN_TOKEN_AUDIENCE; "role" is "admin" or "auditor"; "iat" and "exp" are integers with
 * 0 < exp - iat <= ADMIN_TOKEN_MAX_LIFETIME_S, iat <= now + skew and now <= exp + skew
 * (skew ADMIN_TOKEN_CLOCK_SKEW_S; "nbf", if present, <= now + skew); and its "jti" was not
 * seen before from the same admin (jtis are remembered until exp + skew). */
#ifndef VTPMCA_ADMIN_AUTH_H
#define VTPMCA_ADMIN_AUTH_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vtpmca/err.h"

#define ADMIN_TOKEN_AUDIENCE "vtpmca-admin"
#define ADMIN_TOKEN_MAX_LIFETIME_S 300
#define ADMIN_TOKEN_CLOCK_SKEW_S 30
#define ADMIN_TOKEN_MAX_LEN 4096 /* longer tokens are refused unparsed */
/* Admin names: 1..56 chars of [A-Za-z0-9._-], so that "admin:<name>" fits the store's 63-byte
 * author field. */
#define ADMIN_NAME_MAX 56
#define ADMIN_JTI_MAX 128 /* jti: 1..128 printable ASCII characters */
/* Remembered jtis (one per accepted token still within its lifetime); beyond this, tokens
 * are refused with VTPMCA_ERR_LIMIT until older ones expire. */
#define ADMIN_REPLAY_CACHE_MAX 200000

/* Public admin keys on disk: <name>.pub.pem; the CLI's private key file is <name>.pem. */
#define ADMIN_PUBKEY_SUFFIX ".pub.pem"
/* Subdirectory of an admin keys directory whose keys grant the auditor role only. */
#define ADMIN_AUDITORS_SUBDIR "auditors"

typedef enum {
    ADMIN_ROLE_AUDITOR = 0, /* read-only */
    ADMIN_ROLE_ADMIN = 1,   /* read and write */
} admin_role;

/* "admin" / "auditor". */
const char *admin_role_name(admin_role role);
vtpmca_err admin_role_parse(const char *text, admin_role *out);

/* True for 1..ADMIN_NAME_MAX characters of [A-Za-z0-9._-]. */
bool admin_name_valid(const char *name);

/* ---- Verifying (the daemon) ---- */

typedef struct admin_auth admin_auth;

vtpmca_err admin_auth_new(admin_auth **out);
void admin_auth_free(admin_auth *auth);

/* Adds a public key (PEM SubjectPublicKeyInfo, Ed25519 or P-256) for admin `name` that
 * grants roles up to `granted`. One name may have several keys (rotation) but only one
 * granted role (else VTPMCA_ERR_CONFLICT). Not thread-safe: configure before verifying. */
vtpmca_err admin_auth_add_key_pem(admin_auth *auth, const char *name, admin_role granted,
                                  const char *pem, size_t pem_len, vtpmca_diag *diag);

/* Adds the key in `path`, named by the file name without ADMIN_PUBKEY_SUFFIX (which the
 * file name must end with). */
vtpmca_err admin_auth_add_key_file(admin_auth *auth, const char *path, admin_role granted,
                                   vtpmca_diag *diag);

/* Adds every DIR/<name>.pub.pem (role admin) and DIR/auditors/<name>.pub.pem (role auditor;
 * the subdirectory is optional). Other files are ignored. Because whoever can write these
 * files controls the admin API, a directory or key file writable by group or others is
 * refused (VTPMCA_ERR_POLICY). */
vtpmca_err admin_auth_add_dir(admin_auth *auth, const char *dir, vtpmca_diag *diag);

/* Number of keys configured. */
size_t admin_auth_key_count(const admin_auth *auth);

/* Who made a request, from a verified token. */
typedef struct {
    char name[ADMIN_NAME_MAX + 1];
    admin_role role;    /* the role the token asks for */
    admin_role granted; /* the highest role of the key that signed it */
    int64_t issued_at;
    int64_t expires_at;
} admin_identity;

/* Verifies a token (the text after "Bearer ") at time `now` and records its jti. Errors:
 * PARSE malformed token or claims; UNSUPPORTED alg other than EdDSA/ES256, or "crit";
 * NOT_FOUND unknown admin; CRYPTO wrong signature, key type or kid; POLICY wrong audience,
 * expired, not yet valid, lifetime too long; CONFLICT replayed jti; LIMIT replay cache full.
 * The diag never contains the token. Thread-safe. */
vtpmca_err admin_auth_verify(admin_auth *auth, const char *token, time_t now, admin_identity *out,
                             vtpmca_diag *diag);

/* Extracts the token of an `Authorization: Bearer <token>` header value (scheme
 * case-insensitive). NULL or another scheme is VTPMCA_ERR_NOT_FOUND; *token points into
 * `header` and *token_len is its length. */
vtpmca_err admin_bearer_token(const char *header, const char **token, size_t *token_len);

/* Authorizes an action: the token's role must not exceed the key's grant, and writes need
 * the admin role. VTPMCA_ERR_POLICY (with a diag saying which rule) when refused. */
vtpmca_err admin_authorize(const admin_identity *who, bool write, vtpmca_diag *diag);

/* ---- Keys and signing (the CLI and tests) ---- */

typedef enum {
    ADMIN_KEY_ED25519 = 0, /* alg EdDSA */
    ADMIN_KEY_P256,        /* alg ES256 */
} admin_key_type;

/* "ed25519" / "p256" (also "es256", "p-256"). */
vtpmca_err admin_key_type_parse(const char *text, admin_key_type *out);

vtpmca_err admin_key_generate(admin_key_type type, EVP_PKEY **out, vtpmca_diag *diag);

/* PEM of the private key (PKCS#8, unencrypted) or of the public key (SubjectPublicKeyInfo);
 * *pem is malloc'd and NUL-terminated (the private one should be freed with
 * OPENSSL_clear_free(*pem, *len)). */
vtpmca_err admin_key_to_pem(EVP_PKEY *key, bool private_part, char **pem, size_t *len,
                            vtpmca_diag *diag);

/* Loads a private admin key (PEM, Ed25519 or P-256). Like ssh, a file readable or writable
 * by group or others is refused (VTPMCA_ERR_POLICY). */
vtpmca_err admin_key_load_private(const char *path, EVP_PKEY **out, vtpmca_diag *diag);

/* The JWS alg for a key: "EdDSA", "ES256", or NULL for other keys. */
const char *admin_key_alg(const EVP_PKEY *key);

/* Signs arbitrary claims (a JSON object) with header {"alg", "typ": "JWT", "kid"} (kid
 * omitted when NULL). *token is malloc'd. For tests and tools that need unusual claims. */
vtpmca_err admin_token_sign_claims(EVP_PKEY *key, const char *kid, const json_t *claims,
                                   char **token, vtpmca_diag *diag);

/* Signs a fresh token for `name` asking for `role`: iat = now, exp = now + lifetime_s
 * (1..ADMIN_TOKEN_MAX_LIFETIME_S), aud ADMIN_TOKEN_AUDIENCE, a random 128-bit jti, kid =
 * name. *token is malloc'd. */
vtpmca_err admin_token_sign(EVP_PKEY *key, const char *name, admin_role role, time_t now,
                            unsigned lifetime_s, char **token, vtpmca_diag *diag);

#endif
