/* Unit tests for the OpenAI provider: reading answers (whole and streamed)
 * and building the body sent upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config.h"
#include "../../src/provider.h"

static void parse(enum endpoint ep, const char *body, struct reply *r, int want)
{
    reply_init(r);
    assert_int_equal(provider_parse_response(ep, body, strlen(body), r), want);
}

static void test_response(void **state)
{
    struct reply r;

    UNUSED(state);
    parse(EP_CHAT,
          "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
          "\"content\":\"Hi \\\"there\\\"\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
          "\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":9,\"total_tokens\":23}}",
          &r, 0);
    assert_string_equal(r.content.data, "Hi \"there\"");
    assert_string_equal(r.finish_reason, "stop");
    assert_true(r.has_usage);
    assert_int_equal(r.prompt_tokens, 14);
    assert_int_equal(r.completion_tokens, 9);
    assert_int_equal(r.nchoices, 1);
    assert_false(r.any_logprobs);
    assert_null(r.choices_text);
    reply_free(&r);

    /* Several choices, logprobs, a key given twice (the last counts). */
    parse(EP_CHAT,
          "{\"usage\":{\"prompt_tokens\":1},\"choices\":[{\"message\":{\"content\":\"A\"},"
          "\"logprobs\":{\"content\":[{\"logprob\":-0.5},{\"logprob\":-1.5},{\"x\":1}]}},"
          "{\"message\":{\"content\":\"B\",\"content\":\"C\"}},{\"message\":{\"content\":null}}],"
          "\"usage\":{\"completion_tokens\":4}}",
          &r, 0);
    assert_string_equal(r.content.data, "A");
    assert_int_equal(r.logprob_n, 2);
    assert_true(fabs(r.logprob_sum + 2.0) < 1e-12);
    assert_true(r.any_logprobs);
    assert_int_equal(r.nchoices, 3);
    assert_int_equal(json_array_size(r.choices_text), 3);
    assert_string_equal(json_string_value(json_array_get(r.choices_text, 1)), "C");
    assert_string_equal(json_string_value(json_array_get(r.choices_text, 2)), "");
    assert_int_equal(r.prompt_tokens, 0); /* the second usage replaced the first */
    assert_int_equal(r.completion_tokens, 4);
    reply_free(&r);

    parse(EP_COMPLETIONS, "{\"choices\":[{\"text\":\"done\",\"finish_reason\":\"length\"}]}", &r,
          0);
    assert_string_equal(r.content.data, "done");
    assert_string_equal(r.finish_reason, "length");
    reply_free(&r);

    parse(EP_EMBEDDINGS, "{\"data\":[{\"embedding\":[0.1,-2e-3]}],\"usage\":{\"prompt_tokens\":3}}",
          &r, 0);
    assert_int_equal(r.prompt_tokens, 3);
    reply_free(&r);

    /* Not an object, or not JSON: refused, and r stays empty. */
    parse(EP_CHAT, "[]", &r, -1);
    reply_free(&r);
    parse(EP_CHAT,
          "{\"choices\":[{\"message\":{\"content\":\"partial\"}}],\"usage\":{\"prompt_tokens\":",
          &r, -1);
    assert_int_equal(r.content.len, 0);
    assert_false(r.has_usage);
    reply_free(&r);
}

static void test_chunks(void **state)
{
    struct reply r;
    static const char *chunks[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"lo\"},\"index\":1}]}", /* another choice */
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}",
    };
    const char *usage = "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}";
    const char *error =
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"error\":{\"message\":\"m\"}}";

    UNUSED(state);
    reply_init(&r);
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        assert_int_equal(provider_parse_chunk(EP_CHAT, chunks[i], strlen(chunks[i]), &r, NULL),
                         CHUNK_DATA);
    assert_string_equal(r.content.data, "Hello");
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(provider_parse_chunk(EP_CHAT, usage, strlen(usage), &r, NULL), CHUNK_USAGE);
    assert_int_equal(r.completion_tokens, 2);
    assert_int_equal(provider_parse_chunk(EP_CHAT, error, strlen(error), &r, NULL), CHUNK_ERROR);
    assert_string_equal(r.content.data, "Hello"); /* an error chunk adds nothing */
    assert_int_equal(provider_parse_chunk(EP_CHAT, "[DONE]", 6, &r, NULL), CHUNK_DONE);
    assert_int_equal(provider_parse_chunk(EP_CHAT, "{\"choices\":[", 12, &r, NULL), CHUNK_BAD);
    assert_string_equal(r.content.data, "Hello");
    reply_free(&r);
}

/* The body provider_build sends for a client body, as text. */
static char *sent_body(const char *client, int stream, int as_written)
{
    struct provider p = {.name = "p", .type = PROVIDER_OPENAI, .base_url = "http://127.0.0.1:1/v1"};
    struct model m = {.name = "m", .provider = &p, .id = "up-1"};
    json_t *body = json_loads(client, 0, NULL);
    struct call_spec spec;
    struct api_error e;
    char *out;

    assert_non_null(body);
    assert_int_equal(provider_build(&m, EP_CHAT, body, as_written ? client : NULL,
                                    as_written ? strlen(client) : 0, stream, NULL, &spec, &e),
                     0);
    assert_int_equal(strlen(spec.body), spec.body_len);
    out = spec.body;
    curl_slist_free_all(spec.headers);
    free(spec.url);
    json_decref(body);
    return out;
}

static void test_body_as_written(void **state)
{
    char *s;

    UNUSED(state);
    /* Numbers, spacing and unknown members stay as the client wrote them. */
    s = sent_body("{\"model\":\"smart\", \"temperature\": 0.7,\"x\":{\"y\":[1e2]}}", 0, 1);
    assert_string_equal(s, "{\"model\":\"up-1\",\"temperature\": 0.7,\"x\":{\"y\":[1e2]}}");
    free(s);
    /* Through the tree, 0.7 would have become 0.69999999999999996. */
    s = sent_body("{\"model\":\"smart\",\"temperature\":0.7}", 0, 0);
    assert_non_null(strstr(s, "0.69999999999999996"));
    free(s);
    /* A stream asks for usage, keeping the client's other stream options. */
    s = sent_body("{\"stream\":true,\"stream_options\":{\"include_usage\":false,\"k\":1},"
                  "\"model\":\"smart\"}",
                  1, 1);
    assert_string_equal(s, "{\"model\":\"up-1\",\"stream\":true,"
                           "\"stream_options\":{\"k\":1,\"include_usage\":true}}");
    free(s);
    s = sent_body("{\"model\":\"smart\"}", 1, 1);
    assert_string_equal(
        s, "{\"model\":\"up-1\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    free(s);
    /* A buffered call of a streaming client: no stream upstream. */
    s = sent_body(
        "{\"model\":\"smart\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", 0, 1);
    assert_string_equal(s, "{\"model\":\"up-1\",\"stream\":false}");
    free(s);
    /* stream_options without stream is the client's business. */
    s = sent_body("{\"stream_options\":{\"a\":1},\"model\":\"smart\"}", 0, 1);
    assert_string_equal(s, "{\"model\":\"up-1\",\"stream_options\":{\"a\":1}}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_body_as_written),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
