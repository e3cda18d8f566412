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

/* ---- the head's inputs ---- */

static const char *const input_names[LI_PEER] = {
    "text",  "kind_choice", "kind_number", "kind_text",   "clean",    "loglen",
    "hedge", "code",        "code_ok",     "agree_share", "distinct", "sim_mean",
};

const char *learned_input_name(unsigned i)
{
    static const char *const peer_names[2 * LEARNED_MAX_PEERS] = {
        "agree1", "sim1", "agree2", "sim2", "agree3", "sim3", "agree4", "sim4",
    };

    if (i < LI_PEER)
        return input_names[i];
    if (i < LI_COUNT)
        return peer_names[i - LI_PEER];
    return NULL;
}

#define INFO_HEAD 1024 /* bytes of an answer its word set and hedges are taken from */

/* Phrases that say the model is unsure, matched case-insensitively at a word
 * start. */
static const char *const hedges[] = {
    "i think",
    "i believe",
    "probably",
    "possibly",
    "perhaps",
    "maybe",
    "not sure",
    "unsure",
    "uncertain",
    "it seems",
    "might be",
    "could be",
    "likely",
    "unclear",
    "hard to say",
    "difficult to determine",
    "cannot be determined",
    "not certain",
    "i'm not",
    "i am not",
};

static int at_word_start(const unsigned char *b, const unsigned char *p)
{
    return p == b || !is_word(p[-1]);
}

/* Does [p, e) start with lit, case-insensitively, ending at a word edge? */
static int starts_ci(const unsigned char *p, const unsigned char *e, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(e - p) < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (to_lower(p[i]) != (unsigned char)lit[i])
            return 0;
    return p + n == e || !is_word(p[n]);
}

static unsigned count_hedges(const unsigned char *s, const unsigned char *e)
{
    unsigned n = 0;

    for (const unsigned char *p = s; p < e && n < 3; p++) {
        if (!at_word_start(s, p) || !is_word(*p))
            continue;
        for (size_t i = 0; i < ARRAY_LEN(hedges); i++) {
            if (starts_ci(p, e, hedges[i])) {
                n++;
                break;
            }
        }
    }
    return n;
}

/* Is there code, and does it look whole? Code is what is inside ``` fences,
 * else the whole answer when a line starts with "def ", "class ",
 * "import " or "#include". Whole: the fences are closed and (), [] and {}
 * balance outside string literals and # or // comments. */
static void code_check(const unsigned char *s, const unsigned char *e, int *code, int *ok)
{
    unsigned fences = 0;
    int in_fence = 0, any_line = 0, depth_bad = 0;
    char stack[64];
    size_t sp = 0;

    for (const unsigned char *p = s; p + 2 < e; p++)
        if (p[0] == '`' && p[1] == '`' && p[2] == '`') {
            fences++;
            p += 2;
        }
    for (const unsigned char *p = s; p < e; p++) {
        if (p != s && p[-1] != '\n')
            continue;
        if (starts_ci(p, e, "def") || starts_ci(p, e, "class") || starts_ci(p, e, "import") ||
            (e - p >= 8 && memcmp(p, "#include", 8) == 0))
            any_line = 1;
    }
    *code = fences > 0 || any_line;
    *ok = 0;
    if (!*code || fences % 2 != 0)
        return;
    for (const unsigned char *p = s; p < e; p++) {
        unsigned char c = *p;

        if (c == '`' && p + 2 < e && p[1] == '`' && p[2] == '`') {
            in_fence = !in_fence;
            p += 2;
            while (p + 1 < e && p[1] != '\n') /* the fence's language tag */
                p++;
            continue;
        }
        if (fences > 0 && !in_fence)
            continue;
        if (c == '"' || c == '\'') {
            /* A string literal ends at its quote or the line's end. */
            while (p + 1 < e && p[1] != c && p[1] != '\n')
                p += p[1] == '\\' && p + 2 < e ? 2 : 1;
            if (p + 1 < e && p[1] == c)
                p++;
        } else if (c == '#' || (c == '/' && p + 1 < e && p[1] == '/')) {
            while (p + 1 < e && p[1] != '\n')
                p++;
        } else if (c == '(' || c == '[' || c == '{') {
            if (sp == sizeof(stack)) {
                depth_bad = 1;
                break;
            }
            stack[sp++] = (char)c;
        } else if (c == ')' || c == ']' || c == '}') {
            char open = c == ')' ? '(' : c == ']' ? '[' : '{';

            if (sp == 0 || stack[sp - 1] != open) {
                depth_bad = 1;
                break;
            }
            sp--;
        }
    }
    *ok = !depth_bad && sp == 0;
}

void learned_answer_info(const char *answer, struct learned_info *info)
{
    const unsigned char *b = (const unsigned char *)(answer ? answer : ""), *p, *e, *t0, *t1;
    size_t len = strlen((const char *)b), klen;
    int code, code_ok;

    memset(info, 0, sizeof(*info));
    answer_agree_key((const char *)b, info->key, sizeof(info->key));
    klen = strlen(info->key);
    if (klen == 1 && info->key[0] >= 'A' && info->key[0] <= 'E')
        info->own[LI_KIND_CHOICE] = 1;
    else if (klen > 0 &&
             ((info->key[0] >= '0' && info->key[0] <= '9') || (info->key[0] == '-' && klen > 1)))
        info->own[LI_KIND_NUMBER] = 1;
    else if (klen > 0)
        info->own[LI_KIND_TEXT] = 1;
    /* Clean: without blanks, brackets, a full stop and markdown stars, the
     * answer is its key (a choice or a number). */
    t0 = b;
    t1 = b + len;
    while (t0 < t1 && is_space(*t0))
        t0++;
    while (t1 > t0 && is_space(t1[-1]))
        t1--;
    while (t1 > t0 && (*t0 == '(' || *t0 == '[' || *t0 == '*'))
        t0++;
    while (t1 > t0 && (t1[-1] == '.' || t1[-1] == ')' || t1[-1] == ']' || t1[-1] == '*'))
        t1--;
    if ((info->own[LI_KIND_CHOICE] > 0 || info->own[LI_KIND_NUMBER] > 0) &&
        (size_t)(t1 - t0) == klen && memcmp(t0, info->key, klen) == 0)
        info->own[LI_CLEAN] = 1;
    info->own[LI_LOGLEN] = log1p((double)len) / 8.0 > 1.0 ? 1.0 : log1p((double)len) / 8.0;
    e = b + (len > INFO_HEAD ? INFO_HEAD : len);
    info->own[LI_HEDGE] = (double)count_hedges(b, e) / 3.0;
    code_check(b, b + len, &code, &code_ok);
    info->own[LI_CODE] = code;
    info->own[LI_CODE_OK] = code_ok;
    /* The word set: each lower-cased word of the head sets one of 256 bits. */
    for (p = b; p < e;) {
        uint32_t h = FNV_OFFSET;

        while (p < e && !is_word(*p))
            p++;
        if (p == e)
            break;
        while (p < e && is_word(*p))
            h = fnv_byte(h, to_lower(*p++));
        h = fmix32(h) & 255u;
        info->words[h / 64] |= 1ull << (h % 64);
    }
}

static double word_sim(const struct learned_info *a, const struct learned_info *b)
{
    unsigned both = 0, any = 0;

    for (int i = 0; i < 4; i++) {
        both += (unsigned)__builtin_popcountll(a->words[i] & b->words[i]);
        any += (unsigned)__builtin_popcountll(a->words[i] | b->words[i]);
    }
    return any ? (double)both / (double)any : 0.0;
}

void learned_inputs(const struct learned_info *self, const struct learned_info *peers,
                    unsigned npeers, double z_text, double *x)
{
    const char *seen[LEARNED_MAX_PEERS + 1];
    unsigned agree = 1, distinct = 0;
    double sim_sum = 0;

    memset(x, 0, LI_COUNT * sizeof(*x));
    x[LI_TEXT] = z_text;
    for (unsigned i = LI_KIND_CHOICE; i < LI_AGREE_SHARE; i++)
        x[i] = self->own[i];
    if (npeers == 0)
        return;
    if (self->key[0])
        seen[distinct++] = self->key;
    else
        agree = 0; /* an empty key agrees with nothing, not even itself */
    for (unsigned i = 0; i < npeers && i < LEARNED_MAX_PEERS; i++) {
        const char *k = peers[i].key;
        int is_new = k[0] != '\0';
        double sim = word_sim(self, &peers[i]);

        if (k[0] && self->key[0] && strcmp(k, self->key) == 0) {
            agree++;
            x[LI_PEER + 2 * i] = 1;
        }
        for (unsigned j = 0; j < distinct && is_new; j++)
            is_new = strcmp(seen[j], k) != 0;
        if (is_new)
            seen[distinct++] = k;
        x[LI_PEER + 2 * i + 1] = sim;
        sim_sum += sim;
    }
    x[LI_AGREE_SHARE] = (double)agree / (double)(npeers + 1);
    x[LI_DISTINCT] = distinct > 1 ? (double)(distinct - 1) / (double)npeers : 0.0;
    x[LI_SIM_MEAN] = sim_sum / (double)npeers;
}

double learned_head_z(const struct learned_model *m, unsigned f, const double *x)
{
    const struct learned_fold *fo = &m->fold[f];
    double z = fo->head_bias;

    for (unsigned j = 0; j < m->nhead; j++)
        z += fo->head[j] * x[m->head_in[j]];
    return z;
}

unsigned learned_fold_of(uint64_t seed, unsigned nfolds, const char *query)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    size_t n;

    if (nfolds <= 1)
        return 0;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((seed >> (8 * i)) & 0xff)) * 1099511628211ull;
    /* Only the query's end: a prompt that repeats another one twice over
     * (routerbench has a few) falls in that one's fold. */
    n = strlen(query);
    for (const unsigned char *p =
             (const unsigned char *)query + (n > LEARNED_FOLD_TAIL ? n - LEARNED_FOLD_TAIL : 0);
         *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    /* murmur3's fmix64: the low bits of FNV are weak, and mod takes them. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (unsigned)(h % nfolds);
}

/* Fold f's text logit for (query, answer). */
static double text_z(const struct learned_model *m, unsigned f, const char *query,
                     const char *answer, const char *finish_reason)
{
    struct fwalk fw = {0};

    fw.p = &m->p;
    fw.mask = (1u << m->p.bits) - 1;
    fw.w = m->fold[f].w;
    fw.z = m->fold[f].bias;
    walk_query(&fw, query);
    walk_answer(&fw, query, answer, finish_reason);
    return fw.z;
}

double learned_score(const struct learned_model *m, const char *query, const char *answer,
                     const char *finish_reason, const char *const *peers, size_t npeers)
{
    struct learned_info self, pi[LEARNED_MAX_PEERS];
    double x[LI_COUNT], z;
    unsigned f;

    query = query ? query : "";
    answer = answer ? answer : "";
    f = learned_fold_of(m->fold_seed, m->nfolds, query);
    z = text_z(m, f, query, answer, finish_reason);
    if (m->nhead == 0)
        return learned_sigmoid(z);
    learned_answer_info(answer, &self);
    for (unsigned i = 0; i < m->npeers; i++)
        learned_answer_info(i < npeers ? peers[i] : NULL, &pi[i]);
    learned_inputs(&self, pi, m->npeers, z, x);
    return learned_sigmoid(learned_head_z(m, f, x));
}

size_t learned_peers(const struct learned_model *m)
{
    return m->npeers;
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

struct learned_model *learned_model_new(const struct learned_params *p, const char *name,
                                        unsigned nfolds)
{
    struct learned_model *m = xcalloc(1, sizeof(*m));

    sl_assert(nfolds >= 1 && nfolds <= LEARNED_MAX_FOLDS);
    m->p = *p;
    m->name = xstrdup(name);
    m->peers = xstrdup("");
    m->nfolds = nfolds;
    m->fold = xcalloc(nfolds, sizeof(*m->fold));
    for (unsigned f = 0; f < nfolds; f++)
        m->fold[f].w = xcalloc((size_t)1 << p->bits, sizeof(float));
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
    for (unsigned f = 0; m->fold && f < m->nfolds; f++) {
        free(m->fold[f].w);
        free(m->fold[f].head);
    }
    free(m->fold);
    free(m->meta);
    free(m->peers);
    free(m->name);
    free(m);
}

const char *learned_model_name(const struct learned_model *m)
{
    return m->name;
}

const char *learned_peer_names(const struct learned_model *m)
{
    return m->peers;
}

/* The keys the model itself owns; metadata may not use them. */
static const char *const reserved_keys[] = {
    "model",       "bits",     "word_ngrams", "char_ngrams", "query_tail",
    "answer_head", "features", "bias",        "nonzero",     "peers",
    "head",        "folds",    "fold_seed",   "head_bias",   "head_weights",
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

/* Header keys, a bit each. */
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
    HK_PEERS = 1 << 9,
    HK_HEAD = 1 << 10,
    HK_FOLDS = 1 << 11,
    HK_FOLD_SEED = 1 << 12,
};
static const char *const hk_names[] = {
    "model", "bits",    "word_ngrams", "char_ngrams", "query_tail", "answer_head", "features",
    "bias",  "nonzero", "peers",       "head",        "folds",      "fold_seed",
};
#define HK_COMMON 0x7f /* model .. features: both versions */
#define HK_V1 (HK_COMMON | HK_BIAS | HK_NONZERO)
#define HK_V2_REQUIRED (HK_COMMON | HK_FOLDS | HK_FOLD_SEED)
#define HK_V2 (HK_V2_REQUIRED | HK_PEERS | HK_HEAD)

/* What the header says that is not the model's own field yet. */
struct header {
    unsigned seen;
    unsigned long nonzero;       /* version 1 */
    const char *head_s, *head_e; /* the "head=" value; it needs npeers */
    unsigned long folds;
};

/* "peers=a,b": at most LEARNED_MAX_PEERS non-empty names. */
static int span_peers(const char *s, const char *e, unsigned *n)
{
    *n = 0;
    if (s == e)
        return 0;
    for (;;) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;

        if (te == s || ++*n > LEARNED_MAX_PEERS)
            return -1;
        if (c == NULL)
            return 0;
        s = c + 1;
    }
}

/* "head=text,agree1,...": the inputs the head's weights multiply, in order,
 * each known, none twice, no peer input beyond the model's peers. */
static int parse_head_names(struct lparse *ps, struct learned_model *m, const char *s,
                            const char *e)
{
    unsigned used[LI_COUNT] = {0};

    m->nhead = 0;
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        unsigned i;

        for (i = 0; i < LI_COUNT; i++)
            if (span_eq(s, te, learned_input_name(i)))
                break;
        if (i == LI_COUNT) {
            perr(ps, "head: unknown input \"%.*s\"", (int)(te - s > 64 ? 64 : te - s), s);
            return -1;
        }
        if (used[i]++) {
            perr(ps, "head: input \"%s\" listed twice", learned_input_name(i));
            return -1;
        }
        if (i >= LI_PEER && (i - LI_PEER) / 2 >= m->npeers) {
            perr(ps, "head: input \"%s\" needs more peers than the %u listed",
                 learned_input_name(i), m->npeers);
            return -1;
        }
        m->head_in[m->nhead++] = (unsigned char)i;
        s = c ? c + 1 : e;
        if (c && s == e) {
            perr(ps, "head: empty input name");
            return -1;
        }
    }
    if (m->nhead == 0) {
        perr(ps, "head: no inputs (leave the key out for no head)");
        return -1;
    }
    return 0;
}

/* Store metadata key=value, as read. */
static int add_meta(struct lparse *ps, struct learned_model *m, const char *ks, size_t klen,
                    const char *v, const char *le)
{
    char key[LEARNED_MAX_KEY + 1];

    memcpy(key, ks, klen);
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
    return 0;
}

/* The next line that is not blank or a comment. 1, 0 at the end, -1. */
static int next_content_line(struct lparse *ps, const char **ls, const char **le)
{
    int r;

    while ((r = next_line(ps, ls, le)) > 0)
        if (*ls != *le && **ls != '#')
            return 1;
    return r;
}

/* The header: "key=value" lines up to "weights" (version 1) or "fold 0"
 * (version 2). Fills the model's params, name, peers and metadata, and h.
 * Returns 0, or -1 with the message set. */
static int parse_header(struct lparse *ps, struct learned_model *m, int version, struct header *h)
{
    const char *ls, *le;
    const char *stop = version == 1 ? "weights" : "fold 0";
    unsigned allowed = version == 1 ? HK_V1 : HK_V2;
    unsigned required = version == 1 ? HK_V1 : HK_V2_REQUIRED;
    int r;

    while ((r = next_content_line(ps, &ls, &le)) > 0) {
        const char *eq, *v;
        size_t klen;
        unsigned bit = 0;
        unsigned long ul = 0;

        if (span_eq(ls, le, stop))
            break;
        eq = memchr(ls, '=', (size_t)(le - ls));
        if (eq == NULL) {
            perr(ps, "expected key=value or \"%s\"", stop);
            return -1;
        }
        klen = (size_t)(eq - ls);
        v = eq + 1;
        if (!valid_key(ls, klen)) {
            perr(ps, "bad key \"%.*s\"", (int)(klen > 64 ? 64 : klen), ls);
            return -1;
        }
        for (unsigned i = 0; i < ARRAY_LEN(hk_names); i++)
            if (span_eq(ls, eq, hk_names[i]))
                bit = 1u << i;
        /* Version 1 files wrote training metadata under names version 2 now
         * uses ("folds=5"): there, they are still metadata. */
        if (bit == 0 || (version == 1 && !(bit & allowed))) {
            /* Training metadata: informative only, kept for learned_meta(). */
            if (add_meta(ps, m, ls, klen, v, le) < 0)
                return -1;
            continue;
        }
        if (!(bit & allowed)) {
            perr(ps, "key \"%.*s\" does not belong in a version %d file", (int)klen, ls, version);
            return -1;
        }
        if (h->seen & bit) {
            perr(ps, "duplicate key \"%.*s\"", (int)klen, ls);
            return -1;
        }
        h->seen |= bit;
        switch (bit) {
        case HK_MODEL:
            if (v == le || le - v > LEARNED_MAX_VALUE) {
                perr(ps, "model: empty or too long");
                return -1;
            }
            m->name = xstrndup(v, (size_t)(le - v));
            break;
        case HK_BITS:
            if (span_ulong(v, le, LEARNED_MAX_BITS, &ul) < 0 || ul < LEARNED_MIN_BITS) {
                perr(ps, "bits: must be an integer in %d..%d", LEARNED_MIN_BITS, LEARNED_MAX_BITS);
                return -1;
            }
            m->p.bits = (unsigned)ul;
            break;
        case HK_WORDS:
            if (span_range(v, le, 3, &m->p.word_min, &m->p.word_max) < 0) {
                perr(ps, "word_ngrams: expected A-B within 1-3");
                return -1;
            }
            break;
        case HK_CHARS:
            if (span_range(v, le, 8, &m->p.char_min, &m->p.char_max) < 0) {
                perr(ps, "char_ngrams: expected A-B within 1-8");
                return -1;
            }
            break;
        case HK_QTAIL:
        case HK_AHEAD:
            if (span_ulong(v, le, 1u << 20, &ul) < 0) {
                perr(ps, "%.*s: must be an integer in 0..1048576", (int)klen, ls);
                return -1;
            }
            *(bit == HK_QTAIL ? &m->p.query_tail : &m->p.answer_head) = (unsigned)ul;
            break;
        case HK_FEATURES:
            if (span_features(v, le, &m->p.features) < 0) {
                perr(ps, "features: expected a comma-separated list of query_words, "
                         "query_chars, answer_words, answer_chars, choice, meta");
                return -1;
            }
            break;
        case HK_BIAS:
            if (span_double(v, le, &m->fold[0].bias) < 0) {
                perr(ps, "bias: not a finite number");
                return -1;
            }
            break;
        case HK_NONZERO:
            if (span_ulong(v, le, 1ul << LEARNED_MAX_BITS, &h->nonzero) < 0) {
                perr(ps, "nonzero: not a count");
                return -1;
            }
            break;
        case HK_PEERS:
            if (le - v > LEARNED_MAX_VALUE || span_peers(v, le, &m->npeers) < 0) {
                perr(ps, "peers: expected at most %d comma-separated model names",
                     LEARNED_MAX_PEERS);
                return -1;
            }
            free(m->peers);
            m->peers = xstrndup(v, (size_t)(le - v));
            break;
        case HK_HEAD:
            h->head_s = v;
            h->head_e = le;
            break;
        case HK_FOLDS:
            if (span_ulong(v, le, LEARNED_MAX_FOLDS, &h->folds) < 0 || h->folds < 1) {
                perr(ps, "folds: must be an integer in 1..%d", LEARNED_MAX_FOLDS);
                return -1;
            }
            break;
        case HK_FOLD_SEED: {
            unsigned long long seed;
            char tmp[24];
            char *end;

            if (le - v < 1 || le - v > 20 || *v < '0' || *v > '9') {
                perr(ps, "fold_seed: not an unsigned 64-bit integer");
                return -1;
            }
            memcpy(tmp, v, (size_t)(le - v));
            tmp[le - v] = '\0';
            errno = 0;
            seed = strtoull(tmp, &end, 10);
            if (errno || *end != '\0') {
                perr(ps, "fold_seed: not an unsigned 64-bit integer");
                return -1;
            }
            m->fold_seed = (uint64_t)seed;
            break;
        }
        }
    }
    if (r < 0)
        return -1;
    if (r == 0) {
        perr(ps, "truncated: no \"%s\" line", stop);
        return -1;
    }
    for (unsigned i = 0; i < ARRAY_LEN(hk_names); i++) {
        if ((required & (1u << i)) && !(h->seen & (1u << i))) {
            perr(ps, "missing key \"%s\"", hk_names[i]);
            return -1;
        }
    }
    if (h->head_s && parse_head_names(ps, m, h->head_s, h->head_e) < 0)
        return -1;
    return 0;
}

/* "index weight" lines, indices strictly increasing, then "end": nonzero of
 * them into fold f's text weights. 0, or -1 with the message set. */
static int parse_weights(struct lparse *ps, struct learned_model *m, unsigned f,
                         unsigned long nonzero)
{
    const char *ls, *le, *sp;
    unsigned long count = 0, prev = 0;
    int r;

    if (nonzero > (1ul << m->p.bits)) {
        perr(ps, "nonzero=%lu exceeds 2^bits", nonzero);
        return -1;
    }
    while ((r = next_line(ps, &ls, &le)) > 0) {
        unsigned long idx;
        double w;

        if (span_eq(ls, le, "end"))
            break;
        sp = memchr(ls, ' ', (size_t)(le - ls));
        if (sp == NULL) {
            perr(ps, "expected \"index weight\" or \"end\"");
            return -1;
        }
        if (span_ulong(ls, sp, ~0ul, &idx) < 0) {
            perr(ps, "bad index");
            return -1;
        }
        if (idx >= (1ul << m->p.bits)) {
            perr(ps, "index %lu out of range (bits=%u)", idx, m->p.bits);
            return -1;
        }
        if (count > 0 && idx <= prev) {
            perr(ps, "index %lu not above the previous %lu", idx, prev);
            return -1;
        }
        if (span_double(sp + 1, le, &w) < 0 || fabs(w) > 1e6) {
            perr(ps, "weight is not a finite number within +-1e6");
            return -1;
        }
        if (++count > nonzero) {
            perr(ps, "more weights than nonzero=%lu", nonzero);
            return -1;
        }
        m->fold[f].w[idx] = (float)w;
        prev = idx;
    }
    if (r < 0)
        return -1;
    if (r == 0) {
        perr(ps, "truncated: %lu of %lu weights and no \"end\" line", count, nonzero);
        return -1;
    }
    if (count != nonzero) {
        perr(ps, "%lu weights but nonzero=%lu", count, nonzero);
        return -1;
    }
    return 0;
}

/* "head_weights=a,b,...": exactly n finite numbers within +-1e6. */
static int span_doubles(const char *s, const char *e, double *out, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;

        if (span_double(s, te, &out[i]) < 0 || fabs(out[i]) > 1e6)
            return -1;
        if ((c == NULL) != (i == n - 1))
            return -1;
        s = c ? c + 1 : e;
    }
    return 0;
}

/* Version 2, fold f after its "fold F" line: bias=, head_bias= and
 * head_weights= (with a head), nonzero=, "weights", the weights, "end". */
static int parse_fold(struct lparse *ps, struct learned_model *m, unsigned f)
{
    struct learned_fold *fo = &m->fold[f];
    unsigned seen = 0;
    unsigned long nonzero = 0;
    const char *ls, *le;
    int r;
    enum { F_BIAS = 1, F_HBIAS = 2, F_HW = 4, F_NZ = 8 };
    unsigned need = F_BIAS | F_NZ | (m->nhead ? F_HBIAS | F_HW : 0);

    if (m->nhead)
        fo->head = xcalloc(m->nhead, sizeof(*fo->head));
    while ((r = next_content_line(ps, &ls, &le)) > 0) {
        const char *eq = memchr(ls, '=', (size_t)(le - ls));
        unsigned bit;

        if (span_eq(ls, le, "weights"))
            break;
        if (eq == NULL) {
            perr(ps, "fold %u: expected key=value or \"weights\"", f);
            return -1;
        }
        bit = span_eq(ls, eq, "bias")           ? F_BIAS
              : span_eq(ls, eq, "head_bias")    ? F_HBIAS
              : span_eq(ls, eq, "head_weights") ? F_HW
              : span_eq(ls, eq, "nonzero")      ? F_NZ
                                                : 0;
        if (bit == 0 || (bit & (F_HBIAS | F_HW) && !m->nhead)) {
            perr(ps, "fold %u: unexpected key \"%.*s\"", f, (int)(eq - ls > 64 ? 64 : eq - ls), ls);
            return -1;
        }
        if (seen & bit) {
            perr(ps, "fold %u: duplicate key \"%.*s\"", f, (int)(eq - ls), ls);
            return -1;
        }
        seen |= bit;
        if ((bit == F_BIAS && span_double(eq + 1, le, &fo->bias) < 0) ||
            (bit == F_HBIAS && span_double(eq + 1, le, &fo->head_bias) < 0)) {
            perr(ps, "fold %u: %.*s: not a finite number", f, (int)(eq - ls), ls);
            return -1;
        }
        if (bit == F_HW && span_doubles(eq + 1, le, fo->head, m->nhead) < 0) {
            perr(ps, "fold %u: head_weights: expected %u numbers within +-1e6", f, m->nhead);
            return -1;
        }
        if (bit == F_NZ && span_ulong(eq + 1, le, 1ul << LEARNED_MAX_BITS, &nonzero) < 0) {
            perr(ps, "fold %u: nonzero: not a count", f);
            return -1;
        }
    }
    if (r < 0)
        return -1;
    if (r == 0) {
        perr(ps, "truncated: fold %u has no \"weights\" line", f);
        return -1;
    }
    if ((seen & need) != need) {
        perr(ps, "fold %u: missing %s", f,
             !(seen & F_BIAS)    ? "bias="
             : !(seen & F_NZ)    ? "nonzero="
             : !(seen & F_HBIAS) ? "head_bias="
                                 : "head_weights=");
        return -1;
    }
    return parse_weights(ps, m, f, nonzero);
}

struct learned_model *learned_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct lparse ps = {text, text + len, 0, err, errlen};
    struct learned_model *m;
    struct header h = {0};
    const char *ls, *le;
    unsigned long ver;
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
    if (span_ulong(ls + strlen(magic), le, 1000000, &ver) < 0) {
        perr(&ps, "bad version");
        return NULL;
    }
    if (ver != 1 && ver != LEARNED_VERSION) {
        perr(&ps, "unsupported version %lu (this build reads 1 and %d)", ver, LEARNED_VERSION);
        return NULL;
    }

    /* Parameters are only known after the header: start with one fold and
     * no weight arrays, allocate once bits and folds are read. */
    m = xcalloc(1, sizeof(*m));
    m->peers = xstrdup("");
    m->nfolds = 1;
    m->fold = xcalloc(1, sizeof(*m->fold));
    if (parse_header(&ps, m, (int)ver, &h) < 0)
        goto fail;
    if (learned_params_check(&m->p, err, errlen) < 0)
        goto fail;
    if (ver == 1) {
        m->fold[0].w = xcalloc((size_t)1 << m->p.bits, sizeof(float));
        if (parse_weights(&ps, m, 0, h.nonzero) < 0)
            goto fail;
    } else {
        free(m->fold);
        m->nfolds = (unsigned)h.folds;
        m->fold = xcalloc(m->nfolds, sizeof(*m->fold));
        for (unsigned f = 0; f < m->nfolds; f++) {
            char want[32];

            m->fold[f].w = xcalloc((size_t)1 << m->p.bits, sizeof(float));
            snprintf(want, sizeof(want), "fold %u", f);
            /* "fold 0" ended the header. */
            if (f > 0) {
                r = next_content_line(&ps, &ls, &le);
                if (r < 0)
                    goto fail;
                if (r == 0) {
                    perr(&ps, "truncated: %u of %u folds", f, m->nfolds);
                    goto fail;
                }
                if (!span_eq(ls, le, want)) {
                    perr(&ps, "expected \"%s\"", want);
                    goto fail;
                }
            }
            if (parse_fold(&ps, m, f) < 0)
                goto fail;
        }
    }
    while ((r = next_line(&ps, &ls, &le)) > 0) {
        for (const char *c = ls; c < le; c++) {
            if (!is_space((unsigned char)*c)) {
                perr(&ps, "data after the last \"end\"");
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
