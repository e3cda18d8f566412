/* request.h - validation of client request bodies, and the API error value.
 *
 * request_parse() is a pure function of the body bytes: it parses the JSON,
 * checks the fields the gateway itself relies on (and nothing more, so that
 * tools, response_format, logprobs, seed and unknown fields pass through
 * unchanged), and extracts what routing and the cache need. It is the first
 * parser of outside input, and a fuzz harness drives it directly.
 */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <jansson.h>
#include <stddef.h>

enum endpoint {
    EP_CHAT,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
};

const char *endpoint_path(enum endpoint ep); /* "/chat/completions", ... */

/* An error to send to the client. http.c alone turns it into OpenAI's JSON,
 * {"error":{"message","type","param","code"}}; everyone else only fills it. */
struct api_error {
    int status;        /* HTTP status, 0 = no error */
    const char *type;  /* "invalid_request_error", "api_error", ... (static) */
    const char *code;  /* "model_not_found", ... or NULL (static) */
    const char *param; /* offending parameter or NULL (static) */
    char message[256];
};

void api_error_set(struct api_error *e, int status, const char *type, const char *code,
                   const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* What the gateway needs to know about a valid request. */
struct request_info {
    enum endpoint ep;
    json_t *body;      /* the parsed body (owned) */
    const char *model; /* borrowed from body */
    int stream;
    int include_usage; /* stream_options.include_usage was true */
    long n;            /* choices asked for, default 1 */
    int want_json;     /* response_format asks for JSON */
    int want_logprobs;
    double temperature;  /* -1 when absent */
    long max_tokens;     /* 0 when absent */
    size_t prompt_chars; /* characters of prompt text, for token estimates */
};

/* Parse and validate a body for endpoint ep. On success return 0 and fill
 * out (the caller frees it with request_info_free). On bad input return -1
 * and fill err with a 400 that names the parameter. */
int request_parse(enum endpoint ep, const char *data, size_t len, struct request_info *out,
                  struct api_error *err);
void request_info_free(struct request_info *ri);

/* The query text a scorer sees: the message contents (string parts) joined
 * with "\n", or the prompt for completions. Returned string is owned by the
 * caller. */
char *request_query_text(const struct request_info *ri);

#endif
