/* trace.c - the inference table; see trace.h. */
#include "trace.h"
#include "sink.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct sink trace_sink = SINK_INIT;

int trace_open(const struct trace_conf *conf)
{
    if (conf->path == NULL) {
        sink_close(&trace_sink);
        return 0;
    }
    return sink_open(&trace_sink, conf->path);
}

void trace_flush(void)
{
    sink_flush(&trace_sink);
}

void trace_write(const struct trace_conf *conf, const struct trace_rec *r)
{
    json_t *o;
    char *line;
    char ts[40];
    double now = wall_time();
    time_t secs = (time_t)now;
    struct tm tm;

    if (conf->path == NULL)
        return;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ",
             (int)((now - (double)secs) * 1000.0));
    o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:f}", "ts", ts, "request_id",
                  r->request_id, "route", r->route, "stage", r->stage, "model", r->model,
                  "decision", r->decision, "prompt_tokens", (json_int_t)r->prompt_tokens,
                  "completion_tokens", (json_int_t)r->completion_tokens, "cost_usd", r->cost_usd,
                  "latency_ms", r->latency_ms);
    if (o == NULL)
        return;
    json_object_set_new(o, "score",
                        r->has_score && isfinite(r->score) ? json_real(r->score) : json_null());
    if (r->reason)
        json_object_set_new(o, "reason", json_string(r->reason));
    if (r->retries)
        json_object_set_new(o, "retries", json_integer(r->retries));
    if (r->cache)
        json_object_set_new(o, "cache", json_string(r->cache));
    if (conf->include_content) {
        json_object_set_new(o, "prompt", r->prompt ? json_string(r->prompt) : json_null());
        json_object_set_new(o, "answer", r->answer ? json_string(r->answer) : json_null());
    }
    line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (line == NULL)
        return;
    sink_write(&trace_sink, line, strlen(line), 1);
    free(line);
}
