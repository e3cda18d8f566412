/* order.c - its own header not first, and a header twice. */
#include "other.h"
#include "order.h"

#include <stdio.h>
#include <string.h>
#include <stdio.h>
