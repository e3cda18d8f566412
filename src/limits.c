/* limits.c - per-key rate limits and budgets; see limits.h. */
#include "limits.h"
#include "cost.h"
#include "exchange.h"
#include "loop.h"
#include "metrics.h"
#include "redis.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a hold on a key's budget lasts in Redis, in minutes. A replica
 * that dies with requests in flight never releases their holds, so each
 * expires this long after its request was admitted; a request that runs
 * longer is no longer held after that (its cost still counts at the end). */
#define HOLD_MINUTES 60

/* Check the three limits and, if all hold, count the request, reserve its
 * estimated tokens and hold its estimated cost against the budget: one
 * atomic step on Redis, for every replica. The holds of a key are a hash,
 * one field per minute of admission (ARGV[6]); fields older than
 * HOLD_MINUTES are dropped here. The budget test is budget_refuses'. */
static const char ADMIT_LUA[] =
    "local rpm, tpm, budget, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "local usd, slot, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local r = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local t = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local b = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "local held = 0\n"
    "if budget > 0 then\n"
    "  local h = redis.call('HGETALL', KEYS[4])\n"
    "  for i = 1, #h, 2 do\n"
    "    if tonumber(h[i]) <= slot - keep then redis.call('HDEL', KEYS[4], h[i])\n"
    "    else held = held + tonumber(h[i + 1]) end\n"
    "  end\n"
    "end\n"
    "local why = ''\n"
    "if rpm > 0 and r >= rpm then why = 'rpm'\n"
    "elseif tpm > 0 and t >= tpm then why = 'tpm'\n"
    "elseif budget > 0 and (b >= budget or b + held + usd > budget * (1 + 1e-9)) then "
    "why = 'budget' end\n"
    "if why == '' then\n"
    "  r = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 120)\n"
    "  t = redis.call('INCRBY', KEYS[2], est) redis.call('EXPIRE', KEYS[2], 120)\n"
    "  if budget > 0 and usd > 0 then\n"
    "    redis.call('HINCRBYFLOAT', KEYS[4], ARGV[6], ARGV[5])\n"
    "    redis.call('EXPIRE', KEYS[4], keep * 60 + 120)\n"
    "  end\n"
    "end\n"
    "return {why, r, t, tostring(b), tostring(held)}\n";

/* The end of a request: its tokens settled against the minute it was
 * admitted in (if that counter still lives: a new one would never expire),
 * its cost added to the period's spend, and its hold released (unless it
 * already expired). */
static const char SETTLE_LUA[] =
    "local d, cost, ttl, usd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[5])\n"
    "if d ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], d) end\n"
    "if cost > 0 then\n"
    "  redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])\n"
    "  if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end\n"
    "end\n"
    "if usd > 0 and redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then\n"
    "  if tonumber(redis.call('HINCRBYFLOAT', KEYS[3], ARGV[4], '-' .. ARGV[5])) <= 1e-12 then\n"
    "    redis.call('HDEL', KEYS[3], ARGV[4])\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* The usage report of one key: the minute's counts, the period's spend
 * and what the requests in flight hold (holds that have expired left out). */
static const char USAGE_LUA[] =
    "local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])\n"
    "local slot, keep, held = tonumber(ARGV[1]), tonumber(ARGV[2]), 0\n"
    "local h = redis.call('HGETALL', KEYS[4])\n"
    "for i = 1, #h, 2 do\n"
    "  if tonumber(h[i]) > slot - keep then held = held + tonumber(h[i + 1]) end\n"
    "end\n"
    "return {v[1], v[2], v[3], tostring(held)}\n";

/* In-memory counters of one key, when there is no Redis (loop thread). */
struct counters {
    char *name;
    long minute;
    long requests, tokens;
    char period[16];
    double spent;
    double held; /* the budget held by requests in flight */
    struct counters *next;
};

static struct counters *local_counters;

static time_t wall_now(void)
{
    return time(NULL);
}

/* The clock minutes and budget periods are read from (limits_set_clock). */
static time_t (*clock_s)(void) = wall_now;

void limits_set_clock(time_t (*now)(void))
{
    clock_s = now ? now : wall_now;
}

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

/* The Redis client of the loop ex runs on, lent for the call (loop
 * thread); NULL: the counters are in this process. */
static struct redis *limits_redis(const struct exchange *ex)
{
    return loop_redis(ex->loop);
}

int limits_budget_refuses(double budget, double spent, double held, double usd)
{
    /* The margin forgives the rounding of sums of holds, so a request that
     * fits exactly is not refused for a last bit. */
    return budget > 0 && (spent >= budget || spent + held + usd > budget * (1 + 1e-9));
}

/* Fill the headers' figures from the counts after admission. */
static void fill_info(struct exchange *ex, long requests, long tokens, double spent, double held,
                      time_t now)
{
    const struct client_key *k = ex->key;
    struct limit_info *li = &ex->limit;

    li->limit_requests = k->rpm > 0 ? k->rpm : -1;
    li->remaining_requests = k->rpm > 0 ? (requests < k->rpm ? k->rpm - requests : 0) : -1;
    li->limit_tokens = k->tpm > 0 ? k->tpm : -1;
    li->remaining_tokens = k->tpm > 0 ? (tokens < k->tpm ? k->tpm - tokens : 0) : -1;
    li->reset_ms = (long)(60 - now % 60) * 1000;
    li->spent_usd = spent;
    li->held_usd = held;
    li->budget_usd = k->budget_usd;
}

static void refuse(struct exchange *ex, const char *why)
{
    const struct client_key *k = ex->key;
    const char *period = k->budget_period == BUDGET_DAY     ? "day"
                         : k->budget_period == BUDGET_MONTH ? "month"
                                                            : "lifetime";
    struct api_error e;

    ex->limit.exceeded = why;
    metrics_limited(k->name, why);
    if (strcmp(why, "budget") == 0 && ex->limit.spent_usd < k->budget_usd)
        api_error_set(&e, 429, "insufficient_quota", "insufficient_quota", NULL,
                      "Key '%.64s' cannot afford this request: of its budget of $%g for this %s, "
                      "$%.6g is spent or held by requests in flight, and this request may cost "
                      "$%.6g.",
                      k->name, k->budget_usd, period, ex->limit.spent_usd + ex->limit.held_usd,
                      ex->limit_hold_usd);
    else if (strcmp(why, "budget") == 0)
        api_error_set(&e, 429, "insufficient_quota", "insufficient_quota", NULL,
                      "Key '%.64s' has spent its budget of $%g for this %s.", k->name,
                      k->budget_usd, period);
    else
        api_error_set(&e, 429, strcmp(why, "rpm") == 0 ? "requests" : "tokens",
                      "rate_limit_exceeded", NULL,
                      "Rate limit reached for key '%.64s': %s %ld per minute. Retry after the "
                      "reset in x-ratelimit-reset-%s.",
                      k->name, strcmp(why, "rpm") == 0 ? "requests" : "tokens",
                      strcmp(why, "rpm") == 0 ? k->rpm : k->tpm,
                      strcmp(why, "rpm") == 0 ? "requests" : "tokens");
    ex->retry_after_s = strcmp(why, "budget") == 0 ? 0 : (int)((ex->limit.reset_ms + 999) / 1000);
    ex->limit_reserved = 0;
    ex->limit_hold_usd = 0;
    ex_fail(ex, &e);
}

/* ---- admission ---- */

struct admit_op {
    struct exchange *ex;
    time_t now;
};

/* A reply element that is a number written as a string (INCRBYFLOAT's
 * form, and Lua's tostring); NAN when it is not one. */
static double reply_double(const struct redisReply *r)
{
    char *end;
    double v;

    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 64 || strlen(r->str) != r->len)
        return NAN;
    v = strtod(r->str, &end);
    return *end == '\0' && isfinite(v) ? v : NAN;
}

int limits_read_admit(const struct redisReply *reply, struct admit_reply *out)
{
    const struct redisReply *why;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    why = reply->element[0];
    if (why->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER)
        return -1;
    if (why->len == 0)
        out->why = NULL;
    else if (strcmp(why->str, "rpm") == 0)
        out->why = "rpm";
    else if (strcmp(why->str, "tpm") == 0)
        out->why = "tpm";
    else if (strcmp(why->str, "budget") == 0)
        out->why = "budget";
    else
        return -1;
    out->requests = (long)reply->element[1]->integer;
    out->tokens = (long)reply->element[2]->integer;
    out->spent = reply_double(reply->element[3]);
    out->held = reply_double(reply->element[4]);
    return isnan(out->spent) || isnan(out->held) ? -1 : 0;
}

static void admit_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct admit_op *op = arg;
    struct exchange *ex = op->ex;
    struct admit_reply ar;

    if (err || limits_read_admit(reply, &ar) < 0) {
        /* Fail open: a Redis outage must not become an outage of the API.
         * Nothing is known to be reserved or held (a script that ran but
         * answered too late leaves a hold that expires after HOLD_MINUTES),
         * but the request's real tokens and cost are still settled. */
        fill_info(ex, 0, 0, 0, 0, op->now);
        ex->limit_est = 0;
        ex->limit_hold_usd = 0;
        free(op);
        ex_resume(ex, PHASE_NEXT);
        return;
    }
    fill_info(ex, ar.requests, ar.tokens, ar.spent, ar.held, op->now);
    free(op);
    if (ar.why)
        refuse(ex, ar.why);
    ex_resume(ex, ar.why ? PHASE_DONE : PHASE_NEXT);
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

/* Move c to the current minute and period. Holds are not per period: a
 * request admitted before midnight holds until it ends. */
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

/* The in-memory twin of ADMIT_LUA on c (rolled to now): the limit that
 * refuses a request of est tokens that may cost usd, or NULL when it is
 * admitted, counted and held. */
static const char *local_admit(struct counters *c, const struct client_key *k, long est, double usd)
{
    if (k->rpm > 0 && c->requests >= k->rpm)
        return "rpm";
    if (k->tpm > 0 && c->tokens >= k->tpm)
        return "tpm";
    if (limits_budget_refuses(k->budget_usd, c->spent, c->held, usd))
        return "budget";
    c->requests++;
    c->tokens += est;
    if (k->budget_usd > 0)
        c->held += usd;
    return NULL;
}

enum phase_result limits_run(struct exchange *ex)
{
    const struct client_key *k = ex->key;
    struct redis *r = limits_redis(ex);
    time_t now = clock_s();
    long est = estimate_tokens(ex);

    if (k == NULL || (k->rpm == 0 && k->tpm == 0 && k->budget_usd == 0))
        return PHASE_NEXT;
    ex->limit_est = est;
    ex->limit_reserved = 1;
    ex->limit_minute = (long)(now / 60);
    /* What the run may spend, held against the budget until it ends, so
     * that requests in flight together cannot spend past it. */
    ex->limit_hold_usd = k->budget_usd > 0 ? cost_route_estimate(ex->route, &ex->ri) : 0;
    period_id(k->budget_period, now, ex->limit_period, sizeof(ex->limit_period));
    if (r) {
        struct admit_op *op = xmalloc(sizeof(*op));
        char tid[80], kr[160], kt[160], kb[160], kh[160], a1[24], a2[24], a3[40], a4[24], a5[40],
            a6[24], a7[24];
        const char *argv[] = {"EVAL", ADMIT_LUA, "4", kr, kt, kb, kh, a1, a2, a3, a4, a5, a6, a7};
        size_t lens[ARRAY_LEN(argv)];

        tenant_id(k->name, tid, sizeof(tid));
        snprintf(kr, sizeof(kr), "sluice:rl:{%s}:r:%ld", tid, ex->limit_minute);
        snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, ex->limit_minute);
        snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, ex->limit_period);
        snprintf(kh, sizeof(kh), "sluice:rl:{%s}:h", tid);
        snprintf(a1, sizeof(a1), "%ld", k->rpm);
        snprintf(a2, sizeof(a2), "%ld", k->tpm);
        snprintf(a3, sizeof(a3), "%.10f", k->budget_usd);
        snprintf(a4, sizeof(a4), "%ld", est);
        snprintf(a5, sizeof(a5), "%.12f", ex->limit_hold_usd);
        snprintf(a6, sizeof(a6), "%ld", ex->limit_minute);
        snprintf(a7, sizeof(a7), "%d", HOLD_MINUTES);
        for (size_t i = 0; i < ARRAY_LEN(argv); i++)
            lens[i] = strlen(argv[i]);
        op->ex = ex;
        op->now = now;
        redis_command(r, (int)ARRAY_LEN(argv), argv, lens, admit_cb, op);
        return PHASE_AGAIN;
    }
    {
        struct counters *c = local_get(k->name);
        const char *why;

        local_roll(c, k, now);
        why = local_admit(c, k, est, ex->limit_hold_usd);
        fill_info(ex, c->requests, c->tokens, c->spent, c->held, now);
        if (why) {
            refuse(ex, why);
            return PHASE_DONE;
        }
        return PHASE_NEXT;
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
    double hold; /* the budget held at admission, to release */
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
    struct redis *r = loop_redis(loop);

    if (r) {
        char tid[80], kt[160], kb[160], kh[160], a1[24], a2[48], a3[24], a4[24], a5[40];
        const char *argv[] = {"EVAL", SETTLE_LUA, "3", kt, kb, kh, a1, a2, a3, a4, a5};
        size_t lens[ARRAY_LEN(argv)];

        tenant_id(s->name, tid, sizeof(tid));
        snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, s->minute);
        snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, s->period);
        snprintf(kh, sizeof(kh), "sluice:rl:{%s}:h", tid);
        snprintf(a1, sizeof(a1), "%ld", s->token_delta);
        snprintf(a2, sizeof(a2), "%.12f", s->cost > 0 ? s->cost : 0);
        snprintf(a3, sizeof(a3), "%ld", period_ttl(s->period_kind));
        snprintf(a4, sizeof(a4), "%ld", s->minute);
        snprintf(a5, sizeof(a5), "%.12f", s->hold);
        for (size_t i = 0; i < ARRAY_LEN(argv); i++)
            lens[i] = strlen(argv[i]);
        redis_command(r, (int)ARRAY_LEN(argv), argv, lens, ignore_cb, NULL);
    } else {
        struct counters *c = local_get(s->name);

        if (c->minute == s->minute)
            c->tokens += s->token_delta;
        if (strcmp(c->period, s->period) == 0)
            c->spent += s->cost;
        c->held -= s->hold;
        if (c->held < 1e-12)
            c->held = 0; /* the rounding of sums, or nothing left in flight */
    }
    free(s->name);
    free(s);
}

void limits_settle(struct exchange *ex)
{
    struct settle *s;

    if (ex->key == NULL || !ex->limit_reserved || ex->loop == NULL)
        return;
    s = xcalloc(1, sizeof(*s));
    s->name = xstrdup(ex->key->name);
    s->period_kind = ex->key->budget_period;
    snprintf(s->period, sizeof(s->period), "%s", ex->limit_period);
    s->minute = ex->limit_minute;
    s->token_delta = ex->meta.prompt_tokens + ex->meta.completion_tokens - ex->limit_est;
    s->cost = ex->meta.cost_usd;
    s->hold = ex->limit_hold_usd;
    loop_post(ex->loop, settle_cb, s);
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

static json_t *usage_json(const struct client_key *k, long requests, long tokens, double spent,
                          double held)
{
    static const char *periods[] = {"day", "month", "total"};

    return json_pack("{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:f, s:f, s:f, s:s}}", "requests_this_minute",
                     "used", (json_int_t)requests, "limit", (json_int_t)k->rpm,
                     "tokens_this_minute", "used", (json_int_t)tokens, "limit", (json_int_t)k->tpm,
                     "spend", "usd", spent, "held_usd", held, "budget_usd", k->budget_usd, "period",
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

    if (err == NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4) {
        double spent = reply_double(reply->element[2]), held = reply_double(reply->element[3]);

        json_object_set_new(op->out, one->k->name,
                            usage_json(one->k, reply_long(reply->element[0]),
                                       reply_long(reply->element[1]), isnan(spent) ? 0 : spent,
                                       isnan(held) ? 0 : held));
    } else {
        json_object_set_new(op->out, one->k->name,
                            json_pack("{s:s}", "error", err ? err : "redis"));
    }
    free(one);
    usage_finish(op);
}

void limits_usage(struct loop *loop, struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    struct usage_op *op = xcalloc(1, sizeof(*op));
    struct redis *r = loop_redis(loop);
    time_t now = clock_s();

    op->ex = ex;
    op->out = json_object();
    op->pending = 1;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct client_key *k = &cfg->keys[i];

        if (r) {
            struct usage_one *one = xmalloc(sizeof(*one));
            char tid[80], kr[160], kt[160], kb[160], kh[160], period[16], slot[24], keep[24];
            const char *argv[] = {"EVAL", USAGE_LUA, "4", kr, kt, kb, kh, slot, keep};
            size_t lens[ARRAY_LEN(argv)];

            tenant_id(k->name, tid, sizeof(tid));
            period_id(k->budget_period, now, period, sizeof(period));
            snprintf(kr, sizeof(kr), "sluice:rl:{%s}:r:%ld", tid, (long)(now / 60));
            snprintf(kt, sizeof(kt), "sluice:rl:{%s}:t:%ld", tid, (long)(now / 60));
            snprintf(kb, sizeof(kb), "sluice:rl:{%s}:b:%s", tid, period);
            snprintf(kh, sizeof(kh), "sluice:rl:{%s}:h", tid);
            snprintf(slot, sizeof(slot), "%ld", (long)(now / 60));
            snprintf(keep, sizeof(keep), "%d", HOLD_MINUTES);
            for (size_t j = 0; j < ARRAY_LEN(argv); j++)
                lens[j] = strlen(argv[j]);
            one->op = op;
            one->k = k;
            op->pending++;
            redis_command(r, (int)ARRAY_LEN(argv), argv, lens, usage_cb, one);
        } else {
            struct counters *c = local_get(k->name);

            local_roll(c, k, now);
            json_object_set_new(op->out, k->name,
                                usage_json(k, c->requests, c->tokens, c->spent, c->held));
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
