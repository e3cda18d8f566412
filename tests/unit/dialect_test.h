/* dialect_test.h - helpers the dialect translators' unit tests share:
 * JSON written with single quotes, and a stream's events read back.
 * Included by the test files only (static functions). */
#ifndef SLUICE_DIALECT_TEST_H
#define SLUICE_DIALECT_TEST_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_common.h"
#include "../../src/util.h"

/* Chat streams both dialects' tests feed their translators. */
#define CHUNK(delta) "{'model':'gpt-x','created':5,'choices':[{'index':0,'delta':" delta "}]}"
/* "Hello" in two pieces, then stop, then the usage (prompt tokens pt of
 * which cached were read from the prompt cache). */
#define TEXT_CHUNKS(pt, cached)                                                                    \
    "[" CHUNK("{'role':'assistant','content':''}") "," CHUNK("{'content':'Hel'}") "," CHUNK(       \
        "{'content':'lo'}") ",{'choices':[{'index':0,'delta':{},'finish_reason':'stop'}]},"        \
                            "{'choices':[],'usage':{'prompt_tokens':" pt                           \
                            ",'completion_tokens':2,'prompt_tokens_details':{'cached_tokens'"      \
                            ":" cached "}}}]"
/* Text, then two tool calls whose arguments arrive interleaved (the peers'
 * wrong-index failure, Portkey #1275, takes this to happen). */
#define TOOL_CHUNKS                                                                                                               \
    "[" CHUNK("{'content':'Let me see.'}") "," CHUNK(                                                                             \
        "{'tool_calls':[{'index':0,'id':'call_a','"                                                                               \
        "type':'function','function':{'name':'f','"                                                                               \
        "arguments':''}}]}") "," CHUNK("{'tool_calls':[{'index':1,'id':'call_b','type':'function'"                                \
                                       ",'function':{'name':'g','"                                                                \
                                       "arguments':'{\\'y'}}]}") "," CHUNK("{'tool_calls':[{'"                                    \
                                                                           "index':0,'function':{"                                \
                                                                           "'arguments':'{"                                       \
                                                                           "\\'x\\':1}'}}]}") "," CHUNK("{'tool_calls':[{'index'" \
                                                                                                        ":1,'function':{'"        \
                                                                                                        "arguments':'\\':2}'}}]"  \
                                                                                                        "}") ","                  \
                                                                                                             "{'choices':[{'"     \
                                                                                                             "index':0,'delta':{" \
                                                                                                             "},'finish_reason':" \
                                                                                                             "'tool_calls'}]}]"

/* JSON written with ' for " (for readable tests); aborts on a typo. */
__attribute__((unused)) static json_t *J(const char *text)
{
    char *s = xstrdup(text);
    json_error_t err;
    json_t *j;

    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(s, JSON_DECODE_ANY, &err);
    if (j == NULL) {
        fprintf(stderr, "bad test JSON (%s): %s\n", err.text, s);
        abort();
    }
    free(s);
    return j;
}

/* Fail, showing both, unless a equals b. Takes both. */
__attribute__((unused)) static void json_expect(json_t *got, json_t *want, const char *what)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);

        fprintf(stderr, "%s:\n  got:  %s\n  want: %s\n", what, g ? g : "NULL", w ? w : "NULL");
        abort();
    }
    json_decref(got);
    json_decref(want);
}

/* The events of an SSE text as [{"event": name or null, "data": JSON}];
 * comments become {"comment": text}. Aborts on anything malformed. */
__attribute__((unused)) static json_t *sse_events(const char *text, size_t len)
{
    json_t *out = json_array();
    const char *p = text, *end = text + len, *blank;

    while (p < end && (blank = memmem(p, (size_t)(end - p), "\n\n", 2)) != NULL) {
        char *block = xstrndup(p, (size_t)(blank - p));
        char *ev = NULL, *data = NULL, *line, *next;

        for (line = block; line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (strncmp(line, "event: ", 7) == 0)
                ev = line + 7;
            else if (strncmp(line, "data: ", 6) == 0)
                data = line + 6;
            else if (line[0] == ':')
                json_array_append_new(out, json_pack("{s:s}", "comment", line + 1));
            else
                abort();
        }
        if (data) {
            json_t *d = json_loads(data, 0, NULL);

            if (d == NULL)
                abort();
            json_array_append_new(out, json_pack("{s:s?, s:o}", "event", ev, "data", d));
        }
        free(block);
        p = blank + 2;
    }
    if (p != end)
        abort(); /* a half event */
    return out;
}

/* The data.type of each event, joined with spaces. Caller frees. */
__attribute__((unused)) static char *event_types(const json_t *events)
{
    struct buf b;
    json_t *e;
    size_t i;

    buf_init(&b, 1 << 20);
    if (buf_append(&b, "", 0) < 0)
        abort();
    json_array_foreach (events, i, e) {
        const char *t = json_string_value(json_object_get(json_object_get(e, "data"), "type"));

        if ((b.len && buf_append(&b, " ", 1) < 0) ||
            buf_puts(&b, t                               ? t
                         : json_object_get(e, "comment") ? ":"
                                                         : "?") < 0)
            abort();
    }
    return buf_steal(&b, NULL);
}

/* The message an Anthropic client builds from a stream's events (the
 * includer has cmocka). */
__attribute__((unused)) static json_t *accumulate_message(const json_t *events)
{
    json_t *msg = NULL, *e, *content = NULL;
    struct buf partial[16];
    size_t i;

    for (i = 0; i < 16; i++)
        buf_init(&partial[i], 1 << 16);
    json_array_foreach (events, i, e) {
        json_t *d = json_object_get(e, "data");
        const char *type = api_str(d, "type");
        size_t idx = (size_t)json_integer_value(json_object_get(d, "index"));

        assert_string_equal(api_str(e, "event"), type);
        if (api_streq(type, "message_start")) {
            msg = json_deep_copy(json_object_get(d, "message"));
            content = json_object_get(msg, "content");
        } else if (api_streq(type, "content_block_start")) {
            assert_int_equal(json_array_size(content), idx);
            json_array_append(content, json_object_get(d, "content_block"));
        } else if (api_streq(type, "content_block_delta")) {
            json_t *delta = json_object_get(d, "delta"), *block = json_array_get(content, idx);

            if (api_streq(api_str(delta, "type"), "text_delta")) {
                char *t = xasprintf("%s%s", api_str(block, "text"), api_str(delta, "text"));

                json_object_set_new(block, "text", json_string(t));
                free(t);
            } else if (buf_puts(&partial[idx], api_str(delta, "partial_json")) < 0) {
                abort();
            }
        } else if (api_streq(type, "content_block_stop")) {
            json_t *block = json_array_get(content, idx);

            if (api_streq(api_str(block, "type"), "tool_use"))
                json_object_set_new(block, "input",
                                    partial[idx].len ? json_loads(partial[idx].data, 0, NULL)
                                                     : json_object());
        } else if (api_streq(type, "message_delta")) {
            json_object_update(msg, json_object_get(d, "delta"));
            json_object_update(json_object_get(msg, "usage"), json_object_get(d, "usage"));
        }
    }
    for (i = 0; i < 16; i++)
        buf_free(&partial[i]);
    return msg;
}

#endif
