/* beta.c - a module on its own. */
#include "beta.h"

#include <stdlib.h>

int beta_twice(int x)
{
    return 2 * x;
}

int my_atoi_like(const char *s)
{
    return (int)strtol(s, NULL, 10);
}
