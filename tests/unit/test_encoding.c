/* Unit tests for common/encoding.c: hex, strict base64 variants, flexible decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vtpmca/encoding.h"

static void test_hex_roundtrip(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff};
    char text[9];
    assert_int_equal(vt_hex_encode(in, sizeof(in), text, sizeof(text)), VTPMCA_OK);
    assert_string_equal(text, "0001abff");
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(vt_hex_decode_alloc(" 0001ABff\n", 10, &out, &len), VTPMCA_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(out, in, 4);
    free(out);
    assert_int_equal(vt_hex_decode_alloc("abc", 3, &out, &len), VTPMCA_ERR_PARSE);
    assert_int_equal(vt_hex_decode_alloc("zz", 2, &out, &len), VTPMCA_ERR_PARSE);
    assert_int_equal(vt_hex_encode(in, sizeof(in), text, 8), VTPMCA_ERR_INVALID_ARG);
}

static void test_hex_fixed(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_int_equal(vt_hex_decode_fixed("a0b1", out, 2), VTPMCA_OK);
    assert_int_equal(out[0], 0xa0);
    assert_int_equal(vt_hex_decode_fixed("a0b1cc", out, 2), VTPMCA_ERR_PARSE);
}

/* RFC 4648 section 10 vectors. */
static void test_b64_rfc4648_vectors(void **state)
{
    (void)state;
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *enc = NULL;
        assert_int_equal(
            vt_b64_encode_alloc((const uint8_t *)plain[i], strlen(plain[i]), VT_B64_STD, &enc),
            VTPMCA_OK);
        assert_string_equal(enc, coded[i]);
        free(enc);
        uint8_t *dec = NULL;
        size_t len = 0;
        assert_int_equal(vt_b64_decode_alloc(coded[i], strlen(coded[i]), VT_B64_STD, &dec, &len),
                         VTPMCA_OK);
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], len);
        free(dec);
    }
}

static void test_b64_strictness(void **state)
{
    (void)state;
    uint8_t *dec = NULL;
    size_t len = 0;
    /* Padding required in the standard variant. */
    assert_int_equal(vt_b64_decode_alloc("Zg", 2, VT_B64_STD, &dec, &len), VTPMCA_ERR_PARSE);
    /* Non-zero trailing bits. */
    assert_int_equal(vt_b64_decode_alloc("Zh==", 4, VT_B64_STD, &dec, &len), VTPMCA_ERR_PARSE);
    /* url alphabet refused by standard and vice versa. */
    assert_int_equal(vt_b64_decode_alloc("-_8=", 4, VT_B64_STD, &dec, &len), VTPMCA_ERR_PARSE);
    assert_int_equal(vt_b64_decode_alloc("+/8", 3, VT_B64_URL_NOPAD, &dec, &len), VTPMCA_ERR_PARSE);
    assert_int_equal(vt_b64_decode_alloc("-_8", 3, VT_B64_URL_NOPAD, &dec, &len), VTPMCA_OK);
    assert_int_equal(len, 2);
    free(dec);
    /* A lone sixth-bit group is never valid. */
    assert_int_equal(vt_b64_decode_alloc("Zm9vY", 5, VT_B64_STD_NOPAD, &dec, &len),
                     VTPMCA_ERR_PARSE);
    char *enc = NULL;
    assert_int_equal(vt_b64_encode_alloc((const uint8_t *)"\xfb\xff", 2, VT_B64_URL_NOPAD, &enc),
                     VTPMCA_OK);
    assert_string_equal(enc, "-_8");
    free(enc);
}

static void test_flexible(void **state)
{
    (void)state;
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(vt_decode_flexible((const uint8_t *)"0102\n", 5, 2, &out, &len), VTPMCA_OK);
    assert_int_equal(len, 2);
    assert_int_equal(out[1], 2);
    free(out);
    assert_int_equal(vt_decode_flexible((const uint8_t *)"AQID\n", 5, 3, &out, &len), VTPMCA_OK);
    assert_int_equal(len, 3);
    assert_int_equal(out[2], 3);
    free(out);
    const uint8_t bin[3] = {0x00, 0xff, 0x10};
    assert_int_equal(vt_decode_flexible(bin, 3, 0, &out, &len), VTPMCA_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(out, bin, 3);
    free(out);
    assert_int_equal(vt_decode_flexible((const uint8_t *)"not base64!", 11, 0, &out, &len),
                     VTPMCA_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_roundtrip),
        cmocka_unit_test(test_hex_fixed),
        cmocka_unit_test(test_b64_rfc4648_vectors),
        cmocka_unit_test(test_b64_strictness),
        cmocka_unit_test(test_flexible),
    };
    return cmocka_run_group_tests_name("encoding", tests, NULL, NULL);
}
