/* observe.c - the request's log line, metrics, dashboard record and the
 * end of its trace; see observe.h. */
#include "observe.h"
#include "cache_types.h"
#include "caps.h"
#include "cost.h"
#include "dialect.h"
#include "exchange.h"
#include "log.h"
#include "metrics.h"
#include "otel.h"
#include "stats.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* One request's figures into the metrics. */
static void metrics_record(const struct exchange *ex)
{
    struct metrics_request mr = {
        .route = ex->route ? ex->route->name : NULL,
        .model = ex->meta.model,
        .provider = ex->meta.provider,
        .key = ex->key ? ex->key->name : NULL,
        .status = ex->client_status,
        .cache = cache_status_name(ex->meta.cache),
        .stream = ex->ri.stream,
        .latency_us = ex->t_end_us - ex->t_start_us,
        .upstream_us = ex->meta.upstream_us,
        .ttft_us = ex->meta.ttft_us,
        .prompt_tokens = ex->meta.prompt_tokens,
        .completion_tokens = ex->meta.completion_tokens,
        .cost_usd = ex->meta.cost_usd,
        .saved_usd = ex->meta.cache == CACHE_HIT ? ex->meta.saved_cost : 0,
    };

    if (ex->path[0] != '/' || strncmp(ex->path, "/admin/", 7) == 0 ||
        strncmp(ex->path, "/ui", 3) == 0)
        return; /* the admin API and the dashboard are not traffic */
    metrics_request(&mr);
}

/* The request's record: what was asked, who answered, how long it took
 * and what it cost. The log line and the dashboard's ring of recent
 * requests are both made of it. */
static void request_fields(struct log_line *l, const struct exchange *ex)
{
    char cost[48];

    log_str(l, "msg", "request", LOG_VALUE_SHORT);
    log_str(l, "request_id", ex->request_id, LOG_VALUE_SHORT);
    log_str(l, "method", ex->method, LOG_VALUE_SHORT);
    log_str(l, "path", ex->path, LOG_VALUE_PATH);
    if (ex->is_api)
        log_str(l, "dialect", dialect_name(ex->dialect), LOG_VALUE_SHORT);
    log_str(l, "route", ex->route ? ex->route->name : NULL, LOG_VALUE_NAME);
    log_str(l, "model", ex->meta.model, LOG_VALUE_NAME);
    log_str(l, "provider", ex->meta.provider, LOG_VALUE_NAME);
    log_long(l, "status", ex->client_status);
    log_raw(l, "stream", ex->ri.stream ? "true" : "false");
    log_ms(l, "latency_ms", ex->t_end_us - ex->t_start_us);
    log_ms(l, "upstream_ms", ex->meta.upstream_us);
    if (ex->meta.ttft_us)
        log_ms(l, "ttft_ms", ex->meta.ttft_us);
    log_long(l, "prompt_tokens", ex->meta.prompt_tokens);
    log_long(l, "completion_tokens", ex->meta.completion_tokens);
    log_long(l, "cached_tokens", ex->meta.cached_tokens);
    cost_format(ex->meta.cost_usd, cost, sizeof(cost));
    log_raw(l, "cost_usd", cost);
    log_long(l, "attempts", ex->meta.attempts);
    if (ex->meta.retries)
        log_long(l, "retries", ex->meta.retries);
    if (ex->meta.stages.len)
        log_str(l, "stages", ex->meta.stages.data, LOG_VALUE_LONG);
    if (ex->meta.cache != CACHE_NA) {
        log_str(l, "cache", cache_status_name(ex->meta.cache), LOG_VALUE_SHORT);
        if (ex->meta.cache == CACHE_HIT) {
            cost_format(ex->meta.saved_cost, cost, sizeof(cost));
            log_raw(l, "saved_cost_usd", cost);
        }
    }
    if (ex->client_aborted)
        log_str(l, "client", "aborted", LOG_VALUE_SHORT);
    if (ex->err.status)
        log_str(l, "error", ex->err.message, LOG_VALUE_LONG);
}

/* The request's one log line. */
static void log_request(const struct exchange *ex)
{
    enum log_level level = ex->client_status >= 500 ? LOG_WARN : LOG_INFO;
    struct log_line l;

    /* Probes and scrapes come every few seconds: keep them out of the way. */
    if (strcmp(ex->path, "/healthz") == 0 || strcmp(ex->path, "/readyz") == 0 ||
        strcmp(ex->path, "/metrics") == 0)
        level = LOG_DEBUG;
    if (!log_enabled(level))
        return;
    log_line_start(&l, level, ex->t_start_wall);
    l.id = ex->request_id;
    request_fields(&l, ex);
    log_line_end(&l, 1);
}

char *observe_record(const struct exchange *ex, size_t *len)
{
    struct log_line l;

    log_line_start_json(&l, ex->client_status >= 500 ? LOG_WARN : LOG_INFO, ex->t_start_wall);
    request_fields(&l, ex);
    return log_line_take(&l, len);
}

void observe_end(struct exchange *ex)
{
    log_request(ex);
    if (stats_keeps(ex)) {
        size_t len;
        char *rec = observe_record(ex, &len);

        if (rec)
            stats_request(ex, rec, len);
    }
    otel_request_end(ex);
    metrics_record(ex);
}
