/* Unit tests for attest/snp_report.c: strict parsing of genuine and altered reports, the
 * product from CPUID, TCB layouts per product, and the readable dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vtpmca/fileio.h"
#include "vtpmca/snp_report.h"

#define TESTDATA VTPMCA_SHARED_DIR "/testdata/snp/"

typedef struct {
    uint8_t *report_a; /* milan-v2-report.bin (DEBUG set) */
    uint8_t *report_b; /* milan-v2-report-b.bin (second chip) */
} fixture;

static uint8_t *read_exact(const char *path, size_t want)
{
    uint8_t *data = NULL;
    size_t len = 0;
    vtpmca_diag diag = {{0}};
    if (vt_file_read(path, 1 << 20, &data, &len, &diag) != VTPMCA_OK) {
        print_error("cannot read %s: %s\n", path, diag.msg);
        return NULL;
    }
    if (len != want) {
        free(data);
        return NULL;
    }
    return data;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->report_a = read_exact(TESTDATA "milan-v2-report.bin", SNP_REPORT_SIZE);
    f->report_b = read_exact(TESTDATA "milan-v2-report-b.bin", SNP_REPORT_SIZE);
    *state = f;
    return f->report_a != NULL && f->report_b != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    free(f->report_a);
    free(f->report_b);
    free(f);
    return 0;
}

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void test_parse_genuine_reports(void **state)
{
    fixture *f = *state;
    snp_report report;
    vtpmca_diag diag = {{0}};

    assert_int_equal(snp_report_parse(f->report_a, SNP_REPORT_SIZE, &report, &diag), VTPMCA_OK);
    assert_int_equal(report.version, 2);
    assert_int_equal(report.guest_svn, 0);
    /* policy 0x0B0000: SMT, the reserved-one bit and DEBUG. */
    assert_int_equal(report.policy, 0xB0000);
    assert_true(report.policy & SNP_POLICY_DEBUG);
    assert_int_equal(report.vmpl, 0);
    assert_int_equal(report.signature_algo, 1);
    assert_int_equal(report.current_tcb, 0x4405000000000002ull);
    assert_int_equal(report.reported_tcb, 0x4405000000000002ull);
    assert_int_equal(report.committed_tcb, 0x4405000000000002ull);
    assert_int_equal(report.launch_tcb, 0x4405000000000002ull);
    assert_int_equal(report.platform_info, SNP_PLATFORM_SMT_EN);
    assert_int_equal(report.key_info, 0);
    assert_int_equal(snp_report_signer(&report), SNP_SIGNER_VCEK);
    const uint8_t data_prefix[] = {1, 2, 3, 4, 5, 0};
    assert_memory_equal(report.report_data, data_prefix, sizeof(data_prefix));
    assert_memory_equal(report.measurement, f->report_a + 0x90, 48);
    assert_memory_equal(report.report_id, f->report_a + 0x140, 32);
    assert_memory_equal(report.chip_id, f->report_a + 0x1A0, 64);
    assert_int_equal(report.chip_id[0], 0x3a);
    assert_int_equal(report.current_major, 1);
    assert_int_equal(report.current_minor, 0x31);
    assert_int_equal(report.current_build, 3);
    assert_int_equal(report.committed_major, 1);
    assert_int_equal(report.committed_minor, 0x31);
    assert_int_equal(report.committed_build, 3);
    assert_int_equal(report.cpuid_family, 0);
    assert_int_equal(report.launch_mit_vector, 0);
    assert_memory_equal(report.sig_r, f->report_a + 0x2A0, 72);
    assert_memory_equal(report.sig_s, f->report_a + 0x2E8, 72);
    assert_memory_equal(report.raw, f->report_a, SNP_REPORT_SIZE);
    assert_int_equal(snp_report_product(&report), SNP_PRODUCT_UNKNOWN);

    assert_int_equal(snp_report_parse(f->report_b, SNP_REPORT_SIZE, &report, &diag), VTPMCA_OK);
    assert_int_equal(report.version, 2);
    assert_false(report.policy & SNP_POLICY_DEBUG);
    assert_int_equal(report.reported_tcb, read_le64(f->report_b + 0x180));
    assert_int_equal(report.reported_tcb, 0x7308000000000003ull);
    assert_memory_equal(report.chip_id, f->report_b + 0x1A0, 64);
}

/* One altered report and what the parser must say about it. */
typedef struct {
    const char *what;
    size_t offset;
    uint8_t value; /* written at offset (XORed when xor is set) */
    bool xor ;
    vtpmca_err expect;
    const char *diag_has;
} alteration;

static void expect_rejected(const fixture *f, const alteration *alt)
{
    uint8_t buf[SNP_REPORT_SIZE];
    memcpy(buf, f->report_a, sizeof(buf));
    if (alt->xor)
        buf[alt->offset] ^= alt->value;
    else
        buf[alt->offset] = alt->value;
    snp_report out;
    memset(&out, 0xAA, sizeof(out));
    vtpmca_diag diag = {{0}};
    vtpmca_err err = snp_report_parse(buf, sizeof(buf), &out, &diag);
    if (err != alt->expect || strstr(diag.msg, alt->diag_has) == NULL)
        fail_msg("%s: got %s \"%s\", expected %s mentioning \"%s\"", alt->what,
                 vtpmca_err_name(err), diag.msg, vtpmca_err_name(alt->expect), alt->diag_has);
    /* A rejected report leaves the output untouched. */
    uint8_t untouched[sizeof(out)];
    memset(untouched, 0xAA, sizeof(untouched));
    assert_memory_equal(&out, untouched, sizeof(out));
}

static void test_parse_rejections(void **state)
{
    fixture *f = *state;
    const alteration alterations[] = {
        {"version 4", 0x000, 4, false, VTPMCA_ERR_UNSUPPORTED, "version 4"},
        {"version 1", 0x000, 1, false, VTPMCA_ERR_UNSUPPORTED, "version 1"},
        {"version 6", 0x000, 6, false, VTPMCA_ERR_UNSUPPORTED, "version 6"},
        {"version high byte", 0x003, 1, false, VTPMCA_ERR_UNSUPPORTED, "version"},
        {"signature_algo 2", 0x034, 2, false, VTPMCA_ERR_UNSUPPORTED, "signature_algo 2"},
        {"signature_algo 0", 0x034, 0, false, VTPMCA_ERR_UNSUPPORTED, "signature_algo 0"},
        {"policy bit 17 clear", 0x00A, 0x02, true, VTPMCA_ERR_PARSE, "policy bit 17"},
        {"key_info bit 5", 0x048, 0x20, false, VTPMCA_ERR_PARSE, "key_info reserved"},
        {"key_info bit 31", 0x04B, 0x80, false, VTPMCA_ERR_PARSE, "key_info reserved"},
        {"signer 7 (unsigned)", 0x048, 7 << 2, false, VTPMCA_ERR_UNSUPPORTED, "signing_key is 7"},
        {"signer 2 (reserved)", 0x048, 2 << 2, false, VTPMCA_ERR_PARSE, "signing_key 2"},
        {"reserved 0x04C", 0x04E, 1, false, VTPMCA_ERR_PARSE, "after key_info"},
        {"cpuid family in v2", 0x188, 0x19, false, VTPMCA_ERR_PARSE, "cpuid_fam_id"},
        {"cpuid stepping in v2", 0x18A, 0x01, false, VTPMCA_ERR_PARSE, "version 2"},
        {"reserved 0x18B", 0x18B, 1, false, VTPMCA_ERR_PARSE, "0x18B..0x19F"},
        {"reserved 0x19F", 0x19F, 0x80, false, VTPMCA_ERR_PARSE, "0x18B..0x19F"},
        {"reserved 0x1EB", 0x1EB, 1, false, VTPMCA_ERR_PARSE, "current version (0x1EB)"},
        {"reserved 0x1EF", 0x1EF, 1, false, VTPMCA_ERR_PARSE, "committed version (0x1EF)"},
        {"launch_mit_vector in v2", 0x1F8, 1, false, VTPMCA_ERR_PARSE, "0x1F8..0x29F"},
        {"reserved 0x29F", 0x29F, 1, false, VTPMCA_ERR_PARSE, "0x1F8..0x29F"},
        {"reserved after signature", 0x330, 1, false, VTPMCA_ERR_PARSE, "after the signature"},
        {"last byte", 0x49F, 1, false, VTPMCA_ERR_PARSE, "after the signature"},
    };
    for (size_t i = 0; i < sizeof(alterations) / sizeof(alterations[0]); i++)
        expect_rejected(f, &alterations[i]);
}

static void test_parse_size(void **state)
{
    fixture *f = *state;
    uint8_t big[SNP_REPORT_SIZE + 1];
    memcpy(big, f->report_a, SNP_REPORT_SIZE);
    big[SNP_REPORT_SIZE] = 0;
    snp_report out;
    vtpmca_diag diag = {{0}};
    assert_int_equal(snp_report_parse(big, SNP_REPORT_SIZE - 1, &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "1183"));
    assert_int_equal(snp_report_parse(big, SNP_REPORT_SIZE + 1, &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "1185"));
    assert_int_equal(snp_report_parse(big, 0, &out, &diag), VTPMCA_ERR_PARSE);
    assert_int_equal(snp_report_parse(NULL, SNP_REPORT_SIZE, &out, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_report_parse(big, SNP_REPORT_SIZE, NULL, NULL), VTPMCA_ERR_INVALID_ARG);
    /* NULL diag is allowed on every path. */
    assert_int_equal(snp_report_parse(big, SNP_REPORT_SIZE - 1, &out, NULL), VTPMCA_ERR_PARSE);
}

/* Versions 3 and 5 move fields into what v2 reserves. */
static void test_parse_versions_3_and_5(void **state)
{
    fixture *f = *state;
    uint8_t buf[SNP_REPORT_SIZE];
    snp_report out;
    vtpmca_diag diag = {{0}};

    memcpy(buf, f->report_a, sizeof(buf));
    buf[0] = 3;
    buf[0x188] = 0x19;
    buf[0x189] = 0x11;
    buf[0x18A] = 0x01;
    assert_int_equal(snp_report_parse(buf, sizeof(buf), &out, &diag), VTPMCA_OK);
    assert_int_equal(out.version, 3);
    assert_int_equal(out.cpuid_family, 0x19);
    assert_int_equal(out.cpuid_model, 0x11);
    assert_int_equal(out.cpuid_stepping, 0x01);
    assert_int_equal(snp_report_product(&out), SNP_PRODUCT_GENOA);
    /* v3 has no mitigation vectors. */
    buf[0x200] = 1;
    assert_int_equal(snp_report_parse(buf, sizeof(buf), &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "0x1F8..0x29F"));

    buf[0] = 5;
    buf[0x1F8] = 0x0F;
    buf[0x207] = 0x80;
    assert_int_equal(snp_report_parse(buf, sizeof(buf), &out, &diag), VTPMCA_OK);
    assert_int_equal(out.launch_mit_vector, 0x0F);
    assert_int_equal(out.current_mit_vector, 0x8000000000000001ull);
    buf[0x208] = 1;
    assert_int_equal(snp_report_parse(buf, sizeof(buf), &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "0x208..0x29F"));
    buf[0x208] = 0;
    buf[0x18B] = 1;
    assert_int_equal(snp_report_parse(buf, sizeof(buf), &out, &diag), VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "0x18B..0x19F"));
}

static void test_product_from_cpuid(void **state)
{
    fixture *f = *state;
    snp_report report;
    assert_int_equal(snp_report_parse(f->report_a, SNP_REPORT_SIZE, &report, NULL), VTPMCA_OK);
    const struct {
        uint8_t family, model;
        snp_product expect;
    } cases[] = {
        {0x19, 0x00, SNP_PRODUCT_MILAN},   {0x19, 0x01, SNP_PRODUCT_MILAN},
        {0x19, 0x0F, SNP_PRODUCT_MILAN},   {0x19, 0x10, SNP_PRODUCT_GENOA},
        {0x19, 0x11, SNP_PRODUCT_GENOA},   {0x19, 0x1F, SNP_PRODUCT_GENOA},
        {0x19, 0xA0, SNP_PRODUCT_GENOA},   {0x19, 0xAF, SNP_PRODUCT_GENOA},
        {0x19, 0x20, SNP_PRODUCT_UNKNOWN}, {0x19, 0xB0, SNP_PRODUCT_UNKNOWN},
        {0x1A, 0x00, SNP_PRODUCT_TURIN},   {0x1A, 0x11, SNP_PRODUCT_TURIN},
        {0x1A, 0x12, SNP_PRODUCT_UNKNOWN}, {0x17, 0x01, SNP_PRODUCT_UNKNOWN},
    };
    report.version = 3;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        report.cpuid_family = cases[i].family;
        report.cpuid_model = cases[i].model;
        if (snp_report_product(&report) != cases[i].expect)
            fail_msg("family 0x%02x model 0x%02x: got %s", cases[i].family, cases[i].model,
                     snp_product_name(snp_report_product(&report)));
    }
    /* v2 has no CPUID, whatever the bytes say. */
    report.version = 2;
    report.cpuid_family = 0x19;
    report.cpuid_model = 0x01;
    assert_int_equal(snp_report_product(&report), SNP_PRODUCT_UNKNOWN);
    assert_int_equal(snp_report_product(NULL), SNP_PRODUCT_UNKNOWN);
}

static void test_product_names(void **state)
{
    (void)state;
    snp_product product = SNP_PRODUCT_UNKNOWN;
    assert_int_equal(snp_product_parse("Milan-B0", &product), VTPMCA_OK);
    assert_int_equal(product, SNP_PRODUCT_MILAN);
    assert_int_equal(snp_product_parse("genoa", &product), VTPMCA_OK);
    assert_int_equal(product, SNP_PRODUCT_GENOA);
    assert_int_equal(snp_product_parse("TURIN", &product), VTPMCA_OK);
    assert_int_equal(product, SNP_PRODUCT_TURIN);
    assert_int_equal(snp_product_parse("Bergamo", &product), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(snp_product_parse("Milanx", &product), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(snp_product_parse("", &product), VTPMCA_ERR_UNSUPPORTED);
    assert_int_equal(snp_product_parse(NULL, &product), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(product, SNP_PRODUCT_TURIN); /* unchanged by the failures */
    assert_string_equal(snp_product_name(SNP_PRODUCT_GENOA), "Genoa");
    assert_string_equal(snp_product_name(SNP_PRODUCT_UNKNOWN), "unknown");
    assert_string_equal(snp_signer_name(SNP_SIGNER_VLEK), "VLEK");
    assert_string_equal(snp_signer_name((snp_signer)3), "reserved");
}

static void test_tcb_layouts(void **state)
{
    fixture *f = *state;
    snp_tcb tcb;
    uint64_t raw = 0;

    /* The genuine Milan report: bootloader 2, TEE 0, SNP 5, microcode 0x44. */
    assert_int_equal(snp_tcb_decode(read_le64(f->report_a + 0x180), SNP_PRODUCT_MILAN, &tcb),
                     VTPMCA_OK);
    assert_int_equal(tcb.bootloader, 2);
    assert_int_equal(tcb.tee, 0);
    assert_int_equal(tcb.snp, 5);
    assert_int_equal(tcb.microcode, 0x44);
    assert_int_equal(tcb.fmc, 0);

    const snp_tcb milan = {.bootloader = 0x11, .tee = 0x22, .snp = 0x33, .microcode = 0x44};
    assert_int_equal(snp_tcb_encode(&milan, SNP_PRODUCT_GENOA, &raw), VTPMCA_OK);
    assert_int_equal(raw, 0x4433000000002211ull);
    assert_int_equal(snp_tcb_decode(raw, SNP_PRODUCT_GENOA, &tcb), VTPMCA_OK);
    assert_memory_equal(&tcb, &milan, sizeof(tcb));

    const snp_tcb turin = {.fmc = 1, .bootloader = 2, .tee = 3, .snp = 4, .microcode = 5};
    assert_int_equal(snp_tcb_encode(&turin, SNP_PRODUCT_TURIN, &raw), VTPMCA_OK);
    assert_int_equal(raw, 0x0500000004030201ull);
    assert_int_equal(snp_tcb_decode(raw, SNP_PRODUCT_TURIN, &tcb), VTPMCA_OK);
    assert_memory_equal(&tcb, &turin, sizeof(tcb));
    /* The same bytes mean something else on Milan: byte 2..3 are reserved there. */
    assert_int_equal(snp_tcb_decode(raw, SNP_PRODUCT_MILAN, &tcb), VTPMCA_ERR_PARSE);
    /* And a Milan value has reserved Turin bytes (byte 6 = SNP). */
    assert_int_equal(snp_tcb_decode(0x4405000000000002ull, SNP_PRODUCT_TURIN, &tcb),
                     VTPMCA_ERR_PARSE);

    /* Round trip over many values in both layouts. */
    for (unsigned v = 0; v < 256; v += 17) {
        snp_tcb in = {.bootloader = (uint8_t)v,
                      .tee = (uint8_t)(v ^ 0x5A),
                      .snp = (uint8_t)(255 - v),
                      .microcode = (uint8_t)(v * 3)};
        assert_int_equal(snp_tcb_encode(&in, SNP_PRODUCT_MILAN, &raw), VTPMCA_OK);
        assert_int_equal(snp_tcb_decode(raw, SNP_PRODUCT_MILAN, &tcb), VTPMCA_OK);
        assert_memory_equal(&tcb, &in, sizeof(tcb));
        in.fmc = (uint8_t)(v % 255 + 1); /* never 0 */
        assert_int_equal(snp_tcb_encode(&in, SNP_PRODUCT_TURIN, &raw), VTPMCA_OK);
        assert_int_equal(snp_tcb_decode(raw, SNP_PRODUCT_TURIN, &tcb), VTPMCA_OK);
        assert_memory_equal(&tcb, &in, sizeof(tcb));
        /* No FMC before Turin. */
        assert_int_equal(snp_tcb_encode(&in, SNP_PRODUCT_MILAN, &raw), VTPMCA_ERR_INVALID_ARG);
    }
    assert_int_equal(snp_tcb_encode(&milan, SNP_PRODUCT_UNKNOWN, &raw), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_tcb_decode(0, SNP_PRODUCT_UNKNOWN, &tcb), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_tcb_decode(0, SNP_PRODUCT_MILAN, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_tcb_encode(NULL, SNP_PRODUCT_MILAN, &raw), VTPMCA_ERR_INVALID_ARG);
}

static char *describe(const snp_report *report, snp_product product)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    assert_int_equal(snp_report_describe(report, product, out), VTPMCA_OK);
    fclose(out);
    return text;
}

static void test_describe(void **state)
{
    fixture *f = *state;
    snp_report report;
    assert_int_equal(snp_report_parse(f->report_a, SNP_REPORT_SIZE, &report, NULL), VTPMCA_OK);

    char *text = describe(&report, SNP_PRODUCT_MILAN);
    assert_non_null(strstr(text, "version              2\n"));
    assert_non_null(strstr(text, "[SMT RESERVED_ONE DEBUG]"));
    assert_non_null(strstr(text, "platform_info        0x0000000000000001 [SMT_EN]"));
    assert_non_null(strstr(text, "reported_tcb         0x4405000000000002 (bootloader 2, tee 0, "
                                 "snp 5, microcode 68)"));
    assert_non_null(strstr(text, "signing_key          VCEK"));
    assert_non_null(strstr(text, "current_version      1.49.3"));
    assert_non_null(strstr(text, "cpuid                absent (version 2)"));
    assert_non_null(strstr(text, "chip_id              3ac3fe21e13fb099"));
    assert_non_null(strstr(text, "measurement          b07af9620f3b839b"));
    assert_non_null(strstr(text, "report_data          0102030405000000"));
    assert_null(strstr(text, "mit_vector")); /* v5 only */
    free(text);

    /* Without a product a v2 report's TCBs are shown raw. */
    text = describe(&report, SNP_PRODUCT_UNKNOWN);
    assert_non_null(strstr(text, "0x4405000000000002 (layout unknown"));
    free(text);

    /* A Turin v5 report: FMC in the TCB, mitigation vectors shown. */
    report.version = 5;
    report.cpuid_family = 0x1A;
    report.cpuid_model = 0x02;
    report.reported_tcb = 0x0500000004030201ull;
    report.current_mit_vector = 0x3;
    report.policy |= SNP_POLICY_PAGE_SWAP_DISABLE | (1ull << 40);
    text = describe(&report, SNP_PRODUCT_UNKNOWN);
    assert_non_null(strstr(text, "(fmc 1, bootloader 2, tee 3, snp 4, microcode 5)"));
    assert_non_null(strstr(text, "current_mit_vector   0x0000000000000003"));
    assert_non_null(strstr(text, "PAGE_SWAP_DISABLE unknown 0x10000000000]"));
    assert_non_null(strstr(text, "(Turin)"));
    free(text);

    assert_int_equal(snp_report_describe(NULL, SNP_PRODUCT_MILAN, stdout), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(snp_report_describe(&report, SNP_PRODUCT_MILAN, NULL), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_genuine_reports),
        cmocka_unit_test(test_parse_rejections),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_versions_3_and_5),
        cmocka_unit_test(test_product_from_cpuid),
        cmocka_unit_test(test_product_names),
        cmocka_unit_test(test_tcb_layouts),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
