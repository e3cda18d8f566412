/* cost.h - USD cost of calls from the price table. */
#ifndef SLUICE_COST_H
#define SLUICE_COST_H

#include "config.h"

/* Cost of one call that used the given tokens. */
double cost_usd(const struct model *m, long prompt_tokens, long completion_tokens);

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
