/* Unit tests for the metrics registry: totals across threads, histogram
 * buckets, label escaping, the series cap, callback gauges, the render cap.
 *
 * With METRICS_DUMP=<file> set, test_dump also writes a sample exposition
 * that uses every family to that file; tests/integration/metrics_format
 * checks it with `promtool check metrics`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module itself, to reach render_max and the shard list. */
#include "../../src/metrics.c"

static int setup(void **state)
{
    (void)state;
    metrics_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    metrics_free();
    render_max = METRICS_RENDER_MAX;
    return 0;
}

static char *render(void)
{
    size_t len;
    char *t = metrics_render(&len);

    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    return t;
}

/* The value of the sample whose name and labels are exactly `series`, or
 * NAN if there is no such line. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NAN;
}

/* How many lines start with prefix. */
static int lines_with(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;

    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, n) == 0)
            count++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return count;
}

static struct metrics_request req(const char *route, int status, const char *cache, uint64_t lat)
{
    struct metrics_request r = {
        .route = route,
        .model = "small",
        .provider = "openai",
        .key = "team-a",
        .status = status,
        .cache = cache,
        .latency_us = lat,
        .upstream_us = lat / 2,
        .prompt_tokens = 10,
        .completion_tokens = 3,
        .cost_usd = 0.25,
    };

    return r;
}

#define THREADS 4
#define ITERS 50000

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITERS; i++) {
        struct metrics_request r = req(i & 1 ? "odd" : "even", i % 4 == 0 ? 500 : 200,
                                       i % 3 == 0 ? "HIT" : "MISS", (uint64_t)(i % 1000) * 100);

        metrics_request(&r);
        if (i % 10 == 0)
            metrics_stage("odd", 0, "small", "escalate");
        if (i % 100 == 0)
            metrics_retry("openai");
    }
    return NULL;
}

static void run_hammer(void)
{
    pthread_t t[THREADS];

    double prev = 0;

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    /* Scrapes while the counts move: each sees a count no lower than the
     * last, and a histogram whose _count is its +Inf bucket. */
    for (int i = 0; i < 20; i++) {
        char *text = render();
        double n = value_of(text, "sluice_request_duration_seconds_count{route=\"odd\"}");

        if (!isnan(n)) {
            assert_true(n >= prev);
            assert_true(n == value_of(text, "sluice_request_duration_seconds_bucket{route=\"odd\","
                                            "le=\"+Inf\"}"));
            prev = n;
        }
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

/* Per thread and ITERS, how many i in [0, ITERS) satisfy pred. */
static long count_if(int (*pred)(int))
{
    long n = 0;

    for (int i = 0; i < ITERS; i++)
        n += pred(i);
    return n * THREADS;
}

static int odd_200_hit(int i)
{
    return (i & 1) && i % 3 == 0;
}
static int even_500_hit(int i)
{
    return !(i & 1) && i % 4 == 0 && i % 3 == 0;
}
static int even_200_miss(int i)
{
    return !(i & 1) && i % 4 != 0 && i % 3 != 0;
}
static int hit(int i)
{
    return i % 3 == 0;
}
static int tenth(int i)
{
    return i % 10 == 0;
}

static void test_threads_add_up(void **state)
{
    char *t;
    const long total = (long)THREADS * ITERS;
    double sum = 0;
    const char *routes[] = {"even", "odd"}, *statuses[] = {"200", "500"},
               *caches[] = {"HIT", "MISS"};
    struct shard *sh;
    int nshards = 0;

    (void)state;
    /* Twice: the second batch of threads takes over the shards the first
     * left, and the counts keep adding up. */
    for (int round = 1; round <= 2; round++) {
        run_hammer();
        t = render();
        sum = 0;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 2; c++) {
                    char s[256];

                    snprintf(s, sizeof(s),
                             "sluice_requests_total{route=\"%s\",model=\"small\",status=\"%s\","
                             "cache=\"%s\"}",
                             routes[a], statuses[b], caches[c]);
                    if (!isnan(value_of(t, s)))
                        sum += value_of(t, s);
                }
        assert_true(sum == (double)total * round);
        assert_true(value_of(t, "sluice_requests_total{route=\"odd\",model=\"small\",status="
                                "\"200\",cache=\"HIT\"}") == (double)count_if(odd_200_hit) * round);
        /* an odd i is never a multiple of 4: no such series */
        assert_true(isnan(value_of(t, "sluice_requests_total{route=\"odd\",model=\"small\","
                                      "status=\"500\",cache=\"HIT\"}")));
        assert_true(value_of(t,
                             "sluice_requests_total{route=\"even\",model=\"small\",status="
                             "\"500\",cache=\"HIT\"}") == (double)count_if(even_500_hit) * round);
        assert_true(value_of(t,
                             "sluice_requests_total{route=\"even\",model=\"small\",status="
                             "\"200\",cache=\"MISS\"}") == (double)count_if(even_200_miss) * round);
        assert_true(value_of(t, "sluice_tokens_total{route=\"even\",model=\"small\",key=\"team-a\","
                                "kind=\"prompt\"}") == 10.0 * total / 2 * round);
        assert_true(value_of(t, "sluice_tokens_total{route=\"odd\",model=\"small\",key=\"team-a\","
                                "kind=\"completion\"}") == 3.0 * total / 2 * round);
        /* 0.25 is exact in binary, so the sum is too */
        assert_true(
            value_of(t, "sluice_cost_usd_total{route=\"odd\",model=\"small\",key=\"team-a\"}") ==
            0.25 * total / 2 * round);
        assert_true(value_of(t, "sluice_cache_lookups_total{result=\"hit\"}") ==
                    (double)count_if(hit) * round);
        assert_true(value_of(t, "sluice_cache_lookups_total{result=\"miss\"}") ==
                    (double)(total - count_if(hit)) * round);
        assert_true(value_of(t, "sluice_cache_lookups_total{result=\"error\"}") == 0);
        assert_true(value_of(t, "sluice_request_duration_seconds_count{route=\"odd\"}") ==
                    (double)total / 2 * round);
        assert_true(
            value_of(t, "sluice_request_duration_seconds_bucket{route=\"odd\",le=\"+Inf\"}") ==
            (double)total / 2 * round);
        assert_true(value_of(t, "sluice_upstream_duration_seconds_count{provider=\"openai\"}") ==
                    (double)(total - (long)THREADS * (ITERS / 1000)) *
                        round); /* latency 0: no upstream time */
        assert_true(value_of(t, "sluice_cascade_stage_decisions_total{route=\"odd\",stage=\"0\","
                                "model=\"small\",decision=\"escalate\"}") ==
                    (double)count_if(tenth) * round);
        assert_true(value_of(t, "sluice_upstream_retries_total{provider=\"openai\"}") ==
                    (double)THREADS * (ITERS / 100) * round);
        free(t);
    }
    for (sh = registry.shards; sh; sh = sh->next)
        nshards++;
    assert_true(nshards >= 1 && nshards <= THREADS);
}

static void test_histogram(void **state)
{
    /* 500 µs is on the first bound (le is "less or equal"), 501 is not. */
    static const uint64_t lat[] = {400, 500, 501, 3000000, 200000000};
    uint64_t total = 0;
    char *t;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(lat); i++) {
        struct metrics_request r = {.route = "r",
                                    .status = 200,
                                    .latency_us = lat[i],
                                    .upstream_us = i == 4 ? lat[i] + 5 : 100,
                                    .stream = i >= 3,
                                    .ttft_us = i == 3 ? 700 : 0};

        metrics_request(&r);
        total += lat[i];
    }
    t = render();
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"0.0005\"}") ==
                2);
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"0.001\"}") ==
                3);
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"2.5\"}") == 3);
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"5\"}") == 4);
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"120\"}") == 4);
    assert_true(value_of(t, "sluice_request_duration_seconds_bucket{route=\"r\",le=\"+Inf\"}") ==
                5);
    assert_true(value_of(t, "sluice_request_duration_seconds_count{route=\"r\"}") == 5);
    assert_true(value_of(t, "sluice_request_duration_seconds_sum{route=\"r\"}") ==
                (double)total / 1e6);
    assert_non_null(strstr(t, "sluice_request_duration_seconds_sum{route=\"r\"} 203.001401\n"));
    /* Buckets are cumulative: never decreasing along le. */
    {
        double prev = 0;

        for (int i = 0; i < NBUCKETS; i++) {
            char s[128];
            double v;

            snprintf(s, sizeof(s), "sluice_request_duration_seconds_bucket{route=\"r\",le=\"%s\"}",
                     bucket_le[i]);
            v = value_of(t, s);
            assert_false(isnan(v));
            assert_true(v >= prev);
            prev = v;
        }
    }
    /* Overhead is latency - upstream, floored at 0: 300, 400, 401, 2999900, 0 µs. */
    assert_true(value_of(t, "sluice_gateway_overhead_seconds_bucket{route=\"r\",le=\"0.0005\"}") ==
                4);
    assert_true(value_of(t, "sluice_gateway_overhead_seconds_count{route=\"r\"}") == 5);
    assert_true(value_of(t, "sluice_gateway_overhead_seconds_sum{route=\"r\"}") == 3.001001);
    /* TTFT only for the streamed request that had one. */
    assert_true(value_of(t, "sluice_ttft_seconds_count{route=\"r\"}") == 1);
    assert_true(value_of(t, "sluice_ttft_seconds_bucket{route=\"r\",le=\"0.001\"}") == 1);
    assert_true(value_of(t, "sluice_ttft_seconds_sum{route=\"r\"}") == 0.0007);
    /* The upstream histogram has the NULL provider as "". */
    assert_true(value_of(t, "sluice_upstream_duration_seconds_count{provider=\"\"}") == 5);
    /* No tokens, no cost, no cache status: no such series. */
    assert_int_equal(lines_with(t, "sluice_tokens_total{"), 0);
    assert_int_equal(lines_with(t, "sluice_cost_usd_total{"), 0);
    assert_true(value_of(t, "sluice_cache_lookups_total{result=\"hit\"}") == 0);
    free(t);
}

static void test_labels(void **state)
{
    struct metrics_request r = {.status = 404};
    char *t, longv[METRICS_LABEL_MAX + 50];

    (void)state;
    metrics_request(&r); /* every string NULL */
    r.route = "a\"b\\c\nd";
    r.model = "mod\xc3\xa8le"; /* valid UTF-8: kept */
    r.key = "bad\xff\xc3";     /* invalid: U+FFFD each */
    r.cache = "BYPASS";
    r.prompt_tokens = 1;
    metrics_request(&r);
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    metrics_limited(longv, "rpm");
    longv[METRICS_LABEL_MAX + 10] = '\0'; /* same first 256 bytes: same series */
    metrics_limited(longv, "rpm");
    metrics_limited(NULL, NULL);
    metrics_redis_error();
    metrics_redis_error();

    t = render();
    assert_true(
        value_of(t, "sluice_requests_total{route=\"\",model=\"\",status=\"404\",cache=\"\"}") == 1);
    assert_true(value_of(t,
                         "sluice_requests_total{route=\"a\\\"b\\\\c\\nd\",model=\"mod\xc3\xa8le\","
                         "status=\"404\",cache=\"BYPASS\"}") == 1);
    assert_true(value_of(t, "sluice_tokens_total{route=\"a\\\"b\\\\c\\nd\",model=\"mod\xc3\xa8le\","
                            "key=\"bad\xef\xbf\xbd\xef\xbf\xbd\",kind=\"prompt\"}") == 1);
    /* BYPASS counts no lookup */
    assert_true(value_of(t, "sluice_cache_lookups_total{result=\"hit\"}") == 0);
    assert_true(value_of(t, "sluice_cache_lookups_total{result=\"miss\"}") == 0);
    {
        char s[METRICS_LABEL_MAX + 100];

        snprintf(s, sizeof(s), "sluice_limited_total{key=\"%.*s\",limit=\"rpm\"}",
                 METRICS_LABEL_MAX, longv);
        assert_true(value_of(t, s) == 2);
    }
    assert_true(value_of(t, "sluice_limited_total{key=\"\",limit=\"\"}") == 1);
    assert_true(value_of(t, "sluice_redis_errors_total") == 2);
    /* Every family has its HELP and TYPE, in that order. */
    for (int i = 0; i < FAM_COUNT; i++) {
        char help[128], type[128];
        const char *h, *ty;

        snprintf(help, sizeof(help), "# HELP %s ", family_defs[i].name);
        snprintf(type, sizeof(type), "# TYPE %s ", family_defs[i].name);
        h = strstr(t, help);
        ty = strstr(t, type);
        assert_non_null(h);
        assert_non_null(ty);
        assert_true(h < ty);
    }
    assert_non_null(strstr(t, "# TYPE sluice_request_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "# TYPE sluice_circuit_breaker_state gauge\n"));
    assert_non_null(strstr(t, "# TYPE sluice_cost_usd_total counter\n"));
    free(t);
}

static void test_series_cap(void **state)
{
    char key[32], *t;

    (void)state;
    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        metrics_limited(key, "tpm");
    }
    metrics_limited("k0", "tpm"); /* an existing series still counts on its own */
    t = render();
    assert_int_equal(lines_with(t, "sluice_limited_total{"), METRICS_MAX_SERIES + 1);
    assert_true(value_of(t, "sluice_limited_total{key=\"_overflow\",limit=\"_overflow\"}") == 50);
    assert_true(value_of(t, "sluice_limited_total{key=\"k0\",limit=\"tpm\"}") == 2);
    assert_true(value_of(t, "sluice_limited_total{key=\"k9999\",limit=\"tpm\"}") == 1);
    assert_true(isnan(value_of(t, "sluice_limited_total{key=\"k10000\",limit=\"tpm\"}")));
    free(t);
}

static double fixed_cb(void *arg)
{
    return *(double *)arg;
}

static void test_gauges(void **state)
{
    static double inflight = 7, bytes = 1.5e9, broken = NAN;
    char *t;

    (void)state;
    metrics_gauge_fn("sluice_inflight_requests", "Requests in flight.", fixed_cb, &inflight);
    metrics_gauge_fn("sluice_cache_bytes", "Bytes in the memory cache.\nSecond line \\ here.",
                     fixed_cb, &bytes);
    metrics_gauge_fn("sluice_broken", NULL, fixed_cb, &broken);
    metrics_breaker("openai", 2);
    metrics_breaker("azure", 1);
    metrics_breaker("azure", 0);
    inflight = 9;
    t = render();
    assert_non_null(strstr(t,
                           "# HELP sluice_inflight_requests Requests in flight.\n"
                           "# TYPE sluice_inflight_requests gauge\nsluice_inflight_requests 9\n"));
    assert_non_null(strstr(t, "# HELP sluice_cache_bytes Bytes in the memory cache.\\nSecond line "
                              "\\\\ here.\n"));
    assert_true(value_of(t, "sluice_cache_bytes") == 1.5e9);
    assert_non_null(strstr(t, "\nsluice_broken NaN\n"));
    assert_true(value_of(t, "sluice_circuit_breaker_state{provider=\"openai\"}") == 2);
    assert_true(value_of(t, "sluice_circuit_breaker_state{provider=\"azure\"}") == 0);
    free(t);
}

static void test_floats(void **state)
{
    char *t;

    (void)state;
    metrics_saved("c", 0.1);
    metrics_saved("c", 0.2);
    metrics_saved("neg", -0.5);
    metrics_saved("nan", NAN); /* ignored: it would poison the sum */
    t = render();
    /* shortest text that reads back as the same double */
    assert_non_null(strstr(t, "sluice_cascade_saved_usd_total{route=\"c\"} 0.30000000000000004\n"));
    assert_non_null(strstr(t, "sluice_cascade_overspent_usd_total{route=\"neg\"} 0.5\n"));
    assert_null(strstr(t, "route=\"nan\""));
    free(t);
}

/* Past the size cap the text stops after the last whole family. */
static void test_render_cap(void **state)
{
    static const char note[] = "# sluice: exposition truncated at its size cap\n";
    char *full, *t;
    const char *end;
    size_t full_len, len;

    (void)state;
    metrics_redis_error();
    full = metrics_render(&full_len);
    assert_null(strstr(full, "truncated"));
    assert_non_null(strstr(full, "sluice_redis_errors_total 1\n"));
    /* Cut inside the last family: it goes, everything before it stays. */
    render_max = full_len - 20;
    t = metrics_render(&len);
    assert_true(len <= render_max);
    end = strstr(t, note);
    assert_non_null(end);
    assert_int_equal((size_t)(end - t) + strlen(note), len);
    assert_memory_equal(t, full, (size_t)(end - t));
    assert_null(strstr(t, "sluice_redis_errors_total"));
    assert_non_null(strstr(t, "# TYPE sluice_limited_total counter\n"));
    assert_int_equal(full[end - t], '#'); /* the cut is at a family's start */
    free(t);
    /* A cap too small for even the note gives an empty text, not a partial one. */
    render_max = 10;
    t = metrics_render(&len);
    assert_int_equal(len, 0);
    free(t);
    free(full);
}

static void test_off(void **state)
{
    struct metrics_request r = {.route = "x", .status = 200};
    size_t len = 99;
    char *t;

    (void)state;
    metrics_free();
    metrics_request(&r);
    metrics_stage("x", 1, "m", "accept");
    metrics_redis_error();
    metrics_breaker("p", 2);
    t = metrics_render(&len);
    assert_string_equal(t, "");
    assert_int_equal(len, 0);
    free(t);
    metrics_init(); /* for the teardown */
}

/* A sample that uses every family with awkward labels; written to
 * $METRICS_DUMP for promtool when that is set. */
static void test_dump(void **state)
{
    static double inflight = 3;
    const char *path = getenv("METRICS_DUMP");
    struct metrics_request r = req("smart", 200, "MISS", 1200000);
    char *t;
    size_t len;

    (void)state;
    r.stream = 1;
    r.ttft_us = 350000;
    r.cost_usd = 0.000123;
    metrics_request(&r);
    r = req("smart", 200, "HIT", 800);
    r.upstream_us = 0;
    r.cost_usd = 0;
    metrics_request(&r);
    r = req(NULL, 404, NULL, 90);
    r.model = r.provider = r.key = NULL;
    metrics_request(&r);
    r = req("we\"ird\\route\n", 502, "ERROR", 30000000);
    metrics_request(&r);
    metrics_stage("smart", 0, "small", "escalate");
    metrics_stage("smart", 1, "large", "accept");
    metrics_saved("smart", -0.0004);
    metrics_retry("openai");
    metrics_breaker("openai", 1);
    metrics_limited("team-a", "rpm");
    metrics_redis_error();
    metrics_gauge_fn("sluice_inflight_requests", "Requests in flight.", fixed_cb, &inflight);
    t = metrics_render(&len);
    assert_non_null(strstr(t, "sluice_ttft_seconds_bucket{route=\"smart\",le=\"0.5\"} 1\n"));
    if (path) {
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fwrite(t, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_add_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_floats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
