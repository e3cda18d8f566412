/* cascade.c - the route state machine; see cascade.h.
 *
 * A run walks the route's stages in order. A stage is either
 *
 *  - relayed: one model, streamed live to the client when the client
 *    streams. Used for stages without a scorer (every stage of a fallback
 *    route) and for the last stage of a cascade, which always accepts. It
 *    escalates only on a failure before the first answer byte.
 *  - buffered: one or more models (agreement), called without streaming,
 *    in parallel. When all have answered, the stage's scorer rates the
 *    answer of its first model (judge and http scorers make one more call);
 *    the stage accepts when score >= threshold, else the run escalates.
 *
 * Answers are kept per model for the whole run, so a model that answered in
 * one stage is not called (or paid) again by a later stage that uses it.
 * With a budget (max_cost), a stage whose expected cost would overrun what
 * is left is skipped. Cost is the sum of every call made, scorer calls
 * included.
 *
 * Each call is an attempt (attempt.c), which owns its retries and its
 * provider's breaker; the run sees it through its kind's done callback
 * (att_kinds, one per kind of call) and two hooks: account (every try is
 * paid for) and relay (a streamed answer's payloads, to the client).
 */
#include "cascade.h"
#include "attempt.h"
#include "breaker.h"
#include "caps.h"
#include "cache_types.h"
#include "cost.h"
#include "exchange.h"
#include "jscan.h"
#include "learned.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "otel.h"
#include "provider.h"
#include "scorer.h"
#include "trace.h"
#include "upstream.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PING_US (15u * 1000000u) /* SSE comment after this much silence */

struct run;

enum run_call {
    ATT_RELAY,  /* an answer relayed live to the client */
    ATT_ANSWER, /* a buffered answer for a scored stage */
    ATT_JUDGE,  /* the judge scorer's call */
    ATT_HTTP,   /* the http scorer's call */
};

/* One model's answer, kept for the whole run. */
struct memo {
    const struct model *model;
    int ok;
    struct reply reply;
    char *body; /* the raw response */
    size_t len;
    double cost;
    double score; /* of the stage that used it as its answer, or NAN */
    size_t stage; /* that stage */
};

struct run {
    struct exchange *ex; /* one reference */
    struct loop *loop;
    const struct route *route;
    size_t stage;
    /* The calls in flight and why the last one failed (last_err, a 4xx to
     * pass through, a 429's Retry-After); answering: an answer byte went to
     * the client, so no retry and no fallback now; retries: the current
     * stage's. */
    struct att_owner att;
    size_t pending;    /* answers the current stage still waits for */
    struct memo *memo; /* grown as models answer; usually 1 to 3 */
    size_t nmemo;
    char *query; /* the request's text, for scorers */
    /* the current stage, for its trace record */
    uint64_t stage_t0_us;
    double stage_cost;
    long stage_pt, stage_ct;
    struct loop_timer ping;
    uint64_t last_write_us;
    int committed;           /* status line and headers went to the client */
    struct run *prev, *next; /* every live run, for cascade_abort_all */
};

static struct run *runs; /* loop thread only */

static struct run *run_of(const struct attempt *a)
{
    return a->owner->arg;
}

static void run_stage(struct run *run);
static void stage_decide(struct run *run, double score, const char *reason);

/* ---- bookkeeping ---- */

static const struct stage *cur_stage(const struct run *run)
{
    return &run->route->stages[run->stage];
}

static int is_last_stage(const struct run *run)
{
    return run->stage + 1 == run->route->nstages;
}

static const char *run_query(struct run *run)
{
    if (run->query == NULL)
        run->query = request_query_text(&run->ex->ri);
    return run->query;
}

static struct memo *memo_find(struct run *run, const struct model *m)
{
    for (size_t i = 0; i < run->nmemo; i++)
        if (run->memo[i].model == m)
            return &run->memo[i];
    return NULL;
}

static void memo_free(struct memo *mo)
{
    reply_free(&mo->reply);
    free(mo->body);
}

/* A stage's verdict as a span (otel.h). */
static void trace_verdict(struct run *run, const struct model *m, int has_score, double score,
                          const char *decision, const char *reason, const char *answer)
{
    const struct stage *st = run->stage < run->route->nstages ? cur_stage(run) : NULL;
    struct otel_verdict v = {
        .stage = (int)run->stage,
        .model = m->name,
        .scorer = scorer_name(st ? st->scorer : SCORER_NONE),
        .has_score = has_score,
        .score = score,
        .threshold = st ? st->threshold : 0,
        .decision = decision,
        .reason = reason,
        .cost_usd = run->stage_cost,
        .t0_us = run->stage_t0_us,
        .answer = answer,
    };

    otel_verdict(run->ex, &v);
}

/* Append "model:score:decision" (or "model:-:decision") to a stages list. */
static int stages_put(struct buf *s, const char *model, int has_score, double score,
                      const char *decision)
{
    int err = s->len ? buf_append(s, ",", 1) : 0;

    err |= buf_puts(s, model);
    if (has_score) {
        char num[32];

        err |= buf_append(s, ":", 1);
        err |= buf_append(s, num, fmt_fixed2(num, score));
        err |= buf_append(s, ":", 1);
    } else {
        err |= buf_puts(s, ":-:");
    }
    return err | buf_puts(s, decision);
}

/* Record a stage's outcome: in x-sluice-stages, and in the trace. */
static void stage_note(struct run *run, const struct model *m, int has_score, double score,
                       const char *decision, const char *reason, const char *answer)
{
    struct exchange *ex = run->ex;
    struct buf *s = &ex->meta.stages;
    struct trace_rec rec = {0};

    metrics_stage(run->route->name, (int)run->stage, m->name, decision);
    if (has_score)
        metrics_stage_score(run->route->name, (int)run->stage, m->name, score);
    if (ex->otel)
        trace_verdict(run, m, has_score, score, decision, reason, answer);
    /* m:score:decision, without printf: this runs for every request. The
     * exchange is not done, so the worker does not read meta yet. A route
     * has at most ROUTE_MODELS_MAX models, whose names are short enough for
     * all of them to fit; if they did not, the header is left out whole. */
    if (stages_put(s, m->name, has_score, score, decision) < 0)
        log_msg(LOG_WARN, "x-sluice-stages over its cap of %u bytes: left out", EX_STAGES_MAX);
    if (ex->cfg->trace.path == NULL && !ex->cfg->trace.stream_on)
        return;
    rec.request_id = ex->request_id;
    rec.route = run->route->name;
    rec.stage = (int)run->stage;
    rec.model = m->name;
    rec.has_score = has_score;
    rec.score = score;
    rec.decision = decision;
    rec.reason = reason;
    rec.prompt_tokens = run->stage_pt;
    rec.completion_tokens = run->stage_ct;
    rec.cost_usd = run->stage_cost;
    rec.retries = run->att.retries;
    rec.latency_ms = (double)(now_us() - run->stage_t0_us) / 1000.0;
    rec.cache = cache_status_name(ex->meta.cache);
    if (ex->cfg->trace.include_content) {
        rec.prompt = run_query(run);
        rec.answer = answer;
    }
    trace_write(&ex->cfg->trace, &rec);
}

/* What a call that reported usage r cost: its cached prompt tokens at the
 * model's cache prices. */
static double reply_cost(const struct model *m, const struct reply *r)
{
    return cost_usd_cached(m, r->prompt_tokens, r->cached_tokens, r->cache_write_tokens,
                           r->completion_tokens);
}

/* Account one finished call of a (c, or NULL when none was made): cost,
 * tokens, time; and learn how long this model's answers run, for budget
 * estimates. */
static void account(struct run *run, const struct attempt *a, struct call *c)
{
    struct ex_meta *meta = &run->ex->meta;
    const struct model *m = a->model;
    const struct reply *r = &a->reply;
    long status = c ? call_status(c) : 0, pt, ct;
    double cost;

    meta->attempts++;
    if (c)
        meta->upstream_us += call_elapsed_us(c);
    if (m == NULL)
        return;
    if (r->has_usage) {
        pt = r->prompt_tokens;
        ct = r->completion_tokens;
    } else if (status >= 200 && status < 300 && attempt_text_len(a) > 0) {
        /* It answered, at least in part, without usage: a stream cut short
         * (the client left or read too slowly) or a provider that does not
         * count. The call is still billed, so estimate rather than say $0. */
        pt = cost_tokens(run->ex->ri.prompt_chars);
        ct = cost_tokens(attempt_text_len(a));
    } else {
        return;
    }
    cost = r->has_usage ? reply_cost(m, r) : cost_usd(m, pt, ct);
    meta->cost_usd += cost;
    meta->prompt_tokens += pt;
    meta->completion_tokens += ct;
    if (r->has_usage)
        meta->cached_tokens += r->cached_tokens;
    run->stage_cost += cost;
    run->stage_pt += pt;
    run->stage_ct += ct;
    if (r->has_usage) {
        /* The model is immutable config but for this one estimate, which
         * only the loop thread reads and writes. */
        struct model *mm = (struct model *)m;

        mm->est_completion_tokens = mm->est_completion_tokens > 0
                                        ? 0.8 * mm->est_completion_tokens + 0.2 * (double)ct
                                        : (double)ct;
    }
}

static int memo_paid_cb(const void *ctx, const struct model *m)
{
    return memo_find((struct run *)ctx, m) != NULL;
}

/* What the stage would still cost: its models not yet called, and the
 * judge's call. */
static double stage_estimate(const struct run *run, const struct stage *st)
{
    return cost_stage_estimate(st, &run->ex->ri, memo_paid_cb, run);
}

/* ---- the run ---- */

static void relay_done(struct attempt *a, struct call *c, const char *err, int ok);
static void answer_done(struct attempt *a, struct call *c, const char *err, int ok);
static void judge_done(struct attempt *a, struct call *c, const char *err, int ok);
static void http_done(struct attempt *a, struct call *c, const char *err, int ok);

/* What each kind of call is: its role in the trace, and the one callback
 * that takes its outcome (ok: a usable 2xx answer; c NULL when no call was
 * made, err then says why). */
static const struct att_kind att_kinds[] = {
    [ATT_RELAY] = {"answer", relay_done},
    [ATT_ANSWER] = {"answer", answer_done},
    [ATT_JUDGE] = {"judge", judge_done},
    [ATT_HTTP] = {"scorer", http_done},
};

static int relay_chunk_cb(struct attempt *a, const char *data, size_t len);

/* The account hook (att_hooks): every try of a call is paid for. */
static void account_cb(struct attempt *a, struct call *c)
{
    account(run_of(a), a, c);
}

static const struct att_hooks run_att_hooks = {
    .account = account_cb,
    .relay = relay_chunk_cb,
};

/* A cascade's answer: what did it save against asking the route's final
 * stage alone? That stage's price applied to the tokens of the accepted
 * answer, minus what every call of this run cost. (An estimate: the
 * strong model would have written its own answer.) */
static void note_saving(struct run *run, const struct reply *accepted)
{
    const struct route *rt = run->route;
    const struct model *final;
    double saved;

    if (rt->kind != ROUTE_CASCADE || accepted == NULL || !accepted->has_usage)
        return;
    final = rt->stages[rt->nstages - 1].models[0];
    saved = reply_cost(final, accepted) - run->ex->meta.cost_usd;
    metrics_saved(rt->name, saved);
    otel_saving(run->ex, saved);
}

static void run_end(struct run *run)
{
    struct exchange *ex = run->ex;

    att_owner_free(&run->att);
    otel_run_end(run->ex);
    if (run->prev)
        run->prev->next = run->next;
    else
        runs = run->next;
    if (run->next)
        run->next->prev = run->prev;
    loop_timer_stop(run->loop, &run->ping);
    for (size_t i = 0; i < run->nmemo; i++)
        memo_free(&run->memo[i]);
    free(run->memo);
    run->ex->run = NULL;
    free(run->query);
    free(run);
    /* Without an answer handed over, the driver tells the on_answer hooks
     * there is none (the cache lets its waiters call for themselves). */
    ex_resume(ex, PHASE_DONE);
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

static void set_answerer(struct run *run, const struct model *m)
{
    run->ex->meta.model = m->name;
    run->ex->meta.provider = m->provider->name;
}

/* Answer the client with a buffered answer: as JSON, or as an SSE stream
 * when the client streams. What we asked the upstream beyond the client's
 * request (logprobs for a scorer, samples for agreement) is taken out. */
static void respond_memo(struct run *run, struct memo *mo, int cacheable)
{
    struct exchange *ex = run->ex;
    const struct request_info *ri = &ex->ri;
    int trim = mo->reply.nchoices > (size_t)ri->n || (mo->reply.any_logprobs && !ri->want_logprobs);
    json_t *json = NULL, *choices, *c;
    char *changed = NULL; /* the body as trimmed */
    size_t i;

    set_answerer(run, mo->model);
    note_saving(run, &mo->reply);
    if (trim || ri->stream) {
        /* The answer was read in place; changing it takes the tree. */
        json = jscan_loadb(mo->body, mo->len, 0, NULL);
        if (json == NULL) {
            api_error_set(&run->att.last_err, 502, "api_error", "upstream_bad_response", NULL,
                          "Upstream %s: the response is not JSON", mo->model->name);
            ex_fail(ex, &run->att.last_err);
            run_end(run);
            return;
        }
    }
    if (trim) {
        choices = json_object_get(json, "choices");
        while (json_array_size(choices) > (size_t)ri->n)
            json_array_remove(choices, json_array_size(choices) - 1);
        json_array_foreach (choices, i, c) {
            json_t *lp = json_object_get(c, "logprobs");

            if (!ri->want_logprobs && lp != NULL && !json_is_null(lp))
                json_object_set_new(c, "logprobs", json_null());
        }
        changed = json_dumps(json, JSON_COMPACT);
        if (changed == NULL)
            sl_panic("json_dumps: out of memory");
    }
    if (cacheable)
        ex_answer(ex, changed ? changed : mo->body, changed ? strlen(changed) : mo->len);
    if (ri->stream) {
        struct buf sse;

        buf_init(&sse, SSE_RENDER_MAX);
        ex->meta.ttft_us = now_us() - ex->t_start_us;
        if (provider_sse_from_response(ri->ep, json, ri->include_usage, &sse) < 0 ||
            run_write(run, sse.data, sse.len) < 0) {
            api_error_set(&run->att.last_err, 502, "api_error", "stream_overflow", NULL, "%s",
                          "The answer is larger than the stream buffer.");
            ex_fail(ex, &run->att.last_err);
        } else {
            ex_stream_end(ex);
        }
        buf_free(&sse);
    } else if (changed) {
        ex_respond(ex, 200, changed, strlen(changed));
        changed = NULL;
    } else {
        ex_respond(ex, 200, mo->body, mo->len);
        mo->body = NULL;
    }
    free(changed);
    json_decref(json);
    run_end(run);
}

/* Every stage failed or was skipped. Answer with the best-scored answer a
 * rejected stage gave, if any (an answer beats an error; ties go to the
 * later, stronger stage); else report the last failure. sluice-tune's
 * simulation does the same (tune_simulate), so offline and live agree. */
static void run_give_up(struct run *run)
{
    struct memo *best = NULL;

    for (size_t i = 0; i < run->nmemo; i++) {
        struct memo *mo = &run->memo[i];

        if (!mo->ok || isnan(mo->score))
            continue;
        if (best == NULL || mo->score > best->score ||
            (mo->score == best->score && mo->stage > best->stage))
            best = mo;
    }
    if (best && !run->att.answering) {
        if (stages_put(&run->ex->meta.stages, best->model->name, 1, best->score, "salvage") < 0)
            log_msg(LOG_WARN, "x-sluice-stages over its cap of %u bytes: left out", EX_STAGES_MAX);
        respond_memo(run, best, 0); /* a second-best answer is not kept */
        return;
    }
    if ((run->att.pass_body ? run->att.pass_status : run->att.last_err.status) == 429)
        run->ex->retry_after_s = run->att.retry_after_s;
    if (run->att.pass_body && !run->committed) {
        ex_respond(run->ex, run->att.pass_status, run->att.pass_body, run->att.pass_len);
        run->att.pass_body = NULL;
    } else {
        ex_fail(run->ex, &run->att.last_err);
    }
    run_end(run);
}

/* Move on to the next stage; the current one failed or rejected. */
static void run_escalate(struct run *run)
{
    if (run->att.answering) {
        ex_fail(run->ex, &run->att.last_err);
        run_end(run);
        return;
    }
    run->stage++;
    run_stage(run);
}

/* ---- relayed stages ---- */

/* The first answer byte of a relayed stream is on its way to the client:
 * no retry, fallback or later stage will send the request again, so its
 * body (the client's text and its tree) is given back for the rest of the
 * stream, unless something still reads it at the end. The query a learned
 * scorer or the inference table reads is taken now; a sampled trace and
 * the dashboard's prompts (capture_content) keep the body. */
static void run_release_request(struct run *run, struct attempt *a)
{
    struct exchange *ex = run->ex;

    if (otel_reads_request(ex) || ex->cfg->otel.capture_content)
        return;
    if (cur_stage(run)->scorer == SCORER_LEARNED || ex->cfg->trace.include_content)
        run_query(run);
    json_decref(a->req); /* kept for a retry, which cannot come now */
    a->req = NULL;
    ex_release_request(ex);
}

/* The relay hook (att_hooks): one stream payload for the client, in the
 * internal form; the attempt has folded it into its reply. The first one
 * commits the run to this answer. */
static int relay_chunk_cb(struct attempt *a, const char *data, size_t len)
{
    struct run *run = run_of(a);
    struct exchange *ex = run->ex;
    struct buf ev;
    int r;

    if (!run->att.answering) {
        run->att.answering = 1;
        set_answerer(run, a->model);
        ex->meta.ttft_us = now_us() - ex->t_start_us;
        otel_call_first_byte(ex, &a->oc);
        run_release_request(run, a);
    }
    buf_init(&ev, len + 8);
    if (buf_append(&ev, "data: ", 6) < 0 || buf_append(&ev, data, len) < 0 ||
        buf_append(&ev, "\n\n", 2) < 0)
        sl_assert(!"an event fits the buffer made for it");
    r = run_write(run, ev.data, ev.len);
    buf_free(&ev);
    if (r < 0) {
        a->bad = r == EX_STREAM_MEMORY_FULL
                     ? "the gateway's stream memory is full (max_stream_memory_bytes)"
                     : "its stream buffer filled";
        a->client_fault = 1;
    }
    return r;
}

/* A local score for the trace of a relayed stage that has a scorer (the
 * last stage of a cascade always accepts, but its score is still worth
 * recording). Calls no one. */
static int relay_score(struct run *run, const struct reply *r, double *score)
{
    const struct stage *st = cur_stage(run);

    switch (st->scorer) {
    case SCORER_RULES:
        *score = scorer_rules(r, run->ex->ri.want_json) == VETO_NONE ? 1.0 : 0.0;
        return 1;
    case SCORER_LOGPROB:
        *score = scorer_logprob(r);
        return 1;
    case SCORER_LEARNED:
        *score = scorer_learned(st->weights, run_query(run), r, NULL, 0);
        return 1;
    default:
        return 0;
    }
}

static void relay_done(struct attempt *a, struct call *c, const char *err, int ok)
{
    struct run *run = run_of(a);
    struct exchange *ex = run->ex;
    long status = c ? call_status(c) : 0;
    double score = 1.0;
    int scored;

    if (!ok) {
        stage_note(run, a->model, 0, 0, "error", run->att.last_err.message, NULL);
        /* A 4xx other than 429 is the request's fault: in a fallback route
         * no other model is tried. A cascade tries on: models differ. */
        if (err == NULL && a->bad == NULL && status >= 400 && status < 500 && status != 429 &&
            run->route->kind != ROUTE_CASCADE) {
            attempt_free(a);
            run->stage = run->route->nstages;
            run_give_up(run);
            return;
        }
        attempt_free(a);
        run_escalate(run);
        return;
    }
    scored = relay_score(run, &a->reply, &score);
    set_answerer(run, a->model);
    note_saving(run, &a->reply);
    stage_note(run, a->model, 1, scored ? score : 1.0, "accept", NULL, a->reply.content.data);
    if (a->stream) {
        if (a->asm_) {
            size_t len;
            char *whole = provider_assembly_finish(a->asm_, &len);

            if (whole)
                ex_answer(ex, whole, len);
            free(whole);
        }
        run_write(run, "data: [DONE]\n\n", 14);
        ex_stream_end(ex);
    } else {
        size_t len;
        char *body = buf_steal(&a->body, &len);

        ex_answer(ex, body, len);
        ex_respond(ex, 200, body, len);
    }
    attempt_free(a);
    run_end(run);
}

/* ---- buffered stages ---- */

static void stage_evaluate(struct run *run);

static void answer_done(struct attempt *a, struct call *c, const char *err, int ok)
{
    struct run *run = run_of(a);
    struct memo *mo;

    sl_assert(run->nmemo < ROUTE_MODELS_MAX);
    run->memo = xrealloc(run->memo, (run->nmemo + 1) * sizeof(*run->memo));
    mo = &run->memo[run->nmemo++];
    memset(mo, 0, sizeof(*mo));
    mo->model = a->model;
    mo->ok = ok;
    mo->score = NAN;
    mo->reply = a->reply;
    reply_init(&a->reply); /* moved to the memo */
    if (ok)
        mo->body = buf_steal(&a->body, &mo->len);
    mo->cost = mo->reply.has_usage ? reply_cost(mo->model, &mo->reply) : 0.0;
    attempt_free(a);
    sl_assert(run->pending > 0);
    if (--run->pending == 0)
        stage_evaluate(run);
}

static void judge_done(struct attempt *a, struct call *c, const char *err, int ok)
{
    struct run *run = run_of(a);
    double score = 0;
    const char *reason = NULL;

    if (!ok)
        reason = "the judge failed";
    else if (scorer_judge_parse(a->reply.content.data ? a->reply.content.data : "", &score) < 0)
        reason = "the judge gave no score";
    attempt_free(a);
    stage_decide(run, score, reason);
}

static void http_done(struct attempt *a, struct call *c, const char *err, int ok)
{
    struct run *run = run_of(a);
    double score = 0;
    const char *reason = NULL;

    UNUSED(err);
    if (!ok)
        reason = "the scorer service failed";
    else if (scorer_http_parse(a->body.data ? a->body.data : "", a->body.len, &score) < 0)
        reason = "the scorer service gave no score";
    attempt_free(a);
    stage_decide(run, score, reason);
}

/* ---- calls ---- */

/* Call model m on endpoint ep with body (borrowed), if its provider's
 * breaker allows; else the attempt fails at once (attempt_start). What the
 * stage keeps of the answer is decided here. */
static void attempt_call(struct run *run, enum run_call kind, const struct model *m,
                         enum endpoint ep, const json_t *body, int stream)
{
    struct attempt *a = attempt_new(&run->att, &att_kinds[kind], (int)run->stage, m, ep, stream);

    if (kind == ATT_RELAY && stream && run->ex->keep_answer)
        a->asm_ = provider_assembly_new(ep);
    a->keep_text = kind != ATT_RELAY || !stream || cur_stage(run)->scorer != SCORER_NONE ||
                   run->ex->cfg->trace.include_content || run->ex->cfg->otel.capture_content;
    if (kind == ATT_JUDGE)
        a->timeout_ms = cur_stage(run)->scorer_timeout_ms;
    attempt_start(a, body);
}

/* The request as a scored stage sends it: never streamed, with logprobs
 * for the logprob scorer and n samples for self-agreement. */
static json_t *stage_body(struct run *run, const struct stage *st)
{
    json_t *body = json_copy(run->ex->ri.body);

    if (st->scorer == SCORER_LOGPROB)
        json_object_set_new(body, "logprobs", json_true());
    if (st->scorer == SCORER_AGREEMENT && st->samples > 1)
        json_object_set_new(body, "n", json_integer(st->samples));
    return body;
}

/* Every answer of a buffered stage is in: score the first model's answer. */
static void stage_evaluate(struct run *run)
{
    const struct stage *st = cur_stage(run);
    struct memo *primary = memo_find(run, st->models[0]);
    const char *answers[32];
    size_t n = 0;

    for (size_t i = 0; i < st->nmodels; i++) {
        struct memo *mo = memo_find(run, st->models[i]);

        if (mo == NULL || !mo->ok) {
            stage_note(run, st->models[0], 0, 0, "error", run->att.last_err.message, NULL);
            run_escalate(run);
            return;
        }
    }
    switch (st->scorer) {
    case SCORER_NONE:
        stage_decide(run, 1.0, NULL);
        return;
    case SCORER_RULES:
        stage_decide(run, 1.0, NULL); /* the veto is applied in stage_decide */
        return;
    case SCORER_LOGPROB:
        stage_decide(run, scorer_logprob(&primary->reply),
                     primary->reply.logprob_n ? NULL : "the upstream sent no logprobs");
        return;
    case SCORER_AGREEMENT:
        if (st->nmodels == 1 && primary->reply.choices_text) {
            json_t *t;
            size_t i;

            json_array_foreach (primary->reply.choices_text, i, t) {
                if (n < ARRAY_LEN(answers))
                    answers[n++] = json_string_value(t);
            }
        } else {
            for (size_t i = 0; i < st->nmodels && n < ARRAY_LEN(answers); i++)
                answers[n++] = memo_find(run, st->models[i])->reply.content.data;
        }
        stage_decide(run, scorer_agreement(answers, n), NULL);
        return;
    case SCORER_LEARNED:
        /* The stage's other models are the scorer's peers. */
        for (size_t i = 1; i < st->nmodels && n < ARRAY_LEN(answers); i++)
            answers[n++] = memo_find(run, st->models[i])->reply.content.data;
        stage_decide(run, scorer_learned(st->weights, run_query(run), &primary->reply, answers, n),
                     NULL);
        return;
    case SCORER_JUDGE: {
        json_t *body =
            scorer_judge_body(st->rubric, run_query(run),
                              primary->reply.content.data ? primary->reply.content.data : "");
        /* The judge is always a chat call, whatever the request was. */
        attempt_call(run, ATT_JUDGE, st->judge, EP_CHAT, body, 0);
        json_decref(body);
        return;
    }
    case SCORER_HTTP: {
        struct attempt *a =
            attempt_new(&run->att, &att_kinds[ATT_HTTP], (int)run->stage, NULL, EP_CHAT, 0);
        char *body = scorer_http_body(
            run_query(run), primary->reply.content.data ? primary->reply.content.data : "",
            primary->model->name);

        attempt_post(a, st->url, body, st->scorer_timeout_ms);
        return;
    }
    }
}

/* The stage's score is known: accept its answer or escalate. */
static void stage_decide(struct run *run, double score, const char *reason)
{
    const struct stage *st = cur_stage(run);
    struct memo *primary = memo_find(run, st->models[0]);
    enum answer_veto veto = scorer_rules(&primary->reply, run->ex->ri.want_json);
    int last = is_last_stage(run);

    /* The rules always apply: a vetoed answer scores 0. */
    if (veto != VETO_NONE) {
        score = 0;
        reason = answer_veto_name(veto);
    }
    primary->score = score;
    primary->stage = run->stage;
    if (last || score >= st->threshold) {
        stage_note(run, st->models[0], 1, score, "accept", reason, primary->reply.content.data);
        respond_memo(run, primary, 1);
        return;
    }
    stage_note(run, st->models[0], 1, score, "escalate", reason, primary->reply.content.data);
    run_escalate(run);
}

/* Would every call the stage must make get past its provider's circuit
 * breaker? (Models that already answered need no call.) */
static int stage_providers_up(struct run *run, const struct stage *st)
{
    for (size_t i = 0; i < st->nmodels; i++)
        if (memo_find(run, st->models[i]) == NULL && !breaker_peek(st->models[i]->provider))
            return 0;
    if (st->scorer == SCORER_JUDGE && st->judge && !breaker_peek(st->judge->provider))
        return 0;
    return 1;
}

static void run_stage(struct run *run)
{
    const struct stage *st;
    struct exchange *ex = run->ex;

    for (;;) {
        if (run->stage >= run->route->nstages) {
            run_give_up(run);
            return;
        }
        st = cur_stage(run);
        run->stage_t0_us = now_us();
        run->stage_cost = 0;
        run->stage_pt = run->stage_ct = 0;
        run->att.retries = 0;
        if (!stage_providers_up(run, st)) {
            stage_note(run, st->models[0], 0, 0, "skip", "circuit breaker open", NULL);
            api_error_set(&run->att.last_err, 503, "api_error", "upstream_circuit_open", NULL,
                          "The circuit breaker of route '%s''s next provider is open; no "
                          "other stage could answer.",
                          run->route->name);
            run->stage++;
            continue;
        }
        if (run->route->max_cost > 0 &&
            ex->meta.cost_usd + stage_estimate(run, st) > run->route->max_cost) {
            stage_note(run, st->models[0], 0, 0, "skip", "over budget", NULL);
            api_error_set(&run->att.last_err, 402, "insufficient_quota", "max_cost_exceeded", NULL,
                          "No remaining stage of route '%s' fits its max_cost of $%g.",
                          run->route->name, run->route->max_cost);
            run->stage++;
            continue;
        }
        break;
    }
    /* Relay: no scorer, or the last stage, which always accepts. A model
     * that already answered in this run is not called again. */
    if ((st->scorer == SCORER_NONE || is_last_stage(run)) && st->nmodels == 1 &&
        memo_find(run, st->models[0]) == NULL && st->samples <= 1) {
        attempt_call(run, ATT_RELAY, st->models[0], ex->ri.ep, ex->ri.body, ex->ri.stream);
        return;
    }
    if (ex->ri.ep == EP_EMBEDDINGS) {
        /* Nothing to score in an embedding: the stage is a plain call. */
        attempt_call(run, ATT_RELAY, st->models[0], ex->ri.ep, ex->ri.body, 0);
        return;
    }
    {
        json_t *body = stage_body(run, st);
        const struct model *todo[32];
        size_t n = 0;

        /* Count first: a call may fail at once (its breaker), and the stage
         * must not be judged before every call has started. */
        for (size_t i = 0; i < st->nmodels && n < ARRAY_LEN(todo); i++) {
            int dup = memo_find(run, st->models[i]) != NULL;

            /* A model listed twice in one stage is called once. */
            for (size_t j = 0; j < n && !dup; j++)
                dup = todo[j] == st->models[i];
            if (!dup)
                todo[n++] = st->models[i];
        }
        run->pending = n;
        for (size_t i = 0; i < n; i++)
            attempt_call(run, ATT_ANSWER, todo[i], ex->ri.ep, body, 0);
        json_decref(body);
        if (n > 0)
            return;
    }
    stage_evaluate(run);
}

void cascade_start(struct loop *loop, struct upstream *up, struct exchange *ex)
{
    struct run *run = xcalloc(1, sizeof(*run));

    run->ex = ex;
    run->loop = loop;
    run->route = ex->route;
    run->last_write_us = loop_now_us(loop);
    loop_timer_init(&run->ping, ping_cb, run);
    att_owner_init(&run->att, ex, loop, up, &run_att_hooks, run);
    ex->run = run;
    run->next = runs;
    if (runs)
        runs->prev = run;
    runs = run;
    if (ex->ri.stream)
        loop_timer_start(loop, &run->ping, PING_US);
    otel_run_begin(ex);
    run_stage(run);
}

/* Stop a run's calls and end it with err. */
static void run_abort(struct run *run, const struct api_error *err)
{
    /* A call cut off mid-answer is still billed for what it produced:
     * count it (estimated, as there is no usage yet) and trace it. */
    for (struct attempt *a = run->att.list; a; a = a->next) {
        if (a->call == NULL || a->model == NULL || attempt_text_len(a) == 0)
            continue;
        account(run, a, a->call);
        stage_note(run, a->model, 0, 0, "error", err->message, a->reply.content.data);
    }
    ex_fail(run->ex, err);
    run_end(run);
}

enum phase_result cascade_run(struct exchange *ex)
{
    cascade_start(ex->loop, loop_upstream(ex->loop), ex);
    return PHASE_AGAIN;
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
