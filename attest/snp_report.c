/* SEV-SNP attestation report: strict parsing, TCB layouts and a readable dump.
 * Layout facts: AMD SEV-SNP firmware ABI (Table "ATTESTATION_REPORT"), as decoded by
 * virtee/sev and google/go-sev-guest; see ../shared/notes/snp-report.md. */
#include "vtpmca/snp_report.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "vtpmca/encoding.h"

/* Offsets of the fields in the 1184-byte wire format. */
enum {
    OFF_VERSION = 0x000,
    OFF_GUEST_SVN = 0x004,
    OFF_POLICY = 0x008,
    OFF_FAMILY_ID = 0x010,
    OFF_IMAGE_ID = 0x020,
    OFF_VMPL = 0x030,
    OFF_SIG_ALGO = 0x034,
    OFF_CURRENT_TCB = 0x038,
    OFF_PLATFORM_INFO = 0x040,
    OFF_KEY_INFO = 0x048,
    OFF_REPORT_DATA = 0x050,
    OFF_MEASUREMENT = 0x090,
    OFF_HOST_DATA = 0x0C0,
    OFF_ID_KEY_DIGEST = 0x0E0,
    OFF_AUTHOR_KEY_DIGEST = 0x110,
    OFF_REPORT_ID = 0x140,
    OFF_REPORT_ID_MA = 0x160,
    OFF_REPORTED_TCB = 0x180,
    OFF_CPUID_FAMILY = 0x188,
    OFF_CPUID_MODEL = 0x189,
    OFF_CPUID_STEPPING = 0x18A,
    OFF_CHIP_ID = 0x1A0,
    OFF_COMMITTED_TCB = 0x1E0,
    OFF_CURRENT_VERSION = 0x1E8,   /* build, minor, major, reserved */
    OFF_COMMITTED_VERSION = 0x1EC, /* build, minor, major, reserved */
    OFF_LAUNCH_TCB = 0x1F0,
    OFF_LAUNCH_MIT_VECTOR = 0x1F8,
    OFF_CURRENT_MIT_VECTOR = 0x200,
    OFF_SIG_R = 0x2A0,
    OFF_SIG_S = 0x2E8,
    SIG_COMPONENT_SIZE = 72,
};

#define KEY_INFO_SIGNING_KEY_SHIFT 2
#define KEY_INFO_SIGNING_KEY_MASK 0x7u
#define KEY_INFO_RESERVED_MASK 0xFFFFFFE0u /* bits 31:5 */

/* A byte range [first, last] that the ABI requires to be zero for some report versions. */
typedef struct {
    uint16_t first;
    uint16_t last;
    uint8_t min_version; /* applies to versions >= min_version ... */
    uint8_t max_version; /* ... and <= max_version */
    const char *name;
} mbz_range;

/* v2 has no CPUID (zero), v3 adds CPUID at 0x188..0x18A, v5 adds the mitigation vectors at
 * 0x1F8..0x207. The signature area holds r and s (72 bytes each) and 368 reserved bytes. */
static const mbz_range report_mbz_ranges[] = {
    {0x04C, 0x04F, 2, 5, "reserved field after key_info (0x04C..0x04F)"},
    {0x188, 0x18A, 2, 2, "cpuid_fam_id/cpuid_mod_id/cpuid_step (must be zero in version 2)"},
    {0x18B, 0x19F, 2, 5, "reserved field after cpuid (0x18B..0x19F)"},
    {0x1EB, 0x1EB, 2, 5, "reserved byte of current version (0x1EB)"},
    {0x1EF, 0x1EF, 2, 5, "reserved byte of committed version (0x1EF)"},
    {0x1F8, 0x29F, 2, 3, "reserved field after launch_tcb (0x1F8..0x29F)"},
    {0x208, 0x29F, 5, 5, "reserved field after current_mit_vector (0x208..0x29F)"},
    {0x330, 0x49F, 2, 5, "reserved field after the signature (0x330..0x49F)"},
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

const char *snp_product_name(snp_product product)
{
    switch (product) {
    case SNP_PRODUCT_MILAN:
        return "Milan";
    case SNP_PRODUCT_GENOA:
        return "Genoa";
    case SNP_PRODUCT_TURIN:
        return "Turin";
    case SNP_PRODUCT_UNKNOWN:
        break;
    }
    return "unknown";
}

vtpmca_err snp_product_parse(const char *name, snp_product *out)
{
    if (name == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    /* VCEK productName values carry a stepping suffix ("Milan-B0"); only the family counts. */
    size_t len = strcspn(name, "-");
    static const snp_product products[] = {SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN};
    for (size_t i = 0; i < sizeof(products) / sizeof(products[0]); i++) {
        const char *known = snp_product_name(products[i]);
        if (len == strlen(known) && strncasecmp(name, known, len) == 0) {
            *out = products[i];
            return VTPMCA_OK;
        }
    }
    return VTPMCA_ERR_UNSUPPORTED;
}

const char *snp_signer_name(snp_signer signer)
{
    switch (signer) {
    case SNP_SIGNER_VCEK:
        return "VCEK";
    case SNP_SIGNER_VLEK:
        return "VLEK";
    case SNP_SIGNER_NONE:
        return "none";
    }
    return "reserved";
}

vtpmca_err snp_tcb_decode(uint64_t raw, snp_product product, snp_tcb *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(raw >> (8 * i));
    snp_tcb tcb = {0};
    switch (product) {
    case SNP_PRODUCT_MILAN:
    case SNP_PRODUCT_GENOA:
        /* Bytes 2..5 are reserved; refusing non-zero ones keeps encode(decode(x)) == x. */
        if (b[2] | b[3] | b[4] | b[5])
            return VTPMCA_ERR_PARSE;
        tcb.bootloader = b[0];
        tcb.tee = b[1];
        tcb.snp = b[6];
        tcb.microcode = b[7];
        break;
    case SNP_PRODUCT_TURIN:
        if (b[4] | b[5] | b[6])
            return VTPMCA_ERR_PARSE;
        tcb.fmc = b[0];
        tcb.bootloader = b[1];
        tcb.tee = b[2];
        tcb.snp = b[3];
        tcb.microcode = b[7];
        break;
    default:
        return VTPMCA_ERR_INVALID_ARG;
    }
    *out = tcb;
    return VTPMCA_OK;
}

vtpmca_err snp_tcb_encode(const snp_tcb *tcb, snp_product product, uint64_t *out)
{
    if (tcb == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    uint8_t b[8] = {0};
    switch (product) {
    case SNP_PRODUCT_MILAN:
    case SNP_PRODUCT_GENOA:
        if (tcb->fmc != 0) /* no FMC component before Turin */
            return VTPMCA_ERR_INVALID_ARG;
        b[0] = tcb->bootloader;
        b[1] = tcb->tee;
        b[6] = tcb->snp;
        b[7] = tcb->microcode;
        break;
    case SNP_PRODUCT_TURIN:
        b[0] = tcb->fmc;
        b[1] = tcb->bootloader;
        b[2] = tcb->tee;
        b[3] = tcb->snp;
        b[7] = tcb->microcode;
        break;
    default:
        return VTPMCA_ERR_INVALID_ARG;
    }
    *out = le64(b);
    return VTPMCA_OK;
}

static vtpmca_err check_mbz_ranges(const uint8_t *buf, uint32_t version, vtpmca_diag *diag)
{
    for (size_t i = 0; i < sizeof(report_mbz_ranges) / sizeof(report_mbz_ranges[0]); i++) {
        const mbz_range *range = &report_mbz_ranges[i];
        if (version < range->min_version || version > range->max_version)
            continue;
        for (unsigned off = range->first; off <= range->last; off++) {
            if (buf[off] != 0)
                return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                                   "report %s is not zero (byte 0x%03X is 0x%02X)", range->name,
                                   off, buf[off]);
        }
    }
    return VTPMCA_OK;
}

static void decode_fields(const uint8_t *buf, snp_report *r)
{
    r->version = le32(buf + OFF_VERSION);
    r->guest_svn = le32(buf + OFF_GUEST_SVN);
    r->policy = le64(buf + OFF_POLICY);
    memcpy(r->family_id, buf + OFF_FAMILY_ID, sizeof(r->family_id));
    memcpy(r->image_id, buf + OFF_IMAGE_ID, sizeof(r->image_id));
    r->vmpl = le32(buf + OFF_VMPL);
    r->signature_algo = le32(buf + OFF_SIG_ALGO);
    r->current_tcb = le64(buf + OFF_CURRENT_TCB);
    r->platform_info = le64(buf + OFF_PLATFORM_INFO);
    r->key_info = le32(buf + OFF_KEY_INFO);
    memcpy(r->report_data, buf + OFF_REPORT_DATA, sizeof(r->report_data));
    memcpy(r->measurement, buf + OFF_MEASUREMENT, sizeof(r->measurement));
    memcpy(r->host_data, buf + OFF_HOST_DATA, sizeof(r->host_data));
    memcpy(r->id_key_digest, buf + OFF_ID_KEY_DIGEST, sizeof(r->id_key_digest));
    memcpy(r->author_key_digest, buf + OFF_AUTHOR_KEY_DIGEST, sizeof(r->author_key_digest));
    memcpy(r->report_id, buf + OFF_REPORT_ID, sizeof(r->report_id));
    memcpy(r->report_id_ma, buf + OFF_REPORT_ID_MA, sizeof(r->report_id_ma));
    r->reported_tcb = le64(buf + OFF_REPORTED_TCB);
    r->cpuid_family = buf[OFF_CPUID_FAMILY];
    r->cpuid_model = buf[OFF_CPUID_MODEL];
    r->cpuid_stepping = buf[OFF_CPUID_STEPPING];
    memcpy(r->chip_id, buf + OFF_CHIP_ID, sizeof(r->chip_id));
    r->committed_tcb = le64(buf + OFF_COMMITTED_TCB);
    r->current_build = buf[OFF_CURRENT_VERSION];
    r->current_minor = buf[OFF_CURRENT_VERSION + 1];
    r->current_major = buf[OFF_CURRENT_VERSION + 2];
    r->committed_build = buf[OFF_COMMITTED_VERSION];
    r->committed_minor = buf[OFF_COMMITTED_VERSION + 1];
    r->committed_major = buf[OFF_COMMITTED_VERSION + 2];
    r->launch_tcb = le64(buf + OFF_LAUNCH_TCB);
    /* Zero before v5 (checked as reserved above). */
    r->launch_mit_vector = le64(buf + OFF_LAUNCH_MIT_VECTOR);
    r->current_mit_vector = le64(buf + OFF_CURRENT_MIT_VECTOR);
    memcpy(r->sig_r, buf + OFF_SIG_R, SIG_COMPONENT_SIZE);
    memcpy(r->sig_s, buf + OFF_SIG_S, SIG_COMPONENT_SIZE);
    memcpy(r->raw, buf, SNP_REPORT_SIZE);
}

static void put_le32(uint8_t *dst, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        dst[i] = (uint8_t)(value >> (8 * i));
}

static void put_le64(uint8_t *dst, uint64_t value)
{
    put_le32(dst, (uint32_t)value);
    put_le32(dst + 4, (uint32_t)(value >> 32));
}

/* The inverse of decode_fields, kept beside it so both use one offset table. */
vtpmca_err snp_report_encode(const snp_report *r, uint8_t buf[SNP_REPORT_SIZE])
{
    if (r == NULL || buf == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    memset(buf, 0, SNP_REPORT_SIZE);
    put_le32(buf + OFF_VERSION, r->version);
    put_le32(buf + OFF_GUEST_SVN, r->guest_svn);
    put_le64(buf + OFF_POLICY, r->policy);
    memcpy(buf + OFF_FAMILY_ID, r->family_id, sizeof(r->family_id));
    memcpy(buf + OFF_IMAGE_ID, r->image_id, sizeof(r->image_id));
    put_le32(buf + OFF_VMPL, r->vmpl);
    put_le32(buf + OFF_SIG_ALGO, r->signature_algo);
    put_le64(buf + OFF_CURRENT_TCB, r->current_tcb);
    put_le64(buf + OFF_PLATFORM_INFO, r->platform_info);
    put_le32(buf + OFF_KEY_INFO, r->key_info);
    memcpy(buf + OFF_REPORT_DATA, r->report_data, sizeof(r->report_data));
    memcpy(buf + OFF_MEASUREMENT, r->measurement, sizeof(r->measurement));
    memcpy(buf + OFF_HOST_DATA, r->host_data, sizeof(r->host_data));
    memcpy(buf + OFF_ID_KEY_DIGEST, r->id_key_digest, sizeof(r->id_key_digest));
    memcpy(buf + OFF_AUTHOR_KEY_DIGEST, r->author_key_digest, sizeof(r->author_key_digest));
    memcpy(buf + OFF_REPORT_ID, r->report_id, sizeof(r->report_id));
    memcpy(buf + OFF_REPORT_ID_MA, r->report_id_ma, sizeof(r->report_id_ma));
    put_le64(buf + OFF_REPORTED_TCB, r->reported_tcb);
    buf[OFF_CPUID_FAMILY] = r->cpuid_family;
    buf[OFF_CPUID_MODEL] = r->cpuid_model;
    buf[OFF_CPUID_STEPPING] = r->cpuid_stepping;
    memcpy(buf + OFF_CHIP_ID, r->chip_id, sizeof(r->chip_id));
    put_le64(buf + OFF_COMMITTED_TCB, r->committed_tcb);
    buf[OFF_CURRENT_VERSION] = r->current_build;
    buf[OFF_CURRENT_VERSION + 1] = r->current_minor;
    buf[OFF_CURRENT_VERSION + 2] = r->current_major;
    buf[OFF_COMMITTED_VERSION] = r->committed_build;
    buf[OFF_COMMITTED_VERSION + 1] = r->committed_minor;
    buf[OFF_COMMITTED_VERSION + 2] = r->committed_major;
    put_le64(buf + OFF_LAUNCH_TCB, r->launch_tcb);
    put_le64(buf + OFF_LAUNCH_MIT_VECTOR, r->launch_mit_vector);
    put_le64(buf + OFF_CURRENT_MIT_VECTOR, r->current_mit_vector);
    memcpy(buf + OFF_SIG_R, r->sig_r, SIG_COMPONENT_SIZE);
    memcpy(buf + OFF_SIG_S, r->sig_s, SIG_COMPONENT_SIZE);
    return VTPMCA_OK;
}

vtpmca_err snp_report_parse(const uint8_t *buf, size_t len, snp_report *out, vtpmca_diag *diag)
{
    if (buf == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "snp_report_parse: missing argument");
    if (len != SNP_REPORT_SIZE)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "report size is %zu bytes, expected %d", len,
                           SNP_REPORT_SIZE);

    uint32_t version = le32(buf + OFF_VERSION);
    /* Version 4 changed layouts in ways no public source agrees on; accept only known ones. */
    if (version != 2 && version != 3 && version != 5)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "report version %u is not supported (2, 3 or 5)", version);
    uint32_t sig_algo = le32(buf + OFF_SIG_ALGO);
    if (sig_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "report signature_algo %u is not supported (1 = ECDSA P-384 SHA-384)",
                           sig_algo);
    uint64_t policy = le64(buf + OFF_POLICY);
    if ((policy & SNP_POLICY_RESERVED_ONE) == 0)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "report policy bit 17 (reserved, must be one) is zero (policy 0x%llx)",
                           (unsigned long long)policy);
    uint32_t key_info = le32(buf + OFF_KEY_INFO);
    if (key_info & KEY_INFO_RESERVED_MASK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "report key_info reserved bits 31:5 are not zero (key_info 0x%08x)",
                           key_info);
    unsigned signer = (key_info >> KEY_INFO_SIGNING_KEY_SHIFT) & KEY_INFO_SIGNING_KEY_MASK;
    if (signer == SNP_SIGNER_NONE)
        return vtpmca_fail(diag, VTPMCA_ERR_UNSUPPORTED,
                           "report key_info signing_key is 7: the report is not signed");
    if (signer != SNP_SIGNER_VCEK && signer != SNP_SIGNER_VLEK)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                           "report key_info signing_key %u is reserved (0 VCEK, 1 VLEK)", signer);
    vtpmca_err err = check_mbz_ranges(buf, version, diag);
    if (err != VTPMCA_OK)
        return err;

    decode_fields(buf, out);
    return VTPMCA_OK;
}

snp_signer snp_report_signer(const snp_report *report)
{
    if (report == NULL)
        return SNP_SIGNER_NONE;
    return (snp_signer)((report->key_info >> KEY_INFO_SIGNING_KEY_SHIFT) &
                        KEY_INFO_SIGNING_KEY_MASK);
}

snp_product snp_report_product(const snp_report *report)
{
    if (report == NULL || report->version < 3)
        return SNP_PRODUCT_UNKNOWN;
    uint8_t family = report->cpuid_family, model = report->cpuid_model;
    if (family == 0x19 && model <= 0x0F)
        return SNP_PRODUCT_MILAN;
    if (family == 0x19 && ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF)))
        return SNP_PRODUCT_GENOA;
    if (family == 0x1A && model <= 0x11)
        return SNP_PRODUCT_TURIN;
    return SNP_PRODUCT_UNKNOWN;
}

/* ---- describe ---- */

typedef struct {
    uint64_t bit;
    const char *name;
} named_bit;

static const named_bit policy_bits[] = {
    {SNP_POLICY_SMT, "SMT"},
    {SNP_POLICY_RESERVED_ONE, "RESERVED_ONE"},
    {SNP_POLICY_MIGRATE_MA, "MIGRATE_MA"},
    {SNP_POLICY_DEBUG, "DEBUG"},
    {SNP_POLICY_SINGLE_SOCKET, "SINGLE_SOCKET"},
    {SNP_POLICY_CXL_ALLOW, "CXL_ALLOW"},
    {SNP_POLICY_MEM_AES_256_XTS, "MEM_AES_256_XTS"},
    {SNP_POLICY_RAPL_DIS, "RAPL_DIS"},
    {SNP_POLICY_CIPHERTEXT_HIDING, "CIPHERTEXT_HIDING"},
    {SNP_POLICY_PAGE_SWAP_DISABLE, "PAGE_SWAP_DISABLE"},
};

static const named_bit platform_bits[] = {
    {SNP_PLATFORM_SMT_EN, "SMT_EN"},
    {SNP_PLATFORM_TSME_EN, "TSME_EN"},
    {SNP_PLATFORM_ECC_EN, "ECC_EN"},
    {SNP_PLATFORM_RAPL_DIS, "RAPL_DIS"},
    {SNP_PLATFORM_CIPHERTEXT_HIDING_EN, "CIPHERTEXT_HIDING_EN"},
    {SNP_PLATFORM_ALIAS_CHECK_COMPLETE, "ALIAS_CHECK_COMPLETE"},
    {SNP_PLATFORM_TIO_EN, "TIO_EN"},
};

static const named_bit key_info_bits[] = {
    {SNP_KEY_INFO_AUTHOR_KEY_EN, "AUTHOR_KEY_EN"},
    {SNP_KEY_INFO_MASK_CHIP_KEY, "MASK_CHIP_KEY"},
};

/* Prints "0x<value> [NAME NAME unknown 0x..]" for a bit field; bits in ignore_mask are
 * sub-fields the caller prints separately (policy ABI version, key_info signing key). */
static void print_bits(FILE *f, const char *label, uint64_t value, int hex_digits,
                       const named_bit *bits, size_t count, uint64_t ignore_mask)
{
    fprintf(f, "%-20s 0x%0*llx [", label, hex_digits, (unsigned long long)value);
    uint64_t rest = value & ~ignore_mask;
    const char *sep = "";
    for (size_t i = 0; i < count; i++) {
        if (value & bits[i].bit) {
            fprintf(f, "%s%s", sep, bits[i].name);
            sep = " ";
        }
        rest &= ~bits[i].bit;
    }
    if (rest != 0)
        fprintf(f, "%sunknown 0x%llx", sep, (unsigned long long)rest);
    fprintf(f, "]\n");
}

static void print_hex(FILE *f, const char *label, const uint8_t *bytes, size_t len)
{
    char text[2 * 64 + 1];
    if (len > 64 || vt_hex_encode(bytes, len, text, sizeof(text)) != VTPMCA_OK)
        text[0] = '\0';
    fprintf(f, "%-20s %s\n", label, text);
}

static void print_tcb(FILE *f, const char *label, uint64_t raw, snp_product product)
{
    snp_tcb tcb;
    fprintf(f, "%-20s 0x%016llx", label, (unsigned long long)raw);
    if (product == SNP_PRODUCT_UNKNOWN) {
        fprintf(f, " (layout unknown: product not known)\n");
    } else if (snp_tcb_decode(raw, product, &tcb) != VTPMCA_OK) {
        fprintf(f, " (reserved bytes set: not a valid %s TCB)\n", snp_product_name(product));
    } else if (product == SNP_PRODUCT_TURIN) {
        fprintf(f, " (fmc %u, bootloader %u, tee %u, snp %u, microcode %u)\n", tcb.fmc,
                tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode);
    } else {
        fprintf(f, " (bootloader %u, tee %u, snp %u, microcode %u)\n", tcb.bootloader, tcb.tee,
                tcb.snp, tcb.microcode);
    }
}

vtpmca_err snp_report_describe(const snp_report *report, snp_product product, void *out_file)
{
    if (report == NULL || out_file == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    FILE *f = out_file;
    if (product == SNP_PRODUCT_UNKNOWN)
        product = snp_report_product(report);

    fprintf(f, "%-20s %u\n", "version", report->version);
    fprintf(f, "%-20s %u\n", "guest_svn", report->guest_svn);
    print_bits(f, "policy", report->policy, 16, policy_bits,
               sizeof(policy_bits) / sizeof(policy_bits[0]), 0xFFFF);
    fprintf(f, "%-20s %u.%u\n", "policy abi (min)", (unsigned)((report->policy >> 8) & 0xFF),
            (unsigned)(report->policy & 0xFF));
    print_hex(f, "family_id", report->family_id, sizeof(report->family_id));
    print_hex(f, "image_id", report->image_id, sizeof(report->image_id));
    fprintf(f, "%-20s %u\n", "vmpl", report->vmpl);
    fprintf(f, "%-20s %u%s\n", "signature_algo", report->signature_algo,
            report->signature_algo == SNP_SIG_ALGO_ECDSA_P384_SHA384 ? " (ECDSA P-384 SHA-384)"
                                                                     : "");
    print_tcb(f, "current_tcb", report->current_tcb, product);
    print_bits(f, "platform_info", report->platform_info, 16, platform_bits,
               sizeof(platform_bits) / sizeof(platform_bits[0]), 0);
    print_bits(f, "key_info", report->key_info, 8, key_info_bits,
               sizeof(key_info_bits) / sizeof(key_info_bits[0]), 0x1Cu);
    fprintf(f, "%-20s %s\n", "signing_key", snp_signer_name(snp_report_signer(report)));
    print_hex(f, "report_data", report->report_data, sizeof(report->report_data));
    print_hex(f, "measurement", report->measurement, sizeof(report->measurement));
    print_hex(f, "host_data", report->host_data, sizeof(report->host_data));
    print_hex(f, "id_key_digest", report->id_key_digest, sizeof(report->id_key_digest));
    print_hex(f, "author_key_digest", report->author_key_digest, sizeof(report->author_key_digest));
    print_hex(f, "report_id", report->report_id, sizeof(report->report_id));
    print_hex(f, "report_id_ma", report->report_id_ma, sizeof(report->report_id_ma));
    print_tcb(f, "reported_tcb", report->reported_tcb, product);
    if (report->version >= 3)
        fprintf(f, "%-20s family 0x%02x model 0x%02x stepping 0x%02x (%s)\n", "cpuid",
                report->cpuid_family, report->cpuid_model, report->cpuid_stepping,
                snp_product_name(snp_report_product(report)));
    else
        fprintf(f, "%-20s absent (version 2)\n", "cpuid");
    fprintf(f, "%-20s %s\n", "product", snp_product_name(product));
    print_hex(f, "chip_id", report->chip_id, sizeof(report->chip_id));
    print_tcb(f, "committed_tcb", report->committed_tcb, product);
    fprintf(f, "%-20s %u.%u.%u\n", "current_version", report->current_major, report->current_minor,
            report->current_build);
    fprintf(f, "%-20s %u.%u.%u\n", "committed_version", report->committed_major,
            report->committed_minor, report->committed_build);
    print_tcb(f, "launch_tcb", report->launch_tcb, product);
    if (report->version >= 5) {
        fprintf(f, "%-20s 0x%016llx\n", "launch_mit_vector",
                (unsigned long long)report->launch_mit_vector);
        fprintf(f, "%-20s 0x%016llx\n", "current_mit_vector",
                (unsigned long long)report->current_mit_vector);
    }
    /* r and s are little-endian; print the meaningful 48 bytes as stored. */
    print_hex(f, "signature_r (le)", report->sig_r, 48);
    print_hex(f, "signature_s (le)", report->sig_s, 48);
    return ferror(f) ? VTPMCA_ERR_IO : VTPMCA_OK;
}
