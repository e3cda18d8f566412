/* bench/scorer.c - how long a rules or learned score takes per stage.
 *
 * usage: bench-scorer WEIGHTS DATA.jsonl
 * Scores every (prompt, answer) of DATA with the learned weights and with
 * the rules, several rounds, and prints one JSON line with the mean and the
 * 99th percentile in microseconds. A stage scores one answer, so this is the
 * time a cascade stage spends in its scorer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/learned.h"
#include "../src/provider.h"
#include "../src/scorer.h"
#include "../src/util.h"

#define ROUNDS 5
#define MAX_ITEMS 20000

struct item {
    char *prompt;
    char *answer;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *ns, size_t n)
{
    double sum = 0;

    qsort(ns, n, sizeof(*ns), cmp_u64);
    for (size_t i = 0; i < n; i++)
        sum += (double)ns[i];
    printf("\"%s_mean_us\":%.3f,\"%s_p99_us\":%.3f", name, sum / (double)n / 1000.0, name,
           (double)ns[n * 99 / 100] / 1000.0);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static struct item items[MAX_ITEMS];
    char err[256], line[1 << 16];
    struct learned_model *w;
    size_t n = 0, k = 0;
    uint64_t *tl, *tr;
    volatile double sink = 0;
    FILE *f;

    if (argc != 3) {
        fprintf(stderr, "usage: bench-scorer WEIGHTS DATA.jsonl\n");
        return 2;
    }
    w = learned_load(argv[1], err, sizeof(err));
    if (w == NULL) {
        fprintf(stderr, "bench-scorer: %s\n", err);
        return 1;
    }
    f = fopen(argv[2], "r");
    if (f == NULL) {
        perror(argv[2]);
        return 1;
    }
    while (fgets(line, sizeof(line), f) && n < MAX_ITEMS) {
        json_t *j = json_loads(line, 0, NULL), *ans;
        const char *model;

        json_object_foreach (json_object_get(j, "answers"), model, ans) {
            if (n < MAX_ITEMS && json_is_string(json_object_get(ans, "content"))) {
                items[n].prompt = xstrdup(json_string_value(json_object_get(j, "prompt")));
                items[n].answer = xstrdup(json_string_value(json_object_get(ans, "content")));
                n++;
            }
        }
        json_decref(j);
    }
    fclose(f);
    tl = xmalloc(n * ROUNDS * sizeof(*tl));
    tr = xmalloc(n * ROUNDS * sizeof(*tr));
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < n; i++, k++) {
            struct reply rep;
            uint64_t t0, t1, t2;

            reply_init(&rep);
            if (buf_puts(&rep.content, items[i].answer) < 0)
                return 1;
            memcpy(rep.finish_reason, "stop", 5);
            t0 = now_ns();
            sink += learned_score(w, items[i].prompt, items[i].answer, "stop");
            t1 = now_ns();
            sink += scorer_rules(&rep, 0) == VETO_NONE;
            t2 = now_ns();
            tl[k] = t1 - t0;
            tr[k] = t2 - t1;
            reply_free(&rep);
        }
    }
    printf("{\"answers\":%zu,", n);
    report("learned", tl, k);
    putchar(',');
    report("rules", tr, k);
    printf("}\n");
    for (size_t i = 0; i < n; i++) {
        free(items[i].prompt);
        free(items[i].answer);
    }
    free(tl);
    free(tr);
    learned_free(w);
    return sink < 0;
}
