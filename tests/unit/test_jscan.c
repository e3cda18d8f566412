/* Unit tests for jscan: it accepts, refuses and reads what jansson does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../src/jscan.h"

/* jscan reads text into the tree jansson builds, or refuses it as jansson
 * does. */
static void same_as_jansson(const char *text)
{
    json_t *want = json_loadb(text, strlen(text), JSON_DECODE_ANY, NULL);
    json_t *got = jscan_build(text, strlen(text), JSON_DECODE_ANY);

    if ((want == NULL) != (got == NULL))
        fail_msg("%s: jansson %s it, jscan %s it", text, want ? "reads" : "refuses",
                 got ? "reads" : "refuses");
    if (want && !json_equal(want, got))
        fail_msg("%s: the trees differ", text);
    json_decref(want);
    json_decref(got);
}

static void test_accepts_what_jansson_accepts(void **state)
{
    static const char *texts[] = {
        "{}",
        "[]",
        " {\"a\" : [1, -2, 3.5, -0.0, 1e3, 2E-2, true, false, null]} ",
        "\"\\u00e9\\n\\t\\\"\\\\\\/\\b\\f\\r\"",
        "\"\\ud83d\\ude00\"",
        "\"h\xc3\xa9 \xf0\x9f\x98\x80\"",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "1e-400",
        "{\"a\":1,\"a\":2}",
        "[[[[[]]]]]",
        "{\"\\u0041\":\"x\"}",
        "0",
        "-0",
        "\"\"",
        "[{\"k\":{\"k\":[{}]}}]",
    };

    UNUSED(state);
    for (size_t i = 0; i < ARRAY_LEN(texts); i++)
        same_as_jansson(texts[i]);
}

static void test_refuses_what_jansson_refuses(void **state)
{
    static const char *texts[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "[,1]",
        "{\"a\" 1}",
        "{a:1}",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[-]",
        "[+1]",
        "tru",
        "truex",
        "nul",
        "\"abc",
        "\"a\x01\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\xff\"",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "{} {}",
        "[1] x",
        "[1}",
        "{\"a\":1]",
        "[\"a\":1]",
        "{\"a\"}",
        "\xef\xbb\xbf{}",
    };

    UNUSED(state);
    for (size_t i = 0; i < ARRAY_LEN(texts); i++)
        same_as_jansson(texts[i]);
}

/* Long strings are scanned a word at a time: put each kind of byte that
 * needs a look at every position of a word, and around its edges. */
static void test_string_positions(void **state)
{
    static const char *specials[] = {"\\n",  "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "\x01", "\xff",
                                     "\xc3", "\"",      "\\"};
    char text[128];

    UNUSED(state);
    for (size_t k = 0; k < ARRAY_LEN(specials); k++) {
        for (int at = 0; at < 40; at++) {
            snprintf(text, sizeof(text), "[\"%.*s%s%.*s\"]", at,
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", specials[k], 17,
                     "0123456789abcdefghij");
            same_as_jansson(text);
        }
    }
}

static void test_depth_limit(void **state)
{
    char deep[2 * 2049 + 1];

    UNUSED(state);
    for (int n = 2048; n <= 2049; n++) {
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        deep[2 * n] = '\0';
        same_as_jansson(deep);
    }
}

static void test_flags(void **state)
{
    json_t *j;

    UNUSED(state);
    /* Without JSON_DECODE_ANY the top level is an object or an array. */
    assert_null(jscan_build("1", 1, 0));
    assert_non_null(j = jscan_build("[1]", 3, 0));
    json_decref(j);
    /* Duplicate keys: the last wins, unless refused. */
    j = jscan_build("{\"a\":1,\"a\":2}", 13, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 2);
    json_decref(j);
    assert_null(jscan_build("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES));
    assert_null(jscan_build("{\"a\":{\"b\":1,\"b\":1}}", 19, JSON_REJECT_DUPLICATES));
    /* jscan_loadb lets jansson explain what it refuses. */
    {
        json_error_t e;

        assert_null(jscan_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &e));
        assert_non_null(strstr(e.text, "duplicate"));
    }
}

static void test_skip(void **state)
{
    const char *text = "{\"skip\":{\"a\":[1,{\"b\":[]}],\"c\":\"}\"},\"keep\":7}";
    struct jscan js;
    struct jtok t, k, v;
    long long x = 0;

    UNUSED(state);
    jscan_init(&js, text, strlen(text));
    assert_int_equal(jscan_value(&js, &t), 0);
    assert_int_equal(jscan_member(&js, &k), 1);
    assert_true(jtok_eq(&k, "skip"));
    assert_int_equal(jscan_value(&js, &v), 0);
    assert_int_equal(jscan_skip(&js, &v), 0);
    assert_int_equal(jscan_member(&js, &k), 1);
    assert_true(jtok_eq(&k, "keep"));
    assert_int_equal(jscan_value(&js, &v), 0);
    assert_true(jtok_integer(&v, &x));
    assert_int_equal(x, 7);
    assert_int_equal(jscan_member(&js, &k), 0);
    assert_int_equal(jscan_end(&js), 0);
}

static void test_tokens(void **state)
{
    struct jtok t;
    struct jscan js;
    long long x;
    double d;

    UNUSED(state);
    jscan_init(&js, "\"a\\u0062c\"", 10);
    assert_int_equal(jscan_value(&js, &t), 0);
    assert_true(t.escaped);
    assert_true(jtok_eq(&t, "abc"));
    assert_false(jtok_eq(&t, "ab"));
    jscan_init(&js, "1.5", 3);
    assert_int_equal(jscan_value(&js, &t), 0);
    assert_false(jtok_integer(&t, &x)); /* a real, as jansson's json_is_integer says */
    assert_true(jtok_number(&t, &d));
    assert_true(d == 1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_what_jansson_accepts),
        cmocka_unit_test(test_refuses_what_jansson_refuses),
        cmocka_unit_test(test_string_positions),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_tokens),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
