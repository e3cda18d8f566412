/* util.c - see util.h. */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

void sl_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

void sl_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("sluice: panic: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void *oom(size_t n)
{
    sl_panic("out of memory allocating %zu bytes", n);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    return p ? p : oom(n * size);
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0)
        oom(strlen(fmt));
    va_end(ap);
    return p;
}

uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_ms(void)
{
    return now_us() / 1000u;
}

double wall_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

void random_bytes(void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            sl_panic("getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t random_u64(void)
{
    static __thread uint64_t s[4];
    static __thread int seeded;
    uint64_t result, t;

    if (!seeded) {
        do
            random_bytes(s, sizeof(s));
        while ((s[0] | s[1] | s[2] | s[3]) == 0);
        seeded = 1;
    }
    result = rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetch the SHA-256 implementation once: EVP_sha256() makes OpenSSL 3 look
 * it up in its provider tables, under a lock, on every digest. */
static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256_md == NULL)
        sl_panic("OpenSSL has no SHA256");
}

void sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;

    pthread_once(&sha256_once, sha256_fetch);
    if (!EVP_Digest(p, n, out, &len, sha256_md, NULL) || len != 32)
        sl_panic("EVP_Digest(sha256) failed");
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int str_has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->failed = 0;
    buf_truncate(b, 0);
}

/* Over the cap: free what was written, so none of it can go out, and
 * refuse every append until the buffer is reset. */
static int buf_fail(struct buf *b)
{
    buf_free(b);
    b->failed = 1;
    return -1;
}

void buf_truncate(struct buf *b, size_t len)
{
    sl_assert(len <= b->len);
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* Make room for `extra` more bytes plus the terminator. */
static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need;

    if (b->failed)
        return -1;
    if (extra > b->max - b->len)
        return buf_fail(b);
    need = b->len + extra;
    if (need > b->cap || b->data == NULL) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < need)
            cap *= 2;
        if (cap > b->max)
            cap = b->max;
        b->data = xrealloc(b->data, cap + 1);
        b->cap = cap;
    }
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t fmt_fixed2(char *out, double v)
{
    long double y;
    long long c;
    size_t n = 0;

    if (!(v > -1e15 && v < 1e15))
        return (size_t)snprintf(out, 32, "%.6g", v); /* NaN, inf, or huge */
    /* v * 100 is exact in a long double (53 + 7 bits of mantissa), so
     * rounding it to an integer in the default mode (half to even) rounds
     * as printf does. */
    y = (long double)v * 100;
    c = llrintl(y);
    if (signbit(v))
        out[n++] = '-'; /* printf keeps the sign of -0.001 as -0.00 */
    if (c < 0)
        c = -c;
    n += fmt_u64(out + n, (uint64_t)(c / 100));
    out[n++] = '.';
    out[n++] = (char)('0' + c % 100 / 10);
    out[n++] = (char)('0' + c % 10);
    out[n] = '\0';
    return n;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    size_t room = b->data ? b->cap - b->len : 0;
    int n;

    if (b->failed)
        return -1;
    /* One pass when it fits in what is allocated; a second only to grow. */
    va_copy(cp, ap);
    n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room + 1 : 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return buf_fail(b);
    if (b->data && (size_t)n <= room) {
        b->len += (size_t)n;
        return 0;
    }
    if (b->data)
        b->data[b->len] = '\0'; /* undo the partial first pass */
    if (buf_reserve(b, (size_t)n) < 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

void buf_consume(struct buf *b, size_t n)
{
    sl_assert(n <= b->len);
    if (n == b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len, i;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4) /* continuation byte, overlong lead, or past U+10FFFF */
        return 0;
    len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (n < len)
        return 0;
    cp = c & (0x3fu >> (len - 1));
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
    size_t i;

    if (len <= max)
        return len;
    /* Back up over continuation bytes to the start of the character that
     * straddles max; at most three of them belong to one character. */
    i = max;
    while (i > 0 && max - i < 3 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    if (((unsigned char)s[i] & 0xc0) == 0x80)
        return max; /* not UTF-8 here: any cut is as good */
    return i;
}

int utf8_prec(const char *s, size_t max)
{
    return (int)utf8_cut(s, strnlen(s, max + 1), max);
}

size_t utf8_copy(char *out, size_t cap, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;

    sl_assert(cap >= 4);
    while (i < len) {
        size_t k = utf8_seq(p + i, len - i);
        const unsigned char *src = p + i;

        if (k == 0 || p[i] == 0) {
            src = (const unsigned char *)"\xef\xbf\xbd";
            i += 1;
            k = 3;
        } else {
            i += k;
        }
        if (o + k >= cap)
            break;
        memcpy(out + o, src, k);
        o += k;
    }
    out[o] = '\0';
    return o;
}

int buf_put_json_strn(struct buf *b, const char *s, size_t len, size_t room)
{
    static const char hex[] = "0123456789abcdef";
    static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0, used = 2; /* the two quotes */
    int err;

    sl_assert(room >= 8);
    err = buf_append(b, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char tmp[6];
        size_t k, elen;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            k = elen = 1; /* plain ASCII: part of the run */
        } else if (c >= 0x80) {
            k = utf8_seq(p + i, len - i);
            elen = k ? k : sizeof(repl) - 1;
            if (k == 0) {
                esc = repl;
                k = 1;
            }
        } else {
            k = 1;
            esc = tmp;
            tmp[0] = '\\';
            elen = 2;
            if (c == '"' || c == '\\')
                tmp[1] = (char)c;
            else if (c == '\n')
                tmp[1] = 'n';
            else if (c == '\r')
                tmp[1] = 'r';
            else if (c == '\t')
                tmp[1] = 't';
            else {
                tmp[1] = 'u';
                tmp[2] = '0';
                tmp[3] = '0';
                tmp[4] = hex[c >> 4];
                tmp[5] = hex[c & 15];
                elen = 6;
            }
        }
        if (used + elen > room)
            break;
        used += elen;
        if (esc) {
            err |= buf_append(b, s + run, i - run);
            err |= buf_append(b, esc, elen);
            run = i + k;
        }
        i += k;
    }
    err |= buf_append(b, s + run, i - run);
    err |= buf_append(b, "\"", 1);
    return err ? -1 : 0;
}

int buf_put_json_str(struct buf *b, const char *s)
{
    return buf_put_json_strn(b, s, strlen(s), SIZE_MAX);
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data;

    sl_assert(!b->failed);
    if (p == NULL)
        p = xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
