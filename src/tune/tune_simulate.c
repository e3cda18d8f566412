/* tune_simulate.c - `sluice-tune simulate`: the accuracy and $/query of one
 * given chain on labelled data, offline, to compare with what the gateway
 * does end to end (`sluice-tune eval`).
 *
 * Learned stages are scored either with trained weights files, exactly as the
 * gateway scores them (--weights-dir), or with out-of-fold scores from
 * training right here (the default), which is what `fit` reports.
 */
#include "tune.h"
#include "caps.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_CHAIN = TUNE_OPT_FIRST_OWN,
    OPT_WEIGHTS_DIR,
};

static const struct option sim_options[] = {
    TUNE_COMMON_OPTIONS,
    {"chain", required_argument, NULL, OPT_CHAIN},
    {"weights-dir", required_argument, NULL, OPT_WEIGHTS_DIR},
    {NULL, 0, NULL, 0},
};

static void sim_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-tune simulate --data FILE.jsonl [--data ...] (--prices prices.json |\n"
            "           --config gateway.conf) --chain CHAIN [--weights-dir DIR]\n"
            "\n"
            "Run one cascade over the recorded answers exactly as the gateway would and\n"
            "print its accuracy and $/query.\n"
            "\n"
            "  --chain CHAIN       stages separated by \"->\", e.g.\n"
            "                        \"mixtral-8x7b:learned@0.82 -> Yi-34B:agree(mixtral-8x7b)\n"
            "                         -> gpt-4-1106-preview\"\n"
            "                      scorers: learned@T, agree(M,...)[@T] (default T 1.0: all\n"
            "                      agree), rules; the last stage has none. Models by exact\n"
            "                      name or a unique substring.\n"
            "  --weights-dir DIR   score learned stages with the weights files in DIR\n"
            "                      (<model>[+<peer>...].w), as the gateway does. Without it,\n"
            "                      scorers are trained here on the data's own grades (out of\n"
            "                      fold, --folds, --seed): optimistic when the chain was\n"
            "                      chosen on the same data, and it says so\n"
            "\n%s",
            tune_common_help);
}

int tune_scores_load(const struct tune_data *d, const struct tune_chain *c, const char *dir,
                     struct tune_scores *s)
{
    memset(s, 0, sizeof(*s));
    s->h = xcalloc(TUNE_MAX_STAGES, sizeof(*s->h));
    for (int i = 0; i < c->n; i++) {
        const struct tune_stage *st = &c->st[i];
        struct tune_head *h;
        struct learned_model *lm;
        char err[1024];
        char *name, *path;

        if (st->kind != TS_LEARNED ||
            tune_scores_find(s, st->model, st->partners, st->npartners) != NULL)
            continue;
        name = tune_weights_name(d, st->model, st->partners, st->npartners);
        path = xasprintf("%s/%s", dir, name);
        free(name);
        lm = learned_load(path, err, sizeof(err));
        if (lm == NULL) {
            fprintf(stderr, "sluice-tune: %s\n", err);
            free(path);
            return -1;
        }
        if (learned_peers(lm) != (size_t)st->npartners) {
            fprintf(stderr, "sluice-tune: %s reads %zu peer answers, but stage %d has %d peers\n",
                    path, learned_peers(lm), i + 1, st->npartners);
            learned_free(lm);
            free(path);
            return -1;
        }
        if (strcmp(learned_model_name(lm), d->models[st->model].name) != 0)
            tune_warn("%s was trained for \"%s\"", path, learned_model_name(lm));
        free(path);
        h = &s->h[s->n++];
        h->model = st->model;
        h->npeers = st->npartners;
        memcpy(h->peers, st->partners, sizeof(h->peers));
        h->loaded = lm;
        h->auc = NAN;
        h->score = xmalloc((d->nq ? d->nq : 1) * sizeof(double));
        for (size_t q = 0; q < d->nq; q++) {
            const char *peers[TUNE_MAX_PARTNERS];
            int answered = d->q[q].ans[st->model].content != NULL;

            for (int k = 0; k < st->npartners; k++) {
                peers[k] = d->q[q].ans[st->partners[k]].content;
                answered &= peers[k] != NULL;
            }
            h->score[q] = answered
                              ? learned_score(lm, d->q[q].prompt, d->q[q].ans[st->model].content,
                                              NULL, peers, (size_t)st->npartners)
                              : NAN;
        }
    }
    return 0;
}

static int sim_main(int argc, char **argv)
{
    struct tune_inputs in;
    const char *chain_text = NULL, *wdir = NULL;
    struct tune_data d;
    struct tune_chain chain;
    struct tune_result r;
    struct tune_scores scores = {0};
    int c, ref, rc = TUNE_EXIT_FAIL, need_learned = 0;
    char err[1024];

    tune_inputs_init(&in);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", sim_options, NULL)) != -1) {
        int k = tune_inputs_opt(&in, c, optarg);

        if (k < 0)
            return TUNE_EXIT_USAGE;
        if (k > 0)
            continue;
        switch (c) {
        case TUNE_OPT_HELP:
            sim_usage(stdout);
            return TUNE_EXIT_OK;
        case OPT_CHAIN:
            chain_text = optarg;
            break;
        case OPT_WEIGHTS_DIR:
            wdir = optarg;
            break;
        default:
            sim_usage(stderr);
            return TUNE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-tune: simulate: unexpected argument \"%s\"\n", argv[optind]);
        return TUNE_EXIT_USAGE;
    }
    if (chain_text == NULL || in.ndata == 0) {
        sim_usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    if (tune_inputs_load(&in, &d) < 0)
        return TUNE_EXIT_FAIL;
    if (tune_chain_parse(&d, chain_text, &chain, err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice-tune: --chain: %s\n", err);
        tune_data_free(&d);
        return TUNE_EXIT_USAGE;
    }
    ref = tune_reference(&in, &d);
    if (ref < 0)
        goto done;
    for (int s = 0; s < chain.n - 1; s++)
        need_learned |= chain.st[s].kind == TS_LEARNED;
    if (need_learned && wdir) {
        if (tune_scores_load(&d, &chain, wdir, &scores) < 0)
            goto done;
    } else if (need_learned) {
        struct tune_head_spec spec[TUNE_MAX_STAGES];
        size_t nspec = 0;

        for (int s = 0; s < chain.n - 1; s++) {
            if (chain.st[s].kind != TS_LEARNED)
                continue;
            spec[nspec].model = chain.st[s].model;
            spec[nspec].npeers = chain.st[s].npartners;
            memcpy(spec[nspec].peers, chain.st[s].partners, sizeof(spec[nspec].peers));
            nspec++;
        }
        tune_warn("no --weights-dir: the learned stages are scored by scorers trained here, "
                  "on this file's own grades (out of fold). If the chain's thresholds were "
                  "chosen on this file, the result is OPTIMISTIC. For an honest number, "
                  "simulate with --weights-dir on data that fit never saw.");
        tune_learn(&d, &in.learn, NULL, spec, nspec, &scores);
    }
    tune_simulate(&d, &chain, &scores, NULL, &r);
    {
        struct tune_chain rchain = {.n = 1};
        struct tune_result rr;
        struct buf b;
        double acc = r.n ? (double)r.correct / (double)r.n : 0;
        double cost = r.n ? r.cost / (double)r.n : 0;
        double racc, rcost;

        rchain.st[0].model = ref;
        tune_simulate(&d, &rchain, NULL, NULL, &rr);
        racc = rr.n ? (double)rr.correct / (double)rr.n : 0;
        rcost = rr.n ? rr.cost / (double)rr.n : 0;
        buf_init(&b, TUNE_CHAIN_MAX);
        if (tune_chain_format(&d, &chain, &b) < 0) {
            tune_msg("the chain's text is longer than %zu bytes", b.max);
            buf_free(&b);
            goto done;
        }
        printf("chain: %s\n", b.data);
        printf("learned scores: %s\n",
               !need_learned ? "not used"
               : wdir        ? "the weights files, as the gateway scores"
                             : "trained here on this file's own grades, out of fold "
                               "(OPTIMISTIC if the thresholds were chosen on this file)");
        printf("queries: %zu\n", r.n);
        printf("accuracy: %.4f (%+.2f points vs %s at %.4f)\n", acc, (acc - racc) * 100,
               d.models[ref].name, racc);
        printf("usd_per_query: %.6g (%.1f%% of %s at %.6g)\n", cost,
               rcost > 0 ? 100 * cost / rcost : 0, d.models[ref].name, rcost);
        for (int s = 0; s < chain.n; s++)
            printf("stage %d (%s): answered %zu (%.1f%%)\n", s + 1,
                   d.models[chain.st[s].model].name, r.accepted[s],
                   r.n ? 100.0 * (double)r.accepted[s] / (double)r.n : 0);
        {
            size_t answered = 0;

            for (int s = 0; s < chain.n; s++)
                answered += r.accepted[s];
            /* No stage accepted: the best-scored earlier answer is returned
             * if there is one, else the request fails. */
            printf("salvaged or failed: %zu\n", r.n - answered);
        }
        buf_free(&b);
    }
    rc = TUNE_EXIT_OK;

done:
    tune_scores_free(&scores);
    tune_data_free(&d);
    return rc;
}

TUNE_COMMAND(simulate, "simulate", "accuracy and $/query of one given chain, offline", sim_main)
