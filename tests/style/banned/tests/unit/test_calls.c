/* test_calls.c - tests are held to the same list. */
#include <stdarg.h>
#include <stdio.h>

static void f(char *out, const char *fmt, va_list ap)
{
    vsprintf(out, fmt, ap);
}
