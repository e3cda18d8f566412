/* alpha.h - a module whose header includes another's, before system ones. */
#ifndef ALPHA_H
#define ALPHA_H

#include "beta.h"

#include <stddef.h>

size_t alpha_len(const char *s);

#endif
