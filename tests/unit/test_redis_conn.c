/* Unit tests for one Redis connection (redis_conn.c) against a server that
 * accepts and never answers: the command buffer's cap refuses a command
 * without losing those queued before it, and deadlines answer "timeout"
 * in order, three in a row dropping the connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>

#include "../../src/redis_conn.c"

/* A listening socket on 127.0.0.1 that nobody reads: connects complete
 * (the kernel's backlog), commands are never answered. */
static int mute_server(char *addr, size_t n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, n, "127.0.0.1:%d", ntohs(sa.sin_port));
    return fd;
}

struct seen {
    int up, down, answers;
    char why[200];
    char errs[8][32];
    struct loop *loop;
};

static void ev_cb(void *arg, struct redis_conn *c, enum redis_conn_event ev, const char *why)
{
    struct seen *s = arg;

    (void)c;
    if (ev == REDIS_CONN_UP) {
        s->up++;
        loop_stop(s->loop);
    } else {
        s->down++;
        snprintf(s->why, sizeof(s->why), "%s", why);
        loop_stop(s->loop);
    }
}

static void answer_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct seen *s = arg;

    (void)reply;
    if (s->answers < 8)
        snprintf(s->errs[s->answers], sizeof(s->errs[0]), "%s", err ? err : "");
    s->answers++;
}

static const char PING[] = "*1\r\n$4\r\nPING\r\n";

static void test_out_cap(void **state)
{
    struct loop *loop = loop_new();
    struct redis_conn_opts o = {.timeout_ms = 1000, .connect_ms = 1000};
    struct seen s = {.loop = loop};
    char addr[64];
    int fd = mute_server(addr, sizeof(addr));
    struct redis_conn *c = redis_conn_new(loop, addr, &o, ev_cb, NULL, &s);

    (void)state;
    c->out.max = 20; /* room for one PING (14 bytes), not two */
    redis_conn_send(c, PING, sizeof(PING) - 1, answer_cb, &s);
    assert_int_equal(s.answers, 0);
    redis_conn_send(c, PING, sizeof(PING) - 1, answer_cb, &s);
    assert_int_equal(s.answers, 1);
    assert_string_equal(s.errs[0], "too many commands waiting");
    /* the first is still there, whole, and waits for its answer */
    assert_false(c->out.failed);
    assert_int_equal(c->out.len, sizeof(PING) - 1);
    assert_non_null(c->head);
    assert_null(c->head->next);
    redis_conn_free(c, 1);
    assert_int_equal(s.answers, 2);
    assert_string_equal(s.errs[1], "down");
    loop_free(loop);
    close(fd);
}

static void test_deadlines(void **state)
{
    struct loop *loop = loop_new();
    struct redis_conn_opts o = {.timeout_ms = 30, .connect_ms = 2000, .reconnect = 0};
    struct seen s = {.loop = loop};
    char addr[64];
    int fd = mute_server(addr, sizeof(addr));
    struct redis_conn *c = redis_conn_new(loop, addr, &o, ev_cb, NULL, &s);

    (void)state;
    loop_run(loop); /* until connected */
    assert_int_equal(s.up, 1);
    assert_true(redis_conn_ready(c));
    for (int i = 0; i < 3; i++)
        redis_conn_send(c, PING, sizeof(PING) - 1, answer_cb, &s);
    loop_run(loop); /* until dropped */
    assert_int_equal(s.answers, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(s.errs[i], "timeout");
    assert_int_equal(s.down, 1);
    assert_string_equal(s.why, "commands timed out");
    assert_string_equal(redis_conn_error(c), "commands timed out");
    /* down, without reconnect: a command fails at once */
    redis_conn_send(c, PING, sizeof(PING) - 1, answer_cb, &s);
    assert_int_equal(s.answers, 4);
    assert_string_equal(s.errs[3], "down");
    redis_conn_free(c, 1);
    loop_free(loop);
    close(fd);
}

static void test_refused(void **state)
{
    struct loop *loop = loop_new();
    struct redis_conn_opts o = {.timeout_ms = 30, .connect_ms = 2000};
    struct seen s = {.loop = loop};
    char addr[64];
    int fd = mute_server(addr, sizeof(addr));
    struct redis_conn *c;

    (void)state;
    close(fd); /* nobody listens there now */
    c = redis_conn_new(loop, addr, &o, ev_cb, NULL, &s);
    redis_conn_send(c, PING, sizeof(PING) - 1, answer_cb, &s); /* waits for the connect */
    loop_run(loop);
    assert_int_equal(s.down, 1);
    assert_non_null(strstr(s.why, "refused"));
    assert_int_equal(s.answers, 1);
    assert_string_equal(s.errs[0], "connection lost");
    redis_conn_free(c, 1);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_cap),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
