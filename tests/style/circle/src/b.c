/* b.c - its header includes c. */
#include "b.h"
