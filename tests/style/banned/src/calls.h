/* calls.h - calls the house bans. */
#ifndef CALLS_H
#define CALLS_H

void calls(char *out, const char *in);

#endif
