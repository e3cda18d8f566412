/* calls.c - one of each banned call. */
#include "calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void calls(char *out, const char *in)
{
    time_t t = 0;

    sprintf(out, "%s", in);
    strcpy(out, in);
    strcat(out, in);
    strncat(out, in, 1);
    strncpy(out, in, 4);
    (void)strtok(out, ",");
    out[0] = (char)(atoi(in) + atol(in) + atoll(in) + (int)atof(in));
    (void)gmtime(&t); (void)localtime (&t);
    puts(ctime(&t));
    puts(asctime(gmtime_r(&t, NULL)));
}
