/* observe.h - the observe step: what the request leaves behind when it
 * ends. Its one log line, its figures in the metrics, its record in the
 * dashboard's ring (stats.h) and the end of its OTel trace (otel.h). It is
 * the on_end hook of the phase table (phase.c), run at the exchange's last
 * unref, so it sees the final state of both the worker's and the loop's
 * side without a race.
 */
#ifndef SLUICE_OBSERVE_H
#define SLUICE_OBSERVE_H

#include <stddef.h>

struct exchange;

/* The last unref, any thread: write the log line, count the request in the
 * metrics, keep its record for the dashboard, end and queue its trace
 * (ex->otel is freed). Borrows ex. */
void observe_end(struct exchange *ex);

/* The request's log record as one JSON object (the log line's fields,
 * whatever log.format and log.level say), for the dashboard's ring of
 * recent requests. Returns a malloc'd string and its length, or NULL when
 * it went over its cap. Borrows ex (at its last unref). */
char *observe_record(const struct exchange *ex, size_t *len);

#endif
