/* provider_anthropic.c - Anthropic Messages API upstreams (type =
 * "anthropic"); see provider.h.
 *
 * A chat completions request becomes POST {base_url}/messages; the answer,
 * whole or streamed, becomes the chat.completion (or chunks) an OpenAI
 * client expects, so everything after the call (scorers, the cache, costs,
 * the relay) sees the internal form. The translators are pure functions of
 * their input and are fuzzed (tests/fuzz/fuzz_anthropic.c).
 *
 * Requests:
 *  - system and developer messages are lifted into `system`, in order,
 *    wherever they stood (Messages has no system turns);
 *  - user and assistant turns keep their order; consecutive turns of one
 *    role are merged, since Messages wants the roles to alternate;
 *  - tool messages become tool_result blocks of a user turn, before its
 *    other blocks (Messages wants them first), one per tool_call_id: a
 *    second result for one id is appended to the first rather than sent
 *    twice, which Messages refuses (LiteLLM #16711);
 *  - assistant tool_calls become tool_use blocks with their ids and their
 *    arguments parsed; image_url parts become image blocks (data: URLs as
 *    base64 sources); empty text is left out (Messages refuses it);
 *  - tools, tool_choice (required -> any, a named function -> tool) and
 *    parallel_tool_calls: false (disable_parallel_tool_use), stop ->
 *    stop_sequences, max_completion_tokens or max_tokens (else the
 *    configured default: Messages requires one), temperature, top_p, user
 *    -> metadata.user_id;
 *  - what Messages cannot do is refused with a 400 naming the parameter
 *    (n > 1, logprobs, JSON response formats, audio, legacy functions);
 *    OpenAI-only tuning with no effect on the meaning (penalties, seed,
 *    logit_bias, store, ...) is dropped; any other member is passed on as
 *    written, so Anthropic-only parameters (top_k, thinking) go through an
 *    OpenAI SDK's extra_body.
 *
 * Answers: the text blocks joined are the content; tool_use blocks are
 * tool_calls (arguments as JSON text); thinking blocks are left out; stop
 * reasons map to finish reasons (end_turn, stop_sequence -> stop,
 * max_tokens -> length, tool_use -> tool_calls, refusal -> content_filter),
 * and the stop sequence that ended the answer is the choice's
 * "stop_reason", as vLLM's OpenAI-compatible server writes it (an
 * Anthropic client in front gets it back as stop_sequence);
 * usage is reported the OpenAI way: prompt_tokens counts the cached tokens
 * too (Anthropic's input_tokens does not), with
 * prompt_tokens_details.cached_tokens (read) and .cache_write_tokens
 * (written), so costs, logs and clients see one convention.
 *
 * Streams: see the comment above anthropic_stream_event.
 */
#include "api_common.h"
#include "caps.h"
#include "jscan.h"
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ---- */

/* The error code of every request this provider cannot send (api_fail). */
#define UNSUPPORTED "unsupported_by_provider"

/* The Messages list as it is built: one open turn at a time. */
struct turns {
    json_t *messages;
    const char *role; /* of the open turn, or NULL */
    json_t *results;  /* its tool_result blocks, which go first */
    json_t *blocks;   /* its other blocks */
};

/* Close the open turn; a turn with no blocks is not sent. */
static void turns_flush(struct turns *t)
{
    if (t->role == NULL)
        return;
    json_array_extend(t->results, t->blocks);
    if (json_array_size(t->results) > 0)
        json_array_append_new(t->messages,
                              json_pack("{s:s,s:O}", "role", t->role, "content", t->results));
    json_decref(t->results);
    json_decref(t->blocks);
    t->role = NULL;
    t->results = t->blocks = NULL;
}

/* Open a turn of role (a static string), or stay in the open one if it has
 * that role. An open turn that is still empty is dropped, and if the turn
 * sent before it has this role, that one is opened again: the turns around
 * an empty one are one turn (roles must alternate). */
static void turns_open(struct turns *t, const char *role)
{
    size_t n, i;
    json_t *last, *b;

    if (t->role && strcmp(t->role, role) == 0)
        return;
    if (t->role && json_array_size(t->results) + json_array_size(t->blocks) == 0) {
        json_decref(t->results);
        json_decref(t->blocks);
        t->role = NULL;
    }
    turns_flush(t);
    t->role = role;
    t->results = json_array();
    t->blocks = json_array();
    n = json_array_size(t->messages);
    last = n ? json_array_get(t->messages, n - 1) : NULL;
    if (last == NULL || strcmp(json_string_value(json_object_get(last, "role")), role) != 0)
        return;
    json_array_foreach (json_object_get(last, "content"), i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        int result = type && strcmp(type, "tool_result") == 0 && json_array_size(t->blocks) == 0;

        json_array_append(result ? t->results : t->blocks, b);
    }
    json_array_remove(t->messages, n - 1);
}

/* A text block, with the part's cache_control when it has one (clients of
 * Anthropic models send it on OpenAI-shaped parts too). NULL for "". */
static json_t *text_block(const json_t *text, const json_t *part)
{
    json_t *b, *cc = json_object_get(part, "cache_control");

    if (json_string_length(text) == 0)
        return NULL;
    b = json_pack("{s:s,s:O}", "type", "text", "text", text);
    if (json_is_object(cc))
        json_object_set(b, "cache_control", cc);
    return b;
}

/* An image_url part as an image block: a data: URL becomes a base64 source,
 * an http(s) URL a url source. NULL for anything else. */
static json_t *image_block(const json_t *part)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url =
        json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    const char *semi;

    if (url == NULL)
        return NULL;
    if (strncmp(url, "data:", 5) == 0) {
        semi = strstr(url, ";base64,");
        if (semi == NULL || semi == url + 5)
            return NULL;
        return json_pack("{s:s,s:{s:s,s:s%,s:s}}", "type", "image", "source", "type", "base64",
                         "media_type", url + 5, (size_t)(semi - (url + 5)), "data", semi + 8);
    }
    if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)
        return json_pack("{s:s,s:{s:s,s:s}}", "type", "image", "source", "type", "url", "url", url);
    return NULL;
}

/* Append the blocks of a message's content (a string, null, or an array of
 * parts) to blocks. Text and refusal parts are text; image_url parts are
 * images when images is set. Returns 0, or -1 with err. */
static int content_blocks(const json_t *content, json_t *blocks, int images, size_t mi,
                          struct api_error *err)
{
    const json_t *part;
    size_t i;

    if (json_is_string(content)) {
        json_t *b = text_block(content, NULL);

        if (b)
            json_array_append_new(blocks, b);
        return 0;
    }
    json_array_foreach ((json_t *)content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *b = NULL, *text;

        if (type == NULL)
            return api_fail(err, "messages", UNSUPPORTED,
                            "messages[%zu].content[%zu] has no string 'type'.", mi, i);
        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            text = json_object_get(part, type);
            if (!json_is_string(text))
                return api_fail(err, "messages", UNSUPPORTED,
                                "messages[%zu].content[%zu] has no string '%s'.", mi, i, type);
            b = text_block(text, part);
        } else if (images && strcmp(type, "image_url") == 0) {
            b = image_block(part);
            if (b == NULL)
                return api_fail(err, "messages", UNSUPPORTED,
                                "messages[%zu].content[%zu]: an image for an Anthropic model "
                                "must be a data:...;base64, URL or an http(s) URL.",
                                mi, i);
        } else {
            return api_fail(err, "messages", UNSUPPORTED,
                            "messages[%zu].content[%zu]: content of type '%.40s' cannot be sent "
                            "to an Anthropic model here.",
                            mi, i, type);
        }
        if (b)
            json_array_append_new(blocks, b);
    }
    return 0;
}

/* An assistant's tool_calls as tool_use blocks. */
static int tool_use_blocks(const json_t *calls, json_t *blocks, size_t mi, struct api_error *err)
{
    const json_t *c;
    size_t k;

    if (calls && !json_is_array(calls) && !json_is_null(calls))
        return api_fail(err, "messages", UNSUPPORTED, "messages[%zu].tool_calls must be an array.",
                        mi);
    json_array_foreach ((json_t *)calls, k, c) {
        json_t *fn = json_object_get(c, "function"), *id = json_object_get(c, "id");
        json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        json_t *input;

        if (!json_is_string(id) || !json_is_string(name))
            return api_fail(err, "messages", UNSUPPORTED,
                            "messages[%zu].tool_calls[%zu] needs a string 'id' and "
                            "function.name.",
                            mi, k);
        if (json_is_string(args) && json_string_length(args) > 0) {
            input = jscan_loadb(json_string_value(args), json_string_length(args), 0, NULL);
            if (!json_is_object(input)) {
                json_decref(input);
                return api_fail(err, "messages", UNSUPPORTED,
                                "messages[%zu].tool_calls[%zu].function.arguments must be a "
                                "JSON object for an Anthropic model.",
                                mi, k);
            }
        } else if (json_is_object(args)) {
            input = json_deep_copy(args);
        } else {
            input = json_object(); /* no arguments */
        }
        json_array_append_new(blocks, json_pack("{s:s,s:O,s:O,s:o}", "type", "tool_use", "id", id,
                                                "name", name, "input", input));
    }
    return 0;
}

/* A tool message as a tool_result block of the open user turn. */
static int tool_result(struct turns *t, const json_t *m, size_t mi, struct api_error *err)
{
    json_t *id = json_object_get(m, "tool_call_id"), *blocks, *res, *b;
    size_t i;

    if (!json_is_string(id))
        return api_fail(err, "messages", UNSUPPORTED,
                        "messages[%zu]: a tool message needs a 'tool_call_id'.", mi);
    blocks = json_array();
    if (content_blocks(json_object_get(m, "content"), blocks, 1, mi, err) < 0) {
        json_decref(blocks);
        return -1;
    }
    turns_open(t, "user");
    json_array_foreach (t->results, i, res) {
        if (json_equal(json_object_get(res, "tool_use_id"), id)) {
            /* A second result for one call: one block with both. */
            json_t *have = json_object_get(res, "content");

            if (have)
                json_array_extend(have, blocks);
            else if (json_array_size(blocks) > 0)
                json_object_set(res, "content", blocks);
            json_decref(blocks);
            return 0;
        }
    }
    b = json_pack("{s:s,s:O}", "type", "tool_result", "tool_use_id", id);
    if (json_array_size(blocks) > 0)
        json_object_set(b, "content", blocks);
    json_decref(blocks);
    json_array_append_new(t->results, b);
    return 0;
}

/* messages -> system and messages of req. */
static int messages_out(const json_t *msgs, json_t *req, struct api_error *err)
{
    struct turns t = {json_array(), NULL, NULL, NULL};
    json_t *system = json_array(), *m;
    size_t i;
    int rc = 0;

    json_array_foreach ((json_t *)msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");

        if (role == NULL) {
            rc = api_fail(err, "messages", UNSUPPORTED, "messages[%zu] has no string 'role'.", i);
        } else if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            rc = content_blocks(content, system, 0, i, err);
        } else if (strcmp(role, "user") == 0) {
            turns_open(&t, "user");
            rc = content_blocks(content, t.blocks, 1, i, err);
        } else if (strcmp(role, "assistant") == 0) {
            turns_open(&t, "assistant");
            rc = content_blocks(content, t.blocks, 0, i, err);
            if (rc == 0)
                rc = tool_use_blocks(json_object_get(m, "tool_calls"), t.blocks, i, err);
        } else if (strcmp(role, "tool") == 0) {
            rc = tool_result(&t, m, i, err);
        } else {
            rc = api_fail(err, "messages", UNSUPPORTED,
                          "messages[%zu]: role '%.20s' cannot be sent to an Anthropic model (use "
                          "tool messages).",
                          i, role);
        }
        if (rc < 0)
            break;
    }
    turns_flush(&t);
    if (rc == 0 && json_array_size(t.messages) == 0)
        rc = api_fail(err, "messages", UNSUPPORTED,
                      "An Anthropic model needs at least one user or assistant message with "
                      "content.");
    if (rc == 0) {
        json_object_set_new(req, "messages", json_incref(t.messages));
        if (json_array_size(system) > 0)
            json_object_set_new(req, "system", json_incref(system));
    }
    json_decref(t.messages);
    json_decref(system);
    return rc;
}

/* tools: function tools as Messages tools. */
static int tools_out(const json_t *tools, json_t *req, struct api_error *err)
{
    json_t *out, *t;
    size_t i;

    if (tools == NULL || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return api_fail(err, "tools", UNSUPPORTED, "'tools' must be an array.");
    out = json_array();
    json_array_foreach ((json_t *)tools, i, t) {
        json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
        json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description");
        json_t *params = json_object_get(fn, "parameters"),
               *cc = json_object_get(t, "cache_control");
        json_t *o;

        if ((type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0)) ||
            !json_is_string(name)) {
            json_decref(out);
            return api_fail(err, "tools", UNSUPPORTED,
                            "tools[%zu]: only function tools with a function.name can be sent to "
                            "an Anthropic model.",
                            i);
        }
        o = json_pack("{s:O}", "name", name);
        if (json_is_string(desc))
            json_object_set(o, "description", desc);
        json_object_set_new(o, "input_schema",
                            json_is_object(params)
                                ? json_incref(params)
                                : json_pack("{s:s,s:{}}", "type", "object", "properties"));
        if (json_is_object(cc))
            json_object_set(o, "cache_control", cc);
        json_array_append_new(out, o);
    }
    if (json_array_size(out) > 0)
        json_object_set(req, "tools", out);
    json_decref(out);
    return 0;
}

/* tool_choice and parallel_tool_calls. Without tools there is nothing to
 * choose, and nothing is sent. */
static int tool_choice_out(const json_t *chat, json_t *req, struct api_error *err)
{
    const json_t *tc = json_object_get(chat, "tool_choice");
    int serial = json_is_false(json_object_get(chat, "parallel_tool_calls"));
    const char *s = json_string_value(tc);
    json_t *o = NULL;

    if (tc == NULL || json_is_null(tc)) {
        if (serial)
            o = json_pack("{s:s}", "type", "auto");
    } else if (s && (strcmp(s, "auto") == 0 || strcmp(s, "none") == 0)) {
        o = json_pack("{s:s}", "type", s);
    } else if (s && strcmp(s, "required") == 0) {
        o = json_pack("{s:s}", "type", "any");
    } else if (json_is_object(tc) &&
               json_is_string(json_object_get(json_object_get(tc, "function"), "name"))) {
        o = json_pack("{s:s,s:O}", "type", "tool", "name",
                      json_object_get(json_object_get(tc, "function"), "name"));
    } else {
        return api_fail(err, "tool_choice", UNSUPPORTED,
                        "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                        "{\"type\":\"function\",\"function\":{\"name\":...}} for an Anthropic "
                        "model.");
    }
    if (o == NULL || json_object_get(req, "tools") == NULL) {
        json_decref(o);
        return 0;
    }
    if (serial && strcmp(json_string_value(json_object_get(o, "type")), "none") != 0)
        json_object_set_new(o, "disable_parallel_tool_use", json_true());
    json_object_set_new(req, "tool_choice", o);
    return 0;
}

/* OpenAI members with no Messages equivalent that change no meaning: left
 * out. (stream_options: the stream's usage always comes.) */
static const char *const dropped_keys[] = {
    "frequency_penalty", "presence_penalty", "logit_bias",         "seed",           "store",
    "metadata",          "service_tier",     "prediction",         "stream_options", "top_logprobs",
    "reasoning_effort",  "verbosity",        "web_search_options",
};

/* Members translated (or refused) by name. */
static const char *const mapped_keys[] = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "stream",
    "n",
    "logprobs",
    "response_format",
    "audio",
    "modalities",
    "functions",
    "function_call",
};

static int key_in(const char *k, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, keys[i]) == 0)
            return 1;
    return 0;
}

/* What the Messages API cannot do at all. */
static int refuse_unsupported(const json_t *chat, struct api_error *err)
{
    json_t *n = json_object_get(chat, "n"), *rf = json_object_get(chat, "response_format");
    const char *rft = json_string_value(json_object_get(rf, "type"));
    json_t *mods = json_object_get(chat, "modalities"), *v;
    size_t i;

    if (json_is_integer(n) && json_integer_value(n) != 1)
        return api_fail(err, "n", UNSUPPORTED,
                        "An Anthropic model gives one choice per call: 'n' must be 1.");
    if (json_is_true(json_object_get(chat, "logprobs")))
        return api_fail(err, "logprobs", UNSUPPORTED, "Anthropic models return no logprobs.");
    if (rf && !json_is_null(rf) && (rft == NULL || strcmp(rft, "text") != 0))
        return api_fail(err, "response_format", UNSUPPORTED,
                        "Anthropic models have no JSON response format: ask for JSON in the "
                        "prompt, or send JSON requests to an OpenAI-compatible model.");
    json_array_foreach (mods, i, v) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "text") != 0)
            return api_fail(err, "modalities", UNSUPPORTED,
                            "Anthropic models answer in text only.");
    }
    if (json_object_get(chat, "audio") && !json_is_null(json_object_get(chat, "audio")))
        return api_fail(err, "audio", UNSUPPORTED, "Anthropic models answer in text only.");
    if (json_object_get(chat, "functions") || json_object_get(chat, "function_call"))
        return api_fail(err, "functions", UNSUPPORTED,
                        "The legacy 'functions' are not translated for Anthropic models: use "
                        "'tools'.");
    return 0;
}

/* stop, temperature, top_p, user, and every member passed on as written. */
static int params_out(const json_t *chat, json_t *req, struct api_error *err)
{
    json_t *stop = json_object_get(chat, "stop"), *user = json_object_get(chat, "user"), *v;
    const char *k;
    size_t i;

    if (json_is_string(stop)) {
        json_object_set_new(req, "stop_sequences", json_pack("[O]", stop));
    } else if (json_is_array(stop)) {
        json_array_foreach (stop, i, v) {
            if (!json_is_string(v))
                return api_fail(err, "stop", UNSUPPORTED,
                                "'stop' must be a string or an array of strings.");
        }
        if (json_array_size(stop) > 0)
            json_object_set(req, "stop_sequences", stop);
    } else if (stop && !json_is_null(stop)) {
        return api_fail(err, "stop", UNSUPPORTED,
                        "'stop' must be a string or an array of strings.");
    }
    if (json_is_number(json_object_get(chat, "temperature")))
        json_object_set(req, "temperature", json_object_get(chat, "temperature"));
    if (json_is_number(json_object_get(chat, "top_p")))
        json_object_set(req, "top_p", json_object_get(chat, "top_p"));
    if (json_is_string(user))
        json_object_set_new(req, "metadata", json_pack("{s:O}", "user_id", user));
    json_object_foreach ((json_t *)chat, k, v) {
        if (!key_in(k, mapped_keys, ARRAY_LEN(mapped_keys)) &&
            !key_in(k, dropped_keys, ARRAY_LEN(dropped_keys)) && json_object_get(req, k) == NULL)
            json_object_set(req, k, v);
    }
    return 0;
}

int anthropic_request(const json_t *chat, const char *model_id, long max_tokens, int stream,
                      char **out, size_t *out_len, struct api_error *err)
{
    json_t *req, *mt;
    int rc = -1;

    if (!json_is_object(chat))
        return api_fail(err, NULL, UNSUPPORTED, "The request body must be a JSON object.");
    if (!json_is_array(json_object_get(chat, "messages")))
        return api_fail(err, "messages", UNSUPPORTED, "'messages' must be an array.");
    if (refuse_unsupported(chat, err) < 0)
        return -1;
    mt = json_object_get(chat, "max_completion_tokens");
    if (!json_is_integer(mt))
        mt = json_object_get(chat, "max_tokens");
    req = json_object();
    json_object_set_new(req, "model", json_string(model_id));
    json_object_set_new(req, "max_tokens",
                        json_is_integer(mt) ? json_incref(mt) : json_integer(max_tokens));
    if (messages_out(json_object_get(chat, "messages"), req, err) < 0 ||
        tools_out(json_object_get(chat, "tools"), req, err) < 0 ||
        tool_choice_out(chat, req, err) < 0 || params_out(chat, req, err) < 0)
        goto out;
    if (stream)
        json_object_set_new(req, "stream", json_true());
    *out = json_dumps(req, JSON_COMPACT);
    if (*out == NULL) {
        api_fail(err, NULL, UNSUPPORTED,
                 "The request could not be encoded for an Anthropic model.");
        goto out;
    }
    *out_len = strlen(*out);
    rc = 0;
out:
    json_decref(req);
    return rc;
}

int anthropic_build(const struct model *m, enum endpoint ep, const json_t *body, int stream,
                    const char *client_auth, struct call_spec *spec, struct api_error *err)
{
    const struct provider *p = m->provider;
    long max_tokens = m->default_max_tokens > 0 ? m->default_max_tokens : p->default_max_tokens;
    struct curl_slist *h;
    char *text;
    size_t len;

    if (ep != EP_CHAT) {
        api_error_set(err, 400, "invalid_request_error", UNSUPPORTED, NULL,
                      "Model '%s' is served by an Anthropic provider, which answers only chat "
                      "completions.",
                      m->name);
        return -1;
    }
    if (anthropic_request(body, m->id, max_tokens, stream, &text, &len, err) < 0)
        return -1;
    h = provider_common_headers(NULL, stream);
    if (p->passthrough_auth) {
        /* The client's own key: Anthropic wants it bare, in x-api-key. */
        if (client_auth) {
            const char *key = client_auth;

            if (str_has_prefix(key, "Bearer "))
                key += 7;
            while (*key == ' ')
                key++;
            h = provider_header(h, "x-api-key", key);
        }
    } else if (p->api_key) {
        h = provider_header(h, "x-api-key", p->api_key);
    }
    h = provider_header(h, "anthropic-version", p->anthropic_version);
    h = provider_extra_headers(h, p);
    memset(spec, 0, sizeof(*spec));
    spec->url = xasprintf("%s/messages", p->base_url);
    spec->headers = h;
    spec->body = text;
    spec->body_len = len;
    provider_call_policy(m, stream, spec);
    return 0;
}

/* ---- answers ---- */

/* A token count from an answer: a non-negative integer, else 0, and small
 * enough that sums cannot overflow. */
static long long tokens_of(const json_t *v)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

    return n < 0 ? 0 : n > (1LL << 50) ? (1LL << 50) : n;
}

/* Usage the OpenAI way: prompt_tokens counts the cached tokens too. */
static json_t *usage_json(long long in, long long cache_read, long long cache_write, long long out)
{
    long long prompt = in + cache_read + cache_write;

    return json_pack("{s:I,s:I,s:I,s:{s:I,s:I}}", "prompt_tokens", (json_int_t)prompt,
                     "completion_tokens", (json_int_t)out, "total_tokens",
                     (json_int_t)(prompt + out), "prompt_tokens_details", "cached_tokens",
                     (json_int_t)cache_read, "cache_write_tokens", (json_int_t)cache_write);
}

/* A stop_reason as a finish_reason; NULL stays NULL (not stopped yet). */
static const char *finish_of(const char *stop_reason)
{
    static const struct {
        const char *stop, *finish;
    } map[] = {
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"pause_turn", "stop"},
        {"max_tokens", "length"},
        {"tool_use", "tool_calls"},
        {"refusal", "content_filter"},
        {"model_context_window_exceeded", "length"},
    };

    if (stop_reason == NULL)
        return NULL;
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (strcmp(stop_reason, map[i].stop) == 0)
            return map[i].finish;
    return "stop"; /* a reason added after this was written */
}

/* The stop sequence that ended a message (a Messages answer, or a
 * message_delta's delta), or NULL. Borrowed. */
static json_t *stop_sequence_of(const json_t *msg)
{
    json_t *seq = json_object_get(msg, "stop_sequence");
    const char *why = json_string_value(json_object_get(msg, "stop_reason"));

    return json_is_string(seq) && why && strcmp(why, "stop_sequence") == 0 ? seq : NULL;
}

/* A tool_use block as an OpenAI tool call. */
static json_t *tool_call_json(const json_t *block)
{
    json_t *input = json_object_get(block, "input");
    char *args = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_t *c = json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", json_object_get(block, "id"), "type",
                          "function", "function", "name", json_object_get(block, "name"),
                          "arguments", args ? args : "{}");

    free(args);
    return c;
}

/* Append j's compact JSON to out and free j. Returns 0, or -1 when it does
 * not fit. */
static int put_json(json_t *j, struct buf *out)
{
    char *s = json_dumps(j, JSON_COMPACT);
    int rc = s ? buf_append(out, s, strlen(s)) : -1;

    free(s);
    json_decref(j);
    return rc;
}

int anthropic_answer(const char *body, size_t len, long long created, struct buf *out)
{
    json_t *msg = jscan_loadb(body, len, 0, NULL), *content, *usage, *b, *message, *tools;
    struct buf text;
    const char *finish;
    size_t i;
    int rc = -1;

    content = json_object_get(msg, "content");
    if (!json_is_object(msg) || !json_is_array(content) ||
        !json_is_string(json_object_get(msg, "id")))
        goto out;
    buf_init(&text, out->max);
    tools = json_array();
    json_array_foreach (content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        json_t *t = json_object_get(b, "text");

        if (type && strcmp(type, "text") == 0 && json_is_string(t)) {
            if (buf_append(&text, json_string_value(t), json_string_length(t)) < 0)
                goto done;
        } else if (type && strcmp(type, "tool_use") == 0) {
            if (!json_is_string(json_object_get(b, "id")) ||
                !json_is_string(json_object_get(b, "name")))
                goto done; /* not an answer */
            json_array_append_new(tools, tool_call_json(b));
        }
        /* thinking, redacted_thinking and server tool blocks: not for an
         * OpenAI client. */
    }
    message = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(message, "content",
                        text.len > 0 || json_array_size(tools) == 0
                            ? json_stringn(text.data ? text.data : "", text.len)
                            : json_null());
    if (json_object_get(message, "content") == NULL) { /* not UTF-8 */
        json_decref(message);
        goto done;
    }
    if (json_array_size(tools) > 0)
        json_object_set(message, "tool_calls", tools);
    finish = finish_of(json_string_value(json_object_get(msg, "stop_reason")));
    {
        json_t *resp = json_pack("{s:O,s:s,s:I,s:O?,s:[{s:i,s:o,s:n,s:s?,s:O*}]}", "id",
                                 json_object_get(msg, "id"), "object", "chat.completion", "created",
                                 (json_int_t)created, "model", json_object_get(msg, "model"),
                                 "choices", "index", 0, "message", message, "logprobs",
                                 "finish_reason", finish, "stop_reason", stop_sequence_of(msg));

        usage = json_object_get(msg, "usage");
        if (json_is_object(usage))
            json_object_set_new(
                resp, "usage",
                usage_json(tokens_of(json_object_get(usage, "input_tokens")),
                           tokens_of(json_object_get(usage, "cache_read_input_tokens")),
                           tokens_of(json_object_get(usage, "cache_creation_input_tokens")),
                           tokens_of(json_object_get(usage, "output_tokens"))));
        rc = put_json(resp, out);
    }
done:
    json_decref(tools);
    buf_free(&text);
out:
    json_decref(msg);
    return rc;
}

int anthropic_error(const char *body, size_t len, struct buf *out)
{
    json_t *j = jscan_loadb(body, len, 0, NULL), *e = json_object_get(j, "error");
    json_t *type = json_object_get(e, "type"), *msg = json_object_get(e, "message");
    int rc = -1;

    if (json_is_object(j) && json_is_string(type) && json_is_string(msg) &&
        json_is_string(json_object_get(j, "type")))
        rc = put_json(json_pack("{s:{s:O,s:O,s:n,s:n}}", "error", "message", msg, "type", type,
                                "param", "code"),
                      out);
    json_decref(j);
    return rc;
}

/* ---- streams ----
 *
 * Events in, chunks out:
 *   message_start        nothing yet (the id, the model and the input usage
 *                        are kept)
 *   content_block_start  text: nothing (or its text, if any); tool_use: a
 *                        chunk opening tool call k, where k counts the
 *                        tool_use blocks so far: Anthropic's block index
 *                        also counts text blocks, and is not the tool
 *                        index an OpenAI client wants (Portkey #1275)
 *   content_block_delta  text_delta: content; input_json_delta: argument
 *                        text of tool call k; thinking deltas: nothing
 *   message_delta        a chunk with the finish_reason; usage kept
 *   message_stop         the usage chunk (choices: []), then [DONE]
 *   ping, content_block_stop, unknown events: nothing
 *   error                an {"error":{...}} payload: the gateway treats it
 *                        as a failed call (retry, breaker, fallback)
 * The first chunk out carries "role": "assistant" (Portkey #1399). It waits
 * for the first content, so an error event before any content leaves the
 * client untouched and the route can still retry or fall back.
 */

struct provider_stream {
    long long created;
    json_t *id, *model; /* from message_start */
    char *head;         /* a chunk's JSON up to its delta's members, for fast_delta */
    size_t head_len;
    int role_sent;
    int has_usage;
    long long in, cache_read, cache_write, out;
    int *tool_of; /* per content block index: its tool call index, or -1 */
    size_t nblocks;
    int ntools;
};

/* The chunk's head as emit_delta writes it: the id, created and model,
 * up to the opening of the delta. */
static void make_head(struct provider_stream *s)
{
    json_t *c = json_pack("{s:O?,s:s,s:I,s:O?}", "id", s->id, "object", "chat.completion.chunk",
                          "created", (json_int_t)s->created, "model", s->model);
    char *text = json_dumps(c, JSON_COMPACT);

    json_decref(c);
    if (text == NULL)
        sl_panic("json_dumps: out of memory");
    free(s->head);
    s->head_len = strlen(text) - 1; /* without the closing brace */
    s->head = xasprintf("%.*s,\"choices\":[{\"index\":0,\"delta\":{", (int)s->head_len, text);
    s->head_len = strlen(s->head);
    free(text);
}

struct provider_stream *anthropic_stream_new(long long created)
{
    struct provider_stream *s = xcalloc(1, sizeof(*s));

    s->created = created;
    make_head(s);
    return s;
}

void provider_stream_free(struct provider_stream *s)
{
    if (s == NULL)
        return;
    json_decref(s->id);
    json_decref(s->model);
    free(s->head);
    free(s->tool_of);
    free(s);
}

/* Send one payload: j's JSON (j is freed). */
static int emit_json(json_t *j, provider_chunk_cb cb, void *arg)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = text ? cb(arg, text, strlen(text)) : -1;

    free(text);
    json_decref(j);
    return rc;
}

/* A chunk with one choice: delta (taken), finish (or NULL) and the stop
 * sequence that ended the answer (borrowed, or NULL). The first one
 * carries the role. */
static int emit_delta(struct provider_stream *s, json_t *delta, const char *finish,
                      json_t *stop_seq, provider_chunk_cb cb, void *arg)
{
    if (!s->role_sent) {
        /* As OpenAI writes it: the role first, and a content. */
        json_t *d = json_pack("{s:s,s:o}", "role", "assistant", "content",
                              json_object_get(delta, "tool_calls") ? json_null() : json_string(""));

        json_object_update(d, delta);
        json_decref(delta);
        delta = d;
        s->role_sent = 1;
    }
    return emit_json(json_pack("{s:O?,s:s,s:I,s:O?,s:[{s:i,s:o,s:n,s:s?,s:O*}]}", "id", s->id,
                               "object", "chat.completion.chunk", "created", (json_int_t)s->created,
                               "model", s->model, "choices", "index", 0, "delta", delta, "logprobs",
                               "finish_reason", finish, "stop_reason", stop_seq),
                     cb, arg);
}

/* The usage fields of a message_start's message.usage or a message_delta's
 * usage: a field that is there (and not null) replaces what was known. */
static void take_usage(struct provider_stream *s, const json_t *u)
{
    json_t *v;

    if (!json_is_object(u))
        return;
    s->has_usage = 1;
    if ((v = json_object_get(u, "input_tokens")) && !json_is_null(v))
        s->in = tokens_of(v);
    if ((v = json_object_get(u, "cache_read_input_tokens")) && !json_is_null(v))
        s->cache_read = tokens_of(v);
    if ((v = json_object_get(u, "cache_creation_input_tokens")) && !json_is_null(v))
        s->cache_write = tokens_of(v);
    if ((v = json_object_get(u, "output_tokens")) && !json_is_null(v))
        s->out = tokens_of(v);
}

/* The block index of a content_block event, grown into the map. -1 when it
 * is not a valid index (or over the cap). */
static long block_index(struct provider_stream *s, const json_t *ev)
{
    json_t *v = json_object_get(ev, "index");
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;

    if (i < 0 || i >= ANTHROPIC_STREAM_BLOCKS_MAX)
        return -1;
    if ((size_t)i >= s->nblocks) {
        size_t n = (size_t)i + 1;

        s->tool_of = xrealloc(s->tool_of, n * sizeof(*s->tool_of));
        for (size_t k = s->nblocks; k < n; k++)
            s->tool_of[k] = -1;
        s->nblocks = n;
    }
    return (long)i;
}

static int on_block_start(struct provider_stream *s, const json_t *ev, provider_chunk_cb cb,
                          void *arg)
{
    json_t *b = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(b, "type"));
    long i = block_index(s, ev);
    json_t *text = json_object_get(b, "text");

    if (i < 0 || type == NULL)
        return -1;
    if (strcmp(type, "tool_use") == 0) {
        if (!json_is_string(json_object_get(b, "id")) ||
            !json_is_string(json_object_get(b, "name")) || s->tool_of[i] >= 0)
            return -1;
        s->tool_of[i] = s->ntools++;
        return emit_delta(s,
                          json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}", "tool_calls", "index",
                                    s->tool_of[i], "id", json_object_get(b, "id"), "type",
                                    "function", "function", "name", json_object_get(b, "name"),
                                    "arguments", ""),
                          NULL, NULL, cb, arg);
    }
    if (strcmp(type, "text") == 0 && json_string_length(text) > 0)
        return emit_delta(s, json_pack("{s:O}", "content", text), NULL, NULL, cb, arg);
    return 0;
}

static int on_block_delta(struct provider_stream *s, const json_t *ev, provider_chunk_cb cb,
                          void *arg)
{
    json_t *d = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(d, "type"));
    long i = block_index(s, ev);

    if (i < 0 || type == NULL)
        return -1;
    if (strcmp(type, "text_delta") == 0) {
        json_t *text = json_object_get(d, "text");

        if (!json_is_string(text))
            return -1;
        return json_string_length(text) == 0
                   ? 0
                   : emit_delta(s, json_pack("{s:O}", "content", text), NULL, NULL, cb, arg);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        json_t *part = json_object_get(d, "partial_json");

        if (!json_is_string(part) || s->tool_of[i] < 0)
            return -1;
        if (json_string_length(part) == 0)
            return 0;
        return emit_delta(s,
                          json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls", "index", s->tool_of[i],
                                    "function", "arguments", part),
                          NULL, NULL, cb, arg);
    }
    return 0; /* thinking, signatures, citations */
}

/* One event's JSON. See the table above. */
static int stream_event(struct provider_stream *s, const json_t *ev, provider_chunk_cb cb,
                        void *arg)
{
    const char *type = json_string_value(json_object_get(ev, "type"));

    if (type == NULL)
        return -1;
    if (strcmp(type, "message_start") == 0) {
        json_t *msg = json_object_get(ev, "message");

        if (!json_is_object(msg))
            return -1;
        json_decref(s->id);
        json_decref(s->model);
        s->id = json_incref(json_object_get(msg, "id"));
        s->model = json_incref(json_object_get(msg, "model"));
        make_head(s);
        take_usage(s, json_object_get(msg, "usage"));
        return 0;
    }
    if (strcmp(type, "content_block_start") == 0)
        return on_block_start(s, ev, cb, arg);
    if (strcmp(type, "content_block_delta") == 0)
        return on_block_delta(s, ev, cb, arg);
    if (strcmp(type, "message_delta") == 0) {
        json_t *delta = json_object_get(ev, "delta");
        const char *stop = json_string_value(json_object_get(delta, "stop_reason"));

        take_usage(s, json_object_get(ev, "usage"));
        return stop
                   ? emit_delta(s, json_object(), finish_of(stop), stop_sequence_of(delta), cb, arg)
                   : 0;
    }
    if (strcmp(type, "message_stop") == 0) {
        if (s->has_usage &&
            emit_json(json_pack("{s:O?,s:s,s:I,s:O?,s:[],s:o}", "id", s->id, "object",
                                "chat.completion.chunk", "created", (json_int_t)s->created, "model",
                                s->model, "choices", "usage",
                                usage_json(s->in, s->cache_read, s->cache_write, s->out)),
                      cb, arg) < 0)
            return -1;
        return cb(arg, "[DONE]", 6);
    }
    if (strcmp(type, "error") == 0) {
        json_t *e = json_object_get(ev, "error");
        json_t *m = json_object_get(e, "message"), *t = json_object_get(e, "type");

        return emit_json(json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message",
                                   json_is_string(m) ? json_string_value(m) : "stream error",
                                   "type", json_is_string(t) ? json_string_value(t) : "api_error",
                                   "param", "code"),
                         cb, arg);
    }
    return 0; /* ping, content_block_stop, and events added later */
}

/* ---- the fast path ----
 *
 * Nearly every event of a stream is a content_block_delta. It is read in
 * place with jscan, and its chunk is written around the delta's text as it
 * came, escapes and all (jscan has checked that it is a valid JSON string),
 * after a head made once per stream: what stream_event would send, without
 * building and dumping two trees per token. Anything else, or anything
 * unusual, takes stream_event's way. */

#ifdef SLUICE_FUZZ
int anthropic_fast_off; /* tests/fuzz/fuzz_anthropic.c compares both ways */
#else
#define anthropic_fast_off 0
#endif

/* What a content_block_delta carries; a key given twice counts the last
 * time, as in jansson's tree. */
struct delta_read {
    int is_delta;
    int has_index;
    long long index;
    int kind;        /* 1 text_delta, 2 input_json_delta, 0 another or none */
    struct jtok str; /* its text or partial_json */
    int has_str;
};

static int read_delta_obj(struct jscan *js, struct delta_read *d)
{
    struct jtok k, v;
    int m;

    d->kind = 0;
    d->has_str = 0;
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &v) < 0)
            return -1;
        if (jtok_eq(&k, "type"))
            d->kind = v.type != JT_STRING               ? 0
                      : jtok_eq(&v, "text_delta")       ? 1
                      : jtok_eq(&v, "input_json_delta") ? 2
                                                        : 0;
        if (jtok_eq(&k, "text") || jtok_eq(&k, "partial_json")) {
            /* Which one it was: 1 or 2, as kind is for the delta it fits. */
            d->str = v;
            d->has_str = v.type != JT_STRING ? 0 : jtok_eq(&k, "text") ? 1 : 2;
        }
        if (jscan_skip(js, &v) < 0)
            return -1;
    }
    return m;
}

/* 1 if data was a plain content_block_delta and is done (*rc is cb's
 * answer), 0 if stream_event must look at it. */
static int fast_delta(struct provider_stream *s, const char *data, size_t len, provider_chunk_cb cb,
                      void *arg, int *rc)
{
    static const char tail[] = "\"},\"logprobs\":null,\"finish_reason\":null}]}";
    struct delta_read d = {0};
    struct jscan js;
    struct jtok t, k, v;
    struct buf out;
    char num[24];
    int m, tool = -1;

    jscan_init(&js, data, len);
    if (jscan_value(&js, &t) < 0 || t.type != JT_OBJECT)
        return 0;
    while ((m = jscan_member(&js, &k)) == 1) {
        if (jscan_value(&js, &v) < 0)
            return 0;
        if (jtok_eq(&k, "delta") && v.type == JT_OBJECT) {
            if (read_delta_obj(&js, &d) < 0)
                return 0;
            continue;
        }
        if (jtok_eq(&k, "delta"))
            d.kind = d.has_str = 0;
        else if (jtok_eq(&k, "type"))
            d.is_delta = v.type == JT_STRING && jtok_eq(&v, "content_block_delta");
        else if (jtok_eq(&k, "index"))
            d.has_index = jtok_integer(&v, &d.index);
        if (jscan_skip(&js, &v) < 0)
            return 0;
    }
    if (m < 0 || jscan_end(&js) < 0 || !d.is_delta || !d.has_index || d.kind == 0 ||
        d.has_str != d.kind || d.index < 0 || d.index >= (long long)s->nblocks)
        return 0;
    if (d.kind == 2 && (tool = s->tool_of[d.index]) < 0)
        return 0;
    if (d.str.len == 0) {
        *rc = 0;
        return 1;
    }
    buf_init(&out, s->head_len + d.str.len + 160);
    if (buf_append(&out, s->head, s->head_len) < 0 ||
        (!s->role_sent &&
         buf_puts(&out, d.kind == 1 ? "\"role\":\"assistant\","
                                    : "\"role\":\"assistant\",\"content\":null,") < 0) ||
        (d.kind == 1 && buf_puts(&out, "\"content\":\"") < 0) ||
        (d.kind == 2 && (buf_puts(&out, "\"tool_calls\":[{\"index\":") < 0 ||
                         buf_append(&out, num, fmt_u64(num, (uint64_t)tool)) < 0 ||
                         buf_puts(&out, ",\"function\":{\"arguments\":\"") < 0)) ||
        buf_append(&out, d.str.s, d.str.len) < 0 || (d.kind == 2 && buf_puts(&out, "\"}}]") < 0) ||
        buf_puts(&out, d.kind == 1 ? tail : tail + 1) < 0)
        sl_panic("fast_delta: the chunk outgrew its own size");
    s->role_sent = 1;
    *rc = cb(arg, out.data, out.len);
    buf_free(&out);
    return 1;
}

int provider_stream_event(struct provider_stream *s, const char *event, const char *data,
                          size_t len, provider_chunk_cb cb, void *arg)
{
    json_t *ev;
    int rc;

    UNUSED(event); /* the data's "type" says the same */
    if (!anthropic_fast_off && fast_delta(s, data, len, cb, arg, &rc))
        return rc;
    ev = jscan_loadb(data, len, 0, NULL);
    rc = json_is_object(ev) ? stream_event(s, ev, cb, arg) : -1;
    json_decref(ev);
    return rc;
}
