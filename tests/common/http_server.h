/* http_server.h - a loopback HTTP server for the unit tests of modules that
 * make HTTP calls (upstream.c, otel_export.c, cascade.c): libmicrohttpd, a
 * thread per connection so that an answer may wait or trickle, every
 * request recorded (method, path, headers, body), and each answer chosen
 * by the test's function from the request. Include it after <cmocka.h>;
 * a test file includes it once.
 */
#ifndef SLUICE_TEST_HTTP_SERVER_H
#define SLUICE_TEST_HTTP_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_HTTP_MAX_REQS 256

struct test_http_req {
    char method[16];
    char path[256];
    char headers[2048]; /* "name: value\n" each, names as sent */
    char *body;         /* NUL-terminated */
    size_t len;
};

/* What to answer. Zeroed before the test's function fills it: 200, JSON,
 * an empty body. */
struct test_http_reply {
    int status;
    const char *content_type;
    const char *body;          /* the whole body (copied) */
    const char *const *chunks; /* or a body in pieces, NULL-terminated... */
    int chunk_delay_ms;        /* ...each after this long (before the first too) */
    int delay_ms;              /* wait this long before answering at all */
    const char *header_name;   /* one more header, or NULL */
    const char *header_value;
    int hang_up; /* close the connection without an answer */
};

typedef void (*test_http_fn)(void *arg, const struct test_http_req *req,
                             struct test_http_reply *out);

struct test_http {
    struct MHD_Daemon *d;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
    test_http_fn fn;
    void *arg;
    pthread_mutex_t mu;
    struct test_http_req reqs[TEST_HTTP_MAX_REQS]; /* under mu */
    int nreqs;
};

struct test_http_conn {
    struct test_http_req req;
    size_t cap;
};

struct test_http_stream {
    const char *const *chunks;
    int delay_ms;
    size_t i, off;
};

static enum MHD_Result test_http_header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    struct test_http_req *r = cls;
    size_t n = strlen(r->headers);

    (void)kind;
    snprintf(r->headers + n, sizeof(r->headers) - n, "%s: %s\n", key, value ? value : "");
    return MHD_YES;
}

static ssize_t test_http_chunk_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    struct test_http_stream *s = cls;
    size_t len, n;

    (void)pos;
    if (s->chunks[s->i] == NULL)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (s->off == 0 && s->delay_ms > 0)
        usleep((useconds_t)s->delay_ms * 1000);
    len = strlen(s->chunks[s->i]);
    n = len - s->off < max ? len - s->off : max;
    memcpy(out, s->chunks[s->i] + s->off, n);
    s->off += n;
    if (s->off == len) {
        s->i++;
        s->off = 0;
    }
    return (ssize_t)n;
}

static void test_http_stream_free_cb(void *cls)
{
    free(cls);
}

static enum MHD_Result test_http_handler_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                            const char *method, const char *version,
                                            const char *upload, size_t *upload_size, void **con_cls)
{
    struct test_http *h = cls;
    struct test_http_conn *c = *con_cls;
    struct test_http_reply rep;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void)version;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        snprintf(c->req.method, sizeof(c->req.method), "%s", method);
        snprintf(c->req.path, sizeof(c->req.path), "%s", url);
        MHD_get_connection_values(conn, MHD_HEADER_KIND, test_http_header_cb, &c->req);
        c->cap = 1024;
        c->req.body = calloc(1, c->cap);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        while (c->req.len + *upload_size + 1 > c->cap)
            c->req.body = realloc(c->req.body, c->cap *= 2);
        memcpy(c->req.body + c->req.len, upload, *upload_size);
        c->req.len += *upload_size;
        c->req.body[c->req.len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    memset(&rep, 0, sizeof(rep));
    rep.status = 200;
    rep.content_type = "application/json";
    rep.body = "";
    h->fn(h->arg, &c->req, &rep);
    pthread_mutex_lock(&h->mu);
    if (h->nreqs < TEST_HTTP_MAX_REQS) {
        h->reqs[h->nreqs] = c->req;
        h->reqs[h->nreqs].body = strdup(c->req.body);
        h->nreqs++;
    }
    pthread_mutex_unlock(&h->mu);
    if (rep.delay_ms > 0)
        usleep((useconds_t)rep.delay_ms * 1000);
    if (rep.hang_up)
        return MHD_NO;
    if (rep.chunks) {
        struct test_http_stream *s = calloc(1, sizeof(*s));

        s->chunks = rep.chunks;
        s->delay_ms = rep.chunk_delay_ms;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256, test_http_chunk_cb, s,
                                                 test_http_stream_free_cb);
    } else {
        resp = MHD_create_response_from_buffer(strlen(rep.body), (void *)rep.body,
                                               MHD_RESPMEM_MUST_COPY);
    }
    MHD_add_response_header(resp, "Content-Type", rep.content_type);
    if (rep.header_name)
        MHD_add_response_header(resp, rep.header_name, rep.header_value);
    ret = MHD_queue_response(conn, (unsigned)rep.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void test_http_done_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct test_http_conn *c = *con_cls;

    (void)cls, (void)conn, (void)toe;
    if (c) {
        free(c->req.body);
        free(c);
    }
    *con_cls = NULL;
}

/* Start on a free 127.0.0.1 port; fn chooses each answer (any thread). */
static inline void test_http_start(struct test_http *h, test_http_fn fn, void *arg)
{
    const union MHD_DaemonInfo *info;

    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->fn = fn;
    h->arg = arg;
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ERROR_LOG,
                            0, NULL, NULL, test_http_handler_cb, h, MHD_OPTION_NOTIFY_COMPLETED,
                            test_http_done_cb, NULL, MHD_OPTION_END);
    assert_non_null(h->d);
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info->port;
    snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
}

/* Requests seen so far. */
static inline int test_http_count(struct test_http *h)
{
    int n;

    pthread_mutex_lock(&h->mu);
    n = h->nreqs;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static inline void test_http_stop(struct test_http *h)
{
    MHD_stop_daemon(h->d);
    for (int i = 0; i < h->nreqs; i++)
        free(h->reqs[i].body);
    pthread_mutex_destroy(&h->mu);
    h->d = NULL;
}

#endif
