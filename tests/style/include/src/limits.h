/* limits.h - a project header named as a system one. */
