/* mock_ep.c - sluice-mock's endpoints (see mock_ep.h).
 *
 * Faults and shapes are driven per request by the "mock" object in the body
 * (the gateway forwards unknown fields unchanged), so a test can make one
 * upstream call fail and watch the gateway recover. /_mock/stats counts what
 * arrived, so a test can assert how many upstream calls were made.
 */
#include "mock_ep.h"
#include "mock_anthropic.h"
#include "mock_conn.h"
#include "mock_ctl.h"
#include "mock_gen.h"
#include "mock_replay.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MOCK_EP_MAX_STATS_KEYS 10000
#define MOCK_EP_MAX_FAIL_KEYS 100000
#define MOCK_EP_MAX_KEY_LEN 256    /* longer stats keys count as "(other)" */
#define MOCK_EP_CREATED 1700000000 /* the "created" of listed models */

enum mock_ep_kind {
    MOCK_EP_NONE,
    MOCK_EP_CHAT,
    MOCK_EP_COMPLETIONS,
    MOCK_EP_EMBEDDINGS,
    MOCK_EP_MODELS,
    MOCK_EP_MODEL,
    MOCK_EP_STATS,
    MOCK_EP_RESET,
    MOCK_EP_HEALTH,
    MOCK_EP_MESSAGES,     /* Anthropic: POST /v1/messages */
    MOCK_EP_COUNT_TOKENS, /* Anthropic: POST /v1/messages/count_tokens */
};

/* Where a request goes. */
struct mock_route {
    enum mock_ep_kind ep;
    int azure;
    char *deployment; /* owned: the Azure deployment, which is the model */
    char *model_id;   /* owned: GET /v1/models/{id} */
};

/* The endpoints' state: the loop thread's only. */
static struct {
    struct mock_ep_opts opt;
    const struct mock_replay *replay;
    json_t *models;      /* the GET /v1/models list */
    json_t *fail_counts; /* mock.key -> requests seen, for fail_times */
    json_t *defaults;    /* model -> default "mock" object (--mock, --content) */
    long long requests;
    long long faults;
    long long replay_hits;
    long long replay_misses;
    json_t *by_model;
    json_t *by_path;
} ep;

/* ---- small helpers ---- */

static int mock_ep_span_eq(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

static int mock_ep_span_prefix(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);

    return n >= k && memcmp(p, s, k) == 0;
}

/* Percent-decode p[0..n). Returns a malloc'd string, or NULL on a bad escape
 * or a byte outside printable ASCII (names here are ids, not text). */
static char *mock_ep_pct_decode(const char *p, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (ch == '%') {
            unsigned v = 0;

            if (n - i < 3) {
                free(out);
                return NULL;
            }
            for (int k = 1; k <= 2; k++) {
                char d = p[i + k];

                v <<= 4;
                if (d >= '0' && d <= '9')
                    v |= (unsigned)(d - '0');
                else if (d >= 'a' && d <= 'f')
                    v |= (unsigned)(d - 'a' + 10);
                else if (d >= 'A' && d <= 'F')
                    v |= (unsigned)(d - 'A' + 10);
                else {
                    free(out);
                    return NULL;
                }
            }
            ch = (unsigned char)v;
            i += 2;
        }
        if (ch < 0x20 || ch >= 0x7f) {
            free(out);
            return NULL;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

/* 1 if the query string has `name` with a non-empty value. */
static int mock_ep_query_has(const struct mock_http_req *req, const char *name)
{
    size_t nl = strlen(name), i = 0;
    const char *q = req->query;

    while (q && i < req->query_len) {
        size_t end = i;

        while (end < req->query_len && q[end] != '&')
            end++;
        if (end - i > nl + 1 && memcmp(q + i, name, nl) == 0 && q[i + nl] == '=')
            return 1;
        i = end + 1;
    }
    return 0;
}

/* A printable copy of p[0..n) for messages and stats keys: other bytes
 * become '?'. Caller frees. */
static char *mock_ep_printable(const char *p, size_t n)
{
    char *s = xstrndup(p, n);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            s[i] = '?';
    return s;
}

/* Count one more under key. Both the number of keys and their length are
 * capped, so no client can grow the table without bound. */
static void mock_ep_bump(json_t *obj, const char *key)
{
    json_t *v = strlen(key) > MOCK_EP_MAX_KEY_LEN ? NULL : json_object_get(obj, key);

    if (v == NULL &&
        (json_object_size(obj) >= MOCK_EP_MAX_STATS_KEYS || strlen(key) > MOCK_EP_MAX_KEY_LEN)) {
        key = "(other)";
        v = json_object_get(obj, key);
    }
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(obj, key, json_integer(1));
}

static void mock_ep_log(const struct mock_http_req *req, const char *model, const char *what)
{
    if (!ep.opt.verbose)
        return;
    fprintf(stderr, "sluice-mock: %.*s %.*s model=%s %s\n", (int)req->method_len, req->method,
            (int)(req->path_len > 200 ? 200 : req->path_len), req->path, model ? model : "-", what);
}

/* ---- routing and the key ---- */

/* Fill r from the request's path. r's strings are owned (free them). */
static void mock_ep_route(const struct mock_http_req *req, struct mock_route *r)
{
    const char *p = req->path;
    size_t n = req->path_len;
    static const char az[] = "/openai/deployments/";

    memset(r, 0, sizeof(*r));
    if (mock_ep_span_eq(p, n, "/v1/chat/completions"))
        r->ep = MOCK_EP_CHAT;
    else if (mock_ep_span_eq(p, n, "/v1/completions"))
        r->ep = MOCK_EP_COMPLETIONS;
    else if (mock_ep_span_eq(p, n, "/v1/embeddings"))
        r->ep = MOCK_EP_EMBEDDINGS;
    else if (mock_ep_span_eq(p, n, "/v1/messages"))
        r->ep = MOCK_EP_MESSAGES;
    else if (mock_ep_span_eq(p, n, "/v1/messages/count_tokens"))
        r->ep = MOCK_EP_COUNT_TOKENS;
    else if (mock_ep_span_eq(p, n, "/v1/models"))
        r->ep = MOCK_EP_MODELS;
    else if (mock_ep_span_prefix(p, n, "/v1/models/") && n > 11) {
        r->model_id = mock_ep_pct_decode(p + 11, n - 11);
        r->ep = r->model_id ? MOCK_EP_MODEL : MOCK_EP_NONE;
    } else if (mock_ep_span_eq(p, n, "/_mock/stats"))
        r->ep = MOCK_EP_STATS;
    else if (mock_ep_span_eq(p, n, "/_mock/reset"))
        r->ep = MOCK_EP_RESET;
    else if (mock_ep_span_eq(p, n, "/_mock/health"))
        r->ep = MOCK_EP_HEALTH;
    else if (mock_ep_span_prefix(p, n, az)) {
        const char *d = p + sizeof(az) - 1, *slash;
        size_t rest = n - (sizeof(az) - 1);

        slash = memchr(d, '/', rest);
        if (slash == NULL || slash == d)
            return;
        rest -= (size_t)(slash - d);
        if (mock_ep_span_eq(slash, rest, "/chat/completions"))
            r->ep = MOCK_EP_CHAT;
        else if (mock_ep_span_eq(slash, rest, "/completions"))
            r->ep = MOCK_EP_COMPLETIONS;
        else if (mock_ep_span_eq(slash, rest, "/embeddings"))
            r->ep = MOCK_EP_EMBEDDINGS;
        else
            return;
        r->deployment = mock_ep_pct_decode(d, (size_t)(slash - d));
        if (r->deployment == NULL)
            r->ep = MOCK_EP_NONE;
        r->azure = 1;
    }
}

static int mock_ep_method_is(const struct mock_http_req *req, const char *m)
{
    return mock_ep_span_eq(req->method, req->method_len, m);
}

/* The --require-key check: "Authorization: Bearer KEY", or the key alone
 * in api-key (Azure, which takes nothing else) or x-api-key (Anthropic,
 * which also takes the bearer token its SDK 1.x sends). */
static int mock_ep_auth_ok(const struct mock_http_req *req, int azure, int anthropic)
{
    const char *key = ep.opt.require_key;
    const struct mock_http_header *h;
    size_t kl;

    if (key == NULL)
        return 1;
    kl = strlen(key);
    if (azure || anthropic) {
        h = mock_http_find(req, anthropic ? "x-api-key" : "api-key");
        if (h || azure)
            return h && mock_ep_span_eq(h->value, h->value_len, key);
    }
    h = mock_http_find(req, "authorization");
    if (h == NULL || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0)
        return 0;
    {
        const char *v = h->value + 7;
        size_t vl = h->value_len - 7;

        while (vl > 0 && *v == ' ') {
            v++;
            vl--;
        }
        return vl == kl && memcmp(v, key, kl) == 0;
    }
}

/* ---- models, stats, reset ---- */

static json_t *mock_ep_model_object(const char *id)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", MOCK_EP_CREATED,
                     "owned_by", "sluice-mock");
}

static void mock_ep_models(struct mock_reply *r, const struct mock_route *rt)
{
    size_t i;
    json_t *m;

    if (rt->ep == MOCK_EP_MODELS) {
        json_t *data = json_array();

        json_array_foreach (ep.models, i, m) {
            json_array_append_new(data, mock_ep_model_object(json_string_value(m)));
        }
        mock_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
        return;
    }
    json_array_foreach (ep.models, i, m) {
        if (strcmp(json_string_value(m), rt->model_id) == 0) {
            mock_reply_json(r, 200, mock_ep_model_object(rt->model_id));
            return;
        }
    }
    {
        char msg[300];

        snprintf(msg, sizeof(msg), "The model '%.200s' does not exist", rt->model_id);
        mock_reply_error(r, 404, "model_not_found", "model", msg, NULL);
    }
}

static void mock_ep_models_add(const char *id)
{
    size_t i;
    json_t *m;

    json_array_foreach (ep.models, i, m) {
        if (strcmp(json_string_value(m), id) == 0)
            return;
    }
    json_array_append_new(ep.models, json_string(id));
}

static void mock_ep_stats_reset(void)
{
    ep.requests = ep.faults = ep.replay_hits = ep.replay_misses = 0;
    json_object_clear(ep.by_model);
    json_object_clear(ep.by_path);
    json_object_clear(ep.fail_counts);
    mock_conn_counts_reset();
}

static void mock_ep_stats(struct mock_reply *r)
{
    struct mock_conn_counts cc;

    mock_conn_counts(&cc);
    /* "active" leaves out the connection asking, so an idle mock says 0. */
    mock_reply_json(
        r, 200,
        json_pack("{s:I,s:O,s:O,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                  (json_int_t)ep.requests, "by_model", ep.by_model, "by_path", ep.by_path,
                  "streams_started", (json_int_t)cc.streams_started, "streams_completed",
                  (json_int_t)cc.streams_completed, "streams_aborted",
                  (json_int_t)cc.streams_aborted, "streams_active", (json_int_t)cc.streams_active,
                  "active", (json_int_t)(cc.active - 1), "faults", (json_int_t)ep.faults,
                  "replay_hits", (json_int_t)ep.replay_hits, "replay_misses",
                  (json_int_t)ep.replay_misses, "connections", (json_int_t)cc.connections));
}

/* ---- the API ---- */

/* The message of an injected error when mock.error_message is not given:
 * OpenAI's wording where it has one. */
static const char *mock_ep_error_message(long status)
{
    static const struct {
        long status;
        const char *message;
    } msgs[] = {
        {400, "sluice-mock: injected bad request"},
        {401, "sluice-mock: injected authentication error"},
        {404, "sluice-mock: injected not found"},
        {429, "Rate limit reached (sluice-mock injected 429)"},
        {500, "The server had an error while processing your request (sluice-mock)"},
        {502, "Bad gateway (sluice-mock)"},
        {503, "The engine is currently overloaded (sluice-mock)"},
        {504, "Gateway timeout (sluice-mock)"},
        {529, "Overloaded"},
    };

    for (size_t i = 0; i < ARRAY_LEN(msgs); i++)
        if (msgs[i].status == status)
            return msgs[i].message;
    return "sluice-mock: injected error";
}

/* Answer a chat, completions or messages request whose answer is built: a
 * stream or a body, in OpenAI's or (r->anthropic) Anthropic's format, with
 * the fault (if any) applied. */
static void mock_ep_deliver(struct mock_reply *r, struct mock_answer *a, const struct mock_ctl *ctl)
{
    long chunks = ctl->chunks > 0 ? ctl->chunks : ep.opt.chunks;
    long interval = ctl->interval_ms >= 0 ? ctl->interval_ms : ep.opt.interval_ms;
    int malformed = ctl->fault == MOCK_FAULT_MALFORMED,
        truncate = ctl->fault == MOCK_FAULT_TRUNCATE;
    int error_event = ctl->fault == MOCK_FAULT_ERROR_EVENT;
    int status = ctl->status > 0 && ctl->status < 400 ? (int)ctl->status : 200;

    if (a->stream) {
        int rc = r->anthropic ? mock_anth_render_stream(a, (size_t)chunks, malformed, error_event,
                                                        !r->http10, &r->stream)
                              : mock_render_stream(a, (size_t)chunks, malformed, error_event,
                                                   !r->http10, &r->stream);

        if (rc < 0) {
            mock_reply_error(
                r, 400, "response_too_large", NULL,
                "sluice-mock: the stream would be too large (over 64 MiB or 200000 chunks)", NULL);
            return;
        }
        mock_reply_stream(r, status, (uint64_t)interval * 1000, truncate);
        return;
    }
    if (error_event) {
        /* No stream to fail inside: the same overload, as a status. */
        mock_reply_error(r, r->anthropic ? 529 : 503, NULL, NULL,
                         mock_ep_error_message(r->anthropic ? 529 : 503), NULL);
        return;
    }
    {
        size_t len;
        char *body = r->anthropic ? mock_anth_render_json(a, malformed, &len)
                                  : mock_render_json(a, malformed, &len);

        if (truncate)
            mock_reply_truncated(r, status, body, len);
        else
            mock_reply_send(r, status, "application/json", NULL, body, len);
        free(body);
    }
}

/* The faults and statuses that answer before the body is read: hang, reset,
 * error_200 and an injected status of 400 or more. Return 1 when one did. */
static int mock_ep_inject(struct mock_reply *r, const struct mock_http_req *req, const char *model,
                          const struct mock_ctl *ctl)
{
    if (ctl->fault == MOCK_FAULT_HANG || ctl->fault == MOCK_FAULT_RESET) {
        ep.faults++;
        r->act = ctl->fault == MOCK_FAULT_HANG ? MOCK_REPLY_HANG : MOCK_REPLY_RESET;
        mock_ep_log(req, model, ctl->fault == MOCK_FAULT_HANG ? "fault=hang" : "fault=reset");
        return 1;
    }
    if (ctl->fault == MOCK_FAULT_ERROR_200) {
        ep.faults++;
        mock_reply_error(r, 200, "server_error", NULL,
                         ctl->error_message ? ctl->error_message
                                            : "sluice-mock: an error with status 200",
                         NULL);
        mock_ep_log(req, model, "fault=error_200");
        return 1;
    }
    if (ctl->status >= 400) {
        char extra[96] = "";

        if (ctl->retry_after >= 0)
            snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n%s: %lld\r\n",
                     (long long)ceil(ctl->retry_after),
                     r->anthropic ? "x-should-retry" : "retry-after-ms",
                     r->anthropic ? 1LL : (long long)llround(ctl->retry_after * 1000));
        ep.faults++;
        mock_reply_error(
            r, (int)ctl->status, ctl->status == 429 ? "rate_limit_exceeded" : NULL, NULL,
            ctl->error_message ? ctl->error_message : mock_ep_error_message(ctl->status), extra);
        mock_ep_log(req, model, "injected status");
        return 1;
    }
    return 0;
}

/* The answer proper of an API request with its controls. Return 0, or -1
 * with err set. */
static int mock_ep_answer(struct mock_reply *r, const struct mock_http_req *req,
                          const struct mock_route *rt, json_t *body, const char *model,
                          const struct mock_ctl *ctl, struct mock_err *err)
{
    if (rt->ep == MOCK_EP_COUNT_TOKENS) {
        long long tokens;

        if (mock_anth_count_tokens(body, &tokens, err) < 0)
            return -1;
        mock_reply_json(r, 200, json_pack("{s:I}", "input_tokens", (json_int_t)tokens));
        mock_ep_log(req, model, "ok");
    } else if (rt->ep == MOCK_EP_EMBEDDINGS) {
        struct buf out;
        long long tokens;

        buf_init(&out, MOCK_REPLY_MAX / 2);
        if (mock_gen_embeddings(body, model, &out, &tokens, err) < 0) {
            buf_free(&out);
            return -1;
        }
        if (ctl->fault == MOCK_FAULT_TRUNCATE)
            mock_reply_truncated(r, 200, out.data, out.len);
        else
            mock_reply_send(r, 200, "application/json", NULL, out.data,
                            ctl->fault == MOCK_FAULT_MALFORMED ? out.len / 2 : out.len);
        buf_free(&out);
        mock_ep_log(req, model, "ok");
    } else {
        struct mock_gen_opts o = {
            .model = model,
            .content = ctl->content,
            .content_len = ctl->content_len,
            .choices = ctl->choices,
            .forced = ctl->has_logprob,
            .forced_lp = ctl->logprob,
            .replay = ep.replay,
            .seq = r->seq,
            .cache_read = ctl->cache_read,
            .cache_write = ctl->cache_write,
        };
        struct mock_answer a;
        int rc = rt->ep == MOCK_EP_CHAT ? mock_gen_chat(body, &o, &a, err)
                 : rt->ep == MOCK_EP_MESSAGES
                     ? mock_anth_gen(body, &o, (int)ctl->tool_calls, &a, err)
                     : mock_gen_completion(body, &o, &a, err);

        if (rc < 0) {
            if (err->code && strcmp(err->code, "replay_miss") == 0)
                ep.replay_misses++;
            return -1;
        }
        ep.replay_hits += a.replayed;
        mock_ep_deliver(r, &a, ctl);
        mock_ep_log(req, model, a.stream ? "stream" : "ok");
        mock_answer_free(&a);
    }
    return 0;
}

/* An API POST (chat, completions, embeddings, messages, count_tokens):
 * count it, check it, parse the body and its mock controls, and set up the
 * answer with its first-byte delay. */
static void mock_ep_api(struct mock_reply *r, const struct mock_http_req *req,
                        const struct mock_route *rt)
{
    struct mock_err err = {0};
    struct mock_ctl ctl = {0};
    json_error_t jerr;
    json_t *body;
    const char *model;
    char *path = mock_ep_printable(req->path, req->path_len);

    ep.requests++;
    mock_ep_bump(ep.by_path, path);
    free(path);
    if (rt->azure && !mock_ep_query_has(req, "api-version")) {
        mock_reply_error(r, 400, "missing_api_version", "api-version",
                         "sluice-mock: the api-version query parameter is required", NULL);
        return;
    }
    if (!mock_ep_auth_ok(req, rt->azure, r->anthropic)) {
        mock_reply_error(r, 401, "invalid_api_key", NULL,
                         rt->azure ? "Access denied due to invalid subscription key (sluice-mock)."
                         : r->anthropic ? "invalid x-api-key (sluice-mock)"
                                        : "Incorrect API key provided (sluice-mock).",
                         NULL);
        return;
    }
    if (r->anthropic && mock_http_find(req, "anthropic-version") == NULL) {
        mock_reply_error(r, 400, NULL, NULL, "anthropic-version: header is required", NULL);
        return;
    }
    body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(body)) {
        char msg[400];

        snprintf(msg, sizeof(msg),
                 "We could not parse the JSON body of your request (sluice-mock: %s)",
                 body ? "the body must be a JSON object" : jerr.text);
        json_decref(body);
        mock_reply_error(r, 400, NULL, NULL, msg, NULL);
        return;
    }
    model = rt->azure ? rt->deployment : json_string_value(json_object_get(body, "model"));
    if (model == NULL) {
        json_decref(body);
        mock_reply_error(r, 400, NULL, "model", "you must provide a model parameter", NULL);
        return;
    }
    mock_ep_bump(ep.by_model, model);

    if (mock_ctl_from_request(body, model, ep.defaults, &ctl, &err) < 0 ||
        mock_ctl_gate(ep.fail_counts, MOCK_EP_MAX_FAIL_KEYS, &ctl, &err) < 0)
        goto error;
    r->delay_ms = ctl.first_byte_ms >= 0 ? ctl.first_byte_ms : ep.opt.first_byte_ms;
    if (mock_ep_inject(r, req, model, &ctl))
        goto done;
    if (ctl.fault != MOCK_FAULT_NONE)
        ep.faults++;
    if (mock_ep_answer(r, req, rt, body, model, &ctl, &err) == 0)
        goto done;
error:
    mock_ep_log(req, model, err.message);
    mock_reply_error(r, err.status, err.code, err.param, err.message, NULL);
done:
    mock_ctl_free(&ctl);
    json_decref(body);
}

void mock_ep_request_cb(struct mock_reply *r, const struct mock_http_req *req, void *arg)
{
    struct mock_route rt;

    UNUSED(arg);
    mock_ep_route(req, &rt);
    r->anthropic = rt.ep == MOCK_EP_MESSAGES || rt.ep == MOCK_EP_COUNT_TOKENS;
    switch (rt.ep) {
    case MOCK_EP_MESSAGES:
    case MOCK_EP_COUNT_TOKENS:
    case MOCK_EP_CHAT:
    case MOCK_EP_COMPLETIONS:
    case MOCK_EP_EMBEDDINGS:
        if (!mock_ep_method_is(req, "POST"))
            mock_reply_error(r, 405, NULL, NULL, "sluice-mock: use POST on this path",
                             "Allow: POST\r\n");
        else
            mock_ep_api(r, req, &rt);
        break;
    case MOCK_EP_MODELS:
    case MOCK_EP_MODEL:
        if (!mock_ep_method_is(req, "GET"))
            mock_reply_error(r, 405, NULL, NULL, "sluice-mock: use GET on this path",
                             "Allow: GET\r\n");
        else if (!mock_ep_auth_ok(req, 0, 0))
            mock_reply_error(r, 401, "invalid_api_key", NULL,
                             "Incorrect API key provided (sluice-mock).", NULL);
        else
            mock_ep_models(r, &rt);
        break;
    case MOCK_EP_STATS:
        if (!mock_ep_method_is(req, "GET"))
            mock_reply_error(r, 405, NULL, NULL, "sluice-mock: use GET on this path",
                             "Allow: GET\r\n");
        else
            mock_ep_stats(r);
        break;
    case MOCK_EP_RESET:
        if (!mock_ep_method_is(req, "POST")) {
            mock_reply_error(r, 405, NULL, NULL, "sluice-mock: use POST on this path",
                             "Allow: POST\r\n");
        } else {
            mock_ep_stats_reset();
            mock_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
        }
        break;
    case MOCK_EP_HEALTH:
        mock_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
        break;
    case MOCK_EP_NONE: {
        char *p = mock_ep_printable(req->path, req->path_len > 200 ? 200 : req->path_len);
        char *m = mock_ep_printable(req->method, req->method_len);
        char msg[300];

        snprintf(msg, sizeof(msg), "Invalid URL (%s %s)", m, p);
        mock_reply_error(r, 404, NULL, NULL, msg, NULL);
        free(p);
        free(m);
        break;
    }
    }
    free(rt.deployment);
    free(rt.model_id);
}

void mock_ep_init(const struct mock_ep_opts *o, const struct mock_replay *replay, json_t *defaults)
{
    ep.opt = *o;
    ep.replay = replay;
    ep.defaults = defaults ? defaults : json_object();
    ep.models = json_array();
    mock_ep_models_add("mock-small");
    mock_ep_models_add("mock-large");
    for (size_t i = 0; replay && i < mock_replay_nmodels(replay); i++)
        mock_ep_models_add(mock_replay_model(replay, i));
    ep.fail_counts = json_object();
    ep.by_model = json_object();
    ep.by_path = json_object();
}

void mock_ep_free(void)
{
    json_decref(ep.models);
    json_decref(ep.fail_counts);
    json_decref(ep.defaults);
    json_decref(ep.by_model);
    json_decref(ep.by_path);
    memset(&ep, 0, sizeof(ep));
}
