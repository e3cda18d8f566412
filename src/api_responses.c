/* api_responses.c - the Responses API in front; see api_responses.h. */
#include "api_responses.h"
#include "api_common.h"
#include "caps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the request: responses -> chat ---- */

enum role_kind { ROLE_USER, ROLE_SYSTEM, ROLE_ASSISTANT };

/* The chat conversation being built from the input items. */
struct conv {
    json_t *msgs;    /* chat messages */
    json_t *calls;   /* call_id -> true: function_call items seen */
    json_t *outputs; /* call_id -> true: function_call_output items kept */
    struct api_error *err;
};

/* One content part of input item i as a chat content part; NULL with err
 * set when the part is malformed or not for this role. */
static json_t *part_to_chat(const json_t *p, enum role_kind rk, size_t i, struct api_error *err)
{
    const char *type = api_str(p, "type");
    json_t *v;

    if (type == NULL) {
        api_fail(err, "input", NULL, "input[%zu].content: each part needs a string 'type'.", i);
        return NULL;
    }
    if (api_streq(type, "input_text") || api_streq(type, "output_text") ||
        api_streq(type, "text")) {
        v = json_object_get(p, "text");
        if (!json_is_string(v)) {
            api_fail(err, "input", NULL, "input[%zu].content: a %s part needs a string 'text'.", i,
                     type);
            return NULL;
        }
        return json_pack("{s:s, s:O}", "type", "text", "text", v);
    }
    if (api_streq(type, "refusal") && rk == ROLE_ASSISTANT) {
        v = json_object_get(p, "refusal");
        if (!json_is_string(v)) {
            api_fail(err, "input", NULL,
                     "input[%zu].content: a refusal part needs a string 'refusal'.", i);
            return NULL;
        }
        return json_pack("{s:s, s:O}", "type", "refusal", "refusal", v);
    }
    if (rk != ROLE_USER) {
        api_fail(err, "input", NULL,
                 "input[%zu].content: a part of type '%.32s' may not be in a %s message.", i, type,
                 rk == ROLE_SYSTEM ? "system" : "assistant");
        return NULL;
    }
    if (api_streq(type, "input_image")) {
        json_t *img;

        v = json_object_get(p, "image_url");
        if (!json_is_string(v)) {
            api_fail(
                err, "input", "unsupported_value",
                "input[%zu].content: an input_image needs an 'image_url' (a URL or a data: URL); "
                "file_id is not supported.",
                i);
            return NULL;
        }
        img = json_pack("{s:O}", "url", v);
        if (api_check(p, "detail", JSON_STRING, "a string", err) < 0) {
            json_decref(img);
            return NULL;
        }
        api_copy(img, "detail", p, "detail");
        return json_pack("{s:s, s:o}", "type", "image_url", "image_url", img);
    }
    if (api_streq(type, "input_file")) {
        json_t *file = json_object();

        if (json_object_get(p, "file_url") || (!json_is_string(json_object_get(p, "file_data")) &&
                                               !json_is_string(json_object_get(p, "file_id")))) {
            json_decref(file);
            api_fail(
                err, "input", "unsupported_value",
                "input[%zu].content: an input_file needs 'file_data' or 'file_id' (file_url is "
                "not supported).",
                i);
            return NULL;
        }
        api_copy(file, "file_data", p, "file_data");
        api_copy(file, "file_id", p, "file_id");
        api_copy(file, "filename", p, "filename");
        return json_pack("{s:s, s:o}", "type", "file", "file", file);
    }
    if (api_streq(type, "input_audio")) {
        v = json_object_get(p, "input_audio");
        if (!json_is_object(v)) {
            api_fail(err, "input", NULL,
                     "input[%zu].content: an input_audio part needs an object 'input_audio'.", i);
            return NULL;
        }
        return json_pack("{s:s, s:O}", "type", "input_audio", "input_audio", v);
    }
    api_fail(err, "input", "unsupported_value",
             "input[%zu].content: parts of type '%.32s' are not supported.", i, type);
    return NULL;
}

/* A message's content in the chat form: a string as it is, an array part
 * by part (one text part alone becomes its string, as a chat client would
 * write it). NULL with err set on bad input. */
static json_t *content_to_chat(const json_t *c, enum role_kind rk, size_t i, struct api_error *err)
{
    json_t *parts, *p, *q;
    size_t k;

    if (json_is_string(c))
        return json_incref((json_t *)c);
    if (json_is_null(c) && rk == ROLE_ASSISTANT)
        return json_null();
    if (!json_is_array(c)) {
        api_fail(err, "input", NULL, "input[%zu]: 'content' must be a string or an array of parts.",
                 i);
        return NULL;
    }
    parts = json_array();
    json_array_foreach (c, k, p) {
        if ((q = part_to_chat(p, rk, i, err)) == NULL) {
            json_decref(parts);
            return NULL;
        }
        json_array_append_new(parts, q);
    }
    return api_collapse(parts);
}

static int put_message(struct conv *cv, const json_t *item, size_t i)
{
    const char *role = api_str(item, "role");
    enum role_kind rk;
    json_t *content;

    if (role == NULL)
        return api_fail(cv->err, "input", NULL, "input[%zu]: a message needs a string 'role'.", i);
    if (api_streq(role, "user"))
        rk = ROLE_USER;
    else if (api_streq(role, "assistant"))
        rk = ROLE_ASSISTANT;
    else if (api_streq(role, "system") || api_streq(role, "developer"))
        rk = ROLE_SYSTEM;
    else
        return api_fail(cv->err, "input", NULL, "input[%zu]: invalid role '%.32s'.", i, role);
    if ((content = content_to_chat(json_object_get(item, "content"), rk, i, cv->err)) == NULL)
        return -1;
    /* developer is system under another name; not every chat server
     * knows it. */
    json_array_append_new(
        cv->msgs,
        json_pack("{s:s, s:o}", "role", rk == ROLE_SYSTEM ? "system" : role, "content", content));
    return 0;
}

/* A function_call item joins the tool calls of the assistant message just
 * before it, or starts one: the chat form has one assistant message per
 * turn, whatever number of calls it makes. */
static int put_function_call(struct conv *cv, const json_t *item, size_t i)
{
    json_t *call_id = json_object_get(item, "call_id"), *name = json_object_get(item, "name");
    json_t *args = json_object_get(item, "arguments"), *last, *calls, *tc;
    size_t n = json_array_size(cv->msgs);

    if (!json_is_string(call_id) || json_string_length(call_id) == 0 || !json_is_string(name) ||
        !json_is_string(args))
        return api_fail(
            cv->err, "input", NULL,
            "input[%zu]: a function_call needs string 'call_id', 'name' and 'arguments'.", i);
    if (json_object_get(cv->calls, json_string_value(call_id)))
        return api_fail(cv->err, "input", NULL, "input[%zu]: call_id '%.64s' is used twice.", i,
                        json_string_value(call_id));
    json_object_set_new(cv->calls, json_string_value(call_id), json_true());
    tc = json_pack("{s:O, s:s, s:{s:O, s:O}}", "id", call_id, "type", "function", "function",
                   "name", name, "arguments", args);
    last = n ? json_array_get(cv->msgs, n - 1) : NULL;
    if (last && api_streq(api_str(last, "role"), "assistant")) {
        calls = json_object_get(last, "tool_calls");
        if (calls == NULL) {
            calls = json_array();
            json_object_set_new(last, "tool_calls", calls);
        }
        json_array_append_new(calls, tc);
        return 0;
    }
    json_array_append_new(
        cv->msgs, json_pack("{s:s, s:n, s:[o]}", "role", "assistant", "content", "tool_calls", tc));
    return 0;
}

/* A function_call_output is the tool message of its call. The call must
 * come before it (the gateway keeps no earlier turns), and one call has one
 * result: a repeated output is dropped, not sent twice. */
static int put_function_output(struct conv *cv, const json_t *item, size_t i)
{
    json_t *call_id = json_object_get(item, "call_id"), *out = json_object_get(item, "output");
    const char *id = json_string_value(call_id);
    json_t *content, *p;
    size_t k;

    if (id == NULL)
        return api_fail(cv->err, "input", NULL,
                        "input[%zu]: a function_call_output needs a string 'call_id'.", i);
    if (json_object_get(cv->calls, id) == NULL)
        return api_fail(
            cv->err, "input", NULL,
            "input[%zu]: no function_call with call_id '%.64s' comes before this output. "
            "sluice keeps no state: send the function_call item as well.",
            i, id);
    if (json_object_get(cv->outputs, id))
        return 0;
    if (json_is_string(out)) {
        content = json_incref(out);
    } else if (json_is_array(out)) {
        content = json_array();
        json_array_foreach (out, k, p) {
            json_t *q = part_to_chat(p, ROLE_SYSTEM, i, cv->err); /* text only */

            if (q == NULL) {
                json_decref(content);
                return -1;
            }
            json_array_append_new(content, q);
        }
        content = api_collapse(content);
    } else {
        return api_fail(cv->err, "input", NULL,
                        "input[%zu]: 'output' must be a string or an array of text parts.", i);
    }
    json_object_set_new(cv->outputs, id, json_true());
    json_array_append_new(cv->msgs, json_pack("{s:s, s:O, s:o}", "role", "tool", "tool_call_id",
                                              call_id, "content", content));
    return 0;
}

static int put_item(struct conv *cv, const json_t *item, size_t i)
{
    const char *type = api_str(item, "type");

    if (!json_is_object(item))
        return api_fail(cv->err, "input", NULL, "input[%zu]: each item must be an object.", i);
    if (type == NULL || api_streq(type, "message"))
        return put_message(cv, item, i);
    if (api_streq(type, "function_call"))
        return put_function_call(cv, item, i);
    if (api_streq(type, "function_call_output"))
        return put_function_output(cv, item, i);
    if (api_streq(type, "reasoning"))
        return 0; /* the model's own notes; a chat model takes none */
    if (api_streq(type, "item_reference"))
        return api_fail(cv->err, "input", "unsupported_value",
                        "input[%zu]: item_reference is not supported: sluice keeps no items.", i);
    return api_fail(
        cv->err, "input", "unsupported_value",
        "input[%zu]: items of type '%.40s' are not supported (sluice serves messages and "
        "function tools).",
        i, type);
}

static json_t *tools_to_chat(const json_t *tools, struct api_error *err)
{
    json_t *out, *t;
    size_t i;

    if (!json_is_array(tools)) {
        api_fail(err, "tools", NULL, "Invalid type for 'tools': expected an array.");
        return NULL;
    }
    out = json_array();
    json_array_foreach (tools, i, t) {
        const char *type = api_str(t, "type");
        json_t *fn;

        if (!api_streq(type, "function")) {
            json_decref(out);
            api_fail(err, "tools", "unsupported_value",
                     "tools[%zu]: only function tools are supported, not '%.40s'.", i,
                     type ? type : "(no type)");
            return NULL;
        }
        if (!json_is_string(json_object_get(t, "name"))) {
            json_decref(out);
            api_fail(err, "tools", NULL, "tools[%zu]: a function tool needs a string 'name'.", i);
            return NULL;
        }
        fn = json_object();
        api_copy(fn, "name", t, "name");
        api_copy(fn, "description", t, "description");
        api_copy(fn, "parameters", t, "parameters");
        api_copy(fn, "strict", t, "strict");
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

static json_t *tool_choice_to_chat(const json_t *tc, struct api_error *err)
{
    const char *s = json_string_value(tc);

    if (api_streq(s, "none") || api_streq(s, "auto") || api_streq(s, "required"))
        return json_incref((json_t *)tc);
    if (json_is_object(tc) && api_streq(api_str(tc, "type"), "function") &&
        json_is_string(json_object_get(tc, "name")))
        return json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name",
                         json_object_get(tc, "name"));
    api_fail(err, "tool_choice", "unsupported_value",
             "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
             "\"name\": ...}.");
    return NULL;
}

/* text.format as response_format: 0 with *rf set (NULL for plain text), or -1. */
static int format_to_chat(const json_t *text, json_t **rf, struct api_error *err)
{
    json_t *f = json_object_get(text, "format");
    const char *type = api_str(f, "type");

    *rf = NULL;
    if (!json_is_object(text))
        return api_fail(err, "text", NULL, "Invalid type for 'text': expected an object.");
    if (f == NULL || json_is_null(f) || api_streq(type, "text"))
        return 0;
    if (api_streq(type, "json_object")) {
        *rf = json_pack("{s:s}", "type", "json_object");
        return 0;
    }
    if (api_streq(type, "json_schema")) {
        json_t *js;

        if (!json_is_string(json_object_get(f, "name")) ||
            !json_is_object(json_object_get(f, "schema")))
            return api_fail(err, "text.format", NULL,
                            "A json_schema format needs a string 'name' and an object 'schema'.");
        js = json_object();
        api_copy(js, "name", f, "name");
        api_copy(js, "description", f, "description");
        api_copy(js, "schema", f, "schema");
        api_copy(js, "strict", f, "strict");
        *rf = json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js);
        return 0;
    }
    return api_fail(err, "text.format", "unsupported_value",
                    "'text.format.type' must be text, json_object or json_schema.");
}

/* Fields that need state or hosted features sluice does not have. */
static int refuse_stateful(const json_t *req, struct api_error *err)
{
    static const char *const keys[] = {"previous_response_id", "conversation", "prompt"};
    json_t *v;

    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        v = json_object_get(req, keys[i]);
        if (v && !json_is_null(v))
            return api_fail(
                err, keys[i], "unsupported_parameter",
                "'%s' is not supported: sluice is stateless. Send the whole conversation "
                "in 'input'.",
                keys[i]);
    }
    v = json_object_get(req, "store");
    if (api_check(req, "store", JSON_TRUE, "a boolean", err) < 0)
        return -1;
    if (json_is_true(v))
        return api_fail(
            err, "store", "unsupported_parameter",
            "store: true is not supported: sluice keeps no responses (omit 'store' or set "
            "it to false).");
    if (json_is_true(json_object_get(req, "background")))
        return api_fail(err, "background", "unsupported_parameter",
                        "background: true is not supported: sluice keeps no responses.");
    return 0;
}

/* The settings a response object repeats, with OpenAI's defaults. */
static json_t *make_echo(const json_t *req)
{
    json_t *e = json_object(), *v;

    json_object_set_new(e, "instructions", json_null());
    api_copy(e, "instructions", req, "instructions");
    json_object_set_new(e, "max_output_tokens", json_null());
    api_copy(e, "max_output_tokens", req, "max_output_tokens");
    json_object_set_new(e, "metadata", json_object());
    api_copy(e, "metadata", req, "metadata");
    json_object_set_new(e, "parallel_tool_calls", json_true());
    api_copy(e, "parallel_tool_calls", req, "parallel_tool_calls");
    json_object_set_new(e, "previous_response_id", json_null());
    v = json_object_get(json_object_get(req, "reasoning"), "effort");
    json_object_set_new(e, "reasoning",
                        json_pack("{s:O, s:n}", "effort", v ? v : json_null(), "summary"));
    json_object_set_new(e, "store", json_false());
    json_object_set_new(e, "temperature", json_real(1.0));
    api_copy(e, "temperature", req, "temperature");
    json_object_set_new(e, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    api_copy(e, "text", req, "text");
    json_object_set_new(e, "tool_choice", json_string("auto"));
    api_copy(e, "tool_choice", req, "tool_choice");
    json_object_set_new(e, "tools", json_array());
    api_copy(e, "tools", req, "tools");
    json_object_set_new(e, "top_p", json_real(1.0));
    api_copy(e, "top_p", req, "top_p");
    json_object_set_new(e, "truncation", json_string("disabled"));
    json_object_set_new(e, "user", json_null());
    api_copy(e, "user", req, "user");
    return e;
}

/* The request's settings, after the conversation. */
static int settings_to_chat(const json_t *req, json_t *chat, struct api_error *err)
{
    json_t *v, *x;

    if (api_check(req, "temperature", JSON_REAL, "a number", err) < 0 ||
        api_check(req, "top_p", JSON_REAL, "a number", err) < 0 ||
        api_check(req, "max_output_tokens", JSON_INTEGER, "an integer", err) < 0 ||
        api_check(req, "parallel_tool_calls", JSON_TRUE, "a boolean", err) < 0 ||
        api_check(req, "stream", JSON_TRUE, "a boolean", err) < 0 ||
        api_check(req, "user", JSON_STRING, "a string", err) < 0 ||
        api_check(req, "metadata", JSON_OBJECT, "an object", err) < 0 ||
        api_check(req, "reasoning", JSON_OBJECT, "an object", err) < 0)
        return -1;
    v = json_object_get(req, "tools");
    if (v && !json_is_null(v)) {
        if ((x = tools_to_chat(v, err)) == NULL)
            return -1;
        if (json_array_size(x))
            json_object_set_new(chat, "tools", x);
        else
            json_decref(x);
    }
    v = json_object_get(req, "tool_choice");
    if (v && !json_is_null(v)) {
        if ((x = tool_choice_to_chat(v, err)) == NULL)
            return -1;
        json_object_set_new(chat, "tool_choice", x);
    }
    v = json_object_get(req, "text");
    if (v && !json_is_null(v)) {
        if (format_to_chat(v, &x, err) < 0)
            return -1;
        if (x)
            json_object_set_new(chat, "response_format", x);
    }
    v = json_object_get(req, "max_output_tokens");
    if (json_is_integer(v) && json_integer_value(v) < 1)
        return api_fail(err, "max_output_tokens", NULL,
                        "Invalid 'max_output_tokens': must be at least 1.");
    api_copy(chat, "max_tokens", req, "max_output_tokens");
    api_copy(chat, "temperature", req, "temperature");
    api_copy(chat, "top_p", req, "top_p");
    api_copy(chat, "parallel_tool_calls", req, "parallel_tool_calls");
    api_copy(chat, "user", req, "user");
    v = json_object_get(json_object_get(req, "reasoning"), "effort");
    if (json_is_string(v))
        json_object_set(chat, "reasoning_effort", v);
    if (json_object_get(chat, "tools") == NULL) {
        /* Chat servers refuse these without tools (OpenAI does). */
        json_object_del(chat, "tool_choice");
        json_object_del(chat, "parallel_tool_calls");
    }
    if (json_is_true(json_object_get(req, "stream"))) {
        json_object_set_new(chat, "stream", json_true());
        /* Always: the stream's end event carries the usage. */
        json_object_set_new(chat, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return 0;
}

json_t *responses_request_to_chat(const json_t *req, json_t **echo, struct api_error *err)
{
    struct conv cv = {.err = err};
    json_t *chat = NULL, *model, *v, *item;
    size_t i;

    *echo = NULL;
    if (!json_is_object(req)) {
        api_fail(err, NULL, NULL, "The request body must be a JSON object.");
        return NULL;
    }
    if (refuse_stateful(req, err) < 0)
        return NULL;
    model = json_object_get(req, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        api_fail(err, "model", NULL, "You must provide a model parameter.");
        return NULL;
    }
    cv.msgs = json_array();
    cv.calls = json_object();
    cv.outputs = json_object();
    v = json_object_get(req, "instructions");
    if (json_is_string(v)) {
        json_array_append_new(cv.msgs, json_pack("{s:s, s:O}", "role", "system", "content", v));
    } else if (v && !json_is_null(v)) {
        api_fail(err, "instructions", NULL, "Invalid type for 'instructions': expected a string.");
        goto out;
    }
    v = json_object_get(req, "input");
    if (json_is_string(v)) {
        json_array_append_new(cv.msgs, json_pack("{s:s, s:O}", "role", "user", "content", v));
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            if (put_item(&cv, item, i) < 0)
                goto out;
        }
    } else {
        api_fail(err, "input", NULL,
                 v ? "Invalid type for 'input': expected a string or an array."
                   : "Missing required parameter: 'input'.");
        goto out;
    }
    if (json_array_size(cv.msgs) == 0) {
        api_fail(err, "input", NULL, "'input' must hold at least one message.");
        goto out;
    }
    chat = json_pack("{s:O, s:O}", "model", model, "messages", cv.msgs);
    if (settings_to_chat(req, chat, err) < 0) {
        json_decref(chat);
        chat = NULL;
        goto out;
    }
    *echo = make_echo(req);
out:
    json_decref(cv.msgs);
    json_decref(cv.calls);
    json_decref(cv.outputs);
    return chat;
}

/* ---- the answer: chat -> responses ---- */

/* An output item's id: kind, the response id's tail and the item's index,
 * so that a streamed answer and a whole one name their items alike. */
static json_t *item_id(const char *kind, const char *resp_id, size_t index)
{
    const char *tail = strncmp(resp_id, "resp_", 5) == 0 ? resp_id + 5 : resp_id;
    char buf[160];

    snprintf(buf, sizeof(buf), "%s_%.100s_%zu", kind, tail, index);
    return json_string(buf);
}

static json_t *usage_from_chat(const json_t *u)
{
    json_int_t pt, ct, total;

    if (!json_is_object(u))
        return json_null();
    pt = json_integer_value(json_object_get(u, "prompt_tokens"));
    ct = json_integer_value(json_object_get(u, "completion_tokens"));
    total = json_is_integer(json_object_get(u, "total_tokens"))
                ? json_integer_value(json_object_get(u, "total_tokens"))
                : pt + ct;
    /* OpenAI's input_tokens include the cached ones, like prompt_tokens. */
    return json_pack("{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens", pt,
                     "input_tokens_details", "cached_tokens",
                     json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")),
                     "output_tokens", ct, "output_tokens_details", "reasoning_tokens",
                     json_integer_value(json_object_get(
                         json_object_get(u, "completion_tokens_details"), "reasoning_tokens")),
                     "total_tokens", total);
}

/* Why an answer is incomplete, for incomplete_details, or NULL. */
static const char *incomplete_reason(const char *finish)
{
    if (api_streq(finish, "length"))
        return "max_output_tokens";
    if (api_streq(finish, "content_filter"))
        return "content_filter";
    return NULL;
}

/* The response object without its output and usage. */
static json_t *response_base(const json_t *echo, const char *id, json_int_t created,
                             const char *model, const char *status)
{
    json_t *r = json_pack("{s:s, s:s, s:I, s:s, s:b, s:n, s:n}", "id", id, "object", "response",
                          "created_at", created, "status", status, "background", 0, "error",
                          "incomplete_details");

    if (json_is_object(echo))
        json_object_update(r, (json_t *)echo);
    json_object_set_new(r, "model", json_string(model ? model : ""));
    return r;
}

static void finish_response(json_t *r, json_t *output, const char *finish, const json_t *usage)
{
    const char *why = incomplete_reason(finish);

    json_object_set_new(r, "output", output);
    json_object_set_new(r, "usage", usage_from_chat(usage));
    if (why) {
        json_object_set_new(r, "status", json_string("incomplete"));
        json_object_set_new(r, "incomplete_details", json_pack("{s:s}", "reason", why));
    }
}

static json_t *text_part(const char *text, size_t len)
{
    return json_pack("{s:s, s:[], s:[], s:s%}", "type", "output_text", "annotations", "logprobs",
                     "text", text, len);
}

json_t *responses_answer_from_chat(const json_t *chat, const json_t *echo, const char *id)
{
    json_t *c0 = json_array_get(json_object_get(chat, "choices"), 0);
    json_t *msg = json_object_get(c0, "message"), *text, *refusal, *calls, *tc, *out, *r;
    const char *finish = api_str(c0, "finish_reason");
    int has_text, has_refusal;
    size_t i;

    if (!json_is_object(chat))
        return NULL;
    text = api_content_text(json_object_get(msg, "content"));
    refusal = json_object_get(msg, "refusal");
    calls = json_object_get(msg, "tool_calls");
    out = json_array();
    has_text = json_is_string(text) && json_string_length(text) > 0;
    has_refusal = json_is_string(refusal) && json_string_length(refusal) > 0;
    /* A message item unless the answer is tool calls and nothing more; an
     * empty answer is one empty output_text (as a stream of it says). */
    if (has_text || has_refusal || json_array_size(calls) == 0) {
        json_t *parts = json_array();

        if (has_text || !has_refusal)
            json_array_append_new(parts,
                                  text_part(json_is_string(text) ? json_string_value(text) : "",
                                            json_is_string(text) ? json_string_length(text) : 0));
        if (has_refusal)
            json_array_append_new(parts,
                                  json_pack("{s:s, s:O}", "type", "refusal", "refusal", refusal));
        json_array_append_new(out, json_pack("{s:o, s:s, s:s, s:s, s:o}", "id",
                                             item_id("msg", id, 0), "type", "message", "status",
                                             incomplete_reason(finish) ? "incomplete" : "completed",
                                             "role", "assistant", "content", parts));
    }
    json_array_foreach (calls, i, tc) {
        json_t *fn = json_object_get(tc, "function");
        json_t *args = json_object_get(fn, "arguments");
        size_t n = json_array_size(out);

        json_array_append_new(
            out, json_pack("{s:o, s:s, s:s, s:s, s:s, s:s}", "id", item_id("fc", id, n), "type",
                           "function_call", "status", "completed", "call_id",
                           api_str(tc, "id") ? api_str(tc, "id") : "", "name",
                           api_str(fn, "name") ? api_str(fn, "name") : "", "arguments",
                           json_is_string(args) ? json_string_value(args) : ""));
    }
    json_decref(text);
    r = response_base(echo, id, json_integer_value(json_object_get(chat, "created")),
                      api_str(chat, "model"), "completed");
    finish_response(r, out, finish, json_object_get(chat, "usage"));
    return r;
}

/* ---- the stream: chat chunks -> responses events ---- */

struct rs_tool {
    json_int_t chat_index; /* tool_calls[].index in the chunks */
    size_t out_index;
    char *call_id;
    struct buf name;
    struct buf args;
};

struct responses_stream {
    json_t *echo;
    char id[96];
    json_t *model; /* from the first chunk */
    json_int_t created;
    json_int_t seq; /* sequence_number of the next event */
    int started, finished;
    json_t *output; /* items by output index; null while open */
    /* the open message item */
    int msg_open;
    size_t msg_index;
    int text_part, refusal_part, nparts; /* content indexes, -1 = none */
    struct buf text, refusal;
    struct rs_tool tools[DIALECT_TOOLS_MAX];
    size_t ntools;
    json_t *usage;
    char finish[32];
};

struct responses_stream *responses_stream_new(const json_t *echo, const char *id)
{
    struct responses_stream *s = xcalloc(1, sizeof(*s));

    s->echo = echo ? json_deep_copy(echo) : json_object();
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->model = json_string("");
    s->output = json_array();
    s->usage = json_null();
    buf_init(&s->text, DIALECT_ANSWER_MAX);
    buf_init(&s->refusal, DIALECT_ANSWER_MAX);
    return s;
}

void responses_stream_free(struct responses_stream *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ntools; i++) {
        free(s->tools[i].call_id);
        buf_free(&s->tools[i].name);
        buf_free(&s->tools[i].args);
    }
    json_decref(s->echo);
    json_decref(s->model);
    json_decref(s->output);
    json_decref(s->usage);
    buf_free(&s->text);
    buf_free(&s->refusal);
    free(s);
}

/* Number the event (sequence_number) and append it to out. Takes ev. */
static int emit(struct responses_stream *s, struct buf *out, json_t *ev)
{
    int r;

    json_object_set_new(ev, "sequence_number", json_integer(s->seq++));
    r = api_write_event(out, api_str(ev, "type"), ev);
    json_decref(ev);
    return r;
}

static json_t *stream_response(struct responses_stream *s, const char *status)
{
    return response_base(s->echo, s->id, s->created, json_string_value(s->model), status);
}

static int stream_start(struct responses_stream *s, const json_t *chunk, struct buf *out)
{
    json_t *r;
    int rc;

    if (s->started)
        return 0;
    s->started = 1;
    if (json_is_string(json_object_get(chunk, "model"))) {
        json_decref(s->model);
        s->model = json_incref(json_object_get(chunk, "model"));
    }
    s->created = json_is_integer(json_object_get(chunk, "created"))
                     ? json_integer_value(json_object_get(chunk, "created"))
                     : (json_int_t)time(NULL);
    r = stream_response(s, "in_progress");
    json_object_set_new(r, "output", json_array());
    json_object_set_new(r, "usage", json_null());
    rc = emit(s, out, json_pack("{s:s, s:O}", "type", "response.created", "response", r)) < 0 ||
                 emit(s, out,
                      json_pack("{s:s, s:O}", "type", "response.in_progress", "response", r)) < 0
             ? -1
             : 0;
    json_decref(r);
    return rc;
}

static json_t *msg_item_id(struct responses_stream *s)
{
    return item_id("msg", s->id, s->msg_index);
}

/* The open message's parts as they stand. */
static json_t *msg_parts(struct responses_stream *s)
{
    json_t *parts = json_array();

    for (int k = 0; k < s->nparts; k++) {
        if (k == s->text_part)
            json_array_append_new(parts, text_part(s->text.data ? s->text.data : "", s->text.len));
        else
            json_array_append_new(parts, json_pack("{s:s, s:s%}", "type", "refusal", "refusal",
                                                   s->refusal.data ? s->refusal.data : "",
                                                   s->refusal.len));
    }
    return parts;
}

static json_t *msg_item(struct responses_stream *s, const char *status, int with_parts)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:o}", "id", msg_item_id(s), "type", "message", "status",
                     status, "role", "assistant", "content",
                     with_parts ? msg_parts(s) : json_array());
}

static int msg_open(struct responses_stream *s, struct buf *out)
{
    if (s->msg_open)
        return 0;
    s->msg_open = 1;
    s->msg_index = json_array_size(s->output);
    s->text_part = s->refusal_part = -1;
    s->nparts = 0;
    buf_reset(&s->text);
    buf_reset(&s->refusal);
    json_array_append_new(s->output, json_null());
    return emit(s, out,
                json_pack("{s:s, s:I, s:o}", "type", "response.output_item.added", "output_index",
                          (json_int_t)s->msg_index, "item", msg_item(s, "in_progress", 0)));
}

/* Open a content part of the message: an output_text or a refusal. */
static int part_open(struct responses_stream *s, struct buf *out, int refusal)
{
    int idx = s->nparts++;
    json_t *part =
        refusal ? json_pack("{s:s, s:s}", "type", "refusal", "refusal", "") : text_part("", 0);

    if (refusal)
        s->refusal_part = idx;
    else
        s->text_part = idx;
    return emit(s, out,
                json_pack("{s:s, s:o, s:I, s:i, s:o}", "type", "response.content_part.added",
                          "item_id", msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                          "content_index", idx, "part", part));
}

static int text_delta(struct responses_stream *s, struct buf *out, const json_t *d, int refusal)
{
    if (msg_open(s, out) < 0 ||
        ((refusal ? s->refusal_part : s->text_part) < 0 && part_open(s, out, refusal) < 0))
        return -1;
    if (buf_append(refusal ? &s->refusal : &s->text, json_string_value(d), json_string_length(d)) <
        0)
        return -1;
    if (refusal)
        return emit(s, out,
                    json_pack("{s:s, s:o, s:I, s:i, s:O}", "type", "response.refusal.delta",
                              "item_id", msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                              "content_index", s->refusal_part, "delta", d));
    return emit(s, out,
                json_pack("{s:s, s:o, s:I, s:i, s:O, s:[]}", "type", "response.output_text.delta",
                          "item_id", msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                          "content_index", s->text_part, "delta", d, "logprobs"));
}

static int msg_close(struct responses_stream *s, struct buf *out, const char *status)
{
    json_t *parts, *item;

    if (!s->msg_open)
        return 0;
    s->msg_open = 0;
    parts = msg_parts(s);
    for (int k = 0; k < s->nparts; k++) {
        json_t *part = json_array_get(parts, (size_t)k);
        json_t *done =
            k == s->text_part
                ? json_pack("{s:s, s:o, s:I, s:i, s:O, s:[]}", "type", "response.output_text.done",
                            "item_id", msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                            "content_index", k, "text", json_object_get(part, "text"), "logprobs")
                : json_pack("{s:s, s:o, s:I, s:i, s:O}", "type", "response.refusal.done", "item_id",
                            msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                            "content_index", k, "refusal", json_object_get(part, "refusal"));

        if (emit(s, out, done) < 0 ||
            emit(s, out,
                 json_pack("{s:s, s:o, s:I, s:i, s:O}", "type", "response.content_part.done",
                           "item_id", msg_item_id(s), "output_index", (json_int_t)s->msg_index,
                           "content_index", k, "part", part)) < 0) {
            json_decref(parts);
            return -1;
        }
    }
    json_decref(parts);
    item = msg_item(s, status, 1);
    json_array_set(s->output, s->msg_index, item);
    return emit(s, out,
                json_pack("{s:s, s:I, s:o}", "type", "response.output_item.done", "output_index",
                          (json_int_t)s->msg_index, "item", item));
}

static json_t *tool_item(struct responses_stream *s, const struct rs_tool *t, const char *status)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:s%, s:s%}", "id", item_id("fc", s->id, t->out_index),
                     "type", "function_call", "status", status, "call_id", t->call_id, "name",
                     t->name.data ? t->name.data : "", t->name.len, "arguments",
                     t->args.data ? t->args.data : "", t->args.len);
}

/* The tool call a chunk's tool_calls[pos] continues, or a new one (its
 * item opened). NULL when over the cap. Chunks name a call by index; a
 * provider that leaves the index out sends one call per position. */
static struct rs_tool *tool_for(struct responses_stream *s, struct buf *out, const json_t *tc,
                                size_t pos, int *err)
{
    json_t *idx = json_object_get(tc, "index");
    json_int_t ci = json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)pos;
    struct rs_tool *t;
    const char *id;
    char gen[128];

    for (size_t i = 0; i < s->ntools; i++)
        if (s->tools[i].chat_index == ci)
            return &s->tools[i];
    if (s->ntools == DIALECT_TOOLS_MAX || msg_close(s, out, "completed") < 0) {
        *err = 1;
        return NULL;
    }
    t = &s->tools[s->ntools++];
    t->chat_index = ci;
    t->out_index = json_array_size(s->output);
    id = api_str(tc, "id");
    if (id == NULL) {
        snprintf(gen, sizeof(gen), "call_%.100s_%zu", s->id, t->out_index);
        id = gen;
    }
    t->call_id = xstrdup(id);
    buf_init(&t->name, DIALECT_ANSWER_MAX);
    buf_init(&t->args, DIALECT_ANSWER_MAX);
    json_array_append_new(s->output, json_null());
    return t;
}

static int tool_delta(struct responses_stream *s, struct buf *out, const json_t *tc, size_t pos)
{
    json_t *fn = json_object_get(tc, "function"), *name = json_object_get(fn, "name");
    json_t *args = json_object_get(fn, "arguments");
    int err = 0, fresh = 0;
    struct rs_tool *t;
    size_t before = s->ntools;

    t = tool_for(s, out, tc, pos, &err);
    if (t == NULL)
        return -1;
    fresh = s->ntools != before;
    if (json_is_string(name) &&
        buf_append(&t->name, json_string_value(name), json_string_length(name)) < 0)
        return -1;
    if (fresh && emit(s, out,
                      json_pack("{s:s, s:I, s:o}", "type", "response.output_item.added",
                                "output_index", (json_int_t)t->out_index, "item",
                                json_pack("{s:o, s:s, s:s, s:s, s:s%, s:s}", "id",
                                          item_id("fc", s->id, t->out_index), "type",
                                          "function_call", "status", "in_progress", "call_id",
                                          t->call_id, "name", t->name.data ? t->name.data : "",
                                          t->name.len, "arguments", ""))) < 0)
        return -1;
    if (!json_is_string(args) || json_string_length(args) == 0)
        return 0;
    if (buf_append(&t->args, json_string_value(args), json_string_length(args)) < 0)
        return -1;
    return emit(s, out,
                json_pack("{s:s, s:o, s:I, s:O}", "type", "response.function_call_arguments.delta",
                          "item_id", item_id("fc", s->id, t->out_index), "output_index",
                          (json_int_t)t->out_index, "delta", args));
}

int responses_stream_chunk(struct responses_stream *s, const json_t *chunk, struct buf *out)
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
    delta = json_object_get(c0, "delta");
    v = json_object_get(delta, "content");
    if (json_is_string(v) && json_string_length(v) > 0 && text_delta(s, out, v, 0) < 0)
        return -1;
    v = json_object_get(delta, "refusal");
    if (json_is_string(v) && json_string_length(v) > 0 && text_delta(s, out, v, 1) < 0)
        return -1;
    json_array_foreach (json_object_get(delta, "tool_calls"), i, tc) {
        if (tool_delta(s, out, tc, i) < 0)
            return -1;
    }
    return 0;
}

int responses_stream_done(struct responses_stream *s, struct buf *out)
{
    const char *why = incomplete_reason(s->finish);
    json_t *r;
    int rc;

    if (s->finished)
        return 0;
    if (stream_start(s, NULL, out) < 0)
        return -1;
    /* An answer of nothing at all is still one empty message. */
    if (json_array_size(s->output) == 0 && msg_open(s, out) < 0)
        return -1;
    if (s->msg_open && s->nparts == 0 && s->ntools == 0 && part_open(s, out, 0) < 0)
        return -1;
    if (msg_close(s, out, why ? "incomplete" : "completed") < 0)
        return -1;
    for (size_t i = 0; i < s->ntools; i++) {
        struct rs_tool *t = &s->tools[i];
        json_t *item = tool_item(s, t, "completed");

        json_array_set_new(s->output, t->out_index, item);
        if (emit(s, out,
                 json_pack("{s:s, s:o, s:I, s:s%}", "type", "response.function_call_arguments.done",
                           "item_id", item_id("fc", s->id, t->out_index), "output_index",
                           (json_int_t)t->out_index, "arguments", t->args.data ? t->args.data : "",
                           t->args.len)) < 0 ||
            emit(s, out,
                 json_pack("{s:s, s:I, s:O}", "type", "response.output_item.done", "output_index",
                           (json_int_t)t->out_index, "item", item)) < 0)
            return -1;
    }
    s->finished = 1;
    r = stream_response(s, "completed");
    finish_response(r, json_incref(s->output), s->finish, s->usage);
    rc = emit(s, out,
              json_pack("{s:s, s:o}", "type", why ? "response.incomplete" : "response.completed",
                        "response", r));
    return rc;
}

int responses_stream_fail(struct responses_stream *s, const struct api_error *e, struct buf *out)
{
    json_t *r, *output;
    size_t i;

    if (s->finished)
        return 0;
    s->finished = 1;
    if (stream_start(s, NULL, out) < 0)
        return -1;
    /* What was said so far: closed items as they are, open ones cut short. */
    output = json_copy(s->output);
    if (s->msg_open)
        json_array_set_new(output, s->msg_index, msg_item(s, "incomplete", 1));
    for (i = 0; i < s->ntools; i++)
        json_array_set_new(output, s->tools[i].out_index, tool_item(s, &s->tools[i], "incomplete"));
    r = stream_response(s, "failed");
    json_object_set_new(r, "output", output);
    json_object_set_new(r, "usage", json_null());
    json_object_set_new(r, "error",
                        json_pack("{s:s, s:s}", "code",
                                  e->status == 429 ? "rate_limit_exceeded" : "server_error",
                                  "message", e->message));
    if (emit(s, out,
             json_pack("{s:s, s:s, s:s, s:s?}", "type", "error", "code",
                       e->code ? e->code : (e->type ? e->type : "api_error"), "message", e->message,
                       "param", e->param)) < 0) {
        json_decref(r);
        return -1;
    }
    return emit(s, out, json_pack("{s:s, s:o}", "type", "response.failed", "response", r));
}

/* ---- the inverses ---- */

/* A chat content part as a Responses one (the inverse of part_to_chat). */
static json_t *part_from_chat(const json_t *p, int assistant)
{
    const char *type = api_str(p, "type");
    json_t *q;

    if (api_streq(type, "text"))
        return json_pack("{s:s, s:O}", "type", assistant ? "output_text" : "input_text", "text",
                         json_object_get(p, "text"));
    if (api_streq(type, "refusal"))
        return json_pack("{s:s, s:O}", "type", "refusal", "refusal", json_object_get(p, "refusal"));
    if (api_streq(type, "image_url")) {
        q = json_pack("{s:s, s:O}", "type", "input_image", "image_url",
                      json_object_get(json_object_get(p, "image_url"), "url"));
        api_copy(q, "detail", json_object_get(p, "image_url"), "detail");
        return q;
    }
    if (api_streq(type, "file")) {
        q = json_pack("{s:s}", "type", "input_file");
        json_object_update(q, json_object_get(p, "file"));
        return q;
    }
    return json_deep_copy(p); /* input_audio has the same shape */
}

static json_t *content_from_chat(const json_t *c, int assistant)
{
    json_t *parts, *p;
    size_t i;

    if (!json_is_array(c))
        return json_incref((json_t *)c);
    parts = json_array();
    json_array_foreach (c, i, p)
        json_array_append_new(parts, part_from_chat(p, assistant));
    return parts;
}

json_t *responses_request_from_chat(const json_t *chat)
{
    json_t *req = json_object(), *input = json_array(), *m, *tc, *v, *t;
    size_t i, k;

    api_copy(req, "model", chat, "model");
    json_array_foreach (json_object_get(chat, "messages"), i, m) {
        const char *role = api_str(m, "role");
        json_t *content = json_object_get(m, "content");

        if (api_streq(role, "tool")) {
            json_array_append_new(input,
                                  json_pack("{s:s, s:O, s:o}", "type", "function_call_output",
                                            "call_id", json_object_get(m, "tool_call_id"), "output",
                                            content_from_chat(content, 0)));
            continue;
        }
        /* Always the message, even an assistant's null: its calls then
         * join it, as they joined it on the way in. */
        json_array_append_new(input,
                              json_pack("{s:s, s:o}", "role", role, "content",
                                        content_from_chat(content, api_streq(role, "assistant"))));
        json_array_foreach (json_object_get(m, "tool_calls"), k, tc) {
            json_t *fn = json_object_get(tc, "function");

            json_array_append_new(input, json_pack("{s:s, s:O, s:O, s:O}", "type", "function_call",
                                                   "call_id", json_object_get(tc, "id"), "name",
                                                   json_object_get(fn, "name"), "arguments",
                                                   json_object_get(fn, "arguments")));
        }
    }
    json_object_set_new(req, "input", input);
    v = json_object_get(chat, "tools");
    if (json_is_array(v)) {
        json_t *tools = json_array();

        json_array_foreach (v, i, t) {
            json_t *f = json_pack("{s:s}", "type", "function");

            json_object_update(f, json_object_get(t, "function"));
            json_array_append_new(tools, f);
        }
        json_object_set_new(req, "tools", tools);
    }
    v = json_object_get(chat, "tool_choice");
    if (json_is_object(v))
        json_object_set_new(req, "tool_choice",
                            json_pack("{s:s, s:O}", "type", "function", "name",
                                      json_object_get(json_object_get(v, "function"), "name")));
    else
        api_copy(req, "tool_choice", chat, "tool_choice");
    v = json_object_get(chat, "response_format");
    if (api_streq(api_str(v, "type"), "json_schema")) {
        json_t *f = json_pack("{s:s}", "type", "json_schema");

        json_object_update(f, json_object_get(v, "json_schema"));
        json_object_set_new(req, "text", json_pack("{s:o}", "format", f));
    } else if (v) {
        json_object_set_new(req, "text", json_pack("{s:O}", "format", v));
    }
    api_copy(req, "max_output_tokens", chat, "max_tokens");
    api_copy(req, "temperature", chat, "temperature");
    api_copy(req, "top_p", chat, "top_p");
    api_copy(req, "parallel_tool_calls", chat, "parallel_tool_calls");
    api_copy(req, "user", chat, "user");
    api_copy(req, "stream", chat, "stream");
    v = json_object_get(chat, "reasoning_effort");
    if (v)
        json_object_set_new(req, "reasoning", json_pack("{s:O}", "effort", v));
    return req;
}

json_t *responses_answer_to_chat(const json_t *resp)
{
    json_t *msg = json_pack("{s:s, s:n}", "role", "assistant", "content"), *calls = json_array();
    json_t *item, *u = json_object_get(resp, "usage"), *usage = json_null(), *p;
    const char *reason = api_str(json_object_get(resp, "incomplete_details"), "reason");
    const char *finish;
    struct buf text;
    int has_text = 0;
    size_t i, k;

    buf_init(&text, DIALECT_ANSWER_MAX);
    json_array_foreach (json_object_get(resp, "output"), i, item) {
        if (api_streq(api_str(item, "type"), "function_call")) {
            json_array_append_new(calls,
                                  json_pack("{s:O, s:s, s:{s:O, s:O}}", "id",
                                            json_object_get(item, "call_id"), "type", "function",
                                            "function", "name", json_object_get(item, "name"),
                                            "arguments", json_object_get(item, "arguments")));
            continue;
        }
        json_array_foreach (json_object_get(item, "content"), k, p) {
            if (api_streq(api_str(p, "type"), "output_text")) {
                has_text = 1;
                if (buf_puts(&text, api_str(p, "text") ? api_str(p, "text") : "") < 0)
                    break;
            } else if (api_streq(api_str(p, "type"), "refusal")) {
                api_copy(msg, "refusal", p, "refusal");
            }
        }
    }
    if (has_text)
        json_object_set_new(msg, "content", json_stringn(text.data ? text.data : "", text.len));
    buf_free(&text);
    if (json_array_size(calls))
        json_object_set_new(msg, "tool_calls", calls);
    else
        json_decref(calls);
    if (api_streq(reason, "max_output_tokens"))
        finish = "length";
    else if (api_streq(reason, "content_filter"))
        finish = "content_filter";
    else
        finish = json_object_get(msg, "tool_calls") ? "tool_calls" : "stop";
    if (json_is_object(u))
        usage = json_pack(
            "{s:O, s:O, s:O, s:{s:O}, s:{s:O}}", "prompt_tokens",
            json_object_get(u, "input_tokens"), "completion_tokens",
            json_object_get(u, "output_tokens"), "total_tokens", json_object_get(u, "total_tokens"),
            "prompt_tokens_details", "cached_tokens",
            json_object_get(json_object_get(u, "input_tokens_details"), "cached_tokens"),
            "completion_tokens_details", "reasoning_tokens",
            json_object_get(json_object_get(u, "output_tokens_details"), "reasoning_tokens"));
    return json_pack("{s:O, s:s, s:O, s:O, s:[{s:i, s:o, s:s, s:n}], s:o}", "id",
                     json_object_get(resp, "id"), "object", "chat.completion", "created",
                     json_object_get(resp, "created_at"), "model", json_object_get(resp, "model"),
                     "choices", "index", 0, "message", msg, "finish_reason", finish, "logprobs",
                     "usage", usage);
}
