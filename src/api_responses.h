/* api_responses.h - OpenAI's Responses API (POST /v1/responses) in front of
 * the gateway: pure translators between it and the internal form, which is
 * the chat-completions form every other part of the gateway speaks.
 *
 * Stateless: a request must carry its whole conversation in `input`.
 * previous_response_id, conversation, background, prompt templates and
 * store: true are refused with a 400 (an omitted store means false: nothing
 * is kept). Only function tools are served.
 *
 * Request (responses -> chat):
 *   instructions            -> a system message first
 *   input string            -> one user message
 *   input items             -> messages: message items by role (developer
 *                              becomes system), function_call items become
 *                              the assistant's tool_calls (consecutive ones
 *                              share one message), function_call_output
 *                              items become tool messages (one per call_id:
 *                              a repeated output is dropped), reasoning
 *                              items are dropped
 *   tools, tool_choice      -> their chat shapes
 *   text.format             -> response_format
 *   max_output_tokens       -> max_tokens
 *   temperature, top_p, parallel_tool_calls, user -> as they are
 *   reasoning.effort        -> reasoning_effort
 *   metadata                -> only repeated in the answer
 *   stream                  -> stream, with stream_options.include_usage
 * Answer (chat -> responses): a `response` object whose output holds a
 * message item (output_text and refusal parts) and one function_call item
 * per tool call; finish_reason "length" or "content_filter" makes it
 * incomplete. usage: input_tokens (cached included), input_tokens_details
 * .cached_tokens, output_tokens, output_tokens_details.reasoning_tokens.
 * Stream: chat chunks become typed events with sequence numbers, in
 * OpenAI's order (see responses_stream_chunk).
 *
 * Every function here is a parser or writer of outside input: fuzzed by
 * tests/fuzz/fuzz_api_responses.c, which also holds each direction to its
 * inverse (translated there and back, a request or answer means the same).
 */
#ifndef SLUICE_API_RESPONSES_H
#define SLUICE_API_RESPONSES_H

#include "request.h"
#include "util.h"

#include <jansson.h>

/* Translate a Responses request (a parsed body, borrowed) into a chat body.
 * Returns the chat body (a new reference) and sets *echo to a new object of
 * the request's settings that the answer repeats (instructions, tools,
 * temperature, metadata, ...). On bad or unsupported input returns NULL
 * with a 400 in err that names the parameter. */
json_t *responses_request_to_chat(const json_t *req, json_t **echo, struct api_error *err);

/* The `response` object for a whole chat.completion (borrowed). echo is
 * what responses_request_to_chat gave (borrowed, may be NULL); id is the
 * response id ("resp_..."), from which the item ids derive. Returns a new
 * reference, or NULL if chat is not a chat.completion object. */
json_t *responses_answer_from_chat(const json_t *chat, const json_t *echo, const char *id);

/* A chat stream becoming Responses events. */
struct responses_stream;

/* echo and id as for responses_answer_from_chat (both copied). */
struct responses_stream *responses_stream_new(const json_t *echo, const char *id);
void responses_stream_free(struct responses_stream *s);
/* One chat.completion.chunk (borrowed), its events appended to out:
 * response.created and response.in_progress before the first; then per
 * output item response.output_item.added, and for a message
 * response.content_part.added and response.output_text.delta (or
 * response.refusal.delta), for a tool call response.function_call_arguments
 * .delta. A chunk with usage only is kept for the end. Returns 0, or -1 when
 * out or the answer went over a cap (caps.h). */
int responses_stream_chunk(struct responses_stream *s, const json_t *chunk, struct buf *out);
/* The chat stream ended ([DONE]): every open item is closed
 * (response.output_text.done, response.content_part.done,
 * response.function_call_arguments.done, response.output_item.done) and
 * response.completed (or response.incomplete) carries the whole response
 * with its usage. Idempotent. Returns 0 or -1 as above. */
int responses_stream_done(struct responses_stream *s, struct buf *out);
/* The answer failed after the stream began: an `error` event, then
 * response.failed with the response so far. e is borrowed. */
int responses_stream_fail(struct responses_stream *s, const struct api_error *e, struct buf *out);

/* The inverses, for round-trip checks (unit tests and the fuzzer): a chat
 * body as a Responses request, and a `response` object as the
 * chat.completion it says. Both return a new reference; they borrow their
 * argument and expect what the forward direction produces. */
json_t *responses_request_from_chat(const json_t *chat);
json_t *responses_answer_to_chat(const json_t *resp);

#endif
