/* libFuzzer: what a Redis server says about its topology, read by
 * hiredis's reader as the client reads it: CLUSTER SLOTS, SENTINEL
 * get-master-addr-by-name, +switch-master messages, MOVED and ASK errors;
 * and the slot of any key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../src/redis_topo.h"

/* hiredis 0.14's reader callocs the element array a multi-bulk header
 * announces (up to INT_MAX elements, 16 GiB) before any element arrives:
 * its allocation, not sluice's, and a Redis server is trusted to say what it
 * has (OPERATIONS.md). Inputs announcing more than this many elements are
 * skipped, so that the harness finds sluice's faults rather than that one. */
#define ANNOUNCED_MAX 100000

static int announces_too_many(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned long long n = 0;
        size_t j;

        if (data[i] != '*' || (i > 0 && data[i - 1] != '\n'))
            continue;
        for (j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= ANNOUNCED_MAX; j++)
            n = n * 10 + (unsigned)(data[j] - '0');
        if (n > ANNOUNCED_MAX)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    char addr[REDIS_ADDR_MAX], err[200];
    unsigned slot;
    void *reply = NULL;

    if (redis_key_slot((const char *)data, size) >= REDIS_SLOTS)
        abort();
    if (redis_redirect_parse((const char *)data, size, &slot, addr) && slot >= REDIS_SLOTS)
        abort();
    if (announces_too_many(data, size)) {
        redisReaderFree(rd);
        return 0;
    }
    redisReaderFeed(rd, (const char *)data, size);
    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        redisReply *r = reply;
        struct redis_slot_range *v;
        size_t n;

        if (redis_slots_parse(r, "127.0.0.1", 8, &v, &n, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < n; i++)
                if (v[i].from > v[i].to || v[i].to >= REDIS_SLOTS || v[i].addr[0] == '\0')
                    abort();
            free(v);
        }
        redis_sentinel_master_parse(r, addr);
        redis_switch_master_parse(r, "mymaster", addr);
        if (r->type == REDIS_REPLY_ERROR)
            redis_redirect_parse(r->str, r->len, &slot, addr);
        freeReplyObject(r);
        reply = NULL;
    }
    redisReaderFree(rd);
    return 0;
}
