
/* named.c - the contract must be the first line. */
#include "named.h"
