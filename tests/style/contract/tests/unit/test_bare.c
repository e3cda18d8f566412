/* test_bare.c - a test. */
