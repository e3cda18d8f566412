/* Unit tests for server.c, the process's life cycle, in-process against a
 * loopback provider (tests/common/openai_server.h): server_start serves on
 * the configured listen address; server_reload makes a valid file current
 * (a new route answers, a request in flight finishes on the snapshot it
 * began with, new cache settings start an empty cache), refuses a broken
 * one with FILE:LINE messages and keeps serving the old; server_stop lets
 * in-flight requests finish within the drain time, ends those still going
 * after it with OpenAI's 503 "shutting_down", and closes the port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http_client.h"
#include "../common/openai_server.h"
#include "../../src/config.h"
#include "../../src/http.h"
#include "../../src/log.h"
#include "../../src/server.h"
#include "../../src/util.h"

static struct test_http provider;
static char conf_path[] = "/tmp/test_server.XXXXXX";

/* Write the config file: the provider, the models, and `extra`. */
static void write_conf(const char *extra)
{
    FILE *f = fopen(conf_path, "w");

    assert_non_null(f);
    fprintf(f,
            "listen = \"127.0.0.1:0\";\nworkers = 2;\n"
            "log = { path = \"/dev/null\"; level = \"error\"; };\n"
            "providers = ( { name = \"up\"; type = \"openai\"; base_url = \"%s/v1\"; } );\n"
            "models = ( { name = \"fast\"; provider = \"up\"; input_per_mtok = 1.0; "
            "output_per_mtok = 1.0; },\n"
            "  { name = \"slow\"; provider = \"up\"; id = \"up-slow\"; input_per_mtok = 1.0; "
            "output_per_mtok = 1.0; } );\n"
            "%s\n",
            provider.base, extra);
    fclose(f);
}

static void start(const char *extra)
{
    struct config_errors errs = {0};
    struct config *cfg;

    write_conf(extra);
    cfg = config_load(conf_path, &errs);
    if (cfg == NULL)
        fail_msg("config: %s", errs.n ? errs.msgs[0] : "?");
    assert_int_equal(log_open(&cfg->log), 0);
    server.config_path = conf_path;
    config_swap(cfg);
    cfg = config_current();
    assert_int_equal(server_start(cfg, NULL), 0);
    config_unref(cfg);
    assert_true(http_port() > 0);
}

static void stop(long drain_ms)
{
    server_stop(drain_ms);
    config_swap(NULL);
    memset(&server, 0, sizeof(server));
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

/* A chat to model; its status, and the answer's content in content. */
static long chat(const char *model, char *content, size_t n)
{
    char *url = xasprintf("http://127.0.0.1:%d/v1/chat/completions", http_port());
    char *body =
        xasprintf("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", model);
    struct test_resp r;
    long status;
    json_t *j;

    if (test_fetch("POST", url, json_ct, body, &r) != CURLE_OK)
        r.status = -1;
    status = r.status;
    j = json_loads(r.body ? r.body : "", 0, NULL);
    if (content)
        snprintf(
            content, n, "%s",
            status == 200
                ? json_string_value(json_object_get(
                      json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                      "content"))
                : json_string_value(json_object_get(json_object_get(j, "error"), "code")));
    json_decref(j);
    test_resp_free(&r);
    free(url);
    free(body);
    return status;
}

/* A chat in a thread, for requests in flight while the test acts. */
struct pending {
    pthread_t th;
    char model[32];
    long status;
    char content[128];
};

static void *chat_main(void *arg)
{
    struct pending *p = arg;

    p->status = chat(p->model, p->content, sizeof(p->content));
    return NULL;
}

static void chat_begin(struct pending *p, const char *model)
{
    int before = test_http_count(&provider);

    snprintf(p->model, sizeof(p->model), "%s", model);
    pthread_create(&p->th, NULL, chat_main, p);
    /* in flight once the provider has it */
    for (int i = 0; i < 1000 && test_http_count(&provider) == before; i++)
        usleep(5000);
    assert_true(test_http_count(&provider) > before);
}

/* Ask until the answer comes from the cache (the loop stores it after it
 * answers): 1 when it did, without a call to the provider. */
static int answered_from_cache(const char *model)
{
    for (int i = 0; i < 100; i++) {
        int before = test_http_count(&provider);

        assert_int_equal(chat(model, NULL, 0), 200);
        if (test_http_count(&provider) == before)
            return 1;
        usleep(20000);
    }
    return 0;
}

static int group_setup(void **state)
{
    int fd;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fd = mkstemp(conf_path);
    assert_true(fd >= 0);
    close(fd);
    test_http_start(&provider, test_openai_cb, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_http_stop(&provider);
    unlink(conf_path);
    return 0;
}

static void test_start_and_stop(void **state)
{
    char content[128], *url;
    struct test_resp r;
    int port;

    (void)state;
    start("");
    assert_non_null(server.loop);
    assert_int_equal(chat("fast", content, sizeof(content)), 200);
    assert_string_equal(content, "answer from fast");
    port = http_port();
    stop(1000);
    assert_null(server.loop);
    /* the port is closed */
    url = xasprintf("http://127.0.0.1:%d/healthz", port);
    assert_int_not_equal(test_fetch("GET", url, NULL, NULL, &r), CURLE_OK);
    test_resp_free(&r);
    free(url);
}

static void test_reload(void **state)
{
    struct pending slow;
    char content[128], msg[4096];

    (void)state;
    start("cache = { backend = \"memory\"; max_bytes = 1000000; };");
    assert_int_equal(chat("smart", content, sizeof(content)), 404);
    assert_string_equal(content, "model_not_found");
    assert_true(answered_from_cache("fast"));

    /* a request in flight across the reload */
    chat_begin(&slow, "slow");
    write_conf("cache = { backend = \"memory\"; max_bytes = 2000000; };\n"
               "routes = ( { name = \"smart\"; fallback = ( \"fast\", \"slow\" ); } );");
    assert_int_equal(server_reload(msg, sizeof(msg)), 0);
    assert_string_equal(msg, conf_path);
    assert_int_equal(chat("smart", content, sizeof(content)), 200);
    assert_string_equal(content, "answer from fast");
    pthread_join(slow.th, NULL);
    assert_int_equal(slow.status, 200);
    assert_string_equal(slow.content, "answer from up-slow");

    /* the cache settings changed: a new, empty cache (the answer is asked
     * for again), which then fills */
    {
        int before = test_http_count(&provider);

        assert_int_equal(chat("fast", content, sizeof(content)), 200);
        assert_int_equal(test_http_count(&provider), before + 1);
        assert_true(answered_from_cache("fast"));
    }

    /* a broken file: refused with where and why, the old config serves on */
    write_conf("routes = ( { name = \"smart\"; fallback = ( \"nonesuch\" ); } );\nbogus = 1;");
    assert_int_equal(server_reload(msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, conf_path));
    assert_non_null(strstr(msg, ":7:")); /* the line of the broken route */
    assert_non_null(strstr(msg, "nonesuch"));
    assert_non_null(strstr(msg, "bogus"));
    assert_int_equal(chat("smart", content, sizeof(content)), 200);
    stop(1000);
}

/* SIGTERM's drain: a request in flight finishes. */
static void test_drain(void **state)
{
    struct pending slow;

    (void)state;
    start("drain_timeout_s = 10;");
    chat_begin(&slow, "slow");
    stop(10000);
    pthread_join(slow.th, NULL);
    assert_int_equal(slow.status, 200);
    assert_string_equal(slow.content, "answer from up-slow");
}

/* Out of drain time: what is left gets a 503, at once. */
static void test_drain_timeout(void **state)
{
    struct pending slow;

    (void)state;
    start("");
    chat_begin(&slow, "slow");
    stop(100);
    pthread_join(slow.th, NULL);
    /* a 503 rather than the provider's answer, which comes after 1.5 s */
    assert_int_equal(slow.status, 503);
    assert_string_equal(slow.content, "shutting_down");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_and_stop),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_drain_timeout),
    };

    alarm(180);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
