/* Unit tests for the RFC 3339 reader (common/rfc3339.c) and the admin API's UTC-only policy
 * on it (server_admin_parse_time_ms); the CLI's policy is covered by tests/integration/cli.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vtpmca/rfc3339.h"
#include "vtpmca/server_admin.h"

static int64_t unix_ms_of(const char *text)
{
    vt_rfc3339 t;
    int64_t ms = 0;
    assert_int_equal(vt_rfc3339_parse(text, &t), VTPMCA_OK);
    assert_int_equal(vt_rfc3339_unix_ms(&t, &ms), VTPMCA_OK);
    return ms;
}

static void test_accepted(void **state)
{
    (void)state;
    assert_int_equal(unix_ms_of("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(unix_ms_of("2024-06-01T00:00:00Z"), 1717200000000LL);
    /* Lower-case T and Z; a fraction cut to milliseconds, short ones scaled. */
    assert_int_equal(unix_ms_of("2024-06-01t00:00:00.123456z"), 1717200000123LL);
    assert_int_equal(unix_ms_of("2024-06-01T00:00:00.5Z"), 1717200000500LL);
    /* Offsets: local time = UTC + offset. */
    assert_int_equal(unix_ms_of("2024-06-01T02:00:00.5+02:00"), 1717200000500LL);
    assert_int_equal(unix_ms_of("2024-05-31T19:30:00-04:30"), 1717200000000LL);
    /* A leap day, and a leap second counting as the next minute's first. */
    assert_int_equal(unix_ms_of("2024-02-29T00:00:00Z"), 1709164800000LL);
    assert_int_equal(unix_ms_of("2016-12-31T23:59:60Z"), unix_ms_of("2017-01-01T00:00:00Z"));

    vt_rfc3339 t;
    assert_int_equal(vt_rfc3339_parse("2024-06-01T02:03:04+05:30", &t), VTPMCA_OK);
    assert_false(t.utc);
    assert_int_equal(t.offset_s, 5 * 3600 + 30 * 60);
    assert_int_equal(t.hour, 2);
    assert_int_equal(t.minute, 3);
    assert_int_equal(t.second, 4);
    assert_int_equal(vt_rfc3339_parse("2024-06-01T02:03:04Z", &t), VTPMCA_OK);
    assert_true(t.utc);
    assert_int_equal(t.offset_s, 0);
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "yesterday",
        "2024-06-01",                /* no time */
        "2024-06-01 00:00:00Z",      /* a space for T */
        "2024-6-01T00:00:00Z",       /* short month */
        "2024-13-01T00:00:00Z",      /* month 13 */
        "2024-00-01T00:00:00Z",      /* month 0 */
        "2024-02-30T00:00:00Z",      /* no such day */
        "2023-02-29T00:00:00Z",      /* not a leap year */
        "2024-01-00T00:00:00Z",      /* day 0 */
        "2024-06-01T24:00:00Z",      /* hour 24 */
        "2024-06-01T00:60:00Z",      /* minute 60 */
        "2024-06-01T00:00:61Z",      /* second 61 */
        "2024-06-01T00:00:00",       /* no zone */
        "2024-06-01T00:00:00.Z",     /* an empty fraction */
        "2024-06-01T00:00:00+0200",  /* offset without colon */
        "2024-06-01T00:00:00+24:00", /* offset hour 24 */
        "2024-06-01T00:00:00+02:60", /* offset minute 60 */
        "2024-06-01T00:00:00Zjunk",  /* trailing text */
        "2024-06-01T00:00:00Z ",     /* trailing space */
    };
    vt_rfc3339 t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (vt_rfc3339_parse(bad[i], &t) != VTPMCA_ERR_PARSE)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(vt_rfc3339_parse(NULL, &t), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_rfc3339_parse("2024-06-01T00:00:00Z", NULL), VTPMCA_ERR_INVALID_ARG);
    int64_t ms;
    assert_int_equal(vt_rfc3339_unix_ms(NULL, &ms), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(vt_rfc3339_unix_ms(&t, NULL), VTPMCA_ERR_INVALID_ARG);
}

/* The admin API: UTC ("Z") only, no leap second, milliseconds kept. */
static void test_admin_policy(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(server_admin_parse_time_ms("2024-06-01T00:00:00.250Z", &ms), VTPMCA_OK);
    assert_int_equal(ms, 1717200000250LL);
    assert_int_equal(server_admin_parse_time_ms("2024-06-01T02:00:00+02:00", &ms),
                     VTPMCA_ERR_PARSE);
    assert_int_equal(server_admin_parse_time_ms("2016-12-31T23:59:60Z", &ms), VTPMCA_ERR_PARSE);
    assert_int_equal(server_admin_parse_time_ms("2024-02-30T00:00:00Z", &ms), VTPMCA_ERR_PARSE);
    assert_int_equal(server_admin_parse_time_ms(NULL, &ms), VTPMCA_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_admin_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
