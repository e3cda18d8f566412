/* test_d.c - a test. */
