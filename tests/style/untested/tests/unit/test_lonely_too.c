/* test_other.c - a test of no module: the wrong name. */
