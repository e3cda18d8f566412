/* cost.c - see cost.h. */
#include "cost.h"
#include "util.h"

#include <stdint.h>
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

long cost_tokens(size_t chars)
{
    return (long)((chars + 3) / 4);
}

double cost_estimate(const struct model *m, size_t prompt_chars, long max_tokens,
                     long default_completion)
{
    long prompt_tokens = cost_tokens(prompt_chars) + 8;
    long completion = max_tokens > 0 ? max_tokens : default_completion;

    return cost_usd(m, prompt_tokens, completion);
}

void cost_format(double usd, char *out, size_t n)
{
    /* Fixed point in picodollars: twelve decimals resolve a single token at
     * $0.01 per million, with no printf of a double on every request. */
    uint64_t pico, whole, frac;
    char digits[32];
    int len, i;

    if (!(usd > 0))
        usd = 0;
    if (usd > 1e6)
        usd = 1e6;
    pico = (uint64_t)(usd * 1e12 + 0.5);
    whole = pico / 1000000000000u;
    frac = pico % 1000000000000u;
    len = (int)fmt_u64(digits, whole);
    digits[len++] = '.';
    for (i = 11; i >= 0; i--) {
        digits[len + i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    len += 12;
    /* Trailing zeros go, but one digit stays after the point: "0.0". */
    while (digits[len - 1] == '0' && digits[len - 2] != '.')
        len--;
    digits[len] = '\0';
    if (n > 0) {
        size_t m = (size_t)len < n - 1 ? (size_t)len : n - 1;

        memcpy(out, digits, m);
        out[m] = '\0';
    }
}
