/* limits.h - per client key (tenant) limits: requests per minute, tokens per
 * minute and a spend budget per day, month or in total.
 *
 * With a Redis cache the counters live in that Redis, updated atomically by
 * Lua scripts, so every replica sharing it enforces one limit; without, they
 * live in this process. A request is admitted while the minute's request
 * and token counts are under the key's limits and its estimated cost
 * (cost_route_estimate) fits in what is left of the period's budget once
 * the requests in flight are paid for. Its estimated tokens are reserved
 * and its estimated cost is held at admission; when it ends, the tokens
 * are settled to the actual usage, the actual cost is added and the hold
 * released. So requests in flight together cannot spend past the budget;
 * a budget is overrun only by what requests spend beyond their estimates.
 * Redis down: admitted (fail open), counted as Redis errors; the request's
 * tokens and cost are still settled at its end.
 *
 * limits_admit, limits_settle and limits_usage run in the loop thread.
 */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include <stdint.h>
#include <time.h>

struct exchange;
struct redis;
struct config;

/* What the x-ratelimit-* headers say. -1 = no such limit. */
struct limit_info {
    long limit_requests, remaining_requests;
    long limit_tokens, remaining_tokens;
    long reset_ms;        /* until the minute's counts start again */
    const char *exceeded; /* "rpm", "tpm", "budget", or NULL when admitted */
    double spent_usd, budget_usd;
    double held_usd; /* held by the requests in flight, before this one */
};

struct redisReply;

/* What the admission script answered. */
struct admit_reply {
    const char *why; /* "rpm", "tpm", "budget" (static), or NULL: admitted */
    long requests, tokens;
    double spent, held;
};

/* Read the admission script's reply into out: 0, or -1 when it is not what
 * the script returns (the caller then fails open). Pure; fuzzed. */
int limits_read_admit(const struct redisReply *reply, struct admit_reply *out);

/* Whether a request that may cost usd is refused by a budget (0: none) of
 * which spent is spent and held is held by the requests in flight. */
int limits_budget_refuses(double budget, double spent, double held, double usd);

/* Admit ex (its key, ex->key, is set) or refuse it with a 429. Then calls
 * next(ex) when admitted; answers ex itself when not. Takes over ex's
 * reference either way. */
void limits_admit(struct exchange *ex, void (*next)(struct exchange *ex));

/* The request ended: settle its tokens and cost against its key. Called
 * from any thread; the work is posted to the loop. Copies what it needs. */
void limits_settle(const struct exchange *ex);

/* Loop thread: answer ex with every key's usage and limits, as JSON. */
void limits_usage(struct exchange *ex);

/* Tests: read the wall clock (seconds since the epoch) from now instead of
 * time(), so minute windows and budget periods pass without sleeping; NULL
 * puts time() back. */
void limits_set_clock(time_t (*now)(void));

/* Free the in-memory counters (at exit). */
void limits_free_all(void);

#endif
