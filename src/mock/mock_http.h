/* mock_http.h - the strict, bounded HTTP/1.1 request parser of sluice-mock.
 *
 * It is a pure function over a byte buffer (no I/O, no allocation, no global
 * state), so the server and a fuzz harness call it the same way. The parsed
 * request borrows from the caller's buffer: its pointers are valid only while
 * that buffer is unchanged.
 */
#ifndef SLUICE_MOCK_HTTP_H
#define SLUICE_MOCK_HTTP_H

#include <stddef.h>

#define MOCK_HTTP_MAX_HEAD (16 * 1024)       /* request line + headers: 431 beyond */
#define MOCK_HTTP_MAX_BODY (8 * 1024 * 1024) /* Content-Length: 413 beyond */
#define MOCK_HTTP_MAX_HEADERS 64             /* 431 beyond */

struct mock_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing blanks trimmed */
    size_t value_len;
};

struct mock_http_req {
    const char *method;
    size_t method_len;
    const char *path; /* the target up to '?' (the scheme and host of an
                       * absolute-form target are dropped) */
    size_t path_len;
    const char *query; /* after '?', or NULL when the target has none */
    size_t query_len;
    int minor; /* HTTP/1.minor: 0 or 1 */
    struct mock_http_header headers[MOCK_HTTP_MAX_HEADERS];
    size_t nheaders;
    size_t head_len;     /* bytes up to and including the blank line; 0 while
                          * the head is incomplete */
    size_t body_len;     /* the Content-Length, 0 when absent */
    const char *body;    /* buf + head_len, complete only when parse returned > 0 */
    int keep_alive;      /* the connection may carry another request after this */
    int expect_continue; /* "Expect: 100-continue" was sent */
    int status;          /* on -1: the status to answer with */
    const char *error;   /* on -1: why, a static string */
};

/* Parse one request from buf[0..len).
 *
 * Returns the bytes the whole request occupies (head and body) when it is
 * complete; 0 when more bytes are needed (out->head_len is then non-zero once
 * the head is complete, so the caller can answer "Expect: 100-continue" and
 * knows the total, out->head_len + out->body_len); or -1 on bad input, with
 * out->status (400, 411, 413, 417, 431, 501 or 505) and out->error set. After
 * -1 the connection cannot be resynchronised and must be closed.
 *
 * Leading empty lines are skipped (RFC 9112 2.2). Line ends must be CRLF.
 * Bodies are framed only by Content-Length: any Transfer-Encoding is refused
 * with 411. HTTP/1.1 requests must carry Host. */
int mock_http_parse(const char *buf, size_t len, struct mock_http_req *out);

/* The first header named `name` (ASCII case-insensitive), or NULL. */
const struct mock_http_header *mock_http_find(const struct mock_http_req *req, const char *name);

/* 1 if the header value, a comma-separated list, contains `token`
 * (case-insensitive), else 0. */
int mock_http_has_token(const char *value, size_t len, const char *token);

#endif
