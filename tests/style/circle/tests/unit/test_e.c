/* test_e.c - a test. */
