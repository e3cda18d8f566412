/* cache_redis.h - the cache's operations on Redis, on the loop's client
 * (redis.h, borrowed for each call; NULL answers "down"): GET, SET with
 * EX, DEL, and namespace purges by SCAN + UNLINK on every master. Loop
 * thread only. Every failure is reported, never waited on: the cache fails
 * open. */
#ifndef SLUICE_CACHE_REDIS_H
#define SLUICE_CACHE_REDIS_H

#include <stddef.h>

struct redis;

/* val (malloc'd, taken over by the callee) is the stored value, or NULL on
 * a miss or when err is set. */
typedef void (*cache_redis_get_cb)(void *arg, const char *err, char *val, size_t len);
typedef void (*cache_redis_count_cb)(void *arg, long count, const char *err);

void cache_redis_get(struct redis *r, const char *key, cache_redis_get_cb cb, void *arg);
/* Store, fire and forget (a failure is counted by redis.c). */
void cache_redis_set(struct redis *r, const char *key, const char *val, size_t len, long ttl_s);
void cache_redis_del(struct redis *r, const char *key, cache_redis_count_cb cb, void *arg);
/* Delete every key starting with prefix (which holds no glob characters),
 * on every master of a cluster. */
void cache_redis_del_prefix(struct redis *r, const char *prefix, cache_redis_count_cb cb,
                            void *arg);

#endif
