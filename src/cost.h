/* cost.h - USD cost of calls from the price table. */
#ifndef SLUICE_COST_H
#define SLUICE_COST_H

#include "config.h"
#include "request.h"

/* Completion tokens expected of a model before any answer of it was seen,
 * and of a judge's verdict. */
#define COST_DEFAULT_COMPLETION 256
#define COST_JUDGE_COMPLETION 8

/* Cost of one call that used the given tokens. */
double cost_usd(const struct model *m, long prompt_tokens, long completion_tokens);

/* The same with a provider's prompt cache. prompt_tokens counts every
 * prompt token the OpenAI way, cached ones included; of them cached_tokens
 * were read from the cache (priced at cache_read_per_mtok) and
 * cache_write_tokens written to it (cache_write_per_mtok; Anthropic bills
 * writes). The rest is priced at input_per_mtok, as is a cache price the
 * model leaves unset. Anthropic's own input_tokens excludes both cached
 * parts: its answers are translated to this count before they are priced
 * (provider_anthropic.c), so one formula is right for both. */
double cost_usd_cached(const struct model *m, long prompt_tokens, long cached_tokens,
                       long cache_write_tokens, long completion_tokens);

/* Tokens in n characters of text, about 4 a token: for when a provider gave
 * no usage. */
long cost_tokens(size_t chars);

/* Expected cost of a call before it is made: prompt tokens estimated from
 * the prompt's characters (about 4 per token, plus a few per message), and
 * completion tokens from max_tokens when given, else `default_completion`. */
double cost_estimate(const struct model *m, size_t prompt_chars, long max_tokens,
                     long default_completion);

/* Expected cost of calling m for ri: cost_estimate with ri's max_tokens,
 * else `completion` when > 0, else the model's running mean of completion
 * tokens (COST_DEFAULT_COMPLETION before its first answer), times the
 * choices asked (n). Reads m->est_completion_tokens: loop thread only. */
double cost_expected(const struct model *m, const struct request_info *ri, long completion);

/* Whether a run has already paid for model m (a run calls a model once). */
typedef int (*cost_paid_fn)(const void *ctx, const struct model *m);

/* What stage st is still expected to cost on ri: each of its models that
 * paid(ctx, m) says is not yet paid (paid may be NULL: none is), times its
 * samples, plus the judge's call. cascade.c skips a stage when this would
 * overrun the route's max_cost. Loop thread only. */
double cost_stage_estimate(const struct stage *st, const struct request_info *ri, cost_paid_fn paid,
                           const void *ctx);

/* The most a run of route rt is expected to spend on ri, what limits.c
 * reserves against a key's budget when it admits the request. Every
 * scored stage but the last is paid whether it accepts or escalates, so
 * those add up; of the others (a fallback's models, a cascade's last
 * stage) only the one that answers is paid (a failed call costs nothing),
 * so the dearest counts. A model is counted once, as a run calls it once.
 * Never more than the route's max_cost, which the run does not plan to
 * pass. Loop thread only. */
double cost_route_estimate(const struct route *rt, const struct request_info *ri);

/* Format a cost for the x-sluice-cost header: plain decimal, no exponent. */
void cost_format(double usd, char *out, size_t n);

#endif
