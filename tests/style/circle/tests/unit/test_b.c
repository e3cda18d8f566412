/* test_b.c - a test. */
