/* limits.h - per client key (tenant) limits: requests per minute, tokens per
 * minute and a spend budget per day, month or in total.
 *
 * With a Redis cache the counters live in that Redis, updated atomically by
 * Lua scripts, so every replica sharing it enforces one limit; without, they
 * live in this process. A request is admitted while the minute's request
 * and token counts and the period's spend are under the key's limits; its
 * estimated tokens are reserved at admission and settled to the actual
 * usage, with its actual cost, when it ends. So a budget is overrun by no
 * more than the requests already in flight. Redis down: admitted (fail
 * open), counted as Redis errors.
 *
 * limits_admit, limits_settle and limits_usage run in the loop thread.
 */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include <stdint.h>

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
};

/* Admit ex (its key, ex->key, is set) or refuse it with a 429. Then calls
 * next(ex) when admitted; answers ex itself when not. Takes over ex's
 * reference either way. */
void limits_admit(struct exchange *ex, void (*next)(struct exchange *ex));

/* The request ended: settle its tokens and cost against its key. Called
 * from any thread; the work is posted to the loop. Copies what it needs. */
void limits_settle(const struct exchange *ex);

/* Loop thread: answer ex with every key's usage and limits, as JSON. */
void limits_usage(struct exchange *ex);

/* Free the in-memory counters (at exit). */
void limits_free_all(void);

#endif
