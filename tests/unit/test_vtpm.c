/* Tests for the libtpms-backed vTPM (tools/lib/vtpm.c) and the TPM 2.0 marshalling helpers
 * (tools/lib/tpm2_marshal.c), against a real libtpms TPM 2.0: TCG EK templates checked byte
 * by byte against the profile's values, policies recomputed with OpenSSL, names cross-checked
 * with TPM2_ReadPublic, state persistence, NV certificates, credential activation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "vtpmca/ca_client.h"
#include "vtpmca/encoding.h"
#include "vtpmca/tpm2_marshal.h"
#include "vtpmca/vtpm.h"

#define EK_CERT_LEN 1500

/* ---- Helpers ---- */

static vtpm *open_fresh(void)
{
    vtpm *tpm = NULL;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_open(NULL, 0, &tpm, &diag), VTPMCA_OK);
    assert_non_null(tpm);
    return tpm;
}

static uint8_t *hex_bytes(const char *hex, size_t *len)
{
    uint8_t *out = NULL;
    assert_int_equal(vt_hex_decode_alloc(hex, strlen(hex), &out, len), VTPMCA_OK);
    return out;
}

static void fill_pattern(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

/* H(0^n || command code || data) followed by H(that || tail): how the policy commands used
 * here extend a fresh policy digest (Part 3, TPM2_PolicySecret, TPM2_PolicyAuthorizeNV,
 * TPM2_PolicyOR). tail NULL means no second step. */
static size_t policy_extend(const EVP_MD *md, uint32_t cc, const uint8_t *data, size_t data_len,
                            const uint8_t *tail, size_t tail_len, uint8_t out[64])
{
    const uint8_t zeros[64] = {0};
    const uint8_t cc_bytes[4] = {(uint8_t)(cc >> 24), (uint8_t)(cc >> 16), (uint8_t)(cc >> 8),
                                 (uint8_t)cc};
    size_t n = (size_t)EVP_MD_get_size(md);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, zeros, n), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, cc_bytes, sizeof(cc_bytes)), 1);
    assert_int_equal(EVP_DigestUpdate(ctx, data, data_len), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, out, NULL), 1);
    if (tail != NULL) {
        uint8_t first[64];
        memcpy(first, out, n);
        assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
        assert_int_equal(EVP_DigestUpdate(ctx, first, n), 1);
        assert_int_equal(EVP_DigestUpdate(ctx, tail, tail_len), 1);
        assert_int_equal(EVP_DigestFinal_ex(ctx, out, NULL), 1);
    }
    EVP_MD_CTX_free(ctx);
    return n;
}

/* PolicySecret(TPM_RH_ENDORSEMENT): the authObject's name is the handle; policyRef is empty. */
static size_t policy_a(const EVP_MD *md, uint8_t out[64])
{
    const uint8_t endorsement[4] = {0x40, 0x00, 0x00, 0x0b};
    return policy_extend(md, TPM2_CC_POLICY_SECRET, endorsement, 4, (const uint8_t *)"", 0, out);
}

/* Each EK's TPMT_PUBLIC up to `unique`, written out from the TCG EK Credential Profile tables
 * (type, nameAlg, objectAttributes, authPolicy, symmetric, scheme, keyBits+exponent or
 * curve+kdf), independently of vtpm_ek_template. */
#define POLICY_A "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
#define POLICY_B                                                                                   \
    "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419ca"                             \
    "cb47ba09699646150f9fc000f3f80e12"
static const struct {
    vtpm_ek_kind kind;
    const char *params_hex;
    size_t template_unique; /* zero bytes in the template's unique (per coordinate) */
    size_t key_unique;      /* modulus or coordinate size in the TPM's key */
    uint16_t name_alg;
    const char *group; /* OpenSSL's group name; NULL for RSA */
} EK_EXPECT[] = {
    {VTPM_EK_RSA2048, "0001000b000300b20020" POLICY_A "0006008000430010080000000000", 256, 256,
     TPM2_ALG_SHA256, NULL},
    {VTPM_EK_ECC_P256, "0023000b000300b20020" POLICY_A "000600800043001000030010", 32, 32,
     TPM2_ALG_SHA256, "prime256v1"},
    {VTPM_EK_ECC_P384, "0023000c000300f20030" POLICY_B "000601000043001000040010", 0, 48,
     TPM2_ALG_SHA384, "secp384r1"},
};
#define EK_KINDS (sizeof(EK_EXPECT) / sizeof(EK_EXPECT[0]))

/* The IAK template of ca_iak_template: a restricted ECDSA P-256 signing key whose admin role
 * takes its authValue (as vtpm_activate_credential requires). */
static size_t iak_like_template(uint8_t *buf, size_t cap)
{
    size_t len = 0;
    assert_int_equal(ca_iak_template(buf, cap, &len), VTPMCA_OK);
    return len;
}

static void create_ek_bytes(vtpm *tpm, vtpm_ek_kind kind, uint32_t *handle, uint8_t **pub,
                            size_t *len)
{
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_create_ek(tpm, kind, handle, pub, len, NULL, &diag), VTPMCA_OK);
}

/* ---- Policies and templates (no TPM) ---- */

static void test_policy_constants_match_definition(void **state)
{
    (void)state;
    uint8_t digest[64];
    size_t n = policy_a(EVP_sha256(), digest);
    assert_int_equal(n, 32);
    assert_memory_equal(digest, TPM2_EK_POLICY_A_SHA256, n);
    n = policy_a(EVP_sha384(), digest);
    assert_int_equal(n, 48);
    assert_memory_equal(digest, TPM2_EK_POLICY_A_SHA384, n);

    /* PolicyC: PolicyAuthorizeNV of Policy Index I-2, whose name the profile publishes
     * ("Computing Policy Index Names"). */
    size_t name_len = 0;
    uint8_t *i2_name = hex_bytes("000cdb62fca346612c976732ff4e8621fb4e858be82586486504f7d02e621f8d"
                                 "7d61ae32cfc60c4d120609ed6768afcf090c",
                                 &name_len);
    assert_int_equal(name_len, 50);
    n = policy_extend(EVP_sha384(), 0x00000192 /* TPM_CC_PolicyAuthorizeNV */, i2_name, name_len,
                      NULL, 0, digest);
    free(i2_name);
    assert_memory_equal(digest, TPM2_EK_POLICY_C_SHA384, n);

    /* PolicyB = PolicyOR(PolicyA, PolicyC). */
    uint8_t or_list[96];
    memcpy(or_list, TPM2_EK_POLICY_A_SHA384, 48);
    memcpy(or_list + 48, TPM2_EK_POLICY_C_SHA384, 48);
    n = policy_extend(EVP_sha384(), TPM2_CC_POLICY_OR, or_list, sizeof(or_list), NULL, 0, digest);
    assert_memory_equal(digest, TPM2_EK_POLICY_B_SHA384, n);

    /* The profile's published hex values (as in the task and swtpm). */
    size_t len = 0;
    uint8_t *a = hex_bytes(POLICY_A, &len);
    assert_int_equal(len, 32);
    assert_memory_equal(a, TPM2_EK_POLICY_A_SHA256, 32);
    free(a);
    uint8_t *b = hex_bytes(POLICY_B, &len);
    assert_int_equal(len, 48);
    assert_memory_equal(b, TPM2_EK_POLICY_B_SHA384, 48);
    free(b);

    /* The templates carry them. */
    tpm2_public t;
    assert_int_equal(vtpm_ek_template(VTPM_EK_RSA2048, &t), VTPMCA_OK);
    assert_memory_equal(t.auth_policy, TPM2_EK_POLICY_A_SHA256, 32);
    assert_int_equal(vtpm_ek_template(VTPM_EK_ECC_P384, &t), VTPMCA_OK);
    assert_int_equal(t.auth_policy_len, 48);
    assert_memory_equal(t.auth_policy, TPM2_EK_POLICY_B_SHA384, 48);
}

static void test_ek_templates_marshal_and_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < EK_KINDS; i++) {
        tpm2_public t, back;
        uint8_t buf[512];
        tpm2_writer w;
        assert_int_equal(vtpm_ek_template(EK_EXPECT[i].kind, &t), VTPMCA_OK);
        assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
        assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
        size_t params_len = 0;
        uint8_t *params = hex_bytes(EK_EXPECT[i].params_hex, &params_len);
        assert_memory_equal(buf, params, params_len);
        free(params);
        /* unique: TPM2B of zeros (RSA), or two of them (ECC x and y) */
        size_t zeros = EK_EXPECT[i].template_unique;
        size_t parts = EK_EXPECT[i].group != NULL ? 2 : 1;
        assert_int_equal(w.len, params_len + parts * (2 + zeros));
        for (size_t part = 0; part < parts; part++) {
            const uint8_t *u = buf + params_len + part * (2 + zeros);
            assert_int_equal(u[0] << 8 | u[1], zeros);
            for (size_t k = 0; k < zeros; k++)
                assert_int_equal(u[2 + k], 0);
        }
        assert_int_equal(tpm2_public_parse(buf, w.len, &back, NULL), VTPMCA_OK);
        assert_int_equal(back.type, t.type);
        assert_int_equal(back.name_alg, t.name_alg);
        assert_int_equal(back.object_attributes, t.object_attributes);
        assert_int_equal(back.sym_key_bits, t.sym_key_bits);
        assert_int_equal(back.curve, t.curve);
        assert_int_equal(back.unique_a_len, t.unique_a_len);
        assert_int_equal(back.unique_b_len, t.unique_b_len);

        uint32_t index = 0;
        assert_int_equal(vtpm_ek_cert_nv_index(EK_EXPECT[i].kind, &index), VTPMCA_OK);
        const uint32_t indices[] = {0x01c00002, 0x01c0000a, 0x01c00016};
        assert_int_equal(index, indices[i]);
    }
    tpm2_public t;
    uint32_t index;
    assert_int_equal(vtpm_ek_template((vtpm_ek_kind)7, &t), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_ek_cert_nv_index((vtpm_ek_kind)7, &index), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_ek_template(VTPM_EK_RSA2048, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* ---- Marshalling primitives ---- */

static void test_writer_reader_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[64];
    tpm2_writer w;
    size_t mark = 0;
    assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
    assert_int_equal(tpm2_put_u8(&w, 0xa1), VTPMCA_OK);
    assert_int_equal(tpm2_put_u16(&w, 0xb2c3), VTPMCA_OK);
    assert_int_equal(tpm2_put_u32(&w, 0xd4e5f607), VTPMCA_OK);
    assert_int_equal(tpm2_put_u64(&w, 0x0102030405060708ull), VTPMCA_OK);
    assert_int_equal(tpm2_put_tpm2b(&w, "abc", 3), VTPMCA_OK);
    assert_int_equal(tpm2_tpm2b_begin(&w, &mark), VTPMCA_OK);
    assert_int_equal(tpm2_put_u32(&w, 0x11223344), VTPMCA_OK);
    assert_int_equal(tpm2_tpm2b_end(&w, mark), VTPMCA_OK);
    size_t expect_len = 0;
    uint8_t *expect =
        hex_bytes("a1b2c3d4e5f60701020304050607080003616263000411223344", &expect_len);
    assert_int_equal(w.len, expect_len);
    assert_memory_equal(buf, expect, expect_len);
    free(expect);

    tpm2_reader r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *data;
    size_t len;
    assert_int_equal(tpm2_reader_init(&r, buf, w.len), VTPMCA_OK);
    assert_int_equal(tpm2_get_u8(&r, &u8), VTPMCA_OK);
    assert_int_equal(u8, 0xa1);
    assert_int_equal(tpm2_get_u16(&r, &u16), VTPMCA_OK);
    assert_int_equal(u16, 0xb2c3);
    assert_int_equal(tpm2_get_u32(&r, &u32), VTPMCA_OK);
    assert_int_equal(u32, 0xd4e5f607);
    assert_int_equal(tpm2_get_u64(&r, &u64), VTPMCA_OK);
    assert_true(u64 == 0x0102030405060708ull);
    assert_int_equal(tpm2_get_tpm2b(&r, &data, &len), VTPMCA_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    assert_int_equal(tpm2_reader_expect_end(&r), VTPMCA_ERR_PARSE); /* 6 bytes left */
    assert_int_equal(tpm2_get_tpm2b(&r, &data, &len), VTPMCA_OK);
    assert_int_equal(len, 4);
    assert_int_equal(tpm2_reader_expect_end(&r), VTPMCA_OK);

    /* Underflow is sticky and zeroes outputs. */
    assert_int_equal(tpm2_get_u8(&r, &u8), VTPMCA_ERR_PARSE);
    u32 = 5;
    assert_int_equal(tpm2_get_u32(&r, &u32), VTPMCA_ERR_PARSE);
    assert_int_equal(u32, 0);
    assert_int_equal(tpm2_reader_expect_end(&r), VTPMCA_ERR_PARSE);
    /* A TPM2B whose size runs past the end. */
    const uint8_t short_b[] = {0x00, 0x05, 0x01, 0x02};
    assert_int_equal(tpm2_reader_init(&r, short_b, sizeof(short_b)), VTPMCA_OK);
    assert_int_equal(tpm2_get_tpm2b(&r, &data, &len), VTPMCA_ERR_PARSE);
    assert_null(data);
    assert_int_equal(len, 0);

    assert_int_equal(tpm2_reader_init(NULL, buf, 1), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(tpm2_reader_init(&r, NULL, 1), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(tpm2_writer_init(&w, NULL, 1), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(tpm2_get_u8(&r, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_writer_limits(void **state)
{
    (void)state;
    uint8_t buf[8];
    tpm2_writer w;
    assert_int_equal(tpm2_writer_init(&w, buf, 5), VTPMCA_OK);
    assert_int_equal(tpm2_put_u32(&w, 1), VTPMCA_OK);
    assert_int_equal(tpm2_put_u16(&w, 2), VTPMCA_ERR_LIMIT);
    assert_int_equal(w.len, 4);
    /* Sticky: a put that would fit still fails and writes nothing. */
    assert_int_equal(tpm2_put_u8(&w, 3), VTPMCA_ERR_LIMIT);
    assert_int_equal(w.len, 4);
    assert_int_equal(tpm2_command_end(&w), VTPMCA_ERR_LIMIT);

    /* TPM2B larger than 0xffff. */
    static uint8_t big[70000];
    uint8_t *large = malloc(sizeof(big) + 16);
    assert_non_null(large);
    assert_int_equal(tpm2_writer_init(&w, large, sizeof(big) + 16), VTPMCA_OK);
    assert_int_equal(tpm2_put_tpm2b(&w, big, sizeof(big)), VTPMCA_ERR_LIMIT);
    size_t mark = 0;
    assert_int_equal(tpm2_writer_init(&w, large, sizeof(big) + 16), VTPMCA_OK);
    assert_int_equal(tpm2_tpm2b_begin(&w, &mark), VTPMCA_OK);
    assert_int_equal(tpm2_put_bytes(&w, big, sizeof(big)), VTPMCA_OK);
    assert_int_equal(tpm2_tpm2b_end(&w, mark), VTPMCA_ERR_LIMIT);
    free(large);

    /* NULL data with a length. */
    assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
    assert_int_equal(tpm2_put_bytes(&w, NULL, 2), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(tpm2_put_u8(NULL, 1), VTPMCA_ERR_INVALID_ARG);
    /* A command must start an empty writer with a valid tag. */
    assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
    assert_int_equal(tpm2_command_begin(&w, 0x1234, TPM2_CC_STARTUP), VTPMCA_ERR_INVALID_ARG);
}

static void test_command_header_and_password_session(void **state)
{
    (void)state;
    /* TPM2_NV_UndefineSpace(TPM_RH_PLATFORM, 0x01c00002) with an empty password session,
     * laid out by hand from Part 3 (header, 2 handles, authorizationSize 9, TPMS_AUTH_COMMAND
     * {TPM_RS_PW, nonce "", attributes 0, hmac ""}). */
    const char *expect_hex = "8002"
                             "0000001f"
                             "00000122"
                             "4000000c"
                             "01c00002"
                             "00000009"
                             "40000009"
                             "0000"
                             "00"
                             "0000";
    uint8_t buf[64];
    tpm2_writer w;
    assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
    assert_int_equal(tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_UNDEFINE_SPACE),
                     VTPMCA_OK);
    tpm2_put_u32(&w, TPM2_RH_PLATFORM);
    tpm2_put_u32(&w, VTPM_NV_EK_CERT_RSA2048);
    assert_int_equal(tpm2_put_password_session(&w, NULL, 0), VTPMCA_OK);
    assert_int_equal(tpm2_command_end(&w), VTPMCA_OK);
    size_t expect_len = 0;
    uint8_t *expect = hex_bytes(expect_hex, &expect_len);
    assert_int_equal(w.len, expect_len);
    assert_memory_equal(buf, expect, expect_len);
    free(expect);

    /* Two sessions: the authorization size covers both. */
    assert_int_equal(tpm2_writer_init(&w, buf, sizeof(buf)), VTPMCA_OK);
    size_t mark = 0;
    assert_int_equal(tpm2_sessions_begin(&w, &mark), VTPMCA_OK);
    tpm2_put_auth(&w, TPM2_RS_PW, NULL, 0, 0, (const uint8_t *)"pw", 2);
    tpm2_put_auth(&w, 0x03000000, (const uint8_t *)"nn", 2, 1, NULL, 0);
    assert_int_equal(tpm2_sessions_end(&w, mark), VTPMCA_OK);
    assert_int_equal(w.len, 4 + 11 + 11);
    assert_int_equal(buf[3], 22);
}

static void test_response_parse(void **state)
{
    (void)state;
    tpm2_response resp;
    tpm2_reader params;
    vtpmca_diag diag = {{0}};
    /* A sessions response: handle, parameterSize 4, a u32 parameter, then an auth area. */
    const uint8_t ok[] = {
        0x80, 0x02, 0x00, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x00, /* header, 27 bytes */
        0x80, 0x00, 0x00, 0x00,                                     /* handle */
        0x00, 0x00, 0x00, 0x04,                                     /* parameterSize */
        0x01, 0x02, 0x03, 0x04,                                     /* parameter */
        0x00, 0x00, 0x00, 0x00, 0x00, /* TPMS_AUTH_RESPONSE: nonce, attributes, hmac */
    };
    assert_int_equal(tpm2_response_parse(ok, sizeof(ok), &resp, &diag), VTPMCA_OK);
    assert_int_equal(resp.tag, TPM2_ST_SESSIONS);
    assert_int_equal(resp.rc, 0);
    uint32_t handle = 0, value = 0;
    assert_int_equal(tpm2_get_u32(&resp.body, &handle), VTPMCA_OK);
    assert_int_equal(handle, 0x80000000);
    assert_int_equal(tpm2_response_params(&resp, &params), VTPMCA_OK);
    assert_int_equal(tpm2_get_u32(&params, &value), VTPMCA_OK);
    assert_int_equal(value, 0x01020304);
    assert_int_equal(tpm2_reader_expect_end(&params), VTPMCA_OK);

    /* Error response: header only, rc reported, not a parse error. */
    const uint8_t err_resp[] = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x8b};
    assert_int_equal(tpm2_response_parse(err_resp, sizeof(err_resp), &resp, &diag), VTPMCA_OK);
    assert_int_equal(resp.rc, 0x18b);
    assert_int_equal(tpm2_rc_base(resp.rc), TPM2_RC_HANDLE);

    assert_int_equal(tpm2_response_parse(ok, 9, &resp, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "header"));
    uint8_t bad[sizeof(ok)];
    memcpy(bad, ok, sizeof(ok));
    bad[1] = 0x03;
    assert_int_equal(tpm2_response_parse(bad, sizeof(bad), &resp, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "tag"));
    assert_int_equal(tpm2_response_parse(ok, sizeof(ok) - 1, &resp, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "size field 27"));
    memcpy(bad, ok, sizeof(ok));
    bad[9] = 0x01; /* an rc with a body */
    assert_int_equal(tpm2_response_parse(bad, sizeof(bad), &resp, &diag), VTPMCA_ERR_PARSE);
    /* parameterSize larger than what is there */
    memcpy(bad, ok, sizeof(ok));
    bad[17] = 40;
    assert_int_equal(tpm2_response_parse(bad, sizeof(bad), &resp, &diag), VTPMCA_OK);
    assert_int_equal(tpm2_get_u32(&resp.body, &handle), VTPMCA_OK);
    assert_int_equal(tpm2_response_params(&resp, &params), VTPMCA_ERR_PARSE);
    assert_int_equal(tpm2_response_parse(NULL, 10, &resp, &diag), VTPMCA_ERR_INVALID_ARG);
}

static void test_rc_describe(void **state)
{
    (void)state;
    char text[64];
    assert_int_equal(tpm2_rc_describe(0x18b, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x0000018b (TPM_RC_HANDLE, handle 1)");
    assert_int_equal(tpm2_rc_describe(0x1c4, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x000001c4 (TPM_RC_VALUE, parameter 1)");
    assert_int_equal(tpm2_rc_describe(0x98e, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x0000098e (TPM_RC_AUTH_FAIL, session 1)");
    assert_int_equal(tpm2_rc_describe(0x14c, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x0000014c (TPM_RC_NV_DEFINED)");
    assert_int_equal(tpm2_rc_describe(0x922, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x00000922 (TPM_RC_RETRY)");
    assert_int_equal(tpm2_rc_describe(0x17f, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0x0000017f (unknown TPM_RC)");
    assert_int_equal(tpm2_rc_base(0x9a2), 0x0a2);
    assert_int_equal(tpm2_rc_handle_number(0x18b), 1);
    assert_int_equal(tpm2_rc_handle_number(0x284), 2);
    assert_int_equal(tpm2_rc_handle_number(0x1c4), 0); /* parameter 1 */
    assert_int_equal(tpm2_rc_handle_number(0x98e), 0); /* session 1 */
    assert_int_equal(tpm2_rc_handle_number(0x14c), 0); /* format 0 */
    assert_int_equal(tpm2_rc_base(0x14c), 0x14c);
    assert_int_equal(tpm2_rc_describe(0x18b, text, 8), VTPMCA_ERR_INVALID_ARG);
}

/* ---- TPMT_PUBLIC parsing and conversion errors (no TPM) ---- */

static void test_tpmt_public_rejects_malformed(void **state)
{
    (void)state;
    tpm2_public t, parsed;
    uint8_t buf[512];
    tpm2_writer w;
    vtpmca_diag diag = {{0}};
    assert_int_equal(vtpm_ek_template(VTPM_EK_ECC_P256, &t), VTPMCA_OK);
    tpm2_writer_init(&w, buf, sizeof(buf));
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    size_t len = w.len;

    /* Every truncation is rejected. */
    for (size_t cut = 0; cut < len; cut++) {
        diag.msg[0] = '\0';
        assert_int_equal(tpm2_public_parse(buf, cut, &parsed, &diag), VTPMCA_ERR_PARSE);
        assert_non_null(strstr(diag.msg, "truncated"));
    }
    /* A trailing byte. */
    buf[len] = 0;
    assert_int_equal(tpm2_public_parse(buf, len + 1, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "trailing"));

    uint8_t bad[512];
    /* Unknown type. */
    memcpy(bad, buf, len);
    bad[0] = 0x12;
    bad[1] = 0x34;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "unknown type 0x1234"));
    EVP_PKEY *pkey = NULL;
    assert_int_equal(vtpm_tpmt_public_to_evp(bad, len, &pkey, &diag), VTPMCA_ERR_PARSE);
    assert_null(pkey);
    uint8_t name[TPM2_NAME_MAX];
    size_t name_len = 1;
    assert_int_equal(vtpm_object_name(bad, len, name, &name_len, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(name_len, 0);
    /* Keyedhash is well-formed TPM but not a key we handle. */
    bad[0] = 0x00;
    bad[1] = 0x08;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_ERR_UNSUPPORTED);
    /* Unknown nameAlg. */
    memcpy(bad, buf, len);
    bad[3] = 0x99;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "nameAlg"));
    /* Unknown symmetric algorithm (at 8 + 2 + 32 policy bytes). */
    memcpy(bad, buf, len);
    bad[43] = 0x77;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "symmetric"));
    /* An RSA-only scheme on an ECC key (after algorithm, keyBits, mode). */
    memcpy(bad, buf, len);
    bad[49] = (uint8_t)TPM2_ALG_RSASSA;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "scheme"));

    /* An unknown hash inside the scheme (ECDSA with hash 0x0099). */
    memcpy(bad, buf, len);
    bad[49] = (uint8_t)TPM2_ALG_ECDSA;
    uint8_t with_hash[512];
    memcpy(with_hash, bad, 50);
    with_hash[50] = 0x00;
    with_hash[51] = 0x99;
    memcpy(with_hash + 52, bad + 50, len - 50);
    assert_int_equal(tpm2_public_parse(with_hash, len + 2, &parsed, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "scheme hash"));
    with_hash[51] = (uint8_t)TPM2_ALG_SHA256;
    assert_int_equal(tpm2_public_parse(with_hash, len + 2, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.scheme, TPM2_ALG_ECDSA);
    assert_int_equal(parsed.scheme_hash, TPM2_ALG_SHA256);

    /* NULL nameAlg parses but has no name. */
    memcpy(bad, buf, len);
    bad[3] = (uint8_t)TPM2_ALG_NULL;
    assert_int_equal(tpm2_public_parse(bad, len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_object_name(bad, len, name, &name_len, &diag), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(tpm2_public_parse(NULL, len, &parsed, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_object_name(buf, len, NULL, &name_len, &diag), VTPMCA_ERR_INVALID_ARG);

    const EVP_MD *md = NULL;
    size_t digest_len = 0;
    assert_int_equal(tpm2_hash_alg_md(TPM2_ALG_SHA384, &md, &digest_len), VTPMCA_OK);
    assert_int_equal(digest_len, 48);
    assert_int_equal(tpm2_hash_alg_md(TPM2_ALG_NULL, &md, &digest_len), VTPMCA_ERR_UNSUPPORTED);
    assert_null(md);
}

/* An ECC public area with the given point, from the L-2 template. */
static size_t ecc_public_with_point(uint16_t curve, const uint8_t *x, size_t x_len,
                                    const uint8_t *y, size_t y_len, uint8_t *buf, size_t cap)
{
    tpm2_public t;
    tpm2_writer w;
    assert_int_equal(vtpm_ek_template(VTPM_EK_ECC_P256, &t), VTPMCA_OK);
    t.curve = curve;
    t.unique_a = x;
    t.unique_a_len = x_len;
    t.unique_b = y;
    t.unique_b_len = y_len;
    tpm2_writer_init(&w, buf, cap);
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    return w.len;
}

static void test_tpmt_public_to_evp_rejects_bad_keys(void **state)
{
    (void)state;
    uint8_t buf[1024];
    EVP_PKEY *pkey = NULL;
    vtpmca_diag diag = {{0}};

    /* A P-256 key made by OpenSSL converts back to the same point. */
    EVP_PKEY *ref = EVP_EC_gen("P-256");
    assert_non_null(ref);
    uint8_t point[65];
    size_t point_len = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(ref, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                     sizeof(point), &point_len),
                     1);
    assert_int_equal(point_len, 65);
    size_t len =
        ecc_public_with_point(TPM2_ECC_NIST_P256, point + 1, 32, point + 33, 32, buf, sizeof(buf));
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, len, &pkey, &diag), VTPMCA_OK);
    assert_int_equal(EVP_PKEY_eq(pkey, ref), 1);
    EVP_PKEY_free(pkey);
    pkey = NULL;

    /* Off the curve. */
    uint8_t off[65];
    memcpy(off, point, sizeof(off));
    off[64] ^= 1;
    len = ecc_public_with_point(TPM2_ECC_NIST_P256, off + 1, 32, off + 33, 32, buf, sizeof(buf));
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, len, &pkey, &diag), VTPMCA_ERR_CRYPTO);
    assert_null(pkey);
    /* Short coordinate (leading zero stripped) is not byte-exact. */
    len =
        ecc_public_with_point(TPM2_ECC_NIST_P256, point + 2, 31, point + 33, 32, buf, sizeof(buf));
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, len, &pkey, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "coordinates"));
    /* A template (no point). */
    len = ecc_public_with_point(TPM2_ECC_NIST_P256, NULL, 0, NULL, 0, buf, sizeof(buf));
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, len, &pkey, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "template"));
    /* A curve we do not support (TPM_ECC_BN_P256). */
    len = ecc_public_with_point(0x0010, point + 1, 32, point + 33, 32, buf, sizeof(buf));
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, len, &pkey, &diag), VTPMCA_ERR_UNSUPPORTED);
    EVP_PKEY_free(ref);

    /* RSA: the L-1 template's zero modulus is not a key; bad exponents and sizes. */
    tpm2_public t;
    tpm2_writer w;
    uint8_t modulus[256];
    memset(modulus, 0xc5, sizeof(modulus));
    assert_int_equal(vtpm_ek_template(VTPM_EK_RSA2048, &t), VTPMCA_OK);
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_put_public(&w, &t);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, &pkey, &diag), VTPMCA_ERR_PARSE);
    t.unique_a = modulus;
    t.rsa_exponent = 4;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_put_public(&w, &t);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, &pkey, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "exponent"));
    t.rsa_exponent = 3;
    t.unique_a_len = 255;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_put_public(&w, &t);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, &pkey, &diag), VTPMCA_ERR_PARSE);
    t.unique_a_len = 256;
    t.rsa_key_bits = 1000;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_put_public(&w, &t);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, &pkey, &diag), VTPMCA_ERR_UNSUPPORTED);
    /* A well-formed RSA public converts, with the explicit exponent. */
    t.rsa_key_bits = 2048;
    tpm2_writer_init(&w, buf, sizeof(buf));
    tpm2_put_public(&w, &t);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, &pkey, &diag), VTPMCA_OK);
    BIGNUM *e = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    assert_true(BN_is_word(e, 3));
    BN_free(e);
    EVP_PKEY_free(pkey);
    assert_int_equal(vtpm_tpmt_public_to_evp(buf, w.len, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
}

/* ---- The TPM ---- */

static void check_ek_public(size_t i, const uint8_t *pub, size_t pub_len, EVP_PKEY *pkey)
{
    size_t params_len = 0;
    uint8_t *params = hex_bytes(EK_EXPECT[i].params_hex, &params_len);
    assert_true(pub_len > params_len);
    assert_memory_equal(pub, params, params_len);
    free(params);
    size_t size = EK_EXPECT[i].key_unique;
    const uint8_t *unique = pub + params_len;
    assert_int_equal(unique[0] << 8 | unique[1], size);

    if (EK_EXPECT[i].group == NULL) {
        assert_int_equal(pub_len, params_len + 2 + size);
        assert_int_equal(EVP_PKEY_get_base_id(pkey), EVP_PKEY_RSA);
        assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
        BIGNUM *e = NULL, *n = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e), 1);
        assert_true(BN_is_word(e, 65537));
        assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n), 1);
        uint8_t modulus[256];
        assert_int_equal(BN_bn2binpad(n, modulus, sizeof(modulus)), 256);
        assert_memory_equal(modulus, unique + 2, 256);
        BN_free(e);
        BN_free(n);
        return;
    }
    assert_int_equal(pub_len, params_len + 2 * (2 + size));
    const uint8_t *y = unique + 2 + size;
    assert_int_equal(y[0] << 8 | y[1], size);
    char group[32];
    assert_int_equal(EVP_PKEY_get_base_id(pkey), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                    sizeof(group), NULL),
                     1);
    assert_string_equal(group, EK_EXPECT[i].group);
    uint8_t point[1 + 2 * 48];
    size_t point_len = 0;
    assert_int_equal(EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                     sizeof(point), &point_len),
                     1);
    assert_int_equal(point_len, 1 + 2 * size);
    assert_int_equal(point[0], 0x04);
    assert_memory_equal(point + 1, unique + 2, size);
    assert_memory_equal(point + 1 + size, y + 2, size);
}

static void test_fresh_tpm_creates_each_ek(void **state)
{
    (void)state;
    vtpm *tpm = open_fresh();
    vtpmca_diag diag = {{0}};
    for (size_t i = 0; i < EK_KINDS; i++) {
        uint32_t handle = 0;
        uint8_t *pub = NULL;
        size_t pub_len = 0;
        EVP_PKEY *pkey = NULL;
        assert_int_equal(
            vtpm_create_ek(tpm, EK_EXPECT[i].kind, &handle, &pub, &pub_len, &pkey, &diag),
            VTPMCA_OK);
        assert_int_equal(handle >> 24, TPM2_HT_TRANSIENT);
        check_ek_public(i, pub, pub_len, pkey);

        /* Name = nameAlg || H(TPMT_PUBLIC), computed by us, by OpenSSL directly, and by the
         * TPM (TPM2_ReadPublic). */
        uint8_t name[TPM2_NAME_MAX], tpm_name[TPM2_NAME_MAX], digest[64];
        size_t name_len = 0, tpm_name_len = 0;
        unsigned digest_len = 0;
        assert_int_equal(vtpm_object_name(pub, pub_len, name, &name_len, &diag), VTPMCA_OK);
        const EVP_MD *md = EK_EXPECT[i].name_alg == TPM2_ALG_SHA256 ? EVP_sha256() : EVP_sha384();
        assert_int_equal(EVP_Digest(pub, pub_len, digest, &digest_len, md, NULL), 1);
        assert_int_equal(name_len, 2 + digest_len);
        assert_int_equal(name[0], 0);
        assert_int_equal(name[1], EK_EXPECT[i].name_alg);
        assert_memory_equal(name + 2, digest, digest_len);
        uint8_t *read_back = NULL;
        size_t read_back_len = 0;
        assert_int_equal(vtpm_read_public(tpm, handle, &read_back, &read_back_len, tpm_name,
                                          &tpm_name_len, &diag),
                         VTPMCA_OK);
        assert_int_equal(read_back_len, pub_len);
        assert_memory_equal(read_back, pub, pub_len);
        assert_int_equal(tpm_name_len, name_len);
        assert_memory_equal(tpm_name, name, name_len);
        free(read_back);

        /* The same seed gives the same EK within one boot too. */
        uint32_t again = 0;
        uint8_t *pub2 = NULL;
        size_t pub2_len = 0;
        create_ek_bytes(tpm, EK_EXPECT[i].kind, &again, &pub2, &pub2_len);
        assert_int_equal(pub2_len, pub_len);
        assert_memory_equal(pub2, pub, pub_len);
        free(pub2);

        assert_int_equal(vtpm_flush(tpm, handle, &diag), VTPMCA_OK);
        assert_int_equal(vtpm_flush(tpm, again, &diag), VTPMCA_OK);
        assert_int_equal(vtpm_flush(tpm, handle, &diag), VTPMCA_ERR_NOT_FOUND);
        assert_non_null(strstr(diag.msg, "TPM2_FlushContext failed: TPM_RC 0x"));
        free(pub);
        EVP_PKEY_free(pkey);
    }
    /* Outputs are optional. */
    uint32_t handle = 0;
    assert_int_equal(vtpm_create_ek(tpm, VTPM_EK_ECC_P256, &handle, NULL, NULL, NULL, &diag),
                     VTPMCA_OK);
    assert_int_equal(vtpm_flush(tpm, handle, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_create_ek(tpm, (vtpm_ek_kind)9, &handle, NULL, NULL, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_flush(tpm, TPM2_RH_OWNER, &diag), VTPMCA_ERR_INVALID_ARG);
    vtpm_close(tpm);
}

static void test_create_primary_checks_template(void **state)
{
    (void)state;
    vtpm *tpm = open_fresh();
    vtpmca_diag diag = {{0}};
    uint8_t tmpl[256];
    size_t len = iak_like_template(tmpl, sizeof(tmpl));
    uint32_t handle = 0;
    /* Bad template bytes never reach the TPM. */
    assert_int_equal(
        vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl, len - 1, &handle, NULL, NULL, &diag),
        VTPMCA_ERR_PARSE);
    assert_int_equal(vtpm_create_primary(tpm, 0x40000099, tmpl, len, &handle, NULL, NULL, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    /* Well-formed but refused by the TPM: a restricted signing key without a scheme. */
    tpm2_public t;
    assert_int_equal(tpm2_public_parse(tmpl, len, &t, NULL), VTPMCA_OK);
    t.scheme = TPM2_ALG_NULL;
    tpm2_writer w;
    tpm2_writer_init(&w, tmpl, sizeof(tmpl));
    assert_int_equal(tpm2_put_public(&w, &t), VTPMCA_OK);
    assert_int_equal(
        vtpm_create_primary(tpm, TPM2_RH_OWNER, tmpl, w.len, &handle, NULL, NULL, &diag),
        VTPMCA_ERR_INTERNAL);
    assert_non_null(strstr(diag.msg, "TPM2_CreatePrimary failed: TPM_RC 0x"));
    assert_int_equal(handle, 0);
    vtpm_close(tpm);
}

static void test_state_persists_ek_and_nv(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    uint8_t cert[EK_CERT_LEN];
    fill_pattern(cert, sizeof(cert), 0x30);

    vtpm *tpm = open_fresh();
    uint32_t ek = 0;
    uint8_t *ek_pub = NULL;
    size_t ek_pub_len = 0;
    create_ek_bytes(tpm, VTPM_EK_RSA2048, &ek, &ek_pub, &ek_pub_len);
    assert_int_equal(vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_RSA2048, cert, sizeof(cert), &diag),
                     VTPMCA_OK);
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    assert_int_equal(vtpm_save_state(tpm, &saved, &saved_len, &diag), VTPMCA_OK);
    assert_true(saved_len > 1000);
    vtpm_close(tpm);

    /* Restored: same endorsement seed -> the same EK, byte for byte; NV intact. */
    assert_int_equal(vtpm_open(saved, saved_len, &tpm, &diag), VTPMCA_OK);
    uint32_t ek2 = 0;
    uint8_t *ek2_pub = NULL;
    size_t ek2_pub_len = 0;
    create_ek_bytes(tpm, VTPM_EK_RSA2048, &ek2, &ek2_pub, &ek2_pub_len);
    assert_int_equal(ek2_pub_len, ek_pub_len);
    assert_memory_equal(ek2_pub, ek_pub, ek_pub_len);
    uint8_t *read = NULL;
    size_t read_len = 0;
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_RSA2048, &read, &read_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(read_len, sizeof(cert));
    assert_memory_equal(read, cert, sizeof(cert));
    free(read);

    /* Overwrite with a shorter certificate; that too survives a save/reopen. */
    uint8_t shorter[700];
    fill_pattern(shorter, sizeof(shorter), 0x99);
    assert_int_equal(
        vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_RSA2048, shorter, sizeof(shorter), &diag),
        VTPMCA_OK);
    uint8_t *saved2 = NULL;
    size_t saved2_len = 0;
    assert_int_equal(vtpm_save_state(tpm, &saved2, &saved2_len, &diag), VTPMCA_OK);
    vtpm_close(tpm);
    assert_int_equal(vtpm_open(saved2, saved2_len, &tpm, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_RSA2048, &read, &read_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(read_len, sizeof(shorter));
    assert_memory_equal(read, shorter, sizeof(shorter));
    free(read);
    vtpm_close(tpm);

    /* A fresh TPM has another seed, hence another EK, and no certificate. */
    tpm = open_fresh();
    uint32_t ek3 = 0;
    uint8_t *ek3_pub = NULL;
    size_t ek3_pub_len = 0;
    create_ek_bytes(tpm, VTPM_EK_RSA2048, &ek3, &ek3_pub, &ek3_pub_len);
    assert_int_equal(ek3_pub_len, ek_pub_len);
    assert_memory_not_equal(ek3_pub, ek_pub, ek_pub_len);
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_RSA2048, &read, &read_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_null(read);
    assert_non_null(strstr(diag.msg, "TPM2_NV_ReadPublic of 0x01c00002 failed"));
    assert_non_null(strstr(diag.msg, "TPM_RC_HANDLE"));
    vtpm_close(tpm);

    free(ek_pub);
    free(ek2_pub);
    free(ek3_pub);
    free(saved);
    free(saved2);
}

static void test_nv_certificate_index(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    vtpm *tpm = open_fresh();
    uint8_t cert[VTPM_NV_INDEX_MAX];
    fill_pattern(cert, sizeof(cert), 0x11);

    /* The largest index, three chunks. */
    assert_int_equal(vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_ECC_P384, cert, sizeof(cert), &diag),
                     VTPMCA_OK);
    uint32_t attributes = 0;
    size_t size = 0;
    assert_int_equal(vtpm_nv_read_public(tpm, VTPM_NV_EK_CERT_ECC_P384, &attributes, &size, &diag),
                     VTPMCA_OK);
    assert_int_equal(size, sizeof(cert));
    /* swtpm's EK certificate attributes, plus WRITTEN. */
    assert_int_equal(attributes, 0x42072001u | TPMA_NV_WRITTEN);
    assert_int_equal(VTPM_NV_CERT_ATTRIBUTES, 0x42072001u);

    /* Read it back through a raw TPM2_NV_Read with owner authorization, as
     * `tpm2_nvread -C o` does, to check the attributes allow it independently of
     * vtpm_nv_read. */
    uint8_t cmd[64];
    tpm2_writer w;
    tpm2_writer_init(&w, cmd, sizeof(cmd));
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_READ);
    tpm2_put_u32(&w, TPM2_RH_OWNER);
    tpm2_put_u32(&w, VTPM_NV_EK_CERT_ECC_P384);
    tpm2_put_password_session(&w, NULL, 0);
    tpm2_put_u16(&w, 16);
    tpm2_put_u16(&w, 2000);
    assert_int_equal(tpm2_command_end(&w), VTPMCA_OK);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    assert_int_equal(vtpm_transact(tpm, cmd, w.len, &resp, &resp_len, &diag), VTPMCA_OK);
    tpm2_response parsed;
    tpm2_reader params;
    const uint8_t *data = NULL;
    size_t data_len = 0;
    assert_int_equal(tpm2_response_parse(resp, resp_len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.rc, 0);
    assert_int_equal(tpm2_response_params(&parsed, &params), VTPMCA_OK);
    assert_int_equal(tpm2_get_tpm2b(&params, &data, &data_len), VTPMCA_OK);
    assert_int_equal(data_len, 16);
    assert_memory_equal(data, cert + 2000, 16);
    free(resp);

    /* Bad input changes nothing. */
    assert_int_equal(vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_ECC_P384, cert, 0, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(
        vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_ECC_P384, cert, VTPM_NV_INDEX_MAX + 1, &diag),
        VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_nv_define_write(tpm, 0x81010001, cert, 10, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.msg, "not an NV index"));
    uint8_t *read = NULL;
    size_t read_len = 0;
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_ECC_P384, &read, &read_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(read_len, sizeof(cert));
    assert_memory_equal(read, cert, sizeof(cert));
    free(read);

    /* Undefine, then it is gone. */
    assert_int_equal(vtpm_nv_undefine(tpm, VTPM_NV_EK_CERT_ECC_P384, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_nv_undefine(tpm, VTPM_NV_EK_CERT_ECC_P384, &diag), VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_ECC_P384, &read, &read_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_int_equal(vtpm_nv_read(tpm, 0x40000001, &read, &read_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);

    /* An index defined by the owner (not PLATFORMCREATE) is replaced too. */
    tpm2_writer_init(&w, cmd, sizeof(cmd));
    size_t mark = 0;
    tpm2_command_begin(&w, TPM2_ST_SESSIONS, TPM2_CC_NV_DEFINE_SPACE);
    tpm2_put_u32(&w, TPM2_RH_OWNER);
    tpm2_put_password_session(&w, NULL, 0);
    tpm2_put_tpm2b(&w, NULL, 0);
    tpm2_tpm2b_begin(&w, &mark);
    tpm2_put_u32(&w, VTPM_NV_EK_CERT_ECC_P256);
    tpm2_put_u16(&w, TPM2_ALG_SHA256);
    tpm2_put_u32(&w, TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD);
    tpm2_put_tpm2b(&w, NULL, 0);
    tpm2_put_u16(&w, 8);
    tpm2_tpm2b_end(&w, mark);
    assert_int_equal(tpm2_command_end(&w), VTPMCA_OK);
    assert_int_equal(vtpm_transact(tpm, cmd, w.len, &resp, &resp_len, &diag), VTPMCA_OK);
    assert_int_equal(tpm2_response_parse(resp, resp_len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.rc, 0);
    free(resp);
    /* Unwritten: reading finds no data. */
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_ECC_P256, &read, &read_len, &diag),
                     VTPMCA_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "TPM_RC_NV_UNINITIALIZED"));
    assert_int_equal(vtpm_nv_define_write(tpm, VTPM_NV_EK_CERT_ECC_P256, cert, 100, &diag),
                     VTPMCA_OK);
    assert_int_equal(vtpm_nv_read(tpm, VTPM_NV_EK_CERT_ECC_P256, &read, &read_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(read_len, 100);
    assert_memory_equal(read, cert, 100);
    free(read);
    vtpm_close(tpm);
}

static void test_open_twice_refused(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    vtpm *first = open_fresh();
    vtpm *second = NULL;
    assert_int_equal(vtpm_open(NULL, 0, &second, &diag), VTPMCA_ERR_CONFLICT);
    assert_null(second);
    assert_non_null(strstr(diag.msg, "one TPM per process"));
    /* The first one still works. */
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(vtpm_save_state(first, &blob, &blob_len, &diag), VTPMCA_OK);
    vtpm_close(first);
    /* After closing, a new open works (here from the saved state). */
    assert_int_equal(vtpm_open(blob, blob_len, &second, &diag), VTPMCA_OK);
    vtpm_close(second);
    vtpm_close(NULL);
    free(blob);

    assert_int_equal(vtpm_open(NULL, 5, &second, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_open((const uint8_t *)"x", 0, &second, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_open(NULL, 0, NULL, &diag), VTPMCA_ERR_INVALID_ARG);
}

static void test_bad_state_rejected(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    vtpm *tpm = open_fresh();
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(vtpm_save_state(tpm, &blob, &blob_len, &diag), VTPMCA_OK);
    vtpm_close(tpm);

    uint8_t garbage[512];
    memset(garbage, 0xab, sizeof(garbage));
    tpm = NULL;
    assert_int_equal(vtpm_open(garbage, sizeof(garbage), &tpm, &diag), VTPMCA_ERR_PARSE);
    assert_null(tpm);
    assert_non_null(strstr(diag.msg, "rejected the permanent state"));
    assert_int_equal(vtpm_open(blob, blob_len / 2, &tpm, &diag), VTPMCA_ERR_PARSE);

    /* The library is usable again afterwards. */
    assert_int_equal(vtpm_open(blob, blob_len, &tpm, &diag), VTPMCA_OK);
    vtpm_close(tpm);
    free(blob);
}

static void test_transact_raw(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    vtpm *tpm = open_fresh();
    uint8_t cmd[32];
    tpm2_writer w;
    tpm2_writer_init(&w, cmd, sizeof(cmd));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_GET_RANDOM);
    tpm2_put_u16(&w, 20);
    assert_int_equal(tpm2_command_end(&w), VTPMCA_OK);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    assert_int_equal(vtpm_transact(tpm, cmd, w.len, &resp, &resp_len, &diag), VTPMCA_OK);
    assert_int_equal(resp_len, 10 + 2 + 20);
    tpm2_response parsed;
    assert_int_equal(tpm2_response_parse(resp, resp_len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.rc, 0);
    free(resp);

    /* A second TPM2_Startup is refused by the TPM, which the raw call just reports. */
    tpm2_writer_init(&w, cmd, sizeof(cmd));
    tpm2_command_begin(&w, TPM2_ST_NO_SESSIONS, TPM2_CC_STARTUP);
    tpm2_put_u16(&w, TPM2_SU_CLEAR);
    tpm2_command_end(&w);
    assert_int_equal(vtpm_transact(tpm, cmd, w.len, &resp, &resp_len, &diag), VTPMCA_OK);
    assert_int_equal(tpm2_response_parse(resp, resp_len, &parsed, &diag), VTPMCA_OK);
    assert_int_equal(parsed.rc, TPM2_RC_INITIALIZE);
    free(resp);

    assert_int_equal(vtpm_transact(tpm, cmd, 9, &resp, &resp_len, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_transact(tpm, cmd, TPM2_MAX_COMMAND_SIZE + 1, &resp, &resp_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_transact(NULL, cmd, w.len, &resp, &resp_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vtpm_save_state(tpm, NULL, &resp_len, &diag), VTPMCA_ERR_INVALID_ARG);
    vtpm_close(tpm);
}

/* The TPM makes a credential for an IAK-like key against the EK and activates it. */
static void activation_roundtrip(vtpm *tpm, vtpm_ek_kind kind)
{
    vtpmca_diag diag = {{0}};
    uint32_t ek = 0, iak = 0;
    create_ek_bytes(tpm, kind, &ek, NULL, NULL);
    uint8_t tmpl[256];
    size_t tmpl_len = iak_like_template(tmpl, sizeof(tmpl));
    uint8_t *iak_pub = NULL;
    size_t iak_pub_len = 0;
    assert_int_equal(vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl, tmpl_len, &iak, &iak_pub,
                                         &iak_pub_len, &diag),
                     VTPMCA_OK);
    uint8_t iak_name[TPM2_NAME_MAX], ek_name[TPM2_NAME_MAX];
    size_t iak_name_len = 0, ek_name_len = 0;
    assert_int_equal(vtpm_object_name(iak_pub, iak_pub_len, iak_name, &iak_name_len, &diag),
                     VTPMCA_OK);
    uint8_t *ek_pub = NULL;
    size_t ek_pub_len = 0;
    assert_int_equal(vtpm_read_public(tpm, ek, &ek_pub, &ek_pub_len, ek_name, &ek_name_len, &diag),
                     VTPMCA_OK);

    uint8_t credential[32];
    fill_pattern(credential, sizeof(credential), 0x5a);
    uint8_t *blob = NULL, *secret = NULL, *info = NULL;
    size_t blob_len = 0, secret_len = 0, info_len = 0;
    assert_int_equal(vtpm_make_credential(tpm, ek, credential, sizeof(credential), iak_name,
                                          iak_name_len, &blob, &blob_len, &secret, &secret_len,
                                          &diag),
                     VTPMCA_OK);
    /* A tampered integrity HMAC, repeatedly: each failure must release its policy session
     * (libtpms holds only 3 loaded sessions). */
    uint8_t *tampered = malloc(blob_len);
    assert_non_null(tampered);
    memcpy(tampered, blob, blob_len);
    tampered[4] ^= 0x01;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vtpm_activate_credential(tpm, iak, ek, tampered, blob_len, secret,
                                                  secret_len, &info, &info_len, &diag),
                         VTPMCA_ERR_CRYPTO);
        assert_null(info);
        assert_non_null(strstr(diag.msg, "TPM2_ActivateCredential failed"));
    }
    free(tampered);
    /* Made for another object (the EK's own name): the integrity check fails. */
    uint8_t *other_blob = NULL, *other_secret = NULL;
    size_t other_blob_len = 0, other_secret_len = 0;
    assert_int_equal(vtpm_make_credential(tpm, ek, credential, sizeof(credential), ek_name,
                                          ek_name_len, &other_blob, &other_blob_len, &other_secret,
                                          &other_secret_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(vtpm_activate_credential(tpm, iak, ek, other_blob, other_blob_len,
                                              other_secret, other_secret_len, &info, &info_len,
                                              &diag),
                     VTPMCA_ERR_CRYPTO);
    free(other_blob);
    free(other_secret);

    assert_int_equal(vtpm_activate_credential(tpm, iak, ek, blob, blob_len, secret, secret_len,
                                              &info, &info_len, &diag),
                     VTPMCA_OK);
    assert_int_equal(info_len, sizeof(credential));
    assert_memory_equal(info, credential, sizeof(credential));
    free(info);
    free(blob);
    free(secret);

    /* Argument checks. */
    uint8_t dummy[8] = {1};
    assert_int_equal(vtpm_activate_credential(tpm, iak, ek, dummy, 0, dummy, sizeof(dummy), &info,
                                              &info_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    vtpm_activate_credential(tpm, iak, 0x80ffffff, dummy, sizeof(dummy), dummy, sizeof(dummy),
                             &info, &info_len, &diag);
    assert_int_equal(vtpm_make_credential(tpm, ek, credential, 65, iak_name, iak_name_len, &blob,
                                          &blob_len, &secret, &secret_len, &diag),
                     VTPMCA_ERR_INVALID_ARG);
    assert_null(blob);
    assert_int_equal(vtpm_flush(tpm, iak, &diag), VTPMCA_OK);
    assert_int_equal(vtpm_flush(tpm, ek, &diag), VTPMCA_OK);
    free(iak_pub);
    free(ek_pub);
}

static void test_activate_credential(void **state)
{
    (void)state;
    vtpm *tpm = open_fresh();
    activation_roundtrip(tpm, VTPM_EK_RSA2048);  /* RSA-OAEP seed */
    activation_roundtrip(tpm, VTPM_EK_ECC_P256); /* ECDH seed, SHA-256 */
    activation_roundtrip(tpm, VTPM_EK_ECC_P384); /* ECDH seed, SHA-384 policy session */
    vtpm_close(tpm);
}

/* Creates an EK and an IAK-like key (DA-protected: noDA clear) and runs one credential
 * activation, which authorises the IAK with its authValue. */
static vtpmca_err activate_once(vtpm *tpm, vtpmca_diag *diag)
{
    uint32_t ek = 0, iak = 0;
    uint8_t tmpl[256], name[TPM2_NAME_MAX], credential[16] = {7};
    size_t tmpl_len = iak_like_template(tmpl, sizeof(tmpl)), name_len = 0;
    uint8_t *pub = NULL, *blob = NULL, *secret = NULL, *info = NULL;
    size_t pub_len = 0, blob_len = 0, secret_len = 0, info_len = 0;
    create_ek_bytes(tpm, VTPM_EK_ECC_P256, &ek, NULL, NULL);
    assert_int_equal(
        vtpm_create_primary(tpm, TPM2_RH_ENDORSEMENT, tmpl, tmpl_len, &iak, &pub, &pub_len, diag),
        VTPMCA_OK);
    assert_int_equal(vtpm_object_name(pub, pub_len, name, &name_len, diag), VTPMCA_OK);
    assert_int_equal(vtpm_make_credential(tpm, ek, credential, sizeof(credential), name, name_len,
                                          &blob, &blob_len, &secret, &secret_len, diag),
                     VTPMCA_OK);
    vtpmca_err err = vtpm_activate_credential(tpm, iak, ek, blob, blob_len, secret, secret_len,
                                              &info, &info_len, diag);
    if (err == VTPMCA_OK) {
        assert_int_equal(info_len, sizeof(credential));
        assert_memory_equal(info, credential, sizeof(credential));
    }
    free(info);
    free(blob);
    free(secret);
    free(pub);
    return err;
}

/* Reboots with the state of an orderly shutdown keep DA-protected keys usable; power-loss
 * snapshots count a failed try per boot and lock them out after libtpms's 3 tries. */
static void test_orderly_shutdown_avoids_da_lockout(void **state)
{
    (void)state;
    vtpmca_diag diag = {{0}};
    for (int orderly = 1; orderly >= 0; orderly--) {
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        for (int boot = 0; boot < 4; boot++) {
            vtpm *tpm = NULL;
            assert_int_equal(vtpm_open(blob, blob_len, &tpm, &diag), VTPMCA_OK);
            free(blob);
            vtpmca_err err = activate_once(tpm, &diag);
            if (orderly || boot < 3) {
                assert_int_equal(err, VTPMCA_OK);
            } else {
                assert_int_equal(err, VTPMCA_ERR_LIMIT);
                assert_non_null(strstr(diag.msg, "TPM_RC_LOCKOUT"));
            }
            if (orderly) {
                assert_int_equal(vtpm_shutdown_state(tpm, &blob, &blob_len, &diag), VTPMCA_OK);
            } else {
                assert_int_equal(vtpm_save_state(tpm, &blob, &blob_len, &diag), VTPMCA_OK);
            }
            vtpm_close(tpm);
        }
        free(blob);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_constants_match_definition),
        cmocka_unit_test(test_ek_templates_marshal_and_parse),
        cmocka_unit_test(test_writer_reader_roundtrip),
        cmocka_unit_test(test_writer_limits),
        cmocka_unit_test(test_command_header_and_password_session),
        cmocka_unit_test(test_response_parse),
        cmocka_unit_test(test_rc_describe),
        cmocka_unit_test(test_tpmt_public_rejects_malformed),
        cmocka_unit_test(test_tpmt_public_to_evp_rejects_bad_keys),
        cmocka_unit_test(test_fresh_tpm_creates_each_ek),
        cmocka_unit_test(test_create_primary_checks_template),
        cmocka_unit_test(test_state_persists_ek_and_nv),
        cmocka_unit_test(test_nv_certificate_index),
        cmocka_unit_test(test_open_twice_refused),
        cmocka_unit_test(test_bad_state_rejected),
        cmocka_unit_test(test_transact_raw),
        cmocka_unit_test(test_activate_credential),
        cmocka_unit_test(test_orderly_shutdown_avoids_da_lockout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
