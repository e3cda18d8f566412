/* Unit tests for provider_openai.c, the OpenAI and Azure OpenAI provider:
 * reading answers (whole and streamed), the call sent upstream (URL,
 * headers, credentials, timeouts, the body as the client wrote it), a
 * stream rebuilt as a whole response, and a whole response replayed as a
 * stream. */
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

    /* A message that is a string is not content (fuzz_provider found it
     * read as the answer's text). */
    parse(EP_CHAT,
          "{\"choices\":[{\"message\":\"stop\"},{\"message\":{\"content\":\"B\"}}]}", &r, 0);
    assert_int_equal(r.content.len, 0);
    assert_string_equal(json_string_value(json_array_get(r.choices_text, 0)), "");
    assert_string_equal(json_string_value(json_array_get(r.choices_text, 1)), "B");
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

/* The call's header lines, one string "a\nb\n". */
static char *header_lines(const struct curl_slist *h)
{
    struct buf b;
    char *s;
    size_t len;

    buf_init(&b, 1 << 16);
    for (; h; h = h->next)
        assert_int_equal(buf_printf(&b, "%s\n", h->data), 0);
    s = buf_steal(&b, &len);
    return s;
}

static void spec_free(struct call_spec *spec)
{
    curl_slist_free_all(spec->headers);
    free(spec->url);
    free(spec->body);
}

static void test_call_openai(void **state)
{
    struct header_kv extra[] = {{"x-team", "blue"}};
    struct provider p = {.name = "p",
                         .type = PROVIDER_OPENAI,
                         .base_url = "https://api.example.com/v1",
                         .api_key = "sk-secret",
                         .headers = extra,
                         .nheaders = 1,
                         .timeout_ms = 120000,
                         .connect_timeout_ms = 5000,
                         .first_byte_timeout_ms = 30000,
                         .idle_timeout_ms = 20000};
    struct model m = {.name = "m", .provider = &p, .id = "gpt-x", .timeout_ms = 9000};
    const char *client = "{\"model\":\"m\",\"messages\":[]}";
    struct call_spec spec;
    struct api_error e;
    char *h;

    UNUSED(state);
    assert_int_equal(
        provider_build(&m, EP_CHAT, NULL, client, strlen(client), 0, "Bearer client", &spec, &e),
        0);
    assert_string_equal(spec.url, "https://api.example.com/v1/chat/completions");
    h = header_lines(spec.headers);
    assert_non_null(strstr(h, "Content-Type: application/json\n"));
    assert_non_null(strstr(h, "Accept: application/json\n"));
    assert_non_null(strstr(h, "Authorization: Bearer sk-secret\n"));
    assert_null(strstr(h, "client")); /* not passthrough: the client's is not sent */
    assert_non_null(strstr(h, "x-team: blue\n"));
    assert_non_null(strstr(h, "User-Agent: sluice/"));
    free(h);
    /* the model's timeout wins, the provider's fill the rest */
    assert_int_equal(spec.timeout_ms, 9000);
    assert_int_equal(spec.connect_timeout_ms, 5000);
    assert_int_equal(spec.first_byte_timeout_ms, 30000);
    assert_int_equal(spec.idle_timeout_ms, 20000);
    assert_false(spec.small_reads);
    assert_false(spec.http2);
    spec_free(&spec);

    /* a stream: event-stream, small reads; HTTP/2 when asked */
    p.http_version = HTTP_2;
    assert_int_equal(
        provider_build(&m, EP_COMPLETIONS, NULL, client, strlen(client), 1, NULL, &spec, &e), 0);
    assert_string_equal(spec.url, "https://api.example.com/v1/completions");
    h = header_lines(spec.headers);
    assert_non_null(strstr(h, "Accept: text/event-stream\n"));
    free(h);
    assert_true(spec.small_reads);
    assert_true(spec.http2);
    spec_free(&spec);

    /* passthrough_auth: the client's credentials, never the key */
    p.passthrough_auth = 1;
    assert_int_equal(provider_build(&m, EP_EMBEDDINGS, NULL, client, strlen(client), 0,
                                    "Bearer client", &spec, &e),
                     0);
    assert_string_equal(spec.url, "https://api.example.com/v1/embeddings");
    h = header_lines(spec.headers);
    assert_non_null(strstr(h, "Authorization: Bearer client\n"));
    assert_null(strstr(h, "sk-secret"));
    free(h);
    spec_free(&spec);
    /* a provider without a key sends no Authorization */
    p.passthrough_auth = 0;
    p.api_key = NULL;
    assert_int_equal(provider_build(&m, EP_CHAT, NULL, client, strlen(client), 0, NULL, &spec, &e),
                     0);
    h = header_lines(spec.headers);
    assert_null(strstr(h, "Authorization"));
    free(h);
    spec_free(&spec);
}

static void test_call_azure(void **state)
{
    struct provider p = {.name = "az",
                         .type = PROVIDER_AZURE,
                         .base_url = "https://res.openai.azure.com",
                         .api_key = "az-secret",
                         .api_version = "2024-06-01"};
    struct model m = {.name = "m", .provider = &p, .id = "my deploy/1"};
    const char *client = "{\"model\":\"m\"}";
    struct call_spec spec;
    struct api_error e;
    char *h;

    UNUSED(state);
    assert_int_equal(provider_build(&m, EP_CHAT, NULL, client, strlen(client), 0, NULL, &spec, &e),
                     0);
    /* the deployment is escaped into the path */
    assert_string_equal(spec.url, "https://res.openai.azure.com/openai/deployments/my%20deploy%2F1"
                                  "/chat/completions?api-version=2024-06-01");
    h = header_lines(spec.headers);
    assert_non_null(strstr(h, "api-key: az-secret\n"));
    assert_null(strstr(h, "Authorization"));
    free(h);
    spec_free(&spec);
    p.passthrough_auth = 1;
    assert_int_equal(
        provider_build(&m, EP_CHAT, NULL, client, strlen(client), 0, "client-key", &spec, &e), 0);
    h = header_lines(spec.headers);
    assert_non_null(strstr(h, "api-key: client-key\n"));
    assert_null(strstr(h, "az-secret"));
    free(h);
    spec_free(&spec);
}

/* A stream, rebuilt as the response a client that does not stream gets. */
static void test_assembly(void **state)
{
    static const char *chunks[] = {
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\","
        "\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,"
        "\"total_tokens\":7}}",
        "[DONE]",
    };
    struct assembly *a = provider_assembly_new(EP_CHAT);
    struct reply r;
    char *whole;
    size_t len;
    json_t *j, *choice;

    UNUSED(state);
    reply_init(&r);
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        provider_parse_chunk(EP_CHAT, chunks[i], strlen(chunks[i]), &r, a);
    whole = provider_assembly_finish(a, &len);
    assert_non_null(whole);
    j = json_loadb(whole, len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    choice = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(choice, "message"), "content")), "Hello");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(choice, "message"), "role")),
        "assistant");
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")), 2);
    json_decref(j);
    free(whole);
    provider_assembly_free(a);
    reply_free(&r);
}

/* A whole response replayed as a stream reads back as the same answer. */
static void test_sse_from_response(void **state)
{
    const char *whole =
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"up\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\"},"
        "\"finish_reason\":\"length\"}],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}";
    json_t *resp = json_loads(whole, 0, NULL);
    int saw_usage = 0, saw_done = 0;
    struct buf out;
    struct reply r;
    char *p, *nl;

    UNUSED(state);
    for (int usage = 0; usage < 2; usage++) {
        buf_init(&out, 1 << 20);
        assert_int_equal(provider_sse_from_response(EP_CHAT, resp, usage, &out), 0);
        reply_init(&r);
        saw_usage = saw_done = 0;
        for (p = out.data; (nl = strstr(p, "\n\n")) != NULL; p = nl + 2) {
            assert_true(strncmp(p, "data: ", 6) == 0);
            switch (provider_parse_chunk(EP_CHAT, p + 6, (size_t)(nl - p - 6), &r, NULL)) {
            case CHUNK_USAGE:
                saw_usage = 1;
                break;
            case CHUNK_DONE:
                saw_done = 1;
                break;
            case CHUNK_DATA:
                break;
            default:
                fail_msg("bad chunk: %.*s", (int)(nl - p), p);
            }
        }
        assert_int_equal(*p, '\0');
        assert_string_equal(r.content.data, "Hi there");
        assert_string_equal(r.finish_reason, "length");
        assert_int_equal(saw_usage, usage); /* only when the client asked */
        assert_true(saw_done);
        reply_free(&r);
        buf_free(&out);
    }
    json_decref(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response),          cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_body_as_written),   cmocka_unit_test(test_call_openai),
        cmocka_unit_test(test_call_azure),        cmocka_unit_test(test_assembly),
        cmocka_unit_test(test_sse_from_response),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
