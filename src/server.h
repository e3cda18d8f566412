/* server.h - the process-wide pieces the modules share: the upstream loop
 * and its curl multi (the loop owns its Redis client: loop_redis). Redis
 * keeps a global `server` the same way. Set up by server_start() in server.c, used read-only elsewhere. The
 * HTTP front (http.h) counts its requests in flight and knows whether it
 * drains; it is handed the loop and the reload at start.
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <pthread.h>
#include <stdint.h>

struct loop;
struct upstream;
struct cache;

struct server {
    struct loop *loop;   /* the upstream loop */
    struct upstream *up; /* its curl multi */
    pthread_t loop_thread;
    uint64_t started_us;
    const char *config_path; /* the file SIGHUP reloads */
};

extern struct server server;

/* Start the loop thread and the HTTP front on cfg->listen (or listen when
 * not NULL). Returns 0, or -1 with a message printed. */
struct config;
int server_start(struct config *cfg, const char *listen);
/* Graceful stop: stop accepting, let in-flight requests finish for up to
 * drain_ms, then stop everything. */
void server_stop(long drain_ms);

/* Load config_path again, check it, and if it is valid make it current:
 * new requests use it, in-flight ones finish on the snapshot they started
 * with; the log and trace files are reopened and the cache is replaced if
 * its settings changed. An invalid file is refused and logged and the old
 * config stays. Serialised: SIGHUP and the admin API may race. Returns 0
 * (msg gets the path) or -1 (msg gets the errors, one per line). */
int server_reload(char *msg, size_t msglen);

#endif
