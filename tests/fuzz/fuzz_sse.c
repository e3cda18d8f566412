/* libFuzzer: the SSE parser, fed the input in two pieces split at a point
 * chosen by the first byte, with a small cap so the error path is hit too.
 * The events must be the same however the input is split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/sse.h"

struct acc {
    uint64_t hash;
    size_t n;
};

static int count_cb(void *arg, const char *event, const char *data, size_t len)
{
    struct acc *a = arg;

    for (size_t i = 0; i < len; i++)
        a->hash = (a->hash ^ (unsigned char)data[i]) * 1099511628211u;
    for (; *event; event++)
        a->hash = (a->hash ^ (unsigned char)*event) * 1099511628211u;
    a->n++;
    return 0;
}

static int run(const uint8_t *d, size_t n, size_t cut, struct acc *a)
{
    struct sse p;
    int r;

    sse_init(&p, 4096);
    r = sse_feed(&p, (const char *)d, cut, count_cb, a);
    if (r == 0)
        r = sse_feed(&p, (const char *)d + cut, n - cut, count_cb, a);
    sse_free(&p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct acc whole = {14695981039346656037u, 0}, split = {14695981039346656037u, 0};
    size_t cut;
    int r1, r2;

    if (size < 1)
        return 0;
    cut = data[0] % size;
    r1 = run(data + 1, size - 1, 0, &whole);
    r2 = run(data + 1, size - 1, cut > size - 1 ? size - 1 : cut, &split);
    if (r1 == 0 && r2 == 0 && (whole.n != split.n || whole.hash != split.hash))
        abort();
    return 0;
}
