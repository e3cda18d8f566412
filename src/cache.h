/* cache.h - the response cache: policy, keys, entries, single flight and the
 * backends (cache_mem.c, the embedded LRU; cache_redis.c, shared Redis).
 *
 * The key is a SHA-256 over a canonical JSON (sorted keys, compact, numbers
 * normalised) of everything that changes the answer: the endpoint, the
 * route, and the body without stream, stream_options and user. It is
 * partitioned by namespace ("sluice:c1:<namespace>:<sha256>"), so one
 * namespace never sees another's answers.
 *
 * An entry is the answer as a whole (not streamed) response body plus what
 * the headers said (model, provider, cost, stages). A streamed answer is
 * assembled and stored in that form; a hit is replayed as JSON or as SSE,
 * whichever the client asked.
 *
 * Threads: cache_plan and cache_key run in HTTP workers; the memory backend
 * is thread-safe, so a worker may serve a memory hit itself. Everything
 * else runs in the loop.
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include "cache_types.h"
#include "config.h"
#include "exchange.h"
#include "request.h"
#include "util.h"

#include <jansson.h>
#include <stddef.h>

struct loop;
struct exchange;
struct cache;
struct cache_mem;

#define CACHE_KEY_PREFIX "sluice:c1:"
#define CACHE_NS_MAX 64

/* Decide the plan: the route's cache settings, determinism (temperature >
 * 0 or n > 1 only with cache_nondeterministic), Cache-Control (no-cache:
 * no lookup; no-store: neither lookup nor store), x-sluice-cache-ttl, and
 * the namespace, inside the tenant's partition (tenant NULL: no keys). Header values may be NULL.
 * Returns 0, or -1 with a 400 in err for a bad namespace or TTL. */
int cache_plan(const struct config *cfg, const struct route *rt, const struct request_info *ri,
               const char *tenant, const char *ns, const char *cache_control, const char *ttl,
               struct cache_plan *out, struct api_error *err);

/* The key of (namespace, route, endpoint, body), written to out. Pure.
 * Returns 0, or -1 when the body's canonical form is over CACHE_CANON_MAX
 * (such a request is not cached). */
int cache_key(const char *ns, const char *route, enum endpoint ep, const json_t *body,
              char out[CACHE_KEY_MAX]);
/* The canonical JSON the key hashes (for tests and the fuzz harness);
 * appended to out. Returns 0, or -1 when out is full (and has failed). */
int cache_canonical(const json_t *body, int top, struct buf *out) BUF_MUST_CHECK;

/* A decoded entry. body points into raw. */
struct cache_entry {
    char *raw;
    char *model;
    char *provider;
    char *stages;
    double cost;
    const char *body;
    size_t body_len;
};

/* Encode an entry (returns malloc'd bytes and their length), or NULL when
 * its header line would be over CACHE_ENTRY_HEAD_MAX. */
char *cache_entry_encode(const char *model, const char *provider, double cost, const char *stages,
                         const char *body, size_t len, size_t *outlen);
/* Decode raw (taken over). Returns 0, or -1 (raw freed) if malformed. */
int cache_entry_decode(char *raw, size_t len, struct cache_entry *e);
void cache_entry_free(struct cache_entry *e);
/* The bytes a client gets for a hit: the body as is, or (stream) the SSE
 * replay of it. Returns 0 with a malloc'd *out, or -1 if the body is not
 * the JSON object it should be. */
int cache_entry_render(const struct cache_entry *e, const struct request_info *ri, char **out,
                       size_t *outlen);

/* ---- the instance (loop) ---- */

/* Make the backend for conf, with one reference (the caller's). A Redis
 * cache borrows the loop's client (loop_redis) for each command. NULL
 * with a message on error. */
struct cache *cache_new(struct loop *loop, const struct cache_conf *conf, char *err, size_t errlen);
/* Does this instance serve conf as it is (same backend and limits)? */
int cache_matches(const struct cache *c, const struct cache_conf *conf);
/* References: every request holds the instance it started with, so a
 * reload that replaces the cache lets in-flight requests finish on the old
 * one. The last unref frees it on the loop. Thread-safe. */
struct cache *cache_ref(struct cache *c);
void cache_unref(struct cache *c);
/* The process-wide current instance (a new reference), and its swap
 * (takes the caller's reference to c, drops the old one). */
struct cache *cache_current(void);
void cache_swap(struct cache *c);
/* Free at shutdown, after the loop stopped. */
void cache_free(struct cache *c);
/* The memory backend (or Redis's local copy), for a worker's own lookup. */
struct cache_mem *cache_memory(struct cache *c);

/* ---- the cache phase (phase.h) ---- */

/* Run: look ex up in its instance (ex->cache), joining an identical lookup
 * or upstream call in flight (single flight). PHASE_DONE: a hit answered
 * it; PHASE_NEXT: its route must run (a miss, no lookup, or the backend
 * failed: fail open); PHASE_AGAIN: it waits on Redis or on another
 * request's answer and resumes later. Sets meta.cache, and keep_answer
 * when the answer is to be stored. Borrows ex. */
enum phase_result cache_run(struct exchange *ex);
/* on_answer: the route answered ex: body is the whole response (200), as a
 * client that does not stream would get it, or NULL if the route failed.
 * Stores it when the plan says so, and answers the requests that waited
 * for it (or lets them run their own route). Borrows body. */
void cache_finish(struct exchange *ex, const char *body, size_t len);
/* cancel: ex's client left while ex waited on another request's answer:
 * it stops waiting and is done (499). Else nothing. */
void cache_cancel(struct exchange *ex);
/* on_end: let go of the instance the request started with (ex->cache).
 * Any thread. */
void cache_end(struct exchange *ex);
/* Shutdown: fail every request still waiting on another's answer. */
void cache_abort_all(struct cache *c, const struct api_error *err);

/* Purge one key, or every key of a namespace. cb gets the count removed or
 * an error. */
typedef void (*cache_purge_cb)(void *arg, long count, const char *err);
/* Why a purge request is malformed (a message for the client), or NULL. */
const char *cache_purge_check(const char *key, const char *ns);
void cache_purge(struct cache *c, const char *key, const char *ns, cache_purge_cb cb, void *arg);

/* A worker served a hit itself (thread-safe). */
void cache_count_hit(struct cache *c);

struct cache_stats {
    unsigned long hits, misses, errors, stores;
    size_t entries, bytes; /* memory backend */
};
void cache_stats(struct cache *c, struct cache_stats *out);

#endif
