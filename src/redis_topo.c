/* redis_topo.c - Cluster slots and Sentinel answers; see redis_topo.h. */
#include "redis_topo.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t redis_crc16(const void *buf, size_t len)
{
    /* Four bits at a time: a 16-entry table of the polynomial 0x1021. */
    static const uint16_t nib[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5,
                                     0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
                                     0xc18c, 0xd1ad, 0xe1ce, 0xf1ef};
    const unsigned char *p = buf;
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)((crc << 4) ^ nib[((crc >> 12) ^ (p[i] >> 4)) & 0x0f]);
        crc = (uint16_t)((crc << 4) ^ nib[((crc >> 12) ^ (p[i] & 0x0f)) & 0x0f]);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);

        if (close && close > open + 1)
            return redis_crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_SLOTS - 1);
    }
    return redis_crc16(key, len) & (REDIS_SLOTS - 1);
}

/* A port of n digits, 1..65535. */
static int parse_long_n(const char *s, size_t n, long *out)
{
    char num[8];

    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    return parse_long(num, 1, 65535, out);
}

/* HOST and PORT as two texts (Sentinel's way; an IPv6 host bare) into
 * addr as HOST:PORT. */
static int host_port(const char *h, size_t hn, const char *p, size_t pn, char *addr)
{
    char host[REDIS_HOST_MAX];
    long port;
    size_t i;

    if (hn == 0 || hn >= sizeof(host) || parse_long_n(p, pn, &port) < 0)
        return -1;
    for (i = 0; i < hn; i++)
        if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f || strchr("/@[]", h[i]))
            return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    redis_addr_format(addr, REDIS_ADDR_MAX, host, (int)port);
    return 0;
}

int redis_redirect_parse(const char *err, size_t len, unsigned *slot, char *addr)
{
    int kind;
    size_t i, start, alen;
    unsigned long s = 0;
    char host[REDIS_HOST_MAX], ebuf[8];
    int port;

    if (len > 6 && memcmp(err, "MOVED ", 6) == 0)
        kind = 1, i = 6;
    else if (len > 4 && memcmp(err, "ASK ", 4) == 0)
        kind = 2, i = 4;
    else
        return 0;
    start = i;
    while (i < len && err[i] >= '0' && err[i] <= '9' && i - start < 6)
        s = s * 10 + (unsigned long)(err[i++] - '0');
    if (i == start || i >= len || err[i] != ' ' || s >= REDIS_SLOTS)
        return 0;
    i++;
    alen = len - i;
    if (alen == 0 || alen >= REDIS_ADDR_MAX || memchr(err + i, ' ', alen))
        return 0;
    if (err[i] == ':') { /* ":6380": the node does not know its own address */
        long p;

        if (alen > 6 || parse_long_n(err + i + 1, alen - 1, &p) < 0)
            return 0;
        snprintf(addr, REDIS_ADDR_MAX, ":%ld", p);
        *slot = (unsigned)s;
        return kind;
    }
    if (redis_addr_parse(err + i, alen, host, sizeof(host), &port, ebuf, sizeof(ebuf)) < 0)
        return 0;
    redis_addr_format(addr, REDIS_ADDR_MAX, host, port);
    *slot = (unsigned)s;
    return kind;
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A node of a CLUSTER SLOTS range, [host, port, id, ...], as HOST:PORT. */
static int slot_node(const redisReply *n, const char *self_host, char *addr)
{
    char port[8];
    const char *host;
    size_t hn;

    if (n == NULL || n->type != REDIS_REPLY_ARRAY || n->elements < 2 || !is_str(n->element[0]) ||
        n->element[1]->type != REDIS_REPLY_INTEGER || n->element[1]->integer < 1 ||
        n->element[1]->integer > 65535)
        return -1;
    host = n->element[0]->str;
    hn = n->element[0]->len;
    if (hn == 0 || (hn == 1 && host[0] == '?')) {
        host = self_host;
        hn = strlen(host);
    }
    snprintf(port, sizeof(port), "%d", (int)n->element[1]->integer);
    return host_port(host, hn, port, strlen(port), addr);
}

int redis_slots_parse(const struct redisReply *r, const char *self_host, size_t max_nodes,
                      struct redis_slot_range **out, size_t *n, char *err, size_t errlen)
{
    struct redis_slot_range *v;
    size_t nv = 0, distinct = 0;

    *out = NULL;
    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "CLUSTER SLOTS: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return -1;
    }
    if (r->elements == 0 || r->elements > REDIS_SLOTS) {
        snprintf(err, errlen, "CLUSTER SLOTS: %s",
                 r->elements ? "more ranges than slots" : "no slots are served");
        return -1;
    }
    v = xcalloc(r->elements, sizeof(*v));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        size_t j;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[0]->integer < 0 ||
            e->element[1]->integer < e->element[0]->integer ||
            e->element[1]->integer >= REDIS_SLOTS ||
            slot_node(e->element[2], self_host, v[nv].addr) < 0) {
            snprintf(err, errlen, "CLUSTER SLOTS: malformed range %zu", i);
            free(v);
            return -1;
        }
        v[nv].from = (unsigned)e->element[0]->integer;
        v[nv].to = (unsigned)e->element[1]->integer;
        for (j = 0; j < nv; j++)
            if (strcmp(v[j].addr, v[nv].addr) == 0)
                break;
        if (j == nv && ++distinct > max_nodes) {
            snprintf(err, errlen, "CLUSTER SLOTS: more than %zu masters", max_nodes);
            free(v);
            return -1;
        }
        nv++;
    }
    *out = v;
    *n = nv;
    return 0;
}

int redis_sentinel_master_parse(const struct redisReply *r, char *addr)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
        !is_str(r->element[1]))
        return -1;
    return host_port(r->element[0]->str, r->element[0]->len, r->element[1]->str,
                     r->element[1]->len, addr);
}

int redis_switch_master_parse(const struct redisReply *r, const char *name, char *addr)
{
    const redisReply *m;
    const char *p, *f[5];
    size_t fl[5], nf = 0, i = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0]) ||
        strcmp(r->element[0]->str, "message") != 0 || !is_str(r->element[1]) ||
        strcmp(r->element[1]->str, "+switch-master") != 0 || !is_str(r->element[2]))
        return -1;
    m = r->element[2];
    p = m->str;
    while (i < m->len && nf < 5) {
        size_t start = i;

        while (i < m->len && p[i] != ' ')
            i++;
        f[nf] = p + start;
        fl[nf++] = i - start;
        if (i < m->len)
            i++;
    }
    if (nf != 5 || i != m->len || fl[0] != strlen(name) || memcmp(f[0], name, fl[0]) != 0)
        return -1;
    return host_port(f[3], fl[3], f[4], fl[4], addr);
}
