/* attempt.h - one upstream call of a run, with its retries and its
 * provider's circuit breaker.
 *
 * An attempt calls one model (or a scorer service) through upstream.c,
 * reads what comes back (a whole body, or a stream turned into chunks of
 * the internal form), and decides how the call ended: a usable 2xx answer,
 * or a failure noted in its owner's failure notes in the API's error shape.
 * A failure that is the upstream's fault is counted by the provider's
 * breaker and retried, as the provider's policy says (backoff with full
 * jitter, Retry-After honoured up to a limit), until an answer byte has
 * reached the client.
 *
 * The owner (cascade.c's run) knows nothing of retries or breakers; it sees
 * an attempt through a narrow interface: its kind's done callback, called
 * once when the attempt's outcome stands, and two hooks (struct att_hooks):
 * account, called for every try that ended (also one that will be retried),
 * and relay, called with each stream payload for the client. What the stage
 * logic decides (which models, which kind, what to keep) stays with it.
 *
 * Everything here runs in the loop thread.
 */
#ifndef SLUICE_ATTEMPT_H
#define SLUICE_ATTEMPT_H

#include "exchange.h"
#include "loop.h"
#include "otel.h"
#include "provider.h"
#include "sse.h"
#include "util.h"

#include <jansson.h>
#include <stddef.h>

struct attempt;
struct call;
struct model;
struct upstream;

/* What a kind of call is: its role in the trace ("answer", "judge",
 * "scorer"), and the one callback that takes its outcome. done gets ok = 1
 * for a usable 2xx answer; c is NULL when no call was made (err then says
 * why). The attempt's try has been accounted (att_hooks.account) and
 * a->call is NULL when done runs; done ends the attempt (attempt_free),
 * now or later. */
struct att_kind {
    const char *role;
    void (*done)(struct attempt *a, struct call *c, const char *err, int ok);
};

/* The owner's side of its attempts. */
struct att_hooks {
    /* A try of a ended, c its call (NULL when none was made): count its
     * time and cost. Called before done, and before each retry. */
    void (*account)(struct attempt *a, struct call *c);
    /* One payload of a streamed answer for the client (the internal form,
     * without "data: "). Returns 0, or -1 to abort the call: then the hook
     * sets a->bad, and a->client_fault when the client is at fault. */
    int (*relay)(struct attempt *a, const char *data, size_t len);
};

/* What a run shares with its attempts: set up by the owner with
 * att_owner_init, read and written by both, all in the loop thread. */
struct att_owner {
    struct exchange *ex; /* borrowed */
    struct loop *loop;
    struct upstream *up;
    const struct att_hooks *hooks;
    void *arg;            /* the owner's own, for its callbacks */
    struct attempt *list; /* every live attempt */
    /* Why the last call failed, as the client would be told... */
    struct api_error last_err;
    /* ...unless an upstream 4xx error body passes through as is (owned; NULL
     * when none), */
    char *pass_body;
    size_t pass_len;
    int pass_status;
    int retry_after_s; /* an upstream 429's Retry-After, to pass on */
    int answering;     /* set by the owner once an answer byte went out: no retry now */
    int retries;       /* retries made since the owner last cleared it */
};

/* One upstream call of a run, and what it has produced so far. The owner
 * reads it in its callbacks and sets asm_, keep_text and timeout_ms before
 * attempt_start. */
struct attempt {
    struct att_owner *owner;
    const struct att_kind *kind;
    const struct model *model; /* NULL for the http scorer */
    struct call *call;         /* in flight, or NULL */
    enum endpoint ep;
    int stream;      /* asked upstream for an event stream */
    struct buf body; /* whole body (non-stream) or error body */
    struct sse sse;
    struct reply reply;
    int saw_done;               /* data: [DONE] arrived */
    const char *bad;            /* why the response is unusable, or NULL */
    struct assembly *asm_;      /* a relayed stream, rebuilt for the cache; owned */
    struct provider_stream *xs; /* turns the provider's stream into chunks, or NULL */
    /* A relayed stream's text is kept in reply.content only when something
     * reads it (a scorer, the inference table, captured traces); else it
     * is counted and dropped event by event, so an open stream does not
     * grow with its answer. */
    int keep_text;
    size_t text_dropped;
    int client_fault; /* bad is about our client (too slow), not the upstream */
    long timeout_ms;  /* >= 0: the call's whole and first-byte timeout (a judge's) */
    int stage;        /* the owner's stage, for the trace */
    const char *url;  /* the scorer service's, for the trace; borrowed */
    json_t *req;      /* what was sent (for a retry); one reference, which the owner may
                       * drop (NULL) once answering rules out a retry */
    int tries;        /* retries made */
    struct loop_timer retry;
    struct otel_call oc; /* this try's span */
    struct attempt *next;
};

/* Set up o for ex's calls on loop's curl multi up (all borrowed), with the
 * owner's hooks and arg. last_err starts as a 502 "No upstream could
 * answer."; the rest empty. */
void att_owner_init(struct att_owner *o, struct exchange *ex, struct loop *loop,
                    struct upstream *up, const struct att_hooks *hooks, void *arg);

/* Free every attempt of o (cancelling calls in flight) and the pass body. */
void att_owner_free(struct att_owner *o);

/* Drop a pass-through body, if any. */
void att_owner_clear_pass(struct att_owner *o);

/* A new attempt of o, of kind (borrowed, static), at the owner's stage, on
 * model m (NULL for the http scorer): not started. Owned by o's list until
 * attempt_free. */
struct attempt *attempt_new(struct att_owner *o, const struct att_kind *kind, int stage,
                            const struct model *m, enum endpoint ep, int stream);

/* Send body (one reference taken) to a's model, if its provider's breaker
 * allows; else the attempt fails at once (its kind's done, with no call,
 * before this returns), as it does when the provider cannot express the
 * request (the request's fault: no breaker failure). */
void attempt_start(struct attempt *a, const json_t *body);

/* POST body (taken) as JSON to url (copied) for an http-scorer attempt:
 * no breaker, no retry. */
void attempt_post(struct attempt *a, const char *url, char *body, long timeout_ms);

/* Bytes of answer text a has read, kept or not. */
size_t attempt_text_len(const struct attempt *a);

/* Take a off its owner's list and free it; a call in flight is cancelled
 * (and its span ended as cancelled). */
void attempt_free(struct attempt *a);

#endif
