/* learned_train.h - what sluice-tune adds to the `learned` scorer: the
 * featurised training data, the trainer, writing weights files, metadata and
 * the AUC. It lives in src/tune/ and only sluice-tune (and the unit tests)
 * link it; the gateway loads and scores (learned.h). The model itself is
 * described in learned_model.h.
 */
#ifndef SLUICE_LEARNED_TRAIN_H
#define SLUICE_LEARNED_TRAIN_H

#include "../learned_model.h" /* relative: the unit tests include this without -Isrc */
#include "../util.h"

#include <stddef.h>
#include <stdint.h>

/* Append the weights file text of m to out. Returns 0, or -1 when out's cap
 * is too small. Byte-for-byte deterministic. */
int learned_format(const struct learned_model *m, struct buf *out);
/* Write the weights file atomically (a temporary file renamed over path).
 * Returns 0, or -1 with a message in err. */
int learned_save(const struct learned_model *m, const char *path, char *err, size_t errlen);

/* Training metadata kept in and written to the file ("key=value"). Keys are
 * [a-z0-9_]+ and not one of the model's own keys; values are one line.
 * Setting a key again replaces its value. Borrows key and value. */
void learned_set_meta(struct learned_model *m, const char *key, const char *value);
const struct learned_params *learned_model_params(const struct learned_model *m);
double learned_model_bias(const struct learned_model *m);
/* Fold 0's text bias; the number of non-zero text weights, all folds. */
size_t learned_model_nonzero(const struct learned_model *m);

/* A deployable model of nfolds folds (learned_model.h): the scorer of
 * model `name` reading the answers of npeers peers (names comma-separated),
 * with a head over the inputs head_in[0..nhead) (nhead 0: none). Its folds
 * are empty until learned_set_fold. Caller frees. Borrows everything. */
struct learned_model *learned_assemble(const char *name, const struct learned_params *p,
                                       unsigned nfolds, uint64_t fold_seed, const char *peers,
                                       unsigned npeers, const unsigned char *head_in,
                                       unsigned nhead);
/* Fold f of m: the text model `text` (a one-fold model from learned_fit,
 * copied) and the head's bias and weights (nhead of them). */
void learned_set_fold(struct learned_model *m, unsigned f, const struct learned_model *text,
                      double head_bias, const double *head);

/* The head's weights: L2-penalised logistic regression (Newton's method) of
 * the 0/1 labels y on rows of inputs x (n rows of LI_COUNT, as
 * learned_inputs() fills them), using inputs in[0..nin). Writes the bias and
 * nin weights. Deterministic. */
void learned_head_fit(const double *x, const int *y, size_t n, const unsigned char *in,
                      unsigned nin, double l2, double *bias, double *w);

/* Featurised examples. Query features are computed once and shared by every
 * answer to that query (sluice-tune scores 11 models' answers to each). */
struct learned_data;

/* Caps the total number of stored feature entries; past it, adds fail. */
#define LEARNED_DATA_MAX_ENTRIES ((size_t)1 << 31)

struct learned_data *learned_data_new(const struct learned_params *p, size_t max_entries);
void learned_data_free(struct learned_data *d);
/* Featurise a query; returns its index, or -1 if the entry cap is reached.
 * Borrows query. */
long learned_data_add_query(struct learned_data *d, const char *query);
/* Featurise an answer to query qi (the same query text must be passed) with
 * its 0/1 label; returns the row index, or -1 if the entry cap is reached.
 * Borrows all strings. */
long learned_data_add_answer(struct learned_data *d, long qi, const char *query, const char *answer,
                             const char *finish_reason, int label);
size_t learned_data_rows(const struct learned_data *d);
int learned_data_label(const struct learned_data *d, size_t row);

struct learned_train_opts {
    double l2;       /* L2 penalty per example on the weights (not the bias) */
    double eta;      /* AdaGrad base learning rate */
    unsigned epochs; /* passes over the data, shuffled each time */
    uint64_t seed;   /* the shuffle; same seed, same model, byte for byte */
};

/* l2 1e-2, eta 0.1, 8 epochs, seed 1. */
void learned_train_opts_default(struct learned_train_opts *o);

/* L2-regularised logistic regression by AdaGrad SGD on the given rows of d,
 * each with its weight in the loss (weight NULL: all 1). Answers to the same
 * query are one minibatch. Deterministic for a given seed. Returns a new
 * model (caller frees) named model_name (borrowed). */
struct learned_model *learned_fit(const struct learned_data *d, const size_t *rows,
                                  const double *weight, size_t nrows,
                                  const struct learned_train_opts *o, const char *model_name);

/* Fold f's text logit of a featurised row: exactly what learned_score()
 * computes as z_text for its texts, the same floating-point operations in
 * the same order. */
double learned_text_z_row(const struct learned_model *m, unsigned f, const struct learned_data *d,
                          size_t row);
/* The score of a row under a one-fold model without a head (learned_fit's):
 * exactly learned_score() of its texts. */
double learned_score_row(const struct learned_model *m, const struct learned_data *d, size_t row);

/* Area under the ROC curve of scores against 0/1 labels, ties counted half;
 * 0.5 when one class is absent. */
double learned_auc(const double *score, const int *label, size_t n);

#endif
