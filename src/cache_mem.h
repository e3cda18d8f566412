/* cache_mem.h - the embedded cache: a bounded in-memory LRU with TTLs.
 *
 * Thread-safe (one mutex): the loop stores into it, and HTTP workers may
 * look up answers without a hop to the loop. Bounded by max_bytes (keys,
 * values and bookkeeping all count); the least recently used entries are
 * evicted to make room, and expired ones are dropped when met.
 */
#ifndef SLUICE_CACHE_MEM_H
#define SLUICE_CACHE_MEM_H

#include <stddef.h>
#include <stdint.h>

struct cache_mem;

struct cache_mem *cache_mem_new(size_t max_bytes);
void cache_mem_free(struct cache_mem *m);

/* Look key up. On a hit, return a malloc'd copy of the value (the caller
 * frees it) and its length; NULL on a miss. */
char *cache_mem_get(struct cache_mem *m, const char *key, size_t *len);
/* Store a copy of val under key for ttl_ms milliseconds, replacing any old
 * value. A value that alone exceeds max_bytes is not stored. */
void cache_mem_put(struct cache_mem *m, const char *key, const char *val, size_t len, long ttl_ms);
/* Drop key. Returns 1 if it was there. */
int cache_mem_del(struct cache_mem *m, const char *key);
/* Drop every key starting with prefix. Returns how many. */
size_t cache_mem_del_prefix(struct cache_mem *m, const char *prefix);

size_t cache_mem_bytes(struct cache_mem *m);
size_t cache_mem_count(struct cache_mem *m);

#endif
