/* tested.c - a module with its test. */
