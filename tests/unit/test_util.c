/* Unit tests for util.c: the capped buffer (a full buffer fails and stays
 * failed, so nothing partial goes out), the UTF-8 helpers, and every cap in
 * caps.h that a unit can reach, through the function that owns it: each is
 * filled past its cap and must fail whole, never write part. Caps that only
 * a running gateway reaches (the upstream bodies, the stream buffer under a
 * slow client) are covered by the integration suite (hostile.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/cache.h"
#include "../../src/caps.h"
#include "../../src/config.h"
#include "../../src/exchange.h"
#include "../../src/log.h"
#include "../../src/provider.h"
#include "../../src/util.h"

/* ---- struct buf ---- */

static void test_buf_append_and_cap(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "abcd", 4), 0);
    assert_int_equal(buf_puts(&b, "efgh"), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "abcdefgh");
    /* One byte over: the buffer fails, frees what it held... */
    assert_int_equal(buf_append(&b, "i", 1), -1);
    assert_true(b.failed);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* ...and every later append fails too, even one that would fit, so a
     * shorter field after a failed one cannot make a well-formed-looking
     * but partial text. */
    assert_int_equal(buf_append(&b, "x", 1), -1);
    assert_int_equal(buf_puts(&b, ""), -1);
    assert_int_equal(buf_printf(&b, "%d", 1), -1);
    assert_int_equal(buf_put_json_str(&b, "y"), -1);
    assert_int_equal(b.len, 0);
    /* A reset starts over. */
    buf_reset(&b);
    assert_false(b.failed);
    assert_int_equal(buf_puts(&b, "ok"), 0);
    assert_string_equal(b.data, "ok");
    buf_free(&b);
}

static void test_buf_printf_grows_and_fails(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 300);
    assert_int_equal(buf_printf(&b, "%s", "0123456789"), 0);
    /* Past the first allocation (256): a second pass after growing. */
    assert_int_equal(buf_printf(&b, "%0280d", 7), 0);
    assert_int_equal(b.len, 290);
    assert_int_equal(b.data[290], '\0');
    assert_int_equal(buf_printf(&b, "%020d", 7), -1);
    assert_true(b.failed);
    assert_int_equal(buf_append(&b, "x", 1), -1);
    buf_free(&b);
}

static void test_buf_consume_truncate_steal(void **state)
{
    struct buf b;
    size_t len;
    char *p;

    (void)state;
    buf_init(&b, 64);
    assert_int_equal(buf_puts(&b, "hello world"), 0);
    buf_consume(&b, 6);
    assert_string_equal(b.data, "world");
    buf_truncate(&b, 3);
    assert_string_equal(b.data, "wor");
    p = buf_steal(&b, &len);
    assert_int_equal(len, 3);
    assert_string_equal(p, "wor");
    assert_null(b.data);
    free(p);
    /* An empty buffer steals as "". */
    p = buf_steal(&b, &len);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
}

/* ---- UTF-8 ---- */

static void test_utf8_seq(void **state)
{
    (void)state;
    assert_int_equal(utf8_seq((const unsigned char *)"a", 1), 1);
    assert_int_equal(utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);         /* é */
    assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);     /* € */
    assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4); /* 😀 */
    assert_int_equal(utf8_seq((const unsigned char *)"\xc3", 1), 0);             /* cut */
    assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82", 2), 0);         /* cut */
    assert_int_equal(utf8_seq((const unsigned char *)"\x80", 1), 0);     /* stray continuation */
    assert_int_equal(utf8_seq((const unsigned char *)"\xc0\xaf", 2), 0); /* overlong */
    assert_int_equal(utf8_seq((const unsigned char *)"\xe0\x80\xaf", 3), 0);     /* overlong */
    assert_int_equal(utf8_seq((const unsigned char *)"\xed\xa0\x80", 3), 0);     /* surrogate */
    assert_int_equal(utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(utf8_seq((const unsigned char *)"\xff", 1), 0);
}

static void test_utf8_cut(void **state)
{
    const char *s = "ab\xe2\x82\xac"
                    "cd"; /* a b € c d */

    (void)state;
    assert_int_equal(utf8_cut(s, 7, 10), 7);
    assert_int_equal(utf8_cut(s, 7, 5), 5);
    assert_int_equal(utf8_cut(s, 7, 4), 2); /* not inside the euro sign */
    assert_int_equal(utf8_cut(s, 7, 3), 2);
    assert_int_equal(utf8_cut(s, 7, 2), 2);
    /* Not UTF-8 at all: any cut will do. */
    assert_int_equal(utf8_cut("\x80\x80\x80\x80\x80", 5, 4), 4);
}

static void test_utf8_copy(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(utf8_copy(out, sizeof(out), "abc", 3), 3);
    assert_string_equal(out, "abc");
    /* An invalid byte becomes U+FFFD. */
    assert_int_equal(utf8_copy(out, sizeof(out), "a\xff", 2), 4);
    assert_string_equal(out, "a\xef\xbf\xbd");
    /* Full: stop at a character boundary, never half a character. */
    assert_int_equal(utf8_copy(out, sizeof(out), "abcde\xe2\x82\xac", 8), 5);
    assert_string_equal(out, "abcde");
}

/* ---- JSON strings ---- */

static char *json_of(const char *s, size_t len, size_t room)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(buf_put_json_strn(&b, s, len, room), 0);
    return buf_steal(&b, NULL);
}

/* The text must parse as one JSON string and decode to want. */
static void assert_json_string(const char *text, const char *want)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

    assert_non_null(j);
    assert_true(json_is_string(j));
    assert_string_equal(json_string_value(j), want);
    json_decref(j);
}

static void test_json_str_escapes(void **state)
{
    char *t;

    (void)state;
    t = json_of("a\"b\\c\n\r\t\x01\x7f", 10, SIZE_MAX);
    assert_string_equal(t, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\x7f\"");
    assert_json_string(t, "a\"b\\c\n\r\t\x01\x7f");
    free(t);
    /* Invalid UTF-8 becomes U+FFFD, so the line stays valid JSON. */
    t = json_of("x\xff\xc3y", 4, SIZE_MAX);
    assert_json_string(t, "x\xef\xbf\xbd\xef\xbf\xbdy");
    free(t);
}

static void test_json_str_room(void **state)
{
    char big[200];
    char *t;

    (void)state;
    memset(big, 'a', sizeof(big));
    t = json_of(big, sizeof(big), 50);
    assert_int_equal(strlen(t), 50);
    assert_int_equal(t[0], '"');
    assert_int_equal(t[49], '"');
    free(t);
    /* An escape is never cut in half: \u0001 takes 6 and does not fit. */
    t = json_of("abc\x01", 4, 10);
    assert_string_equal(t, "\"abc\"");
    free(t);
    /* Nor a character: the euro sign (3 bytes) does not fit after 4. */
    t = json_of("abcd\xe2\x82\xac", 7, 8);
    assert_string_equal(t, "\"abcd\"");
    assert_json_string(t, "abcd");
    free(t);
}

/* ---- the caps in caps.h ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Every line of the file parses as a JSON object and is under the cap. */
static int check_json_lines(const char *text)
{
    int n = 0;

    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        json_error_t e;
        json_t *j;

        assert_non_null(nl);
        assert_true((size_t)(nl - p) <= LOG_LINE_MAX);
        j = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (j == NULL)
            fail_msg("not JSON (%s): %.*s", e.text, (int)(nl - p), p);
        assert_true(json_is_object(j));
        json_decref(j);
        p = nl + 1;
        n++;
    }
    return n;
}

/* Send the log to a new temporary file (path is its template). */
static void log_to_temp(char *path, enum log_format format)
{
    struct log_conf lc = {.format = format, .path = path, .level = LOG_DEBUG};
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_open(&lc), 0);
}

static void test_cap_log_line(void **state)
{
    char path[] = "/tmp/sluice-test-util-XXXXXX";
    char *huge = malloc(LOG_LINE_MAX * 2);
    struct log_line l;
    char *text;

    (void)state;
    log_to_temp(path, LOG_FORMAT_JSON);
    /* Every value of control characters: each escapes to six bytes, so
     * unchecked they would make a line of many times the cap. */
    memset(huge, 1, LOG_LINE_MAX * 2 - 1);
    huge[LOG_LINE_MAX * 2 - 1] = '\0';
    log_line_start(&l, LOG_INFO, 1.5e9);
    log_str(&l, "a", huge, LOG_VALUE_PATH);
    log_str(&l, "b", huge, LOG_VALUE_LONG);
    log_str(&l, "c", huge + 1, LOG_VALUE_NAME);
    log_long(&l, "n", -42);
    log_line_end(&l, 0);
    log_msg(LOG_WARN, "%s", huge);
    /* Past the line's own cap: replaced by a line that says so. */
    log_line_start(&l, LOG_INFO, 1.5e9);
    l.id = "req_1";
    for (int i = 0; i < 40; i++)
        log_str(&l, "v", huge, LOG_VALUE_PATH);
    log_line_end(&l, 0);
    log_flush();
    text = read_file(path);
    assert_int_equal(check_json_lines(text), 3);
    assert_non_null(strstr(text, "\"n\":-42}"));
    assert_non_null(strstr(text, "log line over its cap"));
    assert_non_null(strstr(text, "\"request_id\":\"req_1\""));
    free(text);
    free(huge);
    unlink(path);
}

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_cap_log_text_format(void **state)
{
    char path[] = "/tmp/sluice-test-util-XXXXXX";
    struct log_conf lc = {.format = LOG_FORMAT_JSON, .path = "-", .level = LOG_INFO};
    struct log_line l;
    char *text;

    (void)state;
    log_to_temp(path, LOG_FORMAT_TEXT);
    /* A value with a newline cannot forge a second line or a field. */
    log_line_start(&l, LOG_INFO, 1.5e9);
    log_str(&l, "model", "m\n2026-01-01T00:00:00.000Z info  msg=forged status=200", 512);
    log_str(&l, "plain", "gpt-4o", 512);
    log_str(&l, "eq", "a=b", 512);
    log_line_end(&l, 0);
    log_flush();
    text = read_file(path);
    assert_int_equal(count_char(text, '\n'), 1); /* one line, ending in its newline */
    assert_non_null(strstr(text, " model=\"m\\n2026"));
    assert_non_null(strstr(text, " plain=gpt-4o"));
    assert_non_null(strstr(text, " eq=\"a=b\""));
    free(text);
    unlink(path);
    assert_int_equal(log_open(&lc), 0);
}

static void test_cap_stream_buf(void **state)
{
    struct exchange *ex = ex_new(NULL, 1024);
    char *chunk = calloc(1, STREAM_BUF_MAX / 4 + 1);

    (void)state;
    ex_stream_begin(ex);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ex_stream_write(ex, chunk, STREAM_BUF_MAX / 4), 0);
    assert_int_equal(ex_stream_write(ex, chunk, 1), -1);
    free(chunk);
    ex_stream_end(ex);
    ex_unref(ex);
}

static void test_cap_stages(void **state)
{
    struct exchange *ex = ex_new(NULL, 1024);
    char *stages = malloc(EX_STAGES_MAX + 2);

    (void)state;
    memset(stages, 's', EX_STAGES_MAX + 1);
    stages[EX_STAGES_MAX + 1] = '\0';
    ex_set_cached_meta(ex, "m", "p", stages, 0.5);
    assert_int_equal(ex->meta.stages.len, 0); /* left out whole, not cut */
    stages[EX_STAGES_MAX] = '\0';
    ex_set_cached_meta(ex, "m", "p", stages, 0.5);
    assert_int_equal(ex->meta.stages.len, EX_STAGES_MAX);
    free(stages);
    ex_unref(ex);
}

static void test_cap_cache_entry_and_canon(void **state)
{
    char *stages = malloc(CACHE_ENTRY_HEAD_MAX + 1);
    char key[CACHE_KEY_MAX];
    size_t len;
    char *big;
    json_t *body;

    (void)state;
    memset(stages, 's', CACHE_ENTRY_HEAD_MAX);
    stages[CACHE_ENTRY_HEAD_MAX] = '\0';
    assert_null(cache_entry_encode("m", "p", 0.1, stages, "{}", 2, &len));
    stages[100] = '\0';
    big = cache_entry_encode("m", "p", 0.1, stages, "{}", 2, &len);
    assert_non_null(big);
    free(big);
    free(stages);
    /* A body whose canonical form is over the cap has no key (not cached). */
    big = malloc(CACHE_CANON_MAX + 1);
    memset(big, 'x', CACHE_CANON_MAX);
    big[CACHE_CANON_MAX] = '\0';
    body = json_pack("{s:s}", "prompt", big);
    free(big);
    assert_int_equal(cache_key("ns", "r", EP_COMPLETIONS, body, key), -1);
    json_decref(body);
    body = json_pack("{s:s}", "prompt", "small");
    assert_int_equal(cache_key("ns", "r", EP_COMPLETIONS, body, key), 0);
    json_decref(body);
}

static void test_cap_sse_render(void **state)
{
    json_t *resp = json_pack("{s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}", "id", "x", "choices", "index",
                             0, "message", "role", "assistant", "content",
                             "a long enough answer to need several chunks of text in the stream "
                             "that a client is sent, and then some more words",
                             "finish_reason", "stop");
    struct buf b;

    (void)state;
    buf_init(&b, 200); /* the cap's handling, at a size a test can reach */
    assert_int_equal(provider_sse_from_response(EP_CHAT, resp, 0, &b), -1);
    assert_true(b.failed);
    buf_free(&b);
    buf_init(&b, SSE_RENDER_MAX);
    assert_int_equal(provider_sse_from_response(EP_CHAT, resp, 0, &b), 0);
    assert_non_null(strstr(b.data, "data: [DONE]\n\n"));
    buf_free(&b);
    json_decref(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_cap),
        cmocka_unit_test(test_buf_printf_grows_and_fails),
        cmocka_unit_test(test_buf_consume_truncate_steal),
        cmocka_unit_test(test_utf8_seq),
        cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_utf8_copy),
        cmocka_unit_test(test_json_str_escapes),
        cmocka_unit_test(test_json_str_room),
        cmocka_unit_test(test_cap_log_line),
        cmocka_unit_test(test_cap_log_text_format),
        cmocka_unit_test(test_cap_stream_buf),
        cmocka_unit_test(test_cap_stages),
        cmocka_unit_test(test_cap_cache_entry_and_canon),
        cmocka_unit_test(test_cap_sse_render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
