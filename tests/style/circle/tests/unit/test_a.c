/* test_a.c - a test. */
