/* main.c - a program's main needs no unit test. */
#include "alpha.h"

int main(void)
{
    return (int)alpha_len("1");
}
