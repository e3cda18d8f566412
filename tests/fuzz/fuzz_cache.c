/* libFuzzer: what the cache reads back (an entry from Redis is outside
 * input: another replica, or anyone with access to Redis, wrote it), and the
 * canonical key of any JSON body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cache_entry e;
    char *raw = malloc(size + 1), *out, key[CACHE_KEY_MAX];
    size_t olen;
    json_t *j;

    memcpy(raw, data, size);
    raw[size] = '\0';
    if (cache_entry_decode(raw, size, &e) == 0) {
        for (int stream = 0; stream < 2; stream++) {
            struct request_info ri = {.ep = EP_CHAT, .stream = stream, .include_usage = 1};

            if (cache_entry_render(&e, &ri, &out, &olen) == 0)
                free(out);
        }
        cache_entry_free(&e);
    }
    j = json_loadb((const char *)data, size, 0, NULL);
    if (j) {
        cache_key("ns", "route", EP_CHAT, j, key);
        if (strlen(key) != 10 + 3 + 64)
            abort();
        json_decref(j);
    }
    return 0;
}
