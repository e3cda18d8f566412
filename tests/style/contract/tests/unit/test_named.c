/* test_named.c - a test. */
