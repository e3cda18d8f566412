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
        {
            struct assembly *a = provider_assembly_new((enum endpoint)ep);
            size_t len;
            char *whole;

            provider_parse_chunk((enum endpoint)ep, (const char *)data, size, &r, a);
            provider_parse_chunk((enum endpoint)ep, (const char *)data, size, &r, a);
            whole = provider_assembly_finish(a, &len);
            if (whole) {
                json_t *j = json_loads(whole, 0, NULL);

                if (j == NULL)
                    abort(); /* the rebuilt response is always JSON */
                json_decref(j);
            }
            free(whole);
            provider_assembly_free(a);
        }
        if (r.content.len > 0 && r.content.data[r.content.len] != '\0')
            abort();
        reply_free(&r);
    }
    return 0;
}
