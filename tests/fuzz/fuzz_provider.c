/* libFuzzer: provider response parsing, whole bodies and stream chunks. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ep = EP_CHAT; ep <= EP_EMBEDDINGS; ep++) {
        struct reply r;
        json_t *root;

        reply_init(&r);
        root = provider_parse_response((enum endpoint)ep, (const char *)data, size, &r);
        json_decref(root);
        provider_parse_chunk((enum endpoint)ep, (const char *)data, size, &r);
        if (r.content.len > 0 && r.content.data[r.content.len] != '\0')
            abort();
        reply_free(&r);
    }
    return 0;
}
