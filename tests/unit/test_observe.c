/* Unit tests for observe.c, the observe step of the phase table: at a
 * request's end (the exchange's last unref, whichever side drops it, through
 * phase.c's driver) it writes one log line with the request's fields (at info,
 * warn for a 5xx, debug for probes and scrapes), counts it in the metrics
 * (API traffic only), and makes the record the dashboard keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/unit.h"
#include "../../src/exchange.h"
#include "../../src/log.h"
#include "../../src/metrics.h"
#include "../../src/observe.h"
#include "../../src/phase.h"

static char path[] = "/tmp/test_observe.XXXXXX";

static int setup(void **state)
{
    struct log_conf lc = {.format = LOG_FORMAT_JSON, .level = LOG_INFO};
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/test_observe.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    lc.path = path;
    assert_int_equal(log_open(&lc), 0);
    metrics_init();
    return 0;
}

static int teardown(void **state)
{
    struct log_conf off = {.format = LOG_FORMAT_JSON, .path = "/dev/null", .level = LOG_INFO};

    (void)state;
    assert_int_equal(log_open(&off), 0);
    unlink(path);
    metrics_free();
    return 0;
}

static json_t *log_lines(void)
{
    log_flush();
    return test_json_lines(path);
}

static struct exchange *api_request(void)
{
    struct exchange *ex = ex_new(NULL, 1024);

    snprintf(ex->request_id, sizeof(ex->request_id), "req_test");
    snprintf(ex->method, sizeof(ex->method), "POST");
    snprintf(ex->path, sizeof(ex->path), "/v1/chat/completions");
    return ex;
}

/* The log line and the metrics are written once, by the last unref,
 * whichever side it is, with both sides' final state. */
static void test_last_unref_logs_once(void **state)
{
    struct route rt = {.name = "smart"};
    struct exchange *ex = api_request();
    json_t *lines, *o;
    char *text;
    size_t len;

    (void)state;
    ex->driver = &phase_driver; /* the last unref runs the phases' on_end hooks */
    ex->route = &rt;
    ex_ref(ex); /* the loop's */
    ex->meta.model = "small";
    ex->meta.provider = "openai";
    ex->meta.cost_usd = 0.0042;
    ex->meta.prompt_tokens = 10;
    ex->meta.completion_tokens = 5;
    ex->meta.attempts = 2;
    ex->meta.cache = CACHE_MISS;
    ex_respond(ex, 200, strdup("{}"), 2);
    ex_unref(ex); /* the loop is done */
    lines = log_lines();
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    ex->client_status = 200; /* the worker sent it */
    ex->t_end_us = ex->t_start_us + 1500;
    ex_unref(ex);
    lines = log_lines();
    assert_int_equal(json_array_size(lines), 1);
    o = json_array_get(lines, 0);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "request");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "req_test");
    assert_string_equal(json_string_value(json_object_get(o, "route")), "smart");
    assert_string_equal(json_string_value(json_object_get(o, "model")), "small");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
    assert_float_equal(json_real_value(json_object_get(o, "latency_ms")), 1.5, 1e-9);
    assert_float_equal(json_real_value(json_object_get(o, "cost_usd")), 0.0042, 1e-12);
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 2);
    assert_string_equal(json_string_value(json_object_get(o, "cache")), "MISS");
    json_decref(lines);
    text = metrics_render(&len);
    assert_non_null(strstr(text, "sluice_requests_total{"));
    assert_non_null(strstr(text, "route=\"smart\""));
    free(text);
}

/* A cache hit: its line says HIT and what it saved; a 5xx is a warning. */
static void test_log_line(void **state)
{
    struct exchange *ex = api_request();
    json_t *lines, *o;

    (void)state;
    ex->meta.cache = CACHE_HIT;
    ex->meta.saved_cost = 0.25;
    ex->client_status = 200;
    ex->t_end_us = ex->t_start_us + 2500;
    observe_end(ex);
    ex->meta.cache = CACHE_NA;
    ex->client_status = 502;
    api_error_set(&ex->err, 502, "api_error", "upstream_error", NULL, "no upstream");
    observe_end(ex);
    ex_unref(ex);
    lines = log_lines();
    assert_int_equal(json_array_size(lines), 2);
    o = json_array_get(lines, 0);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(o, "cache")), "HIT");
    assert_float_equal(json_real_value(json_object_get(o, "saved_cost_usd")), 0.25, 1e-12);
    assert_float_equal(json_real_value(json_object_get(o, "latency_ms")), 2.5, 1e-9);
    o = json_array_get(lines, 1);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_null(json_object_get(o, "cache"));
    assert_string_equal(json_string_value(json_object_get(o, "error")), "no upstream");
    json_decref(lines);
}

/* The admin API is not traffic: logged, but not counted. */
static void test_admin_not_counted(void **state)
{
    struct route rt = {.name = "adminroute"};
    struct exchange *ex = ex_new(NULL, 0);
    json_t *lines;
    char *text;
    size_t len;

    (void)state;
    snprintf(ex->path, sizeof(ex->path), "/admin/usage");
    ex->route = &rt;
    ex->client_status = 200;
    observe_end(ex);
    ex_unref(ex);
    lines = log_lines();
    assert_int_equal(json_array_size(lines), 1);
    json_decref(lines);
    text = metrics_render(&len);
    assert_null(strstr(text, "adminroute"));
    free(text);
}

static void test_probes_not_logged(void **state)
{
    struct exchange *ex = ex_new(NULL, 0);
    json_t *lines;

    (void)state;
    snprintf(ex->path, sizeof(ex->path), "/healthz");
    ex->client_status = 200;
    observe_end(ex);
    ex_unref(ex);
    lines = log_lines();
    assert_int_equal(json_array_size(lines), 0); /* a debug line: under info */
    json_decref(lines);
}

static void test_log_record(void **state)
{
    struct exchange *ex = api_request();
    json_t *j;
    char *rec;
    size_t len;

    (void)state;
    ex->client_status = 429;
    api_error_set(&ex->err, 429, "requests", "rate_limit_exceeded", NULL, "slow down");
    ex->meta.cache = CACHE_NA;
    rec = observe_record(ex, &len);
    assert_non_null(rec);
    j = json_loadb(rec, len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 429);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "slow down");
    assert_null(json_object_get(j, "cache")); /* not asked */
    json_decref(j);
    free(rec);
    ex_unref(ex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_last_unref_logs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes_not_logged, setup, teardown),
        cmocka_unit_test(test_log_record),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
