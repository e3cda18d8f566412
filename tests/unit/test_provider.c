/* Unit tests for provider.c, the provider layer's switch: a call is built,
 * and its answers, errors and streams translated, by the model's provider
 * type (an OpenAI or Azure answer passes as it is, an Anthropic one becomes
 * OpenAI's), and what every type's call shares: the common headers and the
 * model's timeouts over its provider's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config.h"
#include "../../src/provider.h"

static const char chat[] =
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static int has_header(const struct curl_slist *h, const char *line)
{
    for (; h; h = h->next)
        if (strcmp(h->data, line) == 0)
            return 1;
    return 0;
}

static void spec_free(struct call_spec *spec)
{
    curl_slist_free_all(spec->headers);
    free(spec->url);
    free(spec->body);
}

/* Build a chat call to a model of the given type. */
static int build(enum provider_type type, enum endpoint ep, struct call_spec *spec,
                 struct api_error *e)
{
    static struct provider p;
    static struct model m;
    json_t *body = json_loads(chat, 0, NULL);
    int rc;

    memset(&p, 0, sizeof(p));
    memset(&m, 0, sizeof(m));
    p.name = "p";
    p.type = type;
    p.base_url = "http://127.0.0.1:1/v1";
    p.api_key = "sk-test";
    p.anthropic_version = "2023-06-01";
    p.default_max_tokens = 1024;
    p.timeout_ms = 30000;
    m.name = "m";
    m.id = "up-1";
    m.provider = &p;
    assert_non_null(body);
    rc = provider_build(&m, ep, body, chat, strlen(chat), 0, NULL, spec, e);
    json_decref(body);
    return rc;
}

static void test_build_by_type(void **state)
{
    struct call_spec spec;
    struct api_error e = {0};
    json_t *sent;

    UNUSED(state);
    /* OpenAI: chat completions, a bearer key, the client's body as written
     * but for the model's id. */
    assert_int_equal(build(PROVIDER_OPENAI, EP_CHAT, &spec, &e), 0);
    assert_string_equal(spec.url, "http://127.0.0.1:1/v1/chat/completions");
    assert_true(has_header(spec.headers, "Authorization: Bearer sk-test"));
    assert_true(has_header(spec.headers, "Content-Type: application/json"));
    assert_true(has_header(spec.headers, "Accept: application/json"));
    assert_true(has_header(spec.headers, "Expect:"));
    sent = json_loads(spec.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "up-1");
    assert_null(json_object_get(sent, "max_tokens"));
    json_decref(sent);
    spec_free(&spec);

    /* Anthropic: a Messages call, x-api-key and anthropic-version, a
     * max_tokens it requires. */
    assert_int_equal(build(PROVIDER_ANTHROPIC, EP_CHAT, &spec, &e), 0);
    assert_string_equal(spec.url, "http://127.0.0.1:1/v1/messages");
    assert_true(has_header(spec.headers, "x-api-key: sk-test"));
    assert_true(has_header(spec.headers, "anthropic-version: 2023-06-01"));
    assert_false(has_header(spec.headers, "Authorization: Bearer sk-test"));
    sent = json_loads(spec.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "up-1");
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 1024);
    json_decref(sent);
    spec_free(&spec);

    /* What Anthropic cannot serve is a 400 before any call. */
    assert_int_equal(build(PROVIDER_ANTHROPIC, EP_EMBEDDINGS, &spec, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "only chat completions"));
}

static void test_answers_by_type(void **state)
{
    static const char openai[] = "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[]}";
    static const char msg[] = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
                              "\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}],"
                              "\"stop_reason\":\"end_turn\","
                              "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}";
    static const char err[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                              "\"message\":\"Overloaded\"}}";
    struct provider po = {.name = "o", .type = PROVIDER_OPENAI};
    struct provider pa = {.name = "a", .type = PROVIDER_ANTHROPIC};
    struct model mo = {.name = "mo", .provider = &po}, ma = {.name = "ma", .provider = &pa};
    struct reply r;
    struct buf b;

    UNUSED(state);
    /* An OpenAI answer and error pass untouched. */
    buf_init(&b, 1 << 16);
    assert_true(buf_puts(&b, openai) == 0);
    assert_int_equal(provider_answer_normalize(&mo, EP_CHAT, &b), 0);
    assert_int_equal(b.len, strlen(openai));
    assert_memory_equal(b.data, openai, b.len);
    provider_error_normalize(&mo, &b);
    assert_memory_equal(b.data, openai, b.len);
    buf_free(&b);

    /* An Anthropic message becomes a chat completion the reader takes. */
    buf_init(&b, 1 << 16);
    assert_true(buf_puts(&b, msg) == 0);
    assert_int_equal(provider_answer_normalize(&ma, EP_CHAT, &b), 0);
    reply_init(&r);
    assert_int_equal(provider_parse_response(EP_CHAT, b.data, b.len, &r), 0);
    assert_false(r.is_error);
    assert_string_equal(r.content.data, "Hello");
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.prompt_tokens, 3);
    reply_free(&r);
    buf_free(&b);

    /* An Anthropic error body, even in a 200, becomes OpenAI's error shape,
     * which the reader reports as the failure it is. */
    buf_init(&b, 1 << 16);
    assert_true(buf_puts(&b, err) == 0);
    assert_int_equal(provider_answer_normalize(&ma, EP_CHAT, &b), 0);
    reply_init(&r);
    provider_parse_response(EP_CHAT, b.data, b.len, &r);
    assert_true(r.is_error);
    assert_non_null(strstr(r.error, "Overloaded"));
    reply_free(&r);
    buf_reset(&b);
    assert_true(buf_puts(&b, err) == 0);
    provider_error_normalize(&ma, &b);
    assert_non_null(strstr(b.data, "\"error\""));
    assert_null(strstr(b.data, "\"type\":\"error\""));
    buf_free(&b);

    /* Streams: OpenAI's chunks are the internal form already. */
    assert_null(provider_stream_new(&mo));
    struct provider_stream *s = provider_stream_new(&ma);
    assert_non_null(s);
    provider_stream_free(s);
}

static void test_call_policy(void **state)
{
    struct provider p = {.name = "p",
                         .connect_timeout_ms = 1000,
                         .timeout_ms = 60000,
                         .first_byte_timeout_ms = 20000,
                         .idle_timeout_ms = 5000,
                         .http_version = HTTP_2,
                         .ca_file = "/ca.pem"};
    struct model m = {.name = "m", .provider = &p, .timeout_ms = 9000};
    struct call_spec spec = {0};
    struct curl_slist *h;

    UNUSED(state);
    /* The model's own timeout wins; unset ones come from the provider. */
    provider_call_policy(&m, 1, &spec);
    assert_int_equal(spec.timeout_ms, 9000);
    assert_int_equal(spec.connect_timeout_ms, 1000);
    assert_int_equal(spec.first_byte_timeout_ms, 20000);
    assert_int_equal(spec.idle_timeout_ms, 5000);
    assert_true(spec.small_reads);
    assert_true(spec.http2);
    assert_string_equal(spec.ca_file, "/ca.pem");
    provider_call_policy(&m, 0, &spec);
    assert_false(spec.small_reads);

    /* A stream asks for events; every call names sluice. */
    h = provider_common_headers(NULL, 1);
    assert_true(has_header(h, "Accept: text/event-stream"));
    assert_true(has_header(h, "User-Agent: sluice/" SLUICE_VERSION));
    curl_slist_free_all(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_by_type),
        cmocka_unit_test(test_answers_by_type),
        cmocka_unit_test(test_call_policy),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
