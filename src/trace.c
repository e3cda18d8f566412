/* trace.c - the inference table; see trace.h. */
#include "trace.h"
#include "sink.h"
#include "util.h"
#include "log.h"
#include "loop.h"
#include "redis.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct sink trace_sink = SINK_INIT;
/* The loop's Redis client, lent by its owner (trace_set_redis); loop thread. */
static struct redis *stream_redis;

int trace_open(const struct trace_conf *conf)
{
    if (conf->path == NULL) { /* the file; the stream is on the loop's Redis */
        sink_close(&trace_sink);
        return 0;
    }
    return sink_open(&trace_sink, conf->path);
}

static void xadd_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(arg);
    UNUSED(err);
    UNUSED(reply); /* a lost record is counted as a Redis error */
}

/* XADD the record: one field per attribute of o (strings as they are,
 * numbers as JSON writes them). */
static void xadd(const struct trace_conf *conf, json_t *o)
{
    const char *argv[64];
    size_t lens[64];
    char *owned[32];
    char maxlen[24];
    const char *k;
    json_t *v;
    int n = 0, nown = 0;

    snprintf(maxlen, sizeof(maxlen), "%ld", conf->maxlen);
    argv[n++] = "XADD";
    argv[n++] = conf->stream;
    argv[n++] = "MAXLEN";
    argv[n++] = "~";
    argv[n++] = maxlen;
    argv[n++] = "*";
    json_object_foreach (o, k, v) {
        if (n + 2 > (int)ARRAY_LEN(argv) || nown >= (int)ARRAY_LEN(owned))
            break;
        argv[n++] = k;
        if (json_is_string(v)) {
            argv[n++] = json_string_value(v);
        } else {
            owned[nown] = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
            argv[n++] = owned[nown] ? owned[nown] : "null";
            nown++;
        }
    }
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    /* One key: the stream lives on one Cluster slot. */
    redis_command(stream_redis, n, argv, lens, xadd_cb, NULL);
    while (nown > 0)
        free(owned[--nown]);
}

void trace_set_redis(struct redis *r)
{
    stream_redis = r;
}

void trace_flush(void)
{
    sink_flush(&trace_sink);
}

/* A JSON string of s as valid UTF-8 (U+FFFD for what is not): jansson
 * refuses invalid UTF-8, and a value an upstream sent must not cost the
 * record. */
static json_t *safe_string(const char *s)
{
    size_t n = strlen(s), cap = 3 * n + 4;
    char *tmp;
    json_t *j;

    j = json_stringn(s, n);
    if (j)
        return j;
    tmp = xmalloc(cap);
    n = utf8_copy(tmp, cap, s, n);
    j = json_stringn(tmp, n);
    free(tmp);
    sl_assert(j != NULL);
    return j;
}

void trace_write(const struct trace_conf *conf, const struct trace_rec *r)
{
    json_t *o;
    char *line;
    char ts[40];
    double now = wall_time();
    time_t secs = (time_t)now;
    struct tm tm;

    if (conf->path == NULL && (!conf->stream_on || stream_redis == NULL))
        return;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ",
             (int)((now - (double)secs) * 1000.0));
    o = json_pack("{s:s, s:o, s:o, s:i, s:o, s:o, s:I, s:I, s:f, s:f}", "ts", ts, "request_id",
                  safe_string(r->request_id), "route", safe_string(r->route), "stage", r->stage,
                  "model", safe_string(r->model), "decision", safe_string(r->decision),
                  "prompt_tokens", (json_int_t)r->prompt_tokens, "completion_tokens",
                  (json_int_t)r->completion_tokens, "cost_usd", r->cost_usd, "latency_ms",
                  r->latency_ms);
    sl_assert(o != NULL);
    json_object_set_new(o, "score",
                        r->has_score && isfinite(r->score) ? json_real(r->score) : json_null());
    if (r->reason)
        json_object_set_new(o, "reason", safe_string(r->reason));
    if (r->retries)
        json_object_set_new(o, "retries", json_integer(r->retries));
    if (r->cache)
        json_object_set_new(o, "cache", safe_string(r->cache));
    if (conf->include_content) {
        json_object_set_new(o, "prompt", r->prompt ? safe_string(r->prompt) : json_null());
        json_object_set_new(o, "answer", r->answer ? safe_string(r->answer) : json_null());
    }
    if (conf->stream_on && stream_redis)
        xadd(conf, o);
    if (conf->path) {
        line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (line) {
            sink_write(&trace_sink, line, strlen(line), 1);
            free(line);
        }
    }
    json_decref(o);
}
