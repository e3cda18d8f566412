/* exchange.c - the request object shared by worker and loop; see exchange.h. */
#include "exchange.h"
#include "caps.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* Bytes held by the output buffers of every open stream (allocated, so what
 * RSS pays), against the config's max_stream_memory_bytes. Loop thread,
 * but read by ex_stream_memory() from anywhere. */
static size_t stream_bytes;
/* Slow streams cut at the cap since the last note in the log. Loop thread. */
static unsigned long stream_cuts;
static uint64_t stream_cut_note_us;

size_t ex_stream_memory(void)
{
    return __atomic_load_n(&stream_bytes, __ATOMIC_RELAXED);
}

/* Count out's allocation into stream_bytes. Called with mu held. */
static void account_out_locked(struct exchange *ex)
{
    size_t now = ex->out.data ? ex->out.cap + 1 : 0;

    if (now >= ex->out_accounted)
        __atomic_add_fetch(&stream_bytes, now - ex->out_accounted, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&stream_bytes, ex->out_accounted - now, __ATOMIC_RELAXED);
    ex->out_accounted = now;
}

/* A stream was cut at the memory cap: counted, and logged at most once a
 * second (a burst of cuts is one line). */
static void note_stream_cut(const struct exchange *ex)
{
    uint64_t now = now_us();

    metrics_limited(ex->key ? ex->key->name : NULL, "stream_memory");
    stream_cuts++;
    if (now - stream_cut_note_us >= 1000000u) {
        log_msg(LOG_WARN,
                "max_stream_memory_bytes (%zu) reached: %lu slow stream(s) ended with "
                "client_too_slow; the last was %s",
                ex->cfg->max_stream_memory_bytes, stream_cuts, ex->request_id);
        stream_cuts = 0;
        stream_cut_note_us = now;
    }
}

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
    buf_init(&ex->meta.stages, EX_STAGES_MAX);
    return ex;
}

struct exchange *ex_ref(struct exchange *ex)
{
    __atomic_add_fetch(&ex->refs, 1, __ATOMIC_RELAXED);
    return ex;
}

void ex_unref(struct exchange *ex)
{
    if (__atomic_sub_fetch(&ex->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (ex->driver && ex->driver->end)
        ex->driver->end(ex);
    request_info_free(&ex->ri);
    dialect_free(ex->dx);
    if (ex->cfg)
        config_unref(ex->cfg);
    __atomic_sub_fetch(&stream_bytes, ex->out_accounted, __ATOMIC_RELAXED);
    buf_free(&ex->out);
    buf_free(&ex->in);
    buf_free(&ex->meta.stages);
    free(ex->client_auth);
    free(ex->meta.owned_model);
    free(ex->meta.owned_provider);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
}

void ex_resume(struct exchange *ex, enum phase_result r)
{
    sl_assert(r == PHASE_NEXT || r == PHASE_DONE);
    if (ex->driver)
        ex->driver->resume(ex, r);
    else
        ex_unref(ex);
}

void ex_answer(struct exchange *ex, const char *body, size_t len)
{
    if (ex->driver)
        ex->driver->answer(ex, body, len);
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
    if (buf_puts(&ex->meta.stages, stages) < 0)
        buf_reset(&ex->meta.stages); /* a foreign entry's: not reported */
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

/* Queue n bytes for the client, under the stream caps. Called with mu held;
 * returns as ex_stream_write. */
static int stream_append_locked(struct exchange *ex, const char *p, size_t n)
{
    size_t max = ex->cfg ? ex->cfg->max_stream_memory_bytes : SIZE_MAX;
    int r;

    if (ex->out_off > 0) {
        /* Drop what the worker already took, so the cap counts only what is
         * still waiting for the client; a drained buffer is given back (the
         * worker frees one it took all of: ex_stream_take_locked). */
        buf_consume(&ex->out, ex->out_off);
        ex->out_off = 0;
        if (ex->out.len == 0)
            buf_free(&ex->out);
    }
    /* All streams together are over their cap: the ones whose clients are
     * behind give way, those keeping up go on. */
    if (n > max - (max < ex_stream_memory() ? max : ex_stream_memory()) &&
        ex->out.len >= STREAM_KEEP_BYTES) {
        r = EX_STREAM_MEMORY_FULL;
        note_stream_cut(ex);
    } else {
        r = buf_append(&ex->out, p, n);
    }
    account_out_locked(ex);
    if (r == 0)
        wake_locked(ex);
    return r;
}

int ex_stream_write(struct exchange *ex, const char *p, size_t n)
{
    struct buf t;
    int r;

    buf_init(&t, DIALECT_OUT_MAX);
    if (ex->dx) {
        /* The client's dialect, translated here, outside the lock. */
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
    r = stream_append_locked(ex, p, n);
    pthread_mutex_unlock(&ex->mu);
    buf_free(&t);
    return r;
}

void ex_release_request(struct exchange *ex)
{
    buf_free(&ex->in);
    request_info_free(&ex->ri);
}

size_t ex_stream_take_locked(struct exchange *ex, char *dst, size_t max)
{
    size_t avail = ex->out.len - ex->out_off, n = avail < max ? avail : max;

    memcpy(dst, ex->out.data + ex->out_off, n);
    ex->out_off += n;
    if (ex->out_off == ex->out.len) {
        buf_free(&ex->out);
        ex->out_off = 0;
        account_out_locked(ex);
    }
    return n;
}

void ex_stream_end(struct exchange *ex)
{
    struct buf t;
    int r = 0;

    /* Another dialect closes its stream with events of its own (they were
     * written when the chat stream's [DONE] went by; this is the last
     * chance if it never did). */
    buf_init(&t, DIALECT_OUT_MAX);
    if (ex->dx)
        r = dialect_stream_end(ex->dx, &t);
    pthread_mutex_lock(&ex->mu);
    if (ex->state == EX_STREAMING) {
        if (r == 0 && t.len)
            r = stream_append_locked(ex, t.data, t.len);
        if (r < 0)
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
