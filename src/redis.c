/* redis.c - asynchronous Redis client on the loop; see redis.h. */
#include "redis.h"
#include "loop.h"
#include "metrics.h"
#include "util.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define TIMEOUTS_BEFORE_RECONNECT 3

/* One command in flight. It lives until hiredis calls back (possibly after
 * its deadline passed) or the context goes away. */
struct rop {
    struct redis *r;
    redis_cb cb;
    void *arg;
    int done; /* the caller has been answered */
    struct loop_timer deadline;
};

/* hiredis' ev hooks, on our loop (compare hiredis adapters/ae.h). */
struct rev {
    struct redis *r;
    redisAsyncContext *ac;
    struct loop_io io;
    uint32_t events;
    int registered;
};

struct redis {
    struct loop *loop;
    char ip[INET6_ADDRSTRLEN];
    int port;
    int db;
    long timeout_ms;
    redisAsyncContext *ac; /* NULL while disconnected */
    int connected;
    int stopping;
    long backoff_ms;
    int timeouts_in_a_row;
    struct loop_timer reconnect;
    struct redis_stats st;
};

/* ---- the ev hooks ---- */

static void rev_io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct rev *e = arg;

    UNUSED(loop);
    UNUSED(fd);
    if (e->ac == NULL)
        return; /* cleaned up earlier in this batch */
    /* Write first: a connect completes on EPOLLOUT. Reading may free the
     * context (a dropped connection), so it goes last. */
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        redisAsyncHandleWrite(e->ac);
    if (e->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(e->ac);
}

static void rev_update(struct rev *e, uint32_t events)
{
    struct loop *loop = e->r->loop;

    if (events == e->events)
        return;
    e->events = events;
    if (events == 0) {
        if (e->registered)
            loop_io_del(loop, &e->io);
        e->registered = 0;
    } else if (!e->registered) {
        if (loop_io_add(loop, &e->io, e->ac->c.fd, events, rev_io_cb, e) < 0)
            sl_panic("epoll_ctl add redis socket failed");
        e->registered = 1;
    } else if (loop_io_mod(loop, &e->io, events) < 0) {
        sl_panic("epoll_ctl mod redis socket failed");
    }
}

static void rev_add_read(void *p)
{
    struct rev *e = p;

    rev_update(e, e->events | EPOLLIN);
}

static void rev_del_read(void *p)
{
    struct rev *e = p;

    rev_update(e, e->events & ~(uint32_t)EPOLLIN);
}

static void rev_add_write(void *p)
{
    struct rev *e = p;

    rev_update(e, e->events | EPOLLOUT);
}

static void rev_del_write(void *p)
{
    struct rev *e = p;

    rev_update(e, e->events & ~(uint32_t)EPOLLOUT);
}

static void free_cb(struct loop *loop, void *p)
{
    UNUSED(loop);
    free(p);
}

static void rev_cleanup(void *p)
{
    struct rev *e = p;

    rev_update(e, 0);
    e->ac = NULL;
    /* It may still sit in this iteration's event batch. */
    if (e->r->stopping)
        free(e);
    else
        loop_defer(e->r->loop, free_cb, e);
}

static void rev_attach(struct redis *r, redisAsyncContext *ac)
{
    struct rev *e = xcalloc(1, sizeof(*e));

    e->r = r;
    e->ac = ac;
    ac->ev.addRead = rev_add_read;
    ac->ev.delRead = rev_del_read;
    ac->ev.addWrite = rev_add_write;
    ac->ev.delWrite = rev_del_write;
    ac->ev.cleanup = rev_cleanup;
    ac->ev.data = e;
}

/* ---- connection ---- */

static void schedule_reconnect(struct redis *r)
{
    long d;

    r->ac = NULL;
    r->connected = 0;
    if (r->stopping)
        return;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    /* Jitter, so N replicas do not reconnect in lockstep. */
    d = r->backoff_ms / 2 + (long)(random_u64() % (uint64_t)(r->backoff_ms / 2 + 1));
    loop_timer_start(r->loop, &r->reconnect, (uint64_t)d * 1000u);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        schedule_reconnect(r);
        return;
    }
    r->connected = 1;
    r->backoff_ms = 0;
    r->timeouts_in_a_row = 0;
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;

    UNUSED(status);
    schedule_reconnect(r);
}

static void rop_done(struct rop *op, const char *err, redisReply *reply)
{
    struct redis *r = op->r;

    if (op->done)
        return;
    op->done = 1;
    loop_timer_stop(r->loop, &op->deadline);
    if (err) {
        r->st.errors++;
        metrics_redis_error();
    }
    op->cb(op->arg, err, reply);
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rop *op = privdata;

    UNUSED(ac);
    /* A NULL reply: the connection went away with the command pending. */
    if (reply) {
        op->r->timeouts_in_a_row = 0;
        rop_done(op, NULL, reply);
    } else {
        rop_done(op, "connection lost", NULL);
    }
    free(op);
}

static void connect_now(struct redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->ip, r->port);

    r->st.reconnects++;
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    rev_attach(r, ac);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (r->db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        size_t lens[2];

        snprintf(db, sizeof(db), "%d", r->db);
        lens[0] = 6;
        lens[1] = strlen(db);
        /* Queued before any other command, so it runs first. */
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
    }
}

static void reconnect_timer_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    connect_now(arg);
}

static void deadline_cb(struct loop *loop, void *arg)
{
    struct rop *op = arg;
    struct redis *r = op->r;

    UNUSED(loop);
    r->st.timeouts++;
    rop_done(op, "timeout", NULL);
    /* op stays allocated: hiredis still holds it and calls back later. */
    if (++r->timeouts_in_a_row >= TIMEOUTS_BEFORE_RECONNECT && r->ac && r->connected) {
        /* The server is stuck or the path is black-holed: start over. */
        r->timeouts_in_a_row = 0;
        redisAsyncDisconnect(r->ac);
    }
}

void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb cb,
                   void *arg)
{
    struct rop *op;

    r->st.commands++;
    if (r->ac == NULL || !r->connected) {
        r->st.errors++;
        metrics_redis_error();
        cb(arg, "down", NULL);
        return;
    }
    op = xcalloc(1, sizeof(*op));
    op->r = r;
    op->cb = cb;
    op->arg = arg;
    loop_timer_init(&op->deadline, deadline_cb, op);
    loop_timer_start(r->loop, &op->deadline, (uint64_t)r->timeout_ms * 1000u);
    if (redisAsyncCommandArgv(r->ac, reply_cb, op, argc, argv, lens) != REDIS_OK) {
        rop_done(op, "connection error", NULL);
        free(op);
    }
}

int redis_up(const struct redis *r)
{
    return r->ac != NULL && r->connected;
}

void redis_stats(const struct redis *r, struct redis_stats *out)
{
    *out = r->st;
}

/* ---- life cycle ---- */

struct redis *redis_new(struct loop *loop, const char *url, long timeout_ms, char *err,
                        size_t errlen)
{
    struct redis *r;
    char host[256] = "127.0.0.1";
    const char *p, *end;
    long port = 6379, db = 0;
    struct addrinfo hints, *res;
    size_t hlen;

    if (strncasecmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis url must start with redis://");
        return NULL;
    }
    p = url + 8;
    end = p + strcspn(p, ":/");
    hlen = (size_t)(end - p);
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "redis host too long");
        return NULL;
    }
    if (hlen > 0) {
        memcpy(host, p, hlen);
        host[hlen] = '\0';
    }
    if (*end == ':') {
        char num[16];
        size_t n = strcspn(end + 1, "/");

        if (n == 0 || n >= sizeof(num)) {
            snprintf(err, errlen, "bad redis port");
            return NULL;
        }
        memcpy(num, end + 1, n);
        num[n] = '\0';
        if (parse_long(num, 1, 65535, &port) < 0) {
            snprintf(err, errlen, "bad redis port '%s'", num);
            return NULL;
        }
        end += 1 + n;
    }
    if (*end == '/' && end[1] && parse_long(end + 1, 0, 1000000, &db) < 0) {
        snprintf(err, errlen, "bad redis db '%s'", end + 1);
        return NULL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        snprintf(err, errlen, "cannot resolve redis host '%s'", host);
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    if (res->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, r->ip,
                  sizeof(r->ip));
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, r->ip, sizeof(r->ip));
    freeaddrinfo(res);
    r->loop = loop;
    r->port = (int)port;
    r->db = (int)db;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 20;
    loop_timer_init(&r->reconnect, reconnect_timer_cb, r);
    return r;
}

void redis_start(struct redis *r)
{
    connect_now(r);
}

void redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    r->stopping = 1;
    loop_timer_stop(r->loop, &r->reconnect);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;

        r->ac = NULL;
        /* Pending commands are called back with a NULL reply, then the
         * context and its ev data are freed. */
        redisAsyncFree(ac);
    }
    free(r);
}
