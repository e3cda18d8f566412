/* Unit tests for request validation (request.c), and util.c's number
 * formatting. Cost is tests/unit/test_cost.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/request.h"
#include "../../src/util.h"

static int parse(enum endpoint ep, const char *body, struct request_info *ri, struct api_error *e)
{
    memset(e, 0, sizeof(*e));
    return request_parse(ep, body, strlen(body), ri, e);
}

/* Expect a 400 naming `param` (NULL: none) whose message contains `needle`. */
static void expect_400(enum endpoint ep, const char *body, const char *param, const char *needle)
{
    struct request_info ri;
    struct api_error e;

    assert_int_equal(parse(ep, body, &ri, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    if (param)
        assert_string_equal(e.param, param);
    else
        assert_null(e.param);
    if (strstr(e.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", e.message, needle);
    assert_null(ri.body);
}

static void test_valid_chat(void **state)
{
    struct request_info ri;
    struct api_error e;
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":2,"
        "\"temperature\":0.5,\"max_tokens\":40,\"tools\":[],\"whatever\":{\"x\":1},"
        "\"response_format\":{\"type\":\"json_object\"},\"logprobs\":true}";
    char *q;

    (void)state;
    assert_int_equal(parse(EP_CHAT, body, &ri, &e), 0);
    assert_string_equal(ri.model, "m");
    assert_true(ri.stream);
    assert_true(ri.include_usage);
    assert_int_equal(ri.n, 2);
    assert_true(ri.want_json);
    assert_true(ri.want_logprobs);
    assert_int_equal(ri.max_tokens, 40);
    assert_true(ri.temperature > 0.49 && ri.temperature < 0.51);
    assert_int_equal(ri.prompt_chars, strlen("be brief") + strlen("hello"));
    /* unknown fields are kept for the upstream */
    assert_non_null(json_object_get(ri.body, "whatever"));
    q = request_query_text(&ri);
    assert_string_equal(q, "be brief"); /* only string contents join the query */
    free(q);
    request_info_free(&ri);
}

static void test_defaults(void **state)
{
    struct request_info ri;
    struct api_error e;

    (void)state;
    assert_int_equal(
        parse(EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
              &ri, &e),
        0);
    assert_false(ri.stream);
    assert_false(ri.include_usage);
    assert_int_equal(ri.n, 1);
    assert_true(ri.temperature < 0);
    assert_int_equal(ri.max_tokens, 0);
    request_info_free(&ri);
}

static void test_bad_json(void **state)
{
    (void)state;
    expect_400(EP_CHAT, "{\"model\":", NULL, "could not parse the JSON body");
    expect_400(EP_CHAT, "", NULL, "could not parse");
    expect_400(EP_CHAT, "[1,2]", NULL, "must be a JSON object");
    expect_400(EP_CHAT, "{\"model\":\"a\",\"model\":\"b\",\"messages\":[]}", NULL, "duplicate");
}

static void test_bad_fields(void **state)
{
    (void)state;
    expect_400(EP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model",
               "must provide a model");
    expect_400(EP_CHAT, "{\"model\":42,\"messages\":[]}", "model", "non-empty string");
    expect_400(EP_CHAT, "{\"model\":\"m\"}", "messages", "Missing required parameter");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages", "expected an array");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages", "empty array");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":[1]}", "messages", "expected an object");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages", "role");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}",
               "messages", "king");
    expect_400(EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
               "messages", "content");
    expect_400(
        EP_CHAT,
        "{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "stream", "boolean");
    expect_400(EP_CHAT,
               "{\"model\":\"m\",\"n\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               "n", "between 1 and 128");
    expect_400(
        EP_CHAT,
        "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "max_tokens", "at least 1");
    expect_400(EP_CHAT,
               "{\"model\":\"m\",\"temperature\":\"hot\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}",
               "temperature", "number");
}

static void test_completions_embeddings(void **state)
{
    struct request_info ri;
    struct api_error e;

    (void)state;
    assert_int_equal(
        parse(EP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[\"ab\",\"cde\"]}", &ri, &e), 0);
    assert_int_equal(ri.prompt_chars, 5);
    request_info_free(&ri);
    expect_400(EP_COMPLETIONS, "{\"model\":\"m\"}", "prompt", "Missing");
    expect_400(EP_COMPLETIONS, "{\"model\":\"m\",\"prompt\":3}", "prompt", "string or an array");

    assert_int_equal(parse(EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"hello\"}", &ri, &e), 0);
    assert_int_equal(ri.prompt_chars, 5);
    request_info_free(&ri);
    expect_400(EP_EMBEDDINGS, "{\"model\":\"m\"}", "input", "Missing");
    expect_400(EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"\"}", "input", "empty");
    expect_400(EP_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"x\",\"stream\":true}", "stream",
               "cannot be streamed");
}

/* fmt_fixed2 writes what printf's %.2f writes, ties and all. */
static void test_fmt_fixed2(void **state)
{
    static const double fixed[] = {0,     1,      0.005, 0.015,  0.125,  0.135,        0.285,
                                   0.995, 0.999,  1.005, 2.675,  99.995, 1e14 + 0.125, 0.41,
                                   -0.5,  -0.001, -0.0,  -12.345};
    char got[64], want[64];
    uint64_t x = 88172645463325252ULL;

    UNUSED(state);
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++) {
        snprintf(want, sizeof(want), "%.2f", fixed[i]);
        assert_int_equal(fmt_fixed2(got, fixed[i]), strlen(want));
        assert_string_equal(got, want);
    }
    for (int i = 0; i < 200000; i++) {
        double v;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v = (double)(x % 2000000) / 1000.0 - 1000.0 + (double)(x >> 40) * 1e-16;
        snprintf(want, sizeof(want), "%.2f", v);
        fmt_fixed2(got, v);
        assert_string_equal(got, want);
    }
    fmt_fixed2(got, 1e300);
    assert_string_equal(got, "1e+300");
}

static void test_fmt_u64(void **state)
{
    char s[21];

    (void)state;
    assert_int_equal(fmt_u64(s, 0), 1);
    assert_string_equal(s, "0");
    assert_int_equal(fmt_u64(s, 1000), 4);
    assert_string_equal(s, "1000");
    assert_int_equal(fmt_u64(s, UINT64_MAX), 20);
    assert_string_equal(s, "18446744073709551615");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_chat),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_completions_embeddings),
        cmocka_unit_test(test_fmt_u64),
        cmocka_unit_test(test_fmt_fixed2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
