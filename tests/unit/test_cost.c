/* Unit tests for cost.c: what a call cost from its usage and the price
 * table, with a provider's prompt cache counted the OpenAI way (cached
 * tokens inside prompt_tokens) or the Anthropic way (outside input_tokens,
 * translated by provider_anthropic.c), so that cached tokens are neither
 * lost nor billed as full input (LiteLLM #31069, #11789); what a call and a
 * stage are expected to cost before they are made (what the cascade's
 * max_cost and the budgets' holds are checked against), and the
 * x-sluice-cost header's number. cost_route_estimate, the hold of a whole
 * route, is tested with the budgets in test_limits.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../src/cost.h"
#include "../../src/provider.h"

#define EPS 1e-12

static void test_cost_usd(void **state)
{
    struct model m = {.name = "m", .input_per_mtok = 2.5, .output_per_mtok = 10.0};

    (void)state;
    /* 1000 prompt tokens at $2.50/M + 500 completion at $10/M */
    assert_float_equal(cost_usd(&m, 1000, 500), 0.0075, EPS);
    assert_float_equal(cost_usd(&m, 1000000, 0), 2.5, EPS);
    assert_float_equal(cost_usd(&m, 0, 1000000), 10.0, EPS);
    /* a provider's nonsense usage never makes a negative cost */
    assert_true(cost_usd(&m, -5, 0) == 0.0);
    assert_float_equal(cost_usd(&m, 1000, -7), 0.0025, EPS);
}

static void test_tokens_from_chars(void **state)
{
    (void)state;
    assert_int_equal(cost_tokens(0), 0);
    assert_int_equal(cost_tokens(1), 1);
    assert_int_equal(cost_tokens(4), 1);
    assert_int_equal(cost_tokens(5), 2);
    assert_int_equal(cost_tokens(400), 100);
}

static void test_estimate(void **state)
{
    struct model m = {.name = "m", .input_per_mtok = 2.5, .output_per_mtok = 10.0};

    (void)state;
    /* 400 chars ~ 100 tokens + 8 overhead; 50 completion tokens */
    assert_float_equal(cost_estimate(&m, 400, 50, 256), (108 * 2.5 + 50 * 10.0) / 1e6, EPS);
    /* no max_tokens: the default completion */
    assert_float_equal(cost_estimate(&m, 400, 0, 256), (108 * 2.5 + 256 * 10.0) / 1e6, EPS);
}

/* $1 per token in and out, so costs read as token counts. */
static struct request_info req(long max_tokens, long n)
{
    struct request_info ri = {.ep = EP_CHAT, .n = n, .max_tokens = max_tokens, .prompt_chars = 40};

    return ri;
}

static void test_expected(void **state)
{
    struct model m = {.name = "m", .input_per_mtok = 1e6, .output_per_mtok = 1e6};
    struct request_info ri = req(30, 1);

    (void)state;
    assert_float_equal(cost_expected(&m, &ri, 0), 10 + 8 + 30, EPS);
    ri.n = 4; /* four choices are four answers */
    assert_float_equal(cost_expected(&m, &ri, 0), 4 * 48, EPS);
    ri = req(0, 1);
    /* no max_tokens: the caller's completion, else the model's running
     * mean (rounded up), else COST_DEFAULT_COMPLETION */
    assert_float_equal(cost_expected(&m, &ri, 8), 18 + 8, EPS);
    assert_float_equal(cost_expected(&m, &ri, 0), 18 + COST_DEFAULT_COMPLETION, EPS);
    m.est_completion_tokens = 99.2;
    assert_float_equal(cost_expected(&m, &ri, 0), 18 + 100, EPS);
}

static int paid_cb(const void *ctx, const struct model *m)
{
    return m == ctx;
}

static void test_stage_estimate(void **state)
{
    struct model a = {.name = "a", .input_per_mtok = 1e6, .output_per_mtok = 1e6};
    struct model b = {.name = "b", .input_per_mtok = 2e6, .output_per_mtok = 2e6};
    struct model judge = {.name = "j", .input_per_mtok = 1e5, .output_per_mtok = 1e5};
    struct model *two[] = {&a, &b};
    struct stage st = {.models = two, .nmodels = 2, .scorer = SCORER_AGREEMENT};
    struct request_info ri = req(30, 1);

    (void)state;
    assert_float_equal(cost_stage_estimate(&st, &ri, NULL, NULL), 48 + 96, EPS);
    /* a model the run already paid for is not called again */
    assert_float_equal(cost_stage_estimate(&st, &ri, paid_cb, &a), 96, EPS);
    /* samples: each is a call */
    st.nmodels = 1;
    st.samples = 3;
    assert_float_equal(cost_stage_estimate(&st, &ri, NULL, NULL), 3 * 48, EPS);
    /* a judge's verdict: its own call, max_tokens' completion */
    st.samples = 0;
    st.scorer = SCORER_JUDGE;
    st.judge = &judge;
    assert_float_equal(cost_stage_estimate(&st, &ri, NULL, NULL), 48 + 4.8, EPS);
    /* without max_tokens the judge answers COST_JUDGE_COMPLETION tokens */
    ri = req(0, 1);
    assert_float_equal(cost_stage_estimate(&st, &ri, paid_cb, &a),
                       (18 + COST_JUDGE_COMPLETION) * 0.1, EPS);
}

static void test_format(void **state)
{
    char s[48];

    (void)state;
    cost_format(0.0075, s, sizeof(s));
    assert_string_equal(s, "0.0075");
    cost_format(0.0, s, sizeof(s));
    assert_string_equal(s, "0.0");
    cost_format(0.00000015, s, sizeof(s));
    assert_string_equal(s, "0.00000015");
    cost_format(1234.5, s, sizeof(s));
    assert_string_equal(s, "1234.5");
    cost_format(3, s, sizeof(s));
    assert_string_equal(s, "3.0");
    /* twelve decimals: a token at a cent per million still shows */
    cost_format(1e-8, s, sizeof(s));
    assert_string_equal(s, "0.00000001");
    cost_format(4e-13, s, sizeof(s)); /* under half a picodollar */
    assert_string_equal(s, "0.0");
    cost_format(6e-13, s, sizeof(s));
    assert_string_equal(s, "0.000000000001");
    /* never an exponent, a minus sign or "nan" in the header */
    cost_format(-1, s, sizeof(s));
    assert_string_equal(s, "0.0");
    cost_format(NAN, s, sizeof(s));
    assert_string_equal(s, "0.0");
    cost_format(1e30, s, sizeof(s));
    assert_string_equal(s, "1000000.0");
    cost_format(1234.5, s, 4); /* cut, still terminated */
    assert_string_equal(s, "123");
}

static void assert_usd(double got, double want)
{
    if (fabs(got - want) > 1e-12)
        fail_msg("cost %.15g, want %.15g", got, want);
}

static void test_plain(void **state)
{
    struct model m = {.input_per_mtok = 2.5,
                      .output_per_mtok = 10,
                      .cache_read_per_mtok = -1,
                      .cache_write_per_mtok = -1};
    char s[32];

    UNUSED(state);
    assert_usd(cost_usd(&m, 1000, 100), (1000 * 2.5 + 100 * 10) / 1e6);
    assert_usd(cost_usd(&m, -5, -1), 0);
    /* Unset cache prices are the input price: caching changes nothing. */
    assert_usd(cost_usd_cached(&m, 1000, 800, 100, 100), cost_usd(&m, 1000, 100));
    cost_format(0.000261, s, sizeof(s));
    assert_string_equal(s, "0.000261");
}

/* An OpenAI answer: prompt_tokens includes prompt_tokens_details.cached_tokens. */
static void test_openai_usage(void **state)
{
    static const char body[] =
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"message\":{\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2000,\"completion_tokens\":100,"
        "\"total_tokens\":2100,\"prompt_tokens_details\":{\"cached_tokens\":1536,"
        "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";
    static const char twice[] = "{\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":"
                                "{\"cached_tokens\":4}},\"usage\":{\"prompt_tokens\":7}}";
    struct model m = {.input_per_mtok = 2.5,
                      .output_per_mtok = 10,
                      .cache_read_per_mtok = 1.25,
                      .cache_write_per_mtok = -1};
    struct reply r;

    UNUSED(state);
    reply_init(&r);
    assert_int_equal(provider_parse_response(EP_CHAT, body, sizeof(body) - 1, &r), 0);
    assert_int_equal(r.prompt_tokens, 2000);
    assert_int_equal(r.cached_tokens, 1536);
    assert_int_equal(r.cache_write_tokens, 0);
    assert_usd(cost_usd_cached(&m, r.prompt_tokens, r.cached_tokens, r.cache_write_tokens,
                               r.completion_tokens),
               (464 * 2.5 + 1536 * 1.25 + 100 * 10) / 1e6);
    reply_free(&r);

    /* A usage without details has no cached tokens; a later usage replaces
     * an earlier one whole. */
    reply_init(&r);
    assert_int_equal(provider_parse_response(EP_CHAT, twice, sizeof(twice) - 1, &r), 0);
    assert_int_equal(r.prompt_tokens, 7);
    assert_int_equal(r.cached_tokens, 0);
    reply_free(&r);
}

/* An Anthropic answer: input_tokens excludes the cache reads and writes,
 * which Anthropic bills at 0.1x and 1.25x. */
static void test_anthropic_usage(void **state)
{
    static const char msg[] =
        "{\"id\":\"m\",\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
        "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":50,"
        "\"cache_creation_input_tokens\":2000,\"cache_read_input_tokens\":30000,"
        "\"output_tokens\":400}}";
    struct model m = {.input_per_mtok = 3,
                      .output_per_mtok = 15,
                      .cache_read_per_mtok = 0.3,
                      .cache_write_per_mtok = 3.75};
    struct reply r;
    struct buf b;
    double want = (50 * 3 + 2000 * 3.75 + 30000 * 0.3 + 400 * 15) / 1e6;

    UNUSED(state);
    buf_init(&b, 1 << 20);
    assert_int_equal(anthropic_answer(msg, sizeof(msg) - 1, 0, &b), 0);
    reply_init(&r);
    assert_int_equal(provider_parse_response(EP_CHAT, b.data, b.len, &r), 0);
    /* Reported the OpenAI way... */
    assert_int_equal(r.prompt_tokens, 32050);
    assert_int_equal(r.cached_tokens, 30000);
    assert_int_equal(r.cache_write_tokens, 2000);
    /* ...and priced as Anthropic bills it: neither lost nor billed twice. */
    assert_usd(cost_usd_cached(&m, r.prompt_tokens, r.cached_tokens, r.cache_write_tokens,
                               r.completion_tokens),
               want);
    assert_true(want < cost_usd(&m, 32050, 400)); /* not all as full input */
    assert_true(want > cost_usd(&m, 50, 400));    /* nor the cache forgotten */
    reply_free(&r);
    buf_free(&b);
}

static void test_odd_usage(void **state)
{
    struct model m = {.input_per_mtok = 1,
                      .output_per_mtok = 2,
                      .cache_read_per_mtok = 0.5,
                      .cache_write_per_mtok = 4};

    UNUSED(state);
    /* More cached than prompt: priced as if the prompt were their sum. */
    assert_usd(cost_usd_cached(&m, 10, 30, 5, 0), (30 * 0.5 + 5 * 4) / 1e6);
    /* Negative counts are 0; huge ones do not overflow. */
    assert_usd(cost_usd_cached(&m, -1, -2, -3, -4), 0);
    assert_true(isfinite(cost_usd_cached(&m, 1L << 62, 1L << 62, 1L << 62, 1L << 62)));
    /* Free cache reads. */
    m.cache_read_per_mtok = 0;
    assert_usd(cost_usd_cached(&m, 100, 100, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_usd),        cmocka_unit_test(test_tokens_from_chars),
        cmocka_unit_test(test_estimate),        cmocka_unit_test(test_expected),
        cmocka_unit_test(test_stage_estimate),  cmocka_unit_test(test_format),
        cmocka_unit_test(test_plain),           cmocka_unit_test(test_openai_usage),
        cmocka_unit_test(test_anthropic_usage), cmocka_unit_test(test_odd_usage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
