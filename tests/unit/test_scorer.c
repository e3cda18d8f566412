/* Unit tests for the scorers (scorer.c): rules, logprob, agreement, judge
 * and http verdict parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/scorer.h"

static void set_reply(struct reply *r, const char *content, const char *finish)
{
    reply_init(r);
    assert_int_equal(buf_puts(&r->content, content), 0);
    snprintf(r->finish_reason, sizeof(r->finish_reason), "%s", finish ? finish : "");
}

static void test_rules(void **state)
{
    struct reply r;

    (void)state;
    set_reply(&r, "Paris.", "stop");
    assert_int_equal(scorer_rules(&r, 0), VETO_NONE);
    reply_free(&r);
    set_reply(&r, "   \n", "stop");
    assert_int_equal(scorer_rules(&r, 0), VETO_EMPTY);
    reply_free(&r);
    set_reply(&r, "I'm sorry, but I can't help with that.", "stop");
    assert_int_equal(scorer_rules(&r, 0), VETO_REFUSAL);
    reply_free(&r);
    set_reply(&r, "The answer is", "length");
    assert_int_equal(scorer_rules(&r, 0), VETO_TRUNCATED);
    reply_free(&r);
    set_reply(&r, "{\"a\": 1", "stop");
    assert_int_equal(scorer_rules(&r, 1), VETO_BAD_JSON);
    assert_int_equal(scorer_rules(&r, 0), VETO_NONE); /* JSON not asked */
    reply_free(&r);
    set_reply(&r, "{\"a\": 1}", "stop");
    assert_int_equal(scorer_rules(&r, 1), VETO_NONE);
    reply_free(&r);
}

static void test_logprob(void **state)
{
    struct reply r;

    (void)state;
    set_reply(&r, "x", "stop");
    assert_true(scorer_logprob(&r) == 0.0); /* no logprobs: no confidence */
    r.logprob_sum = 3 * log(0.5);
    r.logprob_n = 3;
    assert_true(fabs(scorer_logprob(&r) - 0.5) < 1e-12);
    r.logprob_sum = 0;
    assert_true(fabs(scorer_logprob(&r) - 1.0) < 1e-12);
    reply_free(&r);
}

static void test_agreement(void **state)
{
    const char *same[] = {"D", "The answer is D.", "(D)"};
    const char *split[] = {"A", "B", "A", "C"};
    const char *text[] = {"Hello   World", "hello world", "goodbye"};
    const char *nums[] = {"The answer is 1,000.", "1000", "999"};

    (void)state;
    assert_true(scorer_agreement(same, 3) == 1.0);
    assert_true(scorer_agreement(split, 4) == 0.5); /* share agreeing with the first */
    assert_true(fabs(scorer_agreement(text, 3) - 2.0 / 3.0) < 1e-12);
    assert_true(fabs(scorer_agreement(nums, 3) - 2.0 / 3.0) < 1e-12);
    assert_true(scorer_agreement(same, 1) == 1.0);
    assert_true(scorer_agreement(same, 0) == 0.0);
}

static void test_judge(void **state)
{
    double s = -1;
    json_t *body;
    char *dump;

    (void)state;
    assert_int_equal(scorer_judge_parse("8", &s), 0);
    assert_true(fabs(s - 0.8) < 1e-12);
    assert_int_equal(scorer_judge_parse("Score: 10/10", &s), 0);
    assert_true(s == 1.0);
    assert_int_equal(scorer_judge_parse("42", &s), 0);
    assert_true(s == 1.0); /* clamped */
    assert_int_equal(scorer_judge_parse("7.5", &s), 0);
    assert_true(fabs(s - 0.75) < 1e-12);
    assert_int_equal(scorer_judge_parse("no idea", &s), -1);
    assert_int_equal(scorer_judge_parse("", &s), -1);

    body = scorer_judge_body(NULL, "What is 2+2?", "4");
    dump = json_dumps(body, JSON_COMPACT);
    assert_non_null(strstr(dump, "What is 2+2?"));
    assert_non_null(strstr(dump, "\"temperature\":0"));
    assert_int_equal(json_array_size(json_object_get(body, "messages")), 2);
    free(dump);
    json_decref(body);
    body = scorer_judge_body("Be kind.", "q", "a");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(body, "messages"), 0), "content")),
                        "Be kind.");
    json_decref(body);
}

static void test_http(void **state)
{
    double s = -1;
    char *b;
    json_t *j;

    (void)state;
    assert_int_equal(scorer_http_parse("{\"score\": 0.25}", 15, &s), 0);
    assert_true(s == 0.25);
    assert_int_equal(scorer_http_parse("{\"score\": 1.5}", 14, &s), -1);
    assert_int_equal(scorer_http_parse("{\"score\": \"high\"}", 17, &s), -1);
    assert_int_equal(scorer_http_parse("nope", 4, &s), -1);
    b = scorer_http_body("q\"uote", "ans", "m");
    j = json_loads(b, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "query")), "q\"uote");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m");
    json_decref(j);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),     cmocka_unit_test(test_logprob),
        cmocka_unit_test(test_agreement), cmocka_unit_test(test_judge),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
