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
#include "learned.h"
#include "learned_model.h"
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
/* A message on stderr, "sluice-tune: " (and "warning: ") and a newline.
 * stdout is flushed first and a progress bar's line is ended, so a message
 * never lands in the middle of a line of stdout's table when both go to the
 * same terminal or file. */
void tune_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tune_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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
    struct tune_answer *ans; /* [nmodels] */
};

struct tune_data {
    struct tune_model *models;
    size_t nmodels;
    struct tune_query *q;
    size_t nq;
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

/* The fold of each query: learned_fold_of(seed, k, prompt), the fold the
 * deployed scorer picks for the query, so that its score on a training
 * query is that query's out-of-fold score. Prompts that end alike (the
 * last LEARNED_FOLD_TAIL bytes) share a fold. */
void tune_folds(const struct tune_data *d, int k, uint64_t seed, int *fold_of_query);

/* ---- learned scorers ---- */

#define TUNE_MAX_PARTNERS 4 /* agreement partners, or a learned scorer's peers */

struct tune_learn_opts {
    struct learned_params params;
    struct learned_train_opts train;
    int folds;
    uint64_t seed;
    /* Weight of the other models' answers when training a model's scorer
     * (0: its own answers only). Other models' grades of the same queries
     * teach which queries are hard and what a wrong answer looks like. */
    double pool;
    double head_l2; /* the head's L2 penalty */
    int max_peers;  /* fit trains scorers with up to this many peers, 0..2 */
};

/* One learned scorer: `model`'s answers, scored with the answers of its
 * peers (a stage `model:learned(peers)`; none for a plain learned stage).
 * Its k fold models are those of the deployed weights file: fold f scores
 * the queries whose learned_fold_of() is f. */
struct tune_head {
    int model;
    int peers[TUNE_MAX_PARTNERS];
    int npeers;
    double *score; /* [nq]: NAN where model or a peer has no answer */
    double auc;    /* of score against the grades, NAN when not known */
    /* As trained here (empty when loaded from a weights file): */
    unsigned nin;
    unsigned char in[LI_COUNT];   /* the head's inputs */
    double *hb, *hw;              /* [folds], [folds * nin]: the head per fold */
    struct learned_model *loaded; /* as loaded from a weights file, or NULL */
};

/* Every learned scorer of a run, and what deploying one needs. */
struct tune_scores {
    struct tune_head *h;
    size_t n;
    int folds;
    uint64_t fold_seed;
    struct learned_params params;
    struct learned_model **text; /* [nmodels * folds]: text models, NULL where untrained */
    size_t ntext;
};

/* A head to train: model and peers. */
struct tune_head_spec {
    int model;
    int peers[TUNE_MAX_PARTNERS];
    int npeers;
};

/* Train the listed scorers with k-fold cross-validation on the queries with
 * include[q] (NULL: all), folds by tune_folds(). Every head's score[q] is
 * what its deployed weights file gives query q: the out-of-fold score for
 * an included query, the score of new data for the others. Checks a sample
 * of them against learned_score(), the gateway's code, and aborts on any
 * difference. Progress on stderr. Fills s (free with tune_scores_free). */
void tune_learn(const struct tune_data *d, const struct tune_learn_opts *o,
                const unsigned char *include, const struct tune_head_spec *spec, size_t nspec,
                struct tune_scores *s);
/* The specs fit trains: every model alone, and with each set of up to
 * max_peers other models as peers. Returns the count; *spec is the
 * caller's. */
size_t tune_head_specs_all(const struct tune_data *d, int max_peers, struct tune_head_spec **spec);
/* A perfect scorer for every model: 1 for a right answer, 0 for a wrong
 * one. Not deployable: it measures what the search could do with a scorer
 * that knew the grades (the bound the targets are judged against). */
void tune_scores_perfect(const struct tune_data *d, struct tune_scores *s);
/* The head for (model, peers), or NULL. */
const struct tune_head *tune_scores_find(const struct tune_scores *s, int model, const int *peers,
                                         int npeers);
/* The deployable weights file of head h (trained here): caller frees.
 * `source` names the training data in its metadata. */
struct learned_model *tune_head_model(const struct tune_data *d, const struct tune_scores *s,
                                      const struct tune_head *h, const struct tune_learn_opts *o);
void tune_scores_free(struct tune_scores *s);
/* The weights file name of a learned stage: <model>[+<peer>...].w. */
char *tune_weights_name(const struct tune_data *d, int model, const int *peers, int npeers);

/* ---- chains ---- */

enum tune_scorer {
    TS_NONE,    /* final stage: accept any answer */
    TS_LEARNED, /* score from the learned model >= threshold */
    TS_AGREE,   /* share of the stage's models agreeing with the first >= threshold */
    TS_RULES,   /* no rules veto */
};

#define TUNE_MAX_STAGES 6

struct tune_stage {
    int model;
    enum tune_scorer kind;
    double threshold;
    int partners[TUNE_MAX_PARTNERS]; /* agreement partners, or the learned scorer's peers */
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

/* Parse "m1:learned@0.82 -> m2:learned(m1)@0.7 -> m3:agree(m1) -> m4" (also
 * "agree(a,b)@0.66", "rules"). 0, or -1 with a message. */
int tune_chain_parse(const struct tune_data *d, const char *s, struct tune_chain *c, char *err,
                     size_t errlen);
/* Append the chain's text to out. 0, or -1 when out went over its cap. */
int tune_chain_format(const struct tune_data *d, const struct tune_chain *c,
                      struct buf *out) BUF_MUST_CHECK;
/* Models the chain may call (stage models and agreement partners). */
int tune_chain_models(const struct tune_chain *c, int *models);

/* The score a non-final stage gives query q, as the simulation (and the
 * gateway) computes it: NAN when the stage's model or a partner has no
 * answer (the stage escalates unscored); else the learned score, the
 * agreement share or 1.0 for rules, and 0 when the rules veto the answer.
 * sc holds the learned scorers (NULL when st is not learned; a learned
 * stage whose scorer is not in sc aborts). */
double tune_stage_score(const struct tune_data *d, const struct tune_stage *st,
                        const struct tune_scores *sc, size_t q);

/* Run the chain over the queries q with include[q] != 0 (include NULL: all),
 * exactly as the gateway would: stage i's answer is accepted when its score
 * >= threshold, the last stage always accepts, a missing answer escalates,
 * and each distinct model is paid once per query. score is the learned score
 * table (as from tune_learn) or NULL when the chain has no learned stage. */
void tune_simulate(const struct tune_data *d, const struct tune_chain *c,
                   const struct tune_scores *sc, const unsigned char *include,
                   struct tune_result *r);

/* The learned scorers of the chain's learned stages from the weights files
 * DIR/<tune_weights_name>, scoring every query exactly as the gateway does:
 * the query is the prompt, finish_reason "stop", the peers' recorded
 * answers. 0, or -1 with the reason on stderr. Free s with
 * tune_scores_free. */
int tune_scores_load(const struct tune_data *d, const struct tune_chain *c, const char *dir,
                     struct tune_scores *s);

/* Append one route of a gateway.conf routes list, "    { name = ...;
 * cascade = ( ... ); }", without a trailing comma or newline. weights_dir is
 * the directory the weights paths are relative to, as written ("scorers").
 * 0, or -1 when out went over its cap. */
int tune_route_format(const struct tune_data *d, const struct tune_chain *c, const char *route_name,
                      const char *weights_dir, struct buf *out) BUF_MUST_CHECK;

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
void tune_search(const struct tune_data *d, const struct tune_scores *sc,
                 const unsigned char *include, const struct tune_search_opts *o, int progress,
                 struct tune_search_result *res);
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

/* ---- choosing (tune_select.c) ---- */

/* How to choose the chain to deploy: a budget (USD or a share of the
 * reference's $/query), a target accuracy (absolute or points from the
 * reference), or the knee of the frontier. */
struct tune_choice {
    double budget;       /* USD per query, or < 0 */
    double budget_ratio; /* of the reference's $/query, or < 0 */
    double target;       /* accuracy, or < 0 */
    double target_pts;   /* points relative to the reference, or NAN */
    double penalty;      /* accuracy charged per stage beyond the first */
    int penalty_given;   /* else chosen by cross-validation */
    int knee;            /* choose the knee */
    int have;
    char name[128]; /* the route's name in routes.conf */
};

void tune_choice_init(struct tune_choice *c);
/* "20%" or "0.001" (USD); "-0.5pt" or "0.94". 0, or -1 when malformed. */
int tune_choice_budget(struct tune_choice *c, const char *s);
int tune_choice_target(struct tune_choice *c, const char *s);
/* Append how the choice chooses. 0, or -1 when out went over its cap. */
int tune_choice_describe(const struct tune_choice *ch, const struct tune_data *d, int ref,
                         struct buf *out) BUF_MUST_CHECK;

/* Where the knee is, and the ends of the frontier it was found between
 * (accuracy minus the stage penalty, $/query). */
struct tune_knee {
    double cost, acc;
    double lo_cost, lo_acc, hi_cost, hi_acc;
};

/* The chain the choice deploys from a search over the included queries,
 * judging chains with the given penalty per extra stage, and keeping to
 * margin * budget. A target out of reach gets the most accurate chain, a
 * budget below every chain the cheapest. kn (may be NULL) describes a knee
 * choice. */
const struct tune_point *tune_choose(const struct tune_data *d,
                                     const struct tune_search_result *res,
                                     const struct tune_choice *ch, double penalty, double margin,
                                     int ref, const unsigned char *include, struct tune_knee *kn);
/* The reference model's accuracy and $/query over the included queries. */
void tune_ref_stats(const struct tune_data *d, int ref, const unsigned char *include, double *acc,
                    double *cost);

#define TUNE_MAX_CHOICES 16

struct tune_outcome {
    size_t n, correct;
    double cost;
};

struct tune_cv {
    int folds;
    struct tune_search_result *res; /* [folds]: searched on the other folds */
    unsigned char **train, **test;  /* [folds][nq] */
};

/* One choice's result in a fit. */
struct tune_pick {
    const struct tune_point *p; /* in the fit's res */
    double penalty;
    double margin; /* the chain keeps to margin * budget */
    struct tune_knee knee;
    struct tune_outcome cv; /* the choice cross-validated */
    struct buf cvlog;       /* the rule chosen and the per-fold picks */
};

struct tune_fit_opts {
    const struct tune_learn_opts *learn;
    const struct tune_search_opts *search;
    const struct tune_head_spec *spec; /* the scorers to train */
    size_t nspec;
    int use_learned, do_cv, ref;
    int perfect; /* score with tune_scores_perfect instead of training */
    const struct tune_choice *choice;
    size_t nchoice;
};

/* A whole fit on the included queries: the scorers, the search, and each
 * choice with its cross-validated outcome. */
struct tune_fit {
    const unsigned char *include;
    struct tune_scores sc;
    struct tune_search_result res;
    struct tune_cv cv;
    struct tune_pick pick[TUNE_MAX_CHOICES];
    size_t nchoice;
};

void tune_fit_run(const struct tune_data *d, const struct tune_fit_opts *o,
                  const unsigned char *include, struct tune_fit *fr);
void tune_fit_free(struct tune_fit *fr);

/* ---- outputs ---- */

struct tune_plot_model {
    const char *label;
    double cost, acc;
};

/* A chosen point of the plot, ringed and labelled. */
struct tune_plot_mark {
    double cost, acc;
    const char *label;
};

/* A self-contained SVG of accuracy against $/query (log x): the frontier as
 * a step line, each single model as a labelled dot, each chosen point
 * ringed with its label. */
void tune_svg(FILE *out, const struct tune_data *d, const struct tune_frontier *f,
              const struct tune_plot_model *models, size_t nmodels,
              const struct tune_plot_mark *marks, size_t nmarks, const char *title);

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
    TUNE_OPT_HEAD_L2,
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
    {"head-l2", required_argument, NULL, TUNE_OPT_HEAD_L2},               \
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
