/* learned_model.h - the inside of the `learned` scorer, for src/learned.c
 * (loading and scoring, in the gateway) and src/tune/learned_train.c
 * (training and writing weights, in sluice-tune only). Nothing else includes
 * it: the gateway's view is learned.h. It holds the model's types and the
 * functions over them, and includes nothing of learned.h, which is built on
 * it: a caller of learned_load or learned_score includes learned.h too.
 *
 * A model is k fold models, as cross-validation trained them; a query is
 * scored by fold learned_fold_of(query) alone, the one that did not see it
 * when the query was in the training data. Deployed scores on new queries
 * are then distributed like the out-of-fold scores the thresholds were
 * chosen on, and on the training data they are those scores exactly.
 *
 * A fold has two parts. The text model: z_text = bias + sum over feature
 * groups g of scale_g * sum over the group's hashed features f of
 * sign_f * w[index_f].
 * A group is one kind of n-gram of one text (say, the query's character
 * 3-5-grams), scaled by 1/sqrt(count) so that long and short texts weigh
 * alike; a numeric feature (log answer length) is a group of one whose scale
 * is its value. Feature hashes are FNV-1a 32 over a namespace byte, the
 * n-gram order and the n-gram's bytes, then the murmur3 finaliser; the low
 * `bits` bits are the index and the top bit the sign (the hashing trick with
 * signed buckets, so collisions cancel on average instead of adding up).
 * The head (version 2; absent in version 1 files, where the score is
 * sigmoid(z_text)): p(correct) = sigmoid(head_bias + sum_j head_j * x_j),
 * a logistic regression over z_text and dense inputs x (enum
 * learned_input): what the answer looks like and, for a scorer with peers,
 * how it compares with the peer models' answers to the same request.
 */
#ifndef SLUICE_LEARNED_MODEL_H
#define SLUICE_LEARNED_MODEL_H

#include "caps.h"

#include <stddef.h>
#include <stdint.h>

#define LEARNED_MAGIC "sluice-learned"
#define LEARNED_VERSION 2 /* written; version 1 files are still read */
#define LEARNED_MAX_FOLDS 20
#define LEARNED_MAX_PEERS 4
#define LEARNED_KEY_MAX 64 /* an answer's agreement key, NUL included */
#define LEARNED_MIN_BITS 8
#define LEARNED_MAX_BITS 24
#define LEARNED_MAX_FILE_BYTES LEARNED_FILE_MAX
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

/* The head's inputs. Each is in [0, 1] but LI_TEXT (a logit). */
enum learned_input {
    LI_TEXT,        /* the fold's text model, z_text */
    LI_KIND_CHOICE, /* the agreement key is a choice letter */
    LI_KIND_NUMBER, /* ... a number */
    LI_KIND_TEXT,   /* ... text (an empty key is none of the three) */
    LI_CLEAN,       /* the answer is its key and nothing else: "B", "B.", "42" */
    LI_LOGLEN,      /* log(1 + bytes) / 8, capped at 1 */
    LI_HEDGE,       /* hedging phrases ("I think", "probably"), 3 or more = 1 */
    LI_CODE,        /* has code: a ``` fence, or lines starting def/class/import */
    LI_CODE_OK,     /* has code, its fences are closed and its brackets balance */
    LI_AGREE_SHARE, /* share of the answers, itself and its peers, with its key */
    LI_DISTINCT,    /* (distinct non-empty keys among them - 1) / peers */
    LI_SIM_MEAN,    /* mean word-set similarity (Jaccard) with the peers */
    LI_PEER,        /* per peer i: LI_PEER + 2i agrees (same key), + 2i + 1 similarity */
    LI_COUNT = LI_PEER + 2 * LEARNED_MAX_PEERS,
};

/* The name of an input as the weights file's "head=" line writes it
 * ("text", ..., "agree1", "sim1", ...), or NULL past LI_COUNT. */
const char *learned_input_name(unsigned i);

struct learned_fold {
    double bias; /* the text model's */
    float *w;    /* 1 << p.bits text weights */
    double head_bias;
    double *head; /* [nhead] */
};

struct learned_model {
    char *name;
    struct learned_params p;
    char *peers; /* the peer models' names, comma-separated; "" when none */
    unsigned npeers;
    unsigned nfolds;
    uint64_t fold_seed;
    unsigned nhead;                  /* 0: no head, the score is sigmoid(z_text) */
    unsigned char head_in[LI_COUNT]; /* the input head[j] multiplies */
    struct learned_fold *fold;       /* [nfolds] */
    struct learned_meta *meta;
    size_t nmeta;
};

/* What the head needs of one answer, computed once per answer. */
struct learned_info {
    char key[LEARNED_KEY_MAX];  /* answer_agree_key() */
    uint64_t words[4];          /* a 256-bit set of its lower-cased words (first 1024 bytes) */
    double own[LI_AGREE_SHARE]; /* LI_KIND_CHOICE .. LI_CODE_OK; [LI_TEXT] unused */
};

/* Fill info for answer (borrowed; NULL is ""). */
void learned_answer_info(const char *answer, struct learned_info *info);
/* The head's inputs x[LI_COUNT] for an answer with npeers peers (the model's
 * count; a peer that did not answer is the info of ""), and z_text. */
void learned_inputs(const struct learned_info *self, const struct learned_info *peers,
                    unsigned npeers, double z_text, double *x);
/* The head's logit for fold f on inputs x: head_bias + sum_j head_j * x. */
double learned_head_z(const struct learned_model *m, unsigned f, const double *x);
/* The fold that scores query: FNV-1a 64 over the seed's 8 bytes (little
 * endian) and the query's last LEARNED_FOLD_TAIL bytes, murmur3's 64-bit
 * finaliser, mod nfolds. */
#define LEARNED_FOLD_TAIL 1024
unsigned learned_fold_of(uint64_t seed, unsigned nfolds, const char *query);

/* bits 18, words 1-2, chars 3-5, query tail 1024, answer head 1024, all. */
void learned_params_default(struct learned_params *p);
/* 0 if the parameters are in range, else -1 and a message in err. */
int learned_params_check(const struct learned_params *p, char *err, size_t errlen);
/* Parse "query_words,answer_chars,..." into LF_* bits. 0 or -1. */
int learned_features_parse(const char *s, unsigned *out);
/* The name of one LF_* bit, as the weights file writes it. */
const char *learned_feature_name(unsigned bit);

/* A new model with nfolds folds, all weights 0, no head and no peers, named
 * name (copied). Caller frees. */
struct learned_model *learned_model_new(const struct learned_params *p, const char *name,
                                        unsigned nfolds);
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
