/* mock_tool.c - sluice-mock's files need no gateway unit test. */
#include "beta.h"

int mock_tool(void);

int mock_tool(void)
{
    return beta_twice(2);
}
