/* provider_openai.c - OpenAI-compatible and Azure OpenAI upstreams; see
 * provider.h. */
#include "provider.h"
#include "caps.h"

#include "jscan.h"

#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Copy the members of the object the reader has just entered into out, each
 * as it was written, except one named drop (or none). *comma: a member is
 * already in out. 0, or -1. */
static int copy_members(struct jscan *js, const char *drop, struct buf *out, int *comma)
{
    struct jtok k, v;
    int m;

    while ((m = jscan_member(js, &k)) == 1) {
        const char *start = k.s - 1; /* the key's opening quote */
        int keep = drop == NULL || !jtok_eq(&k, drop);

        if (jscan_value(js, &v) < 0 || jscan_skip(js, &v) < 0)
            return -1;
        if (keep) {
            if ((*comma && buf_append(out, ",", 1) < 0) ||
                buf_append(out, start, (size_t)(js->p - start)) < 0)
                return -1;
            *comma = 1;
        }
    }
    return m;
}

/* The client's body as it goes upstream: "model" is the model's id; a
 * stream asks for "stream": true and stream_options.include_usage; a body
 * that said "stream" is otherwise sent with "stream": false and no
 * stream_options. Every other member is copied as the client wrote it:
 * json_dumps would rewrite numbers (0.7 becomes 0.69999999999999996) and
 * costs a tree. 0, or -1 if text is not an object (out is then to be
 * dropped). */
static int splice_body(const char *text, size_t len, const char *id, int stream, struct buf *out)
{
    struct jscan js;
    struct jtok t, k, v;
    struct buf so, so_raw; /* stream_options' members but include_usage; the member as written */
    int so_comma = 0, had_stream = 0, m, rc = -1, err;

    buf_init(&so, len);
    buf_init(&so_raw, len);
    jscan_init(&js, text, len);
    if (jscan_value(&js, &t) < 0 || t.type != JT_OBJECT)
        goto out;
    err = buf_puts(out, "{\"model\":");
    err |= buf_put_json_str(out, id);
    while ((m = jscan_member(&js, &k)) == 1) {
        const char *start = k.s - 1;

        if (jscan_value(&js, &v) < 0)
            goto out;
        if (jtok_eq(&k, "stream_options")) {
            buf_reset(&so);
            so_comma = 0;
            if (v.type == JT_OBJECT && copy_members(&js, "include_usage", &so, &so_comma) < 0)
                goto out;
            if (v.type != JT_OBJECT && jscan_skip(&js, &v) < 0)
                goto out;
            buf_reset(&so_raw);
            err |= buf_append(&so_raw, start, (size_t)(js.p - start));
            continue;
        }
        if (jscan_skip(&js, &v) < 0)
            goto out;
        if (jtok_eq(&k, "stream")) {
            had_stream = 1;
        } else if (!jtok_eq(&k, "model")) {
            err |= buf_append(out, ",", 1);
            err |= buf_append(out, start, (size_t)(js.p - start));
        }
    }
    if (m < 0 || jscan_end(&js) < 0)
        goto out;
    if (stream) {
        err |= buf_puts(out, ",\"stream\":true,\"stream_options\":{");
        err |= buf_append(out, so.data ? so.data : "", so.len);
        err |= buf_puts(out, so_comma ? ",\"include_usage\":true}" : "\"include_usage\":true}");
    } else if (had_stream) {
        err |= buf_puts(out, ",\"stream\":false");
    } else if (so_raw.len > 0) {
        err |= buf_append(out, ",", 1);
        err |= buf_append(out, so_raw.data, so_raw.len);
    }
    err |= buf_append(out, "}", 1);
    rc = err ? -1 : 0;
out:
    buf_free(&so);
    buf_free(&so_raw);
    return rc;
}

/* The body through a tree, for bodies the gateway changed. */
static char *dump_body(const struct model *m, const json_t *body, int stream)
{
    json_t *out = json_copy((json_t *)body); /* shallow: values are shared */
    char *s;

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
    s = json_dumps(out, JSON_COMPACT);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    json_decref(out);
    return s;
}

void openai_build(const struct model *m, enum endpoint ep, const json_t *body, const char *text,
                  size_t text_len, int stream, const char *client_auth, struct call_spec *spec)
{
    const struct provider *p = m->provider;
    struct curl_slist *h = provider_common_headers(NULL, stream);
    struct buf b;

    if (p->passthrough_auth) {
        /* The client's own credentials, as it sent them. */
        if (client_auth)
            h = provider_header(h, p->type == PROVIDER_AZURE ? "api-key" : "Authorization",
                                client_auth);
    } else if (p->api_key) {
        if (p->type == PROVIDER_AZURE) {
            h = provider_header(h, "api-key", p->api_key);
        } else {
            char *auth = xasprintf("Bearer %s", p->api_key);

            h = provider_header(h, "Authorization", auth);
            free(auth);
        }
    }
    h = provider_extra_headers(h, p);

    memset(spec, 0, sizeof(*spec));
    spec->url = build_url(m, ep);
    spec->headers = h;
    buf_init(&b, text_len + strlen(m->id) + UPSTREAM_BODY_EXTRA);
    if (text && splice_body(text, text_len, m->id, stream, &b) == 0) {
        spec->body = buf_steal(&b, &spec->body_len);
    } else {
        spec->body = dump_body(m, body, stream);
        spec->body_len = strlen(spec->body);
    }
    buf_free(&b);
    provider_call_policy(m, stream, spec);
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

/* ---- reading answers ----
 *
 * Answers are read with jscan, in place: only what is kept is decoded, and no
 * tree is built (jansson's tree was two thirds of the loop's own work on a
 * proxied request). A key given twice counts once, the last time, as in
 * jansson's tree. */

/* A usage object's tokens. */
struct usage_read {
    int object;
    int has_pt, has_ct, has_cached, has_cw;
    long long pt, ct, cached, cw;
};

/* usage.prompt_tokens_details: the cached part of prompt_tokens (OpenAI),
 * and the part written to the cache (Anthropic answers, translated). */
static int read_prompt_details(struct jscan *js, const struct jtok *v, struct usage_read *u)
{
    struct jtok k, n;
    int m;

    u->has_cached = u->has_cw = 0;
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (jtok_eq(&k, "cached_tokens"))
            u->has_cached = jtok_integer(&n, &u->cached);
        else if (jtok_eq(&k, "cache_write_tokens"))
            u->has_cw = jtok_integer(&n, &u->cw);
        if (jscan_skip(js, &n) < 0)
            return -1;
    }
    return m;
}

/* One choice: its text goes straight into a buffer, from len0 on. */
struct choice_read {
    int has_index;
    long long index;
    size_t len0;
    int has_text; /* its text was a string */
    int overflow; /* the text did not fit */
    int has_finish;
    char finish[32];
    double lp_sum; /* over logprobs.content[].logprob */
    long lp_n;
    int logprobs; /* a "logprobs" that is not null */
};

static int read_usage(struct jscan *js, const struct jtok *v, struct usage_read *u)
{
    struct jtok k, n;
    int m;

    memset(u, 0, sizeof(*u));
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    u->object = 1;
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (jtok_eq(&k, "prompt_tokens")) {
            u->has_pt = jtok_integer(&n, &u->pt);
        } else if (jtok_eq(&k, "completion_tokens")) {
            u->has_ct = jtok_integer(&n, &u->ct);
        } else if (jtok_eq(&k, "prompt_tokens_details")) {
            if (read_prompt_details(js, &n, u) < 0)
                return -1;
            continue;
        }
        if (jscan_skip(js, &n) < 0)
            return -1;
    }
    return m;
}

static void commit_usage(const struct usage_read *u, struct reply *r)
{
    if (!u->object)
        return;
    if (u->has_pt)
        r->prompt_tokens = (long)u->pt;
    if (u->has_ct)
        r->completion_tokens = (long)u->ct;
    /* A usage without details has no cached tokens. */
    r->cached_tokens = u->has_cached && u->cached > 0 ? (long)u->cached : 0;
    r->cache_write_tokens = u->has_cw && u->cw > 0 ? (long)u->cw : 0;
    r->has_usage = 1;
}

/* A string (or not) that is a choice's text: decoded into text from len0,
 * replacing any earlier one. */
static void read_text(const struct jtok *v, struct buf *text, struct choice_read *c)
{
    buf_truncate(text, c->len0);
    c->has_text = v->type == JT_STRING;
    c->overflow = c->has_text && jtok_string(v, text) < 0;
}

/* message or delta: {content, ...}. */
static int read_message(struct jscan *js, const struct jtok *v, struct buf *text,
                        struct choice_read *c)
{
    struct jtok k, n;
    int m;

    /* No text until a content is found: a message that is not an object
     * (a string, say) is not its own content. */
    buf_truncate(text, c->len0);
    c->has_text = 0;
    c->overflow = 0;
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (jtok_eq(&k, "content"))
            read_text(&n, text, c);
        if (jscan_skip(js, &n) < 0)
            return -1;
    }
    return m;
}

/* One item of logprobs.content: its logprob, if a finite number. */
static int read_logprob_item(struct jscan *js, const struct jtok *v, int *has, double *lp)
{
    struct jtok k, n;
    int m;

    *has = 0;
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (jtok_eq(&k, "logprob"))
            *has = jtok_number(&n, lp) && isfinite(*lp);
        if (jscan_skip(js, &n) < 0)
            return -1;
    }
    return m;
}

/* logprobs: {content: [{logprob}, ...]}, summed. */
static int read_logprobs(struct jscan *js, const struct jtok *v, struct choice_read *c)
{
    struct jtok k, n, item;
    int m, e, has;
    double lp;

    c->lp_sum = 0;
    c->lp_n = 0;
    c->logprobs = v->type != JT_NULL;
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (!jtok_eq(&k, "content") || n.type != JT_ARRAY) {
            if (jscan_skip(js, &n) < 0)
                return -1;
            if (jtok_eq(&k, "content")) { /* the last content counts */
                c->lp_sum = 0;
                c->lp_n = 0;
            }
            continue;
        }
        c->lp_sum = 0;
        c->lp_n = 0;
        while ((e = jscan_elem(js)) == 1) {
            if (jscan_value(js, &item) < 0 || read_logprob_item(js, &item, &has, &lp) < 0)
                return -1;
            if (has) {
                c->lp_sum += lp;
                c->lp_n++;
            }
        }
        if (e < 0)
            return -1;
    }
    return m;
}

/* One element of choices. delta: a stream chunk's choice (delta.content)
 * rather than a whole one (message.content); completions use text. */
static int read_choice(struct jscan *js, const struct jtok *v, enum endpoint ep, int delta,
                       struct buf *text, struct choice_read *c)
{
    struct jtok k, n;
    int m, r;

    memset(c, 0, sizeof(*c));
    c->len0 = text->len;
    if (v->type != JT_OBJECT)
        return jscan_skip(js, v);
    while ((m = jscan_member(js, &k)) == 1) {
        if (jscan_value(js, &n) < 0)
            return -1;
        if (ep == EP_CHAT && jtok_eq(&k, delta ? "delta" : "message")) {
            r = read_message(js, &n, text, c);
        } else if (jtok_eq(&k, "logprobs")) {
            r = read_logprobs(js, &n, c);
        } else {
            if (jtok_eq(&k, "index")) {
                c->has_index = jtok_integer(&n, &c->index);
            } else if (ep != EP_CHAT && jtok_eq(&k, "text")) {
                read_text(&n, text, c);
            } else if (jtok_eq(&k, "finish_reason")) {
                struct buf scratch;
                size_t len;
                const char *f;

                buf_init(&scratch, n.len);
                f = jtok_view(&n, &scratch, &len);
                c->has_finish = f != NULL;
                if (f) { /* cut to fit, as before */
                    len = len < sizeof(c->finish) - 1 ? len : sizeof(c->finish) - 1;
                    memcpy(c->finish, f, len);
                    c->finish[len] = '\0';
                }
                buf_free(&scratch);
            }
            r = jscan_skip(js, &n); /* a scalar, or what is not read */
        }
        if (r < 0)
            return -1;
    }
    return m;
}

/* Fold choice 0's finish_reason and logprobs into r. */
static void commit_choice(const struct choice_read *c, struct reply *r)
{
    if (c->has_finish)
        memcpy(r->finish_reason, c->finish, sizeof(r->finish_reason));
    r->logprob_sum += c->lp_sum;
    r->logprob_n += c->lp_n;
}

/* The choices array of a whole response into r, replacing any earlier one. */
static int read_choices(struct jscan *js, const struct jtok *v, enum endpoint ep, struct reply *r,
                        struct buf *tmp)
{
    struct choice_read c;
    struct jtok item;
    int e;

    buf_reset(&r->content);
    r->finish_reason[0] = '\0';
    r->logprob_sum = 0;
    r->logprob_n = 0;
    json_decref(r->choices_text);
    r->choices_text = NULL;
    r->nchoices = 0;
    r->any_logprobs = 0;
    if (v->type != JT_ARRAY)
        return jscan_skip(js, v);
    while ((e = jscan_elem(js)) == 1) {
        struct buf *text = r->nchoices == 0 ? &r->content : tmp;

        buf_reset(tmp);
        if (jscan_value(js, &item) < 0 || read_choice(js, &item, ep, 0, text, &c) < 0)
            return -1;
        if (r->nchoices == 0) {
            commit_choice(&c, r);
        } else {
            if (r->choices_text == NULL) {
                r->choices_text = json_array();
                json_array_append_new(
                    r->choices_text,
                    json_stringn(r->content.data ? r->content.data : "", r->content.len));
            }
            json_array_append_new(
                r->choices_text,
                json_stringn(c.has_text && tmp->data ? tmp->data : "", c.has_text ? tmp->len : 0));
        }
        r->any_logprobs |= c.logprobs;
        r->nchoices++;
    }
    return e;
}

/* An "error" member: a string, or an object whose "message" is one. Its
 * text (valid UTF-8, cut to fit) goes in r->error. Null is no error. */
static int read_error(struct jscan *js, const struct jtok *v, struct reply *r)
{
    struct jtok k, n;
    const char *msg = NULL;
    struct buf scratch;
    size_t len = 0;
    int m;

    /* A key given twice counts once, the last time, as in jansson's tree. */
    r->error[0] = '\0';
    r->is_error = v->type != JT_NULL;
    if (v->type == JT_NULL)
        return 0;
    buf_init(&scratch, CONTENT_MAX);
    if (v->type == JT_STRING) {
        msg = jtok_view(v, &scratch, &len);
        m = 0;
    } else if (v->type == JT_OBJECT) {
        while ((m = jscan_member(js, &k)) == 1) {
            if (jscan_value(js, &n) < 0) {
                m = -1;
                break;
            }
            if (jtok_eq(&k, "message")) {
                msg = NULL;
                buf_reset(&scratch);
                if (n.type == JT_STRING)
                    msg = jtok_view(&n, &scratch, &len);
                else if (jscan_skip(js, &n) < 0) {
                    m = -1;
                    break;
                }
            } else if (jscan_skip(js, &n) < 0) {
                m = -1;
                break;
            }
        }
    } else {
        m = jscan_skip(js, v);
    }
    if (m == 0 && msg)
        utf8_copy(r->error, sizeof(r->error), msg, len);
    buf_free(&scratch);
    return m;
}

int provider_parse_response(enum endpoint ep, const char *body, size_t len, struct reply *r)
{
    struct usage_read u = {0}; /* the last usage: each read replaces it */
    struct jscan js;
    struct jtok t, k, v;
    struct buf tmp;
    int m = -1, answer = 0;

    buf_init(&tmp, CONTENT_MAX);
    jscan_init(&js, body, len);
    if (jscan_value(&js, &t) < 0 || t.type != JT_OBJECT)
        goto bad;
    while ((m = jscan_member(&js, &k)) == 1) {
        int rc = 0;

        if (jscan_value(&js, &v) < 0)
            goto bad;
        if (jtok_eq(&k, "usage")) {
            rc = read_usage(&js, &v, &u);
        } else if (ep != EP_EMBEDDINGS && jtok_eq(&k, "choices")) {
            answer = v.type == JT_ARRAY;
            rc = read_choices(&js, &v, ep, r, &tmp);
        } else if (jtok_eq(&k, "error")) {
            rc = read_error(&js, &v, r);
        } else {
            if (ep == EP_EMBEDDINGS && jtok_eq(&k, "data"))
                answer = v.type == JT_ARRAY;
            rc = jscan_skip(&js, &v);
        }
        if (rc < 0)
            goto bad;
    }
    if (m < 0 || jscan_end(&js) < 0)
        goto bad;
    buf_free(&tmp);
    if (r->is_error && !answer) {
        /* A 200 whose body is an error object is a failure, not an answer
         * (some OpenAI-compatible servers and proxies send them). */
        char msg[sizeof(r->error)];

        memcpy(msg, r->error, sizeof(msg));
        reply_free(r);
        reply_init(r);
        r->is_error = 1;
        memcpy(r->error, msg, sizeof(msg));
        return PROVIDER_ERROR_ANSWER;
    }
    r->is_error = 0;
    commit_usage(&u, r);
    return 0;
bad:
    buf_free(&tmp);
    reply_free(r);
    reply_init(r);
    return -1;
}

/* What one chunk's choices add to the reply: only choice 0 is assembled. */
struct chunk_fold {
    struct choice_read c0; /* its finish_reason and logprobs */
    size_t nchoices;
    int array;
    int overflow; /* its text went over the content cap */
};

static int read_chunk_choices(struct jscan *js, const struct jtok *v, enum endpoint ep,
                              struct reply *r, size_t len0, struct chunk_fold *f)
{
    struct choice_read c;
    struct jtok item;
    int e;

    buf_truncate(&r->content, len0); /* a later "choices" replaces this one */
    memset(f, 0, sizeof(*f));
    f->array = v->type == JT_ARRAY;
    if (!f->array)
        return jscan_skip(js, v);
    while ((e = jscan_elem(js)) == 1) {
        size_t before = r->content.len;

        f->nchoices++;
        if (jscan_value(js, &item) < 0 || read_choice(js, &item, ep, 1, &r->content, &c) < 0)
            return -1;
        if (f->overflow || (c.has_index && c.index != 0)) {
            buf_truncate(&r->content, before); /* another choice's text */
            continue;
        }
        if (c.overflow) {
            f->overflow = 1;
            continue;
        }
        if (c.has_finish)
            memcpy(f->c0.finish, c.finish, sizeof(f->c0.finish));
        f->c0.has_finish |= c.has_finish;
        f->c0.lp_sum += c.lp_sum;
        f->c0.lp_n += c.lp_n;
    }
    return e;
}

static void asm_feed(struct assembly *a, const json_t *root);

enum chunk_kind provider_parse_chunk(enum endpoint ep, const char *data, size_t len,
                                     struct reply *r, struct assembly *a)
{
    struct usage_read u = {0}; /* the last usage: each read replaces it */
    struct chunk_fold f = {0};
    struct jscan js;
    struct jtok t, k, v;
    size_t len0 = r->content.len;
    int m, rc, error = 0;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return CHUNK_DONE;
    jscan_init(&js, data, len);
    if (jscan_value(&js, &t) < 0 || t.type != JT_OBJECT)
        goto bad;
    while ((m = jscan_member(&js, &k)) == 1) {
        if (jscan_value(&js, &v) < 0)
            goto bad;
        if (jtok_eq(&k, "usage")) {
            rc = read_usage(&js, &v, &u);
        } else if (jtok_eq(&k, "choices")) {
            rc = read_chunk_choices(&js, &v, ep, r, len0, &f);
        } else {
            error |= jtok_eq(&k, "error");
            rc = jscan_skip(&js, &v);
        }
        if (rc < 0)
            goto bad;
    }
    if (m < 0 || jscan_end(&js) < 0)
        goto bad;
    if (error) {
        buf_truncate(&r->content, len0); /* an error event adds nothing */
        return CHUNK_ERROR;
    }
    if (a) {
        json_t *root = jscan_loadb(data, len, 0, NULL);

        asm_feed(a, root);
        json_decref(root);
    }
    commit_usage(&u, r);
    commit_choice(&f.c0, r);
    if (f.overflow)
        return CHUNK_BAD;
    return u.object && (!f.array || f.nchoices == 0) ? CHUNK_USAGE : CHUNK_DATA;
bad:
    buf_truncate(&r->content, len0);
    return CHUNK_BAD;
}

/* ---- a whole response as a stream ---- */

/* Append `data: <json>\n\n` and free j. 0, or -1 when out is full. */
static int put_event(struct buf *out, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    int err;

    json_decref(j);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    err = buf_printf(out, "data: %s\n\n", s);
    free(s);
    return err;
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
static int put_choice_chunk(struct buf *out, enum endpoint ep, const json_t *resp, size_t index,
                            json_t *delta_or_text, json_t *logprobs, json_t *finish)
{
    json_t *c = chunk_head(resp, ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
    json_t *choice = json_object();

    json_object_set_new(choice, "index", json_integer((json_int_t)index));
    json_object_set_new(choice, ep == EP_CHAT ? "delta" : "text", delta_or_text);
    json_object_set_new(choice, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(choice, "finish_reason", finish ? finish : json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    return put_event(out, c);
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

int provider_sse_from_response(enum endpoint ep, const json_t *resp, int include_usage,
                               struct buf *out)
{
    json_t *choices = json_object_get(resp, "choices"), *c;
    json_t *usage = json_object_get(resp, "usage");
    size_t i;
    int err = 0;

    json_array_foreach (choices, i, c) {
        json_t *msg = json_object_get(c, "message");
        json_t *text = ep == EP_CHAT ? json_object_get(msg, "content") : json_object_get(c, "text");
        json_t *tools = json_object_get(msg, "tool_calls");
        json_t *lp = json_object_get(c, "logprobs");
        const char *s = json_is_string(text) ? json_string_value(text) : NULL;
        size_t len = s ? json_string_length(text) : 0, off = 0;
        int first = 1;

        if (ep == EP_CHAT)
            err |= put_choice_chunk(out, ep, resp, i,
                                    json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
                                    NULL, NULL);
        while (off < len && !err) {
            size_t n = next_piece(s + off, len - off);

            err |= put_choice_chunk(out, ep, resp, i, text_value(ep, s + off, n),
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
            err |= put_choice_chunk(out, ep, resp, i, json_pack("{s:o}", "tool_calls", deltas),
                                    NULL, NULL);
        }
        err |= put_choice_chunk(out, ep, resp, i, ep == EP_CHAT ? json_object() : json_string(""),
                                NULL, json_incref(json_object_get(c, "finish_reason")));
        if (err)
            return -1;
    }
    if (include_usage && json_is_object(usage)) {
        json_t *u = chunk_head(resp, ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");

        json_object_set_new(u, "choices", json_array());
        json_object_set(u, "usage", usage);
        err |= put_event(out, u);
    }
    err |= buf_puts(out, "data: [DONE]\n\n");
    return err ? -1 : 0;
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
