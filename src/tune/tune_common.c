/* tune_common.c - the options every sluice-tune subcommand that reads
 * labelled data shares: data files, prices, the model subset and the
 * learned scorer's training parameters.
 */
#include "tune.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char tune_common_help[] =
    "data and prices:\n"
    "  --data FILE         labelled JSONL in the routerbench format (repeatable)\n"
    "  --prices FILE       prices.json: {\"model\": {\"input_per_mtok\": x, "
    "\"output_per_mtok\": y}}\n"
    "  --config FILE       or take the prices from a gateway.conf's models\n"
    "  --models A,B,...    only these models (exact names or unique substrings)\n"
    "  --reference MODEL   the model results are compared with (default: the most\n"
    "                      accurate single model)\n"
    "learned scorer training:\n"
    "  --folds N           cross-validation folds (default 5)\n"
    "  --seed N            seed of the folds and the training order (default 1)\n"
    "  --bits N            2^N hashed weights (default 18)\n"
    "  --l2 X              L2 penalty (default 1e-2)\n"
    "  --epochs N          training passes (default 8)\n"
    "  --eta X             AdaGrad learning rate (default 0.1)\n"
    "  --query-tail N      featurise the last N bytes of the query (default 1024)\n"
    "  --answer-head N     featurise the first N bytes of the answer (default 1024)\n"
    "  --features LIST     of query_words,query_chars,answer_words,answer_chars,\n"
    "                      choice,meta (default all)\n"
    "  --pool W            weight of the other models' graded answers when training\n"
    "                      a model's text model, 0..1 (default 0)\n"
    "  --head-l2 X         L2 penalty of the scorer's head, the logistic regression\n"
    "                      over the text model and the answer's and peers' inputs\n"
    "                      (default 1)\n";

void tune_inputs_init(struct tune_inputs *in)
{
    memset(in, 0, sizeof(*in));
    learned_params_default(&in->learn.params);
    learned_train_opts_default(&in->learn.train);
    in->learn.folds = 5;
    in->learn.seed = 1;
    in->learn.pool = 0;
    in->learn.head_l2 = 1.0;
}

int tune_inputs_opt(struct tune_inputs *in, int code, const char *arg)
{
    long v;
    double x;

    switch (code) {
    case TUNE_OPT_DATA:
        if (in->ndata == TUNE_MAX_DATA_FILES) {
            fprintf(stderr, "sluice-tune: at most %d --data files\n", TUNE_MAX_DATA_FILES);
            return -1;
        }
        in->data[in->ndata++] = (char *)arg;
        return 1;
    case TUNE_OPT_PRICES:
        in->prices = arg;
        return 1;
    case TUNE_OPT_CONFIG:
        in->config = arg;
        return 1;
    case TUNE_OPT_MODELS:
        in->models = arg;
        return 1;
    case TUNE_OPT_REFERENCE:
        in->reference = arg;
        return 1;
    case TUNE_OPT_FOLDS:
        if (tune_opt_long("--folds", arg, 2, 50, &v) < 0)
            return -1;
        in->learn.folds = (int)v;
        return 1;
    case TUNE_OPT_SEED:
        return tune_opt_u64("--seed", arg, &in->learn.seed) < 0 ? -1 : 1;
    case TUNE_OPT_BITS:
        if (tune_opt_long("--bits", arg, LEARNED_MIN_BITS, LEARNED_MAX_BITS, &v) < 0)
            return -1;
        in->learn.params.bits = (unsigned)v;
        return 1;
    case TUNE_OPT_L2:
        if (tune_opt_double("--l2", arg, &x) < 0)
            return -1;
        if (x < 0 || x > 10) {
            fprintf(stderr, "sluice-tune: --l2 must be in [0, 10]\n");
            return -1;
        }
        in->learn.train.l2 = x;
        return 1;
    case TUNE_OPT_POOL:
        if (tune_opt_double("--pool", arg, &x) < 0)
            return -1;
        if (x < 0 || x > 1) {
            fprintf(stderr, "sluice-tune: --pool must be in [0, 1]\n");
            return -1;
        }
        in->learn.pool = x;
        return 1;
    case TUNE_OPT_HEAD_L2:
        if (tune_opt_double("--head-l2", arg, &x) < 0)
            return -1;
        if (x < 0 || x > 1e6) {
            tune_msg("--head-l2 must be in [0, 1e6]");
            return -1;
        }
        in->learn.head_l2 = x;
        return 1;
    case TUNE_OPT_EPOCHS:
        if (tune_opt_long("--epochs", arg, 1, 1000, &v) < 0)
            return -1;
        in->learn.train.epochs = (unsigned)v;
        return 1;
    case TUNE_OPT_ETA:
        if (tune_opt_double("--eta", arg, &x) < 0)
            return -1;
        if (x <= 0 || x > 100) {
            fprintf(stderr, "sluice-tune: --eta must be in (0, 100]\n");
            return -1;
        }
        in->learn.train.eta = x;
        return 1;
    case TUNE_OPT_QUERY_TAIL:
        if (tune_opt_long("--query-tail", arg, 0, 1 << 20, &v) < 0)
            return -1;
        in->learn.params.query_tail = (unsigned)v;
        return 1;
    case TUNE_OPT_ANSWER_HEAD:
        if (tune_opt_long("--answer-head", arg, 0, 1 << 20, &v) < 0)
            return -1;
        in->learn.params.answer_head = (unsigned)v;
        return 1;
    case TUNE_OPT_FEATURES:
        if (learned_features_parse(arg, &in->learn.params.features) < 0) {
            fprintf(stderr, "sluice-tune: --features: expected a comma-separated list of "
                            "query_words, query_chars, answer_words, answer_chars, choice, "
                            "meta\n");
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

int tune_inputs_load(const struct tune_inputs *in, struct tune_data *d)
{
    struct tune_prices pr;
    char err[1024];
    int r;

    if (in->ndata == 0) {
        fprintf(stderr, "sluice-tune: --data FILE is required\n");
        return -1;
    }
    if ((in->prices == NULL) == (in->config == NULL)) {
        fprintf(stderr, "sluice-tune: give exactly one of --prices or --config\n");
        return -1;
    }
    r = in->prices ? tune_prices_load_json(&pr, in->prices, err, sizeof(err))
                   : tune_prices_load_conf(&pr, in->config, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "sluice-tune: %s\n", err);
        return -1;
    }
    r = tune_data_load(d, in->data, in->ndata, &pr, in->models, err, sizeof(err));
    tune_prices_free(&pr);
    if (r < 0) {
        fprintf(stderr, "sluice-tune: %s\n", err);
        return -1;
    }
    return 0;
}

int tune_reference(const struct tune_inputs *in, const struct tune_data *d)
{
    int best = -1;
    double best_acc = -1;

    if (in->reference) {
        char err[512];
        int m = tune_model_find(d, in->reference, err, sizeof(err));

        if (m < 0)
            fprintf(stderr, "sluice-tune: --reference: %s\n", err);
        return m;
    }
    /* Models are cheapest first, so ">=" picks the dearer of equals. */
    for (size_t m = 0; m < d->nmodels; m++) {
        double acc, cost;

        tune_model_stats(d, (int)m, &acc, &cost);
        if (acc >= best_acc) {
            best_acc = acc;
            best = (int)m;
        }
    }
    return best;
}
