/* sse.h - an incremental, bounded parser for Server-Sent Events
 * (text/event-stream, as in the WHATWG HTML spec), fed with whatever byte
 * chunks the network delivers.
 *
 * Lines end in LF, CRLF or CR. A blank line dispatches the event gathered so
 * far. Only the `event` and `data` fields matter to us; `id`, `retry` and
 * comments (lines starting with ':') are skipped. Multi-line data fields are
 * joined with '\n'. An event larger than the cap is an error, never a silent
 * realloc. Between events the parser holds no memory (a partial line or
 * event aside), so an idle stream costs none.
 */
#ifndef SLUICE_SSE_H
#define SLUICE_SSE_H

#include "util.h"

#include <stddef.h>

/* Called once per dispatched event. event is "" when no event field was
 * given; data is NUL-terminated (len excludes the NUL). Both are borrowed for
 * the duration of the call. Return 0 to go on, -1 to stop parsing. */
typedef int (*sse_event_cb)(void *arg, const char *event, const char *data, size_t len);

struct sse {
    struct buf line; /* the current, incomplete line */
    struct buf data; /* data lines of the current event */
    char event[64];  /* event type of the current event */
    int has_data;    /* a data field was seen (an empty one counts) */
    int skip_lf;     /* the previous chunk ended in CR: drop a leading LF */
    int failed;
};

/* max_event caps the bytes of one event's data (and of one line). */
void sse_init(struct sse *p, size_t max_event);
void sse_free(struct sse *p);

/* Feed n bytes. Dispatches every event completed by them. Returns 0, or -1
 * when an event is over the cap or the callback asked to stop; after -1 the
 * parser stays failed. */
int sse_feed(struct sse *p, const char *bytes, size_t n, sse_event_cb cb, void *arg);

/* Bytes of an incomplete event are buffered: true when the stream ended in
 * the middle of an event (a truncated stream). */
int sse_pending(const struct sse *p);

#endif
