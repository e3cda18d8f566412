/* cache_redis.c - the cache on Redis; see cache_redis.h. */
#include "cache_redis.h"
#include "caps.h"
#include "redis.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_COUNT "500"

struct get_op {
    cache_redis_get_cb cb;
    void *arg;
};

static void get_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct get_op *op = arg;
    char *val = NULL;
    size_t len = 0;

    if (err == NULL && reply->type == REDIS_REPLY_STRING) {
        val = xmalloc(reply->len + 1);
        memcpy(val, reply->str, reply->len);
        val[reply->len] = '\0';
        len = reply->len;
    } else if (err == NULL && reply->type == REDIS_REPLY_ERROR) {
        err = "redis error";
    }
    op->cb(op->arg, err, val, len);
    free(op);
}

void cache_redis_get(struct redis *r, const char *key, cache_redis_get_cb cb, void *arg)
{
    struct get_op *op = xmalloc(sizeof(*op));
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};

    op->cb = cb;
    op->arg = arg;
    if (r == NULL)
        get_cb(op, "down", NULL);
    else
        redis_command(r, 2, argv, lens, get_cb, op);
}

static void ignore_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(arg);
    UNUSED(err);
    UNUSED(reply);
}

void cache_redis_set(struct redis *r, const char *key, const char *val, size_t len, long ttl_s)
{
    char ttl[24];
    const char *argv[] = {"SET", key, val, "EX", ttl};
    size_t lens[5];

    snprintf(ttl, sizeof(ttl), "%ld", ttl_s > 0 ? ttl_s : 1);
    lens[0] = 3;
    lens[1] = strlen(key);
    lens[2] = len;
    lens[3] = 2;
    lens[4] = strlen(ttl);
    if (r)
        redis_command(r, 5, argv, lens, ignore_cb, NULL);
}

struct count_op {
    struct redis *r;
    cache_redis_count_cb cb;
    void *arg;
    char *match; /* SCAN pattern */
    long count;
    int pending; /* UNLINKs in flight, plus one per master still scanning */
    const char *err;
};

/* One master's SCAN of a purge. */
struct scan_op {
    struct count_op *op;
    char addr[REDIS_ADDR_MAX];
};

static void del_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct count_op *op = arg;

    if (err == NULL && reply->type == REDIS_REPLY_INTEGER)
        op->cb(op->arg, (long)reply->integer, NULL);
    else
        op->cb(op->arg, -1, err ? err : "redis error");
    free(op);
}

void cache_redis_del(struct redis *r, const char *key, cache_redis_count_cb cb, void *arg)
{
    struct count_op *op = xcalloc(1, sizeof(*op));
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};

    op->cb = cb;
    op->arg = arg;
    if (r == NULL)
        del_cb(op, "down", NULL);
    else
        redis_command(r, 2, argv, lens, del_cb, op);
}

/* One step of a purge is over; the purge ends when every SCAN is done and
 * every UNLINK has answered. */
static void purge_step_done(struct count_op *op)
{
    if (--op->pending > 0)
        return;
    op->cb(op->arg, op->err ? -1 : op->count, op->err);
    free(op->match);
    free(op);
}

static void unlink_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct count_op *op = arg;

    if (err == NULL && reply->type == REDIS_REPLY_INTEGER)
        op->count += (long)reply->integer;
    else if (op->err == NULL)
        op->err = err ? err : "redis error";
    purge_step_done(op);
}

/* UNLINK the keys one SCAN found. In a cluster they lie in many slots, and
 * a command's keys must share one: a key each there. */
static void unlink_keys(struct count_op *op, const struct redisReply *keys)
{
    const char **argv;
    size_t *lens;

    if (redis_is_cluster(op->r)) {
        for (size_t i = 0; i < keys->elements; i++) {
            const char *one[] = {"UNLINK", keys->element[i]->str};
            size_t l1[] = {6, keys->element[i]->len};

            op->pending++;
            redis_command(op->r, 2, one, l1, unlink_cb, op);
        }
        return;
    }
    argv = xmalloc((keys->elements + 1) * sizeof(*argv));
    lens = xmalloc((keys->elements + 1) * sizeof(*lens));
    argv[0] = "UNLINK";
    lens[0] = 6;
    for (size_t i = 0; i < keys->elements; i++) {
        argv[i + 1] = keys->element[i]->str;
        lens[i + 1] = keys->element[i]->len;
    }
    op->pending++;
    redis_command(op->r, (int)keys->elements + 1, argv, lens, unlink_cb, op);
    free(argv);
    free(lens);
}

static void scan_next(struct scan_op *so, const char *cursor);

static int scan_reply_ok(const struct redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < reply->element[1]->elements; i++)
        if (reply->element[1]->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

static void scan_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct scan_op *so = arg;
    struct count_op *op = so->op;
    char cursor[32];

    if (err || !scan_reply_ok(reply)) {
        if (op->err == NULL)
            op->err = err ? err : "redis error";
        free(so);
        purge_step_done(op);
        return;
    }
    if (reply->element[1]->elements > 0)
        unlink_keys(op, reply->element[1]);
    snprintf(cursor, sizeof(cursor), "%.*s", (int)reply->element[0]->len, reply->element[0]->str);
    if (strcmp(cursor, "0") == 0) {
        free(so);
        purge_step_done(op);
        return;
    }
    scan_next(so, cursor);
}

static void scan_next(struct scan_op *so, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", so->op->match, "COUNT", SCAN_COUNT};
    size_t lens[] = {4, strlen(cursor), 5, strlen(so->op->match), 5, strlen(SCAN_COUNT)};

    /* The cursor belongs to one server: every step goes to the same. */
    redis_command_at(so->op->r, so->addr, 6, argv, lens, scan_cb, so);
}

void cache_redis_del_prefix(struct redis *r, const char *prefix, cache_redis_count_cb cb,
                            void *arg)
{
    struct count_op *op = xcalloc(1, sizeof(*op));
    char(*masters)[REDIS_ADDR_MAX] = xcalloc(REDIS_NODES_MAX, sizeof(*masters));
    size_t n = r ? redis_masters(r, masters, REDIS_NODES_MAX) : 0;

    op->r = r;
    op->cb = cb;
    op->arg = arg;
    op->match = xasprintf("%s*", prefix);
    op->pending = 1; /* until every SCAN has started */
    if (n == 0)
        op->err = "down";
    for (size_t i = 0; i < n; i++) {
        struct scan_op *so = xcalloc(1, sizeof(*so));

        so->op = op;
        snprintf(so->addr, sizeof(so->addr), "%s", masters[i]);
        op->pending++;
        scan_next(so, "0");
    }
    free(masters);
    purge_step_done(op);
}
