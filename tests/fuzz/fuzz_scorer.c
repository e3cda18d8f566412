/* libFuzzer: everything that reads an answer or a scorer's verdict: the
 * rules, the agreement key, the judge's reply and the http scorer's JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/answer.h"
#include "../../src/scorer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), key[64];
    const char *two[2];
    double score;

    memcpy(s, data, size);
    s[size] = '\0';
    answer_rules(s, size % 2 ? "length" : NULL, (int)(size % 3 == 0));
    answer_agree_key(s, key, sizeof(key));
    if (strlen(key) >= sizeof(key))
        abort();
    two[0] = s;
    two[1] = s + size / 2;
    score = scorer_agreement(two, 2);
    if (score < 0.5 || score > 1.0)
        abort();
    if (scorer_judge_parse(s, &score) == 0 && (score < 0.0 || score > 1.0))
        abort();
    if (scorer_http_parse((const char *)data, size, &score) == 0 && (score < 0.0 || score > 1.0))
        abort();
    free(s);
    return 0;
}
