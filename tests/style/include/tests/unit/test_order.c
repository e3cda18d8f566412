/* test_order.c - a test. */
