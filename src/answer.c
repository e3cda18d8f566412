/* answer.c - the rules veto and the agreement key; see answer.h.
 *
 * Everything here is pure and locale-free: the gateway calls it on worker
 * threads and sluice-tune calls it offline, and both must decide the same way
 * for the same bytes. Case folding is ASCII only; bytes >= 0x80 (UTF-8) are
 * kept as they are.
 */
#include "answer.h"

#include <jansson.h>
#include <string.h>

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A byte that can be part of a word: ASCII letters and digits, and every byte
 * of a multi-byte UTF-8 sequence (so "café" or "日本" stay one word). */
static int is_word(int c)
{
    return is_alpha(c) || is_digit(c) || c >= 0x80;
}

static int to_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Markdown and quoting that models put around an answer ("**D**", "> D",
 * "`42`") and that says nothing about the answer itself. */
static int is_decor(int c)
{
    return c == '*' || c == '_' || c == '`' || c == '"' || c == '>' || c == '#';
}

static const unsigned char *skip_space_decor(const unsigned char *s)
{
    while (*s && (is_space(*s) || is_decor(*s)))
        s++;
    return s;
}

/* Length of an apostrophe at s: ASCII ' or `, or U+2019, U+2018, U+02BC or
 * U+00B4 in UTF-8; 0 if there is none. Models and keyboards use all of them. */
static size_t apostrophe_len(const unsigned char *s)
{
    if (s[0] == '\'' || s[0] == '`')
        return 1;
    if (s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x99 || s[2] == 0x98))
        return 3;
    if ((s[0] == 0xCA && s[1] == 0xBC) || (s[0] == 0xC2 && s[1] == 0xB4))
        return 2;
    return 0;
}

/* Match `phrase` (lower case ASCII) at the start of s, case-insensitively.
 * In the phrase, ' matches any apostrophe, a space matches a run of
 * whitespace, and ',' matches an optional comma. The match must end at a word
 * boundary so "I cannot" does not match "I cannotate". Returns the number of
 * bytes of s matched, or 0. */
static size_t match_phrase(const unsigned char *s, const char *phrase)
{
    const unsigned char *p = s;

    for (const char *f = phrase; *f; f++) {
        if (*f == '\'') {
            size_t n = apostrophe_len(p);

            if (n == 0)
                return 0;
            p += n;
        } else if (*f == ' ') {
            if (!is_space(*p))
                return 0;
            while (is_space(*p))
                p++;
        } else if (*f == ',') {
            if (*p == ',')
                p++;
        } else if (to_lower(*p) != *f) {
            return 0;
        } else {
            p++;
        }
    }
    if (p > s && is_word(p[-1]) && is_word(*p))
        return 0;
    return (size_t)(p - s);
}

/* Openings of refusals and non-answers. Matched at the start of the answer
 * only: "I cannot" in the middle of a long answer is usually fine. The list
 * errs on the side of short, unambiguous openings; "Unfortunately, I can" is
 * deliberately absent since "Unfortunately, I can see why..." is an answer. */
static const char *const refusal_openings[] = {
    "i'm sorry",
    "i am sorry",
    "im sorry",
    "i'm so sorry",
    "i'm really sorry",
    "sorry, but",
    "sorry, i",
    "i apologize",
    "i apologise",
    "my apologies",
    "apologies, but",
    "i cannot",
    "i can't",
    "i cant",
    "i can not",
    "i won't be able",
    "i will not be able",
    "i'm unable",
    "i am unable",
    "im unable",
    "i'm not able",
    "i am not able",
    "i'm not allowed",
    "i am not allowed",
    "i'm not permitted",
    "i am not permitted",
    "i'm afraid i can",
    "i am afraid i can",
    "i'm afraid that i can",
    "unfortunately, i cannot",
    "unfortunately, i can't",
    "unfortunately, i'm unable",
    "unfortunately, i am unable",
    "unfortunately, i'm not able",
    "unfortunately, i am not able",
    "as an ai",
    "as a language model",
    "as an artificial intelligence",
    "as a large language model",
    "as a responsible ai",
    "i'm just an ai",
    "i am just an ai",
    "i'm only an ai",
    "i am only an ai",
    "i'm an ai",
    "i am an ai",
    "i do not feel comfortable",
    "i don't feel comfortable",
    "i'm not comfortable",
    "i am not comfortable",
    "i must decline",
    "i must respectfully decline",
    "i respectfully decline",
    "i'm not going to",
    "i am not going to",
    "i refuse",
};

static int is_refusal(const unsigned char *s)
{
    s = skip_space_decor(s);
    for (size_t i = 0; i < sizeof(refusal_openings) / sizeof(refusal_openings[0]); i++)
        if (match_phrase(s, refusal_openings[i]))
            return 1;
    return 0;
}

/* Content that is JSON, as a JSON response_format promises. jansson accepts
 * an object or an array at the top level by default, which is what the
 * OpenAI JSON modes produce; leading and trailing whitespace is fine. */
static int is_json(const char *content)
{
    json_error_t jerr;
    json_t *j = json_loads(content, 0, &jerr);

    if (j == NULL)
        return 0;
    json_decref(j);
    return 1;
}

/* The veto, in the order of how sure we are: nothing at all, cut off by the
 * token limit, a refusal, then malformed JSON. */
enum answer_veto answer_rules(const char *content, const char *finish_reason, int want_json)
{
    const unsigned char *s = (const unsigned char *)(content ? content : "");

    while (is_space(*s))
        s++;
    if (*s == '\0')
        return VETO_EMPTY;
    if (finish_reason && strcmp(finish_reason, "length") == 0)
        return VETO_TRUNCATED;
    if (is_refusal(s))
        return VETO_REFUSAL;
    if (want_json && !is_json(content))
        return VETO_BAD_JSON;
    return VETO_NONE;
}

const char *answer_veto_name(enum answer_veto v)
{
    switch (v) {
    case VETO_NONE:
        return "none";
    case VETO_EMPTY:
        return "empty";
    case VETO_REFUSAL:
        return "refusal";
    case VETO_TRUNCATED:
        return "truncated";
    case VETO_BAD_JSON:
        return "bad_json";
    }
    return "unknown";
}

/* ---- agreement key ---- */

/* Copy the NUL-terminated key into out (outlen > 0), cutting at a UTF-8
 * character boundary if it does not fit. */
static void put_key(char *out, size_t outlen, const char *key, size_t n)
{
    if (n > outlen - 1) {
        n = outlen - 1;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, key, n);
    out[n] = '\0';
}

/* Phrases that announce the answer ("Answer: D", "The correct answer is
 * (B)."), longest first so "the correct answer is" wins over "answer". */
static const char *const answer_prefixes[] = {
    "the correct answer is",
    "the right answer is",
    "the best answer is",
    "the final answer is",
    "the answer is",
    "the correct option is",
    "the correct choice is",
    "the best option is",
    "correct answer is",
    "correct answer",
    "final answer is",
    "final answer",
    "my answer is",
    "answer is",
    "answer",
    "correct option",
    "option",
    "choice",
};

/* Skip one announcing phrase at s, with any ':' and decoration after it.
 * Sets *strong when one was found: the rest is then known to be the answer,
 * which lets a lower-case letter ("answer: b") count as a choice. */
static const unsigned char *skip_answer_prefix(const unsigned char *s, int *strong)
{
    *strong = 0;
    for (size_t i = 0; i < sizeof(answer_prefixes) / sizeof(answer_prefixes[0]); i++) {
        size_t n = match_phrase(s, answer_prefixes[i]);

        if (n) {
            s += n;
            while (*s == ':' || *s == '=' || is_space(*s) || is_decor(*s))
                s++;
            *strong = 1;
            return s;
        }
    }
    return s;
}

/* Nothing but whitespace, decoration and closing punctuation up to the end. */
static int only_trailer(const unsigned char *s)
{
    while (*s && (is_space(*s) || is_decor(*s) || *s == '.' || *s == ')' || *s == ']' ||
                  *s == '!' || *s == ','))
        s++;
    return *s == '\0';
}

/* A choice letter A-E at s: "D", "D)", "(D)", "[D]", "D.", "D:", "D\n...",
 * "D (because ...)", "D - palms". A letter followed by a space and a word is
 * not a choice ("A dog ...", "A questioning ..."), nor is "E.g.". A lower-case
 * letter counts only in brackets, alone, or after an announcing phrase, since
 * "a" and "e" are also words. Writes the upper-case letter and returns 1. */
static int key_choice(const unsigned char *s, int strong, char *out, size_t outlen)
{
    int bracket = 0, c, upper;
    const unsigned char *t;

    if (*s == '(' || *s == '[') {
        bracket = 1;
        s++;
    }
    c = *s;
    if (c >= 'A' && c <= 'E')
        upper = 1;
    else if (c >= 'a' && c <= 'e')
        upper = 0;
    else
        return 0;
    t = s + 1;
    if (bracket) {
        if (*t != ')' && *t != ']')
            return 0;
    } else if (*t == '\0' || *t == ')' || *t == ']' || *t == ':' || *t == ',' || *t == ';') {
        /* delimited */
    } else if (*t == '.') {
        if (is_word(t[1]))
            return 0; /* "E.g.", "A.M." */
    } else if (is_space(*t) || is_decor(*t)) {
        const unsigned char *r = t;

        while (*r == ' ' || *r == '\t' || is_decor(*r))
            r++;
        /* A newline, the end, or an aside in brackets or after a dash. */
        if (!(*r == '\0' || *r == '\n' || *r == '\r' || *r == '(' || *r == '-' ||
              (r[0] == 0xE2 && r[1] == 0x80 && (r[2] == 0x93 || r[2] == 0x94))))
            return 0;
    } else {
        return 0;
    }
    if (!upper && !bracket && !strong && *t != ')' && !only_trailer(t))
        return 0;
    if (outlen < 2) {
        out[0] = '\0';
        return 1;
    }
    out[0] = (char)(upper ? c : c - ('a' - 'A'));
    out[1] = '\0';
    return 1;
}

/* A number at s: optional sign and currency sign, digits with optional
 * thousands commas, an optional decimal part, an optional '%'. `strict`
 * demands that the answer is the number (at most one short unit word and
 * punctuation may follow: "42", "3.50 dollars.", "1,000"); otherwise anything
 * not glued to it may follow, as after "the answer is 42 because ...".
 * Writes the normalised number ("1,000" -> "1000", "3.50" -> "3.5",
 * "-0.0" -> "0", "007" -> "7", ".5" -> "0.5") and returns 1. */
static int key_number(const unsigned char *s, int strict, char *out, size_t outlen)
{
    char num[96];
    size_t n = 0;
    int neg = 0, nonzero = 0;
    const unsigned char *ip, *ie, *fp = NULL, *fe = NULL, *t;

    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (*s == '$')
        s++;
    ip = s;
    while (is_digit(*s) || (*s == ',' && s > ip && is_digit(s[1]) && is_digit(s[2]) &&
                            is_digit(s[3]) && !is_digit(s[4])))
        s++;
    ie = s;
    if (*s == '.' && is_digit(s[1])) {
        fp = ++s;
        while (is_digit(*s))
            s++;
        fe = s;
    }
    if (ie == ip && fp == NULL)
        return 0;
    if (*s == '%')
        s++;
    /* Glued to more, it is not a number on its own: "3rd", "1/2",
     * "2023-01-01", "1.2.3", "1,00". A full stop or comma ending a clause is
     * fine. */
    if (*s == '.') {
        if (is_word(s[1]) || s[1] == '.')
            return 0;
    } else if (*s == ',') {
        if (is_digit(s[1]))
            return 0;
    } else if (is_word(*s) || *s == '/' || *s == '-') {
        return 0;
    }
    if (strict) {
        t = s;
        while (*t && (is_space(*t) || is_decor(*t)))
            t++;
        if (is_alpha(*t)) { /* one short unit word */
            const unsigned char *w = t;

            while (is_alpha(*t))
                t++;
            if (t - w > 12)
                return 0;
        }
        if (!only_trailer(t))
            return 0;
    }

    /* Normalise: integer digits without commas and leading zeros, fraction
     * without trailing zeros. Digits beyond what fits are a different key
     * anyway, so long numbers are cut (outlen is the real limit). */
    for (const unsigned char *p = ip; p < ie; p++) {
        if (*p == ',' || (n == 0 && *p == '0') || n >= 40)
            continue;
        num[n++] = (char)*p;
        nonzero = 1;
    }
    if (n == 0)
        num[n++] = '0';
    if (fp) {
        const unsigned char *last = fe;

        while (last > fp && last[-1] == '0')
            last--;
        if (last > fp) {
            num[n++] = '.';
            for (const unsigned char *p = fp; p < last && n < sizeof(num) - 1; p++)
                num[n++] = (char)*p;
            nonzero = 1;
        }
    }
    num[n] = '\0';
    if (neg && nonzero) {
        char tmp[sizeof(num) + 1];

        tmp[0] = '-';
        memcpy(tmp + 1, num, n + 1);
        put_key(out, outlen, tmp, n + 1);
    } else {
        put_key(out, outlen, num, n);
    }
    return 1;
}

/* The answer announced anywhere in a longer text: the last "answer is",
 * "answer:", "####" (GSM8K) or "\boxed{" (LaTeX) marker, since explanations
 * usually end with the verdict. Returns what follows it, or NULL. */
static const unsigned char *find_marker(const unsigned char *s)
{
    static const char *const markers[] = {"answer is", "answer:", "####", "\\boxed{"};
    const unsigned char *best = NULL;

    for (const unsigned char *p = s; *p; p++) {
        for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
            size_t n = strlen(markers[i]), k;

            for (k = 0; k < n && p[k] && to_lower(p[k]) == (unsigned char)markers[i][k]; k++)
                ;
            if (k == n && (p == s || !is_word(p[-1])))
                best = p + n;
        }
    }
    if (best == NULL)
        return NULL;
    while (*best == ':' || *best == ' ' || *best == '\t' || is_decor(*best))
        best++;
    return best;
}

/* The fallback key: whitespace runs collapsed to one space, ASCII folded to
 * lower case, trailing punctuation and decoration dropped. */
static void key_text(const unsigned char *s, char *out, size_t outlen)
{
    size_t n = 0, keep = 0;
    int space = 0;

    for (; *s && n < outlen - 1; s++) {
        if (is_space(*s)) {
            space = 1;
            continue;
        }
        if (space && n > 0) {
            out[n++] = ' ';
            if (n == outlen - 1)
                break;
        }
        space = 0;
        out[n++] = (char)to_lower(*s);
        /* Remember where the text ends before any trailing punctuation. */
        if (!(*s == '.' || *s == '!' || *s == '?' || *s == ',' || *s == ';' || *s == ':' ||
              is_decor(*s)))
            keep = n;
    }
    /* A cut at outlen may have split the last UTF-8 sequence: drop it. */
    {
        size_t k = keep;

        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && (unsigned char)out[k - 1] >= 0xC0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;

            if (keep - (k - 1) < want)
                keep = k - 1;
        }
    }
    out[keep] = '\0';
}

/* The rules, in order: a leading choice letter or number (after an optional
 * announcing phrase); else the last announcing marker anywhere followed by a
 * letter or number; else the normalised text. */
char *answer_agree_key(const char *content, char *out, size_t outlen)
{
    const unsigned char *s, *p;
    int strong;

    if (outlen == 0)
        return out;
    out[0] = '\0';
    if (content == NULL)
        return out;
    s = skip_space_decor((const unsigned char *)content);
    p = skip_answer_prefix(s, &strong);
    if (key_choice(p, strong, out, outlen) || key_number(p, 1, out, outlen))
        return out;
    p = find_marker(s);
    if (p && (key_choice(p, 1, out, outlen) || key_number(p, 0, out, outlen)))
        return out;
    key_text(s, out, outlen);
    return out;
}
