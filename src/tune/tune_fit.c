/* tune_fit.c - `sluice-tune fit`: train the learned scorers with k-fold
 * cross-validation, search the chains on the out-of-fold scores, choose one
 * chain per budget (tune_select.c), check the choice on data the fit never
 * saw (the nested check), and print and write the frontier, the plot, the
 * weights files and a gateway.conf routes block.
 *
 * The nested check holds out 20% of the queries (by a hash of the prompt,
 * independent of the folds), runs the whole fit on the other 80%, deploys
 * each pick on the 20% exactly as the gateway would score it, and prints
 * what the fit on the 80% predicted beside what happened: each stage's
 * acceptance rate, accuracy and cost.
 */
#include "tune.h"
#include "caps.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK_SALT 0x6e65737465643230ull /* the nested check's split, apart from the folds */
#define CHECK_PARTS 5                    /* hold out one part in five: 20% */
#define CHECK_ACC_PTS 2.0                /* the check agrees within these (issue 14) */
#define CHECK_COST_PTS 3.0

enum {
    OPT_OUT = TUNE_OPT_FIRST_OWN,
    OPT_BUDGET,
    OPT_TARGET,
    OPT_ROUTES,
    OPT_MAX_STAGES,
    OPT_THRESHOLDS,
    OPT_NO_LEARNED,
    OPT_NO_AGREE,
    OPT_NO_RULES,
    OPT_MAX_PARTNERS,
    OPT_MAX_PEERS,
    OPT_ROUTE_NAME,
    OPT_NO_CV,
    OPT_NO_CHECK,
    OPT_CHECK_PARTS,
    OPT_PENALTY,
    OPT_PERFECT,
};

static const struct option fit_options[] = {
    TUNE_COMMON_OPTIONS,
    {"out", required_argument, NULL, OPT_OUT},
    {"budget", required_argument, NULL, OPT_BUDGET},
    {"target-accuracy", required_argument, NULL, OPT_TARGET},
    {"routes", required_argument, NULL, OPT_ROUTES},
    {"max-stages", required_argument, NULL, OPT_MAX_STAGES},
    {"thresholds", required_argument, NULL, OPT_THRESHOLDS},
    {"max-partners", required_argument, NULL, OPT_MAX_PARTNERS},
    {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
    {"no-learned", no_argument, NULL, OPT_NO_LEARNED},
    {"no-agree", no_argument, NULL, OPT_NO_AGREE},
    {"no-rules", no_argument, NULL, OPT_NO_RULES},
    {"route-name", required_argument, NULL, OPT_ROUTE_NAME},
    {"no-cv", no_argument, NULL, OPT_NO_CV},
    {"no-check", no_argument, NULL, OPT_NO_CHECK},
    {"check-parts", required_argument, NULL, OPT_CHECK_PARTS},
    {"penalty", required_argument, NULL, OPT_PENALTY},
    {"perfect-scorer", no_argument, NULL, OPT_PERFECT},
    {NULL, 0, NULL, 0},
};

static void fit_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-tune fit --data FILE.jsonl [--data ...] (--prices prices.json |\n"
            "           --config gateway.conf) [--folds 5] [--seed N] [--out DIR]\n"
            "           [--budget USD|N%% | --target-accuracy ACC|-Npt | --routes B1,B2,...]\n"
            "           [--models m1,m2,...] [--max-stages 3]\n"
            "\n"
            "Train the `learned` scorers with k-fold cross-validation (each model's\n"
            "answers alone, and with the answers of up to --max-peers other models),\n"
            "search every cascade of 1 to --max-stages stages (model order, scorer and\n"
            "threshold per stage) on the out-of-fold scores, print the accuracy/cost\n"
            "frontier, choose a chain, cross-validate the choice and check it on 20%%\n"
            "of the data fitted without it. Writes DIR/frontier.tsv, DIR/frontier.svg,\n"
            "DIR/routes.conf (the gateway.conf routes block, each route with a\n"
            "\"# chain:\" comment) and DIR/scorers/*.w (the weights files its learned\n"
            "stages load).\n"
            "\n"
            "choosing (one of):\n"
            "  --budget X          most accurate chain costing at most X $/query; \"20%%\"\n"
            "                      means 20%% of the reference model's $/query\n"
            "  --target-accuracy X cheapest chain reaching accuracy X; \"-0.5pt\" means\n"
            "                      0.5 points under the reference model\n"
            "  --routes B1,B2,...  one route per budget (as --budget), named\n"
            "                      NAME-5pct, NAME-0.001usd, ...\n"
            "                      (none of them: the knee of the frontier, where more\n"
            "                      cost starts buying little accuracy)\n"
            "  --penalty PTS       judge a chain by its accuracy minus PTS points per stage\n"
            "                      beyond the first, against fitting noise (default: chosen\n"
            "                      by cross-validation among 0-4, with a budget together\n"
            "                      with a margin under it, 70-100%%, so that the choice\n"
            "                      keeps to the budget on held-out folds; 0.5 with --no-cv)\n"
            "  --route-name NAME   the route's name in routes.conf (default \"tuned\")\n"
            "search:\n"
            "  --max-stages N      1..3 (default 3)\n"
            "  --thresholds N      learned thresholds tried per scorer, at score quantiles\n"
            "                      (default 19)\n"
            "  --max-partners N    agreement partners per stage, 1..2 (default 2)\n"
            "  --max-peers N       peers a learned scorer may read, 0..2 (default 1)\n"
            "  --no-learned, --no-agree, --no-rules   leave a scorer kind out\n"
            "output:\n"
            "  --out DIR           output directory (default tune-out)\n"
            "  --no-cv             skip the cross-validated estimate of the choice\n"
            "  --no-check          skip the nested check on 20%% of the data\n"
            "  --check-parts K     run the nested check on K of the five 20%% parts in turn\n"
            "                      and sum them (default 1; 5 is a nested cross-validation,\n"
            "                      five times as long, and far less noisy)\n"
            "  --perfect-scorer    a bound, not a route: score every answer with its grade\n"
            "                      (1 right, 0 wrong) instead of a learned scorer, and\n"
            "                      report what the search and the choice reach with it;\n"
            "                      writes no weights and no routes.conf\n"
            "\n%s",
            tune_common_help);
}

/* ---- the command line's choices ---- */

/* "--routes 5%,10%,0.001": one budget choice per item, named NAME-5pct,
 * NAME-10pct, NAME-0.001usd. 0, or -1 with the reason on stderr. */
static int parse_routes(const char *list, const char *base, struct tune_choice *ch, size_t *n)
{
    char *copy = xstrdup(list), *t = copy;

    while (t) {
        char *comma = strchr(t, ',');
        size_t len;

        if (comma)
            *comma = '\0';
        if (*n == TUNE_MAX_CHOICES) {
            tune_msg("--routes: at most %d budgets", TUNE_MAX_CHOICES);
            goto bad;
        }
        tune_choice_init(&ch[*n]);
        if (tune_choice_budget(&ch[*n], t) < 0) {
            tune_msg("--routes: expected budgets (USD per query or N%%), got \"%s\"", t);
            goto bad;
        }
        len = strlen(t);
        if (t[len - 1] == '%')
            snprintf(ch[*n].name, sizeof(ch[*n].name), "%s-%.*spct", base, (int)(len - 1), t);
        else
            snprintf(ch[*n].name, sizeof(ch[*n].name), "%s-%susd", base, t);
        for (size_t i = 0; i < *n; i++) {
            if (strcmp(ch[i].name, ch[*n].name) == 0) {
                tune_msg("--routes: \"%s\" is listed twice", t);
                goto bad;
            }
        }
        (*n)++;
        t = comma ? comma + 1 : NULL;
    }
    free(copy);
    return 0;
bad:
    free(copy);
    return -1;
}

/* ---- outputs ---- */

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) < 0 && errno != EEXIST) {
        tune_msg("mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL) {
        tune_msg("%s: %s", path, strerror(errno));
        return -1;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        tune_msg("%s: write failed", path);
        return -1;
    }
    return 0;
}

/* Checked appends to the report: a report past its cap is a bug here. */
static void out_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the report buffers: a failure sticks in the buffer (struct
 * buf fails whole), and each buffer is checked once, before it is written
 * (out_ok). */
static void out_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    if (r < 0)
        return; /* sticks: out_ok() reports it */
}

static void out_chain(struct buf *b, const struct tune_data *d, const struct tune_chain *c)
{
    if (tune_chain_format(d, c, b) < 0)
        return; /* sticks: out_ok() reports it */
}

/* A report buffer is whole, or its cap was too small: say so. */
static int out_ok(const struct buf *b, const char *what)
{
    if (!b->failed)
        return 0;
    tune_msg("%s is longer than its cap of %zu bytes", what, b->max);
    return -1;
}

static void format_frontier(const struct tune_data *d, const struct tune_frontier *f, double racc,
                            double rcost, int tsv, struct buf *out)
{
    double nq = (double)f->nq;

    if (tsv)
        out_printf(out, "budget_usd\taccuracy\tusd_per_query\tacc_minus_ref_pts\tcost_over_ref\t"
                        "stages\tchain\n");
    else
        out_printf(out, "%-11s %-8s %-11s %-8s %-7s %s\n", "budget", "accuracy", "$/query",
                   "vs ref", "cost", "chain");
    for (size_t i = 0; i < f->n; i++) {
        const struct tune_point *p = &f->pt[i];
        double acc = (double)p->correct / nq, cost = p->cost / nq;

        /* The budget from which this chain is the pick: its own cost. */
        if (tsv)
            out_printf(out, "%.6g\t%.4f\t%.6g\t%+.2f\t%.4f\t%d\t", cost, acc, cost,
                       (acc - racc) * 100, rcost > 0 ? cost / rcost : 0, p->chain.n);
        else
            out_printf(out, ">=%-9.3g %-8.4f %-11.3g %+6.2fpt %5.1f%%  ", cost, acc, cost,
                       (acc - racc) * 100, rcost > 0 ? 100 * cost / rcost : 0);
        out_chain(out, d, &p->chain);
        out_printf(out, "\n");
    }
}

static const char *short_name(const char *s)
{
    const char *slash = strrchr(s, '/');

    return slash ? slash + 1 : s;
}

/* The models table: answered, accuracy, cost, and the learned scorers'
 * cross-validated AUC, alone and with the best single peer. */
static void format_models(const struct tune_data *d, const struct tune_scores *sc, int ref,
                          double rcost, struct buf *out)
{
    out_printf(out, "%-36s %-9s %-8s %-10s %-7s %s\n", "model", "answered", "accuracy", "$/query",
               "cost", sc ? "learned CV AUC: alone, with the best peer" : "");
    for (size_t m = 0; m < d->nmodels; m++) {
        double acc, cost;
        size_t answered = 0;
        const struct tune_head *alone = NULL, *best = NULL;

        for (size_t q = 0; q < d->nq; q++)
            answered += d->q[q].ans[m].content != NULL;
        tune_model_stats(d, (int)m, &acc, &cost);
        out_printf(out, "%-36s %-9zu %-8.4f %-10.3g %5.1f%%%s", d->models[m].name, answered, acc,
                   cost, rcost > 0 ? 100 * cost / rcost : 0, (int)m == ref ? " ref" : "    ");
        for (size_t i = 0; sc && i < sc->n; i++) {
            const struct tune_head *h = &sc->h[i];

            if (h->model != (int)m)
                continue;
            if (h->npeers == 0)
                alone = h;
            else if (h->npeers == 1 && (best == NULL || h->auc > best->auc))
                best = h;
        }
        if (alone)
            out_printf(out, "  %.3f", alone->auc);
        if (best)
            out_printf(out, "  %.3f (%s)", best->auc, short_name(d->models[best->peers[0]].name));
        out_printf(out, "\n");
    }
}

/* "Why the knee": what the cost bought below it and buys above it. */
static void format_knee(const struct tune_knee *k, double rcost, struct buf *out)
{
    if (k->cost <= 0 || k->lo_cost <= 0)
        return;
    out_printf(out,
               "  why the knee: from the cheapest chain ($%.3g, %.1f%% of ref) to the knee "
               "($%.3g, %.1f%%), %.1fx the cost bought %+.2f points; from the knee to the most "
               "accurate chain within the reference's cost ($%.3g, %.1f%%), %.1fx the cost "
               "buys %+.2f points (accuracies net of the stage penalty)\n",
               k->lo_cost, 100 * k->lo_cost / rcost, k->cost, 100 * k->cost / rcost,
               k->cost / k->lo_cost, (k->acc - k->lo_acc) * 100, k->hi_cost,
               100 * k->hi_cost / rcost, k->hi_cost / k->cost, (k->hi_acc - k->acc) * 100);
}

/* The learned stages' scorer AUCs of a chain, for the report. */
static void format_stage_aucs(const struct tune_data *d, const struct tune_scores *sc,
                              const struct tune_chain *c, struct buf *out)
{
    int any = 0;

    for (int i = 0; i < c->n - 1; i++) {
        const struct tune_stage *st = &c->st[i];
        const struct tune_head *h;

        if (st->kind != TS_LEARNED)
            continue;
        h = tune_scores_find(sc, st->model, st->partners, st->npartners);
        if (h == NULL)
            continue;
        out_printf(out, "%s stage %d scorer AUC %.3f", any ? "," : "  learned:", i + 1, h->auc);
        any = 1;
    }
    if (any)
        out_printf(out, " (cross-validated)\n");
}

/* The nested check of one choice, summed over the held-out parts: what the
 * fit on the other 80% predicted (the chosen chain on its own queries, and
 * the choice cross-validated there) and what the chain, scored as
 * deployed, did on the held-out part; the reference on both. */
struct check {
    size_t parts;
    struct tune_result pred, act;    /* accepted[] summed by stage position */
    struct tune_outcome cv;          /* the choice cross-validated on the 80% */
    struct tune_result ref_p, ref_a; /* the reference: on the 80%, held out */
    int nstages;                     /* the longest chain picked */
    struct buf chains;               /* one line per part */
};

static void result_add(struct tune_result *sum, const struct tune_result *r)
{
    sum->n += r->n;
    sum->correct += r->correct;
    sum->cost += r->cost;
    for (int s = 0; s < TUNE_MAX_STAGES; s++)
        sum->accepted[s] += r->accepted[s];
}

/* Add part `held` of the check: f80 was fitted on the other queries. */
static void check_add(const struct tune_data *d, const struct tune_fit *f80, size_t i, int ref,
                      const unsigned char *held, struct check *ck)
{
    const struct tune_pick *pk = &f80->pick[i];
    struct tune_chain rc = {.n = 1};
    struct tune_result pred, r;

    if (pk->p == NULL)
        return;
    ck->parts++;
    tune_simulate(d, &pk->p->chain, &f80->sc, f80->include, &pred);
    result_add(&ck->pred, &pred);
    tune_simulate(d, &pk->p->chain, &f80->sc, held, &r);
    result_add(&ck->act, &r);
    out_printf(&ck->chains, "    part %zu (%zu held-out queries): ", ck->parts, r.n);
    out_chain(&ck->chains, d, &pk->p->chain);
    out_printf(&ck->chains, "\n");
    if (pk->p->chain.n > ck->nstages)
        ck->nstages = pk->p->chain.n;
    /* Without cross-validation, the chain's own figure is the prediction. */
    ck->cv.n += pk->cv.n ? pk->cv.n : pred.n;
    ck->cv.correct += pk->cv.n ? pk->cv.correct : pred.correct;
    ck->cv.cost += pk->cv.n ? pk->cv.cost : pred.cost;
    rc.st[0].model = ref;
    tune_simulate(d, &rc, NULL, f80->include, &r);
    result_add(&ck->ref_p, &r);
    tune_simulate(d, &rc, NULL, held, &r);
    result_add(&ck->ref_a, &r);
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* Print a choice's check: per stage, acceptance predicted and actual; then
 * accuracy and cost against the reference, predicted (cross-validated on
 * the 80%) and actual; and whether they agree within CHECK_*_PTS. */
static void format_check(const struct tune_data *d, const struct check *ck, struct buf *out)
{
    const struct tune_result *p = &ck->pred, *a = &ck->act;
    double pacc = ratio((double)ck->cv.correct, (double)ck->cv.n);
    double aacc = ratio((double)a->correct, (double)a->n);
    double racc_p = ratio((double)ck->ref_p.correct, (double)ck->ref_p.n);
    double racc_a = ratio((double)ck->ref_a.correct, (double)ck->ref_a.n);
    double pcost = 100 * ratio(ratio(ck->cv.cost, (double)ck->cv.n),
                               ratio(ck->ref_p.cost, (double)ck->ref_p.n));
    double acost =
        100 * ratio(ratio(a->cost, (double)a->n), ratio(ck->ref_a.cost, (double)ck->ref_a.n));
    double dacc = ((aacc - racc_a) - (pacc - racc_p)) * 100;
    int agrees = fabs(dacc) <= CHECK_ACC_PTS && fabs(acost - pcost) <= CHECK_COST_PTS;

    if (ck->parts == 0)
        return;
    out_printf(out, "%s", ck->chains.data ? ck->chains.data : "");
    out_printf(out, "    %-32s %-24s %s\n", "", "predicted (fit on 80%)", "actual (held out)");
    for (int s = 0; s < ck->nstages; s++)
        out_printf(out, "    stage %d%-24s accepts %5.1f%%%10s accepts %5.1f%%\n", s + 1,
                   ck->parts > 1 ? " (chains may differ)" : "",
                   100 * ratio((double)p->accepted[s], (double)p->n), "",
                   100 * ratio((double)a->accepted[s], (double)a->n));
    out_printf(out,
               "    %-32s %+6.2f pt (cross-validated) %+6.2f pt   (ref %.4f / %.4f)\n"
               "    %-32s %5.1f%% (cross-validated)  %5.1f%%     of ref's $/query\n",
               "accuracy vs ref", (pacc - racc_p) * 100, (aacc - racc_a) * 100, racc_p, racc_a,
               "cost", pcost, acost);
    out_printf(out,
               "    %s: accuracy %+.2f pt, cost %+.1f pt apart (on %zu held-out queries; one "
               "query is %.2f pt)\n",
               agrees ? "agrees" : "DIFFERS", dacc, acost - pcost, a->n,
               100 * ratio(1, (double)a->n));
}

/* Write the weights file of every learned stage of the chosen chains into
 * DIR/scorers. */
static int write_weights(const struct tune_data *d, const struct tune_fit *fr,
                         const struct tune_learn_opts *lo, const char *outdir)
{
    struct buf path;
    int rc = 0;

    buf_init(&path, TUNE_PATH_MAX);
    for (size_t i = 0; i < fr->nchoice && rc == 0; i++) {
        const struct tune_chain *c = &fr->pick[i].p->chain;

        for (int s = 0; s < c->n - 1 && rc == 0; s++) {
            const struct tune_stage *st = &c->st[s];
            const struct tune_head *h;
            struct learned_model *lm;
            char err[512], *name;

            if (st->kind != TS_LEARNED)
                continue;
            h = tune_scores_find(&fr->sc, st->model, st->partners, st->npartners);
            sl_assert(h != NULL);
            name = tune_weights_name(d, st->model, st->partners, st->npartners);
            buf_reset(&path);
            if (buf_printf(&path, "%s/scorers/%s", outdir, name) < 0)
                sl_panic("path too long");
            free(name);
            lm = tune_head_model(d, &fr->sc, h, lo);
            if (learned_save(lm, path.data, err, sizeof(err)) < 0) {
                tune_msg("%s", err);
                rc = -1;
            }
            learned_free(lm);
        }
    }
    buf_free(&path);
    return rc;
}

/* routes.conf: each route with "# chain:" and its figures above it. */
static void format_routes(const struct tune_data *d, const struct tune_fit *fr,
                          const struct tune_choice *ch, int ref, int do_cv, struct buf *out)
{
    double racc, rcost;

    tune_ref_stats(d, ref, NULL, &racc, &rcost);
    out_printf(out, "# sluice-tune fit on %s (%zu queries); reference %s at $%.3g/query\n",
               d->source, d->nq, d->models[ref].name, rcost);
    out_printf(out, "routes = (\n");
    for (size_t i = 0; i < fr->nchoice; i++) {
        const struct tune_pick *pk = &fr->pick[i];
        double nq = (double)fr->res.all.nq;

        out_printf(out, "# route %s: ", ch[i].name);
        if (tune_choice_describe(&ch[i], d, ref, out) < 0)
            return; /* sticks: out_ok() reports it */
        out_printf(out, "\n# chain: ");
        out_chain(out, d, &pk->p->chain);
        out_printf(out, "\n# on all data: accuracy %.4f, $%.3g/query (%.1f%% of ref)\n",
                   (double)pk->p->correct / nq, pk->p->cost / nq,
                   rcost > 0 ? 100 * pk->p->cost / nq / rcost : 0);
        if (do_cv && pk->cv.n)
            out_printf(out,
                       "# cross-validated: accuracy %.4f (%+.2f points vs ref), $%.3g/query "
                       "(%.1f%% of ref)\n",
                       (double)pk->cv.correct / (double)pk->cv.n,
                       ((double)pk->cv.correct / (double)pk->cv.n - racc) * 100,
                       pk->cv.cost / (double)pk->cv.n,
                       rcost > 0 ? 100 * pk->cv.cost / (double)pk->cv.n / rcost : 0);
        if (tune_route_format(d, &pk->p->chain, ch[i].name, "scorers", out) < 0)
            return; /* sticks: out_ok() reports it */
        out_printf(out, "%s\n", i + 1 < fr->nchoice ? "," : "");
    }
    out_printf(out, ");\n");
}

/* ---- main ---- */

static int fit_main(int argc, char **argv)
{
    struct tune_inputs in;
    struct tune_search_opts so;
    struct tune_choice ch[TUNE_MAX_CHOICES], one;
    size_t nch = 0;
    const char *outdir = "tune-out", *route_name = "tuned", *routes_list = NULL;
    int use_learned = 1, do_cv = 1, c, rc = TUNE_EXIT_FAIL, ref;
    long check_parts = 1;
    int max_peers = 1, penalty_given = 0, perfect = 0;
    double penalty = 0.005;
    long v;
    struct tune_data d;
    struct tune_head_spec *spec = NULL;
    size_t nspec = 0;
    struct tune_fit fr = {0};
    struct check checks[TUNE_MAX_CHOICES];
    struct tune_fit_opts fo;
    unsigned char *train80 = NULL, *held = NULL;
    struct tune_plot_model *pm = NULL;
    struct tune_plot_mark marks[TUNE_MAX_CHOICES];
    double racc, rcost;
    struct buf out, path;
    uint64_t t0 = now_us();

    buf_init(&out, TUNE_REPORT_MAX);
    buf_init(&path, TUNE_PATH_MAX);
    tune_inputs_init(&in);
    tune_search_opts_default(&so);
    tune_choice_init(&one);
    memset(checks, 0, sizeof(checks));
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
        case OPT_TARGET:
            if (one.have || routes_list) {
                tune_msg("give one of --budget, --target-accuracy or --routes");
                return TUNE_EXIT_USAGE;
            }
            if (c == OPT_BUDGET && tune_choice_budget(&one, optarg) < 0) {
                tune_msg("--budget: expected USD per query or N%%, got \"%s\"", optarg);
                return TUNE_EXIT_USAGE;
            }
            if (c == OPT_TARGET && tune_choice_target(&one, optarg) < 0) {
                tune_msg("--target-accuracy: expected an accuracy in [0, 1] or points relative "
                         "to the reference (\"-0.5pt\"), got \"%s\"",
                         optarg);
                return TUNE_EXIT_USAGE;
            }
            break;
        case OPT_ROUTES:
            if (one.have || routes_list) {
                tune_msg("give one of --budget, --target-accuracy or --routes");
                return TUNE_EXIT_USAGE;
            }
            routes_list = optarg;
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
        case OPT_MAX_PEERS:
            if (tune_opt_long("--max-peers", optarg, 0, 2, &v) < 0)
                return TUNE_EXIT_USAGE;
            max_peers = (int)v;
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
        case OPT_NO_CHECK:
            check_parts = 0;
            break;
        case OPT_CHECK_PARTS:
            if (tune_opt_long("--check-parts", optarg, 0, CHECK_PARTS, &check_parts) < 0)
                return TUNE_EXIT_USAGE;
            break;
        case OPT_PERFECT:
            perfect = 1;
            break;
        case OPT_PENALTY:
            if (tune_opt_double("--penalty", optarg, &penalty) < 0 || penalty < 0 ||
                penalty > 100) {
                tune_msg("--penalty: points in [0, 100]");
                return TUNE_EXIT_USAGE;
            }
            penalty /= 100.0;
            penalty_given = 1;
            break;
        default:
            fit_usage(stderr);
            return TUNE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        tune_msg("fit: unexpected argument \"%s\"", argv[optind]);
        return TUNE_EXIT_USAGE;
    }
    if (in.ndata == 0) {
        fit_usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    if (strlen(route_name) > 64 || strpbrk(route_name, " \t\"\\") || route_name[0] == '\0') {
        tune_msg("--route-name: 1 to 64 characters, no spaces, quotes or backslashes");
        return TUNE_EXIT_USAGE;
    }
    if (routes_list) {
        if (parse_routes(routes_list, route_name, ch, &nch) < 0)
            return TUNE_EXIT_USAGE;
    } else {
        ch[0] = one;
        ch[0].knee = !one.have;
        snprintf(ch[0].name, sizeof(ch[0].name), "%s", route_name);
        nch = 1;
    }
    for (size_t i = 0; i < nch; i++) {
        ch[i].penalty = penalty;
        ch[i].penalty_given = penalty_given || !do_cv;
    }
    so.use_learned = use_learned;
    if (tune_inputs_load(&in, &d) < 0)
        return TUNE_EXIT_FAIL;
    ref = tune_reference(&in, &d);
    if (ref < 0)
        goto done;
    if (use_learned && !perfect)
        nspec = tune_head_specs_all(&d, max_peers, &spec);

    memset(&fo, 0, sizeof(fo));
    fo.learn = &in.learn;
    fo.search = &so;
    fo.spec = spec;
    fo.nspec = nspec;
    fo.use_learned = use_learned;
    fo.do_cv = do_cv;
    fo.ref = ref;
    fo.perfect = perfect;
    fo.choice = ch;
    fo.nchoice = nch;
    tune_fit_run(&d, &fo, NULL, &fr);
    for (size_t i = 0; i < nch; i++)
        buf_init(&checks[i].chains, TUNE_LOG_MAX);
    train80 = xmalloc(d.nq ? d.nq : 1);
    held = xmalloc(d.nq ? d.nq : 1);
    for (long part = 0; part < check_parts; part++) {
        struct tune_fit f80;

        for (size_t q = 0; q < d.nq; q++) {
            held[q] = (long)learned_fold_of(in.learn.seed ^ CHECK_SALT, CHECK_PARTS,
                                            d.q[q].prompt) == part;
            train80[q] = !held[q];
        }
        tune_msg("nested check %ld of %ld: the same fit on the other 80%% of the queries", part + 1,
                 check_parts);
        tune_fit_run(&d, &fo, train80, &f80);
        for (size_t i = 0; i < nch; i++)
            check_add(&d, &f80, i, ref, held, &checks[i]);
        tune_fit_free(&f80);
    }
    tune_ref_stats(&d, ref, NULL, &racc, &rcost);

    out_printf(&out, "sluice-tune fit: %s: %zu queries, %zu models, %d-fold CV, seed %llu\n\n",
               d.source, d.nq, d.nmodels, in.learn.folds, (unsigned long long)in.learn.seed);
    if (perfect)
        out_printf(&out, "PERFECT SCORER: every answer is scored with its grade (1 right, 0 "
                         "wrong). These figures are a bound on what any scorer could reach, not "
                         "a route: no weights and no routes.conf are written.\n\n");
    format_models(&d, use_learned && !perfect ? &fr.sc : NULL, ref, rcost, &out);
    out_printf(&out,
               "\nfrontier (%zu chains; accuracy and cost over all %zu queries; learned "
               "thresholds on out-of-fold scores; vs ref = %s):\n",
               fr.res.all.n, d.nq, d.models[ref].name);
    format_frontier(&d, &fr.res.all, racc, rcost, 0, &out);

    for (size_t i = 0; i < nch; i++) {
        const struct tune_pick *pk = &fr.pick[i];
        double nq = (double)fr.res.all.nq;

        if (pk->p == NULL)
            continue;
        out_printf(&out, "\nroute %s: ", ch[i].name);
        if (tune_choice_describe(&ch[i], &d, ref, &out) < 0)
            break; /* sticks: out_ok() reports it */
        out_printf(&out, "\n  chain: ");
        out_chain(&out, &d, &pk->p->chain);
        out_printf(&out,
                   "\n  on all data: accuracy %.4f (%+.2f points vs ref), $%.3g/query "
                   "(%.1f%% of ref)\n",
                   (double)pk->p->correct / nq, ((double)pk->p->correct / nq - racc) * 100,
                   pk->p->cost / nq, rcost > 0 ? 100 * pk->p->cost / nq / rcost : 0);
        if (ch[i].knee)
            format_knee(&pk->knee, rcost, &out);
        if (use_learned && !perfect)
            format_stage_aucs(&d, &fr.sc, &pk->p->chain, &out);
        out_printf(&out, "  rule: %.2f points per stage beyond the first", pk->penalty * 100);
        if (pk->margin < 1)
            out_printf(&out, ", within %.0f%% of the budget", pk->margin * 100);
        out_printf(&out, "\n");
        if (do_cv && pk->cv.n) {
            double acc = (double)pk->cv.correct / (double)pk->cv.n;
            double cost = pk->cv.cost / (double)pk->cv.n;

            out_printf(&out,
                       "  cross-validated (chain re-chosen on each %d-fold training split, run "
                       "on the held-out fold):\n    accuracy %.4f (%+.2f points vs ref), "
                       "$%.3g/query (%.1f%% of ref)\n%s",
                       in.learn.folds, acc, (acc - racc) * 100, cost,
                       rcost > 0 ? 100 * cost / rcost : 0, pk->cvlog.data ? pk->cvlog.data : "");
        }
        if (checks[i].parts) {
            out_printf(&out,
                       "  nested check: the whole fit on 80%% of the queries, its choice "
                       "deployed on the other 20%% as the gateway scores it (%ld of %d "
                       "parts):\n",
                       check_parts, CHECK_PARTS);
            format_check(&d, &checks[i], &out);
        }
    }

    /* Files. */
    if (make_dir(outdir) < 0)
        goto done;
    buf_reset(&path);
    if (buf_printf(&path, "%s/scorers", outdir) < 0)
        sl_panic("--out too long");
    if (use_learned && !perfect && make_dir(path.data) < 0)
        goto done;
    if (use_learned && !perfect && write_weights(&d, &fr, &in.learn, outdir) < 0)
        goto done;
    {
        struct buf tsv;
        FILE *svg;
        char title[512];
        size_t nmarks = 0;

        buf_init(&tsv, TUNE_TSV_MAX);
        format_frontier(&d, &fr.res.all, racc, rcost, 1, &tsv);
        buf_reset(&path);
        if (buf_printf(&path, "%s/frontier.tsv", outdir) < 0)
            sl_panic("--out too long");
        if (out_ok(&tsv, "frontier.tsv") < 0 || write_file(path.data, tsv.data, tsv.len) < 0) {
            buf_free(&tsv);
            goto done;
        }
        buf_free(&tsv);
        pm = xcalloc(d.nmodels, sizeof(*pm));
        for (size_t m = 0; m < d.nmodels; m++) {
            pm[m].label = d.models[m].name;
            tune_model_stats(&d, (int)m, &pm[m].acc, &pm[m].cost);
        }
        for (size_t i = 0; i < nch; i++) {
            if (fr.pick[i].p == NULL)
                continue;
            marks[nmarks].cost = fr.pick[i].p->cost / (double)fr.res.all.nq;
            marks[nmarks].acc = (double)fr.pick[i].p->correct / (double)fr.res.all.nq;
            marks[nmarks].label = ch[i].name;
            nmarks++;
        }
        buf_reset(&path);
        if (buf_printf(&path, "%s/frontier.svg", outdir) < 0)
            sl_panic("--out too long");
        svg = fopen(path.data, "w");
        if (svg == NULL) {
            tune_msg("%s: %s", path.data, strerror(errno));
            goto done;
        }
        snprintf(title, sizeof(title), "sluice-tune frontier: %s (%zu queries)", d.source, d.nq);
        tune_svg(svg, &d, &fr.res.all, pm, d.nmodels, marks, nmarks, title);
        if (fclose(svg) != 0) {
            tune_msg("%s: write failed", path.data);
            goto done;
        }
    }
    if (fr.res.all.n > 0 && !perfect) {
        struct buf routes;

        buf_init(&routes, TUNE_ROUTES_MAX);
        format_routes(&d, &fr, ch, ref, do_cv, &routes);
        buf_reset(&path);
        if (buf_printf(&path, "%s/routes.conf", outdir) < 0)
            sl_panic("--out too long");
        if (out_ok(&routes, "routes.conf") < 0 ||
            write_file(path.data, routes.data, routes.len) < 0) {
            buf_free(&routes);
            goto done;
        }
        out_printf(&out, "\n%s/routes.conf (weights paths are relative to %s):\n%s", outdir, outdir,
                   routes.data);
        buf_free(&routes);
    }
    if (out_ok(&out, "the report") < 0)
        goto done;
    fwrite(out.data, 1, out.len, stdout);
    tune_msg("fit took %.1fs", (double)(now_us() - t0) / 1e6);
    rc = TUNE_EXIT_OK;

done:
    buf_free(&out);
    buf_free(&path);
    tune_fit_free(&fr);
    for (size_t i = 0; i < nch; i++)
        buf_free(&checks[i].chains);
    free(spec);
    free(train80);
    free(held);
    free(pm);
    tune_data_free(&d);
    return rc;
}

TUNE_COMMAND(fit, "fit",
             "train scorers, search cascades, choose and check routes, write a routes block",
             fit_main)
