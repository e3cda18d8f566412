/* Unit tests for the circuit breakers (breaker.c), on a clock the test
 * sets (breaker_set_clock), so no test sleeps: a streak of failures opens
 * a breaker, the cooldown lets exactly one probe through (half-open), the
 * probe's outcome closes or reopens it, the error rate opens it only over
 * its window and with enough calls, and the state shows in /readyz's
 * report and in the sluice_breaker_state gauge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/breaker.h"
#include "../../src/metrics.h"

#define SEC 1000000ull

static uint64_t fake_now = 1000 * SEC;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* A provider with the config's defaults but for what a test changes. */
static struct provider provider(const char *name)
{
    struct provider p = {
        .name = (char *)name,
        .breaker_failures = 5,
        .breaker_error_rate = 0.5,
        .breaker_min_requests = 20,
        .breaker_window_s = 60,
        .breaker_cooldown_s = 30,
    };

    return p;
}

/* The state breaker_report gives for name ("" when it has none). */
static const char *reported(const char *name)
{
    static char state[32];
    json_t *o = breaker_report();
    const char *s = json_string_value(json_object_get(o, name));

    snprintf(state, sizeof(state), "%s", s ? s : "");
    json_decref(o);
    return state;
}

static int setup(void **state)
{
    (void)state;
    fake_now = 1000 * SEC;
    breaker_set_clock(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    breaker_free_all();
    breaker_set_clock(NULL);
    return 0;
}

static void fail_calls(const struct provider *p, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(breaker_allow(p));
        breaker_record(p, 0);
    }
}

static void test_streak_opens(void **state)
{
    struct provider p = provider("streak");

    (void)state;
    assert_true(breaker_peek(&p));
    fail_calls(&p, 4);
    assert_string_equal(reported("streak"), "closed");
    /* a success in between starts the streak over */
    assert_true(breaker_allow(&p));
    breaker_record(&p, 1);
    fail_calls(&p, 4);
    assert_string_equal(reported("streak"), "closed");
    fail_calls(&p, 1);
    assert_string_equal(reported("streak"), "open");
    assert_false(breaker_peek(&p));
    assert_false(breaker_allow(&p));
}

static void test_cooldown_one_probe(void **state)
{
    struct provider p = provider("probe");

    (void)state;
    fail_calls(&p, 5);
    fake_now += 29 * SEC;
    assert_false(breaker_peek(&p));
    assert_false(breaker_allow(&p));
    assert_string_equal(reported("probe"), "open");
    fake_now += 1 * SEC;
    assert_true(breaker_peek(&p)); /* peek changes nothing */
    assert_string_equal(reported("probe"), "open");
    assert_true(breaker_allow(&p)); /* the probe */
    assert_string_equal(reported("probe"), "half-open");
    assert_false(breaker_peek(&p));
    assert_false(breaker_allow(&p)); /* one probe at a time */
    assert_false(breaker_allow(&p));
    breaker_record(&p, 1);
    assert_string_equal(reported("probe"), "closed");
    assert_true(breaker_allow(&p));
    breaker_record(&p, 1);
}

static void test_failed_probe_reopens(void **state)
{
    struct provider p = provider("reprobe");

    (void)state;
    fail_calls(&p, 5);
    fake_now += 30 * SEC;
    assert_true(breaker_allow(&p));
    breaker_record(&p, 0);
    assert_string_equal(reported("reprobe"), "open");
    /* the cooldown starts again from the failed probe */
    fake_now += 29 * SEC;
    assert_false(breaker_allow(&p));
    fake_now += 1 * SEC;
    assert_true(breaker_allow(&p));
    assert_string_equal(reported("reprobe"), "half-open");
}

static void test_error_rate_in_window(void **state)
{
    struct provider p = provider("rate");

    (void)state;
    p.breaker_failures = 0; /* only the rate opens it */
    /* 10 calls, every other one failing: half fail, but too few calls */
    for (int i = 0; i < 10; i++) {
        assert_true(breaker_allow(&p));
        breaker_record(&p, i % 2);
    }
    assert_string_equal(reported("rate"), "closed");
    /* 9 more at the same rate: 19 calls, still under min_requests */
    for (int i = 0; i < 9; i++) {
        assert_true(breaker_allow(&p));
        breaker_record(&p, i % 2 == 0);
    }
    assert_string_equal(reported("rate"), "closed");
    /* the 20th fails: 10 of 20 */
    assert_true(breaker_allow(&p));
    breaker_record(&p, 0);
    assert_string_equal(reported("rate"), "open");
}

static void test_window_forgets(void **state)
{
    struct provider p = provider("window");

    (void)state;
    p.breaker_failures = 0;
    for (int i = 0; i < 19; i++) {
        assert_true(breaker_allow(&p));
        breaker_record(&p, 0); /* 19 failures: one call short */
    }
    assert_string_equal(reported("window"), "closed");
    /* past the window they no longer count */
    fake_now += 61 * SEC;
    for (int i = 0; i < 19; i++) {
        assert_true(breaker_allow(&p));
        breaker_record(&p, 0);
    }
    assert_string_equal(reported("window"), "closed");
    /* within it they do: the 20th failure of this window opens it */
    fake_now += 30 * SEC;
    breaker_record(&p, 0);
    assert_string_equal(reported("window"), "open");
}

static void test_rate_under_threshold(void **state)
{
    struct provider p = provider("healthy");

    (void)state;
    p.breaker_failures = 0;
    /* one failure in four, many times over: never opens */
    for (int i = 0; i < 400; i++) {
        assert_true(breaker_allow(&p));
        breaker_record(&p, i % 4 != 0);
        fake_now += SEC / 10;
    }
    assert_string_equal(reported("healthy"), "closed");
}

/* Breakers are kept by provider name: a reload's new struct provider of
 * the same name finds the open breaker. */
static void test_kept_by_name(void **state)
{
    struct provider a = provider("same"), b = provider("same"), other = provider("other");

    (void)state;
    fail_calls(&a, 5);
    assert_false(breaker_allow(&b));
    assert_true(breaker_allow(&other));
    breaker_record(&other, 1);
    assert_string_equal(reported("other"), "closed");
}

static void test_state_gauge(void **state)
{
    struct provider p = provider("gauged");
    char *text;
    size_t len;

    (void)state;
    metrics_init();
    fail_calls(&p, 5);
    text = metrics_render(&len);
    assert_non_null(strstr(text, "provider=\"gauged\"} 2"));
    free(text);
    fake_now += 30 * SEC;
    assert_true(breaker_allow(&p));
    text = metrics_render(&len);
    assert_non_null(strstr(text, "provider=\"gauged\"} 1"));
    free(text);
    breaker_record(&p, 1);
    text = metrics_render(&len);
    assert_non_null(strstr(text, "provider=\"gauged\"} 0"));
    free(text);
    metrics_free();
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_streak_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cooldown_one_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_probe_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_rate_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_forgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_under_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_gauge, setup, teardown),
        cmocka_unit_test(test_state_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
