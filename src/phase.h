/* phase.h - request handling as a short table of phases, and the driver
 * that runs a request through them (nginx's phase handlers, Envoy's filter
 * chain):
 *
 *   phase      run                 cancel          on_answer      on_end
 *   observe    -                   -               -              observe_end
 *   admission  limits_run          -               -              limits_settle
 *   cache      cache_run           cache_cancel    cache_finish   cache_end
 *   route      cascade_run         cascade_cancel  -              -
 *
 * run returns PHASE_NEXT (go on), PHASE_DONE (the request is answered) or
 * PHASE_AGAIN (the phase resumes it later with ex_resume: limits waiting on
 * Redis, the cache on Redis or on another request's answer, the route on
 * its calls). The route hands its answer with ex_answer; the driver runs
 * the on_answer hooks of the phases before it, last first (the cache
 * stores it and answers the requests that waited for it). When a request
 * ends without an answer, they run once with none. At the exchange's last
 * unref every phase's on_end hook runs once, in table order (the log line
 * first, then limits settle, then the cache instance is let go).
 *
 * No phase names another: each reaches the driver through ex->driver
 * (exchange.h), and only this module includes them all.
 *
 * Threads: phase_start and phase_cancel run in the loop; on_end hooks run
 * at the last unref, in any thread.
 */
#ifndef SLUICE_PHASE_H
#define SLUICE_PHASE_H

struct exchange;
struct loop;

/* The driver the exchanges carry (ex->driver), set by the worker when it
 * makes one, so every exchange's last unref runs the on_end hooks. */
extern const struct ex_driver phase_driver;

/* Loop: run ex through the phases, from the first. Takes over one reference
 * to ex, dropped when the request is answered. */
void phase_start(struct loop *loop, struct exchange *ex);

/* Loop: ex's client went away: cancel the phase that holds ex, if it can
 * be cancelled (a cache wait, a route's calls). Borrows ex. */
void phase_cancel(struct exchange *ex);

#endif
