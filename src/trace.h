/* trace.h - the inference table: one JSONL record per cascade stage.
 *
 * Configured by `trace = { path = "..."; include_content = true; }`. Each
 * record holds request_id, route, stage, model, score, decision, tokens,
 * cost, latency and the cache status, and with include_content the prompt
 * and the answer. It is "monitor every step's output" made concrete, and the
 * data sluice-tune learns from. Records go through a batched sink (sink.h).
 */
#ifndef SLUICE_TRACE_H
#define SLUICE_TRACE_H

#include "config.h"

struct redis;

struct trace_rec {
    const char *request_id;
    const char *route;
    int stage;         /* 0-based index in the route */
    const char *model; /* configured model name */
    int has_score;
    double score;
    const char *decision; /* accept, escalate, skip, error */
    const char *reason;   /* why: a veto, a budget, an error message; or NULL */
    long prompt_tokens;
    long completion_tokens;
    double cost_usd; /* every call of the stage, scorer calls included */
    int retries;     /* calls of the stage made again */
    double latency_ms;
    const char *cache;  /* cache status of the request, or NULL */
    const char *prompt; /* written only with include_content */
    const char *answer;
};

/* Open (or reopen, or with conf->path NULL close) the trace file. Returns 0
 * or -1 with errno set. */
int trace_open(const struct trace_conf *conf);
/* Append one record (loop thread); conf is the request's snapshot (for
 * include_content). To the file, and with stream_on to the stream on the
 * Redis client trace_set_redis lent:
 * XADD stream MAXLEN ~ maxlen, one field per attribute. A no-op when no
 * trace is configured. */
void trace_write(const struct trace_conf *conf, const struct trace_rec *rec);
/* Lend the loop's Redis client for the stream (borrowed; NULL: none, the
 * stream is not written). Its owner (server.c) calls it on the loop thread
 * whenever the client changes, and with NULL before it frees the last. */
void trace_set_redis(struct redis *r);
void trace_flush(void);

#endif
