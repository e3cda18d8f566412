/* jscan.c - a strict JSON reader that walks text in place; see jscan.h. */
#include "jscan.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

static int fail(struct jscan *js)
{
    js->err = 1;
    return -1;
}

void jscan_init(struct jscan *js, const char *text, size_t len)
{
    memset(js, 0, sizeof(*js));
    js->p = text;
    js->end = text + len;
}

static void skip_ws(struct jscan *js)
{
    while (js->p < js->end && (*js->p == ' ' || *js->p == '\n' || *js->p == '\r' || *js->p == '\t'))
        js->p++;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0: no
 * overlong forms, no surrogates, nothing over U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned cp;
    size_t len;

    if (p[0] < 0x80)
        return 1;
    if (p[0] < 0xC2)
        return 0;
    if (p[0] < 0xE0) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if (p[0] < 0xF0) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if (p[0] < 0xF5) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A \u escape at p (validated): its code point, and where it ends. A high
 * surrogate takes the low one that follows it. */
static unsigned unicode_escape(const char *p, const char **next)
{
    unsigned u, lo;

    hex4(p + 2, &u);
    *next = p + 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        hex4(p + 8, &lo);
        *next = p + 12;
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    return u;
}

/* Validate a \u escape at p (end: the text's end); 0, or -1. */
static int check_unicode_escape(const char *p, const char *end, const char **next)
{
    unsigned u, lo;

    if (end - p < 6 || hex4(p + 2, &u) < 0 || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
        return -1; /* jansson refuses \u0000 (no JSON_ALLOW_NUL) and a lone low surrogate */
    p += 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 || lo < 0xDC00 ||
            lo > 0xDFFF)
            return -1;
        p += 6;
    }
    *next = p;
    return 0;
}

/* Does any of the 8 bytes at p need a look: a control byte, '"', '\\', or
 * a byte of a UTF-8 sequence? (Bit tricks from "Bit Twiddling Hacks":
 * hasless and haszero, exact as a yes/no over the word.) */
static int special8(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, q, b;

    memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & highs ? 1 : 0;
}

/* js->p is at the opening quote. */
static int scan_string(struct jscan *js, struct jtok *t)
{
    const char *p = js->p + 1, *end = js->end, *stop;

    t->type = JT_STRING;
    t->s = p;
    t->escaped = 0;
    while (p < end) {
        /* Plain ASCII text goes a word at a time; a word with something to
         * look at goes a byte at a time. */
        if (end - p >= 8 && !special8(p)) {
            p += 8;
            continue;
        }
        stop = end - p > 8 ? p + 8 : end;
        while (p < stop) {
            unsigned char c = (unsigned char)*p;

            if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
                p++;
            } else if (c == '"') {
                t->len = (size_t)(p - t->s);
                js->p = p + 1;
                return 0;
            } else if (c < 0x20) {
                return fail(js);
            } else if (c == '\\') {
                t->escaped = 1;
                if (end - p < 2)
                    return fail(js);
                if (p[1] == 'u') {
                    if (check_unicode_escape(p, end, &p) < 0)
                        return fail(js);
                } else if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
                    p += 2;
                } else {
                    return fail(js);
                }
            } else {
                size_t n = utf8_len((const unsigned char *)p, (size_t)(end - p));

                if (n == 0)
                    return fail(js);
                p += n;
            }
        }
    }
    return fail(js);
}

/* Copy a number's text, NUL-terminated, for strtoll/strtod: into tmp when it
 * fits, else into a heap copy the caller frees. */
static char *number_text(const struct jtok *t, char *tmp, size_t tmpsize)
{
    if (t->len < tmpsize) {
        memcpy(tmp, t->s, t->len);
        tmp[t->len] = '\0';
        return tmp;
    }
    return xstrndup(t->s, t->len);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, in range as jansson wants:
 * an integer must fit a long long, a real must not overflow. */
static int scan_number(struct jscan *js, struct jtok *t)
{
    const char *p = js->p, *end = js->end, *digits;
    int real = 0, exponent = 0;
    size_t intdigits;

    t->type = JT_NUMBER;
    t->s = p;
    t->escaped = 0;
    if (p < end && *p == '-')
        p++;
    digits = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && is_digit(*p)) {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return fail(js);
    }
    intdigits = (size_t)(p - digits);
    if (p < end && *p == '.') {
        real = 1;
        p++;
        if (p == end || !is_digit(*p))
            return fail(js);
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = exponent = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return fail(js);
        while (p < end && is_digit(*p))
            p++;
    }
    t->len = (size_t)(p - t->s);
    js->p = p;
    /* Only long ones can be out of range; check those as jansson does. */
    if ((!real && intdigits >= 19) || exponent || intdigits > 300) {
        char tmp[64], *s = number_text(t, tmp, sizeof(tmp));
        int bad;

        errno = 0;
        if (real) {
            double d = strtod(s, NULL);

            bad = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
        } else {
            (void)strtoll(s, NULL, 10);
            bad = errno == ERANGE;
        }
        if (s != tmp)
            free(s);
        if (bad)
            return fail(js);
    }
    return 0;
}

static int scan_literal(struct jscan *js, struct jtok *t, const char *lit, enum jtype type)
{
    size_t n = strlen(lit);

    if ((size_t)(js->end - js->p) < n || memcmp(js->p, lit, n) != 0)
        return fail(js);
    t->type = type;
    t->s = js->p;
    t->len = n;
    t->escaped = 0;
    js->p += n;
    return 0;
}

int jscan_value(struct jscan *js, struct jtok *t)
{
    if (js->err)
        return -1;
    skip_ws(js);
    if (js->p == js->end)
        return fail(js);
    switch (*js->p) {
    case '{':
    case '[':
        if (++js->depth > JSCAN_MAX_DEPTH)
            return fail(js);
        t->type = *js->p == '{' ? JT_OBJECT : JT_ARRAY;
        t->s = js->p++;
        t->len = 1;
        t->escaped = 0;
        js->first = 1;
        return 0;
    case '"':
        return scan_string(js, t);
    case 't':
        return scan_literal(js, t, "true", JT_TRUE);
    case 'f':
        return scan_literal(js, t, "false", JT_FALSE);
    case 'n':
        return scan_literal(js, t, "null", JT_NULL);
    default:
        return scan_number(js, t);
    }
}

/* Past a comma between items, or at the container's close: 1 if an item
 * follows, 0 at `close` (consumed), -1. */
static int next_item(struct jscan *js, char close)
{
    if (js->err)
        return -1;
    skip_ws(js);
    if (js->p == js->end)
        return fail(js);
    if (*js->p == close) {
        js->p++;
        js->depth--;
        js->first = 0; /* the container was an item of the one around it */
        return 0;
    }
    if (!js->first) {
        if (*js->p != ',')
            return fail(js);
        js->p++;
        skip_ws(js);
    }
    js->first = 0;
    return 1;
}

int jscan_member(struct jscan *js, struct jtok *key)
{
    int r = next_item(js, '}');

    if (r != 1)
        return r;
    if (js->p == js->end || *js->p != '"' || scan_string(js, key) < 0)
        return fail(js);
    skip_ws(js);
    if (js->p == js->end || *js->p != ':')
        return fail(js);
    js->p++;
    return 1;
}

int jscan_elem(struct jscan *js)
{
    return next_item(js, ']');
}

int jscan_skip(struct jscan *js, const struct jtok *t)
{
    /* Iterative, so deep nesting costs no stack: kinds[] remembers, per
     * level entered here, whether it is an object. */
    unsigned char kinds[JSCAN_MAX_DEPTH / 8 + 1];
    int base, r;
    struct jtok k, v;

    if (js->err)
        return -1;
    if (t->type != JT_OBJECT && t->type != JT_ARRAY)
        return 0;
    base = js->depth;
    kinds[0] = t->type == JT_OBJECT;
    while (js->depth >= base) {
        int level = js->depth - base;
        int object = (kinds[level / 8] >> (level % 8)) & 1;

        r = object ? jscan_member(js, &k) : jscan_elem(js);
        if (r < 0)
            return -1;
        if (r == 1) {
            if (jscan_value(js, &v) < 0)
                return -1;
            if (v.type == JT_OBJECT || v.type == JT_ARRAY) {
                level = js->depth - base;
                if (v.type == JT_OBJECT)
                    kinds[level / 8] |= (unsigned char)(1u << (level % 8));
                else
                    kinds[level / 8] &= (unsigned char)~(1u << (level % 8));
            }
        }
    }
    return 0;
}

int jscan_end(struct jscan *js)
{
    if (js->err || js->depth != 0)
        return -1;
    skip_ws(js);
    return js->p == js->end ? 0 : fail(js);
}

/* Append the UTF-8 encoding of code point u to out. */
static int put_utf8(struct buf *out, unsigned u)
{
    char b[4];
    size_t n;

    if (u < 0x80) {
        b[0] = (char)u;
        n = 1;
    } else if (u < 0x800) {
        b[0] = (char)(0xC0 | (u >> 6));
        b[1] = (char)(0x80 | (u & 0x3F));
        n = 2;
    } else if (u < 0x10000) {
        b[0] = (char)(0xE0 | (u >> 12));
        b[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        b[2] = (char)(0x80 | (u & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (u >> 18));
        b[1] = (char)(0x80 | ((u >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((u >> 6) & 0x3F));
        b[3] = (char)(0x80 | (u & 0x3F));
        n = 4;
    }
    return buf_append(out, b, n);
}

static int decode_into(const struct jtok *t, struct buf *out)
{
    const char *p = t->s, *end = t->s + t->len, *run = p;

    if (!t->escaped)
        return buf_append(out, p, t->len);
    while (p < end) {
        char c;

        if (*p != '\\') {
            p++;
            continue;
        }
        if (buf_append(out, run, (size_t)(p - run)) < 0)
            return -1;
        if (p[1] == 'u') {
            unsigned u = unicode_escape(p, &p);

            if (put_utf8(out, u) < 0)
                return -1;
        } else {
            switch (p[1]) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default: /* " \ / */
                c = p[1];
            }
            if (buf_append(out, &c, 1) < 0)
                return -1;
            p += 2;
        }
        run = p;
    }
    return buf_append(out, run, (size_t)(end - run));
}

int jtok_string(const struct jtok *t, struct buf *out)
{
    size_t len0 = out->len;

    if (t->type != JT_STRING)
        return -1;
    if (decode_into(t, out) < 0) {
        buf_truncate(out, len0); /* all or nothing */
        return -1;
    }
    return 0;
}

const char *jtok_view(const struct jtok *t, struct buf *scratch, size_t *len)
{
    if (t->type != JT_STRING)
        return NULL;
    if (!t->escaped) {
        *len = t->len;
        return t->s;
    }
    buf_reset(scratch);
    if (jtok_string(t, scratch) < 0)
        return NULL;
    *len = scratch->len;
    return scratch->data ? scratch->data : "";
}

int jtok_eq(const struct jtok *t, const char *lit)
{
    size_t n = strlen(lit), len;
    struct buf scratch;
    const char *s;
    int eq;

    if (t->type != JT_STRING || t->len < n) /* an escape never makes a string longer */
        return 0;
    if (!t->escaped) /* the common case: the bytes are the string */
        return t->len == n && memcmp(t->s, lit, n) == 0;
    buf_init(&scratch, t->len);
    s = jtok_view(t, &scratch, &len);
    eq = s != NULL && len == n && memcmp(s, lit, n) == 0;
    buf_free(&scratch);
    return eq;
}

int jtok_integer(const struct jtok *t, long long *out)
{
    char tmp[32];

    if (t->type != JT_NUMBER || memchr(t->s, '.', t->len) || memchr(t->s, 'e', t->len) ||
        memchr(t->s, 'E', t->len) || t->len >= sizeof(tmp))
        return 0;
    memcpy(tmp, t->s, t->len);
    tmp[t->len] = '\0';
    *out = strtoll(tmp, NULL, 10); /* in range: checked by the scan */
    return 1;
}

int jtok_number(const struct jtok *t, double *out)
{
    char tmp[64], *s;

    if (t->type != JT_NUMBER)
        return 0;
    s = number_text(t, tmp, sizeof(tmp));
    *out = strtod(s, NULL);
    if (s != tmp)
        free(s);
    return 1;
}

/* ---- building a tree ---- */

/* The value whose first token is t, or NULL where jscan refuses the text
 * (or, with dups, a key comes twice in an object). Strings and keys with no
 * escape go from the text into the tree; scratch decodes the others. */
static json_t *build_value(struct jscan *js, const struct jtok *t, int dups, struct buf *scratch)
{
    struct jtok k, v;
    const char *s;
    size_t len;
    json_t *out, *item;
    long long ll;
    double d;
    int r;

    switch (t->type) {
    case JT_STRING:
        s = jtok_view(t, scratch, &len);
        return s ? json_stringn_nocheck(s, len) : NULL;
    case JT_NUMBER:
        if (jtok_integer(t, &ll))
            return json_integer(ll);
        return jtok_number(t, &d) ? json_real(d) : NULL;
    case JT_TRUE:
        return json_true();
    case JT_FALSE:
        return json_false();
    case JT_NULL:
        return json_null();
    case JT_ARRAY:
        out = json_array();
        while ((r = jscan_elem(js)) == 1) {
            if (jscan_value(js, &v) < 0 || (item = build_value(js, &v, dups, scratch)) == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, item);
        }
        break;
    default: /* JT_OBJECT */
        out = json_object();
        while ((r = jscan_member(js, &k)) == 1) {
            if (jscan_value(js, &v) < 0 || (item = build_value(js, &v, dups, scratch)) == NULL) {
                r = -1;
                break;
            }
            /* The key is decoded after its value, which may use scratch too. */
            s = jtok_view(&k, scratch, &len);
            if (s == NULL || (dups && json_object_getn(out, s, len))) {
                json_decref(item);
                r = -1;
                break;
            }
            json_object_setn_new_nocheck(out, s, len, item);
        }
    }
    if (r < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *jscan_build(const char *text, size_t len, size_t flags)
{
    struct jscan js;
    struct jtok t;
    struct buf scratch;
    json_t *j;

    jscan_init(&js, text, len);
    if (jscan_value(&js, &t) < 0)
        return NULL;
    if (!(flags & JSON_DECODE_ANY) && t.type != JT_OBJECT && t.type != JT_ARRAY)
        return NULL;
    buf_init(&scratch, len); /* one string at a time, never longer unescaped */
    j = build_value(&js, &t, (flags & JSON_REJECT_DUPLICATES) != 0, &scratch);
    buf_free(&scratch);
    if (j != NULL && jscan_end(&js) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *jscan_loadb(const char *text, size_t len, size_t flags, json_error_t *err)
{
    json_t *j = jscan_build(text, len, flags);

    /* What jscan refuses, jansson refuses too (bar its NUL quirk): let it
     * say why. */
    return j ? j : json_loadb(text, len, flags, err);
}
