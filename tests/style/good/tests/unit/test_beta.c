/* test_beta.c - the other module's test. */
#include "../../src/beta.h"
