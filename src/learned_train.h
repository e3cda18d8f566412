/* learned_train.h - the parts of the `learned` scorer that the gateway does
 * not need: the weights file parser on a memory buffer (for the fuzz
 * harness), writing weights, featurised training data and the trainer.
 * sluice-tune and the unit tests use it; learned.h stays the gateway's view.
 *
 * Model: p(correct) = sigmoid(bias + sum over feature groups g of
 * scale_g * sum over the group's hashed features f of sign_f * w[index_f]).
 * A group is one kind of n-gram of one text (say, the query's character
 * 3-5-grams), scaled by 1/sqrt(count) so that long and short texts weigh
 * alike; a numeric feature (log answer length) is a group of one whose scale
 * is its value. Feature hashes are FNV-1a 32 over a namespace byte, the
 * n-gram order and the n-gram's bytes, then the murmur3 finaliser; the low
 * `bits` bits are the index and the top bit the sign (the hashing trick with
 * signed buckets, so collisions cancel on average instead of adding up).
 */
#ifndef SLUICE_LEARNED_TRAIN_H
#define SLUICE_LEARNED_TRAIN_H

#include "learned.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>

#define LEARNED_MAGIC "sluice-learned"
#define LEARNED_VERSION 1
#define LEARNED_MIN_BITS 8
#define LEARNED_MAX_BITS 24
#define LEARNED_MAX_FILE_BYTES (512u << 20)

/* Feature sets, a bit each; "features=" in the weights file names them. */
enum learned_feature {
    LF_QUERY_WORDS = 1 << 0,  /* word n-grams of the query's tail */
    LF_QUERY_CHARS = 1 << 1,  /* character n-grams of the query's tail */
    LF_ANSWER_WORDS = 1 << 2, /* word n-grams of the answer's head */
    LF_ANSWER_CHARS = 1 << 3, /* character n-grams of the answer's head */
    LF_CHOICE = 1 << 4,       /* words of the query's option line the answer picks */
    LF_META = 1 << 5,         /* lengths, finish_reason, rules veto, answer kind */
};
#define LF_ALL 0x3f

struct learned_params {
    unsigned bits;               /* 2^bits hashed weights */
    unsigned word_min, word_max; /* word n-gram orders, 1..3 */
    unsigned char_min, char_max; /* character n-gram orders, 1..8 */
    unsigned query_tail;         /* featurise the last this many bytes of the query */
    unsigned answer_head;        /* and the first this many bytes of the answer */
    unsigned features;           /* LF_* bits */
};

/* Parse "query_words,answer_chars,..." into LF_* bits. 0 or -1. */
int learned_features_parse(const char *s, unsigned *out);

/* bits 18, words 1-2, chars 3-5, query tail 1024, answer head 1024, all. */
void learned_params_default(struct learned_params *p);
/* 0 if the parameters are in range, else -1 and a message in err. */
int learned_params_check(const struct learned_params *p, char *err, size_t errlen);

/* Parse a weights file held in memory (need not be NUL-terminated). Returns
 * a model owned by the caller, or NULL and a message ("line N: ...") in err.
 * This is the entry point of tests/fuzz: it must reject, never crash on, any
 * input. */
struct learned_model *learned_parse(const char *text, size_t len, char *err, size_t errlen);

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
const char *learned_meta(const struct learned_model *m, const char *key);
const char *learned_model_name(const struct learned_model *m);
const struct learned_params *learned_model_params(const struct learned_model *m);
double learned_model_bias(const struct learned_model *m);
/* Number of non-zero weights. */
size_t learned_model_nonzero(const struct learned_model *m);

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

/* The score of a featurised row: exactly learned_score() of its texts, with
 * the same floating-point operations in the same order. */
double learned_score_row(const struct learned_model *m, const struct learned_data *d, size_t row);

/* Area under the ROC curve of scores against 0/1 labels, ties counted half;
 * 0.5 when one class is absent. */
double learned_auc(const double *score, const int *label, size_t n);

#endif
