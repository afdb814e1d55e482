/* Unit tests for server/admin_auth.c: admin API tokens (JWS compact, EdDSA and ES256) with
 * real OpenSSL keys. Accepted tokens, every refusal (structure, alg, key, claims, time,
 * replay, role), key files and directories, and cross-checks with the openssl command line:
 * tokens whose signature the openssl CLI made verify, and ours verify with the openssl CLI.
 * Also the daemon's configuration keys for admin keys and TLS. */
#define _XOPEN_SOURCE 700 /* POSIX (mkdtemp, strdup, ...) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ca_fixture.h"
#include "vtpmca/admin_auth.h"
#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"
#include "vtpmca/server_config.h"

/* Keys made once per run. alice (Ed25519) and bob (P-256) are admins, audrey (Ed25519) an
 * auditor; eve's key is known to nobody. */
static struct {
    char dir[64];
    EVP_PKEY *alice, *bob, *audrey, *eve, *rsa;
    admin_auth *auth;
    time_t now;
    unsigned jti_counter;
} fx;

static char *public_pem(EVP_PKEY *key)
{
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(admin_key_to_pem(key, false, &pem, &len, NULL), VTPMCA_OK);
    return pem;
}

static void add_key(admin_auth *auth, const char *name, admin_role role, EVP_PKEY *key)
{
    char *pem = public_pem(key);
    vtpmca_diag diag = {{0}};
    vtpmca_err err = admin_auth_add_key_pem(auth, name, role, pem, strlen(pem), &diag);
    OPENSSL_free(pem);
    if (err != VTPMCA_OK)
        fail_msg("add_key(%s): %s", name, diag.msg);
}

static admin_auth *standard_auth(void)
{
    admin_auth *auth = NULL;
    assert_int_equal(admin_auth_new(&auth), VTPMCA_OK);
    add_key(auth, "alice", ADMIN_ROLE_ADMIN, fx.alice);
    add_key(auth, "bob", ADMIN_ROLE_ADMIN, fx.bob);
    add_key(auth, "audrey", ADMIN_ROLE_AUDITOR, fx.audrey);
    return auth;
}

static int group_setup(void **state)
{
    (void)state;
    if (ca_fixture_tmpdir(fx.dir, sizeof(fx.dir), "admin-auth") != 0)
        return -1;
    if (admin_key_generate(ADMIN_KEY_ED25519, &fx.alice, NULL) != VTPMCA_OK ||
        admin_key_generate(ADMIN_KEY_P256, &fx.bob, NULL) != VTPMCA_OK ||
        admin_key_generate(ADMIN_KEY_ED25519, &fx.audrey, NULL) != VTPMCA_OK ||
        admin_key_generate(ADMIN_KEY_ED25519, &fx.eve, NULL) != VTPMCA_OK)
        return -1;
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return fx.rsa != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(fx.alice);
    EVP_PKEY_free(fx.bob);
    EVP_PKEY_free(fx.audrey);
    EVP_PKEY_free(fx.eve);
    EVP_PKEY_free(fx.rsa);
    return ca_fixture_rmtree(fx.dir);
}

/* Each test gets a fresh key set (so a fresh replay cache) and a fixed "now". */
static int test_setup(void **state)
{
    (void)state;
    fx.auth = standard_auth();
    fx.now = time(NULL);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    admin_auth_free(fx.auth);
    fx.auth = NULL;
    return 0;
}

/* Claims valid at fx.now for `sub`, each test changes what it needs. */
static json_t *claims_for(const char *sub, const char *role)
{
    char jti[32];
    snprintf(jti, sizeof(jti), "test-jti-%u", fx.jti_counter++);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "sub", sub, "role", role, "aud",
                               ADMIN_TOKEN_AUDIENCE, "iat", (json_int_t)fx.now, "exp",
                               (json_int_t)fx.now + 60, "jti", jti);
    assert_non_null(claims);
    return claims;
}

/* Signs claims (reference taken) with key and kid. */
static char *sign(EVP_PKEY *key, const char *kid, json_t *claims)
{
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    vtpmca_err err = admin_token_sign_claims(key, kid, claims, &token, &diag);
    json_decref(claims);
    if (err != VTPMCA_OK)
        fail_msg("sign: %s", diag.msg);
    return token;
}

static vtpmca_err verify(const char *token, admin_identity *who, vtpmca_diag *diag)
{
    admin_identity scratch;
    return admin_auth_verify(fx.auth, token, fx.now, who != NULL ? who : &scratch, diag);
}

/* Asserts the token is refused with `want`, with a diag that mentions `needle`. */
static void expect_refused(const char *token, vtpmca_err want, const char *needle)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = verify(token, NULL, &diag);
    if (err != want)
        fail_msg("expected %s, got %s (%s)", vtpmca_err_name(want), vtpmca_err_name(err), diag.msg);
    if (needle != NULL && strstr(diag.msg, needle) == NULL)
        fail_msg("diag '%s' does not mention '%s'", diag.msg, needle);
}

static void expect_accepted(const char *token, admin_identity *who)
{
    vtpmca_diag diag = {{0}};
    vtpmca_err err = verify(token, who, &diag);
    if (err != VTPMCA_OK)
        fail_msg("refused: %s (%s)", vtpmca_err_name(err), diag.msg);
}

static char *b64url(const void *data, size_t len)
{
    char *out = NULL;
    assert_int_equal(vt_b64_encode_alloc(data, len, VT_B64_URL_NOPAD, &out), VTPMCA_OK);
    return out;
}

/* header.claims.signature from raw parts (for tokens our signer would never make). */
static char *assemble(const char *header_json, const char *claims_json, const uint8_t *sig,
                      size_t sig_len)
{
    char *h = b64url(header_json, strlen(header_json));
    char *c = b64url(claims_json, strlen(claims_json));
    char *s = sig_len > 0 ? b64url(sig, sig_len) : strdup("");
    size_t size = strlen(h) + strlen(c) + strlen(s) + 3;
    char *token = malloc(size);
    assert_non_null(token);
    snprintf(token, size, "%s.%s.%s", h, c, s);
    free(h);
    free(c);
    free(s);
    return token;
}

static char *claims_text(const char *sub)
{
    json_t *claims = claims_for(sub, "admin");
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    return text;
}

/* ---- Accepted ---- */

static void test_eddsa_token_accepted(void **state)
{
    (void)state;
    char *token = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(
        admin_token_sign(fx.alice, "alice", ADMIN_ROLE_ADMIN, fx.now, 60, &token, &diag),
        VTPMCA_OK);
    admin_identity who;
    expect_accepted(token, &who);
    assert_string_equal(who.name, "alice");
    assert_int_equal(who.role, ADMIN_ROLE_ADMIN);
    assert_int_equal(who.granted, ADMIN_ROLE_ADMIN);
    assert_int_equal(who.issued_at, (int64_t)fx.now);
    assert_int_equal(who.expires_at, (int64_t)fx.now + 60);
    assert_int_equal(admin_authorize(&who, true, NULL), VTPMCA_OK);
    assert_int_equal(admin_authorize(&who, false, NULL), VTPMCA_OK);
    /* The header says EdDSA and names the key. */
    char *dot = strchr(token, '.');
    uint8_t *header = NULL;
    size_t header_len = 0;
    assert_int_equal(
        vt_b64_decode_alloc(token, (size_t)(dot - token), VT_B64_URL_NOPAD, &header, &header_len),
        VTPMCA_OK);
    json_t *h = json_loadb((const char *)header, header_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "EdDSA");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), "alice");
    json_decref(h);
    free(header);
    free(token);
}

static void test_es256_token_accepted(void **state)
{
    (void)state;
    char *token = NULL;
    assert_int_equal(admin_token_sign(fx.bob, "bob", ADMIN_ROLE_AUDITOR, fx.now, 300, &token, NULL),
                     VTPMCA_OK);
    /* ES256 signatures are 64 bytes r||s: 86 base64url characters. */
    assert_int_equal(strlen(strrchr(token, '.') + 1), 86);
    admin_identity who;
    expect_accepted(token, &who);
    assert_string_equal(who.name, "bob");
    assert_int_equal(who.role, ADMIN_ROLE_AUDITOR);
    assert_int_equal(who.granted, ADMIN_ROLE_ADMIN);
    free(token);
}

static void test_claims_variants_accepted(void **state)
{
    (void)state;
    /* No kid; aud as an array; nbf in the past; an unknown claim (iss). */
    json_t *claims = claims_for("alice", "admin");
    json_object_set_new(claims, "aud", json_pack("[s, s]", "other", ADMIN_TOKEN_AUDIENCE));
    json_object_set_new(claims, "nbf", json_integer((json_int_t)fx.now - 5));
    json_object_set_new(claims, "iss", json_string("vtpmca-cli"));
    char *token = sign(fx.alice, NULL, claims);
    expect_accepted(token, NULL);
    free(token);
    /* Boundaries: lifetime exactly 300 s, expired exactly skew seconds ago, issued exactly
     * skew seconds ahead. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now + 300));
    token = sign(fx.alice, "alice", claims);
    expect_accepted(token, NULL);
    free(token);
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "iat", json_integer((json_int_t)fx.now - 90));
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now - ADMIN_TOKEN_CLOCK_SKEW_S));
    token = sign(fx.alice, "alice", claims);
    expect_accepted(token, NULL);
    free(token);
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "iat", json_integer((json_int_t)fx.now + ADMIN_TOKEN_CLOCK_SKEW_S));
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now + 90));
    token = sign(fx.alice, "alice", claims);
    expect_accepted(token, NULL);
    free(token);
}

/* ---- Refused: structure ---- */

static void test_bearer_header(void **state)
{
    (void)state;
    const char *token = NULL;
    size_t len = 0;
    assert_int_equal(admin_bearer_token(NULL, &token, &len), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(admin_bearer_token("Basic YWxpY2U6c2VjcmV0", &token, &len),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(admin_bearer_token("Bearer", &token, &len), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(admin_bearer_token("Bearer   ", &token, &len), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(admin_bearer_token("Bearerx.y.z", &token, &len), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(admin_bearer_token("bearer a.b.c ", &token, &len), VTPMCA_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(token, "a.b.c", 5);
}

static void test_malformed_refused(void **state)
{
    (void)state;
    char *good = NULL;
    assert_int_equal(admin_token_sign(fx.alice, "alice", ADMIN_ROLE_ADMIN, fx.now, 60, &good, NULL),
                     VTPMCA_OK);
    expect_refused("", VTPMCA_ERR_PARSE, "empty");
    /* Two parts, four parts, an empty part. */
    char *two = strdup(good);
    *strrchr(two, '.') = '\0';
    expect_refused(two, VTPMCA_ERR_PARSE, "three");
    char four[8192];
    snprintf(four, sizeof(four), "%s.AAAA", good);
    expect_refused(four, VTPMCA_ERR_PARSE, "three");
    char empty_claims[8192];
    snprintf(empty_claims, sizeof(empty_claims), "%.*s..%s", (int)(strchr(good, '.') - good), good,
             strrchr(good, '.') + 1);
    expect_refused(empty_claims, VTPMCA_ERR_PARSE, "empty part");
    /* Bad base64url: a '+' (standard alphabet) in the header, padding, a '*'. */
    char bad[8192];
    snprintf(bad, sizeof(bad), "+%s", good + 1);
    expect_refused(bad, VTPMCA_ERR_PARSE, "base64url");
    snprintf(bad, sizeof(bad), "%s=", good);
    expect_refused(bad, VTPMCA_ERR_PARSE, "base64url");
    snprintf(bad, sizeof(bad), "%s", good);
    bad[strlen(bad) - 3] = '*';
    expect_refused(bad, VTPMCA_ERR_PARSE, "base64url");
    /* Header and claims that are not JSON objects, duplicate keys. */
    char *claims = claims_text("alice");
    uint8_t sig[64] = {0};
    char *t = assemble("{\"alg\":\"EdDSA\"", claims, sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_PARSE, "header");
    free(t);
    t = assemble("{\"alg\":\"EdDSA\"}", "[1,2]", sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_PARSE, "claims");
    free(t);
    t = assemble("{\"alg\":\"EdDSA\"}", "not json", sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_PARSE, "claims");
    free(t);
    t = assemble("{\"alg\":\"EdDSA\",\"alg\":\"ES256\"}", claims, sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_PARSE, "header");
    free(t);
    t = assemble("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}", claims, sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_PARSE, "typ");
    free(t);
    t = assemble("{\"alg\":\"EdDSA\",\"crit\":[\"exp\"]}", claims, sig, sizeof(sig));
    expect_refused(t, VTPMCA_ERR_UNSUPPORTED, "crit");
    free(t);
    /* Oversized. */
    char *huge = malloc(ADMIN_TOKEN_MAX_LEN + 2);
    memset(huge, 'A', ADMIN_TOKEN_MAX_LEN + 1);
    huge[ADMIN_TOKEN_MAX_LEN + 1] = '\0';
    expect_refused(huge, VTPMCA_ERR_PARSE, "longer");
    free(huge);
    free(claims);
    free(two);
    free(good);
}

static void test_claim_types_refused(void **state)
{
    (void)state;
    struct {
        const char *key;
        json_t *value; /* NULL: remove the claim */
        const char *needle;
    } cases[] = {
        {"sub", NULL, "sub"},
        {"sub", json_string("bad name"), "sub"},
        {"role", json_string("root"), "role"},
        {"role", NULL, "role"},
        {"iat", json_string("now"), "iat"},
        {"exp", json_real(1e10), "exp"},
        {"exp", NULL, "exp"},
        {"nbf", json_string("soon"), "nbf"},
        {"jti", NULL, "jti"},
        {"jti", json_string("has space"), "jti"},
        {"jti", json_integer(7), "jti"},
        {"aud", NULL, "aud"},
        {"aud", json_integer(1), "aud"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *claims = claims_for("alice", "admin");
        if (cases[i].value != NULL)
            json_object_set_new(claims, cases[i].key, cases[i].value);
        else
            json_object_del(claims, cases[i].key);
        char *token = sign(fx.alice, NULL, claims);
        expect_refused(token, VTPMCA_ERR_PARSE, cases[i].needle);
        free(token);
    }
    char long_jti[ADMIN_JTI_MAX + 2];
    memset(long_jti, 'j', sizeof(long_jti) - 1);
    long_jti[sizeof(long_jti) - 1] = '\0';
    json_t *claims = claims_for("alice", "admin");
    json_object_set_new(claims, "jti", json_string(long_jti));
    char *token = sign(fx.alice, NULL, claims);
    expect_refused(token, VTPMCA_ERR_PARSE, "jti");
    free(token);
}

/* ---- Refused: algorithms and keys ---- */

static void test_alg_none_refused(void **state)
{
    (void)state;
    char *claims = claims_text("alice");
    /* The classic unsigned token: empty signature... */
    char *t = assemble("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL, 0);
    expect_refused(t, VTPMCA_ERR_PARSE, NULL);
    free(t);
    /* ... and with some bytes where the signature goes. */
    uint8_t junk[64] = {1};
    t = assemble("{\"alg\":\"none\"}", claims, junk, sizeof(junk));
    expect_refused(t, VTPMCA_ERR_UNSUPPORTED, "none");
    free(t);
    t = assemble("{\"typ\":\"JWT\"}", claims, junk, sizeof(junk));
    expect_refused(t, VTPMCA_ERR_PARSE, "alg");
    free(t);
    free(claims);
}

/* HS256 keyed with alice's public key PEM: the algorithm-confusion attack. */
static void test_hs256_refused(void **state)
{
    (void)state;
    char *claims = claims_text("alice");
    char *pem = public_pem(fx.alice);
    char *h = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27);
    char *c = b64url(claims, strlen(claims));
    char input[4096];
    snprintf(input, sizeof(input), "%s.%s", h, c);
    uint8_t mac[32];
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), pem, (int)strlen(pem), (const uint8_t *)input, strlen(input),
                         mac, &mac_len));
    char *s = b64url(mac, mac_len);
    char token[8192];
    snprintf(token, sizeof(token), "%s.%s", input, s);
    expect_refused(token, VTPMCA_ERR_UNSUPPORTED, "HS256");
    free(s);
    free(c);
    free(h);
    OPENSSL_free(pem);
    free(claims);
}

static void test_rs256_refused(void **state)
{
    (void)state;
    char *claims = claims_text("alice");
    char *h = b64url("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 27);
    char *c = b64url(claims, strlen(claims));
    char input[4096];
    snprintf(input, sizeof(input), "%s.%s", h, c);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t sig[512];
    size_t sig_len = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, fx.rsa), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    char *s = b64url(sig, sig_len);
    char token[8192];
    snprintf(token, sizeof(token), "%s.%s", input, s);
    expect_refused(token, VTPMCA_ERR_UNSUPPORTED, "RS256");
    /* Our signer refuses RSA keys outright. */
    char *ours = NULL;
    json_t *cl = claims_for("alice", "admin");
    assert_int_equal(admin_token_sign_claims(fx.rsa, NULL, cl, &ours, NULL),
                     VTPMCA_ERR_UNSUPPORTED);
    json_decref(cl);
    assert_null(admin_key_alg(fx.rsa));
    free(s);
    free(c);
    free(h);
    free(claims);
}

static void test_wrong_key_refused(void **state)
{
    (void)state;
    /* eve signs as alice. */
    char *token = sign(fx.eve, "alice", claims_for("alice", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, "signature");
    free(token);
    /* alice's token with one signature bit flipped. */
    token = sign(fx.alice, "alice", claims_for("alice", "admin"));
    char *last = token + strlen(token) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    expect_refused(token, VTPMCA_ERR_CRYPTO, "signature");
    free(token);
    /* alice's token with its claims changed after signing (role auditor -> admin). */
    token = sign(fx.audrey, "audrey", claims_for("audrey", "auditor"));
    char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    json_t *forged = claims_for("audrey", "admin");
    char *forged_text = json_dumps(forged, JSON_COMPACT);
    char *forged_b64 = b64url(forged_text, strlen(forged_text));
    char tampered[8192];
    snprintf(tampered, sizeof(tampered), "%.*s.%s%s", (int)(dot1 - token), token, forged_b64, dot2);
    expect_refused(tampered, VTPMCA_ERR_CRYPTO, "signature");
    free(forged_b64);
    free(forged_text);
    json_decref(forged);
    free(token);
    /* An ES256 token for an admin whose only key is Ed25519 (and the other way round). */
    token = sign(fx.bob, NULL, claims_for("alice", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, "no ES256 key");
    free(token);
    token = sign(fx.alice, NULL, claims_for("bob", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, "no EdDSA key");
    free(token);
    /* An ES256 signature of the wrong length. */
    char *claims = claims_text("bob");
    uint8_t short_sig[63] = {0};
    char *t = assemble("{\"alg\":\"ES256\"}", claims, short_sig, sizeof(short_sig));
    expect_refused(t, VTPMCA_ERR_CRYPTO, "signature");
    free(t);
    free(claims);
}

static void test_subject_must_match_key(void **state)
{
    (void)state;
    /* alice's key, sub bob: bob's keys do not verify it. */
    char *token = sign(fx.alice, NULL, claims_for("bob", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, NULL);
    free(token);
    token = sign(fx.alice, NULL, claims_for("audrey", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, "signature");
    free(token);
    /* An unknown admin. */
    token = sign(fx.eve, "eve", claims_for("eve", "admin"));
    expect_refused(token, VTPMCA_ERR_NOT_FOUND, "unknown admin");
    free(token);
    /* kid naming someone else than sub. */
    token = sign(fx.alice, "bob", claims_for("alice", "admin"));
    expect_refused(token, VTPMCA_ERR_CRYPTO, "kid");
    free(token);
}

/* ---- Refused: claims ---- */

static void test_time_and_audience_refused(void **state)
{
    (void)state;
    /* Expired beyond the skew. */
    json_t *claims = claims_for("alice", "admin");
    json_object_set_new(claims, "iat", json_integer((json_int_t)fx.now - 200));
    json_object_set_new(claims, "exp",
                        json_integer((json_int_t)fx.now - ADMIN_TOKEN_CLOCK_SKEW_S - 1));
    char *token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "expired");
    free(token);
    /* Issued in the future beyond the skew. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "iat",
                        json_integer((json_int_t)fx.now + ADMIN_TOKEN_CLOCK_SKEW_S + 1));
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now + 120));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "future");
    free(token);
    /* nbf in the future. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "nbf", json_integer((json_int_t)fx.now + 45));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "not valid before");
    free(token);
    /* Lifetime above 300 s, and exp not after iat. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "exp",
                        json_integer((json_int_t)fx.now + ADMIN_TOKEN_MAX_LIFETIME_S + 1));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "lifetime");
    free(token);
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "after iat");
    free(token);
    /* Wrong audience, as a string and as an array. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "aud", json_string("vtpmca-kbs"));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "audience");
    free(token);
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "aud", json_pack("[s]", "someone-else"));
    token = sign(fx.alice, "alice", claims);
    expect_refused(token, VTPMCA_ERR_POLICY, "audience");
    free(token);
    /* The signer refuses lifetimes the verifier would refuse. */
    char *t = NULL;
    assert_int_equal(admin_token_sign(fx.alice, "alice", ADMIN_ROLE_ADMIN, fx.now,
                                      ADMIN_TOKEN_MAX_LIFETIME_S + 1, &t, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(admin_token_sign(fx.alice, "alice", ADMIN_ROLE_ADMIN, fx.now, 0, &t, NULL),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(
        admin_token_sign(fx.alice, "not a name", ADMIN_ROLE_ADMIN, fx.now, 60, &t, NULL),
        VTPMCA_ERR_INVALID_ARG);
}

static void test_replay_refused(void **state)
{
    (void)state;
    json_t *claims = claims_for("alice", "admin");
    json_object_set_new(claims, "jti", json_string("once"));
    char *token = sign(fx.alice, "alice", claims);
    expect_accepted(token, NULL);
    expect_refused(token, VTPMCA_ERR_CONFLICT, "replayed");
    /* A new token that reuses the jti is a replay too. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "jti", json_string("once"));
    json_object_set_new(claims, "exp", json_integer((json_int_t)fx.now + 61));
    char *again = sign(fx.alice, "alice", claims);
    expect_refused(again, VTPMCA_ERR_CONFLICT, "replayed");
    /* The same jti from another admin is that admin's own. */
    claims = claims_for("bob", "admin");
    json_object_set_new(claims, "jti", json_string("once"));
    char *bobs = sign(fx.bob, "bob", claims);
    expect_accepted(bobs, NULL);
    /* A refused token does not burn its jti: once fixed, it is accepted. */
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "jti", json_string("second"));
    json_object_set_new(claims, "aud", json_string("wrong"));
    char *wrong_aud = sign(fx.alice, "alice", claims);
    expect_refused(wrong_aud, VTPMCA_ERR_POLICY, NULL);
    claims = claims_for("alice", "admin");
    json_object_set_new(claims, "jti", json_string("second"));
    char *fixed = sign(fx.alice, "alice", claims);
    expect_accepted(fixed, NULL);
    /* Once a token has expired its jti is forgotten, and the token is refused as expired. */
    time_t later = fx.now + 60 + ADMIN_TOKEN_CLOCK_SKEW_S + 1;
    admin_identity who;
    vtpmca_diag diag = {{0}};
    assert_int_equal(admin_auth_verify(fx.auth, token, later, &who, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "expired"));
    free(fixed);
    free(wrong_aud);
    free(bobs);
    free(again);
    free(token);
}

static void test_roles(void **state)
{
    (void)state;
    /* An auditor on a write route: 403 material. */
    char *token = NULL;
    assert_int_equal(
        admin_token_sign(fx.audrey, "audrey", ADMIN_ROLE_AUDITOR, fx.now, 60, &token, NULL),
        VTPMCA_OK);
    admin_identity who;
    expect_accepted(token, &who);
    assert_int_equal(who.granted, ADMIN_ROLE_AUDITOR);
    assert_int_equal(admin_authorize(&who, false, NULL), VTPMCA_OK);
    vtpmca_diag diag = {{0}};
    assert_int_equal(admin_authorize(&who, true, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "read-only"));
    free(token);
    /* An auditor's key asking for role admin is refused even for reads. */
    assert_int_equal(
        admin_token_sign(fx.audrey, "audrey", ADMIN_ROLE_ADMIN, fx.now, 60, &token, NULL),
        VTPMCA_OK);
    expect_accepted(token, &who);
    assert_int_equal(admin_authorize(&who, false, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "auditor key"));
    assert_int_equal(admin_authorize(&who, true, NULL), VTPMCA_ERR_POLICY);
    free(token);
    /* An admin may act as auditor (least privilege) and is then read-only. */
    assert_int_equal(
        admin_token_sign(fx.alice, "alice", ADMIN_ROLE_AUDITOR, fx.now, 60, &token, NULL),
        VTPMCA_OK);
    expect_accepted(token, &who);
    assert_int_equal(admin_authorize(&who, false, NULL), VTPMCA_OK);
    assert_int_equal(admin_authorize(&who, true, NULL), VTPMCA_ERR_POLICY);
    free(token);
    assert_int_equal(admin_authorize(NULL, false, NULL), VTPMCA_ERR_INVALID_ARG);
    admin_role role;
    assert_int_equal(admin_role_parse("admin", &role), VTPMCA_OK);
    assert_int_equal(role, ADMIN_ROLE_ADMIN);
    assert_int_equal(admin_role_parse("Admin", &role), VTPMCA_ERR_PARSE);
    assert_string_equal(admin_role_name(ADMIN_ROLE_AUDITOR), "auditor");
}

/* ---- Keys on disk ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    assert_int_equal(vt_file_write_atomic(path, text, strlen(text), mode, NULL), VTPMCA_OK);
    assert_int_equal(chmod(path, mode), 0); /* past the umask */
}

static void make_dir(const char *path, mode_t mode)
{
    assert_int_equal(mkdir(path, mode), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_key_dir(void **state)
{
    (void)state;
    char dir[128], sub[160], path[256];
    snprintf(dir, sizeof(dir), "%s/keys", fx.dir);
    snprintf(sub, sizeof(sub), "%s/" ADMIN_AUDITORS_SUBDIR, dir);
    make_dir(dir, 0755);
    make_dir(sub, 0700);
    char *alice = public_pem(fx.alice), *bob = public_pem(fx.bob), *audrey = public_pem(fx.audrey);
    snprintf(path, sizeof(path), "%s/alice.pub.pem", dir);
    write_file(path, alice, 0644);
    snprintf(path, sizeof(path), "%s/bob.pub.pem", dir);
    write_file(path, bob, 0644);
    snprintf(path, sizeof(path), "%s/audrey.pub.pem", sub);
    write_file(path, audrey, 0600);
    snprintf(path, sizeof(path), "%s/README", dir); /* ignored */
    write_file(path, "not a key\n", 0644);

    admin_auth *auth = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(admin_auth_new(&auth), VTPMCA_OK);
    if (admin_auth_add_dir(auth, dir, &diag) != VTPMCA_OK)
        fail_msg("add_dir: %s", diag.msg);
    assert_int_equal(admin_auth_key_count(auth), 3);
    char *token = NULL;
    admin_identity who;
    assert_int_equal(
        admin_token_sign(fx.audrey, "audrey", ADMIN_ROLE_AUDITOR, fx.now, 60, &token, NULL),
        VTPMCA_OK);
    assert_int_equal(admin_auth_verify(auth, token, fx.now, &who, NULL), VTPMCA_OK);
    assert_int_equal(who.granted, ADMIN_ROLE_AUDITOR);
    free(token);
    assert_int_equal(admin_token_sign(fx.bob, "bob", ADMIN_ROLE_ADMIN, fx.now, 60, &token, NULL),
                     VTPMCA_OK);
    assert_int_equal(admin_auth_verify(auth, token, fx.now, &who, NULL), VTPMCA_OK);
    assert_int_equal(who.granted, ADMIN_ROLE_ADMIN);
    free(token);
    /* A second key for alice (rotation) and a file key for carol. */
    snprintf(path, sizeof(path), "%s/alice.pub.pem", fx.dir);
    char *eve = public_pem(fx.eve);
    write_file(path, eve, 0644);
    assert_int_equal(admin_auth_add_key_file(auth, path, ADMIN_ROLE_ADMIN, NULL), VTPMCA_OK);
    assert_int_equal(admin_token_sign(fx.eve, "alice", ADMIN_ROLE_ADMIN, fx.now, 60, &token, NULL),
                     VTPMCA_OK);
    assert_int_equal(admin_auth_verify(auth, token, fx.now, &who, NULL), VTPMCA_OK);
    free(token);
    /* The same name cannot also be an auditor. */
    assert_int_equal(admin_auth_add_key_file(auth, path, ADMIN_ROLE_AUDITOR, &diag),
                     VTPMCA_ERR_CONFLICT);
    admin_auth_free(auth);

    /* A group-writable directory or key file is refused. */
    assert_int_equal(admin_auth_new(&auth), VTPMCA_OK);
    assert_int_equal(chmod(dir, 0775), 0);
    assert_int_equal(admin_auth_add_dir(auth, dir, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "writable"));
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/bob.pub.pem", dir);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(admin_auth_add_dir(auth, dir, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "bob.pub.pem"));
    assert_int_equal(chmod(path, 0644), 0);
    admin_auth_free(auth);

    /* Bad files: a private key under a public name, an RSA key, an invalid name. */
    assert_int_equal(admin_auth_new(&auth), VTPMCA_OK);
    char *priv = NULL;
    size_t priv_len = 0;
    assert_int_equal(admin_key_to_pem(fx.eve, true, &priv, &priv_len, NULL), VTPMCA_OK);
    snprintf(path, sizeof(path), "%s/private.pub.pem", fx.dir);
    write_file(path, priv, 0600);
    assert_int_equal(admin_auth_add_key_file(auth, path, ADMIN_ROLE_ADMIN, &diag),
                     VTPMCA_ERR_PARSE);
    OPENSSL_clear_free(priv, priv_len);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, fx.rsa), 1);
    char *rsa_pem = NULL;
    long rsa_len = BIO_get_mem_data(bio, &rsa_pem);
    assert_int_equal(
        admin_auth_add_key_pem(auth, "rsa", ADMIN_ROLE_ADMIN, rsa_pem, (size_t)rsa_len, &diag),
        VTPMCA_ERR_UNSUPPORTED);
    BIO_free(bio);
    assert_int_equal(
        admin_auth_add_key_pem(auth, "bad name", ADMIN_ROLE_ADMIN, alice, strlen(alice), &diag),
        VTPMCA_ERR_PARSE);
    snprintf(path, sizeof(path), "%s/alice.pem", fx.dir);
    write_file(path, alice, 0644);
    assert_int_equal(admin_auth_add_key_file(auth, path, ADMIN_ROLE_ADMIN, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, ".pub.pem"));
    snprintf(path, sizeof(path), "%s/missing-dir", fx.dir);
    assert_int_equal(admin_auth_add_dir(auth, path, &diag), VTPMCA_ERR_IO);
    assert_int_equal(admin_auth_key_count(auth), 0);
    admin_auth_free(auth);
    OPENSSL_free(eve);
    OPENSSL_free(alice);
    OPENSSL_free(bob);
    OPENSSL_free(audrey);
}

static void test_private_key_files(void **state)
{
    (void)state;
    admin_key_type types[] = {ADMIN_KEY_ED25519, ADMIN_KEY_P256};
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *key = NULL;
        assert_int_equal(admin_key_generate(types[i], &key, NULL), VTPMCA_OK);
        char *pem = NULL;
        size_t len = 0;
        assert_int_equal(admin_key_to_pem(key, true, &pem, &len, NULL), VTPMCA_OK);
        char path[256];
        snprintf(path, sizeof(path), "%s/key-%zu.pem", fx.dir, i);
        write_file(path, pem, 0644);
        EVP_PKEY *loaded = NULL;
        vtpmca_diag diag = {{0}};
        assert_int_equal(admin_key_load_private(path, &loaded, &diag), VTPMCA_ERR_POLICY);
        assert_non_null(strstr(diag.msg, "chmod 600"));
        assert_int_equal(chmod(path, 0600), 0);
        assert_int_equal(admin_key_load_private(path, &loaded, &diag), VTPMCA_OK);
        assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
        assert_string_equal(admin_key_alg(loaded), i == 0 ? "EdDSA" : "ES256");
        EVP_PKEY_free(loaded);
        OPENSSL_clear_free(pem, len);
        EVP_PKEY_free(key);
    }
    /* A public key, garbage, and a missing file. */
    char path[256];
    snprintf(path, sizeof(path), "%s/public-only.pem", fx.dir);
    char *pub = public_pem(fx.alice);
    write_file(path, pub, 0600);
    OPENSSL_free(pub);
    EVP_PKEY *loaded = NULL;
    assert_int_equal(admin_key_load_private(path, &loaded, NULL), VTPMCA_ERR_PARSE);
    snprintf(path, sizeof(path), "%s/garbage.pem", fx.dir);
    write_file(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0600);
    assert_int_equal(admin_key_load_private(path, &loaded, NULL), VTPMCA_ERR_PARSE);
    snprintf(path, sizeof(path), "%s/none.pem", fx.dir);
    assert_int_equal(admin_key_load_private(path, &loaded, NULL), VTPMCA_ERR_IO);
    admin_key_type type;
    assert_int_equal(admin_key_type_parse("P256", &type), VTPMCA_OK);
    assert_int_equal(type, ADMIN_KEY_P256);
    assert_int_equal(admin_key_type_parse("rsa", &type), VTPMCA_ERR_PARSE);
}

/* ---- Cross-checks with the openssl command line ---- */

static int run_shell(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    assert_int_equal(vt_file_write_atomic(path, data, len, 0600, NULL), VTPMCA_OK);
}

/* openssl makes the signatures; admin_auth_verify accepts them. */
static void test_openssl_signed_tokens_verify(void **state)
{
    (void)state;
    const char *headers[2] = {"{\"alg\":\"EdDSA\",\"kid\":\"alice\"}",
                              "{\"alg\":\"ES256\",\"kid\":\"bob\"}"};
    EVP_PKEY *keys[2] = {fx.alice, fx.bob};
    const char *names[2] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        char key_path[256], in_path[256], sig_path[256], cmd[1024];
        snprintf(key_path, sizeof(key_path), "%s/cross-%d.pem", fx.dir, i);
        snprintf(in_path, sizeof(in_path), "%s/cross-%d.in", fx.dir, i);
        snprintf(sig_path, sizeof(sig_path), "%s/cross-%d.sig", fx.dir, i);
        char *priv = NULL;
        size_t priv_len = 0;
        assert_int_equal(admin_key_to_pem(keys[i], true, &priv, &priv_len, NULL), VTPMCA_OK);
        write_bytes(key_path, priv, priv_len);
        OPENSSL_clear_free(priv, priv_len);
        char *claims = claims_text(names[i]);
        char *h = b64url(headers[i], strlen(headers[i]));
        char *c = b64url(claims, strlen(claims));
        char input[4096];
        snprintf(input, sizeof(input), "%s.%s", h, c);
        write_bytes(in_path, input, strlen(input));
        if (i == 0)
            snprintf(cmd, sizeof(cmd), "openssl pkeyutl -sign -rawin -inkey %s -in %s -out %s",
                     key_path, in_path, sig_path);
        else
            snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -sign %s -out %s %s", key_path,
                     sig_path, in_path);
        assert_int_equal(run_shell(cmd), 0);
        uint8_t *sig = NULL;
        size_t sig_len = 0;
        assert_int_equal(vt_file_read(sig_path, 1024, &sig, &sig_len, NULL), VTPMCA_OK);
        uint8_t raw[64];
        if (i == 0) {
            assert_int_equal(sig_len, 64);
            memcpy(raw, sig, 64);
        } else { /* DER ECDSA-Sig-Value -> JWS r||s */
            const uint8_t *p = sig;
            ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            assert_non_null(ecdsa);
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), raw, 32), 32);
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), raw + 32, 32), 32);
            ECDSA_SIG_free(ecdsa);
        }
        char *s = b64url(raw, sizeof(raw));
        char token[8192];
        snprintf(token, sizeof(token), "%s.%s", input, s);
        admin_identity who;
        expect_accepted(token, &who);
        assert_string_equal(who.name, names[i]);
        free(s);
        free(sig);
        free(c);
        free(h);
        free(claims);
    }
}

/* Our tokens' signatures verify with the openssl command line. */
static void test_tokens_verify_with_openssl(void **state)
{
    (void)state;
    EVP_PKEY *keys[2] = {fx.alice, fx.bob};
    const char *names[2] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        char *token = NULL;
        assert_int_equal(
            admin_token_sign(keys[i], names[i], ADMIN_ROLE_ADMIN, fx.now, 60, &token, NULL),
            VTPMCA_OK);
        char pub_path[256], in_path[256], sig_path[256], cmd[1024];
        snprintf(pub_path, sizeof(pub_path), "%s/ours-%d.pub.pem", fx.dir, i);
        snprintf(in_path, sizeof(in_path), "%s/ours-%d.in", fx.dir, i);
        snprintf(sig_path, sizeof(sig_path), "%s/ours-%d.sig", fx.dir, i);
        char *pub = public_pem(keys[i]);
        write_bytes(pub_path, pub, strlen(pub));
        OPENSSL_free(pub);
        char *dot2 = strrchr(token, '.');
        write_bytes(in_path, token, (size_t)(dot2 - token));
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        assert_int_equal(
            vt_b64_decode_alloc(dot2 + 1, strlen(dot2 + 1), VT_B64_URL_NOPAD, &raw, &raw_len),
            VTPMCA_OK);
        assert_int_equal(raw_len, 64);
        if (i == 0) {
            write_bytes(sig_path, raw, raw_len);
            snprintf(cmd, sizeof(cmd),
                     "openssl pkeyutl -verify -pubin -inkey %s -rawin -in %s -sigfile %s "
                     ">/dev/null",
                     pub_path, in_path, sig_path);
        } else {
            ECDSA_SIG *ecdsa = ECDSA_SIG_new();
            ECDSA_SIG_set0(ecdsa, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
            unsigned char *der = NULL;
            int der_len = i2d_ECDSA_SIG(ecdsa, &der);
            assert_true(der_len > 0);
            write_bytes(sig_path, der, (size_t)der_len);
            OPENSSL_free(der);
            ECDSA_SIG_free(ecdsa);
            snprintf(cmd, sizeof(cmd),
                     "openssl dgst -sha256 -verify %s -signature %s %s >/dev/null", pub_path,
                     sig_path, in_path);
        }
        assert_int_equal(run_shell(cmd), 0);
        /* And a flipped byte of the input makes openssl refuse it. */
        char *tampered = strdup(token);
        tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
        write_bytes(in_path, tampered, (size_t)(dot2 - token));
        assert_int_not_equal(run_shell(cmd), 0);
        free(tampered);
        free(raw);
        free(token);
    }
}

/* ---- The daemon's configuration keys ---- */

static void test_config_keys(void **state)
{
    (void)state;
    server_config cfg;
    vtpmca_diag diag = {{0}};
    assert_int_equal(server_config_defaults(&cfg), VTPMCA_OK);
    assert_int_equal(cfg.admin_keys.count, 0);
    assert_string_equal(cfg.tls_cert_file, "");
    const char *text = "admin_keys_dir = /etc/vtpmca/admins\n"
                       "admin_key = /etc/vtpmca/alice.pub.pem\n"
                       "admin_key = /etc/vtpmca/bob.pub.pem\n"
                       "auditor_key = /etc/vtpmca/audrey.pub.pem\n"
                       "tls_cert_file = /etc/vtpmca/tls.crt\n"
                       "tls_key_file = /etc/vtpmca/tls.key\n";
    assert_int_equal(server_config_parse_text(&cfg, text, strlen(text), "t.conf", &diag),
                     VTPMCA_OK);
    assert_string_equal(cfg.admin_keys_dir, "/etc/vtpmca/admins");
    assert_int_equal(cfg.admin_keys.count, 2);
    assert_string_equal(cfg.admin_keys.path[1], "/etc/vtpmca/bob.pub.pem");
    assert_int_equal(cfg.auditor_keys.count, 1);
    /* An empty value clears the list. */
    assert_int_equal(server_config_set(&cfg, "admin_key", "", NULL), VTPMCA_OK);
    assert_int_equal(cfg.admin_keys.count, 0);
    for (int i = 0; i < SERVER_CONFIG_LIST_MAX; i++)
        assert_int_equal(server_config_set(&cfg, "admin_key", "/k.pub.pem", NULL), VTPMCA_OK);
    assert_int_equal(server_config_set(&cfg, "admin_key", "/k.pub.pem", &diag), VTPMCA_ERR_LIMIT);
    assert_int_equal(cfg.admin_keys.count, SERVER_CONFIG_LIST_MAX);
    assert_int_equal(server_config_set(&cfg, "auditor_key", "bad\tpath", &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(cfg.auditor_keys.count, 1);

    /* TLS: both or neither; with TLS a non-loopback address needs no plain-HTTP waiver. */
    assert_int_equal(server_config_set(&cfg, "listen", "0.0.0.0", NULL), VTPMCA_OK);
    assert_int_equal(server_config_finalize(&cfg, &diag), VTPMCA_OK);
    assert_int_equal(server_config_set(&cfg, "tls_key_file", "", NULL), VTPMCA_OK);
    assert_int_equal(server_config_finalize(&cfg, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "together"));
    assert_int_equal(server_config_set(&cfg, "tls_cert_file", "", NULL), VTPMCA_OK);
    assert_int_equal(server_config_finalize(&cfg, &diag), VTPMCA_ERR_POLICY);
    assert_non_null(strstr(diag.msg, "tls_cert_file"));

    /* Flags: repeatable --admin-key. */
    char *argv[] = {"vtpmcad",       "--admin-key", "/a.pub.pem", "--admin-key=/b.pub.pem",
                    "--auditor-key", "/c.pub.pem",  NULL};
    server_config_action action;
    assert_int_equal(server_config_from_args(6, argv, &cfg, &action, &diag), VTPMCA_OK);
    assert_int_equal(cfg.admin_keys.count, 2);
    assert_string_equal(cfg.admin_keys.path[0], "/a.pub.pem");
    assert_int_equal(cfg.auditor_keys.count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_eddsa_token_accepted, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_es256_token_accepted, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_claims_variants_accepted, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bearer_header, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_claim_types_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_alg_none_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_hs256_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rs256_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_subject_must_match_key, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_time_and_audience_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replay_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_roles, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_key_dir, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_private_key_files, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_openssl_signed_tokens_verify, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_verify_with_openssl, test_setup, test_teardown),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
