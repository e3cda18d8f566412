/* d.c - includes e. */
#include "d.h"
#include "e.h"
