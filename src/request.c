/* request.c - request body validation; see request.h. */
#include "request.h"
#include "caps.h"
#include "jscan.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *endpoint_path(enum endpoint ep)
{
    switch (ep) {
    case EP_CHAT:
        return "/chat/completions";
    case EP_COMPLETIONS:
        return "/completions";
    case EP_EMBEDDINGS:
        return "/embeddings";
    }
    return "/";
}

void api_error_set(struct api_error *e, int status, const char *type, const char *code,
                   const char *param, const char *fmt, ...)
{
    char full[API_ERROR_FORMAT_MAX];
    va_list ap;
    int n;

    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_start(ap, fmt);
    n = vsnprintf(full, sizeof(full), fmt, ap);
    va_end(ap);
    /* Valid UTF-8, cut at a character boundary: the message goes into
     * JSON, and jansson drops a string that is not UTF-8. */
    utf8_copy(e->message, sizeof(e->message), full,
              n < 0                      ? 0
              : (size_t)n < sizeof(full) ? (size_t)n
                                         : sizeof(full) - 1);
}

static int bad(struct api_error *err, const char *param, const char *msg)
{
    api_error_set(err, 400, "invalid_request_error", NULL, param, "%s", msg);
    return -1;
}

/* Count the text a message content carries: a string, or an array of parts
 * of which the text parts count. Anything else is the upstream's business. */
static size_t content_chars(const json_t *content)
{
    size_t n = 0, i;
    json_t *part;

    if (json_is_string(content))
        return json_string_length(content);
    if (!json_is_array(content))
        return 0;
    json_array_foreach (content, i, part) {
        json_t *text = json_object_get(part, "text");

        if (json_is_string(text))
            n += json_string_length(text);
    }
    return n;
}

/* Characters of a string, or of the strings in an array (a prompt or an
 * embeddings input; token arrays count nothing). */
static size_t strings_chars(const json_t *v)
{
    size_t n = 0, i;
    json_t *s;

    if (json_is_string(v))
        return json_string_length(v);
    json_array_foreach (v, i, s) {
        if (json_is_string(s))
            n += json_string_length(s);
    }
    return n;
}

static int check_messages(const json_t *msgs, struct request_info *ri, struct api_error *err)
{
    static const char *roles[] = {"system", "user", "assistant", "tool", "function", "developer"};
    size_t i;
    json_t *m;

    if (msgs == NULL)
        return bad(err, "messages", "Missing required parameter: 'messages'.");
    if (!json_is_array(msgs))
        return bad(err, "messages", "Invalid type for 'messages': expected an array.");
    if (json_array_size(msgs) == 0)
        return bad(err, "messages",
                   "Invalid 'messages': empty array. Expected at least one message.");
    json_array_foreach (msgs, i, m) {
        json_t *role = json_object_get(m, "role");
        json_t *content = json_object_get(m, "content");
        size_t r;

        if (!json_is_object(m))
            return bad(err, "messages", "Invalid type for 'messages[]': expected an object.");
        if (!json_is_string(role))
            return bad(err, "messages", "Missing or invalid 'role' in a message.");
        for (r = 0; r < ARRAY_LEN(roles); r++)
            if (strcmp(json_string_value(role), roles[r]) == 0)
                break;
        if (r == ARRAY_LEN(roles))
            return (api_error_set(err, 400, "invalid_request_error", NULL, "messages",
                                  "Invalid value for 'role': '%.*s'.",
                                  utf8_prec(json_string_value(role), 64), json_string_value(role)),
                    -1);
        if (content && !json_is_string(content) && !json_is_array(content) &&
            !json_is_null(content))
            return bad(err, "messages",
                       "Invalid type for 'content': expected a string, an array or null.");
        ri->prompt_chars += content_chars(content);
    }
    return 0;
}

/* A field, when present, must have the given JSON type. */
static int check_type(const json_t *body, const char *name, int (*is)(const json_t *),
                      const char *what, struct api_error *err)
{
    const json_t *v = json_object_get(body, name);

    if (v == NULL || json_is_null(v) || is(v))
        return 0;
    api_error_set(err, 400, "invalid_request_error", NULL, name,
                  "Invalid type for '%s': expected %s.", name, what);
    return -1;
}

static int is_bool(const json_t *v)
{
    return json_is_boolean(v);
}
static int is_number(const json_t *v)
{
    return json_is_number(v);
}
static int is_integer(const json_t *v)
{
    return json_is_integer(v);
}
static int is_object(const json_t *v)
{
    return json_is_object(v);
}

int request_parse(enum endpoint ep, const char *data, size_t len, struct request_info *out,
                  struct api_error *err)
{
    json_error_t jerr;
    json_t *body, *model, *v;

    memset(out, 0, sizeof(*out));
    out->ep = ep;
    out->n = 1;
    out->temperature = -1;
    body = jscan_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        api_error_set(err, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: %s (line %d, column %d).",
                      jerr.text, jerr.line, jerr.column);
        return -1;
    }
    out->body = body;
    if (!json_is_object(body)) {
        bad(err, NULL, "The request body must be a JSON object.");
        goto fail;
    }
    model = json_object_get(body, "model");
    if (model == NULL) {
        bad(err, "model", "You must provide a model parameter.");
        goto fail;
    }
    if (!json_is_string(model) || json_string_length(model) == 0) {
        bad(err, "model", "Invalid type for 'model': expected a non-empty string.");
        goto fail;
    }
    out->model = json_string_value(model);

    if (check_type(body, "stream", is_bool, "a boolean", err) < 0 ||
        check_type(body, "stream_options", is_object, "an object", err) < 0 ||
        check_type(body, "n", is_integer, "an integer", err) < 0 ||
        check_type(body, "temperature", is_number, "a number", err) < 0 ||
        check_type(body, "top_p", is_number, "a number", err) < 0 ||
        check_type(body, "max_tokens", is_integer, "an integer", err) < 0 ||
        check_type(body, "max_completion_tokens", is_integer, "an integer", err) < 0 ||
        check_type(body, "response_format", is_object, "an object", err) < 0)
        goto fail;

    out->stream = json_is_true(json_object_get(body, "stream"));
    v = json_object_get(json_object_get(body, "stream_options"), "include_usage");
    out->include_usage = json_is_true(v);
    v = json_object_get(body, "n");
    if (json_is_integer(v)) {
        out->n = (long)json_integer_value(v);
        if (out->n < 1 || out->n > 128) {
            bad(err, "n", "Invalid 'n': must be between 1 and 128.");
            goto fail;
        }
    }
    v = json_object_get(body, "temperature");
    if (json_is_number(v))
        out->temperature = json_number_value(v);
    v = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(v))
        v = json_object_get(body, "max_tokens");
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 1) {
            bad(err, "max_tokens", "Invalid 'max_tokens': must be at least 1.");
            goto fail;
        }
        out->max_tokens = (long)json_integer_value(v);
    }
    v = json_object_get(json_object_get(body, "response_format"), "type");
    out->want_json = json_is_string(v) && (strcmp(json_string_value(v), "json_object") == 0 ||
                                           strcmp(json_string_value(v), "json_schema") == 0);
    out->want_logprobs = json_is_true(json_object_get(body, "logprobs"));

    switch (ep) {
    case EP_CHAT:
        if (check_messages(json_object_get(body, "messages"), out, err) < 0)
            goto fail;
        break;
    case EP_COMPLETIONS:
        v = json_object_get(body, "prompt");
        if (v == NULL) {
            bad(err, "prompt", "Missing required parameter: 'prompt'.");
            goto fail;
        }
        if (!json_is_string(v) && !json_is_array(v)) {
            bad(err, "prompt", "Invalid type for 'prompt': expected a string or an array.");
            goto fail;
        }
        out->prompt_chars = strings_chars(v);
        break;
    case EP_EMBEDDINGS:
        v = json_object_get(body, "input");
        if (v == NULL) {
            bad(err, "input", "Missing required parameter: 'input'.");
            goto fail;
        }
        if (!json_is_string(v) && !json_is_array(v)) {
            bad(err, "input", "Invalid type for 'input': expected a string or an array.");
            goto fail;
        }
        if (json_is_string(v) && json_string_length(v) == 0) {
            bad(err, "input", "Invalid 'input': the string must not be empty.");
            goto fail;
        }
        if (out->stream) {
            bad(err, "stream", "Embeddings cannot be streamed.");
            goto fail;
        }
        out->prompt_chars = strings_chars(v);
        break;
    }
    return 0;
fail:
    json_decref(body);
    out->body = NULL;
    out->model = NULL;
    return -1;
}

void request_info_free(struct request_info *ri)
{
    json_decref(ri->body);
    ri->body = NULL;
    ri->model = NULL;
}

char *request_query_text(const struct request_info *ri)
{
    struct buf b;
    json_t *msgs, *m, *v;
    size_t i;

    int err = 0;

    /* The text is shorter than the body it came from, which is capped. */
    buf_init(&b, BODY_HARD_MAX);
    if (ri->ep == EP_CHAT) {
        msgs = json_object_get(ri->body, "messages");
        json_array_foreach (msgs, i, m) {
            v = json_object_get(m, "content");
            if (!json_is_string(v))
                continue;
            if (b.len > 0)
                err |= buf_append(&b, "\n", 1);
            err |= buf_append(&b, json_string_value(v), json_string_length(v));
        }
    } else {
        v = json_object_get(ri->body, ri->ep == EP_COMPLETIONS ? "prompt" : "input");
        if (json_is_string(v))
            err |= buf_append(&b, json_string_value(v), json_string_length(v));
    }
    sl_assert(!err);
    return buf_steal(&b, NULL);
}
