/* Unit tests for what Redis says about its topology (redis_topo.c): CRC16
 * and key slots with Redis's published vectors, MOVED/ASK, CLUSTER SLOTS,
 * and Sentinel's answers; replies are built by hiredis's own reader from
 * RESP text, as they arrive from a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../src/redis_topo.h"

static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static void test_crc16(void **state)
{
    (void)state;
    /* The Cluster specification's check value, and an empty input. */
    assert_int_equal(redis_crc16("123456789", 9), 0x31C3);
    assert_int_equal(redis_crc16("", 0), 0);
}

static void test_key_slot(void **state)
{
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        /* CLUSTER KEYSLOT on redis-server 7.0.15 */
        {"foo", 12182},
        {"bar", 5061},
        {"hello", 866},
        {"123456789", 12739},
        {"{user1000}.following", 3443},
        {"{user1000}.followers", 3443},
        {"foo{}{bar}", 8363},    /* an empty tag: the whole key */
        {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
        {"foo{bar}{zap}", 5061}, /* the first tag only: "bar" */
        {"{}", 15257},
        {"", 0},
        {"sluice:rl:{team-a}:r:1", 983}, /* limits.c's keys share their key's slot */
        {"team-a", 983},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(redis_key_slot(v[i].key, strlen(v[i].key)), v[i].slot);
    /* an unclosed brace hashes the whole key */
    assert_int_equal(redis_key_slot("a{b", 3), redis_crc16("a{b", 3) & 16383);
}

static void test_redirect(void **state)
{
    char addr[REDIS_ADDR_MAX];
    unsigned slot = 99999;
    const char *m;

    (void)state;
    m = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(redis_redirect_parse(m, strlen(m), &slot, addr), 1);
    assert_int_equal(slot, 3999);
    assert_string_equal(addr, "127.0.0.1:6381");
    m = "ASK 16383 [::1]:7000";
    assert_int_equal(redis_redirect_parse(m, strlen(m), &slot, addr), 2);
    assert_int_equal(slot, 16383);
    assert_string_equal(addr, "[::1]:7000");
    m = "MOVED 12 :7002"; /* a node that does not know its own address */
    assert_int_equal(redis_redirect_parse(m, strlen(m), &slot, addr), 1);
    assert_string_equal(addr, ":7002");
    {
        static const char *const bad[] = {
            "MOVED 16384 127.0.0.1:1", "MOVED 1 127.0.0.1", "MOVED x 127.0.0.1:1",
            "MOVED 1 127.0.0.1:0",    "ASK 1",             "MOVED  1 a:1",
            "ERR wrong type",         "MOVED 1 a b:1",     "MOVED 1 a:65536",
            "MOVED 1 ::1:6379",       "MOVED 1 :",         "",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            assert_int_equal(redis_redirect_parse(bad[i], strlen(bad[i]), &slot, addr), 0);
    }
}

static void test_slots(void **state)
{
    struct redis_slot_range *v;
    size_t n;
    char err[200];
    redisReply *r;

    (void)state;
    /* Three masters (one announcing no host: the node asked), replicas. */
    r = resp("*3\r\n"
             "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
             "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"
             "*3\r\n:5461\r\n:10922\r\n*3\r\n$0\r\n\r\n:7002\r\n$2\r\nid\r\n"
             "*3\r\n:10923\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:7003\r\n");
    assert_int_equal(redis_slots_parse(r, "10.1.2.3", 1000, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].from, 0);
    assert_int_equal(v[0].to, 5460);
    assert_string_equal(v[0].addr, "127.0.0.1:7001");
    assert_string_equal(v[1].addr, "10.1.2.3:7002");
    assert_string_equal(v[2].addr, "[::1]:7003");
    free(v);
    /* more masters than the cap */
    assert_int_equal(redis_slots_parse(r, "h", 2, &v, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than 2 masters"));
    freeReplyObject(r);

    {
        static const char *const bad[] = {
            "-ERR This instance has cluster support disabled\r\n",
            "*0\r\n",
            "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\na\r\n:1\r\n\r\n", /* from > to */
            "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",  /* past the last slot */
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",      /* port 0 */
            "*1\r\n*2\r\n:0\r\n:1\r\n",                              /* no master */
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n",    /* a space in the host */
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",           /* the host a number */
            "*1\r\n:1\r\n",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            r = resp(bad[i]);
            assert_int_equal(redis_slots_parse(r, "h", 1000, &v, &n, err, sizeof(err)), -1);
            assert_null(v);
            freeReplyObject(r);
        }
    }
}

static void test_sentinel(void **state)
{
    char addr[REDIS_ADDR_MAX];
    redisReply *r;

    (void)state;
    r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    assert_int_equal(redis_sentinel_master_parse(r, addr), 0);
    assert_string_equal(addr, "127.0.0.1:6380");
    freeReplyObject(r);
    r = resp("*2\r\n$3\r\n::1\r\n$4\r\n6380\r\n");
    assert_int_equal(redis_sentinel_master_parse(r, addr), 0);
    assert_string_equal(addr, "[::1]:6380");
    freeReplyObject(r);
    r = resp("*-1\r\n"); /* a master name this sentinel does not know */
    assert_int_equal(redis_sentinel_master_parse(r, addr), -1);
    freeReplyObject(r);
    r = resp("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n70000\r\n");
    assert_int_equal(redis_sentinel_master_parse(r, addr), -1);
    freeReplyObject(r);

    r = resp("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
             "$40\r\nmymaster 127.0.0.1 6379 127.0.0.1 6380  \r\n");
    assert_int_equal(redis_switch_master_parse(r, "mymaster", addr), -1); /* trailing junk */
    freeReplyObject(r);
    r = resp("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
             "$38\r\nmymaster 127.0.0.1 6379 127.0.0.1 6380\r\n");
    assert_int_equal(redis_switch_master_parse(r, "mymaster", addr), 0);
    assert_string_equal(addr, "127.0.0.1:6380");
    assert_int_equal(redis_switch_master_parse(r, "other", addr), -1);
    assert_int_equal(redis_switch_master_parse(r, "mymaste", addr), -1);
    freeReplyObject(r);
    r = resp("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
    assert_int_equal(redis_switch_master_parse(r, "mymaster", addr), -1);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),    cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_redirect), cmocka_unit_test(test_slots),
        cmocka_unit_test(test_sentinel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
