/* limits.c - per-key rate limits and budgets; see limits.h. */
#include "limits.h"
#include "cache.h"
#include "exchange.h"
#include "loop.h"
#include "metrics.h"
#include "redis.h"
#include "server.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Check the three limits and, if all hold, count the request and reserve
 * its estimated tokens: one atomic step on Redis, for every replica. */
static const char ADMIT_LUA[] =
    "local rpm, tpm, budget, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "local r = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local t = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local b = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "local why = ''\n"
    "if rpm > 0 and r >= rpm then why = 'rpm'\n"
    "elseif tpm > 0 and t >= tpm then why = 'tpm'\n"
    "elseif budget > 0 and b >= budget then why = 'budget' end\n"
    "if why == '' then\n"
    "  r = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 120)\n"
    "  t = redis.call('INCRBY', KEYS[2], est) redis.call('EXPIRE', KEYS[2], 120)\n"
    "end\n"
    "return {why, r, t, tostring(b)}\n";

/* In-memory counters of one key, when there is no Redis (loop thread). */
struct counters {
    char *name;
    long minute;
    long requests, tokens;
    char period[16];
    double spent;
    struct counters *next;
};

static struct counters *local_counters;

/* ---- naming ---- */

/* The key's part of a Redis key, unique per key name. In braces in every
 * counter's name (a hash tag): a key's counters share one Cluster slot, so
 * the admission script may touch them all. */
static void tenant_id(const char *name, char *out, size_t n)
{
    size_t len = strlen(name);
    unsigned char md[32];

    /* A short plain name is used as is, for readable counters; any other
     * is "~" and the first 128 bits of its SHA-256 ('~' is never in a plain
     * name, so the two forms cannot meet). */
    if (len < n &&
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len) {
        memcpy(out, name, len + 1);
        return;
    }
    sl_assert(n >= 2 * 16 + 2);
    sha256(name, len, md);
    out[0] = '~';
    hex_encode(md, 16, out + 1);
}

static void period_id(enum budget_period p, time_t now, char *out, size_t n)
{
    struct tm tm;

    gmtime_r(&now, &tm);
    if (p == BUDGET_DAY)
        strftime(out, n, "%Y-%m-%d", &tm);
    else if (p == BUDGET_MONTH)
        strftime(out, n, "%Y-%m", &tm);
    else
        snprintf(out, n, "all");
}

/* Seconds a budget counter must live: to the end of its period, and some. */
static long period_ttl(enum budget_period p)
{
    return p == BUDGET_DAY ? 2 * 86400 : p == BUDGET_MONTH ? 32 * 86400 : 0;
}

static long estimate_tokens(const struct exchange *ex)
{
    return (long)((ex->ri.prompt_chars + 3) / 4) + 8 +
           (ex->ri.max_tokens > 0 ? ex->ri.max_tokens : 0);
}

/* The loop's Redis client, lent for the call (loop thread). */
static struct redis *limits_redis(const struct exchange *ex)
{
    UNUSED(ex);
    return server.redis;
}

/* Fill the headers' figures from the counts after admission. */
static void fill_info(struct exchange *ex, long requests, long tokens, double spent, time_t now)
{
    const struct client_key *k = ex->key;
    struct limit_info *li = &ex->limit;

    li->limit_requests = k->rpm > 0 ? k->rpm : -1;
    li->remaining_requests = k->rpm > 0 ? (requests < k->rpm ? k->rpm - requests : 0) : -1;
    li->limit_tokens = k->tpm > 0 ? k->tpm : -1;
    li->remaining_tokens = k->tpm > 0 ? (tokens < k->tpm ? k->tpm - tokens : 0) : -1;
    li->reset_ms = (long)(60 - now % 60) * 1000;
    li->spent_usd = spent;
    li->budget_usd = k->budget_usd;
}

static void refuse(struct exchange *ex, const char *why)
{
    struct api_error e;

    ex->limit.exceeded = why;
    ex->meta.cache = CACHE_NA; /* refused before the cache was asked */
    metrics_limited(ex->key->name, why);
    if (strcmp(why, "budget") == 0)
        api_error_set(&e, 429, "insufficient_quota", "insufficient_quota", NULL,
                      "Key '%.64s' has spent its budget of $%g for this %s.", ex->key->name,
                      ex->key->budget_usd,
                      ex->key->budget_period == BUDGET_DAY     ? "day"
                      : ex->key->budget_period == BUDGET_MONTH ? "month"
                                                               : "lifetime");
    else
        api_error_set(&e, 429, strcmp(why, "rpm") == 0 ? "requests" : "tokens",
                      "rate_limit_exceeded", NULL,
                      "Rate limit reached for key '%.64s': %s %ld per minute. Retry after the "
                      "reset in x-ratelimit-reset-%s.",
                      ex->key->name, strcmp(why, "rpm") == 0 ? "requests" : "tokens",
                      strcmp(why, "rpm") == 0 ? ex->key->rpm : ex->key->tpm,
                      strcmp(why, "rpm") == 0 ? "requests" : "tokens");
    ex->retry_after_s = strcmp(why, "budget") == 0 ? 0 : (int)((ex->limit.reset_ms + 999) / 1000);
    ex_fail(ex, &e);
}

/* ---- admission ---- */

struct admit_op {
    struct exchange *ex;
    void (*next)(struct exchange *ex);
    time_t now;
};

static void admit_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct admit_op *op = arg;
    struct exchange *ex = op->ex;

    if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        /* Fail open: a Redis outage must not become an outage of the API. */
        fill_info(ex, 0, 0, 0, op->now);
        ex->limit_reserved = 0;
        op->next(ex);
        free(op);
        return;
    }
    fill_info(ex, (long)reply->element[1]->integer, (long)reply->element[2]->integer,
              reply->element[3]->str ? strtod(reply->element[3]->str, NULL) : 0, op->now);
    if (reply->element[0]->len > 0) {
        refuse(ex, reply->element[0]->str[0] == 'r'   ? "rpm"
                   : reply->element[0]->str[0] == 't' ? "tpm"
                                                      : "budget");
        ex->limit_reserved = 0;
        ex_unref(ex);
    } else {
        op->next(ex);
    }
    free(op);
}

static struct counters *local_get(const char *name)
{
    struct counters *c;

    for (c = local_counters; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    c = xcalloc(1, sizeof(*c));
    c->name = xstrdup(name);
    c->next = local_counters;
    local_counters = c;
    return c;
}

/* Move c to the current minute and period. */
static void local_roll(struct counters *c, const struct client_key *k, time_t now)
{
    char period[16];

    if (c->minute != (long)(now / 60)) {
        c->minute = (long)(now / 60);
        c->requests = 0;
        c->tokens = 0;
    }
    period_id(k->budget_period, now, period, sizeof(period));
    if (strcmp(period, c->period) != 0) {
        snprintf(c->period, sizeof(c->period), "%s", period);
        c->spent = 0;
    }
}

void limits_admit(struct exchange *ex, void (*next)(struct exchange *ex))
{
    const struct client_key *k = ex->key;
    struct redis *r = limits_redis(ex);
    time_t now = time(NULL);
    long est = estimate_tokens(ex);

    if (k == NULL || (k->rpm == 0 && k->tpm == 0 && k->budget_usd == 0)) {
        next(ex);
        return;
    }
    ex->limit_est = est;
    ex->limit_reserved = 1;
    ex->limit_minute = (long)(now / 60);
    period_id(k->budget_period, now, ex->limit_period, sizeof(ex->limit_period));
    if (r) {
        struct admit_op *op = xmalloc(sizeof(*op));
        char tid[80], kr[160], kt[160], kb[160], a1[24], a2[24], a3[40], a4[24];
        const char *argv[] = {"EVAL", ADMIT_LUA, "3", kr, kt, kb, a1, a2, a3, a4};
        size_t lens[10];

        tenant_id(k->name, tid, sizeof(tid));
        snprintf(kr, sizeof(kr), "sluice:rl:{%s}:r:%ld", tid, ex->limit_minute);
        snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, ex->limit_minute);
        snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, ex->limit_period);
        snprintf(a1, sizeof(a1), "%ld", k->rpm);
        snprintf(a2, sizeof(a2), "%ld", k->tpm);
        snprintf(a3, sizeof(a3), "%.10f", k->budget_usd);
        snprintf(a4, sizeof(a4), "%ld", est);
        for (int i = 0; i < 10; i++)
            lens[i] = strlen(argv[i]);
        op->ex = ex;
        op->next = next;
        op->now = now;
        redis_command(r, 10, argv, lens, admit_cb, op);
        return;
    }
    {
        struct counters *c = local_get(k->name);
        const char *why = NULL;

        local_roll(c, k, now);
        if (k->rpm > 0 && c->requests >= k->rpm)
            why = "rpm";
        else if (k->tpm > 0 && c->tokens >= k->tpm)
            why = "tpm";
        else if (k->budget_usd > 0 && c->spent >= k->budget_usd)
            why = "budget";
        if (why == NULL) {
            c->requests++;
            c->tokens += est;
        }
        fill_info(ex, c->requests, c->tokens, c->spent, now);
        if (why) {
            ex->limit_reserved = 0;
            refuse(ex, why);
            ex_unref(ex);
            return;
        }
        next(ex);
    }
}

/* ---- settlement ---- */

struct settle {
    char *name;
    enum budget_period period_kind;
    char period[16];
    long minute;
    long token_delta;
    double cost;
    struct cache *cache; /* holds the Redis, if any (one reference) */
};

static void ignore_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(arg);
    UNUSED(err);
    UNUSED(reply);
}

static void settle_cb(struct loop *loop, void *arg)
{
    struct settle *s = arg;
    struct redis *r = server.redis;

    UNUSED(loop);
    if (r) {
        char tid[80], kt[160], kb[160], num[48], ttl[24];
        const char *incr[] = {"INCRBY", kt, num};
        const char *fl[] = {"INCRBYFLOAT", kb, num};
        const char *ex[] = {"EXPIRE", kb, ttl};
        size_t lens[3];

        tenant_id(s->name, tid, sizeof(tid));
        snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, s->minute);
        snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, s->period);
        if (s->token_delta != 0) {
            snprintf(num, sizeof(num), "%ld", s->token_delta);
            lens[0] = 6, lens[1] = strlen(kt), lens[2] = strlen(num);
            redis_command(r, 3, incr, lens, ignore_cb, NULL);
        }
        if (s->cost > 0) {
            snprintf(num, sizeof(num), "%.12f", s->cost);
            lens[0] = 11, lens[1] = strlen(kb), lens[2] = strlen(num);
            redis_command(r, 3, fl, lens, ignore_cb, NULL);
            if (period_ttl(s->period_kind) > 0) {
                snprintf(ttl, sizeof(ttl), "%ld", period_ttl(s->period_kind));
                lens[0] = 6, lens[1] = strlen(kb), lens[2] = strlen(ttl);
                redis_command(r, 3, ex, lens, ignore_cb, NULL);
            }
        }
    } else {
        struct counters *c = local_get(s->name);

        if (c->minute == s->minute)
            c->tokens += s->token_delta;
        if (strcmp(c->period, s->period) == 0)
            c->spent += s->cost;
    }
    cache_unref(s->cache);
    free(s->name);
    free(s);
}

void limits_settle(const struct exchange *ex)
{
    struct settle *s;

    if (ex->key == NULL || !ex->limit_reserved || server.loop == NULL)
        return;
    s = xcalloc(1, sizeof(*s));
    s->name = xstrdup(ex->key->name);
    s->period_kind = ex->key->budget_period;
    snprintf(s->period, sizeof(s->period), "%s", ex->limit_period);
    s->minute = ex->limit_minute;
    s->token_delta = ex->meta.prompt_tokens + ex->meta.completion_tokens - ex->limit_est;
    s->cost = ex->meta.cost_usd;
    s->cache = ex->cache ? cache_ref(ex->cache) : NULL;
    loop_post(server.loop, settle_cb, s);
}

/* ---- usage report ---- */

struct usage_op {
    struct exchange *ex;
    json_t *out;
    int pending;
};

struct usage_one {
    struct usage_op *op;
    const struct client_key *k;
};

static json_t *usage_json(const struct client_key *k, long requests, long tokens, double spent)
{
    static const char *periods[] = {"day", "month", "total"};

    return json_pack("{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:f, s:f, s:s}}", "requests_this_minute",
                     "used", (json_int_t)requests, "limit", (json_int_t)k->rpm,
                     "tokens_this_minute", "used", (json_int_t)tokens, "limit", (json_int_t)k->tpm,
                     "spend", "usd", spent, "budget_usd", k->budget_usd, "period",
                     periods[k->budget_period]);
}

static void usage_finish(struct usage_op *op)
{
    char *body;

    if (--op->pending > 0)
        return;
    body = json_dumps(op->out, JSON_COMPACT);
    json_decref(op->out);
    if (body == NULL)
        sl_panic("json_dumps: out of memory");
    ex_respond(op->ex, 200, body, strlen(body));
    ex_unref(op->ex);
    free(op);
}

static long reply_long(const struct redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? strtol(r->str, NULL, 10) : 0;
}

static void usage_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct usage_one *one = arg;
    struct usage_op *op = one->op;

    if (err == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
        json_object_set_new(op->out, one->k->name,
                            usage_json(one->k, reply_long(reply->element[0]),
                                       reply_long(reply->element[1]),
                                       reply->element[2]->type == REDIS_REPLY_STRING
                                           ? strtod(reply->element[2]->str, NULL)
                                           : 0));
    else
        json_object_set_new(op->out, one->k->name,
                            json_pack("{s:s}", "error", err ? err : "redis"));
    free(one);
    usage_finish(op);
}

void limits_usage(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    struct usage_op *op = xcalloc(1, sizeof(*op));
    struct redis *r = limits_redis(ex);
    time_t now = time(NULL);

    op->ex = ex;
    op->out = json_object();
    op->pending = 1;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct client_key *k = &cfg->keys[i];

        if (r) {
            struct usage_one *one = xmalloc(sizeof(*one));
            char tid[80], kr[160], kt[160], kb[160], period[16];
            const char *argv[] = {"MGET", kr, kt, kb};
            size_t lens[4];

            tenant_id(k->name, tid, sizeof(tid));
            period_id(k->budget_period, now, period, sizeof(period));
            snprintf(kr, sizeof(kr), "sluice:rl:{%s}:r:%ld", tid, (long)(now / 60));
            snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, (long)(now / 60));
            snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, period);
            for (int j = 0; j < 4; j++)
                lens[j] = strlen(argv[j]);
            one->op = op;
            one->k = k;
            op->pending++;
            redis_command(r, 4, argv, lens, usage_cb, one);
        } else {
            struct counters *c = local_get(k->name);

            local_roll(c, k, now);
            json_object_set_new(op->out, k->name, usage_json(k, c->requests, c->tokens, c->spent));
        }
    }
    usage_finish(op);
}

void limits_free_all(void)
{
    while (local_counters) {
        struct counters *c = local_counters;

        local_counters = c->next;
        free(c->name);
        free(c);
    }
}
