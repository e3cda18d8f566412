/* admin.c - admin operations; see admin.h. */
#include "admin.h"
#include "cache.h"
#include "exchange.h"
#include "server.h"
#include "util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *admin_key; /* set once at startup, before any thread reads it */

void admin_set_key(const char *key)
{
    free(admin_key);
    admin_key = key && *key ? xstrdup(key) : NULL;
}

int admin_enabled(void)
{
    return admin_key != NULL;
}

int admin_key_ok(const char *given)
{
    size_t n;

    if (admin_key == NULL || given == NULL)
        return 0;
    n = strlen(admin_key);
    /* Compare the whole key whatever the first difference; a length
     * mismatch is no secret worth hiding. */
    return strlen(given) == n && CRYPTO_memcmp(given, admin_key, n) == 0;
}

static void purge_cb(void *arg, long count, const char *err)
{
    struct exchange *ex = arg;

    if (err) {
        struct api_error e;

        api_error_set(&e, 502, "api_error", "cache_purge_failed", NULL, "Cache purge failed: %s",
                      err);
        ex_fail(ex, &e);
    } else {
        char *body = xasprintf("{\"purged\":%ld}", count);

        ex_respond(ex, 200, body, strlen(body));
    }
    ex_unref(ex);
}

void admin_purge(struct exchange *ex, const char *key, const char *ns)
{
    cache_purge(server.cache, key, ns, purge_cb, ex);
}
