/* server.c - process life cycle: start the loop and the front, drain and
 * stop them; see server.h. */
#include "server.h"
#include "cache.h"
#include "cascade.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "otel_export.h"
#include "stats.h"
#include "trace.h"
#include "redis.h"
#include "upstream.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct server server;

#define LOG_FLUSH_TIMER_US 100000
#define REAP_TIMER_US 1000000 /* how often late clients are looked for */

static struct loop_timer log_timer;
static struct loop_timer reap_timer;

/* Close the connections of clients too slow to send their requests. */
static void reap_timer_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    http_reap_slow_clients();
    loop_timer_start(loop, &reap_timer, REAP_TIMER_US);
}

/* Batched request log lines reach the file within this period even when
 * the gateway goes quiet. */
static void log_timer_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    log_flush();
    trace_flush();
    loop_timer_start(loop, &log_timer, LOG_FLUSH_TIMER_US);
}

static void log_timer_start_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop_timer_init(&log_timer, log_timer_cb, NULL);
    loop_timer_start(loop, &log_timer, LOG_FLUSH_TIMER_US);
    loop_timer_init(&reap_timer, reap_timer_cb, NULL);
    loop_timer_start(loop, &reap_timer, REAP_TIMER_US);
}

/* Make the loop's Redis client the one given (NULL: none), on the loop:
 * the old one's waiting commands hear "down" (callers fail open). */
static void redis_swap_cb(struct loop *loop, void *arg)
{
    trace_set_redis(arg);
    redis_free(loop_redis(loop), 0);
    loop_set_redis(loop, arg);
    if (arg)
        redis_start(arg);
}

/* A client for conf, or NULL when no Redis is configured; -1 with a
 * message in err when conf is unusable. */
static int redis_make(const struct redis_conf *conf, struct redis **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!conf->configured)
        return 0;
    *out = redis_new(server.loop, conf, err, errlen);
    return *out ? 0 : -1;
}

static void *loop_main(void *arg)
{
    UNUSED(arg);
    loop_run(server.loop);
    return NULL;
}

int server_start(struct config *cfg, const char *listen)
{
    const char *addr = listen ? listen : cfg->listen;
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon ? (size_t)(colon - addr) : 0;

    char err[256];
    struct cache *cache;
    struct redis *redis;

    server.started_us = now_us();
    server.loop = loop_new();
    server.up = upstream_new(server.loop);
    loop_set_upstream(server.loop, server.up);
    if (redis_make(&cfg->redis, &redis, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        upstream_free(server.up);
        loop_free(server.loop);
        return -1;
    }
    cache = cache_new(server.loop, &cfg->cache, err, sizeof(err));
    if (cache == NULL) {
        log_msg(LOG_ERROR, "cache: %s", err);
        redis_free(redis, 1);
        upstream_free(server.up);
        loop_free(server.loop);
        return -1;
    }
    cache_swap(cache);
    if (redis)
        loop_post(server.loop, redis_swap_cb, redis);
    loop_post(server.loop, log_timer_start_cb, NULL);
    if (pthread_create(&server.loop_thread, NULL, loop_main, NULL) != 0)
        sl_panic("pthread_create failed");
    if (http_start(cfg, addr, server.loop, server_reload) < 0) {
        loop_stop(server.loop);
        pthread_join(server.loop_thread, NULL);
        upstream_free(server.up);
        loop_free(server.loop);
        return -1;
    }
    if (hlen >= sizeof(host))
        hlen = sizeof(host) - 1;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    log_msg(LOG_INFO, "sluice %s listening on http://%s:%d", SLUICE_VERSION,
            host[0] ? host : "0.0.0.0", http_port());
    if (http_admin_port())
        log_msg(LOG_INFO, "admin API listening on http://%.*s:%d",
                (int)(strrchr(cfg->admin.listen, ':') - cfg->admin.listen), cfg->admin.listen,
                http_admin_port());
    return 0;
}

static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;

int server_reload(char *msg, size_t msglen)
{
    struct config_errors errs = {0};
    struct config *cfg, *old;
    struct cache *cache;
    size_t off = 0;

    pthread_mutex_lock(&reload_mu);
    cfg = config_load(server.config_path, &errs);
    if (cfg == NULL) {
        msg[0] = '\0';
        for (size_t i = 0; i < errs.n; i++) {
            log_msg(LOG_ERROR, "reload refused: %s", errs.msgs[i]);
            if (off < msglen)
                off +=
                    (size_t)snprintf(msg + off, msglen - off, "%s%s", i ? "\n" : "", errs.msgs[i]);
        }
        config_errors_free(&errs);
        pthread_mutex_unlock(&reload_mu);
        return -1;
    }
    old = config_current();
    if (strcmp(old->listen, cfg->listen) != 0 || old->workers != cfg->workers ||
        old->max_connections != cfg->max_connections ||
        old->max_header_bytes != cfg->max_header_bytes ||
        old->client_timeout_s != cfg->client_timeout_s ||
        (old->admin.listen == NULL) != (cfg->admin.listen == NULL) ||
        (old->admin.listen && strcmp(old->admin.listen, cfg->admin.listen) != 0))
        log_msg(LOG_WARN, "reload: listen, workers, connection limits and admin.listen "
                          "apply at the next restart");
    cache = cache_current();
    if (cache && !cache_matches(cache, &cfg->cache)) {
        char err[256];
        struct cache *fresh = cache_new(server.loop, &cfg->cache, err, sizeof(err));

        if (fresh == NULL) {
            snprintf(msg, msglen, "cache: %s", err);
            log_msg(LOG_ERROR, "reload refused: %s", msg);
            cache_unref(cache);
            config_unref(old);
            config_unref(cfg);
            pthread_mutex_unlock(&reload_mu);
            return -1;
        }
        cache_swap(fresh);
        log_msg(LOG_INFO, "reload: new cache settings, the cache starts empty");
    }
    cache_unref(cache);
    if (old->redis.configured != cfg->redis.configured ||
        (cfg->redis.configured && !redis_conf_same(&old->redis, &cfg->redis))) {
        char err[256];
        struct redis *fresh;

        if (redis_make(&cfg->redis, &fresh, err, sizeof(err)) < 0) {
            /* The cache may have been swapped already: it borrows whatever
             * client the loop has, so the old one keeps serving it. */
            snprintf(msg, msglen, "%s", err);
            log_msg(LOG_ERROR, "reload refused: %s", msg);
            config_unref(old);
            config_unref(cfg);
            pthread_mutex_unlock(&reload_mu);
            return -1;
        }
        loop_post(server.loop, redis_swap_cb, fresh);
        log_msg(LOG_INFO, "reload: new redis settings, reconnecting");
    }
    config_unref(old);
    if (log_open(&cfg->log) < 0)
        log_msg(LOG_ERROR, "reload: cannot open log %s; keeping the old one", cfg->log.path);
    if (trace_open(&cfg->trace) < 0)
        log_msg(LOG_ERROR, "reload: cannot open trace %s", cfg->trace.path);
    config_swap(cfg);
    pthread_mutex_unlock(&reload_mu);
    snprintf(msg, msglen, "%s", server.config_path);
    log_msg(LOG_INFO, "reloaded %s", server.config_path);
    return 0;
}

static void abort_all_cb(struct loop *loop, void *arg)
{
    struct api_error e;

    UNUSED(loop);
    UNUSED(arg);
    api_error_set(&e, 503, "api_error", "shutting_down", NULL, "%s",
                  "The gateway is shutting down.");
    {
        struct cache *c = cache_current();

        if (c) {
            cache_abort_all(c, &e);
            cache_unref(c);
        }
    }
    cascade_abort_all();
}

/* Wait up to ms for the in-flight count to reach zero. */
static int wait_idle(long ms)
{
    uint64_t deadline = now_ms() + (uint64_t)(ms > 0 ? ms : 0);

    while (http_inflight() > 0) {
        if (now_ms() >= deadline)
            return -1;
        usleep(10000);
    }
    return 0;
}

void server_stop(long drain_ms)
{
    http_set_draining(1);
    http_quiesce();
    log_msg(LOG_INFO, "draining %ld in-flight requests (up to %ld ms)", http_inflight(), drain_ms);
    if (wait_idle(drain_ms) < 0) {
        /* Out of time: end what is left with a 503 so every suspended
         * connection is resumed before the daemon stops. */
        log_msg(LOG_WARN, "drain timeout: aborting %ld requests", http_inflight());
        loop_post(server.loop, abort_all_cb, NULL);
        wait_idle(2000);
    }
    http_stop();
    cache_swap(NULL); /* the last reference goes: freed on the loop */
    loop_stop(server.loop);
    pthread_join(server.loop_thread, NULL);
    loop_timer_stop(server.loop, &log_timer);
    loop_timer_stop(server.loop, &reap_timer);
    trace_set_redis(NULL);
    redis_free(loop_redis(server.loop), 1);
    upstream_free(server.up);
    loop_free(server.loop);
    server.loop = NULL;
    server.up = NULL;
    trace_flush();
    otel_export_stop(); /* the last spans go out, within otel.timeout_ms */
    stats_free();
    log_msg(LOG_INFO, "stopped"); /* flushes the batch first */
}
