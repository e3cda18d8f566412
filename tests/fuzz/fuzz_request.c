/* libFuzzer: request validation (request_parse) on every endpoint, and the
 * query text built from what it accepts. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ep = EP_CHAT; ep <= EP_EMBEDDINGS; ep++) {
        struct request_info ri;
        struct api_error e = {0};

        if (request_parse((enum endpoint)ep, (const char *)data, size, &ri, &e) == 0) {
            char *q = request_query_text(&ri);

            free(q);
            request_info_free(&ri);
        } else if (e.status != 400) {
            abort(); /* bad input is always a 400 */
        }
    }
    return 0;
}
