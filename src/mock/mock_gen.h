/* mock_gen.h - what sluice-mock answers: deterministic text, token pieces,
 * logprobs, tool calls, JSON-mode objects and embeddings, rendered as
 * OpenAI's JSON bodies or as SSE events.
 *
 * Nothing here touches a socket: mock_ep.c decides faults and timing, this file
 * decides bytes. Everything is a pure function of the request (and the replay
 * table), so the same input always gives the same answer.
 */
#ifndef SLUICE_MOCK_GEN_H
#define SLUICE_MOCK_GEN_H

#include "util.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct mock_replay;

#define MOCK_STREAM_MAX (64u << 20) /* cap on one rendered stream or body */

/* An error for the client. mock_reply.c turns it into the error JSON; nothing
 * here prints error bodies. */
struct mock_err {
    int status;
    const char *code;  /* static, or NULL */
    const char *param; /* static, or NULL */
    char message[512];
};

/* Fill e (code and param static, or NULL) and return -1. */
int mock_fail(struct mock_err *e, int status, const char *param, const char *code,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

enum mock_kind { MOCK_CHAT, MOCK_COMPLETION };

struct mock_choice {
    char *text; /* owned: the content, or the tool call's arguments */
    size_t len;
    size_t *starts; /* owned: byte offset of each token piece */
    size_t ntok;
    const char *finish_reason; /* static */
    char *tool_name;           /* owned; non-NULL when the choice is a tool call */
    char tool_id[40];
    uint64_t seed; /* drives the logprobs */
};

struct mock_answer {
    enum mock_kind kind;
    char id[48];
    long long created;
    char *model; /* owned */
    struct mock_choice *choices;
    size_t nchoices;
    long long prompt_tokens;
    long long completion_tokens;
    int logprobs;     /* chat: logprobs objects; completions: the legacy shape */
    int top_logprobs; /* alternatives per token, 0..20 */
    int forced;       /* every token's logprob is forced_lp */
    double forced_lp;
    int stream;
    int include_usage; /* stream_options.include_usage */
    int replayed;      /* the content came from a replay file */
    /* Prompt tokens read from / written to a prompt cache (mock controls):
     * OpenAI reports the read ones in prompt_tokens_details.cached_tokens,
     * Anthropic both, outside input_tokens. */
    long long cache_read, cache_write;
    /* Anthropic mode: choices are the content blocks, in order. */
    const char *stop_reason; /* static */
    char *stop_sequence;     /* owned: the stop sequence that ended it, or NULL */
};

/* What the server decided for this request. All borrowed. */
struct mock_gen_opts {
    const char *model;   /* the answering model (Azure: the deployment) */
    const char *content; /* mock.content, or NULL */
    size_t content_len;
    const json_t *choices; /* mock.choices, an array of strings, or NULL */
    int forced;            /* mock.logprob given */
    double forced_lp;
    const struct mock_replay *replay;  /* or NULL */
    unsigned long long seq;            /* makes the id unique */
    long long cache_read, cache_write; /* mock.cache_read_tokens, ...write... */
};

/* A rendered stream: step 0 opens it (role chunks), steps 1..nsteps-2 carry
 * one content chunk per choice each, and the last step closes it (finish
 * chunks, usage, [DONE], and the chunked-encoding terminator). */
struct mock_stream {
    struct buf data;
    size_t *ends; /* step i is data[ends[i-1] (or 0) .. ends[i]) */
    size_t nsteps;
};

/* FNV-1a with a murmur finaliser: the stable hash the answers derive from. */
uint64_t mock_hash(const void *p, size_t len, uint64_t seed);

/* Build the answer to a chat (or legacy completions) request body `req`.
 * Return 0 with *a filled (free it with mock_answer_free), or -1 with *err
 * set (a is then empty). A replayed model whose prompt is not recorded is an
 * error with code "replay_miss". */
int mock_gen_chat(const json_t *req, const struct mock_gen_opts *o, struct mock_answer *a,
                  struct mock_err *err);
int mock_gen_completion(const json_t *req, const struct mock_gen_opts *o, struct mock_answer *a,
                        struct mock_err *err);
void mock_answer_free(struct mock_answer *a);

/* The non-streamed body. `truncated_json` gives invalid JSON instead (the
 * "malformed" fault). Returns a malloc'd string the caller frees; *len is
 * its length. */
char *mock_render_json(const struct mock_answer *a, int truncated_json, size_t *len);

/* Render a as SSE events split into `chunks` content chunks per choice.
 * malformed: step 0 also carries one event that is not JSON. error_event:
 * after step 0 the stream carries an error object and ends (no content, no
 * [DONE]). chunked: frame each event for Transfer-Encoding: chunked. Return
 * 0, or -1 when the stream would exceed MOCK_STREAM_MAX bytes or 200000
 * content events (s is then freed). */
int mock_render_stream(const struct mock_answer *a, size_t chunks, int malformed, int error_event,
                       int chunked, struct mock_stream *s);

/* For the Anthropic mode (mock_anthropic.c), which builds on the chat
 * answer: */
/* Fill c->starts/ntok from c->text (token pieces), cut to max_tokens
 * pieces (0 = no limit). Returns 1 when it cut. */
int mock_choice_tokenise(struct mock_choice *c, long long max_tokens);
/* Where c's text is cut into at most `chunks` stream chunks: *nb+1 byte
 * offsets (malloc'd; NULL with *nb = 0 for empty text). */
size_t *mock_choice_bounds(const struct mock_choice *c, size_t chunks, size_t *nb);
/* Tool input that fits a JSON schema, derived from h: always an object.
 * Returns a new reference. */
json_t *mock_gen_tool_input(const json_t *schema, uint64_t h);
/* The "malformed" fault: cut the JSON text s (of *len bytes) one byte into
 * the array that follows `at` (else at half), so no parser accepts it. */
void mock_json_cut(char *s, size_t *len, const char *at);
/* Append one SSE event (with an "event: " line when event is not NULL),
 * framed as one chunk if chunked. Return 0, or -1 when b is full. */
int mock_emit_event(struct buf *b, const char *event, const char *data, size_t len, int chunked);
void mock_stream_free(struct mock_stream *s);

/* Answer an embeddings request: append the whole JSON body to out (whose cap
 * bounds it). Return 0, or -1 with *err set. *tokens gets the usage. */
int mock_gen_embeddings(const json_t *req, const char *model, struct buf *out, long long *tokens,
                        struct mock_err *err);

#endif
