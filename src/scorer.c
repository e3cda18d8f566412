/* scorer.c - answer scorers; see scorer.h. */
#include "scorer.h"
#include "learned.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JUDGE_RUBRIC                                                                               \
    "You are a strict grader. Judge whether the ANSWER correctly and completely answers the "      \
    "QUESTION. Reply with a single integer from 0 (wrong or useless) to 10 (certainly correct "    \
    "and complete), and nothing else."

const char *scorer_name(enum scorer_kind k)
{
    static const char *names[] = {"none",  "rules",   "logprob", "agreement",
                                  "judge", "learned", "http"};

    return (size_t)k < ARRAY_LEN(names) ? names[k] : "?";
}

enum answer_veto scorer_rules(const struct reply *r, int want_json)
{
    return answer_rules(r->content.data ? r->content.data : "",
                        r->finish_reason[0] ? r->finish_reason : NULL, want_json);
}

double scorer_logprob(const struct reply *r)
{
    if (r->logprob_n == 0)
        return 0.0;
    return exp(r->logprob_sum / (double)r->logprob_n);
}

double scorer_agreement(const char *const *answers, size_t n)
{
    char first[256], key[256];
    size_t agree = 0;

    if (n == 0)
        return 0.0;
    answer_agree_key(answers[0] ? answers[0] : "", first, sizeof(first));
    if (first[0] == '\0')
        return 1.0 / (double)n; /* an empty answer agrees with nothing */
    for (size_t i = 0; i < n; i++) {
        answer_agree_key(answers[i] ? answers[i] : "", key, sizeof(key));
        if (strcmp(key, first) == 0)
            agree++;
    }
    return (double)agree / (double)n;
}

double scorer_learned(const struct learned_model *w, const char *query, const struct reply *r,
                      const char *const *peers, size_t npeers)
{
    return learned_score(w, query, r->content.data ? r->content.data : "",
                         r->finish_reason[0] ? r->finish_reason : NULL, peers, npeers);
}

json_t *scorer_judge_body(const char *rubric, const char *query, const char *answer)
{
    char *user = xasprintf("QUESTION:\n%s\n\nANSWER:\n%s\n\nScore (0-10):", query, answer);
    json_t *body = json_pack("{s:[{s:s, s:s}, {s:s, s:s}], s:i, s:i}", "messages", "role", "system",
                             "content", rubric ? rubric : JUDGE_RUBRIC, "role", "user", "content",
                             user, "temperature", 0, "max_tokens", 8);

    free(user);
    if (body == NULL)
        sl_panic("json_pack: judge body");
    return body;
}

int scorer_judge_parse(const char *content, double *score)
{
    const char *p = content;
    char *end;
    double v;

    while (*p && !isdigit((unsigned char)*p))
        p++;
    if (*p == '\0')
        return -1;
    v = strtod(p, &end);
    if (end == p || !isfinite(v))
        return -1;
    if (v > 10.0)
        v = 10.0;
    *score = v / 10.0;
    return 0;
}

char *scorer_http_body(const char *query, const char *answer, const char *model)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "query", query, "answer", answer, "model", model);
    char *s;

    if (o == NULL)
        sl_panic("json_pack: http scorer body");
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        sl_panic("json_dumps: out of memory");
    return s;
}

int scorer_http_parse(const char *body, size_t len, double *score)
{
    json_t *o = json_loadb(body, len, 0, NULL), *s = json_object_get(o, "score");
    int r = -1;

    if (json_is_number(s) && isfinite(json_number_value(s))) {
        double v = json_number_value(s);

        if (v >= 0.0 && v <= 1.0) {
            *score = v;
            r = 0;
        }
    }
    json_decref(o);
    return r;
}
