/* mock_ep.h - sluice-mock's endpoints: which path is which (OpenAI's,
 * Azure OpenAI's deployments, Anthropic's messages, the mock's own
 * /_mock/ paths), the key check, and the answer to each: chat, completions,
 * embeddings, models, Anthropic messages and count_tokens (mock_anthropic.c),
 * stats, reset, health.
 *
 * An API request's "mock" controls (mock_ctl.c) decide its faults and
 * timing; mock_gen.c and mock_anthropic.c render its bytes; the answer is a
 * struct mock_reply that the connection (mock_conn.c) delivers. The counts
 * GET /_mock/stats reports live here (the connections' come from
 * mock_conn.c). One thread: the loop's.
 */
#ifndef SLUICE_MOCK_EP_H
#define SLUICE_MOCK_EP_H

#include "mock_http.h"
#include "mock_reply.h"

#include <jansson.h>

struct mock_replay;

/* The command line's part in every answer. */
struct mock_ep_opts {
    const char *require_key; /* or NULL: no key check */
    long first_byte_ms;      /* defaults a request's "mock" overrides */
    long chunks;
    long interval_ms;
    int verbose; /* one line per request on stderr */
};

/* Set up the endpoints. o is copied (its strings are borrowed for the life
 * of the process); replay (or NULL) is borrowed; defaults (model -> "mock"
 * object, from --mock and --content; or NULL) is taken. The models listed
 * are mock-small, mock-large and the replayed ones. */
void mock_ep_init(const struct mock_ep_opts *o, const struct mock_replay *replay, json_t *defaults);
void mock_ep_free(void);

/* mock_conn_request_cb: answer one request. */
void mock_ep_request_cb(struct mock_reply *r, const struct mock_http_req *req, void *arg);

#endif
