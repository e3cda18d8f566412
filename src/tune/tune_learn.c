/* tune_learn.c - training the `learned` scorers with k-fold cross-validation,
 * as the weights files deploy them.
 *
 * A scorer (a "head", struct tune_head) is one model's answers scored with
 * the answers of 0..2 peer models. Per fold f it has two parts, both
 * trained on the queries outside f: the model's text model (hashed n-grams,
 * learned_fit; shared by all of the model's heads) and the head (a small
 * logistic regression over the text logit and the dense inputs of
 * learned_inputs(), learned_head_fit). The deployed weights file holds all
 * k folds and scores a query with fold learned_fold_of(query), the same
 * function that deals the training folds here (tune_folds). So:
 *
 *  - on a training query, the deployed score is its out-of-fold score, the
 *    one the chain search chose thresholds on;
 *  - on a new query, the score comes from a model that never saw it either,
 *    trained on the same (k-1)/k of the data, so deployed scores are
 *    distributed like the scores the thresholds were chosen on.
 *
 * The head's text input for a training row is its out-of-fold text logit,
 * which is what it gets on new data too.
 */
#include "tune.h"
#include "caps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_CHECK_EVERY 13 /* queries checked against learned_score() */

/* The seed of one text fit: different per model and fold, fixed by --seed.
 * It hashes the model's name rather than its index, so `simulate` with
 * another --models subset trains the same scorers as `fit` did. */
static uint64_t fit_seed(uint64_t seed, const char *model, int fold)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

    for (const unsigned char *p = (const unsigned char *)model; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return seed * 1000003ull + h + (uint64_t)(fold + 1);
}

void tune_folds(const struct tune_data *d, int k, uint64_t seed, int *fold_of_query)
{
    for (size_t q = 0; q < d->nq; q++)
        fold_of_query[q] = (int)learned_fold_of(seed, (unsigned)k, d->q[q].prompt);
}

size_t tune_head_specs_all(const struct tune_data *d, int max_peers, struct tune_head_spec **spec)
{
    int nm = (int)d->nmodels;
    size_t n = 0, cap = (size_t)nm * (1 + (size_t)nm + (size_t)nm * (size_t)nm / 2);
    struct tune_head_spec *s = xcalloc(cap ? cap : 1, sizeof(*s));

    for (int m = 0; m < nm; m++) {
        s[n++].model = m;
        for (int a = 0; a < nm && max_peers >= 1; a++) {
            if (a == m)
                continue;
            s[n].model = m;
            s[n].peers[0] = a;
            s[n++].npeers = 1;
        }
        for (int a = 0; a < nm && max_peers >= 2; a++) {
            for (int b = a + 1; b < nm; b++) {
                if (a == m || b == m)
                    continue;
                s[n].model = m;
                s[n].peers[0] = a;
                s[n].peers[1] = b;
                s[n++].npeers = 2;
            }
        }
    }
    *spec = s;
    return n;
}

/* The training rows of model m's text model without fold f: its own
 * answers with weight 1, and when pooling, the other models' answers to the
 * same queries with weight o->pool. Returns the count. */
static size_t text_rows(const struct tune_data *d, const struct tune_learn_opts *o, const long *row,
                        size_t m, const int *fold, const unsigned char *include, int f,
                        size_t *train, double *weight)
{
    size_t nt = 0;

    for (size_t i = 0; i < d->nq; i++) {
        if ((include && !include[i]) || fold[i] == f)
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

/* Does query q have the head's model's answer and every peer's? */
static int head_answered(const struct tune_data *d, const struct tune_head *h, size_t q)
{
    if (d->q[q].ans[h->model].content == NULL)
        return 0;
    for (int i = 0; i < h->npeers; i++)
        if (d->q[q].ans[h->peers[i]].content == NULL)
            return 0;
    return 1;
}

/* The head's inputs: what the answer looks like; with one peer, agreement
 * and similarity with it; with more, also the shares over all of them. An
 * input that is the same on every row says nothing and is left out. */
static void head_inputs(struct tune_head *h, const double *x, size_t n)
{
    unsigned cand[LI_COUNT], nc = 0;

    for (unsigned i = LI_TEXT; i < LI_AGREE_SHARE; i++)
        cand[nc++] = i;
    if (h->npeers >= 2) {
        cand[nc++] = LI_AGREE_SHARE;
        cand[nc++] = LI_DISTINCT;
        cand[nc++] = LI_SIM_MEAN;
    }
    for (int p = 0; p < h->npeers; p++) {
        cand[nc++] = LI_PEER + 2 * (unsigned)p;
        cand[nc++] = LI_PEER + 2 * (unsigned)p + 1;
    }
    h->nin = 0;
    for (unsigned c = 0; c < nc; c++) {
        int varies = 0;

        for (size_t r = 1; r < n && !varies; r++)
            varies = x[r * LI_COUNT + cand[c]] != x[cand[c]];
        if (varies)
            h->in[h->nin++] = (unsigned char)cand[c];
    }
}

/* Train head h on the inputs of its answered queries, fold by fold, and
 * score every answered query with its own fold's head. */
static void head_train(const struct tune_data *d, const struct tune_learn_opts *o, const int *fold,
                       const unsigned char *include, const struct learned_info *info,
                       const double *ztext, struct tune_head *h)
{
    size_t nm = d->nmodels, n = 0, nt;
    size_t *qs = xmalloc((d->nq ? d->nq : 1) * sizeof(*qs));
    double *x = xmalloc((d->nq ? d->nq : 1) * LI_COUNT * sizeof(*x));
    double *xt = xmalloc((d->nq ? d->nq : 1) * LI_COUNT * sizeof(*xt));
    int *y = xmalloc((d->nq ? d->nq : 1) * sizeof(*y));
    double *s = xmalloc((d->nq ? d->nq : 1) * sizeof(*s));
    int *ys = xmalloc((d->nq ? d->nq : 1) * sizeof(*ys));
    size_t ns = 0;

    for (size_t q = 0; q < d->nq; q++) {
        struct learned_info pi[TUNE_MAX_PARTNERS];

        h->score[q] = NAN;
        if (!head_answered(d, h, q))
            continue;
        for (int i = 0; i < h->npeers; i++)
            pi[i] = info[q * nm + (size_t)h->peers[i]];
        learned_inputs(&info[q * nm + (size_t)h->model], pi, (unsigned)h->npeers,
                       ztext[q * nm + (size_t)h->model], x + n * LI_COUNT);
        qs[n++] = q;
    }
    /* The inputs are chosen on the training queries only. */
    nt = 0;
    for (size_t r = 0; r < n; r++)
        if (!include || include[qs[r]])
            memcpy(xt + nt++ * LI_COUNT, x + r * LI_COUNT, LI_COUNT * sizeof(*x));
    head_inputs(h, xt, nt);
    h->hb = xcalloc((size_t)o->folds, sizeof(double));
    h->hw = xcalloc((size_t)o->folds * (h->nin ? h->nin : 1), sizeof(double));
    for (int f = 0; f < o->folds; f++) {
        nt = 0;
        for (size_t r = 0; r < n; r++) {
            size_t q = qs[r];

            if ((include && !include[q]) || fold[q] == f)
                continue;
            memcpy(xt + nt * LI_COUNT, x + r * LI_COUNT, LI_COUNT * sizeof(*x));
            y[nt++] = d->q[q].ans[h->model].correct;
        }
        learned_head_fit(xt, y, nt, h->in, h->nin, o->head_l2, &h->hb[f], h->hw + f * h->nin);
    }
    /* The score, as learned_head_z() computes it. */
    for (size_t r = 0; r < n; r++) {
        size_t q = qs[r];
        int f = fold[q];
        double z = h->hb[f];

        for (unsigned j = 0; j < h->nin; j++)
            z += h->hw[(size_t)f * h->nin + j] * x[r * LI_COUNT + h->in[j]];
        h->score[q] = learned_sigmoid(z);
        if (!include || include[q]) {
            s[ns] = h->score[q];
            ys[ns++] = d->q[q].ans[h->model].correct;
        }
    }
    h->auc = learned_auc(s, ys, ns);
    free(qs);
    free(x);
    free(xt);
    free(y);
    free(s);
    free(ys);
}

static void peers_names(const struct tune_data *d, const int *peers, int npeers, struct buf *out)
{
    for (int i = 0; i < npeers; i++)
        if (buf_printf(out, "%s%s", i ? "," : "", d->models[peers[i]].name) < 0)
            sl_panic("model names longer than a weights file line");
}

struct learned_model *tune_head_model(const struct tune_data *d, const struct tune_scores *s,
                                      const struct tune_head *h, const struct tune_learn_opts *o)
{
    struct learned_model *lm;
    struct buf peers;
    char v[64];

    sl_assert(h->hb != NULL);
    buf_init(&peers, LEARNED_MAX_VALUE);
    peers_names(d, h->peers, h->npeers, &peers);
    lm = learned_assemble(d->models[h->model].name, &s->params, (unsigned)s->folds, s->fold_seed,
                          peers.data ? peers.data : "", (unsigned)h->npeers, h->in, h->nin);
    buf_free(&peers);
    for (int f = 0; f < s->folds; f++)
        learned_set_fold(lm, (unsigned)f, s->text[(size_t)h->model * (size_t)s->folds + (size_t)f],
                         h->hb[f], h->hw + (size_t)f * h->nin);
    learned_set_meta(lm, "trained_on", d->source);
    snprintf(v, sizeof(v), "%g", o->pool);
    learned_set_meta(lm, "pool_weight", v);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)o->seed);
    learned_set_meta(lm, "seed", v);
    snprintf(v, sizeof(v), "%g", o->train.l2);
    learned_set_meta(lm, "l2", v);
    snprintf(v, sizeof(v), "%g", o->train.eta);
    learned_set_meta(lm, "eta", v);
    snprintf(v, sizeof(v), "%u", o->train.epochs);
    learned_set_meta(lm, "epochs", v);
    snprintf(v, sizeof(v), "%g", o->head_l2);
    learned_set_meta(lm, "head_l2", v);
    snprintf(v, sizeof(v), "%.4f", h->auc);
    learned_set_meta(lm, "cv_auc", v);
    learned_set_meta(lm, "created_by", "sluice-tune " SLUICE_VERSION);
    return lm;
}

/* The deployed file of head h must give exactly the scores the search saw:
 * check a sample with the gateway's own learned_score(). */
static void head_check(const struct tune_data *d, const struct tune_scores *s,
                       const struct tune_head *h, const struct tune_learn_opts *o)
{
    struct learned_model *lm = tune_head_model(d, s, h, o);

    for (size_t q = 0; q < d->nq; q += HEAD_CHECK_EVERY) {
        const char *peers[TUNE_MAX_PARTNERS];
        double got;

        if (isnan(h->score[q]))
            continue;
        for (int i = 0; i < h->npeers; i++)
            peers[i] = d->q[q].ans[h->peers[i]].content;
        got = learned_score(lm, d->q[q].prompt, d->q[q].ans[h->model].content, NULL, peers,
                            (size_t)h->npeers);
        if (got != h->score[q])
            sl_panic("learned scorer of %s: the weights file scores query %s %.17g, training "
                     "said %.17g",
                     d->models[h->model].name, d->q[q].id, got, h->score[q]);
    }
    learned_free(lm);
}

void tune_learn(const struct tune_data *d, const struct tune_learn_opts *o,
                const unsigned char *include, const struct tune_head_spec *spec, size_t nspec,
                struct tune_scores *s)
{
    size_t nm = d->nmodels, k = (size_t)o->folds, nqm = d->nq * nm + 1;
    struct learned_data *ld = learned_data_new(&o->params, 0);
    long *row = xmalloc(nqm * sizeof(*row));
    size_t ntrain_max = d->nq * nm;
    size_t *train = xmalloc((ntrain_max ? ntrain_max : 1) * sizeof(*train));
    double *weight = xmalloc((ntrain_max ? ntrain_max : 1) * sizeof(*weight));
    double *ztext = xmalloc(nqm * sizeof(*ztext));
    struct learned_info *info = xcalloc(nqm, sizeof(*info));
    int *fold = xmalloc((d->nq ? d->nq : 1) * sizeof(*fold));
    unsigned char *text_need = xcalloc(nm ? nm : 1, 1);
    struct tune_progress prog;

    memset(s, 0, sizeof(*s));
    s->folds = o->folds;
    s->fold_seed = o->seed;
    s->params = o->params;
    s->ntext = nm * k;
    s->text = xcalloc(nm * k + 1, sizeof(*s->text));
    s->n = nspec;
    s->h = xcalloc(nspec ? nspec : 1, sizeof(*s->h));
    for (size_t i = 0; i < nspec; i++) {
        s->h[i].model = spec[i].model;
        s->h[i].npeers = spec[i].npeers;
        memcpy(s->h[i].peers, spec[i].peers, sizeof(spec[i].peers));
        s->h[i].score = xmalloc((d->nq ? d->nq : 1) * sizeof(double));
        s->h[i].auc = NAN;
        text_need[spec[i].model] = 1;
    }
    tune_folds(d, o->folds, o->seed, fold);

    tune_progress_start(&prog, "featurising", d->nq);
    for (size_t i = 0; i < d->nq; i++) {
        const struct tune_query *q = &d->q[i];
        long qi = learned_data_add_query(ld, q->prompt);

        if (qi < 0)
            sl_panic("training data exceeds %zu feature entries", LEARNED_DATA_MAX_ENTRIES);
        for (size_t m = 0; m < nm; m++) {
            const struct tune_answer *a = &q->ans[m];

            row[i * nm + m] = -1;
            ztext[i * nm + m] = NAN;
            learned_answer_info(a->content, &info[i * nm + m]);
            /* Pooled training reads every model's answers. */
            if (a->content == NULL || (!text_need[m] && o->pool <= 0))
                continue;
            row[i * nm + m] =
                learned_data_add_answer(ld, qi, q->prompt, a->content, NULL, a->correct);
            if (row[i * nm + m] < 0)
                sl_panic("training data exceeds %zu feature entries", LEARNED_DATA_MAX_ENTRIES);
        }
        tune_progress_step(&prog, 1);
    }
    tune_progress_end(&prog);

    tune_progress_start(&prog, "training text models", (uint64_t)(nm * k));
    for (size_t m = 0; m < nm; m++) {
        for (size_t f = 0; f < k && text_need[m]; f++) {
            struct learned_train_opts t = o->train;
            struct learned_model *lm;
            size_t nt = text_rows(d, o, row, m, fold, include, (int)f, train, weight);

            t.seed = fit_seed(o->seed, d->models[m].name, (int)f);
            lm = learned_fit(ld, train, weight, nt, &t, d->models[m].name);
            s->text[m * k + f] = lm;
        }
        for (size_t i = 0; i < d->nq && text_need[m]; i++)
            if (row[i * nm + m] >= 0)
                ztext[i * nm + m] = learned_text_z_row(s->text[m * k + (size_t)fold[i]], 0, ld,
                                                       (size_t)row[i * nm + m]);
        tune_progress_step(&prog, k);
    }
    tune_progress_end(&prog);

    tune_progress_start(&prog, "training scorers", nspec);
    for (size_t i = 0; i < nspec; i++) {
        head_train(d, o, fold, include, info, ztext, &s->h[i]);
        tune_progress_step(&prog, 1);
    }
    tune_progress_end(&prog);
    /* One head per model, and one with peers, against the gateway's code. */
    for (size_t i = 0; i < nspec; i++)
        if (i == 0 || s->h[i].model != s->h[i - 1].model || (i % 17) == 0)
            head_check(d, s, &s->h[i], o);

    learned_data_free(ld);
    free(row);
    free(train);
    free(weight);
    free(ztext);
    free(info);
    free(fold);
    free(text_need);
}

void tune_scores_perfect(const struct tune_data *d, struct tune_scores *s)
{
    memset(s, 0, sizeof(*s));
    s->n = d->nmodels;
    s->h = xcalloc(s->n ? s->n : 1, sizeof(*s->h));
    for (size_t m = 0; m < d->nmodels; m++) {
        struct tune_head *h = &s->h[m];

        h->model = (int)m;
        h->auc = 1.0;
        h->score = xmalloc((d->nq ? d->nq : 1) * sizeof(double));
        for (size_t q = 0; q < d->nq; q++)
            h->score[q] = d->q[q].ans[m].content ? (double)d->q[q].ans[m].correct : NAN;
    }
}

const struct tune_head *tune_scores_find(const struct tune_scores *s, int model, const int *peers,
                                         int npeers)
{
    for (size_t i = 0; s && i < s->n; i++) {
        const struct tune_head *h = &s->h[i];

        if (h->model != model || h->npeers != npeers)
            continue;
        if (npeers == 0 || memcmp(h->peers, peers, (size_t)npeers * sizeof(*peers)) == 0)
            return h;
    }
    return NULL;
}

void tune_scores_free(struct tune_scores *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->h[i].score);
        free(s->h[i].hb);
        free(s->h[i].hw);
        learned_free(s->h[i].loaded);
    }
    free(s->h);
    for (size_t i = 0; i < s->ntext; i++)
        learned_free(s->text[i]);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

char *tune_weights_name(const struct tune_data *d, int model, const int *peers, int npeers)
{
    struct buf b;
    char *name;

    buf_init(&b, TUNE_PATH_MAX);
    if (buf_puts(&b, d->models[model].file_name) < 0)
        sl_panic("weights file name too long");
    for (int i = 0; i < npeers; i++)
        if (buf_printf(&b, "+%s", d->models[peers[i]].file_name) < 0)
            sl_panic("weights file name too long");
    name = xasprintf("%s.w", b.data);
    buf_free(&b);
    return name;
}
