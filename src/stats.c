/* stats.c - the dashboard's data; see stats.h. */
#include "stats.h"
#include "breaker.h"
#include "caps.h"
#include "config.h"
#include "exchange.h"
#include "log.h"
#include "metrics.h"
#include "otel_export.h"
#include "otlp.h"
#include "scorer.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the prompt a record keeps, with capture_content. */
#define STATS_PROMPT_MAX 512u

struct record {
    char *json; /* the log record, one JSON object */
    size_t len;
    char *prompt; /* NULL unless capture_content */
};

static struct {
    pthread_mutex_t mu;
    struct record ring[STATS_RING_RECORDS];
    size_t next; /* the slot the next record takes */
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER};

int stats_keeps(const struct exchange *ex)
{
    return ex->is_api && ex->cfg != NULL && ex->cfg->admin.listen != NULL;
}

void stats_request(const struct exchange *ex, char *record, size_t len)
{
    struct record r = {.json = record, .len = len}, old;

    if (ex->cfg->otel.capture_content && ex->ri.body) {
        char *q = request_query_text(&ex->ri);

        if (q) {
            size_t n;

            r.prompt = xmalloc(STATS_PROMPT_MAX + 1);
            n = otlp_utf8_clean(q, strlen(q), r.prompt, STATS_PROMPT_MAX);
            r.prompt[n] = '\0';
            free(q);
        }
    }
    pthread_mutex_lock(&ring.mu);
    old = ring.ring[ring.next];
    ring.ring[ring.next] = r;
    ring.next = (ring.next + 1) % STATS_RING_RECORDS;
    pthread_mutex_unlock(&ring.mu);
    free(old.json);
    free(old.prompt);
}

void stats_free(void)
{
    pthread_mutex_lock(&ring.mu);
    for (size_t i = 0; i < STATS_RING_RECORDS; i++) {
        free(ring.ring[i].json);
        free(ring.ring[i].prompt);
        memset(&ring.ring[i], 0, sizeof(ring.ring[i]));
    }
    pthread_mutex_unlock(&ring.mu);
}

/* The ring, newest first. Records are parsed here, off the hot path; one
 * that does not parse (a log field with bytes that are not UTF-8) is
 * left out. */
static json_t *recent_json(void)
{
    json_t *out = json_array();
    struct record copy[STATS_RING_RECORDS];
    size_t next;

    pthread_mutex_lock(&ring.mu);
    next = ring.next;
    for (size_t i = 0; i < STATS_RING_RECORDS; i++) {
        copy[i].json = ring.ring[i].json ? xstrndup(ring.ring[i].json, ring.ring[i].len) : NULL;
        copy[i].len = ring.ring[i].len;
        copy[i].prompt = ring.ring[i].prompt ? xstrdup(ring.ring[i].prompt) : NULL;
    }
    pthread_mutex_unlock(&ring.mu);
    for (size_t k = 1; k <= STATS_RING_RECORDS; k++) {
        struct record *r = &copy[(next + STATS_RING_RECORDS - k) % STATS_RING_RECORDS];
        json_t *j = r->json ? json_loadb(r->json, r->len, 0, NULL) : NULL;

        if (j && r->prompt)
            json_object_set_new(j, "prompt", json_string(r->prompt));
        if (j)
            json_array_append_new(out, j);
        free(r->json);
        free(r->prompt);
    }
    return out;
}

/* Each route's stages, so the page can name them: [{name, kind,
 * stages: [{models, scorer, threshold}]}]. */
static json_t *routes_json(const struct config *cfg)
{
    static const char *const kinds[] = {"single", "fallback", "cascade"};
    json_t *out = json_array();

    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct route *rt = &cfg->routes[i];
        json_t *stages;

        if (rt->implicit)
            continue;
        stages = json_array();
        for (size_t s = 0; s < rt->nstages; s++) {
            json_t *models = json_array();

            for (size_t m = 0; m < rt->stages[s].nmodels; m++)
                json_array_append_new(models, json_string(rt->stages[s].models[m]->name));
            json_array_append_new(stages, json_pack("{s:o, s:s, s:f}", "models", models, "scorer",
                                                    scorer_name(rt->stages[s].scorer), "threshold",
                                                    rt->stages[s].threshold));
        }
        json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "name", rt->name, "kind",
                                             kinds[rt->kind], "stages", stages));
    }
    return out;
}

static json_t *otel_json(const struct config *cfg)
{
    struct otel_export_stats st;

    otel_export_stats(&st);
    return json_pack("{s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "enabled",
                     cfg->otel.endpoint != NULL, "sample_ratio", cfg->otel.sample_ratio, "exported",
                     (json_int_t)st.exported, "dropped", (json_int_t)st.dropped, "failed",
                     (json_int_t)st.failed, "too_large", (json_int_t)st.too_large, "queued",
                     (json_int_t)st.queued, "exports", (json_int_t)st.exports);
}

json_t *stats_json(const struct config *cfg, uint64_t started_us)
{
    return json_pack("{s:f, s:f, s:s, s:o, s:o, s:o, s:o, s:o, s:b}", "time", wall_time(),
                     "uptime_s", (double)(now_us() - started_us) / 1e6, "version", SLUICE_VERSION,
                     "metrics", metrics_json(), "recent", recent_json(), "breakers",
                     breaker_report(), "routes", routes_json(cfg), "otel", otel_json(cfg),
                     "capture_content", cfg->otel.capture_content);
}
