/* util.h - included by f only. */
