/* test_c.c - a test. */
