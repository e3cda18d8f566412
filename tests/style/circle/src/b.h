/* b.h - includes c's header. */
#include "c.h"
