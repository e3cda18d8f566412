/* admin.h - the admin API, served on its own listen address (admin.listen):
 *
 *   POST /admin/cache/purge   {"key": "..."} or {"namespace": "..."}
 *   POST /admin/reload        load, check and swap the config file
 *   GET  /admin/config        the effective config, secrets redacted
 *   GET  /admin/stats         the dashboard's numbers (stats.h)
 *   GET  /ui                  the dashboard (ui.h)
 *
 * Every call needs "Authorization: Bearer <key>", the key coming from the
 * environment variable admin.key_env names, compared in constant time.
 * http.c authenticates and dispatches, and runs the purge on the cache (it
 * holds the request's cache and answers it); the checks of the key and the
 * redacted config live here. This module includes nothing of the request
 * path, so the front can include it without a circle.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <jansson.h>
#include <stddef.h>

struct config;

/* Is `given` the admin key of cfg? 0 when cfg has no key: the admin API
 * refuses every call. Constant time in the key's length. */
int admin_key_ok(const struct config *cfg, const char *given);

/* Is the Authorization header value `auth` the admin key: "Bearer <key>",
 * or "Basic" with the key as the password (the dashboard in a browser)?
 * 0 when cfg has no key. */
int admin_auth_ok(const struct config *cfg, const char *auth);

/* The effective config as JSON, with every secret (provider keys, header
 * values, client key hashes, the user and password of a URL) replaced by
 * "<redacted>". */
json_t *admin_config_json(const struct config *cfg);

/* url as it may be shown: with the user information of its authority
 * (http://user:password@host/ -> http://<redacted>@host/) redacted, the
 * rest as it is. NULL stays NULL. Returns a string the caller frees. */
char *admin_url_redact(const char *url);

#endif
