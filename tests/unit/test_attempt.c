/* Unit tests for attempt.c, one upstream call of a run with its retries and
 * its provider's breaker, run on a real loop and upstream against loopback
 * providers (tests/common/openai_server.h, and one here whose model ids ask
 * for a 400, a 429 with Retry-After or a body that is not JSON), through
 * the interface a run uses (struct att_owner, its hooks and a kind's done
 * callback): an answer parsed and accounted once; a stream relayed payload
 * by payload, without the usage the client did not ask for; a 500 and a
 * connect failure in the API's error shape; an OpenAI-shaped 4xx kept to
 * pass through, a 429's Retry-After kept to pass on; a 200 that is not
 * JSON; a failed call retried (each try accounted, the retry counted), but
 * not once an answer byte went out; an open breaker failing the attempt at
 * once, without a call; a judge's timeout; a scorer service's POST, its
 * body left to the owner; and attempt_free cancelling a call in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../common/openai_server.h"
#include "../common/redis_server.h" /* test_free_port */
#include "../common/run_fixture.h"
#include "../../src/attempt.h"
#include "../../src/breaker.h"
#include "../../src/config.h"
#include "../../src/exchange.h"
#include "../../src/log.h"
#include "../../src/loop.h"
#include "../../src/upstream.h"
#include "../../src/util.h"

static struct test_http provider, odd;
static struct config *cfg;
static struct loop *loop;
static struct upstream *up;

/* The odd provider: "r-400" gets an OpenAI-shaped 400, "r-429" a 429 with
 * Retry-After: 2, "r-bad" a 200 that is not JSON; a body without a model
 * (a scorer service's) gets {"score":0.75}. */
static void odd_cb(void *arg, const struct test_http_req *req, struct test_http_reply *out)
{
    json_t *body = json_loads(req->body, 0, NULL);
    const char *model = json_string_value(json_object_get(body, "model"));

    (void)arg;
    out->status = 200;
    if (model == NULL) {
        out->body = "{\"score\":0.75}";
    } else if (strcmp(model, "r-400") == 0) {
        out->status = 400;
        out->body = "{\"error\":{\"message\":\"bad temperature\",\"type\":"
                    "\"invalid_request_error\"}}";
    } else if (strcmp(model, "r-429") == 0) {
        out->status = 429;
        out->header_name = "Retry-After";
        out->header_value = "2";
        out->body = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";
    } else {
        out->body = "not json";
    }
    json_decref(body);
}

static int group_setup(void **state)
{
    struct log_conf quiet = {.format = LOG_FORMAT_JSON, .path = "/dev/null", .level = LOG_ERROR};
    char *text;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    assert_int_equal(log_open(&quiet), 0);
    test_http_start(&provider, test_openai_cb, NULL);
    test_http_start(&odd, odd_cb, NULL);
    text =
        xasprintf("providers = (\n"
                  "  { name = \"up\"; type = \"openai\"; base_url = \"%s/v1\"; retries = 0;\n"
                  "    breaker = { failures = 0; error_rate = 0.0; }; },\n"
                  "  { name = \"odd\"; type = \"openai\"; base_url = \"%s/v1\"; retries = 1;\n"
                  "    retry_backoff_ms = 10; retry_after_max_ms = 500;\n"
                  "    breaker = { failures = 0; error_rate = 0.0; }; },\n"
                  "  { name = \"flaky\"; type = \"openai\"; base_url = \"%s/v1\"; retries = 1;\n"
                  "    retry_backoff_ms = 10; breaker = { failures = 0; error_rate = 0.0; }; },\n"
                  "  { name = \"dead\"; type = \"openai\"; base_url = \"http://127.0.0.1:%d/v1\";\n"
                  "    retries = 0; connect_timeout_ms = 2000;\n"
                  "    breaker = { failures = 1; cooldown_s = 600; }; }\n"
                  ");\n"
                  "models = (\n"
                  "  { name = \"a\"; provider = \"up\"; id = \"ok-a\"; input_per_mtok = 1.0; "
                  "output_per_mtok = 1.0; },\n"
                  "  { name = \"broken\"; provider = \"up\"; id = \"m-500\"; },\n"
                  "  { name = \"slow\"; provider = \"up\"; id = \"m-slow\"; },\n"
                  "  { name = \"r400\"; provider = \"odd\"; id = \"r-400\"; },\n"
                  "  { name = \"r429\"; provider = \"odd\"; id = \"r-429\"; },\n"
                  "  { name = \"rbad\"; provider = \"odd\"; id = \"r-bad\"; retries = 0; },\n"
                  "  { name = \"flaky\"; provider = \"flaky\"; id = \"m-flaky\"; },\n"
                  "  { name = \"dead\"; provider = \"dead\"; }\n"
                  ");\n"
                  "routes = ( { name = \"r\"; fallback = ( \"a\" ); } );\n",
                  provider.base, odd.base, provider.base, test_free_port());
    cfg = test_run_config(text, "test_attempt.conf");
    loop = loop_new();
    up = upstream_new(loop);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    upstream_free(up);
    loop_free(loop);
    config_unref(cfg);
    breaker_free_all();
    test_http_stop(&odd);
    test_http_stop(&provider);
    return 0;
}

/* What the owner saw. */
struct seen {
    int accounts;    /* account hook calls */
    int accounted_c; /* of them, with a call */
    int dones;
    int ok;
    int had_call; /* done got a call */
    long status;  /* its HTTP status */
    char content[256];
    char body[256]; /* a scorer service's body */
    int relays;
    struct buf relayed; /* every payload, one a line */
    int refuse_relay;   /* the relay hook fails (a client too slow) */
};

static struct seen seen;
static int
    running; /* the loop runs: done stops it (a done before, as an open breaker's, must not) */

static void account_cb(struct attempt *a, struct call *c)
{
    UNUSED(a);
    seen.accounts++;
    seen.accounted_c += c != NULL;
}

static int relay_cb(struct attempt *a, const char *data, size_t len)
{
    seen.relays++;
    if (seen.refuse_relay) {
        a->bad = "its stream buffer filled";
        a->client_fault = 1;
        return -1;
    }
    assert_int_equal(buf_append(&seen.relayed, data, len), 0);
    assert_int_equal(buf_append(&seen.relayed, "\n", 1), 0);
    return 0;
}

static void done_cb(struct attempt *a, struct call *c, const char *err, int ok)
{
    UNUSED(err);
    assert_null(a->call); /* the shared part ran first */
    seen.dones++;
    seen.ok = ok;
    seen.had_call = c != NULL;
    seen.status = c ? call_status(c) : 0;
    if (a->reply.content.data)
        snprintf(seen.content, sizeof(seen.content), "%s", a->reply.content.data);
    if (a->model == NULL && a->body.data)
        snprintf(seen.body, sizeof(seen.body), "%.*s", (int)a->body.len, a->body.data);
    attempt_free(a);
    if (running)
        loop_stop(loop);
}

static const struct att_hooks hooks = {.account = account_cb, .relay = relay_cb};
static const struct att_kind kind = {"answer", done_cb};

static void bound_cb(struct loop *l, void *arg)
{
    UNUSED(arg);
    loop_stop(l);
}

/* Run the loop until done has been called (or 20 s have passed). */
static void wait_done(void)
{
    struct loop_timer t;

    loop_timer_init(&t, bound_cb, NULL);
    loop_timer_start(loop, &t, 20u * 1000000u);
    running = 1;
    if (seen.dones == 0)
        loop_run(loop);
    running = 0;
    loop_timer_stop(loop, &t);
    if (seen.dones != 1)
        fail_msg("done was called %d times", seen.dones);
}

struct fixture {
    struct exchange *ex;
    struct att_owner o;
};

static void begin(struct fixture *f, int stream)
{
    buf_free(&seen.relayed);
    memset(&seen, 0, sizeof(seen));
    buf_init(&seen.relayed, 1 << 16);
    f->ex = test_run_request(cfg, "r", stream);
    att_owner_init(&f->o, f->ex, loop, up, &hooks, NULL);
}

static void end(struct fixture *f)
{
    assert_null(f->o.list); /* done freed it */
    att_owner_free(&f->o);
    ex_unref(f->ex);
    assert_int_equal(upstream_active(up), 0);
}

/* Start an attempt on model name with the client's body. */
static struct attempt *call(struct fixture *f, const char *name, int stream)
{
    struct attempt *a = attempt_new(&f->o, &kind, 0, config_model(cfg, name), EP_CHAT, stream);

    a->keep_text = 1;
    attempt_start(a, f->ex->ri.body);
    return a;
}

static void test_answer(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "a", 0);
    wait_done();
    assert_true(seen.ok);
    assert_true(seen.had_call);
    assert_string_equal(seen.content, "answer from ok-a");
    assert_int_equal(seen.accounts, 1);
    assert_int_equal(seen.relays, 0);
    assert_string_equal(f.o.last_err.message, "No upstream could answer."); /* untouched */
    end(&f);
}

/* Each event is handed to relay in the internal form; the usage chunk was
 * the gateway's question, not the client's, so it is not relayed. */
static void test_stream(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 1);
    call(&f, "a", 1);
    wait_done();
    assert_true(seen.ok);
    assert_int_equal(seen.relays, 2);
    assert_non_null(strstr(seen.relayed.data, "\"content\":\"answer from ok-a\""));
    assert_null(strstr(seen.relayed.data, "\"usage\""));
    assert_string_equal(seen.content, "answer from ok-a"); /* kept: keep_text */
    end(&f);
}

/* A relay the client cannot keep up with ends the call as the client's
 * fault: no retry, a 503 client_too_slow. */
static void test_stream_client_too_slow(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 1);
    seen.refuse_relay = 1;
    call(&f, "a", 1);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(seen.relays, 1);
    assert_int_equal(f.o.last_err.status, 503);
    assert_string_equal(f.o.last_err.code, "client_too_slow");
    assert_int_equal(f.o.retries, 0);
    end(&f);
}

static void test_500(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "broken", 0);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(seen.status, 500);
    assert_int_equal(f.o.last_err.status, 502);
    assert_string_equal(f.o.last_err.code, "upstream_error");
    assert_string_equal(f.o.last_err.message, "Upstream broken returned HTTP 500: upstream broke");
    assert_null(f.o.pass_body); /* a 5xx is never passed through */
    end(&f);
}

static void test_4xx_passes_through(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "r400", 0);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(f.o.pass_status, 400);
    assert_non_null(f.o.pass_body);
    assert_non_null(memmem(f.o.pass_body, f.o.pass_len, "bad temperature", 15));
    assert_int_equal(f.o.last_err.status, 400);
    assert_string_equal(f.o.last_err.type, "invalid_request_error");
    assert_int_equal(f.o.retries, 0); /* the request's fault: not retried */
    assert_int_equal(test_http_count(&odd), 1);
    end(&f);
}

/* A 429 whose Retry-After (2 s) is past retry_after_max_ms (500 ms): not
 * retried; its Retry-After is kept for the client. */
static void test_429_retry_after(void **state)
{
    struct fixture f;
    int before = test_http_count(&odd);

    (void)state;
    begin(&f, 0);
    call(&f, "r429", 0);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(f.o.last_err.status, 429);
    assert_string_equal(f.o.last_err.code, "rate_limit_exceeded");
    assert_int_equal(f.o.retry_after_s, 2);
    assert_int_equal(f.o.pass_status, 429);
    assert_int_equal(f.o.retries, 0);
    assert_int_equal(test_http_count(&odd), before + 1);
    end(&f);
}

static void test_not_json(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "rbad", 0);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(f.o.last_err.status, 502);
    assert_string_equal(f.o.last_err.code, "upstream_bad_response");
    assert_string_equal(f.o.last_err.message, "Upstream rbad: the response is not JSON");
    end(&f);
}

/* The flaky provider fails every other call (the first of this test);
 * with retries = 1 the retry answers: each try accounted, one done. */
static void test_retry(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "flaky", 0);
    wait_done();
    assert_true(seen.ok);
    assert_string_equal(seen.content, "answer from m-flaky");
    assert_int_equal(seen.accounts, 2);
    assert_int_equal(seen.accounted_c, 2);
    assert_int_equal(f.o.retries, 1);
    assert_int_equal(f.ex->meta.retries, 1);
    end(&f);
}

/* Once an answer byte went out (the owner says so), no retry. */
static void test_no_retry_when_answering(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    f.o.answering = 1;
    call(&f, "flaky", 0); /* the third flaky call: a 503 */
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(seen.accounts, 1);
    assert_int_equal(f.o.retries, 0);
    end(&f);
}

/* The dead provider's breaker opens on its first failure (a connect
 * error); the next attempt fails at once, before attempt_start returns,
 * without a call. */
static void test_breaker_open(void **state)
{
    struct fixture f;

    (void)state;
    begin(&f, 0);
    call(&f, "dead", 0);
    wait_done();
    assert_false(seen.ok);
    assert_true(seen.had_call);
    assert_string_equal(f.o.last_err.code, "upstream_unreachable");
    end(&f);

    begin(&f, 0);
    call(&f, "dead", 0);
    assert_int_equal(seen.dones, 1); /* already */
    assert_false(seen.ok);
    assert_false(seen.had_call);
    assert_int_equal(seen.accounts, 1);
    assert_int_equal(seen.accounted_c, 0);
    assert_int_equal(f.o.last_err.status, 503);
    assert_string_equal(f.o.last_err.code, "upstream_circuit_open");
    end(&f);
}

/* A judge's timeout (timeout_ms) replaces the provider's: the slow model
 * answers after 1.5 s, the call gives up after 100 ms. */
static void test_timeout(void **state)
{
    struct fixture f;
    struct attempt *a;

    (void)state;
    begin(&f, 0);
    a = attempt_new(&f.o, &kind, 0, config_model(cfg, "slow"), EP_CHAT, 0);
    a->timeout_ms = 100;
    attempt_start(a, f.ex->ri.body);
    wait_done();
    assert_false(seen.ok);
    assert_int_equal(f.o.last_err.status, 504);
    assert_string_equal(f.o.last_err.code, "upstream_timeout");
    end(&f);
}

/* A scorer service's call: its 2xx body is the owner's to read. */
static void test_post(void **state)
{
    struct fixture f;
    struct attempt *a;
    char *url = xasprintf("%s/score", odd.base);

    (void)state;
    begin(&f, 0);
    a = attempt_new(&f.o, &kind, 0, NULL, EP_CHAT, 0);
    attempt_post(a, url, xstrdup("{\"query\":\"q\"}"), 5000);
    wait_done();
    assert_true(seen.ok);
    assert_string_equal(seen.body, "{\"score\":0.75}");
    end(&f);
    free(url);
}

static void free_cb(struct loop *l, void *arg)
{
    UNUSED(l);
    attempt_free(arg);
    loop_stop(loop);
}

/* The owner lets go of a call in flight: it is cancelled, and done never
 * comes. */
static void test_free_cancels(void **state)
{
    struct fixture f;
    struct loop_timer t;
    struct attempt *a;

    (void)state;
    begin(&f, 0);
    a = call(&f, "slow", 0);
    assert_non_null(a->call);
    assert_int_equal(upstream_active(up), 1);
    loop_timer_init(&t, free_cb, a);
    loop_timer_start(loop, &t, 50000);
    loop_run(loop);
    assert_int_equal(seen.dones, 0);
    assert_int_equal(seen.accounts, 0);
    end(&f);
    buf_free(&seen.relayed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_client_too_slow),
        cmocka_unit_test(test_500),
        cmocka_unit_test(test_4xx_passes_through),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_no_retry_when_answering),
        cmocka_unit_test(test_breaker_open),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_post),
        cmocka_unit_test(test_free_cancels),
    };

    alarm(180);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
