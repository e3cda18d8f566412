/* tune.h - what the sluice-tune sources (src/tune*.c) share: subcommand
 * registration, the labelled data, chains and their offline simulation, the
 * frontier search, and the outputs. None of this is in the gateway library.
 *
 * A subcommand lives in its own file and registers itself with
 * TUNE_COMMAND(), so adding src/tune_eval.c adds `sluice-tune eval` without
 * touching any other file.
 */
#ifndef SLUICE_TUNE_H
#define SLUICE_TUNE_H

#include "answer.h"
#include "learned_train.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- subcommands ---- */

struct tune_cmd {
    const char *name;
    const char *summary;                   /* one line for `sluice-tune --help` */
    int (*main_fn)(int argc, char **argv); /* argv[0] is the subcommand name */
};

void tune_register(const struct tune_cmd *cmd);

#define TUNE_COMMAND(ident, cmd_name, cmd_summary, fn)                                             \
    static const struct tune_cmd tune_cmd_##ident = {cmd_name, cmd_summary, fn};                   \
    static void tune_register_##ident(void) __attribute__((constructor));                          \
    static void tune_register_##ident(void)                                                        \
    {                                                                                              \
        tune_register(&tune_cmd_##ident);                                                          \
    }

/* Exit codes. */
#define TUNE_EXIT_OK 0
#define TUNE_EXIT_FAIL 1  /* the run failed (bad data, I/O) */
#define TUNE_EXIT_USAGE 2 /* bad command line */

/* A progress bar on stderr, drawn only when stderr is a terminal. */
struct tune_progress {
    const char *what;
    uint64_t total, done;
    uint64_t last_us;
    int tty;
};

void tune_progress_start(struct tune_progress *p, const char *what, uint64_t total);
void tune_progress_step(struct tune_progress *p, uint64_t n);
void tune_progress_end(struct tune_progress *p);

/* ---- data ---- */

/* One model of the data, with its price. */
struct tune_model {
    char *name;       /* as the data names it */
    char *route_name; /* as gateway.conf names it (differs when matched by id) */
    double in_per_mtok, out_per_mtok;
    char *file_name; /* file-safe name for scorers/<file_name>.w */
};

/* One recorded answer; content == NULL means none was recorded, which the
 * simulation treats as an upstream error. */
struct tune_answer {
    char *content;
    int correct;
    long prompt_tokens, completion_tokens;
    double cost; /* USD: prices x tokens, as the gateway accounts it */
    int key;     /* agreement key id, equal ids agree; -1 never agrees */
    enum answer_veto veto;
};

struct tune_query {
    char *id;
    char *prompt;
    int group;               /* queries sharing an id share a fold */
    struct tune_answer *ans; /* [nmodels] */
};

struct tune_data {
    struct tune_model *models;
    size_t nmodels;
    struct tune_query *q;
    size_t nq;
    size_t ngroups;
    char *source; /* the data files' base names, comma-separated */
};

/* A price table: model name (or id) -> USD per 1M tokens. */
struct tune_price {
    char *name;
    char *id; /* gateway.conf's id, or NULL */
    double in_per_mtok, out_per_mtok;
};

struct tune_prices {
    struct tune_price *p;
    size_t n;
};

/* Load prices.json ({"model": {"input_per_mtok": x, "output_per_mtok": y}})
 * or the models of a gateway.conf. 0, or -1 with a message in err. */
int tune_prices_load_json(struct tune_prices *pr, const char *path, char *err, size_t errlen);
int tune_prices_load_conf(struct tune_prices *pr, const char *path, char *err, size_t errlen);
void tune_prices_free(struct tune_prices *pr);

/* Load routerbench-style JSONL files. Models without a price are skipped
 * (with a warning on stderr); `only` (may be NULL) keeps just the listed
 * models, matched as in tune_model_find. Models are ordered by mean cost.
 * 0, or -1 with a message in err. */
int tune_data_load(struct tune_data *d, char *const *files, size_t nfiles,
                   const struct tune_prices *pr, const char *only, char *err, size_t errlen);
void tune_data_free(struct tune_data *d);

/* A model by exact name, or else the one model whose name contains s
 * (case-insensitive): "mixtral-8x7b" finds "mistralai/mixtral-8x7b-chat".
 * -1 when none or ambiguous (err says which). */
int tune_model_find(const struct tune_data *d, const char *s, char *err, size_t errlen);

/* Per model: accuracy and mean cost over the queries it answered, as a
 * single-model route would see them over all queries (missing = wrong). */
void tune_model_stats(const struct tune_data *d, int m, double *acc, double *cost);

/* Fold of each group: a seeded permutation dealt round-robin. */
void tune_folds(const struct tune_data *d, int k, uint64_t seed, int *fold_of_query);

/* ---- learned scorers ---- */

struct tune_learn_opts {
    struct learned_params params;
    struct learned_train_opts train;
    int folds;
    uint64_t seed;
    /* Weight of the other models' answers when training a model's scorer
     * (0: its own answers only). Other models' grades of the same queries
     * teach which queries are hard and what a wrong answer looks like. */
    double pool;
};

/* Out-of-fold learned scores: score[q * nmodels + m] comes from the model
 * trained on the other folds (NAN where m has no answer, or where want is
 * not NULL and want[m] is 0: such models are not trained). When `final` is not
 * NULL, also trains one model per model on all data (final[m], owned by the
 * caller) with metadata, and sets cv_auc[m]. Progress on stderr. */
void tune_learn(const struct tune_data *d, const struct tune_learn_opts *o, const int *fold,
                const unsigned char *want, double *score, struct learned_model **final,
                double *cv_auc);

/* ---- chains ---- */

enum tune_scorer {
    TS_NONE,    /* final stage: accept any answer */
    TS_LEARNED, /* score from the learned model >= threshold */
    TS_AGREE,   /* share of the stage's models agreeing with the first >= threshold */
    TS_RULES,   /* no rules veto */
};

#define TUNE_MAX_STAGES 6
#define TUNE_MAX_PARTNERS 4

struct tune_stage {
    int model;
    enum tune_scorer kind;
    double threshold;
    int partners[TUNE_MAX_PARTNERS];
    int npartners;
};

struct tune_chain {
    struct tune_stage st[TUNE_MAX_STAGES];
    int n;
};

struct tune_result {
    size_t n;                         /* queries */
    size_t correct;                   /* queries answered correctly */
    double cost;                      /* total USD */
    size_t accepted[TUNE_MAX_STAGES]; /* queries answered by each stage */
};

/* Parse "m1:learned@0.82 -> m2:agree(m1) -> m3" (also "agree(a,b)@0.66",
 * "rules"). 0, or -1 with a message. */
int tune_chain_parse(const struct tune_data *d, const char *s, struct tune_chain *c, char *err,
                     size_t errlen);
/* Append the chain's text to out. */
void tune_chain_format(const struct tune_data *d, const struct tune_chain *c, struct buf *out);
/* Models the chain may call (stage models and agreement partners). */
int tune_chain_models(const struct tune_chain *c, int *models);

/* The score a non-final stage gives query q, as the simulation (and the
 * gateway) computes it: NAN when the stage's model or a partner has no
 * answer (the stage escalates unscored); else the learned score, the
 * agreement share or 1.0 for rules, and 0 when the rules veto the answer.
 * score is the learned score table, or NULL when st is not learned. */
double tune_stage_score(const struct tune_data *d, const struct tune_stage *st, const double *score,
                        size_t q);

/* Run the chain over the queries q with include[q] != 0 (include NULL: all),
 * exactly as the gateway would: stage i's answer is accepted when its score
 * >= threshold, the last stage always accepts, a missing answer escalates,
 * and each distinct model is paid once per query. score is the learned score
 * table (as from tune_learn) or NULL when the chain has no learned stage. */
void tune_simulate(const struct tune_data *d, const struct tune_chain *c, const double *score,
                   const unsigned char *include, struct tune_result *r);

/* The learned score table (as tune_simulate takes it) for the chain's
 * learned stages, from the weights files DIR/<file_name>.w, exactly as the
 * gateway scores: the query is the prompt, finish_reason "stop". Other
 * entries are NAN. 0, or -1 with the reason on stderr. score has
 * nq * nmodels entries; borrows everything. */
int tune_scores_load(const struct tune_data *d, const struct tune_chain *c, const char *dir,
                     double *score);

/* Write the gateway.conf routes block for the chain. weights_dir is the
 * directory the weights paths are relative to, as written ("scorers"). */
void tune_routes_format(const struct tune_data *d, const struct tune_chain *c,
                        const char *route_name, const char *weights_dir, struct buf *out);

/* ---- search ---- */

struct tune_point {
    struct tune_chain chain;
    size_t correct;
    double cost; /* total USD over the searched queries */
};

struct tune_frontier {
    struct tune_point *pt; /* cost ascending, correct strictly ascending */
    size_t n, cap;
    size_t nq; /* queries searched */
};

struct tune_search_opts {
    int max_stages;  /* 1..3 */
    int nthresholds; /* learned thresholds per model (score quantiles) */
    int use_learned, use_agree, use_rules;
    int max_partners; /* agreement partners per stage, 1..2 */
};

void tune_search_opts_default(struct tune_search_opts *o);

#define TUNE_SEARCH_STAGES 3

/* The frontier over all chains, and per chain length: a simpler chain that
 * a longer one beats by a query or two stays visible for tune_pick. */
struct tune_search_result {
    struct tune_frontier all;
    struct tune_frontier by_stages[TUNE_SEARCH_STAGES]; /* [k]: chains of k+1 stages */
};

/* Search all chains over the queries with include[q] != 0 (NULL: all).
 * Deterministic. Progress on stderr when `progress`. */
void tune_search(const struct tune_data *d, const double *score, const unsigned char *include,
                 const struct tune_search_opts *o, int progress, struct tune_search_result *res);
void tune_search_result_free(struct tune_search_result *res);
void tune_frontier_free(struct tune_frontier *f);

/* The frontier point to deploy: the most accurate within budget (USD per
 * query; < 0: none), or the cheapest reaching target accuracy (< 0: none).
 * NULL when nothing qualifies. */
const struct tune_point *tune_frontier_pick(const struct tune_frontier *f, double budget,
                                            double target);

/* The same over all chain lengths, but judging a chain of k stages by its
 * accuracy minus penalty * (k - 1): the best of millions of chains fits the
 * data it was picked on, and the longer the chain, the more so. */
const struct tune_point *tune_pick(const struct tune_search_result *res, double budget,
                                   double target, double penalty);

/* ---- outputs ---- */

struct tune_plot_model {
    const char *label;
    double cost, acc;
};

/* A self-contained SVG of accuracy against $/query (log x): the frontier as
 * a step line, each single model as a labelled dot, the chosen point ringed
 * (chosen may be NULL). */
void tune_svg(FILE *out, const struct tune_data *d, const struct tune_frontier *f,
              const struct tune_plot_model *models, size_t nmodels, const struct tune_point *chosen,
              const char *title);

/* ---- options shared by the subcommands ---- */

enum tune_opt_code {
    TUNE_OPT_DATA = 256,
    TUNE_OPT_PRICES,
    TUNE_OPT_CONFIG,
    TUNE_OPT_MODELS,
    TUNE_OPT_FOLDS,
    TUNE_OPT_SEED,
    TUNE_OPT_BITS,
    TUNE_OPT_L2,
    TUNE_OPT_EPOCHS,
    TUNE_OPT_ETA,
    TUNE_OPT_QUERY_TAIL,
    TUNE_OPT_ANSWER_HEAD,
    TUNE_OPT_FEATURES,
    TUNE_OPT_REFERENCE,
    TUNE_OPT_POOL,
    TUNE_OPT_HELP,
    TUNE_OPT_FIRST_OWN = 320, /* a subcommand's own options start here */
};

/* getopt_long entries for the shared options. */
/* clang-format off */
#define TUNE_COMMON_OPTIONS                                               \
    {"data", required_argument, NULL, TUNE_OPT_DATA},                     \
    {"prices", required_argument, NULL, TUNE_OPT_PRICES},                 \
    {"config", required_argument, NULL, TUNE_OPT_CONFIG},                 \
    {"models", required_argument, NULL, TUNE_OPT_MODELS},                 \
    {"folds", required_argument, NULL, TUNE_OPT_FOLDS},                   \
    {"seed", required_argument, NULL, TUNE_OPT_SEED},                     \
    {"bits", required_argument, NULL, TUNE_OPT_BITS},                     \
    {"l2", required_argument, NULL, TUNE_OPT_L2},                         \
    {"epochs", required_argument, NULL, TUNE_OPT_EPOCHS},                 \
    {"eta", required_argument, NULL, TUNE_OPT_ETA},                       \
    {"query-tail", required_argument, NULL, TUNE_OPT_QUERY_TAIL},         \
    {"answer-head", required_argument, NULL, TUNE_OPT_ANSWER_HEAD},       \
    {"features", required_argument, NULL, TUNE_OPT_FEATURES},             \
    {"reference", required_argument, NULL, TUNE_OPT_REFERENCE},           \
    {"pool", required_argument, NULL, TUNE_OPT_POOL},                     \
    {"help", no_argument, NULL, TUNE_OPT_HELP}
/* clang-format on */

/* The help text of the shared options. */
extern const char tune_common_help[];

#define TUNE_MAX_DATA_FILES 64

struct tune_inputs {
    char *data[TUNE_MAX_DATA_FILES];
    size_t ndata;
    const char *prices, *config, *models, *reference;
    struct tune_learn_opts learn;
};

void tune_inputs_init(struct tune_inputs *in);
/* Handle a shared option: 1 if it was one, 0 if not, -1 on a bad value
 * (reported on stderr). */
int tune_inputs_opt(struct tune_inputs *in, int code, const char *arg);
/* Load prices and data; errors go to stderr. 0 or -1. */
int tune_inputs_load(const struct tune_inputs *in, struct tune_data *d);
/* The reference model (--reference, else the most accurate one), or -1. */
int tune_reference(const struct tune_inputs *in, const struct tune_data *d);

/* ---- option helpers ---- */

/* Strict number parsing for command-line values; print a usage error. */
int tune_opt_long(const char *opt, const char *v, long min, long max, long *out);
int tune_opt_double(const char *opt, const char *v, double *out);
int tune_opt_u64(const char *opt, const char *v, uint64_t *out);

#endif
