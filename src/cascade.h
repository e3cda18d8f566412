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

#include "exchange.h"

struct loop;
struct upstream;

/* Run ex's route on loop's curl multi up. Takes over one reference to ex;
 * the run hands its answer to ex_answer (the driver's on_answer hooks: the
 * cache stores it) and, when it ends, gives the reference back with
 * ex_resume(ex, PHASE_DONE). */
void cascade_start(struct loop *loop, struct upstream *up, struct exchange *ex);

/* The route phase (phase.h): cascade_start on ex's loop and the curl multi
 * it lends (loop_upstream). Returns PHASE_AGAIN: the run resumes ex when
 * it ends. */
enum phase_result cascade_run(struct exchange *ex);

/* cancel: the client went away: stop every call of ex's run, if it still
 * runs. Borrows ex. */
void cascade_cancel(struct exchange *ex);

/* Shutdown: end every run still going with a 503, so that every suspended
 * connection is resumed and answered. */
void cascade_abort_all(void);

#endif
