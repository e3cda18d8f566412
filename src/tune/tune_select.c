/* tune_select.c - choosing a chain to deploy, and one whole fit: train the
 * scorers, search the chains, and choose for each budget, with the choice
 * itself cross-validated.
 *
 * The chosen chain's numbers on the data it was chosen on are optimistic
 * (the best of millions of chains is picked on the same queries), so a fit
 * cross-validates the whole selection: for each fold, search on the other
 * folds, pick by the same rule, and run the pick on the held-out fold.
 * `fit` runs tune_fit_run() twice: on all the data (what it deploys), and
 * on 80% of it for the nested check, whose picks are then run on the 20%
 * it never saw.
 */
#include "tune.h"
#include "caps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the choice ---- */

void tune_choice_init(struct tune_choice *c)
{
    memset(c, 0, sizeof(*c));
    c->budget = -1;
    c->budget_ratio = -1;
    c->target = -1;
    c->target_pts = NAN;
    c->penalty = 0.005;
}

/* A number, optionally followed by `suffix`: 0 and *x, *had set, or -1. */
static int number_suffix(const char *s, const char *suffix, double *x, int *had)
{
    size_t n = strlen(s), k = strlen(suffix);
    char tmp[64];

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n + 1);
    *had = n > k && strcmp(tmp + n - k, suffix) == 0;
    if (*had)
        tmp[n - k] = '\0';
    return parse_double(tmp, x);
}

int tune_choice_budget(struct tune_choice *c, const char *s)
{
    double x;
    int pct;

    if (number_suffix(s, "%", &x, &pct) < 0 || x <= 0)
        return -1;
    if (pct)
        c->budget_ratio = x / 100.0;
    else
        c->budget = x;
    c->have = 1;
    return 0;
}

int tune_choice_target(struct tune_choice *c, const char *s)
{
    double x;
    int pts;

    if (number_suffix(s, "pt", &x, &pts) < 0 || (pts ? fabs(x) > 100 : (x < 0 || x > 1)))
        return -1;
    if (pts)
        c->target_pts = x;
    else
        c->target = x;
    c->have = 1;
    return 0;
}

void tune_ref_stats(const struct tune_data *d, int ref, const unsigned char *include, double *acc,
                    double *cost)
{
    struct tune_chain c = {.n = 1};
    struct tune_result r;

    c.st[0].model = ref;
    c.st[0].kind = TS_NONE;
    tune_simulate(d, &c, NULL, include, &r);
    *acc = r.n ? (double)r.correct / (double)r.n : 0;
    *cost = r.n ? r.cost / (double)r.n : 0;
}

int tune_choice_describe(const struct tune_choice *ch, const struct tune_data *d, int ref,
                         struct buf *out)
{
    const char *rn = d->models[ref].name;

    if (ch->knee)
        return buf_printf(
            out,
            "the knee of the frontier (no --budget or --target-accuracy given): the "
            "chain farthest above the line from the cheapest chain to the most accurate "
            "one within %s's $/query, in accuracy against log cost",
            rn);
    if (!isnan(ch->target_pts) && ch->target_pts < 0)
        return buf_printf(out, "cheapest chain at most %.2f points under %s's accuracy",
                          -ch->target_pts, rn);
    if (!isnan(ch->target_pts))
        return buf_printf(out, "cheapest chain at least %.2f points over %s's accuracy",
                          ch->target_pts, rn);
    if (ch->target >= 0)
        return buf_printf(out, "cheapest chain reaching accuracy %.4f", ch->target);
    if (ch->budget_ratio >= 0)
        return buf_printf(out, "most accurate chain within %.1f%% of %s's $/query",
                          ch->budget_ratio * 100, rn);
    return buf_printf(out, "most accurate chain within $%.6g/query", ch->budget);
}

/* The knee of the penalised frontier: of the chains within max_cost (USD per
 * query), those that beat every cheaper one on accuracy minus the penalty
 * per extra stage, scaled to [0, 1] on both axes (log cost), and the one
 * farthest above the diagonal from the cheapest to the most accurate
 * (Satopaa et al.'s "Kneedle"). Returns its cost per query, or -1. */
static double knee_budget(const struct tune_search_result *res, double penalty, double max_cost,
                          struct tune_knee *kn)
{
    struct cand {
        double cost, val;
    } * c;
    size_t n = 0, cap = 0, m = 0;
    double best = -INFINITY, budget = -1;
    double nq;

    for (int k = 0; k < TUNE_SEARCH_STAGES; k++)
        cap += res->by_stages[k].n;
    c = xmalloc((cap ? cap : 1) * sizeof(*c));
    for (int k = 0; k < TUNE_SEARCH_STAGES; k++) {
        const struct tune_frontier *f = &res->by_stages[k];

        nq = f->nq ? (double)f->nq : 1;
        for (size_t i = 0; i < f->n; i++) {
            double cost = f->pt[i].cost / nq;

            if (cost > max_cost * (1 + 1e-12) || cost <= 0)
                continue;
            c[n].cost = cost;
            c[n].val = (double)f->pt[i].correct / nq - penalty * k;
            n++;
        }
    }
    /* Sort by cost; keep the points better than every cheaper one. */
    for (size_t i = 1; i < n; i++) {
        struct cand t = c[i];
        size_t j = i;

        while (j > 0 &&
               (c[j - 1].cost > t.cost || (c[j - 1].cost == t.cost && c[j - 1].val < t.val))) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        if (m == 0 || c[i].val > c[m - 1].val + 1e-12)
            c[m++] = c[i];
    if (m >= 1) {
        double x0 = log(c[0].cost), x1 = log(c[m - 1].cost);
        double y0 = c[0].val, y1 = c[m - 1].val;

        for (size_t i = 0; i < m; i++) {
            double x = x1 > x0 ? (log(c[i].cost) - x0) / (x1 - x0) : 0;
            double y = y1 > y0 ? (c[i].val - y0) / (y1 - y0) : 0;

            if (y - x > best + 1e-12) {
                best = y - x;
                budget = c[i].cost;
                if (kn) {
                    kn->cost = c[i].cost;
                    kn->acc = c[i].val;
                    kn->lo_cost = c[0].cost;
                    kn->lo_acc = c[0].val;
                    kn->hi_cost = c[m - 1].cost;
                    kn->hi_acc = c[m - 1].val;
                }
            }
        }
    }
    free(c);
    return budget;
}

const struct tune_point *tune_choose(const struct tune_data *d,
                                     const struct tune_search_result *res,
                                     const struct tune_choice *ch, double penalty, double margin,
                                     int ref, const unsigned char *include, struct tune_knee *kn)
{
    double racc, rcost, budget = -1, target = -1;
    const struct tune_point *p;

    tune_ref_stats(d, ref, include, &racc, &rcost);
    if (ch->knee)
        budget = knee_budget(res, penalty, rcost, kn);
    else if (!isnan(ch->target_pts))
        target = racc + ch->target_pts / 100.0;
    else if (ch->target >= 0)
        target = ch->target;
    else if (ch->budget_ratio >= 0)
        budget = ch->budget_ratio * rcost;
    else if (ch->budget >= 0)
        budget = ch->budget;
    else
        budget = rcost;
    if (!ch->knee && budget >= 0)
        budget *= margin;
    p = tune_pick(res, budget, target, penalty);
    /* A target out of reach gets the most accurate chain; a budget under
     * everything, the cheapest. */
    if (p == NULL && res->all.n > 0)
        p = target >= 0 ? &res->all.pt[res->all.n - 1] : &res->all.pt[0];
    return p;
}

/* ---- the choice, cross-validated ---- */

/* The searches of the cross-validation, one per fold on the other folds'
 * included queries. They do not depend on the penalty, so every candidate
 * penalty is judged on the same ones. */
static void cv_search(const struct tune_data *d, const struct tune_scores *sc, const int *fold,
                      const unsigned char *include, int folds, const struct tune_search_opts *so,
                      struct tune_cv *cv)
{
    struct tune_progress prog;

    cv->folds = folds;
    cv->res = xcalloc((size_t)folds, sizeof(*cv->res));
    cv->train = xcalloc((size_t)folds, sizeof(*cv->train));
    cv->test = xcalloc((size_t)folds, sizeof(*cv->test));
    tune_progress_start(&prog, "cross-validating choice", (uint64_t)folds);
    for (int f = 0; f < folds; f++) {
        cv->train[f] = xmalloc(d->nq ? d->nq : 1);
        cv->test[f] = xmalloc(d->nq ? d->nq : 1);
        for (size_t q = 0; q < d->nq; q++) {
            int in = include == NULL || include[q];

            cv->train[f][q] = in && fold[q] != f;
            cv->test[f][q] = in && fold[q] == f;
        }
        tune_search(d, sc, cv->train[f], so, 0, &cv->res[f]);
        tune_progress_step(&prog, 1);
    }
    tune_progress_end(&prog);
}

static void cv_free(struct tune_cv *cv)
{
    for (int f = 0; f < cv->folds; f++) {
        tune_search_result_free(&cv->res[f]);
        free(cv->train[f]);
        free(cv->test[f]);
    }
    free(cv->res);
    free(cv->train);
    free(cv->test);
    memset(cv, 0, sizeof(*cv));
}

/* Pick on each fold's training split, run the pick on the fold. With log,
 * one line per fold. */
static void cv_eval(const struct tune_data *d, const struct tune_scores *sc,
                    const struct tune_cv *cv, const struct tune_choice *ch, double penalty,
                    double margin, int ref, struct tune_outcome *out, struct buf *log)
{
    memset(out, 0, sizeof(*out));
    for (int f = 0; f < cv->folds; f++) {
        const struct tune_point *p =
            tune_choose(d, &cv->res[f], ch, penalty, margin, ref, cv->train[f], NULL);
        struct tune_result r;

        if (p == NULL)
            continue;
        tune_simulate(d, &p->chain, sc, cv->test[f], &r);
        out->n += r.n;
        out->correct += r.correct;
        out->cost += r.cost;
        /* The log is for the report: one that overflows just stops. */
        if (log && (buf_printf(log, "    fold %d: %.4f at $%.3g/query  ", f + 1,
                               r.n ? (double)r.correct / (double)r.n : 0,
                               r.n ? r.cost / (double)r.n : 0) < 0 ||
                    tune_chain_format(d, &p->chain, log) < 0 || buf_puts(log, "\n") < 0))
            log = NULL;
    }
}

static const double penalty_grid[] = {0, 0.0025, 0.005, 0.01, 0.02, 0.04};
/* The best of many chains within a budget on some queries tends to cost
 * more on others (it was picked partly for its luck), so a budget may be
 * kept with a margin: the chain is chosen within margin * budget. */
static const double margin_grid[] = {1.0, 0.95, 0.9, 0.85, 0.8, 0.7};

/* Is outcome x better than b for the choice? With a target: reaching it,
 * then cheaper. With a budget: keeping to it, then more accurate (when
 * neither keeps to it, the nearer). Else (the knee): more accurate. Then
 * cheaper. */
static int outcome_better(const struct tune_outcome *x, const struct tune_outcome *b, double target,
                          double budget)
{
    double ax = x->n ? (double)x->correct / (double)x->n : 0;
    double ab = b->n ? (double)b->correct / (double)b->n : 0;
    double cx = x->n ? x->cost / (double)x->n : 0, cb = b->n ? b->cost / (double)b->n : 0;
    int kx = cx <= budget * (1 + 1e-9), kb = cb <= budget * (1 + 1e-9);

    if (target >= 0) {
        int rx = ax >= target, rb = ab >= target;

        if (rx != rb)
            return rx;
        if (rx)
            return cx < cb - 1e-15;
    } else if (budget >= 0 && kx != kb) {
        return kx;
    } else if (budget >= 0 && !kb) {
        return cx < cb - 1e-15;
    }
    return ax > ab + 1e-12 || (ax >= ab - 1e-12 && cx < cb - 1e-15);
}

/* Choose the rule (the stage penalty and, with a budget, the margin) by
 * cross-validation: the best held-out outcome as outcome_better() judges.
 * Ties go to the larger penalty (simpler chains), then to the margin
 * nearer 1. The held-out numbers of the rule chosen are then a little
 * optimistic, as it was chosen on them. Writes one line to out. */
static void choose_rule(const struct tune_data *d, const struct tune_scores *sc,
                        const struct tune_cv *cv, const struct tune_choice *ch, int ref,
                        const unsigned char *include, struct tune_pick *pk, struct buf *out)
{
    struct tune_outcome o[ARRAY_LEN(penalty_grid)][ARRAY_LEN(margin_grid)];
    double racc, rcost, target = -1, budget = -1;
    size_t nm = 1, bp = ARRAY_LEN(penalty_grid) - 1, bm = 0;

    tune_ref_stats(d, ref, include, &racc, &rcost);
    if (!isnan(ch->target_pts))
        target = racc + ch->target_pts / 100.0;
    else if (ch->target >= 0)
        target = ch->target;
    else if (!ch->knee && ch->budget_ratio >= 0)
        budget = ch->budget_ratio * rcost;
    else if (!ch->knee && ch->budget >= 0)
        budget = ch->budget;
    if (budget >= 0)
        nm = ARRAY_LEN(margin_grid);
    for (size_t i = 0; i < ARRAY_LEN(penalty_grid); i++)
        for (size_t j = 0; j < nm; j++)
            cv_eval(d, sc, cv, ch, penalty_grid[i], margin_grid[j], ref, &o[i][j], NULL);
    /* From the largest penalty down and the margin nearest 1 out, so that a
     * tie keeps the simpler rule found first. */
    for (size_t i = ARRAY_LEN(penalty_grid); i-- > 0;)
        for (size_t j = 0; j < nm; j++)
            if (outcome_better(&o[i][j], &o[bp][bm], target, budget)) {
                bp = i;
                bm = j;
            }
    pk->penalty = penalty_grid[bp];
    pk->margin = margin_grid[bm];
    /* The log is for the report: one that overflows just loses this line. */
    if (buf_printf(out,
                   "  rule chosen by cross-validation (of %zu): %.2f points per stage beyond the "
                   "first%s",
                   ARRAY_LEN(penalty_grid) * nm, pk->penalty * 100, nm > 1 ? "" : "\n") < 0 ||
        (nm > 1 && buf_printf(out, ", chains within %.0f%% of the budget\n", pk->margin * 100) < 0))
        return;
}

/* ---- one whole fit ---- */

/* Every frontier number comes from the bitset search; the simulation is the
 * reference. If they disagree, the search is wrong: abort loudly. */
static void check_frontier(const struct tune_data *d, const struct tune_frontier *f,
                           const struct tune_scores *sc, const unsigned char *include)
{
    for (size_t i = 0; i < f->n; i++) {
        struct tune_result r;

        tune_simulate(d, &f->pt[i].chain, sc, include, &r);
        if (r.correct != f->pt[i].correct ||
            fabs(r.cost - f->pt[i].cost) > 1e-9 * (1 + fabs(r.cost)))
            sl_panic("search and simulation disagree on frontier point %zu: %zu/%.9g vs "
                     "%zu/%.9g",
                     i, f->pt[i].correct, f->pt[i].cost, r.correct, r.cost);
    }
}

void tune_fit_run(const struct tune_data *d, const struct tune_fit_opts *o,
                  const unsigned char *include, struct tune_fit *fr)
{
    int *fold = xmalloc((d->nq ? d->nq : 1) * sizeof(*fold));

    memset(fr, 0, sizeof(*fr));
    fr->include = include;
    if (o->perfect)
        tune_scores_perfect(d, &fr->sc);
    else if (o->use_learned)
        tune_learn(d, o->learn, include, o->spec, o->nspec, &fr->sc);
    tune_search(d, o->use_learned || o->perfect ? &fr->sc : NULL, include, o->search, 1, &fr->res);
    for (int k = 0; k < TUNE_SEARCH_STAGES; k++)
        check_frontier(d, &fr->res.by_stages[k], &fr->sc, include);
    check_frontier(d, &fr->res.all, &fr->sc, include);
    tune_folds(d, o->learn->folds, o->learn->seed, fold);
    if (o->do_cv)
        cv_search(d, &fr->sc, fold, include, o->learn->folds, o->search, &fr->cv);
    fr->nchoice = o->nchoice;
    for (size_t i = 0; i < o->nchoice; i++) {
        const struct tune_choice *ch = &o->choice[i];
        struct tune_pick *pk = &fr->pick[i];

        buf_init(&pk->cvlog, TUNE_LOG_MAX);
        pk->penalty = ch->penalty;
        pk->margin = 1.0;
        if (o->do_cv && !ch->penalty_given)
            choose_rule(d, &fr->sc, &fr->cv, ch, o->ref, include, pk, &pk->cvlog);
        pk->p = tune_choose(d, &fr->res, ch, pk->penalty, pk->margin, o->ref, include, &pk->knee);
        if (o->do_cv && pk->p)
            cv_eval(d, &fr->sc, &fr->cv, ch, pk->penalty, pk->margin, o->ref, &pk->cv, &pk->cvlog);
    }
    free(fold);
}

void tune_fit_free(struct tune_fit *fr)
{
    for (size_t i = 0; i < fr->nchoice; i++)
        buf_free(&fr->pick[i].cvlog);
    cv_free(&fr->cv);
    tune_search_result_free(&fr->res);
    tune_scores_free(&fr->sc);
}
