/* redis.h - an asynchronous Redis client on a loop (hiredis 0.14.1's async
 * API, attached through its ev hooks the way adapters/ae.h does it).
 *
 * hiredis 0.14.1 has no command timeouts, so every command gets its own
 * deadline timer: a reply later than timeout_ms is reported as a timeout and
 * the late reply, when it comes, is dropped. The connection is re-made with
 * exponential backoff whenever it fails or drops, and several timeouts in a
 * row force a reconnect. Callers fail open: a Redis that is down or slow
 * yields errors, never a stuck request.
 *
 * Everything runs in the loop thread, except redis_new/redis_free (see
 * below).
 */
#ifndef SLUICE_REDIS_H
#define SLUICE_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct redis;
struct redisReply;

/* A command finished. err is NULL on success (reply is then the reply,
 * borrowed for the duration of the call; it may be a Redis error reply,
 * type REDIS_REPLY_ERROR), else "down", "timeout" or a connection error and
 * reply is NULL. May run before redis_command returns. */
typedef void (*redis_cb)(void *arg, const char *err, struct redisReply *reply);

/* Parse url (redis://HOST[:PORT][/DB]) and resolve HOST. Resolution may
 * block, so call this outside the loop (at startup or reload); the
 * connection itself is made later, in the loop, by redis_start. Returns NULL
 * with a message in err on a bad URL or an unknown host. */
struct redis *redis_new(struct loop *loop, const char *url, long timeout_ms, char *err,
                        size_t errlen);
/* Connect (loop thread). */
void redis_start(struct redis *r);
/* Close and free (loop thread, or after the loop has stopped). Pending
 * commands get err "down". */
void redis_free(struct redis *r);

/* Send a command given as argc arguments (argv[i] of length lens[i]). */
void redis_command(struct redis *r, int argc, const char **argv, const size_t *lens, redis_cb cb,
                   void *arg);

/* Connected and usable right now. */
int redis_up(const struct redis *r);

struct redis_stats {
    uint64_t commands;
    uint64_t errors; /* every failed command: down, timeout, connection error */
    uint64_t timeouts;
    uint64_t reconnects;
};
void redis_stats(const struct redis *r, struct redis_stats *out);

#endif
