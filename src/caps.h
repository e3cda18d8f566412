/* caps.h - every hard cap on a buffer or a count of the gateway, named in one
 * place (curl's dynbuf "toobig" limits). A buffer is given its cap at
 * buf_init; going over it is an error that the caller handles (util.h).
 *
 * Caps that a user may change are config keys (config.h holds their
 * defaults); what is here is fixed at build time.
 */
#ifndef SLUICE_CAPS_H
#define SLUICE_CAPS_H

/* ---- client dialects: dialect.c, api_responses.c, api_messages.c ---- */
/* A Responses or Messages body, once translated into the chat form, may be
 * this much larger than max_body_bytes (tools and messages get wrapped). */
#define DIALECT_BODY_SLACK (1u << 20)
/* One chat-form event of a stream being translated (the relay already caps
 * an upstream event at 8 MiB). */
#define DIALECT_EVENT_MAX (8u << 20)
/* The text, refusal and tool arguments of one streamed answer, kept for the
 * closing events that repeat them whole. */
#define DIALECT_ANSWER_MAX (64u << 20)
/* Tool calls in one streamed answer. */
#define DIALECT_TOOLS_MAX 128
/* The translated events of one write to a client's stream. */
#define DIALECT_OUT_MAX (16u << 20)

#endif
