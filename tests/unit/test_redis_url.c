/* Unit tests for redis_url.c: the redis block's url (scheme, host, port,
 * database, IPv6 in brackets; no secret in the url, and none echoed back
 * in the message) and HOST:PORT lists, and addresses formatted so that
 * they parse back the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "../../src/redis_url.h"

static void test_url(void **state)
{
    struct redis_url u;
    char err[200];

    (void)state;
    assert_int_equal(redis_url_parse("redis://cache.example.com:6380/3", &u, err, sizeof(err)), 0);
    assert_false(u.tls);
    assert_string_equal(u.host, "cache.example.com");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_int_equal(redis_url_parse("rediss://h", &u, err, sizeof(err)), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("REDIS://[::1]:7000/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(redis_url_parse("redis://[::1]/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 2);
    {
        static const char *const bad[] = {
            "http://h:6379",   "redis://",       "redis:///0",        "redis://h:0",
            "redis://h:70000", "redis://h:x/0",  "redis://h/x",       "redis://::1:6379",
            "redis://h h",     "redis://[zz]:1", "redis://h:6379/-1", "redis://[::1:6379",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            assert_int_equal(redis_url_parse(bad[i], &u, err, sizeof(err)), -1);
    }
    /* a secret in the url is refused, and not echoed */
    assert_int_equal(redis_url_parse("rediss://user:hunter2@h:6379", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "password_env"));
    assert_null(strstr(err, "hunter2"));
}

static void test_addr(void **state)
{
    char host[REDIS_HOST_MAX], out[REDIS_ADDR_MAX], err[100];
    int port;

    (void)state;
    assert_int_equal(
        redis_addr_parse("10.0.0.1:26379", 14, host, sizeof(host), &port, err, sizeof(err)), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 26379);
    /* n bytes only: the rest of the string is not looked at */
    assert_int_equal(redis_addr_parse("a:1junk", 3, host, sizeof(host), &port, err, sizeof(err)),
                     0);
    assert_int_equal(port, 1);
    assert_int_equal(redis_addr_parse("::1:1", 5, host, sizeof(host), &port, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "brackets"));
    redis_addr_format(out, sizeof(out), "::1", 7000);
    assert_string_equal(out, "[::1]:7000");
    redis_addr_format(out, sizeof(out), "h", 1);
    assert_string_equal(out, "h:1");
}

static void test_format_parses_back(void **state)
{
    static const char *const hosts[] = {"10.0.0.1", "::1", "fe80::1:2", "cache.example.com"};
    char out[REDIS_ADDR_MAX], host[REDIS_HOST_MAX], err[100];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        redis_addr_format(out, sizeof(out), hosts[i], 6380);
        assert_int_equal(
            redis_addr_parse(out, strlen(out), host, sizeof(host), &port, err, sizeof(err)), 0);
        assert_string_equal(host, hosts[i]);
        assert_int_equal(port, 6380);
    }
}

static void test_bad_addrs(void **state)
{
    static const char *const bad[] = {
        "",      "h",         "h:",   ":6379",  "h:0",   "h:65536", "h:-1",  "h:1x",
        "[::1]", "[::1]6379", "[]:1", "[zz]:1", "h h:1", "h/x:1",   "a@b:1", "h:123456",
    };
    char host[REDIS_HOST_MAX], err[100];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (redis_addr_parse(bad[i], strlen(bad[i]), host, sizeof(host), &port, err, sizeof(err)) !=
            -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err[0] != '\0'); /* a message for the user */
    }
    /* a host that does not fit the caller's buffer */
    assert_int_equal(redis_addr_parse("longhostname:1", 14, host, 5, &port, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_format_parses_back),
        cmocka_unit_test(test_bad_addrs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
