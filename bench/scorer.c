/* bench/scorer.c - how long a rules or learned score takes per stage.
 *
 * usage: bench-scorer WEIGHTS DATA.jsonl
 * Scores every (prompt, answer) of DATA with the learned weights and with
 * the rules, several rounds, and prints one JSON line with the mean and the
 * 99th percentile in microseconds. A stage scores one answer, so this is the
 * time a cascade stage spends in its scorer. When the weights read peers'
 * answers, each answer is scored with the peers' recorded answers to the
 * same prompt (the records where they all answered). */
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

#define MAX_PEERS 4

struct item {
    char *prompt;
    char *answer;
    char *peer[MAX_PEERS];
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
    /* The median too: on a shared machine a preempted call or two in a
     * hundred moves the mean, not the median. */
    printf("\"%s_mean_us\":%.3f,\"%s_p50_us\":%.3f,\"%s_p99_us\":%.3f", name,
           sum / (double)n / 1000.0, name, (double)ns[n / 2] / 1000.0, name,
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
    size_t n = 0, k = 0, npeers;
    char *peer_names[MAX_PEERS];
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
    /* The peers' names, as the weights file lists them. */
    npeers = learned_peers(w);
    if (npeers > MAX_PEERS) {
        fprintf(stderr, "bench-scorer: more than %d peers\n", MAX_PEERS);
        return 1;
    }
    {
        const char *p = learned_peer_names(w);

        for (size_t i = 0; i < npeers; i++) {
            const char *c = strchr(p, ',');

            peer_names[i] = c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p);
            p = c ? c + 1 : p + strlen(p);
        }
    }
    while (fgets(line, sizeof(line), f) && n < MAX_ITEMS) {
        json_t *j = json_loads(line, 0, NULL), *ans, *all = json_object_get(j, "answers");
        const char *model;
        const char *pv[MAX_PEERS];
        int complete = 1;

        for (size_t i = 0; i < npeers; i++) {
            pv[i] =
                json_string_value(json_object_get(json_object_get(all, peer_names[i]), "content"));
            complete &= pv[i] != NULL;
        }
        json_object_foreach (all, model, ans) {
            if (n < MAX_ITEMS && complete && json_is_string(json_object_get(ans, "content"))) {
                items[n].prompt = xstrdup(json_string_value(json_object_get(j, "prompt")));
                items[n].answer = xstrdup(json_string_value(json_object_get(ans, "content")));
                for (size_t i = 0; i < npeers; i++)
                    items[n].peer[i] = xstrdup(pv[i]);
                n++;
            }
        }
        json_decref(j);
    }
    if (n == 0) {
        fprintf(stderr, "bench-scorer: no answers to score (peers missing?)\n");
        return 1;
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
            sink += learned_score(w, items[i].prompt, items[i].answer, "stop",
                                  (const char *const *)items[i].peer, npeers);
            t1 = now_ns();
            sink += scorer_rules(&rep, 0) == VETO_NONE;
            t2 = now_ns();
            tl[k] = t1 - t0;
            tr[k] = t2 - t1;
            reply_free(&rep);
        }
    }
    printf("{\"answers\":%zu,\"peers\":%zu,", n, npeers);
    report("learned", tl, k);
    putchar(',');
    report("rules", tr, k);
    printf("}\n");
    for (size_t i = 0; i < n; i++) {
        free(items[i].prompt);
        free(items[i].answer);
        for (size_t p = 0; p < npeers; p++)
            free(items[i].peer[p]);
    }
    for (size_t p = 0; p < npeers; p++)
        free(peer_names[p]);
    free(tl);
    free(tr);
    learned_free(w);
    return sink < 0;
}
