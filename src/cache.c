/* cache.c - response cache policy, keys, entries and single flight; see
 * cache.h. */
#include "cache.h"
#include "caps.h"
#include "cache_mem.h"
#include "cache_redis.h"
#include "exchange.h"
#include "jscan.h"
#include "loop.h"
#include "provider.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FLIGHT_BUCKETS 256
#define WAIT_MAX_US (120u * 1000000u) /* a waiter gives up and calls itself */
#define ENTRY_MAGIC "SLC2 "

/* ---- keys ---- */

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Numbers are written one way whatever way they came: an integral real is
 * an integer (1.0 and 1 are the same temperature), other reals in the
 * shortest %.17g form. */
static int put_number(struct buf *out, const json_t *v)
{
    double d;

    if (json_is_integer(v))
        return buf_printf(out, "%lld", (long long)json_integer_value(v));
    d = json_real_value(v);
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
        return buf_printf(out, "%.0f", d == 0 ? 0.0 : d);
    return buf_printf(out, "%.17g", d);
}

int cache_canonical(const json_t *v, int top, struct buf *out)
{
    size_t i, n;
    const char *k;
    json_t *x;
    int err = 0;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char **keys = xmalloc((json_object_size(v) + 1) * sizeof(*keys));

        n = 0;
        json_object_foreach ((json_t *)v, k, x) {
            /* Not part of the answer: how it is delivered and who asked. */
            if (top && (strcmp(k, "stream") == 0 || strcmp(k, "stream_options") == 0 ||
                        strcmp(k, "user") == 0 || strcmp(k, "model") == 0))
                continue;
            keys[n++] = k;
        }
        qsort(keys, n, sizeof(*keys), key_cmp);
        err |= buf_append(out, "{", 1);
        for (i = 0; i < n && !err; i++) {
            if (i)
                err |= buf_append(out, ",", 1);
            err |= buf_put_json_str(out, keys[i]);
            err |= buf_append(out, ":", 1);
            err |= cache_canonical(json_object_get(v, keys[i]), 0, out);
        }
        err |= buf_append(out, "}", 1);
        free(keys);
        break;
    }
    case JSON_ARRAY:
        err |= buf_append(out, "[", 1);
        json_array_foreach ((json_t *)v, i, x) {
            if (i)
                err |= buf_append(out, ",", 1);
            err |= cache_canonical(x, 0, out);
            if (err)
                break;
        }
        err |= buf_append(out, "]", 1);
        break;
    case JSON_STRING:
        err = buf_put_json_str(out, json_string_value(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        err = put_number(out, v);
        break;
    case JSON_TRUE:
        err = buf_puts(out, "true");
        break;
    case JSON_FALSE:
        err = buf_puts(out, "false");
        break;
    case JSON_NULL:
        err = buf_puts(out, "null");
        break;
    }
    return err ? -1 : 0;
}

int cache_key(const char *ns, const char *route, enum endpoint ep, const json_t *body,
              char out[CACHE_KEY_MAX])
{
    struct buf b;
    unsigned char md[32];
    char hex[2 * 32 + 1];
    int err;

    buf_init(&b, CACHE_CANON_MAX);
    /* The namespace and the route are hashed too, not only prefixed. */
    err = buf_printf(&b, "sluice-cache-v1\n%s\n%s\n%s\n", ns, route, endpoint_path(ep));
    err |= cache_canonical(body, 1, &b);
    if (err) {
        buf_free(&b);
        return -1;
    }
    sha256(b.data, b.len, md);
    buf_free(&b);
    hex_encode(md, sizeof(md), hex);
    snprintf(out, CACHE_KEY_MAX, CACHE_KEY_PREFIX "%s:%s", ns, hex);
    return 0;
}

/* A namespace a purge may name: a client's, or a tenant's "t.<hex>/<ns>". */
static int ns_valid_purge(const char *s)
{
    for (; *s; s++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return 0;
    }
    return 1;
}

static int ns_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return 0;
    }
    return n > 0 && n <= CACHE_NS_MAX;
}

/* A Cache-Control directive (case-insensitive, in a comma list). */
static int has_directive(const char *cc, const char *d)
{
    size_t dl = strlen(d);

    while (cc && *cc) {
        cc += strspn(cc, " \t,");
        if (strncasecmp(cc, d, dl) == 0 && strchr(" \t,=", cc[dl] ? cc[dl] : ','))
            return 1;
        cc = strchr(cc, ',');
    }
    return 0;
}

int cache_plan(const struct config *cfg, const struct route *rt, const struct request_info *ri,
               const char *tenant, const char *ns, const char *cache_control, const char *ttl,
               struct cache_plan *out, struct api_error *err)
{
    char full[CACHE_NS_MAX + 80];
    long v;

    memset(out, 0, sizeof(*out));
    if (ns == NULL || *ns == '\0')
        ns = "default";
    if (!ns_valid(ns)) {
        api_error_set(err, 400, "invalid_request_error", "invalid_cache_namespace", NULL,
                      "x-sluice-cache-namespace must be 1 to %d characters of [A-Za-z0-9._/-].",
                      CACHE_NS_MAX);
        return -1;
    }
    if (tenant) {
        /* A tenant's namespaces live under its name's digest: "t.<first 128 bits of
         * SHA-256(name), hex>/<ns>". Fixed length, whatever the name; no name can pose
         * as another's partition. */
        unsigned char md[32];
        char hex[2 * 16 + 1];

        sha256(tenant, strlen(tenant), md);
        hex_encode(md, 16, hex);
        snprintf(full, sizeof(full), "t.%s/%s", hex, ns);
        ns = full;
    }
    out->ttl_s = rt->cache_ttl_s > 0 ? rt->cache_ttl_s : cfg->cache.ttl_s;
    if (ttl) {
        if (parse_long(ttl, 1, 31536000, &v) < 0) {
            api_error_set(err, 400, "invalid_request_error", "invalid_cache_ttl", NULL, "%s",
                          "x-sluice-cache-ttl must be a number of seconds, 1 to 31536000.");
            return -1;
        }
        out->ttl_s = v;
    }
    if (!rt->cache) {
        out->status = CACHE_OFF;
        return 0;
    }
    if (!rt->cache_nondeterministic && (ri->temperature > 0 || ri->n > 1)) {
        out->status = CACHE_BYPASS;
        return 0;
    }
    if (has_directive(cache_control, "no-store")) {
        out->status = CACHE_BYPASS;
        return 0;
    }
    if (cache_key(ns, rt->name, ri->ep, ri->body, out->key) < 0) {
        out->status = CACHE_BYPASS; /* too big to key: neither looked up nor stored */
        return 0;
    }
    out->store = 1;
    out->lookup = !has_directive(cache_control, "no-cache");
    out->status = out->lookup ? CACHE_MISS : CACHE_BYPASS;
    return 0;
}

/* ---- entries: "SLC2 <cost>\t<model>\t<provider>\t<stages>\n<body>" ----
 * A line of tab-separated fields, not JSON, so that a hit costs no parse
 * beyond a few memchr; names and stages never hold tabs or newlines (and
 * are sanitised anyway). */

static int put_field(struct buf *b, const char *s)
{
    int err = buf_append(b, "\t", 1);

    for (; s && *s; s++)
        err |= buf_append(b, *s == '\t' || *s == '\n' ? " " : s, 1);
    return err;
}

char *cache_entry_encode(const char *model, const char *provider, double cost, const char *stages,
                         const char *body, size_t len, size_t *outlen)
{
    struct buf b;
    int err;

    buf_init(&b, CACHE_ENTRY_HEAD_MAX + len);
    err = buf_printf(&b, ENTRY_MAGIC "%.17g", cost);
    err |= put_field(&b, model);
    err |= put_field(&b, provider);
    err |= put_field(&b, stages);
    err |= buf_append(&b, "\n", 1);
    err |= buf_append(&b, body, len);
    if (err) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, outlen);
}

int cache_entry_decode(char *raw, size_t len, struct cache_entry *e)
{
    char *nl, *f[4], *p;
    int i;

    memset(e, 0, sizeof(*e));
    if (len < 5 || memcmp(raw, ENTRY_MAGIC, 5) != 0 || (nl = memchr(raw, '\n', len)) == NULL)
        goto bad;
    *nl = '\0';
    p = raw + 5;
    for (i = 0; i < 4; i++) {
        f[i] = p;
        p = strchr(p, '\t');
        if (i < 3) {
            if (p == NULL)
                goto bad;
            *p++ = '\0';
        }
    }
    if (p != NULL || parse_double(f[0], &e->cost) < 0)
        goto bad;
    e->raw = raw;
    e->model = xstrdup(f[1]);
    e->provider = xstrdup(f[2]);
    e->stages = xstrdup(f[3]);
    e->body = nl + 1;
    e->body_len = len - (size_t)(nl + 1 - raw);
    return 0;
bad:
    free(raw);
    return -1;
}

void cache_entry_free(struct cache_entry *e)
{
    free(e->raw);
    free(e->model);
    free(e->provider);
    free(e->stages);
    memset(e, 0, sizeof(*e));
}

int cache_entry_render(const struct cache_entry *e, const struct request_info *ri, char **out,
                       size_t *outlen)
{
    json_t *j;
    struct buf b;

    if (!ri->stream) {
        *out = xstrndup(e->body, e->body_len);
        *outlen = e->body_len;
        return 0;
    }
    j = jscan_loadb(e->body, e->body_len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    buf_init(&b, SSE_RENDER_MAX);
    if (provider_sse_from_response(ri->ep, j, ri->include_usage, &b) < 0) {
        json_decref(j);
        buf_free(&b);
        return -1;
    }
    json_decref(j);
    *out = buf_steal(&b, outlen);
    return 0;
}

/* ---- the instance ---- */

struct waiter {
    struct exchange *ex;
    struct flight *f;
    struct loop_timer timer;
    struct waiter *next;
};

/* One lookup, then one upstream call, for all identical requests. */
struct flight {
    char key[CACHE_KEY_MAX];
    struct exchange *leader;
    struct waiter *waiters;
    struct flight *next;
};

struct cache {
    int refs; /* atomic */
    struct loop *loop;
    struct cache_conf conf;
    struct cache_mem *mem;     /* backend = memory */
    int redis; /* backend = redis: the loop's client (loop_redis) */
    /* With Redis: recent hits and stores kept in this process for
     * local_ttl_ms, so hot keys are served by the workers without a round
     * trip. A purge elsewhere reaches this copy within local_ttl_ms. */
    struct cache_mem *near;
    struct flight *flights[FLIGHT_BUCKETS];
    struct cache_stats st;
};

static unsigned flight_bucket(const char *key)
{
    unsigned h = 2166136261u;

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % FLIGHT_BUCKETS;
}

static struct flight *flight_find(struct cache *c, const char *key)
{
    struct flight *f = c->flights[flight_bucket(key)];

    for (; f; f = f->next)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

static void flight_remove(struct cache *c, struct flight *f)
{
    struct flight **pp = &c->flights[flight_bucket(f->key)];

    for (; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
}

static void cache_start_cb(struct loop *loop, void *arg)
{
    struct cache *c = arg;

    UNUSED(loop);
    cache_unref(c);
}

struct cache *cache_new(struct loop *loop, const struct cache_conf *conf, char *err, size_t errlen)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    c->refs = 1;
    c->loop = loop;
    c->conf = *conf;
    UNUSED(err);
    UNUSED(errlen);
    if (conf->backend == CACHE_REDIS) {
        c->redis = 1;
        if (conf->local_ttl_ms > 0)
            c->near = cache_mem_new(conf->local_max_bytes);
    } else {
        c->mem = cache_mem_new(conf->max_bytes);
    }
    return c;
}

int cache_matches(const struct cache *c, const struct cache_conf *conf)
{
    const struct cache_conf *a = &c->conf;

    return a->backend == conf->backend && a->max_bytes == conf->max_bytes &&
           a->timeout_ms == conf->timeout_ms && a->local_ttl_ms == conf->local_ttl_ms &&
           a->local_max_bytes == conf->local_max_bytes;
}

struct cache *cache_ref(struct cache *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

static void cache_free_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    cache_free(arg);
}

void cache_unref(struct cache *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        loop_post(c->loop, cache_free_cb, c); /* Redis lives on the loop */
}

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cache *current;

struct cache *cache_current(void)
{
    struct cache *c;

    pthread_mutex_lock(&current_mu);
    c = current ? cache_ref(current) : NULL;
    pthread_mutex_unlock(&current_mu);
    return c;
}

void cache_swap(struct cache *c)
{
    struct cache *old;

    if (c)
        loop_post(c->loop, cache_start_cb, cache_ref(c));
    pthread_mutex_lock(&current_mu);
    old = current;
    current = c;
    pthread_mutex_unlock(&current_mu);
    if (old)
        cache_unref(old);
}

struct cache_mem *cache_memory(struct cache *c)
{
    return c->mem ? c->mem : c->near;
}

/* How long the near copy of an entry stored for ttl_s is trusted. */
static long near_ttl_ms(const struct cache *c, long ttl_s)
{
    long ms = ttl_s * 1000;

    return ms < c->conf.local_ttl_ms ? ms : c->conf.local_ttl_ms;
}

void cache_count_hit(struct cache *c)
{
    __atomic_add_fetch(&c->st.hits, 1, __ATOMIC_RELAXED);
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    out->hits = __atomic_load_n(&c->st.hits, __ATOMIC_RELAXED);
    out->misses = c->st.misses;
    out->errors = c->st.errors;
    out->stores = c->st.stores;
    if (cache_memory(c)) {
        out->entries = cache_mem_count(cache_memory(c));
        out->bytes = cache_mem_bytes(cache_memory(c));
    }
}

/* Answer ex from an entry, as a hit. */
static void respond_entry(struct exchange *ex, const struct cache_entry *e)
{
    char *out;
    size_t len;

    if (cache_entry_render(e, &ex->ri, &out, &len) < 0) {
        struct api_error err;

        api_error_set(&err, 502, "api_error", "cache_corrupt", NULL, "%s",
                      "A cached answer could not be read.");
        ex_fail(ex, &err);
        return;
    }
    ex_set_cached_meta(ex, e->model, e->provider, e->stages, e->cost);
    if (ex->ri.stream)
        ex_respond_sse(ex, out, len);
    else
        ex_respond(ex, 200, out, len);
}

/* Let every waiter of f go: answered from e, or (e NULL) to run its own
 * route. Frees f. */
static void flight_release(struct cache *c, struct flight *f, const struct cache_entry *e)
{
    struct waiter *w, *next;

    flight_remove(c, f);
    for (w = f->waiters; w; w = next) {
        struct exchange *ex = w->ex;

        next = w->next;
        loop_timer_stop(c->loop, &w->timer);
        ex->waiter = NULL;
        free(w);
        if (e) {
            ex->meta.cache = CACHE_HIT;
            cache_count_hit(c);
            respond_entry(ex, e);
            ex_resume(ex, PHASE_DONE);
        } else {
            ex_resume(ex, PHASE_NEXT); /* run the route */
        }
    }
    if (f->leader)
        f->leader->flight = NULL;
    free(f);
}

static void waiter_timeout_cb(struct loop *loop, void *arg)
{
    struct waiter *w = arg, **pp;
    struct exchange *ex = w->ex;

    for (pp = &w->f->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    UNUSED(loop);
    ex->waiter = NULL;
    free(w);
    /* Waited long enough on someone else's call: make our own. */
    ex_resume(ex, PHASE_NEXT);
}

/* The backend answered the leader's lookup. raw (taken over) is the entry,
 * or NULL on a miss (err set when the backend failed). Returns PHASE_DONE
 * when ex was answered (a hit), PHASE_NEXT when its route must run. */
static enum phase_result lookup_done(struct cache *c, struct exchange *ex, char *raw, size_t len,
                                     const char *err)
{
    struct flight *f = ex->flight;
    struct cache_entry e;

    if (raw && cache_entry_decode(raw, len, &e) == 0) {
        ex->meta.cache = CACHE_HIT;
        cache_count_hit(c);
        respond_entry(ex, &e);
        if (f)
            flight_release(c, f, &e);
        cache_entry_free(&e);
        return PHASE_DONE;
    }
    if (err) {
        ex->meta.cache = CACHE_ERROR;
        c->st.errors++;
    } else {
        c->st.misses++;
    }
    return PHASE_NEXT;
}

static void redis_get_cb(void *arg, const char *err, char *raw, size_t len)
{
    struct exchange *ex = arg;
    struct cache *c = ex->cache;

    if (raw && c->near)
        cache_mem_put(c->near, ex->cache_plan.key, raw, len, near_ttl_ms(c, ex->cache_plan.ttl_s));
    ex_resume(ex, lookup_done(c, ex, raw, len, err));
}

enum phase_result cache_run(struct exchange *ex)
{
    struct cache *c = ex->cache;
    struct flight *f;
    char *raw;
    size_t len;

    ex->meta.cache = ex->cache_plan.status;
    ex->keep_answer = ex->cache_plan.store;
    if (!ex->cache_plan.lookup)
        return PHASE_NEXT;
    f = flight_find(c, ex->cache_plan.key);
    if (f) {
        struct waiter *w = xcalloc(1, sizeof(*w));

        w->ex = ex;
        w->f = f;
        w->next = f->waiters;
        f->waiters = w;
        ex->waiter = w;
        loop_timer_init(&w->timer, waiter_timeout_cb, w);
        loop_timer_start(c->loop, &w->timer, WAIT_MAX_US);
        return PHASE_AGAIN;
    }
    f = xcalloc(1, sizeof(*f));
    snprintf(f->key, sizeof(f->key), "%s", ex->cache_plan.key);
    f->leader = ex;
    f->next = c->flights[flight_bucket(f->key)];
    c->flights[flight_bucket(f->key)] = f;
    ex->flight = f;
    if (c->mem) {
        raw = cache_mem_get(c->mem, ex->cache_plan.key, &len);
        return lookup_done(c, ex, raw, len, NULL);
    }
    cache_redis_get(loop_redis(c->loop), ex->cache_plan.key, redis_get_cb, ex);
    return PHASE_AGAIN;
}

void cache_finish(struct exchange *ex, const char *body, size_t len)
{
    struct cache *c = ex->cache;
    struct flight *f = ex->flight;
    struct cache_entry e;
    char *raw = NULL;
    size_t rlen = 0;

    if (c == NULL)
        return;
    if (body && ex->cache_plan.store) {
        raw = cache_entry_encode(ex->meta.model, ex->meta.provider, ex->meta.cost_usd,
                                 ex->meta.stages.data, body, len, &rlen);
        /* The request's own config, so a reload that changes only the limit applies. */
        if (raw && rlen <= ex->cfg->cache.max_value_bytes) {
            c->st.stores++;
            if (c->mem) {
                cache_mem_put(c->mem, ex->cache_plan.key, raw, rlen, ex->cache_plan.ttl_s * 1000);
            } else {
                cache_redis_set(loop_redis(c->loop), ex->cache_plan.key, raw, rlen,
                                ex->cache_plan.ttl_s);
                if (c->near)
                    cache_mem_put(c->near, ex->cache_plan.key, raw, rlen,
                                  near_ttl_ms(c, ex->cache_plan.ttl_s));
            }
        }
    }
    if (f == NULL) {
        free(raw);
        return;
    }
    f->leader = NULL;
    ex->flight = NULL;
    if (raw && cache_entry_decode(raw, rlen, &e) == 0) {
        flight_release(c, f, &e);
        cache_entry_free(&e);
    } else {
        flight_release(c, f, NULL);
    }
}

void cache_cancel(struct exchange *ex)
{
    struct waiter *w = ex->waiter, **pp;
    struct api_error e;

    if (w == NULL)
        return;
    for (pp = &w->f->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    loop_timer_stop(ex->cache->loop, &w->timer);
    ex->waiter = NULL;
    free(w);
    api_error_set(&e, 499, "api_error", "client_closed", NULL, "%s",
                  "The client closed the connection.");
    ex_fail(ex, &e);
    ex_resume(ex, PHASE_DONE);
}

void cache_end(struct exchange *ex)
{
    cache_unref(ex->cache);
    ex->cache = NULL;
}

const char *cache_purge_check(const char *key, const char *ns)
{
    if (key && (strncmp(key, CACHE_KEY_PREFIX, strlen(CACHE_KEY_PREFIX)) != 0 ||
                strlen(key) >= CACHE_KEY_MAX))
        return "key must be a cache key, as x-sluice-cache-key gives it (sluice:c1:...)";
    if (ns && (*ns == '\0' || strlen(ns) > CACHE_NS_MAX + 70 || !ns_valid_purge(ns)))
        return "namespace must be a short run of [A-Za-z0-9._/-], as in x-sluice-cache-key";
    return NULL;
}

void cache_purge(struct cache *c, const char *key, const char *ns, cache_purge_cb cb, void *arg)
{
    char prefix[CACHE_KEY_MAX];
    const char *bad = cache_purge_check(key, ns);

    if (bad) {
        cb(arg, -1, bad);
        return;
    }
    if (ns)
        snprintf(prefix, sizeof(prefix), CACHE_KEY_PREFIX "%s:", ns);
    if (c->mem) {
        cb(arg, key ? cache_mem_del(c->mem, key) : (long)cache_mem_del_prefix(c->mem, prefix),
           NULL);
        return;
    }
    if (c->near) {
        if (key)
            cache_mem_del(c->near, key);
        else
            cache_mem_del_prefix(c->near, prefix);
    }
    if (key)
        cache_redis_del(loop_redis(c->loop), key, cb, arg);
    else
        cache_redis_del_prefix(loop_redis(c->loop), prefix, cb, arg);
}

void cache_abort_all(struct cache *c, const struct api_error *err)
{
    for (size_t i = 0; i < FLIGHT_BUCKETS; i++) {
        for (struct flight *f = c->flights[i]; f; f = f->next) {
            while (f->waiters) {
                struct waiter *w = f->waiters;

                f->waiters = w->next;
                loop_timer_stop(c->loop, &w->timer);
                w->ex->waiter = NULL;
                ex_fail(w->ex, err);
                ex_resume(w->ex, PHASE_DONE);
                free(w);
            }
        }
    }
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < FLIGHT_BUCKETS; i++) {
        while (c->flights[i]) {
            struct flight *f = c->flights[i];

            c->flights[i] = f->next;
            sl_assert(f->waiters == NULL); /* cache_abort_all ran */
            if (f->leader)
                f->leader->flight = NULL;
            free(f);
        }
    }
    cache_mem_free(c->mem);
    cache_mem_free(c->near);
    free(c);
}
