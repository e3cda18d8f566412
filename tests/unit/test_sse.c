/* Unit tests for the SSE parser: framing, line endings, chunk splits, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../src/sse.h"

struct seen {
    char events[16][256];
    char types[16][64];
    int n;
    int stop_after;
};

static int collect_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct seen *s = arg;

    assert_int_equal(strlen(data), len);
    assert_true(s->n < 16);
    snprintf(s->events[s->n], sizeof(s->events[0]), "%s", data);
    snprintf(s->types[s->n], sizeof(s->types[0]), "%s", event);
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? -1 : 0;
}

/* Feed the same stream whole and split at every possible byte. */
static void feed_all_splits(const char *stream, const char **want, int nwant)
{
    size_t len = strlen(stream);

    for (size_t cut = 0; cut <= len; cut++) {
        struct sse p;
        struct seen s = {0};

        sse_init(&p, 1024);
        assert_int_equal(sse_feed(&p, stream, cut, collect_cb, &s), 0);
        assert_int_equal(sse_feed(&p, stream + cut, len - cut, collect_cb, &s), 0);
        assert_int_equal(s.n, nwant);
        for (int i = 0; i < nwant; i++)
            assert_string_equal(s.events[i], want[i]);
        sse_free(&p);
    }
}

static void test_openai_stream(void **state)
{
    const char *want[] = {"{\"a\":1}", "{\"b\":2}", "[DONE]"};

    (void)state;
    feed_all_splits("data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n", want, 3);
}

static void test_line_endings(void **state)
{
    const char *want[] = {"x", "y", "z"};

    (void)state;
    feed_all_splits("data: x\r\n\r\ndata: y\r\rdata: z\n\n", want, 3);
}

static void test_multiline_comments_fields(void **state)
{
    const char *want[] = {"one\ntwo", "", "nospace"};

    (void)state;
    /* comments, id and retry are skipped; an empty data field is an event;
     * a field without a space after the colon keeps its value. */
    feed_all_splits(": ping\n\nid: 7\nretry: 10\ndata: one\ndata: two\n\ndata\n\ndata:nospace\n\n",
                    want, 3);
}

static void test_event_type(void **state)
{
    struct sse p;
    struct seen s = {0};
    const char *in = "event: error\ndata: {\"e\":1}\n\ndata: plain\n\n";

    (void)state;
    sse_init(&p, 1024);
    assert_int_equal(sse_feed(&p, in, strlen(in), collect_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.types[0], "error");
    assert_string_equal(s.types[1], "");
    sse_free(&p);
}

static void test_no_event_without_blank_line(void **state)
{
    struct sse p;
    struct seen s = {0};
    const char *in = "data: partial\n";

    (void)state;
    sse_init(&p, 1024);
    assert_int_equal(sse_feed(&p, in, strlen(in), collect_cb, &s), 0);
    assert_int_equal(s.n, 0);
    assert_true(sse_pending(&p)); /* a truncated stream is detectable */
    sse_free(&p);
}

static void test_cap(void **state)
{
    struct sse p;
    struct seen s = {0};
    char big[200];

    (void)state;
    memset(big, 'x', sizeof(big));
    sse_init(&p, 64);
    assert_int_equal(sse_feed(&p, "data: ", 6, collect_cb, &s), 0);
    assert_int_equal(sse_feed(&p, big, sizeof(big), collect_cb, &s), -1);
    /* once failed, it stays failed */
    assert_int_equal(sse_feed(&p, "\n\n", 2, collect_cb, &s), -1);
    assert_int_equal(s.n, 0);
    sse_free(&p);
}

/* Between events the parser holds no memory: thousands of open streams
 * wait between events at once. A partial line or event is kept. */
static void test_idle_holds_nothing(void **state)
{
    struct sse p;
    struct seen s = {0};

    (void)state;
    sse_init(&p, 1024);
    assert_int_equal(sse_feed(&p, "data: one\n\n", 11, collect_cb, &s), 0);
    assert_int_equal(s.n, 1);
    assert_null(p.data.data);
    assert_null(p.line.data);
    assert_int_equal(sse_feed(&p, "data: tw", 8, collect_cb, &s), 0);
    assert_non_null(p.line.data); /* a partial line waits */
    assert_int_equal(sse_feed(&p, "o\n", 2, collect_cb, &s), 0);
    assert_null(p.line.data);
    assert_non_null(p.data.data); /* an event without its blank line waits */
    assert_int_equal(sse_feed(&p, "\n", 1, collect_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.events[1], "two");
    assert_null(p.data.data);
    assert_false(sse_pending(&p));
    sse_free(&p);
}

static void test_callback_stop(void **state)
{
    struct sse p;
    struct seen s = {.stop_after = 1};
    const char *in = "data: a\n\ndata: b\n\n";

    (void)state;
    sse_init(&p, 1024);
    assert_int_equal(sse_feed(&p, in, strlen(in), collect_cb, &s), -1);
    assert_int_equal(s.n, 1);
    sse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_multiline_comments_fields),
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_no_event_without_blank_line),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_idle_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
