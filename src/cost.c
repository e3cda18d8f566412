/* cost.c - see cost.h. */
#include "cost.h"

#include <stdio.h>
#include <string.h>

double cost_usd(const struct model *m, long prompt_tokens, long completion_tokens)
{
    if (prompt_tokens < 0)
        prompt_tokens = 0;
    if (completion_tokens < 0)
        completion_tokens = 0;
    return ((double)prompt_tokens * m->input_per_mtok +
            (double)completion_tokens * m->output_per_mtok) /
           1e6;
}

double cost_estimate(const struct model *m, size_t prompt_chars, long max_tokens,
                     long default_completion)
{
    long prompt_tokens = (long)((prompt_chars + 3) / 4) + 8;
    long completion = max_tokens > 0 ? max_tokens : default_completion;

    return cost_usd(m, prompt_tokens, completion);
}

void cost_format(double usd, char *out, size_t n)
{
    size_t len;

    /* Twelve decimals resolve a single token at $0.01 per million; trailing
     * zeros are trimmed so "0.000123" reads as it should. */
    snprintf(out, n, "%.12f", usd < 0 ? 0.0 : usd);
    len = strlen(out);
    while (len > 1 && out[len - 1] == '0' && out[len - 2] != '.')
        out[--len] = '\0';
}
