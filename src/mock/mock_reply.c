/* mock_reply.c - the bytes of sluice-mock's answers (see mock_reply.h).
 *
 * A reply's buffer is sized for any answer the generator can render
 * (MOCK_STREAM_MAX) plus its head, so an append that fails is a broken
 * invariant and panics rather than sending a cut response.
 */
#include "mock_reply.h"
#include "mock_anthropic.h"
#include "api_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *text;
} mock_reply_texts[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {529, "Site Overloaded"},
    {505, "HTTP Version Not Supported"},
};

const char *mock_reply_status_text(int status)
{
    for (size_t i = 0; i < ARRAY_LEN(mock_reply_texts); i++)
        if (mock_reply_texts[i].status == status)
            return mock_reply_texts[i].text;
    return "Status";
}

/* OpenAI's error "type" for a status. */
static const char *mock_reply_error_type(int status)
{
    if (status == 429)
        return "requests";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

void mock_reply_init(struct mock_reply *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->data, MOCK_REPLY_MAX);
}

void mock_reply_free(struct mock_reply *r)
{
    buf_free(&r->data);
    mock_stream_free(&r->stream);
}

void mock_reply_start(struct mock_reply *r, unsigned long long seq, int keep_alive, int http10,
                      int head_only)
{
    buf_reset(&r->data);
    mock_stream_free(&r->stream);
    r->seq = seq;
    r->keep_alive = keep_alive;
    r->http10 = http10;
    r->head_only = head_only;
    r->anthropic = 0;
    r->act = MOCK_REPLY_SEND;
    r->after = keep_alive ? MOCK_REPLY_KEEP : MOCK_REPLY_LINGER;
    r->delay_ms = 0;
    r->stop_step = 0;
    r->interval_us = 0;
    r->truncate = 0;
}

/* Start r->data with the status line and the headers every answer has.
 * `extra` is more header lines, or NULL. */
static void mock_reply_head(struct mock_reply *r, int status, const char *ctype, const char *extra)
{
    buf_reset(&r->data);
    if (buf_printf(&r->data,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s: req_mock_%llu\r\n"
                   "%s%s%s",
                   status, mock_reply_status_text(status), ctype,
                   r->anthropic ? "request-id" : "x-request-id", r->seq,
                   r->anthropic ? "" : "openai-processing-ms: 1\r\n", extra ? extra : "",
                   !r->keep_alive ? "Connection: close\r\n"
                   : r->http10    ? "Connection: keep-alive\r\n"
                                  : "") < 0)
        sl_panic("mock: a response head outgrew its buffer");
}

void mock_reply_send(struct mock_reply *r, int status, const char *ctype, const char *extra,
                     const char *body, size_t len)
{
    mock_reply_head(r, status, ctype, extra);
    if (buf_printf(&r->data, "Content-Length: %zu\r\n\r\n", len) < 0 ||
        buf_append(&r->data, body, r->head_only ? 0 : len) < 0)
        sl_panic("mock: a response outgrew its buffer");
    r->act = MOCK_REPLY_SEND;
    r->after = r->keep_alive ? MOCK_REPLY_KEEP : MOCK_REPLY_LINGER;
}

void mock_reply_error(struct mock_reply *r, int status, const char *code, const char *param,
                      const char *message, const char *extra)
{
    json_t *e;
    char *body, rid[48];

    snprintf(rid, sizeof(rid), "req_mock_%llu", r->seq);
    if (r->anthropic)
        e = json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type",
                      api_anthropic_error_type(status), "message", message, "request_id", rid);
    else
        e = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type",
                      mock_reply_error_type(status), "param", param, "code", code);
    if (e == NULL) /* a message that is not UTF-8 */
        e = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", "sluice-mock: bad request",
                      "type", mock_reply_error_type(status), "param", "code");
    body = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    mock_reply_send(r, status, "application/json", extra, body, strlen(body));
    free(body);
}

void mock_reply_json(struct mock_reply *r, int status, json_t *v)
{
    char *body = json_dumps(v, JSON_COMPACT);

    json_decref(v);
    mock_reply_send(r, status, "application/json", NULL, body, strlen(body));
    free(body);
}

void mock_reply_truncated(struct mock_reply *r, int status, const char *body, size_t len)
{
    mock_reply_head(r, status, "application/json", NULL);
    if (buf_printf(&r->data, "Content-Length: %zu\r\n\r\n", len) < 0 ||
        buf_append(&r->data, body, len / 2) < 0)
        sl_panic("mock: a response outgrew its buffer");
    r->act = MOCK_REPLY_SEND;
    r->after = MOCK_REPLY_CLOSE;
}

void mock_reply_stream(struct mock_reply *r, int status, uint64_t interval_us, int truncate)
{
    /* HTTP/1.0 has no chunked encoding: the body ends at the close. */
    if (r->http10)
        r->keep_alive = 0;
    mock_reply_head(r, status, "text/event-stream; charset=utf-8",
                    r->http10 ? "Cache-Control: no-cache\r\n"
                              : "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
    if (buf_puts(&r->data, "\r\n") < 0)
        sl_panic("mock: a response head outgrew its buffer");
    r->act = MOCK_REPLY_STREAM;
    r->after = r->http10 ? MOCK_REPLY_CLOSE : r->keep_alive ? MOCK_REPLY_KEEP : MOCK_REPLY_LINGER;
    r->interval_us = interval_us;
    r->truncate = truncate;
    r->stop_step = r->stream.nsteps;
    if (truncate) /* the opening step and about half the content */
        r->stop_step = 1 + (r->stream.nsteps - 2) / 2;
}
