/* cache_redis.h - the cache's operations on Redis (redis.c): GET, SET with
 * EX, DEL, and namespace purges by SCAN + UNLINK. Loop thread only. Every
 * failure is reported, never waited on: the cache fails open. */
#ifndef SLUICE_CACHE_REDIS_H
#define SLUICE_CACHE_REDIS_H

#include <stddef.h>

struct loop;
struct cache_redis;

/* val (malloc'd, taken over by the callee) is the stored value, or NULL on
 * a miss or when err is set. */
typedef void (*cache_redis_get_cb)(void *arg, const char *err, char *val, size_t len);
typedef void (*cache_redis_count_cb)(void *arg, long count, const char *err);

struct cache_redis *cache_redis_new(struct loop *loop, const char *url, long timeout_ms, char *err,
                                    size_t errlen);
void cache_redis_start(struct cache_redis *cr);
void cache_redis_free(struct cache_redis *cr);

void cache_redis_get(struct cache_redis *cr, const char *key, cache_redis_get_cb cb, void *arg);
/* Store, fire and forget (a failure is counted by redis.c). */
void cache_redis_set(struct cache_redis *cr, const char *key, const char *val, size_t len,
                     long ttl_s);
void cache_redis_del(struct cache_redis *cr, const char *key, cache_redis_count_cb cb, void *arg);
/* Delete every key starting with prefix (which holds no glob characters). */
void cache_redis_del_prefix(struct cache_redis *cr, const char *prefix, cache_redis_count_cb cb,
                            void *arg);

struct redis *cache_redis_conn(struct cache_redis *cr);

#endif
