/* Unit tests for the Anthropic provider (provider_anthropic.c): a chat
 * request as a Messages request, a Messages answer, stream and error as
 * OpenAI's, and the call that goes out. JSON is written with single quotes
 * here for reading's sake (J() turns them into double quotes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/unit.h"

#include "../../src/config.h"
#include "../../src/cost.h"
#include "../../src/provider.h"

/* JSON text with ' for ", parsed. */
#define J test_json_q

/* Translate a chat body (single-quoted JSON) and parse the Messages body. */
static json_t *to_messages(const char *chat, long max_tokens, int stream)
{
    json_t *c = J(chat), *m;
    struct api_error e = {0};
    char *out = NULL;
    size_t len = 0;

    if (anthropic_request(c, "claude-x", max_tokens, stream, &out, &len, &e) < 0)
        fail_msg("refused: %s", e.message);
    assert_int_equal(strlen(out), len);
    m = json_loads(out, 0, NULL);
    assert_non_null(m);
    free(out);
    json_decref(c);
    return m;
}

/* The request must be refused with a 400 naming param. */
static void refused(const char *chat, const char *param, const char *words)
{
    json_t *c = J(chat);
    struct api_error e = {0};
    char *out = NULL;
    size_t len;

    assert_int_equal(anthropic_request(c, "claude-x", 100, 0, &out, &len, &e), -1);
    assert_null(out);
    assert_int_equal(e.status, 400);
    if (param)
        assert_string_equal(e.param, param);
    if (strstr(e.message, words) == NULL)
        fail_msg("message '%s' lacks '%s'", e.message, words);
    json_decref(c);
}

static void assert_json(const json_t *got, const char *want)
{
    json_t *w = J(want);

    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);

        fail_msg("got %s\nwant %s", g, want);
    }
    json_decref(w);
}

static void test_request_basics(void **state)
{
    json_t *m;

    UNUSED(state);
    m = to_messages("{'model':'route','messages':[{'role':'system','content':'Be brief.'},"
                    "{'role':'user','content':'Hi'},"
                    "{'role':'developer','content':[{'type':'text','text':'No lists.'}]}],"
                    "'temperature':0.5,'top_p':0.9,'stop':'END','user':'u-1',"
                    "'frequency_penalty':1,'seed':3,'stream_options':{'include_usage':true},"
                    "'top_k':5,'mock':{'chunks':2}}",
                    4096, 1);
    assert_json(json_object_get(m, "system"),
                "[{'type':'text','text':'Be brief.'},{'type':'text','text':'No lists.'}]");
    assert_json(json_object_get(m, "messages"),
                "[{'role':'user','content':[{'type':'text','text':'Hi'}]}]");
    assert_string_equal(json_string_value(json_object_get(m, "model")), "claude-x");
    assert_int_equal(json_integer_value(json_object_get(m, "max_tokens")), 4096);
    assert_json(json_object_get(m, "stop_sequences"), "['END']");
    assert_json(json_object_get(m, "metadata"), "{'user_id':'u-1'}");
    assert_true(json_is_true(json_object_get(m, "stream")));
    assert_true(json_real_value(json_object_get(m, "temperature")) == 0.5);
    /* OpenAI-only tuning is dropped; other members pass as written. */
    assert_null(json_object_get(m, "frequency_penalty"));
    assert_null(json_object_get(m, "seed"));
    assert_null(json_object_get(m, "stream_options"));
    assert_null(json_object_get(m, "user"));
    assert_int_equal(json_integer_value(json_object_get(m, "top_k")), 5);
    assert_json(json_object_get(m, "mock"), "{'chunks':2}");
    json_decref(m);

    /* max_completion_tokens, then max_tokens, then the default. */
    m = to_messages("{'messages':[{'role':'user','content':'x'}],'max_tokens':7,"
                    "'max_completion_tokens':9}",
                    100, 0);
    assert_int_equal(json_integer_value(json_object_get(m, "max_tokens")), 9);
    assert_null(json_object_get(m, "stream"));
    json_decref(m);
    m = to_messages("{'messages':[{'role':'user','content':'x'}],'max_tokens':7}", 100, 0);
    assert_int_equal(json_integer_value(json_object_get(m, "max_tokens")), 7);
    json_decref(m);
}

static void test_request_turns(void **state)
{
    json_t *m;

    UNUSED(state);
    /* Consecutive turns of one role merge; empty text is left out; an
     * assistant turn with nothing in it goes. */
    m = to_messages("{'messages':[{'role':'user','content':'a'},{'role':'user','content':''},"
                    "{'role':'user','content':[{'type':'text','text':'b',"
                    "'cache_control':{'type':'ephemeral'}}]},"
                    "{'role':'assistant','content':''},{'role':'user','content':'c'},"
                    "{'role':'assistant','content':'d'}]}",
                    100, 0);
    assert_json(json_object_get(m, "messages"),
                "[{'role':'user','content':[{'type':'text','text':'a'},{'type':'text','text':'b',"
                "'cache_control':{'type':'ephemeral'}},{'type':'text','text':'c'}]},"
                "{'role':'assistant','content':[{'type':'text','text':'d'}]}]");
    json_decref(m);

    /* Images: a data: URL as base64, an https URL as a url source. */
    m = to_messages("{'messages':[{'role':'user','content':[{'type':'text','text':'see'},"
                    "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA'}},"
                    "{'type':'image_url','image_url':{'url':'https://x/y.png','detail':'low'}}]}]}",
                    100, 0);
    assert_json(json_object_get(json_array_get(json_object_get(m, "messages"), 0), "content"),
                "[{'type':'text','text':'see'},{'type':'image','source':{'type':'base64',"
                "'media_type':'image/png','data':'AAAA'}},{'type':'image','source':{'type':'url',"
                "'url':'https://x/y.png'}}]");
    json_decref(m);
}

static void test_request_tools(void **state)
{
    json_t *m;

    UNUSED(state);
    /* Tool calls keep their ids; the results of one turn go in one user
     * turn, first, one block per id (a second result for t2 joins the
     * first: Anthropic refuses duplicates, LiteLLM #16711). */
    m = to_messages(
        "{'messages':[{'role':'user','content':'weather?'},"
        "{'role':'assistant','content':'Checking.','tool_calls':["
        "{'id':'t1','type':'function','function':{'name':'w','arguments':'{\\'city\\':\\'A\\'}'}},"
        "{'id':'t2','type':'function','function':{'name':'w','arguments':''}}]},"
        "{'role':'tool','tool_call_id':'t1','content':'sunny'},"
        "{'role':'tool','tool_call_id':'t2','content':'rain'},"
        "{'role':'tool','tool_call_id':'t2','content':[{'type':'text','text':'more rain'}]},"
        "{'role':'user','content':'thanks'}],"
        "'tools':[{'type':'function','function':{'name':'w','description':'Weather',"
        "'parameters':{'type':'object','properties':{'city':{'type':'string'}}},'strict':true}},"
        "{'type':'function','function':{'name':'t'}}],"
        "'tool_choice':'required','parallel_tool_calls':false}",
        100, 0);
    assert_json(
        json_object_get(m, "messages"),
        "[{'role':'user','content':[{'type':'text','text':'weather?'}]},"
        "{'role':'assistant','content':[{'type':'text','text':'Checking.'},"
        "{'type':'tool_use','id':'t1','name':'w','input':{'city':'A'}},"
        "{'type':'tool_use','id':'t2','name':'w','input':{}}]},"
        "{'role':'user','content':["
        "{'type':'tool_result','tool_use_id':'t1','content':[{'type':'text','text':'sunny'}]},"
        "{'type':'tool_result','tool_use_id':'t2','content':[{'type':'text','text':'rain'},"
        "{'type':'text','text':'more rain'}]},"
        "{'type':'text','text':'thanks'}]}]");
    assert_json(json_object_get(m, "tools"),
                "[{'name':'w','description':'Weather','input_schema':{'type':'object',"
                "'properties':{'city':{'type':'string'}}}},"
                "{'name':'t','input_schema':{'type':'object','properties':{}}}]");
    assert_json(json_object_get(m, "tool_choice"),
                "{'type':'any','disable_parallel_tool_use':true}");
    json_decref(m);

    m = to_messages("{'messages':[{'role':'user','content':'x'}],'tools':[{'type':'function',"
                    "'function':{'name':'w'}}],'tool_choice':{'type':'function','function':"
                    "{'name':'w'}}}",
                    100, 0);
    assert_json(json_object_get(m, "tool_choice"), "{'type':'tool','name':'w'}");
    json_decref(m);
    m = to_messages("{'messages':[{'role':'user','content':'x'}],'tools':[{'type':'function',"
                    "'function':{'name':'w'}}],'tool_choice':'none','parallel_tool_calls':false}",
                    100, 0);
    assert_json(json_object_get(m, "tool_choice"), "{'type':'none'}");
    json_decref(m);
    /* Without tools there is nothing to choose. */
    m = to_messages("{'messages':[{'role':'user','content':'x'}],'tool_choice':'auto'}", 100, 0);
    assert_null(json_object_get(m, "tool_choice"));
    assert_null(json_object_get(m, "tools"));
    json_decref(m);
}

static void test_request_refused(void **state)
{
    UNUSED(state);
    refused("{'messages':[{'role':'user','content':'x'}],'n':2}", "n", "one choice");
    refused("{'messages':[{'role':'user','content':'x'}],'logprobs':true}", "logprobs", "logprobs");
    refused("{'messages':[{'role':'user','content':'x'}],'response_format':{'type':'json_object'}}",
            "response_format", "JSON");
    refused("{'messages':[{'role':'user','content':'x'}],'functions':[]}", "functions", "tools");
    refused("{'messages':[{'role':'user','content':'x'}],'modalities':['text','audio']}",
            "modalities", "text only");
    refused("{'messages':[{'role':'system','content':'only a system prompt'}]}", "messages",
            "at least one");
    refused("{'messages':[{'role':'function','name':'f','content':'x'}]}", "messages",
            "'function'");
    refused("{'messages':[{'role':'user','content':'x'},{'role':'assistant','tool_calls':[{'id':"
            "'t','type':'function','function':{'name':'w','arguments':'[1]'}}]}]}",
            "messages", "JSON object");
    refused("{'messages':[{'role':'tool','content':'x'}]}", "messages", "tool_call_id");
    refused("{'messages':[{'role':'user','content':[{'type':'input_audio','input_audio':{}}]}]}",
            "messages", "input_audio");
    refused("{'messages':[{'role':'user','content':[{'type':'image_url','image_url':{'url':"
            "'ftp://x'}}]}]}",
            "messages", "image");
    refused("{'messages':[{'role':'user','content':'x'}],'tools':[{'type':'web_search'}]}", "tools",
            "function tools");
    refused("{'messages':[{'role':'user','content':'x'}],'tools':[{'type':'function','function':"
            "{'name':'w'}}],'tool_choice':{'type':'allowed_tools'}}",
            "tool_choice", "tool_choice");
    refused("{'messages':[{'role':'user','content':'x'}],'stop':[1]}", "stop", "strings");
    refused("{'messages':'x'}", "messages", "array");
}

/* The chat.completion an Anthropic answer (single-quoted) becomes. */
static json_t *answer(const char *msg)
{
    json_t *j = J(msg), *out;
    char *text = json_dumps(j, JSON_COMPACT);
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(anthropic_answer(text, strlen(text), 1700000000, &b), 0);
    out = json_loads(b.data, 0, NULL);
    assert_non_null(out);
    buf_free(&b);
    free(text);
    json_decref(j);
    return out;
}

static void test_answer(void **state)
{
    static const char *stops[][2] = {
        {"end_turn", "stop"},       {"stop_sequence", "stop"},     {"max_tokens", "length"},
        {"tool_use", "tool_calls"}, {"refusal", "content_filter"}, {"pause_turn", "stop"},
    };
    json_t *a;
    struct buf b;

    UNUSED(state);
    a = answer("{'id':'msg_1','type':'message','role':'assistant','model':'claude-x',"
               "'content':[{'type':'thinking','thinking':'hmm','signature':'s'},"
               "{'type':'text','text':'Let me look. '},{'type':'tool_use','id':'toolu_1',"
               "'name':'w','input':{'city':'A'}},{'type':'text','text':'And more.'},"
               "{'type':'tool_use','id':'toolu_2','name':'t','input':{}}],"
               "'stop_reason':'tool_use','stop_sequence':null,"
               "'usage':{'input_tokens':10,'cache_creation_input_tokens':20,"
               "'cache_read_input_tokens':300,'output_tokens':7}}");
    assert_json(a, "{'id':'msg_1','object':'chat.completion','created':1700000000,"
                   "'model':'claude-x','choices':[{'index':0,'message':{'role':'assistant',"
                   "'content':'Let me look. And more.','tool_calls':["
                   "{'id':'toolu_1','type':'function','function':{'name':'w',"
                   "'arguments':'{\\'city\\':\\'A\\'}'}},"
                   "{'id':'toolu_2','type':'function','function':{'name':'t','arguments':'{}'}}]},"
                   "'logprobs':null,'finish_reason':'tool_calls'}],"
                   "'usage':{'prompt_tokens':330,'completion_tokens':7,'total_tokens':337,"
                   "'prompt_tokens_details':{'cached_tokens':300,'cache_write_tokens':20}}}");
    json_decref(a);

    /* Only tools: content null. No usage: none reported. */
    a = answer("{'id':'m','type':'message','content':[{'type':'tool_use','id':'x','name':'w',"
               "'input':{}}],'stop_reason':'tool_use'}");
    assert_true(json_is_null(json_object_get(
        json_object_get(json_array_get(json_object_get(a, "choices"), 0), "message"), "content")));
    assert_null(json_object_get(a, "usage"));
    json_decref(a);

    for (size_t i = 0; i < ARRAY_LEN(stops); i++) {
        char *msg = xasprintf("{'id':'m','content':[],'stop_reason':'%s'}", stops[i][0]);

        a = answer(msg);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(a, "choices"), 0), "finish_reason")),
                            stops[i][1]);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(json_array_get(json_object_get(a, "choices"), 0), "message"),
                "content")),
            "");
        json_decref(a);
        free(msg);
    }

    /* Not an answer: refused, out untouched. */
    buf_init(&b, 1 << 20);
    assert_int_equal(anthropic_answer("[]", 2, 0, &b), -1);
    assert_int_equal(anthropic_answer("{\"id\":\"m\",\"content\":{}}", 24, 0, &b), -1);
    assert_int_equal(anthropic_answer("{\"content\":[]}", 14, 0, &b), -1);
    assert_int_equal(
        anthropic_answer("{\"id\":\"m\",\"content\":[{\"type\":\"tool_use\",\"input\":{}}]}", 53, 0,
                         &b),
        -1);
    assert_int_equal(anthropic_answer("{\"id\":", 6, 0, &b), -1);
    assert_int_equal(b.len, 0);
    /* Over the cap: refused. */
    buf_free(&b);
    buf_init(&b, 16);
    assert_int_equal(anthropic_answer("{\"id\":\"m\",\"content\":[]}", 23, 0, &b), -1);
    buf_free(&b);
}

static void test_error(void **state)
{
    static const char overloaded[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"},"
        "\"request_id\":\"req_1\"}";
    struct buf b;
    json_t *j;

    UNUSED(state);
    buf_init(&b, 1 << 20);
    assert_int_equal(anthropic_error(overloaded, sizeof(overloaded) - 1, &b), 0);
    j = json_loads(b.data, 0, NULL);
    assert_json(j, "{'error':{'message':'Overloaded','type':'overloaded_error','param':null,"
                   "'code':null}}");
    json_decref(j);
    buf_reset(&b);
    assert_int_equal(anthropic_error("{\"error\":{\"message\":\"x\"}}", 25, &b), -1);
    assert_int_equal(anthropic_error("<html>", 6, &b), -1);
    buf_free(&b);
}

/* Collects the payloads a stream translation sends. */
struct sink {
    json_t *chunks; /* parsed, or the string "[DONE]" */
    int stop_after; /* refuse the nth payload (1-based); 0 = never */
};

static int sink_cb(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;
    json_t *j;

    if (s->stop_after && (int)json_array_size(s->chunks) + 1 == s->stop_after)
        return -1;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        j = json_string("[DONE]");
    else
        j = json_loadb(data, len, 0, NULL);
    assert_non_null(j);
    json_array_append_new(s->chunks, j);
    return 0;
}

/* Feed events (single-quoted JSON, one a line) and return what came out;
 * *rc gets the first non-zero result. */
static json_t *run_stream(const char *const *events, size_t n, int *rc)
{
    struct provider_stream *ps = anthropic_stream_new(1700000000);
    struct sink s = {json_array(), 0};

    *rc = 0;
    for (size_t i = 0; i < n && *rc == 0; i++) {
        json_t *ev = J(events[i]);
        char *text = json_dumps(ev, JSON_COMPACT);

        *rc = provider_stream_event(ps, "", text, strlen(text), sink_cb, &s);
        free(text);
        json_decref(ev);
    }
    provider_stream_free(ps);
    return s.chunks;
}

static const json_t *delta_of(const json_t *chunks, size_t i)
{
    return json_object_get(json_array_get(json_object_get(json_array_get(chunks, i), "choices"), 0),
                           "delta");
}

static void test_stream(void **state)
{
    static const char *const events[] = {
        "{'type':'message_start','message':{'id':'msg_s','type':'message','role':'assistant',"
        "'model':'claude-x','content':[],'stop_reason':null,'usage':{'input_tokens':5,"
        "'cache_creation_input_tokens':0,'cache_read_input_tokens':100,'output_tokens':1}}}",
        "{'type':'content_block_start','index':0,'content_block':{'type':'text','text':''}}",
        "{'type': 'ping'}",
        "{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'Hi'}}",
        "{'type':'content_block_stop','index':0}",
        "{'type':'content_block_start','index':1,'content_block':{'type':'tool_use','id':'tu_a',"
        "'name':'w','input':{}}}",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'{\\'city\\':'}}",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':''}}",
        "{'type':'content_block_stop','index':1}",
        "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use','id':'tu_b',"
        "'name':'t','input':{}}}",
        "{'type':'content_block_delta','index':1,'delta':{'type':'input_json_delta',"
        "'partial_json':'\\'A\\'}'}}",
        "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
        "'partial_json':'{}'}}",
        "{'type':'content_block_stop','index':2}",
        "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
        "'usage':{'output_tokens':12}}",
        "{'type':'message_stop'}",
    };
    json_t *c;
    int rc;

    UNUSED(state);
    c = run_stream(events, ARRAY_LEN(events), &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(c), 9);
    /* The first chunk carries the role (Portkey #1399), first. */
    assert_json(delta_of(c, 0), "{'role':'assistant','content':'Hi'}");
    assert_string_equal(json_object_iter_key(json_object_iter((json_t *)delta_of(c, 0))), "role");
    assert_json(json_array_get(c, 0),
                "{'id':'msg_s','object':'chat.completion.chunk','created':1700000000,"
                "'model':'claude-x','choices':[{'index':0,'delta':{'role':'assistant',"
                "'content':'Hi'},'logprobs':null,'finish_reason':null}]}");
    /* Tool indexes count tool blocks, not content blocks (Portkey #1275). */
    assert_json(delta_of(c, 1), "{'tool_calls':[{'index':0,'id':'tu_a','type':'function',"
                                "'function':{'name':'w','arguments':''}}]}");
    assert_json(delta_of(c, 2), "{'tool_calls':[{'index':0,'function':{'arguments':"
                                "'{\\'city\\':'}}]}");
    assert_json(delta_of(c, 3), "{'tool_calls':[{'index':1,'id':'tu_b','type':'function',"
                                "'function':{'name':'t','arguments':''}}]}");
    assert_json(delta_of(c, 4), "{'tool_calls':[{'index':0,'function':{'arguments':'\\'A\\'}'}}]}");
    assert_json(delta_of(c, 5), "{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}");
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(c, 6), "choices"), 0), "finish_reason")),
        "tool_calls");
    /* Usage at the end, the OpenAI way, then [DONE]. */
    assert_json(json_array_get(c, 7),
                "{'id':'msg_s','object':'chat.completion.chunk','created':1700000000,"
                "'model':'claude-x','choices':[],'usage':{'prompt_tokens':105,"
                "'completion_tokens':12,'total_tokens':117,'prompt_tokens_details':"
                "{'cached_tokens':100,'cache_write_tokens':0}}}");
    assert_string_equal(json_string_value(json_array_get(c, 8)), "[DONE]");
    json_decref(c);
}

static void test_stream_edges(void **state)
{
    static const char *const start =
        "{'type':'message_start','message':{'id':'m','model':'x','usage':{'input_tokens':1,"
        "'output_tokens':1}}}";
    static const char *const empty[] = {
        "{'type':'message_start','message':{'id':'m','model':'x','usage':{'input_tokens':3,"
        "'output_tokens':1}}}",
        "{'type':'message_delta','delta':{'stop_reason':'max_tokens'},'usage':{'output_tokens':0,"
        "'input_tokens':4}}",
        "{'type':'message_stop'}",
    };
    const char *err[] = {start, "{'type':'ping'}",
                         "{'type':'error','error':{'type':'overloaded_error','message':'Over'}}"};
    const char *bad_json[] = {start, "{'type':'content_block_delta','index':0,'delta':{'type':"
                                     "'input_json_delta','partial_json':'{'}}"};
    const char *bad_index[] = {start, "{'type':'content_block_start','index':4096,"
                                      "'content_block':{'type':'text','text':''}}"};
    const char *no_type[] = {"{'message':{}}"};
    const char *later[] = {start,
                           "{'type':'content_block_start','index':0,'content_block':"
                           "{'type':'thinking','thinking':''}}",
                           "{'type':'content_block_delta','index':0,'delta':{'type':"
                           "'thinking_delta','thinking':'x'}}",
                           "{'type':'something_new'}"};
    json_t *c;
    int rc;

    UNUSED(state);
    /* Nothing but a stop: one chunk with the role, an empty content and the
     * finish; the input usage of message_delta replaces message_start's. */
    c = run_stream(empty, ARRAY_LEN(empty), &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(c), 3);
    assert_json(json_object_get(json_array_get(json_object_get(json_array_get(c, 0), "choices"), 0),
                                "delta"),
                "{'role':'assistant','content':''}");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(c, 1), "usage"), "prompt_tokens")),
                     4);
    json_decref(c);

    /* An error event before any content: nothing but the error goes out,
     * so the gateway can still retry or fall back. */
    c = run_stream(err, ARRAY_LEN(err), &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(c), 1);
    assert_json(json_array_get(c, 0), "{'error':{'message':'Over','type':'overloaded_error',"
                                      "'param':null,'code':null}}");
    json_decref(c);

    /* Malformed: argument text for a block that is no tool; a block index
     * over the cap; an event without a type; not JSON. */
    c = run_stream(bad_json, ARRAY_LEN(bad_json), &rc);
    assert_int_equal(rc, -1);
    json_decref(c);
    c = run_stream(bad_index, ARRAY_LEN(bad_index), &rc);
    assert_int_equal(rc, -1);
    json_decref(c);
    c = run_stream(no_type, ARRAY_LEN(no_type), &rc);
    assert_int_equal(rc, -1);
    json_decref(c);
    {
        struct provider_stream *ps = anthropic_stream_new(0);
        struct sink s = {json_array(), 0};

        assert_int_equal(provider_stream_event(ps, "", "{not json", 9, sink_cb, &s), -1);
        provider_stream_free(ps);
        json_decref(s.chunks);
    }

    /* Thinking and events added after this was written: nothing out. */
    c = run_stream(later, ARRAY_LEN(later), &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(c), 0);
    json_decref(c);

    /* Deltas read in place keep their escapes, mean what they said, and a
     * key given twice counts the last time, as in a tree. */
    {
        static const char *const raw[] = {
            "{\"type\":\"message_start\",\"message\":{\"id\":\"m\\u0031\",\"model\":\"c\"}}",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
            "\"text\":\"\"}}",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
            "\"text\":\"a\\\"b\\\\\\u00e9\\n\\/\",\"extra\":[1,{}]}}",
            "{\"index\":0,\"delta\":{\"type\":\"x\"},\"type\":\"content_block_delta\",\"delta\":"
            "{\"text\":\"lost\",\"type\":\"text_delta\",\"text\":\"kept\"}}",
            "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
            "\"id\":\"t\",\"name\":\"n\",\"input\":{}}}",
            "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
            "\"partial_json\":\"{\\\"k\\\": \\\"\\u00e9\\\"}\"}}",
            "{\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":\"text_delta\","
            "\"text\":\"late\"}}",
        };
        struct provider_stream *ps = anthropic_stream_new(5);
        struct sink s = {json_array(), 0};

        for (size_t i = 0; i < ARRAY_LEN(raw); i++)
            assert_int_equal(provider_stream_event(ps, "", raw[i], strlen(raw[i]), sink_cb, &s), 0);
        assert_int_equal(json_array_size(s.chunks), 5);
        assert_json(json_array_get(s.chunks, 0),
                    "{'id':'m1','object':'chat.completion.chunk','created':5,'model':'c',"
                    "'choices':[{'index':0,'delta':{'role':'assistant','content':'a\\'b\\\\\u00e9\\n/'},"
                    "'logprobs':null,'finish_reason':null}]}");
        assert_json(delta_of(s.chunks, 1), "{'content':'kept'}");
        assert_json(delta_of(s.chunks, 3),
                    "{'tool_calls':[{'index':0,'function':{'arguments':'{\\'k\\': \\'\u00e9\\'}'}}]}");
        assert_json(delta_of(s.chunks, 4), "{'content':'late'}");
        provider_stream_free(ps);
        json_decref(s.chunks);
    }

    /* The receiver says stop: so does the translation. */
    {
        struct provider_stream *ps = anthropic_stream_new(0);
        struct sink s = {json_array(), 1};
        static const char d[] = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                "\"text_delta\",\"text\":\"x\"}}";

        assert_int_equal(provider_stream_event(ps, "", d, sizeof(d) - 1, sink_cb, &s), -1);
        provider_stream_free(ps);
        json_decref(s.chunks);
    }
}

/* The call that goes out, and the answer read back with its cost. */
static void test_build_and_cost(void **state)
{
    struct provider p = {.name = "a",
                         .type = PROVIDER_ANTHROPIC,
                         .base_url = "http://127.0.0.1:1/v1",
                         .api_key = "sk-ant",
                         .anthropic_version = "2023-06-01",
                         .default_max_tokens = 4096,
                         .timeout_ms = 1000};
    struct model m = {.name = "claude",
                      .provider = &p,
                      .id = "claude-x",
                      .input_per_mtok = 3,
                      .output_per_mtok = 15,
                      .cache_read_per_mtok = 0.3,
                      .cache_write_per_mtok = 3.75,
                      .default_max_tokens = 333};
    json_t *chat = J("{'model':'claude','messages':[{'role':'user','content':'hi'}]}"), *sent;
    struct call_spec spec;
    struct api_error e;
    struct curl_slist *h;
    struct reply r;
    struct buf body;
    int key = 0, version = 0, bearer = 0;
    static const char ans[] =
        "{\"id\":\"m\",\"type\":\"message\",\"model\":\"claude-x\",\"content\":[{\"type\":\"text\","
        "\"text\":\"ok\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":100,"
        "\"cache_creation_input_tokens\":1000,\"cache_read_input_tokens\":10000,"
        "\"output_tokens\":50}}";

    UNUSED(state);
    assert_int_equal(provider_build(&m, EP_CHAT, chat, NULL, 0, 0, NULL, &spec, &e), 0);
    assert_string_equal(spec.url, "http://127.0.0.1:1/v1/messages");
    for (h = spec.headers; h; h = h->next) {
        key |= strcmp(h->data, "x-api-key: sk-ant") == 0;
        version |= strcmp(h->data, "anthropic-version: 2023-06-01") == 0;
        bearer |= strncmp(h->data, "Authorization", 13) == 0;
    }
    assert_true(key && version && !bearer);
    sent = json_loadb(spec.body, spec.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")), 333);
    assert_int_equal(spec.timeout_ms, 1000);
    json_decref(sent);
    curl_slist_free_all(spec.headers);
    free(spec.url);
    free(spec.body);

    /* passthrough_auth: the client's bearer token, bare, in x-api-key. */
    p.passthrough_auth = 1;
    assert_int_equal(provider_build(&m, EP_CHAT, chat, NULL, 0, 1, "Bearer sk-client", &spec, &e),
                     0);
    key = 0;
    for (h = spec.headers; h; h = h->next)
        key |= strcmp(h->data, "x-api-key: sk-client") == 0;
    assert_true(key);
    curl_slist_free_all(spec.headers);
    free(spec.url);
    free(spec.body);

    /* Only chat completions. */
    assert_int_equal(provider_build(&m, EP_EMBEDDINGS, chat, NULL, 0, 0, NULL, &spec, &e), -1);
    assert_int_equal(e.status, 400);
    json_decref(chat);

    /* The answer, normalised in place and read: the cost counts the cached
     * tokens at their own prices, once (LiteLLM #11789, #31069). */
    buf_init(&body, 1 << 20);
    assert_int_equal(buf_append(&body, ans, sizeof(ans) - 1), 0);
    assert_int_equal(provider_answer_normalize(&m, EP_CHAT, &body), 0);
    reply_init(&r);
    assert_int_equal(provider_parse_response(EP_CHAT, body.data, body.len, &r), 0);
    assert_string_equal(r.content.data, "ok");
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.prompt_tokens, 11100);
    assert_int_equal(r.cached_tokens, 10000);
    assert_int_equal(r.cache_write_tokens, 1000);
    assert_int_equal(r.completion_tokens, 50);
    assert_true(fabs(cost_usd_cached(&m, r.prompt_tokens, r.cached_tokens, r.cache_write_tokens,
                                     r.completion_tokens) -
                     (100 * 3 + 10000 * 0.3 + 1000 * 3.75 + 50 * 15) / 1e6) < 1e-15);
    reply_free(&r);

    /* Not an answer: the body stays as it was. */
    buf_reset(&body);
    assert_int_equal(buf_puts(&body, "{\"x\":1}"), 0);
    assert_int_equal(provider_answer_normalize(&m, EP_CHAT, &body), -1);
    assert_string_equal(body.data, "{\"x\":1}");
    /* An OpenAI-compatible model's answer is not touched. */
    p.type = PROVIDER_OPENAI;
    assert_int_equal(provider_answer_normalize(&m, EP_CHAT, &body), 0);
    assert_string_equal(body.data, "{\"x\":1}");
    assert_null(provider_stream_new(&m));
    buf_free(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_basics), cmocka_unit_test(test_request_turns),
        cmocka_unit_test(test_request_tools),  cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_answer),         cmocka_unit_test(test_error),
        cmocka_unit_test(test_stream),         cmocka_unit_test(test_stream_edges),
        cmocka_unit_test(test_build_and_cost),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
