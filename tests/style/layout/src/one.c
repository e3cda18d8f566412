/* one.c - a module, named by its .c (which covers one.h). */
#include "one.h"
