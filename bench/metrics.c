/* bench/metrics.c - the cost of metrics_request(), per call, on 1..N threads.
 *
 *   build/bench-metrics [calls-per-thread] [max-threads]
 *
 * Each call records a realistic request (3 routes x 4 models x 8 keys, a few
 * statuses and cache results, streamed or not), so every family's lookup and
 * every histogram is on the path. Reports ns per call per thread and the
 * total rate (best of 5 runs); with per-thread cells the rate should grow
 * with the threads. `make bench` builds it and puts the one-thread figure
 * against sluice's CPU per request in bench/RESULTS.md.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../src/metrics.h"
#include "../src/util.h"

static long calls = 5000000;

static const char *const routes[] = {"smart", "cheap", "fallback"};
static const char *const models[] = {"gpt-4o-mini", "gpt-4o", "claude-haiku", "llama-3-8b"};
static const char *const keys[] = {"team-a", "team-b", "team-c", "team-d",
                                   "team-e", "team-f", "team-g", "team-h"};
static const char *const caches[] = {"MISS", "HIT", "BYPASS", "MISS"};

static void *run(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;

    for (long i = 0; i < calls; i++) {
        struct metrics_request r;

        /* xorshift: cheap variety without calling into libc */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r = (struct metrics_request){
            .route = routes[x % 3],
            .model = models[(x >> 8) % 4],
            .provider = "openai",
            .key = keys[(x >> 16) % 8],
            .status = (x >> 24) % 50 ? 200 : 429,
            .cache = caches[(x >> 32) % 4],
            .stream = (x >> 40) & 1,
            .latency_us = (x >> 20) % 3000000,
            .upstream_us = (x >> 20) % 2900000,
            .ttft_us = (x >> 28) % 500000,
            .prompt_tokens = 200,
            .completion_tokens = 50,
            .cost_usd = 0.00012,
        };
        metrics_request(&r);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int max_threads = 2;
    size_t len;
    char *text;

    if (argc > 1)
        calls = strtol(argv[1], NULL, 10);
    if (argc > 2)
        max_threads = (int)strtol(argv[2], NULL, 10);
    metrics_init();
    run((void *)0); /* warm up: make every series once */
    /* Best of 5: the machine is shared, and noise only ever adds time. */
    for (int n = 1; n <= max_threads; n++) {
        uint64_t best = UINT64_MAX;

        for (int rep = 0; rep < 5; rep++) {
            pthread_t t[64];
            uint64_t t0 = now_us(), dt;

            for (int i = 0; i < n; i++)
                pthread_create(&t[i], NULL, run, (void *)(uintptr_t)(i + 1));
            for (int i = 0; i < n; i++)
                pthread_join(t[i], NULL);
            dt = now_us() - t0;
            if (dt < best)
                best = dt;
        }
        printf("%d thread(s): %.1f ns/call per thread, %.2f M calls/s total\n", n,
               (double)best * 1000.0 / (double)calls, (double)calls * n / (double)best);
    }
    text = metrics_render(&len);
    printf("exposition: %zu bytes\n", len);
    {
        uint64_t t0 = now_us();

        for (int i = 0; i < 100; i++)
            free(metrics_render(&len));
        printf("render: %.0f us\n", (double)(now_us() - t0) / 100);
    }
    free(text);
    metrics_free();
    return 0;
}
