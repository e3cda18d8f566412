/* Unit tests for log.c, as an operator reads the log: one JSON object per
 * line with an RFC 3339 UTC timestamp and the level; the level filter; the
 * text format; field values (null, negative, milliseconds, cut to their
 * room at a character boundary, invalid UTF-8 replaced); request lines
 * batched until a flush while other lines go out at once and keep the
 * order; a reopen (rotation); and the JSON record the dashboard keeps.
 * The line cap is filled in test_util.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/unit.h"
#include "../../src/caps.h"
#include "../../src/log.h"

static char path[] = "/tmp/test_log.XXXXXX";

static void open_log(enum log_format format, enum log_level level)
{
    struct log_conf lc = {.format = format, .path = path, .level = level};

    assert_int_equal(log_open(&lc), 0);
}

static int setup(void **state)
{
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/test_log.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    open_log(LOG_FORMAT_JSON, LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    struct log_conf off = {.format = LOG_FORMAT_JSON, .path = "/dev/null", .level = LOG_INFO};

    (void)state;
    log_flush();
    assert_int_equal(log_open(&off), 0);
    unlink(path);
    return 0;
}

static const char *field(json_t *arr, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(arr, i), key));
}

static void test_json_line(void **state)
{
    json_t *arr;
    const char *ts;

    (void)state;
    log_msg(LOG_WARN, "upstream %s answered %d", "openai", 503);
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(field(arr, 0, "level"), "warn");
    assert_string_equal(field(arr, 0, "msg"), "upstream openai answered 503");
    ts = field(arr, 0, "ts"); /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    json_decref(arr);
}

static void test_timestamp(void **state)
{
    struct log_line l;
    json_t *arr;

    (void)state;
    log_line_start(&l, LOG_INFO, 1700000000.25);
    log_line_end(&l, 0);
    log_line_start(&l, LOG_ERROR, 1700000001.999);
    log_line_end(&l, 0);
    arr = test_json_lines(path);
    assert_string_equal(field(arr, 0, "ts"), "2023-11-14T22:13:20.250Z");
    assert_string_equal(field(arr, 0, "level"), "info");
    assert_string_equal(field(arr, 1, "ts"), "2023-11-14T22:13:21.999Z");
    assert_string_equal(field(arr, 1, "level"), "error");
    json_decref(arr);
}

static void test_level_filter(void **state)
{
    json_t *arr;

    (void)state;
    open_log(LOG_FORMAT_JSON, LOG_WARN);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARN));
    assert_true(log_enabled(LOG_ERROR));
    log_msg(LOG_DEBUG, "debug");
    log_msg(LOG_INFO, "info");
    log_msg(LOG_WARN, "warn");
    log_msg(LOG_ERROR, "error");
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(field(arr, 0, "msg"), "warn");
    assert_string_equal(field(arr, 1, "msg"), "error");
    json_decref(arr);
    open_log(LOG_FORMAT_JSON, LOG_DEBUG);
    assert_true(log_enabled(LOG_DEBUG));
}

static void test_fields(void **state)
{
    struct log_line l;
    json_t *arr, *o;

    (void)state;
    log_line_start(&l, LOG_INFO, 1700000000);
    log_str(&l, "route", "smart", LOG_VALUE_NAME);
    log_str(&l, "model", NULL, LOG_VALUE_NAME);
    log_long(&l, "status", 200);
    log_long(&l, "delta", -42);
    log_ms(&l, "latency_ms", 1234567);
    log_ms(&l, "zero_ms", 5);
    log_raw(&l, "stream", "true");
    log_str(&l, "quote", "say \"hi\"\n\tand \\ go", LOG_VALUE_NAME);
    log_line_end(&l, 0);
    arr = test_json_lines(path);
    o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "route")), "smart");
    assert_true(json_is_null(json_object_get(o, "model")));
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "delta")), -42);
    assert_float_equal(json_real_value(json_object_get(o, "latency_ms")), 1234.567, 1e-9);
    assert_float_equal(json_real_value(json_object_get(o, "zero_ms")), 0.005, 1e-12);
    assert_true(json_is_true(json_object_get(o, "stream")));
    assert_string_equal(json_string_value(json_object_get(o, "quote")), "say \"hi\"\n\tand \\ go");
    json_decref(arr);
}

static void test_value_room_and_utf8(void **state)
{
    char value[601];
    struct log_line l;
    const char *got;
    json_t *arr;

    (void)state;
    /* 300 two-byte characters: cut to the room, never mid-character */
    for (int i = 0; i < 300; i++)
        memcpy(value + 2 * i, "\xc3\xa9", 2);
    value[600] = '\0';
    log_line_start(&l, LOG_INFO, 1700000000);
    log_str(&l, "long", value, 64);
    log_str(&l, "bad",
            "a\xff"
            "b\xc3",
            LOG_VALUE_SHORT);
    log_line_end(&l, 0);
    arr = test_json_lines(path);
    got = field(arr, 0, "long");
    assert_true(strlen(got) + 2 <= 64);
    assert_true(strlen(got) >= 60); /* cut near the room, not emptied */
    assert_int_equal(strlen(got) % 2, 0);
    assert_memory_equal(got, value, strlen(got));
    assert_string_equal(field(arr, 0, "bad"), "a\xef\xbf\xbd"
                                              "b\xef\xbf\xbd");
    json_decref(arr);
}

static void test_text_format(void **state)
{
    struct log_line l;
    char *text;

    (void)state;
    open_log(LOG_FORMAT_TEXT, LOG_INFO);
    log_line_start(&l, LOG_WARN, 1700000000.5);
    log_str(&l, "msg", "request", LOG_VALUE_SHORT);
    log_str(&l, "model", NULL, LOG_VALUE_NAME); /* left out */
    log_str(&l, "path", "/v1/chat completions", LOG_VALUE_PATH);
    log_long(&l, "status", 429);
    log_line_end(&l, 0);
    log_line_start(&l, LOG_INFO, 1700000000.5);
    log_str(&l, "msg", "plain", LOG_VALUE_SHORT);
    log_line_end(&l, 0);
    text = test_slurp(path);
    assert_string_equal(text, "2023-11-14T22:13:20.500Z warn  msg=request "
                              "path=\"/v1/chat completions\" status=429\n"
                              "2023-11-14T22:13:20.500Z info  msg=plain\n");
    free(text);
}

/* Request lines wait for a flush (the loop's timer); any other line writes
 * them first and goes out at once, so the file keeps the order. */
static void test_batching(void **state)
{
    struct log_line l;
    json_t *arr;
    char *text;

    (void)state;
    log_line_start(&l, LOG_INFO, 1700000000);
    log_str(&l, "msg", "request", LOG_VALUE_SHORT);
    log_line_end(&l, 1);
    text = test_slurp(path);
    assert_string_equal(text, "");
    free(text);
    log_flush();
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 1);
    json_decref(arr);
    log_line_start(&l, LOG_INFO, 1700000000);
    log_str(&l, "msg", "second request", LOG_VALUE_SHORT);
    log_line_end(&l, 1);
    log_msg(LOG_WARN, "after");
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 3);
    assert_string_equal(field(arr, 1, "msg"), "second request");
    assert_string_equal(field(arr, 2, "msg"), "after");
    json_decref(arr);
}

/* log_open again (SIGHUP after logrotate moved the file): later lines go
 * to the new file. */
static void test_reopen(void **state)
{
    char moved[64];
    char *text;
    json_t *arr;

    (void)state;
    snprintf(moved, sizeof(moved), "%s.1", path);
    log_msg(LOG_INFO, "old");
    assert_int_equal(rename(path, moved), 0);
    open_log(LOG_FORMAT_JSON, LOG_INFO);
    log_msg(LOG_INFO, "new");
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(field(arr, 0, "msg"), "new");
    json_decref(arr);
    text = test_slurp(moved);
    assert_non_null(strstr(text, "\"msg\":\"old\""));
    assert_null(strstr(text, "new"));
    free(text);
    unlink(moved);
}

/* The dashboard's record: JSON whatever log.format says, returned rather
 * than written. */
static void test_take_json(void **state)
{
    struct log_line l;
    size_t len;
    char *rec, *text;
    json_t *j;

    (void)state;
    open_log(LOG_FORMAT_TEXT, LOG_INFO);
    log_line_start_json(&l, LOG_INFO, 1700000000);
    log_str(&l, "route", "r", LOG_VALUE_NAME);
    rec = log_line_take(&l, &len);
    assert_non_null(rec);
    assert_int_equal(strlen(rec), len);
    j = json_loads(rec, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "r");
    json_decref(j);
    free(rec);
    log_flush();
    text = test_slurp(path);
    assert_string_equal(text, ""); /* taken, not written */
    free(text);
    /* over its cap: NULL, nothing half made */
    log_line_start_json(&l, LOG_INFO, 1700000000);
    for (int i = 0; i < 40; i++)
        log_str(&l, "v",
                "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
                "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
                "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
                "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
                "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01",
                LOG_VALUE_LONG);
    assert_null(log_line_take(&l, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_room_and_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_json, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
