/* Unit tests of Anthropic in front and behind at once: the client-side
 * translator (api_messages.c) and the provider-side one
 * (provider_anthropic.c) composed. A Messages request taken into the chat
 * form and sent on to an Anthropic-type provider must ask what the client
 * asked; the provider's answer, whole or streamed, taken into the chat
 * form and back out to the client must say what the provider said. This is
 * the path of an Anthropic SDK client whose route ends at Anthropic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_messages.h"
#include "../../src/provider.h"
#include "dialect_test.h"

/* A Messages request (single-quoted JSON) through both translators: into
 * the chat form as /v1/messages takes it, then out as the Messages call an
 * Anthropic provider makes for model claude-x. A new reference. */
static json_t *there_and_back(const char *req_text)
{
    json_t *req = J(req_text), *chat, *out;
    struct api_error err = {0};
    char *text = NULL;
    size_t len = 0;

    chat = messages_request_to_chat(req, 0, &err);
    if (chat == NULL)
        fail_msg("api_messages refused: %s", err.message);
    if (anthropic_request(chat, "claude-x", 4096, json_is_true(json_object_get(req, "stream")),
                          &text, &len, &err) < 0)
        fail_msg("provider_anthropic refused: %s", err.message);
    out = json_loadb(text, len, 0, NULL);
    assert_non_null(out);
    free(text);
    json_decref(chat);
    json_decref(req);
    return out;
}

/* A string where Messages takes text blocks, as the one block it means. */
static void text_as_blocks(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (json_is_string(v))
        json_object_set_new(o, key, json_pack("[{s:s, s:O}]", "type", "text", "text", v));
}

/* A Messages request written the one way of the ways that say the same:
 * system, turn and tool_result contents as text blocks. Takes req. */
static json_t *normal(json_t *req)
{
    json_t *m, *b;
    size_t i, k;

    text_as_blocks(req, "system");
    json_array_foreach (json_object_get(req, "messages"), i, m) {
        text_as_blocks(m, "content");
        json_array_foreach (json_object_get(m, "content"), k, b) {
            if (api_streq(api_str(b, "type"), "tool_result"))
                text_as_blocks(b, "content");
        }
    }
    return req;
}

/* The request must come out meaning what it meant going in. */
static void same_request(const char *req_text)
{
    json_expect(normal(there_and_back(req_text)), normal(J(req_text)),
                "Messages -> chat -> Messages");
}

static void test_request(void **state)
{
    (void)state;
    /* settings, a system string, stop sequences, the user id */
    same_request("{'model':'claude-x','max_tokens':9,'system':'Be brief.','messages':"
                 "[{'role':'user','content':'Hi'}],'stream':true,'temperature':0.5,"
                 "'top_p':0.9,'stop_sequences':['END','STOP'],'metadata':{'user_id':'u-1'}}");
    /* a tool round trip: tool_use ids and inputs, the result before the
     * user's text, a forced tool, no parallel calls */
    same_request(
        "{'model':'claude-x','max_tokens':100,'messages':["
        "{'role':'user','content':'Weather and time in Oslo?'},"
        "{'role':'assistant','content':[{'type':'text','text':'Let me look.'},"
        "{'type':'tool_use','id':'toolu_1','name':'get_weather','input':{'city':'Oslo'}},"
        "{'type':'tool_use','id':'toolu_2','name':'get_time','input':{'tz':'CET','utc':false}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'Snow'},"
        "{'type':'tool_result','tool_use_id':'toolu_2','content':'10:00'},"
        "{'type':'text','text':'And tomorrow?'}]}],"
        "'tools':[{'name':'get_weather','description':'Weather in a city','input_schema':"
        "{'type':'object','properties':{'city':{'type':'string'}},'required':['city']}},"
        "{'name':'get_time','input_schema':{'type':'object','properties':{}}}],"
        "'tool_choice':{'type':'tool','name':'get_weather','disable_parallel_tool_use':true}}");
    /* system blocks */
    same_request("{'model':'claude-x','max_tokens':9,'system':[{'type':'text','text':'A'},"
                 "{'type':'text','text':'B'}],'messages':[{'role':'user','content':'x'}]}");
    /* any tool; an image by base64 and one by URL */
    same_request(
        "{'model':'claude-x','max_tokens':5,'messages':[{'role':'user','content':["
        "{'type':'text','text':'What is this?'},"
        "{'type':'image','source':{'type':'base64','media_type':'image/png','data':'iVBOR'}},"
        "{'type':'image','source':{'type':'url','url':'https://example.com/a.jpg'}}]}],"
        "'tools':[{'name':'f','input_schema':{'type':'object'}}],'tool_choice':{'type':'any'}}");
}

/* What the two translations may change without changing the meaning. */
static void test_request_normal_forms(void **state)
{
    (void)state;
    /* two user turns in a row are one */
    json_expect(
        normal(there_and_back("{'model':'m','max_tokens':9,'messages':[{'role':'user','content':"
                              "[{'type':'text','text':'a'}]},{'role':'user','content':'b'}]}")),
        normal(J("{'model':'claude-x','max_tokens':9,'messages':[{'role':'user','content':"
                 "[{'type':'text','text':'a'},{'type':'text','text':'b'}]}]}")),
        "user turns merged");
    /* a result given twice for one tool_use reaches Anthropic once
     * (LiteLLM #16711) */
    json_expect(
        normal(there_and_back("{'model':'m','max_tokens':9,'messages':[{'role':'user','content':"
                              "'q'},{'role':'assistant','content':[{'type':'tool_use','id':'t',"
                              "'name':'f','input':{}}]},{'role':'user','content':[{'type':"
                              "'tool_result','tool_use_id':'t','content':'r'},{'type':"
                              "'tool_result','tool_use_id':'t','content':'r'}]}]}")),
        normal(J("{'model':'claude-x','max_tokens':9,'messages':[{'role':'user','content':'q'},"
                 "{'role':'assistant','content':[{'type':'tool_use','id':'t','name':'f',"
                 "'input':{}}]},{'role':'user','content':[{'type':'tool_result','tool_use_id':"
                 "'t','content':'r'}]}]}")),
        "one tool_result per id");
}

/* An Anthropic answer (single-quoted JSON) through both translators: into
 * a chat.completion as an Anthropic provider reads it, then out as the
 * Messages answer /v1/messages writes. A new reference. */
static json_t *answer_there_and_back(const json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    struct buf chat;
    json_t *c, *out;

    buf_init(&chat, 1 << 20);
    assert_int_equal(anthropic_answer(text, strlen(text), 1700000000, &chat), 0);
    c = json_loadb(chat.data, chat.len, 0, NULL);
    assert_non_null(c);
    out = messages_answer_from_chat(c, api_str(msg, "id"));
    json_decref(c);
    buf_free(&chat);
    free(text);
    return out;
}

static const char *const answers[] = {
    /* text, with prompt cache reads and writes */
    "{'id':'msg_1','type':'message','role':'assistant','model':'claude-x','content':"
    "[{'type':'text','text':'Hello there.'}],'stop_reason':'end_turn','stop_sequence':null,"
    "'usage':{'input_tokens':12,'output_tokens':3,'cache_creation_input_tokens':300,"
    "'cache_read_input_tokens':2000}}",
    /* text and two tools */
    "{'id':'msg_2','type':'message','role':'assistant','model':'claude-x','content':"
    "[{'type':'text','text':'Let me look.'},{'type':'tool_use','id':'toolu_a','name':"
    "'get_weather','input':{'city':'Oslo'}},{'type':'tool_use','id':'toolu_b','name':'get_time',"
    "'input':{'tz':'CET','n':[1,2.5,null]}}],'stop_reason':'tool_use','stop_sequence':null,"
    "'usage':{'input_tokens':40,'output_tokens':25,'cache_creation_input_tokens':0,"
    "'cache_read_input_tokens':0}}",
    /* ended by a stop sequence, which the client learns (vLLM's
     * stop_reason carries it through the chat form) */
    "{'id':'msg_4','type':'message','role':'assistant','model':'claude-x','content':"
    "[{'type':'text','text':'one two '}],'stop_reason':'stop_sequence','stop_sequence':'STOP',"
    "'usage':{'input_tokens':5,'output_tokens':2,'cache_creation_input_tokens':0,"
    "'cache_read_input_tokens':0}}",
    /* cut at max_tokens */
    "{'id':'msg_3','type':'message','role':'assistant','model':'claude-x','content':"
    "[{'type':'text','text':'one two'}],'stop_reason':'max_tokens','stop_sequence':null,"
    "'usage':{'input_tokens':5,'output_tokens':2,'cache_creation_input_tokens':0,"
    "'cache_read_input_tokens':0}}",
};

static void test_answer(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(answers); i++) {
        json_t *msg = J(answers[i]);

        json_expect(answer_there_and_back(msg), json_incref(msg),
                    "Messages answer -> chat -> Messages");
        json_decref(msg);
    }
}

/* Streams: the provider's events, into chat chunks, into the client's
 * events. */
struct relay {
    struct messages_stream *ms;
    struct buf out;
};

static int relay_cb(void *arg, const char *data, size_t len)
{
    struct relay *r = arg;
    json_t *chunk;
    int rc;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return messages_stream_done(r->ms, &r->out);
    chunk = json_loadb(data, len, 0, NULL);
    assert_non_null(chunk);
    rc = messages_stream_chunk(r->ms, chunk, &r->out);
    json_decref(chunk);
    return rc;
}

/* The events (single-quoted JSON, one each) of an Anthropic stream, relayed
 * through both translators; returns the client's events. input_tokens: what
 * the gateway estimated for message_start. */
static json_t *relay_stream(const char *const *events, size_t n, long input_tokens)
{
    struct provider_stream *ps = anthropic_stream_new(1700000000);
    struct relay r = {messages_stream_new("msg_s", input_tokens), {0}};
    json_t *out;

    buf_init(&r.out, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        json_t *ev = J(events[i]);
        char *text = json_dumps(ev, JSON_COMPACT);

        assert_int_equal(
            provider_stream_event(ps, api_str(ev, "type"), text, strlen(text), relay_cb, &r), 0);
        free(text);
        json_decref(ev);
    }
    assert_int_equal(messages_stream_done(r.ms, &r.out), 0);
    out = sse_events(r.out.data, r.out.len);
    provider_stream_free(ps);
    messages_stream_free(r.ms);
    buf_free(&r.out);
    return out;
}

/* An Anthropic stream's events as one JSON array, for accumulate_message. */
static json_t *as_events(const char *const *events, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++) {
        json_t *d = J(events[i]);

        json_array_append_new(a, json_pack("{s:s, s:o}", "event", api_str(d, "type"), "data", d));
    }
    return a;
}

static void test_stream(void **state)
{
    static const char *const events[] = {
        "{'type':'message_start','message':{'id':'msg_s','type':'message','role':'assistant',"
        "'model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,'usage':"
        "{'input_tokens':7,'cache_creation_input_tokens':30,'cache_read_input_tokens':100,"
        "'output_tokens':1}}}",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''}}",
        "{'type':'ping'}",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'Let '}}",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'me.'}}",
        "{'type':'content_block_stop','index':0}",
        "{'type':'content_block_start','index':1,'content_block':{'type':'tool_use','id':'tu_a',"
        "'name':'w','input':{}}}",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'{\\'city\\':'}}",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'\\'Oslo\\'}'}}",
        "{'type':'content_block_stop','index':1}",
        "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use','id':'tu_b',"
        "'name':'t','input':{}}}",
        "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
        "'partial_json':'{}'}}",
        "{'type':'content_block_stop','index':2}",
        "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
        "'usage':{'output_tokens':12}}",
        "{'type':'message_stop'}",
    };
    json_t *in = as_events(events, ARRAY_LEN(events));
    json_t *out = relay_stream(events, ARRAY_LEN(events), 7);
    json_t *want = accumulate_message(in), *got = accumulate_message(out), *e;
    char *types = event_types(out);
    size_t i;

    (void)state;
    /* The client's message is the provider's: blocks, ids, inputs, the
     * stop reason and the usage with the cache's tokens (LiteLLM #31069). */
    json_expect(got, want, "Anthropic stream -> chat -> Anthropic stream");
    /* Anthropic's event order, every block stopped */
    assert_string_equal(types, "message_start content_block_start ping content_block_delta "
                               "content_block_delta content_block_stop content_block_start "
                               "content_block_delta content_block_delta content_block_stop "
                               "content_block_start content_block_delta content_block_stop "
                               "message_delta message_stop");
    /* message_start says the input tokens, never 0 (LiteLLM #24176) */
    e = json_array_get(out, 0);
    assert_true(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(json_object_get(e, "data"), "message"), "usage"),
            "input_tokens")) > 0);
    /* each tool's deltas stay on its own block */
    json_array_foreach (out, i, e) {
        json_t *d = json_object_get(e, "data");

        if (api_streq(api_str(d, "type"), "content_block_delta") &&
            api_streq(api_str(json_object_get(d, "delta"), "type"), "input_json_delta"))
            assert_true(json_integer_value(json_object_get(d, "index")) >= 1);
    }
    free(types);
    json_decref(in);
    json_decref(out);
}

static void test_stream_stop_sequence(void **state)
{
    static const char *const events[] = {
        "{'type':'message_start','message':{'id':'msg_s','type':'message','role':'assistant',"
        "'model':'claude-x','content':[],'stop_reason':null,'stop_sequence':null,'usage':"
        "{'input_tokens':4,'cache_creation_input_tokens':0,'cache_read_input_tokens':0,"
        "'output_tokens':1}}}",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''}}",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'one '}}",
        "{'type':'content_block_stop','index':0}",
        "{'type':'message_delta','delta':{'stop_reason':'stop_sequence','stop_sequence':'END'},"
        "'usage':{'output_tokens':1}}",
        "{'type':'message_stop'}",
    };
    json_t *in = as_events(events, ARRAY_LEN(events));
    json_t *out = relay_stream(events, ARRAY_LEN(events), 4);

    (void)state;
    json_expect(accumulate_message(out), accumulate_message(in), "the stop sequence streamed");
    json_decref(in);
    json_decref(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_request_normal_forms),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_stop_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
