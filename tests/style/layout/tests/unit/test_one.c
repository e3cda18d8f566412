/* test_one.c - the unit test of one.c. */
