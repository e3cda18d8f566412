/* limits_types.h - what a request's limits said, as the exchange keeps it
 * for the x-ratelimit-* headers (limits.h does the counting). Type-only, so
 * the exchange can hold it without depending on limits.c.
 */
#ifndef SLUICE_LIMITS_TYPES_H
#define SLUICE_LIMITS_TYPES_H

/* What the x-ratelimit-* headers say. -1 = no such limit. */
struct limit_info {
    long limit_requests, remaining_requests;
    long limit_tokens, remaining_tokens;
    long reset_ms;        /* until the minute's counts start again */
    const char *exceeded; /* "rpm", "tpm", "budget", or NULL when admitted */
    double spent_usd, budget_usd;
    double held_usd; /* held by the requests in flight, before this one */
};

#endif
