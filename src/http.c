/* http.c - the HTTP front on libmicrohttpd; see http.h. */
#include "http.h"
#include "admin.h"
#include "api_common.h"
#include "breaker.h"
#include "cache.h"
#include "cache_mem.h"
#include "limits.h"
#include "metrics.h"
#include "redis.h"
#include "phase.h"
#include "config.h"
#include "caps.h"
#include "cost.h"
#include "deadline.h"
#include "dialect.h"
#include "exchange.h"
#include "log.h"
#include "loop.h"
#include "mhd_errors.h"
#include "otel.h"
#include "stats.h"
#include "ui.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes MHD takes from a stream per read, for an HTTP/1.0 client: without
 * chunks, libmicrohttpd copies the stream through a block of this size,
 * allocated with each streamed response. An HTTP/1.1 client gets chunks,
 * which libmicrohttpd 0.9.75 has the reader write straight into the
 * connection's own buffer (its pool); the block is then never used, so it
 * gets the least size, not 2 KiB per open stream for nothing. */
#define STREAM_BLOCK (2u * 1024u)
#define STREAM_BLOCK_CHUNKED 16u
/* Per-connection memory of libmicrohttpd holds the request line and
 * headers, the body read buffer and the response headers: max_header_bytes
 * plus this much. It zeroes the whole pool between keep-alive requests, so
 * every byte of it is resident: it is the largest per-connection cost, and
 * 5,000 open streams pay it 5,000 times. */
#define CONNECTION_MEMORY_EXTRA (2u * 1024u)

enum phase {
    PH_BODY,    /* reading the request body */
    PH_WAIT,    /* handed to the loop, connection suspended */
    PH_ANSWERED /* a response is queued */
};

static struct MHD_Daemon *daemon_;
static struct MHD_Daemon *admin_daemon;
static int bound_port;
static int admin_port;
static int admin_marker; /* access_cb's cls on the admin listener */

static struct loop *loop_;       /* http_start's: where requests are handed */
static http_reload_fn reload_fn; /* http_start's: POST /admin/reload */
static long front_inflight;      /* requests alive, any path (atomic) */
static long front_api_inflight;  /* of them, /v1 API requests (atomic) */
static int front_draining;       /* http_set_draining (atomic) */
static uint64_t started_us;      /* http_start's: the dashboard's uptime counts from it */

/* ---- responses ---- */

/* Dump an error object (taken) as compact JSON, malloc'd. */
static char *dump_error(json_t *root, size_t *len)
{
    char *s = json_dumps(root, JSON_COMPACT);

    json_decref(root);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    if (len)
        *len = strlen(s);
    return s;
}

char *http_error_json(const struct api_error *e, size_t *len)
{
    json_t *inner = json_object(), *root = json_object();

    json_object_set_new(inner, "message", json_string(e->message));
    json_object_set_new(inner, "type", json_string(e->type ? e->type : "api_error"));
    json_object_set_new(inner, "param", e->param ? json_string(e->param) : json_null());
    json_object_set_new(inner, "code", e->code ? json_string(e->code) : json_null());
    json_object_set_new(root, "error", inner);
    return dump_error(root, len);
}

char *http_error_body(enum dialect d, const struct api_error *e, const char *request_id,
                      int *status, size_t *len)
{
    *status = e->status;
    if (d != DIALECT_MESSAGES)
        return http_error_json(e, len);
    if (*status == 503)
        *status = 529; /* Anthropic's "overloaded": its clients back off and retry */
    return dump_error(json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type",
                                api_anthropic_error_type(*status), "message", e->message, "request_id",
                                request_id),
                      len);
}

static void add_header(struct MHD_Response *r, const char *name, const char *value)
{
    if (value && MHD_add_response_header(r, name, value) != MHD_YES)
        log_msg(LOG_WARN, "could not add response header %s", name);
}

/* x-ratelimit-limit-KIND, -remaining-KIND and -reset-KIND, when the key has
 * that limit. */
static void add_limit_kind(struct MHD_Response *r, const char *kind, long limit, long remaining,
                           const char *reset)
{
    char name[48], v[32];

    if (limit <= 0)
        return;
    snprintf(name, sizeof(name), "x-ratelimit-limit-%s", kind);
    snprintf(v, sizeof(v), "%ld", limit);
    add_header(r, name, v);
    snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", kind);
    snprintf(v, sizeof(v), "%ld", remaining);
    add_header(r, name, v);
    snprintf(name, sizeof(name), "x-ratelimit-reset-%s", kind);
    add_header(r, name, reset);
}

/* OpenAI's x-ratelimit-* headers, for the limits the key has. */
static void add_limit_headers(struct MHD_Response *r, const struct limit_info *li)
{
    char reset[32];

    snprintf(reset, sizeof(reset), "%lds", (li->reset_ms + 999) / 1000);
    add_limit_kind(r, "requests", li->limit_requests, li->remaining_requests, reset);
    add_limit_kind(r, "tokens", li->limit_tokens, li->remaining_tokens, reset);
}

/* Headers every API response carries. Reads meta, so only once the loop is
 * done with it (or, for streams, with the fields set before the commit). */
static void add_meta_headers(struct MHD_Response *r, const struct exchange *ex, int with_cost)
{
    char cost[48];

    add_header(r, "x-request-id", ex->request_id);
    if (ex->dialect == DIALECT_MESSAGES)
        add_header(r, "request-id", ex->request_id); /* where Anthropic's SDKs read it */
    if (ex->route)
        add_header(r, "x-sluice-route", ex->route->name);
    add_header(r, "x-sluice-model", ex->meta.model);
    add_header(r, "x-sluice-cache", cache_status_name(ex->meta.cache));
    if (ex->cache_plan.store && ex->meta.cache != CACHE_NA)
        add_header(r, "x-sluice-cache-key", ex->cache_plan.key);
    if (ex->meta.cache == CACHE_HIT) {
        cost_format(ex->meta.saved_cost, cost, sizeof(cost));
        add_header(r, "x-sluice-saved-cost", cost);
        with_cost = 1; /* known before the first byte: it is 0 */
    }
    if (with_cost) {
        cost_format(ex->meta.cost_usd, cost, sizeof(cost));
        add_header(r, "x-sluice-cost", cost);
        if (ex->meta.stages.len)
            add_header(r, "x-sluice-stages", ex->meta.stages.data);
    }
    if (ex->key)
        add_limit_headers(r, &ex->limit);
}

static enum MHD_Result queue(struct exchange *ex, struct MHD_Connection *conn, int status,
                             struct MHD_Response *r)
{
    enum MHD_Result ret;

    /* Draining: close each connection after its response, so a client's
     * keep-alive pool cannot hold the drain open with new requests. */
    if (__atomic_load_n(&front_draining, __ATOMIC_RELAXED))
        add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    ex->client_status = status;
    ex->phase = PH_ANSWERED;
    return ret;
}

/* Queue a body we own (malloc'd). */
static enum MHD_Result queue_body(struct exchange *ex, struct MHD_Connection *conn, int status,
                                  char *body, size_t len, const char *ctype, int with_meta)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, free);

    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    add_header(r, "Content-Type", ctype);
    if (with_meta) {
        add_meta_headers(r, ex, 1);
    } else {
        add_header(r, "x-request-id", ex->request_id);
        if (ex->dialect == DIALECT_MESSAGES)
            add_header(r, "request-id", ex->request_id);
    }
    if (ex->retry_after_s > 0) {
        char ra[24];

        snprintf(ra, sizeof(ra), "%d", ex->retry_after_s);
        add_header(r, "Retry-After", ra);
    }
    return queue(ex, conn, status, r);
}

static enum MHD_Result queue_error(struct exchange *ex, struct MHD_Connection *conn,
                                   const struct api_error *e)
{
    size_t len;
    int status;
    char *body = http_error_body(ex->dialect, e, ex->request_id, &status, &len);

    if (ex->err.status == 0)
        ex->err = *e; /* for the log line */
    return queue_body(ex, conn, status, body, len, "application/json", ex->route != NULL);
}

static enum MHD_Result queue_json(struct exchange *ex, struct MHD_Connection *conn, int status,
                                  json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    return queue_body(ex, conn, status, s, strlen(s), "application/json", 0);
}

/* ---- streaming ---- */

/* Give the kernel back the whole pages of dst[used..max): the part of the
 * buffer a content reader may write (it is ours for the call) that it did
 * not. For a chunked stream dst is the connection's buffer in
 * libmicrohttpd's pool, which has zeroed that space by then (0.9.75 zeroes
 * pool space it takes back), so it is resident, and only ever sends what
 * the reader wrote: once the pages are given back, an open stream no longer
 * pays for the part of the pool it never uses (about 4 KiB of the 10 KiB of
 * a default pool). MADV_DONTNEED leaves zeros, as if we had written them.
 * A buffer without a whole page in it (HTTP/1.0's STREAM_BLOCK) is left. */
static void stream_release_tail(char *dst, size_t used, size_t max)
{
    static uintptr_t page;
    uintptr_t from, to;

    if (page == 0)
        page = (uintptr_t)sysconf(_SC_PAGESIZE);
    from = ((uintptr_t)dst + used + page - 1) & ~(page - 1);
    to = ((uintptr_t)dst + max) & ~(page - 1);
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_DONTNEED);
}

/* MHD wants bytes for the client. Copy what the loop left in out; when there
 * is none yet, suspend (returning 0 without suspending spins the CPU in
 * libmicrohttpd 0.9.75) and let the loop resume us. The first bytes of a
 * stream also give back the unused pages of dst (stream_release_tail): the
 * buffer stays where it is for the whole stream, so once is enough. */
static ssize_t stream_reader_cb(void *cls, uint64_t pos, char *dst, size_t max)
{
    struct exchange *ex = cls;
    ssize_t n;

    pthread_mutex_lock(&ex->mu);
    if (ex->out.len == ex->out_off && ex->state == EX_DONE && ex->err.status && !ex->err_sent) {
        /* The stream failed after it began: one final error event. */
        size_t len;
        int status;
        char *json = http_error_body(ex->dialect, &ex->err, ex->request_id, &status, &len);

        ex->err_sent = 1;
        buf_reset(&ex->out);
        ex->out_off = 0;
        if (ex->dx) {
            /* The dialect's own failure events: the loop is done with the
             * stream's state. */
            ex->out.max = DIALECT_OUT_MAX;
            if (dialect_stream_fail(ex->dx, &ex->err, json, &ex->out) < 0)
                log_msg(LOG_WARN, "request %s: the failed stream's last events were over %u bytes",
                        ex->request_id, DIALECT_OUT_MAX);
        } else {
            ex->out.max = len + 8;
            if (buf_printf(&ex->out, "data: %s\n\n", json) < 0)
                sl_assert(!"the event fits the cap made for it");
        }
        free(json);
    }
    if (ex->out.len > ex->out_off) {
        n = (ssize_t)ex_stream_take_locked(ex, dst, max);
        pthread_mutex_unlock(&ex->mu);
        if (pos == 0)
            stream_release_tail(dst, (size_t)n, max);
        return n;
    }
    if (ex->state == EX_DONE) {
        pthread_mutex_unlock(&ex->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    ex->suspended = 1;
    MHD_suspend_connection(ex->conn);
    pthread_mutex_unlock(&ex->mu);
    return 0;
}

static void stream_free_cb(void *cls)
{
    ex_unref(cls);
}

/* A whole answer in the client's dialect: a chat.completion becomes its
 * answer, an upstream's error (in OpenAI's shape) its error. *body is
 * replaced. */
static void translate_answer(struct exchange *ex, int *status, char **body, size_t *len)
{
    struct api_error e;

    if (*status == 200 && dialect_answer(ex->dx, body, len) == 0)
        return;
    if (*status == 200)
        api_error_set(&e, 502, "api_error", "upstream_bad_response", NULL, "%s",
                      "The upstream's answer could not be read.");
    else if (ex->dialect == DIALECT_RESPONSES)
        return; /* OpenAI's error shape is its own */
    else
        dialect_error_of(*body, *len, *status, &e);
    free(*body);
    *body = http_error_body(ex->dialect, &e, ex->request_id, status, len);
}

/* The loop has answered (ex->state is not EX_PENDING): queue the response.
 * version is the request's HTTP version. Called with ex->mu held. */
static enum MHD_Result queue_answer(struct exchange *ex, struct MHD_Connection *conn,
                                    const char *version)
{
    struct MHD_Response *r;
    char *body;
    size_t len;
    int status;

    if (ex->streamed) {
        size_t block = strcmp(version, MHD_HTTP_VERSION_1_1) == 0 ? STREAM_BLOCK_CHUNKED
                                                                   : STREAM_BLOCK;

        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, stream_reader_cb,
                                              ex_ref(ex), stream_free_cb);
        if (r == NULL)
            return MHD_NO;
        add_header(r, "Content-Type", "text/event-stream");
        add_header(r, "Cache-Control", "no-cache");
        add_header(r, "X-Accel-Buffering", "no");
        add_meta_headers(r, ex, ex->state == EX_DONE && ex->err.status == 0);
        return queue(ex, conn, 200, r);
    }
    sl_assert(ex->state == EX_DONE);
    if (ex->err.status) {
        body = http_error_body(ex->dialect, &ex->err, ex->request_id, &status, &len);
        return queue_body(ex, conn, status, body, len, "application/json", 1);
    }
    body = buf_steal(&ex->out, &len);
    ex->out_off = 0;
    status = ex->status;
    if (ex->dx)
        translate_answer(ex, &status, &body, &len);
    return queue_body(ex, conn, status, body, len, "application/json", 1);
}

/* ---- loop tasks ---- */

static void start_task_cb(struct loop *loop, void *arg)
{
    phase_start(loop, arg);
}

static void usage_task_cb(struct loop *loop, void *arg)
{
    limits_usage(loop, arg);
}

/* The cache purged (or could not): {"purged": N}, or a 502. Drops the
 * purge's reference to ex. */
static void purge_done_cb(void *arg, long count, const char *err)
{
    struct exchange *ex = arg;

    if (err) {
        struct api_error e;

        api_error_set(&e, 502, "api_error", "cache_purge_failed", NULL, "Cache purge failed: %s",
                      err);
        ex_fail(ex, &e);
    } else {
        char *body = xasprintf("{\"purged\":%ld}", count);

        ex_respond(ex, 200, body, strlen(body));
    }
    ex_unref(ex);
}

/* POST /admin/cache/purge on the loop: by key or by namespace (exactly one,
 * checked by cache_purge_check), on the cache the request holds (the
 * current one when it came in). Takes over the task's reference to ex. */
static void purge_task_cb(struct loop *loop, void *arg)
{
    struct exchange *ex = arg;
    json_t *key = json_object_get(ex->ri.body, "key"),
           *ns = json_object_get(ex->ri.body, "namespace");

    UNUSED(loop);
    cache_purge(ex->cache, json_string_value(key), json_string_value(ns), purge_done_cb, ex);
}

static void cancel_task_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    phase_cancel(arg);
    ex_unref(arg);
}

/* ---- request handling ---- */

/* A client-given request id is kept when it is short and printable; else we
 * make one. */
static void set_request_id(struct exchange *ex, struct MHD_Connection *conn)
{
    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-request-id");
    unsigned char rnd[12];
    uint64_t r1 = random_u64(), r2 = random_u64();
    size_t i, n;

    if (id && (n = strlen(id)) > 0 && n < sizeof(ex->request_id)) {
        for (i = 0; i < n; i++)
            if (id[i] <= 0x20 || id[i] >= 0x7f)
                break;
        if (i == n) {
            memcpy(ex->request_id, id, n + 1);
            return;
        }
    }
    memcpy(rnd, &r1, 8);
    memcpy(rnd + 8, &r2, 4);
    memcpy(ex->request_id, "req_", 4);
    hex_encode(rnd, sizeof(rnd), ex->request_id + 4);
}

/* With client keys configured, who is calling? Sets ex->key, or queues a
 * 401 and returns 0. */
static int authenticate(struct exchange *ex, struct MHD_Connection *conn, const struct config *cfg,
                        enum MHD_Result *r)
{
    const char *auth, *xkey;
    unsigned char sha[32];
    struct api_error e;

    if (cfg->nkeys == 0)
        return 1;
    auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    xkey = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        sha256(auth + 7, strlen(auth + 7), sha);
        ex->key = config_key_by_hash(cfg, sha);
    } else if (xkey) {
        /* Anthropic's clients send their key this way. */
        sha256(xkey, strlen(xkey), sha);
        ex->key = config_key_by_hash(cfg, sha);
    }
    if (ex->key)
        return 1;
    api_error_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL, "%s",
                  auth || xkey ? "Incorrect API key provided."
                               : "You didn't provide an API key: send "
                                 "Authorization: Bearer <key> (or x-api-key: <key>).");
    *r = queue_error(ex, conn, &e);
    return 0;
}

static json_t *model_object(const char *id, const char *owner)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)1700000000, "owned_by", owner);
}

static json_t *route_object(const struct route *rt)
{
    return model_object(rt->name,
                        rt->implicit ? rt->stages[0].models[0]->provider->name : "sluice");
}

static enum MHD_Result handle_models(struct exchange *ex, struct MHD_Connection *conn,
                                     const char *id)
{
    struct config *cfg = config_current();
    struct api_error e;
    enum MHD_Result r;

    if (!authenticate(ex, conn, cfg, &r)) {
        config_unref(cfg);
        return r;
    }
    if (id == NULL) {
        json_t *data = json_array();
        size_t i;

        /* A key sees the routes it may use. */
        for (i = 0; i < cfg->nroutes; i++)
            if (ex->key == NULL || config_key_allows(ex->key, &cfg->routes[i]))
                json_array_append_new(data, route_object(&cfg->routes[i]));
        r = queue_json(ex, conn, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
    } else {
        const struct route *rt = config_route(cfg, id);

        if (rt && (ex->key == NULL || config_key_allows(ex->key, rt))) {
            r = queue_json(ex, conn, 200, route_object(rt));
        } else {
            api_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                          "The model '%.*s' does not exist.", utf8_prec(id, 128), id);
            r = queue_error(ex, conn, &e);
        }
    }
    config_unref(cfg);
    return r;
}

/* Hand ex to the loop to run task, and wait for its answer. */
static enum MHD_Result hand_off(struct exchange *ex, struct MHD_Connection *conn, loop_task_cb task)
{
    ex->phase = PH_WAIT;
    pthread_mutex_lock(&ex->mu);
    ex->suspended = 1;
    MHD_suspend_connection(conn);
    pthread_mutex_unlock(&ex->mu);
    loop_post(loop_, task, ex_ref(ex));
    return MHD_YES;
}

/* Does a provider of the route forward the client's own credentials? */
static int route_passes_auth(const struct route *rt)
{
    for (size_t i = 0; i < rt->nstages; i++)
        for (size_t j = 0; j < rt->stages[i].nmodels; j++)
            if (rt->stages[i].models[j]->provider->passthrough_auth)
                return 1;
    return 0;
}

/* A header value we may forward: no CR, LF or other control character
 * (header injection). */
static int header_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t')
            return 0;
    return 1;
}

static int key_limited(const struct client_key *k)
{
    return k && (k->rpm > 0 || k->tpm > 0 || k->budget_usd > 0);
}

/* With the memory backend a worker serves a hit itself, without a hop to
 * the loop. Returns 1 if it did (the response is queued). */
static int serve_memory_hit(struct exchange *ex, struct MHD_Connection *conn)
{
    struct cache_mem *mem = cache_memory(ex->cache);
    struct cache_entry e;
    char *raw, *out;
    size_t len, outlen;

    if (mem == NULL || (raw = cache_mem_get(mem, ex->cache_plan.key, &len)) == NULL)
        return 0;
    if (cache_entry_decode(raw, len, &e) < 0)
        return 0;
    if (cache_entry_render(&e, &ex->ri, &out, &outlen) < 0) {
        cache_entry_free(&e);
        return 0;
    }
    if (ex->dx && (ex->ri.stream ? dialect_answer_sse(ex->dx, &out, &outlen)
                                 : dialect_answer(ex->dx, &out, &outlen)) < 0) {
        free(out);
        cache_entry_free(&e);
        return 0;
    }
    ex->meta.cache = CACHE_HIT;
    ex_set_cached_meta(ex, e.model, e.provider, e.stages, e.cost);
    cache_entry_free(&e);
    cache_count_hit(ex->cache);
    ex->meta.ttft_us = now_us() - ex->t_start_us;
    queue_body(ex, conn, 200, out, outlen, ex->ri.stream ? "text/event-stream" : "application/json",
               1);
    return 1;
}

/* Which API a path speaks: /v1/responses, /v1/messages (and below it,
 * so that its 404s and 405s come in Anthropic's shape), or chat. */
static enum dialect url_dialect(const char *url, int *count_only)
{
    if (strncmp(url, "/v1/", 4) == 0)
        url += 3;
    *count_only = strcmp(url, "/messages/count_tokens") == 0;
    if (strcmp(url, "/responses") == 0)
        return DIALECT_RESPONSES;
    if (strncmp(url, "/messages", 9) == 0 && (url[9] == '\0' || url[9] == '/'))
        return DIALECT_MESSAGES;
    return DIALECT_CHAT;
}

/* A Responses or Messages body becomes the chat body that everything
 * after reads, and that goes upstream. */
static int translate_request(struct exchange *ex, struct api_error *e)
{
    int count_only;
    char *chat;
    size_t len;
    enum dialect d = url_dialect(ex->path, &count_only);

    ex->dx = dialect_new(d, count_only);
    if (dialect_request(ex->dx, ex->in.data ? ex->in.data : "", ex->in.len,
                        ex->in.max + DIALECT_BODY_SLACK, &chat, &len, e) < 0)
        return -1;
    buf_free(&ex->in);
    buf_init(&ex->in, len);
    if (buf_append(&ex->in, chat, len) < 0)
        sl_panic("translate_request: a buffer of %zu bytes took less", len);
    free(chat);
    return 0;
}

/* The body is complete: validate, resolve the route and hand off. */
static enum MHD_Result handle_api(struct exchange *ex, struct MHD_Connection *conn,
                                  enum endpoint ep)
{
    struct api_error e = {0};
    enum MHD_Result r;

    if (ex->in_too_big) {
        api_error_set(&e, 413, "invalid_request_error", "request_too_large", NULL,
                      "The request body is larger than the limit of %zu bytes.", ex->in.max);
        return queue_error(ex, conn, &e);
    }
    /* Who is asking comes before what is asked (a 401 before a 400). */
    ex->cfg = config_current();
    if (ex->cfg->otel.endpoint) {
        /* A tracestate means nothing without a traceparent: not looked up. */
        const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");

        otel_request_begin(
            ex, tp, tp ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "tracestate") : NULL);
    }
    if (!authenticate(ex, conn, ex->cfg, &r))
        return r;
    if (ex->dialect != DIALECT_CHAT && translate_request(ex, &e) < 0)
        return queue_error(ex, conn, &e);
    if (request_parse(ep, ex->in.data ? ex->in.data : "", ex->in.len, &ex->ri, &e) < 0)
        return queue_error(ex, conn, &e);
    /* ex->in is kept: the upstream call sends it as the client wrote it
     * (until a stream's answer begins: ex_release_request). */
    ex->cache = cache_current();
    ex->route = config_route(ex->cfg, ex->ri.model);
    if (ex->route == NULL) {
        api_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.*s' does not exist or you do not have access to it.",
                      utf8_prec(ex->ri.model, 128), ex->ri.model);
        return queue_error(ex, conn, &e);
    }
    if (ex->key && !config_key_allows(ex->key, ex->route)) {
        api_error_set(&e, 403, "permission_error", "route_not_allowed", "model",
                      "Key '%.*s' may not use '%.*s'.", utf8_prec(ex->key->name, 64), ex->key->name,
                      utf8_prec(ex->route->name, 128), ex->route->name);
        return queue_error(ex, conn, &e);
    }
    if (ex->dx && dialect_count_only(ex->dx))
        return queue_json(
            ex, conn, 200,
            json_pack("{s:I}", "input_tokens", (json_int_t)dialect_input_tokens(ex->dx)));
    if (route_passes_auth(ex->route)) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *xkey = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");

        if ((auth && !header_value_ok(auth)) || (xkey && !header_value_ok(xkey))) {
            api_error_set(&e, 400, "invalid_request_error", "invalid_header", NULL, "%s",
                          "The Authorization or x-api-key header holds control characters.");
            return queue_error(ex, conn, &e);
        }
        /* An Anthropic client's x-api-key goes on as the bearer token. */
        ex->client_auth = auth ? xstrdup(auth) : xkey ? xasprintf("Bearer %s", xkey) : NULL;
    }
    if (cache_plan(ex->cfg, ex->route, &ex->ri, ex->key ? ex->key->name : NULL,
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-sluice-cache-namespace"),
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cache-Control"),
                   MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-sluice-cache-ttl"),
                   &ex->cache_plan, &e) < 0)
        return queue_error(ex, conn, &e);
    /* A worker serves a memory hit itself, but a limited key's requests go
     * through the loop, where its counters are. */
    if (ex->cache_plan.lookup && !key_limited(ex->key) && serve_memory_hit(ex, conn))
        return MHD_YES;
    return hand_off(ex, conn, start_task_cb);
}

static int path_is(const char *url, const char *path)
{
    /* Clients use base URLs with and without /v1; accept both. */
    if (strncmp(url, "/v1/", 4) == 0)
        url += 3;
    return strcmp(url, path) == 0;
}

static enum MHD_Result method_not_allowed(struct exchange *ex, struct MHD_Connection *conn,
                                          const char *allow)
{
    struct api_error e;

    api_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                  "Method %s is not allowed here; use %s.", ex->method, allow);
    return queue_error(ex, conn, &e);
}

/* With client keys, /metrics on the public listener names every key and
 * its spend: it needs the admin key there. The admin listener, private by
 * deployment, serves it to anyone, as Prometheus expects. Returns 1, or 0
 * with a 401 queued. */
static int metrics_allowed(struct exchange *ex, struct MHD_Connection *conn, enum MHD_Result *r)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    struct config *cfg = config_current();
    int ok = cfg->nkeys == 0 ||
             (auth && strncasecmp(auth, "Bearer ", 7) == 0 && admin_key_ok(cfg, auth + 7));
    struct api_error e;

    config_unref(cfg);
    if (ok)
        return 1;
    api_error_set(&e, 401, "authentication_error", "invalid_admin_key", NULL, "%s",
                  "With client keys configured, /metrics here needs the admin key "
                  "(Authorization: Bearer <key>); or scrape the admin listener.");
    *r = queue_error(ex, conn, &e);
    return 0;
}

/* Serve a GET path. Returns 1 with *r set, or 0 when url is no GET path. */
static int handle_get(struct exchange *ex, struct MHD_Connection *conn, const char *url, int admin,
                      enum MHD_Result *r)
{
    if (strcmp(url, "/healthz") == 0) {
        *r = queue_json(ex, conn, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(url, "/readyz") == 0) {
        int draining = __atomic_load_n(&front_draining, __ATOMIC_RELAXED);

        /* Ready while not draining; the breakers are details: one open
         * provider does not make the gateway unready (routes skip it). */
        json_t *o = json_pack("{s:s, s:o, s:I}", "status", draining ? "draining" : "ready",
                              "providers", breaker_report(), "inflight",
                              (json_int_t)__atomic_load_n(&front_inflight, __ATOMIC_RELAXED));
        json_t *redis = redis_report();

        /* Redis is a detail too: the gateway fails open without it. */
        if (redis)
            json_object_set_new(o, "redis", redis);
        *r = queue_json(ex, conn, draining ? 503 : 200, o);
    } else if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *text;

        if (!admin && !metrics_allowed(ex, conn, r))
            return 1;
        text = metrics_render(&len);
        *r = queue_body(ex, conn, 200, text, len, "text/plain; version=0.0.4; charset=utf-8", 0);
    } else if (path_is(url, "/models")) {
        *r = handle_models(ex, conn, NULL);
    } else if (strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
        *r = handle_models(ex, conn, url + 11);
    } else if (strncmp(url, "/models/", 8) == 0 && url[8]) {
        *r = handle_models(ex, conn, url + 8);
    } else {
        return 0;
    }
    return 1;
}

static int api_endpoint(const char *url, enum endpoint *ep)
{
    if (path_is(url, "/chat/completions"))
        *ep = EP_CHAT;
    else if (path_is(url, "/completions"))
        *ep = EP_COMPLETIONS;
    else if (path_is(url, "/embeddings"))
        *ep = EP_EMBEDDINGS;
    else if (path_is(url, "/responses") || path_is(url, "/messages") ||
             path_is(url, "/messages/count_tokens"))
        *ep = EP_CHAT; /* translated into chat completions (dialect.h) */
    else
        return 0;
    return 1;
}

/* The dashboard (/ui and its assets) and its data (/admin/stats): behind
 * the admin key when one is set. A browser cannot send a bearer token with
 * a page load, so a 401 asks for Basic credentials (any user name, the key
 * as the password) and the browser sends them with every request after. */
static enum MHD_Result handle_dashboard(struct exchange *ex, struct MHD_Connection *conn,
                                        const char *url, const char *auth)
{
    const struct ui_asset *a;
    struct MHD_Response *r;

    if (ex->cfg->admin.key && !admin_auth_ok(ex->cfg, auth)) {
        struct api_error e;
        size_t len;
        char *body;

        api_error_set(&e, 401, "authentication_error", "invalid_admin_key", NULL, "%s",
                      "The dashboard needs the admin key: as a bearer token, or as the "
                      "password when the browser asks.");
        ex->err = e;
        body = http_error_json(&e, &len);
        r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
        if (r == NULL) {
            free(body);
            return MHD_NO;
        }
        add_header(r, "Content-Type", "application/json");
        add_header(r, "x-request-id", ex->request_id);
        add_header(r, "WWW-Authenticate", "Basic realm=\"sluice admin\", charset=\"UTF-8\"");
        return queue(ex, conn, 401, r);
    }
    if (strcmp(url, "/admin/stats") == 0) {
        json_t *j = stats_json(ex->cfg, started_us);
        char *s = json_dumps(j, JSON_COMPACT);

        json_decref(j);
        if (s == NULL)
            sl_panic("json_dumps: out of memory");
        return queue_body(ex, conn, 200, s, strlen(s), "application/json", 0);
    }
    a = ui_find(url);
    r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    add_header(r, "Content-Type", a->type);
    add_header(r, "Cache-Control", "no-cache");
    add_header(r, "X-Content-Type-Options", "nosniff");
    add_header(r, "Content-Security-Policy",
               "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
    return queue(ex, conn, 200, r);
}

/* The admin API, on its own listener: authenticated by the admin key from
 * the environment variable admin.key_env names. */
static enum MHD_Result handle_admin(struct exchange *ex, struct MHD_Connection *conn,
                                    const char *url, int is_post)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    int is_get = strcmp(ex->method, "GET") == 0;
    struct api_error e;
    json_t *key, *ns;
    const char *bad;
    char msg[4096];

    if (strcmp(url, "/metrics") == 0 && is_get) {
        /* Also here, unauthenticated like Prometheus expects: a sidecar's
         * public listener is on loopback, out of a scraper's reach. */
        enum MHD_Result r;

        if (handle_get(ex, conn, url, 1, &r))
            return r;
    }
    ex->cfg = config_current();
    if (is_get && (strcmp(url, "/admin/stats") == 0 || ui_find(url)))
        return handle_dashboard(ex, conn, url, auth);
    if (ex->cfg->admin.key == NULL) {
        api_error_set(&e, 403, "permission_error", "admin_disabled", NULL,
                      "The admin API is off: set %.64s to turn it on.", ex->cfg->admin.key_env);
        return queue_error(ex, conn, &e);
    }
    if (!admin_auth_ok(ex->cfg, auth)) {
        api_error_set(&e, 401, "authentication_error", "invalid_admin_key", NULL, "%s",
                      "A valid admin key is required (Authorization: Bearer <key>).");
        return queue_error(ex, conn, &e);
    }
    if (strcmp(url, "/admin/config") == 0) {
        if (!is_get)
            return method_not_allowed(ex, conn, "GET");
        return queue_json(ex, conn, 200, admin_config_json(ex->cfg));
    }
    if (strcmp(url, "/admin/reload") == 0) {
        if (!is_post)
            return method_not_allowed(ex, conn, "POST");
        /* The admin listener has its own thread: a reload may block it. */
        if (reload_fn(msg, sizeof(msg)) < 0) {
            api_error_set(&e, 400, "invalid_request_error", "invalid_config", NULL,
                          "Reload refused, the old config stays: %s", msg);
            return queue_error(ex, conn, &e);
        }
        return queue_json(ex, conn, 200, json_pack("{s:b, s:s}", "reloaded", 1, "path", msg));
    }
    if (strcmp(url, "/admin/usage") == 0) {
        if (!is_get)
            return method_not_allowed(ex, conn, "GET");
        ex->cache = cache_current();
        return hand_off(ex, conn, usage_task_cb);
    }
    if (strcmp(url, "/admin/cache/purge") == 0) {
        if (!is_post)
            return method_not_allowed(ex, conn, "POST");
        ex->ri.body = json_loadb(ex->in.data ? ex->in.data : "", ex->in.len, 0, NULL);
        key = json_object_get(ex->ri.body, "key");
        ns = json_object_get(ex->ri.body, "namespace");
        if (!json_is_object(ex->ri.body) || (json_is_string(key) == json_is_string(ns))) {
            api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%s",
                          "Send {\"key\": \"sluice:c1:...\"} or {\"namespace\": \"...\"}.");
            return queue_error(ex, conn, &e);
        }
        bad = cache_purge_check(json_string_value(key), json_string_value(ns));
        if (bad) {
            api_error_set(&e, 400, "invalid_request_error", "invalid_cache_purge", NULL, "%s", bad);
            return queue_error(ex, conn, &e);
        }
        ex->cache = cache_current();
        return hand_off(ex, conn, purge_task_cb);
    }
    api_error_set(&e, 404, "invalid_request_error", "not_found", NULL, "Invalid URL (%.16s %.*s).",
                  ex->method, utf8_prec(url, 128), url);
    return queue_error(ex, conn, &e);
}

/* Every request but the API POSTs, once its (empty) body is read. */
static enum MHD_Result handle_other(struct exchange *ex, struct MHD_Connection *conn,
                                    const char *url, int is_get, int is_api)
{
    struct api_error e;
    enum MHD_Result r;

    if (is_get && handle_get(ex, conn, url, 0, &r))
        return r;
    if (is_api || path_is(url, "/models") || strncmp(url, "/v1/models/", 11) == 0)
        return method_not_allowed(ex, conn, is_api ? "POST" : "GET");
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
        return method_not_allowed(ex, conn, "GET");
    api_error_set(&e, 404, "invalid_request_error", "not_found", NULL, "Invalid URL (%.16s %.*s).",
                  ex->method, utf8_prec(url, 128), url);
    return queue_error(ex, conn, &e);
}

/* A Content-Length (digits only: libmicrohttpd refuses anything else) that
 * announces more than max bytes, up to 2^64 - 1. */
static int content_length_over(const char *cl, size_t max)
{
    unsigned long long n = 0;

    for (; *cl >= '0' && *cl <= '9'; cl++) {
        if (n > (ULLONG_MAX - 9) / 10)
            return 1; /* libmicrohttpd itself refuses past 2^64 - 1 */
        n = n * 10 + (unsigned long long)(*cl - '0');
    }
    return *cl == '\0' && n > max;
}

/* The deadlines of a connection, kept in its socket context. */
static struct deadline *conn_deadline(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

static void notify_connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
    UNUSED(cls);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        *socket_context = ci ? deadline_conn_started(ci->connect_fd) : NULL;
    } else {
        deadline_conn_closed(*socket_context);
        *socket_context = NULL;
    }
}

/* A request line is in (libmicrohttpd's URI logger, called before the
 * headers are read): a keep-alive connection's next request is on the
 * clock. Returns the request's initial context: none. */
static void *request_line_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    UNUSED(cls);
    UNUSED(uri);
    deadline_request_begins(conn_deadline(conn));
    return NULL;
}

void http_reap_slow_clients(void)
{
    struct config *cfg = config_current();
    int headers = 0, body = 0;

    if (deadline_reap(now_us(), (uint64_t)cfg->client_header_timeout_s * 1000000u,
                      (uint64_t)cfg->client_body_timeout_s * 1000000u, &headers, &body) > 0) {
        for (int i = 0; i < headers; i++)
            metrics_limited(NULL, "client_header_timeout");
        for (int i = 0; i < body; i++)
            metrics_limited(NULL, "client_body_timeout");
        log_msg(LOG_INFO,
                "closed %d connection(s) past client_header_timeout_s (%ld s) and %d past "
                "client_body_timeout_s (%ld s)",
                headers, cfg->client_header_timeout_s, body, cfg->client_body_timeout_s);
    }
    config_unref(cfg);
}

/* MHD calls this once when the headers are in, then once per body chunk,
 * then once more with no data; and again after each resume. */
static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    enum endpoint ep = EP_CHAT;
    int admin = cls == &admin_marker;
    int is_post = strcmp(method, "POST") == 0;
    int is_api = !admin && api_endpoint(url, &ep);

    if (ex == NULL) {
        struct config *cfg = config_current();
        const char *cl;
        long inflight, max_inflight = cfg->max_inflight;
        size_t n;

        ex = ex_new(conn, cfg->max_body_bytes);
        ex->driver = &phase_driver; /* its last unref runs the on_end hooks */
        config_unref(cfg);
        *con_cls = ex;
        ex->deadline = conn_deadline(conn);
        deadline_headers_done(ex->deadline);
        __atomic_add_fetch(&front_inflight, 1, __ATOMIC_RELAXED);
        ex->is_api = is_api;
        if (!admin) {
            int count_only;

            ex->dialect = url_dialect(url, &count_only);
        }
        inflight = is_api ? __atomic_add_fetch(&front_api_inflight, 1, __ATOMIC_RELAXED) : 0;
        snprintf(ex->method, sizeof(ex->method), "%s", method);
        /* Cut at a character boundary: the log writes it as UTF-8. */
        n = utf8_cut(url, strlen(url), sizeof(ex->path) - 1);
        memcpy(ex->path, url, n);
        ex->path[n] = '\0';
        set_request_id(ex, conn);
        if (is_api && max_inflight > 0 && inflight > max_inflight) {
            /* Shed load early and cheaply rather than fall over. */
            struct api_error e;

            api_error_set(&e, 503, "api_error", "overloaded", NULL,
                          "The gateway is at its limit of %ld requests in flight; retry shortly.",
                          max_inflight);
            ex->retry_after_s = 1;
            metrics_limited(NULL, "inflight");
            return queue_error(ex, conn, &e);
        }
        /* Refuse an announced oversized body before reading it. */
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (is_post && is_api && cl && content_length_over(cl, ex->in.max)) {
            ex->in_too_big = 1;
            return handle_api(ex, conn, ep);
        }
        return MHD_YES;
    }

    switch (ex->phase) {
    case PH_BODY:
        if (*upload_data_size > 0) {
            if (!ex->in_too_big && buf_append(&ex->in, upload_data, *upload_data_size) < 0) {
                ex->in_too_big = 1;
                buf_free(&ex->in);
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        deadline_body_done(ex->deadline);
        if (admin)
            return handle_admin(ex, conn, url, is_post);
        if (is_post && is_api)
            return handle_api(ex, conn, ep);
        return handle_other(ex, conn, url,
                            strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, is_api);
    case PH_WAIT: {
        enum MHD_Result r;

        /* Resumed by the loop: it has an answer, or the start of a stream. */
        pthread_mutex_lock(&ex->mu);
        if (ex->state == EX_PENDING) {
            /* Spurious wake-up; wait again. */
            ex->suspended = 1;
            MHD_suspend_connection(conn);
            pthread_mutex_unlock(&ex->mu);
            return MHD_YES;
        }
        r = queue_answer(ex, conn, version);
        pthread_mutex_unlock(&ex->mu);
        return r;
    }
    default:
        return MHD_YES;
    }
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct exchange *ex = *con_cls;
    int unfinished;

    UNUSED(cls);
    UNUSED(conn);
    if (ex == NULL)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&ex->mu);
    ex->conn = NULL;
    ex->suspended = 0;
    unfinished = ex->phase == PH_WAIT || (ex->streamed && ex->state != EX_DONE);
    pthread_mutex_unlock(&ex->mu);
    ex->t_end_us = now_us();
    ex->client_aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (ex->client_aborted && ex->client_status == 0)
        ex->client_status = 499;
    if (unfinished && ex->phase != PH_BODY)
        loop_post(loop_, cancel_task_cb, ex_ref(ex));
    if (ex->is_api)
        __atomic_sub_fetch(&front_api_inflight, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&front_inflight, 1, __ATOMIC_RELAXED);
    ex_unref(ex);
}

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    UNUSED(cls);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LOG_DEBUG, "microhttpd: %s", msg);
}

/* Resolve "host:port" (or "[v6]:port") to a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints, *res;
    size_t hlen;
    long port;

    if (colon == NULL || parse_long(colon + 1, 0, 65535, &port) < 0)
        return -1;
    hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host))
        return -1;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Start one daemon on listen with `workers` threads; cls tells access_cb
 * which listener a request came in on. NULL on failure (logged). */
static struct MHD_Daemon *start_daemon(const struct config *cfg, const char *listen, long workers,
                                       void *cls, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                         MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    struct MHD_Daemon *d;

    if (parse_listen(listen, &ss, &sslen) < 0) {
        log_msg(LOG_ERROR, "bad listen address '%s': expected HOST:PORT", listen);
        return NULL;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->client_timeout_s, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT,
         (intptr_t)(cfg->max_header_bytes + CONNECTION_MEMORY_EXTRA), NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection_cb, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)request_line_cb, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log_cb, NULL},
        /* A pool of one is no pool: then the option is left out (a size of
         * 0 or 1 makes libmicrohttpd complain on stderr). */
        {workers > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)workers, NULL},
        {MHD_OPTION_END, 0, NULL},
    };

    d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, cls, MHD_OPTION_ARRAY, opts,
                         MHD_OPTION_END);
    if (d == NULL) {
        log_msg(LOG_ERROR, "cannot listen on %s: %s", listen, strerror(errno));
        return NULL;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return d;
}

int http_start(const struct config *cfg, const char *listen, struct loop *loop,
               http_reload_fn reload)
{
    long workers = cfg->workers;

    loop_ = loop;
    reload_fn = reload;
    started_us = now_us();
    if (workers <= 0)
        workers = sysconf(_SC_NPROCESSORS_ONLN);
    if (workers <= 0)
        workers = 1;
    mhd_errors_init(http_error_json);
    daemon_ = start_daemon(cfg, listen, workers, NULL, &bound_port);
    if (daemon_ == NULL)
        return -1;
    if (cfg->admin.listen) {
        /* The admin API gets its own listener and thread, so that a reload
         * (which reads files and may resolve names) never stalls the API. */
        admin_daemon = start_daemon(cfg, cfg->admin.listen, 1, &admin_marker, &admin_port);
        if (admin_daemon == NULL) {
            http_stop();
            return -1;
        }
    }
    return 0;
}

int http_admin_port(void)
{
    return admin_daemon ? admin_port : 0;
}

int http_port(void)
{
    return bound_port;
}

void http_set_draining(int on)
{
    __atomic_store_n(&front_draining, on, __ATOMIC_RELAXED);
}

long http_inflight(void)
{
    return __atomic_load_n(&front_inflight, __ATOMIC_RELAXED);
}

long http_api_inflight(void)
{
    return __atomic_load_n(&front_api_inflight, __ATOMIC_RELAXED);
}

void http_quiesce(void)
{
    MHD_socket fd;

    if (daemon_ == NULL)
        return;
    fd = MHD_quiesce_daemon(daemon_);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    if (admin_daemon) {
        fd = MHD_quiesce_daemon(admin_daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
}

void http_stop(void)
{
    if (admin_daemon)
        MHD_stop_daemon(admin_daemon);
    admin_daemon = NULL;
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
