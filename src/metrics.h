/* metrics.h - the Prometheus registry and its text exposition (format 0.0.4).
 *
 * The families are fixed (metrics.c lists them); a series is one label set of
 * a family, made the first time it is seen and kept until metrics_free().
 * Every family holds at most METRICS_MAX_SERIES series: a label set beyond
 * that is counted in one series whose labels are all "_overflow", so no
 * caller can grow memory without bound.
 *
 * Threads: every call below except metrics_init, metrics_free and
 * metrics_gauge_fn may be made from any thread at any time, and costs no
 * lock and no allocation once its series exist (each thread adds into its own
 * cells; metrics_render sums them). Before metrics_init and after
 * metrics_free the recording calls do nothing, so modules that record
 * metrics can be unit-tested without the registry.
 *
 * Strings are borrowed for the duration of the call; NULL renders as "".
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <jansson.h>
#include <stdint.h>

#define METRICS_MAX_SERIES 10000
/* Longer label values are cut to this many bytes (and so share a series). */
#define METRICS_LABEL_MAX 256
/* metrics_render stops at the last whole family that fits in this many bytes. */
#define METRICS_RENDER_MAX (64u << 20)

/* Once at startup, before other threads call in. */
void metrics_init(void);
/* At exit, once no other thread calls in any more: frees everything. */
void metrics_free(void);

/* One finished client request. */
struct metrics_request {
    const char *route;    /* may be NULL (e.g. 404 before routing): label "" */
    const char *model;    /* configured model that answered, or NULL */
    const char *provider; /* or NULL */
    const char *key;      /* client key (tenant) name, or NULL */
    int status;           /* HTTP status sent */
    const char *cache;    /* "HIT","MISS","BYPASS","OFF","ERROR" or NULL */
    int stream;
    uint64_t latency_us, upstream_us, ttft_us; /* upstream 0 = no call; ttft 0 = none */
    long prompt_tokens, completion_tokens;
    double cost_usd;
    double saved_usd; /* a cache hit: what the answer cost when it was made */
};

/* Record one finished request: once per request, from any thread. */
void metrics_request(const struct metrics_request *r);
/* A cascade stage decision: "accept", "escalate", "skip", "error", "salvage". */
void metrics_stage(const char *route, int stage, const char *model, const char *decision);
/* The score a cascade stage's verdict carried (for the mean score). */
void metrics_stage_score(const char *route, int stage, const char *model, double score);
/* n trace spans met `result`: "exported", "dropped", "failed", "too_large". */
void metrics_otel_spans(const char *result, uint64_t n);
/* Cost a cascade request saved against calling the route's final stage
 * alone (may be negative). */
void metrics_saved(const char *route, double usd);
/* An upstream call was retried. */
void metrics_retry(const char *provider);
/* Circuit breaker state of a provider: 0 closed, 1 half-open, 2 open. */
void metrics_breaker(const char *provider, int state);
/* A request was refused by a limit: "rpm", "tpm", "budget" or "inflight". */
void metrics_limited(const char *key, const char *limit);
void metrics_redis_error(void);

/* A gauge read at scrape time (in-flight requests, cache entries...). It is
 * called from the thread that renders, so it must be thread-safe. */
typedef double (*metrics_gauge_cb)(void *arg);
/* Register a label-less gauge, at startup after metrics_init. name must be a
 * valid metric name not used by another family; name and help are copied. */
void metrics_gauge_fn(const char *name, const char *help, metrics_gauge_cb fn, void *arg);

/* The whole exposition, text format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"). Returns a malloc'd,
 * NUL-terminated string the caller frees; *len is its length. Before
 * metrics_init it is empty. */
char *metrics_render(size_t *len);

/* Every family and gauge as JSON, for the dashboard: {name: {"type",
 * "series": [{"labels": {...}, "value"} or, for histograms, {"labels",
 * "buckets": [[upper bound in seconds or null for +Inf, cumulative count],
 * ...], "sum", "count"}]}}. The same sums /metrics renders. Owned by the
 * caller. */
json_t *metrics_json(void);

#endif
