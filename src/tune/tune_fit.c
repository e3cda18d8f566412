/* tune_fit.c - `sluice-tune fit`: train the learned scorers with k-fold
 * cross-validation, search the chains on the out-of-fold scores, print and
 * write the frontier, the plot, the weights and a gateway.conf routes block.
 *
 * The chosen chain's numbers on the data it was chosen on are optimistic
 * (the best of ~20M chains is picked on the same queries), so fit also
 * cross-validates the whole selection: for each fold, search on the other
 * folds, pick by the same rule, and run the pick on the held-out fold.
 */
#include "tune.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    OPT_OUT = TUNE_OPT_FIRST_OWN,
    OPT_BUDGET,
    OPT_TARGET,
    OPT_MAX_STAGES,
    OPT_THRESHOLDS,
    OPT_NO_LEARNED,
    OPT_NO_AGREE,
    OPT_NO_RULES,
    OPT_MAX_PARTNERS,
    OPT_ROUTE_NAME,
    OPT_NO_CV,
    OPT_PENALTY,
};

static const struct option fit_options[] = {
    TUNE_COMMON_OPTIONS,
    {"out", required_argument, NULL, OPT_OUT},
    {"budget", required_argument, NULL, OPT_BUDGET},
    {"target-accuracy", required_argument, NULL, OPT_TARGET},
    {"max-stages", required_argument, NULL, OPT_MAX_STAGES},
    {"thresholds", required_argument, NULL, OPT_THRESHOLDS},
    {"max-partners", required_argument, NULL, OPT_MAX_PARTNERS},
    {"no-learned", no_argument, NULL, OPT_NO_LEARNED},
    {"no-agree", no_argument, NULL, OPT_NO_AGREE},
    {"no-rules", no_argument, NULL, OPT_NO_RULES},
    {"route-name", required_argument, NULL, OPT_ROUTE_NAME},
    {"no-cv", no_argument, NULL, OPT_NO_CV},
    {"penalty", required_argument, NULL, OPT_PENALTY},
    {NULL, 0, NULL, 0},
};

static void fit_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-tune fit --data FILE.jsonl [--data ...] (--prices prices.json |\n"
            "           --config gateway.conf) [--folds 5] [--seed N] [--out DIR]\n"
            "           [--budget USD|N%% | --target-accuracy ACC|-Npt] [--models m1,m2,...]\n"
            "           [--max-stages 3]\n"
            "\n"
            "Train a `learned` scorer per model with k-fold cross-validation, search\n"
            "every cascade of 1 to --max-stages stages (model order, scorer and\n"
            "threshold per stage) on the out-of-fold scores, and print the\n"
            "accuracy/cost frontier. Writes DIR/frontier.tsv, DIR/frontier.svg,\n"
            "DIR/scorers/<model>.w (trained on all data) and DIR/routes.conf: the\n"
            "gateway.conf routes block of the chosen chain.\n"
            "\n"
            "choosing:\n"
            "  --budget X          most accurate chain costing at most X $/query; \"20%%\"\n"
            "                      means 20%% of the reference model's $/query\n"
            "  --target-accuracy X cheapest chain reaching accuracy X; \"-0.5pt\" means\n"
            "                      0.5 points under the reference model\n"
            "                      (default: most accurate within the reference's cost)\n"
            "  --penalty PTS       judge a chain by its accuracy minus PTS points per stage\n"
            "                      beyond the first, against fitting noise (default: chosen\n"
            "                      by cross-validation among 0-4; 0.5 with --no-cv)\n"
            "  --route-name NAME   the route's name in routes.conf (default \"tuned\")\n"
            "search:\n"
            "  --max-stages N      1..3 (default 3)\n"
            "  --thresholds N      learned thresholds tried per model, at score quantiles\n"
            "                      (default 19)\n"
            "  --max-partners N    agreement partners per stage, 1..2 (default 2)\n"
            "  --no-learned, --no-agree, --no-rules   leave a scorer kind out\n"
            "output:\n"
            "  --out DIR           output directory (default tune-out)\n"
            "  --no-cv             skip the cross-validated estimate of the choice\n"
            "\n%s",
            tune_common_help);
}

/* A budget or target given relative to the reference model. */
struct choice {
    double budget;       /* USD per query, or < 0 */
    double budget_ratio; /* of the reference's $/query, or < 0 */
    double target;       /* accuracy, or < 0 */
    double target_pts;   /* points relative to the reference, or NAN */
    double penalty;      /* accuracy charged per stage beyond the first */
    int have;
};

static int parse_budget(const char *s, struct choice *c)
{
    size_t n = strlen(s);
    char tmp[64];
    double x;

    if (n == 0 || n >= sizeof(tmp))
        goto bad;
    memcpy(tmp, s, n + 1);
    if (tmp[n - 1] == '%') {
        tmp[n - 1] = '\0';
        if (parse_double(tmp, &x) < 0 || x <= 0)
            goto bad;
        c->budget_ratio = x / 100.0;
    } else {
        if (parse_double(tmp, &x) < 0 || x <= 0)
            goto bad;
        c->budget = x;
    }
    c->have = 1;
    return 0;
bad:
    fprintf(stderr, "sluice-tune: --budget: expected USD per query or N%%, got \"%s\"\n", s);
    return -1;
}

static int parse_target(const char *s, struct choice *c)
{
    size_t n = strlen(s);
    char tmp[64];
    double x;

    if (n == 0 || n >= sizeof(tmp))
        goto bad;
    memcpy(tmp, s, n + 1);
    if (n > 2 && strcmp(tmp + n - 2, "pt") == 0) {
        tmp[n - 2] = '\0';
        if (parse_double(tmp, &x) < 0 || fabs(x) > 100)
            goto bad;
        c->target_pts = x;
    } else {
        if (parse_double(tmp, &x) < 0 || x < 0 || x > 1)
            goto bad;
        c->target = x;
    }
    c->have = 1;
    return 0;
bad:
    fprintf(stderr,
            "sluice-tune: --target-accuracy: expected an accuracy in [0, 1] or points "
            "relative to the reference (\"-0.5pt\"), got \"%s\"\n",
            s);
    return -1;
}

/* The reference model's accuracy and $/query over the included queries. */
static void ref_stats(const struct tune_data *d, int ref, const unsigned char *include, double *acc,
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

/* Resolve the choice against the reference on the included queries and pick
 * a frontier point. Falls back to the most accurate point when a target is
 * out of reach, and the cheapest when a budget is below everything. */
static const struct tune_point *pick(const struct tune_data *d,
                                     const struct tune_search_result *res, const struct choice *ch,
                                     int ref, const unsigned char *include)
{
    double racc, rcost, budget = -1, target = -1;
    const struct tune_point *p;

    ref_stats(d, ref, include, &racc, &rcost);
    if (!isnan(ch->target_pts))
        target = racc + ch->target_pts / 100.0;
    else if (ch->target >= 0)
        target = ch->target;
    else if (ch->budget_ratio >= 0)
        budget = ch->budget_ratio * rcost;
    else if (ch->budget >= 0)
        budget = ch->budget;
    else
        budget = rcost; /* default: the best within the reference's cost */
    p = tune_pick(res, budget, target, ch->penalty);
    if (p == NULL && res->all.n > 0)
        p = target >= 0 ? &res->all.pt[res->all.n - 1] : &res->all.pt[0];
    return p;
}

static void describe_choice(const struct choice *ch, const struct tune_data *d, int ref,
                            struct buf *out)
{
    const char *rn = d->models[ref].name;

    if (!isnan(ch->target_pts) && ch->target_pts < 0)
        buf_printf(out, "cheapest chain at most %.2f points under %s's accuracy", -ch->target_pts,
                   rn);
    else if (!isnan(ch->target_pts))
        buf_printf(out, "cheapest chain at least %.2f points over %s's accuracy", ch->target_pts,
                   rn);
    else if (ch->target >= 0)
        buf_printf(out, "cheapest chain reaching accuracy %.4f", ch->target);
    else if (ch->budget_ratio >= 0)
        buf_printf(out, "most accurate chain within %.1f%% of %s's $/query", ch->budget_ratio * 100,
                   rn);
    else if (ch->budget >= 0)
        buf_printf(out, "most accurate chain within $%.6g/query", ch->budget);
    else
        buf_printf(out,
                   "most accurate chain within %s's $/query (no --budget or "
                   "--target-accuracy given)",
                   rn);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "sluice-tune: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL) {
        fprintf(stderr, "sluice-tune: %s: %s\n", path, strerror(errno));
        return -1;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "sluice-tune: %s: write failed\n", path);
        return -1;
    }
    return 0;
}

/* Every frontier number comes from the bitset search; the simulation is the
 * reference. If they disagree, the search is wrong: abort loudly. */
static void check_frontier(const struct tune_data *d, const struct tune_frontier *f,
                           const double *score, const unsigned char *include)
{
    for (size_t i = 0; i < f->n; i++) {
        struct tune_result r;

        tune_simulate(d, &f->pt[i].chain, score, include, &r);
        if (r.correct != f->pt[i].correct ||
            fabs(r.cost - f->pt[i].cost) > 1e-9 * (1 + fabs(r.cost)))
            sl_panic("search and simulation disagree on frontier point %zu: %zu/%.9g vs "
                     "%zu/%.9g",
                     i, f->pt[i].correct, f->pt[i].cost, r.correct, r.cost);
    }
}

static void format_frontier(const struct tune_data *d, const struct tune_frontier *f, double racc,
                            double rcost, int tsv, struct buf *out)
{
    double nq = (double)f->nq;

    if (tsv)
        buf_puts(out, "budget_usd\taccuracy\tusd_per_query\tacc_minus_ref_pts\tcost_over_ref\t"
                      "stages\tchain\n");
    else
        buf_printf(out, "%-11s %-8s %-11s %-8s %-7s %s\n", "budget", "accuracy", "$/query",
                   "vs ref", "cost", "chain");
    for (size_t i = 0; i < f->n; i++) {
        const struct tune_point *p = &f->pt[i];
        double acc = (double)p->correct / nq, cost = p->cost / nq;

        /* The budget from which this chain is the pick: its own cost. */
        if (tsv)
            buf_printf(out, "%.6g\t%.4f\t%.6g\t%+.2f\t%.4f\t%d\t", cost, acc, cost,
                       (acc - racc) * 100, rcost > 0 ? cost / rcost : 0, p->chain.n);
        else
            buf_printf(out, ">=%-9.3g %-8.4f %-11.3g %+6.2fpt %5.1f%%  ", cost, acc, cost,
                       (acc - racc) * 100, rcost > 0 ? 100 * cost / rcost : 0);
        tune_chain_format(d, &p->chain, out);
        buf_puts(out, "\n");
    }
}

struct cv_outcome {
    size_t n, correct;
    double cost;
};

/* The selection, cross-validated: per fold, the search on the other folds.
 * The searches do not depend on the penalty, so every candidate penalty is
 * judged on the same ones. */
struct cv_state {
    int folds;
    struct tune_search_result *res; /* [folds] */
    unsigned char **train, **test;  /* [folds][nq] */
};

static void cv_search(const struct tune_data *d, const double *score, const int *fold, int folds,
                      const struct tune_search_opts *so, struct cv_state *cv)
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
            cv->train[f][q] = fold[q] != f;
            cv->test[f][q] = fold[q] == f;
        }
        tune_search(d, score, cv->train[f], so, 0, &cv->res[f]);
        tune_progress_step(&prog, 1);
    }
    tune_progress_end(&prog);
}

static void cv_free(struct cv_state *cv)
{
    for (int f = 0; f < cv->folds; f++) {
        tune_search_result_free(&cv->res[f]);
        free(cv->train[f]);
        free(cv->test[f]);
    }
    free(cv->res);
    free(cv->train);
    free(cv->test);
}

/* Pick on each fold's training split, run the pick on the fold. */
static void cv_eval(const struct tune_data *d, const double *score, const struct cv_state *cv,
                    const struct choice *ch, int ref, struct cv_outcome *out, struct buf *log)
{
    memset(out, 0, sizeof(*out));
    for (int f = 0; f < cv->folds; f++) {
        const struct tune_point *p = pick(d, &cv->res[f], ch, ref, cv->train[f]);
        struct tune_result r;

        if (p == NULL)
            continue;
        tune_simulate(d, &p->chain, score, cv->test[f], &r);
        out->n += r.n;
        out->correct += r.correct;
        out->cost += r.cost;
        if (log) {
            buf_printf(log, "    fold %d: %.4f at $%.3g/query  ", f + 1,
                       r.n ? (double)r.correct / (double)r.n : 0, r.n ? r.cost / (double)r.n : 0);
            tune_chain_format(d, &p->chain, log);
            buf_puts(log, "\n");
        }
    }
}

static const double penalty_grid[] = {0, 0.0025, 0.005, 0.01, 0.02, 0.04};

/* Choose the penalty by cross-validation: with a budget, the most accurate
 * held-out result (then the cheapest); with a target, the cheapest that
 * reaches it (else the most accurate). Remaining ties go to the larger
 * penalty, i.e. the simpler chains. Writes the table of candidates to out.
 * The held-out numbers of the chosen penalty are then a little optimistic,
 * as it was chosen on them; with six candidates, only a little. */
static double choose_penalty(const struct tune_data *d, const double *score,
                             const struct cv_state *cv, const struct choice *ch, int ref,
                             double target, struct buf *out)
{
    struct cv_outcome o[ARRAY_LEN(penalty_grid)];
    size_t best = 0;

    for (size_t i = 0; i < ARRAY_LEN(penalty_grid); i++) {
        struct choice c = *ch;

        c.penalty = penalty_grid[i];
        cv_eval(d, score, cv, &c, ref, &o[i], NULL);
    }
    for (size_t i = 1; i < ARRAY_LEN(penalty_grid); i++) {
        double acc_i = o[i].n ? (double)o[i].correct / (double)o[i].n : 0;
        double acc_b = o[best].n ? (double)o[best].correct / (double)o[best].n : 0;
        int reach_i = target >= 0 && acc_i >= target, reach_b = target >= 0 && acc_b >= target;

        if (reach_i && reach_b) {
            if (o[i].cost <= o[best].cost)
                best = i;
        } else if (reach_i != reach_b) {
            if (reach_i)
                best = i;
        } else if (acc_i > acc_b + 1e-12 || (acc_i >= acc_b - 1e-12 && o[i].cost <= o[best].cost)) {
            best = i;
        }
    }
    buf_puts(out, "  simplicity penalty chosen by cross-validation (points per stage beyond "
                  "the first):\n");
    for (size_t i = 0; i < ARRAY_LEN(penalty_grid); i++)
        buf_printf(out, "    %-5.2f held-out accuracy %.4f, $%.3g/query%s\n", penalty_grid[i] * 100,
                   o[i].n ? (double)o[i].correct / (double)o[i].n : 0,
                   o[i].n ? o[i].cost / (double)o[i].n : 0, i == best ? "  <- chosen" : "");
    return penalty_grid[best];
}

static int fit_main(int argc, char **argv)
{
    struct tune_inputs in;
    struct tune_search_opts so;
    struct choice ch = {-1, -1, -1, NAN, 0.005, 0};
    struct cv_state cv = {0};
    struct buf cvlog;
    int penalty_given = 0;
    const char *outdir = "tune-out", *route_name = "tuned";
    int use_learned = 1, do_cv = 1, c, rc = TUNE_EXIT_FAIL, ref;
    long v;
    struct tune_data d;
    double *score = NULL, *auc = NULL;
    struct learned_model **final = NULL;
    int *fold = NULL;
    struct tune_search_result res = {0};
    const struct tune_frontier *fr = &res.all;
    const struct tune_point *chosen;
    struct tune_plot_model *pm = NULL;
    double racc, rcost;
    struct buf out, path;
    uint64_t t0 = now_us(), t1;

    buf_init(&out, (size_t)64 << 20);
    buf_init(&path, 4096);
    buf_init(&cvlog, (size_t)1 << 20);
    tune_inputs_init(&in);
    tune_search_opts_default(&so);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", fit_options, NULL)) != -1) {
        int r = tune_inputs_opt(&in, c, optarg);

        if (r < 0)
            return TUNE_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case TUNE_OPT_HELP:
            fit_usage(stdout);
            return TUNE_EXIT_OK;
        case OPT_OUT:
            outdir = optarg;
            break;
        case OPT_BUDGET:
            if (ch.have || parse_budget(optarg, &ch) < 0) {
                if (ch.have)
                    fprintf(stderr, "sluice-tune: give one --budget or --target-accuracy\n");
                return TUNE_EXIT_USAGE;
            }
            break;
        case OPT_TARGET:
            if (ch.have || parse_target(optarg, &ch) < 0) {
                if (ch.have)
                    fprintf(stderr, "sluice-tune: give one --budget or --target-accuracy\n");
                return TUNE_EXIT_USAGE;
            }
            break;
        case OPT_MAX_STAGES:
            if (tune_opt_long("--max-stages", optarg, 1, 3, &v) < 0)
                return TUNE_EXIT_USAGE;
            so.max_stages = (int)v;
            break;
        case OPT_THRESHOLDS:
            if (tune_opt_long("--thresholds", optarg, 1, 99, &v) < 0)
                return TUNE_EXIT_USAGE;
            so.nthresholds = (int)v;
            break;
        case OPT_MAX_PARTNERS:
            if (tune_opt_long("--max-partners", optarg, 1, 2, &v) < 0)
                return TUNE_EXIT_USAGE;
            so.max_partners = (int)v;
            break;
        case OPT_NO_LEARNED:
            use_learned = 0;
            break;
        case OPT_NO_AGREE:
            so.use_agree = 0;
            break;
        case OPT_NO_RULES:
            so.use_rules = 0;
            break;
        case OPT_ROUTE_NAME:
            route_name = optarg;
            break;
        case OPT_NO_CV:
            do_cv = 0;
            break;
        case OPT_PENALTY: {
            double x;

            if (tune_opt_double("--penalty", optarg, &x) < 0 || x < 0 || x > 100) {
                fprintf(stderr, "sluice-tune: --penalty: points in [0, 100]\n");
                return TUNE_EXIT_USAGE;
            }
            ch.penalty = x / 100.0;
            penalty_given = 1;
            break;
        }
        default:
            fit_usage(stderr);
            return TUNE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-tune: fit: unexpected argument \"%s\"\n", argv[optind]);
        return TUNE_EXIT_USAGE;
    }
    if (in.ndata == 0) {
        fit_usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    so.use_learned = use_learned;
    if (tune_inputs_load(&in, &d) < 0)
        return TUNE_EXIT_FAIL;
    ref = tune_reference(&in, &d);
    if (ref < 0)
        goto done;
    fold = xmalloc(d.nq * sizeof(*fold));
    tune_folds(&d, in.learn.folds, in.learn.seed, fold);

    if (use_learned) {
        score = xmalloc(d.nq * d.nmodels * sizeof(*score));
        auc = xmalloc(d.nmodels * sizeof(*auc));
        final = xcalloc(d.nmodels, sizeof(*final));
        tune_learn(&d, &in.learn, fold, NULL, score, final, auc);
    }
    t1 = now_us();

    tune_search(&d, score, NULL, &so, 1, &res);
    for (int k = 0; k < TUNE_SEARCH_STAGES; k++)
        check_frontier(&d, &res.by_stages[k], score, NULL);
    check_frontier(&d, fr, score, NULL);
    ref_stats(&d, ref, NULL, &racc, &rcost);
    if (do_cv) {
        double target = -1;

        if (!isnan(ch.target_pts))
            target = racc + ch.target_pts / 100.0;
        else if (ch.target >= 0)
            target = ch.target;
        cv_search(&d, score, fold, in.learn.folds, &so, &cv);
        if (!penalty_given)
            ch.penalty = choose_penalty(&d, score, &cv, &ch, ref, target, &cvlog);
    }
    chosen = pick(&d, &res, &ch, ref, NULL);

    buf_printf(&out, "sluice-tune fit: %s: %zu queries, %zu models, %d-fold CV, seed %llu\n\n",
               d.source, d.nq, d.nmodels, in.learn.folds, (unsigned long long)in.learn.seed);
    buf_printf(&out, "%-36s %-9s %-8s %-10s %-7s %s\n", "model", "answered", "accuracy", "$/query",
               "cost", use_learned ? "learned CV AUC" : "");
    pm = xcalloc(d.nmodels, sizeof(*pm));
    for (size_t m = 0; m < d.nmodels; m++) {
        double acc, cost;
        size_t answered = 0;

        for (size_t q = 0; q < d.nq; q++)
            answered += d.q[q].ans[m].content != NULL;
        tune_model_stats(&d, (int)m, &acc, &cost);
        pm[m].label = d.models[m].name;
        pm[m].acc = acc;
        pm[m].cost = cost;
        buf_printf(&out, "%-36s %-9zu %-8.4f %-10.3g %5.1f%%%s", d.models[m].name, answered, acc,
                   cost, rcost > 0 ? 100 * cost / rcost : 0, (int)m == ref ? " ref" : "    ");
        if (use_learned)
            buf_printf(&out, "  %.3f", auc[m]);
        buf_puts(&out, "\n");
    }
    buf_printf(&out,
               "\nfrontier (%zu chains; accuracy and cost over all %zu queries; learned "
               "thresholds on out-of-fold scores; vs ref = %s):\n",
               fr->n, d.nq, d.models[ref].name);
    format_frontier(&d, fr, racc, rcost, 0, &out);

    buf_puts(&out, "\nchoice: ");
    describe_choice(&ch, &d, ref, &out);
    buf_puts(&out, "\n");
    if (chosen) {
        double acc = (double)chosen->correct / (double)fr->nq;
        double cost = chosen->cost / (double)fr->nq;

        buf_puts(&out, "  chain: ");
        tune_chain_format(&d, &chosen->chain, &out);
        buf_printf(&out,
                   "\n  on all data: accuracy %.4f (%+.2f points vs ref), $%.3g/query "
                   "(%.1f%% of ref)\n",
                   acc, (acc - racc) * 100, cost, rcost > 0 ? 100 * cost / rcost : 0);
    }
    buf_printf(&out, "  penalty: %.2f points per stage beyond the first\n", ch.penalty * 100);
    if (do_cv && chosen) {
        struct cv_outcome o;

        cv_eval(&d, score, &cv, &ch, ref, &o, &cvlog);
        if (o.n) {
            double acc = (double)o.correct / (double)o.n, cost = o.cost / (double)o.n;

            buf_printf(&out,
                       "  cross-validated (chain re-chosen on each %d-fold training split, run "
                       "on the held-out fold):\n    accuracy %.4f (%+.2f points vs ref), "
                       "$%.3g/query (%.1f%% of ref)\n%s",
                       in.learn.folds, acc, (acc - racc) * 100, cost,
                       rcost > 0 ? 100 * cost / rcost : 0, cvlog.data ? cvlog.data : "");
        }
    }

    /* Files. */
    if (make_dir(outdir) < 0)
        goto done;
    buf_reset(&path);
    buf_printf(&path, "%s/scorers", outdir);
    if (use_learned && make_dir(path.data) < 0)
        goto done;
    for (size_t m = 0; use_learned && m < d.nmodels; m++) {
        char err[512];

        buf_reset(&path);
        buf_printf(&path, "%s/scorers/%s.w", outdir, d.models[m].file_name);
        if (learned_save(final[m], path.data, err, sizeof(err)) < 0) {
            fprintf(stderr, "sluice-tune: %s\n", err);
            goto done;
        }
    }
    {
        struct buf tsv;
        FILE *svg;
        char title[512];

        buf_init(&tsv, (size_t)16 << 20);
        format_frontier(&d, fr, racc, rcost, 1, &tsv);
        buf_reset(&path);
        buf_printf(&path, "%s/frontier.tsv", outdir);
        if (write_file(path.data, tsv.data, tsv.len) < 0) {
            buf_free(&tsv);
            goto done;
        }
        buf_free(&tsv);
        buf_reset(&path);
        buf_printf(&path, "%s/frontier.svg", outdir);
        svg = fopen(path.data, "w");
        if (svg == NULL) {
            fprintf(stderr, "sluice-tune: %s: %s\n", path.data, strerror(errno));
            goto done;
        }
        snprintf(title, sizeof(title), "sluice-tune frontier: %s (%zu queries)", d.source, d.nq);
        tune_svg(svg, &d, fr, pm, d.nmodels, chosen, title);
        if (fclose(svg) != 0) {
            fprintf(stderr, "sluice-tune: %s: write failed\n", path.data);
            goto done;
        }
    }
    if (chosen) {
        struct buf routes;

        buf_init(&routes, (size_t)1 << 20);
        buf_puts(&routes, "# sluice-tune fit: ");
        describe_choice(&ch, &d, ref, &routes);
        buf_puts(&routes, "\n# chain: ");
        tune_chain_format(&d, &chosen->chain, &routes);
        buf_printf(&routes, "\n# accuracy %.4f, $%.3g/query on %s (%zu queries)\n",
                   (double)chosen->correct / (double)fr->nq, chosen->cost / (double)fr->nq,
                   d.source, d.nq);
        tune_routes_format(&d, &chosen->chain, route_name, "scorers", &routes);
        buf_reset(&path);
        buf_printf(&path, "%s/routes.conf", outdir);
        if (write_file(path.data, routes.data, routes.len) < 0) {
            buf_free(&routes);
            goto done;
        }
        buf_printf(&out, "\n%s/routes.conf (weights paths are relative to %s):\n%s", outdir, outdir,
                   routes.data);
        buf_free(&routes);
    }
    fwrite(out.data, 1, out.len, stdout);
    fprintf(stderr, "sluice-tune: training %.1fs, search and outputs %.1fs\n",
            (double)(t1 - t0) / 1e6, (double)(now_us() - t1) / 1e6);
    rc = TUNE_EXIT_OK;

done:
    buf_free(&out);
    buf_free(&path);
    buf_free(&cvlog);
    cv_free(&cv);
    if (final)
        for (size_t m = 0; m < d.nmodels; m++)
            learned_free(final[m]);
    free(final);
    free(score);
    free(auc);
    free(fold);
    free(pm);
    tune_search_result_free(&res);
    tune_data_free(&d);
    return rc;
}

TUNE_COMMAND(fit, "fit", "train scorers, search cascades, print the frontier and a routes block",
             fit_main)
