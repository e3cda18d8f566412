/* learned.h - the `learned` quality scorer as the gateway sees it: logistic
 * regression over hashed word and character n-grams of the query and the
 * answer, and over what the answer looks like and how it compares with the
 * answers of peer models to the same request (learned_model.h has the
 * model). Weights are trained offline by sluice-tune
 * (src/tune/learned_train.c) and loaded from a text file; scoring allocates
 * nothing and takes microseconds.
 *
 * The gateway and sluice-tune share this code, so an offline score and the
 * score the gateway computes for the same (query, answer) are identical.
 * The query is the request's message contents joined by "\n" (for one user
 * message: the prompt itself).
 */
#ifndef SLUICE_LEARNED_H
#define SLUICE_LEARNED_H

#include <stddef.h>

struct learned_model;

/* Load a weights file written by sluice-tune. Returns a model owned by the
 * caller (free with learned_free), or NULL with a message in err. */
struct learned_model *learned_load(const char *path, char *err, size_t errlen);
/* The same on a file held in memory (need not be NUL-terminated); the
 * message is "line N: ...". The entry point of tests/fuzz: it must reject,
 * never crash on, any input. */
struct learned_model *learned_parse(const char *text, size_t len, char *err, size_t errlen);
void learned_free(struct learned_model *m);

/* P(answer is correct) in [0, 1]. finish_reason may be NULL. peers are the
 * answers of the model's peers to the same request, in the order the
 * weights file lists them (learned_peers() of them; a missing or NULL one
 * is an empty answer). Borrows all. */
double learned_score(const struct learned_model *m, const char *query, const char *answer,
                     const char *finish_reason, const char *const *peers, size_t npeers);
/* How many peer answers the model reads (0 for a scorer of one answer). */
size_t learned_peers(const struct learned_model *m);

/* The model (the data's name for it) the weights were trained for, and its
 * peers' names, comma-separated ("" when none). */
const char *learned_model_name(const struct learned_model *m);
const char *learned_peer_names(const struct learned_model *m);
/* Training metadata from the file ("key=value"), or NULL. */
const char *learned_meta(const struct learned_model *m, const char *key);

#endif
