/* cascade.c - the route state machine; see cascade.h. */
#include "cascade.h"
#include "cost.h"
#include "exchange.h"
#include "log.h"
#include "loop.h"
#include "provider.h"
#include "sse.h"
#include "upstream.h"

#include <stdlib.h>
#include <string.h>

#define ERR_BODY_MAX (1u << 20)   /* an upstream error body */
#define RESP_BODY_MAX (64u << 20) /* a whole upstream response */
#define SSE_EVENT_MAX (8u << 20)  /* one upstream stream event */
#define PING_US (15u * 1000000u)  /* SSE comment after this much silence */

struct run;

/* One upstream call of a run, and what it has produced so far. */
struct attempt {
    struct run *run;
    const struct model *model;
    struct call *call;
    int stream;      /* asked upstream for an event stream */
    struct buf body; /* whole body (non-stream) or error body */
    struct sse sse;
    struct reply reply;
    int saw_done;    /* data: [DONE] arrived */
    const char *bad; /* why the response is unusable, or NULL */
};

struct run {
    struct exchange *ex; /* one reference */
    struct loop *loop;
    struct upstream *up;
    const struct route *route;
    size_t stage;
    struct attempt *att;
    struct api_error last_err; /* why the last stage failed */
    char *pass_body;           /* an upstream 4xx to pass through as is */
    size_t pass_len;
    int pass_status;
    struct loop_timer ping;
    uint64_t last_write_us;
    int committed;           /* status line and headers went to the client */
    int answering;           /* an answer byte went to the client: no fallback now */
    struct run *prev, *next; /* every live run, for cascade_abort_all */
};

static struct run *runs; /* loop thread only */

static void run_stage(struct run *run);

/* ---- the run ---- */

static void run_end(struct run *run)
{
    if (run->prev)
        run->prev->next = run->next;
    else
        runs = run->next;
    if (run->next)
        run->next->prev = run->prev;
    loop_timer_stop(run->loop, &run->ping);
    run->ex->run = NULL;
    ex_unref(run->ex);
    free(run->pass_body);
    free(run);
}

static void stages_note(struct run *run, const struct model *m, const char *score,
                        const char *decision)
{
    struct buf *s = &run->ex->meta.stages;

    /* The exchange is not yet done, so the worker does not read meta. */
    buf_printf(s, "%s%s:%s:%s", s->len ? "," : "", m->name, score, decision);
}

static void attempt_free(struct attempt *a)
{
    if (a == NULL)
        return;
    if (a->call)
        call_cancel(a->call);
    buf_free(&a->body);
    sse_free(&a->sse);
    reply_free(&a->reply);
    free(a);
}

/* Account a finished call: cost, tokens, time. */
static void attempt_account(struct attempt *a)
{
    struct ex_meta *meta = &a->run->ex->meta;

    meta->attempts++;
    if (a->call)
        meta->upstream_us += call_elapsed_us(a->call);
    if (a->reply.has_usage) {
        meta->cost_usd += cost_usd(a->model, a->reply.prompt_tokens, a->reply.completion_tokens);
        meta->prompt_tokens += a->reply.prompt_tokens;
        meta->completion_tokens += a->reply.completion_tokens;
    }
}

static void run_commit(struct run *run)
{
    if (!run->committed) {
        run->committed = 1;
        ex_stream_begin(run->ex);
    }
}

/* Write to the client's stream. Returns 0, or -1 when the client cannot keep
 * up (the buffer cap was hit). */
static int run_write(struct run *run, const char *p, size_t n)
{
    run_commit(run);
    run->last_write_us = loop_now_us(run->loop);
    return ex_stream_write(run->ex, p, n);
}

/* Nothing reached the client for PING_US: send an SSE comment. A suspended
 * connection cannot see its client leave; the write can, and MHD then
 * reports the request completed, which cancels the run. */
static void ping_cb(struct loop *loop, void *arg)
{
    struct run *run = arg;
    uint64_t idle = loop_now_us(loop) - run->last_write_us;

    if (idle < PING_US) {
        loop_timer_start(loop, &run->ping, PING_US - idle);
        return;
    }
    run_write(run, ": ping\n\n", 8);
    loop_timer_start(loop, &run->ping, PING_US);
}

/* Every stage failed, or the budget ran out: report the last failure. */
static void run_give_up(struct run *run)
{
    if (run->pass_body && !run->committed) {
        ex_respond(run->ex, run->pass_status, run->pass_body, run->pass_len);
        run->pass_body = NULL;
    } else {
        ex_fail(run->ex, &run->last_err);
    }
    run_end(run);
}

/* The current stage failed with an error that allows another try. */
static void run_escalate(struct run *run)
{
    if (run->answering) {
        ex_fail(run->ex, &run->last_err);
        run_end(run);
        return;
    }
    run->stage++;
    run_stage(run);
}

/* Remember an upstream HTTP error: 4xx bodies pass through as is when they
 * are OpenAI-shaped errors; anything else becomes our own error. */
static void note_http_error(struct run *run, struct attempt *a, long status)
{
    json_t *j = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, NULL);
    json_t *msg = json_object_get(json_object_get(j, "error"), "message");
    const char *m = json_is_string(msg) ? json_string_value(msg) : "no message";

    free(run->pass_body);
    run->pass_body = NULL;
    if (status < 500 && json_is_object(json_object_get(j, "error"))) {
        run->pass_body = buf_steal(&a->body, &run->pass_len);
        run->pass_status = (int)status;
    }
    if (status == 429)
        api_error_set(&run->last_err, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                      "Upstream %s is rate limiting: %s", a->model->name, m);
    else if (status >= 500)
        api_error_set(&run->last_err, 502, "api_error", "upstream_error", NULL,
                      "Upstream %s returned HTTP %ld: %s", a->model->name, status, m);
    else
        api_error_set(&run->last_err, (int)status, "invalid_request_error", "upstream_error", NULL,
                      "Upstream %s returned HTTP %ld: %s", a->model->name, status, m);
    json_decref(j);
}

static void note_call_error(struct run *run, struct attempt *a, enum call_err kind, const char *err)
{
    free(run->pass_body);
    run->pass_body = NULL;
    switch (kind) {
    case CALL_ERR_TIMEOUT:
    case CALL_ERR_FIRST_BYTE:
    case CALL_ERR_IDLE:
        api_error_set(&run->last_err, 504, "api_error", "upstream_timeout", NULL,
                      "Upstream %s timed out: %s", a->model->name, err);
        break;
    case CALL_ERR_CONNECT:
        api_error_set(&run->last_err, 502, "api_error", "upstream_unreachable", NULL,
                      "Could not connect to upstream %s: %s", a->model->name, err);
        break;
    default:
        api_error_set(&run->last_err, 502, "api_error", "upstream_error", NULL,
                      "Upstream %s failed: %s", a->model->name, err);
    }
}

/* ---- relaying one stream event ---- */

static int relay_event_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct attempt *a = arg;
    struct run *run = a->run;
    struct exchange *ex = run->ex;
    struct buf ev;
    int r;

    UNUSED(event);
    switch (provider_parse_chunk(ex->ri.ep, data, len, &a->reply)) {
    case CHUNK_DONE:
        a->saw_done = 1;
        return 0;
    case CHUNK_BAD:
        a->bad = "malformed stream event";
        return -1;
    case CHUNK_ERROR:
        a->bad = "error event in the upstream stream";
        return -1;
    case CHUNK_USAGE:
        if (!ex->ri.include_usage)
            return 0; /* we asked for it for the cost; the client did not */
        break;
    case CHUNK_DATA:
        break;
    }
    if (!run->answering) {
        run->answering = 1;
        ex->meta.model = a->model->name;
        ex->meta.provider = a->model->provider->name;
        ex->meta.ttft_us = now_us() - ex->t_start_us;
    }
    buf_init(&ev, len + 16);
    buf_append(&ev, "data: ", 6);
    buf_append(&ev, data, len);
    buf_append(&ev, "\n\n", 2);
    r = run_write(run, ev.data, ev.len);
    buf_free(&ev);
    if (r < 0)
        a->bad = "client too slow: stream buffer full";
    return r;
}

/* ---- one call ---- */

static int attempt_data_cb(struct call *c, const char *p, size_t n, void *arg)
{
    struct attempt *a = arg;
    long status = call_status(c);

    if (status < 200 || status >= 300) {
        /* Keep what fits of an error body; the rest is noise. */
        buf_append(&a->body, p, n);
        return 0;
    }
    if (!a->stream) {
        if (buf_append(&a->body, p, n) < 0) {
            a->bad = "upstream response too large";
            return -1;
        }
        return 0;
    }
    return sse_feed(&a->sse, p, n, relay_event_cb, a);
}

/* The stage failed in a way another stage may fix: note it and move on. */
static void attempt_failed(struct attempt *a)
{
    struct run *run = a->run;

    stages_note(run, a->model, "-", "error");
    attempt_free(a);
    run_escalate(run);
}

static void attempt_done_cb(struct call *c, const char *err, void *arg)
{
    struct attempt *a = arg;
    struct run *run = a->run;
    struct exchange *ex = run->ex;
    long status = call_status(c);
    int ok = err == NULL && a->bad == NULL && status >= 200 && status < 300;
    char *body;
    size_t len;

    if (ok && !a->stream) {
        json_t *root = provider_parse_response(ex->ri.ep, a->body.data ? a->body.data : "",
                                               a->body.len, &a->reply);

        if (root == NULL)
            a->bad = "the response is not JSON";
        json_decref(root);
    }
    if (ok && a->stream && !a->saw_done)
        a->bad = "the stream ended early";
    attempt_account(a);
    a->call = NULL; /* upstream frees it after we return */
    run->att = NULL;

    if (a->bad) {
        free(run->pass_body);
        run->pass_body = NULL;
        api_error_set(&run->last_err, 502, "api_error", "upstream_bad_response", NULL,
                      "Upstream %s: %s", a->model->name, a->bad);
        attempt_failed(a);
        return;
    }
    if (err) {
        note_call_error(run, a, call_err(c), err);
        attempt_failed(a);
        return;
    }
    if (status < 200 || status >= 300) {
        note_http_error(run, a, status);
        if (status == 429 || status >= 500) {
            attempt_failed(a);
            return;
        }
        /* Any other 4xx is the request's fault: no fallback. */
        stages_note(run, a->model, "-", "error");
        attempt_free(a);
        run_give_up(run);
        return;
    }
    ex->meta.model = a->model->name;
    ex->meta.provider = a->model->provider->name;
    stages_note(run, a->model, "-", "accept");
    if (a->stream) {
        run_write(run, "data: [DONE]\n\n", 14);
        ex_stream_end(ex);
        attempt_free(a);
    } else {
        body = buf_steal(&a->body, &len);
        attempt_free(a);
        ex_respond(ex, 200, body, len);
    }
    run_end(run);
}

static const struct call_ops attempt_ops = {
    .on_data = attempt_data_cb,
    .on_done = attempt_done_cb,
};

static void attempt_start(struct run *run, const struct model *m)
{
    struct attempt *a = xcalloc(1, sizeof(*a));
    struct call_spec spec;

    a->run = run;
    a->model = m;
    a->stream = run->ex->ri.stream;
    buf_init(&a->body, a->stream ? ERR_BODY_MAX : RESP_BODY_MAX);
    sse_init(&a->sse, SSE_EVENT_MAX);
    reply_init(&a->reply);
    provider_build(m, run->ex->ri.ep, run->ex->ri.body, a->stream, &spec);
    run->att = a;
    a->call = upstream_call(run->up, &spec, &attempt_ops, a);
}

static void run_stage(struct run *run)
{
    const struct stage *st;

    if (run->stage >= run->route->nstages) {
        run_give_up(run);
        return;
    }
    st = &run->route->stages[run->stage];
    attempt_start(run, st->models[0]);
}

void cascade_start(struct loop *loop, struct upstream *up, struct exchange *ex)
{
    struct run *run = xcalloc(1, sizeof(*run));

    run->ex = ex;
    run->loop = loop;
    run->up = up;
    run->route = ex->route;
    run->last_write_us = loop_now_us(loop);
    loop_timer_init(&run->ping, ping_cb, run);
    api_error_set(&run->last_err, 502, "api_error", "upstream_error", NULL, "%s",
                  "No upstream could answer.");
    ex->run = run;
    run->next = runs;
    if (runs)
        runs->prev = run;
    runs = run;
    if (ex->ri.stream)
        loop_timer_start(loop, &run->ping, PING_US);
    run_stage(run);
}

/* Stop a run's calls and end it with err. */
static void run_abort(struct run *run, const struct api_error *err)
{
    if (run->att) {
        attempt_free(run->att); /* cancels the call */
        run->att = NULL;
    }
    ex_fail(run->ex, err);
    run_end(run);
}

void cascade_cancel(struct exchange *ex)
{
    struct api_error e;

    if (ex->run == NULL)
        return;
    api_error_set(&e, 499, "api_error", "client_closed", NULL, "%s",
                  "The client closed the connection.");
    run_abort(ex->run, &e);
}

void cascade_abort_all(void)
{
    struct api_error e;

    api_error_set(&e, 503, "api_error", "shutting_down", NULL, "%s",
                  "The gateway is shutting down.");
    while (runs)
        run_abort(runs, &e);
}
