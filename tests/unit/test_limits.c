/* Unit tests for budgets under concurrency: what a request holds against its
 * key's budget (cost_route_estimate), the budget test, the in-memory
 * admission and settlement (limits.c), and reading the admission script's
 * reply. The Redis side runs in tests/integration/budget.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module itself, to reach local_admit and settle_cb. */
#include "../../src/limits.c"

#define EPS 1e-12

/* A model at $1 per token in and out (so costs read as token counts). */
static struct model dear = {.name = "dear", .input_per_mtok = 1e6, .output_per_mtok = 1e6};
static struct model cheap = {.name = "cheap", .input_per_mtok = 1e4, .output_per_mtok = 1e4};
static struct model judge = {.name = "judge", .input_per_mtok = 1e5, .output_per_mtok = 1e5};

/* A chat request of 40 prompt characters (10 tokens, + 8 per the estimate)
 * with max_tokens 30: 48 tokens on one model. */
static struct request_info req(void)
{
    struct request_info ri = {.ep = EP_CHAT, .n = 1, .max_tokens = 30, .prompt_chars = 40};

    return ri;
}

static void test_estimate_single_model(void **state)
{
    struct model *m[] = {&dear};
    struct stage st = {.models = m, .nmodels = 1};
    struct route rt = {.name = "r", .kind = ROUTE_SINGLE, .stages = &st, .nstages = 1};
    struct request_info ri = req();

    (void)state;
    assert_float_equal(cost_route_estimate(&rt, &ri), 48, EPS);
    ri.n = 3; /* three choices, three answers paid */
    assert_float_equal(cost_route_estimate(&rt, &ri), 3 * 48, EPS);
    /* Without max_tokens: the model's running mean, else 256 tokens. */
    ri.n = 1;
    ri.max_tokens = 0;
    assert_float_equal(cost_route_estimate(&rt, &ri), 18 + 256, EPS);
    dear.est_completion_tokens = 12.2;
    assert_float_equal(cost_route_estimate(&rt, &ri), 18 + 13, EPS);
    dear.est_completion_tokens = 0;
}

static void test_estimate_fallback_holds_the_dearest(void **state)
{
    struct model *m1[] = {&cheap}, *m2[] = {&dear};
    struct stage st[] = {{.models = m1, .nmodels = 1}, {.models = m2, .nmodels = 1}};
    struct route rt = {.name = "r", .kind = ROUTE_FALLBACK, .stages = st, .nstages = 2};
    struct request_info ri = req();

    (void)state;
    /* Only the model that answers is paid: the dearest of the two. */
    assert_float_equal(cost_route_estimate(&rt, &ri), 48, EPS);
}

static void test_estimate_cascade_holds_every_stage(void **state)
{
    struct model *m1[] = {&cheap}, *m2[] = {&cheap, &dear}, *m3[] = {&dear};
    struct stage st[] = {
        {.models = m1, .nmodels = 1, .scorer = SCORER_RULES, .threshold = 1},
        /* agreement: cheap answered in stage 1 and is not called again */
        {.models = m2, .nmodels = 2, .scorer = SCORER_AGREEMENT, .threshold = 1},
        {.models = m3, .nmodels = 1}, /* dear answered in stage 2 */
    };
    struct route rt = {.name = "r", .kind = ROUTE_CASCADE, .stages = st, .nstages = 3};
    struct request_info ri = req();

    (void)state;
    assert_float_equal(cost_route_estimate(&rt, &ri), 0.48 + 48 + 0, EPS);
    /* A judge's verdict is paid too: 8 tokens of answer (max_tokens wins). */
    st[0].scorer = SCORER_JUDGE;
    st[0].judge = &judge;
    assert_float_equal(cost_route_estimate(&rt, &ri), 0.48 + 4.8 + 48, EPS);
    /* Agreement over samples pays each sample. */
    st[0].scorer = SCORER_AGREEMENT;
    st[0].judge = NULL;
    st[0].samples = 3;
    assert_float_equal(cost_route_estimate(&rt, &ri), 3 * 0.48 + 48, EPS);
    /* The run never plans past max_cost, and neither does the hold. */
    rt.max_cost = 10;
    assert_float_equal(cost_route_estimate(&rt, &ri), 10, EPS);
}

static void test_budget_refuses(void **state)
{
    (void)state;
    assert_false(limits_budget_refuses(0, 100, 100, 100));       /* no budget */
    assert_false(limits_budget_refuses(1, 0.5, 0.25, 0.25));     /* fits exactly */
    assert_false(limits_budget_refuses(1, 0.1 + 0.2, 0.3, 0.4)); /* rounding forgiven */
    assert_true(limits_budget_refuses(1, 0.5, 0.25, 0.26));
    assert_true(limits_budget_refuses(1, 1, 0, 0));   /* spent: even a free request */
    assert_true(limits_budget_refuses(1, 0, 0, 1.5)); /* one request dearer than the budget */
}

/* The in-memory counters: holds add up while requests are in flight and
 * are released when they end, when the spend is added. */
static void test_local_admit_and_settle(void **state)
{
    struct client_key k = {.name = "k", .budget_usd = 1.0, .budget_period = BUDGET_TOTAL};
    time_t now = 1700000000;
    struct counters *c;
    const char *why;

    (void)state;
    c = local_get("k");
    local_roll(c, &k, now);
    for (int i = 0; i < 4; i++)
        assert_null(local_admit(c, &k, 10, 0.25));
    assert_float_equal(c->held, 1.0, EPS);
    why = local_admit(c, &k, 10, 0.25);
    assert_string_equal(why, "budget"); /* a fifth would not fit */
    assert_int_equal(c->requests, 4);

    /* One ends having cost less than it held: what it did not use is free. */
    {
        struct settle *s = xcalloc(1, sizeof(*s));

        s->name = xstrdup("k");
        snprintf(s->period, sizeof(s->period), "%s", c->period);
        s->minute = c->minute;
        s->cost = 0.1;
        s->hold = 0.25;
        {
            struct loop *l = loop_new(); /* it lends no Redis: the counters here */

            settle_cb(l, s);
            loop_free(l);
        }
    }
    assert_float_equal(c->spent, 0.1, EPS);
    assert_float_equal(c->held, 0.75, EPS);
    assert_null(local_admit(c, &k, 10, 0.15));
    assert_string_equal(local_admit(c, &k, 10, 0.01), "budget");
    limits_free_all();
}

static void test_local_admit_rate_limits_first(void **state)
{
    struct client_key k = {.name = "r", .rpm = 2, .tpm = 100, .budget_usd = 1.0};
    struct counters *c;

    (void)state;
    c = local_get("r");
    local_roll(c, &k, 1700000000);
    assert_null(local_admit(c, &k, 60, 0.1));
    assert_null(local_admit(c, &k, 60, 0.1));
    assert_string_equal(local_admit(c, &k, 1, 0.1), "rpm");
    k.rpm = 0;
    assert_string_equal(local_admit(c, &k, 1, 0.1), "tpm");
    assert_float_equal(c->held, 0.2, EPS); /* refused requests hold nothing */
    limits_free_all();
}

/* Reading the admission script's reply, and refusing any other shape. */
static struct redisReply *str(const char *s)
{
    struct redisReply *r = xcalloc(1, sizeof(*r));

    r->type = REDIS_REPLY_STRING;
    r->str = xstrdup(s);
    r->len = strlen(s);
    return r;
}

static struct redisReply *num(long long v)
{
    struct redisReply *r = xcalloc(1, sizeof(*r));

    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static struct redisReply *arr(size_t n, struct redisReply **el)
{
    struct redisReply *r = xcalloc(1, sizeof(*r));

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = xcalloc(n, sizeof(*el));
    memcpy(r->element, el, n * sizeof(*el));
    return r;
}

static void reply_free(struct redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++)
        reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void test_read_admit(void **state)
{
    struct admit_reply ar;
    struct redisReply *r;

    (void)state;
    r = arr(5, (struct redisReply *[]){str(""), num(3), num(120), str("0.25"), str("1e-05")});
    assert_int_equal(limits_read_admit(r, &ar), 0);
    assert_null(ar.why);
    assert_int_equal(ar.requests, 3);
    assert_int_equal(ar.tokens, 120);
    assert_float_equal(ar.spent, 0.25, EPS);
    assert_float_equal(ar.held, 1e-5, EPS);
    reply_free(r);

    r = arr(5, (struct redisReply *[]){str("budget"), num(0), num(0), str("0.5"), str("0")});
    assert_int_equal(limits_read_admit(r, &ar), 0);
    assert_string_equal(ar.why, "budget");
    reply_free(r);

    /* Anything else fails open: an unknown limit, a number that is not
     * one, the old four-element reply of an earlier version. */
    r = arr(5, (struct redisReply *[]){str("nope"), num(0), num(0), str("0"), str("0")});
    assert_int_equal(limits_read_admit(r, &ar), -1);
    reply_free(r);
    r = arr(5, (struct redisReply *[]){str(""), num(0), num(0), str("0.5x"), str("0")});
    assert_int_equal(limits_read_admit(r, &ar), -1);
    reply_free(r);
    r = arr(5, (struct redisReply *[]){str(""), num(0), num(0), str("0"), str("nan")});
    assert_int_equal(limits_read_admit(r, &ar), -1);
    reply_free(r);
    r = arr(5, (struct redisReply *[]){str(""), str("1"), num(0), str("0"), str("0")});
    assert_int_equal(limits_read_admit(r, &ar), -1);
    reply_free(r);
    r = arr(4, (struct redisReply *[]){str(""), num(0), num(0), str("0")});
    assert_int_equal(limits_read_admit(r, &ar), -1);
    reply_free(r);
    assert_int_equal(limits_read_admit(NULL, &ar), -1);
}

/* ---- the admission phase on a clock the test sets (limits_set_clock) ---- */

static time_t fake_now;
static struct loop *test_loop; /* the loop the requests run on */

static time_t fake_clock(void)
{
    return fake_now;
}

static int admitted;

/* The driver's part (phase.c): count what the phase said, drop the loop's
 * reference; at the last unref, the phase's on_end hook settles. */
static void resume_cb(struct exchange *ex, enum phase_result r)
{
    assert_int_not_equal(r, PHASE_AGAIN);
    if (r == PHASE_NEXT)
        admitted++;
    ex_unref(ex);
}

static void settle_end_cb(struct exchange *ex)
{
    limits_settle(ex);
}

static const struct ex_driver test_driver = {resume_cb, NULL, settle_end_cb};

/* A request of 48 estimated tokens ($48 at `dear`'s prices) for key k,
 * admitted or refused by the admission phase (limits_run, in memory: the
 * loop lends no Redis, so it never says AGAIN); the caller keeps one
 * reference to read what it says and ends the request with end(). */
static struct exchange *ask(const struct client_key *k, const struct route *rt)
{
    struct exchange *ex = ex_new(NULL, 1024);

    ex->key = k;
    ex->route = rt;
    ex->ri = req();
    ex->driver = &test_driver;
    ex->loop = test_loop;
    resume_cb(ex_ref(ex), limits_run(ex));
    return ex;
}

static void stop_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop_stop(loop);
}

/* The request ends having cost usd: its settlement runs on the loop. */
static void end(struct exchange *ex, double usd)
{
    ex->meta.cost_usd = usd;
    ex->meta.prompt_tokens = 18;
    ex->meta.completion_tokens = 30;
    ex_unref(ex);
    loop_post(test_loop, stop_cb, NULL);
    loop_run(test_loop);
}

static int clock_setup(void **state)
{
    (void)state;
    fake_now = 1699999980 + 15; /* 2023-11-14 22:13:15 UTC */
    limits_set_clock(fake_clock);
    test_loop = loop_new();
    admitted = 0;
    return 0;
}

static int clock_teardown(void **state)
{
    (void)state;
    limits_set_clock(NULL);
    limits_free_all();
    loop_free(test_loop);
    test_loop = NULL;
    return 0;
}

/* rpm: two requests a minute; the third waits for the next minute, and
 * the headers' figures say how long. */
static void test_minute_window(void **state)
{
    struct client_key k = {.name = "minute", .rpm = 2};
    struct model *m[] = {&dear};
    struct stage st = {.models = m, .nmodels = 1};
    struct route rt = {.name = "r", .kind = ROUTE_SINGLE, .stages = &st, .nstages = 1};
    struct exchange *ex;

    (void)state;
    ex = ask(&k, &rt);
    assert_int_equal(admitted, 1);
    assert_int_equal(ex->limit.remaining_requests, 1);
    assert_int_equal(ex->limit.reset_ms, 45000);
    end(ex, 0);
    fake_now += 30;
    ex = ask(&k, &rt);
    assert_int_equal(admitted, 2);
    assert_int_equal(ex->limit.remaining_requests, 0);
    end(ex, 0);
    fake_now += 14; /* the minute's last second */
    ex = ask(&k, &rt);
    assert_int_equal(admitted, 2);
    assert_int_equal(ex->status, 429);
    assert_string_equal(ex->err.code, "rate_limit_exceeded");
    assert_string_equal(ex->limit.exceeded, "rpm");
    assert_int_equal(ex->retry_after_s, 1);
    end(ex, 0);
    fake_now += 1; /* the next minute */
    ex = ask(&k, &rt);
    assert_int_equal(admitted, 3);
    assert_int_equal(ex->limit.remaining_requests, 1);
    assert_int_equal(ex->limit.reset_ms, 60000);
    end(ex, 0);
}

/* tpm: the tokens reserved at admission are settled to what was used, in
 * the minute the request was admitted in. */
static void test_token_minute(void **state)
{
    struct client_key k = {.name = "tokens", .tpm = 100};
    struct model *m[] = {&dear};
    struct stage st = {.models = m, .nmodels = 1};
    struct route rt = {.name = "r", .kind = ROUTE_SINGLE, .stages = &st, .nstages = 1};
    struct exchange *a, *b;

    (void)state;
    a = ask(&k, &rt); /* reserves 48 */
    assert_int_equal(a->limit.remaining_tokens, 52);
    b = ask(&k, &rt); /* 96 */
    assert_int_equal(b->limit.remaining_tokens, 4);
    a->meta.completion_tokens = 2; /* used 20 of its 48 */
    a->meta.prompt_tokens = 18;
    ex_unref(a);
    loop_post(test_loop, stop_cb, NULL);
    loop_run(test_loop);
    end(b, 0);        /* used all 48 */
    a = ask(&k, &rt); /* 20 + 48 + 48 */
    assert_int_equal(admitted, 3);
    end(a, 0);
    a = ask(&k, &rt);
    assert_string_equal(a->limit.exceeded, "tpm");
    end(a, 0);
    fake_now += 60;
    a = ask(&k, &rt);
    assert_int_equal(admitted, 4);
    assert_int_equal(a->limit.remaining_tokens, 52);
    end(a, 0);
}

/* A daily budget: spent, it refuses until midnight UTC, then starts over;
 * what is in flight is held against it. */
static void test_budget_day(void **state)
{
    struct client_key k = {.name = "daily", .budget_usd = 100, .budget_period = BUDGET_DAY};
    struct model *m[] = {&dear};
    struct stage st = {.models = m, .nmodels = 1};
    struct route rt = {.name = "r", .kind = ROUTE_SINGLE, .stages = &st, .nstages = 1};
    struct exchange *a, *a2, *b;

    (void)state;
    fake_now = 1700006400 - 120; /* two minutes to midnight, 2023-11-15 */
    a = ask(&k, &rt);            /* holds 48 */
    assert_float_equal(a->limit_hold_usd, 48, EPS);
    b = ask(&k, &rt); /* 96 held: a third would not fit */
    a2 = ask(&k, &rt);
    assert_int_equal(admitted, 2);
    assert_string_equal(a2->err.code, "insufficient_quota");
    assert_non_null(strstr(a2->err.message, "of its budget of $100 for this day, $96 is spent or "
                                            "held by requests in flight, and this request may "
                                            "cost $48."));
    end(a2, 0);
    end(a, 60); /* it cost more than it held */
    end(b, 40); /* spent: 100 */
    a = ask(&k, &rt);
    assert_int_equal(a->status, 429);
    assert_string_equal(a->err.code, "insufficient_quota");
    assert_non_null(strstr(a->err.message, "has spent its budget of $100 for this day"));
    end(a, 0);
    fake_now += 119; /* still the same day */
    end(ask(&k, &rt), 0);
    assert_int_equal(admitted, 2);
    fake_now += 1; /* midnight */
    a = ask(&k, &rt);
    assert_int_equal(admitted, 3);
    assert_string_equal(a->limit_period, "2023-11-15");
    assert_float_equal(a->limit.spent_usd, 0, EPS);
    end(a, 0);
}

/* A monthly budget rolls over on the first of the month; a lifetime one
 * never does. */
static void test_budget_month_and_total(void **state)
{
    struct client_key mk = {.name = "monthly", .budget_usd = 50, .budget_period = BUDGET_MONTH};
    struct client_key tk = {.name = "lifetime", .budget_usd = 50, .budget_period = BUDGET_TOTAL};
    struct model *m[] = {&dear};
    struct stage st = {.models = m, .nmodels = 1};
    struct route rt = {.name = "r", .kind = ROUTE_SINGLE, .stages = &st, .nstages = 1};

    (void)state;
    fake_now = 1701388800 - 86400; /* 2023-11-30 */
    end(ask(&mk, &rt), 50);
    end(ask(&tk, &rt), 50);
    assert_int_equal(admitted, 2);
    end(ask(&mk, &rt), 0);
    end(ask(&tk, &rt), 0);
    assert_int_equal(admitted, 2);
    fake_now += 86400; /* 2023-12-01 */
    end(ask(&mk, &rt), 0);
    assert_int_equal(admitted, 3);
    end(ask(&tk, &rt), 0);
    assert_int_equal(admitted, 3);
    fake_now += 400 * 86400;
    end(ask(&tk, &rt), 0);
    assert_int_equal(admitted, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_single_model),
        cmocka_unit_test(test_estimate_fallback_holds_the_dearest),
        cmocka_unit_test(test_estimate_cascade_holds_every_stage),
        cmocka_unit_test(test_budget_refuses),
        cmocka_unit_test(test_local_admit_and_settle),
        cmocka_unit_test(test_local_admit_rate_limits_first),
        cmocka_unit_test(test_read_admit),
        cmocka_unit_test_setup_teardown(test_minute_window, clock_setup, clock_teardown),
        cmocka_unit_test_setup_teardown(test_token_minute, clock_setup, clock_teardown),
        cmocka_unit_test_setup_teardown(test_budget_day, clock_setup, clock_teardown),
        cmocka_unit_test_setup_teardown(test_budget_month_and_total, clock_setup, clock_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
