/* Unit tests for otel_export.c, the OTLP/HTTP exporter, against a loopback
 * collector (tests/common/http_server.h): the ExportTraceServiceRequest
 * body read back with an independent wire reader (the resource's
 * service.name, the spans inside as written), a body over the cap
 * refused; and the exporter thread end to end: a full batch goes out at
 * once as application/x-protobuf with the configured headers to
 * {endpoint}/v1/traces, a collector's failure is counted and not retried,
 * a full queue drops and counts, a trace over the size cap is counted,
 * and stopping sends what is queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http_server.h"
#include "../common/pbread.h"
#include "../../src/caps.h"
#include "../../src/config.h"
#include "../../src/otel_export.h"
#include "../../src/otlp.h"
#include "../../src/util.h"

static void test_export_body(void **state)
{
    struct otlp w;
    size_t span, len;
    char *body;
    struct pb r, rs, res, kv;
    struct pb_field f, g, h, k;
    int found = 0;

    (void)state;
    otlp_init(&w, 4096);
    span = otlp_open(&w, OTLP_SS_SPANS);
    otlp_bytes(&w, OTLP_SPAN_NAME, "s", 1);
    otlp_close(&w, span);
    {
        const char *part = w.b.data;
        size_t plen = w.b.len;

        body = otel_export_body("svc", &part, &plen, 1, &len);
    }
    assert_non_null(body);
    r = pb_of(body, len);
    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(f.num, OTLP_REQ_RESOURCE_SPANS);
    assert_int_equal(pb_next(&r, &f), 0);
    rs = pb_of(f.data, f.len);
    assert_int_equal(pb_next(&rs, &g), 1);
    assert_int_equal(g.num, OTLP_RS_RESOURCE);
    res = pb_of(g.data, g.len);
    while (pb_next(&res, &h) == 1) {
        kv = pb_of(h.data, h.len);
        assert_int_equal(pb_next(&kv, &k), 1);
        if (k.len == 12 && memcmp(k.data, "service.name", 12) == 0)
            found = 1;
    }
    assert_true(found);
    assert_int_equal(pb_next(&rs, &g), 1);
    assert_int_equal(g.num, OTLP_RS_SCOPE_SPANS);
    /* the span is inside, as written */
    assert_non_null(memmem(g.data, g.len, w.b.data, w.b.len));
    free(body);
    otlp_free(&w);
}

static void test_body_cap(void **state)
{
    size_t len;

    (void)state;
    assert_null(otel_export_head("svc", OTEL_EXPORT_MAX_BYTES, &len));
    assert_non_null(otel_export_head("svc", 1000, &len));
    free(otel_export_head("svc", 1000, &len));
}

/* ---- the exporter, end to end ---- */

static int collector_status = 200;

static void collector_cb(void *arg, const struct test_http_req *req, struct test_http_reply *out)
{
    (void)arg;
    (void)req;
    out->status = __atomic_load_n(&collector_status, __ATOMIC_RELAXED);
    out->content_type = "application/x-protobuf";
}

/* One request's trace of n spans, named "span-<id>-<i>". */
static void push_trace(int id, int n, long max_queue)
{
    struct otlp w;
    char name[48];

    otel_export_buffer(&w);
    for (int i = 0; i < n; i++) {
        size_t mark = otlp_open(&w, OTLP_SS_SPANS);

        snprintf(name, sizeof(name), "span-%d-%d", id, i);
        otlp_bytes(&w, OTLP_SPAN_NAME, name, strlen(name));
        otlp_close(&w, mark);
    }
    otel_export_push(&w, n, max_queue);
}

/* Spans in one export body: ResourceSpans > ScopeSpans > spans. */
static int spans_in(const struct test_http_req *req, const char *service)
{
    struct pb r = pb_of(req->body, req->len), rs, ss, res, kv, any;
    struct pb_field f, g, h, k, v;
    int n = 0, named = 0;

    assert_int_equal(pb_next(&r, &f), 1);
    rs = pb_of(f.data, f.len);
    while (pb_next(&rs, &g) == 1) {
        if (g.num == OTLP_RS_RESOURCE) {
            res = pb_of(g.data, g.len);
            while (pb_next(&res, &h) == 1) {
                kv = pb_of(h.data, h.len);
                assert_int_equal(pb_next(&kv, &k), 1);
                assert_int_equal(pb_next(&kv, &v), 1);
                any = pb_of(v.data, v.len);
                assert_int_equal(pb_next(&any, &v), 1);
                if (k.len == 12 && memcmp(k.data, "service.name", 12) == 0)
                    named = v.len == strlen(service) && memcmp(v.data, service, v.len) == 0;
            }
        } else if (g.num == OTLP_RS_SCOPE_SPANS) {
            ss = pb_of(g.data, g.len);
            while (pb_next(&ss, &h) == 1)
                n += h.num == OTLP_SS_SPANS;
        }
    }
    assert_true(named);
    return n;
}

/* Wait (up to 20 s) until the stats show `want` in field. */
#define WAIT_FOR(field, want)                                                                      \
    do {                                                                                           \
        struct otel_export_stats st_;                                                              \
        for (int i_ = 0; i_ < 2000; i_++) {                                                        \
            otel_export_stats(&st_);                                                               \
            if (st_.field >= (want))                                                               \
                break;                                                                             \
            usleep(10000);                                                                         \
        }                                                                                          \
        otel_export_stats(&st_);                                                                   \
        assert_int_equal(st_.field, (want));                                                       \
    } while (0)

static void test_exporter(void **state)
{
    struct test_http col;
    struct config_errors errs = {0};
    struct config *cfg;
    struct otel_export_stats st;
    char *text;
    int total = 0;

    (void)state;
    test_http_start(&col, collector_cb, NULL);
    setenv("TEST_OTEL_EXPORT_KEY", "k-123", 1);
    text = xasprintf(
        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://x/v1\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; input_per_mtok = 1.0; "
        "output_per_mtok = 1.0; } );\n"
        "otel = { endpoint = \"%s\"; service_name = \"svc-test\"; timeout_ms = 5000; "
        "headers = { x-project = \"p1\"; }; headers_env = { x-api-key = \"TEST_OTEL_EXPORT_KEY\"; "
        "}; };\n",
        col.base);
    cfg = config_load_string(text, "t", &errs);
    free(text);
    assert_non_null(cfg);
    config_swap(cfg);

    /* a whole batch wakes the exporter at once */
    for (int i = 0; i < OTEL_BATCH_SPANS / 4; i++)
        push_trace(i, 4, 100000);
    WAIT_FOR(exported, (uint64_t)OTEL_BATCH_SPANS);
    assert_int_equal(test_http_count(&col), 1);
    assert_string_equal(col.reqs[0].method, "POST");
    assert_string_equal(col.reqs[0].path, "/v1/traces");
    assert_non_null(strstr(col.reqs[0].headers, "Content-Type: application/x-protobuf\n"));
    assert_non_null(strstr(col.reqs[0].headers, "x-project: p1\n"));
    assert_non_null(strstr(col.reqs[0].headers, "x-api-key: k-123\n"));
    assert_int_equal(spans_in(&col.reqs[0], "svc-test"), OTEL_BATCH_SPANS);
    assert_non_null(memmem(col.reqs[0].body, col.reqs[0].len, "span-0-0", 8));
    assert_non_null(memmem(col.reqs[0].body, col.reqs[0].len, "span-127-3", 10));

    /* a collector that fails: the spans are counted as failed, not sent again */
    __atomic_store_n(&collector_status, 503, __ATOMIC_RELAXED);
    for (int i = 0; i < OTEL_BATCH_SPANS; i++)
        push_trace(1000 + i, 1, 100000);
    WAIT_FOR(failed, (uint64_t)OTEL_BATCH_SPANS);
    otel_export_stats(&st);
    assert_int_equal(st.exports, 2);
    __atomic_store_n(&collector_status, 200, __ATOMIC_RELAXED);

    /* the queue holds max_queue spans; past it they are dropped (the
     * exporter waits a second for a batch: these three come together) */
    push_trace(2000, 2, 5);
    push_trace(2001, 2, 5);
    push_trace(2002, 2, 5); /* 6 > 5 */
    otel_export_stats(&st);
    assert_int_equal(st.dropped, 2);
    assert_true(st.queued <= 4);
    total += 4;

    otel_export_drop_too_large(7);
    otel_export_stats(&st);
    assert_int_equal(st.too_large, 7);

    /* stopping sends what waits */
    otel_export_stop();
    otel_export_stats(&st);
    assert_int_equal(st.exported, (uint64_t)OTEL_BATCH_SPANS + (uint64_t)total);
    assert_int_equal(st.queued, 0);
    assert_int_equal(spans_in(&col.reqs[test_http_count(&col) - 1], "svc-test"), total);
    /* and after the stop, nothing more is queued */
    push_trace(3000, 1, 100000);
    otel_export_stats(&st);
    assert_int_equal(st.dropped, 3);
    config_swap(NULL);
    test_http_stop(&col);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_body),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_exporter),
    };

    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
