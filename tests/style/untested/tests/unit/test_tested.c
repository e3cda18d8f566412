/* test_tested.c - a test. */
