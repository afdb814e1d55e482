/* TEST-ONLY fixtures for policy and EAR tests (see snp_policy_fixture.h). */
#include "snp_policy_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmca/encoding.h"
#include "vtpmca/fileio.h"

void fixture_hex(uint8_t byte, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", byte);
    out[2 * len] = '\0';
}

static json_t *hex_list(uint8_t byte, size_t len)
{
    char hex[2 * 64 + 1];
    fixture_hex(byte, len, hex);
    return json_pack("[s]", hex);
}

json_t *fixture_strict_policy(void)
{
    char m1[97], m2[97];
    fixture_hex(FIXTURE_MEASUREMENT, 48, m1);
    fixture_hex(FIXTURE_MEASUREMENT_2, 48, m2);
    return json_pack("{s:{s:i,s:i},s:[s,s],s:b,s:b,s:b,s:i,"
                     "s:{s:i,s:i,s:i,s:i,s:i},s:i,s:o,s:o,s:o,s:o,s:o,"
                     "s:s,s:s,s:b,s:[s,s],s:{s:i,s:i}}",
                     "version_range", "min", 3, "max", 5, "measurements", m1, m2,
                     "allow_any_measurement", 0, "allow_debug", 0, "allow_migration_agent", 0,
                     "vmpl", 0, "min_tcb", "bootloader", 3, "tee", 1, "snp", 8, "microcode", 115,
                     "fmc", 2, "min_guest_svn", 2, "host_data", hex_list(FIXTURE_HOST_DATA, 32),
                     "id_key_digest", hex_list(FIXTURE_ID_KEY, 48), "author_key_digest",
                     hex_list(FIXTURE_AUTHOR_KEY, 48), "family_id", hex_list(FIXTURE_FAMILY_ID, 16),
                     "image_id", hex_list(FIXTURE_IMAGE_ID, 16), "smt", "forbidden",
                     "single_socket", "required", "allow_vlek", 0, "products", "Milan", "Turin",
                     "min_abi", "major", 1, "minor", 51);
}

vtpmca_err fixture_parse_policy(json_t *doc, snp_policy **out, vtpmca_diag *diag)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    vtpmca_err err = snp_policy_from_json(text, strlen(text), out, diag);
    free(text);
    return err;
}

vtpmca_err fixture_encode_tcbs(snp_evidence *e)
{
    snp_report *r = &e->report;
    vtpmca_err err = snp_tcb_encode(&e->current_tcb, e->product, &r->current_tcb);
    if (err == VTPMCA_OK)
        err = snp_tcb_encode(&e->reported_tcb, e->product, &r->reported_tcb);
    if (err == VTPMCA_OK)
        err = snp_tcb_encode(&e->committed_tcb, e->product, &r->committed_tcb);
    if (err == VTPMCA_OK)
        err = snp_tcb_encode(&e->launch_tcb, e->product, &r->launch_tcb);
    return err;
}

vtpmca_err fixture_evidence(snp_product product, snp_evidence *out)
{
    if (out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    snp_report *r = &out->report;
    r->version = 3;
    r->guest_svn = 2;
    r->policy = SNP_POLICY_RESERVED_ONE | SNP_POLICY_SINGLE_SOCKET;
    r->vmpl = 0;
    r->signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384;
    r->platform_info = 0;
    memset(r->measurement, FIXTURE_MEASUREMENT, sizeof(r->measurement));
    memset(r->host_data, FIXTURE_HOST_DATA, sizeof(r->host_data));
    memset(r->id_key_digest, FIXTURE_ID_KEY, sizeof(r->id_key_digest));
    memset(r->author_key_digest, FIXTURE_AUTHOR_KEY, sizeof(r->author_key_digest));
    memset(r->family_id, FIXTURE_FAMILY_ID, sizeof(r->family_id));
    memset(r->image_id, FIXTURE_IMAGE_ID, sizeof(r->image_id));
    memset(r->chip_id, 0xc1, sizeof(r->chip_id));
    r->current_major = r->committed_major = 1;
    r->current_minor = r->committed_minor = 51;
    r->current_build = r->committed_build = 3;
    snp_tcb tcb = {.bootloader = 3, .tee = 1, .snp = 8, .microcode = 115};
    if (product == SNP_PRODUCT_TURIN)
        tcb.fmc = 2;
    out->product = product;
    out->signer = SNP_SIGNER_VCEK;
    out->reported_tcb = out->current_tcb = out->committed_tcb = out->launch_tcb = tcb;
    out->vcek_source = SNP_VCEK_SUPPLIED;
    snprintf(out->vcek_product_name, sizeof(out->vcek_product_name), "%s",
             snp_product_name(product));
    return fixture_encode_tcbs(out);
}

vtpmca_err fixture_genuine_evidence(const char *file_name, snp_evidence *out, vtpmca_diag *diag)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/testdata/snp/%s", VTPMCA_SHARED_DIR, file_name);
    uint8_t *buf = NULL;
    size_t len = 0;
    vtpmca_err err = vt_file_read(path, 4096, &buf, &len, diag);
    if (err != VTPMCA_OK)
        return err;
    memset(out, 0, sizeof(*out));
    err = snp_report_parse(buf, len, &out->report, diag);
    free(buf);
    if (err != VTPMCA_OK)
        return err;
    const snp_report *r = &out->report;
    out->product = SNP_PRODUCT_MILAN; /* v2 reports do not say; these come from Milan parts */
    out->signer = snp_report_signer(r);
    out->vcek_source = SNP_VCEK_SUPPLIED;
    snprintf(out->vcek_product_name, sizeof(out->vcek_product_name), "Milan-B0");
    if ((err = snp_tcb_decode(r->current_tcb, out->product, &out->current_tcb)) != VTPMCA_OK ||
        (err = snp_tcb_decode(r->reported_tcb, out->product, &out->reported_tcb)) != VTPMCA_OK ||
        (err = snp_tcb_decode(r->committed_tcb, out->product, &out->committed_tcb)) != VTPMCA_OK ||
        (err = snp_tcb_decode(r->launch_tcb, out->product, &out->launch_tcb)) != VTPMCA_OK)
        return vtpmca_fail(diag, err, "%s: TCB does not decode for Milan", file_name);
    return VTPMCA_OK;
}

snp_policy *fixture_strict_policy_with(const char *overrides)
{
    json_t *doc = fixture_strict_policy();
    assert_non_null(doc);
    if (overrides != NULL) {
        json_t *extra = json_loads(overrides, 0, NULL);
        assert_non_null(extra);
        assert_int_equal(json_object_update(doc, extra), 0);
        json_decref(extra);
    }
    snp_policy *policy = NULL;
    vtpmca_diag diag = {{0}};
    if (fixture_parse_policy(doc, &policy, &diag) != VTPMCA_OK)
        fail_msg("policy did not parse: %s", diag.msg);
    return policy;
}
