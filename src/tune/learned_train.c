/* learned_train.c - sluice-tune's side of the `learned` scorer: featurised
 * training data (recorded through learned.c's own feature walk), the
 * AdaGrad trainer, metadata and writing weights files. See learned_train.h.
 *
 * Training rows are scored by replaying the recorded feature indices in the
 * recorded order, so the offline score and the gateway's score are the same
 * double.
 */
#include "learned_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- training storage ---- */

struct fgroup {
    size_t end; /* one past the group's last entry in the pool */
    float scale;
};

/* A featurised text: entries [e0, e1) and groups [g0, g1) of the pools. */
struct fvec {
    size_t e0, e1;
    size_t g0, g1;
};

struct learned_row {
    size_t query; /* index into queries */
    struct fvec v;
    int label;
};

struct learned_data {
    struct learned_params p;
    uint32_t *ent; /* feature index | sign << 31 */
    size_t nent, capent, maxent;
    struct fgroup *grp;
    size_t ngrp, capgrp;
    struct fvec *queries;
    size_t nqueries, capqueries;
    struct learned_row *rows;
    size_t nrows, caprows;
    int full; /* the entry cap was hit during the current add */
};

/* ---- model objects ---- */

const struct learned_params *learned_model_params(const struct learned_model *m)
{
    return &m->p;
}

double learned_model_bias(const struct learned_model *m)
{
    return m->fold[0].bias;
}

static size_t fold_nonzero(const struct learned_model *m, unsigned f)
{
    size_t n = 0, dim = (size_t)1 << m->p.bits;

    for (size_t i = 0; i < dim; i++)
        n += m->fold[f].w[i] != 0.0f;
    return n;
}

size_t learned_model_nonzero(const struct learned_model *m)
{
    size_t n = 0;

    for (unsigned f = 0; f < m->nfolds; f++)
        n += fold_nonzero(m, f);
    return n;
}

struct learned_model *learned_assemble(const char *name, const struct learned_params *p,
                                       unsigned nfolds, uint64_t fold_seed, const char *peers,
                                       unsigned npeers, const unsigned char *head_in,
                                       unsigned nhead)
{
    struct learned_model *m = learned_model_new(p, name, nfolds);

    sl_assert(npeers <= LEARNED_MAX_PEERS && nhead <= LI_COUNT);
    free(m->peers);
    m->peers = xstrdup(peers ? peers : "");
    m->npeers = npeers;
    m->fold_seed = fold_seed;
    m->nhead = nhead;
    for (unsigned j = 0; j < nhead; j++) {
        sl_assert(head_in[j] < LI_COUNT);
        m->head_in[j] = head_in[j];
    }
    for (unsigned f = 0; f < nfolds; f++)
        m->fold[f].head = nhead ? xcalloc(nhead, sizeof(double)) : NULL;
    return m;
}

void learned_set_fold(struct learned_model *m, unsigned f, const struct learned_model *text,
                      double head_bias, const double *head)
{
    sl_assert(f < m->nfolds && text->p.bits == m->p.bits && text->nfolds == 1);
    memcpy(m->fold[f].w, text->fold[0].w, ((size_t)1 << m->p.bits) * sizeof(float));
    m->fold[f].bias = text->fold[0].bias;
    m->fold[f].head_bias = head_bias;
    for (unsigned j = 0; j < m->nhead; j++)
        m->fold[f].head[j] = head[j];
}

/* Store a copy of value with control characters (a newline would break the
 * line format) replaced by spaces, cut at LEARNED_MAX_VALUE bytes. */
static char *clean_value(const char *v)
{
    size_t n = strlen(v);
    char *c;

    if (n > LEARNED_MAX_VALUE)
        n = LEARNED_MAX_VALUE;
    c = xstrndup(v, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
            c[i] = ' ';
    return c;
}

void learned_set_meta(struct learned_model *m, const char *key, const char *value)
{
    sl_assert(learned_meta_key_ok(key, strlen(key)));
    for (size_t i = 0; i < m->nmeta; i++) {
        if (strcmp(m->meta[i].key, key) == 0) {
            free(m->meta[i].value);
            m->meta[i].value = clean_value(value);
            return;
        }
    }
    sl_assert(m->nmeta < LEARNED_MAX_META);
    m->meta = xrealloc(m->meta, (m->nmeta + 1) * sizeof(*m->meta));
    m->meta[m->nmeta].key = xstrdup(key);
    m->meta[m->nmeta].value = clean_value(value);
    m->nmeta++;
}

/* ---- the weights file ---- */

/* One fold: its keys, its weights, "end". */
static int format_fold(const struct learned_model *m, unsigned f, struct buf *out)
{
    const struct learned_fold *fo = &m->fold[f];
    size_t dim = (size_t)1 << m->p.bits;
    int r = 0;

    r |= buf_printf(out, "fold %u\nbias=%.17g\n", f, fo->bias);
    if (m->nhead) {
        r |= buf_printf(out, "head_bias=%.17g\nhead_weights=", fo->head_bias);
        for (unsigned j = 0; j < m->nhead; j++)
            r |= buf_printf(out, "%s%.17g", j ? "," : "", fo->head[j]);
        r |= buf_puts(out, "\n");
    }
    r |= buf_printf(out, "nonzero=%zu\nweights\n", fold_nonzero(m, f));
    for (size_t i = 0; i < dim && r == 0; i++)
        if (fo->w[i] != 0.0f)
            r |= buf_printf(out, "%zu %.9g\n", i, (double)fo->w[i]);
    r |= buf_puts(out, "end\n");
    return r;
}

int learned_format(const struct learned_model *m, struct buf *out)
{
    int first = 1;
    int r = 0;

    r |= buf_printf(out, "%s %d\n", LEARNED_MAGIC, LEARNED_VERSION);
    r |= buf_printf(out, "model=%s\n", m->name);
    if (m->npeers)
        r |= buf_printf(out, "peers=%s\n", m->peers);
    r |= buf_printf(out, "bits=%u\n", m->p.bits);
    r |= buf_printf(out, "word_ngrams=%u-%u\n", m->p.word_min, m->p.word_max);
    r |= buf_printf(out, "char_ngrams=%u-%u\n", m->p.char_min, m->p.char_max);
    r |= buf_printf(out, "query_tail=%u\n", m->p.query_tail);
    r |= buf_printf(out, "answer_head=%u\n", m->p.answer_head);
    r |= buf_puts(out, "features=");
    for (unsigned bit = 1; bit <= LF_ALL; bit <<= 1) {
        if (!(m->p.features & bit))
            continue;
        r |= buf_printf(out, "%s%s", first ? "" : ",", learned_feature_name(bit));
        first = 0;
    }
    r |= buf_puts(out, "\n");
    if (m->nhead) {
        r |= buf_puts(out, "head=");
        for (unsigned j = 0; j < m->nhead; j++)
            r |= buf_printf(out, "%s%s", j ? "," : "", learned_input_name(m->head_in[j]));
        r |= buf_puts(out, "\n");
    }
    r |= buf_printf(out, "folds=%u\nfold_seed=%llu\n", m->nfolds, (unsigned long long)m->fold_seed);
    for (size_t i = 0; i < m->nmeta; i++)
        r |= buf_printf(out, "%s=%s\n", m->meta[i].key, m->meta[i].value);
    for (unsigned f = 0; f < m->nfolds && r == 0; f++)
        r |= format_fold(m, f, out);
    return r ? -1 : 0;
}

int learned_save(const struct learned_model *m, const char *path, char *err, size_t errlen)
{
    struct buf b;
    char *tmp;
    FILE *f;
    int ok;

    buf_init(&b, (size_t)LEARNED_MAX_FILE_BYTES);
    if (learned_format(m, &b) < 0) {
        snprintf(err, errlen, "%s: weights too large", path);
        buf_free(&b);
        return -1;
    }
    tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        buf_free(&b);
        return -1;
    }
    ok = fwrite(b.data, 1, b.len, f) == b.len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        buf_free(&b);
        return -1;
    }
    free(tmp);
    buf_free(&b);
    return 0;
}

/* ---- training data ---- */

struct learned_data *learned_data_new(const struct learned_params *p, size_t max_entries)
{
    struct learned_data *d = xcalloc(1, sizeof(*d));

    d->p = *p;
    d->maxent = max_entries ? max_entries : LEARNED_DATA_MAX_ENTRIES;
    return d;
}

void learned_data_free(struct learned_data *d)
{
    if (d == NULL)
        return;
    free(d->ent);
    free(d->grp);
    free(d->queries);
    free(d->rows);
    free(d);
}

/* The sink the feature walk records into: the entry pool and the groups. */
struct data_sink {
    struct learned_sink base; /* first: the walk hands back &base */
    struct learned_data *d;
};

static void data_emit_cb(struct learned_sink *s, uint32_t e)
{
    struct learned_data *d = ((struct data_sink *)s)->d;

    if (d->nent == d->capent) {
        if (d->nent >= d->maxent) {
            d->full = 1;
            return;
        }
        d->capent = d->capent ? d->capent * 2 : 4096;
        if (d->capent > d->maxent)
            d->capent = d->maxent;
        d->ent = xrealloc(d->ent, d->capent * sizeof(*d->ent));
    }
    d->ent[d->nent++] = e;
}

static void data_group_end_cb(struct learned_sink *s, float scale)
{
    struct learned_data *d = ((struct data_sink *)s)->d;

    if (d->ngrp == d->capgrp) {
        d->capgrp = d->capgrp ? d->capgrp * 2 : 1024;
        d->grp = xrealloc(d->grp, d->capgrp * sizeof(*d->grp));
    }
    d->grp[d->ngrp].end = d->nent;
    d->grp[d->ngrp].scale = scale;
    d->ngrp++;
}

static void data_walk_begin(struct learned_data *d, struct data_sink *sink, struct fvec *v)
{
    sink->base.emit_cb = data_emit_cb;
    sink->base.group_end_cb = data_group_end_cb;
    sink->d = d;
    d->full = 0;
    v->e0 = d->nent;
    v->g0 = d->ngrp;
}

/* Finish a recorded text, or roll it back if the cap was hit. */
static int data_walk_end(struct learned_data *d, struct fvec *v)
{
    if (d->full) {
        d->nent = v->e0;
        d->ngrp = v->g0;
        return -1;
    }
    v->e1 = d->nent;
    v->g1 = d->ngrp;
    return 0;
}

long learned_data_add_query(struct learned_data *d, const char *query)
{
    struct data_sink sink;
    struct fvec v;

    data_walk_begin(d, &sink, &v);
    learned_walk_query(&d->p, query, &sink.base);
    if (data_walk_end(d, &v) < 0)
        return -1;
    if (d->nqueries == d->capqueries) {
        d->capqueries = d->capqueries ? d->capqueries * 2 : 256;
        d->queries = xrealloc(d->queries, d->capqueries * sizeof(*d->queries));
    }
    d->queries[d->nqueries] = v;
    return (long)d->nqueries++;
}

long learned_data_add_answer(struct learned_data *d, long qi, const char *query, const char *answer,
                             const char *finish_reason, int label)
{
    struct data_sink sink;
    struct fvec v;

    sl_assert(qi >= 0 && (size_t)qi < d->nqueries);
    data_walk_begin(d, &sink, &v);
    learned_walk_answer(&d->p, query, answer, finish_reason, &sink.base);
    if (data_walk_end(d, &v) < 0)
        return -1;
    if (d->nrows == d->caprows) {
        d->caprows = d->caprows ? d->caprows * 2 : 1024;
        d->rows = xrealloc(d->rows, d->caprows * sizeof(*d->rows));
    }
    d->rows[d->nrows].query = (size_t)qi;
    d->rows[d->nrows].v = v;
    d->rows[d->nrows].label = label ? 1 : 0;
    return (long)d->nrows++;
}

size_t learned_data_rows(const struct learned_data *d)
{
    return d->nrows;
}

int learned_data_label(const struct learned_data *d, size_t row)
{
    sl_assert(row < d->nrows);
    return d->rows[row].label;
}

/* Replay a recorded text against float weights, as learned_score does. */
static double fvec_dot(const struct learned_data *d, const struct fvec *v, const float *w, double z)
{
    size_t e = v->e0;

    for (size_t g = v->g0; g < v->g1; g++) {
        double s = 0;

        for (; e < d->grp[g].end; e++) {
            uint32_t x = d->ent[e];
            double wi = w[x & 0x7fffffffu];

            s += (x >> 31) ? -wi : wi;
        }
        z += s * (double)d->grp[g].scale;
    }
    return z;
}

double learned_text_z_row(const struct learned_model *m, unsigned f, const struct learned_data *d,
                          size_t row)
{
    const struct learned_row *r;
    double z;

    sl_assert(row < d->nrows && m->p.bits == d->p.bits && f < m->nfolds);
    r = &d->rows[row];
    z = fvec_dot(d, &d->queries[r->query], m->fold[f].w, m->fold[f].bias);
    return fvec_dot(d, &r->v, m->fold[f].w, z);
}

double learned_score_row(const struct learned_model *m, const struct learned_data *d, size_t row)
{
    sl_assert(m->nfolds == 1 && m->nhead == 0);
    return learned_sigmoid(learned_text_z_row(m, 0, d, row));
}

/* ---- training ---- */

void learned_train_opts_default(struct learned_train_opts *o)
{
    o->l2 = 1e-2;
    o->eta = 0.1;
    o->epochs = 8;
    o->seed = 1;
}

/* splitmix64: a tiny, well-mixed generator; all we need for shuffling. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Trainer state: double weights and AdaGrad's squared-gradient sums. */
struct trainer {
    const struct learned_data *d;
    double *w;
    double *g2;
    double bias, bias_g2;
    const struct learned_train_opts *o;
};

static double trainer_dot(const struct trainer *t, const struct fvec *v, double z)
{
    const struct learned_data *d = t->d;
    size_t e = v->e0;

    for (size_t g = v->g0; g < v->g1; g++) {
        double s = 0;

        for (; e < d->grp[g].end; e++) {
            uint32_t x = d->ent[e];
            double wi = t->w[x & 0x7fffffffu];

            s += (x >> 31) ? -wi : wi;
        }
        z += s * (double)d->grp[g].scale;
    }
    return z;
}

/* One AdaGrad step on every weight the text touches, for the loss
 * gradient g (= p - y) plus the L2 term. The penalty is applied lazily, only
 * to the weights an example touches, as usual for sparse SGD. */
static void trainer_step(struct trainer *t, const struct fvec *v, double g)
{
    const struct learned_data *d = t->d;
    size_t e = v->e0;

    for (size_t gi = v->g0; gi < v->g1; gi++) {
        double scale = d->grp[gi].scale;

        for (; e < d->grp[gi].end; e++) {
            uint32_t x = d->ent[e];
            uint32_t i = x & 0x7fffffffu;
            double xi = (x >> 31) ? -scale : scale;
            double grad = g * xi + t->o->l2 * t->w[i];

            t->g2[i] += grad * grad;
            t->w[i] -= t->o->eta * grad / (sqrt(t->g2[i]) + 1e-8);
        }
    }
}

/* Rows of one query, trained on together. */
struct fit_group {
    size_t first, n; /* into the sorted row list */
};

struct fit_row {
    size_t row;
    double weight;
};

static int fit_row_cmp(const void *a, const void *b, void *arg)
{
    const struct fit_row *x = a, *y = b;
    const struct learned_data *d = arg;
    size_t qx = d->rows[x->row].query, qy = d->rows[y->row].query;

    if (qx != qy)
        return qx < qy ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

struct learned_model *learned_fit(const struct learned_data *d, const size_t *rows,
                                  const double *weight, size_t nrows,
                                  const struct learned_train_opts *o, const char *model_name)
{
    size_t dim = (size_t)1 << d->p.bits;
    struct trainer t = {d, xcalloc(dim, sizeof(double)), xcalloc(dim, sizeof(double)), 0, 0, o};
    struct fit_row *fr = xmalloc((nrows ? nrows : 1) * sizeof(*fr));
    struct fit_group *grp = xmalloc((nrows ? nrows : 1) * sizeof(*grp));
    double *g = xmalloc((nrows ? nrows : 1) * sizeof(*g));
    size_t ngrp = 0;
    struct learned_model *m;
    uint64_t rng = o->seed;
    double pos = 0, tot = 0;

    for (size_t i = 0; i < nrows; i++) {
        fr[i].row = rows[i];
        fr[i].weight = weight ? weight[i] : 1.0;
        pos += fr[i].weight * d->rows[rows[i]].label;
        tot += fr[i].weight;
    }
    /* Start the bias at the log-odds of the base rate: the weights then only
     * have to learn the deviations, which takes fewer epochs. */
    if (tot > 0)
        t.bias = log((pos + 0.5) / (tot - pos + 0.5));

    /* Answers to the same query share its features: take them as one
     * minibatch, so the query's features are read and updated once with the
     * summed gradient instead of once per answer. */
    qsort_r(fr, nrows, sizeof(*fr), fit_row_cmp, (void *)d);
    for (size_t i = 0; i < nrows; i++) {
        if (i == 0 || d->rows[fr[i].row].query != d->rows[fr[i - 1].row].query) {
            grp[ngrp].first = i;
            grp[ngrp].n = 0;
            ngrp++;
        }
        grp[ngrp - 1].n++;
    }

    for (unsigned ep = 0; ep < o->epochs; ep++) {
        for (size_t i = ngrp; i > 1; i--) {
            size_t j = (size_t)(splitmix64(&rng) % i);
            struct fit_group tmp = grp[i - 1];

            grp[i - 1] = grp[j];
            grp[j] = tmp;
        }
        for (size_t k = 0; k < ngrp; k++) {
            const struct fvec *qv = &d->queries[d->rows[fr[grp[k].first].row].query];
            double zq = trainer_dot(&t, qv, 0), gsum = 0;

            for (size_t i = grp[k].first; i < grp[k].first + grp[k].n; i++) {
                const struct learned_row *r = &d->rows[fr[i].row];
                double z = trainer_dot(&t, &r->v, t.bias + zq);

                g[i] = fr[i].weight * (learned_sigmoid(z) - r->label);
                gsum += g[i];
            }
            t.bias_g2 += gsum * gsum;
            t.bias -= o->eta * gsum / (sqrt(t.bias_g2) + 1e-8);
            trainer_step(&t, qv, gsum);
            for (size_t i = grp[k].first; i < grp[k].first + grp[k].n; i++)
                trainer_step(&t, &d->rows[fr[i].row].v, g[i]);
        }
    }

    m = learned_model_new(&d->p, model_name, 1);
    m->fold[0].bias = t.bias;
    /* Weights too small to matter would only bloat the file. */
    for (size_t i = 0; i < dim; i++)
        m->fold[0].w[i] = fabs(t.w[i]) < 1e-7 ? 0.0f : (float)t.w[i];
    free(fr);
    free(grp);
    free(g);
    free(t.w);
    free(t.g2);
    return m;
}

/* ---- the head ---- */

/* Solve a x = b for the symmetric positive definite n x n matrix a (row
 * major; overwritten) by Cholesky. -1 if a is not positive definite. */
static int cholesky_solve(double *a, double *b, unsigned n)
{
    for (unsigned j = 0; j < n; j++) {
        double d = a[j * n + j];

        for (unsigned k = 0; k < j; k++)
            d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0))
            return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (unsigned i = j + 1; i < n; i++) {
            double v = a[i * n + j];

            for (unsigned k = 0; k < j; k++)
                v -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = v / d;
        }
    }
    for (unsigned i = 0; i < n; i++) { /* L y = b */
        for (unsigned k = 0; k < i; k++)
            b[i] -= a[i * n + k] * b[k];
        b[i] /= a[i * n + i];
    }
    for (unsigned i = n; i-- > 0;) { /* L^T x = y */
        for (unsigned k = i + 1; k < n; k++)
            b[i] -= a[k * n + i] * b[k];
        b[i] /= a[i * n + i];
    }
    return 0;
}

void learned_head_fit(const double *x, const int *y, size_t n, const unsigned char *in,
                      unsigned nin, double l2, double *bias, double *w)
{
    unsigned d = nin + 1; /* the bias is coefficient 0 */
    double *beta = xcalloc(d, sizeof(double));
    double *h = xmalloc((size_t)d * d * sizeof(double));
    double *g = xmalloc(d * sizeof(double));
    double *v = xmalloc(d * sizeof(double));
    double pos = 0;

    sl_assert(nin <= LI_COUNT);
    for (size_t i = 0; i < n; i++)
        pos += y[i] != 0;
    beta[0] = log((pos + 0.5) / ((double)n - pos + 0.5));
    /* Newton's method on the L2-penalised log loss (the bias is not
     * penalised); it converges in a few steps on a dozen inputs. */
    for (int it = 0; it < 50; it++) {
        double step = 0;

        memset(h, 0, (size_t)d * d * sizeof(double));
        memset(g, 0, d * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            const double *xi = x + i * LI_COUNT;
            double z = beta[0], p, wgt;

            v[0] = 1;
            for (unsigned j = 0; j < nin; j++) {
                v[j + 1] = xi[in[j]];
                z += beta[j + 1] * v[j + 1];
            }
            p = learned_sigmoid(z);
            wgt = p * (1 - p);
            for (unsigned a = 0; a < d; a++) {
                g[a] += (p - (y[i] != 0)) * v[a];
                for (unsigned b = 0; b <= a; b++)
                    h[a * d + b] += wgt * v[a] * v[b];
            }
        }
        for (unsigned a = 0; a < d; a++) {
            for (unsigned b = 0; b < a; b++)
                h[b * d + a] = h[a * d + b];
            if (a > 0) {
                g[a] += l2 * beta[a];
                h[a * d + a] += l2;
            }
            h[a * d + a] += 1e-9; /* a constant input must not stop the solve */
        }
        if (cholesky_solve(h, g, d) < 0)
            break;
        for (unsigned a = 0; a < d; a++) {
            beta[a] -= g[a];
            step = fmax(step, fabs(g[a]));
        }
        if (step < 1e-10)
            break;
    }
    *bias = beta[0];
    for (unsigned j = 0; j < nin; j++)
        w[j] = beta[j + 1];
    free(beta);
    free(h);
    free(g);
    free(v);
}

/* ---- evaluation ---- */

struct scored {
    double s;
    int y;
};

static int scored_cmp(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;

    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->y - y->y;
}

double learned_auc(const double *score, const int *label, size_t n)
{
    struct scored *v = xmalloc((n ? n : 1) * sizeof(*v));
    double rank_sum = 0, npos = 0, nneg;
    size_t i = 0;

    for (size_t k = 0; k < n; k++) {
        v[k].s = score[k];
        v[k].y = label[k] ? 1 : 0;
        npos += v[k].y;
    }
    nneg = (double)n - npos;
    if (npos == 0 || nneg == 0) {
        free(v);
        return 0.5;
    }
    qsort(v, n, sizeof(*v), scored_cmp);
    /* Mann-Whitney: average ranks over ties. */
    while (i < n) {
        size_t j = i;
        double pos_in_tie = 0;

        while (j < n && v[j].s == v[i].s)
            pos_in_tie += v[j++].y;
        rank_sum += pos_in_tie * ((double)(i + 1) + (double)j) / 2.0;
        i = j;
    }
    free(v);
    return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg);
}
