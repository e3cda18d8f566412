/* jscan.h - a strict JSON reader that walks text in place, for the hot path.
 *
 * jansson builds a tree of the whole text, at about 150 instructions per byte
 * (measured with callgrind: two thirds of the upstream loop's own work on a
 * proxied chat completion). Reading a provider's answer needs a handful of
 * fields (usage, the choices' text, finish_reason), so the loop walks the
 * text with jscan instead and allocates nothing. Everything that builds or
 * changes JSON still uses jansson.
 *
 * jscan accepts exactly what json_loadb(text, JSON_DECODE_ANY) accepts:
 * RFC 8259, UTF-8 validated, no \u0000, no lone surrogates, integers that
 * fit a long long, reals that do not overflow, nesting up to 2048, nothing
 * but whitespace after the value. tests/fuzz/fuzz_jscan.c holds it to that.
 * (One difference: jansson skips a NUL byte right after a number or literal,
 * a quirk of its stream buffer; jscan refuses every NUL outside a string.)
 *
 * jscan_loadb builds jansson's tree from jscan's tokens, for the text that
 * does need a tree (a client's request): the same tree, several times
 * faster than jansson's own parser.
 *
 * Use: jscan_init, then jscan_value for the value's first token. An object
 * or array token leaves the reader inside it: read an object with
 * jscan_member (key, then jscan_value for its value) until it returns 0, an
 * array with jscan_elem (then jscan_value) until it returns 0, and leave
 * anything unwanted with jscan_skip. jscan_end checks that nothing follows.
 * Every call returns -1 on malformed text, and keeps returning -1 after.
 */
#ifndef SLUICE_JSCAN_H
#define SLUICE_JSCAN_H

#include "util.h"

#include <jansson.h>
#include <stddef.h>

enum jtype {
    JT_OBJECT = 1,
    JT_ARRAY,
    JT_STRING,
    JT_NUMBER,
    JT_TRUE,
    JT_FALSE,
    JT_NULL,
};

struct jtok {
    enum jtype type;
    const char *s; /* a string's bytes between the quotes (escapes kept), a number's text */
    size_t len;
    int escaped; /* a string with a backslash in it */
};

struct jscan {
    const char *p, *end;
    int first; /* just inside an object or array: no comma is due */
    int depth;
    int err;
};

void jscan_init(struct jscan *js, const char *text, size_t len);
/* The next value's first token. 0, or -1. */
int jscan_value(struct jscan *js, struct jtok *t);
/* In an object: 1 with the next key in *key (a JT_STRING token), 0 at its
 * end, -1. */
int jscan_member(struct jscan *js, struct jtok *key);
/* In an array: 1 if another element follows, 0 at its end, -1. */
int jscan_elem(struct jscan *js);
/* The rest of the value whose first token is t: for an object or array up to
 * its close, validated; nothing for a scalar. 0, or -1. */
int jscan_skip(struct jscan *js, const struct jtok *t);
/* 0 if only whitespace is left after the top-level value, else -1. */
int jscan_end(struct jscan *js);

/* A string token's decoded bytes and their length: in place when it has no
 * escape, else decoded into scratch (reset first). NULL if scratch is full. */
const char *jtok_view(const struct jtok *t, struct buf *scratch, size_t *len);
/* A string token equal to lit (escapes decoded)? */
int jtok_eq(const struct jtok *t, const char *lit);
/* Append a string token's decoded bytes to out. 0, or -1 if out is full. */
int jtok_string(const struct jtok *t, struct buf *out);
/* An integer (a number without fraction or exponent, as jansson's
 * json_is_integer): 1 with its value, else 0. */
int jtok_integer(const struct jtok *t, long long *out);
/* Any number's value: 1, else 0. */
int jtok_number(const struct jtok *t, double *out);

/* The tree json_loadb(text, len, flags) would build, built from jscan's
 * tokens, which is several times faster than jansson's own parser. flags:
 * JSON_DECODE_ANY and JSON_REJECT_DUPLICATES; NULL where jscan refuses. */
json_t *jscan_build(const char *text, size_t len, size_t flags);
/* json_loadb's result, built by jscan_build; jansson itself runs only on
 * text jscan refuses, to give its error. */
json_t *jscan_loadb(const char *text, size_t len, size_t flags, json_error_t *err);

#endif
