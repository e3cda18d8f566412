/* Unit tests for sluice-mock's endpoints (src/mock/mock_ep.c) and the
 * replies they build (src/mock/mock_reply.c), without a socket: a raw
 * request goes through the mock's HTTP parser and the endpoints' request
 * callback, and the test reads the reply's bytes and action. The mock's
 * sources are included whole (they are not in the library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../src/mock/mock_anthropic.c"
#include "../../src/mock/mock_conn.c"
#include "../../src/mock/mock_ctl.c"
#include "../../src/mock/mock_ep.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_http.c"
#include "../../src/mock/mock_replay.c"
#include "../../src/mock/mock_reply.c"

static struct mock_reply R;
static unsigned long long seq;

/* Answer one raw request (a POST gets `body`, ' written for ") into R.
 * Returns R's bytes as a string (borrowed until the next call). */
static const char *ask(const char *method, const char *path, const char *headers, const char *body)
{
    char raw[8192], *b = xstrdup(body ? body : "");
    struct mock_http_req req;
    int n;

    for (char *p = b; *p; p++)
        if (*p == '\'')
            *p = '"';
    n = snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", strlen(b), b);
    free(b);
    assert_int_equal(mock_http_parse(raw, (size_t)n, &req), n);
    mock_reply_start(&R, ++seq, req.keep_alive, req.minor == 0, strcmp(method, "HEAD") == 0);
    mock_ep_request_cb(&R, &req, NULL);
    return R.data.data ? R.data.data : ""; /* always NUL-terminated */
}

static void has(const char *text, const char *words)
{
    if (strstr(text, words) == NULL)
        fail_msg("'%s' lacks '%s'", text, words);
}

/* The JSON body of R (after the head). A new reference. */
static json_t *body_of(void)
{
    const char *p = strstr(R.data.data, "\r\n\r\n");

    assert_non_null(p);
    return json_loads(p + 4, 0, NULL);
}

static int setup(void **state)
{
    struct mock_ep_opts o = {.require_key = NULL, .chunks = 5};
    json_t *defaults = json_loads("{\"slow\":{\"first_byte_ms\":700}}", 0, NULL);

    UNUSED(state);
    mock_ep_init(&o, NULL, defaults);
    mock_reply_init(&R);
    return 0;
}

static int teardown(void **state)
{
    UNUSED(state);
    mock_reply_free(&R);
    mock_ep_free();
    return 0;
}

static const char CHAT[] = "{'model':'mock-small','messages':[{'role':'user','content':'hi'}]";

static void test_chat(void **state)
{
    char req[512];
    json_t *b;
    const char *t;

    UNUSED(state);
    snprintf(req, sizeof(req), "%s,'mock':{'content':'hello there'}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    has(t, "HTTP/1.1 200 OK\r\n");
    has(t, "x-request-id: req_mock_");
    assert_int_equal(R.act, MOCK_REPLY_SEND);
    assert_int_equal(R.after, MOCK_REPLY_KEEP);
    assert_int_equal(R.delay_ms, 0);
    b = body_of();
    assert_string_equal(json_string_value(json_object_get(b, "model")), "mock-small");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(b, "choices"), 0), "message"),
            "content")),
        "hello there");
    json_decref(b);

    /* A stream: the head now, the steps later, paced. */
    snprintf(req, sizeof(req), "%s,'stream':true,'mock':{'chunks':3,'interval_ms':20}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    assert_int_equal(R.act, MOCK_REPLY_STREAM);
    has(t, "Content-Type: text/event-stream");
    has(t, "Transfer-Encoding: chunked");
    assert_int_equal(R.interval_us, 20000);
    assert_int_equal(R.stop_step, R.stream.nsteps);
    assert_int_equal(R.stream.nsteps, 5); /* open, 3 content steps, close */

    /* The command line's defaults for a model; the request's own win. */
    ask("POST", "/v1/chat/completions", NULL,
        "{'model':'slow','messages':[{'role':'user','content':'hi'}]}");
    assert_int_equal(R.delay_ms, 700);
    ask("POST", "/v1/chat/completions", NULL,
        "{'model':'slow','messages':[{'role':'user','content':'hi'}],'mock':{'first_byte_ms':5}}");
    assert_int_equal(R.delay_ms, 5);
}

static void test_faults(void **state)
{
    char req[512];
    const char *t;

    UNUSED(state);
    snprintf(req, sizeof(req), "%s,'mock':{'fault':'hang'}}", CHAT);
    ask("POST", "/v1/chat/completions", NULL, req);
    assert_int_equal(R.act, MOCK_REPLY_HANG);
    snprintf(req, sizeof(req), "%s,'mock':{'fault':'reset','first_byte_ms':30}}", CHAT);
    ask("POST", "/v1/chat/completions", NULL, req);
    assert_int_equal(R.act, MOCK_REPLY_RESET);
    assert_int_equal(R.delay_ms, 30);

    snprintf(req, sizeof(req), "%s,'mock':{'status':429,'retry_after':2}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    has(t, "HTTP/1.1 429 Too Many Requests\r\n");
    has(t, "Retry-After: 2\r\nretry-after-ms: 2000\r\n");
    has(t, "\"code\":\"rate_limit_exceeded\"");
    has(t, "\"type\":\"requests\"");

    snprintf(req, sizeof(req), "%s,'mock':{'fault':'truncate'}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    assert_int_equal(R.after, MOCK_REPLY_CLOSE);
    {
        const char *cl = strstr(t, "Content-Length: "), *body = strstr(t, "\r\n\r\n") + 4;

        assert_non_null(cl);
        /* half the promised body */
        assert_int_equal(strlen(body), strtoul(cl + 16, NULL, 10) / 2);
    }
    snprintf(req, sizeof(req), "%s,'stream':true,'mock':{'fault':'truncate','chunks':4}}", CHAT);
    ask("POST", "/v1/chat/completions", NULL, req);
    assert_int_equal(R.act, MOCK_REPLY_STREAM);
    assert_true(R.truncate);
    assert_true(R.stop_step < R.stream.nsteps - 1);

    snprintf(req, sizeof(req), "%s,'mock':{'fault':'error_200'}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    has(t, "HTTP/1.1 200 OK\r\n");
    has(t, "{\"error\":");

    /* fail_times: the first request fails, the second does not. */
    snprintf(req, sizeof(req), "%s,'mock':{'status':500,'fail_times':1,'key':'t1'}}", CHAT);
    t = ask("POST", "/v1/chat/completions", NULL, req);
    has(t, "HTTP/1.1 500 ");
    t = ask("POST", "/v1/chat/completions", NULL, req);
    has(t, "HTTP/1.1 200 ");
}

static void test_errors(void **state)
{
    const char *t;

    UNUSED(state);
    t = ask("POST", "/v1/chat/completions", NULL, "{'model':'m','mock':{'stauts':1}}");
    has(t, "HTTP/1.1 400 Bad Request\r\n");
    has(t, "\"code\":\"invalid_mock\"");
    has(t, "unknown field 'mock.stauts'");
    t = ask("POST", "/v1/chat/completions", NULL, "[1]");
    has(t, "the body must be a JSON object");
    t = ask("POST", "/v1/chat/completions", NULL, "{'messages':[]}");
    has(t, "\"param\":\"model\"");
    t = ask("GET", "/v1/chat/completions", NULL, NULL);
    has(t, "HTTP/1.1 405 Method Not Allowed\r\n");
    has(t, "Allow: POST\r\n");
    t = ask("GET", "/v1/nothing", NULL, NULL);
    has(t, "HTTP/1.1 404 Not Found\r\n");
    has(t, "Invalid URL (GET /v1/nothing)");
    /* Azure wants its api-version. */
    t = ask("POST", "/openai/deployments/dep/chat/completions", NULL,
            "{'messages':[{'role':'user','content':'hi'}]}");
    has(t, "missing_api_version");
    t = ask("POST", "/openai/deployments/dep/chat/completions?api-version=1", NULL,
            "{'messages':[{'role':'user','content':'hi'}]}");
    has(t, "HTTP/1.1 200 OK\r\n");
    has(t, "\"model\":\"dep\"");
}

static void test_anthropic(void **state)
{
    static const char msg[] =
        "{'model':'claude-x','max_tokens':20,'messages':[{'role':'user','content':'hi'}]}";
    const char *t;

    UNUSED(state);
    t = ask("POST", "/v1/messages", NULL, msg);
    has(t, "HTTP/1.1 400 ");
    has(t, "\"type\":\"error\""); /* Anthropic's error shape */
    has(t, "anthropic-version");
    has(t, "request-id: req_mock_");
    t = ask("POST", "/v1/messages", "anthropic-version: 2023-06-01\r\n", msg);
    has(t, "HTTP/1.1 200 OK\r\n");
    has(t, "\"type\":\"message\"");
    t = ask("POST", "/v1/messages", "anthropic-version: 2023-06-01\r\n",
            "{'model':'claude-x','max_tokens':20,'messages':[{'role':'user','content':'hi'}],"
            "'mock':{'status':529}}");
    has(t, "HTTP/1.1 529 ");
    has(t, "\"overloaded_error\"");
}

static void test_key(void **state)
{
    const char *t;

    UNUSED(state);
    ep.opt.require_key = "sekrit";
    t = ask("POST", "/v1/chat/completions", NULL, "{'model':'m'}");
    has(t, "HTTP/1.1 401 ");
    has(t, "invalid_api_key");
    t = ask("GET", "/v1/models", "Authorization: Bearer wrong\r\n", NULL);
    has(t, "HTTP/1.1 401 ");
    t = ask("GET", "/v1/models", "Authorization: Bearer sekrit\r\n", NULL);
    has(t, "HTTP/1.1 200 ");
    has(t, "\"id\":\"mock-small\"");
    t = ask("POST", "/openai/deployments/d/embeddings?api-version=1",
            "Authorization: Bearer sekrit\r\n", "{'input':'x'}");
    has(t, "HTTP/1.1 401 "); /* Azure takes api-key only */
    t = ask("POST", "/openai/deployments/d/embeddings?api-version=1", "api-key: sekrit\r\n",
            "{'input':'x'}");
    has(t, "HTTP/1.1 200 ");
    has(t, "\"embedding\"");
    ep.opt.require_key = NULL;
}

static void test_models_stats(void **state)
{
    json_t *b;
    const char *t;

    UNUSED(state);
    t = ask("GET", "/v1/models/mock-large", NULL, NULL);
    has(t, "\"id\":\"mock-large\"");
    t = ask("GET", "/v1/models/nope", NULL, NULL);
    has(t, "HTTP/1.1 404 ");
    has(t, "model_not_found");
    t = ask("HEAD", "/_mock/health", NULL, NULL);
    has(t, "Content-Length: 15\r\n");
    assert_null(strstr(t, "\"ok\"")); /* HEAD: no body */

    ask("POST", "/_mock/reset", NULL, NULL);
    ask("POST", "/v1/chat/completions", NULL,
        "{'model':'mock-small','messages':[{'role':'user','content':'hi'}]}");
    ask("POST", "/v1/chat/completions", NULL,
        "{'model':'mock-small','messages':[{'role':'user','content':'hi'}],"
        "'mock':{'status':503}}");
    ask("GET", "/_mock/stats", NULL, NULL);
    b = body_of();
    assert_int_equal(json_integer_value(json_object_get(b, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(b, "faults")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b, "by_model"), "mock-small")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b, "by_path"), "/v1/chat/completions")),
        2);
    json_decref(b);
    ask("POST", "/_mock/reset", NULL, NULL);
    ask("GET", "/_mock/stats", NULL, NULL);
    b = body_of();
    assert_int_equal(json_integer_value(json_object_get(b, "requests")), 0);
    assert_int_equal(json_object_size(json_object_get(b, "by_model")), 0);
    json_decref(b);
}

/* What a reply looks like on a connection that is not kept. */
static void test_reply(void **state)
{
    struct mock_reply r;

    UNUSED(state);
    mock_reply_init(&r);
    mock_reply_start(&r, 9, 0, 0, 0);
    mock_reply_error(&r, 503, NULL, NULL, "down", NULL);
    has(r.data.data, "HTTP/1.1 503 Service Unavailable\r\n");
    has(r.data.data, "Connection: close\r\n");
    has(r.data.data, "x-request-id: req_mock_9\r\n");
    has(r.data.data, "{\"error\":{\"message\":\"down\",\"type\":\"server_error\"");
    assert_int_equal(r.after, MOCK_REPLY_LINGER);
    /* An HTTP/1.0 keep-alive says so. */
    mock_reply_start(&r, 10, 1, 1, 0);
    mock_reply_json(&r, 200, json_pack("{s:b}", "ok", 1));
    has(r.data.data, "Connection: keep-alive\r\n");
    assert_int_equal(r.after, MOCK_REPLY_KEEP);
    /* A message that is not UTF-8 still gives an error body. */
    mock_reply_start(&r, 11, 1, 0, 0);
    mock_reply_error(&r, 400, NULL, NULL, "\xff", NULL);
    has(r.data.data, "sluice-mock: bad request");
    assert_string_equal(mock_reply_status_text(529), "Site Overloaded");
    assert_string_equal(mock_reply_status_text(299), "Status");
    mock_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat),   cmocka_unit_test(test_faults),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_anthropic),
        cmocka_unit_test(test_key),    cmocka_unit_test(test_models_stats),
        cmocka_unit_test(test_reply),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
