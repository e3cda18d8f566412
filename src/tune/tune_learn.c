/* tune_learn.c - training the per-model `learned` scorers with k-fold
 * cross-validation. The chain search only ever sees out-of-fold scores, so
 * the thresholds it picks are not fitted on the examples the scorer saw.
 */
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The seed of one fit: different per model and fold, fixed by --seed. It
 * hashes the model's name rather than its index, so `simulate` with another
 * --models subset trains the same scorers as `fit` did. */
static uint64_t fit_seed(uint64_t seed, const char *model, int fold)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

    for (const unsigned char *p = (const unsigned char *)model; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return seed * 1000003ull + h + (uint64_t)(fold + 1);
}

/* The training rows of model m's scorer without fold f (f < 0: all data):
 * its own answers with weight 1, and when pooling, the other models'
 * answers to the same queries with weight o->pool. Returns the count. */
static size_t training_rows(const struct tune_data *d, const struct tune_learn_opts *o,
                            const long *row, size_t m, const int *fold, int f, size_t *train,
                            double *weight)
{
    size_t nt = 0;

    for (size_t i = 0; i < d->nq; i++) {
        if (f >= 0 && fold[i] == f)
            continue;
        for (size_t k = 0; k < d->nmodels; k++) {
            long r = row[i * d->nmodels + k];

            if (r < 0 || (k != m && o->pool <= 0))
                continue;
            train[nt] = (size_t)r;
            weight[nt] = k == m ? 1.0 : o->pool;
            nt++;
        }
    }
    return nt;
}

void tune_learn(const struct tune_data *d, const struct tune_learn_opts *o, const int *fold,
                const unsigned char *want, double *score, struct learned_model **final,
                double *cv_auc)
{
    struct learned_data *ld = learned_data_new(&o->params, 0);
    long *row = xmalloc(d->nq * d->nmodels * sizeof(*row));
    size_t ntrain_max = d->nq * d->nmodels;
    size_t *train = xmalloc((ntrain_max ? ntrain_max : 1) * sizeof(*train));
    double *weight = xmalloc((ntrain_max ? ntrain_max : 1) * sizeof(*weight));
    double *s = xmalloc((d->nq ? d->nq : 1) * sizeof(*s));
    int *y = xmalloc((d->nq ? d->nq : 1) * sizeof(*y));
    struct tune_progress prog;

    tune_progress_start(&prog, "featurising", d->nq);
    for (size_t i = 0; i < d->nq; i++) {
        const struct tune_query *q = &d->q[i];
        long qi = learned_data_add_query(ld, q->prompt);

        if (qi < 0)
            sl_panic("training data exceeds %zu feature entries", LEARNED_DATA_MAX_ENTRIES);
        for (size_t m = 0; m < d->nmodels; m++) {
            const struct tune_answer *a = &q->ans[m];

            row[i * d->nmodels + m] = -1;
            /* Pooled training reads every model's answers. */
            if (a->content == NULL || (want && !want[m] && o->pool <= 0))
                continue;
            row[i * d->nmodels + m] =
                learned_data_add_answer(ld, qi, q->prompt, a->content, NULL, a->correct);
            if (row[i * d->nmodels + m] < 0)
                sl_panic("training data exceeds %zu feature entries", LEARNED_DATA_MAX_ENTRIES);
        }
        tune_progress_step(&prog, 1);
    }
    tune_progress_end(&prog);

    tune_progress_start(&prog, "training scorers",
                        (uint64_t)d->nmodels * (uint64_t)(o->folds + (final ? 1 : 0)));
    for (size_t m = 0; m < d->nmodels; m++) {
        size_t ns = 0, npos = 0;
        double logloss = 0;

        for (size_t i = 0; i < d->nq; i++)
            score[i * d->nmodels + m] = NAN;
        if (final)
            final[m] = NULL;
        if (cv_auc)
            cv_auc[m] = NAN;
        if (want && !want[m]) {
            tune_progress_step(&prog, (uint64_t)(o->folds + (final ? 1 : 0)));
            continue;
        }
        for (int f = 0; f < o->folds; f++) {
            struct learned_train_opts t = o->train;
            struct learned_model *lm;
            size_t nt = training_rows(d, o, row, m, fold, f, train, weight);

            t.seed = fit_seed(o->seed, d->models[m].name, f);
            lm = learned_fit(ld, train, weight, nt, &t, d->models[m].name);
            for (size_t i = 0; i < d->nq; i++)
                if (row[i * d->nmodels + m] >= 0 && fold[i] == f)
                    score[i * d->nmodels + m] =
                        learned_score_row(lm, ld, (size_t)row[i * d->nmodels + m]);
            learned_free(lm);
            tune_progress_step(&prog, 1);
        }
        for (size_t i = 0; i < d->nq; i++) {
            double p = score[i * d->nmodels + m];

            if (isnan(p))
                continue;
            s[ns] = p;
            y[ns] = d->q[i].ans[m].correct;
            npos += (size_t)y[ns];
            logloss -= y[ns] ? log(p > 1e-12 ? p : 1e-12) : log(1 - p > 1e-12 ? 1 - p : 1e-12);
            ns++;
        }
        if (cv_auc)
            cv_auc[m] = learned_auc(s, y, ns);
        if (final) {
            struct learned_train_opts t = o->train;
            struct learned_model *lm;
            char v[64];
            size_t nt = training_rows(d, o, row, m, fold, -1, train, weight), own = 0;

            for (size_t i = 0; i < d->nq; i++)
                own += row[i * d->nmodels + m] >= 0;
            t.seed = fit_seed(o->seed, d->models[m].name, -1);
            lm = learned_fit(ld, train, weight, nt, &t, d->models[m].name);
            learned_set_meta(lm, "trained_on", d->source);
            snprintf(v, sizeof(v), "%zu", own);
            learned_set_meta(lm, "examples", v);
            snprintf(v, sizeof(v), "%zu", nt - own);
            learned_set_meta(lm, "pooled_examples", v);
            snprintf(v, sizeof(v), "%g", o->pool);
            learned_set_meta(lm, "pool_weight", v);
            snprintf(v, sizeof(v), "%zu", npos);
            learned_set_meta(lm, "positives", v);
            snprintf(v, sizeof(v), "%d", o->folds);
            learned_set_meta(lm, "folds", v);
            snprintf(v, sizeof(v), "%llu", (unsigned long long)o->seed);
            learned_set_meta(lm, "seed", v);
            snprintf(v, sizeof(v), "%g", o->train.l2);
            learned_set_meta(lm, "l2", v);
            snprintf(v, sizeof(v), "%g", o->train.eta);
            learned_set_meta(lm, "eta", v);
            snprintf(v, sizeof(v), "%u", o->train.epochs);
            learned_set_meta(lm, "epochs", v);
            snprintf(v, sizeof(v), "%.4f", learned_auc(s, y, ns));
            learned_set_meta(lm, "cv_auc", v);
            snprintf(v, sizeof(v), "%.4f", ns ? logloss / (double)ns : 0.0);
            learned_set_meta(lm, "cv_logloss", v);
            learned_set_meta(lm, "created_by", "sluice-tune " SLUICE_VERSION);
            final[m] = lm;
            tune_progress_step(&prog, 1);
        }
    }
    tune_progress_end(&prog);
    learned_data_free(ld);
    free(row);
    free(train);
    free(weight);
    free(s);
    free(y);
}
