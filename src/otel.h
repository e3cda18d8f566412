/* otel.h - OpenTelemetry traces of requests: the spans, their attributes
 * (OpenInference, OTel GenAI and sluice.*) and W3C trace context.
 *
 * The span tree of one request:
 *
 *   SERVER  "POST /v1/chat/completions"      every traced API request
 *   └ CHAIN "cascade {route}"                 a cascade route's run
 *     ├ LLM (CLIENT) "chat {model}"           one per upstream call, retries
 *     │                                       and fallbacks included
 *     ├ EVALUATOR "stage N {scorer}"          one per stage verdict
 *     └ LLM (CLIENT) "judge {model}"          a judge's or http scorer's call
 *
 * (For single and fallback routes the LLM spans hang off the SERVER span.)
 * A cache hit is the SERVER span alone, with sluice.cache = "HIT" and a
 * `cache.hit` event.
 *
 * Cost: a span is encoded to protobuf (otlp.h) once, when it ends, straight
 * into the request's buffer; only its id and start time are kept while it is
 * open. At the request's end the buffer goes to the exporter's queue
 * (otel_export.h). A request that is not sampled and carries no
 * traceparent costs one branch.
 *
 * Threads: otel_request_begin runs in the HTTP worker before the hand-off;
 * the span calls in the loop while the run holds its reference;
 * otel_request_end at the exchange's last unref. Those are ordered by the
 * exchange's refcount, so the per-request state takes no lock.
 */
#ifndef SLUICE_OTEL_H
#define SLUICE_OTEL_H

#include <stddef.h>
#include <stdint.h>

struct exchange;
struct model;
struct reply;
struct curl_slist;

/* W3C trace context of a traceparent header. */
struct otel_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0: sampled */
};

/* Parse a traceparent header value (version 00, or a later version's first
 * 55 characters). Returns 0, or -1 when it is malformed or has an all-zero
 * id, in which case the request starts a new trace. Pure. */
int otel_traceparent_parse(const char *s, struct otel_ctx *out);
/* Format "00-<trace>-<span>-<flags>" into out (at least 56 bytes). */
void otel_traceparent_format(const uint8_t trace_id[16], uint64_t span_id, int sampled,
                             char out[56]);
/* Is a tracestate value worth passing on: at most OTEL_TRACESTATE_MAX
 * printable ASCII characters? Pure. */
int otel_tracestate_ok(const char *s);

/* One upstream call's span, kept in the call's attempt. Zeroed = untraced. */
struct otel_call {
    uint64_t span_id;
    uint64_t t0_us;    /* monotonic start */
    uint64_t first_us; /* the first answer byte was relayed to the client */
};

/* What an upstream call was and how it ended. Strings are borrowed. */
struct otel_call_info {
    const struct model *model; /* NULL for an http scorer */
    const char *role;          /* "answer", "judge" or "scorer" */
    const char *url;           /* the http scorer's URL, or NULL */
    int stage;                 /* the route's stage index */
    int ep;                    /* enum endpoint */
    int stream;
    long status;               /* HTTP status, 0 = none */
    const char *error;         /* why it failed, or NULL */
    const char *error_type;    /* a short class for error.type, or NULL */
    int retry;                 /* 0 for the first try, n for the n-th retry */
    int will_retry;            /* the call failed and is tried again */
    const struct reply *reply; /* what came back (may be empty) */
};

/* A stage verdict (cascade.c's stage_note). Strings are borrowed. */
struct otel_verdict {
    int stage;
    const char *model;
    const char *scorer; /* scorer_name() */
    int has_score;
    double score;
    double threshold;
    const char *decision; /* accept, escalate, skip, error */
    const char *reason;   /* or NULL */
    double cost_usd;      /* the stage's calls */
    uint64_t t0_us;       /* the stage began */
    const char *answer;   /* content, recorded only with capture_content */
};

/* Worker: an API request's body is read and ex->cfg is set. Decides
 * sampling (the client's sampled flag when it sent a traceparent, else
 * otel.sample_ratio) and sets ex->otel when the request is traced or
 * carries a trace context to pass on. Header values are borrowed. */
void otel_request_begin(struct exchange *ex, const char *traceparent, const char *tracestate);
/* Last unref: end the SERVER span, queue the request's spans for export,
 * and free ex->otel. */
void otel_request_end(struct exchange *ex);

/* Loop: a run of a cascade route begins and ends (the CHAIN span). */
void otel_run_begin(struct exchange *ex);
void otel_run_end(struct exchange *ex);

/* Loop: an upstream call is about to be sent. Starts its span and, unless
 * otel.propagate is off or headers is NULL (a provider with trace_context
 * off), appends traceparent (and tracestate) to *headers for the provider. */
void otel_call_begin(struct exchange *ex, struct otel_call *oc, struct curl_slist **headers);
/* Loop: the call ended (or was cancelled: ci->error says so). */
void otel_call_end(struct exchange *ex, struct otel_call *oc, const struct otel_call_info *ci);
/* Loop: the first answer byte of a relayed stream went to the client. */
void otel_call_first_byte(struct exchange *ex, struct otel_call *oc);

/* Will the request's trace still read its body (ex->ri.body)? A sampled
 * trace does: the invocation parameters when a call ends, and with
 * capture_content the input. Any thread. */
int otel_reads_request(const struct exchange *ex);

/* Loop: a stage's verdict. */
void otel_verdict(struct exchange *ex, const struct otel_verdict *v);
/* Loop: what a cascade's answer saved against the route's last stage. */
void otel_saving(struct exchange *ex, double usd);

#endif
