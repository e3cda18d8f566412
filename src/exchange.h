/* exchange.h - one client request and its response, shared by the HTTP
 * worker that received it and the upstream loop that answers it.
 *
 * Ownership: refcounted. The worker holds one reference for the connection
 * (dropped when MHD reports the request completed), the loop holds one while
 * the route runs, and a streamed MHD response holds one until MHD frees it.
 * The last unref runs the driver's on_end hooks (phase.h: the log line,
 * metrics, the trace, limits settled) and frees it, so they see the final
 * state of both sides without a race.
 *
 * Threads: fields marked [w] belong to the worker, [l] to the loop, [mu] are
 * guarded by mu. Fields set before the hand-off to the loop and never changed
 * after it ([ro]) need no lock.
 *
 * Hand-off loop -> worker: the loop puts bytes in `out`, then, if the worker
 * had suspended the connection, clears `suspended` and resumes it, all under
 * mu. The worker sets `suspended` and suspends under the same mutex, so a
 * resume is never lost and never sent to a connection that is not suspended.
 */
#ifndef SLUICE_EXCHANGE_H
#define SLUICE_EXCHANGE_H

#include "cache_types.h"
#include "config.h"
#include "dialect.h"
#include "limits_types.h"
#include "request.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>

struct MHD_Connection;
struct deadline;
struct loop;
struct exchange;
struct run;
struct flight;
struct waiter;
struct otel_trace;

enum ex_state {
    EX_PENDING,   /* the loop is working; nothing for the client yet */
    EX_STREAMING, /* 200 + text/event-stream committed; bytes flow via out */
    EX_DONE,      /* complete: a full body in out, or the stream has ended */
};

/* What a phase's run says (phase.h): go on to the next phase, the request
 * is answered, or the phase will resume the request later (ex_resume). */
enum phase_result {
    PHASE_NEXT,
    PHASE_DONE,
    PHASE_AGAIN,
};

/* How a phase reaches the driver that runs it (phase.c) without naming it:
 * the exchange carries the driver's entry points. */
struct ex_driver {
    /* A phase that said PHASE_AGAIN goes on with NEXT or DONE. Loop thread. */
    void (*resume)(struct exchange *ex, enum phase_result r);
    /* The route's answer (body NULL: none), for the earlier phases' on_answer
     * hooks. Borrows body. Loop thread. */
    void (*answer)(struct exchange *ex, const char *body, size_t len);
    /* The last unref: the on_end hooks, once (NULL: none). Any thread. */
    void (*end)(struct exchange *ex);
};

/* What the x-sluice-* headers and the log line report. [l] until EX_DONE. */
struct ex_meta {
    const char *model; /* configured name of the model that answered */
    const char *provider;
    double cost_usd;
    long prompt_tokens;
    long completion_tokens;
    long cached_tokens;   /* of prompt_tokens, read from a provider's prompt cache */
    uint64_t upstream_us; /* time spent waiting on upstream calls */
    uint64_t ttft_us;     /* first byte of the answer to the client */
    int attempts;         /* upstream calls made */
    int retries;          /* of which retries */
    struct buf stages;    /* "model:score:decision,..." */
    enum cache_status cache;
    double saved_cost; /* a hit: what the answer cost when it was made */
    char *owned_model; /* a hit: model and provider come from the entry */
    char *owned_provider;
};

struct exchange {
    pthread_mutex_t mu;
    int refs; /* atomic */

    /* [ro] after hand-off */
    struct config *cfg;  /* snapshot the request runs on (one reference) */
    struct cache *cache; /* the cache instance it started with (one reference) */
    const struct route *route;
    struct request_info ri;
    struct buf in;          /* the request body as the client wrote it (the worker fills it);
                             * for another dialect, its translation into the chat form */
    /* in and ri.body (the text and its tree) are given back by the loop
     * once nothing will read them again (ex_release_request); ri's other
     * fields stay. */
    enum dialect dialect;   /* the client's API, from the path ([w] until the hand-off) */
    struct dialect_ctx *dx; /* its translation state (NULL for chat); the stream's part is
                             * the loop's until EX_DONE, then the worker's */
    char request_id[64];
    uint64_t t_start_us;
    double t_start_wall;

    /* [mu] */
    struct MHD_Connection *conn; /* NULL once MHD has finished with it */
    int suspended;
    enum ex_state state;
    int streamed;         /* the response is an event stream (ex_stream_begin) */
    int status;           /* HTTP status of the response */
    struct buf out;       /* response bytes not yet taken by the worker */
    size_t out_off;       /* bytes of out already taken */
    size_t out_accounted; /* out's allocation as counted in the stream memory */
    struct api_error err; /* set on failure; mid-stream it becomes an SSE error event */
    struct ex_meta meta;

    /* [w] */
    int phase;    /* http.c's progress through the request */
    int err_sent; /* the SSE error event went out */
    int in_too_big;
    int is_api;        /* counted in http_api_inflight() */
    int client_status; /* status actually sent, for the log */
    int retry_after_s; /* a Retry-After to send with an error, 0 = none */
    int client_aborted;
    struct deadline *deadline; /* the connection's (deadline.h) */
    uint64_t t_end_us;
    char method[16];
    char path[128];

    /* [l] the driver's (phase.c): set by the worker (driver) or when the
     * request enters the loop (the rest) */
    const struct ex_driver *driver; /* NULL: no phases (a unit test's exchange) */
    struct loop *loop;              /* the loop the request runs on, once it is there */
    int phase_run;                  /* 1 + the index of the phase that holds it; 0: none */
    int answered;                   /* the route handed its answer (on_answer ran) */
    int keep_answer;                /* an on_answer hook wants the whole answer, even
                                     * of a stream (the cache stores it) */

    /* [l] */
    struct run *run;
    struct flight *flight; /* leads this single-flight lookup */
    struct waiter *waiter; /* waits on another request's answer */

    /* set by the worker before the hand-off */
    struct cache_plan cache_plan;
    char *client_auth;            /* the client's Authorization, kept only when a
                                   * provider of the route has passthrough_auth */
    const struct client_key *key; /* the client key (tenant), in cfg; or NULL */

    /* the request's trace (otel.h): made by the worker before the hand-off,
     * added to by the loop while the run holds its reference, ended at the
     * last unref; NULL when not traced */
    struct otel_trace *otel;

    /* [l] until EX_DONE: the key's limits */
    struct limit_info limit;
    long limit_est;     /* tokens reserved at admission */
    int limit_reserved; /* admitted and counted: settle at the end */
    long limit_minute;
    char limit_period[16];
    double limit_hold_usd; /* the budget held at admission, released at the end */
};

/* A new exchange with one reference (the caller's). */
struct exchange *ex_new(struct MHD_Connection *conn, size_t max_body);
struct exchange *ex_ref(struct exchange *ex);
void ex_unref(struct exchange *ex);

/* A phase that said PHASE_AGAIN resumes: r is PHASE_NEXT or PHASE_DONE.
 * Takes over the reference the phase held. Without a driver (a phase run
 * alone in a unit test) the reference is dropped. Loop thread. */
void ex_resume(struct exchange *ex, enum phase_result r);
/* The route hands its answer (body NULL: none) to the driver, which runs
 * the earlier phases' on_answer hooks (the cache stores it). Borrows body.
 * Without a driver, nothing. Loop thread. */
void ex_answer(struct exchange *ex, const char *body, size_t len);

/* Loop side. Each takes mu, changes the state and resumes the connection if
 * the worker is waiting. They borrow their arguments unless said otherwise. */

/* Complete a non-streamed response: status, Content-Type JSON and body.
 * Takes ownership of body (malloc'd). */
void ex_respond(struct exchange *ex, int status, char *body, size_t len);
/* Complete a response that is a whole event stream at once (a cache hit
 * replayed to a streaming client). Takes ownership of body. */
void ex_respond_sse(struct exchange *ex, char *body, size_t len);
/* Fill meta for an answer served from the cache: it cost nothing now and
 * saved `cost`. Borrows the strings (copies them). */
void ex_set_cached_meta(struct exchange *ex, const char *model, const char *provider,
                        const char *stages, double cost);
/* Fail: before the stream began, an error response; after, an SSE error
 * event and the end of the stream. */
void ex_fail(struct exchange *ex, const struct api_error *err);
/* Commit a 200 event stream; the headers go out now. meta.model must be
 * set before (it goes in a header) and not change after. */
void ex_stream_begin(struct exchange *ex);
/* Queue stream bytes (in the chat form; a client of another dialect gets
 * them translated). Returns 0; -1 when the client is too slow and this
 * stream's buffer is at its cap (STREAM_BUF_MAX); EX_STREAM_MEMORY_FULL when
 * all streams together hold max_stream_memory_bytes and this one is behind
 * (holds STREAM_KEEP_BYTES or more). The caller then fails the exchange. */
#define EX_STREAM_MEMORY_FULL (-3)
int ex_stream_write(struct exchange *ex, const char *p, size_t n);
/* Worker side, with mu held: copy up to max bytes of out, not yet taken,
 * to dst and return how many. A buffer the worker has taken all of is
 * freed: an open stream holds memory only while bytes wait for its client. */
size_t ex_stream_take_locked(struct exchange *ex, char *dst, size_t max);
/* Loop side: free the request's body, its text (in) and its tree
 * (ri.body; ri.model with it), keeping ri's other fields. For a stream whose
 * answer is committed and whose body nothing reads again: it is often the
 * largest part of an open stream, and long prompts make it larger. */
void ex_release_request(struct exchange *ex);
/* Bytes all open streams' buffers hold now. Any thread. */
size_t ex_stream_memory(void);
/* End a stream normally. */
void ex_stream_end(struct exchange *ex);
/* True once the worker reported the connection gone. */
int ex_client_gone(struct exchange *ex);

#endif
