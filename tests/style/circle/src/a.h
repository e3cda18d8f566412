/* a.h - a's interface. */
