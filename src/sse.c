/* sse.c - incremental Server-Sent Events parser; see sse.h. */
#include "sse.h"

#include <string.h>

void sse_init(struct sse *p, size_t max_event)
{
    buf_init(&p->line, max_event);
    buf_init(&p->data, max_event);
    p->event[0] = '\0';
    p->has_data = 0;
    p->skip_lf = 0;
    p->failed = 0;
}

void sse_free(struct sse *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
}

int sse_pending(const struct sse *p)
{
    return p->line.len > 0 || p->has_data;
}

/* Handle one complete line (without its terminator). */
static int sse_line(struct sse *p, const char *s, size_t n, sse_event_cb cb, void *arg)
{
    const char *colon, *value;
    size_t flen, vlen;

    if (n == 0) {
        int r = 0;

        if (p->has_data)
            r = cb(arg, p->event, p->data.data ? p->data.data : "", p->data.len);
        /* Freed, not kept for the next event: a stream spends most of its
         * life waiting, and thousands of them wait at once. */
        buf_free(&p->data);
        p->event[0] = '\0';
        p->has_data = 0;
        return r;
    }
    if (s[0] == ':')
        return 0; /* comment */
    colon = memchr(s, ':', n);
    flen = colon ? (size_t)(colon - s) : n;
    value = colon ? colon + 1 : s + n;
    vlen = n - (size_t)(value - s);
    if (vlen > 0 && value[0] == ' ') {
        value++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (p->has_data && buf_append(&p->data, "\n", 1) < 0)
            return -1;
        if (buf_append(&p->data, value, vlen) < 0)
            return -1;
        p->has_data = 1;
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (vlen >= sizeof(p->event))
            vlen = sizeof(p->event) - 1;
        memcpy(p->event, value, vlen);
        p->event[vlen] = '\0';
    }
    /* id, retry and unknown fields are ignored, as the spec says. */
    return 0;
}

int sse_feed(struct sse *p, const char *bytes, size_t n, sse_event_cb cb, void *arg)
{
    size_t i = 0;

    if (p->failed)
        return -1;
    if (p->skip_lf && n > 0) {
        if (bytes[0] == '\n')
            i = 1;
        p->skip_lf = 0;
    }
    while (i < n) {
        const char *start = bytes + i;
        size_t left = n - i, len = 0;
        int r;

        while (len < left && start[len] != '\n' && start[len] != '\r')
            len++;
        if (len == left) {
            /* No terminator yet: keep the partial line. */
            if (buf_append(&p->line, start, len) < 0)
                goto fail;
            break;
        }
        if (p->line.len > 0) {
            if (buf_append(&p->line, start, len) < 0)
                goto fail;
            r = sse_line(p, p->line.data, p->line.len, cb, arg);
            buf_free(&p->line);
        } else {
            r = sse_line(p, start, len, cb, arg);
        }
        if (r < 0)
            goto fail;
        i += len + 1;
        if (start[len] == '\r') {
            if (i < n && bytes[i] == '\n')
                i++;
            else if (i == n)
                p->skip_lf = 1; /* a CRLF split across chunks */
        }
    }
    return 0;
fail:
    p->failed = 1;
    return -1;
}
