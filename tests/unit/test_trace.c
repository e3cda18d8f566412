/* Unit tests for trace.c, the inference table, as sluice-tune and an
 * analyst read it: one JSON object per stage with every documented field,
 * the prompt and the answer only with include_content, a score that is not
 * a number written as null, invalid UTF-8 from an upstream made valid
 * rather than the record lost, records batched until trace_flush, a
 * reopen and a close; and with stream_on the same record as fields of an
 * entry of a Redis Stream (on a real redis-server), kept near maxlen, on the
 * client lent with trace_set_redis and on no other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/redis_server.h"
#include "../common/unit.h"
#include "../../src/loop.h"
#include "../../src/redis.h"
#include "../../src/trace.h"
#include "../../src/util.h"

static char path[] = "/tmp/test_trace.XXXXXX";

static struct trace_rec rec(void)
{
    struct trace_rec r = {
        .request_id = "req_1",
        .route = "smart",
        .stage = 1,
        .model = "big",
        .has_score = 1,
        .score = 0.75,
        .decision = "accept",
        .prompt_tokens = 12,
        .completion_tokens = 34,
        .cost_usd = 0.00125,
        .latency_ms = 42.5,
        .prompt = "What is 2+2?",
        .answer = "4",
    };

    return r;
}

static int setup(void **state)
{
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/test_trace.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    struct trace_conf off = {.path = NULL};

    (void)state;
    assert_int_equal(trace_open(&off), 0);
    unlink(path);
    return 0;
}

static void test_record(void **state)
{
    struct trace_conf tc = {.path = path};
    struct trace_rec r = rec();
    json_t *arr, *o;
    const char *ts;

    (void)state;
    assert_int_equal(trace_open(&tc), 0);
    trace_write(&tc, &r);
    r.stage = 0;
    r.has_score = 0;
    r.decision = "escalate";
    r.reason = "vetoed: empty";
    r.retries = 2;
    r.cache = "MISS";
    trace_write(&tc, &r);
    trace_flush();
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 2);
    o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "req_1");
    assert_string_equal(json_string_value(json_object_get(o, "route")), "smart");
    assert_int_equal(json_integer_value(json_object_get(o, "stage")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "model")), "big");
    assert_float_equal(json_real_value(json_object_get(o, "score")), 0.75, 1e-12);
    assert_string_equal(json_string_value(json_object_get(o, "decision")), "accept");
    assert_int_equal(json_integer_value(json_object_get(o, "prompt_tokens")), 12);
    assert_int_equal(json_integer_value(json_object_get(o, "completion_tokens")), 34);
    assert_float_equal(json_real_value(json_object_get(o, "cost_usd")), 0.00125, 1e-15);
    assert_float_equal(json_real_value(json_object_get(o, "latency_ms")), 42.5, 1e-12);
    ts = json_string_value(json_object_get(o, "ts"));
    assert_int_equal(strlen(ts), 24); /* 2026-01-02T03:04:05.678Z */
    assert_true(ts[10] == 'T' && ts[23] == 'Z');
    /* the optional fields only when there is something to say */
    assert_null(json_object_get(o, "reason"));
    assert_null(json_object_get(o, "retries"));
    assert_null(json_object_get(o, "cache"));
    /* no content unless include_content */
    assert_null(json_object_get(o, "prompt"));
    assert_null(json_object_get(o, "answer"));
    o = json_array_get(arr, 1);
    assert_true(json_is_null(json_object_get(o, "score")));
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "vetoed: empty");
    assert_int_equal(json_integer_value(json_object_get(o, "retries")), 2);
    assert_string_equal(json_string_value(json_object_get(o, "cache")), "MISS");
    json_decref(arr);
}

static void test_content_and_bad_values(void **state)
{
    struct trace_conf tc = {.path = path, .include_content = 1};
    struct trace_rec r = rec();
    json_t *arr, *o;

    (void)state;
    assert_int_equal(trace_open(&tc), 0);
    r.answer = "caf\xc3\xa9 \xff\xfe"; /* an upstream's invalid UTF-8 */
    r.score = NAN;
    trace_write(&tc, &r);
    r.answer = NULL;
    trace_write(&tc, &r);
    trace_flush();
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 2);
    o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "prompt")), "What is 2+2?");
    assert_string_equal(json_string_value(json_object_get(o, "answer")),
                        "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
    assert_true(json_is_null(json_object_get(o, "score")));
    assert_true(json_is_null(json_object_get(json_array_get(arr, 1), "answer")));
    json_decref(arr);
}

/* Records are batched: none is written until a flush (the loop's timer),
 * and trace_open with no path closes the file. */
static void test_batched_and_closed(void **state)
{
    struct trace_conf tc = {.path = path}, off = {.path = NULL};
    struct trace_rec r = rec();
    json_t *arr;
    char *text;

    (void)state;
    assert_int_equal(trace_open(&tc), 0);
    trace_write(&tc, &r);
    text = test_slurp(path);
    assert_string_equal(text, "");
    free(text);
    trace_flush();
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 1);
    json_decref(arr);
    /* closed: what waits is written, later records go nowhere */
    trace_write(&tc, &r);
    assert_int_equal(trace_open(&off), 0);
    trace_write(&off, &r);
    trace_flush();
    arr = test_json_lines(path);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
}

/* ---- the Redis Stream ---- */

static void pong_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(reply);
    assert_null(err);
    loop_stop(arg);
}

/* The value of field in a stream entry's flat [f1, v1, f2, v2...] list. */
static const char *entry_field(const redisReply *fields, const char *field)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, field) == 0)
            return fields->element[i + 1]->str;
    return NULL;
}

/* The last entry's stage field (a string the caller frees). */
static char *last_stage(struct test_redis *srv)
{
    redisReply *rep = redisCommand(srv->c, "XREVRANGE sluice:trace:test + - COUNT 1");
    char *stage;

    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 1);
    stage = xstrdup(entry_field(rep->element[0]->element[1], "stage"));
    freeReplyObject(rep);
    return stage;
}

static void test_stream(void **state)
{
    struct test_redis srv;
    struct redis_conf rc = {.timeout_ms = 2000, .configured = 1};
    struct trace_conf tc = {.stream_on = 1, .stream = "sluice:trace:test", .maxlen = 100};
    struct trace_rec r = rec();
    const char *ping[] = {"PING"};
    size_t plen[] = {4};
    redisReply *rep, *fields;
    struct loop *loop;
    struct redis *redis;
    char err[200], *stage;

    (void)state;
    test_redis_start(&srv);
    rc.url = srv.url;
    loop = loop_new();
    redis = redis_new(loop, &rc, err, sizeof(err));
    assert_non_null(redis);
    redis_start(redis);
    trace_set_redis(redis);
    /* no file: the stream only */
    for (int i = 0; i < 300; i++) {
        r.stage = i;
        trace_write(&tc, &r);
    }
    /* one connection keeps the order: the PING answers after every XADD */
    redis_command(redis, 1, ping, plen, pong_cb, loop);
    loop_run(loop);
    rep = redisCommand(srv.c, "XLEN sluice:trace:test");
    /* MAXLEN ~ trims whole nodes of the stream: about maxlen are kept */
    assert_true(rep->integer >= 100 && rep->integer < 300);
    freeReplyObject(rep);
    rep = redisCommand(srv.c, "XREVRANGE sluice:trace:test + - COUNT 1");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 1);
    fields = rep->element[0]->element[1];
    assert_string_equal(entry_field(fields, "request_id"), "req_1");
    assert_string_equal(entry_field(fields, "stage"), "299");
    assert_string_equal(entry_field(fields, "model"), "big");
    assert_string_equal(entry_field(fields, "decision"), "accept");
    assert_string_equal(entry_field(fields, "score"), "0.75");
    assert_string_equal(entry_field(fields, "completion_tokens"), "34");
    assert_null(entry_field(fields, "prompt")); /* no include_content */
    freeReplyObject(rep);
    /* taken back (the owner frees it): the stream is not written */
    trace_set_redis(NULL);
    r.stage = 300;
    trace_write(&tc, &r);
    redis_command(redis, 1, ping, plen, pong_cb, loop);
    loop_run(loop);
    stage = last_stage(&srv);
    assert_string_equal(stage, "299");
    free(stage);
    redis_free(redis, 1);
    loop_free(loop);
    test_redis_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_and_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_and_closed, setup, teardown),
        cmocka_unit_test(test_stream),
    };

    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
