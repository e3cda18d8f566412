/* test_conf_check.c - the generic half of config checking (src/conf_check.c):
 * messages and their order and cap, unknown keys with suggestions and
 * refused names, the typed getters' messages, key tables read into a
 * struct (defaults, types, ranges, hand-read rows left alone), and the value
 * checks. A made-up schema stands in for sluice's: this module knows none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/conf_check.h"
#include "../../src/util.h"

struct pet {
    char *name;
    long legs;
    size_t bytes;
    double weight;
    int tame;
    int kind;
    char *hand;
};

static const char *const kinds[] = {"cat", "dog", NULL};

static const struct conf_key pet_keys[] = {
    {.name = "name", .type = CONF_STR, .off = offsetof(struct pet, name), .def_str = "rex"},
    {.name = "legs",
     .type = CONF_INT,
     .off = offsetof(struct pet, legs),
     .def = 4,
     .min = 0,
     .max = 8},
    {.name = "bytes",
     .type = CONF_SIZE,
     .off = offsetof(struct pet, bytes),
     .def = 1024,
     .min = 1024,
     .max = 4096},
    {.name = "weight",
     .type = CONF_NUM,
     .off = offsetof(struct pet, weight),
     .def = 1.5,
     .min = 0,
     .max = HUGE_VAL},
    {.name = "tame", .type = CONF_BOOL, .off = offsetof(struct pet, tame), .def = 1},
    {.name = "kind", .type = CONF_ENUM, .off = offsetof(struct pet, kind), .names = kinds},
    {.name = "hand",
     .type = CONF_STR,
     .off = offsetof(struct pet, hand),
     .def_str = "h",
     .flags = CONF_HAND},
    {.name = "toys", .type = CONF_LIST, .off = CONF_NO_FIELD},
    {.name = "password",
     .type = CONF_STR,
     .off = CONF_NO_FIELD,
     .flags = CONF_REFUSED,
     .doc = "name an environment variable instead"},
    {0},
};

static struct config_errors E;
static config_t LC;
static struct conf_check CK;

/* Parse text as file "t.conf" and start a check of it. */
static const config_setting_t *parse(const char *text)
{
    config_init(&LC);
    if (!config_read_string(&LC, text))
        fail_msg("syntax: %s", config_error_text(&LC));
    conf_check_init(&CK, "t.conf", &E);
    return config_root_setting(&LC);
}

/* End the check; returns its error count. E keeps the messages. */
static size_t done(void)
{
    size_t n = conf_check_done(&CK);

    config_destroy(&LC);
    return n;
}

static void errors_clear(void)
{
    for (size_t i = 0; i < E.n; i++)
        free(E.msgs[i]);
    free(E.msgs);
    E.msgs = NULL;
    E.n = 0;
}

static void expect_msgs(const char *const *want, size_t n)
{
    if (E.n != n)
        for (size_t i = 0; i < E.n; i++)
            print_message("    got: %s\n", E.msgs[i]);
    assert_int_equal(E.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(E.msgs[i], want[i]);
    errors_clear();
}

static void pet_free(struct pet *p)
{
    free(p->name);
    free(p->hand);
}

/* Defaults first, then each key read by its row; a bad value is reported
 * and keeps the default; a hand-read row is left alone. */
static void test_read_table(void **state)
{
    const config_setting_t *g =
        parse("pet = { name = \"tom\"; legs = 3; bytes = 2048.0; weight = 2; tame = false;\n"
              "        kind = \"dog\"; hand = \"x\"; toys = ( 1 ); };\n");
    struct pet p = {0};

    conf_defaults(pet_keys, &p);
    assert_string_equal(p.name, "rex");
    assert_string_equal(p.hand, "h");
    assert_int_equal(p.legs, 4);
    assert_int_equal(p.bytes, 1024);
    assert_true(p.weight == 1.5);
    assert_int_equal(p.tame, 1);
    conf_read(&CK, config_setting_get_member(g, "pet"), "pet", pet_keys, &p);
    assert_int_equal(done(), 0);
    assert_string_equal(p.name, "tom");
    assert_int_equal(p.legs, 3);
    assert_int_equal(p.bytes, 2048);
    assert_true(p.weight == 2.0);
    assert_int_equal(p.tame, 0);
    assert_int_equal(p.kind, 1);
    assert_string_equal(p.hand, "h"); /* CONF_HAND: the caller's */
    pet_free(&p);

    g = parse("legs = 9;\nbytes = 10;\nweight = -1.0;\ntame = 1;\nkind = \"cow\";\nname = 2;\n"
              "hand = \"y\";\n");
    memset(&p, 0, sizeof(p));
    conf_defaults(pet_keys, &p);
    conf_read(&CK, g, "", pet_keys, &p);
    assert_int_equal(conf_read_key(&CK, g, "", pet_keys, "hand", &p), 1);
    assert_int_equal(done(), 6);
    assert_int_equal(p.legs, 4);
    assert_int_equal(p.bytes, 1024);
    assert_string_equal(p.name, "rex");
    assert_string_equal(p.hand, "y");
    {
        static const char *const want[] = {
            "t.conf:1: legs: must be between 0 and 8 (got 9)",
            "t.conf:2: bytes: must be between 1024 and 4096 (got 10)",
            "t.conf:3: weight: must be >= 0 (got -1)",
            "t.conf:4: tame: expected true or false",
            "t.conf:5: kind: unknown value \"cow\" (expected one of: cat, dog)",
            "t.conf:6: name: expected a string",
        };
        expect_msgs(want, ARRAY_LEN(want));
    }
    pet_free(&p);
}

/* Unknown keys: a suggestion for a likely typo, the reason for a refused
 * name, nothing else for the rest. */
static void test_unknown_keys(void **state)
{
    const config_setting_t *g =
        parse("pet = {\n  lags = 1;\n  password = \"x\";\n  zebra = 1;\n  toys = ( );\n};\n");
    static const char *const want[] = {
        "t.conf:2: pet.lags: unknown key (did you mean 'legs'?)",
        "t.conf:3: pet.password: unknown key; name an environment variable instead",
        "t.conf:4: pet.zebra: unknown key",
    };

    conf_keys(&CK, config_setting_get_member(g, "pet"), "pet", pet_keys);
    assert_int_equal(done(), 3);
    expect_msgs(want, ARRAY_LEN(want));
    assert_non_null(conf_key_find(pet_keys, "toys"));
    assert_null(conf_key_find(pet_keys, "lags"));
}

/* Messages come out in line order whatever order they were made in, and
 * past the cap one line says how many more there were. */
static void test_order_and_cap(void **state)
{
    const config_setting_t *g = parse("a = 1;\nb = 2;\nc = 3;\n");
    static const char *const want[] = {"t.conf:1: a: one", "t.conf:2: b: two",
                                       "t.conf:3: c: three"};

    conf_err(&CK, config_setting_get_member(g, "c"), "", "c", "three");
    conf_err(&CK, config_setting_get_member(g, "a"), "", "a", "one");
    conf_err(&CK, config_setting_get_member(g, "b"), "", "b", "two");
    assert_int_equal(done(), 3);
    expect_msgs(want, ARRAY_LEN(want));

    g = parse("a = 1;\n");
    for (int i = 0; i < CONF_MAX_ERRORS + 5; i++)
        conf_err(&CK, g, "", "a", "n%d", i);
    assert_int_equal(done(), CONF_MAX_ERRORS + 5);
    assert_int_equal(E.n, CONF_MAX_ERRORS + 1);
    assert_string_equal(E.msgs[CONF_MAX_ERRORS], "t.conf: 5 more errors not shown");
    errors_clear();

    /* A syntax error is one message, at libconfig's line. */
    config_init(&LC);
    assert_false(config_read_string(&LC, "a = 1;\nb = ;\n"));
    conf_check_init(&CK, "dir/t.conf", &E);
    conf_syntax_error(&CK, &LC);
    assert_int_equal(done(), 1);
    assert_int_equal(E.n, 1);
    assert_non_null(strstr(E.msgs[0], "dir/t.conf:2: syntax: "));
    errors_clear();
}

/* The getters' answers: present, absent (required or not), and bad. */
static void test_getters(void **state)
{
    const config_setting_t *g =
        parse("s = \"x\";\ni = 1e3;\nf = 2.5;\nl = ( 1 );\na = [ 1, 2 ];\ngr = { };\n");
    const char *s;
    long v;
    double d;
    int e;

    assert_int_equal(conf_str(&CK, g, "", "s", 1, &s), 1);
    assert_string_equal(s, "x");
    assert_int_equal(conf_str(&CK, g, "", "none", 0, &s), 0);
    assert_int_equal(conf_str(&CK, g, "", "none", 1, &s), 0); /* reported */
    assert_int_equal(conf_int(&CK, g, "", "i", 0, 0, 5000, &v), 1);
    assert_int_equal(v, 1000);
    assert_int_equal(conf_int(&CK, g, "", "f", 0, 0, 5, &v), -1); /* 2.5 is no integer */
    assert_int_equal(conf_num(&CK, g, "", "f", 0, 0, 1, &d), -1);
    assert_int_equal(conf_enum(&CK, g, "", "s", kinds, 2, &e), -1);
    assert_non_null(conf_list(&CK, g, "", "l", 1, 0));
    assert_null(conf_list(&CK, g, "", "a", 1, 0));
    assert_non_null(conf_list(&CK, g, "", "a", 1, 1));
    assert_non_null(conf_group(&CK, g, "", "gr"));
    assert_null(conf_group(&CK, g, "", "s"));
    assert_int_equal(done(), 6);
    {
        static const char *const want[] = {
            "t.conf:1: none: missing required key",
            "t.conf:1: s: unknown value \"x\" (expected one of: cat, dog)",
            "t.conf:1: s: expected a group { ... }",
            "t.conf:3: f: expected an integer",
            "t.conf:3: f: must be between 0 and 1 (got 2.5)",
            "t.conf:5: a: expected a list ( ... )",
        };
        expect_msgs(want, ARRAY_LEN(want));
    }
}

static void test_value_checks(void **state)
{
    static const char *const http[] = {"http://", "https://", NULL};
    char qb[CONF_QBUF], long_s[200];

    assert_string_equal(conf_quote(qb, "a\"b\\c\n"), "\"a\\\"b\\\\c\\x0a\"");
    memset(long_s, 'x', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    conf_quote(qb, long_s);
    assert_int_equal(strlen(qb), CONF_QUOTE_MAX + 2 + 3);
    assert_true(conf_token_ok("abc", 3));
    assert_false(conf_token_ok("abcd", 3));
    assert_false(conf_token_ok("a b", 10));
    assert_false(conf_token_ok("", 10));
    assert_true(conf_url_ok("HTTPS://host/x", http));
    assert_false(conf_url_ok("https:///x", http));
    assert_false(conf_url_ok("ftp://host", http));
    assert_false(conf_url_ok("http://ho st", http));
    assert_null(conf_listen_check("127.0.0.1:8080"));
    assert_null(conf_listen_check("[::1]:0"));
    assert_non_null(conf_listen_check("::1:80"));
    assert_non_null(conf_listen_check("host:99999"));
    assert_non_null(conf_listen_check("host"));
    assert_true(conf_env_name_ok("_A1"));
    assert_false(conf_env_name_ok("1A"));
    assert_false(conf_env_name_ok("sk-123"));
}

/* Paths: an @include'd file and a relative path are shown from the main
 * file's directory. */
static void test_paths(void **state)
{
    char *s;

    conf_check_init(&CK, "/etc/sluice/gw.conf", &E);
    s = conf_display_file(&CK, "models.inc");
    assert_string_equal(s, "/etc/sluice/models.inc");
    free(s);
    s = conf_display_file(&CK, NULL);
    assert_string_equal(s, "/etc/sluice/gw.conf");
    free(s);
    s = conf_resolve_path(&CK, "w.bin");
    assert_string_equal(s, "/etc/sluice/w.bin");
    free(s);
    s = conf_resolve_path(&CK, "/abs");
    assert_string_equal(s, "/abs");
    free(s);
    assert_int_equal(conf_check_done(&CK), 0);
    conf_check_init(&CK, "gw.conf", &E);
    s = conf_resolve_path(&CK, "w.bin");
    assert_string_equal(s, "w.bin");
    free(s);
    assert_int_equal(conf_check_done(&CK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_table),    cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_order_and_cap), cmocka_unit_test(test_getters),
        cmocka_unit_test(test_value_checks),  cmocka_unit_test(test_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
