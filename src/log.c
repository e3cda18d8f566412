/* log.c - structured logging; see log.h. */
#include "log.h"
#include "cost.h"
#include "exchange.h"
#include "sink.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG_LINE_INIT 1024 /* the buffer grows for a longer line */

static struct sink log_sink = SINK_INIT;
static int log_format = LOG_FORMAT_JSON;
static int log_level = LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_open(const struct log_conf *conf)
{
    if (sink_open(&log_sink, conf->path) < 0)
        return -1;
    __atomic_store_n(&log_format, (int)conf->format, __ATOMIC_RELAXED);
    __atomic_store_n(&log_level, (int)conf->level, __ATOMIC_RELAXED);
    return 0;
}

void log_flush(void)
{
    sink_flush(&log_sink);
}

/* RFC 3339 UTC timestamp with milliseconds. The date and time to the
 * second are formatted once per second per thread: gmtime_r takes a
 * process-wide lock, and this runs for every request. */
static void format_ts(double t, char out[32])
{
    static __thread time_t last_secs = -1;
    static __thread char last[32];
    static __thread size_t last_len;
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);

    if (secs != last_secs) {
        struct tm tm;

        gmtime_r(&secs, &tm);
        last_len = strftime(last, 26, "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    ms = ms < 0 ? 0 : ms > 999 ? 999 : ms;
    memcpy(out, last, last_len);
    out[last_len] = '.';
    out[last_len + 1] = (char)('0' + ms / 100);
    out[last_len + 2] = (char)('0' + ms / 10 % 10);
    out[last_len + 3] = (char)('0' + ms % 10);
    out[last_len + 4] = 'Z';
    out[last_len + 5] = '\0';
}

static void emit(struct buf *b, int batched)
{
    sink_write(&log_sink, b->data, b->len, batched);
}

/* Start a line: timestamp and level, in the configured format. */
static void line_start(struct buf *b, enum log_level level, double t)
{
    char ts[32];

    format_ts(t, ts);
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON) {
        buf_puts(b, "{\"ts\":\"");
        buf_puts(b, ts);
        buf_puts(b, "\",\"level\":\"");
        buf_puts(b, level_names[level]);
        buf_append(b, "\"", 1);
    } else {
        buf_printf(b, "%s %-5s", ts, level_names[level]);
    }
}

/* ,"key": */
static void put_key(struct buf *b, const char *key)
{
    buf_append(b, ",\"", 2);
    buf_puts(b, key);
    buf_append(b, "\":", 2);
}

static void field_str(struct buf *b, const char *key, const char *v)
{
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON) {
        put_key(b, key);
        if (v)
            buf_put_json_str(b, v);
        else
            buf_puts(b, "null");
    } else if (v) {
        buf_printf(b, strchr(v, ' ') ? " %s=\"%s\"" : " %s=%s", key, v);
    }
}

/* A number or literal (true, false) written as is. */
static void field_raw(struct buf *b, const char *key, const char *v)
{
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON) {
        put_key(b, key);
        buf_puts(b, v);
    } else {
        buf_printf(b, " %s=%s", key, v);
    }
}

static void field_long(struct buf *b, const char *key, long v)
{
    char num[24];

    if (v < 0) {
        num[0] = '-';
        fmt_u64(num + 1, -(uint64_t)v);
    } else {
        fmt_u64(num, (uint64_t)v);
    }
    field_raw(b, key, num);
}

/* Milliseconds with microsecond resolution. */
static void field_ms(struct buf *b, const char *key, uint64_t us)
{
    char num[32];
    unsigned frac = (unsigned)(us % 1000u);
    size_t n = fmt_u64(num, us / 1000u);

    num[n] = '.';
    num[n + 1] = (char)('0' + frac / 100);
    num[n + 2] = (char)('0' + frac / 10 % 10);
    num[n + 3] = (char)('0' + frac % 10);
    num[n + 4] = '\0';
    field_raw(b, key, num);
}

static void line_end(struct buf *b, int batched)
{
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON)
        buf_append(b, "}", 1);
    emit(b, batched);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    struct buf b;
    char msg[2048];
    va_list ap;

    if ((int)level < __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_init(&b, LOG_LINE_INIT);
    line_start(&b, level, wall_time());
    field_str(&b, "msg", msg);
    line_end(&b, 0);
    buf_free(&b);
}

void log_request(const struct exchange *ex)
{
    enum log_level level = LOG_INFO;
    struct buf b;
    char cost[48];

    if (ex->client_status >= 500)
        level = LOG_WARN;
    /* Probes and scrapes come every few seconds: keep them out of the way. */
    if (strcmp(ex->path, "/healthz") == 0 || strcmp(ex->path, "/readyz") == 0 ||
        strcmp(ex->path, "/metrics") == 0)
        level = LOG_DEBUG;
    if ((int)level < __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    buf_init(&b, LOG_LINE_INIT);
    line_start(&b, level, ex->t_start_wall);
    field_str(&b, "msg", "request");
    field_str(&b, "request_id", ex->request_id);
    field_str(&b, "method", ex->method);
    field_str(&b, "path", ex->path);
    if (ex->is_api)
        field_str(&b, "dialect", dialect_name(ex->dialect));
    field_str(&b, "route", ex->route ? ex->route->name : NULL);
    field_str(&b, "model", ex->meta.model);
    field_str(&b, "provider", ex->meta.provider);
    field_long(&b, "status", ex->client_status);
    field_raw(&b, "stream", ex->ri.stream ? "true" : "false");
    field_ms(&b, "latency_ms", ex->t_end_us - ex->t_start_us);
    field_ms(&b, "upstream_ms", ex->meta.upstream_us);
    if (ex->meta.ttft_us)
        field_ms(&b, "ttft_ms", ex->meta.ttft_us);
    field_long(&b, "prompt_tokens", ex->meta.prompt_tokens);
    field_long(&b, "completion_tokens", ex->meta.completion_tokens);
    cost_format(ex->meta.cost_usd, cost, sizeof(cost));
    field_raw(&b, "cost_usd", cost);
    field_long(&b, "attempts", ex->meta.attempts);
    if (ex->meta.retries)
        field_long(&b, "retries", ex->meta.retries);
    if (ex->meta.stages.len)
        field_str(&b, "stages", ex->meta.stages.data);
    if (ex->meta.cache != CACHE_NA) {
        field_str(&b, "cache", cache_status_name(ex->meta.cache));
        if (ex->meta.cache == CACHE_HIT) {
            cost_format(ex->meta.saved_cost, cost, sizeof(cost));
            field_raw(&b, "saved_cost_usd", cost);
        }
    }
    if (ex->client_aborted)
        field_str(&b, "client", "aborted");
    if (ex->err.status)
        field_str(&b, "error", ex->err.message);
    line_end(&b, 1);
    buf_free(&b);
}
