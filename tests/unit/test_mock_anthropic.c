/* Unit tests for sluice-mock's Anthropic mode (src/mock/mock_anthropic.c):
 * the request checks Anthropic makes, the Message it answers and its event
 * stream. The mock's sources are included whole (they are not in the
 * library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../common/unit.h"

#include "../../src/api_common.h"
#include "../../src/mock/mock_anthropic.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_replay.c"

static const struct mock_gen_opts OPTS = {.model = "claude-x", .seq = 7};

/* The request is refused with a 400 whose message has `words`. */
static void refused(const char *req, const char *words)
{
    json_t *r = test_json_q(req);
    struct mock_answer a;
    struct mock_err err = {0};

    assert_int_equal(mock_anth_gen(r, &OPTS, 0, &a, &err), -1);
    assert_int_equal(err.status, 400);
    if (strstr(err.message, words) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, words);
    json_decref(r);
}

static void test_checks(void **state)
{
    UNUSED(state);
    refused("{'max_tokens':5,'messages':[{'role':'user','content':'x'}]}", "model: Field required");
    refused("{'model':'m','messages':[{'role':'user','content':'x'}]}",
            "max_tokens: Field required");
    refused("{'model':'m','max_tokens':0,'messages':[{'role':'user','content':'x'}]}",
            "greater than or equal to 1");
    refused("{'model':'m','max_tokens':5,'messages':[]}", "at least one message");
    refused("{'model':'m','max_tokens':5,'n':2,'messages':[{'role':'user','content':'x'}]}",
            "n: Extra inputs are not permitted");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'system','content':'x'}]}",
            "'user' or 'assistant'");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':''}]}",
            "non-empty content");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':[{'type':'text',"
            "'text':''}]}]}",
            "text content blocks must be non-empty");
    refused(
        "{'model':'m','max_tokens':5,'temperature':1.5,'messages':[{'role':'user','content':'x'}]}",
        "temperature");
    /* Tool results: each tool_use answered once, in the next turn, by id. */
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'x'},"
            "{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'w','input':{}}]},"
            "{'role':'user','content':[{'type':'tool_result','tool_use_id':'a'},"
            "{'type':'tool_result','tool_use_id':'a'}]}]}",
            "each tool_use must have a single result");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'x'},"
            "{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'w','input':{}},"
            "{'type':'tool_use','id':'b','name':'w','input':{}}]},"
            "{'role':'user','content':[{'type':'tool_result','tool_use_id':'a'}]}]}",
            "ids were found without `tool_result` blocks immediately after: b");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'x'},"
            "{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'w','input':{}}]},"
            "{'role':'user','content':'no results'}]}",
            "without `tool_result`");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':[{'type':"
            "'tool_result','tool_use_id':'z'}]}]}",
            "unexpected `tool_use_id`");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
            "'tools':[{'name':'w'}]}",
            "tools.0.input_schema: Field required");
    refused("{'model':'m','max_tokens':5,'messages':[{'role':'user','content':'x'}],"
            "'tool_choice':{'type':'any'}}",
            "only be specified while providing tools");
}

static void test_answer_json(void **state)
{
    json_t *r =
        test_json_q("{'model':'claude-x','max_tokens':50,'system':'s','stop_sequences':['river'],"
                    "'messages':[{'role':'user','content':'hi'}],'mock':{}}");
    struct mock_gen_opts o = OPTS;
    struct mock_answer a;
    struct mock_err err = {0};
    json_t *m, *u;
    size_t len;
    char *s;

    UNUSED(state);
    o.content = "one river two";
    o.content_len = strlen(o.content);
    o.cache_read = 3;
    o.cache_write = 2;
    assert_int_equal(mock_anth_gen(r, &o, 0, &a, &err), 0);
    s = mock_anth_render_json(&a, 0, &len);
    m = json_loads(s, 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "msg_mock_7");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(m, "stop_reason")), "stop_sequence");
    assert_string_equal(json_string_value(json_object_get(m, "stop_sequence")), "river");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(m, "content"), 0), "text")),
                        "one ");
    /* Anthropic's input_tokens leaves the cached tokens out. */
    u = json_object_get(m, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "input_tokens")) + 5, a.prompt_tokens);
    assert_int_equal(json_integer_value(json_object_get(u, "cache_read_input_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(u, "cache_creation_input_tokens")), 2);
    json_decref(m);
    free(s);
    /* The malformed fault: no parser accepts it. */
    s = mock_anth_render_json(&a, 1, &len);
    assert_null(json_loadb(s, len, 0, NULL));
    free(s);
    mock_answer_free(&a);
    json_decref(r);
}

/* The stream's events, by name, in order. */
static json_t *event_names(const struct mock_stream *st)
{
    json_t *names = json_array();
    const char *p = st->data.data, *end = p + st->data.len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (strncmp(p, "event: ", 7) == 0)
            json_array_append_new(names, json_stringn(p + 7, (size_t)(nl - p - 7)));
        p = nl + 1;
    }
    return names;
}

static void test_stream(void **state)
{
    json_t *r =
        test_json_q("{'model':'claude-x','max_tokens':50,'stream':true,'messages':[{'role':'user',"
                    "'content':'weather?'}],'tools':[{'name':'w','input_schema':{'type':'object',"
                    "'properties':{'c':{'type':'string'}}}},{'name':'t','input_schema':{'type':"
                    "'object'}}]}");
    struct mock_gen_opts o = OPTS;
    struct mock_stream st = {0};
    struct mock_answer a;
    struct mock_err err = {0};
    json_t *names, *want;

    UNUSED(state);
    o.content = "Let me see.";
    o.content_len = strlen(o.content);
    assert_int_equal(mock_anth_gen(r, &o, 3, &a, &err), 0);
    assert_int_equal(a.nchoices, 4); /* the text, then three tool_use blocks */
    assert_string_equal(a.stop_reason, "tool_use");
    assert_string_equal(a.choices[3].tool_name, "w"); /* the tools, cycled */
    assert_int_equal(strncmp(a.choices[1].tool_id, "toolu_mock_", 11), 0);
    assert_int_equal(mock_anth_render_stream(&a, 1, 0, 0, 0, &st), 0);
    names = event_names(&st);
    want = test_json_q("['message_start','content_block_start','ping','content_block_delta',"
                       "'content_block_stop','content_block_start','content_block_delta',"
                       "'content_block_stop','content_block_start','content_block_delta',"
                       "'content_block_stop','content_block_start','content_block_delta',"
                       "'content_block_stop','message_delta','message_stop']");
    assert_true(json_equal(names, want));
    /* Step 0 opens the message; the last step closes it. */
    assert_int_equal(st.nsteps, 6);
    json_decref(names);
    json_decref(want);
    mock_stream_free(&st);

    /* error_event: the message starts, then an error event ends it. */
    assert_int_equal(mock_anth_render_stream(&a, 1, 0, 1, 0, &st), 0);
    names = event_names(&st);
    want = test_json_q("['message_start','content_block_start','ping','error']");
    assert_true(json_equal(names, want));
    assert_non_null(strstr(st.data.data, "overloaded_error"));
    json_decref(names);
    json_decref(want);
    mock_stream_free(&st);
    mock_answer_free(&a);
    json_decref(r);

    /* A server tool without a name is not called (fuzz_mock_anthropic found
     * a NULL name copied). */
    r = test_json_q("{'model':'claude-x','max_tokens':50,'messages':[{'role':'user','content':"
                    "'hi'}],'tools':[{'type':'web_search_x'},{'name':'t','input_schema':{'type':"
                    "'object'}}]}");
    assert_int_equal(mock_anth_gen(r, &o, 2, &a, &err), 0);
    assert_int_equal(a.nchoices, 3);
    assert_string_equal(a.choices[1].tool_name, "t");
    assert_string_equal(a.choices[2].tool_name, "t");
    mock_answer_free(&a);
    json_decref(r);
}

static void test_errors_and_count(void **state)
{
    json_t *r = test_json_q(
        "{'model':'claude-x','messages':[{'role':'user','content':'count me please'}]}");
    struct mock_err err = {0};
    long long n = 0;

    UNUSED(state);
    assert_string_equal(api_anthropic_error_type(529), "overloaded_error");
    assert_string_equal(api_anthropic_error_type(429), "rate_limit_error");
    assert_string_equal(api_anthropic_error_type(401), "authentication_error");
    assert_string_equal(api_anthropic_error_type(413), "request_too_large");
    assert_string_equal(api_anthropic_error_type(500), "api_error");
    assert_string_equal(api_anthropic_error_type(400), "invalid_request_error");
    assert_int_equal(mock_anth_count_tokens(r, &n, &err), 0);
    assert_true(n > 0);
    json_object_set_new(r, "max_tokens", json_integer(5));
    assert_int_equal(mock_anth_count_tokens(r, &n, &err), -1); /* count_tokens takes none */
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_answer_json),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_errors_and_count),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
