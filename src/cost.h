/* cost.h - USD cost of calls from the price table. */
#ifndef SLUICE_COST_H
#define SLUICE_COST_H

#include "config.h"

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

/* Format a cost for the x-sluice-cost header: plain decimal, no exponent. */
void cost_format(double usd, char *out, size_t n);

#endif
