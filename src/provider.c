/* provider.c - the provider layer's switch: which type builds a call and
 * translates its answers; and what every type's call shares (headers,
 * timeouts). See provider.h. */
#include "provider.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <time.h>

int provider_build(const struct model *m, enum endpoint ep, const json_t *body, const char *text,
                   size_t text_len, int stream, const char *client_auth, struct call_spec *spec,
                   struct api_error *err)
{
    switch (m->provider->type) {
    case PROVIDER_ANTHROPIC:
        return anthropic_build(m, ep, body, stream, client_auth, spec, err);
    case PROVIDER_OPENAI:
    case PROVIDER_AZURE:
        break;
    }
    openai_build(m, ep, body, text, text_len, stream, client_auth, spec);
    return 0;
}

int provider_answer_normalize(const struct model *m, enum endpoint ep, struct buf *body)
{
    struct buf out;
    int rc;

    if (m->provider->type != PROVIDER_ANTHROPIC)
        return 0;
    /* anthropic_build refused every other endpoint. */
    sl_assert(ep == EP_CHAT);
    buf_init(&out, body->max);
    rc = anthropic_answer(body->data ? body->data : "", body->len, (long long)time(NULL), &out);
    /* A 200 with an error body: in OpenAI's error shape, so the reader
     * reports it as the failure it is. */
    if (rc < 0) {
        buf_reset(&out);
        rc = anthropic_error(body->data ? body->data : "", body->len, &out);
    }
    if (rc == 0) {
        buf_free(body);
        *body = out;
    } else {
        buf_free(&out);
    }
    return rc;
}

void provider_error_normalize(const struct model *m, struct buf *body)
{
    struct buf out;

    if (m->provider->type != PROVIDER_ANTHROPIC)
        return;
    buf_init(&out, body->max);
    if (anthropic_error(body->data ? body->data : "", body->len, &out) == 0) {
        buf_free(body);
        *body = out;
    } else {
        buf_free(&out);
    }
}

struct provider_stream *provider_stream_new(const struct model *m)
{
    if (m->provider->type != PROVIDER_ANTHROPIC)
        return NULL;
    return anthropic_stream_new((long long)time(NULL));
}

/* ---- what every type's call shares ---- */

struct curl_slist *provider_header_line(struct curl_slist *h, const char *line)
{
    struct curl_slist *n = curl_slist_append(h, line);

    if (n == NULL)
        sl_panic("curl_slist_append: out of memory");
    return n;
}

struct curl_slist *provider_header(struct curl_slist *h, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);

    h = provider_header_line(h, line);
    free(line);
    return h;
}

struct curl_slist *provider_common_headers(struct curl_slist *h, int stream)
{
    h = provider_header_line(h, "Content-Type: application/json");
    h = provider_header_line(h, stream ? "Accept: text/event-stream" : "Accept: application/json");
    /* No 100-continue round trip for large bodies. */
    h = provider_header_line(h, "Expect:");
    return provider_header_line(h, "User-Agent: sluice/" SLUICE_VERSION);
}

struct curl_slist *provider_extra_headers(struct curl_slist *h, const struct provider *p)
{
    for (size_t i = 0; i < p->nheaders; i++)
        h = provider_header(h, p->headers[i].name, p->headers[i].value);
    return h;
}

void provider_call_policy(const struct model *m, int stream, struct call_spec *spec)
{
    const struct provider *p = m->provider;

    spec->connect_timeout_ms =
        m->connect_timeout_ms > 0 ? m->connect_timeout_ms : p->connect_timeout_ms;
    spec->timeout_ms = m->timeout_ms > 0 ? m->timeout_ms : p->timeout_ms;
    spec->first_byte_timeout_ms =
        m->first_byte_timeout_ms > 0 ? m->first_byte_timeout_ms : p->first_byte_timeout_ms;
    spec->idle_timeout_ms = m->idle_timeout_ms > 0 ? m->idle_timeout_ms : p->idle_timeout_ms;
    spec->small_reads = stream;
    spec->http2 = p->http_version == HTTP_2;
    spec->ca_file = p->ca_file;
}
