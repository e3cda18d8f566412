/* Unit tests for sink.c, the line file under the log and the trace: lines
 * arrive whole and in order, batched lines wait for a flush (or a full
 * batch) while unbatched ones go out at once and push the batch out
 * first, a line longer than a batch is not cut, a reopen (log rotation)
 * sends later lines to the new file, a closed sink drops lines, and lines
 * from many threads never interleave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/unit.h"
#include "../../src/sink.h"
#include "../../src/util.h"

struct fixture {
    char dir[64];
    char path[96];
    struct sink s;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct sink init = SINK_INIT;

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_sink.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/out.log", f->dir);
    f->s = init;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char rotated[128];

    sink_close(&f->s);
    unlink(f->path);
    snprintf(rotated, sizeof(rotated), "%s.1", f->path);
    unlink(rotated);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The whole file, NUL-terminated (malloc'd). */
static void expect_file(const char *path, const char *want)
{
    char *got = test_slurp(path);

    assert_string_equal(got, want);
    free(got);
}

static void put(struct sink *s, const char *line, int batched)
{
    sink_write(s, line, strlen(line), batched);
}

static void test_unbatched_at_once(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(sink_open(&f->s, f->path), 0);
    put(&f->s, "one", 0);
    expect_file(f->path, "one\n");
    put(&f->s, "two", 0);
    expect_file(f->path, "one\ntwo\n");
}

static void test_batched_waits_for_flush(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(sink_open(&f->s, f->path), 0);
    put(&f->s, "a", 1);
    expect_file(f->path, ""); /* a new batch is never due at once */
    sink_flush(&f->s);
    expect_file(f->path, "a\n");
    sink_flush(&f->s); /* nothing left: nothing written twice */
    expect_file(f->path, "a\n");
    /* an unbatched line sends the batch first: order holds */
    put(&f->s, "b", 1);
    put(&f->s, "c", 0);
    expect_file(f->path, "a\nb\nc\n");
    /* closing writes what waits */
    put(&f->s, "d", 1);
    sink_close(&f->s);
    expect_file(f->path, "a\nb\nc\nd\n");
}

static void test_full_batch_goes_out(void **state)
{
    struct fixture *f = *state;
    char line[1000];
    size_t lines = 0;
    char *got;

    assert_int_equal(sink_open(&f->s, f->path), 0);
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    /* SINK_BATCH bytes of lines are written without a flush */
    while (lines * sizeof(line) < SINK_BATCH) {
        put(&f->s, line, 1);
        lines++;
    }
    got = test_slurp(f->path);
    assert_int_equal(strlen(got), lines * sizeof(line));
    free(got);
}

static void test_long_line_whole(void **state)
{
    struct fixture *f = *state;
    size_t n = 3 * SINK_BATCH;
    char *line = xmalloc(n + 1), *got;

    assert_int_equal(sink_open(&f->s, f->path), 0);
    memset(line, 'y', n);
    line[n] = '\0';
    put(&f->s, "first", 1);
    sink_write(&f->s, line, n, 1);
    got = test_slurp(f->path);
    assert_int_equal(strlen(got), 6 + n + 1);
    assert_memory_equal(got, "first\n", 6);
    assert_memory_equal(got + 6, line, n);
    assert_int_equal(got[6 + n], '\n');
    free(got);
    free(line);
}

/* logrotate: the file is renamed, the sink reopened on the path. */
static void test_reopen(void **state)
{
    struct fixture *f = *state;
    char rotated[128];

    snprintf(rotated, sizeof(rotated), "%s.1", f->path);
    assert_int_equal(sink_open(&f->s, f->path), 0);
    put(&f->s, "before", 0);
    put(&f->s, "waiting", 1);
    assert_int_equal(rename(f->path, rotated), 0);
    assert_int_equal(sink_open(&f->s, f->path), 0);
    put(&f->s, "after", 0);
    expect_file(rotated, "before\n");
    expect_file(f->path, "waiting\nafter\n");
    /* a path that cannot be opened leaves the sink as it was */
    assert_int_equal(sink_open(&f->s, "/nonexistent-dir/x.log"), -1);
    put(&f->s, "still", 0);
    expect_file(f->path, "waiting\nafter\nstill\n");
}

static void test_closed_drops(void **state)
{
    struct fixture *f = *state;
    struct sink closed = SINK_INIT;

    put(&closed, "nowhere", 0); /* never opened: dropped, no crash */
    sink_flush(&closed);
    assert_int_equal(sink_open(&f->s, f->path), 0);
    put(&f->s, "kept", 0);
    sink_close(&f->s);
    put(&f->s, "dropped", 0);
    expect_file(f->path, "kept\n");
}

#define THREADS 4
#define PER_THREAD 2000

struct writer {
    struct sink *s;
    int id;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char line[300];

    for (int i = 0; i < PER_THREAD; i++) {
        /* lines of different lengths, so a torn write would show */
        int n = snprintf(line, sizeof(line), "t%d n%d ", w->id, i);

        memset(line + n, 'a' + w->id, (size_t)(i % 200));
        sink_write(w->s, line, (size_t)n + (size_t)(i % 200), i % 3 != 0);
    }
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    struct fixture *f = *state;
    pthread_t th[THREADS];
    struct writer w[THREADS];
    int next[THREADS] = {0};
    char *got, *line, *save = NULL;
    int count = 0;

    assert_int_equal(sink_open(&f->s, f->path), 0);
    for (int t = 0; t < THREADS; t++) {
        w[t].s = &f->s;
        w[t].id = t;
        pthread_create(&th[t], NULL, writer_main, &w[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    sink_flush(&f->s);
    got = test_slurp(f->path);
    for (line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int t, i, n;
        size_t len = strlen(line);

        assert_int_equal(sscanf(line, "t%d n%d %n", &t, &i, &n), 2);
        assert_true(t >= 0 && t < THREADS);
        /* each thread's lines in its order, each whole */
        assert_int_equal(i, next[t]);
        next[t]++;
        assert_int_equal(len, (size_t)n + (size_t)(i % 200));
        for (size_t k = (size_t)n; k < len; k++)
            assert_int_equal(line[k], 'a' + t);
        count++;
    }
    assert_int_equal(count, THREADS * PER_THREAD);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unbatched_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_waits_for_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_goes_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_never_interleave, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
