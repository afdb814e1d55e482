/* Unit tests of the ledger's 128-bit counter arithmetic: distance, order from the origin across
 * the 2^128 wrap, the 2^127 step rule, increment, hex parsing and formatting. Random cases are
 * cross-checked against OpenSSL's BIGNUM arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <string.h>

#include "vtpmca/ledger.h"

typedef uint8_t ctr[LEDGER_COUNTER_LEN];

/* hi:lo as a big-endian 128-bit counter. */
static void make(ctr out, uint64_t hi, uint64_t lo)
{
    for (int i = 0; i < 8; i++) {
        out[7 - i] = (uint8_t)(hi >> (8 * i));
        out[15 - i] = (uint8_t)(lo >> (8 * i));
    }
}

static bool is_after(const ctr origin, const ctr current, const ctr candidate)
{
    bool after = false;
    assert_int_equal(ledger_counter_is_after(origin, current, candidate, &after), VTPMCA_OK);
    return after;
}

static int compare(const ctr origin, const ctr a, const ctr b)
{
    int cmp = 99;
    assert_int_equal(ledger_counter_compare(origin, a, b, &cmp), VTPMCA_OK);
    return cmp;
}

static void test_distance_edges(void **state)
{
    (void)state;
    ctr a, b, d, expect;
    make(a, 7, 7);
    assert_int_equal(ledger_counter_distance(a, a, d), VTPMCA_OK);
    make(expect, 0, 0);
    assert_memory_equal(d, expect, sizeof(ctr));

    /* One increment across the wrap. */
    make(a, UINT64_MAX, UINT64_MAX);
    make(b, 0, 0);
    assert_int_equal(ledger_counter_distance(a, b, d), VTPMCA_OK);
    make(expect, 0, 1);
    assert_memory_equal(d, expect, sizeof(ctr));
    /* And backwards: 2^128 - 1 increments. */
    assert_int_equal(ledger_counter_distance(b, a, d), VTPMCA_OK);
    make(expect, UINT64_MAX, UINT64_MAX);
    assert_memory_equal(d, expect, sizeof(ctr));

    /* A borrow that runs through the middle bytes. */
    make(a, 0, UINT64_MAX);
    make(b, 1, 0);
    assert_int_equal(ledger_counter_distance(a, b, d), VTPMCA_OK);
    make(expect, 0, 1);
    assert_memory_equal(d, expect, sizeof(ctr));

    assert_int_equal(ledger_counter_distance(NULL, b, d), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_counter_distance(a, NULL, d), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_counter_distance(a, b, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_order_across_wrap(void **state)
{
    (void)state;
    ctr origin, before_wrap, top, zero, after_wrap, just_before_origin;
    make(origin, UINT64_MAX, UINT64_MAX - 10); /* 2^128 - 11 */
    make(before_wrap, UINT64_MAX, UINT64_MAX - 1);
    make(top, UINT64_MAX, UINT64_MAX);
    make(zero, 0, 0);
    make(after_wrap, 0, 5);
    make(just_before_origin, UINT64_MAX, UINT64_MAX - 11);

    assert_int_equal(compare(origin, before_wrap, top), -1);
    assert_int_equal(compare(origin, top, zero), -1); /* 0 comes after 2^128 - 1 */
    assert_int_equal(compare(origin, zero, after_wrap), -1);
    assert_int_equal(compare(origin, after_wrap, before_wrap), 1);
    assert_int_equal(compare(origin, after_wrap, after_wrap), 0);
    assert_int_equal(compare(origin, origin, after_wrap), -1); /* the origin is first */
    /* The counter just behind the origin is the farthest from it. */
    assert_int_equal(compare(origin, just_before_origin, after_wrap), 1);

    assert_true(is_after(origin, origin, before_wrap));
    assert_true(is_after(origin, before_wrap, top));
    assert_true(is_after(origin, top, zero));
    assert_true(is_after(origin, top, after_wrap));
    assert_false(is_after(origin, after_wrap, top));
    assert_false(is_after(origin, after_wrap, origin));
    assert_false(is_after(origin, after_wrap, after_wrap)); /* equal is not after */

    int cmp;
    assert_int_equal(ledger_counter_compare(NULL, top, zero, &cmp), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_counter_compare(origin, top, zero, NULL), VTPMCA_ERR_INVALID_ARG);
    bool after;
    assert_int_equal(ledger_counter_is_after(origin, NULL, zero, &after), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_counter_is_after(origin, top, zero, NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_half_way_and_origin_rules(void **state)
{
    (void)state;
    ctr origin, current, candidate;
    make(origin, 0, 0);
    make(current, 0, 5);

    /* A step of exactly 2^127 is refused: it is as far behind as ahead. */
    make(candidate, 0x8000000000000000ULL, 5);
    assert_false(is_after(origin, current, candidate));
    /* One less is the largest step that is accepted. */
    make(candidate, 0x8000000000000000ULL, 4);
    assert_true(is_after(origin, current, candidate));
    /* Farther from the origin but more than 2^127 ahead: behind the origin, i.e. older than
     * the ledger's first record (e.g. an image from before an admin reset). */
    make(candidate, UINT64_MAX, UINT64_MAX);
    assert_true(compare(origin, candidate, current) > 0);
    assert_false(is_after(origin, current, candidate));

    /* The origin rule alone: a step below 2^127 that passes the origin again is refused. */
    make(current, 0xC000000000000000ULL, 0);
    make(candidate, 0x1000000000000000ULL, 0);
    ctr step;
    assert_int_equal(ledger_counter_distance(current, candidate, step), VTPMCA_OK);
    assert_true(step[0] < 0x80);
    assert_false(is_after(origin, current, candidate));

    /* Exactly half-way from the origin is an ordinary counter. */
    make(current, 0x7FFFFFFFFFFFFFFFULL, UINT64_MAX);
    make(candidate, 0x8000000000000000ULL, 0);
    assert_true(is_after(origin, current, candidate));
    assert_int_equal(compare(origin, candidate, current), 1);
}

static void test_increment(void **state)
{
    (void)state;
    ctr c, expect;
    make(c, 0, 0);
    assert_int_equal(ledger_counter_increment(c), VTPMCA_OK);
    make(expect, 0, 1);
    assert_memory_equal(c, expect, sizeof(ctr));

    make(c, 0, UINT64_MAX); /* carry into the high half */
    assert_int_equal(ledger_counter_increment(c), VTPMCA_OK);
    make(expect, 1, 0);
    assert_memory_equal(c, expect, sizeof(ctr));

    make(c, UINT64_MAX, UINT64_MAX); /* wraps to zero */
    assert_int_equal(ledger_counter_increment(c), VTPMCA_OK);
    make(expect, 0, 0);
    assert_memory_equal(c, expect, sizeof(ctr));

    ctr origin;
    make(origin, UINT64_MAX, UINT64_MAX - 2);
    memcpy(c, origin, sizeof(ctr));
    for (int i = 0; i < 6; i++) { /* across the wrap, each increment is after */
        ctr prev;
        memcpy(prev, c, sizeof(ctr));
        assert_int_equal(ledger_counter_increment(c), VTPMCA_OK);
        assert_true(is_after(origin, prev, c));
    }
    assert_int_equal(ledger_counter_increment(NULL), VTPMCA_ERR_INVALID_ARG);
}

static void test_hex(void **state)
{
    (void)state;
    ctr c, expect;
    vtpmca_diag diag = {{0}};
    assert_int_equal(ledger_counter_parse_hex("0123456789ABCDEFfedcba9876543210", c, &diag),
                     VTPMCA_OK);
    make(expect, 0x0123456789abcdefULL, 0xfedcba9876543210ULL);
    assert_memory_equal(c, expect, sizeof(ctr));

    char text[LEDGER_COUNTER_HEX_LEN + 1];
    assert_int_equal(ledger_counter_format_hex(c, text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0123456789abcdeffedcba9876543210");
    assert_int_not_equal(ledger_counter_format_hex(c, text, sizeof(text) - 1), VTPMCA_OK);
    assert_int_equal(ledger_counter_format_hex(NULL, text, sizeof(text)), VTPMCA_ERR_INVALID_ARG);

    /* Wrong lengths. */
    ctr untouched;
    memset(untouched, 0xAA, sizeof(untouched));
    memcpy(c, untouched, sizeof(ctr));
    assert_int_equal(ledger_counter_parse_hex("0123456789abcdeffedcba987654321", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "got 31"));
    assert_int_equal(ledger_counter_parse_hex("0123456789abcdeffedcba98765432100", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "more than 32"));
    assert_int_equal(ledger_counter_parse_hex("", c, &diag), VTPMCA_ERR_PARSE);
    /* Non-hex bytes, named with their offset. */
    assert_int_equal(ledger_counter_parse_hex("0x23456789abcdeffedcba987654321000", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_int_equal(ledger_counter_parse_hex("0x23456789abcdeffedcba9876543210", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "0x78 at offset 1"));
    assert_int_equal(ledger_counter_parse_hex(" 123456789abcdeffedcba9876543210", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "offset 0"));
    assert_int_equal(ledger_counter_parse_hex("0123456789abcdeffedcba987654321g", c, &diag),
                     VTPMCA_ERR_PARSE);
    assert_non_null(strstr(diag.msg, "offset 31"));
    assert_memory_equal(c, untouched, sizeof(ctr)); /* failures leave the output alone */

    assert_int_equal(ledger_counter_parse_hex(NULL, c, &diag), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(ledger_counter_parse_hex("0123456789abcdeffedcba9876543210", NULL, NULL),
                     VTPMCA_ERR_INVALID_ARG);
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(ledger_outcome_name(LEDGER_ACCEPTED), "accepted");
    assert_string_equal(ledger_outcome_name(LEDGER_DUPLICATE), "duplicate");
    assert_string_equal(ledger_outcome_name(LEDGER_REFUSED_FORK), "fork");
    assert_string_equal(ledger_outcome_name(LEDGER_REFUSED_ROLLBACK), "rollback");
    assert_string_equal(ledger_outcome_name(LEDGER_REFUSED_LOCKED), "locked");
    assert_string_equal(ledger_outcome_name((ledger_outcome)0), "unknown");
}

/* (b - a) mod 2^128 with BIGNUM, as 16 big-endian bytes. */
static void bn_distance(const ctr a, const ctr b, ctr out, BN_CTX *bn)
{
    BIGNUM *x = BN_bin2bn(a, LEDGER_COUNTER_LEN, NULL);
    BIGNUM *y = BN_bin2bn(b, LEDGER_COUNTER_LEN, NULL);
    BIGNUM *m = BN_new();
    BIGNUM *r = BN_new();
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(m);
    assert_non_null(r);
    assert_int_equal(BN_lshift(m, BN_value_one(), 128), 1);
    assert_int_equal(BN_mod_sub(r, y, x, m, bn), 1);
    assert_int_equal(BN_bn2binpad(r, out, LEDGER_COUNTER_LEN), LEDGER_COUNTER_LEN);
    BN_free(x);
    BN_free(y);
    BN_free(m);
    BN_free(r);
}

static void test_random_against_bignum(void **state)
{
    (void)state;
    BN_CTX *bn = BN_CTX_new();
    assert_non_null(bn);
    for (int i = 0; i < 2000; i++) {
        ctr origin, a, b, ours, theirs;
        assert_int_equal(RAND_bytes(origin, sizeof(ctr)), 1);
        assert_int_equal(RAND_bytes(a, sizeof(ctr)), 1);
        assert_int_equal(RAND_bytes(b, sizeof(ctr)), 1);
        if (i % 4 == 0) /* also small steps, the common case */
            memcpy(b, a, 15);
        assert_int_equal(ledger_counter_distance(a, b, ours), VTPMCA_OK);
        bn_distance(a, b, theirs, bn);
        assert_memory_equal(ours, theirs, sizeof(ctr));

        ctr da, db, step;
        bn_distance(origin, a, da, bn);
        bn_distance(origin, b, db, bn);
        bn_distance(a, b, step, bn);
        int expect_cmp = memcmp(da, db, sizeof(ctr));
        expect_cmp = (expect_cmp > 0) - (expect_cmp < 0);
        assert_int_equal(compare(origin, a, b), expect_cmp);
        bool expect_after = memcmp(db, da, sizeof(ctr)) > 0 && step[0] < 0x80;
        assert_int_equal(is_after(origin, a, b), expect_after);
    }
    BN_CTX_free(bn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance_edges),
        cmocka_unit_test(test_order_across_wrap),
        cmocka_unit_test(test_half_way_and_origin_rules),
        cmocka_unit_test(test_increment),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_random_against_bignum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
