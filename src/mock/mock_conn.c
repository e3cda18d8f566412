/* mock_conn.c - sluice-mock's connections (see mock_conn.h).
 *
 * Each connection reads requests into a bounded buffer, parses them with
 * mock_http_parse() and has the request callback build the whole reply when
 * the request arrives. Time only decides when its bytes are queued: a loop
 * timer holds the first byte back (delay_ms) and paces stream steps
 * (interval_us). Nothing ever sleeps, so thousands of slow streams cost only
 * memory.
 */
#include "mock_conn.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MOCK_CONN_RBUF_MAX (MOCK_HTTP_MAX_HEAD + MOCK_HTTP_MAX_BODY)
#define MOCK_CONN_WBUF_MAX MOCK_REPLY_MAX /* one full response or stream step, plus slack */
#define MOCK_CONN_WBUF_HIGH (1u << 20)    /* stop producing output above this */
#define MOCK_CONN_BUF_KEEP (256u << 10)   /* free idle buffers bigger than this */
#define MOCK_CONN_READ_CHUNK 65536
#define MOCK_CONN_LINGER_MS 2000
#define MOCK_CONN_ACCEPT_PAUSE_MS 100

enum mock_conn_state {
    MOCK_CONN_READ,   /* reading and answering requests */
    MOCK_CONN_DELAY,  /* a reply is ready and waits for its first-byte time */
    MOCK_CONN_STREAM, /* queuing a stream's steps as the interval allows */
    MOCK_CONN_HANG,   /* never answering; waits for the client to give up */
    MOCK_CONN_LINGER, /* answered and shut for writing; drains input, then closes */
};

struct mock_conn {
    struct loop_io io;
    int fd;
    struct mock_conn *prev, *next;
    struct loop_timer timer; /* first byte, stream interval or linger */
    enum mock_conn_state state;
    enum mock_reply_after after; /* once the queued output is sent */
    struct buf rbuf;             /* received bytes not yet consumed */
    struct buf wbuf;             /* bytes to send from wpos on */
    size_t wpos;
    size_t need;       /* rbuf bytes the pending request needs before reparsing */
    int continue_sent; /* "100 Continue" already sent for the pending request */
    int peer_eof;
    int closed;
    int blocked; /* production stopped at MOCK_CONN_WBUF_HIGH; resume on drain */

    struct mock_reply reply; /* the answer being delivered */
    size_t step;             /* next stream step to queue */
    uint64_t stream_t0_us;   /* when step 0 was queued; step k is due at t0 + k*interval */
    int stream_live;         /* counted in streams_started, not yet completed or aborted */
    int stream_final;        /* every step is queued */
};

/* The connections of this process (Redis keeps its `server` the same way). */
static struct {
    struct loop *loop;
    mock_conn_request_cb request_cb;
    void *request_arg;
    int lfd;
    struct loop_io lio;
    struct loop_timer accept_timer;
    struct mock_conn *conns;
    unsigned long long seq; /* requests answered: the request ids */
    struct mock_conn_counts counts;
} mc = {.lfd = -1};

static void mock_conn_update(struct mock_conn *c);

/* ---- output ---- */

static size_t mock_conn_pending(const struct mock_conn *c)
{
    return c->wbuf.len - c->wpos;
}

/* Queue n bytes. The sent prefix is dropped first when that is cheap, so the
 * cap bounds what is unsent. Return 0, or -1 when the cap is hit. */
static int mock_conn_out(struct mock_conn *c, const void *p, size_t n)
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
 * connection failed. */
static int mock_conn_flush(struct mock_conn *c)
{
    while (mock_conn_pending(c) > 0) {
        ssize_t n = send(c->fd, c->wbuf.data + c->wpos, mock_conn_pending(c), MSG_NOSIGNAL);

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
    if (c->wbuf.cap > MOCK_CONN_BUF_KEEP)
        buf_free(&c->wbuf);
    else
        buf_reset(&c->wbuf);
    return 0;
}

/* ---- life cycle ---- */

static void mock_conn_free(struct mock_conn *c)
{
    buf_free(&c->rbuf);
    buf_free(&c->wbuf);
    mock_reply_free(&c->reply);
    free(c);
}

static void mock_conn_free_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    mock_conn_free(arg);
}

/* Close c now; with `reset`, make the peer see a connection reset (RST)
 * instead of an orderly end. The memory is freed before the loop sleeps,
 * because an event for c may still be pending in this iteration. */
static void mock_conn_close(struct mock_conn *c, int reset)
{
    if (c->closed)
        return;
    if (c->stream_live) {
        mc.counts.streams_aborted++;
        c->stream_live = 0;
    }
    loop_timer_stop(mc.loop, &c->timer);
    loop_io_del(mc.loop, &c->io);
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
        mc.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    mc.counts.active--;
    loop_defer(mc.loop, mock_conn_free_cb, c);
}

/* The response is out and the connection is not reused: shut our side, then
 * read until the client closes (or MOCK_CONN_LINGER_MS), so that closing
 * with unread input does not reset the connection under the client's feet. */
static void mock_conn_linger(struct mock_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = MOCK_CONN_LINGER;
    c->after = MOCK_REPLY_KEEP;
    buf_free(&c->rbuf);
    loop_timer_start(mc.loop, &c->timer, (uint64_t)MOCK_CONN_LINGER_MS * 1000);
}

static int mock_conn_reading(const struct mock_conn *c)
{
    if (c->peer_eof)
        return 0;
    if (c->state == MOCK_CONN_HANG || c->state == MOCK_CONN_LINGER)
        return 1;
    return c->rbuf.len < MOCK_CONN_RBUF_MAX;
}

static void mock_conn_interest(struct mock_conn *c)
{
    uint32_t ev = 0;

    if (mock_conn_reading(c))
        ev |= EPOLLIN | EPOLLRDHUP;
    if (mock_conn_pending(c) > 0)
        ev |= EPOLLOUT;
    if (loop_io_mod(mc.loop, &c->io, ev) < 0)
        mock_conn_close(c, 0);
}

/* Read what is there. Sets peer_eof at end of input; closes c on errors. */
static void mock_conn_read(struct mock_conn *c)
{
    static char chunk[MOCK_CONN_READ_CHUNK];

    for (int i = 0; i < 16 && !c->closed; i++) {
        int discard = c->state == MOCK_CONN_HANG || c->state == MOCK_CONN_LINGER;
        size_t want = sizeof(chunk);
        ssize_t n;

        if (!discard) {
            if (c->rbuf.len >= MOCK_CONN_RBUF_MAX)
                return;
            if (MOCK_CONN_RBUF_MAX - c->rbuf.len < want)
                want = MOCK_CONN_RBUF_MAX - c->rbuf.len;
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
            mock_conn_close(c, 0);
        return;
    }
}

/* ---- delivering ---- */

/* The reply is due: queue it (or reset, or hang). */
static void mock_conn_perform(struct mock_conn *c)
{
    struct mock_reply *r = &c->reply;

    switch (r->act) {
    case MOCK_REPLY_RESET:
        mock_conn_close(c, 1);
        return;
    case MOCK_REPLY_HANG:
        c->state = MOCK_CONN_HANG;
        return;
    case MOCK_REPLY_SEND:
        c->state = MOCK_CONN_READ;
        if (mock_conn_pending(c) == 0 && c->wbuf.len == 0) {
            /* The common case: hand the buffer over instead of copying. */
            struct buf t = c->wbuf;

            c->wbuf = r->data;
            r->data = t;
            c->wpos = 0;
        } else if (mock_conn_out(c, r->data.data, r->data.len) < 0) {
            mock_conn_close(c, 0);
            return;
        }
        buf_reset(&r->data);
        c->after = r->after;
        return;
    case MOCK_REPLY_STREAM:
        c->state = MOCK_CONN_STREAM;
        if (mock_conn_out(c, r->data.data, r->data.len) < 0) {
            mock_conn_close(c, 0);
            return;
        }
        buf_reset(&r->data);
        c->step = 0;
        c->stream_final = 0;
        c->stream_t0_us = now_us();
        return;
    }
}

/* Deliver the reply now, or after its first-byte delay. */
static void mock_conn_dispatch(struct mock_conn *c)
{
    if (c->reply.act == MOCK_REPLY_HANG) {
        c->state = MOCK_CONN_HANG;
        return;
    }
    if (c->reply.delay_ms > 0) {
        c->state = MOCK_CONN_DELAY;
        loop_timer_start(mc.loop, &c->timer, (uint64_t)c->reply.delay_ms * 1000);
        return;
    }
    mock_conn_perform(c);
}

/* Queue the stream steps that are due. Step 0 goes out at once; content step
 * k is due at t0 + k * interval_us (from the start, so a busy loop does not
 * add its lag to every step); the closing step follows the last content step
 * at once. Stops at MOCK_CONN_WBUF_HIGH (the caller resumes after a drain). */
static void mock_conn_pump(struct mock_conn *c)
{
    const struct mock_reply *r = &c->reply;
    size_t last = r->stream.nsteps - 1; /* the closing step */

    while (c->state == MOCK_CONN_STREAM && !c->stream_final && !loop_timer_armed(&c->timer)) {
        size_t i = c->step, from, to;

        if (i >= r->stop_step) {
            c->stream_final = 1;
            break;
        }
        if (mock_conn_pending(c) > MOCK_CONN_WBUF_HIGH) {
            c->blocked = 1;
            return;
        }
        from = i ? r->stream.ends[i - 1] : 0;
        to = r->stream.ends[i];
        if (mock_conn_out(c, r->stream.data.data + from, to - from) < 0) {
            mock_conn_close(c, 0);
            return;
        }
        c->step++;
        if (r->interval_us && c->step < r->stop_step && c->step < last) {
            uint64_t due = c->stream_t0_us + c->step * r->interval_us, now = now_us();

            if (due > now)
                loop_timer_start(mc.loop, &c->timer, due - now);
        }
    }
}

/* Every step is sent. */
static void mock_conn_stream_done(struct mock_conn *c)
{
    c->stream_live = 0;
    mock_stream_free(&c->reply.stream);
    if (c->reply.truncate) {
        mock_conn_close(c, 0); /* the fault: end without the terminator */
        return;
    }
    mc.counts.streams_completed++;
    c->state = MOCK_CONN_READ;
    c->after = c->reply.after;
}

/* ---- requests ---- */

/* Answer one complete request. req borrows from c->rbuf; whatever the reply
 * needs later is copied into it. */
static void mock_conn_answer(struct mock_conn *c, const struct mock_http_req *req)
{
    int head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;

    mc.seq++;
    mock_reply_start(&c->reply, mc.seq, req->keep_alive, req->minor == 0, head);
    mc.request_cb(&c->reply, req, mc.request_arg);
    if (c->reply.act == MOCK_REPLY_STREAM) {
        c->stream_live = 1;
        mc.counts.streams_started++;
    }
    mock_conn_dispatch(c);
}

/* Parse and answer the complete requests in rbuf, in order, until one takes
 * time (a delay, a stream, a hang) or the output backs up. */
static void mock_conn_requests(struct mock_conn *c)
{
    struct mock_http_req req;

    while (c->state == MOCK_CONN_READ && !c->closed && c->after == MOCK_REPLY_KEEP) {
        int n;

        if (mock_conn_pending(c) > MOCK_CONN_WBUF_HIGH) {
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
                    if (mock_conn_out(c, cont, sizeof(cont) - 1) < 0)
                        mock_conn_close(c, 0);
                }
            }
            return;
        }
        if (n < 0) {
            /* The stream cannot be resynchronised: answer and close. */
            mock_reply_start(&c->reply, mc.seq, 0, 0, 0);
            mock_reply_error(&c->reply, req.status, NULL, NULL, req.error, NULL);
            mock_conn_perform(c);
            buf_reset(&c->rbuf);
            return;
        }
        c->need = 0;
        c->continue_sent = 0;
        mock_conn_answer(c, &req);
        if (c->closed)
            return;
        buf_consume(&c->rbuf, (size_t)n);
    }
    if (c->rbuf.len == 0 && c->rbuf.cap > MOCK_CONN_BUF_KEEP)
        buf_free(&c->rbuf);
}

/* Make all the progress possible: answer requests, queue stream steps, write,
 * and act on a drained output. Then ask epoll for what c waits on. */
static void mock_conn_update(struct mock_conn *c)
{
    while (!c->closed) {
        c->blocked = 0;
        if (c->state == MOCK_CONN_READ && c->after == MOCK_REPLY_KEEP)
            mock_conn_requests(c);
        if (c->closed)
            return;
        if (c->state == MOCK_CONN_STREAM)
            mock_conn_pump(c);
        if (c->closed)
            return;
        if (mock_conn_flush(c) < 0) {
            mock_conn_close(c, 0);
            return;
        }
        if (mock_conn_pending(c) > 0)
            break;
        /* The output is drained. */
        if (c->state == MOCK_CONN_STREAM && c->stream_final) {
            mock_conn_stream_done(c);
            continue;
        }
        if (c->after == MOCK_REPLY_CLOSE) {
            mock_conn_close(c, 0);
            return;
        }
        if (c->after == MOCK_REPLY_LINGER) {
            mock_conn_linger(c);
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
        if (c->state != MOCK_CONN_READ || mock_conn_pending(c) == 0) {
            mock_conn_close(c, 0);
            return;
        }
        c->after = MOCK_REPLY_CLOSE;
    }
    mock_conn_interest(c);
}

static void mock_conn_io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct mock_conn *c = arg;

    UNUSED(loop);
    UNUSED(fd);
    if (c->closed)
        return; /* closed earlier in this iteration */
    if (events & EPOLLERR) {
        mock_conn_close(c, 0);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (mock_conn_reading(c))
            mock_conn_read(c);
        else if (events & (EPOLLRDHUP | EPOLLHUP))
            c->peer_eof = 1;
    }
    if (!c->closed)
        mock_conn_update(c);
}

static void mock_conn_timer_cb(struct loop *loop, void *arg)
{
    struct mock_conn *c = arg;

    UNUSED(loop);
    if (c->closed)
        return;
    if (c->state == MOCK_CONN_LINGER) {
        mock_conn_close(c, 0);
        return;
    }
    if (c->state == MOCK_CONN_DELAY)
        mock_conn_perform(c);
    /* MOCK_CONN_STREAM: the interval passed; update queues the next step. */
    if (!c->closed)
        mock_conn_update(c);
}

static void mock_conn_new(int fd)
{
    struct mock_conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    /* Small responses and SSE chunks must not wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->state = MOCK_CONN_READ;
    buf_init(&c->rbuf, MOCK_CONN_RBUF_MAX);
    buf_init(&c->wbuf, MOCK_CONN_WBUF_MAX);
    mock_reply_init(&c->reply);
    loop_timer_init(&c->timer, mock_conn_timer_cb, c);
    if (loop_io_add(mc.loop, &c->io, fd, EPOLLIN | EPOLLRDHUP, mock_conn_io_cb, c) < 0) {
        close(fd);
        mock_conn_free(c);
        return;
    }
    c->next = mc.conns;
    if (mc.conns)
        mc.conns->prev = c;
    mc.conns = c;
    mc.counts.active++;
    mc.counts.connections++;
}

/* ---- listening ---- */

static void mock_conn_accept_resume_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop_io_mod(loop, &mc.lio, EPOLLIN);
}

static void mock_conn_listen_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    for (int i = 0; i < 256; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd >= 0) {
            mock_conn_new(cfd);
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
            loop_io_mod(loop, &mc.lio, 0);
            loop_timer_start(loop, &mc.accept_timer, (uint64_t)MOCK_CONN_ACCEPT_PAUSE_MS * 1000);
        }
        return;
    }
}

/* Bind and listen on spec. Return the socket, or -1 with a message on
 * stderr; shown gets the "HOST:PORT" to announce. */
static int mock_conn_bind(const char *spec, char *shown, size_t shownlen)
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

int mock_conn_listen(struct loop *loop, const char *spec, mock_conn_request_cb cb, void *arg,
                     char *shown, size_t shownlen)
{
    sl_assert(mc.lfd < 0);
    mc.lfd = mock_conn_bind(spec, shown, shownlen);
    if (mc.lfd < 0)
        return -1;
    mc.loop = loop;
    mc.request_cb = cb;
    mc.request_arg = arg;
    loop_timer_init(&mc.accept_timer, mock_conn_accept_resume_cb, NULL);
    if (loop_io_add(loop, &mc.lio, mc.lfd, EPOLLIN, mock_conn_listen_cb, NULL) < 0)
        sl_panic("epoll_ctl: %s", strerror(errno));
    return 0;
}

void mock_conn_close_all(void)
{
    while (mc.conns) {
        struct mock_conn *c = mc.conns;

        mc.conns = c->next;
        loop_timer_stop(mc.loop, &c->timer);
        close(c->fd);
        mock_conn_free(c);
    }
    mc.counts.active = 0;
    if (mc.lfd >= 0) {
        loop_timer_stop(mc.loop, &mc.accept_timer);
        close(mc.lfd);
        mc.lfd = -1;
    }
}

void mock_conn_counts(struct mock_conn_counts *out)
{
    *out = mc.counts;
    out->streams_active = 0;
    for (struct mock_conn *x = mc.conns; x; x = x->next)
        out->streams_active += x->stream_live;
}

void mock_conn_counts_reset(void)
{
    long long active = mc.counts.active;

    memset(&mc.counts, 0, sizeof(mc.counts));
    mc.counts.active = active;
}
