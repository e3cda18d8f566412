/* Unit tests for phase.c, the driver of the phase table: phases run in
 * order while they say NEXT; DONE ends the request (the loop's reference is
 * dropped); AGAIN leaves it with the phase until ex_resume; the route's
 * answer runs the earlier phases' on_answer hooks last first, once, and a
 * request that ends without one tells them so; cancel reaches the phase
 * that holds the request and nothing after it is done; the on_end hooks
 * run once, in table order, at the last unref. Runs a table of its own
 * (the driver's `table`), then checks the real one's order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../src/phase.c"

/* What the fake phases did, in order: "run:a", "answer:b(7)", ... */
static char trail[512];
static enum phase_result said[3]; /* what each fake phase's run says */

static void note(const char *what, int i, long n)
{
    size_t len = strlen(trail);

    snprintf(trail + len, sizeof(trail) - len, "%s%s:%c", len ? " " : "", what, 'a' + i);
    if (n >= 0) {
        len = strlen(trail);
        snprintf(trail + len, sizeof(trail) - len, "(%ld)", n);
    }
}

#define FAKE(I)                                                                                    \
    __attribute__((unused)) static enum phase_result run_##I(struct exchange *ex)                  \
    {                                                                                              \
        (void)ex;                                                                                  \
        note("run", I, -1);                                                                        \
        return said[I];                                                                            \
    }                                                                                              \
    __attribute__((unused)) static void cancel_##I(struct exchange *ex)                            \
    {                                                                                              \
        note("cancel", I, -1);                                                                     \
        ex_resume(ex, PHASE_DONE);                                                                 \
    }                                                                                              \
    __attribute__((unused)) static void answer_##I(struct exchange *ex, const char *body,          \
                                                   size_t len)                                     \
    {                                                                                              \
        (void)ex;                                                                                  \
        note("answer", I, body ? (long)len : 0);                                                   \
    }                                                                                              \
    __attribute__((unused)) static void end_##I(struct exchange *ex)                               \
    {                                                                                              \
        (void)ex;                                                                                  \
        note("end", I, -1);                                                                        \
    }

FAKE(0)
FAKE(1)
FAKE(2)

/* a: watches only (no run); b: may wait; c: the route. */
static const struct phase fake[] = {
    {"a", NULL, NULL, answer_0, end_0},
    {"b", run_1, cancel_1, answer_1, end_1},
    {"c", run_2, cancel_2, NULL, end_2},
};

static int setup(void **state)
{
    (void)state;
    table = fake;
    nphases = (int)ARRAY_LEN(fake);
    trail[0] = '\0';
    said[1] = PHASE_NEXT;
    said[2] = PHASE_DONE;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    table = phases;
    nphases = (int)ARRAY_LEN(phases);
    return 0;
}

/* A new request as the worker makes it (the driver set), and the loop's
 * reference handed to phase_start. */
static struct exchange *start(void)
{
    struct exchange *ex = ex_new(NULL, 0);

    ex->driver = &phase_driver;
    phase_start(NULL, ex_ref(ex));
    return ex;
}

/* b says NEXT, c answers at once without a body: the hooks before c hear
 * "no answer", last first, and the loop's reference is gone. */
static void test_next_then_done(void **state)
{
    struct exchange *ex;

    (void)state;
    ex = start();
    assert_string_equal(trail, "run:b run:c answer:b(0) answer:a(0)");
    assert_int_equal(ex->refs, 1);
    assert_int_equal(ex->phase_run, 0);
    trail[0] = '\0';
    ex_unref(ex);
    assert_string_equal(trail, "end:a end:b end:c");
}

/* b says DONE (a hit, a refusal): c never runs; only a's hook runs. */
static void test_done_early(void **state)
{
    struct exchange *ex;

    (void)state;
    said[1] = PHASE_DONE;
    ex = start();
    assert_string_equal(trail, "run:b answer:a(0)");
    assert_int_equal(ex->refs, 1);
    ex_unref(ex);
}

/* b waits (AGAIN), resumes with NEXT; c waits, hands its answer (hooks
 * last first, once: a second answer and the end do not repeat them), and
 * resumes with DONE. */
static void test_again_and_answer(void **state)
{
    struct exchange *ex;

    (void)state;
    said[1] = PHASE_AGAIN;
    said[2] = PHASE_AGAIN;
    ex = start();
    assert_string_equal(trail, "run:b");
    assert_int_equal(ex->refs, 2); /* b holds the loop's reference */
    ex_resume(ex, PHASE_NEXT);
    assert_string_equal(trail, "run:b run:c");
    ex_answer(ex, "{\"x\":1}", 7);
    ex_answer(ex, "{}", 2);
    assert_string_equal(trail, "run:b run:c answer:b(7) answer:a(7)");
    ex_resume(ex, PHASE_DONE);
    assert_string_equal(trail, "run:b run:c answer:b(7) answer:a(7)");
    assert_int_equal(ex->refs, 1);
    ex_unref(ex);
}

/* A cancel reaches the phase that holds the request; once it is done, a
 * cancel does nothing. */
static void test_cancel(void **state)
{
    struct exchange *ex;

    (void)state;
    said[1] = PHASE_AGAIN;
    ex = start();
    phase_cancel(ex);
    assert_string_equal(trail, "run:b cancel:b answer:a(0)");
    assert_int_equal(ex->refs, 1);
    phase_cancel(ex);
    assert_string_equal(trail, "run:b cancel:b answer:a(0)");
    ex_unref(ex);
}

/* An exchange that never reached the loop (a worker's error, a memory hit)
 * still gets every on_end hook, once. */
static void test_end_without_start(void **state)
{
    struct exchange *ex = ex_new(NULL, 0);

    (void)state;
    ex->driver = &phase_driver;
    phase_cancel(ex); /* not in a phase: nothing */
    ex_unref(ex);
    assert_string_equal(trail, "end:a end:b end:c");
}

/* The real table: observe, admission, cache, route; the log line is
 * written before limits settle and the cache is let go. */
static void test_real_table(void **state)
{
    (void)state;
    assert_int_equal(ARRAY_LEN(phases), 4);
    assert_string_equal(phases[0].name, "observe");
    assert_ptr_equal(phases[0].on_end, observe_end);
    assert_null(phases[0].run);
    assert_string_equal(phases[1].name, "admission");
    assert_ptr_equal(phases[1].run, limits_run);
    assert_ptr_equal(phases[1].on_end, limits_settle);
    assert_string_equal(phases[2].name, "cache");
    assert_ptr_equal(phases[2].run, cache_run);
    assert_ptr_equal(phases[2].on_answer, cache_finish);
    assert_ptr_equal(phases[2].cancel, cache_cancel);
    assert_ptr_equal(phases[2].on_end, cache_end);
    assert_string_equal(phases[3].name, "route");
    assert_ptr_equal(phases[3].run, cascade_run);
    assert_ptr_equal(phases[3].cancel, cascade_cancel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_next_then_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_again_and_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_without_start, setup, teardown),
        cmocka_unit_test(test_real_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
