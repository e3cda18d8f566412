/* learned_model.h - the inside of the `learned` scorer, for src/learned.c
 * (loading and scoring, in the gateway) and src/tune/learned_train.c
 * (training and writing weights, in sluice-tune only). Nothing else includes
 * it: the gateway's view is learned.h.
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
#ifndef SLUICE_LEARNED_MODEL_H
#define SLUICE_LEARNED_MODEL_H

#include "learned.h"

#include <stddef.h>
#include <stdint.h>

#define LEARNED_MAGIC "sluice-learned"
#define LEARNED_VERSION 1
#define LEARNED_MIN_BITS 8
#define LEARNED_MAX_BITS 24
#define LEARNED_MAX_FILE_BYTES (512u << 20)
#define LEARNED_MAX_META 64
#define LEARNED_MAX_KEY 64
#define LEARNED_MAX_VALUE 1024

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

struct learned_meta {
    char *key;
    char *value; /* one line: control characters are replaced by spaces */
};

struct learned_model {
    char *name;
    struct learned_params p;
    double bias;
    float *w; /* 1 << p.bits */
    struct learned_meta *meta;
    size_t nmeta;
};

/* bits 18, words 1-2, chars 3-5, query tail 1024, answer head 1024, all. */
void learned_params_default(struct learned_params *p);
/* 0 if the parameters are in range, else -1 and a message in err. */
int learned_params_check(const struct learned_params *p, char *err, size_t errlen);
/* Parse "query_words,answer_chars,..." into LF_* bits. 0 or -1. */
int learned_features_parse(const char *s, unsigned *out);
/* The name of one LF_* bit, as the weights file writes it. */
const char *learned_feature_name(unsigned bit);

/* A new model with all weights 0, named name (copied). Caller frees. */
struct learned_model *learned_model_new(const struct learned_params *p, const char *name);
/* A metadata key is [a-z0-9_]+, at most LEARNED_MAX_KEY bytes, and not one
 * of the model's own keys. */
int learned_meta_key_ok(const char *key, size_t n);

/* The feature walk, for training: the same walk learned_score() makes, with
 * every feature handed to a sink instead of summed. entry is the weight
 * index with the sign in bit 31; a group ends with its scale. Empty groups
 * are not reported (scoring skips them too). */
struct learned_sink {
    void (*emit_cb)(struct learned_sink *s, uint32_t entry);
    void (*group_end_cb)(struct learned_sink *s, float scale);
};

void learned_walk_query(const struct learned_params *p, const char *query, struct learned_sink *s);
void learned_walk_answer(const struct learned_params *p, const char *query, const char *answer,
                         const char *finish_reason, struct learned_sink *s);

/* The logistic function, clamped as learned_score() clamps it. */
double learned_sigmoid(double z);

#endif
