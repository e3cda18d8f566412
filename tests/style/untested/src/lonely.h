/* lonely.h - its interface. */
