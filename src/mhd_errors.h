/* mhd_errors.h - libmicrohttpd's own error pages, sent in OpenAI's error
 * shape instead of HTML (see mhd_errors.c for how). */
#ifndef SLUICE_MHD_ERRORS_H
#define SLUICE_MHD_ERRORS_H

#include <microhttpd.h>
#include <stddef.h>

struct api_error;

/* Makes an error's JSON body (malloc'd, the caller's; *len its length). */
typedef char *(*mhd_errors_json_fn)(const struct api_error *e, size_t *len);

/* Make the error bodies with json, the HTTP front's http_error_json (passed
 * in, so that the error JSON is still made in one place and this module
 * needs nothing of the front that uses it); before the HTTP front starts.
 * Idempotent: the first call's json is the one used. The call also links
 * this module into the program. */
void mhd_errors_init(mhd_errors_json_fn json);

#endif
