/* cascade.h - runs a request's route on the upstream loop.
 *
 * A route is a list of stages (http.c picks it by the request's model with
 * config_route, config.h). The run is a small state machine driven by call
 * completions, timers and cancellation, never a thread. For a fallback
 * route every stage relays its answer live, and the next stage is tried on
 * a connect failure, a timeout, a 5xx or a 429, but never after an answer
 * byte has reached the client.
 *
 * Everything here runs in the loop thread.
 */
#ifndef SLUICE_CASCADE_H
#define SLUICE_CASCADE_H

struct loop;
struct upstream;
struct exchange;

/* Run ex's route. Takes over one reference to ex, dropped when the run
 * ends. */
void cascade_start(struct loop *loop, struct upstream *up, struct exchange *ex);

/* The client went away: stop every call of ex's run, if it still runs.
 * Borrows ex. */
void cascade_cancel(struct exchange *ex);

/* Shutdown: end every run still going with a 503, so that every suspended
 * connection is resumed and answered. */
void cascade_abort_all(void);

#endif
