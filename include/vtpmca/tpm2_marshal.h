/* TPM 2.0 wire format (TCG TPM 2.0 Library, Part 2 structures, Part 3 commands): big-endian
 * put/get of integers, sized buffers (TPM2B), command headers, authorization sessions and
 * response headers; plus pure functions over TPMT_PUBLIC (parse, marshal, object name, OpenSSL
 * key) and the TCG EK Credential Profile default EK templates. Nothing here needs a TPM, so the
 * CA uses it to check EK/IAK public areas and the vTPM client uses it to talk to libtpms.
 *
 * Writers and readers are "sticky": the first failure is remembered in `err` and every later
 * call returns it without touching the buffer, so a sequence of puts/gets can be checked once
 * at the end (each call also returns the current status). */
#ifndef VTPMCA_TPM2_MARSHAL_H
#define VTPMCA_TPM2_MARSHAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"

/* ---- Constants (values from TPM 2.0 Library Part 2) ---- */

/* TPM_ST */
#define TPM2_ST_NO_SESSIONS 0x8001u
#define TPM2_ST_SESSIONS 0x8002u

/* TPM_RH / TPM_RS */
#define TPM2_RH_OWNER 0x40000001u
#define TPM2_RH_NULL 0x40000007u
#define TPM2_RS_PW 0x40000009u
#define TPM2_RH_ENDORSEMENT 0x4000000Bu
#define TPM2_RH_PLATFORM 0x4000000Cu

/* TPM_HT (the top byte of a handle) */
#define TPM2_HT_NV_INDEX 0x01u
#define TPM2_HT_TRANSIENT 0x80u
#define TPM2_HT_PERSISTENT 0x81u

/* TPM_CC */
#define TPM2_CC_NV_UNDEFINE_SPACE 0x00000122u
#define TPM2_CC_NV_DEFINE_SPACE 0x0000012Au
#define TPM2_CC_CREATE_PRIMARY 0x00000131u
#define TPM2_CC_NV_WRITE 0x00000137u
#define TPM2_CC_STARTUP 0x00000144u
#define TPM2_CC_SHUTDOWN 0x00000145u
#define TPM2_CC_ACTIVATE_CREDENTIAL 0x00000147u
#define TPM2_CC_NV_READ 0x0000014Eu
#define TPM2_CC_POLICY_SECRET 0x00000151u
#define TPM2_CC_POLICY_OR 0x00000171u
#define TPM2_CC_FLUSH_CONTEXT 0x00000165u
#define TPM2_CC_MAKE_CREDENTIAL 0x00000168u
#define TPM2_CC_NV_READ_PUBLIC 0x00000169u
#define TPM2_CC_READ_PUBLIC 0x00000173u
#define TPM2_CC_START_AUTH_SESSION 0x00000176u
#define TPM2_CC_GET_RANDOM 0x0000017Bu

/* TPM_SU, TPM_SE */
#define TPM2_SU_CLEAR 0x0000u
#define TPM2_SE_POLICY 0x01u

/* TPM_ALG_ID */
#define TPM2_ALG_RSA 0x0001u
#define TPM2_ALG_SHA1 0x0004u
#define TPM2_ALG_AES 0x0006u
#define TPM2_ALG_KEYEDHASH 0x0008u
#define TPM2_ALG_SHA256 0x000Bu
#define TPM2_ALG_SHA384 0x000Cu
#define TPM2_ALG_SHA512 0x000Du
#define TPM2_ALG_NULL 0x0010u
#define TPM2_ALG_SM4 0x0013u
#define TPM2_ALG_RSASSA 0x0014u
#define TPM2_ALG_RSAES 0x0015u
#define TPM2_ALG_RSAPSS 0x0016u
#define TPM2_ALG_OAEP 0x0017u
#define TPM2_ALG_ECDSA 0x0018u
#define TPM2_ALG_ECDH 0x0019u
#define TPM2_ALG_ECDAA 0x001Au
#define TPM2_ALG_SM2 0x001Bu
#define TPM2_ALG_ECSCHNORR 0x001Cu
#define TPM2_ALG_ECMQV 0x001Du
#define TPM2_ALG_KDF1_SP800_56A 0x0020u
#define TPM2_ALG_KDF2 0x0021u
#define TPM2_ALG_KDF1_SP800_108 0x0022u
#define TPM2_ALG_ECC 0x0023u
#define TPM2_ALG_SYMCIPHER 0x0025u
#define TPM2_ALG_CAMELLIA 0x0026u
#define TPM2_ALG_CFB 0x0043u

/* TPM_ECC_CURVE */
#define TPM2_ECC_NIST_P256 0x0003u
#define TPM2_ECC_NIST_P384 0x0004u
#define TPM2_ECC_NIST_P521 0x0005u

/* TPMA_OBJECT */
#define TPMA_OBJECT_FIXEDTPM 0x00000002u
#define TPMA_OBJECT_STCLEAR 0x00000004u
#define TPMA_OBJECT_FIXEDPARENT 0x00000010u
#define TPMA_OBJECT_SENSITIVEDATAORIGIN 0x00000020u
#define TPMA_OBJECT_USERWITHAUTH 0x00000040u
#define TPMA_OBJECT_ADMINWITHPOLICY 0x00000080u
#define TPMA_OBJECT_NODA 0x00000400u
#define TPMA_OBJECT_RESTRICTED 0x00010000u
#define TPMA_OBJECT_DECRYPT 0x00020000u
#define TPMA_OBJECT_SIGN_ENCRYPT 0x00040000u

/* TPMA_NV */
#define TPMA_NV_PPWRITE 0x00000001u
#define TPMA_NV_OWNERWRITE 0x00000002u
#define TPMA_NV_AUTHWRITE 0x00000004u
#define TPMA_NV_WRITELOCKED 0x00000800u
#define TPMA_NV_WRITEDEFINE 0x00002000u
#define TPMA_NV_PPREAD 0x00010000u
#define TPMA_NV_OWNERREAD 0x00020000u
#define TPMA_NV_AUTHREAD 0x00040000u
#define TPMA_NV_NO_DA 0x02000000u
#define TPMA_NV_WRITTEN 0x20000000u
#define TPMA_NV_PLATFORMCREATE 0x40000000u

/* TPM_RC values the callers test for (format-1 codes without parameter/handle number). */
#define TPM2_RC_SUCCESS 0x000u
#define TPM2_RC_INITIALIZE 0x100u
#define TPM2_RC_POLICY 0x126u
#define TPM2_RC_NV_SIZE 0x147u
#define TPM2_RC_NV_UNINITIALIZED 0x14Au
#define TPM2_RC_NV_SPACE 0x14Bu
#define TPM2_RC_NV_DEFINED 0x14Cu
#define TPM2_RC_FMT1 0x080u /* format-1 code: bits 8..11 number a handle/parameter/session */
#define TPM2_RC_P 0x040u    /* format-1: the number is a parameter number */
#define TPM2_RC_VALUE 0x084u
#define TPM2_RC_HANDLE 0x08Bu
#define TPM2_RC_AUTH_FAIL 0x08Eu
#define TPM2_RC_SIZE 0x095u
#define TPM2_RC_POLICY_FAIL 0x09Du
#define TPM2_RC_INTEGRITY 0x09Fu
#define TPM2_RC_BAD_AUTH 0x0A2u
#define TPM2_RC_OBJECT_MEMORY 0x902u
#define TPM2_RC_YIELDED 0x908u
#define TPM2_RC_TESTING 0x90Au
#define TPM2_RC_REFERENCE_H0 0x910u
#define TPM2_RC_LOCKOUT 0x921u
#define TPM2_RC_RETRY 0x922u
#define TPM2_RC_SESSION_MEMORY 0x903u
#define TPM2_RC_MEMORY 0x904u
#define TPM2_RC_SESSION_HANDLES 0x905u
#define TPM2_RC_OBJECT_HANDLES 0x906u

/* Sizes. TPM2_MAX_COMMAND_SIZE is libtpms's TPM_BUFFER_MAX; TPM2_MAX_NV_BUFFER is the
 * MAX_NV_BUFFER_SIZE of the PC Client profile (and libtpms). */
#define TPM2_HEADER_SIZE 10u
#define TPM2_MAX_COMMAND_SIZE 4096u
#define TPM2_MAX_NV_BUFFER 1024u
#define TPM2_MAX_DIGEST 64u
#define TPM2_NAME_MAX (2u + TPM2_MAX_DIGEST) /* nameAlg || digest */

/* ---- Writer ---- */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    vtpmca_err err; /* first failure (VTPMCA_ERR_LIMIT when cap is exceeded) */
} tpm2_writer;

/* Starts writing into buf[0..cap). */
vtpmca_err tpm2_writer_init(tpm2_writer *w, uint8_t *buf, size_t cap);
vtpmca_err tpm2_put_u8(tpm2_writer *w, uint8_t value);
vtpmca_err tpm2_put_u16(tpm2_writer *w, uint16_t value);
vtpmca_err tpm2_put_u32(tpm2_writer *w, uint32_t value);
vtpmca_err tpm2_put_u64(tpm2_writer *w, uint64_t value);
vtpmca_err tpm2_put_bytes(tpm2_writer *w, const void *data, size_t len);
/* A TPM2B: u16 size then the bytes (len <= 0xffff; data may be NULL when len == 0). */
vtpmca_err tpm2_put_tpm2b(tpm2_writer *w, const void *data, size_t len);
/* A TPM2B wrapping a structure (TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, ...): begin reserves
 * the u16 size and records its position in *mark; end fills it in. */
vtpmca_err tpm2_tpm2b_begin(tpm2_writer *w, size_t *mark);
vtpmca_err tpm2_tpm2b_end(tpm2_writer *w, size_t mark);

/* Command header: tag, a size placeholder and the command code. The writer must be empty. */
vtpmca_err tpm2_command_begin(tpm2_writer *w, uint16_t tag, uint32_t command_code);
/* Patches the header's size with the bytes written; returns the writer's status. */
vtpmca_err tpm2_command_end(tpm2_writer *w);

/* Authorization area of a TPM2_ST_SESSIONS command: begin reserves the u32
 * authorizationSize, each tpm2_put_auth appends one TPMS_AUTH_COMMAND, end fills the size. */
vtpmca_err tpm2_sessions_begin(tpm2_writer *w, size_t *mark);
vtpmca_err tpm2_put_auth(tpm2_writer *w, uint32_t session_handle, const uint8_t *nonce,
                         size_t nonce_len, uint8_t attributes, const uint8_t *hmac,
                         size_t hmac_len);
vtpmca_err tpm2_sessions_end(tpm2_writer *w, size_t mark);
/* A whole authorization area with one password session (TPM_RS_PW, empty nonce,
 * attributes 0, hmac = password; password may be NULL when len == 0). */
vtpmca_err tpm2_put_password_session(tpm2_writer *w, const uint8_t *password, size_t len);

/* ---- Reader ---- */

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t off;
    vtpmca_err err; /* first failure (VTPMCA_ERR_PARSE when reading past the end) */
} tpm2_reader;

vtpmca_err tpm2_reader_init(tpm2_reader *r, const uint8_t *data, size_t len);
/* On failure the out value is set to 0 / NULL. */
vtpmca_err tpm2_get_u8(tpm2_reader *r, uint8_t *out);
vtpmca_err tpm2_get_u16(tpm2_reader *r, uint16_t *out);
vtpmca_err tpm2_get_u32(tpm2_reader *r, uint32_t *out);
vtpmca_err tpm2_get_u64(tpm2_reader *r, uint64_t *out);
/* Points *out at the next len bytes (no copy; valid while the input is). */
vtpmca_err tpm2_get_bytes(tpm2_reader *r, size_t len, const uint8_t **out);
/* Reads a TPM2B: *data points at its contents (no copy), *len is its size. */
vtpmca_err tpm2_get_tpm2b(tpm2_reader *r, const uint8_t **data, size_t *len);
/* VTPMCA_OK if the reader is error-free and consumed everything, else VTPMCA_ERR_PARSE. */
vtpmca_err tpm2_reader_expect_end(const tpm2_reader *r);

/* ---- Responses ---- */

typedef struct {
    uint16_t tag;     /* TPM2_ST_NO_SESSIONS or TPM2_ST_SESSIONS */
    uint32_t rc;      /* responseCode */
    tpm2_reader body; /* positioned after the 10-byte header */
} tpm2_response;

/* Parses a response header: at least 10 bytes, a valid tag, and a size field equal to len.
 * A non-zero rc is NOT an error here (the caller decides); the body is then empty. */
vtpmca_err tpm2_response_parse(const uint8_t *resp, size_t len, tpm2_response *out,
                               vtpmca_diag *diag);
/* Once the caller has read the response handles from resp->body, gives a reader over the
 * response parameters only (a TPM2_ST_SESSIONS response has a u32 parameterSize first; the
 * authorization area after it is skipped). */
vtpmca_err tpm2_response_params(tpm2_response *resp, tpm2_reader *params);

/* Describes a TPM_RC for diagnostics, e.g. "0x0000018b (TPM_RC_HANDLE, handle 1)". out_size
 * must be at least 16; longer text is truncated. */
vtpmca_err tpm2_rc_describe(uint32_t rc, char *out, size_t out_size);
/* The TPM_RC without its handle/parameter/session number (format-1 codes), so
 * tpm2_rc_base(0x18b) == TPM2_RC_HANDLE; format-0 codes are returned unchanged. */
uint32_t tpm2_rc_base(uint32_t rc);
/* For a format-1 code about a handle (not a parameter or session), the handle's number
 * (1..7); otherwise 0. tpm2_rc_handle_number(0x18b) == 1. */
unsigned tpm2_rc_handle_number(uint32_t rc);

/* ---- Algorithms ---- */

/* OpenSSL digest and size for a TPM hash algorithm (SHA-1/256/384/512); else UNSUPPORTED. */
vtpmca_err tpm2_hash_alg_md(uint16_t hash_alg, const EVP_MD **md, size_t *digest_len);

/* ---- TPMT_PUBLIC ---- */

/* A parsed TPMT_PUBLIC of an RSA or ECC object. Byte pointers point into the parsed input
 * (or, for a template being marshalled, at caller-owned bytes). */
typedef struct {
    uint16_t type;              /* TPM2_ALG_RSA or TPM2_ALG_ECC */
    uint16_t name_alg;          /* TPM2_ALG_SHA256, ..., or TPM2_ALG_NULL */
    uint32_t object_attributes; /* TPMA_OBJECT_* */
    const uint8_t *auth_policy;
    size_t auth_policy_len;
    uint16_t sym_alg; /* TPM2_ALG_AES, ... or TPM2_ALG_NULL (then bits/mode are 0) */
    uint16_t sym_key_bits;
    uint16_t sym_mode;
    uint16_t scheme;       /* TPM2_ALG_NULL or a signing/encryption scheme */
    uint16_t scheme_hash;  /* the scheme's hash (0 for NULL and RSAES) */
    uint16_t scheme_count; /* ECDAA only */
    uint16_t rsa_key_bits; /* RSA */
    uint32_t rsa_exponent; /* RSA, as on the wire: 0 means 65537 */
    uint16_t curve;        /* ECC: TPM2_ECC_* */
    uint16_t kdf;          /* ECC: TPM2_ALG_NULL or a KDF */
    uint16_t kdf_hash;
    const uint8_t *unique_a; /* RSA modulus, or ECC x */
    size_t unique_a_len;
    const uint8_t *unique_b; /* ECC y (unused for RSA) */
    size_t unique_b_len;
} tpm2_public;

/* Strictly parses a TPMT_PUBLIC (no TPM2B size in front; trailing bytes are an error).
 * Unknown algorithm identifiers -> VTPMCA_ERR_PARSE; well-formed but unsupported object
 * types (keyedhash, symcipher) -> VTPMCA_ERR_UNSUPPORTED. */
vtpmca_err tpm2_public_parse(const uint8_t *tpmt_public, size_t len, tpm2_public *out,
                             vtpmca_diag *diag);
/* Appends the TPMT_PUBLIC encoding of pub (RSA or ECC) to w. */
vtpmca_err tpm2_put_public(tpm2_writer *w, const tpm2_public *pub);

/* The TPM object name: nameAlg (2 bytes, big-endian) || H_nameAlg(TPMT_PUBLIC bytes). The
 * input is parsed first, so malformed bytes are rejected. name_out holds TPM2_NAME_MAX. */
vtpmca_err vtpm_object_name(const uint8_t *tpmt_public, size_t len, uint8_t name_out[TPM2_NAME_MAX],
                            size_t *name_len, vtpmca_diag *diag);

/* The public key of an RSA or ECC (NIST P-256/P-384/P-521) TPMT_PUBLIC as an OpenSSL key:
 * RSA modulus of exactly keyBits (exponent 0 means 65537); ECC x and y each exactly the
 * curve's size and on the curve. A template (empty unique) has no key: VTPMCA_ERR_PARSE. */
vtpmca_err vtpm_tpmt_public_to_evp(const uint8_t *tpmt_public, size_t len, EVP_PKEY **out,
                                   vtpmca_diag *diag);
/* The checks of vtpm_tpmt_public_to_evp (same errors) without making an OpenSSL key: for
 * callers that only need to know the key is valid, at a fraction of the cost. */
vtpmca_err vtpm_tpmt_public_check_key(const uint8_t *tpmt_public, size_t len, vtpmca_diag *diag);

/* ---- TCG EK Credential Profile (2.x) default EK templates ---- */

typedef enum {
    VTPM_EK_RSA2048,  /* template L-1 */
    VTPM_EK_ECC_P256, /* template L-2 */
    VTPM_EK_ECC_P384, /* template H-3 */
} vtpm_ek_kind;

/* Standard NV indices of the EK certificates. */
#define VTPM_NV_EK_CERT_RSA2048 0x01c00002u
#define VTPM_NV_EK_CERT_ECC_P256 0x01c0000au
#define VTPM_NV_EK_CERT_ECC_P384 0x01c00016u

/* EK authorization policies (EK Credential Profile, "Policies" appendix):
 *   PolicyA = PolicySecret(TPM_RH_ENDORSEMENT), in SHA-256 (L-1/L-2 authPolicy) and SHA-384;
 *   PolicyC = PolicyAuthorizeNV(Policy Index I-2, 0x01c07f02), SHA-384;
 *   PolicyB = PolicyOR(PolicyA, PolicyC), SHA-384 (H-3 authPolicy). */
extern const uint8_t TPM2_EK_POLICY_A_SHA256[32];
extern const uint8_t TPM2_EK_POLICY_A_SHA384[48];
extern const uint8_t TPM2_EK_POLICY_C_SHA384[48];
extern const uint8_t TPM2_EK_POLICY_B_SHA384[48];

/* Fills *out with the default template of kind (byte pointers reference static data). */
vtpmca_err vtpm_ek_template(vtpm_ek_kind kind, tpm2_public *out);
/* The standard EK certificate NV index of kind. */
vtpmca_err vtpm_ek_cert_nv_index(vtpm_ek_kind kind, uint32_t *nv_index);

#endif
