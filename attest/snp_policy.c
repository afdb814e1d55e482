/* SEV-SNP owner policy: strict parsing of the policy document, its canonical JSON form and
 * the evaluation of every rule against verified evidence. The document is specified in
 * docs/policy.md; report facts come from ../shared/notes/snp-report.md. */
#include "vtpmca/snp_policy.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vtpmca/encoding.h"

#define REPORT_VERSION_MIN 2
#define REPORT_VERSION_MAX 5
#define VMPL_MAX 3
#define DIGEST_MAX 48
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Every allow-list entry is stored zero-padded to the widest field (48 bytes) so a single
 * comparator serves qsort and bsearch for all lists; padding never changes the order or the
 * equality of same-width values. */
typedef struct {
    uint8_t bytes[DIGEST_MAX];
} padded_digest;

typedef struct {
    padded_digest *items; /* sorted ascending, no duplicates */
    size_t count;
} digest_list;

typedef enum {
    LIST_MEASUREMENT = 0,
    LIST_HOST_DATA,
    LIST_ID_KEY_DIGEST,
    LIST_AUTHOR_KEY_DIGEST,
    LIST_FAMILY_ID,
    LIST_IMAGE_ID,
    LIST_COUNT,
} list_id;

static const struct {
    const char *key;   /* policy document key */
    const char *check; /* verdict check name */
    size_t width;      /* bytes in the report field */
} list_specs[LIST_COUNT] = {
    [LIST_MEASUREMENT] = {"measurements", "measurement", 48},
    [LIST_HOST_DATA] = {"host_data", "host_data", 32},
    [LIST_ID_KEY_DIGEST] = {"id_key_digest", "id_key_digest", 48},
    [LIST_AUTHOR_KEY_DIGEST] = {"author_key_digest", "author_key_digest", 48},
    [LIST_FAMILY_ID] = {"family_id", "family_id", 16},
    [LIST_IMAGE_ID] = {"image_id", "image_id", 16},
};

typedef enum {
    SMT_ANY = 0,
    SMT_ALLOWED,
    SMT_FORBIDDEN,
} smt_rule;

static const char *const smt_names[] = {"any", "allowed", "forbidden"};
static const char *const single_socket_names[] = {"any", "required"};

/* TCB components in evaluation order; fmc exists only on Turin. */
static const struct {
    const char *key;
    const char *check;
    size_t offset;
    bool turin_only;
} tcb_components[] = {
    {"bootloader", "min_tcb.bootloader", offsetof(snp_tcb, bootloader), false},
    {"tee", "min_tcb.tee", offsetof(snp_tcb, tee), false},
    {"snp", "min_tcb.snp", offsetof(snp_tcb, snp), false},
    {"microcode", "min_tcb.microcode", offsetof(snp_tcb, microcode), false},
    {"fmc", "min_tcb.fmc", offsetof(snp_tcb, fmc), true},
};
#define TCB_COMPONENT_COUNT ARRAY_LEN(tcb_components)

static const snp_product known_products[] = {SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA,
                                             SNP_PRODUCT_TURIN};
#define KNOWN_PRODUCT_COUNT ARRAY_LEN(known_products)

struct snp_policy {
    uint32_t version_min, version_max;
    bool allow_any_measurement;
    bool allow_debug;
    bool allow_migration_agent;
    bool allow_vlek;
    bool single_socket_required;
    smt_rule smt;
    uint32_t vmpl;
    uint32_t min_guest_svn;
    snp_tcb min_tcb;
    uint8_t min_abi_major, min_abi_minor;
    unsigned product_mask; /* bit (1u << snp_product) per allowed product; 0 = any */
    digest_list lists[LIST_COUNT];
};

static uint8_t tcb_component_value(const snp_tcb *tcb, size_t component)
{
    return ((const uint8_t *)tcb)[tcb_components[component].offset];
}

static void tcb_component_set(snp_tcb *tcb, size_t component, uint8_t value)
{
    ((uint8_t *)tcb)[tcb_components[component].offset] = value;
}

static int compare_digests(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(padded_digest));
}

static const uint8_t *report_list_field(const snp_report *report, list_id list)
{
    switch (list) {
    case LIST_MEASUREMENT:
        return report->measurement;
    case LIST_HOST_DATA:
        return report->host_data;
    case LIST_ID_KEY_DIGEST:
        return report->id_key_digest;
    case LIST_AUTHOR_KEY_DIGEST:
        return report->author_key_digest;
    case LIST_FAMILY_ID:
        return report->family_id;
    case LIST_IMAGE_ID:
        return report->image_id;
    case LIST_COUNT:
        break;
    }
    return NULL;
}

void snp_policy_free(snp_policy *policy)
{
    if (policy == NULL)
        return;
    for (size_t i = 0; i < LIST_COUNT; i++)
        free(policy->lists[i].items);
    free(policy);
}

/* ---- Parsing ---- */

static vtpmca_err parse_bool(const char *path, const json_t *value, bool *out, vtpmca_diag *diag)
{
    if (!json_is_boolean(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected true or false", path);
    *out = json_is_true(value);
    return VTPMCA_OK;
}

static vtpmca_err parse_uint(const char *path, const json_t *value, uint32_t min, uint32_t max,
                             uint32_t *out, vtpmca_diag *diag)
{
    if (!json_is_integer(value) || json_integer_value(value) < (json_int_t)min ||
        json_integer_value(value) > (json_int_t)max)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected an integer in %u..%u", path,
                           (unsigned)min, (unsigned)max);
    *out = (uint32_t)json_integer_value(value);
    return VTPMCA_OK;
}

static vtpmca_err parse_u8(const char *path, const json_t *value, uint8_t *out, vtpmca_diag *diag)
{
    uint32_t wide = 0;
    vtpmca_err err = parse_uint(path, value, 0, UINT8_MAX, &wide, diag);
    if (err == VTPMCA_OK)
        *out = (uint8_t)wide;
    return err;
}

static vtpmca_err unknown_key(const char *parent, const char *key, vtpmca_diag *diag)
{
    if (parent == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%.64s: unknown key", key);
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s.%.64s: unknown key", parent, key);
}

static vtpmca_err parse_version_range(json_t *value, snp_policy *policy, vtpmca_diag *diag)
{
    if (!json_is_object(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "version_range: expected an object");
    const char *key;
    json_t *member;
    json_object_foreach(value, key, member)
    {
        vtpmca_err err;
        if (strcmp(key, "min") == 0)
            err = parse_uint("version_range.min", member, REPORT_VERSION_MIN, REPORT_VERSION_MAX,
                             &policy->version_min, diag);
        else if (strcmp(key, "max") == 0)
            err = parse_uint("version_range.max", member, REPORT_VERSION_MIN, REPORT_VERSION_MAX,
                             &policy->version_max, diag);
        else
            err = unknown_key("version_range", key, diag);
        if (err != VTPMCA_OK)
            return err;
    }
    if (policy->version_min > policy->version_max)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "version_range: min %u is greater than max %u",
                           (unsigned)policy->version_min, (unsigned)policy->version_max);
    return VTPMCA_OK;
}

static vtpmca_err parse_min_tcb(json_t *value, snp_policy *policy, vtpmca_diag *diag)
{
    if (!json_is_object(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "min_tcb: expected an object");
    const char *key;
    json_t *member;
    json_object_foreach(value, key, member)
    {
        size_t c = 0;
        while (c < TCB_COMPONENT_COUNT && strcmp(key, tcb_components[c].key) != 0)
            c++;
        if (c == TCB_COMPONENT_COUNT)
            return unknown_key("min_tcb", key, diag);
        uint8_t level = 0;
        vtpmca_err err = parse_u8(tcb_components[c].check, member, &level, diag);
        if (err != VTPMCA_OK)
            return err;
        tcb_component_set(&policy->min_tcb, c, level);
    }
    return VTPMCA_OK;
}

static vtpmca_err parse_min_abi(json_t *value, snp_policy *policy, vtpmca_diag *diag)
{
    if (!json_is_object(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "min_abi: expected an object");
    const char *key;
    json_t *member;
    json_object_foreach(value, key, member)
    {
        vtpmca_err err;
        if (strcmp(key, "major") == 0)
            err = parse_u8("min_abi.major", member, &policy->min_abi_major, diag);
        else if (strcmp(key, "minor") == 0)
            err = parse_u8("min_abi.minor", member, &policy->min_abi_minor, diag);
        else
            err = unknown_key("min_abi", key, diag);
        if (err != VTPMCA_OK)
            return err;
    }
    return VTPMCA_OK;
}

static vtpmca_err parse_choice(const char *path, const json_t *value, const char *const *names,
                               size_t n_names, const char *expected, unsigned *out,
                               vtpmca_diag *diag)
{
    const char *text = json_string_value(value);
    for (size_t i = 0; text != NULL && i < n_names; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (unsigned)i;
            return VTPMCA_OK;
        }
    }
    return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected %s", path, expected);
}

static vtpmca_err parse_products(const json_t *value, snp_policy *policy, vtpmca_diag *diag)
{
    if (!json_is_array(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "products: expected an array of strings");
    unsigned mask = 0;
    size_t index;
    const json_t *item;
    json_array_foreach(value, index, item)
    {
        const char *name = json_string_value(item);
        snp_product product = SNP_PRODUCT_UNKNOWN;
        /* snp_product_parse also takes VCEK names such as "Milan-B0"; a policy names the
         * product family exactly, so anything but the canonical name (any case) is refused. */
        if (name == NULL || snp_product_parse(name, &product) != VTPMCA_OK ||
            strcasecmp(name, snp_product_name(product)) != 0)
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                               "products[%zu]: expected \"Milan\", \"Genoa\" or \"Turin\"", index);
        mask |= 1u << product;
    }
    policy->product_mask = mask;
    return VTPMCA_OK;
}

static vtpmca_err parse_digest_list(const json_t *value, list_id list, snp_policy *policy,
                                    vtpmca_diag *diag)
{
    const char *key = list_specs[list].key;
    size_t width = list_specs[list].width;
    if (!json_is_array(value))
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s: expected an array of hex strings", key);
    size_t count = json_array_size(value);
    padded_digest *items = NULL;
    if (count > 0) {
        items = calloc(count, sizeof(*items));
        if (items == NULL)
            return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "%s: out of memory", key);
    }
    size_t index;
    const json_t *item;
    json_array_foreach(value, index, item)
    {
        const char *text = json_string_value(item);
        if (text == NULL || vt_hex_decode_fixed(text, items[index].bytes, width) != VTPMCA_OK) {
            free(items);
            return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "%s[%zu]: expected %zu hex digits", key,
                               index, 2 * width);
        }
    }
    /* Sorted and de-duplicated once here so evaluation is a binary search. */
    if (count > 1) {
        qsort(items, count, sizeof(*items), compare_digests);
        size_t unique = 1;
        for (size_t i = 1; i < count; i++)
            if (compare_digests(&items[i], &items[unique - 1]) != 0)
                items[unique++] = items[i];
        count = unique;
    }
    free(policy->lists[list].items);
    policy->lists[list].items = items;
    policy->lists[list].count = count;
    return VTPMCA_OK;
}

static vtpmca_err parse_member(const char *key, json_t *value, snp_policy *policy,
                               vtpmca_diag *diag)
{
    if (strcmp(key, "version_range") == 0)
        return parse_version_range(value, policy, diag);
    if (strcmp(key, "allow_any_measurement") == 0)
        return parse_bool(key, value, &policy->allow_any_measurement, diag);
    if (strcmp(key, "allow_debug") == 0)
        return parse_bool(key, value, &policy->allow_debug, diag);
    if (strcmp(key, "allow_migration_agent") == 0)
        return parse_bool(key, value, &policy->allow_migration_agent, diag);
    if (strcmp(key, "allow_vlek") == 0)
        return parse_bool(key, value, &policy->allow_vlek, diag);
    if (strcmp(key, "vmpl") == 0)
        return parse_uint(key, value, 0, VMPL_MAX, &policy->vmpl, diag);
    if (strcmp(key, "min_tcb") == 0)
        return parse_min_tcb(value, policy, diag);
    if (strcmp(key, "min_guest_svn") == 0)
        return parse_uint(key, value, 0, UINT32_MAX, &policy->min_guest_svn, diag);
    if (strcmp(key, "min_abi") == 0)
        return parse_min_abi(value, policy, diag);
    if (strcmp(key, "products") == 0)
        return parse_products(value, policy, diag);
    if (strcmp(key, "smt") == 0) {
        unsigned choice = 0;
        vtpmca_err err = parse_choice(key, value, smt_names, ARRAY_LEN(smt_names),
                                      "\"any\", \"allowed\" or \"forbidden\"", &choice, diag);
        policy->smt = (smt_rule)choice;
        return err;
    }
    if (strcmp(key, "single_socket") == 0) {
        unsigned choice = 0;
        vtpmca_err err =
            parse_choice(key, value, single_socket_names, ARRAY_LEN(single_socket_names),
                         "\"any\" or \"required\"", &choice, diag);
        policy->single_socket_required = choice == 1;
        return err;
    }
    for (size_t list = 0; list < LIST_COUNT; list++)
        if (strcmp(key, list_specs[list].key) == 0)
            return parse_digest_list(value, (list_id)list, policy, diag);
    return unknown_key(NULL, key, diag);
}

vtpmca_err snp_policy_from_json(const char *json, size_t len, snp_policy **out, vtpmca_diag *diag)
{
    if (json == NULL || out == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "policy: missing input or output");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "policy: invalid JSON at line %d: %s", jerr.line,
                           jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "policy: expected a JSON object");
    }
    snp_policy *policy = calloc(1, sizeof(*policy));
    if (policy == NULL) {
        json_decref(root);
        return vtpmca_fail(diag, VTPMCA_ERR_NOMEM, "policy: out of memory");
    }
    policy->version_min = REPORT_VERSION_MIN;
    policy->version_max = REPORT_VERSION_MAX;

    vtpmca_err err = VTPMCA_OK;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        err = parse_member(key, value, policy, diag);
        if (err != VTPMCA_OK)
            break;
    }
    json_decref(root);

    /* Cross-key rules: a policy must say which launch measurements it trusts, or say
     * explicitly that it trusts any; both at once is ambiguous. */
    if (err == VTPMCA_OK) {
        size_t n_measurements = policy->lists[LIST_MEASUREMENT].count;
        if (!policy->allow_any_measurement && n_measurements == 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                              "measurements: required and non-empty unless "
                              "allow_any_measurement is true");
        else if (policy->allow_any_measurement && n_measurements > 0)
            err = vtpmca_fail(diag, VTPMCA_ERR_PARSE,
                              "measurements: must be empty when allow_any_measurement is true");
    }
    if (err != VTPMCA_OK) {
        snp_policy_free(policy);
        return err;
    }
    *out = policy;
    return VTPMCA_OK;
}

/* ---- Canonical JSON ---- */

static json_t *digest_list_to_json(const digest_list *list, size_t width)
{
    json_t *array = json_array();
    char hex[2 * DIGEST_MAX + 1];
    for (size_t i = 0; array != NULL && i < list->count; i++) {
        vt_hex_encode(list->items[i].bytes, width, hex, sizeof(hex));
        if (json_array_append_new(array, json_string(hex)) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

vtpmca_err snp_policy_to_json(const snp_policy *policy, char **out)
{
    if (policy == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    json_t *root = json_object();
    json_t *tcb = json_object();
    json_t *products = json_array();
    bool ok = root != NULL && tcb != NULL && products != NULL;

    for (size_t c = 0; ok && c < TCB_COMPONENT_COUNT; c++)
        ok = json_object_set_new(tcb, tcb_components[c].key,
                                 json_integer(tcb_component_value(&policy->min_tcb, c))) == 0;
    for (size_t i = 0; ok && i < KNOWN_PRODUCT_COUNT; i++)
        if (policy->product_mask & (1u << known_products[i]))
            ok = json_array_append_new(products,
                                       json_string(snp_product_name(known_products[i]))) == 0;
    for (size_t list = 0; ok && list < LIST_COUNT; list++)
        ok = json_object_set_new(
                 root, list_specs[list].key,
                 digest_list_to_json(&policy->lists[list], list_specs[list].width)) == 0;
    if (ok) {
        ok = json_object_set_new(root, "version_range",
                                 json_pack("{s:I,s:I}", "min", (json_int_t)policy->version_min,
                                           "max", (json_int_t)policy->version_max)) == 0 &&
             json_object_set_new(root, "allow_any_measurement",
                                 json_boolean(policy->allow_any_measurement)) == 0 &&
             json_object_set_new(root, "allow_debug", json_boolean(policy->allow_debug)) == 0 &&
             json_object_set_new(root, "allow_migration_agent",
                                 json_boolean(policy->allow_migration_agent)) == 0 &&
             json_object_set_new(root, "allow_vlek", json_boolean(policy->allow_vlek)) == 0 &&
             json_object_set_new(root, "vmpl", json_integer(policy->vmpl)) == 0 &&
             json_object_set_new(root, "min_guest_svn", json_integer(policy->min_guest_svn)) == 0 &&
             json_object_set_new(root, "min_abi",
                                 json_pack("{s:i,s:i}", "major", policy->min_abi_major, "minor",
                                           policy->min_abi_minor)) == 0 &&
             json_object_set_new(root, "smt", json_string(smt_names[policy->smt])) == 0 &&
             json_object_set_new(
                 root, "single_socket",
                 json_string(policy->single_socket_required ? "required" : "any")) == 0;
    }
    /* set_new steals the references, also on failure. */
    if (ok) {
        ok = json_object_set_new(root, "min_tcb", tcb) == 0;
        tcb = NULL;
    }
    if (ok) {
        ok = json_object_set_new(root, "products", products) == 0;
        products = NULL;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(tcb);
    json_decref(products);
    json_decref(root);
    if (text == NULL)
        return VTPMCA_ERR_NOMEM;
    *out = text;
    return VTPMCA_OK;
}

/* ---- Evaluation ---- */

static void add_failure(snp_verdict *verdict, const char *check, const char *fmt, ...)
    VTPMCA_PRINTF(3, 4);

static void add_failure(snp_verdict *verdict, const char *check, const char *fmt, ...)
{
    /* More rules than slots cannot happen (21 rules, 32 slots); if it ever did, the count
     * still makes the verdict fail. */
    if (verdict->n_failed >= SNP_VERDICT_MAX_FAILURES) {
        verdict->n_failed = SNP_VERDICT_MAX_FAILURES;
        return;
    }
    snp_check_failure *failure = &verdict->failed[verdict->n_failed++];
    snprintf(failure->check, sizeof(failure->check), "%s", check);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure->detail, sizeof(failure->detail), fmt, ap);
    va_end(ap);
}

static void check_allow_list(const snp_policy *policy, const snp_report *report, list_id list,
                             snp_verdict *verdict)
{
    const digest_list *allowed = &policy->lists[list];
    size_t width = list_specs[list].width;
    padded_digest key = {{0}};
    memcpy(key.bytes, report_list_field(report, list), width);
    verdict->checks_run++;
    if (bsearch(&key, allowed->items, allowed->count, sizeof(key), compare_digests) != NULL)
        return;
    char hex[2 * DIGEST_MAX + 1];
    vt_hex_encode(key.bytes, width, hex, sizeof(hex));
    add_failure(verdict, list_specs[list].check, "%s not among the %zu allowed, found %s",
                list_specs[list].check, allowed->count, hex);
}

static void check_tcb(const snp_policy *policy, const snp_evidence *evidence, snp_verdict *verdict)
{
    for (size_t c = 0; c < TCB_COMPONENT_COUNT; c++) {
        if (tcb_components[c].turin_only && evidence->product != SNP_PRODUCT_TURIN)
            continue;
        verdict->checks_run++;
        /* reported_tcb is what the VCEK is bound to; committed_tcb is the floor the firmware
         * can still be rolled back to. Both must meet the minimum. */
        unsigned minimum = tcb_component_value(&policy->min_tcb, c);
        unsigned reported = tcb_component_value(&evidence->reported_tcb, c);
        unsigned committed = tcb_component_value(&evidence->committed_tcb, c);
        if (reported < minimum || committed < minimum)
            add_failure(verdict, tcb_components[c].check,
                        "expected >= %u, found reported_tcb %u, committed_tcb %u", minimum,
                        reported, committed);
    }
}

static void check_smt(const snp_policy *policy, const snp_report *report, snp_verdict *verdict)
{
    if (policy->smt == SMT_ANY)
        return;
    verdict->checks_run++;
    bool guest_allows = (report->policy & SNP_POLICY_SMT) != 0;
    bool platform_enabled = (report->platform_info & SNP_PLATFORM_SMT_EN) != 0;
    if (policy->smt == SMT_ALLOWED && !guest_allows)
        add_failure(verdict, "smt", "expected guest policy SMT bit set, found clear");
    else if (policy->smt == SMT_FORBIDDEN && (guest_allows || platform_enabled))
        add_failure(verdict, "smt",
                    "expected guest policy SMT bit and platform SMT_EN clear, found "
                    "guest policy SMT %s, platform SMT_EN %s",
                    guest_allows ? "set" : "clear", platform_enabled ? "set" : "clear");
}

static void check_product(const snp_policy *policy, const snp_evidence *evidence,
                          snp_verdict *verdict)
{
    if (policy->product_mask == 0)
        return;
    verdict->checks_run++;
    if (evidence->product != SNP_PRODUCT_UNKNOWN && (unsigned)evidence->product < 32 &&
        (policy->product_mask & (1u << evidence->product)))
        return;
    char allowed[32] = "";
    for (size_t i = 0; i < KNOWN_PRODUCT_COUNT; i++)
        if (policy->product_mask & (1u << known_products[i]))
            snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
                     allowed[0] ? "," : "", snp_product_name(known_products[i]));
    add_failure(verdict, "product", "expected one of %s, found %s", allowed,
                snp_product_name(evidence->product));
}

vtpmca_err snp_policy_evaluate(const snp_policy *policy, const snp_evidence *evidence,
                               snp_verdict *verdict)
{
    if (policy == NULL || evidence == NULL || verdict == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    const snp_report *report = &evidence->report;
    memset(verdict, 0, sizeof(*verdict));

    verdict->checks_run++;
    if (report->version < policy->version_min || report->version > policy->version_max)
        add_failure(verdict, "report_version", "expected %u..%u, found %u",
                    (unsigned)policy->version_min, (unsigned)policy->version_max,
                    (unsigned)report->version);

    if (!policy->allow_any_measurement) {
        verdict->measurement_checked = true;
        check_allow_list(policy, report, LIST_MEASUREMENT, verdict);
    }

    verdict->checks_run++;
    if ((report->policy & SNP_POLICY_DEBUG) && !policy->allow_debug)
        add_failure(verdict, "debug", "expected guest policy DEBUG (bit 19) clear, found set");

    verdict->checks_run++;
    if ((report->policy & SNP_POLICY_MIGRATE_MA) && !policy->allow_migration_agent)
        add_failure(verdict, "migration_agent",
                    "expected guest policy MIGRATE_MA (bit 18) clear, found set");

    verdict->checks_run++;
    if (report->vmpl != policy->vmpl)
        add_failure(verdict, "vmpl", "expected %u, found %u", (unsigned)policy->vmpl,
                    (unsigned)report->vmpl);

    check_tcb(policy, evidence, verdict);

    verdict->checks_run++;
    if (report->guest_svn < policy->min_guest_svn)
        add_failure(verdict, "guest_svn", "expected >= %u, found %u",
                    (unsigned)policy->min_guest_svn, (unsigned)report->guest_svn);

    for (size_t list = 0; list < LIST_COUNT; list++)
        if (list != LIST_MEASUREMENT && policy->lists[list].count > 0)
            check_allow_list(policy, report, (list_id)list, verdict);

    check_smt(policy, report, verdict);

    if (policy->single_socket_required) {
        verdict->checks_run++;
        if (!(report->policy & SNP_POLICY_SINGLE_SOCKET))
            add_failure(verdict, "single_socket",
                        "expected guest policy SINGLE_SOCKET (bit 20) set, found clear");
    }

    verdict->checks_run++;
    if (evidence->signer != SNP_SIGNER_VCEK &&
        !(evidence->signer == SNP_SIGNER_VLEK && policy->allow_vlek))
        add_failure(verdict, "signer", "expected VCEK%s, found %s",
                    policy->allow_vlek ? " or VLEK" : "", snp_signer_name(evidence->signer));

    check_product(policy, evidence, verdict);

    /* The running firmware's ABI version: the guest policy's ABI bits only state what the
     * guest asked for at launch. */
    verdict->checks_run++;
    unsigned found_abi = (unsigned)report->current_major << 8 | report->current_minor;
    unsigned min_abi = (unsigned)policy->min_abi_major << 8 | policy->min_abi_minor;
    if (found_abi < min_abi)
        add_failure(verdict, "abi", "expected firmware ABI >= %u.%u, found %u.%u",
                    (unsigned)policy->min_abi_major, (unsigned)policy->min_abi_minor,
                    (unsigned)report->current_major, (unsigned)report->current_minor);

    verdict->pass = verdict->n_failed == 0;
    return VTPMCA_OK;
}

vtpmca_err snp_verdict_set_evidence_failure(snp_verdict *verdict, vtpmca_err err,
                                            const char *detail)
{
    if (verdict == NULL || err == VTPMCA_OK)
        return VTPMCA_ERR_INVALID_ARG;
    memset(verdict, 0, sizeof(*verdict));
    add_failure(verdict, SNP_CHECK_EVIDENCE, "%s%s%s", vtpmca_err_name(err),
                detail != NULL && detail[0] != '\0' ? ": " : "", detail != NULL ? detail : "");
    /* The detail ends up in JSON: keep it printable ASCII (truncation could split UTF-8). */
    for (char *c = verdict->failed[0].detail; *c != '\0'; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    verdict->pass = false;
    return VTPMCA_OK;
}
