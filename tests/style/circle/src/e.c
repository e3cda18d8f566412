/* e.c - includes d. */
#include "e.h"
#include "d.h"
