/* admin.h - the admin API's operations, run on the loop: cache purges (and,
 * later, reloads and usage reports). http.c authenticates the caller
 * (Authorization: Bearer $SLUICE_ADMIN_KEY, compared in constant time),
 * parses the request and hands the exchange here; the answer comes back
 * through the exchange like any other.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stddef.h>

struct exchange;
struct loop;

/* Is `given` the admin key? Constant time in the key's length. 0 when no
 * admin key is set: the admin API is off. */
int admin_key_ok(const char *given);
/* Set the admin key (NULL or "" turns the admin API off). Copies it. */
void admin_set_key(const char *key);
int admin_enabled(void);

/* Loop thread: purge by key, or by namespace (exactly one is non-NULL).
 * Answers ex with {"purged": N}; takes over one reference to ex. */
void admin_purge(struct exchange *ex, const char *key, const char *ns);

#endif
