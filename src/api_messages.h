/* api_messages.h - Anthropic's Messages API (POST /v1/messages and
 * /v1/messages/count_tokens) in front of the gateway: pure translators
 * between it and the internal chat-completions form.
 *
 * Request (messages -> chat):
 *   system (a string or text blocks) -> a system message first
 *   user text and image blocks       -> a user message (an image becomes an
 *                                       image_url part: a data: URL or its url)
 *   user tool_result blocks          -> tool messages, before the user's other
 *                                       blocks; one per tool_use_id (a repeated
 *                                       result is dropped, LiteLLM #16711)
 *   assistant text and tool_use      -> one assistant message with its
 *                                       tool_calls (input as JSON arguments);
 *                                       thinking blocks are dropped
 *   tools, tool_choice               -> function tools, "auto"/"required"/
 *                                       "none"/a named function;
 *                                       disable_parallel_tool_use ->
 *                                       parallel_tool_calls: false
 *   max_tokens (required), temperature, top_p -> as they are
 *   stop_sequences -> stop;  metadata.user_id -> user
 *   top_k, thinking, service_tier    -> dropped: the chat form has no such
 *                                       settings (OpenAI refuses top_k)
 *   stream -> stream, with stream_options.include_usage
 * Server tools (web search, code execution, ...) and document blocks are
 * refused with a 400.
 *
 * Answer (chat -> messages): a text block, then one tool_use block per tool
 * call; stop reasons stop -> end_turn, length -> max_tokens, tool_calls ->
 * tool_use, content_filter -> refusal, and stop with a string stop_reason
 * in the choice (the stop sequence that ended the answer, as vLLM and an
 * Anthropic-type provider write it) -> stop_sequence with that sequence. usage: input_tokens are the prompt's
 * tokens less those read from and written to the prompt cache (Anthropic
 * counts those apart, in cache_read_input_tokens and
 * cache_creation_input_tokens), output_tokens the completion's.
 *
 * Fuzzed by tests/fuzz/fuzz_api_messages.c, which holds each direction to
 * its inverse.
 */
#ifndef SLUICE_API_MESSAGES_H
#define SLUICE_API_MESSAGES_H

#include "request.h"
#include "util.h"

#include <jansson.h>

/* Translate a Messages request (a parsed body, borrowed) into a chat body
 * (a new reference). count_only: the body of /v1/messages/count_tokens,
 * which has no max_tokens and is never streamed. On bad or unsupported
 * input returns NULL with a 400 in err that names the parameter. */
json_t *messages_request_to_chat(const json_t *req, int count_only, struct api_error *err);

/* The Messages answer for a whole chat.completion (borrowed), with the
 * message id id. A new reference, or NULL if chat is not an object. */
json_t *messages_answer_from_chat(const json_t *chat, const char *id);

/* A chat stream becoming Messages events. */
struct messages_stream;

/* id: the message id; input_tokens: the prompt's tokens as estimated
 * before the upstream counts them, for message_start (at least 1: a
 * message_start with usage 0/0 breaks Claude Code, LiteLLM #24176). */
struct messages_stream *messages_stream_new(const char *id, long input_tokens);
void messages_stream_free(struct messages_stream *s);
/* One chat.completion.chunk (borrowed), its events appended to out:
 * message_start before the first; per block content_block_start (a ping
 * after the first), content_block_delta (text_delta or input_json_delta),
 * and content_block_stop when the next block starts. Returns 0, or -1 when
 * out or the answer went over a cap. */
int messages_stream_chunk(struct messages_stream *s, const json_t *chunk, struct buf *out);
/* The chat stream ended: the open block is stopped, message_delta carries
 * the stop reason and the usage the upstream reported, message_stop ends
 * it. Idempotent. */
int messages_stream_done(struct messages_stream *s, struct buf *out);
/* A keep-alive: event ping. */
int messages_stream_ping(struct messages_stream *s, struct buf *out);

/* The inverses, for round-trip checks: a chat body as a Messages request,
 * and a Messages answer as the chat.completion it says. New references. */
json_t *messages_request_from_chat(const json_t *chat);
json_t *messages_answer_to_chat(const json_t *msg);

#endif
