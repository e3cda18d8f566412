/* openai_server.h - a small OpenAI-compatible provider for unit tests,
 * served by tests/common/http_server.h: a chat or completion's answer is
 * "answer from MODEL" with usage (5 prompt and 3 completion tokens), as a
 * whole body or, when the request streams, as SSE chunks with the usage
 * chunk and [DONE]. A model id can ask for trouble by its name: one ending
 * in "-500" gets a 500, "-empty" an empty answer, "-slow" its answer after
 * 1.5 s, "-hangup" no answer at all, "-flaky" a 503 every other call (the
 * first, the third...). Include it after <cmocka.h>. */
#ifndef SLUICE_TEST_OPENAI_SERVER_H
#define SLUICE_TEST_OPENAI_SERVER_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "http_server.h"

static int test_openai_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Answers live as long as the server: a ring of bodies per thread. */
static __thread char test_openai_bodies[8][2048];
static __thread const char *test_openai_chunks[8][6];
static __thread int test_openai_next;
static int test_openai_flaky_calls;

static void test_openai_cb(void *arg, const struct test_http_req *req, struct test_http_reply *out)
{
    json_t *body = json_loads(req->body, 0, NULL);
    const char *model = json_string_value(json_object_get(body, "model"));
    int stream = json_is_true(json_object_get(body, "stream"));
    int slot = test_openai_next++ % 8;
    char *b = test_openai_bodies[slot], content[256];
    const char **chunks = test_openai_chunks[slot];

    (void)arg;
    if (model == NULL) {
        out->status = 400;
        out->body = "{\"error\":{\"message\":\"no model\"}}";
        json_decref(body);
        return;
    }
    snprintf(content, sizeof(content), "%s",
             test_openai_ends(model, "-empty") ? "" : "answer from ");
    if (!test_openai_ends(model, "-empty"))
        snprintf(content + strlen(content), sizeof(content) - strlen(content), "%.100s", model);
    if (test_openai_ends(model, "-500") ||
        (test_openai_ends(model, "-flaky") &&
         __atomic_fetch_add(&test_openai_flaky_calls, 1, __ATOMIC_RELAXED) % 2 == 0)) {
        out->status = 500;
        out->body = "{\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\"}}";
    } else if (test_openai_ends(model, "-hangup")) {
        out->hang_up = 1;
    } else if (stream) {
        /* four events in separate pieces of the body */
        snprintf(b, 2048,
                 "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                 "\"model\":\"%.100s\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                 "\"content\":\"%s\"},\"finish_reason\":null}]}\n\n%c"
                 "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                 "\"model\":\"%.100s\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
                 "\"stop\"}]}\n\n%c"
                 "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                 "\"model\":\"%.100s\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
                 "\"completion_tokens\":3,\"total_tokens\":8}}\n\n%c"
                 "data: [DONE]\n\n",
                 model, content, 0, model, 0, model, 0);
        chunks[0] = b;
        chunks[1] = b + strlen(b) + 1;
        chunks[2] = chunks[1] + strlen(chunks[1]) + 1;
        chunks[3] = chunks[2] + strlen(chunks[2]) + 1;
        chunks[4] = NULL;
        out->content_type = "text/event-stream";
        out->chunks = chunks;
    } else {
        snprintf(
            b, 2048,
            "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"%.100s\","
            "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
            "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
            "\"completion_tokens\":3,\"total_tokens\":8}}",
            model, content);
        out->body = b;
    }
    if (test_openai_ends(model, "-slow"))
        out->delay_ms = 1500;
    json_decref(body);
}

#endif
