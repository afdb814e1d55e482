/* Unit tests for vt_text_printf: exact lengths, long and empty results, bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vtpmca/text.h"

static void test_formats_exactly(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(vt_text_printf(&text, &len, "{\"token\":\"%s\",\"n\":%d}", "a.b.c", 42),
                     VTPMCA_OK);
    assert_string_equal(text, "{\"token\":\"a.b.c\",\"n\":42}");
    assert_int_equal(len, strlen(text));
    free(text);

    /* Longer than any stack buffer a caller might have guessed. */
    char *part = malloc(100001);
    assert_non_null(part);
    memset(part, 'x', 100000);
    part[100000] = '\0';
    assert_int_equal(vt_text_printf(&text, &len, "<%s|%s>", part, part), VTPMCA_OK);
    assert_int_equal(len, 200003);
    assert_int_equal(strlen(text), len);
    assert_int_equal(text[0], '<');
    assert_int_equal(text[100001], '|');
    assert_int_equal(text[len - 1], '>');
    free(text);
    free(part);

    /* An empty result is a valid, empty string. */
    assert_int_equal(vt_text_printf(&text, &len, "%s", ""), VTPMCA_OK);
    assert_non_null(text);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
}

/* Reaches vt_text_vprintf with whatever format, NULL included (no printf checking here). */
static vtpmca_err vprintf_with(char **out, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vtpmca_err err = vt_text_vprintf(out, len, fmt, ap);
    va_end(ap);
    return err;
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *text = (char *)"stale";
    size_t len = 7;
    assert_int_equal(vt_text_printf(NULL, &len, "x"), VTPMCA_ERR_INVALID_ARG);
    assert_int_equal(len, 0);
    assert_int_equal(vt_text_printf(&text, NULL, "x"), VTPMCA_ERR_INVALID_ARG);
    assert_null(text);
    text = (char *)"stale";
    assert_int_equal(vprintf_with(&text, &len, NULL), VTPMCA_ERR_INVALID_ARG);
    assert_null(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_exactly),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
