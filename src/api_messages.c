/* api_messages.c - Anthropic's Messages API in front; see api_messages.h. */
#include "api_messages.h"
#include "api_common.h"
#include "caps.h"
#include "cost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the request: messages -> chat ---- */

/* The chat conversation being built. */
struct conv {
    json_t *msgs;    /* chat messages */
    json_t *uses;    /* tool_use id -> true: calls the assistant made so far */
    json_t *results; /* tool_use id -> true: their results kept */
    struct api_error *err;
};

/* An image block as a chat image_url part: base64 data becomes a data:
 * URL. NULL with err set. */
static json_t *image_to_chat(const json_t *b, size_t i, struct api_error *err)
{
    json_t *src = json_object_get(b, "source");
    const char *type = api_str(src, "type");
    char *url;
    json_t *part;

    if (api_streq(type, "base64") && api_str(src, "media_type") && api_str(src, "data")) {
        url = xasprintf("data:%s;base64,%s", api_str(src, "media_type"), api_str(src, "data"));
        part = json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url);
        free(url);
        return part;
    }
    if (api_streq(type, "url") && api_str(src, "url"))
        return json_pack("{s:s, s:{s:O}}", "type", "image_url", "image_url", "url",
                         json_object_get(src, "url"));
    api_fail(err, "messages", "unsupported_value",
             "messages[%zu]: an image needs a base64 or url source (file sources are not "
             "supported).",
             i);
    return NULL;
}

/* A text block's chat part. NULL with err set. */
static json_t *text_to_chat(const json_t *b, size_t i, struct api_error *err)
{
    json_t *t = json_object_get(b, "text");

    if (!json_is_string(t)) {
        api_fail(err, "messages", NULL, "messages[%zu]: a text block needs a string 'text'.", i);
        return NULL;
    }
    return json_pack("{s:s, s:O}", "type", "text", "text", t);
}

/* A tool_result's content as a tool message's: text as it is; images go
 * to the user message that follows (a chat tool message holds text only),
 * appended to extra. NULL with err set. */
static json_t *result_to_chat(const json_t *c, json_t *extra, size_t i, struct api_error *err)
{
    json_t *parts, *b, *p;
    size_t k;

    if (c == NULL || json_is_null(c))
        return json_string("");
    if (json_is_string(c))
        return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        api_fail(err, "messages", NULL,
                 "messages[%zu]: a tool_result's content must be a string or an array of blocks.",
                 i);
        return NULL;
    }
    parts = json_array();
    json_array_foreach (c, k, b) {
        const char *type = api_str(b, "type");

        if (api_streq(type, "text"))
            p = text_to_chat(b, i, err);
        else if (api_streq(type, "image"))
            p = image_to_chat(b, i, err);
        else {
            api_fail(err, "messages", "unsupported_value",
                     "messages[%zu]: a tool_result may hold text and image blocks, not '%.32s'.", i,
                     type ? type : "(no type)");
            p = NULL;
        }
        if (p == NULL) {
            json_decref(parts);
            return NULL;
        }
        json_array_append_new(api_streq(type, "image") ? extra : parts, p);
    }
    return api_collapse(parts);
}

static int put_user(struct conv *cv, const json_t *content, size_t i)
{
    json_t *parts, *b, *p;
    size_t k;

    if (json_is_string(content)) {
        json_array_append_new(cv->msgs,
                              json_pack("{s:s, s:O}", "role", "user", "content", content));
        return 0;
    }
    parts = json_array();
    json_array_foreach (content, k, b) {
        const char *type = api_str(b, "type");

        if (api_streq(type, "tool_result")) {
            const char *id = api_str(b, "tool_use_id");
            json_t *c;

            if (id == NULL) {
                json_decref(parts);
                return api_fail(cv->err, "messages", NULL,
                                "messages[%zu]: a tool_result needs a string 'tool_use_id'.", i);
            }
            if (json_object_get(cv->uses, id) == NULL) {
                json_decref(parts);
                return api_fail(cv->err, "messages", NULL,
                                "messages[%zu]: tool_result for '%.64s', which no earlier "
                                "tool_use block made.",
                                i, id);
            }
            if (json_object_get(cv->results, id))
                continue; /* one result per call */
            if ((c = result_to_chat(json_object_get(b, "content"), parts, i, cv->err)) == NULL) {
                json_decref(parts);
                return -1;
            }
            json_object_set_new(cv->results, id, json_true());
            json_array_append_new(cv->msgs, json_pack("{s:s, s:s, s:o}", "role", "tool",
                                                      "tool_call_id", id, "content", c));
            continue;
        }
        if (api_streq(type, "text"))
            p = text_to_chat(b, i, cv->err);
        else if (api_streq(type, "image"))
            p = image_to_chat(b, i, cv->err);
        else
            p = (api_fail(cv->err, "messages", "unsupported_value",
                          "messages[%zu]: content blocks of type '%.32s' are not supported.", i,
                          type ? type : "(no type)"),
                 NULL);
        if (p == NULL) {
            json_decref(parts);
            return -1;
        }
        json_array_append_new(parts, p);
    }
    if (json_array_size(parts) == 0) {
        json_decref(parts); /* only tool results */
        return 0;
    }
    json_array_append_new(cv->msgs,
                          json_pack("{s:s, s:o}", "role", "user", "content", api_collapse(parts)));
    return 0;
}

static int put_assistant(struct conv *cv, const json_t *content, size_t i)
{
    json_t *parts, *calls, *b, *m;
    size_t k;

    if (json_is_string(content)) {
        json_array_append_new(cv->msgs,
                              json_pack("{s:s, s:O}", "role", "assistant", "content", content));
        return 0;
    }
    parts = json_array();
    calls = json_array();
    json_array_foreach (content, k, b) {
        const char *type = api_str(b, "type");

        if (api_streq(type, "text")) {
            json_t *p = text_to_chat(b, i, cv->err);

            if (p == NULL)
                goto fail;
            json_array_append_new(parts, p);
        } else if (api_streq(type, "tool_use")) {
            const char *id = api_str(b, "id");
            json_t *name = json_object_get(b, "name"), *input = json_object_get(b, "input");
            char *args;

            if (id == NULL || !json_is_string(name) || input == NULL) {
                api_fail(cv->err, "messages", NULL,
                         "messages[%zu]: a tool_use needs 'id', 'name' and 'input'.", i);
                goto fail;
            }
            if (json_object_get(cv->uses, id)) {
                api_fail(cv->err, "messages", NULL,
                         "messages[%zu]: tool_use ids must be unique ('%.64s' is used twice).", i,
                         id);
                goto fail;
            }
            json_object_set_new(cv->uses, id, json_true());
            args = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
            if (args == NULL)
                sl_panic("json_dumps: out of memory");
            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id, "type",
                                                   "function", "function", "name", name,
                                                   "arguments", args));
            free(args);
        } else if (!api_streq(type, "thinking") && !api_streq(type, "redacted_thinking")) {
            api_fail(cv->err, "messages", "unsupported_value",
                     "messages[%zu]: content blocks of type '%.32s' are not supported.", i,
                     type ? type : "(no type)");
            goto fail;
        }
    }
    if (json_array_size(parts) == 0 && json_array_size(calls) == 0) {
        json_decref(parts); /* only thinking: nothing a chat model takes */
        json_decref(calls);
        return 0;
    }
    m = json_pack("{s:s, s:o}", "role", "assistant", "content",
                  json_array_size(parts) ? api_collapse(json_incref(parts)) : json_null());
    if (json_array_size(calls))
        json_object_set(m, "tool_calls", calls);
    json_array_append_new(cv->msgs, m);
    json_decref(parts);
    json_decref(calls);
    return 0;
fail:
    json_decref(parts);
    json_decref(calls);
    return -1;
}

static int put_messages(struct conv *cv, const json_t *msgs)
{
    json_t *m;
    size_t i;

    if (!json_is_array(msgs))
        return api_fail(cv->err, "messages", NULL,
                        msgs ? "Invalid type for 'messages': expected an array."
                             : "messages: Field required");
    if (json_array_size(msgs) == 0)
        return api_fail(cv->err, "messages", NULL, "messages: at least one message is required");
    json_array_foreach (msgs, i, m) {
        const char *role = api_str(m, "role");
        json_t *content = json_object_get(m, "content");
        int r;

        if (!json_is_string(content) && !json_is_array(content))
            return api_fail(cv->err, "messages", NULL,
                            "messages[%zu]: 'content' must be a string or an array of blocks.", i);
        if (api_streq(role, "user"))
            r = put_user(cv, content, i);
        else if (api_streq(role, "assistant"))
            r = put_assistant(cv, content, i);
        else
            r = api_fail(cv->err, "messages", NULL,
                         "messages[%zu]: 'role' must be \"user\" or \"assistant\".", i);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int put_system(struct conv *cv, const json_t *sys)
{
    json_t *parts, *b, *p;
    size_t i;

    if (sys == NULL || json_is_null(sys))
        return 0;
    if (json_is_string(sys)) {
        if (json_string_length(sys))
            json_array_append_new(cv->msgs,
                                  json_pack("{s:s, s:O}", "role", "system", "content", sys));
        return 0;
    }
    if (!json_is_array(sys))
        return api_fail(cv->err, "system", NULL,
                        "Invalid type for 'system': expected a string or an array of text blocks.");
    parts = json_array();
    json_array_foreach (sys, i, b) {
        if (!api_streq(api_str(b, "type"), "text") || (p = text_to_chat(b, i, cv->err)) == NULL) {
            json_decref(parts);
            return api_fail(cv->err, "system", NULL, "system[%zu]: expected a text block.", i);
        }
        if (json_string_length(json_object_get(p, "text")) == 0)
            json_decref(p); /* as an empty system string: nothing to say */
        else
            json_array_append_new(parts, p);
    }
    if (json_array_size(parts))
        json_array_append_new(
            cv->msgs, json_pack("{s:s, s:o}", "role", "system", "content", api_collapse(parts)));
    else
        json_decref(parts);
    return 0;
}

static json_t *tools_to_chat(const json_t *tools, struct api_error *err)
{
    json_t *out = json_array(), *t;
    size_t i;

    json_array_foreach (tools, i, t) {
        const char *type = api_str(t, "type");
        json_t *fn;

        if (type && !api_streq(type, "custom")) {
            json_decref(out);
            api_fail(err, "tools", "unsupported_value",
                     "tools[%zu]: server tools such as '%.40s' are not supported; sluice serves "
                     "client tools (name, description, input_schema).",
                     i, type);
            return NULL;
        }
        if (!json_is_string(json_object_get(t, "name")) ||
            !json_is_object(json_object_get(t, "input_schema"))) {
            json_decref(out);
            api_fail(err, "tools", NULL,
                     "tools[%zu]: a tool needs a string 'name' and an object "
                     "'input_schema'.",
                     i);
            return NULL;
        }
        fn = json_object();
        api_copy(fn, "name", t, "name");
        api_copy(fn, "description", t, "description");
        api_copy(fn, "parameters", t, "input_schema");
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

static int tool_choice_to_chat(const json_t *tc, json_t *chat, struct api_error *err)
{
    const char *type = api_str(tc, "type");
    json_t *v;

    if (tc == NULL || json_is_null(tc))
        return 0;
    if (api_streq(type, "auto"))
        v = json_string("auto");
    else if (api_streq(type, "any"))
        v = json_string("required");
    else if (api_streq(type, "none"))
        v = json_string("none");
    else if (api_streq(type, "tool") && api_str(tc, "name"))
        v = json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name",
                      json_object_get(tc, "name"));
    else
        return api_fail(err, "tool_choice", NULL,
                        "'tool_choice' must be {\"type\": \"auto\"}, \"any\", \"none\" or "
                        "{\"type\": \"tool\", \"name\": ...}.");
    json_object_set_new(chat, "tool_choice", v);
    if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
        json_object_set_new(chat, "parallel_tool_calls", json_false());
    return 0;
}

static int settings_to_chat(const json_t *req, json_t *chat, int count_only, struct api_error *err)
{
    json_t *v, *x;
    size_t i;

    if (api_check(req, "temperature", JSON_REAL, "a number", err) < 0 ||
        api_check(req, "top_p", JSON_REAL, "a number", err) < 0 ||
        api_check(req, "top_k", JSON_INTEGER, "an integer", err) < 0 ||
        api_check(req, "stream", JSON_TRUE, "a boolean", err) < 0 ||
        api_check(req, "metadata", JSON_OBJECT, "an object", err) < 0 ||
        api_check(req, "stop_sequences", JSON_ARRAY, "an array of strings", err) < 0 ||
        api_check(req, "tools", JSON_ARRAY, "an array", err) < 0 ||
        api_check(req, "tool_choice", JSON_OBJECT, "an object", err) < 0)
        return -1;
    v = json_object_get(req, "max_tokens");
    if (!count_only) {
        if (v == NULL || json_is_null(v))
            return api_fail(err, "max_tokens", NULL, "max_tokens: Field required");
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return api_fail(err, "max_tokens", NULL,
                            "max_tokens: Input should be an integer of at least 1");
        json_object_set(chat, "max_tokens", v);
    }
    v = json_object_get(req, "tools");
    if (json_array_size(v)) {
        if ((x = tools_to_chat(v, err)) == NULL)
            return -1;
        json_object_set_new(chat, "tools", x);
        if (tool_choice_to_chat(json_object_get(req, "tool_choice"), chat, err) < 0)
            return -1;
    }
    v = json_object_get(req, "stop_sequences");
    json_array_foreach (v, i, x) {
        if (!json_is_string(x))
            return api_fail(err, "stop_sequences", NULL,
                            "Invalid type for 'stop_sequences': expected an array of strings.");
    }
    if (json_array_size(v))
        json_object_set(chat, "stop", v);
    api_copy(chat, "temperature", req, "temperature");
    api_copy(chat, "top_p", req, "top_p");
    v = json_object_get(json_object_get(req, "metadata"), "user_id");
    if (json_is_string(v))
        json_object_set(chat, "user", v);
    if (!count_only && json_is_true(json_object_get(req, "stream"))) {
        json_object_set_new(chat, "stream", json_true());
        json_object_set_new(chat, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return 0;
}

json_t *messages_request_to_chat(const json_t *req, int count_only, struct api_error *err)
{
    struct conv cv = {.err = err};
    json_t *chat = NULL, *model;

    if (!json_is_object(req)) {
        api_fail(err, NULL, NULL, "The request body must be a JSON object.");
        return NULL;
    }
    model = json_object_get(req, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        api_fail(err, "model", NULL, "model: Field required");
        return NULL;
    }
    cv.msgs = json_array();
    cv.uses = json_object();
    cv.results = json_object();
    if (put_system(&cv, json_object_get(req, "system")) < 0 ||
        put_messages(&cv, json_object_get(req, "messages")) < 0)
        goto out;
    /* A system prompt alone is no conversation (turns of thinking blocks
     * only leave nothing): Messages wants a turn, and its inverse would
     * have none. */
    if (json_array_size(cv.msgs) ==
        (api_streq(api_str(json_array_get(cv.msgs, 0), "role"), "system") ? 1u : 0u)) {
        api_fail(err, "messages", NULL, "messages: no message holds anything a model can read");
        goto out;
    }
    chat = json_pack("{s:O, s:O}", "model", model, "messages", cv.msgs);
    if (settings_to_chat(req, chat, count_only, err) < 0) {
        json_decref(chat);
        chat = NULL;
    }
out:
    json_decref(cv.msgs);
    json_decref(cv.uses);
    json_decref(cv.results);
    return chat;
}

/* ---- the answer: chat -> messages ---- */

/* The stop reason for a chat finish_reason; seq: the choice's stop_reason
 * (vLLM's, and an Anthropic-type provider's: the stop sequence that ended
 * the answer), which makes a "stop" Anthropic's stop_sequence. */
static const char *stop_reason(const char *finish, const json_t *seq)
{
    if (api_streq(finish, "stop") && json_is_string(seq))
        return "stop_sequence";
    if (api_streq(finish, "length"))
        return "max_tokens";
    if (api_streq(finish, "tool_calls") || api_streq(finish, "function_call"))
        return "tool_use";
    if (api_streq(finish, "content_filter"))
        return "refusal";
    return "end_turn";
}

/* Anthropic's usage from the chat form's: its input_tokens leave out what
 * was read from the prompt cache and what was written to it, which it
 * reports apart (prompt_tokens counts them all: cached_tokens, and
 * cache_write_tokens where an Anthropic-type provider answered). With no
 * usage, the estimates given (a stream cut short of its usage chunk). */
static json_t *usage_from_chat(const json_t *u, long est_in, long est_out)
{
    json_t *d = json_object_get(u, "prompt_tokens_details");
    json_int_t pt = est_in, ct = est_out, read = 0, write = 0;

    if (json_is_object(u)) {
        pt = json_integer_value(json_object_get(u, "prompt_tokens"));
        ct = json_integer_value(json_object_get(u, "completion_tokens"));
        read = json_integer_value(json_object_get(d, "cached_tokens"));
        write = json_integer_value(json_object_get(d, "cache_write_tokens"));
        if (read < 0 || read > pt)
            read = 0;
        if (write < 0 || write > pt - read)
            write = 0;
    }
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", pt - read - write,
                     "cache_creation_input_tokens", write, "cache_read_input_tokens", read,
                     "output_tokens", ct);
}

/* A tool call's arguments as the tool_use input: the JSON they hold; text
 * that is not JSON stays a string, so nothing is lost. */
static json_t *input_of(const char *args, size_t len)
{
    json_t *v;

    if (len == 0)
        return json_object();
    v = json_loadb(args, len, JSON_DECODE_ANY, NULL);
    return v ? v : json_stringn(args, len);
}

json_t *messages_answer_from_chat(const json_t *chat, const char *id)
{
    json_t *c0 = json_array_get(json_object_get(chat, "choices"), 0);
    json_t *msg = json_object_get(c0, "message"), *content, *text, *tc, *seq;
    const char *finish, *why;
    size_t i;

    if (!json_is_object(chat))
        return NULL;
    content = json_array();
    text = api_content_text(json_object_get(msg, "content"));
    if (!(json_is_string(text) && json_string_length(text))) {
        json_decref(text); /* a refusal is what there is to say */
        text = json_incref(json_object_get(msg, "refusal"));
    }
    if (json_is_string(text) && json_string_length(text))
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text", text));
    json_decref(text);
    json_array_foreach (json_object_get(msg, "tool_calls"), i, tc) {
        json_t *fn = json_object_get(tc, "function"), *args = json_object_get(fn, "arguments");

        json_array_append_new(
            content, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id",
                               api_str(tc, "id") ? api_str(tc, "id") : "", "name",
                               api_str(fn, "name") ? api_str(fn, "name") : "", "input",
                               input_of(json_is_string(args) ? json_string_value(args) : "",
                                        json_is_string(args) ? json_string_length(args) : 0)));
    }
    finish = api_str(c0, "finish_reason");
    seq = json_object_get(c0, "stop_reason");
    why = stop_reason(finish, seq);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:O, s:o}", "id", id, "type", "message",
                     "role", "assistant", "model",
                     api_str(chat, "model") ? api_str(chat, "model") : "", "content", content,
                     "stop_reason", why, "stop_sequence",
                     api_streq(why, "stop_sequence") ? seq : json_null(), "usage",
                     usage_from_chat(json_object_get(chat, "usage"), 0, 0));
}

/* ---- the stream ---- */

struct ms_tool {
    json_int_t chat_index;
    int block;
};

struct messages_stream {
    char id[96];
    long input_tokens;
    int started, finished, pinged;
    int next_block;
    int open;      /* the open block, or -1 */
    int text_open; /* the open block is text */
    struct ms_tool tools[DIALECT_TOOLS_MAX];
    size_t ntools;
    size_t chars; /* of text and arguments, for a usage estimate */
    json_t *usage;
    char finish[32];
    json_t *stop_seq; /* the choice's stop_reason: the stop sequence that ended it */
};

struct messages_stream *messages_stream_new(const char *id, long input_tokens)
{
    struct messages_stream *s = xcalloc(1, sizeof(*s));

    snprintf(s->id, sizeof(s->id), "%s", id);
    s->input_tokens = input_tokens > 0 ? input_tokens : 1;
    s->open = -1;
    s->usage = json_null();
    return s;
}

void messages_stream_free(struct messages_stream *s)
{
    if (s == NULL)
        return;
    json_decref(s->usage);
    json_decref(s->stop_seq);
    free(s);
}

static int emit(struct buf *out, json_t *ev)
{
    int r = api_write_event(out, api_str(ev, "type"), ev);

    json_decref(ev);
    return r;
}

int messages_stream_ping(struct messages_stream *s, struct buf *out)
{
    UNUSED(s);
    return emit(out, json_pack("{s:s}", "type", "ping"));
}

static int stream_start(struct messages_stream *s, const json_t *chunk, struct buf *out)
{
    const char *model = api_str(chunk, "model");

    if (s->started)
        return 0;
    s->started = 1;
    /* The prompt's tokens are known only at the end; until then an
     * estimate, never 0 (LiteLLM #24176). */
    return emit(out, json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:I, s:I, s:I, "
                               "s:I}}}",
                               "type", "message_start", "message", "id", s->id, "type", "message",
                               "role", "assistant", "model", model ? model : "", "content",
                               "stop_reason", "stop_sequence", "usage", "input_tokens",
                               (json_int_t)s->input_tokens, "cache_creation_input_tokens",
                               (json_int_t)0, "cache_read_input_tokens", (json_int_t)0,
                               "output_tokens", (json_int_t)1));
}

static int block_stop(struct messages_stream *s, struct buf *out)
{
    int b = s->open;

    if (b < 0)
        return 0;
    s->open = -1;
    s->text_open = 0;
    return emit(out, json_pack("{s:s, s:i}", "type", "content_block_stop", "index", b));
}

/* Start block content_block (taken): the open one is stopped first. */
static int block_start(struct messages_stream *s, struct buf *out, json_t *content_block)
{
    if (block_stop(s, out) < 0) {
        json_decref(content_block);
        return -1;
    }
    s->open = s->next_block++;
    if (emit(out, json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", s->open,
                            "content_block", content_block)) < 0)
        return -1;
    if (!s->pinged) {
        s->pinged = 1; /* where Anthropic sends its first */
        return messages_stream_ping(s, out);
    }
    return 0;
}

static int text_delta(struct messages_stream *s, struct buf *out, const json_t *t)
{
    if (!s->text_open) {
        if (block_start(s, out, json_pack("{s:s, s:s}", "type", "text", "text", "")) < 0)
            return -1;
        s->text_open = 1;
    }
    s->chars += json_string_length(t);
    return emit(out, json_pack("{s:s, s:i, s:{s:s, s:O}}", "type", "content_block_delta", "index",
                               s->open, "delta", "type", "text_delta", "text", t));
}

/* A tool call's delta: its block starts with its first (stopping the open
 * block); the arguments follow as input_json_delta, addressed to the
 * call's own block whatever block is open, so that calls interleaved by
 * the upstream land where they belong (Portkey #1275). */
static int tool_delta(struct messages_stream *s, struct buf *out, const json_t *tc, size_t pos)
{
    json_t *idx = json_object_get(tc, "index"), *fn = json_object_get(tc, "function");
    json_t *args = json_object_get(fn, "arguments");
    json_int_t ci = json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)pos;
    struct ms_tool *t = NULL;

    for (size_t i = 0; i < s->ntools; i++)
        if (s->tools[i].chat_index == ci)
            t = &s->tools[i];
    if (t == NULL) {
        const char *id = api_str(tc, "id"), *name = api_str(fn, "name");
        char gen[128];

        if (s->ntools == DIALECT_TOOLS_MAX)
            return -1;
        if (id == NULL) {
            snprintf(gen, sizeof(gen), "toolu_%.80s_%zu", s->id, s->ntools);
            id = gen;
        }
        if (block_start(s, out,
                        json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id", id, "name",
                                  name ? name : "", "input")) < 0)
            return -1;
        t = &s->tools[s->ntools++];
        t->chat_index = ci;
        t->block = s->open;
    }
    if (!json_is_string(args) || json_string_length(args) == 0)
        return 0;
    s->chars += json_string_length(args);
    return emit(out,
                json_pack("{s:s, s:i, s:{s:s, s:O}}", "type", "content_block_delta", "index",
                          t->block, "delta", "type", "input_json_delta", "partial_json", args));
}

int messages_stream_chunk(struct messages_stream *s, const json_t *chunk, struct buf *out)
{
    const json_t *c0;
    json_t *delta, *v, *tc;
    size_t i;

    if (s->finished)
        return 0;
    if (stream_start(s, chunk, out) < 0)
        return -1;
    if ((c0 = api_chunk_choice(chunk, &s->usage, s->finish, sizeof(s->finish))) == NULL)
        return 0;
    if (json_is_string(v = json_object_get(c0, "stop_reason"))) {
        json_decref(s->stop_seq);
        s->stop_seq = json_incref(v);
    }
    delta = json_object_get(c0, "delta");
    v = json_object_get(delta, "content");
    if (!(json_is_string(v) && json_string_length(v)))
        v = json_object_get(delta, "refusal");
    if (json_is_string(v) && json_string_length(v) && text_delta(s, out, v) < 0)
        return -1;
    json_array_foreach (json_object_get(delta, "tool_calls"), i, tc) {
        if (tool_delta(s, out, tc, i) < 0)
            return -1;
    }
    return 0;
}

int messages_stream_done(struct messages_stream *s, struct buf *out)
{
    json_t *usage;
    const char *why;

    if (s->finished)
        return 0;
    s->finished = 1;
    if (stream_start(s, NULL, out) < 0 || block_stop(s, out) < 0)
        return -1;
    /* The whole usage, the real input count included: it replaces
     * message_start's estimate. */
    usage = usage_from_chat(s->usage, s->input_tokens, cost_tokens(s->chars));
    why = stop_reason(s->finish, s->stop_seq);
    if (emit(out, json_pack("{s:s, s:{s:s, s:O}, s:o}", "type", "message_delta", "delta",
                            "stop_reason", why, "stop_sequence",
                            api_streq(why, "stop_sequence") ? s->stop_seq : json_null(), "usage",
                            usage)) < 0)
        return -1;
    return emit(out, json_pack("{s:s}", "type", "message_stop"));
}

/* ---- the inverses ---- */

/* A chat content part as a Messages block. */
static json_t *block_from_part(const json_t *p)
{
    const char *url = api_str(json_object_get(p, "image_url"), "url");
    const char *semi, *comma;

    if (!api_streq(api_str(p, "type"), "image_url"))
        return json_pack("{s:s, s:O?}", "type", "text", "text", json_object_get(p, "text"));
    if (url && strncmp(url, "data:", 5) == 0 && (semi = strchr(url, ';')) &&
        (comma = strchr(semi, ',')) && strncmp(semi, ";base64,", 8) == 0)
        return json_pack("{s:s, s:{s:s, s:s%, s:s}}", "type", "image", "source", "type", "base64",
                         "media_type", url + 5, (size_t)(semi - url - 5), "data", comma + 1);
    return json_pack("{s:s, s:{s:s, s:s?}}", "type", "image", "source", "type", "url", "url", url);
}

static json_t *blocks_from_content(const json_t *c)
{
    json_t *blocks, *p;
    size_t i;

    if (json_is_string(c))
        return json_pack("[{s:s, s:O}]", "type", "text", "text", c);
    blocks = json_array();
    json_array_foreach (c, i, p)
        json_array_append_new(blocks, block_from_part(p));
    return blocks;
}

json_t *messages_request_from_chat(const json_t *chat)
{
    json_t *req = json_object(), *msgs = json_array(), *m, *user = NULL, *v, *t, *tc;
    size_t i, k;

    api_copy(req, "model", chat, "model");
    json_array_foreach (json_object_get(chat, "messages"), i, m) {
        const char *role = api_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (api_streq(role, "system")) {
            json_object_set_new(req, "system",
                                json_is_string(content) ? json_incref(content)
                                                        : blocks_from_content(content));
            continue;
        }
        if (api_streq(role, "tool") || api_streq(role, "user")) {
            /* Tool results and the user text after them are one user turn. */
            if (user == NULL) {
                user = json_array();
                json_array_append_new(msgs,
                                      json_pack("{s:s, s:O}", "role", "user", "content", user));
                json_decref(user);
            }
            if (api_streq(role, "tool")) {
                json_array_append_new(
                    user, json_pack("{s:s, s:O, s:O}", "type", "tool_result", "tool_use_id",
                                    json_object_get(m, "tool_call_id"), "content", content));
            } else {
                json_t *blocks = blocks_from_content(content);

                json_array_extend(user, blocks);
                json_decref(blocks);
                user = NULL; /* a user message ends the turn */
            }
            continue;
        }
        user = NULL;
        v = json_is_null(content) || content == NULL ? json_array() : blocks_from_content(content);
        json_array_foreach (json_object_get(m, "tool_calls"), k, tc) {
            json_t *fn = json_object_get(tc, "function");
            const char *args = api_str(fn, "arguments");

            json_array_append_new(
                v, json_pack("{s:s, s:O, s:O, s:o}", "type", "tool_use", "id",
                             json_object_get(tc, "id"), "name", json_object_get(fn, "name"),
                             "input", input_of(args ? args : "", args ? strlen(args) : 0)));
        }
        json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "assistant", "content", v));
    }
    json_object_set_new(req, "messages", msgs);
    api_copy(req, "max_tokens", chat, "max_tokens");
    api_copy(req, "temperature", chat, "temperature");
    api_copy(req, "top_p", chat, "top_p");
    api_copy(req, "stop_sequences", chat, "stop");
    api_copy(req, "stream", chat, "stream");
    if (api_str(chat, "user"))
        json_object_set_new(req, "metadata", json_pack("{s:s}", "user_id", api_str(chat, "user")));
    v = json_object_get(chat, "tools");
    if (json_is_array(v)) {
        json_t *tools = json_array(), *choice = json_object_get(chat, "tool_choice"), *tcv;

        json_array_foreach (v, i, t) {
            json_t *fn = json_object_get(t, "function"), *x = json_object();

            api_copy(x, "name", fn, "name");
            api_copy(x, "description", fn, "description");
            api_copy(x, "input_schema", fn, "parameters");
            json_array_append_new(tools, x);
        }
        json_object_set_new(req, "tools", tools);
        if (api_streq(json_string_value(choice), "required"))
            tcv = json_pack("{s:s}", "type", "any");
        else if (json_is_string(choice))
            tcv = json_pack("{s:s}", "type", json_string_value(choice));
        else if (json_is_object(choice))
            tcv = json_pack("{s:s, s:O?}", "type", "tool", "name",
                            json_object_get(json_object_get(choice, "function"), "name"));
        else
            tcv = json_is_false(json_object_get(chat, "parallel_tool_calls"))
                      ? json_pack("{s:s}", "type", "auto")
                      : NULL;
        if (tcv && json_is_false(json_object_get(chat, "parallel_tool_calls")))
            json_object_set_new(tcv, "disable_parallel_tool_use", json_true());
        if (tcv)
            json_object_set_new(req, "tool_choice", tcv);
    }
    return req;
}

json_t *messages_answer_to_chat(const json_t *msg)
{
    json_t *m = json_pack("{s:s, s:n}", "role", "assistant", "content"), *calls = json_array();
    json_t *b, *u = json_object_get(msg, "usage"), *seq;
    const char *sr = api_str(msg, "stop_reason"), *finish = "stop";
    json_int_t in, read, write, out;
    struct buf text;
    int has_text = 0;
    size_t i;

    buf_init(&text, DIALECT_ANSWER_MAX);
    json_array_foreach (json_object_get(msg, "content"), i, b) {
        if (api_streq(api_str(b, "type"), "text")) {
            has_text = 1;
            if (buf_puts(&text, api_str(b, "text") ? api_str(b, "text") : "") < 0)
                break;
        } else if (api_streq(api_str(b, "type"), "tool_use")) {
            /* As JSON whatever it is: a string input (arguments that were
             * not JSON) comes back as that string. */
            char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT | JSON_ENCODE_ANY);

            json_array_append_new(calls, json_pack("{s:O, s:s, s:{s:O, s:s}}", "id",
                                                   json_object_get(b, "id"), "type", "function",
                                                   "function", "name", json_object_get(b, "name"),
                                                   "arguments", args ? args : "{}"));
            free(args);
        }
    }
    if (has_text)
        json_object_set_new(m, "content", json_stringn(text.data ? text.data : "", text.len));
    buf_free(&text);
    if (json_array_size(calls))
        json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    if (api_streq(sr, "max_tokens"))
        finish = "length";
    else if (api_streq(sr, "tool_use"))
        finish = "tool_calls";
    else if (api_streq(sr, "refusal"))
        finish = "content_filter";
    in = json_integer_value(json_object_get(u, "input_tokens"));
    read = json_integer_value(json_object_get(u, "cache_read_input_tokens"));
    write = json_integer_value(json_object_get(u, "cache_creation_input_tokens"));
    out = json_integer_value(json_object_get(u, "output_tokens"));
    seq = api_streq(sr, "stop_sequence") && json_is_string(json_object_get(msg, "stop_sequence"))
              ? json_object_get(msg, "stop_sequence")
              : NULL;
    return json_pack("{s:O, s:s, s:O, s:[{s:i, s:o, s:s, s:O*}], s:{s:I, s:I, s:I, s:{s:I, "
                     "s:I}}}",
                     "id", json_object_get(msg, "id"), "object", "chat.completion", "model",
                     json_object_get(msg, "model"), "choices", "index", 0, "message", m,
                     "finish_reason", finish, "stop_reason", seq, "usage", "prompt_tokens",
                     in + read + write, "completion_tokens", out, "total_tokens",
                     in + read + write + out, "prompt_tokens_details", "cached_tokens", read,
                     "cache_write_tokens", write);
}
