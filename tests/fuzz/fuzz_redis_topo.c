/* libFuzzer: what a Redis server says about its topology, read by
 * hiredis's reader as the client reads it: CLUSTER SLOTS, SENTINEL
 * get-master-addr-by-name, +switch-master messages, MOVED and ASK errors;
 * and the slot of any key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../src/redis_topo.h"

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
