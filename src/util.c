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
    buf_truncate(b, 0);
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

    if (extra > b->max - b->len)
        return -1;
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

    /* One pass when it fits in what is allocated; a second only to grow. */
    va_copy(cp, ap);
    n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room + 1 : 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -1;
    if (b->data && (size_t)n <= room) {
        b->len += (size_t)n;
        return 0;
    }
    if (buf_reserve(b, (size_t)n) < 0) {
        if (b->data)
            b->data[b->len] = '\0';
        return -1;
    }
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

void buf_put_json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, run, (size_t)(s - run));
        run = s + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            buf_append(b, esc, 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            buf_append(b, esc, 6);
        }
    }
    buf_append(b, run, (size_t)(s - run));
    buf_append(b, "\"", 1);
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data;

    if (p == NULL)
        p = xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
