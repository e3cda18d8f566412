/* log.h - structured logging: one line per event, JSON or text.
 *
 * Lines go to a sink (sink.h): request lines are batched, every other line
 * flushes the batch and is written at once. log_open() may be called again on reload: the
 * new file replaces the old one atomically (dup2), so no line is lost.
 * Secrets are never passed here; the request line carries only what
 * log_request() picks from the exchange.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "config.h"

struct exchange;

/* Open (or reopen) the log per conf. Returns 0, or -1 with errno set. */
int log_open(const struct log_conf *conf);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one line per request: ts, request_id, route, model, provider, status,
 * stream, latency_ms, upstream_ms, ttft_ms, tokens and cost_usd. */
void log_request(const struct exchange *ex);
/* The request line as one JSON object, whatever log.format and log.level
 * say, appended to b (the dashboard's ring of recent requests keeps it).
 * Returns 0, or -1 when b's cap was reached (b then holds no usable
 * record). */
struct buf;
int log_request_json(const struct exchange *ex, struct buf *b);
/* Write out batched request lines now. The loop calls it on a timer so a
 * quiet gateway's lines appear soon; shutdown calls it last. */
void log_flush(void);

#endif
