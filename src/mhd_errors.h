/* mhd_errors.h - libmicrohttpd's own error pages, sent in OpenAI's error
 * shape instead of HTML (see mhd_errors.c for how). */
#ifndef SLUICE_MHD_ERRORS_H
#define SLUICE_MHD_ERRORS_H

#include <microhttpd.h>

/* Make the error bodies; before the HTTP front starts. Idempotent. The
 * call also links this module into the program. */
void mhd_errors_init(void);

#endif
