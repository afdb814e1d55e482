/* EAR attestation tokens: JWS compact ES256 / ES384 over an EAR claims-set. */
#include "vtpmca/ear_token.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "vtpmca/ear.h"
#include "vtpmca/encoding.h"
#include "vtpmca/jws.h"
#include "vtpmca/jwe.h"
#include "vtpmca/snp_policy.h"

vtpmca_err ear_token_kid(const EVP_PKEY *key, char kid[EAR_TOKEN_KID_SIZE], vtpmca_diag *diag)
{
    if (key == NULL || kid == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "token kid: missing argument");
    uint8_t fingerprint[KBS_KEY_FINGERPRINT_LEN];
    vtpmca_err err = kbs_key_fingerprint(key, fingerprint, diag);
    if (err != VTPMCA_OK)
        return err;
    return vt_hex_encode(fingerprint, sizeof(fingerprint), kid, EAR_TOKEN_KID_SIZE);
}

vtpmca_err ear_token_key_init(ear_token_key *out, const EVP_PKEY *key, vtpmca_diag *diag)
{
    if (out == NULL || key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "token key: missing argument");
    memset(out, 0, sizeof(*out));
    const char *alg = jws_es_alg(key);
    if (alg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "the token key must be EC P-256 or P-384");
    vtpmca_err err = ear_token_kid(key, out->kid, diag);
    if (err != VTPMCA_OK)
        return err;
    /* The header depends on the key only: encoded here once instead of with every token. */
    json_t *header = json_pack("{s:s,s:s,s:s}", "alg", alg, "typ", "JWT", "kid", out->kid);
    char *header_b64 = NULL;
    err = header != NULL ? jws_b64url_json(header, &header_b64) : VTPMCA_ERR_NOMEM;
    json_decref(header);
    if (err == VTPMCA_OK && strlen(header_b64) >= sizeof(out->header_b64))
        err = VTPMCA_ERR_INTERNAL; /* EAR_TOKEN_HEADER_B64_SIZE is too small */
    if (err == VTPMCA_OK)
        strcpy(out->header_b64, header_b64);
    free(header_b64);
    if (err != VTPMCA_OK) {
        memset(out, 0, sizeof(*out));
        return vtpmca_fail(diag, err, "cannot encode the token header");
    }
    out->key = (EVP_PKEY *)key;
    EVP_PKEY_up_ref(out->key);
    out->alg = alg;
    return VTPMCA_OK;
}

void ear_token_key_clear(ear_token_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->key);
    memset(key, 0, sizeof(*key));
}

vtpmca_err ear_token_build_claims(const ear_token_claims *in, json_t **out, vtpmca_diag *diag)
{
    if (in == NULL || in->evidence == NULL || in->session_id == NULL || in->tee_pubkey == NULL ||
        out == NULL || in->issued_at < 0 || in->expires_at <= in->issued_at)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "token claims: bad argument");
    /* No fleet policy runs at attest time (it runs when a resource is asked for): the
     * verdict has no checks, so the EAR vouches for genuine hardware and instance identity
     * and claims nothing about the executables. */
    snp_verdict verdict;
    memset(&verdict, 0, sizeof(verdict));
    verdict.pass = true;
    verdict.measurement_checked = false;
    json_t *claims = NULL;
    vtpmca_err err =
        ear_render_snp(in->evidence, &verdict, EAR_TOKEN_POLICY_ID, in->issued_at, &claims);
    if (err != VTPMCA_OK)
        return vtpmca_fail(diag, err, "cannot render the EAR");
    uint8_t jti_bytes[16];
    char jti[2 * sizeof(jti_bytes) + 1];
    if (RAND_bytes(jti_bytes, sizeof(jti_bytes)) != 1 ||
        vt_hex_encode(jti_bytes, sizeof(jti_bytes), jti, sizeof(jti)) != VTPMCA_OK) {
        json_decref(claims);
        return vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "the random generator failed");
    }
    bool ok = json_object_set_new(claims, "exp", json_integer((json_int_t)in->expires_at)) == 0 &&
              json_object_set_new(claims, "jti", json_string(jti)) == 0 &&
              json_object_set_new(claims, "sid", json_string(in->session_id)) == 0 &&
              json_object_set_new(claims, "tee-pubkey", json_deep_copy(in->tee_pubkey)) == 0;
    if (!ok) {
        json_decref(claims);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    *out = claims;
    return VTPMCA_OK;
}

vtpmca_err ear_token_sign(const ear_token_key *key, const json_t *claims, char **out,
                          vtpmca_diag *diag)
{
    if (key == NULL || key->key == NULL || key->header_b64[0] == '\0' || out == NULL ||
        !json_is_object(claims))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "token sign: bad argument");
    char *payload_b64 = NULL;
    if (jws_b64url_json(claims, &payload_b64) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "cannot encode the token");
    /* header "." payload, then "." and the signature once it is made. */
    size_t header_len = strlen(key->header_b64), payload_len = strlen(payload_b64);
    size_t signing_len = header_len + 1 + payload_len;
    char *token = malloc(signing_len + 1 + (4 * JWS_ES_SIG_MAX + 2) / 3 + 1);
    if (token == NULL) {
        free(payload_b64);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    }
    memcpy(token, key->header_b64, header_len);
    token[header_len] = '.';
    memcpy(token + header_len + 1, payload_b64, payload_len);
    free(payload_b64);
    uint8_t sig[JWS_ES_SIG_MAX];
    size_t sig_len = 0;
    char *sig_b64 = NULL;
    vtpmca_err err =
        jws_es_sign(key->key, (const uint8_t *)token, signing_len, sig, &sig_len, diag);
    if (err == VTPMCA_OK)
        err = vt_b64_encode_alloc(sig, sig_len, VT_B64_URL_NOPAD, &sig_b64);
    if (err != VTPMCA_OK) {
        free(token);
        return err;
    }
    token[signing_len] = '.';
    strcpy(token + signing_len + 1, sig_b64);
    free(sig_b64);
    *out = token;
    return VTPMCA_OK;
}

/* Decodes one base64url part and parses it as a JSON object. */
static vtpmca_err decode_json_part(const char *text, size_t len, const char *what, json_t **out,
                                   vtpmca_diag *diag)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (jwe_b64url_decode(text, len, &raw, &raw_len) != VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token %s is not unpadded base64url", what);
    json_t *value = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (!json_is_object(value)) {
        json_decref(value);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token %s is not a JSON object", what);
    }
    *out = value;
    return VTPMCA_OK;
}

static vtpmca_err check_header(const json_t *header, const ear_token_key *key, vtpmca_diag *diag)
{
    const char *got_alg = json_string_value(json_object_get(header, "alg"));
    const char *typ = json_string_value(json_object_get(header, "typ"));
    const char *got_kid = json_string_value(json_object_get(header, "kid"));
    if (json_object_size(header) != 3 || got_alg == NULL || typ == NULL || got_kid == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "token header must hold exactly \"alg\", \"typ\" and \"kid\"");
    if (strcmp(typ, "JWT") != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token header \"typ\" must be \"JWT\"");
    if (strcmp(got_alg, key->alg) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "token algorithm \"%.16s\" is not this key's",
                           got_alg);
    if (strcmp(got_kid, key->kid) != 0)
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "token was signed by another key (kid)");
    return VTPMCA_OK;
}

vtpmca_err ear_token_verify(const ear_token_key *key, const char *token, size_t token_len,
                            time_t now, json_t **claims, vtpmca_diag *diag)
{
    if (claims != NULL)
        *claims = NULL;
    if (key == NULL || key->key == NULL || key->alg == NULL || token == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "token verify: missing argument");
    if (token_len == 0 || token_len > EAR_TOKEN_MAX_LEN)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token is empty or longer than %d bytes",
                           EAR_TOKEN_MAX_LEN);
    const char *dot1 = memchr(token, '.', token_len);
    const char *dot2 =
        dot1 != NULL ? memchr(dot1 + 1, '.', token_len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot1 == NULL || dot2 == NULL ||
        memchr(dot2 + 1, '.', token_len - (size_t)(dot2 + 1 - token)) != NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token is not three dot-separated parts");
    json_t *header = NULL, *payload = NULL;
    vtpmca_err err = decode_json_part(token, (size_t)(dot1 - token), "header", &header, diag);
    if (err == VTPMCA_OK)
        err = check_header(header, key, diag);
    json_decref(header);
    if (err != VTPMCA_OK)
        return err;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    const char *sig_text = dot2 + 1;
    if (jwe_b64url_decode(sig_text, token_len - (size_t)(sig_text - token), &sig, &sig_len) !=
        VTPMCA_OK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token signature is not unpadded base64url");
    err =
        jws_es_verify(key->key, (const uint8_t *)token, (size_t)(dot2 - token), sig, sig_len, diag);
    free(sig);
    if (err != VTPMCA_OK)
        return err;
    /* Only a signed payload is parsed. */
    err = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &payload, diag);
    if (err != VTPMCA_OK)
        return err;
    const json_t *exp = json_object_get(payload, "exp");
    if (!json_is_integer(exp)) {
        json_decref(payload);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "token has no integer \"exp\"");
    }
    if ((json_int_t)now >= json_integer_value(exp)) {
        json_decref(payload);
        return vtpmca_fail(diag, VTPMCA_ERR_POLICY, "token expired");
    }
    if (claims != NULL)
        *claims = payload;
    else
        json_decref(payload);
    return VTPMCA_OK;
}
