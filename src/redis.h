/* redis.h - the gateway's Redis client: one per loop, owned by the loop
 * (server.redis) and lent to the cache, the limits and budgets, and the
 * trace stream. Configured by the `redis` block (struct redis_conf).
 *
 * It speaks to Redis as production runs it:
 *   - AUTH [username] password and SELECT on every (re)connect;
 *   - TLS (rediss://) with OpenSSL, the certificate and host name verified,
 *     optionally a client certificate (redis_conn.c);
 *   - Sentinel: the master asked of the listed sentinels (SENTINEL
 *     get-master-addr-by-name), followed on +switch-master and asked again
 *     when it stops answering or answers READONLY;
 *   - Cluster: the slot map from CLUSTER SLOTS, each command sent to the
 *     master of its key's slot, MOVED followed (and the map refreshed), ASK
 *     followed with ASKING, the map refreshed while a master is down, so a
 *     promoted replica is found. One connection per node.
 *
 * Every command has a deadline (timeout_ms). The callers fail open: a
 * Redis that is down, slow, moving or refusing the password yields errors,
 * never a stuck request, and the client reconnects with backoff.
 *
 * Loop thread only, except redis_new, redis_conf_same and redis_report.
 */
#ifndef SLUICE_REDIS_H
#define SLUICE_REDIS_H

#include "redis_url.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct redis;
struct redisReply;
struct redis_conf;

/* A command finished. err is NULL on success (reply is then the reply,
 * borrowed for the duration of the call; it may be a Redis error reply,
 * type REDIS_REPLY_ERROR), else "down", "timeout" or a connection error and
 * reply is NULL. May run before redis_command returns. */
typedef void (*redis_cb)(void *arg, const char *err, struct redisReply *reply);

/* A client for conf: parses the url, resolves the listed hosts (this may
 * block: call it outside the loop, at startup or reload) and reads the TLS
 * files. Nothing connects until redis_start. Returns NULL with a message in
 * err. conf is copied. */
struct redis *redis_new(struct loop *loop, const struct redis_conf *conf, char *err,
                        size_t errlen);
/* Connect (loop thread). */
void redis_start(struct redis *r);
/* Close and free; pending commands hear "down". In the loop thread with
 * now = 0, or with now = 1 after the loop has stopped. */
void redis_free(struct redis *r, int now);
/* Two confs that make the same client (a reload keeps the connections). */
int redis_conf_same(const struct redis_conf *a, const struct redis_conf *b);

/* Send a command given as argc arguments (argv[i] of length lens[i]). In a
 * cluster it goes to the master of its key's slot: argv[1], or for EVAL and
 * EVALSHA the first key (argv[3]); a script's keys must share a slot (hash
 * tags, "{...}"). */
void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb cb,
                   void *arg);
/* The masters known now (a cluster's, or the one server): up to max
 * addresses into addrs. For commands that each master must run (SCAN). */
size_t redis_masters(const struct redis *r, char (*addrs)[REDIS_ADDR_MAX], size_t max);
/* Send a command to the master at addr (one redis_masters gave). */
void redis_command_at(struct redis *r, const char *addr, int argc, const char **argv,
                      const size_t *lens, redis_cb cb, void *arg);
/* Keys of one command must share a slot (Redis Cluster). */
int redis_is_cluster(const struct redis *r);

/* Connected and usable right now (in a cluster: every master). */
int redis_up(const struct redis *r);

struct redis_stats {
    uint64_t commands;
    uint64_t errors; /* every failed command: down, timeout, connection error */
    uint64_t timeouts;
    uint64_t redirects; /* MOVED and ASK followed */
    uint64_t reconnects;
};
void redis_stats(const struct redis *r, struct redis_stats *out);

/* The loop's client as /readyz shows it: {"mode", "state" (up, degraded,
 * down, connecting), "error" (the last, or null), "master"}, or NULL when no
 * Redis is configured. Any thread; the caller owns the result. */
json_t *redis_report(void);

#endif
