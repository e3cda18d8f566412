/* attempt.c - one upstream call of a run, with its retries and its
 * provider's circuit breaker; see attempt.h.
 *
 * An attempt's life: attempt_new, then attempt_start (a model) or
 * attempt_post (a scorer service); upstream.c reports the call's bytes
 * (attempt_data_cb) and its end (attempt_done_cb), which classifies it
 * (attempt_outcome), tells the breaker, and either schedules a retry (the
 * attempt lives on, a timer sends it again) or hands the outcome to the
 * kind's done callback. The owner frees it with attempt_free.
 */
#include "attempt.h"
#include "breaker.h"
#include "caps.h"
#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "otel.h"
#include "provider.h"
#include "upstream.h"

#include <stdlib.h>
#include <string.h>

void att_owner_init(struct att_owner *o, struct exchange *ex, struct loop *loop,
                    struct upstream *up, const struct att_hooks *hooks, void *arg)
{
    memset(o, 0, sizeof(*o));
    o->ex = ex;
    o->loop = loop;
    o->up = up;
    o->hooks = hooks;
    o->arg = arg;
    api_error_set(&o->last_err, 502, "api_error", "upstream_error", NULL, "%s",
                  "No upstream could answer.");
}

void att_owner_clear_pass(struct att_owner *o)
{
    free(o->pass_body);
    o->pass_body = NULL;
}

void att_owner_free(struct att_owner *o)
{
    while (o->list)
        attempt_free(o->list);
    att_owner_clear_pass(o);
}

size_t attempt_text_len(const struct attempt *a)
{
    return a->reply.content.len + a->text_dropped;
}

/* End the span of a's call c (otel.h): err is why it failed, or NULL. */
static void trace_call(struct attempt *a, struct call *c, const char *err, const char *err_type,
                       int will_retry)
{
    struct otel_call_info ci = {
        .model = a->model,
        .role = a->kind->role,
        .url = a->url,
        .stage = a->stage,
        .ep = (int)a->ep,
        .stream = a->stream,
        .status = c ? call_status(c) : 0,
        .error = err,
        .error_type = err_type,
        .retry = a->tries,
        .will_retry = will_retry,
        .reply = &a->reply,
    };

    if (a->oc.span_id)
        otel_call_end(a->owner->ex, &a->oc, &ci);
}

void attempt_free(struct attempt *a)
{
    struct att_owner *o = a->owner;
    struct attempt **pp;

    for (pp = &o->list; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    if (a->call) {
        trace_call(a, a->call, "the call was cancelled", "cancelled", 0);
        call_cancel(a->call);
    }
    loop_timer_stop(o->loop, &a->retry);
    json_decref(a->req);
    buf_free(&a->body);
    sse_free(&a->sse);
    reply_free(&a->reply);
    provider_assembly_free(a->asm_);
    provider_stream_free(a->xs);
    free(a);
}

/* Remember an upstream HTTP error: 4xx bodies pass through as is when they
 * are OpenAI-shaped errors; anything else becomes our own error. */
static void note_http_error(struct att_owner *o, struct attempt *a, long status,
                            long retry_after_ms)
{
    json_t *j, *msg;
    const char *m, *who = a->model ? a->model->name : "scorer";

    if (a->model)
        provider_error_normalize(a->model, &a->body); /* into OpenAI's shape */
    j = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, NULL);
    msg = json_object_get(json_object_get(j, "error"), "message");
    m = json_is_string(msg) ? json_string_value(msg) : "no message";

    att_owner_clear_pass(o);
    if (status < 500 && json_is_object(json_object_get(j, "error"))) {
        o->pass_body = buf_steal(&a->body, &o->pass_len);
        o->pass_status = (int)status;
    }
    o->retry_after_s =
        status == 429 && retry_after_ms > 0 ? (int)((retry_after_ms + 999) / 1000) : 0;
    if (status == 429)
        api_error_set(&o->last_err, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                      "Upstream %s is rate limiting: %s", who, m);
    else if (status >= 500)
        api_error_set(&o->last_err, 502, "api_error", "upstream_error", NULL,
                      "Upstream %s returned HTTP %ld: %s", who, status, m);
    else
        api_error_set(&o->last_err, (int)status, "invalid_request_error", "upstream_error", NULL,
                      "Upstream %s returned HTTP %ld: %s", who, status, m);
    json_decref(j);
}

static void note_call_error(struct att_owner *o, struct attempt *a, enum call_err kind,
                            const char *err)
{
    const char *who = a->model ? a->model->name : "scorer";

    att_owner_clear_pass(o);
    switch (kind) {
    case CALL_ERR_TIMEOUT:
    case CALL_ERR_FIRST_BYTE:
    case CALL_ERR_IDLE:
        api_error_set(&o->last_err, 504, "api_error", "upstream_timeout", NULL,
                      "Upstream %s timed out: %s", who, err);
        break;
    case CALL_ERR_CONNECT:
        api_error_set(&o->last_err, 502, "api_error", "upstream_unreachable", NULL,
                      "Could not connect to upstream %s: %s", who, err);
        break;
    default:
        api_error_set(&o->last_err, 502, "api_error", "upstream_error", NULL,
                      "Upstream %s failed: %s", who, err);
    }
}

/* Classify how a call ended. Returns 1 if it brought a usable 2xx answer;
 * else notes the failure in the owner's last_err and returns 0. For a
 * whole (not streamed) 2xx body of a model, the reply is parsed here. */
static int attempt_outcome(struct attempt *a, struct call *c, const char *err)
{
    struct att_owner *o = a->owner;
    long status = call_status(c);
    const char *who = a->model ? a->model->name : "scorer";

    if (err == NULL && a->bad == NULL && status >= 200 && status < 300) {
        if (a->stream) {
            if (!a->saw_done)
                a->bad = "the stream ended early";
        } else if (a->model) { /* a scorer service's body is its owner's to read */
            int rc = -1;

            if (provider_answer_normalize(a->model, a->ep, &a->body) == 0)
                rc = provider_parse_response(a->ep, a->body.data ? a->body.data : "", a->body.len,
                                             &a->reply);
            if (rc == PROVIDER_ERROR_ANSWER)
                a->bad = "HTTP 200 with an error object instead of an answer";
            else if (rc < 0)
                a->bad = "the response is not JSON";
        }
    }
    if (a->bad) {
        att_owner_clear_pass(o);
        /* (A breaker-open attempt, the other client_fault, never gets here.) */
        if (a->client_fault)
            api_error_set(&o->last_err, 503, "api_error", "client_too_slow", NULL,
                          "The client read the stream more slowly than %s wrote it, and %s.", who,
                          a->bad);
        else if (a->reply.is_error && a->reply.error[0])
            api_error_set(&o->last_err, 502, "api_error", "upstream_bad_response", NULL,
                          "Upstream %s: %s: %s", who, a->bad, a->reply.error);
        else
            api_error_set(&o->last_err, 502, "api_error", "upstream_bad_response", NULL,
                          "Upstream %s: %s", who, a->bad);
        return 0;
    }
    if (err) {
        note_call_error(o, a, call_err(c), err);
        return 0;
    }
    if (status < 200 || status >= 300) {
        note_http_error(o, a, status, call_retry_after_ms(c));
        return 0;
    }
    return 1;
}

/* ---- streams ---- */

/* One stream payload in the internal form: fold it into the reply, and
 * hand what is for the client to the owner's relay hook. */
static int attempt_chunk_cb(void *arg, const char *data, size_t len)
{
    struct attempt *a = arg;
    enum chunk_kind kind;

    kind = provider_parse_chunk(a->ep, data, len, &a->reply, a->asm_);
    if (!a->keep_text) {
        a->text_dropped += a->reply.content.len;
        buf_free(&a->reply.content);
    }
    switch (kind) {
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
        if (!a->owner->ex->ri.include_usage)
            return 0; /* we asked for it for the cost; the client did not */
        break;
    case CHUNK_DATA:
        break;
    }
    return a->owner->hooks->relay(a, data, len);
}

static int attempt_event_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct attempt *a = arg;

    if (a->xs == NULL)
        return attempt_chunk_cb(a, data, len);
    if (provider_stream_event(a->xs, event, data, len, attempt_chunk_cb, a) < 0) {
        if (a->bad == NULL)
            a->bad = "malformed stream event";
        return -1;
    }
    return 0;
}

static int attempt_data_cb(struct call *c, const char *p, size_t n, void *arg)
{
    struct attempt *a = arg;
    long status = call_status(c);

    if (status < 200 || status >= 300) {
        /* Keep what fits of an error body; the rest is noise. */
        size_t room = a->body.max - a->body.len;

        if (buf_append(&a->body, p, n < room ? n : room) < 0)
            sl_assert(!"an append within the room left fits");
        return 0;
    }
    if (!a->stream) {
        if (buf_append(&a->body, p, n) < 0) {
            a->bad = "upstream response too large";
            return -1;
        }
        return 0;
    }
    return sse_feed(&a->sse, p, n, attempt_event_cb, a);
}

/* ---- retries and breakers ---- */

static void attempt_retry_cb(struct loop *loop, void *arg);

/* The upstream failed the call in a way that is its own fault (and may go
 * away): the breaker counts it, and a retry may help. A 4xx other than 429
 * is the request's fault; a client too slow for the stream is ours. */
static int upstream_fault(const struct attempt *a, struct call *c, const char *err)
{
    long status = call_status(c);

    if (a->client_fault)
        return 0;
    if (a->bad) /* an error event or a malformed answer, also when it aborted the call */
        return 1;
    if (err)
        return call_err(c) != CALL_ERR_ABORTED;
    return status == 429 || status >= 500;
}

static long policy_retries(const struct model *m)
{
    return m->retries >= 0 ? m->retries : m->provider->retries;
}

/* Try the call again later, if the policy allows: never once an answer
 * byte reached the client, at most `retries` times, after a backoff with
 * full jitter (a random wait up to min(max, base * 2^tries)), honouring a
 * Retry-After up to retry_after_max_ms. Returns 1 if a retry is scheduled
 * (the attempt lives on), 0 if the failure stands. */
static int attempt_retry(struct attempt *a, struct call *c)
{
    struct att_owner *o = a->owner;
    const struct provider *p = a->model->provider;
    long after = call_retry_after_ms(c);
    uint64_t cap, wait;

    if (o->answering || a->tries >= policy_retries(a->model))
        return 0;
    if (after > p->retry_after_max_ms)
        return 0; /* told to come back too late: move on instead */
    cap = (uint64_t)p->retry_backoff_ms << (a->tries < 20 ? a->tries : 20);
    if (cap > (uint64_t)p->retry_max_backoff_ms)
        cap = (uint64_t)p->retry_max_backoff_ms;
    wait = cap ? random_u64() % (cap + 1) : 0;
    if (after >= 0 && (uint64_t)after > wait)
        wait = (uint64_t)after;
    trace_call(a, c, o->last_err.message, o->last_err.code, 1);
    /* The failed call still counts: its time, and its cost if any. */
    o->hooks->account(a, c);
    a->call = NULL;
    a->tries++;
    metrics_retry(a->model->provider->name);
    o->ex->meta.retries++;
    o->retries++;
    buf_reset(&a->body);
    sse_free(&a->sse);
    sse_init(&a->sse, SSE_EVENT_MAX);
    reply_free(&a->reply);
    reply_init(&a->reply);
    a->text_dropped = 0;
    a->saw_done = 0;
    a->bad = NULL;
    if (a->asm_) {
        provider_assembly_free(a->asm_);
        a->asm_ = provider_assembly_new(a->ep);
    }
    if (a->xs) {
        provider_stream_free(a->xs);
        a->xs = provider_stream_new(a->model);
    }
    loop_timer_start(o->loop, &a->retry, wait * 1000u);
    return 1;
}

/* The outcome of a stands: account its try and hand it to its kind. */
static void attempt_finish(struct attempt *a, struct call *c, const char *err, int ok)
{
    a->owner->hooks->account(a, c);
    a->call = NULL; /* upstream frees it after we return */
    a->kind->done(a, c, err, ok);
}

/* End a without a call (its breaker is open, or the provider cannot take
 * the request): as a failure. */
static void attempt_fail_now(struct attempt *a)
{
    attempt_finish(a, NULL, a->bad, 0);
}

/* a's provider's breaker is open: fail a at once. */
static void attempt_breaker_open(struct attempt *a)
{
    api_error_set(&a->owner->last_err, 503, "api_error", "upstream_circuit_open", NULL,
                  "The circuit breaker of provider %s is open.", a->model->provider->name);
    a->bad = "circuit breaker open";
    a->client_fault = 1; /* not a new failure of the upstream */
    attempt_fail_now(a);
}

static void attempt_done_cb(struct call *c, const char *err, void *arg)
{
    struct attempt *a = arg;
    int ok = attempt_outcome(a, c, err);

    if (a->model) {
        int fault = upstream_fault(a, c, err);

        breaker_record(a->model->provider, !fault);
        if (fault && attempt_retry(a, c))
            return;
    }
    if (a->oc.span_id)
        trace_call(a, c, ok ? NULL : a->owner->last_err.message,
                   ok ? NULL : a->owner->last_err.code, 0);
    attempt_finish(a, c, err, ok);
}

static const struct call_ops attempt_ops = {
    .on_data = attempt_data_cb,
    .on_done = attempt_done_cb,
};

struct attempt *attempt_new(struct att_owner *o, const struct att_kind *kind, int stage,
                            const struct model *m, enum endpoint ep, int stream)
{
    struct attempt *a = xcalloc(1, sizeof(*a));

    a->owner = o;
    a->kind = kind;
    a->stage = stage;
    a->model = m;
    a->ep = ep;
    a->stream = stream;
    a->timeout_ms = -1;
    loop_timer_init(&a->retry, attempt_retry_cb, a);
    buf_init(&a->body, stream ? ERR_BODY_MAX : RESP_BODY_MAX);
    sse_init(&a->sse, SSE_EVENT_MAX);
    reply_init(&a->reply);
    if (stream)
        a->xs = provider_stream_new(m);
    a->next = o->list;
    o->list = a;
    return a;
}

/* Send a's request (again). A request the provider's API cannot express
 * (provider_build refuses it) is the request's fault, as a 4xx would be:
 * the breaker counts no failure, and the attempt fails at once with that
 * 400, so the route moves on to a model that may take it. */
static void attempt_send(struct attempt *a)
{
    struct att_owner *o = a->owner;
    struct exchange *ex = o->ex;
    int own = a->req == ex->ri.body; /* the client's body, unchanged */
    struct call_spec spec;
    struct api_error e;

    if (provider_build(a->model, a->ep, a->req, own ? ex->in.data : NULL, own ? ex->in.len : 0,
                       a->stream, ex->client_auth, &spec, &e) < 0) {
        breaker_record(a->model->provider, 1);
        o->last_err = e;
        a->bad = "the request cannot be sent to this provider";
        a->client_fault = 1;
        attempt_fail_now(a);
        return;
    }
    if (ex->otel)
        otel_call_begin(ex, &a->oc, a->model->provider->trace_context ? &spec.headers : NULL);
    if (a->timeout_ms >= 0) {
        spec.timeout_ms = a->timeout_ms;
        spec.first_byte_timeout_ms = a->timeout_ms;
    }
    a->call = upstream_call(o->up, &spec, &attempt_ops, a);
}

static void attempt_retry_cb(struct loop *loop, void *arg)
{
    struct attempt *a = arg;

    UNUSED(loop);
    if (!breaker_allow(a->model->provider)) {
        /* It opened while we waited: give up on this provider. */
        attempt_breaker_open(a);
        return;
    }
    attempt_send(a);
}

void attempt_start(struct attempt *a, const json_t *body)
{
    a->req = json_incref((json_t *)body);
    if (!breaker_allow(a->model->provider)) {
        /* A half-open breaker lets one probe through; this is not it. */
        attempt_breaker_open(a);
        return;
    }
    attempt_send(a);
}

void attempt_post(struct attempt *a, const char *url, char *body, long timeout_ms)
{
    struct exchange *ex = a->owner->ex;
    struct call_spec spec;

    a->url = url;
    call_spec_json(&spec, xstrdup(url), body, timeout_ms);
    if (ex->otel)
        otel_call_begin(ex, &a->oc, &spec.headers);
    a->call = upstream_call(a->owner->up, &spec, &attempt_ops, a);
}
