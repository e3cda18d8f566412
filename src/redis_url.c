/* redis_url.c - Redis urls and HOST:PORT; see redis_url.h. */
#include "redis_url.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* A host name or address: printable, no spaces, none of the url's
 * delimiters. */
static int host_ok(const char *h, size_t n)
{
    if (n == 0 || n >= REDIS_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c <= 0x20 || c >= 0x7f || strchr("/@?#[]", c))
            return 0;
    }
    return 1;
}

static int port_parse(const char *s, size_t n, int *port)
{
    char num[8];
    long v;

    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    if (parse_long(num, 1, 65535, &v) < 0)
        return -1;
    *port = (int)v;
    return 0;
}

int redis_addr_parse(const char *s, size_t n, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen)
{
    const char *colon, *h = s;
    size_t hn;

    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);

        if (rb == NULL || rb == s + 1 || (size_t)(rb - s) + 1 >= n || rb[1] != ':')
            return bad(err, errlen, "expected [IPV6]:PORT");
        h = s + 1;
        hn = (size_t)(rb - h);
        colon = rb + 1;
        /* an IPv6 address: hex digits, colons and dots */
        if (strspn(h, "0123456789abcdefABCDEF:.") < hn)
            return bad(err, errlen, "expected [IPV6]:PORT");
    } else {
        colon = NULL;
        for (size_t i = n; i > 0; i--) {
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        }
        if (colon == NULL)
            return bad(err, errlen, "expected HOST:PORT");
        hn = (size_t)(colon - s);
        if (memchr(s, ':', hn))
            return bad(err, errlen, "an IPv6 address must be in brackets, as [::1]:6379");
        if (!host_ok(h, hn))
            return bad(err, errlen, "bad host in HOST:PORT");
    }
    if (hn + 1 > hostlen)
        return bad(err, errlen, "host too long");
    if (port_parse(colon + 1, n - (size_t)(colon + 1 - s), port) < 0)
        return bad(err, errlen, "the port must be a number 1..65535");
    memcpy(host, h, hn);
    host[hn] = '\0';
    return 0;
}

void redis_addr_format(char *out, size_t outlen, const char *host, int port)
{
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen)
{
    const char *p, *end;
    size_t n;
    long db = 0;

    memset(u, 0, sizeof(*u));
    if (strncasecmp(s, "redis://", 8) == 0) {
        p = s + 8;
    } else if (strncasecmp(s, "rediss://", 9) == 0) {
        p = s + 9;
        u->tls = 1;
    } else {
        return bad(err, errlen, "expected redis://HOST[:PORT][/DB] or rediss://HOST[:PORT][/DB]");
    }
    end = p + strcspn(p, "/");
    n = (size_t)(end - p);
    if (memchr(p, '@', n))
        return bad(err, errlen,
                   "no user or password in the url: name the user with username and put the "
                   "password in an environment variable named by password_env");
    if (n == 0)
        return bad(err, errlen, "the url has no host");
    u->port = 6379;
    if (p[0] == '[' || memchr(p, ':', n)) {
        if (p[0] == '[' && memchr(p, ']', n) == end - 1) { /* [V6] without a port */
            char tmp[REDIS_ADDR_MAX];

            if (n + 6 >= sizeof(tmp))
                return bad(err, errlen, "host too long");
            snprintf(tmp, sizeof(tmp), "%.*s:6379", (int)n, p);
            if (redis_addr_parse(tmp, strlen(tmp), u->host, sizeof(u->host), &u->port, err,
                                 errlen) < 0)
                return -1;
        } else if (redis_addr_parse(p, n, u->host, sizeof(u->host), &u->port, err, errlen) < 0) {
            return -1;
        }
    } else {
        if (!host_ok(p, n))
            return bad(err, errlen, "bad host in the url");
        memcpy(u->host, p, n);
        u->host[n] = '\0';
    }
    if (*end == '/' && end[1] != '\0') {
        if (parse_long(end + 1, 0, 1000000, &db) < 0)
            return bad(err, errlen, "the database after the host must be a number, as /0");
        u->db = (int)db;
    }
    return 0;
}
