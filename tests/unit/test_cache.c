/* Unit tests for the cache: canonical keys, the plan, entries. The memory
 * LRU is test_cache_mem.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cache.h"

static json_t *js(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);

    assert_non_null(j);
    return j;
}

static void key_of(const char *ns, const char *route, const char *body, char out[CACHE_KEY_MAX])
{
    json_t *j = js(body);

    assert_int_equal(cache_key(ns, route, EP_CHAT, j, out), 0);
    json_decref(j);
}

static void test_canonical(void **state)
{
    struct buf b;
    json_t *j = js("{\"b\":[1,2.0,{\"z\":null,\"a\":true}],\"a\":\"x\\\"y\",\"model\":\"m\","
                   "\"stream\":true,\"user\":\"u\",\"stream_options\":{},\"t\":0.1}");

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(cache_canonical(j, 1, &b), 0);
    assert_string_equal(
        b.data, "{\"a\":\"x\\\"y\",\"b\":[1,2,{\"a\":true,\"z\":null}],\"t\":0.10000000000000001}");
    buf_free(&b);
    json_decref(j);
}

static void test_key_semantics(void **state)
{
    char a[CACHE_KEY_MAX], b[CACHE_KEY_MAX];

    (void)state;
    key_of(
        "default", "r",
        "{\"model\":\"r\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0}",
        a);
    assert_true(strncmp(a, "sluice:c1:default:", 18) == 0);
    assert_int_equal(strlen(a), 18 + 64);
    /* order of keys, stream, user, stream_options and 0 vs 0.0 do not matter */
    key_of(
        "default", "r",
        "{\"temperature\":0.0,\"stream\":true,\"user\":\"x\",\"stream_options\":{\"include_usage\":"
        "true},\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"other\"}",
        b);
    assert_string_equal(a, b);
    /* everything else does */
    key_of("default", "r",
           "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}", b);
    assert_string_not_equal(a, b);
    key_of("default", "r",
           "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0,\"seed\":1}",
           b);
    assert_string_not_equal(a, b);
    key_of("default", "r2",
           "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0}", b);
    assert_string_not_equal(a, b); /* the route */
    key_of("team", "r", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0}",
           b);
    assert_string_not_equal(a + 18, b + 15); /* the namespace is hashed too */
}

static void plan_for(const char *body, const struct route *rt, const char *cc, const char *ttl,
                     struct cache_plan *p, int *rc)
{
    struct config cfg = {0};
    struct request_info ri;
    struct api_error e = {0};

    cfg.cache.ttl_s = 3600;
    assert_int_equal(request_parse(EP_CHAT, body, strlen(body), &ri, &e), 0);
    *rc = cache_plan(&cfg, rt, &ri, NULL, NULL, cc, ttl, p, &e);
    request_info_free(&ri);
}

static void test_plan(void **state)
{
    struct route rt = {.name = "r", .cache = 1};
    struct cache_plan p;
    int rc;
    const char *det = "{\"model\":\"r\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";

    (void)state;
    plan_for(det, &rt, NULL, NULL, &p, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(p.status, CACHE_MISS);
    assert_true(p.lookup && p.store);
    assert_int_equal(p.ttl_s, 3600);
    plan_for("{\"model\":\"r\",\"temperature\":0.7,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"x\"}]}",
             &rt, NULL, NULL, &p, &rc);
    assert_int_equal(p.status, CACHE_BYPASS);
    assert_false(p.lookup || p.store);
    plan_for("{\"model\":\"r\",\"n\":3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &rt,
             NULL, NULL, &p, &rc);
    assert_int_equal(p.status, CACHE_BYPASS);
    plan_for(det, &rt, "max-age=0, No-Cache", "60", &p, &rc);
    assert_int_equal(p.status, CACHE_BYPASS);
    assert_false(p.lookup);
    assert_true(p.store);
    assert_int_equal(p.ttl_s, 60);
    plan_for(det, &rt, "no-store", NULL, &p, &rc);
    assert_false(p.lookup || p.store);
    plan_for(det, &rt, NULL, "0", &p, &rc);
    assert_int_equal(rc, -1);
    rt.cache_nondeterministic = 1;
    plan_for(
        "{\"model\":\"r\",\"temperature\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        &rt, NULL, NULL, &p, &rc);
    assert_int_equal(p.status, CACHE_MISS);
    rt.cache = 0;
    plan_for(det, &rt, NULL, NULL, &p, &rc);
    assert_int_equal(p.status, CACHE_OFF);
    rt.cache = 1;
    rt.cache_ttl_s = 5;
    plan_for(det, &rt, NULL, NULL, &p, &rc);
    assert_int_equal(p.ttl_s, 5);
}

static void test_entry(void **state)
{
    const char *body =
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"Hello "
        "there\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}";
    struct cache_entry e;
    struct request_info ri = {.ep = EP_CHAT};
    size_t len, olen;
    char *raw = cache_entry_encode("small", "mock", 0.00125, "small:1.00:accept", body,
                                   strlen(body), &len),
         *out;

    (void)state;
    assert_int_equal(cache_entry_decode(raw, len, &e), 0);
    assert_string_equal(e.model, "small");
    assert_string_equal(e.provider, "mock");
    assert_string_equal(e.stages, "small:1.00:accept");
    assert_true(e.cost == 0.00125);
    assert_int_equal(e.body_len, strlen(body));
    assert_memory_equal(e.body, body, e.body_len);
    assert_int_equal(cache_entry_render(&e, &ri, &out, &olen), 0);
    assert_string_equal(out, body);
    free(out);
    ri.stream = 1;
    ri.include_usage = 1;
    assert_int_equal(cache_entry_render(&e, &ri, &out, &olen), 0);
    assert_non_null(strstr(out, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"));
    assert_non_null(strstr(out, "Hello "));
    assert_non_null(strstr(out, "\"finish_reason\":\"stop\""));
    assert_non_null(strstr(out, "\"usage\":{"));
    assert_true(strlen(out) > 14 && strcmp(out + strlen(out) - 14, "data: [DONE]\n\n") == 0);
    free(out);
    cache_entry_free(&e);
    assert_int_equal(cache_entry_decode(xstrdup("junk"), 4, &e), -1);
    assert_int_equal(cache_entry_decode(xstrdup("SLC2 0.5\tm\tp\n{}"), 15, &e), -1);
    assert_int_equal(cache_entry_decode(xstrdup("SLC2 x\tm\tp\ts\n{}"), 17, &e), -1);
    assert_int_equal(cache_entry_decode(xstrdup("SLC2 1\tm\tp\ts\tt\n{}"), 19, &e), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_key_semantics),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
