/* C509 certificates: the public API of include/vtpmca/c509.h (re-encoding, rebuilding,
 * native issuance, verification, display) and the signature operations behind it. */
#include "c509_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vtpmca/encoding.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------------ */
/* Signatures */

static bool sig_verifiable(const c509_sig_entry *e)
{
    return e != NULL &&
           (e->kind == C509_SIGK_EDDSA ||
            (e->md != NULL && (e->kind == C509_SIGK_ECDSA || e->kind == C509_SIGK_RSA_PKCS1 ||
                               e->kind == C509_SIGK_RSA_PSS)));
}

/* The key type an algorithm needs (EVP_PKEY_* id). */
static int sig_key_type(const c509_sig_entry *e)
{
    switch (e->kind) {
    case C509_SIGK_ECDSA:
        return EVP_PKEY_EC;
    case C509_SIGK_RSA_PKCS1:
    case C509_SIGK_RSA_PSS:
        return EVP_PKEY_RSA;
    case C509_SIGK_EDDSA:
        return e->code == C509_SIG_ED25519 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448;
    case C509_SIGK_OTHER:
        break;
    }
    return NID_undef;
}

static vtpmca_err sig_check_key(const c509_sig_entry *e, EVP_PKEY *key, vtpmca_diag *diag)
{
    if (EVP_PKEY_get_base_id(key) != sig_key_type(e))
        return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "a %s key cannot be used with %s",
                           EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
                           e->name);
    return VTPMCA_OK;
}

/* A failed OpenSSL call: the diag names the algorithm and carries OpenSSL's reason. */
static vtpmca_err openssl_failure(vtpmca_diag *diag, const char *what, const c509_sig_entry *e)
{
    vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s with %s failed: ", what, e->name);
    vtpmca_diag_append_openssl(diag);
    ERR_clear_error();
    return VTPMCA_ERR_CRYPTO;
}

/* Sets up md_ctx for signing or verifying with algorithm e. */
static vtpmca_err sig_init(EVP_MD_CTX *md_ctx, const c509_sig_entry *e, EVP_PKEY *key, bool sign,
                           vtpmca_diag *diag)
{
    EVP_PKEY_CTX *pctx = NULL;
    const char *md = e->kind == C509_SIGK_EDDSA ? NULL : e->md;
    int ok = sign ? EVP_DigestSignInit_ex(md_ctx, &pctx, md, NULL, NULL, key, NULL)
                  : EVP_DigestVerifyInit_ex(md_ctx, &pctx, md, NULL, NULL, key, NULL);
    if (ok == 1 && e->kind == C509_SIGK_RSA_PSS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, e->md, NULL) == 1;
    return ok == 1 ? VTPMCA_OK : openssl_failure(diag, "setting up", e);
}

/* Verifies sig (X.509 form: ECDSA as DER ECDSA-Sig-Value) over msg. */
static vtpmca_err sig_verify(const c509_sig_entry *e, EVP_PKEY *key, const uint8_t *msg,
                             size_t msg_len, const uint8_t *sig, size_t sig_len, vtpmca_diag *diag)
{
    vtpmca_err err = sig_check_key(e, key, diag);
    if (err != VTPMCA_OK)
        return err;
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    err = sig_init(md_ctx, e, key, false, diag);
    if (err == VTPMCA_OK && EVP_DigestVerify(md_ctx, sig, sig_len, msg, msg_len) != 1) {
        ERR_clear_error();
        err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "%s signature does not verify", e->name);
    }
    EVP_MD_CTX_free(md_ctx);
    return err;
}

/* Signs msg into sig (ECDSA: DER ECDSA-Sig-Value). */
static vtpmca_err sig_sign(const c509_sig_entry *e, EVP_PKEY *key, const uint8_t *msg,
                           size_t msg_len, c509_buf *sig, vtpmca_diag *diag)
{
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
    vtpmca_err err = sig_init(md_ctx, e, key, true, diag);
    size_t len = 0;
    if (err == VTPMCA_OK) {
        if (EVP_DigestSign(md_ctx, NULL, &len, msg, msg_len) != 1)
            err = openssl_failure(diag, "signing", e);
        else if (!c509_buf_reserve(sig, len))
            err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory");
        else if (EVP_DigestSign(md_ctx, sig->data, &len, msg, msg_len) != 1)
            err = openssl_failure(diag, "signing", e);
        else
            sig->len = len;
    }
    EVP_MD_CTX_free(md_ctx);
    return err;
}

/* ------------------------------------------------------------------------------------ */
/* Public API */

/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
static vtpmca_err build_cert_der(const c509_decoded *d, c509_buf *out, vtpmca_diag *diag)
{
    c509_buf sig = {0};
    vtpmca_err err = c509_signature_to_der(d, &sig, diag);
    if (err == VTPMCA_OK) {
        size_t mark = der_open(out);
        err = c509_build_tbs_der(d, out, diag);
        if (err == VTPMCA_OK) {
            c509_buf_put(out, d->sig_alg.data, d->sig_alg.len);
            size_t bits = der_open(out);
            uint8_t unused = 0;
            c509_buf_put(out, &unused, 1);
            c509_buf_put(out, sig.data, sig.len);
            der_close(out, bits, DER_BIT_STRING);
            der_close(out, mark, DER_SEQ);
            err = c509_buf_status(out, diag);
        }
    }
    c509_buf_free(&sig);
    return err;
}

static vtpmca_err check_output_args(const void *in, size_t in_len, uint8_t **out, size_t *out_len,
                                    vtpmca_diag *diag)
{
    if (out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    *out = NULL;
    *out_len = 0;
    if (in == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing input");
    if (in_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (in_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", in_len,
                           C509_MAX_INPUT);
    return VTPMCA_OK;
}

vtpmca_err c509_from_x509_der(const uint8_t *der, size_t der_len, uint8_t **cbor, size_t *cbor_len,
                              vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(der, der_len, cbor, cbor_len, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_ctx ctx = {.type = C509_TYPE_X509, .diag = diag};
    c509_parts parts;
    const uint8_t *sig;
    size_t sig_len;
    err = c509_parse_x509(&ctx, der, der_len, &parts, &sig, &sig_len);
    if (err != VTPMCA_OK)
        return err;
    c509_buf out = {0};
    cb_array(&out, 11);
    err = c509_encode_tbs(&ctx, &parts, &out);
    if (err == VTPMCA_OK)
        err = c509_encode_signature(&ctx, &parts, sig, sig_len, &out);
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, diag);

    /* Every choice above must be recoverable: rebuild the DER and compare. */
    if (err == VTPMCA_OK) {
        c509_decoded d;
        vtpmca_diag inner = {{0}};
        err = c509_decode(out.data, out.len, &d, &inner);
        c509_buf rebuilt = {0};
        if (err == VTPMCA_OK)
            err = build_cert_der(&d, &rebuilt, &inner);
        if (err == VTPMCA_ERR_NOMEM) {
            vtpmca_fail(diag, err, "%s", inner.msg);
        } else if (err != VTPMCA_OK) {
            err = vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "re-encoding cannot be decoded: %s",
                              inner.msg);
        } else if (rebuilt.len != der_len || memcmp(rebuilt.data, der, der_len) != 0) {
            size_t at = 0;
            while (at < rebuilt.len && at < der_len && rebuilt.data[at] == der[at])
                at++;
            err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                              "certificate cannot be rebuilt byte for byte from C509 (first "
                              "difference at DER offset %zu)",
                              at);
        }
        c509_buf_free(&rebuilt);
        c509_decoded_free(&d);
    }
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *cbor = out.data;
    *cbor_len = out.len;
    return VTPMCA_OK;
}

vtpmca_err c509_to_x509_der(const uint8_t *cbor, size_t cbor_len, uint8_t **der, size_t *der_len,
                            vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(cbor, cbor_len, der, der_len, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_decoded d;
    err = c509_decode(cbor, cbor_len, &d, diag);
    if (err == VTPMCA_OK && d.type != C509_TYPE_X509)
        err = vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                          "a natively signed (type 2) C509 certificate has no X.509 form");
    c509_buf out = {0};
    if (err == VTPMCA_OK)
        err = build_cert_der(&d, &out, diag);
    c509_decoded_free(&d);
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *der = out.data;
    *der_len = out.len;
    return VTPMCA_OK;
}

/* Encodes parts as a type 2 certificate and signs it. */
static vtpmca_err sign_native_parts(c509_ctx *ctx, const c509_parts *parts,
                                    const c509_sig_entry *alg, EVP_PKEY *issuer_key, uint8_t **cbor,
                                    size_t *cbor_len)
{
    c509_buf out = {0}, sig = {0};
    cb_array(&out, 11);
    size_t tbs_start = out.len;
    vtpmca_err err = c509_encode_tbs(ctx, parts, &out);
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, ctx->diag);
    if (err == VTPMCA_OK)
        err = sig_sign(alg, issuer_key, out.data + tbs_start, out.len - tbs_start, &sig, ctx->diag);
    if (err == VTPMCA_OK) {
        if (alg->kind == C509_SIGK_ECDSA) {
            c509_buf raw = {0};
            err = c509_ecdsa_der_to_raw(sig.data, sig.len, ctx->ecdsa_half, &raw, ctx->diag);
            if (err == VTPMCA_OK)
                cb_bytes(&out, raw.data, raw.len);
            c509_buf_free(&raw);
        } else {
            cb_bytes(&out, sig.data, sig.len);
        }
    }
    if (err == VTPMCA_OK)
        err = c509_buf_status(&out, ctx->diag);
    c509_buf_free(&sig);
    if (err != VTPMCA_OK) {
        c509_buf_free(&out);
        return err;
    }
    *cbor = out.data;
    *cbor_len = out.len;
    return VTPMCA_OK;
}

/* The algorithm a native signature may use with this key (c509_sig_alg values only). */
static vtpmca_err native_sig_alg(int64_t code, EVP_PKEY *issuer_key, const c509_sig_entry **out,
                                 size_t *ecdsa_half, vtpmca_diag *diag)
{
    static const int allowed[] = {
        C509_SIG_ECDSA_SHA256,     C509_SIG_ECDSA_SHA384,     C509_SIG_ECDSA_SHA512,
        C509_SIG_ED25519,          C509_SIG_RSA_PKCS1_SHA256, C509_SIG_RSA_PKCS1_SHA384,
        C509_SIG_RSA_PKCS1_SHA512, C509_SIG_RSA_PSS_SHA256,   C509_SIG_RSA_PSS_SHA384,
        C509_SIG_RSA_PSS_SHA512,
    };
    bool ok = false;
    for (size_t i = 0; i < COUNT(allowed); i++)
        ok = ok || allowed[i] == code;
    const c509_sig_entry *e = c509_sig_by_code(code);
    if (!ok || e == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "signature algorithm %lld cannot sign native C509 certificates",
                           (long long)code);
    vtpmca_err err = sig_check_key(e, issuer_key, diag);
    if (err != VTPMCA_OK)
        return err;
    *ecdsa_half = 0;
    if (e->kind == C509_SIGK_ECDSA) {
        int bits = EVP_PKEY_get_bits(issuer_key); /* EC: bits of the group order */
        if (bits <= 0)
            return vtpmca_fail(diag, VTPMCA_ERR_CRYPTO, "cannot read the issuer curve's order");
        *ecdsa_half = ((size_t)bits + 7) / 8;
    }
    *out = e;
    return VTPMCA_OK;
}

vtpmca_err c509_sign_native(const c509_tbs *tbs, EVP_PKEY *issuer_key, uint8_t **cbor,
                            size_t *cbor_len, vtpmca_diag *diag)
{
    if (cbor == NULL || cbor_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    *cbor = NULL;
    *cbor_len = 0;
    if (tbs == NULL || issuer_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing certificate or issuer key");
    c509_ctx ctx = {.type = C509_TYPE_NATIVE, .diag = diag};
    const c509_sig_entry *alg;
    vtpmca_err err = native_sig_alg(tbs->sig_alg, issuer_key, &alg, &ctx.ecdsa_half, diag);
    if (err != VTPMCA_OK)
        return err;
    c509_parts parts;
    c509_buf owned = {0};
    err = c509_parts_from_tbs(&ctx, tbs, &parts, &owned);
    if (err == VTPMCA_OK)
        err = sign_native_parts(&ctx, &parts, alg, issuer_key, cbor, cbor_len);
    c509_buf_free(&owned);
    return err;
}

vtpmca_err c509_sign_native_from_x509(const uint8_t *der, size_t der_len, EVP_PKEY *issuer_key,
                                      uint8_t **cbor, size_t *cbor_len, vtpmca_diag *diag)
{
    vtpmca_err err = check_output_args(der, der_len, cbor, cbor_len, diag);
    if (err != VTPMCA_OK)
        return err;
    if (issuer_key == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing issuer key");
    c509_ctx ctx = {.type = C509_TYPE_NATIVE, .diag = diag};
    c509_parts parts;
    const uint8_t *sig;
    size_t sig_len;
    err = c509_parse_x509(&ctx, der, der_len, &parts, &sig, &sig_len);
    if (err != VTPMCA_OK)
        return err;
    const c509_sig_entry *alg = c509_sig_by_der(parts.sig_alg.tlv, parts.sig_alg.tlv_len);
    if (alg == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "the certificate's signature algorithm has no C509 code");
    err = native_sig_alg(alg->code, issuer_key, &alg, &ctx.ecdsa_half, diag);
    if (err != VTPMCA_OK)
        return err;
    return sign_native_parts(&ctx, &parts, alg, issuer_key, cbor, cbor_len);
}

vtpmca_err c509_verify(const uint8_t *cbor, size_t cbor_len, EVP_PKEY *issuer_pub,
                       vtpmca_diag *diag)
{
    if (cbor == NULL || issuer_pub == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing certificate or issuer key");
    if (cbor_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (cbor_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", cbor_len,
                           C509_MAX_INPUT);
    c509_decoded d;
    vtpmca_err err = c509_decode(cbor, cbor_len, &d, diag);
    c509_buf tbs = {0}, sig = {0};
    if (err != VTPMCA_OK)
        goto done;
    if (d.type == C509_TYPE_NATIVE) {
        if (!sig_verifiable(d.sig)) {
            err =
                vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED, "cannot verify this signature algorithm");
            goto done;
        }
        err = c509_signature_to_der(&d, &sig, diag);
        if (err == VTPMCA_OK)
            err = sig_verify(d.sig, issuer_pub, cbor + d.tbs_offset, d.tbs_len, sig.data, sig.len,
                             diag);
        goto done;
    }
    if (sig_verifiable(d.sig)) {
        err = c509_build_tbs_der(&d, &tbs, diag);
        if (err == VTPMCA_OK)
            err = c509_signature_to_der(&d, &sig, diag);
        if (err == VTPMCA_OK)
            err = sig_verify(d.sig, issuer_pub, tbs.data, tbs.len, sig.data, sig.len, diag);
        goto done;
    }
    /* An algorithm without a usable C509 code: let OpenSSL's X.509 verifier try. */
    err = build_cert_der(&d, &tbs, diag);
    if (err == VTPMCA_OK) {
        const unsigned char *p = tbs.data;
        X509 *x = d2i_X509(NULL, &p, (long)tbs.len);
        if (x == NULL || X509_verify(x, issuer_pub) != 1)
            err = vtpmca_fail(diag, VTPMCA_ERR_CRYPTO,
                              "signature does not verify (or algorithm unknown to OpenSSL)");
        X509_free(x);
        ERR_clear_error();
    }
done:
    c509_buf_free(&tbs);
    c509_buf_free(&sig);
    c509_decoded_free(&d);
    return err;
}

/* Copies a memory BIO's contents into a malloc'd string. */
static char *bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (s == NULL)
        return NULL;
    if (n > 0)
        memcpy(s, data, (size_t)n);
    s[n > 0 ? n : 0] = '\0';
    return s;
}

static char *name_text(const c509_buf *der)
{
    const unsigned char *p = der->data;
    X509_NAME *name = d2i_X509_NAME(NULL, &p, (long)der->len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (name != NULL && bio != NULL &&
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        s = bio_string(bio);
    BIO_free(bio);
    X509_NAME_free(name);
    ERR_clear_error();
    return s;
}

static char *extensions_text(const c509_buf *der)
{
    if (der->len == 0)
        return strdup("");
    const unsigned char *p = der->data;
    X509_EXTENSIONS *exts = d2i_X509_EXTENSIONS(NULL, &p, (long)der->len);
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (exts != NULL && bio != NULL &&
        X509V3_extensions_print(bio, NULL, exts, X509V3_EXT_DUMP_UNKNOWN, 0) == 1)
        s = bio_string(bio);
    BIO_free(bio);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return s;
}

/* The dotted OID of an AlgorithmIdentifier. */
static char *alg_oid_text(const c509_buf *alg)
{
    der_cur c = der_cursor(alg->data, alg->len);
    der_tlv seq, oid;
    char text[128] = "?";
    if (der_get(&c, DER_SEQ, &seq)) {
        der_cur in = der_inside(&seq);
        if (der_get(&in, DER_OID, &oid))
            c509_oid_to_text(oid.val, oid.len, text, sizeof(text));
    }
    return strdup(text);
}

vtpmca_err c509_decode_info(const uint8_t *cbor, size_t cbor_len, c509_info *info,
                            vtpmca_diag *diag)
{
    if (info == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing output argument");
    memset(info, 0, sizeof(*info));
    if (cbor == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "missing input");
    if (cbor_len == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "empty input");
    if (cbor_len > C509_MAX_INPUT)
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "input of %zu bytes exceeds %d", cbor_len,
                           C509_MAX_INPUT);
    c509_decoded d;
    vtpmca_err err = c509_decode(cbor, cbor_len, &d, diag);
    if (err != VTPMCA_OK)
        return err;
    info->type = d.type;
    info->not_before = d.not_before;
    info->not_after = d.not_after;
    info->ext_count = d.ext_count;
    size_t hex_size = 2 * (d.serial.len > 0 ? d.serial.len : 1) + 1;
    info->serial_hex = malloc(hex_size);
    if (info->serial_hex != NULL) {
        if (d.serial.len == 0)
            snprintf(info->serial_hex, hex_size, "00");
        else
            vt_hex_encode(d.serial.data, d.serial.len, info->serial_hex, hex_size);
    }
    info->sig_alg = d.sig != NULL ? strdup(d.sig->name) : alg_oid_text(&d.sig_alg);
    info->issuer = name_text(&d.issuer);
    info->subject = name_text(&d.subject);
    info->extensions = extensions_text(&d.exts);

    const unsigned char *p = d.spki.data;
    info->public_key = d2i_PUBKEY(NULL, &p, (long)d.spki.len);
    ERR_clear_error();
    if (d.pk != NULL && d.pk->kind == C509_PKK_RSA && info->public_key != NULL) {
        char text[32];
        snprintf(text, sizeof(text), "RSA %d", EVP_PKEY_get_bits(info->public_key));
        info->public_key_alg = strdup(text);
    } else if (d.pk != NULL) {
        info->public_key_alg = strdup(d.pk->name);
    } else {
        c509_buf alg = {0};
        der_cur c = der_cursor(d.spki.data, d.spki.len);
        der_tlv spki, a;
        if (der_get(&c, DER_SEQ, &spki)) {
            der_cur in = der_inside(&spki);
            if (der_next(&in, &a))
                c509_buf_put(&alg, a.tlv, a.tlv_len);
        }
        info->public_key_alg = alg_oid_text(&alg);
        c509_buf_free(&alg);
    }
    if (d.type == C509_TYPE_X509) {
        c509_buf der = {0};
        err = build_cert_der(&d, &der, diag);
        info->x509_der = der.data;
        info->x509_der_len = der.len;
    }
    if (err == VTPMCA_OK &&
        (info->serial_hex == NULL || info->sig_alg == NULL || info->issuer == NULL ||
         info->subject == NULL || info->extensions == NULL || info->public_key_alg == NULL))
        err = vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "out of memory formatting the certificate");
    c509_decoded_free(&d);
    return err;
}

void c509_info_free(c509_info *info)
{
    if (info == NULL)
        return;
    free(info->serial_hex);
    free(info->sig_alg);
    free(info->issuer);
    free(info->subject);
    EVP_PKEY_free(info->public_key);
    free(info->public_key_alg);
    free(info->extensions);
    free(info->x509_der);
    memset(info, 0, sizeof(*info));
}
