/* Unit tests for exchange.c, the request object the HTTP worker and the
 * loop share: the last reference (whoever drops it) runs the driver's end
 * hook once (test_observe checks phase.c's writes the one log line);
 * ex_resume and ex_answer reach the driver; responses, failures before and
 * during a stream, and a stream's end move the state once and only
 * forward; a slow client's stream stops at its buffer's cap, and when all
 * streams together hold max_stream_memory_bytes the one that is behind is
 * cut while one that keeps up goes on; what a worker took is given back;
 * a cache hit's meta is copied; and the hand-off itself: a connection
 * suspended by a real libmicrohttpd worker is resumed by ex_respond from
 * another thread, and the client gets its answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/unit.h"
#include "../../src/caps.h"
#include "../../src/exchange.h"
#include "../../src/log.h"
#include "../../src/metrics.h"

/* A config snapshot on the stack that no unref frees. */
static struct config cfg_with(size_t max_stream_memory)
{
    struct config c = {.refs = 1000, .max_stream_memory_bytes = max_stream_memory};

    return c;
}

static struct exchange *api_request(void)
{
    struct exchange *ex = ex_new(NULL, 1024);

    snprintf(ex->request_id, sizeof(ex->request_id), "req_test");
    snprintf(ex->method, sizeof(ex->method), "POST");
    snprintf(ex->path, sizeof(ex->path), "/v1/chat/completions");
    return ex;
}

static void test_respond_and_fail(void **state)
{
    struct api_error e;
    struct exchange *ex = api_request();

    (void)state;
    assert_int_equal(ex->state, EX_PENDING);
    assert_true(ex_client_gone(ex)); /* no connection: as after MHD finished with it */
    api_error_set(&e, 502, "api_error", "upstream_error", NULL, "no provider answered");
    ex_fail(ex, &e);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->status, 502);
    assert_string_equal(ex->err.message, "no provider answered");
    /* once done, a later failure changes nothing */
    api_error_set(&e, 500, "api_error", NULL, NULL, "late");
    ex_fail(ex, &e);
    assert_int_equal(ex->status, 502);
    assert_string_equal(ex->err.message, "no provider answered");
    ex_unref(ex);

    ex = api_request();
    ex_respond(ex, 201, strdup("{\"a\":1}"), 7);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->status, 201);
    assert_int_equal(ex->out.len, 7);
    assert_memory_equal(ex->out.data, "{\"a\":1}", 7);
    assert_false(ex->streamed);
    ex_unref(ex);

    /* a whole event stream at once (a cache hit replayed) */
    ex = api_request();
    ex_respond_sse(ex, strdup("data: [DONE]\n\n"), 14);
    assert_int_equal(ex->state, EX_DONE);
    assert_true(ex->streamed);
    assert_int_equal(ex->status, 200);
    ex_unref(ex);
}

static void test_stream(void **state)
{
    struct api_error e;
    struct exchange *ex = api_request();

    (void)state;
    ex->meta.model = "m";
    ex_stream_begin(ex);
    assert_int_equal(ex->state, EX_STREAMING);
    assert_int_equal(ex->status, 200);
    assert_int_equal(ex_stream_write(ex, "data: a\n\n", 9), 0);
    assert_int_equal(ex_stream_write(ex, "data: b\n\n", 9), 0);
    assert_int_equal(ex->out.len, 18);
    /* the worker took the first event: the next write drops it */
    ex->out_off = 9;
    assert_int_equal(ex_stream_write(ex, "data: c\n\n", 9), 0);
    assert_int_equal(ex->out_off, 0);
    assert_memory_equal(ex->out.data, "data: b\n\ndata: c\n\n", 18);
    /* a failure mid-stream keeps the 200 already sent and ends the stream */
    api_error_set(&e, 502, "api_error", NULL, NULL, "upstream reset");
    ex_fail(ex, &e);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->status, 200);
    assert_int_equal(ex->err.status, 502);
    ex_stream_end(ex); /* already done: nothing */
    assert_int_equal(ex->state, EX_DONE);
    ex_unref(ex);

    ex = api_request();
    ex_stream_begin(ex);
    ex_stream_end(ex);
    assert_int_equal(ex->state, EX_DONE);
    assert_int_equal(ex->err.status, 0);
    ex_unref(ex);
}

/* Every stream's buffer is counted; the count goes back to what it was
 * when the streams end. All streams together over the cap: the stream that
 * is behind (STREAM_KEEP_BYTES waiting) is cut, the one keeping up goes
 * on. */
static void test_stream_memory(void **state)
{
    struct config cfg = cfg_with(STREAM_KEEP_BYTES * 3);
    struct exchange *slow = api_request(), *fast = api_request();
    size_t base = ex_stream_memory();
    char *chunk = calloc(1, STREAM_KEEP_BYTES);

    (void)state;
    slow->cfg = &cfg;
    fast->cfg = &cfg;
    ex_stream_begin(slow);
    ex_stream_begin(fast);
    assert_int_equal(ex_stream_write(slow, chunk, STREAM_KEEP_BYTES), 0);
    assert_int_equal(ex_stream_write(slow, chunk, STREAM_KEEP_BYTES), 0);
    assert_true(ex_stream_memory() >= base + 2 * STREAM_KEEP_BYTES);
    assert_int_equal(ex_stream_write(fast, chunk, 1000), 0);
    /* a third block would pass the cap: the slow one gives way */
    assert_int_equal(ex_stream_write(slow, chunk, STREAM_KEEP_BYTES), EX_STREAM_MEMORY_FULL);
    /* the fast client took what it had: its next write fits */
    fast->out_off = fast->out.len;
    assert_int_equal(ex_stream_write(fast, chunk, 1000), 0);
    ex_stream_end(slow);
    ex_stream_end(fast);
    ex_unref(slow);
    ex_unref(fast);
    assert_int_equal(ex_stream_memory(), base);
    free(chunk);
}

/* A drained buffer that grew for a burst gives its memory back. */
static void test_drained_buffer_freed(void **state)
{
    struct exchange *ex = api_request();
    char *chunk = calloc(1, 4 * STREAM_KEEP_BYTES);
    size_t base = ex_stream_memory();

    (void)state;
    ex_stream_begin(ex);
    assert_int_equal(ex_stream_write(ex, chunk, 4 * STREAM_KEEP_BYTES), 0);
    assert_true(ex_stream_memory() >= base + 4 * STREAM_KEEP_BYTES);
    ex->out_off = ex->out.len; /* the worker sent it all */
    assert_int_equal(ex_stream_write(ex, "x", 1), 0);
    assert_true(ex_stream_memory() < base + STREAM_KEEP_BYTES);
    ex_stream_end(ex);
    ex_unref(ex);
    assert_int_equal(ex_stream_memory(), base);
    free(chunk);
}

/* The worker takes events as the client reads them: a buffer it took all
 * of is freed at once, so an open stream that waits for its next event
 * holds no buffer; one it took part of keeps the rest. */
static void test_taken_buffer_freed(void **state)
{
    struct exchange *ex = api_request();
    size_t base = ex_stream_memory();
    char dst[16];

    (void)state;
    ex_stream_begin(ex);
    assert_int_equal(ex_stream_write(ex, "data: abc\n\n", 11), 0);
    assert_true(ex_stream_memory() > base);
    pthread_mutex_lock(&ex->mu);
    assert_int_equal(ex_stream_take_locked(ex, dst, 6), 6);
    assert_memory_equal(dst, "data: ", 6);
    assert_non_null(ex->out.data); /* the rest still waits */
    assert_int_equal(ex_stream_take_locked(ex, dst, sizeof(dst)), 5);
    assert_memory_equal(dst, "abc\n\n", 5);
    assert_null(ex->out.data);
    assert_int_equal(ex->out_off, 0);
    pthread_mutex_unlock(&ex->mu);
    assert_int_equal(ex_stream_memory(), base);
    /* the next event starts a new buffer */
    assert_int_equal(ex_stream_write(ex, "data: d\n\n", 9), 0);
    assert_memory_equal(ex->out.data, "data: d\n\n", 9);
    ex_stream_end(ex);
    ex_unref(ex);
    assert_int_equal(ex_stream_memory(), base);
}

static void test_cached_meta(void **state)
{
    struct exchange *ex = api_request();
    char model[] = "gpt-small", provider[] = "openai";

    (void)state;
    ex->meta.cost_usd = 1;
    ex_set_cached_meta(ex, model, provider, "gpt-small:0.9:accept", 0.25);
    model[0] = 'X'; /* copied, not borrowed */
    provider[0] = 'X';
    assert_string_equal(ex->meta.model, "gpt-small");
    assert_string_equal(ex->meta.provider, "openai");
    assert_string_equal(ex->meta.stages.data, "gpt-small:0.9:accept");
    assert_float_equal(ex->meta.cost_usd, 0, 0); /* a hit costs nothing now */
    assert_float_equal(ex->meta.saved_cost, 0.25, 1e-12);
    ex_unref(ex);
}

/* The phases reach their driver through the exchange: ex_resume and
 * ex_answer go to it, and the last unref runs its end hook once. */
static int resumed[3], answered_len = -1, ended;

static void fake_resume_cb(struct exchange *ex, enum phase_result r)
{
    resumed[r]++;
    ex_unref(ex);
}

static void fake_answer_cb(struct exchange *ex, const char *body, size_t len)
{
    (void)ex;
    answered_len = body ? (int)len : 0;
}

static void fake_end_cb(struct exchange *ex)
{
    (void)ex;
    ended++;
}

static void test_driver_hooks(void **state)
{
    static const struct ex_driver fake = {fake_resume_cb, fake_answer_cb, fake_end_cb};
    struct exchange *ex = ex_new(NULL, 0);

    (void)state;
    ex->driver = &fake;
    ex_ref(ex);
    ex_ref(ex);
    ex_answer(ex, "{\"a\":1}", 7);
    assert_int_equal(answered_len, 7);
    ex_resume(ex, PHASE_NEXT);
    ex_resume(ex, PHASE_DONE);
    assert_int_equal(resumed[PHASE_NEXT], 1);
    assert_int_equal(resumed[PHASE_DONE], 1);
    assert_int_equal(ended, 0); /* the caller's reference is left */
    ex_unref(ex);
    assert_int_equal(ended, 1);
}

/* A phase run alone (no driver): a resume gives the reference back, and
 * an answer goes nowhere. */
static void test_no_driver(void **state)
{
    struct exchange *ex = ex_new(NULL, 0);

    (void)state;
    ex_ref(ex);
    ex_answer(ex, "{}", 2);
    ex_resume(ex, PHASE_DONE);
    assert_int_equal(ex->refs, 1);
    ex_unref(ex);
}

/* ---- the hand-off, with a real libmicrohttpd worker ---- */

/* "The loop": answer a while after the worker suspended. */
static void *answer_main(void *arg)
{
    struct exchange *ex = arg;

    usleep(20000);
    ex_respond(ex, 200, strdup("{\"answer\":42}"), 13);
    ex_unref(ex);
    return NULL;
}

static enum MHD_Result handler_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result r;
    pthread_t th;

    (void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
    if (ex == NULL) {
        ex = ex_new(conn, 0);
        *con_cls = ex;
        return MHD_YES;
    }
    pthread_mutex_lock(&ex->mu);
    if (ex->state != EX_DONE) {
        /* as http.c does: suspend under the mutex, so no resume is lost */
        ex->suspended = 1;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&ex->mu);
        pthread_create(&th, NULL, answer_main, ex_ref(ex));
        pthread_detach(th);
        return MHD_YES;
    }
    pthread_mutex_unlock(&ex->mu);
    resp = MHD_create_response_from_buffer(ex->out.len, ex->out.data, MHD_RESPMEM_MUST_COPY);
    r = MHD_queue_response(conn, (unsigned)ex->status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct exchange *ex = *con_cls;

    (void)cls, (void)conn, (void)toe;
    if (ex) {
        pthread_mutex_lock(&ex->mu);
        ex->conn = NULL;
        pthread_mutex_unlock(&ex->mu);
        ex_unref(ex);
    }
}

static size_t collect_cb(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static void test_resume_from_another_thread(void **state)
{
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        handler_cb, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info;
    char url[64];
    struct buf body;
    long status = 0;

    (void)state;
    assert_non_null(d);
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", info->port);
    for (int i = 0; i < 20; i++) {
        CURL *c = curl_easy_init();

        buf_init(&body, 1024);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        assert_string_equal(body.data, "{\"answer\":42}");
        buf_free(&body);
        curl_easy_cleanup(c);
    }
    MHD_stop_daemon(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_respond_and_fail),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_memory),
        cmocka_unit_test(test_drained_buffer_freed),
        cmocka_unit_test(test_taken_buffer_freed),
        cmocka_unit_test(test_cached_meta),
        cmocka_unit_test(test_driver_hooks),
        cmocka_unit_test(test_no_driver),
        cmocka_unit_test(test_resume_from_another_thread),
    };

    alarm(120);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
