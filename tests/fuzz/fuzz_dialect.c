/* libFuzzer: the edge (dialect.c). The input is a client body for both
 * dialects (dialect_request: a chat body or a 400/413, never a crash) and
 * a chat event stream fed in two pieces (dialect_stream's framing of
 * partial events, jscan on the chunks): the translation is well-formed
 * events whatever the bytes. And any JSON written by api_dump reads back
 * as the same tree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api_common.h"
#include "../../src/dialect.h"
#include "fuzz_dialect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    json_t *tree = json_loadb(p, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    if (tree) {
        struct buf b;
        json_t *back;

        buf_init(&b, 1 << 24);
        if (api_dump(&b, tree) < 0)
            abort();
        back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!json_equal(back, tree))
            abort(); /* api_dump changed what the tree says */
        json_decref(back);
        json_decref(tree);
        buf_free(&b);
    }

    for (int d = DIALECT_RESPONSES; d <= DIALECT_MESSAGES; d++) {
        for (int count_only = 0; count_only <= (d == DIALECT_MESSAGES); count_only++) {
            struct dialect_ctx *dx = dialect_new((enum dialect)d, count_only);
            struct api_error e = {0};
            char *chat;
            size_t len;

            if (dialect_request(dx, p, size, 1 << 20, &chat, &len, &e) == 0) {
                json_t *j = json_loadb(chat, len, 0, NULL);

                fuzz_check_chat_body(j);
                if (dialect_input_tokens(dx) < 1)
                    abort();
                json_decref(j);
                free(chat);
            } else if (e.status != 400 && e.status != 413) {
                abort();
            }
            dialect_free(dx);
        }
        {
            struct dialect_ctx *dx = dialect_new((enum dialect)d, 0);
            struct buf out;
            size_t cut = size ? data[0] % (size + 1) : 0;

            buf_init(&out, 1 << 24);
            if (dialect_stream(dx, p, cut, &out) == 0 &&
                dialect_stream(dx, p + cut, size - cut, &out) == 0 &&
                dialect_stream_end(dx, &out) == 0)
                fuzz_check_events(out.data, out.len);
            buf_free(&out);
            dialect_free(dx);
        }
    }
    return 0;
}
