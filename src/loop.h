/* loop.h - one epoll event loop with timers, a cross-thread task queue and a
 * before-sleep hook.
 *
 * A loop is run by exactly one thread. Everything here is called from that
 * thread, except loop_post() and loop_stop(), which any thread may call.
 *
 * Timers live in a binary heap; one timerfd is armed to the earliest deadline
 * (the pattern of curl's docs/examples/ephiperfifo.c). Tasks posted from other
 * threads go on a mutex-guarded list; the loop's eventfd is written only when
 * the list goes from empty to non-empty, so a burst costs one wake-up.
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct redis;
struct upstream;

typedef void (*loop_io_cb)(struct loop *loop, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(struct loop *loop, void *arg);
typedef void (*loop_task_cb)(struct loop *loop, void *arg);

/* An fd watcher. The struct is owned by the caller and must stay alive until
 * loop_io_del(). */
struct loop_io {
    int fd;
    uint32_t events; /* EPOLLIN | EPOLLOUT as registered */
    loop_io_cb cb;
    void *arg;
};

/* A one-shot timer, owned by the caller. Initialise with loop_timer_init();
 * stop it before freeing it. */
struct loop_timer {
    uint64_t when_us; /* monotonic deadline */
    size_t heap_idx;  /* index in the heap, or SIZE_MAX when not armed */
    loop_timer_cb cb;
    void *arg;
};

/* Create a loop. Aborts if the kernel refuses epoll/eventfd/timerfd. */
struct loop *loop_new(void);
/* Free a loop that is not running. Pending tasks are dropped unrun. */
void loop_free(struct loop *loop);

/* Run until loop_stop(). Returns in the loop's thread. */
void loop_run(struct loop *loop);
/* Ask the loop to return from loop_run(). Thread-safe. */
void loop_stop(struct loop *loop);

/* Watch fd for events (EPOLLIN/EPOLLOUT). Return 0 or -1 (errno set). */
int loop_io_add(struct loop *loop, struct loop_io *io, int fd, uint32_t events, loop_io_cb cb,
                void *arg);
int loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events);
void loop_io_del(struct loop *loop, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
/* (Re)arm t to fire once after delay_us microseconds. */
void loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_us);
/* Disarm t; harmless if it is not armed. */
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
int loop_timer_armed(const struct loop_timer *t);

/* Run cb(loop, arg) in the loop's thread, soon. Thread-safe. The task list
 * takes no ownership of arg. */
void loop_post(struct loop *loop, loop_task_cb cb, void *arg);

/* Run cb(loop, arg) just before the loop next sleeps: the place for frees that
 * must wait until no callback of this iteration can still touch the object
 * (Redis freeClientAsync). Loop thread only. */
void loop_defer(struct loop *loop, loop_task_cb cb, void *arg);

/* Cached monotonic time of the current iteration, in microseconds. */
uint64_t loop_now_us(struct loop *loop);

/* What the loop owns for the modules that run on it and lends them call by
 * call: its curl multi (upstream.h) and its Redis client (redis.h; NULL
 * when none is configured). server.c sets them; the loop neither frees nor
 * uses them. Set before loop_run or from the loop thread; read in the loop
 * thread. A NULL loop lends nothing. */
void loop_set_upstream(struct loop *loop, struct upstream *up);
struct upstream *loop_upstream(const struct loop *loop);
void loop_set_redis(struct loop *loop, struct redis *redis);
struct redis *loop_redis(const struct loop *loop);

#endif
