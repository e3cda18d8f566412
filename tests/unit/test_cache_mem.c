/* Unit tests for the embedded cache, cache_mem.c: a bounded LRU (the least
 * recently used go first, the bound always holds, a value larger than the
 * bound is not stored), TTLs, replace, delete, namespace purge by prefix,
 * values with any bytes, many keys (the table grows), and many threads at
 * once (workers read while the loop writes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/cache_mem.h"
#include "../../src/util.h"

static void test_mem_lru(void **state)
{
    struct cache_mem *m = cache_mem_new(4096);
    char val[600], key[32], *got;
    size_t len;

    (void)state;
    memset(val, 'v', sizeof(val));
    cache_mem_put(m, "a", "1", 1, 60000);
    got = cache_mem_get(m, "a", &len);
    assert_non_null(got);
    assert_int_equal(len, 1);
    free(got);
    assert_null(cache_mem_get(m, "nope", &len));
    /* fill past the bound: the least recently used go first */
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        cache_mem_put(m, key, val, sizeof(val), 60000);
        free(cache_mem_get(m, "k0", &len)); /* keep k0 warm */
        assert_true(cache_mem_bytes(m) <= 4096);
    }
    assert_non_null(got = cache_mem_get(m, "k0", &len));
    free(got);
    assert_null(cache_mem_get(m, "k1", &len));
    assert_non_null(got = cache_mem_get(m, "k19", &len));
    free(got);
    /* a value that alone exceeds the bound is not stored */
    {
        char *huge = calloc(1, 8192);

        cache_mem_put(m, "huge", huge, 8192, 60000);
        assert_null(cache_mem_get(m, "huge", &len));
        free(huge);
    }
    /* replace, delete, prefix delete */
    cache_mem_put(m, "p:1", "x", 1, 60000);
    cache_mem_put(m, "p:2", "y", 1, 60000);
    cache_mem_put(m, "p:1", "z", 1, 60000);
    got = cache_mem_get(m, "p:1", &len);
    assert_memory_equal(got, "z", 1);
    free(got);
    assert_int_equal(cache_mem_del(m, "p:2"), 1);
    assert_int_equal(cache_mem_del(m, "p:2"), 0);
    cache_mem_put(m, "p:3", "y", 1, 60000);
    assert_int_equal(cache_mem_del_prefix(m, "p:"), 2);
    cache_mem_free(m);
}

static void test_mem_ttl(void **state)
{
    struct cache_mem *m = cache_mem_new(1 << 20);
    size_t len;

    (void)state;
    cache_mem_put(m, "t", "v", 1, 20);
    cache_mem_put(m, "kept", "v", 1, 600000);
    usleep(30 * 1000);
    assert_null(cache_mem_get(m, "t", &len));
    assert_int_equal(cache_mem_count(m), 1); /* dropped when met */
    free(cache_mem_get(m, "kept", &len));
    assert_int_equal(cache_mem_del(m, "kept"), 1);
    assert_int_equal(cache_mem_count(m), 0);
    cache_mem_free(m);
}

static void test_any_bytes(void **state)
{
    struct cache_mem *m = cache_mem_new(1 << 20);
    const char bin[] = {'a', 0, 'b', '\n', (char)0xff};
    char *got;
    size_t len = 99;

    (void)state;
    cache_mem_put(m, "bin", bin, sizeof(bin), 60000);
    got = cache_mem_get(m, "bin", &len);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(got, bin, sizeof(bin));
    assert_int_equal(got[len], '\0'); /* terminated, for text callers */
    free(got);
    cache_mem_put(m, "empty", "", 0, 60000);
    got = cache_mem_get(m, "empty", &len);
    assert_non_null(got); /* a hit, not a miss */
    assert_int_equal(len, 0);
    free(got);
    cache_mem_free(m);
}

/* Bytes are accounted exactly: everything deleted, nothing counted. */
static void test_accounting(void **state)
{
    struct cache_mem *m = cache_mem_new(1 << 20);
    char key[32];

    (void)state;
    assert_int_equal(cache_mem_bytes(m), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "ns1:%d", i);
        cache_mem_put(m, key, key, strlen(key), 60000);
        snprintf(key, sizeof(key), "ns2:%d", i);
        cache_mem_put(m, key, key, strlen(key), 60000);
    }
    assert_int_equal(cache_mem_count(m), 200);
    assert_true(cache_mem_bytes(m) > 200 * 8);
    /* a namespace purge takes its keys only */
    assert_int_equal(cache_mem_del_prefix(m, "ns1:"), 100);
    assert_int_equal(cache_mem_count(m), 100);
    assert_int_equal(cache_mem_del_prefix(m, "ns1:"), 0);
    assert_int_equal(cache_mem_del_prefix(m, "ns2:9"), 11); /* 9, 90..99 */
    assert_int_equal(cache_mem_del_prefix(m, ""), 89);
    assert_int_equal(cache_mem_count(m), 0);
    assert_int_equal(cache_mem_bytes(m), 0);
    cache_mem_free(m);
}

/* Past 1024 entries the table grows; every key is still found. */
static void test_many_keys(void **state)
{
    struct cache_mem *m = cache_mem_new(64 << 20);
    char key[32], *got;
    size_t len;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        cache_mem_put(m, key, key, strlen(key), 600000);
    }
    assert_int_equal(cache_mem_count(m), 20000);
    for (int i = 0; i < 20000; i += 7) {
        snprintf(key, sizeof(key), "key-%d", i);
        got = cache_mem_get(m, key, &len);
        assert_non_null(got);
        assert_string_equal(got, key);
        free(got);
    }
    cache_mem_free(m);
}

#define THREADS 4
#define ROUNDS 20000
#define BOUND (64u << 10)

static void *hammer_main(void *arg)
{
    struct cache_mem *m = arg;
    char key[32], val[256], *got;
    size_t len;

    for (int i = 0; i < ROUNDS; i++) {
        uint64_t r = random_u64();
        int k = (int)(r % 500);

        snprintf(key, sizeof(key), "k%d", k);
        switch ((r >> 32) % 4) {
        case 0:
        case 1:
            /* the value says whose it is: key and a fill of its length */
            memset(val, 'a' + k % 26, sizeof(val));
            cache_mem_put(m, key, val, (size_t)(k % 200) + 1, 600000);
            break;
        case 2:
            got = cache_mem_get(m, key, &len);
            if (got) {
                assert_int_equal(len, (size_t)(k % 200) + 1);
                for (size_t j = 0; j < len; j++)
                    assert_int_equal(got[j], 'a' + k % 26);
                free(got);
            }
            break;
        default:
            cache_mem_del(m, key);
        }
        assert_true(cache_mem_bytes(m) <= BOUND);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct cache_mem *m = cache_mem_new(BOUND);
    pthread_t th[THREADS];

    (void)state;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer_main, m);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(cache_mem_bytes(m) <= BOUND);
    assert_true(cache_mem_count(m) <= 500);
    cache_mem_del_prefix(m, "");
    assert_int_equal(cache_mem_bytes(m), 0);
    cache_mem_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_lru),   cmocka_unit_test(test_mem_ttl),
        cmocka_unit_test(test_any_bytes), cmocka_unit_test(test_accounting),
        cmocka_unit_test(test_many_keys), cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
