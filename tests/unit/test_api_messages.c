/* Unit tests for the Messages API translators (api_messages.c): requests
 * into the chat form, answers and streams back, the peers' known failures,
 * and each direction against its inverse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_messages.h"
#include "dialect_test.h"

static json_t *to_chat(const char *req_text, int count_only)
{
    json_t *req = J(req_text), *chat;
    struct api_error err = {0};

    chat = messages_request_to_chat(req, count_only, &err);
    if (chat == NULL) {
        fprintf(stderr, "refused: %s\n", err.message);
        abort();
    }
    json_decref(req);
    return chat;
}

static void expect_400(const char *req_text, const char *param, const char *needle)
{
    json_t *req = J(req_text);
    struct api_error err = {0};

    assert_null(messages_request_to_chat(req, 0, &err));
    assert_int_equal(err.status, 400);
    if (param)
        assert_string_equal(err.param, param);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    json_decref(req);
}

static void test_request(void **state)
{
    (void)state;
    json_expect(
        to_chat(
            "{'model':'r','max_tokens':100,'system':'Be brief.',"
            "'messages':[{'role':'user','content':'Hi'}],'temperature':0.3,'top_p':0.9,'top_k':5,"
            "'stop_sequences':['END'],'metadata':{'user_id':'u-1'},'stream':true,"
            "'thinking':{'type':'enabled','budget_tokens':1024}}",
            0),
        J("{'model':'r','messages':[{'role':'system','content':'Be brief.'},"
          "{'role':'user','content':'Hi'}],'max_tokens':100,'temperature':0.3,'top_p':0.9,"
          "'stop':['END'],'user':'u-1','stream':true,'stream_options':{'include_usage':true}}"),
        "simple request (top_k and thinking dropped)");
    /* blocks: system blocks, images, a tool round trip, thinking dropped */
    json_expect(
        to_chat(
            "{'model':'r','max_tokens':10,"
            "'system':[{'type':'text','text':'A','cache_control':{'type':'ephemeral'}},{'type':'"
            "text','text':'B'}],"
            "'messages':[{'role':'user','content':[{'type':'text','text':'Look'},"
            "{'type':'image','source':{'type':'base64','media_type':'image/png','data':'AAA'}}]},"
            "{'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature':'s'},"
            "{'type':'text','text':'Checking.'},"
            "{'type':'tool_use','id':'tu_1','name':'f','input':{'q':1}},"
            "{'type':'tool_use','id':'tu_2','name':'g','input':{}}]},"
            "{'role':'user','content':[{'type':'tool_result','tool_use_id':'tu_1','content':'one'},"
            "{'type':'tool_result','tool_use_id':'tu_2','is_error':true,'content':[{'type':'text','"
            "text':'two'},"
            "{'type':'image','source':{'type':'url','url':'http://x/i.png'}}]},"
            "{'type':'text','text':'And?'}]}],"
            "'tools':[{'name':'f','description':'F','input_schema':{'type':'object'},'cache_"
            "control':{'type':'ephemeral'}},"
            "{'type':'custom','name':'g','input_schema':{'type':'object'}}],"
            "'tool_choice':{'type':'any','disable_parallel_tool_use':true}}",
            0),
        J("{'model':'r','max_tokens':10,'messages':["
          "{'role':'system','content':[{'type':'text','text':'A'},{'type':'text','text':'B'}]},"
          "{'role':'user','content':[{'type':'text','text':'Look'},"
          "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA'}}]},"
          "{'role':'assistant','content':'Checking.','tool_calls':["
          "{'id':'tu_1','type':'function','function':{'name':'f','arguments':'{\\'q\\':1}'}},"
          "{'id':'tu_2','type':'function','function':{'name':'g','arguments':'{}'}}]},"
          "{'role':'tool','tool_call_id':'tu_1','content':'one'},"
          "{'role':'tool','tool_call_id':'tu_2','content':'two'},"
          /* a tool result's image goes to the user turn after the tool messages */
          "{'role':'user','content':[{'type':'image_url','image_url':{'url':'http://x/i.png'}},"
          "{'type':'text','text':'And?'}]}],"
          "'tools':[{'type':'function','function':{'name':'f','description':'F','parameters':{'"
          "type':'object'}}},"
          "{'type':'function','function':{'name':'g','parameters':{'type':'object'}}}],"
          "'tool_choice':'required','parallel_tool_calls':false}"),
        "blocks");
    /* count_tokens: no max_tokens, never a stream */
    json_expect(
        to_chat("{'model':'r','messages':[{'role':'user','content':'Hi'}],'stream':true}", 1),
        J("{'model':'r','messages':[{'role':'user','content':'Hi'}]}"), "count_tokens");
    /* tool_choice: auto, none, a named tool */
    json_expect(
        to_chat(
            "{'model':'r','max_tokens':1,'messages':[{'role':'user','content':'x'}],"
            "'tools':[{'name':'f','input_schema':{}}],'tool_choice':{'type':'tool','name':'f'}}",
            0),
        J("{'model':'r','max_tokens':1,'messages':[{'role':'user','content':'x'}],"
          "'tools':[{'type':'function','function':{'name':'f','parameters':{}}}],"
          "'tool_choice':{'type':'function','function':{'name':'f'}}}"),
        "named tool");
}

static void test_duplicate_tool_result(void **state)
{
    /* One call, two results: the chat form gets one tool message
     * (LiteLLM #16711); an assistant turn of thinking only is no message. */
    json_t *chat = to_chat(
        "{'model':'r','max_tokens':5,'messages':[{'role':'user','content':'q'},"
        "{'role':'assistant','content':[{'type':'tool_use','id':'t','name':'f','input':{}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':'a'},"
        "{'type':'tool_result','tool_use_id':'t','content':'a'}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'t','content':'b'},"
        "{'type':'text','text':'go on'}]},"
        "{'role':'assistant','content':[{'type':'redacted_thinking','data':'x'}]}]}",
        0);

    (void)state;
    json_expect(json_incref(json_object_get(chat, "messages")),
                J("[{'role':'user','content':'q'},"
                  "{'role':'assistant','content':null,'tool_calls':[{'id':'t','type':'function',"
                  "'function':{'name':'f','arguments':'{}'}}]},"
                  "{'role':'tool','tool_call_id':'t','content':'a'},"
                  "{'role':'user','content':'go on'}]"),
                "one result per call");
    json_decref(chat);
}

static void test_request_refused(void **state)
{
    (void)state;
    expect_400("{'model':'r','messages':[{'role':'user','content':'x'}]}", "max_tokens",
               "max_tokens: Field required");
    expect_400("{'model':'r','max_tokens':0,'messages':[{'role':'user','content':'x'}]}",
               "max_tokens", "at least 1");
    expect_400("{'max_tokens':5,'messages':[{'role':'user','content':'x'}]}", "model", "model");
    expect_400("{'model':'r','max_tokens':5}", "messages", "messages: Field required");
    expect_400("{'model':'r','max_tokens':5,'messages':[]}", "messages", "at least one");
    /* a system prompt and turns that say nothing: no conversation */
    expect_400("{'model':'r','max_tokens':5,'system':'S','messages':[{'role':'assistant',"
               "'content':[{'type':'thinking','thinking':'t','signature':'s'}]}]}",
               "messages", "no message holds anything");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'system','content':'x'}]}",
               "messages", "'role'");
    expect_400(
        "{'model':'r','max_tokens':5,'messages':[{'role':'user','content':[{'type':'document',"
        "'source':{'type':'base64','media_type':'application/pdf','data':'A'}}]}]}",
        "messages", "'document' are not supported");
    expect_400(
        "{'model':'r','max_tokens':5,'messages':[{'role':'user','content':[{'type':'tool_result',"
        "'tool_use_id':'nope','content':'x'}]}]}",
        "messages", "no earlier tool_use");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'assistant','content':["
               "{'type':'tool_use','id':'t','name':'f','input':{}},"
               "{'type':'tool_use','id':'t','name':'f','input':{}}]}]}",
               "messages", "unique");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
               "'tools':[{'type':'web_search_20250305','name':'web_search'}]}",
               "tools", "server tools");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
               "'tools':[{'name':'f'}]}",
               "tools", "input_schema");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
               "'tools':[{'name':'f','input_schema':{}}],'tool_choice':{'type':'sometimes'}}",
               "tool_choice", "tool_choice");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
               "'stop_sequences':[1]}",
               "stop_sequences", "array of strings");
    expect_400("{'model':'r','max_tokens':5,'messages':[{'role':'user','content':[{'type':'image',"
               "'source':{'type':'file','file_id':'f'}}]}]}",
               "messages", "file sources");
    expect_400("{'model':'r','max_tokens':5,'system':7,'messages':[{'role':'user','content':'x'}]}",
               "system", "system");
}

static void test_answer(void **state)
{
    json_t *chat, *m;
    const char *finish[][2] = {{"stop", "end_turn"},
                               {"length", "max_tokens"},
                               {"tool_calls", "tool_use"},
                               {"content_filter", "refusal"}};

    (void)state;
    chat = J("{'model':'gpt-x','choices':[{'index':0,'message':{'role':'assistant','content':'Hi',"
             "'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f','arguments':'{"
             "\\'a\\':[1,2]}'}},"
             "{'id':'call_2','type':'function','function':{'name':'g','arguments':''}},"
             "{'id':'call_3','type':'function','function':{'name':'h','arguments':'not json'}}]},"
             "'finish_reason':'tool_calls'}],"
             "'usage':{'prompt_tokens':100,'completion_tokens':7,'prompt_tokens_details':{'cached_"
             "tokens':60}}}");
    m = messages_answer_from_chat(chat, "msg_1");
    json_expect(m,
                J("{'id':'msg_1','type':'message','role':'assistant','model':'gpt-x',"
                  "'content':[{'type':'text','text':'Hi'},"
                  "{'type':'tool_use','id':'call_1','name':'f','input':{'a':[1,2]}},"
                  "{'type':'tool_use','id':'call_2','name':'g','input':{}},"
                  "{'type':'tool_use','id':'call_3','name':'h','input':'not json'}],"
                  "'stop_reason':'tool_use','stop_sequence':null,"
                  /* Anthropic's input leaves out the cached tokens, which it
                   * counts apart: not billed twice (LiteLLM #11789) */
                  "'usage':{'input_tokens':40,'cache_creation_input_tokens':0,"
                  "'cache_read_input_tokens':60,'output_tokens':7}}"),
                "answer");
    json_decref(chat);
    /* an Anthropic-type provider's cache writes, reported apart as well */
    chat = J("{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':'x'},"
             "'finish_reason':'stop'}],'usage':{'prompt_tokens':100,'completion_tokens':1,"
             "'prompt_tokens_details':{'cached_tokens':60,'cache_write_tokens':30}}}");
    m = messages_answer_from_chat(chat, "msg_1");
    json_expect(
        json_incref(json_object_get(m, "usage")),
        J("{'input_tokens':10,'cache_creation_input_tokens':30,'cache_read_input_tokens':60,"
          "'output_tokens':1}"),
        "cache writes");
    json_decref(m);
    json_decref(chat);
    for (size_t i = 0; i < ARRAY_LEN(finish); i++) {
        char text[256];

        snprintf(text, sizeof(text),
                 "{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':''},"
                 "'finish_reason':'%s'}]}",
                 finish[i][0]);
        chat = J(text);
        m = messages_answer_from_chat(chat, "msg_2");
        assert_string_equal(json_string_value(json_object_get(m, "stop_reason")), finish[i][1]);
        assert_int_equal(json_array_size(json_object_get(m, "content")), 0);
        json_decref(m);
        json_decref(chat);
    }
}

static json_t *stream_of(const char *chunks_text, long est)
{
    struct messages_stream *s = messages_stream_new("msg_s", est);
    json_t *chunks = J(chunks_text), *c, *events;
    struct buf out;
    size_t i;

    buf_init(&out, 1 << 20);
    json_array_foreach (chunks, i, c)
        assert_int_equal(messages_stream_chunk(s, c, &out), 0);
    assert_int_equal(messages_stream_done(s, &out), 0);
    assert_int_equal(messages_stream_done(s, &out), 0);
    events = sse_events(out.data, out.len);
    buf_free(&out);
    messages_stream_free(s);
    json_decref(chunks);
    return events;
}

static void test_stream_text(void **state)
{
    json_t *ev = stream_of(TEXT_CHUNKS("90", "80"), 12);
    char *types = event_types(ev);

    (void)state;
    assert_string_equal(types, "message_start content_block_start ping content_block_delta "
                               "content_block_delta content_block_stop message_delta message_stop");
    free(types);
    /* message_start: the estimate, never 0/0 (LiteLLM #24176) */
    json_expect(
        json_incref(json_object_get(json_array_get(ev, 0), "data")),
        J("{'type':'message_start','message':{'id':'msg_s','type':'message','role':'assistant',"
          "'model':'gpt-x','content':[],'stop_reason':null,'stop_sequence':null,"
          "'usage':{'input_tokens':12,'cache_creation_input_tokens':0,'cache_read_input_tokens':0,"
          "'output_tokens':1}}}"),
        "message_start");
    json_expect(
        json_incref(json_object_get(json_array_get(ev, 3), "data")),
        J("{'type':'content_block_delta','index':0,'delta':{'type':'text_delta','text':'Hel'}}"),
        "text_delta");
    /* message_delta: the real usage, the cached tokens kept (LiteLLM #31069) */
    json_expect(
        json_incref(json_object_get(json_array_get(ev, 6), "data")),
        J("{'type':'message_delta','delta':{'stop_reason':'end_turn','stop_sequence':null},"
          "'usage':{'input_tokens':10,'cache_creation_input_tokens':0,'cache_read_input_tokens':80,"
          "'output_tokens':2}}"),
        "message_delta");
    json_decref(ev);

    /* an estimate of 0 is never sent */
    ev = stream_of("[" CHUNK("{'content':'x'}") "]", 0);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(
                json_object_get(json_object_get(json_array_get(ev, 0), "data"), "message"),
                "usage"),
            "input_tokens")),
        1);
    /* no usage from the upstream: the estimates, not zeros */
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(json_array_get(ev, json_array_size(ev) - 2), "data"),
                            "usage"),
            "output_tokens")),
        1);
    json_decref(ev);
}

static void test_stream_tools(void **state)
{
    /* text, then two tool calls whose arguments interleave: every block
     * is started and stopped, and each delta names its call's block
     * (Portkey #1275) */
    json_t *ev = stream_of(TOOL_CHUNKS, 5);
    char *types = event_types(ev);
    json_t *e, *d;
    size_t i;
    struct buf json[2];

    (void)state;
    buf_init(&json[0], 64);
    buf_init(&json[1], 64);
    assert_string_equal(types, "message_start content_block_start ping content_block_delta "
                               "content_block_stop content_block_start content_block_stop "
                               "content_block_start content_block_delta content_block_delta "
                               "content_block_delta content_block_stop message_delta message_stop");
    free(types);
    json_expect(json_incref(json_object_get(json_array_get(ev, 5), "data")),
                J("{'type':'content_block_start','index':1,'content_block':{'type':'tool_use',"
                  "'id':'call_a','name':'f','input':{}}}"),
                "tool block start");
    json_array_foreach (ev, i, e) {
        d = json_object_get(json_object_get(e, "data"), "delta");
        if (json_is_string(json_object_get(d, "partial_json"))) {
            json_int_t b = json_integer_value(json_object_get(json_object_get(e, "data"), "index"));

            assert_true(b == 1 || b == 2);
            assert_int_equal(
                buf_puts(&json[b - 1], json_string_value(json_object_get(d, "partial_json"))), 0);
        }
    }
    assert_string_equal(json[0].data, "{\"x\":1}");
    assert_string_equal(json[1].data, "{\"y\":2}");
    buf_free(&json[0]);
    buf_free(&json[1]);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_array_get(ev, 12), "data"), "delta"),
            "stop_reason")),
        "tool_use");
    json_decref(ev);
}

static void roundtrip_request(const char *req_text)
{
    json_t *chat = to_chat(req_text, 0), *back = messages_request_from_chat(chat);
    struct api_error err = {0};
    json_t *again = messages_request_to_chat(back, 0, &err);

    if (again == NULL)
        fail_msg("the inverse was refused: %s", err.message);
    json_expect(again, json_incref(chat), "request round trip");
    json_decref(back);
    json_decref(chat);
}

static void test_roundtrip(void **state)
{
    const char *answers[] = {
        "{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':'Hi'},"
        "'finish_reason':'stop'}],'usage':{'prompt_tokens':30,'completion_tokens':1,"
        "'prompt_tokens_details':{'cached_tokens':20,'cache_write_tokens':6}}}",
        "{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':null,"
        "'tool_calls':[{'id':'k','type':'function','function':{'name':'f','arguments':'{\\'a\\':1."
        "5}'}}]},"
        "'finish_reason':'tool_calls'}]}",
        "{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':'x'},"
        "'finish_reason':'length'}]}",
    };

    (void)state;
    roundtrip_request(
        "{'model':'r','max_tokens':9,'system':'S','messages':[{'role':'user','content':'Hi'}],"
        "'stream':true,'temperature':1,'stop_sequences':['a','b'],'metadata':{'user_id':'u'}}");
    roundtrip_request(
        "{'model':'r','max_tokens':9,'system':[{'type':'text','text':'A'},{'type':'text','text':'B'"
        "}],"
        "'messages':[{'role':'user','content':[{'type':'text','text':'a'},"
        "{'type':'image','source':{'type':'base64','media_type':'image/jpeg','data':'/9j'}}]},"
        "{'role':'assistant','content':[{'type':'text','text':'b'},"
        "{'type':'tool_use','id':'t1','name':'f','input':{'k':[true,null]}}]},"
        "{'role':'user','content':[{'type':'tool_result','tool_use_id':'t1','content':'r'},"
        "{'type':'text','text':'c'}]},{'role':'user','content':'d'}],"
        "'tools':[{'name':'f','description':'F','input_schema':{'type':'object'}}],"
        "'tool_choice':{'type':'auto','disable_parallel_tool_use':true}}");
    for (size_t i = 0; i < ARRAY_LEN(answers); i++) {
        json_t *a = J(answers[i]), *m = messages_answer_from_chat(a, "msg_r");
        json_t *back = messages_answer_to_chat(m);

        json_expect(messages_answer_from_chat(back, "msg_r"), m, "answer round trip");
        json_decref(back);
        json_decref(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),         cmocka_unit_test(test_duplicate_tool_result),
        cmocka_unit_test(test_request_refused), cmocka_unit_test(test_answer),
        cmocka_unit_test(test_stream_text),     cmocka_unit_test(test_stream_tools),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
