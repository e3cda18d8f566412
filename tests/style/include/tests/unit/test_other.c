/* test_other.c - a test. */
