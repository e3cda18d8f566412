/* upstream.c - curl multi on the loop; see upstream.h. */
#include "upstream.h"
#include "loop.h"
#include "util.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define EASY_POOL_MAX 256

/* A socket curl asked us to watch. Connection sockets curl opens through
 * our open/close callbacks are "owned": we see them close, so between two
 * transfers on a kept-alive connection they can stay in the epoll set
 * (idle), which saves an EPOLL_CTL_DEL and an EPOLL_CTL_ADD per request.
 * Any other socket (the resolver's, say) is added and removed as curl says. */
struct sock_ctx {
    struct loop_io io;
    struct upstream *up;
    int removed;    /* freed soon; ignore its events */
    int owned;      /* opened by opensocket_cb; closesocket_cb frees it */
    int active;     /* curl watches it now */
    int registered; /* in the loop's epoll set */
};

struct call {
    struct upstream *up;
    CURL *easy;
    struct call_spec spec;
    const struct call_ops *ops; /* NULL once cancelled */
    void *arg;
    long status;
    long retry_after_ms;
    enum call_err err;
    uint64_t t_start_us;
    uint64_t t_first_us; /* first response byte */
    uint64_t t_last_us;  /* last response byte */
    uint64_t t_end_us;
    struct loop_timer timer; /* first-byte and idle deadlines */
    int added;               /* in the multi handle */
    int dying;               /* a deferred free is queued */
    struct call *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

struct upstream {
    struct loop *loop;
    CURLM *multi;
    struct loop_timer timer; /* curl's own timeout */
    int in_curl;             /* inside curl_multi_socket_action */
    struct call *calls;      /* every live call */
    size_t ncalls;
    CURL *pool[EASY_POOL_MAX];
    size_t npool;
    struct sock_ctx **socks; /* owned sockets by fd */
    size_t nsocks;
    int stopping;     /* upstream_free: the loop runs no more */
    char *default_ca; /* curl's built-in CA bundle path, for calls that set none */
};

static void check_multi_info(struct upstream *up);
static void upstream_start(struct upstream *up);

/* ---- curl -> loop glue ---- */

static void curl_action(struct upstream *up, curl_socket_t fd, int flags)
{
    int running;

    up->in_curl = 1;
    curl_multi_socket_action(up->multi, fd, flags, &running);
    up->in_curl = 0;
    check_multi_info(up);
}

static void free_cb(struct loop *loop, void *p)
{
    UNUSED(loop);
    free(p);
}

static void sock_io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct sock_ctx *sc = arg;
    int flags = 0;

    if (sc->removed)
        return; /* a stale event from this iteration's batch */
    if (!sc->active) {
        /* An idle kept-alive connection spoke: the server closed it, most
         * likely. Stop watching; curl's check before reuse will see it. */
        loop_io_del(loop, &sc->io);
        sc->registered = 0;
        return;
    }
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_action(sc->up, fd, flags);
}

static struct sock_ctx *sock_new(struct upstream *up, int owned)
{
    struct sock_ctx *sc = xcalloc(1, sizeof(*sc));

    sc->up = up;
    sc->owned = owned;
    sc->io.fd = -1;
    return sc;
}

/* Watch fd for events, adding it to the epoll set or changing its events
 * only when needed. */
static void sock_watch(struct upstream *up, struct sock_ctx *sc, int fd, uint32_t events)
{
    sc->active = 1;
    if (!sc->registered) {
        if (loop_io_add(up->loop, &sc->io, fd, events, sock_io_cb, sc) < 0)
            sl_panic("epoll_ctl add curl socket %d failed", fd);
        sc->registered = 1;
    } else if (loop_io_mod(up->loop, &sc->io, events) < 0) {
        sl_panic("epoll_ctl mod curl socket %d failed", fd);
    }
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct upstream *up = userp;
    struct sock_ctx *sc = socketp;
    uint32_t events = 0;

    UNUSED(easy);
    if (what == CURL_POLL_REMOVE) {
        if (sc == NULL)
            return 0;
        curl_multi_assign(up->multi, fd, NULL);
        sc->active = 0;
        if (!sc->owned) {
            if (sc->registered)
                loop_io_del(up->loop, &sc->io);
            sc->removed = 1;
            /* It may still sit in this iteration's event batch. */
            loop_defer(up->loop, free_cb, sc);
        }
        return 0;
    }
    if (what & CURL_POLL_IN)
        events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        events |= EPOLLOUT;
    if (sc == NULL) {
        if (fd >= 0 && (size_t)fd < up->nsocks && up->socks[fd])
            sc = up->socks[fd]; /* a kept-alive connection, back in use */
        else
            sc = sock_new(up, 0);
        curl_multi_assign(up->multi, fd, sc);
    }
    sock_watch(up, sc, fd, events);
    return 0;
}

static curl_socket_t opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct upstream *up = clientp;
    int fd;

    UNUSED(purpose);
    fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if ((size_t)fd >= up->nsocks) {
        size_t n = up->nsocks ? up->nsocks : 64;

        while (n <= (size_t)fd)
            n *= 2;
        up->socks = xrealloc(up->socks, n * sizeof(*up->socks));
        memset(up->socks + up->nsocks, 0, (n - up->nsocks) * sizeof(*up->socks));
        up->nsocks = n;
    }
    up->socks[fd] = sock_new(up, 1);
    return fd;
}

static int closesocket_cb(void *clientp, curl_socket_t fd)
{
    struct upstream *up = clientp;
    struct sock_ctx *sc = (size_t)fd < up->nsocks ? up->socks[fd] : NULL;

    if (sc) {
        /* close() takes it out of the epoll set. */
        up->socks[fd] = NULL;
        sc->removed = 1;
        if (up->stopping)
            free(sc);
        else
            loop_defer(up->loop, free_cb, sc);
    }
    return close(fd);
}

static void curl_timer_fire_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    curl_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* curl asks for a timeout; calling back into curl from here is not allowed,
 * so the loop timer fires it on the next iteration at the earliest. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct upstream *up = userp;

    UNUSED(multi);
    if (timeout_ms < 0)
        loop_timer_stop(up->loop, &up->timer);
    else
        loop_timer_start(up->loop, &up->timer, (uint64_t)timeout_ms * 1000u);
    return 0;
}

/* ---- calls ---- */

static void call_unlink_free(struct call *c)
{
    struct upstream *up = c->up;

    loop_timer_stop(up->loop, &c->timer);
    if (c->added)
        curl_multi_remove_handle(up->multi, c->easy);
    if (c->prev)
        c->prev->next = c->next;
    else
        up->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    up->ncalls--;
    if (up->npool < EASY_POOL_MAX) {
        /* Drop our pointers into what is freed below. */
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, NULL);
        up->pool[up->npool++] = c->easy;
    } else {
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->spec.headers);
    free(c->spec.url);
    free(c->spec.body);
    free(c);
}

/* Report the end of a call and free it. Never called from inside curl. */
static void call_finish(struct call *c, enum call_err err, const char *msg)
{
    const struct call_ops *ops = c->ops;

    if (c->dying) {
        /* Cancelled from inside curl; the queued free does the rest. */
        if (c->added) {
            curl_multi_remove_handle(c->up->multi, c->easy);
            c->added = 0;
        }
        return;
    }
    c->ops = NULL; /* a cancel from inside on_done is then a no-op */
    c->err = err;
    c->t_end_us = now_us();
    if (c->status == 0)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->added) {
        curl_multi_remove_handle(c->up->multi, c->easy);
        c->added = 0;
    }
    loop_timer_stop(c->up->loop, &c->timer);
    if (ops)
        ops->on_done(c, err == CALL_OK ? NULL : msg, c->arg);
    call_unlink_free(c);
}

static enum call_err map_curl_error(struct call *c, CURLcode res)
{
    curl_off_t connect_us = 0;

    switch (res) {
    case CURLE_OK:
        return CALL_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return CALL_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        return connect_us == 0 ? CALL_ERR_CONNECT : CALL_ERR_TIMEOUT;
    case CURLE_WRITE_ERROR:
        if (c->err == CALL_ERR_ABORTED)
            return CALL_ERR_ABORTED;
        return CALL_ERR_NETWORK;
    default:
        return CALL_ERR_NETWORK;
    }
}

static void check_multi_info(struct upstream *up)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(up->multi, &left))) {
        struct call *c;
        enum call_err err;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        err = map_curl_error(c, msg->data.result);
        call_finish(c, err, c->errbuf[0] ? c->errbuf : curl_easy_strerror(msg->data.result));
    }
}

static void note_body_byte(struct call *c)
{
    /* The headers are complete once body bytes flow: the status is final
     * (a 100 Continue or a redirect has come and gone). */
    if (c->status == 0)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    c->t_last_us = loop_now_us(c->up->loop);
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct call *c = userdata;
    size_t n = size * nmemb;
    char val[64];
    long v;

    if (c->t_first_us == 0)
        c->t_first_us = now_us();
    c->t_last_us = loop_now_us(c->up->loop);
    if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        size_t len = n - 12;

        if (len >= sizeof(val))
            len = sizeof(val) - 1;
        memcpy(val, p + 12, len);
        val[len] = '\0';
        val[strcspn(val, "\r\n")] = '\0';
        if (parse_long(val + strspn(val, " "), 0, 86400, &v) == 0 && c->retry_after_ms < 0)
            c->retry_after_ms = v * 1000;
    } else if (n > 15 && strncasecmp(p, "retry-after-ms:", 15) == 0) {
        size_t len = n - 15;

        if (len >= sizeof(val))
            len = sizeof(val) - 1;
        memcpy(val, p + 15, len);
        val[len] = '\0';
        val[strcspn(val, "\r\n")] = '\0';
        if (parse_long(val + strspn(val, " "), 0, 86400000, &v) == 0)
            c->retry_after_ms = v;
    }
    return n;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
    struct call *c = userdata;
    size_t n = size * nmemb;

    if (c->ops == NULL)
        return 0; /* cancelled; the deferred removal is on its way */
    note_body_byte(c);
    if (c->ops->on_data(c, p, n, c->arg) < 0) {
        c->err = CALL_ERR_ABORTED;
        return 0;
    }
    return n;
}

/* First-byte and idle deadlines, checked lazily: data arrival only records a
 * time, and the timer re-arms itself for whatever is left. */
static void call_timer_cb(struct loop *loop, void *arg)
{
    struct call *c = arg;
    uint64_t now = loop_now_us(loop), deadline;
    enum call_err kind;

    if (c->t_first_us == 0) {
        deadline = c->t_start_us + (uint64_t)c->spec.first_byte_timeout_ms * 1000u;
        kind = CALL_ERR_FIRST_BYTE;
    } else {
        deadline = c->t_last_us + (uint64_t)c->spec.idle_timeout_ms * 1000u;
        kind = CALL_ERR_IDLE;
    }
    if (now < deadline) {
        loop_timer_start(loop, &c->timer, deadline - now);
        return;
    }
    call_finish(c, kind,
                kind == CALL_ERR_FIRST_BYTE
                    ? "no response from upstream within the first-byte timeout"
                    : "upstream stream idle timeout");
}

static void call_add(struct call *c)
{
    CURLMcode rc = curl_multi_add_handle(c->up->multi, c->easy);

    if (rc != CURLM_OK)
        sl_panic("curl_multi_add_handle: %s", curl_multi_strerror(rc));
    c->added = 1;
}

static void call_add_deferred_cb(struct loop *loop, void *arg)
{
    struct call *c = arg;

    UNUSED(loop);
    if (!c->dying)
        call_add(c);
}

/* A new easy handle with the options every call shares. Handles are pooled
 * and reused as they are (no curl_easy_reset): a call sets only what
 * differs. */
static CURL *easy_new(struct upstream *up)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        sl_panic("curl_easy_init failed");
    if (up->default_ca == NULL) {
        char *ca = NULL;

        /* Pooled handles are reused as they are: a call without a CA file
         * sets this one back. */
        curl_easy_getinfo(e, CURLINFO_CAINFO, &ca);
        up->default_ca = ca ? xstrdup(ca) : NULL;
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, up);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    /* Over TLS curl copies the request into an upload buffer, 64 KiB by
     * default; our requests are small. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    /* Only http and https, whatever a redirect says; and we follow none. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    return e;
}

struct call *upstream_call(struct upstream *up, struct call_spec *spec, const struct call_ops *ops,
                           void *arg)
{
    struct call *c = xcalloc(1, sizeof(*c));
    CURL *e;

    if (up->multi == NULL)
        upstream_start(up);
    c->up = up;
    c->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    c->ops = ops;
    c->arg = arg;
    c->retry_after_ms = -1;
    c->t_start_us = now_us();
    e = up->npool ? up->pool[--up->npool] : easy_new(up);
    c->easy = e;
    /* Everything a call sets: pooled handles keep the rest from easy_new. */
    curl_easy_setopt(e, CURLOPT_URL, c->spec.url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->spec.headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->spec.body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->spec.body_len);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->spec.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->spec.timeout_ms);
    /* A stream arrives in small events: a 1 KiB receive buffer (curl's
     * least) instead of its 16 KiB keeps thousands of concurrent streams
     * cheap; a larger event only takes more reads. Whole answers keep the
     * big one (fewer reads). */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, c->spec.small_reads ? 1024L : 16384L);
    /* HTTP/1.1 unless the provider asks for HTTP/2 (http_version in
     * gateway.conf.example says why). With HTTP/2, wait for a connection
     * being set up to tell (ALPN) whether it multiplexes, rather than open
     * another; over HTTP/1.1 that would make every new call wait for a busy
     * connection's response. */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->spec.http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->spec.http2 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_CAINFO, c->spec.ca_file ? c->spec.ca_file : up->default_ca);

    c->next = up->calls;
    if (up->calls)
        up->calls->prev = c;
    up->calls = c;
    up->ncalls++;
    loop_timer_init(&c->timer, call_timer_cb, c);
    if (c->spec.first_byte_timeout_ms > 0 && c->spec.idle_timeout_ms > 0)
        loop_timer_start(up->loop, &c->timer, (uint64_t)c->spec.first_byte_timeout_ms * 1000u);
    /* curl refuses handles added from inside its own callbacks. */
    if (up->in_curl)
        loop_defer(up->loop, call_add_deferred_cb, c);
    else
        call_add(c);
    return c;
}

static void call_cancel_deferred_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    call_unlink_free(arg);
}

void call_cancel(struct call *c)
{
    if (c->ops == NULL || c->dying)
        return;
    c->ops = NULL;
    loop_timer_stop(c->up->loop, &c->timer);
    /* curl forbids removing a handle from inside its callbacks, and a call
     * whose add is still deferred must wait for that deferral to pass. */
    if (c->up->in_curl || !c->added) {
        c->dying = 1;
        loop_defer(c->up->loop, call_cancel_deferred_cb, c);
    } else {
        call_unlink_free(c);
    }
}

long call_status(const struct call *c)
{
    return c->status;
}

enum call_err call_err(const struct call *c)
{
    return c->err;
}

long call_retry_after_ms(const struct call *c)
{
    return c->retry_after_ms;
}

uint64_t call_ttfb_us(const struct call *c)
{
    return c->t_first_us ? c->t_first_us - c->t_start_us : 0;
}

uint64_t call_elapsed_us(const struct call *c)
{
    return (c->t_end_us ? c->t_end_us : now_us()) - c->t_start_us;
}

size_t upstream_active(const struct upstream *up)
{
    return up->ncalls;
}

void call_spec_json(struct call_spec *spec, char *url, char *body, long timeout_ms)
{
    memset(spec, 0, sizeof(*spec));
    spec->url = url;
    spec->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (spec->headers == NULL)
        sl_panic("curl_slist_append: out of memory");
    spec->body = body;
    spec->body_len = strlen(body);
    spec->connect_timeout_ms = timeout_ms;
    spec->timeout_ms = timeout_ms;
    spec->first_byte_timeout_ms = timeout_ms;
    spec->idle_timeout_ms = timeout_ms;
}

/* ---- life cycle ---- */

/* The multi handle is made on the first call, in the loop thread: creating
 * it runs curl's global init and with it OpenSSL's (its config, its
 * providers), about 2 MB that a gateway at rest, or one that only talks
 * cleartext to a local server, does not need yet. libcurl 7.88 here is
 * built thread-safe, so the global init may run in this thread. */
static void upstream_start(struct upstream *up)
{
    up->multi = curl_multi_init();
    if (up->multi == NULL)
        sl_panic("curl_multi_init failed");
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    /* Keep plenty of idle connections for reuse; the default (4x handles)
     * would close them between bursts. */
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 4096L);
    curl_multi_setopt(up->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
}

struct upstream *upstream_new(struct loop *loop)
{
    struct upstream *up = xcalloc(1, sizeof(*up));

    up->loop = loop;
    loop_timer_init(&up->timer, curl_timer_fire_cb, up);
    return up;
}

void upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    while (up->calls) {
        up->calls->ops = NULL;
        call_unlink_free(up->calls);
    }
    while (up->npool)
        curl_easy_cleanup(up->pool[--up->npool]);
    loop_timer_stop(up->loop, &up->timer);
    up->stopping = 1;
    if (up->multi)
        curl_multi_cleanup(up->multi); /* closes the kept-alive sockets */
    for (size_t i = 0; i < up->nsocks; i++)
        free(up->socks[i]);
    free(up->socks);
    free(up->default_ca);
    free(up);
}
