/* api_common.c - see api_common.h. */
#include "api_common.h"
#include "caps.h"
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *api_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int api_streq(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

int api_fail(struct api_error *err, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;

    err->status = 400;
    err->type = "invalid_request_error";
    err->code = code;
    err->param = param;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void api_copy(json_t *to, const char *to_key, const json_t *from, const char *key)
{
    json_t *v = json_object_get(from, key);

    if (v && !json_is_null(v))
        json_object_set(to, to_key, v);
}

int api_check(const json_t *o, const char *key, json_type want, const char *what,
              struct api_error *err)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v) || json_typeof(v) == want ||
        (want == JSON_REAL && json_is_integer(v)) || (want == JSON_TRUE && json_is_boolean(v)))
        return 0;
    return api_fail(err, key, NULL, "Invalid type for '%s': expected %s.", key, what);
}

json_t *api_content_text(const json_t *content)
{
    json_t *p, *s;
    struct buf b;
    size_t i;

    if (json_is_string(content))
        return json_incref((json_t *)content);
    if (!json_is_array(content))
        return NULL;
    buf_init(&b, DIALECT_ANSWER_MAX);
    json_array_foreach (content, i, p) {
        json_t *t = json_object_get(p, "text");

        if (json_is_string(t) && buf_append(&b, json_string_value(t), json_string_length(t)) < 0)
            break;
    }
    s = json_stringn(b.data ? b.data : "", b.len);
    buf_free(&b);
    return s;
}

const json_t *api_chunk_choice(const json_t *chunk, json_t **usage, char *finish, size_t finish_len)
{
    json_t *u = json_object_get(chunk, "usage");
    json_t *c0 = json_array_get(json_object_get(chunk, "choices"), 0);
    const char *f = api_str(c0, "finish_reason");

    if (json_is_object(u)) {
        json_decref(*usage);
        *usage = json_incref(u);
    }
    if (c0 == NULL || json_integer_value(json_object_get(c0, "index")) != 0)
        return NULL;
    if (f)
        snprintf(finish, finish_len, "%s", f);
    return c0;
}

json_t *api_collapse(json_t *parts)
{
    json_t *s;

    if (json_array_size(parts) != 1 ||
        !api_streq(api_str(json_array_get(parts, 0), "type"), "text"))
        return parts;
    s = json_incref(json_object_get(json_array_get(parts, 0), "text"));
    json_decref(parts);
    return s;
}

/* The shortest of %.15g, %.16g and %.17g that reads back as d; an integral
 * value keeps a ".0", so that it reads back as a real, as jansson's does. */
static int put_real(struct buf *out, double d)
{
    char s[40];
    int prec;

    for (prec = 15; prec < 17; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    if (prec == 17)
        snprintf(s, sizeof(s), "%.17g", d);
    if (strspn(s, "-0123456789") == strlen(s))
        return buf_printf(out, "%s.0", s);
    return buf_puts(out, s);
}

int api_dump(struct buf *out, const json_t *v)
{
    const char *key;
    json_t *x;
    size_t i;
    int first = 1;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (buf_append(out, "{", 1) < 0)
            return -1;
        json_object_foreach ((json_t *)v, key, x) {
            if ((!first && buf_append(out, ",", 1) < 0) ||
                buf_put_json_strn(out, key, strlen(key), SIZE_MAX) < 0 ||
                buf_append(out, ":", 1) < 0 || api_dump(out, x) < 0)
                return -1;
            first = 0;
        }
        return buf_append(out, "}", 1);
    case JSON_ARRAY:
        if (buf_append(out, "[", 1) < 0)
            return -1;
        json_array_foreach (v, i, x) {
            if ((i && buf_append(out, ",", 1) < 0) || api_dump(out, x) < 0)
                return -1;
        }
        return buf_append(out, "]", 1);
    case JSON_STRING:
        return buf_put_json_strn(out, json_string_value(v), json_string_length(v), SIZE_MAX);
    case JSON_INTEGER:
        return buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return put_real(out, json_real_value(v));
    case JSON_TRUE:
        return buf_append(out, "true", 4);
    case JSON_FALSE:
        return buf_append(out, "false", 5);
    case JSON_NULL:
        return buf_append(out, "null", 4);
    }
    return -1;
}

int api_write_event(struct buf *out, const char *name, const json_t *data)
{
    if (name && (buf_append(out, "event: ", 7) < 0 || buf_puts(out, name) < 0 ||
                 buf_append(out, "\n", 1) < 0))
        return -1;
    if (buf_append(out, "data: ", 6) < 0 || api_dump(out, data) < 0)
        return -1;
    return buf_append(out, "\n\n", 2);
}

const char *api_anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 504:
        return "timeout_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 || status < 400 ? "api_error" : "invalid_request_error";
    }
}
