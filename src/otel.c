/* otel.c - spans of requests and W3C trace context; see otel.h. */
#include "otel.h"
#include "caps.h"
#include "cache_types.h"
#include "config.h"
#include "cost.h"
#include "exchange.h"
#include "otel_export.h"
#include "otlp.h"
#include "provider.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

/* One request's trace: its ids, the open spans' starts, and the spans that
 * have ended, already encoded. */
struct otel_trace {
    uint8_t trace_id[16];
    uint64_t parent_id; /* the client's span, 0 = we are the root */
    uint64_t server_id;
    uint64_t chain_id; /* the CHAIN span of a cascade, 0 = none */
    uint64_t chain_t0_us;
    int sampled;
    int capture; /* capture_content */
    char *tracestate;
    int64_t wall0_ns;  /* the request's start, wall clock ... */
    uint64_t mono0_us; /* ... and monotonic */
    int has_saving;
    double saving;
    char *params; /* llm.invocation_parameters, made once; no_params for none */
    char *output; /* the accepted answer, with capture_content */
    int nspans;
    struct otlp w; /* ended spans, each a ScopeSpans.spans field */
};

/* A trace's params when the request has none (never freed). */
static char no_params[1];

/* ---- trace context ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* W3C: lowercase only */
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
    int any = 0;

    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);

        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
        any |= out[i];
    }
    return any ? 0 : -1; /* an all-zero id is invalid */
}

int otel_traceparent_parse(const char *s, struct otel_ctx *out)
{
    uint8_t ver, flags;
    size_t n;

    if (s == NULL)
        return -1;
    n = strlen(s);
    /* 00-<32 hex>-<16 hex>-<2 hex>: 55 characters. A later version may
     * add fields after a dash; version ff is invalid. */
    if (n < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (hexval(s[0]) < 0 || hexval(s[1]) < 0 || hexval(s[53]) < 0 || hexval(s[54]) < 0)
        return -1;
    ver = (uint8_t)(hexval(s[0]) << 4 | hexval(s[1]));
    flags = (uint8_t)(hexval(s[53]) << 4 | hexval(s[54]));
    if (ver == 0xff || (ver == 0 && n != 55) || (ver != 0 && n > 55 && s[55] != '-'))
        return -1;
    if (hex_decode(s + 3, out->trace_id, 16) < 0 || hex_decode(s + 36, out->span_id, 8) < 0)
        return -1;
    out->flags = flags;
    return 0;
}

static void put_id_hex(char *out, const uint8_t *id, size_t n)
{
    hex_encode(id, n, out);
}

static void u64_be(uint64_t v, uint8_t out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t be_u64(const uint8_t in[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

void otel_traceparent_format(const uint8_t trace_id[16], uint64_t span_id, int sampled,
                             char out[56])
{
    uint8_t sid[8];

    u64_be(span_id, sid);
    memcpy(out, "00-", 3);
    put_id_hex(out + 3, trace_id, 16);
    out[35] = '-';
    put_id_hex(out + 36, sid, 8);
    out[52] = '-';
    out[53] = '0';
    out[54] = sampled ? '1' : '0';
    out[55] = '\0';
}

int otel_tracestate_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n >= OTEL_TRACESTATE_MAX)
            return 0;
    return n > 0;
}

static uint64_t new_id(void)
{
    uint64_t id;

    do
        id = random_u64();
    while (id == 0);
    return id;
}

/* TraceIdRatioBased, as OpenTelemetry's SDKs do it: the trace id's last 8
 * bytes against the ratio, so every service that sees the trace decides
 * alike. */
static int ratio_sampled(const uint8_t trace_id[16], double ratio)
{
    if (ratio >= 1.0)
        return 1;
    if (ratio <= 0.0)
        return 0;
    return (be_u64(trace_id + 8) >> 1) < (uint64_t)(ratio * 9223372036854775808.0);
}

/* ---- span encoding ---- */

/* "a b" into out (cut to fit), without printf: span names, per request. */
static void join2(char *out, size_t size, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);

    if (na > size / 2 - 1)
        na = size / 2 - 1;
    if (nb > size - na - 2)
        nb = size - na - 2;
    memcpy(out, a, na);
    out[na] = ' ';
    memcpy(out + na + 1, b, nb);
    out[na + 1 + nb] = '\0';
}

static int64_t wall_ns(const struct otel_trace *t, uint64_t mono_us)
{
    return t->wall0_ns + ((int64_t)mono_us - (int64_t)t->mono0_us) * 1000;
}

/* Open a span in t's buffer: ids, name, kind and start; the tracestate. */
static size_t span_open(struct otel_trace *t, uint64_t id, uint64_t parent, const char *name,
                        enum otlp_span_kind kind, uint64_t t0_us)
{
    uint8_t sid[8], pid[8];
    size_t mark;

    u64_be(id, sid);
    if (parent)
        u64_be(parent, pid);
    /* Span names are sluice's own: methods, paths, model ids, routes. */
    mark = otlp_span_open(&t->w, t->trace_id, sid, parent ? pid : NULL, name, strlen(name), kind,
                          (uint64_t)wall_ns(t, t0_us));
    if (t->tracestate)
        otlp_str(&t->w, OTLP_SPAN_TRACE_STATE, t->tracestate, strlen(t->tracestate),
                 OTEL_TRACESTATE_MAX);
    return mark;
}

/* Status, end time; the span is done. */
static void span_close(struct otel_trace *t, size_t mark, uint64_t t1_us, int error,
                       const char *msg)
{
    otlp_fixed64(&t->w, OTLP_SPAN_END, (uint64_t)wall_ns(t, t1_us));
    if (error) {
        size_t st = otlp_open(&t->w, OTLP_SPAN_STATUS);

        if (msg)
            otlp_str(&t->w, OTLP_STATUS_MESSAGE, msg, strlen(msg), OTEL_ATTR_MAX_BYTES);
        otlp_varint(&t->w, OTLP_STATUS_CODE, OTLP_STATUS_ERROR);
        otlp_close(&t->w, st);
    }
    otlp_close(&t->w, mark);
    t->nspans++;
}

#define A OTLP_SPAN_ATTRIBUTES
#define AMAX OTEL_ATTR_MAX_BYTES
/* A string attribute sluice vouches for (otlp_attr_ascii): key a literal. */
#define ASCII(t, key, v) otlp_attr_ascii(&(t)->w, A, key, sizeof(key) - 1, v)

/* An event on the open span, with up to one string and one number. */
static void span_event(struct otel_trace *t, const char *name, uint64_t at_us, const char *skey,
                       const char *sval, const char *dkey, double dval)
{
    size_t ev = otlp_open(&t->w, OTLP_SPAN_EVENTS);

    otlp_fixed64(&t->w, OTLP_EVENT_TIME, (uint64_t)wall_ns(t, at_us));
    otlp_bytes(&t->w, OTLP_EVENT_NAME, name, strlen(name));
    if (skey && sval)
        otlp_attr_str(&t->w, OTLP_EVENT_ATTRIBUTES, skey, sval, AMAX);
    if (dkey)
        otlp_attr_double(&t->w, OTLP_EVENT_ATTRIBUTES, dkey, dval);
    otlp_close(&t->w, ev);
}

/* The parent of a call or a verdict: the CHAIN span if there is one. */
static uint64_t run_parent(const struct otel_trace *t)
{
    return t->chain_id ? t->chain_id : t->server_id;
}

/* ---- the request ---- */

void otel_request_begin(struct exchange *ex, const char *traceparent, const char *tracestate)
{
    const struct otel_conf *oc = &ex->cfg->otel;
    struct otel_ctx ctx;
    struct otel_trace *t;
    int parent;

    if (oc->endpoint == NULL)
        return;
    parent = traceparent && otel_traceparent_parse(traceparent, &ctx) == 0;
    if (!parent && oc->sample_ratio <= 0)
        return; /* nothing to record, nothing to pass on */
    t = xcalloc(1, sizeof(*t));
    if (parent) {
        memcpy(t->trace_id, ctx.trace_id, 16);
        t->parent_id = be_u64(ctx.span_id);
        t->sampled = ctx.flags & 1;
        if (tracestate && otel_tracestate_ok(tracestate))
            t->tracestate = xstrdup(tracestate);
    } else {
        uint64_t hi = new_id(), lo = random_u64();

        u64_be(hi, t->trace_id);
        u64_be(lo, t->trace_id + 8);
        t->sampled = ratio_sampled(t->trace_id, oc->sample_ratio);
    }
    t->server_id = new_id();
    t->capture = oc->capture_content;
    t->wall0_ns = (int64_t)(ex->t_start_wall * 1e6) * 1000;
    t->mono0_us = ex->t_start_us;
    /* A proxied request's two spans take about 1.5 KiB: storage of that
     * size up front (a recycled buffer, usually) instead of growing. */
    if (t->sampled)
        otel_export_buffer(&t->w);
    else
        otlp_init(&t->w, OTEL_TRACE_MAX_BYTES);
    ex->otel = t;
}

int otel_reads_request(const struct exchange *ex)
{
    return ex->otel && ex->otel->sampled;
}

static void trace_free(struct otel_trace *t)
{
    otlp_free(&t->w);
    free(t->tracestate);
    if (t->params != no_params)
        free(t->params);
    free(t->output);
    free(t);
}

/* The text of a message's content: a string, or the text parts of an
 * array. Returns a malloc'd string or NULL. */
static char *content_text(const json_t *c)
{
    struct buf b;
    const json_t *part;
    size_t i;

    if (json_is_string(c))
        return xstrdup(json_string_value(c));
    if (!json_is_array(c))
        return NULL;
    buf_init(&b, OTEL_CONTENT_MAX_BYTES);
    json_array_foreach (c, i, part) {
        const char *s = json_string_value(json_object_get(part, "text"));

        /* What does not fit is left out: the attribute is cut anyway. */
        if (s && (b.len == 0 || buf_append(&b, "\n", 1) == 0) && buf_puts(&b, s) < 0)
            break;
    }
    return b.data ? buf_steal(&b, NULL) : NULL;
}

/* llm.input_messages.N.message.{role,content}: the request's messages. */
static void put_input_messages(struct otel_trace *t, const json_t *body)
{
    const json_t *msgs = json_object_get(body, "messages"), *m;
    size_t i;

    json_array_foreach (msgs, i, m) {
        char key[64];
        char *text = content_text(json_object_get(m, "content"));

        if (i >= OTEL_MAX_MESSAGES)
            break;
        snprintf(key, sizeof(key), "llm.input_messages.%zu.message.role", i);
        otlp_attr_str(&t->w, A, key, json_string_value(json_object_get(m, "role")), AMAX);
        if (text) {
            snprintf(key, sizeof(key), "llm.input_messages.%zu.message.content", i);
            otlp_attr_str(&t->w, A, key, text, OTEL_CONTENT_MAX_BYTES);
            free(text);
        }
    }
}

/* input.value: the query a scorer would see. */
static void put_input_value(struct otel_trace *t, const struct exchange *ex)
{
    char *q = request_query_text(&ex->ri);

    if (q) {
        otlp_attr_str(&t->w, A, "input.value", q, OTEL_CONTENT_MAX_BYTES);
        otlp_attr_str(&t->w, A, "input.mime_type", "text/plain", AMAX);
        free(q);
    }
}

void otel_request_end(struct exchange *ex)
{
    struct otel_trace *t = ex->otel;
    uint64_t end = ex->t_end_us ? ex->t_end_us : now_us();
    const struct ex_meta *m = &ex->meta;
    char name[160];
    size_t mark;
    int error;

    if (t == NULL)
        return;
    ex->otel = NULL;
    if (!t->sampled) {
        trace_free(t);
        return;
    }
    join2(name, sizeof(name), ex->method, ex->path);
    mark = span_open(t, t->server_id, t->parent_id, name, OTLP_KIND_SERVER, ex->t_start_us);
    /* The method and path are in the name; what is said elsewhere (the
     * provider, on the LLM span) is not said again: every attribute costs
     * CPU on every traced request. */
    ASCII(t, "openinference.span.kind", "CHAIN");
    otlp_attr_str(&t->w, A, "url.path", ex->path, AMAX);
    otlp_attr_int(&t->w, A, "http.response.status_code", ex->client_status);
    ASCII(t, "sluice.request_id", ex->request_id);
    if (ex->route)
        ASCII(t, "sluice.route", ex->route->name);
    if (ex->key)
        ASCII(t, "sluice.key", ex->key->name);
    /* From the config, or from a cache entry (which is outside input). */
    otlp_attr_str(&t->w, A, "sluice.model", m->model, AMAX);
    if (ex->ri.stream)
        otlp_attr_bool(&t->w, A, "sluice.stream", 1);
    if (m->cache != CACHE_NA)
        ASCII(t, "sluice.cache", cache_status_name(m->cache));
    otlp_attr_double(&t->w, A, "sluice.cost_usd", m->cost_usd);
    if (m->cache == CACHE_HIT)
        otlp_attr_double(&t->w, A, "sluice.saved_usd", m->saved_cost);
    else if (t->has_saving)
        otlp_attr_double(&t->w, A, "sluice.saved_usd", t->saving);
    if (m->stages.len)
        otlp_attr_strn(&t->w, A, "sluice.stages", m->stages.data, m->stages.len, AMAX);
    if (m->attempts > 1)
        otlp_attr_int(&t->w, A, "sluice.attempts", m->attempts);
    if (m->retries)
        otlp_attr_int(&t->w, A, "sluice.retries", m->retries);
    if (m->ttft_us)
        otlp_attr_double(&t->w, A, "sluice.ttft_ms", (double)m->ttft_us / 1000.0);
    if (t->capture && ex->ri.body) {
        put_input_value(t, ex);
        if (t->output)
            otlp_attr_str(&t->w, A, "output.value", t->output, OTEL_CONTENT_MAX_BYTES);
    }
    if (m->cache == CACHE_HIT)
        span_event(t, "cache.hit", ex->t_start_us + m->ttft_us, "sluice.cache_key",
                   ex->cache_plan.key, "sluice.saved_usd", m->saved_cost);
    /* HTTP server semantics: a 5xx is the server's error, a 4xx the
     * client's, which leaves the span's status unset. */
    error = ex->client_status >= 500;
    if (ex->err.status && ex->err.code)
        otlp_attr_str(&t->w, A, "error.type", ex->err.code, AMAX);
    span_close(t, mark, end, error, ex->err.status ? ex->err.message : NULL);
    if (otlp_failed(&t->w))
        otel_export_drop_too_large(t->nspans);
    else
        otel_export_push(&t->w, t->nspans, ex->cfg->otel.max_queue);
    trace_free(t);
}

/* ---- the run ---- */

void otel_run_begin(struct exchange *ex)
{
    struct otel_trace *t = ex->otel;

    if (t == NULL || !t->sampled || ex->route->kind != ROUTE_CASCADE)
        return;
    t->chain_id = new_id();
    t->chain_t0_us = now_us();
}

void otel_run_end(struct exchange *ex)
{
    struct otel_trace *t = ex->otel;
    char name[160];
    size_t mark;

    if (t == NULL || t->chain_id == 0)
        return;
    snprintf(name, sizeof(name), "cascade %.128s", ex->route->name);
    mark = span_open(t, t->chain_id, t->server_id, name, OTLP_KIND_INTERNAL, t->chain_t0_us);
    otlp_attr_str(&t->w, A, "openinference.span.kind", "CHAIN", AMAX);
    otlp_attr_str(&t->w, A, "sluice.route", ex->route->name, AMAX);
    otlp_attr_str(&t->w, A, "sluice.model", ex->meta.model, AMAX);
    otlp_attr_double(&t->w, A, "sluice.cost_usd", ex->meta.cost_usd);
    if (t->has_saving)
        otlp_attr_double(&t->w, A, "sluice.saved_usd", t->saving);
    if (ex->meta.stages.len)
        otlp_attr_strn(&t->w, A, "sluice.stages", ex->meta.stages.data, ex->meta.stages.len, AMAX);
    if (t->capture && t->output)
        otlp_attr_str(&t->w, A, "output.value", t->output, OTEL_CONTENT_MAX_BYTES);
    span_close(t, mark, now_us(), ex->err.status >= 500, ex->err.status ? ex->err.message : NULL);
    /* Spans that end after the run (none today) hang off the server. */
    t->chain_id = 0;
}

void otel_saving(struct exchange *ex, double usd)
{
    if (ex->otel) {
        ex->otel->has_saving = 1;
        ex->otel->saving = usd;
    }
}

/* ---- upstream calls ---- */

void otel_call_begin(struct exchange *ex, struct otel_call *oc, struct curl_slist **headers)
{
    struct otel_trace *t = ex->otel;
    char line[80];
    struct curl_slist *h;

    memset(oc, 0, sizeof(*oc));
    if (t == NULL)
        return;
    oc->span_id = new_id();
    oc->t0_us = now_us();
    /* libcurl writes each request header through its printf, a byte at a
     * time: the traceparent line costs a proxied request about as much CPU
     * as its two spans (docs/OPERATIONS.md). */
    if (!ex->cfg->otel.propagate || headers == NULL)
        return;
    memcpy(line, "traceparent: ", 13);
    otel_traceparent_format(t->trace_id, oc->span_id, t->sampled, line + 13);
    h = curl_slist_append(*headers, line);
    if (h == NULL)
        sl_panic("curl_slist_append: out of memory");
    *headers = h;
    if (t->tracestate) {
        char *ts = xasprintf("tracestate: %s", t->tracestate);

        h = curl_slist_append(*headers, ts);
        free(ts);
        if (h == NULL)
            sl_panic("curl_slist_append: out of memory");
        *headers = h;
    }
}

void otel_call_first_byte(struct exchange *ex, struct otel_call *oc)
{
    if (ex->otel && oc->span_id && oc->first_us == 0)
        oc->first_us = now_us();
}

static const char *operation_name(int ep)
{
    switch (ep) {
    case EP_COMPLETIONS:
        return "text_completion";
    case EP_EMBEDDINGS:
        return "embeddings";
    default:
        return "chat";
    }
}

/* The request's sampling and format parameters as JSON: the body without
 * its content (messages, prompt, input, tools) and without what sluice
 * sets itself. Made once per request. */
static const char *invocation_params(struct otel_trace *t, const struct exchange *ex)
{
    static const char *const drop[] = {"messages",  "prompt", "input",          "tools",
                                       "functions", "model",  "stream_options", "user"};
    json_t *params = NULL, *v;
    const char *k;

    if (t->params || ex->ri.body == NULL)
        return t->params;
    json_object_foreach ((json_t *)ex->ri.body, k, v) {
        size_t i = 0;

        while (i < ARRAY_LEN(drop) && strcmp(k, drop[i]) != 0)
            i++;
        if (i < ARRAY_LEN(drop))
            continue;
        /* A shallow object: members are shared with the body, not copied. */
        if (params == NULL)
            params = json_object();
        json_object_set(params, k, v);
    }
    /* Nothing but content and routing (the common case): no attribute, and
     * nothing made. */
    if (params == NULL) {
        t->params = no_params;
        return t->params;
    }
    t->params = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(params);
    if (t->params == NULL)
        sl_panic("json_dumps: out of memory");
    return t->params;
}

/* The attributes of an LLM span that depend on the model and the endpoint
 * alone, encoded once: eight of a call's twenty, a third of its cost.
 * Loop thread only (calls end there), so no lock. A snapshot's model may be
 * freed by a reload and its address reused: an entry is only used when the
 * strings it was made from still match. */
#define MODEL_ATTRS_SLOTS 64

static struct model_attrs {
    const struct model *m;
    int ep;
    enum provider_type type;
    char *name, *id, *provider; /* copies, to check the entry against */
    char *bytes;
    size_t len;
} model_attrs[MODEL_ATTRS_SLOTS];

static const struct model_attrs *model_attrs_get(const struct model *m, int ep)
{
    struct model_attrs *c = &model_attrs[((uintptr_t)m / 64 + (unsigned)ep) % MODEL_ATTRS_SLOTS];
    int azure = m->provider->type == PROVIDER_AZURE;
    struct otlp w;

    if (c->m == m && c->ep == ep && c->type == m->provider->type && strcmp(c->name, m->name) == 0 &&
        strcmp(c->id, m->id) == 0 && strcmp(c->provider, m->provider->name) == 0)
        return c;
    free(c->name);
    free(c->id);
    free(c->provider);
    free(c->bytes);
    otlp_init(&w, 64u << 10);
#define CA(key, v) otlp_attr_ascii(&w, A, key, sizeof(key) - 1, v)
    CA("openinference.span.kind", ep == EP_EMBEDDINGS ? "EMBEDDING" : "LLM");
    CA("llm.model_name", m->id);
    CA("llm.provider", azure ? "azure" : "openai");
    CA("gen_ai.operation.name", operation_name(ep));
    CA("gen_ai.provider.name", azure ? "azure.ai.openai" : "openai");
    CA("gen_ai.request.model", m->id);
    CA("sluice.model", m->name);
    CA("sluice.provider", m->provider->name);
#undef CA
    /* Config names and ids are short: this cannot fail. */
    sl_assert(!otlp_failed(&w));
    c->m = m;
    c->ep = ep;
    c->type = m->provider->type;
    c->name = xstrdup(m->name);
    c->id = xstrdup(m->id);
    c->provider = xstrdup(m->provider->name);
    c->bytes = buf_steal(&w.b, &c->len);
    return c;
}

/* Attributes of a model call: OpenInference and OTel GenAI. */
static void put_model_attrs(struct otel_trace *t, const struct exchange *ex,
                            const struct otel_call_info *ci, int answer)
{
    const struct model *m = ci->model;
    const struct reply *r = ci->reply;

    const struct model_attrs *ma = model_attrs_get(m, ci->ep);

    otlp_raw(&t->w, ma->bytes, ma->len);
    if (answer && invocation_params(t, ex) && t->params[0])
        otlp_attr_str(&t->w, A, "llm.invocation_parameters", t->params, AMAX);
    if (ci->status >= 200 && ci->status < 300)
        ASCII(t, "gen_ai.response.model", m->id);
    if (r && r->has_usage) {
        otlp_attr_int(&t->w, A, "llm.token_count.prompt", r->prompt_tokens);
        otlp_attr_int(&t->w, A, "llm.token_count.completion", r->completion_tokens);
        otlp_attr_int(&t->w, A, "llm.token_count.total", r->prompt_tokens + r->completion_tokens);
        otlp_attr_int(&t->w, A, "gen_ai.usage.input_tokens", r->prompt_tokens);
        otlp_attr_int(&t->w, A, "gen_ai.usage.output_tokens", r->completion_tokens);
        otlp_attr_double(&t->w, A, "sluice.cost_usd",
                         cost_usd(m, r->prompt_tokens, r->completion_tokens));
    }
    if (r && r->finish_reason[0]) {
        const char *fr = r->finish_reason;

        otlp_attr_strs(&t->w, A, "gen_ai.response.finish_reasons", &fr, 1, AMAX);
    }
    if (t->capture && answer && ex->ri.body) {
        put_input_value(t, ex);
        put_input_messages(t, ex->ri.body);
    }
    if (t->capture && r && r->content.len) {
        otlp_attr_strn(&t->w, A, "output.value", r->content.data, r->content.len,
                       OTEL_CONTENT_MAX_BYTES);
        otlp_attr_str(&t->w, A, "llm.output_messages.0.message.role", "assistant", AMAX);
        otlp_attr_strn(&t->w, A, "llm.output_messages.0.message.content", r->content.data,
                       r->content.len, OTEL_CONTENT_MAX_BYTES);
    }
}

void otel_call_end(struct exchange *ex, struct otel_call *oc, const struct otel_call_info *ci)
{
    struct otel_trace *t = ex->otel;
    char name[160];
    size_t mark;
    int answer;

    if (t == NULL || !t->sampled || oc->span_id == 0) {
        oc->span_id = 0;
        return;
    }
    answer = strcmp(ci->role, "answer") == 0;
    if (ci->model)
        join2(name, sizeof(name), answer ? operation_name(ci->ep) : ci->role, ci->model->id);
    else
        join2(name, sizeof(name), "scorer", "http");
    mark = span_open(t, oc->span_id, run_parent(t), name, OTLP_KIND_CLIENT, oc->t0_us);
    if (ci->model) {
        put_model_attrs(t, ex, ci, answer);
    } else {
        ASCII(t, "openinference.span.kind", "EVALUATOR");
        otlp_attr_str(&t->w, A, "url.full", ci->url, AMAX);
    }
    /* Said only where it tells something: a judge, a cascade's stage, a
     * stream, a retry, a status other than 200. */
    if (!answer)
        ASCII(t, "sluice.role", ci->role);
    if (t->chain_id)
        otlp_attr_int(&t->w, A, "sluice.stage", ci->stage);
    if (ci->stream)
        otlp_attr_bool(&t->w, A, "sluice.stream", 1);
    if (ci->retry)
        otlp_attr_int(&t->w, A, "sluice.retry", ci->retry);
    if (ci->will_retry)
        otlp_attr_bool(&t->w, A, "sluice.will_retry", 1);
    if (ci->status && ci->status != 200)
        otlp_attr_int(&t->w, A, "http.response.status_code", ci->status);
    if (oc->first_us) {
        span_event(t, "first_token", oc->first_us, NULL, NULL, "sluice.ttft_ms",
                   (double)(oc->first_us - oc->t0_us) / 1000.0);
    }
    if (ci->error) {
        otlp_attr_str(&t->w, A, "error.type", ci->error_type ? ci->error_type : "error", AMAX);
        span_event(t, "exception", now_us(), "exception.message", ci->error, NULL, 0);
    }
    span_close(t, mark, now_us(), ci->error != NULL, ci->error);
    oc->span_id = 0;
}

/* ---- verdicts ---- */

void otel_verdict(struct exchange *ex, const struct otel_verdict *v)
{
    struct otel_trace *t = ex->otel;
    char name[160];
    size_t mark;
    int error;

    if (t && t->capture && v->answer && strcmp(v->decision, "accept") == 0) {
        free(t->output);
        t->output = xstrdup(v->answer);
    }
    if (t == NULL || t->chain_id == 0)
        return;
    snprintf(name, sizeof(name), "stage %d %s", v->stage, v->scorer);
    mark = span_open(t, new_id(), t->chain_id, name, OTLP_KIND_INTERNAL, v->t0_us);
    otlp_attr_str(&t->w, A, "openinference.span.kind", "EVALUATOR", AMAX);
    otlp_attr_int(&t->w, A, "sluice.stage", v->stage);
    otlp_attr_str(&t->w, A, "sluice.model", v->model, AMAX);
    otlp_attr_str(&t->w, A, "sluice.scorer", v->scorer, AMAX);
    if (v->has_score)
        otlp_attr_double(&t->w, A, "sluice.score", v->score);
    otlp_attr_double(&t->w, A, "sluice.threshold", v->threshold);
    otlp_attr_str(&t->w, A, "sluice.decision", v->decision, AMAX);
    if (v->reason)
        otlp_attr_str(&t->w, A, "sluice.reason", v->reason, AMAX);
    otlp_attr_double(&t->w, A, "sluice.cost_usd", v->cost_usd);
    if (t->capture && v->answer)
        otlp_attr_str(&t->w, A, "output.value", v->answer, OTEL_CONTENT_MAX_BYTES);
    error = strcmp(v->decision, "error") == 0;
    span_close(t, mark, now_us(), error, error ? v->reason : NULL);
}
