/* mock_anthropic.h - sluice-mock's Anthropic mode: POST /v1/messages (and
 * /v1/messages/count_tokens) answered the way Anthropic's Messages API
 * answers, streamed and not, with tool_use blocks and Anthropic's error
 * shapes, so that sluice's "anthropic" provider type is tested against
 * something that behaves like Anthropic.
 *
 * Requests are checked as strictly as the real API checks them where a
 * gateway's translation can go wrong: required model and max_tokens, user
 * and assistant roles only, non-empty text, every tool_use answered by
 * exactly one tool_result in the next user turn (and no other), no member
 * the API does not know. The answer is the OpenAI mode's (mock_gen.c) for
 * the same conversation, so one prompt gets the same text either way.
 *
 * Pure functions of the request, like mock_gen.c: mock_ep.c decides faults and
 * timing.
 */
#ifndef SLUICE_MOCK_ANTHROPIC_H
#define SLUICE_MOCK_ANTHROPIC_H

#include "mock_gen.h"

#define MOCK_ANTH_MAX_TOOL_CALLS 16 /* mock.tool_calls */

/* Check a Messages request body and build its answer in a (choices are the
 * content blocks: text, or tool_use when tool_name is set). tool_calls > 0
 * (mock.tool_calls) answers with that many tool_use blocks over the
 * request's tools, after a text block when o gives content. Return 0, or -1
 * with err set (a is then empty). */
int mock_anth_gen(const json_t *req, const struct mock_gen_opts *o, int tool_calls,
                  struct mock_answer *a, struct mock_err *err);

/* The Message JSON (malloc'd; *len its length); truncated_json cuts it so
 * no parser accepts it (the "malformed" fault). */
char *mock_anth_render_json(const struct mock_answer *a, int truncated_json, size_t *len);

/* The event stream: step 0 is message_start, the first content_block_start
 * and a ping; each next step one content_block_delta (with the stop and
 * start of blocks between them); the last step content_block_stop,
 * message_delta and message_stop. malformed: step 0 also carries an event
 * that is not JSON. error_event: after step 0 an `error` event
 * (overloaded_error) ends the stream. chunked: Transfer-Encoding framing.
 * Return 0, or -1 when the stream would be too large (s is then freed). */
int mock_anth_render_stream(const struct mock_answer *a, size_t chunks, int malformed,
                            int error_event, int chunked, struct mock_stream *s);

/* POST /v1/messages/count_tokens: check the body (as for messages, but
 * max_tokens is not required) and count its input tokens. */
int mock_anth_count_tokens(const json_t *req, long long *tokens, struct mock_err *err);


#endif
