/* Unit tests for http.c, the HTTP front, served in-process on 127.0.0.1
 * with the loop, its upstream and a memory cache set up by hand (server.c,
 * which does that in the binary, has its own test), and a loopback
 * provider (tests/common/openai_server.h). What a client sees: health and
 * readiness; OpenAI's error shape for every refusal the worker makes
 * itself (unknown path, wrong method, no key or a bad one, a route the key
 * may not use, bad JSON, an unknown model, a body over its limit, announced
 * or not); request ids kept or made; the models a key may list; a proxied
 * answer with its x-sluice-* headers, handed to the loop and resumed, and
 * the same question again served from the memory cache by the worker
 * without a call; a stream relayed event by event; /metrics behind the
 * admin key on the public listener; and the admin listener's
 * authentication, methods and checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http_client.h"
#include "../common/openai_server.h"
#include "../../src/cache.h"
#include "../../src/config.h"
#include "../../src/http.h"
#include "../../src/log.h"
#include "../../src/loop.h"
#include "../../src/metrics.h"
#include "../../src/server.h"
#include "../../src/upstream.h"
#include "../../src/util.h"

#define KEY_A "sk-team-a-0123456789"
#define KEY_B "sk-team-b-0123456789"
#define ADMIN_KEY "admin-secret-0123456789"

static struct test_http provider;
static char base[64], admin_base[64];

static int reloads; /* calls of reload_cb */

/* The reload the front is given: refuses, as a broken file would. */
static int reload_cb(char *msg, size_t msglen)
{
    reloads++;
    snprintf(msg, msglen, "test.conf:3: listen: broken");
    return -1;
}

static void *loop_main(void *arg)
{
    UNUSED(arg);
    loop_run(server.loop);
    return NULL;
}

static void sha_hex(const char *key, char out[65])
{
    unsigned char md[32];

    sha256(key, strlen(key), md);
    hex_encode(md, 32, out);
}

static int group_setup(void **state)
{
    struct config_errors errs = {0};
    struct log_conf quiet = {.format = LOG_FORMAT_JSON, .path = "/dev/null", .level = LOG_ERROR};
    struct config *cfg;
    struct cache *cache;
    char ha[65], hb[65], err[200], *text;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    assert_int_equal(log_open(&quiet), 0);
    metrics_init();
    test_http_start(&provider, test_openai_cb, NULL);
    setenv("TEST_HTTP_ADMIN_KEY", ADMIN_KEY, 1);
    setenv("TEST_HTTP_PROVIDER_KEY", "sk-provider-secret", 1);
    sha_hex(KEY_A, ha);
    sha_hex(KEY_B, hb);
    text = xasprintf(
        "listen = \"127.0.0.1:0\";\nworkers = 2;\nmax_body_bytes = 4096;\n"
        "cache = { backend = \"memory\"; };\n"
        "admin = { listen = \"127.0.0.1:0\"; key_env = \"TEST_HTTP_ADMIN_KEY\"; };\n"
        "providers = ( { name = \"up\"; type = \"openai\"; base_url = \"%s/v1\"; "
        "api_key_env = \"TEST_HTTP_PROVIDER_KEY\"; } );\n"
        "models = ( { name = \"small\"; provider = \"up\"; id = \"up-small\"; "
        "input_per_mtok = 1.0; output_per_mtok = 2.0; },\n"
        "  { name = \"large\"; provider = \"up\"; input_per_mtok = 10.0; output_per_mtok = 20.0; } "
        ");\n"
        "keys = ( { name = \"team-a\"; key_sha256 = \"%s\"; routes = ( \"small\" ); },\n"
        "  { name = \"team-b\"; key_sha256 = \"%s\"; } );\n",
        provider.base, ha, hb);
    cfg = config_load_string(text, "test_http.conf", &errs);
    free(text);
    if (cfg == NULL)
        fail_msg("config: %s", errs.n ? errs.msgs[0] : "?");
    config_swap(cfg);
    server.loop = loop_new();
    server.up = upstream_new(server.loop);
    loop_set_upstream(server.loop, server.up);
    cache = cache_new(server.loop, &cfg->cache, err, sizeof(err));
    assert_non_null(cache);
    cache_swap(cache);
    pthread_create(&server.loop_thread, NULL, loop_main, NULL);
    assert_int_equal(http_start(cfg, "127.0.0.1:0", server.loop, reload_cb), 0);
    assert_true(http_port() > 0 && http_admin_port() > 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", http_port());
    snprintf(admin_base, sizeof(admin_base), "http://127.0.0.1:%d", http_admin_port());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    http_stop();
    cache_swap(NULL);
    loop_stop(server.loop);
    pthread_join(server.loop_thread, NULL);
    upstream_free(server.up);
    loop_free(server.loop);
    server.loop = NULL;
    server.up = NULL;
    config_swap(NULL);
    test_http_stop(&provider);
    metrics_free();
    return 0;
}

/* method path on the public listener, with the headers given. */
static void fetch(const char *method, const char *path, const char *const *headers,
                  const char *body, struct test_resp *r)
{
    char *url = xasprintf("%s%s", base, path);

    assert_int_equal(test_fetch(method, url, headers, body, r), CURLE_OK);
    free(url);
}

/* The response is OpenAI's error with this status, type and code. */
static void expect_error(const struct test_resp *r, long status, const char *type, const char *code,
                         const char *param)
{
    json_t *j = json_loads(r->body, 0, NULL), *e;
    char ct[64];

    if (r->status != status)
        fail_msg("status %ld, expected %ld: %s", r->status, status, r->body);
    assert_non_null(j);
    e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    if (code)
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    if (param)
        assert_string_equal(json_string_value(json_object_get(e, "param")), param);
    else
        assert_true(json_is_null(json_object_get(e, "param")));
    assert_non_null(test_header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_decref(j);
}

static const char *const key_a[] = {"Authorization: Bearer " KEY_A,
                                    "Content-Type: application/json", NULL};
static const char *const key_b[] = {"Authorization: Bearer " KEY_B,
                                    "Content-Type: application/json", NULL};

static void test_error_json(void **state)
{
    struct api_error e;
    size_t len;
    char *s;
    json_t *j;

    (void)state;
    api_error_set(&e, 400, "invalid_request_error", "bad", "messages", "a \"quote\" and \xff");
    s = http_error_json(&e, &len);
    assert_int_equal(strlen(s), len);
    j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "param")),
                        "messages");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(j, "error"), "message")), "a \"quote\""));
    json_decref(j);
    free(s);
}

static void test_health(void **state)
{
    struct test_resp r;
    json_t *j;

    (void)state;
    fetch("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    test_resp_free(&r);
    fetch("GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
    assert_true(json_is_object(json_object_get(j, "providers")));
    json_decref(j);
    test_resp_free(&r);
    /* draining: not ready, so the balancer stops sending */
    http_set_draining(1);
    fetch("GET", "/readyz", NULL, NULL, &r);
    http_set_draining(0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"draining\""));
    test_resp_free(&r);
    fetch("POST", "/healthz", NULL, "", &r);
    expect_error(&r, 405, "invalid_request_error", "method_not_allowed", NULL);
    test_resp_free(&r);
}

static void test_not_found_and_ids(void **state)
{
    static const char *const with_id[] = {"x-request-id: my-trace-42", NULL};
    static const char *const bad_id[] = {"x-request-id: has space", NULL};
    struct test_resp r;
    char id[80];

    (void)state;
    fetch("GET", "/nope", NULL, NULL, &r);
    expect_error(&r, 404, "invalid_request_error", "not_found", NULL);
    assert_non_null(test_header(&r, "x-request-id", id, sizeof(id)));
    assert_true(strncmp(id, "req_", 4) == 0 && strlen(id) == 28);
    test_resp_free(&r);
    fetch("GET", "/nope", with_id, NULL, &r);
    assert_string_equal(test_header(&r, "x-request-id", id, sizeof(id)), "my-trace-42");
    test_resp_free(&r);
    fetch("GET", "/nope", bad_id, NULL, &r);
    assert_true(strncmp(test_header(&r, "x-request-id", id, sizeof(id)), "req_", 4) == 0);
    test_resp_free(&r);
    /* the API's paths want POST */
    fetch("GET", "/v1/chat/completions", key_a, NULL, &r);
    expect_error(&r, 405, "invalid_request_error", "method_not_allowed", NULL);
    assert_non_null(strstr(r.body, "use POST"));
    test_resp_free(&r);
}

static void test_keys(void **state)
{
    static const char *const none[] = {"Content-Type: application/json", NULL};
    static const char *const wrong[] = {"Authorization: Bearer sk-nobody", NULL};
    const char *body =
        "{\"model\":\"small\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *large =
        "{\"model\":\"large\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct test_resp r;

    (void)state;
    fetch("POST", "/v1/chat/completions", none, body, &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key", NULL);
    assert_non_null(strstr(r.body, "didn't provide an API key"));
    test_resp_free(&r);
    fetch("POST", "/v1/chat/completions", wrong, body, &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key", NULL);
    assert_non_null(strstr(r.body, "Incorrect API key"));
    test_resp_free(&r);
    /* a 401 comes before a 400: who asks before what is asked */
    fetch("POST", "/v1/chat/completions", none, "{not json", &r);
    assert_int_equal(r.status, 401);
    test_resp_free(&r);
    fetch("POST", "/v1/chat/completions", key_a, large, &r);
    expect_error(&r, 403, "permission_error", "route_not_allowed", "model");
    test_resp_free(&r);
}

static void test_models(void **state)
{
    struct test_resp r;
    json_t *j, *data;

    (void)state;
    fetch("GET", "/v1/models", key_a, NULL, &r);
    assert_int_equal(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 1); /* team-a may use small only */
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "id")), "small");
    json_decref(j);
    test_resp_free(&r);
    fetch("GET", "/models", key_b, NULL, &r); /* without /v1 too */
    j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    test_resp_free(&r);
    fetch("GET", "/v1/models/large", key_b, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"owned_by\":\"up\""));
    test_resp_free(&r);
    fetch("GET", "/v1/models/large", key_a, NULL, &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found", "model");
    test_resp_free(&r);
    fetch("GET", "/v1/models", NULL, NULL, &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key", NULL);
    test_resp_free(&r);
}

static void test_bad_requests(void **state)
{
    struct test_resp r;
    char *big;

    (void)state;
    fetch("POST", "/v1/chat/completions", key_b, "{\"model\": ", &r);
    expect_error(&r, 400, "invalid_request_error", NULL, NULL);
    test_resp_free(&r);
    fetch("POST", "/v1/chat/completions", key_b, "{\"model\":\"small\",\"messages\":3}", &r);
    expect_error(&r, 400, "invalid_request_error", NULL, "messages");
    test_resp_free(&r);
    fetch("POST", "/v1/chat/completions", key_b,
          "{\"model\":\"nonesuch\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found", "model");
    assert_non_null(strstr(r.body, "nonesuch"));
    test_resp_free(&r);
    /* over max_body_bytes (4096): announced by Content-Length, refused
     * before it is read */
    big = xmalloc(8001);
    memset(big, ' ', 8000);
    big[0] = '{';
    big[7999] = '}';
    big[8000] = '\0';
    fetch("POST", "/v1/chat/completions", key_b, big, &r);
    expect_error(&r, 413, "invalid_request_error", "request_too_large", NULL);
    test_resp_free(&r);
    /* and sent chunked, with no length: refused once it passes the cap */
    {
        static const char *const chunked[] = {"Authorization: Bearer " KEY_B,
                                              "Transfer-Encoding: chunked", NULL};

        fetch("POST", "/v1/chat/completions", chunked, big, &r);
        expect_error(&r, 413, "invalid_request_error", "request_too_large", NULL);
        test_resp_free(&r);
    }
    free(big);
}

/* A question handed to the loop and answered by the provider, then asked
 * again and answered from the memory cache by the worker. */
static void test_proxied_then_cached(void **state)
{
    const char *body =
        "{\"model\":\"small\",\"messages\":[{\"role\":\"user\",\"content\":\"cache me\"}]}";
    struct test_resp r;
    char v[128];
    int calls;
    json_t *j;

    (void)state;
    calls = test_http_count(&provider);
    fetch("POST", "/v1/chat/completions", key_b, body, &r);
    if (r.status != 200)
        fail_msg("status %ld: %s", r.status, r.body);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
            "content")),
        "answer from up-small");
    json_decref(j);
    assert_string_equal(test_header(&r, "x-sluice-model", v, sizeof(v)), "small");
    assert_string_equal(test_header(&r, "x-sluice-route", v, sizeof(v)), "small");
    assert_string_equal(test_header(&r, "x-sluice-cache", v, sizeof(v)), "MISS");
    /* 5 tokens at $1/M + 3 at $2/M */
    assert_string_equal(test_header(&r, "x-sluice-cost", v, sizeof(v)), "0.000011");
    test_resp_free(&r);
    assert_int_equal(test_http_count(&provider), calls + 1);
    /* upstream got the model's id and the provider's key, never the client's */
    {
        const struct test_http_req *q = &provider.reqs[calls];

        assert_string_equal(q->path, "/v1/chat/completions");
        assert_non_null(strstr(q->body, "\"model\":\"up-small\""));
        assert_non_null(strstr(q->headers, "Authorization: Bearer sk-provider-secret"));
        assert_null(strstr(q->headers, KEY_B));
    }
    /* the same question: a hit, no call; the answer is the same */
    for (int i = 0; i < 50; i++) { /* the loop stores after it answers */
        fetch("POST", "/v1/chat/completions", key_b, body, &r);
        if (strcmp(test_header(&r, "x-sluice-cache", v, sizeof(v)), "HIT") == 0)
            break;
        test_resp_free(&r);
        usleep(20000);
    }
    assert_int_equal(r.status, 200);
    assert_string_equal(test_header(&r, "x-sluice-cache", v, sizeof(v)), "HIT");
    assert_string_equal(test_header(&r, "x-sluice-cost", v, sizeof(v)), "0.0");
    assert_string_equal(test_header(&r, "x-sluice-saved-cost", v, sizeof(v)), "0.000011");
    assert_non_null(strstr(r.body, "answer from up-small"));
    test_resp_free(&r);
    /* another tenant's cache is its own: team-a misses */
    fetch("POST", "/v1/chat/completions", key_a, body, &r);
    assert_string_equal(test_header(&r, "x-sluice-cache", v, sizeof(v)), "MISS");
    test_resp_free(&r);
}

static void test_stream(void **state)
{
    const char *body = "{\"model\":\"large\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"stream me\"}]}";
    struct test_resp r;
    char v[128];

    (void)state;
    fetch("POST", "/v1/chat/completions", key_b, body, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(test_header(&r, "Content-Type", v, sizeof(v)), "text/event-stream");
    assert_string_equal(test_header(&r, "x-sluice-model", v, sizeof(v)), "large");
    assert_non_null(strstr(r.body, "\"content\":\"answer from large\""));
    /* the usage chunk was asked upstream for the cost, not by the client */
    assert_null(strstr(r.body, "\"usage\""));
    assert_true(r.len > 14 && strcmp(r.body + r.len - 14, "data: [DONE]\n\n") == 0);
    test_resp_free(&r);
}

static void test_metrics_auth(void **state)
{
    static const char *const admin[] = {"Authorization: Bearer " ADMIN_KEY, NULL};
    struct test_resp r;
    char *url;

    (void)state;
    /* with client keys, the public /metrics names every key: admin only */
    fetch("GET", "/metrics", NULL, NULL, &r);
    expect_error(&r, 401, "authentication_error", "invalid_admin_key", NULL);
    test_resp_free(&r);
    fetch("GET", "/metrics", key_b, NULL, &r);
    assert_int_equal(r.status, 401);
    test_resp_free(&r);
    fetch("GET", "/metrics", admin, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "sluice_requests_total"));
    test_resp_free(&r);
    /* the admin listener serves it to a scraper as it is */
    url = xasprintf("%s/metrics", admin_base);
    assert_int_equal(test_fetch("GET", url, NULL, NULL, &r), CURLE_OK);
    free(url);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
}

static void admin_fetch(const char *method, const char *path, const char *key, const char *body,
                        struct test_resp *r)
{
    char *url = xasprintf("%s%s", admin_base, path), *auth = NULL;
    const char *h[] = {NULL, NULL};

    if (key) {
        auth = xasprintf("Authorization: Bearer %s", key);
        h[0] = auth;
    }
    assert_int_equal(test_fetch(method, url, h, body, r), CURLE_OK);
    free(url);
    free(auth);
}

static void test_admin(void **state)
{
    struct test_resp r;

    (void)state;
    admin_fetch("GET", "/admin/config", NULL, NULL, &r);
    expect_error(&r, 401, "authentication_error", "invalid_admin_key", NULL);
    test_resp_free(&r);
    admin_fetch("GET", "/admin/config", KEY_B, NULL, &r);
    assert_int_equal(r.status, 401);
    test_resp_free(&r);
    admin_fetch("GET", "/admin/config", ADMIN_KEY, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"small\""));
    assert_null(strstr(r.body, "sk-provider-secret")); /* secrets never shown */
    assert_null(strstr(r.body, ADMIN_KEY));
    test_resp_free(&r);
    admin_fetch("GET", "/admin/reload", ADMIN_KEY, NULL, &r);
    expect_error(&r, 405, "invalid_request_error", "method_not_allowed", NULL);
    test_resp_free(&r);
    /* the reload http_start was given, its refusal passed on */
    admin_fetch("POST", "/admin/reload", ADMIN_KEY, "", &r);
    expect_error(&r, 400, "invalid_request_error", "invalid_config", NULL);
    assert_non_null(strstr(r.body, "test.conf:3: listen: broken"));
    assert_int_equal(reloads, 1);
    test_resp_free(&r);
    admin_fetch("POST", "/admin/cache/purge", ADMIN_KEY, "{\"key\":1}", &r);
    expect_error(&r, 400, "invalid_request_error", NULL, NULL);
    test_resp_free(&r);
    admin_fetch("POST", "/admin/cache/purge", ADMIN_KEY, "{\"namespace\":\"team-b\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"purged\":0}"); /* nothing cached for team-b */
    test_resp_free(&r);
    admin_fetch("GET", "/admin/nope", ADMIN_KEY, NULL, &r);
    expect_error(&r, 404, "invalid_request_error", "not_found", NULL);
    test_resp_free(&r);
    /* the API is not served on the admin listener */
    admin_fetch("POST", "/v1/chat/completions", ADMIN_KEY, "{}", &r);
    assert_int_equal(r.status, 404);
    test_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_not_found_and_ids),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_proxied_then_cached),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_metrics_auth),
        cmocka_unit_test(test_admin),
    };

    alarm(180);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
