/* redis_url.h - where a Redis is: the redis block's url and HOST:PORT lists.
 *
 * Pure string parsing (no resolution), shared by the config check and the
 * client. Bad input gets a message for the user, never a crash.
 */
#ifndef SLUICE_REDIS_URL_H
#define SLUICE_REDIS_URL_H

#include <stddef.h>

/* Longest host name (RFC 1035) and of a "HOST:PORT" text. */
#define REDIS_HOST_MAX 256
#define REDIS_ADDR_MAX (REDIS_HOST_MAX + 8)

struct redis_url {
    int tls; /* rediss:// */
    char host[REDIS_HOST_MAX];
    int port; /* 6379 when not given */
    int db;   /* 0 when not given */
};

/* Parse redis://HOST[:PORT][/DB] or rediss://... into u. A user or password
 * in the url is refused (secrets live in the environment: username and
 * password_env). Returns 0, or -1 with a message in err. */
int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen);

/* Parse HOST:PORT ([V6]:PORT for IPv6) of n bytes into host (NUL-terminated,
 * without brackets) and port. Returns 0, or -1 with a message in err. */
int redis_addr_parse(const char *s, size_t n, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen);

/* Write host and port as HOST:PORT (brackets for an IPv6 host) into out of
 * outlen bytes (at least REDIS_ADDR_MAX). */
void redis_addr_format(char *out, size_t outlen, const char *host, int port);

#endif
