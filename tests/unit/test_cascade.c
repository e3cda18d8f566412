/* Unit tests for cascade.c, the route state machine, run on a real loop
 * and upstream against a loopback provider (tests/common/openai_server.h,
 * whose model ids ask for answers, errors, empty answers or delays): a
 * single model's answer and its cost; a fallback past a 500 and past a
 * hang-up, relayed live to a streaming client; a cascade that accepts its
 * first stage, and one that escalates past an answer the rules veto, each
 * call paid; agreement of two models; a budget that skips a stage (the
 * best answer so far is salvaged); every stage failing, as OpenAI's error;
 * a provider whose circuit breaker is open skipped without a call; and a
 * run cancelled by its client, or aborted at shutdown, answered at once.
 * One call's outcome, retries and breaker are attempt.c's, tested in
 * test_attempt.c. */
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
#include "../../src/breaker.h"
#include "../../src/cascade.h"
#include "../../src/config.h"
#include "../../src/exchange.h"
#include "../../src/log.h"
#include "../../src/loop.h"
#include "../../src/upstream.h"
#include "../../src/util.h"

static struct test_http provider;
static struct config *cfg;
static struct loop *loop;
static struct upstream *up;

static int group_setup(void **state)
{
    struct log_conf quiet = {.format = LOG_FORMAT_JSON, .path = "/dev/null", .level = LOG_ERROR};
    char *text;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    assert_int_equal(log_open(&quiet), 0);
    test_http_start(&provider, test_openai_cb, NULL);
    /* $1/M tokens in and out for the cheap models, $10/M for the dear
     * one: an answer (5 + 3 tokens) costs $0.000008 or $0.00008. */
    text = xasprintf(
        "providers = (\n"
        "  { name = \"up\"; type = \"openai\"; base_url = \"%s/v1\";\n"
        "    breaker = { failures = 0; error_rate = 0.0; }; },\n"
        "  { name = \"dead\"; type = \"openai\"; base_url = \"http://127.0.0.1:%d/v1\";\n"
        "    connect_timeout_ms = 2000; breaker = { failures = 1; cooldown_s = 600; }; }\n"
        ");\n"
        "models = (\n"
        "  { name = \"a\"; provider = \"up\"; id = \"ok-a\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"b\"; provider = \"up\"; id = \"ok-b\"; input_per_mtok = 10.0; "
        "output_per_mtok = 10.0; },\n"
        "  { name = \"twin1\"; provider = \"up\"; id = \"twin\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"twin2\"; provider = \"up\"; id = \"twin\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"empty\"; provider = \"up\"; id = \"m-empty\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"broken\"; provider = \"up\"; id = \"m-500\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"gone\"; provider = \"up\"; id = \"m-hangup\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"slow\"; provider = \"up\"; id = \"m-slow\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; },\n"
        "  { name = \"dead\"; provider = \"dead\"; input_per_mtok = 1.0; output_per_mtok = 1.0; }\n"
        ");\n"
        "routes = (\n"
        "  { name = \"fb\"; fallback = ( \"broken\", \"gone\", \"a\" ); },\n"
        "  { name = \"all-fail\"; fallback = ( \"gone\", \"broken\" ); },\n"
        "  { name = \"accept\"; cascade = ( { model = \"a\"; scorer = \"rules\"; threshold = 1.0; "
        "}, { model = \"b\"; } ); },\n"
        "  { name = \"escalate\"; cascade = ( { model = \"empty\"; scorer = \"rules\"; "
        "threshold = 1.0; }, { model = \"b\"; } ); },\n"
        "  { name = \"agree\"; cascade = ( { models = ( \"twin1\", \"twin2\" ); scorer = "
        "\"agreement\"; threshold = 1.0; }, { model = \"b\"; } ); },\n"
        "  { name = \"disagree\"; cascade = ( { models = ( \"a\", \"twin1\" ); scorer = "
        "\"agreement\"; threshold = 1.0; }, { model = \"b\"; } ); },\n"
        "  { name = \"budget\"; max_cost = 0.0001; cascade = ( { model = \"empty\"; scorer = "
        "\"rules\"; threshold = 1.0; }, { model = \"b\"; } ); },\n"
        "  { name = \"breaker\"; fallback = ( \"dead\", \"a\" ); }\n"
        ");\n",
        provider.base, test_free_port());
    cfg = test_run_config(text, "test_cascade.conf");
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
    test_http_stop(&provider);
    return 0;
}

static void watch_cb(struct loop *l, void *arg);

struct watch {
    struct exchange *ex;
    struct loop_timer t;
    int ticks;
};

static void watch_cb(struct loop *l, void *arg)
{
    struct watch *w = arg;

    if (w->ex->run == NULL) {
        loop_stop(l);
        return;
    }
    if (++w->ticks > 4000)
        fail_msg("the run did not end in 20 s");
    loop_timer_start(l, &w->t, 5000);
}

/* Run ex's route on the loop until the run has ended. The test keeps its
 * own reference to ex. */
static void run(struct exchange *ex)
{
    struct watch w = {.ex = ex};

    loop_timer_init(&w.t, watch_cb, &w);
    cascade_start(loop, up, ex_ref(ex));
    loop_timer_start(loop, &w.t, 5000);
    loop_run(loop);
    loop_timer_stop(loop, &w.t);
}

/* The content of a whole (non-streamed) answer. */
static const char *content_of(struct exchange *ex, json_t **keep)
{
    *keep = json_loadb(ex->out.data, ex->out.len, 0, NULL);
    assert_non_null(*keep);
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(*keep, "choices"), 0), "message"),
        "content"));
}

static void expect_answer(struct exchange *ex, const char *model, const char *content)
{
    json_t *j;

    if (ex->status != 200 || ex->err.status)
        fail_msg("status %d: %s", ex->status, ex->err.message);
    assert_int_equal(ex->state, EX_DONE);
    assert_string_equal(ex->meta.model, model);
    assert_string_equal(content_of(ex, &j), content);
    json_decref(j);
}

static void test_single_model(void **state)
{
    struct exchange *ex = test_run_request(cfg, "a", 0);

    (void)state;
    run(ex);
    expect_answer(ex, "a", "answer from ok-a");
    assert_string_equal(ex->meta.provider, "up");
    assert_int_equal(ex->meta.attempts, 1);
    assert_int_equal(ex->meta.prompt_tokens, 5);
    assert_int_equal(ex->meta.completion_tokens, 3);
    assert_float_equal(ex->meta.cost_usd, 8e-6, 1e-12);
    ex_unref(ex);
}

/* A 500, then a hang-up, then an answer: the fallback's third model. */
static void test_fallback(void **state)
{
    struct exchange *ex = test_run_request(cfg, "fb", 0);

    (void)state;
    run(ex);
    expect_answer(ex, "a", "answer from ok-a");
    assert_int_equal(ex->meta.attempts, 3);
    assert_float_equal(ex->meta.cost_usd, 8e-6, 1e-12); /* failed calls cost nothing */
    ex_unref(ex);
}

/* The same, streamed: the failures came before any byte, so the client
 * gets the third model's stream, relayed event by event. */
static void test_fallback_streamed(void **state)
{
    struct exchange *ex = test_run_request(cfg, "fb", 1);

    (void)state;
    run(ex);
    assert_int_equal(ex->state, EX_DONE);
    assert_true(ex->streamed);
    assert_int_equal(ex->status, 200);
    assert_int_equal(ex->err.status, 0);
    assert_string_equal(ex->meta.model, "a");
    assert_non_null(memmem(ex->out.data, ex->out.len, "\"content\":\"answer from ok-a\"", 28));
    assert_true(ex->out.len > 14 &&
                memcmp(ex->out.data + ex->out.len - 14, "data: [DONE]\n\n", 14) == 0);
    /* the usage chunk was sluice's question, not the client's */
    assert_null(memmem(ex->out.data, ex->out.len, "\"usage\"", 7));
    assert_float_equal(ex->meta.cost_usd, 8e-6, 1e-12);
    ex_unref(ex);
}

static void test_all_fail(void **state)
{
    struct exchange *ex = test_run_request(cfg, "all-fail", 0);

    (void)state;
    run(ex);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->status, 502);
    assert_int_equal(ex->err.status, 502);
    assert_string_equal(ex->err.type, "api_error");
    assert_int_equal(ex->meta.attempts, 2);
    ex_unref(ex);
}

static void test_cascade_accepts_first(void **state)
{
    struct exchange *ex = test_run_request(cfg, "accept", 0);
    int before = test_http_count(&provider);

    (void)state;
    run(ex);
    expect_answer(ex, "a", "answer from ok-a");
    assert_string_equal(ex->meta.stages.data, "a:1.00:accept");
    assert_int_equal(test_http_count(&provider), before + 1); /* b never asked */
    ex_unref(ex);
}

/* An empty answer is vetoed by the rules: the next stage answers, and the
 * run pays for both calls. */
static void test_cascade_escalates(void **state)
{
    struct exchange *ex = test_run_request(cfg, "escalate", 0);

    (void)state;
    run(ex);
    expect_answer(ex, "b", "answer from ok-b");
    assert_string_equal(ex->meta.stages.data, "empty:0.00:escalate,b:1.00:accept");
    assert_int_equal(ex->meta.attempts, 2);
    assert_float_equal(ex->meta.cost_usd, 8e-6 + 8e-5, 1e-12);
    ex_unref(ex);
}

static void test_agreement(void **state)
{
    struct exchange *ex = test_run_request(cfg, "agree", 0);

    (void)state;
    run(ex);
    /* the two answered alike: the stage accepts the first one's answer */
    expect_answer(ex, "twin1", "answer from twin");
    assert_string_equal(ex->meta.stages.data, "twin1:1.00:accept");
    assert_float_equal(ex->meta.cost_usd, 2 * 8e-6, 1e-12);
    ex_unref(ex);
    ex = test_run_request(cfg, "disagree", 0);
    run(ex);
    expect_answer(ex, "b", "answer from ok-b");
    assert_true(strncmp(ex->meta.stages.data, "a:0.50:escalate,", 16) == 0);
    ex_unref(ex);
}

/* max_cost ($0.0001) leaves no room for the dear stage (14 estimated
 * tokens at $10/M): it is skipped, and the vetoed answer is all there is
 * (an answer beats an error). */
static void test_budget_skips(void **state)
{
    struct exchange *ex = test_run_request(cfg, "budget", 0);

    (void)state;
    run(ex);
    assert_int_equal(ex->status, 200);
    assert_string_equal(ex->meta.model, "empty");
    assert_string_equal(ex->meta.stages.data, "empty:0.00:escalate,b:-:skip,empty:0.00:salvage");
    assert_int_equal(ex->meta.attempts, 1);
    ex_unref(ex);
}

/* The dead provider's breaker opens on its first failure; the next run
 * skips it without a call. */
static void test_breaker_skips(void **state)
{
    struct exchange *ex = test_run_request(cfg, "breaker", 0);

    (void)state;
    run(ex);
    expect_answer(ex, "a", "answer from ok-a");
    assert_int_equal(ex->meta.attempts, 2);
    ex_unref(ex);
    ex = test_run_request(cfg, "breaker", 0);
    run(ex);
    expect_answer(ex, "a", "answer from ok-a");
    assert_int_equal(ex->meta.attempts, 1);
    assert_true(strncmp(ex->meta.stages.data, "dead:-:skip,", 12) == 0);
    ex_unref(ex);
}

static void cancel_cb(struct loop *l, void *arg)
{
    UNUSED(l);
    cascade_cancel(arg);
}

static void abort_cb(struct loop *l, void *arg)
{
    UNUSED(l);
    UNUSED(arg);
    cascade_abort_all();
}

/* A client that leaves: the run ends at once (a 499 for the log, not the
 * provider's answer 1.5 s later), the slow call dropped. Shutdown: every
 * run ends with a 503. */
static void test_cancel_and_abort(void **state)
{
    struct exchange *ex = test_run_request(cfg, "slow", 0), *ex2;
    struct loop_timer t;

    (void)state;
    loop_timer_init(&t, cancel_cb, ex);
    loop_timer_start(loop, &t, 50000);
    run(ex);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->err.status, 499);
    assert_string_equal(ex->err.code, "client_closed");
    assert_int_equal(upstream_active(up), 0);
    ex_unref(ex);

    ex = test_run_request(cfg, "slow", 0);
    ex2 = test_run_request(cfg, "slow", 1);
    loop_timer_init(&t, abort_cb, NULL);
    loop_timer_start(loop, &t, 50000);
    cascade_start(loop, up, ex_ref(ex2));
    run(ex);
    assert_int_equal(ex->err.status, 503);
    assert_string_equal(ex->err.code, "shutting_down");
    assert_null(ex2->run);
    assert_int_equal(ex2->err.status, 503);
    ex_unref(ex);
    ex_unref(ex2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_model),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_fallback_streamed),
        cmocka_unit_test(test_all_fail),
        cmocka_unit_test(test_cascade_accepts_first),
        cmocka_unit_test(test_cascade_escalates),
        cmocka_unit_test(test_agreement),
        cmocka_unit_test(test_budget_skips),
        cmocka_unit_test(test_breaker_skips),
        cmocka_unit_test(test_cancel_and_abort),
    };

    alarm(180);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
