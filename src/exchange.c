/* exchange.c - the request object shared by worker and loop; see exchange.h. */
#include "exchange.h"
#include "caps.h"
#include "log.h"
#include "metrics.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* A slow client may let this much of a stream pile up before we give up on
 * it. Pausing HTTP/2 curl transfers is unsafe on curl 7.88 (bugs 10971 and
 * 10988), so the cap is the back-pressure. */
#define STREAM_BUF_MAX (4u << 20)

struct exchange *ex_new(struct MHD_Connection *conn, size_t max_body)
{
    struct exchange *ex = xcalloc(1, sizeof(*ex));

    pthread_mutex_init(&ex->mu, NULL);
    ex->refs = 1;
    ex->conn = conn;
    ex->state = EX_PENDING;
    ex->t_start_us = now_us();
    ex->t_start_wall = wall_time();
    buf_init(&ex->out, STREAM_BUF_MAX);
    buf_init(&ex->in, max_body);
    buf_init(&ex->meta.stages, 4096);
    return ex;
}

struct exchange *ex_ref(struct exchange *ex)
{
    __atomic_add_fetch(&ex->refs, 1, __ATOMIC_RELAXED);
    return ex;
}

/* One request's figures into the metrics. */
static void metrics_record(const struct exchange *ex)
{
    struct metrics_request mr = {
        .route = ex->route ? ex->route->name : NULL,
        .model = ex->meta.model,
        .provider = ex->meta.provider,
        .key = ex->key ? ex->key->name : NULL,
        .status = ex->client_status,
        .cache = cache_status_name(ex->meta.cache),
        .stream = ex->ri.stream,
        .latency_us = ex->t_end_us - ex->t_start_us,
        .upstream_us = ex->meta.upstream_us,
        .ttft_us = ex->meta.ttft_us,
        .prompt_tokens = ex->meta.prompt_tokens,
        .completion_tokens = ex->meta.completion_tokens,
        .cost_usd = ex->meta.cost_usd,
    };

    if (ex->path[0] != '/' || strncmp(ex->path, "/admin/", 7) == 0)
        return; /* the admin API is not traffic */
    metrics_request(&mr);
}

void ex_unref(struct exchange *ex)
{
    if (__atomic_sub_fetch(&ex->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    log_request(ex);
    metrics_record(ex);
    limits_settle(ex);
    request_info_free(&ex->ri);
    dialect_free(ex->dx);
    if (ex->cfg)
        config_unref(ex->cfg);
    cache_unref(ex->cache);
    buf_free(&ex->out);
    buf_free(&ex->in);
    buf_free(&ex->meta.stages);
    free(ex->client_auth);
    free(ex->meta.owned_model);
    free(ex->meta.owned_provider);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
}

/* Wake the worker if it waits for us. Called with mu held. */
static void wake_locked(struct exchange *ex)
{
    if (ex->suspended && ex->conn) {
        ex->suspended = 0;
        MHD_resume_connection(ex->conn);
    }
}

/* Install a whole body in out. Called with mu held. */
static void set_body_locked(struct exchange *ex, char *body, size_t len)
{
    buf_free(&ex->out);
    ex->out.data = body;
    ex->out.len = len;
    ex->out.cap = len;
    ex->out.max = len;
    ex->out_off = 0;
}

void ex_respond_sse(struct exchange *ex, char *body, size_t len)
{
    if (ex->dx && dialect_answer_sse(ex->dx, &body, &len) < 0) {
        struct api_error e;

        free(body);
        api_error_set(&e, 502, "api_error", "stream_overflow", NULL, "%s",
                      "The answer is larger than the stream buffer.");
        ex_fail(ex, &e);
        return;
    }
    pthread_mutex_lock(&ex->mu);
    sl_assert(ex->state == EX_PENDING);
    set_body_locked(ex, body, len);
    ex->status = 200;
    ex->streamed = 1;
    ex->state = EX_DONE;
    wake_locked(ex);
    pthread_mutex_unlock(&ex->mu);
}

void ex_set_cached_meta(struct exchange *ex, const char *model, const char *provider,
                        const char *stages, double cost)
{
    free(ex->client_auth);
    free(ex->meta.owned_model);
    free(ex->meta.owned_provider);
    ex->meta.owned_model = xstrdup(model);
    ex->meta.owned_provider = xstrdup(provider);
    ex->meta.model = ex->meta.owned_model;
    ex->meta.provider = ex->meta.owned_provider;
    buf_reset(&ex->meta.stages);
    buf_puts(&ex->meta.stages, stages);
    ex->meta.saved_cost = cost;
    ex->meta.cost_usd = 0;
}

void ex_respond(struct exchange *ex, int status, char *body, size_t len)
{
    pthread_mutex_lock(&ex->mu);
    sl_assert(ex->state == EX_PENDING);
    set_body_locked(ex, body, len);
    ex->status = status;
    ex->state = EX_DONE;
    wake_locked(ex);
    pthread_mutex_unlock(&ex->mu);
}

void ex_fail(struct exchange *ex, const struct api_error *err)
{
    pthread_mutex_lock(&ex->mu);
    if (ex->state != EX_DONE) {
        ex->err = *err;
        if (ex->state == EX_PENDING)
            ex->status = err->status;
        ex->state = EX_DONE;
        wake_locked(ex);
    }
    pthread_mutex_unlock(&ex->mu);
}

void ex_stream_begin(struct exchange *ex)
{
    pthread_mutex_lock(&ex->mu);
    sl_assert(ex->state == EX_PENDING);
    ex->status = 200;
    ex->streamed = 1;
    ex->state = EX_STREAMING;
    wake_locked(ex);
    pthread_mutex_unlock(&ex->mu);
}

int ex_stream_write(struct exchange *ex, const char *p, size_t n)
{
    struct buf t = {0};
    int r;

    if (ex->dx) {
        /* The client's dialect, translated here, outside the lock. */
        buf_init(&t, DIALECT_OUT_MAX);
        if (dialect_stream(ex->dx, p, n, &t) < 0) {
            buf_free(&t);
            return -1;
        }
        p = t.data;
        n = t.len;
        if (n == 0) {
            buf_free(&t);
            return 0; /* nothing for the client yet (usage kept for the end) */
        }
    }
    pthread_mutex_lock(&ex->mu);
    sl_assert(ex->state == EX_STREAMING);
    if (ex->out_off > 0) {
        /* Drop what the worker already took, so the cap counts only what is
         * still waiting for the client. */
        buf_consume(&ex->out, ex->out_off);
        ex->out_off = 0;
    }
    r = buf_append(&ex->out, p, n);
    if (r == 0)
        wake_locked(ex);
    pthread_mutex_unlock(&ex->mu);
    buf_free(&t);
    return r;
}

void ex_stream_end(struct exchange *ex)
{
    struct buf t = {0};
    int r = 0;

    /* Another dialect closes its stream with events of its own (they were
     * written when the chat stream's [DONE] went by; this is the last
     * chance if it never did). */
    if (ex->dx) {
        buf_init(&t, DIALECT_OUT_MAX);
        r = dialect_stream_end(ex->dx, &t);
    }
    pthread_mutex_lock(&ex->mu);
    if (ex->state == EX_STREAMING) {
        if (r == 0 && t.len && ex->out_off > 0) {
            buf_consume(&ex->out, ex->out_off);
            ex->out_off = 0;
        }
        if (r < 0 || (t.len && buf_append(&ex->out, t.data, t.len) < 0))
            api_error_set(&ex->err, 502, "api_error", "stream_overflow", NULL, "%s",
                          "The answer is larger than the stream buffer.");
        ex->state = EX_DONE;
        wake_locked(ex);
    }
    pthread_mutex_unlock(&ex->mu);
    buf_free(&t);
}

int ex_client_gone(struct exchange *ex)
{
    int gone;

    pthread_mutex_lock(&ex->mu);
    gone = ex->conn == NULL;
    pthread_mutex_unlock(&ex->mu);
    return gone;
}
