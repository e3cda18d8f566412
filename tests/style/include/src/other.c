/* other.c - does not include its own header; a project header after a system one. */
#include <stdlib.h>
#include "third.h"
