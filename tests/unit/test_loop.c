/* Unit tests for loop.c: timers fire in deadline order and never early,
 * a stopped timer never fires and a restarted one moves, the lazily armed
 * timerfd still wakes the loop for a later timer after the earliest is
 * stopped; tasks posted from other threads all run in the loop's thread
 * in each poster's order; deferred tasks run before the loop sleeps;
 * fd watchers see readiness until removed; loop_stop from another thread
 * ends loop_run. Deadlines are milliseconds apart at most and no test
 * depends on how late a timer fires, only on order and "not early". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/loop.h"
#include "../../src/util.h"

struct fired {
    int order[2048];
    int n;
};

struct tmr {
    struct loop_timer t;
    struct fired *f;
    int id;
    int stop_after; /* stop the loop once this many fired */
};

static void timer_cb(struct loop *loop, void *arg)
{
    struct tmr *x = arg;
    uint64_t now = now_us();

    assert_true(now >= x->t.when_us); /* never early */
    x->f->order[x->f->n++] = x->id;
    if (x->stop_after && x->f->n >= x->stop_after)
        loop_stop(loop);
}

static void start(struct loop *loop, struct tmr *x, struct fired *f, int id, uint64_t delay_us,
                  int stop_after)
{
    x->f = f;
    x->id = id;
    x->stop_after = stop_after;
    loop_timer_init(&x->t, timer_cb, x);
    loop_timer_start(loop, &x->t, delay_us);
}

static void test_timers_in_order(void **state)
{
    struct loop *loop = loop_new();
    struct fired f = {.n = 0};
    struct tmr a, b, c;

    (void)state;
    start(loop, &a, &f, 3, 30000, 3);
    start(loop, &b, &f, 1, 10000, 3);
    start(loop, &c, &f, 2, 20000, 3);
    assert_true(loop_timer_armed(&a.t));
    loop_run(loop);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.order[0], 1);
    assert_int_equal(f.order[1], 2);
    assert_int_equal(f.order[2], 3);
    assert_false(loop_timer_armed(&a.t)); /* one-shot */
    loop_free(loop);
}

/* A thousand timers in random order: the heap gives them back sorted. */
static void test_many_timers_sorted(void **state)
{
    struct loop *loop = loop_new();
    struct fired f = {.n = 0};
    struct tmr *x = xcalloc(1000, sizeof(*x));
    uint64_t *when = xcalloc(1000, sizeof(*when));

    (void)state;
    for (int i = 0; i < 1000; i++) {
        start(loop, &x[i], &f, i, random_u64() % 5000, 900);
        when[i] = x[i].t.when_us;
    }
    /* stop a tenth of them, restart a tenth later: the heap stays whole */
    for (int i = 0; i < 1000; i += 10)
        loop_timer_stop(loop, &x[i].t);
    for (int i = 5; i < 1000; i += 10) {
        loop_timer_start(loop, &x[i].t, 5000 + random_u64() % 1000);
        when[i] = x[i].t.when_us;
    }
    loop_run(loop);
    assert_int_equal(f.n, 900);
    for (int k = 0; k < f.n; k++) {
        assert_true(f.order[k] % 10 != 0);
        if (k > 0)
            assert_true(when[f.order[k - 1]] <= when[f.order[k]]);
    }
    free(x);
    free(when);
    loop_free(loop);
}

static void stop_now_cb(struct loop *loop, void *arg)
{
    UNUSED(arg);
    loop_stop(loop);
}

/* The timerfd is armed for the earliest timer and left armed when that
 * timer is stopped or moved later: it fires early, finds nothing due, and
 * the loop arms it again for the next timer. (Deadlines are far enough
 * out that the first, immediate run cannot reach them on a busy machine.) */
static void test_stop_earliest(void **state)
{
    struct loop *loop = loop_new();
    struct fired f = {.n = 0};
    struct tmr stopped, later, moved;

    (void)state;
    start(loop, &stopped, &f, 1, 600000, 0);
    start(loop, &later, &f, 2, 700000, 2);
    start(loop, &moved, &f, 3, 400000, 2);
    /* one iteration arms the timerfd for `moved`, the earliest */
    loop_post(loop, stop_now_cb, NULL);
    loop_run(loop);
    assert_int_equal(f.n, 0);
    loop_timer_stop(loop, &stopped.t);
    loop_timer_stop(loop, &stopped.t); /* harmless twice */
    loop_timer_start(loop, &moved.t, 800000);
    loop_run(loop);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.order[0], 2);
    assert_int_equal(f.order[1], 3);
    assert_false(loop_timer_armed(&stopped.t));
    loop_free(loop);
}

/* ---- tasks ---- */

#define POSTERS 4
#define POSTS 5000

struct post {
    struct loop *loop;
    pthread_t loop_thread;
    int next[POSTERS];
    int ran;
    int bad;
};

struct one_post {
    struct post *p;
    int thread, seq;
};

static void task_cb(struct loop *loop, void *arg)
{
    struct one_post *o = arg;
    struct post *p = o->p;

    if (!pthread_equal(pthread_self(), p->loop_thread) || o->seq != p->next[o->thread])
        p->bad++;
    p->next[o->thread] = o->seq + 1;
    if (++p->ran == POSTERS * POSTS)
        loop_stop(loop);
    free(o);
}

struct poster {
    struct post *p;
    int id;
};

static void *poster_main(void *arg)
{
    struct poster *w = arg;

    for (int i = 0; i < POSTS; i++) {
        struct one_post *o = xmalloc(sizeof(*o));

        o->p = w->p;
        o->thread = w->id;
        o->seq = i;
        loop_post(w->p->loop, task_cb, o);
    }
    return NULL;
}

static void test_posts_from_threads(void **state)
{
    struct post p = {.loop = loop_new(), .ran = 0};
    struct poster w[POSTERS];
    pthread_t th[POSTERS];

    (void)state;
    p.loop_thread = pthread_self();
    for (int i = 0; i < POSTERS; i++) {
        w[i].p = &p;
        w[i].id = i;
        pthread_create(&th[i], NULL, poster_main, &w[i]);
    }
    loop_run(p.loop);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(p.ran, POSTERS * POSTS);
    assert_int_equal(p.bad, 0);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(p.next[i], POSTS);
    loop_free(p.loop);
}

static void *stopper_main(void *arg)
{
    usleep(20000);
    loop_stop(arg);
    return NULL;
}

static void test_stop_from_another_thread(void **state)
{
    struct loop *loop = loop_new();
    pthread_t th;

    (void)state;
    pthread_create(&th, NULL, stopper_main, loop);
    loop_run(loop); /* nothing to do: sleeps until stopped */
    pthread_join(th, NULL);
    loop_free(loop);
}

/* ---- deferred ---- */

struct trail {
    char s[16];
    int n;
};

static void note(struct trail *t, char c)
{
    t->s[t->n++] = c;
    t->s[t->n] = '\0';
}

static void deferred2_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    note(arg, 'D');
}

static void deferred_cb(struct loop *loop, void *arg)
{
    note(arg, 'd');
    loop_defer(loop, deferred2_cb, arg); /* runs in the same pass */
}

static void second_task_cb(struct loop *loop, void *arg)
{
    UNUSED(loop);
    note(arg, 't');
}

static void first_task_cb(struct loop *loop, void *arg)
{
    note(arg, 'T');
    loop_defer(loop, deferred_cb, arg);
    loop_post(loop, second_task_cb, arg); /* a later iteration */
    loop_stop(loop);
}

static void test_defer_before_sleep(void **state)
{
    struct loop *loop = loop_new();
    struct trail t = {.n = 0};

    (void)state;
    loop_post(loop, first_task_cb, &t);
    loop_run(loop);
    /* the deferred frees ran after the task, before the next wait */
    assert_string_equal(t.s, "TdDt");
    loop_free(loop);
}

/* ---- fds ---- */

struct io_seen {
    int reads, writes;
    char got[16];
};

static void io_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
    struct io_seen *s = arg;

    if (events & EPOLLIN) {
        ssize_t n = read(fd, s->got, sizeof(s->got) - 1);

        assert_true(n > 0);
        s->got[n] = '\0';
        s->reads++;
        loop_stop(loop);
    }
    if (events & EPOLLOUT) {
        s->writes++;
        loop_stop(loop);
    }
}

static void test_fd_watchers(void **state)
{
    struct loop *loop = loop_new();
    struct loop_io rio, wio;
    struct io_seen rs = {0}, ws = {0};
    struct fired f = {.n = 0};
    struct tmr guard;
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(loop_io_add(loop, &rio, fds[0], EPOLLIN, io_cb, &rs), 0);
    assert_int_equal(write(fds[1], "ping", 4), 4);
    loop_run(loop);
    assert_int_equal(rs.reads, 1);
    assert_string_equal(rs.got, "ping");
    /* the write end is writable at once */
    assert_int_equal(loop_io_add(loop, &wio, fds[1], EPOLLOUT, io_cb, &ws), 0);
    loop_run(loop);
    assert_true(ws.writes >= 1);
    /* no longer watched for writing: a timer ends the run, no callback */
    assert_int_equal(loop_io_mod(loop, &wio, 0), 0);
    ws.writes = 0;
    start(loop, &guard, &f, 1, 5000, 1);
    loop_run(loop);
    assert_int_equal(ws.writes, 0);
    /* removed: data waits unread */
    loop_io_del(loop, &rio);
    assert_int_equal(write(fds[1], "more", 4), 4);
    start(loop, &guard, &f, 2, 5000, 2);
    loop_run(loop);
    assert_int_equal(rs.reads, 1);
    loop_io_del(loop, &wio);
    close(fds[0]);
    close(fds[1]);
    loop_free(loop);
}

static void now_cb(struct loop *loop, void *arg)
{
    uint64_t *seen = arg;

    *seen = loop_now_us(loop);
    loop_stop(loop);
}

static void test_now_cached(void **state)
{
    struct loop *loop = loop_new();
    uint64_t before = now_us(), seen = 0;

    (void)state;
    loop_post(loop, now_cb, &seen);
    loop_run(loop);
    assert_true(seen >= before && seen <= now_us());
    /* tasks left when the loop is freed are dropped, not run */
    loop_post(loop, now_cb, &seen);
    seen = 0;
    loop_free(loop);
    assert_int_equal(seen, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_many_timers_sorted),
        cmocka_unit_test(test_stop_earliest),
        cmocka_unit_test(test_posts_from_threads),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_defer_before_sleep),
        cmocka_unit_test(test_fd_watchers),
        cmocka_unit_test(test_now_cached),
    };

    alarm(60); /* a loop that never wakes fails the run instead of hanging it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
