/* cache_types.h - the cache's types that other modules read without calling
 * the cache: a request's cache status and its cache plan (cache.h does the
 * work). Type-only, so the exchange, the log line and the traces can name
 * them without depending on the cache.
 */
#ifndef SLUICE_CACHE_TYPES_H
#define SLUICE_CACHE_TYPES_H

#include <stddef.h>

enum cache_status {
    CACHE_NA = 0, /* not a cacheable request (nothing reported) */
    CACHE_HIT,
    CACHE_MISS,
    CACHE_BYPASS, /* the request said so, or is not deterministic */
    CACHE_OFF,    /* the route does not cache */
    CACHE_ERROR,  /* the backend failed or was too slow: served uncached */
};

/* The status as the x-sluice-cache header and the log say it, or NULL for
 * CACHE_NA. */
static inline const char *cache_status_name(enum cache_status s)
{
    static const char *const names[] = {NULL, "HIT", "MISS", "BYPASS", "OFF", "ERROR"};

    return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

#define CACHE_KEY_MAX 160

/* What the cache does for one request, decided by the worker (cache_plan). */
struct cache_plan {
    enum cache_status status; /* OFF, BYPASS or MISS until the lookup says */
    int lookup;
    int store;
    long ttl_s;
    char key[CACHE_KEY_MAX];
};

#endif
