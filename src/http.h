/* http.h - the HTTP front: a libmicrohttpd thread pool
 * (MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME).
 *
 * Workers read the body, validate it, resolve the route and hand the request
 * to the upstream loop, then suspend the connection; they never block on the
 * network. The loop resumes the connection when it has bytes for it. This is
 * also the one place that turns an api_error into OpenAI's error JSON.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "dialect.h"
#include "request.h"

#include <stddef.h>

struct config;
struct loop;

/* Load the config file again and make it current if it is valid: 0 with the
 * file's path in msg, or -1 with the errors in msg (server_reload is it). */
typedef int (*http_reload_fn)(char *msg, size_t msglen);

/* Start listening on `listen` ("host:port"; port 0 picks one) with the
 * config's worker count and limits, and the admin API on admin.listen when
 * the config has one. Requests are handed to loop (borrowed: it outlives
 * the front); POST /admin/reload calls reload. Returns 0 or -1 (message
 * logged). */
int http_start(const struct config *cfg, const char *listen, struct loop *loop,
               http_reload_fn reload);
/* The ports actually bound (the admin one is 0 without admin.listen). */
int http_port(void);
int http_admin_port(void);
/* Close the connections of clients past their header or body deadlines
 * (client_header_timeout_s, client_body_timeout_s; deadline.h): counted and
 * logged. The loop calls it about once a second. */
void http_reap_slow_clients(void);
/* Stop accepting new connections (in-flight ones go on). */
void http_quiesce(void);
/* Draining (SIGTERM) or not: while draining, /readyz answers 503 so the
 * balancer stops sending, and every response closes its connection so a
 * keep-alive pool cannot hold the drain open. Any thread. */
void http_set_draining(int on);
/* Requests alive on the front, any path, and of them /v1 API requests
 * (which max_inflight caps); the drain waits for the first to reach 0. Any
 * thread. */
long http_inflight(void);
long http_api_inflight(void);
/* Stop the daemon; every connection must be resumed by then. */
void http_stop(void);

/* OpenAI's error JSON for e: {"error":{"message","type","param","code"}}.
 * Returns a malloc'd string owned by the caller; *len gets its length. */
char *http_error_json(const struct api_error *e, size_t *len);
/* The error as a client of dialect d expects it: OpenAI's JSON for chat and
 * Responses clients; for Messages clients Anthropic's,
 * {"type":"error","error":{"type","message"},"request_id"}, with its error
 * type for the status and its status (503, overloaded, becomes 529). Sets
 * *status to the status to send. Returns a malloc'd string. */
char *http_error_body(enum dialect d, const struct api_error *e, const char *request_id,
                      int *status, size_t *len);

#endif
