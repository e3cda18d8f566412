/* cache_redis.c - the cache on Redis; see cache_redis.h. */
#include "cache_redis.h"
#include "redis.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_COUNT "500"

struct cache_redis {
    struct redis *r;
};

struct cache_redis *cache_redis_new(struct loop *loop, const char *url, long timeout_ms, char *err,
                                    size_t errlen)
{
    struct redis *r = redis_new(loop, url, timeout_ms, err, errlen);
    struct cache_redis *cr;

    if (r == NULL)
        return NULL;
    cr = xcalloc(1, sizeof(*cr));
    cr->r = r;
    return cr;
}

void cache_redis_start(struct cache_redis *cr)
{
    redis_start(cr->r);
}

void cache_redis_free(struct cache_redis *cr)
{
    if (cr == NULL)
        return;
    redis_free(cr->r);
    free(cr);
}

struct redis *cache_redis_conn(struct cache_redis *cr)
{
    return cr->r;
}

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

void cache_redis_get(struct cache_redis *cr, const char *key, cache_redis_get_cb cb, void *arg)
{
    struct get_op *op = xmalloc(sizeof(*op));
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};

    op->cb = cb;
    op->arg = arg;
    redis_command(cr->r, 2, argv, lens, get_cb, op);
}

static void ignore_cb(void *arg, const char *err, struct redisReply *reply)
{
    UNUSED(arg);
    UNUSED(err);
    UNUSED(reply);
}

void cache_redis_set(struct cache_redis *cr, const char *key, const char *val, size_t len,
                     long ttl_s)
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
    redis_command(cr->r, 5, argv, lens, ignore_cb, NULL);
}

struct count_op {
    struct cache_redis *cr;
    cache_redis_count_cb cb;
    void *arg;
    char *match; /* SCAN pattern */
    long count;
    int pending; /* UNLINKs in flight, plus one for the SCAN */
    int scan_done;
    const char *err;
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

void cache_redis_del(struct cache_redis *cr, const char *key, cache_redis_count_cb cb, void *arg)
{
    struct count_op *op = xcalloc(1, sizeof(*op));
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};

    op->cb = cb;
    op->arg = arg;
    redis_command(cr->r, 2, argv, lens, del_cb, op);
}

/* A purge ends when the SCAN is done and every UNLINK has answered. */
static void purge_step_done(struct count_op *op)
{
    if (!op->scan_done || op->pending > 0)
        return;
    op->cb(op->arg, op->err ? -1 : op->count, op->err);
    free(op->match);
    free(op);
}

static void unlink_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct count_op *op = arg;

    op->pending--;
    if (err == NULL && reply->type == REDIS_REPLY_INTEGER)
        op->count += (long)reply->integer;
    else if (op->err == NULL)
        op->err = err ? err : "redis error";
    purge_step_done(op);
}

static void scan_next(struct count_op *op, const char *cursor);

static void scan_cb(void *arg, const char *err, struct redisReply *reply)
{
    struct count_op *op = arg;
    struct redisReply *keys;
    char cursor[32];

    if (err || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        op->err = err ? err : "redis error";
        op->scan_done = 1;
        purge_step_done(op);
        return;
    }
    keys = reply->element[1];
    if (keys->elements > 0) {
        const char **argv = xmalloc((keys->elements + 1) * sizeof(*argv));
        size_t *lens = xmalloc((keys->elements + 1) * sizeof(*lens));

        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < keys->elements; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        op->pending++;
        redis_command(op->cr->r, (int)keys->elements + 1, argv, lens, unlink_cb, op);
        free(argv);
        free(lens);
    }
    snprintf(cursor, sizeof(cursor), "%.*s", (int)reply->element[0]->len, reply->element[0]->str);
    if (strcmp(cursor, "0") == 0) {
        op->scan_done = 1;
        purge_step_done(op);
        return;
    }
    scan_next(op, cursor);
}

static void scan_next(struct count_op *op, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", op->match, "COUNT", SCAN_COUNT};
    size_t lens[] = {4, strlen(cursor), 5, strlen(op->match), 5, strlen(SCAN_COUNT)};

    redis_command(op->cr->r, 6, argv, lens, scan_cb, op);
}

void cache_redis_del_prefix(struct cache_redis *cr, const char *prefix, cache_redis_count_cb cb,
                            void *arg)
{
    struct count_op *op = xcalloc(1, sizeof(*op));

    op->cr = cr;
    op->cb = cb;
    op->arg = arg;
    op->match = xasprintf("%s*", prefix);
    scan_next(op, "0");
}
