/* provider.h - translation between sluice and a provider's HTTP API.
 *
 * provider_build() turns a request body into the upstream call for one
 * model: URL, auth and extra headers, and the body with the model id set
 * (and, for streams, stream_options.include_usage, so the cost is known).
 * The reply functions read what came back: a whole response, or a stream
 * chunk by chunk, into a struct reply. They are parsers of outside input and
 * never trust its shape.
 *
 * Types: "openai" (any OpenAI-compatible server) and "azure" (deployment
 * URL, api-key header, api-version) are both in provider_openai.c.
 */
#ifndef SLUICE_PROVIDER_H
#define SLUICE_PROVIDER_H

#include <jansson.h>

#include "config.h"
#include "request.h"
#include "upstream.h"
#include "util.h"

/* Build the call for model m. body is borrowed (not modified); text is the
 * body as the client wrote it when body is the client's own (else NULL):
 * then it is sent as written, but for model and stream. stream asks for an
 * event stream upstream. client_auth is the client's Authorization header,
 * sent instead of the provider's key only when the provider has
 * passthrough_auth (NULL otherwise). Timeouts are the model's where it sets
 * them, else the provider's. Fills spec (the caller hands it to
 * upstream_call, which takes ownership). */
void provider_build(const struct model *m, enum endpoint ep, const json_t *body, const char *text,
                    size_t text_len, int stream, const char *client_auth, struct call_spec *spec);

/* What one upstream answer said, whole or assembled from a stream. */
struct reply {
    struct buf content;     /* choices[0] text */
    char finish_reason[32]; /* "" if none */
    long prompt_tokens;
    long completion_tokens;
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

#endif
