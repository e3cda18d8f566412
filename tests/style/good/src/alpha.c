/* alpha.c - calls that look like banned ones but are not.
 *
 * Comments may name sprintf(), strcpy( and atoi(x) freely,
 * across lines: strcat(a,
 * b) is only text. */
#include "alpha.h"
#include "beta.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

size_t alpha_len(const char *s)
{
    char out[64], copy[16];
    const char *text = "sprintf(out, \"%s\") and \"strcpy(a, b)\"";
    char quote = '"';
    char *save = NULL;
    struct tm tm;
    time_t t = 0;

    snprintf(out, sizeof(out), "%s%c", text, quote); /* not sprintf( */
    memcpy(copy, "a,b", 4);
    strtok_r(copy, ",", &save); // strtok( in a line comment
    gmtime_r(&t, &tm);
    return strlen(out) + (size_t)beta_twice(1) + my_atoi_like(s);
}
