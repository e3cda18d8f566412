/* Unit tests for the edge (dialect.c): the token estimate, request
 * translation errors, streams fed in any pieces, and a streamed answer
 * meaning what the whole one means, in both dialects. Also api_common.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_common.h"
#include "../../src/dialect.h"
#include "../../src/provider.h"
#include "dialect_test.h"

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(dialect_name(DIALECT_CHAT), "chat");
    assert_string_equal(dialect_name(DIALECT_RESPONSES), "responses");
    assert_string_equal(dialect_name(DIALECT_MESSAGES), "messages");
}

static void test_count_tokens(void **state)
{
    json_t *c;

    (void)state;
    /* ceil(chars / 4) + 4 a message: "Hello there" is 11 characters */
    c = J("{'messages':[{'role':'user','content':'Hello there'}]}");
    assert_int_equal(dialect_count_tokens(c), 3 + 4);
    json_decref(c);
    /* code points, not bytes: twelve 2-byte letters are 12 characters */
    c = J("{'messages':[{'role':'user','content':'\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
          "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9'}]}");
    assert_int_equal(dialect_count_tokens(c), 3 + 4);
    json_decref(c);
    /* text parts, images, tool calls and the tool definitions all count */
    c = J("{'messages':[{'role':'system','content':[{'type':'text','text':'abcd'}]},"
          "{'role':'user','content':[{'type':'text','text':'abcd'},{'type':'image_url','image_url':"
          "{'url':'x'}}]},"
          "{'role':'assistant','content':null,'tool_calls':[{'function':{'name':'ab','arguments':'"
          "cd'}}]},"
          "{'role':'tool','tool_call_id':'t','content':'abcd'}],"
          "'tools':[{'type':'function'}]}");
    /* 16 characters + 21 of the tools' JSON = 37 -> 10, 4 messages -> 16, one image */
    assert_int_equal(dialect_count_tokens(c), 10 + 16 + DIALECT_MEDIA_TOKENS);
    json_decref(c);
    c = J("{'messages':[]}");
    assert_int_equal(dialect_count_tokens(c), 1); /* never 0 */
    json_decref(c);
}

static void test_request(void **state)
{
    struct dialect_ctx *dx = dialect_new(DIALECT_MESSAGES, 0);
    struct api_error e = {0};
    const char *body =
        "{\"model\":\"r\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    char *chat;
    size_t len;

    (void)state;
    assert_int_equal(dialect_request(dx, body, strlen(body), 1000, &chat, &len, &e), 0);
    assert_string_equal(chat,
                        "{\"model\":\"r\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                        "\"max_tokens\":5}");
    assert_int_equal(len, strlen(chat));
    assert_int_equal(dialect_input_tokens(dx), 1 + 4);
    free(chat);
    /* numbers go on as they were written, not as %.17g would */
    body = "{\"model\":\"r\",\"max_tokens\":5,\"temperature\":0.7,\"top_p\":0.9,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    assert_int_equal(dialect_request(dx, body, strlen(body), 1000, &chat, &len, &e), 0);
    assert_non_null(strstr(chat, "\"temperature\":0.7,\"top_p\":0.9"));
    free(chat);
    /* over the cap once translated: 413 */
    assert_int_equal(dialect_request(dx, body, strlen(body), 20, &chat, &len, &e), -1);
    assert_int_equal(e.status, 413);
    assert_null(chat);
    /* not JSON, a duplicate key: 400 */
    assert_int_equal(dialect_request(dx, "{\"model\":", 9, 1000, &chat, &len, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "could not parse"));
    assert_int_equal(dialect_request(dx, "{\"a\":1,\"a\":2}", 13, 1000, &chat, &len, &e), -1);
    assert_int_equal(e.status, 400);
    dialect_free(dx);
}

static void test_error_of(void **state)
{
    struct api_error e;
    const char *body =
        "{\"error\":{\"message\":\"context too long\",\"type\":\"invalid_request_error\"}}";

    (void)state;
    dialect_error_of(body, strlen(body), 400, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.message, "context too long");
    dialect_error_of("<html>", 6, 429, &e);
    assert_int_equal(e.status, 429);
    assert_non_null(strstr(e.message, "refused"));
}

/* The chat SSE of a whole chat answer, as a buffered stage or a cache hit
 * streams it. */
static char *chat_sse(const char *answer, size_t *len)
{
    json_t *a = J(answer);
    struct buf b;

    buf_init(&b, 1 << 20);
    if (provider_sse_from_response(EP_CHAT, a, 1, &b) < 0)
        abort();
    json_decref(a);
    return buf_steal(&b, len);
}

static const char *ANSWERS[] = {
    "{'id':'c1','object':'chat.completion','created':7,'model':'gpt-x','choices':[{'index':0,"
    "'message':{'role':'assistant','content':'Hello, this is a longer answer that streams in "
    "pieces.'},"
    "'finish_reason':'stop'}],'usage':{'prompt_tokens':20,'completion_tokens':12,'total_tokens':32,"
    "'prompt_tokens_details':{'cached_tokens':8}}}",
    "{'id':'c2','object':'chat.completion','created':7,'model':'gpt-x','choices':[{'index':0,"
    "'message':{'role':'assistant','content':'Calling.','tool_calls':["
    "{'id':'call_1','type':'function','function':{'name':'f','arguments':'{\\'a\\':1}'}},"
    "{'id':'call_2','type':'function','function':{'name':'g','arguments':'{}'}}]},"
    "'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':20,'completion_tokens':12,'total_"
    "tokens':32}}",
    "{'id':'c3','object':'chat.completion','created':7,'model':'gpt-x','choices':[{'index':0,"
    "'message':{'role':'assistant','content':'Cut'},'finish_reason':'length'}],"
    "'usage':{'prompt_tokens':2,'completion_tokens':1,'total_tokens':3}}",
};

/* Stream sse through a fresh context of dialect d, fed in pieces of
 * `piece` bytes (0: whole), and return the events. */
static json_t *translate_stream(struct dialect_ctx *dx, const char *sse, size_t len, size_t piece)
{
    struct buf out;
    json_t *ev;

    buf_init(&out, 1 << 20);
    for (size_t off = 0; off < len;) {
        size_t n = piece && len - off > piece ? piece : len - off;

        assert_int_equal(dialect_stream(dx, sse + off, n, &out), 0);
        off += n;
    }
    assert_int_equal(dialect_stream_end(dx, &out), 0);
    ev = sse_events(out.data, out.len);
    buf_free(&out);
    return ev;
}

static void test_stream_means_the_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ANSWERS); i++) {
        size_t len, wlen;
        char *sse = chat_sse(ANSWERS[i], &len);
        char *whole;
        json_t *events, *a;

        for (int d = DIALECT_RESPONSES; d <= DIALECT_MESSAGES; d++) {
            json_t *first = NULL;

            /* fed whole (piece 0), then in pieces of 1 to 16 bytes and
             * longer: the same events */
            for (size_t piece = 0; piece <= len; piece += piece < 16 ? 1 : 97) {
                struct dialect_ctx *dx = dialect_new((enum dialect)d, 0);

                events = translate_stream(dx, sse, len, piece);
                if (first == NULL) {
                    /* ... and they say what the whole answer says */
                    a = J(ANSWERS[i]);
                    whole = json_dumps(a, JSON_COMPACT);
                    json_decref(a);
                    wlen = strlen(whole);
                    assert_int_equal(dialect_answer(dx, &whole, &wlen), 0);
                    a = json_loads(whole, 0, NULL);
                    free(whole);
                    if (d == DIALECT_RESPONSES) {
                        json_t *last = json_array_get(events, json_array_size(events) - 1);

                        json_expect(
                            json_incref(json_object_get(json_object_get(last, "data"), "response")),
                            a, "responses: stream = whole");
                    } else {
                        json_expect(accumulate_message(events), a, "messages: stream = whole");
                    }
                    first = events;
                } else {
                    /* the ids differ from context to context: compare the types */
                    char *t1 = event_types(first), *t2 = event_types(events);

                    assert_string_equal(t1, t2);
                    free(t1);
                    free(t2);
                    json_decref(events);
                }
                dialect_free(dx);
            }
            json_decref(first);
        }
        free(sse);
    }
}

static void test_hit_replay(void **state)
{
    /* a stored answer replayed: dialect_answer_sse translates it whole */
    struct dialect_ctx *dx = dialect_new(DIALECT_MESSAGES, 0);
    size_t len;
    char *sse = chat_sse(ANSWERS[0], &len), *types;
    json_t *ev;

    (void)state;
    assert_int_equal(dialect_answer_sse(dx, &sse, &len), 0);
    ev = sse_events(sse, len);
    types = event_types(ev);
    assert_non_null(strstr(types, "message_start content_block_start ping content_block_delta "));
    assert_non_null(
        strstr(types, "content_block_delta content_block_stop message_delta message_stop"));
    assert_true(strncmp(types, "message_start", 13) == 0);
    free(types);
    json_decref(ev);
    free(sse);
    dialect_free(dx);
}

static void test_ping_and_fail(void **state)
{
    struct dialect_ctx *m = dialect_new(DIALECT_MESSAGES, 0),
                       *r = dialect_new(DIALECT_RESPONSES, 0);
    struct api_error e;
    struct buf out;

    (void)state;
    buf_init(&out, 1 << 16);
    /* the gateway's keep-alive: Anthropic's ping event, an SSE comment for OpenAI */
    assert_int_equal(dialect_stream(m, ": ping\n\n", 8, &out), 0);
    assert_string_equal(out.data, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    buf_reset(&out);
    assert_int_equal(dialect_stream(r, ": ping\n\n", 8, &out), 0);
    assert_string_equal(out.data, ": ping\n\n");
    buf_reset(&out);
    /* a failure: Anthropic's error event carries the rendered error */
    api_error_set(&e, 504, "api_error", "upstream_timeout", NULL, "%s", "too slow");
    assert_int_equal(dialect_stream_fail(m, &e, "{\"type\":\"error\"}", &out), 0);
    assert_string_equal(out.data, "event: error\ndata: {\"type\":\"error\"}\n\n");
    buf_reset(&out);
    assert_int_equal(dialect_stream_fail(r, &e, "unused", &out), 0);
    assert_non_null(strstr(out.data, "event: response.failed"));
    /* what the relay never writes is refused */
    assert_int_equal(dialect_stream(m, "event: x\n\n", 10, &out), -1);
    assert_int_equal(dialect_stream(m, "data: [1]\n\n", 11, &out), -1);
    buf_free(&out);
    dialect_free(m);
    dialect_free(r);
}

/* api_dump: what json_dumps writes, but reals as short as they read back. */
static void expect_dump(const char *json_text, const char *want)
{
    json_t *v = json_loads(json_text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *back;
    struct buf b;

    assert_non_null(v);
    buf_init(&b, 1 << 16);
    assert_int_equal(api_dump(&b, v), 0);
    assert_string_equal(b.data, want);
    back = json_loads(b.data, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_true(json_equal(back, v)); /* and reads back as the same tree */
    json_decref(back);
    json_decref(v);
    buf_free(&b);
}

static void test_dump(void **state)
{
    struct buf b;
    json_t *v;

    (void)state;
    expect_dump(
        "{\"t\":0.7,\"p\":1.0,\"n\":-3,\"x\":0.30000000000000004,\"e\":1e-20,\"big\":1e300}",
        "{\"t\":0.7,\"p\":1.0,\"n\":-3,\"x\":0.30000000000000004,\"e\":1e-20,\"big\":1e+300}");
    expect_dump("[\"a\\\"b\\n\\u0000\\u00e9\",true,false,null,[],{}]",
                "[\"a\\\"b\\n\\u0000\xc3\xa9\",true,false,null,[],{}]");
    /* over the cap: -1, and the buffer has failed */
    v = json_pack("{s:s}", "k", "a long enough value");
    buf_init(&b, 8);
    assert_int_equal(api_dump(&b, v), -1);
    assert_true(b.failed);
    buf_free(&b);
    json_decref(v);
}

static void test_common(void **state)
{
    json_t *o = J("{'s':'x','n':1,'r':1.5,'b':true,'z':null,'a':[{'type':'text','text':'ab'},"
                  "{'type':'image_url'},{'type':'text','text':'c'}]}");
    json_t *usage = NULL, *chunk, *t;
    struct api_error e;
    char finish[16] = "";

    (void)state;
    assert_string_equal(api_str(o, "s"), "x");
    assert_null(api_str(o, "n"));
    assert_null(api_str(NULL, "s"));
    assert_true(api_streq("a", "a"));
    assert_false(api_streq(NULL, "a"));
    assert_int_equal(api_check(o, "n", JSON_REAL, "a number", &e), 0);
    assert_int_equal(api_check(o, "z", JSON_STRING, "a string", &e), 0); /* null is absent */
    assert_int_equal(api_check(o, "b", JSON_TRUE, "a boolean", &e), 0);
    assert_int_equal(api_check(o, "s", JSON_REAL, "a number", &e), -1);
    assert_string_equal(e.param, "s");
    assert_string_equal(e.message, "Invalid type for 's': expected a number.");
    t = api_content_text(json_object_get(o, "a"));
    assert_string_equal(json_string_value(t), "abc");
    json_decref(t);
    assert_null(api_content_text(json_object_get(o, "n")));
    t = api_collapse(J("[{'type':'text','text':'one'}]"));
    assert_string_equal(json_string_value(t), "one");
    json_decref(t);
    chunk = J(
        "{'choices':[{'index':0,'delta':{},'finish_reason':'stop'}],'usage':{'prompt_tokens':1}}");
    assert_non_null(api_chunk_choice(chunk, &usage, finish, sizeof(finish)));
    assert_string_equal(finish, "stop");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 1);
    json_decref(chunk);
    chunk = J("{'choices':[{'index':1,'delta':{'content':'other choice'}}]}");
    assert_null(api_chunk_choice(chunk, &usage, finish, sizeof(finish)));
    json_decref(chunk);
    json_decref(usage);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_count_tokens),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_error_of),
        cmocka_unit_test(test_stream_means_the_whole),
        cmocka_unit_test(test_hit_replay),
        cmocka_unit_test(test_ping_and_fail),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_common),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
