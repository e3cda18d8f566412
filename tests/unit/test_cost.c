/* Unit tests for cost.c: what a call cost from its usage and the price
 * table, what a call and a stage are expected to cost before they are made
 * (what the cascade's max_cost and the budgets' holds are checked against),
 * and the x-sluice-cost header's number. cost_route_estimate, the hold of a
 * whole route, is tested with the budgets in test_limits.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../src/cost.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_usd),       cmocka_unit_test(test_tokens_from_chars),
        cmocka_unit_test(test_estimate),       cmocka_unit_test(test_expected),
        cmocka_unit_test(test_stage_estimate), cmocka_unit_test(test_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
