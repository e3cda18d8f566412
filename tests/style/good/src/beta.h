/* beta.h - a module on its own. */
#ifndef BETA_H
#define BETA_H

int beta_twice(int x);
int my_atoi_like(const char *s);

#endif
