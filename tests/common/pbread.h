/* pbread.h - a minimal protobuf wire-format reader for the tests and the
 * fuzz harness of otlp.c: it walks fields, nothing more, and knows nothing
 * of sluice's encoder, so it checks that encoder from outside. */
#ifndef SLUICE_TEST_PBREAD_H
#define SLUICE_TEST_PBREAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct pb {
    const uint8_t *p, *end;
};

struct pb_field {
    unsigned num;
    unsigned type;       /* 0 varint, 1 fixed64, 2 bytes, 5 fixed32 */
    uint64_t v;          /* varint or fixed value */
    const uint8_t *data; /* type 2 */
    size_t len;
};

static inline int pb_varint(struct pb *r, uint64_t *out)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The next field: 1, 0 at the end, -1 when malformed. */
static inline int pb_next(struct pb *r, struct pb_field *f)
{
    uint64_t tag;

    if (r->p == r->end)
        return 0;
    if (pb_varint(r, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 536870911u)
        return -1;
    f->num = (unsigned)(tag >> 3);
    f->type = (unsigned)(tag & 7);
    switch (f->type) {
    case 0:
        return pb_varint(r, &f->v) < 0 ? -1 : 1;
    case 1:
        if (r->end - r->p < 8)
            return -1;
        f->v = 0;
        for (int i = 7; i >= 0; i--)
            f->v = f->v << 8 | r->p[i];
        r->p += 8;
        return 1;
    case 2:
        if (pb_varint(r, &f->v) < 0 || f->v > (uint64_t)(r->end - r->p))
            return -1;
        f->data = r->p;
        f->len = (size_t)f->v;
        r->p += f->len;
        return 1;
    case 5:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 1;
    default:
        return -1;
    }
}

static inline struct pb pb_of(const void *p, size_t n)
{
    struct pb r = {(const uint8_t *)p, (const uint8_t *)p + n};

    return r;
}

/* Is p[0..n) valid UTF-8 (RFC 3629)? */
static inline int pb_utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 2;
        else if (c >= 0xe0 && c <= 0xef)
            k = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 4;
        else
            return 0;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
        if (n - i < k || p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t j = 2; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

#endif
