/* test_learned.c - the `learned` scorer (src/learned.c, and its trainer
 * src/tune/learned_train.c, included here): training separates
 * a synthetic set, scores are in [0, 1], saving and loading round-trips to
 * the same scores bit for bit, the feature hash is the documented one, and
 * bad weights files are rejected with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/learned.h"
#include "../../src/tune/learned_train.c"
#include "../../src/util.h"

/* A synthetic task: the answer is right when it names the query's colour.
 * Queries come in 8 topics; a scorer must learn which answers tend to be
 * right from their words. */
#define NSYN 200

static const char *const colours[] = {"red", "green", "blue", "yellow"};

struct syn {
    char query[128];
    char answer[128];
    int label;
};

static void make_syn(struct syn *s, size_t n)
{
    uint64_t x = 12345;

    for (size_t i = 0; i < n; i++) {
        unsigned c, topic;

        x = x * 6364136223846793005ull + 1442695040888963407ull;
        c = (unsigned)(x >> 33) % 4;
        topic = (unsigned)(x >> 40) % 8;
        s[i].label = (int)((x >> 50) & 1);
        snprintf(s[i].query, sizeof(s[i].query),
                 "Topic %u. What colour is the %s thing? Options: A) %s B) other", topic,
                 colours[c], colours[c]);
        if (s[i].label)
            snprintf(s[i].answer, sizeof(s[i].answer), "It is certainly %s.", colours[c]);
        else
            snprintf(s[i].answer, sizeof(s[i].answer), "I am not sure, maybe purple?");
    }
}

struct trained {
    struct learned_data *d;
    struct learned_model *m;
    struct syn *s;
    size_t *rows;
};

static struct trained train_syn(const struct learned_params *p, uint64_t seed)
{
    struct trained t;
    struct learned_train_opts o;

    t.s = calloc(NSYN, sizeof(*t.s));
    t.rows = calloc(NSYN, sizeof(*t.rows));
    make_syn(t.s, NSYN);
    t.d = learned_data_new(p, 0);
    for (size_t i = 0; i < NSYN; i++) {
        long q = learned_data_add_query(t.d, t.s[i].query);
        long r;

        assert_true(q >= 0);
        r = learned_data_add_answer(t.d, q, t.s[i].query, t.s[i].answer, NULL, t.s[i].label);
        assert_true(r >= 0);
        t.rows[i] = (size_t)r;
    }
    learned_train_opts_default(&o);
    o.seed = seed;
    t.m = learned_fit(t.d, t.rows, NULL, NSYN, &o, "synthetic/model-1");
    return t;
}

static void trained_free(struct trained *t)
{
    learned_free(t->m);
    learned_data_free(t->d);
    free(t->s);
    free(t->rows);
}

static void test_train_separates(void **state)
{
    struct learned_params p;
    struct trained t;
    double *score = calloc(NSYN, sizeof(double));
    int *label = calloc(NSYN, sizeof(int));
    double pos = 0, neg = 0;
    int npos = 0;

    (void)state;
    learned_params_default(&p);
    p.bits = 14;
    t = train_syn(&p, 7);
    for (size_t i = 0; i < NSYN; i++) {
        score[i] = learned_score(t.m, t.s[i].query, t.s[i].answer, NULL, NULL, 0);
        label[i] = t.s[i].label;
        if (label[i]) {
            pos += score[i];
            npos++;
        } else {
            neg += score[i];
        }
    }
    assert_true(npos > 20 && npos < NSYN - 20);
    assert_true(learned_auc(score, label, NSYN) > 0.99);
    assert_true(pos / npos > 0.8);
    assert_true(neg / (NSYN - npos) < 0.2);
    /* It generalises to a colour and topic combination it has not seen. */
    assert_true(learned_score(t.m, "Topic 99. What colour is the red thing?",
                              "It is certainly red.", NULL, NULL,
                              0) > learned_score(t.m, "Topic 99. What colour is the red thing?",
                                                 "I am not sure, maybe purple?", NULL, NULL, 0));
    free(score);
    free(label);
    trained_free(&t);
}

/* The offline score of a training row is the gateway's score of its texts,
 * to the last bit: sluice-tune's thresholds mean the same in the gateway. */
static void test_score_row_matches_score(void **state)
{
    struct learned_params p;
    struct trained t;

    (void)state;
    learned_params_default(&p);
    t = train_syn(&p, 3);
    for (size_t i = 0; i < NSYN; i++)
        assert_true(learned_score_row(t.m, t.d, t.rows[i]) ==
                    learned_score(t.m, t.s[i].query, t.s[i].answer, NULL, NULL, 0));
    trained_free(&t);
}

static void test_score_in_range(void **state)
{
    struct learned_params p;
    struct trained t;
    static char big[20000];
    static const char junk[] = "\xff\xfe\x01\x80 \xc3 \xe2\x80 ((((";
    double s;

    (void)state;
    learned_params_default(&p);
    p.bits = 12;
    t = train_syn(&p, 1);
    memset(big, 'z', sizeof(big) - 1);
    for (size_t i = 0; i < sizeof(big) - 1; i += 7)
        big[i] = ' ';
    const char *texts[] = {"", " ", "D", junk, big, "I'm sorry, I can't."};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
            s = learned_score(t.m, texts[i], texts[k], k % 2 ? "length" : NULL, NULL, 0);
            assert_true(s >= 0.0 && s <= 1.0 && !isnan(s));
        }
    }
    s = learned_score(t.m, NULL, NULL, NULL, NULL, 0);
    assert_true(s >= 0.0 && s <= 1.0);
    trained_free(&t);
}

static void test_deterministic(void **state)
{
    struct learned_params p;
    struct trained a, b, c;
    struct buf fa, fb, fc;

    (void)state;
    learned_params_default(&p);
    p.bits = 12;
    a = train_syn(&p, 42);
    b = train_syn(&p, 42);
    c = train_syn(&p, 43);
    buf_init(&fa, 1 << 24);
    buf_init(&fb, 1 << 24);
    buf_init(&fc, 1 << 24);
    assert_int_equal(learned_format(a.m, &fa), 0);
    assert_int_equal(learned_format(b.m, &fb), 0);
    assert_int_equal(learned_format(c.m, &fc), 0);
    assert_int_equal(fa.len, fb.len);
    assert_memory_equal(fa.data, fb.data, fa.len);
    /* Another seed shuffles differently, so the weights differ. */
    assert_true(fa.len != fc.len || memcmp(fa.data, fc.data, fa.len) != 0);
    buf_free(&fa);
    buf_free(&fb);
    buf_free(&fc);
    trained_free(&a);
    trained_free(&b);
    trained_free(&c);
}

static void test_round_trip(void **state)
{
    struct learned_params p;
    struct trained t;
    struct learned_model *m2, *m3;
    struct buf f;
    char err[256], path[] = "/tmp/sluice-test-learned-XXXXXX";
    int fd;

    (void)state;
    learned_params_default(&p);
    p.features = LF_ANSWER_WORDS | LF_QUERY_CHARS | LF_META;
    p.word_max = 3;
    p.char_min = 2;
    p.char_max = 4;
    t = train_syn(&p, 5);
    learned_set_meta(t.m, "trained_on", "synthetic\nwith a newline");
    learned_set_meta(t.m, "cv_auc", "0.5");
    learned_set_meta(t.m, "cv_auc", "0.9876"); /* replaces */

    buf_init(&f, 1 << 24);
    assert_int_equal(learned_format(t.m, &f), 0);
    assert_non_null(strstr(f.data, "sluice-learned 2\nmodel=synthetic/model-1\nbits=18\n"));
    assert_non_null(strstr(f.data, "\nfolds=1\nfold_seed=0\n"));
    assert_non_null(strstr(f.data, "\nword_ngrams=1-3\nchar_ngrams=2-4\n"));
    assert_non_null(strstr(f.data, "\nfeatures=query_chars,answer_words,meta\n"));
    assert_non_null(strstr(f.data, "\ntrained_on=synthetic with a newline\n"));
    assert_non_null(strstr(f.data, "\ncv_auc=0.9876\n"));
    assert_non_null(strstr(f.data, "\nweights\n"));
    assert_int_equal(memcmp(f.data + f.len - 4, "end\n", 4), 0);

    m2 = learned_parse(f.data, f.len, err, sizeof(err));
    if (m2 == NULL)
        fail_msg("parse: %s", err);
    assert_string_equal(learned_model_name(m2), "synthetic/model-1");
    assert_string_equal(learned_meta(m2, "cv_auc"), "0.9876");
    assert_int_equal(learned_model_params(m2)->word_max, 3);
    assert_int_equal(learned_model_params(m2)->features, p.features);
    assert_true(learned_model_bias(m2) == learned_model_bias(t.m));
    assert_int_equal(learned_model_nonzero(m2), learned_model_nonzero(t.m));
    for (size_t i = 0; i < NSYN; i++)
        assert_true(learned_score(m2, t.s[i].query, t.s[i].answer, NULL, NULL, 0) ==
                    learned_score(t.m, t.s[i].query, t.s[i].answer, NULL, NULL, 0));

    /* And through a file. */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(learned_save(t.m, path, err, sizeof(err)), 0);
    m3 = learned_load(path, err, sizeof(err));
    if (m3 == NULL)
        fail_msg("load: %s", err);
    for (size_t i = 0; i < NSYN; i++)
        assert_true(learned_score(m3, t.s[i].query, t.s[i].answer, "stop", NULL, 0) ==
                    learned_score(t.m, t.s[i].query, t.s[i].answer, "stop", NULL, 0));
    unlink(path);
    assert_null(learned_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "No such file"));

    learned_free(m2);
    learned_free(m3);
    buf_free(&f);
    trained_free(&t);
}

/* ---- the feature hash is the documented one ---- */

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static void test_hash_is_stable(void **state)
{
    /* The meta feature "finish=length": namespace 6, order 0, then bytes. */
    const char ns[2] = {6, 0};
    uint32_t h = fmix32(fnv(fnv(2166136261u, ns, 2), "finish=length", 13));
    unsigned bits = 12;
    char file[512], err[256];
    struct learned_model *m;
    double s_len, s_stop;

    (void)state;
    snprintf(file, sizeof(file),
             "sluice-learned 1\nmodel=m\nbits=%u\nword_ngrams=1-2\nchar_ngrams=3-5\n"
             "query_tail=1024\nanswer_head=1024\nfeatures=meta\nbias=0\nnonzero=1\n"
             "weights\n%u 2\nend\n",
             bits, h & ((1u << bits) - 1));
    m = learned_parse(file, strlen(file), err, sizeof(err));
    if (m == NULL)
        fail_msg("parse: %s", err);
    s_len = learned_score(m, "q", "", "length", NULL, 0);
    s_stop = learned_score(m, "q", "", "stop", NULL, 0);
    /* The sign is the hash's top bit. */
    assert_true(fabs(s_len - 1.0 / (1.0 + exp((h >> 31) ? 2.0 : -2.0))) < 1e-12);
    assert_true(s_stop == 0.5);
    /* NULL finish_reason is "stop", as the gateway sees recorded answers. */
    assert_true(learned_score(m, "q", "", NULL, NULL, 0) == s_stop);
    learned_free(m);
}

/* ---- bad files ---- */

static const char good_head[] = "sluice-learned 1\nmodel=m\nbits=8\nword_ngrams=1-2\n"
                                "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\n"
                                "features=query_words,meta\nbias=0.5\n";

static void expect_bad(const char *text, size_t len, const char *msg)
{
    char err[256] = "";
    struct learned_model *m = learned_parse(text, len, err, sizeof(err));

    if (m != NULL) {
        learned_free(m);
        fail_msg("accepted a bad file; wanted \"%s\"", msg);
    }
    if (strstr(err, msg) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", err, msg);
}

static void expect_bad_tail(const char *tail, const char *msg)
{
    char text[1024];

    snprintf(text, sizeof(text), "%s%s", good_head, tail);
    expect_bad(text, strlen(text), msg);
}

static void test_parse_good_minimal(void **state)
{
    char text[1024], err[256];
    struct learned_model *m;

    (void)state;
    snprintf(text, sizeof(text),
             "%s# a comment\n\nnote=free text\nnonzero=2\nweights\n"
             "3 0.25\n255 -1e-3\nend\n\n",
             good_head);
    m = learned_parse(text, strlen(text), err, sizeof(err));
    if (m == NULL)
        fail_msg("parse: %s", err);
    assert_string_equal(learned_meta(m, "note"), "free text");
    assert_int_equal(learned_model_nonzero(m), 2);
    learned_free(m);
    /* CRLF line ends are fine too. */
    snprintf(text, sizeof(text),
             "sluice-learned 1\r\nmodel=m\r\nbits=8\r\nword_ngrams=1-1\r\nchar_ngrams=3-3\r\n"
             "query_tail=0\r\nanswer_head=0\r\nfeatures=meta\r\nbias=0\r\nnonzero=0\r\n"
             "weights\r\nend\r\n");
    m = learned_parse(text, strlen(text), err, sizeof(err));
    if (m == NULL)
        fail_msg("parse: %s", err);
    learned_free(m);
}

static void test_parse_rejects(void **state)
{
    char text[1024];

    (void)state;
    expect_bad("", 0, "empty");
    expect_bad("hello\n", 6, "bad magic");
    expect_bad("sluice-learned 3\n", 17, "unsupported version 3");
    expect_bad("sluice-learned x\n", 17, "bad version");
    expect_bad("sluice-learned 1\nmodel=m\n", 25, "no \"weights\" line");
    expect_bad_tail("weights\nend\n", "missing key \"nonzero\"");
    expect_bad_tail("nonzero=1\nweights\n3 0.5\n", "truncated");
    expect_bad_tail("nonzero=2\nweights\n3 0.5\nend\n", "1 weights but nonzero=2");
    expect_bad_tail("nonzero=1\nweights\n3 0.5\n4 0.5\nend\n", "more weights than");
    expect_bad_tail("nonzero=1\nweights\n256 0.5\nend\n", "out of range");
    expect_bad_tail("nonzero=1\nweights\n99999999999999999999 0.5\nend\n", "bad index");
    expect_bad_tail("nonzero=1\nweights\n3 nan\nend\n", "not a finite number");
    expect_bad_tail("nonzero=1\nweights\n3 inf\nend\n", "not a finite number");
    expect_bad_tail("nonzero=1\nweights\n3 1e999\nend\n", "not a finite number");
    expect_bad_tail("nonzero=1\nweights\n3 0x10\nend\n", "not a finite number");
    expect_bad_tail("nonzero=1\nweights\n3 \nend\n", "not a finite number");
    expect_bad_tail("nonzero=1\nweights\n3\nend\n", "expected \"index weight\"");
    expect_bad_tail("nonzero=2\nweights\n5 1\n5 1\nend\n", "not above the previous");
    expect_bad_tail("nonzero=2\nweights\n5 1\n4 1\nend\n", "not above the previous");
    expect_bad_tail("nonzero=0\nweights\nend\nmore\n", "data after the last \"end\"");
    expect_bad_tail("nonzero=0\nbias=1\nweights\nend\n", "duplicate key \"bias\"");
    expect_bad_tail("x=1\nx=2\nnonzero=0\nweights\nend\n", "duplicate key \"x\"");
    expect_bad_tail("Bad-Key=1\nnonzero=0\nweights\nend\n", "bad key");
    expect_bad_tail("just words\n", "expected key=value");
    expect_bad_tail("nonzero=999\nweights\nend\n", "exceeds 2^bits");

    snprintf(text, sizeof(text),
             "sluice-learned 1\nmodel=m\nbits=30\nword_ngrams=1-2\nchar_ngrams=3-5\n"
             "query_tail=1\nanswer_head=1\nfeatures=meta\nbias=0\nnonzero=0\nweights\nend\n");
    expect_bad(text, strlen(text), "bits: must be an integer in 8..24");
    snprintf(text, sizeof(text),
             "sluice-learned 1\nmodel=m\nbits=8\nword_ngrams=2-1\nchar_ngrams=3-5\n"
             "query_tail=1\nanswer_head=1\nfeatures=meta\nbias=0\nnonzero=0\nweights\nend\n");
    expect_bad(text, strlen(text), "word_ngrams");
    snprintf(text, sizeof(text),
             "sluice-learned 1\nmodel=m\nbits=8\nword_ngrams=1-2\nchar_ngrams=3-9\n"
             "query_tail=1\nanswer_head=1\nfeatures=meta\nbias=0\nnonzero=0\nweights\nend\n");
    expect_bad(text, strlen(text), "char_ngrams");
    snprintf(text, sizeof(text),
             "sluice-learned 1\nmodel=m\nbits=8\nword_ngrams=1-2\nchar_ngrams=3-5\n"
             "query_tail=1\nanswer_head=1\nfeatures=meta,magic\nbias=0\nnonzero=0\n"
             "weights\nend\n");
    expect_bad(text, strlen(text), "features");
    snprintf(text, sizeof(text),
             "sluice-learned 1\nmodel=m\nbits=8\nword_ngrams=1-2\nchar_ngrams=3-5\n"
             "query_tail=1\nanswer_head=1\nfeatures=meta\nbias=nan\nnonzero=0\nweights\nend\n");
    expect_bad(text, strlen(text), "bias");

    /* A NUL byte, and a line too long to be ours. */
    {
        char nul[] = "sluice-learned 1\nmodel=m\0x\n";

        expect_bad(nul, sizeof(nul) - 1, "NUL byte");
    }
    {
        size_t n = 10000;
        char *big = malloc(n + 64);

        snprintf(big, n + 64, "sluice-learned 1\nmodel=");
        memset(big + strlen(big), 'a', n);
        big[n] = '\0';
        expect_bad(big, strlen(big), "longer than");
        free(big);
    }
    /* Truncation at every byte of a good file is caught: no prefix of it
     * parses (the "end" line is what says the file is whole). */
    {
        size_t n;

        snprintf(text, sizeof(text), "%snonzero=2\nweights\n3 0.25\n255 -1e-3\nend\n", good_head);
        n = strlen(text);
        for (size_t cut = 0; cut < n - 1; cut++) {
            char err[256];
            struct learned_model *m = learned_parse(text, cut, err, sizeof(err));

            if (m != NULL) {
                learned_free(m);
                fail_msg("a prefix of %zu bytes parsed", cut);
            }
        }
    }
}

static void test_data_cap(void **state)
{
    struct learned_params p;
    struct learned_data *d;
    long q;

    (void)state;
    learned_params_default(&p);
    d = learned_data_new(&p, 100);
    /* A long query needs more than 100 feature entries: refused, nothing
     * half-added. */
    q = learned_data_add_query(d, "the quick brown fox jumps over the lazy dog and keeps running");
    assert_int_equal(q, -1);
    q = learned_data_add_query(d, "hi");
    assert_int_equal(q, 0);
    assert_int_equal(learned_data_add_answer(d, q, "hi",
                                             "a much longer answer than fits, with "
                                             "many words and characters in it",
                                             NULL, 1),
                     -1);
    assert_int_equal(learned_data_rows(d), 0);
    assert_int_equal(learned_data_add_answer(d, q, "hi", "ok", NULL, 1), 0);
    assert_int_equal(learned_data_label(d, 0), 1);
    learned_data_free(d);
}

/* ---- version 2: folds, the head, peers ---- */

static void info_of(const char *answer, struct learned_info *i)
{
    learned_answer_info(answer, i);
}

static void test_inputs(void **state)
{
    struct learned_info a, b, c, e;
    double x[LI_COUNT];
    struct learned_info peers[3];

    (void)state;
    info_of("B", &a);
    assert_true(a.own[LI_KIND_CHOICE] == 1 && a.own[LI_CLEAN] == 1);
    info_of("(B).", &a);
    assert_true(a.own[LI_CLEAN] == 1);
    info_of("**B**", &a);
    assert_true(a.own[LI_CLEAN] == 1);
    info_of("B. The moon is made of rock.", &a);
    assert_true(a.own[LI_KIND_CHOICE] == 1 && a.own[LI_CLEAN] == 0);
    info_of("42", &a);
    assert_true(a.own[LI_KIND_NUMBER] == 1 && a.own[LI_CLEAN] == 1);
    info_of("I think it is probably B, maybe C", &a);
    assert_true(fabs(a.own[LI_HEDGE] - 1.0) < 1e-12);
    info_of("It is B, likely.", &a);
    assert_true(fabs(a.own[LI_HEDGE] - 1.0 / 3) < 1e-12);
    info_of("Likelihood is not a hedge", &a);
    assert_true(a.own[LI_HEDGE] == 0);
    info_of("Here:\n```python\ndef f(x):\n    return [x, (x + 1)]  # ) in a comment\n```\n", &a);
    assert_true(a.own[LI_CODE] == 1 && a.own[LI_CODE_OK] == 1);
    info_of("```python\ndef f(x):\n    return [x, (x + 1]\n```\n", &a);
    assert_true(a.own[LI_CODE] == 1 && a.own[LI_CODE_OK] == 0);
    info_of("```python\ndef f(x):\n    return x\n", &a); /* the fence never closes */
    assert_true(a.own[LI_CODE] == 1 && a.own[LI_CODE_OK] == 0);
    info_of("def f(s):\n    return s.split(\")\")\n", &a); /* a bracket in a string */
    assert_true(a.own[LI_CODE] == 1 && a.own[LI_CODE_OK] == 1);
    info_of("Plain words, no code.", &a);
    assert_true(a.own[LI_CODE] == 0 && a.own[LI_CODE_OK] == 0);

    /* Peers: agreement on the key, word-set similarity, distinct keys. */
    info_of("B", &a);
    info_of("b", &b); /* a lone lower-case letter is the choice b */
    info_of("C", &c);
    info_of("", &e);
    peers[0] = b;
    peers[1] = c;
    peers[2] = e;
    learned_inputs(&a, peers, 3, 1.5, x);
    assert_true(x[LI_TEXT] == 1.5);
    assert_true(x[LI_PEER] == 1 && x[LI_PEER + 2] == 0 && x[LI_PEER + 4] == 0);
    assert_true(fabs(x[LI_AGREE_SHARE] - 2.0 / 4) < 1e-12);
    assert_true(fabs(x[LI_DISTINCT] - 1.0 / 3) < 1e-12); /* B and C; "" is no answer */
    assert_true(x[LI_PEER + 1] == 1.0 && x[LI_PEER + 5] == 0.0);
    /* No peers: the peer inputs stay 0. */
    learned_inputs(&a, NULL, 0, 0, x);
    assert_true(x[LI_AGREE_SHARE] == 0 && x[LI_PEER] == 0 && x[LI_CLEAN] == 1);
    /* Similar texts are similar. */
    info_of("def add(a, b): return a + b", &a);
    info_of("def add(x, y): return x + y", &b);
    info_of("The capital of France is Paris", &c);
    peers[0] = b;
    peers[1] = c;
    learned_inputs(&a, peers, 2, 0, x);
    assert_true(x[LI_PEER + 1] > 0.3 && x[LI_PEER + 3] < x[LI_PEER + 1]);
}

static void test_fold_of(void **state)
{
    unsigned count[5] = {0};
    char q[64];

    (void)state;
    assert_int_equal(learned_fold_of(7, 1, "anything"), 0);
    assert_int_equal(learned_fold_of(7, 5, "a query"), learned_fold_of(7, 5, "a query"));
    for (int i = 0; i < 5000; i++) {
        unsigned f;

        snprintf(q, sizeof(q), "query number %d", i);
        f = learned_fold_of(1, 5, q);
        assert_true(f < 5);
        count[f]++;
    }
    for (int f = 0; f < 5; f++)
        assert_true(count[f] > 900 && count[f] < 1100);
    /* The seed reshuffles. */
    {
        int same = 0;

        for (int i = 0; i < 200; i++) {
            snprintf(q, sizeof(q), "query number %d", i);
            same += learned_fold_of(1, 5, q) == learned_fold_of(2, 5, q);
        }
        assert_true(same < 80);
    }
}

static void test_head_fit(void **state)
{
    double x[400 * LI_COUNT] = {0}, bias, w[2], bias2, w2[2];
    int y[400];
    unsigned char in[2] = {LI_PEER, LI_CLEAN};

    (void)state;
    /* Agreeing answers are right 80% of the time, the others 40%; clean
     * says nothing. */
    for (int i = 0; i < 400; i++) {
        x[i * LI_COUNT + LI_PEER] = i % 2;
        x[i * LI_COUNT + LI_CLEAN] = (i / 2) % 2;
        y[i] = (i % 2) ? (i % 10 != 1) : (i % 10 < 3);
    }
    learned_head_fit(x, y, 400, in, 2, 1.0, &bias, w);
    assert_true(w[0] > 1.5 && w[0] < 2.0); /* logit(0.8) - logit(0.4) = 1.79 */
    assert_true(fabs(w[1]) < 0.2);
    assert_true(fabs(bias - log(0.4 / 0.6)) < 0.2);
    learned_head_fit(x, y, 400, in, 2, 1.0, &bias2, w2);
    assert_true(bias == bias2 && w[0] == w2[0] && w[1] == w2[1]);
    /* A strong penalty shrinks the weights. */
    learned_head_fit(x, y, 400, in, 2, 1000.0, &bias2, w2);
    assert_true(fabs(w2[0]) < w[0] / 2);
}

/* A two-fold scorer with one peer, from the synthetic text model. */
static struct learned_model *make_v2(const struct trained *t)
{
    unsigned char in[4] = {LI_TEXT, LI_CLEAN, LI_PEER, LI_PEER + 1};
    double h0[4] = {1.0, 0.5, 2.0, -0.25}, h1[4] = {0.8, -0.5, 1.5, 0.25};
    struct learned_model *m =
        learned_assemble("synthetic/model-1", &t->m->p, 2, 99, "synthetic/peer", 1, in, 4);

    learned_set_fold(m, 0, t->m, -1.0, h0);
    learned_set_fold(m, 1, t->m, 0.5, h1);
    learned_set_meta(m, "cv_auc", "0.75");
    return m;
}

static void test_v2_round_trip(void **state)
{
    struct learned_params p;
    struct trained t;
    struct learned_model *m, *m2;
    struct buf f, f2;
    char err[256];
    int folds_seen[2] = {0, 0};

    (void)state;
    learned_params_default(&p);
    p.bits = 12;
    t = train_syn(&p, 3);
    m = make_v2(&t);
    buf_init(&f, 64 << 20);
    assert_int_equal(learned_format(m, &f), 0);
    assert_non_null(strstr(f.data, "sluice-learned 2\n"));
    assert_non_null(strstr(f.data, "\npeers=synthetic/peer\n"));
    assert_non_null(strstr(f.data, "\nhead=text,clean,agree1,sim1\n"));
    assert_non_null(strstr(f.data, "\nfold 1\n"));
    m2 = learned_parse(f.data, f.len, err, sizeof(err));
    if (m2 == NULL)
        fail_msg("parse: %s", err);
    assert_int_equal(learned_peers(m2), 1);
    assert_string_equal(learned_peer_names(m2), "synthetic/peer");
    for (size_t i = 0; i < NSYN; i++) {
        const char *peer[1] = {i % 3 ? t.s[i].answer : "something else"};
        double a = learned_score(m, t.s[i].query, t.s[i].answer, NULL, peer, 1);
        double b = learned_score(m2, t.s[i].query, t.s[i].answer, NULL, peer, 1);
        unsigned fo = learned_fold_of(99, 2, t.s[i].query);
        struct learned_info self, pi;
        double x[LI_COUNT], z;

        assert_true(a == b);
        /* The score is fold fo's head over fold fo's inputs. */
        learned_answer_info(t.s[i].answer, &self);
        learned_answer_info(peer[0], &pi);
        z = learned_score(t.m, t.s[i].query, t.s[i].answer, NULL, NULL, 0);
        learned_inputs(&self, &pi, 1, log(z / (1 - z)), x);
        z = learned_head_z(m, fo, x);
        assert_true(fabs(a - 1.0 / (1.0 + exp(-z))) < 1e-9);
        folds_seen[fo] = 1;
        /* A missing peer is an empty answer. */
        assert_true(learned_score(m2, t.s[i].query, t.s[i].answer, NULL, NULL, 0) ==
                    learned_score(m2, t.s[i].query, t.s[i].answer, NULL, (const char *[]){""}, 1));
    }
    assert_true(folds_seen[0] && folds_seen[1]);
    /* Writing what was read gives the same bytes. */
    buf_init(&f2, 64 << 20);
    assert_int_equal(learned_format(m2, &f2), 0);
    assert_int_equal(f.len, f2.len);
    assert_memory_equal(f.data, f2.data, f.len);
    learned_free(m);
    learned_free(m2);
    buf_free(&f);
    buf_free(&f2);
    trained_free(&t);
}

static const char v2_head[] = "sluice-learned 2\nmodel=m\npeers=p1\nbits=8\nword_ngrams=1-2\n"
                              "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\n"
                              "features=meta\nhead=text,agree1\nfolds=2\nfold_seed=5\n";
static const char v2_fold0[] = "fold 0\nbias=0\nhead_bias=0\nhead_weights=1,2\nnonzero=0\n"
                               "weights\nend\n";

static void expect_bad_v2(const char *tail, const char *msg)
{
    char text[2048];

    snprintf(text, sizeof(text), "%s%s", v2_head, tail);
    expect_bad(text, strlen(text), msg);
}

static void test_v2_rejects(void **state)
{
    char text[2048], err[256];
    struct learned_model *m;

    (void)state;
    /* The good one. */
    snprintf(text, sizeof(text),
             "%s%sfold 1\nbias=0\nhead_bias=1\nhead_weights=0,0\n"
             "nonzero=1\nweights\n7 0.5\nend\n",
             v2_head, v2_fold0);
    m = learned_parse(text, strlen(text), err, sizeof(err));
    if (m == NULL)
        fail_msg("parse: %s", err);
    assert_int_equal(learned_peers(m), 1);
    learned_free(m);

    expect_bad_v2(v2_fold0, "truncated: 1 of 2 folds");
    expect_bad_v2("fold 0\nbias=0\nhead_bias=0\nhead_weights=1\nnonzero=0\nweights\nend\n",
                  "head_weights: expected 2 numbers");
    expect_bad_v2("fold 0\nbias=0\nhead_weights=1,2\nnonzero=0\nweights\nend\n",
                  "missing head_bias=");
    expect_bad_v2("fold 0\nbias=0\nhead_bias=0\nhead_weights=1,2\nweights\nend\n",
                  "missing nonzero=");
    expect_bad_v2("fold 0\nbias=0\nhead_bias=0\nhead_weights=1,2\nnonzero=0\nweights\nend\n"
                  "fold 2\n",
                  "expected \"fold 1\"");
    expect_bad_v2("fold 0\nbias=0\nbias=1\n", "duplicate key \"bias\"");
    expect_bad_v2("fold 0\nbias=0\nwhat=1\n", "unexpected key \"what\"");
    expect_bad_v2("fold 0\nbias=0\nhead_bias=0\nhead_weights=1,nan\nnonzero=0\n",
                  "head_weights: expected 2 numbers");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\n"
             "head=text,agree1\nfolds=1\nfold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "head: input \"agree1\" needs more peers");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\n"
             "head=text,text\nfolds=1\nfold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "listed twice");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\n"
             "head=text,magic\nfolds=1\nfold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "unknown input \"magic\"");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\n"
             "folds=0\nfold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "folds: must be an integer in 1..20");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\n"
             "fold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "missing key \"folds\"");
    snprintf(text, sizeof(text),
             "sluice-learned 2\nmodel=m\nbits=8\nword_ngrams=1-2\n"
             "char_ngrams=3-5\nquery_tail=100\nanswer_head=100\nfeatures=meta\nbias=0\n"
             "folds=1\nfold_seed=5\nfold 0\n");
    expect_bad(text, strlen(text), "key \"bias\" does not belong in a version 2 file");
    snprintf(text, sizeof(text), "sluice-learned 2\nmodel=m\npeers=a,,b\n");
    expect_bad(text, strlen(text), "peers: expected at most 4");
    snprintf(text, sizeof(text), "sluice-learned 2\nmodel=m\npeers=a,b,c,d,e\n");
    expect_bad(text, strlen(text), "peers: expected at most 4");
    snprintf(text, sizeof(text), "sluice-learned 2\nmodel=m\nfold_seed=-1\n");
    expect_bad(text, strlen(text), "fold_seed: not an unsigned 64-bit integer");
    snprintf(text, sizeof(text), "sluice-learned 2\nmodel=m\nfold_seed=99999999999999999999\n");
    expect_bad(text, strlen(text), "fold_seed: not an unsigned 64-bit integer");
    /* Version 1 files wrote "folds" and "seed" as training metadata. */
    snprintf(text, sizeof(text), "%sfolds=5\nseed=1\nnonzero=0\nweights\nend\n", good_head);
    m = learned_parse(text, strlen(text), err, sizeof(err));
    if (m == NULL)
        fail_msg("parse: %s", err);
    assert_string_equal(learned_meta(m, "folds"), "5");
    assert_int_equal(learned_peers(m), 0);
    learned_free(m);
}

static void test_auc(void **state)
{
    double s[] = {0.1, 0.4, 0.35, 0.8};
    int y[] = {0, 0, 1, 1};
    double tie[] = {0.5, 0.5, 0.5, 0.5};
    int one[] = {1, 1, 1, 1};

    (void)state;
    assert_true(fabs(learned_auc(s, y, 4) - 0.75) < 1e-12);
    assert_true(fabs(learned_auc(tie, y, 4) - 0.5) < 1e-12);
    assert_true(learned_auc(s, one, 4) == 0.5);
}

static void test_params_check(void **state)
{
    struct learned_params p;
    char err[128];
    unsigned f;

    (void)state;
    learned_params_default(&p);
    assert_int_equal(learned_params_check(&p, err, sizeof(err)), 0);
    p.bits = 25;
    assert_int_equal(learned_params_check(&p, err, sizeof(err)), -1);
    learned_params_default(&p);
    p.char_min = 0;
    assert_int_equal(learned_params_check(&p, err, sizeof(err)), -1);
    assert_int_equal(learned_features_parse("meta,choice", &f), 0);
    assert_int_equal(f, LF_META | LF_CHOICE);
    assert_int_equal(learned_features_parse("meta,", &f), -1);
    assert_int_equal(learned_features_parse("meta,meta", &f), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_separates),
        cmocka_unit_test(test_score_row_matches_score),
        cmocka_unit_test(test_score_in_range),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hash_is_stable),
        cmocka_unit_test(test_parse_good_minimal),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_data_cap),
        cmocka_unit_test(test_auc),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_fold_of),
        cmocka_unit_test(test_head_fit),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_v2_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
