/* Unit tests for cache_redis.c against a real redis-server (started by the
 * test, tests/common/redis_server.h) through the loop's Redis client: a
 * value stored is read back byte for byte with its TTL set, a miss is a
 * miss and not an error, DEL counts, a namespace purge (SCAN + UNLINK over
 * several SCAN pages) removes that namespace's keys and nothing else, and
 * with no Redis, or a Redis that died, every call answers with an error
 * instead of waiting (the cache fails open). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../common/redis_server.h"
#include "../../src/cache_redis.h"
#include "../../src/config.h"
#include "../../src/loop.h"
#include "../../src/redis.h"
#include "../../src/util.h"

struct fix {
    struct test_redis srv;
    struct loop *loop;
    struct redis *r;
    struct loop_timer guard;
    /* what the last callback said */
    int done;
    char err[64];
    char *val;
    size_t len;
    long count;
};

static void guard_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    UNUSED(loop);
    fail_msg("no answer from the cache in 10 s");
}

/* Run the loop until a callback has answered. */
static void wait_answer(struct fix *f)
{
    loop_timer_start(f->loop, &f->guard, 10000000);
    while (!f->done) {
        loop_run(f->loop);
    }
    loop_timer_stop(f->loop, &f->guard);
    f->done = 0;
}

static void note_err(struct fix *f, const char *err)
{
    snprintf(f->err, sizeof(f->err), "%s", err ? err : "");
    f->done = 1;
    loop_stop(f->loop);
}

static void get_cb(void *arg, const char *err, char *val, size_t len)
{
    struct fix *f = arg;

    free(f->val);
    f->val = val;
    f->len = len;
    note_err(f, err);
}

static void count_cb(void *arg, long count, const char *err)
{
    struct fix *f = arg;

    f->count = count;
    note_err(f, err);
}

static int setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));
    struct redis_conf rc = {.timeout_ms = 500, .configured = 1};
    char err[200];

    test_redis_start(&f->srv);
    rc.url = f->srv.url;
    f->loop = loop_new();
    loop_timer_init(&f->guard, guard_cb, f);
    f->r = redis_new(f->loop, &rc, err, sizeof(err));
    assert_non_null(f->r);
    redis_start(f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    redis_free(f->r, 1);
    loop_free(f->loop);
    test_redis_stop(&f->srv);
    free(f->val);
    free(f);
    return 0;
}

static long long ttl_of(struct fix *f, const char *key)
{
    redisReply *rep = redisCommand(f->srv.c, "TTL %s", key);
    long long v;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static void test_set_get(void **state)
{
    struct fix *f = *state;
    const char value[] = {'{', 0, '"', '\n', (char)0xc3, (char)0xa9, '}'};

    cache_redis_get(f->r, "sluice:c:t:miss", get_cb, f);
    wait_answer(f);
    assert_string_equal(f->err, ""); /* a miss is no error */
    assert_null(f->val);
    cache_redis_set(f->r, "sluice:c:t:k", value, sizeof(value), 300);
    cache_redis_get(f->r, "sluice:c:t:k", get_cb, f); /* after the SET, on one connection */
    wait_answer(f);
    assert_string_equal(f->err, "");
    assert_non_null(f->val);
    assert_int_equal(f->len, sizeof(value));
    assert_memory_equal(f->val, value, sizeof(value));
    assert_int_equal(f->val[f->len], '\0');
    assert_true(ttl_of(f, "sluice:c:t:k") > 290 && ttl_of(f, "sluice:c:t:k") <= 300);
    /* a TTL of 0 or less still expires (1 s), never lives forever */
    cache_redis_set(f->r, "sluice:c:t:z", "v", 1, 0);
    cache_redis_get(f->r, "sluice:c:t:z", get_cb, f);
    wait_answer(f);
    assert_int_equal(ttl_of(f, "sluice:c:t:z") >= 0 && ttl_of(f, "sluice:c:t:z") <= 1, 1);
}

static void test_del(void **state)
{
    struct fix *f = *state;

    cache_redis_set(f->r, "sluice:c:t:d", "v", 1, 60);
    cache_redis_del(f->r, "sluice:c:t:d", count_cb, f);
    wait_answer(f);
    assert_string_equal(f->err, "");
    assert_int_equal(f->count, 1);
    cache_redis_del(f->r, "sluice:c:t:d", count_cb, f);
    wait_answer(f);
    assert_int_equal(f->count, 0);
}

/* 1,200 keys of one namespace take three SCAN pages of 500; the other
 * namespace and a key that only looks alike stay. */
static void test_purge_namespace(void **state)
{
    struct fix *f = *state;
    redisReply *rep;

    for (int i = 0; i < 1200; i++)
        redisAppendCommand(f->srv.c, "SET sluice:c:team-a:%d v", i);
    for (int i = 0; i < 30; i++)
        redisAppendCommand(f->srv.c, "SET sluice:c:team-b:%d v", i);
    redisAppendCommand(f->srv.c, "SET sluice:c:team-a v");
    for (int i = 0; i < 1231; i++) {
        assert_int_equal(redisGetReply(f->srv.c, (void **)&rep), REDIS_OK);
        freeReplyObject(rep);
    }
    cache_redis_del_prefix(f->r, "sluice:c:team-a:", count_cb, f);
    wait_answer(f);
    assert_string_equal(f->err, "");
    assert_int_equal(f->count, 1200);
    rep = redisCommand(f->srv.c, "DBSIZE");
    assert_int_equal(rep->integer, 31);
    freeReplyObject(rep);
    cache_redis_del_prefix(f->r, "sluice:c:team-a:", count_cb, f);
    wait_answer(f);
    assert_int_equal(f->count, 0);
}

/* No Redis configured: every call answers "down" at once. */
static void test_no_redis(void **state)
{
    struct fix *f = *state;

    cache_redis_get(NULL, "k", get_cb, f);
    assert_true(f->done);
    assert_string_equal(f->err, "down");
    assert_null(f->val);
    f->done = 0;
    cache_redis_del(NULL, "k", count_cb, f);
    assert_string_equal(f->err, "down");
    assert_int_equal(f->count, -1);
    f->done = 0;
    cache_redis_del_prefix(NULL, "k", count_cb, f);
    assert_string_equal(f->err, "down");
    assert_int_equal(f->count, -1);
    f->done = 0;
    cache_redis_set(NULL, "k", "v", 1, 1); /* nothing to do, no crash */
}

/* The server dies: answers are errors within the timeout, never a wait
 * forever. */
static void test_redis_gone(void **state)
{
    struct fix *f = *state;

    cache_redis_get(f->r, "sluice:c:t:x", get_cb, f);
    wait_answer(f);
    assert_string_equal(f->err, "");
    test_redis_stop(&f->srv);
    cache_redis_get(f->r, "sluice:c:t:x", get_cb, f);
    wait_answer(f);
    assert_string_not_equal(f->err, "");
    assert_null(f->val);
    cache_redis_del_prefix(f->r, "sluice:c:", count_cb, f);
    wait_answer(f);
    assert_string_not_equal(f->err, "");
    assert_int_equal(f->count, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_gone, setup, teardown),
    };

    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
