/* Unit tests for the OTLP protobuf encoder: wire format read back by an
 * independent reader (tests/common/pbread.h), nesting, attributes, UTF-8
 * cleaning and cutting, and the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/otlp.h"
#include "../common/pbread.h"

static void test_varints(void **state)
{
    const uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, (uint64_t)1 << 35, UINT64_MAX};
    struct otlp w;
    struct pb r;
    struct pb_field f;

    (void)state;
    otlp_init(&w, 1024);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        otlp_varint(&w, (unsigned)(i + 1), vals[i]);
    otlp_fixed64(&w, 100, 0x0102030405060708ULL);
    assert_int_equal((uint8_t)w.b.data[w.b.len - 8], 0x08);
    otlp_double(&w, 2000, 0.25);
    assert_false(otlp_failed(&w));
    r = pb_of(w.b.data, w.b.len);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        assert_int_equal(pb_next(&r, &f), 1);
        assert_int_equal(f.num, i + 1);
        assert_int_equal(f.type, 0);
        assert_true(f.v == vals[i]);
    }
    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(f.num, 100);
    assert_int_equal(f.type, 1);
    assert_true(f.v == 0x0102030405060708ULL);
    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(f.num, 2000);
    {
        double d;

        memcpy(&d, &f.v, 8);
        assert_true(d == 0.25);
    }
    assert_int_equal(pb_next(&r, &f), 0);
    otlp_free(&w);
}

/* Nested messages whose length needs 1, 2 and 3 varint bytes. */
static void test_nesting(void **state)
{
    const size_t sizes[] = {0, 5, 127, 128, 16383, 16384, 70000};
    char *blob = malloc(70000);

    (void)state;
    memset(blob, 'x', 70000);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct otlp w;
        struct pb r, in;
        struct pb_field f;
        size_t outer, inner;

        otlp_init(&w, 1u << 20);
        otlp_varint(&w, 1, 7);
        outer = otlp_open(&w, 5);
        otlp_varint(&w, 2, 8);
        inner = otlp_open(&w, 4);
        otlp_bytes(&w, 3, blob, sizes[i]);
        otlp_close(&w, inner);
        otlp_close(&w, outer);
        otlp_varint(&w, 6, 9);
        assert_false(otlp_failed(&w));
        r = pb_of(w.b.data, w.b.len);
        assert_int_equal(pb_next(&r, &f), 1);
        assert_true(f.num == 1 && f.v == 7);
        assert_int_equal(pb_next(&r, &f), 1);
        assert_true(f.num == 5 && f.type == 2);
        in = pb_of(f.data, f.len);
        assert_int_equal(pb_next(&in, &f), 1);
        assert_true(f.num == 2 && f.v == 8);
        assert_int_equal(pb_next(&in, &f), 1);
        assert_true(f.num == 4 && f.type == 2);
        {
            struct pb b = pb_of(f.data, f.len);

            assert_int_equal(pb_next(&b, &f), 1);
            assert_true(f.num == 3 && f.len == sizes[i]);
            assert_int_equal(pb_next(&b, &f), 0);
        }
        assert_int_equal(pb_next(&in, &f), 0);
        assert_int_equal(pb_next(&r, &f), 1);
        assert_true(f.num == 6 && f.v == 9);
        assert_int_equal(pb_next(&r, &f), 0);
        otlp_free(&w);
    }
    free(blob);
}

/* A KeyValue's key and its AnyValue's one field. */
static void read_kv(const struct pb_field *kvf, char *key, size_t keymax, struct pb_field *val)
{
    struct pb kv = pb_of(kvf->data, kvf->len), any;
    struct pb_field f;

    assert_int_equal(pb_next(&kv, &f), 1);
    assert_int_equal(f.num, 1);
    assert_true(f.len < keymax);
    memcpy(key, f.data, f.len);
    key[f.len] = '\0';
    assert_int_equal(pb_next(&kv, &f), 1);
    assert_int_equal(f.num, 2);
    any = pb_of(f.data, f.len);
    assert_int_equal(pb_next(&any, val), 1);
    assert_int_equal(pb_next(&any, &f), 0);
    assert_int_equal(pb_next(&kv, &f), 0);
}

static void test_attributes(void **state)
{
    const char *frs[] = {"stop", "length"};
    struct otlp w;
    struct pb r;
    struct pb_field f, v;
    char key[64];

    (void)state;
    otlp_init(&w, 4096);
    otlp_attr_str(&w, 9, "s", "hello", 100);
    otlp_attr_int(&w, 9, "i", -5);
    otlp_attr_double(&w, 9, "d", 1.5);
    otlp_attr_bool(&w, 9, "b", 1);
    otlp_attr_strs(&w, 9, "a", frs, 2, 100);
    otlp_attr_str(&w, 9, "null", NULL, 100); /* writes nothing */
    assert_false(otlp_failed(&w));
    r = pb_of(w.b.data, w.b.len);

    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(f.num, 9);
    read_kv(&f, key, sizeof(key), &v);
    assert_string_equal(key, "s");
    assert_true(v.num == 1 && v.len == 5 && memcmp(v.data, "hello", 5) == 0);

    assert_int_equal(pb_next(&r, &f), 1);
    read_kv(&f, key, sizeof(key), &v);
    assert_string_equal(key, "i");
    assert_true(v.num == 3 && (int64_t)v.v == -5);

    assert_int_equal(pb_next(&r, &f), 1);
    read_kv(&f, key, sizeof(key), &v);
    assert_string_equal(key, "d");
    assert_true(v.num == 4 && v.type == 1);

    assert_int_equal(pb_next(&r, &f), 1);
    read_kv(&f, key, sizeof(key), &v);
    assert_string_equal(key, "b");
    assert_true(v.num == 2 && v.v == 1);

    assert_int_equal(pb_next(&r, &f), 1);
    read_kv(&f, key, sizeof(key), &v);
    assert_string_equal(key, "a");
    assert_int_equal(v.num, 5); /* ArrayValue */
    {
        struct pb arr = pb_of(v.data, v.len), item;
        struct pb_field e, s;

        for (int i = 0; i < 2; i++) {
            assert_int_equal(pb_next(&arr, &e), 1);
            assert_int_equal(e.num, 1);
            item = pb_of(e.data, e.len);
            assert_int_equal(pb_next(&item, &s), 1);
            assert_true(s.num == 1 && s.len == strlen(frs[i]) &&
                        memcmp(s.data, frs[i], s.len) == 0);
        }
        assert_int_equal(pb_next(&arr, &e), 0);
    }
    assert_int_equal(pb_next(&r, &f), 0);
    otlp_free(&w);
}

static void test_utf8(void **state)
{
    char out[64];
    int clean;

    (void)state;
    /* Valid text is kept, cut at a character boundary. */
    assert_int_equal(otlp_utf8_span("abc", 3, 10, &clean), 3);
    assert_true(clean);
    assert_int_equal(otlp_utf8_span("abcdef", 6, 4, &clean), 4);
    assert_int_equal(otlp_utf8_span("a\xc5\xbe\xc5\xbe", 5, 4, &clean), 3); /* a ž | ž */
    assert_true(clean);
    assert_int_equal(otlp_utf8_span("\xe2\x82\xac", 3, 2, &clean), 0);     /* € does not fit */
    assert_int_equal(otlp_utf8_span("\xf0\x9f\x98\x80", 4, 4, &clean), 4); /* 😀 */
    /* Invalid: overlong, surrogate, too high, stray continuation, cut. */
    const char *bad[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "\x80",     "a\xff",        "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        otlp_utf8_span(bad[i], strlen(bad[i]), 64, &clean);
        assert_false(clean);
    }
    /* Cleaning: a bad byte becomes U+FFFD; a character cut at the end is
     * dropped; nothing beyond max. */
    assert_int_equal(otlp_utf8_clean("a\xffz", 3, out, sizeof(out)), 5);
    assert_memory_equal(out, "a\xef\xbf\xbdz", 5);
    assert_int_equal(otlp_utf8_clean("ab\xe2\x82", 4, out, sizeof(out)), 2);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(otlp_utf8_clean("\xff\xff", 2, out, 4), 3);
    assert_int_equal(otlp_utf8_clean("\xed\xa0\x80x", 4, out, sizeof(out)), 10);
    assert_true(pb_utf8_ok((const uint8_t *)out, 10));
}

static void test_str_field(void **state)
{
    struct otlp w;
    struct pb r;
    struct pb_field f;

    (void)state;
    otlp_init(&w, 1024);
    otlp_str(&w, 1, "x\xc3\x28y", 4, 100);             /* invalid: cleaned */
    otlp_str(&w, 2, "\xc5\xbe\xc5\xbe\xc5\xbe", 6, 5); /* cut to 2 characters */
    assert_false(otlp_failed(&w));
    r = pb_of(w.b.data, w.b.len);
    assert_int_equal(pb_next(&r, &f), 1);
    assert_true(pb_utf8_ok(f.data, f.len));
    assert_int_equal(f.len, 6); /* x, U+FFFD, (, y */
    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(f.len, 4);
    otlp_free(&w);
}

/* Past the cap the writer fails, and stays failed. */
static void test_cap(void **state)
{
    struct otlp w;
    size_t m;

    (void)state;
    otlp_init(&w, 16);
    otlp_bytes(&w, 1, "0123456789", 10);
    assert_false(otlp_failed(&w));
    m = otlp_open(&w, 3);
    otlp_bytes(&w, 2, "0123456789", 10);
    assert_true(otlp_failed(&w));
    otlp_close(&w, m);
    otlp_varint(&w, 4, 1);
    assert_true(otlp_failed(&w));
    assert_true(w.b.len <= 16);
    otlp_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varints),    cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_attributes), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_str_field),  cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
