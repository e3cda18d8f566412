/* tune_chain.c - cascade chains: their text form, the offline simulation
 * that every number sluice-tune prints comes from, and the gateway.conf
 * routes block.
 *
 * The simulation is the reference: the search computes the same numbers
 * with bitsets, and tune fit re-simulates every frontier chain here and
 * aborts if the two ever disagree.
 */
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_MAX_TEXT 4096

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return s;
}

/* Copy [s, e) trimmed into out (outlen > 0). */
static void copy_trim(const char *s, const char *e, char *out, size_t outlen)
{
    size_t n;

    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'))
        e--;
    n = (size_t)(e - s);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static int find_model(const struct tune_data *d, const char *s, const char *e, char *err,
                      size_t errlen)
{
    char name[512];
    char msg[600];
    int m;

    copy_trim(s, e, name, sizeof(name));
    if (name[0] == '\0') {
        snprintf(err, errlen, "empty model name");
        return -1;
    }
    m = tune_model_find(d, name, msg, sizeof(msg));
    if (m < 0)
        snprintf(err, errlen, "%s", msg);
    return m;
}

/* "@0.82" at s (optional when dflt >= 0): the threshold, in [0, 1]. */
static int parse_threshold(const char *s, const char *e, double dflt, double *out, char *err,
                           size_t errlen)
{
    char tmp[64];

    copy_trim(s, e, tmp, sizeof(tmp));
    if (tmp[0] == '\0' && dflt >= 0) {
        *out = dflt;
        return 0;
    }
    if (tmp[0] != '@' || parse_double(tmp + 1, out) < 0 || *out < 0 || *out > 1) {
        snprintf(err, errlen, "expected @THRESHOLD in [0, 1], got \"%s\"", tmp);
        return -1;
    }
    return 0;
}

/* "(a, b, ...)" at p: the stage's partners (agreement) or peers (learned),
 * none twice, not the stage's own model. Sets *after past the ')'. */
static int parse_partners(const struct tune_data *d, const char *p, const char *e,
                          struct tune_stage *st, const char *what, const char **after, char *err,
                          size_t errlen)
{
    const char *close;

    p = skip_ws(p);
    if (p >= e || *p != '(') {
        snprintf(err, errlen, "expected %s(MODEL, ...)", what);
        return -1;
    }
    close = memchr(p, ')', (size_t)(e - p));
    if (close == NULL) {
        snprintf(err, errlen, "missing ')' after %s(", what);
        return -1;
    }
    p++;
    while (p < close) {
        const char *comma = memchr(p, ',', (size_t)(close - p));
        const char *te = comma ? comma : close;
        int m;

        if (st->npartners == TUNE_MAX_PARTNERS) {
            snprintf(err, errlen, "at most %d models in %s()", TUNE_MAX_PARTNERS, what);
            return -1;
        }
        m = find_model(d, p, te, err, errlen);
        if (m < 0)
            return -1;
        if (m == st->model) {
            snprintf(err, errlen, "a stage's model cannot be in its own %s()", what);
            return -1;
        }
        for (int k = 0; k < st->npartners; k++) {
            if (st->partners[k] == m) {
                snprintf(err, errlen, "%s() lists a model twice", what);
                return -1;
            }
        }
        st->partners[st->npartners++] = m;
        p = comma ? comma + 1 : close;
    }
    *after = close + 1;
    return 0;
}

/* One stage, [s, e): MODEL[:learned[(PEER,...)]@T | :agree(M,...)[@T] |
 * :rules]. The scorer is after the last ':' that starts one, so model names
 * may have colons. */
static int parse_stage(const struct tune_data *d, const char *s, const char *e,
                       struct tune_stage *st, char *err, size_t errlen)
{
    const char *colon = NULL, *sc, *after;

    memset(st, 0, sizeof(*st));
    for (const char *p = s; p < e; p++) {
        if (*p != ':')
            continue;
        sc = skip_ws(p + 1);
        if ((e - sc >= 7 && strncmp(sc, "learned", 7) == 0) ||
            (e - sc >= 5 && strncmp(sc, "agree", 5) == 0) ||
            (e - sc >= 5 && strncmp(sc, "rules", 5) == 0))
            colon = p;
    }
    st->model = find_model(d, s, colon ? colon : e, err, errlen);
    if (st->model < 0)
        return -1;
    st->kind = TS_NONE;
    if (colon == NULL)
        return 0;
    sc = skip_ws(colon + 1);
    if (strncmp(sc, "learned", 7) == 0) {
        const char *p = skip_ws(sc + 7);

        st->kind = TS_LEARNED;
        if (p < e && *p == '(') {
            if (parse_partners(d, p, e, st, "learned", &after, err, errlen) < 0)
                return -1;
            if (st->npartners == 0) {
                snprintf(err, errlen, "learned() lists no peer: write learned@T");
                return -1;
            }
            p = after;
        }
        return parse_threshold(p, e, -1, &st->threshold, err, errlen);
    }
    if (strncmp(sc, "rules", 5) == 0) {
        const char *r = skip_ws(sc + 5);

        st->kind = TS_RULES;
        st->threshold = 1.0;
        if (r != e) {
            snprintf(err, errlen, "rules takes no threshold");
            return -1;
        }
        return 0;
    }
    /* agree(a, b, ...)[@T] */
    st->kind = TS_AGREE;
    if (parse_partners(d, sc + 5, e, st, "agree", &after, err, errlen) < 0)
        return -1;
    if (st->npartners == 0) {
        snprintf(err, errlen, "agree() needs at least one other model");
        return -1;
    }
    return parse_threshold(after, e, 1.0, &st->threshold, err, errlen);
}

int tune_chain_parse(const struct tune_data *d, const char *s, struct tune_chain *c, char *err,
                     size_t errlen)
{
    const char *p = s;

    memset(c, 0, sizeof(*c));
    if (strlen(s) > CHAIN_MAX_TEXT) {
        snprintf(err, errlen, "chain longer than %d bytes", CHAIN_MAX_TEXT);
        return -1;
    }
    for (;;) {
        const char *arrow = strstr(p, "->");
        const char *e = arrow ? arrow : p + strlen(p);
        char msg[700];

        if (c->n == TUNE_MAX_STAGES) {
            snprintf(err, errlen, "more than %d stages", TUNE_MAX_STAGES);
            return -1;
        }
        if (parse_stage(d, p, e, &c->st[c->n], msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "stage %d: %s", c->n + 1, msg);
            return -1;
        }
        for (int k = 0; k < c->n; k++) {
            if (c->st[k].model == c->st[c->n].model) {
                snprintf(err, errlen, "stage %d: model %s is already stage %d", c->n + 1,
                         d->models[c->st[k].model].name, k + 1);
                return -1;
            }
        }
        c->n++;
        if (arrow == NULL)
            break;
        p = arrow + 2;
    }
    if (c->st[c->n - 1].kind != TS_NONE) {
        snprintf(err, errlen, "the last stage always accepts: give it no scorer");
        return -1;
    }
    return 0;
}

int tune_chain_format(const struct tune_data *d, const struct tune_chain *c, struct buf *out)
{
    int r = 0;

    for (int i = 0; i < c->n; i++) {
        const struct tune_stage *st = &c->st[i];

        if (i)
            r |= buf_puts(out, " -> ");
        r |= buf_puts(out, d->models[st->model].name);
        switch (st->kind) {
        case TS_NONE:
            break;
        case TS_LEARNED:
            r |= buf_puts(out, ":learned");
            if (st->npartners) {
                r |= buf_puts(out, "(");
                for (int k = 0; k < st->npartners; k++)
                    r |= buf_printf(out, "%s%s", k ? "," : "", d->models[st->partners[k]].name);
                r |= buf_puts(out, ")");
            }
            r |= buf_printf(out, "@%.4f", st->threshold);
            break;
        case TS_RULES:
            r |= buf_puts(out, ":rules");
            break;
        case TS_AGREE:
            r |= buf_puts(out, ":agree(");
            for (int k = 0; k < st->npartners; k++)
                r |= buf_printf(out, "%s%s", k ? "," : "", d->models[st->partners[k]].name);
            r |= buf_puts(out, ")");
            if (st->threshold != 1.0)
                r |= buf_printf(out, "@%.2f", st->threshold);
            break;
        }
    }
    return r;
}

int tune_chain_models(const struct tune_chain *c, int *models)
{
    int n = 0;

    for (int i = 0; i < c->n; i++) {
        int cand[1 + TUNE_MAX_PARTNERS], nc = 0;

        cand[nc++] = c->st[i].model;
        for (int k = 0; k < c->st[i].npartners; k++)
            cand[nc++] = c->st[i].partners[k];
        for (int k = 0; k < nc; k++) {
            int seen = 0;

            for (int j = 0; j < n; j++)
                seen |= models[j] == cand[k];
            if (!seen)
                models[n++] = cand[k];
        }
    }
    return n;
}

/* The agreement score: the share of the stage's models (itself included)
 * whose normalised answer equals the stage model's. A partner without an
 * answer does not agree. */
static double agree_score(const struct tune_answer *a, const struct tune_stage *st)
{
    int k = a[st->model].key, n = 1;

    for (int i = 0; i < st->npartners; i++)
        n += k >= 0 && a[st->partners[i]].key == k;
    return (double)n / (double)(1 + st->npartners);
}

double tune_stage_score(const struct tune_data *d, const struct tune_stage *st,
                        const struct tune_scores *scores, size_t q)
{
    const struct tune_answer *a = d->q[q].ans;
    double sc;

    if (a[st->model].content == NULL)
        return NAN;
    for (int k = 0; k < st->npartners; k++)
        if (a[st->partners[k]].content == NULL)
            return NAN;
    switch (st->kind) {
    case TS_LEARNED: {
        const struct tune_head *h =
            tune_scores_find(scores, st->model, st->partners, st->npartners);

        if (h == NULL)
            sl_panic("no learned scorer for stage model %s", d->models[st->model].name);
        sc = h->score[q];
        break;
    }
    case TS_AGREE:
        sc = agree_score(a, st);
        break;
    default: /* rules, none: the veto below decides */
        sc = 1.0;
    }
    if (a[st->model].veto != VETO_NONE)
        sc = 0.0;
    return sc;
}

/* Simulate the chain on every included query exactly as cascade.c runs it:
 *  - a stage calls its model and its partners at once; a model already
 *    called for this query is not called (or paid) again;
 *  - a stage with a missing answer (an upstream error) escalates;
 *  - the rules veto applies to every stage but the last: a vetoed answer
 *    scores 0;
 *  - the last stage always accepts; if it has no answer, the best-scored
 *    answer of an earlier stage is returned (ties go to the later stage),
 *    else the query fails. */
void tune_simulate(const struct tune_data *d, const struct tune_chain *c,
                   const struct tune_scores *score, const unsigned char *include,
                   struct tune_result *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t q = 0; q < d->nq; q++) {
        const struct tune_answer *a = d->q[q].ans;
        uint32_t paid = 0;
        double best = -1;
        int best_correct = 0, answered = 0;

        if (include && !include[q])
            continue;
        r->n++;
        for (int i = 0; i < c->n; i++) {
            const struct tune_stage *st = &c->st[i];
            double sc;

            if (!(paid & (1u << st->model))) {
                paid |= 1u << st->model;
                r->cost += a[st->model].content ? a[st->model].cost : 0;
            }
            for (int k = 0; k < st->npartners; k++) {
                int pm = st->partners[k];

                if (!(paid & (1u << pm))) {
                    paid |= 1u << pm;
                    r->cost += a[pm].content ? a[pm].cost : 0;
                }
            }
            if (i == c->n - 1) {
                if (a[st->model].content == NULL)
                    continue; /* upstream error: salvage below */
                r->correct += (size_t)a[st->model].correct;
                r->accepted[i]++;
                answered = 1;
                break;
            }
            sc = tune_stage_score(d, st, score, q);
            if (isnan(sc))
                continue; /* upstream error: escalate */
            if (sc >= (st->kind == TS_NONE ? 0.0 : st->threshold)) {
                r->correct += (size_t)a[st->model].correct;
                r->accepted[i]++;
                answered = 1;
                break;
            }
            if (sc >= best) {
                best = sc;
                best_correct = a[st->model].correct;
            }
        }
        if (!answered && best >= 0)
            r->correct += (size_t)best_correct; /* salvaged */
    }
}

static int routes_threshold(struct buf *out, double t, int decimals)
{
    if (t == 1.0)
        return buf_puts(out, " threshold = 1.0;");
    return buf_printf(out, " threshold = %.*f;", decimals, t);
}

int tune_route_format(const struct tune_data *d, const struct tune_chain *c, const char *route_name,
                      const char *weights_dir, struct buf *out)
{
    int r = 0;

    r |= buf_printf(out, "    {\n        name = \"%s\";\n        cascade = (\n", route_name);
    for (int i = 0; i < c->n; i++) {
        const struct tune_stage *st = &c->st[i];
        const struct tune_model *m = &d->models[st->model];
        enum tune_scorer kind = i == c->n - 1 ? TS_NONE : st->kind;

        r |= buf_puts(out, "            {");
        switch (kind) {
        case TS_NONE:
            r |= buf_printf(out, " model = \"%s\";", m->route_name);
            break;
        case TS_LEARNED: {
            char *w = tune_weights_name(d, st->model, st->partners, st->npartners);

            if (st->npartners == 0) {
                r |= buf_printf(out, " model = \"%s\";", m->route_name);
            } else {
                /* The scorer's peers are the stage's other models. */
                r |= buf_printf(out, " models = ( \"%s\"", m->route_name);
                for (int k = 0; k < st->npartners; k++)
                    r |= buf_printf(out, ", \"%s\"", d->models[st->partners[k]].route_name);
                r |= buf_puts(out, " );");
            }
            r |= buf_printf(out, " scorer = \"learned\"; weights = \"%s/%s\";", weights_dir, w);
            r |= routes_threshold(out, st->threshold, 4);
            free(w);
            break;
        }
        case TS_RULES:
            r |= buf_printf(out, " model = \"%s\"; scorer = \"rules\";", m->route_name);
            r |= routes_threshold(out, 1.0, 2);
            break;
        case TS_AGREE:
            r |= buf_printf(out, " models = ( \"%s\"", m->route_name);
            for (int k = 0; k < st->npartners; k++)
                r |= buf_printf(out, ", \"%s\"", d->models[st->partners[k]].route_name);
            r |= buf_puts(out, " ); scorer = \"agreement\";");
            r |= routes_threshold(out, st->threshold, 2);
            break;
        }
        r |= buf_printf(out, " }%s\n", i == c->n - 1 ? "" : ",");
    }
    r |= buf_puts(out, "        );\n    }");
    return r;
}
