/* loop.c - the epoll event loop; see loop.h for the contract. */
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

struct task {
    loop_task_cb cb;
    void *arg;
    struct task *next;
};

struct loop {
    int epfd;
    int efd; /* eventfd: wakes the loop when tasks arrive */
    int tfd; /* timerfd: armed to the earliest timer deadline */
    struct loop_io efd_io;
    struct loop_io tfd_io;
    uint64_t now_us;
    uint64_t armed_us; /* deadline the timerfd is armed for, 0 = disarmed */

    struct loop_timer **heap;
    size_t nheap;
    size_t heap_cap;

    pthread_mutex_t task_mu;
    struct task *tasks_head; /* under task_mu */
    struct task *tasks_tail;

    struct task *deferred; /* loop thread only */
    struct task *deferred_tail;

    volatile int stop; /* set from the loop thread by a posted task */

    struct upstream *up; /* lent to the modules on the loop (loop_upstream) */
    struct redis *redis;
};

/* ---- timer heap ---- */

static void heap_swap(struct loop *loop, size_t a, size_t b)
{
    struct loop_timer *t = loop->heap[a];

    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_idx = a;
    loop->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (loop->heap[parent]->when_us <= loop->heap[i]->when_us)
            break;
        heap_swap(loop, parent, i);
        i = parent;
    }
}

static void heap_down(struct loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < loop->nheap && loop->heap[l]->when_us < loop->heap[m]->when_us)
            m = l;
        if (r < loop->nheap && loop->heap[r]->when_us < loop->heap[m]->when_us)
            m = r;
        if (m == i)
            break;
        heap_swap(loop, i, m);
        i = m;
    }
}

static void heap_remove(struct loop *loop, struct loop_timer *t)
{
    size_t i = t->heap_idx;

    sl_assert(i < loop->nheap && loop->heap[i] == t);
    loop->nheap--;
    if (i != loop->nheap) {
        loop->heap[i] = loop->heap[loop->nheap];
        loop->heap[i]->heap_idx = i;
        heap_down(loop, i);
        heap_up(loop, i);
    }
    t->heap_idx = SIZE_MAX;
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
    t->when_us = 0;
    t->heap_idx = SIZE_MAX;
    t->cb = cb;
    t->arg = arg;
}

int loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_idx != SIZE_MAX;
}

void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_us)
{
    if (loop_timer_armed(t))
        heap_remove(loop, t);
    t->when_us = now_us() + delay_us;
    if (loop->nheap == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
    }
    t->heap_idx = loop->nheap;
    loop->heap[loop->nheap++] = t;
    heap_up(loop, t->heap_idx);
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    if (loop_timer_armed(t))
        heap_remove(loop, t);
}

/* Arm the timerfd for the earliest deadline, lazily: a timer that was stopped
 * leaves the timerfd armed; it then fires early and is simply re-armed. This
 * keeps timerfd_settime off the path of every timer start/stop. */
static void timerfd_sync(struct loop *loop)
{
    struct itimerspec its;
    uint64_t when;

    if (loop->nheap == 0)
        return;
    when = loop->heap[0]->when_us;
    if (loop->armed_us != 0 && loop->armed_us <= when)
        return;
    memset(&its, 0, sizeof(its));
    if (when <= loop->now_us) {
        /* Setting both fields to zero disarms the timer; the closest we can
         * do to "now" is 1 ns (as curl's ephiperfifo.c notes). */
        its.it_value.tv_nsec = 1;
    } else {
        uint64_t d = when - loop->now_us;

        its.it_value.tv_sec = (time_t)(d / 1000000u);
        its.it_value.tv_nsec = (long)(d % 1000000u) * 1000;
    }
    if (timerfd_settime(loop->tfd, 0, &its, NULL) < 0)
        sl_panic("timerfd_settime: %s", strerror(errno));
    loop->armed_us = when;
}

static void run_timers(struct loop *loop)
{
    loop->now_us = now_us();
    while (loop->nheap > 0 && loop->heap[0]->when_us <= loop->now_us) {
        struct loop_timer *t = loop->heap[0];

        heap_remove(loop, t);
        t->cb(loop, t->arg);
    }
}

static void tfd_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    uint64_t n;

    UNUSED(events);
    UNUSED(arg);
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        sl_panic("timerfd read: %s", strerror(errno));
    loop->armed_us = 0;
    run_timers(loop);
}

/* ---- tasks ---- */

static void efd_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct task *t, *next;
    uint64_t n;

    UNUSED(events);
    UNUSED(arg);
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        sl_panic("eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&loop->task_mu);
    t = loop->tasks_head;
    loop->tasks_head = loop->tasks_tail = NULL;
    pthread_mutex_unlock(&loop->task_mu);
    for (; t; t = next) {
        next = t->next;
        t->cb(loop, t->arg);
        free(t);
    }
}

void loop_post(struct loop *loop, loop_task_cb cb, void *arg)
{
    struct task *t = xmalloc(sizeof(*t));
    int was_empty;

    t->cb = cb;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&loop->task_mu);
    was_empty = loop->tasks_head == NULL;
    if (loop->tasks_tail)
        loop->tasks_tail->next = t;
    else
        loop->tasks_head = t;
    loop->tasks_tail = t;
    pthread_mutex_unlock(&loop->task_mu);
    if (was_empty) {
        uint64_t one = 1;

        /* EAGAIN means the counter is saturated: the loop is awake anyway. */
        if (write(loop->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            sl_panic("eventfd write: %s", strerror(errno));
    }
}

void loop_defer(struct loop *loop, loop_task_cb cb, void *arg)
{
    struct task *t = xmalloc(sizeof(*t));

    t->cb = cb;
    t->arg = arg;
    t->next = NULL;
    if (loop->deferred_tail)
        loop->deferred_tail->next = t;
    else
        loop->deferred = t;
    loop->deferred_tail = t;
}

static void run_deferred(struct loop *loop)
{
    /* A deferred task may defer more; those run in the same pass. */
    while (loop->deferred) {
        struct task *t = loop->deferred;

        loop->deferred = t->next;
        if (loop->deferred == NULL)
            loop->deferred_tail = NULL;
        t->cb(loop, t->arg);
        free(t);
    }
}

static void stop_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop->stop = 1;
}

void loop_stop(struct loop *loop)
{
    loop_post(loop, stop_cb, NULL);
}

/* ---- fds ---- */

int loop_io_add(struct loop *loop, struct loop_io *io, int fd, uint32_t events, loop_io_cb cb,
                void *arg)
{
    struct epoll_event ev;

    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->arg = arg;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = io;
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev;

    if (io->events == events)
        return 0;
    io->events = events;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = io;
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void loop_io_del(struct loop *loop, struct loop_io *io)
{
    /* The fd may already be closed (curl closes before telling us); the
     * kernel has then dropped it from the set, so ENOENT/EBADF are fine. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fd = -1;
}

/* ---- life cycle ---- */

struct loop *loop_new(void)
{
    struct loop *loop = xcalloc(1, sizeof(*loop));

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop->epfd < 0 || loop->efd < 0 || loop->tfd < 0)
        sl_panic("loop_new: %s", strerror(errno));
    pthread_mutex_init(&loop->task_mu, NULL);
    if (loop_io_add(loop, &loop->efd_io, loop->efd, EPOLLIN, efd_cb, NULL) < 0 ||
        loop_io_add(loop, &loop->tfd_io, loop->tfd, EPOLLIN, tfd_cb, NULL) < 0)
        sl_panic("loop_new: epoll_ctl: %s", strerror(errno));
    loop->now_us = now_us();
    return loop;
}

void loop_free(struct loop *loop)
{
    struct task *t, *next;

    if (loop == NULL)
        return;
    for (t = loop->tasks_head; t; t = next) {
        next = t->next;
        free(t);
    }
    for (t = loop->deferred; t; t = next) {
        next = t->next;
        free(t);
    }
    close(loop->epfd);
    close(loop->efd);
    close(loop->tfd);
    pthread_mutex_destroy(&loop->task_mu);
    free(loop->heap);
    free(loop);
}

uint64_t loop_now_us(struct loop *loop)
{
    return loop->now_us;
}

void loop_run(struct loop *loop)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];

    loop->stop = 0;
    while (!loop->stop) {
        int n, timeout = -1;

        run_timers(loop);
        run_deferred(loop);
        if (loop->stop)
            break;
        if (loop->nheap > 0 && loop->heap[0]->when_us <= now_us())
            timeout = 0; /* a timer came due while we worked */
        else
            timerfd_sync(loop);
        n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sl_panic("epoll_wait: %s", strerror(errno));
        }
        loop->now_us = now_us();
        for (int i = 0; i < n; i++) {
            struct loop_io *io = evs[i].data.ptr;

            io->cb(loop, io->fd, evs[i].events, io->arg);
        }
    }
    run_deferred(loop);
}

void loop_set_upstream(struct loop *loop, struct upstream *up)
{
    loop->up = up;
}

struct upstream *loop_upstream(const struct loop *loop)
{
    return loop ? loop->up : NULL;
}

void loop_set_redis(struct loop *loop, struct redis *redis)
{
    loop->redis = redis;
}

struct redis *loop_redis(const struct loop *loop)
{
    return loop ? loop->redis : NULL;
}
