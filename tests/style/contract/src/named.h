/* named.h - fine. */
