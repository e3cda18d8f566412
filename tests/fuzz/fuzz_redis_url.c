/* libFuzzer: the redis block's url and HOST:PORT lists (a config file is
 * outside input), and the address text a server names for a node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), host[REDIS_HOST_MAX], err[200], out[REDIS_ADDR_MAX];
    struct redis_url u;
    int port;

    memcpy(s, data, size);
    s[size] = '\0';
    if (redis_url_parse(s, &u, err, sizeof(err)) == 0) {
        if (u.port < 1 || u.port > 65535 || u.db < 0 || strlen(u.host) == 0)
            abort();
        redis_addr_format(out, sizeof(out), u.host, u.port);
    }
    if (redis_addr_parse(s, size, host, sizeof(host), &port, err, sizeof(err)) == 0) {
        char again[REDIS_HOST_MAX];
        int p2;

        /* what it formats parses back to the same */
        redis_addr_format(out, sizeof(out), host, port);
        if (redis_addr_parse(out, strlen(out), again, sizeof(again), &p2, err, sizeof(err)) < 0 ||
            strcmp(again, host) != 0 || p2 != port)
            abort();
    }
    free(s);
    return 0;
}
