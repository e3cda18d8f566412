/* Unit tests for the Responses API translators (api_responses.c): requests
 * into the chat form, answers and streams back, refusals, and each
 * direction against its inverse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_responses.h"
#include "../../src/caps.h"
#include "dialect_test.h"

/* The chat body for a Responses request written with single quotes. */
static json_t *to_chat(const char *req_text, json_t **echo)
{
    json_t *req = J(req_text), *e = NULL, *chat;
    struct api_error err = {0};

    chat = responses_request_to_chat(req, &e, &err);
    if (chat == NULL) {
        fprintf(stderr, "refused: %s\n", err.message);
        abort();
    }
    json_decref(req);
    if (echo)
        *echo = e;
    else
        json_decref(e);
    return chat;
}

/* The request is refused with a 400 naming param, its message holding needle. */
static void expect_400(const char *req_text, const char *param, const char *needle)
{
    json_t *req = J(req_text), *echo = (json_t *)1;
    struct api_error err = {0};

    assert_null(responses_request_to_chat(req, &echo, &err));
    assert_null(echo);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    if (param)
        assert_string_equal(err.param, param);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    json_decref(req);
}

static void test_request_simple(void **state)
{
    json_t *echo;

    (void)state;
    json_expect(
        to_chat("{'model':'r','input':'Hi','instructions':'Be brief.','max_output_tokens':64,"
                "'temperature':0.5,'top_p':1,'user':'u1','metadata':{'k':'v'},'store':false,"
                "'include':[],'truncation':'auto','stream':true}",
                &echo),
        J("{'model':'r','messages':[{'role':'system','content':'Be brief.'},"
          "{'role':'user','content':'Hi'}],'max_tokens':64,'temperature':0.5,'top_p':1,"
          "'user':'u1','stream':true,'stream_options':{'include_usage':true}}"),
        "simple request");
    /* the answer repeats the settings, with OpenAI's defaults for the rest */
    assert_string_equal(json_string_value(json_object_get(echo, "instructions")), "Be brief.");
    assert_int_equal(json_integer_value(json_object_get(echo, "max_output_tokens")), 64);
    assert_true(json_is_false(json_object_get(echo, "store")));
    json_expect(json_incref(json_object_get(echo, "metadata")), J("{'k':'v'}"), "metadata echoed");
    json_expect(json_incref(json_object_get(echo, "tool_choice")), J("'auto'"),
                "default tool_choice");
    json_decref(echo);
}

static void test_request_items(void **state)
{
    (void)state;
    /* messages by role (developer is system), one text part is its string,
     * other parts map; function calls join the assistant's turn; outputs
     * become tool messages; reasoning is dropped */
    json_expect(
        to_chat("{'model':'r','input':["
                "{'role':'developer','content':'Rules.'},"
                "{'type':'message','role':'user','content':[{'type':'input_text','text':'Look:'},"
                "{'type':'input_image','image_url':'data:image/png;base64,AAA','detail':'low'}]},"
                "{'type':'reasoning','id':'rs_1','summary':[]},"
                "{'type':'message','role':'assistant','id':'msg_1','status':'completed',"
                "'content':[{'type':'output_text','text':'Checking.','annotations':[]}]},"
                "{'type':'function_call','id':'fc_1','call_id':'c1','name':'f','arguments':'{}'},"
                "{'type':'function_call','call_id':'c2','name':'g','arguments':'{\\'a\\':1}'},"
                "{'type':'function_call_output','call_id':'c1','output':'one'},"
                "{'type':'function_call_output','call_id':'c2','output':[{'type':'input_text','"
                "text':'two'}]},"
                "{'type':'function_call_output','call_id':'c2','output':'again'},"
                "{'role':'user','content':[{'type':'input_text','text':'Thanks'}]}],"
                "'tools':[{'type':'function','name':'f','description':'F','parameters':{'type':'"
                "object'},'strict':true},"
                "{'type':'function','name':'g','parameters':null}],"
                "'tool_choice':{'type':'function','name':'g'},'parallel_tool_calls':false,"
                "'text':{'format':{'type':'json_schema','name':'s','schema':{'type':'object'},'"
                "strict':true}},"
                "'reasoning':{'effort':'low'}}",
                NULL),
        J("{'model':'r','messages':["
          "{'role':'system','content':'Rules.'},"
          "{'role':'user','content':[{'type':'text','text':'Look:'},"
          "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA','detail':'low'}}]},"
          "{'role':'assistant','content':'Checking.','tool_calls':["
          "{'id':'c1','type':'function','function':{'name':'f','arguments':'{}'}},"
          "{'id':'c2','type':'function','function':{'name':'g','arguments':'{\\'a\\':1}'}}]},"
          "{'role':'tool','tool_call_id':'c1','content':'one'},"
          "{'role':'tool','tool_call_id':'c2','content':'two'},"
          "{'role':'user','content':'Thanks'}],"
          "'tools':[{'type':'function','function':{'name':'f','description':'F','parameters':{'"
          "type':'object'},'strict':true}},"
          "{'type':'function','function':{'name':'g'}}],"
          "'tool_choice':{'type':'function','function':{'name':'g'}},'parallel_tool_calls':false,"
          "'response_format':{'type':'json_schema','json_schema':{'name':'s','schema':{'type':'"
          "object'},'strict':true}},"
          "'reasoning_effort':'low'}"),
        "items");
    /* a function call with no text before it is an assistant message of its own */
    json_expect(to_chat("{'model':'r','input':[{'role':'user','content':'q'},"
                        "{'type':'function_call','call_id':'c1','name':'f','arguments':''}],"
                        "'text':{'format':{'type':'json_object'}},'parallel_tool_calls':true,'tool_"
                        "choice':'auto'}",
                        NULL),
                J("{'model':'r','messages':[{'role':'user','content':'q'},"
                  "{'role':'assistant','content':null,'tool_calls':[{'id':'c1','type':'function',"
                  "'function':{'name':'f','arguments':''}}]}],"
                  "'response_format':{'type':'json_object'}}"),
                "tool_choice and parallel_tool_calls go when there are no tools");
}

static void test_request_refused(void **state)
{
    (void)state;
    expect_400("[]", NULL, "JSON object");
    expect_400("{'input':'x'}", "model", "model");
    expect_400("{'model':'r'}", "input", "Missing required parameter: 'input'");
    expect_400("{'model':'r','input':[]}", "input", "at least one");
    expect_400("{'model':'r','input':'x','store':true}", "store", "store: true is not supported");
    expect_400("{'model':'r','input':'x','store':'yes'}", "store", "boolean");
    expect_400("{'model':'r','input':'x','previous_response_id':'resp_1'}", "previous_response_id",
               "stateless");
    expect_400("{'model':'r','input':'x','conversation':{'id':'c'}}", "conversation", "stateless");
    expect_400("{'model':'r','input':'x','background':true}", "background", "keeps no responses");
    expect_400("{'model':'r','input':'x','tools':[{'type':'file_search'}]}", "tools",
               "only function tools");
    expect_400("{'model':'r','input':'x','tools':[{'type':'function'}]}", "tools", "'name'");
    expect_400("{'model':'r','input':'x','tool_choice':{'type':'web_search_preview'}}",
               "tool_choice", "tool_choice");
    expect_400("{'model':'r','input':'x','text':{'format':{'type':'json_schema'}}}", "text.format",
               "'schema'");
    expect_400("{'model':'r','input':'x','max_output_tokens':0}", "max_output_tokens",
               "at least 1");
    expect_400("{'model':'r','input':'x','temperature':'hot'}", "temperature", "a number");
    expect_400("{'model':'r','input':[{'type':'item_reference','id':'msg_1'}]}", "input",
               "item_reference");
    expect_400("{'model':'r','input':[{'type':'web_search_call','id':'ws'}]}", "input",
               "'web_search_call' are not supported");
    expect_400(
        "{'model':'r','input':[{'type':'function_call_output','call_id':'c9','output':'x'}]}",
        "input", "no function_call with call_id 'c9'");
    expect_400(
        "{'model':'r','input':[{'type':'function_call','call_id':'c','name':'f','arguments':'{}'},"
        "{'type':'function_call','call_id':'c','name':'f','arguments':'{}'}]}",
        "input", "used twice");
    expect_400("{'model':'r','input':[{'role':'robot','content':'x'}]}", "input", "invalid role");
    expect_400("{'model':'r','input':[{'role':'system','content':[{'type':'input_image','image_url'"
               ":'u'}]}]}",
               "input", "may not be in a system message");
    expect_400(
        "{'model':'r','input':[{'role':'user','content':[{'type':'input_image','file_id':'f'}]}]}",
        "input", "file_id is not supported");
    expect_400("{'model':'r','input':[{'role':'user','content':7}]}", "input",
               "string or an array");
}

static void test_answer(void **state)
{
    json_t *chat, *echo = J("{'instructions':null,'metadata':{'k':'v'}}"), *r;

    (void)state;
    chat = J("{'id':'chatcmpl-1','object':'chat.completion','created':1700000000,'model':'gpt-x',"
             "'choices':[{'index':0,'message':{'role':'assistant','content':'Hello',"
             "'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f','arguments':'{}"
             "'}}]},"
             "'finish_reason':'tool_calls'}],"
             "'usage':{'prompt_tokens':100,'completion_tokens':7,'total_tokens':107,"
             "'prompt_tokens_details':{'cached_tokens':60},'completion_tokens_details':{'reasoning_"
             "tokens':2}}}");
    r = responses_answer_from_chat(chat, echo, "resp_abc");
    json_expect(
        r,
        J("{'id':'resp_abc','object':'response','created_at':1700000000,'status':'completed',"
          "'background':false,'error':null,'incomplete_details':null,'instructions':null,"
          "'metadata':{'k':'v'},'model':'gpt-x','output':["
          "{'id':'msg_abc_0','type':'message','status':'completed','role':'assistant',"
          "'content':[{'type':'output_text','annotations':[],'logprobs':[],'text':'Hello'}]},"
          "{'id':'fc_abc_1','type':'function_call','status':'completed','call_id':'call_1',"
          "'name':'f','arguments':'{}'}],"
          /* cached tokens are kept, inside input_tokens as OpenAI counts them */
          "'usage':{'input_tokens':100,'input_tokens_details':{'cached_tokens':60},"
          "'output_tokens':7,'output_tokens_details':{'reasoning_tokens':2},'total_tokens':107}}"),
        "answer");
    json_decref(chat);

    /* cut off by max_tokens: incomplete; tool calls alone: no message item */
    chat = J("{'model':'m','created':1,'choices':[{'index':0,'message':{'role':'assistant','"
             "content':'Hel'},"
             "'finish_reason':'length'}]}");
    r = responses_answer_from_chat(chat, NULL, "resp_x");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "incomplete");
    json_expect(json_incref(json_object_get(r, "incomplete_details")),
                J("{'reason':'max_output_tokens'}"), "incomplete_details");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "output"), 0), "status")),
                        "incomplete");
    assert_true(json_is_null(json_object_get(r, "usage")));
    json_decref(r);
    json_decref(chat);
    chat = J("{'model':'m','choices':[{'index':0,'message':{'role':'assistant','content':null,"
             "'refusal':'No.'},'finish_reason':'stop'}]}");
    r = responses_answer_from_chat(chat, NULL, "resp_x");
    json_expect(
        json_incref(json_object_get(json_array_get(json_object_get(r, "output"), 0), "content")),
        J("[{'type':'refusal','refusal':'No.'}]"), "a refusal");
    json_decref(r);
    json_decref(chat);
    chat = J("[1]");
    assert_null(responses_answer_from_chat(chat, NULL, "resp_x"));
    json_decref(chat);
    json_decref(echo);
}

/* Feed chunks (a JSON array of chat chunks) and then the end; return the events. */
static json_t *stream_of(const char *chunks_text, int fail)
{
    struct responses_stream *s = responses_stream_new(NULL, "resp_s");
    json_t *chunks = J(chunks_text), *c, *events;
    struct buf out;
    size_t i;

    buf_init(&out, 1 << 20);
    json_array_foreach (chunks, i, c)
        assert_int_equal(responses_stream_chunk(s, c, &out), 0);
    if (fail) {
        struct api_error e;

        api_error_set(&e, 502, "api_error", "upstream_error", NULL, "%s", "it broke");
        assert_int_equal(responses_stream_fail(s, &e, &out), 0);
    } else {
        assert_int_equal(responses_stream_done(s, &out), 0);
        assert_int_equal(responses_stream_done(s, &out), 0); /* idempotent */
    }
    events = sse_events(out.data, out.len);
    buf_free(&out);
    responses_stream_free(s);
    json_decref(chunks);
    return events;
}

static void test_stream_text(void **state)
{
    json_t *ev = stream_of(TEXT_CHUNKS("9", "4"), 0);
    char *types = event_types(ev);
    json_t *done, *e;
    size_t i;

    (void)state;
    assert_string_equal(types, "response.created response.in_progress response.output_item.added "
                               "response.content_part.added response.output_text.delta "
                               "response.output_text.delta response.output_text.done "
                               "response.content_part.done response.output_item.done "
                               "response.completed");
    free(types);
    json_array_foreach (ev, i, e) {
        /* event: names the type; sequence numbers count from 0 */
        assert_string_equal(json_string_value(json_object_get(e, "event")),
                            json_string_value(json_object_get(json_object_get(e, "data"), "type")));
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(e, "data"), "sequence_number")), i);
    }
    done = json_object_get(json_array_get(ev, 6), "data");
    assert_string_equal(json_string_value(json_object_get(done, "text")), "Hello");
    done = json_object_get(json_object_get(json_array_get(ev, 9), "data"), "response");
    assert_string_equal(json_string_value(json_object_get(done, "model")), "gpt-x");
    assert_int_equal(json_integer_value(json_object_get(done, "created_at")), 5);
    /* the cached tokens survive the stream (LiteLLM #31069) */
    json_expect(json_incref(json_object_get(done, "usage")),
                J("{'input_tokens':9,'input_tokens_details':{'cached_tokens':4},'output_tokens':2,"
                  "'output_tokens_details':{'reasoning_tokens':0},'total_tokens':11}"),
                "usage in response.completed");
    json_decref(ev);

    /* cut off: response.incomplete */
    ev = stream_of(
        "[" CHUNK(
            "{'content':'Hel'}") ",{'choices':[{'index':0,'delta':{},'finish_reason':'length'}]}]",
        0);
    types = event_types(ev);
    assert_non_null(strstr(types, "response.incomplete"));
    free(types);
    json_decref(ev);
    /* nothing at all is still one empty message */
    ev = stream_of("[" CHUNK("{'role':'assistant','content':''}") "]", 0);
    done = json_object_get(json_object_get(json_array_get(ev, json_array_size(ev) - 1), "data"),
                           "response");
    json_expect(
        json_incref(json_object_get(json_array_get(json_object_get(done, "output"), 0), "content")),
        J("[{'type':'output_text','annotations':[],'logprobs':[],'text':''}]"), "empty answer");
    json_decref(ev);
}

static void test_stream_tools(void **state)
{
    /* two calls whose arguments arrive interleaved: each goes to its own
     * item (Portkey #1275) */
    json_t *ev = stream_of(TOOL_CHUNKS, 0);
    json_t *last = json_object_get(
        json_object_get(json_array_get(ev, json_array_size(ev) - 1), "data"), "response");
    char *types = event_types(ev);

    (void)state;
    assert_string_equal(
        types, "response.created response.in_progress response.output_item.added "
               "response.content_part.added response.output_text.delta "
               /* the message closes when the first call starts */
               "response.output_text.done response.content_part.done response.output_item.done "
               "response.output_item.added response.output_item.added "
               "response.function_call_arguments.delta response.function_call_arguments.delta "
               "response.function_call_arguments.delta "
               "response.function_call_arguments.done response.output_item.done "
               "response.function_call_arguments.done response.output_item.done "
               "response.completed");
    free(types);
    json_expect(
        json_incref(json_object_get(last, "output")),
        J("[{'id':'msg_s_0','type':'message','status':'completed','role':'assistant',"
          "'content':[{'type':'output_text','annotations':[],'logprobs':[],'text':'Let me see.'}]},"
          "{'id':'fc_s_1','type':'function_call','status':'completed','call_id':'call_a','name':'f'"
          ",'arguments':'{\\'x\\':1}'},"
          "{'id':'fc_s_2','type':'function_call','status':'completed','call_id':'call_b','name':'g'"
          ",'arguments':'{\\'y\\':2}'}]"),
        "interleaved tool calls");
    json_decref(ev);
}

static void test_stream_fail(void **state)
{
    json_t *ev = stream_of("[" CHUNK("{'content':'Hal'}") "]", 1);
    char *types = event_types(ev);
    json_t *failed;

    (void)state;
    assert_string_equal(types, "response.created response.in_progress response.output_item.added "
                               "response.content_part.added response.output_text.delta error "
                               "response.failed");
    free(types);
    json_expect(json_incref(json_object_get(json_array_get(ev, 5), "data")),
                J("{'type':'error','code':'upstream_error','message':'it "
                  "broke','param':null,'sequence_number':5}"),
                "the error event");
    failed = json_object_get(json_object_get(json_array_get(ev, 6), "data"), "response");
    assert_string_equal(json_string_value(json_object_get(failed, "status")), "failed");
    json_expect(json_incref(json_object_get(failed, "error")),
                J("{'code':'server_error','message':'it broke'}"), "response.error");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(failed, "output"), 0), "status")),
                        "incomplete");
    json_decref(ev);
}

/* A request there and back through the inverse means the same. */
static void roundtrip_request(const char *req_text)
{
    json_t *chat = to_chat(req_text, NULL), *back = responses_request_from_chat(chat), *echo = NULL;
    struct api_error err = {0};
    json_t *again = responses_request_to_chat(back, &echo, &err);

    assert_non_null(again);
    json_expect(again, json_incref(chat), "request round trip");
    json_decref(echo);
    json_decref(back);
    json_decref(chat);
}

static void test_roundtrip(void **state)
{
    const char *answers[] = {
        "{'id':'c','created':3,'model':'m','choices':[{'index':0,'message':{'role':'assistant','"
        "content':'Hi'},"
        "'finish_reason':'stop'}],'usage':{'prompt_tokens':3,'completion_tokens':1,'total_tokens':"
        "4}}",
        "{'id':'c','created':3,'model':'m','choices':[{'index':0,'message':{'role':'assistant','"
        "content':'',"
        "'tool_calls':[{'id':'k','type':'function','function':{'name':'f','arguments':'{}'}}]},"
        "'finish_reason':'tool_calls'}]}",
        "{'id':'c','created':3,'model':'m','choices':[{'index':0,'message':{'role':'assistant','"
        "content':null},"
        "'finish_reason':'length'}]}",
    };

    (void)state;
    roundtrip_request(
        "{'model':'r','input':'Hi','instructions':'Sys','max_output_tokens':9,'stream':true}");
    roundtrip_request(
        "{'model':'r','input':[{'role':'user','content':[{'type':'input_text','text':'a'},"
        "{'type':'input_image','image_url':'http://x/y.png'},"
        "{'type':'input_file','file_data':'data:application/pdf;base64,AA','filename':'f.pdf'}]},"
        "{'role':'assistant','content':'b'},"
        "{'type':'function_call','call_id':'c1','name':'f','arguments':'{}'},"
        "{'type':'function_call_output','call_id':'c1','output':'r'}],"
        "'tools':[{'type':'function','name':'f','parameters':{}}],'tool_choice':'required',"
        "'text':{'format':{'type':'json_schema','name':'n','schema':{}}},'user':'u',"
        "'reasoning':{'effort':'high'},'temperature':0.2,'parallel_tool_calls':false}");
    for (size_t i = 0; i < ARRAY_LEN(answers); i++) {
        json_t *a = J(answers[i]), *o = responses_answer_from_chat(a, NULL, "resp_r");
        json_t *back = responses_answer_to_chat(o);

        json_expect(responses_answer_from_chat(back, NULL, "resp_r"), o, "answer round trip");
        json_decref(back);
        json_decref(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_simple),  cmocka_unit_test(test_request_items),
        cmocka_unit_test(test_request_refused), cmocka_unit_test(test_answer),
        cmocka_unit_test(test_stream_text),     cmocka_unit_test(test_stream_tools),
        cmocka_unit_test(test_stream_fail),     cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
