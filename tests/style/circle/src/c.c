/* c.c - includes a, closing the circle; and f, which is out of it. */
#include "c.h"
#include "a.h"
#include "f.h"
