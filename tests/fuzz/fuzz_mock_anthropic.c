/* libFuzzer: sluice-mock's Anthropic mode (it takes request bodies from any
 * client the tests point at it): the request check and the answer. What
 * the mock answers must be what the gateway's Anthropic translation reads:
 * the Message body and every stream event. The first byte sets
 * mock.tool_calls (mod 4); the rest is the request body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/mock/mock_anthropic.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_replay.c"
#include "../../src/provider.h"

static int chunk_cb(void *arg, const char *data, size_t len)
{
    UNUSED(arg);
    UNUSED(data);
    UNUSED(len);
    return 0;
}

/* Feed every event of a rendered stream (not chunked) to the gateway's
 * translation. */
static void read_stream(const struct mock_stream *s)
{
    struct provider_stream *ps = anthropic_stream_new(0);
    const char *p = s->data.data, *end = p + s->data.len;

    while (p < end) {
        const char *stop = memmem(p, (size_t)(end - p), "\n\n", 2);
        const char *data = memmem(p, (size_t)(end - p), "\ndata: ", 7);

        if (stop == NULL || data == NULL || data > stop)
            abort(); /* every event has a name and data */
        data += 7;
        if (provider_stream_event(ps, "", data, (size_t)(stop - data), chunk_cb, NULL) < 0)
            abort();
        p = stop + 2;
    }
    provider_stream_free(ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mock_gen_opts o = {.model = "claude-x", .seq = 1, .cache_read = 3};
    struct mock_answer a;
    struct mock_err err;
    json_t *req;
    long long tokens;

    if (size == 0)
        return 0;
    req = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (req == NULL)
        return 0;
    if (mock_anth_count_tokens(req, &tokens, &err) == 0 && tokens < 0)
        abort();
    if (mock_anth_gen(req, &o, data[0] % 4, &a, &err) == 0) {
        struct mock_stream s = {0};
        struct buf out;
        size_t len;
        char *body = mock_anth_render_json(&a, 0, &len);

        buf_init(&out, 64u << 20);
        if (anthropic_answer(body, len, 0, &out) < 0)
            abort();
        buf_free(&out);
        free(body);
        if (mock_anth_render_stream(&a, 3, 0, 0, 0, &s) == 0) {
            read_stream(&s);
            mock_stream_free(&s);
        }
        mock_answer_free(&a);
    } else if (err.status != 400 && err.status != 404) {
        abort();
    }
    json_decref(req);
    return 0;
}
