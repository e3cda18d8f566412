/* learned.h - the `learned` quality scorer: logistic regression over hashed
 * word and character n-grams of the query and the answer, plus answer length
 * and finish_reason. Weights are trained offline by sluice-tune and loaded
 * from a text file; scoring is allocation-light and takes microseconds.
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
void learned_free(struct learned_model *m);

/* P(answer is correct) in [0, 1]. finish_reason may be NULL. Borrows all. */
double learned_score(const struct learned_model *m, const char *query, const char *answer,
                     const char *finish_reason);

#endif
