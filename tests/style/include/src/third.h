/* third.h - a header-only module. */
