/* log.c - structured logging; see log.h. */
#include "log.h"
#include "caps.h"
#include "sink.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static struct sink log_sink = SINK_INIT;
static int log_format = LOG_FORMAT_JSON;
static int log_level = LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_open(const struct log_conf *conf)
{
    if (sink_open(&log_sink, conf->path) < 0)
        return -1;
    __atomic_store_n(&log_format, (int)conf->format, __ATOMIC_RELAXED);
    __atomic_store_n(&log_level, (int)conf->level, __ATOMIC_RELAXED);
    return 0;
}

void log_flush(void)
{
    sink_flush(&log_sink);
}

int log_enabled(enum log_level level)
{
    return (int)level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

/* RFC 3339 UTC timestamp with milliseconds. The date and time to the
 * second are formatted once per second per thread: gmtime_r takes a
 * process-wide lock, and this runs for every request. */
static void format_ts(double t, char out[32])
{
    static __thread time_t last_secs = -1;
    static __thread char last[32];
    static __thread size_t last_len;
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);

    if (secs != last_secs) {
        struct tm tm;

        gmtime_r(&secs, &tm);
        last_len = strftime(last, 26, "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    ms = ms < 0 ? 0 : ms > 999 ? 999 : ms;
    memcpy(out, last, last_len);
    out[last_len] = '.';
    out[last_len + 1] = (char)('0' + ms / 100);
    out[last_len + 2] = (char)('0' + ms / 10 % 10);
    out[last_len + 3] = (char)('0' + ms % 10);
    out[last_len + 4] = 'Z';
    out[last_len + 5] = '\0';
}

/* Append to the line. A failure sticks in the buffer (util.h), and
 * log_line_end looks at it once, so the appends themselves need not. */
static void put(struct log_line *l, const char *p, size_t n)
{
    if (buf_append(&l->b, p, n) < 0)
        return; /* the buffer has failed; log_line_end replaces the line */
}

static void put_s(struct log_line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Start a line in JSON or text. */
static void line_start(struct log_line *l, enum log_level level, double t, int json)
{
    const char *name = level_names[level];
    char ts[32];

    buf_init(&l->b, LOG_LINE_MAX);
    l->json = json;
    l->id = NULL;
    format_ts(t, ts);
    if (l->json) {
        put_s(l, "{\"ts\":\"");
        put_s(l, ts);
        put_s(l, "\",\"level\":\"");
        put_s(l, name);
        put(l, "\"", 1);
    } else {
        put_s(l, ts);
        put(l, " ", 1);
        put_s(l, name);
        put(l, "    ", 5 - strlen(name)); /* "%-5s" */
    }
}

void log_line_start(struct log_line *l, enum log_level level, double t)
{
    line_start(l, level, t, __atomic_load_n(&log_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON);
}

void log_line_start_json(struct log_line *l, enum log_level level, double t)
{
    line_start(l, level, t, 1);
}

/* ,"key": in JSON, " key=" in text: one append (a line has dozens of
 * keys, all sluice's own and short). */
static void put_key(struct log_line *l, const char *key)
{
    char k[LOG_KEY_MAX + 4];
    size_t n = strlen(key), o = 0;

    sl_assert(n <= LOG_KEY_MAX);
    if (l->json) {
        k[o++] = ',';
        k[o++] = '"';
    } else {
        k[o++] = ' ';
    }
    memcpy(k + o, key, n);
    o += n;
    if (l->json) {
        k[o++] = '"';
        k[o++] = ':';
    } else {
        k[o++] = '=';
    }
    put(l, k, o);
}

/* In text, a value that is a plain token (printable ASCII, no quote,
 * backslash or '=') goes bare; anything else as a JSON string. */
static int plain_token(const char *v, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=')
            return 0;
    }
    return 1;
}

void log_str(struct log_line *l, const char *key, const char *v, size_t room)
{
    size_t n;

    if (v == NULL) {
        if (l->json) {
            put_key(l, key);
            put(l, "null", 4);
        }
        return;
    }
    put_key(l, key);
    n = strlen(v);
    if (!l->json && n <= room && plain_token(v, n)) {
        put(l, v, n);
        return;
    }
    if (buf_put_json_strn(&l->b, v, n, room) < 0)
        return; /* failed: see put() */
}

void log_raw(struct log_line *l, const char *key, const char *v)
{
    put_key(l, key);
    put_s(l, v);
}

void log_long(struct log_line *l, const char *key, long v)
{
    char num[24];

    if (v < 0) {
        num[0] = '-';
        fmt_u64(num + 1, -(uint64_t)v);
    } else {
        fmt_u64(num, (uint64_t)v);
    }
    log_raw(l, key, num);
}

void log_ms(struct log_line *l, const char *key, uint64_t us)
{
    char num[32];
    unsigned frac = (unsigned)(us % 1000u);
    size_t n = fmt_u64(num, us / 1000u);

    num[n] = '.';
    num[n + 1] = (char)('0' + frac / 100);
    num[n + 2] = (char)('0' + frac / 10 % 10);
    num[n + 3] = (char)('0' + frac % 10);
    num[n + 4] = '\0';
    log_raw(l, key, num);
}

void log_line_end(struct log_line *l, int batched)
{
    if (l->json)
        put(l, "}", 1);
    if (l->b.failed) {
        /* The fields' rooms are meant to keep every line under the cap;
         * if one still is not, say so in a line of known size rather
         * than write part of it. */
        struct log_line r;

        log_line_start(&r, LOG_ERROR, wall_time());
        log_str(&r, "msg", "log line over its cap; dropped", LOG_VALUE_SHORT);
        log_str(&r, "request_id", l->id, LOG_VALUE_SHORT);
        if (r.json)
            put(&r, "}", 1);
        sl_assert(!r.b.failed);
        sink_write(&log_sink, r.b.data, r.b.len, 0);
        buf_free(&r.b);
    } else {
        sink_write(&log_sink, l->b.data, l->b.len, batched);
    }
    buf_free(&l->b);
}

char *log_line_take(struct log_line *l, size_t *len)
{
    put(l, "}", 1);
    if (l->b.failed) {
        buf_free(&l->b);
        return NULL;
    }
    return buf_steal(&l->b, len);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    struct log_line l;
    char msg[LOG_MSG_MAX];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* cut mid-character at worst: escaped as U+FFFD */
    va_end(ap);
    log_line_start(&l, level, wall_time());
    log_str(&l, "msg", msg, LOG_VALUE_MSG);
    log_line_end(&l, 0);
}
