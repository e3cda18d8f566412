/* answer.h - pure functions over one model answer, shared by the gateway's
 * scorers (scorer.c) and sluice-tune's offline simulation, so both decide
 * identically.
 */
#ifndef SLUICE_ANSWER_H
#define SLUICE_ANSWER_H

#include <stddef.h>

/* Reasons the `rules` scorer vetoes an answer. */
enum answer_veto {
    VETO_NONE = 0,
    VETO_EMPTY,     /* no content (after trimming whitespace) */
    VETO_REFUSAL,   /* "I'm sorry, but I can't ...", "As an AI ..." */
    VETO_TRUNCATED, /* finish_reason == "length" */
    VETO_BAD_JSON,  /* a JSON response_format was asked and content is not JSON */
};

/* Apply the rules. want_json: the request asked for a JSON response_format.
 * finish_reason may be NULL. */
enum answer_veto answer_rules(const char *content, const char *finish_reason, int want_json);
const char *answer_veto_name(enum answer_veto v);

/* The normalised form two answers are compared on by the `agreement` scorer:
 * a choice letter (A-E) or a number when the answer has one, else the text
 * with whitespace collapsed and case folded. Writes at most outlen-1 bytes
 * plus a NUL into out; returns out. */
char *answer_agree_key(const char *content, char *out, size_t outlen);

#endif
