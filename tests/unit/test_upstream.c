/* Unit tests for upstream.c, curl's multi interface on the loop, against a
 * loopback HTTP server (tests/common/http_server.h): a call sends its
 * method, headers and body and hears the body, the status and its timings;
 * any complete response is a success (a 500 too), Retry-After is read in
 * seconds and in milliseconds; each failure has its kind (connect refused,
 * no first byte in time, a stream gone idle, the total timeout, a server
 * that hung up, on_data asking to stop); a cancelled call is never heard
 * from again, even when cancelled from inside its own callback; many calls
 * run at once; and upstream_free with calls in flight calls nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "../common/http_server.h"
#include "../common/redis_server.h" /* test_free_port */
#include "../../src/loop.h"
#include "../../src/upstream.h"
#include "../../src/util.h"

/* ---- the server's answers, by path ---- */

static const char *const sse[] = {"data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n", "data: [DONE]\n\n",
                                  NULL};

static void server_cb(void *arg, const struct test_http_req *req, struct test_http_reply *out)
{
    (void)arg;
    if (strcmp(req->path, "/echo") == 0) {
        out->body = "{\"ok\":true}";
    } else if (strcmp(req->path, "/500") == 0) {
        out->status = 500;
        out->body = "{\"error\":{\"message\":\"boom\"}}";
    } else if (strcmp(req->path, "/retry-s") == 0) {
        out->status = 429;
        out->header_name = "Retry-After";
        out->header_value = "7";
    } else if (strcmp(req->path, "/retry-ms") == 0) {
        out->status = 503;
        out->header_name = "retry-after-ms";
        out->header_value = "250";
    } else if (strcmp(req->path, "/slow") == 0) {
        out->delay_ms = 1500;
    } else if (strcmp(req->path, "/stream") == 0) {
        out->content_type = "text/event-stream";
        out->chunks = sse;
        out->chunk_delay_ms = 10;
    } else if (strcmp(req->path, "/stall") == 0) {
        out->content_type = "text/event-stream";
        out->chunks = sse;
        out->chunk_delay_ms = 1500;
    } else if (strcmp(req->path, "/hangup") == 0) {
        out->hang_up = 1;
    } else {
        out->status = 404;
    }
}

/* ---- one call and what it said ---- */

struct result {
    struct loop *loop;
    struct buf body;
    int dones, datas;
    int abort_data;  /* on_data returns -1 */
    int cancel_self; /* on_data cancels the call */
    int stop_when;   /* stop the loop after this many calls ended */
    int *ended;      /* shared count of ended calls */
    char err[256];
    int has_err;
    long status, retry_after_ms;
    enum call_err kind;
    uint64_t ttfb_us, elapsed_us;
};

static int data_cb(struct call *c, const char *p, size_t n, void *arg)
{
    struct result *r = arg;

    r->datas++;
    r->status = call_status(c);
    if (r->cancel_self) {
        call_cancel(c);
        (*r->ended)++;
        if (*r->ended >= r->stop_when)
            loop_stop(r->loop);
        return 0;
    }
    if (r->abort_data)
        return -1;
    assert_int_equal(buf_append(&r->body, p, n), 0);
    return 0;
}

static void done_cb(struct call *c, const char *err, void *arg)
{
    struct result *r = arg;

    r->dones++;
    r->has_err = err != NULL;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
    r->status = call_status(c);
    r->kind = call_err(c);
    r->retry_after_ms = call_retry_after_ms(c);
    r->ttfb_us = call_ttfb_us(c);
    r->elapsed_us = call_elapsed_us(c);
    (*r->ended)++;
    if (*r->ended >= r->stop_when)
        loop_stop(r->loop);
}

static const struct call_ops ops = {data_cb, done_cb};

struct fix {
    struct test_http srv;
    struct loop *loop;
    struct upstream *up;
    struct loop_timer guard;
    int ended;
};

static void guard_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    UNUSED(arg);
    fail_msg("the calls did not end in 20 s");
}

static int setup(void **state)
{
    struct fix *f = xcalloc(1, sizeof(*f));

    test_http_start(&f->srv, server_cb, NULL);
    f->loop = loop_new();
    f->up = upstream_new(f->loop);
    loop_timer_init(&f->guard, guard_cb, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    upstream_free(f->up);
    loop_free(f->loop);
    test_http_stop(&f->srv);
    free(f);
    return 0;
}

static void result_init(struct fix *f, struct result *r, int stop_when)
{
    memset(r, 0, sizeof(*r));
    r->loop = f->loop;
    r->ended = &f->ended;
    r->stop_when = stop_when;
    buf_init(&r->body, 1 << 20);
}

/* Start a call to path with the given timeouts (ms; 0 = none). */
static struct call *call(struct fix *f, struct result *r, const char *path, long first_byte_ms,
                         long idle_ms, long total_ms)
{
    struct call_spec spec;

    call_spec_json(&spec, xasprintf("%s%s", f->srv.base, path), xstrdup("{\"q\":\"hi\"}"),
                   total_ms ? total_ms : 20000);
    spec.headers = curl_slist_append(spec.headers, "X-Test: yes");
    spec.first_byte_timeout_ms = first_byte_ms;
    spec.idle_timeout_ms = idle_ms;
    spec.timeout_ms = total_ms;
    return upstream_call(f->up, &spec, &ops, r);
}

static void run(struct fix *f)
{
    f->ended = 0;
    loop_timer_start(f->loop, &f->guard, 20000000);
    loop_run(f->loop);
    loop_timer_stop(f->loop, &f->guard);
}

static void test_post_and_answer(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/echo", 5000, 5000, 0);
    assert_int_equal(upstream_active(f->up), 1);
    run(f);
    assert_int_equal(r.dones, 1);
    assert_false(r.has_err);
    assert_int_equal(r.kind, CALL_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"ok\":true}");
    assert_true(r.ttfb_us > 0 && r.elapsed_us >= r.ttfb_us);
    assert_int_equal(r.retry_after_ms, -1);
    assert_int_equal(upstream_active(f->up), 0);
    /* what the server got */
    assert_int_equal(test_http_count(&f->srv), 1);
    assert_string_equal(f->srv.reqs[0].method, "POST");
    assert_string_equal(f->srv.reqs[0].body, "{\"q\":\"hi\"}");
    assert_non_null(strstr(f->srv.reqs[0].headers, "Content-Type: application/json\n"));
    assert_non_null(strstr(f->srv.reqs[0].headers, "X-Test: yes\n"));
    buf_free(&r.body);
}

static void test_status_and_retry_after(void **state)
{
    struct fix *f = *state;
    struct result a, b, c;

    result_init(f, &a, 3);
    result_init(f, &b, 3);
    result_init(f, &c, 3);
    call(f, &a, "/500", 5000, 5000, 0);
    call(f, &b, "/retry-s", 5000, 5000, 0);
    call(f, &c, "/retry-ms", 5000, 5000, 0);
    run(f);
    /* a complete response of any status is a success of the call */
    assert_false(a.has_err);
    assert_int_equal(a.status, 500);
    assert_non_null(strstr(a.body.data, "boom"));
    assert_int_equal(b.status, 429);
    assert_int_equal(b.retry_after_ms, 7000);
    assert_int_equal(c.status, 503);
    assert_int_equal(c.retry_after_ms, 250);
    buf_free(&a.body);
    buf_free(&b.body);
    buf_free(&c.body);
}

static void test_stream_chunks(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/stream", 5000, 5000, 0);
    run(f);
    assert_false(r.has_err);
    assert_string_equal(r.body.data, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n");
    assert_true(r.datas >= 1);
    buf_free(&r.body);
}

static void test_connect_refused(void **state)
{
    struct fix *f = *state;
    struct call_spec spec;
    struct result r;

    result_init(f, &r, 1);
    call_spec_json(&spec, xasprintf("http://127.0.0.1:%d/x", test_free_port()), xstrdup("{}"),
                   5000);
    upstream_call(f->up, &spec, &ops, &r);
    run(f);
    assert_true(r.has_err);
    assert_int_equal(r.kind, CALL_ERR_CONNECT);
    assert_int_equal(r.status, 0);
    buf_free(&r.body);
}

/* No first byte in 200 ms: the call ends before the server's answer. */
static void test_first_byte_timeout(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/slow", 200, 200, 20000);
    run(f);
    assert_true(r.has_err);
    assert_int_equal(r.kind, CALL_ERR_FIRST_BYTE);
    assert_true(r.elapsed_us >= 200000);
    buf_free(&r.body);
}

/* Headers came, then nothing for 200 ms: the stream is idle. */
static void test_idle_timeout(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/stall", 1000, 200, 20000);
    run(f);
    assert_true(r.has_err);
    assert_int_equal(r.kind, CALL_ERR_IDLE);
    assert_int_equal(r.status, 200); /* the headers came */
    assert_int_equal(r.body.len, 0); /* but not a byte of the body */
    buf_free(&r.body);
}

static void test_total_timeout(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/slow", 0, 0, 300); /* no first-byte deadline: the total one */
    run(f);
    assert_true(r.has_err);
    assert_int_equal(r.kind, CALL_ERR_TIMEOUT);
    buf_free(&r.body);
}

static void test_hang_up_and_abort(void **state)
{
    struct fix *f = *state;
    struct result a, b;

    result_init(f, &a, 2);
    result_init(f, &b, 2);
    b.abort_data = 1;
    call(f, &a, "/hangup", 5000, 5000, 0);
    call(f, &b, "/echo", 5000, 5000, 0);
    run(f);
    assert_true(a.has_err);
    assert_int_equal(a.kind, CALL_ERR_NETWORK);
    assert_true(b.has_err);
    assert_int_equal(b.kind, CALL_ERR_ABORTED);
    buf_free(&a.body);
    buf_free(&b.body);
}

/* Cancelled calls are never heard from: one before its answer, one from
 * inside its own on_data; a third call still ends normally. */
static void test_cancel(void **state)
{
    struct fix *f = *state;
    struct result a, b, c;
    struct call *ca;

    result_init(f, &a, 2);
    result_init(f, &b, 2);
    result_init(f, &c, 2);
    b.cancel_self = 1;
    ca = call(f, &a, "/slow", 5000, 5000, 0);
    call(f, &b, "/stream", 5000, 5000, 0);
    call(f, &c, "/echo", 5000, 5000, 0);
    call_cancel(ca);
    call_cancel(ca); /* twice is harmless */
    run(f);
    assert_int_equal(a.dones + a.datas, 0);
    assert_int_equal(b.datas, 1);
    assert_int_equal(b.dones, 0);
    assert_int_equal(c.dones, 1);
    assert_false(c.has_err);
    assert_int_equal(upstream_active(f->up), 0);
    buf_free(&a.body);
    buf_free(&b.body);
    buf_free(&c.body);
}

#define MANY 40

static void test_many_at_once(void **state)
{
    struct fix *f = *state;
    struct result *r = xcalloc(MANY, sizeof(*r));

    for (int i = 0; i < MANY; i++) {
        result_init(f, &r[i], MANY);
        call(f, &r[i], i % 2 ? "/echo" : "/stream", 10000, 10000, 0);
    }
    assert_int_equal(upstream_active(f->up), MANY);
    run(f);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(r[i].dones, 1);
        assert_false(r[i].has_err);
        assert_int_equal(r[i].status, 200);
        buf_free(&r[i].body);
    }
    assert_int_equal(test_http_count(&f->srv), MANY);
    free(r);
}

/* Shutdown with calls in flight: freed, no callback runs. */
static void test_free_in_flight(void **state)
{
    struct fix *f = *state;
    struct result r;

    result_init(f, &r, 1);
    call(f, &r, "/slow", 5000, 5000, 0);
    call(f, &r, "/stall", 5000, 5000, 0);
    upstream_free(f->up);
    f->up = upstream_new(f->loop); /* for teardown */
    assert_int_equal(r.dones + r.datas, 0);
    buf_free(&r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_and_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_up_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
    };

    alarm(180);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
