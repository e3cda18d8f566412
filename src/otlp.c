/* otlp.c - the OTLP protobuf encoder; see otlp.h. */
#include "otlp.h"

#include <stdlib.h>
#include <string.h>

enum wire {
    WIRE_VARINT = 0,
    WIRE_I64 = 1,
    WIRE_LEN = 2,
};

/* KeyValue and AnyValue field numbers. */
enum {
    KV_KEY = 1,
    KV_VALUE = 2,
    ANY_STRING = 1,
    ANY_BOOL = 2,
    ANY_INT = 3,
    ANY_DOUBLE = 4,
    ANY_ARRAY = 5,
    ARRAY_VALUES = 1,
};

void otlp_init(struct otlp *w, size_t max)
{
    buf_init(&w->b, max);
    w->failed = 0;
}

void otlp_init_with(struct otlp *w, size_t max, char *data, size_t cap)
{
    otlp_init(w, max);
    w->b.data = data;
    w->b.cap = cap;
    data[0] = '\0';
}

void otlp_init_sized(struct otlp *w, size_t max, size_t size)
{
    otlp_init(w, max);
    if (size > max)
        size = max;
    /* One allocation of the expected size (a struct buf grows from 256 by
     * doubling otherwise). */
    w->b.data = xmalloc(size + 1);
    w->b.data[0] = '\0';
    w->b.cap = size;
}

void otlp_free(struct otlp *w)
{
    buf_free(&w->b);
}

int otlp_failed(const struct otlp *w)
{
    return w->failed;
}

/* Where n more bytes go, past the fast case: grown through buf_append, so
 * that the buffer's cap is kept, and then written in place. NULL (and the
 * writer failed) past the cap. */
static uint8_t *room_slow(struct otlp *w, size_t n)
{
    static const uint8_t zeros[4096];
    size_t len = w->b.len, left = n;

    if (w->failed)
        return NULL;
    /* Append n bytes (in pieces of zeros) to grow within the cap, then take
     * them back. */
    while (left > 0) {
        size_t k = left < sizeof(zeros) ? left : sizeof(zeros);

        if (buf_append(&w->b, zeros, k) < 0) {
            w->failed = 1;
            return NULL;
        }
        left -= k;
    }
    buf_truncate(&w->b, len);
    return (uint8_t *)w->b.data + w->b.len;
}

/* Where n more bytes go; the caller then adds n with put_done. */
static inline uint8_t *room(struct otlp *w, size_t n)
{
    if (__builtin_expect(!w->failed && w->b.data && w->b.cap - w->b.len >= n, 1))
        return (uint8_t *)w->b.data + w->b.len;
    return room_slow(w, n);
}

static inline void put_done(struct otlp *w, size_t n)
{
    w->b.len += n;
    w->b.data[w->b.len] = '\0'; /* a struct buf is always terminated */
}

static inline void put(struct otlp *w, const void *p, size_t n)
{
    uint8_t *d = room(w, n);

    if (d) {
        memcpy(d, p, n);
        put_done(w, n);
    }
}

static inline size_t varint_encode(uint8_t out[10], uint64_t v)
{
    size_t n = 0;

    if (v < 0x80) {
        out[0] = (uint8_t)v;
        return 1;
    }
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline size_t varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A tag and, for a length-delimited field, its length: one append. */
static void put_header(struct otlp *w, unsigned field, enum wire type, int with_len, size_t len)
{
    uint8_t h[20];
    size_t n = varint_encode(h, (uint64_t)field << 3 | type);

    if (with_len)
        n += varint_encode(h + n, len);
    put(w, h, n);
}

size_t otlp_open(struct otlp *w, unsigned field)
{
    uint8_t h[11];
    size_t n = varint_encode(h, (uint64_t)field << 3 | WIRE_LEN);

    /* The tag, and one byte for the length: most messages here are under
     * 128 bytes, and then closing them moves nothing. */
    h[n++] = 0;
    put(w, h, n);
    return w->b.len;
}

void otlp_close(struct otlp *w, size_t mark)
{
    uint8_t h[10];
    size_t body, n;

    if (w->failed)
        return;
    sl_assert(mark >= 1 && mark <= w->b.len);
    body = w->b.len - mark;
    n = varint_encode(h, body);
    if (n > 1) {
        /* A longer length: grow, then slide the body up to make room. */
        put(w, h, n - 1);
        if (w->failed)
            return;
        memmove(w->b.data + mark + n - 1, w->b.data + mark, body);
    }
    memcpy(w->b.data + mark - 1, h, n);
}

void otlp_varint(struct otlp *w, unsigned field, uint64_t v)
{
    uint8_t h[20];
    size_t n = varint_encode(h, (uint64_t)field << 3 | WIRE_VARINT);

    n += varint_encode(h + n, v);
    put(w, h, n);
}

void otlp_fixed64(struct otlp *w, unsigned field, uint64_t v)
{
    uint8_t h[18];
    size_t n = varint_encode(h, (uint64_t)field << 3 | WIRE_I64);

    /* Little-endian on the wire, whatever the host. */
    for (int i = 0; i < 8; i++)
        h[n++] = (uint8_t)(v >> (8 * i));
    put(w, h, n);
}

void otlp_double(struct otlp *w, unsigned field, double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    otlp_fixed64(w, field, bits);
}

void otlp_bytes(struct otlp *w, unsigned field, const void *p, size_t n)
{
    put_header(w, field, WIRE_LEN, 1, n);
    put(w, p, n);
}

void otlp_len_header(struct otlp *w, unsigned field, size_t len)
{
    put_header(w, field, WIRE_LEN, 1, len);
}

size_t otlp_len_header_size(unsigned field, size_t len)
{
    uint8_t h[20];

    return varint_encode(h, (uint64_t)field << 3 | WIRE_LEN) + varint_encode(h, len);
}

void otlp_reserve(struct otlp *w, size_t n)
{
    room(w, n);
}

void otlp_raw(struct otlp *w, const void *p, size_t n)
{
    put(w, p, n);
}

/* ---- UTF-8 ---- */

size_t otlp_utf8_span(const char *s, size_t n, size_t max, int *clean)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    *clean = 1;
    while (i < n) {
        size_t k;

        /* ASCII runs are the common case: no per-character decoding. */
        if (p[i] < 0x80) {
            if (i + 1 > max)
                break;
            i++;
            continue;
        }
        k = utf8_seq(p + i, n - i);
        if (k == 0) {
            *clean = 0;
            return 0;
        }
        if (i + k > max)
            break;
        i += k;
    }
    return i;
}

/* Is p[0..n) the start of a character that was cut off: a lead byte that
 * wants more bytes than there are, followed only by continuation bytes? */
static int utf8_cut_off(const unsigned char *p, size_t n)
{
    size_t want = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                  : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                  : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                 : 0;

    if (want == 0 || n >= want)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return 1;
}

size_t otlp_utf8_clean(const char *s, size_t n, char *out, size_t max)
{
    static const char repl[3] = {(char)0xef, (char)0xbf, (char)0xbd}; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;

    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        const char *src = s + i;
        size_t len = k;

        if (k == 0 && utf8_cut_off(p + i, n - i))
            break; /* text cut mid-character upstream: end before it */
        if (k == 0) {
            src = repl;
            len = sizeof(repl);
            k = 1; /* the bad byte is replaced; decoding goes on after it */
        }
        if (o + len > max)
            break;
        memcpy(out + o, src, len);
        o += len;
        i += k;
    }
    return o;
}

void otlp_str(struct otlp *w, unsigned field, const char *s, size_t n, size_t max)
{
    int clean;
    size_t keep = otlp_utf8_span(s, n, max, &clean);
    char stack[256] = "", *tmp;

    if (clean) {
        otlp_bytes(w, field, s, keep);
        return;
    }
    if (w->failed)
        return;
    /* A cleaned text is at most 3 bytes per input byte, and at most max. */
    if (max > n * 3)
        max = n * 3;
    tmp = max <= sizeof(stack) ? stack : xmalloc(max);
    keep = otlp_utf8_clean(s, n, tmp, max);
    otlp_bytes(w, field, tmp, keep);
    if (tmp != stack)
        free(tmp);
}

/* ---- attributes ---- */

/* Append one KeyValue, field `field`: the key, and an AnyValue of one
 * field whose header (tag, and length for a string) is hdr[0..hlen) and
 * whose bytes are val[0..vlen). Written in place, in one go. */
static void put_kv(struct otlp *w, unsigned field, const char *key, size_t klen, const uint8_t *hdr,
                   size_t hlen, const void *val, size_t vlen)
{
    size_t anylen = hlen + vlen;
    size_t kvlen = 1 + varint_size(klen) + klen + 1 + varint_size(anylen) + anylen;
    size_t total;
    uint8_t *d, *o;

    /* Most attributes are short: every tag and length is one byte. */
    if (__builtin_expect(field < 16 && kvlen < 128, 1)) {
        d = room(w, 2 + kvlen);
        if (d == NULL)
            return;
        d[0] = (uint8_t)(field << 3 | WIRE_LEN);
        d[1] = (uint8_t)kvlen;
        d[2] = KV_KEY << 3 | WIRE_LEN;
        d[3] = (uint8_t)klen;
        memcpy(d + 4, key, klen);
        o = d + 4 + klen;
        o[0] = KV_VALUE << 3 | WIRE_LEN;
        o[1] = (uint8_t)anylen;
        memcpy(o + 2, hdr, hlen);
        if (vlen)
            memcpy(o + 2 + hlen, val, vlen);
        put_done(w, 2 + kvlen);
        return;
    }
    total = varint_size((uint64_t)field << 3 | WIRE_LEN) + varint_size(kvlen) + kvlen;
    d = room(w, total);
    o = d;
    if (d == NULL)
        return;
    o += varint_encode(o, (uint64_t)field << 3 | WIRE_LEN);
    o += varint_encode(o, kvlen);
    *o++ = KV_KEY << 3 | WIRE_LEN;
    o += varint_encode(o, klen);
    memcpy(o, key, klen);
    o += klen;
    *o++ = KV_VALUE << 3 | WIRE_LEN;
    o += varint_encode(o, anylen);
    memcpy(o, hdr, hlen);
    o += hlen;
    if (vlen)
        memcpy(o, val, vlen);
    o += vlen;
    put_done(w, (size_t)(o - d));
}

/* A scalar AnyValue field (varint or fixed64) as a KeyValue. */
static void put_kv_scalar(struct otlp *w, unsigned field, const char *key, unsigned anyfield,
                          enum wire type, uint64_t v)
{
    uint8_t any[11];
    size_t n = varint_encode(any, (uint64_t)anyfield << 3 | type);

    if (type == WIRE_VARINT) {
        n += varint_encode(any + n, v);
    } else {
        for (int i = 0; i < 8; i++)
            any[n++] = (uint8_t)(v >> (8 * i));
    }
    put_kv(w, field, key, strlen(key), any, n, NULL, 0);
}

static size_t kv_open(struct otlp *w, unsigned field, const char *key)
{
    size_t mark = otlp_open(w, field);

    otlp_bytes(w, KV_KEY, key, strlen(key));
    return mark;
}

void otlp_attr_strn(struct otlp *w, unsigned field, const char *key, const char *v, size_t n,
                    size_t max)
{
    size_t keep, kv, any;
    int clean;
    uint8_t hdr[11];

    if (w->failed)
        return;
    keep = otlp_utf8_span(v, n, max, &clean);
    if (clean) {
        size_t h = varint_encode(hdr, ANY_STRING << 3 | WIRE_LEN);

        h += varint_encode(hdr + h, keep);
        put_kv(w, field, key, strlen(key), hdr, h, v, keep);
        return;
    }
    kv = kv_open(w, field, key);
    any = otlp_open(w, KV_VALUE);
    otlp_str(w, ANY_STRING, v, n, max);
    otlp_close(w, any);
    otlp_close(w, kv);
}

void otlp_attr_str(struct otlp *w, unsigned field, const char *key, const char *v, size_t max)
{
    if (v)
        otlp_attr_strn(w, field, key, v, strlen(v), max);
}

void otlp_attr_int(struct otlp *w, unsigned field, const char *key, int64_t v)
{
    /* int64: two's complement, so 10 bytes when negative */
    put_kv_scalar(w, field, key, ANY_INT, WIRE_VARINT, (uint64_t)v);
}

void otlp_attr_double(struct otlp *w, unsigned field, const char *key, double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    put_kv_scalar(w, field, key, ANY_DOUBLE, WIRE_I64, bits);
}

void otlp_attr_bool(struct otlp *w, unsigned field, const char *key, int v)
{
    put_kv_scalar(w, field, key, ANY_BOOL, WIRE_VARINT, v != 0);
}

void otlp_attr_strs(struct otlp *w, unsigned field, const char *key, const char *const *v, size_t n,
                    size_t max)
{
    size_t kv, any, arr;

    if (n == 1) {
        /* One short clean string (a finish reason): the AnyValue's nested
         * headers are known, and it goes in one piece. */
        int clean;
        size_t len = strlen(v[0]), keep = otlp_utf8_span(v[0], len, max, &clean);

        if (clean && keep < 100) {
            uint8_t hdr[6] = {ANY_ARRAY << 3 | WIRE_LEN,    (uint8_t)(keep + 4),
                              ARRAY_VALUES << 3 | WIRE_LEN, (uint8_t)(keep + 2),
                              ANY_STRING << 3 | WIRE_LEN,   (uint8_t)keep};

            put_kv(w, field, key, strlen(key), hdr, sizeof(hdr), v[0], keep);
            return;
        }
    }
    kv = kv_open(w, field, key);
    any = otlp_open(w, KV_VALUE);
    arr = otlp_open(w, ANY_ARRAY);
    for (size_t i = 0; i < n; i++) {
        size_t item = otlp_open(w, ARRAY_VALUES);

        otlp_str(w, ANY_STRING, v[i], strlen(v[i]), max);
        otlp_close(w, item);
    }
    otlp_close(w, arr);
    otlp_close(w, any);
    otlp_close(w, kv);
}

void otlp_attr_ascii(struct otlp *w, unsigned field, const char *key, size_t klen, const char *v)
{
    uint8_t hdr[11];
    size_t n, h;

    if (v == NULL)
        return;
    n = strlen(v);
    if (n > OTLP_ASCII_MAX) {
        otlp_attr_strn(w, field, key, v, n, OTLP_ASCII_MAX);
        return;
    }
    h = varint_encode(hdr, ANY_STRING << 3 | WIRE_LEN);
    h += varint_encode(hdr + h, n);
    put_kv(w, field, key, klen, hdr, h, v, n);
}

size_t otlp_span_open(struct otlp *w, const uint8_t trace_id[16], const uint8_t span_id[8],
                      const uint8_t *parent_id, const char *name, size_t name_len, int kind,
                      uint64_t start_ns)
{
    /* The tag and one length byte are written by otlp_open; the head's
     * fields then go in one piece. name is sluice's own (printable ASCII,
     * at most 255 bytes). */
    size_t mark = otlp_open(w, OTLP_SS_SPANS), total;
    uint8_t *d, *o;

    if (name_len > 255)
        name_len = 255;
    total = 18 + 10 + (parent_id ? 10 : 0) + 1 + varint_size(name_len) + name_len + 2 + 9;
    d = room(w, total);
    if (d == NULL)
        return mark;
    o = d;
    *o++ = OTLP_SPAN_TRACE_ID << 3 | WIRE_LEN;
    *o++ = 16;
    memcpy(o, trace_id, 16);
    o += 16;
    *o++ = OTLP_SPAN_SPAN_ID << 3 | WIRE_LEN;
    *o++ = 8;
    memcpy(o, span_id, 8);
    o += 8;
    if (parent_id) {
        *o++ = OTLP_SPAN_PARENT_SPAN_ID << 3 | WIRE_LEN;
        *o++ = 8;
        memcpy(o, parent_id, 8);
        o += 8;
    }
    *o++ = OTLP_SPAN_NAME << 3 | WIRE_LEN;
    o += varint_encode(o, name_len);
    memcpy(o, name, name_len);
    o += name_len;
    *o++ = OTLP_SPAN_KIND << 3 | WIRE_VARINT;
    *o++ = (uint8_t)kind;
    *o++ = OTLP_SPAN_START << 3 | WIRE_I64;
    for (int i = 0; i < 8; i++)
        *o++ = (uint8_t)(start_ns >> (8 * i));
    put_done(w, (size_t)(o - d));
    return mark;
}
