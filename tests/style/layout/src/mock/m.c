/* m.c - a tool in its own folder. */
