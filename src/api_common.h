/* api_common.h - what the client-API translators (api_responses.c,
 * api_messages.c) share: reading members of a jansson tree that came from
 * outside, and the 400 they answer bad input with.
 */
#ifndef SLUICE_API_COMMON_H
#define SLUICE_API_COMMON_H

#include "request.h"
#include "util.h"

#include <jansson.h>
#include <stddef.h>

/* Anthropic's error type for an HTTP status, as its table of errors has
 * them: any other 4xx is an invalid_request_error, anything else an
 * api_error. Used by the front's Messages errors and sluice-mock. */
const char *api_anthropic_error_type(int status);

/* o[key] when it is a string, else NULL (o may be anything, even NULL). */
const char *api_str(const json_t *o, const char *key);
/* a is not NULL and equals b. */
int api_streq(const char *a, const char *b);
/* Fill err with a 400 invalid_request_error (param and code are static
 * strings or NULL) and return -1. */
int api_fail(struct api_error *err, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* to[to_key] = from[key] (a new reference) when that is there and not null. */
void api_copy(json_t *to, const char *to_key, const json_t *from, const char *key);
/* o[key], when there and not null, must be of type want (JSON_REAL takes
 * any number, JSON_TRUE any boolean); else a 400 naming key, "expected
 * <what>". Returns 0 or -1. */
int api_check(const json_t *o, const char *key, json_type want, const char *what,
              struct api_error *err);
/* The text of a chat message's content: a string as it is, the text parts
 * of an array joined; NULL for anything else. A new reference. */
json_t *api_content_text(const json_t *content);
/* Append v as compact JSON, as json_dumps would write it but for reals,
 * which take the fewest digits that read back as the same number (jansson
 * writes 0.7 as 0.69999999999999996). Returns 0, or -1 when out went over
 * its cap (and has failed). */
int api_dump(struct buf *out, const json_t *v) BUF_MUST_CHECK;
/* Append one Server-Sent Event: "event: NAME\n" (left out when name is
 * NULL), "data: " and data as api_dump writes it, a blank line. Returns 0
 * or -1 as api_dump. */
int api_write_event(struct buf *out, const char *name, const json_t *data) BUF_MUST_CHECK;
/* Content parts as a chat client writes them: one text part alone is its
 * string, anything else the parts as they are. Takes parts; returns a new
 * reference. */
json_t *api_collapse(json_t *parts);
/* What a stream translator reads of a chat.completion.chunk: its usage,
 * when it carries one, replaces *usage; its finish_reason, when it has
 * one, goes to finish. Returns the first choice, or NULL when the chunk
 * has none or is about another choice (the dialects answer with one). */
const json_t *api_chunk_choice(const json_t *chunk, json_t **usage, char *finish,
                               size_t finish_len);

#endif
