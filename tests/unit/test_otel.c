/* Unit tests for the tracer (otel.c): W3C trace context, sampling, a
 * cascade's span tree read back with an independent wire reader, the otel
 * config block. The exporter is test_otel_export.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/otel.c"
#include "../../src/phase.h"
#include "../common/pbread.h"

static void test_traceparent(void **state)
{
    struct otel_ctx c;
    char out[56];
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* short */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 + extra */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
    };

    (void)state;
    assert_int_equal(otel_traceparent_parse(ok, &c), 0);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.span_id[7], 0xb7);
    assert_int_equal(c.flags, 1);
    otel_traceparent_format(c.trace_id, be_u64(c.span_id), 1, out);
    assert_string_equal(out, ok);
    /* A later version's extra fields are allowed, after a dash. */
    assert_int_equal(
        otel_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what", &c),
        0);
    assert_int_equal(c.flags, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(otel_traceparent_parse(bad[i], &c), -1);
    assert_int_equal(otel_traceparent_parse(NULL, &c), -1);
}

static void test_tracestate(void **state)
{
    char big[600];

    (void)state;
    assert_true(otel_tracestate_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_false(otel_tracestate_ok(""));
    assert_false(otel_tracestate_ok("a=b\r\nx: y"));
    assert_false(otel_tracestate_ok("caf\xc3\xa9=1"));
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(otel_tracestate_ok(big));
}

static void test_ratio(void **state)
{
    uint8_t id[16];
    int hits = 0;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        u64_be(random_u64(), id);
        u64_be(random_u64(), id + 8);
        assert_false(ratio_sampled(id, 0));
        assert_true(ratio_sampled(id, 1));
        hits += ratio_sampled(id, 0.25);
    }
    assert_true(hits > 4500 && hits < 5500);
}

/* Count the spans in an encoded trace and find the one named `name`. */
static int spans_named(const struct otlp *w, const char *name, struct pb_field *span)
{
    struct pb r = pb_of(w->b.data, w->b.len);
    struct pb_field f, g;
    int n = 0;

    while (pb_next(&r, &f) == 1) {
        struct pb s = pb_of(f.data, f.len);

        assert_int_equal(f.num, OTLP_SS_SPANS);
        while (pb_next(&s, &g) == 1)
            if (g.num == OTLP_SPAN_NAME && g.len == strlen(name) &&
                memcmp(g.data, name, g.len) == 0) {
                *span = f;
                n++;
            }
    }
    return n;
}

/* The 8-byte parent id of an encoded span, or 0. */
static uint64_t parent_of(const struct pb_field *span)
{
    struct pb s = pb_of(span->data, span->len);
    struct pb_field g;

    while (pb_next(&s, &g) == 1)
        if (g.num == OTLP_SPAN_PARENT_SPAN_ID && g.len == 8)
            return be_u64(g.data);
    return 0;
}

static const char CONF[] =
    "otel = { endpoint = \"http://127.0.0.1:1\"; sample_ratio = 1.0; timeout_ms = 100; };\n"
    "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://127.0.0.1:1/v1\"; } );\n"
    "models = ( { name = \"m\"; provider = \"p\"; id = \"m-1\"; input_per_mtok = 1.0; "
    "output_per_mtok = 2.0; } );\n"
    "routes = ( { name = \"c\"; cascade = ( { model = \"m\"; scorer = \"rules\"; threshold = 1.0; "
    "}, { model = \"m\"; } ); } );\n";

/* A cascade's spans, as the hooks write them, under a client's trace. */
static void test_span_tree(void **state)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load_string(CONF, "test", &errs);
    struct exchange *ex;
    struct otel_call oc;
    struct curl_slist *h = NULL;
    struct reply r;
    struct pb_field span;
    struct otel_export_stats st;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    (void)state;
    assert_non_null(cfg);
    config_swap(config_ref(cfg));
    ex = ex_new(NULL, 1024);
    ex->driver = &phase_driver; /* its last unref runs the observe step */
    ex->cfg = cfg;
    ex->route = config_route(cfg, "c");
    snprintf(ex->method, sizeof(ex->method), "POST");
    snprintf(ex->path, sizeof(ex->path), "/v1/chat/completions");
    otel_request_begin(ex, tp, "k=v");
    assert_non_null(ex->otel);
    assert_true(ex->otel->sampled);
    otel_run_begin(ex);
    assert_true(ex->otel->chain_id != 0);

    otel_call_begin(ex, &oc, &h);
    assert_non_null(h);
    assert_true(strncmp(h->data, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-", 49) == 0);
    assert_string_equal(h->next->data, "tracestate: k=v");
    curl_slist_free_all(h);
    reply_init(&r);
    r.has_usage = 1;
    r.prompt_tokens = 10;
    r.completion_tokens = 5;
    snprintf(r.finish_reason, sizeof(r.finish_reason), "stop");
    {
        struct otel_call_info ci = {.model = &cfg->models[0],
                                    .role = "answer",
                                    .stage = 0,
                                    .ep = EP_CHAT,
                                    .status = 200,
                                    .reply = &r};
        struct otel_verdict v = {.stage = 0,
                                 .model = "m",
                                 .scorer = "rules",
                                 .has_score = 1,
                                 .score = 1.0,
                                 .threshold = 1.0,
                                 .decision = "accept",
                                 .t0_us = now_us()};

        otel_call_end(ex, &oc, &ci);
        assert_int_equal(oc.span_id, 0);
        otel_verdict(ex, &v);
    }
    reply_free(&r);
    otel_run_end(ex);
    assert_false(otlp_failed(&ex->otel->w));
    assert_int_equal(ex->otel->nspans, 3);
    {
        uint64_t chain_parent, llm_parent;
        struct pb_field chain;

        assert_int_equal(spans_named(&ex->otel->w, "cascade c", &chain), 1);
        chain_parent = parent_of(&chain);
        assert_true(chain_parent == ex->otel->server_id);
        assert_int_equal(spans_named(&ex->otel->w, "chat m-1", &span), 1);
        llm_parent = parent_of(&span);
        assert_int_equal(spans_named(&ex->otel->w, "stage 0 rules", &span), 1);
        assert_true(llm_parent == parent_of(&span)); /* both under the chain */
        assert_true(llm_parent != chain_parent);
    }
    /* The last unref (the observe step's on_end) ends the SERVER span and
     * queues the trace. */
    ex->client_status = 200;
    ex->t_end_us = now_us();
    ex_unref(ex);
    otel_export_stats(&st);
    assert_int_equal(st.queued + st.failed + st.exported, 4);
    otel_export_stop(); /* one export to a dead port, then the thread ends */
    otel_export_stats(&st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.failed + st.dropped, 4);
    config_swap(NULL);
}

static void test_unsampled(void **state)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load_string(CONF, "test", &errs);
    struct exchange *ex = ex_new(NULL, 1024);
    struct otel_call oc;
    struct curl_slist *h = NULL;

    (void)state;
    ex->cfg = cfg;
    /* The client's sampled flag is 0: nothing recorded, context passed on. */
    otel_request_begin(ex, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL);
    assert_non_null(ex->otel);
    assert_false(ex->otel->sampled);
    otel_call_begin(ex, &oc, &h);
    assert_true(strlen(h->data) == 13 + 55 && h->data[13 + 54] == '0');
    curl_slist_free_all(h);
    otel_request_end(ex);
    assert_null(ex->otel);
    ex_unref(ex);
}

static void test_config(void **state)
{
    struct config_errors errs = {0};
    struct config *cfg;
    static const char base[] =
        "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"http://x/v1\"; } );\n"
        "models = ( { name = \"m\"; provider = \"p\"; input_per_mtok = 1.0; output_per_mtok = 1.0; "
        "} "
        ");\n";
    char *text;

    (void)state;
    setenv("TEST_OTEL_KEY", "secret-value", 1);
    text =
        xasprintf("%sotel = { endpoint = \"https://api.smith.langchain.com/otel/\"; headers = { "
                  "Langsmith-Project = \"p1\"; }; headers_env = { x-api-key = \"TEST_OTEL_KEY\"; "
                  "x-unset = \"TEST_OTEL_UNSET\"; }; };\n",
                  base);
    cfg = config_load_string(text, "t", &errs);
    free(text);
    assert_non_null(cfg);
    assert_string_equal(cfg->otel.endpoint, "https://api.smith.langchain.com/otel");
    assert_int_equal(cfg->otel.nheaders, 2); /* the unset variable sends nothing */
    assert_string_equal(cfg->otel.headers[1].name, "x-api-key");
    assert_string_equal(cfg->otel.headers[1].value, "secret-value");
    assert_string_equal(cfg->otel.service_name, "sluice");
    assert_true(cfg->otel.sample_ratio == 1.0);
    assert_false(cfg->otel.capture_content);
    config_unref(cfg);

    text = xasprintf("%sotel = { endpoint = \"ftp://x\"; headers = { x-api-key = \"k\"; }; "
                     "headers_env = { a = \"not a name\"; }; sample_ratio = 2.0; max_queue = 0; "
                     "colour = 1; };\n",
                     base);
    cfg = config_load_string(text, "t", &errs);
    free(text);
    assert_null(cfg);
    {
        int endpoint = 0, secret = 0, env = 0, ratio = 0, queue = 0, unknown = 0;

        for (size_t i = 0; i < errs.n; i++) {
            endpoint |= strstr(errs.msgs[i], "otel.endpoint") != NULL;
            secret |= strstr(errs.msgs[i], "otel.headers.x-api-key: secrets never live") != NULL;
            env |= strstr(errs.msgs[i], "otel.headers_env.a: must be the NAME") != NULL;
            ratio |= strstr(errs.msgs[i], "otel.sample_ratio") != NULL;
            queue |= strstr(errs.msgs[i], "otel.max_queue") != NULL;
            unknown |= strstr(errs.msgs[i], "otel.colour: unknown key") != NULL;
        }
        assert_true(endpoint && secret && env && ratio && queue && unknown);
    }
    config_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent), cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_ratio),       cmocka_unit_test(test_config),
        cmocka_unit_test(test_unsampled),   cmocka_unit_test(test_span_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
