/* upstream.h - HTTP calls to providers, driven by one curl multi handle on a
 * loop (curl_multi_socket_action with the loop's epoll and timers, the shape
 * of curl's docs/examples/ephiperfifo.c).
 *
 * One upstream per loop; every call made on it shares its connection cache,
 * so keep-alive and HTTP/2 connections to a provider are reused across
 * requests. Everything here runs in the loop's thread.
 *
 * A call reports through its ops: on_data for each body chunk as it arrives,
 * then exactly one on_done, unless the owner cancels it first, after which
 * no callback runs. The call is freed right after on_done returns.
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct upstream;
struct call;
struct curl_slist;

enum call_err {
    CALL_OK = 0,
    CALL_ERR_CONNECT,    /* could not connect (refused, DNS, TLS, connect timeout) */
    CALL_ERR_TIMEOUT,    /* total timeout */
    CALL_ERR_FIRST_BYTE, /* no response byte within first_byte_timeout_ms */
    CALL_ERR_IDLE,       /* a stream went silent for idle_timeout_ms */
    CALL_ERR_NETWORK,    /* reset, truncated, protocol error */
    CALL_ERR_ABORTED,    /* on_data asked to stop */
};

struct call_ops {
    /* Body bytes (after any transfer decoding). The status is known by now
     * (call_status). Return 0 to go on, -1 to abort the call (on_done then
     * reports CALL_ERR_ABORTED). */
    int (*on_data)(struct call *c, const char *p, size_t n, void *arg);
    /* The call ended. err is NULL on success (a complete HTTP response of any
     * status), else a human-readable reason; call_err() tells the kind. */
    void (*on_done)(struct call *c, const char *err, void *arg);
};

/* What to send. The call takes ownership of url, headers and body. */
struct call_spec {
    char *url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    long connect_timeout_ms;
    long timeout_ms;
    long first_byte_timeout_ms;
    long idle_timeout_ms;
    int small_reads;     /* a stream: many small reads, a small buffer */
    int http2;           /* HTTP/2 over https (ALPN); else HTTP/1.1 */
    const char *ca_file; /* CA bundle, borrowed (the config outlives the call); NULL: curl's */
};

/* Fill spec for a plain JSON POST to url (taken over, as is body) with one
 * timeout for connect, first byte and total. */
void call_spec_json(struct call_spec *spec, char *url, char *body, long timeout_ms);

struct upstream *upstream_new(struct loop *loop);
/* Cancel every call (no callbacks) and free. */
void upstream_free(struct upstream *up);

/* Start a call. Never fails: a call that cannot start reports through
 * on_done on a later loop iteration. ops and arg are borrowed and must stay
 * valid until on_done or call_cancel. */
struct call *upstream_call(struct upstream *up, struct call_spec *spec, const struct call_ops *ops,
                           void *arg);
/* Stop a call; no callback of it runs afterwards. Safe from inside any of
 * the call's (or another call's) callbacks. */
void call_cancel(struct call *c);

long call_status(const struct call *c);
enum call_err call_err(const struct call *c);
/* Retry-After of the response in ms (seconds or retry-after-ms), -1 if none. */
long call_retry_after_ms(const struct call *c);
/* Microseconds from start to the first response byte (0 if none yet), and
 * to the end. */
uint64_t call_ttfb_us(const struct call *c);
uint64_t call_elapsed_us(const struct call *c);

/* Calls in flight on this upstream. */
size_t upstream_active(const struct upstream *up);

#endif
