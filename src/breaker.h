/* breaker.h - one circuit breaker per provider.
 *
 * A breaker opens after `breaker_failures` failed calls in a row, or when at
 * least `breaker_min_requests` calls in the last `breaker_window_s` failed
 * at `breaker_error_rate` or more. While open, routes skip the provider's
 * models. After `breaker_cooldown_s` it lets one probe call through
 * (half-open): a success closes it, a failure opens it again.
 *
 * Breakers are kept by provider name for the life of the process, so a
 * reload keeps what they have learned. breaker_allow/breaker_record run in
 * the loop thread; breaker_report may run in any thread.
 */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include "config.h"

#include <jansson.h>
#include <stdint.h>

enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_HALF_OPEN = 1,
    BREAKER_OPEN = 2,
};

const char *breaker_state_name(enum breaker_state s);

/* May a call to p go out now? Moves an open breaker whose cooldown is over
 * to half-open and lets exactly one probe through. */
int breaker_allow(const struct provider *p);
/* Would breaker_allow say yes? Changes nothing. */
int breaker_peek(const struct provider *p);
/* The outcome of a call to p that breaker_allow let through. ok is 1 for
 * an answer (or a 4xx, which is the request's fault), 0 for a connect
 * failure, a timeout, a reset, a malformed answer, a 5xx or a 429. */
void breaker_record(const struct provider *p, int ok);

/* Every breaker's state, as {"name": "closed", ...}. Thread-safe. */
json_t *breaker_report(void);
/* Tests: read the time from now (a monotonic clock in microseconds)
 * instead of now_us, so cooldowns and windows pass without sleeping; NULL
 * puts now_us back. */
void breaker_set_clock(uint64_t (*now)(void));
/* Free every breaker (at exit). */
void breaker_free_all(void);

#endif
