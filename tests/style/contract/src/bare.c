#include "bare.h"

int bare(void)
{
    return 0;
}
