/* provider_openai.c - OpenAI-compatible and Azure OpenAI upstreams; see
 * provider.h. */
#include "provider.h"

#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONTENT_MAX (64u << 20)

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(h, line);

    free(line);
    if (n == NULL)
        sl_panic("curl_slist_append: out of memory");
    return n;
}

static char *build_url(const struct model *m, enum endpoint ep)
{
    const struct provider *p = m->provider;
    char *url, *esc;

    if (p->type != PROVIDER_AZURE)
        return xasprintf("%s%s", p->base_url, endpoint_path(ep));
    /* Azure: the deployment is in the path; escape it, it comes from the
     * config but a deployment name is not a path. */
    esc = curl_easy_escape(NULL, m->id, 0);
    if (esc == NULL)
        sl_panic("curl_easy_escape: out of memory");
    url = xasprintf("%s/openai/deployments/%s%s?api-version=%s", p->base_url, esc,
                    endpoint_path(ep), p->api_version ? p->api_version : "");
    curl_free(esc);
    return url;
}

void provider_build(const struct model *m, enum endpoint ep, const json_t *body, int stream,
                    struct call_spec *spec)
{
    const struct provider *p = m->provider;
    struct curl_slist *h = NULL;
    json_t *out = json_copy((json_t *)body); /* shallow: values are shared */
    size_t i;

    json_object_set_new(out, "model", json_string(m->id));
    if (stream) {
        json_t *so = json_object_get(body, "stream_options");

        so = json_is_object(so) ? json_copy(so) : json_object();
        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(out, "stream", json_true());
        json_object_set_new(out, "stream_options", so);
    } else if (json_object_get(out, "stream")) {
        json_object_set_new(out, "stream", json_false());
        json_object_del(out, "stream_options");
    }

    h = add_header(h, "Content-Type", "application/json");
    h = add_header(h, "Accept", stream ? "text/event-stream" : "application/json");
    /* No 100-continue round trip for large bodies. */
    h = curl_slist_append(h, "Expect:");
    h = add_header(h, "User-Agent", "sluice/" SLUICE_VERSION);
    if (p->api_key) {
        if (p->type == PROVIDER_AZURE) {
            h = add_header(h, "api-key", p->api_key);
        } else {
            char *auth = xasprintf("Bearer %s", p->api_key);

            h = add_header(h, "Authorization", auth);
            free(auth);
        }
    }
    for (i = 0; i < p->nheaders; i++)
        h = add_header(h, p->headers[i].name, p->headers[i].value);

    memset(spec, 0, sizeof(*spec));
    spec->url = build_url(m, ep);
    spec->headers = h;
    spec->body = json_dumps(out, JSON_COMPACT);
    if (spec->body == NULL)
        sl_panic("json_dumps: out of memory");
    spec->body_len = strlen(spec->body);
    spec->connect_timeout_ms = p->connect_timeout_ms;
    spec->timeout_ms = p->timeout_ms;
    spec->first_byte_timeout_ms = p->first_byte_timeout_ms;
    spec->idle_timeout_ms = p->idle_timeout_ms;
    spec->small_reads = stream;
    json_decref(out);
}

void reply_init(struct reply *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->content, CONTENT_MAX);
}

void reply_free(struct reply *r)
{
    buf_free(&r->content);
    json_decref(r->choices_text);
    r->choices_text = NULL;
}

static void take_usage(const json_t *usage, struct reply *r)
{
    json_t *pt = json_object_get(usage, "prompt_tokens");
    json_t *ct = json_object_get(usage, "completion_tokens");

    if (!json_is_object(usage))
        return;
    if (json_is_integer(pt))
        r->prompt_tokens = (long)json_integer_value(pt);
    if (json_is_integer(ct))
        r->completion_tokens = (long)json_integer_value(ct);
    r->has_usage = 1;
}

static void take_finish(const json_t *choice, struct reply *r)
{
    json_t *fr = json_object_get(choice, "finish_reason");
    size_t n;

    if (!json_is_string(fr))
        return;
    n = json_string_length(fr);
    if (n >= sizeof(r->finish_reason))
        n = sizeof(r->finish_reason) - 1;
    memcpy(r->finish_reason, json_string_value(fr), n);
    r->finish_reason[n] = '\0';
}

/* Sum the token logprobs of a choice's logprobs.content array. */
static void take_logprobs(const json_t *choice, struct reply *r)
{
    json_t *items = json_object_get(json_object_get(choice, "logprobs"), "content");
    json_t *it;
    size_t i;

    json_array_foreach (items, i, it) {
        json_t *lp = json_object_get(it, "logprob");

        if (json_is_number(lp) && isfinite(json_number_value(lp))) {
            r->logprob_sum += json_number_value(lp);
            r->logprob_n++;
        }
    }
}

/* The text of a choice: message.content for chat, text for completions. */
static const json_t *choice_text(enum endpoint ep, const json_t *choice)
{
    if (ep == EP_CHAT)
        return json_object_get(json_object_get(choice, "message"), "content");
    return json_object_get(choice, "text");
}

json_t *provider_parse_response(enum endpoint ep, const char *body, size_t len, struct reply *r)
{
    json_t *root = json_loadb(body, len, 0, NULL), *choices, *c;
    size_t i;

    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    take_usage(json_object_get(root, "usage"), r);
    choices = json_object_get(root, "choices");
    if (ep == EP_EMBEDDINGS || !json_is_array(choices))
        return root;
    json_array_foreach (choices, i, c) {
        const json_t *text = choice_text(ep, c);

        if (i == 0) {
            if (json_is_string(text))
                buf_append(&r->content, json_string_value(text), json_string_length(text));
            take_finish(c, r);
            take_logprobs(c, r);
        }
        if (json_array_size(choices) > 1) {
            if (r->choices_text == NULL)
                r->choices_text = json_array();
            json_array_append_new(r->choices_text,
                                  json_string(json_is_string(text) ? json_string_value(text) : ""));
        }
    }
    return root;
}

enum chunk_kind provider_parse_chunk(enum endpoint ep, const char *data, size_t len,
                                     struct reply *r)
{
    json_t *root, *choices, *c, *usage;
    enum chunk_kind kind = CHUNK_DATA;
    size_t i;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return CHUNK_DONE;
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return CHUNK_BAD;
    }
    if (json_object_get(root, "error")) {
        json_decref(root);
        return CHUNK_ERROR;
    }
    choices = json_object_get(root, "choices");
    usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        take_usage(usage, r);
        if (!json_is_array(choices) || json_array_size(choices) == 0)
            kind = CHUNK_USAGE;
    }
    json_array_foreach (choices, i, c) {
        json_t *idx = json_object_get(c, "index");
        const json_t *text;

        if (json_is_integer(idx) && json_integer_value(idx) != 0)
            continue; /* only choice 0 is assembled */
        text = ep == EP_CHAT ? json_object_get(json_object_get(c, "delta"), "content")
                             : json_object_get(c, "text");
        if (json_is_string(text) &&
            buf_append(&r->content, json_string_value(text), json_string_length(text)) < 0) {
            kind = CHUNK_BAD; /* over the content cap */
            break;
        }
        take_finish(c, r);
        take_logprobs(c, r);
    }
    json_decref(root);
    return kind;
}

/* ---- a whole response as a stream ---- */

/* Append `data: <json>\n\n` and free j. */
static void put_event(struct buf *out, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    buf_printf(out, "data: %s\n\n", s);
    free(s);
}

/* A chunk with the response's id, created, model (and fingerprint). */
static json_t *chunk_head(const json_t *resp, const char *object)
{
    json_t *c = json_object();
    const char *keys[] = {"id", "created", "model", "system_fingerprint"};

    json_object_set_new(c, "object", json_string(object));
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(resp, keys[i]);

        if (v)
            json_object_set(c, keys[i], v);
    }
    return c;
}

/* One chunk for one choice: delta (chat) or text (completions). */
static void put_choice_chunk(struct buf *out, enum endpoint ep, const json_t *resp, size_t index,
                             json_t *delta_or_text, json_t *logprobs, json_t *finish)
{
    json_t *c = chunk_head(resp, ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
    json_t *choice = json_object();

    json_object_set_new(choice, "index", json_integer((json_int_t)index));
    json_object_set_new(choice, ep == EP_CHAT ? "delta" : "text", delta_or_text);
    json_object_set_new(choice, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(choice, "finish_reason", finish ? finish : json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    put_event(out, c);
}

/* Split text into pieces of about STREAM_PIECE bytes, cut after a space so a
 * UTF-8 sequence is never split. */
#define STREAM_PIECE 48

static size_t next_piece(const char *s, size_t len)
{
    size_t n = len < STREAM_PIECE ? len : STREAM_PIECE;

    while (n < len && s[n - 1] != ' ')
        n++;
    return n;
}

static json_t *text_value(enum endpoint ep, const char *s, size_t n)
{
    json_t *t = json_stringn(s, n);

    return ep == EP_CHAT ? json_pack("{s:o}", "content", t) : t;
}

void provider_sse_from_response(enum endpoint ep, const json_t *resp, int include_usage,
                                struct buf *out)
{
    json_t *choices = json_object_get(resp, "choices"), *c;
    json_t *usage = json_object_get(resp, "usage");
    size_t i;

    json_array_foreach (choices, i, c) {
        json_t *msg = json_object_get(c, "message");
        json_t *text = ep == EP_CHAT ? json_object_get(msg, "content") : json_object_get(c, "text");
        json_t *tools = json_object_get(msg, "tool_calls");
        json_t *lp = json_object_get(c, "logprobs");
        const char *s = json_is_string(text) ? json_string_value(text) : NULL;
        size_t len = s ? json_string_length(text) : 0, off = 0;
        int first = 1;

        if (ep == EP_CHAT)
            put_choice_chunk(out, ep, resp, i,
                             json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL,
                             NULL);
        while (off < len) {
            size_t n = next_piece(s + off, len - off);

            put_choice_chunk(out, ep, resp, i, text_value(ep, s + off, n),
                             first && json_is_object(lp) ? json_incref(lp) : NULL, NULL);
            first = 0;
            off += n;
        }
        if (ep == EP_CHAT && json_is_array(tools)) {
            json_t *deltas = json_array(), *t;
            size_t k;

            json_array_foreach (tools, k, t) {
                json_t *d = json_deep_copy(t);

                json_object_set_new(d, "index", json_integer((json_int_t)k));
                json_array_append_new(deltas, d);
            }
            put_choice_chunk(out, ep, resp, i, json_pack("{s:o}", "tool_calls", deltas), NULL,
                             NULL);
        }
        put_choice_chunk(out, ep, resp, i, ep == EP_CHAT ? json_object() : json_string(""), NULL,
                         json_incref(json_object_get(c, "finish_reason")));
    }
    if (include_usage && json_is_object(usage)) {
        json_t *u = chunk_head(resp, ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");

        json_object_set_new(u, "choices", json_array());
        json_object_set(u, "usage", usage);
        put_event(out, u);
    }
    buf_puts(out, "data: [DONE]\n\n");
}
