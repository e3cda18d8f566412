/* cost.c - see cost.h. */
#include "cost.h"
#include "caps.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A token count that can be summed and priced: negative as 0, and no more
 * than a billion billions, so sums do not overflow. */
static long clamp_tokens(long n)
{
    return n < 0 ? 0 : n > 1000000000000000000L / 8 ? 1000000000000000000L / 8 : n;
}

double cost_usd_cached(const struct model *m, long prompt_tokens, long cached_tokens,
                       long cache_write_tokens, long completion_tokens)
{
    double read_price = m->cache_read_per_mtok >= 0 ? m->cache_read_per_mtok : m->input_per_mtok;
    double write_price = m->cache_write_per_mtok >= 0 ? m->cache_write_per_mtok : m->input_per_mtok;
    long uncached;

    prompt_tokens = clamp_tokens(prompt_tokens);
    cached_tokens = clamp_tokens(cached_tokens);
    cache_write_tokens = clamp_tokens(cache_write_tokens);
    /* The cached parts are within the prompt; a usage that says otherwise
     * is priced as if the prompt were their sum, never below zero. */
    if (cached_tokens + cache_write_tokens > prompt_tokens)
        prompt_tokens = cached_tokens + cache_write_tokens;
    uncached = prompt_tokens - cached_tokens - cache_write_tokens;
    return ((double)uncached * m->input_per_mtok + (double)cached_tokens * read_price +
            (double)cache_write_tokens * write_price +
            (double)clamp_tokens(completion_tokens) * m->output_per_mtok) /
           1e6;
}

double cost_usd(const struct model *m, long prompt_tokens, long completion_tokens)
{
    return cost_usd_cached(m, prompt_tokens, 0, 0, completion_tokens);
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

double cost_expected(const struct model *m, const struct request_info *ri, long completion)
{
    long n = ri->max_tokens;

    if (n <= 0)
        n = completion > 0 ? completion
                           : (m->est_completion_tokens > 0 ? (long)ceil(m->est_completion_tokens)
                                                           : COST_DEFAULT_COMPLETION);
    return cost_estimate(m, ri->prompt_chars, n, n) * (double)(ri->n > 0 ? ri->n : 1);
}

double cost_stage_estimate(const struct stage *st, const struct request_info *ri, cost_paid_fn paid,
                           const void *ctx)
{
    double est = 0;

    for (size_t i = 0; i < st->nmodels; i++)
        if (paid == NULL || !paid(ctx, st->models[i]))
            est += cost_expected(st->models[i], ri, 0) * (st->samples > 1 ? st->samples : 1);
    if (st->scorer == SCORER_JUDGE && st->judge)
        est += cost_expected(st->judge, ri, COST_JUDGE_COMPLETION);
    return est;
}

/* The models a route's stages before the current one have called. */
struct seen {
    const struct model *m[ROUTE_MODELS_MAX];
    size_t n;
};

static int seen_cb(const void *ctx, const struct model *m)
{
    const struct seen *s = ctx;

    for (size_t i = 0; i < s->n; i++)
        if (s->m[i] == m)
            return 1;
    return 0;
}

double cost_route_estimate(const struct route *rt, const struct request_info *ri)
{
    struct seen seen = {.n = 0};
    double scored = 0, answer = 0, total;

    for (size_t i = 0; i < rt->nstages; i++) {
        const struct stage *st = &rt->stages[i];
        double est = cost_stage_estimate(st, ri, seen_cb, &seen);

        if (st->scorer == SCORER_NONE || i + 1 == rt->nstages)
            answer = est > answer ? est : answer;
        else
            scored += est;
        /* config.c allows no more models; were there more, they would be
         * counted again: too high an estimate, never too low. */
        for (size_t j = 0; j < st->nmodels && seen.n < ROUTE_MODELS_MAX; j++)
            if (!seen_cb(&seen, st->models[j]))
                seen.m[seen.n++] = st->models[j];
    }
    total = scored + answer;
    return rt->max_cost > 0 && total > rt->max_cost ? rt->max_cost : total;
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
