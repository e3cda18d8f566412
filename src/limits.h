/* limits.h - per client key (tenant) limits: requests per minute, tokens per
 * minute and a spend budget per day, month or in total.
 *
 * With Redis configured the counters live in the Redis the loop lends,
 * updated atomically by Lua scripts, so every replica sharing it enforces
 * one limit; without, they live in this process. A request is admitted while the minute's request
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
 * limits_run and limits_usage run in the loop thread, limits_settle in any.
 */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include "exchange.h"
#include "limits_types.h"

#include <stdint.h>
#include <time.h>

struct loop;
struct redis;
struct config;
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

/* ---- the admission phase (phase.h) ---- */

/* Run: admit ex (its key, ex->key, is set; its loop, ex->loop, lends the
 * Redis client) or refuse it with a 429. PHASE_NEXT: admitted (or no
 * limits); PHASE_DONE: refused and answered; PHASE_AGAIN: asking Redis, it
 * resumes ex when Redis answers (fail open). Borrows ex. */
enum phase_result limits_run(struct exchange *ex);
/* on_end: the request ended: settle its tokens and cost against its key.
 * Called from any thread; the work is posted to ex's loop. Copies what it
 * needs. */
void limits_settle(struct exchange *ex);

/* Loop thread: answer ex with every key's usage and limits, as JSON, from
 * loop's Redis client (or this process's counters). */
void limits_usage(struct loop *loop, struct exchange *ex);

/* Tests: read the wall clock (seconds since the epoch) from now instead of
 * time(), so minute windows and budget periods pass without sleeping; NULL
 * puts time() back. */
void limits_set_clock(time_t (*now)(void));

/* Free the in-memory counters (at exit). */
void limits_free_all(void);

#endif
