/* tune_train.c - `sluice-tune train`: train one learned scorer (a model's
 * answers, with or without peers) and write its weights file, for a chain
 * written by hand. `fit` writes the scorers of the chains it chooses; this
 * is the same training, for one scorer.
 */
#include "tune.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_MODEL = TUNE_OPT_FIRST_OWN,
    OPT_PEERS,
    OPT_OUT,
};

static const struct option train_options[] = {
    TUNE_COMMON_OPTIONS,
    {"model", required_argument, NULL, OPT_MODEL},
    {"peers", required_argument, NULL, OPT_PEERS},
    {"out", required_argument, NULL, OPT_OUT},
    {NULL, 0, NULL, 0},
};

static void train_usage(FILE *out)
{
    fprintf(out,
            "usage: sluice-tune train --data FILE.jsonl [--data ...] (--prices prices.json |\n"
            "           --config gateway.conf) --model M [--peers P1,P2] --out FILE.w\n"
            "\n"
            "Train the learned scorer of model M's answers (reading the answers of the\n"
            "peer models too, when given) with k-fold cross-validation, print its\n"
            "cross-validated AUC and write its weights file: a gateway stage\n"
            "`model = \"M\"; scorer = \"learned\"; weights = \"FILE.w\";`, or with peers\n"
            "`models = ( \"M\", \"P1\", \"P2\" ); scorer = \"learned\"; ...`.\n"
            "\n"
            "  --model M           the stage's model (exact name or a unique substring)\n"
            "  --peers P1,P2       the models whose answers the scorer reads (at most %d)\n"
            "  --out FILE.w        the weights file to write\n"
            "\n%s",
            TUNE_MAX_PARTNERS, tune_common_help);
}

/* Models by name or unique substring, comma-separated, into spec's peers. */
static int parse_peers(const struct tune_data *d, const char *list, struct tune_head_spec *spec)
{
    char *copy = xstrdup(list), *t = copy;
    int rc = 0;

    while (t && rc == 0) {
        char *comma = strchr(t, ',');
        char err[600];
        int m;

        if (comma)
            *comma = '\0';
        m = tune_model_find(d, t, err, sizeof(err));
        if (m < 0) {
            tune_msg("--peers: %s", err);
            rc = -1;
        } else if (m == spec->model) {
            tune_msg("--peers: %s is the scored model itself", d->models[m].name);
            rc = -1;
        } else if (spec->npeers == TUNE_MAX_PARTNERS) {
            tune_msg("--peers: at most %d", TUNE_MAX_PARTNERS);
            rc = -1;
        } else {
            for (int i = 0; i < spec->npeers; i++)
                if (spec->peers[i] == m) {
                    tune_msg("--peers: %s is listed twice", d->models[m].name);
                    rc = -1;
                }
            spec->peers[spec->npeers++] = m;
        }
        t = comma ? comma + 1 : NULL;
    }
    free(copy);
    return rc;
}

static int train_main(int argc, char **argv)
{
    struct tune_inputs in;
    const char *model = NULL, *peers = NULL, *out = NULL;
    struct tune_head_spec spec = {0};
    struct tune_scores sc = {0};
    struct learned_model *lm;
    struct tune_data d;
    char err[1024];
    int c, rc = TUNE_EXIT_FAIL;

    tune_inputs_init(&in);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", train_options, NULL)) != -1) {
        int k = tune_inputs_opt(&in, c, optarg);

        if (k < 0)
            return TUNE_EXIT_USAGE;
        if (k > 0)
            continue;
        switch (c) {
        case TUNE_OPT_HELP:
            train_usage(stdout);
            return TUNE_EXIT_OK;
        case OPT_MODEL:
            model = optarg;
            break;
        case OPT_PEERS:
            peers = optarg;
            break;
        case OPT_OUT:
            out = optarg;
            break;
        default:
            train_usage(stderr);
            return TUNE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        tune_msg("train: unexpected argument \"%s\"", argv[optind]);
        return TUNE_EXIT_USAGE;
    }
    if (model == NULL || out == NULL || in.ndata == 0) {
        train_usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    if (tune_inputs_load(&in, &d) < 0)
        return TUNE_EXIT_FAIL;
    spec.model = tune_model_find(&d, model, err, sizeof(err));
    if (spec.model < 0) {
        tune_msg("--model: %s", err);
        rc = TUNE_EXIT_USAGE;
        goto done;
    }
    if (peers && parse_peers(&d, peers, &spec) < 0) {
        rc = TUNE_EXIT_USAGE;
        goto done;
    }
    tune_learn(&d, &in.learn, NULL, &spec, 1, &sc);
    lm = tune_head_model(&d, &sc, &sc.h[0], &in.learn);
    if (learned_save(lm, out, err, sizeof(err)) < 0) {
        tune_msg("%s", err);
        learned_free(lm);
        goto done;
    }
    learned_free(lm);
    printf("%s: the learned scorer of %s", out, d.models[spec.model].name);
    for (int i = 0; i < spec.npeers; i++)
        printf("%s%s", i ? ", " : " with peers ", d.models[spec.peers[i]].name);
    printf("; %d folds; cross-validated AUC %.4f\n", in.learn.folds, sc.h[0].auc);
    rc = TUNE_EXIT_OK;

done:
    tune_scores_free(&sc);
    tune_data_free(&d);
    return rc;
}

TUNE_COMMAND(train, "train", "train one learned scorer and write its weights file", train_main)
