/* Unit tests for the Redis client's own logic (redis.c): the slot map a
 * CLUSTER SLOTS answer makes, where
 * commands go (keys, EVAL's first key, hash tags), a MOVED redirection
 * followed and remembered. No server: the loop is never run, so the
 * connections stay unconnected and their commands wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../src/redis.c"

static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static struct redis *cluster_client(struct loop *loop)
{
    char *seeds[] = {"127.0.0.1:1"};
    struct redis_conf conf = {.cluster_nodes = seeds, .ncluster_nodes = 1, .timeout_ms = 20};
    char err[200];
    struct redis *r = redis_new(loop, &conf, err, sizeof(err));

    assert_non_null(r);
    assert_true(redis_is_cluster(r));
    return r;
}

static const char THREE_MASTERS[] =
    "*3\r\n"
    "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
    "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7002\r\n"
    "*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7003\r\n";

static void test_slot_map(void **state)
{
    struct loop *loop = loop_new();
    struct redis *r = cluster_client(loop);
    char masters[8][REDIS_ADDR_MAX];
    redisReply *reply = resp(THREE_MASTERS);

    (void)state;
    r->refreshing = 1;
    slots_cb(r, NULL, reply);
    freeReplyObject(reply);
    assert_false(r->refreshing);
    assert_true(r->have_map);
    assert_string_equal(r->slots[0]->addr, "127.0.0.1:7001");
    assert_string_equal(r->slots[5460]->addr, "127.0.0.1:7001");
    assert_string_equal(r->slots[5461]->addr, "127.0.0.1:7002");
    assert_string_equal(r->slots[16383]->addr, "127.0.0.1:7003");
    assert_int_equal(redis_masters(r, masters, 8), 3);
    assert_int_equal(redis_masters(r, masters, 2), 2);
    assert_false(redis_up(r)); /* nothing connected: the loop never ran */

    /* A map where 7003's slots moved to 7004: 7003 is forgotten. */
    reply = resp("*3\r\n"
                 "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
                 "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7002\r\n"
                 "*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7004\r\n");
    slots_cb(r, NULL, reply);
    freeReplyObject(reply);
    assert_string_equal(r->slots[16383]->addr, "127.0.0.1:7004");
    assert_null(node_find(r, "127.0.0.1:7003"));
    assert_int_equal(r->nnodes, 3);

    /* A malformed answer keeps the map it had. */
    reply = resp("*1\r\n:1\r\n");
    slots_cb(r, NULL, reply);
    freeReplyObject(reply);
    assert_string_equal(r->slots[16383]->addr, "127.0.0.1:7004");
    assert_non_null(strstr(r->error, "CLUSTER SLOTS"));
    redis_free(r, 1);
    loop_free(loop);
}

static void test_command_slot(void **state)
{
    const char *get[] = {"GET", "foo"};
    size_t glen[] = {3, 3};
    const char *eval[] = {"EVAL", "return 1", "2", "sluice:rl:{team-a}:r:1", "sluice:rl:{team-a}:t:1"};
    size_t elen[] = {4, 8, 1, 22, 22};
    const char *eval0[] = {"eval", "return 1", "0"};
    size_t e0len[] = {4, 8, 1};
    const char *ping[] = {"PING"};
    size_t plen[] = {4};

    (void)state;
    assert_int_equal(command_slot(2, get, glen), 12182);
    assert_int_equal(command_slot(5, eval, elen), 983); /* the first key; all share it */
    assert_int_equal(redis_key_slot(eval[4], elen[4]), 983);
    assert_int_equal(command_slot(3, eval0, e0len), -1);
    assert_int_equal(command_slot(1, ping, plen), -1);
}

struct seen {
    int calls;
    char err[64];
};

static void seen_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct seen *s = arg;

    (void)reply;
    s->calls++;
    snprintf(s->err, sizeof(s->err), "%s", err ? err : "");
}

/* "GET foo" as sent to node and answered by text (a RESP error): what
 * redis.c does with the answer. Returns the request, still pending when the
 * answer redirected it. */
static struct rreq *answered(struct redis *r, struct seen *s, const char *node, const char *text)
{
    const char *get[] = {"GET", "foo"};
    size_t glen[] = {3, 3};
    struct rreq *rq = xcalloc(1, sizeof(*rq));
    redisReply *reply = resp(text);

    rq->r = r;
    rq->cb = seen_cb;
    rq->arg = s;
    rq->len = (size_t)redisFormatCommandArgv(&rq->cmd, 2, get, glen);
    snprintf(rq->node, sizeof(rq->node), "%s", node);
    rreq_cb(rq, NULL, reply);
    freeReplyObject(reply);
    return rq;
}

static void test_moved(void **state)
{
    struct loop *loop = loop_new();
    struct redis *r = cluster_client(loop);
    redisReply *reply = resp(THREE_MASTERS);
    const char *get[] = {"GET", "foo"};
    size_t glen[] = {3, 3};
    struct seen s = {0};
    struct rreq *rq;

    (void)state;
    slots_cb(r, NULL, reply);
    freeReplyObject(reply);
    /* The command waits on 7003's connection (connecting)... */
    redis_command(r, 2, get, glen, seen_cb, &s);
    assert_int_equal(s.calls, 0);
    /* ...and is answered MOVED: it goes to 7009, which now owns the slot. */
    rq = answered(r, &s, "127.0.0.1:7003", "-MOVED 12182 127.0.0.1:7009\r\n");
    assert_int_equal(s.calls, 0);
    assert_string_equal(r->slots[12182]->addr, "127.0.0.1:7009");
    assert_string_equal(r->slots[12183]->addr, "127.0.0.1:7003"); /* the rest waits for the map */
    assert_int_equal(r->st.redirects, 1);
    assert_string_equal(rq->node, "127.0.0.1:7009");
    /* A redirection loop ends: past REDIRECTS_MAX the error is the answer. */
    {
        struct seen t = {0};
        struct rreq *rq2 = xcalloc(1, sizeof(*rq2));

        rq2->r = r;
        rq2->cb = seen_cb;
        rq2->arg = &t;
        rq2->redirects = REDIRECTS_MAX;
        rq2->len = (size_t)redisFormatCommandArgv(&rq2->cmd, 2, get, glen);
        reply = resp("-MOVED 12182 127.0.0.1:7010\r\n");
        rreq_cb(rq2, NULL, reply); /* answers and frees rq2 */
        freeReplyObject(reply);
        assert_int_equal(t.calls, 1);
        assert_string_equal(t.err, "");
        assert_null(node_find(r, "127.0.0.1:7010"));
    }
    /* Closing: the commands still waiting (on 7003 and on 7009) hear "down". */
    redis_free(r, 1);
    assert_int_equal(s.calls, 2);
    assert_string_equal(s.err, "down");
    loop_free(loop);
}

/* "MOVED 12182 :7011": a node that does not know its own address names
 * only the port; the host is the one of the node that answered. */
static void test_moved_without_host(void **state)
{
    struct loop *loop = loop_new();
    struct redis *r = cluster_client(loop);
    redisReply *reply = resp(THREE_MASTERS);
    struct seen s = {0};
    struct rreq *rq;

    (void)state;
    slots_cb(r, NULL, reply);
    freeReplyObject(reply);
    rq = answered(r, &s, "127.0.0.1:7003", "-MOVED 12182 :7011\r\n");
    assert_int_equal(s.calls, 0);
    assert_string_equal(r->slots[12182]->addr, "127.0.0.1:7011");
    assert_string_equal(rq->node, "127.0.0.1:7011");
    redis_free(r, 1);
    assert_int_equal(s.calls, 1);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_map),
        cmocka_unit_test(test_command_slot),
        cmocka_unit_test(test_moved),
        cmocka_unit_test(test_moved_without_host),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
