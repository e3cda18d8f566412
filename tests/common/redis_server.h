/* redis_server.h - a throwaway redis-server for the unit tests of modules
 * that talk to Redis (the real server, as the integration tests use):
 * started on a free 127.0.0.1 port with nothing saved, stopped with
 * SIGKILL. Include it after <cmocka.h>. */
#ifndef SLUICE_TEST_REDIS_SERVER_H
#define SLUICE_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct test_redis {
    pid_t pid;
    int port;
    char url[64];    /* redis://127.0.0.1:PORT/0 */
    redisContext *c; /* a blocking client, for the test's own look */
};

/* A port nobody listens on now. */
static inline int test_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Start redis-server and wait (up to 10 s) until it answers PING. */
static inline void test_redis_start(struct test_redis *t)
{
    char port[16];

    t->port = test_free_port();
    snprintf(port, sizeof(port), "%d", t->port);
    snprintf(t->url, sizeof(t->url), "redis://127.0.0.1:%d/0", t->port);
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        redisContext *c = redisConnect("127.0.0.1", t->port);

        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");

            if (r && r->type == REDIS_REPLY_STATUS) {
                freeReplyObject(r);
                t->c = c;
                return;
            }
            if (r)
                freeReplyObject(r);
        }
        if (c)
            redisFree(c);
        usleep(10000);
    }
    fail_msg("redis-server did not start on port %d (is it installed? make deps-test)", t->port);
}

static inline void test_redis_stop(struct test_redis *t)
{
    if (t->c)
        redisFree(t->c);
    t->c = NULL;
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
    }
    t->pid = 0;
}

#endif
