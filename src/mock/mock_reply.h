/* mock_reply.h - the answer sluice-mock gives one request, as bytes and an
 * action: a whole response, a stream (its head, then paced steps), a reset
 * or a hang, with a first-byte delay and what the connection does after.
 *
 * The endpoints (mock_ep.c) fill a reply; the connection (mock_conn.c)
 * delivers it. Nothing here touches a socket. The status line, the headers
 * every answer has and the error JSON (OpenAI's, or Anthropic's for an
 * Anthropic request) are made here and nowhere else.
 */
#ifndef SLUICE_MOCK_REPLY_H
#define SLUICE_MOCK_REPLY_H

#include "mock_gen.h"
#include "util.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MOCK_REPLY_MAX (128u << 20) /* cap on one whole response or stream head */

enum mock_reply_act {
    MOCK_REPLY_SEND,   /* send data (a whole response) */
    MOCK_REPLY_STREAM, /* send data (the head), then the stream's steps */
    MOCK_REPLY_RESET,  /* "reset" fault: close with RST before any byte */
    MOCK_REPLY_HANG,   /* "hang" fault: never answer */
};

enum mock_reply_after {
    MOCK_REPLY_KEEP,   /* keep the connection for the next request */
    MOCK_REPLY_CLOSE,  /* close as soon as the output is sent ("truncate") */
    MOCK_REPLY_LINGER, /* graceful close: shut for writing, drain, close */
};

struct mock_reply {
    /* Of the request; set by mock_reply_start. */
    unsigned long long seq; /* the number in its request id */
    int keep_alive;         /* the connection may be kept (an HTTP/1.0 stream clears it) */
    int http10;
    int head_only; /* HEAD: headers without the body */
    int anthropic; /* set by the endpoint: Anthropic's header names and error shape */

    /* The answer; set by the mock_reply_* calls below. */
    enum mock_reply_act act;
    enum mock_reply_after after;
    long delay_ms;             /* before the first byte */
    struct buf data;           /* owned: the whole response, or a stream's head */
    struct mock_stream stream; /* owned: a stream's steps */
    size_t stop_step;          /* steps [0, stop_step) are sent */
    uint64_t interval_us;      /* between a stream's content steps */
    int truncate;              /* a stream ends by closing, after stop_step */
};

/* An empty reply, capped at MOCK_REPLY_MAX. Free it with mock_reply_free. */
void mock_reply_init(struct mock_reply *r);
void mock_reply_free(struct mock_reply *r);

/* Start over for a new request: what it is, and an empty answer (an empty
 * MOCK_REPLY_SEND that keeps the connection, or lingers without keep_alive). */
void mock_reply_start(struct mock_reply *r, unsigned long long seq, int keep_alive, int http10,
                      int head_only);

/* A whole response with this body (borrowed, copied). `extra` is more header
 * lines ("Name: value\r\n"), or NULL. */
void mock_reply_send(struct mock_reply *r, int status, const char *ctype, const char *extra,
                     const char *body, size_t len);

/* The error JSON, OpenAI's ({"error":{message,type,param,code}}) or, with
 * r->anthropic, Anthropic's ({"type":"error","error":{type,message},
 * "request_id"}). code, param and extra may be NULL. */
void mock_reply_error(struct mock_reply *r, int status, const char *code, const char *param,
                      const char *message, const char *extra);

/* A JSON response; takes the reference to v. */
void mock_reply_json(struct mock_reply *r, int status, json_t *v);

/* The "truncate" fault on a whole body: promise len bytes, send half of
 * them, close. */
void mock_reply_truncated(struct mock_reply *r, int status, const char *body, size_t len);

/* A stream of r->stream (rendered by the caller; chunked unless http10):
 * its head, the steps every interval_us; with truncate, the opening step
 * and about half the content, then a close. */
void mock_reply_stream(struct mock_reply *r, int status, uint64_t interval_us, int truncate);

/* The reason phrase of an HTTP status ("Status" for one it does not know). */
const char *mock_reply_status_text(int status);

#endif
