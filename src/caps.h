/* caps.h - every hard cap on a buffer or a count of the gateway, named in one
 * place (curl's dynbuf "toobig" limits). A buffer is given its cap at
 * buf_init; going over it is an error that the caller handles (util.h).
 *
 * Caps that a user may change are config keys (config.h holds their
 * defaults); what is here is fixed at build time.
 */
#ifndef SLUICE_CAPS_H
#define SLUICE_CAPS_H

/* ---- OpenTelemetry traces (otel.c, otel_export.c) ---- */
/* One request's encoded spans. A trace that outgrows it is dropped whole
 * and counted (result="too_large"). */
#define OTEL_TRACE_MAX_BYTES (4u << 20)
/* Reserved for a sampled request's spans when it starts (not a cap). */
#define OTEL_TRACE_RESERVE 2048u
/* One attribute value a client or provider controls (content, an error
 * message, a tracestate), cut at a UTF-8 character boundary. */
#define OTEL_ATTR_MAX_BYTES (16u << 10)
/* Content attributes (input.value, output.value, llm.*_messages.N.*) with
 * capture_content. */
#define OTEL_CONTENT_MAX_BYTES (64u << 10)
/* Messages of a request recorded as llm.input_messages.N. */
#define OTEL_MAX_MESSAGES 64
/* Spans per export request, and the body of one (a batch is cut short
 * before it outgrows this). */
#define OTEL_BATCH_SPANS 512
#define OTEL_EXPORT_MAX_BYTES (32u << 20)
/* Bytes of encoded spans waiting for export, whatever otel.max_queue says
 * about their count. */
#define OTEL_QUEUE_MAX_BYTES (64u << 20)
/* Trace buffers of OTEL_TRACE_RESERVE bytes kept for reuse. */
#define OTEL_POOL_BUFFERS 1024
/* The largest otel.max_queue a config may set. */
#define OTEL_MAX_QUEUE_LIMIT 1000000L
/* A client's tracestate longer than this is not kept (W3C: 512 is the
 * least a vendor must propagate). */
#define OTEL_TRACESTATE_MAX 512u

/* ---- the dashboard (stats.c) ---- */
/* Requests kept in the dashboard's ring of recent requests. */
#define STATS_RING_RECORDS 100
/* One record of the ring (a request's log line as JSON); a longer one is
 * kept without its longest fields. */
#define STATS_RECORD_MAX_BYTES 8192u
/* The /admin/stats answer. */
#define STATS_JSON_MAX_BYTES (16u << 20)

#endif
