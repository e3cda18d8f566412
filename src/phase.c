/* phase.c - the phase table and its driver; see phase.h. */
#include "phase.h"
#include "cache.h"
#include "cascade.h"
#include "exchange.h"
#include "limits.h"
#include "observe.h"
#include "util.h"

/* One phase of request handling. Every hook is optional (NULL). */
struct phase {
    const char *name;
    /* Loop: do the phase's work. Borrows ex (the driver holds the loop's
     * reference); a phase that says PHASE_AGAIN keeps using it until it
     * calls ex_resume. */
    enum phase_result (*run)(struct exchange *ex);
    /* Loop: the client left while this phase held ex (said PHASE_AGAIN).
     * The phase stops its work and, if it did, resumes ex with PHASE_DONE;
     * a phase that cannot stop lets its work finish. */
    void (*cancel)(struct exchange *ex);
    /* Loop: a later phase answered ex (body NULL: no answer). Borrows body. */
    void (*on_answer)(struct exchange *ex, const char *body, size_t len);
    /* The last unref, any thread; runs for every exchange, whether or not
     * it reached this phase. */
    void (*on_end)(struct exchange *ex);
};

static const struct phase phases[] = {
    {"observe", NULL, NULL, NULL, observe_end},
    {"admission", limits_run, NULL, NULL, limits_settle},
    {"cache", cache_run, cache_cancel, cache_finish, cache_end},
    {"route", cascade_run, cascade_cancel, NULL, NULL},
};

/* The table the driver runs (a unit test may run a table of its own). */
static const struct phase *table = phases;
static int nphases = (int)ARRAY_LEN(phases);

/* Run the on_answer hooks of the phases before the one that holds ex, the
 * last first, once per request. */
static void answer_cb(struct exchange *ex, const char *body, size_t len)
{
    if (ex->answered)
        return;
    ex->answered = 1;
    for (int i = ex->phase_run - 2; i >= 0; i--)
        if (table[i].on_answer)
            table[i].on_answer(ex, body, len);
}

/* Go on from the phase that holds ex, given what it said. */
static void drive(struct exchange *ex, enum phase_result r)
{
    while (r == PHASE_NEXT) {
        /* The route always answers: no phase can pass the last one. */
        sl_assert(ex->phase_run < nphases);
        ex->phase_run++;
        r = table[ex->phase_run - 1].run ? table[ex->phase_run - 1].run(ex) : PHASE_NEXT;
    }
    if (r == PHASE_AGAIN)
        return;             /* the phase owns the next step; ex may be gone already */
    answer_cb(ex, NULL, 0); /* answered without one: the hooks hear so */
    ex->phase_run = 0;
    ex_unref(ex);
}

static void resume_cb(struct exchange *ex, enum phase_result r)
{
    sl_assert(ex->phase_run > 0);
    drive(ex, r);
}

static void end_cb(struct exchange *ex)
{
    for (int i = 0; i < nphases; i++)
        if (table[i].on_end)
            table[i].on_end(ex);
}

const struct ex_driver phase_driver = {resume_cb, answer_cb, end_cb};

void phase_start(struct loop *loop, struct exchange *ex)
{
    ex->loop = loop;
    ex->driver = &phase_driver;
    ex->phase_run = 0;
    drive(ex, PHASE_NEXT);
}

void phase_cancel(struct exchange *ex)
{
    if (ex->phase_run > 0 && table[ex->phase_run - 1].cancel)
        table[ex->phase_run - 1].cancel(ex);
}
