/* tool.c - a tool in its own folder, including the library's headers. */
#include "../alpha.h"
#include "beta.h"

int tool(void);

int tool(void)
{
    return beta_twice(3);
}
