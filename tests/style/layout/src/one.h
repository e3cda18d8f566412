/* one.h - the header of one.c. */
