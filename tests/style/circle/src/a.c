/* a.c - includes b. */
#include "a.h"
#include "b.h"
