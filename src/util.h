/* util.h - allocation, assertions, clocks and the bounded buffer.
 *
 * Allocation failures abort (zmalloc/h2o style): callers never check for NULL.
 * Every growable buffer has a hard cap given at init (curl's dynbuf "toobig");
 * going over it is an error the caller must handle, never a silent realloc.
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define SLUICE_VERSION "0.1.0"

/* Return values of internal calls: 0, or -1 with the reason set; AGAIN means
 * "would block, try later" (nginx NGX_AGAIN). */
#define SL_OK 0
#define SL_ERR (-1)
#define SL_AGAIN (-2)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

/* Broken invariant: abort with file and line (Redis serverAssert). Never used
 * for bad input. */
#define sl_assert(e) ((e) ? (void)0 : sl_assert_fail(#e, __FILE__, __LINE__))
_Noreturn void sl_assert_fail(const char *expr, const char *file, int line);
_Noreturn void sl_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted allocation; the caller owns the result. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock. */
uint64_t now_us(void);
uint64_t now_ms(void);
/* Wall clock, seconds since the epoch with microseconds. */
double wall_time(void);

/* Strict decimal parsing: the whole string must be a number in range.
 * Return 0, or -1 on any junk, overflow or empty input. */
int parse_long(const char *s, long min, long max, long *out);
int parse_double(const char *s, double *out);

/* Fill `out` with n random bytes from getrandom(2). */
void random_bytes(void *out, size_t n);
/* A fast per-thread pseudo-random number (xoshiro256**, seeded once per
 * thread from getrandom). Not for secrets: for ids and jitter. */
uint64_t random_u64(void);
/* SHA-256 of n bytes into out[32] (OpenSSL; the digest is fetched once). */
void sha256(const void *p, size_t n, unsigned char out[32]);
/* Write 2*n lowercase hex digits of `in` plus a NUL to `out`. */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Decimal digits of v and a NUL into out, which holds at least 21 bytes;
 * returns the number of digits. For hot paths, where printf is slow. */
size_t fmt_u64(char *out, uint64_t v);
/* v as printf's "%.2f" would write it, without printf, for |v| < 1e15
 * (NaN, infinities and larger values as "%.6g"), into out (at least 32
 * bytes); returns the length. */
size_t fmt_fixed2(char *out, double v);

/* Case-insensitive ASCII compare of a NUL-terminated string with a prefix. */
int str_has_prefix(const char *s, const char *prefix);

/* UTF-8. The length of the longest prefix of s[0..len) that is no longer
 * than max bytes and ends on a character boundary (it may still hold invalid
 * sequences: this only avoids cutting a valid character in half). */
size_t utf8_cut(const char *s, size_t len, size_t max);
/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes at s
 * (n of them available) are not one: a stray continuation byte, an overlong
 * form, a surrogate, a code point past U+10FFFF, or a cut sequence. */
size_t utf8_seq(const unsigned char *s, size_t n);
/* The printf precision ("%.*s") that prints at most max bytes of the
 * NUL-terminated s without cutting a character in half. */
int utf8_prec(const char *s, size_t max);
/* Copy s[0..len) into out[cap] (cap >= 4) as valid UTF-8, NUL-terminated:
 * invalid sequences become U+FFFD and the copy stops at a character boundary
 * when out is full. Returns the bytes written, without the NUL. */
size_t utf8_copy(char *out, size_t cap, const char *s, size_t len);

/* A growable byte buffer with a hard cap, in the way of curl's dynbuf.
 * data is always NUL-terminated (the terminator is not counted in len), so
 * text can be used in place.
 *
 * An append that would take len past max is an error, and not a silent
 * one: the buffer's memory is freed and it is marked failed, so every later
 * append fails too and what was half-written can never go out. Callers must
 * look at every append's result (warn_unused_result); a run of appends may
 * be checked once at its end, because a failure sticks. buf_reset (or
 * buf_init) starts the buffer over. The caps live in caps.h. */
struct buf {
    char *data;
    size_t len;
    size_t cap; /* allocated, excluding the terminator slot */
    size_t max; /* hard cap on len */
    int failed; /* an append went over max: empty, and refusing appends */
};

#define BUF_MUST_CHECK __attribute__((warn_unused_result))

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empty the buffer and clear a failure: it may be filled again. */
void buf_reset(struct buf *b);
/* Keep the first len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
/* Append n bytes. Return 0, or -1 if the buffer has failed or len would
 * exceed max (then the buffer fails: freed, and every later append fails). */
int buf_append(struct buf *b, const void *p, size_t n) BUF_MUST_CHECK;
int buf_puts(struct buf *b, const char *s) BUF_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) BUF_MUST_CHECK;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) BUF_MUST_CHECK;
/* Append s (NUL-terminated UTF-8) as a JSON string literal, with quotes.
 * Invalid UTF-8 is written as U+FFFD, so the result always parses. */
int buf_put_json_str(struct buf *b, const char *s) BUF_MUST_CHECK;
/* Append s[0..len) as a JSON string literal whose escaped form, quotes
 * included, takes at most `room` bytes (room >= 8): the value is cut at a
 * character boundary, never the escape or the quotes. Invalid UTF-8 becomes
 * U+FFFD, NUL bytes \u0000. */
int buf_put_json_strn(struct buf *b, const char *s, size_t len, size_t room) BUF_MUST_CHECK;
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Hand the storage to the caller (who frees it with free()); b is reset.
 * The buffer must not have failed. */
char *buf_steal(struct buf *b, size_t *len);

#endif
