/* c.h - c's interface. */
