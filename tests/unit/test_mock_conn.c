/* Unit tests for sluice-mock's connections (src/mock/mock_conn.c) on a real
 * loop and loopback sockets, with the real endpoints behind them:
 * pipelined requests answered in order, "Expect: 100-continue", a request
 * that cannot be parsed (its error, then the close), the first-byte delay,
 * the reset and hang faults, streams whole, cut short by the truncate fault
 * or left by their client, and the counts /_mock/stats gives of them. The
 * mock's sources are included whole (they are not in the library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../src/mock/mock_anthropic.c"
#include "../../src/mock/mock_conn.c"
#include "../../src/mock/mock_ctl.c"
#include "../../src/mock/mock_ep.c"
#include "../../src/mock/mock_gen.c"
#include "../../src/mock/mock_http.c"
#include "../../src/mock/mock_replay.c"
#include "../../src/mock/mock_reply.c"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

static struct loop *L;
static pthread_t T;
static int port;

static void *loop_main(void *arg)
{
    UNUSED(arg);
    loop_run(L);
    return NULL;
}

static int setup(void **state)
{
    struct mock_ep_opts o = {.chunks = 5};
    char shown[64];
    const char *colon;

    UNUSED(state);
    alarm(120); /* a hang fails the run instead of stalling it */
    signal(SIGPIPE, SIG_IGN);
    mock_ep_init(&o, NULL, NULL);
    L = loop_new();
    assert_int_equal(
        mock_conn_listen(L, "127.0.0.1:0", mock_ep_request_cb, NULL, shown, sizeof(shown)), 0);
    colon = strrchr(shown, ':');
    assert_non_null(colon);
    port = (int)strtol(colon + 1, NULL, 10);
    assert_true(port > 0);
    assert_int_equal(pthread_create(&T, NULL, loop_main, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    UNUSED(state);
    loop_stop(L);
    pthread_join(T, NULL);
    mock_conn_close_all();
    loop_free(L);
    mock_ep_free();
    return 0;
}

/* A blocking client socket to the mock; reads give up after 10 s. */
static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);

    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read until the mock closes (or `until` shows up, when not NULL) into a
 * malloc'd string. *rc gets the last recv's result and errno's meaning
 * (0 at an orderly close, -ECONNRESET at a reset). */
static char *read_all(int fd, const char *until, int *rc)
{
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap + 1);

    *rc = 0;
    for (;;) {
        ssize_t n;

        out[len] = '\0';
        if (until && strstr(out, until))
            return out;
        if (len == cap)
            out = xrealloc(out, (cap *= 2) + 1);
        n = recv(fd, out + len, cap - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        *rc = n == 0 ? 0 : -errno;
        out[len] = '\0';
        return out;
    }
}

/* One exchange on a new connection: send raw, read to the close. */
static char *talk(const char *raw, int *rc)
{
    int fd = dial();
    char *out;

    send_all(fd, raw);
    out = read_all(fd, NULL, rc);
    close(fd);
    return out;
}

/* POST /v1/chat/completions with this body on fd, keeping the connection. */
static void post(int fd, const char *body)
{
    char head[200];

    snprintf(head, sizeof(head),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    send_all(fd, head);
    send_all(fd, body);
}

static void has(const char *text, const char *words)
{
    if (strstr(text, words) == NULL)
        fail_msg("'%.2000s' lacks '%s'", text, words);
}

/* POST /v1/chat/completions with this "mock" object (and stream), closing
 * the connection after it. */
static char *chat(const char *mock, int stream, int *rc)
{
    char body[512], raw[1024];

    snprintf(body, sizeof(body),
             "{\"model\":\"mock-small\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}],\"mock\":%s}",
             stream ? "true" : "false", mock);
    snprintf(raw, sizeof(raw),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return talk(raw, rc);
}

/* /_mock/stats's count `name`. */
static long long stat_of(const char *name)
{
    int rc;
    char *out = talk("GET /_mock/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &rc);
    json_t *j = json_loads(strstr(out, "\r\n\r\n") + 4, 0, NULL);
    long long v;

    assert_non_null(j);
    v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    free(out);
    return v;
}

/* Wait (up to 10 s) for /_mock/stats's `name` to be want. */
static void wait_stat(const char *name, long long want)
{
    for (int i = 0; i < 1000 && stat_of(name) != want; i++)
        usleep(10000);
    assert_int_equal(stat_of(name), want);
}

static void reset_stats(void)
{
    int rc;

    free(talk("POST /_mock/reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &rc));
}

static void test_pipelined(void **state)
{
    int rc;
    char *out, *first, *second;

    UNUSED(state);
    out = talk("GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /v1/models/mock-large HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /v1/models/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
               &rc);
    assert_int_equal(rc, 0);
    first = strstr(out, "{\"status\":\"ok\"}");
    second = strstr(out, "\"id\":\"mock-large\"");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    has(second, "HTTP/1.1 404 Not Found");
    has(out, "x-request-id: req_mock_");
    free(out);
}

static void test_continue_and_bad_request(void **state)
{
    static const char body[] = "{\"model\":\"mock-small\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"hi\"}]}";
    char head[256], *out;
    int fd = dial(), rc;

    UNUSED(state);
    snprintf(head, sizeof(head),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
             "Connection: close\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    send_all(fd, head);
    out = read_all(fd, "\r\n\r\n", &rc);
    assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
    free(out);
    send_all(fd, body);
    out = read_all(fd, NULL, &rc);
    has(out, "HTTP/1.1 200 OK");
    has(out, "\"chat.completion\"");
    free(out);
    close(fd);

    /* A request that cannot be parsed: its error, then the close. */
    out = talk("GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
               "GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n",
               &rc);
    assert_int_equal(rc, 0);
    has(out, "HTTP/1.1 400 Bad Request");
    has(out, "Connection: close");
    has(out, "conflicting Content-Length headers");
    assert_null(strstr(out, "\"ok\""));
    free(out);
}

static void test_delay_reset_hang(void **state)
{
    int rc, fd;
    uint64_t t0 = now_ms();
    char *out;

    UNUSED(state);
    out = chat("{\"first_byte_ms\":150}", 0, &rc);
    assert_true(now_ms() - t0 >= 150);
    has(out, "HTTP/1.1 200 OK");
    free(out);

    out = chat("{\"fault\":\"reset\"}", 0, &rc);
    assert_int_equal(rc, -ECONNRESET);
    assert_string_equal(out, "");
    free(out);

    /* A hung request holds its connection until the client leaves. */
    reset_stats();
    fd = dial();
    post(fd, "{\"model\":\"m\",\"mock\":{\"fault\":\"hang\"},\"messages\":[]}");
    wait_stat("faults", 1);
    wait_stat("active", 1);
    close(fd);
    wait_stat("active", 0);
}

static void test_streams(void **state)
{
    int rc, fd;
    char *out;

    UNUSED(state);
    reset_stats();
    out = chat("{\"chunks\":3,\"content\":\"one two three\"}", 1, &rc);
    assert_int_equal(rc, 0);
    has(out, "Transfer-Encoding: chunked");
    has(out, "data: [DONE]");
    assert_non_null(strstr(out, "0\r\n\r\n")); /* the chunked terminator */
    free(out);
    wait_stat("streams_completed", 1);
    assert_int_equal(stat_of("streams_started"), 1);

    /* truncate: about half the content, then a close without [DONE]. */
    out = chat("{\"chunks\":6,\"fault\":\"truncate\"}", 1, &rc);
    has(out, "data: {");
    assert_null(strstr(out, "[DONE]"));
    free(out);

    /* A client that leaves a slow stream aborts it. */
    fd = dial();
    post(fd, "{\"model\":\"mock-small\",\"stream\":true,\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}],\"mock\":{\"chunks\":5,\"interval_ms\":60000}}");
    out = read_all(fd, "data: ", &rc);
    has(out, "text/event-stream");
    free(out);
    assert_int_equal(stat_of("streams_active"), 1);
    close(fd);
    wait_stat("streams_aborted", 1);
    assert_int_equal(stat_of("streams_active"), 0);
    assert_int_equal(stat_of("streams_completed"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_continue_and_bad_request),
        cmocka_unit_test(test_delay_reset_hang),
        cmocka_unit_test(test_streams),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
