/* caps.h - every hard cap on a buffer or a count of the gateway, named in one
 * place (curl's dynbuf "toobig" limits). A buffer is given its cap at
 * buf_init; going over it is an error that the caller handles (util.h).
 *
 * Caps that a user may change are config keys (config.h holds their
 * defaults); what is here is fixed at build time.
 */
#ifndef SLUICE_CAPS_H
#define SLUICE_CAPS_H

/* The largest request body max_body_bytes may allow. */
#define BODY_HARD_MAX (1u << 30)

/* An API error's message is formatted into this much, then cut at a
 * character boundary to fit struct api_error's message (request.h). */
#define API_ERROR_FORMAT_MAX 1024u

/* A slow client may let this much of a stream pile up before we give up on
 * it. Pausing HTTP/2 curl transfers is unsafe on curl 7.88 (bugs 10971 and
 * 10988), so the cap is the back-pressure. */
#define STREAM_BUF_MAX (4u << 20)
/* A stream that holds fewer unsent bytes than this keeps up with its
 * client: it is never cut when all streams reach max_stream_memory_bytes. */
#define STREAM_KEEP_BYTES (64u << 10)
/* The x-sluice-stages value: "model:score:decision,..." */
#define EX_STAGES_MAX 4096u

/* The cache (cache.h): a request whose canonical form is larger is not
 * cached; an entry's header line (cost, model, provider, stages). */
#define CACHE_CANON_MAX (64u << 20)
#define CACHE_ENTRY_HEAD_MAX 8192u
/* A whole answer rendered as an event stream (a hit replayed, a buffered
 * stage's answer sent to a streaming client). */
#define SSE_RENDER_MAX (96u << 20)

/* Upstream answers (cascade.c, provider_openai.c): an error body (what is
 * past it is dropped), a whole answer, one event of a stream, the text of
 * one choice; an assembled stream's choices and tool calls per choice. */
#define ERR_BODY_MAX (1u << 20)
#define RESP_BODY_MAX (64u << 20)
#define SSE_EVENT_MAX (8u << 20)
#define CONTENT_MAX (64u << 20)
#define ASM_CHOICES_MAX 128
#define ASM_TOOLS_MAX 128
/* Distinct models one route may name, so one run calls at most this many
 * (config.c refuses more). */
#define ROUTE_MODELS_MAX 16

/* What the gateway adds to a client's body on its way upstream (the model's
 * id aside): stream and stream_options. */
#define UPSTREAM_BODY_EXTRA 128u

/* Log lines (log.h). A line never exceeds LOG_LINE_MAX; each field's value
 * is cut to its room, as written (escapes included), so that the sum of
 * the rooms of a request line's fields stays well under the line's cap. */
#define LOG_LINE_MAX (16u << 10)
#define LOG_MSG_MAX 4096u    /* a formatted log_msg, before escaping */
#define LOG_VALUE_MSG 8192u  /* log_msg's text */
#define LOG_VALUE_SHORT 256u /* ids, methods, enum-like values */
#define LOG_VALUE_NAME 512u  /* route, model and provider names */
#define LOG_VALUE_PATH 1024u /* the request path */
#define LOG_VALUE_LONG 2048u /* stages, error messages */
#define LOG_KEY_MAX 32u      /* a field's key: a literal of the caller's */

/* Redis (redis_conn.c, redis.c). Commands waiting to be written on one
 * connection: past it a command fails at once (fail open) rather than queue
 * without bound behind a slow server. */
#define REDIS_OUT_MAX (64UL << 20)
/* Reply bytes read but not yet a whole reply, per connection: Redis's own
 * largest string (512 MiB) and some. More is a broken server: the
 * connection is closed. */
#define REDIS_IN_MAX (520UL << 20)
/* Nodes a cluster's slot map may name (Redis Cluster's own advice is at
 * most 1000 masters). */
#define REDIS_NODES_MAX 1000
/* Sentinels or cluster seed nodes listed in the redis block. */
#define REDIS_SEEDS_MAX 32

/* A learned scorer's weights file (learned.c reads it whole; sluice-tune
 * writes it from one buffer). */
#define LEARNED_FILE_MAX (512u << 20)

/* sluice-tune (src/tune/): its report on stdout, the frontier table, the
 * routes block, a file path, a chain's text, a route's cross-validation
 * log, a line of names for a message; eval's response body and one header
 * value it keeps. A report over its cap is an error, never a cut table. */
#define TUNE_REPORT_MAX (64u << 20)
#define TUNE_TSV_MAX (16u << 20)
#define TUNE_ROUTES_MAX (1u << 20)
#define TUNE_PATH_MAX 8192u
#define TUNE_CHAIN_MAX 8192u
#define TUNE_LOG_MAX (1u << 20)
#define TUNE_NAMES_MAX 4096u
#define TUNE_EVAL_BODY_MAX (64u << 20)
#define TUNE_EVAL_HDR_MAX 4096u

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
/* The /admin/stats answer. */
#define STATS_JSON_MAX_BYTES (16u << 20)

/* ---- client dialects: dialect.c, api_responses.c, api_messages.c ---- */
/* A Responses or Messages body, once translated into the chat form, may be
 * this much larger than max_body_bytes (tools and messages get wrapped). */
#define DIALECT_BODY_SLACK (1u << 20)
/* One chat-form event of a stream being translated (the relay already caps
 * an upstream event at 8 MiB). */
#define DIALECT_EVENT_MAX (8u << 20)
/* The text, refusal and tool arguments of one streamed answer, kept for the
 * closing events that repeat them whole. */
#define DIALECT_ANSWER_MAX (64u << 20)
/* Tool calls in one streamed answer. */
#define DIALECT_TOOLS_MAX 128
/* The translated events of one write to a client's stream. */
#define DIALECT_OUT_MAX (16u << 20)
/* A whole answer in the client's dialect: a JSON body, or a whole stream
 * replayed (as SSE_RENDER_MAX for the chat form). */
#define DIALECT_WHOLE_MAX (96u << 20)

/* Content blocks of one streamed Anthropic answer that the stream's
 * translation tracks (provider_anthropic.c): a block index beyond it makes
 * the stream malformed. */
#define ANTHROPIC_STREAM_BLOCKS_MAX 4096

#endif
