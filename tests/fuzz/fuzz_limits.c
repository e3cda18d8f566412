/* libFuzzer: the admission script's reply, as Redis sends it (RESP). A
 * Redis is outside input: anyone with access to it can change what the
 * script returns, or the script of another version can answer. Whatever it
 * is, limits_read_admit either reads it or says it cannot, and never reads
 * past it. */
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../src/limits.h"

/* hiredis 0.14's reader allocates an array of the length a reply declares
 * (maxelements came in 1.0): inputs that declare a long one test hiredis'
 * allocator, not sluice, and are skipped. */
static int declares_long_array(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if ((i == 0 || data[i - 1] == '\n') && data[i] == '*') {
            long n = 0;

            for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n < 100000; j++)
                n = n * 10 + (data[j] - '0');
            if (n > 64)
                return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    void *reply = NULL;
    struct admit_reply ar;

    if (declares_long_array(data, size))
        return 0;
    rd = redisReaderCreate();
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
        if (limits_read_admit(reply, &ar) == 0 && (isnan(ar.spent) || isnan(ar.held)))
            abort();
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return 0;
}
