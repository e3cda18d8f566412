/* learned.c - the `learned` scorer as the gateway runs it: the features,
 * scoring, and reading a weights file. Training and writing weights live in
 * sluice-tune (src/tune/learned_train.c), which shares the feature walk
 * through learned_model.h, so an offline score and the gateway's score for
 * the same (query, answer) are the same double.
 *
 * The walk has two modes: scoring sums weights as it goes and allocates
 * nothing; recording hands each feature to a sink (training).
 */
#include "learned.h"
#include "learned_model.h"
#include "answer.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEARNED_MAX_LINE 4096
#define LEARNED_CHOICE_MAX 512 /* bytes of an option line that are featurised */
#define LEARNED_KEY_MAX 64

/* Namespaces keep the query's "paris" apart from the answer's "paris". */
enum {
    NS_QUERY_WORDS = 1,
    NS_QUERY_CHARS,
    NS_ANSWER_WORDS,
    NS_ANSWER_CHARS,
    NS_CHOICE,
    NS_META,
};

/* ---- parameters ---- */

void learned_params_default(struct learned_params *p)
{
    p->bits = 18;
    p->word_min = 1;
    p->word_max = 2;
    p->char_min = 3;
    p->char_max = 5;
    p->query_tail = 1024;
    p->answer_head = 1024;
    p->features = LF_ALL;
}

int learned_params_check(const struct learned_params *p, char *err, size_t errlen)
{
    if (p->bits < LEARNED_MIN_BITS || p->bits > LEARNED_MAX_BITS) {
        snprintf(err, errlen, "bits must be %d..%d", LEARNED_MIN_BITS, LEARNED_MAX_BITS);
        return -1;
    }
    if (p->word_min < 1 || p->word_max > 3 || p->word_min > p->word_max) {
        snprintf(err, errlen, "word n-gram orders must be within 1..3");
        return -1;
    }
    if (p->char_min < 1 || p->char_max > 8 || p->char_min > p->char_max) {
        snprintf(err, errlen, "character n-gram orders must be within 1..8");
        return -1;
    }
    if (p->query_tail > (1u << 20) || p->answer_head > (1u << 20)) {
        snprintf(err, errlen, "query_tail and answer_head must be at most 1048576");
        return -1;
    }
    if (p->features & ~(unsigned)LF_ALL) {
        snprintf(err, errlen, "unknown feature bits");
        return -1;
    }
    return 0;
}

static const struct {
    unsigned bit;
    const char *name;
} feature_names[] = {
    {LF_QUERY_WORDS, "query_words"},
    {LF_QUERY_CHARS, "query_chars"},
    {LF_ANSWER_WORDS, "answer_words"},
    {LF_ANSWER_CHARS, "answer_chars"},
    {LF_CHOICE, "choice"},
    {LF_META, "meta"},
};

const char *learned_feature_name(unsigned bit)
{
    for (size_t i = 0; i < ARRAY_LEN(feature_names); i++)
        if (feature_names[i].bit == bit)
            return feature_names[i].name;
    return NULL;
}

/* ---- hashing ---- */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static inline uint32_t fnv_byte(uint32_t h, unsigned char c)
{
    return (h ^ c) * FNV_PRIME;
}

/* murmur3's finaliser: FNV's low bits are weak, and we take the low bits. */
static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t hash_start(unsigned ns, unsigned order)
{
    return fnv_byte(fnv_byte(FNV_OFFSET, (unsigned char)ns), (unsigned char)order);
}

static uint32_t hash_str(uint32_t h, const char *s)
{
    while (*s)
        h = fnv_byte(h, (unsigned char)*s++);
    return h;
}

/* ---- text helpers (ASCII only, locale-free) ---- */

static inline int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline int is_word(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static inline unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}


/* ---- the feature walk ---- */

struct fwalk {
    const struct learned_params *p;
    uint32_t mask;
    /* scoring mode */
    const float *w;
    double z;   /* bias plus the finished groups */
    double s;   /* the current group's signed sum */
    uint32_t n; /* entries in the current group */
    /* recording mode (w == NULL) */
    struct learned_sink *sink;
};

static inline void fw_emit(struct fwalk *fw, uint32_t h)
{
    uint32_t idx, neg;

    h = fmix32(h);
    idx = h & fw->mask;
    neg = h >> 31;
    fw->n++;
    if (fw->w) {
        double x = fw->w[idx];

        fw->s += neg ? -x : x;
    } else {
        fw->sink->emit_cb(fw->sink, idx | (neg << 31));
    }
}

/* Close the current group with the given scale. Empty groups leave no trace,
 * so both modes skip them alike. */
static void fw_group_end(struct fwalk *fw, float scale)
{
    if (fw->n == 0)
        return;
    if (fw->w) {
        fw->z += fw->s * (double)scale;
    } else {
        fw->sink->group_end_cb(fw->sink, scale);
    }
    fw->s = 0;
    fw->n = 0;
}

/* A text group's scale: 1/sqrt(count), as a float so both modes agree. */
static void fw_group_end_norm(struct fwalk *fw)
{
    fw_group_end(fw, fw->n ? (float)(1.0 / sqrt((double)fw->n)) : 0.0f);
}

/* One feature that is a group of its own with value v. */
static void fw_single(struct fwalk *fw, uint32_t h, float v)
{
    fw_emit(fw, h);
    fw_group_end(fw, v);
}

/* Word n-grams of [s, e) (lower-cased runs of letters, digits and UTF-8) in
 * namespace ns, as one group. */
static void walk_words(struct fwalk *fw, unsigned ns, const unsigned char *s,
                       const unsigned char *e)
{
    const unsigned char *ws[3] = {NULL, NULL, NULL};
    size_t wl[3] = {0, 0, 0};
    unsigned nw = 0; /* words seen, saturating at 3 */
    unsigned wmin = fw->p->word_min, wmax = fw->p->word_max;

    while (s < e) {
        const unsigned char *w;

        while (s < e && !is_word(*s))
            s++;
        if (s == e)
            break;
        w = s;
        while (s < e && is_word(*s))
            s++;
        /* Shift the window of the last three words. */
        ws[0] = ws[1];
        wl[0] = wl[1];
        ws[1] = ws[2];
        wl[1] = wl[2];
        ws[2] = w;
        wl[2] = (size_t)(s - w);
        if (nw < 3)
            nw++;
        for (unsigned n = wmin; n <= wmax && n <= nw; n++) {
            uint32_t h = hash_start(ns, n);

            for (unsigned k = 3 - n; k < 3; k++) {
                if (k > 3 - n)
                    h = fnv_byte(h, ' ');
                for (size_t i = 0; i < wl[k]; i++)
                    h = fnv_byte(h, to_lower(ws[k][i]));
            }
            fw_emit(fw, h);
        }
    }
    fw_group_end_norm(fw);
}

/* Character n-grams of [s, e), lower-cased with whitespace runs collapsed to
 * one space and a space added at both ends (so word edges show), as one
 * group. */
static void walk_chars(struct fwalk *fw, unsigned ns, const unsigned char *s,
                       const unsigned char *e)
{
    unsigned char ring[8];
    size_t count = 0; /* normalised characters so far */
    unsigned cmin = fw->p->char_min, cmax = fw->p->char_max;
    int last_space = 0, done = 0;

    while (!done) {
        unsigned char c;

        if (count == 0) {
            c = ' ';
        } else if (s < e) {
            c = to_lower(*s++);
            if (is_space(c)) {
                if (last_space)
                    continue;
                c = ' ';
            }
        } else {
            done = 1;
            if (last_space)
                break;
            c = ' ';
        }
        last_space = c == ' ';
        ring[count % 8] = c;
        count++;
        for (unsigned n = cmin; n <= cmax && n <= count; n++) {
            uint32_t h = hash_start(ns, n);

            for (size_t i = count - n; i < count; i++)
                h = fnv_byte(h, ring[i % 8]);
            fw_emit(fw, h);
        }
    }
    fw_group_end_norm(fw);
}

/* The query's featurised window: its last query_tail bytes, starting at a
 * character and word boundary. */
static void query_window(const struct learned_params *p, const char *query, const unsigned char **s,
                         const unsigned char **e)
{
    size_t len = strlen(query);
    const unsigned char *b = (const unsigned char *)query, *q = b;

    if (len > p->query_tail) {
        q = b + (len - p->query_tail);
        /* Do not start inside a word: its tail is a different word. */
        while (*q && (is_word(*q) && is_word(q[-1])))
            q++;
    }
    *s = q;
    *e = b + len;
}

/* The answer's featurised window: its first answer_head bytes, ending at a
 * character and word boundary. */
static void answer_window(const struct learned_params *p, const char *answer,
                          const unsigned char **s, const unsigned char **e)
{
    size_t len = strlen(answer);
    const unsigned char *b = (const unsigned char *)answer, *q;

    if (len > p->answer_head) {
        q = b + p->answer_head;
        while (q > b && is_word(*q) && is_word(q[-1]))
            q--;
        if (q == b) {
            /* One long word: cut it, but not inside a UTF-8 sequence. */
            q = b + p->answer_head;
            while (q > b && (*q & 0xC0) == 0x80)
                q--;
        }
        len = (size_t)(q - b);
    }
    *s = b;
    *e = b + len;
}

static void walk_query(struct fwalk *fw, const char *query)
{
    const unsigned char *s, *e;

    query_window(fw->p, query, &s, &e);
    if (fw->p->features & LF_QUERY_WORDS)
        walk_words(fw, NS_QUERY_WORDS, s, e);
    if (fw->p->features & LF_QUERY_CHARS)
        walk_chars(fw, NS_QUERY_CHARS, s, e);
}

/* The option line of the query that a choice answer picks: the last line
 * that starts (after blanks) with "L)", "L.", "L:" or "(L)" for the answer's
 * letter L. Multiple-choice prompts list the options of the question asked
 * last (few-shot examples come first), so the last such line is the one. */
static int find_choice_line(const char *query, char letter, const unsigned char **ls,
                            const unsigned char **le)
{
    const unsigned char *b = (const unsigned char *)query, *p, *found = NULL;

    for (p = b; *p; p++) {
        const unsigned char *q;

        if (p != b && p[-1] != '\n')
            continue;
        q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (q[0] == '(' && q[1] == (unsigned char)letter && q[2] == ')')
            found = q + 3;
        else if (q[0] == (unsigned char)letter && (q[1] == ')' || q[1] == '.' || q[1] == ':') &&
                 (q[2] == ' ' || q[2] == '\t'))
            found = q + 2;
    }
    if (found == NULL)
        return 0;
    p = found;
    while (*p && *p != '\n' && p - found < LEARNED_CHOICE_MAX)
        p++;
    *ls = found;
    *le = p;
    return 1;
}

/* A small integer's bucket: its bit length, capped. */
static unsigned len_bucket(size_t n)
{
    unsigned b = 0;

    while (n && b < 20) {
        n >>= 1;
        b++;
    }
    return b;
}

static void walk_answer(struct fwalk *fw, const char *query, const char *answer,
                        const char *finish_reason)
{
    const struct learned_params *p = fw->p;
    const unsigned char *s, *e;
    char key[LEARNED_KEY_MAX];

    answer_window(p, answer, &s, &e);
    if (p->features & LF_ANSWER_WORDS)
        walk_words(fw, NS_ANSWER_WORDS, s, e);
    if (p->features & LF_ANSWER_CHARS)
        walk_chars(fw, NS_ANSWER_CHARS, s, e);
    if (p->features & (LF_CHOICE | LF_META))
        answer_agree_key(answer, key, sizeof(key));
    if (p->features & LF_CHOICE) {
        const unsigned char *ls, *le;

        if (key[0] >= 'A' && key[0] <= 'E' && key[1] == '\0' &&
            find_choice_line(query, key[0], &ls, &le))
            walk_words(fw, NS_CHOICE, ls, le);
    }
    if (p->features & LF_META) {
        size_t alen = strlen(answer);
        const char *kind, *fr;
        uint32_t h;

        /* NULL and "stop" are the same: recorded data has no finish_reason
         * and a live upstream says "stop", and they must not differ. */
        fr = (finish_reason == NULL || finish_reason[0] == '\0') ? "stop" : finish_reason;
        if (key[0] == '\0')
            kind = "empty";
        else if (key[0] >= 'A' && key[0] <= 'E' && key[1] == '\0')
            kind = "choice";
        else if ((key[0] >= '0' && key[0] <= '9') ||
                 (key[0] == '-' && key[1] >= '0' && key[1] <= '9'))
            kind = "number";
        else
            kind = "text";
        fw_single(fw, hash_str(hash_start(NS_META, 0), "alen"), (float)(log1p((double)alen) / 8.0));
        h = fnv_byte(hash_str(hash_start(NS_META, 0), "alenb="), (unsigned char)len_bucket(alen));
        fw_single(fw, h, 1.0f);
        h = fnv_byte(hash_str(hash_start(NS_META, 0), "qlenb="),
                     (unsigned char)len_bucket(strlen(query)));
        fw_single(fw, h, 1.0f);
        h = hash_start(NS_META, 0);
        h = hash_str(hash_str(h, "finish="), fr);
        fw_single(fw, h, 1.0f);
        h = hash_str(hash_str(hash_start(NS_META, 0), "veto="),
                     answer_veto_name(answer_rules(answer, finish_reason, 0)));
        fw_single(fw, h, 1.0f);
        h = hash_str(hash_str(hash_start(NS_META, 0), "kind="), kind);
        fw_single(fw, h, 1.0f);
    }
}

double learned_sigmoid(double z)
{
    if (z > 35)
        z = 35;
    if (z < -35)
        z = -35;
    return 1.0 / (1.0 + exp(-z));
}

double learned_score(const struct learned_model *m, const char *query, const char *answer,
                     const char *finish_reason)
{
    struct fwalk fw = {0};

    fw.p = &m->p;
    fw.mask = (1u << m->p.bits) - 1;
    fw.w = m->w;
    fw.z = m->bias;
    walk_query(&fw, query ? query : "");
    walk_answer(&fw, query ? query : "", answer ? answer : "", finish_reason);
    return learned_sigmoid(fw.z);
}
/* A walk in recording mode: every feature goes to the sink. */
static void walk_record_begin(struct fwalk *fw, const struct learned_params *p,
                              struct learned_sink *s)
{
    memset(fw, 0, sizeof(*fw));
    fw->p = p;
    fw->mask = (1u << p->bits) - 1;
    fw->sink = s;
}

void learned_walk_query(const struct learned_params *p, const char *query, struct learned_sink *s)
{
    struct fwalk fw;

    walk_record_begin(&fw, p, s);
    walk_query(&fw, query);
}

void learned_walk_answer(const struct learned_params *p, const char *query, const char *answer,
                         const char *finish_reason, struct learned_sink *s)
{
    struct fwalk fw;

    walk_record_begin(&fw, p, s);
    walk_answer(&fw, query, answer, finish_reason);
}

/* ---- model objects ---- */

struct learned_model *learned_model_new(const struct learned_params *p, const char *name)
{
    struct learned_model *m = xcalloc(1, sizeof(*m));

    m->p = *p;
    m->name = xstrdup(name);
    m->w = xcalloc((size_t)1 << p->bits, sizeof(float));
    return m;
}

void learned_free(struct learned_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nmeta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->meta);
    free(m->w);
    free(m->name);
    free(m);
}

const char *learned_model_name(const struct learned_model *m)
{
    return m->name;
}

/* The keys the model itself owns; metadata may not use them. */
static const char *const reserved_keys[] = {
    "model",       "bits",     "word_ngrams", "char_ngrams", "query_tail",
    "answer_head", "features", "bias",        "nonzero",
};

static int is_reserved_key(const char *k, size_t n)
{
    for (size_t i = 0; i < ARRAY_LEN(reserved_keys); i++)
        if (strlen(reserved_keys[i]) == n && memcmp(reserved_keys[i], k, n) == 0)
            return 1;
    return 0;
}

static int valid_key(const char *k, size_t n)
{
    if (n == 0 || n > LEARNED_MAX_KEY)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return 0;
    return 1;
}

int learned_meta_key_ok(const char *key, size_t n)
{
    return valid_key(key, n) && !is_reserved_key(key, n);
}

const char *learned_meta(const struct learned_model *m, const char *key)
{
    for (size_t i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta[i].key, key) == 0)
            return m->meta[i].value;
    return NULL;
}

struct lparse {
    const char *p, *end;
    long line;
    char *err;
    size_t errlen;
};

static void perr(struct lparse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct lparse *ps, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->errlen == 0)
        return;
    n = snprintf(ps->err, ps->errlen, "line %ld: ", ps->line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Take the next line (without its "\n" or "\r\n") into [*ls, *le). Returns
 * 0 at the end of input, -1 on an overlong line or a NUL byte, else 1. */
static int next_line(struct lparse *ps, const char **ls, const char **le)
{
    const char *s = ps->p, *nl;

    if (s >= ps->end)
        return 0;
    nl = memchr(s, '\n', (size_t)(ps->end - s));
    *ls = s;
    *le = nl ? nl : ps->end;
    ps->p = nl ? nl + 1 : ps->end;
    ps->line++;
    if (*le > s && (*le)[-1] == '\r')
        (*le)--;
    if (*le - s > LEARNED_MAX_LINE) {
        perr(ps, "line longer than %d bytes", LEARNED_MAX_LINE);
        return -1;
    }
    if (memchr(s, '\0', (size_t)(*le - s))) {
        perr(ps, "NUL byte");
        return -1;
    }
    return 1;
}

static int span_eq(const char *s, const char *e, const char *lit)
{
    size_t n = strlen(lit);

    return (size_t)(e - s) == n && memcmp(s, lit, n) == 0;
}

/* Strict unsigned decimal in [s, e) (digits only, no sign or spaces). */
static int span_ulong(const char *s, const char *e, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (s == e || e - s > 12)
        return -1;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* A finite double in [s, e), the whole span, via strtod on a bounded copy
 * (the input need not be NUL-terminated). */
static int span_double(const char *s, const char *e, double *out)
{
    char tmp[64];
    size_t n = (size_t)(e - s);

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    /* strtod also takes "inf", "nan" and hex floats; only plain decimals
     * belong in this file. */
    for (size_t i = 0; i < n; i++)
        if (!((tmp[i] >= '0' && tmp[i] <= '9') || tmp[i] == '-' || tmp[i] == '+' || tmp[i] == '.' ||
              tmp[i] == 'e' || tmp[i] == 'E'))
            return -1;
    return parse_double(tmp, out);
}

/* "A-B" with 1 <= A <= B <= max. */
static int span_range(const char *s, const char *e, unsigned max, unsigned *a, unsigned *b)
{
    const char *dash = memchr(s, '-', (size_t)(e - s));
    unsigned long x, y;

    if (dash == NULL || span_ulong(s, dash, max, &x) < 0 || span_ulong(dash + 1, e, max, &y) < 0 ||
        x < 1 || x > y)
        return -1;
    *a = (unsigned)x;
    *b = (unsigned)y;
    return 0;
}

static int span_features(const char *s, const char *e, unsigned *out)
{
    unsigned f = 0;

    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        size_t i;

        for (i = 0; i < ARRAY_LEN(feature_names); i++)
            if (span_eq(s, te, feature_names[i].name))
                break;
        if (i == ARRAY_LEN(feature_names) || (f & feature_names[i].bit))
            return -1;
        f |= feature_names[i].bit;
        s = c ? c + 1 : e;
        if (c && s == e)
            return -1;
    }
    *out = f;
    return 0;
}

int learned_features_parse(const char *s, unsigned *out)
{
    return span_features(s, s + strlen(s), out);
}

enum {
    HK_MODEL = 1 << 0,
    HK_BITS = 1 << 1,
    HK_WORDS = 1 << 2,
    HK_CHARS = 1 << 3,
    HK_QTAIL = 1 << 4,
    HK_AHEAD = 1 << 5,
    HK_FEATURES = 1 << 6,
    HK_BIAS = 1 << 7,
    HK_NONZERO = 1 << 8,
};
#define HK_REQUIRED 0x1ff

/* The header: "key=value" lines up to "weights". Fills the model's params,
 * name, bias and metadata. Returns 0, or -1 with the message set. */
static int parse_header(struct lparse *ps, struct learned_model *m, unsigned long *nonzero)
{
    unsigned seen = 0;
    const char *ls, *le;
    int r;

    while ((r = next_line(ps, &ls, &le)) > 0) {
        const char *eq, *v;
        size_t klen;
        unsigned bit = 0;
        unsigned long ul = 0;

        if (ls == le || *ls == '#')
            continue;
        if (span_eq(ls, le, "weights"))
            break;
        eq = memchr(ls, '=', (size_t)(le - ls));
        if (eq == NULL) {
            perr(ps, "expected key=value or \"weights\"");
            return -1;
        }
        klen = (size_t)(eq - ls);
        v = eq + 1;
        if (!valid_key(ls, klen)) {
            perr(ps, "bad key \"%.*s\"", (int)(klen > 64 ? 64 : klen), ls);
            return -1;
        }
#define KEY(lit, b) (klen == strlen(lit) && memcmp(ls, lit, klen) == 0 && (bit = (b)))
        if (KEY("model", HK_MODEL)) {
            if (v == le || le - v > LEARNED_MAX_VALUE) {
                perr(ps, "model: empty or too long");
                return -1;
            }
        } else if (KEY("bits", HK_BITS)) {
            if (span_ulong(v, le, LEARNED_MAX_BITS, &ul) < 0 || ul < LEARNED_MIN_BITS) {
                perr(ps, "bits: must be an integer in %d..%d", LEARNED_MIN_BITS, LEARNED_MAX_BITS);
                return -1;
            }
        } else if (KEY("word_ngrams", HK_WORDS)) {
            if (span_range(v, le, 3, &m->p.word_min, &m->p.word_max) < 0) {
                perr(ps, "word_ngrams: expected A-B within 1-3");
                return -1;
            }
        } else if (KEY("char_ngrams", HK_CHARS)) {
            if (span_range(v, le, 8, &m->p.char_min, &m->p.char_max) < 0) {
                perr(ps, "char_ngrams: expected A-B within 1-8");
                return -1;
            }
        } else if (KEY("query_tail", HK_QTAIL) || KEY("answer_head", HK_AHEAD)) {
            if (span_ulong(v, le, 1u << 20, &ul) < 0) {
                perr(ps, "%.*s: must be an integer in 0..1048576", (int)klen, ls);
                return -1;
            }
        } else if (KEY("features", HK_FEATURES)) {
            if (span_features(v, le, &m->p.features) < 0) {
                perr(ps, "features: expected a comma-separated list of query_words, "
                         "query_chars, answer_words, answer_chars, choice, meta");
                return -1;
            }
        } else if (KEY("bias", HK_BIAS)) {
            if (span_double(v, le, &m->bias) < 0) {
                perr(ps, "bias: not a finite number");
                return -1;
            }
        } else if (KEY("nonzero", HK_NONZERO)) {
            if (span_ulong(v, le, 1ul << LEARNED_MAX_BITS, nonzero) < 0) {
                perr(ps, "nonzero: not a count");
                return -1;
            }
        }
#undef KEY
        if (bit) {
            if (seen & bit) {
                perr(ps, "duplicate key \"%.*s\"", (int)klen, ls);
                return -1;
            }
            seen |= bit;
            if (bit == HK_MODEL)
                m->name = xstrndup(v, (size_t)(le - v));
            else if (bit == HK_BITS)
                m->p.bits = (unsigned)ul;
            else if (bit == HK_QTAIL)
                m->p.query_tail = (unsigned)ul;
            else if (bit == HK_AHEAD)
                m->p.answer_head = (unsigned)ul;
            continue;
        }
        /* Training metadata: informative only, kept for learned_meta(). */
        {
            char key[LEARNED_MAX_KEY + 1];

            memcpy(key, ls, klen);
            key[klen] = '\0';
            if (learned_meta(m, key)) {
                perr(ps, "duplicate key \"%s\"", key);
                return -1;
            }
            if (m->nmeta >= LEARNED_MAX_META) {
                perr(ps, "more than %d metadata keys", LEARNED_MAX_META);
                return -1;
            }
            if (le - v > LEARNED_MAX_VALUE) {
                perr(ps, "%s: value longer than %d bytes", key, LEARNED_MAX_VALUE);
                return -1;
            }
            m->meta = xrealloc(m->meta, (m->nmeta + 1) * sizeof(*m->meta));
            m->meta[m->nmeta].key = xstrdup(key);
            m->meta[m->nmeta].value = xstrndup(v, (size_t)(le - v));
            for (char *c = m->meta[m->nmeta].value; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    *c = ' ';
            m->nmeta++;
        }
    }
    if (r < 0)
        return -1;
    if (r == 0) {
        perr(ps, "truncated: no \"weights\" line");
        return -1;
    }
    if ((seen & HK_REQUIRED) != HK_REQUIRED) {
        static const char *const names[] = {"model",       "bits",       "word_ngrams",
                                            "char_ngrams", "query_tail", "answer_head",
                                            "features",    "bias",       "nonzero"};

        for (unsigned i = 0; i < ARRAY_LEN(names); i++) {
            if (!(seen & (1u << i))) {
                perr(ps, "missing key \"%s\"", names[i]);
                return -1;
            }
        }
    }
    if (*nonzero > (1ul << m->p.bits)) {
        perr(ps, "nonzero=%lu exceeds 2^bits", *nonzero);
        return -1;
    }
    return 0;
}

struct learned_model *learned_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct lparse ps = {text, text + len, 0, err, errlen};
    struct learned_model *m;
    const char *ls, *le, *sp;
    unsigned long nonzero = 0, count = 0, prev = 0;
    char magic[64];
    int r;

    if (errlen)
        err[0] = '\0';
    if (len > LEARNED_MAX_FILE_BYTES) {
        snprintf(err, errlen, "larger than %u bytes", (unsigned)LEARNED_MAX_FILE_BYTES);
        return NULL;
    }
    if (next_line(&ps, &ls, &le) <= 0) {
        if (ps.line == 0)
            snprintf(err, errlen, "empty file");
        return NULL;
    }
    snprintf(magic, sizeof(magic), "%s ", LEARNED_MAGIC);
    if ((size_t)(le - ls) < strlen(magic) || memcmp(ls, magic, strlen(magic)) != 0) {
        perr(&ps, "not a sluice-learned weights file (bad magic)");
        return NULL;
    }
    {
        unsigned long ver;

        if (span_ulong(ls + strlen(magic), le, 1000000, &ver) < 0) {
            perr(&ps, "bad version");
            return NULL;
        }
        if (ver != LEARNED_VERSION) {
            perr(&ps, "unsupported version %lu (this build reads %d)", ver, LEARNED_VERSION);
            return NULL;
        }
    }

    m = xcalloc(1, sizeof(*m));
    if (parse_header(&ps, m, &nonzero) < 0) {
        learned_free(m);
        return NULL;
    }
    if (learned_params_check(&m->p, err, errlen) < 0) {
        learned_free(m);
        return NULL;
    }
    m->w = xcalloc((size_t)1 << m->p.bits, sizeof(float));

    /* "index weight" lines, indices strictly increasing, then "end". */
    while ((r = next_line(&ps, &ls, &le)) > 0) {
        unsigned long idx;
        double w;

        if (span_eq(ls, le, "end"))
            break;
        sp = memchr(ls, ' ', (size_t)(le - ls));
        if (sp == NULL) {
            perr(&ps, "expected \"index weight\" or \"end\"");
            goto fail;
        }
        if (span_ulong(ls, sp, ~0ul, &idx) < 0) {
            perr(&ps, "bad index");
            goto fail;
        }
        if (idx >= (1ul << m->p.bits)) {
            perr(&ps, "index %lu out of range (bits=%u)", idx, m->p.bits);
            goto fail;
        }
        if (count > 0 && idx <= prev) {
            perr(&ps, "index %lu not above the previous %lu", idx, prev);
            goto fail;
        }
        if (span_double(sp + 1, le, &w) < 0 || fabs(w) > 1e6) {
            perr(&ps, "weight is not a finite number within +-1e6");
            goto fail;
        }
        if (++count > nonzero) {
            perr(&ps, "more weights than nonzero=%lu", nonzero);
            goto fail;
        }
        m->w[idx] = (float)w;
        prev = idx;
    }
    if (r < 0)
        goto fail;
    if (r == 0) {
        perr(&ps, "truncated: %lu of %lu weights and no \"end\" line", count, nonzero);
        goto fail;
    }
    if (count != nonzero) {
        perr(&ps, "%lu weights but nonzero=%lu", count, nonzero);
        goto fail;
    }
    while ((r = next_line(&ps, &ls, &le)) > 0) {
        for (const char *c = ls; c < le; c++) {
            if (!is_space((unsigned char)*c)) {
                perr(&ps, "data after \"end\"");
                goto fail;
            }
        }
    }
    if (r < 0)
        goto fail;
    return m;

fail:
    learned_free(m);
    return NULL;
}

struct learned_model *learned_load(const char *path, char *err, size_t errlen)
{
    struct learned_model *m;
    char msg[256];
    struct buf b;
    char chunk[65536];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&b, LEARNED_MAX_FILE_BYTES);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) < 0) {
            snprintf(err, errlen, "%s: larger than %u bytes", path,
                     (unsigned)LEARNED_MAX_FILE_BYTES);
            fclose(f);
            buf_free(&b);
            return NULL;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        fclose(f);
        buf_free(&b);
        return NULL;
    }
    fclose(f);
    m = learned_parse(b.data ? b.data : "", b.len, msg, sizeof(msg));
    buf_free(&b);
    if (m == NULL)
        snprintf(err, errlen, "%s: %s", path, msg);
    return m;
}
