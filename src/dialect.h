/* dialect.h - the API a client speaks, at the edge of the gateway.
 *
 * Inside, the gateway has one request and answer form: OpenAI's chat
 * completions. Validation, routes, cascades, scorers, the cache key,
 * limits, budgets, costs, logs and metrics all work on it. A client may
 * also speak OpenAI's Responses API (/v1/responses) or Anthropic's Messages
 * API (/v1/messages, /v1/messages/count_tokens): its body is translated
 * into the chat form before anything looks at it, and the answer back into
 * its dialect on the way out, whole, streamed, or replayed from the cache.
 * The translators are api_responses.c and api_messages.c; this module holds
 * one request's translation state and frames what they write.
 *
 * Who calls what: the HTTP worker translates the request (dialect_request)
 * and whole answers (dialect_answer, dialect_answer_sse); the loop
 * translates a stream as it writes it (dialect_stream, through
 * exchange.c); once the stream is over, the worker writes its failure
 * (dialect_stream_fail). The stream state is the loop's until the
 * exchange is done, so no lock is needed. Plain chat requests have no
 * state at all: their path is unchanged.
 */
#ifndef SLUICE_DIALECT_H
#define SLUICE_DIALECT_H

#include "request.h"
#include "util.h"

#include <jansson.h>
#include <stddef.h>

enum dialect {
    DIALECT_CHAT = 0,  /* OpenAI chat completions (and completions, embeddings) */
    DIALECT_RESPONSES, /* OpenAI Responses */
    DIALECT_MESSAGES,  /* Anthropic Messages */
};

/* "chat", "responses", "messages": the log's name for it. */
const char *dialect_name(enum dialect d);

struct dialect_ctx;

/* State for one request of dialect d (not DIALECT_CHAT). count_only: the
 * request is /v1/messages/count_tokens. */
struct dialect_ctx *dialect_new(enum dialect d, int count_only);
void dialect_free(struct dialect_ctx *dx);
enum dialect dialect_of(const struct dialect_ctx *dx);
int dialect_count_only(const struct dialect_ctx *dx);
/* The prompt's tokens, as dialect_count_tokens estimated them. */
long dialect_input_tokens(const struct dialect_ctx *dx);

/* Translate the client's body (borrowed) into the chat form. Returns 0
 * with the chat body in *chat (malloc'd text, the caller's) and its length,
 * or -1 with the error in err: a 400 for bad or unsupported input, a 413
 * when the translated body would be over max bytes. */
int dialect_request(struct dialect_ctx *dx, const char *body, size_t len, size_t max, char **chat,
                    size_t *chat_len, struct api_error *err);

/* An estimate of the tokens a chat body's prompt takes, at least 1:
 * characters (UTF-8 code points) of every text, tool call, tool result
 * and tool definition, divided by 4 and rounded up, plus 4 for each
 * message's framing, plus DIALECT_MEDIA_TOKENS for each image, file or
 * audio part. It is what count_tokens answers and what message_start
 * reports before the upstream has counted. */
long dialect_count_tokens(const json_t *chat);
#define DIALECT_MEDIA_TOKENS 1000

/* A whole chat.completion (*body, malloc'd, taken over) becomes the
 * dialect's answer, in place. Returns 0, or -1 (body untouched) when it
 * is not a chat answer or its translation is over DIALECT_WHOLE_MAX. */
int dialect_answer(struct dialect_ctx *dx, char **body, size_t *len);
/* A whole chat event stream (a cache hit or a buffered answer replayed)
 * becomes the dialect's, in place. Returns 0, or -1 (body untouched) when
 * it goes over a cap. */
int dialect_answer_sse(struct dialect_ctx *dx, char **body, size_t *len);
/* An upstream error body in OpenAI's shape, {"error":{"message",...}}, as
 * an api_error of the given status (the message kept, the type and code
 * left to the renderer). */
void dialect_error_of(const char *body, size_t len, int status, struct api_error *e);

/* Bytes of the chat stream (whole events or parts of them), translated
 * and appended to out. Returns 0, or -1 when a cap is exceeded or the
 * stream is not the chat form. */
int dialect_stream(struct dialect_ctx *dx, const char *p, size_t n, struct buf *out);
/* The stream ended well: close what is open (idempotent). */
int dialect_stream_end(struct dialect_ctx *dx, struct buf *out);
/* The stream failed after it began: the dialect's failure, appended.
 * error_json is the error as the HTTP front renders it for this dialect
 * (Anthropic's error event carries it as it is). */
int dialect_stream_fail(struct dialect_ctx *dx, const struct api_error *e, const char *error_json,
                        struct buf *out);

#endif
