/* limits.c - "limits.h" and <limits.h> are two headers. */
#include "limits.h"

#include <limits.h>
