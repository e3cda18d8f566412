/* mock_ctl.c - the parser of a request's "mock" object (see mock_ctl.h).
 *
 * Pure: no I/O and no globals. The fail_times table is the caller's.
 */
#include "mock_ctl.h"
#include "mock_anthropic.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mock_ctl_fail(struct mock_err *err, const char *param, const char *msg)
{
    err->status = 400;
    err->code = "invalid_mock";
    err->param = param;
    snprintf(err->message, sizeof(err->message), "sluice-mock: %s", msg);
    return -1;
}

static int mock_ctl_int(json_t *v, long min, long max, long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

static const struct {
    const char *name;
    enum mock_fault fault;
} mock_ctl_faults[] = {
    {"hang", MOCK_FAULT_HANG},
    {"reset", MOCK_FAULT_RESET},
    {"truncate", MOCK_FAULT_TRUNCATE},
    {"malformed", MOCK_FAULT_MALFORMED},
    {"error_event", MOCK_FAULT_ERROR_EVENT},
    {"error_200", MOCK_FAULT_ERROR_200},
};

/* One field k = v of a "mock" object into ctl. Return 0, or -1 with err set. */
static int mock_ctl_field(const char *k, json_t *v, struct mock_ctl *ctl, struct mock_err *err)
{
    if (strcmp(k, "content") == 0) {
        if (!json_is_string(v))
            return mock_ctl_fail(err, "mock.content", "'mock.content' must be a string");
        ctl->content = json_string_value(v);
        ctl->content_len = json_string_length(v);
    } else if (strcmp(k, "choices") == 0) {
        size_t i;
        json_t *s;

        if (!json_is_array(v) || json_array_size(v) == 0)
            return mock_ctl_fail(err, "mock.choices", "'mock.choices' must be a non-empty array");
        json_array_foreach (v, i, s) {
            if (!json_is_string(s))
                return mock_ctl_fail(err, "mock.choices", "'mock.choices' must hold strings");
        }
        ctl->choices = v;
    } else if (strcmp(k, "status") == 0) {
        if (mock_ctl_int(v, 200, 599, &ctl->status) < 0)
            return mock_ctl_fail(err, "mock.status", "'mock.status' must be an integer 200..599");
    } else if (strcmp(k, "retry_after") == 0) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400)
            return mock_ctl_fail(err, "mock.retry_after",
                                 "'mock.retry_after' must be a number of seconds 0..86400");
        ctl->retry_after = json_number_value(v);
    } else if (strcmp(k, "error_message") == 0) {
        if (!json_is_string(v))
            return mock_ctl_fail(err, "mock.error_message",
                                 "'mock.error_message' must be a string");
        ctl->error_message = json_string_value(v);
    } else if (strcmp(k, "fault") == 0) {
        const char *f = json_string_value(v);
        size_t i;

        ctl->fault = MOCK_FAULT_NONE;
        for (i = 0; f && i < ARRAY_LEN(mock_ctl_faults); i++)
            if (strcmp(f, mock_ctl_faults[i].name) == 0)
                break;
        if (f && i < ARRAY_LEN(mock_ctl_faults))
            ctl->fault = mock_ctl_faults[i].fault;
        else if (!json_is_null(v))
            return mock_ctl_fail(err, "mock.fault",
                                 "'mock.fault' must be \"hang\", \"reset\", \"truncate\", "
                                 "\"malformed\", \"error_event\" or \"error_200\"");
    } else if (strcmp(k, "first_byte_ms") == 0) {
        if (mock_ctl_int(v, 0, MOCK_CTL_MAX_DELAY_MS, &ctl->first_byte_ms) < 0)
            return mock_ctl_fail(err, "mock.first_byte_ms",
                                 "'mock.first_byte_ms' must be an integer 0..3600000");
    } else if (strcmp(k, "interval_ms") == 0) {
        if (mock_ctl_int(v, 0, MOCK_CTL_MAX_DELAY_MS, &ctl->interval_ms) < 0)
            return mock_ctl_fail(err, "mock.interval_ms",
                                 "'mock.interval_ms' must be an integer 0..3600000");
    } else if (strcmp(k, "chunks") == 0) {
        if (mock_ctl_int(v, 1, MOCK_CTL_MAX_CHUNKS, &ctl->chunks) < 0)
            return mock_ctl_fail(err, "mock.chunks", "'mock.chunks' must be an integer 1..10000");
    } else if (strcmp(k, "logprob") == 0) {
        if (!json_is_number(v) || json_number_value(v) > 0 || !isfinite(json_number_value(v)))
            return mock_ctl_fail(err, "mock.logprob", "'mock.logprob' must be a number <= 0");
        ctl->has_logprob = 1;
        ctl->logprob = json_number_value(v);
    } else if (strcmp(k, "model") == 0) {
        if (!json_is_string(v))
            return mock_ctl_fail(err, "mock.model", "'mock.model' must be a string");
        ctl->model = json_string_value(v);
    } else if (strcmp(k, "fail_times") == 0) {
        if (mock_ctl_int(v, 0, 1000000000, &ctl->fail_times) < 0)
            return mock_ctl_fail(err, "mock.fail_times",
                                 "'mock.fail_times' must be a non-negative integer");
    } else if (strcmp(k, "key") == 0) {
        if (!json_is_string(v))
            return mock_ctl_fail(err, "mock.key", "'mock.key' must be a string");
        ctl->key = json_string_value(v);
    } else if (strcmp(k, "tool_calls") == 0) {
        if (mock_ctl_int(v, 1, MOCK_ANTH_MAX_TOOL_CALLS, &ctl->tool_calls) < 0)
            return mock_ctl_fail(err, "mock.tool_calls",
                                 "'mock.tool_calls' must be an integer 1..16");
    } else if (strcmp(k, "cache_read_tokens") == 0) {
        if (mock_ctl_int(v, 0, 1000000000, &ctl->cache_read) < 0)
            return mock_ctl_fail(err, "mock.cache_read_tokens",
                                 "'mock.cache_read_tokens' must be an integer 0..1000000000");
    } else if (strcmp(k, "cache_write_tokens") == 0) {
        if (mock_ctl_int(v, 0, 1000000000, &ctl->cache_write) < 0)
            return mock_ctl_fail(err, "mock.cache_write_tokens",
                                 "'mock.cache_write_tokens' must be an integer 0..1000000000");
    } else {
        char msg[160];

        snprintf(msg, sizeof(msg), "unknown field 'mock.%.100s'", k);
        return mock_ctl_fail(err, "mock", msg);
    }
    return 0;
}

int mock_ctl_parse(json_t *m, struct mock_ctl *ctl, struct mock_err *err)
{
    const char *k;
    json_t *v;

    memset(ctl, 0, sizeof(*ctl));
    ctl->retry_after = -1;
    ctl->first_byte_ms = ctl->chunks = ctl->interval_ms = ctl->fail_times = -1;
    if (m == NULL || json_is_null(m))
        return 0;
    if (!json_is_object(m))
        return mock_ctl_fail(err, "mock", "'mock' must be an object");
    json_object_foreach (m, k, v) {
        if (mock_ctl_field(k, v, ctl, err) < 0)
            return -1;
    }
    return 0;
}

/* The element of the body's "mock" that applies to model (borrowed, or
 * NULL when none does), having checked every element. Return 0, or -1 with
 * err set. */
static int mock_ctl_select(json_t *mock, const char *model, json_t **sel, struct mock_err *err)
{
    struct mock_ctl ctl;
    size_t i;
    json_t *m;

    *sel = NULL;
    if (mock == NULL || json_is_null(mock))
        return 0;
    if (json_is_object(mock)) {
        if (mock_ctl_parse(mock, &ctl, err) < 0)
            return -1;
        if (ctl.model == NULL || strcmp(ctl.model, model) == 0)
            *sel = mock;
        return 0;
    }
    if (!json_is_array(mock))
        return mock_ctl_fail(err, "mock", "'mock' must be an object or an array of objects");
    json_array_foreach (mock, i, m) {
        if (!json_is_object(m))
            return mock_ctl_fail(err, "mock", "'mock' must be an object or an array of objects");
        if (mock_ctl_parse(m, &ctl, err) < 0)
            return -1;
        if (*sel == NULL && (ctl.model == NULL || strcmp(ctl.model, model) == 0))
            *sel = m;
    }
    return 0;
}

int mock_ctl_from_request(json_t *req, const char *model, json_t *defaults, struct mock_ctl *ctl,
                          struct mock_err *err)
{
    json_t *sel, *d, *eff;

    memset(ctl, 0, sizeof(*ctl));
    if (mock_ctl_select(json_object_get(req, "mock"), model, &sel, err) < 0)
        return -1;
    d = json_object_get(defaults, model);
    if (d == NULL) {
        eff = json_incref(sel);
    } else {
        eff = json_copy(d);
        if (sel)
            json_object_update(eff, sel);
    }
    if (mock_ctl_parse(eff, ctl, err) < 0) {
        json_decref(eff);
        memset(ctl, 0, sizeof(*ctl));
        return -1;
    }
    ctl->obj = eff;
    return 0;
}

void mock_ctl_free(struct mock_ctl *ctl)
{
    json_decref(ctl->obj);
    ctl->obj = NULL;
}

int mock_ctl_gate(json_t *counts, size_t max_keys, struct mock_ctl *ctl, struct mock_err *err)
{
    char *own = NULL;
    const char *key = ctl->key;
    json_t *n;
    json_int_t seen;

    if (ctl->fail_times < 0)
        return 0;
    if (key == NULL)
        key = own = ctl->obj ? json_dumps(ctl->obj, JSON_COMPACT | JSON_SORT_KEYS) : xstrdup("{}");
    if (strlen(key) > MOCK_CTL_MAX_KEY_LEN) {
        char *h = xasprintf("#%016llx", (unsigned long long)mock_hash(key, strlen(key), 0));

        free(own);
        key = own = h;
    }
    n = json_object_get(counts, key);
    if (n == NULL && json_object_size(counts) >= max_keys) {
        free(own);
        return mock_ctl_fail(err, "mock.key", "too many distinct mock keys; POST /_mock/reset");
    }
    seen = n ? json_integer_value(n) + 1 : 1;
    if (n)
        json_integer_set(n, seen);
    else
        json_object_set_new(counts, key, json_integer(seen));
    free(own);
    if (seen > ctl->fail_times) {
        ctl->status = 0;
        ctl->fault = MOCK_FAULT_NONE;
    }
    return 0;
}
