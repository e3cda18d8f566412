/* libFuzzer: the Anthropic translators (provider_anthropic.c). The first
 * byte picks one (its value mod 4), the rest is its input:
 *   0  a chat completions body -> a Messages request: refused with a 400,
 *      or a request the Messages API could take (a model, max_tokens,
 *      alternating user and assistant turns, none empty, no empty text,
 *      tool_result blocks first in user turns and one per id)
 *   1  a Messages answer -> a chat.completion the gateway's reader accepts
 *   2  a stream: events separated by a blank line -> chunks, each JSON the
 *      gateway's chunk reader takes (or [DONE]), the same with the fast
 *      path for deltas as without it
 *   3  an error body -> OpenAI's error shape
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/provider.h"

extern int anthropic_fast_off; /* provider_anthropic.c, under SLUICE_FUZZ */

/* The Messages API's rules that the translation promises to keep. */
static void check_messages(const json_t *req)
{
    json_t *msgs = json_object_get(req, "messages"), *m, *b;
    const char *prev = NULL;
    size_t i, k;

    if (!json_is_string(json_object_get(req, "model")) ||
        !json_is_integer(json_object_get(req, "max_tokens")) || json_array_size(msgs) == 0)
        abort();
    json_array_foreach (msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content"), *ids = json_array();
        int others = 0;

        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            abort();
        if (prev && strcmp(prev, role) == 0)
            abort(); /* turns alternate */
        if (json_array_size(content) == 0)
            abort(); /* no empty turn */
        json_array_foreach (content, k, b) {
            const char *type = json_string_value(json_object_get(b, "type"));

            if (type == NULL)
                abort();
            if (strcmp(type, "text") == 0 && json_string_length(json_object_get(b, "text")) == 0)
                abort(); /* no empty text */
            if (strcmp(type, "tool_result") == 0) {
                json_t *id = json_object_get(b, "tool_use_id");
                json_t *v;
                size_t j;

                if (others || strcmp(role, "user") != 0)
                    abort(); /* results first, in user turns */
                json_array_foreach (ids, j, v) {
                    if (json_equal(v, id))
                        abort(); /* one result per id */
                }
                json_array_append(ids, id);
            } else {
                others = 1;
            }
        }
        json_decref(ids);
        prev = role;
    }
}

static void fuzz_request(const char *text, size_t size)
{
    json_t *chat = json_loadb(text, size, 0, NULL);

    for (int stream = 0; chat && stream <= 1; stream++) {
        struct api_error e = {0};
        char *out = NULL;
        size_t len = 0;

        if (anthropic_request(chat, "claude-x", 1024, stream, &out, &len, &e) == 0) {
            json_t *req = json_loadb(out, len, 0, NULL);

            if (req == NULL || strlen(out) != len)
                abort();
            check_messages(req);
            if (json_is_true(json_object_get(req, "stream")) != stream)
                abort();
            json_decref(req);
            free(out);
        } else if (e.status != 400 || out != NULL) {
            abort();
        }
    }
    json_decref(chat);
}

static void fuzz_answer(const char *text, size_t size)
{
    struct buf out;
    struct reply r;

    buf_init(&out, 1 << 20);
    if (anthropic_answer(text, size, 1700000000, &out) == 0) {
        reply_init(&r);
        if (provider_parse_response(EP_CHAT, out.data, out.len, &r) < 0)
            abort();
        if (r.has_usage && (r.prompt_tokens < r.cached_tokens + r.cache_write_tokens ||
                            r.cached_tokens < 0 || r.cache_write_tokens < 0))
            abort();
        reply_free(&r);
    } else if (out.len != 0) {
        abort();
    }
    buf_free(&out);
}

/* The payloads one translation sent, each read by the gateway's chunk
 * reader as it went. */
struct sent {
    struct reply r;
    json_t *all;
};

static int chunk_cb(void *arg, const char *data, size_t len)
{
    struct sent *s = arg;
    json_t *j;

    if (provider_parse_chunk(EP_CHAT, data, len, &s->r, NULL) == CHUNK_BAD)
        abort(); /* the translation sends only what the reader takes */
    j = len == 6 && memcmp(data, "[DONE]", 6) == 0 ? json_string("[DONE]")
                                                   : json_loadb(data, len, 0, NULL);
    if (j == NULL)
        abort();
    json_array_append_new(s->all, j);
    return 0;
}

/* Translate the events, with the fast path for deltas or without it. */
static json_t *translate(const char *text, size_t size, int fast_off, int *rc)
{
    struct provider_stream *ps = anthropic_stream_new(0);
    struct sent s;
    size_t i = 0;

    anthropic_fast_off = fast_off;
    reply_init(&s.r);
    s.all = json_array();
    *rc = 0;
    while (i < size && *rc == 0) {
        const char *end = memmem(text + i, size - i, "\n\n", 2);
        size_t n = end ? (size_t)(end - (text + i)) : size - i;

        *rc = provider_stream_event(ps, "", text + i, n, chunk_cb, &s);
        i += n + 2;
    }
    reply_free(&s.r);
    provider_stream_free(ps);
    anthropic_fast_off = 0;
    return s.all;
}

/* The fast path says what the tree-built one says, to the byte's meaning. */
static void fuzz_stream(const char *text, size_t size)
{
    int rc_fast, rc_slow;
    json_t *fast = translate(text, size, 0, &rc_fast), *slow = translate(text, size, 1, &rc_slow);

    if (rc_fast != rc_slow || !json_equal(fast, slow))
        abort();
    json_decref(fast);
    json_decref(slow);
}

static void fuzz_error(const char *text, size_t size)
{
    struct buf out;

    buf_init(&out, 1 << 20);
    if (anthropic_error(text, size, &out) == 0) {
        json_t *j = json_loadb(out.data, out.len, 0, NULL);
        json_t *e = json_object_get(j, "error");

        if (!json_is_string(json_object_get(e, "message")) ||
            !json_is_string(json_object_get(e, "type")))
            abort();
        json_decref(j);
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data + 1;

    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_request(text, size - 1);
        break;
    case 1:
        fuzz_answer(text, size - 1);
        break;
    case 2:
        fuzz_stream(text, size - 1);
        break;
    default:
        fuzz_error(text, size - 1);
    }
    return 0;
}
