/* otel_export.h - the OTLP/HTTP exporter: a bounded queue of encoded spans
 * and one thread that sends them in batches, as protobuf, to
 * {otel.endpoint}/v1/traces.
 *
 * It never slows or fails a request: pushing takes a mutex for a list
 * append and never waits; a full queue drops the spans (counted); the
 * export itself, with its timeouts, runs in the exporter's own thread. A
 * dead or slow collector costs the counters in sluice_otel_spans_total and
 * one log line per interval, nothing else.
 */
#ifndef SLUICE_OTEL_EXPORT_H
#define SLUICE_OTEL_EXPORT_H

#include <stddef.h>
#include <stdint.h>

/* Start the exporter thread if it is not running. Main thread. */
void otel_export_start(void);
/* Send what is queued (each export within otel.timeout_ms), then stop the
 * thread. Main thread, at exit. */
void otel_export_stop(void);

/* Any thread: storage for a new request's spans, w initialised over it (a
 * buffer of a sent trace when there is one). */
struct otlp;
void otel_export_buffer(struct otlp *w);
/* Any thread: queue one request's spans, w's nspans encoded
 * ScopeSpans.spans fields; w's storage is taken over (w is left empty).
 * When max_queue spans are already waiting (or OTEL_QUEUE_MAX_BYTES), they
 * are dropped and counted instead. */
void otel_export_push(struct otlp *w, int nspans, long max_queue);
/* A request's trace outgrew OTEL_TRACE_MAX_BYTES: count its spans lost. */
void otel_export_drop_too_large(int nspans);

/* Totals since start, for /admin/stats. */
struct otel_export_stats {
    uint64_t exported;  /* spans the collector accepted */
    uint64_t dropped;   /* spans dropped: queue full */
    uint64_t failed;    /* spans in exports that failed */
    uint64_t too_large; /* spans of traces over the cap */
    uint64_t queued;    /* spans waiting now */
    uint64_t exports;   /* export requests made */
};
void otel_export_stats(struct otel_export_stats *out);

/* The start of an ExportTraceServiceRequest whose spans (spans_len bytes of
 * encoded ScopeSpans.spans fields) follow it: the resource (service.name =
 * service) and the scope. Returns a malloc'd head and its length in *len,
 * or NULL when the whole would outgrow OTEL_EXPORT_MAX_BYTES. Pure. */
char *otel_export_head(const char *service, size_t spans_len, size_t *len);
/* The protobuf body of one ExportTraceServiceRequest holding the spans
 * (parts[0..nparts), each encoded ScopeSpans.spans fields, borrowed) under
 * a resource with service.name = service. Returns a malloc'd body and its
 * length in *len, or NULL when it would outgrow OTEL_EXPORT_MAX_BYTES.
 * Pure. */
char *otel_export_body(const char *service, const char *const *parts, const size_t *lens,
                       size_t nparts, size_t *len);

#endif
