/* provider.h - translation between sluice and a provider's HTTP API.
 *
 * The gateway's internal form of a request and of an answer is OpenAI's:
 * chat completions (and completions, embeddings). Everything after a call
 * (scorers, the cache, costs, the relay of a stream) reads that form.
 *
 * provider_build() turns a request body into the upstream call for one
 * model: URL, auth and extra headers, and the body in the provider's own
 * API. A provider whose answers come in another shape has them translated
 * into the internal form as they arrive: provider_answer_normalize() (a
 * whole answer), provider_error_normalize() (an error body) and a
 * provider_stream (each stream event into zero or more
 * chat.completion.chunk payloads). For OpenAI-compatible types these do
 * nothing (and provider_stream_new() returns NULL), so their answers are
 * read as they came, with no copy.
 *
 * The reply functions read the internal form: a whole response, or a stream
 * chunk by chunk, into a struct reply. All of these are parsers of outside
 * input and never trust its shape.
 *
 * Types: "openai" (any OpenAI-compatible server) and "azure" (deployment
 * URL, api-key header, api-version) are in provider_openai.c; "anthropic"
 * (the Messages API) is in provider_anthropic.c; provider.c picks one.
 */
#ifndef SLUICE_PROVIDER_H
#define SLUICE_PROVIDER_H

#include "config.h"
#include "request.h"
#include "upstream.h"
#include "util.h"

#include <jansson.h>

/* Build the call for model m. body is borrowed (not modified); text is the
 * body as the client wrote it when body is the client's own (else NULL):
 * an OpenAI-compatible provider is then sent it as written, but for model
 * and stream. stream asks for an event stream upstream. client_auth is the
 * client's Authorization header, sent instead of the provider's key only
 * when the provider has passthrough_auth (NULL otherwise). Timeouts are the
 * model's where it sets them, else the provider's. Returns 0 and fills spec
 * (the caller hands it to upstream_call, which takes ownership); or -1 with
 * err set (a 400) when the request cannot be expressed in the provider's
 * API (spec is then untouched): the request's fault, not the provider's. */
int provider_build(const struct model *m, enum endpoint ep, const json_t *body, const char *text,
                   size_t text_len, int stream, const char *client_auth, struct call_spec *spec,
                   struct api_error *err);

/* A whole 2xx answer of model m, in place: into the internal form. Returns
 * 0 (OpenAI-compatible types: at once, body untouched), or -1 when the body
 * is not an answer of the provider's API or the translation would not fit
 * body's cap (body is then unchanged). */
int provider_answer_normalize(const struct model *m, enum endpoint ep, struct buf *body);

/* An error body of model m, in place: into OpenAI's error shape
 * {"error":{"message","type","param","code"}} when it is the provider's
 * own error shape; anything else is left as it is. */
void provider_error_normalize(const struct model *m, struct buf *body);

/* Receives one translated stream payload (what follows "data: "); data is
 * borrowed. Returns 0 to go on, -1 to stop. */
typedef int (*provider_chunk_cb)(void *arg, const char *data, size_t len);

struct provider_stream;

/* The translation state of one streamed call to m (owned by the caller,
 * freed with provider_stream_free), or NULL when m's stream events are in
 * the internal form already. */
struct provider_stream *provider_stream_new(const struct model *m);
void provider_stream_free(struct provider_stream *s);
/* One stream event (its SSE event name, "" if none, and its data) in;
 * zero or more chat.completion.chunk payloads (and "[DONE]" at the end, an
 * {"error":{...}} payload for an error event) out through cb. Returns 0;
 * -1 when the event is malformed (not what the provider sends) or cb asked
 * to stop. */
int provider_stream_event(struct provider_stream *s, const char *event, const char *data,
                          size_t len, provider_chunk_cb cb, void *arg);

/* What one upstream answer said, whole or assembled from a stream. */
struct reply {
    struct buf content;     /* choices[0] text */
    char finish_reason[32]; /* "" if none */
    long prompt_tokens;     /* all of them, cached ones included (OpenAI's count) */
    long completion_tokens;
    long cached_tokens;      /* usage.prompt_tokens_details.cached_tokens: read from cache */
    long cache_write_tokens; /* ...cache_write_tokens: written to the cache (Anthropic) */
    int has_usage;
    double logprob_sum; /* over choices[0] content tokens */
    long logprob_n;
    json_t *choices_text; /* array of every choice's text (for n > 1), or NULL */
    size_t nchoices;      /* a whole response's choices */
    int any_logprobs;     /* one of them has logprobs that are not null */
    int is_error;         /* the body was an error object, not an answer */
    char error[256];      /* its message (valid UTF-8), or "" */
};

void reply_init(struct reply *r);
void reply_free(struct reply *r);

/* Read a complete (non-streamed) response body into r, which is as
 * reply_init left it. Returns 0; -1 (r untouched) if the body is not a JSON
 * object; PROVIDER_ERROR_ANSWER if it is an error object ({"error": ...}
 * with no choices, or no data for embeddings), with its message in r->error.
 * No tree is built: a caller that changes the body parses it. */
#define PROVIDER_ERROR_ANSWER (-2)
int provider_parse_response(enum endpoint ep, const char *body, size_t len, struct reply *r);

/* Kinds of stream event. */
enum chunk_kind {
    CHUNK_DATA,  /* an ordinary chunk: relay it */
    CHUNK_USAGE, /* the include_usage chunk: choices empty, usage set */
    CHUNK_DONE,  /* data: [DONE] */
    CHUNK_ERROR, /* an error object mid-stream */
    CHUNK_BAD,   /* not JSON */
};

struct assembly;

/* Classify one SSE data payload and fold it into r, and into a (when not
 * NULL) to rebuild the whole response. */
enum chunk_kind provider_parse_chunk(enum endpoint ep, const char *data, size_t len,
                                     struct reply *r, struct assembly *a);

/* A stream rebuilt as the whole response a client that does not stream
 * would have got (chat.completion or text_completion): content, refusals,
 * tool calls (their arguments joined), logprobs, finish reasons and usage. */
struct assembly *provider_assembly_new(enum endpoint ep);
void provider_assembly_free(struct assembly *a);
/* The JSON text (malloc'd), or NULL if the stream went over a cap. */
char *provider_assembly_finish(struct assembly *a, size_t *len);

/* Write a whole response (chat.completion or text_completion) as the SSE
 * stream a streaming client expects: per choice a role chunk, content
 * chunks, tool calls, a finish chunk; the usage chunk when include_usage;
 * then [DONE]. Used for buffered cascade answers and cache hits. Returns 0,
 * or -1 when out went over its cap (and has failed). */
int provider_sse_from_response(enum endpoint ep, const json_t *resp, int include_usage,
                               struct buf *out) BUF_MUST_CHECK;

/* ---- per type: provider.c dispatches to these ---- */

/* OpenAI-compatible and Azure (provider_openai.c): never fails. */
void openai_build(const struct model *m, enum endpoint ep, const json_t *body, const char *text,
                  size_t text_len, int stream, const char *client_auth, struct call_spec *spec);

/* Anthropic Messages (provider_anthropic.c): chat completions only. */
int anthropic_build(const struct model *m, enum endpoint ep, const json_t *body, int stream,
                    const char *client_auth, struct call_spec *spec, struct api_error *err);

/* The pure translators behind it (fuzzed in tests/fuzz/fuzz_anthropic.c):
 *
 * anthropic_request: a chat completions body (borrowed) as a Messages
 * request for model_id, max_tokens when the body gives none. Returns 0 and
 * *out (malloc'd, the caller frees it) with its length, or -1 with err (a
 * 400 naming the parameter) for what the Messages API cannot express.
 *
 * anthropic_answer: a Messages answer as a chat.completion, appended to out
 * (whose cap bounds it); created is its "created". Returns 0, or -1 when
 * body is not a Messages answer or out is full.
 *
 * anthropic_error: an Anthropic error body ({"type":"error","error":{"type",
 * "message"}}) as OpenAI's error JSON, appended to out. Returns 0, or -1
 * when body is not one (or out is full). */
int anthropic_request(const json_t *chat, const char *model_id, long max_tokens, int stream,
                      char **out, size_t *out_len, struct api_error *err);
int anthropic_answer(const char *body, size_t len, long long created, struct buf *out);
int anthropic_error(const char *body, size_t len, struct buf *out);
/* A stream's translation state; created is the chunks' "created". */
struct provider_stream *anthropic_stream_new(long long created);

/* Header lines and the call's timeouts, shared by every type. */
struct curl_slist *provider_header_line(struct curl_slist *h, const char *line);
struct curl_slist *provider_header(struct curl_slist *h, const char *name, const char *value);
/* The headers every call has: content type, accept, no 100-continue, the
 * user agent. */
struct curl_slist *provider_common_headers(struct curl_slist *h, int stream);
/* The provider's configured extra headers. */
struct curl_slist *provider_extra_headers(struct curl_slist *h, const struct provider *p);
/* Timeouts (the model's, else the provider's), stream reads, HTTP version,
 * CA file. */
void provider_call_policy(const struct model *m, int stream, struct call_spec *spec);

#endif
