/* tune_search.c - the FrugalGPT chain search: every chain of 1 to 3 stages
 * (model order, scorer and threshold per stage) over the labelled queries,
 * keeping the accuracy/cost Pareto frontier.
 *
 * A non-final stage option (model, scorer, threshold) is reduced to one
 * bitset over the queries: "this stage answers and accepts". A chain's
 * outcome is then bitset algebra: stage 1 answers A1, stage 2 answers
 * ~A1 & A2, the last stage whatever is left. Correct answers are popcounts
 * against each model's correctness bits; cost is each model's cost summed
 * over the queries that reach the first stage calling it (a model is paid
 * once per query, as the gateway reuses answers within a request).
 *
 * With 11 models, about 1.3k options per stage give 1.6M (stage 1, stage 2)
 * prefixes and 14M three-stage chains. Two things keep it to a second:
 * per-(S1) sums are computed once, and a prefix or chain whose best case
 * (every remaining query right, no further cost) is already dominated on the
 * frontier is skipped before its cost is summed (on arc-challenge, 35k of
 * the 14M chains get that far).
 *
 * Salvage (the last stage has no answer, so the best-scored earlier answer
 * is returned) only happens on the few queries some model has no answer
 * for. Those queries are numbered apart (the "u" sets), each option keeps
 * its score on them, and a chain's salvaged right answers are counted on
 * them alone, so the search's numbers stay exactly tune_simulate's.
 */
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COST_EPS 1e-12 /* costs this close are equal, so the simpler chain wins */

struct sopt {
    int model;
    enum tune_scorer kind;
    double threshold;
    int partners[2];
    int npartners;
    uint32_t called; /* models this stage calls */
};

struct search {
    const struct tune_data *d;
    size_t nw; /* 64-bit words per bitset */
    size_t nm;
    uint64_t *inc; /* searched queries */
    uint64_t **present, **correct;
    double **cost; /* [m][q], 0 where missing or not searched */
    double *total; /* [m]: cost over all searched queries */
    struct sopt *opt;
    size_t nopt, capopt;
    uint64_t *pool; /* bitset storage for options */
    struct tune_search_result *res;
    /* Salvage: the searched queries some model has no answer for, as u =
     * 0..nu-1, in bitsets of nwu words. */
    size_t nu, nwu;
    size_t *uq;           /* [u]: the query */
    uint64_t **missing_u; /* [m]: m has no answer */
    uint64_t **correct_u; /* [m]: m's answer is right */
    double *usc;          /* [option * nu + u]: the stage's score, NAN if unscored */
};

void tune_search_opts_default(struct tune_search_opts *o)
{
    o->max_stages = 3;
    o->nthresholds = 19;
    o->use_learned = 1;
    o->use_agree = 1;
    o->use_rules = 1;
    o->max_partners = 2;
}

static size_t popcount_and(const uint64_t *a, const uint64_t *b, size_t nw)
{
    size_t n = 0;

    for (size_t i = 0; i < nw; i++)
        n += (size_t)__builtin_popcountll(a[i] & b[i]);
    return n;
}

static size_t popcount(const uint64_t *a, size_t nw)
{
    size_t n = 0;

    for (size_t i = 0; i < nw; i++)
        n += (size_t)__builtin_popcountll(a[i]);
    return n;
}

static double masked_sum(const uint64_t *mask, const double *v, size_t nw)
{
    double s = 0;

    for (size_t i = 0; i < nw; i++) {
        uint64_t w = mask[i];

        while (w) {
            s += v[i * 64 + (size_t)__builtin_ctzll(w)];
            w &= w - 1;
        }
    }
    return s;
}

/* ---- frontier ---- */

/* Index of the last point with cost <= c (+eps), or -1. */
static long frontier_floor(const struct tune_frontier *f, double c)
{
    long lo = 0, hi = (long)f->n - 1, ans = -1;

    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;

        if (f->pt[mid].cost <= c + COST_EPS) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

/* Would a chain with `correct` right answers at `cost` be dominated (or
 * tied, and so lose to the simpler chain found earlier)? */
static int frontier_dominated(const struct tune_frontier *f, size_t correct, double cost)
{
    long i = frontier_floor(f, cost);

    return i >= 0 && f->pt[i].correct >= correct;
}

static void frontier_insert(struct tune_frontier *f, const struct tune_chain *c, size_t correct,
                            double cost)
{
    long i = frontier_floor(f, cost);
    size_t at, j;

    if (i >= 0 && f->pt[i].correct >= correct)
        return;
    at = (size_t)(i + 1);
    /* Points from `at` on cost more; drop those it makes redundant. */
    j = at;
    while (j < f->n && f->pt[j].correct <= correct)
        j++;
    if (j == at) {
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->pt = xrealloc(f->pt, f->cap * sizeof(*f->pt));
        }
        memmove(&f->pt[at + 1], &f->pt[at], (f->n - at) * sizeof(*f->pt));
        f->n++;
    } else if (j > at + 1) {
        memmove(&f->pt[at + 1], &f->pt[j], (f->n - j) * sizeof(*f->pt));
        f->n -= j - at - 1;
    }
    f->pt[at].chain = *c;
    f->pt[at].correct = correct;
    f->pt[at].cost = cost;
}

void tune_frontier_free(struct tune_frontier *f)
{
    free(f->pt);
    memset(f, 0, sizeof(*f));
}

const struct tune_point *tune_frontier_pick(const struct tune_frontier *f, double budget,
                                            double target)
{
    if (f->n == 0 || f->nq == 0)
        return NULL;
    if (target >= 0) {
        for (size_t i = 0; i < f->n; i++)
            if ((double)f->pt[i].correct / (double)f->nq >= target - 1e-12)
                return &f->pt[i];
        return NULL;
    }
    if (budget >= 0) {
        long i = frontier_floor(f, budget * (double)f->nq);

        return i >= 0 ? &f->pt[i] : NULL;
    }
    return &f->pt[f->n - 1];
}

/* ---- options ---- */

static uint64_t *pool_bits(struct search *s, size_t k)
{
    return s->pool + k * s->nw;
}

static struct sopt *opt_new(struct search *s, int model, enum tune_scorer kind)
{
    struct sopt *o;

    if (s->nopt == s->capopt) {
        s->capopt = s->capopt ? s->capopt * 2 : 512;
        s->opt = xrealloc(s->opt, s->capopt * sizeof(*s->opt));
        s->pool = xrealloc(s->pool, s->capopt * s->nw * sizeof(uint64_t));
    }
    o = &s->opt[s->nopt];
    memset(o, 0, sizeof(*o));
    o->model = model;
    o->kind = kind;
    o->called = 1u << model;
    memset(pool_bits(s, s->nopt), 0, s->nw * sizeof(uint64_t));
    return o;
}

/* Keep the option just built unless it is useless as a non-final stage: it
 * accepts nothing (pure cost) or everything its model answers (the chain
 * would end there: that is a shorter chain). */
static void opt_commit(struct search *s)
{
    const struct sopt *o = &s->opt[s->nopt];
    const uint64_t *acc = pool_bits(s, s->nopt);
    size_t n = popcount(acc, s->nw);

    if (n == 0 || n == popcount(s->present[o->model], s->nw))
        return;
    s->nopt++;
}

static void set_bit(uint64_t *b, size_t q)
{
    b[q / 64] |= 1ull << (q % 64);
}

static int test_bit(const uint64_t *b, size_t q)
{
    return (int)((b[q / 64] >> (q % 64)) & 1);
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Thresholds are written to gateway.conf with 4 decimals; search with the
 * value that will be written. */
static double round4(double x)
{
    return floor(x * 10000.0 + 0.5) / 10000.0;
}

/* Learned options of one scorer (a model, and the peers whose answers it
 * reads, which the stage calls too), at nthr score quantiles. */
static void build_learned(struct search *s, const struct tune_head *h, int nthr)
{
    const struct tune_data *d = s->d;
    double *v = xmalloc((d->nq ? d->nq : 1) * sizeof(*v));
    uint64_t *ok = xcalloc(s->nw ? s->nw : 1, sizeof(uint64_t));
    double last = -1;
    size_t n = 0;

    sl_assert(h->npeers <= (int)ARRAY_LEN(s->opt[0].partners));
    /* Queries the stage can score: its model and every peer answered. */
    for (size_t q = 0; q < d->nq; q++) {
        int all = test_bit(s->present[h->model], q);

        for (int k = 0; k < h->npeers; k++)
            all &= test_bit(s->present[h->peers[k]], q);
        if (all) {
            set_bit(ok, q);
            v[n++] = h->score[q];
        }
    }
    qsort(v, n, sizeof(*v), dbl_cmp);
    /* Thresholds at the score quantiles 1/(T+1) .. T/(T+1). */
    for (int j = 1; j <= nthr && n > 0; j++) {
        double t = round4(v[(size_t)((double)j * (double)n / (double)(nthr + 1))]);
        struct sopt *o;
        uint64_t *acc;

        if (t <= last)
            continue;
        last = t;
        o = opt_new(s, h->model, TS_LEARNED);
        o->threshold = t;
        o->npartners = h->npeers;
        for (int k = 0; k < h->npeers; k++) {
            o->partners[k] = h->peers[k];
            o->called |= 1u << h->peers[k];
        }
        acc = pool_bits(s, s->nopt);
        for (size_t q = 0; q < d->nq; q++)
            if (test_bit(ok, q) && d->q[q].ans[h->model].veto == VETO_NONE && h->score[q] >= t)
                set_bit(acc, q);
        opt_commit(s);
    }
    free(v);
    free(ok);
}

static void build_rules(struct search *s, int m)
{
    const struct tune_data *d = s->d;
    uint64_t *acc;

    opt_new(s, m, TS_RULES)->threshold = 1.0;
    acc = pool_bits(s, s->nopt);
    for (size_t q = 0; q < d->nq; q++)
        if (test_bit(s->present[m], q) && d->q[q].ans[m].veto == VETO_NONE)
            set_bit(acc, q);
    opt_commit(s);
}

/* Agreement of m with partners p (np of them) at threshold t, scored
 * exactly as tune_simulate does. */
static void build_agree(struct search *s, int m, const int *p, int np, double t)
{
    const struct tune_data *d = s->d;
    struct sopt *o = opt_new(s, m, TS_AGREE);
    uint64_t *acc;

    o->threshold = t;
    o->npartners = np;
    for (int k = 0; k < np; k++) {
        o->partners[k] = p[k];
        o->called |= 1u << p[k];
    }
    acc = pool_bits(s, s->nopt);
    for (size_t q = 0; q < d->nq; q++) {
        const struct tune_answer *a = d->q[q].ans;
        int key = a[m].key, n = 1, complete = 1;

        if (!test_bit(s->present[m], q) || a[m].veto != VETO_NONE)
            continue;
        /* a partner without an answer is an upstream error: escalate */
        for (int k = 0; k < np; k++)
            complete &= test_bit(s->present[p[k]], q);
        if (!complete)
            continue;
        for (int k = 0; k < np; k++)
            n += key >= 0 && a[p[k]].key == key;
        if ((double)n / (double)(1 + np) >= t)
            set_bit(acc, q);
    }
    opt_commit(s);
}

static void build_options(struct search *s, const struct tune_scores *sc,
                          const struct tune_search_opts *o)
{
    int nm = (int)s->nm;

    for (int m = 0; m < nm; m++) {
        for (size_t i = 0; o->use_learned && sc && i < sc->n; i++)
            if (sc->h[i].model == m)
                build_learned(s, &sc->h[i], o->nthresholds);
        if (o->use_rules)
            build_rules(s, m);
        if (!o->use_agree)
            continue;
        for (int a = 0; a < nm; a++) {
            if (a == m)
                continue;
            build_agree(s, m, &a, 1, 1.0);
        }
        if (o->max_partners < 2)
            continue;
        for (int a = 0; a < nm; a++) {
            for (int b = a + 1; b < nm; b++) {
                int p[2] = {a, b};

                if (a == m || b == m)
                    continue;
                build_agree(s, m, p, 2, 1.0);  /* all three agree */
                build_agree(s, m, p, 2, 0.66); /* at least one partner agrees */
            }
        }
    }
}

static void stage_from_opt(struct tune_stage *st, const struct sopt *o)
{
    memset(st, 0, sizeof(*st));
    st->model = o->model;
    st->kind = o->kind;
    st->threshold = o->threshold;
    st->npartners = o->npartners;
    for (int k = 0; k < o->npartners; k++)
        st->partners[k] = o->partners[k];
}

/* The queries salvage can matter on, and every option's score on them. */
static void build_salvage(struct search *s, const struct tune_scores *score)
{
    const struct tune_data *d = s->d;

    s->uq = xmalloc((d->nq ? d->nq : 1) * sizeof(*s->uq));
    for (size_t q = 0; q < d->nq; q++) {
        int some_missing = 0;

        if (!test_bit(s->inc, q))
            continue;
        for (size_t m = 0; m < s->nm; m++)
            some_missing |= d->q[q].ans[m].content == NULL;
        if (some_missing)
            s->uq[s->nu++] = q;
    }
    s->nwu = (s->nu + 63) / 64;
    s->missing_u = xmalloc(s->nm * sizeof(*s->missing_u));
    s->correct_u = xmalloc(s->nm * sizeof(*s->correct_u));
    for (size_t m = 0; m < s->nm; m++) {
        s->missing_u[m] = xcalloc(s->nwu ? s->nwu : 1, sizeof(uint64_t));
        s->correct_u[m] = xcalloc(s->nwu ? s->nwu : 1, sizeof(uint64_t));
        for (size_t u = 0; u < s->nu; u++) {
            const struct tune_answer *a = &d->q[s->uq[u]].ans[m];

            if (a->content == NULL)
                set_bit(s->missing_u[m], u);
            else if (a->correct)
                set_bit(s->correct_u[m], u);
        }
    }
    s->usc = xmalloc((s->nopt * s->nu + 1) * sizeof(*s->usc));
    for (size_t k = 0; k < s->nopt; k++) {
        struct tune_stage st;

        stage_from_opt(&st, &s->opt[k]);
        for (size_t u = 0; u < s->nu; u++)
            s->usc[k * s->nu + u] = tune_stage_score(d, &st, score, s->uq[u]);
    }
}

/* Of the u-queries in reach (those that get to the last stage), the ones
 * where salvage returns a right answer, the last stage being unanswered:
 * the best-scored of stage i's and (if j >= 0) stage j's answers, ties to
 * the later stage, as tune_simulate. Written to out (nwu words). */
static void salvage_right(const struct search *s, const uint64_t *reach, size_t i, long j,
                          uint64_t *out)
{
    int m1 = s->opt[i].model, m2 = j >= 0 ? s->opt[j].model : -1;

    memset(out, 0, s->nwu * sizeof(uint64_t));
    for (size_t u = 0; u < s->nu; u++) {
        double s1 = s->usc[i * s->nu + u];
        double s2 = j >= 0 ? s->usc[(size_t)j * s->nu + u] : NAN;
        int m;

        if (!test_bit(reach, u))
            continue;
        if (!isnan(s2) && (isnan(s1) || s2 >= s1))
            m = m2;
        else if (!isnan(s1))
            m = m1;
        else
            continue; /* nothing was scored: the query fails */
        if (test_bit(s->correct_u[m], u))
            set_bit(out, u);
    }
}

/* The u-bits of a query bitset. */
static void to_u(const struct search *s, const uint64_t *bits, uint64_t *out)
{
    memset(out, 0, s->nwu * sizeof(uint64_t));
    for (size_t u = 0; u < s->nu; u++)
        if (test_bit(bits, s->uq[u]))
            set_bit(out, u);
}

static void final_stage(struct tune_stage *st, int m)
{
    memset(st, 0, sizeof(*st));
    st->model = m;
    st->kind = TS_NONE;
}

void tune_search_result_free(struct tune_search_result *res)
{
    tune_frontier_free(&res->all);
    for (int k = 0; k < TUNE_SEARCH_STAGES; k++)
        tune_frontier_free(&res->by_stages[k]);
}

const struct tune_point *tune_pick(const struct tune_search_result *res, double budget,
                                   double target, double penalty)
{
    const struct tune_point *best = NULL;
    double best_val = 0;

    for (int k = 0; k < TUNE_SEARCH_STAGES; k++) {
        const struct tune_frontier *f = &res->by_stages[k];
        const struct tune_point *p;
        double nq = f->nq ? (double)f->nq : 1;

        if (target >= 0) {
            p = tune_frontier_pick(f, -1, target + penalty * k);
            /* Cheapest wins; the simpler chain on a tie (k ascending). */
            if (p && (best == NULL || p->cost < best->cost - 1e-12))
                best = p;
        } else {
            double val;

            p = tune_frontier_pick(f, budget, -1);
            if (p == NULL)
                continue;
            val = (double)p->correct / nq - penalty * k;
            if (best == NULL || val > best_val + 1e-12) {
                best = p;
                best_val = val;
            }
        }
    }
    return best;
}

void tune_search(const struct tune_data *d, const struct tune_scores *score,
                 const unsigned char *include, const struct tune_search_opts *o, int progress,
                 struct tune_search_result *res)
{
    struct tune_frontier *f1, *f2, *f3;
    struct search s;
    size_t nm = d->nmodels;
    uint64_t *r1, *r2, *a2;
    uint64_t *r1u, *r2u, *sal1u, *sal12u; /* u-sets: reach, salvaged right */
    double *cost_r1 = xmalloc(nm * sizeof(double));
    struct tune_progress prog;

    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    f1 = &res->by_stages[0];
    f2 = &res->by_stages[1];
    f3 = &res->by_stages[2];
    s.d = d;
    s.nm = nm;
    s.nw = (d->nq + 63) / 64;
    s.res = res;
    s.inc = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));
    s.present = xmalloc(nm * sizeof(*s.present));
    s.correct = xmalloc(nm * sizeof(*s.correct));
    s.cost = xmalloc(nm * sizeof(*s.cost));
    s.total = xcalloc(nm, sizeof(double));
    for (size_t q = 0; q < d->nq; q++)
        if (include == NULL || include[q])
            set_bit(s.inc, q);
    f1->nq = f2->nq = f3->nq = res->all.nq = popcount(s.inc, s.nw);
    for (size_t m = 0; m < nm; m++) {
        s.present[m] = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));
        s.correct[m] = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));
        s.cost[m] = xcalloc(s.nw * 64 + 1, sizeof(double));
        for (size_t q = 0; q < d->nq; q++) {
            const struct tune_answer *a = &d->q[q].ans[m];

            if (!test_bit(s.inc, q) || a->content == NULL)
                continue;
            set_bit(s.present[m], q);
            if (a->correct)
                set_bit(s.correct[m], q);
            s.cost[m][q] = a->cost;
        }
        s.total[m] = masked_sum(s.inc, s.cost[m], s.nw);
    }
    build_options(&s, score, o);
    build_salvage(&s, score);
    r1u = xcalloc(s.nwu ? s.nwu : 1, sizeof(uint64_t));
    r2u = xcalloc(s.nwu ? s.nwu : 1, sizeof(uint64_t));
    sal1u = xcalloc(s.nwu ? s.nwu : 1, sizeof(uint64_t));
    sal12u = xcalloc(s.nwu ? s.nwu : 1, sizeof(uint64_t));
    r1 = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));
    r2 = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));
    a2 = xcalloc(s.nw ? s.nw : 1, sizeof(uint64_t));

    /* One stage. */
    for (size_t m = 0; m < nm; m++) {
        struct tune_chain c = {.n = 1};

        final_stage(&c.st[0], (int)m);
        frontier_insert(f1, &c, popcount(s.correct[m], s.nw), s.total[m]);
    }

    if (progress)
        tune_progress_start(&prog, "searching chains", s.nopt);
    for (size_t i = 0; i < s.nopt && o->max_stages >= 2; i++) {
        const struct sopt *o1 = &s.opt[i];
        const uint64_t *acc1 = pool_bits(&s, i);
        size_t corr1 = popcount_and(acc1, s.correct[o1->model], s.nw);
        double cost1 = 0;
        struct tune_chain c;

        for (size_t m = 0; m < nm; m++)
            if (o1->called & (1u << m))
                cost1 += s.total[m];
        for (size_t w = 0; w < s.nw; w++)
            r1[w] = s.inc[w] & ~acc1[w];
        for (size_t m = 0; m < nm; m++)
            cost_r1[m] = masked_sum(r1, s.cost[m], s.nw);
        if (s.nu) {
            to_u(&s, r1, r1u);
            salvage_right(&s, r1u, i, -1, sal1u);
        }
        stage_from_opt(&c.st[0], o1);

        /* Two stages: o1 -> m2. */
        c.n = 2;
        for (size_t m2 = 0; m2 < nm; m2++) {
            size_t corr;
            double cost;

            if ((int)m2 == o1->model)
                continue;
            corr = corr1 + popcount_and(r1, s.correct[m2], s.nw);
            if (s.nu)
                corr += popcount_and(sal1u, s.missing_u[m2], s.nwu);
            cost = cost1 + ((o1->called & (1u << m2)) ? 0 : cost_r1[m2]);
            final_stage(&c.st[1], (int)m2);
            frontier_insert(f2, &c, corr, cost);
        }

        /* Three stages: o1 -> o2 -> m3. */
        c.n = 3;
        for (size_t j = 0; j < s.nopt && o->max_stages >= 3; j++) {
            const struct sopt *o2 = &s.opt[j];
            const uint64_t *acc2 = pool_bits(&s, j);
            uint32_t called12 = o1->called | o2->called;
            size_t corr12, left;
            double cost12 = cost1;

            if (o2->model == o1->model)
                continue;
            for (size_t w = 0; w < s.nw; w++) {
                a2[w] = r1[w] & acc2[w];
                r2[w] = r1[w] & ~acc2[w];
            }
            corr12 = corr1 + popcount_and(a2, s.correct[o2->model], s.nw);
            for (size_t m = 0; m < nm; m++)
                if ((o2->called & (1u << m)) && !(o1->called & (1u << m)))
                    cost12 += cost_r1[m];
            left = popcount(r2, s.nw);
            /* Best case: every query left is answered right at no cost. */
            if (frontier_dominated(f3, corr12 + left, cost12))
                continue;
            if (s.nu) {
                to_u(&s, r2, r2u);
                salvage_right(&s, r2u, i, (long)j, sal12u);
            }
            stage_from_opt(&c.st[1], o2);
            for (size_t m3 = 0; m3 < nm; m3++) {
                size_t corr;
                double cost = cost12;

                if ((int)m3 == o1->model || (int)m3 == o2->model)
                    continue;
                corr = corr12 + popcount_and(r2, s.correct[m3], s.nw);
                if (s.nu)
                    corr += popcount_and(sal12u, s.missing_u[m3], s.nwu);
                if (frontier_dominated(f3, corr, cost12))
                    continue;
                if (!(called12 & (1u << m3)))
                    cost += masked_sum(r2, s.cost[m3], s.nw);
                final_stage(&c.st[2], (int)m3);
                frontier_insert(f3, &c, corr, cost);
            }
        }
        if (progress)
            tune_progress_step(&prog, 1);
    }
    if (progress)
        tune_progress_end(&prog);
    /* The overall frontier; shorter chains first, so they win ties. */
    for (int k = 0; k < TUNE_SEARCH_STAGES; k++)
        for (size_t i = 0; i < res->by_stages[k].n; i++)
            frontier_insert(&res->all, &res->by_stages[k].pt[i].chain,
                            res->by_stages[k].pt[i].correct, res->by_stages[k].pt[i].cost);

    free(r1);
    free(r2);
    free(a2);
    free(r1u);
    free(r2u);
    free(sal1u);
    free(sal12u);
    free(cost_r1);
    for (size_t m = 0; m < nm; m++) {
        free(s.present[m]);
        free(s.correct[m]);
        free(s.cost[m]);
        free(s.missing_u[m]);
        free(s.correct_u[m]);
    }
    free(s.missing_u);
    free(s.correct_u);
    free(s.uq);
    free(s.usc);
    free(s.present);
    free(s.correct);
    free(s.cost);
    free(s.total);
    free(s.inc);
    free(s.opt);
    free(s.pool);
}
