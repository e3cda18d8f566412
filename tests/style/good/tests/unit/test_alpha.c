/* test_alpha.c - a unit test may include its module's .c. */
#include <stdio.h>

#include "../../src/alpha.c"
