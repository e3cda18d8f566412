/* test_answer.c - the rules veto and the agreement key (src/answer.c).
 *
 * Many cases come from the recorded routerbench answers: letters with and
 * without newlines, "A questioning ..." (an article, not a choice), Claude's
 * "I do ..." non-answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "../../src/answer.h"

static const char *key(const char *content)
{
    static char out[256];

    return answer_agree_key(content, out, sizeof(out));
}

static void test_rules_empty(void **state)
{
    (void)state;
    assert_int_equal(answer_rules(NULL, NULL, 0), VETO_EMPTY);
    assert_int_equal(answer_rules("", NULL, 0), VETO_EMPTY);
    assert_int_equal(answer_rules(" \n\t\r ", "stop", 0), VETO_EMPTY);
    assert_int_equal(answer_rules("D", NULL, 0), VETO_NONE);
}

static void test_rules_truncated(void **state)
{
    (void)state;
    assert_int_equal(answer_rules("The answer is", "length", 0), VETO_TRUNCATED);
    assert_int_equal(answer_rules("The answer is D.", "stop", 0), VETO_NONE);
    assert_int_equal(answer_rules("The answer is D.", "content_filter", 0), VETO_NONE);
}

static void test_rules_refusals(void **state)
{
    static const char *const refusals[] = {
        "I'm sorry, but I can't help with that.",
        "I\xE2\x80\x99m sorry, but I cannot do that.", /* curly apostrophe */
        "i am sorry",
        "I cannot provide medical advice.",
        "I can't answer that",
        "I can\xE2\x80\x99t answer that",
        "I can not say",
        "  **I'm unable** to comply",
        "As an AI language model, I do not have opinions.",
        "As a large language model I ...",
        "I apologize, but I won't.",
        "Sorry, but that is not something I can do.",
        "I'm afraid I can't do that, Dave.",
        "Unfortunately, I cannot share that.",
        "Unfortunately I can't share that.",
        "I must respectfully decline.",
        "> I do not feel comfortable answering.",
    };
    static const char *const answers[] = {
        "I can help with that: D",
        "Iceland is an island.",
        "I cannotate is not a word, but the answer is B.",
        "Unfortunately, I can see why you'd think so, but it is C.",
        "Sorry-looking dogs are still dogs.",
        "As anyone knows, the answer is 4.",
        "D",
        "The answer is (A).",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        if (answer_rules(refusals[i], NULL, 0) != VETO_REFUSAL)
            fail_msg("not vetoed as a refusal: \"%s\"", refusals[i]);
    }
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        if (answer_rules(answers[i], NULL, 0) != VETO_NONE)
            fail_msg("vetoed but is an answer: \"%s\"", answers[i]);
    }
}

static void test_rules_json(void **state)
{
    (void)state;
    assert_int_equal(answer_rules("{\"a\": 1}", NULL, 1), VETO_NONE);
    assert_int_equal(answer_rules("  [1, 2, 3]\n", NULL, 1), VETO_NONE);
    assert_int_equal(answer_rules("{\"a\": ", NULL, 1), VETO_BAD_JSON);
    assert_int_equal(answer_rules("sure! {\"a\": 1}", NULL, 1), VETO_BAD_JSON);
    assert_int_equal(answer_rules("```json\n{\"a\": 1}\n```", NULL, 1), VETO_BAD_JSON);
    /* Without a JSON response_format, text is fine. */
    assert_int_equal(answer_rules("not json", NULL, 0), VETO_NONE);
    /* A truncated JSON answer is reported as truncated: that is the cause. */
    assert_int_equal(answer_rules("{\"a\": ", "length", 1), VETO_TRUNCATED);
}

static void test_veto_names(void **state)
{
    (void)state;
    assert_string_equal(answer_veto_name(VETO_NONE), "none");
    assert_string_equal(answer_veto_name(VETO_EMPTY), "empty");
    assert_string_equal(answer_veto_name(VETO_REFUSAL), "refusal");
    assert_string_equal(answer_veto_name(VETO_TRUNCATED), "truncated");
    assert_string_equal(answer_veto_name(VETO_BAD_JSON), "bad_json");
}

static void test_key_choices(void **state)
{
    (void)state;
    assert_string_equal(key("D"), "D");
    assert_string_equal(key("D\n"), "D");
    assert_string_equal(key("  B\n\nBecause the door contains iron."), "B");
    assert_string_equal(key("D)"), "D");
    assert_string_equal(key("(D)"), "D");
    assert_string_equal(key("[C]"), "C");
    assert_string_equal(key("D."), "D");
    assert_string_equal(key("D: palms covered with oil"), "D");
    assert_string_equal(key("D) palms covered with oil"), "D");
    assert_string_equal(key("D (palms covered with oil)"), "D");
    assert_string_equal(key("D - palms covered with oil"), "D");
    assert_string_equal(key("**D**"), "D");
    assert_string_equal(key("Answer: D"), "D");
    assert_string_equal(key("answer: (b)"), "B");
    assert_string_equal(key("The answer is D."), "D");
    assert_string_equal(key("The correct answer is: C) dry palms"), "C");
    assert_string_equal(key("Option B"), "B");
    assert_string_equal(key("d"), "D");
    assert_string_equal(key("b)"), "B");
    assert_string_equal(key("(a) home"), "A");
    /* Announced at the end of an explanation. */
    assert_string_equal(key("Wet palms have less friction, so the answer is A."), "A");
    assert_string_equal(key("Let me think.\nFinal answer: **C**"), "C");
}

static void test_key_not_choices(void **state)
{
    (void)state;
    /* Articles and words that start with a letter A-E are not choices. */
    assert_string_equal(key("A dog is an animal."), "a dog is an animal");
    assert_string_equal(key("A questioning attitude"), "a questioning attitude");
    assert_string_equal(key("E.g. the sun"), "e.g. the sun");
    assert_string_equal(key("Because it rains"), "because it rains");
    assert_string_equal(key("a dog"), "a dog");
    assert_string_equal(key("b is wrong"), "b is wrong");
    /* The recorded non-answers stay distinct text. */
    assert_string_equal(key("I do"), "i do");
    assert_string_equal(key("Rachel"), "rachel");
    /* F is not a choice letter. */
    assert_string_equal(key("F"), "f");
    /* "The answer is a dog" announces text, not a choice. */
    assert_string_equal(key("The answer is a dog."), "the answer is a dog");
}

static void test_key_numbers(void **state)
{
    (void)state;
    assert_string_equal(key("1,000"), "1000");
    assert_string_equal(key("1,234,567"), "1234567");
    assert_string_equal(key("3.50"), "3.5");
    assert_string_equal(key("3.0"), "3");
    assert_string_equal(key("007"), "7");
    assert_string_equal(key("0"), "0");
    assert_string_equal(key("-0.0"), "0");
    assert_string_equal(key("-12"), "-12");
    assert_string_equal(key(".5"), "0.5");
    assert_string_equal(key("$1,234.50"), "1234.5");
    assert_string_equal(key("50%"), "50");
    assert_string_equal(key("42 apples."), "42");
    assert_string_equal(key("42\n"), "42");
    assert_string_equal(key("Answer: 18"), "18");
    assert_string_equal(key("The answer is 42."), "42");
    assert_string_equal(key("5 + 7 = 12, so the answer is 12 because of addition."), "12");
    assert_string_equal(key("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18"), "18");
    assert_string_equal(key("So $x = \\boxed{3}$."), "3");
    /* Same number, same key. */
    {
        char a[32], b[32];

        assert_string_equal(answer_agree_key("1,000.00", a, sizeof(a)),
                            answer_agree_key("1000", b, sizeof(b)));
    }
}

static void test_key_not_numbers(void **state)
{
    (void)state;
    /* A number inside code or a list is not the answer. */
    assert_string_equal(key("def f(x):\n    return x + 1"), "def f(x): return x + 1");
    assert_string_equal(key("1. First, mix the flour."), "1. first, mix the flour");
    assert_string_equal(key("2023-01-01"), "2023-01-01");
    assert_string_equal(key("3/4"), "3/4");
    assert_string_equal(key("3rd"), "3rd");
    assert_string_equal(key("1.2.3"), "1.2.3");
    assert_string_equal(key("2 + 2 makes four"), "2 + 2 makes four");
}

static void test_key_text(void **state)
{
    (void)state;
    assert_string_equal(key("Hello   World!!"), "hello world");
    assert_string_equal(key("  Paris.  "), "paris");
    assert_string_equal(key("Paris"), "paris");
    assert_string_equal(key("\"Paris\""), "paris");
    assert_string_equal(key("The\tcapital\n\nis   Paris?"), "the capital is paris");
    assert_string_equal(key("..."), "");
    assert_string_equal(key(""), "");
    assert_string_equal(key(NULL), "");
    /* UTF-8 is kept, only ASCII is folded. */
    assert_string_equal(key("Caf\xC3\xA9 AU LAIT"), "caf\xC3\xA9 au lait");
}

static void test_key_bounds(void **state)
{
    char small[4], one[1], tiny[2];

    (void)state;
    /* Cut at outlen - 1 bytes, never inside a UTF-8 sequence. */
    assert_string_equal(answer_agree_key("abcdef", small, sizeof(small)), "abc");
    assert_string_equal(answer_agree_key("\xC3\xA9\xC3\xA9\xC3\xA9", small, sizeof(small)),
                        "\xC3\xA9");
    assert_string_equal(answer_agree_key("D", one, sizeof(one)), "");
    assert_string_equal(answer_agree_key("D", tiny, sizeof(tiny)), "D");
    assert_string_equal(answer_agree_key("12345", small, sizeof(small)), "123");
    /* outlen 0 writes nothing. */
    one[0] = 'x';
    answer_agree_key("D", one, 0);
    assert_int_equal(one[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_empty),     cmocka_unit_test(test_rules_truncated),
        cmocka_unit_test(test_rules_refusals),  cmocka_unit_test(test_rules_json),
        cmocka_unit_test(test_veto_names),      cmocka_unit_test(test_key_choices),
        cmocka_unit_test(test_key_not_choices), cmocka_unit_test(test_key_numbers),
        cmocka_unit_test(test_key_not_numbers), cmocka_unit_test(test_key_text),
        cmocka_unit_test(test_key_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
