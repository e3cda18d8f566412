/* log.h - structured logging: one line per event, JSON or text.
 *
 * Lines go to a sink (sink.h): request lines are batched, every other line
 * flushes the batch and is written at once. log_open() may be called again
 * on reload: the new file replaces the old one atomically (dup2), so no line
 * is lost.
 *
 * Every line is whole and well-formed whatever its values hold: a value is
 * escaped (JSON string escapes in both formats; in text, any value that is
 * not a plain token is written as a JSON string, so a newline or a quote
 * cannot forge a field or a line), invalid UTF-8 becomes U+FFFD, and a long
 * value is cut at a character boundary to the room its field is given. The
 * line has its own cap (LOG_LINE_MAX); a line that still overflows it is
 * replaced by a short line that says so, never written in part.
 *
 * Secrets are never passed here. The module knows nothing of requests: the
 * request line is built by the observe step (observe.c) with the field
 * calls. It depends on util.h and the sink alone; the config's log block
 * (struct log_conf) is defined here and config.h includes it.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

enum log_format {
    LOG_FORMAT_JSON,
    LOG_FORMAT_TEXT,
};

enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

/* The config's log block. */
struct log_conf {
    enum log_format format;
    char *path; /* "-" = stdout */
    enum log_level level;
};

/* One line being built. */
struct log_line {
    struct buf b;
    int json;
    const char *id; /* named by the replacement line if this one overflows */
};

/* Open (or reopen) the log per conf. Returns 0, or -1 with errno set. */
int log_open(const struct log_conf *conf);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Would a line at this level be written? */
int log_enabled(enum log_level level);

/* Build a line: start it (timestamp t, wall clock seconds), add fields, end
 * it. Keys are the caller's literals, of at most LOG_KEY_MAX bytes. A string
 * value may come from anyone: it is escaped and cut to at most `room` bytes
 * as written (quotes and escapes included; LOG_VALUE_* in caps.h). A NULL
 * string is JSON null, and left out in text. log_line_end writes the line
 * (batched or at once) and frees it. */
void log_line_start(struct log_line *l, enum log_level level, double t);
void log_str(struct log_line *l, const char *key, const char *v, size_t room);
void log_long(struct log_line *l, const char *key, long v);
/* A duration in milliseconds with microsecond resolution. */
void log_ms(struct log_line *l, const char *key, uint64_t us);
/* A value the caller formatted and vouches for: a number or a literal. */
void log_raw(struct log_line *l, const char *key, const char *v);
void log_line_end(struct log_line *l, int batched);
/* A line in JSON whatever log.format says, for a caller that keeps it
 * rather than writing it (the dashboard's recent requests): start it so,
 * add fields, then take it: a malloc'd string and its length, or NULL when
 * it went over its cap. Either way the line is done. */
void log_line_start_json(struct log_line *l, enum log_level level, double t);
char *log_line_take(struct log_line *l, size_t *len);

/* Write out batched request lines now. The loop calls it on a timer so a
 * quiet gateway's lines appear soon; shutdown calls it last. */
void log_flush(void);

#endif
