/* dialect.c - the client's API at the edge; see dialect.h. */
#include "dialect.h"
#include "api_common.h"
#include "api_messages.h"
#include "api_responses.h"
#include "caps.h"
#include "jscan.h"

#include <stdlib.h>
#include <string.h>

struct dialect_ctx {
    enum dialect d;
    int count_only;
    char id[40];       /* resp_... or msg_... */
    json_t *echo;      /* Responses: the settings the answer repeats */
    long input_tokens; /* the prompt, estimated */
    /* the stream: the loop's until the exchange is done */
    struct buf pending; /* chat stream bytes short of a whole event */
    struct responses_stream *rs;
    struct messages_stream *ms;
};

const char *dialect_name(enum dialect d)
{
    switch (d) {
    case DIALECT_CHAT:
        return "chat";
    case DIALECT_RESPONSES:
        return "responses";
    case DIALECT_MESSAGES:
        return "messages";
    }
    return "chat";
}

struct dialect_ctx *dialect_new(enum dialect d, int count_only)
{
    struct dialect_ctx *dx = xcalloc(1, sizeof(*dx));
    unsigned char rnd[12];
    uint64_t r1 = random_u64(), r2 = random_u64();
    size_t n;

    sl_assert(d != DIALECT_CHAT);
    dx->d = d;
    dx->count_only = count_only;
    memcpy(rnd, &r1, 8);
    memcpy(rnd + 8, &r2, 4);
    n = d == DIALECT_RESPONSES ? 5 : 4;
    memcpy(dx->id, d == DIALECT_RESPONSES ? "resp_" : "msg_", n);
    hex_encode(rnd, sizeof(rnd), dx->id + n);
    buf_init(&dx->pending, DIALECT_EVENT_MAX);
    return dx;
}

void dialect_free(struct dialect_ctx *dx)
{
    if (dx == NULL)
        return;
    json_decref(dx->echo);
    buf_free(&dx->pending);
    responses_stream_free(dx->rs);
    messages_stream_free(dx->ms);
    free(dx);
}

enum dialect dialect_of(const struct dialect_ctx *dx)
{
    return dx->d;
}

int dialect_count_only(const struct dialect_ctx *dx)
{
    return dx->count_only;
}

long dialect_input_tokens(const struct dialect_ctx *dx)
{
    return dx->input_tokens;
}

/* ---- the request ---- */

/* UTF-8 code points of a string value. */
static size_t chars_of(const json_t *s)
{
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    size_t n = 0, len = json_string_length(s);

    for (size_t i = 0; p && i < len; i++)
        n += (p[i] & 0xc0) != 0x80;
    return n;
}

/* Text characters and media parts of a message's content. */
static void count_content(const json_t *c, size_t *chars, size_t *media)
{
    json_t *p;
    size_t i;

    if (json_is_string(c)) {
        *chars += chars_of(c);
        return;
    }
    json_array_foreach (c, i, p) {
        json_t *t = json_object_get(p, "text");

        if (json_is_string(t))
            *chars += chars_of(t);
        else if (!json_is_string(json_object_get(p, "refusal")))
            (*media)++;
    }
}

long dialect_count_tokens(const json_t *chat)
{
    json_t *msgs = json_object_get(chat, "messages"), *m, *tc, *tools;
    size_t chars = 0, media = 0, i, k;
    long n;

    json_array_foreach (msgs, i, m) {
        count_content(json_object_get(m, "content"), &chars, &media);
        json_array_foreach (json_object_get(m, "tool_calls"), k, tc) {
            json_t *fn = json_object_get(tc, "function");

            chars +=
                chars_of(json_object_get(fn, "name")) + chars_of(json_object_get(fn, "arguments"));
        }
    }
    tools = json_object_get(chat, "tools");
    if (json_array_size(tools)) {
        char *s = json_dumps(tools, JSON_COMPACT);
        json_t *js = json_string(s ? s : "");

        chars += chars_of(js);
        json_decref(js);
        free(s);
    }
    n = (long)((chars + 3) / 4 + 4 * json_array_size(msgs) + DIALECT_MEDIA_TOKENS * media);
    return n > 0 ? n : 1;
}

int dialect_request(struct dialect_ctx *dx, const char *body, size_t len, size_t max, char **chat,
                    size_t *chat_len, struct api_error *err)
{
    json_error_t jerr;
    json_t *req = jscan_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *c;
    struct buf b;
    int r;

    *chat = NULL;
    if (req == NULL) {
        api_error_set(err, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: %s (line %d, column %d).",
                      jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (dx->d == DIALECT_RESPONSES)
        c = responses_request_to_chat(req, &dx->echo, err);
    else
        c = messages_request_to_chat(req, dx->count_only, err);
    json_decref(req);
    if (c == NULL)
        return -1;
    dx->input_tokens = dialect_count_tokens(c);
    buf_init(&b, max);
    r = api_dump(&b, c);
    json_decref(c);
    if (r < 0) {
        buf_free(&b);
        api_error_set(err, 413, "invalid_request_error", "request_too_large", NULL,
                      "The request, in the gateway's form, is larger than the limit of %zu bytes.",
                      max);
        return -1;
    }
    *chat = buf_steal(&b, chat_len);
    return 0;
}

/* ---- answers ---- */

int dialect_answer(struct dialect_ctx *dx, char **body, size_t *len)
{
    json_t *chat = jscan_loadb(*body, *len, 0, NULL), *out;
    struct buf b;
    int r;

    if (!json_is_object(chat)) {
        json_decref(chat);
        return -1;
    }
    out = dx->d == DIALECT_RESPONSES ? responses_answer_from_chat(chat, dx->echo, dx->id)
                                     : messages_answer_from_chat(chat, dx->id);
    json_decref(chat);
    if (out == NULL)
        return -1;
    buf_init(&b, DIALECT_WHOLE_MAX);
    r = api_dump(&b, out);
    json_decref(out);
    if (r < 0) {
        buf_free(&b);
        return -1;
    }
    free(*body);
    *body = buf_steal(&b, len);
    return 0;
}

int dialect_answer_sse(struct dialect_ctx *dx, char **body, size_t *len)
{
    struct buf out;

    buf_init(&out, DIALECT_WHOLE_MAX);
    if (dialect_stream(dx, *body, *len, &out) < 0 || dialect_stream_end(dx, &out) < 0) {
        buf_free(&out);
        return -1;
    }
    free(*body);
    *body = buf_steal(&out, len);
    return 0;
}

void dialect_error_of(const char *body, size_t len, int status, struct api_error *e)
{
    json_t *j = jscan_loadb(body ? body : "", len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

    api_error_set(e, status, NULL, NULL, NULL, "%s",
                  msg ? msg : "The upstream refused the request.");
    json_decref(j);
}

/* ---- streams ---- */

/* One whole event of the chat stream: a comment (the keep-alive ping), a
 * chunk, or [DONE]. */
static int stream_event(struct dialect_ctx *dx, const char *ev, size_t n, struct buf *out)
{
    json_t *chunk;
    int r;

    if (n > 0 && ev[0] == ':') {
        if (dx->d == DIALECT_MESSAGES)
            return messages_stream_ping(dx->ms, out);
        return buf_append(out, ": ping\n\n", 8);
    }
    if (n < 6 || memcmp(ev, "data: ", 6) != 0)
        return -1; /* the relay writes nothing else */
    ev += 6;
    n -= 6;
    if (n == 6 && memcmp(ev, "[DONE]", 6) == 0)
        return dialect_stream_end(dx, out);
    chunk = jscan_loadb(ev, n, 0, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return -1;
    }
    r = dx->d == DIALECT_RESPONSES ? responses_stream_chunk(dx->rs, chunk, out)
                                   : messages_stream_chunk(dx->ms, chunk, out);
    json_decref(chunk);
    return r;
}

static void stream_init(struct dialect_ctx *dx)
{
    if (dx->d == DIALECT_RESPONSES && dx->rs == NULL)
        dx->rs = responses_stream_new(dx->echo, dx->id);
    if (dx->d == DIALECT_MESSAGES && dx->ms == NULL)
        dx->ms = messages_stream_new(dx->id, dx->input_tokens);
}

int dialect_stream(struct dialect_ctx *dx, const char *p, size_t n, struct buf *out)
{
    const char *end, *ev;
    size_t left;

    stream_init(dx);
    /* The relay writes whole events, so usually nothing waits in pending
     * and the bytes are read where they are. */
    if (dx->pending.len) {
        if (buf_append(&dx->pending, p, n) < 0)
            return -1;
        p = dx->pending.data;
        n = dx->pending.len;
    }
    ev = p;
    left = n;
    while ((end = memmem(ev, left, "\n\n", 2)) != NULL) {
        if (stream_event(dx, ev, (size_t)(end - ev), out) < 0)
            return -1;
        left -= (size_t)(end + 2 - ev);
        ev = end + 2;
    }
    if (ev == dx->pending.data) /* nothing whole yet */
        return 0;
    if (dx->pending.len) {
        buf_consume(&dx->pending, dx->pending.len - left);
        return 0;
    }
    return left ? buf_append(&dx->pending, ev, left) : 0;
}

int dialect_stream_end(struct dialect_ctx *dx, struct buf *out)
{
    stream_init(dx);
    return dx->d == DIALECT_RESPONSES ? responses_stream_done(dx->rs, out)
                                      : messages_stream_done(dx->ms, out);
}

int dialect_stream_fail(struct dialect_ctx *dx, const struct api_error *e, const char *error_json,
                        struct buf *out)
{
    stream_init(dx);
    if (dx->d == DIALECT_RESPONSES)
        return responses_stream_fail(dx->rs, e, out);
    if (buf_puts(out, "event: error\ndata: ") < 0 || buf_puts(out, error_json) < 0 ||
        buf_append(out, "\n\n", 2) < 0)
        return -1;
    return 0;
}
