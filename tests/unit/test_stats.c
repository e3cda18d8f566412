/* Unit tests for the dashboard's data (stats.c): the ring of recent
 * requests (newest first, bounded, no prompt unless capture_content) and
 * /admin/stats' shape. The embedded files are test_ui.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/stats.c"
#include "../../src/observe.h"

static const char CONF[] =
    "admin = { listen = \"127.0.0.1:0\"; };\n"
    "%s\n"
    "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://127.0.0.1:1/v1\"; } );\n"
    "models = ( { name = \"m\"; provider = \"p\"; input_per_mtok = 1.0; output_per_mtok = 2.0; } "
    ");\n"
    "routes = ( { name = \"c\"; cascade = ( { model = \"m\"; scorer = \"rules\"; threshold = 1.0; "
    "}, { model = \"m\"; } ); } );\n";

static struct config *load(const char *extra)
{
    struct config_errors errs = {0};
    char *text = xasprintf(CONF, extra);
    struct config *cfg = config_load_string(text, "t", &errs);

    free(text);
    assert_non_null(cfg);
    return cfg;
}

/* One finished API request through the ring. */
static void request(struct config *cfg, int i)
{
    struct exchange *ex = ex_new(NULL, 1024);
    struct api_error e;
    char body[128];

    ex->cfg = config_ref(cfg);
    ex->is_api = 1;
    ex->route = config_route(cfg, "c");
    ex->client_status = 200;
    ex->t_end_us = ex->t_start_us + 1500;
    snprintf(ex->request_id, sizeof(ex->request_id), "req_%d", i);
    snprintf(ex->method, sizeof(ex->method), "POST");
    snprintf(ex->path, sizeof(ex->path), "/v1/chat/completions");
    snprintf(body, sizeof(body),
             "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"q %d\"}]}", i);
    assert_int_equal(request_parse(EP_CHAT, body, strlen(body), &ex->ri, &e), 0);
    /* What the observe step does at the request's end. */
    if (stats_keeps(ex)) {
        size_t len;
        char *rec = observe_record(ex, &len);

        assert_non_null(rec);
        stats_request(ex, rec, len);
    }
    ex_unref(ex); /* no driver: no on_end hooks record it again */
}

static void test_ring(void **state)
{
    struct config *cfg = load("");
    json_t *j, *recent;

    (void)state;
    stats_free();
    for (int i = 0; i < STATS_RING_RECORDS + 5; i++)
        request(cfg, i);
    j = stats_json(cfg, now_us());
    recent = json_object_get(j, "recent");
    assert_int_equal(json_array_size(recent), STATS_RING_RECORDS);
    /* newest first, oldest ones gone */
    assert_string_equal(json_string_value(json_object_get(json_array_get(recent, 0), "request_id")),
                        "req_104");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(recent, STATS_RING_RECORDS - 1), "request_id")),
                        "req_5");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(recent, 0), "status")), 200);
    assert_null(json_object_get(json_array_get(recent, 0), "prompt"));
    assert_non_null(json_object_get(j, "metrics"));
    assert_false(json_is_true(json_object_get(j, "capture_content")));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "routes"), 0), "kind")),
        "cascade");
    json_decref(j);
    stats_free();
    config_unref(cfg);
}

static void test_prompt_with_capture(void **state)
{
    struct config *cfg =
        load("otel = { endpoint = \"http://127.0.0.1:1\"; capture_content = true; };");
    json_t *j;

    (void)state;
    stats_free();
    request(cfg, 7);
    j = stats_json(cfg, now_us());
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "recent"), 0), "prompt")),
                        "q 7");
    json_decref(j);
    stats_free();
    config_unref(cfg);
}

static void test_no_admin_no_ring(void **state)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load_string(
        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://x/v1\"; } );\n"
        "models = ( { name = \"c\"; provider = \"p\"; input_per_mtok = 1.0; output_per_mtok = 1.0; "
        "} );\n",
        "t", &errs);
    json_t *j;

    (void)state;
    stats_free();
    request(cfg, 1);
    j = stats_json(cfg, now_us());
    assert_int_equal(json_array_size(json_object_get(j, "recent")), 0);
    json_decref(j);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_prompt_with_capture),
        cmocka_unit_test(test_no_admin_no_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
