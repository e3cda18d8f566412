/* f.h - a header-only module that includes nothing of the circle. */
#include "util.h"
