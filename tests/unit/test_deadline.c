/* Unit tests for deadline.c: connections on the clock are shut down once
 * past their header or body deadline, those off it never are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/deadline.h"
#include "../../src/util.h"

/* Is the peer of fds[1] shut down (a read sees EOF at once)? */
static int shut(int fds[2])
{
    char c;

    return recv(fds[1], &c, 1, MSG_DONTWAIT) == 0;
}

static void test_header_deadline(void **state)
{
    int a[2], b[2];
    int h = 0, bd = 0;
    struct deadline *da, *db;
    uint64_t t;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    da = deadline_conn_started(a[0]);
    db = deadline_conn_started(b[0]);
    t = now_us();
    /* Not yet late. */
    assert_int_equal(deadline_reap(t, 1000000, 1000000, &h, &bd), 0);
    /* b's headers are in: it is on the body's clock, which is longer. */
    deadline_headers_done(db);
    assert_int_equal(deadline_reap(t + 2000000, 1000000, 5000000, &h, &bd), 1);
    assert_int_equal(h, 1);
    assert_int_equal(bd, 0);
    assert_true(shut(a));
    assert_false(shut(b));
    /* A reaped connection is not reaped twice, and later phase changes do
     * not put it back on the clock. */
    deadline_headers_done(da);
    assert_int_equal(deadline_reap(t + 9000000, 1000000, 5000000, &h, &bd), 1);
    assert_int_equal(h, 1);
    assert_int_equal(bd, 1); /* b's body, now late */
    assert_true(shut(b));
    deadline_conn_closed(da);
    deadline_conn_closed(db);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void test_off_the_clock(void **state)
{
    int a[2];
    int h = 0, bd = 0;
    struct deadline *d;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    d = deadline_conn_started(a[0]);
    deadline_headers_done(d);
    deadline_body_done(d); /* the gateway has it: not timed */
    assert_int_equal(deadline_reap(now_us() + 3600000000u, 1, 1, &h, &bd), 0);
    /* A keep-alive connection's next request line starts the clock again. */
    deadline_request_begins(d);
    assert_int_equal(deadline_reap(now_us() + 3600000000u, 1, 1, &h, &bd), 1);
    assert_true(shut(a));
    deadline_conn_closed(d);
    deadline_conn_closed(NULL);
    close(a[0]), close(a[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_deadline),
        cmocka_unit_test(test_off_the_clock),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
