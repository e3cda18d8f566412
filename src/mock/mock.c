/* mock.c - sluice-mock: an OpenAI-compatible fake provider for sluice's tests,
 * demos and benchmarks.
 *
 * One thread, one epoll loop (loop.c), non-blocking sockets. Each connection
 * reads requests into a bounded buffer, parses them with mock_http_parse(),
 * and answers from mock_gen.c. Every answer is rendered in full when the
 * request arrives; time only decides when its bytes are queued: a loop timer
 * holds the first byte back (first_byte_ms) and paces stream chunks
 * (interval_ms). Nothing ever sleeps, so thousands of slow streams cost only
 * memory.
 *
 * Faults and shapes are driven per request by a "mock" object in the body
 * (the gateway forwards unknown fields unchanged), so a test can make one
 * upstream call fail and watch the gateway recover. /_mock/stats counts what
 * arrived, so a test can assert how many upstream calls were made.
 */
#include "loop.h"
#include "mock_anthropic.h"
#include "mock_gen.h"
#include "mock_http.h"
#include "mock_replay.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MOCK_DEFAULT_LISTEN "127.0.0.1:8081"
#define MOCK_RBUF_MAX (MOCK_HTTP_MAX_HEAD + MOCK_HTTP_MAX_BODY)
#define MOCK_WBUF_MAX (128u << 20) /* one full response or stream step, plus slack */
#define MOCK_WBUF_HIGH (1u << 20)  /* stop producing output above this */
#define MOCK_BUF_KEEP (256u << 10) /* free idle buffers bigger than this */
#define MOCK_READ_CHUNK 65536
#define MOCK_LINGER_MS 2000
#define MOCK_ACCEPT_PAUSE_MS 100
#define MOCK_MAX_DELAY_MS 3600000
#define MOCK_MAX_CHUNKS 10000
#define MOCK_MAX_STATS_KEYS 10000
#define MOCK_MAX_FAIL_KEYS 100000
/* Longer stats keys count as "(other)"; longer fail_times keys are stored
 * as their hash. */
#define MOCK_MAX_KEY_LEN 256
#define MOCK_CREATED 1700000000 /* the "created" of listed models */

struct mock_opts {
    const char *listen;
    const char *require_key;
    long first_byte_ms;
    long chunks;
    long interval_ms;
    int quiet;
    int verbose;
};

/* What a connection does when its response is due. */
enum conn_action {
    ACT_SEND,   /* queue c->pend (a whole response) */
    ACT_STREAM, /* queue c->pend (the head), then the stream's steps */
    ACT_RESET,  /* "reset" fault: close with RST before any byte */
    ACT_HANG,   /* "hang" fault: never answer */
};

enum conn_state {
    CONN_READ,   /* reading and answering requests */
    CONN_DELAY,  /* an answer is ready and waits for its first-byte time */
    CONN_STREAM, /* queuing a stream's steps as the interval allows */
    CONN_HANG,   /* never answering; waits for the client to give up */
    CONN_LINGER, /* answered and shut for writing; drains input, then closes */
};

enum conn_after {
    AFTER_NONE,   /* keep the connection */
    AFTER_CLOSE,  /* close as soon as the output is sent ("truncate") */
    AFTER_LINGER, /* graceful close: shut for writing, drain, close */
};

struct conn {
    struct loop_io io;
    int fd;
    struct conn *prev, *next;
    struct loop_timer timer; /* first byte, stream interval or linger */
    enum conn_state state;
    enum conn_after after; /* once the queued output is sent */
    struct buf rbuf;       /* received bytes not yet consumed */
    struct buf wbuf;       /* bytes to send from wpos on */
    size_t wpos;
    size_t need;       /* rbuf bytes the pending request needs before reparsing */
    int continue_sent; /* "100 Continue" already sent for the pending request */
    int keep_alive;    /* of the request being answered */
    int http10;        /* the request was HTTP/1.0 */
    int head_only;     /* a HEAD request: headers but no body */
    int peer_eof;
    int closed;
    int blocked;   /* production stopped at MOCK_WBUF_HIGH; resume on drain */
    int anthropic; /* the request being answered is Anthropic's: its error shape */

    /* The answer being delivered. */
    enum conn_action act;
    enum conn_after act_after; /* what follows ACT_SEND */
    struct buf pend;
    struct mock_stream stream;
    size_t step;      /* next stream step to queue */
    size_t stop_step; /* steps [0, stop_step) are sent ("truncate" stops early) */
    uint64_t interval_us;
    uint64_t stream_t0_us; /* when step 0 was queued; step k is due at t0 + k*interval */
    int stream_live;       /* counted in streams_started, not yet completed or aborted */
    int stream_truncate;   /* the stream ends by closing the connection */
    int stream_final;      /* every step is queued */
};

struct mock_stats {
    long long requests;
    long long streams_started;
    long long streams_completed;
    long long streams_aborted;
    long long faults;
    long long replay_hits;
    long long replay_misses;
    long long connections;
    json_t *by_model;
    json_t *by_path;
};

/* The one server of this process (Redis keeps its `server` the same way). */
static struct mock_server {
    struct loop *loop;
    struct mock_opts opt;
    int lfd;
    struct loop_io lio;
    struct loop_timer accept_timer;
    int sfd;
    struct loop_io sio;
    struct conn *conns;
    long long active;
    struct mock_replay *replay;
    json_t *models;      /* the GET /v1/models list */
    json_t *fail_counts; /* mock.key -> requests seen, for fail_times */
    json_t *model_mocks; /* model -> default "mock" object (--mock, --content) */
    struct mock_stats st;
    unsigned long long seq;
} srv;

/* Parsed "mock" controls of one request. */
enum mock_fault {
    FAULT_NONE,
    FAULT_HANG,
    FAULT_RESET,
    FAULT_TRUNCATE,
    FAULT_MALFORMED,
    FAULT_ERROR_EVENT, /* a 200 stream that fails with an error event */
    FAULT_ERROR_200,   /* an error object with HTTP 200, as some proxies send */
};

struct mock_ctl {
    const char *content;
    size_t content_len;
    const json_t *choices;
    long status;        /* 0 = not given */
    double retry_after; /* < 0 = not given */
    const char *error_message;
    enum mock_fault fault;
    long first_byte_ms, chunks, interval_ms; /* -1 = not given */
    int has_logprob;
    double logprob;
    const char *model;
    long fail_times; /* -1 = not given */
    const char *key;
    long tool_calls;              /* Anthropic mode: tool_use blocks; 0 = not given */
    long cache_read, cache_write; /* prompt tokens reported as cached; 0 = none */
};

static void conn_update(struct conn *c);

/* ---- small helpers ---- */

static const struct {
    int status;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {529, "Site Overloaded"},
    {505, "HTTP Version Not Supported"},
};

static const char *status_text(int status)
{
    for (size_t i = 0; i < ARRAY_LEN(status_texts); i++)
        if (status_texts[i].status == status)
            return status_texts[i].text;
    return "Status";
}

/* OpenAI's error "type" for a status. */
static const char *error_type(int status)
{
    if (status == 429)
        return "requests";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

static int span_eq(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

static int span_prefix(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);

    return n >= k && memcmp(p, s, k) == 0;
}

/* Percent-decode p[0..n). Returns a malloc'd string, or NULL on a bad escape
 * or a byte outside printable ASCII (names here are ids, not text). */
static char *pct_decode(const char *p, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch == '%') {
            unsigned v = 0;

            if (n - i < 3) {
                free(out);
                return NULL;
            }
            for (int k = 1; k <= 2; k++) {
                char d = p[i + k];

                v <<= 4;
                if (d >= '0' && d <= '9')
                    v |= (unsigned)(d - '0');
                else if (d >= 'a' && d <= 'f')
                    v |= (unsigned)(d - 'a' + 10);
                else if (d >= 'A' && d <= 'F')
                    v |= (unsigned)(d - 'A' + 10);
                else {
                    free(out);
                    return NULL;
                }
            }
            ch = (unsigned char)v;
            i += 2;
        }
        if (ch < 0x20 || ch >= 0x7f) {
            free(out);
            return NULL;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

/* 1 if the query string has `name` with a non-empty value. */
static int query_has(const struct mock_http_req *req, const char *name)
{
    size_t nl = strlen(name), i = 0;
    const char *q = req->query;

    while (q && i < req->query_len) {
        size_t end = i;

        while (end < req->query_len && q[end] != '&')
            end++;
        if (end - i > nl + 1 && memcmp(q + i, name, nl) == 0 && q[i + nl] == '=')
            return 1;
        i = end + 1;
    }
    return 0;
}

/* A printable copy of p[0..n) for messages and stats keys: other bytes
 * become '?'. Caller frees. */
static char *printable(const char *p, size_t n)
{
    char *s = xstrndup(p, n);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            s[i] = '?';
    return s;
}

/* Count one more under key. Both the number of keys and their length are
 * capped, so no client can grow the table without bound. */
static void stats_bump(json_t *obj, const char *key)
{
    json_t *v = strlen(key) > MOCK_MAX_KEY_LEN ? NULL : json_object_get(obj, key);

    if (v == NULL &&
        (json_object_size(obj) >= MOCK_MAX_STATS_KEYS || strlen(key) > MOCK_MAX_KEY_LEN)) {
        key = "(other)";
        v = json_object_get(obj, key);
    }
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(obj, key, json_integer(1));
}

/* ---- output ---- */

static size_t pending_out(const struct conn *c)
{
    return c->wbuf.len - c->wpos;
}

/* Queue n bytes. The sent prefix is dropped first when that is cheap, so the
 * cap bounds what is unsent. Return 0, or -1 when the cap is hit. */
static int out_append(struct conn *c, const void *p, size_t n)
{
    if (c->wpos == c->wbuf.len) {
        buf_reset(&c->wbuf);
        c->wpos = 0;
    } else if (c->wpos > 0 && c->wpos >= c->wbuf.len / 2) {
        buf_consume(&c->wbuf, c->wpos);
        c->wpos = 0;
    }
    return buf_append(&c->wbuf, p, n);
}

/* Write what the socket takes. Return 0 (done or would block), or -1 when the
 * connection failed and was closed. */
static int conn_flush(struct conn *c)
{
    while (pending_out(c) > 0) {
        ssize_t n = send(c->fd, c->wbuf.data + c->wpos, pending_out(c), MSG_NOSIGNAL);

        if (n > 0) {
            c->wpos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->wpos = 0;
    if (c->wbuf.cap > MOCK_BUF_KEEP)
        buf_free(&c->wbuf);
    else
        buf_reset(&c->wbuf);
    return 0;
}

/* ---- connection life cycle ---- */

static void conn_free(struct conn *c)
{
    buf_free(&c->rbuf);
    buf_free(&c->wbuf);
    buf_free(&c->pend);
    mock_stream_free(&c->stream);
    free(c);
}

static void conn_free_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    conn_free(arg);
}

/* Close c now; with `reset`, make the peer see a connection reset (RST)
 * instead of an orderly end. The memory is freed before the loop sleeps,
 * because an event for c may still be pending in this iteration. */
static void conn_close(struct conn *c, int reset)
{
    if (c->closed)
        return;
    if (c->stream_live) {
        srv.st.streams_aborted++;
        c->stream_live = 0;
    }
    loop_timer_stop(srv.loop, &c->timer);
    loop_io_del(srv.loop, &c->io);
    if (reset) {
        struct linger lg = {1, 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    c->fd = -1;
    c->closed = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv.active--;
    loop_defer(srv.loop, conn_free_cb, c);
}

/* The response is out and the connection is not reused: shut our side, then
 * read until the client closes (or MOCK_LINGER_MS), so that closing with
 * unread input does not reset the connection under the client's feet. */
static void conn_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->after = AFTER_NONE;
    buf_free(&c->rbuf);
    loop_timer_start(srv.loop, &c->timer, (uint64_t)MOCK_LINGER_MS * 1000);
}

static int conn_reading(const struct conn *c)
{
    if (c->peer_eof)
        return 0;
    if (c->state == CONN_HANG || c->state == CONN_LINGER)
        return 1;
    return c->rbuf.len < MOCK_RBUF_MAX;
}

static void conn_interest(struct conn *c)
{
    uint32_t ev = 0;

    if (conn_reading(c))
        ev |= EPOLLIN | EPOLLRDHUP;
    if (pending_out(c) > 0)
        ev |= EPOLLOUT;
    if (loop_io_mod(srv.loop, &c->io, ev) < 0)
        conn_close(c, 0);
}

/* Read what is there. Sets peer_eof at end of input; closes c on errors. */
static void conn_read(struct conn *c)
{
    static char chunk[MOCK_READ_CHUNK];

    for (int i = 0; i < 16 && !c->closed; i++) {
        int discard = c->state == CONN_HANG || c->state == CONN_LINGER;
        size_t want = sizeof(chunk);
        ssize_t n;

        if (!discard) {
            if (c->rbuf.len >= MOCK_RBUF_MAX)
                return;
            if (MOCK_RBUF_MAX - c->rbuf.len < want)
                want = MOCK_RBUF_MAX - c->rbuf.len;
        }
        n = recv(c->fd, chunk, want, 0);
        if (n > 0) {
            if (!discard)
                sl_assert(buf_append(&c->rbuf, chunk, (size_t)n) == 0);
            if ((size_t)n < want)
                return; /* drained; level-triggered epoll tells us of more */
            continue;
        }
        if (n == 0) {
            c->peer_eof = 1;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c, 0);
        return;
    }
}

/* ---- building responses (into c->pend) ---- */

/* Start a response in c->pend: status line and the headers every response
 * has. `extra` is more header lines ("Name: value\r\n"), or NULL. */
static void pend_head(struct conn *c, int status, const char *ctype, const char *extra)
{
    buf_reset(&c->pend);
    if (buf_printf(&c->pend,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s: req_mock_%llu\r\n"
                   "%s%s%s",
                   status, status_text(status), ctype, c->anthropic ? "request-id" : "x-request-id",
                   srv.seq, c->anthropic ? "" : "openai-processing-ms: 1\r\n", extra ? extra : "",
                   !c->keep_alive ? "Connection: close\r\n"
                   : c->http10    ? "Connection: keep-alive\r\n"
                                  : "") < 0)
        sl_panic("mock: a response head outgrew its buffer");
}

/* c->pend = a whole response with this body. */
static void pend_response(struct conn *c, int status, const char *ctype, const char *extra,
                          const char *body, size_t len)
{
    pend_head(c, status, ctype, extra);
    if (buf_printf(&c->pend, "Content-Length: %zu\r\n\r\n", len) < 0 ||
        buf_append(&c->pend, body, c->head_only ? 0 : len) < 0)
        sl_panic("mock: a response outgrew its buffer");
    c->act = ACT_SEND;
    c->act_after = c->keep_alive ? AFTER_NONE : AFTER_LINGER;
}

/* c->pend = the error JSON: OpenAI's, or for an Anthropic request
 * Anthropic's ({"type":"error","error":{"type","message"},"request_id"}),
 * where code and param have no place. This is the one place error bodies
 * are made. `extra` is more header lines, or NULL. */
static void pend_error(struct conn *c, int status, const char *code, const char *param,
                       const char *message, const char *extra)
{
    json_t *e;
    char *body, rid[48];

    snprintf(rid, sizeof(rid), "req_mock_%llu", srv.seq);
    if (c->anthropic)
        e = json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type",
                      mock_anth_error_type(status), "message", message, "request_id", rid);
    else
        e = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type",
                      error_type(status), "param", param, "code", code);
    if (e == NULL) /* a message that is not UTF-8 */
        e = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", "sluice-mock: bad request",
                      "type", error_type(status), "param", "code");
    body = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    pend_response(c, status, "application/json", extra, body, strlen(body));
    free(body);
}

static void pend_json(struct conn *c, int status, json_t *v)
{
    char *body = json_dumps(v, JSON_COMPACT);

    json_decref(v);
    pend_response(c, status, "application/json", NULL, body, strlen(body));
    free(body);
}

/* ---- delivering ---- */

/* The answer is due: queue it (or reset, or hang). */
static void conn_perform(struct conn *c)
{
    switch (c->act) {
    case ACT_RESET:
        conn_close(c, 1);
        return;
    case ACT_HANG:
        c->state = CONN_HANG;
        return;
    case ACT_SEND:
        c->state = CONN_READ;
        if (pending_out(c) == 0 && c->wbuf.len == 0) {
            /* The common case: hand the buffer over instead of copying. */
            struct buf t = c->wbuf;

            c->wbuf = c->pend;
            c->pend = t;
            c->wpos = 0;
        } else if (out_append(c, c->pend.data, c->pend.len) < 0) {
            conn_close(c, 0);
            return;
        }
        buf_reset(&c->pend);
        c->after = c->act_after;
        return;
    case ACT_STREAM:
        c->state = CONN_STREAM;
        if (out_append(c, c->pend.data, c->pend.len) < 0) {
            conn_close(c, 0);
            return;
        }
        buf_reset(&c->pend);
        c->step = 0;
        c->stream_final = 0;
        c->stream_t0_us = now_us();
        return;
    }
}

/* Deliver now, or after delay_ms (the first-byte delay). */
static void conn_dispatch(struct conn *c, long delay_ms)
{
    if (c->act == ACT_HANG) {
        c->state = CONN_HANG;
        return;
    }
    if (delay_ms > 0) {
        c->state = CONN_DELAY;
        loop_timer_start(srv.loop, &c->timer, (uint64_t)delay_ms * 1000);
        return;
    }
    conn_perform(c);
}

/* Queue the stream steps that are due. Step 0 goes out at once; content step
 * k is due at t0 + k * interval_us (from the start, so a busy loop does not
 * add its lag to every step); the closing step follows the last content step
 * at once. Stops at MOCK_WBUF_HIGH (the caller resumes after a drain). */
static void stream_pump(struct conn *c)
{
    size_t last = c->stream.nsteps - 1; /* the closing step */

    while (c->state == CONN_STREAM && !c->stream_final && !loop_timer_armed(&c->timer)) {
        size_t i = c->step, from, to;

        if (i >= c->stop_step) {
            c->stream_final = 1;
            break;
        }
        if (pending_out(c) > MOCK_WBUF_HIGH) {
            c->blocked = 1;
            return;
        }
        from = i ? c->stream.ends[i - 1] : 0;
        to = c->stream.ends[i];
        if (out_append(c, c->stream.data.data + from, to - from) < 0) {
            conn_close(c, 0);
            return;
        }
        c->step++;
        if (c->interval_us && c->step < c->stop_step && c->step < last) {
            uint64_t due = c->stream_t0_us + c->step * c->interval_us, now = now_us();

            if (due > now)
                loop_timer_start(srv.loop, &c->timer, due - now);
        }
    }
}

/* Every step is sent. */
static void stream_done(struct conn *c)
{
    c->stream_live = 0;
    mock_stream_free(&c->stream);
    if (c->stream_truncate) {
        conn_close(c, 0); /* the fault: end without the terminator */
        return;
    }
    srv.st.streams_completed++;
    c->state = CONN_READ;
    c->after = c->act_after;
}

/* ---- the "mock" object ---- */

static int ctl_fail(struct mock_err *err, const char *param, const char *msg)
{
    err->status = 400;
    err->code = "invalid_mock";
    err->param = param;
    snprintf(err->message, sizeof(err->message), "sluice-mock: %s", msg);
    return -1;
}

static int ctl_int(json_t *v, long min, long max, long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

/* Parse the "mock" object m into ctl. Unknown fields are refused, so a typo
 * in a test fails loudly instead of silently testing nothing. */
static int ctl_parse(json_t *m, struct mock_ctl *ctl, struct mock_err *err)
{
    const char *k;
    json_t *v;

    memset(ctl, 0, sizeof(*ctl));
    ctl->retry_after = -1;
    ctl->first_byte_ms = ctl->chunks = ctl->interval_ms = ctl->fail_times = -1;
    if (m == NULL || json_is_null(m))
        return 0;
    if (!json_is_object(m))
        return ctl_fail(err, "mock", "'mock' must be an object");
    json_object_foreach (m, k, v) {
        if (strcmp(k, "content") == 0) {
            if (!json_is_string(v))
                return ctl_fail(err, "mock.content", "'mock.content' must be a string");
            ctl->content = json_string_value(v);
            ctl->content_len = json_string_length(v);
        } else if (strcmp(k, "choices") == 0) {
            size_t i;
            json_t *s;

            if (!json_is_array(v) || json_array_size(v) == 0)
                return ctl_fail(err, "mock.choices", "'mock.choices' must be a non-empty array");
            json_array_foreach (v, i, s) {
                if (!json_is_string(s))
                    return ctl_fail(err, "mock.choices", "'mock.choices' must hold strings");
            }
            ctl->choices = v;
        } else if (strcmp(k, "status") == 0) {
            if (ctl_int(v, 200, 599, &ctl->status) < 0)
                return ctl_fail(err, "mock.status", "'mock.status' must be an integer 200..599");
        } else if (strcmp(k, "retry_after") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400)
                return ctl_fail(err, "mock.retry_after",
                                "'mock.retry_after' must be a number of seconds 0..86400");
            ctl->retry_after = json_number_value(v);
        } else if (strcmp(k, "error_message") == 0) {
            if (!json_is_string(v))
                return ctl_fail(err, "mock.error_message", "'mock.error_message' must be a string");
            ctl->error_message = json_string_value(v);
        } else if (strcmp(k, "fault") == 0) {
            const char *f = json_string_value(v);

            if (f && strcmp(f, "hang") == 0)
                ctl->fault = FAULT_HANG;
            else if (f && strcmp(f, "reset") == 0)
                ctl->fault = FAULT_RESET;
            else if (f && strcmp(f, "truncate") == 0)
                ctl->fault = FAULT_TRUNCATE;
            else if (f && strcmp(f, "malformed") == 0)
                ctl->fault = FAULT_MALFORMED;
            else if (f && strcmp(f, "error_event") == 0)
                ctl->fault = FAULT_ERROR_EVENT;
            else if (f && strcmp(f, "error_200") == 0)
                ctl->fault = FAULT_ERROR_200;
            else if (!json_is_null(v))
                return ctl_fail(err, "mock.fault",
                                "'mock.fault' must be \"hang\", \"reset\", \"truncate\", "
                                "\"malformed\", \"error_event\" or \"error_200\"");
        } else if (strcmp(k, "first_byte_ms") == 0) {
            if (ctl_int(v, 0, MOCK_MAX_DELAY_MS, &ctl->first_byte_ms) < 0)
                return ctl_fail(err, "mock.first_byte_ms",
                                "'mock.first_byte_ms' must be an integer 0..3600000");
        } else if (strcmp(k, "interval_ms") == 0) {
            if (ctl_int(v, 0, MOCK_MAX_DELAY_MS, &ctl->interval_ms) < 0)
                return ctl_fail(err, "mock.interval_ms",
                                "'mock.interval_ms' must be an integer 0..3600000");
        } else if (strcmp(k, "chunks") == 0) {
            if (ctl_int(v, 1, MOCK_MAX_CHUNKS, &ctl->chunks) < 0)
                return ctl_fail(err, "mock.chunks", "'mock.chunks' must be an integer 1..10000");
        } else if (strcmp(k, "logprob") == 0) {
            if (!json_is_number(v) || json_number_value(v) > 0 || !isfinite(json_number_value(v)))
                return ctl_fail(err, "mock.logprob", "'mock.logprob' must be a number <= 0");
            ctl->has_logprob = 1;
            ctl->logprob = json_number_value(v);
        } else if (strcmp(k, "model") == 0) {
            if (!json_is_string(v))
                return ctl_fail(err, "mock.model", "'mock.model' must be a string");
            ctl->model = json_string_value(v);
        } else if (strcmp(k, "fail_times") == 0) {
            if (ctl_int(v, 0, 1000000000, &ctl->fail_times) < 0)
                return ctl_fail(err, "mock.fail_times",
                                "'mock.fail_times' must be a non-negative integer");
        } else if (strcmp(k, "key") == 0) {
            if (!json_is_string(v))
                return ctl_fail(err, "mock.key", "'mock.key' must be a string");
            ctl->key = json_string_value(v);
        } else if (strcmp(k, "tool_calls") == 0) {
            if (ctl_int(v, 1, MOCK_ANTH_MAX_TOOL_CALLS, &ctl->tool_calls) < 0)
                return ctl_fail(err, "mock.tool_calls",
                                "'mock.tool_calls' must be an integer 1..16");
        } else if (strcmp(k, "cache_read_tokens") == 0) {
            if (ctl_int(v, 0, 1000000000, &ctl->cache_read) < 0)
                return ctl_fail(err, "mock.cache_read_tokens",
                                "'mock.cache_read_tokens' must be an integer 0..1000000000");
        } else if (strcmp(k, "cache_write_tokens") == 0) {
            if (ctl_int(v, 0, 1000000000, &ctl->cache_write) < 0)
                return ctl_fail(err, "mock.cache_write_tokens",
                                "'mock.cache_write_tokens' must be an integer 0..1000000000");
        } else {
            char msg[160];

            snprintf(msg, sizeof(msg), "unknown field 'mock.%.100s'", k);
            return ctl_fail(err, "mock", msg);
        }
    }
    return 0;
}

/* fail_times: only the first K requests carrying this key get the status or
 * fault. Without "key", the mock object itself (canonical JSON) is the key.
 * Return 0, or -1 when the table is full. */
static int ctl_gate(json_t *m, struct mock_ctl *ctl, struct mock_err *err)
{
    char *own = NULL;
    const char *key = ctl->key;
    json_t *n;
    json_int_t seen;

    if (ctl->fail_times < 0)
        return 0;
    if (key == NULL)
        key = own = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    if (strlen(key) > MOCK_MAX_KEY_LEN) {
        char *h = xasprintf("#%016llx", (unsigned long long)mock_hash(key, strlen(key), 0));

        free(own);
        key = own = h;
    }
    n = json_object_get(srv.fail_counts, key);
    if (n == NULL && json_object_size(srv.fail_counts) >= MOCK_MAX_FAIL_KEYS) {
        free(own);
        return ctl_fail(err, "mock.key", "too many distinct mock keys; POST /_mock/reset");
    }
    seen = n ? json_integer_value(n) + 1 : 1;
    if (n)
        json_integer_set(n, seen);
    else
        json_object_set_new(srv.fail_counts, key, json_integer(seen));
    free(own);
    if (seen > ctl->fail_times) {
        ctl->status = 0;
        ctl->fault = FAULT_NONE;
    }
    return 0;
}

/* Pick the controls for this request from the body's "mock": an object, or
 * an array of objects of which the first whose "model" is this model (or
 * that names no model) applies. Every element is validated, so a typo fails
 * even in an element that does not apply. *sel is borrowed, or NULL. */
static int mock_select(json_t *mock, const char *model, json_t **sel, struct mock_err *err)
{
    struct mock_ctl ctl;
    size_t i;
    json_t *m;

    *sel = NULL;
    if (mock == NULL || json_is_null(mock))
        return 0;
    if (json_is_object(mock)) {
        if (ctl_parse(mock, &ctl, err) < 0)
            return -1;
        if (ctl.model == NULL || strcmp(ctl.model, model) == 0)
            *sel = mock;
        return 0;
    }
    if (!json_is_array(mock))
        return ctl_fail(err, "mock", "'mock' must be an object or an array of objects");
    json_array_foreach (mock, i, m) {
        if (!json_is_object(m))
            return ctl_fail(err, "mock", "'mock' must be an object or an array of objects");
        if (ctl_parse(m, &ctl, err) < 0)
            return -1;
        if (*sel == NULL && (ctl.model == NULL || strcmp(ctl.model, model) == 0))
            *sel = m;
    }
    return 0;
}

/* The controls in force: this model's command-line defaults (--mock,
 * --content), overridden field by field by the request's. Returns a new
 * reference, or NULL when there are none. */
static json_t *mock_effective(const char *model, json_t *sel)
{
    json_t *d = json_object_get(srv.model_mocks, model), *e;

    if (d == NULL)
        return json_incref(sel);
    e = json_copy(d);
    if (sel)
        json_object_update(e, sel);
    return e;
}

/* The message of an injected error when mock.error_message is not given:
 * OpenAI's wording where it has one. */
static const char *default_error_message(long status)
{
    static const struct {
        long status;
        const char *message;
    } msgs[] = {
        {400, "sluice-mock: injected bad request"},
        {401, "sluice-mock: injected authentication error"},
        {404, "sluice-mock: injected not found"},
        {429, "Rate limit reached (sluice-mock injected 429)"},
        {500, "The server had an error while processing your request (sluice-mock)"},
        {502, "Bad gateway (sluice-mock)"},
        {503, "The engine is currently overloaded (sluice-mock)"},
        {504, "Gateway timeout (sluice-mock)"},
        {529, "Overloaded"},
    };

    for (size_t i = 0; i < ARRAY_LEN(msgs); i++)
        if (msgs[i].status == status)
            return msgs[i].message;
    return "sluice-mock: injected error";
}

/* ---- endpoints ---- */

enum mock_ep {
    MOCK_EP_NONE,
    MOCK_EP_CHAT,
    MOCK_EP_COMPLETIONS,
    MOCK_EP_EMBEDDINGS,
    MOCK_EP_MODELS,
    MOCK_EP_MODEL,
    MOCK_EP_STATS,
    MOCK_EP_RESET,
    MOCK_EP_HEALTH,
    MOCK_EP_MESSAGES,     /* Anthropic: POST /v1/messages */
    MOCK_EP_COUNT_TOKENS, /* Anthropic: POST /v1/messages/count_tokens */
};

struct mock_route {
    enum mock_ep ep;
    int azure;
    char *deployment; /* owned: the Azure deployment, which is the model */
    char *model_id;   /* owned: GET /v1/models/{id} */
};

static void route_request(const struct mock_http_req *req, struct mock_route *r)
{
    const char *p = req->path;
    size_t n = req->path_len;
    static const char az[] = "/openai/deployments/";

    memset(r, 0, sizeof(*r));
    if (span_eq(p, n, "/v1/chat/completions"))
        r->ep = MOCK_EP_CHAT;
    else if (span_eq(p, n, "/v1/completions"))
        r->ep = MOCK_EP_COMPLETIONS;
    else if (span_eq(p, n, "/v1/embeddings"))
        r->ep = MOCK_EP_EMBEDDINGS;
    else if (span_eq(p, n, "/v1/messages"))
        r->ep = MOCK_EP_MESSAGES;
    else if (span_eq(p, n, "/v1/messages/count_tokens"))
        r->ep = MOCK_EP_COUNT_TOKENS;
    else if (span_eq(p, n, "/v1/models"))
        r->ep = MOCK_EP_MODELS;
    else if (span_prefix(p, n, "/v1/models/") && n > 11) {
        r->model_id = pct_decode(p + 11, n - 11);
        r->ep = r->model_id ? MOCK_EP_MODEL : MOCK_EP_NONE;
    } else if (span_eq(p, n, "/_mock/stats"))
        r->ep = MOCK_EP_STATS;
    else if (span_eq(p, n, "/_mock/reset"))
        r->ep = MOCK_EP_RESET;
    else if (span_eq(p, n, "/_mock/health"))
        r->ep = MOCK_EP_HEALTH;
    else if (span_prefix(p, n, az)) {
        const char *d = p + sizeof(az) - 1, *slash;
        size_t rest = n - (sizeof(az) - 1);

        slash = memchr(d, '/', rest);
        if (slash == NULL || slash == d)
            return;
        rest -= (size_t)(slash - d);
        if (span_eq(slash, rest, "/chat/completions"))
            r->ep = MOCK_EP_CHAT;
        else if (span_eq(slash, rest, "/completions"))
            r->ep = MOCK_EP_COMPLETIONS;
        else if (span_eq(slash, rest, "/embeddings"))
            r->ep = MOCK_EP_EMBEDDINGS;
        else
            return;
        r->deployment = pct_decode(d, (size_t)(slash - d));
        if (r->deployment == NULL)
            r->ep = MOCK_EP_NONE;
        r->azure = 1;
    }
}

static int method_is(const struct mock_http_req *req, const char *m)
{
    return span_eq(req->method, req->method_len, m);
}

/* The --require-key check: "Authorization: Bearer KEY", or the key alone
 * in api-key (Azure, which takes nothing else) or x-api-key (Anthropic,
 * which also takes the bearer token its SDK 1.x sends). */
static int auth_ok(const struct mock_http_req *req, int azure, int anthropic)
{
    const char *key = srv.opt.require_key;
    const struct mock_http_header *h;
    size_t kl;

    if (key == NULL)
        return 1;
    kl = strlen(key);
    if (azure || anthropic) {
        h = mock_http_find(req, anthropic ? "x-api-key" : "api-key");
        if (h || azure)
            return h && span_eq(h->value, h->value_len, key);
    }
    h = mock_http_find(req, "authorization");
    if (h == NULL || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0)
        return 0;
    {
        const char *v = h->value + 7;
        size_t vl = h->value_len - 7;

        while (vl > 0 && *v == ' ') {
            v++;
            vl--;
        }
        return vl == kl && memcmp(v, key, kl) == 0;
    }
}

static json_t *model_object(const char *id)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", MOCK_CREATED,
                     "owned_by", "sluice-mock");
}

static void handle_models(struct conn *c, const struct mock_route *r)
{
    size_t i;
    json_t *m;

    if (r->ep == MOCK_EP_MODELS) {
        json_t *data = json_array();

        json_array_foreach (srv.models, i, m) {
            json_array_append_new(data, model_object(json_string_value(m)));
        }
        pend_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
        return;
    }
    json_array_foreach (srv.models, i, m) {
        if (strcmp(json_string_value(m), r->model_id) == 0) {
            pend_json(c, 200, model_object(r->model_id));
            return;
        }
    }
    {
        char msg[300];

        snprintf(msg, sizeof(msg), "The model '%.200s' does not exist", r->model_id);
        pend_error(c, 404, "model_not_found", "model", msg, NULL);
    }
}

static void stats_reset(void)
{
    json_decref(srv.st.by_model);
    json_decref(srv.st.by_path);
    memset(&srv.st, 0, sizeof(srv.st));
    srv.st.by_model = json_object();
    srv.st.by_path = json_object();
    json_object_clear(srv.fail_counts);
}

static void handle_stats(struct conn *c)
{
    long long streams_active = 0;

    for (struct conn *x = srv.conns; x; x = x->next)
        streams_active += x->stream_live;
    /* "active" leaves out the connection asking, so an idle mock says 0. */
    pend_json(
        c, 200,
        json_pack("{s:I,s:O,s:O,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                  (json_int_t)srv.st.requests, "by_model", srv.st.by_model, "by_path",
                  srv.st.by_path, "streams_started", (json_int_t)srv.st.streams_started,
                  "streams_completed", (json_int_t)srv.st.streams_completed, "streams_aborted",
                  (json_int_t)srv.st.streams_aborted, "streams_active", (json_int_t)streams_active,
                  "active", (json_int_t)(srv.active - 1), "faults", (json_int_t)srv.st.faults,
                  "replay_hits", (json_int_t)srv.st.replay_hits, "replay_misses",
                  (json_int_t)srv.st.replay_misses, "connections", (json_int_t)srv.st.connections));
}

/* Answer a chat, completions or messages request whose answer is built: a
 * stream or a body, in OpenAI's or (c->anthropic) Anthropic's format, with
 * the fault (if any) applied. */
static void deliver_answer(struct conn *c, struct mock_answer *a, const struct mock_ctl *ctl,
                           int http10)
{
    long chunks = ctl->chunks > 0 ? ctl->chunks : srv.opt.chunks;
    long interval = ctl->interval_ms >= 0 ? ctl->interval_ms : srv.opt.interval_ms;
    int malformed = ctl->fault == FAULT_MALFORMED, truncate = ctl->fault == FAULT_TRUNCATE;
    int error_event = ctl->fault == FAULT_ERROR_EVENT;
    int status = ctl->status > 0 && ctl->status < 400 ? (int)ctl->status : 200;

    if (a->stream) {
        /* HTTP/1.0 has no chunked encoding: the body ends at the close. */
        int rc = c->anthropic ? mock_anth_render_stream(a, (size_t)chunks, malformed, error_event,
                                                        !http10, &c->stream)
                              : mock_render_stream(a, (size_t)chunks, malformed, error_event,
                                                   !http10, &c->stream);

        if (rc < 0) {
            pend_error(c, 400, "response_too_large", NULL,
                       "sluice-mock: the stream would be too large (over 64 MiB or 200000 chunks)",
                       NULL);
            return;
        }
        if (http10)
            c->keep_alive = 0;
        pend_head(c, status, "text/event-stream; charset=utf-8",
                  http10 ? "Cache-Control: no-cache\r\n"
                         : "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
        if (buf_puts(&c->pend, "\r\n") < 0)
            sl_panic("mock: a response head outgrew its buffer");
        c->act = ACT_STREAM;
        c->act_after = http10 ? AFTER_CLOSE : c->keep_alive ? AFTER_NONE : AFTER_LINGER;
        c->interval_us = (uint64_t)interval * 1000;
        c->stream_truncate = truncate;
        c->stop_step = c->stream.nsteps;
        if (truncate) /* the opening step and about half the content */
            c->stop_step = 1 + (c->stream.nsteps - 2) / 2;
        c->stream_live = 1;
        srv.st.streams_started++;
        return;
    }
    if (error_event) {
        /* No stream to fail inside: the same overload, as a status. */
        pend_error(c, c->anthropic ? 529 : 503, NULL, NULL,
                   default_error_message(c->anthropic ? 529 : 503), NULL);
        return;
    }
    {
        size_t len;
        char *body = c->anthropic ? mock_anth_render_json(a, malformed, &len)
                                  : mock_render_json(a, malformed, &len);

        if (truncate) {
            /* Promise the whole body, send half, close. */
            pend_head(c, status, "application/json", NULL);
            if (buf_printf(&c->pend, "Content-Length: %zu\r\n\r\n", len) < 0 ||
                buf_append(&c->pend, body, len / 2) < 0)
                sl_panic("mock: a response outgrew its buffer");
            c->act = ACT_SEND;
            c->act_after = AFTER_CLOSE;
        } else {
            pend_response(c, status, "application/json", NULL, body, len);
        }
        free(body);
    }
}

static void log_request(const struct mock_http_req *req, const char *model, const char *what)
{
    if (!srv.opt.verbose)
        return;
    fprintf(stderr, "sluice-mock: %.*s %.*s model=%s %s\n", (int)req->method_len, req->method,
            (int)(req->path_len > 200 ? 200 : req->path_len), req->path, model ? model : "-", what);
}

/* An API POST (chat, completions, embeddings): count it, check it, parse the
 * body and the mock controls, and set up the answer. Returns the first-byte
 * delay to apply. */
static long handle_api(struct conn *c, const struct mock_http_req *req, const struct mock_route *r)
{
    struct mock_err err = {0};
    struct mock_ctl ctl;
    json_error_t jerr;
    json_t *body, *sel, *eff = NULL;
    const char *model;
    long delay = 0;
    char *path = printable(req->path, req->path_len);

    srv.st.requests++;
    stats_bump(srv.st.by_path, path);
    free(path);
    if (r->azure && !query_has(req, "api-version")) {
        pend_error(c, 400, "missing_api_version", "api-version",
                   "sluice-mock: the api-version query parameter is required", NULL);
        return 0;
    }
    if (!auth_ok(req, r->azure, c->anthropic)) {
        pend_error(c, 401, "invalid_api_key", NULL,
                   r->azure       ? "Access denied due to invalid subscription key (sluice-mock)."
                   : c->anthropic ? "invalid x-api-key (sluice-mock)"
                                  : "Incorrect API key provided (sluice-mock).",
                   NULL);
        return 0;
    }
    if (c->anthropic && mock_http_find(req, "anthropic-version") == NULL) {
        pend_error(c, 400, NULL, NULL, "anthropic-version: header is required", NULL);
        return 0;
    }
    body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(body)) {
        char msg[400];

        snprintf(msg, sizeof(msg),
                 "We could not parse the JSON body of your request (sluice-mock: %s)",
                 body ? "the body must be a JSON object" : jerr.text);
        json_decref(body);
        pend_error(c, 400, NULL, NULL, msg, NULL);
        return 0;
    }
    model = r->azure ? r->deployment : json_string_value(json_object_get(body, "model"));
    if (model == NULL) {
        json_decref(body);
        pend_error(c, 400, NULL, "model", "you must provide a model parameter", NULL);
        return 0;
    }
    stats_bump(srv.st.by_model, model);

    if (mock_select(json_object_get(body, "mock"), model, &sel, &err) < 0)
        goto error;
    eff = mock_effective(model, sel);
    if (ctl_parse(eff, &ctl, &err) < 0 || ctl_gate(eff, &ctl, &err) < 0)
        goto error;
    delay = ctl.first_byte_ms >= 0 ? ctl.first_byte_ms : srv.opt.first_byte_ms;

    if (ctl.fault == FAULT_HANG || ctl.fault == FAULT_RESET) {
        srv.st.faults++;
        c->act = ctl.fault == FAULT_HANG ? ACT_HANG : ACT_RESET;
        log_request(req, model, ctl.fault == FAULT_HANG ? "fault=hang" : "fault=reset");
        goto done;
    }
    if (ctl.fault == FAULT_ERROR_200) {
        srv.st.faults++;
        pend_error(c, 200, "server_error", NULL,
                   ctl.error_message ? ctl.error_message : "sluice-mock: an error with status 200",
                   NULL);
        log_request(req, model, "fault=error_200");
        goto done;
    }
    if (ctl.status >= 400) {
        char extra[96] = "";

        if (ctl.retry_after >= 0)
            snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n%s: %lld\r\n",
                     (long long)ceil(ctl.retry_after),
                     c->anthropic ? "x-should-retry" : "retry-after-ms",
                     c->anthropic ? 1LL : (long long)llround(ctl.retry_after * 1000));
        srv.st.faults++;
        pend_error(c, (int)ctl.status, ctl.status == 429 ? "rate_limit_exceeded" : NULL, NULL,
                   ctl.error_message ? ctl.error_message : default_error_message(ctl.status),
                   extra);
        log_request(req, model, "injected status");
        goto done;
    }
    if (ctl.fault != FAULT_NONE)
        srv.st.faults++;

    if (r->ep == MOCK_EP_COUNT_TOKENS) {
        long long tokens;

        if (mock_anth_count_tokens(body, &tokens, &err) < 0)
            goto error;
        pend_json(c, 200, json_pack("{s:I}", "input_tokens", (json_int_t)tokens));
        log_request(req, model, "ok");
    } else if (r->ep == MOCK_EP_EMBEDDINGS) {
        struct buf out;
        long long tokens;

        buf_init(&out, MOCK_WBUF_MAX / 2);
        if (mock_gen_embeddings(body, model, &out, &tokens, &err) < 0) {
            buf_free(&out);
            goto error;
        }
        if (ctl.fault == FAULT_TRUNCATE) {
            pend_head(c, 200, "application/json", NULL);
            if (buf_printf(&c->pend, "Content-Length: %zu\r\n\r\n", out.len) < 0 ||
                buf_append(&c->pend, out.data, out.len / 2) < 0)
                sl_panic("mock: a response outgrew its buffer");
            c->act = ACT_SEND;
            c->act_after = AFTER_CLOSE;
        } else {
            pend_response(c, 200, "application/json", NULL, out.data,
                          ctl.fault == FAULT_MALFORMED ? out.len / 2 : out.len);
        }
        buf_free(&out);
        log_request(req, model, "ok");
    } else {
        struct mock_gen_opts o = {
            .model = model,
            .content = ctl.content,
            .content_len = ctl.content_len,
            .choices = ctl.choices,
            .forced = ctl.has_logprob,
            .forced_lp = ctl.logprob,
            .replay = srv.replay,
            .seq = srv.seq,
            .cache_read = ctl.cache_read,
            .cache_write = ctl.cache_write,
        };
        struct mock_answer a;
        int rc = r->ep == MOCK_EP_CHAT ? mock_gen_chat(body, &o, &a, &err)
                 : r->ep == MOCK_EP_MESSAGES
                     ? mock_anth_gen(body, &o, (int)ctl.tool_calls, &a, &err)
                     : mock_gen_completion(body, &o, &a, &err);

        if (rc < 0) {
            if (err.code && strcmp(err.code, "replay_miss") == 0)
                srv.st.replay_misses++;
            goto error;
        }
        srv.st.replay_hits += a.replayed;
        deliver_answer(c, &a, &ctl, req->minor == 0);
        log_request(req, model, a.stream ? "stream" : "ok");
        mock_answer_free(&a);
    }
    goto done;

error:
    log_request(req, model, err.message);
    pend_error(c, err.status, err.code, err.param, err.message, NULL);
done:
    json_decref(eff);
    json_decref(body);
    return delay;
}

/* Answer one complete request. req borrows from c->rbuf; whatever the answer
 * needs later is copied into c->pend or c->stream. */
static void handle_request(struct conn *c, const struct mock_http_req *req)
{
    struct mock_route r;
    long delay = 0;

    srv.seq++;
    c->keep_alive = req->keep_alive;
    c->http10 = req->minor == 0;
    c->head_only = method_is(req, "HEAD");
    c->act = ACT_SEND;
    route_request(req, &r);
    c->anthropic = r.ep == MOCK_EP_MESSAGES || r.ep == MOCK_EP_COUNT_TOKENS;
    switch (r.ep) {
    case MOCK_EP_MESSAGES:
    case MOCK_EP_COUNT_TOKENS:
    case MOCK_EP_CHAT:
    case MOCK_EP_COMPLETIONS:
    case MOCK_EP_EMBEDDINGS:
        if (!method_is(req, "POST"))
            pend_error(c, 405, NULL, NULL, "sluice-mock: use POST on this path", "Allow: POST\r\n");
        else
            delay = handle_api(c, req, &r);
        break;
    case MOCK_EP_MODELS:
    case MOCK_EP_MODEL:
        if (!method_is(req, "GET"))
            pend_error(c, 405, NULL, NULL, "sluice-mock: use GET on this path", "Allow: GET\r\n");
        else if (!auth_ok(req, 0, 0))
            pend_error(c, 401, "invalid_api_key", NULL, "Incorrect API key provided (sluice-mock).",
                       NULL);
        else
            handle_models(c, &r);
        break;
    case MOCK_EP_STATS:
        if (!method_is(req, "GET"))
            pend_error(c, 405, NULL, NULL, "sluice-mock: use GET on this path", "Allow: GET\r\n");
        else
            handle_stats(c);
        break;
    case MOCK_EP_RESET:
        if (!method_is(req, "POST")) {
            pend_error(c, 405, NULL, NULL, "sluice-mock: use POST on this path", "Allow: POST\r\n");
        } else {
            stats_reset();
            pend_json(c, 200, json_pack("{s:b}", "ok", 1));
        }
        break;
    case MOCK_EP_HEALTH:
        pend_json(c, 200, json_pack("{s:s}", "status", "ok"));
        break;
    case MOCK_EP_NONE: {
        char *p = printable(req->path, req->path_len > 200 ? 200 : req->path_len);
        char *m = printable(req->method, req->method_len);
        char msg[300];

        snprintf(msg, sizeof(msg), "Invalid URL (%s %s)", m, p);
        pend_error(c, 404, NULL, NULL, msg, NULL);
        free(p);
        free(m);
        break;
    }
    }
    free(r.deployment);
    free(r.model_id);
    conn_dispatch(c, delay);
}

/* Parse and answer the complete requests in rbuf, in order, until one takes
 * time (a delay, a stream, a hang) or the output backs up. */
static void conn_handle_requests(struct conn *c)
{
    struct mock_http_req req;

    while (c->state == CONN_READ && !c->closed && c->after == AFTER_NONE) {
        int n;

        if (pending_out(c) > MOCK_WBUF_HIGH) {
            c->blocked = 1;
            return;
        }
        if (c->rbuf.len == 0 || c->rbuf.len < c->need)
            return;
        n = mock_http_parse(c->rbuf.data, c->rbuf.len, &req);
        if (n == 0) {
            if (req.head_len) {
                c->need = req.head_len + req.body_len;
                if (req.expect_continue && !c->continue_sent) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

                    c->continue_sent = 1;
                    if (out_append(c, cont, sizeof(cont) - 1) < 0)
                        conn_close(c, 0);
                }
            }
            return;
        }
        if (n < 0) {
            /* The stream cannot be resynchronised: answer and close. */
            c->keep_alive = 0;
            c->http10 = 0;
            c->anthropic = 0;
            c->head_only = 0;
            pend_error(c, req.status, NULL, NULL, req.error, NULL);
            conn_perform(c);
            buf_reset(&c->rbuf);
            return;
        }
        c->need = 0;
        c->continue_sent = 0;
        handle_request(c, &req);
        if (c->closed)
            return;
        buf_consume(&c->rbuf, (size_t)n);
    }
    if (c->rbuf.len == 0 && c->rbuf.cap > MOCK_BUF_KEEP)
        buf_free(&c->rbuf);
}

/* Make all the progress possible: answer requests, queue stream steps, write,
 * and act on a drained output. Then ask epoll for what c waits on. */
static void conn_update(struct conn *c)
{
    while (!c->closed) {
        c->blocked = 0;
        if (c->state == CONN_READ && c->after == AFTER_NONE)
            conn_handle_requests(c);
        if (c->closed)
            return;
        if (c->state == CONN_STREAM)
            stream_pump(c);
        if (c->closed)
            return;
        if (conn_flush(c) < 0) {
            conn_close(c, 0);
            return;
        }
        if (pending_out(c) > 0)
            break;
        /* The output is drained. */
        if (c->state == CONN_STREAM && c->stream_final) {
            stream_done(c);
            continue;
        }
        if (c->after == AFTER_CLOSE) {
            conn_close(c, 0);
            return;
        }
        if (c->after == AFTER_LINGER) {
            conn_linger(c);
            break;
        }
        if (!c->blocked)
            break;
    }
    if (c->closed)
        return;
    /* A client that went away while its answer was still coming: a delayed
     * answer, a stream, a hang. A client that only half-closed after its
     * requests gets the answers already queued. */
    if (c->peer_eof) {
        if (c->state != CONN_READ || pending_out(c) == 0) {
            conn_close(c, 0);
            return;
        }
        c->after = AFTER_CLOSE;
    }
    conn_interest(c);
}

static void conn_io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct conn *c = arg;

    UNUSED(loop);
    UNUSED(fd);
    if (c->closed)
        return; /* closed earlier in this iteration */
    if (events & EPOLLERR) {
        conn_close(c, 0);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (conn_reading(c))
            conn_read(c);
        else if (events & (EPOLLRDHUP | EPOLLHUP))
            c->peer_eof = 1;
    }
    if (!c->closed)
        conn_update(c);
}

static void conn_timer_cb(struct loop *loop, void *arg)
{
    struct conn *c = arg;

    UNUSED(loop);
    if (c->closed)
        return;
    if (c->state == CONN_LINGER) {
        conn_close(c, 0);
        return;
    }
    if (c->state == CONN_DELAY)
        conn_perform(c);
    /* CONN_STREAM: the interval passed; conn_update queues the next step. */
    if (!c->closed)
        conn_update(c);
}

static void conn_new(int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    /* Small responses and SSE chunks must not wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->state = CONN_READ;
    buf_init(&c->rbuf, MOCK_RBUF_MAX);
    buf_init(&c->wbuf, MOCK_WBUF_MAX);
    buf_init(&c->pend, MOCK_WBUF_MAX);
    loop_timer_init(&c->timer, conn_timer_cb, c);
    if (loop_io_add(srv.loop, &c->io, fd, EPOLLIN | EPOLLRDHUP, conn_io_cb, c) < 0) {
        close(fd);
        conn_free(c);
        return;
    }
    c->next = srv.conns;
    if (srv.conns)
        srv.conns->prev = c;
    srv.conns = c;
    srv.active++;
    srv.st.connections++;
}

/* ---- listening ---- */

static void accept_resume_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop_io_mod(loop, &srv.lio, EPOLLIN);
}

static void listen_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    for (int i = 0; i < 256; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd >= 0) {
            conn_new(cfd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: stop listening for a moment rather than
             * spin on a listener that stays readable. */
            static int warned;

            if (!warned++)
                fprintf(stderr, "sluice-mock: accept: %s (pausing accepts)\n", strerror(errno));
            loop_io_mod(loop, &srv.lio, 0);
            loop_timer_start(loop, &srv.accept_timer, (uint64_t)MOCK_ACCEPT_PAUSE_MS * 1000);
        }
        return;
    }
}

/* Bind and listen on spec ("HOST:PORT", "[V6]:PORT", ":PORT" or "PORT").
 * Return the socket, or -1 with a message on stderr; *shown gets the
 * "HOST:PORT" to announce (the real port when PORT was 0). */
static int listen_on(const char *spec, char *shown, size_t shownlen)
{
    char host[256] = "127.0.0.1", port[16];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *res, *ai;
    int fd = -1, rc, one = 1;

    if (colon == NULL) {
        snprintf(port, sizeof(port), "%s", spec);
    } else {
        size_t hl = (size_t)(colon - spec);

        if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port)) {
            fprintf(stderr, "sluice-mock: bad --listen '%s'\n", spec);
            return -1;
        }
        if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
            memcpy(host, spec + 1, hl - 2);
            host[hl - 2] = '\0';
        } else if (hl > 0) {
            memcpy(host, spec, hl);
            host[hl] = '\0';
        } else {
            snprintf(host, sizeof(host), "0.0.0.0");
        }
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    {
        long p;

        if (parse_long(port, 0, 65535, &p) < 0) {
            fprintf(stderr, "sluice-mock: bad port in --listen '%s'\n", spec);
            return -1;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sluice-mock: --listen %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 65535) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        fprintf(stderr, "sluice-mock: cannot listen on %s: %s\n", spec, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        unsigned bound = 0;

        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        snprintf(shown, shownlen, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, bound);
    }
    freeaddrinfo(res);
    return fd;
}

/* ---- signals ---- */

static void signal_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;

    UNUSED(events);
    UNUSED(arg);
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        loop_stop(loop);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fputs("usage: sluice-mock [--listen HOST:PORT] [--replay FILE.jsonl ...]\n"
          "                   [--require-key KEY] [--first-byte-ms N] [--chunks N]\n"
          "                   [--interval-ms N] [--content MODEL=TEXT] [--mock MODEL=JSON]\n"
          "                   [--quiet] [--verbose] [--help]\n"
          "\n"
          "An OpenAI-compatible fake provider for sluice's tests and benchmarks; it also\n"
          "answers Anthropic's POST /v1/messages and /v1/messages/count_tokens in\n"
          "Anthropic's wire format (an \"anthropic-version\" header is required there).\n"
          "\n"
          "  --listen HOST:PORT   address to listen on (default 127.0.0.1:8081; port 0\n"
          "                       picks a free port). Prints one line to stdout:\n"
          "                       \"sluice-mock listening on http://HOST:PORT\"\n"
          "  --replay FILE...     RouterBench JSONL files; their models answer with the\n"
          "                       recorded content and usage (404 replay_miss otherwise)\n"
          "  --require-key KEY    require \"Authorization: Bearer KEY\" (\"api-key: KEY\" on\n"
          "                       Azure paths; \"x-api-key: KEY\" or the bearer token on\n"
          "                       Anthropic paths), else 401\n"
          "  --first-byte-ms N    delay before the first response byte (default 0)\n"
          "  --chunks N           content chunks per streamed choice (default 5)\n"
          "  --interval-ms N      delay between stream chunks (default 0)\n"
          "  --content MODEL=TEXT MODEL always answers TEXT (e.g. a judge's score)\n"
          "  --mock MODEL=JSON    default \"mock\" controls for MODEL, e.g.\n"
          "                       'slow={\"first_byte_ms\":500}'; a request's own override\n"
          "  --quiet              no startup messages on stderr\n"
          "  --verbose            one line per request on stderr\n"
          "\n"
          "Per request, a body field \"mock\": {content, choices, status, retry_after,\n"
          "error_message, fault (hang|reset|truncate|malformed|error_event|error_200),\n"
          "first_byte_ms, chunks, interval_ms, logprob, model, fail_times, key,\n"
          "tool_calls, cache_read_tokens, cache_write_tokens} overrides the defaults; an\n"
          "array of such objects applies the first whose \"model\" matches.\n"
          "error_event: a 200 stream that fails with an error event before its first\n"
          "token (a whole answer: 503, or Anthropic's 529 overloaded_error). tool_calls\n"
          "(Anthropic mode, 1..16): that many tool_use blocks over the request's tools,\n"
          "after a text block when content is given. cache_read_tokens and\n"
          "cache_write_tokens: prompt tokens reported as read from and written to a\n"
          "prompt cache (OpenAI: prompt_tokens_details.cached_tokens).\n"
          "GET /_mock/stats counts requests and streams; POST /_mock/reset zeroes it.\n",
          f);
}

/* The value of option `name` at argv[*i]: "--name=value" or "--name value".
 * Return NULL when argv[*i] is not this option. Exits on a missing value. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sluice-mock: %s needs a value\n", name);
        exit(2);
    }
    return argv[++*i];
}

static long opt_long(const char *name, const char *v, long min, long max)
{
    long x;

    if (parse_long(v, min, max, &x) < 0) {
        fprintf(stderr, "sluice-mock: %s must be an integer from %ld to %ld\n", name, min, max);
        exit(2);
    }
    return x;
}

/* --mock MODEL=JSON and --content MODEL=TEXT: merge obj (taken) into the
 * model's default controls. Exits on a bad value. */
static void model_mock_add(const char *opt, const char *spec, int is_content)
{
    const char *eq = strchr(spec, '=');
    struct mock_ctl ctl;
    struct mock_err err;
    json_error_t jerr;
    json_t *obj, *cur;
    char *model;

    if (eq == NULL || eq == spec) {
        fprintf(stderr, "sluice-mock: %s wants MODEL=%s\n", opt, is_content ? "TEXT" : "JSON");
        exit(2);
    }
    model = xstrndup(spec, (size_t)(eq - spec));
    obj = is_content ? json_pack("{s:s}", "content", eq + 1) : json_loads(eq + 1, 0, &jerr);
    if (!json_is_object(obj) || ctl_parse(obj, &ctl, &err) < 0) {
        fprintf(stderr, "sluice-mock: %s %s: %s\n", opt, spec,
                obj == NULL           ? (is_content ? "not UTF-8" : jerr.text)
                : json_is_object(obj) ? err.message
                                      : "the value must be a JSON object");
        exit(2);
    }
    json_object_del(obj, "model"); /* the model is the key here */
    cur = json_object_get(srv.model_mocks, model);
    if (cur)
        json_object_update(cur, obj);
    else
        json_object_set(srv.model_mocks, model, obj);
    json_decref(obj);
    free(model);
}

/* Parse argv into srv.opt and the list of replay files (argv pointers). */
static void parse_args(int argc, char **argv, const char ***files, size_t *nfiles)
{
    *files = xcalloc((size_t)argc, sizeof(**files));
    *nfiles = 0;
    srv.opt.listen = MOCK_DEFAULT_LISTEN;
    srv.opt.chunks = 5;
    for (int i = 1; i < argc; i++) {
        const char *v;

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            srv.opt.quiet = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            srv.opt.verbose = 1;
        } else if ((v = opt_value(argc, argv, &i, "--listen"))) {
            srv.opt.listen = v;
        } else if ((v = opt_value(argc, argv, &i, "--require-key"))) {
            srv.opt.require_key = v;
        } else if ((v = opt_value(argc, argv, &i, "--first-byte-ms"))) {
            srv.opt.first_byte_ms = opt_long("--first-byte-ms", v, 0, MOCK_MAX_DELAY_MS);
        } else if ((v = opt_value(argc, argv, &i, "--chunks"))) {
            srv.opt.chunks = opt_long("--chunks", v, 1, MOCK_MAX_CHUNKS);
        } else if ((v = opt_value(argc, argv, &i, "--interval-ms"))) {
            srv.opt.interval_ms = opt_long("--interval-ms", v, 0, MOCK_MAX_DELAY_MS);
        } else if ((v = opt_value(argc, argv, &i, "--content"))) {
            model_mock_add("--content", v, 1);
        } else if ((v = opt_value(argc, argv, &i, "--mock"))) {
            model_mock_add("--mock", v, 0);
        } else if ((v = opt_value(argc, argv, &i, "--replay"))) {
            /* "--replay a.jsonl b.jsonl" and "--replay a --replay b" both work. */
            (*files)[(*nfiles)++] = v;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                (*files)[(*nfiles)++] = argv[++i];
        } else {
            fprintf(stderr, "sluice-mock: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            exit(2);
        }
    }
}

/* Descriptors are the limit on concurrent streams: take all we may. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_max == RLIM_INFINITY) {
        rl.rlim_cur = 1 << 20;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void models_add(const char *id)
{
    size_t i;
    json_t *m;

    json_array_foreach (srv.models, i, m) {
        if (strcmp(json_string_value(m), id) == 0)
            return;
    }
    json_array_append_new(srv.models, json_string(id));
}

int main(int argc, char **argv)
{
    const char **files;
    size_t nfiles;
    char shown[300];
    sigset_t mask;

    srv.model_mocks = json_object();
    parse_args(argc, argv, &files, &nfiles);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    srv.models = json_array();
    models_add("mock-small");
    models_add("mock-large");
    srv.fail_counts = json_object();
    srv.st.by_model = json_object();
    srv.st.by_path = json_object();
    if (nfiles > 0) {
        uint64_t t0 = now_ms();

        srv.replay = mock_replay_new();
        for (size_t i = 0; i < nfiles; i++) {
            char err[512];

            if (mock_replay_load(srv.replay, files[i], err, sizeof(err)) < 0) {
                fprintf(stderr, "sluice-mock: replay: %s\n", err);
                return 1;
            }
        }
        for (size_t i = 0; i < mock_replay_nmodels(srv.replay); i++)
            models_add(mock_replay_model(srv.replay, i));
        if (!srv.opt.quiet)
            fprintf(stderr,
                    "sluice-mock: replay: %zu answers of %zu models from %zu files in %llu ms\n",
                    mock_replay_nanswers(srv.replay), mock_replay_nmodels(srv.replay), nfiles,
                    (unsigned long long)(now_ms() - t0));
    }
    free(files);

    /* SIGINT/SIGTERM arrive as a readable fd, so the loop stops between
     * callbacks and can free everything. A shell starts background jobs
     * with SIGINT ignored, and an ignored signal never reaches a signalfd:
     * restore the default first (blocked, it cannot kill us). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    srv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (srv.sfd < 0)
        sl_panic("signalfd: %s", strerror(errno));

    srv.lfd = listen_on(srv.opt.listen, shown, sizeof(shown));
    if (srv.lfd < 0)
        return 1;
    srv.loop = loop_new();
    loop_timer_init(&srv.accept_timer, accept_resume_cb, NULL);
    if (loop_io_add(srv.loop, &srv.lio, srv.lfd, EPOLLIN, listen_cb, NULL) < 0 ||
        loop_io_add(srv.loop, &srv.sio, srv.sfd, EPOLLIN, signal_cb, NULL) < 0)
        sl_panic("epoll_ctl: %s", strerror(errno));
    printf("sluice-mock listening on http://%s\n", shown);
    fflush(stdout);

    loop_run(srv.loop);

    while (srv.conns) {
        struct conn *c = srv.conns;

        srv.conns = c->next;
        loop_timer_stop(srv.loop, &c->timer);
        close(c->fd);
        conn_free(c);
    }
    loop_timer_stop(srv.loop, &srv.accept_timer);
    close(srv.lfd);
    close(srv.sfd);
    loop_free(srv.loop);
    mock_replay_free(srv.replay);
    json_decref(srv.models);
    json_decref(srv.fail_counts);
    json_decref(srv.model_mocks);
    json_decref(srv.st.by_model);
    json_decref(srv.st.by_path);
    if (!srv.opt.quiet)
        fprintf(stderr, "sluice-mock: stopped\n");
    return 0;
}
