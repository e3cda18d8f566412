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
                    const char *client_auth, struct call_spec *spec)
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
    if (p->passthrough_auth) {
        /* The client's own credentials, as it sent them. */
        if (client_auth)
            h = add_header(h, p->type == PROVIDER_AZURE ? "api-key" : "Authorization", client_auth);
    } else if (p->api_key) {
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
    spec->connect_timeout_ms =
        m->connect_timeout_ms > 0 ? m->connect_timeout_ms : p->connect_timeout_ms;
    spec->timeout_ms = m->timeout_ms > 0 ? m->timeout_ms : p->timeout_ms;
    spec->first_byte_timeout_ms =
        m->first_byte_timeout_ms > 0 ? m->first_byte_timeout_ms : p->first_byte_timeout_ms;
    spec->idle_timeout_ms = m->idle_timeout_ms > 0 ? m->idle_timeout_ms : p->idle_timeout_ms;
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

static void asm_feed(struct assembly *a, const json_t *root);

enum chunk_kind provider_parse_chunk(enum endpoint ep, const char *data, size_t len,
                                     struct reply *r, struct assembly *a)
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
    if (a)
        asm_feed(a, root);
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

/* ---- assembling a stream into a whole response ---- */

struct asm_tool {
    json_t *obj;     /* id, type, function.name */
    struct buf args; /* function.arguments, as they arrive */
};

struct asm_choice {
    int seen;
    char role[16];
    struct buf content;
    int has_content;
    struct buf refusal;
    int has_refusal;
    json_t *finish;   /* finish_reason */
    json_t *logprobs; /* array of logprobs.content items, or NULL */
    struct asm_tool *tools;
    size_t ntools;
};

struct assembly {
    enum endpoint ep;
    json_t *head; /* id, created, model, system_fingerprint, ... */
    json_t *usage;
    struct asm_choice *choices;
    size_t nchoices;
    int overflow; /* over a cap: the answer is not cached */
};

#define ASM_CHOICES_MAX 128
#define ASM_TOOLS_MAX 128

struct assembly *provider_assembly_new(enum endpoint ep)
{
    struct assembly *a = xcalloc(1, sizeof(*a));

    a->ep = ep;
    a->head = json_object();
    return a;
}

void provider_assembly_free(struct assembly *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nchoices; i++) {
        struct asm_choice *c = &a->choices[i];

        buf_free(&c->content);
        buf_free(&c->refusal);
        json_decref(c->finish);
        json_decref(c->logprobs);
        for (size_t k = 0; k < c->ntools; k++) {
            json_decref(c->tools[k].obj);
            buf_free(&c->tools[k].args);
        }
        free(c->tools);
    }
    free(a->choices);
    json_decref(a->head);
    json_decref(a->usage);
    free(a);
}

static struct asm_choice *asm_choice(struct assembly *a, size_t i)
{
    if (i >= ASM_CHOICES_MAX) {
        a->overflow = 1;
        return NULL;
    }
    if (i >= a->nchoices) {
        a->choices = xrealloc(a->choices, (i + 1) * sizeof(*a->choices));
        memset(a->choices + a->nchoices, 0, (i + 1 - a->nchoices) * sizeof(*a->choices));
        for (size_t k = a->nchoices; k <= i; k++) {
            buf_init(&a->choices[k].content, CONTENT_MAX);
            buf_init(&a->choices[k].refusal, CONTENT_MAX);
        }
        a->nchoices = i + 1;
    }
    a->choices[i].seen = 1;
    return &a->choices[i];
}

static void asm_text(struct assembly *a, struct buf *b, int *has, const json_t *v)
{
    if (!json_is_string(v))
        return;
    *has = 1;
    if (buf_append(b, json_string_value(v), json_string_length(v)) < 0)
        a->overflow = 1;
}

static void asm_tools(struct assembly *a, struct asm_choice *c, const json_t *deltas)
{
    const json_t *d;
    size_t i;

    json_array_foreach ((json_t *)deltas, i, d) {
        json_t *idx = json_object_get(d, "index"), *fn = json_object_get(d, "function");
        size_t k = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
        struct asm_tool *t;
        const char *key;
        json_t *v;

        if (k >= ASM_TOOLS_MAX) {
            a->overflow = 1;
            return;
        }
        if (k >= c->ntools) {
            c->tools = xrealloc(c->tools, (k + 1) * sizeof(*c->tools));
            for (size_t j = c->ntools; j <= k; j++) {
                c->tools[j].obj = json_object();
                buf_init(&c->tools[j].args, CONTENT_MAX);
            }
            c->ntools = k + 1;
        }
        t = &c->tools[k];
        json_object_foreach ((json_t *)d, key, v) {
            if (strcmp(key, "index") != 0 && strcmp(key, "function") != 0)
                json_object_set(t->obj, key, v);
        }
        if (json_is_object(fn)) {
            json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");

            if (json_is_string(name))
                json_object_set(t->obj, "name_", name);
            if (json_is_string(args) &&
                buf_append(&t->args, json_string_value(args), json_string_length(args)) < 0)
                a->overflow = 1;
        }
    }
}

/* Fold one parsed chunk in. */
static void asm_feed(struct assembly *a, const json_t *root)
{
    static const char *head_keys[] = {"id", "created", "model", "system_fingerprint",
                                      "service_tier"};
    json_t *choices = json_object_get(root, "choices"), *ch;
    size_t i;

    for (size_t k = 0; k < ARRAY_LEN(head_keys); k++) {
        json_t *v = json_object_get(root, head_keys[k]);

        if (v && !json_is_null(v) && json_object_get(a->head, head_keys[k]) == NULL)
            json_object_set(a->head, head_keys[k], v);
    }
    if (json_is_object(json_object_get(root, "usage"))) {
        json_decref(a->usage);
        a->usage = json_incref(json_object_get(root, "usage"));
    }
    json_array_foreach (choices, i, ch) {
        json_t *idx = json_object_get(ch, "index");
        struct asm_choice *c =
            asm_choice(a, json_is_integer(idx) ? (size_t)json_integer_value(idx) : i);
        json_t *fr = json_object_get(ch, "finish_reason");
        json_t *lp = json_object_get(json_object_get(ch, "logprobs"), "content");

        if (c == NULL)
            return;
        if (a->ep == EP_CHAT) {
            json_t *delta = json_object_get(ch, "delta"), *role = json_object_get(delta, "role");

            if (json_is_string(role))
                snprintf(c->role, sizeof(c->role), "%s", json_string_value(role));
            asm_text(a, &c->content, &c->has_content, json_object_get(delta, "content"));
            asm_text(a, &c->refusal, &c->has_refusal, json_object_get(delta, "refusal"));
            if (json_is_array(json_object_get(delta, "tool_calls")))
                asm_tools(a, c, json_object_get(delta, "tool_calls"));
        } else {
            asm_text(a, &c->content, &c->has_content, json_object_get(ch, "text"));
        }
        if (json_is_string(fr)) {
            json_decref(c->finish);
            c->finish = json_incref(fr);
        }
        if (json_is_array(lp)) {
            if (c->logprobs == NULL)
                c->logprobs = json_array();
            json_array_extend(c->logprobs, lp);
        }
    }
}

static json_t *asm_message(const struct asm_choice *c)
{
    json_t *m = json_object();

    json_object_set_new(m, "role", json_string(c->role[0] ? c->role : "assistant"));
    json_object_set_new(m, "content",
                        c->has_content || c->ntools == 0
                            ? json_stringn(c->content.data ? c->content.data : "", c->content.len)
                            : json_null());
    if (c->has_refusal)
        json_object_set_new(m, "refusal", json_stringn(c->refusal.data, c->refusal.len));
    if (c->ntools) {
        json_t *tools = json_array();

        for (size_t k = 0; k < c->ntools; k++) {
            json_t *t = json_copy(c->tools[k].obj), *name = json_object_get(t, "name_");

            json_object_set_new(t, "function",
                                json_pack("{s:O?, s:s%}", "name", name, "arguments",
                                          c->tools[k].args.data ? c->tools[k].args.data : "",
                                          c->tools[k].args.len));
            json_object_del(t, "name_");
            json_array_append_new(tools, t);
        }
        json_object_set_new(m, "tool_calls", tools);
    }
    return m;
}

char *provider_assembly_finish(struct assembly *a, size_t *len)
{
    json_t *resp, *choices;
    char *s;

    if (a->overflow)
        return NULL;
    resp = json_copy(a->head);
    json_object_set_new(resp, "object",
                        json_string(a->ep == EP_CHAT ? "chat.completion" : "text_completion"));
    choices = json_array();
    for (size_t i = 0; i < a->nchoices; i++) {
        const struct asm_choice *c = &a->choices[i];
        json_t *o;

        if (!c->seen)
            continue;
        o = json_object();
        json_object_set_new(o, "index", json_integer((json_int_t)i));
        if (a->ep == EP_CHAT)
            json_object_set_new(o, "message", asm_message(c));
        else
            json_object_set_new(
                o, "text", json_stringn(c->content.data ? c->content.data : "", c->content.len));
        json_object_set_new(o, "logprobs",
                            c->logprobs ? json_pack("{s:O}", "content", c->logprobs) : json_null());
        json_object_set(o, "finish_reason", c->finish ? c->finish : json_null());
        json_array_append_new(choices, o);
    }
    json_object_set_new(resp, "choices", choices);
    if (a->usage)
        json_object_set(resp, "usage", a->usage);
    s = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    if (s == NULL)
        return NULL; /* invalid UTF-8 assembled: not cached */
    *len = strlen(s);
    return s;
}
