/* redis_conn.c - one connection to one Redis server; see redis_conn.h. */
#include "redis_conn.h"
#include "caps.h"
#include "loop.h"
#include "redis_url.h"
#include "util.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define TIMEOUTS_BEFORE_DROP 3
#define READ_CHUNK 16384

/* A command waiting for its reply, in the order it was written. */
struct rcmd {
    redis_conn_reply_cb cb;
    void *arg;
    uint64_t deadline_us;
    int done; /* the caller has been answered (a timeout); the reply is dropped */
    int hello; /* AUTH or SELECT of the handshake */
    struct rcmd *next;
};

enum conn_state {
    C_IDLE,       /* down, waiting to retry (or for good without reconnect) */
    C_CONNECTING, /* TCP */
    C_TLS,        /* TLS handshake */
    C_HELLO,      /* AUTH and SELECT sent */
    C_READY,
};

struct redis_conn {
    struct loop *loop;
    char addr[REDIS_ADDR_MAX];
    struct sockaddr_storage sa;
    socklen_t salen;
    const struct redis_conn_opts *o;
    redis_conn_event_cb ev;
    redis_conn_push_cb push;
    void *arg;

    enum conn_state state;
    int fd;
    SSL *ssl;
    struct loop_io io;
    uint32_t io_events; /* 0: not registered */
    redisReader *rd;
    struct buf out;           /* commands not yet written */
    struct rcmd *head, *tail; /* written or waiting to be, oldest first */
    struct loop_timer deadline; /* the oldest unanswered command's, or the handshake's */
    struct loop_timer retry;
    long backoff_ms;
    int timeouts_in_a_row;
    int flush_queued; /* a flush waits for the loop's before-sleep hook */
    int hello_total, hello_done; /* handshake commands sent, answered */
    uint64_t connect_deadline_us;
    int write_wants_read; /* TLS: SSL_write needs the peer first */
    int closed;           /* redis_conn_free was called */
    char err[200];
    char early_err[96]; /* a connect that failed at once: reported from the timer */
};

/* ---- TLS context ---- */

static void tls_errstr(char *err, size_t errlen, const char *what)
{
    char e[160];

    ERR_error_string_n(ERR_get_error(), e, sizeof(e));
    snprintf(err, errlen, "%s: %s", what, e);
    ERR_clear_error();
}

SSL_CTX *redis_tls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err,
                       size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        tls_errstr(err, errlen, "TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_errstr(err, errlen, ca_file ? "tls_ca_file" : "the system's CA certificates");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (cert_file && SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_errstr(err, errlen, "tls_cert_file");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (key_file && (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
                     SSL_CTX_check_private_key(ctx) != 1)) {
        tls_errstr(err, errlen, "tls_key_file");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void redis_tls_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* ---- events on the socket ---- */

static void conn_io_cb(struct loop *loop, int fd, uint32_t events, void *arg);

static void watch(struct redis_conn *c, uint32_t events)
{
    if (events == c->io_events)
        return;
    if (c->io_events == 0) {
        if (loop_io_add(c->loop, &c->io, c->fd, events, conn_io_cb, c) < 0)
            sl_panic("epoll_ctl add redis socket failed");
    } else if (events == 0) {
        loop_io_del(c->loop, &c->io);
    } else if (loop_io_mod(c->loop, &c->io, events) < 0) {
        sl_panic("epoll_ctl mod redis socket failed");
    }
    c->io_events = events;
}

/* ---- going down ---- */

static void retry_cb(struct loop *loop, void *arg);

static void teardown(struct redis_conn *c)
{
    watch(c, 0);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->rd) {
        redisReaderFree(c->rd);
        c->rd = NULL;
    }
    buf_reset(&c->out);
    loop_timer_stop(c->loop, &c->deadline);
    c->write_wants_read = 0;
}

/* Answer every waiting command with err (the list is emptied first: a
 * callback may send again or free c). */
static void fail_pending(struct redis_conn *c, const char *err)
{
    struct rcmd *cmd = c->head;

    c->head = c->tail = NULL;
    while (cmd) {
        struct rcmd *next = cmd->next;

        if (!cmd->done && !cmd->hello)
            cmd->cb(cmd->arg, err, NULL);
        free(cmd);
        cmd = next;
    }
}

/* The connection failed or dropped: tell the waiting commands and the
 * owner, and retry later. */
static void conn_drop(struct redis_conn *c, const char *why)
{
    long d;

    snprintf(c->err, sizeof(c->err), "%s", why);
    teardown(c);
    c->state = C_IDLE;
    fail_pending(c, "connection lost");
    if (c->closed)
        return;
    if (c->o->reconnect) {
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        /* Jitter, so N replicas do not reconnect in lockstep. */
        d = c->backoff_ms / 2 + (long)(random_u64() % (uint64_t)(c->backoff_ms / 2 + 1));
        loop_timer_start(c->loop, &c->retry, (uint64_t)d * 1000u);
    }
    c->ev(c->arg, c, REDIS_CONN_DOWN, c->err);
}

/* ---- writing ---- */

static void flush(struct redis_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n;

        if (c->ssl) {
            int r;

            ERR_clear_error();
            r = SSL_write(c->ssl, c->out.data, (int)(c->out.len > INT32_MAX ? INT32_MAX : c->out.len));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);

                if (e == SSL_ERROR_WANT_WRITE) {
                    watch(c, EPOLLIN | EPOLLOUT);
                    return;
                }
                if (e == SSL_ERROR_WANT_READ) {
                    c->write_wants_read = 1;
                    return;
                }
                conn_drop(c, "TLS write failed");
                return;
            }
            n = r;
        } else {
            n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    watch(c, EPOLLIN | EPOLLOUT);
                    return;
                }
                {
                    char why[96];

                    snprintf(why, sizeof(why), "write: %s", strerror(errno));
                    conn_drop(c, why);
                }
                return;
            }
        }
        buf_consume(&c->out, (size_t)n);
    }
    c->write_wants_read = 0;
    watch(c, EPOLLIN);
}

static void flush_cb(struct loop *loop, void *arg)
{
    struct redis_conn *c = arg;

    UNUSED(loop);
    c->flush_queued = 0;
    if (!c->closed && (c->state == C_HELLO || c->state == C_READY))
        flush(c);
}

/* Write soon: every command of this loop iteration in one write. */
static void queue_flush(struct redis_conn *c)
{
    if (c->flush_queued || (c->state != C_HELLO && c->state != C_READY))
        return;
    c->flush_queued = 1;
    loop_defer(c->loop, flush_cb, c);
}

/* Arm the deadline timer for when_us unless it fires sooner already. */
static void arm_deadline(struct redis_conn *c, uint64_t when_us)
{
    uint64_t now = loop_now_us(c->loop);

    if (loop_timer_armed(&c->deadline) && c->deadline.when_us <= when_us)
        return;
    loop_timer_start(c->loop, &c->deadline, when_us > now ? when_us - now : 1);
}

static struct rcmd *rcmd_new(struct redis_conn *c, redis_conn_reply_cb cb, void *arg, int hello)
{
    struct rcmd *rc = xcalloc(1, sizeof(*rc));

    rc->cb = cb;
    rc->arg = arg;
    rc->hello = hello;
    rc->deadline_us = loop_now_us(c->loop) + (uint64_t)c->o->timeout_ms * 1000u;
    return rc;
}

void redis_conn_send(struct redis_conn *c, const char *cmd, size_t len, redis_conn_reply_cb cb,
                     void *arg)
{
    struct rcmd *rc;

    if (c->closed || c->state == C_IDLE) {
        cb(arg, "down", NULL);
        return;
    }
    /* Refused before the append: a buffer that goes over its cap fails
     * whole (util.h), and the commands already in it must still go out. */
    if (len > c->out.max - c->out.len) {
        cb(arg, "too many commands waiting", NULL);
        return;
    }
    if (buf_append(&c->out, cmd, len) < 0) {
        /* cannot happen after the check; the queue is lost if it does */
        cb(arg, "too many commands waiting", NULL);
        conn_drop(c, "the command buffer failed");
        return;
    }
    rc = rcmd_new(c, cb, arg, 0);
    if (c->tail)
        c->tail->next = rc;
    else
        c->head = rc;
    c->tail = rc;
    arm_deadline(c, rc->deadline_us);
    queue_flush(c);
}

/* ---- the handshake ---- */

static void became_ready(struct redis_conn *c)
{
    c->state = C_READY;
    c->backoff_ms = 0;
    c->timeouts_in_a_row = 0;
    c->err[0] = '\0';
    c->ev(c->arg, c, REDIS_CONN_UP, NULL);
}

static void hello_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct redis_conn *c = arg;
    int step = c->hello_done++;
    char why[200];

    if (err == NULL && reply->type != REDIS_REPLY_ERROR) {
        if (c->hello_done == c->hello_total)
            became_ready(c);
        return;
    }
    /* AUTH is the first step when there is a password. */
    snprintf(why, sizeof(why), "%s failed: %.150s",
             c->o->password && step == 0 ? "AUTH" : "SELECT", err ? err : reply->str);
    conn_drop(c, why);
}

/* One handshake command into h, its waiter after *last. */
static void hello_cmd(struct redis_conn *c, struct buf *h, struct rcmd **first,
                      struct rcmd **last, int argc, const char **argv, const size_t *lens)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    struct rcmd *rc;

    if (len < 0 || buf_append(h, cmd, (size_t)len) < 0)
        sl_panic("redis: cannot format the handshake");
    free(cmd);
    rc = rcmd_new(c, hello_cb, c, 1);
    if (*last)
        (*last)->next = rc;
    else
        *first = rc;
    *last = rc;
    c->hello_total++;
}

/* Connected (and TLS done): AUTH and SELECT, in front of whatever was sent
 * while connecting. */
static void hello(struct redis_conn *c)
{
    struct buf h;
    struct rcmd *first = NULL, *last = NULL;

    c->state = C_HELLO;
    c->hello_total = c->hello_done = 0;
    buf_init(&h, REDIS_OUT_MAX);
    if (c->o->password) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int n = 1;

        if (c->o->username) {
            argv[n] = c->o->username;
            lens[n++] = strlen(c->o->username);
        }
        argv[n] = c->o->password;
        lens[n++] = strlen(c->o->password);
        hello_cmd(c, &h, &first, &last, n, argv, lens);
    }
    if (c->o->db) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        size_t lens[2] = {6, 0};

        lens[1] = (size_t)snprintf(db, sizeof(db), "%d", c->o->db);
        hello_cmd(c, &h, &first, &last, 2, argv, lens);
    }
    if (first == NULL) {
        buf_free(&h);
        became_ready(c);
        if (c->closed || c->state != C_READY)
            return;
        flush(c);
        return;
    }
    if (buf_append(&h, c->out.data, c->out.len) < 0) {
        buf_free(&h);
        while (first) {
            struct rcmd *next = first->next;

            free(first);
            first = next;
        }
        conn_drop(c, "too many commands waiting");
        return;
    }
    buf_free(&c->out);
    c->out = h;
    last->next = c->head;
    if (c->tail == NULL)
        c->tail = last;
    c->head = first;
    flush(c);
}

/* ---- reading ---- */

/* One whole reply: to the oldest waiting command, or to push. */
static void dispatch(struct redis_conn *c, redisReply *reply)
{
    struct rcmd *cmd = c->head;

    if (cmd == NULL) {
        if (c->push)
            c->push(c->arg, c, reply);
        else
            conn_drop(c, "a reply that answers no command");
        return;
    }
    c->head = cmd->next;
    if (c->head == NULL)
        c->tail = NULL;
    if (!cmd->done) {
        if (!cmd->hello)
            c->timeouts_in_a_row = 0;
        cmd->cb(cmd->arg, NULL, reply);
    }
    free(cmd);
}

/* Read what there is, then hand out every whole reply. */
static void conn_read(struct redis_conn *c)
{
    char chunk[READ_CHUNK];

    for (;;) {
        ssize_t n;

        if (c->ssl) {
            int r;

            ERR_clear_error();
            r = SSL_read(c->ssl, chunk, sizeof(chunk));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);

                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    break;
                conn_drop(c, e == SSL_ERROR_ZERO_RETURN ? "closed by the server"
                                                        : "TLS read failed");
                return;
            }
            n = r;
        } else {
            n = read(c->fd, chunk, sizeof(chunk));
            if (n == 0) {
                conn_drop(c, "closed by the server");
                return;
            }
            if (n < 0) {
                char why[96];

                if (errno == EAGAIN || errno == EINTR)
                    break;
                snprintf(why, sizeof(why), "read: %s", strerror(errno));
                conn_drop(c, why);
                return;
            }
        }
        if (redisReaderFeed(c->rd, chunk, (size_t)n) != REDIS_OK) {
            conn_drop(c, "out of memory reading a reply");
            return;
        }
        for (;;) {
            void *reply = NULL;

            if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
                char why[160];

                snprintf(why, sizeof(why), "protocol error: %.100s", c->rd->errstr);
                conn_drop(c, why);
                return;
            }
            if (reply == NULL)
                break;
            dispatch(c, reply);
            freeReplyObject(reply);
            if (c->closed || c->state == C_IDLE)
                return;
        }
        if (c->rd->len - c->rd->pos > REDIS_IN_MAX) {
            conn_drop(c, "a reply larger than REDIS_IN_MAX");
            return;
        }
        if (!c->ssl && (size_t)n < sizeof(chunk))
            break; /* drained; TLS reads on until it wants more */
    }
    if (c->write_wants_read && c->out.len > 0)
        flush(c);
}

/* ---- deadlines ---- */

static void deadline_cb(struct loop *loop, void *arg)
{
    struct redis_conn *c = arg;
    uint64_t now = loop_now_us(loop), next = UINT64_MAX;

    if (c->early_err[0]) {
        char why[sizeof(c->early_err)];

        memcpy(why, c->early_err, sizeof(why));
        c->early_err[0] = '\0';
        conn_drop(c, why);
        return;
    }
    for (struct rcmd *cmd = c->head; cmd; cmd = cmd->next) {
        if (cmd->done || cmd->hello)
            continue;
        if (cmd->deadline_us > now) {
            next = cmd->deadline_us;
            break;
        }
        /* It stays on the list: the reply, when it comes, is dropped. */
        cmd->done = 1;
        if (c->state == C_READY)
            c->timeouts_in_a_row++;
        cmd->cb(cmd->arg, "timeout", NULL);
        if (c->closed || c->state == C_IDLE)
            return;
    }
    if (c->state != C_READY && c->state != C_IDLE) {
        if (now >= c->connect_deadline_us) {
            conn_drop(c, c->state == C_CONNECTING ? "connect timed out"
                         : c->state == C_TLS      ? "TLS handshake timed out"
                                                  : "AUTH or SELECT timed out");
            return;
        }
        if (c->connect_deadline_us < next)
            next = c->connect_deadline_us;
    }
    if (c->state == C_READY && c->timeouts_in_a_row >= TIMEOUTS_BEFORE_DROP) {
        /* The server is stuck or the path is black-holed: start over. */
        conn_drop(c, "commands timed out");
        return;
    }
    if (next != UINT64_MAX)
        arm_deadline(c, next);
}

/* ---- connecting ---- */

static void tls_step(struct redis_conn *c)
{
    int r, e;

    ERR_clear_error();
    r = SSL_connect(c->ssl);
    if (r == 1) {
        hello(c);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        watch(c, EPOLLIN);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        watch(c, EPOLLIN | EPOLLOUT);
    } else {
        char why[200];
        long v = SSL_get_verify_result(c->ssl);

        if (v != X509_V_OK)
            snprintf(why, sizeof(why), "TLS: certificate not accepted: %s",
                     X509_verify_cert_error_string(v));
        else
            tls_errstr(why, sizeof(why), "TLS handshake failed");
        conn_drop(c, why);
    }
}

static int tls_start(struct redis_conn *c)
{
    const char *name = c->o->server_name;
    char host[REDIS_HOST_MAX], ebuf[8];
    int port;

    if (name == NULL) {
        if (redis_addr_parse(c->addr, strlen(c->addr), host, sizeof(host), &port, ebuf,
                             sizeof(ebuf)) < 0)
            return -1;
        name = host;
    }
    c->ssl = SSL_new(c->o->tls);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    /* An address is checked against the certificate's IP entries, a name
     * against its DNS names (and sent as SNI). */
    if (strspn(name, "0123456789.") == strlen(name) || strchr(name, ':')) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
            return -1;
    } else if (SSL_set1_host(c->ssl, name) != 1 || SSL_set_tlsext_host_name(c->ssl, name) != 1) {
        return -1;
    }
    c->state = C_TLS;
    tls_step(c);
    return 0;
}

static void connected(struct redis_conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
        char why[96];

        snprintf(why, sizeof(why), "connect: %s", strerror(soerr ? soerr : errno));
        conn_drop(c, why);
        return;
    }
    if (c->o->tls) {
        if (tls_start(c) < 0)
            conn_drop(c, "TLS setup failed");
        return;
    }
    watch(c, EPOLLIN);
    hello(c);
}

static void conn_io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct redis_conn *c = arg;

    UNUSED(loop);
    UNUSED(fd);
    switch (c->state) {
    case C_CONNECTING:
        connected(c);
        break;
    case C_TLS:
        tls_step(c);
        break;
    case C_HELLO:
    case C_READY:
        if (events & EPOLLOUT)
            flush(c);
        if (c->state != C_IDLE && !c->closed && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            conn_read(c);
        break;
    case C_IDLE:
        break;
    }
}

/* A connect that fails at once is reported a moment later, from the
 * deadline timer: the owner may still be inside redis_conn_new. */
static void fail_soon(struct redis_conn *c, const char *why)
{
    snprintf(c->early_err, sizeof(c->early_err), "%s", why);
    loop_timer_start(c->loop, &c->deadline, 1);
}

static void conn_connect(struct redis_conn *c)
{
    int one = 1;

    c->rd = redisReaderCreate();
    c->state = C_CONNECTING;
    c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail_soon(c, "socket() failed");
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->connect_deadline_us = loop_now_us(c->loop) + (uint64_t)c->o->connect_ms * 1000u;
    if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) < 0 && errno != EINPROGRESS) {
        char why[96];

        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        fail_soon(c, why);
        return;
    }
    arm_deadline(c, c->connect_deadline_us);
    watch(c, EPOLLOUT);
}

static void retry_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    conn_connect(arg);
}

/* ---- life cycle ---- */

struct redis_conn *redis_conn_new(struct loop *loop, const char *addr,
                                  const struct redis_conn_opts *opts, redis_conn_event_cb ev,
                                  redis_conn_push_cb push, void *arg)
{
    struct redis_conn *c = xcalloc(1, sizeof(*c));
    char host[REDIS_HOST_MAX], port_s[8], ebuf[64];
    struct addrinfo hints, *res = NULL;
    int port;

    c->loop = loop;
    c->o = opts;
    c->ev = ev;
    c->push = push;
    c->arg = arg;
    c->fd = -1;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    buf_init(&c->out, REDIS_OUT_MAX);
    loop_timer_init(&c->deadline, deadline_cb, c);
    loop_timer_init(&c->retry, retry_cb, c);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (redis_addr_parse(addr, strlen(addr), host, sizeof(host), &port, ebuf, sizeof(ebuf)) < 0 ||
        snprintf(port_s, sizeof(port_s), "%d", port) < 0 ||
        getaddrinfo(host, port_s, &hints, &res) != 0 || res->ai_addrlen > sizeof(c->sa)) {
        /* Only a numeric address is taken here: no DNS on the loop. */
        if (res)
            freeaddrinfo(res);
        snprintf(c->err, sizeof(c->err), "not a numeric HOST:PORT: %.100s", addr);
        c->state = C_IDLE;
        return c;
    }
    memcpy(&c->sa, res->ai_addr, res->ai_addrlen);
    c->salen = res->ai_addrlen;
    freeaddrinfo(res);
    conn_connect(c);
    return c;
}

static void conn_free_cb(struct loop *loop, void *arg)
{
    struct redis_conn *c = arg;

    UNUSED(loop);
    buf_free(&c->out);
    free(c);
}

void redis_conn_free(struct redis_conn *c, int now)
{
    if (c == NULL)
        return;
    c->closed = 1;
    teardown(c);
    loop_timer_stop(c->loop, &c->retry);
    c->state = C_IDLE;
    fail_pending(c, "down");
    if (now)
        conn_free_cb(c->loop, c);
    else
        loop_defer(c->loop, conn_free_cb, c);
}

int redis_conn_ready(const struct redis_conn *c)
{
    return c->state == C_READY;
}

const char *redis_conn_addr(const struct redis_conn *c)
{
    return c->addr;
}

const char *redis_conn_error(const struct redis_conn *c)
{
    return c->err;
}
