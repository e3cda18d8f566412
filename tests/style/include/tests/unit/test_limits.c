/* test_limits.c - a test. */
