/* mock_conn.h - sluice-mock's connections: the listening socket, accept,
 * non-blocking reads and writes, HTTP/1.1 keep-alive and pipelining,
 * "Expect: 100-continue", and delivering each reply on time (the first-byte
 * delay, a stream's paced steps, the reset, hang and truncate faults, a
 * graceful close).
 *
 * It runs on one loop (loop.c) and knows nothing of the API: every complete
 * request goes to the request callback, which fills a struct mock_reply.
 * Requests on one connection are answered in order; a request that cannot
 * be parsed gets its error and the connection closes.
 */
#ifndef SLUICE_MOCK_CONN_H
#define SLUICE_MOCK_CONN_H

#include "loop.h"
#include "mock_http.h"
#include "mock_reply.h"

#include <stddef.h>

/* Answer one complete request: fill r (mock_reply_start has run). req and
 * its strings are borrowed for the call only. */
typedef void (*mock_conn_request_cb)(struct mock_reply *r, const struct mock_http_req *req,
                                     void *arg);

/* What the connections have done since the last mock_conn_counts_reset, and
 * what is open now. */
struct mock_conn_counts {
    long long connections; /* accepted */
    long long streams_started;
    long long streams_completed;
    long long streams_aborted; /* the connection closed before the last step */
    long long active;          /* open connections, now */
    long long streams_active;  /* streams under way, now */
};

/* Listen on spec ("HOST:PORT", "[V6]:PORT", ":PORT" or "PORT"; port 0 picks
 * a free one) and serve connections on loop, answering with cb(arg). shown
 * gets the "HOST:PORT" to announce (the real port). Return 0, or -1 with a
 * message on stderr. One listener a process. */
int mock_conn_listen(struct loop *loop, const char *spec, mock_conn_request_cb cb, void *arg,
                     char *shown, size_t shownlen);

/* Close the listener and every connection (after loop_run has returned). */
void mock_conn_close_all(void);

void mock_conn_counts(struct mock_conn_counts *out);
void mock_conn_counts_reset(void);

#endif
