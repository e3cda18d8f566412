/* mock_http.c - the request parser of sluice-mock; see mock_http.h.
 *
 * Strict on purpose: a test double that accepted sloppy framing would hide
 * gateway bugs. Every limit is checked before the byte it guards is used, so
 * no input can make the parser read outside buf[0..len).
 */
#include "mock_http.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB (obs-text allowed, as most servers do). */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int mock_http_fail(struct mock_http_req *out, int status, const char *why)
{
    out->status = status;
    out->error = why;
    return -1;
}

static int name_is(const struct mock_http_header *h, const char *name)
{
    size_t n = strlen(name);

    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static int value_is(const char *v, size_t len, const char *s)
{
    size_t n = strlen(s);

    return len == n && strncasecmp(v, s, n) == 0;
}

int mock_http_has_token(const char *value, size_t len, const char *token)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;

        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        start = i;
        while (i < len && value[i] != ',')
            i++;
        end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end > start && value_is(value + start, end - start, token))
            return 1;
    }
    return 0;
}

const struct mock_http_header *mock_http_find(const struct mock_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (name_is(&req->headers[i], name))
            return &req->headers[i];
    return NULL;
}

/* Parse the request line buf[p..eol) into out. Return 0 or -1 (out->status set). */
static int parse_request_line(const char *buf, size_t p, size_t eol, struct mock_http_req *out)
{
    size_t i = p, t0, t1;
    const char *v;

    while (i < eol && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == p || i == eol || buf[i] != ' ')
        return mock_http_fail(out, 400, "malformed request line (method)");
    if (i - p > 32)
        return mock_http_fail(out, 501, "unknown method (over 32 bytes)");
    out->method = buf + p;
    out->method_len = i - p;
    t0 = ++i;
    while (i < eol && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f)
        i++;
    if (i == t0 || i == eol || buf[i] != ' ')
        return mock_http_fail(out, 400, "malformed request line (target)");
    t1 = i++;
    if (eol - i != 8)
        return mock_http_fail(out, 400, "malformed request line (version)");
    v = buf + i;
    if (memcmp(v, "HTTP/1.1", 8) == 0)
        out->minor = 1;
    else if (memcmp(v, "HTTP/1.0", 8) == 0)
        out->minor = 0;
    else if (memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
             v[7] >= '0' && v[7] <= '9')
        return mock_http_fail(out, 505, "HTTP version not supported");
    else
        return mock_http_fail(out, 400, "malformed request line (version)");

    /* An absolute-form target (a client that thinks we are a proxy) is
     * reduced to its path, as RFC 9112 3.2.2 asks of origin servers. */
    if (t1 - t0 > 7 && (strncasecmp(buf + t0, "http://", 7) == 0 ||
                        (t1 - t0 > 8 && strncasecmp(buf + t0, "https://", 8) == 0))) {
        t0 += buf[t0 + 4] == ':' ? 7 : 8;
        while (t0 < t1 && buf[t0] != '/' && buf[t0] != '?')
            t0++;
        if (t0 == t1 || buf[t0] == '?') {
            /* "http://host" or "http://host?q": the path is "/". */
            out->path = "/";
            out->path_len = 1;
            if (t0 < t1) {
                out->query = buf + t0 + 1;
                out->query_len = t1 - t0 - 1;
            }
            return 0;
        }
    } else if (buf[t0] != '/' && !(t1 - t0 == 1 && buf[t0] == '*')) {
        return mock_http_fail(out, 400, "malformed request target");
    }
    out->path = buf + t0;
    out->path_len = t1 - t0;
    for (size_t q = t0; q < t1; q++) {
        if (buf[q] == '?') {
            out->path_len = q - t0;
            out->query = buf + q + 1;
            out->query_len = t1 - q - 1;
            break;
        }
    }
    return 0;
}

/* Parse one header line buf[p..eol) and apply its meaning to out.
 * cl_seen tracks Content-Length repeats. Return 0 or -1. */
static int mock_http_parse_header(const char *buf, size_t p, size_t eol, struct mock_http_req *out,
                                  int *cl_seen, int *host_seen, int *te_seen, int *conn_close,
                                  int *conn_keep)
{
    struct mock_http_header *h;
    size_t i = p, v0, v1;

    if (buf[p] == ' ' || buf[p] == '\t')
        return mock_http_fail(out, 400, "obsolete header line folding");
    while (i < eol && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == p || i == eol || buf[i] != ':')
        return mock_http_fail(out, 400, "malformed header line");
    if (out->nheaders == MOCK_HTTP_MAX_HEADERS)
        return mock_http_fail(out, 431, "too many request headers");
    v0 = i + 1;
    while (v0 < eol && (buf[v0] == ' ' || buf[v0] == '\t'))
        v0++;
    v1 = eol;
    while (v1 > v0 && (buf[v1 - 1] == ' ' || buf[v1 - 1] == '\t'))
        v1--;
    for (size_t k = v0; k < v1; k++)
        if (!is_value_char((unsigned char)buf[k]))
            return mock_http_fail(out, 400, "invalid character in header value");
    h = &out->headers[out->nheaders++];
    h->name = buf + p;
    h->name_len = i - p;
    h->value = buf + v0;
    h->value_len = v1 - v0;

    if (name_is(h, "content-length")) {
        size_t n = 0;

        if (h->value_len == 0)
            return mock_http_fail(out, 400, "invalid Content-Length");
        for (size_t k = 0; k < h->value_len; k++)
            if (h->value[k] < '0' || h->value[k] > '9')
                return mock_http_fail(out, 400, "invalid Content-Length");
        /* Twelve digits exceed any body we take and cannot overflow size_t. */
        if (h->value_len > 12)
            return mock_http_fail(out, 413, "request body too large");
        for (size_t k = 0; k < h->value_len; k++)
            n = n * 10 + (size_t)(h->value[k] - '0');
        if (*cl_seen && n != out->body_len)
            return mock_http_fail(out, 400, "conflicting Content-Length headers");
        if (n > MOCK_HTTP_MAX_BODY)
            return mock_http_fail(out, 413, "request body too large");
        *cl_seen = 1;
        out->body_len = n;
    } else if (name_is(h, "transfer-encoding")) {
        *te_seen = 1;
    } else if (name_is(h, "host")) {
        if (*host_seen)
            return mock_http_fail(out, 400, "more than one Host header");
        *host_seen = 1;
    } else if (name_is(h, "connection")) {
        if (mock_http_has_token(h->value, h->value_len, "close"))
            *conn_close = 1;
        if (mock_http_has_token(h->value, h->value_len, "keep-alive"))
            *conn_keep = 1;
    } else if (name_is(h, "expect")) {
        if (!value_is(h->value, h->value_len, "100-continue"))
            return mock_http_fail(out, 417, "unsupported Expect");
        out->expect_continue = 1;
    }
    return 0;
}

/* The request line must be sane as soon as it is complete, so garbage is
 * refused at once rather than after MOCK_HTTP_MAX_HEAD bytes. */
static int check_early(const char *buf, size_t pos, size_t lim, struct mock_http_req *out)
{
    const char *nl = memchr(buf + pos, '\n', lim - pos);
    size_t eol;

    if (nl == NULL)
        return 0;
    eol = (size_t)(nl - buf);
    if (eol == pos || buf[eol - 1] != '\r')
        return mock_http_fail(out, 400, "request line must end with CRLF");
    return parse_request_line(buf, pos, eol - 1, out);
}

int mock_http_parse(const char *buf, size_t len, struct mock_http_req *out)
{
    size_t pos = 0, lim, end, p;
    const char *term;
    int cl_seen = 0, host_seen = 0, te_seen = 0, conn_close = 0, conn_keep = 0;

    out->method = out->path = out->query = out->body = NULL;
    out->method_len = out->path_len = out->query_len = 0;
    out->minor = 1;
    out->nheaders = 0;
    out->head_len = out->body_len = 0;
    out->keep_alive = out->expect_continue = 0;
    out->status = 0;
    out->error = NULL;

    lim = len < MOCK_HTTP_MAX_HEAD ? len : MOCK_HTTP_MAX_HEAD;
    while (pos + 1 < lim && buf[pos] == '\r' && buf[pos + 1] == '\n')
        pos += 2;
    term = pos < lim ? memmem(buf + pos, lim - pos, "\r\n\r\n", 4) : NULL;
    if (term == NULL) {
        if (pos < lim && check_early(buf, pos, lim, out) < 0)
            return -1;
        if (len >= MOCK_HTTP_MAX_HEAD)
            return mock_http_fail(out, 431, "request head too large");
        return 0;
    }
    end = (size_t)(term - buf) + 4;

    /* The request line, then one header a line, up to the blank line. Lines
     * end in CRLF; a bare CR or LF inside a line is an invalid character. */
    p = pos;
    for (int first = 1;; first = 0) {
        const char *crlf = memmem(buf + p, end - p, "\r\n", 2);
        size_t eol = (size_t)(crlf - buf); /* found: the head ends in CRLFCRLF */

        if (eol == p) {
            if (first)
                return mock_http_fail(out, 400, "empty request line");
            break; /* the blank line */
        }
        for (size_t k = p; k < eol; k++)
            if (buf[k] == '\r' || buf[k] == '\n' || buf[k] == '\0')
                return mock_http_fail(out, 400, "bare CR, LF or NUL in request head");
        if (first) {
            if (parse_request_line(buf, p, eol, out) < 0)
                return -1;
        } else if (mock_http_parse_header(buf, p, eol, out, &cl_seen, &host_seen, &te_seen,
                                          &conn_close, &conn_keep) < 0) {
            return -1;
        }
        p = eol + 2;
    }
    if (te_seen)
        return mock_http_fail(out, 411,
                              "Transfer-Encoding request bodies are not supported; "
                              "send Content-Length");
    if (out->minor == 1 && !host_seen)
        return mock_http_fail(out, 400, "HTTP/1.1 request without Host");
    out->keep_alive = out->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    out->head_len = end;
    out->body = buf + end;
    if (len - end < out->body_len)
        return 0;
    return (int)(end + out->body_len);
}
