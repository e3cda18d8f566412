/* two.h - a header with no .c: named by itself, and missing. */
