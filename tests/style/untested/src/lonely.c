/* lonely.c - a module nobody tests. */
#include "lonely.h"
