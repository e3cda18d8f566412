/* redis_conn.h - one connection to one Redis server, on the loop.
 *
 * hiredis 0.14.1 has no TLS, so the connection is ours: a non-blocking
 * socket on the loop's epoll, optionally wrapped in OpenSSL (certificate and
 * host name verified), commands formatted by hiredis (redisFormatCommandArgv)
 * and written in one batch per loop iteration, replies read by hiredis's
 * RESP reader (redisReaderFeed / redisReaderGetReply).
 *
 * On every (re)connect it says AUTH [username] password and SELECT db before
 * anything else. Commands sent while it connects wait for that; commands
 * sent while it is down (between retries) fail at once with "down", so the
 * callers fail open. Every command has a deadline (timeout_ms): a late reply
 * is dropped and the caller hears "timeout"; three timeouts in a row drop
 * the connection. With opts.reconnect it is re-made with jittered
 * exponential backoff.
 *
 * Loop thread only, except redis_tls_new/redis_tls_free.
 */
#ifndef SLUICE_REDIS_CONN_H
#define SLUICE_REDIS_CONN_H

#include <stddef.h>

struct loop;
struct redis_conn;
struct redisReply;
typedef struct ssl_ctx_st SSL_CTX;

/* A command finished: err is NULL and reply the reply (borrowed for the
 * call; it may be an error reply), or err says why and reply is NULL. The
 * same type as redis.h's redis_cb, which redis.c passes here as it is; it
 * is spelled again so that a connection needs nothing of the client built
 * on it. */
typedef void (*redis_conn_reply_cb)(void *arg, const char *err, struct redisReply *reply);

/* Settings shared by the connections of one client; borrowed: they must
 * outlive every connection made with them. */
struct redis_conn_opts {
    SSL_CTX *tls;            /* NULL: plain TCP */
    const char *server_name; /* TLS: the name the certificate must carry */
    const char *username;    /* NULL: AUTH with the password alone */
    const char *password;    /* NULL: no AUTH */
    int db;                  /* SELECT it when not 0 */
    long timeout_ms;         /* each command's deadline */
    long connect_ms;         /* connect, TLS handshake, AUTH and SELECT */
    int reconnect;           /* re-make the connection after it drops */
};

enum redis_conn_event {
    REDIS_CONN_UP,   /* connected, authenticated, database selected */
    REDIS_CONN_DOWN, /* dropped, or an attempt failed; why says why */
};

/* Connection events (why is NULL for UP). The callee may free c. */
typedef void (*redis_conn_event_cb)(void *arg, struct redis_conn *c, enum redis_conn_event ev,
                                    const char *why);
/* A reply that answers no command (a pub/sub message), borrowed. */
typedef void (*redis_conn_push_cb)(void *arg, struct redis_conn *c, struct redisReply *reply);

/* A client TLS context from the block's files (any may be NULL: the
 * system's CAs, no client certificate). Reads files: call outside the
 * loop. Returns NULL with a message in err. */
SSL_CTX *redis_tls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err,
                       size_t errlen);
void redis_tls_free(SSL_CTX *ctx);

/* A connection to addr (numeric HOST:PORT; no name resolution happens on
 * the loop), connecting at once. opts is borrowed; push may be NULL. */
struct redis_conn *redis_conn_new(struct loop *loop, const char *addr,
                                  const struct redis_conn_opts *opts, redis_conn_event_cb ev,
                                  redis_conn_push_cb push, void *arg);
/* Close: pending commands hear "down". With now, free at once (the loop has
 * stopped); else the memory goes when the loop next sleeps, so callers up
 * the stack may still look at it. */
void redis_conn_free(struct redis_conn *c, int now);

/* Send one command, already in RESP (redisFormatCommandArgv), copied. cb
 * hears the reply (borrowed for the call), or "down", "timeout",
 * "connection lost" or "too many commands waiting"; it may run before this
 * returns. */
void redis_conn_send(struct redis_conn *c, const char *cmd, size_t len, redis_conn_reply_cb cb,
                     void *arg);

int redis_conn_ready(const struct redis_conn *c);
const char *redis_conn_addr(const struct redis_conn *c);
/* Why the last attempt failed or the connection dropped, "" if never. */
const char *redis_conn_error(const struct redis_conn *c);

#endif
