/* deadline.c - request header and body deadlines; see deadline.h. */
#include "deadline.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

enum dl_phase {
    DL_IDLE,    /* between requests, or the gateway has the request */
    DL_HEADERS, /* reading the request line and headers */
    DL_BODY,    /* reading the body */
    DL_REAPED,  /* shut down: waiting for libmicrohttpd to close it */
};

struct deadline {
    int fd;
    enum dl_phase phase;
    uint64_t since_us;            /* when the current phase began */
    struct deadline *prev, *next; /* on the clock list while HEADERS or BODY */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct deadline *head; /* connections on the clock */

static void unlink_locked(struct deadline *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else if (head == d)
        head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

/* Move d to phase p, on or off the clock. */
static void set_phase(struct deadline *d, enum dl_phase p)
{
    int on_before, on_after;

    pthread_mutex_lock(&mu);
    if (d->phase == DL_REAPED) {
        pthread_mutex_unlock(&mu);
        return; /* it is going: nothing more is timed */
    }
    on_before = d->phase == DL_HEADERS || d->phase == DL_BODY;
    on_after = p == DL_HEADERS || p == DL_BODY;
    if (on_before && !on_after)
        unlink_locked(d);
    if (!on_before && on_after) {
        d->prev = NULL;
        d->next = head;
        if (head)
            head->prev = d;
        head = d;
    }
    d->phase = p;
    d->since_us = now_us();
    pthread_mutex_unlock(&mu);
}

struct deadline *deadline_conn_started(int fd)
{
    struct deadline *d = xcalloc(1, sizeof(*d));

    d->fd = fd;
    d->phase = DL_IDLE;
    set_phase(d, DL_HEADERS);
    return d;
}

void deadline_conn_closed(struct deadline *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&mu);
    if (d->phase == DL_HEADERS || d->phase == DL_BODY)
        unlink_locked(d);
    pthread_mutex_unlock(&mu);
    free(d);
}

void deadline_request_begins(struct deadline *d)
{
    if (d && d->phase == DL_IDLE)
        set_phase(d, DL_HEADERS);
}

void deadline_headers_done(struct deadline *d)
{
    if (d)
        set_phase(d, DL_BODY);
}

void deadline_body_done(struct deadline *d)
{
    if (d)
        set_phase(d, DL_IDLE);
}

int deadline_reap(uint64_t now, uint64_t header_us, uint64_t body_us, int *headers, int *body)
{
    struct deadline *d, *next;
    int n = 0;

    pthread_mutex_lock(&mu);
    for (d = head; d; d = next) {
        uint64_t limit = d->phase == DL_HEADERS ? header_us : body_us;

        next = d->next;
        if (now - d->since_us <= limit)
            continue;
        /* The fd is still this connection's: libmicrohttpd reports it
         * closed (which takes mu) before it closes the socket. */
        shutdown(d->fd, SHUT_RDWR);
        if (d->phase == DL_HEADERS)
            (*headers)++;
        else
            (*body)++;
        unlink_locked(d);
        d->phase = DL_REAPED;
        n++;
    }
    pthread_mutex_unlock(&mu);
    return n;
}
