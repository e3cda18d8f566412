/* test_config.c - gateway.conf loading and checking (src/config.c).
 *
 * config.c is included so the tests can reach its statics. Its key tables
 * are checked against gateway.conf.example both ways: every row is shown
 * there, and every key the example sets or shows commented out is a row of
 * its group's table.
 *
 * learned_load() is mocked here (see below), so these tests do not depend on
 * sluice-tune's weights format and can count loads against frees. Link with
 * util.o only; the Makefile's static library supplies it without pulling in
 * the real learned.o, because every learned_* symbol is defined here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <regex.h>
#include <unistd.h>

#include "../../src/config.c"

/* ---- learned.c mock ---------------------------------------------------- *
 * A weights file is valid when it starts with "weights-ok"; "weights-ok N"
 * reads N peer answers. live counts the models loaded and not yet freed, so
 * a test can see unref free them. */
struct learned_model {
    size_t peers;
};

static int learned_live;

struct learned_model *learned_load(const char *path, char *err, size_t errlen)
{
    char head[16] = "";
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    if (fgets(head, sizeof(head), f) == NULL || strncmp(head, "weights-ok", 10) != 0) {
        fclose(f);
        snprintf(err, errlen, "not a sluice-tune weights file");
        return NULL;
    }
    fclose(f);
    learned_live++;
    {
        struct learned_model *m = xcalloc(1, sizeof(struct learned_model));

        m->peers = head[10] == ' ' ? (size_t)(head[11] - '0') : 0;
        return m;
    }
}

size_t learned_peers(const struct learned_model *m)
{
    return m->peers;
}

const char *learned_peer_names(const struct learned_model *m)
{
    return "peer-a,peer-b";
}

void learned_free(struct learned_model *m)
{
    learned_live--;
    free(m);
}

double learned_score(const struct learned_model *m, const char *query, const char *answer,
                     const char *finish_reason, const char *const *peers, size_t npeers)
{
    return 0.5;
}

/* ---- helpers ----------------------------------------------------------- */

static struct config_errors E; /* errors of the last load */
static char tmpdir[64];

#define ZERO64 "0000000000000000000000000000000000000000000000000000000000000000"

/* Three lines every snippet can build on: its own lines start at 4. */
#define BASE                                                                                       \
    "providers = ( { name = \"p\"; base_url = \"http://127.0.0.1:1/v1\"; } );\n"                   \
    "models = ( { name = \"m1\"; provider = \"p\"; },\n"                                           \
    "           { name = \"m2\"; provider = \"p\"; } );\n"

static void dump_errors(void)
{
    for (size_t i = 0; i < E.n; i++)
        print_message("    got: %s\n", E.msgs[i]);
}

/* Load text as file "t.conf"; its errors are left in E. */
static struct config *load(const char *text)
{
    config_errors_free(&E);
    return config_load_string(text, "t.conf", &E);
}

static int has_error(const char *msg)
{
    for (size_t i = 0; i < E.n; i++)
        if (strcmp(E.msgs[i], msg) == 0)
            return 1;
    return 0;
}

/* text must fail to load, and msg must be one of its errors, exactly. */
static void expect_error(const char *text, const char *msg)
{
    struct config *cfg = load(text);

    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("loaded, but expected: %s", msg);
    }
    if (!has_error(msg)) {
        dump_errors();
        fail_msg("missing error: %s", msg);
    }
}

/* The same, and msg is the only error. */
static void expect_only(const char *text, const char *msg)
{
    expect_error(text, msg);
    if (E.n != 1) {
        dump_errors();
        fail_msg("expected only: %s", msg);
    }
}

static struct config *expect_ok(const char *text)
{
    struct config *cfg = load(text);

    if (cfg == NULL) {
        dump_errors();
        fail_msg("expected the config to load");
    }
    assert_int_equal(E.n, 0);
    return cfg;
}

/* Write content to tmpdir/rel, creating its directories. Returns the full
 * path, which the caller frees. */
static char *write_tmp(const char *rel, const char *content)
{
    char *path = xasprintf("%s/%s", tmpdir, rel);
    FILE *f;

    for (char *p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup_cb(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_cb(void **state)
{
    config_errors_free(&E);
    return nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    struct buf b;
    char chunk[4096];
    size_t n;

    assert_non_null(f);
    buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(f);
    return buf_steal(&b, NULL);
}

/* gateway.conf.example at the top of the tree, found from this file's
 * path so the test runs from any directory the build ran in. */
static char *example_path(void)
{
    const char *me = __FILE__;
    const char *end = strstr(me, "tests/unit/test_config.c");

    assert_non_null(end);
    return xasprintf("%.*sgateway.conf.example", (int)(end - me), me);
}

/* ---- whole files ------------------------------------------------------- */

/* The schema from the design, as a user would write it. */
static void test_full_schema_loads(void **state)
{
    char *w = write_tmp("conf/scorers/mixtral.w", "weights-ok\n");
    char *path = write_tmp(
        "gateway.conf",
        "listen = \"0.0.0.0:9090\";\n"
        "workers = 4;\n"
        "max_body_bytes = 1048576;\n"
        "max_connections = 1000;\n"
        "log = { format = \"text\"; path = \"/var/log/sluice.log\"; level = \"warn\"; };\n"
        "trace = { path = \"traces.jsonl\"; include_content = true; };\n"
        "cache = { backend = \"redis\"; url = \"redis://127.0.0.1:6379/0\"; ttl_s = 3600;\n"
        "          timeout_ms = 25; max_value_bytes = 1048576; };\n"
        "providers = (\n"
        "  { name = \"openai\"; type = \"openai\"; base_url = \"https://api.openai.com/v1//\";\n"
        "    api_key_env = \"SLUICE_TEST_UNSET_KEY\"; timeout_ms = 120000; connect_timeout_ms = "
        "5000;\n"
        "    first_byte_timeout_ms = 60000; idle_timeout_ms = 30000; http_version = \"2\"; },\n"
        "  { name = \"azure\"; type = \"azure\"; base_url = \"https://X.openai.azure.com\";\n"
        "    api_key_env = \"AZURE_OPENAI_KEY\"; api_version = \"2024-10-21\";\n"
        "    timeout_ms = 9000; headers = { x-extra = \"1\"; X-Two = \"a b\"; }; }\n"
        ");\n"
        "models = (\n"
        "  { name = \"gpt-4o-mini\"; provider = \"openai\"; input_per_mtok = 0.15; output_per_mtok "
        "= 0.60; },\n"
        "  { name = \"gpt-4o\"; provider = \"openai\"; id = \"gpt-4o-2024-08-06\";\n"
        "    input_per_mtok = 2.50; output_per_mtok = 10.00; },\n"
        "  { name = \"mixtral-8x7b\"; provider = \"openai\"; },\n"
        "  { name = \"yi-34b\"; provider = \"openai\"; },\n"
        "  { name = \"gpt-4\"; provider = \"azure\"; input_per_mtok = 30; output_per_mtok = 60; }\n"
        ");\n"
        "routes = (\n"
        "  { name = \"reliable\"; fallback = ( \"gpt-4o-mini\", \"gpt-4o\" ); },\n"
        "  { name = \"one\"; model = \"gpt-4o-mini\"; },\n"
        "  { name = \"smart\"; max_cost = 0.002;\n"
        "    cascade = (\n"
        "      { model = \"mixtral-8x7b\"; scorer = \"learned\"; weights = "
        "\"conf/scorers/mixtral.w\"; threshold = 0.82; },\n"
        "      { models = ( \"mixtral-8x7b\", \"yi-34b\" ); scorer = \"agreement\"; threshold = "
        "1.0; },\n"
        "      { model = \"gpt-4\"; }\n"
        "    ); cache = true; cache_ttl_s = 600; cache_nondeterministic = false; }\n"
        ");\n");
    struct config *cfg;
    const struct provider *p;
    const struct model *m;
    const struct route *r;
    char *wpath;

    unsetenv("SLUICE_TEST_UNSET_KEY");
    config_errors_free(&E);
    cfg = config_load(path, &E);
    if (cfg == NULL)
        dump_errors();
    assert_non_null(cfg);
    assert_int_equal(cfg->refs, 1);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->listen, "0.0.0.0:9090");
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->max_body_bytes, 1048576);
    assert_int_equal(cfg->max_connections, 1000);
    assert_int_equal(cfg->log.format, LOG_FORMAT_TEXT);
    assert_string_equal(cfg->log.path, "/var/log/sluice.log");
    assert_int_equal(cfg->log.level, LOG_WARN);
    assert_string_equal(cfg->trace.path, "traces.jsonl");
    assert_int_equal(cfg->trace.include_content, 1);
    assert_int_equal(cfg->cache.backend, CACHE_REDIS);
    /* the old cache.url, alone, is the redis block's url */
    assert_int_equal(cfg->redis.configured, 1);
    assert_string_equal(cfg->redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(cfg->redis.timeout_ms, 25);
    assert_int_equal(cfg->cache.ttl_s, 3600);
    assert_int_equal(cfg->cache.timeout_ms, 25);
    assert_int_equal(cfg->cache.max_value_bytes, 1048576);

    assert_int_equal(cfg->nproviders, 2);
    p = config_provider(cfg, "openai");
    assert_non_null(p);
    assert_int_equal(p->type, PROVIDER_OPENAI);
    assert_string_equal(p->base_url, "https://api.openai.com/v1"); /* slashes stripped */
    assert_int_equal(p->http_version, HTTP_2);
    assert_string_equal(p->api_key_env, "SLUICE_TEST_UNSET_KEY");
    assert_null(p->api_key); /* unset variable: no key, no error */
    assert_int_equal(p->first_byte_timeout_ms, 60000);
    assert_int_equal(p->line, 10);
    p = config_provider(cfg, "azure");
    assert_non_null(p);
    assert_int_equal(p->type, PROVIDER_AZURE);
    assert_string_equal(p->api_version, "2024-10-21");
    assert_int_equal(p->timeout_ms, 9000);
    assert_int_equal(p->http_version, HTTP_1_1);      /* the default */
    assert_int_equal(p->first_byte_timeout_ms, 9000); /* defaults to timeout_ms */
    assert_int_equal(p->connect_timeout_ms, 5000);
    assert_int_equal(p->idle_timeout_ms, 30000);
    assert_int_equal(p->nheaders, 2);
    assert_string_equal(p->headers[0].name, "x-extra");
    assert_string_equal(p->headers[0].value, "1");
    assert_string_equal(p->headers[1].name, "X-Two");
    assert_string_equal(p->headers[1].value, "a b");

    assert_int_equal(cfg->nmodels, 5);
    m = config_model(cfg, "gpt-4o");
    assert_non_null(m);
    assert_string_equal(m->id, "gpt-4o-2024-08-06");
    assert_ptr_equal(m->provider, config_provider(cfg, "openai"));
    assert_true(m->input_per_mtok == 2.5 && m->output_per_mtok == 10.0);
    m = config_model(cfg, "gpt-4o-mini");
    assert_string_equal(m->id, "gpt-4o-mini"); /* id defaults to the name */
    m = config_model(cfg, "gpt-4");            /* integer prices */
    assert_true(m->input_per_mtok == 30.0 && m->output_per_mtok == 60.0);

    r = config_route(cfg, "reliable");
    assert_non_null(r);
    assert_int_equal(r->kind, ROUTE_FALLBACK);
    assert_int_equal(r->nstages, 2);
    assert_string_equal(r->stages[0].models[0]->name, "gpt-4o-mini");
    assert_string_equal(r->stages[1].models[0]->name, "gpt-4o");
    assert_int_equal(r->stages[1].scorer, SCORER_NONE);
    assert_int_equal(r->cache, 1);
    assert_int_equal(r->implicit, 0);
    r = config_route(cfg, "one");
    assert_int_equal(r->kind, ROUTE_SINGLE);
    assert_int_equal(r->nstages, 1);
    assert_ptr_equal(r->stages[0].models[0], config_model(cfg, "gpt-4o-mini"));
    r = config_route(cfg, "smart");
    assert_int_equal(r->kind, ROUTE_CASCADE);
    assert_true(r->max_cost == 0.002);
    assert_int_equal(r->cache, 1);
    assert_int_equal(r->cache_ttl_s, 600);
    assert_int_equal(r->cache_nondeterministic, 0);
    assert_int_equal(r->nstages, 3);
    assert_int_equal(r->stages[0].scorer, SCORER_LEARNED);
    assert_true(r->stages[0].threshold == 0.82);
    assert_non_null(r->stages[0].weights);
    /* Relative to the config file's directory, not the cwd. */
    wpath = xasprintf("%s/conf/scorers/mixtral.w", tmpdir);
    assert_string_equal(r->stages[0].weights_path, wpath);
    assert_int_equal(r->stages[0].line, 30);
    assert_int_equal(r->stages[1].scorer, SCORER_AGREEMENT);
    assert_int_equal(r->stages[1].nmodels, 2);
    assert_string_equal(r->stages[1].models[1]->name, "yi-34b");
    assert_true(r->stages[1].threshold == 1.0);
    assert_int_equal(r->stages[2].scorer, SCORER_NONE);
    assert_int_equal(r->stages[2].scorer_timeout_ms, 10000);

    /* 3 declared + 5 implicit, declared first. */
    assert_int_equal(cfg->nroutes, 8);
    assert_string_equal(cfg->routes[2].name, "smart");
    assert_int_equal(cfg->routes[3].implicit, 1);

    assert_int_equal(learned_live, 1);
    config_unref(cfg);
    assert_int_equal(learned_live, 0);
    free(wpath);
    free(path);
    free(w);
}

/* ---- the key tables against gateway.conf.example ----------------------- *
 * The example is the reference: every row of every key table must appear in
 * it (set, shown commented out, or in a group's list of keys), and every key
 * it sets or shows commented out must be a row of the table of the group it
 * is in. Commented-out blocks ("# otel = {" .. "# };") are parsed with
 * libconfig and walked like the file itself; a key commented out inside a
 * real group ("    # maxlen = ...;") must be a row of some table. */

static const struct conf_key *const all_tables[] = {
    config_keys_top,     config_keys_admin, config_keys_log,   config_keys_trace,
    config_keys_otel,    config_keys_cache, config_keys_redis, config_keys_provider,
    config_keys_breaker, config_keys_model, config_keys_stage, config_keys_route,
    config_keys_key,
};

static const struct conf_key *seen_rows[512];
static size_t nseen;
static int problems; /* what the walks below found wrong, each printed */

static void __attribute__((format(printf, 1, 2))) problem(const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    assert_true(vasprintf(&msg, fmt, ap) >= 0);
    va_end(ap);
    print_message("    %s\n", msg);
    free(msg);
    problems++;
}

static void mark_row(const struct conf_key *k)
{
    for (size_t i = 0; i < nseen; i++)
        if (seen_rows[i] == k)
            return;
    assert_true(nseen < ARRAY_LEN(seen_rows));
    seen_rows[nseen++] = k;
}

static int row_seen(const struct conf_key *k)
{
    for (size_t i = 0; i < nseen; i++)
        if (seen_rows[i] == k)
            return 1;
    return 0;
}

/* Every member of group g must be a row of tab: mark it, and walk what is
 * under it with its own table. where names the text (for messages). */
static void walk_example(const config_setting_t *g, const struct conf_key *tab, const char *where)
{
    int n = config_setting_length(g);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const struct conf_key *k = conf_key_find(tab, config_setting_name(m));

        if (k == NULL || (k->flags & CONF_REFUSED)) {
            problem("%s:%u: key '%s' is in no key table of its group", where,
                    config_setting_source_line(m), config_setting_name(m));
            continue;
        }
        mark_row(k);
        if (k->sub && k->type == CONF_GROUP) {
            walk_example(m, k->sub, where);
        } else if (k->sub && config_setting_is_list(m)) {
            for (int j = 0; j < config_setting_length(m); j++) {
                const config_setting_t *e = config_setting_get_elem(m, (unsigned)j);

                if (config_setting_is_group(e))
                    walk_example(e, k->sub, where);
            }
        }
    }
}

/* The rows named name in any table (marked); fails when there is none. */
static void mark_any(const char *name, unsigned line)
{
    int found = 0;

    for (size_t t = 0; t < ARRAY_LEN(all_tables); t++) {
        const struct conf_key *k = conf_key_find(all_tables[t], name);

        if (k && !(k->flags & CONF_REFUSED)) {
            mark_row(k);
            found = 1;
        }
    }
    if (!found)
        problem("gateway.conf.example:%u: key '%s' (commented out) is in no key table", line, name);
}

/* A line commented out inside a real group ("    # maxlen = 100000;"):
 * each "NAME =" in its code (up to an inline comment) that opens the line or
 * follows '{', ';' or '(' is a key. A group of free names (headers = { ...
 * }) ends the scan: its names are header names. */
static void scan_commented_line(const char *code, unsigned line)
{
    regex_t re;
    regmatch_t mt[3];
    const char *p = code;
    const char *end = strchr(code, '#');
    char name[64];

    assert_int_equal(regcomp(&re, "(^|[{;(][[:space:]]*)([A-Za-z][-A-Za-z0-9_]*)[[:space:]]*=[^=]",
                             REG_EXTENDED),
                     0);
    while (regexec(&re, p, 3, mt, p == code ? 0 : REG_NOTBOL) == 0) {
        size_t len = (size_t)(mt[2].rm_eo - mt[2].rm_so);
        const struct conf_key *k;

        if (end && p + mt[2].rm_so > end)
            break;
        assert_true(len < sizeof(name));
        memcpy(name, p + mt[2].rm_so, len);
        name[len] = '\0';
        mark_any(name, line);
        k = conf_key_find(config_keys_provider, name);
        if (k && k->type == CONF_GROUP && k->sub == NULL)
            break;
        p += mt[0].rm_eo - 1;
    }
    regfree(&re);
}

/* Walk the commented-out parts of the example text: whole blocks that
 * start "# NAME = {" or "# NAME = (" at the first column and end at "# }"
 * or "# )", and single lines commented out inside a real group. */
static void walk_commented(const char *text)
{
    struct buf block;
    unsigned line = 0, block_line = 0;
    int in_block = 0;
    regex_t start;

    assert_int_equal(regcomp(&start, "^# [a-z_]+ = [{(]", REG_EXTENDED | REG_NOSUB), 0);
    buf_init(&block, 1 << 20);
    for (const char *p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *l = xstrndup(p, len);

        p += len + (nl != NULL);
        if (!in_block && regexec(&start, l, 0, NULL, 0) == 0) {
            in_block = 1;
            block_line = line + 1;
            buf_reset(&block);
        }
        if (in_block) {
            assert_int_equal(buf_printf(&block, "%s\n", l + 1), 0);
            if (l[1] == ' ' && (l[2] == '}' || l[2] == ')')) {
                config_t lc;
                char *where = xasprintf("gateway.conf.example, the block at line %u", block_line);

                in_block = 0;
                config_init(&lc);
                if (!config_read_string(&lc, block.data))
                    problem("%s does not parse once uncommented: line %d: %s", where,
                            config_error_line(&lc), config_error_text(&lc));
                else
                    walk_example(config_root_setting(&lc), config_keys_top, where);
                config_destroy(&lc);
                free(where);
            }
        } else if (l[0] == ' ') {
            const char *c = l + strspn(l, " ");

            if (*c == '#')
                scan_commented_line(c + 1 + strspn(c + 1, " "), line + 1);
        }
        free(l);
    }
    if (in_block)
        problem("gateway.conf.example: the block at line %u has no end", block_line);
    buf_free(&block);
    regfree(&start);
}

/* A row the example lists in a group's key list ("#   api_version   azure
 * only, ...") but neither sets nor shows commented out; or an old form
 * (CONF_OLD) that its prose shows ("cache = { ...; url = ... }"). */
static int listed(const char *text, const struct conf_key *k)
{
    char *pat = xasprintf((k->flags & CONF_OLD) ? "%s = " : "\n#   %s ", k->name);
    int found = strstr(text, pat) != NULL;

    free(pat);
    return found;
}

/* Every row of the tables that the example shows nowhere. */
static void check_documented(const char *text, const struct conf_key *const *tables, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        for (const struct conf_key *k = tables[t]; k->name; k++) {
            if (!(k->flags & CONF_REFUSED) && !row_seen(k) && !listed(text, k))
                problem("key '%s' is not documented in gateway.conf.example", k->name);
        }
    }
}

/* Walk an example text both ways; returns the problems found. */
static int check_example(const char *text, const struct conf_key *top,
                         const struct conf_key *const *tables, size_t n)
{
    config_t lc;

    nseen = 0;
    problems = 0;
    config_init(&lc);
    assert_true(config_read_string(&lc, text));
    walk_example(config_root_setting(&lc), top, "gateway.conf.example");
    config_destroy(&lc);
    walk_commented(text);
    check_documented(text, tables, n);
    return problems;
}

static void test_example_file(void **state)
{
    char *path = example_path();
    char *text = slurp(path);
    struct config *cfg;

    config_errors_free(&E);
    cfg = config_load(path, &E);
    if (cfg == NULL)
        dump_errors();
    assert_non_null(cfg);
    config_unref(cfg);

    assert_int_equal(check_example(text, config_keys_top, all_tables, ARRAY_LEN(all_tables)), 0);
    for (size_t k = 0; k < ARRAY_LEN(scorer_names); k++) {
        char *q = xasprintf("\"%s\"", scorer_names[k]);

        if (strstr(text, q) == NULL)
            fail_msg("scorer %s is not documented in gateway.conf.example", q);
        free(q);
    }
    free(text);
    free(path);
}

/* The check above can fail: a key set that is in no table, one commented
 * out in a block or in a group that is in none, and a row the text does not
 * show. */
static void test_example_checks_fail(void **state)
{
    const struct conf_key *const tables[] = {config_keys_log};

    assert_int_equal(
        check_example("log = { level = \"info\"; path = \"-\"; format = \"json\"; };\n",
                      config_keys_top, tables, 1),
        0);
    assert_int_equal(check_example("log = { level = \"info\"; path = \"-\"; format = \"json\"; "
                                   "colour = true; };\n",
                                   config_keys_top, tables, 1),
                     1);
    assert_int_equal(check_example("log = { level = \"info\"; path = \"-\"; };\n"
                                   "# log = {\n#     format = \"text\";\n#     colour = 1;\n# };\n",
                                   config_keys_top, tables, 1),
                     1);
    assert_int_equal(check_example("log = {\n    level = \"info\"; path = \"-\";\n"
                                   "    # format = \"json\"; colour = 2;\n};\n",
                                   config_keys_top, tables, 1),
                     1);
    assert_int_equal(check_example("log = { level = \"info\"; };\n", config_keys_top, tables, 1),
                     2);
}

static void test_missing_file(void **state)
{
    config_errors_free(&E);
    assert_null(config_load("/nonexistent/gateway.conf", &E));
    assert_int_equal(E.n, 1);
    assert_string_equal(E.msgs[0],
                        "/nonexistent/gateway.conf: cannot open: No such file or directory");
    config_errors_free(&E);
    assert_null(config_load(tmpdir, &E));
    assert_int_equal(E.n, 1);
    assert_non_null(strstr(E.msgs[0], ": not a regular file"));
}

/* ---- each kind of error ------------------------------------------------ */

static void test_unknown_keys(void **state)
{
    expect_only(BASE "workerz = 2;\n", "t.conf:4: workerz: unknown key (did you mean 'workers'?)");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; colour = \"red\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.colour: unknown key");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\";\n"
                "  prize = 1; } );\n",
                "t.conf:3: models.m.prize: unknown key");
    expect_only(BASE "routes = ( { name = \"r\"; model = \"m1\"; cache_tll_s = 5; } );\n",
                "t.conf:4: routes.r.cache_tll_s: unknown key (did you mean 'cache_ttl_s'?)");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"rules\"; treshold = 0.5; threshold = 0.5; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].treshold: unknown key (did you mean 'threshold'?)");
    expect_only(BASE "log = { format = \"json\"; colour = true; };\n",
                "t.conf:4: log.colour: unknown key");
}

static void test_wrong_types(void **state)
{
    expect_only(BASE "listen = 8080;\n", "t.conf:4: listen: expected a string");
    expect_only(BASE "workers = \"4\";\n", "t.conf:4: workers: expected an integer");
    expect_only(BASE "workers = 1.5;\n", "t.conf:4: workers: expected an integer");
    expect_only(BASE "cache = 1;\n", "t.conf:4: cache: expected a group { ... }");
    expect_only(BASE "routes = { name = \"r\"; };\n", "t.conf:4: routes: expected a list ( ... )");
    expect_only(BASE "routes = ( { name = \"r\"; model = \"m1\"; cache = 1; } );\n",
                "t.conf:4: routes.r.cache: expected true or false");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"rules\"; threshold = \"high\"; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].threshold: expected a number");
    expect_only(BASE "routes = ( \"r\" );\n", "t.conf:4: routes.[0]: expected a group { ... }");
    expect_only(BASE "routes = ( { name = \"r\"; fallback = ( \"m1\", 2 ); } );\n",
                "t.conf:4: routes.r.fallback.[1]: expected a model name (a string)");
    /* A name that is not a string cannot name the element: index instead. */
    expect_only(BASE "routes = ( { name = 7; model = \"m1\"; } );\n",
                "t.conf:4: routes.[0].name: expected a string");
}

static void test_missing_required(void **state)
{
    /* At the line of the enclosing group. */
    expect_only("providers = (\n"
                "  { name = \"p\";\n"
                "    type = \"openai\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.base_url: missing required key");
    expect_only("providers = ( { name = \"az\"; type = \"azure\"; base_url = \"https://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"az\"; } );\n",
                "t.conf:1: providers.az.api_version: missing required key");
}

static void test_missing_required_more(void **state)
{
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; } );\n",
                "t.conf:2: models.m.provider: missing required key");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { provider = \"p\"; } );\n",
                "t.conf:2: models.[0].name: missing required key");
    /* An empty file: the root has no line, so line 1. */
    expect_error("", "t.conf:1: providers: missing required key");
    expect_error("", "t.conf:1: models: missing required key");
    assert_int_equal(E.n, 2);
    expect_only(BASE "trace = { include_content = true; };\n",
                "t.conf:4: trace.path: missing: a trace needs a path, a stream (on the redis "
                "block's Redis), or both");
    expect_only(BASE "cache = { backend = \"redis\"; };\n",
                "t.conf:4: cache.backend: backend = \"redis\" uses the redis block: add redis = "
                "{ url = \"redis://HOST:6379/0\"; }");
    /* A key that names a route, when a route has no name: an error, not a
     * crash (config_route once compared a NULL name). */
    expect_error(BASE "routes = ( { rout = \"r\"; fallback = ( \"m1\" ); } );\n"
                      "keys = ( { name = \"k\"; key_sha256 = \"" ZERO64
                      "\"; routes = ( \"r\" ); } );\n",
                 "t.conf:4: routes.[0].name: missing required key");
    assert_true(has_error("t.conf:5: keys.k.routes.[0]: unknown route \"r\""));
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"judge\"; threshold = 0.5; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].judge: missing required key");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].weights: missing required key");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"rules\"; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].threshold: missing required key");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = ( { scorer = \"none\"; } ); } );\n",
                "t.conf:4: routes.r.cascade.[0].model: missing required key");
    expect_only(BASE "routes = ( { name = \"r\"; } );\n",
                "t.conf:4: routes.r: needs one of 'model', 'fallback' or 'cascade'");
}

static void test_dangling_refs(void **state)
{
    expect_only(BASE "routes = ( { name = \"reliable\";\n"
                     "  fallback = ( \"m1\",\n"
                     "     \"gpt-5\" ); } );\n",
                "t.conf:6: routes.reliable.fallback.[1]: unknown model \"gpt-5\"");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"openai\"; } );\n",
                "t.conf:2: models.m.provider: unknown provider \"openai\"");
    expect_only(BASE "routes = ( { name = \"r\"; model = \"nope\"; } );\n",
                "t.conf:4: routes.r.model: unknown model \"nope\"");
    expect_only(BASE
                "routes = ( { name = \"r\"; cascade = (\n"
                "  { model = \"m1\"; scorer = \"judge\"; judge = \"gpt-9\"; threshold = 0.5; },\n"
                "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].judge: unknown model \"gpt-9\"");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { models = ( \"m1\", \"m9\" ); scorer = \"agreement\"; threshold = 1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].models.[1]: unknown model \"m9\"");
    /* A missing providers list gives one error, not one per model. */
    expect_only("models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers: missing required key");
}

static void test_duplicates(void **state)
{
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; },\n"
                "           { name = \"n\"; provider = \"p\"; },\n"
                "           { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:4: models.m.name: duplicate model \"m\" (first defined at t.conf:2)");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; },\n"
                "  { name = \"p\"; base_url = \"http://y\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.name: duplicate provider \"p\" (first defined at t.conf:1)");
    expect_only(BASE "routes = ( { name = \"r\"; model = \"m1\"; },\n"
                     "  { name = \"r\"; model = \"m2\"; } );\n",
                "t.conf:5: routes.r.name: duplicate route \"r\" (first defined at t.conf:4)");
    /* libconfig itself refuses a key given twice in one group. */
    expect_only(BASE "workers = 1;\nworkers = 2;\n", "t.conf:5: syntax: duplicate setting name");
}

static void test_route_model_collision(void **state)
{
    expect_only(BASE "routes = ( { name = \"m2\"; fallback = ( \"m1\" ); } );\n",
                "t.conf:4: routes.m2.name: route \"m2\" has the same name as a model (defined at "
                "t.conf:3); a request's \"model\" would be ambiguous");
    /* A provider's name is another namespace. */
    config_unref(expect_ok(BASE "routes = ( { name = \"p\"; model = \"m1\"; } );\n"));
}

static void test_bad_values(void **state)
{
    expect_only("providers = ( { name = \"p\"; base_url = \"ftp://x/v1\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.base_url: expected an http:// or https:// URL");
    expect_only("providers = ( { name = \"p\"; base_url = \"https://\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.base_url: expected an http:// or https:// URL");
    expect_only(BASE "cache = { backend = \"redis\"; url = \"http://127.0.0.1:6379\"; };\n",
                "t.conf:4: cache.url: expected redis://HOST[:PORT][/DB] or "
                "rediss://HOST[:PORT][/DB]");
    expect_only(
        BASE
        "routes = ( { name = \"r\"; cascade = (\n"
        "  { model = \"m1\"; scorer = \"http\"; url = \"localhost:9000\"; threshold = 0.5; },\n"
        "  { model = \"m2\"; } ); } );\n",
        "t.conf:5: routes.r.cascade.[0].url: expected an http:// or https:// URL");
    expect_only(BASE "listen = \"::1:8080\";\n",
                "t.conf:4: listen: an IPv6 address must be in brackets, e.g. \"[::1]:8080\" "
                "(got \"::1:8080\")");
    expect_only(BASE "listen = \"localhost:70000\";\n",
                "t.conf:4: listen: the port must be a number 0..65535 (got \"localhost:70000\")");
    expect_only(BASE "listen = \"8080\";\n",
                "t.conf:4: listen: expected HOST:PORT, e.g. \"127.0.0.1:8080\" (got \"8080\")");
    expect_only(BASE "max_body_bytes = 10;\n",
                "t.conf:4: max_body_bytes: must be between 1024 and 1073741824 (got 10)");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; timeout_ms = 0; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.timeout_ms: must be between 1 and 86400000 (got 0)");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; output_per_mtok = -0.5; } );\n",
                "t.conf:2: models.m.output_per_mtok: must be >= 0 (got -0.5)");
    expect_only(BASE "routes = ( { name = \"has space\"; model = \"m1\"; } );\n",
                "t.conf:4: routes.[0].name: must be 1 to 128 printable ASCII characters "
                "without spaces");
    expect_only(BASE "cache = { max_bytes = 4096; max_value_bytes = 8192; };\n",
                "t.conf:4: cache.max_value_bytes: must not exceed max_bytes (4096)");
    /* Echoed values are escaped and cut, so a message stays one line. */
    expect_only(BASE "routes = ( { name = \"r\"; model = \"a\\nb\"; } );\n",
                "t.conf:4: routes.r.model: unknown model \"a\\x0ab\"");
}

/* type = "anthropic": its keys, their defaults, and the scorers it cannot
 * serve. */
static void test_anthropic(void **state)
{
    static const char prov[] =
        "providers = ( { name = \"a\"; type = \"anthropic\"; base_url = \"https://x/v1/\"; },\n"
        "  { name = \"b\"; type = \"anthropic\"; base_url = \"https://x/v1\";\n"
        "    anthropic_version = \"2024-01-01\"; default_max_tokens = 1024; },\n"
        "  { name = \"o\"; base_url = \"http://o\"; } );\n";
    struct config *cfg;
    char *text;

    UNUSED(state);
    text =
        xasprintf("%smodels = ( { name = \"c\"; provider = \"a\"; cache_read_per_mtok = 0.3;\n"
                  "  cache_write_per_mtok = 3.75; default_max_tokens = 99; },\n"
                  "  { name = \"d\"; provider = \"b\"; }, { name = \"e\"; provider = \"o\"; } );\n"
                  "routes = ( { name = \"r\"; cascade = ( { models = ( \"c\", \"e\" );\n"
                  "  scorer = \"agreement\"; threshold = 1.0; }, { model = \"d\"; } ); } );\n",
                  prov);
    cfg = expect_ok(text);
    free(text);
    assert_int_equal(cfg->providers[0].type, PROVIDER_ANTHROPIC);
    assert_string_equal(config_provider_type_name(cfg->providers[0].type), "anthropic");
    assert_string_equal(cfg->providers[0].base_url, "https://x/v1");
    assert_string_equal(cfg->providers[0].anthropic_version, "2023-06-01");
    assert_int_equal(cfg->providers[0].default_max_tokens, 4096);
    assert_string_equal(cfg->providers[1].anthropic_version, "2024-01-01");
    assert_int_equal(cfg->providers[1].default_max_tokens, 1024);
    assert_null(cfg->providers[2].anthropic_version);
    assert_true(cfg->models[0].cache_read_per_mtok == 0.3);
    assert_true(cfg->models[0].cache_write_per_mtok == 3.75);
    assert_int_equal(cfg->models[0].default_max_tokens, 99);
    /* Unset cache prices are -1: the input price applies. */
    assert_true(cfg->models[1].cache_read_per_mtok < 0 && cfg->models[1].cache_write_per_mtok < 0);
    config_unref(cfg);

    expect_only("providers = ( { name = \"o\"; base_url = \"http://o\"; anthropic_version = "
                "\"2023-06-01\"; } );\nmodels = ( { name = \"m\"; provider = \"o\"; } );\n",
                "t.conf:1: providers.o.anthropic_version: key 'anthropic_version' is only valid "
                "with type = \"anthropic\"");
    expect_only("providers = ( { name = \"o\"; base_url = \"http://o\"; } );\nmodels = ( { name "
                "= \"m\"; provider = \"o\";\n  default_max_tokens = 10; } );\n",
                "t.conf:3: models.m.default_max_tokens: key 'default_max_tokens' is only valid for "
                "a model of a provider with type = \"anthropic\" (OpenAI-compatible APIs need no "
                "max_tokens)");
    expect_only("providers = ( { name = \"a\"; type = \"anthropic\"; base_url = \"http://a\";\n"
                "  anthropic_version = \"a b\"; } );\nmodels = ( { name = \"m\"; provider = \"a\"; "
                "} );\n",
                "t.conf:2: providers.a.anthropic_version: expected a version such as "
                "\"2023-06-01\"");
    expect_only("providers = ( { name = \"o\"; base_url = \"http://o\"; } );\nmodels = ( { name "
                "= \"m\"; provider = \"o\"; cache_read_per_mtok = -1; } );\n",
                "t.conf:2: models.m.cache_read_per_mtok: must be >= 0 (got -1)");
    expect_only("providers = ( { name = \"a\"; type = \"anthropic\"; base_url = \"http://a\";\n"
                "  headers = { x-api-key = \"k\"; }; } );\nmodels = ( { name = \"m\"; provider = "
                "\"a\"; } );\n",
                "t.conf:2: providers.a.headers.x-api-key: header \"x-api-key\" is set by sluice "
                "itself (credentials come from api_key_env)");
    /* An OpenAI-compatible server behind a proxy may want one. */
    cfg =
        expect_ok("providers = ( { name = \"o\"; base_url = \"http://o\"; headers = { x-api-key = "
                  "\"k\"; anthropic-version = \"v\"; }; } );\nmodels = ( { name = \"m\"; "
                  "provider = \"o\"; } );\n");
    assert_int_equal(cfg->providers[0].nheaders, 2);
    config_unref(cfg);

    /* No logprobs and one answer a call: --check says so. */
    text = xasprintf("%smodels = ( { name = \"c\"; provider = \"a\"; } );\nroutes = ( { name = "
                     "\"r\"; cascade = (\n  { model = \"c\"; scorer = \"logprob\"; threshold = "
                     "0.5; } ); } );\n",
                     prov);
    expect_only(text, "t.conf:7: routes.r.cascade.[0].scorer: model \"c\" is served by an "
                      "Anthropic provider, whose answers carry no logprobs: use another scorer "
                      "(rules, agreement over 'models', judge, learned or http)");
    free(text);
    text = xasprintf("%smodels = ( { name = \"c\"; provider = \"a\"; } );\nroutes = ( { name = "
                     "\"r\"; cascade = (\n  { model = \"c\"; scorer = \"agreement\"; samples = "
                     "3; threshold = 0.5; } ); } );\n",
                     prov);
    expect_only(text, "t.conf:7: routes.r.cascade.[0].samples: model \"c\" is served by an "
                      "Anthropic provider, which gives one answer per call: compare two models "
                      "with 'models' instead");
    free(text);
}

static void test_bad_enums(void **state)
{
    expect_only("providers = ( { name = \"p\"; type = \"vertex\"; base_url = \"http://x\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.type: unknown value \"vertex\" (expected one of: "
                "openai, azure, anthropic)");
    expect_only(
        "providers = ( { name = \"p\"; base_url = \"http://x\"; http_version = \"3\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; } );\n",
        "t.conf:1: providers.p.http_version: unknown value \"3\" (expected one of: 1.1, 2)");
    expect_only(
        "providers = ( { name = \"p\"; base_url = \"http://x\"; http_version = \"2\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; } );\n",
        "t.conf:1: providers.p.http_version: HTTP/2 needs an https:// base_url (libcurl 7.88 "
        "cannot reuse a cleartext HTTP/2 connection)");
    expect_only(
        "providers = ( { name = \"p\"; base_url = \"https://x\"; ca_file = "
        "\"/nonexistent/ca.pem\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; } );\n",
        "t.conf:1: providers.p.ca_file: cannot read \"/nonexistent/ca.pem\": No such file or "
        "directory");
    expect_only(BASE "log = { level = \"verbose\"; };\n",
                "t.conf:4: log.level: unknown value \"verbose\" (expected one of: debug, info, "
                "warn, error)");
    expect_only(BASE "cache = { backend = \"memcached\"; url = \"x\"; };\n",
                "t.conf:4: cache.backend: unknown value \"memcached\" (expected one of: memory, "
                "redis)");
    /* An unknown scorer is one error: its keys are not blamed as well. */
    expect_only(BASE
                "routes = ( { name = \"r\"; cascade = (\n"
                "  { model = \"m1\"; scorer = \"magic\"; threshold = 0.5; weights = \"w\"; },\n"
                "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].scorer: unknown value \"magic\" (expected one "
                "of: none, rules, logprob, agreement, judge, learned, http)");
}

static void test_headers(void **state)
{
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  headers = { x-extra = \"1\\r\\nEvil: yes\"; }; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.headers.x-extra: header name and value must not contain "
                "CR or LF");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  headers = { x-extra = \"a\\nb\"; }; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.headers.x-extra: header name and value must not contain "
                "CR or LF");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  headers = { Authorization = \"Bearer sk-x\"; }; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.headers.Authorization: header \"Authorization\" is set by "
                "sluice itself (credentials come from api_key_env)");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  headers = { x-n = 1; }; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.headers.x-n: expected a string");
    /* libconfig 1.5 has no quoted setting names: the design's
     * { "x-extra" = "1"; } is a syntax error, and the bare name works.
     * (libconfig 1.5 itself leaks the 64-byte string token here: its bison
     * grammar has no %destructor for a discarded lookahead. Valgrind and
     * LSan need a suppression for stacks through libconfig.so, e.g.
     * LSan "leak:libconfig.so"; config.c never allocates from inside it.) */
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  headers = { \"x-extra\" = \"1\"; }; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: syntax: syntax error");
}

static void test_scorer_keys(void **state)
{
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"rules\"; threshold = 1;\n"
                     "    weights = \"x.w\"; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:6: routes.r.cascade.[0].weights: key 'weights' is only valid with "
                "scorer = \"learned\"");
    expect_only(
        BASE "routes = ( { name = \"r\"; cascade = (\n"
             "  { model = \"m1\"; scorer = \"judge\"; judge = \"m2\"; threshold = 1; url = "
             "\"http://x\"; },\n"
             "  { model = \"m2\"; } ); } );\n",
        "t.conf:5: routes.r.cascade.[0].url: key 'url' is only valid with scorer = \"http\"");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"logprob\"; threshold = 0.5; samples = 3; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].samples: key 'samples' is only valid with scorer "
                "= \"agreement\"");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"rules\"; threshold = 0.5; timeout_ms = 5; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].timeout_ms: key 'timeout_ms' is only valid with "
                "scorer = \"judge\" or \"http\"");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; },\n"
                     "  { model = \"m2\"; threshold = 0.5; } ); } );\n",
                "t.conf:6: routes.r.cascade.[1].threshold: key 'threshold' is only valid with a "
                "scorer other than \"none\"");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { models = ( \"m1\", \"m2\" ); scorer = \"rules\"; threshold = 1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].models: key 'models' is only valid with scorer = "
                "\"agreement\" or \"learned\"");
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\"; api_version = \"1\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:1: providers.p.api_version: key 'api_version' is only valid with type = "
                "\"azure\"");
    expect_only(
        BASE "cache = { backend = \"redis\"; url = \"redis://h\"; max_bytes = 4096; };\n",
        "t.conf:4: cache.max_bytes: key 'max_bytes' is only valid with backend = \"memory\"");
    expect_only(BASE "cache = { url = \"redis://h\"; };\n",
                "t.conf:4: cache.url: key 'url' is only valid with backend = \"redis\"");
}

static void test_agreement_rules(void **state)
{
    struct config *cfg;

    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"agreement\"; threshold = 1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0]: scorer \"agreement\" needs 'models' (two or "
                "more) or 'samples' (2..16)");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { models = ( \"m1\" ); scorer = \"agreement\"; threshold = 1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].models: needs at least two models (to sample one "
                "model, use 'model' and 'samples')");
    expect_only(
        BASE
        "routes = ( { name = \"r\"; cascade = (\n"
        "  { models = ( \"m1\", \"m2\" ); scorer = \"agreement\"; threshold = 1; samples = 3; },\n"
        "  { model = \"m2\"; } ); } );\n",
        "t.conf:5: routes.r.cascade.[0].samples: 'samples' is only valid with a single "
        "'model'");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; models = ( \"m1\", \"m2\" ); scorer = \"agreement\"; "
                     "threshold = 1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].models: 'model' and 'models' are mutually "
                "exclusive");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"agreement\"; threshold = 1; samples = 17; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].samples: must be between 2 and 16 (got 17)");
    cfg = expect_ok(
        BASE "routes = ( { name = \"r\"; cascade = (\n"
             "  { model = \"m1\"; scorer = \"agreement\"; threshold = 0.6; samples = 5; },\n"
             "  { model = \"m2\"; scorer = \"http\"; url = \"http://s/score\"; threshold = 0.5;\n"
             "    timeout_ms = 250; } ); } );\n");
    assert_int_equal(cfg->routes[0].stages[0].samples, 5);
    assert_int_equal(cfg->routes[0].stages[0].nmodels, 1);
    /* The last stage may carry a scorer: recorded, and it still accepts. */
    assert_int_equal(cfg->routes[0].stages[1].scorer, SCORER_HTTP);
    assert_string_equal(cfg->routes[0].stages[1].url, "http://s/score");
    assert_int_equal(cfg->routes[0].stages[1].scorer_timeout_ms, 250);
    config_unref(cfg);
}

static void test_route_kinds(void **state)
{
    expect_only(BASE "routes = ( { name = \"r\"; model = \"m1\";\n"
                     "  fallback = ( \"m1\" ); } );\n",
                "t.conf:5: routes.r.fallback: 'model', 'fallback' and 'cascade' are mutually "
                "exclusive");
    expect_only(BASE "routes = ( { name = \"r\"; fallback = ( ); } );\n",
                "t.conf:4: routes.r.fallback: needs at least one model");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = ( ); } );\n",
                "t.conf:4: routes.r.cascade: needs at least one stage");
    expect_only(BASE "routes = ( { name = \"r\"; max_cost = -1; model = \"m1\"; } );\n",
                "t.conf:4: routes.r.max_cost: must be >= 0 (got -1)");
}

/* A run keeps the answer of every model it called: a route names at most
 * ROUTE_MODELS_MAX distinct models. */
static void test_route_models_cap(void **state)
{
    char text[4096];
    size_t n = 0;
    struct config *cfg;

    n += (size_t)snprintf(
        text + n, sizeof(text) - n,
        "providers = ( { name = \"p\"; base_url = \"http://127.0.0.1:1/v1\"; } );\n"
        "models = (");
    for (int i = 0; i <= ROUTE_MODELS_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{ name = \"m%d\"; provider = \"p\"; }",
                              i ? ", " : "", i);
    n +=
        (size_t)snprintf(text + n, sizeof(text) - n, ");\nroutes = ( { name = \"r\"; fallback = (");
    for (int i = 0; i <= ROUTE_MODELS_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"m%d\"", i ? ", " : "", i);
    snprintf(text + n, sizeof(text) - n, "); } );\n");
    expect_only(text, "t.conf:3: routes.r: names more than 16 distinct models; a route may name at "
                      "most 16");
    /* The same model many times is one model. */
    cfg = expect_ok(BASE "routes = ( { name = \"r\"; fallback = ( \"m1\", \"m2\", \"m1\", \"m2\", "
                         "\"m1\", \"m2\", \"m1\", \"m2\", \"m1\", \"m2\", \"m1\", \"m2\", \"m1\", "
                         "\"m2\", \"m1\", \"m2\", \"m1\", \"m2\" ); } );\n");
    config_unref(cfg);
}

static void test_threshold_range(void **state)
{
    struct config *cfg;

    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"logprob\"; threshold = 1.5; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].threshold: must be between 0 and 1 (got 1.5)");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"logprob\"; threshold = -0.1; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].threshold: must be between 0 and 1 (got -0.1)");
    expect_only(BASE "routes = ( { name = \"r\"; cascade = (\n"
                     "  { model = \"m1\"; scorer = \"logprob\"; threshold = 1e400; },\n"
                     "  { model = \"m2\"; } ); } );\n",
                "t.conf:5: routes.r.cascade.[0].threshold: expected a finite number");
    /* Integer 1 and 0 are numbers too. */
    cfg = expect_ok(BASE "routes = ( { name = \"r\"; cascade = (\n"
                         "  { model = \"m1\"; scorer = \"rules\"; threshold = 1; },\n"
                         "  { model = \"m2\"; scorer = \"logprob\"; threshold = 0; } ); } );\n");
    assert_true(cfg->routes[0].stages[0].threshold == 1.0);
    config_unref(cfg);
}

static void test_numbers(void **state)
{
    struct config *cfg =
        expect_ok("providers = ( { name = \"p\"; base_url = \"http://x\"; timeout_ms = 1e4;\n"
                  "  idle_timeout_ms = 5000L; } );\n"
                  "models = ( { name = \"m\"; provider = \"p\"; input_per_mtok = 2; "
                  "output_per_mtok = 2.0; } );\n"
                  "cache = { max_bytes = 2147483648L; };\n");

    assert_int_equal(cfg->providers[0].timeout_ms, 10000);
    assert_int_equal(cfg->providers[0].idle_timeout_ms, 5000);
    assert_true(cfg->models[0].input_per_mtok == 2.0);
    assert_true(cfg->models[0].output_per_mtok == 2.0);
    assert_int_equal(cfg->cache.max_bytes, 2147483648UL);
    config_unref(cfg);
}

static void test_syntax_error(void **state)
{
    char *inc;
    char *main_path;
    char *msg;

    expect_only(BASE "workers = = 2;\n", "t.conf:4: syntax: syntax error");
    expect_only("a = {\n  b = 1;\n", "t.conf:3: syntax: syntax error");

    /* In an @include'd file: that file and its line, relative to the main
     * file's directory as given. */
    inc = write_tmp("inc/models.inc",
                    "models = (\n  { name = \"m\"; provider = \"p\"; }\n  oops\n);\n");
    main_path =
        write_tmp("inc/main.conf", "providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                                   "@include \"models.inc\"\n");
    config_errors_free(&E);
    assert_null(config_load(main_path, &E));
    assert_int_equal(E.n, 1);
    msg = xasprintf("%s:3: syntax: syntax error", inc);
    assert_string_equal(E.msgs[0], msg);
    free(msg);
    free(inc);
    free(main_path);

    main_path = write_tmp("inc/main2.conf", "x = 1;\n@include \"nothere.inc\"\n");
    config_errors_free(&E);
    assert_null(config_load(main_path, &E));
    msg = xasprintf("%s:2: syntax: cannot open include file", main_path);
    assert_int_equal(E.n, 1);
    assert_string_equal(E.msgs[0], msg);
    free(msg);
    free(main_path);
}

/* A checking error (not syntax) inside an @include'd file names that file. */
static void test_include_error_location(void **state)
{
    char *inc = write_tmp("inc2/models.inc", "# models\n"
                                             "models = (\n"
                                             "  { name = \"m\"; provider = \"q\"; } );\n");
    char *main_path =
        write_tmp("inc2/main.conf", "providers = ( { name = \"p\"; base_url = \"http://x\"; } );\n"
                                    "@include \"models.inc\"\n");
    char *msg = xasprintf("%s:3: models.m.provider: unknown provider \"q\"", inc);

    config_errors_free(&E);
    assert_null(config_load(main_path, &E));
    assert_int_equal(E.n, 1);
    assert_string_equal(E.msgs[0], msg);
    free(msg);
    free(inc);
    free(main_path);
}

static void test_many_errors(void **state)
{
    struct config *cfg =
        load("listen = 1;\n"
             "providers = ( { name = \"p\"; base_url = \"gopher://x\"; } );\n"
             "models = ( { name = \"m\"; provider = \"p\"; input_per_mtok = \"1\"; },\n"
             "           { name = \"m\"; provider = \"z\"; } );\n"
             "routes = ( { name = \"r\"; fallback = ( \"m\", \"y\" ); } );\n"
             "log = { level = \"loud\"; };\n"
             "bogus = 1;\n");

    assert_null(cfg);
    if (E.n != 8)
        dump_errors();
    assert_int_equal(E.n, 8);
    /* In line order, as a compiler would print them. */
    assert_string_equal(E.msgs[0], "t.conf:1: listen: expected a string");
    assert_string_equal(E.msgs[1],
                        "t.conf:2: providers.p.base_url: expected an http:// or https:// URL");
    assert_string_equal(E.msgs[2], "t.conf:3: models.m.input_per_mtok: expected a number");
    assert_string_equal(
        E.msgs[3], "t.conf:4: models.m.name: duplicate model \"m\" (first defined at t.conf:3)");
    assert_string_equal(E.msgs[4], "t.conf:4: models.m.provider: unknown provider \"z\"");
    assert_string_equal(E.msgs[5], "t.conf:5: routes.r.fallback.[1]: unknown model \"y\"");
    assert_string_equal(
        E.msgs[6],
        "t.conf:6: log.level: unknown value \"loud\" (expected one of: debug, info, warn, error)");
    assert_string_equal(E.msgs[7], "t.conf:7: bogus: unknown key");
}

/* The error list has a hard cap; past it, one line says how many more. */
static void test_error_cap(void **state)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(buf_puts(&b, BASE), 0);
    for (int i = 0; i < CONF_MAX_ERRORS + 50; i++)
        assert_int_equal(buf_printf(&b, "junk%d = 1;\n", i), 0);
    assert_null(load(b.data));
    assert_int_equal(E.n, CONF_MAX_ERRORS + 1);
    assert_string_equal(E.msgs[0], "t.conf:4: junk0: unknown key");
    assert_string_equal(E.msgs[CONF_MAX_ERRORS], "t.conf: 50 more errors not shown");
    buf_free(&b);
}

/* ---- secrets, implicit routes, lifetime -------------------------------- */

static void test_redis_block(void **state)
{
    struct config *cfg;

    (void)state;
    setenv("SLUICE_TEST_RPW", "pw-in-env", 1);
    cfg = expect_ok(BASE "redis = { url = \"rediss://cache.example.com:6380/1\"; username = \"gw\";\n"
                         "  password_env = \"SLUICE_TEST_RPW\"; tls_server_name = \"cache.example.com\";\n"
                         "  timeout_ms = 75; };\n"
                         "cache = { backend = \"redis\"; };\ntrace = { stream = \"s\"; };\n");
    assert_int_equal(cfg->redis.configured, 1);
    assert_string_equal(cfg->redis.url, "rediss://cache.example.com:6380/1");
    assert_string_equal(cfg->redis.username, "gw");
    assert_string_equal(cfg->redis.password, "pw-in-env");
    assert_int_equal(cfg->redis.timeout_ms, 75);
    assert_int_equal(cfg->trace.stream_on, 1);
    config_unref(cfg);
    cfg = expect_ok(BASE "redis = { sentinels = ( \"10.0.0.1:26379\", \"[::1]:26379\" );\n"
                         "  master_name = \"mymaster\"; };\n");
    assert_int_equal(cfg->redis.nsentinels, 2);
    assert_string_equal(cfg->redis.sentinels[1], "[::1]:26379");
    config_unref(cfg);
    cfg = expect_ok(BASE "redis = { cluster_nodes = ( \"10.0.0.1:7000\" ); };\n");
    assert_int_equal(cfg->redis.ncluster_nodes, 1);
    config_unref(cfg);
    /* The old per-feature urls: alone they work, beside the block they are
     * refused with the new form. */
    cfg = expect_ok(BASE "trace = { redis_url = \"redis://127.0.0.1:6379/0\"; };\n");
    assert_string_equal(cfg->redis.url, "redis://127.0.0.1:6379/0");
    assert_int_equal(cfg->trace.stream_on, 1);
    config_unref(cfg);
    expect_only(BASE "redis = { url = \"redis://a:1\"; };\n"
                     "cache = { backend = \"redis\"; url = \"redis://a:1\"; };\n",
                "t.conf:5: cache.url: the url lives in the redis block now: write redis = { url = "
                "\"...\"; }; cache = { backend = \"redis\"; }");
    expect_only(BASE "redis = { url = \"redis://a:1\"; };\n"
                     "trace = { redis_url = \"redis://a:1\"; };\n",
                "t.conf:5: trace.redis_url: the trace stream uses the redis block's Redis now: drop "
                "redis_url and write trace = { stream = \"sluice:trace\"; }");
    expect_only(BASE "cache = { backend = \"redis\"; url = \"redis://a:1\"; };\n"
                     "trace = { redis_url = \"redis://b:1\"; };\n",
                "t.conf:5: trace.redis_url: one Redis serves the cache and the trace now: write "
                "redis = { url = \"...\"; } and trace = { stream = \"...\"; } instead of two urls");
    expect_only(BASE "trace = { stream = \"s\"; };\n",
                "t.conf:4: trace.stream: the stream goes to the redis block's Redis: add redis = { "
                "url = \"redis://HOST:6379/0\"; }");
    /* Secrets: never in the url, never echoed, and a named variable must be set. */
    expect_only(BASE "redis = { url = \"redis://u:hunter2@a:1\"; };\n",
                "t.conf:4: redis.url: no user or password in the url: name the user with username "
                "and put the password in an environment variable named by password_env");
    unsetenv("SLUICE_TEST_UNSET");
    expect_only(BASE "redis = { url = \"redis://a:1\"; password_env = \"SLUICE_TEST_UNSET\"; };\n",
                "t.conf:4: redis.password_env: the environment variable SLUICE_TEST_UNSET is not set");
    expect_only(BASE "redis = { url = \"redis://a:1\"; username = \"gw\"; };\n",
                "t.conf:4: redis.username: an ACL user needs its password: name the environment "
                "variable that holds it with password_env");
    expect_only(BASE "redis = { url = \"redis://a:1\"; tls_server_name = \"a\"; };\n",
                "t.conf:4: redis.url: the tls_* keys need TLS: write the url as "
                "rediss://HOST:PORT/DB");
    expect_only(BASE "redis = { url = \"rediss://a:1\"; tls_ca_file = \"/nonexistent/ca.pem\"; };\n",
                "t.conf:4: redis.tls_ca_file: cannot read /nonexistent/ca.pem: No such file or "
                "directory");
    expect_only(BASE "redis = { sentinels = ( \"a:1\" ); };\n",
                "t.conf:4: redis.master_name: missing: sentinels need the name of the master they "
                "watch");
    expect_only(BASE "redis = { cluster_nodes = ( \"a:1\" ); url = \"redis://a:1/2\"; };\n",
                "t.conf:4: redis.url: a Redis Cluster has only database 0");
    expect_only(BASE "redis = { cluster_nodes = ( \"a\" ); };\n",
                "t.conf:4: redis.cluster_nodes: expected HOST:PORT");
    expect_only(BASE "redis = { timeout_ms = 5; };\n",
                "t.conf:4: redis.url: missing: a redis block needs a url, sentinels or "
                "cluster_nodes");
    unsetenv("SLUICE_TEST_RPW");
}

static void test_api_key_from_env(void **state)
{
    const char *text = "providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                       "  api_key_env = \"SLUICE_TEST_KEY\"; } );\n"
                       "models = ( { name = \"m\"; provider = \"p\"; } );\n";
    struct config *cfg;

    setenv("SLUICE_TEST_KEY", "sk-from-env", 1);
    cfg = expect_ok(text);
    assert_string_equal(cfg->providers[0].api_key, "sk-from-env");
    assert_string_equal(cfg->providers[0].api_key_env, "SLUICE_TEST_KEY");
    config_unref(cfg);

    /* Read at load time: a later change shows in the next snapshot only. */
    unsetenv("SLUICE_TEST_KEY");
    cfg = expect_ok(text);
    assert_null(cfg->providers[0].api_key);
    config_unref(cfg);

    /* Never from the file. */
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  api_key = \"sk-in-file\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.api_key: unknown key; secrets never live in the file: put "
                "the key in an environment variable and name it with api_key_env");
    /* A key pasted into api_key_env is refused and not echoed back. */
    expect_only("providers = ( { name = \"p\"; base_url = \"http://x\";\n"
                "  api_key_env = \"sk-proj-SECRET123\"; } );\n"
                "models = ( { name = \"m\"; provider = \"p\"; } );\n",
                "t.conf:2: providers.p.api_key_env: must be the NAME of an environment variable "
                "([A-Za-z_][A-Za-z0-9_]*), not the key itself");
    assert_null(strstr(E.msgs[0], "SECRET123"));
}

static void test_implicit_routes(void **state)
{
    struct config *cfg =
        expect_ok(BASE "routes = ( { name = \"r\"; fallback = ( \"m2\", \"m1\" ); } );\n");
    const struct route *r;

    assert_int_equal(cfg->nroutes, 3);
    assert_string_equal(cfg->routes[0].name, "r");
    assert_int_equal(cfg->routes[0].implicit, 0);
    r = config_route(cfg, "m1");
    assert_non_null(r);
    assert_int_equal(r->implicit, 1);
    assert_int_equal(r->kind, ROUTE_SINGLE);
    assert_int_equal(r->nstages, 1);
    assert_int_equal(r->stages[0].nmodels, 1);
    assert_ptr_equal(r->stages[0].models[0], config_model(cfg, "m1"));
    assert_int_equal(r->stages[0].scorer, SCORER_NONE);
    assert_int_equal(r->cache, 1);
    assert_int_equal(r->line, 2);
    assert_non_null(config_route(cfg, "m2"));
    assert_null(config_route(cfg, "m3"));
    assert_null(config_model(cfg, "r"));
    assert_null(config_provider(cfg, "m1"));
    config_unref(cfg);

    /* With no routes block at all, every model is still reachable. */
    cfg = expect_ok(BASE);
    assert_int_equal(cfg->nroutes, 2);
    assert_non_null(config_route(cfg, "m2"));
    config_unref(cfg);
}

static void test_defaults(void **state)
{
    struct config *cfg = expect_ok(BASE);

    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->max_body_bytes, 4 << 20);
    assert_int_equal(cfg->max_connections, 16384);
    assert_int_equal(cfg->client_header_timeout_s, 10);
    assert_int_equal(cfg->client_body_timeout_s, 60);
    assert_int_equal(cfg->max_stream_memory_bytes, 64 << 20);
    assert_int_equal(cfg->log.format, LOG_FORMAT_JSON);
    assert_string_equal(cfg->log.path, "-");
    assert_int_equal(cfg->log.level, LOG_INFO);
    assert_null(cfg->trace.path);
    assert_int_equal(cfg->cache.backend, CACHE_MEMORY);
    assert_int_equal(cfg->redis.configured, 0);
    assert_int_equal(cfg->cache.ttl_s, 3600);
    assert_int_equal(cfg->cache.timeout_ms, 20);
    assert_int_equal(cfg->cache.max_value_bytes, 1 << 20);
    assert_int_equal(cfg->cache.max_bytes, 64 << 20);
    assert_int_equal(cfg->providers[0].type, PROVIDER_OPENAI);
    assert_int_equal(cfg->providers[0].timeout_ms, 120000);
    assert_int_equal(cfg->providers[0].connect_timeout_ms, 5000);
    assert_int_equal(cfg->providers[0].first_byte_timeout_ms, 120000);
    assert_int_equal(cfg->providers[0].idle_timeout_ms, 30000);
    assert_null(cfg->providers[0].api_key_env);
    assert_null(cfg->providers[0].api_key);
    assert_int_equal(cfg->providers[0].nheaders, 0);
    assert_true(cfg->models[0].input_per_mtok == 0.0);
    config_unref(cfg);

    cfg = expect_ok(BASE "listen = \"[::1]:0\";\n");
    assert_string_equal(cfg->listen, "[::1]:0");
    config_unref(cfg);
}

static void test_learned_weights(void **state)
{
    char *good = write_tmp("w/good.w", "weights-ok\n");
    char *bad = write_tmp("w/bad.w", "something else\n");
    char *text;
    char *msg;
    struct config *cfg;

    /* A load error is reported at the weights line, with the loader's reason. */
    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5;\n"
                          "    weights = \"%s\"; },\n"
                          "  { model = \"m2\"; } ); } );\n",
                     bad);
    msg = xasprintf("t.conf:6: routes.r.cascade.[0].weights: cannot load \"%s\": not a sluice-tune "
                    "weights file",
                    bad);
    expect_only(text, msg);
    assert_int_equal(learned_live, 0);
    free(text);
    free(msg);

    /* Loaded weights of a config that fails for another reason are freed. */
    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5;\n"
                          "    weights = \"%s\"; },\n"
                          "  { model = \"m9\"; } ); } );\n",
                     good);
    expect_only(text, "t.conf:7: routes.r.cascade.[1].model: unknown model \"m9\"");
    assert_int_equal(learned_live, 0);
    free(text);

    text = xasprintf(
        BASE "routes = ( { name = \"r\"; cascade = (\n"
             "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5; weights = \"%s\"; },\n"
             "  { model = \"m2\"; } ); } );\n",
        good);
    cfg = expect_ok(text);
    assert_int_equal(learned_live, 1);
    assert_string_equal(cfg->routes[0].stages[0].weights_path, good);
    config_unref(cfg);
    assert_int_equal(learned_live, 0);
    free(text);
    free(good);
    free(bad);
}

/* A learned scorer with peers: the stage's other models, as many as the
 * weights file reads. */
static void test_learned_peers(void **state)
{
    char *one = write_tmp("w/one.w", "weights-ok 1\n");
    char *none = write_tmp("w/none.w", "weights-ok\n");
    char *text, *msg;
    struct config *cfg;

    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { models = ( \"m1\", \"m2\" ); scorer = \"learned\"; threshold = 0.5;"
                          " weights = \"%s\"; },\n"
                          "  { model = \"m2\"; } ); } );\n",
                     one);
    cfg = expect_ok(text);
    assert_int_equal(cfg->routes[0].stages[0].nmodels, 2);
    config_unref(cfg);
    free(text);

    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5;"
                          " weights = \"%s\"; },\n"
                          "  { model = \"m2\"; } ); } );\n",
                     one);
    msg = xasprintf("t.conf:5: routes.r.cascade.[0].weights: \"%s\" reads the answers of 1 peer "
                    "model (peer-a,peer-b), so the stage needs 'models' with its own model and 1 "
                    "more (it has 0)",
                    one);
    expect_only(text, msg);
    free(text);
    free(msg);

    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { models = ( \"m1\", \"m2\" ); scorer = \"learned\"; threshold = 0.5;"
                          " weights = \"%s\"; },\n"
                          "  { model = \"m2\"; } ); } );\n",
                     none);
    msg = xasprintf("t.conf:5: routes.r.cascade.[0].weights: \"%s\" reads the answers of 0 peer "
                    "models (none), so the stage needs 'models' with its own model and 0 more (it "
                    "has 1)",
                    none);
    expect_only(text, msg);
    free(text);
    free(msg);

    text = xasprintf(BASE "routes = ( { name = \"r\"; cascade = (\n"
                          "  { models = ( \"m1\" ); scorer = \"learned\"; threshold = 0.5;"
                          " weights = \"%s\"; },\n"
                          "  { model = \"m2\"; } ); } );\n",
                     none);
    expect_only(text, "t.conf:5: routes.r.cascade.[0].models: needs at least two models (the "
                      "stage's model, then its scorer's peers; without peers, use 'model')");
    free(text);
    assert_int_equal(learned_live, 0);
    free(one);
    free(none);
}

static void test_refcount_and_swap(void **state)
{
    char *w = write_tmp("w2/s.w", "weights-ok\n");
    char *text = xasprintf(
        BASE "routes = ( { name = \"r\"; cascade = (\n"
             "  { model = \"m1\"; scorer = \"learned\"; threshold = 0.5; weights = \"%s\"; },\n"
             "  { model = \"m2\"; } ); } );\n",
        w);
    struct config *a = expect_ok(text);
    struct config *b = expect_ok(text);
    struct config *cur;

    assert_int_equal(learned_live, 2);
    assert_ptr_equal(config_ref(a), a);
    assert_int_equal(a->refs, 2);
    config_unref(a);
    assert_int_equal(a->refs, 1);
    assert_int_equal(learned_live, 2);

    assert_null(config_current());
    config_swap(a); /* takes our reference */
    cur = config_current();
    assert_ptr_equal(cur, a);
    assert_int_equal(a->refs, 2);

    /* A reload: the request holding `cur` keeps the old snapshot alive. */
    config_swap(b);
    assert_int_equal(a->refs, 1);
    assert_int_equal(learned_live, 2);
    config_unref(cur); /* the last reference frees a */
    assert_int_equal(learned_live, 1);

    config_swap(NULL);
    assert_int_equal(learned_live, 0);
    assert_null(config_current());
    config_unref(NULL);
    free(text);
    free(w);
}

/* conf/dev.conf, what `make run` serves: sluice-mock on 127.0.0.1:8081 as
 * provider "mock", the models the README's examples use and two routes. */
static void test_dev_conf(void **state)
{
    const char *me = __FILE__;
    const char *end = strstr(me, "tests/unit/test_config.c");
    char *path;
    struct config_errors errs = {0};
    struct config *cfg;
    const struct route *r;

    (void)state;
    assert_non_null(end);
    path = xasprintf("%.*sconf/dev.conf", (int)(end - me), me);
    cfg = config_load(path, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    assert_non_null(cfg);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_int_equal(cfg->nproviders, 1);
    assert_string_equal(cfg->providers[0].name, "mock");
    assert_int_equal(cfg->providers[0].type, PROVIDER_OPENAI);
    assert_string_equal(cfg->providers[0].base_url, "http://127.0.0.1:8081/v1");
    assert_null(cfg->providers[0].api_key);
    assert_true(config_model(cfg, "mock-small")->input_per_mtok == 0.15);
    assert_true(config_model(cfg, "mock-small")->output_per_mtok == 0.60);
    assert_true(config_model(cfg, "mock-large")->input_per_mtok == 2.50);
    assert_true(config_model(cfg, "mock-large")->output_per_mtok == 10.00);
    assert_true(config_model(cfg, "text-embedding-3-small")->input_per_mtok == 0.02);
    r = config_route(cfg, "reliable");
    assert_non_null(r);
    assert_int_equal(r->kind, ROUTE_FALLBACK);
    assert_int_equal(r->nstages, 2);
    assert_string_equal(r->stages[0].models[0]->name, "mock-small");
    assert_string_equal(r->stages[1].models[0]->name, "mock-large");
    r = config_route(cfg, "smart");
    assert_non_null(r);
    assert_int_equal(r->kind, ROUTE_CASCADE);
    assert_non_null(config_route(cfg, "mock-large"));
    assert_int_equal(cfg->cache.backend, CACHE_MEMORY);
    assert_int_equal(cfg->log.format, LOG_FORMAT_JSON);
    assert_string_equal(cfg->log.path, "-");
    assert_int_equal(cfg->log.level, LOG_INFO);
    assert_null(cfg->admin.listen);
    assert_int_equal(cfg->nkeys, 0);
    config_unref(cfg);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_schema_loads),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_example_checks_fail),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_missing_required_more),
        cmocka_unit_test(test_dangling_refs),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_route_model_collision),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_redis_block),
        cmocka_unit_test(test_bad_enums),
        cmocka_unit_test(test_anthropic),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_scorer_keys),
        cmocka_unit_test(test_agreement_rules),
        cmocka_unit_test(test_route_kinds),
        cmocka_unit_test(test_route_models_cap),
        cmocka_unit_test(test_threshold_range),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_include_error_location),
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_api_key_from_env),
        cmocka_unit_test(test_implicit_routes),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_learned_weights),
        cmocka_unit_test(test_learned_peers),
        cmocka_unit_test(test_refcount_and_swap),
        cmocka_unit_test(test_dev_conf),
    };

    return cmocka_run_group_tests(tests, setup_cb, teardown_cb);
}
