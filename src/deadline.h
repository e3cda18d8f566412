/* deadline.h - deadlines for a client to send a request: its line and
 * headers within client_header_timeout_s, then its body within
 * client_body_timeout_s.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * trickles one byte every few seconds (slowloris) never trips it, and enough
 * of them fill max_connections. This module keeps, per connection, when the
 * part being read began, and deadline_reap() (the loop, about once a second)
 * shuts down the socket of every connection past its deadline; libmicrohttpd
 * then sees the connection fail and closes it in its own thread. No response
 * is sent: libmicrohttpd 0.9.75 takes none while a body is being read.
 *
 * Connections waiting on the gateway (suspended, streaming) or idle between
 * keep-alive requests are not on the clock: the idle timeout covers those.
 *
 * Threads: the connection calls come from the MHD worker that owns the
 * connection; deadline_reap from the loop. One mutex guards the list of
 * connections on the clock. The socket is shut down under that mutex, and
 * libmicrohttpd reports a connection closed (deadline_conn_closed) before it
 * closes the socket, so a reaped fd is never one that was reused.
 */
#ifndef SLUICE_DEADLINE_H
#define SLUICE_DEADLINE_H

#include <stdint.h>

struct deadline; /* one per connection, in MHD's socket context */

/* MHD_CONNECTION_NOTIFY_STARTED: the first request's clock starts now. */
struct deadline *deadline_conn_started(int fd);
/* MHD_CONNECTION_NOTIFY_CLOSED: frees d (may be NULL). */
void deadline_conn_closed(struct deadline *d);
/* A request line arrived: on a keep-alive connection, the next request's
 * clock starts now. */
void deadline_request_begins(struct deadline *d);
/* The headers are in: the body's clock starts. */
void deadline_headers_done(struct deadline *d);
/* The body is in: off the clock until the next request. */
void deadline_body_done(struct deadline *d);
/* Shut down every connection past its deadline at now_us. Returns how many
 * were, and adds to *headers and *body by phase. */
int deadline_reap(uint64_t now_us, uint64_t header_us, uint64_t body_us, int *headers, int *body);

#endif
