/* Unit tests for cost.c: prices applied to usage, with a provider's prompt
 * cache counted the OpenAI way (cached tokens inside prompt_tokens) or the
 * Anthropic way (outside input_tokens, translated by provider_anthropic.c),
 * so that cached tokens are neither lost nor billed as full input (LiteLLM
 * #31069, #11789). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "../../src/cost.h"
#include "../../src/provider.h"

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
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_openai_usage),
        cmocka_unit_test(test_anthropic_usage),
        cmocka_unit_test(test_odd_usage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
