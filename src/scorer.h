/* scorer.h - how good is an answer? The scorers of a cascade stage.
 *
 * The synchronous scorers (rules, logprob, agreement, learned) are pure
 * functions and take microseconds. The judge and http scorers need a call;
 * this module builds the request and parses the verdict, and cascade.c makes
 * the call on the loop. Scores are in [0, 1]; a stage accepts when
 * score >= threshold.
 */
#ifndef SLUICE_SCORER_H
#define SLUICE_SCORER_H

#include "answer.h"
#include "config.h"
#include "provider.h"

#include <jansson.h>
#include <stddef.h>

const char *scorer_name(enum scorer_kind k);

/* The rules every answer must pass: not empty, not a refusal, not cut off
 * by max_tokens, valid JSON when JSON was asked. */
enum answer_veto scorer_rules(const struct reply *r, int want_json);

/* exp(mean token logprob) of choice 0: the mean token probability in the
 * geometric sense. 0 when the upstream sent no logprobs. */
double scorer_logprob(const struct reply *r);

/* Share of the n answers whose normalised form (answer_agree_key) equals
 * that of answers[0], the answer the stage would return; answers[0] counts
 * itself. An empty normalised form agrees with nothing. */
double scorer_agreement(const char *const *answers, size_t n);

/* The learned scorer's P(correct) of r, given the answers of the scorer's
 * peers to the same request (the stage's other models, in order). */
double scorer_learned(const struct learned_model *w, const char *query, const struct reply *r,
                      const char *const *peers, size_t npeers);

/* Judge: the chat request body (owned by the caller) asking the judge model
 * to rate `answer` to `query` under `rubric` (NULL = the built-in rubric). */
json_t *scorer_judge_body(const char *rubric, const char *query, const char *answer);
/* Read the judge's verdict: the first number in its reply, on a 0..10
 * scale, normalised to 0..1. Returns 0, or -1 if there is no number. */
int scorer_judge_parse(const char *content, double *score);

/* http: the body POSTed to an external scorer: {query, answer, model}. */
char *scorer_http_body(const char *query, const char *answer, const char *model);
/* Its reply, {"score": x} with x in 0..1. Returns 0, or -1 if malformed. */
int scorer_http_parse(const char *body, size_t len, double *score);

#endif
