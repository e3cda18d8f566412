/* t.c - another tool, missing from its table. */
