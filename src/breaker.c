/* breaker.c - circuit breakers per provider; see breaker.h. */
#include "breaker.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 10 /* the error-rate window, in slices */

struct breaker {
    char *name;
    enum breaker_state state;
    long streak;         /* failures in a row */
    uint64_t opened_us;  /* when it last opened */
    int probing;         /* half-open: the probe is out */
    uint64_t bucket_us;  /* start of the newest slice */
    long calls[BUCKETS]; /* per slice, newest at [head] */
    long fails[BUCKETS];
    int head;
    struct breaker *next;
};

/* The list is read by workers (/readyz) and changed by the loop. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct breaker *breakers;
/* The clock cooldowns and windows are measured on (breaker_set_clock). */
static uint64_t (*clock_us)(void) = now_us;

void breaker_set_clock(uint64_t (*now)(void))
{
    clock_us = now ? now : now_us;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_HALF_OPEN:
        return "half-open";
    case BREAKER_OPEN:
        return "open";
    }
    return "?";
}

/* Find or make p's breaker. Called with mu held. */
static struct breaker *get(const struct provider *p)
{
    struct breaker *b;

    for (b = breakers; b; b = b->next)
        if (strcmp(b->name, p->name) == 0)
            return b;
    b = xcalloc(1, sizeof(*b));
    b->name = xstrdup(p->name);
    b->next = breakers;
    breakers = b;
    return b;
}

/* Age the window: slices older than window_s are emptied. */
static void advance(struct breaker *b, const struct provider *p, uint64_t now)
{
    uint64_t slice = (uint64_t)p->breaker_window_s * 1000000u / BUCKETS;

    if (slice == 0)
        slice = 1;
    if (b->bucket_us == 0)
        b->bucket_us = now;
    while (now >= b->bucket_us + slice) {
        b->head = (b->head + 1) % BUCKETS;
        b->calls[b->head] = 0;
        b->fails[b->head] = 0;
        b->bucket_us += slice;
        if (now - b->bucket_us > (uint64_t)BUCKETS * slice)
            b->bucket_us = now; /* long idle: skip ahead */
    }
}

static void set_state(struct breaker *b, enum breaker_state s, const char *why)
{
    if (b->state == s)
        return;
    b->state = s;
    metrics_breaker(b->name, (int)s);
    log_msg(s == BREAKER_OPEN ? LOG_WARN : LOG_INFO, "circuit breaker of provider %s: %s%s%s%s",
            b->name, breaker_state_name(s), why ? " (" : "", why ? why : "", why ? ")" : "");
}

int breaker_allow(const struct provider *p)
{
    struct breaker *b;
    uint64_t now = clock_us();
    int ok = 1;

    pthread_mutex_lock(&mu);
    b = get(p);
    switch (b->state) {
    case BREAKER_CLOSED:
        break;
    case BREAKER_OPEN:
        if (now - b->opened_us >= (uint64_t)p->breaker_cooldown_s * 1000000u) {
            set_state(b, BREAKER_HALF_OPEN, NULL);
            b->probing = 1; /* this call is the probe */
        } else {
            ok = 0;
        }
        break;
    case BREAKER_HALF_OPEN:
        if (b->probing)
            ok = 0; /* one probe at a time */
        else
            b->probing = 1;
        break;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

int breaker_peek(const struct provider *p)
{
    struct breaker *b;
    int ok;

    pthread_mutex_lock(&mu);
    b = get(p);
    ok = b->state == BREAKER_CLOSED ||
         (b->state == BREAKER_OPEN &&
          clock_us() - b->opened_us >= (uint64_t)p->breaker_cooldown_s * 1000000u) ||
         (b->state == BREAKER_HALF_OPEN && !b->probing);
    pthread_mutex_unlock(&mu);
    return ok;
}

void breaker_record(const struct provider *p, int ok)
{
    struct breaker *b;
    uint64_t now = clock_us();
    long calls = 0, fails = 0;

    pthread_mutex_lock(&mu);
    b = get(p);
    advance(b, p, now);
    b->calls[b->head]++;
    if (!ok)
        b->fails[b->head]++;
    b->streak = ok ? 0 : b->streak + 1;
    if (b->state == BREAKER_HALF_OPEN) {
        b->probing = 0;
        if (ok) {
            memset(b->calls, 0, sizeof(b->calls));
            memset(b->fails, 0, sizeof(b->fails));
            set_state(b, BREAKER_CLOSED, NULL);
        } else {
            b->opened_us = now;
            set_state(b, BREAKER_OPEN, "the probe failed");
        }
        pthread_mutex_unlock(&mu);
        return;
    }
    for (int i = 0; i < BUCKETS; i++) {
        calls += b->calls[i];
        fails += b->fails[i];
    }
    if (b->state == BREAKER_CLOSED && !ok) {
        if (p->breaker_failures > 0 && b->streak >= p->breaker_failures) {
            b->opened_us = now;
            set_state(b, BREAKER_OPEN, "failures in a row");
        } else if (p->breaker_error_rate > 0 && calls >= p->breaker_min_requests &&
                   (double)fails >= p->breaker_error_rate * (double)calls) {
            b->opened_us = now;
            set_state(b, BREAKER_OPEN, "error rate");
        }
    }
    pthread_mutex_unlock(&mu);
}

json_t *breaker_report(void)
{
    json_t *o = json_object();

    pthread_mutex_lock(&mu);
    for (struct breaker *b = breakers; b; b = b->next)
        json_object_set_new(o, b->name, json_string(breaker_state_name(b->state)));
    pthread_mutex_unlock(&mu);
    return o;
}

void breaker_free_all(void)
{
    pthread_mutex_lock(&mu);
    while (breakers) {
        struct breaker *b = breakers;

        breakers = b->next;
        free(b->name);
        free(b);
    }
    pthread_mutex_unlock(&mu);
}
